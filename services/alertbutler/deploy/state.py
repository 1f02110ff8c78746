"""Where a running ``alertbutler up`` is: ``<data_dir>/up/deployment.json``.

Something that feeds a deployment from outside (``alertbutler night replay --into``, a
simulator, an operator's script) needs its broker, topics, landing area, central repo, L1
database and camera geometry. ``up`` writes them once its services are started and removes
the file when it stops; :func:`find_state` reads it back, given the deployment's data
directory (or the file itself), and refuses a file whose ``up`` is no longer running, and
one that another user owns or could have written (it names a broker, whose client settings
(credentials included) a feeder would hand to it, and directories a feeder writes to).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alertbutler.errors import AlertbutlerError

if TYPE_CHECKING:
    from alertbutler.config import Config

STATE_FILE = "deployment.json"
FORMAT = "alertbutler-deployment"


class DeploymentNotFoundError(AlertbutlerError, RuntimeError):
    """No running deployment where one was named."""


@dataclass(frozen=True, kw_only=True)
class DeploymentState:
    """What a feeder needs to know about a running deployment."""

    pid: int
    started_at: float
    data_dir: str
    bootstrap: str
    next_visit_topic: str
    alert_topic: str
    status_topic: str
    landing_dir: str
    central_repo: str
    #: the L1 database URL as the services use it (the file is private to its owner)
    l1db_url: str
    #: the camera the fan-out and workers were started for
    camera: str = "simcam"
    n_detectors: int | None = None
    detector_size: int | None = None
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        """Atomically (aside, then renamed), readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"format": FORMAT, **dataclasses.asdict(self)}, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, path: Path) -> DeploymentState:
        try:
            info = path.stat()
            if info.st_uid != os.getuid() or info.st_mode & 0o022:
                raise DeploymentNotFoundError(
                    f"{path}: refused: a deployment file must belong to this user and be "
                    "writable by nobody else (it tells a feeder where to send credentials "
                    "and write files)")
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DeploymentNotFoundError(f"{path}: not a readable deployment file ({exc})"
                                          ) from None
        if data.pop("format", None) != FORMAT:
            raise DeploymentNotFoundError(f"{path}: not an alertbutler deployment file")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def alive(self) -> bool:
        """True while the ``up`` process that wrote the file runs: a process of this user
        with that pid, started no later than the file (a reused pid started after it)."""
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):  # gone, or not ours: not our ``up``
            return False
        started = _process_start(self.pid)
        return started is None or started <= self.started_at + 1.0


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), where /proc tells."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text()
                    .splitlines() if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def state_path(data_dir: Path) -> Path:
    """The state file of a deployment whose (base) data directory is ``data_dir``."""
    return Path(data_dir) / "up" / STATE_FILE


def find_state(where: Path) -> DeploymentState:
    """The running deployment at ``where``: its data directory, ``<data_dir>/up``, or the
    state file itself."""
    where = Path(where)
    candidates = [where] if where.is_file() else [state_path(where), where / STATE_FILE]
    for path in candidates:
        if path.is_file():
            state = DeploymentState.read(path)
            if not state.alive:
                raise DeploymentNotFoundError(
                    f"{path}: the deployment (pid {state.pid}) is not running any more")
            return state
    raise DeploymentNotFoundError(
        f"no running deployment at {where}: start `alertbutler up` with this data directory "
        f"(it writes {state_path(where)})")


def state_fields(config: Config, **extra: Any) -> dict[str, Any]:
    """The fields of a state taken from a deployment's effective configuration."""
    return {
        "bootstrap": config.kafka.bootstrap_servers,
        "next_visit_topic": config.kafka.next_visit_topic,
        "alert_topic": config.kafka.alert_topic,
        "status_topic": config.prompt.status_topic,
        "landing_dir": str(config.prompt.landing_dir),
        "central_repo": str(config.central_repo),
        "l1db_url": config.l1db_url,
        **extra,
    }
