"""Alert packet benchmarks: serialization, deserialization, size, and a 10,000-alert visit
published through the butler's publish datastore into the embedded broker.

Packets: a diaSource, 20 previous diaSources and 20 previous forced sources, a diaObject and
three 64 x 64 cutouts (CCDData-layout FITS: flux, mask, variance, local WCS). The cutouts are
made once, outside every timed part (``--cutout-pool`` distinct triples, of distinct noise,
so the producer's compression does not profit from repeats within a batch).

* ``serialize_per_s`` / ``deserialize_per_s``: alerts per second (wall clock) on one thread
  through :class:`alertbutler.alerts.Codec` (generated writer/reader, fastavro as reference
  and fallback; header with the schema id). ``*_per_cpu_s``: the same per CPU-second of this
  process, i.e. what one core does when other processes do not share it.
* ``bytes_per_alert``: mean wire-format message size.

Per broker engine (``--engine embedded|kafka|both``, default both, one after the other; the
figures above are measured once, without Kafka), under ``"embedded"`` / ``"kafka"``:

* ``publish_10k_s``: ``PublishDatastore.put`` of a 10,000-alert AlertBatch (encoding
  included) until every message is acknowledged (acks=all, idempotent producer, zstd), plus
  the end-of-visit-detector markers.
* ``publish_10k_wire_s``: the same 10,000 already-encoded messages through the publisher
  alone (transport only).
* ``ceiling``: the broker's raw ceiling for the same encoded messages (``bench/_ceiling.py``:
  produced with the publisher's own settings, and read back without decoding), and
  ``publish_fraction_of_ceiling`` / ``publish_wire_fraction_of_ceiling``: the alerts/s of the
  two figures above as a fraction of the ceiling's produce rate.

Prints progress, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "services"))

import _ceiling  # bench/_ceiling.py, beside this script


def publish_visit(engine: str, alerts: list, wire: list, partitions: int) -> dict:
    """The visit's put, its transport alone, and the ceiling, on one broker of ``engine``."""
    from alertbutler.alerts import control_topic
    from alertbutler.alerts.producer import AlertPublisher
    from alertbutler.alerts.publish_datastore import PublishDatastore
    from alertbutler.broker import make_broker
    from alertbutler.butler import DataCoordinate, DatasetRef, DatasetType
    from alertbutler.kafka import create_topics, delete_topics

    dataset_type = DatasetType("alert", ["instrument", "visit", "detector"], "AlertBatch")
    data_id = DataCoordinate.standardize(
        {"instrument": "SimCam", "visit": 2026112500, "detector": 42}, dataset_type.dimensions)
    print(f"[{engine}] starting the broker (load average {os.getloadavg()[0]:.1f})",
          flush=True)
    with make_broker(engine) as broker:
        _ceiling.warm_up(broker.bootstrap)
        raw = [_ceiling.Raw(m.key, m.value) for m in wire]
        settings = AlertPublisher(broker.bootstrap).settings
        before = _ceiling.measure(broker.bootstrap, raw, settings=settings,
                                  partitions=partitions, label=f"[{engine}] before: ")
        topic = f"bench-alerts-{uuid.uuid4().hex[:8]}"
        wire_topic = f"{topic}-wire"
        create_topics(broker.bootstrap, {topic: partitions, wire_topic: partitions,
                                         control_topic(topic): 1})
        store = PublishDatastore(bootstrap=broker.bootstrap, topic_template=topic)
        store.put(alerts[:20], DatasetRef.make(dataset_type, data_id, "warmup"))  # connect
        ref = DatasetRef.make(dataset_type, data_id, "bench")
        t0 = time.perf_counter()
        store.put(alerts, ref)
        publish = time.perf_counter() - t0
        print(f"[{engine}] put of {len(alerts)} alerts acknowledged in {publish:.2f} s",
              flush=True)
        store.close()
        # the embedded broker keeps them in memory
        delete_topics(broker.bootstrap, [topic, control_topic(topic)])

        with AlertPublisher(broker.bootstrap) as publisher:
            publisher.publish(wire_topic, wire[:20])
            t0 = time.perf_counter()
            publisher.publish(wire_topic, wire)
            wire_s = time.perf_counter() - t0
        size = sum(len(m.value) for m in wire)
        print(f"[{engine}] {len(wire)} pre-encoded messages acknowledged in {wire_s:.2f} s "
              f"({size / wire_s / 1e6:,.0f} MB/s)", flush=True)
        delete_topics(broker.bootstrap, [wire_topic])
        ceiling = _ceiling.Ceiling.best(before, _ceiling.measure(
            broker.bootstrap, raw, settings=settings, partitions=partitions,
            label=f"[{engine}] after: "))
    return {
        "publish_10k_s": round(publish, 3),
        "publish_10k_wire_s": round(wire_s, 3),
        "publish_fraction_of_ceiling": _ceiling.fraction(len(alerts) / publish,
                                                         ceiling.produce_per_s),
        "publish_wire_fraction_of_ceiling": _ceiling.fraction(len(wire) / wire_s,
                                                              ceiling.produce_per_s),
        "ceiling": ceiling.as_dict(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="alerts in the visit")
    parser.add_argument("--n-codec", type=int, default=3000,
                        help="alerts timed for (de)serialization")
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--cutout-size", type=int, default=64)
    parser.add_argument("--cutout-pool", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=8)
    _ceiling.add_engine_option(parser)
    args = parser.parse_args()

    from alertbutler.alerts import Codec
    from alertbutler.alerts.fake import fake_alerts
    from alertbutler.alerts.producer import Message, alert_key

    t0 = time.perf_counter()
    alerts = fake_alerts(args.n, seed=1, n_history=args.history, visit=2026112500,
                         detector=42, cutout_size=args.cutout_size,
                         cutout_pool=args.cutout_pool)
    print(f"made {len(alerts)} fake alerts in {time.perf_counter() - t0:.1f} s", flush=True)

    codec = Codec()
    sample = alerts[: args.n_codec]
    codec.encode_many(sample[:50])  # warm up
    t0, c0 = time.perf_counter(), time.process_time()
    messages = codec.encode_many(sample)
    ser = len(sample) / (time.perf_counter() - t0)
    ser_cpu = len(sample) / (time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    for m in messages:
        codec.decode(m)
    de = len(sample) / (time.perf_counter() - t0)
    de_cpu = len(sample) / (time.process_time() - c0)
    size = sum(map(len, messages)) / len(messages)
    # the baseline: fastavro's schemaless writer/reader with the parsed schema, no header
    import io

    import fastavro

    from alertbutler.alerts import load_schema

    parsed = load_schema("alert")
    base = sample[:1000]
    c0 = time.process_time()
    bodies = []
    for record in base:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, record)
        bodies.append(buf.getvalue())
    fa_ser_cpu = len(base) / (time.process_time() - c0)
    c0 = time.process_time()
    for body in bodies:
        fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
    fa_de_cpu = len(base) / (time.process_time() - c0)
    print(f"fastavro alone: serialize {fa_ser_cpu:,.0f}, deserialize {fa_de_cpu:,.0f} "
          "per CPU-second", flush=True)
    print(f"serialize {ser:,.0f}/s ({ser_cpu:,.0f} per CPU-second), deserialize {de:,.0f}/s "
          f"({de_cpu:,.0f} per CPU-second), {size:,.0f} bytes/alert", flush=True)

    encoded = codec.encode_many(alerts)
    wire = [Message(alert_key(a), m, a["diaSourceId"]) for a, m in zip(alerts, encoded,
                                                                        strict=True)]
    per_engine = {}
    for engine in _ceiling.engines(args.engine):
        per_engine[engine] = publish_visit(engine, alerts, wire, args.partitions)

    result = {
        "serialize_per_s": round(ser, 1),
        "deserialize_per_s": round(de, 1),
        "bytes_per_alert": round(size),
        "serialize_per_cpu_s": round(ser_cpu, 1),
        "deserialize_per_cpu_s": round(de_cpu, 1),
        "fastavro_serialize_per_cpu_s": round(fa_ser_cpu, 1),
        "fastavro_deserialize_per_cpu_s": round(fa_de_cpu, 1),
        "n_alerts": len(alerts),
        "history_sources": args.history,
        "cutout_size": args.cutout_size,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        **per_engine,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
