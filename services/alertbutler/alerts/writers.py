"""Writer schemas by wire id, for every alert stream we read: ours, Rubin's, and others'.

A consumer of the Confluent wire format needs the writer schema behind each id. Ours are in
``schemas/ids.toml``; Rubin's ids are ``major*100 + minor`` and their schemas ship in the
``lsst-alert-packet`` package (an optional dependency: every version 3.0 to 11.x); anything
else (a ZTF archive replayed without a registry) carries a local id that ``alerts replay``
recorded in a JSON sidecar file, or an id a Schema Registry knows. :class:`WriterSchemas`
looks an id up in that order: ours, the registry, Rubin's, the local ids, and says where it
looked when it finds nothing.

Each schema is classified by what its top level holds, not by a table: a Rubin or our alert
names itself by ``diaSourceId`` (Rubin 3.0-7.4: ``alertId``), a ZTF alert by ``candid``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro

from alertbutler.alerts._errors import UnknownSchemaError
from alertbutler.alerts.schemas import known_schemas

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from fastavro.types import Schema as AvroSchema

    from alertbutler.config import Config

#: the top-level field that identifies an alert, by family, in order of preference
ID_FIELDS = ("diaSourceId", "alertId", "candid")


@dataclass(frozen=True, eq=False)
class Writer:
    """One writer schema: its id on the wire, what it is, and its definition."""

    id: int
    kind: str            # "alert", or another kind of ours ("visit_detector_end", ...)
    family: str          # "alertbutler", "rubin", "ztf" or "other"
    name: str            # Avro full name
    schema: dict[str, Any]  # plain JSON, named types defined in place
    parsed: AvroSchema   # fastavro's parsed form
    id_field: str | None  # top-level field naming the alert (ID_FIELDS), if any


def full_name(schema: Mapping[str, Any]) -> str:
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def family_of(schema: Mapping[str, Any]) -> str:
    """``rubin`` (lsst.vX_Y.alert), ``ztf`` (objectId, candid, candidate) or ``other``."""
    name = full_name(schema)
    fields = {f.get("name") for f in schema.get("fields", ()) if isinstance(f, Mapping)}
    if name.startswith("lsst.v") and name.endswith(".alert") and "diaSource" in fields:
        return "rubin"
    if {"objectId", "candid", "candidate"} <= fields:
        return "ztf"
    return "other"


def _id_field(schema: Mapping[str, Any]) -> str | None:
    fields = {f.get("name") for f in schema.get("fields", ()) if isinstance(f, Mapping)}
    return next((f for f in ID_FIELDS if f in fields), None)


def make_writer(schema_id: int, schema: Mapping[str, Any], *, kind: str = "alert",
                family: str | None = None) -> Writer:
    plain = dict(schema)
    return Writer(schema_id, kind, family or family_of(plain), full_name(plain), plain,
                  fastavro.parse_schema(plain, _write_hint=False), _id_field(plain))


@functools.cache
def _ours(schema_id: int) -> Writer | None:
    info = known_schemas().get(schema_id)
    if info is None:
        return None
    return make_writer(schema_id, json.loads(info.text), kind=info.kind, family="alertbutler")


def rubin_schema_dir() -> Path | None:
    """Where lsst-alert-packet keeps its schemas (None: the package is not installed)."""
    try:
        spec = importlib.util.find_spec("lsst.alert.packet")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "schema"
    return root if root.is_dir() else None


def rubin_versions() -> list[tuple[int, int]]:
    """Every Rubin schema version lsst-alert-packet ships, oldest first."""
    root = rubin_schema_dir()
    if root is None:
        return []
    found = []
    for path in root.glob("*/*/lsst.v*_*.alert.avsc"):
        major, minor = path.parent.parent.name, path.parent.name
        if major.isdigit() and minor.isdigit():
            found.append((int(major), int(minor)))
    return sorted(found)


@functools.cache
def rubin_writer(schema_id: int) -> Writer | None:
    """Rubin's schema of id ``major*100 + minor``, from lsst-alert-packet (None if absent)."""
    root = rubin_schema_dir()
    major, minor = divmod(schema_id, 100)
    if root is None or not 1 <= major <= 99:
        return None
    path = root / str(major) / str(minor) / f"lsst.v{major}_{minor}.alert.avsc"
    if not path.is_file():
        return None
    # fastavro loads the referenced files beside it (diaSource, diaObject, ...) and expands
    # them in place, which gives the schema exactly as Rubin's writers use it
    schema = fastavro.schema.expand_schema(
        fastavro.schema.load_schema(str(path), _write_hint=False))
    return make_writer(schema_id, _define_once(schema, "", set()), family="rubin")


def _define_once(schema: Any, ns: str, defined: set[str]) -> Any:
    """``schema`` with each named type defined at its first use and referred to by name
    after (fastavro's expansion repeats them, which Avro forbids)."""
    if isinstance(schema, list):
        return [_define_once(b, ns, defined) for b in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        ns = schema.get("namespace", ns)
        name = full_name({"name": schema["name"], "namespace": ns})
        if name in defined:
            return name
        defined.add(name)
        if kind == "record":
            return {**schema, "fields": [{**f, "type": _define_once(f["type"], ns, defined)}
                                         for f in schema["fields"]]}
        return schema
    if kind == "array":
        return {**schema, "items": _define_once(schema["items"], ns, defined)}
    if kind == "map":
        return {**schema, "values": _define_once(schema["values"], ns, defined)}
    if isinstance(kind, dict | list):
        return {**schema, "type": _define_once(kind, ns, defined)}
    return schema


def read_local_ids(path: Path) -> dict[int, dict[str, Any]]:
    """The local ids recorded by ``alerts replay``: id -> writer schema (plain JSON)."""
    try:
        data = json.loads(Path(path).read_text())
        return {int(k): v["schema"] for k, v in data["schemas"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnknownSchemaError(f"{path}: not a local schema-id file written by alerts "
                                 f"replay: {exc}") from None


class WriterSchemas:
    """Resolves wire ids to writer schemas (see the module doc); thread-safe, cached.

    ``local_ids`` is the sidecar file of ``alerts replay`` (read when it exists, again when
    an id is missing and the file changed); ``registry`` a confluent-kafka Schema Registry
    client.
    """

    def __init__(self, *, local_ids: Path | None = None,
                 registry: SchemaRegistryClient | None = None) -> None:
        self.local_ids = Path(local_ids) if local_ids is not None else None
        self.registry = registry
        self._found: dict[int, Writer] = {}
        self._local: dict[int, dict[str, Any]] = {}
        self._local_mtime: float | None = None
        self._lock = threading.Lock()

    def get(self, schema_id: int) -> Writer:
        found = self._found.get(schema_id)
        if found is None:
            with self._lock:
                found = self._found.get(schema_id) or self._lookup(schema_id)
                self._found[schema_id] = found
        return found

    __call__ = get

    def _lookup(self, schema_id: int) -> Writer:
        ours = _ours(schema_id)
        if ours is not None:
            return ours
        if self.registry is not None:
            found = self._from_registry(schema_id)
            if found is not None:
                return found
        rubin = rubin_writer(schema_id)
        if rubin is not None:
            return rubin
        local = self._local_schema(schema_id)
        if local is not None:
            return make_writer(schema_id, local)
        looked = ["alertbutler's schemas/ids.toml"]
        if self.registry is not None:
            looked.append("the schema registry")
        looked.append("Rubin's schemas (lsst-alert-packet)" if rubin_schema_dir() else
                      "not Rubin's (lsst-alert-packet is not installed)")
        if self.local_ids is not None:
            looked.append(f"the local ids of {self.local_ids}")
        raise UnknownSchemaError(f"unknown schema id {schema_id} (looked in "
                                 f"{', '.join(looked)})", schema_id=schema_id)

    def _from_registry(self, schema_id: int) -> Writer | None:
        if self.registry is None:
            return None
        try:
            text = self.registry.get_schema(schema_id).schema_str
            if text is None:
                return None
            schema = json.loads(text)
        except Exception:  # 404, or the registry is unreachable: the other sources may know
            return None
        for info in known_schemas().values():  # one of ours under the registry's id
            if info.full_name == full_name(schema):
                return make_writer(schema_id, json.loads(info.text), kind=info.kind,
                                   family="alertbutler")
        return make_writer(schema_id, schema)

    def _local_schema(self, schema_id: int) -> dict[str, Any] | None:
        path = self.local_ids
        if path is None:
            return None
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if mtime != self._local_mtime:
            self._local = read_local_ids(path)
            self._local_mtime = mtime
        return self._local.get(schema_id)


@functools.cache
def default_writers() -> WriterSchemas:
    """Ours and Rubin's (no registry, no local ids)."""
    return WriterSchemas()


def writers_for(config: Config, local_ids: Path | None = None) -> WriterSchemas:
    """The writer schemas a command of this configuration reads: ours, Rubin's, the
    configured registry's, and the local ids ``alerts replay`` recorded (by default in
    ``<data_dir>/replay/local-schema-ids.json``, where it writes them)."""
    registry = None
    if config.schema_registry.url:
        from alertbutler.alerts.registry import registry_client

        registry = registry_client(config.schema_registry.url, config.schema_registry.client)
    path = local_ids or config.data_dir / "replay" / "local-schema-ids.json"
    return WriterSchemas(local_ids=path, registry=registry)
