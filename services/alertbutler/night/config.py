"""A night's effective configuration: derived once, handed whole to every child process.

``alertbutler run``, ``night replay`` and ``up`` each run a night in a directory of its own
(``root``): :func:`night_config` says where its repos, landing area and L1 database are, on
which broker, and (for a replay, isolated by its run id) under which topic and group names.
:func:`hand_off` writes that configuration, all of it, to ``<root>/effective-config.toml``
and gives the environment that makes a child load it: a worker then runs with the SASL/TLS
client settings, compression, attempt limits and deadlines of the file the user gave, not
with a hand-picked subset of them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from alertbutler.config import CONFIG_ENV, Config, dump_toml, without_settings
from alertbutler.procs import COMPUTE_ENV

#: the file, under a night's root, that its child processes load
EFFECTIVE_CONFIG = "effective-config.toml"


def night_config(config: Config, root: Path, bootstrap: str, *, fresh: bool = True,
                 l1db_url: str | None = None, run_id: str | None = None) -> Config:
    """``config`` for a night under ``root`` on the broker at ``bootstrap``.

    ``fresh``: central repo, local repos and landing area under ``root`` (a night of its
    own); otherwise the configured ones (a deployment serving an existing repo).
    ``l1db_url``: the L1 database, else a SQLite file under ``root``. ``run_id``: a replay's
    isolation from the night it replays: topics, status topic and ingest group suffixed with
    it, and no shared registry database (its central repo is its own).
    """
    def section(name: str, **changes: Any) -> Any:
        return dataclasses.replace(getattr(config, name), **changes)

    k, p, b = config.kafka, config.prompt, config.butler
    if fresh:
        central, local, landing = root / "central", root / "local", root / "landing"
    else:
        central = config.central_repo.resolve()
        local = Path(b.local_repo_root or root / "local").resolve()
        landing = Path(p.landing_dir or root / "landing").resolve()
    kafka: dict[str, Any] = {"bootstrap_servers": bootstrap}
    prompt: dict[str, Any] = {"landing_dir": str(landing)}
    butler: dict[str, Any] = {"central_repo": str(central), "local_repo_root": str(local)}
    ingest: dict[str, Any] = {}
    if run_id:
        sfx = f"-{run_id}"
        kafka.update(alert_topic=k.alert_topic + sfx, next_visit_topic=k.next_visit_topic + sfx,
                     work_topic=k.work_topic + sfx, dead_letter_topic=k.dead_letter_topic + sfx)
        prompt["status_topic"] = p.status_topic + sfx
        butler["registry_url"] = ""
        ingest["group"] = config.ingest.group + sfx
    return dataclasses.replace(
        config, general=section("general", data_dir=str(root)), kafka=section("kafka", **kafka),
        butler=section("butler", **butler), prompt=section("prompt", **prompt),
        ingest=section("ingest", **ingest),
        l1db=section("l1db", url=l1db_url or f"sqlite:///{root / 'l1db.sqlite3'}"))


def hand_off(config: Config, root: Path) -> dict[str, str]:
    """Write ``config`` whole to ``<root>/effective-config.toml`` (owner-only: it may hold
    credentials) and return the environment of a child that runs with it: the inherited
    one minus ``ALERTBUTLER_*`` settings, plus ``ALERTBUTLER_CONFIG`` and one compute thread
    per process with freed memory reused (:data:`alertbutler.procs.COMPUTE_ENV`: the same
    arithmetic in every verb, bit for bit)."""
    path = (root / EFFECTIVE_CONFIG).resolve()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(dump_toml(config, redact=False))
    return {**without_settings(), CONFIG_ENV: str(path), **COMPUTE_ENV}
