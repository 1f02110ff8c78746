"""Night archives as the past of a backfill, read as untrusted files.

``alertbutler run`` leaves ``<night>/night/alerts.avro`` with each alert's topic position in
its header (:mod:`alertbutler.alerts.topic_positions`). A backfill given archives serves
their alerts from its start time and continues on the topic at the archives' end offsets,
so a start older than the topic's retention is still served, without a gap or a duplicate.

The paths come from the command line or an API caller: a symlink anywhere from the named
directory down to the file is refused (never followed), the file must be a regular Avro
container, and its positions must agree with its records; every error names the file.
Several archives of one topic are merged: the same position in two of them is one message,
and a hole between what they cover is an error naming the partition and offsets.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from alertbutler.alerts import encode_alerts
from alertbutler.alerts.schemas import schema_info
from alertbutler.alerts.topic_positions import TopicPositions
from alertbutler.errors import AlertbutlerError
from alertbutler.subscribe.errors import SubscribeError
from alertbutler.subscribe.stream import Decoder, StreamAlert

#: where the archive lies under a named path: the file, a ``night`` directory, a night's
#: root as ``alertbutler run`` leaves it, or the data directory of such a run
LAYOUTS = ("", "alerts.avro", "night/alerts.avro", "mainjob/night/alerts.avro")


class ArchiveError(SubscribeError):
    """A night archive that cannot serve a backfill; the message names the file."""


@dataclass(frozen=True)
class _Archived:
    partition: int
    offset: int
    timestamp_ms: int
    record: dict[str, Any]


@dataclass
class NightArchives:
    """The merged alerts of one topic's archives, and where the topic continues."""

    topic: str
    files: tuple[Path, ...]
    ends: dict[tuple[str, int], int]
    alerts: list[_Archived]
    cluster_ids: dict[Path, str]

    def check_cluster(self, cluster_id: str) -> None:
        """Refuse archives read from another Kafka cluster: their offsets are not this
        topic's (a main job's broker is gone after its night; a new one numbers anew)."""
        for f, archived in self.cluster_ids.items():
            if archived and cluster_id and archived != cluster_id:
                raise ArchiveError(f"night archive {f}: read from Kafka cluster {archived!r}, "
                                   f"not this broker's {cluster_id!r}: its offsets cannot "
                                   "seam with this topic")

    def batches(self, *, start_ms: int | None, decoder: Decoder,
                max_alerts: int = 500) -> Iterator[list[StreamAlert]]:
        """The archived alerts at or after ``start_ms`` (all when None) in topic order
        (partition, offset), as :class:`StreamAlert`\\ s with wire-format values, so the
        caller's decoder and filter see them as they see the topic's."""
        chosen = [a for a in self.alerts if start_ms is None or a.timestamp_ms >= start_ms]
        for i in range(0, len(chosen), max_alerts):
            part = chosen[i:i + max_alerts]
            batch = []
            for a, value in zip(part, encode_alerts([a.record for a in part]), strict=True):
                record = decoder(value)
                if record is not None:
                    batch.append(StreamAlert(
                        record=record, topic=self.topic, partition=a.partition,
                        offset=a.offset, timestamp_ms=a.timestamp_ms, key=None, value=value))
            yield batch

    def describe(self) -> str:
        return ", ".join(str(f) for f in self.files)


def archive_file(path: str | os.PathLike[str]) -> Path:
    """The ``alerts.avro`` under ``path`` (see :data:`LAYOUTS`), with no symlink on the way."""
    base = Path(path)
    if base.is_symlink():
        raise ArchiveError(f"night archive {base}: is a symlink (not followed)")
    for layout in LAYOUTS:
        candidate = base / layout if layout else base
        parts = Path(layout).parts
        for depth in range(1, len(parts) + 1):
            step = base.joinpath(*parts[:depth])
            if step.is_symlink():
                raise ArchiveError(f"night archive {step}: is a symlink (not followed)")
        if candidate.is_file():
            return candidate
    raise ArchiveError(f"night archive {base}: no alerts.avro there (name a night directory "
                       "written by `alertbutler run`, its night/ directory, or the file)")


def read_archive(path: Path, topics: Sequence[str]) -> tuple[TopicPositions, list[_Archived]]:
    """One archive's positions and records (resolved to the current alert schema)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ArchiveError(f"night archive {path}: cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ArchiveError(f"night archive {path}: not a regular file")
        if fh.read(4) != b"Obj\x01":
            raise ArchiveError(f"night archive {path}: not an Avro container file")
        fh.seek(0)
        try:
            reader = fastavro.reader(fh, reader_schema=schema_info("alert").parsed)
            records: list[dict[str, Any]] = list(reader)  # type: ignore[arg-type]
            placed = TopicPositions.from_header(reader.metadata, name=str(path),
                                                records=len(records))
        except AlertbutlerError as exc:
            raise ArchiveError(str(exc)) from None
        except (ValueError, EOFError, KeyError, TypeError,
                fastavro.read.SchemaResolutionError) as exc:
            raise ArchiveError(f"night archive {path}: unreadable: {type(exc).__name__}: "
                               f"{exc}") from None
    if placed is None:
        raise ArchiveError(f"night archive {path}: has no topic positions (written before "
                           "they were recorded): its alerts can be read, but a backfill "
                           "cannot continue on the topic from it without a gap or duplicate")
    if placed.topic not in topics:
        raise ArchiveError(f"night archive {path}: holds topic {placed.topic!r}, not "
                           f"{', '.join(topics)}")
    alerts = [_Archived(p, o, t, r)
              for (p, o, t), r in zip(placed.positions, records, strict=True)]
    return placed, alerts


def open_archives(paths: Iterable[str | os.PathLike[str]],
                  topics: Sequence[str]) -> NightArchives | None:
    """The merged archives (None when no path is given); all must hold one topic, and
    together cover each partition without a hole from their first start to their last end."""
    files = [archive_file(p) for p in paths]
    if not files:
        return None
    read = [(f, *read_archive(f, topics)) for f in files]
    names = {placed.topic for _, placed, _ in read}
    if len(names) > 1:
        raise ArchiveError(f"night archives of several topics ({', '.join(sorted(names))}): "
                           "a backfill reads one")
    topic = names.pop()
    ends: dict[tuple[str, int], int] = {}
    partitions = {p for _, placed, _ in read for p in placed.ends}
    for p in sorted(partitions):
        ranges = sorted((placed.starts[p], placed.ends[p], f) for f, placed, _ in read
                        if p in placed.ends)
        covered = ranges[0][1]
        for start, end, f in ranges[1:]:
            if start > covered:
                raise ArchiveError(f"night archives: {topic}[{p}] offsets {covered} to "
                                   f"{start - 1} are in none of them (next: {f})")
            covered = max(covered, end)
        ends[(topic, p)] = covered
    merged: dict[tuple[int, int], _Archived] = {}
    for _, _, alerts in read:
        for a in alerts:
            merged.setdefault((a.partition, a.offset), a)
    ordered = [merged[k] for k in sorted(merged)]
    return NightArchives(topic, tuple(files), ends, ordered,
                         {f: placed.cluster_id for f, placed, _ in read})
