"""Argument checks shared by the kernel wrappers.

Every public kernel validates here, at the Python boundary, and then calls compiled loops that run with
bounds checks off. Messages name the argument, what was expected and what came.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MAX_SIZE = 2**31 - 1      # sizes (kernel, stride, padding, shape entries): far beyond any real layer
MAX_BYTES = 2**47         # no x86-64 or arm64 process can address more: a larger output is an argument error
_INT64_MAX = np.iinfo(np.int64).max


def is_sparse(x) -> bool:
    """Duck-typed test for a scipy.sparse matrix or array (scipy need not be installed)."""
    return hasattr(x, "toarray") and hasattr(x, "tocsr") and hasattr(x, "format")


def not_an_array(x, name: str, expected: str = "a numpy.ndarray") -> TypeError:
    """The TypeError for a non-array argument; sparse input gets the conversion it needs."""
    if is_sparse(x):
        return TypeError(f"{name}: sparse input is not supported; convert with {name}.toarray(), "
                         f"got a {type(x).__name__}")
    return TypeError(f"{name}: expected {expected}, got {type(x).__name__}")


def as_float_array(x, name: str, ndim: int | None = None, dtype=None, contiguous: bool = True) -> np.ndarray:
    """Return `x` as a C-contiguous float32/float64 array, checking its ndim (and dtype when given).

    With ``contiguous=False`` the array is checked but returned as is (for kernels that take strides).

    Integer, bool, complex and object arrays are rejected rather than silently cast: a float kernel fed
    integers is almost always a bug in the caller.
    """
    if not isinstance(x, np.ndarray):
        raise not_an_array(x, name)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)} (to match the other inputs), got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape} ({x.ndim}-D)")
    return np.ascontiguousarray(x) if contiguous else x


def as_index_array(x, name: str, ndim: int) -> np.ndarray:
    """Return `x` as a C-contiguous int64 array (any integer dtype accepted).

    uint64 values above the int64 range are refused here, by their own value: cast, they would wrap to
    negative numbers and be reported as such.
    """
    if not isinstance(x, np.ndarray):
        raise not_an_array(x, name)
    if x.dtype.kind not in "iu":  # signed or unsigned integers (np.issubdtype is several times slower)
        raise TypeError(f"{name}: expected an integer dtype, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape} ({x.ndim}-D)")
    if x.dtype.kind == "u" and x.dtype.itemsize == 8 and x.size and int(x.max()) > _INT64_MAX:
        raise ValueError(f"{name}: expected indices below 2**63, got {int(x.max())}")
    return np.ascontiguousarray(x, dtype=np.int64)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def as_pair(v, name: str, minimum: int = 1) -> tuple[int, int]:
    """Normalize an int or an (h, w) pair of ints, each in minimum..MAX_SIZE.

    Checked as Python ints before any arithmetic: 2**63 is a ValueError naming `name`, not an
    OverflowError from the compiled code, and 1.5 is a TypeError, never truncated.
    """
    if _is_int(v):
        pair = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_int(e) for e in v):
        pair = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {v!r}")
    if max(pair) > MAX_SIZE:
        raise ValueError(f"{name}: expected values <= 2**31-1, got {v!r}")
    return pair


def as_shape(shape, name: str, ndim: int) -> tuple[int, ...]:
    """Normalize a shape tuple of `ndim` ints in 1..MAX_SIZE (non-integral entries are a TypeError)."""
    if not isinstance(shape, (tuple, list)) or not all(_is_int(e) for e in shape):
        raise TypeError(f"{name}: expected a tuple of {ndim} ints, got {shape!r}")
    out = tuple(int(e) for e in shape)
    if len(out) != ndim or min(out) < 1:
        raise ValueError(f"{name}: expected {ndim} positive ints, got {shape!r}")
    if max(out) > MAX_SIZE:
        raise ValueError(f"{name}: expected entries <= 2**31-1, got {shape!r}")
    return out


def conv_output_size(size: int, k: int, s: int, p: int, what: str) -> int:
    """Output length of a sliding window; raises when the window does not fit the padded input, or when
    the padding makes the output longer than MAX_SIZE."""
    if k > size + 2 * p:
        raise ValueError(
            f"kernel_size: {what} kernel {k} is larger than the padded input {size} + 2*{p} = {size + 2 * p}")
    out = (size + 2 * p - k) // s + 1
    if out > MAX_SIZE:
        raise ValueError(f"padding: the {what} output would be {out} long (input {size}, padding {p}), "
                         f"expected at most 2**31-1")
    return out


def check_nbytes(shape: tuple[int, ...], dtype, name: str) -> None:
    """Refuse, before allocating it, an output no process could address (more than MAX_BYTES)."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes > MAX_BYTES:
        raise ValueError(f"{name}: the output of shape {shape} ({np.dtype(dtype)}) would need {nbytes:.3g} "
                         f"bytes, more than a process can address (2**47)")


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
