"""One batch of wire-format alerts -> filter columns, by the fastest path that is correct.

The compiled columnar decoder (:mod:`.columnar`) handles a batch of one alert schema; a
batch mixing schema versions, a schema it cannot compile, or a message that does not fit
goes through the fastavro projection decoder one message at a time, where a message that
cannot be decoded is reported with the codec's own error and left out.

Writer schemas come from :class:`~alertbutler.alerts.writers.WriterSchemas` (ours, Rubin's
of every version, replayed archives' local ids, a registry); each row's key is the value of
its schema's id field (``diaSourceId``; Rubin 3.0-7.4 ``alertId``; ZTF ``candid``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from alertbutler.alerts.writers import ID_FIELDS, Writer, WriterSchemas, default_writers
from alertbutler.subscribe.filters import Columns
from alertbutler.subscribe.filters.nodes import ColumnSpec
from alertbutler.subscribe.projection import ProjectionDecoder

log = logging.getLogger(__name__)

def id_spec(writer: Writer) -> ColumnSpec | None:
    """The column that names each alert of ``writer``'s schema (None: it has none)."""
    return ColumnSpec((writer.id_field,), "number", True) if writer.id_field else None


@dataclass
class DecodedBatch:
    columns: Columns
    rows: np.ndarray                 # index in the input of each decoded row
    keys: list[bytes | None]         # id of each row as key text (None: the schema has none)
    bad: list[tuple[int, str]] = field(default_factory=list)


class BatchDecoder:
    """Decode batches for the columns ``specs`` (each schema's id field is always decoded)."""

    def __init__(self, specs: Iterable[ColumnSpec], writers: WriterSchemas | None = None
                 ) -> None:
        self.specs = frozenset(specs)
        self.writers = writers or default_writers()
        self._columnar: dict[int, object] = {}
        self._projection = ProjectionDecoder(self.specs, writers=self.writers)

    def _columnar_for(self, schema_id: int) -> object:
        decoder = self._columnar.get(schema_id, False)
        if decoder is False:
            try:
                from alertbutler.subscribe.columnar import ColumnarDecoder, Unsupported

                try:
                    writer = self.writers.get(schema_id)
                    ident = id_spec(writer)
                    decoder = ColumnarDecoder(writer.schema, self.specs | (
                        {ident} if ident else set()))
                    decoder.id_field = writer.id_field  # type: ignore[attr-defined]
                except Unsupported as exc:
                    log.info("schema %d decodes through fastavro: %s", schema_id, exc)
                    decoder = None
                except Exception:  # an unknown id: the slow path reports it per message
                    decoder = None
            except ImportError:  # numba missing: the fastavro path still works
                decoder = None
            self._columnar[schema_id] = decoder
        return decoder

    def decode(self, messages: Sequence[bytes]) -> DecodedBatch:
        if messages:
            ids = {bytes(m[1:5]) for m in messages}
            if len(ids) == 1 and messages[0][:1] == b"\x00":
                decoder = self._columnar_for(int.from_bytes(next(iter(ids)), "big"))
                if decoder is not None:
                    cols, bad = decoder.decode(messages)  # type: ignore[attr-defined]
                    if bad is None:
                        field_ = decoder.id_field  # type: ignore[attr-defined]
                        keys: list[bytes | None] = [
                            str(v).encode() for v in cols.values[(field_,)].data.tolist()
                        ] if field_ else [None] * len(messages)
                        return DecodedBatch(cols, np.arange(len(messages)), keys)
        return self._slow(messages)

    def _slow(self, messages: Sequence[bytes]) -> DecodedBatch:
        records = []
        rows = []
        bad: list[tuple[int, str]] = []
        for i, message in enumerate(messages):
            try:
                record = self._projection(message)
            except Exception as exc:  # the codec's error names what is wrong
                bad.append((i, _explain(message, exc)))
                continue
            if record is not None:
                records.append(record)
                rows.append(i)
        cols = Columns.from_records(records, self.specs)
        keys = [_key(r) for r in records]
        return DecodedBatch(cols, np.array(rows, dtype=np.int64), keys, bad)


def _key(record: dict) -> bytes | None:
    for name in ID_FIELDS:
        value = record.get(name)
        if value is not None:
            return str(value).encode()
    return None


def _explain(message: bytes, exc: Exception) -> str:
    from alertbutler.alerts import UnknownSchemaError

    if isinstance(exc, UnknownSchemaError):
        return f"{type(exc).__name__}: {exc}"
    try:
        from alertbutler.alerts import decode_message

        decode_message(message)
    except UnknownSchemaError:  # not ours: the writer's own error says what is wrong
        pass
    except Exception as precise:
        return f"{type(precise).__name__}: {precise}"
    return f"{type(exc).__name__}: {exc}"
