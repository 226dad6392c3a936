"""Argument checks for the whole library: one home, one policy.

TypeError for an argument of the wrong type, ValueError for a wrong value (shape, range, content); every
message names the argument, what was expected and what came ("stride: expected a positive int < 2**31, got
9223372036854775808"). Public functions check here, once, at their boundary, and then call compiled loops
that run with bounds checks off; numbers are checked as Python objects before any arithmetic, so 2**63 or
2**1100 are ValueErrors naming the argument, never an OverflowError from deeper down.

Limits: sizes (features, channels, kernel, stride, padding, shape entries) are ints below 2**31; an array
that would need more than MAX_BYTES = 2**47 bytes (what an x86-64 or arm64 process can address) is refused
before it is allocated.
"""
from __future__ import annotations

import errno
import math
import numbers
import os
import stat
from typing import Any, BinaryIO

import numpy as np

from cnn_core import _finite

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MAX_SIZE = 2**31 - 1      # sizes (kernel, stride, padding, shape entries): far beyond any real layer
MAX_BYTES = 2**47         # no x86-64 or arm64 process can address more: a larger array is an argument error
_INT64_MAX = np.iinfo(np.int64).max


def _show(v: Any) -> str:
    """What came, for a TypeError: a short repr and the type."""
    return f"{v!r:.80} ({type(v).__name__})"


# ---- scalars -----------------------------------------------------------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _int_range(low: int | None, high: int | None) -> str:
    if low == 1 and high == MAX_SIZE:
        return "a positive int < 2**31"
    if high is None:
        return "an int" if low is None else f"an int >= {low}"
    return f"an int <= {high}" if low is None else f"an int in {low}..{high}"


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """An int (Python or NumPy integer, not bool) in low..high (either bound None: open), as a Python int."""
    if not _is_int(value):
        raise TypeError(f"{name}: expected {_int_range(low, high)}, got {_show(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}: expected {_int_range(low, high)}, got {value}")
    return int(value)


def check_size(value, name: str) -> int:
    """A size argument (features, channels, hidden units): a positive int below 2**31."""
    return check_int(value, name, 1, MAX_SIZE)


def as_real(value, name: str) -> float:
    """A real number (Python or NumPy int/float, not bool) as a Python float; any value, inf and NaN too,
    except an int too large for a float (a ValueError rather than OverflowError)."""
    if type(value) is float:   # the common case, without the slow numbers.Real check
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {_show(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name}: expected a finite number, got an int of {int(value).bit_length()} bits "
                         f"(beyond float64's range)") from None


def check_real(value, name: str, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (not bool) in [low, high] as a Python float; `low_open`/`high_open` exclude the
    bound itself (low=0, low_open=True: a positive number)."""
    v = as_real(value, name)
    if not (math.isfinite(v) and (low is None or v > low or (v == low and not low_open))
            and (high is None or v < high or (v == high and not high_open))):
        bounds = [f"{'>' if low_open else '>='} {low:g}"] if low is not None else []
        bounds += [f"{'<' if high_open else '<='} {high:g}"] if high is not None else []
        raise ValueError(f"{name}: expected a finite number{' ' + ', '.join(bounds) if bounds else ''}, "
                         f"got {value!r}")
    return v


def check_bool(value, name: str) -> bool:
    """A bool (Python or NumPy) as a Python bool; 0, 1, "yes" and None are TypeErrors."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {_show(value)}")
    return bool(value)


def check_seed(value, name: str):
    """A random seed argument: None, a numpy.random.Generator, or an int >= 0 (returned as a Python int)."""
    if value is None or isinstance(value, np.random.Generator):
        return value
    if not _is_int(value):
        raise TypeError(f"{name}: expected None, an int seed or a numpy.random.Generator, got {_show(value)}")
    if value < 0:
        raise ValueError(f"{name}: expected a non-negative seed, got {value}")
    return int(value)


def check_choice(value, name: str, choices) -> Any:
    """One of `choices` (strings, or None): another type is a TypeError, another value a ValueError.

    Checked by type before membership, so an unhashable value (a list) is named instead of failing inside a
    dict lookup.
    """
    types = tuple({type(c) for c in choices})
    listed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, types):
        raise TypeError(f"{name}: expected one of {listed}, got {_show(value)}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {listed}, got {value!r:.80}")
    return value


def check_path(path, name: str = "path") -> str | bytes:
    """A file-system path argument (str, bytes or os.PathLike) through os.fspath, else a TypeError naming
    `name` (os.fspath's own message names nothing)."""
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{name}: expected a str or os.PathLike file path, got {_show(path)}") from None


# ---- arrays ------------------------------------------------------------------------------------------------

def is_sparse(x) -> bool:
    """Duck-typed test for a scipy.sparse matrix or array (scipy need not be installed)."""
    return hasattr(x, "toarray") and hasattr(x, "tocsr") and hasattr(x, "format")


def not_an_array(x, name: str, expected: str = "a numpy.ndarray") -> TypeError:
    """The TypeError for a non-array argument; sparse input gets the conversion it needs.

    `name` may carry a prefix ("Linear: x"); the conversion hint names the argument itself.
    """
    if is_sparse(x):
        arg = name.rsplit(": ", 1)[-1]
        return TypeError(f"{name}: sparse input is not supported; convert with {arg}.toarray(), "
                         f"got a {type(x).__name__}")
    return TypeError(f"{name}: expected {expected}, got {type(x).__name__}")


def check_float_dtype(dtype, name: str) -> None:
    """float32 or float64, else a TypeError naming `name`."""
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {dtype}")


def as_float_array(x, name: str, ndim: int | None = None, dtype=None, contiguous: bool = True) -> np.ndarray:
    """Return `x` as a C-contiguous float32/float64 array, checking its ndim (and dtype when given).

    With ``contiguous=False`` the array is checked but returned as is (for kernels that take strides).

    Integer, bool, complex and object arrays are rejected rather than silently cast: a float kernel fed
    integers is almost always a bug in the caller.
    """
    if not isinstance(x, np.ndarray):
        raise not_an_array(x, name)
    check_float_dtype(x.dtype, name)
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


def check_output(out, name: str, shape: tuple[int, ...], dtype: np.dtype, of: str,
                 optional: bool = True) -> np.ndarray:
    """An output buffer: a C-contiguous, writable ndarray of `shape` and `dtype` (`of` says whose dtype).
    optional=False: a buffer the caller must pass (its TypeError does not offer None)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray{' or None' if optional else ''}, "
                        f"got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} ({of}), got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array, got a non-contiguous view")
    if not out.flags.writeable:
        raise ValueError(f"{name}: expected a writable array, got a read-only one")
    return out


class NonFiniteError(ValueError):
    """NaN or infinity where finite values are required; its own class so that the training loop can tell
    a diverging model (activations overflowing inside forward) from other bad input."""


def all_finite(x: np.ndarray) -> bool:
    """True when the array x holds no NaN and no infinity: the compiled scan (cnn_core._finite: one read, no
    temporary, split over threads when large) for C-contiguous float32/float64 in native byte order, NumPy's
    test for any other array."""
    if x.dtype in FLOAT_DTYPES and x.flags.c_contiguous:
        return _finite.all_finite((x,))
    return bool(np.isfinite(x).all())


def check_finite(x: np.ndarray, name: str) -> None:
    """Reject NaN and infinity, which would otherwise propagate silently through training."""
    if not all_finite(x):
        raise NonFiniteError(f"{name}: expected finite values, got NaN or infinity")


def check_nonempty(x: np.ndarray, name: str) -> None:
    """Reject arrays with a zero-length axis: a window over an empty plane has no meaning."""
    if x.size == 0:
        raise ValueError(f"{name}: expected every dimension >= 1, got shape {x.shape}")


def check_nbytes(shape: tuple[int, ...], dtype, name: str, what: str = "the output") -> None:
    """Refuse, before allocating it, an array no process could address (more than MAX_BYTES)."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes > MAX_BYTES:
        raise ValueError(f"{name}: {what} of shape {shape} ({np.dtype(dtype)}) would need {nbytes:.3g} "
                         f"bytes, more than a process can address (2**47)")


# ---- geometry ----------------------------------------------------------------------------------------------

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


def open_regular(path: str | bytes) -> BinaryIO:
    """`path` opened for binary reading, if it is a regular file: every file the library reads from a user
    (models, .npy inputs, IDX data sets) is opened here.

    A FIFO blocks open() until a writer comes, and a device such as /dev/zero never ends: anything but a
    regular file is refused from os.stat before it is opened (opening some devices has effects), and once more
    from fstat of what was opened, without blocking, in case the path changed in between. Raises
    FileNotFoundError, IsADirectoryError, or OSError (EINVAL) for a FIFO, socket or device, each with the path
    as its ``filename``; open()'s own errors (permissions, ...) pass through.
    """
    try:
        _refuse_irregular(os.stat(path).st_mode, path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        _refuse_irregular(os.fstat(fd).st_mode, path)
    except BaseException:
        os.close(fd)
        raise
    # O_NONBLOCK is harmless from here on: reads of a regular file never wait on it.
    return os.fdopen(fd, "rb")


def _refuse_irregular(mode: int, path) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "expected a file, got a directory", path)
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    raise OSError(errno.EINVAL, f"expected a regular file, got a special file ({kind}), which can block or "
                                "never end", path)
