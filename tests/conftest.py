"""Fixtures shared by the kernel tests: the SIMD level and the OpenMP thread count.

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


@pytest.fixture
def num_threads() -> Iterator[Callable[[int], None]]:
    """``cnn_core.set_num_threads``, with the thread count in force before the test restored afterwards."""
    before = cnn_core.get_num_threads()
    try:
        yield cnn_core.set_num_threads
    finally:
        cnn_core.set_num_threads(before)
