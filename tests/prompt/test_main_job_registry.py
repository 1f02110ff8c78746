"""A main-job night with a Schema Registry configured, and the night it keeps.

The registry is a real Confluent-compatible server (Apicurio Registry from Maven Central,
``schema_registry_url``). Every message of the night on the alert topic must decode with
Confluent's own ``AvroDeserializer`` through that registry, and every alert with Rubin's
lsst.v11 reader schema from the writer schema the registry holds; the ingester, fan-out and
workers run with the registry's ids. The night's alerts are kept (in the night's ledger
directory) as an Avro container file, linked from the report, that fastavro and the plain
``avro`` package open, holding exactly the alerts of the topic and of the L1 database.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path

import fastavro
import pytest
from avro.datafile import DataFileReader
from avro.io import DatumReader
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from alertbutler.alerts import control_topic, known_schemas, split_header
from alertbutler.config import Config, load_config
from alertbutler.l1db import L1db
from alertbutler.night.main_job import MainJobOptions, MainJobResult, run_main_job

pytestmark = pytest.mark.slow

NIGHT = dict(n_visits=2, n_detectors=1, detector_size=2048, workers=1, cadence_s=10.0,
             lead_s=2.0, progress=False, timeout_s=600.0, write_outputs=False)


def _config(bootstrap: str, root: Path, registry: str) -> Config:
    tag = uuid.uuid4().hex[:8]
    return load_config(env={}, overrides={
        "general": {"data_dir": str(root)},
        "kafka": {"bootstrap_servers": bootstrap, "alert_topic": f"alerts-{tag}",
                  "next_visit_topic": f"nv-{tag}", "work_topic": f"work-{tag}",
                  "dead_letter_topic": f"dl-{tag}", "partitions": 3},
        "prompt": {"status_topic": f"status-{tag}", "raw_timeout_s": 20.0,
                   "association_wait_s": 120.0},
        "schema_registry": {"url": registry}})


@pytest.fixture(scope="module")
def night(kafka_bootstrap: str, schema_registry_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, MainJobResult]:
    config = _config(kafka_bootstrap, tmp_path_factory.mktemp("registry-night"),
                     schema_registry_url)
    return config, run_main_job(config, MainJobOptions(**NIGHT))  # type: ignore[arg-type]


def _topic_messages(config: Config, topic: str | None = None) -> list[bytes]:
    from alertbutler.kafka import list_topics

    topic = topic or config.kafka.alert_topic
    n = list_topics(config.kafka.bootstrap_servers).get(topic, 0)
    consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap_servers,
                         "group.id": f"t-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                         "enable.partition.eof": True, "log_level": 3})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n)])
    out: list[bytes] = []
    at_end: set[int] = set()
    try:
        while len(at_end) < n:  # EOF on every partition: the whole topic was read
            for msg in consumer.consume(500, timeout=1.0):
                if msg.error():
                    assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                    at_end.add(msg.partition())
                    continue
                at_end.discard(msg.partition())
                out.append(msg.value())
    finally:
        consumer.close()
    return out


def _l1_ids(result: MainJobResult) -> set[int]:
    url = f"sqlite:///{result.report.parents[1] / 'l1db.sqlite3'}"
    with L1db(url) as db:
        return {i for key in result.statuses
                for i in db.sources_of_visit_detector(*key).column("diaSourceId").to_pylist()}


def test_every_message_decodes_with_confluents_deserializer_and_rubins_reader(
        night: tuple[Config, MainJobResult]) -> None:
    packet = pytest.importorskip("lsst.alert.packet")
    config, result = night
    assert result.summary["visit_detectors_failed"] == 0, result.summary["errors"]
    client = SchemaRegistryClient({"url": config.schema_registry.url})
    deserialize = AvroDeserializer(client)
    rubin = packet.Schema.from_file().definition
    assert rubin["name"].endswith("v11_1.alert")
    ours = {info.full_name: info for info in known_schemas().values()}
    messages = _topic_messages(config)
    assert messages
    alert_ids: set[int] = set()
    failures: list[str] = []
    wire_ids: set[int] = set()
    for value in messages:
        wire_id, body = split_header(value)
        wire_ids.add(wire_id)
        try:
            record = deserialize(value, SerializationContext(config.kafka.alert_topic,
                                                             MessageField.VALUE))
        except Exception as exc:
            failures.append(f"schema id {wire_id}: {exc}")
            continue
        writer = json.loads(client.get_schema(wire_id).schema_str)
        name = f"{writer['namespace']}.{writer['name']}" if "." not in writer["name"] \
            else writer["name"]
        # the alert topic holds alerts only: the end markers travel on its control topic
        assert ours[name].kind == "alert", name
        got = fastavro.schemaless_reader(io.BytesIO(bytes(body)),
                                         fastavro.parse_schema(writer), rubin)
        assert got["diaSourceId"] == record["diaSourceId"]
        assert got["diaSource"]["psfFlux"] == record["diaSource"]["psfFlux"]
        alert_ids.add(record["diaSourceId"])
    assert failures == []
    # the end markers: on the control topic, one per visit-detector and alert partition
    markers = [deserialize(v, SerializationContext(control_topic(config.kafka.alert_topic),
                                                   MessageField.VALUE))
               for v in _topic_messages(config, control_topic(config.kafka.alert_topic))]
    by_key = {(m["visit"], m["detector"], m["partition"]): m for m in markers}
    assert set(by_key) == {(v, d, p) for v, d in result.statuses
                           for p in range(config.kafka.partitions)}
    assert {m["topic"] for m in markers} == {config.kafka.alert_topic}
    assert sum(m["n_alerts"] for m in by_key.values()) == len(alert_ids)
    # the ids on the wire are the registry's, not the fixed ids of schemas/ids.toml
    assert not wire_ids & set(known_schemas()), wire_ids
    # each schema under Confluent's RecordNameStrategy: the subject is the full name
    subjects = set(client.get_subjects())
    for wire_id in wire_ids:
        schema = json.loads(client.get_schema(wire_id).schema_str)
        full = f"{schema['namespace']}.{schema['name']}"
        assert full in subjects
        assert client.lookup_schema(full, client.get_schema(wire_id)).schema_id == wire_id
    # the ingester resolved the registry's ids: the L1 database holds every alert
    assert alert_ids == _l1_ids(result) == {a["diaSourceId"] for a in result.alerts}
    assert len(alert_ids) == result.summary["alerts_published"] > 0


def test_the_report_links_the_nights_alerts_that_any_avro_reader_opens(
        night: tuple[Config, MainJobResult]) -> None:
    _, result = night
    page = result.report.read_text()
    link = re.search(r"<a href='([^']*alerts\.avro)'>", page)
    assert link, "the report links the night's alerts"
    path = (result.report.parent / link.group(1)).resolve()
    with open(path, "rb") as fh:
        reader = fastavro.reader(fh)
        assert reader.codec in ("null", "deflate")
        assert reader.writer_schema["name"] == "alertbutler.alert.v1_2.alert"
        kept = [r["diaSourceId"] for r in reader]
    assert len(kept) == len(set(kept))
    assert set(kept) == _l1_ids(result) == {a["diaSourceId"] for a in result.alerts}
    with open(path, "rb") as fh:  # the plain avro package, no codec extras
        assert [r["diaSourceId"] for r in DataFileReader(fh, DatumReader())] == kept
