"""A night's effective configuration reaches its child processes whole.

``alertbutler --config F run`` used to hand its workers 14 settings picked by hand, so
``prompt.max_attempts``, ``prompt.item_deadline_s``, compression and the SASL/TLS client
settings of ``F`` never reached them. Now every verb that runs a night hands the whole
effective configuration over (:func:`alertbutler.night.config.hand_off`).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from alertbutler.config import CONFIG_ENV, load_config
from alertbutler.night.config import EFFECTIVE_CONFIG, hand_off, night_config


def test_a_child_loads_the_whole_effective_configuration(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """What a child loads from the hand-off is the parent's configuration, every section,
    and a variable the parent had set (and derived away from) does not override it."""
    config = load_config(env={}, overrides={
        "kafka": {"compression": "gzip", "client": {"security.protocol": "SASL_SSL",
                                                    "sasl.mechanism": "SCRAM-SHA-512",
                                                    "sasl.username": "night",
                                                    "sasl.password": "s3cret"}},
        "prompt": {"max_attempts": 7, "item_deadline_s": 123.0},
        "schema_registry": {"url": "http://registry:8081",
                            "client": {"basic.auth.user.info": "u:p"}}})
    root = tmp_path / "night"
    root.mkdir()
    derived = night_config(config, root, "127.0.0.1:9999", run_id="r1")
    monkeypatch.setenv("ALERTBUTLER_GENERAL__DATA_DIR", str(tmp_path / "elsewhere"))
    env = hand_off(derived, root)
    assert env[CONFIG_ENV] == str(root / EFFECTIVE_CONFIG)
    assert not [k for k in env if k.startswith("ALERTBUTLER_") and k != CONFIG_ENV]
    assert stat.S_IMODE(os.stat(root / EFFECTIVE_CONFIG).st_mode) == 0o600  # credentials
    assert load_config(env=env) == derived
    assert derived.kafka.alert_topic == "alerts-r1" and derived.butler.registry_url == ""


def _started(log: Path) -> dict[str, object]:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and json.loads(line).get("msg") == "worker started":
            return dict(json.loads(line))
    raise AssertionError(f"no 'worker started' in {log}:\n{log.read_text()[-2000:]}")


@pytest.mark.slow
def test_run_hands_its_workers_the_settings_of_the_config_file(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """``alertbutler --config my.toml run``: the workers run by the file's attempt limit,
    item deadline and compression (settings the old hand-picked environment left out)."""
    tag = uuid.uuid4().hex[:8]
    data = tmp_path / "data"
    config_file = tmp_path / "my.toml"
    config_file.write_text(f"""
[general]
data_dir = "{data}"
[kafka]
bootstrap_servers = "{kafka_bootstrap}"
compression = "gzip"
alert_topic = "alerts-{tag}"
next_visit_topic = "nv-{tag}"
work_topic = "work-{tag}"
dead_letter_topic = "dl-{tag}"
partitions = 2
[prompt]
status_topic = "status-{tag}"
max_attempts = 7
item_deadline_s = 123.0
raw_timeout_s = 20.0
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBUTLER_")}
    done = subprocess.run(
        [sys.executable, "-m", "alertbutler", "--config", str(config_file), "run",
         "--visits", "1", "--detectors", "1", "--detector-size", "1024", "--workers", "1",
         "--no-progress"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: a visit-detector failed
    started = _started(data / "mainjob" / "logs" / "worker-0.log")
    assert started["max_attempts"] == 7
    assert started["item_deadline_s"] == 123.0
    assert started["compression"] == "gzip"
