"""Repo-to-repo transfer (worker preload) and export/import through a manifest directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alertbutler.butler import Butler, ButlerError, Timespan, UnsafePathError, healpix_of
from alertbutler.butler.testing import make_exposure

DET = {"instrument": "SimCam", "detector": 1}


def _central(butler: Butler) -> Butler:
    butler.register_dataset_type("bias", ["detector"], "Image", is_calibration=True)
    butler.register_dataset_type("template", ["healpix", "band"], "Exposure")
    butler.register_dataset_type("calexp", ["visit", "detector"], "Exposure")
    for det in range(3):
        ref = butler.put(np.full((4, 4), det, np.float32), "bias", {**DET, "detector": det},
                         run="calib/v1")
        butler.certify("calib", [ref], Timespan.of("2026-11-01", None))
    for pix in (healpix_of(150.0, 2.0), healpix_of(160.0, 2.0)):
        butler.put(make_exposure((8, 8)), "template", healpix=pix, band="r", run="templates")
    butler.put(make_exposure((8, 8)), "calexp", {**DET, "visit": 1000})
    return butler


def test_worker_preloads_calibs_and_templates(butler: Butler, tmp_path: Path) -> None:
    central = _central(butler)
    local = Butler.create(tmp_path / "local")  # workers keep SQLite locally
    try:
        footprint = central.query_dimension_records(
            "visit", where={"instrument": "SimCam", "visit": 1000})[0].region
        refs = (central.query_datasets("bias", "calib", where={"detector": 1})
                + central.query_datasets("template", "templates", region=footprint,
                                         where={"band": "r"})
                + central.query_datasets("calexp", "test/run"))
        assert len(refs) == 3
        added = local.transfer_from(central, refs, calibration_collections=["calib"])
        assert {r.id for r in added} == {r.id for r in refs}
        got = local.get("bias", DET, collections="calib", timespan="2026-11-20T03:00:00")
        assert got[0, 0] == 1
        pix = healpix_of(150.0, 2.0)
        assert local.get("template", healpix=pix, band="r", collections="templates").image.shape \
            == (8, 8)
        rec = local.get_dimension_record("visit", {"instrument": "SimCam", "visit": 1000})
        assert rec.region == footprint and rec.physical_filter == "r_sim"
        assert local.get_dimension_record("physical_filter", {
            "instrument": "SimCam", "physical_filter": "r_sim"}).band == "r"
        # a second transfer is a no-op
        assert local.transfer_from(central, refs, calibration_collections=["calib"]) == []
    finally:
        local.close()


def test_hardlinked_transfer_keeps_the_recorded_checksum(
        butler: Butler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hard link is the same bytes: its record reuses the source's checksum (no re-read),
    and a file corrupted afterwards still fails verification on either side."""
    from alertbutler.butler import ChecksumError
    from alertbutler.butler.datastores import file as file_module

    central = _central(butler)
    refs = central.query_datasets("template", "templates")
    local = Butler.create(tmp_path / "local")
    hashed: list[Path] = []
    original = file_module.file_checksum

    def counting(path: Path, *args: object) -> str:
        hashed.append(Path(path))
        return original(path, *args)

    try:
        with monkeypatch.context() as m:
            m.setattr(file_module, "file_checksum", counting)
            local.transfer_from(central, refs, transfer="hardlink")
        assert hashed == []
        for ref in refs:
            mine = local.file_datastore.artifact_info(ref)
            theirs = central.file_datastore.artifact_info(ref)
            assert (mine["checksum"], mine["hash"], mine["size"]) == \
                (theirs["checksum"], theirs["hash"], theirs["size"])
            assert local.get(ref).image.shape == (8, 8)
        path = local.datastore.artifact_path(refs[0])
        assert path.stat().st_nlink == 2
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        with open(path, "r+b") as f:  # in place: both names see it
            f.write(data)
        for repo in (local, central):
            with pytest.raises(ChecksumError, match="corrupted"):
                repo.get(refs[0])
    finally:
        local.close()


def test_export_import_roundtrip(butler: Butler, tmp_path: Path) -> None:
    central = _central(butler)
    refs = central.query_datasets("bias", "calib") + central.query_datasets("calexp",
                                                                            "test/run")
    manifest = central.export(tmp_path / "night", refs, calibration_collections=["calib"])
    data = json.loads(manifest.read_text())
    assert len(data["datasets"]) == 4 and len(data["certifications"]) == 3
    other = Butler.create(tmp_path / "replay")
    try:
        added = other.import_(tmp_path / "night")
        assert {r.id for r in added} == {r.id for r in refs}
        exp = other.get("calexp", {**DET, "visit": 1000}, collections="test/run")
        original = central.get("calexp", {**DET, "visit": 1000})
        np.testing.assert_array_equal(exp.image, original.image)
        assert other.get("bias", {**DET, "detector": 2}, collections="calib",
                         timespan="2026-11-05T00:00:00")[0, 0] == 2
        assert other.import_(tmp_path / "night") == []
    finally:
        other.close()


def test_import_refuses_hostile_manifest(butler: Butler, tmp_path: Path) -> None:
    central = _central(butler)
    refs = central.query_datasets("calexp", "test/run")
    manifest = central.export(tmp_path / "x", refs)
    data = json.loads(manifest.read_text())
    data["datasets"][0]["path"] = "../../../etc/passwd"
    manifest.write_text(json.dumps(data))
    other = Butler.create(tmp_path / "y")
    try:
        with pytest.raises(UnsafePathError):
            other.import_(tmp_path / "x")
        (tmp_path / "x" / "manifest.json").write_text("{not json")
        with pytest.raises(ButlerError, match="not a readable export manifest"):
            other.import_(tmp_path / "x")
    finally:
        other.close()


def test_a_file_export_asks_nothing_first_and_returns_only_what_it_added(
        butler: Butler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's export (files alone) skips the datasets the destination already has in the
    insert itself: no existing-id query, the files already there untouched, and only the new
    datasets returned."""
    from alertbutler.butler.registry.registry import Registry

    central = _central(butler)
    templates = central.query_datasets("template", "templates")
    local = Butler.create(tmp_path / "local")
    asked: list[int] = []
    original = Registry.existing_ids

    def counting(self: Registry, ids: object) -> set:
        asked.append(1)
        return original(self, ids)  # type: ignore[arg-type]

    try:
        monkeypatch.setattr(Registry, "existing_ids", counting)
        assert {r.id for r in local.transfer_from(central, templates[:1])} == {templates[0].id}
        first = local.datastore.artifact_path(templates[0])
        inode = first.stat().st_ino
        added = local.transfer_from(central, templates)
        assert [r.id for r in added] == [templates[1].id]
        assert first.stat().st_ino == inode  # the dataset it had was not placed again
        assert local.transfer_from(central, templates) == []
        assert asked == []
        assert {r.id for r in local.query_datasets("template", "templates")} == \
            {r.id for r in templates}
    finally:
        local.close()
