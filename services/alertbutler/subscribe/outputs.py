"""Where kept alerts go: a Kafka topic (the wire-format bytes, as received), JSON lines, an
Avro container file or Parquet.

A topic gets the message bytes as they arrived (no decode, no re-encode), keyed by
diaSourceId, from an idempotent confluent producer; :meth:`flush` returns only once the
broker acknowledged every message, which is what lets the filter service commit. Files
get fully decoded alerts, appended batch by batch and flushed to disk in :meth:`flush`.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from alertbutler.kafka import access_error, factory, is_refusal
from alertbutler.subscribe.errors import SubscribeError
from alertbutler.subscribe.stream import StreamAlert

if TYPE_CHECKING:
    from alertbutler.alerts.writers import WriterSchemas


class Output(Protocol):
    def write(self, alerts: Sequence[StreamAlert]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def alert_key(alert: StreamAlert) -> bytes:
    """The diaSourceId as decimal text: the key of every forwarded alert."""
    record = alert.record
    if isinstance(record, Mapping) and record.get("diaSourceId") is not None:
        return str(record["diaSourceId"]).encode()
    from alertbutler.alerts import decode_alert

    return str(decode_alert(alert.value)["diaSourceId"]).encode()


class TopicOutput:
    """Forward the raw messages to a topic; ``flush()`` raises unless all were acknowledged."""

    def __init__(self, producer: Producer, topic: str, *,
                 who: Mapping[str, Any] | None = None) -> None:
        self.producer = producer
        self.topic = topic
        #: the client's sasl.username and sasl.mechanism, named when the broker refuses
        self.who = {k: v for k, v in (who or {}).items()
                    if k in ("sasl.username", "sasl.mechanism")}
        self._errors: list[str] = []
        self._refusal: KafkaError | None = None

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            if is_refusal(err) and self._refusal is None:
                self._refusal = err
            self._errors.append(f"{self.topic}: {err.str()}")

    def _refused(self, err: KafkaError | KafkaException) -> Exception:
        return access_error(err, settings=self.who, doing=f"writing to topic {self.topic!r}")

    def write(self, alerts: Sequence[StreamAlert], keys: Sequence[bytes] | None = None,
              on_delivery: Callable[[KafkaError | None, Message], None] | None = None) -> None:
        """Produce the alerts; ``on_delivery`` (err, msg) replaces this output's own check."""
        produce = self.producer.produce
        callback = on_delivery or self._delivered
        for i, alert in enumerate(alerts):
            key = keys[i] if keys is not None else alert_key(alert)
            while True:
                try:
                    produce(self.topic, alert.value, key=key, on_delivery=callback)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self.producer.poll(0.1)
                except KafkaException as exc:  # fatal: e.g. no idempotent-write right
                    if is_refusal(exc):
                        raise self._refused(exc) from None
                    raise
        self.producer.poll(0)

    def flush(self) -> None:
        try:
            left = self.producer.flush(60)
        except KafkaException as exc:
            if is_refusal(exc):
                raise self._refused(exc) from None
            raise
        if self._refusal is not None:
            refusal, self._refusal, self._errors = self._refusal, None, []
            raise self._refused(refusal)
        if left:
            raise SubscribeError(f"{self.topic}: {left} messages not acknowledged within 60 s")
        self.check()

    def check(self) -> None:
        """Raise if any delivery since the last check failed (after a producer flush)."""
        if self._errors:
            errors, self._errors = self._errors, []
            raise SubscribeError(f"delivery failed: {errors[0]} ({len(errors)} errors)")

    def close(self) -> None:
        self.flush()


def make_producer(settings: Mapping[str, object], transactional_id: str | None = None
                  ) -> Producer:
    """An idempotent, acks=all producer (the settings carry bootstrap and security keys);
    transactional under ``transactional_id`` (the caller then calls ``init_transactions``)."""
    txn = {"transactional.id": transactional_id} if transactional_id else {}
    return factory.make_producer(settings, **{"queue.buffering.max.messages": 200_000, **txn})


def _full_records(alerts: Sequence[StreamAlert], writers: Any = None,
                  only_ours: bool = False) -> list[dict[str, Any]]:
    """Every alert decoded whole: ours by the alerts library, others (Rubin's of any
    version, replayed ZTF archives) with their own writer schema."""
    from fastavro import schemaless_reader

    from alertbutler.alerts import decode_alert
    from alertbutler.alerts.writers import default_writers

    writers = writers or default_writers()
    out = []
    for a in alerts:
        writer = writers.get(int.from_bytes(a.value[1:5], "big"))
        if writer.family == "alertbutler":
            out.append(decode_alert(a.value))
        elif only_ours:
            raise SubscribeError(f"{writer.name} alerts (schema id {writer.id}) do not fit an "
                                 "Avro or Parquet output of alertbutler alerts: use jsonl")
        else:
            # fastavro types a datum as any Avro value; an alert schema is a record
            out.append(cast(dict[str, Any],
                            schemaless_reader(io.BytesIO(a.value[5:]), writer.parsed, None)))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime | datetime.date):  # Avro timestamp logical types
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class JsonlOutput:
    """One JSON object per alert and line; bytes (cutouts) as base64 text."""

    def __init__(self, path: str | os.PathLike[str] | None, stream: Any = None,
                 writers: Any = None) -> None:
        self.path = Path(path) if path else None
        self.writers = writers
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if stream is not None:
            self._fh = stream
        elif self.path is not None:
            self._fh = open(self.path, "a")  # noqa: SIM115
        else:
            raise ValueError("a JSON-lines output needs a path or a stream")

    def write(self, alerts: Sequence[StreamAlert]) -> None:
        for record in _full_records(alerts, self.writers):
            self._fh.write(json.dumps(_jsonable(record), separators=(",", ":")) + "\n")

    def flush(self) -> None:
        self._fh.flush()
        if self.path:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self.flush()
        if self.path:
            self._fh.close()


class AvroFileOutput:
    """An Avro container file with the alert schema, appended to batch by batch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from alertbutler.alerts import load_schema

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = load_schema("alert")

    def write(self, alerts: Sequence[StreamAlert]) -> None:
        import fastavro

        if not alerts:
            return
        records = _full_records(alerts, only_ours=True)
        mode = "a+b" if self.path.exists() and self.path.stat().st_size else "wb"
        with open(self.path, mode) as fh:
            fastavro.writer(fh, self.schema, records, codec="deflate")
            fh.flush()
            os.fsync(fh.fileno())

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class ParquetOutput:
    """A Parquet file with the alert schema's nested structure, one row group per batch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from alertbutler.alerts import load_schema

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._schema = arrow_schema(load_schema("alert"))
        self._writer: Any = None

    def write(self, alerts: Sequence[StreamAlert]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not alerts:
            return
        table = pa.Table.from_pylist(_full_records(alerts, only_ours=True), schema=self._schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self._schema, compression="zstd")
        self._writer.write_table(table)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def arrow_schema(avro: Mapping[str, Any]) -> Any:
    """The Arrow schema of a parsed Avro record schema (records -> structs, arrays -> lists)."""
    import pyarrow as pa

    named = dict(avro.get("__named_schemas", {}))
    primitives = {"long": pa.int64(), "int": pa.int32(), "float": pa.float32(),
                  "double": pa.float64(), "string": pa.string(), "boolean": pa.bool_(),
                  "bytes": pa.binary(), "null": pa.null()}

    def convert(t: Any) -> Any:
        if isinstance(t, list):
            branches = [b for b in t if b != "null"]
            return convert(branches[0]) if len(branches) == 1 else pa.binary()
        if isinstance(t, str):
            return primitives[t] if t in primitives else convert(named[t])
        kind = t["type"]
        if kind == "record":
            named.setdefault(t["name"], t)
            return pa.struct([pa.field(f["name"], convert(f["type"])) for f in t["fields"]])
        if kind == "array":
            return pa.list_(convert(t["items"]))
        if kind == "enum":
            return pa.string()
        if kind == "fixed":
            return pa.binary()
        return convert(kind)

    return pa.schema(list(convert(avro)))


def file_output(path: str | os.PathLike[str], writers: WriterSchemas | None = None) -> Output:
    """A file output chosen by the name's suffix: .jsonl, .avro or .parquet."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return JsonlOutput(path, writers=writers)
    if suffix == ".avro":
        return AvroFileOutput(path)
    if suffix in (".parquet", ".pq"):
        return ParquetOutput(path)
    raise SubscribeError(f"{path}: unknown output format (use .jsonl, .avro or .parquet)")
