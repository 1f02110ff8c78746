"""``alertbutler l1db copy``: a PostgreSQL night moved to Cassandra answers every query the
same way."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from alertbutler.l1db import Cone, ConsumedOffsets, L1db, RowBatch, VisitDetectorEnd
from alertbutler.l1db.testing import fake_visit_rows, random_cap
from alertbutler.testing import pg_unreachable_reason, temporary_pg_database


def _sorted(table: pa.Table, *keys: str) -> list[dict]:
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


@pytest.mark.postgres
@pytest.mark.cassandra
def test_copy_from_postgresql_gives_identical_query_results(cassandra_url: str) -> None:
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with temporary_pg_database() as pg_url:
        _copy_and_compare(pg_url, cassandra_url)


def _copy_and_compare(pg_url: str, cassandra_url: str) -> None:
    rng = np.random.default_rng(11)
    ids = np.arange(1, 301)
    ra, dec = random_cap(rng, ids.size, 359.95, -1.0, 0.3)  # across RA 0
    with L1db.create(pg_url) as src:
        for k, visit in enumerate((10, 11, 12, 13)):
            rows = fake_visit_rows(rng, visit=visit, detector=2, object_ids=ids, ra=ra,
                                   dec=dec, mjd=60000.0 + 25 * k,  # several time partitions
                                   source_id_start=1 + 1000 * k)
            src.store_visit_detector(visit, 2, **rows)
        src.store(RowBatch.build(), markers=[
            VisitDetectorEnd(visit=14, detector=2, partition=p, n_partitions=2, n_alerts=0)
            for p in (0, 1)],
            consumed=ConsumedOffsets(consumer="ingest", member="m", n_messages=9,
                                     next_offsets={("alerts", 0): 40, ("alerts", 1): 17}))
    proc = subprocess.run([sys.executable, "-m", "alertbutler", "l1db", "copy", pg_url,
                           cassandra_url], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DiaSource" in proc.stdout
    with L1db(pg_url) as src, L1db(cassandra_url) as dest:
        assert dest.backend == "cassandra"
        assert dest.row_counts() == src.row_counts()
        cone = Cone(ra=359.95, dec=-1.0, radius=0.2)
        assert _sorted(dest.objects_in_region(cone), "diaObjectId") == \
            _sorted(src.objects_in_region(cone), "diaObjectId")
        some = ids[::7]
        for since in (None, 60030.0):
            assert _sorted(dest.source_history(some, since_mjd=since), "diaSourceId") == \
                _sorted(src.source_history(some, since_mjd=since), "diaSourceId")
            assert _sorted(dest.forced_source_history(some, since_mjd=since),
                           "diaObjectId", "visit") == \
                _sorted(src.forced_source_history(some, since_mjd=since),
                        "diaObjectId", "visit")
        assert _sorted(dest.object_versions(some), "diaObjectId", "validityStartMjdTai") == \
            _sorted(src.object_versions(some), "diaObjectId", "validityStartMjdTai")
        assert _sorted(dest.sources_of_visit_detector(11, 2), "diaSourceId") == \
            _sorted(src.sources_of_visit_detector(11, 2), "diaSourceId")
        wanted = [(v, 2) for v in range(10, 16)]
        assert dest.ingested(wanted) == src.ingested(wanted) and len(src.ingested(wanted)) == 5
        assert {k: o.next_offset for k, o in dest.consumer_offsets("ingest").items()} == \
            {k: o.next_offset for k, o in src.consumer_offsets("ingest").items()}
