"""Alert assembly: a DiaSource, its object, its history and three cutouts into one packet.

Records use the alert schema's field names. Every nullable field the pipeline does not fill
is set to None from the schema itself, so a new optional field in the schema needs no change
here. Nothing here reads a clock: the one processing timestamp (``timeProcessedMjdTai``) is
passed in by the caller from its injectable clock, and tests compare alerts without it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from alertbutler.alerts import load_schema
from alertbutler.alerts.records import AlertRecord

#: fields that carry wall-clock processing time: the only ones allowed to differ on a re-run
PROCESSING_TIME_FIELDS = ("timeProcessedMjdTai",)


@functools.cache
def _record_fields(record_name: str) -> tuple[tuple[str, bool, Any], ...]:
    """(name, nullable, default) of each field of a named record of the alert schema."""
    found: dict[str, Any] = {}

    def walk(schema: Any) -> None:
        if isinstance(schema, dict):
            if schema.get("type") == "record":
                found.setdefault(schema["name"].rsplit(".", 1)[-1], schema)
                for f in schema["fields"]:
                    walk(f["type"])
            elif schema.get("type") == "array":
                walk(schema["items"])
        elif isinstance(schema, list):
            for branch in schema:
                walk(branch)

    walk(load_schema("alert"))
    record = found[record_name]
    out = []
    for f in record["fields"]:
        t = f["type"]
        nullable = isinstance(t, list) and "null" in t
        out.append((f["name"], nullable, f.get("default")))
    return tuple(out)


def complete(record_name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every missing nullable field of ``record_name`` set to None.

    A missing non-nullable field raises ``KeyError`` naming it: that is a pipeline bug.
    """
    out: dict[str, Any] = {}
    for name, nullable, default in _record_fields(record_name):
        if name in values:
            out[name] = values[name]
        elif nullable:
            out[name] = None
        elif default is not None:
            out[name] = default
        else:
            raise KeyError(f"{record_name} record lacks required field {name!r}")
    return out


def forced_source_record(values: Mapping[str, Any]) -> dict[str, Any]:
    return complete("diaForcedSource", values)


def assemble_alert(*, dia_source: Mapping[str, Any], dia_object: Mapping[str, Any] | None,
                   prv_sources: Sequence[Mapping[str, Any]],
                   prv_forced: Sequence[Mapping[str, Any]],
                   cutouts: tuple[bytes | None, bytes | None, bytes | None]) -> AlertRecord:
    """One alert packet; history is sorted by time so the packet does not depend on query
    order."""
    source = complete("diaSource", dia_source)
    difference, science, template = cutouts
    return {
        "diaSourceId": source["diaSourceId"],
        "observation_reason": None,
        "target_name": None,
        "diaSource": source,
        "prvDiaSources": [complete("diaSource", s) for s in
                          sorted(prv_sources, key=lambda s: (s["midpointMjdTai"],
                                                             s["diaSourceId"]))],
        "prvDiaForcedSources": [complete("diaForcedSource", s) for s in
                                sorted(prv_forced, key=lambda s: (s["midpointMjdTai"],
                                                                  s["diaForcedSourceId"]))],
        "diaObject": None if dia_object is None else complete("diaObject", dia_object),
        "ssSource": None,
        "cutoutDifference": difference,
        "cutoutScience": science,
        "cutoutTemplate": template,
    }


def without_processing_times(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert with processing timestamps removed, for comparing two runs."""

    def strip(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: strip(v) for k, v in value.items() if k not in PROCESSING_TIME_FIELDS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(alert)


def sorted_alerts(alerts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(alerts, key=lambda a: a["diaSourceId"])
