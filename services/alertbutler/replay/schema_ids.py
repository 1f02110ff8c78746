"""Which schema id a replayed message carries on the wire.

Every message is framed in the Confluent wire format, so a consumer needs an id it can turn
back into the writer's schema. An archive file carries its writer schema; the id depends on
what that schema is and on whether a Schema Registry is configured:

=================  =============================================  ==============================
writer schema      no registry                                    registry configured
=================  =============================================  ==============================
one of ours        our fixed id (``schemas/ids.toml``)            registered under our subject
Rubin lsst.vX_Y    Rubin's id, ``X*100 + Y``                      ``lsst-alerts-vX.Y-value``
ZTF-like, other    local id from the schema's fingerprint         ``<topic>-value``
=================  =============================================  ==============================

A local id is ``2**30 + (CRC-64-AVRO fingerprint mod 2**30)``: deterministic (the same schema
gets the same id on every machine and every run), above every id of ours and Rubin's, and
inside the signed 32-bit range Confluent's clients expect. Local ids are written to a sidecar
JSON file (id -> fingerprint, name, schema) that consumers load to decode the stream.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alertbutler.alerts import known_schemas
from alertbutler.replay.container import schema_fingerprint
from alertbutler.replay.errors import CorruptFileError, UnknownAlertSchemaError

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

LOCAL_ID_BASE = 1 << 30
_RUBIN_NAME = re.compile(r"^lsst\.v(\d+)_(\d+)\.alert$")


class AlertFormat(StrEnum):
    """The families of alert packets a replay understands."""

    ALERTBUTLER = "alertbutler"
    RUBIN = "rubin"
    ZTF = "ztf"


@dataclass(frozen=True)
class WriterSchema:
    """A writer schema found in an archive file, classified."""

    format: AlertFormat
    name: str
    text: str
    fingerprint: int
    #: our fixed id, or Rubin's major*100+minor; None for ZTF-like schemas
    fixed_id: int | None = None
    subject: str | None = None

    @property
    def local_id(self) -> int:
        return LOCAL_ID_BASE + self.fingerprint % LOCAL_ID_BASE


def full_name(schema: Mapping[str, Any]) -> str:
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


@functools.cache
def _ours() -> dict[int, Any]:
    return {schema_fingerprint(info.text): info for info in known_schemas().values()}


def classify(schema: Mapping[str, Any], file: str, claimed_id: str | None = None
             ) -> WriterSchema:
    """Classify the writer schema of ``file``; refuse schemas that are not alerts we know."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        raise UnknownAlertSchemaError(file, "the writer schema is not an Avro record")
    name = full_name(schema)
    fields = {f.get("name") for f in schema.get("fields", ()) if isinstance(f, Mapping)}
    text = json.dumps(schema, separators=(",", ":"))
    try:
        fp = schema_fingerprint(schema)
    except Exception as exc:
        raise UnknownAlertSchemaError(file, f"writer schema {name!r} is not valid Avro: "
                                      f"{exc}") from None
    ours = _ours().get(fp)
    if claimed_id is not None:
        known = known_schemas().get(int(claimed_id)) if claimed_id.isdigit() else None
        if known is None:
            raise UnknownAlertSchemaError(file, f"claims alertbutler schema id {claimed_id}, "
                                          "which is not a known schema id")
        if ours is None or ours.id != known.id:
            raise CorruptFileError(file, f"claims alertbutler schema id {claimed_id} but its "
                                   f"writer schema {name!r} is not that schema")
    if ours is not None:
        if ours.kind != "alert":
            raise UnknownAlertSchemaError(file, f"holds {ours.kind} records (schema id "
                                          f"{ours.id}), not alerts")
        return WriterSchema(AlertFormat.ALERTBUTLER, name, ours.text, fp, ours.id,
                            ours.subject)
    match = _RUBIN_NAME.match(name)
    # 8.0 and later name the alert by diaSourceId, 3.0-7.4 by alertId
    if match and "diaSource" in fields and fields & {"diaSourceId", "alertId"}:
        major, minor = int(match[1]), int(match[2])
        return WriterSchema(AlertFormat.RUBIN, name, text, fp, major * 100 + minor,
                            f"lsst-alerts-v{major}.{minor}-value")
    if {"objectId", "candid", "candidate"} <= fields:
        return WriterSchema(AlertFormat.ZTF, name, text, fp)
    if name.startswith("alertbutler."):
        raise UnknownAlertSchemaError(file, f"writer schema {name!r} looks like one of ours but "
                                      "matches no schema in schemas/ids.toml (edited or from a "
                                      "newer alertbutler?)")
    if match:
        raise UnknownAlertSchemaError(file, f"writer schema {name!r} is named as Rubin's but "
                                      "has no diaSource with a diaSourceId or alertId")
    raise UnknownAlertSchemaError(
        file, f"unknown alert schema {name!r}: expected an alertbutler alert schema, a Rubin "
        "lsst.vX_Y.alert schema, or a ZTF-like schema (objectId, candid, candidate)")


_CLASSIFIED: dict[tuple[str, str | None], WriterSchema] = {}


def classify_text(text: str, file: str, claimed_id: str | None = None) -> WriterSchema:
    """:func:`classify` for a schema's JSON text, remembered per distinct text (a ZTF archive
    is thousands of files with one schema)."""
    found = _CLASSIFIED.get((text, claimed_id))
    if found is None:
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise CorruptFileError(file, f"writer schema is not JSON: {exc}") from None
        found = classify(schema, file, claimed_id)
        if len(_CLASSIFIED) > 256:
            _CLASSIFIED.clear()
        _CLASSIFIED[(text, claimed_id)] = found
    return found


class SchemaIds:
    """Resolves writer schemas to wire ids (see the module doc); thread-safe.

    ``registry`` is a confluent-kafka ``SchemaRegistryClient`` (or None); ``subject``
    overrides every subject; ``sidecar`` is where local ids are recorded.
    """

    def __init__(self, *, registry: Any | None = None, subject: str | None = None,
                 sidecar: Path | None = None) -> None:
        self.registry = registry
        self.subject = subject
        self.sidecar = sidecar
        self.used: dict[int, WriterSchema] = {}
        self._cache: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()

    def wire_id(self, schema: WriterSchema, topic: str) -> int:
        key = (schema.fingerprint, topic)
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                found = self._resolve(schema, topic)
                clash = self.used.get(found)
                if clash is not None and clash.fingerprint != schema.fingerprint:
                    raise UnknownAlertSchemaError(
                        schema.name, f"schema id {found} already stands for {clash.name!r} "
                        "in this replay (local id collision): configure a Schema Registry")
                self._cache[key] = found
                self.used[found] = schema
            return found

    def _resolve(self, schema: WriterSchema, topic: str) -> int:
        if self.registry is not None:
            from confluent_kafka.schema_registry import Schema

            subject = self.subject or schema.subject or f"{topic}-value"
            return int(self.registry.register_schema(subject, Schema(schema.text, "AVRO")))
        if schema.fixed_id is not None:
            return schema.fixed_id
        return schema.local_id

    def local_ids(self) -> dict[int, WriterSchema]:
        """The ids of this replay that no registry knows (recorded in the sidecar)."""
        if self.registry is not None:
            return {}
        return {i: s for i, s in self.used.items() if s.fixed_id is None}

    def write_sidecar(self) -> Path | None:
        """Merge this replay's local ids into the sidecar file; returns its path if written."""
        local = self.local_ids()
        if not local or self.sidecar is None:
            return None
        entries = load_sidecar(self.sidecar) if self.sidecar.exists() else {}
        for schema_id, schema in local.items():
            entries[schema_id] = {"fingerprint": f"{schema.fingerprint:016x}",
                                  "name": schema.name, "format": str(schema.format),
                                  "schema": json.loads(schema.text)}
        self.sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.sidecar.with_name(f".{self.sidecar.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": "alertbutler-local-schema-ids",
                                   "schemas": {str(k): v for k, v in sorted(entries.items())}},
                                  indent=1) + "\n")
        os.replace(tmp, self.sidecar)
        return self.sidecar


def load_sidecar(path: Path) -> dict[int, dict[str, Any]]:
    """The local ids of a sidecar file: id -> {fingerprint, name, format, schema}."""
    try:
        data = json.loads(Path(path).read_text())
        return {int(k): v for k, v in data["schemas"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(path, f"not a local schema-id sidecar: {exc}") from None


def make_registry_client(url: str, settings: Mapping[str, str] | None = None
                         ) -> SchemaRegistryClient:
    """A confluent-kafka Schema Registry client (``mock://`` gives the in-memory mock)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf = {"url": url, **(settings or {})}
    if url.startswith("mock://"):
        return SchemaRegistryClient.new_client(conf)
    return SchemaRegistryClient(conf)
