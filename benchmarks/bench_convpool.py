"""im2col/col2im and pooling kernels vs the best vectorized NumPy a user would write, at LeNet-5 shapes.

Batch 64, float32. Each NumPy baseline tries the usual candidates (stride tricks, reshapes, np.add.at,
np.put_along_axis, loops over kernel offsets, ...) and keeps the fastest, whose name is printed. Every
candidate is checked against our kernel's output before timing. Times are medians.

    python benchmarks/bench_convpool.py [--threads N] [--repeats N]
"""
from __future__ import annotations

import argparse

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads
import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from cnn_core import get_num_threads, set_num_threads
from cnn_core.kernels import (avg_pool2d_backward, avg_pool2d_forward, col2im, im2col, max_pool2d_backward,
                              max_pool2d_forward)

DTYPE = np.float32
REPEAT = 15
BLOCK_SECONDS = 0.02  # calls are batched so each timed block lasts >= 20 ms


def median_time(fn, repeats: int) -> float:
    return _timing.median_time(fn, repeats, min_time=BLOCK_SECONDS)


def _pad(x, ph, pw):
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _out(size, k, s, p=0):
    return (size + 2 * p - k) // s + 1


# ---- NumPy baselines: each returns {candidate name: callable} for one problem ----

def np_im2col(x, k, s, p):
    n, c, h, w = x.shape
    oh, ow = _out(h, k, s, p), _out(w, k, s, p)

    def window_view():
        v = sliding_window_view(_pad(x, p, p), (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, OH, OW, K, K)
        return v.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * k * k, oh * ow)

    def strided():
        xp = _pad(x, p, p)
        sn, sc, sh, sw = xp.strides
        v = as_strided(xp, (n, c, k, k, oh, ow), (sn, sc, sh, sw, s * sh, s * sw))
        return v.reshape(n, c * k * k, oh * ow)

    return {"sliding_window_view": window_view, "as_strided": strided}


def np_col2im(cols, x_shape, k, s, p):
    n, c, h, w = x_shape
    hp, wp = h + 2 * p, w + 2 * p
    oh, ow = _out(h, k, s, p), _out(w, k, s, p)
    # flat indices into the padded batch, precomputed once as a user would per layer
    ci, ki, kj, oi, oj = np.meshgrid(np.arange(c), np.arange(k), np.arange(k), np.arange(oh), np.arange(ow),
                                     indexing="ij")
    plane = (ci * hp + oi * s + ki) * wp + oj * s + kj
    flat = (np.arange(n)[:, None] * (c * hp * wp) + plane.reshape(1, -1)).ravel()

    def add_at():
        xp = np.zeros(n * c * hp * wp, dtype=cols.dtype)
        np.add.at(xp, flat, cols.ravel())
        return xp.reshape(n, c, hp, wp)[:, :, p:p + h, p:p + w]

    def offset_loop():
        xp = np.zeros((n, c, hp, wp), dtype=cols.dtype)
        c6 = cols.reshape(n, c, k, k, oh, ow)
        for i in range(k):
            for j in range(k):
                xp[:, :, i:i + s * oh:s, j:j + s * ow:s] += c6[:, :, i, j]
        return xp[:, :, p:p + h, p:p + w]

    return {"np.add.at": add_at, "loop over kernel offsets": offset_loop}


def _windows(x, k, s):
    """(N, C, OH, OW, K*K) copy of the pooling windows: a reshape when windows tile, else a sliding view."""
    n, c, h, w = x.shape
    oh, ow = _out(h, k, s), _out(w, k, s)
    if k == s:
        v = x[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k).transpose(0, 1, 2, 4, 3, 5)
    else:
        v = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return v.reshape(n, c, oh, ow, k * k)


def np_max_forward(x, k, s):
    n, c, h, w = x.shape
    oh, ow = _out(h, k, s), _out(w, k, s)
    base = (np.arange(oh)[:, None] * s * w + np.arange(ow)[None, :] * s)  # window origins, flat

    def argmax_windows():
        win = _windows(x, k, s)
        a = win.argmax(axis=-1)
        out = np.take_along_axis(win, a[..., None], axis=-1)[..., 0]
        return out, base + (a // k) * w + a % k

    return {"reshape/sliding window + argmax": argmax_windows}


def np_max_backward(dout, argmax, x_shape, overlapping):
    n, c, h, w = x_shape
    offsets = (np.arange(n * c) * (h * w))[:, None]

    def add_at():
        dx = np.zeros(n * c * h * w, dtype=dout.dtype)
        np.add.at(dx, (argmax.reshape(n * c, -1) + offsets).ravel(), dout.ravel())
        return dx.reshape(x_shape)

    def bincount():
        flat = (argmax.reshape(n * c, -1) + offsets).ravel()
        return np.bincount(flat, weights=dout.ravel(), minlength=n * c * h * w).astype(dout.dtype).reshape(x_shape)

    def put_along_axis():
        dx = np.zeros((n * c, h * w), dtype=dout.dtype)
        np.put_along_axis(dx, argmax.reshape(n * c, -1), dout.reshape(n * c, -1), axis=1)
        return dx.reshape(x_shape)

    cands = {"np.add.at": add_at, "np.bincount": bincount}
    if not overlapping:  # windows share no element, so a plain scatter is exact
        cands["np.put_along_axis"] = put_along_axis
    return cands


def np_avg_forward(x, k, s):
    return {"reshape/sliding window + mean": lambda: _windows(x, k, s).mean(axis=-1)}


def np_avg_backward(dout, x_shape, k, s):
    n, c, h, w = x_shape
    oh, ow = dout.shape[2:]

    def broadcast():
        dx = np.zeros(x_shape, dtype=dout.dtype)
        g = np.broadcast_to((dout / (k * k))[:, :, :, None, :, None], (n, c, oh, k, ow, k))
        dx[:, :, :oh * k, :ow * k] = g.reshape(n, c, oh * k, ow * k)
        return dx

    def repeat():
        dx = np.zeros(x_shape, dtype=dout.dtype)
        dx[:, :, :oh * k, :ow * k] = np.repeat(np.repeat(dout / (k * k), k, axis=2), k, axis=3)
        return dx

    def offset_loop():
        dx = np.zeros(x_shape, dtype=dout.dtype)
        g = dout / (k * k)
        for i in range(k):
            for j in range(k):
                dx[:, :, i:i + s * oh:s, j:j + s * ow:s] += g
        return dx

    cands = {"loop over kernel offsets": offset_loop}
    if k == s:
        cands.update({"broadcast": broadcast, "np.repeat": repeat})
    return cands


# ---- driver ----

def _compare(name, ours, candidates, rows, labels, repeats):
    ref = ours()
    best_name, best_t = None, np.inf
    for cand_name, fn in candidates.items():
        got = fn()
        for r, g in zip(ref if isinstance(ref, tuple) else (ref,), got if isinstance(got, tuple) else (got,)):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5, err_msg=f"{name}: {cand_name}")
        t = median_time(fn, repeats)
        if t < best_t:
            best_name, best_t = cand_name, t
    rows.append((name, median_time(ours, repeats), best_t))
    labels[name] = best_name


def run(with_labels: bool = False, threads: int | None = None, repeats: int = REPEAT):
    """Rows (name, ours_seconds, numpy_seconds), medians of `repeats` blocks; with_labels also returns the
    baseline used per row.

    threads: OpenMP thread count for our kernels during the run (default: leave as is).
    """
    saved = get_num_threads()
    if threads is not None:
        set_num_threads(threads)
    try:
        return _run(with_labels, repeats)
    finally:
        set_num_threads(saved)


def _run(with_labels: bool, repeats: int):
    rng = np.random.default_rng(0)
    rows, labels = [], {}
    for tag, shape, k, p in (("conv1", (64, 1, 28, 28), 5, 2), ("conv2", (64, 6, 14, 14), 5, 0)):
        x = rng.standard_normal(shape).astype(DTYPE)
        cols = im2col(x, k, 1, p)
        g = rng.standard_normal(cols.shape).astype(DTYPE)
        _compare(f"im2col {tag} {shape} k{k} p{p}", lambda: im2col(x, k, 1, p), np_im2col(x, k, 1, p),
                 rows, labels, repeats)
        _compare(f"col2im {tag} {shape} k{k} p{p}", lambda: col2im(g, shape, k, 1, p),
                 np_col2im(g, shape, k, 1, p), rows, labels, repeats)
    for shape, k, s in (((64, 6, 28, 28), 2, 2), ((64, 16, 10, 10), 2, 2), ((64, 6, 28, 28), 3, 2)):
        x = rng.standard_normal(shape).astype(DTYPE)
        out, argmax = max_pool2d_forward(x, k, s)
        g = rng.standard_normal(out.shape).astype(DTYPE)
        tag = f"{shape} k{k} s{s}"
        _compare(f"max_pool fwd {tag}", lambda: max_pool2d_forward(x, k, s), np_max_forward(x, k, s),
                 rows, labels, repeats)
        _compare(f"max_pool bwd {tag}", lambda: max_pool2d_backward(g, argmax, shape),
                 np_max_backward(g, argmax, shape, overlapping=s < k), rows, labels, repeats)
        _compare(f"avg_pool fwd {tag}", lambda: avg_pool2d_forward(x, k, s), np_avg_forward(x, k, s),
                 rows, labels, repeats)
        _compare(f"avg_pool bwd {tag}", lambda: avg_pool2d_backward(g, shape, k, s),
                 np_avg_backward(g, shape, k, s), rows, labels, repeats)
    return (rows, labels) if with_labels else rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads for cnn_core (default: all)")
    parser.add_argument("--repeats", type=int, default=REPEAT, help=f"timed blocks per kernel (default {REPEAT})")
    args = parser.parse_args()
    threads = get_num_threads() if args.threads is None else args.threads
    rows, labels = run(with_labels=True, threads=threads, repeats=args.repeats)
    print(_timing.machine())
    print(f"cnn_core conv/pool kernels vs NumPy, float32, {threads} threads, medians")
    print(f"{'kernel':<40} {'ours (us)':>10} {'numpy (us)':>11} {'ratio':>7}  numpy baseline")
    for name, ours, ref in rows:
        print(f"{name:<40} {ours * 1e6:10.1f} {ref * 1e6:11.1f} {ref / ours:6.1f}x  {labels[name]}")


if __name__ == "__main__":
    main()
