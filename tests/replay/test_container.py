"""Container files written from ready-made bodies, read back by fastavro and by slicing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

from alertbutler.alerts import CURRENT_ALERT_SCHEMA_ID, encode_alerts, schema_info
from alertbutler.alerts.fake import fake_alerts
from alertbutler.replay import (
    AlertFormat,
    CorruptFileError,
    SchemaIds,
    UnknownAlertSchemaError,
    WriterSchema,
)
from alertbutler.replay.container import (
    INDEX_KEY,
    ContainerReader,
    projection,
    split_by_sizes,
    write_container,
)
from alertbutler.replay.schema_ids import LOCAL_ID_BASE, classify
from alertbutler.replay.testing import ztf_like_schema


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    return encode_alerts(fake_alerts(12, seed=30, cutout_size=None, n_history=3))


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_written_files_read_back_everywhere(tmp_path: Path, messages: list[bytes],
                                            codec: str) -> None:
    text = schema_info(CURRENT_ALERT_SCHEMA_ID).text
    bodies = [m[5:] for m in messages]
    path = tmp_path / f"a.{codec}.avro"
    index = {"sizes": [len(b) for b in bodies]}
    n = write_container(path, text, bodies, codec=codec, block_bytes=3000,
                        metadata={INDEX_KEY: json.dumps(index)})
    assert n == 12
    with open(path, "rb") as fh:  # any Avro reader
        records = list(fastavro.reader(fh))
    assert [r["diaSourceId"] for r in records] == \
        [fastavro.schemaless_reader(io.BytesIO(b), fastavro.parse_schema(json.loads(text)),
                                    None)["diaSourceId"] for b in bodies]
    with open(path, "rb") as fh:  # and our slicing gives the very bytes back
        reader = ContainerReader(fh, str(path))
        got, i = [], 0
        for block in reader.blocks():
            got += split_by_sizes(block, index["sizes"][i:i + block.count], str(path))
            i += block.count
    assert got == bodies
    # the same input makes the same file (recordings are compared by checksum)
    again = tmp_path / "again.avro"
    write_container(again, text, bodies, codec=codec, block_bytes=3000,
                    metadata={INDEX_KEY: json.dumps(index)})
    assert again.read_bytes() == path.read_bytes()


def test_index_that_does_not_match_is_corrupt(tmp_path: Path, messages: list[bytes]) -> None:
    text = schema_info(CURRENT_ALERT_SCHEMA_ID).text
    bodies = [m[5:] for m in messages]
    path = tmp_path / "bad-index.avro"
    wrong = {"sizes": [len(b) + 1 for b in bodies]}
    write_container(path, text, bodies, metadata={INDEX_KEY: json.dumps(wrong)})
    with open(path, "rb") as fh:
        reader = ContainerReader(fh, str(path))
        block = next(reader.blocks())
        with pytest.raises(CorruptFileError, match="bad-index.avro"):
            split_by_sizes(block, wrong["sizes"][:block.count], str(path))


def test_projection_keeps_only_the_named_paths() -> None:
    schema = json.loads(schema_info(CURRENT_ALERT_SCHEMA_ID).text)
    proj = projection(schema, ["diaSourceId", "diaSource.midpointMjdTai"])
    assert [f["name"] for f in proj["fields"]] == ["diaSourceId", "diaSource"]
    source = proj["fields"][1]["type"]
    assert [f["name"] for f in source["fields"]] == ["midpointMjdTai"]


def test_classification_and_ids() -> None:
    ours = classify(json.loads(schema_info(CURRENT_ALERT_SCHEMA_ID).text), "f")
    assert ours.format is AlertFormat.ALERTBUTLER and ours.fixed_id == CURRENT_ALERT_SCHEMA_ID
    ztf = classify(ztf_like_schema(), "f")
    assert ztf.format is AlertFormat.ZTF and ztf.fixed_id is None
    assert LOCAL_ID_BASE <= ztf.local_id < 2**31
    assert classify(ztf_like_schema(), "g").local_id == ztf.local_id  # deterministic
    other = classify(ztf_like_schema("3.4") | {"doc": "another doc"}, "f")
    assert other.local_id == ztf.local_id  # docs are not part of the canonical form
    ids = SchemaIds()
    assert ids.wire_id(ours, "t") == CURRENT_ALERT_SCHEMA_ID
    assert ids.wire_id(ztf, "t") == ztf.local_id
    assert set(ids.local_ids()) == {ztf.local_id}
    # two different schemas on one local id are refused, not mixed up
    clash = WriterSchema(AlertFormat.ZTF, "x", "{}", ztf.fingerprint + LOCAL_ID_BASE)
    assert clash.local_id == ztf.local_id
    with pytest.raises(UnknownAlertSchemaError, match="collision"):
        ids.wire_id(clash, "t")
