"""Time partitions of the L1 sources on PostgreSQL (made on demand, also by concurrent
writers; a history query plans only the partitions of its window) and the in-place upgrade
of a schema 1.1 database."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa

from alertbutler.cli import main as cli_main
from alertbutler.l1db import SCHEMA_VERSION, L1db, SchemaVersionError, _read
from alertbutler.l1db.schema import build_metadata
from alertbutler.testing import pg_unreachable_reason, temporary_pg_database


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A PostgreSQL database of this test alone (partitions are counted)."""
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with temporary_pg_database() as url:
        yield url


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def _sources(ids: list[int], mjds: list[float], visit: int = 7) -> dict[str, np.ndarray]:
    n = len(ids)
    return {"diaSourceId": np.array(ids), "visit": np.full(n, visit), "detector": np.full(n, 3),
            "diaObjectId": np.array(ids) + 1000, "midpointMjdTai": np.array(mjds),
            "ra": np.full(n, 10.0), "dec": np.full(n, -5.0), "x": np.full(n, 1.0),
            "y": np.full(n, 2.0), "psfFlux": np.full(n, 5.0)}


def _forced(ids: list[int], mjds: list[float], visit: int = 7) -> dict[str, np.ndarray]:
    n = len(ids)
    return {"diaForcedSourceId": np.array(ids), "diaObjectId": np.array(ids) + 1000,
            "visit": np.full(n, visit), "detector": np.full(n, 3),
            "midpointMjdTai": np.array(mjds), "ra": np.full(n, 10.0), "dec": np.full(n, -5.0)}


def _partitions(url: str, table: str) -> dict[str, int]:
    """Partition name -> rows in it."""
    engine = _engine(url)
    with engine.connect() as conn:
        names = conn.exec_driver_sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            f"WHERE i.inhparent = '\"{table}\"'::regclass").scalars().all()
        counts = {n: conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{n}"').scalar() for n in names}
    engine.dispose()
    return counts


@pytest.mark.postgres
def test_sources_land_in_30_day_partitions_made_on_demand(fresh_pg: str) -> None:
    mjds = [60000.5, 60029.9, 60030.0, 60100.2]  # partitions 2000, 2000, 2001, 2003
    with L1db.create(fresh_pg) as db:
        assert _partitions(fresh_pg, "DiaSource") == {}
        result = db.store_visit_detector(7, 3, sources=_sources([1, 2, 3, 4], mjds),
                                         forced_sources=_forced([1, 2, 3, 4], mjds))
        assert result.inserted == {"DiaSource": 4, "DiaForcedSource": 4}
        for table in ("DiaSource", "DiaForcedSource"):
            assert _partitions(fresh_pg, table) == {f"{table}_p2000": 2, f"{table}_p2001": 1,
                                                  f"{table}_p2003": 1}
        again = db.store_visit_detector(7, 3, sources=_sources([1, 2, 3, 4], mjds),
                                        forced_sources=_forced([1, 2, 3, 4], mjds))
        assert again.inserted == {"DiaSource": 0, "DiaForcedSource": 0}  # still idempotent
        history = db.source_history([1002, 1003, 1004], since_mjd=60030.0)
        assert sorted(history.column("diaSourceId").to_pylist()) == [3, 4]
        assert history.schema.field("midpointMjdTai").type == "double"
        forced = db.forced_source_history([1001, 1004], since_mjd=60000.0)
        assert sorted(forced.column("diaForcedSourceId").to_pylist()) == [1, 4]
    with L1db(fresh_pg) as reopened:  # a new process knows nothing: existing partitions are kept
        reopened.store_visit_detector(8, 3, sources=_sources([5], [60001.0], visit=8))
    assert _partitions(fresh_pg, "DiaSource")["DiaSource_p2000"] == 3


@pytest.mark.postgres
def test_concurrent_writers_make_a_new_partition_once(fresh_pg: str) -> None:
    L1db.create(fresh_pg).close()
    writers = 6
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            with L1db(fresh_pg) as db:  # each its own process-like instance and cache
                rows = _sources([100 * k + i for i in range(10)], [60000.5 + k] * 10, visit=k)
                barrier.wait(timeout=60)
                db.store_visit_detector(k, 3, sources=rows)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _partitions(fresh_pg, "DiaSource") == {"DiaSource_p2000": 10 * writers}


@pytest.mark.postgres
def test_history_query_plans_only_the_partitions_of_its_window(fresh_pg: str) -> None:
    """Three years of sources (37 partitions): a 12-month history reads 13 of them."""
    days = np.arange(0, 3 * 365, 5.0)
    mjds = list(60000.0 + days)
    ids = list(range(1, len(mjds) + 1))
    with L1db.create(fresh_pg) as db:
        db.store_visit_detector(7, 3, sources=_sources(ids, mjds))
        since = mjds[-1] - 365.0
        expected = [i for i, m in zip(ids, mjds, strict=True) if m >= since]
        found = db.source_history([i + 1000 for i in ids], since_mjd=since)
        assert sorted(found.column("diaSourceId").to_pylist()) == expected
    assert len(_partitions(fresh_pg, "DiaSource")) == 37
    sql, _ = _read.history_statement("postgresql", "DiaSource", [i + 1000 for i in ids], since)
    engine = _engine(fresh_pg)
    with engine.connect() as conn:
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {sql}").scalars())
    engine.dispose()
    scanned = {word for word in plan.replace('"', " ").split() if word.startswith("DiaSource_p")}
    assert len(scanned) in (13, 14), plan  # 365 days span 13 partitions (14 at an edge)


@pytest.mark.postgres
def test_partitions_made_ahead_for_a_time_range(fresh_pg: str) -> None:
    with L1db.create(fresh_pg) as db:
        db.prepare_time_partitions(60000.0, 60100.0)
        db.prepare_time_partitions(60000.0, 60010.0)  # again: nothing new, no error
    for table in ("DiaSource", "DiaForcedSource"):
        assert set(_partitions(fresh_pg, table)) == {f"{table}_p{p}" for p in range(2000, 2004)}


def _make_v11(url: str) -> None:
    """A database exactly as schema 1.1 made it: unpartitioned tables, version 1.1."""
    engine = _engine(url)
    with engine.begin() as conn:
        build_metadata(partitioned=False).create_all(conn)
        conn.execute(sa.text("INSERT INTO metadata (name, value) VALUES ('schema_version', "
                             "'1.1')"))
        for i, mjd in enumerate([59000.5, 60000.5, 60100.5], start=1):
            conn.execute(sa.text(
                'INSERT INTO "DiaSource" ("diaSourceId", visit, detector, "diaObjectId", '
                '"midpointMjdTai", ra, dec, x, y, "pixelId") VALUES '
                "(:i, 7, 3, :o, :m, 10.0, -5.0, 1.0, 2.0, 5)"), {"i": i, "o": 1000 + i, "m": mjd})
            conn.execute(sa.text(
                'INSERT INTO "DiaForcedSource" ("diaForcedSourceId", "diaObjectId", visit, '
                'detector, "midpointMjdTai", ra, dec, "pixelId") VALUES '
                "(:i, :o, 7, 3, :m, 10.0, -5.0, 5)"), {"i": i, "o": 1000 + i, "m": mjd})
    engine.dispose()


def test_schema_1_1_is_refused_with_the_command_then_upgraded_in_place(
        db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    if db_url.startswith("cassandra://"):
        pytest.skip("SQL databases only: the 1.1 database is made with SQL statements")
    url, backend = db_url, db_url.split(":")[0]
    _make_v11(url)
    with pytest.raises(SchemaVersionError, match=r"1\.1.*'alertbutler l1db upgrade "):
        L1db(url)
    assert cli_main(["l1db", "upgrade", url]) == 0
    assert f"from schema version 1.1 to {SCHEMA_VERSION}" in capsys.readouterr().out
    with L1db(url) as db:
        assert db.schema_version == SCHEMA_VERSION
        assert db.row_counts()["DiaSource"] == 3
        history = db.source_history([1001, 1002, 1003], since_mjd=60000.0)
        assert sorted(history.column("diaSourceId").to_pylist()) == [2, 3]
        forced = db.forced_source_history([1001, 1002, 1003])
        assert sorted(forced.column("diaForcedSourceId").to_pylist()) == [1, 2, 3]
        db.store_visit_detector(8, 3, sources=_sources([9], [60200.0], visit=8))
        assert db.row_counts()["DiaSource"] == 4
    if backend == "postgresql":
        assert _partitions(url, "DiaSource") == {
            "DiaSource_p1966": 1, "DiaSource_p2000": 1, "DiaSource_p2003": 1,
            "DiaSource_p2006": 1}
        assert set(_partitions(url, "DiaForcedSource")) == {
            "DiaForcedSource_p1966", "DiaForcedSource_p2000", "DiaForcedSource_p2003"}
    assert cli_main(["l1db", "upgrade", url]) == 0  # a second run changes nothing
    assert "already at schema version" in capsys.readouterr().out
