"""A batch of decoded alerts as numpy columns: only the fields the filters read, built once.

Numbers become float64 (NaN for null: a NaN value and a null behave alike) or int64 with a
null mask (so 64-bit ids compare exactly); strings become object arrays; an array field
(``prvDiaSources``) becomes a segment id per entry, and its fields flat columns over all
entries of the batch, so aggregates are one ``bincount`` or ``ufunc.at`` per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alertbutler.subscribe.filters.nodes import ColumnKey, ColumnSpec


@dataclass(frozen=True, slots=True)
class Value:
    """An array of values and a null mask (None: nothing is null)."""

    data: Any
    null: np.ndarray | None = None


class Columns:
    """The columns of one batch, keyed by field path; ``n`` rows."""

    def __init__(self, n: int, values: dict[ColumnKey, Value],
                 segments: dict[ColumnKey, np.ndarray]) -> None:
        self.n = n
        self.values = values
        self.segments = segments

    @classmethod
    def from_records(cls, records: Sequence[Any], specs: Iterable[ColumnSpec]) -> Columns:
        specs = sorted(set(specs), key=lambda s: (len(s.key), s.key))
        n = len(records)
        values: dict[ColumnKey, Value] = {}
        segments: dict[ColumnKey, np.ndarray] = {}
        entries: dict[ColumnKey, list[Any]] = {}
        for spec in specs:
            key = spec.key
            if "*" in key:
                star = key.index("*")
                array_key = key[: star + 1]
                if array_key not in entries:
                    lists = [v or () for v in _scalar(records, key[:star])]
                    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=n)
                    segments[array_key] = np.repeat(np.arange(n, dtype=np.int64), lengths)
                    entries[array_key] = [item for lst in lists for item in lst]
                if spec.kind != "array":
                    raw = _scalar(entries[array_key], key[star + 1:])
                    values[key] = _to_value(raw, spec)
            else:
                values[key] = _to_value(_scalar(records, key), spec)
        return cls(n, values, segments)


def _scalar(records: Sequence[Any], path: ColumnKey) -> list[Any]:
    """The value at ``path`` in each record; None where a record on the way is null."""
    if len(path) == 1:
        (a,) = path
        return [r.get(a) for r in records]
    if len(path) == 2:
        a, b = path
        return [None if (x := r.get(a)) is None else x.get(b) for r in records]
    out = []
    for r in records:
        v = r
        for name in path:
            if v is None:
                break
            v = v.get(name)
        out.append(v)
    return out


def _to_value(raw: list[Any], spec: ColumnSpec) -> Value:
    n = len(raw)
    if spec.kind == "number":
        if spec.integer:
            try:
                return Value(np.array(raw, dtype=np.int64))
            except TypeError:  # some are null
                null = np.fromiter((v is None for v in raw), dtype=bool, count=n)
                return Value(np.array([0 if v is None else v for v in raw], dtype=np.int64),
                             null)
        data = np.array(raw, dtype=np.float64)  # None -> NaN
        null = np.isnan(data)
        return Value(data, null if null.any() else None)
    if spec.kind == "boolean":
        null = np.fromiter((v is None for v in raw), dtype=bool, count=n)
        data = np.fromiter((bool(v) for v in raw), dtype=bool, count=n)
        return Value(data, null if null.any() else None)
    null = np.fromiter((v is None for v in raw), dtype=bool, count=n)
    if spec.kind != "string":  # records, lists, bytes: only whether they are null is read
        return Value(np.zeros(n, dtype=bool), null if null.any() else None)
    data = np.empty(n, dtype=object)
    for i, v in enumerate(raw):  # element-wise: never let numpy look inside a value
        data[i] = v
    return Value(data, null if null.any() else None)
