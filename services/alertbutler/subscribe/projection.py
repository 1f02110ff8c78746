"""Decode only what the filters read: a reader schema pruned to the needed fields.

Avro is sequential, so the bytes of unneeded fields are still walked, but fastavro skips
them (its compiled skip routines) instead of building Python objects: cutouts become a
length read and a seek, unread history fields a few varints each. The writer schema is
chosen by the message's schema id, so alerts of older schema versions decode too.

Named records used in several places (``diaSource`` is the detection and each history
entry) get one pruned definition holding the union of the fields needed anywhere.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, cast

import fastavro
from fastavro import schemaless_reader

from alertbutler.subscribe.filters.nodes import ColumnSpec

Needs = dict[str, "Needs"]


def needs_of(specs: Iterable[ColumnSpec], always: Iterable[tuple[str, ...]] = (
        ("diaSourceId",), ("alertId",), ("candid",))) -> Needs:
    """The tree of field names to keep (``"*"`` steps removed: an array keeps its items)."""
    root: Needs = {}
    for key in [*(s.key for s in specs), *always]:
        node = root
        for name in key:
            if name == "*":
                continue
            node = node.setdefault(name, {})
    return root


def reader_schema(writer: dict[str, Any], needs: Needs) -> dict[str, Any]:
    """A reader schema (plain JSON) holding only ``needs`` out of the ``writer`` schema."""
    named: dict[str, dict[str, Any]] = {}
    _collect(writer, writer.get("namespace", ""), named)
    wanted: dict[str, set[str]] = {}
    _want(writer, needs, writer.get("namespace", ""), named, wanted)
    return _emit(writer, writer.get("namespace", ""), named, wanted, set())


def _full(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _collect(schema: Any, ns: str, named: dict[str, dict[str, Any]]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, ns, named)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            ns = schema.get("namespace", ns)
            named[_full(schema["name"], ns)] = {**schema, "_ns": ns}
            for fld in schema.get("fields", ()):
                _collect(fld["type"], ns, named)
        elif kind == "array":
            _collect(schema["items"], ns, named)
        elif kind == "map":
            _collect(schema["values"], ns, named)


def _resolve(schema: Any, ns: str, named: dict[str, dict[str, Any]]) -> tuple[Any, str]:
    if isinstance(schema, str) and _full(schema, ns) in named:
        target = named[_full(schema, ns)]
        return target, target["_ns"]
    if isinstance(schema, str) and schema in named:
        return named[schema], named[schema]["_ns"]
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
        return schema, schema.get("namespace", ns)
    return schema, ns


def _want(schema: Any, needs: Needs, ns: str, named: dict[str, dict[str, Any]],
          wanted: dict[str, set[str]]) -> None:
    schema, ns = _resolve(schema, ns, named)
    if isinstance(schema, list):
        for branch in schema:
            _want(branch, needs, ns, named, wanted)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "array":
            _want(schema["items"], needs, ns, named, wanted)
        elif kind == "record":
            full = _full(schema["name"], ns)
            names = wanted.setdefault(full, set())
            for fld in schema["fields"]:
                if fld["name"] in needs:
                    names.add(fld["name"])
                    _want(fld["type"], needs[fld["name"]], ns, named, wanted)


def _emit(schema: Any, ns: str, named: dict[str, dict[str, Any]],
          wanted: dict[str, set[str]], defined: set[str]) -> Any:
    resolved, rns = _resolve(schema, ns, named)
    if isinstance(resolved, list):
        return [_emit(b, ns, named, wanted, defined) for b in resolved]
    if not isinstance(resolved, dict):
        return resolved  # a primitive
    kind = resolved.get("type")
    if kind == "array":
        return {"type": "array", "items": _emit(resolved["items"], rns, named, wanted, defined)}
    if kind == "map":
        return {"type": "map", "values": _emit(resolved["values"], rns, named, wanted, defined)}
    if kind in ("record", "enum", "fixed"):
        full = _full(resolved["name"], rns)
        if full in defined:
            return full
        defined.add(full)
        if kind != "record":
            return {k: v for k, v in resolved.items() if k not in ("_ns", "namespace")} | {
                "name": full}
        keep = wanted.get(full, set())
        fields = [{"name": f["name"], "type": _emit(f["type"], rns, named, wanted, defined),
                   **({"default": f["default"]} if "default" in f else {})}
                  for f in resolved["fields"] if f["name"] in keep]
        return {"type": "record", "name": full, "fields": fields}
    if isinstance(kind, str | list | dict):
        return _emit(kind, rns, named, wanted, defined)
    return resolved


class ProjectionDecoder:
    """Decode wire-format alerts to records holding only the needed fields.

    Returns None for messages of other kinds (end-of-visit markers), as the stream expects.
    """

    def __init__(self, specs: Iterable[ColumnSpec], writers: Any = None) -> None:
        from alertbutler.alerts.writers import default_writers

        self.needs = needs_of(specs)
        self.writers = writers or default_writers()
        self._readers: dict[int, tuple[Any, Any] | None] = {}

    def _pair(self, schema_id: int) -> tuple[Any, Any] | None:
        writer = self.writers.get(schema_id)
        if writer.kind != "alert":
            return None
        reader = fastavro.parse_schema(reader_schema(writer.schema, self.needs))
        return writer.parsed, reader

    def __call__(self, value: bytes) -> dict[str, Any] | None:
        from alertbutler.alerts import split_header

        schema_id, body = split_header(value)
        try:
            pair = self._readers[schema_id]
        except KeyError:
            pair = self._readers[schema_id] = self._pair(schema_id)
        if pair is None:
            return None
        # fastavro types a datum as any Avro value; the projection is a record schema
        return cast(dict[str, Any], schemaless_reader(io.BytesIO(body), pair[0], pair[1]))
