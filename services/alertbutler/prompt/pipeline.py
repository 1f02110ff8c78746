"""One visit-detector, from work item to acknowledged alerts: the worker's processor.

Steps, each timed into the status's ``stages``:

1. preload: calibrations and templates for the predicted footprint, central -> local repo;
   if the raw has not landed yet, that idle time also preloads the same visit for the
   detector of this worker's previous item (``prefetch``): its next item is likely that
   one, whose raw will then be waiting (a visit's raws land together), so its preload would
   otherwise sit between the raw's arrival and its alerts (one detector only, so both fit
   the local repo's read cache);
2. wait_raw: until the raw lands (bounded by ``prompt.raw_timeout_s``);
3. imaging: ISR, background, PSF, template warp and PSF matching, difference, detection,
   measurement (:mod:`alertbutler.prompt.science`, which calls :mod:`alertbutler.imaging`);
   a detector with too few stars gets a fallback PSF model or matching kernel rather than
   no alerts, flagged in the metrics (``psf``), the status and every alert
   (``diaSource.psfModel_flag_degraded``);
4. wait_l1db: until the L1 database holds the earlier overlapping visit-detectors the work
   item lists (bounded by ``prompt.association_wait_s``; on timeout we go on and say so);
5. associate + forced: DiaObjects of the footprint, rebuilt from their history *before this
   visit* (so an earlier attempt at this same visit-detector, partly ingested, changes
   nothing), matched; forced photometry of every known object on the difference image;
6. package: alerts with history from the L1 database and three cutouts;
7. publish: one ``AlertBatch`` put through the publish datastore (returns after Kafka
   acknowledged every alert and the end-of-visit-detector markers);
8. outputs: calexp, difference, source catalog, PNG preview and YAML metrics through the
   local butler, then exported to the central repo.

A ``VisitDetectorError`` (bad input) is recorded in the status and the visit-detector is
still closed with an empty batch, so its markers tell the ingester (and later visits'
association) that nothing more will come. Other exceptions propagate to the worker loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alertbutler.alerts.records import AlertRecord
from alertbutler.config import Config
from alertbutler.faults import crash_point
from alertbutler.prompt import science
from alertbutler.prompt.association import associate, summarize_object
from alertbutler.prompt.clock import Clock, SystemClock, unix_to_mjd_tai
from alertbutler.prompt.errors import VisitDetectorError
from alertbutler.prompt.events import WorkItem, safe_name
from alertbutler.prompt.geometry import CameraGeometry
from alertbutler.prompt.ids import dia_forced_source_id, dia_source_id
from alertbutler.prompt.outputs import OutputExporter, output_items, output_run
from alertbutler.prompt.packaging import assemble_alert, forced_source_record
from alertbutler.prompt.preload import Preloader
from alertbutler.prompt.publishing import AlertPublisher
from alertbutler.prompt.raws import RawReader, raw_path, wait_for_raw
from alertbutler.prompt.repos import WorkerRepos
from alertbutler.prompt.status import VisitDetectorStatus

if TYPE_CHECKING:
    from alertbutler.l1db import PipelineL1db

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """Tunables of the science steps the service owns."""

    cutout_size: int = 32
    association_radius_arcsec: float = 1.0
    history_days: float = 365.0
    footprint_margin_arcsec: float = 2.0
    raw_timeout_s: float = 60.0
    association_wait_s: float = 30.0
    write_outputs: bool = True
    #: RUN for the outputs; None is ``prompt/<instrument>/outputs`` (a replay writes its own)
    output_run: str | None = None
    detection_threshold: float = 5.0


@dataclass
class Stages:
    """Seconds per stage, in order."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class Known:
    """DiaObjects of the footprint as they were before this visit, with their history."""

    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    sources: dict[int, list[dict[str, Any]]]
    forced: dict[int, list[dict[str, Any]]]


class PromptPipeline:
    """Processes work items (see the module doc); one instance per worker process.

    Each step that touches a repository has its own piece: ``preloader`` (central -> local),
    ``raws`` (landed raw -> local), ``publisher`` (alerts -> Kafka), ``exporter`` (local ->
    central); ``repos`` holds the butlers they share.
    """

    def __init__(self, *, repos: WorkerRepos, geometry: CameraGeometry, l1db: PipelineL1db,
                 landing: Path, settings: PipelineSettings | None = None,
                 clock: Clock | None = None, name: str = "") -> None:
        self.repos = repos
        self.preloader = Preloader(central=repos.central, local=repos.local, geometry=geometry)
        self.raws = RawReader(repos.local, shape=(geometry.camera.ny, geometry.camera.nx))
        self.publisher = AlertPublisher(repos.publishing)
        self.exporter = OutputExporter(local=repos.local, central=repos.central)
        self.l1db = l1db
        self.landing = landing
        self.settings = settings or PipelineSettings()
        self.clock = clock or SystemClock()
        self.name = name
        #: detectors of the latest items, most recent last (``prefetch`` preloads the others)
        self._recent: OrderedDict[int, None] = OrderedDict()

    def close(self) -> None:
        self.repos.close()
        self.l1db.close()

    # -- the processor interface ------------------------------------------------------------
    def ready(self, item: WorkItem) -> bool:
        """Whether the earlier overlapping visit-detectors the item depends on are in the
        L1 database (the worker takes other items first while they are not)."""
        if not item.depends_on:
            return True
        return not set(item.depends_on) - self.l1db.ingested(item.depends_on)

    def publishing_through(self, producer: Any) -> contextlib.AbstractContextManager[None]:
        """Alerts and end markers go out with ``producer``, inside its open transaction (the
        worker's, on a broker with transactions), for the block."""
        return self.publisher.publishing_through(producer)

    def abandon(self, item: WorkItem) -> None:
        """An empty batch and its end markers: the visit-detector is over, with no alerts."""
        if item.visit is not None:
            self.publisher.publish_alerts([], instrument=item.instrument, visit=item.visit,
                                   detector=item.detector)

    def process(self, item: WorkItem) -> VisitDetectorStatus:
        stages = Stages()
        arrived: float | None = None
        self._remember(item.detector)
        try:
            with stages("preload"):
                inputs = self.preloader.preload(item)
            path = raw_path(self.landing, item.instrument, item.group_id, item.detector)
            if not path.exists():
                with stages("prefetch"):
                    self._prefetch(item)
            with stages("wait_raw"):
                arrived = wait_for_raw(path, timeout=self.settings.raw_timeout_s,
                                       label=item.label)
            with stages("read_raw"):
                raw = self.raws.read_landed(path, item)
            visit = raw.visit
            result = science.run(raw, inputs, stages=stages,
                                 detection_threshold=self.settings.detection_threshold)
            if result.degraded:
                log.warning("fallback PSF model or matching kernel: alerts flagged",
                            extra={"item": item.label, **result.psf_metrics()})
            alerts, n_forced, n_new = self._alerts(item, visit, result, stages)
            with stages("publish"):
                self.publisher.publish_alerts(alerts, instrument=item.instrument, visit=visit,
                                       detector=item.detector)
            acked = time.time()
            log.info("alerts acknowledged", extra={"item": item.label, "visit": visit,
                                                   "detector": item.detector,
                                                   "n_alerts": len(alerts)})
            crash_point("prompt.alerts-acked")
            if self.settings.write_outputs:
                with stages("outputs"):
                    metrics = {"n_sources": len(result.sources), "n_alerts": len(alerts),
                               "n_forced": n_forced, "n_new_objects": n_new,
                               "stage_seconds": dict(stages.seconds), "worker": self.name,
                               "psf": result.psf_metrics()}
                    self.exporter.export_outputs(
                        output_items(instrument=item.instrument, visit=visit,
                                     detector=item.detector, result=result, alerts=alerts,
                                     metrics=metrics),
                        run=self.settings.output_run or output_run(item.instrument))
        except VisitDetectorError as exc:
            log.error("visit-detector failed", extra={"item": item.label, "reason": exc.reason,
                                                       "error": str(exc)})
            self.abandon(item)  # close it: later visits need not wait for it
            return VisitDetectorStatus(
                instrument=item.instrument, group_id=item.group_id, visit=item.visit,
                detector=item.detector, ok=False, reason=exc.reason, message=str(exc),
                raw_arrived_at=arrived, stages=stages.seconds, worker=self.name,
                finished_at=time.time())
        return VisitDetectorStatus(
            instrument=item.instrument, group_id=item.group_id, visit=visit,
            detector=item.detector, ok=True, n_sources=len(result.sources),
            n_alerts=len(alerts), n_forced=n_forced, n_new_objects=n_new,
            raw_arrived_at=arrived, alerts_acked_at=acked, finished_at=time.time(),
            stages=stages.seconds, worker=self.name, psf_degraded=result.degraded,
            alert_ids=tuple(int(a["diaSourceId"]) for a in alerts))

    def _remember(self, detector: int, most: int = 2) -> None:
        self._recent.pop(detector, None)
        self._recent[detector] = None
        while len(self._recent) > most:
            self._recent.popitem(last=False)

    def _prefetch(self, item: WorkItem) -> None:
        """Preload this visit for the other detector served lately (best effort: an error
        here is the other item's to meet, in its own preload)."""
        for detector in reversed([d for d in self._recent if d != item.detector]):
            try:
                self.preloader.preload(dataclasses.replace(item, detector=detector,
                                                           depends_on=()))
            except Exception as exc:  # speculative work must not fail this item
                log.debug("prefetch skipped", extra={"item": item.label, "detector": detector,
                                                     "error": str(exc)})

    # -- association, forced photometry, packaging ------------------------------------------
    def _alerts(self, item: WorkItem, visit: int, result: science.Result,
                stages: Stages) -> tuple[list[AlertRecord], int, int]:
        s = self.settings
        mid = result.midpoint_mjd_tai
        with stages("wait_l1db"):
            if item.depends_on and not self.l1db.wait_for_ingested(
                    item.depends_on, timeout=s.association_wait_s):
                missing = set(item.depends_on) - self.l1db.ingested(item.depends_on)
                log.warning("association goes on without earlier visit-detectors", extra={
                    "item": item.label, "missing": sorted(missing)[:10]})
        with stages("associate"):
            known = self._known(result, visit, mid)
            sources = result.sources
            ids = [dia_source_id(visit, item.detector, i) for i in range(len(sources))]
            assoc = associate(ids, np.array([r["ra"] for r in sources], float),
                              np.array([r["dec"] for r in sources], float),
                              known.ids.tolist(), known.ra, known.dec,
                              radius_arcsec=s.association_radius_arcsec)
        processed = unix_to_mjd_tai(self.clock.now())
        with stages("forced_known"):
            forced = self._forced(item, visit, result, known, processed)
            if forced:
                self.l1db.store_visit_detector(visit, item.detector, forced_sources=forced,
                                               mark_ingested=False)
        with stages("package"):
            alerts = []
            for i, row in enumerate(sources):
                object_id = assoc.object_ids[i]
                dia_source = {**row, "diaSourceId": ids[i], "visit": visit,
                              "detector": item.detector, "diaObjectId": object_id,
                              "midpointMjdTai": mid, "band": result.band,
                              "timeProcessedMjdTai": processed}
                history = known.sources.get(object_id, [])
                dia_object = summarize_object(object_id, [*history, dia_source],
                                              validity_start=mid)
                alerts.append(assemble_alert(
                    dia_source=dia_source, dia_object=dia_object, prv_sources=history,
                    prv_forced=known.forced.get(object_id, []),
                    cutouts=result.cutouts(row["x"], row["y"], s.cutout_size)))
        return alerts, len(forced), assoc.n_new

    def _known(self, result: science.Result, visit: int, mid: float) -> Known:
        """Objects in the footprint, each rebuilt from its sources strictly before ``mid``."""
        region = result.footprint(self.settings.footprint_margin_arcsec)
        objects = self.l1db.objects_in_region(region, columns=["diaObjectId"])
        object_ids = objects.column("diaObjectId").to_pylist()
        since = mid - self.settings.history_days
        by_object: dict[int, list[dict[str, Any]]] = {}
        forced: dict[int, list[dict[str, Any]]] = {}
        if object_ids:
            for row in self.l1db.source_history(object_ids, since_mjd=since).to_pylist():
                if row["midpointMjdTai"] < mid and row["visit"] != visit:
                    by_object.setdefault(int(row["diaObjectId"]), []).append(_clean(row))
            for row in self.l1db.forced_source_history(object_ids,
                                                        since_mjd=since).to_pylist():
                if row["midpointMjdTai"] < mid and row["visit"] != visit \
                        and int(row["diaObjectId"]) in by_object:
                    forced.setdefault(int(row["diaObjectId"]), []).append(_clean(row))
        keep = sorted(by_object)
        summaries = [summarize_object(o, by_object[o], validity_start=mid) for o in keep]
        return Known(ids=np.array(keep, dtype=np.int64),
                     ra=np.array([o["ra"] for o in summaries], float),
                     dec=np.array([o["dec"] for o in summaries], float),
                     sources=by_object, forced=forced)

    def _forced(self, item: WorkItem, visit: int, result: science.Result, known: Known,
                processed: float) -> list[dict[str, Any]]:
        if not len(known.ids):
            return []
        inside = result.contains(known.ra, known.dec)
        ids, ra, dec = known.ids[inside], known.ra[inside], known.dec[inside]
        if not len(ids):
            return []
        measured = result.forced_photometry(ra, dec)
        out = []
        for i, object_id in enumerate(ids.tolist()):
            out.append(forced_source_record({
                "diaForcedSourceId": dia_forced_source_id(visit, item.detector, i),
                "diaObjectId": int(object_id), "ra": float(ra[i]), "dec": float(dec[i]),
                "visit": visit, "detector": item.detector, "midpointMjdTai":
                result.midpoint_mjd_tai, "band": result.band, "timeProcessedMjdTai": processed,
                **{k: _float_or_none(v[i]) for k, v in measured.items()}}))
        return out


def _float_or_none(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    """An L1 row as an alert-schema record (L1-only bookkeeping columns dropped)."""
    return {k: v for k, v in row.items() if k not in _L1_ONLY}


_L1_ONLY = frozenset({"pixelId", "ingestedAt"})


def build_pipeline(config: Config, bootstrap: str, *, camera: str = "simcam",
                   n_detectors: int | None = None, size: int | None = None, name: str = "",
                   clock: Clock | None = None, write_outputs: bool = True,
                   output_run: str | None = None,
                   detection_threshold: float = 5.0) -> PromptPipeline:
    """A pipeline wired to the configured repos, L1 database and alert topic."""
    from alertbutler.alerts.publish_datastore import PublishDatastore
    from alertbutler.l1db import L1db

    name = name or f"worker-{os.getpid()}"
    local_root = Path(config.butler.local_repo_root or config.data_dir / "local")
    landing = Path(config.prompt.landing_dir or config.data_dir / "landing")
    publish = PublishDatastore(bootstrap=bootstrap, topic_template=config.kafka.alert_topic,
                               settings=config.kafka.client,
                               compression=config.kafka.compression)
    repos = WorkerRepos.open(
        central_root=config.central_repo,
        local_root=local_root / safe_name(name.replace(":", "-"), "worker name"),
        publish_datastore=publish)
    settings = PipelineSettings(raw_timeout_s=config.prompt.raw_timeout_s,
                                association_wait_s=config.prompt.association_wait_s,
                                write_outputs=write_outputs, output_run=output_run,
                                detection_threshold=detection_threshold)
    return PromptPipeline(repos=repos, geometry=CameraGeometry.named(camera, n_detectors, size),
                          l1db=L1db(config.l1db_url), landing=landing, settings=settings,
                          clock=clock, name=name)
