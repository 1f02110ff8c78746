"""Subscription throughput on each broker engine: consume + decode, and the filter service.

Rubin-size alerts (~33 KB: lsst.v11-style records with a 0-20 entry history and three
9.7 KB cutouts) are produced once to a topic; then, each in one process:

* consume_per_s: open_stream from earliest to the end, each batch decoded into the columns
  a filter reads (the compiled columnar decoder the filter service uses);
* consume_projection_per_s: the same through fastavro with a pruned reader schema, one
  record per alert (what the subscribe CLI hands to its filter);
* consume_full_per_s: the same with full decoding (every field, cutouts as bytes);
* decode_only_per_s: the columnar decoding of consume_per_s on messages in memory (no
  Kafka), to tell the decoder's speed from the broker's;
* consume_raw_per_s: the same without decoding (broker + client ceiling);
* filter_per_s_1 / filter_per_s_100: the filter service, 1 and 100 filters, forwarding
  kept alerts to one topic per filter and committing after every acknowledged batch
  (forwarded_per_alert_N: messages written per alert read); filter_eval_only_per_s_N is
  the service's decode + evaluate step alone, without Kafka.

Every figure that reads or writes Kafka is measured on each engine (``--engine
embedded|kafka|both``, default both, one after the other) and printed under ``"embedded"`` /
``"kafka"``, beside that broker's raw ceiling for the same messages (``bench/_ceiling.py``:
produced with produce_per_s's settings, read back without decoding) and, for each rate,
``*_fraction_of_ceiling`` (produce_per_s against the ceiling's produce rate, the consume and
filter rates against its consume rate). decode_only_per_s and filter_eval_only_per_s_N use
no broker and are measured once.

The machine is shared (2 cores, other engineers' tests running): figures vary run to run.
Usage: python bench/subscribe.py [--alerts N] [--engine embedded|kafka|both]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import yaml
from confluent_kafka import Producer

import _ceiling
from alertbutler.alerts import encode_alerts
from alertbutler.broker import make_broker
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.subscribe import default_decoder, open_stream, raw_decoder
from alertbutler.subscribe.batch import BatchDecoder
from alertbutler.subscribe.filters import FilterSet, compile_filter
from alertbutler.subscribe.projection import ProjectionDecoder
from alertbutler.subscribe.service import FilterService
from alertbutler.subscribe.testing import sample_filters, varied_alerts

PRODUCER_SETTINGS = {"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                     "compression.type": "zstd"}
PARTITIONS = 8


def produce(bootstrap: str, topic: str, values: list[bytes]) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_SETTINGS})
    producer.list_topics(topic, timeout=30)  # connect first, as the ceiling does
    start = time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    return len(values) / (time.perf_counter() - start)


def consume(url: str, decoder, columns=None) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    with open_stream(url, start="earliest", end="end", decoder=decoder) as stream:
        for batch in stream.batches(2000):
            if columns is not None:
                n += columns.decode([a.value for a in batch]).columns.n
            else:
                n += len(batch)
    return n / (time.perf_counter() - start), n


def filter_service(bootstrap: str, topic: str, n_filters: int, tmp: Path) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    filters = sample_filters(n_filters, seed=4, selective=True, n_history=20)
    spec = {"source": f"kafka://{bootstrap}/{topic}", "group": f"{prefix}-g",
            "start": "earliest", "batch_size": 2000,
            "filters": {f.name: {"filter": f.text, "topic": f"{prefix}-{f.name}"}
                        for f in filters}}
    path = tmp / f"{prefix}.yaml"
    path.write_text(yaml.safe_dump(spec))
    service = FilterService(path, config=load_config(env={}), until_end=True)
    start = time.perf_counter()
    stats = service.run()
    elapsed = time.perf_counter() - start
    kept = sum(stats.kept.values())
    print(f"  {n_filters} filters: {stats.alerts} alerts, {kept} forwarded, {elapsed:.1f} s",
          file=sys.stderr)
    return stats.alerts / elapsed, kept / max(stats.alerts, 1)


def evaluate_only(values: list[bytes], n_filters: int) -> float:
    """The service's per-batch work without Kafka: decode the columns, run every filter."""
    fs = FilterSet([compile_filter(f.text, name=f.name) for f in
                    sample_filters(n_filters, seed=4, selective=True, n_history=20)])
    decoder = BatchDecoder(fs.columns)
    decoder.decode(values[:2])
    start = time.perf_counter()
    for i in range(0, len(values), 2000):
        fs.keep(decoder.decode(values[i:i + 2000]).columns)
    return len(values) / (time.perf_counter() - start)


def on_engine(engine: str, values: list[bytes], one, columnar: BatchDecoder) -> dict:
    """Every Kafka figure on a broker of ``engine``, with its ceiling."""
    result: dict[str, object] = {}
    print(f"[{engine}] starting the broker (load average {os.getloadavg()[0]:.1f})",
          file=sys.stderr, flush=True)
    with make_broker(engine) as broker, TemporaryDirectory() as tmp:
        _ceiling.warm_up(broker.bootstrap)
        raw = [_ceiling.Raw(None, v) for v in values]
        before = _ceiling.measure(broker.bootstrap, raw, settings=PRODUCER_SETTINGS,
                                  partitions=PARTITIONS, label=f"[{engine}] before: ")
        topic = f"bench-alerts-{uuid.uuid4().hex[:6]}"
        create_topics(broker.bootstrap, {topic: PARTITIONS})
        result["produce_per_s"] = round(produce(broker.bootstrap, topic, values))
        url = f"kafka://{broker.bootstrap}/{topic}"
        for key, decoder, cols in (("consume_raw_per_s", raw_decoder, None),
                                   ("consume_per_s", raw_decoder, columnar),
                                   ("consume_projection_per_s", ProjectionDecoder(one.columns),
                                    None),
                                   ("consume_full_per_s", default_decoder(), None)):
            rate, n = consume(url, decoder, cols)
            assert n == len(values), (key, n)
            result[key] = round(rate)
            print(f"  [{engine}] {key}: {rate:,.0f}/s", file=sys.stderr)
        for n in (1, 100):
            rate, forwarded = filter_service(broker.bootstrap, topic, n, Path(tmp))
            result[f"filter_per_s_{n}"] = round(rate)
            result[f"forwarded_per_alert_{n}"] = round(forwarded, 3)
        ceiling = _ceiling.Ceiling.best(before, _ceiling.measure(
            broker.bootstrap, raw, settings=PRODUCER_SETTINGS, partitions=PARTITIONS,
            label=f"[{engine}] after: "))
    result["produce_fraction_of_ceiling"] = _ceiling.fraction(
        float(result["produce_per_s"]), ceiling.produce_per_s)
    for key in ("consume_raw_per_s", "consume_per_s", "consume_projection_per_s",
                "consume_full_per_s", "filter_per_s_1", "filter_per_s_100"):
        result[f"{key.replace('_per_s', '')}_fraction_of_ceiling"] = _ceiling.fraction(
            float(result[key]), ceiling.consume_per_s)
    result["ceiling"] = ceiling.as_dict()
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=10_000)
    _ceiling.add_engine_option(parser)
    args = parser.parse_args()
    records = varied_alerts(args.alerts, seed=1, rubin_size=True)
    values = encode_alerts(records)
    size = sum(map(len, values)) / len(values)
    print(f"{len(values)} alerts of {size / 1000:.1f} KB on average", file=sys.stderr)
    result: dict[str, object] = {"alerts": len(values), "alert_bytes": round(size),
                                 "cores": os.cpu_count(), "shared_machine": True}
    one = compile_filter("diaSource.snr > 5 and band == 'r'")
    columnar = BatchDecoder(one.columns)
    columnar.decode(values[:2])  # compile (or load the cached machine code) first
    start = time.perf_counter()
    for i in range(0, len(values), 2000):
        columnar.decode(values[i:i + 2000])
    result["decode_only_per_s"] = round(len(values) / (time.perf_counter() - start))
    for n in (1, 100):
        result[f"filter_eval_only_per_s_{n}"] = round(evaluate_only(values, n))
    for engine in _ceiling.engines(args.engine):
        result[engine] = on_engine(engine, values, one, columnar)
    result["targets"] = {"consume_per_s": 20_000, "filter_per_s_100": 10_000}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
