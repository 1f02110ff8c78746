"""Backfill, then live: the history to the seam, the live topic from it; no gap, no duplicate,
with alerts arriving while the history is read, at the seam, and after; a kill at the seam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from alertbutler.alerts import encode_alerts
from alertbutler.kafka import create_topics
from alertbutler.subscribe import SubscribeError, open_stream, raw_decoder
from alertbutler.subscribe.backfill import CRASH_AT_SEAM, Backfill, Seam
from alertbutler.subscribe.filters import Filter, compile_filter
from alertbutler.subscribe.positions import AtOffsets
from alertbutler.subscribe.stream import default_decoder
from alertbutler.subscribe.testing import varied_alerts

FILTER = "diaSource.snr > 10 and band in ['g', 'r']"
PARTITIONS = 3


def _produce(bootstrap: str, topic: str, values: list[bytes], ts_ms: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    for i, v in enumerate(values):
        producer.produce(topic, v, partition=i % PARTITIONS, timestamp=ts_ms + i)
    assert producer.flush(30) == 0


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"backfill-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {name: PARTITIONS})
    return name


def test_history_then_live_has_no_gap_and_no_duplicate(kafka_bootstrap: str,
                                                       topic: str) -> None:
    alerts = varied_alerts(400, seed=11)
    values = encode_alerts(alerts)
    now = int(time.time() * 1000)
    start_ms = now - 3_600_000
    # before the start time (left out), then the past the history must serve
    _produce(kafka_bootstrap, topic, values[:60], start_ms - 600_000)
    _produce(kafka_bootstrap, topic, values[60:200], start_ms + 1000)
    during, at_seam, after = values[200:260], values[260:330], values[330:]

    flt = compile_filter(FILTER)
    got: dict[str, list[tuple[str, int, int, int]]] = {"history": [], "live": []}
    seams: list[Seam] = []
    phases: list[str] = []
    every: list[tuple[int, int]] = []  # every message read, kept or not

    def on_seam(seam: Seam) -> None:  # alerts published between history and live
        seams.append(seam)
        _produce(kafka_bootstrap, topic, at_seam, now)

    url = f"kafka://{kafka_bootstrap}/{topic}"
    sub = Backfill(url, start=_iso(start_ms), decoder=default_decoder(),
                   idle_timeout=60.0, on_seam=on_seam)
    live_batches = 0
    with sub:
        for phase, batch in sub.batches(max_alerts=25):
            phases.append(phase)
            if phase == "seam":
                assert not batch and sub.seam is not None
                continue
            every.extend((a.partition, a.offset) for a in batch)
            mask = flt.keep([a.record for a in batch])
            got[phase].extend((a.topic, a.partition, a.offset, a.record["diaSourceId"])
                              for a, k in zip(batch, mask, strict=True) if k)
            if phase == "history" and during:
                _produce(kafka_bootstrap, topic, during, now)  # arrive while history is read
                during = []
            if phase == "live":
                live_batches += 1
                if live_batches == 1:
                    _produce(kafka_bootstrap, topic, after, now)
                    after = []
                read = {a[3] for a in got["live"]}
                if read >= _kept(alerts[200:], flt):
                    break
    keep = _kept(alerts[60:], flt)
    history_ids = [a[3] for a in got["history"]]
    live_ids = [a[3] for a in got["live"]]
    assert not during and not after, "the history was too short to publish during it"
    assert len(seams) == 1 and sub.seam is not None
    n_history = phases.index("seam")
    assert set(phases[:n_history]) == {"history"} and set(phases[n_history + 1:]) == {"live"}
    assert set(history_ids) == _kept(alerts[60:200], flt)  # the past, nothing after the seam
    assert set(live_ids) == _kept(alerts[200:], flt)  # everything after, by offset
    assert len(history_ids) + len(live_ids) == len(keep)  # each once
    assert set(history_ids) | set(live_ids) == keep
    seam = sub.seam.offsets
    assert all(o < seam[(t, p)] for t, p, o, _ in got["history"])
    assert all(o >= seam[(t, p)] for t, p, o, _ in got["live"])
    assert sum(seam.values()) == 200  # every partition's end when the history opened
    # every message, not only the kept ones (a filter that keeps none of the alerts next to
    # the seam would hide a seam one off): each partition read once, without a hole, from
    # the first message at the start time (the 60 earlier ones are 20 per partition)
    assert len(every) == len(set(every)), "a message was read twice"
    for p in range(PARTITIONS):
        offsets = sorted(o for q, o in every if q == p)
        assert offsets == list(range(20, offsets[-1] + 1)), f"partition {p} has a hole"
        assert offsets[-1] >= seam[(topic, p)], f"partition {p} was not read past its seam"
    assert sub.seam.as_json()["history_alerts"] == 140


def _kept(alerts: list[dict], flt: Filter) -> set[int]:
    mask = flt.keep(alerts)
    return {a["diaSourceId"] for a, k in zip(alerts, mask, strict=True) if k}


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()


def test_a_seam_the_topic_no_longer_holds_is_refused(kafka_bootstrap: str, topic: str) -> None:
    _produce(kafka_bootstrap, topic, [b"x"] * 6, int(time.time() * 1000))
    url = f"kafka://{kafka_bootstrap}/{topic}"
    beyond = AtOffsets.of({(topic, 0): 999, (topic, 1): 0, (topic, 2): 0})
    with pytest.raises(SubscribeError, match=r"offset 999 is beyond the end"):
        with open_stream(url, start=beyond, decoder=raw_decoder, idle_timeout=1.0):
            pass
    # a partition not named starts at its beginning; named ones exactly where they say
    with open_stream(url, start=AtOffsets.of({(topic, 0): 1}), decoder=raw_decoder,
                     end="end") as stream:
        got = sorted((a.partition, a.offset) for a in stream)
    assert got == [(0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]


def test_killed_at_the_seam_resumes_live_from_it(kafka_bootstrap: str, topic: str,
                                                 tmp_path: Path) -> None:
    """``alertbutler subscribe --start TIME --group G`` killed (SIGKILL) between the history
    and the live part; alerts published meanwhile; the restart serves them, once each."""
    alerts = varied_alerts(200, seed=12)
    values = encode_alerts(alerts)
    now = int(time.time() * 1000)
    _produce(kafka_bootstrap, topic, values[:120], now - 1000)
    url = f"kafka://{kafka_bootstrap}/{topic}"
    out = tmp_path / "kept.jsonl"
    group = f"bf-{uuid.uuid4().hex[:6]}"
    mark = tmp_path / "killed"
    base = [sys.executable, "-m", "alertbutler", "subscribe", url, "--filter", FILTER,
            "--group", group, "--output", f"jsonl:{out}", "--quiet"]
    env = {**os.environ, "CRASH_AT": f"{CRASH_AT_SEAM}@{mark}"}
    first = subprocess.run([*base, "--start", _iso(now - 60_000)], env=env,
                           capture_output=True, timeout=300)
    assert first.returncode == -9 and mark.exists(), first.stderr.decode()[-2000:]
    flt = compile_filter(FILTER)
    before = [json.loads(line)["diaSourceId"] for line in out.read_text().splitlines()]
    assert set(before) == _kept(alerts[:120], flt) and len(before) == len(set(before))
    _produce(kafka_bootstrap, topic, values[120:], now)
    rest = len(_kept(alerts[120:], flt))
    second = subprocess.run([*base, "--limit", str(rest)], env=env, capture_output=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    ids = [json.loads(line)["diaSourceId"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(_kept(alerts, flt))  # each once: none lost, none repeated
