"""Compute children reuse freed memory (issue 18, item 4): a worker's 64 MB temporaries come
back from the heap instead of fresh kernel pages. Counted in page faults, not timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from alertbutler.procs import COMPUTE_ENV, REUSE_FREED_MEMORY

_CHILD = """
import json, resource
import numpy as np
b = np.ones((4096, 4096), np.float32)
for _ in range(3):  # warm: the first temporaries fault in under any setting
    c = b * 2.0 + 1.0; del c
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    c = b * 2.0 + 1.0  # 64 MB temporaries, written whole, then freed (as ISR's arithmetic)
    d = np.sqrt(c)
    del c, d
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _faults(env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def test_children_reuse_freed_64mb_temporaries() -> None:
    plain = {k: v for k, v in os.environ.items() if k not in REUSE_FREED_MEMORY}
    default = _faults(plain)
    tuned = _faults({**plain, **COMPUTE_ENV})
    # by default glibc maps and unmaps each temporary: its pages fault in again every time
    # (fewer faults where numpy gets transparent huge pages, but the kernel still zero-fills
    # them); tuned, the same heap pages are reused
    assert default > 0
    assert tuned * 10 <= default, (default, tuned)


def test_compute_env_keeps_single_threaded_math() -> None:
    assert COMPUTE_ENV["OMP_NUM_THREADS"] == "1"
    assert COMPUTE_ENV["MALLOC_MMAP_MAX_"] == "0"
