"""10,000 alerts through the butler's publish datastore and the embedded broker, read back
by confluent-kafka's AvroDeserializer (mock Schema Registry), by alertbutler's own reader and
by a butler get: every alert equal to what was put. Plus the chained archive."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from alertbutler.alerts import DeliveryError, control_topic
from alertbutler.alerts.archive import read_alert_file
from alertbutler.alerts.fake import fake_alerts
from alertbutler.alerts.publish_datastore import PublishDatastore
from alertbutler.alerts.registry import registry_client, registry_codec
from alertbutler.butler import Butler
from alertbutler.butler.datastores import ChainedDatastore, FileDatastore
from alertbutler.butler.testing import INSTRUMENT, populate
from alertbutler.kafka.read import iter_topic

N = 10_000


def _alerts(n: int, seed: int) -> list[dict]:
    alerts = fake_alerts(n, seed=seed, visit=1000, detector=1, cutout_size=None, n_history=5)
    with_cutouts = fake_alerts(n // 50, seed=seed, visit=1000, detector=1, cutout_size=30,
                               cutout_pool=4)
    for i, extra in enumerate(with_cutouts):  # every 50th alert carries three cutouts
        for name in ("cutoutDifference", "cutoutScience", "cutoutTemplate"):
            alerts[i * 50][name] = extra[name]
    return alerts


def _repo(root: Path) -> None:
    with Butler.create(root, run="setup") as butler:
        populate(butler, n_detectors=2, n_visits=1)
        butler.register_dataset_type("alert", ["instrument", "visit", "detector"],
                                     "AlertBatch")


def test_10k_alerts_round_trip(kafka_bootstrap, new_topic, tmp_path: Path) -> None:
    topic = new_topic(8)
    registry = registry_client("mock://round-trip")
    store = PublishDatastore(bootstrap=kafka_bootstrap, topic_template=topic,
                             codec=registry_codec(registry))
    _repo(tmp_path / "repo")
    alerts = _alerts(N, seed=7)
    with Butler(tmp_path / "repo", run="alerts/v1", datastore=store) as butler:
        ref = butler.put(alerts, "alert", instrument=INSTRUMENT, visit=1000, detector=1)
        assert butler.exists(ref)  # reading it back by get: test_chained_... below
        records = [r for recs in store.bridge.fetch([ref.id]).values() for r in recs]
        assert sum(len(r.payload["offsets"]) for r in records) == N

    deserializer = AvroDeserializer(registry)
    ours = registry_codec(registry)
    by_confluent: dict[int, dict] = {}
    by_ours: dict[int, dict] = {}
    markers = 0
    for msg in iter_topic(kafka_bootstrap, topic):
        decoded = ours.decode(msg.value)
        if decoded.kind != "alert":
            markers += 1
            continue
        by_ours[decoded.record["diaSourceId"]] = decoded.record
        record = deserializer(msg.value, SerializationContext(topic, MessageField.VALUE))
        by_confluent[record["diaSourceId"]] = record
    expected = {a["diaSourceId"]: a for a in alerts}
    assert markers == 0, "the alert topic carries alerts only"
    # the end markers, one per alert partition, travel on the control topic
    control = [ours.decode(m.value) for m in iter_topic(kafka_bootstrap, control_topic(topic))]
    assert sorted(d.record["partition"] for d in control) == list(range(8))
    assert all(d.kind == "visit_detector_end" for d in control)
    assert len(by_ours) == len(by_confluent) == N
    assert by_ours == expected
    assert by_confluent == expected


def test_chained_with_file_datastore_archives_avro(kafka_bootstrap, new_topic,
                                                   tmp_path: Path) -> None:
    topic = new_topic(2)
    root = tmp_path / "repo"
    _repo(root)
    publish = PublishDatastore(bootstrap=kafka_bootstrap, topic_template=topic)
    archive = FileDatastore(root, name="archive", formats={"AlertBatch": "avro"})
    alerts = _alerts(100, seed=8)
    with Butler(root, run="alerts/v1",
                datastore=ChainedDatastore([publish, archive])) as butler:
        ref = butler.put(alerts, "alert", instrument=INSTRUMENT, visit=1000, detector=1)
        path = archive.artifact_path(ref)
        assert path is not None and path.suffix == ".avro"
        assert list(read_alert_file(path)) == alerts
        assert butler.get(ref) == alerts  # from Kafka, the first child
        publish.remove(ref)  # forget the Kafka copy: the archive still answers
        assert not publish.exists(ref)
        assert butler.get(ref) == alerts


def test_failed_put_leaves_no_dataset(kafka_bootstrap, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _repo(root)
    store = PublishDatastore(bootstrap=kafka_bootstrap, topic_template="missing-{run}",
                             delivery_timeout_s=2.0, end_markers=False)
    alerts = fake_alerts(3, seed=1, cutout_size=None, n_history=0)
    with Butler(root, run="r1", datastore=store) as butler:
        try:
            butler.put(alerts, "alert", instrument=INSTRUMENT, visit=1000, detector=1)
        except DeliveryError as exc:
            assert sorted(exc.undelivered) == sorted(a["diaSourceId"] for a in alerts)
            assert butler.find_dataset("alert", instrument=INSTRUMENT, visit=1000,
                                       detector=1) is None
        else:  # the broker auto-created the topic: the dataset is then complete
            assert butler.get("alert", instrument=INSTRUMENT, visit=1000,
                              detector=1) == alerts
