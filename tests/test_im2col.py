"""im2col / col2im against the plain-loop oracles, the adjoint identity, conv-by-matmul, and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles_conv import col2im_ref, conv2d_ref, im2col_ref

from cnn_core.kernels import col2im, im2col

DTYPES = [np.float32, np.float64]
# col2im sums at most KH*KW overlapping terms of size O(1), possibly in another order than the oracle:
# a few float32 ulps of the sum; float64 likewise at its own epsilon.
SUM_TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
# conv-by-matmul sums C*KH*KW products (<= 54 here) in a different order from the direct loop.
DOT_TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}

# (x shape, kernel_size, stride, padding)
CASES = [
    ((1, 1, 5, 5), 3, 1, 0),                  # batch 1
    ((2, 3, 6, 7), 1, 1, 0),                  # 1x1 kernel
    ((2, 2, 5, 5), 5, 1, 0),                  # kernel = input size
    ((2, 2, 4, 6), (4, 6), 1, 0),             # kernel = non-square input size
    ((2, 2, 9, 9), 2, 3, 0),                  # stride > kernel
    ((1, 2, 4, 5), 2, 1, 3),                  # padding > kernel
    ((2, 1, 3, 3), 1, 1, 4),                  # 1x1 kernel, padding larger than the input
    ((1, 1, 5, 5), 5, 4, 4),                  # large kernel, stride and padding together
    ((2, 3, 7, 5), (3, 2), (2, 1), (1, 0)),   # non-square kernel, stride, padding, input
    ((3, 2, 11, 8), (2, 3), (3, 2), (2, 1)),  # odd sizes
    ((2, 2, 8, 8), 3, 2, 1),                  # overlapping windows with stride 2
    ((1, 3, 1, 9), (1, 3), 1, (0, 1)),        # single-row input
]


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_im2col_matches_oracle(shape, k, s, p, dtype):
    x = _rand(np.random.default_rng(0), shape, dtype)
    cols = im2col(x, k, s, p)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, im2col_ref(x, k, s, p))  # a pure copy: bit-exact


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_col2im_matches_oracle(shape, k, s, p, dtype):
    rng = np.random.default_rng(1)
    cols_shape = im2col(np.zeros(shape, dtype), k, s, p).shape
    cols = _rand(rng, cols_shape, dtype)
    x = col2im(cols, shape, k, s, p)
    assert x.dtype == dtype and x.shape == shape
    np.testing.assert_allclose(x, col2im_ref(cols, shape, k, s, p), **SUM_TOL[dtype])


@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_adjoint_identity(shape, k, s, p):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    cols = im2col(x, k, s, p)
    c = rng.standard_normal(cols.shape)
    lhs, rhs = np.vdot(cols, c), np.vdot(x, col2im(c, shape, k, s, p))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_conv_through_im2col_equals_direct_conv(shape, k, s, p, dtype):
    rng = np.random.default_rng(3)
    x = _rand(rng, shape, dtype)
    kh, kw = (k, k) if isinstance(k, int) else k
    weight = _rand(rng, (3, shape[1], kh, kw), dtype)
    cols = im2col(x, k, s, p)
    z = weight.reshape(3, -1) @ cols  # (N, F, OH*OW)
    ref = conv2d_ref(x, weight, s, p)
    np.testing.assert_allclose(z.reshape(ref.shape), ref, **DOT_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_views(dtype):
    rng = np.random.default_rng(4)
    base = _rand(rng, (3, 6, 9, 12), dtype)
    for x in (base[:, ::2, 1:, ::-2], base.transpose(0, 1, 3, 2), base[::2, :, 2:7, 3:]):
        assert not x.flags.c_contiguous
        np.testing.assert_array_equal(im2col(x, (3, 2), (1, 2), 1), im2col_ref(x, (3, 2), (1, 2), 1))
    cols_base = _rand(rng, (2, 2 * 9, 2 * 30), dtype)
    cols = cols_base[:, :, ::2]  # (2, 18, 30): x (2, 2, 6, 10), kernel 3, padding 1, stride (1, 2)
    assert not cols.flags.c_contiguous
    np.testing.assert_allclose(col2im(cols, (2, 2, 6, 10), 3, (1, 2), 1),
                               col2im_ref(cols, (2, 2, 6, 10), 3, (1, 2), 1), **SUM_TOL[dtype])


def test_output_is_fresh_and_input_untouched():
    x = np.random.default_rng(5).standard_normal((1, 2, 4, 4))
    x_copy = x.copy()
    cols = im2col(x, 2)
    cols[...] = 7.0
    np.testing.assert_array_equal(x, x_copy)


@st.composite
def conv_geometry(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    kh, kw = draw(st.integers(1, min(5, h + 2 * ph))), draw(st.integers(1, min(5, w + 2 * pw)))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(DTYPES))
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), dtype


@settings(max_examples=40, deadline=None)
@given(conv_geometry(), st.integers(0, 2**31))
def test_fuzz_im2col_col2im(geom, seed):
    shape, k, s, p, dtype = geom
    rng = np.random.default_rng(seed)
    x = _rand(rng, shape, dtype)
    cols = im2col(x, k, s, p)
    np.testing.assert_array_equal(cols, im2col_ref(x, k, s, p))
    c = _rand(rng, cols.shape, dtype)
    np.testing.assert_allclose(col2im(c, shape, k, s, p), col2im_ref(c, shape, k, s, p), **SUM_TOL[dtype])


# ---- bad input: one test per case; messages name the argument, what was expected and what came ----

X = np.zeros((2, 3, 6, 6))


def test_im2col_wrong_ndim():
    with pytest.raises(ValueError, match=r"x: expected a 4-D array, got shape \(3, 6, 6\)"):
        im2col(X[0], 3)


def test_im2col_not_an_array():
    with pytest.raises(TypeError, match="x: expected a numpy.ndarray, got list"):
        im2col(X.tolist(), 3)


def test_im2col_integer_dtype():
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64, got int64"):
        im2col(X.astype(np.int64), 3)


def test_im2col_empty_input():
    with pytest.raises(ValueError, match=r"x: expected every dimension >= 1, got shape \(2, 0, 6, 6\)"):
        im2col(np.zeros((2, 0, 6, 6)), 3)


def test_im2col_zero_stride():
    with pytest.raises(ValueError, match=r"stride: expected values >= 1, got 0"):
        im2col(X, 3, stride=0)


def test_im2col_negative_stride():
    with pytest.raises(ValueError, match=r"stride: expected values >= 1, got \(1, -2\)"):
        im2col(X, 3, stride=(1, -2))


def test_im2col_negative_padding():
    with pytest.raises(ValueError, match=r"padding: expected values >= 0, got -1"):
        im2col(X, 3, padding=-1)


def test_im2col_zero_kernel():
    with pytest.raises(ValueError, match=r"kernel_size: expected values >= 1, got 0"):
        im2col(X, 0)


def test_im2col_non_integer_kernel():
    with pytest.raises(TypeError, match=r"kernel_size: expected an int or a pair of ints, got 2.5"):
        im2col(X, 2.5)


def test_im2col_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel_size: width kernel 9 is larger than the padded input 6 \+ 2\*1 = 8"):
        im2col(X, (3, 9), padding=1)


def test_col2im_wrong_ndim():
    with pytest.raises(ValueError, match=r"cols: expected a 3-D array, got shape \(2, 27\)"):
        col2im(np.zeros((2, 27)), (2, 3, 6, 6), 3)


def test_col2im_integer_dtype():
    with pytest.raises(TypeError, match="cols: expected dtype float32 or float64, got int32"):
        col2im(np.zeros((2, 27, 16), dtype=np.int32), (2, 3, 6, 6), 3)


def test_col2im_x_shape_inconsistent_with_cols():
    with pytest.raises(ValueError, match=r"cols: expected shape \(2, 27, 25\) for x_shape \(2, 3, 7, 7\).*"
                                         r"got \(2, 27, 16\)"):
        col2im(np.zeros((2, 27, 16)), (2, 3, 7, 7), 3)


def test_col2im_x_shape_wrong_length():
    with pytest.raises(ValueError, match=r"x_shape: expected 4 positive ints, got \(3, 6, 6\)"):
        col2im(np.zeros((2, 27, 16)), (3, 6, 6), 3)


def test_col2im_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel_size: height kernel 7 is larger than the padded input 6"):
        col2im(np.zeros((2, 3 * 49, 1)), (2, 3, 6, 6), 7)
