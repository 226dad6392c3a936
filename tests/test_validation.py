"""cnn_core._validation: the one home of argument checks (issue 9), and layers that validate once.

The policy: TypeError for a wrong type, ValueError for a wrong value, the message naming the argument, what
was expected and what came. The second half checks that nn layers, having validated at their boundary, call
the unchecked kernel entry points and never the public (validating) wrappers, with identical results.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from cnn_core import kernels, nn
from cnn_core._validation import (MAX_SIZE, as_real, check_bool, check_choice, check_int, check_nbytes,
                                  check_output, check_path, check_real, check_seed, check_size, not_an_array)


class _Sparse:
    format, shape = "csr", (2, 2)

    def toarray(self):
        return np.zeros(self.shape)

    def tocsr(self):
        return self


# ---- scalars ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_check_int_accepts_integers_as_python_ints(value):
    out = check_int(value, "n", 1, 5)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, 3.0, "3", None, np.float64(3)])
def test_check_int_wrong_type_is_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^n: expected an int >= 1, got .*\(" + type(value).__name__ + r"\)$"):
        check_int(value, "n", 1)


@pytest.mark.parametrize("value, low, high, expected", [(0, 1, None, "an int >= 1"), (6, 1, 5, "an int in 1..5"),
                                                        (6, None, 5, "an int <= 5")])
def test_check_int_out_of_range_is_a_value_error(value, low, high, expected):
    with pytest.raises(ValueError, match=f"^n: expected {expected}, got {value}$"):
        check_int(value, "n", low, high)


@pytest.mark.parametrize("value", [0, -1, 2**31, 2**63, 2**64])
def test_check_size_bounds_sizes_below_2_31(value):
    with pytest.raises(ValueError, match=rf"^stride: expected a positive int < 2\*\*31, got {value}$"):
        check_size(value, "stride")
    assert check_size(MAX_SIZE, "stride") == 2**31 - 1


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), Fraction(1, 2)])
def test_check_real_accepts_real_numbers_as_python_floats(value):
    out = check_real(value, "lr", 0.0)
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", ["0.1", None, True, np.bool_(True), 1j, [0.1]])
def test_check_real_wrong_type_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"^lr: expected a real number, got "):
        check_real(value, "lr", 0.0)


@pytest.mark.parametrize("value", [2**1100, -(2**1100)])
def test_an_int_beyond_float64_is_a_value_error_not_an_overflow_error(value):
    for check in (as_real, check_real):
        with pytest.raises(ValueError, match=r"^lr: expected a finite number, got an int of 1101 bits") as info:
            check(value, "lr")
        assert not isinstance(info.value, OverflowError)


@pytest.mark.parametrize("value, kwargs, bounds", [
    (math.nan, {}, ""), (math.inf, {}, ""), (-0.1, {"low": 0.0}, " >= 0"),
    (0.0, {"low": 0.0, "low_open": True}, " > 0"), (1.0, {"low": 0.0, "high": 1.0, "high_open": True}, " >= 0, < 1"),
    (1.5, {"high": 1.0}, " <= 1"),
])
def test_check_real_range_messages(value, kwargs, bounds):
    with pytest.raises(ValueError, match=f"^x: expected a finite number{bounds}, got {value!r}$"):
        check_real(value, "x", **kwargs)


def test_check_real_bounds_are_inclusive_unless_open():
    assert check_real(0.0, "x", 0.0) == 0.0
    assert check_real(1.0, "x", 0.0, 1.0) == 1.0
    assert check_real(0.999, "x", 0.0, 1.0, high_open=True) == 0.999


def test_check_choice_type_before_membership():
    assert check_choice("relu", "nonlinearity", ("tanh", "relu")) == "relu"
    assert check_choice(None, "activation", (None, "relu")) is None
    with pytest.raises(TypeError, match=r"^nonlinearity: expected one of 'tanh', 'relu', got \['tanh'\] \(list\)$"):
        check_choice(["tanh"], "nonlinearity", ("tanh", "relu"))  # unhashable: named, not "unhashable type"
    with pytest.raises(ValueError, match=r"^nonlinearity: expected one of 'tanh', 'relu', got 'sigmoid'$"):
        check_choice("sigmoid", "nonlinearity", ("tanh", "relu"))


def test_check_bool_and_check_seed():
    assert check_bool(np.bool_(True), "flag") is True
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="^flag: expected a bool"):
            check_bool(bad, "flag")
    rng = np.random.default_rng(0)
    assert check_seed(None, "rng") is None and check_seed(rng, "rng") is rng and check_seed(np.int32(7), "rng") == 7
    with pytest.raises(TypeError, match="^rng: expected None, an int seed"):
        check_seed(1.5, "rng")
    with pytest.raises(ValueError, match="^rng: expected a non-negative seed, got -1$"):
        check_seed(-1, "rng")


def test_check_path():
    assert check_path("a/b") == "a/b" and check_path(b"a") == b"a"
    with pytest.raises(TypeError, match=r"^path: expected a str or os.PathLike file path, got 5 \(int\)$"):
        check_path(5)


# ---- arrays ----------------------------------------------------------------------------------------------------

def test_sparse_hint_names_the_argument_without_its_prefix():
    e = not_an_array(_Sparse(), "Linear: x")
    assert isinstance(e, TypeError)
    assert str(e) == "Linear: x: sparse input is not supported; convert with x.toarray(), got a _Sparse"


def test_check_output():
    out = np.zeros((2, 3), np.float32)
    assert check_output(out, "out", (2, 3), np.dtype(np.float32), "the input's") is out
    cases = [([0.0], TypeError, "expected a numpy.ndarray or None, got list"),
             (np.zeros((2, 3)), TypeError, r"expected dtype float32 \(the input's\), got float64"),
             (np.zeros((3, 2), np.float32), ValueError, r"expected shape \(2, 3\), got \(3, 2\)"),
             (np.zeros((3, 2), np.float32).T, ValueError, "expected a C-contiguous array")]
    ro = np.zeros((2, 3), np.float32)
    ro.flags.writeable = False
    cases.append((ro, ValueError, "expected a writable array"))
    for bad, exc, match in cases:
        with pytest.raises(exc, match="^out: " + match):
            check_output(bad, "out", (2, 3), np.dtype(np.float32), "the input's")


def test_check_nbytes_refuses_what_no_process_can_address():
    check_nbytes((2**22, 2**22), np.float64, "x")  # 2**47 bytes: the limit itself
    with pytest.raises(ValueError, match=r"^x: the output of shape \(4194304, 4194305\) \(float64\)"):
        check_nbytes((2**22, 2**22 + 1), np.float64, "x")


# ---- layers validate once, then call the unchecked kernels --------------------------------------------------

PUBLIC = ["linear_forward", "linear_backward", "bias_grad", "gemm", "gemm_batched", "gemm_batched_sum",
          "im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward",
          "avg_pool2d_backward", "sigmoid", "tanh", "relu", "elu", "sigmoid_backward", "tanh_backward",
          "relu_backward", "elu_backward", "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
          "gru_forward", "gru_backward"]


def _layers():
    rng = 0
    return [(nn.Linear(5, 3, rng=rng), (4, 5)), (nn.Conv2d(2, 3, 3, padding=1, rng=rng), (2, 2, 6, 6)),
            (nn.MaxPool2d(2), (2, 3, 6, 6)), (nn.AvgPool2d(2), (2, 3, 6, 6)), (nn.Sigmoid(), (3, 4)),
            (nn.Tanh(), (3, 4)), (nn.ReLU(), (3, 4)), (nn.ELU(alpha=0.5), (3, 4)),
            (nn.RNN(3, 4, rng=rng), (2, 5, 3)), (nn.RNN(3, 4, nonlinearity="relu", rng=rng), (2, 5, 3)),
            (nn.LSTM(3, 4, num_layers=2, rng=rng), (2, 5, 3)), (nn.GRU(3, 4, batch_first=True, rng=rng), (2, 5, 3))]


def _run(layer, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    out = layer(x)
    out = out[0] if isinstance(out, tuple) else out
    dx = layer.backward(np.ones_like(out))
    return out, dx, [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize("layer, shape", _layers(), ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "")
def test_layers_do_not_call_the_validating_kernel_wrappers(monkeypatch, layer, shape):
    """Every public wrapper is replaced by one that fails: forward and backward still run, unchanged."""
    want = _run(layer, shape)
    layer.zero_grad()
    import cnn_core.kernels.activations as act, cnn_core.kernels.batched_gemm as bg, cnn_core.kernels.conv as conv
    import cnn_core.kernels.dense as dense, cnn_core.kernels.gemm as gemm, cnn_core.kernels.pooling as pool
    import cnn_core.nn.activation as nn_act, cnn_core.nn.conv as nn_conv, cnn_core.nn.linear as nn_linear
    import cnn_core.nn.pooling as nn_pool, cnn_core.nn.rnn as nn_rnn, cnn_core.kernels.recurrent as rec

    def refuse(*args, **kwargs):
        raise AssertionError("a layer called a public (validating) kernel wrapper")
    # where a layer could reach a wrapper: the kernel modules, and the names a layer module imported
    for module in (kernels, act, bg, conv, dense, gemm, pool, rec, nn_act, nn_conv, nn_linear, nn_pool, nn_rnn):
        for name in PUBLIC:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)
    got = _run(layer, shape)
    for a, b in zip(want[:2], got[:2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(want[2], got[2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layer, shape", _layers(), ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "")
def test_layers_still_refuse_bad_input_at_their_boundary(layer, shape):
    # the layers are float32; those without parameters take either float dtype (issue 11), not integers
    x = np.zeros(shape, np.float64 if layer.parameters() else np.int64)
    with pytest.raises(TypeError, match=f"^{type(layer).__name__}: [xz]: expected dtype float32"):
        layer(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, ">f4", ">f8", np.float16])
@pytest.mark.parametrize("n", [1, 17, 1000, 3 * 2 ** 15 + 5], ids=["1", "17", "1000", "team"])
def test_all_finite_and_check_finite_agree_with_numpy(dtype, n, simd, num_threads, monkeypatch):
    """_validation.all_finite, the one test behind check_finite: the compiled scan (cnn_core/_finite.pyx) for
    C-contiguous native float32/float64 at every SIMD level, on one thread and split over a team, NumPy's
    test for strided views, other byte orders and other dtypes; a NaN or an infinity at the first, a middle
    and the last element is found, and check_finite names the argument."""
    from cnn_core import _finite, _validation
    from cnn_core._validation import NonFiniteError, all_finite, check_finite

    compiled = []
    real = _finite.all_finite
    monkeypatch.setattr(_finite, "all_finite", lambda arrays: compiled.append(1) or real(arrays))
    native = np.dtype(dtype) in _validation.FLOAT_DTYPES
    x = np.random.default_rng(n).standard_normal((n, 3)).astype(dtype)
    for threads in (1, 2):
        num_threads(threads)
        for a in (x, x[:, ::2]):
            del compiled[:]
            assert all_finite(a)
            check_finite(a, "X")
            for pos in (0, a.size // 2, a.size - 1):
                for bad in (np.nan, np.inf, -np.inf):
                    b = a.copy() if a.flags.c_contiguous else a
                    keep = b.flat[pos]
                    b.flat[pos] = bad
                    assert not all_finite(b), (threads, pos, bad)
                    with pytest.raises(NonFiniteError, match="X: expected finite values"):
                        check_finite(b, "X")
                    b.flat[pos] = keep
            assert bool(compiled) == (native and a.flags.c_contiguous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_scan_at_every_start_in_a_cache_line(dtype, simd):
    """src_c/finite.c's loops read a head up to the first 64-byte boundary, blocks of 256 bytes from there
    and a tail: arrays starting at every element of a line, of lengths around the block, with one NaN or
    infinity at each place (head, first and last element of a block, tail); the largest finite values,
    subnormals and -0.0 are finite."""
    from cnn_core._finite import all_finite

    item = np.dtype(dtype).itemsize
    block = 256 // item
    info = np.finfo(dtype)
    edge = np.array([info.max, -info.max, info.smallest_subnormal, -info.smallest_subnormal, -0.0, 0.0], dtype)
    buf = np.empty(4 * block + 64, dtype)
    lead = (-buf.ctypes.data % 64) // item   # buf[lead] starts a line
    for start in range(64 // item):
        for n in (0, 1, 64 // item - 1, block - 1, block, block + 1, 2 * block + 5, 3 * block + 64 // item):
            a = buf[lead + start:lead + start + n]
            a[:] = np.resize(edge, n)
            assert all_finite([a]), (start, n)
            for pos in sorted({0, min(n - 1, 64 // item - start), min(n - 1, block), n // 2, max(n - 1, 0)}):
                if n == 0:
                    break
                for bad in (np.nan, np.inf, -np.inf):
                    keep = a[pos]
                    a[pos] = bad
                    assert not all_finite([a]), (start, n, pos, bad)
                    a[pos] = keep
