"""The optimizing tier: elementwise groups recompiled by the system C compiler as fused
per-element loops (csrc/emit/emit_fused.c, csrc/backend/tier.c), cached on disk, swapped in
without a call ever waiting for it."""
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import tracejit

from conftest import both_tiers, make_input

HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang"))
pytestmark = pytest.mark.skipif(not HAVE_CC, reason="no system C compiler")


@pytest.fixture
def tier(tmp_path, monkeypatch):
    """Eager tier with a private cache directory; back to auto afterwards."""
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path / "cache"
    tracejit.set_tier("auto")


def gelu(x, y):
    z = x * y + y
    return 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z ** 3))) + np.exp(x)


def arith(x, y):
    return ((x * y + y) * 0.5 - x) * (y + 2.0) / (x * x + 1.0) - y * 0.25 + x


CASES = [
    ("gelu", gelu, [(1000,), (1000,)], "float32"),
    ("gelu f64", gelu, [(37, 29), (29,)], "float64"),
    ("arith", arith, [(4097,), (4097,)], "float32"),
    ("short rows", lambda x, b: np.maximum(x + b, 0.0) * 2.0, [(300, 7), (7,)], "float32"),
    ("transposed", lambda x: np.sqrt(np.abs(x.T)) - x.T ** 2, [(33, 65)], "float64"),
    ("strided", lambda x: np.log1p(np.abs(x[::2, 1::3])) ** 0.5, [(40, 61)], "float32"),
    ("where and compare", lambda x, y: np.where(x > y, x - y, y * 3.0), [(513,), (513,)],
     "float64"),
    ("bool out", lambda x, y: (x > 0.5) & (y < 0.25), [(257,), (257,)], "float32"),
    ("int ops", lambda a, b: (a * 3 + b) // 2 - a % 5, [(300,), (300,)], "int64"),
    ("casts", lambda a, x: a.astype(np.float32) * x + (x > 0).astype(np.float32),
     [(100,), (100,)], ("int32", "float32")),
    ("powers", lambda x: x ** 2 + x ** 3 - x ** -2 + x ** 0.5, [(500,)], "float32"),
    ("two outputs", lambda x: (np.exp(x) * 2.0, np.sqrt(np.abs(x)) - 1.0), [(3, 5, 129)],
     "float32"),
    ("broadcast 3-D", lambda x, y: x * y - np.cos(y), [(4, 1, 300), (5, 1)], "float64"),
]


@pytest.mark.parametrize("name,fn,shapes,dtype", CASES, ids=[c[0] for c in CASES])
def test_eager_tier_matches_tcc(name, fn, shapes, dtype, rng, tier):
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,) * len(shapes)
    args = [make_input(rng, s, d, domain="pos" if name in ("powers",) else "any")
            for s, d in zip(shapes, dtypes)]
    r2, r1, f2 = both_tiers(fn, args)
    assert "optimizing tier C" in f2.explain(*args)
    expect = fn(*args)
    r1s, r2s, es = [(r if isinstance(r, tuple) else (r,)) for r in (r1, r2, expect)]
    for a, b, e in zip(r1s, r2s, es):
        assert a.dtype == b.dtype == e.dtype and a.shape == b.shape == e.shape
        if a.dtype.kind in "biu":
            np.testing.assert_array_equal(b, a)
        else:
            rtol = 1e-6 if a.dtype == np.float32 else 1e-14
            np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol)
            np.testing.assert_allclose(b, e, rtol=50 * rtol, atol=50 * rtol)
    # later calls keep running the fused code, with fresh data
    args2 = [a[::-1].copy() if a.ndim == 1 else a for a in args]
    np.testing.assert_allclose(np.asarray(f2(*args2)), np.asarray(fn(*args2)), rtol=1e-5,
                               atol=1e-5)


def test_sin_of_huge_arguments_stays_exact(tier):
    tracejit.set_tier("eager")
    f = tracejit.compile(lambda x: np.sin(x) * 2.0 + np.cos(x))
    x = np.array([1e20, -3e9, 0.5, 2.0 ** 40, -1e300], dtype=np.float64)
    np.testing.assert_allclose(f(x), np.sin(x) * 2.0 + np.cos(x), rtol=1e-14, atol=1e-15)


def test_groups_the_tier_does_not_fuse_stay_on_tcc(rng, tier):
    tracejit.set_tier("eager")

    def fn(x):
        return np.argmax(x * 2.0, axis=1), np.cumsum(x - 1.0, axis=1)

    f = tracejit.compile(fn)
    x = make_input(rng, (64, 100), "float64")
    for got, want in zip(f(x), fn(x)):
        np.testing.assert_array_equal(got, want)
    assert f.tiers() == ["tcc"]   # argmax and scan groups only: nothing compiled


def test_auto_tier_up_in_background_when_hot(rng, tier):
    tracejit.set_tier("auto")
    f = tracejit.compile(gelu)
    x, y = make_input(rng, (1 << 20,), "float32"), make_input(rng, (1 << 20,), "float32")
    expect = gelu(x, y)
    f(x, y)
    assert f.tiers() == ["tcc"]          # one call is not hot
    states = []
    deadline = time.time() + 60
    while time.time() < deadline:
        np.testing.assert_allclose(f(x, y), expect, rtol=1e-5, atol=1e-6)
        states.append(f.tiers()[0])
        if states[-1] == "opt":
            break
        time.sleep(0.01)
    assert states[-1] == "opt", states
    assert "compiling" in states         # the compile ran while calls went on
    np.testing.assert_allclose(f(x, y), expect, rtol=1e-5, atol=1e-6)
    assert os.listdir(tier)              # and its object is in the disk cache


def test_small_kernels_do_not_tier_up(rng, tier):
    tracejit.set_tier("auto")
    f = tracejit.compile(arith)
    x = make_input(rng, (16,), "float32")
    for _ in range(200):
        f(x, x)
    assert f.tiers() == ["tcc"]


def run_child(code, **env):
    """Runs code in a fresh interpreter with env added; returns its stdout, stripped."""
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_new_process_loads_from_disk_cache(tier):
    code = ("import numpy as np, tracejit\n"
            "f = tracejit.compile(lambda x: np.tanh(x) * 3.0 + 1.0)\n"
            "x = np.linspace(-2, 2, 1000)\n"
            "np.testing.assert_allclose(f(x), np.tanh(x) * 3.0 + 1.0, rtol=1e-13, atol=1e-15)\n"
            "print(f.tiers()[0])\n")
    assert run_child(code, TRACEJIT_CACHE_DIR=str(tier), TRACEJIT_TIER="eager") == "opt"
    # auto mode in a new process: the cached object loads on the first call
    assert run_child(code, TRACEJIT_CACHE_DIR=str(tier), TRACEJIT_TIER="auto") == "opt"


def test_a_cached_object_of_other_helpers_is_never_loaded(tier, tmp_path):
    """The helpers the tier's C includes (vmath.h, prims_random.h: polynomials, the
    random stream) name its objects with the source: an object compiled against other
    helpers (another tracejit) is compiled anew, not loaded beside TinyCC's primitives."""
    inc = os.path.join(os.path.dirname(tracejit.__file__), "_include")
    other = tmp_path / "other"
    shutil.copytree(inc, other)
    with open(other / "vmath.h", "a") as f:
        f.write("/* another version */\n")
    code = ("import numpy as np, tracejit, sys\n"
            "if len(sys.argv) > 1: tracejit._C._set_include_dir(sys.argv[1])\n"
            "f = tracejit.compile(lambda x: np.tanh(x) * 3.0 + 1.0)\n"
            "f(np.linspace(-2, 2, 1000))\n"
            "print(f.tiers()[0])\n")

    def objects(*argv):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                             env=dict(os.environ, TRACEJIT_CACHE_DIR=str(tier),
                                      TRACEJIT_TIER="eager"))
        assert out.returncode == 0 and out.stdout.strip() == "opt", out.stderr
        return len([n for n in os.listdir(tier) if n.endswith(".so")])
    assert objects() == 1
    assert objects(str(other)) == 2      # compiled anew
    assert objects() == 2                # this version's object, from the cache


def test_without_a_compiler_everything_runs_on_tcc(tier):
    code = ("import numpy as np, tracejit\n"
            "tracejit.set_tier('eager')\n"
            "f = tracejit.compile(lambda x: np.exp(x) - 1.0)\n"
            "x = np.linspace(-2, 2, 100)\n"
            "np.testing.assert_allclose(f(x), np.exp(x) - 1.0, rtol=1e-12, atol=1e-15)\n"
            "print(f.tiers()[0])\n")
    assert run_child(code, TRACEJIT_CACHE_DIR=str(tier), TRACEJIT_CC="/nonexistent/cc") == "tcc"


def test_cache_size_is_bounded(rng, tier, monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_MB", "0")
    tracejit.set_tier("eager")
    f = tracejit.compile(lambda x: np.tanh(x) * 2.0)
    x = make_input(rng, (100,), "float64")
    np.testing.assert_allclose(f(x), np.tanh(x) * 2.0, rtol=1e-14)
    assert f.tiers() == ["opt"]                      # loaded before it was evicted
    assert not [n for n in os.listdir(tier) if n.endswith(".so")]


def test_set_tier_rejects_unknown_modes():
    with pytest.raises(ValueError, match="expected 'auto', 'eager' or 'tcc', got 'fast'"):
        tracejit.set_tier("fast")


@pytest.mark.parametrize("shape,layout", [((33, 47), "C"), ((5, 6, 7), "C"), ((40, 30), "F")])
def test_concatenation_parts_fused_by_the_tier(rng, tier, shape, layout):
    """A box write (`out[1:-1, 1:-1] = ...`: concatenations of slices around the value)
    and np.concatenate: the parts are fused by the tier, each written at its offset."""
    tracejit.set_tier("eager")

    def stencil(u):
        out = u.copy()
        out[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])
        return out

    def cat(u):
        return np.concatenate([u * 2.0, np.sqrt(np.abs(u[:3])) - 1.0, u[::-1] + u], axis=0)

    for fn in (stencil, cat):
        f = tracejit.compile(fn)
        for k in range(2):
            u = make_input(rng, shape, "float64")
            u = np.asfortranarray(u) if layout == "F" else u
            np.testing.assert_array_equal(f(u), fn(u))
        assert f.tiers() == ["opt"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loop_invariant_power_is_fused_and_bitwise_tinyccs(dtype, rng, tier):
    """Adam's bias corrections: 1 - beta ** step with step an input (a power by a value
    known only at run time, the same for every element): computed once before the
    fused loop, as TinyCC computes it (tj_p_POW's element), so the group is fused and
    every bit is TinyCC's."""
    def adam_like(p, m, v, step, lr):
        bc1 = 1 - 0.9 ** step
        bc2 = 1 - 0.999 ** step
        den = np.sqrt(v) / np.sqrt(bc2) + 1e-8
        return p - (lr / bc1) * m / den, step ** 0.5 * m + step ** 2

    x = [make_input(rng, (4097,), dtype, domain="pos") for _ in range(3)]
    for s in (3.0, 7.5):
        args = x + [np.array(s), np.array(1e-3)]
        r2, r1, f2 = both_tiers(adam_like, args)
        src = str(f2.explain(*args))
        assert "tj_e_POW_f64(" in src.split("optimizing tier C")[1]
        want = adam_like(*args)
        for a, b, e in zip(r1, r2, want):
            np.testing.assert_array_equal(b, a)
            np.testing.assert_allclose(a, e, rtol=1e-5 if dtype == "float32" else 1e-12)
