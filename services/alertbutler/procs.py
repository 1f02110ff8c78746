"""Child processes that never outlive their owner.

Each child gets its own process group (so a stop reaches its own children too) and a
parent-death signal (``PR_SET_PDEATHSIG``): if the owner is SIGKILLed the kernel kills the
child. The signal is tied to the thread that forked, so long-lived owners fork from their
main thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Self

_PR_SET_PDEATHSIG = 1

#: Environment for compute children: one thread per numeric library. A multi-threaded BLAS
#: reduction may sum in a different order from run to run (breaking byte-identical replays),
#: and worker processes are the parallelism anyway.
SINGLE_THREADED_MATH = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                        "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
                        "NUMBA_NUM_THREADS": "1"}


#: glibc malloc for compute children: reuse freed memory instead of returning it to the kernel.
#: A 4k x 4k detector-visit makes dozens of 64 MB temporaries; by default glibc serves each
#: from a fresh mmap and unmaps it on free, so the kernel zero-fills every page again
#: (~430,000 page faults, a third of the visit's time). With mmap off (every block from the
#: heap), no trimming of the heap's top and one arena (so a block freed by one thread is
#: reused by another), the pages stay mapped and are reused: ~50,000 faults. The cost: a
#: worker keeps its peak heap until it exits. (M_MMAP_THRESHOLD alone cannot do it: glibc
#: caps it at 32 MB, below the 64 MB temporaries.) Read by glibc at process start, so it is
#: set in the environment of the children we spawn.
REUSE_FREED_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
                      "MALLOC_TOP_PAD_": str(64 << 20), "MALLOC_ARENA_MAX": "1"}

#: Environment for worker and service children: both of the above.
COMPUTE_ENV = {**SINGLE_THREADED_MATH, **REUSE_FREED_MEMORY}


def die_with_parent() -> None:
    """``preexec_fn``: own process group, SIGKILL when the forking thread's process dies."""
    os.setpgid(0, 0)
    libc_name = ctypes.util.find_library("c")
    if libc_name and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn_owned(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` of a child that dies with this process."""
    return subprocess.Popen(list(argv), preexec_fn=die_with_parent, close_fds=True,
                            **kwargs)


def stop_group(proc: subprocess.Popen[Any], *, grace: float = 5.0,
               sig: int = signal.SIGTERM) -> int | None:
    """Signal the child's process group, wait ``grace`` seconds, then SIGKILL it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` on ``host`` can be bound now (SO_REUSEADDR: TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port`` (a server's start-up check)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class ServerProcess:
    """A server child this process owns (``_proc``): its pid, whether it runs, its crash.

    The brokers and the schema registry start and stop theirs differently; what is the same
    for each lives here once. A subclass that keeps its servers in a stop-at-exit list drops
    one there in :meth:`_disown`.
    """

    _proc: subprocess.Popen[Any] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> int | None:
        """SIGKILL the server (a crash: nothing flushed, nothing closed); returns its pid."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        self._disown()
        stop_group(proc, grace=0.0, sig=signal.SIGKILL)
        return proc.pid

    def _disown(self) -> None:
        """Forget this server in any stop-at-exit list (a kill or a stop has ended it)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
