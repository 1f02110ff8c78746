"""The publish datastore against the embedded broker: put, records, get, markers."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from alertbutler.alerts import DeliveryError, control_topic, decode_message
from alertbutler.alerts.fake import fake_alerts
from alertbutler.alerts.publish_datastore import PublishDatastore
from alertbutler.butler import DatasetNotFoundError, StorageClassError
from alertbutler.kafka import create_topics
from alertbutler.kafka.read import iter_topic

from .conftest import ALERT_PACKET, make_ref


def test_batch_put_get_records_and_end_markers(kafka_bootstrap, new_topic) -> None:
    topic = new_topic(4)
    store = PublishDatastore(bootstrap=kafka_bootstrap, topic_template=topic)
    alerts = fake_alerts(200, seed=2, n_history=3, cutout_size=30, cutout_pool=2,
                         n_objects=50)
    ref = make_ref(visit=77, detector=5)
    store.put(alerts, ref)
    records = store.bridge.fetch([ref.id])[ref.id]
    assert sorted(r.payload["partition"] for r in records) == [0, 1, 2, 3]
    assert sum(len(r.payload["offsets"]) for r in records) == 200
    assert store.exists(ref)
    assert store.get(ref) == alerts

    seen: dict[int, list[tuple[str, dict]]] = {}
    offsets: dict[int, list[int]] = {}
    for msg in iter_topic(kafka_bootstrap, topic):
        decoded = decode_message(msg.value)
        seen.setdefault(msg.partition, []).append((decoded.kind, decoded.record))
        offsets.setdefault(msg.partition, []).append(msg.offset)
    # the alert topic holds alerts only; the markers are on its control topic
    assert {kind for msgs in seen.values() for kind, _ in msgs} == {"alert"}
    per_partition = Counter(r.payload["partition"] for r in records
                            for _ in r.payload["offsets"])
    markers = [decode_message(m.value) for m in iter_topic(kafka_bootstrap,
                                                           control_topic(topic))]
    assert [m.kind for m in markers] == ["visit_detector_end"] * 4
    for marker in (m.record for m in markers):
        # one marker per alert partition, counting its alerts and naming their offsets
        partition = marker["partition"]
        assert (marker["visit"], marker["detector"], marker["topic"]) == (77, 5, topic)
        assert marker["n_alerts"] == per_partition[partition] == len(seen[partition])
        assert (marker["first_offset"], marker["last_offset"]) == (
            min(offsets[partition]), max(offsets[partition]))
        assert marker["n_alerts_total"] == 200 and marker["n_partitions"] == 4
    assert sorted(m.record["partition"] for m in markers) == [0, 1, 2, 3]
    # per-object order: all alerts of one object are in one partition, in put order
    where: dict[int, set[int]] = {}
    for partition, msgs in seen.items():
        for kind, rec in msgs:
            if kind == "alert":
                where.setdefault(rec["diaObject"]["diaObjectId"], set()).add(partition)
    assert all(len(p) == 1 for p in where.values())

    store.remove(ref)
    assert not store.exists(ref)
    with pytest.raises(DatasetNotFoundError):
        store.get(ref)


def test_single_packet_and_template(kafka_bootstrap) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = f"alerts-{suffix}-alertPacket"
    create_topics(kafka_bootstrap, {topic: 2})
    store = PublishDatastore(bootstrap=kafka_bootstrap,
                             topic_template="alerts-{run}-{dataset_type}")
    (alert,) = fake_alerts(1, seed=9, cutout_size=None)
    ref = make_ref(ALERT_PACKET, run=suffix)
    assert store.topic_for(ref) == topic
    store.put(alert, ref)
    (record,) = store.bridge.fetch([ref.id])[ref.id]
    assert set(record.payload) == {"topic", "partition", "offset"}
    assert store.get(ref) == alert


def test_refuses_other_storage_classes_and_bad_topic_names(kafka_bootstrap) -> None:
    from alertbutler.butler import DatasetType

    store = PublishDatastore(bootstrap=kafka_bootstrap, topic_template="x-{dataset_type}")
    other = DatasetType("calexp", ["instrument", "visit", "detector"], "Exposure")
    with pytest.raises(StorageClassError, match="stores AlertPacket or AlertBatch"):
        store.put(object(), make_ref(other))
    bad = PublishDatastore(bootstrap=kafka_bootstrap, topic_template="a b {nope}")
    with pytest.raises(StorageClassError, match="cannot be filled"):
        bad.put([], make_ref())


def test_unknown_topic_names_every_alert(kafka_bootstrap) -> None:
    store = PublishDatastore(bootstrap=kafka_bootstrap, topic_template="no-such-topic-{run}",
                             delivery_timeout_s=3.0)
    alerts = fake_alerts(5, seed=4, cutout_size=None, n_history=0)
    ref = make_ref(run=uuid.uuid4().hex[:8])
    try:
        store.put(alerts, ref)
    except DeliveryError as exc:  # a broker that does not auto-create topics
        assert sorted(exc.undelivered) == sorted(a["diaSourceId"] for a in alerts)
        assert not store.exists(ref)
    else:  # a broker that auto-creates them: then everything must be readable
        assert store.get(ref) == alerts


def test_empty_batch_and_explicit_end_markers(kafka_bootstrap, new_topic) -> None:
    topic = new_topic(3)
    store = PublishDatastore(bootstrap=kafka_bootstrap, topic_template=topic)
    ref = make_ref(visit=9, detector=4)
    store.put([], ref)  # a visit-detector without alerts still announces its end
    assert store.get(ref) == []
    store.send_end_markers(make_ref(visit=10, detector=4), {0: (2, 5, 9), 2: (1, 3, 3)})
    assert list(iter_topic(kafka_bootstrap, topic)) == []  # alerts only, and there are none
    markers = [decode_message(m.value).record
               for m in iter_topic(kafka_bootstrap, control_topic(topic))]
    assert sorted((r["partition"], r["visit"], r["n_alerts"], r["n_alerts_total"],
                   r["last_offset"]) for r in markers) == [
        (0, 9, 0, 0, None), (0, 10, 2, 3, 9), (1, 9, 0, 0, None), (1, 10, 0, 3, None),
        (2, 9, 0, 0, None), (2, 10, 1, 3, 3)]
    with pytest.raises(ValueError, match="not all in"):
        store.send_end_markers(make_ref(visit=10, detector=4), {5: (1, 0, 0)})
    with pytest.raises(ValueError, match="first_offset <= last_offset"):
        store.send_end_markers(make_ref(visit=10, detector=4), {0: (1, 4, 3)})


def test_encode_message_of_any_kind() -> None:
    from alertbutler.alerts import encode_message

    item = {"instrument": "SimCam", "groupId": "g1", "visit": None, "detector": 3, "band": "r",
            "ra": 1.0, "dec": 2.0, "cameraAngle": 0.0, "startTime": 61000.0, "duration": 30.0,
            "nimages": 1, "survey": "", "eventSentAt": 0.0}
    decoded = decode_message(encode_message(item, "work_item"))
    assert decoded.kind == "work_item" and decoded.record == {**item, "dependsOn": []}
