"""Reductions against NumPy: sum, prod, max/amax, min/amin, argmax, argmin, mean,
var, std, any, all as numpy functions, tracer methods and ufunc.reduce; axis/keepdims/
dtype/ddof; every dtype and shape class; views; fusion of producers and consumers;
NaN, ties, infinities; sizes around the 512-element block; the cache; the errors."""
import itertools
import math
import os
import re
import warnings

import numpy as np
import pytest

import tracejit
from conftest import DTYPES, FLOAT_DTYPES, assert_matches_numpy, make_input, numpy_outcome

THIS_FILE = os.path.basename(__file__)

# name -> input domain; results of EXACT reductions (and of any integer/bool result)
# must be bitwise equal to NumPy's, the others are compared with a tolerance.
REDUCTIONS = {"sum": "any", "prod": "prod", "max": "any", "min": "any", "argmax": "ties",
              "argmin": "ties", "mean": "any", "var": "any", "std": "any", "any": "ties",
              "all": "ties"}
EXACT = {"max", "min", "argmax", "argmin", "any", "all", "amax", "amin"}
ARG = {"argmax", "argmin"}
UFUNC_REDUCE = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min",
                "logical_or": "any", "logical_and": "all"}
SHAPES = [(), (0,), (1,), (7,), (3, 4), (2, 3, 4), (5, 0, 2), (1, 1, 3)]


def _data(rng, shape, dtype, domain):
    if domain == "prod":  # products stay far from int64 overflow and float32 range
        if np.dtype(dtype).kind == "f":
            return make_input(rng, shape, dtype, "small")
        if np.dtype(dtype).kind == "i":
            return rng.choice(np.array([-2, -1, 1, 2], dtype=dtype), size=shape)
        domain = "any"
    return make_input(rng, shape, dtype, domain)


def axis_specs(ndim, arg=False):
    """None, every axis, every negative axis, and (unless arg) tuples: empty,
    ascending, unordered, mixed-sign and all axes."""
    specs = [None] + list(range(ndim)) + list(range(-ndim, 0))
    if not arg:
        specs.append(())
        for k in range(1, ndim + 1):
            specs += list(itertools.combinations(range(ndim), k))
        if ndim >= 2:
            specs += [(ndim - 1, 0), (-1, 0)]
    return specs


def reduced_count(shape, axis):
    if axis is None:
        return math.prod(shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    return math.prod(shape[a] for a in axes)


def np_eval(fn, *args):
    """NumPy's result, or the exception NumPy raised (ValueError and friends)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Mean of empty slice, ddof
        try:
            status, value = numpy_outcome(fn, *args)
        except (ValueError, IndexError) as exc:
            return "error", exc
    assert status == "ok", (status, value)
    return "ok", value


def tolerances(name, expected, x, n, scale=None):
    """Tolerances for a reassociated float reduction of `n` elements of `x`:
    rtol 1e-5 (float32) / 1e-12 (float64), atol ~ sqrt(n) * max|x| * eps."""
    dt = np.dtype(expected.dtype)
    eps = float(np.finfo(dt).eps)
    xs = np.asarray(x, dtype=np.float64)
    finite = xs[np.isfinite(xs)]
    m = float(np.max(np.abs(finite))) if finite.size else 1.0
    if scale is None:  # var: squares; std: sqrt(var) has the error of a sum again
        scale = (1.0 + m) ** 2 if name == "var" else (1.0 + m if name == "std" else m)
    rtol = 1e-5 if dt == np.float32 else 1e-12
    return rtol, 8.0 * math.sqrt(max(n, 1)) * scale * eps + 1e-300


def check(f, fn, args, name, n=None, ctx="", scale=None, atol=None):
    """f(*args) must equal NumPy's fn(*args): same value/dtype/shape, or the same
    exception type and message."""
    status, expected = np_eval(fn, *args)
    if status == "error":
        with pytest.raises(type(expected)) as ei:
            f(*args)
        assert str(ei.value) == str(expected), ctx
        return
    result = f(*args)
    x = args[0]
    n = x.size if n is None else n
    try:
        if name in EXACT or expected.dtype.kind in "biu":
            assert_matches_numpy(result, expected, inputs=args)
        else:
            rtol, d_atol = tolerances(name, expected, x, n, scale)
            atol = d_atol if atol is None else atol
            assert_matches_numpy(result, expected, exact=False, rtol=rtol, atol=atol,
                                 inputs=args)
    except AssertionError as exc:
        raise AssertionError(f"{ctx}: {exc}") from None


# ----------------------------------------------------------------- the matrix
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_matrix(name, dtype, shape, rng):
    """np.<name>(x, axis=..., keepdims=...) for every axis spec and keepdims."""
    x = _data(rng, shape, dtype, REDUCTIONS[name])
    fn = getattr(np, name)
    for axis in axis_specs(len(shape), name in ARG):
        for kd in (False, True):
            g = (lambda a, axis=axis, kd=kd: fn(a, axis=axis, keepdims=kd))
            check(tracejit.compile(g), g, (x,), name, reduced_count(shape, axis),
                  ctx=f"{name} axis={axis} keepdims={kd}")
    # no keyword at all: axis=None, keepdims=False
    check(tracejit.compile(lambda a: fn(a)), fn, (x,), name, ctx="default")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(REDUCTIONS) + ["amax", "amin"])
def test_method_and_function_forms(name, dtype, rng):
    """x.name(...) (the tracer method), np.name(...) and positional axis."""
    x = _data(rng, (2, 3, 4), dtype, REDUCTIONS.get(name, "any"))
    for axis in axis_specs(3, name in ARG):
        n = reduced_count(x.shape, axis)
        for kd in (False, True):
            if name in ("amax", "amin"):
                g = (lambda a, axis=axis, kd=kd: getattr(np, name)(a, axis, keepdims=kd))
            else:
                g = (lambda a, axis=axis, kd=kd: getattr(a, name)(axis=axis, keepdims=kd))
            check(tracejit.compile(g), g, (x,), name, n, ctx=f"method axis={axis} kd={kd}")
        g = (lambda a, axis=axis: getattr(np, name)(a, axis))
        check(tracejit.compile(g), g, (x,), name, n, ctx=f"positional axis={axis}")
    if name not in ("amax", "amin"):
        g = (lambda a: getattr(a, name)())
        check(tracejit.compile(g), g, (x,), name, ctx="method, no args")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ufunc", sorted(UFUNC_REDUCE))
def test_ufunc_reduce(ufunc, dtype, rng):
    """np.<ufunc>.reduce: default axis 0, None, ints, tuples, keepdims."""
    uf = getattr(np, ufunc)
    name = UFUNC_REDUCE[ufunc]
    x = _data(rng, (2, 3, 4), dtype, REDUCTIONS[name])
    check(tracejit.compile(lambda a: uf.reduce(a)), uf.reduce, (x,), name, 2, ctx="default")
    for axis in axis_specs(3):
        for kd in (False, True):
            g = (lambda a, axis=axis, kd=kd: uf.reduce(a, axis=axis, keepdims=kd))
            check(tracejit.compile(g), g, (x,), name, reduced_count(x.shape, axis),
                  ctx=f"{ufunc}.reduce axis={axis} kd={kd}")


@pytest.mark.parametrize("ufunc", sorted(UFUNC_REDUCE))
def test_ufunc_reduce_full_signature(ufunc, rng):
    """ufunc.reduce(a, axis, dtype, out, keepdims) given positionally, as NumPy
    accepts for every reducing ufunc (dtype=None, out=None)."""
    uf = getattr(np, ufunc)
    x = make_input(rng, (3, 4), "float64")
    g = (lambda a: uf.reduce(a, 1, None, None, True))
    check(tracejit.compile(g), g, (x,), UFUNC_REDUCE[ufunc], 4)


# ----------------------------------------------------------------- dtype= and ddof
@pytest.mark.parametrize("out_dtype", DTYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sum", "prod"])
def test_sum_prod_dtype_argument(name, dtype, out_dtype, rng):
    """NumPy reduces in (and returns) exactly the requested dtype: sum(int32,
    dtype=int32) is int32, sum(x, dtype=bool) is a logical or."""
    x = _data(rng, (3, 5), dtype, "prod")
    for axis in (None, 0, 1):
        g = (lambda a, axis=axis: getattr(np, name)(a, axis=axis, dtype=out_dtype))
        check(tracejit.compile(g), g, (x,), name, reduced_count(x.shape, axis),
              ctx=f"axis={axis}")
        m = (lambda a, axis=axis: getattr(a, name)(axis, np.dtype(out_dtype)))
        check(tracejit.compile(m), m, (x,), name, reduced_count(x.shape, axis),
              ctx=f"method axis={axis}")


@pytest.mark.parametrize("out_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mean", "var", "std"])
def test_mean_var_std_dtype_argument(name, dtype, out_dtype, rng):
    x = make_input(rng, (4, 6), dtype)
    for axis in (None, 0, -1, (0, 1)):
        for kd in (False, True):
            g = (lambda a, axis=axis, kd=kd: getattr(np, name)(a, axis=axis, dtype=out_dtype,
                                                               keepdims=kd))
            check(tracejit.compile(g), g, (x,), name, reduced_count(x.shape, axis),
                  ctx=f"axis={axis} kd={kd}")


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_mean_integer_dtype_argument(dtype, rng):
    """np.mean(x, dtype=int) sums in that int type and returns it (truncated)."""
    x = make_input(rng, (4, 6), "int32")
    g = (lambda a: np.mean(a, axis=1, dtype=dtype))
    check(tracejit.compile(g), g, (x,), "mean")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["var", "std"])
def test_ddof(name, dtype, rng):
    """ddof 0..count+1: count - ddof <= 0 divides by zero (inf/nan) as NumPy does."""
    x = make_input(rng, (3, 4), dtype)
    for axis, count in ((None, 12), (0, 3), (1, 4), ((0, 1), 12)):
        for ddof in sorted({0, 1, 2, count - 1, count, count + 1}):
            g = (lambda a, axis=axis, ddof=ddof: getattr(np, name)(a, axis=axis, ddof=ddof))
            check(tracejit.compile(g), g, (x,), name, count, ctx=f"axis={axis} ddof={ddof}")
    g = (lambda a: getattr(a, name)(1, None, None, 1, True))  # positional ddof, keepdims
    check(tracejit.compile(g), g, (x,), name, 4, ctx="positional")


# ----------------------------------------------------------------- views
VIEWS = {"T": lambda b: b.T, "step2": lambda b: b[::2], "rev": lambda b: b[:, ::-1],
         "T3": lambda b: b.transpose(2, 0, 1)}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_noncontiguous_arguments(name, view, rng):
    """Views passed as arguments (read in place); argmax's flat index is in the
    view's logical C order."""
    dtype = "int64" if name == "sum" else "float64"
    base = _data(rng, (4, 6, 5) if view == "T3" else (6, 10), dtype, REDUCTIONS[name])
    x = VIEWS[view](base)
    assert not x.flags.c_contiguous
    for axis in axis_specs(x.ndim, name in ARG):
        for kd in (False, True):
            g = (lambda a, axis=axis, kd=kd: getattr(np, name)(a, axis=axis, keepdims=kd))
            check(tracejit.compile(g), g, (x,), name, reduced_count(x.shape, axis),
                  ctx=f"axis={axis} kd={kd}")


# ----------------------------------------------------------------- fusion
def _logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)) + m


def _logsumexp_flat(x):
    m = np.max(x, axis=1, keepdims=True)
    return np.log(np.exp(x - m).sum(axis=1)) + np.max(x, axis=1)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_cols(x):
    e = np.exp(x - np.amax(x, axis=0))
    return e / np.add.reduce(e)


def _layernorm(x, g, b):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def _logistic_logp(X, w, yv):
    return -np.sum(np.logaddexp(0, -yv * (X * w).sum(axis=1)))


FUSED = {
    "exp_times_bcast": (lambda x, y: np.sum(np.exp(x) * y, axis=1), [(6, 9), (9,)], "sum"),
    "bcast_reduced": (lambda x, y: np.sum(np.exp(x) * y, axis=1), [(6, 9), (6, 1)], "sum"),
    "outer_bcast": (lambda x, y: np.sum(x + y, axis=0, keepdims=True), [(5, 1), (1, 7)], "sum"),
    "max_expr": (lambda x, y: np.max(x * 2.0 - y, axis=0), [(6, 9), (9,)], "max"),
    "argmax_expr": (lambda x, y: np.argmax(np.abs(x - y), axis=1), [(6, 9), (6, 1)], "argmax"),
    "mean_sq": (lambda x, y: np.mean((x - y) ** 2, axis=(0, 2)), [(3, 4, 5), (4, 1)], "mean"),
    "count_gt": (lambda x, y: np.sum(x > y, axis=1), [(6, 9), (9,)], "sum"),
    "any_cmp": (lambda x, y: np.any(x > y + 9.0, axis=0), [(6, 9), (9,)], "any"),
    "all_cmp": (lambda x, y: (x < y + 15.0).all(axis=1), [(6, 9), (9,)], "all"),
    "centered": (lambda x, y: x - x.mean(axis=-1, keepdims=True), [(6, 9), (1,)], "mean"),
    "softmax": (lambda x, y: _softmax(x), [(6, 9), (1,)], "sum"),
    "softmax_cols": (lambda x, y: _softmax_cols(x * y), [(6, 9), (9,)], "sum"),
    "logsumexp": (lambda x, y: _logsumexp(x * y), [(6, 9), (9,)], "sum"),
    "logsumexp_flat": (lambda x, y: _logsumexp_flat(x), [(6, 9), (1,)], "sum"),
    "standardize": (lambda x, y: (x - x.mean(0)) / x.std(0), [(6, 9), (1,)], "std"),
    "sum_plus_input": (lambda x, y: x.sum(axis=1, keepdims=True) + y, [(6, 9), (6, 9)], "sum"),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", sorted(FUSED))
def test_fused_expressions(case, dtype, rng):
    """Producers computed inside the reduction loop, consumers reading its result."""
    fn, shapes, name = FUSED[case]
    args = tuple(make_input(rng, s, dtype, "small") for s in shapes)
    # terms are at most e^3 * 3 in magnitude
    check(tracejit.compile(fn), fn, args, name, n=math.prod(shapes[0]), scale=100.0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_layernorm(dtype, rng):
    x, g, b = (make_input(rng, s, dtype) for s in [(8, 33), (33,), (33,)])
    # normalized values: errors are a few ulps of |g| * |x - mu| / std + |b|
    check(tracejit.compile(_layernorm), _layernorm, (x, g, b), "var", n=33, scale=4.0)


@pytest.mark.parametrize("N,D", [(50, 3), (700, 5), (3, 600)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logistic_regression_log_density(N, D, dtype, rng):
    X, w = make_input(rng, (N, D), dtype, "small"), make_input(rng, (D,), dtype, "small")
    yv = np.where(rng.random(N) < 0.5, -1.0, 1.0).astype(dtype)
    # each of the N inner sums of D terms (|term| <= 9) is off by ~sqrt(D) * 9 * eps
    atol = 16.0 * N * math.sqrt(D) * 9.0 * float(np.finfo(dtype).eps)
    check(tracejit.compile(_logistic_logp), _logistic_logp, (X, w, yv), "sum", atol=atol)


def test_int_expression_sum_exact(rng):
    x, y = make_input(rng, (7, 600), "int32"), make_input(rng, (600,), "int64")
    fn = (lambda a, b: (np.sum(a * b, axis=1), np.prod(np.sign(a), axis=0),
                        np.max(a - b), np.argmin(a + b, axis=1)))
    for r, e in zip(tracejit.compile(fn)(x, y), fn(x, y)):
        assert_matches_numpy(r, e)


def test_several_reductions_tuple_and_dict(rng):
    """Several reductions (and elementwise results) of one input in one function."""
    x = make_input(rng, (5, 7), "float64", "ties")

    def fn(a):
        return ((a.sum(0), a.max(), np.argmin(a, axis=1), a * 2.0, a.sum(0)),
                {"m": a.mean(), "s": a.std(axis=1), "any": np.any(a > 2.0, axis=0),
                 "e": np.exp(a)})

    (t, d), (et, ed) = tracejit.compile(fn)(x), fn(x)
    assert type(t) is tuple and len(t) == 5 and sorted(d) == sorted(ed)
    assert not np.shares_memory(t[0], t[4])  # equal results are still two arrays
    for r, e in list(zip(t, et)) + [(d[k], ed[k]) for k in ed]:
        assert_matches_numpy(r, e, exact=False, inputs=[x])


def test_reduction_of_reduction(rng):
    x = make_input(rng, (4, 5, 6), "float64")
    y = make_input(rng, (4, 5, 6), "int32")
    fns = [lambda a: a.sum(axis=0).max(), lambda a: a.max(axis=1).argmin(),
           lambda a: np.mean(np.sum(a, axis=2), axis=0), lambda a: a.min(axis=2).std(),
           lambda a: np.argmax(a.sum(axis=(0, 2)) * a.sum(axis=(0, 1)).max()),
           lambda a: np.sum(a - a.mean(axis=0), axis=1)]
    for i, fn in enumerate(fns):
        check(tracejit.compile(fn), fn, (x,), "sum", n=x.size * 4, ctx=f"f64 fn {i}")
        check(tracejit.compile(fn), fn, (y,), "sum", n=y.size * 4, ctx=f"i32 fn {i}")


MISC = {
    "scalar_arg": (lambda a, s: np.sum(s) + a.sum(axis=0) * np.max(s * 2.0), "sum"),
    "argmax_of_scalar": (lambda a, s: np.argmax(s) + a.argmax(axis=1), "argmax"),
    "keepdims_then_T": (lambda a, s: a.sum(axis=0, keepdims=True).T * s, "sum"),
    "reduce_computed_view": (lambda a, s: np.sum((a * s).T, axis=0), "sum"),
    "argmax_computed_view": (lambda a, s: np.argmax((a * s).T[::-1]), "argmax"),
    "astype_then_sum": (lambda a, s: np.sum(a.astype(np.float32), axis=1), "sum"),
    "clip_of_sum": (lambda a, s: np.clip(a.sum(axis=1), -1.0, 1.0), "sum"),
    "where_min": (lambda a, s: np.where(a > 0, a, a.min(axis=0)), "min"),
    "argmax_consumer": (lambda a, s: a.argmax(axis=1, keepdims=True) * 2 + 1, "argmax"),
    "nested_consumers": (lambda a, s: (a / abs(a).sum(axis=0)).sum(axis=1) / abs(a).sum(),
                         "sum"),
    "count_and_any": (lambda a, s: (a > 0).sum(axis=0) + (a > s).any(), "sum"),
}


@pytest.mark.parametrize("case", sorted(MISC))
def test_reductions_with_scalars_views_and_mixed_ops(case, rng):
    fn, name = MISC[case]
    x = make_input(rng, (4, 6), "float64", "nonzero")
    check(tracejit.compile(fn), fn, (x, 1.5), name, n=x.size * 8, scale=10.0)


@pytest.mark.parametrize("dtype", ["bool", "int64", "float64"])
@pytest.mark.parametrize("name", ["sum", "prod", "any", "all", "mean", "var"])
def test_empty_reduction_is_identity(name, dtype):
    """A reduction over an empty axis is its identity (0, 1, False, True; NaN for
    mean/var), never the previous contents of the output buffer: the freed buffer
    of a poisoned array of the result's size is offered to the output first."""
    fn = getattr(np, name)
    for shape, axis in (((0,), None), ((3, 0), 1), ((5, 0, 2), 1), ((0, 4), 0)):
        x = np.zeros(shape, dtype=dtype)
        g = (lambda a, axis=axis: fn(a, axis=axis))
        expected = np_eval(g, x)[1]
        f = tracejit.compile(g)
        for poison in (7, 1, 0):
            junk = np.full(expected.shape, poison).astype(expected.dtype)
            del junk
            assert_matches_numpy(f(x), expected, exact=False)


# ----------------------------------------------------------------- special values
NAN = np.nan


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin", "any", "all", "sum"])
def test_nan(name, dtype):
    """max/min propagate NaN, argmax/argmin return the first NaN, any/all count
    NaN as true; NaN at the start, middle, end and in a later block."""
    fn = getattr(np, name)
    rows = [[NAN, 1.0, 2.0, 3.0], [1.0, 2.0, NAN, -1.0], [1.0, 5.0, 2.0, NAN],
            [NAN, NAN, NAN, NAN], [0.0, NAN, 0.0, NAN], [0.0, 0.0, 0.0, 0.0]]
    x = np.array(rows, dtype=dtype)
    long = np.zeros((3, 1500), dtype=dtype)
    long[0, 700], long[0, 1200], long[1, 1499], long[2, 0] = NAN, NAN, NAN, NAN
    long[:, 1000] = 7.0
    for arr in (x, long, np.ascontiguousarray(long.T), long.T):
        for axis in [None] + list(range(arr.ndim)):
            g = (lambda a, axis=axis: fn(a, axis=axis))
            check(tracejit.compile(g), g, (arr,), name, ctx=f"shape {arr.shape} axis={axis}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_ties_first_occurrence(name, dtype):
    """The first of equal extremes wins, also across blocks and along axis 0."""
    hi = np.array(True if dtype == "bool" else 5).astype(dtype)
    x = np.zeros((4, 1500), dtype=dtype)
    if name == "argmin":
        x = np.full((4, 1500), hi, dtype=dtype)
        hi = np.array(0).astype(dtype)
    x[0, [3, 600]] = hi
    x[1, [511, 512, 1499]] = hi
    x[2, [1024, 1025]] = hi
    fn = getattr(np, name)
    for arr in (x, x.T, np.ascontiguousarray(x.T), x[:, ::-1]):
        for axis in (None, 0, 1, -1):
            g = (lambda a, axis=axis: fn(a, axis=axis))
            check(tracejit.compile(g), g, (arr,), name, ctx=f"shape {arr.shape} axis={axis}")


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
def test_extreme_values(dtype):
    """Identities must not leak: arrays of +-inf (argmax of all -inf is 0, inf - inf
    is NaN) or of the integer type's own min/max; int32 sums do not wrap."""
    flt = np.dtype(dtype).kind == "f"
    lo, hi = (-np.inf, np.inf) if flt else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    x = np.array([[lo, lo, lo], [hi, hi, 1], [lo, 2, hi], [1, lo, 3]], dtype=dtype)
    for name in ["max", "min", "argmax", "argmin", "any", "all"] + (
            ["sum", "prod", "mean"] if flt else []):
        for axis in (None, 0, 1):
            g = (lambda a, axis=axis, fn=getattr(np, name): fn(a, axis=axis))
            check(tracejit.compile(g), g, (x,), name, ctx=f"{name} axis={axis}")
    if not flt:  # int64 values kept overflow-free
        big = np.full((3, 700), hi if dtype == "int32" else hi // 1000, dtype=dtype)
        check(tracejit.compile(lambda a: a.sum(axis=1)), lambda a: a.sum(axis=1), (big,), "sum")


# ----------------------------------------------------------------- sizes
def test_one_million_float32(rng):
    """tracejit accumulates float32 sums in float64, which is more accurate than
    NumPy's pairwise float32 sum: compare with the float64 sum of the same values
    (rtol 1e-5), not with NumPy's float32 result."""
    x = rng.uniform(0.0, 1.0, 1_000_000).astype(np.float32)
    x64, x2 = x.astype(np.float64), x.reshape(1000, 1000)
    for fn, arg, ref in [(lambda a: np.sum(a), x, x64.sum()), (lambda a: a.mean(), x, x64.mean()),
                         (lambda a: a.sum(axis=0), x2, x64.reshape(x2.shape).sum(axis=0)),
                         (lambda a: a.sum(axis=1), x2, x64.reshape(x2.shape).sum(axis=1))]:
        r = tracejit.compile(fn)(arg)
        assert type(r) is type(fn(arg)) and r.dtype == np.float32 and r.shape == np.shape(ref)
        np.testing.assert_allclose(r, ref, rtol=1e-5)
    assert_matches_numpy(tracejit.compile(lambda a: np.max(a))(x), np.max(x))
    assert_matches_numpy(tracejit.compile(lambda a: a.argmin())(x), np.argmin(x))


@pytest.mark.parametrize("n", [511, 512, 513, 1500])
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_block_boundaries(name, n, rng):
    """Sizes around the 512-element block along the reduced and the kept axes."""
    dtype = "int64" if name == "sum" else "float64"
    for shape in [(3, n), (n, 3), (2, n, 2)]:
        if name == "prod":  # float64 products of n values near 1 stay in range
            x = rng.uniform(0.95, 1.05, size=shape)
        else:
            x = _data(rng, shape, dtype, REDUCTIONS[name])
        for axis in axis_specs(len(shape), name in ARG):
            g = (lambda a, axis=axis: getattr(np, name)(a, axis=axis))
            check(tracejit.compile(g), g, (x,), name, reduced_count(shape, axis),
                  ctx=f"shape {shape} axis={axis}")


@pytest.mark.parametrize("n", [511, 512, 513, 1500])
def test_block_boundaries_last_element_counts(n):
    """The one element that decides the result is the last one (in the partial
    last block)."""
    x = np.zeros((2, n))
    x[0, -1], x[1, -1] = 1.0, -1.0
    b = np.zeros((2, n), dtype=bool)
    b[0, -1] = True
    cases = [(np.argmax, x), (np.argmin, x), (np.max, x), (np.min, x), (np.sum, x),
             (np.any, b), (np.all, ~b)]
    for fn, arr in cases:
        for a in (arr, arr.T, np.ascontiguousarray(arr.T)):
            for axis in (None, 0, 1):
                g = (lambda v, fn=fn, axis=axis: fn(v, axis=axis))
                check(tracejit.compile(g), g, (a,), fn.__name__, ctx=f"{a.shape} {axis}")


# ----------------------------------------------------------------- cache
def test_cache_hit_and_fresh_accumulators(rng):
    """A second call hits the cache and starts from fresh accumulators; new data
    are runtime inputs."""
    fn = (lambda a: (a.sum(axis=1), a.max(axis=0), a.argmin(), a.mean(), np.all(a < 9.0)))
    f = tracejit.compile(fn)
    x, y = make_input(rng, (5, 600), "float64"), make_input(rng, (5, 600), "float64")
    for k, arg in enumerate((x, x, y, x)):
        for r, e in zip(f(arg), fn(arg)):
            assert_matches_numpy(r, e, exact=False)
        info = f.cache_info()
        assert (info.hits, info.misses, info.variants) == (k, 1, 1)


def test_axis_is_static_not_runtime(rng):
    """An axis is part of the function: as a static argument each value is its own
    variant; as a runtime int it is read and guarded (csrc/trace/concrete.c): each
    value its own variant too."""
    x = make_input(rng, (3, 4), "float64")
    f = tracejit.compile(lambda a, axis: np.sum(a, axis=axis), static_argnames=("axis",))
    assert_matches_numpy(f(x, axis=1), x.sum(axis=1), exact=False)
    assert_matches_numpy(f(x, axis=0), x.sum(axis=0), exact=False)
    info = f.cache_info()
    assert (info.misses, info.variants, info.hits) == (2, 2, 0)
    assert "axis" in info.last_retrace
    assert_matches_numpy(f(x, axis=1), x.sum(axis=1), exact=False)
    assert_matches_numpy(f(x, axis=(0, 1)), x.sum(), exact=False)
    info = f.cache_info()
    assert (info.misses, info.variants, info.hits) == (3, 3, 1)
    g = tracejit.compile(lambda a, axis: np.sum(a, axis=axis))
    for axis in (1, 0, 1, -1):
        assert_matches_numpy(g(x, axis), x.sum(axis=axis), exact=False)
    info = g.cache_info()
    assert (info.variants, info.hits) == (3, 1)
    assert info.last_retrace.endswith(": 1 when traced, -1 now")   # the latest variant's


# ----------------------------------------------------------------- errors
AXIS_ERR = np.exceptions.AxisError
NUMPY_ERRORS = (  # (name, shape, axis, exception NumPy raises)
    [(n, sh, ax, ValueError) for n, sh, ax in [  # empty axis
        ("max", (0,), None), ("min", (0,), None), ("amax", (0, 3), 0), ("amin", (3, 0), 1),
        ("argmax", (0,), None), ("argmin", (5, 0, 2), 1), ("argmax", (0, 3), 0),
        ("max", (5, 0, 2), (0, 1)), ("min", (5, 0, 2), None)]]
    + [(n, (3, 4), ax, AXIS_ERR) for n in ("sum", "max", "argmax", "mean", "var", "any", "prod")
       for ax in (2, -3, 5) + (() if n == "argmax" else ((0, 2), (-3,)))]
    + [(n, (3, 4), ax, ValueError) for n in ("sum", "prod", "max", "min", "mean", "var", "std",
                                             "any", "all") for ax in ((0, 0), (1, -1), (0, 1, 0))]
    + [(n, (3, 4), ax, TypeError) for n in ("argmax", "argmin") for ax in ((0, 1), (0,), (1,))])


@pytest.mark.parametrize("name,shape,axis,exc", NUMPY_ERRORS,
                         ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_numpy_errors_are_reproduced(name, shape, axis, exc):
    """Empty max/min/argmax/argmin (ValueError), axis out of range (AxisError),
    duplicate axis (ValueError), argmax over a tuple (TypeError): NumPy's exception
    type and message, at trace time, for the function and the method."""
    x = np.zeros(shape)
    fn = getattr(np, name)
    with pytest.raises(exc) as ref:
        fn(x, axis=axis)
    assert type(ref.value) is exc
    method = {"amax": "max", "amin": "min"}.get(name, name)
    for g in (lambda a: fn(a, axis=axis), lambda a: getattr(a, method)(axis)):
        f = tracejit.compile(g)
        with pytest.raises(exc) as ei:
            f(x)
        assert type(ei.value) is exc and str(ei.value) == str(ref.value)
        assert f.cache_info().variants == 0


_OUT = np.empty(4)
UNSUPPORTED = [  # (function, parameter the TraceError must name); one call per line
    (lambda a: np.var(a, axis=0, out=_OUT), "out"),
    (lambda a: a.max(axis=0, initial=0.0), "initial"),
    (lambda a: np.mean(a, axis=0, where=a > 0), "where"),
    (lambda a: np.logical_or.reduce(a, out=_OUT), "out"),
    (lambda a: a.std(axis=0, out=np.empty(4)), "out"),
    (lambda a: np.any(a, where=False), "where"),
    (lambda a: np.prod(a, initial=2.0), "initial"),
    (lambda a: np.minimum.reduce(a, where=a > 0, initial=np.inf), "where|initial"),
    (lambda a: np.logical_or.reduce(a, initial=False), "initial"),
    (lambda a: np.logical_and.reduce(a, where=a > 0), "where"),
    (lambda a: a.var(where=a > 0), "where"),
]


@pytest.mark.parametrize("fn,param", UNSUPPORTED,
                         ids=["var_out", "max_initial", "mean_where", "or_reduce_out",
                              "std_out", "any_where_false", "prod_initial", "min_where",
                              "or_initial", "and_where", "var_where"])
def test_unsupported_parameters(fn, param):
    x = make_input(np.random.default_rng(0), (3, 4), "float64")
    np_eval(fn, x)  # NumPy itself accepts the call
    f = tracejit.compile(fn)
    with pytest.raises(tracejit.TraceError) as ei:
        f(x)
    msg = str(ei.value)
    assert re.search(rf"({param})=", msg), msg
    assert f"{THIS_FILE}:{fn.__code__.co_firstlineno}" in msg, msg
    assert f.cache_info().variants == 0


def test_where_true_and_out_none_are_accepted(rng):
    x = make_input(rng, (3, 4), "float64")
    fns = [lambda a: np.sum(a, axis=1, where=True), lambda a: a.max(0, None, False),
           lambda a: np.add.reduce(a, out=None), lambda a: np.mean(a, where=True),
           lambda a: np.argmax(a, 1, None)]
    for fn in fns:
        check(tracejit.compile(fn), fn, (x,), "sum")
