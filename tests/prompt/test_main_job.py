"""The whole chain on small simulated nights: bad input, a killed worker, determinism.

Each test runs ``run_main_job`` for real: fan-out, ``alertbutler worker`` processes, the
publish datastore, the ingester and the L1 database (SQLite), on the session's embedded
broker with topics of its own. The nights use the default camera's 2k x 2k detectors and
sky (smaller detectors hold too few PSF stars) but few visits and detectors, to keep the
suite short.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from alertbutler.config import Config, load_config
from alertbutler.l1db import L1db
from alertbutler.night.main_job import MainJobOptions, MainJobResult, run_main_job
from alertbutler.prompt.driver import UNKNOWN_DETECTOR, Faults
from alertbutler.prompt.packaging import without_processing_times

SMALL = dict(n_visits=3, n_detectors=2, detector_size=2048, workers=2, cadence_s=10.0,
             lead_s=2.0, progress=False, timeout_s=600.0)


pytestmark = pytest.mark.slow


def module_config(bootstrap: str, root: Path) -> Config:
    """A configuration with topics and files of its own (for module-scoped runs)."""
    tag = uuid.uuid4().hex[:8]
    return load_config(env={}, overrides={
        "general": {"data_dir": str(root)},
        "kafka": {"bootstrap_servers": bootstrap, "alert_topic": f"alerts-{tag}",
                  "next_visit_topic": f"nv-{tag}", "work_topic": f"work-{tag}",
                  "dead_letter_topic": f"dl-{tag}", "partitions": 4},
        "prompt": {"status_topic": f"status-{tag}", "raw_timeout_s": 20.0,
                   "association_wait_s": 120.0}})


def _run(make_config: Callable[..., Config], tmp_path: Path, name: str,
         **options: object) -> MainJobResult:
    config = make_config(general={"data_dir": str(tmp_path / name)},
                         prompt={"raw_timeout_s": 20.0, "association_wait_s": 120.0})
    return run_main_job(config, MainJobOptions(**{**SMALL, **options}))  # type: ignore[arg-type]


def _l1_ids(result: MainJobResult) -> dict[tuple[int, int], list[int]]:
    url = f"sqlite:///{result.report.parents[1] / 'l1db.sqlite3'}"
    with L1db(url) as db:
        return {key: db.sources_of_visit_detector(*key).column("diaSourceId").to_pylist()
                for key in result.statuses}


def test_bad_input_is_recorded_per_visit_detector_and_the_rest_goes_on(
        prompt_config: Callable[..., Config], tmp_path: Path) -> None:
    result = _run(prompt_config, tmp_path, "bad", n_visits=4, n_detectors=1, workers=1,
                  write_outputs=False,
                  faults=Faults(corrupt_raw=(1, 0), missing_raw=(2, 0),
                                unknown_detector_visit=0))
    visits = sorted({v for v, _ in result.statuses})
    reasons = [result.statuses[(v, 0)].reason for v in visits]
    assert reasons == ["ok", "corrupt-raw", "raw-timeout", "ok"]  # and the worker went on
    assert "raw" in result.statuses[(visits[1], 0)].message
    assert "did not arrive" in result.statuses[(visits[2], 0)].message
    errors = result.summary["errors"]
    assert any("unknown-detector" in e and f"detector {UNKNOWN_DETECTOR}" in e
               for e in errors), errors
    assert result.summary["visit_detectors_failed"] == 3
    # The failed visit-detectors were closed (empty batches with end markers): ingested.
    ids = _l1_ids(result)
    assert ids[(visits[1], 0)] == [] and ids[(visits[2], 0)] == []
    assert ids[(visits[3], 0)] and sorted(ids[(visits[3], 0)]) == sorted(
        result.statuses[(visits[3], 0)].alert_ids)


@pytest.fixture(scope="module")
def clean_night(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
                ) -> MainJobResult:
    """The small night, run once without faults (shared by the tests below)."""
    root = tmp_path_factory.mktemp("clean")
    return run_main_job(module_config(kafka_bootstrap, root),
                        MainJobOptions(**SMALL))  # type: ignore[arg-type]


def _exactly_once(result: MainJobResult) -> None:
    assert result.summary["visit_detectors_failed"] == 0, result.summary["errors"]
    for key, ids in _l1_ids(result).items():
        status = result.statuses[key]
        assert sorted(ids) == sorted(status.alert_ids), key
        assert len(ids) == len(set(ids))
    assert result.summary["alerts_in_l1db"] == result.summary["alerts_published"] > 0


def test_clean_night_alerts_in_l1db_exactly_once_and_science_quality(
        clean_night: MainJobResult) -> None:
    _exactly_once(clean_night)
    # Association happened: later visits' alerts carry history of earlier ones.
    assert any(a["prvDiaSources"] for a in clean_night.alerts)
    summary = clean_night.summary
    assert summary["completeness"] >= 0.9
    assert summary["purity"] >= 0.9
    assert summary["astrometry_rms_arcsec"] < 0.1
    assert abs(summary["photometry_bias"]) < 0.02
    assert clean_night.report.is_file() and (clean_night.report.parent / "summary.json").is_file()


def test_killed_worker_loses_nothing_and_the_rerun_gives_identical_alerts(
        clean_night: MainJobResult, prompt_config: Callable[..., Config],
        tmp_path: Path, broker_engine: str) -> None:
    # A worker is SIGKILLed at the crash point right after its alerts were acknowledged,
    # before its item was committed (outputs, status and commit still to come): another
    # worker re-processes the item and publishes the same alerts again; the L1 database
    # still holds each exactly once. The crash point strikes once, in whichever worker gets
    # there first; its mark (point, pid) proves it struck, or the test fails.
    killed = _run(prompt_config, tmp_path, "killed", crash_at="prompt.alerts-acked",
                  write_outputs=True)
    assert killed.killed_worker is not None
    assert killed.killed_worker["point"] == "prompt.alerts-acked"
    if broker_engine == "kafka":
        # the dead worker's transaction (alerts, markers) was aborted when its partition's
        # next owner took it over: a read_committed reader sees each alert exactly once
        assert killed.summary["alert_messages"] == killed.summary["alerts_published"]
    else:  # no transactions: the first attempt's alerts stay on the topic, a second copy
        assert killed.summary["alert_messages"] > killed.summary["alerts_published"]
    _exactly_once(killed)
    # Determinism: the same night gives the same alerts, processing timestamps aside, even
    # when a worker died mid-visit and another re-processed its item.
    assert [a["diaSourceId"] for a in clean_night.alerts] == \
        [a["diaSourceId"] for a in killed.alerts]
    for a, b in zip(clean_night.alerts, killed.alerts, strict=True):
        assert without_processing_times(a) == without_processing_times(b), a["diaSourceId"]
