"""NumPy functions by composition (python/tracejit/_impls_np.py) against NumPy: each
compiled once and called on two different inputs (the replay must not keep the first
call's values), over dtypes, shapes and special values; their refusals' messages."""
import warnings

import numpy as np
import pytest

import tracejit

F = ["float32", "float64"]


def inputs(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-9, 9, shape).astype(dtype)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    flat = x.reshape(-1)
    specials = np.array([0.5, -0.5, 1.5, 2.5, -2.5, -0.0, 0.49999997, np.nan, np.inf, -np.inf,
                         -0.3, 1e20, 2.0 ** 52 + 1], dtype)
    flat[: min(flat.size, specials.size)] = specials[: flat.size]
    return x


def same(got, want, exact=True):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if exact:
        assert got.dtype == want.dtype, (got.dtype, want.dtype)
        np.testing.assert_array_equal(got, want)
        if want.dtype.kind == "f":   # and the sign of every zero
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5 if want.dtype == np.float32 else 1e-12,
                                   atol=1e-6, equal_nan=True)


def check(fn, *shapes_dtypes, exact=True, make=inputs, **kw):
    f = tracejit.compile(fn, **kw)
    for seed in (0, 1):
        args = [make(s, d, seed + 10 * i) for i, (s, d) in enumerate(shapes_dtypes)]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # NumPy's all-NaN slices
            want = fn(*args)
            got = f(*args)
        if isinstance(want, tuple):
            for g, w in zip(got, want):
                same(g, w, exact)
        else:
            same(got, want, exact)


@pytest.mark.parametrize("dtype", F + ["int64"])
@pytest.mark.parametrize("name", ["rint", "trunc", "fix", "round", "around"])
def test_rounding(name, dtype):
    check(getattr(np, name), ((7, 5), dtype))


@pytest.mark.parametrize("decimals", [1, 2, -1])
@pytest.mark.parametrize("dtype", F)
def test_round_decimals(decimals, dtype):
    check(lambda x: np.round(x, decimals), ((40,), dtype))


@pytest.mark.parametrize("dtype", F)
def test_rounding_inside_an_expression(dtype):
    check(lambda x: np.rint(x * 2) + np.trunc(x) - np.fix(-x), ((3, 9), dtype))


@pytest.mark.parametrize("kw", [{}, {"rtol": 1e-2}, {"atol": 0.5}, {"equal_nan": True}])
@pytest.mark.parametrize("dtype", F)
def test_isclose_allclose(kw, dtype):
    def fn(x, y):
        y = np.where(np.abs(y) < 1, x, y)   # some equal pairs, some NaN and inf pairs
        return np.isclose(x, y, **kw), np.allclose(x, x * 1.0000001, **kw)
    check(fn, ((6, 5), dtype), ((6, 5), dtype))


@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("dtype", F + ["int64"])
def test_counts_and_ranges(axis, dtype):
    check(lambda x: (np.count_nonzero(x, axis=axis), np.ptp(x, axis=axis)), ((6, 5), dtype))


@pytest.mark.parametrize("name", ["nansum", "nanprod", "nanmax", "nanmin", "nanmean"])
@pytest.mark.parametrize("axis", [None, 1])
@pytest.mark.parametrize("dtype", F)
def test_nan_reductions(name, axis, dtype):
    def fn(x):
        x = np.where(np.abs(x) > 10, np.nan, x)   # infinities become NaNs; row 0 all NaN
        x = np.where(np.arange(5) < 5, x, x)
        return getattr(np, name)(np.concatenate([np.full((1, 5), np.nan, x.dtype), x]), axis=axis)
    check(fn, ((4, 5), dtype), exact=name not in ("nanmean", "nansum", "nanprod"))


@pytest.mark.parametrize("dtype", F)
def test_average(dtype):
    check(lambda x, w: (np.average(x), np.average(x, axis=1, weights=np.abs(w) + 1)),
          ((4, 6), dtype), ((6,), dtype), exact=False)
    check(lambda x, w: np.average(x, weights=np.abs(w) + 1, returned=True),
          ((4, 6), dtype), ((4, 6), dtype), exact=False)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 4)], ids=str)
def test_atleast(shape):
    check(lambda x: (np.atleast_1d(x) + 1, np.atleast_2d(x) * 2, np.atleast_3d(x) - 1),
          (shape, "float64"))


@pytest.mark.parametrize("offset", [0, 1, -2, 7])
@pytest.mark.parametrize("shape,axes", [((4, 6), (0, 1)), ((3, 4, 5), (0, 2)), ((3, 4, 5), (2, 1))], ids=str)
def test_diagonal_and_trace(shape, axes, offset):
    check(lambda x: np.diagonal(x, offset, *axes) * 1, (shape, "float64"))
    check(lambda x: np.trace(x, offset, *axes), (shape, "float64"), exact=False)
    check(lambda x: np.diagonal(x.T, offset) + 0, ((6, 4), "int64"))


@pytest.mark.parametrize("k", [0, 2, -1])
def test_diag(k):
    check(lambda v: np.diag(v, k), ((4,), "float64"))
    check(lambda m: np.diag(m * 2, k), ((4, 5), "int64"))


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_repeat_and_tile(axis):
    check(lambda x: np.repeat(x, 3, axis=axis), ((2, 3), "float64"))
    if axis is not None:
        reps = [1, 0, 2][: 2 if axis == 0 else 3]
        check(lambda x: np.repeat(x, reps, axis=axis), ((2, 3), "int64"))
    for reps in (2, (2, 1), (1, 2, 3)):
        check(lambda x: np.tile(x, reps), ((2, 3), "float32"))


def test_kron_meshgrid_cross():
    check(lambda a, b: np.kron(a, b), ((2, 3), "float64"), ((3, 2), "float64"))
    check(lambda a, b: np.kron(a, b), ((3,), "int64"), ((2, 2), "int64"))
    for idx in ("xy", "ij"):
        check(lambda a, b, c: np.meshgrid(a, b, c, indexing=idx), ((3,), "float64"),
              ((4,), "float64"), ((2,), "float64"))
        check(lambda a, b: np.meshgrid(a, b, indexing=idx, sparse=True), ((3,), "float64"),
              ((4,), "float64"))
    check(lambda a, b: np.cross(a, b), ((5, 3), "float64"), ((5, 3), "float64"))
    with pytest.warns(DeprecationWarning, match="2-dimensional vectors are deprecated"):
        check(lambda a, b: np.cross(a, b), ((5, 2), "float64"), ((5, 2), "float64"))
    check(lambda a, b: np.cross(a, b, axis=0), ((3, 4), "float64"), ((3, 4), "float64"))


def sorted_make(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(-5, 5, shape)).astype(dtype)


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_digitize(side):
    def fn(a, v):
        v = np.concatenate([v, a[:3], np.array([np.nan, -np.inf, np.inf])])   # ties, NaN
        return np.searchsorted(a, v, side=side), np.digitize(v, a, right=side == "right")
    check(fn, ((9,), "float64"), ((7,), "float64"), make=sorted_make)
    edges = np.array([4.0, 1.0, -1.0])   # decreasing bins
    check(lambda v: np.digitize(v, edges, right=side == "right"), ((12,), "float64"))


def test_polyval_interp():
    check(lambda p, x: np.polyval(p, x), ((5,), "float64"), ((3, 4), "float64"))
    check(lambda p, x: np.polyval(p, x), ((3,), "float32"), ((6,), "float32"))

    def interp(xp, x, fp):
        x = np.concatenate([x * 2, xp[:2], np.array([-9.0, 9.0])])   # outside, at knots
        return np.interp(x, xp, fp), np.interp(x, xp, fp, left=-1.0, right=7.0)
    check(interp, ((6,), "float64"), ((10,), "float64"), ((6,), "float64"), make=sorted_make,
          exact=False)


def test_unravel_index_cov_corrcoef():
    check(lambda x: np.unravel_index(np.argmax(x, axis=1), (2, 3)), ((4, 6), "float64"))
    check(lambda x: np.unravel_index(np.argmax(x), x.shape, order="F"), ((4, 6), "float64"))
    check(lambda x: np.cov(x), ((3, 8), "float64"), exact=False)
    check(lambda x, y: np.cov(x, y, rowvar=False, ddof=0), ((8, 3), "float64"), ((8,), "float64"),
          exact=False)
    check(lambda x: np.corrcoef(x), ((3, 8), "float64"), exact=False)


def test_refusals_name_the_function_and_argument():
    x = np.ones((3, 4))
    with pytest.raises(tracejit.TraceError, match=r"numpy.repeat's repeats is a traced value"):
        tracejit.compile(lambda x: np.repeat(x, x.astype(np.int64)[0]))(x)
    with pytest.raises(tracejit.TraceError, match=r"numpy.interp\(period=\) is not supported"):
        tracejit.compile(lambda x: np.interp(x, x[0], x[1], period=2.0))(x)
    with pytest.raises(tracejit.TraceError, match=r"numpy.rint\(out=, where=, ...\)"):
        tracejit.compile(lambda x: np.rint(x, out=x))(x)
    with pytest.raises(tracejit.TraceError, match=r"numpy.searchsorted\(sorter=\)"):
        tracejit.compile(lambda x: np.searchsorted(x[0], x[1], sorter=np.arange(4)))(x)
    with pytest.raises(ValueError, match="bins must be monotonically"):
        tracejit.compile(lambda x: np.digitize(x, [1.0, 3.0, 2.0]))(x)


def test_methods_by_composition():
    check(lambda x: (x.repeat(2, axis=0), x.diagonal(1), x.trace(), x.round(1),
                     x[0].searchsorted(x[1])), ((3, 4), "float64"), exact=False,
          make=sorted_make)
    x = np.ones((2, 2))
    with pytest.raises(tracejit.TraceError, match=r"ndarray.sort is not supported"):
        tracejit.compile(lambda x: x.sort())(x)


@pytest.mark.parametrize("right", [False, True])
def test_digitize_of_traced_bins_follows_their_direction_at_every_call(right):
    # bins as an argument (or an array from outside, traced too): increasing at one
    # call, decreasing at the next, non-monotonic refused as NumPy refuses
    f = tracejit.compile(lambda v, b: np.digitize(v, b, right=right))
    v = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, 4.0, 9.0])
    for b in ([-1.0, 1.0, 4.0], [4.0, 1.0, -1.0], [2.0, 2.0, 0.0]):
        b = np.array(b)
        np.testing.assert_array_equal(f(v, b), np.digitize(v, b, right=right))
    with pytest.raises(ValueError, match="bins must be monotonically increasing or decreasing"):
        f(v, np.array([1.0, -1.0, 4.0]))
