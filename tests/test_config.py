"""Package metadata and configuration: version, show_config, thread control."""
import ast
import re
from pathlib import Path

import numpy as np
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: tomli, the same parser (pytest >= 7 depends on it there)
    import tomli as tomllib

import cnn_core
from cnn_core import kernels

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


def test_show_config_reports_simd_level_and_cpu_levels(capsys, use_simd):
    for level in cnn_core.cpu_simd_levels():
        use_simd(level)
        cnn_core.show_config()
        line = next(line for line in capsys.readouterr().out.splitlines() if "SIMD" in line)
        assert re.search(rf"SIMD:\s+{level}\b", line)
        assert line.endswith("CPU: " + ", ".join(cnn_core.cpu_simd_levels()))


def test_cpu_simd_levels_are_known_and_include_baseline():
    levels = cnn_core.cpu_simd_levels()
    assert levels[0] == "baseline"
    assert set(levels) <= {"baseline", "avx2", "avx512"}
    assert list(levels) == sorted(levels, key=["baseline", "avx2", "avx512"].index)
    assert "avx2" in levels or "avx512" not in levels   # avx512 implies avx2


@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_set_simd_round_trip_or_refuses_what_the_cpu_lacks(use_simd, level):
    if level in cnn_core.cpu_simd_levels():
        cnn_core.set_simd(level)
        assert cnn_core.get_simd() == level
    else:
        before = cnn_core.get_simd()
        with pytest.raises(ValueError, match=rf"level: this CPU cannot run '{level}'; it has baseline"):
            cnn_core.set_simd(level)
        assert cnn_core.get_simd() == before


def test_set_simd_auto_picks_the_best_cpu_level(use_simd):
    use_simd("baseline")
    cnn_core.set_simd("auto")
    assert cnn_core.get_simd() == cnn_core.cpu_simd_levels()[-1]


@pytest.mark.parametrize("level", ["AVX2", "sse2", "", "avx-512"])
def test_set_simd_rejects_unknown_level(use_simd, level):
    with pytest.raises(ValueError, match=rf"level: expected one of 'auto', 'avx512', 'avx2', 'baseline'; got '{level}'"):
        cnn_core.set_simd(level)


@pytest.mark.parametrize("level", [None, 2, True, b"avx2"])
def test_set_simd_rejects_non_str(use_simd, level):
    with pytest.raises(TypeError, match=rf"level: expected a str.*got {type(level).__name__}"):
        cnn_core.set_simd(level)


def _outputs_per_family():
    """Results of the GEMM (packed and NT paths) and activation kernels, on fixed data."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 64), dtype=np.float32), rng.standard_normal((64, 64), dtype=np.float32)
    z = rng.standard_normal(10_000).astype(np.float32)
    return {"gemm": kernels.gemm(a, b), "gemm_nt": kernels.gemm_batched_sum(a[None], b[None], trans_b=True),
            "sigmoid": kernels.sigmoid(z), "tanh": kernels.tanh(z)}


@pytest.mark.skipif("avx2" not in cnn_core.cpu_simd_levels(), reason="CPU without AVX2")
def test_set_simd_reaches_every_dispatch_table(use_simd):
    # The AVX2 kernels fuse multiply-adds (one rounding) where the portable C ones round twice, so the one
    # switch is seen in the last bits of each family's results (the oracle tests bound both paths).
    outputs = {}
    for level in ("avx2", "baseline"):
        use_simd(level)
        outputs[level] = _outputs_per_family()
    for family, got in outputs["avx2"].items():
        assert not (got == outputs["baseline"][family]).all(), f"{family}: the same bits on both levels"


@pytest.mark.skipif("avx512" not in cnn_core.cpu_simd_levels(), reason="CPU without AVX-512")
def test_avx512_reaches_gemm_nt_and_gives_the_avx2_bits_elsewhere(use_simd):
    # At avx512, A @ B^T (gemm_nt) takes the AVX-512 GEMM instead of the AVX2 NT kernel, which sums each dot
    # product in 8 lanes, so the level is seen in its last bits (the oracle tests bound both; the packed
    # GEMM's AVX-512 kernels differ too, tests/test_gemm.py checks that the level reaches them). The
    # unpacked GEMM (this 64 x 64 product) has an AVX-512 kernel that gives the AVX2 one's bits (each
    # element's FMAs in depth order in both), and the activations at avx512 are the AVX2 ones, bit for bit.
    outputs = {}
    for level in ("avx512", "avx2"):
        use_simd(level)
        outputs[level] = _outputs_per_family()
    for family, got in outputs["avx512"].items():
        same = (got == outputs["avx2"][family]).all()
        assert not same if family == "gemm_nt" else same, family


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
