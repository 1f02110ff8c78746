"""Filters compiled against each stream's own schema, evaluated over a batch of any schemas.

A filter is text; which fields exist depends on the alerts it meets: ``candidate.magpsf`` on
a ZTF stream, any of the ~100 diaSource fields on a Rubin stream, ours on ours. So a
:class:`Selector` compiles each filter once per writer schema it meets (found by wire id,
:class:`~alertbutler.alerts.writers.WriterSchemas`), and a field that schema lacks is an
error naming the field and the schema. A batch is split by schema id; each part is decoded
once, into the columns its schema's filters need, by the fastest correct path
(:class:`~alertbutler.subscribe.batch.BatchDecoder`).

Before any alert arrives, :meth:`Selector.check` refuses a filter that fits no schema known
here (ours, Rubin's, the local ids of replayed archives): syntax errors and plain typos are
said at once, before the stream is opened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from alertbutler.alerts import UnknownSchemaError
from alertbutler.alerts.writers import (
    Writer,
    WriterSchemas,
    rubin_versions,
    rubin_writer,
    writers_for,
)
from alertbutler.subscribe.batch import BatchDecoder
from alertbutler.subscribe.errors import FilterError
from alertbutler.subscribe.filters import Filter, FilterSet, compile_filter

log = logging.getLogger(__name__)

#: the name under which a selector without filters keeps every alert
ALL = ""

__all__ = ["ALL", "Selection", "Selector", "compile_any", "writers_for"]


@dataclass
class Selection:
    """What a batch holds: per filter, the indices (into the batch) of the alerts it keeps;
    the key of each decoded alert (its id as text; None where its schema has no id field,
    or it was not decoded); the messages that could not be decoded, with the reason."""

    kept: dict[str, np.ndarray]
    keys: list[bytes | None]
    bad: list[tuple[int, str]] = field(default_factory=list)


def compile_any(text: str, writers: WriterSchemas, *, name: str | None = None
                ) -> tuple[Filter, Writer | None]:
    """``text`` compiled against the first schema known here that it fits: our current
    alert schema (None), every Rubin version installed, the local ids of replayed archives.
    A syntax, type or size error is the same on every schema and raised at once; a filter
    that fits none raises the error of our own schema."""
    candidates: list[Writer | None] = [None]
    candidates += [w for m, n in rubin_versions() if (w := rubin_writer(m * 100 + n))]
    if writers.local_ids is not None:
        from alertbutler.alerts.writers import read_local_ids

        try:
            local = read_local_ids(writers.local_ids) if writers.local_ids.exists() else {}
        except UnknownSchemaError:
            local = {}
        candidates += [writers.get(i) for i in local]
    first: FilterError | None = None
    for writer in candidates:
        try:
            return compile_filter(text, name=name, schema=writer.schema if writer else None), \
                writer
        except FilterError as exc:
            first = first or exc
            if "unknown field" not in exc.reason and "has no" not in exc.reason:
                raise
    assert first is not None
    raise first


def _on_schema(exc: FilterError, name: str, writer: Writer) -> FilterError:
    return FilterError(f"filter {name!r} on {writer.name} alerts (schema id {writer.id}): "
                       f"{exc.reason}", text=exc.text, position=exc.position,
                       suggestion=exc.suggestion)


class Selector:
    """Filters by name (empty: keep every alert) over batches of wire-format messages.

    ``on_refused(name, error)`` is called when a filter does not compile against a schema it
    meets; by default the error is raised. A refused filter keeps nothing of that schema.
    """

    def __init__(self, texts: Mapping[str, str], writers: WriterSchemas, *,
                 on_refused: Callable[[str, FilterError], None] | None = None) -> None:
        self.texts = dict(texts)
        self.writers = writers
        self.on_refused = on_refused
        self._per_writer: dict[int, tuple[FilterSet | None, BatchDecoder]] = {}

    def check(self) -> None:
        """Refuse (FilterError) a filter that compiles against no schema known here."""
        for name, text in self.texts.items():
            compile_any(text, self.writers, name=name)

    def _for(self, writer: Writer) -> tuple[FilterSet | None, BatchDecoder]:
        found = self._per_writer.get(writer.id)
        if found is None:
            filters: dict[str, Filter] = {}
            for name, text in self.texts.items():
                try:
                    filters[name] = compile_filter(text, name=name, schema=writer.schema)
                except FilterError as exc:
                    error = _on_schema(exc, name, writer)
                    if self.on_refused is None:
                        raise error from None
                    self.on_refused(name, error)
            fset = FilterSet(filters) if self.texts else None
            found = (fset, BatchDecoder(fset.columns if fset else (), self.writers))
            self._per_writer[writer.id] = found
            log.info("filters compiled for %s (schema id %d)", writer.name, writer.id)
        return found

    def select(self, values: Sequence[bytes]) -> Selection:
        groups: dict[int, list[int]] = {}
        bad: list[tuple[int, str]] = []
        for i, value in enumerate(values):
            if len(value) < 5 or value[0] != 0:
                bad.append((i, "not in the Confluent wire format (no magic byte 0 and "
                            "4-byte schema id)"))
            else:
                groups.setdefault(int.from_bytes(value[1:5], "big"), []).append(i)
        keys: list[bytes | None] = [None] * len(values)
        parts: dict[str, list[np.ndarray]] = {n: [] for n in (self.texts or {ALL: ""})}
        for schema_id, idx in groups.items():
            try:
                writer = self.writers.get(schema_id)
            except UnknownSchemaError as exc:
                bad.extend((i, f"UnknownSchemaError: {exc}") for i in idx)
                continue
            if writer.kind != "alert":
                continue  # markers of ours: not alerts, nothing to select
            fset, decoder = self._for(writer)
            decoded = decoder.decode([values[i] for i in idx])
            where = np.asarray(idx, dtype=np.int64)
            bad.extend((idx[j], reason) for j, reason in decoded.bad)
            rows = where[decoded.rows]
            for row, key in zip(rows.tolist(), decoded.keys, strict=True):
                keys[row] = key
            if fset is None:
                parts[ALL].append(rows)
                continue
            for name, mask in fset.keep(decoded.columns).items():
                parts[name].append(rows[mask])
        kept = {n: np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64)
                for n, p in parts.items()}
        return Selection(kept, keys, sorted(bad))

