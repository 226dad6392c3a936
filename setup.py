"""Build script: cythonizes every .pyx under cnn_core/ and links the C kernels of src_c/.

A .pyx that wraps C code names its sources in a ``# distutils: sources = src_c/...`` header, so this
file never needs to change when a kernel is added.

Environment switches:
  CNN_CORE_DEBUG=1           rebuild with bounds checking and wraparound on (slow; for hunting bugs)
  CNN_CORE_NO_OPENMP=1       build serially even where the compiler supports OpenMP
  CNN_CORE_REQUIRE_OPENMP=1  make a missing OpenMP a build error instead of a serial build (CI uses it)

OpenMP is detected by compiling and linking a small OpenMP shared object with the flags the extensions get
(the compiler's CFLAGS and LDFLAGS included), so a build with, e.g., sanitizer flags detects it as that
build will link it.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()


def _flag(name: str) -> bool:
    """An environment switch: set to anything but "" or "0"."""
    return os.environ.get(name, "") not in ("", "0")


DEBUG = _flag("CNN_CORE_DEBUG")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

OPENMP_PROBE = r"""
#include <omp.h>
int cnn_core_openmp_probe(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
}
"""


def openmp_probe_error(compiler) -> str | None:
    """Compile and link a tiny OpenMP shared object exactly as the extensions are built (the compiler's
    shared-object compile and link commands carry CFLAGS and LDFLAGS); None when it works, else why not."""
    tmp = tempfile.mkdtemp(prefix="cnn_core_omp_")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
        compiler.link_shared_object(objs, os.path.join(tmp, "probe.so"), extra_postargs=["-fopenmp"])
        return None
    except Exception as exc:  # noqa: BLE001 - any compiler or linker failure means "no OpenMP"
        return str(exc) or type(exc).__name__
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def accepts_flag(compiler, flag: str) -> bool:
    """Whether the compiler builds a trivial C file with `flag` (with warnings as errors, so a flag it only
    ignores counts as refused)."""
    tmp = tempfile.mkdtemp(prefix="cnn_core_flag_")
    try:
        src = os.path.join(tmp, "flag.c")
        with open(src, "w") as f:
            f.write("int cnn_core_flag_probe(int n) { int s = 0; for (int i = 0; i < n; ++i) s += i; return s; }\n")
        compiler.compile([src], output_dir=tmp, extra_postargs=[flag, "-Werror"])
        return True
    except Exception:  # noqa: BLE001 - any compiler failure means "not accepted"
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def use_openmp(compiler) -> bool:
    """Whether to build with OpenMP; raises when CNN_CORE_REQUIRE_OPENMP=1 and it is not available."""
    required = _flag("CNN_CORE_REQUIRE_OPENMP")
    if _flag("CNN_CORE_NO_OPENMP"):
        if required:
            raise RuntimeError("cnn_core: CNN_CORE_REQUIRE_OPENMP=1 and CNN_CORE_NO_OPENMP=1 contradict each other")
        return False
    error = "not used on Windows" if sys.platform == "win32" else openmp_probe_error(compiler)
    if error is not None:
        if required:
            raise RuntimeError(f"cnn_core: CNN_CORE_REQUIRE_OPENMP=1 but OpenMP is not available: {error}")
        print(f"cnn_core: OpenMP probe failed: {error}")
    return error is None


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # Compile the extensions side by side, one per CPU, unless -j/--parallel says otherwise: pip runs
        # this with no options, and the ~20 extensions built one after another took ~3 minutes of CI's
        # five builds each.
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        openmp = use_openmp(self.compiler)
        print(f"cnn_core: OpenMP {'enabled' if openmp else 'not available, serial build'}")
        # -falign-loops=32: every loop starts on a 32-byte boundary, so a short hot loop does not straddle a
        # fetch block by accident of where unrelated code ends. Without it, edits elsewhere in a module moved
        # kernels by up to 40% (avg_pool fwd 143 -> 204 us; im2col 1000 -> 1290 us after issue 8); with it
        # those rows are at or below their best unaligned figures. Compilers without the flag build without.
        align = ["-falign-loops=32"] if accepts_flag(self.compiler, "-falign-loops=32") else []
        for ext in self.extensions:
            ext.extra_compile_args += ["-O3", "-fno-math-errno", "-Wno-unused-function", *align]
            if DEBUG:
                ext.extra_compile_args += ["-O1", "-g"]
            if openmp:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
            ext.define_macros.append(("CNN_CORE_OPENMP", "1" if openmp else "0"))
        super().build_extensions()


def extensions():
    exts = []
    for pyx in sorted((HERE / "cnn_core").rglob("*.pyx")):
        rel = pyx.relative_to(HERE)
        name = ".".join(rel.with_suffix("").parts)
        exts.append(Extension(
            name, [str(rel)],
            include_dirs=["src_c"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        ))
    return cythonize(exts, compiler_directives=DIRECTIVES, nthreads=os.cpu_count() or 1)


if __name__ == "__main__":   # pip's build backend and `python setup.py` both run this file as __main__
    setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
