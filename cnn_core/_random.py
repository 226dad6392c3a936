"""The library's random state: one global generator, reseeded by ``manual_seed``.

Everything random (initialization, shuffling) draws from ``get_rng(rng)``: an explicit ``rng`` argument wins,
otherwise the global generator is used, so ``manual_seed(s)`` makes a whole run reproducible.
"""
from __future__ import annotations

import numbers

import numpy as np

_global_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (like ``torch.manual_seed``) and return it."""
    global _global_rng
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed}")
    _global_rng = np.random.default_rng(int(seed))
    return _global_rng


def get_rng(rng: np.random.Generator | int | None = None) -> np.random.Generator:
    """Resolve an ``rng`` argument: None -> the global generator, an int -> a fresh seeded generator."""
    if rng is None:
        return _global_rng
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"rng: expected a non-negative seed, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng: expected None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")
