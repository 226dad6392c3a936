"""Package metadata and configuration: version, show_config, thread control."""
import ast
import re
import tomllib
from pathlib import Path

import pytest

import cnn_core

ROOT = Path(__file__).resolve().parent.parent


def test_version_matches_pyproject_dynamic_source():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in meta["project"]["dynamic"]
    attr = meta["tool"]["setuptools"]["dynamic"]["version"]["attr"]  # e.g. cnn_core._version.__version__
    module, name = attr.rsplit(".", 1)
    source = (ROOT / Path(*module.split("."))).with_suffix(".py").read_text()
    literal = next(node.value.value for node in ast.parse(source).body
                   if isinstance(node, ast.Assign) and any(t.id == name for t in node.targets))
    assert isinstance(cnn_core.__version__, str)
    assert cnn_core.__version__ == literal
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?(a|b|rc|dev|post)\d*)*", cnn_core.__version__)


def test_show_config_prints_version_openmp_threads_dtypes(capsys):
    cnn_core.show_config()
    text = capsys.readouterr().out
    assert cnn_core.__version__ in text
    openmp_line = next(line for line in text.splitlines() if "OpenMP" in line)
    assert ("enabled" in openmp_line and "disabled" not in openmp_line) == cnn_core.openmp_enabled()
    assert re.search(rf"threads:\s+{cnn_core.get_num_threads()}\b", text)
    assert "float32" in text and "float64" in text


def test_set_num_threads_round_trip(num_threads):
    num_threads(1)
    assert cnn_core.get_num_threads() == 1
    num_threads(3)
    assert cnn_core.get_num_threads() == (3 if cnn_core.openmp_enabled() else 1)


@pytest.mark.parametrize("n", [0, -2, 1 << 20])
def test_set_num_threads_rejects_out_of_range(n):
    with pytest.raises(ValueError, match=rf"n: expected a thread count in 1\.\.256 \(MAX_NUM_THREADS\), got {n}$"):
        cnn_core.set_num_threads(n)


@pytest.mark.parametrize("n", [2.5, "2", None, True])
def test_set_num_threads_rejects_non_int(n):
    with pytest.raises(TypeError, match=r"n: expected an int thread count"):
        cnn_core.set_num_threads(n)
