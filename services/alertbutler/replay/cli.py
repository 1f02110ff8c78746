"""``alertbutler night``: record a night, replay it, verify a recording."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from alertbutler.cli import args as arg_types
from alertbutler.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    rec = subparsers.add_parser(
        "record", help="record a simulated night (or a live run) as a replayable directory",
        description="Record a night: nextVisit events with their times, raws with their "
        "arrival times, a butler export of its calibrations and templates, the pipeline "
        "configuration and the alerts it produced, under a checksummed manifest. --sim "
        "simulates the night and runs it once; --live reads a deployment's topics, landing "
        "area and central repository.")
    rec.add_argument("out", type=Path, help="new directory for the recording")
    src = rec.add_mutually_exclusive_group()
    src.add_argument("--sim", action="store_true", help="a simulated night (default)")
    src.add_argument("--live", action="store_true", help="a deployment's run (configured "
                     "Kafka, landing area and central repository)")
    rec.add_argument("--seed", type=int, default=None)
    rec.add_argument("--visits", type=int, default=None, help="number of visits (--sim)")
    rec.add_argument("--detectors", type=int, default=None)
    rec.add_argument("--detector-size", type=int, default=None, metavar="PIXELS")
    rec.add_argument("--visit", type=int, action="append", default=None,
                     help="record only this visit (--live; repeatable)")
    rec.add_argument("--workers", type=arg_types.workers, default=None,
                     help="worker processes (default: prompt.workers)")
    rec.add_argument("--tarball", type=Path, default=None,
                     help="also write the recording as this .tar or .tar.gz")
    rec.add_argument("--no-progress", action="store_true")
    rec.set_defaults(func=_record)

    rep = subparsers.add_parser(
        "replay", help="replay a recorded night into a new run and compare its alerts",
        description="Re-issue the recorded nextVisit events and raw arrivals on the recorded "
        "schedule scaled by --speed (0: as fast as the workers take them) into a new run "
        "(own central repo, L1 database, topics and output run), then compare the alerts "
        "with the recorded ones. Kafka and PostgreSQL come from the configuration "
        "(embedded broker and SQLite by default).")
    rep.add_argument("recording", type=Path, help="recording directory or tarball")
    rep.add_argument("--speed", type=float, default=1.0,
                     help="X times the recorded pace; 0: as fast as possible (default 1)")
    rep.add_argument("--workers", type=arg_types.workers, default=None,
                     help="worker processes (default: prompt.workers)")
    rep.add_argument("--run", dest="run_name", default=None,
                     help="output run (default: the recorded run + '-replay-<id>')")
    rep.add_argument("--l1db-url", default=None,
                     help="L1 database of the replay (default: SQLite in the replay "
                     "directory); never the recorded night's")
    rep.add_argument("--detection-threshold", type=float, default=None,
                     help="change the detection threshold (sigma) for this replay")
    rep.add_argument("--out", type=Path, default=None,
                     help="replay directory (default: <data_dir>/replays/<id>)")
    rep.add_argument("--no-outputs", action="store_true",
                     help="do not write calexps, differences, catalogs and previews")
    rep.add_argument("--into", type=Path, default=None, metavar="DATA_DIR",
                     help="feed the running deployment whose data directory this is "
                     "(`alertbutler up` writes DATA_DIR/up/deployment.json) instead of "
                     "running services of its own: its central repo gets the recording's "
                     "calibrations if it lacks them, its next-visit topic the events and its "
                     "landing area the raws, on the recorded schedule; then its alerts are "
                     "compared with the recorded ones")
    rep.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                     help="with --into: give up if the night is not processed and ingested "
                     "by then (default 1800)")
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")
    rep.add_argument("--no-progress", action="store_true")
    rep.set_defaults(func=_replay)

    ver = subparsers.add_parser("verify", help="check a recording against its manifest",
                                description="Check every file of a recording (size, sha256) "
                                "and print what it holds.")
    ver.add_argument("recording", type=Path)
    ver.set_defaults(func=_verify)


def _record(args: argparse.Namespace, config: Config) -> int:
    from rich.console import Console

    from alertbutler.replay.night import SimNight, record_live_night, record_sim_night

    if args.live:
        path = record_live_night(config, args.out, visits=args.visit, tarball=args.tarball)
        Console().print(f"recorded the live run in [bold]{path}[/bold]")
        return _verify_print(path)
    base = SimNight.default()
    night = SimNight(seed=base.seed if args.seed is None else args.seed,
                     n_visits=args.visits or base.n_visits,
                     n_detectors=args.detectors or base.n_detectors,
                     detector_size=args.detector_size or base.detector_size)
    path, result = record_sim_night(config, args.out, night, tarball=args.tarball,
                                    workers=args.workers or config.prompt.workers,
                                    progress=not args.no_progress)
    Console().print(f"recorded a simulated night ({night.n_visits} visits x "
                    f"{night.n_detectors} detectors of {night.detector_size} px) in "
                    f"[bold]{path}[/bold]: {len(result.alerts)} alerts, pipeline run "
                    f"{result.run_s:.1f} s, {len(result.errors)} visit-detector errors")
    return _verify_print(path)


def _verify_print(path: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    from alertbutler.replay.recording import Recording

    with Recording.open(path) as rec:
        night = rec.night
        table = Table(title=f"recording {path}", show_header=False)
        table.add_row("format", f"{rec.manifest['format']} v{rec.manifest['format_version']}")
        table.add_row("source", str(night.get("source")))
        table.add_row("instrument", str(night.get("instrument")))
        table.add_row("files", f"{len(rec.manifest['files'])} (all checksums verified)")
        schedule = rec.schedule()
        table.add_row("nextVisit events", str(sum(e.kind == "next_visit" for e in schedule)))
        table.add_row("raws", str(sum(e.kind == "raw" for e in schedule)))
        table.add_row("alerts", str(rec.alert_count))
        table.add_row("recorded duration", f"{night.get('duration_s', 0):.0f} s")
        table.add_row("recorded runs", ", ".join(map(str, night.get("runs", []))))
        Console().print(table)
    return 0


def _verify(args: argparse.Namespace, config: Config) -> int:
    return _verify_print(args.recording)


def _replay(args: argparse.Namespace, config: Config) -> int:
    from rich.console import Console

    from alertbutler.replay.compare import print_comparison
    from alertbutler.replay.night import replay_night

    if args.speed < 0:
        raise ValueError("--speed must be >= 0 (0: as fast as the workers take them)")
    if args.into is not None:
        return _replay_into(args, config)
    outcome = replay_night(config, args.recording, speed=args.speed,
                           workers=args.workers or config.prompt.workers,
                           run_name=args.run_name, l1db_url=args.l1db_url,
                           detection_threshold=args.detection_threshold,
                           progress=not args.no_progress and not args.json, out=args.out,
                           write_outputs=not args.no_outputs)
    s = outcome.summary
    if args.json:
        print(json.dumps({**s, "report": str(outcome.report)}, default=str))
        return 0
    console = Console()
    print_comparison(outcome.comparison, console)
    console.print(_summary_lines(s))
    console.print(f"report: {outcome.report}")
    return 0


def _summary_lines(s: dict[str, Any]) -> str:
    lines = [
        f"replay {s['run_id']} into run {s['output_run']} at speed {s['speed']:g}: "
        f"{s['alerts_replayed']} alerts ({s['alerts_recorded']} recorded), "
        f"{s['differences']} differences",
        "paired by position instead of diaSourceId: {new} new, {missing} missing, {changed} "
        "changed".format(**s["by_position"]),
        f"recorded duration {s['recorded_duration_s']:.0f} s, replayed in {s['replay_s']:.1f} s "
        f"(+{s['setup_s']:.1f} s setup) = {s['speedup']}x",
        f"L1 database {s['l1db_url']}: "
        + ", ".join(f"{t} {v['rows']}" for t, v in s["l1db"].items())
        + ("" if s["l1db_matches_recording"] is None else
           f"; rows identical to the recorded run: {s['l1db_matches_recording']}"),
    ]
    if s.get("schedule_spacing_max_rel_error") is not None:
        lines.append(f"schedule kept within {100 * s['schedule_spacing_max_rel_error']:.1f}% "
                     "of the recorded spacing / speed")
    for error in s.get("errors", [])[:10]:
        lines.append(f"error: {error}")
    return "\n".join(lines)


def _replay_into(args: argparse.Namespace, config: Config) -> int:
    from rich.console import Console

    from alertbutler.replay.compare import print_comparison
    from alertbutler.replay.into import replay_into

    own = {"--workers": args.workers, "--run": args.run_name, "--l1db-url": args.l1db_url,
           "--detection-threshold": args.detection_threshold,
           "--no-outputs": args.no_outputs or None}
    refused = [name for name, value in own.items() if value is not None]
    if refused:
        raise ValueError(f"{', '.join(refused)}: the deployment's own services and settings "
                         "are used with --into")
    outcome = replay_into(config, args.recording, args.into, speed=args.speed,
                          timeout_s=args.timeout, out=args.out,
                          progress=not args.no_progress and not args.json)
    s = outcome.summary
    if args.json:
        print(json.dumps({**s, "report": str(outcome.report)}, default=str))
        return 0
    console = Console()
    print_comparison(outcome.comparison, console)
    lines = [
        f"replayed {s['recording']} into the deployment at {s['into']} (pid "
        f"{s['deployment_pid']}) at speed {s['speed']:g}: {s['visit_detectors_ok']} of "
        f"{s['visit_detectors']} visit-detectors ok, {s['alerts_replayed']} alerts "
        f"({s['alerts_recorded']} recorded), {s['differences']} differences (ignoring "
        f"{', '.join(s['ignored_fields'])})",
        f"recorded duration {s['recorded_duration_s']:.0f} s, played in {s['replay_s']:.1f} s "
        f"(+{s['setup_s']:.1f} s setup, {s['calibration_datasets_added']} calibration "
        "datasets imported)",
    ]
    if s.get("schedule_spacing_max_rel_error") is not None:
        lines.append(f"schedule kept within {100 * s['schedule_spacing_max_rel_error']:.1f}% "
                     "of the recorded spacing / speed")
    lines += [f"error: {e}" for e in s["errors"][:10]]
    console.print("\n".join(lines))
    console.print(f"report: {outcome.report}")
    return 0
