"""Compile filter text into a checked tree: parse (lark, LALR), bound, type-check.

Every refusal is a :class:`FilterError` with the line, column and offset of the problem and
a suggestion when one is known. Cost is bounded before any work proportional to nesting is
done: the text's length is checked first, parsing is LALR (linear time, no recursion), and
the parse tree's depth is measured iteratively before the recursive type check runs.
"""

from __future__ import annotations

import difflib
import functools
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import lark
from lark import Token, Tree

from alertbutler.subscribe.errors import FilterError
from alertbutler.subscribe.filters import nodes as n
from alertbutler.subscribe.filters.schema import FieldType, RecordType

MAX_LENGTH = 4000
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40
MAX_STRING_CHARS = 256
MAX_LIST_ITEMS = 1000
MAX_NODES = 8000

KEYWORDS = ("and", "or", "not", "in", "is", "null", "true", "false", "where")
AGGREGATES = ("count", "min", "max", "mean", "sum")
SCALAR_FUNCS = ("abs", "sqrt", "log10", "mag")
SPECIAL_FUNCS = ("within", "days_since_first_detection")
FUNCTIONS = AGGREGATES + SCALAR_FUNCS + SPECIAL_FUNCS
#: Names that mean a field of the current detection (in an aggregate: of the history entry).
SHORTHANDS = {"band": ("diaSource", "band")}
HISTORY = "prvDiaSources"
#: integer literals are int64 (2^63 itself only after a minus); floats are normal float64
INT64_MAX = 2**63 - 1
SMALLEST_FLOAT = sys.float_info.min

_TOKEN_NAMES = {
    "COMP_OP": "a comparison (==, !=, <, <=, >, >=)", "ADD_OP": "+ or -", "MUL_OP": "* or /",
    "MINUS": "-", "NAME": "a field name", "NUMBER": "a number", "STRING": "a quoted string",
    "LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]", "COMMA": ",", "DOT": ".",
    "_OR": "or", "_AND": "and", "_NOT": "not", "_IN": "in", "_IS": "is", "_NULL": "null",
    "_TRUE": "true", "_FALSE": "false", "_WHERE": "where", "$END": "the end of the filter",
}


@functools.cache
def _parser() -> lark.Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text()
    return lark.Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                     maybe_placeholders=False)


@dataclass(frozen=True)
class Compiled:
    """A checked filter tree and the columns it reads."""

    text: str
    root: n.Node
    columns: frozenset[n.ColumnSpec]


def compile_tree(text: str, schema: RecordType) -> Compiled:
    """Parse, bound and type-check ``text`` against ``schema``."""
    if not isinstance(text, str):
        raise FilterError(f"a filter is text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter is {len(text)} characters long; the limit is {MAX_LENGTH}",
                          text=text, position=MAX_LENGTH,
                          suggestion="split it into several named filters")
    if not text.strip():
        raise FilterError("empty filter", text=text, suggestion="e.g. diaSource.snr > 5")
    tree = _parse(text)
    _check_size(tree, text)
    checker = _Checker(text, schema)
    root = checker.expr(tree, scope=None)
    if root.type != "boolean":
        raise checker.error(tree, f"a filter must be a condition (true or false), but this "
                            f"expression is a {root.type}",
                            suggestion="compare it, e.g. ... > 5")
    return Compiled(text, root, frozenset(checker.columns))


def _parse(text: str) -> Tree:
    try:
        return _parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as exc:
        pos = len(text) if exc.pos_in_stream is None else exc.pos_in_stream
        char = text[pos] if pos < len(text) else ""
        hint = None
        if char == "=":
            hint = "use == to test equality"
        elif char in "&|":
            hint = "use 'and' / 'or'"
        elif char == "!":
            hint = "use 'not', or != for inequality"
        elif char == '"' or char == "'":
            hint = (f"strings are at most {MAX_STRING_CHARS} characters on one line, "
                    "without backslashes")
        elif char in ":;{}@$`\\#":
            hint = "filters are expressions over alert fields, not code"
        raise FilterError(f"unexpected character {char!r}", text=text,
                          position=pos, line=exc.line, column=exc.column,
                          suggestion=hint or _expected(exc.allowed)) from None
    except lark.exceptions.UnexpectedToken as exc:
        token = exc.token
        if token.type == "$END":
            raise FilterError("the filter ends too early", text=text, position=len(text),
                              suggestion=_expected(exc.expected)) from None
        hint = _expected(exc.expected)
        value = str(token)
        if token.type == "NAME" and value.lower() in KEYWORDS:
            hint = f"keywords are lower case: {value.lower()!r}"
        elif token.type == "COMP_OP" and "COMP_OP" not in exc.expected:
            hint = "comparisons do not chain: write a < x and x < b"
        raise FilterError(f"unexpected {value!r}", text=text, position=token.start_pos or 0,
                          line=token.line, column=token.column, suggestion=hint) from None
    except lark.exceptions.UnexpectedEOF as exc:
        raise FilterError("the filter ends too early", text=text, position=len(text),
                          suggestion=_expected(exc.expected)) from None
    except lark.exceptions.LarkError as exc:  # anything else the parser refuses
        raise FilterError(f"cannot parse the filter: {exc}", text=text) from None


def _expected(names: Iterable[object] | None) -> str | None:
    shown = sorted({_TOKEN_NAMES.get(str(x), str(x).lower()) for x in (names or ())})
    if not shown:
        return None
    if len(shown) > 6:
        shown = [*shown[:6], "..."]
    return "expected " + ", ".join(shown)


def _check_size(tree: Tree, text: str) -> None:
    """Depth and node count, measured without recursion."""
    stack: list[tuple[Tree | Token, int]] = [(tree, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels", text=text,
                              position=_pos(node), suggestion="flatten it: and/or take "
                              "many operands without parentheses")
        if count > MAX_NODES:
            raise FilterError(f"the filter has more than {MAX_NODES} parts", text=text,
                              position=_pos(node))
        if isinstance(node, Tree):
            stack.extend((child, depth + 1) for child in node.children)


def _token(t: Tree, i: int) -> Token:
    """Child ``i`` of ``t``, a token where the grammar puts one (lark types a child as
    either)."""
    child = t.children[i]
    if not isinstance(child, Token):
        raise TypeError(f"{t.data}: child {i} is a subtree where the grammar has a token")
    return child


def _pos(node: Tree | Token) -> int:
    if isinstance(node, Token):
        return node.start_pos or 0
    meta = node.meta
    return getattr(meta, "start_pos", 0) if not meta.empty else 0


class _Checker:
    """Type-checks a parse tree into :mod:`nodes`, collecting the columns it reads."""

    def __init__(self, text: str, schema: RecordType) -> None:
        self.text = text
        self.schema = schema
        self.columns: set[n.ColumnSpec] = set()

    def error(self, node: Tree | Token, message: str, suggestion: str | None = None
              ) -> FilterError:
        return FilterError(message, text=self.text, position=_pos(node), suggestion=suggestion)

    # ---------------------------------------------------------------------------------------
    def expr(self, t: Tree | Token, scope: tuple[str, RecordType] | None) -> n.Node:
        """``scope`` is (array name, item record) inside an aggregate's value or where."""
        rule = t.data if isinstance(t, Tree) else None
        method = getattr(self, f"_{rule}", None) if rule else None
        if method is None:
            raise self.error(t, f"unsupported construct {rule!r}")
        return method(t, scope)

    def _paren(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        return self.expr(t.children[0], scope)

    def _number(self, t: Tree, scope: object) -> n.Node:
        return n.Const("number", False, self._number_value(_token(t, 0)))

    def _neg_number(self, t: Tree, scope: object) -> n.Node:
        value = self._number_value(_token(t, 1), negated=True)
        return n.Const("number", False, -value)

    def _number_value(self, tok: Token, *, negated: bool = False) -> int | float:
        """An int64 for digits alone, else a float64; a literal either cannot hold exactly
        enough (beyond int64, overflowing or underflowing a normal double) is refused, so
        ``2^63`` never silently equals ``2^63 - 1`` and ``1e-999`` never becomes 0."""
        text = str(tok)
        if len(text) > MAX_NUMBER_CHARS:
            raise self.error(tok, f"number literal of {len(text)} characters; the limit is "
                             f"{MAX_NUMBER_CHARS}")
        if not text.isascii():  # the grammar takes ASCII digits only; never trust int()
            raise self.error(tok, f"number {text!r} has non-ASCII digits")
        if text.isdigit():
            value = int(text)
            if value > INT64_MAX + negated:
                raise self.error(tok, f"integer {'-' * negated}{text} is out of range",
                                 suggestion="integers are 64-bit: -2^63 to 2^63-1")
            return value
        number = float(text)
        mantissa = text.lower().partition("e")[0]
        if not math.isfinite(number) or (abs(number) < SMALLEST_FLOAT and
                                         mantissa.strip("0.") != ""):
            raise self.error(tok, f"number {'-' * negated}{text} is out of range",
                             suggestion="numbers are double precision: magnitudes from "
                             "2.2250738585072014e-308 to 1.7976931348623157e308, or 0")
        return number

    def _string(self, t: Tree, scope: object) -> n.Node:
        tok = _token(t, 0)
        if len(tok) - 2 > MAX_STRING_CHARS:
            raise self.error(tok, f"string literal of {len(tok) - 2} characters; the limit is "
                             f"{MAX_STRING_CHARS}")
        return n.Const("string", False, str(tok)[1:-1])

    def _true(self, t: Tree, scope: object) -> n.Node:
        return n.Const("boolean", False, True)

    def _false(self, t: Tree, scope: object) -> n.Node:
        return n.Const("boolean", False, False)

    def _neg(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        child = t.children[1]
        if isinstance(child, Tree) and child.data == "number":  # -9223372036854775808
            return n.Const("number", False, -self._number_value(_token(child, 0),
                                                                negated=True))
        operand = self.expr(child, scope)
        self._need(t.children[1], operand, "number", "-")
        if isinstance(operand, n.Const):
            return n.Const("number", False, -operand.value)  # type: ignore[operator]
        return n.Neg("number", operand.nullable, operand)

    def _sum(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        return self._arith_chain(t, scope)

    def _product(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        return self._arith_chain(t, scope)

    def _arith_chain(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        children = t.children
        left = self.expr(children[0], scope)
        self._need(children[0], left, "number", str(children[1]))
        for i in range(1, len(children), 2):
            op = str(children[i])
            right = self.expr(children[i + 1], scope)
            self._need(children[i + 1], right, "number", op)
            left = n.Arith("number", left.nullable or right.nullable or op == "/", op,
                           left, right)
        return left

    def _compare(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        lt, op_tok, rt = t.children
        left, right = self.expr(lt, scope), self.expr(rt, scope)
        op = str(op_tok)
        if left.type != right.type:
            raise self.error(op_tok, f"cannot compare a {left.type} with a {right.type}",
                             suggestion=_compare_hint(left, right))
        if left.type == "bytes":
            raise self.error(op_tok, "binary fields (cutouts) cannot be compared",
                             suggestion="test them with 'is null' / 'is not null'")
        if left.type in ("string", "boolean") and op not in ("==", "!="):
            raise self.error(op_tok, f"{op} does not apply to {left.type}s",
                             suggestion="use == or !=")
        return n.Compare("boolean", left.nullable or right.nullable, op, left, right)

    def _not_(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        operand = self.expr(t.children[0], scope)
        self._need(t.children[0], operand, "boolean", "not")
        return n.Not("boolean", operand.nullable, operand)

    def _and_expr(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        return self._bool_chain(t, scope, "and")

    def _or_expr(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        return self._bool_chain(t, scope, "or")

    def _bool_chain(self, t: Tree, scope: tuple[str, RecordType] | None,
                    op: str) -> n.Node:
        operands = []
        for child in t.children:
            node = self.expr(child, scope)
            self._need(child, node, "boolean", op)
            operands.append(node)
        return n.BoolOp("boolean", any(o.nullable for o in operands), op,  # type: ignore[arg-type]
                        tuple(operands))

    def _in_(self, t: Tree, scope: tuple[str, RecordType] | None, negate: bool = False
             ) -> n.Node:
        operand = self.expr(t.children[0], scope)
        items = t.children[-1].children
        if len(items) > MAX_LIST_ITEMS:
            raise self.error(t.children[-1], f"list of {len(items)} values; the limit is "
                             f"{MAX_LIST_ITEMS}")
        values = []
        for item in items:
            const = self.expr(item, scope)
            assert isinstance(const, n.Const)
            if const.type != operand.type:
                raise self.error(item, f"list value is a {const.type} but the tested "
                                 f"expression is a {operand.type}")
            values.append(const.value)
        if operand.type == "bytes":
            raise self.error(t, "binary fields cannot be tested with 'in'")
        return n.InList("boolean", operand.nullable, operand, tuple(values), negate)

    def _not_in(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        return self._in_(t, scope, negate=True)

    def _is_null(self, t: Tree, scope: tuple[str, RecordType] | None, negate: bool = False
                 ) -> n.Node:
        child = t.children[0]
        if isinstance(child, Tree) and child.data == "path":  # records and lists may be null
            operand = self._path(child, scope, container=True)
        else:
            operand = self.expr(child, scope)
        return n.IsNull("boolean", False, operand, negate)

    def _is_not_null(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        return self._is_null(t, scope, negate=True)

    # ---------------------------------------------------------------------------------------
    def _path(self, t: Tree, scope: tuple[str, RecordType] | None, *,
              container: bool = False) -> n.Node:
        names = [str(tok) for tok in t.children]
        if scope is None and len(names) == 1 and names[0] in SHORTHANDS:
            names = list(SHORTHANDS[names[0]])
        record = scope[1] if scope else self.schema
        prefix: tuple[str, ...] = (scope[0], "*") if scope else ()
        ftype, nullable = self._resolve(t, names, record, scope)
        if container and ftype.kind in ("record", "array"):
            key = (*prefix, *names)
            self.columns.add(n.ColumnSpec(key, "bytes"))  # only its presence is read
            return n.Col("bytes", nullable, key)
        if ftype.kind == "record":
            fields = ", ".join(sorted(ftype.record.fields)[:8]) if ftype.record else ""
            raise self.error(t, f"{'.'.join(names)} is a record, not a value",
                             suggestion=f"name one of its fields: {fields}, ...")
        if ftype.kind == "array":
            raise self.error(t, f"{'.'.join(names)} is a list of entries",
                             suggestion=f"use an aggregate: count({'.'.join(names)}), "
                             f"mean({'.'.join(names)}.psfFlux), ...")
        key = (*prefix, *names)
        self.columns.add(n.ColumnSpec(key, ftype.kind, ftype.integer))
        return n.Col(ftype.kind, nullable, key)

    def _resolve(self, t: Tree, names: list[str], record: RecordType,
                 scope: tuple[str, RecordType] | None) -> tuple[FieldType, bool]:
        nullable = False
        current: RecordType | None = record
        ftype: FieldType | None = None
        for i, name in enumerate(names):
            if current is None or (ftype is not None and ftype.kind != "record"):
                raise self.error(t, f"{'.'.join(names[:i])} has no fields")
            if name not in current.fields:
                raise self.error(t.children[i], f"unknown field {'.'.join(names[:i + 1])!r}",
                                 suggestion=self._did_you_mean(names, i, current, scope))
            ftype = current.fields[name]
            nullable = nullable or ftype.nullable
            if ftype.kind == "array" and i < len(names) - 1:
                raise self.error(t, f"{'.'.join(names[:i + 1])} is a list of entries: its "
                                 "fields are read through an aggregate",
                                 suggestion=f"e.g. max({'.'.join(names)})")
            current = ftype.record
            if ftype.kind == "array" and i == len(names) - 1:
                break
        assert ftype is not None
        return ftype, nullable

    def _did_you_mean(self, names: list[str], i: int, record: RecordType,
                      scope: tuple[str, RecordType] | None) -> str | None:
        name = names[i]
        close = difflib.get_close_matches(name, list(record.fields), n=1, cutoff=0.6)
        if close:
            return f"did you mean {'.'.join([*names[:i], close[0]])!r}?"
        if i == 0 and scope is None:  # a leaf name used alone: find the records holding it
            holders = [f"{sub}.{name}" for sub, ft in self.schema.fields.items()
                       if ft.kind == "record" and ft.record and name in ft.record.fields]
            if holders:
                return f"did you mean {holders[0]!r}?"
            lower = {k.lower(): k for k in self.schema.fields}
            if name.lower() in lower:
                return f"did you mean {lower[name.lower()]!r}?"
        fields = sorted(record.fields)
        return "known fields here: " + ", ".join(fields[:10]) + (", ..." if len(fields) > 10
                                                                  else "")

    # ---------------------------------------------------------------------------------------
    def _call(self, t: Tree, scope: tuple[str, RecordType] | None) -> n.Node:
        name_tok = t.children[0]
        name = str(name_tok)
        rest = t.children[1:]
        where = None
        if rest and isinstance(rest[-1], Tree) and rest[-1].data == "where":
            where = rest[-1]
            rest = rest[:-1]
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, FUNCTIONS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}()?" if close else \
                "functions: " + ", ".join(FUNCTIONS)
            raise self.error(name_tok, f"unknown function {name!r}", suggestion=hint)
        if where is not None and name not in AGGREGATES:
            raise self.error(where, f"'where' belongs to aggregates ({', '.join(AGGREGATES)})"
                             f", not to {name}()")
        if name in AGGREGATES:
            return self._aggregate(t, name, rest, where, scope)
        if name == "within":
            return self._within(t, rest, scope)
        if name == "days_since_first_detection":
            return self._since_first(t, rest, scope)
        if len(rest) != 1:
            raise self.error(name_tok, f"{name}() takes one argument, got {len(rest)}")
        arg = self.expr(rest[0], scope)
        self._need(rest[0], arg, "number", f"{name}()")
        return n.Func("number", True if name in ("sqrt", "log10", "mag") else arg.nullable,
                      name, arg)  # type: ignore[arg-type]

    def _aggregate(self, t: Tree, name: str, args: list, where: Tree | None,
                   scope: tuple[str, RecordType] | None) -> n.Node:
        if scope is not None:
            raise self.error(t, "aggregates do not nest")
        if len(args) != 1 or not (isinstance(args[0], Tree) and args[0].data == "path"):
            raise self.error(t, f"{name}() takes one field path over a history list",
                             suggestion=f"e.g. {name}({HISTORY}"
                             f"{'' if name == 'count' else '.psfFlux'} where band == 'g')")
        path = args[0]
        names = [str(tok) for tok in path.children]
        array = names[0]
        ftype = self.schema.fields.get(array)
        if ftype is None or ftype.kind != "array" or ftype.record is None:
            lists = [k for k, v in self.schema.fields.items() if v.kind == "array"]
            raise self.error(path, f"{array!r} is not a list of entries",
                             suggestion="aggregates read " + ", ".join(lists))
        item = ftype.record
        inner = (array, item)
        value: n.Node | None = None
        if len(names) > 1:
            value = self._path(Tree("path", path.children[1:], path.meta), inner)
        elif name != "count":
            raise self.error(path, f"{name}() needs a field of the entries",
                             suggestion=f"e.g. {name}({array}.psfFlux)")
        if value is not None and name != "count":
            self._need(path, value, "number", f"{name}()")
        cond = None
        if where is not None:
            cond = self.expr(where.children[0], inner)
            self._need(where.children[0], cond, "boolean", "where")
        self.columns.add(n.ColumnSpec((array, "*"), "array"))
        return n.Aggregate("number", name != "count", name, (array, "*"),  # type: ignore[arg-type]
                           value, cond)

    def _within(self, t: Tree, args: list, scope: tuple[str, RecordType] | None) -> n.Node:
        if len(args) != 3:
            raise self.error(t, f"within() takes (ra, dec, radius_arcsec), got {len(args)} "
                             "arguments")
        values = []
        for arg in args:
            const = self.expr(arg, scope)
            if not isinstance(const, n.Const) or const.type != "number":
                raise self.error(arg, "within() takes constant numbers: ra and dec in "
                                 "degrees, the radius in arcseconds")
            values.append(float(const.value))  # type: ignore[arg-type]
        ra, dec, radius = values
        if not (0 <= ra <= 360 and -90 <= dec <= 90):
            raise self.error(args[0], f"({ra}, {dec}) is not a position on the sky",
                             suggestion="ra in [0, 360], dec in [-90, 90] degrees")
        if not 0 < radius <= 180 * 3600:
            raise self.error(args[2], "the radius must be positive and at most 648000 "
                             "arcseconds")
        if scope is not None:
            raise self.error(t, "within() is not available inside an aggregate")
        source = self.schema.fields.get("diaSource")
        if source is None or source.record is None or \
                not {"ra", "dec"} <= set(source.record.fields):
            raise self.error(t, "this schema has no diaSource.ra / diaSource.dec")
        base = ("diaSource",)
        for coord in ("ra", "dec"):
            self.columns.add(n.ColumnSpec((*base, coord), "number"))
        return n.Within("boolean", False, (*base, "ra"), (*base, "dec"), ra, dec,
                        radius / 3600.0)

    def _since_first(self, t: Tree, args: list, scope: tuple[str, RecordType] | None
                     ) -> n.Node:
        if args:
            raise self.error(t, "days_since_first_detection() takes no arguments")
        if scope is not None:
            raise self.error(t, "days_since_first_detection() is not available inside an "
                             "aggregate")
        source = self.schema.fields.get("diaSource")
        history = self.schema.fields.get(HISTORY)
        if source is None or source.record is None or history is None or \
                "midpointMjdTai" not in source.record.fields:
            raise self.error(t, "this schema has no detection times")
        for spec in (n.ColumnSpec(("diaSource", "midpointMjdTai"), "number"),
                     n.ColumnSpec((HISTORY, "*", "midpointMjdTai"), "number"),
                     n.ColumnSpec((HISTORY, "*"), "array")):
            self.columns.add(spec)
        return n.SinceFirst("number", False, ("diaSource", "midpointMjdTai"),
                            (HISTORY, "*", "midpointMjdTai"), (HISTORY, "*"))

    def _need(self, t: Tree | Token, node: n.Node, wanted: str, op: str) -> None:
        if node.type != wanted:
            hint = None
            if wanted == "boolean" and node.type == "number":
                hint = "compare it, e.g. ... > 0"
            elif wanted == "boolean" and node.type == "boolean":
                hint = None
            raise self.error(t, f"{op} needs a {wanted}, but this is a {node.type}",
                             suggestion=hint)


def _compare_hint(left: n.Node, right: n.Node) -> str | None:
    if "string" in (left.type, right.type):
        return "quote text values, e.g. band == 'g'"
    return None
