"""Builds the one C extension, tracejit._C. Warnings are errors when CI=true or TRACEJIT_WERROR=1."""
import glob
import os

import numpy
from setuptools import Extension, setup

werror = os.environ.get("CI") == "true" or os.environ.get("TRACEJIT_WERROR") == "1"
flags = ["-std=c11", "-O2", "-fwrapv", "-ffp-contract=off", "-fno-strict-aliasing",
         "-fno-math-errno", "-fvisibility=hidden", "-fopenmp-simd",
         "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter"]
if werror:
    flags.append("-Werror")
extra = os.environ.get("TRACEJIT_CFLAGS")
if extra:
    flags += extra.split()

sources = sorted(glob.glob("csrc/*.c") + glob.glob("csrc/*/*.c"))

# The optimizing tier compiles the per-element helpers of csrc/emit/prims.c at run
# time (csrc/backend/tier.c): they ship in the package, copied from the one source (emit.h,
# the emitters' header, is not among them: prims.c reads it only when built here).
include = os.path.join("python", "tracejit", "_include")
os.makedirs(include, exist_ok=True)
helpers = [h for h in glob.glob("csrc/emit/*.h") if os.path.basename(h) != "emit.h"]
# (prims_cuda.h is among them: NVRTC compiles prims.c too, csrc/backend/cuda_api.c)
for src in ["csrc/emit/prims.c", "csrc/ir/ops.h"] + helpers:
    with open(src) as f_in, open(os.path.join(include, os.path.basename(src)), "w") as f_out:
        f_out.write(f_in.read())
# tracejit.export ships the primitives with every exported program (python/tracejit/_export.py)
for src in ["csrc/emit/reduce_prims.c", "csrc/emit/gemm.c", "csrc/emit/qgemm.c"]:
    with open(src) as f_in, open(os.path.join(include, os.path.basename(src)), "w") as f_out:
        f_out.write(f_in.read())
# NVRTC has no C library headers: the CUDA backend's stand-ins for the few prims.c includes
os.makedirs(os.path.join(include, "cuda"), exist_ok=True)
for src in glob.glob("csrc/emit/cuda/*.h"):
    with open(src) as f_in, open(os.path.join(include, "cuda", os.path.basename(src)), "w") as f_out:
        f_out.write(f_in.read())
ext = Extension(
    "tracejit._C",
    sources=sources,
    depends=sorted(glob.glob("csrc/*.h") + glob.glob("csrc/*/*.h")),   # rebuild on header edits
    include_dirs=["csrc", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    extra_compile_args=flags,
    libraries=["mvec", "m", "dl"],
)
setup(ext_modules=[ext])
