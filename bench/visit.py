"""Time one 4k x 4k detector-visit, on one core: raw arrival -> alerts acknowledged by Kafka.

By default the whole worker path (alertbutler.prompt.benchmark): an LSST-like detector
(4096 x 4096, 0.2"/pixel) with its calibrations and templates in a central butler repo (not
timed), an embedded broker and a SQLite L1 database; a first visit of the field is processed
and its alerts stored in the L1 database, then the second visit is timed from the moment
its raw lands (preload, which runs before that, is reported apart): butler ingest and read,
ISR -> background -> PSF -> warp -> PSF matching -> difference -> detection -> measurement,
association against the L1 database, forced photometry of known DiaObjects, alert packaging
with three cutouts, publish-datastore put until Kafka acknowledged every alert.
``--imaging-only`` times the imaging stages alone (no butler, no Kafka). The last line of
output is one JSON object: {"detector_visit_s": ..., "stages": {...}, ...}.

Memory settings, before and after in one run: by default (``--malloc both``) the bench runs
itself twice, one after the other, first with glibc's default malloc and then with the
settings the workers get from whoever spawns them (``alertbutler.procs.REUSE_FREED_MEMORY``:
freed 64 MB temporaries reused instead of mapped afresh), and reports ``detector_visit_s``
(the workers' setting) beside ``detector_visit_default_malloc_s``, with CPU seconds and page
faults of each. ``--malloc tuned`` or ``default`` runs one.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1,
                        help="imaging only: process the same detector-visit this many times; "
                        "best is kept")
    parser.add_argument("--imaging-only", action="store_true",
                        help="time the imaging stages alone (no butler, no Kafka)")
    parser.add_argument("--malloc", choices=("both", "tuned", "default"), default="both",
                        help="glibc malloc settings: the workers' (tuned), glibc's own "
                        "(default), or both one after the other (default)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child:
        compare(args)
        return
    if not args.imaging_only:
        end_to_end(args)
        return

    from alertbutler.imaging import IsrCalibs, TemplateImage, process_exposure
    from alertbutler.sim import Camera, NightConfig, SimConfig, Simulator, score

    sim = Simulator(SimConfig(seed=args.seed, camera=Camera.lsst_like(n_detectors=1),
                              night=NightConfig(n_visits=1, n_fields=1, bands=("r",)),
                              patch_size=2048))
    visit = sim.visits[0]
    t0 = time.perf_counter()
    raw = sim.raw(visit, 0)
    cal = sim.calibs(0)
    calibs = IsrCalibs(bias=cal.bias, dark=cal.dark, flat=cal.flats[visit.band],
                       defects=cal.defects)
    templates = [TemplateImage(image=p.image, variance=p.variance, wcs=p.wcs)
                 for p in (sim.template(visit.field, visit.band, q)
                           for q in sim.patches_for(visit, 0))]
    sim_s = time.perf_counter() - t0
    truth = raw.truth
    known = (np.asarray(truth["object_id"]), np.asarray(truth["ra"]), np.asarray(truth["dec"]))
    best = None
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        res = process_exposure(raw.data, raw.header, calibs, templates, known=known)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if best is None or wall < best[0]:
            best = (wall, cpu, res)
    wall, cpu, res = best
    res.sources["visit"] = visit.visit
    res.sources["detector"] = 0
    quality = score(res.sources, truth)
    for stage, seconds in res.timings.items():
        print(f"{stage:>10s} {seconds:7.2f} s")
    print(f"{'total':>10s} {wall:7.2f} s  ({len(res.sources)} sources, "
          f"completeness {quality.completeness:.3f}, purity {quality.purity:.3f})")
    print(json.dumps({
        "detector_visit_s": round(wall, 3),
        "stages": {k: round(v, 3) for k, v in res.timings.items()},
        # on a shared machine the process's CPU time is the fairer figure for "one core"
        "detector_visit_cpu_s": round(cpu, 3),
        "shape": list(raw.data.shape),
        "n_sources": len(res.sources),
        "n_forced": len(truth),
        "completeness": round(quality.completeness, 4),
        "purity": round(quality.purity, 4),
        "simulate_s": round(sim_s, 3),
        "threads": 1,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "minor_page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
        "scope": "imaging stages only (no butler I/O, no Kafka)",
    }))


def end_to_end(args: argparse.Namespace) -> None:
    from alertbutler.prompt.benchmark import time_detector_visit

    result = time_detector_visit(seed=args.seed)
    for stage, seconds in result["stages"].items():
        print(f"{stage:>12s} {seconds:7.2f} s")
    print(f"{'total':>12s} {result['detector_visit_s']:7.2f} s  ({result['n_alerts']} alerts, "
          f"{result['n_forced']} forced; preload {result['preload_s']:.2f} s before arrival)")
    result["minor_page_faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    print(json.dumps(result))


def _run_child(args: argparse.Namespace, mode: str) -> dict:  # type: ignore[type-arg]
    """This bench in a fresh process (glibc reads its malloc settings at start)."""
    from alertbutler.procs import REUSE_FREED_MEMORY

    env = {k: v for k, v in os.environ.items() if k not in REUSE_FREED_MEMORY}
    if mode == "tuned":
        env.update(REUSE_FREED_MEMORY)
    argv = [sys.executable, __file__, "--child", "--seed", str(args.seed), "--repeat",
            str(args.repeat)] + (["--imaging-only"] if args.imaging_only else [])
    out = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    print(f"-- malloc {mode}")
    print("\n".join(lines[:-1]))
    return json.loads(lines[-1])


def compare(args: argparse.Namespace) -> None:
    modes = ["default", "tuned"] if args.malloc == "both" else [args.malloc]
    runs = {mode: _run_child(args, mode) for mode in modes}
    result = dict(runs.get("tuned") or runs["default"])
    result["malloc"] = "tuned" if "tuned" in runs else "default"
    if "default" in runs and "tuned" in runs:
        d = runs["default"]
        result.update(detector_visit_default_malloc_s=d["detector_visit_s"],
                      detector_visit_default_malloc_cpu_s=d.get("detector_visit_cpu_s"),
                      minor_page_faults_default_malloc=d.get("minor_page_faults"),
                      load_average_1m_default_malloc=d.get("load_average_1m"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
