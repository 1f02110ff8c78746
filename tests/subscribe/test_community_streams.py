"""The community's streams (issue 16 #3): every Rubin schema lsst-alert-packet ships (3.0 to
11.x) and ZTF archives of schemas 1.7 to 3.5, replayed with ``alerts replay``, read back by
``subscribe``, ``alerts dump`` and the filter service, with filters compiled against each
stream's own schema and checked against a brute-force evaluation."""

from __future__ import annotations

import base64
import copy
import datetime
import io
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest
import yaml

from alertbutler.alerts.writers import WriterSchemas, rubin_schema_dir, rubin_versions
from alertbutler.cli import main
from alertbutler.config import load_config
from alertbutler.replay.testing import write_ztf_archive, ztf_like_alerts, ztf_like_schema
from alertbutler.subscribe import open_stream, raw_decoder
from alertbutler.subscribe.service import FilterService

packet = pytest.importorskip("lsst.alert.packet")

#: ZTF schema versions, each with the candidate fields it lacks (so each is its own schema)
ZTF_VERSIONS = {"1.7": ("drb", "sgscore1", "ssnamenr"), "3.2": ("drb",), "3.3": (),
                "3.5": ("magzpsci",)}


def _normal(record: Any) -> str:
    """JSON text of a record as subscribe writes it (bytes as base64), keys sorted."""
    def conv(v: Any) -> Any:
        if isinstance(v, bytes):
            return base64.b64encode(v).decode()
        if isinstance(v, datetime.datetime):
            return v.isoformat()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v
    return json.dumps(conv(record), sort_keys=True)


def _read_jsonl(path: Path) -> list[str]:
    return [json.dumps(json.loads(line), sort_keys=True) for line in
            path.read_text().splitlines()]


def _varied(sample: dict[str, Any], writer_schema: dict[str, Any], n: int,
            rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` copies of a sample alert whose diaSource numbers are drawn at random (floats
    rounded to float32 where the schema says float), each with its own id."""
    source_type = next(f["type"] for f in writer_schema["fields"] if f["name"] == "diaSource")
    kinds = {}
    for f in source_type["fields"]:
        t = f["type"]
        t = next((b for b in t if b != "null"), None) if isinstance(t, list) else t
        if t in ("float", "double"):
            kinds[f["name"]] = t
    out = []
    for i in range(n):
        rec = copy.deepcopy(sample)
        src = rec["diaSource"]
        for name, t in kinds.items():
            value = float(rng.uniform(-0.5, 1.5))
            src[name] = float(np.float32(value)) if t == "float" else value
        ident = "alertId" if "alertId" in rec else "diaSourceId"
        rec[ident] = int(rec[ident]) + 1 + i
        out.append(rec)
    return out


def _rubin_archive(directory: Path, per_version: int = 6) -> list[dict[str, Any]]:
    """Every sample alert lsst-alert-packet ships, and ``per_version`` variations of each
    with random diaSource numbers, one container file each, oldest version first."""
    directory.mkdir()
    rng = np.random.default_rng(16)
    records: list[dict[str, Any]] = []
    root = rubin_schema_dir()
    assert root is not None
    for major, minor in rubin_versions():
        sample = root / str(major) / str(minor) / "sample_data" / "fakeAlert.avro"
        shutil.copy(sample, directory / f"{major:02d}_{minor}_a_sample.avro")
        with open(sample, "rb") as fh:
            reader = fastavro.reader(fh)
            writer_schema = reader.writer_schema
            samples = list(reader)
        records.extend(samples)
        made = _varied(samples[0], writer_schema, per_version, rng)
        buf = io.BytesIO()
        fastavro.writer(buf, fastavro.parse_schema(writer_schema), made, codec="deflate")
        (directory / f"{major:02d}_{minor}_b_varied.avro").write_bytes(buf.getvalue())
        buf.seek(0)
        records.extend(fastavro.reader(buf))  # as written
    return records


def _replay(bootstrap: str, source: Path, topic: str, schema_file: Path) -> None:
    assert main(["alerts", "replay", str(source), "--topic", topic, "--bootstrap", bootstrap,
                 "--partitions", "1", "--schema-file", str(schema_file), "--json"]) == 0


def test_every_rubin_schema_replayed_and_read_back(kafka_bootstrap: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    records = _rubin_archive(tmp_path / "rubin")
    assert len(records) == 7 * len(rubin_versions()) and len(rubin_versions()) >= 15
    topic = f"rubin-{uuid.uuid4().hex[:8]}"
    ids = tmp_path / "ids.json"
    _replay(kafka_bootstrap, tmp_path / "rubin", topic, ids)
    url = f"kafka://{kafka_bootstrap}/{topic}"
    capsys.readouterr()

    out = tmp_path / "all.jsonl"
    assert main(["subscribe", url, "--until-end", "--quiet", "--output", f"jsonl:{out}",
                 "--schema-file", str(ids)]) == 0
    assert _read_jsonl(out) == [_normal(r) for r in records]  # same count, same records

    # a field of Rubin's diaSource that ours lacks, in every version since 3.0
    kept = tmp_path / "kept.jsonl"
    assert main(["subscribe", url, "--until-end", "--quiet", "--output", f"jsonl:{kept}",
                 "--filter", "diaSource.ixxPSF > 0.5 and diaSource.ra >= 0"]) == 0
    brute = [_normal(r) for r in records if r["diaSource"]["ixxPSF"] is not None
             and r["diaSource"]["ixxPSF"] > 0.5 and r["diaSource"]["ra"] >= 0]
    assert 0 < len(brute) < len(records)
    assert _read_jsonl(kept) == brute

    # the error names the field and the schema that lacks it
    assert main(["subscribe", url, "--until-end", "--quiet", "--output",
                 f"jsonl:{tmp_path / 'x.jsonl'}", "--filter", "diaSource.dipoleAngle > 1"]) == 1
    err = capsys.readouterr().err  # Rubin 3.0 has no dipoleAngle; 11.1 has it
    assert "lsst.v3_0.alert alerts (schema id 300)" in err and \
        "unknown field 'diaSource.dipoleAngle'" in err

    # alerts dump reads the same archive through the same reader, and the topic
    assert main(["alerts", "dump", str(tmp_path / "rubin"), "--cutouts", "omit"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(records)
    assert main(["alerts", "dump", url, "--cutouts", "omit"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted({x["schema_id"] for x in lines}) == \
        [m * 100 + n for m, n in rubin_versions()]


def _ztf_archives(base: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    sources, records = [], []
    for i, (version, missing) in enumerate(ZTF_VERSIONS.items()):
        schema = ztf_like_schema(version)
        cand = schema["fields"][4]["type"]
        cand["fields"] = [f for f in cand["fields"] if f["name"] not in missing]
        recs = ztf_like_alerts(12, seed=20 + i, n_prv=3)
        for r in recs:
            r["schemavsn"] = version
            for name in missing:
                r["candidate"].pop(name)
        target = base / (f"ztf_{version}.tar.gz" if i % 2 else f"ztf_{version}")
        sources.append(write_ztf_archive(target, recs, schema=schema, tarball=bool(i % 2)))
        parsed = fastavro.parse_schema(schema)
        for r in sorted(recs, key=lambda r: r["candid"]):  # files in name order
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, parsed, r)
            buf.seek(0)
            records.append(fastavro.schemaless_reader(buf, parsed, None))  # as written
    return sources, records


def test_ztf_archives_of_every_schema_replayed_filtered_and_served(
        kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sources, records = _ztf_archives(tmp_path)
    topic = f"ztf-{uuid.uuid4().hex[:8]}"
    ids = tmp_path / "data" / "replay" / "local-schema-ids.json"  # the default place
    for source in sources:
        _replay(kafka_bootstrap, source, topic, ids)
    assert len(json.loads(ids.read_text())["schemas"]) == len(ZTF_VERSIONS)
    monkeypatch.setenv("ALERTBUTLER_GENERAL__DATA_DIR", str(tmp_path / "data"))
    url = f"kafka://{kafka_bootstrap}/{topic}"
    capsys.readouterr()

    out = tmp_path / "all.jsonl"
    assert main(["subscribe", url, "--until-end", "--quiet", "--output", f"jsonl:{out}"]) == 0
    assert _read_jsonl(out) == [_normal(r) for r in records]

    kept = tmp_path / "bright.jsonl"
    assert main(["subscribe", url, "--until-end", "--quiet", "--output", f"jsonl:{kept}",
                 "--filter", "candidate.magpsf < 19 and candidate.fid == 1"]) == 0
    brute = [_normal(r) for r in records
             if r["candidate"]["magpsf"] < 19 and r["candidate"]["fid"] == 1]
    assert 0 < len(brute) < len(records)
    assert _read_jsonl(kept) == brute

    # a field the 1.7 schema lacks: named with that schema
    assert main(["subscribe", url, "--until-end", "--quiet", "--output",
                 f"jsonl:{tmp_path / 'x.jsonl'}", "--filter", "candidate.drb > 0.5"]) == 1
    err = capsys.readouterr().err
    assert "unknown field 'candidate.drb'" in err and "ztf.alert alerts" in err

    assert main(["filter", "check", "--expr", "candidate.magpsf < 19"]) == 0
    assert "reads candidate.magpsf of ztf.alert" in capsys.readouterr().out
    assert main(["filter", "check", "--expr", "candidate.magpsff < 19"]) == 1
    assert "unknown field" in capsys.readouterr().err

    assert main(["alerts", "dump", str(sources[1]), "--cutouts", "omit"]) == 0
    assert [json.loads(x)["candid"] for x in capsys.readouterr().out.splitlines()] == \
        [r["candid"] for r in records[12:24]]

    target = f"{topic}-bright"
    spec = {"source": url, "group": f"g-{uuid.uuid4().hex[:6]}",
            "filters": {"bright": {"filter": "candidate.magpsf < 19", "topic": target}}}
    (tmp_path / "filters.yaml").write_text(yaml.safe_dump(spec))
    stats = FilterService(tmp_path / "filters.yaml", config=load_config(),
                          until_end=True).run()
    assert stats.undecodable == 0 and stats.kept == {"bright": sum(
        r["candidate"]["magpsf"] < 19 for r in records)}
    with open_stream(f"kafka://{kafka_bootstrap}/{target}", end="end",
                     decoder=raw_decoder) as stream:
        writers = WriterSchemas(local_ids=ids)  # each message by its own writer schema
        got = [fastavro.schemaless_reader(io.BytesIO(a.value[5:]), writers.get(
            int.from_bytes(a.value[1:5], "big")).parsed, None)["candid"] for a in stream]
    assert sorted(got) == sorted(r["candid"] for r in records
                                 if r["candidate"]["magpsf"] < 19)
