"""Batches over in-memory arrays (`DataLoader`) and per-batch augmentation transforms.

`DataLoader(X, y, batch_size, shuffle, drop_last, transform, seed)` yields `(X_batch, y_batch)` pairs (or
`X_batch` alone without y), gathering each shuffled batch by index (one compiled row copy per batch, never a
copy of the whole set per epoch); unshuffled batches are views. `cnn_core.fit(model, loss, opt, loader,
epochs=...)` trains from a loader; fit gathers into buffers it reuses, the next few shuffled batches at once
in the background while the current ones train (on the GEMM pool's workers between their products, or on a
thread of its own when the kernels run on one thread; on the training thread itself while the 1-minute load
average exceeds the cores; `cnn_core.data.PREFETCH_THREAD = True` or `False` forces it), while iterating a
loader yourself gives fresh arrays.

Randomness. Epoch e's order and the transforms' draws come from `numpy.random.default_rng([seed, e])` when a
seed is given (so any epoch can be replayed alone: a resumed run sees the same batches), or from the library's
global generator (cnn_core.manual_seed) when seed is None. Within an epoch the permutation is drawn first, then
each batch's transform draws, batch after batch. Iterating the loader counts epochs (0, 1, ...); `set_epoch`
sets the next one, as PyTorch's DistributedSampler does.

Transforms act on a whole float batch (N, C, H, W) at once in compiled code (cnn_core/kernels/_augment.pyx):
`RandomCrop(size, padding)`, `RandomHorizontalFlip(p)`, `RandomShift(max_shift)`, `Normalize(mean, std)`,
chained with `Compose([...])`. Any callable taking and returning a batch may serve as a transform too.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from cnn_core._config import get_num_threads
from cnn_core._random import get_rng
from cnn_core._validation import all_finite, as_float_array, check_bool, check_int, check_real, not_an_array
from cnn_core.kernels._batches import Gatherer
from cnn_core.kernels.augment import _gather, _normalize, _shift_crop

__all__ = ["DataLoader", "Transform", "Compose", "RandomCrop", "RandomHorizontalFlip", "RandomShift", "Normalize"]


# ---- transforms ------------------------------------------------------------------------------------------

class Transform:
    """Base class of the batch transforms: `t(x, rng)` returns the transformed batch (a new array), drawing
    any randomness from `rng` (a numpy Generator; the library's global one when None)."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _images(x, who: str) -> np.ndarray:
    x = as_float_array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x: {who} expects a batch of images (N, C, H, W), got shape {x.shape}")
    return x


def _pair(v, name: str, low: int) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or a pair (h, w), got {v!r}")
        return check_int(v[0], f"{name}[0]", low), check_int(v[1], f"{name}[1]", low)
    v = check_int(v, name, low)
    return v, v


class Compose(Transform):
    """Apply `transforms` in order (torchvision's Compose)."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        if not isinstance(transforms, (list, tuple)):
            raise TypeError(f"transforms: expected a list of transforms, got {type(transforms).__name__}")
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}]: expected a callable transform, got {type(t).__name__}")
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        rng = get_rng(rng)
        for t in self.transforms:
            x = _apply(t, x, rng)
        return x


class RandomCrop(Transform):
    """A random (h, w) crop of each image zero-padded by `padding` pixels on every side (torchvision's
    RandomCrop with padding, fill 0). Draws: the rows' offsets rng.integers(0, H + 2*ph - h + 1, N), then the
    columns' rng.integers(0, W + 2*pw - w + 1, N)."""

    def __init__(self, size: int | tuple[int, int], padding: int | tuple[int, int] = 0) -> None:
        self.size = _pair(size, "size", 1)
        self.padding = _pair(padding, "padding", 0)

    def __call__(self, x, rng=None):
        x = _images(x, "RandomCrop")
        rng = get_rng(rng)
        (h, w), (ph, pw) = self.size, self.padding
        H, W = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
        if h > H or w > W:
            raise ValueError(f"size: the crop {self.size} is larger than the padded image ({H}, {W})")
        oy = rng.integers(0, H - h + 1, len(x)) - ph
        ox = rng.integers(0, W - w + 1, len(x)) - pw
        return _shift_crop(x, oy, ox, np.zeros(len(x), np.uint8), (h, w))


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability p (torchvision's). Draws rng.random(N) < p."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_real(p, "p", 0.0, 1.0)

    def __call__(self, x, rng=None):
        x = _images(x, "RandomHorizontalFlip")
        flip = (get_rng(rng).random(len(x)) < self.p).astype(np.uint8)
        zero = np.zeros(len(x), np.int64)
        return _shift_crop(x, zero, zero, flip, x.shape[2:])


class RandomShift(Transform):
    """Translate each image by whole pixels, dy and dx uniform in [-max_shift, max_shift], filling with zeros
    (out[i, j] = x[i - dy, j - dx]). Draws: dy = rng.integers(-my, my + 1, N), then dx likewise."""

    def __init__(self, max_shift: int | tuple[int, int]) -> None:
        self.max_shift = _pair(max_shift, "max_shift", 0)

    def __call__(self, x, rng=None):
        x = _images(x, "RandomShift")
        rng = get_rng(rng)
        my, mx = self.max_shift
        dy = rng.integers(-my, my + 1, len(x))
        dx = rng.integers(-mx, mx + 1, len(x))
        return _shift_crop(x, -dy, -dx, np.zeros(len(x), np.uint8), x.shape[2:])


class Normalize(Transform):
    """(x - mean[c]) / std[c] per channel c on axis 1 (torchvision's Normalize), computed in x's precision.
    mean and std: one number for all channels or one per channel; std > 0."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = self._values(mean, "mean", None)
        self.std = self._values(std, "std", 0.0)

    @staticmethod
    def _values(v, name: str, low: float | None) -> tuple[float, ...]:
        items = v if isinstance(v, (list, tuple, np.ndarray)) else [v]
        if len(items) == 0:
            raise ValueError(f"{name}: expected at least one value")
        out = tuple(check_real(a, f"{name}[{i}]" if len(items) > 1 else name, low, low_open=True)
                    for i, a in enumerate(items))
        return out

    def __call__(self, x, rng=None):
        x = as_float_array(x, "x")
        if x.ndim < 2:
            raise ValueError(f"x: Normalize expects a batch (N, C, ...) with channels on axis 1, got shape {x.shape}")
        c = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, c):
                raise ValueError(f"{name}: expected 1 or {c} values (the batch's channels), got {len(v)}")
        mean = np.broadcast_to(np.asarray(self.mean, np.float64), (c,)).copy()
        std = np.broadcast_to(np.asarray(self.std, np.float64), (c,)).copy()
        return _normalize(x, mean, std)


def _apply(t: Callable, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """t(x, rng) for the library's transforms, t(x) for any other callable."""
    out = t(x, rng) if isinstance(t, Transform) else t(x)
    if not isinstance(out, np.ndarray) or len(out) != len(x):
        raise TypeError(f"transform: expected a batch of {len(x)} samples back from {t!r:.60}, "
                        f"got {type(out).__name__}")
    return out


# ---- DataLoader ------------------------------------------------------------------------------------------

# Gathering in the background (the pool's workers or the prefetch thread): None decides by the load
# (_use_prefetch_thread); True or False forces it (tests).
PREFETCH_THREAD: bool | None = None

# fit's gather pieces since import (kernels/_batches.pyx) by who gathered them: the training thread (the
# prefetch helpers off or late), the prefetch thread, the pool's workers (benchmarks/bench_train.py prints
# the shares).
_gather_counts = {"caller": 0, "thread": 0, "pool": 0}

# fit's gather jobs: consecutive batches gathered by one compiled call, about JOB_BYTES of rows per job and at
# most MAX_BATCHES_PER_JOB batches (see _batches_per_job).
JOB_BYTES = 1 << 20
MAX_BATCHES_PER_JOB = 8


def _batches_per_job(batch: int, row_bytes: int, count: int) -> int:
    """How many consecutive batches of `batch` rows (`row_bytes` bytes per row over X, y and the labels) one
    gather job copies: as many as fit in JOB_BYTES, at least 1, at most MAX_BATCHES_PER_JOB and at most the
    epoch's `count`. Why: handing a job to a sleeping worker thread costs the training thread a futex wake,
    2.0-2.7 us (median of 900 submits, 2-vCPU EPYC Zen 4), once per job: one job per batch made it ~2.5 ms of
    an MLP 784-100-10 epoch on Fashion-MNIST (938 batches of 64, 0.36 s), 0.7% against issue 10's 3% budget
    for all of fit's own work. A job of 1 MiB is 5 of those batches (rows of 3,136 + 8 bytes): ~0.5 us a
    batch. The cost of a bigger job is memory: two slots of one job each per array (1.9 MiB here instead
    of 0.4), and the training thread gathers what no helper has taken of a job when it needs the job's first
    batch (in pieces: kernels/_batches.pyx). Batches over 1 MiB stay one per job, where the
    wake is under 2% of the gather (~28 us per 200 KiB of shuffled rows from memory here)."""
    per = JOB_BYTES // max(1, batch * row_bytes)
    return max(1, min(per, MAX_BATCHES_PER_JOB, count))


class _OwnLoad:
    """This process's share of the 1-minute load average: its CPU time per second of wall time, smoothed as
    the kernel smooths the load (an exponential average with a 60 s time constant), updated at each look."""

    def __init__(self) -> None:
        self.wall = self.cpu = None
        self.average = 0.0

    def update(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        if self.wall is not None and wall > self.wall:
            keep = math.exp(-(wall - self.wall) / 60.0)
            self.average = keep * self.average + (1.0 - keep) * (cpu - self.cpu) / (wall - self.wall)
        self.wall, self.cpu = wall, cpu
        return self.average


_own_load = _OwnLoad()


def _use_prefetch_thread() -> bool:
    """Whether fit's shuffled batches are gathered on the prefetch thread this epoch: yes unless the other
    processes' load (the 1-minute load average minus this process's own share, _OwnLoad) exceeds the cores
    this process may use. On a busy machine the thread costs more than it saves: it needs a core, and when
    the scheduler preempts it in the middle of a gather the training thread waits for the rest. Measured on
    the 2-vCPU EPYC at load average 6.5 (other processes), with the earlier Python thread: an MLP epoch of
    Fashion-MNIST took 1.03-1.24 s gathering on the training thread against 1.14-1.36 s with the thread,
    whose GIL hand-overs showed up as 177-253 ms of zero_grad (22-31 ms without it); on a quiet machine the
    thread takes the gathering off the training thread (bench_train.py, quiet, load average 1.8 left by the
    previous run: fit's own work 19.5% of the MLP epoch and 4.0% of LeNet-5's with the thread switched off
    there, 8.2% and 2.0% with it). The own share is taken out because this training's threads (and the GEMM
    pool's workers, which spin between products on a quiet machine) would otherwise count as load, and a long
    quiet training would switch the thread off by itself. The batches are the same either way. Unknown load
    (no os.getloadavg): the thread."""
    if PREFETCH_THREAD is not None:
        return PREFETCH_THREAD
    own = _own_load.update()
    try:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        others = max(0.0, os.getloadavg()[0] - own)
    except (AttributeError, OSError):
        return True
    return others <= cores


class NonFiniteRowError(ValueError):
    """A sample of `name` (X) holds NaN or infinity: raised by a prefetched batch gather that screens rows
    (DataLoader._batches' check_rows); `row` is the sample's index in the array."""

    def __init__(self, name: str, row: int) -> None:
        super().__init__(f"{name}: expected finite values, got NaN or infinity in sample {row}")
        self.name, self.row = name, row


def _first_bad_row(x: np.ndarray) -> int:
    """Index of the first sample (row along axis 0) of x with a NaN or infinity (x has one)."""
    return int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])


def _lowest_priority(thread: threading.Thread) -> None:
    """Give the started gather thread the lowest scheduling priority (nice 19; Linux, where a thread has its
    own nice value): it then runs on cycles the training's threads leave idle instead of preempting them. At
    its normal priority, woken on the core of a busy training thread it took that core at once: handing a
    batch over cost the training thread 38 us (median; 2-vCPU EPYC, other processes busy), about the
    gather itself, where it costs 0.6 us at nice 19. The pieces of a job the thread has not taken by the
    time it is needed are gathered by the training thread (kernels/_batches.pyx), so a starved thread costs
    no more than no thread. Elsewhere, or when refused, the thread keeps its priority."""
    if sys.platform.startswith("linux") and thread.native_id is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, thread.native_id, 19)
        except (AttributeError, OSError):
            pass


def _byte_rows(a: np.ndarray) -> np.ndarray:
    """The C-contiguous array `a` as a (len(a), bytes per sample) uint8 view (the Gatherer's sources and buffers)."""
    n = len(a)
    return a.reshape(n, a.size // n if n else 0).view(np.uint8)


class DataLoader:
    """Mini-batches of (X, y) in memory, optionally shuffled and augmented (PyTorch's DataLoader for arrays).

    X: array with samples along the first axis; y: targets with one row per sample, or None. batch_size,
    shuffle, drop_last: PyTorch's meanings and defaults (the last batch may be smaller unless drop_last).
    transform: applied to each X batch (a Transform, a Compose of them, or any callable batch -> batch).
    seed: None (the library's global generator) or an int (see the module docstring).
    `len(loader)` is the number of batches per epoch.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray | None = None, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, transform: Callable | None = None, seed: int | None = None) -> None:
        if not isinstance(X, np.ndarray):
            raise not_an_array(X, "X")
        if X.ndim == 0 or len(X) == 0:
            raise ValueError(f"X: expected at least one sample along the first axis, got shape {X.shape}")
        if y is not None:
            if not isinstance(y, np.ndarray):
                raise not_an_array(y, "y")
            if y.ndim == 0 or len(y) != len(X):
                raise ValueError(f"y: expected {len(X)} targets (one per sample of X), got shape {y.shape}")
        self.X, self.y = X, y
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.shuffle = check_bool(shuffle, "shuffle")
        self.drop_last = check_bool(drop_last, "drop_last")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: expected a callable transform or None, got {type(transform).__name__}")
        self.transform = transform
        self.seed = None if seed is None else check_int(seed, "seed", 0)
        if self.drop_last and len(X) < self.batch_size:
            raise ValueError(f"batch_size: drop_last with batch_size {self.batch_size} > {len(X)} samples "
                             "leaves no batch")
        self._epoch = 0

    def __len__(self) -> int:
        n, b = len(self.X), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration runs (its order and draws when seeded)."""
        self._epoch = check_int(epoch, "epoch", 0)

    def __iter__(self) -> Iterator[Any]:
        epoch = self._epoch
        self._epoch += 1
        arrays = (self.X,) if self.y is None else (self.X, self.y)
        for batch in self._batches(arrays, epoch, reuse=False):
            yield batch[0] if self.y is None else batch

    def _rng(self, epoch: int) -> np.random.Generator:
        return get_rng(None) if self.seed is None else np.random.default_rng([self.seed, epoch])

    def _prefetches(self, arrays: Sequence[np.ndarray | None]) -> bool:
        """Whether _batches(arrays, ..., reuse=True) gathers every batch by index into reused buffers (on the
        prefetch thread, or on the caller's on a busy machine: _use_prefetch_thread), where check_rows=True
        screens each gathered X batch for NaN/inf."""
        return self.shuffle and len(self) > 1 and all(a is None or a.flags.c_contiguous for a in arrays)

    def _batches(self, arrays: Sequence[np.ndarray | None], epoch: int, reuse: bool,
                 check_rows: bool = False) -> Iterator[tuple]:
        """Per batch, the tuple of `arrays` gathered for it (the first, X, transformed); None entries stay
        None. With reuse, shuffled batches are gathered into buffers reused from batch to batch (each batch
        valid until the next is drawn: fit's case), else into fresh arrays. check_rows (only where
        _prefetches): each gathered X batch is screened for NaN/inf right after its gather, while it is still
        in cache, and a bad one raises NonFiniteRowError naming the first bad row of X (fit's check of X,
        instead of a scan of the whole of X per fit call)."""
        rng = self._rng(epoch)
        n, b = len(self.X), self.batch_size
        order = rng.permutation(n) if self.shuffle else None
        if order is not None and reuse and self._prefetches(arrays):
            yield from self._gathered(arrays, order, rng, check_rows, _use_prefetch_thread())
            return
        if check_rows:
            raise ValueError("check_rows: only where batches are gathered (see _prefetches)")
        bufs: dict[tuple, np.ndarray] = {}
        for k in range(len(self)):
            lo, hi = k * b, min((k + 1) * b, n)
            if order is None:
                batch = [None if a is None else a[lo:hi] for a in arrays]
            else:
                idx = order[lo:hi]
                batch = []
                for j, a in enumerate(arrays):
                    if a is None:
                        batch.append(None)
                        continue
                    shape = (hi - lo,) + a.shape[1:]
                    out = bufs.get((j, shape)) if reuse else None
                    if out is None:
                        out = np.empty(shape, a.dtype)
                        if reuse:
                            bufs[(j, shape)] = out
                    batch.append(_gather(a, idx, out) if a.flags.c_contiguous else np.take(a, idx, axis=0, out=out))
            if self.transform is not None:
                batch[0] = _apply(self.transform, batch[0], rng)
            yield tuple(batch)

    def _gathered(self, arrays: Sequence[np.ndarray | None], order: np.ndarray, rng: np.random.Generator,
                  check_rows: bool = False, thread: bool = True) -> Iterator[tuple]:
        """_batches' shuffled, reused-buffer case (fit's): the batches gathered by compiled calls
        (kernels/_batches.pyx) into one of two buffers per array, X's rows screened for NaN/inf as they are
        copied when check_rows. One call (a job) gathers `_batches_per_job` consecutive batches at once: the
        rows of consecutive batches are consecutive entries of `order`, so a job is one batch of that many
        times the rows, and the hand-over is paid once per job. With `thread`, helpers that never take the
        GIL gather job j + 1 in pieces while the caller trains on job j's batches (a batch stays valid until
        the next one is drawn), the caller taking the pieces left when it needs the job: the pool's workers
        between their products when the kernels run on more than one thread (their idle time; a thread of
        our own at the lowest priority got little of either core while the training's two threads held
        them: MLP 784-100-10 epochs on Fashion-MNIST, 2-vCPU Xeon, interleaved, 589 ms with the pool's
        workers against 648 ms with the thread, fit's own work 64.7 against 70.5 ms, medians of 5), else a
        thread of its own (the other core is idle then); without `thread`, the caller gathers each job
        itself. The transform, and with it every draw from rng, stays on the caller's thread in batch order:
        the batches are those of the plain loop, value for value. A NaN/inf row found by a job is raised at
        the batch holding it."""
        n, b, count = len(self.X), self.batch_size, len(self)
        present = [a for a in arrays if a is not None]
        per = _batches_per_job(b, sum(a.nbytes // n for a in present), count)
        job_rows = per * b
        rows = min(job_rows, n)
        bufs = [[np.empty((rows,) + a.shape[1:], a.dtype) for a in present] for _ in range(2)]

        def batch_of(slot: int, i: int, m: int) -> tuple:
            it = iter(bufs[slot])
            return tuple(None if a is None else next(it)[i * b:i * b + m] for a in arrays)

        # the full batches of both slots, made once: a step then takes its batch without building views
        full = [[batch_of(slot, i, b) for i in range(per)] for slot in range(2)]
        x = arrays[0]
        floats = check_rows and x.dtype.kind == "f"
        check = x.dtype.itemsize if floats and x.dtype.itemsize in (4, 8) else 0
        screen_here = floats and not check   # float16 and the like: NumPy's test after the gather
        gatherer = Gatherer([_byte_rows(a) for a in present], [[_byte_rows(a) for a in s] for s in bufs],
                            order, job_rows, check)
        # helpers: the pool's workers when the kernels run on more than one thread, else a thread of its own
        pooled = thread and get_num_threads() > 1 and gatherer.use_pool()
        worker = threading.Thread(target=gatherer.run, name="cnn_core-prefetch", daemon=True) \
            if thread and not pooled else None
        jobs = -(-count // per)
        bad_at = n   # position in `order` of the current job's first bad row, n when none
        try:
            if worker is not None:
                worker.start()
                _lowest_priority(worker)
            gatherer.submit(0)
            job, i, slot = 0, per, 0
            for k in range(count):
                if i == per:   # the next job's batches: collect it and hand the one after over
                    bad = gatherer.result()
                    if bad >= 0:
                        lo = job * job_rows
                        bad_at = lo + int(np.flatnonzero(order[lo:lo + job_rows] == bad)[0])
                    slot, i = job & 1, 0
                    job += 1
                    if job < jobs:
                        gatherer.submit(job)
                lo = k * b
                m = min(b, n - lo)
                batch = full[slot][i] if m == b else batch_of(slot, i, m)
                i += 1
                if bad_at < lo + m:
                    raise NonFiniteRowError("X", int(order[bad_at]))
                if screen_here and not all_finite(batch[0]):
                    raise NonFiniteRowError("X", int(order[lo + _first_bad_row(batch[0])]))
                if self.transform is not None:
                    batch = (_apply(self.transform, batch[0], rng),) + batch[1:]
                yield batch
        finally:
            gatherer.close()
            if worker is not None and worker.ident is not None:
                worker.join()
            for who, pieces in zip(("caller", "thread", "pool"), gatherer.pieces):
                _gather_counts[who] += pieces

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.X)} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, transform={self.transform!r}, seed={self.seed})")
