"""A night's worker processes: started with the night's whole configuration, watched, stopped.

Each worker is a child process owned by the one that runs the night (it dies with it, even
on SIGKILL), with its output in ``<log_dir>/worker-<i>.log``. What a worker is (``alertbutler
worker``, or the replay's worker with the recorded clock) is the caller's ``command``; its
environment comes from :func:`alertbutler.night.config.hand_off`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class WorkerPool:
    """``n`` worker processes, ``command(i)`` each, in the environment ``env``."""

    def __init__(self, command: Callable[[int], list[str]], n: int, *, env: Mapping[str, str],
                 log_dir: Path) -> None:
        from alertbutler.procs import spawn_owned

        log_dir.mkdir(parents=True, exist_ok=True)
        self.logs = [log_dir / f"worker-{i}.log" for i in range(n)]
        self.procs: list[subprocess.Popen[Any]] = []
        for i in range(n):
            out = open(self.logs[i], "ab")  # noqa: SIM115 - closed with the process
            self.procs.append(spawn_owned(command(i), env=dict(env), stdout=out, stderr=out,
                                          stdin=subprocess.DEVNULL))

    def dead(self) -> list[int]:
        """Indexes of the workers that exited."""
        return [i for i, p in enumerate(self.procs) if p.poll() is not None]

    def tail(self, index: int, lines: int = 5) -> str:
        """The last lines of a worker's log (why it exited)."""
        try:
            return "\n".join(self.logs[index].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the live workers have used (from /proc)."""
        total = 0.0
        for proc in self.procs:
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def crashed(self, mark: Path) -> dict[str, Any] | None:
        """The mark of a crash point that struck, checked against the worker it names (it
        must have died by SIGKILL); None when no crash point struck."""
        from alertbutler.faults import crash_mark

        struck = crash_mark(mark)
        if struck is None:
            return None
        codes = {p.pid: p.returncode for p in self.procs}
        if codes.get(int(struck["pid"])) != -signal.SIGKILL:  # type: ignore[call-overload]
            raise RuntimeError(f"crash mark {struck} names no worker killed by SIGKILL "
                               f"(workers' exit codes {codes})")
        return struck

    def stop(self) -> None:
        """SIGTERM every worker (each finishes or hands back its item), then wait."""
        from alertbutler.procs import stop_group

        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            stop_group(proc, grace=10)
