"""Activation kernels against the NumPy oracles, finite differences, in-place use and bad input.

Shapes: 0-d is supported (an activation is elementwise, so a scalar array is a valid input and comes back
0-d), as are empty arrays and 1-D..4-D; one shape (over 2^20 elements, not a multiple of the chunk) takes the OpenMP path.
"""
import numpy as np
import pytest

import cnn_core.kernels as K
from oracles_activations import (elu_backward_ref, elu_ref, relu_backward_ref, relu_ref,
                                 sigmoid_backward_ref, sigmoid_ref, tanh_backward_ref, tanh_ref)

DTYPES = [np.float32, np.float64]
SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 3, 4), (2, 1, 5, 3), (0, 4), (2, 550_003)]
ALPHA = 0.7

# name -> (forward, backward, forward oracle, backward oracle); elu's alpha bound in.
ACTS = {
    "sigmoid": (K.sigmoid, K.sigmoid_backward, sigmoid_ref, sigmoid_backward_ref),
    "tanh": (K.tanh, K.tanh_backward, tanh_ref, tanh_backward_ref),
    "relu": (K.relu, K.relu_backward, relu_ref, relu_backward_ref),
    "elu": (lambda z, out=None: K.elu(z, ALPHA, out=out),
            lambda dy, a, out=None: K.elu_backward(dy, a, ALPHA, out=out),
            lambda z: elu_ref(z, ALPHA), lambda dy, a: elu_backward_ref(dy, a, ALPHA)),
}

# Forward: each kernel is a libm call plus one or two roundings in its own dtype, so a few ulps relative
# (float32 eps 1.2e-7, float64 eps 2.2e-16); atol = the smallest normal covers results in the subnormal range.
FWD_TOL = {np.float32: dict(rtol=2e-6, atol=np.finfo(np.float32).tiny),
           np.float64: dict(rtol=1e-13, atol=np.finfo(np.float64).tiny)}
# Backward: 1 - a*a and 1 - a cancel when |a| -> 1, so the error there is absolute, ~ulp(1) * |dy|
# (|dy| < 6 here), not relative.
BWD_TOL = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-13, atol=4e-15)}


def _rand(rng, shape, dtype, scale=3.0):
    return np.asarray(rng.normal(0.0, scale, size=shape)).astype(dtype)


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_oracle(name, dtype, shape, simd):
    fwd, _, ref, _ = ACTS[name]
    z = _rand(np.random.default_rng(1), shape, dtype)
    a = fwd(z)
    assert a.shape == z.shape and a.dtype == dtype
    np.testing.assert_allclose(a, ref(z), **FWD_TOL[dtype])


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_backward_matches_oracle(name, dtype, shape, simd):
    fwd, bwd, _, ref = ACTS[name]
    rng = np.random.default_rng(2)
    a = fwd(_rand(rng, shape, dtype))
    dy = _rand(rng, shape, dtype, scale=1.0)
    dz = bwd(dy, a)
    assert dz.shape == a.shape and dz.dtype == dtype
    np.testing.assert_allclose(dz, ref(dy, a), **BWD_TOL[dtype])


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_dense_grid(name, dtype, simd):
    # Every range-reduction interval of the inline exp/expm1, tiny |z| (where tanh and elu need expm1's
    # relative accuracy), and the flush-to-zero end of exp.
    mag = np.concatenate([np.geomspace(1e-30, 1e-3, 400), np.linspace(1e-3, 90.0, 20001), np.linspace(90.0, 750.0, 2001)])
    z = np.concatenate([-mag[::-1], [0.0], mag]).astype(dtype)
    fwd, _, ref, _ = ACTS[name]
    np.testing.assert_allclose(fwd(z), ref(z), **FWD_TOL[dtype])


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_within_8_eps_including_extremes(name, dtype, simd):
    # The accuracy the fused dense path was held to (when it had its own polynomials), now asked of the one
    # implementation: relative error within 8 eps (a few ulp) on a dense grid over every branch, tiny and
    # huge arguments and the ends of exp's range; an absolute smallest-normal slack where the result is
    # subnormal. No overflow warning anywhere.
    z = np.concatenate([np.linspace(-100, 100, 20001), np.geomspace(1e-30, 1, 301), -np.geomspace(1e-30, 1, 301),
                        [0.0, -0.0, 0.625, -0.625, 87.3, -87.3, 88.7, -88.7, 1e30, -1e30, -1000.0, 1000.0]]
                       ).astype(dtype)
    fwd, _, ref, _ = ACTS[name]
    with np.errstate(all="raise"):
        a = fwd(z)
    np.testing.assert_allclose(a, ref(z), rtol=8 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_keeps_the_sign_of_zero(dtype, simd):
    # tanh is odd: tanh(+0) = +0 and tanh(-0) = -0 (as libm and torch.tanh give); the expm1 form once
    # returned -0 for +0.
    a = K.tanh(np.array([0.0, -0.0, 1e-30, -1e-30], dtype=dtype))
    np.testing.assert_array_equal(np.signbit(a), [False, True, False, True])
    np.testing.assert_array_equal(a, np.array([0.0, 0.0, 1e-30, -1e-30], dtype=dtype))


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_views(name, dtype):
    fwd, bwd, ref_f, ref_b = ACTS[name]
    rng = np.random.default_rng(3)
    z = _rand(rng, (6, 8, 5), dtype).transpose(2, 0, 1)[:, ::2, 1:]
    dy = _rand(rng, (5, 3, 7), dtype)[:, :, ::-1]
    assert not z.flags.c_contiguous and not dy.flags.c_contiguous
    a = fwd(z)
    np.testing.assert_allclose(a, ref_f(z), **FWD_TOL[dtype])
    a_view = np.asfortranarray(a)
    np.testing.assert_allclose(bwd(dy, a_view), ref_b(dy, a), **BWD_TOL[dtype])


@pytest.mark.parametrize("name", list(ACTS))
def test_backward_matches_finite_differences(name):
    fwd, bwd, _, _ = ACTS[name]
    rng = np.random.default_rng(4)
    z = rng.normal(0.0, 2.0, size=(4, 33))
    z[np.abs(z) < 1e-2] = 0.5  # keep away from the kinks of relu (and elu with alpha != 1) at 0
    dy = rng.normal(size=z.shape)
    h = 1e-6
    numeric = dy * (fwd(z + h) - fwd(z - h)) / (2 * h)
    # Central differences: truncation ~h^2 |f'''| ~ 1e-12, rounding ~eps/h ~ 2e-10.
    np.testing.assert_allclose(bwd(dy, fwd(z)), numeric, rtol=1e-7, atol=1e-8)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_stable_for_large_inputs(dtype, simd):
    z = np.array([-1000.0, -100.0, -50.0, 0.0, 50.0, 100.0, 1000.0, -np.inf, np.inf], dtype=dtype)
    with np.errstate(all="raise"):
        a = K.sigmoid(z)
        a_bwd = K.sigmoid_backward(np.ones_like(z), a)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(a_bwd))
    assert a[0] == 0.0 and a[-2] == 0.0 and a[6] == 1.0 and a[-1] == 1.0 and a[3] == 0.5
    np.testing.assert_allclose(a, sigmoid_ref(z), **FWD_TOL[dtype])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_and_elu_saturate_without_warnings(dtype):
    z = np.array([-1000.0, 1000.0], dtype=dtype)
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(K.tanh(z), [-1.0, 1.0])
        np.testing.assert_array_equal(K.elu(z, alpha=2.0), [-2.0, 1000.0])


def test_nan_propagates_through_forward():
    z = np.array([np.nan, -1.0, 1.0])
    for fwd in (K.sigmoid, K.tanh, K.relu, K.elu):
        assert np.isnan(fwd(z)[0])


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_in_place(name, dtype):
    fwd, _, ref, _ = ACTS[name]
    z = _rand(np.random.default_rng(5), (5, 300), dtype)
    expected = ref(z)
    r = fwd(z, out=z)
    assert r is z
    np.testing.assert_allclose(z, expected, **FWD_TOL[dtype])


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("target", ["dy", "a"])
def test_backward_in_place(name, target):
    fwd, bwd, _, ref = ACTS[name]
    rng = np.random.default_rng(6)
    a = fwd(rng.normal(size=(4, 50)))
    dy = rng.normal(size=a.shape)
    expected = ref(dy, a)
    out = dy if target == "dy" else a
    assert bwd(dy, a, out=out) is out
    np.testing.assert_allclose(out, expected, **BWD_TOL[np.float64])


def test_out_given_is_filled_and_returned():
    z = np.random.default_rng(7).normal(size=(3, 4, 5)).astype(np.float32)
    out = np.full_like(z, np.nan)
    assert K.tanh(z, out=out) is out
    np.testing.assert_allclose(out, tanh_ref(z), **FWD_TOL[np.float32])


def test_out_partially_overlapping_input():
    # out shifted by one element over z: a naive loop would read values it has already overwritten.
    buf = np.random.default_rng(8).normal(size=1001)
    z, out = buf[:-1], buf[1:]
    expected = sigmoid_ref(z)
    K.sigmoid(z, out=out)
    np.testing.assert_allclose(out, expected, **FWD_TOL[np.float64])


# ---- bad input: one test per case ----

def test_forward_rejects_integer_input():
    with pytest.raises(TypeError, match=r"z: expected dtype float32 or float64, got int64"):
        K.sigmoid(np.arange(4))


def test_forward_rejects_non_array():
    with pytest.raises(TypeError, match=r"z: expected a numpy.ndarray, got list"):
        K.relu([1.0, -1.0])


def test_out_wrong_dtype():
    with pytest.raises(TypeError, match=r"out: expected dtype float64.*got float32"):
        K.tanh(np.zeros(3), out=np.zeros(3, np.float32))


def test_out_wrong_shape():
    with pytest.raises(ValueError, match=r"out: expected shape \(2, 3\).*got \(3, 2\)"):
        K.relu(np.zeros((2, 3)), out=np.zeros((3, 2)))


def test_out_not_contiguous():
    with pytest.raises(ValueError, match=r"out: expected a C-contiguous array"):
        K.relu(np.zeros((2, 3)), out=np.zeros((3, 2)).T)


def test_out_read_only():
    out = np.zeros(3)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"out: expected a writable array"):
        K.sigmoid(np.zeros(3), out=out)


def test_out_not_array():
    with pytest.raises(TypeError, match=r"out: expected a numpy.ndarray or None, got list"):
        K.sigmoid(np.zeros(3), out=[0.0, 0.0, 0.0])


def test_backward_mixed_dtypes():
    with pytest.raises(TypeError, match=r"a: expected dtype float32 .*got float64"):
        K.sigmoid_backward(np.zeros(3, np.float32), np.zeros(3))


def test_backward_integer_a():
    with pytest.raises(TypeError, match=r"a: expected dtype float32 or float64, got int64"):
        K.relu_backward(np.zeros(3), np.arange(3))


def test_backward_integer_dy():
    with pytest.raises(TypeError, match=r"dy: expected dtype float32 or float64, got int32"):
        K.tanh_backward(np.zeros(3, np.int32), np.zeros(3))


def test_backward_shape_mismatch():
    with pytest.raises(ValueError, match=r"a: expected shape \(2, 3\) \(dy's\), got \(6,\)"):
        K.tanh_backward(np.zeros((2, 3)), np.zeros(6))


@pytest.mark.parametrize("alpha", [0.0, -1.0, np.nan, np.inf])
@pytest.mark.parametrize("fn", ["elu", "elu_backward"])
def test_elu_bad_alpha_value(fn, alpha):
    args = (np.zeros(3),) if fn == "elu" else (np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"alpha: expected a finite number > 0"):
        getattr(K, fn)(*args, alpha=alpha)


@pytest.mark.parametrize("alpha", ["1", True, None])
def test_elu_bad_alpha_type(alpha):
    with pytest.raises(TypeError, match=r"alpha: expected a real number"):
        K.elu(np.zeros(3), alpha=alpha)
