"""``alertbutler sim night``: simulate a night and write what the pipeline consumes.

The central butler repo (calibrations certified with their validity ranges, templates, the
sky map) is filled by the prompt service's own writer, which owns that layout; raws, the
ground truth and the timed nextVisit events (JSON lines, in emission order) are plain files.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from alertbutler.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("night", help="simulate a camera, calibrations, templates and a night",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--visits", type=int, default=12, help="number of visits")
    p.add_argument("--fields", type=int, default=2)
    p.add_argument("--bands", default="gri", help="bands to cycle through, e.g. gri")
    p.add_argument("--detectors", type=int, default=4, help="detectors in the camera")
    p.add_argument("--size", type=int, default=2048, help="detector size in pixels")
    p.add_argument("--lsst-like", action="store_true",
                   help="4k x 4k detectors (overrides --size)")
    p.add_argument("--files-only", action="store_true",
                   help="write calibrations and templates as FITS files, no butler repo")
    p.set_defaults(func=_night)


def _night(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.sim import Camera, NightConfig, SimConfig, Simulator, write_night

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    camera = (Camera.lsst_like(n_detectors=args.detectors) if args.lsst_like
              else Camera(n_detectors=args.detectors, nx=args.size, ny=args.size))
    night = NightConfig(n_visits=args.visits, n_fields=args.fields, bands=tuple(args.bands))
    sim = Simulator(SimConfig(seed=args.seed, camera=camera, night=night))
    start = time.perf_counter()
    repo = None
    if not args.files_only:
        from alertbutler.prompt.central import build_central_repo

        repo = build_central_repo(out / "central", sim)
    files = write_night(sim, out, templates=args.files_only, calibs=args.files_only)
    summary = {
        "central_repo": str(repo) if repo else None,
        "raws": len(files.raws), "templates": len(files.templates),
        "calibs": len(files.calibs), "truth": str(files.truth),
        "next_visits": str(files.events), "visits": len(sim.visits),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary))
    return 0
