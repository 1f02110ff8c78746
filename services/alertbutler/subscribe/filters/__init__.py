"""The filter language: text -> a checked, vectorized :class:`Filter`. Never Python eval.

    diaSource.snr > 5 and band in ['g', 'r']
    count(prvDiaSources where band == 'g' and snr > 5) >= 3
    within(150.1, 2.2, 30) and days_since_first_detection() < 10
    mag(diaSource.psfFlux) < 21 and diaObject is not null

See docs/subscribe.md for the grammar, the null rules and the limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from alertbutler.subscribe.errors import FilterError
from alertbutler.subscribe.filters.columns import Columns
from alertbutler.subscribe.filters.compiler import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_LIST_ITEMS,
    MAX_NUMBER_CHARS,
    MAX_STRING_CHARS,
    compile_tree,
)
from alertbutler.subscribe.filters.evaluate import keep
from alertbutler.subscribe.filters.nodes import ColumnSpec
from alertbutler.subscribe.filters.schema import RecordType, alert_record_type, record_type


class Filter:
    """One compiled filter: compile once, then :meth:`keep` batches of decoded alerts."""

    def __init__(self, text: str, *, name: str | None = None,
                 schema: RecordType | Mapping[str, Any] | None = None) -> None:
        if schema is None:
            schema = alert_record_type()
        elif not isinstance(schema, RecordType):
            schema = record_type(schema)
        compiled = compile_tree(text, schema)
        self.text = text
        self.name = name or text
        self._root = compiled.root
        self.columns: frozenset[ColumnSpec] = compiled.columns

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"

    def keep(self, batch: Sequence[Mapping[str, Any]] | Columns) -> np.ndarray:
        """A boolean array: which alerts of the batch the filter keeps."""
        cols = batch if isinstance(batch, Columns) else Columns.from_records(batch,
                                                                             self.columns)
        return keep(self._root, cols)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """One alert (convenient, not fast: use :meth:`keep` on batches)."""
        return bool(self.keep([record])[0])


def compile_filter(text: str, *, name: str | None = None,
                   schema: RecordType | Mapping[str, Any] | None = None) -> Filter:
    """Compile ``text`` against the alert schema; a refusal raises :class:`FilterError`."""
    return Filter(text, name=name, schema=schema)


class FilterSet:
    """Many named filters over one batch: the columns they need are built once."""

    def __init__(self, filters: Mapping[str, Filter] | Iterable[Filter]) -> None:
        items = filters.items() if isinstance(filters, Mapping) else \
            ((f.name, f) for f in filters)
        self.filters: dict[str, Filter] = dict(items)
        self.columns: frozenset[ColumnSpec] = frozenset().union(
            *(f.columns for f in self.filters.values()))

    def __len__(self) -> int:
        return len(self.filters)

    def keep(self, batch: Sequence[Mapping[str, Any]] | Columns) -> dict[str, np.ndarray]:
        cols = batch if isinstance(batch, Columns) else Columns.from_records(batch,
                                                                             self.columns)
        return {name: f.keep(cols) for name, f in self.filters.items()}


__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_LIST_ITEMS",
    "MAX_NUMBER_CHARS",
    "MAX_STRING_CHARS",
    "ColumnSpec",
    "Columns",
    "Filter",
    "FilterError",
    "FilterSet",
    "RecordType",
    "alert_record_type",
    "compile_filter",
    "record_type",
]
