"""Import of an export this repo did not write: links refused, manifests checked up front,
all or nothing (issue 15, defects 1 and 9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from alertbutler.butler import (
    Butler,
    CalibrationOverlapError,
    FormatterError,
    LinkRefusedError,
    ManifestError,
    Timespan,
)

DET = {"instrument": "SimCam", "detector": 1}


def _export(butler: Butler, out: Path) -> Path:
    """Three biases certified in ``calib`` and a calexp, exported to ``out``."""
    butler.register_dataset_type("bias", ["detector"], "Image", is_calibration=True)
    for det in range(3):
        ref = butler.put(np.full((4, 4), det, np.float32), "bias", {**DET, "detector": det},
                         run="calib/v1")
        butler.certify("calib", [ref], Timespan.of("2026-11-01", None))
    refs = butler.query_datasets("bias", "calib")
    return butler.export(out, refs, calibration_collections=["calib"])


def _repo_files(repo: Butler) -> list[str]:
    return sorted(str(p.relative_to(repo.root)) for p in repo.root.rglob("*")
                  if p.is_file() or p.is_symlink()
                  if not p.name.startswith(("registry", "butler.yaml")))


def _nothing_imported(repo: Butler) -> None:
    assert repo.query_collections("calib*") == []
    assert [t.name for t in repo.registry.dataset_types()] == []
    assert _repo_files(repo) == []


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("not for the repo")
    return path


@pytest.mark.parametrize("transfer", ["copy", "hardlink", "move", "symlink"])
def test_a_linked_file_in_an_export_is_refused_before_anything_is_written(
        butler: Butler, tmp_path: Path, secret: Path, transfer: str) -> None:
    manifest = _export(butler, tmp_path / "export")
    rel = json.loads(manifest.read_text())["datasets"][1]["path"]
    victim = tmp_path / "export" / "files" / rel
    victim.unlink()
    victim.symlink_to(secret)
    other = Butler.create(tmp_path / "other")
    try:
        with pytest.raises(LinkRefusedError, match=str(victim)):
            other.import_(tmp_path / "export", transfer=transfer)
        _nothing_imported(other)
        assert victim.is_symlink() and secret.read_text() == "not for the repo"
    finally:
        other.close()


def test_a_linked_directory_in_an_export_is_refused(butler: Butler, tmp_path: Path,
                                                     secret: Path) -> None:
    _export(butler, tmp_path / "export")
    outside = tmp_path / "outside"
    (tmp_path / "export" / "files" / "calib").rename(outside)
    (tmp_path / "export" / "files" / "calib").symlink_to(outside, target_is_directory=True)
    other = Butler.create(tmp_path / "other")
    try:
        with pytest.raises(LinkRefusedError, match="files/calib: a symbolic link"):
            other.import_(tmp_path / "export", transfer="hardlink")
        _nothing_imported(other)
    finally:
        other.close()


def test_a_linked_manifest_is_refused(butler: Butler, tmp_path: Path) -> None:
    manifest = _export(butler, tmp_path / "export")
    real = tmp_path / "real.json"
    manifest.rename(real)
    manifest.symlink_to(real)
    other = Butler.create(tmp_path / "other")
    try:
        with pytest.raises(LinkRefusedError, match="manifest.json"):
            other.import_(tmp_path / "export")
    finally:
        other.close()


def test_the_cli_names_the_link_and_fails(butler: Butler, tmp_path: Path, secret: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from alertbutler.cli import main

    manifest = _export(butler, tmp_path / "export")
    victim = tmp_path / "export" / "files" / json.loads(manifest.read_text())["datasets"][0][
        "path"]
    victim.unlink()
    victim.symlink_to(secret)
    Butler.create(tmp_path / "other").close()
    assert main(["butler", "import", str(tmp_path / "other"), str(tmp_path / "export")]) == 1
    assert f"{victim}: a symbolic link" in capsys.readouterr().err


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.pop("dataset_types"), r"dataset_types: missing"),
    (lambda m: m.update(datasets={}), r"datasets: must be a list"),
    (lambda m: m["datasets"][1].pop("path"), r"datasets\[1\]: missing key 'path'"),
    (lambda m: m["datasets"][2].update(id="nope"), r"datasets\[2\]: badly formed"),
    (lambda m: m["datasets"][0].update(dataset_type="flat"),
     r"datasets\[0\]: dataset type 'flat' is not among"),
    (lambda m: m["dataset_types"][0].update(storage_class="Nope"), r"dataset_types\[0\]"),
    (lambda m: m["dimension_records"][0].pop("values"),
     r"dimension_records\[0\]: missing key 'values'"),
    (lambda m: m["certifications"][1].update(timespan="always"),
     r"certifications\[1\]: timespan must be"),
    (lambda m: m["certifications"][0].update(dataset_id="00000000-0000-0000-0000-000000000000"),
     r"certifications\[0\]: dataset_id .* is not among"),
])
def test_a_malformed_manifest_names_the_key_and_imports_nothing(
        butler: Butler, tmp_path: Path, edit: object, message: str) -> None:
    manifest = _export(butler, tmp_path / "export")
    data = json.loads(manifest.read_text())
    edit(data)  # type: ignore[operator]
    manifest.write_text(json.dumps(data))
    other = Butler.create(tmp_path / "other")
    try:
        with pytest.raises(ManifestError, match=message):
            other.import_(tmp_path / "export")
        _nothing_imported(other)
    finally:
        other.close()


def test_a_missing_file_names_the_entry(butler: Butler, tmp_path: Path) -> None:
    manifest = _export(butler, tmp_path / "export")
    rel = json.loads(manifest.read_text())["datasets"][2]["path"]
    (tmp_path / "export" / "files" / rel).unlink()
    other = Butler.create(tmp_path / "other")
    try:
        with pytest.raises(ManifestError, match=r"datasets\[2\]: file .* is missing"):
            other.import_(tmp_path / "export")
        _nothing_imported(other)
    finally:
        other.close()


@pytest.mark.parametrize("transfer", ["copy", "move"])
def test_an_import_failing_midway_is_undone_whole(butler: Butler, tmp_path: Path,
                                                  transfer: str) -> None:
    """The last dataset's format is unknown: found only when its file is placed, after the
    first two were; nothing stays (registry rows, files), and moved files are put back."""
    manifest = _export(butler, tmp_path / "export")
    data = json.loads(manifest.read_text())
    data["datasets"][2]["format"] = "no-such-format"
    manifest.write_text(json.dumps(data))
    before = sorted(p.name for p in (tmp_path / "export").rglob("*"))
    other = Butler.create(tmp_path / "other")
    try:
        with pytest.raises(FormatterError):
            other.import_(tmp_path / "export", transfer=transfer)
        _nothing_imported(other)
        assert sorted(p.name for p in (tmp_path / "export").rglob("*")) == before
        # the repo is still usable, and a good import goes through afterwards
        data["datasets"][2]["format"] = data["datasets"][0]["format"]
        manifest.write_text(json.dumps(data))
        assert len(other.import_(tmp_path / "export", transfer=transfer)) == 3
        assert other.get("bias", {**DET, "detector": 2}, collections="calib",
                         timespan="2026-11-05T00:00:00")[0, 0] == 2
    finally:
        other.close()


def test_a_certification_conflict_undoes_the_import(butler: Butler, tmp_path: Path) -> None:
    _export(butler, tmp_path / "export")
    other = Butler.create(tmp_path / "other")
    try:
        other.register_dataset_type("bias", ["detector"], "Image", is_calibration=True)
        mine = other.put(np.zeros((4, 4), np.float32), "bias", {**DET, "detector": 1},
                         run="mine")
        other.certify("calib", [mine], Timespan.of("2026-10-01", None))
        with pytest.raises(CalibrationOverlapError):
            other.import_(tmp_path / "export")
        assert [r.ref.id for r in other.certifications("calib")] == [mine.id]
        assert other.query_collections("calib/*") == []
        assert not any("calib/v1" in f for f in _repo_files(other))
        assert os.path.exists(other.datastore.artifact_path(mine))
    finally:
        other.close()
