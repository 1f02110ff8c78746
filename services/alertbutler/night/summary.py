"""The main job's closing numbers: alerts read back, L1 contents, latency, science quality,
the report, and the lines ``alertbutler run`` prints."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from alertbutler.alerts.topic_positions import TopicPositions
from alertbutler.config import Config
from alertbutler.prompt.quality import evaluate
from alertbutler.prompt.report import ReportData, percentile, write_report
from alertbutler.prompt.status import VisitDetectorStatus

if TYPE_CHECKING:
    from alertbutler.prompt.driver import NightDriver
    from alertbutler.sim import Simulator


@dataclass
class MainJobResult:
    """What ``alertbutler run`` did: its summary, report and each visit-detector's status."""

    summary: dict[str, Any]
    report: Path
    statuses: dict[tuple[int, int], VisitDetectorStatus]
    alerts: list[dict[str, Any]]
    #: the crash point struck (``crash_at``): the mark it left, with the killed worker's pid
    killed_worker: dict[str, Any] | None = None


def read_alerts(config: Config, *, timeout: float = 60.0
                ) -> tuple[list[dict[str, Any]], int]:
    """Every alert on the alert topic (markers skipped), first copy of each diaSourceId,
    and the number of alert messages (re-processed visit-detectors publish twice)."""
    alerts, n_messages, _ = read_alerts_placed(config, timeout=timeout)
    return alerts, n_messages


def read_alerts_placed(config: Config, *, timeout: float = 60.0
                       ) -> tuple[list[dict[str, Any]], int, TopicPositions]:
    """:func:`read_alerts`, with where each returned alert sat on the topic and where each
    partition's reading ended: what the night archive records so a backfill can continue
    on the topic from it (see :mod:`alertbutler.alerts.topic_positions`)."""
    from alertbutler.alerts import decode_message
    from alertbutler.kafka.read import iter_topic

    seen: dict[int, tuple[dict[str, Any], tuple[int, int, int]]] = {}
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    n_messages = 0
    with contextlib.suppress(TimeoutError, LookupError):  # what came in time; no topic: none
        for msg in iter_topic(config.kafka.bootstrap_servers, config.kafka.alert_topic,
                              settings={"log_level": 3, **config.kafka.client},
                              idle_timeout=None, timeout=timeout):
            starts.setdefault(msg.partition, msg.offset)
            ends[msg.partition] = max(ends.get(msg.partition, 0), msg.offset + 1)
            decoded = decode_message(msg.value)
            if decoded.kind == "alert":
                n_messages += 1
                seen.setdefault(int(decoded.record["diaSourceId"]),
                                (decoded.record, (msg.partition, msg.offset, msg.timestamp_ms)))
    order = sorted(seen)
    placed = TopicPositions(config.kafka.alert_topic, starts, ends,
                            tuple(seen[k][1] for k in order), _cluster_id(config))
    return [seen[k][0] for k in order], n_messages, placed


def _cluster_id(config: Config) -> str:
    """The broker's cluster id ("" when it does not answer): an archive's offsets are
    offsets on that cluster only."""
    from confluent_kafka import KafkaException

    from alertbutler.kafka.factory import make_admin

    try:
        return make_admin(config, log_level=3).list_topics(timeout=10).cluster_id or ""
    except KafkaException:  # the archive is still written, only without it
        return ""


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


class NightStatuses(Protocol):
    """What the summary reads of a night's monitor (:class:`.progress.NightProgress`)."""

    @property
    def statuses(self) -> Mapping[tuple[int, int], VisitDetectorStatus]: ...

    @property
    def refused(self) -> Sequence[VisitDetectorStatus]: ...

    @property
    def ingested_at(self) -> Mapping[tuple[int, int], float]: ...


def summarize(*, config: Config, sim: Simulator, root: Path, monitor: NightStatuses,
              driver: NightDriver, started: float, killed: dict[str, Any] | None,
              facts: Mapping[str, Any]) -> MainJobResult:
    """Read the night's alerts and L1 rows back, measure latency and science quality,
    write the report and the night's ledger; ``facts``: how the night was run."""
    from alertbutler.l1db import L1db

    statuses = dict(monitor.statuses)
    ok = {k: s for k, s in statuses.items() if s.ok}
    published = {i for s in ok.values() for i in s.alert_ids}
    every, n_messages, placed = read_alerts_placed(config)
    alerts = [a for a in every if a["diaSourceId"] in published]
    in_l1 = 0
    l1_rows = 0
    with L1db(config.l1db_url) as db:
        for visit, detector in ok:
            ids = db.sources_of_visit_detector(visit, detector).column("diaSourceId").to_pylist()
            l1_rows += len(ids)
            in_l1 += len(published & set(ids))
    lat_kafka: list[float] = []
    lat_l1: list[float] = []
    for key, s in ok.items():
        arrived = s.raw_arrived_at or driver.log.arrived_at.get(key)
        if arrived is None or s.alerts_acked_at is None:  # no latency to measure
            continue
        lat_kafka += [s.alerts_acked_at - arrived] * s.n_alerts
        if key in monitor.ingested_at:
            lat_l1 += [monitor.ingested_at[key] - arrived] * s.n_alerts
    if driver.log.truth:
        from astropy.table import vstack

        vstack(driver.log.truth).write(root / "truth.ecsv", overwrite=True)
    truth = [dict(zip(t.colnames, row, strict=True)) for t in driver.log.truth for row in t]
    quality = evaluate([a["diaSource"] for a in alerts], truth, processed=ok.keys())
    degraded = [k for k, s in ok.items() if s.psf_degraded]
    degraded_quality = evaluate([a["diaSource"] for a in alerts], truth, processed=degraded)
    errors = sorted(f"visit {s.visit} detector {s.detector}: {s.reason}: {s.message}"
                    for s in [*statuses.values(), *monitor.refused] if not s.ok)
    per_visit: dict[int, int] = {v.visit: 0 for v in sim.visits}
    for a in alerts:
        per_visit[a["diaSource"]["visit"]] += 1
    summary: dict[str, Any] = {
        "visits": len(driver.log.announced),
        "visit_detectors": len(statuses),
        "visit_detectors_ok": len(ok),
        "visit_detectors_failed": len(statuses) - len(ok) + len(monitor.refused),
        "alerts_published": len(published),
        "alerts_read_back": len(alerts),
        "alert_messages": n_messages,
        "alerts_in_l1db": in_l1,
        "l1db_diasource_rows": l1_rows,
        "visit_detectors_degraded_psf": len(degraded),
        "degraded_psf_completeness": _round(degraded_quality.completeness),
        "degraded_psf_purity": _round(degraded_quality.purity),
        "completeness": _round(quality.completeness),
        "purity": _round(quality.purity),
        "n_truth_bright": quality.n_truth_bright,
        "n_truth_bright_found": quality.n_truth_bright_found,
        "astrometry_rms_arcsec": _round(quality.astrometry_rms_arcsec, 4),
        "photometry_bias": _round(quality.photometry_bias, 4),
        "latency_p50_s": _round(percentile(lat_kafka, 50)),
        "latency_p98_s": _round(percentile(lat_kafka, 98)),
        "latency_l1db_p50_s": _round(percentile(lat_l1, 50)),
        "latency_l1db_p98_s": _round(percentile(lat_l1, 98)),
        "killed_worker": killed,
        **facts,
        "wall_time_s": round(time.time() - started, 1),
        "errors": errors,
    }
    stage_names = sorted({k for s in ok.values() for k in s.stages})
    summary["stage_median_s"] = {
        k: _round(percentile([s.stages[k] for s in ok.values() if k in s.stages], 50))
        for k in stage_names}
    brightest = sorted(alerts, key=lambda a: -(a["diaSource"].get("snr") or 0))[:4]
    data = ReportData(summary=summary, alerts_per_visit=per_visit, latency_kafka_s=lat_kafka,
                      latency_l1db_s=lat_l1, errors=errors, cutout_alerts=brightest,
                      positions=[(a["diaSource"]["ra"], a["diaSource"]["dec"],
                                  a["diaSource"]["visit"]) for a in alerts])
    from alertbutler.prompt.ledger import ALERTS, entries_from, write_ledger

    # the night's alerts are kept once, in the ledger's directory; the report links them
    write_ledger(root, alert_topic=config.kafka.alert_topic, l1db_url=config.l1db_url,
                 entries=entries_from(statuses, every), alerts=every,
                 positions=placed)
    data.files = [("the night's alerts: an Avro container file (deflate, writer schema in "
                   "its header) that any Avro reader opens", f"../night/{ALERTS}")]
    report = write_report(root / "report", data)
    return MainJobResult(summary=summary, report=report, statuses=statuses, alerts=alerts,
                         killed_worker=killed)


def _degraded_note(s: dict[str, Any]) -> str:
    n = s.get("visit_detectors_degraded_psf", 0)
    if not n:
        return ""
    return (f" ({n} ok with a fallback PSF model or kernel: completeness "
            f"{s['degraded_psf_completeness']}, purity {s['degraded_psf_purity']} there)")


def print_summary(result: MainJobResult) -> None:
    s = result.summary
    lines = [
        f"visits {s['visits']}, visit-detectors {s['visit_detectors_ok']} ok / "
        f"{s['visit_detectors_failed']} failed" + _degraded_note(s),
        f"alerts published {s['alerts_published']}, in the L1 database {s['alerts_in_l1db']}",
        f"latency raw -> Kafka ack p50 {s['latency_p50_s']} s, p98 {s['latency_p98_s']} s; "
        f"raw -> L1 DB p50 {s['latency_l1db_p50_s']} s, p98 {s['latency_l1db_p98_s']} s",
        f"completeness {s['completeness']} ({s['n_truth_bright_found']}/{s['n_truth_bright']} "
        f"injected variables+transients with difference S/N >= 10), purity {s['purity']}",
        f"astrometry rms {s['astrometry_rms_arcsec']} arcsec, photometry bias "
        f"{s['photometry_bias']}",
        f"wall time {s['wall_time_s']} s",
    ]
    for error in s.get("errors", [])[:10]:
        lines.append(f"error: {error}")
    print("\n".join(lines))
    print(json.dumps({k: s[k] for k in ("visits", "alerts_published", "alerts_in_l1db",
                                        "completeness", "purity", "latency_p50_s",
                                        "latency_p98_s")}))
    print(f"report: {result.report}")
