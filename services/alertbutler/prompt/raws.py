"""The raw: where it lands, how the camera side delivers it, how a worker waits for and reads it.

A raw lands at ``<landing>/<instrument>/<groupId>/<detector>.fits``, the layout of Rubin's
raw buckets (group, then detector). Delivery writes a temporary name and renames it, so a
worker polling the directory never sees half a file; the rename's time is the arrival time
the latency figures start from. Names come from the event, so they are checked first: an
event cannot point a worker outside the landing directory. A landed raw is ingested into the
worker's local repo and read back through the butler (:class:`RawReader`), which checks that
it is the visit-detector the work item expects.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from alertbutler.butler import Butler, DatasetRef
from alertbutler.prompt.errors import CorruptRawError, RawTimeoutError
from alertbutler.prompt.events import WorkItem, safe_name

#: the local repo's RUN of ingested raws
RAW_RUN = "raw/landed"


def raw_path(landing: Path, instrument: str, group_id: str, detector: int) -> Path:
    """The landing path of one raw; unsafe names raise ``BadEventError``."""
    return (landing / safe_name(instrument, "instrument") / safe_name(group_id, "groupId")
            / f"{int(detector)}.fits")


def land_raw(landing: Path, instrument: str, group_id: str, detector: int,
             write: Callable[[Path], object]) -> tuple[Path, float]:
    """Land one raw the camera side's way: ``write`` fills a hidden temporary name beside
    the target, which is then renamed into place (a worker never sees half a file). Returns
    the path and the arrival time (the file's modification time at the rename)."""
    target = raw_path(landing, instrument, group_id, detector)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, os.stat(target).st_mtime


def deliver_raw(source: Path, landing: Path, instrument: str, group_id: str,
                detector: int) -> tuple[Path, float]:
    """Copy a raw file into the landing area atomically; return its path and arrival time."""
    return land_raw(landing, instrument, group_id, detector,
                    lambda tmp: shutil.copyfile(source, tmp))


def wait_for_raw(path: Path, *, timeout: float, label: str, poll_s: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait until ``path`` exists; return its arrival time (mtime, wall clock).

    Raises ``RawTimeoutError`` after ``timeout`` seconds of waiting.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.stat(path).st_mtime
        except FileNotFoundError:
            pass
        if time.monotonic() >= deadline:
            raise RawTimeoutError(f"{label}: raw did not arrive within {timeout:g} s "
                                  f"(expected at {path})")
        sleep(poll_s)


@dataclass(frozen=True)
class Raw:
    """A raw read through the butler: pixels, header, and the visit it belongs to."""

    visit: int
    detector: int
    data: np.ndarray
    header: fits.Header


class RawReader:
    """Ingests landed raws into the worker's local repo and reads them back, checked.

    ``shape``: the camera's (ny, nx); a raw of another size is refused.
    """

    def __init__(self, local: Butler, *, shape: tuple[int, int]) -> None:
        self.local = local
        self.shape = shape

    def read_landed(self, path: Path, item: WorkItem) -> Raw:
        """Ingest the landed raw into the local repo and read it back; bad files raise
        ``CorruptRawError`` naming the problem."""
        result = self.local.ingest([path], run=RAW_RUN, transfer="copy")
        if result.failures:
            _, reason = result.failures[0]
            existing = self._existing(path) if "exist" in reason.lower() else None
            if existing is None:
                raise CorruptRawError(f"{item.label}: raw {path.name} refused: {reason}",
                                      visit=item.visit, detector=item.detector)
            ref = existing
        else:
            (ref,) = result.refs
        try:
            data, header = self._pixels(ref)
        except Exception as exc:  # a header that reads but pixels that do not
            raise CorruptRawError(f"{item.label}: raw {path.name} unreadable: "
                                  f"{type(exc).__name__}: {exc}", visit=item.visit,
                                  detector=item.detector) from exc
        detector = int(ref.data_id["detector"])
        visit = int(header.get("VISIT", ref.data_id["exposure"]))
        if detector != item.detector or (item.visit is not None and visit != item.visit):
            raise CorruptRawError(f"{item.label}: raw {path.name} says visit {visit} detector "
                                  f"{detector}", visit=item.visit, detector=item.detector)
        if data.shape != self.shape:
            raise CorruptRawError(f"{item.label}: raw {path.name} has shape {data.shape}, "
                                  f"expected {self.shape}", visit=item.visit,
                                  detector=item.detector)
        return Raw(visit=visit, detector=detector, data=data, header=header)

    def _pixels(self, ref: DatasetRef) -> tuple[np.ndarray, fits.Header]:
        from alertbutler.butler.formatters import read_raw_header

        exposure = self.local.get(ref)
        # the butler's metadata leaves the WCS cards out (they are its ``wcs``); ISR wants the
        # camera's header as written, so read it whole from the ingested file
        path = self.local.datastore.artifact_path(ref)
        header = read_raw_header(path) if path is not None else fits.Header(
            {k: v for k, v in exposure.metadata.items() if isinstance(v, str | int | float | bool)})
        return np.asarray(exposure.image), header

    def _existing(self, path: Path) -> DatasetRef | None:
        from alertbutler.butler.formatters import read_raw_header

        header = read_raw_header(path)
        return self.local.find_dataset("raw", instrument=header["INSTRUME"],
                                       exposure=int(header["EXPID"]),
                                       detector=int(header["DETECTOR"]), collections=RAW_RUN)
