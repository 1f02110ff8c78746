"""Replay benchmarks: a recorded night at --speed 0, and an alert archive into the broker.

* ``archive_replay_per_s``: Rubin-size alert packets (~35 KB: a diaSource, 30 previous
  diaSources and forced sources, a diaObject, three 30 x 30 float32 FITS cutouts of distinct
  noise, so the producer's compression cannot cheat on repeats) are written once as an alert
  archive of ours (per-visit Avro container files with their index), outside the timed part;
  the timed part streams the archive into a topic and waits until every message is
  acknowledged (acks=all, idempotent producer, zstd). Run on each broker engine
  (``--engine embedded|kafka|both``, default both, one after the other), under
  ``"embedded"`` / ``"kafka"``, with that broker's raw ceiling for the same messages
  (``bench/_ceiling.py``: produced with the replay's own producer settings, and read back
  without decoding) and ``archive_replay_fraction_of_ceiling``.
* ``schedule_max_spacing_error``, ``schedule_max_late_s``: a 20-event timeline (5 s apart)
  played at --speed 10 by the replay's scheduler, each event landing a 2.9 KB file the way a
  raw lands (written aside, renamed): the largest relative error of an interval against the
  recorded one / 10, and the latest any event went out. The tests check only that nothing goes
  out early; how closely a machine keeps time under its load is this figure's job.
* ``night_speedup``: the recorded duration of the default simulated night divided by the
  time to replay its recording at --speed 0 (see ``alertbutler night``); on the embedded
  broker the night replay starts for itself.

Prints progress, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

import _ceiling


def _cutout_maker(size: int = 30):
    """FITS bytes of a size x size float32 image with a WCS header and fresh noise."""
    from astropy.io import fits
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [size / 2, size / 2]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    wcs.wcs.crval = [150.0, -30.0]
    hdu = fits.PrimaryHDU(np.zeros((size, size), np.float32), header=wcs.to_header())
    hdu.header["BUNIT"] = "nJy"
    header = hdu.header.tostring().encode()
    pad = (-size * size * 4) % 2880
    rng = np.random.default_rng(42)

    def make() -> bytes:
        data = rng.normal(1200.0, 250.0, (size, size)).astype(">f4").tobytes()
        return header + data + b"\0" * pad

    return make


def _avro_long(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def build_archive(root: Path, n: int, per_visit: int = 2000) -> tuple[Path, float]:
    """An alert archive of ``n`` ~35 KB packets; returns (path, mean bytes).

    1,000 distinct alerts are encoded once without cutouts; every packet then gets three
    cutouts of its own noise, appended as the Avro encoding of the schema's last three fields
    (``["null", "bytes"]`` unions), which is checked by decoding a sample.
    """
    from alertbutler.alerts import CURRENT_ALERT_SCHEMA_ID, decode_alert, encode_alerts, schema_info
    from alertbutler.alerts.fake import fake_alerts
    from alertbutler.replay.recording import RecordingWriter

    make = _cutout_maker()
    base = fake_alerts(min(n, 1000), seed=8, n_history=30, cutout_size=None, n_objects=400)
    plain = encode_alerts(base)
    assert all(m.endswith(b"\0\0\0") for m in plain)  # three null cutouts
    writer = RecordingWriter(root)
    text = schema_info(CURRENT_ALERT_SCHEMA_ID).text
    sizes = []
    for v, start in enumerate(range(0, n, per_visit)):
        batch = []
        t0 = int(time.time() * 1000)
        for i in range(start, min(n, start + per_visit)):
            cuts = (make(), make(), make())
            value = plain[i % len(plain)][:-3] + b"".join(
                b"\x02" + _avro_long(len(c)) + c for c in cuts)
            key = str(base[i % len(base)]["diaSource"]["diaObjectId"]).encode()
            batch.append((key, value, t0 + i))
            sizes.append(len(value))
        writer.add_alerts(v + 1, CURRENT_ALERT_SCHEMA_ID, text, batch)
        check = decode_alert(batch[-1][1])
        assert check["cutoutTemplate"] == cuts[2] and check["diaSourceId"] == \
            base[(i) % len(base)]["diaSourceId"]
    writer.finish({"source": "bench", "instrument": "bench", "runs": []})
    return root, float(np.mean(sizes))


def archive_replay(n: int, partitions: int, engine_choice: str) -> dict:
    """The archive is built once; each engine then replays it into a broker of its own."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        t = time.perf_counter()
        archive, mean_size = build_archive(Path(tmp) / "archive", n)
        print(f"built an archive of {n} alerts, mean {mean_size / 1000:.1f} KB, in "
              f"{time.perf_counter() - t:.1f} s (not timed)", flush=True)
        return {engine: replay_on(engine, archive, mean_size, partitions)
                for engine in _ceiling.engines(engine_choice)}


def replay_on(engine: str, archive: Path, mean_size: float, partitions: int) -> dict:
    from alertbutler.broker import make_broker
    from alertbutler.kafka import create_topics, delete_topics
    from alertbutler.replay import AlertSource, SchemaIds, producer_settings, stream_alerts

    print(f"[{engine}] starting the broker (load average {os.getloadavg()[0]:.1f})",
          flush=True)
    with make_broker(engine) as broker:
        _ceiling.warm_up(broker.bootstrap)
        topic = f"bench-replay-{uuid.uuid4().hex[:6]}"
        source = AlertSource(archive)
        raw = [_ceiling.Raw(m.key, m.value) for m in source.messages(SchemaIds(), topic)]
        source.close()
        settings = producer_settings(broker.bootstrap)
        before = _ceiling.measure(broker.bootstrap, raw, settings=settings,
                                  partitions=partitions, label=f"[{engine}] before: ")
        create_topics(broker.bootstrap, {topic: partitions})
        source = AlertSource(archive)
        cpu0, broker0 = time.process_time(), _cpu_seconds(broker.pid)
        summary = stream_alerts(source.messages(SchemaIds(), topic), topic=topic,
                                settings=settings)
        ours = (time.process_time() - cpu0) / summary.delivered * 1000
        theirs = (_cpu_seconds(broker.pid) - broker0) / summary.delivered * 1000
        source.close()
        delete_topics(broker.bootstrap, [topic])  # the embedded broker keeps it in memory
        ceiling = _ceiling.Ceiling.best(before, _ceiling.measure(
            broker.bootstrap, raw, settings=settings, partitions=partitions,
            label=f"[{engine}] after: "))
        del raw
    bound = 2000.0 / (ours + theirs)
    print(f"[{engine}] archive replay: {summary.delivered} alerts acknowledged in "
          f"{summary.seconds:.2f} s = {summary.rate_per_s:,.0f} alerts/s, "
          f"{summary.mb_per_s:.0f} MB/s ({partitions} partitions)", flush=True)
    print(f"[{engine}] CPU per alert: replay process {ours:.3f} ms (reading, producing, zstd), "
          f"broker {theirs:.3f} ms: two idle cores would bound the rate near {bound:,.0f}/s",
          flush=True)
    return {"archive_replay_per_s": round(summary.rate_per_s, 1),
            "archive_alert_kb": round(mean_size / 1000, 1),
            "archive_alerts": summary.delivered,
            "archive_mb_per_s": round(summary.mb_per_s, 1),
            "archive_cpu_ms_per_alert": round(ours + theirs, 4),
            "archive_broker_cpu_ms_per_alert": round(theirs, 4),
            "archive_two_idle_cores_bound_per_s": round(bound),
            "archive_replay_fraction_of_ceiling": _ceiling.fraction(summary.rate_per_s,
                                                                    ceiling.produce_per_s),
            "ceiling": ceiling.as_dict(),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (the broker), from /proc."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def night_replay(recording: Path | None) -> dict:
    try:
        from alertbutler.replay.night import bench_night_speedup
    except ImportError as exc:
        print(f"night_speedup: null: the night replay is not available ({exc})", flush=True)
        return {"night_speedup": None}
    try:
        return bench_night_speedup(recording=recording)
    except Exception as exc:  # report the reason, still measure the archive replay
        print(f"night_speedup: null: the night replay failed: {type(exc).__name__}: {exc}",
              flush=True)
        return {"night_speedup": None}


def schedule_spacing(n_events: int = 20, spacing_s: float = 5.0, speed: float = 10.0) -> dict:
    from alertbutler.replay.recording import ScheduledEvent
    from alertbutler.replay.scheduler import Scheduler

    events = [ScheduledEvent(i * spacing_s, "raw", f"g{i:03d}", detector=0, file="raw.fits")
              for i in range(n_events)]
    payload = b"SIMPLE  =                    T" + b" " * 2850
    with tempfile.TemporaryDirectory() as tmp:
        def land(event: ScheduledEvent) -> None:
            aside = Path(tmp) / f".{event.group_id}.part"
            aside.write_bytes(payload)
            aside.rename(Path(tmp) / f"{event.group_id}.fits")

        report = Scheduler(events, speed=speed, emit=land).run()
    errors = [abs(e) for e in report.spacing_errors()]
    result = {"schedule_max_spacing_error": round(max(errors), 4),
              "schedule_max_late_s": round(report.max_late_s, 4)}
    print(f"schedule at --speed {speed:g}: {result}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--skip-night", action="store_true")
    _ceiling.add_engine_option(parser)
    parser.add_argument("--recording", type=Path, default=None,
                        help="replay this recording of the default night instead of "
                        "recording one first (the recording is never timed)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, shared with other work; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    result: dict = schedule_spacing()
    if args.skip_night:
        print("night_speedup: null: skipped (--skip-night)")
        result["night_speedup"] = None
    else:
        result.update(night_replay(args.recording))
    result.update(archive_replay(args.alerts, args.partitions, args.engine))
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
