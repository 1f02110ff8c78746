"""``alertbutler night reconcile`` on a main-job night: clean, then one alert removed."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from alertbutler.cli import main
from alertbutler.night.main_job import MainJobResult
from tests.portal.conftest import night_dir

pytestmark = pytest.mark.slow


def _copy_night(result: MainJobResult, dest: Path) -> Path:
    """The night's ledger, archive and L1 database, copied (the ledger pointed at the copy)."""
    src = night_dir(result)
    root = dest / "mainjob"
    shutil.copytree(src / "night", root / "night")
    for f in src.glob("l1db.sqlite3*"):
        shutil.copy2(f, root / f.name)
    ledger = root / "night" / "ledger.json"
    data = json.loads(ledger.read_text())
    data["l1db_url"] = f"sqlite:///{root / 'l1db.sqlite3'}"
    ledger.write_text(json.dumps(data))
    return root


def test_clean_night_reconciles_by_default_from_the_data_directory(
        portal_night: MainJobResult, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTBUTLER_GENERAL__DATA_DIR", str(night_dir(portal_night).parent))
    code = main(["night", "reconcile", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["matches"] is True
    rows = out["visit_detectors"]
    assert len(rows) == 6 and sum(r["in_l1db"] for r in rows) == \
        portal_night.summary["alerts_published"] > 0
    assert all(r["produced"] == r["acknowledged"] == r["on_topic"] == r["in_l1db"]
               for r in rows)


def test_one_alert_removed_from_the_l1_database_is_named(
        portal_night: MainJobResult, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy_night(portal_night, tmp_path)
    (visit, detector), status = next((k, s) for k, s in sorted(portal_night.statuses.items())
                                     if s.alert_ids)
    with sqlite3.connect(root / "l1db.sqlite3") as conn:
        deleted = conn.execute('DELETE FROM "DiaSource" WHERE "diaSourceId" = ?',
                               (status.alert_ids[0],)).rowcount
    assert deleted == 1

    code = main(["night", "reconcile", str(root)])
    captured = capsys.readouterr()
    assert code == 1
    assert "MISMATCH" in captured.out
    mismatches = [line for line in captured.err.splitlines() if line.startswith("mismatch:")]
    assert mismatches == [f"mismatch: visit {visit} detector {detector}: 1 acknowledged alerts "
                          "are missing from the L1 database"]


def test_a_directory_without_a_ledger_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["night", "reconcile", str(tmp_path)]) == 2
    assert "no night ledger" in capsys.readouterr().err
