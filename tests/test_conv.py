"""Conv2d's general options (dilation, groups up to depthwise, 'same' / 'valid' padding) and its chunked
one-GEMM path, against the plain-loop oracles of oracles_conv_general, float32 and float64, on every SIMD
path; float64 central differences for backward; thread count and chunking never change a result; bad
arguments; the config round trip."""
import numpy as np
import pytest
from oracles_conv_general import conv2d_general_backward_ref, conv2d_general_ref, im2col_dilated_ref

import cnn_core
import cnn_core.nn.conv as conv_module
from cnn_core import nn
from cnn_core.kernels import col2im, im2col
from cnn_core.nn.module import module_from_config, module_to_config, parameter_shapes_from_config

DTYPES = [np.float32, np.float64]
# Each output sums C/G*KH*KW (<= 54 here) products of O(1) values, in another order than the oracle's loop
# (which sums in float64): a few float32 ulps of the sum; float64 likewise at its own epsilon. The weight
# gradient sums N*OH*OW (<= ~200) such terms.
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}

# (N, C, F, H, W, kernel_size, stride, padding, dilation, groups, bias)
CASES = [
    (2, 4, 6, 7, 9, 3, 1, 1, 1, 2, True),                  # two groups
    (3, 4, 8, 9, 8, 3, 2, 2, 2, 4, True),                  # groups, dilation and stride together
    (2, 3, 6, 6, 7, (2, 4), 1, "same", (2, 1), 3, True),   # even kernel 'same': one more zero after
    (2, 5, 5, 6, 6, 3, 1, "valid", 1, 5, False),           # depthwise, 'valid'
    (2, 4, 8, 5, 6, 3, 1, "same", 1, 4, True),             # depthwise with channel multiplier 2
    (2, 6, 4, 5, 5, 1, 1, 0, 3, 2, True),                  # 1x1 grouped (dilation has no effect)
    (3, 24, 20, 5, 7, 1, 1, 0, 1, 1, True),                # 1x1 past the row loops' sizes (the GEMMs)
    (2, 24, 16, 6, 5, 1, 1, "same", 1, 2, False),          # the same, grouped, no bias
    (2, 20, 24, 5, 5, 1, 1, 1, 1, 1, True),                # 1x1 padded
    (2, 20, 24, 6, 6, 1, 2, 0, 1, 1, True),                # 1x1 stride 2
    (1, 2, 3, 5, 6, 4, 1, "same", 1, 1, True),             # 'same' with an even kernel, one group
    (2, 2, 3, 4, 4, 3, 1, "same", 3, 1, True),             # dilated kernel larger than the input, 'same'
    (2, 3, 2, 8, 7, (3, 2), (2, 3), (1, 0), (2, 3), 1, True),  # every pair non-square
    (1, 1, 2, 3, 3, 3, 1, 4, 1, 1, True),                  # padding wider than the kernel
    (2, 3, 4, 17, 16, 3, 1, 1, 1, 1, True),                # >= 256 outputs per image: a GEMM per sample
    (2, 4, 4, 16, 16, 3, 1, "same", 2, 2, False),          # the same, grouped and dilated
    (3, 5, 6, 14, 14, 3, 2, 1, 1, 1, True),                # stride 2, 14x14 -> 7x7 (the benchmark's s2 shape)
    (2, 3, 4, 9, 12, 3, 2, 0, 1, 1, True),                 # stride 2, odd height, no padding
    # 3x3 stride 2 padding 1 on an even plane runs _conv's phase-split im2col / col2im (_is_s2_3x3):
    (2, 3, 4, 2, 2, 3, 2, 1, 1, 1, True),                  # its smallest plane: 2x2 -> 1x1 (every tap shifted out)
    (2, 4, 6, 4, 10, 3, 2, 1, 1, 2, False),                # non-square, grouped
    (2, 3, 4, 15, 14, 3, 2, 1, 1, 1, True),                # odd height: the generic loops, beside it
]


def _layer(case, dtype):
    n, c, f, h, w, k, s, p, d, g, bias = case
    return nn.Conv2d(c, f, k, s, p, d, g, bias, dtype=dtype, rng=0), (n, c, h, w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_oracle(case, dtype, simd):
    m, x_shape = _layer(case, dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(dtype)
    *_, s, p, d, g, _ = case
    b = None if m.bias is None else m.bias.data
    z = m(x)
    np.testing.assert_allclose(z, conv2d_general_ref(x, m.weight.data, b, s, p, d, g), **TOL[dtype])
    delta = rng.standard_normal(z.shape).astype(dtype)
    dx = m.backward(delta)
    dx_ref, dw_ref, db_ref = conv2d_general_backward_ref(x, m.weight.data, delta, s, p, d, g)
    np.testing.assert_allclose(dx, dx_ref, **TOL[dtype])
    np.testing.assert_allclose(m.weight.grad, dw_ref, **TOL[dtype])
    if m.bias is not None:
        np.testing.assert_allclose(m.bias.grad, db_ref, **TOL[dtype])


@pytest.mark.parametrize("case", CASES)
def test_gradcheck(case):
    m, x_shape = _layer(case, np.float64)
    assert cnn_core.gradcheck(m, np.random.default_rng(2).standard_normal(x_shape))


@pytest.mark.parametrize("chunk_bytes", [1, 20000, 1 << 30])
@pytest.mark.parametrize("case", [(19, 4, 6, 5, 6, 3, 1, 1, 1, 2, True), (21, 4, 8, 5, 5, 3, 1, "same", 1, 4, True),
                                  (18, 6, 4, 4, 5, 1, 1, 0, 1, 2, True), (20, 3, 4, 6, 6, 3, 2, 1, 2, 1, True),
                                  (19, 3, 4, 6, 8, 3, 2, 1, 1, 1, True), (19, 24, 20, 4, 5, 1, 1, 0, 1, 1, True)])
def test_chunking_changes_nothing_but_speed(case, chunk_bytes, monkeypatch):
    """One sample per chunk (up to 21 chunks, more than the 8 slots: slots summing several), two or three
    (a shorter last chunk; 3 = ceil(N / 8), the most the chunking takes): every split gives the oracle's
    result."""
    monkeypatch.setattr(conv_module, "_COLS_CHUNK_BYTES", chunk_bytes)
    dtype = np.float64
    m, x_shape = _layer(case, dtype)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape)
    *_, s, p, d, g, _ = case
    z = m(x)
    delta = rng.standard_normal(z.shape)
    dx = m.backward(delta)
    np.testing.assert_allclose(z, conv2d_general_ref(x, m.weight.data, m.bias.data, s, p, d, g), **TOL[dtype])
    dx_ref, dw_ref, db_ref = conv2d_general_backward_ref(x, m.weight.data, delta, s, p, d, g)
    np.testing.assert_allclose(dx, dx_ref, **TOL[dtype])
    np.testing.assert_allclose(m.weight.grad, dw_ref, **TOL[dtype])
    np.testing.assert_allclose(m.bias.grad, db_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 30])
@pytest.mark.parametrize("case, kept", [((2, 20, 24, 6, 6, 1, 2, 0, 1, 1, True), True),
                                        ((4, 2, 3, 6, 6, 3, 2, 0, 1, 1, True), True),
                                        ((2, 20, 24, 5, 5, 1, 1, 1, 1, 1, True), False),
                                        ((3, 5, 6, 14, 14, 3, 2, 1, 1, 1, True), False)],
                         ids=["1x1 stride 2", "3x3 stride 2 to 2x2", "1x1 padded", "3x3 stride 2"])
def test_kept_columns_give_the_bits_of_columns_rebuilt_from_x(case, kept, chunk_bytes, dtype, monkeypatch):
    """Where im2col's columns are no larger than x (1x1 kernels with a stride, strided ones with small
    outputs), forward in training keeps every chunk's columns and backward reads them instead of x: the same
    bits as backward building them again from x (the kernels called without `kept`), one sample per chunk and
    all in one; x changed in place after forward changes no gradient. Larger columns (padding, 3x3 at 7x7)
    keep x and build them again."""
    from cnn_core.kernels import _conv
    monkeypatch.setattr(conv_module, "_COLS_CHUNK_BYTES", chunk_bytes)
    m, x_shape = _layer(case, dtype)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(dtype)
    z = m(x)
    cols = m._cache[3]
    assert (cols is not None) == kept
    x_kept = x.copy()
    x[:] = 1e3                                   # the caller reuses its array before backward
    delta = rng.standard_normal(z.shape).astype(dtype)
    dx = m.backward(delta)
    n, f = x.shape[0], m.out_channels
    oh, ow = z.shape[2:]
    pads = m._geometry(*x.shape[2:])[0]
    chunk = m._chunk(n, oh * ow)
    scratch = np.empty((cnn_core.get_num_threads(), (2 * m._k + f) * chunk * oh * ow), dtype)
    z_ref = np.empty((n, f, oh * ow), dtype)
    args = (m.groups, chunk, *m.kernel_size, *m.stride, *pads, *m.dilation, oh, ow)
    _conv.conv_forward(x_kept, m.weight.data.reshape(f, -1), m.bias.data, z_ref, scratch, *args)
    gw, gb, dx_ref = np.zeros_like(m.weight.data), np.zeros_like(m.bias.data), np.empty_like(x)
    partial = np.empty((_conv.NSLOTS, f * (m._k // m.groups + 1)), dtype)
    _conv.conv_backward(x_kept, m.weight.data.reshape(f, -1), delta.reshape(n, f, -1), gw.reshape(f, -1), gb,
                        dx_ref, scratch, partial, *args)
    assert np.array_equal(z, z_ref.reshape(z.shape))
    assert np.array_equal(m.weight.grad, gw) and np.array_equal(m.bias.grad, gb) and np.array_equal(dx, dx_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 30])
@pytest.mark.parametrize("case", [(3, 24, 20, 5, 7, 1, 1, 0, 1, 1, True), (5, 6, 4, 5, 5, 1, 1, 0, 3, 2, True),
                                  (4, 24, 16, 6, 5, 1, 1, "same", 1, 2, False)],
                         ids=["1x1", "1x1 grouped", "1x1 grouped same, no bias"])
def test_pointwise_copy_of_x_gives_the_bits_of_x(case, chunk_bytes, dtype, monkeypatch):
    """1x1 stride-1 unpadded convolutions with more channels than the direct kernels take run as GEMMs on x
    itself (_conv.pointwise_forward / pointwise_backward). In training, forward copies x (chunk by chunk)
    for the weight gradient: x changed in place after forward changes no gradient, and the result has the
    bits of the kernels run on x without the copy; fit's batch (nn.module.batch_feed) is not copied."""
    from cnn_core.kernels import _conv
    from cnn_core.nn.module import batch_feed
    monkeypatch.setattr(conv_module, "_COLS_CHUNK_BYTES", chunk_bytes)
    m, x_shape = _layer(case, dtype)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(dtype)
    z = m(x)
    assert m._cache[3] is not None
    x_kept = x.copy()
    x[:] = 1e3                                   # the caller reuses its array before backward
    delta = rng.standard_normal(z.shape).astype(dtype)
    dx = m.backward(delta)
    n, c, f = x.shape[0], x.shape[1], m.out_channels
    chunk = m._chunk(n, z.shape[2] * z.shape[3])
    b = None if m.bias is None else m.bias.data
    z_ref = np.empty((n, f, z.shape[2] * z.shape[3]), dtype)
    _conv.pointwise_forward(x_kept.reshape(n, c, -1), m.weight.data.reshape(f, -1), b, z_ref, m.groups, chunk)
    gw, dx_ref = np.zeros_like(m.weight.data), np.empty_like(x)
    gb = None if m.bias is None else np.zeros_like(m.bias.data)
    partial = np.empty((_conv.NSLOTS, f * (c // m.groups + 1)), dtype)
    _conv.pointwise_backward(x_kept.reshape(n, c, -1), m.weight.data.reshape(f, -1), delta.reshape(n, f, -1),
                             gw.reshape(f, -1), gb, dx_ref.reshape(n, c, -1), partial, m.groups, chunk)
    assert np.array_equal(z, z_ref.reshape(z.shape))
    assert np.array_equal(m.weight.grad, gw) and np.array_equal(dx, dx_ref)
    assert m.bias is None or np.array_equal(m.bias.grad, gb)
    with batch_feed(kept=True, screened=False) as feed:
        feed(x_kept)
        m(x_kept)
    assert m._cache[3] is None and m._cache[0] is x_kept


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups,stride,k", [(1, 1, 3), (4, 1, 3), (16, 1, 3), (1, 2, 3), (1, 1, 1), (2, 1, 1)])
def test_thread_count_changes_no_result(groups, stride, k, dtype, num_threads):
    """Bit for bit with 1, 2 and 3 threads, on a batch of several chunks (dW and db sum over them); stride 2:
    the phase-split im2col; k = 1: 1x1 convolutions."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 16, 10, 10)).astype(dtype)     # 3 chunks of 4 samples
    delta = rng.standard_normal((12, 32, 10 // stride, 10 // stride)).astype(dtype)
    results = []
    for t in (1, 2, 3):
        num_threads(t)
        m = nn.Conv2d(16, 32, k, stride=stride, padding=k // 2, groups=groups, dtype=dtype, rng=0)
        z = m(x)
        results.append((z, m.backward(delta), m.weight.grad.copy(), m.bias.grad.copy()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_repeated_steps_reuse_scratch_and_accumulate():
    """Two forward/backward steps accumulate twice the gradients of one; the scratch buffers are the same
    arrays after the second step (no per-step allocation)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 3, 8, 8))
    m = nn.Conv2d(3, 5, 3, padding=1, dtype=np.float64, rng=0)
    delta = rng.standard_normal((9, 5, 8, 8))
    m(x)
    m.backward(delta)
    once = m.weight.grad.copy()
    buffers = [m._xin, m._work, m._partial]
    m(x)
    m.backward(delta)
    np.testing.assert_allclose(m.weight.grad, 2 * once, rtol=1e-13)
    assert all(a is b for a, b in zip(buffers, [m._xin, m._work, m._partial]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p,d", [((2, 3, 9, 8), 3, 1, 2, 2), ((1, 2, 7, 7), (2, 3), (2, 1), (0, 3), (3, 2)),
                                           ((2, 1, 5, 5), 2, 3, 1, 4), ((2, 2, 13, 12), 3, 2, 2, 2),
                                           ((1, 2, 9, 11), (2, 3), 2, (1, 0), (3, 1))])
def test_dilated_im2col_and_its_adjoint(shape, k, s, p, d, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    cols = im2col(x, k, s, p, d)
    np.testing.assert_array_equal(cols, im2col_dilated_ref(x, k, s, p, d))
    r = rng.standard_normal(cols.shape).astype(dtype)
    # <im2col(x), r> == <x, col2im(r)>: col2im is the adjoint.
    lhs, rhs = np.vdot(cols.astype(np.float64), r), np.vdot(x.astype(np.float64), col2im(r, shape, k, s, p, d))
    assert abs(lhs - rhs) <= (1e-4 if dtype == np.float32 else 1e-11) * (1 + abs(lhs))


def test_pytorch_positional_order():
    m = nn.Conv2d(4, 8, 3, 2, 1, 2, 4, False)
    assert (m.stride, m.padding, m.dilation, m.groups, m.bias) == ((2, 2), (1, 1), (2, 2), 4, None)
    assert m.weight.shape == (8, 1, 3, 3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(groups=3), "groups"),                     # divides neither 4 nor 6
    (dict(groups=4), "groups"),                     # divides in_channels 4, not out_channels 6
    (dict(groups=0), "groups"),
    (dict(dilation=0), "dilation"),
    (dict(dilation=(1, 0)), "dilation"),
    (dict(padding="same", stride=2), "padding"),
    (dict(padding="same", stride=(1, 2)), "padding"),
    (dict(padding="full"), "padding"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.Conv2d(4, 6, 3, **kwargs)


def test_bad_argument_types():
    with pytest.raises(TypeError, match="groups"):
        nn.Conv2d(4, 4, 3, groups=2.0)
    with pytest.raises(TypeError, match="dilation"):
        nn.Conv2d(4, 4, 3, dilation=1.5)


def test_dilated_kernel_larger_than_the_input_is_refused():
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(1, 1, 3, dilation=3)(np.zeros((1, 1, 6, 6), np.float32))   # extent 7 > 6


def test_config_round_trip_and_old_configs(tmp_path):
    m = nn.Sequential(nn.Conv2d(4, 8, 3, padding="same", dilation=2, groups=2, rng=0),
                      nn.Conv2d(8, 8, 2, 1, "valid", groups=8, bias=False, rng=1))
    x = np.random.default_rng(7).standard_normal((2, 4, 6, 6)).astype(np.float32)
    path = tmp_path / "m.npz"
    cnn_core.save(m, path)
    back = cnn_core.load(path)
    assert back[0].padding == "same" and back[0].dilation == (2, 2) and back[0].groups == 2
    assert back[1].padding == "valid" and back[1].groups == 8 and back[1].bias is None
    np.testing.assert_array_equal(back(x), m(x))
    cfg = module_to_config(m)
    assert parameter_shapes_from_config(cfg) == {"0.weight": (8, 2, 3, 3), "0.bias": (8,), "1.weight": (8, 1, 2, 2)}
    # A config written before dilation and groups existed builds the same layer as before.
    old = {"type": "Conv2d", "config": {"in_channels": 1, "out_channels": 6, "kernel_size": [5, 5],
                                        "stride": [1, 1], "padding": [2, 2], "bias": True, "init": "default",
                                        "dtype": "float32"}}
    layer = module_from_config(old)
    assert (layer.dilation, layer.groups, layer.padding) == ((1, 1), 1, (2, 2))
    assert parameter_shapes_from_config(old) == {"weight": (6, 1, 5, 5), "bias": (6,)}

