"""Module framework: registration, parameters, modes, state_dict, dtype casting, config round trip, seeding."""
import json

import numpy as np
import pytest

import cnn_core
from cnn_core import nn


def small_net(dtype=np.float32, rng=0):
    return nn.Sequential(nn.Conv2d(1, 2, 3, dtype=dtype, rng=rng), nn.ReLU(dtype=dtype), nn.MaxPool2d(2, dtype=dtype),
                         nn.Flatten(dtype=dtype), nn.Linear(8, 3, dtype=dtype, rng=rng))


def test_parameter_grad_starts_at_zero_with_same_shape_and_dtype():
    p = nn.Parameter(np.ones((2, 3), dtype=np.float64))
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float64 and not p.grad.any()


def test_named_parameters_use_dotted_names():
    names = [n for n, _ in small_net().named_parameters()]
    assert names == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert len(small_net().parameters()) == 4


def test_parameters_are_named_parameters_in_order():
    # parameters() walks the modules without building names (zero_grad calls it every step): the same
    # objects in the same order, with a module's own parameters before its children's, nested containers
    # and a recurrent layer included.
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.ones(3, np.float32))
            self.inner = nn.Sequential(nn.Linear(3, 3, rng=0), nn.Sequential(nn.Linear(3, 2, rng=1)))

    for model in (small_net(), Scaled(), nn.Sequential(Scaled(), nn.LSTM(2, 4, num_layers=2, rng=0))):
        named = [p for _, p in model.named_parameters()]
        listed = model.parameters()
        assert len(named) > 2 and len(listed) == len(named) and all(a is b for a, b in zip(listed, named))


def test_linear_without_bias_registers_only_weight():
    m = nn.Linear(3, 2, bias=False)
    assert [n for n, _ in m.named_parameters()] == ["weight"] and m.bias is None


def test_custom_module_registers_by_attribute_and_round_trips_config():
    @nn.register_module
    class Affine2(nn.Module):
        def __init__(self, n, dtype=None):
            super().__init__(dtype)
            self.n = n
            self.inner = nn.Linear(n, n, dtype=dtype, rng=0)
            self.scale = nn.Parameter(np.ones(n, dtype=self.dtype))

        def forward(self, x):
            self._x = self.inner(x)
            return self._x * self.scale.data

        def backward(self, dy):
            self.scale.grad += (dy * self._x).sum(axis=0)
            return self.inner.backward(dy * self.scale.data)

        def get_config(self):
            return {"n": self.n, **super().get_config()}

    m = Affine2(3, dtype=np.float64)
    assert [n for n, _ in m.named_parameters()] == ["scale", "inner.weight", "inner.bias"]
    assert cnn_core.gradcheck(m, np.random.default_rng(0).standard_normal((2, 3)))
    m2 = nn.module_from_config(json.loads(json.dumps(nn.module_to_config(m))))
    assert type(m2) is Affine2 and m2.dtype == np.float64 and m2.n == 3


def test_module_without_super_init_gets_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = 1

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__"):
        Bad()


def test_unregistered_module_cannot_be_configured():
    class Unregistered(nn.Module):
        pass

    with pytest.raises(ValueError, match="register_module"):
        nn.module_to_config(Unregistered())


def test_unknown_type_in_config():
    with pytest.raises(ValueError, match="unknown module type"):
        nn.module_from_config({"type": "NoSuchLayer", "config": {}})


def test_zero_grad_clears_all():
    m = small_net(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    m.backward(np.ones_like(m(x)))
    assert any(p.grad.any() for p in m.parameters())
    m.zero_grad()
    assert not any(p.grad.any() for p in m.parameters())


@pytest.mark.parametrize("clear", ["module", "optimizer"])
def test_backward_after_zero_grad_equals_a_fresh_gradient_and_later_ones_add(clear):
    """zero_grad marks the gradients; a Linear's next backward writes them outright (beta = 0), any other
    reader or layer first sees zeros: the first backward gives a fresh model's gradient, a second one adds."""
    rng = np.random.default_rng(1)
    x, dys = rng.standard_normal((4, 1, 6, 6)), [rng.standard_normal((4, 3)) for _ in range(2)]
    m = small_net(np.float64)
    opt = cnn_core.optim.SGD(m.parameters(), lr=0.1)
    m(x)
    m.backward(np.ones((4, 3)))                                         # stale gradients, to be cleared
    held = m[4].weight.grad
    stale = held.copy()
    m.zero_grad() if clear == "module" else opt.zero_grad()
    fresh = []                                                          # each dy's gradients alone
    for dy in dys:
        m(x)
        m.backward(dy)
        one = small_net(np.float64)
        one(x)
        one.backward(dy)
        fresh.append([p.grad for p in one.parameters()])
        if len(fresh) == 1:
            for p, q in zip(m.parameters(), fresh[0]):
                np.testing.assert_array_equal(p.grad, q)
    # the accumulating GEMM adds the second product into the first block by block: rounding differs
    for p, q1, q2 in zip(m.parameters(), *fresh):
        np.testing.assert_allclose(p.grad, q1 + q2, rtol=1e-12, atol=1e-14)
    assert m[4].weight.grad is held and not np.array_equal(held, stale)  # the same array, rewritten
    m.zero_grad() if clear == "module" else opt.zero_grad()
    assert not any(p.grad.any() for p in m.parameters())


def test_eval_mode_keeps_no_cache_and_backward_raises():
    m = small_net()
    x = np.ones((2, 1, 6, 6), np.float32)
    m(x)
    m.eval()
    assert not m.training and all(not c.training for c in m)
    assert m[0]._cache is None and m[4]._a_prev is None
    y = m(x)
    assert m[0]._cache is None and m[1]._a is None
    with pytest.raises(RuntimeError, match="eval mode"):
        m.backward(np.ones_like(y))
    m.train()
    assert m.training and all(c.training for c in m)
    m.backward(np.ones_like(m(x)))


def test_eval_output_equals_train_output():
    m = small_net()
    x = np.random.default_rng(1).standard_normal((3, 1, 6, 6)).astype(np.float32)
    y_train = m(x)
    np.testing.assert_array_equal(m.eval()(x), y_train)


def test_state_dict_round_trip_is_a_copy_and_exact():
    a, b = small_net(rng=0), small_net(rng=1)
    sd = a.state_dict()
    sd["0.weight"][...] = 0  # a copy: a is untouched
    assert a[0].weight.data.any()
    sd = a.state_dict()
    w_obj = b[0].weight.data
    b.load_state_dict(sd)
    assert b[0].weight.data is w_obj  # loaded in place, so optimizers holding the arrays stay valid
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))


def test_load_state_dict_casts_to_module_dtype():
    a, b = small_net(np.float64), small_net(np.float32, rng=1)
    b.load_state_dict(a.state_dict())
    assert b[0].weight.data.dtype == np.float32
    np.testing.assert_array_equal(b[0].weight.data, a[0].weight.data.astype(np.float32))


def test_load_state_dict_missing_key():
    sd = small_net().state_dict()
    del sd["4.bias"]
    with pytest.raises(ValueError, match="4.bias"):
        small_net().load_state_dict(sd)


def test_load_state_dict_unexpected_key():
    sd = small_net().state_dict()
    sd["9.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="9.weight"):
        small_net().load_state_dict(sd)


def test_load_state_dict_wrong_shape():
    sd = small_net().state_dict()
    sd["4.weight"] = np.zeros((3, 9), np.float32)
    with pytest.raises(ValueError, match=r"4.weight.*\(3, 8\)"):
        small_net().load_state_dict(sd)


def test_load_state_dict_non_array():
    sd = small_net().state_dict()
    sd["4.bias"] = "zeros"
    with pytest.raises(TypeError, match="4.bias"):
        small_net().load_state_dict(sd)


def test_to_double_and_back_casts_parameters_and_grads_in_place():
    m = small_net()
    p0 = m[0].weight
    assert m.dtype == np.float32
    m.double()
    assert m.dtype == np.float64 and all(c.dtype == np.float64 for c in m)
    assert m[0].weight is p0 and p0.data.dtype == np.float64 and p0.grad.dtype == np.float64
    y = m(np.ones((1, 1, 6, 6)))
    assert y.dtype == np.float64
    m.float()
    assert p0.data.dtype == np.float32
    with pytest.raises(TypeError, match="dtype"):
        m.to(np.int32)


def test_config_round_trip_through_json():
    m = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2, init="normal"), nn.Tanh(), nn.AvgPool2d(2, 2),
                      nn.Conv2d(6, 16, (5, 3), stride=(1, 2), bias=False), nn.ELU(0.3), nn.MaxPool2d(2, 1),
                      nn.Flatten(), nn.Linear(16, 3), nn.Sigmoid())
    cfg = json.loads(json.dumps(nn.module_to_config(m)))
    m2 = nn.module_from_config(cfg)
    assert nn.module_to_config(m2) == cfg
    assert repr(m2) == repr(m)
    rnn = nn.RNN(3, 5, 2, "relu", dtype="float64")
    r2 = nn.module_from_config(json.loads(json.dumps(nn.module_to_config(rnn))))
    assert r2.get_config() == rnn.get_config() and r2.dtype == np.float64


def test_sequential_indexing_len_iteration():
    m = small_net()
    assert len(m) == 5 and isinstance(m[0], nn.Conv2d) and isinstance(m[-1], nn.Linear)
    assert [type(c).__name__ for c in m] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    head = m[3:]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[1] is m[4]


def test_sequential_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match="one dtype"):
        nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, dtype=np.float64))


def test_sequential_rejects_non_module():
    with pytest.raises(TypeError, match=r"modules\[1\]"):
        nn.Sequential(nn.Linear(2, 2), lambda x: x)


def test_manual_seed_makes_init_reproducible():
    cnn_core.manual_seed(123)
    a = small_net(rng=None)
    cnn_core.manual_seed(123)
    b = small_net(rng=None)
    c = small_net(rng=None)
    np.testing.assert_array_equal(a[0].weight.data, b[0].weight.data)
    assert not np.array_equal(b[0].weight.data, c[0].weight.data)


def test_rng_argument_int_and_generator():
    from cnn_core._random import get_rng
    np.testing.assert_array_equal(nn.Linear(4, 3, rng=7).weight.data, nn.Linear(4, 3, rng=7).weight.data)
    g = np.random.default_rng(5)
    assert get_rng(g) is g
    with pytest.raises(TypeError, match="rng"):
        get_rng("seed")
    with pytest.raises(TypeError, match="seed"):
        cnn_core.manual_seed(1.5)
    with pytest.raises(ValueError, match="seed"):
        cnn_core.manual_seed(-1)


def test_float32_and_float64_init_agree_up_to_rounding():
    a = nn.Linear(5, 4, rng=3)
    b = nn.Linear(5, 4, rng=3, dtype=np.float64)
    np.testing.assert_array_equal(a.weight.data, b.weight.data.astype(np.float32))


def test_rnn_eval_keeps_no_cache():
    m = nn.RNN(3, 4).eval()
    out, hn = m(np.ones((2, 5, 3), np.float32))
    assert m._cache is None
    with pytest.raises(RuntimeError, match="eval mode"):
        m.backward(np.ones_like(out))


def test_input_grad_off_skips_dx_and_keeps_parameter_grads():
    from cnn_core.models import lenet5
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 1, 28, 28))
    dy = rng.standard_normal((2, 10))
    grads = []
    for flag in (True, False):
        model = lenet5(dtype=np.float64, rng=0)
        model.input_grad = flag
        assert model.input_grad is flag and model[0].input_grad is flag
        model(x)
        dx = model.backward(dy)
        assert (dx is None) == (not flag)
        grads.append([p.grad.copy() for p in model.parameters()])
    for g_on, g_off in zip(*grads):
        np.testing.assert_array_equal(g_on, g_off)


def test_linear_input_grad_off_returns_none():
    lin = nn.Linear(3, 2, dtype=np.float64)
    lin.input_grad = False
    lin(np.ones((4, 3)))
    assert lin.backward(np.ones((4, 2))) is None
    np.testing.assert_array_equal(lin.weight.grad, np.full((2, 3), 4.0))


def test_fit_turns_input_grad_off_and_restores_it():
    seen = []

    class Spy(nn.Linear):
        def backward(self, delta):
            seen.append(self.input_grad)
            return super().backward(delta)

    model = nn.Sequential(Spy(4, 3), nn.ReLU(), nn.Linear(3, 2))
    X = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    cnn_core.fit(model, nn.CrossEntropyLoss(), cnn_core.optim.SGD(model.parameters(), lr=0.1), X,
                 np.arange(8) % 2, epochs=1, batch_size=4, seed=0)
    assert seen == [False, False]
    assert model.input_grad is True


NAN = np.array([[np.nan, 1.0]], np.float32)


def test_only_the_first_layer_of_a_sequential_screens_for_nan():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(ValueError, match="Linear: x: expected finite values"):
        model(NAN)
    with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
        nn.ReLU()(np.array([np.nan], np.float32))  # a layer used alone still screens


def test_a_layer_screens_alone_after_being_put_in_a_sequential():
    relu, lin = nn.ReLU(), nn.Linear(2, 2)
    nn.Sequential(nn.Linear(2, 2), relu, lin)
    with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
        relu(NAN)
    with pytest.raises(ValueError, match="Linear: x: expected finite values"):
        lin.forward(NAN)
    # ... and as the first layer of another model
    with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
        nn.Sequential(relu, nn.Linear(2, 2))(NAN)


def test_nesting_and_slicing_leave_the_original_model_screening():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.Tanh())
    outer = nn.Sequential(nn.Linear(2, 2), model)   # model now runs behind a layer
    tail = model[1:]                                # model[1] is first in the slice
    x = np.array([[0.5, -1.0]], np.float32)
    np.testing.assert_array_equal(outer(x), model(outer[0](x)))
    np.testing.assert_array_equal(model(x), tail(model[0](x)))
    with pytest.raises(ValueError, match="Linear: x: expected finite values"):
        model(NAN)
    with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
        tail(NAN)
    with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
        model[1](NAN)
    with pytest.raises(ValueError, match="Linear: x: expected finite values"):
        outer(NAN)


def test_nan_input_to_a_sequential_is_checked_once_at_the_boundary(monkeypatch):
    from cnn_core.nn import module
    calls = []
    real = module.check_finite
    monkeypatch.setattr(module, "check_finite", lambda x, what: (calls.append(what), real(x, what)))
    inner = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), inner, nn.Sigmoid())
    model(np.ones((4, 2), np.float32))
    assert calls == ["Linear: x"]
    calls.clear()
    inner(np.ones((4, 2), np.float32))   # entered directly, the nested model screens its own input
    assert calls == ["Linear: x"]
    calls.clear()
    with pytest.raises(ValueError, match="Linear: x: expected finite values"):
        model(NAN)
    assert calls == ["Linear: x"]


def test_screen_state_is_restored_after_an_error_inside_a_sequential():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(3, 2))   # the second layer's shape check fails
    with pytest.raises(ValueError, match="expected"):
        model(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
        nn.ReLU()(NAN)


def test_screen_is_per_thread():
    import threading
    entered, release = threading.Event(), threading.Event()

    class Blocking(nn.Module):
        def forward(self, x):
            entered.set()
            release.wait(10)
            return x

    model = nn.Sequential(nn.ReLU(), Blocking())
    t = threading.Thread(target=model, args=(np.ones((1, 2), np.float32),))
    t.start()
    try:
        assert entered.wait(10)
        # another thread is inside model's fed_by_a_layer block: this thread's callers are still screened
        with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
            nn.ReLU()(NAN)
    finally:
        release.set()
        t.join()


def test_batch_feed_skips_the_screen_and_keeps_only_the_named_batch():
    from cnn_core.nn.module import batch_feed, is_kept
    batch, other = np.ones((1, 2), np.float32), NAN.copy()
    fed = np.full((1, 2), np.nan, np.float32)   # a batch the caller says it screened: not screened again
    with batch_feed(kept=True, screened=True) as feed:
        feed(fed)
        nn.ReLU()(fed)
        assert is_kept(fed) and not is_kept(batch)
        with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
            nn.ReLU()(other)                      # any other array still is
        with batch_feed(kept=False, screened=False) as inner:
            inner(fed)
            assert not is_kept(fed)
            with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
                nn.ReLU()(fed)
        assert is_kept(fed)                       # the enclosing block's promises come back
        nn.ReLU()(fed)
    assert not is_kept(fed)
    with pytest.raises(ValueError, match="ReLU: z: expected finite values"):
        nn.ReLU()(fed)


# ---- issue 9: one home for saving and restoring each module's mode ---------------------------------------

@pytest.mark.parametrize("training", [True, False])
def test_temporary_mode_restores_every_module_even_after_an_error(training):
    from cnn_core.nn.module import temporary_mode
    inner = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model = nn.Sequential(nn.Linear(2, 2), inner, nn.Tanh())
    inner.eval()
    model[2].eval()
    before = [m.training for m in model.modules()]
    assert before == [True, True, False, False, False, False]
    with temporary_mode(model, training):
        assert all(m.training is training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    with pytest.raises(ZeroDivisionError):
        with temporary_mode(model, training):
            1 / 0
    assert [m.training for m in model.modules()] == before


# ---- Module._handout: arrays handed out in training, recycled once nobody else holds them ----------------

def test_handout_recycles_only_arrays_nobody_else_holds():
    m = nn.ReLU()
    a = m._handout("out", (3, 4), np.float32)
    b = m._handout("out", (3, 4), np.float32)
    assert b is not a                                  # a is still held here
    del a
    c = m._handout("out", (3, 4), np.float32)          # the first one is free again
    assert c is not b and c.shape == (3, 4) and c.dtype == np.float32
    view = c[1:]
    del c
    assert m._handout("out", (3, 4), np.float32) is not view.base   # a view keeps its base held
    mv = memoryview(b)
    del b
    assert m._handout("out", (3, 4), np.float32) is not mv.obj           # a buffer export too
    assert len(m._handouts["out"]) <= 2


def test_handout_takes_the_shape_and_dtype_asked_and_keeps_at_most_two():
    m = nn.ReLU()
    for shape, dtype in [((2, 3), np.float32), ((2, 3), np.float64), ((5,), np.int64), ((2, 3), np.float32)]:
        a = m._handout("out", shape, dtype)
        assert a.shape == shape and a.dtype == dtype
        assert len(m._handouts["out"]) <= 2
    held = [m._handout("out", (4,), np.float32) for _ in range(5)]    # all held: five distinct arrays
    assert len({id(h) for h in held}) == 5 and len(m._handouts["out"]) == 2


def test_handout_below_the_threshold_is_always_new(monkeypatch):
    from cnn_core.nn import module
    monkeypatch.setattr(module, "_HANDOUT_MIN_BYTES", 64 << 10)
    m = nn.ReLU()
    small = [m._handout("out", (64, 100), np.float32) for _ in range(2)]   # 25,600 bytes
    del small
    assert "_handouts" not in m.__dict__
    big = m._handout("out", (128, 128), np.float32)                        # 65,536 bytes: kept
    assert len(m._handouts["out"]) == 1 and m._handouts["out"][0] is big
    del big
    assert m._handout("out", (128, 128), np.float32) is m._handouts["out"][0]


def test_handout_in_eval_mode_is_always_new_and_eval_drops_the_kept_arrays():
    m = nn.ReLU()
    m._handout("out", (3,), np.float32)
    m.eval()
    assert "_handouts" not in m.__dict__
    assert m._handout("out", (3,), np.float32) is not m._handout("out", (3,), np.float32)
    assert "_handouts" not in m.__dict__


def test_pickles_and_deep_copies_leave_the_handouts_out():
    import copy
    import pickle
    m = nn.Sequential(nn.MaxPool2d(2))
    m(np.ones((1, 1, 4, 4), np.float32))
    assert m[0]._handouts
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert "_handouts" not in clone[0].__dict__
        np.testing.assert_array_equal(clone(np.ones((1, 1, 4, 4), np.float32)), np.ones((1, 1, 2, 2)))


# The layers whose outputs and input gradients come from _handout (max pooling's are checked against its
# oracle in test_pool_options): each case is (layer, input shape); Conv2d on each of its four paths.
RECYCLING_LAYERS = [(lambda: nn.Conv2d(1, 6, 5, padding=2, rng=0), (3, 1, 12, 12)),            # direct
                    (lambda: nn.Conv2d(32, 32, 3, padding=1, rng=0), (3, 32, 8, 8)),         # Winograd
                    (lambda: nn.Conv2d(32, 32, 1, rng=0), (3, 32, 6, 6)),                    # 1x1 GEMMs
                    (lambda: nn.Conv2d(3, 8, 3, stride=2, padding=1, rng=0), (3, 3, 9, 9)),  # im2col
                    (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)), (lambda: nn.BatchNorm1d(3), (6, 3)),
                    (nn.ReLU, (4, 3, 5, 5)), (nn.Sigmoid, (6, 7)), (nn.Tanh, (6, 7)), (nn.ELU, (2, 3, 4)),
                    (lambda: nn.AvgPool2d(2), (2, 3, 6, 6)), (lambda: nn.AvgPool2d(3, 2, 1), (2, 3, 7, 7)),
                    (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 5, 5))]


@pytest.mark.parametrize("make, shape", RECYCLING_LAYERS)
def test_recycled_outputs_and_gradients_never_overwrite_a_held_result(make, shape):
    """A caller holding a step's output or input gradient keeps its values through later steps, which
    refill the layer's other arrays; a loop holding nothing gets the same two arrays back."""
    import weakref
    rng = np.random.default_rng(0)
    layer = make()
    held, refs = [], []
    for step in range(6):
        x = rng.standard_normal(shape).astype(np.float32)
        a = layer(x)
        dx = layer.backward(rng.standard_normal(a.shape).astype(np.float32))
        if step < 3:
            held.append((a, dx, a.copy(), dx.copy()))
        else:                          # held by nobody: refilled (the layer keeps at most two of each)
            refs += [weakref.ref(r if r.base is None else r.base) for r in (a, dx)]   # a view's array
            del a, dx
    for a, dx, a_then, dx_then in held:
        np.testing.assert_array_equal(a, a_then)
        np.testing.assert_array_equal(dx, dx_then)
    assert all(r() is not None for r in refs)
