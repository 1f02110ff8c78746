"""Benchmark of the L1 database and its ingester.

1. End to end, topic -> committed rows: N small alerts (2 history sources, 2 forced sources,
   no cutouts) plus end markers are encoded, then produced to a 4-partition topic first
   (``produce_per_s``); then the ingester (in this process) consumes them into a fresh SQLite
   database and, separately, a fresh PostgreSQL database. Alerts/s = N / (start of the
   ingester -> every visit-detector committed). Run on each broker engine (``--engine
   embedded|kafka|both``, default both, one after the other), under ``"embedded"`` /
   ``"kafka"``, with that broker's raw ceiling for the same messages (``bench/_ceiling.py``:
   produced with the same producer settings, read back without decoding) and
   ``*_fraction_of_ceiling`` (ingest rates against the ceiling's consume rate, produce_per_s
   against its produce rate).
2. A visit on a PostgreSQL database that already holds 1,000 earlier visits of 10,000 sources
   each (100 fields of 10,000 objects, each field visited 10 times over the past year:
   10 M DiaSource, 10 M DiaForcedSource, 10 M DiaObject versions, 1 M DiaObjectLast rows,
   filled server-side, the sources into their 30-day time partitions). ``visit_store_s``: one
   transaction storing the new visit's 10,000 DiaObject versions, DiaSources and
   DiaForcedSources. ``visit_query_s``: the objects in the field (1.75 deg cone) and their
   DiaSource and DiaForcedSource history over the last 12 months (~100,000 rows each), as
   Arrow tables (``L1db.history``: the two history queries at once): the median of
   ``--query-repeats`` runs (``visit_query_first_s``: the first).
   ``*_cpu_s``: the CPU seconds of this process and the database's server backends for the
   same (what a quiet machine would take with the data cached; wall time on a busy machine is
   mostly the wait for a core). The same is measured on a database of ``--compare-visits``
   (100) earlier visits (``visit_query_s_at_100``...; ``--grow age``: the same fields and
   cadence over one year against ten years) and ``query_ratio`` is the 1,000-visit time over the
   100-visit one: flat history queries keep it near 1. ``--only visit`` runs this part alone.
3. With ``--l1db cassandra://HOSTS/KEYSPACE``: the same on Apache Cassandra, side by side
   (``cassandra_alerts_per_s`` beside each engine's PostgreSQL figure; ``cassandra_visit_*``
   on a database of its field's ``--cassandra-visits`` earlier visits, stored through the L1
   API: see ``bench/_cassandra.py``). Each figure gets a keyspace of its own.

Prints progress, then one JSON object as the last line. The machine may be shared: figures
are what this run saw.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from confluent_kafka import Producer

import _cassandra
import _ceiling
from alertbutler.alerts import control_topic, encode_alerts, encode_visit_detector_end
from alertbutler.alerts.fake import fake_alerts
from alertbutler.broker import make_broker
from alertbutler.ingest import Ingester, IngestSettings
from alertbutler.kafka import create_topics
from alertbutler.l1db import Cone, L1db, RowBatch, pixel_ids
from alertbutler.l1db.testing import fake_visit_rows, random_cap
from alertbutler.testing import temporary_pg_database

PARTITIONS = 4
FIELD_RADIUS = 1.75
MJD_NOW = 61000.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- 1. end to end ---------------------------------------------------------------------

PRODUCER_SETTINGS = {"acks": "all", "enable.idempotence": True, "linger.ms": 20,
                     "compression.type": "zstd"}
#: Rubin-size alerts: three cutouts (32 x 32, ~76 KB an alert in all) and 25 history sources
RUBIN = {"n_history": 25, "cutout_size": 32}
SMALL = {"n_history": 2, "cutout_size": None}


@dataclass
class Stream:
    """Encoded alerts (partition chosen) of ``groups`` visit-detectors, and their counts."""

    alerts: list[_ceiling.Raw]
    groups: list[tuple[int, int]]
    rows_per_alert: int


def build_stream(n_alerts: int, per_group: int, shape: dict[str, Any]) -> Stream:
    """The encoded alerts of ``n_alerts // per_group`` visit-detectors, each alert's history
    and object made unique by its visit-detector."""
    template = fake_alerts(per_group, seed=1, visit=0, detector=0, **shape)
    messages: list[_ceiling.Raw] = []
    groups = []
    for g in range(n_alerts // per_group):
        visit, detector = 9000 + g, g % 189
        offset = (g + 1) * 10**12
        alerts = []
        for a in template:
            oid = a["diaObject"]["diaObjectId"] + offset
            def src(s: dict, oid: int = oid, visit: int = visit, detector: int = detector,
                    offset: int = offset) -> dict:
                return {**s, "diaSourceId": s["diaSourceId"] + offset, "diaObjectId": oid,
                        "visit": s["visit"] + visit, "detector": detector}
            alerts.append({**a, "diaSource": src(a["diaSource"]),
                           "prvDiaSources": [src(s) for s in a["prvDiaSources"]],
                           "prvDiaForcedSources": [
                               {**f, "diaObjectId": oid, "visit": f["visit"] + visit,
                                "detector": detector} for f in a["prvDiaForcedSources"]],
                           "diaObject": {**a["diaObject"], "diaObjectId": oid}})
        for record, data in zip(alerts, encode_alerts(alerts), strict=True):
            p = zlib.crc32(str(record["diaObject"]["diaObjectId"]).encode()) % PARTITIONS
            messages.append(_ceiling.Raw(None, data, p))
        groups.append((visit, detector))
    return Stream(messages, groups, 1 + shape["n_history"])


def produce_stream(bootstrap: str, topic: str, stream: Stream) -> float:
    """Produce the alerts, then each visit-detector's end markers to the control topic with
    the offsets its alerts got (as the publish datastore does); returns the seconds until
    every message is acknowledged."""
    prod = Producer({"bootstrap.servers": bootstrap, **PRODUCER_SETTINGS})
    prod.list_topics(topic, timeout=30)  # connect first, as the ceiling does
    per_group = len(stream.alerts) // len(stream.groups)
    spans: dict[tuple[int, int], tuple[int, int]] = {}  # (group, partition) -> (n, last)
    failed: list[str] = []

    def delivered(err: Any, msg: Any, group: int) -> None:
        if err is not None:
            failed.append(str(err))
            return
        key = (group, msg.partition())
        n, last = spans.get(key, (0, -1))
        spans[key] = (n + 1, max(last, msg.offset()))

    def produce(target: str, value: bytes, partition: int, callback: Any = None) -> None:
        while True:
            try:
                prod.produce(target, value, partition=partition, on_delivery=callback)
                return
            except BufferError:
                prod.poll(0.05)

    start = time.perf_counter()
    for i, m in enumerate(stream.alerts):
        produce(topic, m.value, m.partition or 0,
                lambda err, msg, g=i // per_group: delivered(err, msg, g))
    assert prod.flush(300) == 0 and not failed, failed
    for g, (visit, detector) in enumerate(stream.groups):
        total = sum(spans.get((g, p), (0, -1))[0] for p in range(PARTITIONS))
        for p in range(PARTITIONS):
            n, last = spans.get((g, p), (0, -1))
            produce(control_topic(topic), encode_visit_detector_end(
                visit=visit, detector=detector, partition=p, n_partitions=PARTITIONS,
                n_alerts=n, n_alerts_total=total, topic=topic,
                last_offset=last if n else None), 0)
    assert prod.flush(120) == 0
    return time.perf_counter() - start


def make_topics(bootstrap: str) -> str:
    topic = f"bench-alerts-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, {topic: PARTITIONS, control_topic(topic): 1, f"{topic}-dead": 1})
    return topic


def _settings(bootstrap: str, topic: str, url: str, group: str, *,
              assign_all: bool) -> IngestSettings:
    return IngestSettings(
        topics=(topic,), db_url=url, group=group, dead_letter_topic=f"{topic}-dead",
        aiokafka={"bootstrap_servers": bootstrap}, confluent={"bootstrap.servers": bootstrap},
        assign_all=assign_all, watch_broker=False)


def ingest_rate(bootstrap: str, topic: str, url: str, stream: Stream,
                clock: DbClock | None = None) -> dict[str, float]:
    """One ingester process (this one, every partition assigned) from the start of the
    ingester to every visit-detector committed: alerts/s, and the CPU seconds per 10,000
    alerts of this process (and of the database server, on PostgreSQL)."""
    n_alerts = len(stream.alerts)
    db = L1db.create(url)
    ingester = Ingester(_settings(bootstrap, topic, url, f"bench-{uuid.uuid4().hex[:6]}",
                                  assign_all=True), db=db)
    marks: dict[str, Any] = {}

    async def main() -> float:
        start = time.perf_counter()
        marks["cpu"] = time.process_time() - (clock.sampler_cpu if clock else 0.0)
        marks["db"] = clock.read() if clock else None
        task = asyncio.create_task(ingester.run())
        ok, deadline = False, time.monotonic() + 900
        while not ok and not task.done() and time.monotonic() < deadline:
            ok = await asyncio.to_thread(db.wait_for_ingested, stream.groups, 1.0,
                                         poll_interval=0.05)
        elapsed = time.perf_counter() - start
        marks["cpu"] = time.process_time() - (clock.sampler_cpu if clock else 0.0) \
            - marks["cpu"]
        if clock:
            marks["db"] = clock.since(marks["db"])
        if not ok and task.done():  # the ingester stopped before ingesting everything
            await task  # raises its error, if it had one
            raise RuntimeError("the ingester stopped before every visit-detector was ingested")
        ingester.stop()
        await task
        assert ok, "not every visit-detector was ingested"
        return elapsed

    elapsed = asyncio.run(main())
    counts = db.row_counts()
    assert counts["DiaSource"] == stream.rows_per_alert * n_alerts, counts
    db.close()
    t = ingester.totals
    out = {"alerts_per_s": n_alerts / elapsed, "cpu_s_per_10k": marks["cpu"] / n_alerts * 1e4}
    if clock:
        out["db_cpu_s_per_10k"] = marks["db"] / n_alerts * 1e4
    log(f"  {n_alerts} alerts in {elapsed:.2f} s: {n_alerts / elapsed:,.0f} alerts/s; "
        f"{t.batches} batches; decode+rows {t.sort_s:.2f} s, store {t.store_s:.2f} s; CPU s "
        f"per 10k alerts: {', '.join(f'{k} {v:.3f}' for k, v in out.items() if 'cpu' in k)}")
    return out


def _member(bootstrap: str, topic: str, url: str, group: str, report: Any, stop: Any) -> None:
    """One group member in its own process: reports its assignment as it changes, runs until
    ``stop`` is set, then reports its CPU seconds."""
    ingester = Ingester(_settings(bootstrap, topic, url, group, assign_all=False))

    async def main() -> None:
        cpu = time.process_time()
        task = asyncio.create_task(ingester.run())
        seen: frozenset = frozenset()
        while not stop.is_set() and not task.done():
            if ingester.assignment != seen:
                seen = ingester.assignment
                report.put(("assignment", os.getpid(), sorted(seen)))
            await asyncio.sleep(0.05)
        ingester.stop()
        await task
        report.put(("cpu", os.getpid(), time.process_time() - cpu))

    asyncio.run(main())


def group_rate(bootstrap: str, topic: str, url: str, stream: Stream, members: int
               ) -> dict[str, float]:
    """``members`` ingester processes in one consumer group: once the group has split the
    alert partitions between them, the stream is produced; alerts/s from the start of the
    produce to every visit-detector committed (the group join is left out: it is the
    broker's session timeout, not ingest)."""
    import multiprocessing as mp

    n_alerts = len(stream.alerts)
    L1db.create(url).close()
    ctx = mp.get_context("spawn")
    report, stop = ctx.Queue(), ctx.Event()
    group = f"bench-group-{uuid.uuid4().hex[:6]}"
    procs = [ctx.Process(target=_member, args=(bootstrap, topic, url, group, report, stop))
             for _ in range(members)]
    for proc in procs:
        proc.start()
    try:
        assigned: dict[int, list] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            kind, pid, value = report.get(timeout=120)
            assigned[pid] = value
            alert_parts = [sorted(p for t, p in v if t == topic) for v in assigned.values()]
            if len(assigned) == members and all(alert_parts) \
                    and sum(map(len, alert_parts)) == PARTITIONS:
                break
        else:
            raise RuntimeError(f"the group never split the partitions: {assigned}")
        start = time.perf_counter()
        produce_stream(bootstrap, topic, stream)
        with L1db(url) as db:
            ok = db.wait_for_ingested(stream.groups, 900, poll_interval=0.05)
            counts = db.row_counts()
        elapsed = time.perf_counter() - start
        assert ok, "not every visit-detector was ingested"
        assert counts["DiaSource"] == stream.rows_per_alert * n_alerts, counts
        stop.set()
        cpu = 0.0
        for _ in procs:
            kind, pid, value = report.get(timeout=120)
            while kind != "cpu":
                kind, pid, value = report.get(timeout=120)
            cpu += value
    finally:
        stop.set()
        for proc in procs:
            proc.join(60)
    log(f"  {members} member(s): {n_alerts} alerts in {elapsed:.2f} s: "
        f"{n_alerts / elapsed:,.0f} alerts/s, {cpu / n_alerts * 1e4:.3f} CPU s per 10k")
    return {"alerts_per_s": n_alerts / elapsed, "cpu_s_per_10k": cpu / n_alerts * 1e4}


def end_to_end(engine: str, small: Stream, rubin: Stream | None, members: int,
               cassandra: str | None = None) -> dict[str, object]:
    """On a broker of ``engine``: the small alerts into SQLite and into PostgreSQL, in one
    ingester process and in groups of 1 and ``members`` processes; the Rubin-size ones into
    PostgreSQL; each beside the broker's ceiling for the same messages."""
    import tempfile

    out: dict[str, object] = {}
    load = os.getloadavg()[0]
    log(f"[{engine}] starting the broker")
    with make_broker(engine) as broker:
        bootstrap = broker.bootstrap
        _ceiling.warm_up(bootstrap)
        before = _ceiling.measure(bootstrap, small.alerts, settings=PRODUCER_SETTINGS,
                                  partitions=PARTITIONS, label=f"[{engine}] before: ")
        topic = make_topics(bootstrap)
        out["produce_per_s"] = round(len(small.alerts) / produce_stream(bootstrap, topic,
                                                                        small))
        log(f"[{engine}] produced {len(small.alerts):,} alerts and their markers: "
            f"{out['produce_per_s']:,}/s")
        log(f"[{engine}] SQLite:")
        with tempfile.TemporaryDirectory() as tmp:
            got = ingest_rate(bootstrap, topic, f"sqlite:///{tmp}/l1.sqlite3", small)
        out["sqlite_alerts_per_s"] = round(got["alerts_per_s"])
        out["sqlite_cpu_s_per_10k"] = round(got["cpu_s_per_10k"], 3)
        log(f"[{engine}] PostgreSQL:")
        with temporary_pg_database("alertbutler_bench") as url:
            clock = DbClock(url)
            got = ingest_rate(bootstrap, topic, url, small, clock)
            clock.close()
        out["postgres_alerts_per_s"] = round(got["alerts_per_s"])
        out["postgres_cpu_s_per_10k"] = round(got["cpu_s_per_10k"], 3)
        out["postgres_db_cpu_s_per_10k"] = round(got["db_cpu_s_per_10k"], 3)
        if cassandra:
            log(f"[{engine}] Cassandra:")
            got = ingest_rate(bootstrap, topic, _cassandra.fresh_keyspace(cassandra), small)
            out["cassandra_alerts_per_s"] = round(got["alerts_per_s"])
            out["cassandra_cpu_s_per_10k"] = round(got["cpu_s_per_10k"], 3)
        for n in sorted({1, members}):
            log(f"[{engine}] PostgreSQL, a group of {n}:")
            with temporary_pg_database("alertbutler_bench") as url:
                got = group_rate(bootstrap, make_topics(bootstrap), url, small, n)
            out[f"postgres_group_{n}_alerts_per_s"] = round(got["alerts_per_s"])
            out[f"postgres_group_{n}_cpu_s_per_10k"] = round(got["cpu_s_per_10k"], 3)
        ceiling = _ceiling.Ceiling.best(before, _ceiling.measure(
            bootstrap, small.alerts, settings=PRODUCER_SETTINGS, partitions=PARTITIONS,
            label=f"[{engine}] after: "))
        if rubin is not None:
            log(f"[{engine}] Rubin-size alerts into PostgreSQL:")
            rubin_before = _ceiling.measure(bootstrap, rubin.alerts, settings=PRODUCER_SETTINGS,
                                            partitions=PARTITIONS, label=f"[{engine}] rubin: ")
            topic = make_topics(bootstrap)
            produce_stream(bootstrap, topic, rubin)
            with temporary_pg_database("alertbutler_bench") as url:
                clock = DbClock(url)
                got = ingest_rate(bootstrap, topic, url, rubin, clock)
                clock.close()
            rubin_ceiling = _ceiling.Ceiling.best(rubin_before, _ceiling.measure(
                bootstrap, rubin.alerts, settings=PRODUCER_SETTINGS, partitions=PARTITIONS,
                label=f"[{engine}] rubin after: "))
            out["postgres_rubin_alerts_per_s"] = round(got["alerts_per_s"])
            out["postgres_rubin_cpu_s_per_10k"] = round(got["cpu_s_per_10k"], 3)
            out["postgres_rubin_db_cpu_s_per_10k"] = round(got["db_cpu_s_per_10k"], 3)
            out["rubin_ceiling"] = rubin_ceiling.as_dict()
            out["postgres_rubin_fraction_of_ceiling"] = _ceiling.fraction(
                float(got["alerts_per_s"]), rubin_ceiling.consume_per_s)
    out["produce_fraction_of_ceiling"] = _ceiling.fraction(float(out["produce_per_s"]),
                                                           ceiling.produce_per_s)
    for key in ("sqlite", "postgres", *(("cassandra",) if cassandra else ())):
        out[f"{key}_fraction_of_ceiling"] = _ceiling.fraction(
            float(out[f"{key}_alerts_per_s"]), ceiling.consume_per_s)
    out["ceiling"] = ceiling.as_dict()
    out["load_average_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    return out


# ---- 2. a visit on a database with 1,000 earlier visits --------------------------------

def field_centres(n: int) -> np.ndarray:
    """n well-spread pointings (a Fibonacci sphere), away from each other's fields."""
    k = np.arange(n) + 0.5
    dec = np.degrees(np.arcsin(1 - 2 * k / n))
    ra = (np.degrees(np.pi * (1 + 5**0.5) * k)) % 360.0
    return np.column_stack([ra, dec])


def populate(url: str, *, n_fields: int, visits_per_field: int, per_visit: int,
             rng: np.random.Generator, span: float = 365.0
             ) -> tuple[np.ndarray, dict[int, tuple]]:
    """Earlier visits over the past ``span`` days, made server-side from one helper table of
    objects (COPY)."""
    with L1db.create(url) as db:  # the sources' time partitions, made ahead of the fill
        db.prepare_time_partitions(MJD_NOW - span - 1.0, MJD_NOW + 1.0)
    centres = field_centres(n_fields)
    objects = {}
    buffers = []
    for f, (ra0, dec0) in enumerate(centres):
        ra, dec = random_cap(rng, per_visit, ra0, dec0, FIELD_RADIUS)
        ids = f * 1_000_000 + np.arange(per_visit, dtype=np.int64) + 1
        objects[f] = (ids, ra, dec)
        buffers.append(pa.table({"diaObjectId": ids, "field": np.full(per_visit, f),
                                 "ra": ra, "dec": dec, "pixelId": pixel_ids(ra, dec)}))
    table = pa.concat_tables(buffers)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("CREATE UNLOGGED TABLE bench_objects (\"diaObjectId\" bigint, "
                        "field int, ra double precision, dec double precision, "
                        "\"pixelId\" bigint)")
            out = io.BytesIO()
            pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
            with cur.copy("COPY bench_objects FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(out.getvalue())
    visit_sql = (f"o.field + {n_fields} * k", f"{MJD_NOW} - {span} + "
                 f"(o.field + {n_fields} * k) * {span / (n_fields * visits_per_field)}")
    visit, mjd = visit_sql
    statements = {
        "DiaSource": (
            'INSERT INTO "DiaSource" ("diaSourceId", visit, detector, "diaObjectId", '
            '"midpointMjdTai", ra, dec, x, y, "psfFlux", "psfFluxErr", snr, band, '
            '"psfNdata", "trailNdata", "dipoleNdata", "bboxSize", "timeProcessedMjdTai", '
            '"pixelId") '
            f'SELECT ({visit})::bigint * 100000000 + mod(o."diaObjectId", 1000000), {visit}, '
            f'mod(o."diaObjectId", 189)::int, o."diaObjectId", {mjd}, o.ra, o.dec, 100.5, '
            f"200.5, 1000.0, 30.0, 33.3, 'r', 49, 0, 0, 15, {mjd} + 0.0007, o.\"pixelId\" "
            f"FROM bench_objects o CROSS JOIN generate_series(0, {visits_per_field - 1}) k"),
        "DiaForcedSource": (
            'INSERT INTO "DiaForcedSource" ("diaForcedSourceId", "diaObjectId", ra, dec, '
            'visit, detector, "psfFlux", "psfFluxErr", "midpointMjdTai", band, '
            '"timeProcessedMjdTai", "pixelId") '
            f'SELECT ({visit})::bigint * 100000000 + mod(o."diaObjectId", 1000000), '
            f'o."diaObjectId", o.ra, o.dec, {visit}, mod(o."diaObjectId", 189)::int, '
            f"990.0, 30.0, {mjd}, 'r', {mjd} + 0.0007, o.\"pixelId\" "
            f"FROM bench_objects o CROSS JOIN generate_series(0, {visits_per_field - 1}) k"),
        "DiaObject": (
            'INSERT INTO "DiaObject" ("diaObjectId", "validityStartMjdTai", ra, dec, '
            '"r_psfFluxMean", "r_psfFluxNdata", "nDiaSources", "lastDiaSourceMjdTai", '
            '"pixelId") '
            f'SELECT o."diaObjectId", {mjd}, o.ra, o.dec, 1000.0, k + 1, k + 1, {mjd}, '
            f'o."pixelId" FROM bench_objects o '
            f"CROSS JOIN generate_series(0, {visits_per_field - 1}) k"),
        "DiaObjectLast": (
            'INSERT INTO "DiaObjectLast" SELECT DISTINCT ON ("diaObjectId") * '
            'FROM "DiaObject" ORDER BY "diaObjectId", "validityStartMjdTai" DESC'),
    }
    for name, sql in statements.items():
        t0 = time.perf_counter()
        with engine.begin() as conn:
            n = conn.exec_driver_sql(sql).rowcount
        log(f"  populated {name}: {n:,} rows in {time.perf_counter() - t0:.1f} s")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE bench_objects")
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return centres, objects


class CpuClock:
    """CPU seconds of this process plus every server backend of the bench database (read from
    /proc: PostgreSQL runs on this machine). On a loaded machine wall time mostly measures the
    wait for a core; CPU seconds are what the same work takes on a quiet one (data cached).

    The L1 reads open a short session per query (connectorx), whose backend is gone by the
    time a measurement ends: a thread samples the database's backends every 10 ms (found
    among the postmaster's children by the database name in their process title) and keeps
    each one's last CPU reading. Its own CPU is left out of this process's."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                                     autocommit=True)
        self._tick = os.sysconf("SC_CLK_TCK")
        self._title = f" {self._conn.info.dbname} "
        backend = self._conn.info.backend_pid
        with open(f"/proc/{backend}/stat") as f:
            self._postmaster = int(f.read().rsplit(")", 1)[1].split()[1])
        self._seen: dict[int, float] = {}
        self._ours: set[int] = set()
        self._sampler_cpu = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _cpu(self, pid: int) -> float | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime

    def _sample(self) -> None:
        try:
            with open(f"/proc/{self._postmaster}/task/{self._postmaster}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            return
        for pid in pids:
            if pid not in self._ours:  # a new backend shows its database once authenticated
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if self._title not in f.read().decode(errors="replace"):
                            continue
                except OSError:
                    continue
                self._ours.add(pid)
            cpu = self._cpu(pid)
            if cpu is not None:
                with self._lock:
                    self._seen[pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            t0 = time.thread_time()
            self._sample()
            with self._lock:
                self._sampler_cpu += time.thread_time() - t0

    def read(self) -> tuple[float, dict[int, float]]:
        self._sample()
        with self._lock:
            return self._client(), dict(self._seen)

    def _client(self) -> float:
        """This process's CPU seconds, the sampler thread's own left out."""
        return time.process_time() - self._sampler_cpu

    @property
    def sampler_cpu(self) -> float:
        """CPU seconds the sampler thread has used (in this process, not the measured work)."""
        return self._sampler_cpu

    def since(self, start: tuple[float, dict[int, float]]) -> float:
        client, backends = self.read()
        return (client - start[0]) + sum(v - start[1].get(pid, 0.0)
                                         for pid, v in backends.items())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


class DbClock(CpuClock):
    """CPU seconds of the database's server backends only (the ingester's own are counted
    apart, as process time)."""

    def _client(self) -> float:
        return 0.0


def field_query(db: L1db, centre: np.ndarray) -> tuple[float, dict]:
    """Seconds for one field's objects and their 12-month histories, and the row counts."""
    t0 = time.perf_counter()
    region = Cone(ra=float(centre[0]), dec=float(centre[1]), radius=FIELD_RADIUS)
    found = db.objects_in_region(region)
    since = MJD_NOW + 0.5 - 365.0
    object_ids = found.column("diaObjectId").to_numpy()
    sources, forced = db.history(object_ids, since_mjd=since)  # the two at once
    elapsed = time.perf_counter() - t0
    return elapsed, {"objects": found.num_rows, "sources": sources.num_rows,
                     "forced_sources": forced.num_rows}


def visit_store_and_query(url: str, centres: np.ndarray, objects: dict, per_visit: int,
                          rng: np.random.Generator, repeats: int
                          ) -> tuple[float, list[float], dict, float, list[float]]:
    db = L1db(url)
    field = 0
    ids, ra, dec = objects[field]
    visit = 10**7
    rows = fake_visit_rows(rng, visit=visit, detector=0, object_ids=ids, ra=ra, dec=dec,
                           mjd=MJD_NOW + 0.5, source_id_start=visit * 100_000_000)
    batch = RowBatch.build(**rows)  # rows arrive as numpy columns, built before the clock
    clock = CpuClock(url)
    c0, t0 = clock.read(), time.perf_counter()
    result = db.store(batch)
    store_s = time.perf_counter() - t0
    store_cpu = clock.since(c0)
    assert result.inserted == {"DiaObject": per_visit, "DiaSource": per_visit,
                               "DiaForcedSource": per_visit}, result.inserted
    times, cpus = [], []
    for _ in range(repeats):
        c0 = clock.read()
        query_s, sizes = field_query(db, centres[field])
        cpus.append(clock.since(c0))
        times.append(query_s)
    db.close()
    clock.close()
    assert sizes["objects"] >= per_visit, sizes
    return store_s, times, sizes, store_cpu, cpus


def visit_on_database(args: argparse.Namespace, visits: int,
                      rng: np.random.Generator) -> dict[str, object]:
    """Build a database of ``visits`` earlier visits, store a visit, query its field.

    ``--grow density`` (default): every database spans one year, more visits are more fields.
    ``--grow age``: a survey of the same fields and cadence, older: ``--compare-visits`` is one
    year, and ``visits`` that many years (the history query's year holds the same rows).
    """
    if args.grow == "age":
        n_fields = args.compare_visits // args.visits_per_field
        per_field = visits // n_fields
        span = 365.0 * visits / args.compare_visits
    else:
        n_fields, per_field, span = visits // args.visits_per_field, args.visits_per_field, 365.0
    log(f"visit on PostgreSQL holding {visits} earlier visits of {args.per_visit:,} "
        f"sources ({n_fields} fields x {per_field} visits over {span:.0f} days)")
    with temporary_pg_database("alertbutler_bench") as url:
        t0 = time.perf_counter()
        centres, objects = populate(url, n_fields=n_fields, visits_per_field=per_field,
                                    per_visit=args.per_visit, rng=rng, span=span)
        build_s = time.perf_counter() - t0
        log(f"  populated in {build_s:.0f} s")
        store_s, times, sizes, store_cpu, cpus = visit_store_and_query(
            url, centres, objects, args.per_visit, rng, args.query_repeats)
        log(f"  store {store_s:.3f} s ({store_cpu:.3f} s CPU), queries "
            f"{', '.join(f'{t:.3f}' for t in times)} s "
            f"({', '.join(f'{c:.3f}' for c in cpus)} s CPU), returned {sizes}")
    return {"visit_store_s": round(store_s, 3),
            "visit_query_s": round(float(np.median(times)), 3),
            "visit_store_cpu_s": round(store_cpu, 3),
            "visit_query_cpu_s": round(float(np.median(cpus)), 3),
            "visit_query_first_s": round(times[0], 3), "build_s": round(build_s, 1),
            "query_rows": sizes, "load_average_1m": round(os.getloadavg()[0], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000, help="small alerts")
    parser.add_argument("--rubin-alerts", type=int, default=4_000,
                        help="Rubin-size alerts (three cutouts, 25 history sources)")
    parser.add_argument("--members", type=int, default=2,
                        help="ingester processes of the group measured beside one")
    parser.add_argument("--visits", type=int, default=1000, help="earlier visits")
    parser.add_argument("--compare-visits", type=int, default=100,
                        help="earlier visits of the second database the query time is "
                        "compared with (0: none)")
    parser.add_argument("--per-visit", type=int, default=10_000)
    parser.add_argument("--visits-per-field", type=int, default=10)
    parser.add_argument("--query-repeats", type=int, default=5)
    parser.add_argument("--grow", choices=["density", "age"], default="density",
                        help="what more earlier visits mean: more fields in one year "
                        "(default), or the same fields over more years")
    parser.add_argument("--only", choices=["stream", "visit"], default=None,
                        help="run one part only (default: both)")
    parser.add_argument("--l1db", default=None, metavar="cassandra://HOSTS/KEYSPACE",
                        help="also measure a Cassandra L1 database (a new keyspace per "
                        "figure), beside PostgreSQL")
    parser.add_argument("--cassandra-visits", type=int, default=10,
                        help="earlier visits stored on Cassandra (its field's history)")
    _ceiling.add_engine_option(parser)
    args = parser.parse_args()
    if args.l1db and not args.l1db.startswith("cassandra://"):
        parser.error(f"--l1db {args.l1db!r}: want a cassandra:// URL (PostgreSQL and SQLite "
                     "are always measured)")
    rng = np.random.default_rng(2026)
    figures: dict[str, object] = {}

    if args.only != "visit":
        figures["alerts"] = args.alerts
        figures["rubin_alerts"] = args.rubin_alerts
        log(f"end to end: encoding {args.alerts:,} small alerts and {args.rubin_alerts:,} "
            "Rubin-size ones")
        small = build_stream(args.alerts, 1000, SMALL)
        rubin = build_stream(args.rubin_alerts, 500, RUBIN) if args.rubin_alerts else None
        for engine in _ceiling.engines(args.engine):
            figures[engine] = end_to_end(engine, small, rubin, args.members, args.l1db)

    if args.only != "stream":
        big = visit_on_database(args, args.visits, rng)
        figures.update(big, earlier_visits=args.visits, visit_sources=args.per_visit,
                       visit_store_plus_query_s=round(float(big["visit_store_s"])
                                                      + float(big["visit_query_s"]), 3))
        if args.compare_visits:
            small = visit_on_database(args, args.compare_visits, rng)
            n = args.compare_visits
            figures.update({f"visit_store_s_at_{n}": small["visit_store_s"],
                            f"visit_query_s_at_{n}": small["visit_query_s"],
                            f"visit_query_cpu_s_at_{n}": small["visit_query_cpu_s"],
                            "query_cpu_ratio": round(float(big["visit_query_cpu_s"])
                                                     / float(small["visit_query_cpu_s"]), 2),
                            f"load_average_1m_at_{n}": small["load_average_1m"],
                            "query_ratio": round(float(big["visit_query_s"])
                                                 / float(small["visit_query_s"]), 2)})
        if args.l1db:
            log(f"visit on Cassandra ({args.l1db}), its field's {args.cassandra_visits} "
                "earlier visits")
            figures.update(_cassandra.visit_on_cassandra(
                args.l1db, visits=args.cassandra_visits, per_visit=args.per_visit,
                centre=field_centres(max(1, args.visits // args.visits_per_field))[0],
                radius=FIELD_RADIUS, mjd_now=MJD_NOW, repeats=args.query_repeats, rng=rng,
                log=log))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
