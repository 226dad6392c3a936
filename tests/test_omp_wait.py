"""How idle OpenMP threads wait: cnn_core's GOMP_SPINCOUNT default (cnn_core/__init__.py), applied only
when the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT and only when cnn_core's import is what loads
libgomp (issue 10, "on a busy machine").

Each case runs a fresh interpreter (libgomp reads its environment once, when it is loaded) with its working
directory outside the source tree, and reads the settings libgomp itself reports: OMP_DISPLAY_ENV=verbose
makes it print them on stderr when it initializes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import cnn_core



def _uses_libgomp() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    with open("/proc/self/maps") as f:
        return any("libgomp" in line for line in f)


LIBGOMP = _uses_libgomp()
pytestmark = pytest.mark.skipif(not (cnn_core.openmp_enabled() and LIBGOMP),
                                reason="needs a build on GNU OpenMP (libgomp), Linux")


def run(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_DISPLAY_ENV")}
    base.update(env, OMP_DISPLAY_ENV="verbose")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=base, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc


def spincount(stderr: str) -> int:
    """GOMP_SPINCOUNT as libgomp reports it (its first report: the runtime this process loaded first)."""
    for line in stderr.splitlines():
        if line.strip().startswith("GOMP_SPINCOUNT ="):
            return int(line.split("=", 1)[1].strip().strip("'"))
    raise AssertionError(f"libgomp printed no GOMP_SPINCOUNT:\n{stderr}")


SHOW = """
import os, cnn_core
assert os.path.dirname(cnn_core.__file__) != os.getcwd()
cnn_core.show_config()
print("ENV", os.environ.get("GOMP_SPINCOUNT"), os.environ.get("OMP_WAIT_POLICY"))
"""


def test_default_spincount_applies_when_the_user_set_nothing(tmp_path):
    proc = run(SHOW, tmp_path)
    assert spincount(proc.stderr) == cnn_core.OMP_SPINCOUNT_DEFAULT == 1000
    assert "waiting: GOMP_SPINCOUNT=1000 (cnn_core's default)" in proc.stdout
    # read by the runtime, then taken out again: programs started from this one keep their own defaults
    assert "ENV None None" in proc.stdout


def test_users_spincount_is_honoured(tmp_path):
    proc = run(SHOW, tmp_path, GOMP_SPINCOUNT="77")
    assert spincount(proc.stderr) == 77
    assert "GOMP_SPINCOUNT=77 (set by the user)" in proc.stdout
    assert "ENV 77 None" in proc.stdout


@pytest.mark.parametrize("policy", ["active", "passive"])
def test_users_wait_policy_is_honoured(tmp_path, policy):
    proc = run(SHOW, tmp_path, OMP_WAIT_POLICY=policy)
    assert f"OMP_WAIT_POLICY = '{policy.upper()}'" in proc.stderr
    # active spins "forever" (libgomp's 30e9 pauses); passive does not spin at all; neither is 1000
    assert spincount(proc.stderr) == (30_000_000_000 if policy == "active" else 0)
    assert f"OMP_WAIT_POLICY={policy} (set by the user)" in proc.stdout
    assert f"ENV None {policy}" in proc.stdout


def test_libgomp_loaded_before_cnn_core_is_detected_and_reported(tmp_path):
    # what `import torch` (whose wheel ships a libgomp.so.1) before `import cnn_core` does
    proc = run("import ctypes; ctypes.CDLL('libgomp.so.1', mode=ctypes.RTLD_GLOBAL)\n" + SHOW, tmp_path)
    assert spincount(proc.stderr) == 300_000   # libgomp's own default: the runtime read the environment first
    assert "libgomp was loaded before cnn_core" in proc.stdout
    assert "set GOMP_SPINCOUNT=1000 before starting Python" in proc.stdout
    assert "ENV None None" in proc.stdout       # nothing set that could no longer take effect
