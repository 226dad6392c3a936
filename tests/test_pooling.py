"""Max and average pooling against the plain-loop oracles: forward, backward, ties, NaN, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles_pooling import avg_pool2d_backward_ref, avg_pool2d_ref, max_pool2d_backward_ref, max_pool2d_ref

from cnn_core.kernels import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward

DTYPES = [np.float32, np.float64]
# Window sums of at most KH*KW O(1) terms in a different order / precision than the float64 oracle:
# a few ulps of the dtype.
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}

# (x shape, kernel_size, stride)
CASES = [
    ((1, 1, 4, 4), 2, None),              # batch 1, tiling windows
    ((2, 3, 5, 7), 1, None),              # 1x1 kernel
    ((2, 2, 5, 5), 5, None),              # kernel = input size
    ((2, 2, 4, 6), (4, 6), None),         # kernel = non-square input size
    ((2, 2, 9, 9), 2, 3),                 # stride > kernel
    ((2, 3, 7, 7), 3, 2),                 # overlapping windows (k3 s2)
    ((2, 2, 8, 9), 3, 1),                 # heavily overlapping windows
    ((2, 2, 7, 9), 2, None),              # windows that do not tile: floor mode drops the last row/col
    ((3, 2, 11, 8), (2, 3), (3, 2)),      # odd sizes, non-square kernel and stride
    ((1, 3, 1, 9), (1, 3), (1, 2)),       # single-row input
    ((2, 2, 9, 7), 2, (3, 2)),            # 2-wide windows with skipped rows between them
    ((1, 2, 8, 9), (3, 2), (3, 2)),       # 3x2 windows tiling (odd trailing row and column dropped)
]


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s", CASES)
def test_max_pool_forward_matches_oracle(shape, k, s, dtype):
    x = _rand(np.random.default_rng(0), shape, dtype)
    out, argmax = max_pool2d_forward(x, k, s)
    ref_out, ref_arg = max_pool2d_ref(x, k, s)
    assert out.dtype == dtype and argmax.dtype == np.int64
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_arg)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s", CASES)
def test_max_pool_backward_matches_oracle(shape, k, s, dtype):
    rng = np.random.default_rng(1)
    x = _rand(rng, shape, dtype)
    out, argmax = max_pool2d_forward(x, k, s)
    dout = _rand(rng, out.shape, dtype)
    dx = max_pool2d_backward(dout, argmax, shape)
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, max_pool2d_backward_ref(dout, argmax, shape), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s", CASES)
def test_avg_pool_forward_matches_oracle(shape, k, s, dtype):
    x = _rand(np.random.default_rng(2), shape, dtype)
    out = avg_pool2d_forward(x, k, s)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, avg_pool2d_ref(x, k, s), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s", CASES)
def test_avg_pool_backward_matches_oracle(shape, k, s, dtype):
    rng = np.random.default_rng(3)
    out_shape = avg_pool2d_forward(np.zeros(shape, dtype), k, s).shape
    dout = _rand(rng, out_shape, dtype)
    dx = avg_pool2d_backward(dout, shape, k, s)
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, avg_pool2d_backward_ref(dout, shape, k, s), **TOL[dtype])


@pytest.mark.parametrize("shape,k,s", CASES)
def test_avg_pool_backward_is_adjoint_of_forward(shape, k, s):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    out = avg_pool2d_forward(x, k, s)
    g = rng.standard_normal(out.shape)
    assert np.vdot(out, g) == pytest.approx(np.vdot(x, avg_pool2d_backward(g, shape, k, s)), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_pick_first(dtype):
    x = np.ones((2, 2, 7, 7), dtype)
    out, argmax = max_pool2d_forward(x, 3, 2)
    oh, ow = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(argmax, np.broadcast_to(oh * 2 * 7 + ow * 2, argmax.shape))
    np.testing.assert_array_equal(out, 1.0)
    # a tie later in the window than the first maximum must not win
    x = np.array([[[[0.0, 5.0], [5.0, 5.0]]]], dtype)
    assert max_pool2d_forward(x, 2)[1].item() == 1


def test_max_pool_negative_infinity_window():
    x = np.full((1, 1, 2, 2), -np.inf)
    out, argmax = max_pool2d_forward(x, 2)
    assert out.item() == -np.inf and argmax.item() == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_nan_propagates(dtype):
    x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan   # window (0, 0): NaN after the first element
    x[0, 0, 3, 3] = np.nan   # window (1, 1): NaN at the last element, after the window's true maximum
    x[0, 0, 2, 0] = np.nan   # window (1, 0): NaN first ...
    x[0, 0, 3, 1] = np.nan   # ... and again later: argmax keeps the first
    out, argmax = max_pool2d_forward(x, 2)
    assert np.isnan(out[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1
    assert np.isnan(out[0, 0, 1, 1]) and argmax[0, 0, 1, 1] == 15
    assert np.isnan(out[0, 0, 1, 0]) and argmax[0, 0, 1, 0] == 8
    assert out[0, 0, 0, 1] == 7 and argmax[0, 0, 0, 1] == 7


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_views(dtype):
    rng = np.random.default_rng(5)
    base = _rand(rng, (3, 6, 10, 12), dtype)
    for x in (base[:, ::2, 1:, ::-2], base.transpose(0, 1, 3, 2), base[::2, :, 2:9, 3:]):
        assert not x.flags.c_contiguous
        out, argmax = max_pool2d_forward(x, 3, 2)
        ref_out, ref_arg = max_pool2d_ref(x, 3, 2)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(argmax, ref_arg)
        np.testing.assert_allclose(avg_pool2d_forward(x, (2, 3)), avg_pool2d_ref(x, (2, 3)), **TOL[dtype])
        dout = _rand(rng, out.shape, dtype)[..., ::-1]
        np.testing.assert_allclose(max_pool2d_backward(dout, argmax[..., ::-1], x.shape),
                                   max_pool2d_backward_ref(dout, argmax[..., ::-1], x.shape), **TOL[dtype])
        np.testing.assert_allclose(avg_pool2d_backward(dout, x.shape, 3, 2),
                                   avg_pool2d_backward_ref(dout, x.shape, 3, 2), **TOL[dtype])


def test_max_pool_backward_accepts_int32_argmax():
    x = np.random.default_rng(6).standard_normal((2, 2, 6, 6))
    out, argmax = max_pool2d_forward(x, 3, 2)
    np.testing.assert_array_equal(max_pool2d_backward(out, argmax.astype(np.int32), x.shape),
                                  max_pool2d_backward(out, argmax, x.shape))


@st.composite
def pool_geometry(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, min(4, h))), draw(st.integers(1, min(4, w)))
    stride = draw(st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4)))
    dtype = draw(st.sampled_from(DTYPES))
    return (n, c, h, w), (kh, kw), stride, dtype


@settings(max_examples=40, deadline=None)
@given(pool_geometry(), st.integers(0, 2**31), st.booleans())
def test_fuzz_max_pool(geom, seed, few_values):
    shape, k, s, dtype = geom
    rng = np.random.default_rng(seed)
    # few distinct values make ties common, which exercises the first-maximum rule
    x = (rng.integers(0, 3, shape) if few_values else rng.standard_normal(shape)).astype(dtype)
    out, argmax = max_pool2d_forward(x, k, s)
    ref_out, ref_arg = max_pool2d_ref(x, k, s)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_arg)
    dout = _rand(rng, out.shape, dtype)
    np.testing.assert_allclose(max_pool2d_backward(dout, argmax, shape),
                               max_pool2d_backward_ref(dout, argmax, shape), **TOL[dtype])


@settings(max_examples=40, deadline=None)
@given(pool_geometry(), st.integers(0, 2**31))
def test_fuzz_avg_pool(geom, seed):
    shape, k, s, dtype = geom
    rng = np.random.default_rng(seed)
    x = _rand(rng, shape, dtype)
    out = avg_pool2d_forward(x, k, s)
    np.testing.assert_allclose(out, avg_pool2d_ref(x, k, s), **TOL[dtype])
    dout = _rand(rng, out.shape, dtype)
    np.testing.assert_allclose(avg_pool2d_backward(dout, shape, k, s),
                               avg_pool2d_backward_ref(dout, shape, k, s), **TOL[dtype])


# ---- bad input: one test per case; messages name the argument, what was expected and what came ----

X = np.zeros((2, 3, 6, 6))
DOUT = np.zeros((2, 3, 3, 3))
ARGMAX = np.zeros((2, 3, 3, 3), dtype=np.int64)


@pytest.mark.parametrize("fn", [max_pool2d_forward, avg_pool2d_forward])
def test_forward_wrong_ndim(fn):
    with pytest.raises(ValueError, match=r"x: expected a 4-D array, got shape \(6, 6\)"):
        fn(X[0, 0], 2)


@pytest.mark.parametrize("fn", [max_pool2d_forward, avg_pool2d_forward])
def test_forward_integer_dtype(fn):
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64, got int64"):
        fn(X.astype(np.int64), 2)


@pytest.mark.parametrize("fn", [max_pool2d_forward, avg_pool2d_forward])
def test_forward_empty_input(fn):
    with pytest.raises(ValueError, match=r"x: expected every dimension >= 1, got shape \(0, 3, 6, 6\)"):
        fn(np.zeros((0, 3, 6, 6)), 2)


@pytest.mark.parametrize("fn", [max_pool2d_forward, avg_pool2d_forward])
def test_forward_zero_stride(fn):
    with pytest.raises(ValueError, match=r"stride: expected values >= 1, got 0"):
        fn(X, 2, 0)


@pytest.mark.parametrize("fn", [max_pool2d_forward, avg_pool2d_forward])
def test_forward_negative_stride(fn):
    with pytest.raises(ValueError, match=r"stride: expected values >= 1, got \(-1, 2\)"):
        fn(X, 2, (-1, 2))


@pytest.mark.parametrize("fn", [max_pool2d_forward, avg_pool2d_forward])
def test_forward_kernel_larger_than_input(fn):
    with pytest.raises(ValueError, match=r"kernel_size: height kernel 7 is larger than the padded input 6"):
        fn(X, (7, 2))


def test_max_backward_argmax_too_large():
    bad = ARGMAX.copy()
    bad[1, 2, 0, 1] = 36
    with pytest.raises(ValueError, match=r"argmax: expected flat indices in 0\.\.35 .*got values in 0\.\.36"):
        max_pool2d_backward(DOUT, bad, X.shape)


def test_max_backward_argmax_negative():
    bad = ARGMAX.copy()
    bad[0, 0, 2, 2] = -1
    with pytest.raises(ValueError, match=r"argmax: expected flat indices in 0\.\.35 .*got values in -1\.\.0"):
        max_pool2d_backward(DOUT, bad, X.shape)


def test_max_backward_argmax_shape_mismatch():
    with pytest.raises(ValueError, match=r"argmax: expected dout's shape \(2, 3, 3, 3\), got \(2, 3, 3, 2\)"):
        max_pool2d_backward(DOUT, ARGMAX[..., :2], X.shape)


def test_max_backward_argmax_float_dtype():
    with pytest.raises(TypeError, match="argmax: expected an integer dtype, got float32"):
        max_pool2d_backward(DOUT, ARGMAX.astype(np.float32), X.shape)


def test_max_backward_dout_integer_dtype():
    with pytest.raises(TypeError, match="dout: expected dtype float32 or float64, got int64"):
        max_pool2d_backward(ARGMAX, ARGMAX, X.shape)


def test_max_backward_dout_wrong_ndim():
    with pytest.raises(ValueError, match=r"dout: expected a 4-D array, got shape \(3, 3, 3\)"):
        max_pool2d_backward(DOUT[0], ARGMAX[0], X.shape)


def test_max_backward_x_shape_batch_mismatch():
    with pytest.raises(ValueError, match=r"x_shape: expected \(N, C\) = \(2, 3\).*got \(1, 3, 6, 6\)"):
        max_pool2d_backward(DOUT, ARGMAX, (1, 3, 6, 6))


def test_max_backward_x_shape_smaller_than_dout():
    with pytest.raises(ValueError, match=r"x_shape: expected .*H >= 3, W >= 3 .*got \(2, 3, 2, 6\)"):
        max_pool2d_backward(DOUT, ARGMAX, (2, 3, 2, 6))


def test_max_backward_x_shape_wrong_length():
    with pytest.raises(ValueError, match=r"x_shape: expected 4 positive ints, got \(2, 3, 6\)"):
        max_pool2d_backward(DOUT, ARGMAX, (2, 3, 6))


def test_avg_backward_x_shape_inconsistent_with_dout():
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 3, 4, 4\) for x_shape \(2, 3, 8, 8\).*"
                                         r"got \(2, 3, 3, 3\)"):
        avg_pool2d_backward(DOUT, (2, 3, 8, 8), 2)


def test_avg_backward_dout_integer_dtype():
    with pytest.raises(TypeError, match="dout: expected dtype float32 or float64, got int64"):
        avg_pool2d_backward(ARGMAX, X.shape, 2)


def test_avg_backward_kernel_larger_than_input():
    with pytest.raises(ValueError, match=r"kernel_size: width kernel 7 is larger than the padded input 6"):
        avg_pool2d_backward(DOUT, X.shape, (2, 7))


# The AVX2 kernel takes 8 (float32) or 4 (float64) windows per step and masks a row's last step: widths
# cover one partial step, exact steps, a step plus every remainder, and odd sizes (a dropped row/column).
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h, w", [(2, 2), (3, 5), (4, 8), (5, 10), (2, 16), (6, 17), (28, 28), (10, 10),
                                  (4, 30), (3, 33), (2, 35)])
def test_max_pool_2x2_kernel_matches_oracle(simd, dtype, h, w):
    rng = np.random.default_rng(h * 100 + w)
    x = rng.integers(0, 3, (2, 3, h, w)).astype(dtype)  # few values: many ties
    out, argmax = max_pool2d_forward(x, 2)
    ref_out, ref_argmax = max_pool2d_ref(x, 2)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(out, ref_out)
    x = rng.standard_normal((2, 3, h, w)).astype(dtype)
    out, argmax = max_pool2d_forward(x, (2, 2), stride=2)
    ref_out, ref_argmax = max_pool2d_ref(x, 2)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(out, ref_out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("w", [6, 18, 34])
def test_max_pool_2x2_kernel_nan_and_infinities(simd, dtype, w):
    rng = np.random.default_rng(w)
    x = rng.standard_normal((1, 2, 6, w)).astype(dtype)
    x[rng.random(x.shape) < 0.15] = np.nan   # NaNs at every window position, some windows with two or more
    x[rng.random(x.shape) < 0.05] = np.inf
    x[rng.random(x.shape) < 0.05] = -np.inf
    out, argmax = max_pool2d_forward(x, 2)
    ref_out, ref_argmax = max_pool2d_ref(x, 2)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(out, ref_out)  # treats NaNs in the same places as equal


def test_max_pool_2x2_kernel_agrees_with_general_loop(use_simd):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 6, 28, 28)).astype(np.float32)
    x[rng.random(x.shape) < 0.01] = np.nan
    use_simd("baseline")
    expect = max_pool2d_forward(x, 2)
    use_simd("avx2")
    got = max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(got[1], expect[1])
    np.testing.assert_array_equal(got[0], expect[0])
