"""Evaluate a checked filter tree over :class:`Columns`: numpy only, one pass per node.

Nulls follow SQL's three-valued logic: a comparison with a null is unknown; ``and`` is false
if any side is false, ``or`` true if any side is true, otherwise unknown; ``not`` keeps
unknown; a filter keeps an alert only when it is true. Arithmetic with a null, division by
zero, sqrt/log of a non-positive number give null. An aggregate over no entries is null
(``count`` is 0).

Numbers are int64 (ids, counts) or float64. Integer ``+ - *`` and unary minus are exact, and a
result outside int64 is null (an error of that row, as division by zero is) instead of
wrapping; anything involving a float is float64. A NaN produced anywhere (``inf - inf``) is
null, as a NaN read from an alert is. An integer compared with a float is compared exactly
(numpy would round the integer to a float first, making 2^63 - 1 equal 2^63).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from alertbutler.subscribe.filters import nodes as n
from alertbutler.subscribe.filters.columns import Columns, Value

_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}
_SWAPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ZERO_POINT_NJY = 31.4  # AB magnitude of 1 nJy
_INT64_MIN = np.iinfo(np.int64).min
_TWO_63 = 2.0**63


def keep(node: n.Node, cols: Columns) -> np.ndarray:
    """The rows where ``node`` is true, as a boolean array of ``cols.n`` entries."""
    value = evaluate(node, cols)
    data = np.asarray(value.data, dtype=bool)
    if value.null is not None:
        data = data & ~value.null
    return np.broadcast_to(data, (cols.n,)).copy() if data.shape != (cols.n,) else data


def evaluate(node: n.Node, cols: Columns) -> Value:
    value = _DISPATCH[type(node)](node, cols)
    if node.type == "number" and not isinstance(node, n.Col | n.Const):
        data = np.asarray(value.data)
        if data.dtype.kind == "f":  # NaN made by arithmetic is null, as a NaN read is
            nan = np.isnan(data)
            if nan.any():
                return Value(data, _or_null(value.null, nan))
    return value


def _or_null(*masks: np.ndarray | None) -> np.ndarray | None:
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = out | m
    return out


def _const(node: n.Const, cols: Columns) -> Value:
    if node.type == "string":
        return Value(np.array(node.value, dtype=object))
    return Value(np.asarray(node.value))


def _col(node: n.Col, cols: Columns) -> Value:
    return cols.values[node.key]


def _neg(node: n.Neg, cols: Columns) -> Value:
    v = evaluate(node.operand, cols)
    x = np.asarray(v.data)
    if x.dtype.kind == "i":
        over = x == _INT64_MIN
        with np.errstate(over="ignore"):
            return Value(np.asarray(-x), _or_null(v.null, over if over.any() else None))
    return Value(np.asarray(-x), v.null)


def _int_arith(op: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x op y`` wrapped to int64, and where it overflowed (sign and quotient tests)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if op == "+":
            r = np.asarray(x + y)
            return r, np.asarray(((x ^ r) & (y ^ r)) < 0)
        if op == "-":
            r = np.asarray(x - y)
            return r, np.asarray(((x ^ y) & (x ^ r)) < 0)
        r = np.asarray(x * y)
        wrong = (r // np.where(x == 0, 1, x)) != y
        return r, np.asarray((x != 0) & (wrong | ((x == -1) & (y == _INT64_MIN))))


def _arith(node: n.Arith, cols: Columns) -> Value:
    a, b = evaluate(node.left, cols), evaluate(node.right, cols)
    null = _or_null(a.null, b.null)
    x, y = np.asarray(a.data), np.asarray(b.data)
    if node.op != "/" and x.dtype.kind == "i" and y.dtype.kind == "i":
        out, over = _int_arith(node.op, x, y)
        return Value(out, _or_null(null, over if over.any() else None))
    if node.op != "/":
        x, y = x.astype(np.float64), y.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            out = x + y if node.op == "+" else x - y if node.op == "-" else x * y
        return Value(np.asarray(out), null)
    zero = np.asarray(b.data) == 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.true_divide(a.data, np.where(zero, 1, b.data))
    return Value(out, _or_null(null, zero if zero.any() else None))


def _compare(node: n.Compare, cols: Columns) -> Value:
    a, b = evaluate(node.left, cols), evaluate(node.right, cols)
    x, y = np.asarray(a.data), np.asarray(b.data)
    with np.errstate(invalid="ignore"):
        if x.dtype.kind == "i" and y.dtype.kind == "f":
            data = _compare_int_float(node.op, x, y)
        elif x.dtype.kind == "f" and y.dtype.kind == "i":
            data = _compare_int_float(_SWAPPED[node.op], y, x)
        else:
            data = _COMPARE[node.op](a.data, b.data)
    return Value(np.asarray(data, dtype=bool), _or_null(a.null, b.null))


def _compare_int_float(op: str, i: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``i op f`` exactly: where the int rounds to the float, compare as integers."""
    compare = _COMPARE[op]
    if i.ndim == 0 and abs(int(i)) <= 2**53:  # `snr > 5`: the float of i is exact
        return np.asarray(compare(np.float64(i), f), dtype=bool)
    rounded = i.astype(np.float64)
    out = np.array(compare(rounded, f), dtype=bool)
    tie = np.asarray(rounded == f)
    if tie.any():  # f is then integral, in [-2^63, 2^63]
        i_b, f_b = np.broadcast_arrays(i, f)
        iv, fv = i_b[tie], f_b[tie]
        top = fv >= _TWO_63  # above every int64: decide as 0 against 1
        out[tie] = compare(np.where(top, 0, iv), np.where(top, 1, np.where(top, 0, fv)
                                                          .astype(np.int64)))
    return out


def _not(node: n.Not, cols: Columns) -> Value:
    v = evaluate(node.operand, cols)
    return Value(~np.asarray(v.data, dtype=bool), v.null)


def _boolop(node: n.BoolOp, cols: Columns) -> Value:
    # Kleene logic with (true, unknown) masks: definite = data & ~null
    values = [evaluate(o, cols) for o in node.operands]
    nulls = [v.null for v in values if v.null is not None]
    null_any = functools.reduce(operator.or_, nulls) if nulls else None
    if node.op == "and":
        false_any = functools.reduce(operator.or_, [
            ~d if v.null is None else (~d & ~v.null)
            for v, d in ((v, np.asarray(v.data, dtype=bool)) for v in values)])
        null = None if null_any is None else (null_any & ~false_any)
        return Value(~false_any, null)
    true_any = functools.reduce(operator.or_, [
        d if v.null is None else (d & ~v.null)
        for v, d in ((v, np.asarray(v.data, dtype=bool)) for v in values)])
    null = None if null_any is None else (null_any & ~true_any)
    return Value(true_any, null)


def _inlist(node: n.InList, cols: Columns) -> Value:
    v = evaluate(node.operand, cols)
    if node.operand.type == "number":  # exact: no value is rounded to the other's type
        x = np.asarray(v.data)
        ints = [k for k in node.values if isinstance(k, int)]
        floats = [k for k in node.values if isinstance(k, float)]
        if x.dtype.kind == "i":
            wanted = np.array(ints + [int(k) for k in floats if k.is_integer()
                                      and -_TWO_63 <= k < _TWO_63], dtype=np.int64)
        else:
            wanted = np.array(floats + [float(k) for k in ints if int(float(k)) == k],
                              dtype=np.float64)
        data = np.isin(x, wanted)
    else:
        members = frozenset(node.values)
        flat = np.atleast_1d(v.data)
        data = np.fromiter((x in members for x in flat), dtype=bool, count=flat.size)
        data = data.reshape(np.shape(v.data))
    return Value(~data if node.negate else data, v.null)


def _isnull(node: n.IsNull, cols: Columns) -> Value:
    v = evaluate(node.operand, cols)
    null = np.zeros(np.shape(v.data), dtype=bool) if v.null is None else v.null
    return Value(~null if node.negate else null)


def _aggregate(node: n.Aggregate, cols: Columns) -> Value:
    seg = cols.segments[node.array]
    mask = np.ones(seg.shape, dtype=bool)
    if node.where is not None:
        w = evaluate(node.where, cols)
        wd = np.broadcast_to(np.asarray(w.data, dtype=bool), seg.shape)
        mask &= wd if w.null is None else (wd & ~w.null)
    values = None
    if node.value is not None:
        v = evaluate(node.value, cols)
        values = np.broadcast_to(np.asarray(v.data, dtype=np.float64), seg.shape)
        if v.null is not None:
            mask &= ~v.null
    picked = seg[mask]
    count = np.bincount(picked, minlength=cols.n)
    if node.func == "count":
        return Value(count)
    empty = count == 0
    null = empty if empty.any() else None
    assert values is not None
    chosen = values[mask]
    if node.func in ("sum", "mean"):
        total = np.bincount(picked, weights=chosen, minlength=cols.n)
        if node.func == "sum":
            return Value(total, null)
        with np.errstate(divide="ignore", invalid="ignore"):
            return Value(total / np.maximum(count, 1), null)
    if node.func == "min":
        out = np.full(cols.n, np.inf)
        np.minimum.at(out, picked, chosen)
    else:
        out = np.full(cols.n, -np.inf)
        np.maximum.at(out, picked, chosen)
    return Value(out, null)


def _func(node: n.Func, cols: Columns) -> Value:
    v = evaluate(node.arg, cols)
    data = np.asarray(v.data, dtype=np.float64)
    if node.name == "abs":
        return Value(np.abs(data), v.null)
    bad = data <= 0 if node.name != "sqrt" else data < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if node.name == "sqrt":
            out = np.sqrt(data)
        elif node.name == "log10":
            out = np.log10(data)
        else:  # AB magnitude of a flux in nJy
            out = -2.5 * np.log10(data) + _ZERO_POINT_NJY
    return Value(out, _or_null(v.null, bad if np.any(bad) else None))


def _within(node: n.Within, cols: Columns) -> Value:
    ra = np.radians(cols.values[node.ra].data)
    dec = np.radians(cols.values[node.dec].data)
    ra0, dec0 = np.radians(node.center_ra), np.radians(node.center_dec)
    # haversine: accurate at small separations, where cone searches live
    h = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec) * np.cos(dec0) * np.sin((ra - ra0) / 2) ** 2
    sep = 2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    with np.errstate(invalid="ignore"):
        return Value(sep <= np.radians(node.radius_deg))


def _since_first(node: n.SinceFirst, cols: Columns) -> Value:
    now = np.asarray(cols.values[node.now].data, dtype=np.float64)
    first = now.copy()
    seg = cols.segments[node.array]
    hist = cols.values[node.history]
    times = np.asarray(hist.data, dtype=np.float64)
    ok = ~np.isnan(times) if hist.null is None else ~hist.null
    np.minimum.at(first, seg[ok], times[ok])
    return Value(now - first)


# each evaluator takes its own node type: Callable's parameter cannot say so per key
_DISPATCH: dict[type[n.Node], Callable[[Any, Columns], Value]] = {
    n.Const: _const, n.Col: _col, n.Neg: _neg, n.Arith: _arith, n.Compare: _compare,
    n.Not: _not, n.BoolOp: _boolop, n.InList: _inlist, n.IsNull: _isnull,
    n.Aggregate: _aggregate, n.Func: _func, n.Within: _within, n.SinceFirst: _since_first,
}
