"""Fixtures shared by the kernel tests: the SIMD code path and the OpenMP thread count.

The oracles (``tests/oracles_*.py``, one module per concept) are imported by name; pyproject.toml's
``[tool.pytest.ini_options] pythonpath = ["tests"]`` puts this directory on sys.path, so that works in every
``--import-mode``, without making ``tests`` a package (which would put the source tree, without its compiled
modules, ahead of the installed package).
"""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

import cnn_core
from cnn_core.kernels import _activations, _gemm, _pooling

# The instruction sets each test runs on: the run-time dispatch picks AVX2 (+FMA) on capable CPUs, and the
# portable C code everywhere else.
SIMD_PATHS = ("avx2", "baseline")


def simd_available(path: str) -> bool:
    """Whether this CPU can run every kernel family's `path` code."""
    return path in _activations.simd_paths()


def _set_simd(path: str) -> None:
    """Switch every kernel family (GEMM, 2x2 max pooling, activations) to `path`."""
    on = path != "baseline"
    if _gemm.set_simd(on) != on or _pooling.set_simd(on) != on:
        raise RuntimeError(f"set_simd: the GEMM or pooling kernels cannot run the {path} path on this CPU")
    _activations.set_simd(path)


def _get_simd() -> Callable[[], None]:
    """A function that restores the current switches of every kernel family."""
    gemm_on, pool_on, act = _gemm.simd_enabled(), _pooling.simd_enabled(), _activations.get_simd()

    def restore() -> None:
        _gemm.set_simd(gemm_on)
        _pooling.set_simd(pool_on)
        _activations.set_simd(act)
    return restore


@pytest.fixture
def use_simd() -> Iterator[Callable[[str], None]]:
    """A function ``use_simd(path)`` that switches every kernel family to `path` (skipping the test when the
    CPU lacks it); the switches in force before the test are restored afterwards."""
    restore = _get_simd()

    def use(path: str) -> None:
        if not simd_available(path):
            pytest.skip(f"CPU cannot run the {path} path")
        _set_simd(path)
    try:
        yield use
    finally:
        restore()


@pytest.fixture(params=SIMD_PATHS)
def simd(request, use_simd) -> str:
    """Run the test once on each SIMD path (skipped where the CPU lacks it); the value is the path's name."""
    use_simd(request.param)
    return request.param


@pytest.fixture
def num_threads() -> Iterator[Callable[[int], None]]:
    """``cnn_core.set_num_threads``, with the thread count in force before the test restored afterwards."""
    before = cnn_core.get_num_threads()
    try:
        yield cnn_core.set_num_threads
    finally:
        cnn_core.set_num_threads(before)
