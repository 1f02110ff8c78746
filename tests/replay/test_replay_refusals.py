"""Counts on the command line are checked, never read as "not given" when 0; ``alerts replay``
names a dead broker at once instead of after the producer's whole delivery timeout."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from alertbutler.broker.embedded import free_port
from alertbutler.cli import main
from alertbutler.kafka import list_topics
from alertbutler.kafka.topics import create_topics
from alertbutler.replay.testing import write_ztf_archive, ztf_like_alerts


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_ztf_archive(tmp_path / "ztf.tar.gz", ztf_like_alerts(3, seed=1))


def test_zero_partitions_is_refused_not_replaced(kafka_bootstrap: str, archive: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    topic = f"zero-{uuid.uuid4().hex[:8]}"
    for argv in (["topics", "create", topic, "--partitions", "0"],
                 ["topics", "create", topic, "--partitions", "-3"],
                 ["alerts", "replay", str(archive), "--topic", topic, "--partitions", "0"],
                 ["up", "--workers", "0"], ["run", "--workers", "0"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2, argv
        err = capsys.readouterr().err
        assert "out of range: allowed 1 to" in err, (argv, err)
    assert topic not in list_topics(kafka_bootstrap)
    with pytest.raises(ValueError, match="at least 1 partition"):
        create_topics(kafka_bootstrap, {topic: 0})
    assert topic not in list_topics(kafka_bootstrap)


@pytest.mark.parametrize("create", [True, False])
def test_replay_names_a_dead_broker_before_streaming(archive: Path, create: bool,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    argv = ["alerts", "replay", str(archive), "--topic", "t", "--bootstrap", dead, "--json"]
    assert main(argv if create else [*argv, "--no-create-topic"]) == 1
    captured = capsys.readouterr()
    assert f"no Kafka broker answered at {dead}" in captured.err, captured.err
    assert captured.out == ""  # nothing was streamed, no summary of a replay that never ran
