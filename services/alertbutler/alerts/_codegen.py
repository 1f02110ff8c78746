"""What the generated Avro reader and writer share: a module of one function per record type.

:mod:`._fastread` and :mod:`._fastwrite` walk a schema the same way and differ only in the
lines they emit for a value; the bookkeeping (constants handed to the module, fresh
temporaries, one function per record name emitted once, recursion included) lives here.
"""

from __future__ import annotations

from typing import Any


class RecordCodeGen:
    """Collects the source lines of the generated functions; subclasses say what a record does."""

    #: prefixes of the temporaries and the record functions, and the functions' parameters
    tmp_prefix = "x"
    func_prefix = "_r"
    params = "d, i"

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.funcs: dict[str, str] = {}  # record full name -> function name
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.counter = 0

    def const(self, value: Any) -> str:
        """A name for ``value`` in the generated module's namespace."""
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def tmp(self) -> str:
        self.counter += 1
        return f"{self.tmp_prefix}{self.counter}"

    def record_func(self, schema: dict[str, Any]) -> str:
        """The function for the record ``schema``, emitted on first use (named first: recursion)."""
        full = schema["name"]
        if full in self.funcs:
            return self.funcs[full]
        fname = f"{self.func_prefix}{len(self.funcs)}"
        self.funcs[full] = fname
        body = self.record_body(schema)
        self.lines.append(f"def {fname}({self.params}):")
        self.lines.extend("    " + line for line in body or ["pass"])
        self.lines.append("")
        return fname

    def record_body(self, schema: dict[str, Any]) -> list[str]:
        """The lines of the function for the record ``schema``."""
        raise NotImplementedError
