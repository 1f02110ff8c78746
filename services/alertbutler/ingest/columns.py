"""Alert messages -> L1 rows a batch at a time, with no Python object per alert.

Building rows from fully decoded alert records costs ~200 us per alert: every field of every
history source becomes a Python object, and then a dict value in a row. The L1 database keeps
only some of those fields, and none of the cutouts. So the columns it stores are compiled
once per writer schema into a program for the filter service's columnar decoder
(:mod:`alertbutler.subscribe.columnar`), which walks a whole batch in one compiled call and
writes numbers into numpy columns; the columns become Arrow tables for
:class:`~alertbutler.l1db.RowBatch` (checked and de-duplicated there as any rows are).

Rows come from the same places as :func:`alertbutler.l1db.rows_from_alerts`: ``diaSource``
and ``prvDiaSources`` -> DiaSource, ``prvDiaForcedSources`` -> DiaForcedSource,
``diaObject`` -> DiaObject, ``ssSource`` -> SSSource. One difference: a NaN float is stored
as null (numpy columns use NaN for null, as the library's numpy input does).

Returns None when the batch does not fit the program (a corrupt or foreign message): the
caller then decodes message by message, which names the bad one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from alertbutler.l1db import RowBatch
from alertbutler.l1db.schema import CATALOG

log = logging.getLogger(__name__)

#: catalog table -> the alert paths its rows come from ("*": each entry of an array)
SOURCES: dict[str, tuple[tuple[str, ...], ...]] = {
    "DiaSource": (("diaSource",), ("prvDiaSources", "*")),
    "DiaForcedSource": (("prvDiaForcedSources", "*"),),
    "DiaObject": (("diaObject",),),
    "SSSource": (("ssSource",),),
}
_KINDS = {"long": ("number", True), "int": ("number", True), "float": ("number", False),
          "double": ("number", False), "boolean": ("boolean", False),
          "string": ("string", False)}
_ARROW = {"number": None, "boolean": pa.bool_(), "string": pa.string()}


class AlertRowDecoder:
    """Decode batches of one alert writer schema into the rows the L1 database stores."""

    def __init__(self, writer: dict[str, Any]) -> None:
        from alertbutler.subscribe.columnar import ColumnarDecoder
        from alertbutler.subscribe.filters.nodes import ColumnSpec

        named = _named_types(writer)
        specs: list[ColumnSpec] = []
        #: (table, path, whether the path is a nullable record, the columns read)
        self._parts: list[tuple[str, tuple[str, ...], bool, list[str]]] = []
        for table, paths in SOURCES.items():
            wanted = {c.name for c in CATALOG[table][0]}
            for path in paths:
                found = _record_at(writer, path, named)
                if found is None:
                    continue
                fields, nullable = found
                names = []
                for name, avro in fields.items():
                    kind = _KINDS.get(avro)
                    if name in wanted and kind is not None:
                        specs.append(ColumnSpec((*path, name), kind[0], kind[1]))
                        names.append(name)
                if nullable:  # presence of the record itself
                    specs.append(ColumnSpec(path, "bytes"))
                self._parts.append((table, path, nullable, names))
        self._decoder = ColumnarDecoder(writer, specs)

    def rows(self, messages: Sequence[bytes]) -> RowBatch | None:
        """The rows of ``messages`` (wire format, this decoder's schema), or None when one of
        them does not fit the schema. Impossible values raise
        :class:`~alertbutler.l1db.RowError` (as :func:`~alertbutler.l1db.rows_from_alerts`)."""
        cols, bad = self._decoder.decode(messages)
        if bad is not None:
            return None
        tables: dict[str, list[pa.Table]] = {}
        for table, path, nullable, names in self._parts:
            arrays = {name: _arrow(cols.values[(*path, name)]) for name in names}
            n = len(cols.segments[path]) if path[-1] == "*" else cols.n
            part = pa.table(arrays) if arrays else pa.table({"_": pa.nulls(n)})
            if nullable:
                present = cols.values[path].null
                if present is not None:
                    part = part.filter(pa.array(~present))
            if part.num_rows:
                tables.setdefault(table, []).append(part)

        def joined(table: str) -> pa.Table | None:
            parts = tables.get(table)
            if not parts:
                return None
            return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

        return RowBatch.build(objects=joined("DiaObject"), sources=joined("DiaSource"),
                              forced_sources=joined("DiaForcedSource"),
                              ss_sources=joined("SSSource"))


def _arrow(value: Any) -> pa.Array:
    data, null = value.data, value.null
    if data.dtype == object:
        return pa.array(data, type=pa.string())
    if data.dtype == np.float64 and null is not None:
        return pa.array(data, mask=null)  # NaN marks null here
    return pa.array(data, mask=null) if null is not None else pa.array(data)


def _named_types(schema: Any) -> dict[str, Any]:
    """Every named record of a schema by full and short name."""
    named: dict[str, Any] = {}

    def walk(node: Any, ns: str) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch, ns)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind == "record":
                ns = node.get("namespace", ns)
                name = node["name"]
                named[name if "." in name or not ns else f"{ns}.{name}"] = node
                named.setdefault(name.rsplit(".", 1)[-1], node)
                for f in node.get("fields", ()):
                    walk(f["type"], ns)
            elif kind == "array":
                walk(node["items"], ns)

    walk(schema, schema.get("namespace", "") if isinstance(schema, dict) else "")
    return named


def _record_at(writer: dict[str, Any], path: tuple[str, ...], named: dict[str, Any]
               ) -> tuple[dict[str, str], bool] | None:
    """The primitive fields (name -> Avro type) of the record at ``path`` and whether the
    record may be null; None when the schema has no record there."""
    node: Any = writer
    nullable = False
    for step in path:
        node = _resolve(node, named)
        if step == "*":
            if not (isinstance(node, dict) and node.get("type") == "array"):
                return None
            node = node["items"]
            continue
        if not (isinstance(node, dict) and node.get("type") == "record"):
            return None
        match = [f for f in node["fields"] if f["name"] == step]
        if not match:
            return None
        node = match[0]["type"]
        if isinstance(node, list):
            nullable = "null" in node
    node = _resolve(node, named)
    if not (isinstance(node, dict) and node.get("type") == "record"):
        return None
    fields = {}
    for f in node["fields"]:
        t = _resolve(f["type"], named)
        if isinstance(t, dict):
            t = t.get("type")
        if isinstance(t, str):
            fields[f["name"]] = t
    return fields, nullable and path[-1] != "*"


def _resolve(node: Any, named: dict[str, Any]) -> Any:
    """A type with ``[null, T]`` unions reduced to T and names to their definitions."""
    if isinstance(node, list):
        rest = [b for b in node if b != "null"]
        node = rest[0] if len(rest) == 1 else node
    if isinstance(node, str) and node in named:
        node = named[node]
    return node
