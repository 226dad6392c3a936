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


def get_rng_state() -> dict:
    """A copy of the global generator's state (its bit generator's `state` dict), for checkpoints."""
    return _global_rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore the global generator to a state from get_rng_state(), in place (generators obtained from
    get_rng() before follow it). ValueError/TypeError naming `state` when it is not such a state."""
    bit_generator = _global_rng.bit_generator
    name = type(bit_generator).__name__
    if not isinstance(state, dict):
        raise TypeError(f"state: expected a dict from get_rng_state(), got {type(state).__name__}")
    if state.get("bit_generator") != name:
        raise ValueError(f"state: expected the state of a {name} generator, got {str(state.get('bit_generator'))[:40]!r}")
    trial = type(bit_generator)()
    try:  # NumPy checks the fields; tried on a scratch generator so a bad state changes nothing
        trial.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise ValueError(f"state: not a valid {name} state ({type(e).__name__}: {e})") from None
    bit_generator.state = trial.state
