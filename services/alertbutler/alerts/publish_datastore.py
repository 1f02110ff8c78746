"""The butler's "publish" datastore: a put of alerts is a produce to Kafka.

Datasets of storage class ``AlertPacket`` (one alert record) or ``AlertBatch`` (a list of
them, typically one visit-detector) are encoded in the wire format and published to a topic
named from the dataset type (``topic_template``, e.g. ``"alerts-{dataset_type}"``), keyed by
diaObjectId. A put returns only when the broker acknowledged every message; otherwise it
raises :class:`~alertbutler.alerts.DeliveryError` naming the diaSourceIds not delivered.

Where the alerts went is recorded in the registry through the datastore bridge, so a get
reads them back from Kafka:

* ``AlertPacket``: one record ``{"topic", "partition", "offset"}``;
* ``AlertBatch``: one record per partition used, keyed ``p<partition>``, with ``offsets``
  and the ``positions`` of those alerts in the batch (a get restores the batch's order).

After an ``AlertBatch`` whose data ID has a visit and a detector is acknowledged, the
datastore sends its end-of-visit-detector markers OUT OF BAND, to the topic's control topic
(``<topic>.control``): one marker per partition of the alert topic, with the number of that
batch's alerts there and their first and last offsets (known from the deliveries). The alert
topic itself holds alerts only. An ingester that has recorded the marker of every partition and
stored each partition past its ``last_offset`` knows the visit-detector is complete.

Kafka cannot take a message back: ``discard`` (a rolled-back registry transaction) and
``remove`` forget the records; the messages stay until the topic's retention removes them.
Chain this datastore with a file datastore to archive the same datasets as Avro container
files (:mod:`alertbutler.alerts.formatter`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from alertbutler.alerts._errors import DeliveryError
from alertbutler.alerts.codec import Codec
from alertbutler.alerts.formatter import register_formatters
from alertbutler.alerts.messages import control_topic, default_codec, visit_detector_end_record
from alertbutler.alerts.producer import AlertPublisher, Delivery, Message, alert_key
from alertbutler.butler import (
    STORAGE_CLASSES,
    DatasetNotFoundError,
    DatasetRef,
    Datastore,
    DatastoreRecord,
    StorageClassError,
)
from alertbutler.kafka.read import fetch_messages

log = logging.getLogger(__name__)
register_formatters()  # so a chained file datastore can archive alerts as Avro

STORAGE_CLASSES_PUBLISHED = ("AlertPacket", "AlertBatch")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class PublishDatastore(Datastore):
    """Alerts in Kafka topics (see the module doc)."""

    def __init__(self, name: str = "publish", *, bootstrap: str,
                 topic_template: str = "{dataset_type}",
                 settings: Mapping[str, Any] | None = None, codec: Codec | None = None,
                 publisher: AlertPublisher | None = None, compression: str = "zstd",
                 linger_ms: int = 5, delivery_timeout_s: float = 120.0,
                 end_markers: bool = True, read_timeout_s: float = 30.0,
                 progress: Callable[[int], None] | None = None) -> None:
        super().__init__(name)
        self.bootstrap = bootstrap
        self.topic_template = topic_template
        self.settings = dict(settings or {})
        self.codec = codec or default_codec()
        self.publisher = publisher or AlertPublisher(
            bootstrap, settings=self.settings, compression=compression, linger_ms=linger_ms,
            delivery_timeout_s=delivery_timeout_s, progress=progress)
        self.end_markers = end_markers
        self.read_timeout_s = read_timeout_s

    # -- naming ---------------------------------------------------------------------------
    def topic_for(self, ref: DatasetRef) -> str:
        """The topic of a dataset: ``topic_template`` filled from the dataset type, run and
        data ID (``{dataset_type}``, ``{run}``, ``{instrument}``, ...)."""
        fields = {k: v for k, v in ref.data_id.items()}
        fields.update(dataset_type=ref.dataset_type.parent_name, run=ref.run)
        try:
            topic = self.topic_template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise StorageClassError(f"topic template {self.topic_template!r} cannot be filled "
                                    f"for {ref}: {exc}") from None
        if not _TOPIC_NAME.match(topic):
            raise StorageClassError(f"topic name {topic!r} made for {ref} is not a legal "
                                    "Kafka topic name")
        return topic

    # -- writing --------------------------------------------------------------------------
    def put_many(self, items: Sequence[tuple[Any, DatasetRef]]) -> None:
        plans: list[tuple[DatasetRef, str, list[Mapping[str, Any]]]] = []
        for obj, ref in items:
            sc = ref.dataset_type.storage_class
            if sc == "AlertPacket":
                records = [obj]
            elif sc == "AlertBatch":
                records = list(obj)
            else:
                raise StorageClassError(
                    f"the publish datastore stores {' or '.join(STORAGE_CLASSES_PUBLISHED)}, "
                    f"not {sc} ({ref})")
            plans.append((ref, self.topic_for(ref), records))
        if self.end_markers:  # learn partition counts before anything is sent
            for ref, topic, _ in plans:
                if ref.dataset_type.storage_class == "AlertBatch":
                    try:
                        self.publisher.partitions(topic)
                        self.publisher.partitions(control_topic(topic))
                    except DeliveryError as exc:  # nothing was sent: every alert is undelivered
                        raise DeliveryError(
                            str(exc), retriable=exc.retriable,
                            undelivered=[int(r["diaSourceId"]) for _, _, rs in plans
                                         for r in rs]) from None
        by_topic: dict[str, list[Message]] = {}
        spans: list[tuple[int, int]] = []  # (start, end) of each plan in its topic's list
        for _ref, topic, records in plans:
            encoded = self.codec.encode_many(records, "alert")
            queue = by_topic.setdefault(topic, [])
            start = len(queue)
            queue.extend(Message(alert_key(r), data, int(r["diaSourceId"]))
                         for r, data in zip(records, encoded, strict=True))
            spans.append((start, len(queue)))
        deliveries: dict[str, list[Delivery]] = {}
        failures: list[DeliveryError] = []
        for topic, messages in by_topic.items():
            try:
                deliveries[topic] = self.publisher.publish(topic, messages)
            except DeliveryError as exc:
                failures.append(exc)
        if failures:
            undelivered = [i for exc in failures for i in exc.undelivered]
            raise DeliveryError(
                "; ".join(str(exc) for exc in failures), undelivered=undelivered,
                delivered=sum(len(m) for m in by_topic.values()) - len(undelivered),
                retriable=all(exc.retriable for exc in failures))
        records_out: list[DatastoreRecord] = []
        markers: dict[str, list[Message]] = {}
        for (ref, topic, _), (start, end) in zip(plans, spans, strict=True):
            got = deliveries[topic][start:end]
            records_out.extend(self._records(ref, topic, got))
            if self.end_markers and ref.dataset_type.storage_class == "AlertBatch":
                markers.setdefault(topic, []).extend(self._markers(ref, topic, got))
        for topic, messages in markers.items():
            self.publisher.publish(control_topic(topic), messages)
        self.bridge.insert(records_out)

    def _records(self, ref: DatasetRef, topic: str,
                 got: Sequence[Delivery]) -> list[DatastoreRecord]:
        if ref.dataset_type.storage_class == "AlertPacket":
            (d,) = got
            return [DatastoreRecord(ref.id, {"topic": topic, "partition": d.partition,
                                             "offset": d.offset})]
        per_partition: dict[int, dict[str, Any]] = {}
        for position, d in enumerate(got):
            entry = per_partition.setdefault(
                d.partition, {"topic": topic, "partition": d.partition, "offsets": [],
                              "positions": []})
            entry["offsets"].append(d.offset)
            entry["positions"].append(position)
        if not per_partition:  # an empty batch still exists as a dataset
            return [DatastoreRecord(ref.id, {"topic": topic, "partition": -1, "offsets": [],
                                             "positions": []}, key="empty")]
        return [DatastoreRecord(ref.id, payload, key=f"p{p}")
                for p, payload in sorted(per_partition.items())]

    def _markers(self, ref: DatasetRef, topic: str, got: Sequence[Delivery]) -> list[Message]:
        """The markers of a visit-detector's acknowledged alerts, for the control topic."""
        spans: dict[int, tuple[int, int, int]] = {}  # partition -> (count, first, last)
        for d in got:
            n, lo, hi = spans.get(d.partition, (0, d.offset, d.offset))
            spans[d.partition] = (n + 1, min(lo, d.offset), max(hi, d.offset))
        return self._marker_messages(ref, topic, spans)

    def _marker_messages(self, ref: DatasetRef, topic: str,
                         spans: Mapping[int, tuple[int, int, int]]) -> list[Message]:
        data_id = ref.data_id
        if "visit" not in data_id or "detector" not in data_id:
            return []
        n_partitions = self.publisher.partitions(topic)
        total = sum(n for n, _, _ in spans.values())
        key = f"end:{data_id['visit']}:{data_id['detector']}".encode()
        out = []
        for p in range(n_partitions):
            n, lo, hi = spans.get(p, (0, None, None))
            record = visit_detector_end_record(
                visit=int(data_id["visit"]), detector=int(data_id["detector"]), partition=p,
                n_partitions=n_partitions, n_alerts=n, n_alerts_total=total,
                instrument=str(data_id.get("instrument", "")), run=ref.run, topic=topic,
                first_offset=lo, last_offset=hi)
            out.append(Message(key, self.codec.encode(record, "visit_detector_end"), p))
        return out

    def send_end_markers(self, ref: DatasetRef,
                         per_partition: Mapping[int, tuple[int, int, int]] | None = None
                         ) -> None:
        """Send the end-of-visit-detector markers of ``ref`` (data ID with visit and
        detector) to the control topic of its topic, ``per_partition`` giving, for each
        partition that got some of its alerts, ``(n_alerts, first_offset, last_offset)``
        (default: none anywhere). ``put`` of an AlertBatch does this itself (also for an empty
        batch); this is for alerts published some other way. Sending the markers again is
        harmless: an ingester records each once."""
        topic = self.topic_for(ref)
        n_partitions = self.publisher.partitions(topic)
        spans = dict(per_partition or {})
        if any(not 0 <= p < n_partitions for p in spans):
            raise ValueError(f"partitions {sorted(spans)} not all in 0..{n_partitions - 1}")
        if any(not (n > 0 and 0 <= lo <= hi) for n, lo, hi in spans.values()):
            raise ValueError(f"{spans} are not (n_alerts > 0, first_offset, last_offset) "
                             "with first_offset <= last_offset")
        markers = self._marker_messages(ref, topic, spans)
        if not markers:
            raise ValueError(f"{ref}: end markers need a data ID with visit and detector")
        self.publisher.partitions(control_topic(topic))
        self.publisher.publish(control_topic(topic), markers)

    def discard(self, refs: Sequence[DatasetRef]) -> None:
        if refs:
            log.warning("%d alert datasets rolled back after publishing: their messages stay "
                        "in Kafka (a message cannot be unsent)", len(refs))

    # -- reading --------------------------------------------------------------------------
    def get(self, ref: DatasetRef, *, component: str | None = None,
            parameters: Mapping[str, Any] | None = None,
            python_type: type | None = None) -> Any:
        records = self.bridge.fetch([ref.id]).get(ref.id)
        if not records:
            raise DatasetNotFoundError(f"{ref} is not in datastore {self.name!r}")
        sc = ref.dataset_type.storage_class
        wanted: list[tuple[str, int, int]] = []
        slots: dict[tuple[str, int, int], int] = {}
        for rec in records:
            p = rec.payload
            if "offset" in p:
                pos = [(p["offset"], 0)]
            else:
                pos = list(zip(p["offsets"], p["positions"], strict=True))
            for offset, position in pos:
                key = (p["topic"], int(p["partition"]), int(offset))
                wanted.append(key)
                slots[key] = position
        fetched = fetch_messages(self.bootstrap, wanted, settings=self._read_settings(),
                                 timeout=self.read_timeout_s)
        missing = [k for k in wanted if k not in fetched]
        if missing:
            shown = ", ".join(f"{t}[{p}]@{o}" for t, p, o in missing[:10])
            raise DatasetNotFoundError(
                f"{ref}: {len(missing)} of {len(wanted)} alert messages are no longer in "
                f"Kafka (retention, or a broker restarted without storage): {shown}")
        alerts: list[Any] = [None] * len(wanted)
        for key, msg in fetched.items():
            alerts[slots[key]] = self.codec.decode_alert(msg.value)
        obj = alerts[0] if sc == "AlertPacket" else alerts
        return STORAGE_CLASSES.finish_read(obj, sc, component=component, parameters=parameters,
                                           python_type=python_type)

    def _read_settings(self) -> dict[str, Any]:
        producer_only = {"compression.type", "linger.ms", "acks", "enable.idempotence",
                         "message.timeout.ms", "batch.size", "queue.buffering.max.messages",
                         "queue.buffering.max.kbytes", "message.max.bytes"}
        return {k: v for k, v in self.settings.items() if k not in producer_only}

    def exists(self, ref: DatasetRef) -> bool:
        return bool(self.bridge.fetch([ref.id]).get(ref.id))

    def n_messages(self, ref: DatasetRef) -> int:
        """Alert messages the dataset was published as (0 for an empty batch: a close)."""
        return sum(len(r.payload["offsets"]) if "offsets" in r.payload else 1
                   for r in self.bridge.fetch([ref.id]).get(ref.id, []))

    # -- removing -------------------------------------------------------------------------
    def remove_many(self, refs: Sequence[DatasetRef]) -> None:
        self.bridge.delete([ref.id for ref in refs])

    def close(self) -> None:
        self.publisher.close()
