"""The examples in the docstrings run, against the installed (compiled) package, and every layer and loss
documents its shapes, arguments and an example (the sections the API reference in docs/ renders)."""
import doctest
import importlib
import inspect
import pkgutil

import pytest

import cnn_core
from cnn_core import nn

MODULES = sorted(m.name for m in pkgutil.walk_packages(cnn_core.__path__, "cnn_core.")
                 if m.name != "cnn_core.__main__")   # __main__ runs the CLI when imported as a script only
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@pytest.mark.parametrize("name", ["cnn_core"] + MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=FLAGS, report=True)
    assert failed == 0, f"{failed} docstring example(s) in {name} failed (printed above)"


PUBLIC = [getattr(nn, n) for n in nn.__all__ if inspect.isclass(getattr(nn, n))
          and getattr(nn, n) not in (nn.Module, nn.Parameter)]


def test_the_public_layers_and_losses_are_all_checked():
    names = {c.__name__ for c in PUBLIC}
    assert {"Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "RNN", "Sequential", "CrossEntropyLoss"} <= names


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_layer_docstrings_have_the_reference_sections(cls):
    doc = inspect.getdoc(cls)
    assert "\nShape:\n" in doc and "\nExample:\n" in doc and ">>> " in doc
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    if params:
        args = doc.split("\nArgs:\n", 1)
        assert len(args) == 2, f"{cls.__name__}: no Args: section"
        documented = "\n" + args[1]
        for p in params:
            assert f"\n    {p}:" in documented or f"\n    *{p}:" in documented, f"{cls.__name__}: {p} undocumented"


@pytest.mark.parametrize("cls", [nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d], ids=lambda c: c.__name__)
def test_window_layers_state_the_output_size(cls):
    doc = inspect.getdoc(cls)
    assert "H_out = floor((H " in doc and "W_out = floor((W " in doc
