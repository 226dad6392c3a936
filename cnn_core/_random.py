"""The library's random state: one global generator, reseeded by ``manual_seed``.

Everything random (initialization, shuffling) draws from ``get_rng(rng)``: an explicit ``rng`` argument wins,
otherwise the global generator is used, so ``manual_seed(s)`` makes a whole run reproducible.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_int, check_seed

_global_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (like ``torch.manual_seed``) and return it."""
    global _global_rng
    _global_rng = np.random.default_rng(check_int(seed, "seed", 0))
    return _global_rng


def get_rng(rng: np.random.Generator | int | None = None) -> np.random.Generator:
    """Resolve an ``rng`` argument: None -> the global generator, an int -> a fresh seeded generator."""
    rng = check_seed(rng, "rng")
    if rng is None:
        return _global_rng
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
