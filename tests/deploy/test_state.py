"""The deployment state file is trusted only when it is this user's own, and only while the
``up`` that wrote it runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from alertbutler.deploy.state import DeploymentNotFoundError, DeploymentState, find_state


def _state(**changes: object) -> DeploymentState:
    fields: dict = dict(pid=os.getpid(), started_at=time.time(), data_dir="/d",
                        bootstrap="127.0.0.1:9092", next_visit_topic="nv", alert_topic="a",
                        status_topic="s", landing_dir="/d/landing", central_repo="/d/central",
                        l1db_url="sqlite:////d/l1.sqlite3")
    fields.update(changes)
    return DeploymentState(**fields)


def test_own_private_file_of_a_running_up_is_found(tmp_path: Path) -> None:
    path = _state().write(tmp_path / "up" / "deployment.json")
    assert path.stat().st_mode & 0o077 == 0
    assert find_state(tmp_path).bootstrap == "127.0.0.1:9092"


def test_a_file_others_could_write_is_refused(tmp_path: Path) -> None:
    path = _state().write(tmp_path / "up" / "deployment.json")
    path.chmod(0o666)
    with pytest.raises(DeploymentNotFoundError, match="writable by nobody else"):
        find_state(tmp_path)


def test_a_reused_pid_or_another_users_process_is_not_the_deployment(tmp_path: Path) -> None:
    # this process started after the (pretended) up wrote its file: the pid was reused
    _state(started_at=time.time() - 10 * 365 * 86400).write(tmp_path / "up" / "deployment.json")
    with pytest.raises(DeploymentNotFoundError, match="not running any more"):
        find_state(tmp_path)
    if os.getuid() != 0:  # root may signal anyone: then pid 1 would count as ours
        assert not _state(pid=1, started_at=time.time()).alive
