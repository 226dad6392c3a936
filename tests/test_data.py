"""cnn_core.data: DataLoader batches (order, drop_last, seeds, no whole-set copies) and the augmentation
transforms and batch kernels against NumPy oracles, float32 and float64."""
import os
import sys
import time

import numpy as np
import pytest

from cnn_core.data import (Compose, DataLoader, Normalize, RandomCrop, RandomHorizontalFlip, RandomShift,
                           Transform)
from cnn_core.kernels.augment import gather, normalize, shift_crop


# ---- oracles ---------------------------------------------------------------------------------------------

def crop_oracle(x, oy, ox, flip, size):
    """out[n, :, i, j] = x[n, :, i + oy, j' + ox] (zero outside x), j' = W_out - 1 - j where flipped."""
    N, C, H, W = x.shape
    h, w = size
    out = np.zeros((N, C, h, w), x.dtype)
    for n in range(N):
        for i in range(h):
            for j in range(w):
                jj = w - 1 - j if flip[n] else j
                si, sj = i + oy[n], jj + ox[n]
                if 0 <= si < H and 0 <= sj < W:
                    out[n, :, i, j] = x[n, :, si, sj]
    return out


def padded_crop_oracle(x, cy, cx, size, pad):
    """torchvision's way: pad with zeros, then slice the crop."""
    ph, pw = pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    return np.stack([xp[n, :, cy[n]:cy[n] + size[0], cx[n]:cx[n] + size[1]] for n in range(len(x))])


DTYPES = [np.float32, np.float64]


def images(n=5, c=2, h=6, w=7, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).normal(size=(n, c, h, w)).astype(dtype)


# ---- kernels ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES + [np.int64, np.uint8])
def test_gather_rows_any_dtype(dtype):
    src = (np.arange(7 * 3 * 2) % 251).astype(dtype).reshape(7, 3, 2)
    idx = np.array([6, 0, 0, 3, 5])
    np.testing.assert_array_equal(gather(src, idx), src[idx])
    out = np.empty((5, 3, 2), dtype)
    assert gather(src, idx, out=out) is out
    np.testing.assert_array_equal(out, src[idx])
    assert gather(src, np.array([], np.int64)).shape == (0, 3, 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shift_crop_kernel_against_oracle_and_edges(dtype):
    x = images(dtype=dtype)
    rng = np.random.default_rng(1)
    for size in [(6, 7), (4, 3), (8, 9)]:
        for _ in range(5):
            # offsets range well past the image: whole rows/columns (or the whole image) fall outside
            oy = rng.integers(-9, 9, len(x))
            ox = rng.integers(-10, 10, len(x))
            flip = rng.random(len(x)) < 0.5
            got = shift_crop(x, oy, ox, flip, size)
            np.testing.assert_array_equal(got, crop_oracle(x, oy, ox, flip, size))
    z = shift_crop(x, [100] * 5, [0] * 5, [True] * 5, (6, 7))
    assert not z.any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_kernel_matches_numpy_bitwise(dtype):
    x = images(dtype=dtype)
    mean, std = np.array([0.3, -1.2]), np.array([0.5, 2.5])
    want = (x - mean.astype(dtype)[None, :, None, None]) / std.astype(dtype)[None, :, None, None]
    np.testing.assert_array_equal(normalize(x, mean, std), want)
    x2 = x.reshape(5, -1)  # (N, F): each feature its own "channel"
    np.testing.assert_array_equal(normalize(x2, 0.5, 2.0), (x2 - dtype(0.5)) / dtype(2.0))


# ---- transforms ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size, padding", [(6, 0), ((6, 7), 2), (4, 1), ((5, 3), (0, 3))])
def test_random_crop_is_a_crop_of_the_padded_image(dtype, size, padding):
    x = images(dtype=dtype)
    t = RandomCrop(size, padding)
    got = t(x, np.random.default_rng(7))
    (h, w), (ph, pw) = t.size, t.padding
    rng = np.random.default_rng(7)  # the documented draws, replayed
    cy = rng.integers(0, x.shape[2] + 2 * ph - h + 1, len(x))
    cx = rng.integers(0, x.shape[3] + 2 * pw - w + 1, len(x))
    np.testing.assert_array_equal(got, padded_crop_oracle(x, cy, cx, (h, w), (ph, pw)))
    assert got.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_flip_and_shift_against_numpy(dtype):
    x = images(n=40, dtype=dtype)
    got = RandomHorizontalFlip(0.5)(x, np.random.default_rng(3))
    flip = np.random.default_rng(3).random(40) < 0.5
    assert 0 < flip.sum() < 40
    np.testing.assert_array_equal(got, np.where(flip[:, None, None, None], x[..., ::-1], x))
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    got = RandomShift((2, 3))(x, np.random.default_rng(4))
    rng = np.random.default_rng(4)
    dy, dx = rng.integers(-2, 3, 40), rng.integers(-3, 4, 40)
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (3, 3)))
    want = np.stack([xp[n, :, 2 - dy[n]:2 - dy[n] + 6, 3 - dx[n]:3 - dx[n] + 7] for n in range(40)])
    np.testing.assert_array_equal(got, want)


def test_compose_threads_one_generator_through_in_order():
    x = images(n=8, c=3)
    t = Compose([RandomCrop(6, padding=2), RandomHorizontalFlip(), Normalize([0.1, 0.2, 0.3], [1.0, 2.0, 4.0])])
    got = t(x, np.random.default_rng(11))
    rng = np.random.default_rng(11)
    want = RandomCrop(6, padding=2)(x, rng)
    want = RandomHorizontalFlip()(want, rng)
    want = (want - np.array([0.1, 0.2, 0.3])[:, None, None]) / np.array([1.0, 2.0, 4.0])[:, None, None]
    np.testing.assert_array_equal(got, want)
    assert Compose([lambda b: b * 2])(x) is not x  # any callable batch -> batch fits in


# ---- DataLoader ------------------------------------------------------------------------------------------

def test_unshuffled_batches_are_views_in_order():
    X, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    loader = DataLoader(X, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    assert all(np.shares_memory(b[0], X) for b in batches)  # no copy at all without shuffling
    assert len(DataLoader(X, y, batch_size=4, drop_last=True)) == 2
    assert [len(b[0]) for b in DataLoader(X, y, batch_size=4, drop_last=True)] == [4, 4]
    only_x = list(DataLoader(X, batch_size=5))
    assert isinstance(only_x[0], np.ndarray) and only_x[0].shape == (5, 2)


def test_shuffled_orders_come_from_seed_and_epoch():
    X, y = np.arange(23, dtype=np.float64).reshape(23, 1), np.arange(23)
    loader = DataLoader(X, y, batch_size=5, shuffle=True, seed=9)
    for epoch in range(3):
        order = np.concatenate([b[1] for b in loader])
        np.testing.assert_array_equal(order, np.random.default_rng([9, epoch]).permutation(23))
        assert sorted(order) == list(range(23))
    loader.set_epoch(1)
    again = np.concatenate([b[1] for b in loader])
    np.testing.assert_array_equal(again, np.random.default_rng([9, 1]).permutation(23))
    batches = list(DataLoader(X, y, batch_size=5, shuffle=True, seed=9))
    assert not any(np.shares_memory(b[0], c[0]) for b, c in zip(batches, batches[1:]))  # fresh arrays
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)  # X and y rows stay paired


def test_unseeded_loader_draws_from_the_global_generator():
    import cnn_core
    X = np.arange(30, dtype=np.float64).reshape(30, 1)
    cnn_core.manual_seed(5)
    a = np.concatenate(list(DataLoader(X, batch_size=7, shuffle=True)))
    cnn_core.manual_seed(5)
    b = np.concatenate(list(DataLoader(X, batch_size=7, shuffle=True)))
    np.testing.assert_array_equal(a, b)
    cnn_core.manual_seed(5)
    np.testing.assert_array_equal(a[:, 0], np.random.default_rng(5).permutation(30))


def test_transform_applies_per_batch_with_the_epoch_generator():
    X = images(n=10, c=1, h=4, w=4)
    loader = DataLoader(X, np.zeros(10), batch_size=4, shuffle=True, transform=RandomHorizontalFlip(), seed=2)
    got = [xb for xb, _ in loader]
    rng = np.random.default_rng([2, 0])
    order = rng.permutation(10)
    for k, xb in enumerate(got):
        idx = order[4 * k:4 * k + 4]
        np.testing.assert_array_equal(xb, RandomHorizontalFlip()(X[idx], rng))


@pytest.mark.parametrize("make, exc, match", [
    (lambda X: DataLoader([1, 2]), TypeError, "X"),
    (lambda X: DataLoader(X, np.zeros(3)), ValueError, "y"),
    (lambda X: DataLoader(X, batch_size=0), ValueError, "batch_size"),
    (lambda X: DataLoader(X, batch_size=2.5), TypeError, "batch_size"),
    (lambda X: DataLoader(X, shuffle=1), TypeError, "shuffle"),
    (lambda X: DataLoader(X, batch_size=11, drop_last=True), ValueError, "batch_size"),
    (lambda X: DataLoader(X, transform=3), TypeError, "transform"),
    (lambda X: DataLoader(X, seed=-1), ValueError, "seed"),
    (lambda X: RandomCrop(0), ValueError, "size"),
    (lambda X: RandomCrop(3, padding=-1), ValueError, "padding"),
    (lambda X: RandomCrop(9)(X), ValueError, "size"),
    (lambda X: RandomCrop(2)(X.reshape(10, 36)), ValueError, "x"),
    (lambda X: RandomHorizontalFlip(1.5), ValueError, "p"),
    (lambda X: RandomShift(-1), ValueError, "max_shift"),
    (lambda X: Normalize([0.0], [0.0]), ValueError, "std"),
    (lambda X: Normalize([0.0, 1.0, 2.0], 1.0)(X), ValueError, "mean"),
    (lambda X: Compose(RandomShift(1)), TypeError, "transforms"),
    (lambda X: RandomHorizontalFlip()(X.astype(np.int64)), TypeError, "x"),
    (lambda X: gather(X, np.array([10])), ValueError, "idx"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make(images(n=10, c=1, h=6, w=6))


def test_transform_base_is_abstract():
    with pytest.raises(NotImplementedError):
        Transform()(images())


@pytest.mark.parametrize("dtype", DTYPES)
def test_finiteness_scan_and_argmax_hits(dtype):
    from cnn_core.kernels.augment import _count_argmax_hits, all_finite
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300_001,)).astype(dtype)  # more than one FINITE_CHUNK, odd length
    assert all_finite(x) and all_finite(x[::3]) and all_finite(np.array([np.finfo(dtype).max], dtype))
    for bad in (np.nan, np.inf, -np.inf):
        for at in (0, 262_143, 262_144, 300_000):
            y = x.copy()
            y[at] = bad
            assert not all_finite(y)
    logits = rng.normal(size=(50, 7)).astype(dtype)
    logits[3] = 1.0  # ties: the first maximum wins, as in NumPy
    labels = rng.integers(0, 7, 50)
    assert _count_argmax_hits(logits, labels) == int((logits.argmax(axis=1) == labels).sum())


@pytest.mark.parametrize("n,batch", [(103, 10), (20, 10), (11, 10)])
def test_fit_batches_prefetched_equal_the_plain_gather(n, batch):
    # fit's case (shuffled, reused buffers, C-contiguous arrays) gathers each next batch on a background
    # thread: every batch must hold exactly the rows of the epoch's permutation, in order, the last one
    # short, with the transform's draws as in a plain pass (same seed: the same crops), and each batch
    # must stay intact while the caller holds it (its buffer is not the one being refilled).
    import threading

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 1, 6, 6)).astype(np.float32)
    y = np.arange(n, dtype=np.int64)
    loader = DataLoader(X, y, batch, shuffle=True, seed=5, transform=RandomCrop(4, padding=1))
    order = np.random.default_rng([5, 2]).permutation(n)
    draws = np.random.default_rng([5, 2])
    draws.permutation(n)
    plain = [loader.transform(X[order[k:k + batch]], draws) for k in range(0, n, batch)]
    before = threading.active_count()
    got = []
    for k, (xb, yb) in enumerate(loader._batches((X, y), 2, reuse=True)):
        np.testing.assert_array_equal(yb, order[k * batch:(k + 1) * batch])
        np.testing.assert_array_equal(xb, plain[k])
        kept = yb.copy()
        got.append(yb)
        time.sleep(0.002)  # the next batch is being gathered meanwhile: this one must not change
        np.testing.assert_array_equal(yb, kept)
    assert len(got) == len(loader)
    assert threading.active_count() == before, "the prefetch thread outlived the epoch"


def _gatherer(arrays, order, batch, check=0):
    """A Gatherer over `arrays` with its two buffer slots (returned too, as arrays of the sources' dtypes)."""
    from cnn_core.data import _byte_rows
    from cnn_core.kernels._batches import Gatherer

    rows = min(batch, len(order))
    bufs = [[np.empty((rows,) + a.shape[1:], a.dtype) for a in arrays] for _ in range(2)]
    g = Gatherer([_byte_rows(a) for a in arrays], [[_byte_rows(b) for b in s] for s in bufs], order, batch, check)
    return g, bufs


@pytest.mark.parametrize("n,batch", [(103, 10), (64, 64), (5, 8), (1, 1), (130, 64)])
@pytest.mark.parametrize("threaded", [False, True])
def test_gatherer_equals_fancy_indexing_for_every_dtype_and_the_last_batch(n, batch, threaded):
    # The compiled gatherer against NumPy's fancy indexing: X (float32 images, float64 rows, float16, uint8),
    # int64 labels and float one-hot targets, every batch of a permutation including the short last one
    # (it fills the first rows of its slot), on the caller's thread and on the worker thread.
    import threading

    rng = np.random.default_rng(n * 7 + batch)
    order = rng.permutation(n)
    sources = [rng.standard_normal((n, 1, 3, 5)).astype(np.float32), rng.standard_normal((n, 7)),
               rng.standard_normal((n, 2)).astype(np.float16), rng.integers(0, 255, (n, 3), dtype=np.uint8),
               rng.integers(0, 10, n), np.eye(4)[rng.integers(0, 4, n)]]
    for group in (sources[:3], sources[3:]):
        g, bufs = _gatherer(group, order, batch)
        t = threading.Thread(target=g.run, daemon=True) if threaded else None
        if t is not None:
            t.start()
        for k in range(-(-n // batch)):
            g.submit(k)
            assert g.result() == -1
            idx = order[k * batch:(k + 1) * batch]
            for a, buf in zip(group, bufs[k % 2]):
                np.testing.assert_array_equal(buf[:len(idx)], a[idx])
        g.close()
        if t is not None:
            t.join(10)
            assert not t.is_alive()


@pytest.mark.parametrize("dtype", DTYPES)
def test_gatherer_screens_rows_and_names_the_first_bad_one_in_batch_order(dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 9)).astype(dtype)
    y = np.arange(50)
    order = rng.permutation(50)
    X[order[13], 4] = np.inf          # batch 1 (rows 10..19), 4th row
    X[order[11], 8] = np.nan          # batch 1, 2nd row: the first in batch order
    X[order[45]] = -np.inf            # the last batch
    itemsize = np.dtype(dtype).itemsize
    g, bufs = _gatherer([X, y], order, 10, itemsize)
    got = []
    for k in range(5):
        g.submit(k)
        got.append(g.result())
        np.testing.assert_array_equal(bufs[k % 2][1], order[k * 10:(k + 1) * 10])   # copied all the same
    assert got == [-1, order[11], -1, -1, order[45]]
    g, _ = _gatherer([X, y], order, 10, 0)    # check 0: no screening
    g.submit(1)
    assert g.result() == -1


@pytest.fixture
def calm_pool(two_threads):
    """Two threads on the pool, whose workers spin between jobs (the session reads a calm machine, conftest)
    and take idle work meanwhile."""
    from calm import HAS_POOL, NO_POOL

    if not HAS_POOL:
        pytest.skip(NO_POOL)
    yield


def _pool_products(count: int = 1) -> None:
    """Products the GEMM runs on the pool (the MLP's fc1 forward, 2 threads): its workers' idle time comes
    between them."""
    from cnn_core.kernels import gemm

    a, b = np.ones((64, 784), np.float32), np.ones((784, 100), np.float32)
    for _ in range(count):
        gemm(a, b)


@pytest.mark.parametrize("helper", ["caller", "thread", "pool"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gatherer_pieces_of_wide_rows_equal_fancy_indexing_and_name_the_first_bad_row(helper, dtype, request):
    # Rows wider than a piece's bytes (PIECE_BYTES): one row per piece, taken by the caller alone, by a
    # helper thread, or by the pool's workers between products, the caller taking what is left. Every
    # batch equals NumPy's fancy indexing, and of two bad rows found by different pieces (maybe by
    # different threads, in any order) the first in batch order is named.
    import threading

    from cnn_core.kernels._batches import PIECE_BYTES

    if helper == "pool":
        request.getfixturevalue("calm_pool")
    rng = np.random.default_rng(11)
    width = PIECE_BYTES // np.dtype(dtype).itemsize + 1
    X = rng.standard_normal((57, width)).astype(dtype)
    y = rng.integers(0, 10, 57)
    order = rng.permutation(57)
    X[order[27], 5] = np.nan          # batch 2 (rows 20..29), its 8th row
    X[order[23], width - 1] = np.inf  # batch 2, its 4th row: the first in batch order
    g, bufs = _gatherer([X, y], order, 10, np.dtype(dtype).itemsize)
    t = threading.Thread(target=g.run, daemon=True) if helper == "thread" else None
    if t is not None:
        t.start()
    if helper == "pool":
        assert g.use_pool()
    got = []
    for k in range(6):
        g.submit(k)
        if helper == "pool":
            _pool_products(3)
        got.append(g.result())
        idx = order[k * 10:(k + 1) * 10]
        np.testing.assert_array_equal(bufs[k % 2][0][:len(idx)], X[idx])
        np.testing.assert_array_equal(bufs[k % 2][1][:len(idx)], y[idx])
    g.close()
    if t is not None:
        t.join(10)
        assert not t.is_alive()
    assert got == [-1, -1, order[23], -1, -1, -1]
    assert sum(g.pieces) == 57 and (helper != "caller" or g.pieces[0] == 57)


def test_pool_workers_take_pieces_between_products_and_one_gatherer_holds_the_hook(calm_pool):
    # With the hook (use_pool), the pool's worker gathers pieces while it waits for the next product; a
    # second gatherer cannot take the hook until the first closes; after close no worker takes a piece.
    X = np.random.default_rng(4).standard_normal((4000, 512)).astype(np.float32)   # 2 KiB rows: 8 per piece
    order = np.random.default_rng(5).permutation(4000)
    g, bufs = _gatherer([X], order, 400)
    other, _ = _gatherer([X], order, 400)
    assert g.use_pool() and not other.use_pool()
    for k in range(10):
        g.submit(k)
        _pool_products(20)
        assert g.result() == -1
        np.testing.assert_array_equal(bufs[k % 2][0], X[order[k * 400:(k + 1) * 400]])
    pool_pieces = g.pieces[2]
    assert pool_pieces > 0, g.pieces
    g.close()
    g.submit(0)
    _pool_products(20)
    assert g.result() == -1 and g.pieces[2] == pool_pieces
    assert other.use_pool()
    other.close()


def test_gatherer_rejects_inconsistent_buffers():
    from cnn_core.kernels._batches import Gatherer

    src = np.zeros((10, 8), np.uint8)
    order = np.arange(10)
    small = np.zeros((3, 8), np.uint8)
    with pytest.raises(ValueError, match="expected at least 4 rows"):
        Gatherer([src], [[small], [small]], order, 4, 0)
    with pytest.raises(ValueError, match="expected 1-3 sources"):
        Gatherer([src] * 4, [[src] * 4, [src] * 4], order, 4, 0)
    with pytest.raises(ValueError, match="check 0/4/8"):
        Gatherer([src], [[src], [src]], order, 4, 2)
    with pytest.raises(ValueError, match="expected 10 rows"):
        Gatherer([src[:5]], [[src], [src]], order, 4, 0)


def test_prefetch_thread_ends_when_the_epoch_is_abandoned_or_a_row_is_bad():
    import threading

    import cnn_core.data as data

    X = np.arange(400, dtype=np.float64).reshape(100, 4)
    before = threading.active_count()
    for thread in (True, False):
        data.PREFETCH_THREAD = thread
        try:
            it = DataLoader(X, None, 10, shuffle=True, seed=1)._batches((X,), 0, reuse=True)
            next(it)
            it.close()   # a fit stopped after its first batch (an exception, Ctrl-C): the thread is joined
            assert threading.active_count() == before
            Xb = X.copy()
            Xb[37, 1] = np.nan
            with pytest.raises(data.NonFiniteRowError, match="in sample 37$"):
                list(DataLoader(Xb, None, 10, shuffle=True, seed=1)._batches((Xb,), 0, reuse=True, check_rows=True))
            assert threading.active_count() == before
        finally:
            data.PREFETCH_THREAD = None


def test_gatherer_close_at_any_point():
    # Ctrl-C raises KeyboardInterrupt between any two statements of the training thread, so close() must
    # end the worker whatever state submit/result were left in: nothing submitted, a job submitted (maybe
    # running) whose result nobody collects, a finished job never collected, a job after the worker ended,
    # close twice. Each join has a deadline, so that a hang fails the test instead of the suite.
    import threading

    X = np.random.default_rng(0).standard_normal((4000, 256)).astype(np.float32)
    order = np.random.default_rng(1).permutation(4000)

    def started():
        g, _ = _gatherer([X], order, 1000)
        t = threading.Thread(target=g.run, daemon=True)
        t.start()
        return g, t

    def closes_in_time(g, t):
        g.close()
        t.join(10)
        return not t.is_alive()

    g, t = started()
    assert closes_in_time(g, t)
    g, t = started()
    g.submit(1)
    assert closes_in_time(g, t)
    g, t = started()
    g.submit(2)
    time.sleep(0.05)
    assert closes_in_time(g, t)
    g, t = started()
    g.submit(0)
    assert g.result() == -1
    assert closes_in_time(g, t)
    g.submit(3)                    # after the worker ended: the caller gathers the job itself
    assert g.result() == -1 and g.pieces[0] >= 1
    g.close()
    g.close()
    for k in range(3000):          # close right after a submit, the thread just woken (the old race's spot)
        g, t = started()
        g.submit(k % 4)
        assert closes_in_time(g, t)


def test_gatherer_pieces_no_helper_took_are_run_by_the_caller():
    # result() gathers the pieces of the job no helper has taken, on the calling thread: with no helper at
    # all every piece is the caller's, with the same rows.
    X = np.random.default_rng(2).standard_normal((300, 5))
    order = np.random.default_rng(3).permutation(300)
    g, bufs = _gatherer([X], order, 64)
    assert g.result() == -1                 # before any job: nothing to gather
    for k in range(5):
        g.submit(k)
        assert g.result() == -1
        np.testing.assert_array_equal(bufs[k % 2][0][:len(order[k * 64:(k + 1) * 64])], X[order[k * 64:(k + 1) * 64]])
    assert g.pieces == (5, 0, 0)            # rows of 40 bytes: one piece per job of 64
    # the loader counts the pieces by who gathered them (bench_train.py prints the shares)
    import cnn_core.data as data
    before = dict(data._gather_counts)
    data.PREFETCH_THREAD = False
    try:
        assert len(list(DataLoader(X, None, 64, shuffle=True, seed=0)._batches((X,), 0, reuse=True))) == 5
    finally:
        data.PREFETCH_THREAD = None
    # the 5 batches are one job (_batches_per_job) of 300 rows of 40 bytes: one piece
    assert {k: v - before[k] for k, v in data._gather_counts.items()} == {"caller": 1, "thread": 0, "pool": 0}
    # and a loader whose thread is slow to start still yields the plain loop's batches
    X = np.arange(4000, dtype=np.float32).reshape(1000, 4)
    y = np.arange(1000)
    plain = [tuple(a.copy() for a in b) for b in DataLoader(X, y, 64, shuffle=True, seed=3)._batches((X, y), 0,
                                                                                                      reuse=False)]
    got = [tuple(a.copy() for a in b) for b in DataLoader(X, y, 64, shuffle=True, seed=3)._batches((X, y), 0,
                                                                                                    reuse=True)]
    assert all(np.array_equal(p, g) for pb, gb in zip(plain, got) for p, g in zip(pb, gb)) and len(got) == 16


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_prefetch_thread_runs_at_the_lowest_priority(monkeypatch):
    # The gather thread must not preempt the training's threads (cnn_core.data._lowest_priority): nice 19
    # while the epoch runs.
    import threading

    import cnn_core.data as data

    monkeypatch.setattr(data, "PREFETCH_THREAD", True)
    monkeypatch.setattr(data, "get_num_threads", lambda: 1)   # on more threads the pool's workers gather
    X = np.arange(4000, dtype=np.float32).reshape(1000, 4)
    it = DataLoader(X, None, 64, shuffle=True, seed=3)._batches((X,), 0, reuse=True)
    next(it)
    workers = [t for t in threading.enumerate() if t.name == "cnn_core-prefetch"]
    assert len(workers) == 1
    assert os.getpriority(os.PRIO_PROCESS, workers[0].native_id) == 19
    it.close()
    assert not workers[0].is_alive()


def test_float16_rows_are_screened_after_the_gather(monkeypatch):
    # X of a float dtype the compiled screen does not read (float16): NumPy's test on each gathered batch,
    # naming the same first bad sample.
    import cnn_core.data as data

    for thread in (True, False):
        monkeypatch.setattr(data, "PREFETCH_THREAD", thread)
        X = np.ones((300, 3), np.float16)
        X[211, 2] = np.inf
        y = np.arange(300)
        with pytest.raises(data.NonFiniteRowError, match="in sample 211$"):
            list(DataLoader(X, y, 32, shuffle=True, seed=0)._batches((X, y), 0, reuse=True, check_rows=True))


def test_own_load_is_this_process_cpu_time_smoothed_over_a_minute():
    # The kernel's 1-minute load average is an exponential average (60 s time constant) of the runnable
    # tasks; _OwnLoad averages this process's CPU seconds per wall second the same way.
    import math
    import time

    from cnn_core.data import _OwnLoad
    own = _OwnLoad()
    assert own.update() == 0.0   # no interval yet
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.2:   # one thread busy
        pass
    got = own.update()
    dt = time.monotonic() - t0
    weight = 1.0 - math.exp(-dt / 60.0)
    assert 0.0 < got <= weight * ((os.cpu_count() or 1) + 0.05)
    cpu1, t1 = time.process_time(), time.monotonic()
    time.sleep(0.3)   # this thread idle: the average decays
    after = own.update()
    rate = (time.process_time() - cpu1) / (time.monotonic() - t1)
    # after - got = (1 - exp(-0.3 / 60)) * (rate - got): it decays unless the process's other threads (a pool
    # worker, a gatherer left by an earlier test) used CPU at got's level meanwhile (got ~0.003: 1 ms of 0.3 s)
    assert after < got or rate >= got / 2


def test_prefetch_thread_is_left_out_on_a_busy_machine(monkeypatch):
    # By the other processes' load (the 1-minute load average minus this process's own share) against the
    # cores this process may use (cnn_core.data._use_prefetch_thread); PREFETCH_THREAD forces it; without
    # os.getloadavg the thread is used. The batches are the same either way.
    import os

    import cnn_core.data as data
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    own = [0.0]
    monkeypatch.setattr(data._own_load, "update", lambda: own[0])
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 0.5, 0.0, 0.0), raising=False)
    assert data._use_prefetch_thread() is False
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.25, 0.0, 0.0), raising=False)
    assert data._use_prefetch_thread() is True
    # this training's own threads make up the load: the thread stays (a long quiet training keeps it)
    own[0] = 1.5
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 1.0, 0.0, 0.0), raising=False)
    assert data._use_prefetch_thread() is True
    own[0] = 0.0
    assert data._use_prefetch_thread() is False

    def unknown():
        raise OSError("no load average")
    monkeypatch.setattr(os, "getloadavg", unknown, raising=False)
    assert data._use_prefetch_thread() is True
    monkeypatch.setattr(data, "PREFETCH_THREAD", False)
    assert data._use_prefetch_thread() is False
    X = np.arange(4000, dtype=np.float32).reshape(1000, 4)
    y = np.arange(1000)
    batches = {}
    for thread in (True, False):
        monkeypatch.setattr(data, "PREFETCH_THREAD", thread)
        batches[thread] = [tuple(a.copy() for a in b) for b in DataLoader(X, y, 64, shuffle=True, seed=3)._batches(
            (X, y), 0, reuse=True, check_rows=True)]
    assert len(batches[True]) == len(batches[False]) == 16
    assert all(np.array_equal(p, g) for pb, gb in zip(batches[True], batches[False]) for p, g in zip(pb, gb))
    X[517, 2] = np.nan
    with pytest.raises(data.NonFiniteRowError, match="in sample 517$"):
        list(DataLoader(X, y, 64, shuffle=True, seed=3)._batches((X, y), 0, reuse=True, check_rows=True))


def test_batches_per_job_follows_the_byte_budget_and_its_caps(monkeypatch):
    # How many consecutive batches one gather job copies (cnn_core.data._batches_per_job): JOB_BYTES of rows
    # per job, at least 1, at most MAX_BATCHES_PER_JOB and at most the epoch's batches.
    import cnn_core.data as data

    assert data._batches_per_job(64, 784 * 4 + 8, 938) == data.JOB_BYTES // (64 * 3144) == 5   # MLP/LeNet-5 batch
    assert data._batches_per_job(64, 3 * 224 * 224 * 4, 100) == 1       # a batch larger than the budget
    assert data._batches_per_job(8, 4, 100) == data.MAX_BATCHES_PER_JOB  # tiny rows: the cap
    assert data._batches_per_job(8, 4, 3) == 3                           # never more than the epoch has
    assert data._batches_per_job(1, 0, 10) == data.MAX_BATCHES_PER_JOB   # rows of no bytes
    monkeypatch.setattr(data, "JOB_BYTES", 1)
    assert data._batches_per_job(64, 3144, 938) == 1


@pytest.mark.parametrize("job_bytes", [1, 3 * 10 * 5 * 4 + 1, 1 << 20])
@pytest.mark.parametrize("thread", [False, True])
@pytest.mark.parametrize("n,batch,drop_last", [(103, 10, False), (103, 10, True), (40, 10, False), (7, 3, True)])
def test_grouped_jobs_yield_the_plain_batches(monkeypatch, job_bytes, thread, n, batch, drop_last):
    # Gather jobs of one batch (a budget of 1 byte), of a few (rows of 5 float32 and an int64 label are 28
    # bytes: 601 bytes hold 2 batches of 10 rows, 7 of 3) or of up to 8: every batch holds the plain loop's
    # rows in order (the last one short unless drop_last), and stays unchanged until the next one is drawn.
    import cnn_core.data as data

    monkeypatch.setattr(data, "JOB_BYTES", job_bytes)
    monkeypatch.setattr(data, "PREFETCH_THREAD", thread)
    rng = np.random.default_rng(n + batch)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    y = np.arange(n, dtype=np.int64)
    loader = DataLoader(X, y, batch, shuffle=True, drop_last=drop_last, seed=2)
    plain = [tuple(a.copy() for a in b) for b in loader._batches((X, y), 1, reuse=False)]
    got = 0
    for k, (xb, yb) in enumerate(loader._batches((X, y), 1, reuse=True, check_rows=True)):
        np.testing.assert_array_equal(xb, plain[k][0])
        np.testing.assert_array_equal(yb, plain[k][1])
        kept = xb.copy()
        time.sleep(0.001)   # the next job may be gathered meanwhile: this batch must not change
        np.testing.assert_array_equal(xb, kept)
        got += 1
    assert got == len(plain) == len(loader)


@pytest.mark.parametrize("thread", [False, True])
@pytest.mark.parametrize("position", [0, 13, 19, 20, 37, 99])
def test_a_bad_row_in_a_grouped_job_is_raised_at_its_own_batch(monkeypatch, thread, position):
    # A job of several batches is screened as a whole, but a NaN row must stop training only at the batch
    # holding it: the batches of the job before it are still given (fit trains them), none after it.
    import cnn_core.data as data

    monkeypatch.setattr(data, "PREFETCH_THREAD", thread)
    X = np.random.default_rng(4).standard_normal((100, 6))
    loader = DataLoader(X, None, 10, shuffle=True, seed=3)
    order = np.random.default_rng([3, 0]).permutation(100)
    assert data._batches_per_job(10, 48, 10) == 8   # batches 0-7 in the first job, 8-9 in the second
    X[order[position], 2] = np.nan
    given = []
    with pytest.raises(data.NonFiniteRowError, match=f"in sample {order[position]}$"):
        for (xb,) in loader._batches((X,), 0, reuse=True, check_rows=True):
            assert np.isfinite(xb).all()
            given.append(xb.copy())
    assert len(given) == position // 10


def test_a_bad_row_dropped_by_drop_last_is_not_raised():
    # drop_last leaves the tail of the permutation out of the epoch; the last job still copies it (it is in
    # the job's range of the order) but must not stop the epoch for it.
    X = np.random.default_rng(5).standard_normal((25, 3)).astype(np.float32)
    order = np.random.default_rng([1, 0]).permutation(25)
    X[order[24]] = np.inf
    batches = list(DataLoader(X, None, 6, shuffle=True, drop_last=True, seed=1)._batches((X,), 0, reuse=True,
                                                                                        check_rows=True))
    assert len(batches) == 4
