"""Schema ids through confluent-kafka's SchemaRegistryClient (its mock:// registry)."""

from __future__ import annotations

import json
import struct

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from alertbutler.alerts import UnknownSchemaError, default_codec, encode_alert, known_schemas
from alertbutler.alerts.fake import fake_alerts
from alertbutler.alerts.registry import codec_for, registry_client, registry_codec


def test_registry_ids_on_the_wire_and_ours_in_decoded() -> None:
    client = registry_client("mock://ids")
    codec = registry_codec(client)
    subjects = set(client.get_subjects())
    assert {info.subject for info in known_schemas().values()} <= subjects
    (alert,) = fake_alerts(1, seed=3, cutout_size=None, n_history=1)
    message = codec.encode(alert)
    wire_id = struct.unpack(">I", message[1:5])[0]
    assert wire_id == codec.wire_id("alert")
    assert json.loads(client.get_schema(wire_id).schema_str)["namespace"] == \
        "alertbutler.alert.v1_2"
    decoded = codec.decode(message)
    assert decoded.schema_id == 900102 and decoded.record == alert
    deserializer = AvroDeserializer(client)
    assert deserializer(message, SerializationContext("t", MessageField.VALUE)) == alert
    # messages written without a registry (fixed ids) still decode
    assert codec.decode(encode_alert(alert)).record == alert
    # registering again finds the same ids; a fresh codec finds unseen ids by lookup
    assert registry_codec(client).wire_id("alert") == wire_id


def test_foreign_schema_in_the_registry_is_unknown() -> None:
    client = registry_client("mock://foreign")
    codec = registry_codec(client)
    foreign = client.register_schema("other-value", Schema(json.dumps(
        {"type": "record", "name": "thing", "namespace": "elsewhere",
         "fields": [{"name": "x", "type": "int"}]}), "AVRO"))
    message = struct.pack(">bI", 0, foreign) + b"\x02"
    with pytest.raises(UnknownSchemaError, match=f"unknown schema id {foreign}"):
        codec.decode(message)


def test_without_a_url_ids_are_the_fixed_ones() -> None:
    assert codec_for("") is default_codec()
    assert default_codec().wire_id("alert") == 900102


def test_registry_in_use_switches_the_process_codec_for_the_block() -> None:
    from alertbutler.alerts.registry import registry_in_use

    (alert,) = fake_alerts(1, seed=4, cutout_size=None, n_history=0)
    with registry_in_use("mock://process"):
        codec = default_codec()
        wire = struct.unpack(">I", encode_alert(alert)[1:5])[0]
        assert wire == codec.wire_id("alert") != 900102  # the registry's id
        assert default_codec() is codec  # built once, on first use
    assert default_codec().wire_id("alert") == 900102  # restored after the block
    assert struct.unpack(">I", encode_alert(alert)[1:5])[0] == 900102
    with registry_in_use(""):  # no registry: nothing changes
        assert default_codec().wire_id("alert") == 900102
