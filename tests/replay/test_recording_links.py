"""A recording or alert archive is a tree we did not write: links in it are refused when it is
opened (``night verify``), never followed (issue 15, defects 1 and 10)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from alertbutler.cli import main
from alertbutler.replay import AlertSource, Recording, RecordingError, SourceError
from alertbutler.replay.testing import write_ztf_archive, ztf_like_alerts
from tests.replay.test_recording import _make


def _link_to_a_copy(target: Path, outside: Path) -> None:
    """Replace ``target`` by a link to a copy of itself outside the recording: the same bytes,
    so size and sha256 still match the manifest; only the link gives it away."""
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)


def _reseal(root: Path) -> None:
    """Rewrite the recording manifest's sizes and checksums after an edit (as an attacker
    who edits a recording would)."""
    manifest = json.loads((root / "manifest.json").read_text())
    for path in (p for p in root.rglob("*") if p.is_file() and p != root / "manifest.json"):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        manifest["files"][rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("rel", ["raws/simcam/1001/0.fits", "calibs/bias/bias_det000.fits",
                                 "alerts/visit-1002.avro", "schedule.json"])
def test_a_linked_file_is_refused_on_open(tmp_path: Path, rel: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _make(tmp_path)
    _link_to_a_copy(path / rel, tmp_path / "outside.bin")
    with pytest.raises(RecordingError, match=f"{rel}: a symbolic link inside the recording"):
        Recording.open(path)
    assert main(["night", "verify", str(path)]) == 1
    assert f"{rel}: a symbolic link" in capsys.readouterr().err
    with pytest.raises(RecordingError, match="symbolic link"):
        AlertSource(path)


def test_a_linked_directory_is_refused(tmp_path: Path) -> None:
    path, _ = _make(tmp_path)
    (path / "calibs").rename(tmp_path / "calibs-outside")
    (path / "calibs").symlink_to(tmp_path / "calibs-outside", target_is_directory=True)
    with pytest.raises(RecordingError, match="calibs: a symbolic link"):
        Recording.open(path)


def test_a_link_member_of_a_tarball_is_refused(tmp_path: Path) -> None:
    """A link inside the tarball pointing inside it passes tarfile's "data" filter: refused
    by name all the same."""
    path, _ = _make(tmp_path)
    raw = "raws/simcam/1001/0.fits"
    (path / "copy.bin").write_bytes((path / raw).read_bytes())
    tarball = tmp_path / "night.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(path / "manifest.json", arcname="manifest.json")
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            name = p.relative_to(path).as_posix()
            if name == raw:
                info = tarfile.TarInfo(raw)
                info.type, info.linkname = tarfile.SYMTYPE, "../../../copy.bin"
                tar.addfile(info)
            elif name != "manifest.json":
                tar.add(p, arcname=name)
    with pytest.raises(RecordingError, match=f"night.tar:{raw}: a link or special file"):
        Recording.open(tarball)


def test_an_escaping_path_in_the_calibration_export_is_refused_at_verify(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _make(tmp_path)
    export = {"version": 1, "dataset_types": [], "dimension_records": [], "runs": ["calib"],
              "datasets": [{"id": "6f1c2b8e-0000-4000-8000-000000000001", "dataset_type": "bias",
                            "run": "calib", "data_id": {}, "path": "../../../../etc/passwd",
                            "format": None}],
              "certifications": []}
    (path / "calibs" / "manifest.json").write_text(json.dumps(export))
    _reseal(path)
    with pytest.raises(RecordingError, match=r"calibs/manifest.json: calibration export "
                                             r"refused: .*datasets\[0\]"):
        Recording.open(path)
    assert main(["night", "verify", str(path)]) == 1
    assert "datasets[0]" in capsys.readouterr().err


def test_a_link_in_a_ztf_directory_archive_is_refused(tmp_path: Path) -> None:
    directory = write_ztf_archive(tmp_path / "night", ztf_like_alerts(3, seed=2), tarball=False)
    first = sorted(directory.glob("*.avro"))[0]
    _link_to_a_copy(first, tmp_path / "outside.avro")
    with pytest.raises(SourceError, match=f"{first.name}: a symbolic link inside the alert"):
        AlertSource(directory)
