"""Module features of issue 11: buffers, requires_grad (no gradient, no update), load_state_dict(strict) with
array-likes and PyTorch dicts, forward hooks, and summary built on hooks."""
import numpy as np
import pytest

import cnn_core
from cnn_core import nn, optim


class _Counter(nn.Module):
    """A module with a float buffer, an integer buffer and a non-persistent one."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2, rng=0)
        self.register_buffer("scale", np.ones(2, np.float32))
        self.register_buffer("count", np.zeros((), np.int64))
        self.register_buffer("scratch", np.zeros(3, np.float32), persistent=False)

    def forward(self, x):
        self.count += 1
        return self.lin(x) * self.scale


def test_buffers_are_listed_saved_cast_and_not_parameters():
    m = _Counter()
    assert [n for n, _ in m.named_buffers()] == ["scale", "count", "scratch"]
    assert [n for n, _ in m.named_parameters()] == ["lin.weight", "lin.bias"]
    assert list(m.state_dict()) == ["scale", "count", "lin.weight", "lin.bias"]  # own buffers, then children
    assert "scratch" not in m.state_dict()
    m(np.ones((1, 2), np.float32))
    assert m.state_dict()["count"] == 1
    m.to(np.float64)
    assert m.scale.dtype == np.float64 and m.count.dtype == np.int64 and m.scratch.dtype == np.float64
    m.scale = np.full(2, 3.0)
    assert m._buffers["scale"] is m.scale
    with pytest.raises(TypeError, match="buffer"):
        m.scale = [1, 2]
    with pytest.raises(ValueError, match="already an attribute"):
        m.register_buffer("lin", np.zeros(1))


def test_state_dict_order_is_pytorchs():
    """Per module: parameters, then buffers, then the children (torch's _save_to_state_dict order)."""
    model = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 1))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "0.running_mean", "0.running_var",
                                        "0.num_batches_tracked", "1.weight", "1.bias"]


def test_load_state_dict_takes_array_likes_and_reports_keys():
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.BatchNorm1d(2))
    state = {k: v.tolist() for k, v in model.state_dict().items()}
    state["0.weight"] = [[1, 2], [3, 4]]
    assert model.load_state_dict(state) == ([], [])
    assert np.array_equal(model[0].weight.data, [[1, 2], [3, 4]]) and model[0].weight.data.dtype == np.float32
    partial = {"0.bias": (5.0, 6.0), "extra": np.zeros(1)}
    with pytest.raises(ValueError, match=r"missing keys .*'0.weight'.*unexpected keys \['extra'\]"):
        model.load_state_dict(partial)
    result = model.load_state_dict(partial, strict=False)
    assert result.missing_keys == sorted(set(model.state_dict()) - {"0.bias"})
    assert result.unexpected_keys == ["extra"]
    assert np.array_equal(model[0].bias.data, [5, 6])
    with pytest.raises(ValueError, match=r"state_dict\['0.bias'\]: expected shape \(2,\)"):
        model.load_state_dict({"0.bias": [1.0]}, strict=False)
    with pytest.raises(TypeError, match="real numbers"):
        model.load_state_dict({"0.bias": ["a", "b"]}, strict=False)
    assert np.array_equal(model[0].bias.data, [5, 6])  # nothing copied on error


def test_a_pytorch_state_dict_loads_directly():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                 torch.nn.Flatten(), torch.nn.Linear(8, 3))
    theirs(torch.randn(4, 1, 4, 4))  # move the running statistics
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    assert ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()}) == ([], [])
    theirs.eval()
    ours.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make_opt", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
                                      lambda p: optim.Adam(p, lr=0.1)])
def test_frozen_parameters_get_no_gradient_and_no_update(make_opt):
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 2, rng=1))
    model[0].weight.requires_grad = False
    model[2].bias.requires_grad_(False)
    frozen = {"0.weight": model[0].weight.data.copy(), "2.bias": model[2].bias.data.copy()}
    opt = make_opt(model.parameters())
    assert len(opt.params) == len(model.parameters()) - 2
    x, y = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32), np.arange(8) % 2
    crit = nn.CrossEntropyLoss()
    for _ in range(3):
        opt.zero_grad()
        crit(model(x), y)
        model.backward(crit.backward())
        assert not model[0].weight.grad.any() and not model[2].bias.grad.any()
        assert model[0].bias.grad.any() and model[2].weight.grad.any()
        opt.step()
    assert np.array_equal(model[0].weight.data, frozen["0.weight"])
    assert np.array_equal(model[2].bias.data, frozen["2.bias"])
    assert "requires_grad=False" in repr(model[0].weight)


def test_forward_hooks_run_replace_and_are_removed():
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Linear(3, 1, rng=1))
    seen = []
    h1 = model[1].register_forward_hook(lambda m, inp, out: seen.append((type(m).__name__, inp[0].shape, out.shape)))
    h2 = model[2].register_forward_hook(lambda m, inp, out: out * 0 + 7)
    y = model(np.ones((4, 2), np.float32))
    assert seen == [("ReLU", (4, 3), (4, 3))] and (y == 7).all()
    h1.remove()
    h2.remove()
    h2.remove()  # a second remove does nothing
    assert (model(np.ones((4, 2), np.float32)) != 7).any() and len(seen) == 1
    with pytest.raises(TypeError, match="hook"):
        model.register_forward_hook(3)


def test_summary_uses_hooks_and_knows_the_new_layers():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.GELU(), nn.Dropout2d(0.1),
                          nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))),
                          nn.Concat(nn.Conv2d(4, 2, 1), nn.Identity()), nn.Flatten(), nn.Linear(6 * 25, 3),
                          nn.LogSoftmax(dim=1))
    text = cnn_core.summary(model, (1, 5, 5))
    rows = {line.split()[0]: line for line in text.splitlines() if line[:1].isdigit()}
    assert "BatchNorm2d" in rows["1"] and "(N, 4, 5, 5)" in rows["1"] and rows["1"].rstrip().endswith(" 8")
    assert "(N, 4, 5, 5)" in rows["4.block.1"] and "(N, 2, 5, 5)" in rows["5.0"] and "(N, 4, 5, 5)" in rows["5.1"]
    assert "(N, 3)" in rows["8"]
    assert all(not m._forward_hooks for m in model.modules())
