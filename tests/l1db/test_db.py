"""The L1 database on SQLite, PostgreSQL and Cassandra: versioned schema, idempotent stores,
region and history queries, ingestion bookkeeping."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from alertbutler.errors import is_outage
from alertbutler.l1db import (
    SCHEMA_VERSION,
    Cone,
    ConsumedOffsets,
    L1db,
    L1dbNotFoundError,
    RowBatch,
    RowError,
    SchemaVersionError,
    VisitDetector,
    VisitDetectorEnd,
    _copy,
    arrow_schema,
)
from alertbutler.l1db.testing import fake_visit_rows, random_cap, random_sky
from alertbutler.testing import pg_unreachable_reason, temporary_pg_database

from .test_spatial import SPECIAL_CENTRES, _gnomonic_inside, _separation_deg, _square


def _l1(visit: int, detector: int) -> VisitDetector:
    """An L1 database's visit-detector: its rows carry no instrument."""
    return VisitDetector(instrument="", visit=visit, detector=detector)


def _source(i: int, **extra) -> dict:  # type: ignore[no-untyped-def]
    row = {"diaSourceId": i, "visit": 7, "detector": 3, "diaObjectId": 100 + i,
           "midpointMjdTai": 60000.5 + i, "ra": 10.0 + i * 1e-3, "dec": -5.0, "x": 1.5,
           "y": 2.5, "psfFlux": 1234.5, "band": "r", "isDipole": False}
    row.update(extra)
    return row


def test_create_reopen_and_info(db_url: str) -> None:
    with L1db.create(db_url) as db:
        assert db.schema_version == SCHEMA_VERSION
        info = db.info()
        assert info.row_counts == {"DiaObject": 0, "DiaObjectLast": 0, "DiaSource": 0,
                                   "DiaForcedSource": 0, "SSSource": 0}
        assert info.last_ingested is None
    with L1db.create(db_url) as again:  # creating twice keeps what is there
        again.store_visit_detector(7, 3, sources=[_source(1)])
    with L1db(db_url) as reopened:
        info = reopened.info()
        assert info.row_counts["DiaSource"] == 1
        assert info.last_ingested == _l1(7, 3)
        assert info.last_visit == 7


def test_incompatible_schema_version_is_refused(db_url: str) -> None:
    if db_url.startswith("cassandra://"):
        with L1db.create(db_url) as db:
            db._session.execute(f'UPDATE "{db.keyspace}".metadata SET value = \'3.0\' '
                                "WHERE name = 'schema_version'")
        with pytest.raises(SchemaVersionError, match=r"version 3\.0"):
            L1db(db_url)
        return
    L1db.create(db_url).close()
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE metadata SET value = '3.0' WHERE name = 'schema_version'"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match=r"version 3\.0"):
        L1db(db_url)


@pytest.mark.parametrize("old", ["2.0", "2.1"])
def test_schema_2_0_and_2_1_are_upgraded_with_the_wait_table_and_marker_totals(
        db_url: str, old: str) -> None:
    """A 2.0 database (no visit_detector_wait, no n_alerts_total) or 2.1 (no n_alerts_total)
    is refused with the upgrade command, and the upgrade adds what is missing and nothing
    else (its sources and markers stay where they are)."""
    if db_url.startswith("cassandra://"):
        pytest.skip("SQL databases only (a 2.1 keyspace: test_cassandra_2_1_keyspace_...)")
    db = L1db.create(db_url)
    db.store(RowBatch.build(), markers=[VisitDetectorEnd(
        visit=1, detector=2, partition=0, n_partitions=1, n_alerts=0)])
    db.close()
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        if old == "2.0":
            conn.execute(sa.text("DROP TABLE visit_detector_wait"))
        conn.execute(sa.text("ALTER TABLE visit_detector_end DROP COLUMN n_alerts_total"))
        conn.execute(sa.text("UPDATE metadata SET value = :v WHERE name = 'schema_version'"),
                     {"v": old})
    engine.dispose()
    with pytest.raises(SchemaVersionError, match=rf"{old}.*l1db upgrade"):
        L1db(db_url)
    assert L1db.upgrade(db_url) == old
    with L1db(db_url) as db:
        assert db.schema_version == SCHEMA_VERSION == "2.4"
        assert db.is_ingested(1, 2)
        waiting = [VisitDetectorEnd(visit=3, detector=2, partition=0, n_partitions=1,
                                    n_alerts=1, topic="t", last_offset=5, n_alerts_total=1)]
        assert db.store(RowBatch.build(), markers=waiting).completed == ()
        assert db.store(RowBatch.build(), consumed=ConsumedOffsets(
            consumer="c", member="m", next_offsets={("t", 0): 6}, n_messages=1)
            ).completed == (_l1(3, 2),)


def test_cassandra_2_1_keyspace_gets_marker_totals_when_opened(db_url: str) -> None:
    if not db_url.startswith("cassandra://"):
        pytest.skip("Cassandra only (SQL databases are upgraded by 'alertbutler l1db upgrade')")
    db = L1db.create(db_url)
    ks = db.keyspace  # type: ignore[attr-defined]
    db._session.execute(f'ALTER TABLE "{ks}".visit_detector_end DROP n_alerts_total')  # type: ignore[attr-defined]
    db._session.execute(f"UPDATE \"{ks}\".metadata SET value = '2.1' "  # type: ignore[attr-defined]
                        "WHERE name = 'schema_version'")
    db.close()
    with L1db(db_url) as db:
        assert db.schema_version == SCHEMA_VERSION == "2.4"
        markers = [VisitDetectorEnd(visit=4, detector=1, partition=0, n_partitions=1,
                                    n_alerts=0, n_alerts_total=0, topic="t")]
        assert db.store(RowBatch.build(), markers=markers).completed == (_l1(4, 1),)


def test_schema_2_2_ledger_moves_to_visit_detector_keys(db_url: str) -> None:
    """A 2.2 database's work_attempt rows, keyed by display text, are keyed by (instrument,
    visit, detector) after the upgrade; a key that does not read as one is dropped."""
    if db_url.startswith("cassandra://"):
        pytest.skip("SQL databases only: a Cassandra keyspace gets the new table as it opens")
    from alertbutler.l1db.attempts import WorkAttempts

    L1db.create(db_url).close()
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE visit_detector_attempt"))
        conn.execute(sa.text(
            "CREATE TABLE work_attempt (item TEXT PRIMARY KEY, attempts INTEGER NOT NULL, "
            "worker VARCHAR(255) NOT NULL, previous_worker VARCHAR(255), "
            "started_at DOUBLE PRECISION NOT NULL, last_error TEXT, "
            "finished_at DOUBLE PRECISION)"))
        conn.execute(sa.text(
            "INSERT INTO work_attempt VALUES ('work:SimCam visit 7 detector 3', 2, 'w2', 'w1', "
            "100.0, 'boom', NULL), ('work:SimCam group g-9 detector 1', 1, 'w1', NULL, 50.0, "
            "NULL, NULL)"))
        conn.execute(sa.text("UPDATE metadata SET value = '2.2' WHERE name = 'schema_version'"))
    with pytest.raises(SchemaVersionError, match=r"2\.2.*l1db upgrade"):
        L1db(db_url)
    assert L1db.upgrade(db_url) == "2.2"
    assert not sa.inspect(engine).has_table("work_attempt")
    engine.dispose()
    with L1db(db_url) as db:
        ledger = WorkAttempts(db, create=False)
        item = VisitDetector(instrument="SimCam", visit=7, detector=3)
        assert [(r["instrument"], r["visit"], r["detector"]) for r in ledger.rows()] == [
            ("SimCam", 7, 3)]
        again = ledger.begin(item, "w3")  # the count carried over
        assert (again.number, again.previous_worker, again.last_error) == (3, "w2", "boom")


def test_missing_database_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(L1dbNotFoundError, match="l1db create"):
        L1db(f"sqlite:///{tmp_path / 'nothing.sqlite3'}")
    assert not (tmp_path / "nothing.sqlite3").exists()


def test_store_is_idempotent_and_round_trips_values(db_url: str) -> None:
    db = L1db.create(db_url)
    sources = [_source(1, raErr=0.1, snr=None, band=""), _source(2, isDipole=True)]
    forced = [{"diaForcedSourceId": 9, "diaObjectId": 101, "ra": 10.0, "dec": -5.0,
               "visit": 7, "detector": 3, "midpointMjdTai": 60000.123456789012,
               "psfFlux": -3.25, "band": "g"}]
    objects = [{"diaObjectId": 101, "validityStartMjdTai": 60001.5, "ra": 10.001,
                "dec": -5.0, "nDiaSources": 1, "r_psfFluxMean": 0.1}]
    first = db.store_visit_detector(7, 3, objects=objects, sources=sources,
                                    forced_sources=forced)
    assert first.inserted == {"DiaObject": 1, "DiaSource": 2, "DiaForcedSource": 1}
    second = db.store_visit_detector(7, 3, objects=objects, sources=sources,
                                     forced_sources=forced)
    assert second.n_rows == 0
    assert db.row_counts() == {"DiaObject": 1, "DiaObjectLast": 1, "DiaSource": 2,
                               "DiaForcedSource": 1, "SSSource": 0}
    got = db.source_history([101, 102]).sort_by("diaSourceId").to_pylist()
    assert [r["diaSourceId"] for r in got] == [1, 2]
    assert got[0]["raErr"] == pytest.approx(0.1, rel=1e-7)  # a float32 column
    assert got[0]["snr"] is None and got[0]["band"] == "" and got[1]["band"] == "r"
    assert got[0]["isDipole"] is False and got[1]["isDipole"] is True
    assert got[0]["midpointMjdTai"] == 60001.5 and got[0]["ra"] == 10.001
    assert got[0]["pixelId"] > 0
    f = db.forced_source_history([101]).to_pylist()
    assert f[0]["midpointMjdTai"] == 60000.123456789012 and f[0]["psfFlux"] == -3.25


def test_latest_object_version_wins_whatever_the_order(db_url: str) -> None:
    db = L1db.create(db_url)
    def version(mjd: float, n: int) -> dict:
        return {"diaObjectId": 5, "validityStartMjdTai": mjd, "ra": 1.0, "dec": 2.0,
                "nDiaSources": n}
    db.store(RowBatch.build(objects=[version(60002.0, 2)]))
    db.store(RowBatch.build(objects=[version(60001.0, 1), version(60003.0, 3)]))
    db.store(RowBatch.build(objects=[version(60002.5, 9)]))
    last = db.objects_in_region(Cone(ra=1.0, dec=2.0, radius=0.01)).to_pylist()
    assert [(r["validityStartMjdTai"], r["nDiaSources"]) for r in last] == [(60003.0, 3)]
    versions = db.object_versions([5]).column("validityStartMjdTai").to_pylist()
    assert sorted(versions) == [60001.0, 60002.0, 60002.5, 60003.0]


def test_objects_by_id_and_the_latest_detected_first(db_url: str) -> None:
    db = L1db.create(db_url)

    def obj(oid: int, last: float, n: int = 1) -> dict:
        return {"diaObjectId": oid, "validityStartMjdTai": last, "ra": 1.0 + oid * 1e-3,
                "dec": 2.0, "nDiaSources": n, "lastDiaSourceMjdTai": last}
    db.store(RowBatch.build(objects=[obj(1, 60001.0), obj(2, 60003.0), obj(3, 60002.0),
                                     obj(1, 60004.0, 2)]))
    latest = db.latest_objects(2).to_pylist()
    assert [(r["diaObjectId"], r["nDiaSources"]) for r in latest] == [(1, 2), (2, 1)]
    assert db.latest_objects(0).num_rows == 0
    with pytest.raises(ValueError, match="limit"):
        db.latest_objects(-1)
    found = db.objects([3, 2, 99]).to_pylist()
    assert sorted(r["diaObjectId"] for r in found) == [2, 3]
    assert db.objects([]).num_rows == 0


@pytest.mark.parametrize("bad, column", [
    ({"dec": 95.0}, "dec"), ({"ra": float("nan")}, "ra"), ({"ra": 361.0}, "ra"),
    ({"midpointMjdTai": float("inf")}, "midpointMjdTai"), ({"visit": None}, "visit"),
    ({"midpointMjdTai": 1e20}, "midpointMjdTai"), ({"midpointMjdTai": -5.0}, "midpointMjdTai"),
])
def test_impossible_rows_are_refused_with_their_column(sqlite_url: str, bad: dict,
                                                       column: str) -> None:
    db = L1db.create(sqlite_url)
    with pytest.raises(RowError) as info:
        db.store(RowBatch.build(sources=[_source(1), _source(2, **bad)]))
    assert info.value.column == column and column in str(info.value)
    assert db.row_counts()["DiaSource"] == 0


def test_rows_must_belong_to_the_visit_detector(sqlite_url: str) -> None:
    db = L1db.create(sqlite_url)
    with pytest.raises(RowError, match="not to visit 8"):
        db.store_visit_detector(8, 3, sources=[_source(1)])


def test_region_queries_match_brute_force(db_url: str) -> None:
    """Objects spread over random skies and packed around the wrap and the poles."""
    rng = np.random.default_rng(7)
    # a tenth of the objects on Cassandra: three JVMs on a shared 2-core machine write a few
    # hundred rows/s, and the cover and filtering are the same code whatever the count
    scale = 10 if db_url.startswith("cassandra://") else 1
    parts = [random_sky(rng, 20_000 // scale)]
    for ra0, dec0 in SPECIAL_CENTRES:
        parts.append(random_cap(rng, 2_000 // scale, ra0, dec0, 2.0))
    ra = np.concatenate([p[0] for p in parts])
    dec = np.concatenate([p[1] for p in parts])
    n = len(ra)
    db = L1db.create(db_url)
    rows = fake_visit_rows(rng, visit=1, detector=0, object_ids=np.arange(1, n + 1), ra=ra,
                           dec=dec, mjd=60000.0, source_id_start=1, forced=False)
    db.store(RowBatch.build(objects=rows["objects"]))
    centres = SPECIAL_CENTRES + list(zip(*random_sky(rng, 6), strict=True))
    for ra0, dec0 in centres:
        radius = float(rng.choice([0.05, 0.4, 1.75]))
        cone = Cone(ra=ra0, dec=dec0, radius=radius)
        got = set(db.objects_in_region(cone, columns=["diaObjectId"])
                  .column("diaObjectId").to_pylist())
        sep = _separation_deg(ra, dec, ra0, dec0)
        want = set((np.flatnonzero(sep <= radius) + 1).tolist())
        edge = set((np.flatnonzero(np.abs(sep - radius) < 1e-9) + 1).tolist())
        assert got - edge == want - edge, (ra0, dec0, radius)
        square = _square(ra0, dec0, 0.11, float(rng.uniform(0, 90)))  # a detector
        got = set(db.objects_in_region(square).column("diaObjectId").to_pylist())
        want = set((np.flatnonzero(_gnomonic_inside(square, ra, dec)) + 1).tolist())
        assert got == want, (ra0, dec0)
        assert want or dec0 not in (90.0, -90.0)


def test_schema_2_3_gets_room_on_the_latest_objects_pages(db_url: str) -> None:
    """A 2.3 database is refused with the upgrade command; on PostgreSQL the upgrade sets
    DiaObjectLast's fillfactor; its rows stay and take new versions."""
    if db_url.startswith("cassandra://"):
        pytest.skip("SQL databases only: a Cassandra keyspace has no fillfactor")
    db = L1db.create(db_url)
    rng = np.random.default_rng(2)
    ids = np.arange(1, 6)
    ra, dec = random_cap(rng, 5, 10.0, 10.0, 0.05)
    db.store_visit_detector(1, 1, **fake_visit_rows(
        rng, visit=1, detector=1, object_ids=ids, ra=ra, dec=dec, mjd=60000.0,
        source_id_start=1))
    db.close()
    pg = db_url.startswith("postgresql")
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))

    def options() -> object:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT reloptions FROM pg_class "
                                        "WHERE relname = 'DiaObjectLast'")).scalar()

    with engine.begin() as conn:
        if pg:
            assert options() == ["fillfactor=70"]  # a new database has it
            conn.execute(sa.text('ALTER TABLE "DiaObjectLast" RESET (fillfactor)'))
        conn.execute(sa.text("UPDATE metadata SET value = '2.3' WHERE name = 'schema_version'"))
    if pg:
        assert options() is None
    with pytest.raises(SchemaVersionError, match=r"2\.3.*l1db upgrade"):
        L1db(db_url)
    assert L1db.upgrade(db_url) == "2.3"
    if pg:
        assert options() == ["fillfactor=70"]
    engine.dispose()
    with L1db(db_url) as db:
        assert db.schema_version == SCHEMA_VERSION
        db.store_visit_detector(2, 1, **fake_visit_rows(
            rng, visit=2, detector=1, object_ids=ids, ra=ra, dec=dec, mjd=60001.0,
            source_id_start=101))
        latest = db.objects(ids)
        assert latest.column("validityStartMjdTai").to_pylist() == [60001.0] * 5


def test_a_prepared_batch_stores_the_same_rows(db_url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch prepared ahead (sorted and COPY-encoded on PostgreSQL, without the database)
    stores exactly its rows with no encoding in the store, and again as a redelivery (the
    temporary-table path) nothing; a table replaced after the preparation is encoded again;
    the newest object versions win either way."""
    db = L1db.create(db_url)
    rng = np.random.default_rng(8)
    ids = np.arange(50, 0, -1)  # unsorted keys: the preparation sorts them
    ra, dec = random_cap(rng, 50, 200.0, 5.0, 0.1)
    batches = [RowBatch.build(**fake_visit_rows(
        rng, visit=v, detector=3, object_ids=ids, ra=ra, dec=dec, mjd=60000.0 + v,
        source_id_start=1000 * v)) for v in (2, 1)]  # the newer visit first
    db.close()
    prepared = [db.prepare(b) for b in batches]  # no session needed
    pg = db_url.startswith("postgresql")
    assert set(prepared[0].encoded) == ({"DiaObject", "DiaSource", "DiaForcedSource"}
                                        if pg else set())
    if pg:
        assert prepared[0].sources.column("diaSourceId").to_pylist() == sorted(
            batches[0].sources.column("diaSourceId").to_pylist())
    old = batches[0].sources.to_pylist()
    mixed = db.prepare(RowBatch.build(sources=[*old, {**old[0], "diaSourceId": 99_999}]))
    # the store of a prepared batch encodes nothing (DiaObjectLast reuses DiaObject's data)
    encode = _copy.binary_copy_data
    monkeypatch.setattr(_copy, "binary_copy_data", _refuse_encoding)
    with L1db(db_url) as db:
        for batch in prepared:
            assert db.store(batch).inserted == {"DiaObject": 50, "DiaSource": 50,
                                                "DiaForcedSource": 50}
        assert db.store(mixed).inserted == {"DiaSource": 1}  # the new one only
        assert db.store(prepared[1]).inserted == {"DiaObject": 0, "DiaSource": 0,
                                                  "DiaForcedSource": 0}
        monkeypatch.setattr(_copy, "binary_copy_data", encode)
        replaced = dataclasses.replace(prepared[1], sources=RowBatch.build(
            sources=[{**old[1], "diaSourceId": 88_888}]).sources)
        assert db.store(replaced).inserted == {"DiaObject": 0, "DiaSource": 1,
                                               "DiaForcedSource": 0}
        assert db.source_history([old[1]["diaObjectId"]]).num_rows == 3
        got = db.source_history(ids).sort_by("diaSourceId")
        stored = {r["diaSourceId"]: r for r in got.to_pylist()}
        sent = [*batches[1].sources.to_pylist(), *mixed.sources.to_pylist(),
                *replaced.sources.to_pylist()]
        assert sorted(stored) == sorted(r["diaSourceId"] for r in sent)
        for row in sent:
            assert {k: stored[row["diaSourceId"]][k] for k in row} == row
        latest = db.objects(ids).sort_by("diaObjectId")
        assert latest.column("validityStartMjdTai").to_pylist() == [60002.0] * 50


def _refuse_encoding(rows: pa.Table) -> bytes:
    raise AssertionError("a prepared batch was encoded again in the store")


def test_history_since_mjd(db_url: str) -> None:
    db = L1db.create(db_url)
    rng = np.random.default_rng(3)
    ids = np.arange(1, 51)
    ra, dec = random_cap(rng, 50, 359.9, 0.0, 0.2)
    for k, mjd in enumerate([60000.0, 60100.0, 60200.0]):
        rows = fake_visit_rows(rng, visit=k + 1, detector=5, object_ids=ids, ra=ra, dec=dec,
                               mjd=mjd, source_id_start=1 + 100 * k)
        db.store_visit_detector(k + 1, 5, **rows)
    hist = db.source_history(ids[:10], since_mjd=60100.0)
    assert hist.num_rows == 20
    assert set(hist.column("visit").to_pylist()) == {2, 3}
    forced = db.forced_source_history(np.array([3, 4]), since_mjd=60050.0)
    assert sorted(forced.column("visit").to_pylist()) == [2, 2, 3, 3]
    assert db.source_history([]).num_rows == 0
    both = db.history(ids[:10], since_mjd=60100.0, forced_columns=["diaObjectId", "visit"])
    assert both.sources.sort_by("diaSourceId").equals(hist.sort_by("diaSourceId"))
    assert both.forced_sources.column_names == ["diaObjectId", "visit"]
    assert sorted(both.forced_sources.column("visit").to_pylist()) == [2] * 10 + [3] * 10
    assert db.history([]).forced_sources.schema == arrow_schema("DiaForcedSource")
    assert db.is_ingested(2, 5) and not db.is_ingested(2, 6)
    db.store(RowBatch.build(), complete=[(9, 5)])  # plain tuples are fine
    assert db.is_ingested(9, 5)


def test_a_failed_store_leaves_nothing_and_the_next_one_works() -> None:
    """A PostgreSQL store whose transaction fails after its rows were written (here: a
    consumer name too long for its column) commits nothing, and the next store on the same
    pooled connection still works: the first store of a connection makes its temporary
    tables inside that transaction, so its rollback takes them away too."""
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(11)
    ids = np.arange(1, 21)
    ra, dec = random_cap(rng, 20, 10.0, 10.0, 0.1)
    rows = fake_visit_rows(rng, visit=1, detector=2, object_ids=ids, ra=ra, dec=dec,
                           mjd=60000.5, source_id_start=1)
    bad = ConsumedOffsets(consumer="c" * 300, member="m", next_offsets={("t", 0): 5},
                          n_messages=20)
    with temporary_pg_database() as url, L1db.create(url) as db:
        with pytest.raises(sa.exc.DBAPIError, match="too long"):
            db.store(RowBatch.build(**rows), consumed=bad)
        assert db.row_counts()["DiaSource"] == 0
        result = db.store(RowBatch.build(**rows), complete=[(1, 2)])
        assert result.inserted == {"DiaObject": 20, "DiaSource": 20, "DiaForcedSource": 20}
        again = db.store(RowBatch.build(**rows))  # a redelivery: every row already there
        assert again.inserted == {"DiaObject": 0, "DiaSource": 0, "DiaForcedSource": 0}
        half = db.store(RowBatch.build(**fake_visit_rows(  # some rows new, some there
            rng, visit=1, detector=2, object_ids=np.arange(11, 31), ra=ra, dec=dec,
            mjd=60000.5, source_id_start=11)))
        assert half.inserted == {"DiaObject": 10, "DiaSource": 10, "DiaForcedSource": 10}
        assert db.row_counts()["DiaSource"] == 30 and db.is_ingested(1, 2)
        assert len(db.objects(np.arange(1, 31))) == 30


def test_a_postgresql_database_gone_is_an_outage_for_reads() -> None:
    """Reads go through connectorx, whose errors are all RuntimeError: a database that
    cannot be reached must still surface as the driver's connection error, which the
    workers treat as an outage (retry later) rather than a failure of the work."""
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with temporary_pg_database() as url:
        db = L1db.create(url)
        assert db.objects(np.array([1, 2])).num_rows == 0
    with pytest.raises(sa.exc.OperationalError) as caught:  # the database was dropped
        db.objects(np.array([1, 2]))
    assert is_outage(caught.value)
    db.close()


def test_markers_complete_a_visit_detector_only_when_every_partition_is_in(
        db_url: str) -> None:
    db = L1db.create(db_url)
    empty = RowBatch.build()
    def marker(p: int) -> VisitDetectorEnd:
        return VisitDetectorEnd(visit=11, detector=4, partition=p, n_partitions=3, n_alerts=p)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(
        db.wait_for_ingested([(11, 4)], timeout=60)))
    waiter.start()
    assert db.store(empty, markers=[marker(0)]).completed == ()
    assert db.store(empty, markers=[marker(2), marker(0)]).completed == ()
    assert not db.is_ingested(11, 4)
    assert not db.wait_for_ingested([(11, 4)], timeout=0.2)
    time.sleep(0.2)
    assert db.store(empty, markers=[marker(1)]).completed == (_l1(11, 4),)
    waiter.join(30)
    assert result == [True]
    assert db.store(empty, markers=[marker(1)]).completed == ()  # replay: no change
    assert db.info().last_ingested == _l1(11, 4)


def test_out_of_band_markers_wait_for_the_stored_alert_offsets(db_url: str) -> None:
    """Markers read from a control topic complete a visit-detector only once the stored
    offset of each alert partition has passed the last offset its marker names, whichever
    store (before or after the markers) moves the offsets there."""
    db = L1db.create(db_url)
    empty = RowBatch.build()
    def marker(p: int, n: int, last: int | None) -> VisitDetectorEnd:
        return VisitDetectorEnd(visit=12, detector=5, partition=p, n_partitions=2,
                                n_alerts=n, topic="a", last_offset=last)
    def consumed(offsets: dict) -> ConsumedOffsets:
        return ConsumedOffsets(consumer="g", member="m1", next_offsets=offsets,
                               n_messages=1)
    # partition 0 is stored past its alerts first; partition 1 (alerts at offsets ..7) not
    assert db.store(empty, consumed=consumed({("a", 0): 4})).completed == ()
    both = [marker(0, 3, 3), marker(1, 5, 7)]
    assert db.store(empty, markers=both, consumed=consumed({("a.control", 0): 2})
                    ).completed == ()
    assert not db.is_ingested(12, 5)
    assert db.store(empty, consumed=consumed({("a", 1): 7})).completed == ()  # 7 not stored
    assert db.store(empty, consumed=consumed({("a", 1): 8})).completed == (
        _l1(12, 5),)
    assert db.ingested([(12, 5)]) == {_l1(12, 5)}
    # the markers read again (a crash before the control offset was stored): no change
    assert db.store(empty, markers=both, consumed=consumed({("a.control", 0): 2})
                    ).completed == ()
    # a partition without alerts of it waits for nothing
    lone = [VisitDetectorEnd(visit=13, detector=5, partition=p, n_partitions=2, n_alerts=0,
                             topic="a") for p in (0, 1)]
    assert db.store(empty, markers=lone).completed == (_l1(13, 5),)


def test_concurrent_marker_and_offset_stores_never_strand_a_visit_detector(
        db_url: str) -> None:
    """One ingester stores the markers while another stores the alert offsets they wait
    for, in overlapping transactions: whichever commits last completes the visit-detector."""
    db = L1db.create(db_url)
    empty = RowBatch.build()
    for i in range(20):
        visit = 100 + i
        markers = [VisitDetectorEnd(visit=visit, detector=1, partition=0, n_partitions=1,
                                    n_alerts=1, topic="c", last_offset=i)]
        barrier = threading.Barrier(2)
        def store(barrier: threading.Barrier = barrier, **kwargs) -> None:  # type: ignore[no-untyped-def]
            barrier.wait()
            db.store(empty, **kwargs)
        threads = [threading.Thread(target=store, kwargs={
                       "markers": markers, "consumed": ConsumedOffsets(
                           consumer="g", member="m1", next_offsets={("c.control", 0): i + 1},
                           n_messages=1)}),
                   threading.Thread(target=store, kwargs={"consumed": ConsumedOffsets(
                       consumer="g", member="m2", next_offsets={("c", 0): i + 1},
                       n_messages=1)})]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert db.is_ingested(visit, 1), i


def test_consumer_offsets_move_only_forward(db_url: str) -> None:
    db = L1db.create(db_url)
    empty = RowBatch.build()
    def consumed(offsets: dict) -> ConsumedOffsets:
        return ConsumedOffsets(consumer="g", member="m1", next_offsets=offsets, n_messages=2)
    db.store(empty, consumed=consumed({("t", 0): 10, ("t", 1): 4}))
    db.store(empty, consumed=consumed({("t", 0): 7}))  # a stale replay
    offsets = db.consumer_offsets("g")
    assert {k: v.next_offset for k, v in offsets.items()} == {("t", 0): 10, ("t", 1): 4}
    assert db.consumer_offsets("other") == {}
    assert db.consumer_progress("g").n_messages == 4


def test_arrow_and_numpy_inputs(sqlite_url: str) -> None:
    db = L1db.create(sqlite_url)
    table = pa.Table.from_pylist([_source(1), _source(2)])
    assert db.store(RowBatch.build(sources=table)).inserted == {"DiaSource": 2}
    columns = {k: np.array([v]) for k, v in _source(3).items()}
    assert db.store(RowBatch.build(sources=columns)).inserted == {"DiaSource": 1}


def test_rows_with_different_keys_keep_every_value(sqlite_url: str) -> None:
    db = L1db.create(sqlite_url)
    first = _source(1)
    second = _source(2, snr=7.5)  # a key the first row lacks
    third = {k: v for k, v in _source(3).items() if k != "band"}  # lacks one the first has
    db.store(RowBatch.build(sources=[first, second, third]))
    got = {r["diaSourceId"]: r for r in db.source_history([101, 102, 103]).to_pylist()}
    assert got[2]["snr"] == 7.5 and got[1]["snr"] is None
    assert got[3]["band"] is None and got[1]["band"] == "r"
