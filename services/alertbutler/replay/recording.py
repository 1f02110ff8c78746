"""The night recording: one self-contained directory (or tarball) under a checksummed manifest.

::

    manifest.json              format and version, the night's metadata, every file below
                               with its size and sha256
    schedule.json              the timeline: nextVisit events and raw arrivals, Unix seconds
    events/next_visit.avro     the nextVisit events as published (Avro container file)
    raws/<instrument>/<group>/<detector>.fits
    calibs/                    butler export of every calibration and template the night used
    config/pipeline.json       the pipeline configuration of the recorded run
    alerts/visit-<visit>.avro  the alerts published for each visit, with their Kafka
                               timestamps and keys (container metadata ``alertbutler.index``)

Everything a replay reads is checked against the manifest first: a missing file, a size or
checksum mismatch, a truncated tarball or a path that leaves the recording is an error that
names the file. Paths in a manifest are untrusted text: only relative paths that stay inside
the recording are accepted. A recording is a tree this process did not write: a symbolic
link (or FIFO, device) anywhere in it, or a link member in its tarball, is refused when it is
opened, before anything reads through it (a link could land any file readable here in a live
deployment); the listed files are read through ``O_NOFOLLOW`` descriptors; and the butler
export under ``calibs/`` has its own manifest validated (paths, keys) at the same time.

The alert files are standard Avro container files of the alert schema, deflate-compressed (any
Avro reader opens them with no codec package beyond zlib), written from the exact bytes the
pipeline published, so a replay of the recorded stream sends byte-identical messages.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from alertbutler.replay.container import INDEX_KEY, SCHEMA_ID_KEY, write_container
from alertbutler.replay.errors import (
    ChecksumMismatchError,
    MissingFileError,
    RecordingError,
    RunNameError,
    TruncatedArchiveError,
)

FORMAT = "alertbutler-night-recording"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SCHEDULE = "schedule.json"
CALIBS = "calibs"
_CHUNK = 1 << 20
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:+-]{0,199}$")


def sha256_file(path: Path | int) -> str:
    """The sha256 of a file, by path or by an open descriptor (left open)."""
    digest = hashlib.sha256()
    with open(path, "rb", closefd=not isinstance(path, int)) as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_relpath(text: str, where: str | Path) -> PurePosixPath:
    """A manifest path, refused unless it is relative and stays inside the recording."""
    rel = PurePosixPath(text)
    if (not text or rel.is_absolute() or ".." in rel.parts or "\\" in text
            or text.startswith("~")):
        raise RecordingError(where, f"manifest lists an unsafe path {text!r}")
    return rel


@dataclass(frozen=True)
class ScheduledEvent:
    """One entry of the recorded timeline."""

    t: float  # Unix seconds, as recorded
    kind: str  # "next_visit" or "raw"
    group_id: str
    detector: int | None = None
    index: int | None = None  # next_visit: position in events/next_visit.avro
    file: str | None = None  # raw: path inside the recording

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": self.t, "kind": self.kind, "group_id": self.group_id}
        for name in ("detector", "index", "file"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: Path) -> ScheduledEvent:
        try:
            kind = str(data["kind"])
            if kind not in ("next_visit", "raw"):
                raise ValueError(f"unknown kind {kind!r}")
            det = data.get("detector")
            idx = data.get("index")
            return cls(float(data["t"]), kind, str(data["group_id"]),
                       None if det is None else int(det), None if idx is None else int(idx),
                       None if data.get("file") is None else str(data["file"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordingError(where, f"bad schedule entry {dict(data)!r}: {exc}") from None


# --------------------------------------------------------------------------- writing
class RecordingWriter:
    """Builds a recording in ``root`` (which must not exist yet); :meth:`finish` seals it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if self.root.exists() and any(self.root.iterdir()):
            raise RecordingError(self.root, "already exists and is not empty: a recording is "
                                 "never overwritten")
        self.root.mkdir(parents=True, exist_ok=True)
        self.schedule: list[ScheduledEvent] = []
        self.alert_files: list[dict[str, Any]] = []

    def path(self, rel: str) -> Path:
        target = self.root / safe_relpath(rel, self.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def add_file(self, rel: str, source: Path, *, link: bool = True) -> Path:
        """Copy (or hard-link: raws are immutable once landed) a file into the recording."""
        target = self.path(rel)
        if link:
            try:
                os.link(source, target)
                return target
            except OSError:
                pass
        shutil.copyfile(source, target)
        return target

    def add_tree(self, rel: str, source: Path) -> None:
        """Copy a directory (a butler export) into the recording."""
        shutil.copytree(source, self.path(rel), dirs_exist_ok=False)

    def write_json(self, rel: str, data: Any) -> Path:
        target = self.path(rel)
        target.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
        return target

    def write_messages(self, rel: str, schema_id: int, schema_text: str,
                       messages: Sequence[tuple[bytes | None, bytes, int | None]]) -> int:
        """Write wire-format messages (key, value, Kafka timestamp ms) as a container file.

        The Avro bodies are kept byte for byte; keys and timestamps go in the index.
        """
        bodies = []
        for _, value, _ in messages:
            if len(value) < 5 or value[0] != 0:
                raise RecordingError(rel, "a message is not in the Confluent wire format")
            if int.from_bytes(value[1:5], "big") != schema_id:
                raise RecordingError(rel, f"messages mix schema ids (expected {schema_id}, "
                                     f"found {int.from_bytes(value[1:5], 'big')})")
            bodies.append(value[5:])
        index = {"sizes": [len(b) for b in bodies],
                 "keys": [None if k is None else k.decode() for k, _, _ in messages],
                 "timestamps_ms": [t for _, _, t in messages]}
        return write_container(self.path(rel), schema_text, bodies, codec="deflate",
                               metadata={SCHEMA_ID_KEY: str(schema_id),
                                         INDEX_KEY: json.dumps(index, separators=(",", ":"))})

    def add_alerts(self, visit: int, schema_id: int, schema_text: str,
                   messages: Sequence[tuple[bytes | None, bytes, int | None]]) -> None:
        rel = f"alerts/visit-{int(visit)}.avro"
        count = self.write_messages(rel, schema_id, schema_text, messages)
        self.alert_files.append({"file": rel, "visit": int(visit), "count": count})

    def finish(self, night: Mapping[str, Any], *, tarball: Path | None = None) -> Path:
        """Write the schedule and the manifest (every file, with checksums); optionally tar.

        Returns the recording's path (the tarball's, if one was asked for).
        """
        self.schedule.sort(key=lambda e: (e.t, e.kind != "next_visit", e.group_id,
                                          e.detector or 0))
        self.write_json(SCHEDULE, [e.as_dict() for e in self.schedule])
        files = {}
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            rel = path.relative_to(self.root).as_posix()
            if rel == MANIFEST:
                continue
            files[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "night": dict(night),
            "alerts": sorted(self.alert_files, key=lambda a: a["visit"]),
            "files": files,
        }
        (self.root / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str) + "\n")
        if tarball is None:
            return self.root
        write_tarball(self.root, tarball)
        return tarball


def write_tarball(root: Path, tarball: Path) -> None:
    """The recording as one tarball, manifest first (so a reader can tell what it is)."""
    mode: Literal["w:gz", "w"] = "w:gz" if tarball.name.endswith((".tar.gz", ".tgz")) else "w"
    tmp = tarball.with_name(f".{tarball.name}.{os.getpid()}.part")
    with tarfile.open(tmp, mode) as tar:
        tar.add(root / MANIFEST, arcname=MANIFEST)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if rel != MANIFEST:
                tar.add(path, arcname=rel)
    os.replace(tmp, tarball)


# --------------------------------------------------------------------------- reading
class Recording:
    """A verified recording. Open with :meth:`open` (a directory or a tarball)."""

    def __init__(self, root: Path, manifest: dict[str, Any], *, origin: Path,
                 cleanup: Path | None = None) -> None:
        self.root = root
        self.origin = origin
        self.manifest = manifest
        self._cleanup = cleanup

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True) -> Recording:
        path = Path(path)
        if path.is_dir():
            root, cleanup = path, None
        elif path.is_file():
            root = cleanup = Path(tempfile.mkdtemp(prefix="alertbutler-recording-"))
            try:
                _extract(path, root)
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
        else:
            raise MissingFileError(path, "no such recording")
        try:
            _refuse_links(root, path, extracted=cleanup is not None)
            manifest = _load_manifest(root, path)
            rec = cls(root, manifest, origin=path, cleanup=cleanup)
            if verify:
                rec.verify()
        except BaseException:
            if cleanup is not None:
                shutil.rmtree(cleanup, ignore_errors=True)
            raise
        return rec

    def _where(self, rel: str) -> str:
        return f"{self.origin}:{rel}" if self._cleanup is not None else str(self.root / rel)

    def verify(self) -> None:
        """Every listed file present with its size and sha256 (errors name the file), read
        without following any link; the schedule's and the calibration export's paths stay
        inside the recording."""
        # imported when used, not with this module (the butler takes a while to import)
        from alertbutler.butler import ButlerError, LinkRefusedError, UnsafePathError
        from alertbutler.butler.foreign_tree import open_regular
        from alertbutler.butler.transfer import MANIFEST as EXPORT_MANIFEST
        from alertbutler.butler.transfer import read_manifest

        files = self.manifest["files"]
        for rel, meta in files.items():
            safe_relpath(rel, self.origin)
            try:
                fd = open_regular(self.root, rel)
            except FileNotFoundError:
                what = "raw" if rel.startswith("raws/") else "file"
                raise MissingFileError(self._where(rel), f"{what} listed in the manifest is "
                                       "missing from the recording") from None
            except (LinkRefusedError, UnsafePathError) as exc:
                raise RecordingError(self._where(rel), f"refused: {exc}") from None
            try:
                size = os.fstat(fd).st_size
                if size != meta.get("size"):
                    raise ChecksumMismatchError(self._where(rel), f"size {size} differs from "
                                                f"the manifest's {meta.get('size')}")
                digest = sha256_file(fd)
            finally:
                os.close(fd)
            if digest != meta.get("sha256"):
                expected = str(meta.get("sha256"))[:16]
                raise ChecksumMismatchError(self._where(rel), f"sha256 {digest[:16]}... differs "
                                            f"from the manifest's {expected}...")
        for entry in self.schedule():
            if entry.file is not None and entry.file not in files:
                raise MissingFileError(self._where(entry.file), "the schedule names a raw the "
                                       "manifest does not list")
        for entry in self.manifest.get("alerts", ()):
            if entry.get("file") not in files:
                raise MissingFileError(self._where(str(entry.get("file"))), "alert file "
                                       "missing from the manifest's file list")
        if f"{CALIBS}/{EXPORT_MANIFEST}" in files:
            try:  # its paths and keys, now: not when the replay imports it, services running
                read_manifest(self.root / CALIBS)
            except ButlerError as exc:
                raise RecordingError(self._where(f"{CALIBS}/{EXPORT_MANIFEST}"),
                                     f"calibration export refused: {exc}") from None

    @property
    def night(self) -> dict[str, Any]:
        return dict(self.manifest.get("night", {}))

    @property
    def alert_count(self) -> int:
        return sum(int(a.get("count", 0)) for a in self.manifest.get("alerts", ()))

    def file(self, rel: str) -> Path:
        if rel not in self.manifest["files"]:
            raise MissingFileError(self._where(rel), "not listed in the manifest")
        return self.root / safe_relpath(rel, self.origin)

    def alert_files(self) -> Iterator[Path]:
        """The per-visit alert files in visit order."""
        for entry in sorted(self.manifest.get("alerts", ()), key=lambda a: a["visit"]):
            yield self.file(entry["file"])

    def schedule(self) -> list[ScheduledEvent]:
        where = self.root / SCHEDULE
        if SCHEDULE not in self.manifest["files"]:
            return []
        try:
            entries = json.loads(where.read_text())
        except (OSError, ValueError) as exc:
            raise RecordingError(self._where(SCHEDULE), f"unreadable schedule: {exc}") from None
        events = [ScheduledEvent.from_dict(e, where) for e in entries]
        for e in events:
            if e.file is not None:
                safe_relpath(e.file, where)
        return events

    def close(self) -> None:
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)
            self._cleanup = None

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_manifest(root: Path, origin: Path) -> dict[str, Any]:
    where = root / MANIFEST
    if not where.is_file():
        raise MissingFileError(origin, f"no {MANIFEST}: not a night recording")
    try:
        manifest = json.loads(where.read_text())
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{origin}:{MANIFEST}" if origin != root else where,
                             f"unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RecordingError(where, f"not a night recording (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise RecordingError(where, f"recording format version {version!r} is not supported "
                             f"(this alertbutler reads version {FORMAT_VERSION})")
    if not isinstance(manifest.get("files"), dict):
        raise RecordingError(where, "manifest has no file list")
    for rel in manifest["files"]:
        safe_relpath(rel, where)
    return manifest


def _refuse_links(root: Path, origin: Path, *, extracted: bool) -> None:
    """Refuse a recording holding a link or special file anywhere (named, never followed)."""
    from alertbutler.butler.foreign_tree import find_unsafe_entries

    bad = find_unsafe_entries(root)
    if bad:
        path, kind = bad[0]
        rel = path.relative_to(root).as_posix()
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise RecordingError(f"{origin}:{rel}" if extracted else path,
                             f"{kind} inside the recording is refused: it could reach any "
                             f"file on this machine{more}")


def _extract(tarball: Path, dest: Path) -> None:
    member = "(header)"
    try:
        with tarfile.open(tarball, mode="r:*") as tar:
            for info in tar:
                member = info.name
                if not (info.isfile() or info.isdir()):
                    raise RecordingError(f"{tarball}:{info.name}", "a link or special file "
                                         "inside the recording is refused")
                tar.extract(info, dest, filter="data")
    except (tarfile.ReadError, EOFError, zlib.error) as exc:
        raise TruncatedArchiveError(tarball, f"tarball is truncated or damaged (at member "
                                    f"{member}): {exc}") from None
    except (tarfile.TarError, OSError) as exc:
        raise RecordingError(tarball, f"cannot extract member {member}: {exc}") from None


# --------------------------------------------------------------------------- run names
def check_run_name(name: str, recorded_runs: Iterable[str]) -> str:
    """``name`` if it is a safe run name that is none of the recorded night's runs."""
    if not _RUN_NAME.match(name) or ".." in name or "//" in name:
        raise RunNameError(f"run name {name!r} is not safe (letters, digits and _ . / : + -; "
                           "at most 200)")
    recorded = set(recorded_runs)
    if name in recorded or any(name.startswith(f"{r}/") for r in recorded):
        raise RunNameError(f"run name {name!r} is a run of the recorded night (or inside one): "
                           "a replay never writes into the recorded night's own runs")
    return name


def replay_run_name(recorded_run: str, replay_id: str) -> str:
    """The default run of a replay: the recorded run with a replay suffix."""
    return f"{recorded_run}-replay-{replay_id}"
