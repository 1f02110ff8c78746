"""Helpers of the deployment tests: run ``alertbutler up``'s night, scrape, read topics back."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from alertbutler.alerts import decode_message
from alertbutler.config import Config, load_config
from alertbutler.deploy.feed import NightPlan

#: The smallest night that still exercises association across visits: 3 visits x 2
#: detectors of the default 2k x 2k camera (the main job's default is 8 x 4, ~4 minutes of
#: feed alone at its 20 s cadence; too long for a suite that also runs a chaos night).
SMALL_NIGHT = NightPlan.default(n_visits=3, n_detectors=2, cadence_s=10.0, lead_s=2.0)
#: The chaos test's night: long enough for six kills at random moments inside it.
CHAOS_NIGHT = NightPlan.default(n_visits=6, n_detectors=2, cadence_s=10.0, lead_s=2.0)


def night_config(tmp_path: Path, bootstrap: str | None = None) -> Config:
    """A deployment's configuration; with ``bootstrap`` (a shared broker), topics of its own."""
    # bounded well under the 120 s after which a worker's /healthz is stale and the
    # supervisor replaces it
    prompt: dict[str, Any] = {"raw_timeout_s": 60.0, "association_wait_s": 60.0}
    overrides: dict[str, Any] = {"general": {"data_dir": str(tmp_path), "log_level": "INFO"},
                                 "prompt": prompt}
    if bootstrap is not None:
        tag = uuid.uuid4().hex[:8]
        overrides["kafka"] = {"bootstrap_servers": bootstrap, "alert_topic": f"alerts-{tag}",
                              "next_visit_topic": f"nv-{tag}", "work_topic": f"work-{tag}",
                              "dead_letter_topic": f"dl-{tag}"}
        prompt["status_topic"] = f"status-{tag}"
    return load_config(env={}, overrides=overrides)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one /metrics page, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


def status_code(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Retry ``check`` (which asserts) until it passes or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def read_topic(bootstrap: str, topic: str, *, quiet_s: float = 5.0) -> list[Any]:
    """Every message of ``topic`` in committed transactions (or none), reading until
    nothing arrived for ``quiet_s`` seconds."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "deploy-test-reader",
                         "enable.auto.commit": False, "log_level": 3,
                         "isolation.level": "read_committed"})
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    out: list[Any] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < quiet_s:
            batch = consumer.consume(1000, timeout=0.5)
            for msg in batch:
                if not msg.error():
                    out.append(msg)
            if batch:
                last = time.monotonic()
    finally:
        consumer.close()
    return out


def alerts_by_visit_detector(messages: list[Any]) -> dict[tuple[int, int], dict[int, list[Any]]]:
    """(visit, detector) -> diaSourceId -> every decoded copy on the topic."""
    out: dict[tuple[int, int], dict[int, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for msg in messages:
        decoded = decode_message(msg.value())
        if decoded.kind != "alert":
            continue
        src = decoded.record["diaSource"]
        out[(int(src["visit"]), int(src["detector"]))][int(src["diaSourceId"])].append(
            decoded.record)
    return out
