"""Helpers for the ingester tests: publish alerts with end markers, compute the rows an L1
database must end with, read a dead-letter topic back."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from alertbutler.alerts import control_topic, encode_alerts, encode_visit_detector_end
from alertbutler.ingest import Ingester
from alertbutler.kafka import create_topics
from alertbutler.l1db import L1db


def new_topics(bootstrap: str, partitions: int, *, control: bool = True) -> tuple[str, str]:
    """A fresh alert topic (with its control topic, unless ``control`` is False: a topic of
    an earlier version) and dead-letter topic."""
    suffix = uuid.uuid4().hex[:8]
    alerts, dead = f"alerts-{suffix}", f"dead-{suffix}"
    topics = {alerts: partitions, dead: 1}
    if control:
        topics[control_topic(alerts)] = 1
    create_topics(bootstrap, topics)
    return alerts, dead


def producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all",
                     "enable.idempotence": True, "linger.ms": 20,
                     "compression.type": "zstd", "message.max.bytes": 16 * 1024 * 1024})


def partition_of(record: Mapping[str, Any], n_partitions: int) -> int:
    """The partition of an alert: by a hash of its diaObjectId, as a keyed producer would
    (the fake ids share low bits, so a plain modulo would put every alert in one)."""
    key = str(record["diaObject"]["diaObjectId"]).encode()
    return zlib.crc32(key) % n_partitions


def publish_visit_detectors(prod: Producer, topic: str, n_partitions: int,
                            groups: Iterable[tuple[int, int, list[dict[str, Any]]]],
                            *, extra: Mapping[int, list[bytes]] | None = None,
                            encoded: list[list[bytes]] | None = None,
                            control: bool = False) -> int:
    """Publish each (visit, detector, alerts) group then its end markers, one per partition:
    with ``control``, out of band to the control topic once the alerts are acknowledged
    (naming their offsets, as the publish datastore does); without, inline to each
    partition after its alerts (the protocol of earlier versions). ``extra`` maps a partition
    to raw messages slipped in before the markers (poison); ``encoded`` holds the groups'
    messages when they are already encoded. Returns the number of messages sent."""
    sent = 0
    for g, (visit, detector, alerts) in enumerate(groups):
        counts = [0] * n_partitions
        last: dict[int, int] = {}

        def delivered(err: Any, msg: Any, last: dict[int, int] = last) -> None:
            assert err is None, err
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

        data_list = encoded[g] if encoded is not None else encode_alerts(alerts)
        for record, data in zip(alerts, data_list, strict=True):
            p = partition_of(record, n_partitions)
            counts[p] += 1
            prod.produce(topic, data, key=str(record["diaObject"]["diaObjectId"]).encode(),
                         partition=p, on_delivery=delivered if control else None)
            sent += 1
            if sent % 5000 == 0:
                prod.poll(0)
        for p, messages in (extra or {}).items():
            for data in messages:
                prod.produce(topic, data, partition=p)
                sent += 1
        if control:
            flush(prod)  # the offsets of the alerts are known once acknowledged
            for p in range(n_partitions):
                prod.produce(control_topic(topic), encode_visit_detector_end(
                    visit=visit, detector=detector, partition=p, n_partitions=n_partitions,
                    n_alerts=counts[p], topic=topic, last_offset=last.get(p)),
                    key=f"end:{visit}:{detector}".encode())
                sent += 1
            continue
        for p in range(n_partitions):
            prod.produce(topic, encode_visit_detector_end(
                visit=visit, detector=detector, partition=p, n_partitions=n_partitions,
                n_alerts=counts[p]), partition=p)
            sent += 1
    return sent


def flush(prod: Producer) -> None:
    assert prod.flush(60) == 0, "the broker did not acknowledge every message"


def expected_rows(alerts: Iterable[Mapping[str, Any]]) -> dict[str, set]:
    """The keys each table must hold after ingesting these alerts (union of every packet)."""
    keys: dict[str, set] = {t: set() for t in ("DiaObject", "DiaObjectLast", "DiaSource",
                                               "DiaForcedSource", "SSSource")}
    for a in alerts:
        for s in [a["diaSource"], *(a["prvDiaSources"] or [])]:
            keys["DiaSource"].add(s["diaSourceId"])
        for f in a["prvDiaForcedSources"] or []:
            keys["DiaForcedSource"].add((f["diaObjectId"], f["visit"], f["detector"]))
        o = a["diaObject"]
        keys["DiaObject"].add((o["diaObjectId"], o["validityStartMjdTai"]))
        keys["DiaObjectLast"].add(o["diaObjectId"])
        if a["ssSource"]:
            keys["SSSource"].add(a["ssSource"]["diaSourceId"])
    return keys


def stored_keys(url: str) -> dict[str, list]:
    """Every key in the database, as lists (so duplicates would show)."""
    import sqlalchemy as sa

    queries = {
        "DiaObject": 'SELECT "diaObjectId", "validityStartMjdTai" FROM "DiaObject"',
        "DiaObjectLast": 'SELECT "diaObjectId" FROM "DiaObjectLast"',
        "DiaSource": 'SELECT "diaSourceId" FROM "DiaSource"',
        "DiaForcedSource": 'SELECT "diaObjectId", visit, detector FROM "DiaForcedSource"',
        "SSSource": 'SELECT "diaSourceId" FROM "SSSource"',
    }
    if url.startswith("cassandra://"):
        from alertbutler.l1db.cassandra import CassandraL1db

        with CassandraL1db(url) as db:
            return {table: [r[0] if len(r) == 1 else tuple(r) for r in db._session.execute(
                        sql.replace(f'FROM "{table}"', f'FROM "{db.keyspace}"."{table}"'))]
                    for table, sql in queries.items()}
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            out = {}
            for table, sql in queries.items():
                rows = conn.exec_driver_sql(sql).fetchall()
                out[table] = [r[0] if len(r) == 1 else tuple(r) for r in rows]
            return out
    finally:
        engine.dispose()


def read_topic(bootstrap: str, topic: str, n: int, *, timeout: float = 60.0) -> list[Any]:
    """Read ``n`` messages of a one-partition topic from the beginning (or fewer by timeout)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg)
        end = time.monotonic() + 1.0  # anything beyond n would be a duplicate: look briefly
        while time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                out.append(msg)
    finally:
        consumer.close()
    return out


def ingest_until(ingester: Ingester, db: L1db, visit_detectors: list[tuple[int, int]],
                 timeout: float = 120.0) -> None:
    """Run ``ingester`` until the database holds these visit-detectors, then stop it (SIGTERM
    style: the batch in flight is committed) and fail if they never arrived."""
    import asyncio

    async def main() -> bool:
        task = asyncio.create_task(ingester.run())
        ok = await asyncio.to_thread(db.wait_for_ingested, visit_detectors, timeout)
        ingester.stop()
        await task
        return ok

    assert asyncio.run(main()), f"not ingested within {timeout} s: {visit_detectors}"
