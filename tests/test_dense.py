"""Fully connected kernels (linear_forward, linear_backward, bias_grad) against tests/oracles_dense.py.

The activation that follows a fully connected layer is a kernel of its own (tests/test_activations.py)."""
import numpy as np
import pytest
from oracles_dense import gemm_tolerance, linear_backward_ref, linear_ref, matmul_ref

import cnn_core
from cnn_core.kernels import bias_grad, linear_backward, linear_forward

DTYPES = [np.float32, np.float64]
# (N, in, out): batch 1, 1x1, odd sizes, the MNIST MLP and LeNet-5 classifier layers, and one large enough
# for a threaded GEMM.
SHAPES = [(1, 1, 1), (1, 5, 3), (7, 13, 5), (64, 784, 100), (64, 100, 10), (64, 120, 84), (300, 37, 129)]


def make(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def forward_tolerance(x, w, b, dtype):
    """z = x @ w.T + b is a K-term dot product plus one add: error <= (K + 1) * u * (|x| @ |w.T| + |b|) with
    u = eps/2; (K + 4) * eps doubles that (covering the float64 oracle's own rounding too)."""
    eps = np.finfo(dtype).eps
    scale = matmul_ref(np.abs(x), np.abs(w).T)
    if b is not None:
        scale += np.abs(b)
    return (x.shape[1] + 4) * eps * scale + np.finfo(dtype).tiny


def check_forward(x, w, b):
    z = linear_forward(x, w, b)
    _, z_ref = linear_ref(x, w, b)
    err = np.abs(z.astype(np.float64) - z_ref)
    assert z.shape == z_ref.shape and z.dtype == x.dtype
    assert np.all(err <= forward_tolerance(x, w, b, z.dtype)), f"max error {err.max():.3g}"
    return z


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,n_in,n_out", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_oracle(dtype, n, n_in, n_out, bias, simd):
    rng = np.random.default_rng(n * 1000 + n_in + n_out)
    x = make(rng, (n, n_in), dtype)
    w = make(rng, (n_out, n_in), dtype, scale=1 / np.sqrt(n_in))
    b = make(rng, (n_out,), dtype) if bias else None
    check_forward(x, w, b)


def test_forward_bias_nan_propagates():
    x, b = np.array([[1.0, -1.0, 2.0]]), np.array([np.nan, 0.0, 0.0])
    np.testing.assert_array_equal(linear_forward(x, np.eye(3), b), [[np.nan, -1.0, 2.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_non_contiguous_inputs(dtype):
    rng = np.random.default_rng(12)
    x = make(rng, (30, 80), dtype)[::2, 1::2]
    w = make(rng, (40, 20), dtype).T   # (out=20, in=40) in Fortran order
    b = make(rng, (40,), dtype)[::2]
    check_forward(x, w, b)


@pytest.mark.skipif(not cnn_core.openmp_enabled(), reason="serial build")
def test_forward_threads_match_serial_bitwise(num_threads):
    rng = np.random.default_rng(13)
    x, w = make(rng, (256, 200), np.float32), make(rng, (128, 200), np.float32, 0.07)
    b = make(rng, (128,), np.float32)
    num_threads(1)
    serial = linear_forward(x, w, b)
    num_threads(2)
    np.testing.assert_array_equal(linear_forward(x, w, b), serial)


# Row shares (the training forward's z.T = w @ x.T and the weight gradient, each thread on the rows of w the
# optimizer's step gives it): the MLP's layers, odd row counts (the shares meet inside a micro-tile), fewer
# rows than threads (no split), a batch of one, and a forward past CNN_DENSE_ROW_SHARES_MAX_OUTPUTS (plain).
ROW_SHARE_SHAPES = [(64, 784, 100), (64, 100, 10), (37, 53, 29), (64, 784, 1), (1, 300, 67), (130, 20, 3),
                    (300, 37, 129)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,n_in,n_out", ROW_SHARE_SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_row_shares_equal_the_plain_forward_bitwise(dtype, n, n_in, n_out, bias, kernel, num_threads,
                                                            two_threads):
    """The row-shares forward (a layer in training) gives the plain forward's bits, on 2 threads and on 1,
    at every micro-kernel: the same products summed in the same order, whichever operand is A."""
    from cnn_core import _config
    from cnn_core.kernels.dense import _linear

    rng = np.random.default_rng(n + 3 * n_in + 7 * n_out)
    x, w = make(rng, (n, n_in), dtype), make(rng, (n_out, n_in), dtype, scale=1 / np.sqrt(n_in))
    b = make(rng, (n_out,), dtype) if bias else None
    plain = check_forward(x, w, b)
    for threads in (2, 1):
        num_threads(threads)
        jobs = _config._pool_stats()[0]
        np.testing.assert_array_equal(_linear(x, w, b, row_shares=True), plain, err_msg=f"{threads} threads")
        if threads == 2 and n_in * n * n_out >= 2 ** 21:   # a team of 2 (CNN_GEMM_MIN_WORK_PER_THREAD)
            assert _config._pool_stats()[0] > jobs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,n_in,n_out", ROW_SHARE_SHAPES)
def test_weight_grad_row_shares_match_oracle_and_gemm_bitwise(dtype, n, n_in, n_out, kernel, num_threads,
                                                              two_threads):
    """dw = delta.T @ x on dw's row shares equals the oracle, and the GEMM's own split bit for bit (2 threads
    and 1), written (beta 0: NaN in dw's old values does not leak) or accumulated."""
    from cnn_core.kernels import gemm
    from cnn_core.kernels.dense import _weight_grad

    rng = np.random.default_rng(n + 5 * n_in + 11 * n_out)
    x, delta = make(rng, (n, n_in), dtype), make(rng, (n, n_out), dtype)
    _, dw_ref, _ = linear_backward_ref(x, np.zeros((n_out, n_in), dtype), delta)
    start = make(rng, (n_out, n_in), dtype)
    for threads in (2, 1):
        num_threads(threads)
        dw = np.full((n_out, n_in), np.nan, dtype)
        _weight_grad(delta, x, dw, accumulate=False)
        err = np.abs(dw.astype(np.float64) - dw_ref)
        assert np.all(err <= gemm_tolerance(delta, x, trans_a=True, dtype=dtype)), f"max error {err.max():.3g}"
        np.testing.assert_array_equal(dw, gemm(delta, x, trans_a=True))
        acc = start.copy()
        _weight_grad(delta, x, acc, accumulate=True)
        np.testing.assert_array_equal(acc, gemm(delta, x, start.copy(), beta=1.0, trans_a=True))


def assert_backward_close(x, w, delta):
    dx, dw, db = linear_backward(x, w, delta)
    dx_ref, dw_ref, db_ref = linear_backward_ref(x, w, delta)
    dtype = x.dtype
    ones = np.ones((1, x.shape[0]))
    for name, got, ref, tol in [
        ("dx", dx, dx_ref, gemm_tolerance(delta, w, dtype=dtype)),
        ("dw", dw, dw_ref, gemm_tolerance(delta, x, trans_a=True, dtype=dtype)),
        ("db", db, db_ref, gemm_tolerance(ones, delta, dtype=dtype)[0]),   # a sum is a dot with ones
    ]:
        assert got.shape == ref.shape and got.dtype == dtype, name
        err = np.abs(got.astype(np.float64) - ref)
        assert np.all(err <= tol), f"{name}: max error {err.max():.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,n_in,n_out", SHAPES)
def test_backward_matches_oracle(dtype, n, n_in, n_out):
    rng = np.random.default_rng(n + 7 * n_in + 13 * n_out)
    assert_backward_close(make(rng, (n, n_in), dtype), make(rng, (n_out, n_in), dtype),
                          make(rng, (n, n_out), dtype))


def test_backward_finite_differences():
    # Loss L = sum(z * g) with z = x @ w.T + b, so dL/dz = g; central differences in float64.
    rng = np.random.default_rng(14)
    x, w = rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
    b, g = rng.standard_normal(3), rng.standard_normal((4, 3))

    def loss():
        return float(np.sum(linear_forward(x, w, b) * g))

    dx, dw, db = linear_backward(x, w, g)
    eps = 1e-6
    for param, grad in ((x, dx), (w, dw), (b, db)):
        numeric = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            old = param[idx]
            param[idx] = old + eps
            up = loss()
            param[idx] = old - eps
            down = loss()
            param[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        # L is linear in each parameter, so only rounding of L (~1e-16 * |L| / eps) separates the two.
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (64, 10), (5, 513), (3000, 100), (7, 1200)])
def test_bias_grad_matches_oracle(dtype, shape):
    rng = np.random.default_rng(shape[0] + shape[1])
    delta = make(rng, shape, dtype)
    db = bias_grad(delta)
    ref = linear_backward_ref(np.zeros((shape[0], 1)), np.zeros((shape[1], 1)), delta)[2]
    # Accumulated in double, so float32 sees one final rounding; the dot-with-ones bound covers both dtypes.
    tol = gemm_tolerance(np.ones((1, shape[0])), delta, dtype=dtype)[0]
    assert db.shape == (shape[1],) and db.dtype == dtype
    assert np.all(np.abs(db.astype(np.float64) - ref) <= tol)


def test_empty_dimensions():
    # zero batch, zero input features (z = b) and zero output features are all valid shapes
    b = np.array([0.5, -2.0])
    np.testing.assert_array_equal(linear_forward(np.empty((3, 0)), np.empty((2, 0)), b), [[0.5, -2.0]] * 3)
    assert linear_forward(np.empty((0, 4)), np.ones((2, 4))).shape == (0, 2)
    assert linear_forward(np.ones((3, 4)), np.empty((0, 4)), np.empty(0)).shape == (3, 0)
    dx, dw, db = linear_backward(np.empty((0, 4)), np.ones((2, 4)), np.empty((0, 2)))
    assert dx.shape == (0, 4)
    np.testing.assert_array_equal(dw, np.zeros((2, 4)))
    np.testing.assert_array_equal(db, np.zeros(2))
    dx, dw, db = linear_backward(np.ones((3, 4)), np.empty((0, 4)), np.empty((3, 0)))
    np.testing.assert_array_equal(dx, np.zeros((3, 4)))
    assert dw.shape == (0, 4) and db.shape == (0,)


def test_bias_grad_non_contiguous_and_empty_batch():
    rng = np.random.default_rng(15)
    delta = rng.standard_normal((40, 30))
    np.testing.assert_allclose(bias_grad(delta[::3, ::2]), delta[::3, ::2].sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(bias_grad(np.empty((0, 4))), np.zeros(4))


# ---- bad input -----------------------------------------------------------------------------------

def test_forward_rejects_1d_x():
    with pytest.raises(ValueError, match="x: expected a 2-D array"):
        linear_forward(np.ones(3), np.ones((2, 3)))


def test_forward_rejects_mismatched_w():
    with pytest.raises(ValueError, match=r"w: expected shape \(out_features, 3\).*got \(2, 4\)"):
        linear_forward(np.ones((5, 3)), np.ones((2, 4)))


def test_forward_rejects_int_x():
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64, got int32"):
        linear_forward(np.ones((5, 3), np.int32), np.ones((2, 3)))


def test_forward_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match="w: expected dtype float64"):
        linear_forward(np.ones((5, 3)), np.ones((2, 3), np.float32))


def test_forward_rejects_bias_dtype():
    with pytest.raises(TypeError, match="b: expected dtype float32"):
        linear_forward(np.ones((5, 3), np.float32), np.ones((2, 3), np.float32), np.ones(2))


def test_forward_rejects_bias_shape():
    with pytest.raises(ValueError, match=r"b: expected shape \(2,\).*got \(3,\)"):
        linear_forward(np.ones((5, 3)), np.ones((2, 3)), np.ones(3))


def test_backward_rejects_delta_shape():
    with pytest.raises(ValueError, match=r"delta: expected shape \(5, 2\).*got \(5, 3\)"):
        linear_backward(np.ones((5, 3)), np.ones((2, 3)), np.ones((5, 3)))


def test_backward_rejects_mixed_delta_dtype():
    with pytest.raises(TypeError, match="delta: expected dtype float64"):
        linear_backward(np.ones((5, 3)), np.ones((2, 3)), np.ones((5, 2), np.float32))


def test_backward_rejects_mismatched_w():
    with pytest.raises(ValueError, match="w: expected shape"):
        linear_backward(np.ones((5, 3)), np.ones((2, 4)), np.ones((5, 2)))


def test_bias_grad_rejects_1d():
    with pytest.raises(ValueError, match="delta: expected a 2-D array"):
        bias_grad(np.ones(4))


def test_bias_grad_rejects_int():
    with pytest.raises(TypeError, match="delta: expected dtype float32 or float64, got int64"):
        bias_grad(np.ones((4, 2), np.int64))
