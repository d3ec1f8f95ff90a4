"""Shared helpers for the tracejit test-suite.

Everything here is plain NumPy; nothing in this file depends on tracejit
internals, so the helpers can be used to build references in any test.
"""
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

# The optimizing tier caches compiled objects on disk: the suite's go to a directory of
# its own, removed at the end, not into the user's ~/.cache/tracejit (a test that wants
# another sets its own; subprocesses inherit this one).
if "TRACEJIT_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile
    _cache = tempfile.mkdtemp(prefix="tracejit-tests-")
    os.environ["TRACEJIT_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, True)

# The five dtypes tracejit supports, in promotion order.
DTYPES = ("bool", "int32", "int64", "float32", "float64")
# every dtype tracejit computes in: the op table's differential tests run them all
SMALL_INT_DTYPES = ("int8", "int16", "uint8", "uint16", "uint32", "uint64")
ALL_DTYPES = DTYPES + SMALL_INT_DTYPES
# float16 as a result dtype (NumPy computes bool/int8/uint8 transcendentals in it): its
# ops compute in float32, rounded per op (tests/test_dtypes_half.py)
SUPPORTED = frozenset(np.dtype(d) for d in ALL_DTYPES + ("float16",))
FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64")

# ---------------------------------------------------------------------------
# Input domains.  Each domain maps a dtype to a generator of values.
#   any      generic values (floats in [-10, 10], ints in [-100, 100])
#   ties     few distinct values, so comparisons see equal elements and
#            logical ops see zeros
#   nonzero  safe divisors (|x| >= 0.5 for floats, ints never 0)
#   pos      strictly positive (log, sqrt, ...)
#   gt_m1    > -1 (log1p)
#   small    [-3, 3] floats / [-5, 5] ints (expm1, ...)
#   exp      [-20, 20]
#   tan      (-1.4, 1.4) floats / [-10, 10] ints
#   powbase  positive floats [0.1, 3] / ints [-4, 4]
#   powexp   floats [-3, 3] / ints [0, 4]  (no negative integer powers)
#   unit     [-1, 1] (arcsin, arccos, arctanh)
#   ge1      [1, 10] (arccosh)
#   shift    ints [-4, 70]: shift counts, including negative and >= the bit width
#   nonfinite floats mixing finite values with +-0, +-inf and +-nan; ints as any
#   cond     booleans regardless of requested dtype's semantics (~50% true)
# ---------------------------------------------------------------------------
_FLOAT_RANGES = {
    "any": (-10.0, 10.0),
    "small": (-3.0, 3.0),
    "exp": (-20.0, 20.0),
    "tan": (-1.4, 1.4),
    "powbase": (0.1, 3.0),
    "powexp": (-3.0, 3.0),
    "gt_m1": (-0.99, 100.0),
    "unit": (-1.0, 1.0),
    "ge1": (1.0, 10.0),
    "shift": (-4.0, 70.0),
    "nonfinite": (-10.0, 10.0),
}
_INT_RANGES = {
    "any": (-100, 100),
    "ties": (-3, 3),
    "small": (-5, 5),
    "exp": (-20, 20),
    "tan": (-10, 10),
    "powbase": (-4, 4),
    "powexp": (0, 4),
    "pos": (1, 100),
    "gt_m1": (0, 100),
    "unit": (-1, 1),
    "ge1": (1, 10),
    "shift": (-4, 70),
    "nonfinite": (-100, 100),
}
DOMAIN_NAMES = frozenset(_FLOAT_RANGES) | frozenset(_INT_RANGES) | {"nonzero", "cond"}


# Domains of the operands of each ufunc (keyed by the ufunc's __name__).
OP_DOMAINS = {
    "add": ("any", "any"), "subtract": ("any", "any"), "multiply": ("any", "any"),
    "divide": ("any", "nonzero"), "floor_divide": ("any", "nonzero"),
    "remainder": ("any", "nonzero"), "power": ("powbase", "powexp"),
    "negative": ("any",), "positive": ("any",), "absolute": ("any",),
    "equal": ("ties", "ties"), "not_equal": ("ties", "ties"), "less": ("ties", "ties"),
    "less_equal": ("ties", "ties"), "greater": ("ties", "ties"),
    "greater_equal": ("ties", "ties"),
    "logical_and": ("ties", "ties"), "logical_or": ("ties", "ties"),
    "logical_xor": ("ties", "ties"), "logical_not": ("ties",),
    "bitwise_and": ("any", "any"), "bitwise_or": ("any", "any"),
    "bitwise_xor": ("any", "any"), "invert": ("any",),
    "maximum": ("ties", "any"), "minimum": ("ties", "any"),
    "exp": ("exp",), "expm1": ("small",), "log": ("pos",), "log1p": ("gt_m1",),
    "log2": ("pos",), "sqrt": ("pos",), "square": ("any",), "reciprocal": ("nonzero",),
    "sign": ("ties",), "floor": ("any",), "ceil": ("any",), "sin": ("any",),
    "cos": ("any",), "tan": ("tan",), "tanh": ("any",), "arctan": ("any",),
    "logaddexp": ("any", "any"),
    "arcsin": ("unit",), "arccos": ("unit",), "sinh": ("any",), "cosh": ("any",),
    "arcsinh": ("any",), "arccosh": ("ge1",), "arctanh": ("unit",), "exp2": ("exp",),
    "log10": ("pos",), "cbrt": ("any",), "isnan": ("nonfinite",), "isinf": ("nonfinite",),
    "isfinite": ("nonfinite",), "signbit": ("nonfinite",), "arctan2": ("any", "any"),
    "hypot": ("any", "any"), "copysign": ("any", "nonfinite"), "fmod": ("any", "nonzero"),
    "float_power": ("powbase", "powexp"), "left_shift": ("any", "shift"),
    "right_shift": ("any", "shift"),
}


def make_input(rng, shape, dtype, domain="any"):
    """Random C-contiguous array of `shape`/`dtype` with values in `domain`."""
    dt = np.dtype(dtype)
    shape = tuple(shape)
    if domain not in DOMAIN_NAMES:
        raise ValueError(f"unknown domain {domain!r}")
    if dt == np.bool_ or domain == "cond":
        if domain in ("nonzero", "pos"):
            out = np.ones(shape, dtype=bool)
        else:
            out = rng.random(shape) < 0.5
        return np.array(out, dtype=dt, order="C")
    if dt.kind == "f":
        if domain == "ties":
            vals = rng.integers(-6, 7, size=shape) / 2.0
        elif domain == "nonzero":
            mag = rng.uniform(0.5, 10.0, size=shape)
            vals = np.where(rng.random(shape) < 0.5, -mag, mag)
        elif domain == "pos":
            vals = np.exp(rng.uniform(np.log(0.01), np.log(100.0), size=shape))
        else:
            lo, hi = _FLOAT_RANGES[domain]
            vals = rng.uniform(lo, hi, size=shape)
        if domain == "nonfinite":
            special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan])
            pick = rng.integers(0, 2 * len(special), size=shape)
            vals = np.where(pick < len(special), special[pick % len(special)], vals)
        return np.array(vals, dtype=dt, order="C")
    if dt.kind in "iu":
        if domain == "nonzero":
            mag = rng.integers(1, 21, size=shape)
            vals = np.where((rng.random(shape) < 0.5) & (dt.kind == "i"), -mag, mag)
        else:
            lo, hi = _INT_RANGES[domain]
            if dt.kind == "u":   # no negatives: the same spread above 0
                lo, hi = 0, hi - min(lo, 0)
            vals = rng.integers(lo, hi + 1, size=shape)
        return np.array(vals, dtype=dt, order="C")
    raise ValueError(f"make_input: unsupported dtype {dt}")


LAYOUTS = ("c", "T", "strided", "neg")


def arg_in_layout(rng, shape, dtype="float64", layout="c"):
    """An array of `shape` whose memory layout is `layout`: C-contiguous, a
    transpose, a step-2 slice, or a reversed (negative-stride) view."""
    shape = tuple(shape)
    if layout == "c" or len(shape) == 0:
        return make_input(rng, shape, dtype)
    if layout == "T":
        return make_input(rng, shape[::-1], dtype).T
    if layout == "strided":
        big = make_input(rng, tuple(2 * s + 1 for s in shape), dtype)
        return big[tuple(slice(1, None, 2) for _ in shape)]
    if layout == "neg":
        return make_input(rng, shape, dtype)[tuple(slice(None, None, -1) for _ in shape)]
    raise ValueError(layout)


def both_tiers(fn, args):
    """(optimizing tier's result, TinyCC's result, the tier's compiled function): fn
    compiled once per tier (tracejit.set_tier, left on "eager"); the tier's must have run
    fused C."""
    import tracejit
    tracejit.set_tier("tcc")
    f1 = tracejit.compile(fn)
    r1 = f1(*args)
    assert f1.tiers() == ["tcc"]
    tracejit.set_tier("eager")
    f2 = tracejit.compile(fn)
    r2 = f2(*args)
    assert f2.tiers() == ["opt"]
    return r2, r1, f2


def scalar_for(domain, kind):
    """A Python scalar (int or float) valid in `domain`.

    Float scalars are deliberately not exactly representable in float32 where
    the domain allows it, so weak-scalar casting errors show up.
    """
    ints = {"any": 3, "ties": 2, "nonzero": 3, "pos": 3, "gt_m1": 2, "small": 2,
            "exp": 2, "tan": 1, "powbase": 2, "powexp": 2, "cond": 1, "unit": 1, "ge1": 2,
            "shift": 3, "nonfinite": 3}
    floats = {"any": 0.1, "ties": 0.5, "nonzero": -2.7, "pos": 2.7, "gt_m1": 0.3,
              "small": 0.7, "exp": 1.3, "tan": 0.9, "powbase": 1.7, "powexp": 1.5,
              "cond": 1.0, "unit": 0.3, "ge1": 1.7, "shift": 1.5, "nonfinite": -2.5}
    return ints[domain] if kind == "int" else floats[domain]


# ---------------------------------------------------------------------------
# Comparison against NumPy
# ---------------------------------------------------------------------------
def default_tolerance(dtype):
    dt = np.dtype(dtype)
    if dt == np.float32:
        return 1e-6, 1e-6
    if dt == np.float16:   # one float16 ulp: SIMD float32 kernels differ by an ulp
        return 1e-3, 1e-3
    return 1e-12, 1e-13


def assert_matches_numpy(result, expected, *, exact=True, rtol=None, atol=None,
                         inputs=()):
    """`result` (from tracejit) must be a fresh ndarray equal to `expected`, or the same
    NumPy scalar type where `expected` is a NumPy scalar (np.sum(x): np.float64).

    exact=True  -> bitwise-equal values (NaNs in the same places).
    exact=False -> assert_allclose with per-dtype tolerances (equal_nan=True).
    `inputs`: arrays the result must not share memory with.
    """
    want = type(expected) if isinstance(expected, np.generic) else np.ndarray
    assert type(result) is want, f"result is {type(result).__name__}, not {want.__name__}"
    expected, result = np.asarray(expected), np.asarray(result)
    assert result.dtype == expected.dtype, f"dtype {result.dtype} != numpy's {expected.dtype}"
    assert result.shape == expected.shape, f"shape {result.shape} != numpy's {expected.shape}"
    assert result.flags.c_contiguous, "result is not C-contiguous"
    for i, inp in enumerate(inputs):
        if isinstance(inp, np.ndarray):
            assert not np.shares_memory(result, inp), f"result aliases input {i}"
    if exact or expected.dtype.kind in "biu":
        np.testing.assert_array_equal(result, expected)
    else:
        d_rtol, d_atol = default_tolerance(expected.dtype)
        np.testing.assert_allclose(result, expected,
                                   rtol=d_rtol if rtol is None else rtol,
                                   atol=d_atol if atol is None else atol,
                                   equal_nan=True)


def numpy_outcome(fn, *args):
    """Run `fn` with NumPy.  Returns ("ok", value), ("typeerror", exc) when NumPy
    refuses the dtype combination, or ("unsupported", dtype) when NumPy would
    compute in a dtype outside the five tracejit supports."""
    with np.errstate(all="ignore"):
        try:
            value = fn(*args)
        except TypeError as exc:  # includes numpy's UFuncTypeError
            return "typeerror", exc
    if not isinstance(value, np.generic):   # (a NumPy scalar keeps its type)
        value = np.asarray(value)
    if value.dtype not in SUPPORTED:
        return "unsupported", value.dtype
    return "ok", value


def run_or_raise(f, args, outcome, expected, *, exact=True, atol=None):
    """Checks a compiled call against numpy_outcome's verdict: the same values, or
    TypeError/TraceError where NumPy raises TypeError, or TraceError where NumPy
    computes in a dtype tracejit does not support."""
    import tracejit
    if outcome == "ok":
        result = f(*args)
        assert_matches_numpy(result, expected, exact=exact, atol=atol,
                             inputs=[a for a in args if isinstance(a, np.ndarray)])
    elif outcome == "typeerror":
        with pytest.raises((TypeError, tracejit.TraceError)):
            f(*args)
    else:
        with pytest.raises(tracejit.TraceError):
            f(*args)


def compare_results(result, expected, inputs, exact):
    """result (tracejit) equals expected (NumPy), recursing into tuples and lists,
    whose array members must not alias one another."""
    if isinstance(expected, (list, tuple)):
        assert type(result) is type(expected), f"{type(result).__name__} != {type(expected).__name__}"
        assert len(result) == len(expected)
        for r, e in zip(result, expected):
            compare_results(r, e, inputs, exact)
        flat = [r for r in result if isinstance(r, np.ndarray) and r.size]
        for i in range(len(flat)):
            for j in range(i + 1, len(flat)):
                assert not np.shares_memory(flat[i], flat[j]), f"outputs {i} and {j} alias"
        return
    assert_matches_numpy(result, expected, exact=exact, inputs=inputs)


def check_compiled(fn, *args, exact=True, f=None):
    """fn compiled must give NumPy's result, twice (trace, then replay), leave its
    inputs untouched and return fresh arrays."""
    import tracejit
    saved = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with np.errstate(all="ignore"):
        expected = fn(*saved)
    f = f or tracejit.compile(fn)
    for _ in range(2):
        compare_results(f(*args), expected, [a for a in args if isinstance(a, np.ndarray)], exact)
    for a, s in zip(args, saved):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, s)
    return f


def check_raises_like_numpy(fn, *args, match=None):
    """tracejit raises NumPy's exception type with NumPy's message (prefix `match`,
    or the whole message when match is None)."""
    import tracejit
    with np.errstate(all="ignore"), pytest.raises(Exception) as ref:
        fn(*args)
    with pytest.raises(type(ref.value)) as ei:
        tracejit.compile(fn)(*args)
    assert type(ei.value) is type(ref.value), (type(ei.value), type(ref.value))
    msg = str(ei.value)
    if match is None:
        assert msg == str(ref.value)
    else:
        assert str(ref.value).startswith(match), "bad test: NumPy's message differs"
        assert msg.startswith(match), msg


def resolve_loop(ufunc, in_dtypes):
    """NumPy's resolved dtypes for `ufunc` on `in_dtypes`, or None if NumPy
    raises."""
    in_dtypes = tuple(np.dtype(d) for d in in_dtypes)
    try:
        return ufunc.resolve_dtypes(in_dtypes + (None,) * ufunc.nout)
    except (TypeError, ValueError):
        return None


def loop_is_supported(ufunc, in_dtypes):
    res = resolve_loop(ufunc, in_dtypes)
    return res is not None and all(d in SUPPORTED for d in res)


@pytest.fixture
def rng(request):
    """Deterministic per-test random generator."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


# ---------------------------------------------------------------------------
# Subprocess helper (for cases that could crash the interpreter)
# ---------------------------------------------------------------------------
def _package_root():
    import tracejit

    # .../python/tracejit/__init__.py -> .../python
    return os.path.dirname(os.path.dirname(os.path.abspath(tracejit.__file__)))


def run_python(code, env_extra=None, timeout=120):
    """Run `code` in a fresh interpreter that can import tracejit.  The code
    must print one JSON document on its last stdout line.  Returns
    (returncode, parsed_json_or_None, stdout, stderr)."""
    env = dict(os.environ)
    root = _package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if env_extra:
        env.update(env_extra)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout)
    parsed = None
    lines = proc.stdout.strip().splitlines()
    if lines:
        try:
            parsed = json.loads(lines[-1])
        except ValueError:
            parsed = None
    return proc.returncode, parsed, proc.stdout, proc.stderr
