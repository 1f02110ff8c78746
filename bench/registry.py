"""Central-repo writes at Rubin's concurrency: ``--writers`` prompt workers (189: one per
LSSTCam detector) each export one visit-detector's outputs (calexp, difference, diaSourceTable,
preview, metrics: what ``prompt.outputs.OutputExporter`` exports) from their local repo
into ONE central repo on PostgreSQL, all released at the same moment. Then every dataset is
read back whole (size and checksum verified) and the central run is searched for files no
dataset owns. The last line printed is one JSON object.

What a writer is: a worker process of its own with its own registry session, as deployed
(``--processes`` fewer than ``--writers`` shares processes between writer threads). The
processes are forked from this one once it has imported the code, so 189 of them share the
interpreter's pages and fit in memory (spawned, each would load its own copy: ~150 MB).
The server must accept a session per writer (``make postgres`` sets ``max_connections`` to
300). Each export is ``central.transfer_from(local, refs, transfer="hardlink")``, the
worker's own call, timed from the common start to its return. Files are hard-linked (as a
worker does when the repos share a file system), so the image size does not enter the
export; ``--size`` only keeps the setup short.

    python bench/registry.py [--writers 189] [--processes N (default: one per writer)]
                             [--pg-url URL]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

INSTRUMENT = "LSSTCam"
VISIT = 2026120600042
#: the visit each worker exported before (untimed): a worker's process, its registry session
#: and the server's backend for it are warm when a visit ends, as in a night
PREVIOUS_VISIT = VISIT - 1
RUN = f"prompt/{INSTRUMENT}/outputs"
OUTPUT_TYPES = {"calexp": "Exposure", "difference": "Exposure", "diaSourceTable": "Catalog",
                "preview": "Plot", "metrics": "StructuredDataDict"}


def visit_record(visit: int) -> dict[str, Any]:
    from alertbutler.butler import Circle, Timespan
    from alertbutler.butler.timespan import to_ns

    t0 = to_ns("2026-12-07T03:00:00") + (visit - VISIT) * 40_000_000_000
    assert t0 is not None
    return {"instrument": INSTRUMENT, "visit": visit, "physical_filter": "r", "day_obs": 20261206,
            "exposure_time": 30.0, "timespan": Timespan(t0, t0 + 30_000_000_000),
            "region": Circle(150.0, 2.0, 1.75)}


def fill_local(root: Path, detectors: list[int], size: int) -> None:
    """A worker's local repo holding the outputs of ``detectors`` for one visit."""
    from astropy.table import Table

    from alertbutler.butler import Butler
    from alertbutler.butler.testing import make_exposure

    with Butler.create(root, run=RUN) as local:
        for name, storage in OUTPUT_TYPES.items():
            local.register_dataset_type(name, ["instrument", "visit", "detector"], storage)
        local.insert_dimension_records("instrument", [{"instrument": INSTRUMENT,
                                                       "n_detectors": 189}])
        local.insert_dimension_records("physical_filter", [
            {"instrument": INSTRUMENT, "physical_filter": "r", "band": "r"}])
        local.insert_dimension_records("detector", [
            {"instrument": INSTRUMENT, "detector": d, "full_name": f"D{d:03d}", "nx": 4096,
             "ny": 4096} for d in range(189)])
        local.insert_dimension_records("day_obs", [{"instrument": INSTRUMENT,
                                                    "day_obs": 20261206}])
        local.insert_dimension_records("visit", [visit_record(v)
                                                 for v in (PREVIOUS_VISIT, VISIT)])
        rng = np.random.default_rng(0)
        for d, visit in ((d, v) for d in detectors for v in (PREVIOUS_VISIT, VISIT)):
            did = {"instrument": INSTRUMENT, "visit": visit, "detector": d}
            exp = make_exposure((size, size), seed=d)
            table = Table({"diaSourceId": np.arange(50) + d * 1000, "ra": rng.uniform(0, 1, 50),
                           "dec": rng.uniform(0, 1, 50), "psfFlux": rng.normal(0, 1, 50)})
            preview = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
            local.put_refs([
                (exp, local.make_ref("calexp", did)), (exp, local.make_ref("difference", did)),
                (table, local.make_ref("diaSourceTable", did)),
                (preview, local.make_ref("preview", did)),
                ({"detector": d, "n_sources": 50}, local.make_ref("metrics", did))])


def export_worker(central_root: str, local_root: str, detectors: list[int], size: int,
                  ready: Any, go: Any, start: Any, finish: Any, results: Any) -> None:
    """One worker process: its threads export their detectors when ``go`` is set. Each
    export is timed from ``start`` (the common start, on the system-wide monotonic clock) and
    also from the moment its thread woke up (``own``: without the wait to be scheduled)."""
    from alertbutler.butler import Butler

    try:
        fill_local(Path(local_root), detectors, size)
        local = Butler(local_root)
        refs = {(v, d): [r for t in OUTPUT_TYPES for r in local.query_datasets(
            t, RUN, where={"visit": v, "detector": d})]
            for d in detectors for v in (PREVIOUS_VISIT, VISIT)}
    except Exception:
        results.put(("setup", -1, 0.0, 0.0, traceback.format_exc()))
        ready.put(1)
        return
    out: list[tuple[str, int, float, float, str]] = []
    connected = threading.Semaphore(0)

    def export(d: int) -> None:
        # the writer's own butler, warm: it exported the previous visit (untimed) as a
        # worker of a night has; the export of this visit is timed
        try:
            central = Butler(central_root)
            central.transfer_from(local, refs[PREVIOUS_VISIT, d], transfer="hardlink")
        except Exception:
            out.append(("error", d, 0.0, 0.0, traceback.format_exc()))
            return
        finally:
            connected.release()
        go.wait()
        t0 = time.monotonic()
        try:
            central.transfer_from(local, refs[VISIT, d], transfer="hardlink")
            t1 = time.monotonic()
            out.append(("ok", d, t1 - start.value, t1 - t0, ""))
        except Exception:
            t1 = time.monotonic()
            out.append(("error", d, t1 - start.value, t1 - t0, traceback.format_exc()))

    threads = [threading.Thread(target=export, args=(d,)) for d in detectors]
    for t in threads:
        t.start()
    for _ in threads:
        connected.acquire()
    cpu0 = time.process_time()
    ready.put(1)
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu0
    for item in out:
        results.put(item)
    results.put(("done", -1, cpu, 0.0, ""))
    finish.wait()  # keep the sessions open until their server CPU time has been read


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _server_cpu(admin: sa.Engine, db: str) -> float:
    """CPU seconds of the PostgreSQL sessions still open on ``db`` (from /proc)."""
    with admin.connect() as conn:
        pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                            {"d": db}).scalars().all()
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def check_central(central_root: Path, writers: int) -> dict[str, Any]:
    """Every dataset readable whole, each with its file; no file left without a dataset."""
    from alertbutler.butler import Butler

    with Butler(central_root) as central:
        refs = [r for t in OUTPUT_TYPES for r in central.query_datasets(t, RUN)]
        readable = 0
        for ref in refs:
            central.get(ref)  # whole-dataset get: size and checksum verified
            readable += 1
        owned = {Path(central.datastore.artifact_path(r)).resolve() for r in refs}
        on_disk = {p.resolve() for p in (central_root / RUN).rglob("*") if p.is_file()}
        per_detector = {int(r.data_id["detector"]) for r in refs
                        if int(r.data_id["visit"]) == VISIT}
    # both visits: the previous one (the warm-up) and the timed one
    return {"datasets_expected": 2 * writers * len(OUTPUT_TYPES), "datasets_found": len(refs),
            "datasets_readable": readable, "detectors_complete": len(per_detector),
            "orphan_files": len(on_disk - owned)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--writers", type=int, default=189)
    ap.add_argument("--processes", type=int, default=None,
                    help="worker processes (default: one per writer)")
    ap.add_argument("--size", type=int, default=256, help="image side in the local repos")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()

    from astropy.table import Table  # noqa: F401  (imported once, shared by the forks)

    from alertbutler.butler import Butler
    from alertbutler.butler.testing import make_exposure  # noqa: F401

    processes = args.processes or args.writers
    db = f"bench_registry_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.pg_url.replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    url = sa.engine.make_url(args.pg_url).set(database=db).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            central_root = Path(tmp) / "central"
            with Butler.create(central_root, registry_url=url) as central:
                for name, storage in OUTPUT_TYPES.items():
                    central.register_dataset_type(name, ["instrument", "visit", "detector"],
                                                  storage)
                central.insert_dimension_records("instrument", [{"instrument": INSTRUMENT,
                                                                 "n_detectors": 189}])
                central.insert_dimension_records("physical_filter", [
                    {"instrument": INSTRUMENT, "physical_filter": "r", "band": "r"}])
                central.insert_dimension_records("detector", [
                    {"instrument": INSTRUMENT, "detector": d, "full_name": f"D{d:03d}",
                     "nx": 4096, "ny": 4096} for d in range(189)])
            ctx = mp.get_context("fork")  # before any thread of this process starts
            ready, results, go, finish = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
            start = ctx.Value("d", 0.0)
            shares = [list(range(args.writers))[p::processes] for p in range(processes)]
            procs = [ctx.Process(target=export_worker,
                                 args=(str(central_root), str(Path(tmp) / f"local{p}"), dets,
                                       args.size, ready, go, start, finish, results))
                     for p, dets in enumerate(shares) if dets]
            for p in procs:
                p.start()
            for _ in procs:
                ready.get(timeout=600)
            load = os.getloadavg()[0]
            peak = {"n": 0}
            stop = threading.Event()

            def sample() -> None:  # the most connections the writers held at once
                with admin.connect() as conn:
                    while not stop.is_set():
                        n = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity "
                                                 "WHERE datname = :d"), {"d": db}).scalar()
                        peak["n"] = max(peak["n"], int(n or 0))
                        stop.wait(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            server_cpu0 = _server_cpu(admin, db)  # the warm-up exports' share left out
            t0 = time.perf_counter()
            start.value = time.monotonic()
            go.set()
            times, own, errors, done, client_cpu = [], [], [], 0, 0.0
            while done < len(procs):
                kind, det, dt, own_dt, text = results.get(timeout=900)
                if kind == "done":
                    done += 1
                    client_cpu += dt
                elif kind == "ok":
                    times.append(dt)
                    own.append(own_dt)
                else:
                    errors.append(f"{kind} detector {det}: {text.strip().splitlines()[-1]}")
                    if kind == "setup":
                        done += 1
            wall = time.perf_counter() - t0
            stop.set()
            sampler.join()
            server_cpu = _server_cpu(admin, db) - server_cpu0
            finish.set()
            for p in procs:
                p.join(timeout=60)
            check = check_central(central_root, args.writers)
            for e in errors[:5]:
                print(e)
            out = {"writers": args.writers, "processes": len(procs),
                   "exports_ok": len(times), "export_errors": len(errors),
                   "exports_p50_s": round(_percentile(times, 50), 3),
                   "exports_p99_s": round(_percentile(times, 99), 3),
                   "exports_max_s": round(max(times), 3) if times else None,
                   "own_p50_s": round(_percentile(own, 50), 3),
                   "own_p99_s": round(_percentile(own, 99), 3),
                   "all_exports_wall_s": round(wall, 3),
                   "peak_connections": peak["n"],
                   "cpu_per_export_ms": {
                       "workers": round(client_cpu / max(len(times), 1) * 1e3, 2),
                       "postgres": round(server_cpu / max(len(times), 1) * 1e3, 2)},
                   **check,
                   "all_readable": check["datasets_readable"] == check["datasets_expected"]
                   and not errors and check["orphan_files"] == 0,
                   "load_1min_at_start": round(load, 2), "cores": os.cpu_count()}
            print(json.dumps(out))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
