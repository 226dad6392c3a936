"""Bad input to every constructor and call raises a clear ValueError/TypeError/RuntimeError naming the argument."""
import numpy as np
import pytest

from cnn_core import nn

F32 = np.float32


def x4(n=2, c=1, h=6, w=6, dtype=F32):
    return np.random.default_rng(0).standard_normal((n, c, h, w)).astype(dtype)


# ---- constructors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.Linear(-1, 3), ValueError, "in_features"),
    (lambda: nn.Linear(3, 0), ValueError, "out_features"),
    (lambda: nn.Linear(2.5, 3), TypeError, "in_features"),
    (lambda: nn.Linear(3, 2, dtype=np.int32), TypeError, "dtype"),
    (lambda: nn.Linear(3, 2, dtype="float16"), TypeError, "dtype"),
    (lambda: nn.Conv2d(0, 3, 3), ValueError, "in_channels"),
    (lambda: nn.Conv2d(1, -2, 3), ValueError, "out_channels"),
    (lambda: nn.Conv2d(1, 2, 0), ValueError, "kernel_size"),
    (lambda: nn.Conv2d(1, 2, (3, 3, 3)), TypeError, "kernel_size"),
    (lambda: nn.Conv2d(1, 2, 3, stride=0), ValueError, "stride"),
    (lambda: nn.Conv2d(1, 2, 3, padding=-1), ValueError, "padding"),
    (lambda: nn.MaxPool2d(0), ValueError, "kernel_size"),
    (lambda: nn.MaxPool2d(2, stride=-1), ValueError, "stride"),
    (lambda: nn.AvgPool2d(2.0), TypeError, "kernel_size"),
    (lambda: nn.ELU(alpha=0.0), ValueError, "alpha"),
    (lambda: nn.ELU(alpha=-1.0), ValueError, "alpha"),
    (lambda: nn.RNN(0, 4), ValueError, "input_size"),
    (lambda: nn.RNN(3, -4), ValueError, "hidden_size"),
    (lambda: nn.RNN(3, 4, nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    (lambda: nn.Linear(3, 2, rng="abc"), TypeError, "rng"),
])
def test_bad_constructor_argument(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# ---- forward -----------------------------------------------------------------------------------------------
def test_linear_wrong_ndim():
    with pytest.raises(ValueError, match=r"x: expected a 2-D array"):
        nn.Linear(4, 2)(np.ones((2, 2, 2), F32))


def test_linear_features_mismatch():
    with pytest.raises(ValueError, match=r"expected 4 features \(in_features\)"):
        nn.Linear(4, 2)(np.ones((3, 5), F32))


def test_linear_dtype_mismatch_is_not_silently_cast():
    with pytest.raises(TypeError, match="expected dtype float32"):
        nn.Linear(4, 2)(np.ones((3, 4), np.float64))


def test_linear_integer_input():
    with pytest.raises(TypeError, match="int64"):
        nn.Linear(4, 2)(np.ones((3, 4), np.int64))


def test_linear_not_an_array():
    with pytest.raises(TypeError, match="numpy.ndarray"):
        nn.Linear(2, 2)([[1.0, 2.0]])


def test_linear_nan_input():
    x = np.ones((3, 4), F32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        nn.Linear(4, 2)(x)


def test_inf_input():
    x = np.ones((3, 4), F32)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        nn.ReLU()(x)


def test_large_finite_float32_input_is_accepted():
    # the sum overflows to inf in float32, but every entry is finite: no error
    x = np.full((4, 4), 3e38, F32)
    assert nn.ReLU()(x).max() == F32(3e38)


def test_conv_wrong_ndim():
    with pytest.raises(ValueError, match=r"4-D array \(N, C, H, W\)"):
        nn.Conv2d(1, 2, 3)(np.ones((1, 6, 6), F32))


def test_conv_channels_mismatch():
    with pytest.raises(ValueError, match=r"expected 3 channels \(in_channels\)"):
        nn.Conv2d(3, 2, 3)(x4(c=1))


def test_conv_kernel_larger_than_input():
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(1, 2, 7)(x4(h=6, w=6))


def test_conv_dtype_mismatch():
    with pytest.raises(TypeError, match="expected dtype float64"):
        nn.Conv2d(1, 2, 3, dtype=np.float64)(x4())


def test_conv_nan_input():
    x = x4()
    x[0, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        nn.Conv2d(1, 2, 3)(x)


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
def test_pool_window_larger_than_input(cls):
    with pytest.raises(ValueError, match="window"):
        cls(4)(x4(h=3, w=8))


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
def test_pool_wrong_ndim(cls):
    with pytest.raises(ValueError, match="4-D"):
        cls(2)(np.ones((4, 4), F32))


def test_flatten_one_dimensional_input():
    with pytest.raises(ValueError, match="at least 2"):
        nn.Flatten()(np.ones(4, F32))


@pytest.mark.parametrize("act", [nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ELU])
def test_activation_takes_either_float_dtype_but_not_integers(act):
    """Issue 11: parameter-free layers take whichever float dtype they are given, as PyTorch's."""
    assert act()(np.ones(3, np.float64)).dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        act()(np.ones(3, np.int64))


def test_rnn_wrong_ndim():
    with pytest.raises(ValueError, match=r"3-D array \(time, batch, input_size\)"):
        nn.RNN(3, 4)(np.ones((2, 3), F32))
    with pytest.raises(ValueError, match=r"3-D array \(batch, time, input_size\)"):
        nn.RNN(3, 4, batch_first=True)(np.ones((2, 3), F32))


def test_rnn_input_size_mismatch():
    with pytest.raises(ValueError, match=r"expected 3 features \(input_size\)"):
        nn.RNN(3, 4)(np.ones((2, 5, 2), F32))


def test_rnn_h0_shape_mismatch():
    with pytest.raises(ValueError, match=r"h0: expected shape \(1, 2, 4\)"):
        nn.RNN(3, 4, batch_first=True)(np.ones((2, 5, 3), F32), np.zeros((1, 2, 5), F32))
    with pytest.raises(ValueError, match=r"h0: expected shape \(1, 5, 4\)"):   # time-major: N = 5
        nn.RNN(3, 4)(np.ones((2, 5, 3), F32), np.zeros((1, 2, 4), F32))


def test_rnn_h0_dtype_mismatch():
    with pytest.raises(TypeError, match="h0"):
        nn.RNN(3, 4, batch_first=True)(np.ones((2, 5, 3), F32), np.zeros((1, 2, 4)))


def test_rnn_nan_h0():
    h0 = np.zeros((1, 2, 4), F32)
    h0[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="h0: expected finite values"):
        nn.RNN(3, 4, batch_first=True)(np.ones((2, 5, 3), F32), h0)


def test_rnn_zero_time_steps():
    with pytest.raises(ValueError, match="time step"):
        nn.RNN(3, 4, batch_first=True)(np.ones((2, 0, 3), F32))
    with pytest.raises(ValueError, match="time step"):
        nn.RNN(3, 4)(np.ones((0, 2, 3), F32))


# ---- backward ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,dy", [
    (nn.Linear(3, 2), np.ones((1, 2), F32)), (nn.Conv2d(1, 1, 3), np.ones((1, 1, 1, 1), F32)),
    (nn.MaxPool2d(2), np.ones((1, 1, 1, 1), F32)), (nn.AvgPool2d(2), np.ones((1, 1, 1, 1), F32)),
    (nn.Flatten(), np.ones((1, 4), F32)), (nn.ReLU(), np.ones(3, F32)), (nn.RNN(2, 2), np.ones((1, 1, 2), F32)),
    (nn.Sequential(nn.Linear(3, 2)), np.ones((1, 2), F32)),
])
def test_backward_before_forward(layer, dy):
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(dy)


def test_backward_wrong_shape():
    m = nn.Conv2d(1, 2, 3)
    m(x4())
    with pytest.raises(ValueError, match=r"delta: expected shape \(2, 2, 4, 4\)"):
        m.backward(np.ones((2, 2, 4, 5), F32))


def test_backward_wrong_dtype():
    m = nn.Linear(4, 2)
    m(np.ones((3, 4), F32))
    with pytest.raises(TypeError, match="delta: expected dtype float32"):
        m.backward(np.ones((3, 2)))


def test_maxpool_backward_wrong_shape():
    m = nn.MaxPool2d(2)
    m(x4())
    with pytest.raises(ValueError, match="delta"):
        m.backward(np.ones((2, 1, 2, 3), F32))


def test_rnn_d_hn_wrong_shape():
    m = nn.RNN(3, 4)
    out, _ = m(np.ones((2, 5, 3), F32))
    with pytest.raises(ValueError, match=r"d_hn: expected shape \(1, 5, 4\)"):
        m.backward(np.ones_like(out), np.ones((5, 4), F32))


# ---- losses --------------------------------------------------------------------------------------------
def logits(n=4, k=3):
    return np.random.default_rng(0).standard_normal((n, k)).astype(F32)


def test_cross_entropy_label_too_large():
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        nn.CrossEntropyLoss()(logits(), np.array([0, 1, 3, 2]))


def test_cross_entropy_negative_label():
    with pytest.raises(ValueError, match="labels"):
        nn.CrossEntropyLoss()(logits(), np.array([0, -1, 2, 2]))


def test_cross_entropy_float_labels():
    with pytest.raises(TypeError, match="integer"):
        nn.CrossEntropyLoss()(logits(), np.array([0.0, 1.0, 2.0, 1.0]))


def test_cross_entropy_label_count_mismatch():
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        nn.CrossEntropyLoss()(logits(), np.array([0, 1, 2]))


def test_cross_entropy_pred_wrong_ndim():
    with pytest.raises(ValueError, match="2-D"):
        nn.CrossEntropyLoss()(np.ones(3, F32), np.array([0, 1, 2]))


def test_cross_entropy_nan_pred():
    z = logits()
    z[0, 0] = np.nan
    with pytest.raises(ValueError, match="pred"):
        nn.CrossEntropyLoss()(z, np.array([0, 1, 2, 1]))


def test_mse_target_shape_mismatch():
    with pytest.raises(ValueError, match="target: expected shape"):
        nn.MSELoss()(logits(), np.ones((4, 2), F32))


def test_mse_target_dtype_mismatch():
    with pytest.raises(TypeError, match="target: expected dtype float32"):
        nn.MSELoss()(logits(), np.ones((4, 3)))


def test_bce_pred_outside_unit_interval():
    with pytest.raises(ValueError, match="probabilities"):
        nn.BCELoss()(np.array([0.5, 1.5], F32), np.array([0, 1], F32))


def test_bce_target_outside_unit_interval():
    with pytest.raises(ValueError, match="target"):
        nn.BCELoss()(np.array([0.5, 0.5], F32), np.array([0, 2], F32))


def test_quadratic_label_out_of_range():
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        nn.QuadraticLoss()(logits(), np.array([0, 1, 5, 2]))


def test_quadratic_target_shape_mismatch():
    with pytest.raises(ValueError, match="target"):
        nn.QuadraticLoss()(logits(), np.ones((4, 4), F32))


def test_quadratic_labels_need_2d_pred():
    with pytest.raises(ValueError, match="2-D"):
        nn.QuadraticLoss()(np.ones((2, 3, 3), F32), np.array([0, 1]))


def test_loss_pred_not_array():
    with pytest.raises(TypeError, match="pred"):
        nn.MSELoss()([1.0], np.ones(1, F32))
