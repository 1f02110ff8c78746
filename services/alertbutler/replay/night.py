"""Record a night and replay it: the two halves of ``alertbutler night``.

Recording a simulated night captures its inputs as the observatory would deliver them (the
nextVisit events at their emission times, each raw at the end of its exposure plus readout,
the central repository's calibrations and templates as a butler export, the pipeline
configuration and the ground truth), then runs the pipeline over them once, with the replayed
clock, and stores the alerts it published. Recording a live run captures the same from a
deployment's topics, landing area and central repository (:func:`record_live_night`).

Replaying runs the pipeline again over a recording (:func:`replay_night`) in a fresh
environment (:mod:`alertbutler.replay.night_run`) and compares what it published with what was
recorded (:mod:`alertbutler.replay.compare`): a deterministic pipeline shows zero differences;
a changed detection threshold shows exactly the alerts it changed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from alertbutler.config import Config
from alertbutler.replay.compare import Comparison, compare_alerts, html_page, html_section
from alertbutler.replay.night_run import (
    NightRunResult,
    NightSpec,
    RunOptions,
    l1db_fingerprint,
    run_night,
)
from alertbutler.replay.recording import (
    Recording,
    RecordingWriter,
    ScheduledEvent,
    check_run_name,
    replay_run_name,
)

log = logging.getLogger(__name__)

EVENTS_FILE = "events/next_visit.avro"
#: seconds between the end of an exposure and its raw landing (readout and transfer)
READOUT_S = 2.0
#: fields that carry processing time; ignored when comparing with a live (wall-clock) run
WALL_CLOCK_FIELDS = ("*.timeProcessedMjdTai",)


@dataclass(frozen=True, kw_only=True)
class SimNight:
    """The simulated night to record; the defaults are the main job's default night."""

    seed: int = 1
    n_visits: int = 8
    n_detectors: int = 4
    detector_size: int = 2048
    #: fields and bands of the night (None: the simulator's defaults)
    n_fields: int | None = None
    bands: tuple[str, ...] | None = None

    @classmethod
    def default(cls) -> SimNight:
        from alertbutler.night.plan import SimulatedNight

        o = SimulatedNight()
        return cls(seed=o.seed, n_visits=o.n_visits, n_detectors=o.n_detectors,
                   detector_size=o.detector_size)


@dataclass
class ReplayOutcome:
    """A replay's result, its comparison with the recording, and where the report is."""

    run: NightRunResult
    comparison: Comparison
    l1db: dict[str, dict[str, Any]]
    report: Path
    summary: dict[str, Any] = field(default_factory=dict)
    #: the same comparison with alerts paired by position (ids shift when detection changes)
    by_position: Comparison | None = None


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


# ----------------------------------------------------------------------------- recordings
def _spec(root: Path, night: dict[str, Any], schedule: list[ScheduledEvent]) -> NightSpec:
    from alertbutler.alerts import decode_message
    from alertbutler.replay.container import ContainerReader, split_by_sizes

    events: list[tuple[bytes | None, bytes]] = []
    with open(root / EVENTS_FILE, "rb") as fh:
        reader = ContainerReader(fh, str(root / EVENTS_FILE))
        index = reader.index() or {}
        sizes, keys = index.get("sizes", []), index.get("keys", [])
        header = b"\0" + int(reader.metadata["alertbutler.schema_id"]).to_bytes(4, "big")
        i = 0
        for block in reader.blocks():
            for body in split_by_sizes(block, sizes[i:i + block.count], reader.name):
                key = keys[i] if i < len(keys) else None
                events.append((None if key is None else key.encode(), header + body))
                i += 1
    visits = {}
    for _, value in events:
        record = decode_message(value).record
        visits[str(record["groupId"])] = int(record["visit"])
    return NightSpec(root=root, instrument=night["instrument"], camera=night["camera"],
                     n_detectors=int(night["n_detectors"]),
                     detector_size=night.get("detector_size"), events=events,
                     schedule=schedule, visits=visits)


def _export_central(central: Path, target: Path) -> list[str]:
    """Export every calibration, template and sky map of a central repo (not outputs)."""
    from alertbutler.butler import Butler, CollectionType
    from alertbutler.prompt.outputs import OUTPUT_TYPES

    with Butler(central) as butler:
        refs = []
        runs = []
        calib_collections = [c.name for c in butler.query_collections("*")
                             if c.type is CollectionType.CALIBRATION]
        for rec in butler.query_collections("*"):
            if rec.type is not CollectionType.RUN:
                continue
            these = [r for r in butler.registry.refs_in_run(rec.name)
                     if r.dataset_type.parent_name not in OUTPUT_TYPES]
            if these:
                runs.append(rec.name)
                refs.extend(these)
        butler.export(target, refs, calibration_collections=calib_collections)
    return runs


def _write_events(writer: RecordingWriter,
                  messages: list[tuple[bytes | None, bytes, int | None]]) -> None:
    from alertbutler.alerts import NEXT_VISIT_SCHEMA_ID, schema_info

    writer.write_messages(EVENTS_FILE, NEXT_VISIT_SCHEMA_ID,
                          schema_info(NEXT_VISIT_SCHEMA_ID).text, messages)


def _add_alerts(writer: RecordingWriter, alerts: Iterable[tuple[bytes | None, bytes,
                                                                 int | None]]) -> int:
    from alertbutler.alerts import decode_message

    by_visit: dict[int, list[tuple[bytes | None, bytes, int | None]]] = {}
    schema_ids = set()
    for key, value, ts in alerts:
        decoded = decode_message(value)
        schema_ids.add(int.from_bytes(value[1:5], "big"))
        by_visit.setdefault(int(decoded.record["diaSource"]["visit"]), []).append(
            (key, value, ts))
    if len(schema_ids) > 1:
        raise ValueError(f"alerts of several schema ids {sorted(schema_ids)}: cannot record")
    from alertbutler.alerts import schema_info

    n = 0
    for visit, messages in sorted(by_visit.items()):
        schema_id = int.from_bytes(messages[0][1][1:5], "big")
        writer.add_alerts(visit, schema_id, schema_info(schema_id).text, messages)
        n += len(messages)
    return n


def record_sim_night(config: Config, out: Path, night: SimNight | None = None, *,
                     tarball: Path | None = None, workers: int = 2, progress: bool = True,
                     detection_threshold: float | None = None,
                     write_outputs: bool = True) -> tuple[Path, NightRunResult]:
    """Simulate a night, run it once with the replayed clock, and record it all in ``out``."""
    from alertbutler.prompt.central import build_central_repo
    from alertbutler.prompt.clock import mjd_tai_to_unix
    from alertbutler.prompt.events import NextVisit, encode_next_visit
    from alertbutler.prompt.outputs import output_run
    from alertbutler.sim.camera import Camera
    from alertbutler.sim.files import write_raw
    from alertbutler.sim.night import NightConfig
    from alertbutler.sim.simulator import SimConfig, Simulator

    night = night or SimNight.default()
    camera = Camera(n_detectors=night.n_detectors, nx=night.detector_size,
                    ny=night.detector_size)
    shape: dict[str, Any] = {}
    if night.n_fields is not None:
        shape["n_fields"] = night.n_fields
    if night.bands is not None:
        shape["bands"] = tuple(night.bands)
    sim = Simulator(SimConfig(seed=night.seed, camera=camera,
                              night=NightConfig(n_visits=night.n_visits, **shape)))
    writer = RecordingWriter(out)
    messages: list[tuple[bytes | None, bytes, int | None]] = []
    truths = []
    bar = _simulation_progress(progress, len(sim.visits) * camera.n_detectors)
    for index, (visit, record) in enumerate(zip(sim.visits, sim.next_visit_events(),
                                                strict=True)):
        sent = mjd_tai_to_unix(record["emit_mjd_tai"])
        event = NextVisit.from_record(record, sent_at=sent)
        messages.append((event.group_id.encode(), encode_next_visit(event), round(sent * 1000)))
        writer.schedule.append(ScheduledEvent(sent, "next_visit", event.group_id, index=index))
        arrival = mjd_tai_to_unix(visit.mjd_tai) + visit.exptime + READOUT_S
        for detector in camera.detectors:
            raw = sim.raw(visit, detector)
            rel = f"raws/{camera.name}/{event.group_id}/{detector}.fits"
            write_raw(writer.path(rel), raw.data, raw.header)
            truths.append(raw.truth)
            writer.schedule.append(ScheduledEvent(arrival, "raw", event.group_id,
                                                  detector=detector, file=rel))
            bar.advance()
    bar.stop()
    _write_events(writer, messages)
    if truths:
        from astropy.table import vstack

        vstack(truths).write(writer.path("truth/truth.ecsv"), format="ascii.ecsv")
    with tempfile.TemporaryDirectory(prefix="alertbutler-record-") as tmp:
        build_central_repo(Path(tmp) / "central", sim)
        calib_runs = _export_central(Path(tmp) / "central", writer.root / "calibs")
    recorded_run = output_run(camera.name)
    pipeline = _pipeline_config(detection_threshold)
    writer.write_json("config/pipeline.json", pipeline)
    meta = {"source": "sim", "instrument": camera.name, "camera": camera.name,
            "n_detectors": camera.n_detectors, "detector_size": night.detector_size,
            "seed": night.seed, "n_visits": night.n_visits, "day_obs": sim.night.day_obs,
            "clock": "recorded", "runs": [recorded_run, *calib_runs]}
    spec = _spec(writer.root, meta, list(writer.schedule))
    run_id = new_run_id()
    result = run_night(config, spec, RunOptions(
        speed=0.0, workers=workers, output_run=recorded_run, progress=progress,
        detection_threshold=detection_threshold, write_outputs=write_outputs),
        Path(config.data_dir).resolve() / "recordings-work" / run_id, run_id=run_id,
        label="record")
    meta.update(n_alerts=len(result.alerts), duration_s=spec.duration_s,
                run_errors=result.errors[:50], l1db=l1db_fingerprint(result.l1db_url))
    _add_alerts(writer, result.alerts)
    return writer.finish(meta, tarball=tarball), result


class _simulation_progress:
    """A progress bar over the raws being simulated (or nothing)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar: Any = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress("{task.description:<30}", BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn())
            self._task = self._bar.add_task("record: simulating raws", total=total)
            self._bar.start()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _pipeline_config(detection_threshold: float | None) -> dict[str, Any]:
    """The pipeline configuration a recording keeps (what a replay must reproduce)."""
    out: dict[str, Any] = {"detection_threshold": detection_threshold or 5.0}
    try:
        from alertbutler.prompt.pipeline import PipelineSettings

        out["pipeline_settings"] = dataclasses.asdict(PipelineSettings())
    except Exception:  # pragma: no cover - settings that do not serialize
        pass
    return out


def record_live_night(config: Config, out: Path, *, visits: Sequence[int] | None = None,
                      tarball: Path | None = None, timeout_s: float = 60.0) -> Path:
    """Record what a deployment did: its nextVisit topic, landed raws, alerts and central repo.

    Times are what the deployment saw: each event's Kafka timestamp, each raw's landing time
    (its file's modification time). ``visits`` limits the recording to those visits.
    """
    from alertbutler.alerts import decode_message
    from alertbutler.replay.night_run import collect_alerts

    bootstrap = config.kafka.bootstrap_servers
    if not bootstrap:
        raise ValueError("recording a live run needs kafka.bootstrap_servers (the deployment)")
    landing = Path(config.prompt.landing_dir or config.data_dir / "landing")
    writer = RecordingWriter(out)
    wanted = None if visits is None else {int(v) for v in visits}
    events = _read_topic(config, config.kafka.next_visit_topic, timeout_s)
    messages: list[tuple[bytes | None, bytes, int | None]] = []
    instrument = ""
    for key, value, ts in events:
        decoded = decode_message(value)
        if decoded.kind != "next_visit":
            continue
        rec = decoded.record
        if wanted is not None and rec["visit"] not in wanted:
            continue
        instrument = rec["instrument"]
        group = str(rec["groupId"])
        index = len(messages)
        messages.append((key or group.encode(), value, ts))
        writer.schedule.append(ScheduledEvent((ts or 0) / 1000.0, "next_visit", group,
                                              index=index))
        group_dir = landing / instrument / group
        for raw in sorted(group_dir.glob("*.fits")) if group_dir.is_dir() else []:
            if not raw.stem.isdigit():
                continue
            rel = f"raws/{instrument}/{group}/{raw.name}"
            writer.add_file(rel, raw)
            writer.schedule.append(ScheduledEvent(raw.stat().st_mtime, "raw", group,
                                                  detector=int(raw.stem), file=rel))
    if not messages:
        raise ValueError(f"no nextVisit events on {config.kafka.next_visit_topic!r}"
                         + (f" for visits {sorted(wanted)}" if wanted else ""))
    _write_events(writer, messages)
    calib_runs = _export_central(config.central_repo, writer.root / "calibs")
    alerts, _, _ = collect_alerts(config, 0, timeout_s=timeout_s)
    group_visits = {int(decode_message(v).record["visit"]) for _, v, _ in messages}
    alerts = [a for a in alerts
              if int(decode_message(a[1]).record["diaSource"]["visit"]) in group_visits]
    _add_alerts(writer, alerts)
    writer.write_json("config/pipeline.json", {"config": config.as_dict(redact=True)})
    from alertbutler.prompt.outputs import output_run

    detectors = sorted({e.detector for e in writer.schedule if e.detector is not None})
    meta = {"source": "live", "instrument": instrument, "camera": instrument,
            "n_detectors": (max(detectors) + 1) if detectors else 0, "detector_size": None,
            "clock": "wall", "n_alerts": len(alerts),
            "runs": [output_run(instrument), *calib_runs],
            "duration_s": (max(e.t for e in writer.schedule) - min(e.t for e in writer.schedule))}
    return writer.finish(meta, tarball=tarball)


def _read_topic(config: Config, topic: str, timeout_s: float
                ) -> list[tuple[bytes | None, bytes, int | None]]:
    """Every message of a topic from the start to its high watermark (what came within
    ``timeout_s``)."""
    from alertbutler.kafka.read import iter_topic

    out: list[tuple[bytes | None, bytes, int | None]] = []
    try:
        for msg in iter_topic(config.kafka.bootstrap_servers, topic,
                              settings={"log_level": 3, **config.kafka.client},
                              idle_timeout=None, timeout=timeout_s):
            out.append((msg.key, msg.value, msg.timestamp_ms))
    except LookupError:
        raise ValueError(f"topic {topic!r} does not exist") from None
    except TimeoutError:
        pass
    return out


# ----------------------------------------------------------------------------- replays
def recorded_alerts(recording: Recording) -> list[dict[str, Any]]:
    """The recorded alerts, decoded."""
    import fastavro

    out: list[dict[str, Any]] = []
    for path in recording.alert_files():
        with open(path, "rb") as fh:
            # fastavro types a datum as any Avro value; alerts are records
            out.extend(cast(Iterator[dict[str, Any]], fastavro.reader(fh)))
    return out


def replay_night(config: Config, source: Path, *, speed: float = 0.0, workers: int = 2,
                 run_name: str | None = None, l1db_url: str | None = None,
                 detection_threshold: float | None = None, progress: bool = True,
                 out: Path | None = None, write_outputs: bool = True) -> ReplayOutcome:
    """Replay a recording (see the module doc); writes a report and ``summary.json``."""
    from alertbutler.alerts import decode_alert

    with Recording.open(source) as recording:
        night = recording.night
        recorded_runs = [str(r) for r in night.get("runs", [])]
        run_id = new_run_id()
        base_run = recorded_runs[0] if recorded_runs else f"prompt/{night['instrument']}/outputs"
        output_run = check_run_name(run_name or replay_run_name(base_run, run_id),
                                    recorded_runs)
        root = (out or Path(config.data_dir) / "replays" / run_id).resolve()
        spec = _spec(recording.root, night, recording.schedule())
        result = run_night(config, spec, RunOptions(
            speed=speed, workers=workers, output_run=output_run, l1db_url=l1db_url,
            detection_threshold=detection_threshold, progress=progress,
            write_outputs=write_outputs), root, run_id=run_id)
        replayed = [decode_alert(v) for _, v, _ in result.alerts]
        ignore = WALL_CLOCK_FIELDS if night.get("clock") == "wall" else ()
        recorded = recorded_alerts(recording)
        comparison = compare_alerts(recorded, replayed, ignore=ignore)
        by_position = compare_alerts(recorded, replayed, ignore=ignore, match="position")
        l1 = l1db_fingerprint(result.l1db_url)
        recorded_l1 = night.get("l1db")
        summary = {
            "recording": str(source), "run_id": run_id, "output_run": output_run,
            "speed": speed, "workers": workers, "l1db_url": _safe_url(result.l1db_url),
            "alert_topic": result.alert_topic,
            "recorded_duration_s": round(spec.duration_s, 3),
            "setup_s": round(result.setup_s, 2), "replay_s": round(result.run_s, 2),
            "total_s": round(result.total_s, 2),
            "speedup": round(spec.duration_s / result.run_s, 2) if result.run_s else None,
            "cpu_s": round(result.cpu_s, 1),
            # what the speed-up would be with the machine's cores to itself
            "cpu_bound_speedup": round(spec.duration_s / (result.cpu_s / (os.cpu_count() or 1)),
                                       2) if result.cpu_s else None,
            "alerts_recorded": comparison.n_recorded, "alerts_replayed": comparison.n_replayed,
            "differences": comparison.differences, "new": len(comparison.new),
            "missing": len(comparison.missing), "changed": len(comparison.changed),
            "by_position": {"new": len(by_position.new), "missing": len(by_position.missing),
                            "changed": len(by_position.changed),
                            "differences": by_position.differences},
            "ignored_fields": list(ignore),
            "l1db": l1, "l1db_matches_recording": (l1 == recorded_l1) if recorded_l1 else None,
            "errors": result.errors[:50],
            "detection_threshold": detection_threshold,
        }
        if speed:
            summary["schedule_max_late_s"] = round(result.schedule.max_late_s, 3)
            errs = result.schedule.spacing_errors()
            summary["schedule_spacing_max_rel_error"] = round(max(map(abs, errs)), 4) \
                if errs else None
        report = write_replay_report(root, summary, comparison, by_position)
    return ReplayOutcome(result, comparison, l1, report, summary, by_position)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def write_replay_report(root: Path, summary: dict[str, Any], comparison: Comparison,
                        by_position: Comparison | None = None) -> Path:
    """``summary.json`` (with the full comparison) and ``report.html`` under ``root``."""
    import html as html_mod

    root.mkdir(parents=True, exist_ok=True)
    full = {**summary, "comparison": comparison.as_dict()}
    if by_position is not None:
        full["comparison_by_position"] = by_position.as_dict()
    (root / "summary.json").write_text(json.dumps(full, indent=1, default=str) + "\n")
    rows = "".join(f"<tr><th>{html_mod.escape(str(k))}</th><td>{html_mod.escape(str(v))}</td>"
                   "</tr>" for k, v in summary.items() if not isinstance(v, dict | list))
    run = f"<section><h2>Run</h2><table>{rows}</table></section>"
    path = root / "report.html"
    sections = [run, html_section(comparison)]
    if by_position is not None:
        sections.append(html_section(
            by_position, title="The same alerts paired by position (within 0.5 arcsec, same "
            "visit and detector): diaSourceIds shift when detections are added or dropped"))
    path.write_text(html_page(sections,
                              title=f"alertbutler night replay {summary.get('run_id', '')}"))
    return path


def bench_night_speedup(*, workers: int = 2, night: SimNight | None = None,
                        recording: Path | None = None) -> dict[str, Any]:
    """Record the default simulated night, replay it at --speed 0, and time the replay.

    ``night_speedup`` = recorded duration / (replay setup + run, from the start of the
    replay to the last visit-detector ingested; comparison and teardown excluded).
    """
    from alertbutler.config import load_config

    night = night or SimNight.default()
    with tempfile.TemporaryDirectory(prefix="alertbutler-bench-night-") as tmp:
        config = load_config(env={"ALERTBUTLER_GENERAL__DATA_DIR": tmp})
        if recording is None:
            t = time.perf_counter()
            path, recorded = record_sim_night(config, Path(tmp) / "recording", night,
                                              workers=workers, progress=False)
            print(f"recorded the default night ({night.n_visits} visits x {night.n_detectors}"
                  f" detectors of {night.detector_size} px, {len(recorded.alerts)} alerts) in "
                  f"{time.perf_counter() - t:.0f} s (not timed)", flush=True)
        else:
            path = recording
            print(f"replaying the recording {path} (recorded earlier, not timed)", flush=True)
        outcome = replay_night(config, path, speed=0, workers=workers, progress=False)
    s = outcome.summary
    replay_s = outcome.run.setup_s + outcome.run.run_s
    speedup = s["recorded_duration_s"] / replay_s if replay_s else None
    print(f"night replay at --speed 0: recorded {s['recorded_duration_s']:.0f} s replayed in "
          f"{replay_s:.1f} s (setup {outcome.run.setup_s:.1f} s + run {outcome.run.run_s:.1f} "
          f"s) = {speedup:.1f}x; {s['differences']} differences, L1 rows identical: "
          f"{s['l1db_matches_recording']}", flush=True)
    print(f"CPU of the replay (workers + fan-out, ingester, scheduler): {s['cpu_s']} s: with "
          f"the {os.cpu_count()} cores to itself the speed-up would be about "
          f"{s['cpu_bound_speedup']}x", flush=True)
    return {"night_speedup": round(speedup, 2) if speedup else None,
            "night_cpu_s": s["cpu_s"], "night_cpu_bound_speedup": s["cpu_bound_speedup"],
            "night_recorded_duration_s": s["recorded_duration_s"],
            "night_replay_s": round(replay_s, 2), "night_replay_run_s": s["replay_s"],
            "night_alerts": s["alerts_replayed"], "night_differences": s["differences"],
            "night_l1db_identical": s["l1db_matches_recording"]}
