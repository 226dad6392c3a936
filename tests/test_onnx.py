"""cnn_core.onnx.export: every layer (with its options), the containers and the deck's models, exported and run
in onnxruntime, against cnn_core's own eval-mode forward.

Tolerances. float32: |onnxruntime - cnn_core| <= 1e-5 + 1e-5 |cnn_core| (assert_allclose rtol=atol=1e-5), the
issue's 1e-5: both sides round every product and sum in float32, in different orders. float64: 1e-10, for the
same reason at float64's precision. onnxruntime 1.32's CPU provider has no float64 kernel for Conv,
AveragePool, GlobalAveragePool, Erf, RNN, LSTM and GRU: those float64 graphs run in onnx's reference evaluator
(onnx.reference, NumPy; its Erf and RNN are completed below, as the ONNX spec defines them), and only they may:
every float32 graph must run in onnxruntime, which is asserted.

Every export is made at batch 1 and run at another batch size: the batch dimension is dynamic.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import cnn_core
from cnn_core import nn
from cnn_core.models import RNNClassifier, lenet5, mlp, small_cnn, small_resnet
from cnn_core.nn.module import Module

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx.reference import ReferenceEvaluator  # noqa: E402
from onnx.reference.ops.op_erf import Erf as Erf_9  # noqa: E402
from onnx.reference.ops.op_rnn import RNN_14  # noqa: E402
from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented  # noqa: E402
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException as OrtRuntimeException  # noqa: E402

from cnn_core.onnx import export  # noqa: E402

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cnn_core.__file__)))
TOL = {np.float32: 1e-5, np.float64: 1e-10}
BATCH = 3  # the batch the exported graphs run at (they are exported at batch 1)


def ort_session(path: str):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


class RNN(RNN_14):
    """onnx's reference RNN with the Relu activation that the ONNX spec lists and onnx.reference lacks (it knows
    Tanh and Affine only), so float64 Elman RNNs with nonlinearity='relu' have a runtime too."""

    def choose_act(self, name, alpha, beta):
        if name == "Relu":
            return lambda x: np.maximum(x, 0)
        return super().choose_act(name, alpha, beta)


class Erf(Erf_9):
    """onnx's reference Erf in the input's dtype (it rounds through float32: otypes=["f"])."""

    def _run(self, x):
        return (np.vectorize(math.erf, otypes=[x.dtype])(x),)


def _reference(path: str, x: np.ndarray, why: str) -> list[np.ndarray]:
    proto = onnx.load(path)
    # only a float64 graph may fall back: every float32 graph must run in onnxruntime
    assert proto.graph.input[0].type.tensor_type.elem_type in (onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64), why
    return list(ReferenceEvaluator(proto, new_ops=[RNN, Erf]).run(None, {"input": x}))


# AddressSanitizer preloaded into a Python that is not linked with libstdc++ (.ci/run's sanitizer stage) cannot
# find the real __cxa_throw, and aborts the process at the first C++ exception onnxruntime throws ("CHECK failed:
# asan_interceptors.cpp: real___cxa_throw != 0"); preloading libstdc++ after libasan avoids it. Without that, a
# float64 graph goes to the reference evaluator directly instead of learning from onnxruntime's refusal.
_PRELOAD = os.environ.get("LD_PRELOAD", "")
CXX_THROW_ABORTS = "libasan" in _PRELOAD and "libstdc++" not in _PRELOAD


def run_onnx(path: str, x: np.ndarray) -> tuple[list[np.ndarray], str]:
    """The graph's outputs on x, and the runtime that computed them: onnxruntime, or onnx's reference
    evaluator for a float64 graph with an operator onnxruntime has no float64 kernel for (it refuses the
    session, or, for LSTM and GRU, the run: "does not support double yet")."""
    if CXX_THROW_ABORTS and x.dtype == np.float64:
        return _reference(path, x, "float64 under AddressSanitizer"), "reference"
    try:
        sess = ort_session(path)
    except OrtNotImplemented as e:
        return _reference(path, x, str(e)), "reference"
    try:
        return sess.run(None, {"input": x}), "onnxruntime"
    except OrtRuntimeException as e:
        if "does not support double" not in str(e):
            raise
        return _reference(path, x, str(e)), "reference"


def expected_outputs(model: Module, x: np.ndarray) -> list[np.ndarray]:
    with cnn_core.nn.module.temporary_mode(model, False):
        out = model(x)
    flat = []

    def walk(v):
        if isinstance(v, tuple):
            for p in v:
                walk(p)
        else:
            flat.append(v)
    walk(out)
    return flat


def check_roundtrip(model: Module, x: np.ndarray, tmp_path, dtype=None, **kwargs) -> str:
    """Export `model` at batch 1, run the file on x, compare with cnn_core's outputs; returns the runtime."""
    path = str(tmp_path / "model.onnx")
    batch_axis = 1 if kwargs.pop("time_major", False) else 0
    shape = list(x.shape)
    shape[batch_axis] = 1
    export(model, path, tuple(shape), dtype=dtype, **kwargs)
    want = expected_outputs(model, x)
    got, runtime = run_onnx(path, x if x.dtype.kind in "iu" else x.astype(dtype or model.dtype))
    tol = TOL[np.dtype(dtype or model.dtype).type]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert g.dtype == np.dtype(dtype or model.dtype)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    return runtime


def randomize(model: Module, seed: int = 0) -> Module:
    """Non-trivial batch-norm statistics and affine parameters: a few train-mode passes on shifted data and
    random gamma/beta (the exported graph must use the running statistics, not the batch's)."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.affine:
                m.weight.data[:] = rng.uniform(0.5, 1.5, m.num_features)
                m.bias.data[:] = rng.normal(0, 0.5, m.num_features)
            if m.track_running_stats:
                m.running_mean[:] = rng.normal(0, 0.5, m.num_features)
                m.running_var[:] = rng.uniform(0.5, 2.0, m.num_features)
    return model


# ---- every layer alone --------------------------------------------------------------------------------------

def image(c=3, h=9, w=8):
    return (BATCH, c, h, w)


# (id, layer factory (dtype -> module), input shape)
LAYERS = [
    ("linear", lambda dt: nn.Linear(5, 4, dtype=dt, rng=0), (BATCH, 5)),
    ("linear-nobias", lambda dt: nn.Linear(5, 4, bias=False, dtype=dt, rng=0), (BATCH, 5)),
    ("conv", lambda dt: nn.Conv2d(3, 4, 3, dtype=dt, rng=0), image()),
    ("conv-stride2-pad1", lambda dt: nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=dt, rng=0), image()),
    ("conv-rect", lambda dt: nn.Conv2d(3, 4, (2, 3), stride=(2, 1), padding=(0, 2), dtype=dt, rng=0), image()),
    ("conv-same-even", lambda dt: nn.Conv2d(3, 2, 4, padding="same", dtype=dt, rng=0), image()),
    ("conv-same-dilated", lambda dt: nn.Conv2d(3, 2, (3, 2), padding="same", dilation=(2, 3), dtype=dt, rng=0),
     image()),
    ("conv-valid", lambda dt: nn.Conv2d(3, 2, 3, padding="valid", dtype=dt, rng=0), image()),
    ("conv-dilation", lambda dt: nn.Conv2d(3, 2, 3, dilation=(2, 1), stride=2, dtype=dt, rng=0), image()),
    ("conv-groups", lambda dt: nn.Conv2d(4, 6, 3, groups=2, padding=1, dtype=dt, rng=0), image(c=4)),
    ("conv-depthwise-nobias", lambda dt: nn.Conv2d(4, 4, 3, groups=4, bias=False, dtype=dt, rng=0), image(c=4)),
    ("conv-pad-exceeds-kernel", lambda dt: nn.Conv2d(3, 2, 2, padding=3, stride=3, dtype=dt, rng=0), image()),
    ("maxpool", lambda dt: nn.MaxPool2d(2), image()),
    ("maxpool-3-2", lambda dt: nn.MaxPool2d(3, 2), image()),
    ("maxpool-pad", lambda dt: nn.MaxPool2d(3, 2, 1), image()),
    ("maxpool-ceil", lambda dt: nn.MaxPool2d(3, 2, 1, ceil_mode=True), image(h=8, w=7)),
    ("maxpool-ceil-nopad", lambda dt: nn.MaxPool2d(2, ceil_mode=True), image(h=7, w=9)),
    ("maxpool-dilation", lambda dt: nn.MaxPool2d(2, 1, dilation=(2, 3)), image()),
    ("maxpool-dilation-pad-ceil", lambda dt: nn.MaxPool2d(3, 2, 2, dilation=2, ceil_mode=True), image()),
    ("maxpool-rect", lambda dt: nn.MaxPool2d((2, 3), (1, 2), (1, 0)), image()),
    ("avgpool", lambda dt: nn.AvgPool2d(2), image()),
    ("avgpool-pad", lambda dt: nn.AvgPool2d(3, 2, 1), image()),
    ("avgpool-pad-exclude", lambda dt: nn.AvgPool2d(3, 2, 1, count_include_pad=False), image()),
    ("avgpool-ceil", lambda dt: nn.AvgPool2d(2, ceil_mode=True), image(h=7, w=9)),
    ("avgpool-ceil-pad", lambda dt: nn.AvgPool2d(3, 2, 1, ceil_mode=True), image(h=8, w=7)),
    ("avgpool-ceil-pad-exclude", lambda dt: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     image(h=8, w=7)),
    ("avgpool-rect", lambda dt: nn.AvgPool2d((3, 2), (2, 1), (1, 0)), image()),
    ("adaptive-1", lambda dt: nn.AdaptiveAvgPool2d(1), image()),
    ("adaptive-divides", lambda dt: nn.AdaptiveAvgPool2d((3, 4)), image()),
    ("adaptive-uneven", lambda dt: nn.AdaptiveAvgPool2d((4, 5)), image()),
    ("adaptive-none", lambda dt: nn.AdaptiveAvgPool2d((2, None)), image(h=7)),
    ("sigmoid", lambda dt: nn.Sigmoid(), (BATCH, 7)),
    ("tanh", lambda dt: nn.Tanh(), image()),
    ("relu", lambda dt: nn.ReLU(), image()),
    ("elu", lambda dt: nn.ELU(), (BATCH, 7)),
    ("elu-alpha", lambda dt: nn.ELU(alpha=0.3), (BATCH, 7)),
    ("leaky-relu", lambda dt: nn.LeakyReLU(), (BATCH, 7)),
    ("leaky-relu-slope", lambda dt: nn.LeakyReLU(0.2), image()),
    ("gelu", lambda dt: nn.GELU(), (BATCH, 7)),
    ("gelu-tanh", lambda dt: nn.GELU("tanh"), (BATCH, 7)),
    ("silu", lambda dt: nn.SiLU(), (BATCH, 7)),
    ("identity", lambda dt: nn.Identity(), (BATCH, 7)),
    ("softmax", lambda dt: nn.Softmax(dim=1), (BATCH, 7)),
    ("softmax-last-3d", lambda dt: nn.Softmax(dim=-1), (BATCH, 4, 5)),
    ("softmax-implicit-dim", lambda dt: nn.Softmax(), (BATCH, 4, 5)),  # PyTorch's legacy choice: dim 0 for 3-D
    ("logsoftmax", lambda dt: nn.LogSoftmax(dim=1), (BATCH, 7)),
    ("logsoftmax-channels", lambda dt: nn.LogSoftmax(dim=1), image()),
    ("flatten", lambda dt: nn.Flatten(), image()),
    ("batchnorm1d", lambda dt: nn.BatchNorm1d(6, dtype=dt), (BATCH, 6)),
    ("batchnorm1d-3d", lambda dt: nn.BatchNorm1d(6, eps=1e-3, dtype=dt), (BATCH, 6, 5)),
    ("batchnorm2d", lambda dt: nn.BatchNorm2d(3, dtype=dt), image()),
    ("batchnorm2d-noaffine", lambda dt: nn.BatchNorm2d(3, affine=False, dtype=dt), image()),
    ("batchnorm2d-batch-stats", lambda dt: nn.BatchNorm2d(3, track_running_stats=False, dtype=dt), image()),
    ("batchnorm1d-batch-stats", lambda dt: nn.BatchNorm1d(6, track_running_stats=False, dtype=dt), (BATCH, 6)),
    ("dropout", lambda dt: nn.Dropout(0.5), (BATCH, 7)),
    ("dropout2d", lambda dt: nn.Dropout2d(0.3), image()),
]

RECURRENT = [
    ("rnn", lambda dt: nn.RNN(4, 5, dtype=dt, rng=0), False),
    ("rnn-relu-batch-first", lambda dt: nn.RNN(4, 5, nonlinearity="relu", batch_first=True, dtype=dt, rng=0), True),
    ("rnn-2-layers-nobias", lambda dt: nn.RNN(4, 5, 2, bias=False, dtype=dt, rng=0), False),
    ("lstm", lambda dt: nn.LSTM(4, 5, dtype=dt, rng=0), False),
    ("lstm-batch-first-3-layers", lambda dt: nn.LSTM(4, 5, 3, batch_first=True, dtype=dt, rng=0), True),
    ("lstm-nobias", lambda dt: nn.LSTM(4, 5, bias=False, dtype=dt, rng=0), False),
    ("gru", lambda dt: nn.GRU(4, 5, dtype=dt, rng=0), False),
    ("gru-batch-first-2-layers", lambda dt: nn.GRU(4, 5, 2, batch_first=True, dtype=dt, rng=0), True),
    ("gru-nobias", lambda dt: nn.GRU(4, 5, bias=False, dtype=dt, rng=0), False),
]


def random_input(shape, dtype, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1.5, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, shape", [(m, s) for _, m, s in LAYERS], ids=[i for i, _, _ in LAYERS])
def test_layer_alone(make, shape, dtype, tmp_path):
    layer = randomize(make(dtype))
    # dtype given: the layers without parameters are float32 nominally and take float64 input as it is
    runtime = check_roundtrip(layer, random_input(shape, dtype), tmp_path, dtype=dtype)
    if dtype == np.float32:
        assert runtime == "onnxruntime"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, batch_first", [(m, b) for _, m, b in RECURRENT], ids=[i for i, _, _ in RECURRENT])
def test_recurrent_layer_alone_gives_output_and_final_states(make, batch_first, dtype, tmp_path):
    layer = make(dtype)
    shape = (BATCH, 6, 4) if batch_first else (6, BATCH, 4)
    runtime = check_roundtrip(layer, random_input(shape, dtype), tmp_path, time_major=not batch_first)
    proto = onnx.load(str(tmp_path / "model.onnx"))
    names = [o.name for o in proto.graph.output]
    assert names == (["output", "h_n", "c_n"] if isinstance(layer, nn.LSTM) else ["output", "h_n"])
    batch_axis = 0 if batch_first else 1
    assert proto.graph.input[0].type.tensor_type.shape.dim[batch_axis].dim_param == "N"
    if dtype == np.float32:
        assert runtime == "onnxruntime"


@pytest.mark.parametrize("cell", [nn.RNN, nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [False, True])
def test_last_step_in_a_sequential(cell, batch_first, tmp_path):
    model = nn.Sequential(cell(4, 6, batch_first=batch_first, rng=0), nn.LastStep(batch_first=batch_first),
                          nn.Linear(6, 3, rng=1))
    shape = (BATCH, 5, 4) if batch_first else (5, BATCH, 4)
    check_roundtrip(model, random_input(shape, np.float32), tmp_path, time_major=not batch_first)


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_reads_int64_indices(padding_idx, tmp_path):
    emb = nn.Embedding(10, 4, padding_idx=padding_idx, rng=0)
    x = np.random.default_rng(0).integers(0, 10, (BATCH, 6))
    check_roundtrip(emb, x, tmp_path)
    proto = onnx.load(str(tmp_path / "model.onnx"))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_embedding_then_recurrent_classifier(tmp_path):
    model = nn.Sequential(nn.Embedding(12, 5, rng=0), nn.LSTM(5, 7, batch_first=True, rng=1),
                          nn.LastStep(batch_first=True), nn.Linear(7, 3, rng=2))
    check_roundtrip(model, np.random.default_rng(1).integers(0, 12, (BATCH, 8)), tmp_path)


def test_embedding_then_time_major_recurrent_layer_has_its_batch_on_axis_1(tmp_path):
    model = nn.Sequential(nn.Embedding(12, 5, rng=0), nn.GRU(5, 7, rng=1), nn.LastStep(), nn.Linear(7, 3, rng=2))
    check_roundtrip(model, np.random.default_rng(1).integers(0, 12, (8, BATCH)), tmp_path, time_major=True)


# ---- containers ---------------------------------------------------------------------------------------------

def test_residual_identity_and_projection_and_concat(tmp_path):
    block = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, rng=0), nn.BatchNorm2d(3), nn.ReLU())
    proj = nn.Residual(nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=1, rng=1), nn.ReLU()),
                       nn.Conv2d(3, 5, 1, stride=2, rng=2))
    model = randomize(nn.Sequential(nn.Residual(block), proj,
                                    nn.Concat(nn.Conv2d(5, 2, 1, rng=3), nn.MaxPool2d(3, 1, 1), dim=1),
                                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(7, 2, rng=4)))
    check_roundtrip(model, random_input(image(), np.float32), tmp_path)


def test_concat_along_the_last_dim(tmp_path):
    model = nn.Concat(nn.Linear(4, 2, rng=0), nn.Sequential(nn.Linear(4, 3, rng=1), nn.Tanh()), dim=-1)
    check_roundtrip(model, random_input((BATCH, 4), np.float32), tmp_path)


def test_nested_sequential_and_empty_sequential(tmp_path):
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4, rng=0), nn.Sequential()), nn.ReLU())
    check_roundtrip(model, random_input((BATCH, 4), np.float32), tmp_path)


# ---- the deck's models --------------------------------------------------------------------------------------

MODELS = [
    ("lenet5", lambda dt: lenet5(dtype=dt, rng=0), (BATCH, 1, 28, 28)),
    ("lenet5-classic", lambda dt: lenet5("tanh", "avg", dtype=dt, rng=0), (BATCH, 1, 28, 28)),
    ("mlp", lambda dt: mlp([784, 30, 10], dtype=dt, rng=0), (BATCH, 784)),
    ("mlp-nielsen", lambda dt: mlp([784, 30, 10], "sigmoid", "sigmoid", init="normal", dtype=dt, rng=0),
     (BATCH, 784)),
    ("mlp-elu", lambda dt: mlp([20, 16, 16, 5], "elu", dtype=dt, rng=0), (BATCH, 20)),
    ("rnn-classifier", lambda dt: RNNClassifier(28, 32, 10, dtype=dt, rng=0), (BATCH, 28, 28)),
    ("rnn-classifier-images", lambda dt: RNNClassifier(28, 16, 10, dtype=dt, rng=0), (BATCH, 1, 28, 28)),
    ("rnn-classifier-relu", lambda dt: RNNClassifier(10, 16, 4, "relu", dtype=dt, rng=0), (BATCH, 7, 10)),
    ("lstm-classifier-2-layers", lambda dt: RNNClassifier(28, 16, 10, cell="lstm", num_layers=2, dtype=dt, rng=0),
     (BATCH, 28, 28)),
    ("gru-classifier", lambda dt: RNNClassifier(28, 16, 10, cell="gru", dtype=dt, rng=0), (BATCH, 1, 28, 28)),
    ("small-cnn", lambda dt: small_cnn(dtype=dt, rng=0), (BATCH, 1, 28, 28)),
    ("small-cnn-3-channels", lambda dt: small_cnn(5, 3, dtype=dt, rng=0, depth=(2, 1, 1)), (BATCH, 3, 13, 11)),
    ("small-resnet", lambda dt: small_resnet(dtype=dt, rng=0), (BATCH, 1, 28, 28)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, shape", [(m, s) for _, m, s in MODELS], ids=[i for i, _, _ in MODELS])
def test_model(make, shape, dtype, tmp_path):
    model = randomize(make(dtype))
    x = np.random.default_rng(2).uniform(0, 1, shape).astype(dtype)
    runtime = check_roundtrip(model, x, tmp_path)
    if dtype == np.float32:
        assert runtime == "onnxruntime"


def test_lenet5_and_mlp_have_state_dict_names_and_a_dynamic_batch(tmp_path):
    for model, shape in ((lenet5(rng=0), (1, 1, 28, 28)), (mlp([784, 30, 10], rng=0), (1, 784))):
        path = tmp_path / "m.onnx"
        export(model, path, shape)
        proto = onnx.load(str(path))
        assert {i.name for i in proto.graph.initializer} == set(model.state_dict())
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == list(shape[1:])
        out = proto.graph.output[0].type.tensor_type.shape.dim
        assert out[0].dim_param == "N" and out[1].dim_value == 10
        assert proto.opset_import[0].version == 17
        for n in (1, 7, 64):  # any batch size runs
            x = np.random.default_rng(n).uniform(0, 1, (n, *shape[1:])).astype(np.float32)
            (y,) = ort_session(str(path)).run(None, {"input": x})
            np.testing.assert_allclose(y, cnn_core.predict(model, x), rtol=1e-5, atol=1e-5)


def test_trained_lenet5_agrees_on_the_predicted_classes(tmp_path):
    from cnn_core.datasets import load_mnist
    X, y = load_mnist(split="train")
    cnn_core.manual_seed(0)
    model = lenet5(rng=0)
    cnn_core.fit(model, nn.CrossEntropyLoss(), cnn_core.optim.Adam(model.parameters(), lr=1e-3), X[:600], y[:600],
                 epochs=1, batch_size=32, verbose=0)
    export(model, tmp_path / "lenet.onnx", (1, 1, 28, 28))
    Xt, _ = load_mnist(split="test")
    Xt = Xt[:200]
    (logits,) = ort_session(str(tmp_path / "lenet.onnx")).run(None, {"input": Xt})
    ours = cnn_core.predict(model, Xt)
    np.testing.assert_allclose(logits, ours, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(logits.argmax(1), ours.argmax(1))


# ---- options of export --------------------------------------------------------------------------------------

OPSET_MODELS = [
    # the batch-statistics BatchNorm uses ReduceMean, whose axes became an input in opset 18
    ("ops", lambda: randomize(nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.BatchNorm2d(4, track_running_stats=False),
                                            nn.GELU(), nn.AvgPool2d(2, ceil_mode=True), nn.MaxPool2d(2, 1, 1),
                                            nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(), nn.Softmax(1))),
     (BATCH, 3, 9, 8)),
    ("small-resnet", lambda: randomize(small_resnet(rng=0, channels=(4, 8, 8))), (BATCH, 1, 12, 12)),
    ("lstm-classifier", lambda: RNNClassifier(6, 5, 3, cell="lstm", num_layers=2, rng=0), (BATCH, 4, 6)),
    ("gru-rnn", lambda: nn.Sequential(nn.GRU(6, 5, batch_first=True, rng=0), nn.LastStep(batch_first=True),
                                      nn.Linear(5, 3, rng=1)), (BATCH, 4, 6)),
]


@pytest.mark.parametrize("opset", range(17, onnx.defs.onnx_opset_version() + 1))
@pytest.mark.parametrize("make, shape", [(m, s) for _, m, s in OPSET_MODELS], ids=[i for i, _, _ in OPSET_MODELS])
def test_every_opset_from_17_to_the_newest(make, shape, opset, tmp_path):
    try:
        check_roundtrip(make(), random_input(shape, np.float32), tmp_path, opset=opset)
    except Exception as e:
        # An onnxruntime older than the installed onnx (older Pythons get older wheels) may lack a newer opset's
        # kernels: said as a skip. Opset 17 runs everywhere: no skip there.
        if opset > 17 and (isinstance(e, OrtNotImplemented) or "opset" in str(e).lower()):
            pytest.skip(f"onnxruntime {ort.__version__} does not run opset {opset}: {e}")
        raise
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == opset


def test_float64_model_exported_as_float32(tmp_path):
    model = randomize(lenet5(dtype=np.float64, rng=0))
    x = np.random.default_rng(0).uniform(0, 1, (BATCH, 1, 28, 28))
    export(model, tmp_path / "m.onnx", (1, 1, 28, 28), dtype=np.float32)
    (y,) = ort_session(str(tmp_path / "m.onnx")).run(None, {"input": x.astype(np.float32)})
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, cnn_core.predict(model, x), rtol=1e-5, atol=1e-5)


def test_export_leaves_the_model_as_it_was(tmp_path):
    model = small_cnn(rng=0)
    model[1].eval()  # a mix of modes
    before = {k: v.copy() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    export(model, tmp_path / "m.onnx", (1, 1, 28, 28))
    assert [m.training for m in model.modules()] == modes
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # running statistics untouched


# ---- errors -------------------------------------------------------------------------------------------------

class Custom(Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("model, words", [
    (Custom(), ["(the model)", "Custom", "no ONNX conversion"]),
    (nn.Sequential(nn.Linear(3, 3), Custom()), ["layer 1", "Custom"]),
    (nn.Residual(nn.Sequential(nn.Linear(3, 3), nn.ModuleList([nn.ReLU()]))), ["layer block.1", "ModuleList"]),
])
def test_unsupported_layers_are_a_type_error_naming_them(model, words, tmp_path):
    with pytest.raises(TypeError) as e:
        export(model, tmp_path / "m.onnx", (1, 3))
    for w in words:
        assert w in str(e.value)
    assert os.listdir(tmp_path) == []  # nothing written, no temporary left


def test_a_failed_export_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        export(nn.Sequential(Custom()), path, (1, 3))
    assert path.read_bytes() == b"old"
    export(nn.Sequential(nn.ReLU()), path, (1, 3))
    assert onnx.load(str(path)).graph.node  # replaced by a whole model
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"input_shape": (1, 5)}, ValueError, ["Linear", "features"]),          # the model's own check
    ({"input_shape": 3}, TypeError, ["input_shape"]),
    ({"input_shape": (1, 0)}, ValueError, ["input_shape[1]"]),
    ({"input_shape": (1, 3), "opset": 16}, ValueError, ["opset"]),
    ({"input_shape": (1, 3), "opset": 10_000}, ValueError, ["opset", "onnx"]),
    ({"input_shape": (1, 3), "opset": "17"}, TypeError, ["opset"]),
    ({"input_shape": (1, 3), "dtype": np.int32}, (TypeError, ValueError), ["dtype"]),
])
def test_bad_arguments(kwargs, exc, words, tmp_path):
    with pytest.raises(exc) as e:
        export(nn.Linear(3, 2), tmp_path / "m.onnx", **kwargs)
    for w in words:
        assert w in str(e.value)


def test_not_a_module_and_missing_directory(tmp_path):
    with pytest.raises(TypeError, match="model: expected a cnn_core.nn.Module"):
        export("lenet", tmp_path / "m.onnx", (1, 3))
    with pytest.raises(FileNotFoundError):
        export(nn.Linear(3, 2), tmp_path / "missing" / "m.onnx", (1, 3))


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "cnn_core\[onnx\]"'):
        export(nn.Linear(3, 2), tmp_path / "m.onnx", (1, 3))


# ---- the command line ---------------------------------------------------------------------------------------

def cli(cwd, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PKG_PARENT, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "cnn_core", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("make, shape", [(lambda: lenet5(rng=0), (1, 28, 28)),
                                         (lambda: mlp([784, 30, 10], rng=0), (784,)),
                                         (lambda: RNNClassifier(28, 16, 10, cell="lstm", rng=0), (28, 28))],
                         ids=["lenet5", "mlp", "lstm-classifier"])
def test_cli_export(make, shape, tmp_path):
    model = make()
    cnn_core.save(model, tmp_path / "model.npz")
    r = cli(tmp_path, "export", "model.npz", "model.onnx")
    assert r.returncode == 0, r.stderr
    assert "model.onnx" in r.stdout and r.stderr == ""
    x = np.random.default_rng(0).uniform(0, 1, (4, *shape)).astype(np.float32)
    (y,) = ort_session(str(tmp_path / "model.onnx")).run(None, {"input": x})
    np.testing.assert_allclose(y, cnn_core.predict(model, x), rtol=1e-5, atol=1e-5)


def test_cli_export_input_shape_and_opset(tmp_path):
    model = small_cnn(rng=0, num_classes=3)
    cnn_core.save(model, tmp_path / "m.npz")
    r = cli(tmp_path, "export", "m.npz", "m.onnx", "--input-shape", "1,12,12", "--opset", "18", "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.opset_import[0].version == 18
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == [1, 12, 12]


def assert_user_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnn-core: error: ") and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_cli_export_errors(tmp_path):
    from cnn_core.models import Perceptron
    assert_user_error(cli(tmp_path, "export", "nope.npz", "m.onnx"), "MODEL_FILE", "nope.npz")
    cnn_core.save(lenet5(rng=0), tmp_path / "m.npz")
    assert_user_error(cli(tmp_path, "export", "m.npz", "m.onnx", "--input-shape", "1,x"), "--input-shape")
    assert_user_error(cli(tmp_path, "export", "m.npz", "m.onnx", "--input-shape", "3,28,28"), "MODEL_FILE",
                      "channels")
    assert_user_error(cli(tmp_path, "export", "m.npz", "m.onnx", "--opset", "12"), "--opset")
    assert_user_error(cli(tmp_path, "export", "m.npz", "m.onnx", "--opset", "1000"), "--opset", "1000")
    assert_user_error(cli(tmp_path, "export", "m.npz", "no/such/dir/m.onnx"), "OUT")
    X = np.random.default_rng(0).normal(size=(20, 4))
    est = Perceptron().fit(X, (X[:, 0] > 0).astype(int))
    cnn_core.save(est, tmp_path / "p.npz")
    assert_user_error(cli(tmp_path, "export", "p.npz", "p.onnx"), "Perceptron", "networks")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "p.onnx").exists()


def test_cli_export_without_onnx_says_which_extra(tmp_path):
    cnn_core.save(mlp([4, 3], rng=0), tmp_path / "m.npz")
    code = ("import sys; sys.modules['onnx'] = None; from cnn_core.cli.main import main; "
            "sys.exit(main(['export', 'm.npz', 'm.onnx']))")
    env = dict(os.environ, PYTHONPATH=PKG_PARENT, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert_user_error(r, "onnx", 'pip install "cnn_core[onnx]"')
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_is_imported_only_by_export(tmp_path):
    code = ("import sys, cnn_core, cnn_core.onnx; from cnn_core.cli.main import build_parser; build_parser(); "
            "print('onnx' in sys.modules); cnn_core.onnx.export(cnn_core.nn.ReLU(), 'm.onnx', (1, 2)); "
            "print('onnx' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=PKG_PARENT, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]
