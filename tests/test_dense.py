"""Fully connected kernels (linear_forward, linear_backward, bias_grad) against tests/oracles_dense.py."""
import warnings

import numpy as np
import pytest
from oracles_dense import gemm_tolerance, linear_backward_ref, linear_ref, matmul_ref

import cnn_core
from cnn_core.kernels import bias_grad, linear_backward, linear_forward

DTYPES = [np.float32, np.float64]
ACTIVATIONS = [None, "sigmoid", "tanh", "relu", "elu"]
# (N, in, out): batch 1, 1x1, odd sizes, the MNIST MLP and LeNet-5 classifier layers, and one large enough
# for the threaded bias/activation pass (N * out >= 16384).
SHAPES = [(1, 1, 1), (1, 5, 3), (7, 13, 5), (64, 784, 100), (64, 100, 10), (64, 120, 84), (300, 37, 129)]


def make(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def lipschitz(activation, alpha):
    """Bound on |act'(z)|: an error e in z moves act(z) by at most L * e."""
    return {None: 1.0, "sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "elu": max(1.0, abs(alpha))}[activation]


def forward_tolerance(x, w, b, activation, alpha, a_ref, dtype):
    """Error in z, carried through the activation by its Lipschitz constant, plus the activation's own.

    z = x @ w.T + b is a K-term dot product plus one add: error <= (K + 1) * u * (|x| @ |w.T| + |b|) with
    u = eps/2; (K + 4) * eps doubles that (covering the float64 oracle's own rounding too). libm's exp,
    expm1 and tanh are within 2 ulp and sigmoid adds an add and a divide: 8 eps relative to |a| covers it.
    """
    eps = np.finfo(dtype).eps
    scale = matmul_ref(np.abs(x), np.abs(w).T)
    if b is not None:
        scale += np.abs(b)
    z_tol = (x.shape[1] + 4) * eps * scale
    return lipschitz(activation, alpha) * z_tol + 8 * eps * np.abs(a_ref) + np.finfo(dtype).tiny


def check_forward(x, w, b, activation, alpha=1.0):
    a = linear_forward(x, w, b, activation, alpha)
    a_ref, _ = linear_ref(x, w, b, activation, alpha)
    tol = forward_tolerance(x, w, b, activation, alpha, a_ref, a.dtype)
    err = np.abs(a.astype(np.float64) - a_ref)
    assert a.shape == a_ref.shape and a.dtype == x.dtype
    assert np.all(err <= tol), f"{activation}: max error {err.max():.3g}"
    return a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,n_in,n_out", SHAPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_oracle(dtype, n, n_in, n_out, activation, bias):
    rng = np.random.default_rng(n * 1000 + n_in + n_out)
    x = make(rng, (n, n_in), dtype)
    w = make(rng, (n_out, n_in), dtype, scale=1 / np.sqrt(n_in))   # z of order 1: every activation regime
    b = make(rng, (n_out,), dtype) if bias else None
    check_forward(x, w, b, activation)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1.0, 0.3, 2.5])
def test_forward_elu_alpha(dtype, alpha):
    rng = np.random.default_rng(11)
    x, w, b = make(rng, (20, 30), dtype), make(rng, (17, 30), dtype, 0.3), make(rng, (17,), dtype)
    check_forward(x, w, b, "elu", alpha)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_extreme_inputs_no_overflow(dtype):
    # z = x exactly (w = I, b = 0): sigmoid must saturate cleanly with no overflow warning, keep full relative
    # accuracy far into the tails, and ELU must reach -alpha.
    z = np.array([[-1000.0, -100.0, -30.0, -1e-8, 0.0, 1e-8, 30.0, 100.0, 1000.0]], dtype=dtype)
    eye = np.eye(z.shape[1], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for activation in ACTIVATIONS:
            a = check_forward(z, eye, None, activation, alpha=0.5)
            assert np.isfinite(a).all()
        s = linear_forward(z, eye, activation="sigmoid")
    assert s[0, 0] == 0 and s[0, -1] == 1
    # z is exact here, so the tails keep libm's relative accuracy (8 eps as above; float32's sigmoid(-100)
    # is subnormal, where only an absolute error of the smallest normal number can be asked for).
    s_ref, _ = linear_ref(z, eye, activation="sigmoid")
    np.testing.assert_allclose(s, s_ref, rtol=8 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)
    e = linear_forward(z, eye, activation="elu", alpha=0.5)
    assert e[0, 0] == -0.5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "elu"])
def test_activation_accuracy_dense_grid(dtype, activation):
    # x (N, 1) @ [[1]] makes z = x exactly, isolating the activation (float32 uses SIMD polynomials, not
    # libm): relative error within 8 eps (a few ulp, as above) on a dense grid over every branch, plus
    # tiny and huge arguments; an absolute smallest-normal slack where the result is subnormal.
    z = np.concatenate([np.linspace(-100, 100, 20001), np.geomspace(1e-30, 1, 301), -np.geomspace(1e-30, 1, 301),
                        [0.0, -0.0, 0.625, -0.625, 87.3, -87.3, 88.7, -88.7, 1e30, -1e30]]).astype(dtype)
    a = linear_forward(z[:, None], np.ones((1, 1), dtype), activation=activation, alpha=1.0)[:, 0]
    ref = linear_ref(z[:, None], np.ones((1, 1)), activation=activation)[0][:, 0]
    np.testing.assert_allclose(a, ref, rtol=8 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)


def test_forward_relu_propagates_nan():
    x, b = np.array([[1.0, -1.0, 2.0]]), np.array([np.nan, 0.0, 0.0])
    np.testing.assert_array_equal(linear_forward(x, np.eye(3), b, activation="relu"), [[np.nan, 0.0, 2.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_non_contiguous_inputs(dtype):
    rng = np.random.default_rng(12)
    x = make(rng, (30, 80), dtype)[::2, 1::2]
    w = make(rng, (40, 20), dtype).T   # (out=20, in=40) in Fortran order
    b = make(rng, (40,), dtype)[::2]
    check_forward(x, w, b, "tanh")


@pytest.mark.skipif(not cnn_core.openmp_enabled(), reason="serial build")
@pytest.mark.parametrize("activation", ["sigmoid", "elu"])
def test_forward_threads_match_serial_bitwise(num_threads, activation):
    rng = np.random.default_rng(13)
    x, w = make(rng, (256, 200), np.float32), make(rng, (128, 200), np.float32, 0.07)
    b = make(rng, (128,), np.float32)
    num_threads(1)
    serial = linear_forward(x, w, b, activation)
    num_threads(2)
    np.testing.assert_array_equal(linear_forward(x, w, b, activation), serial)


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
    np.testing.assert_array_equal(linear_forward(np.empty((3, 0)), np.empty((2, 0)), b, "relu"), [[0.5, 0.0]] * 3)
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


def test_forward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation: expected one of None, 'sigmoid', 'tanh', 'relu', 'elu', "
                                         "got 'softmax'"):
        linear_forward(np.ones((5, 3)), np.ones((2, 3)), activation="softmax")


def test_forward_rejects_non_string_activation():
    with pytest.raises(TypeError, match="activation: expected one of"):
        linear_forward(np.ones((5, 3)), np.ones((2, 3)), activation=np.tanh)


def test_forward_rejects_non_real_alpha():
    with pytest.raises(TypeError, match="alpha: expected a real number"):
        linear_forward(np.ones((5, 3)), np.ones((2, 3)), activation="elu", alpha=None)


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
