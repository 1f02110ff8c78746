"""Where each archived alert sat on its topic, kept in the archive's own header.

A night archive (``night/alerts.avro``) is read back from the alert topic. Recording, with the
records, the topic, each record's partition, offset and timestamp, and each partition's end
offset when it was read, makes the archive a faithful stand-in for the topic's past: a
backfill can serve the archive up to those ends and continue on the topic at exactly the next
offsets, with no gap and no duplicate, after the topic's retention deleted the past.

The header (container metadata, key :data:`KEY`) and not a side file: the positions cannot
drift from the records they describe (one file, written at once), and any Avro reader still
opens the archive and ignores the key. An archive without it is readable but cannot seam.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alertbutler.alerts._errors import AlertFormatError

KEY = "alertbutler.topic_positions"
VERSION = 1


@dataclass(frozen=True)
class TopicPositions:
    """The topic an archive was read from and where each of its records sat on it."""

    topic: str
    #: per partition, the first offset read (what the topic still held then)
    starts: Mapping[int, int]
    #: per partition, the next offset after the last message read (markers included): every
    #: message below it was read, so the topic continues there
    ends: Mapping[int, int]
    #: (partition, offset, timestamp_ms) of each record, in the archive's record order
    positions: tuple[tuple[int, int, int], ...]
    #: the Kafka cluster id of the broker read ("": unknown): offsets mean nothing on another
    #: broker (a main job's own broker is gone after the night)
    cluster_id: str = ""

    def header(self) -> dict[str, str]:
        """Container metadata entries that carry these positions."""
        return {KEY: json.dumps({
            "version": VERSION, "topic": self.topic, "cluster_id": self.cluster_id,
            "starts": {str(p): o for p, o in sorted(self.starts.items())},
            "ends": {str(p): o for p, o in sorted(self.ends.items())},
            "positions": [list(x) for x in self.positions]}, separators=(",", ":"))}

    @classmethod
    def from_header(cls, metadata: Mapping[str, Any], *, name: str,
                    records: int | None = None) -> TopicPositions | None:
        """The positions in a container's metadata; None when it has none (an archive
        written without them); :class:`AlertFormatError` naming ``name`` when malformed."""
        raw = metadata.get(KEY)
        if raw is None:
            return None
        try:
            data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
            topic = data["topic"]
            cluster_id = data.get("cluster_id") or ""
            if not isinstance(cluster_id, str):
                raise ValueError("the cluster id is not text")
            if not isinstance(topic, str) or not topic:
                raise ValueError("no topic")
            starts = {_nonneg(p, "partition"): _nonneg(o, "start offset")
                      for p, o in dict(data["starts"]).items()}
            ends = {_nonneg(p, "partition"): _nonneg(o, "end offset")
                    for p, o in dict(data["ends"]).items()}
            if set(starts) != set(ends) or any(starts[p] > ends[p] for p in ends):
                raise ValueError("the partitions' start and end offsets do not match")
            positions = tuple((_nonneg(p, "partition"), _nonneg(o, "offset"), int(t))
                              for p, o, t in data["positions"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AlertFormatError(f"{name}: malformed topic positions ({KEY}): {exc}") from None
        for p, o, _ in positions:
            if not starts.get(p, 0) <= o < ends.get(p, 0):
                raise AlertFormatError(f"{name}: record at {topic}[{p}] offset {o} lies outside "
                                       f"the partition's recorded range [{starts.get(p, 0)}, "
                                       f"{ends.get(p, 0)})")
        if len(set((p, o) for p, o, _ in positions)) != len(positions):
            raise AlertFormatError(f"{name}: two records at the same topic position")
        if records is not None and records != len(positions):
            raise AlertFormatError(f"{name}: {records} records but {len(positions)} topic "
                                   "positions")
        return cls(topic, starts, ends, positions, cluster_id)


def _nonneg(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} {value!r} is not an integer")
    n = int(value)
    if n < 0:
        raise ValueError(f"{what} {n} is negative")
    return n
