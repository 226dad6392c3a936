"""What the tests of the threads share: a calm machine for the pool's look at the load (src_c/threads.c
reads /proc/loadavg's running tasks and starts no team while other tasks want the cores), and the mark of
the tests that need the pool.

A test session (conftest's calm_machine) and the fresh interpreters some tests start (test_threads'
calm_load, test_gemm's one-CPU script) point the look at a file of their own that shows a calm machine, so
that the team sizes they observe do not depend on what else the machine runs. The tests of the busy
machine write other loads, or read the real one."""
from __future__ import annotations

import os
import sys

import pytest

import cnn_core

# /proc/loadavg's format: three load averages, running/total tasks, the last pid. One running task: the
# reader itself.
CALM_LOADAVG = "0.00 0.00 0.00 1/100 4242\n"

HAS_POOL = cnn_core.openmp_enabled() and sys.platform.startswith("linux")
NO_POOL = "the pool exists in OpenMP builds on Linux (futex) only"
needs_pool = pytest.mark.skipif(not HAS_POOL, reason=NO_POOL)


def use_calm_load(path: str | os.PathLike) -> None:
    """Write a calm load to the file `path` and make the pool's look read it."""
    from cnn_core import _config

    with open(path, "w") as f:
        f.write(CALM_LOADAVG)
    _config._pool_set_load_file(os.path.abspath(path))
