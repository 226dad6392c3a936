"""Argument checks shared by the kernel wrappers.

Every public kernel validates here, at the Python boundary, and then calls compiled loops that run with
bounds checks off. Messages name the argument, what was expected and what came.
"""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(x, name: str, ndim: int | None = None, dtype=None, contiguous: bool = True) -> np.ndarray:
    """Return `x` as a C-contiguous float32/float64 array, checking its ndim (and dtype when given).

    With ``contiguous=False`` the array is checked but returned as is (for kernels that take strides).

    Integer, bool, complex and object arrays are rejected rather than silently cast: a float kernel fed
    integers is almost always a bug in the caller.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)} (to match the other inputs), got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape} ({x.ndim}-D)")
    return np.ascontiguousarray(x) if contiguous else x


def as_index_array(x, name: str, ndim: int) -> np.ndarray:
    """Return `x` as a C-contiguous int64 array (any integer dtype accepted)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind not in "iu":  # signed or unsigned integers (np.issubdtype is several times slower)
        raise TypeError(f"{name}: expected an integer dtype, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape} ({x.ndim}-D)")
    return np.ascontiguousarray(x, dtype=np.int64)


def as_pair(v, name: str, minimum: int = 1) -> tuple[int, int]:
    """Normalize an int or an (h, w) pair of ints, each at least `minimum`."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        pair = (int(v), int(v))
    elif (isinstance(v, (tuple, list)) and len(v) == 2
          and all(isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in v)):
        pair = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {v!r}")
    return pair


def as_shape(shape, name: str, ndim: int) -> tuple[int, ...]:
    """Normalize a shape tuple of `ndim` positive ints."""
    try:
        out = tuple(map(int, shape))
    except TypeError:
        raise TypeError(f"{name}: expected a tuple of {ndim} ints, got {shape!r}") from None
    if len(out) != ndim or min(out) < 1:
        raise ValueError(f"{name}: expected {ndim} positive ints, got {shape!r}")
    return out


def conv_output_size(size: int, k: int, s: int, p: int, what: str) -> int:
    """Output length of a sliding window; raises when the window does not fit the padded input."""
    if k > size + 2 * p:
        raise ValueError(
            f"kernel_size: {what} kernel {k} is larger than the padded input {size} + 2*{p} = {size + 2 * p}")
    return (size + 2 * p - k) // s + 1


class NonFiniteError(ValueError):
    """NaN or infinity where finite values are required; its own class so that the training loop can tell
    a diverging model (activations overflowing inside forward) from other bad input."""


def check_finite(x: np.ndarray, name: str) -> None:
    """Reject NaN and infinity, which would otherwise propagate silently through training."""
    if not np.isfinite(x).all():
        raise NonFiniteError(f"{name}: expected finite values, got NaN or infinity")


def as_real(v, name: str) -> float:
    """Return a real scalar (Python or NumPy int/float, not bool) as a Python float."""
    if type(v) is float:   # the common case, without the slow numbers.Real check
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {v!r} ({type(v).__name__})")
    return float(v)


def check_nonempty(x: np.ndarray, name: str) -> None:
    """Reject arrays with a zero-length axis: a window over an empty plane has no meaning."""
    if x.size == 0:
        raise ValueError(f"{name}: expected every dimension >= 1, got shape {x.shape}")
