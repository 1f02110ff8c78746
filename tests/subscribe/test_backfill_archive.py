"""Backfill from the night archives, then the topic from exactly where they end, then live:
the topic's early part deleted (Apache Kafka: DeleteRecords) so the past is only in the
archive, alerts published while the archive is served, at the seams and live; a SIGKILL at
the archive seam and a restart; archives refused as untrusted files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from alertbutler.alerts import encode_alerts
from alertbutler.alerts.archive import read_alert_file, write_alert_file
from alertbutler.alerts.topic_positions import KEY, TopicPositions
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.night.summary import read_alerts_placed
from alertbutler.prompt.ledger import write_ledger
from alertbutler.subscribe import SubscribeError
from alertbutler.subscribe.backfill import CRASH_AT_ARCHIVE_SEAM, Backfill, Seam
from alertbutler.subscribe.filters import compile_filter
from alertbutler.subscribe.night_archive import ArchiveError, open_archives
from alertbutler.subscribe.seek import fetch_watermarks
from alertbutler.subscribe.stream import default_decoder
from alertbutler.subscribe.testing import varied_alerts

from .test_backfill import FILTER, PARTITIONS, _iso, _kept, _produce


def _archive(bootstrap: str, topic: str, root: Path) -> TopicPositions:
    """The night archive as ``alertbutler run`` writes it, read back from the topic."""
    config = load_config(env={}, overrides={"kafka": {"bootstrap_servers": bootstrap,
                                                      "alert_topic": topic}})
    alerts, _, placed = read_alerts_placed(config)
    write_ledger(root, alert_topic=topic, l1db_url="sqlite:///unused.db", entries=[],
                 alerts=alerts, positions=placed)
    return placed


def _trim(bootstrap: str, topic: str, offsets: dict[int, int]) -> None:
    """Delete each partition's records below ``offsets`` (the retention's doing)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    done = admin.delete_records([TopicPartition(topic, p, o) for p, o in offsets.items()])
    for future in done.values():
        future.result(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        marks = fetch_watermarks(consumer, [(topic, p) for p in offsets], 30)
    finally:
        consumer.close()
    assert {p: marks[(topic, p)].low for p in offsets} == offsets


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"bfarch-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {name: PARTITIONS})
    return name


def test_archive_then_topic_then_live_has_no_gap_and_no_duplicate(
        broker_engine: str, kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    alerts = varied_alerts(420, seed=21)
    values = encode_alerts(alerts)
    now = int(time.time() * 1000)
    start_ms = now - 3_600_000
    _produce(kafka_bootstrap, topic, values[:60], start_ms - 600_000)  # before the start
    _produce(kafka_bootstrap, topic, values[60:200], start_ms + 1000)
    placed = _archive(kafka_bootstrap, topic, tmp_path / "night1")
    assert sum(placed.ends.values()) == 200 and len(placed.positions) == 200
    assert placed.cluster_id  # offsets are offsets on this cluster
    _produce(kafka_bootstrap, topic, values[200:260], start_ms + 2000)  # after the archive
    if broker_engine == "kafka":  # the past is now only in the archive
        _trim(kafka_bootstrap, topic, dict(placed.ends))
    # (the embedded broker has no DeleteRecords: its topic keeps the past, unread)
    during, at_seam = values[260:300], values[300:340]
    at_live_seam, after = values[340:370], values[370:]

    flt = compile_filter(FILTER)
    got: dict[str, list[tuple[int, int, int]]] = {"archive": [], "topic": [], "live": []}
    every: list[tuple[str, int, int]] = []  # every message read, kept or not, and its part
    archive_seams: list[Seam] = []

    def on_archive_seam(seam: Seam) -> None:  # published between the archive and the topic
        archive_seams.append(seam)
        _produce(kafka_bootstrap, topic, at_seam, now)

    def on_seam(seam: Seam) -> None:  # published between the topic's history and live
        _produce(kafka_bootstrap, topic, at_live_seam, now)

    sub = Backfill(f"kafka://{kafka_bootstrap}/{topic}", start=_iso(start_ms),
                   decoder=default_decoder(), idle_timeout=60.0, archives=[tmp_path / "night1"],
                   on_archive_seam=on_archive_seam, on_seam=on_seam)
    with sub:
        for phase, batch in sub.batches(max_alerts=25):
            if phase == "seam":
                continue
            part = "live" if phase == "live" else "topic" if archive_seams else "archive"
            every.extend((part, a.partition, a.offset) for a in batch)
            mask = flt.keep([a.record for a in batch])
            got[part].extend((a.partition, a.offset, a.record["diaSourceId"])
                             for a, k in zip(batch, mask, strict=True) if k)
            if part == "archive" and during:
                _produce(kafka_bootstrap, topic, during, now)  # while the archive is served
                during = []
            if part == "live" and after:
                _produce(kafka_bootstrap, topic, after, now)
                after = []
            if part == "live" and {a[2] for a in got["live"]} >= \
                    _kept(alerts[260:], flt) - {a[2] for a in got["topic"]}:
                break
    assert not during and not after
    assert len(archive_seams) == 1 and sub.archive_seam is not None and sub.seam is not None
    ends = {p: placed.ends[p] for p in range(PARTITIONS)}
    assert sub.archive_seam.offsets == {(topic, p): o for p, o in ends.items()}
    assert {a[2] for a in got["archive"]} == _kept(alerts[60:200], flt)
    assert all(o < ends[p] for p, o, _ in got["archive"])
    assert all(o >= ends[p] for p, o, _ in got["topic"] + got["live"])
    ids = [a[2] for part in got.values() for a in part]
    assert len(ids) == len(set(ids)) and set(ids) == _kept(alerts[60:], flt)  # each once
    # every message: each partition once, without a hole, from the first at the start time
    # (20 per partition before it) across both seams
    positions = [(p, o) for _, p, o in every]
    assert len(positions) == len(set(positions)), "a message was read twice"
    for p in range(PARTITIONS):
        offsets = sorted(o for q, o in positions if q == p)
        assert offsets == list(range(20, offsets[-1] + 1)), f"partition {p} has a hole"
        assert offsets[-1] >= sub.seam.offsets[(topic, p)]
    assert sub.archive_seam.history_alerts == 140


def test_a_topic_trimmed_past_the_archive_is_a_gap_named(broker_engine: str,
                                                         kafka_bootstrap: str, topic: str,
                                                         tmp_path: Path) -> None:
    if broker_engine != "kafka":
        pytest.skip("the embedded broker has no DeleteRecords: its topic cannot be trimmed")
    values = encode_alerts(varied_alerts(30, seed=22))
    now = int(time.time() * 1000)
    _produce(kafka_bootstrap, topic, values[:12], now - 5000)
    placed = _archive(kafka_bootstrap, topic, tmp_path / "n")
    _produce(kafka_bootstrap, topic, values[12:], now)
    _trim(kafka_bootstrap, topic, {0: placed.ends[0] + 2, 1: placed.ends[1], 2: 0})
    sub = Backfill(f"kafka://{kafka_bootstrap}/{topic}", start="earliest",
                   archives=[tmp_path / "n"], idle_timeout=1.0)
    with pytest.raises(SubscribeError, match=rf"night archives \({tmp_path}/n/night/alerts"
                       rf"\.avro\) end: {topic}\[0\]: offset {placed.ends[0]} was deleted"):
        with sub:
            for _ in sub.batches():
                pass


def test_killed_at_the_archive_seam_resumes_on_the_topic(broker_engine: str,
                                                         kafka_bootstrap: str, topic: str,
                                                         tmp_path: Path) -> None:
    """``alertbutler subscribe --start TIME --archive DIR --group G`` killed (SIGKILL) once
    the archive was served; alerts published meanwhile; a restart without a start serves
    the topic from the archive's end, each alert once."""
    alerts = varied_alerts(240, seed=23)
    values = encode_alerts(alerts)
    now = int(time.time() * 1000)
    _produce(kafka_bootstrap, topic, values[:120], now - 30_000)
    placed = _archive(kafka_bootstrap, topic, tmp_path / "night1")
    _produce(kafka_bootstrap, topic, values[120:160], now - 20_000)
    if broker_engine == "kafka":
        _trim(kafka_bootstrap, topic, dict(placed.ends))
    url = f"kafka://{kafka_bootstrap}/{topic}"
    out = tmp_path / "kept.jsonl"
    group = f"bfa-{uuid.uuid4().hex[:6]}"
    mark = tmp_path / "killed"
    base = [sys.executable, "-m", "alertbutler", "subscribe", url, "--filter", FILTER,
            "--group", group, "--output", f"jsonl:{out}", "--quiet"]
    env = {**os.environ, "CRASH_AT": f"{CRASH_AT_ARCHIVE_SEAM}@{mark}"}
    first = subprocess.run([*base, "--start", _iso(now - 60_000), "--archive",
                            str(tmp_path / "night1")], env=env, capture_output=True,
                           timeout=300)
    assert first.returncode == -9 and mark.exists(), first.stderr.decode()[-2000:]
    assert CRASH_AT_ARCHIVE_SEAM in first.stderr.decode()
    flt = compile_filter(FILTER)
    before = [json.loads(line)["diaSourceId"] for line in out.read_text().splitlines()]
    assert sorted(before) == sorted(_kept(alerts[:120], flt))  # the archive, once each
    _produce(kafka_bootstrap, topic, values[160:], now)
    rest = len(_kept(alerts[120:], flt))
    second = subprocess.run([*base, "--limit", str(rest)], env=env, capture_output=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    ids = [json.loads(line)["diaSourceId"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(_kept(alerts, flt))  # none lost, none repeated


def test_archives_are_read_as_untrusted_files(tmp_path: Path) -> None:
    alerts = varied_alerts(4, seed=24)
    good = tmp_path / "good" / "night"
    good.mkdir(parents=True)
    placed = TopicPositions("alerts", {0: 3}, {0: 9}, tuple((0, 3 + i, 1000 + i)
                                                           for i in range(4)), "cluster-a")
    write_alert_file(good / "alerts.avro", alerts, metadata=placed.header())
    archived = open_archives([tmp_path / "good"], ["alerts"])
    assert archived is not None and archived.ends == {("alerts", 0): 9}
    assert [a.offset for a in archived.alerts] == [3, 4, 5, 6]
    archived.check_cluster("cluster-a")
    with pytest.raises(ArchiveError, match=r"good/night/alerts\.avro: read from Kafka cluster "
                       r"'cluster-a', not this broker's 'cluster-b'"):
        archived.check_cluster("cluster-b")

    (tmp_path / "link").symlink_to(tmp_path / "good")
    with pytest.raises(ArchiveError, match=r"link: is a symlink \(not followed\)"):
        open_archives([tmp_path / "link"], ["alerts"])
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "night").symlink_to(good)
    with pytest.raises(ArchiveError, match=r"inner/night: is a symlink"):
        open_archives([inner], ["alerts"])
    with pytest.raises(ArchiveError, match=r"holds topic 'alerts', not other"):
        open_archives([tmp_path / "good"], ["other"])

    old = tmp_path / "old"
    old.mkdir()
    write_alert_file(old / "alerts.avro", alerts)  # written before positions were kept
    assert len(list(read_alert_file(old / "alerts.avro"))) == 4  # readable still
    with pytest.raises(ArchiveError, match=r"old/alerts\.avro: has no topic positions .* "
                       r"cannot continue on the topic"):
        open_archives([old], ["alerts"])

    bad = tmp_path / "bad"
    bad.mkdir()
    write_alert_file(bad / "alerts.avro", alerts, metadata={KEY: json.dumps(
        {"version": 1, "topic": "alerts", "starts": {"0": 0}, "ends": {"0": 2},
         "positions": [[0, i, 0] for i in range(4)]})})
    with pytest.raises(ArchiveError, match=r"bad/alerts\.avro: record at alerts\[0\] offset 2 "
                       r"lies outside"):
        open_archives([bad], ["alerts"])
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "alerts.avro").write_text("not avro")
    with pytest.raises(ArchiveError, match=r"text/alerts\.avro: not an Avro container"):
        open_archives([tmp_path / "text"], ["alerts"])
    with pytest.raises(ArchiveError, match=r"nothing: no alerts\.avro there"):
        open_archives([tmp_path / "nothing"], ["alerts"])

    later = tmp_path / "later"
    later.mkdir()
    write_alert_file(later / "alerts.avro", alerts[:1], metadata=TopicPositions(
        "alerts", {0: 12}, {0: 13}, ((0, 12, 2000),)).header())
    with pytest.raises(ArchiveError, match=r"alerts\[0\] offsets 9 to 11 are in none"):
        open_archives([tmp_path / "good", later], ["alerts"])
