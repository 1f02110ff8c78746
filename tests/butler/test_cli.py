"""The ``alertbutler butler`` verbs, end to end on SQLite and PostgreSQL registries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alertbutler.butler import Butler
from alertbutler.butler.testing import write_raw
from alertbutler.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["butler", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verbs(tmp_path: Path, registry_url: str,
                   capsys: pytest.CaptureFixture[str]) -> None:
    repo = str(tmp_path / "repo")
    code, out, _ = run(capsys, "create", repo, "--registry-url", registry_url)
    assert code == 0 and "created butler repository" in out
    code, out, _ = run(capsys, "register-dataset-type", repo, "bias", "Image", "detector",
                       "--calibration")
    assert code == 0 and "registered" in out
    code, _, err = run(capsys, "register-dataset-type", repo, "bias", "Exposure", "detector")
    assert code == 1 and "registered differently" in err

    incoming = tmp_path / "in"
    incoming.mkdir()
    for det in range(2):
        write_raw(incoming / f"raw_{det}.fits", exposure=7, detector=det)
    write_raw(incoming / "bad.fits", exposure=7, detector=5, drop=("DATE-OBS",))
    code, out, err = run(capsys, "ingest", repo, *map(str, sorted(incoming.iterdir())),
                         "--run", "raw/n1")
    assert code == 1 and "ingested 2 file(s)" in out
    assert "bad.fits" in err and "DATE-OBS is missing" in err

    code, out, _ = run(capsys, "query-datasets", repo, "raw", "--collections", "raw/n1",
                       "--where", "detector=1", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["data_id"]["detector"] for r in rows] == [1]
    code, out, _ = run(capsys, "query-datasets", repo, "raw", "--collections", "raw/n1",
                       "--region", "150,2,0.5", "--begin", "2026-11-20T02:59:00",
                       "--end", "2026-11-20T03:01:00")
    assert code == 0 and out.count("raw/n1") == 2

    with Butler(repo, run="calib/v1") as b:
        b.put(np.ones((3, 3), np.float32), "bias", instrument="SimCam", detector=0)
    code, out, _ = run(capsys, "certify", repo, "bias", "--run", "calib/v1", "--collection",
                       "calib", "--begin", "2026-11-01T00:00:00")
    assert code == 0 and "certified 1 bias" in out
    code, _, err = run(capsys, "certify", repo, "bias", "--run", "calib/v1", "--collection",
                       "calib", "--begin", "2026-11-10T00:00:00")
    assert code == 1 and "overlaps" in err
    code, out, _ = run(capsys, "query-collections", repo, "--type", "CALIBRATION")
    assert out.split() == ["calib", "CALIBRATION"]

    local = str(tmp_path / "local")
    assert run(capsys, "create", local, "--registry-url", "")[0] == 0
    code, out, _ = run(capsys, "transfer", repo, local, "bias", "--collections", "calib",
                       "--calibration-collections", "calib")
    assert code == 0 and "transferred 1 of 1" in out
    with Butler(local, collections="calib") as b:
        assert b.get("bias", instrument="SimCam", detector=0,
                     timespan="2026-11-20T00:00:00")[0, 0] == 1

    code, out, _ = run(capsys, "export", repo, str(tmp_path / "exp"), "raw", "--collections",
                       "raw/n1")
    assert code == 0 and "exported 2" in out
    code, out, _ = run(capsys, "import", local, str(tmp_path / "exp"))
    assert code == 0 and "imported 2" in out
    code, out, _ = run(capsys, "remove-runs", local, "raw/n1")
    assert code == 0 and "removed 1 run(s) and 2 dataset(s)" in out
