"""Schemas: ids, loading, and field-by-field agreement with Rubin's lsst.v11 format."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

import alertbutler.alerts as alerts
from alertbutler.alerts import UnknownSchemaError, known_schemas, load_schema, schema_info
from alertbutler.alerts.schemas import current_ids, schema_dir

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
RUBIN_RECORDS = ("alert", "diaSource", "diaForcedSource", "diaObject", "ssSource")
#: our own fields, per record and the version that added them: never in lsst.v11, always
#: nullable with a null default, so Rubin's readers skip them and ours fill them in
OUR_FIELDS = {("diaSource", "psfModel_flag_degraded"): "1.2"}


def test_ids_file_matches_constants() -> None:
    with open(REPO_SCHEMAS / "ids.toml", "rb") as fh:
        table = tomllib.load(fh)
    assert table["alert"][table["alert"]["current"]] == alerts.CURRENT_ALERT_SCHEMA_ID
    assert current_ids() == {"alert": alerts.CURRENT_ALERT_SCHEMA_ID,
                             "next_visit": alerts.NEXT_VISIT_SCHEMA_ID,
                             "visit_detector_end": alerts.VISIT_DETECTOR_END_SCHEMA_ID,
                             "work_item": 930100}


def test_ids_do_not_clash_with_rubin_ids() -> None:
    from lsst.alert.packet import schema as rubin_schema

    rubin_root = Path(rubin_schema.get_schema_root())
    rubin_ids = {int(major.name) * 100 + int(minor.name)
                 for major in rubin_root.iterdir() if major.name.isdigit()
                 for minor in major.iterdir() if minor.name.isdigit()}
    assert 1101 in rubin_ids
    assert not rubin_ids & set(known_schemas())


def test_lookup_by_id_kind_version_and_name() -> None:
    assert schema_info(900102) is schema_info("alert") is schema_info("alert:1.2")
    assert schema_info("alert/1.0").id == 900100
    assert schema_info("alertbutler.alert.v1_0.alert").id == 900100
    assert load_schema("alert") is load_schema(900102)  # parsed once
    # Confluent's RecordNameStrategy: the subject is the full name (the version is in it)
    assert schema_info("alert").subject == "alertbutler.alert.v1_2.alert"
    with pytest.raises(UnknownSchemaError, match="unknown schema id 42"):
        schema_info(42)
    with pytest.raises(UnknownSchemaError, match="unknown schema 'nope'"):
        schema_info("nope")


def test_schemas_are_found_in_the_checkout_and_in_package_data() -> None:
    assert schema_dir() == REPO_SCHEMAS
    packaged = Path(alerts.__file__).parent / "_schemas"
    assert (packaged / "ids.toml").read_bytes() == (REPO_SCHEMAS / "ids.toml").read_bytes()


def _rubin_fields() -> dict[str, dict[str, object]]:
    from lsst.alert.packet import schema as rubin_schema

    root = Path(rubin_schema.get_schema_root()) / "11" / "1"
    out = {}
    for name in RUBIN_RECORDS:
        doc = json.loads((root / f"lsst.v11_1.{name}.avsc").read_text())
        out[name] = {f["name"]: f["type"] for f in doc["fields"]}
    return out


def _norm(t: object) -> object:
    """A type with namespaces and nested definitions reduced to names, for comparison."""
    if isinstance(t, list):
        return [_norm(x) for x in t]
    if isinstance(t, dict):
        if t["type"] == "array":
            return {"array": _norm(t["items"])}
        if t["type"] == "record":
            return t["name"].split(".")[-1]
        return t["type"]
    return str(t).split(".")[-1]


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_every_alert_field_has_rubin_name_type_and_nullability(version: str) -> None:
    rubin = _rubin_fields()
    doc = json.loads(schema_info(f"alert:{version}").text)
    records = {"alert": doc}

    def collect(t: object) -> None:
        if isinstance(t, list):
            for x in t:
                collect(x)
        elif isinstance(t, dict):
            if t["type"] == "record":
                records[t["name"]] = t
                for f in t["fields"]:
                    collect(f["type"])
            elif t["type"] == "array":
                collect(t["items"])

    for f in doc["fields"]:
        collect(f["type"])
    assert set(records) == set(RUBIN_RECORDS)
    for name, record in records.items():
        ours = {f for (r, f), since in OUR_FIELDS.items() if r == name and since <= version}
        assert ours <= {f["name"] for f in record["fields"]}, f"{name} lacks {ours}"
        for f in record["fields"]:
            if f["name"] in ours:
                assert f["name"] not in rubin[name], f"{name}.{f['name']} clashes with Rubin's"
                assert f["type"][0] == "null" and f["default"] is None and f.get("doc")
                continue
            assert f["name"] in rubin[name], f"{name}.{f['name']} is not in lsst.v11_1"
            assert _norm(f["type"]) == _norm(rubin[name][f["name"]]), f"{name}.{f['name']}"
            assert f.get("doc"), f"{name}.{f['name']} has no doc"
