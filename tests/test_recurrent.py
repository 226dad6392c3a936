"""nn.RNN, nn.LSTM and nn.GRU against the NumPy oracle (tests/oracles_recurrent.py), finite differences, PyTorch
(when installed), their argument checks, LastStep inside Sequential, and save/load (old RNN files included)."""
import os

import numpy as np
import pytest
from oracles_recurrent import recurrent_ref

import cnn_core
from cnn_core import nn
from cnn_core.models import RNNClassifier

F32, F64 = np.float32, np.float64
CELLS = ["RNN", "LSTM", "GRU"]
DATA = os.path.join(os.path.dirname(__file__), "data")


def rand(*shape, seed=0, dtype=F64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def make(cell, d=3, h=4, layers=2, batch_first=False, dtype=F64, seed=0, **kw):
    return getattr(nn, cell)(d, h, num_layers=layers, batch_first=batch_first, dtype=dtype, rng=seed, **kw)


def x_shape(m, t_len, n):
    return (n, t_len, m.input_size) if m.batch_first else (t_len, n, m.input_size)


def initial_state(m, n, seed=1, dtype=F64):
    """A nonzero initial state in the module's form: h0, or (h0, c0) for the LSTM."""
    shape = (m.num_layers, n, m.hidden_size)
    h0 = rand(*shape, seed=seed, dtype=dtype)
    return (h0, rand(*shape, seed=seed + 1, dtype=dtype)) if isinstance(m, nn.LSTM) else h0


def states(s):
    return s if isinstance(s, tuple) else (s,)


# ---- forward against the oracle ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("t_len", [1, 5, 50])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_forward_matches_the_oracle(cell, t_len, layers, batch_first, dtype):
    m = make(cell, 5, 6, layers, batch_first, dtype, seed=t_len)
    x = rand(*x_shape(m, t_len, 3), seed=2, dtype=dtype)
    state = initial_state(m, 3, dtype=dtype)
    out, final = m(x, state)
    ref_out, ref_final = recurrent_ref(m, x, state)
    # float64: rounding only. float32: each step rounds its (D + H)-term sums and gate functions at 2**-24
    # relative; the states are bounded by 1 (tanh, sigmoid) and the recurrence is contracting at this init
    # (|W| <= 1/sqrt(H)), so the error stays at a few float32 ulps of values of order 1 whatever T is.
    tol = 1e-12 if dtype == F64 else 2e-6
    assert out.dtype == dtype and out.shape == ref_out.shape
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    for got, ref in zip(states(final), states(ref_final)):
        assert got.shape == (layers, 3, 6) and got.dtype == dtype
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_without_bias_and_from_a_zero_state(cell):
    m = make(cell, bias=False)
    assert not any("bias" in name for name, _ in m.named_parameters())
    x = rand(4, 2, 3)
    out, final = m(x)
    ref_out, ref_final = recurrent_ref(m, x)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    for got, ref in zip(states(final), states(ref_final)):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_relu_rnn_matches_the_oracle():
    m = make("RNN", nonlinearity="relu", seed=3)
    x = rand(6, 2, 3)
    h0 = np.abs(rand(2, 2, 4, seed=4))
    out, h_n = m(x, h0)
    ref_out, ref_hn = recurrent_ref(m, x, h0)
    assert (out == 0).any()  # the relu clips somewhere: both branches are compared
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n, ref_hn, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_every_simd_path_gives_the_oracle(cell, simd):
    m = make(cell, 7, 9, 2, dtype=F32, seed=5)
    x = rand(*x_shape(m, 6, 5), seed=6, dtype=F32)
    state = initial_state(m, 5, dtype=F32)
    out, final = m(x, state)
    ref_out, ref_final = recurrent_ref(m, x, state)
    np.testing.assert_allclose(out, ref_out, rtol=2e-6, atol=2e-6)
    for got, ref in zip(states(final), states(ref_final)):
        np.testing.assert_allclose(got, ref, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_batch_first_is_a_transpose_of_the_same_computation(cell):
    tm, bf = make(cell, seed=7), make(cell, batch_first=True, seed=7)
    x = rand(5, 3, 3)
    state = initial_state(tm, 3)
    out_t, final_t = tm(x, state)
    out_b, final_b = bf(x.transpose(1, 0, 2).copy(), state)
    np.testing.assert_array_equal(out_t.transpose(1, 0, 2), out_b)
    for a, b in zip(states(final_t), states(final_b)):
        np.testing.assert_array_equal(a, b)
    d_out = rand(5, 3, 4, seed=8)
    dx_t = tm.backward(d_out)
    dx_b = bf.backward(d_out.transpose(1, 0, 2).copy())
    np.testing.assert_array_equal(dx_t.transpose(1, 0, 2), dx_b)
    for (name, p), q in zip(tm.named_parameters(), bf.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
    np.testing.assert_array_equal(tm.h0_grad, bf.h0_grad)


# ---- backward: finite differences -----------------------------------------------------------------------

class Flat(nn.Module):
    """The recurrent layer with its state as plain inputs and outputs, so that cnn_core.gradcheck checks
    dC/dx, dC/dh0 (h0_grad) and dC/dc0 (c0_grad) and every weight, with random weights on out, h_n and c_n."""

    def __init__(self, layer):
        super().__init__(layer.dtype)
        self.layer = layer

    def forward(self, x, *state):
        out, final = self.layer(x, state if len(state) > 1 else state[0])
        return (out,) + states(final)

    def backward(self, d_out, *d_state):
        dx = self.layer.backward(d_out, d_state if len(d_state) > 1 else d_state[0])
        grads = (self.layer.h0_grad,) + ((self.layer.c0_grad,) if isinstance(self.layer, nn.LSTM) else ())
        return (dx,) + grads


@pytest.mark.parametrize("cell", CELLS + ["RNN-relu"])
@pytest.mark.parametrize("t_len", [1, 5, 50])
@pytest.mark.parametrize("batch_first", [False, True])
def test_gradcheck_through_time_two_layers(cell, t_len, batch_first):
    kw = {"nonlinearity": "relu"} if cell == "RNN-relu" else {}
    m = make(cell.split("-")[0], 3, 4, 2, batch_first, seed=t_len, **kw)
    n = 2
    inputs = (rand(*x_shape(m, t_len, n), seed=3),) + states(initial_state(m, n))
    assert cnn_core.gradcheck(Flat(m), inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_without_bias(cell):
    m = make(cell, bias=False, seed=9)
    assert cnn_core.gradcheck(Flat(m), (rand(4, 2, 3),) + states(initial_state(m, 2)))


@pytest.mark.parametrize("cell", CELLS)
def test_d_state_none_is_a_zero_d_state(cell):
    m = make(cell, seed=10)
    x, d_out = rand(4, 2, 3), rand(4, 2, 4, seed=1)
    out, final = m(x)
    dx1 = m.backward(d_out)
    g1, h1 = [p.grad.copy() for p in m.parameters()], m.h0_grad
    m.zero_grad()
    zeros = tuple(np.zeros_like(s) for s in states(final))
    dx2 = m.backward(d_out, zeros if len(zeros) > 1 else zeros[0])
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(h1, m.h0_grad)
    for a, p in zip(g1, m.parameters()):
        np.testing.assert_array_equal(a, p.grad)
    if cell == "LSTM":  # either half of the LSTM's d_state may be None
        m.zero_grad()
        np.testing.assert_array_equal(m.backward(d_out, (None, zeros[1])), dx1)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_accumulate_and_input_grad_off_skips_only_dx(cell):
    m = make(cell, seed=11)
    x, d_out = rand(3, 2, 3), rand(3, 2, 4, seed=1)
    m(x)
    dx = m.backward(d_out)
    once = [p.grad.copy() for p in m.parameters()]
    m.input_grad = False
    m(x)
    assert m.backward(d_out) is None
    for a, p in zip(once, m.parameters()):
        np.testing.assert_allclose(p.grad, 2 * a, rtol=1e-14, atol=1e-15)
    assert dx.shape == x.shape


# ---- PyTorch -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_matches_torch(cell, batch_first, bias, dtype):
    torch = pytest.importorskip("torch")
    m = make(cell, 3, 5, 2, batch_first, dtype, seed=12, bias=bias)
    ref = getattr(torch.nn, cell)(3, 5, num_layers=2, bias=bias, batch_first=batch_first)
    ref = ref.double() if dtype == F64 else ref.float()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(torch.from_numpy(getattr(m, name).data))
    assert sorted(n for n, _ in ref.named_parameters()) == sorted(n for n, _ in m.named_parameters())
    x = rand(*x_shape(m, 7, 4), seed=13, dtype=dtype)
    state = initial_state(m, 4, dtype=dtype)
    xt = torch.tensor(x, requires_grad=True)
    st = tuple(torch.tensor(s, requires_grad=True) for s in states(state))
    out_t, final_t = ref(xt, st if cell == "LSTM" else st[0])
    out, final = m(x, state)
    tol = 1e-12 if dtype == F64 else 1e-5
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=tol, atol=tol)
    for a, b in zip(states(final), states(final_t)):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=tol, atol=tol)
    d_out = rand(*out.shape, seed=14, dtype=dtype)
    d_fin = tuple(rand(*s.shape, seed=15 + i, dtype=dtype) for i, s in enumerate(states(final)))
    loss = (out_t * torch.from_numpy(d_out)).sum() + sum((f * torch.from_numpy(d)).sum()
                                                          for f, d in zip(states(final_t), d_fin))
    loss.backward()
    dx = m.backward(d_out, d_fin if cell == "LSTM" else d_fin[0])
    # float32: sums of T*N products of order 1 (the weight gradients) keep ~1e-6 relative
    gtol = 1e-12 if dtype == F64 else 2e-5
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=gtol, atol=gtol)
    np.testing.assert_allclose(m.h0_grad, st[0].grad.numpy(), rtol=gtol, atol=gtol)
    if cell == "LSTM":
        np.testing.assert_allclose(m.c0_grad, st[1].grad.numpy(), rtol=gtol, atol=gtol)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(getattr(m, name).grad, p.grad.numpy(), rtol=gtol, atol=gtol, err_msg=name)


# ---- construction and arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("cell, gates", [("RNN", 1), ("LSTM", 4), ("GRU", 3)])
def test_parameters_follow_pytorch_names_shapes_and_init(cell, gates):
    m = make(cell, 3, 8, 2, dtype=F32, seed=0)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [
        ("weight_ih_l0", (gates * 8, 3)), ("weight_hh_l0", (gates * 8, 8)), ("bias_ih_l0", (gates * 8,)),
        ("bias_hh_l0", (gates * 8,)), ("weight_ih_l1", (gates * 8, 8)), ("weight_hh_l1", (gates * 8, 8)),
        ("bias_ih_l1", (gates * 8,)), ("bias_hh_l1", (gates * 8,))]
    assert type(m).parameter_shapes(**m.get_config()) == {n: p.shape for n, p in m.named_parameters()}
    k = 1 / np.sqrt(8)
    for p in m.parameters():
        assert np.abs(p.data).max() <= k and np.abs(p.data).max() > 0.6 * k
    # PyTorch's draw: every parameter U(-k, k) in this order, from the seeded generator
    rng = np.random.default_rng(0)
    for p in m.parameters():
        np.testing.assert_array_equal(p.data, rng.uniform(-k, k, p.shape).astype(F32))
    again = make(cell, 3, 8, 2, dtype=F32, seed=0)
    for p, q in zip(m.parameters(), again.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kwargs, exc, name", [
    ({"input_size": 0}, ValueError, "input_size"), ({"hidden_size": -1}, ValueError, "hidden_size"),
    ({"num_layers": 0}, ValueError, "num_layers"), ({"init": "xavier"}, ValueError, "init"),
    ({"bias": 1}, TypeError, "bias"), ({"batch_first": "yes"}, TypeError, "batch_first"),
    ({"hidden_size": 2.5}, TypeError, "hidden_size"), ({"num_layers": 10 ** 9}, ValueError, "num_layers"),
    ({"hidden_size": 2 ** 30}, ValueError, "hidden_size"),
])
def test_bad_arguments_name_the_argument(cell, kwargs, exc, name):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(exc, match=name):
        getattr(nn, cell)(**args)
    if kwargs.get("hidden_size") == 2 ** 30 or name in ("init", "batch_first"):
        return  # parameter_shapes allocates nothing (load compares it with the file's arrays) and reads only sizes
    with pytest.raises(exc, match=name):  # what cnn_core.load asks before building anything
        getattr(nn, cell).parameter_shapes(**args)


def test_rnn_nonlinearity_is_checked():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="nonlinearity"):
        nn.RNN(3, 4, 1, ["tanh"])


@pytest.mark.parametrize("cell", CELLS)
def test_bad_inputs_and_states_are_refused_by_name(cell):
    m = make(cell, dtype=F32)
    x = np.ones((5, 2, 3), F32)
    with pytest.raises(ValueError, match=r"x: expected 3 features"):
        m(np.ones((5, 2, 4), F32))
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        m(np.ones((5, 2, 3)))
    with pytest.raises(ValueError, match="x: expected finite"):
        m(np.full((5, 2, 3), np.nan, F32))
    good = initial_state(m, 2, dtype=F32)
    if cell == "LSTM":
        with pytest.raises(TypeError, match="state: expected None or a tuple"):
            m(x, good[0])
        with pytest.raises(ValueError, match=r"c0: expected shape \(2, 2, 4\)"):
            m(x, (good[0], good[1][:1]))
        with pytest.raises(ValueError, match=r"h0: expected a 3-D array"):
            m(x, (good[0][0], good[1]))
    else:
        with pytest.raises(ValueError, match=r"h0: expected shape \(2, 2, 4\)"):
            m(x, good[:1])
    out, final = m(x, good)
    with pytest.raises(ValueError, match=r"d_out: expected shape \(5, 2, 4\)"):
        m.backward(np.ones((2, 5, 4), F32))
    with pytest.raises(ValueError, match="d_hn"):
        m.backward(np.ones_like(out), (np.ones((1, 2, 4), F32), None) if cell == "LSTM" else np.ones((1, 2, 4), F32))
    if cell == "LSTM":
        with pytest.raises(ValueError, match="d_cn"):
            m.backward(np.ones_like(out), (None, np.ones((2, 2, 5), F32)))
        with pytest.raises(TypeError, match="d_state"):
            m.backward(np.ones_like(out), np.ones((2, 2, 4), F32))


@pytest.mark.parametrize("cell", CELLS)
def test_eval_mode_keeps_no_cache_and_backward_needs_forward(cell):
    m = make(cell, dtype=F32)
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(np.ones((5, 2, 4), F32))
    m.eval()
    m(np.ones((5, 2, 3), F32))
    assert m._cache is None
    with pytest.raises(RuntimeError, match="eval mode"):
        m.backward(np.ones((5, 2, 4), F32))


@pytest.mark.parametrize("cell", CELLS)
def test_outputs_do_not_alias_the_cache(cell):
    """Changing out or h_n in place after forward changes no gradient (they are the caller's copies)."""
    m, ref = make(cell, seed=2), make(cell, seed=2)
    x, d_out = rand(4, 2, 3), rand(4, 2, 4, seed=1)
    out, final = m(x)
    out[...] = 7
    for s in states(final):
        s[...] = 7
    ref(x)
    np.testing.assert_array_equal(m.backward(d_out), ref.backward(d_out))
    for p, q in zip(m.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


# ---- inside Sequential, and the classifier -------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_laststep_makes_a_recurrent_layer_usable_in_sequential(cell, batch_first):
    rec = make(cell, 3, 4, 2, batch_first, seed=3)
    model = nn.Sequential(rec, nn.LastStep(batch_first=batch_first, dtype=F64), nn.Linear(4, 2, dtype=F64, rng=0))
    x = rand(*x_shape(rec, 6, 3), seed=4)
    out, final = rec(x)
    h_t = states(final)[0][-1]
    np.testing.assert_array_equal(out[:, -1] if batch_first else out[-1], h_t)
    np.testing.assert_allclose(model(x), h_t @ model[2].weight.data.T + model[2].bias.data, rtol=1e-13)
    assert cnn_core.gradcheck(model, x)
    cfg = nn.module_to_config(model)
    assert cfg["modules"][1] == {"type": "LastStep", "config": {"batch_first": batch_first, "dtype": "float64"}}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnn_classifier_cells(cell, tmp_path):
    model = RNNClassifier(4, 5, 3, dtype=F64, rng=0, cell=cell, num_layers=2)
    assert type(model.rnn).__name__ == cell.upper() and model.rnn.batch_first and model.rnn.num_layers == 2
    x = rand(2, 1, 6, 4)
    assert cnn_core.gradcheck(model, x)
    model.eval()
    path = str(tmp_path / "clf.npz")
    cnn_core.save(model, path)
    loaded = cnn_core.load(path).eval()
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="cell"):
        RNNClassifier(4, 5, 3, cell="transformer")
    if cell != "rnn":
        with pytest.raises(ValueError, match="nonlinearity"):
            RNNClassifier(4, 5, 3, nonlinearity="relu", cell=cell)


def test_rnn_classifier_passes_input_grad_to_its_recurrent_layer():
    model = RNNClassifier(4, 5, 3, rng=0, cell="lstm")
    model.input_grad = False
    assert model.rnn.input_grad is False
    model(np.ones((2, 3, 4), F32))
    assert model.backward(np.ones((2, 3), F32)) is None
    assert np.abs(model.rnn.weight_ih_l0.grad).sum() > 0


# ---- save / load ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_save_load_round_trip(cell, tmp_path):
    m = make(cell, 3, 4, 2, batch_first=True, dtype=F32, seed=5, bias=False)
    path = str(tmp_path / f"{cell}.npz")
    cnn_core.save(m, path)
    loaded = cnn_core.load(path)
    assert type(loaded) is type(m) and loaded.get_config() == m.get_config()
    for (n1, p), (n2, q) in zip(m.named_parameters(), loaded.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p.data, q.data)
    x = rand(2, 5, 3, dtype=F32)
    np.testing.assert_array_equal(loaded(x)[0], m(x)[0])


def test_old_rnn_files_load_with_their_outputs():
    """Files written by the RNN before issue 11 (one layer, batch first, parameters weight_ih ...), saved by
    that code with the outputs it computed (tests/data/*_v1*.npz): they load into the new API and compute
    what they did. Not bit for bit: the recurrent product now runs on the GEMM's NT kernel, which sums in
    another order than the packed GEMM the old layer called, so float32 results move by a few ulps (values
    of order 0.1-1: 1e-6 absolute) and float64 ones by ~1e-16."""
    ref = np.load(os.path.join(DATA, "rnn_v1_outputs.npz"))
    f32, f64 = {"rtol": 1e-5, "atol": 1e-6}, {"rtol": 1e-12, "atol": 1e-13}
    rnn = cnn_core.load(os.path.join(DATA, "rnn_v1.npz")).eval()
    assert isinstance(rnn, nn.RNN) and rnn.batch_first and rnn.num_layers == 1 and rnn.dtype == F32
    out, h_n = rnn(ref["x_rnn"])
    np.testing.assert_allclose(out, ref["out_rnn"], **f32)
    np.testing.assert_allclose(h_n[0], ref["hn_rnn"], **f32)
    seq = cnn_core.load(os.path.join(DATA, "rnn_v1_sequential.npz")).eval()
    assert seq[0].nonlinearity == "relu" and seq[0].dtype == F64 and seq[0].batch_first
    out, h_n = seq(ref["x_seq"])
    np.testing.assert_allclose(out, ref["out_seq"], **f64)
    np.testing.assert_allclose(h_n[0], ref["hn_seq"], **f64)
    clf = cnn_core.load(os.path.join(DATA, "rnn_classifier_v1.npz")).eval()
    assert [n for n, _ in clf.named_parameters()][:2] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]
    np.testing.assert_allclose(clf(ref["x_clf"]), ref["logits_clf"], **f32)
    # the weights themselves are the file's, bit for bit
    with np.load(os.path.join(DATA, "rnn_classifier_v1.npz")) as z:
        np.testing.assert_array_equal(clf.rnn.weight_hh_l0.data, z["param.rnn.weight_hh"])
        np.testing.assert_array_equal(clf.fc.weight.data, z["param.fc.weight"])


def test_an_old_name_beside_its_new_name_is_not_renamed(tmp_path):
    """Only a file that lacks the new name has its old one translated: a file holding both is refused as
    holding an unexpected parameter, not silently merged."""
    m = make("RNN", layers=1, dtype=F32)
    path = str(tmp_path / "both.npz")
    cnn_core.save(m, path)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["param.weight_ih"] = arrays["param.weight_ih_l0"]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="weight_ih"):
        cnn_core.load(path)


# ---- init and learning ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_normal_init_is_the_decks(cell):
    m = make(cell, 50, 200, 2, dtype=F64, seed=1, init="normal")
    for name, p in m.named_parameters():
        fan_in = 50 if name == "weight_ih_l0" else 200
        want = 1.0 if name.startswith("bias") else 1 / np.sqrt(fan_in)
        assert abs(p.data.std() / want - 1) < 0.1, name
        assert abs(p.data.mean()) < 0.1 * want, name


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_classifier_learns_a_sequence_task(cell):
    """test_models' task for the Elman RNN (which of two channels carried the larger total over 8 steps: memory
    across time steps), learned by the gated cells as well."""
    from cnn_core import optim
    from cnn_core.training import evaluate, fit
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 8, 2)).astype(F32)
    y = (X[:, :, 0].sum(1) > X[:, :, 1].sum(1)).astype(np.int64)
    model = RNNClassifier(2, 16, 2, rng=0, cell=cell)
    loss = nn.CrossEntropyLoss()
    fit(model, loss, optim.Adam(model.parameters(), lr=1e-2), X[:384], y[:384], epochs=30, batch_size=32, seed=0)
    assert evaluate(model, loss, X[384:], y[384:]).accuracy >= 0.9


# ---- threads -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_thread_counts_and_concurrent_python_threads_agree(cell, num_threads):
    """The time loops release the GIL and share no state: one and two OpenMP threads agree to rounding (the
    GEMM may split its sums), and layers run at once from two Python threads give each its own result."""
    import threading

    def run(seed):
        m = make(cell, 6, 33, 2, dtype=F64, seed=seed)
        x = rand(9, 5, 6, seed=seed)
        out, _ = m(x)
        dx = m.backward(rand(*out.shape, seed=seed + 1))
        return out, dx, [p.grad.copy() for p in m.parameters()]

    num_threads(1)
    want = [run(s) for s in (0, 1)]
    num_threads(2)
    for got, ref in zip([run(s) for s in (0, 1)], want):
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-13, atol=1e-14)
    results = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, run(s))) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in (0, 1):
        for a, b in zip(results[s][:2], want[s][:2]):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
        for a, b in zip(results[s][2], want[s][2]):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
