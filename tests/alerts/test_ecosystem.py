"""Compatibility with Rubin's alert format, using the official lsst-alert-packet package."""

from __future__ import annotations

import io
from pathlib import Path

import fastavro
import pytest

from alertbutler.alerts import decode_alert, encode_alerts, split_header
from alertbutler.alerts.archive import read_alert_file, write_alert_file
from alertbutler.alerts.codec import Codec
from alertbutler.alerts.cutouts import read_cutout
from alertbutler.alerts.fake import fake_alerts

packet = pytest.importorskip("lsst.alert.packet")


def _sample_files() -> list[Path]:
    root = Path(packet.schema.get_schema_root())
    return sorted(root.glob("*/*/sample_data/fakeAlert.avro"))


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return fake_alerts(25, seed=11, cutout_size=30, cutout_pool=3)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_rubin_v11_reader_schema_decodes_our_alerts(records: list[dict], version: str) -> None:
    rubin = packet.Schema.from_file()  # the package's latest: lsst.v11_1
    assert rubin.definition["name"].endswith("v11_1.alert")
    codec = Codec()
    # 1.2's own field, set: Rubin's reader skips it and still reads every field after it
    records = [{**r, "diaSource": {**r["diaSource"], "psfModel_flag_degraded": True}}
               for r in records]
    for record, message in zip(records, encode_alerts(records), strict=True):
        if version != "1.2":
            message = codec.encode(record, f"alert:{version}")
        assert codec.schema_of(message).version_text == version
        _, body = split_header(message)
        writer = codec.schema_of(message).parsed
        got = fastavro.schemaless_reader(io.BytesIO(body), writer, rubin.definition)
        assert got["diaSourceId"] == record["diaSourceId"]
        assert got["diaSource"]["psfFlux"] == record["diaSource"]["psfFlux"]
        assert got["diaSource"]["ra"] == record["diaSource"]["ra"]
        assert [s["diaSourceId"] for s in got["prvDiaSources"]] == \
            [s["diaSourceId"] for s in record["prvDiaSources"]]
        assert got["diaObject"]["nDiaSources"] == record["diaObject"]["nDiaSources"]
        assert got["diaSource"]["pixelFlags_suspect"] == record["diaSource"]["pixelFlags_suspect"]
        assert got["diaSource"]["glint_trail"] is None
        assert "psfModel_flag_degraded" not in got["diaSource"]
        assert got["cutoutDifference"] == record["cutoutDifference"]
        # Fields Rubin has and we do not fill come back as their defaults.
        assert got["mpc_orbits"] is None and got["diaSource"]["trailFlux"] is None


def test_rubin_schema_serializer_reads_our_container_files(records: list[dict],
                                                           tmp_path: Path) -> None:
    path = tmp_path / "alerts.avro"
    assert write_alert_file(path, records) == len(records)
    rubin = packet.Schema.from_file()
    with open(path, "rb") as fh:
        got = list(fastavro.reader(fh, reader_schema=rubin.definition))
    assert [g["diaSourceId"] for g in got] == [r["diaSourceId"] for r in records]
    assert list(read_alert_file(path)) == records


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: "/".join(p.parts[-4:-2]))
def test_we_read_rubin_sample_alerts(path: Path) -> None:
    got = list(read_alert_file(path))
    assert got and all("diaSource" in r and r["diaSource"]["diaSourceId"] for r in got)


def test_rubin_v11_sample_resolves_to_our_alert_schema() -> None:
    root = Path(packet.schema.get_schema_root())
    for version in ("11/0", "11/1"):
        got = list(read_alert_file(root / version / "sample_data" / "fakeAlert.avro",
                                   reader="alert"))
        assert got and got[0]["diaSource"]["diaSourceId"]
        # and once in our reader's form it encodes and decodes in our wire format
        assert decode_alert(encode_alerts(got)[0]) == got[0]


def test_rubin_style_cutout_reading(records: list[dict]) -> None:
    from astropy.nddata import CCDData

    ccd = CCDData.read(io.BytesIO(records[0]["cutoutDifference"]), format="fits")
    ours = read_cutout(records[0]["cutoutDifference"])
    assert ccd.data.shape == (30, 30) and (ccd.data == ours.flux).all()
    assert type(ccd.uncertainty).__name__ == "VarianceUncertainty"
    assert (ccd.uncertainty.array == ours.variance).all()
    assert ccd.wcs.wcs.ctype[0] == "RA---TAN"
