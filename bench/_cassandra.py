"""The Cassandra side of ``bench/ingest.py --l1db cassandra://...``: a fresh keyspace per
figure, and a visit's store and query on a database of earlier visits of its field.

PostgreSQL's history database is filled server-side (INSERT ... SELECT); Cassandra has no
such statement, so its earlier visits go through the L1 API's own store, one visit at a
time, and a 2-core machine can afford tens of visits, not a thousand. The history a visit's
query reads is the same on both: its field's ``visits_per_field`` earlier visits of
``per_visit`` sources over the past year (~100,000 DiaSources and as many forced sources).
Other fields add partitions the query never reads: Cassandra's query cost follows the rows
read, not the database's size (what DMTN-184 measured).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from alertbutler.l1db import Cone, L1db, RowBatch
from alertbutler.l1db.testing import fake_visit_rows, random_cap


def fresh_keyspace(url: str) -> str:
    """``url`` with a new keyspace of its own (``bench_<hex>``), so no figure sees another's
    rows; the query string (replication_factor=...) is kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/bench_{uuid.uuid4().hex[:12]}"))


def visit_on_cassandra(url: str, *, visits: int, per_visit: int, centre: np.ndarray,
                       radius: float, mjd_now: float, repeats: int,
                       rng: np.random.Generator,
                       log: Callable[[str], None]) -> dict[str, object]:
    """Store ``visits`` earlier visits of one field over the past year, then store one more
    and query the field's objects and their 12-month history ``repeats`` times."""
    url = fresh_keyspace(url)
    ra, dec = random_cap(rng, per_visit, float(centre[0]), float(centre[1]), radius)
    ids = np.arange(per_visit, dtype=np.int64) + 1
    db = L1db.create(url)
    try:
        t0 = time.perf_counter()
        for k in range(visits):
            visit = 1000 + k
            rows = fake_visit_rows(rng, visit=visit, detector=0, object_ids=ids, ra=ra,
                                   dec=dec, mjd=mjd_now - 365.0 + (k + 0.5) * 365.0 / visits,
                                   source_id_start=visit * 100_000_000)
            db.store(RowBatch.build(**rows))
        build_s = time.perf_counter() - t0
        log(f"  Cassandra: {visits} earlier visits of {per_visit:,} sources stored in "
            f"{build_s:.0f} s ({visits * per_visit * 3 / build_s:,.0f} catalog rows/s)")
        visit = 10**7
        batch = RowBatch.build(**fake_visit_rows(
            rng, visit=visit, detector=0, object_ids=ids, ra=ra, dec=dec, mjd=mjd_now + 0.5,
            source_id_start=visit * 100_000_000))
        c0, t0 = time.process_time(), time.perf_counter()
        result = db.store(batch)
        store_s, store_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert result.inserted == {"DiaObject": per_visit, "DiaSource": per_visit,
                                   "DiaForcedSource": per_visit}, result.inserted
        times, cpus = [], []
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            found = db.objects_in_region(Cone(ra=float(centre[0]), dec=float(centre[1]),
                                              radius=radius))
            object_ids = found.column("diaObjectId").to_numpy()
            since = mjd_now + 0.5 - 365.0
            sources, forced = db.history(object_ids, since_mjd=since)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        sizes = {"objects": found.num_rows, "sources": sources.num_rows,
                 "forced_sources": forced.num_rows}
        assert sizes["objects"] >= per_visit and sizes["sources"] >= visits * per_visit, sizes
        log(f"  Cassandra: store {store_s:.3f} s ({store_cpu:.3f} s client CPU), queries "
            f"{', '.join(f'{t:.3f}' for t in times)} s, returned {sizes}")
    finally:
        db.close()
    return {"cassandra_visit_store_s": round(store_s, 3),
            "cassandra_visit_query_s": round(float(np.median(times)), 3),
            "cassandra_visit_store_client_cpu_s": round(store_cpu, 3),
            "cassandra_visit_query_client_cpu_s": round(float(np.median(cpus)), 3),
            "cassandra_earlier_visits": visits, "cassandra_build_s": round(build_s, 1),
            "cassandra_query_rows": sizes,
            "cassandra_load_average_1m": round(os.getloadavg()[0], 2)}
