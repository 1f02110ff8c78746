"""Alert archives as a stream of ready-to-send Kafka messages.

A source is one of:

* a night recording of ours (a directory or tarball with ``manifest.json``): its per-visit
  alert files, in the recorded order, with the recorded Kafka timestamps;
* a ZTF-style archive: a tarball (``.tar``, ``.tar.gz``, ...) or a directory of single-alert
  Avro container files, each with its writer schema inside, as ZTF publishes them nightly;
  tarballs are read as a stream, in member order; directories in file-name order;
* one Avro container file of Rubin-format (or our) alerts.

Each message is the record's Avro body behind the Confluent header with the id that
:class:`~alertbutler.replay.schema_ids.SchemaIds` gives its writer schema, keyed as the
pipeline keys alerts (diaObjectId, then ssObjectId, then diaSourceId, as decimal text; ZTF:
objectId), and timestamped by the recording's Kafka timestamp, else the observation time.
"""

from __future__ import annotations

import io
import re
import struct
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from alertbutler.replay.container import (
    SCHEMA_ID_KEY,
    ContainerReader,
    RecordSplitter,
    split_by_sizes,
)
from alertbutler.replay.errors import CorruptFileError, SourceError, TruncatedArchiveError
from alertbutler.replay.schema_ids import AlertFormat, SchemaIds, WriterSchema, classify_text

HEADER = struct.Struct(">bI")
MJD_UNIX_EPOCH = 40587.0
JD_UNIX_EPOCH = 2440587.5
TAI_MINUS_UTC_S = 37.0
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")

_PATHS = {
    AlertFormat.ALERTBUTLER: ("diaSourceId", "diaSource.diaObjectId", "diaSource.ssObjectId",
                              "diaSource.midpointMjdTai"),
    AlertFormat.RUBIN: ("diaSourceId", "alertId", "diaSource.diaObjectId",
                        "diaSource.ssObjectId", "diaSource.midpointMjdTai",
                        "diaSource.midPointTai"),
    AlertFormat.ZTF: ("objectId", "candid", "candidate.jd"),
}


class ArchivedAlert(NamedTuple):
    """One message to send: wire-format value, key, and the recorded time (ms) if any."""

    key: bytes | None
    value: bytes
    timestamp_ms: int | None
    schema_id: int


@dataclass(frozen=True)
class SourceInfo:
    """What a source is, for progress bars and summaries."""

    path: Path
    kind: str  # "recording", "ztf-tarball", "ztf-directory", "avro-file"
    total: int | None  # messages, when known without reading everything


#: a time outside 1970-3000 is not a time a Kafka timestamp can carry (Rubin's early sample
#: alerts hold placeholders such as 1.5e12 in midPointTai): such alerts have no recorded time
_MAX_MS = 32_503_680_000_000


def _mjd_tai_to_ms(mjd: float) -> int | None:
    ms = round(((mjd - MJD_UNIX_EPOCH) * 86400.0 - TAI_MINUS_UTC_S) * 1000.0)
    return ms if 0 <= ms < _MAX_MS else None


def _jd_to_ms(jd: float) -> int:
    return round((jd - JD_UNIX_EPOCH) * 86400_000.0)


def _key_and_time(fmt: AlertFormat, values: dict[str, Any]) -> tuple[bytes | None, int | None]:
    if fmt is AlertFormat.ZTF:
        obj = values.get("objectId")
        jd = (values.get("candidate") or {}).get("jd")
        return (None if obj is None else str(obj).encode(),
                None if jd is None else _jd_to_ms(jd))
    source = values.get("diaSource") or {}
    key = None
    for value in (source.get("diaObjectId"), source.get("ssObjectId"),
                  values.get("diaSourceId"), values.get("alertId")):
        if value is not None:
            key = str(value).encode()
            break
    mjd = source.get("midpointMjdTai", source.get("midPointTai"))
    return key, None if mjd is None else _mjd_tai_to_ms(mjd)


def container_messages(fh: BinaryIO, name: str, ids: SchemaIds, topic: str
                       ) -> Iterator[ArchivedAlert]:
    """The messages of one Avro container file (see the module doc)."""
    reader = ContainerReader(fh, name)
    writer: WriterSchema = classify_text(reader.schema_text, name,
                                         reader.metadata.get(SCHEMA_ID_KEY))
    schema_id = ids.wire_id(writer, topic)
    header = HEADER.pack(0, schema_id)
    index = reader.index()
    if index is not None:
        sizes: list[int] = index["sizes"]
        keys: list[str | None] = index.get("keys") or [None] * len(sizes)
        stamps: list[int | None] = index.get("timestamps_ms") or [None] * len(sizes)
        i = 0
        for block in reader.blocks():
            for body in split_by_sizes(block, sizes[i:i + block.count], name):
                key = keys[i]
                yield ArchivedAlert(None if key is None else key.encode(), header + body,
                                    stamps[i], schema_id)
                i += 1
        if i != len(sizes):
            raise TruncatedArchiveError(name, f"holds {i} records but its index lists "
                                        f"{len(sizes)}")
        return
    splitter = RecordSplitter(reader.schema_text, _PATHS[writer.format], name)
    for block in reader.blocks():
        for body, values in splitter.split(block):
            wire_key, stamp = _key_and_time(writer.format, values)
            yield ArchivedAlert(wire_key, header + body, stamp, schema_id)


def _natural(path: Path) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path)))


def is_tarball(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


def _tar_first_name(path: Path) -> str | None:
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if member.isfile():
                    return member.name
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise TruncatedArchiveError(path, f"not a readable tarball: {exc}") from None
    return None


def tar_messages(path: Path, ids: SchemaIds, topic: str) -> Iterator[ArchivedAlert]:
    """Messages of a ZTF-style tarball, read as a stream in member order."""
    member_name = "(header)"
    n_files = 0
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                member_name = member.name
                if not member.isfile() or not member.name.endswith(".avro"):
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                data = handle.read()
                if len(data) != member.size:
                    raise TruncatedArchiveError(path, f"member {member.name} is truncated "
                                                f"({len(data)} of {member.size} bytes)")
                n_files += 1
                yield from container_messages(io.BytesIO(data), f"{path}:{member.name}", ids,
                                              topic)
    except SourceError:
        raise
    except (tarfile.ReadError, EOFError, zlib.error, OSError) as exc:
        raise TruncatedArchiveError(path, f"tarball is truncated or damaged after "
                                    f"{n_files} alert files (at member {member_name}): "
                                    f"{exc}") from None
    except tarfile.TarError as exc:
        raise CorruptFileError(path, f"bad tarball (at member {member_name}): {exc}") from None
    if n_files == 0:
        raise SourceError(path, "tarball holds no .avro files")


def _refuse_links(path: Path) -> None:
    """A directory archive is a tree we did not write: a link in it is refused, not followed."""
    from alertbutler.butler.foreign_tree import find_unsafe_entries

    bad = find_unsafe_entries(path)
    if bad:
        entry, kind = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise SourceError(entry, f"{kind} inside the alert archive {path} is refused: it "
                          f"could reach any file on this machine{more}")


def directory_files(path: Path) -> list[Path]:
    return sorted((p for p in path.rglob("*.avro") if p.is_file()), key=_natural)


def directory_messages(files: list[Path], ids: SchemaIds, topic: str
                       ) -> Iterator[ArchivedAlert]:
    for file in files:
        with open(file, "rb") as fh:
            yield from container_messages(fh, str(file), ids, topic)


class AlertSource:
    """An archive to replay; iterate :meth:`messages` once per replay."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(self.path, "no such file or directory")
        self._files: list[Path] | None = None
        self._recording: Any = None
        if self.path.is_dir():
            if (self.path / "manifest.json").exists():
                self.info = self._open_recording(self.path)
            else:
                _refuse_links(self.path)
                self._files = directory_files(self.path)
                if not self._files:
                    raise SourceError(self.path, "directory holds no .avro files")
                self.info = SourceInfo(self.path, "ztf-directory", None)
        elif is_tarball(self.path):
            first = _tar_first_name(self.path)
            if first is not None and Path(first).name == "manifest.json":
                self.info = self._open_recording(self.path)
            else:
                self.info = SourceInfo(self.path, "ztf-tarball", None)
        else:
            self.info = SourceInfo(self.path, "avro-file", None)

    def _open_recording(self, path: Path) -> SourceInfo:
        from alertbutler.replay.recording import Recording

        self._recording = Recording.open(path)
        return SourceInfo(path, "recording", self._recording.alert_count)

    def messages(self, ids: SchemaIds, topic: str) -> Iterator[ArchivedAlert]:
        if self._recording is not None:
            for file in self._recording.alert_files():
                with open(file, "rb") as fh:
                    yield from container_messages(fh, str(file), ids, topic)
        elif self._files is not None:
            yield from directory_messages(self._files, ids, topic)
        elif self.info.kind == "ztf-tarball":
            yield from tar_messages(self.path, ids, topic)
        else:
            with open(self.path, "rb") as fh:
                yield from container_messages(fh, str(self.path), ids, topic)

    def close(self) -> None:
        if self._recording is not None:
            self._recording.close()

    def __enter__(self) -> AlertSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
