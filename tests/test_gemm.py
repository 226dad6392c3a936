"""cnn_core.kernels.gemm against the float64 formula oracle (tests/oracles_dense.py)."""
import pathlib

import numpy as np
import pytest
from oracles_dense import gemm_ref, gemm_tolerance

import cnn_core
from cnn_core.kernels import _gemm, gemm

DTYPES = [np.float32, np.float64]
# Mixed transpositions only combine the packing and reading of a transposed A and a transposed B that
# (True, True) runs: exhaustive (pyproject.toml's markers), left out of the sanitizer stage.
TRANS = [(False, False), (True, True), pytest.param(False, True, marks=pytest.mark.exhaustive),
         pytest.param(True, False, marks=pytest.mark.exhaustive)]
# (M, N, K): 1x1x1, odd sizes, sizes off the micro-tile (AVX2 6 x 16 / 6 x 8, AVX-512 14 x 32 / 14 x 16)
# and above every cache block (AVX2 float32: M > MC = 144, K > KC = 256, N > NC = 4096; AVX-512 MC = 280),
# and the LeNet-5 / MLP layer shapes.
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (7, 13, 5), (6, 16, 256), (13, 17, 257), (300, 520, 270),
          (64, 100, 784), (64, 10, 100), (6, 784, 25), (16, 100, 150), (3, 4100, 20), (37, 29, 600)]


def make(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def operands(rng, m, n, k, trans_a, trans_b, dtype):
    return (make(rng, (k, m) if trans_a else (m, k), dtype), make(rng, (n, k) if trans_b else (k, n), dtype))


def assert_gemm_close(c, a, b, c0=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, what=""):
    ref = gemm_ref(a, b, c0, alpha, beta, trans_a, trans_b)
    tol = gemm_tolerance(a, b, c0, alpha, beta, trans_a, trans_b, dtype=c.dtype)
    err = np.abs(c.astype(np.float64) - ref)
    assert c.shape == ref.shape
    assert np.all(err <= tol), f"{what}: max error {err.max():.3g}, at tolerance {tol.flat[np.argmax(err - tol)]:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_matches_oracle(kernel, dtype, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
    c = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert c.dtype == dtype and c.flags.c_contiguous
    assert_gemm_close(c, a, b, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-0.5, 2.5), (2.0, -1.0), (0.25, 0.0), (1.0, 1e-3)])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (13, 17, 11), (150, 70, 300)])
def test_alpha_beta_in_place(kernel, dtype, alpha, beta, m, n, k):
    rng = np.random.default_rng(7)
    a, b = operands(rng, m, n, k, False, True, dtype)
    c0 = make(rng, (m, n), dtype)
    c = c0.copy()
    out = gemm(a, b, c, alpha=alpha, beta=beta, trans_b=True)
    assert out is c
    assert_gemm_close(c, a, b, c0, alpha, beta, trans_b=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 13, 5), (150, 300, 270)])
def test_beta_zero_ignores_nan_garbage(kernel, dtype, m, n, k):
    rng = np.random.default_rng(3)
    a, b = operands(rng, m, n, k, False, False, dtype)
    c = np.full((m, n), np.nan, dtype=dtype)
    gemm(a, b, c, alpha=1.5, beta=0.0)
    assert np.isfinite(c).all()
    assert_gemm_close(c, a, b, alpha=1.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_zero_scales_c_without_reading_a_b(dtype):
    # BLAS convention: alpha == 0 means op(A) @ op(B) is not computed, so NaN in A or B does not leak.
    rng = np.random.default_rng(4)
    a = np.full((9, 5), np.nan, dtype=dtype)
    b = np.full((5, 11), np.nan, dtype=dtype)
    c0 = make(rng, (9, 11), dtype)
    c = c0.copy()
    gemm(a, b, c, alpha=0.0, beta=-2.0)
    np.testing.assert_array_equal(c, -2.0 * c0)   # multiplying by -2 is exact in binary floating point
    c[...] = np.nan
    gemm(a, b, c, alpha=0.0, beta=0.0)
    np.testing.assert_array_equal(c, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_dimensions(dtype):
    rng = np.random.default_rng(5)
    c0 = make(rng, (4, 3), dtype)
    c = c0.copy()
    gemm(np.empty((4, 0), dtype), np.empty((0, 3), dtype), c, beta=0.5)   # K = 0: C = beta * C
    np.testing.assert_array_equal(c, 0.5 * c0)
    np.testing.assert_array_equal(gemm(np.empty((4, 0), dtype), np.empty((0, 3), dtype)), np.zeros((4, 3)))
    assert gemm(np.empty((0, 5), dtype), make(rng, (5, 3), dtype)).shape == (0, 3)
    assert gemm(make(rng, (2, 5), dtype), np.empty((5, 0), dtype)).shape == (2, 0)


def strided_views(rng, dtype):
    """(name, op(A) view, op(B) view) pairs laid out in memory in every way gemm reads without copying."""
    big_a = make(rng, (80, 90), dtype)
    big_b = make(rng, (90, 70), dtype)
    packed = np.zeros((45, 35), dtype=[("x", dtype), ("pad", np.int8)])  # stride not a multiple of itemsize
    packed["x"] = make(rng, (45, 35), dtype)
    return [
        ("sliced", big_a[1:38:2, 3:48], big_b[5:50, ::3]),
        ("transposed views", big_a.T[:37, :45], big_b.T[::2, :45].T),
        ("negative strides", big_a[::-2, ::-1][:37, :45], big_b[::-1, ::-2][:45]),
        ("fortran order", np.asfortranarray(big_a[:37, :45]), np.asfortranarray(big_b[:45, :31])),
        ("broadcast (zero strides)", np.broadcast_to(big_a[0], (37, 90))[:, :45],
         np.broadcast_to(big_b[:45, :1], (45, 31))),
        ("unaligned strides (copied)", packed["x"][:37], packed["x"].T[:, :21]),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_views(kernel, dtype):
    for name, opa, opb in strided_views(np.random.default_rng(6), dtype):
        assert_gemm_close(gemm(opa, opb), opa, opb, what=name)
        # the same product through the trans flags: op(X) = (X.T).T
        c = gemm(np.ascontiguousarray(opa.T), opb.T, trans_a=True, trans_b=True)
        assert_gemm_close(c, opa, opb, what=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_view_equals_trans_flag(dtype):
    # a.T read through its strides and trans_a on a follow the same code path: bit-identical results.
    rng = np.random.default_rng(8)
    a = make(rng, (50, 70), dtype)
    b = make(rng, (50, 40), dtype)
    np.testing.assert_array_equal(gemm(a.T, b), gemm(a, b, trans_a=True))


# Contiguous lines (a row-major A's rows, the B rows of x @ w.T) are packed by the level's register
# transpose (src_c/gemm.c's packt: 8 x 8 float / 4 x 4 double blocks); the other layout of the same matrix
# (A.T's columns, w.T's rows) by the element-wise copy. The packed panels are the same values either way,
# so the products are equal bit for bit. Shapes: panel widths off the transpose's blocks (MR = 6 and 14),
# a last panel of fewer lines (zero lines), K off the 8 / 4 steps of a block and below one block, two
# depth blocks (K > KC = 256), one line.
PACKT_SHAPES = [(64, 100, 784), (64, 64, 64), (13, 17, 257), (6, 16, 8), (14, 32, 7), (15, 33, 3), (1, 1, 9),
                (29, 41, 523)]


# gemm.h's batches for 1x1 convolutions. (M, W, K, batch): one column, one sample; samples narrower than a
# micro-tile (every panel crosses several); the 128 -> 128 channel 7x7 layer's chunk; K over KC = 256; W a
# multiple of every NR (no tile crosses); M over MC = 280 and W * batch over NC (several column blocks).
BATCH_SHAPES = [(1, 1, 1, 1), (7, 5, 3, 4), (128, 49, 128, 8), (15, 33, 300, 3), (29, 64, 9, 2),
                (300, 17, 20, 300)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,w,k,batch", BATCH_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.5, 2.5)])
def test_batch_sharing_a_matches_oracle(simd, dtype, m, w, k, batch, trans_a, alpha, beta):
    """c[s] = alpha * op(a) @ b[s] + beta * c[s] (cnn_?gemm_batch) on views whose samples and rows have gaps
    between them; the gaps are never written, and with beta = 0 the NaN in c is never read."""
    rng = np.random.default_rng(m * 7 + w * 3 + k + batch)
    a = make(rng, (k, m) if trans_a else (m, k), dtype)
    b = make(rng, (batch, k + 2, w + 3), dtype)[:, 1:k + 1, 2:w + 2]
    c_buf = make(rng, (batch, m + 1, w + 2), dtype)
    if beta == 0:
        c_buf[:, :m, 1:w + 1] = np.nan
    c0 = c_buf.copy()
    c = c_buf[:, :m, 1:w + 1]
    _gemm.gemm_batch_into(a, b, c, trans_a, alpha, beta)
    for s in range(batch):
        assert_gemm_close(c[s], a, b[s], c0[s, :m, 1:w + 1], alpha, beta, trans_a=trans_a, what=f"sample {s}")
    gaps = np.ones(c_buf.shape, bool)
    gaps[:, :m, 1:w + 1] = False
    assert np.array_equal(c_buf[gaps], c0[gaps])


# (M, N, K, batch): the 7x7 layer's chunk (K = 49 positions); samples of depth 7 in panels of 8 steps; K over
# KC inside one sample; depth blocks of 250 split inside samples; N over NC (several column blocks); M over MC.
NT_BATCH_SHAPES = [(1, 1, 1, 1), (128, 128, 49, 8), (5, 3, 7, 11), (30, 1, 300, 4), (17, 33, 100, 5),
                   (3, 5000, 4, 3), (300, 20, 10, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,batch", NT_BATCH_SHAPES)
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_nt_batch_matches_oracle(simd, dtype, m, n, k, batch, beta):
    """c = beta * c + sum_s a[s] @ b[s].T (cnn_?gemm_nt_batch) on views with gaps between samples and rows:
    the oracle is one product of the samples' depth runs end to end; with beta = 0 the NaN in c is never
    read."""
    rng = np.random.default_rng(m * 5 + n * 3 + k + batch)
    a = make(rng, (batch, m + 1, k + 2), dtype)[:, 1:, :k]
    b = make(rng, (batch, n, k + 3), dtype)[:, :, 3:]
    c0 = np.full((m, n), np.nan, dtype) if beta == 0 else make(rng, (m, n), dtype)
    c = c0.copy()
    _gemm.gemm_nt_batch_into(a, b, c, beta)
    a_cat, b_cat = np.concatenate(list(a), axis=1), np.concatenate(list(b), axis=1)
    assert_gemm_close(c, a_cat, b_cat, c0, 1.0, beta, trans_b=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", PACKT_SHAPES)
def test_packing_transpose_equals_elementwise_copy(simd, dtype, m, n, k):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    a = make(rng, (m, k), dtype)                 # rows contiguous: the transposing pack
    b = make(rng, (n, k), dtype)                 # op(B) = b.T, rows of b contiguous: the transposing pack
    a_cols = np.ascontiguousarray(a.T)           # op(A) = a_cols.T: the element-wise copy
    b_cols = np.ascontiguousarray(b.T)           # op(B) = b_cols: the element-wise copy
    _gemm.set_unpacked(0)
    try:
        c = gemm(a, b, trans_b=True)
        np.testing.assert_array_equal(c, gemm(a_cols, b_cols, trans_a=True))
    finally:
        _gemm.set_unpacked(-1)
    assert_gemm_close(c, a, b, trans_b=True)


# Shapes for the parallel drivers: square-ish, one row tile and many columns, many rows and few columns,
# the MLP layer, LeNet conv2's w @ cols (2 AVX-512 / 3 AVX2 unpacked row tiles: split by columns on 2
# threads), more row groups than one team pass takes (M = 3400 rows in AVX-512 blocks of 266: groups
# of 8 blocks on 2 threads, of 12 on 3, so the group boundaries move with the thread count) with two depth
# blocks (K = 300 > KC = 256), and two NC column blocks (N > 4096).
PARALLEL_SHAPES = [(300, 520, 270), (6, 5000, 40), (257, 9, 700), (64, 100, 784), (16, 6400, 150),
                   (3400, 40, 300), (20, 4200, 140)]


@pytest.fixture(params=["shared", "static"])
def partition(request):
    """Run a test with each parallel packed driver forced: the team sharing packed panels (large products)
    and one static panel of C per thread (mid-size products)."""
    _gemm.set_partition({"shared": 0, "static": 1}[request.param])
    yield request.param
    _gemm.set_partition(-1)


@pytest.mark.skipif(not cnn_core.openmp_enabled(), reason="serial build")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", PARALLEL_SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_threads_match_serial_bitwise(simd, num_threads, partition, dtype, m, n, k, trans_a, trans_b):
    # The depth blocks depend on K alone and the micro-tiles are anchored at C's corner whatever rows and
    # columns a thread takes (shared panels) or whichever panel of C holds them (static: panels start at
    # multiples of MR or NR), so every element sees the same operations in the same order whatever the
    # thread count; and whichever thread the dynamic schedule gives an item to (repeated runs).
    rng = np.random.default_rng(9)
    a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
    num_threads(1)
    serial = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    for t in (2, 3, 2, 2):
        num_threads(t)
        c = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        np.testing.assert_array_equal(c, serial, err_msg=f"{t} threads")
    assert_gemm_close(c, a, b, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.skipif(not cnn_core.openmp_enabled(), reason="serial build")
@pytest.mark.parametrize("dtype", DTYPES)
def test_static_partition_with_beta_and_strides(simd, num_threads, dtype):
    # Each thread's panel of C is read (beta != 0) and written through the full row stride, and op(A), op(B)
    # are strided views: a panel offset computed along the wrong axis or stride shows up against the oracle.
    _gemm.set_partition(1)
    try:
        rng = np.random.default_rng(12)
        for m, n, k in [(300, 90, 170), (40, 700, 133), (29, 161, 900)]:   # >= 2^21 multiply-adds: 2 threads
            a = make(rng, (2 * k, m), dtype)[::2].T        # op(A) = a strided transpose, m x k
            b = make(rng, (k, 3 * n), dtype)[:, ::3]       # op(B) with a column stride of 3
            c0 = make(rng, (m, n), dtype)
            num_threads(1)
            serial = gemm(a, b, c0.copy(), alpha=0.5, beta=-1.5)
            num_threads(2)
            c = gemm(a, b, c0.copy(), alpha=0.5, beta=-1.5)
            np.testing.assert_array_equal(c, serial)
            assert_gemm_close(c, a, b, c0, 0.5, -1.5, what=f"{m}x{n}x{k}")
    finally:
        _gemm.set_partition(-1)


def l2_capped_nc(nc, kc, nr, itemsize):
    """The table's NC capped so that a packed kc x nc block of B fills at most half of one core's L2
    (src_c/gemm.c, cnn_gemm_nc), in whole NR panels; the table's NC where the L2 size is unknown."""
    l2 = _gemm.blocking(np.float32)["l2"]
    if l2 <= 0:
        return nc
    cap = l2 // 2 // (kc * itemsize) // nr * nr
    return nc if cap >= nc else max(cap, nr)


def test_l2_size_is_the_systems():
    # The cap's L2 size (glibc's sysconf) is what Linux reports for this CPU's level-2 cache.
    caches = pathlib.Path("/sys/devices/system/cpu/cpu0/cache")
    sizes = [(d / "size").read_text().strip() for d in caches.glob("index*")
             if (d / "level").exists() and (d / "level").read_text().strip() == "2"]
    if not sizes or not sizes[0].endswith("K"):
        pytest.skip("no level-2 cache size in sysfs")
    assert _gemm.blocking(np.float32)["l2"] in (0, int(sizes[0][:-1]) * 1024)


@pytest.mark.parametrize("dtype", DTYPES)
def test_columns_across_the_l2_capped_nc(kernel, dtype):
    # At depth KC the reported nc is the column block of B (capped by the L2 size on this machine): C's columns
    # one below, one above and two blocks and one past it cross the block's edges.
    blocks = _gemm.blocking(dtype)
    nc, kc = blocks["nc"], blocks["kc"]
    rng = np.random.default_rng(nc)
    for n in (nc - 1, nc + 1, 2 * nc + 1):
        a, b = operands(rng, 7, n, kc, False, False, dtype)
        assert_gemm_close(gemm(a, b), a, b, what=f"7x{n}x{kc}, nc {nc}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_packed_once_for_every_column_block(kernel, num_threads, dtype):
    # Over nc columns the serial nest packs each depth block of A once for all the column blocks (here two
    # row blocks, M > MC, and two depth blocks, K > KC). Each tile of C gets the kernel calls it gets in a
    # product of one column block, so slices of B's columns (nc wide, whole NR panels) give the same bits;
    # on 2 threads each thread's columns span more than one block too. The oracle checks rows at both ends
    # and across the middle (its rank-1 updates over every row would take seconds).
    blocks = _gemm.blocking(dtype)
    nc, kc, mc = blocks["nc"], blocks["kc"], blocks["mc"]
    m, n, k = mc + 9, 2 * nc + 5, kc + 37
    rows = np.r_[0:7, m // 2 - 7:m // 2 + 7, m - 7:m]
    rng = np.random.default_rng(n)
    for trans_a, trans_b in [(False, False), (True, True)]:
        a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
        opa, opb = (a.T if trans_a else a), (b.T if trans_b else b)
        c0 = make(rng, (m, n), dtype)
        num_threads(1)
        c = gemm(a, b, c0.copy(), alpha=0.5, beta=-1.5, trans_a=trans_a, trans_b=trans_b)
        assert_gemm_close(c[rows], opa[rows], opb, c0[rows], 0.5, -1.5, what=f"{m}x{n}x{k}")
        for j in range(0, n, nc):
            part = gemm(opa, opb[:, j:j + nc], c0[:, j:j + nc].copy(), alpha=0.5, beta=-1.5)
            np.testing.assert_array_equal(c[:, j:j + nc], part, err_msg=f"columns {j}..")
        num_threads(2)
        np.testing.assert_array_equal(gemm(a, b, c0.copy(), alpha=0.5, beta=-1.5, trans_a=trans_a,
                                           trans_b=trans_b), c, err_msg="2 threads")


# AVX-512 blocking (src_c/gemm.c): MR = 14 rows; NR = 32 float32 / 16 float64 columns; KC = 256; MC = 280.
# Every dimension at 1, one below, at and one above each of them.
AVX512_EDGES = [(1, 1, 1), (13, 31, 255), (14, 32, 256), (15, 33, 257), (14, 16, 1), (15, 17, 2), (13, 15, 3),
                (1, 47, 129), (29, 1, 513), (27, 48, 127), (28, 64, 128), (279, 30, 20), (281, 34, 70),
                (280, 18, 5), (421, 33, 131)]


@pytest.mark.skipif("avx512" not in cnn_core.cpu_simd_levels(), reason="CPU without AVX-512")
def test_avx512_blocking_is_the_tables(use_simd):
    # The level switch selects the level's blocking; the edge shapes above are placed around these values.
    # Intel's unpacked region is its own (src_c/gemm.c's S_BLK_AVX512_INTEL), the rest is one table.
    use_simd("avx512")
    l2 = _gemm.blocking(np.float32)["l2"]
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("the CPU's vendor is read from /proc/cpuinfo (Linux)")
    intel = "GenuineIntel" in cpuinfo.read_text()
    sup32, sup64 = ((64, 96), (48, 72)) if intel else ((128, 128), (96, 96))
    assert _gemm.blocking(np.float32) == dict(mr=14, nr=32, mc=280, kc=256, nc=l2_capped_nc(4096, 256, 32, 4), l2=l2,
                                              sup_kmax=256, sup_ratio=sup32[0], sup_ratio_team=sup32[1])
    assert _gemm.blocking(np.float64) == dict(mr=14, nr=16, mc=280, kc=256, nc=l2_capped_nc(2048, 256, 16, 8), l2=l2,
                                              sup_kmax=256, sup_ratio=sup64[0], sup_ratio_team=sup64[1])
    use_simd("avx2")
    assert _gemm.blocking(np.float32)["mr"] == 6 and _gemm.blocking(np.float64)["nr"] == 8


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_dependent_unpacked_choice_only_where_both_paths_agree_bitwise(dtype, simd, num_threads):
    # A level may pick the unpacked path by a different ratio on a team (sup_ratio_team) only if, for every
    # depth the unpacked path takes (k <= sup_kmax), it gives the packed path's bits: one depth block (KC),
    # the same epilogue. Then a product whose choice flips between 1 and 2 threads (the squares 128-256)
    # gives the same bits on both.
    blocks = _gemm.blocking(dtype)
    if blocks["sup_ratio"] == blocks["sup_ratio_team"]:
        pytest.skip(f"{simd}: one unpacked ratio for any thread count")
    assert blocks["sup_kmax"] <= blocks["kc"]
    rng = np.random.default_rng(17)
    for m, n, k in [(128, 128, 128), (192, 192, 192), (256, 256, 256), (100, 784, 64), (37, 300, 255), (5, 7, 1)]:
        a, b = operands(rng, m, n, k, False, False, dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        for alpha, beta in ((1.0, 0.0), (0.7, 0.5), (-1.5, 1.0)):
            got = {}
            for mode in (0, 1):
                _gemm.set_unpacked(mode)
                try:
                    got[mode] = gemm(a, b, c0.copy(), alpha=alpha, beta=beta)
                finally:
                    _gemm.set_unpacked(-1)
            np.testing.assert_array_equal(got[0], got[1], err_msg=f"{m}x{n}x{k} alpha {alpha} beta {beta}")
            by_threads = []
            for threads in (1, 2):
                num_threads(threads)
                by_threads.append(gemm(a, b, c0.copy(), alpha=alpha, beta=beta))
            np.testing.assert_array_equal(*by_threads, err_msg=f"{m}x{n}x{k} alpha {alpha} beta {beta}")


@pytest.mark.skipif("avx512" not in cnn_core.cpu_simd_levels(), reason="CPU without AVX-512")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", AVX512_EDGES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_avx512_edge_tiles(use_simd, dtype, m, n, k, trans_a, trans_b):
    # Edge tiles run the masked edge kernel (one instance per row count, masked stores of the columns):
    # with beta != 0 its masked loads of C must read exactly the tile's elements, and nothing outside the
    # product may be written: c is rows 1..m of a NaN-filled array, so a store past a row's end lands in
    # the next row's already computed start (the right edge tile comes last) or in the NaN row below.
    use_simd("avx512")
    _gemm.set_unpacked(0)
    try:
        rng = np.random.default_rng(m * 1009 + n * 31 + k)
        a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
        assert_gemm_close(gemm(a, b, trans_a=trans_a, trans_b=trans_b), a, b, trans_a=trans_a,
                          trans_b=trans_b, what="beta 0")
        frame = np.full((m + 2, n), np.nan, dtype=dtype)
        c0 = make(rng, (m, n), dtype)
        c = frame[1:-1]
        c[...] = c0
        assert gemm(a, b, c, alpha=-0.5, beta=1.5, trans_a=trans_a, trans_b=trans_b) is c
        assert_gemm_close(c, a, b, c0, -0.5, 1.5, trans_a, trans_b, what="beta 1.5")
        assert np.isnan(frame[0]).all() and np.isnan(frame[-1]).all(), "written outside the product"
    finally:
        _gemm.set_unpacked(-1)


@pytest.mark.skipif("avx512" not in cnn_core.cpu_simd_levels(), reason="CPU without AVX-512")
@pytest.mark.parametrize("dtype", DTYPES)
def test_avx512_level_reaches_its_kernels(use_simd, dtype):
    # With beta != 0 an edge tile's element is alpha * acc + beta * c: AVX2's packed path writes edge tiles
    # through a buffer (alpha * acc rounded, then + beta * c rounded), the AVX-512 edge kernel with one FMA
    # (one rounding less). Rows 60..63 of M = 64 are an edge for AVX2 (MR = 6): both results within the
    # oracle's bound, but not the same bits there, so the switch to the AVX-512 kernels is seen.
    rng = np.random.default_rng(11)
    a, b = operands(rng, 64, 80, 300, False, True, dtype)   # op(B) = B.T: never the unpacked path
    c0 = make(rng, (64, 80), dtype)
    out = {}
    for level in ("avx512", "avx2"):
        use_simd(level)
        out[level] = gemm(a, b, c0.copy(), alpha=0.3, beta=0.7, trans_b=True)
        assert_gemm_close(out[level], a, b, c0, 0.3, 0.7, trans_b=True, what=level)
    assert not np.array_equal(out["avx512"][60:], out["avx2"][60:])


def test_concurrent_python_threads():
    # The GIL is released: several Python threads in gemm at once must each get their own packing buffers.
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(10)
    jobs = [(*operands(rng, 90 + i, 70, 300, False, i % 2 == 1, np.float32), i % 2 == 1) for i in range(6)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda job: gemm(job[0], job[1], trans_b=job[2]), jobs))
    for (a, b, trans_b), c in zip(jobs, results):
        assert_gemm_close(c, a, b, trans_b=trans_b)


def test_large_values_are_not_rescaled():
    # op(A) @ op(B) is formed before alpha is applied (as in BLAS), so it may overflow to inf in float32.
    a = np.full((2, 2), 1e20, np.float32)
    assert np.isinf(gemm(a, a, alpha=1e-30)).all()
    assert np.isfinite(gemm(a.astype(np.float64), a.astype(np.float64), alpha=1e-30)).all()


# ---- bad input -----------------------------------------------------------------------------------

def test_rejects_1d_a():
    with pytest.raises(ValueError, match="a: expected a 2-D array"):
        gemm(np.ones(3), np.ones((3, 2)))


def test_rejects_3d_b():
    with pytest.raises(ValueError, match="b: expected a 2-D array"):
        gemm(np.ones((2, 3)), np.ones((3, 2, 1)))


def test_rejects_mismatched_inner_dims():
    with pytest.raises(ValueError, match=r"b: inner dimensions do not match: op\(a\) is 2x3.*op\(b\) is 4x5"):
        gemm(np.ones((2, 3)), np.ones((4, 5)))


def test_rejects_mismatched_inner_dims_with_trans():
    with pytest.raises(ValueError, match="inner dimensions do not match"):
        gemm(np.ones((2, 3)), np.ones((3, 4)), trans_a=True)


def test_rejects_int_dtype():
    with pytest.raises(TypeError, match="a: expected dtype float32 or float64, got int64"):
        gemm(np.ones((2, 3), np.int64), np.ones((3, 2)))


def test_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match=r"b: expected dtype float32 \(to match the other inputs\), got float64"):
        gemm(np.ones((2, 3), np.float32), np.ones((3, 2), np.float64))


def test_rejects_list_input():
    with pytest.raises(TypeError, match="a: expected a numpy.ndarray, got list"):
        gemm([[1.0, 2.0]], np.ones((2, 1)))


def test_rejects_bad_c_shape():
    with pytest.raises(ValueError, match=r"c: expected shape \(2, 2\), got \(2, 3\)"):
        gemm(np.ones((2, 3)), np.ones((3, 2)), np.zeros((2, 3)))


def test_rejects_bad_c_dtype():
    with pytest.raises(TypeError, match="c: expected dtype float64 .*got float32"):
        gemm(np.ones((2, 3)), np.ones((3, 2)), np.zeros((2, 2), np.float32))


def test_rejects_non_contiguous_c():
    with pytest.raises(ValueError, match="c: expected a C-contiguous array"):
        gemm(np.ones((2, 3)), np.ones((3, 2)), np.zeros((2, 4))[:, ::2])


def test_rejects_read_only_c():
    c = np.zeros((2, 2))
    c.flags.writeable = False
    with pytest.raises(ValueError, match="c: expected a writable array"):
        gemm(np.ones((2, 3)), np.ones((3, 2)), c)


def test_rejects_c_overlapping_a():
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match="c: must not overlap a"):
        gemm(a, np.ones((3, 3)), a)


def test_rejects_c_overlapping_b_partly():
    # The last element of c is the first of b: the extents meet in one element.
    buf = np.zeros(40)
    b, c = buf[15:35].reshape(4, 5), buf[:16].reshape(4, 4)
    with pytest.raises(ValueError, match="c: must not overlap b"):
        gemm(np.ones((4, 4)), b[:, :4], c)


def test_rejects_c_overlapping_a_through_negative_strides():
    buf = np.zeros(40)
    with pytest.raises(ValueError, match="c: must not overlap a"):
        gemm(buf[:20].reshape(4, 5)[::-1, ::-1], np.ones((5, 4)), buf[19:35].reshape(4, 4))


def test_c_next_to_a_in_one_buffer_is_accepted():
    # Adjacent is not overlapping: c starts right after a's last element.
    buf = np.arange(40, dtype=np.float64)
    a, c = buf[:20].reshape(4, 5), buf[20:36].reshape(4, 4)
    expected = a @ np.ones((5, 4))
    gemm(a, np.ones((5, 4)), c)
    np.testing.assert_array_equal(c, expected)


def test_rejects_non_array_c():
    with pytest.raises(TypeError, match="c: expected a numpy.ndarray or None, got list"):
        gemm(np.ones((1, 1)), np.ones((1, 1)), [[0.0]])


def test_rejects_non_real_alpha():
    with pytest.raises(TypeError, match="alpha: expected a real number"):
        gemm(np.ones((1, 1)), np.ones((1, 1)), alpha="2")


def test_rejects_complex_beta():
    with pytest.raises(TypeError, match="beta: expected a real number"):
        gemm(np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1)), beta=1j)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_entry_equals_the_checked_path(dtype):
    # gemm() takes the usual arguments through _gemm.gemm_fast (checks in C) and anything else through the
    # Python checks and gemm_into: on the same views both must run the same product, bit for bit, and the
    # fast entry must hand back (NotImplemented) every case it does not take.
    rng = np.random.default_rng(13)
    base_a, base_b = make(rng, (40, 60), dtype), make(rng, (60, 50), dtype)
    views = [(base_a[:13, :21], base_b[:21, :17]), (base_a[::-2, 3:30], base_b[5:32, ::-3]),
             (base_a[:21, :13].T, base_b[:17, :21].T)]
    for a, b in views:
        m, n = a.shape[0], b.shape[1]
        c0 = make(rng, (m, n), dtype)
        for alpha, beta in [(1.0, 0.0), (-0.5, 1.5)]:
            slow = c0.copy()
            _gemm.gemm_into(a, b, slow, alpha, beta, True)
            fast = c0.copy()
            assert _gemm.gemm_fast(a, b, fast, alpha, beta, False, False) is fast
            np.testing.assert_array_equal(fast, slow)
            assert_gemm_close(fast, a, b, c0, alpha, beta)
        np.testing.assert_array_equal(_gemm.gemm_fast(a.T, b.T, None, 1.0, 0.0, True, True), gemm(a, b))
    a, b = base_a[:4, :5], base_b[:5, :6]
    c = np.empty((4, 6), dtype)
    for args in [(a.astype(np.float16), b, c, 1.0, 0.0), (a, b.astype(np.float32 if dtype == np.float64 else
                                                                       np.float64), c, 1.0, 0.0),
                 (a, b, c, 1, 0.0), (a, b, c, 1.0, True), (a, b, c[:, :5], 1.0, 0.0), (a, b, c.T.copy().T, 1.0, 0.0),
                 (a, base_b[:6, :6], c, 1.0, 0.0), (a, b, np.empty((4, 12), dtype)[:, ::2], 1.0, 0.0),
                 (a, b, base_a[:4, :6], 1.0, 0.0), (a.tolist(), b, c, 1.0, 0.0), (a[None], b, c, 1.0, 0.0)]:
        assert _gemm.gemm_fast(*args, False, False) is NotImplemented
    shared = make(rng, (4, 6), dtype)
    assert _gemm.gemm_fast(shared[:, :5], b, shared, 1.0, 0.0, False, False) is NotImplemented   # c overlaps a
    with pytest.raises(ValueError, match="c: must not overlap a"):
        gemm(shared[:, :5], b, shared)
    ro = np.empty((4, 6), dtype)
    ro.flags.writeable = False
    assert _gemm.gemm_fast(a, b, ro, 1.0, 0.0, False, False) is NotImplemented
    assert gemm(a, b, c, alpha=2) is c   # an int alpha takes the checked path, same result
    np.testing.assert_array_equal(c, gemm(a, b, alpha=2.0))


# ---- teams that share one core ------------------------------------------------------------------

SHARED_CORE = """
import os, sys
import numpy as np
import cnn_core
from cnn_core.kernels import _gemm, gemm
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # every thread the team starts lands on one CPU
sys.path.insert(0, sys.argv[1])   # tests/
from calm import use_calm_load
use_calm_load("loadavg")          # a calm machine: teams start whatever else runs
cnn_core.set_num_threads(2)
rng = np.random.default_rng(0)
a, b = rng.standard_normal((64, 784)).astype(np.float32), rng.standard_normal((784, 100)).astype(np.float32)
big = rng.standard_normal((300, 600)).astype(np.float32)
serial = a.astype(np.float64) @ b
out = [_gemm.backoff_left()]
c = gemm(a, b)                       # 5M multiply-adds: a 2-thread static product, both threads on one CPU
out.append(_gemm.backoff_left())
c2 = gemm(a, b)                      # backing off: one thread, the same result
out.append(_gemm.backoff_left())
gemm(big, big.T)                     # 54M: not a small product, so a team: on one CPU again, it re-arms the back-off
out.append(_gemm.backoff_left())
_gemm.set_partition(1)               # a path forced for the tests keeps its team
gemm(a, b)
out.append(_gemm.backoff_left())
_gemm.set_partition(-1)
_gemm.reset_backoff()
out.append(_gemm.backoff_left())
assert np.array_equal(c, c2) and np.abs(c - serial).max() < 1e-3
print(*out)
"""


@pytest.mark.skipif(not (cnn_core.openmp_enabled() and hasattr(__import__("os"), "sched_setaffinity")),
                    reason="needs OpenMP and os.sched_setaffinity (Linux)")
def test_team_on_one_cpu_backs_off_to_one_thread(tmp_path):
    # A small product whose team threads all start on one CPU sets the back-off (thresholds.h's
    # CNN_GEMM_SHARED_CORE_BACKOFF = 64 small products on one thread); each small product then uses one
    # count; a large product keeps its team (and, on one CPU, re-arms the back-off); forced paths leave it
    # alone. In a fresh process pinned to one CPU.
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", SHARED_CORE, str(pathlib.Path(__file__).parent)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "64", "63", "64", "64", "0"]
