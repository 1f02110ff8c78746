"""Record a small simulated night, replay it: determinism, a changed threshold, bad input.

The night is small to keep the suite inside its time budget: 3 visits of one field in one
band (one template set to simulate; every visit revisits the field, so association and
history are exercised), one detector of 1536 px, no butler outputs. The default night's
figures come from ``bench/replay.py`` and the CLI.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import fastavro
import pytest
from avro.datafile import DataFileReader
from avro.io import DatumReader

from alertbutler.cli import main
from alertbutler.config import Config, load_config
from alertbutler.replay import Recording, RunNameError
from alertbutler.replay.night import ReplayOutcome, SimNight, record_sim_night, replay_night
from alertbutler.testing import pg_unreachable_reason, temporary_pg_database

NIGHT = SimNight(seed=3, n_visits=3, n_detectors=1, detector_size=1536, n_fields=1,
                 bands=("g",))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Config:
    data = tmp_path_factory.mktemp("night-data")
    return load_config(env={"ALERTBUTLER_GENERAL__DATA_DIR": str(data),
                            "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap})


@pytest.fixture(scope="module")
def recording(config: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recordings") / "night"
    path, result = record_sim_night(config, out, NIGHT, workers=1, progress=False,
                                    write_outputs=False)
    assert result.alerts, "the small night produced no alerts to compare"
    from alertbutler.alerts import decode_alert

    _RECORDED[path] = [decode_alert(v)["diaSourceId"] for _, v, _ in result.alerts]
    return path


#: recording -> the diaSourceIds its run published on the alert topic
_RECORDED: dict[Path, list[int]] = {}


def _bodies(recording: Path) -> dict[int, bytes]:
    """diaSourceId -> Avro body of every recorded alert, read back from the files."""
    from alertbutler.replay import AlertSource, SchemaIds

    out = {}
    with AlertSource(recording) as source:
        for msg in source.messages(SchemaIds(), "t"):
            from alertbutler.alerts import decode_alert

            out[decode_alert(msg.value)["diaSourceId"]] = msg.value
    return out


def test_recording_holds_the_night(recording: Path) -> None:
    with Recording.open(recording) as rec:
        night = rec.night
        schedule = rec.schedule()
        assert night["source"] == "sim" and night["clock"] == "recorded"
        assert [e.kind for e in schedule].count("next_visit") == 3
        assert [e.kind for e in schedule].count("raw") == 3
        # nextVisit 30 s before the exposure, the raw at its end plus readout
        nv, raw = schedule[0], next(e for e in schedule if e.kind == "raw")
        assert raw.t - nv.t == pytest.approx(30.0 + 30.0 + 2.0)
        assert (rec.root / "calibs" / "manifest.json").is_file()
        assert rec.alert_count == night["n_alerts"] > 0
        # plain Avro for any reader: deflate (no codec package), fastavro and avro alike
        kept = []
        for path in rec.alert_files():
            with open(path, "rb") as fh:
                reader = fastavro.reader(fh)
                assert reader.codec in ("null", "deflate")
                ids = [r["diaSourceId"] for r in reader]
            with open(path, "rb") as fh:
                plain = DataFileReader(fh, DatumReader())
                assert [r["diaSourceId"] for r in plain] == ids
            kept += ids
        assert sorted(kept) == sorted(_RECORDED[recording])  # exactly the night's alerts


@pytest.fixture(scope="module")
def replayed(config: Config, recording: Path,
             tmp_path_factory: pytest.TempPathFactory) -> ReplayOutcome:
    return replay_night(config, recording, speed=0, workers=1, progress=False,
                        out=tmp_path_factory.mktemp("replays") / "speed0", write_outputs=False)


def test_replay_at_speed_0_is_identical(replayed: ReplayOutcome, recording: Path) -> None:
    outcome = replayed
    assert outcome.comparison.differences == 0, outcome.comparison.as_dict()
    replayed = {i: v for i, (_, v, _) in zip(outcome.run.alert_ids, outcome.run.alerts,
                                             strict=True)}
    assert replayed == _bodies(recording)  # byte-identical payloads
    assert outcome.summary["l1db_matches_recording"] is True
    assert outcome.summary["output_run"].startswith("prompt/")
    assert "-replay-" in outcome.summary["output_run"]
    page = outcome.report.read_text()
    assert "0 differences" in page
    summary = json.loads((outcome.report.parent / "summary.json").read_text())
    assert summary["differences"] == 0 and summary["comparison"]["changed"] == 0


def test_replay_with_a_lower_threshold_reports_changes(config: Config, recording: Path,
                                                       tmp_path: Path) -> None:
    """Also the replay into a configured PostgreSQL L1 database (when one answers)."""
    with contextlib.ExitStack() as stack:
        l1db_url = None
        if pg_unreachable_reason() is None:
            l1db_url = stack.enter_context(temporary_pg_database("alertbutler_replay"))
        outcome = replay_night(config, recording, speed=0, workers=1, progress=False,
                               detection_threshold=4.0, l1db_url=l1db_url,
                               out=tmp_path / "replay", write_outputs=False)
        if l1db_url is not None:
            assert outcome.summary["l1db_url"].startswith("postgresql")
            assert outcome.l1db["DiaSource"]["rows"] == outcome.comparison.n_replayed
    c = outcome.comparison
    assert c.differences > 0
    assert c.new, "a lower threshold should detect more sources"
    assert outcome.summary["l1db_matches_recording"] is False
    assert outcome.report == tmp_path / "replay" / "report.html"


def test_record_a_live_run(replayed: ReplayOutcome, tmp_path: Path) -> None:
    """A replay is a deployment like any other: record it as a live run."""
    import dataclasses

    from alertbutler.replay.night import record_live_night

    outcome = replayed
    live = load_config(outcome.run.root / "effective-config.toml", env={})
    live = dataclasses.replace(live, butler=dataclasses.replace(
        live.butler, central_repo=str(outcome.run.root / "central")))
    path = record_live_night(live, tmp_path / "live", timeout_s=20)
    with Recording.open(path) as rec:
        assert rec.night["source"] == "live" and rec.night["clock"] == "wall"
        schedule = rec.schedule()
        assert sum(e.kind == "next_visit" for e in schedule) == 3
        assert sum(e.kind == "raw" for e in schedule) == 3
        assert rec.alert_count == len(outcome.run.alerts)
    assert _bodies(path) == {i: v for i, (_, v, _) in zip(outcome.run.alert_ids,
                                                           outcome.run.alerts, strict=True)}


def test_replay_refuses_the_recorded_run(config: Config, recording: Path) -> None:
    with Recording.open(recording) as rec:
        recorded = rec.night["runs"][0]
    with pytest.raises(RunNameError, match="recorded night"):
        replay_night(config, recording, speed=0, run_name=recorded, progress=False)


def test_night_verify_cli(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["night", "verify", str(recording)]) == 0
    assert "all checksums verified" in capsys.readouterr().out
    raw = next((recording / "raws").rglob("*.fits"))
    data = raw.read_bytes()
    raw.unlink()
    try:
        assert main(["night", "verify", str(recording)]) == 1
        err = capsys.readouterr().err
        assert raw.name in err and "missing" in err
    finally:
        raw.write_bytes(data)


def test_replay_refuses_a_filled_l1db(config: Config, recording: Path, replayed: ReplayOutcome,
                                      tmp_path: Path) -> None:
    from alertbutler.replay import ReplayError

    with pytest.raises(ReplayError, match="already holds rows"):
        replay_night(config, recording, speed=0, progress=False, out=tmp_path / "again",
                     l1db_url=replayed.run.l1db_url)


@pytest.mark.parametrize("tree", ["raws", "calibs"])
def test_replay_refuses_a_linked_file_before_starting_anything(
        config: Config, recording: Path, tmp_path: Path, tree: str) -> None:
    """A raw or calibration replaced by a link to the same bytes elsewhere: the checksums
    match, and the replay is refused when the recording is verified, before any broker topic,
    database, worker or nextVisit exists (its output directory is never made)."""
    import shutil

    from alertbutler.replay import RecordingError

    copy = tmp_path / "night"
    shutil.copytree(recording, copy)
    target = next(p for p in sorted((copy / tree).rglob("*")) if p.is_file())
    outside = tmp_path / "outside.bin"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    out = tmp_path / "replay"
    with pytest.raises(RecordingError, match=f"{target.name}: a symbolic link"):
        replay_night(config, copy, speed=0, workers=1, progress=False, out=out,
                     write_outputs=False)
    assert not out.exists()
