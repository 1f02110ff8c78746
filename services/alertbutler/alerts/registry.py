"""Schema ids through a Confluent-compatible Schema Registry (confluent-kafka's client).

Without a registry, the ids on the wire are the fixed ids of ``schemas/ids.toml``. With one
(``schema_registry.url``), every schema is registered under Confluent's RecordNameStrategy
(the subject is the record's Avro full name, ``alertbutler.alert.v1_2.alert``: one subject
per version, since the version is in the name) and the registry's answer decides the id on
the wire, so any Confluent consumer (``AvroDeserializer``) decodes our messages through the
registry. RecordNameStrategy rather than TopicNameStrategy because a subject is then
independent of the topic (alerts go to topics named by configuration) and two kinds that
share a topic never meet under one subject's compatibility check.

* A subject that already holds the schema returns its id (a registry that an operator
  loaded with our fixed ids, or that we loaded before, keeps them).
* A new subject is first tried in IMPORT mode with the fixed id (the registry must allow
  mode changes); a registry that refuses (Apicurio's Confluent API, the ``mock://`` test
  registry) assigns its own id, and the :class:`~alertbutler.alerts.Codec` maps it to our
  fixed id both ways.

Either way a message's ``Decoded.schema_id`` is our fixed id, and ids the codec has not seen
are looked up in the registry and matched to our schemas by their Avro full name.
:func:`registry_in_use` makes the registry's codec the process-wide one
(:func:`~alertbutler.alerts.messages.default_codec`), which is how one setting reaches every
producer and consumer of a process.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from alertbutler.alerts._errors import UnknownSchemaError
from alertbutler.alerts.codec import Codec
from alertbutler.alerts.schemas import SchemaInfo, known_schemas, schema_info

log = logging.getLogger(__name__)


class _SchemaWithId(Schema):
    """A schema whose registration request carries an id (the registry's IMPORT mode)."""

    _import_id: int

    def __init__(self, schema_str: str, schema_id: int) -> None:
        super().__init__(schema_str, "AVRO")
        object.__setattr__(self, "_import_id", schema_id)

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["id"] = self._import_id
        return body


def registry_client(url: str, settings: Mapping[str, str] | None = None) -> SchemaRegistryClient:
    """confluent-kafka's client for ``url`` (``mock://...`` gives its in-memory mock)."""
    return SchemaRegistryClient.new_client({"url": url, **(settings or {})})


def register_schemas(client: SchemaRegistryClient, *,
                     preserve_ids: bool = True) -> dict[int, int]:
    """Register every known schema; returns our fixed id -> the registry's id."""
    return {info.id: _register(client, info, preserve_ids) for info in known_schemas().values()}


def _register(client: SchemaRegistryClient, info: SchemaInfo, preserve_ids: bool) -> int:
    schema = Schema(info.text, "AVRO")
    try:
        found = client.lookup_schema(info.subject, schema).schema_id
        if found is not None:
            return int(found)
    except Exception:  # not registered yet (404), or the lookup itself failed
        pass
    if preserve_ids and not type(client).__name__.startswith("Mock"):
        try:
            client.update_mode(info.subject, "IMPORT")
            try:
                return int(client.register_schema(info.subject,
                                                  _SchemaWithId(info.text, info.id)))
            finally:
                client.update_mode(info.subject, "READWRITE")
        except Exception as exc:
            log.info("registry did not import %s under id %d (%s); letting it choose the id",
                     info.subject, info.id, exc)
    registry_id = int(client.register_schema(info.subject, schema))
    if registry_id != info.id:
        log.info("schema %s has registry id %d (fixed id %d): messages carry the registry's",
                 info.subject, registry_id, info.id)
    return registry_id


def registry_codec(client: SchemaRegistryClient, *, preserve_ids: bool = True) -> Codec:
    """A codec whose wire ids are the registry's (schemas registered first)."""
    to_wire = register_schemas(client, preserve_ids=preserve_ids)

    def lookup(wire_id: int) -> int | None:
        try:
            text = client.get_schema(wire_id).schema_str
            if text is None:
                return None
            doc = json.loads(text)
        except Exception:
            return None
        name = doc.get("name", "")
        if "." not in name and doc.get("namespace"):
            name = f"{doc['namespace']}.{name}"
        try:
            return schema_info(name).id
        except UnknownSchemaError:
            return None

    return Codec(to_wire, lookup)


def codec_for(url: str, settings: Mapping[str, str] | None = None) -> Codec:
    """The codec for a configuration: the registry's ids when ``url`` is set, else fixed."""
    if not url:
        from alertbutler.alerts.messages import default_codec

        return default_codec()
    return registry_codec(registry_client(url, settings))


@contextlib.contextmanager
def registry_in_use(url: str, settings: Mapping[str, str] | None = None) -> Iterator[None]:
    """Within the block, the process's default codec is ``url``'s (nothing changes when
    ``url`` is empty); schemas are registered on first use, not here."""
    if not url:
        yield
        return
    from alertbutler.alerts.messages import use_default_codec

    with use_default_codec(lambda: registry_codec(registry_client(url, settings))):
        yield
