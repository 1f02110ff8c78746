"""Several processes writing into one repository lose nothing (SQLite WAL and PostgreSQL)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from alertbutler.butler import Butler

N_PROCS, PER_PROC = 4, 200


def _writer(root: str, registry_url: str, worker: int) -> None:
    with Butler(root, run=f"worker/{worker}", registry_url=registry_url or None) as b:
        for i in range(PER_PROC):
            b.put({"worker": worker, "i": i}, "metrics", instrument="SimCam",
                  visit=worker * 10_000 + i, detector=worker)


def test_four_processes_put_200_each(butler: Butler, registry_url: str) -> None:
    butler.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(butler.root), registry_url, w))
             for w in range(N_PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * N_PROCS
    runs = [f"worker/{w}" for w in range(N_PROCS)]
    refs = butler.query_datasets("metrics", runs)
    assert len(refs) == N_PROCS * PER_PROC
    seen = {(v["worker"], v["i"]) for v in (butler.get(r) for r in refs)}
    assert len(seen) == N_PROCS * PER_PROC
    assert all(Path(butler.datastore.artifact_path(r)).exists() for r in refs[:10])


def test_threads_share_a_butler(butler: Butler) -> None:
    """Each thread gets its own connection (SQLite connections may not cross threads)."""
    from concurrent.futures import ThreadPoolExecutor

    butler.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")

    def work(t: int) -> int:
        for i in range(20):
            butler.put({"t": t, "i": i}, "metrics", instrument="SimCam", visit=t * 100 + i,
                       detector=0)
        return sum(butler.get("metrics", instrument="SimCam", visit=t * 100 + i,
                              detector=0)["i"] for i in range(20))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(4))) == [190] * 4
    assert len(butler.query_datasets("metrics")) == 80
