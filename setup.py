"""Build script: cythonizes every .pyx under cnn_core/ and links the C kernels of src_c/.

A .pyx that wraps C code names its sources in a ``# distutils: sources = src_c/...`` header, so this
file never needs to change when a kernel is added.

Environment switches:
  CNN_CORE_DEBUG=1     rebuild with bounds checking and wraparound on (slow; for hunting bugs)
  CNN_CORE_NO_OPENMP=1 build serially even where the compiler supports OpenMP
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()
DEBUG = os.environ.get("CNN_CORE_DEBUG", "") not in ("", "0")

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
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
}
"""


def compiler_supports_openmp(compiler) -> bool:
    """Compile and link a tiny OpenMP program; any failure means a serial build."""
    if os.environ.get("CNN_CORE_NO_OPENMP", "") not in ("", "0"):
        return False
    tmp = tempfile.mkdtemp(prefix="cnn_core_omp_")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
        compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=["-fopenmp"])
        return True
    except Exception:  # noqa: BLE001 - any compiler or linker failure means "no OpenMP"
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        openmp = sys.platform != "win32" and compiler_supports_openmp(self.compiler)
        print(f"cnn_core: OpenMP {'enabled' if openmp else 'not available, serial build'}")
        for ext in self.extensions:
            ext.extra_compile_args += ["-O3", "-fno-math-errno", "-Wno-unused-function"]
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


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
