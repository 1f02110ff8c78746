"""The shape of an alert record (alert schema 1.x, after Rubin's lsst.v11), for type checking.

Alerts travel as plain dicts (what fastavro writes and reads); this TypedDict names the
top-level fields so code that builds or reads an alert is checked against the schema's
field names. The nested records (diaSource, diaObject, ...) stay ``dict[str, Any]``: they
hold a hundred-odd columns whose source of truth is the Avro schema itself.
"""

from __future__ import annotations

from typing import Any, TypedDict


class AlertRecord(TypedDict):
    """One alert: a new DIASource with its object, history and cutouts."""

    diaSourceId: int
    observation_reason: str | None
    target_name: str | None
    diaSource: dict[str, Any]
    prvDiaSources: list[dict[str, Any]] | None
    prvDiaForcedSources: list[dict[str, Any]] | None
    diaObject: dict[str, Any] | None
    ssSource: dict[str, Any] | None
    cutoutDifference: bytes | None
    cutoutScience: bytes | None
    cutoutTemplate: bytes | None
