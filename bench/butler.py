"""Butler latency: put/get/find of 1,000 small datasets (a dict stored as YAML, the
default; the same as JSON is reported too), one query returning 1,000, and
put/get of one 4k x 4k float32 image (FITS). SQLite registry in the repo root by default;
``--registry-url`` for PostgreSQL. The last line printed is one JSON object.

    python bench/butler.py [--n 1000] [--image-size 4096] [--registry-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from alertbutler.butler import Butler

CPU: dict[str, float] = {}


def _per_op_ms(fn, n: int, name: str = "") -> float:  # type: ignore[no-untyped-def]
    """Wall-clock ms per call; this process's CPU ms per call goes to CPU[name] (on a
    shared machine the CPU figure shows the code's own cost, the wall figure the wait)."""
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        fn(i)
    wall = (time.perf_counter() - t0) / n * 1e3
    if name:
        CPU[name] = round((time.process_time() - c0) / n * 1e3, 3)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=4096)
    ap.add_argument("--image-repeats", type=int, default=3)
    ap.add_argument("--registry-url", default="")
    ap.add_argument("--dir", default=None, help="where to create the repo (default: a tmpdir)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        b = Butler.create(Path(tmp) / "repo", registry_url=args.registry_url, run="bench")
        b.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
        b.register_dataset_type("image", ["visit", "detector"], "Image")
        b.register_dataset_type("metrics_json", ["visit", "detector"], "StructuredDataDict")
        b.datastore.formats["metrics_json"] = "json"
        n = args.n
        did = {"instrument": "BenchCam", "detector": 1}
        # warm up caches and the file system path (not timed)
        b.put({"warm": 1}, "metrics", did, visit=10**8)
        b.get("metrics", did, visit=10**8)

        put_ms = _per_op_ms(lambda i: b.put({"visit": i, "value": i * 0.5}, "metrics", did,
                                            visit=i), n, "put_small_cpu_ms")
        get_ms = _per_op_ms(lambda i: b.get("metrics", did, visit=i), n, "get_small_cpu_ms")
        find_ms = _per_op_ms(lambda i: b.find_dataset("metrics", did, visit=i), n,
                             "find_cpu_ms")
        put_json_ms = _per_op_ms(lambda i: b.put({"visit": i, "value": i * 0.5}, "metrics_json",
                                                 did, visit=i), n)
        get_json_ms = _per_op_ms(lambda i: b.get("metrics_json", did, visit=i), n)
        t0 = time.perf_counter()
        refs = b.query_datasets("metrics", where={"detector": 1})
        query_ms = (time.perf_counter() - t0) * 1e3
        assert len(refs) == n + 1, len(refs)

        size = args.image_size
        image = np.random.default_rng(0).normal(0, 1, (size, size)).astype(np.float32)
        puts, gets = [], []
        for rep in range(args.image_repeats):
            t0 = time.perf_counter()
            b.put(image, "image", did, visit=rep)
            puts.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            back = b.get("image", did, visit=rep)
            gets.append((time.perf_counter() - t0) * 1e3)
            assert back.shape == image.shape
        cutout_t0 = time.perf_counter()
        b.get("image", did, visit=0, parameters={"bbox": (100, 100, 200, 200)})
        cutout_ms = (time.perf_counter() - cutout_t0) * 1e3
        registry = b.registry.db.engine.url.get_backend_name()
        b.close()

    result = {
        "put_small_ms": round(put_ms, 3),
        "get_small_ms": round(get_ms, 3),
        "find_ms": round(find_ms, 3),
        "query_1000_ms": round(query_ms, 2),
        "put_image_ms": round(statistics.median(puts), 1),
        "get_image_ms": round(statistics.median(gets), 1),
        "get_image_cutout_100px_ms": round(cutout_ms, 2),
        "put_small_json_ms": round(put_json_ms, 3),
        "get_small_json_ms": round(get_json_ms, 3),
        **CPU,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "n_small": n,
        "image_shape": [size, size],
        "registry": registry,
        "python": sys.version.split()[0],
    }
    print(f"image put runs (ms): {[round(p) for p in puts]}; get runs (ms): "
          f"{[round(g) for g in gets]}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
