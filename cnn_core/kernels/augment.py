"""Batch kernels for cnn_core.data: gather rows by index, shift/crop/flip images, per-channel normalization.

The public functions check their arguments (TypeError/ValueError naming them) and call the unchecked
`_`-prefixed entry points, which cnn_core.data calls directly on arrays it has already validated.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import all_finite as _all_finite, as_float_array, check_output, not_an_array
from cnn_core.kernels import _augment

__all__ = ["gather", "shift_crop", "normalize", "all_finite"]


def all_finite(x: np.ndarray) -> bool:
    """True when the float32/float64 array x holds no NaN and no infinity."""
    return _all_finite(as_float_array(x, "x", contiguous=False))


# Rows of a C-contiguous float (N, C) `out` whose argmax equals the int64 label, -1 for other arrays.
_count_argmax_hits = _augment.count_argmax_hits


def _gather(src: np.ndarray, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[k] = src[idx[k]]: src and out C-contiguous of one dtype, idx int64 in range (unchecked)."""
    if out.size:
        _augment.gather_rows(src.reshape(len(src), -1).view(np.uint8), idx,
                             out.reshape(len(out), -1).view(np.uint8))
    return out


def gather(src: np.ndarray, idx, out: np.ndarray | None = None) -> np.ndarray:
    """src[idx] along the first axis (NumPy's fancy indexing), written into `out` when given (reused buffer)."""
    if not isinstance(src, np.ndarray):
        raise not_an_array(src, "src")
    if src.ndim == 0:
        raise ValueError("src: expected an array with samples along the first axis, got a 0-d array")
    src = np.ascontiguousarray(src)
    idx = np.asarray(idx)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise TypeError(f"idx: expected a 1-D integer array, got {idx.dtype} of shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= len(src)):
        raise ValueError(f"idx: expected indices in [0, {len(src)}), got values in [{idx.min()}, {idx.max()}]")
    shape = (len(idx),) + src.shape[1:]
    out = np.empty(shape, src.dtype) if out is None else check_output(out, "out", shape, src.dtype, "src's")
    return _gather(src, idx.astype(np.int64, copy=False), out)


def _shift_crop(x: np.ndarray, oy: np.ndarray, ox: np.ndarray, flip: np.ndarray, size: tuple[int, int],
                out: np.ndarray | None = None) -> np.ndarray:
    """The shift_crop kernel on a checked (N, C, H, W) batch; oy, ox int64 (N,), flip uint8 (N,)."""
    if out is None:
        out = np.empty(x.shape[:2] + tuple(size), x.dtype)
    if out.size:
        _augment.shift_crop(x, out, oy, ox, flip)
    return out


def shift_crop(x: np.ndarray, oy, ox, flip, size: tuple[int, int]) -> np.ndarray:
    """out[n, c, i, j] = x[n, c, i + oy[n], j' + ox[n]] (j' = W_out - 1 - j where flip[n], else j), zero outside
    x: crops of zero-padded images, shifts and horizontal flips in one pass. x (N, C, H, W); size (H_out, W_out)."""
    x = as_float_array(x, "x", ndim=4)
    n = len(x)
    oy, ox = (np.asarray(v) for v in (oy, ox))
    for name, v in (("oy", oy), ("ox", ox)):
        if v.shape != (n,) or v.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected {n} integer offsets, got {v.dtype} of shape {v.shape}")
    flip = np.asarray(flip)
    if flip.shape != (n,) or flip.dtype.kind not in "bui":
        raise TypeError(f"flip: expected {n} booleans, got {flip.dtype} of shape {flip.shape}")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size: expected (H_out, W_out) >= 1, got {size!r}")
    return _shift_crop(x, oy.astype(np.int64), ox.astype(np.int64), (flip != 0).astype(np.uint8),
                       (int(size[0]), int(size[1])))


def _normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(x - mean[c]) / std[c] over axis 1 of a checked C-contiguous (N, C, ...) batch; mean, std float64 (C,)."""
    if out is None:
        out = np.empty_like(x)
    if out.size:
        shape3 = (x.shape[0], x.shape[1], -1)
        _augment.normalize(x.reshape(shape3), out.reshape(shape3), mean, std)
    return out


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    """(x - mean[c]) / std[c] with channels along axis 1 of x (N, C, ...), in x's precision."""
    x = as_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x: expected (N, C, ...) with channels on axis 1, got shape {x.shape}")
    mean = np.broadcast_to(np.asarray(mean, np.float64), (x.shape[1],)).copy()
    std = np.broadcast_to(np.asarray(std, np.float64), (x.shape[1],)).copy()
    return _normalize(x, mean, std)
