"""The worker's repositories: preload from the central repo, raw ingest, publish, outputs.

Each worker process owns a local repo (``<local_repo_root>/<worker>``). Before the raw
arrives it pulls, through the butler, the calibrations certified for the visit's time and
the template patches covering the predicted footprint (``Butler.transfer_from``, by hard link
when both repos share a file system, else by copy; datasets already local are not transferred
again, and what was read is cached in memory by dataset id, enough for the calibrations of the
detectors a worker serves to survive each visit's new flat and templates).
The raw is ingested into the local repo from the landing area and read back through the
butler. Alerts leave through a butler whose datastore is the publish datastore; the other
outputs are put into the local repo and then transferred into the central repo.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time

from alertbutler.alerts.records import AlertRecord
from alertbutler.butler import Butler, DatasetRef, IdGenerationMode, MissingCollectionError
from alertbutler.prompt.central import SKYMAP_RUN, calib_collection, template_location
from alertbutler.prompt.errors import CorruptRawError, MissingInputError
from alertbutler.prompt.events import WorkItem
from alertbutler.prompt.geometry import CameraGeometry
from alertbutler.prompt.outputs import register_output_types

log = logging.getLogger(__name__)

RAW_RUN = "raw/landed"
ALERT_RUN = "alerts/published"
ALERT_DATASET = "alerts"
CALIBS = ("bias", "dark", "defects")


@dataclass(frozen=True)
class Inputs:
    """Calibrations and templates of one visit-detector, read from the local repo."""

    bias: np.ndarray
    dark: np.ndarray
    flat: np.ndarray
    defects: np.ndarray
    templates: tuple[Any, ...]  # butler Exposures (image nJy, variance, wcs, metadata)


@dataclass(frozen=True)
class Raw:
    """A raw read through the butler: pixels, header, and the visit it belongs to."""

    visit: int
    detector: int
    data: np.ndarray
    header: fits.Header


class Repos:
    """The butlers of one worker (central, local, publishing) and what it does with them."""

    def __init__(self, *, central_root: Path, local_root: Path, geometry: CameraGeometry,
                 publish_datastore: Any, export_transfer: str = "hardlink",
                 preload_transfer: str = "hardlink", cache_size: int = 32) -> None:
        self.central = Butler(central_root)
        if not (local_root / "butler.yaml").exists():
            Butler.create(local_root).close()
        self.local = Butler(local_root, run=RAW_RUN)
        register_output_types(self.local)
        self.publisher = Butler(local_root, run=ALERT_RUN, datastore=publish_datastore)
        self.publisher.register_dataset_type(ALERT_DATASET, ["instrument", "visit", "detector"],
                                             "AlertBatch")
        self.geometry = geometry
        self.export_transfer = export_transfer
        self.preload_transfer = preload_transfer
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self._cache_size = cache_size
        self._skymap: list[dict[str, Any]] | None = None

    def close(self) -> None:
        for butler in (self.publisher, self.local, self.central):
            butler.close()

    # -- preload ----------------------------------------------------------------------------
    def preload(self, item: WorkItem) -> Inputs:
        """Calibrations valid at mid-exposure and templates of the predicted footprint."""
        when = Time(item.start_time + 0.5 * item.duration / 86400.0, format="mjd", scale="tai")
        collection = calib_collection(item.instrument)
        refs: dict[str, DatasetRef] = {}
        for name in (*CALIBS, "flat"):
            extra: dict[str, Any] = {"physical_filter": item.band} if name == "flat" else {}
            ref = self.central.find_dataset(name, instrument=item.instrument,
                                            detector=item.detector, collections=collection,
                                            timespan=when, **extra)
            if ref is None:
                raise MissingInputError(f"{item.label}: no {name} certified in {collection} "
                                        f"at MJD {when.mjd:.5f}", visit=item.visit,
                                        detector=item.detector)
            refs[name] = ref
        templates = self._template_refs(item)
        if not templates:
            raise MissingInputError(f"{item.label}: no {item.band} template covers the "
                                    "predicted footprint", visit=item.visit,
                                    detector=item.detector)
        wanted = [*refs.values(), *templates]
        try:
            self.local.transfer_from(self.central, wanted, calibration_collections=[collection],
                                     transfer=self.preload_transfer)
        except OSError:  # a hard link across file systems: copy instead, from now on
            if self.preload_transfer == "copy":
                raise
            self.preload_transfer = "copy"
            self.local.transfer_from(self.central, wanted, calibration_collections=[collection],
                                     transfer="copy")
        return Inputs(bias=self._get(refs["bias"]), dark=self._get(refs["dark"]),
                      flat=self._get(refs["flat"]), defects=self._get(refs["defects"]) != 0,
                      templates=tuple(self._get(r) for r in templates))

    def _get(self, ref: DatasetRef) -> Any:
        if ref.id in self._cache:
            self._cache.move_to_end(ref.id)
            return self._cache[ref.id]
        obj = self.local.get(ref)
        self._cache[ref.id] = obj
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return obj

    def _template_refs(self, item: WorkItem) -> list[DatasetRef]:
        from alertbutler.sim import TractGeometry

        if self._skymap is None:
            self._skymap = self.central.get("skyMap", {}, collections=SKYMAP_RUN)["tracts"]
        corners = self.geometry.camera.detector_corners(item.detector, item.ra, item.dec,
                                                        item.camera_angle, margin=64.0)
        found: list[DatasetRef] = []
        for t in self._skymap:
            tract = TractGeometry(field=t["tract"], ra=t["ra"], dec=t["dec"],
                                  pixel_scale=t["pixel_scale"], patch_size=t["patch_size"],
                                  margin=t["margin"], n_side=t["n_side"])
            x, y = tract.tract_wcs().all_world2pix(corners[:, 0], corners[:, 1], 0)
            size = tract.n_side * tract.patch_size
            if x.max() < 0 or y.max() < 0 or x.min() > size or y.min() > size:
                continue
            for patch in tract.patches_covering(corners[:, 0], corners[:, 1]):
                data_id, run = template_location(item.band, t["tract"], patch)
                try:
                    ref = self.central.find_dataset("template", data_id, collections=run)
                except MissingCollectionError:
                    ref = None
                if ref is not None:
                    found.append(ref)
        return found

    # -- the raw ----------------------------------------------------------------------------
    def read_raw(self, path: Path, item: WorkItem) -> Raw:
        """Ingest the landed raw into the local repo and read it back; bad files raise
        ``CorruptRawError`` naming the problem."""
        result = self.local.ingest([path], run=RAW_RUN, transfer="copy")
        if result.failures:
            _, reason = result.failures[0]
            existing = self._existing_raw(path) if "exist" in reason.lower() else None
            if existing is None:
                raise CorruptRawError(f"{item.label}: raw {path.name} refused: {reason}",
                                      visit=item.visit, detector=item.detector)
            ref = existing
        else:
            (ref,) = result.refs
        try:
            data, header = self._read_raw_pixels(ref)
        except Exception as exc:  # a header that reads but pixels that do not
            raise CorruptRawError(f"{item.label}: raw {path.name} unreadable: "
                                  f"{type(exc).__name__}: {exc}", visit=item.visit,
                                  detector=item.detector) from exc
        detector = int(ref.data_id["detector"])
        visit = int(header.get("VISIT", ref.data_id["exposure"]))
        if detector != item.detector or (item.visit is not None and visit != item.visit):
            raise CorruptRawError(f"{item.label}: raw {path.name} says visit {visit} detector "
                                  f"{detector}", visit=item.visit, detector=item.detector)
        expected = (self.geometry.camera.ny, self.geometry.camera.nx)
        if data.shape != expected:
            raise CorruptRawError(f"{item.label}: raw {path.name} has shape {data.shape}, "
                                  f"expected {expected}", visit=item.visit,
                                  detector=item.detector)
        return Raw(visit=visit, detector=detector, data=data, header=header)

    def _read_raw_pixels(self, ref: DatasetRef) -> tuple[np.ndarray, fits.Header]:
        from alertbutler.butler.formatters import read_raw_header

        exposure = self.local.get(ref)
        # the butler's metadata leaves the WCS cards out (they are its ``wcs``); ISR wants the
        # camera's header as written, so read it whole from the ingested file
        path = self.local.datastore.artifact_path(ref)
        header = read_raw_header(path) if path is not None else fits.Header(
            {k: v for k, v in exposure.metadata.items() if isinstance(v, str | int | float | bool)})
        return np.asarray(exposure.image), header

    def _existing_raw(self, path: Path) -> DatasetRef | None:
        from alertbutler.butler.formatters import read_raw_header

        header = read_raw_header(path)
        return self.local.find_dataset("raw", instrument=header["INSTRUME"],
                                       exposure=int(header["EXPID"]),
                                       detector=int(header["DETECTOR"]), collections=RAW_RUN)

    # -- publishing and outputs -------------------------------------------------------------
    def publish(self, alerts: Sequence[AlertRecord], *, instrument: str, visit: int,
                detector: int) -> DatasetRef:
        """Put the visit-detector's alerts (maybe none) through the publish datastore: returns
        after Kafka acknowledged them and the end-of-visit-detector markers.

        Once per visit-detector on this worker: the registry row is committed only with the
        acknowledgement, so an item processed again after its alerts went out (its status
        could not be sent during a broker outage) finds them published and does not publish
        the same alerts a second time (it used to fail on the existing row, three times)."""
        done = self.publisher.find_dataset(ALERT_DATASET, instrument=instrument, visit=visit,
                                           detector=detector, collections=ALERT_RUN)
        if done is not None:
            log.info("alerts already published and acknowledged by an earlier attempt: not "
                     "sent again", extra={"visit": visit, "detector": detector})
            return done
        return self.publisher.put(alerts, ALERT_DATASET, instrument=instrument, visit=visit,
                                  detector=detector)

    def export_outputs(self, items: list[tuple[Any, str, dict[str, Any]]],
                       run: str) -> list[DatasetRef]:
        """Put outputs into the local repo (deterministic ids: a re-run finds them there),
        then transfer them into the central repo."""
        refs = []
        todo = []
        for obj, dataset_type, data_id in items:
            ref = self.local.make_ref(dataset_type, data_id, run=run,
                                      id_mode=IdGenerationMode.DETERMINISTIC)
            refs.append(ref)
            if self.local.registry.get_dataset(ref.id) is None:
                todo.append((obj, ref))
        if todo:
            self.local.put_refs(todo)
        try:
            self.central.transfer_from(self.local, refs, transfer=self.export_transfer)
        except OSError:  # a hard link across file systems: copy instead, from now on
            self.export_transfer = "copy"
            self.central.transfer_from(self.local, refs, transfer="copy")
        return refs
