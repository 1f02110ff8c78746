"""Find, parse and name alertbutler's Avro schemas.

The ``.avsc`` files and their fixed ids live in the repository's ``schemas/`` directory, the
one source of truth. An installed package carries the same files as package data
(``alertbutler/alerts/_schemas``, a symlink to ``schemas/`` in a checkout), so the loader looks
at the checkout first and falls back to the package data. Every schema is parsed once, on
first use, and cached for the life of the process.
"""

from __future__ import annotations

import functools
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro

from alertbutler.alerts._errors import UnknownSchemaError

#: Schema kinds (families) and the Kafka-facing name of each.
KINDS = ("alert", "next_visit", "visit_detector_end", "work_item")


@dataclass(frozen=True)
class SchemaInfo:
    """One version of one schema: its fixed id, where it lives and its parsed form."""

    id: int
    kind: str
    version: tuple[int, int]
    path: Path
    text: str = field(repr=False)
    parsed: dict[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def full_name(self) -> str:
        """The Avro full name of the top-level record, e.g. ``alertbutler.alert.v1_2.alert``."""
        return str(self.parsed["name"])

    @property
    def subject(self) -> str:
        """Schema Registry subject by Confluent's RecordNameStrategy: the full name, which
        carries the version (``alertbutler.alert.v1_2.alert``), so one subject per version."""
        return self.full_name


def schema_dir() -> Path:
    """The directory holding ``ids.toml`` and the ``.avsc`` files."""
    checkout = Path(__file__).resolve().parents[3] / "schemas"
    if (checkout / "ids.toml").is_file():
        return checkout
    packaged = Path(str(resources.files("alertbutler.alerts") / "_schemas"))
    if (packaged / "ids.toml").is_file():
        return packaged
    raise UnknownSchemaError(f"no schemas found: neither {checkout} nor {packaged} has ids.toml")


@functools.cache
def known_schemas() -> dict[int, SchemaInfo]:
    """Every schema version listed in ``ids.toml``, by id (parsed once per process)."""
    root = schema_dir()
    with open(root / "ids.toml", "rb") as fh:
        table = tomllib.load(fh)
    found: dict[int, SchemaInfo] = {}
    for kind, versions in table.items():
        for version, schema_id in versions.items():
            if version == "current":
                continue
            major, _, minor = version.partition(".")
            path = root / kind / f"{version}.avsc"
            text = path.read_text()
            parsed = fastavro.parse_schema(json.loads(text))
            if not isinstance(parsed, dict):
                raise UnknownSchemaError(f"{path}: not an Avro record schema")
            if schema_id in found:
                raise UnknownSchemaError(f"{root / 'ids.toml'}: id {schema_id} used twice")
            found[schema_id] = SchemaInfo(schema_id, kind, (int(major), int(minor)), path,
                                          text, parsed)
    return found


@functools.cache
def current_ids() -> dict[str, int]:
    """Kind -> id of the version writers use now (``current`` in ``ids.toml``)."""
    with open(schema_dir() / "ids.toml", "rb") as fh:
        table = tomllib.load(fh)
    return {kind: int(versions[versions["current"]]) for kind, versions in table.items()}


def schema_info(name_or_id: int | str) -> SchemaInfo:
    """Look a schema up by id (``900102``), kind (``"alert"``: the current version), or
    kind and version (``"alert:1.0"``, ``"alert/1.0"``), or Avro full name."""
    schemas = known_schemas()
    if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
        try:
            return schemas[name_or_id]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown schema id {name_or_id} (known: {', '.join(map(str, sorted(schemas)))})",
                schema_id=name_or_id) from None
    text = str(name_or_id)
    if text.isdigit():
        return schema_info(int(text))
    if text in current_ids():
        return schemas[current_ids()[text]]
    for sep in (":", "/"):
        kind, found, version = text.partition(sep)
        if found:
            for info in schemas.values():
                if info.kind == kind and info.version_text == version:
                    return info
    for info in schemas.values():
        if info.full_name == text:
            return info
    raise UnknownSchemaError(f"unknown schema {text!r}: expected an id, a kind "
                             f"({', '.join(current_ids())}) or kind:major.minor")


def load_schema(name_or_id: int | str) -> dict[str, Any]:
    """The parsed (fastavro) schema for an id or name; see :func:`schema_info`."""
    return schema_info(name_or_id).parsed
