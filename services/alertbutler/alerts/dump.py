"""Alerts as JSON: for people and for ``jq``. Cutouts (and any other bytes) are summarized."""

from __future__ import annotations

import base64
import datetime
import json
import math
from collections.abc import Mapping
from typing import Any

from alertbutler.alerts.cutouts import summarize_cutout

CUTOUT_FIELDS = ("cutoutDifference", "cutoutScience", "cutoutTemplate")


def jsonable(record: Any, *, cutouts: str = "summary") -> Any:
    """A JSON-ready copy of a decoded record.

    ``cutouts``: ``"summary"`` (size, shape, centre, flux range), ``"omit"`` (null) or
    ``"base64"`` (the FITS bytes, encoded). Other bytes become their length; datetimes ISO
    text; non-finite floats their names as strings, since JSON has no NaN.
    """
    return _convert(record, cutouts, None)


def _convert(value: Any, cutouts: str, name: str | None) -> Any:
    if isinstance(value, Mapping):
        return {k: _convert(v, cutouts, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_convert(v, cutouts, None) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if name in CUTOUT_FIELDS:
            if cutouts == "omit":
                return None
            if cutouts == "base64":
                return base64.b64encode(data).decode()
            return summarize_cutout(data)
        return {"bytes": len(data)}
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
