"""Alert assembly, comparison without processing times, quality figures and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertbutler.alerts import decode_alert, encode_alert
from alertbutler.prompt.packaging import assemble_alert, complete, without_processing_times
from alertbutler.prompt.quality import evaluate
from alertbutler.prompt.report import REQUIRED_KEYS, ReportData, write_report


def _source(sid: int, mjd: float, **extra: object) -> dict:
    return {"diaSourceId": sid, "visit": 1, "detector": 0, "midpointMjdTai": mjd,
            "ra": 10.0, "dec": -5.0, "x": 1.0, "y": 2.0, "psfNdata": 9, "trailNdata": 0,
            "dipoleNdata": 0, "timeProcessedMjdTai": 61000.5, "bboxSize": 3, **extra}


def test_complete_fills_nullable_fields_and_names_a_missing_required_one() -> None:
    record = complete("diaSource", _source(1, 61000.0))
    assert record["psfFlux"] is None and record["diaObjectId"] is None
    bad = _source(1, 61000.0)
    del bad["bboxSize"]
    with pytest.raises(KeyError, match="bboxSize"):
        complete("diaSource", bad)


def test_assembled_alert_encodes_and_history_is_sorted() -> None:
    history = [_source(3, 61000.2), _source(2, 61000.1)]
    alert = assemble_alert(dia_source=_source(5, 61000.3, diaObjectId=2),
                           dia_object=None, prv_sources=history, prv_forced=[],
                           cutouts=(None, None, None))
    assert [s["diaSourceId"] for s in alert["prvDiaSources"]] == [2, 3]
    assert decode_alert(encode_alert(alert))["diaSourceId"] == 5
    later = json.loads(json.dumps(alert))
    later["diaSource"]["timeProcessedMjdTai"] = 61001.0
    later["prvDiaSources"][0]["timeProcessedMjdTai"] = 61002.0
    assert without_processing_times(later) == without_processing_times(alert)
    later["diaSource"]["ra"] = 11.0
    assert without_processing_times(later) != without_processing_times(alert)


def test_quality_counts_bright_truth_and_matched_alerts() -> None:
    arcsec = 1 / 3600
    truth = [
        {"visit": 1, "detector": 0, "kind": "transient", "object_id": 1, "ra": 10.0,
         "dec": 0.0, "x": 0, "y": 0, "diff_flux_njy": 1000.0, "diff_snr": 50.0, "trail_px": 0},
        {"visit": 1, "detector": 0, "kind": "variable", "object_id": 2, "ra": 10.1,
         "dec": 0.0, "x": 0, "y": 0, "diff_flux_njy": 100.0, "diff_snr": 12.0, "trail_px": 0},
        {"visit": 1, "detector": 0, "kind": "mover", "object_id": 3, "ra": 10.2, "dec": 0.0,
         "x": 0, "y": 0, "diff_flux_njy": 500.0, "diff_snr": 30.0, "trail_px": 40.0},
        {"visit": 2, "detector": 0, "kind": "transient", "object_id": 4, "ra": 11.0,
         "dec": 0.0, "x": 0, "y": 0, "diff_flux_njy": 900.0, "diff_snr": 40.0, "trail_px": 0},
    ]
    alerts = [
        {"visit": 1, "detector": 0, "ra": 10.0 + 0.1 * arcsec, "dec": 0.0, "psfFlux": 1010.0},
        {"visit": 1, "detector": 0, "ra": 10.2 + 3.0 * arcsec, "dec": 0.0, "psfFlux": 480.0},
        {"visit": 1, "detector": 0, "ra": 10.5, "dec": 0.0, "psfFlux": 50.0},
    ]
    q = evaluate(alerts, truth, processed=[(1, 0)])
    assert (q.n_truth_bright, q.n_truth_bright_found) == (2, 1)  # visit 2 not processed
    assert q.completeness == 0.5 and q.missed[0]["object_id"] == 2
    assert q.n_alerts == 3 and q.n_alerts_matched == 2  # the mover within its trail
    assert q.purity == pytest.approx(2 / 3)
    assert q.photometry_bias == pytest.approx(0.01)
    assert q.astrometry_rms_arcsec == pytest.approx(0.1, rel=1e-3)


def test_report_needs_the_summary_keys_and_writes_both_files(tmp_path: Path) -> None:
    summary = {k: 1 for k in REQUIRED_KEYS}
    with pytest.raises(ValueError, match="latency_p98_s"):
        write_report(tmp_path, ReportData(summary={k: 1 for k in REQUIRED_KEYS[:-1]}))
    path = write_report(tmp_path, ReportData(
        summary=summary, alerts_per_visit={1: 3, 2: 5}, latency_kafka_s=[1.0, 2.0],
        latency_l1db_s=[1.5, 2.5], positions=[(10.0, 0.0, 1), (10.1, 0.1, 2)],
        errors=["visit 2 detector 1: raw-timeout"]))
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 3 and "raw-timeout" in page
