"""cnn_core.compile / Plan: the compiled forward pass against model.forward and against a plain NumPy oracle
built from tests/oracles_*.py, for every layer type the plan supports, both dtypes, every SIMD path, batch
sizes other than the planned one, several threads, concurrent calls, and the plan's independence from later
changes of the model."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import cnn_core
from cnn_core import nn
from cnn_core.models import RNNClassifier, lenet5, mlp, small_cnn, small_resnet
from oracles_activations import activation_ref
from oracles_conv_general import conv2d_general_ref
from oracles_layers import gelu, leaky_relu, silu, softmax
from oracles_recurrent import recurrent_ref
from oracles_pooling import adaptive_avg_pool2d_ref, avg_pool2d_general_ref, max_pool2d_general_ref

# The plan sums the same products as the layers, in another order (a chunk's GEMM shape, the small-batch
# Linear kernel's two partial sums, a batch norm folded into the weights), so float results differ by
# rounding: a dot product of K terms is off by at most ~K * eps * sum|terms|, which is relative to the size
# of the terms, not of their (possibly cancelling) sum. So the bound is 1e-5 (float32) or 1e-12 (float64)
# relative to each value plus the output's largest magnitude (the terms' scale; the observed errors are
# ~1e-7 and ~1e-15 of it).
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def assert_close(got, want, dtype):
    got, want = np.asarray(got), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape and got.dtype == dtype
    scale = np.abs(want).max() if want.size else 0.0
    err = np.abs(got - want)
    bound = RTOL[dtype] * (np.abs(want) + scale)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), f"error {err[worst]} > bound {bound[worst]} at {worst}"


def oracle(m, x):
    """m's eval-mode forward pass in float64 NumPy, from the oracles (independent of the layers' kernels)."""
    if isinstance(m, nn.Embedding):
        return m.weight.data.astype(np.float64)[x]
    if isinstance(m, nn.LastStep):
        out = x[0] if isinstance(x, tuple) else x
        return out[:, -1] if m.batch_first else out[-1]
    if isinstance(m, nn.Concat):
        return np.concatenate([oracle(b, x) for b in m._branches], axis=m.dim)
    if isinstance(m, nn.Sequential):
        for layer in m:
            x = oracle(layer, x)
        return x
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu":
        raise TypeError(f"oracle: {type(m).__name__} on integer input")
    x = np.asarray(x, np.float64)
    if isinstance(m, (nn.RNN, nn.LSTM, nn.GRU)):
        return recurrent_ref(m, x)
    if isinstance(m, RNNClassifier):
        seq = x.reshape(x.shape[0], x.shape[2], x.shape[3]) if x.ndim == 4 else x
        out, _ = recurrent_ref(m.rnn, seq)
        return oracle(m.fc, out[:, -1])
    if isinstance(m, nn.GELU):
        return gelu(x, m.approximate)
    if isinstance(m, nn.Residual):
        return oracle(m.block, x) + (x if m.shortcut is None else oracle(m.shortcut, x))
    if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Identity)):
        return x
    if isinstance(m, nn.Flatten):
        return x.reshape(len(x), -1)
    if isinstance(m, nn.Linear):
        y = x @ m.weight.data.astype(np.float64).T
        return y if m.bias is None else y + m.bias.data
    if isinstance(m, nn.Conv2d):
        pad = m.padding if not isinstance(m.padding, str) else m.padding
        return conv2d_general_ref(x, m.weight.data.astype(np.float64),
                                  None if m.bias is None else m.bias.data.astype(np.float64), m.stride, pad,
                                  m.dilation, m.groups)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        gamma, beta = m._gamma_beta()
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv = 1 / np.sqrt(m.running_var.astype(np.float64) + m.eps)
        return ((x - m.running_mean.reshape(shape)) * inv.reshape(shape) * gamma.reshape(shape)
                + beta.reshape(shape))
    if isinstance(m, nn.MaxPool2d):
        return max_pool2d_general_ref(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)[0]
    if isinstance(m, nn.AvgPool2d):
        return avg_pool2d_general_ref(x, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return adaptive_avg_pool2d_ref(x, m._out_hw(x.shape))
    if isinstance(m, nn.LeakyReLU):
        return leaky_relu(x, m.negative_slope)
    if isinstance(m, nn.SiLU):
        return silu(x)
    if isinstance(m, nn.Softmax):
        return softmax(x, m.dim if m.dim is not None else 1)
    if isinstance(m, nn.LogSoftmax):
        return np.log(softmax(x, m.dim if m.dim is not None else 1))
    name = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ELU: "elu"}[type(m)]
    return activation_ref(x, name, getattr(m, "alpha", 1.0))


def randomize_bn(model, rng):
    """Give every batch norm non-trivial running statistics and affine parameters (fresh ones are 0/1)."""
    for m in model.modules() if hasattr(model, "modules") else []:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean[:] = rng.normal(0, 0.5, c)
            m.running_var[:] = rng.uniform(0.5, 2.0, c)
            if m.affine:
                m.weight.data[:] = rng.uniform(0.5, 1.5, c)
                m.bias.data[:] = rng.normal(0, 0.3, c)
    return model


def check(model, in_shape, dtype, batches=(1, 3, 8), planned=2, seed=0, use_oracle=True, indices=0):
    """The plan of `model` against model.forward (and the oracle) on random inputs of several batch sizes;
    indices > 0: integer inputs in [0, indices) (a model that starts with an Embedding)."""
    rng = np.random.default_rng(seed)
    randomize_bn(model, rng)
    model.eval()
    plan = cnn_core.compile(model, (planned,) + tuple(in_shape), dtype)
    assert plan.batch_size == planned and plan.dtype == dtype
    for n in batches:
        if indices:
            x = rng.integers(0, indices, (n,) + tuple(in_shape))
        else:
            x = rng.normal(0, 1, (n,) + tuple(in_shape)).astype(dtype)
        y = plan(x)
        assert y.shape == (n,) + plan.output_shape[1:]
        assert_close(y, model(x), dtype)
        if use_oracle:      # the oracles' Python loops are slow on the wide networks: the layers only there
            assert_close(y, oracle(model, x), dtype)
    return plan


DTYPES = [np.float32, np.float64]


def _conv_models(dtype):
    k = dict(dtype=dtype, rng=1)
    return [
        (nn.Sequential(nn.Conv2d(3, 5, 3, **k)), (3, 9, 8)),
        (nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False, **k)), (3, 9, 10)),
        (nn.Sequential(nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), **k)), (2, 11, 9)),
        (nn.Sequential(nn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2, **k)), (4, 7, 8)),
        (nn.Sequential(nn.Conv2d(4, 4, 3, padding="valid", groups=4, **k)), (4, 6, 6)),
        (nn.Sequential(nn.Conv2d(3, 8, 1, **k), nn.ReLU()), (3, 5, 4)),
        (nn.Sequential(nn.Conv2d(2, 3, 5, padding=3, stride=3, **k), nn.Tanh()), (2, 7, 6)),
        # 16 or 32 filters per group: the transposed GEMM (positions as rows), float32 and float64
        (nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, **k), nn.ReLU()), (3, 7, 6)),
        (nn.Sequential(nn.Conv2d(4, 64, 3, stride=2, groups=2, **k)), (4, 7, 9)),
        (nn.Sequential(nn.Conv2d(2, 32, (1, 2), padding=(1, 0), bias=False, **k)), (2, 3, 5)),
        # stride 1, one group: the direct kernels, filters vectorized (whole vectors of filters: 16/32 in
        # float32, 8/16 in float64) or positions (the rest), rows of more than 14 outputs in pieces; with
        # padding, none, dilation, a rectangular kernel, 1x1
        (nn.Sequential(nn.Conv2d(16, 24, 3, padding=1, **k), nn.ReLU()), (16, 4, 5)),
        (nn.Sequential(nn.Conv2d(17, 8, 3, bias=False, **k)), (17, 5, 4)),
        (nn.Sequential(nn.Conv2d(16, 16, (3, 2), padding=(2, 1), dilation=(2, 3), **k)), (16, 4, 5)),
        (nn.Sequential(nn.Conv2d(32, 40, 1, **k), nn.Sigmoid()), (32, 3, 2)),
        (nn.Sequential(nn.Conv2d(16, 8, 5, padding=2, **k)), (16, 3, 4)),
        (nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, **k), nn.ELU()), (3, 4, 31)),
        (nn.Sequential(nn.Conv2d(2, 48, (2, 3), padding=(0, 2), dilation=(1, 2), **k)), (2, 3, 17)),
        # crop: stride-1 output leaving the last input row/column unused is impossible, but a dilated one
        (nn.Sequential(nn.Conv2d(1, 2, 2, padding=(0, 2), dilation=3, **k)), (1, 8, 5)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_options(dtype, simd):
    for model, shape in _conv_models(dtype):
        # the oracle's loops cost C*F*positions*taps: the 16-channel models on fewer samples
        check(model, shape, dtype, batches=(1, 3, 8) if shape[0] < 16 else (1, 3))


def _winograd_ops(plan) -> int:
    """The plan's convolutions that run as Winograd (the last conv parameter, plan.h's p[15], is 4)."""
    return sum(op.startswith("conv(") and op.split(")")[0].endswith(", 4") for op in plan.ops)


def _winograd_models(dtype):
    """3x3 stride-1 convolutions the rule (thresholds.h) runs as Winograd: odd and even output sizes (7x7,
    8x6, 7x8 unpadded, 14x13: a tile cut by the edge, the tiles rounded up to half vectors), filters past a
    block of 8 (68: zero filters in the last block), an odd channel count, no bias, a folded batch norm, an
    activation fused into the output transform (ReLU, Tanh) or none; and two in a row."""
    k = dict(dtype=dtype, rng=6)
    return [
        (nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, **k), nn.ReLU()), (32, 7, 7)),
        (nn.Sequential(nn.Conv2d(33, 68, 3, padding=1, bias=False, **k), nn.BatchNorm2d(68, dtype=dtype),
                       nn.Tanh()), (33, 8, 6)),
        (nn.Sequential(nn.Conv2d(40, 64, 3, **k)), (40, 9, 10)),
        (nn.Sequential(nn.Conv2d(32, 72, 3, padding=1, **k), nn.BatchNorm2d(72, dtype=dtype), nn.ReLU(),
                       nn.Conv2d(72, 64, 3, padding=1, **k), nn.ReLU()), (32, 14, 13)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_conv(dtype, simd):
    """The Winograd convolutions equal model.forward at every SIMD level, planned for 2 images and run on 1, 3
    and 8 (chunks of several images: their tiles side by side in one product), and the oracle on one image
    (its loops are slow: the smaller models only)."""
    for model, shape in _winograd_models(dtype):
        plan = check(model, shape, dtype, batches=(1, 3, 8) if shape[1] < 14 else (1, 3), use_oracle=False)
        assert _winograd_ops(plan) == sum(isinstance(m, nn.Conv2d) for m in model)
        if shape[1] < 14:
            x = np.random.default_rng(9).normal(0, 1, (1,) + shape).astype(dtype)
            assert_close(plan(x), oracle(model, x), dtype)


def test_winograd_rule():
    """thresholds.h's rule: the measured cases that pay, and those that do not (too few channels or filters
    for the transforms, or too few products saved once the tiles are rounded up)."""
    pays = cnn_core.plan._winograd_pays
    for c, f, hw in [(32, 64, 14), (64, 64, 14), (64, 128, 7), (128, 128, 7), (64, 64, 28), (128, 128, 32)]:
        assert pays(c, f, hw, hw, np.float32) and pays(c, f, hw, hw, np.float64), (c, f, hw)
    for c, f, hw in [(1, 32, 28), (16, 64, 14), (32, 32, 14), (64, 32, 7), (64, 64, 5), (64, 64, 33)]:
        assert not pays(c, f, hw, hw, np.float32), (c, f, hw)
    assert not pays(64, 64, 9, 9, np.float32) and pays(64, 64, 9, 9, np.float64)   # 25 tiles: 32 vs 28
    # the small_cnn's convolutions after the first
    assert _winograd_ops(cnn_core.compile(small_cnn(rng=0).eval(), (1, 1, 28, 28))) == 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_team(dtype, simd, num_threads):
    """One image on the plan's team of 1, 2 and 3 threads: bitwise the same (each thread transforms whole
    channels, then computes whole 8-filter blocks), equal to model.forward; and a Winograd convolution on a
    team of its own (after a strided convolution whose GEMM keeps the plan off its team) equal to one thread."""
    k = dict(dtype=dtype, rng=7)
    model = nn.Sequential(nn.Conv2d(33, 68, 3, padding=1, **k), nn.ReLU(), nn.Conv2d(68, 64, 3, padding=1, **k))
    model.eval()
    x = np.random.default_rng(7).normal(0, 1, (1, 33, 14, 13)).astype(dtype)
    outs = []
    for t in (1, 2, 3):
        num_threads(t)
        plan = cnn_core.compile(model, x.shape, dtype)
        assert _winograd_ops(plan) == 2
        if cnn_core.openmp_enabled():
            assert plan._sized_for(1, t).program.team(1, t) == t
        outs.append(plan(x))
    assert_close(outs[0], model(x), dtype)
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
    model = nn.Sequential(nn.Conv2d(16, 64, 3, stride=2, padding=1, **k), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, padding=1, **k)).eval()
    x = np.random.default_rng(8).normal(0, 1, (1, 16, 64, 64)).astype(dtype)
    num_threads(1)
    want = cnn_core.compile(model, x.shape, dtype)(x)
    num_threads(2)
    plan = cnn_core.compile(model, x.shape, dtype)
    assert _winograd_ops(plan) == 1 and plan._sized_for(1, 2).program.team(1, 2) == 1
    np.testing.assert_array_equal(plan(x), want)
    assert_close(want, model(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_and_activations(dtype, simd):
    k = dict(dtype=dtype, rng=2)
    acts = [nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.ELU(0.7), nn.LeakyReLU(0.1), nn.LeakyReLU(-0.3), nn.SiLU()]
    for act in acts:
        # fused into the Linear's epilogue, then standalone (after another activation), and first
        check(nn.Sequential(nn.Linear(37, 150, **k), act, nn.Linear(150, 3, bias=False, **k)), (37,), dtype)
        check(nn.Sequential(act, nn.Linear(5, 17, **k), nn.ReLU(), act), (5,), dtype, batches=(1, 7, 70))
    # widths around the small-batch kernel's vector blocks, and the GEMM path (6 rows and more)
    for n_out in (1, 15, 16, 17, 63, 64, 65, 129, 300):
        check(nn.Sequential(nn.Linear(19, n_out, **k)), (19,), dtype, batches=(1, 5, 6, 13))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling(dtype, simd):
    pools = [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), nn.MaxPool2d((2, 3), (1, 2)),
             nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(2), nn.AvgPool2d(3, 2, 1),
             nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), nn.AdaptiveAvgPool2d(1),
             nn.AdaptiveAvgPool2d((3, 2)), nn.AdaptiveAvgPool2d((None, 4))]
    for pool in pools:
        check(nn.Sequential(pool), (3, 9, 7), dtype)
        # an activation before a max pooling moves behind it: same values
        check(nn.Sequential(nn.Conv2d(2, 3, 3, dtype=dtype, rng=3), nn.Sigmoid(), pool, nn.Flatten()), (2, 10, 11),
              dtype)


def test_max_pool_nan_and_empty_windows():
    """The plan does not screen its input (the layers reject NaN): a NaN wins its windows, as in the layers'
    kernels."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    for pool, nan_at in ((nn.MaxPool2d(2), [(0, 0)]), (nn.MaxPool2d(3, 1, 1), [(i, j) for i in range(3)
                                                                              for j in range(3)])):
        y = cnn_core.compile(nn.Sequential(pool).eval(), x.shape)(x)[0, 0]
        assert sorted(zip(*np.nonzero(np.isnan(y)))) == nan_at
        assert np.all(y[~np.isnan(y)] == 0)
    # dilation 2 with padding 1 on 1 pixel: a window of padding only gives -inf, as PyTorch and the layer
    model = nn.Sequential(nn.MaxPool2d(2, 1, 1, dilation=2)).eval()
    x = np.ones((1, 1, 1, 1), np.float32)
    np.testing.assert_array_equal(cnn_core.compile(model, x.shape)(x), model(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_folded_and_standalone(dtype, simd):
    k = dict(dtype=dtype)
    check(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, rng=4, **k), nn.BatchNorm2d(6, **k), nn.ReLU()), (3, 6, 5),
          dtype)
    check(nn.Sequential(nn.Conv2d(4, 6, 3, bias=False, groups=2, rng=4, **k), nn.BatchNorm2d(6, affine=False, **k)),
          (4, 6, 5), dtype)
    check(nn.Sequential(nn.Conv2d(4, 32, 3, bias=False, groups=2, rng=4, **k), nn.BatchNorm2d(32, **k)), (4, 6, 5),
          dtype)      # folded into a transposed convolution's weights
    check(nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, bias=False, rng=4, **k), nn.BatchNorm2d(32, **k)),
          (16, 5, 6), dtype)      # into a direct convolution's packed weights
    check(nn.Sequential(nn.Linear(7, 9, rng=4, **k), nn.BatchNorm1d(9, **k), nn.Tanh()), (7,), dtype)
    # nothing to fold into: a per-channel affine op (first layer, after a pooling, on (N, C, L))
    check(nn.Sequential(nn.BatchNorm2d(3, **k), nn.MaxPool2d(2), nn.BatchNorm2d(3, **k)), (3, 4, 6), dtype)
    check(nn.Sequential(nn.BatchNorm1d(3, **k), nn.ELU()), (3, 5), dtype)
    plan = cnn_core.compile(nn.Sequential(nn.Conv2d(3, 6, 3, rng=4), nn.BatchNorm2d(6)).eval(), (1, 3, 6, 5))
    assert plan.ops == ["conv(3, 6, 5, 6, 3, 3, 1, 1, 0, 0, 1, 1, 4, 3, 1, 2)"]      # folded: one op


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_flatten_dropout_identity(dtype):
    k = dict(dtype=dtype, rng=5)
    for sm in (nn.Softmax(dim=1), nn.LogSoftmax(dim=-1), nn.Softmax()):
        check(nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Identity(), nn.Linear(12, 6, **k), sm), (3, 2, 2),
              dtype)
    # the last axis of a sequence-shaped input: rows of every sample
    check(nn.Sequential(nn.LogSoftmax(dim=2)), (3, 5), dtype)
    model = nn.Sequential(nn.Dropout(0.3), nn.Dropout2d(0.2)).eval()        # nothing left: a copy
    x = np.arange(24, dtype=dtype).reshape(2, 3, 2, 2)
    y = cnn_core.compile(model, x.shape, dtype)(x)
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(y, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_deck_models(dtype, simd):
    check(lenet5(rng=0, dtype=dtype), (1, 28, 28), dtype, batches=(1, 2, 9), planned=1, use_oracle=False)
    check(lenet5("tanh", "avg", rng=0, dtype=dtype), (1, 28, 28), dtype, batches=(1, 2), planned=1)
    check(mlp([784, 100, 10], "relu", rng=0, dtype=dtype), (784,), dtype, batches=(1, 4, 33), planned=1)
    check(mlp([20, 30, 10], "sigmoid", output_activation="sigmoid", rng=0, dtype=dtype), (20,), dtype)
    check(small_cnn(rng=0, dtype=dtype), (1, 28, 28), dtype, batches=(1, 3), planned=1, use_oracle=False)
    check(small_cnn(rng=0, dtype=dtype, channels=(4, 6, 8)), (1, 12, 12), dtype, batches=(1, 3))
    check(small_resnet(rng=0, dtype=dtype, channels=(4, 8, 8)), (1, 12, 12), dtype, batches=(1, 3))
    # a residual whose input is read twice: nothing fuses into it (flattened or not), activations first
    k = dict(dtype=dtype, rng=6)
    check(nn.Sequential(nn.Conv2d(2, 3, 3, **k),
                        nn.Residual(nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(27, 27, **k)), nn.Flatten()),
                        nn.Tanh()), (2, 5, 5), dtype)
    check(nn.Sequential(nn.Linear(4, 6, **k), nn.Residual(nn.Sequential(nn.Sigmoid()), nn.Sequential(nn.ReLU())),
                        nn.Residual(nn.Identity())), (4,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu(dtype, simd):
    k = dict(dtype=dtype, rng=7)
    for approximate in ("none", "tanh"):
        act = nn.GELU(approximate)
        # fused into a Linear's and a convolution's epilogue, standalone, and not moved behind a max pooling
        # (GELU is not monotone)
        check(nn.Sequential(nn.Linear(9, 40, **k), act, nn.Linear(40, 3, **k)), (9,), dtype)
        check(nn.Sequential(act, nn.Linear(9, 4, **k)), (9,), dtype)
        check(nn.Sequential(nn.Conv2d(2, 3, 3, **k), act, nn.MaxPool2d(2)), (2, 8, 8), dtype)
    x = np.array([[-40.0, -6.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 6.0, 40.0]], dtype)
    for approximate in ("none", "tanh"):
        model = nn.Sequential(nn.GELU(approximate)).eval()
        assert_close(cnn_core.compile(model, x.shape, dtype)(x), model(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", ["rnn", "rnn_relu", "lstm", "gru"])
def test_recurrent_layers(dtype, cell, simd):
    """One and two stacked layers, with and without biases, hidden sizes around the small-batch kernel's
    blocks; batch 1 runs the per-row kernel, 6 and more the GEMM."""
    cls = {"rnn": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    extra = {"nonlinearity": "relu"} if cell == "rnn_relu" else {}
    for hidden, layers, bias in ((5, 1, True), (16, 2, True), (33, 1, False), (20, 3, False)):
        rec = cls(6, hidden, num_layers=layers, bias=bias, batch_first=True, dtype=dtype, rng=8, **extra)
        model = nn.Sequential(rec, nn.LastStep(batch_first=True, dtype=dtype), nn.Linear(hidden, 3, dtype=dtype, rng=8))
        check(model, (7, 6), dtype, batches=(1, 2, 7, 13))
    # the whole sequence feeds the next layer: two recurrent layers in a row
    seq = nn.Sequential(cls(4, 8, batch_first=True, dtype=dtype, rng=9, **extra),
                        nn.LastStep(batch_first=True, dtype=dtype))
    check(seq, (1, 4), dtype, batches=(1, 6))          # one time step


@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_classifier(dtype, simd):
    for cell in ("rnn", "lstm", "gru"):
        model = RNNClassifier(12, 24, 5, cell=cell, dtype=dtype, rng=10, num_layers=1 if cell != "gru" else 2)
        check(model, (9, 12), dtype, batches=(1, 4, 11), planned=1)
        check(model, (1, 9, 12), dtype, batches=(1, 3), planned=3)     # images read row by row
    model = RNNClassifier(28, 128, 10, cell="lstm", dtype=dtype, rng=0)     # the deck's MNIST classifier
    check(model, (28, 28), dtype, batches=(1, 9), planned=1, use_oracle=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_and_concat(dtype, simd):
    k = dict(dtype=dtype, rng=11)
    # char_rnn's shape: indices -> Embedding -> recurrent layer -> last step -> Linear
    model = nn.Sequential(nn.Embedding(30, 8, padding_idx=0, **k), nn.GRU(8, 16, batch_first=True, **k),
                          nn.LastStep(batch_first=True, dtype=dtype), nn.Linear(16, 30, **k), nn.LogSoftmax(dim=1))
    check(model, (10,), dtype, batches=(1, 5, 20), indices=30)
    check(nn.Sequential(nn.Embedding(7, 3, **k), nn.Flatten(), nn.Linear(12, 2, **k)), (4,), dtype, indices=7)
    plan = cnn_core.compile(model.eval(), (1, 10), dtype)
    x = np.arange(10).reshape(1, 10)
    for ints in (np.int8, np.uint16, np.int32, np.int64):        # any integer dtype, as the layer takes
        assert_close(plan(x.astype(ints)), model(x), dtype)
    with pytest.raises(ValueError, match=r"x: expected indices in \[0, 30\)"):
        plan(np.full((1, 10), 30))
    with pytest.raises(TypeError, match="x: expected integer indices"):
        plan(x.astype(dtype))
    # Concat: along channels, features, the last axis; branches of convolutions, pools, identities; one branch
    check(nn.Sequential(nn.Conv2d(3, 4, 1, **k),
                        nn.Concat(nn.Sequential(nn.Conv2d(4, 2, 3, padding=1, **k), nn.ReLU()),
                                  nn.Identity(), nn.MaxPool2d(3, 1, 1)),
                        nn.ReLU(), nn.Conv2d(10, 3, 1, **k)), (3, 6, 5), dtype)
    check(nn.Concat(nn.Linear(5, 3, **k), nn.Sequential(nn.Linear(5, 4, **k), nn.Tanh()), nn.Identity()), (5,),
          dtype)
    check(nn.Concat(nn.Identity(), nn.AvgPool2d((1, 2)), dim=-1), (2, 3, 4), dtype)
    check(nn.Concat(nn.Identity(), nn.Identity(), dim=2), (2, 3), dtype)
    check(nn.Concat(nn.Sigmoid()), (3, 2), dtype)
    # two embeddings of one index sequence, joined along the features
    check(nn.Sequential(nn.Concat(nn.Embedding(9, 2, **k), nn.Embedding(6, 3, **k), dim=2), nn.Flatten()), (4,),
          dtype, indices=6)


@pytest.mark.parametrize("threads", [1, 2])
def test_large_batches_and_threads(threads, num_threads):
    """A batch of many chunks, on a team of threads (each its own arena) or one."""
    num_threads(threads)
    model = lenet5(rng=0).eval()
    plan = cnn_core.compile(model, (1, 1, 28, 28))
    x = np.random.default_rng(1).random((301, 1, 28, 28), np.float32)
    assert_close(plan(x), model(x), np.float32)
    model = mlp([784, 100, 10], "relu", rng=0).eval()
    plan = cnn_core.compile(model, (1, 784))
    x = np.random.default_rng(1).random((1000, 784), np.float32)
    assert_close(plan(x), model(x), np.float32)


def _team_model(dtype):
    """A network whose one 32x32 image is ~3.3 M multiply-adds: enough for the plan to run it on a team of up to
    3 threads, every op split among them (plan_template.h's run_chunk). It has each op the team splits: a
    direct convolution along the filters (32; rows of 32 outputs in pieces of 11) with a folded batch norm,
    one along the positions (20 filters), a 2x2 max pooling, a residual sum, an average pooling with padding,
    an unfolded batch norm with an activation, an activation op of its own; and ops left to thread 0: a
    strided convolution (im2col and the GEMM), Linear and a softmax."""
    k = dict(dtype=dtype, rng=3)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, **k), nn.BatchNorm2d(32, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 20, 3, padding=1, **k), nn.ReLU(),
        nn.Residual(nn.Conv2d(20, 20, 3, padding=1, **k)), nn.ReLU(),
        nn.AvgPool2d(3, stride=2, padding=1), nn.BatchNorm2d(20, dtype=dtype), nn.Tanh(),
        nn.Conv2d(20, 16, 3, stride=2, **k), nn.Flatten(), nn.Linear(16 * 3 * 3, 10, **k), nn.Softmax(dim=1),
        nn.Sigmoid())


@pytest.mark.parametrize("dtype", DTYPES)
def test_team_runs_one_image(dtype, simd, num_threads):
    """One image of enough work runs on the plan's team (one parallel region per call): equal to model.forward
    and the oracle, and bitwise the same at 1, 2 and 3 threads (each thread computes whole tiles, planes and
    blocks of the same loops); a chunk of several images on the team, through the program itself."""
    model = _team_model(dtype)
    rng = np.random.default_rng(4)
    randomize_bn(model, rng)
    model.eval()
    x = rng.normal(0, 1, (1, 3, 32, 32)).astype(dtype)
    outs = []
    for t in (1, 2, 3):
        num_threads(t)
        plan = cnn_core.compile(model, x.shape, dtype)
        if cnn_core.openmp_enabled():
            assert plan._sized_for(1, t).program.team(1, t) == t
        outs.append(plan(x))
    assert_close(outs[0], model(x), dtype)
    assert_close(outs[0], oracle(model, x), dtype)
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
    # three images in one chunk on a team of 2 (the arena's one block; the padded copy reused image by image)
    xs = rng.normal(0, 1, (3, 3, 32, 32)).astype(dtype)
    program = cnn_core.plan._program(plan._builder, 3)
    if cnn_core.openmp_enabled():
        assert program.team(3, 2) == 2
    out = np.empty((3, 10), dtype)
    program.run(xs, out, np.empty((1, plan._arena_per_sample * 3), dtype), 3, 2)
    assert_close(out, model(xs), dtype)


def test_direct_conv_on_its_own_team(num_threads):
    """A GEMM big enough for a team of its own (a strided convolution) keeps the plan off its team: the direct
    convolution after it then takes a team of its own, with the same results as on one thread."""
    k = dict(rng=5)
    model = nn.Sequential(nn.Conv2d(16, 64, 3, stride=2, padding=1, **k), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, padding=1, **k)).eval()
    x = np.random.default_rng(5).normal(0, 1, (1, 16, 64, 64)).astype(np.float32)
    num_threads(1)
    want = cnn_core.compile(model, x.shape)(x)
    num_threads(2)
    plan = cnn_core.compile(model, x.shape)
    assert plan._sized_for(1, 2).program.team(1, 2) == 1
    np.testing.assert_array_equal(plan(x), want)
    assert_close(want, model(x), np.float32)


def _calls_from_threads(plan, xs, calls: int) -> list[int]:
    """Runs plan(xs[i]) `calls` times on thread i, all threads at once; the indices whose result ever differed
    from the serial plan(xs[i]) computed first."""
    want = [plan(x) for x in xs]
    errors = []

    def work(i):
        for _ in range(calls):
            if not np.array_equal(plan(xs[i]), want[i]):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_calls_on_teams(num_threads):
    """Calls from several threads at once, each running its image on a team of 2: every result is the serial
    one."""
    num_threads(2)
    model = _team_model(np.float32).eval()
    plan = cnn_core.compile(model, (1, 3, 32, 32))
    rng = np.random.default_rng(6)
    xs = [rng.normal(0, 1, (1, 3, 32, 32)).astype(np.float32) for _ in range(4)]
    assert _calls_from_threads(plan, xs, 20) == []


def test_team_choice_follows_the_faster_way():
    """The run-time check of team against one thread: the probing calls alternate between the two, the
    faster median wins, and the choice is looked at again (the slow way can become the fast one)."""
    from cnn_core.plan import _PROBE_CALLS, _PROBE_EVERY, _TeamChoice
    c = _TeamChoice(2)
    assert c.next_team() == (2, False)             # the first call: the team, not timed (arenas, warm-up)
    teams = []
    for _ in range(2 * _PROBE_CALLS):
        team, timed = c.next_team()
        assert timed
        teams.append(team)
        c.record(team, 450e-6 if team > 1 else 360e-6)      # the team slower: one thread is chosen
    assert sorted(teams) == [1] * _PROBE_CALLS + [2] * _PROBE_CALLS and teams[0] != teams[1]
    assert not c.use_team
    for _ in range(_PROBE_EVERY - 1 - 2 * _PROBE_CALLS):
        assert c.next_team() == (1, False)
    assert c.next_team() == (1, False)             # the next look starts after one call of the choice
    for _ in range(2 * _PROBE_CALLS):
        team, timed = c.next_team()
        c.record(team, 220e-6 if team > 1 else 360e-6)      # the team fast again
    assert c.use_team and c.next_team() == (2, False)


def test_team_choice_in_calls(num_threads, monkeypatch):
    """A plan whose image runs on a team times its probing calls on the team and on one thread, both ways
    give the same bits, and a team made to look slow is left for one thread; a plan whose chunks run on
    parallel threads (many images), or alone on one, has no check."""
    num_threads(2)
    model = _team_model(np.float32).eval()
    plan = cnn_core.compile(model, (1, 3, 32, 32))
    x = np.random.default_rng(9).normal(0, 1, (1, 3, 32, 32)).astype(np.float32)
    s = plan._sized_for(1, 2)
    if not cnn_core.openmp_enabled():
        assert s.choice is None
        return
    assert s.choice is not None and s.choice.team == 2
    seen = []
    record = cnn_core.plan._TeamChoice.record

    def slow_team(self, team, seconds):
        seen.append(team)
        record(self, team, seconds + (1.0 if team > 1 else 0.0))

    monkeypatch.setattr(cnn_core.plan._TeamChoice, "record", slow_team)
    want = plan(x)
    for _ in range(cnn_core.plan._PROBE_EVERY + 10):
        np.testing.assert_array_equal(plan(x), want)
    assert sorted(set(seen)) == [1, 2] and len(seen) == 4 * cnn_core.plan._PROBE_CALLS
    assert not s.choice.use_team
    np.testing.assert_array_equal(plan(x), want)
    num_threads(1)
    np.testing.assert_array_equal(plan(x), want)
    assert plan._sized_for(1, 1).choice is None
    assert plan._sized_for(256, 2).choice is None


def test_out_and_argument_errors():
    model = mlp([6, 5, 4], "relu", rng=0).eval()
    plan = cnn_core.compile(model, (3, 6))
    x = np.random.default_rng(0).random((3, 6), np.float32)
    out = np.full((3, 4), np.nan, np.float32)
    assert plan(x, out=out) is out
    assert_close(out, model(x), np.float32)
    assert_close(plan(x[::-1]), model(x[::-1].copy()), np.float32)     # a non-contiguous input is copied
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        plan(x.astype(np.float64))
    with pytest.raises(TypeError, match="x: expected a numpy.ndarray"):
        plan(x.tolist())
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 6\)"):
        plan(x[:, :5])
    with pytest.raises(ValueError, match="out: expected shape"):
        plan(x, out=np.empty((2, 4), np.float32))
    with pytest.raises(TypeError, match="out: expected dtype"):
        plan(x, out=np.empty((3, 4), np.float64))
    with pytest.raises(ValueError, match="out: expected a C-contiguous array"):
        plan(x, out=np.empty((4, 3), np.float32).T)
    read_only = np.empty((3, 4), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out: expected a writable array"):
        plan(x, out=read_only)
    with pytest.raises(TypeError, match="out: expected a numpy.ndarray or None"):
        plan(x, out=[[0.0] * 4] * 3)
    with pytest.raises(ValueError, match="out: expected an array that does not overlap x"):
        cnn_core.compile(nn.Sequential(nn.ReLU()).eval(), (3, 6))(x, out=x)
    assert plan(x[:0]).shape == (0, 4)
    with pytest.raises(TypeError, match="model: expected a cnn_core.nn.Module"):
        cnn_core.compile(lambda v: v, (1, 6))
    with pytest.raises(TypeError, match="input_shape"):
        cnn_core.compile(model, 6)
    with pytest.raises(ValueError, match=r"input_shape\[0\]: expected a positive int"):
        cnn_core.compile(model, (0, 6))
    with pytest.raises(ValueError, match="compile: Linear: expected inputs of shape"):
        cnn_core.compile(model, (1, 7))
    with pytest.raises(ValueError, match="dtype: expected float32 or float64"):
        cnn_core.compile(model, (1, 6), dtype=np.int32)


def test_unsupported_layers_raise():
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="compile: model: Custom layers are not supported"):
        cnn_core.compile(nn.Sequential(Custom()), (1, 4))
    # what a plan cannot run, each with its reason
    cases = [(nn.Sequential(nn.RNN(4, 3)), (1, 5, 4), "batch_first=False reads"),
             (nn.Sequential(nn.GRU(4, 3, batch_first=True), nn.LastStep()), (1, 5, 4), "batch_first=False reads"),
             (nn.Sequential(nn.LSTM(4, 3, batch_first=True)), (1, 5, 4), r"\(out, state\) pair, not one array"),
             (nn.Sequential(nn.RNN(4, 3, batch_first=True), nn.Tanh()), (1, 5, 4), "Tanh reads a recurrent"),
             (nn.Sequential(nn.Linear(4, 4), nn.Embedding(5, 2)), (1, 4), "Embedding reads integer indices"),
             (nn.Concat(nn.Sequential(nn.Embedding(5, 1), nn.Flatten()), nn.Identity()), (1, 3),
              "other than through Embedding"),
             (nn.Concat(nn.Linear(4, 2), nn.Linear(4, 3), dim=0), (1, 4), "along the batch dimension"),
             (nn.Sequential(nn.BatchNorm1d(4, track_running_stats=False)), (1, 4), "without running statistics")]
    for model, shape, match in cases:
        with pytest.raises(TypeError, match=match):
            cnn_core.compile(model.eval(), shape)
    with pytest.raises(ValueError, match=r"compile: LSTM: expected inputs of shape \(N, T, 4\)"):
        cnn_core.compile(nn.Sequential(nn.LSTM(4, 3, batch_first=True), nn.LastStep(True)), (1, 5, 3))
    with pytest.raises(ValueError, match="compile: Concat: branches: expected outputs that agree"):
        cnn_core.compile(nn.Concat(nn.Identity(), nn.Flatten()), (1, 2, 3))


def test_subclass_with_its_own_forward_is_not_compiled():
    """A Linear subclass that overrides forward computes something else: compile refuses it and predict runs
    the model's own forward."""
    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    model = nn.Sequential(Doubled(3, 2, rng=0)).eval()
    with pytest.raises(TypeError, match="Doubled layers are not supported"):
        cnn_core.compile(model, (1, 3))
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(cnn_core.predict(model, x), model(x))


def test_plan_copies_the_weights():
    """Training the model after compile leaves the plan as it was (documented)."""
    model = nn.Sequential(nn.Conv2d(1, 3, 3, rng=0), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2, rng=0))
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 6, 6), np.float32)
    model.eval()
    before = model(x)
    plan = cnn_core.compile(model, x.shape)
    model.train()
    opt = cnn_core.optim.SGD(model.parameters(), lr=0.5)
    loss = nn.MSELoss()
    for _ in range(3):
        model.zero_grad()
        loss(model(x), np.ones((4, 2), np.float32))
        model.backward(loss.backward())
        opt.step()
    model.eval()
    assert not np.allclose(model(x), before)
    assert_close(plan(x), before, np.float32)


def test_concurrent_calls():
    """Calls from several threads at once each take their own scratch: every result is the serial one."""
    model = lenet5(rng=0).eval()
    plan = cnn_core.compile(model, (1, 1, 28, 28))
    rng = np.random.default_rng(2)
    xs = [rng.random((n, 1, 28, 28), np.float32) for n in (1, 1, 3, 1, 5, 1, 2, 1)]
    assert _calls_from_threads(plan, xs, 30) == []


def test_predict_uses_the_plan(monkeypatch):
    model = lenet5(rng=0)
    x = np.random.default_rng(3).random((37, 1, 28, 28), np.float32)
    model.eval()
    want = model(x)
    model.train()
    calls = []
    original = cnn_core.plan.Plan.__call__

    def spy(self, *a, **k):
        calls.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(cnn_core.plan.Plan, "__call__", spy)
    got = cnn_core.predict(model, x, batch_size=16)
    assert calls and model.training                       # the plan ran, the mode is back
    assert_close(got, want, np.float32)
    # a model the plan does not support: the layers run, same results as before
    class Halved(nn.Module):
        def forward(self, v):
            return v / 2

    other = nn.Sequential(nn.Linear(3, 4, rng=0), Halved(), nn.Linear(4, 2, rng=0))
    xs = np.random.default_rng(4).random((5, 3), np.float32)
    calls.clear()
    other.eval()
    np.testing.assert_array_equal(cnn_core.predict(other, xs), other(xs))
    assert not calls


def test_predict_cache():
    """predict keeps one plan per model, reused while the layers and weights are the ones it was compiled
    from: a weight changed in place, a layer replaced, another input shape or dtype compile a new one; the
    cache does not keep a model alive; recurrent and embedding models go through plans too."""
    import gc
    import weakref
    from cnn_core.plan import _PREDICT_PLANS
    model = nn.Sequential(nn.Linear(6, 5, rng=0), nn.ReLU(), nn.Linear(5, 3, rng=1)).eval()
    x = np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32)
    assert_close(cnn_core.predict(model, x), model(x), np.float32)
    plan = _PREDICT_PLANS[model][4]
    cnn_core.predict(model, x)
    assert _PREDICT_PLANS[model][4] is plan                          # reused
    model[0].weight.data[1, 2] += 1.0                                 # in place, as an optimizer step
    assert_close(cnn_core.predict(model, x), model(x), np.float32)
    assert _PREDICT_PLANS[model][4] is not plan
    plan = _PREDICT_PLANS[model][4]
    setattr(model, "1", nn.Tanh())                                    # no weights changed, a layer replaced
    assert_close(cnn_core.predict(model, x), model(x), np.float32)
    assert _PREDICT_PLANS[model][4] is not plan
    model[0].weight.data = model[0].weight.data.copy()                # same bytes, another array: reused
    plan = _PREDICT_PLANS[model][4]
    cnn_core.predict(model, x)
    assert _PREDICT_PLANS[model][4] is plan
    y64 = cnn_core.predict(model, x.astype(np.float64))               # cast to the model's dtype
    assert y64.dtype == np.float32 and _PREDICT_PLANS[model][4] is plan
    ref = weakref.ref(model)
    del model, plan
    gc.collect()
    assert ref() is None
    # the recurrent and embedding models of the deck run as plans, integer indices included
    rnn = RNNClassifier(28, 32, 10, cell="lstm", rng=0).eval()
    xs = np.random.default_rng(6).random((7, 1, 28, 28), np.float32)
    assert_close(cnn_core.predict(rnn, xs), rnn(xs), np.float32)
    assert _PREDICT_PLANS[rnn][4] is not None
    emb = nn.Sequential(nn.Embedding(20, 4, rng=0), nn.GRU(4, 8, batch_first=True, rng=0),
                        nn.LastStep(batch_first=True), nn.Linear(8, 20, rng=0)).eval()
    idx = np.random.default_rng(7).integers(0, 20, (9, 12))
    assert_close(cnn_core.predict(emb, idx), emb(idx), np.float32)
    assert _PREDICT_PLANS[emb][4] is not None


def test_cli_bench(tmp_path):
    import json
    import subprocess
    import sys
    path = tmp_path / "mlp.npz"
    cnn_core.save(mlp([784, 30, 10], "relu", rng=0), str(path))
    proc = subprocess.run([sys.executable, "-m", "cnn_core", "bench", str(path), "--batch", "64", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["runs_as"].startswith("compiled plan") and info["input_shape"] == [784]
    assert info["latency_us"] > 0 and info["throughput_per_s"] > 0 and info["batch"] == 64
    rnn_path = tmp_path / "lstm.npz"
    cnn_core.save(RNNClassifier(28, 16, 10, cell="lstm", rng=0), str(rnn_path))    # recurrent: a plan too
    proc = subprocess.run([sys.executable, "-m", "cnn_core", "bench", str(rnn_path), "--batch", "8", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["runs_as"].startswith("compiled plan") and info["input_shape"] == [28, 28]
    proc = subprocess.run([sys.executable, "-m", "cnn_core", "bench", str(path), "--input-shape", "1,x"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "--input-shape: expected positive ints" in proc.stderr
