"""Reduction groups in the optimizing tier (csrc/emit/emit_fused.c): sums, products,
max and min folded into their accumulator inside the fused element loop. Each case
runs on the tier, on TinyCC and in NumPy: vertical folds (the inner dim kept) and all
integer and max/min results equal TinyCC's bit for bit; horizontal float sums may
reassociate within a block (as TinyCC's tj_rh_ does) and are compared closely."""
import shutil

import numpy as np
import pytest

import tracejit

from conftest import arg_in_layout, both_tiers, make_input

HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang"))
pytestmark = pytest.mark.skipif(not HAVE_CC, reason="no system C compiler")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tier-cache")


@pytest.fixture
def tier(cache_dir, monkeypatch):
    """A private cache directory (shared by this module: thread counts reuse objects);
    back to the auto tier and the thread count afterwards."""
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(cache_dir))
    threads = tracejit.get_num_threads()
    yield
    tracejit.set_tier("auto")
    tracejit.set_num_threads(threads)


def exact_expected(op, dtype, horizontal):
    return op in ("max", "min") or np.dtype(dtype).kind in "biu" or not horizontal


def check(fn, args, exact):
    got, tcc, _ = both_tiers(fn, args)
    want = fn(*args)
    assert got.dtype == tcc.dtype == want.dtype and got.shape == tcc.shape == want.shape
    # reassociated sums differ by rounding relative to the terms, not to a result that
    # cancelled: tolerances scale with the largest result (an ASan build, whose TinyCC
    # primitives lose their SIMD clones, measured 1.8e-13 relative on a float64 row)
    finite = np.abs(want[np.isfinite(want)]) if want.dtype.kind == "f" else np.zeros(0)
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    if exact:
        np.testing.assert_array_equal(got, tcc)
    else:
        rtol = 1e-6 if got.dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got, tcc, rtol=rtol, atol=rtol * scale)
    if got.dtype.kind == "f":
        rtol = 1e-4 if got.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)
    else:
        np.testing.assert_array_equal(got, want)


OPS = {"sum": np.sum, "max": np.max, "min": np.min}
# (shape, axis, keepdims): the inner dim reduced ("horizontal") or kept ("vertical")
GEOMS = [
    ((128, 10), 0, False), ((128, 10), 1, False), ((128, 10), None, False),
    ((128, 64), 0, True), ((128, 64), -1, True),
    ((40, 1000), 0, False), ((40, 1000), 1, False), ((3, 1500), None, True),
    ((5000,), 0, False), ((1,), None, False),
    ((4, 7, 10), 0, False), ((4, 7, 10), 1, False), ((4, 7, 10), 2, True),
    ((4, 7, 10), (0, 2), False), ((4, 7, 300), (0, 1), False),
]


def is_horizontal(shape, axis):
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    return any(a % len(shape) == len(shape) - 1 for a in axes)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("shape,axis,keepdims", GEOMS,
                         ids=[f"{s}-{a}-{'k' if k else ''}" for s, a, k in GEOMS])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_reductions_of_an_elementwise_producer(op, shape, axis, keepdims, dtype, rng, tier):
    x = make_input(rng, shape, dtype)
    red = OPS[op]
    if dtype.startswith("float"):
        def fn(x):
            return red(x * (1 - x * x), axis=axis, keepdims=keepdims)
    else:
        def fn(x):
            return red(x * 3 - 7, axis=axis, keepdims=keepdims)
    check(fn, [x], exact_expected(op, dtype, is_horizontal(shape, axis)))


@pytest.mark.parametrize("layout", ["T", "strided", "neg"])
@pytest.mark.parametrize("shape,axis", [((128, 10), 0), ((128, 10), 1), ((33, 600), 1),
                                        ((33, 600), 0), ((6, 5, 9), (0, 1))])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_strided_operands(layout, shape, axis, dtype, rng, tier):
    a = arg_in_layout(rng, shape, dtype, layout)
    b = make_input(rng, shape, dtype)
    check(lambda a, b: np.sum((a - b) * (a - b), axis=axis), [a, b],
          exact_expected("sum", dtype, is_horizontal(shape, axis)))
    check(lambda a, b: np.max(a - b, axis=axis), [a, b], True)


@pytest.mark.parametrize("shape", [(128, 10), (128, 64), (7, 3), (1000, 3), (9, 700)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_mlp_gradients(shape, dtype, rng, tier):
    a, b = make_input(rng, shape, dtype), make_input(rng, shape, dtype)
    x = make_input(rng, shape, dtype)
    check(lambda a, b: ((a - b) ** 2).sum(1), [a, b], False)
    check(lambda a, b: ((a - b) ** 2).sum(), [a, b], False)
    check(lambda x: (x * (1 - x * x)).sum(0), [x], True)


def sequential_colsum(v):
    """Row after row into a float64 accumulator, cast back: tracejit's order."""
    acc = np.zeros(v.shape[1:], np.float64)
    for row in v:
        acc += row
    return acc.astype(v.dtype)


@pytest.mark.parametrize("shape", [(51, 10), (128, 64), (300, 1000)])
def test_column_sums_are_sequential(shape, rng, tier):
    x = make_input(rng, shape, "float32")
    b = make_input(rng, shape[1:], "float32")
    got, _, _ = both_tiers(lambda x, b: np.sum(x * (1 - x * x) + b, axis=0), [x, b])
    np.testing.assert_array_equal(got, sequential_colsum(x * (1 - x * x) + b))


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("axis", [0, 1, None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_propagates_as_in_numpy(op, axis, dtype, rng, tier):
    x = make_input(rng, (40, 700), dtype)
    x[3, 5] = np.nan
    x[17, 600] = np.nan
    x[20, :] = np.nan
    x[:, 9] = -np.inf if op == "max" else np.inf
    fn = (lambda x: np.max(x + 1, axis=axis)) if op == "max" else (
        lambda x: np.min(x + 1, axis=axis))
    check(fn, [x], True)
    got, _, _ = both_tiers(fn, [x])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(fn(x)))


@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_products_and_booleans(axis, rng, tier):
    x = make_input(rng, (30, 90), "float64")
    check(lambda x: np.prod(1.0 + 0.01 * x, axis=axis), [x], axis == 0)
    k = make_input(rng, (30, 90), "int64", domain="small")
    check(lambda k: np.prod(k % 3 - 1, axis=axis), [k], True)
    check(lambda x: np.sum(x > 0.25, axis=axis), [x], True)
    check(lambda x: np.max(x > 0.25, axis=axis), [x], True)
    check(lambda x: np.min(x > -0.9, axis=axis), [x], True)


@pytest.mark.parametrize("axis", [0, 1, None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_same_bits_whatever_the_thread_count(axis, dtype, rng, tier):
    """Large enough to split: chunks of the reduced outer dim into their own
    accumulators (the runtime repoints P[acc_slot]), or rows across threads."""
    x = make_input(rng, (40_000, 10), dtype)
    b = make_input(rng, (10,), dtype)

    def fn(x, b):
        return np.sum(x * b + x, axis=axis)

    results = []
    for n in (1, 2):
        tracejit.set_num_threads(n)
        got, tcc, _ = both_tiers(fn, [x, b])
        if axis != 1 and axis is not None:
            np.testing.assert_array_equal(got, tcc)   # vertical: TinyCC's bits
        results.append(got)
    np.testing.assert_array_equal(results[1], results[0])
    terms = (x * b + x).astype(np.float64)
    want = np.sum(terms, axis=axis)
    # a reassociated sum is off by ~eps * the sum of |terms|, not * |result| (a row
    # whose terms cancel: 2.3e-12 relative to its result on this machine)
    scale = np.sum(np.abs(terms), axis=axis)
    eps = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_array_less(np.abs(results[0] - want), eps * scale + 1e-300)


def test_a_reduction_with_an_elementwise_output_beside(rng, tier):
    x = make_input(rng, (128, 64), "float32")
    b = make_input(rng, (64,), "float32")

    def fn(x, b):
        return np.tanh(x + b), np.sum((x + b) * x, axis=0)

    (t2, s2), (t1, s1), _ = both_tiers(fn, [x, b])
    np.testing.assert_allclose(t2, t1, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(s2, s1)
    t, s = fn(x, b)
    np.testing.assert_allclose(t2, t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s2, s, rtol=1e-4, atol=1e-4)


def test_later_calls_reuse_the_accumulator_afresh(rng, tier):
    tracejit.set_tier("eager")
    f = tracejit.compile(lambda x: np.sum(x * 2.0, axis=0))
    for _ in range(3):
        x = make_input(rng, (64, 10), "float64")
        np.testing.assert_allclose(f(x), np.sum(x * 2.0, axis=0), rtol=1e-13)
    assert f.tiers() == ["opt"]
    assert "#pragma omp simd" not in f.explain(x)   # a vertical fold: elementwise
    g = tracejit.compile(lambda x: np.sum(x * 2.0, axis=1))
    np.testing.assert_allclose(g(x), np.sum(x * 2.0, axis=1), rtol=1e-13)
    assert "#pragma omp simd reduction(+:r_)" in g.explain(x)


def test_reductions_of_costly_values_stay_on_tcc(rng, tier):
    """exp, tanh, ...: the function's time dominates, TinyCC's blocks measured faster."""
    x = make_input(rng, (64, 300), "float32")
    tracejit.set_tier("eager")
    f = tracejit.compile(lambda x: np.exp(x).sum(axis=1))
    np.testing.assert_allclose(f(x), np.exp(x).sum(axis=1), rtol=1e-5)
    assert f.tiers() == ["tcc"]
    g = tracejit.compile(lambda x: (np.exp(x).sum(axis=1), (x * x).max(axis=0)))
    r = g(x)
    np.testing.assert_allclose(r[0], np.exp(x).sum(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(r[1], (x * x).max(axis=0))
    assert g.tiers() == ["opt"]   # the max group is fused, the sum group is not
    assert g.explain(x).tier_source.count("static void tj_f") == 1


@pytest.mark.parametrize("shape", [(128, 10), (128, 64), (300, 100), (5000, 33)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_column_folds_with_row_and_scalar_broadcasts(shape, dtype, rng, tier):
    """Short rows (the column-chunk loop): a column vector read once per row, a
    scalar, a second output beside the fold; max and min take the same path."""
    x = make_input(rng, shape, dtype)
    c = make_input(rng, (shape[0], 1), dtype)
    s = np.asarray(make_input(rng, (), dtype))
    check(lambda x, c, s: np.sum(x * c - s, axis=0), [x, c, s], True)
    check(lambda x, c: np.max(x - c, axis=0), [x, c], True)
    check(lambda x, c: np.min(x * c, axis=0, keepdims=True), [x, c], True)
    (t2, s2), (t1, s1), _ = both_tiers(lambda x, c: (x + c, np.sum(x + c, axis=0)), [x, c])
    np.testing.assert_array_equal(t2, t1)
    np.testing.assert_array_equal(s2, s1)
    np.testing.assert_array_equal(t2, x + c)


def test_short_rows_fold_column_chunks_in_registers(rng, tier):
    tracejit.set_tier("eager")
    x = make_input(rng, (128, 64), "float32")
    f = tracejit.compile(lambda x: np.sum(x * (1 - x * x), axis=0))
    np.testing.assert_array_equal(f(x), sequential_colsum(x * (1 - x * x)))
    src = f.explain(x)
    assert "double a_[32];" in src and "for (long long t0 = lo * 8LL;" in src
    g = tracejit.compile(lambda x: np.sum(x * (1 - x * x), axis=0))
    g(make_input(rng, (64, 300), "float32"))   # long rows: the row-by-row nest only
    assert "a_[" not in g.explain(make_input(rng, (64, 300), "float32"))


@pytest.mark.parametrize("layout", ["c", "T", "strided"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_masked_scaled_row_max_of_attention_scores(layout, dtype, rng, tier):
    """A causal softmax's first pass (scale, where under a bool mask, row max) over
    (heads, T, T) scores: the tier's contiguous nest (which gcc vectorizes) and its
    strided nest, each emitted whole after one stride test, agree with TinyCC and NumPy
    bit for bit (max is exact); NaN scores propagate as NumPy's max does."""
    s = arg_in_layout(rng, (4, 64, 64), dtype, layout)
    s[1, 5, 2] = np.nan                      # kept by the mask: row 5 of head 1 is NaN
    s[2, 3, 40] = np.nan                     # masked out: row 3 of head 2 is not
    mask = np.tril(np.ones((64, 64), dtype=bool))

    def fn(s):
        return np.where(mask, s * 0.25, -np.inf).max(axis=-1)
    check(fn, [s], True)
    assert np.isnan(fn(s)[1, 5]) and not np.isnan(fn(s)[2, 3])
