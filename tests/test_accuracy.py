"""Accuracy of the elementary functions (csrc/emit/vmath.h) against correctly rounded
results: within 2 ulp for float32 and 4 ulp for float64, over random bit patterns in
each function's range, dense sweeps around its thresholds and special values.

exp, expm1, log, log1p, tanh, sin, cos and power run through @tracejit.compile (the
primitives); sigmoid, softplus and erf, which no NumPy ufunc reaches, through the
_C._vmath testing hook (the same header in the same kind of loop). References: float32
in long double (64-bit significand), float64 in long double (mpmath for erf); the error
of a result is |got - ref| / ulp(ref), ulp taken at the reference's binade in the
result dtype. Special inputs: NaN-ness, infinities and signed zeros must match NumPy
(or the rounded reference where NumPy has no such function) exactly.

TRACEJIT_ACCURACY_N (default 100000) sets the random inputs per function and dtype;
`python tests/test_accuracy.py` prints the table of measured maxima.
"""
import math
import zlib
import os

import numpy as np
import pytest

import tracejit
from tracejit import _C

N = int(os.environ.get("TRACEJIT_ACCURACY_N", "100000"))
LD = np.longdouble
BOUND = {np.float32: 2.0, np.float64: 4.0}
UINT = {np.float32: np.uint32, np.float64: np.uint64}
PREC = {np.float32: 24, np.float64: 53}
EMIN = {np.float32: -149, np.float64: -1074}
MEASURED = {}


def _sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


def _erf_ref(x):
    if x.dtype == np.float32:     # math.erf (glibc, < 1 ulp of float64) is plenty
        return np.array([math.erf(v) for v in x.astype(np.float64)], dtype=LD)
    mp = pytest.importorskip("mpmath")
    mp.mp.prec = 80
    return np.array([LD(str(mp.erf(mp.mpf(float(v))))) if v != 0 else LD(v) for v in x], dtype=LD)


# name: (NumPy function or None, reference on long double, hook name or None)
FUNCS = {
    "exp": (np.exp, np.exp, None),
    "expm1": (np.expm1, np.expm1, None),
    "log": (np.log, np.log, None),
    "log1p": (np.log1p, np.log1p, None),
    "tanh": (np.tanh, np.tanh, None),
    "sin": (np.sin, np.sin, None),
    "cos": (np.cos, np.cos, None),
    "sigmoid": (None, _sigmoid_ref, "sigmoid"),
    "softplus": (None, lambda x: np.logaddexp(LD(0), x), "softplus"),
    "erf": (None, _erf_ref, "erf"),
}

_COMPILED = {}


def evaluate(name, *xs):
    np_fn, _, hook = FUNCS[name] if name != "pow" else (np.power, None, None)
    if hook is not None:
        out = np.empty_like(xs[0])
        _C._vmath(hook, out, *[np.ascontiguousarray(x) for x in xs])
        return out
    if name not in _COMPILED:
        _COMPILED[name] = tracejit.compile(lambda *a: np_fn(*a))
    return _COMPILED[name](*xs)


def bit_patterns(dt, lo, hi, n, rng, signed=True):
    """n values whose magnitudes are uniform over the bit patterns from lo to hi."""
    u = UINT[dt]
    a, b = np.array([lo, hi], dtype=dt).view(u)
    bits = rng.integers(int(a), int(b), n, dtype=np.uint64, endpoint=True).astype(u)
    x = bits.view(dt)
    return np.where(rng.random(n) < 0.5, -x, x) if signed else x


def around(dt, points, k=300):
    """k consecutive floats on each side of each point."""
    out = []
    for p in points:
        p = dt(p)
        lo, hi = p, p
        for _ in range(k):
            lo, hi = np.nextafter(lo, dt(-np.inf)), np.nextafter(hi, dt(np.inf))
            out += [lo, hi]
        out.append(p)
    return np.array(out, dtype=dt)


def specials(dt):
    f = np.finfo(dt)
    v = [0.0, np.inf, np.nan, f.smallest_subnormal, f.smallest_normal, f.smallest_normal / 3,
         f.max, f.eps, 1.0, 0.5, 2.0, 1e-30, 1e30, 3.0, 10.0, 100.0, 1000.0]
    v = np.array(v, dtype=dt)
    return np.concatenate([v, -v])


def ulp_error(got, ref, dt):
    """|got - ref| in ulps of ref (inf where got is off in kind: nan, inf, finite)."""
    rounded = ref.astype(dt)
    err = np.zeros(len(ref))
    ref_nan, got_nan = np.isnan(ref), np.isnan(got)
    inf = np.isinf(rounded)
    bad = (ref_nan != got_nan) | (inf & (got != rounded)) | (~inf & ~ref_nan & np.isinf(got))
    fin = ~ref_nan & ~inf & ~bad
    r = np.abs(ref[fin])
    _, e = np.frexp(np.where(r == 0, LD(1), r))
    e = np.maximum(e.astype(np.int64) - PREC[dt], EMIN[dt])
    ulp = np.ldexp(LD(1), e)
    err[fin] = np.asarray(np.abs(got[fin].astype(LD) - ref[fin]) / ulp, dtype=np.float64)
    err[bad] = np.inf
    return err


def check(name, dt, xs, got, ref, label):
    with np.errstate(all="ignore"):
        err = ulp_error(got, ref, dt)
    worst = int(np.argmax(err))
    key = (name, dt.__name__)
    MEASURED[key] = max(MEASURED.get(key, 0.0), float(err[worst]))
    assert err[worst] <= BOUND[dt], (
        f"{name} {dt.__name__} ({label}): {err[worst]:.3f} ulp at x={[x[worst] for x in xs]!r}: "
        f"got {got[worst]!r}, want {ref[worst]!r}")


def inputs(name, dt, rng):
    f32 = dt == np.float32
    n = N
    big = 120.0 if f32 else 760.0
    if name in ("exp", "expm1", "sigmoid"):
        th = [88.72283935546875, -87.3365478515625, -103.97208404541015625, 0.34657359, -0.34657359,
              -17.0, -30.0] if f32 else [709.782712893384, -708.3964185322641, -745.1332191019412,
                                          0.34657359027997264, -37.5, 19.0]
        parts = [bit_patterns(dt, 0, big, n, rng), rng.uniform(-big, big, n // 4).astype(dt),
                 around(dt, th)]
    elif name == "softplus":
        parts = [bit_patterns(dt, 0, np.finfo(dt).max, n // 4, rng), bit_patterns(dt, 0, big, n, rng),
                 rng.uniform(-60, 60, n // 4).astype(dt), around(dt, [0.0, 17.0, -17.0, 37.0, -37.0])]
    elif name == "log":
        parts = [bit_patterns(dt, 0, np.inf, n, rng, signed=False),
                 rng.uniform(0.5, 2, n // 4).astype(dt),
                 around(dt, [1.0, 0.70710678118654752, 1.4142135623730951, np.finfo(dt).smallest_normal])]
    elif name == "log1p":
        parts = [bit_patterns(dt, 0, np.inf, n // 2, rng, signed=False),
                 -bit_patterns(dt, 0, 1.0, n // 2, rng, signed=False),
                 rng.uniform(-0.5, 1, n // 4).astype(dt),
                 around(dt, [-1.0, 0.0, -0.29289321881345248, 0.41421356237309505, 1.0, 2.0 ** (PREC[dt] + 1)])]
    elif name == "tanh":
        parts = [bit_patterns(dt, 0, 40.0, n, rng), rng.uniform(-5, 5, n // 4).astype(dt),
                 around(dt, [0.55, -0.55, 9.0, 19.06, 0.0])]
    elif name == "erf":
        m = n if f32 else max(2000, n // 10)     # mpmath references are slow
        parts = [bit_patterns(dt, 0, 7.0, m, rng), rng.uniform(-7, 7, m // 4).astype(dt),
                 around(dt, [1.5, 2.0, 6.0, 3.92, -1.5, -2.0], k=50)]
    elif name in ("sin", "cos"):
        k = np.arange(1, 200001, 97, dtype=np.float64)
        parts = [bit_patterns(dt, 0, 2.0 ** 34, n, rng), rng.uniform(-100, 100, n // 4).astype(dt),
                 bit_patterns(dt, 2.0 ** 30, np.finfo(dt).max, n // 50, rng),
                 (k * np.pi / 2).astype(dt), (-k * np.pi / 2).astype(dt),
                 around(dt, [2.0 ** 30, -(2.0 ** 30), np.pi / 4, 3 * np.pi / 4], k=50)]
    return np.concatenate(parts)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUNCS))
def test_unary_accuracy(name, dt):
    rng = np.random.default_rng(zlib.crc32(f"{name} {dt.__name__}".encode()))
    x = inputs(name, dt, rng)
    with np.errstate(all="ignore"):
        got = evaluate(name, x)
        ref = FUNCS[name][1](x.astype(LD))
    assert got.dtype == dt
    check(name, dt, [x], got, ref, "random and sweeps")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUNCS))
def test_unary_specials(name, dt):
    x = specials(dt)
    with np.errstate(all="ignore"):
        got = evaluate(name, x)
        ref = FUNCS[name][1](x.astype(LD))
        np_fn = FUNCS[name][0]
        want = np_fn(x) if np_fn is not None else ref.astype(dt)
    check(name, dt, [x], got, ref, "specials")
    exact = np.isnan(want) | np.isinf(want) | (want == 0)
    for g, w, v in zip(got[exact], want[exact], x[exact]):
        assert (np.isnan(g) and np.isnan(w)) or (g == w and np.signbit(g) == np.signbit(w)), \
            f"{name}({v!r}) {dt.__name__}: got {g!r}, want {w!r}"


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_pow_accuracy(dt):
    rng = np.random.default_rng(7 if dt == np.float32 else 8)
    n = N
    x = np.concatenate([bit_patterns(dt, 0, np.inf, n, rng, signed=False),
                        rng.uniform(0, 4, n // 2).astype(dt),
                        1 + rng.uniform(-1e-3, 1e-3, n // 4).astype(dt),
                        -rng.uniform(0, 10, n // 4).astype(dt)])
    m = len(x)
    lim = np.log(np.finfo(dt).max)
    lx = np.log(np.abs(x.astype(np.float64)))
    y = rng.uniform(-1, 1, m) * np.where(lx == 0, 1e6, np.minimum(lim * 1.1 / np.maximum(np.abs(lx), 1e-300), 1e6))
    y = np.where(x < 0, np.round(y), y).astype(dt)                   # negative bases: integer y
    y[: m // 8] = rng.integers(-60, 60, m // 8).astype(dt)           # small integer exponents
    with np.errstate(all="ignore"):
        got = evaluate("pow", x, y)
        ref = np.power(x.astype(LD), y.astype(LD))
    check("pow", dt, [x, y], got, ref, "random")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_pow_specials(dt):
    s = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0,
                  2.5, -2.5, 1e-30, 1e30, np.finfo(dt).smallest_subnormal, 2.0 ** 60, -(2.0 ** 60) - 2 ** 40,
                  np.finfo(dt).max], dtype=dt)
    x, y = [a.ravel() for a in np.meshgrid(s, s)]
    with np.errstate(all="ignore"):
        got = evaluate("pow", x, y)
        want = np.power(x, y)
        ref = np.power(x.astype(LD), y.astype(LD))
    sx = np.isnan(x) | np.isinf(x) | (x == 0) | (np.abs(x) == 1)
    sy = np.isnan(y) | np.isinf(y) | (y == 0)
    exact = sx | sy | np.isnan(want)          # C99's special cases; the rest within bounds
    for g, w, a, b in zip(got[exact], want[exact], x[exact], y[exact]):
        assert (np.isnan(g) and np.isnan(w)) or (g == w and np.signbit(g) == np.signbit(w)), \
            f"pow({a!r}, {b!r}) {dt.__name__}: got {g!r}, want {w!r}"
    finite = ~exact
    check("pow", dt, [x[finite], y[finite]], got[finite], ref[finite], "specials")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_hook_matches_compiled_primitives(dt):
    """The _vmath loops and the primitives run the same code: bitwise equal results."""
    x = np.random.default_rng(3).normal(0, 20, 5000).astype(dt)
    for name in ("exp", "expm1", "tanh", "sin", "cos"):
        out = np.empty_like(x)
        _C._vmath(name, out, x)
        np.testing.assert_array_equal(out, evaluate(name, x))


def test_hook_errors():
    x = np.ones(3)
    with pytest.raises(ValueError, match="unknown function 'nope'"):
        _C._vmath("nope", np.empty(3), x)
    with pytest.raises(TypeError, match="'pow' takes 2 input"):
        _C._vmath("pow", np.empty(3), x)
    with pytest.raises(TypeError, match="one dtype and length"):
        _C._vmath("exp", np.empty(3, np.float32), x)
    with pytest.raises(TypeError, match="one dtype and length"):
        _C._vmath("exp", np.empty(3, np.int64), np.ones(3, np.int64))


def test_sin_cos_huge_arguments_take_the_fixup():
    """Past 2^30 the fast reduction is not exact: the fixup pass must produce libm's values."""
    for dt in (np.float32, np.float64):
        x = np.array([2.0 ** 30, 1e10, -1e15, 1e22, np.finfo(dt).max, 1.0, 2.0 ** 29], dtype=dt)
        for name, f in (("sin", np.sin), ("cos", np.cos)):
            got = evaluate(name, x)
            ref = f(x.astype(LD))
            assert np.all(ulp_error(got, ref, dt) <= 1.0), (name, dt, got, ref)


def test_report_measured_maxima():
    """Prints the maxima measured above (run with -s, or `python tests/test_accuracy.py`)."""
    if not MEASURED:
        pytest.skip("runs after the accuracy tests")
    print(f"\nmax ulp error (N={N}; bounds: float32 2, float64 4)")
    for name in sorted({k[0] for k in MEASURED}):
        row = [f"{MEASURED[(name, d)]:.3f}" if (name, d) in MEASURED else "-" for d in ("float32", "float64")]
        print(f"  {name:9s} float32 {row[0]:>7s}  float64 {row[1]:>7s}")


if __name__ == "__main__":
    import sys
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", "-s",
                          "-o", "addopts=", "--no-header"] + sys.argv[1:]))
