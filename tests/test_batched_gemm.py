"""gemm_batched / gemm_batched_sum against the loop-over-samples oracle (tests/oracles_dense.py)."""
import numpy as np
import pytest
from oracles_dense import gemm_batched_ref

from cnn_core.kernels.batched_gemm import gemm_batched, gemm_batched_sum

# float32: entries are sums of up to 150 standard-normal products (|entry| up to ~40); the rounding error of
# such a sum is ~ sqrt(k) * eps32 * max partial sum ~ 1e-5, so atol 1e-4 (entries near 0 have no relative scale).
TOL = {np.float32: dict(rtol=1e-5, atol=1e-4), np.float64: dict(rtol=1e-12, atol=1e-12)}


def mat(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("shared", ["a", "b", None])
@pytest.mark.parametrize("batch, m, n, k", [(1, 1, 1, 1), (5, 6, 784, 25), (3, 7, 5, 9), (64, 16, 100, 150)])
def test_gemm_batched_matches_oracle(dtype, ta, tb, shared, batch, m, n, k):
    rng = np.random.default_rng(batch * 100 + m)
    a_shape = (k, m) if ta else (m, k)
    b_shape = (n, k) if tb else (k, n)
    a = mat(rng, a_shape if shared == "a" else (batch,) + a_shape, dtype)
    b = mat(rng, b_shape if shared == "b" else (batch,) + b_shape, dtype)
    c0 = mat(rng, (batch, m, n), dtype)
    np.testing.assert_allclose(gemm_batched(a, b, trans_a=ta, trans_b=tb),
                               gemm_batched_ref(a, b, c0, 1.0, 0.0, ta, tb), **TOL[dtype])
    c = c0.copy()
    out = gemm_batched(a, b, c=c, alpha=0.5, beta=2.0, trans_a=ta, trans_b=tb)
    assert out is c
    np.testing.assert_allclose(c, gemm_batched_ref(a, b, c0, 0.5, 2.0, ta, tb), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta, tb", [(False, True), (False, False), (True, False)])
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_gemm_batched_sum_matches_oracle(dtype, ta, tb, batch):
    rng = np.random.default_rng(batch)
    m, n, k = 6, 25, 784
    a = mat(rng, (batch,) + ((k, m) if ta else (m, k)), dtype)
    b = mat(rng, (batch,) + ((n, k) if tb else (k, n)), dtype)
    c0 = mat(rng, (m, n), dtype)
    ref = gemm_batched_ref(a, b, None, 1.0, 0.0, ta, tb).sum(axis=0)
    # float32: a sum of batch*k products; relative error grows like sqrt(batch*k) * eps, so a 1e-4 bound.
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(gemm_batched_sum(a, b, trans_a=ta, trans_b=tb), ref, **tol)
    c = c0.copy()
    assert gemm_batched_sum(a, b, c=c, alpha=-1.0, beta=1.0, trans_a=ta, trans_b=tb) is c
    np.testing.assert_allclose(c, c0 - ref, **tol)


def test_beta_zero_ignores_garbage_in_c():
    rng = np.random.default_rng(0)
    a, b = mat(rng, (4, 3, 5), np.float64), mat(rng, (4, 5, 2), np.float64)
    c = np.full((4, 3, 2), np.nan)
    gemm_batched(a, b, c=c)
    assert np.isfinite(c).all()
    s = np.full((3, 2), np.nan)
    gemm_batched_sum(a, b, c=s)
    np.testing.assert_allclose(s, np.matmul(a, b).sum(0), rtol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_counts_agree(num_threads, threads):
    rng = np.random.default_rng(1)
    a, b = mat(rng, (16, 100), np.float64), mat(rng, (33, 100, 150), np.float64)
    num_threads(threads)
    c = gemm_batched(a, b)
    s = gemm_batched_sum(b, b, trans_b=True)
    np.testing.assert_allclose(c, np.matmul(a, b), rtol=1e-12)
    # s sums 33*150 products (sum of |products| ~ 3000): its rounding error is ~ 3000 * eps64 ~ 7e-13 in
    # absolute terms whatever the summation order, so off-diagonal entries that cancel to near 0 need an
    # absolute tolerance (the NT kernel sums in 4-lane partial sums, einsum sequentially).
    np.testing.assert_allclose(s, np.einsum("nik,njk->ij", b, b), rtol=1e-11, atol=1e-11)


def test_non_contiguous_inputs_are_read_correctly():
    rng = np.random.default_rng(2)
    a = mat(rng, (6, 8, 10), np.float64)[:, ::2, :]
    b = mat(rng, (6, 10, 7), np.float64).transpose(0, 2, 1).copy().transpose(0, 2, 1)
    np.testing.assert_allclose(gemm_batched(a, b), np.matmul(a, b), rtol=1e-12)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: gemm_batched(np.ones((2, 3, 4), np.float32), np.ones((2, 5, 6), np.float32)), ValueError, "inner"),
    (lambda: gemm_batched(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 6), np.float32)), ValueError, "batch"),
    (lambda: gemm_batched(np.ones((2, 3, 4), np.float32), np.ones((2, 4, 6), np.float64)), TypeError, "dtype"),
    (lambda: gemm_batched(np.ones((2, 3, 4), np.int64), np.ones((2, 4, 6))), TypeError, "a: expected dtype"),
    (lambda: gemm_batched(np.ones((2, 2, 3, 4)), np.ones((2, 4, 6))), ValueError, "a: expected a 2-D"),
    (lambda: gemm_batched(np.ones((0, 3, 4)), np.ones((4, 6))), ValueError, "a: expected every dimension"),
    (lambda: gemm_batched([[1.0]], np.ones((1, 1, 1))), TypeError, "a: expected a numpy"),
    (lambda: gemm_batched(np.ones((2, 3, 4)), np.ones((2, 4, 6)), c=np.ones((2, 3, 5))), ValueError, "c: expected shape"),
    (lambda: gemm_batched(np.ones((2, 3, 4)), np.ones((2, 4, 6)), c=np.ones((2, 3, 6), np.float32)), TypeError,
     "c: expected dtype"),
    (lambda: gemm_batched(np.ones((2, 3, 4)), np.ones((2, 4, 6)), c=np.ones((2, 6, 3)).transpose(0, 2, 1)),
     ValueError, "c: expected a C-contiguous array"),
    (lambda: gemm_batched(np.ones((2, 3, 4)), np.ones((2, 4, 6)), alpha="1"), TypeError, "alpha"),
    (lambda: gemm_batched_sum(np.ones((2, 3, 4)), np.ones((1, 4, 6))), ValueError, "as many matrices"),
    (lambda: gemm_batched_sum(np.ones((2, 3, 4)), np.ones((2, 4, 6)), c=np.ones((3, 5))), ValueError,
     "c: expected shape"),
])
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_output_overlapping_an_input_is_rejected():
    a = np.ones((2, 3, 3))
    with pytest.raises(ValueError, match="overlap"):
        gemm_batched(a, np.ones((2, 3, 3)), c=a)


# The NT kernel (AVX2; the other levels take the GEMM) works in 4 x 3 blocks of c along 8 (float32) or 4
# (float64) lanes of k: these shapes cover m and n below, at and past a block edge, k below one vector, at a
# multiple, and with every tail length; the longer k also the AVX-512 GEMM's 16 and 8 lanes.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (4, 3, 8), (5, 4, 9), (6, 25, 784), (16, 150, 100), (7, 2, 3),
                                     (3, 5, 17), (2, 7, 12), (9, 1, 31), (1, 6, 4), (8, 6, 15), (4, 3, 16),
                                     (5, 7, 32), (3, 2, 47), (6, 4, 392), (2, 5, 23), (7, 3, 11)])
@pytest.mark.parametrize("batch", [1, 5])
def test_gemm_batched_sum_nt_edges(simd, dtype, m, n, k, batch):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a, b = mat(rng, (batch, m, k), dtype), mat(rng, (batch, n, k), dtype)
    c0 = mat(rng, (m, n), dtype)
    ref = np.einsum("sik,sjk->ij", a.astype(np.float64), b.astype(np.float64))
    # float32: a sum of batch*k products, error ~ sqrt(batch*k) * eps32 * |partial sums| (as above).
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(gemm_batched_sum(a, b, trans_b=True), ref, **tol)
    c = c0.copy()
    gemm_batched_sum(a, b, c=c, alpha=0.5, beta=-2.0, trans_b=True)
    np.testing.assert_allclose(c, 0.5 * ref - 2.0 * c0, **tol)


def test_gemm_batched_sum_nt_is_deterministic():
    rng = np.random.default_rng(3)
    a, b = mat(rng, (64, 16, 100), np.float32), mat(rng, (64, 150, 100), np.float32)
    first = gemm_batched_sum(a, b, trans_b=True)
    for _ in range(3):
        np.testing.assert_array_equal(gemm_batched_sum(a, b, trans_b=True), first)


def test_gemm_batched_sum_nt_propagates_nan():
    a, b = np.ones((2, 5, 9)), np.ones((2, 4, 9))
    b[1, 2, 8] = np.nan  # in the k tail of a column edge block
    s = gemm_batched_sum(a, b, trans_b=True)
    assert np.isnan(s[:, 2]).all() and np.isfinite(np.delete(s, 2, axis=1)).all()
