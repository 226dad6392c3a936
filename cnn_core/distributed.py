"""Synchronous data-parallel training on MPI, through mpi4py (the optional ``[mpi]`` extra).

Every rank (one process each, started by ``mpiexec -n P``) holds the whole model; each global mini-batch is
split into P shards (``shard``), each rank computes the gradients of its shard, and one all-reduce sums them
weighted by each shard's share of the batch, so that every rank takes the same optimizer step as one process
would on the whole batch: with a 'mean' loss, rank r of n_r samples (of B) contributes (n_r / B) g_r, and::

    sum_r (n_r / B) g_r = (1 / B) sum_i g_i,

the gradient of the global batch (only the summation order differs from one process). MPI moves the bytes;
this module does the bookkeeping: the gradients of all parameters are packed into one contiguous buffer per
dtype (or a few fixed-size buckets of it) and reduced in place, one ``Allreduce`` per bucket, never one
message per parameter.

``cnn_core.fit(..., distributed=True)`` uses everything here; the functions are public for custom loops::

    rank, size = distributed.init()
    distributed.broadcast_parameters(model, optimizer)        # everyone starts from rank 0's state
    for each global batch xb, yb:
        s = distributed.shard(len(xb), rank, size)
        model.zero_grad(); loss(model(xb[s]), yb[s]); model.backward(loss.backward())
        distributed.allreduce_gradients(model, weight=len(s) / len(xb))
        optimizer.step()

BatchNorm: every rank normalizes with its own shard's batch statistics (as PyTorch DDP without SyncBatchNorm),
and with ``Options.broadcast_buffers`` (the default, DDP's ``broadcast_buffers=True``) rank 0's buffers (the
running statistics) are broadcast to every rank before each forward pass and at the end of each epoch, so
that every rank holds, evaluates with and saves the same buffers: rank 0's.

mpi4py is imported only when one of these functions runs; without it they raise ImportError naming the extra.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Sequence

import numpy as np

from cnn_core._validation import check_bool, check_int, check_real

INSTALL_HINT = 'pip install "cnn_core[mpi]" (mpi4py and the mpich wheel)'

_comm = None  # the communicator init() chose (COMM_WORLD unless told otherwise)


def _mpi():
    """The mpi4py.MPI module, or ImportError naming the extra to install."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as e:  # missing, or installed without a loadable MPI library
        raise ImportError(f"distributed training needs mpi4py and an MPI library: {INSTALL_HINT}; "
                          f"importing mpi4py failed with: {e}") from e
    return MPI


def require_mpi() -> None:
    """Raise ImportError naming the ``[mpi]`` extra when mpi4py (or its MPI library) cannot be loaded."""
    _mpi()


def init(comm=None) -> tuple[int, int]:
    """Start MPI (once) and return (rank, world size) of `comm`, by default ``MPI.COMM_WORLD``.

    The other functions use this communicator. Started without mpiexec, a process is rank 0 of a world of 1.
    """
    global _comm
    MPI = _mpi()
    if comm is not None:
        if not isinstance(comm, MPI.Comm):
            raise TypeError(f"comm: expected an mpi4py.MPI.Comm, got {type(comm).__name__}")
        _comm = comm
    elif _comm is None:
        _comm = MPI.COMM_WORLD
    return _comm.Get_rank(), _comm.Get_size()


def _world():
    if _comm is None:
        init()
    return _comm


def is_main() -> bool:
    """True on rank 0, the rank that prints and writes files."""
    return _world().Get_rank() == 0


def world_size() -> int:
    """The number of ranks (1 without mpiexec)."""
    return _world().Get_size()


def shard(n: int, rank: int, size: int) -> range:
    """The indices of a global batch of n samples that `rank` of `size` computes: a contiguous block.

    The blocks cover 0..n-1 in rank order and differ in length by at most one (the first n % size ranks get
    one more); a rank gets an empty range when n < size.
    """
    n = check_int(n, "n", 0)
    size = check_int(size, "size", 1)
    rank = check_int(rank, "rank", 0, size - 1)
    q, r = divmod(n, size)
    start = rank * q + min(rank, r)
    return range(start, start + q + (rank < r))


def local_threads() -> int:
    """OpenMP threads per rank that fill this node without oversubscribing it: the CPUs this process may run
    on divided by the ranks sharing the node (at least 1)."""
    MPI = _mpi()
    local = _world().Split_type(MPI.COMM_TYPE_SHARED)
    try:
        ranks_here = local.Get_size()
    finally:
        local.Free()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // ranks_here)


# ---- packing arrays into one contiguous buffer per dtype ------------------------------------------------

class _Packed:
    """Arrays laid end to end in one flat buffer per dtype, in the order given, cut into `buckets` chunks of
    (about) equal size per dtype: ``chunks`` lists those views of the flat buffers, one message each.
    `arrays` may hold other objects, `array(item)` giving the array each stands for (its size and dtype)."""

    def __init__(self, arrays: Sequence[Any], buckets: int = 1,
                 array: Callable[[Any], np.ndarray] = lambda a: a) -> None:
        self.arrays = list(arrays)
        self.array = array
        totals: dict[np.dtype, int] = {}
        where = []
        for item in self.arrays:
            a = array(item)
            lo = totals.get(a.dtype, 0)
            totals[a.dtype] = lo + a.size
            where.append((a.dtype, lo, lo + a.size))
        self.flats = {dt: np.empty(n, dt) for dt, n in totals.items()}
        self.slots = [(self.flats[dt], lo, hi) for dt, lo, hi in where]
        # fixed-size chunks of each flat buffer; chunk_of[i] = the chunks array i overlaps
        self.chunks: list[np.ndarray] = []
        bounds: dict[np.dtype, list[tuple[int, int, int]]] = {}
        for dt, n in totals.items():
            step = max(1, -(-n // buckets))
            bounds[dt] = []
            for lo in range(0, n, step):
                bounds[dt].append((len(self.chunks), lo, min(n, lo + step)))
                self.chunks.append(self.flats[dt][lo:min(n, lo + step)])
        self.chunk_of = [[c for c, clo, chi in bounds[dt] if clo < hi and lo < chi] for dt, lo, hi in where]

    def gather(self, weight: float = 1.0, items: Sequence[int] | None = None) -> None:
        """Copy (weight *) the arrays (all, or those at the indices `items`) into their slots."""
        for i in range(len(self.arrays)) if items is None else items:
            flat, lo, hi = self.slots[i]
            a = self.array(self.arrays[i]).reshape(-1)
            if weight == 1.0:
                flat[lo:hi] = a
            else:
                np.multiply(a, weight, out=flat[lo:hi])

    def scatter(self) -> None:
        """Copy each slot back into its array."""
        for i, item in enumerate(self.arrays):
            flat, lo, hi = self.slots[i]
            a = self.array(item)
            a[...] = flat[lo:hi].reshape(a.shape)


class _Grads(_Packed):
    """The gradients of the trainable parameters, last parameter first (the order backward produces them)."""

    def __init__(self, params, buckets: int = 1) -> None:
        self.key = tuple((id(p), p.shape, p.dtype) for p in params)
        self.buckets = buckets
        super().__init__(list(reversed(params)), buckets, lambda p: p.grad)

    def allreduce(self, comm, weight: float) -> None:
        MPI = _mpi()
        self.gather(weight)
        for chunk in self.chunks:
            comm.Allreduce(MPI.IN_PLACE, chunk, op=MPI.SUM)
        self.scatter()


def _trainable(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


_grads_cache: list[_Grads] = []  # the last model's packed gradients (rebuilt when the parameters change)


def allreduce_gradients(model, weight: float = 1.0, *, buckets: int = 1) -> None:
    """Replace every rank's gradients by sum over ranks of weight_r * grad_r, identical on every rank.

    weight: this rank's share of the global batch (n_r / B for a 'mean' loss; 1.0 for a 'sum' loss), so that
    the result is the gradient of the whole global batch however unevenly it was sharded. The gradients of
    the trainable parameters are packed into one contiguous buffer per dtype, cut into `buckets` chunks of
    equal size, and each chunk is summed by one in-place ``Allreduce``. Every rank must call this with the
    same model structure and the same `buckets`.
    """
    weight = check_real(weight, "weight", 0.0)
    buckets = check_int(buckets, "buckets", 1)
    params = _trainable(model)
    key = tuple((id(p), p.shape, p.dtype) for p in params)
    if not _grads_cache or _grads_cache[0].key != key or _grads_cache[0].buckets != buckets:
        _grads_cache[:] = [_Grads(params, buckets)]  # holds the parameters, so their ids stay theirs
    _grads_cache[0].allreduce(_world(), weight)


def _signature(model) -> list[tuple[str, tuple[int, ...], str, bool]]:
    return ([(n, p.shape, p.dtype.str, p.requires_grad) for n, p in model.named_parameters()] +
            [(n, b.shape, b.dtype.str, False) for n, b in model.named_buffers()])


def check_same_model(model) -> None:
    """ValueError on every rank when the ranks' models differ in parameter/buffer names, shapes, dtypes or
    frozen parameters (their messages would not match)."""
    comm = _world()
    sigs = comm.allgather(_signature(model))
    for r, sig in enumerate(sigs):
        if sig != sigs[0]:
            diff = next((a, b) for a, b in zip(sigs[0] + [None] * len(sig), sig + [None] * len(sigs[0]))
                        if a != b)
            raise raised_together(ValueError(f"model: rank {r}'s model differs from rank 0's "
                                        f"(rank 0: {diff[0]}, rank {r}: {diff[1]})"))


def broadcast_parameters(model, optimizer=None) -> None:
    """Give every rank rank 0's weights and buffers (one Bcast per dtype) and, with `optimizer`, rank 0's
    optimizer state (its state_dict, pickled); checks first that the ranks' models match (check_same_model)."""
    comm = _world()
    check_same_model(model)
    packed = _Packed([p.data for p in model.parameters()] + list(model.buffers()))
    _bcast_packed(comm, packed)
    if optimizer is not None and callable(getattr(optimizer, "state_dict", None)):
        state = comm.bcast(optimizer.state_dict() if comm.Get_rank() == 0 else None, root=0)
        if comm.Get_rank() != 0:
            optimizer.load_state_dict(state)


def _bcast_packed(comm, packed: _Packed) -> None:
    if comm.Get_rank() == 0:
        packed.gather()
    for flat in packed.flats.values():
        comm.Bcast(flat, root=0)
    if comm.Get_rank() != 0:
        packed.scatter()


def raised_together(exc: BaseException) -> BaseException:
    """Mark `exc` as raised by every rank at the same point (a decision they took together, e.g. after a
    collective): leaving fit with it needs no abort. Returns `exc`."""
    exc._cnn_core_all_ranks = True
    return exc


def was_raised_together(exc: BaseException) -> bool:
    """True for an exception marked by raised_together; any other one, raised by one rank alone while the
    others may be waiting in a collective, calls for abort()."""
    return getattr(exc, "_cnn_core_all_ranks", False)


_ABORT_DRAIN_SECONDS = 0.5


def abort(exc: BaseException | None = None, code: int = 1) -> None:
    """Print `exc`'s traceback (naming this rank) to stderr and abort every rank of the job (MPI Abort): the
    way out when one rank fails where the others may be waiting in a collective."""
    comm = _world()
    if exc is not None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(f"cnn_core.distributed: rank {comm.Get_rank()} of {comm.Get_size()} failed; aborting "
                         f"the job:\n{text}")
    sys.stderr.flush()
    sys.stdout.flush()
    # mpiexec forwards a rank's output through its proxy, asynchronously: an Abort right after the write can
    # end the job before the text is forwarded (in one local CI run the mpiexec -n 2 job of
    # tests/test_distributed.py's raising rank printed nothing at all; it passed in the other runs and in 8
    # reruns). A moment's wait lets the text through; the job still ends within about a second.
    time.sleep(_ABORT_DRAIN_SECONDS)
    comm.Abort(code)


# ---- what fit(distributed=...) uses -----------------------------------------------------------------------

class Options:
    """How fit(distributed=Options(...)) trains; fit(distributed=True) takes the defaults.

    buckets: the gradient buffer of each dtype is cut into this many equal chunks, one all-reduce each.
    overlap: start each chunk's all-reduce (non-blocking ``Iallreduce``) as soon as backward has produced
    every gradient in it, while backward goes on with the earlier layers; wait for all before the step.
    broadcast_buffers: rank 0's buffers (BatchNorm running statistics) to every rank before each forward.
    """

    def __init__(self, buckets: int = 1, overlap: bool = False, broadcast_buffers: bool = True) -> None:
        self.buckets = check_int(buckets, "buckets", 1)
        self.overlap = check_bool(overlap, "overlap")
        self.broadcast_buffers = check_bool(broadcast_buffers, "broadcast_buffers")

    def __repr__(self) -> str:
        return (f"Options(buckets={self.buckets}, overlap={self.overlap}, "
                f"broadcast_buffers={self.broadcast_buffers})")


def options(value) -> Options:
    """fit's `distributed` argument (True or an Options) as Options."""
    if value is True:
        return Options()
    if isinstance(value, Options):
        return value
    raise TypeError(f"distributed: expected a bool or cnn_core.distributed.Options, got {type(value).__name__}")


class Trainer:
    """The per-run state of fit(distributed=...): communicator, packed gradients and buffers, the Ctrl-C flag,
    the overlap hooks. fit calls its methods at fixed points of the loop, the same on every rank."""

    # status vector reduced once per step (before backward) and per epoch: sums over ranks
    LOSS, DIVISOR, CORRECT, BAD, STOP = range(5)

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.rank, self.size = init()
        self.is_main = self.rank == 0
        self.comm = _world()
        self.MPI = _mpi()
        self.stop_requested = False
        self._signals = 0
        self._old_handler = None
        self.grads: _Grads | None = None
        self.buffers: _Packed | None = None
        self._wrapped: list = []
        self._requests: list = []

    # -- setup and teardown --------------------------------------------------------------------------
    def agree(self, failed: bool) -> None:
        """After the argument checks: every rank learns whether any rank failed them."""
        bad = self.comm.allreduce(1 if failed else 0, op=self.MPI.SUM)
        if bad and not failed:
            raise raised_together(RuntimeError(f"fit: {bad} of {self.size} ranks rejected their arguments "
                                          f"(see their errors); training did not start"))

    def start(self, model, optimizer) -> None:
        broadcast_parameters(model, optimizer)
        self.params = _trainable(model)
        self.grads = _Grads(self.params, self.opts.buckets)
        buffers = list(model.buffers())
        self.buffers = _Packed(buffers) if buffers and self.opts.broadcast_buffers else None
        if self.opts.overlap:
            self._install_hooks(model)
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def finish(self) -> None:
        for m in self._wrapped:
            m.__dict__.pop("backward", None)
        self._wrapped = []
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)
            self._old_handler = None

    def _on_sigint(self, signum, frame) -> None:
        # Ctrl-C reaches every rank (the terminal's process group, and mpiexec forwards it): the first one
        # only asks for a stop that all ranks take together at the next step; a third one forces it.
        self._signals += 1
        self.stop_requested = True
        if self._signals >= 3:
            raise KeyboardInterrupt

    def seed(self, seed: int | None) -> int:
        """A shuffling seed shared by every rank: `seed`, or one drawn on rank 0."""
        if seed is None:
            from cnn_core._random import get_rng
            seed = int(get_rng(None).integers(2 ** 62)) if self.rank == 0 else None
        return self.comm.bcast(seed, root=0)

    together = staticmethod(raised_together)
    was_together = staticmethod(was_raised_together)

    def guard(self, exc: BaseException) -> None:
        """An exception leaving fit: one that every rank raised together passes; any other aborts the job
        when there are other ranks (they may be waiting in a collective for this one)."""
        if self.size > 1 and not was_raised_together(exc):
            abort(exc)

    # -- per step ------------------------------------------------------------------------------------
    def sync_buffers(self) -> None:
        if self.buffers is not None:
            _bcast_packed(self.comm, self.buffers)

    def reduce(self, values: Sequence[float]) -> np.ndarray:
        v = np.array(values, np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, v, op=self.MPI.SUM)
        return v

    def arm(self, weight: float) -> None:
        """Before backward: the weight of this rank's gradients, and (overlap) fresh per-chunk counters."""
        self.weight = weight
        if self.opts.overlap:
            self._pending = list(self._chunk_counts)
            self._next = 0
            self._requests = [None] * len(self.grads.chunks)
            self._done: set[int] = set()  # the gradients gathered (indices into grads.arrays)
            self._done_modules: set[int] = set()

    def allreduce(self) -> None:
        """After backward: the gradients summed over ranks (weighted), identical on every rank."""
        if not self.opts.overlap:
            self.grads.allreduce(self.comm, self.weight)
            return
        # chunks nobody finished (this rank had no samples, or a module's backward ran outside the hooks)
        for c in range(self._next, len(self._pending)):
            if self._pending[c] > 0:
                self.grads.gather(self.weight, sorted(self._chunk_items[c] - self._done))
                self._pending[c] = 0
        self._start_ready()
        self.MPI.Request.Waitall(self._requests)
        self.grads.scatter()

    # -- overlap -------------------------------------------------------------------------------------
    def _install_hooks(self, model) -> None:
        grads = self.grads
        index = {id(p): i for i, p in enumerate(grads.arrays)}
        # per chunk: how many (module, parameter) pairs must finish; per module: its items
        self._chunk_counts = [0] * len(grads.chunks)
        self._chunk_items: list[set] = [set() for _ in grads.chunks]
        for m in model.modules():
            items = [index[id(p)] for p in m.__dict__["_parameters"].values()
                     if p is not None and id(p) in index]
            if not items:
                continue
            for i in items:
                for c in grads.chunk_of[i]:
                    self._chunk_counts[c] += 1
                    self._chunk_items[c].add(i)
            self._wrap(m, items)

    def _wrap(self, m, items: list[int]) -> None:
        backward = type(m).backward
        trainer = self

        def backward_then_reduce(*args, **kwargs):
            out = backward(m, *args, **kwargs)
            trainer._produced(m, items)
            return out

        m.__dict__["backward"] = backward_then_reduce
        self._wrapped.append(m)

    def _produced(self, m, items: list[int]) -> None:
        if id(m) in self._done_modules:  # its buckets may be on the wire with the first call's gradients
            raise RuntimeError("distributed: a module's backward ran twice in one step (a module used twice?); "
                               "overlap needs each parameter's gradient complete after one call: use "
                               "Options(overlap=False)")
        self._done_modules.add(id(m))
        self.grads.gather(self.weight, items)
        self._done.update(items)
        for i in items:
            for c in self.grads.chunk_of[i]:
                self._pending[c] -= 1
        self._start_ready()
        started = [r for r in self._requests if r is not None]
        if started:
            self.MPI.Request.Testall(started)  # lets MPI progress the messages under way

    def _start_ready(self) -> None:
        # in chunk order on every rank (MPI wants collectives started in the same order everywhere)
        while self._next < len(self._pending) and self._pending[self._next] <= 0:
            c = self._next
            self._requests[c] = self.comm.Iallreduce(self.MPI.IN_PLACE, self.grads.chunks[c], op=self.MPI.SUM)
            self._next += 1
