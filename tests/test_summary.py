"""cnn_core.summary: the rows, shapes and counts of the table, the dummy input's dtype, the model left as it
was, and bad arguments."""
import numpy as np
import pytest

import cnn_core
from cnn_core import nn
from cnn_core.models import RNNClassifier, lenet5, mlp


def table_rows(text: str) -> list[list[str]]:
    """The layer rows of a summary: [name, type, shape, count] (between the second and third rules)."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    rows = []
    for line in lines[rules[1] + 1:rules[2]]:
        name_type, rest = line.split(")", 1)
        name, kind = name_type.split(" (")
        shape_text, count = rest.strip().rsplit(" ", 1)
        rows.append([name, kind, shape_text.strip(), count])
    return rows


def shapes_layer_by_layer(model: nn.Sequential, x: np.ndarray) -> list[str]:
    """Independent oracle: run the layers one after the other and write each output's shape."""
    model.eval()
    out = []
    for layer in model:
        x = layer(x)
        out.append("(" + ", ".join(["N", *map(str, x.shape[1:])]) + ")")
    model.train()
    return out


def test_lenet5_rows_shapes_and_counts():
    model = lenet5(rng=0)
    text = cnn_core.summary(model, (1, 28, 28))
    rows = table_rows(text)
    assert [r[0] for r in rows] == [str(i) for i in range(len(model))]
    assert [r[1] for r in rows] == [type(m).__name__ for m in model]
    assert [r[2] for r in rows] == shapes_layer_by_layer(model, np.zeros((2, 1, 28, 28), np.float32))
    assert [int(r[3].replace(",", "")) for r in rows] == [sum(p.data.size for p in m.parameters()) for m in model]
    total = sum(p.data.size for p in model.parameters())
    assert text.splitlines()[0] == "Model: Sequential (float32, input (N, 1, 28, 28))"
    assert text.splitlines()[-1] == f"Total params: {total:,}" == "Total params: 61,706"


def test_nested_modules_get_dotted_names_and_the_title_is_used():
    model = RNNClassifier(28, 16, 10, rng=0).to(np.float64)
    text = cnn_core.summary(model, (28, 28), title="Model: rnn")
    assert text.splitlines()[0] == "Model: rnn (float64, input (N, 28, 28))"
    rows = table_rows(text)
    # the RNN's out (N, 28, 16) leads its row; its h_n is (num_layers, N, 16), which the table's "N for the
    # first axis" convention cannot show (it prints the batch of one as a 1), so only out is asserted here
    assert [r[:2] for r in rows] == [["rnn", "RNN"], ["fc", "Linear"]]
    assert rows[0][2].startswith("(N, 28, 16), ") and rows[1][2] == "(N, 10)"
    assert [int(r[3]) for r in rows] == [28 * 16 + 16 * 16 + 16 + 16, 16 * 10 + 10]


def test_a_module_without_children_is_its_own_row():
    text = cnn_core.summary(nn.Linear(3, 2), [3])
    assert table_rows(text) == [["linear", "Linear", "(N, 2)", "8"]]


class _Lookup(nn.Module):
    """An index input (a stand-in for Embedding): rows of a table picked by integer ids (N, T) -> (N, T, dim)."""

    def __init__(self, num: int = 5, dim: int = 3, dtype=None):
        super().__init__(dtype)
        self.weight = nn.Parameter(np.ones((num, dim), dtype=self.dtype))
        self.seen_dtypes = []

    def forward(self, ids):
        self.seen_dtypes.append(ids.dtype)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"_Lookup: ids: expected integer indices, got {ids.dtype}")
        return self.weight.data[ids]


def test_the_dummy_input_is_built_in_the_given_dtype():
    lookup = _Lookup()
    model = nn.Sequential(lookup, nn.Flatten(), nn.Linear(12, 2))
    text = cnn_core.summary(model, (4,), dtype="int64")
    assert lookup.seen_dtypes == [np.dtype(np.int64)]
    assert text.splitlines()[0] == "Model: Sequential (float32, input (N, 4) int64)"
    assert [r[2] for r in table_rows(text)] == ["(N, 4, 3)", "(N, 12)", "(N, 2)"]
    with pytest.raises(TypeError, match="dtype: the model does not take inputs of dtype float32.*integer indices"):
        cnn_core.summary(model, (4,))


@pytest.mark.parametrize("training", [True, False])
def test_the_model_is_left_as_it_was(training):
    model = mlp([6, 5, 3], rng=0)
    model.train(training)
    weights = {k: v.copy() for k, v in model.state_dict().items()}
    cnn_core.summary(model, (6,))
    assert all(m.training == training for m in model.modules())
    assert all("forward" not in vars(m) for m in model.modules())  # the recorders are gone
    for k, v in model.state_dict().items():
        assert v.tobytes() == weights[k].tobytes()
    # also when the forward pass fails
    with pytest.raises(ValueError):
        cnn_core.summary(model, (7,))
    assert all(m.training == training for m in model.modules())
    assert all("forward" not in vars(m) for m in model.modules())


def test_a_mix_of_modes_comes_back_module_by_module():
    """Before issue 9 summary restored the top module's flag only, which train()/eval() spreads to the whole
    tree: a model in train mode with some layers in eval mode came back all in train mode."""
    model = lenet5(rng=0)
    model[1].eval()
    model[6].eval()
    before = [m.training for m in model.modules()]
    assert len(set(before)) == 2
    cnn_core.summary(model, (1, 28, 28))
    assert [m.training for m in model.modules()] == before
    with pytest.raises(ValueError):
        cnn_core.summary(model, (1, 9, 9))  # too small for the second convolution: fails mid-pass
    assert [m.training for m in model.modules()] == before


@pytest.mark.parametrize("args, kwargs, exc, match", [
    (({"not": "a model"}, (3,)), {}, TypeError, "model: expected a cnn_core.nn.Module, got dict"),
    ((nn.Linear(3, 2), 3), {}, TypeError, "input_shape: expected a tuple of ints"),
    ((nn.Linear(3, 2), ()), {}, ValueError, "input_shape: expected the shape of one sample"),
    ((nn.Linear(3, 2), (0,)), {}, ValueError, "input_shape: expected 1 positive ints"),
    ((nn.Linear(3, 2), (3.0,)), {}, TypeError, "input_shape: expected a tuple of 1 ints"),
    ((nn.Linear(3, 2), (2**40,)), {}, ValueError, "input_shape: expected entries <= 2..31-1"),
    ((nn.Linear(3, 2), (4,)), {}, ValueError, r"input_shape: the model does not take inputs of shape \(N, 4\)"),
    ((nn.Linear(3, 2), (3,)), {"dtype": "float64"}, TypeError, "dtype: the model does not take inputs of dtype "
                                                               "float64"),
    ((nn.Linear(3, 2), (3,)), {"dtype": "no-such-type"}, TypeError, "dtype: expected a NumPy dtype"),
    ((nn.Linear(3, 2), (3,)), {"dtype": object}, TypeError, "dtype: expected a numeric dtype, got object"),
    ((nn.Linear(3, 2), (3,)), {"title": 5}, TypeError, "title: expected a str or None, got int"),
])
def test_bad_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cnn_core.summary(*args, **kwargs)
