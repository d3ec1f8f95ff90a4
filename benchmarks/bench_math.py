"""Elementary functions: csrc/emit/vmath.h against glibc's libmvec (what prims.c called
before) and NumPy, in ns per element, one process, same data.

Columns, for each function and dtype over N elements (default 2^20):
  numpy     the NumPy expression (sigmoid: 1/(1+exp(-x)), softplus: logaddexp(0, x),
            erf: none, NumPy has no erf ufunc)
  before    what prims.c ran before vmath.h: a contiguous loop calling the libm
            function, vectorized by gcc through glibc's libmvec variants (-O3,
            -fno-math-errno, target_clones); for float32 exp the previous tj_expf
            (copied below); sigmoid and softplus: the libmvec compositions
            1/(1+expf(-x)) and max(x,0)+log1p(exp(-|x|)); erf: libmvec's erf
  vmath     the same loop calling vmath.h (with the sin/cos fixup pass)
  tracejit  @tracejit.compile of the NumPy expression (loop of 512-element blocks,
            output allocation included), where NumPy has the function
and the same-run ratios vmath/before and vmath/numpy (below 1: vmath is faster).
The two loops are compiled here at start by gcc from the same sources tracejit uses.

Run:  PYTHONPATH=python python benchmarks/bench_math.py [--quick] [--n N] [--only exp,log]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np

import _harness as H

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (arity, libmvec C expression (float spelling with F suffix), vmath spelling)
FUNCS = {
    "exp": (1, "exp{F}(x)", "tj_exp{F}(x)"),
    "log": (1, "log{F}(x)", "tj_log{F}(x)"),
    "tanh": (1, "tanh{F}(x)", "tj_tanh{F}(x)"),
    "expm1": (1, "expm1{F}(x)", "tj_expm1{F}(x)"),
    "log1p": (1, "log1p{F}(x)", "tj_log1p{F}(x)"),
    "sigmoid": (1, "1 / (1 + exp{F}(-x))", "tj_sigmoid{F}(x)"),
    "softplus": (1, "(x > 0 ? x : 0) + log1p{F}(exp{F}(-fabs{F}(x)))", "tj_softplus{F}(x)"),
    "erf": (1, "erf{F}(x)", "tj_erf{F}(x)"),
    "sin": (1, "sin{F}(x)", "tj_sin{F}(x)"),
    "cos": (1, "cos{F}(x)", "tj_cos{F}(x)"),
    "pow": (2, "pow{F}(x, y)", "tj_pow{F}(x, y)"),
}

NUMPY = {
    "exp": np.exp, "log": np.log, "tanh": np.tanh, "expm1": np.expm1, "log1p": np.log1p,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "softplus": lambda x: np.logaddexp(0, x),
    "sin": np.sin, "cos": np.cos, "pow": np.power,
}

LIBM = ["exp", "log", "tanh", "expm1", "log1p", "erf", "sin", "cos", "pow", "fabs"]


# prims.c's float32 exp before vmath.h (commit 3e18bad), for the "before" column
OLD_EXPF = r"""
static inline float old_tj_expf(float x) {
    float kf = rintf(x * 1.44269504088896341f);
    kf = kf > 128.f ? 128.f : kf < -150.f ? -150.f : kf;
    float r = fmaf(kf, -0.693145751953125f, x);
    r = fmaf(kf, -1.428606765330187045e-06f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    float y = fmaf(p, r * r, r) + 1.0f;
    int k = (int)kf, k1 = k / 2, k2 = k - k1;
    union { uint32_t u; float f; } s1 = {.u = (uint32_t)(k1 + 127) << 23},
                                    s2 = {.u = (uint32_t)(k2 + 127) << 23};
    y = y * s1.f * s2.f;
    y = x > 88.72283935546875f ? (float)INFINITY : y;
    y = x < -103.97208404541015625f ? 0.0f : y;
    return x != x ? x : y;
}
"""


def c_source(names) -> str:
    lines = ['#pragma GCC optimize("O3", "no-trapping-math")',   # before vmath.h: inlining
             '#include <math.h>', '#include <stdint.h>', '#include "emit/vmath.h"',
             '#define V __attribute__((simd("notinbranch")))',
             '#define CL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))']
    lines.append(OLD_EXPF)
    for fn in LIBM:
        if fn == "pow":
            lines.append("V float powf(float, float); V double pow(double, double);")
        elif fn != "fabs":
            lines.append(f"V float {fn}f(float); V double {fn}(double);")
    for name in names:
        ar, old, new = FUNCS[name]
        for T, F, s in (("float", "f", "f32"), ("double", "", "f64")):
            args = f"const {T} *restrict a, " + (f"const {T} *restrict b, " if ar == 2 else "")
            load = f"{T} x = a[i]" + (", y = b[i]" if ar == 2 else "")
            for kind, expr in (("old", old), ("new", new)):
                e = expr.format(F=F)
                if kind == "old" and name == "exp" and T == "float":
                    e = "old_tj_expf(x)"
                fix = ""
                if kind == "new" and name in ("sin", "cos"):
                    fix = f"tj_trig_fixup{F}(o, a, n, {1 if name == 'sin' else 2});"
                lines.append(f"CL void {kind}_{name}_{s}({args}{T} *restrict o, int64_t n) "
                             f"{{ for (int64_t i = 0; i < n; i++) {{ {load}; o[i] = ({T})({e}); }} {fix} }}")
    return "\n".join(lines) + "\n"


def build(tmp: str, names) -> ctypes.CDLL:
    src = os.path.join(tmp, "bench_math.c")
    with open(src, "w") as f:
        f.write(c_source(names))
    so = os.path.join(tmp, "bench_math.so")
    cmd = ["gcc", "-std=c11", "-O2", "-fPIC", "-shared", "-fwrapv", "-ffp-contract=off",
           "-fno-math-errno", "-fno-strict-aliasing", "-I", os.path.join(ROOT, "csrc"),
           src, "-o", so, "-lmvec", "-lm"]
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(so)


def inputs(name: str, dt, n: int, rng):
    if name in ("log",):
        return (np.exp(rng.uniform(-20, 20, n)).astype(dt),)
    if name == "log1p":
        return (np.exp(rng.uniform(-20, 5, n)).astype(dt) - dt(0.5),)
    if name == "pow":
        return rng.uniform(0.1, 10, n).astype(dt), rng.uniform(-8, 8, n).astype(dt)
    if name in ("sin", "cos"):
        return (rng.uniform(-100, 100, n).astype(dt),)
    return (rng.normal(0, 3, n).astype(dt),)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2^14 elements, short timings")
    p.add_argument("--n", type=int, default=1 << 20)
    p.add_argument("--only", help="comma-separated function names")
    opts = p.parse_args()
    n = (1 << 14) if opts.quick else opts.n
    target_s = 0.02 if opts.quick else 0.3
    names = opts.only.split(",") if opts.only else list(FUNCS)
    import tracejit
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(tmp, names)
        rows = []
        for name in names:
            for dt, s in ((np.float32, "f32"), (np.float64, "f64")):
                xs = inputs(name, dt, n, rng)
                out = np.empty(n, dt)
                ptrs = [x.ctypes.data_as(ctypes.c_void_p) for x in xs] + \
                       [out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n)]
                t = {}
                for kind in ("old", "new"):
                    f = getattr(lib, f"{kind}_{name}_{s}")
                    f(*ptrs)
                    t[kind] = H.measure(lambda f=f: f(*ptrs), target_s)["median_ns"] / n
                    if kind == "new":
                        new_out = out.copy()
                npf = NUMPY.get(name)
                if npf is not None:
                    with np.errstate(all="ignore"):
                        want = npf(*xs)
                    t["numpy"] = H.measure(lambda: npf(*xs), target_s)["median_ns"] / n
                    g = tracejit.compile(lambda *a, npf=npf: npf(*a))
                    got = g(*xs)
                    tol = 1e-5 if dt == np.float32 else 1e-12
                    for what, v in (("tracejit", got), ("vmath loop", new_out)):
                        if not np.allclose(v, want, rtol=tol, atol=0, equal_nan=True):
                            print(f"WRONG: {what} {name} {s} differs from numpy")
                            return 1
                    t["tracejit"] = H.measure(lambda: g(*xs), target_s)["median_ns"] / n
                fmt = lambda v: f"{v:.3f}" if v is not None else "-"
                rows.append([name, s, fmt(t.get("numpy")), fmt(t["old"]), fmt(t["new"]),
                             fmt(t.get("tracejit")), f"{t['new'] / t['old']:.2f}x",
                             f"{t['new'] / t['numpy']:.2f}x" if "numpy" in t else "-"])
    print(f"ns per element, {n} elements, median of repeats (one process, same data)")
    print(H.markdown_table(["function", "dtype", "numpy", "before", "vmath", "tracejit",
                            "vmath/before", "vmath/numpy"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
