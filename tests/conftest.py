"""Fixtures shared by the tests: the SIMD level, the OpenMP thread count, and a calm machine for the pool.

The oracles (``tests/oracles_*.py``, one module per concept) are imported by name; pyproject.toml's
``[tool.pytest.ini_options] pythonpath = ["tests"]`` puts this directory on sys.path, so that works in every
``--import-mode``, without making ``tests`` a package (which would put the source tree, without its compiled
modules, ahead of the installed package).
"""
from __future__ import annotations

import os

# scikit-learn's check_estimator runs its array-API check only when SciPy's array-API mode is on, and SciPy
# reads the variable once, at its first import: set it before any test imports scikit-learn.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

from typing import Callable, Iterator

import pytest

import cnn_core

# The instruction-set levels each test runs on (cnn_core.set_simd), highest first. Every kernel family
# (GEMM, 2x2 max pooling, activations) switches with the one level; at "avx512" the packed GEMM runs its
# AVX-512 kernels and the other families their AVX2 ones, so every entry of the avx512 tables is exercised.
SIMD_PATHS = ("avx512", "avx2", "baseline")


def simd_available(path: str) -> bool:
    """Whether this CPU can run the `path` level."""
    return path in cnn_core.cpu_simd_levels()


@pytest.fixture
def use_simd() -> Iterator[Callable[[str], None]]:
    """A function ``use_simd(path)`` that switches every kernel family to `path` through
    ``cnn_core.set_simd`` (skipping the test when the CPU lacks it); the level in force before the test is
    restored afterwards."""
    before = cnn_core.get_simd()

    def use(path: str) -> None:
        if not simd_available(path):
            pytest.skip(f"CPU cannot run the {path} path")
        cnn_core.set_simd(path)
        assert cnn_core.get_simd() == path
    try:
        yield use
    finally:
        cnn_core.set_simd(before)


@pytest.fixture(params=SIMD_PATHS)
def simd(request, use_simd) -> str:
    """Run the test once on each SIMD path (skipped where the CPU lacks it); the value is the path's name."""
    use_simd(request.param)
    return request.param


@pytest.fixture(params=["avx512", "avx512-packed", "avx512-unpacked", "avx2", "avx2-packed", "avx2-unpacked",
                        "baseline"])
def kernel(request, use_simd):
    """Run a test with the AVX-512 and the AVX2+FMA micro-kernels (packing chosen by shape, forced on,
    forced off) and with the portable C one (a level the CPU lacks is skipped)."""
    from cnn_core.kernels import _gemm

    path, _, packing = request.param.partition("-")
    use_simd(path)
    _gemm.set_unpacked({"packed": 0, "unpacked": 1}.get(packing, -1))
    yield request.param
    _gemm.set_unpacked(-1)


@pytest.fixture
def num_threads() -> Iterator[Callable[[int], None]]:
    """``cnn_core.set_num_threads``, with the thread count in force before the test restored afterwards."""
    before = cnn_core.get_num_threads()
    try:
        yield cnn_core.set_num_threads
    finally:
        cnn_core.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def calm_machine(tmp_path_factory) -> Iterator[None]:
    """The pool's look at the load (src_c/threads.c) reads a calm machine for the whole session, a file of
    the session's own in /proc/loadavg's format: teams, and the pool's workers, then do not depend on what
    else the machine runs (a busy machine runs every product on one thread). The tests of the busy machine
    run in subprocesses, which read the real load or their own file."""
    from calm import use_calm_load
    from cnn_core import _config

    use_calm_load(tmp_path_factory.mktemp("load") / "loadavg")
    yield
    _config._pool_set_load_file(None)


@pytest.fixture(scope="session", autouse=True)
def recycle_small_arrays() -> Iterator[None]:
    """Module._handout recycles arrays of every size (nn.module._HANDOUT_MIN_BYTES = 0): the tests' small
    shapes then exercise the recycling that full-size layers get (test_nn_module checks the threshold)."""
    from cnn_core.nn import module
    saved, module._HANDOUT_MIN_BYTES = module._HANDOUT_MIN_BYTES, 0
    yield
    module._HANDOUT_MIN_BYTES = saved


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two threads, the GEMM's back-off after a shared core forgotten, and the pool's spin window restored
    afterwards: the pool's tests and those of the work it runs between its jobs."""
    from cnn_core import _config
    from cnn_core.kernels import _gemm

    before = cnn_core.get_num_threads()
    cnn_core.set_num_threads(2)
    _gemm.reset_backoff()
    yield
    cnn_core.set_num_threads(before)
    _config._pool_set_spin_us(-1)
