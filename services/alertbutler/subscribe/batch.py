"""One batch of wire-format alerts -> filter columns, by the fastest path that is correct.

The compiled columnar decoder (:mod:`.columnar`) handles a batch of one alert schema; a
batch mixing schema versions, a schema it cannot compile, or a message that does not fit
goes through the fastavro projection decoder one message at a time, where a message that
cannot be decoded is reported with the codec's own error and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from alertbutler.subscribe.filters import Columns
from alertbutler.subscribe.filters.nodes import ColumnSpec
from alertbutler.subscribe.projection import ProjectionDecoder

log = logging.getLogger(__name__)

_ID = ColumnSpec(("diaSourceId",), "number", True)


@dataclass
class DecodedBatch:
    columns: Columns
    rows: np.ndarray                 # index in the input of each decoded row
    keys: list[bytes]                # diaSourceId of each row, as message key text
    bad: list[tuple[int, str]] = field(default_factory=list)


class BatchDecoder:
    """Decode batches for the columns ``specs`` (diaSourceId is always decoded)."""

    def __init__(self, specs: Iterable[ColumnSpec]) -> None:
        self.specs = frozenset(specs) | {_ID}
        self._columnar: dict[int, object] = {}
        self._projection = ProjectionDecoder(self.specs)

    def _columnar_for(self, schema_id: int) -> object:
        decoder = self._columnar.get(schema_id, False)
        if decoder is False:
            try:
                from alertbutler.subscribe.columnar import ColumnarDecoder, Unsupported

                try:
                    decoder = ColumnarDecoder.for_schema_id(schema_id, self.specs)
                except Unsupported as exc:
                    log.info("schema %d decodes through fastavro: %s", schema_id, exc)
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
                        keys = [str(v).encode() for v in
                                cols.values[("diaSourceId",)].data.tolist()]
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
        keys = [str(r["diaSourceId"]).encode() for r in records]
        return DecodedBatch(cols, np.array(rows, dtype=np.int64), keys, bad)


def _explain(message: bytes, exc: Exception) -> str:
    try:
        from alertbutler.alerts import decode_message

        decode_message(message)
    except Exception as precise:
        return f"{type(precise).__name__}: {precise}"
    return f"{type(exc).__name__}: {exc}"
