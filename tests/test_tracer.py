"""Tracer behaviour: Python operators (incl. reflected ones), attributes and
methods, np.where / np.clip / astype / transpose, and a fused op chain."""
import operator

import numpy as np
import pytest

import tracejit
from conftest import (run_or_raise, DTYPES, OP_DOMAINS, assert_matches_numpy, make_input,
                      numpy_outcome, scalar_for)

BINARY_OPERATORS = [
    ("add", operator.add, "add"), ("sub", operator.sub, "subtract"),
    ("mul", operator.mul, "multiply"), ("truediv", operator.truediv, "divide"),
    ("floordiv", operator.floordiv, "floor_divide"), ("mod", operator.mod, "remainder"),
    ("pow", operator.pow, "power"), ("eq", operator.eq, "equal"),
    ("ne", operator.ne, "not_equal"), ("lt", operator.lt, "less"),
    ("le", operator.le, "less_equal"), ("gt", operator.gt, "greater"),
    ("ge", operator.ge, "greater_equal"), ("and", operator.and_, "bitwise_and"),
    ("or", operator.or_, "bitwise_or"), ("xor", operator.xor, "bitwise_xor"),
]
UNARY_OPERATORS = [
    ("neg", operator.neg, "any"), ("pos", operator.pos, "any"),
    ("abs", abs, "any"), ("invert", operator.invert, "any"),
]
# Which operand is a tracer (t), a captured ndarray (a) or a Python scalar (s).
FORMS = ["t_t", "t_a", "a_t", "t_int", "int_t", "t_float", "float_t"]
TOL_OPS = {"pow", "floordiv", "mod"}


def _expect(fn, *args):
    outcome, value = numpy_outcome(fn, *args)
    return outcome, value


def _run_or_raise(f, args, outcome, expected, exact=True):
    if outcome == "ok" and not exact and expected.dtype.kind == "f":
        atol = 1e-5 if expected.dtype == np.float32 else 1e-12
        return run_or_raise(f, args, outcome, expected, exact=False, atol=atol)
    return run_or_raise(f, args, outcome, expected)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,op,ufunc", BINARY_OPERATORS, ids=[b[0] for b in BINARY_OPERATORS])
def test_binary_operator(name, op, ufunc, dtype, form, rng):
    dom_l, dom_r = OP_DOMAINS[ufunc]
    left, right = form.split("_")
    x = make_input(rng, (3, 1), dtype, dom_l)
    y = make_input(rng, (4,), dtype, dom_r)
    exact = name not in TOL_OPS
    if form == "t_t":
        f, args, ref = tracejit.compile(lambda a, b: op(a, b)), (x, y), lambda: op(x, y)
    elif form == "t_a":
        f, args, ref = tracejit.compile(lambda a: op(a, y)), (x,), lambda: op(x, y)
    elif form == "a_t":
        f, args, ref = tracejit.compile(lambda b: op(x, b)), (y,), lambda: op(x, y)
    elif left == "t":
        s = scalar_for(dom_r, right)
        f, args, ref = tracejit.compile(lambda a: op(a, s)), (x,), lambda: op(x, s)
    else:
        s = scalar_for(dom_l, left)
        f, args, ref = tracejit.compile(lambda b: op(s, b)), (y,), lambda: op(s, y)
    outcome, expected = _expect(ref)
    _run_or_raise(f, args, outcome, expected, exact)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,op,dom", UNARY_OPERATORS, ids=[u[0] for u in UNARY_OPERATORS])
def test_unary_operator(name, op, dom, dtype, rng):
    x = make_input(rng, (2, 3), dtype, dom)
    outcome, expected = _expect(op, x)
    _run_or_raise(tracejit.compile(lambda a: op(a)), (x,), outcome, expected)


def test_reflected_ndarray_broadcasting(rng):
    c = make_input(rng, (3, 1), "float64")
    x = make_input(rng, (4,), "float32")
    f = tracejit.compile(lambda t: (c + t, c - t, c * t, c / t, c < t, c ** 2 - t))
    for r, e in zip(f(x), (c + x, c - x, c * x, c / x, c < x, c ** 2 - x)):
        assert_matches_numpy(r, e)


def test_reflected_zero_d_ndarray_left(rng):
    c = np.array(2.5, dtype=np.float32)
    x = make_input(rng, (5,), "float32")
    f = tracejit.compile(lambda t: (c - t, c / t, c > t))
    for r, e in zip(f(x), (c - x, c / x, c > x)):
        assert_matches_numpy(r, e)


NUMPY_SCALAR_CASES = [
    ("f32_scalar_times_f32", lambda a, b: np.float32(0.1) * a),
    ("f32_minus_f64_scalar", lambda a, b: a - np.float64(0.1)),
    ("f64_scalar_times_f32", lambda a, b: np.float64(0.1) * a),
    ("f32_max_f64_scalar", lambda a, b: np.maximum(a, np.float64(0.1))),
    ("i64_scalar_plus_i32", lambda a, b: np.int64(3) + b),
    ("i32_times_f32_scalar", lambda a, b: b * np.float32(0.5)),
    ("i32_scalar_plus_f32", lambda a, b: np.int32(7) + a),
    ("i32_plus_f64_scalar", lambda a, b: b + np.float64(0.5)),
]


@pytest.mark.parametrize("name,fn", NUMPY_SCALAR_CASES, ids=[c[0] for c in NUMPY_SCALAR_CASES])
def test_numpy_scalar_constants_are_not_weak(name, fn, rng):
    """NumPy scalars are strong: float32 array - np.float64(0.1) -> float64."""
    x = make_input(rng, (4,), "float32")
    i = make_input(rng, (4,), "int32")
    assert_matches_numpy(tracejit.compile(fn)(x, i), fn(x, i))


def test_zero_d_arrays_are_not_weak(rng):
    x = make_input(rng, (4,), "float32")
    c = np.array(0.1)  # float64 0-d: promotes float32 -> float64 under NumPy 2
    f = tracejit.compile(lambda a, z: (a * c, a + z, z - a))
    z = np.array(2.5)
    for r, e in zip(f(x, z), (x * c, x + z, z - x)):
        assert_matches_numpy(r, e)


def test_comparisons_combined_with_bitwise(rng):
    x = make_input(rng, (6,), "float64", "ties")
    y = make_input(rng, (6,), "float64", "ties")
    f = tracejit.compile(lambda a, b: ((a > 0) & (b < 1), ~(a == b), (a <= b) | (a != 0),
                                       (a >= b) ^ True))
    exp = ((x > 0) & (y < 1), ~(x == y), (x <= y) | (x != 0), (x >= y) ^ True)
    for r, e in zip(f(x, y), exp):
        assert_matches_numpy(r, e)


# ----------------------------------------------------------------- attributes
def test_attributes_seen_during_trace(rng):
    seen = {}

    @tracejit.compile
    def f(x):
        seen.update(shape=x.shape, ndim=x.ndim, dtype=x.dtype, size=x.size, len=len(x),
                    T=x.T.shape, tr=x.transpose(1, 2, 0).shape)
        return x + 1

    x = make_input(rng, (3, 4, 5), "float32")
    f(x)
    assert seen["shape"] == (3, 4, 5) and type(seen["shape"]) is tuple
    assert all(type(d) is int for d in seen["shape"])
    assert seen["ndim"] == 3 and type(seen["ndim"]) is int
    assert isinstance(seen["dtype"], np.dtype) and seen["dtype"] == np.float32
    assert seen["size"] == 60 and type(seen["size"]) is int
    assert seen["len"] == 3
    assert seen["T"] == (5, 4, 3)
    assert seen["tr"] == (4, 5, 3)


@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 0, 3)])
def test_attributes_edge_shapes(shape, rng):
    seen = {}

    @tracejit.compile
    def f(x):
        seen.update(shape=x.shape, ndim=x.ndim, size=x.size, dtype=x.dtype)
        return x * 2

    x = make_input(rng, shape, "int64")
    assert_matches_numpy(f(x), x * 2)
    assert seen == {"shape": shape, "ndim": len(shape), "size": x.size,
                    "dtype": np.dtype("int64")}


def test_attributes_used_in_arithmetic(rng):
    f = tracejit.compile(lambda x: x * x.shape[1] + x.ndim - x.size / len(x))
    x = make_input(rng, (3, 4), "float32")
    assert_matches_numpy(f(x), x * 4 + 2 - 12 / 3)
    i = make_input(rng, (3, 4), "int32")
    assert_matches_numpy(f(i), i * 4 + 2 - 12 / 3)


def test_dtype_attribute_drives_astype(rng):
    f = tracejit.compile(lambda x, y: (x * y).astype(x.dtype))
    x = make_input(rng, (5,), "int32")
    y = make_input(rng, (5,), "float64")
    assert_matches_numpy(f(x, y), (x * y).astype(x.dtype))


# ----------------------------------------------------------------- transpose
TRANSPOSES = [
    ("T", lambda x: x.T), ("method", lambda x: x.transpose()),
    ("method_args", lambda x: x.transpose(1, 0, 2)),
    ("method_tuple", lambda x: x.transpose((2, 0, 1))),
    ("method_neg", lambda x: x.transpose(-1, 0, 1)),
    ("np", lambda x: np.transpose(x)), ("np_axes", lambda x: np.transpose(x, (1, 2, 0))),
    ("np_kw", lambda x: np.transpose(x, axes=(0, 2, 1))),
    ("double", lambda x: x.T.transpose(1, 0, 2).T),
    ("mixed", lambda x: x.T * 2.0 + np.transpose(x, (2, 1, 0))),
    ("chain_ops", lambda x: np.exp(x).transpose(2, 0, 1) - x.transpose(2, 0, 1)),
]


@pytest.mark.parametrize("dtype", ["float64", "int32"])
@pytest.mark.parametrize("name,fn", TRANSPOSES, ids=[t[0] for t in TRANSPOSES])
def test_transpose(name, fn, dtype, rng):
    x = make_input(rng, (2, 3, 4), dtype)
    exact = name != "chain_ops"
    assert_matches_numpy(tracejit.compile(fn)(x), fn(x), exact=exact, inputs=[x])
    xt = make_input(rng, (4, 3, 2), dtype).T  # non-contiguous input
    assert_matches_numpy(tracejit.compile(fn)(xt), fn(xt), exact=exact, inputs=[xt])


@pytest.mark.parametrize("shape", [(), (5,), (1, 3)])
def test_transpose_low_rank(shape, rng):
    x = make_input(rng, shape, "float32")
    f = tracejit.compile(lambda a: (a.T, np.transpose(a), a.transpose() + 1))
    for r, e in zip(f(x), (x.T, np.transpose(x), x.transpose() + 1)):
        assert_matches_numpy(r, e)


def test_transposed_tracer_broadcasts_with_other(rng):
    x = make_input(rng, (3, 4), "float64")
    y = make_input(rng, (4, 1), "float64")
    f = tracejit.compile(lambda a, b: a.T + b)
    assert_matches_numpy(f(x, y), x.T + y)


# ----------------------------------------------------------------- astype
@pytest.mark.parametrize("how", ["method_str", "method_type", "np_astype_dtype"])
@pytest.mark.parametrize("dst", DTYPES)
@pytest.mark.parametrize("src", DTYPES)
def test_astype(src, dst, how, rng):
    x = make_input(rng, (3, 4), src)
    if src in ("float32", "float64"):
        x[0, :] = np.array([-2.7, -0.0, 0.5, 99.9], dtype=src)  # truncation, zeros
    if how == "method_str":
        fn = lambda a: a.astype(dst)  # noqa: E731
    elif how == "method_type":
        fn = lambda a: a.astype(getattr(np, "bool_" if dst == "bool" else dst))  # noqa: E731
    else:
        fn = lambda a: np.astype(a, np.dtype(dst))  # noqa: E731
    assert_matches_numpy(tracejit.compile(fn)(x), fn(x), inputs=[x])


def test_astype_nan_to_bool_and_rounding(rng):
    x = np.array([np.nan, 0.0, -0.0, 1e-300, 0.1, 1 / 3], dtype=np.float64)
    f = tracejit.compile(lambda a: (a.astype(bool), a.astype(np.float32),
                                    a.astype(np.float32).astype(np.float64)))
    r = f(x)
    assert_matches_numpy(r[0], x.astype(bool))
    assert_matches_numpy(r[1], x.astype(np.float32))
    assert_matches_numpy(r[2], x.astype(np.float32).astype(np.float64))


def test_astype_in_middle_of_chain(rng):
    x = make_input(rng, (10,), "float64")
    f = tracejit.compile(lambda a: (a * 3.0).astype(np.int32) // 2 + a.astype(np.float32))
    assert_matches_numpy(f(x), (x * 3.0).astype(np.int32) // 2 + x.astype(np.float32))


# ----------------------------------------------------------------- where
def test_where_all_tracers_broadcasting(rng):
    c = make_input(rng, (3, 1), "bool")
    x = make_input(rng, (4,), "float32")
    y = make_input(rng, (3, 4), "float32")
    f = tracejit.compile(lambda c_, x_, y_: np.where(c_, x_, y_))
    assert_matches_numpy(f(c, x, y), np.where(c, x, y), inputs=[c, x, y])


WHERE_CASES = [
    ("scalar_branch", lambda x, y: np.where(x > 0, x, 0.0)),
    ("int_scalar", lambda x, y: np.where(x > 0, 1, 2)),
    ("mixed_dtype", lambda x, y: np.where(x < y, x.astype(np.int32), y)),
    ("float_cond", lambda x, y: np.where(x, y, -y)),
    ("scalar_left", lambda x, y: np.where(y >= 0.5, 2.5, x)),
    ("nested", lambda x, y: np.where(x > 0, np.where(y > 0, x * y, y), -x)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("name,fn", WHERE_CASES, ids=[w[0] for w in WHERE_CASES])
def test_where_variants(name, fn, dtype, rng):
    x = make_input(rng, (4, 5), dtype, "ties")
    y = make_input(rng, (5,), dtype, "ties")
    assert_matches_numpy(tracejit.compile(fn)(x, y), fn(x, y))


def test_where_with_captured_array_condition(rng):
    c = make_input(rng, (6,), "bool")
    x = make_input(rng, (6,), "int64")
    f = tracejit.compile(lambda a: np.where(c, a, -a))
    assert_matches_numpy(f(x), np.where(c, x, -x))


def test_where_nan_condition_is_true():
    c = np.array([np.nan, 0.0, 1.0, -0.0])
    f = tracejit.compile(lambda a: np.where(a, 1.0, 2.0))
    assert_matches_numpy(f(c), np.where(c, 1.0, 2.0))


# ----------------------------------------------------------------- clip
CLIP_CASES = [
    ("scalars", lambda x, lo, hi: np.clip(x, -1.5, 2.5)),
    ("lo_none", lambda x, lo, hi: np.clip(x, None, 2.5)),
    ("hi_none", lambda x, lo, hi: np.clip(x, -1.5, None)),
    ("int_scalars", lambda x, lo, hi: np.clip(x, -3, 4)),
    ("arrays", lambda x, lo, hi: np.clip(x, lo, hi)),
    ("array_lo_none_hi", lambda x, lo, hi: np.clip(x, lo, None)),
    ("array_lo_scalar_hi", lambda x, lo, hi: np.clip(x, lo, 3)),
    ("kw", lambda x, lo, hi: np.clip(x, a_min=-1, a_max=hi)),
    ("kw_min_max", lambda x, lo, hi: np.clip(x, min=lo, max=2)),
    ("both_none", lambda x, lo, hi: np.clip(x, None, None)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("name,fn", CLIP_CASES, ids=[c[0] for c in CLIP_CASES])
def test_clip(name, fn, dtype, rng):
    x = make_input(rng, (3, 4), dtype)
    lo = make_input(rng, (4,), dtype, "small") - 2
    hi = lo + make_input(rng, (3, 1), dtype, "pos")
    outcome, expected = numpy_outcome(fn, x, lo, hi)
    _run_or_raise(tracejit.compile(fn), (x, lo, hi), outcome, expected)


def test_clip_captured_bounds_and_mixed_dtypes(rng):
    lo = np.full((4,), 0.5)
    x = make_input(rng, (3, 4), "int32")
    f = tracejit.compile(lambda a: np.clip(a, lo, 3.5))
    assert_matches_numpy(f(x), np.clip(x, lo, 3.5))
    g = tracejit.compile(lambda a: np.clip(a, 0.5, 3.5))  # int32 with Python floats
    assert_matches_numpy(g(x), np.clip(x, 0.5, 3.5))


def test_huge_python_int_with_float_array(rng):
    """Python ints beyond int64 are still weak: float64 array + 2**70 is float64."""
    x = make_input(rng, (4,), "float64")
    assert_matches_numpy(tracejit.compile(lambda a: a + 2**70)(x), x + 2**70)
    assert_matches_numpy(tracejit.compile(lambda a, s: a * s)(x, 2**64 + 1), x * (2**64 + 1))


@pytest.mark.parametrize("dtype,value", [("int32", 2**31 - 200), ("int32", -2**31 + 200),
                                         ("int64", 2**62), ("int64", -2**63 + 200)])
def test_extreme_python_int_constants(dtype, value, rng):
    x = make_input(rng, (5,), dtype)
    f = tracejit.compile(lambda a, s: (a + value, np.maximum(a, value), a - s, a < value))
    for r, e in zip(f(x, value), (x + value, np.maximum(x, value), x - value, x < value)):
        assert_matches_numpy(r, e)


@pytest.mark.parametrize("value", [1 / 3, 0.1, 5e-324, 1e-310, 1.7976931348623157e308, -0.0,
                                   float("inf"), float("-inf"), float("nan"), 2.0**53 + 1,
                                   123456789.123456789])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_float_constant_literals(value, dtype):
    x = np.array([-1.5, -0.0, 0.0, 2.0, 1e-300, 3.0]).astype(dtype)
    fn = lambda a: (a * value, a + value, np.maximum(a, value), a < value)  # noqa: E731
    with np.errstate(all="ignore"):
        expected = fn(x)
        result = tracejit.compile(fn)(x)
    for r, e in zip(result, expected):
        assert_matches_numpy(r, e)


def test_clip_nan_propagates():
    x = np.array([np.nan, -5.0, 0.0, 5.0, np.inf, -np.inf])
    f = tracejit.compile(lambda a: np.clip(a, -1.0, 1.0))
    assert_matches_numpy(f(x), np.clip(x, -1.0, 1.0))


# ----------------------------------------------------------------- op chains
def gelu_mix(x, y):
    z = x * y + y
    return 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z ** 3)))


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), ()),
                                    ((0, 4), (4,)), ((1000,), (1000,))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_mix(dtype, shapes, rng):
    x = make_input(rng, shapes[0], dtype, "small")
    y = make_input(rng, shapes[1], dtype, "small")
    f = tracejit.compile(gelu_mix)
    rtol, atol = (2e-6, 1e-6) if dtype == "float32" else (1e-12, 1e-13)
    assert_matches_numpy(f(x, y), gelu_mix(x, y), exact=False, rtol=rtol, atol=atol,
                         inputs=[x, y])
    assert f.cache_info().variants == 1
    assert f.__wrapped__ is gelu_mix


def test_gelu_mix_noncontiguous_and_mixed_dtype(rng):
    x = make_input(rng, (8, 6), "float32", "small")[::2, ::-2]
    y = make_input(rng, (3, 5), "float64", "small").T[1:]
    assert x.shape == y.shape == (4, 3)
    f = tracejit.compile(gelu_mix)
    assert_matches_numpy(f(x, y), gelu_mix(x, y), exact=False)


def test_long_chain_with_all_kinds_of_ops(rng):
    def fn(x, i, b):
        u = np.maximum(x, -1.0) * np.sqrt(np.abs(x) + 1) - np.log1p(np.square(x))
        v = np.where(b, u, np.sign(u)) + (i % 3) * 0.25 - (i // 2)
        w = np.clip(np.floor(v) + np.ceil(-v), -4, 4).astype(np.float32)
        return w * np.exp(-np.abs(v)).astype(np.float32), np.logical_and(b, v > 0)

    x = make_input(rng, (5, 6), "float64")
    i = make_input(rng, (6,), "int64")
    b = make_input(rng, (5, 1), "bool")
    r1, r2 = tracejit.compile(fn)(x, i, b)
    e1, e2 = fn(x, i, b)
    assert_matches_numpy(r1, e1, exact=False)
    assert_matches_numpy(r2, e2)


def test_common_subexpressions_are_not_confused(rng):
    """Similar expressions (swapped operands, different casts, different
    conditions) must stay distinct after CSE/fusion."""
    def fn(a, b, c):
        af = a.astype(np.float32)
        return (a - b, b - a, a < b, b < a, a + b, b + a, af + b, (a + b).astype(np.float32),
                np.where(c, a, b), np.where(c, b, a), np.where(~c, a, b), a // b, b // a,
                np.maximum(a, b) - np.minimum(b, a), af * af, a * a, a ** 2, b % a,
                np.logical_xor(c, a > b), np.logical_xor(a > b, c))

    a = make_input(rng, (3, 4), "int64", "nonzero")
    b = make_input(rng, (4,), "float64", "nonzero")
    c = make_input(rng, (3, 1), "bool")
    result = tracejit.compile(fn)(a, b, c)
    expected = fn(a, b, c)
    assert len(result) == len(expected)
    for i, (r, e) in enumerate(zip(result, expected)):
        assert_matches_numpy(r, e, exact=i not in (11, 12, 17))


def test_multiple_outputs_of_different_shapes(rng):
    def fn(a, b, s):
        return a * 2.0, b * s, s + 1, a + s, np.exp(a), (a - b.T.T)

    a = make_input(rng, (3, 1), "float64")
    b = make_input(rng, (2, 1, 4), "float32")
    s = np.array(1.5, dtype=np.float32)
    r = tracejit.compile(fn)(a, b, s)
    e = fn(a, b, s)
    for ri, ei in zip(r, e):
        assert_matches_numpy(ri, ei, exact=False)
    assert [x.shape for x in r] == [(3, 1), (2, 1, 4), (), (3, 1), (3, 1), (2, 3, 4)]


# ----------------------------------------------------------------- random programs
# Random straight-line programs over integer-valued data kept within +-100, so every
# op is exact in every dtype (no rounding anywhere): results must be bit-identical.
_UN = {"neg": operator.neg, "abs": abs, "floor": np.floor, "ceil": np.ceil, "sign": np.sign,
       "square": np.square, "not": np.logical_not, "invert": operator.invert, "pos": operator.pos,
       "T": lambda a: a.T, "f32": lambda a: a.astype(np.float32),
       "f64": lambda a: np.astype(a, np.float64), "i32": lambda a: a.astype("int32"),
       "i64": lambda a: a.astype(np.int64), "bool": lambda a: a.astype(bool),
       "clip": lambda a: np.clip(a, -7, 9), "clip_lo": lambda a: np.clip(a, -3.0, None)}
_BIN = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "max": np.maximum,
        "min": np.minimum, "eq": operator.eq, "ne": np.not_equal, "lt": operator.lt,
        "le": np.less_equal, "gt": np.greater, "ge": operator.ge, "land": np.logical_and,
        "lor": np.logical_or, "lxor": np.logical_xor, "band": operator.and_,
        "bor": np.bitwise_or, "bxor": operator.xor,
        "fdiv": lambda a, b: a // np.where(b == 0, 3, b),
        "mod": lambda a, b: np.remainder(a, np.where(b == 0, -2, b)),
        "where": lambda a, b: np.where(a > b, a, b), "wherec": lambda a, b: np.where(a, b, 5)}
_SCALARS = [2, -3, 7, 2.0, -5.0, True]


def _run_program(prog, outs, inputs):
    nodes = list(inputs)
    for kind, name, args, const in prog:
        vals = [nodes[i] for i in args]
        if kind == "un":
            nodes.append(_UN[name](vals[0]))
        elif kind == "bin":
            nodes.append(_BIN[name](*vals))
        elif kind == "scl":
            c, right = const
            nodes.append(_BIN[name](vals[0], c) if right else _BIN[name](c, vals[0]))
        elif kind == "pow":
            nodes.append(vals[0] ** const)
        else:  # bound
            nodes.append(np.clip(vals[0], -100, 100))
    return tuple(nodes[i] for i in outs)


def _random_program(seed):
    rng = np.random.default_rng(seed)
    big = rng.integers(-20, 21, size=(8, 12))
    shapes = [(4, 4), (1, 4), (4, 1), (4,), ()]
    inputs = []
    for _ in range(int(rng.integers(1, 4))):
        dt = DTYPES[int(rng.integers(0, 5))]
        layout = int(rng.integers(0, 5))
        if layout == 0:
            arr = big[::2, ::3].astype(dt)
        elif layout == 1:
            arr = big[:4, :4].astype(dt).T
        elif layout == 2:
            arr = big[:4, :4].astype(dt)[::-1]
        else:
            shape = shapes[int(rng.integers(0, len(shapes)))]
            arr = np.array(rng.integers(-20, 21, size=shape), dtype=dt)
        inputs.append(arr)
    vals, prog = list(inputs), []
    target = int(rng.integers(4, 25))
    while len(prog) < target:
        kind = str(rng.choice(["un", "bin", "scl", "pow"], p=[0.3, 0.45, 0.2, 0.05]))
        args = [int(rng.integers(0, len(vals))) for _ in range(1 if kind != "bin" else 2)]
        name, const = None, None
        if kind == "un":
            name = list(_UN)[int(rng.integers(0, len(_UN)))]
        elif kind == "bin":
            name = list(_BIN)[int(rng.integers(0, len(_BIN)))]
        elif kind == "scl":
            name = list(_BIN)[int(rng.integers(0, len(_BIN)))]
            const = (_SCALARS[int(rng.integers(0, len(_SCALARS)))], bool(rng.integers(0, 2)))
        else:
            const = int(rng.integers(0, 4))
        step = (kind, name, args, const)
        with np.errstate(all="raise"):
            try:
                (v,) = _run_program([step], [len(vals)], vals)
            except (TypeError, ValueError, FloatingPointError, ArithmeticError):
                continue
        v = np.asarray(v)
        if v.dtype not in SUPPORTED_DTYPES or (v.size and np.abs(v.astype(np.float64)).max() > 1e6):
            continue
        prog.append(step)
        vals.append(v)
        if v.dtype.kind in "fi" and v.size and np.abs(v).max() > 100:
            prog.append(("bound", None, [len(vals) - 1], None))
            vals.append(np.clip(v, -100, 100))
    n = len(vals)
    outs = sorted({n - 1, int(rng.integers(0, n)), int(rng.integers(0, n))})
    return prog, outs, inputs


SUPPORTED_DTYPES = {np.dtype(d) for d in DTYPES}


@pytest.mark.parametrize("seed", range(150))
def test_random_exact_programs(seed):
    prog, outs, inputs = _random_program(seed)

    def fn(*xs):
        return _run_program(prog, outs, xs)

    expected = fn(*inputs)
    result = tracejit.compile(fn)(*inputs)
    assert len(result) == len(expected)
    for r, e in zip(result, expected):
        assert_matches_numpy(r, e, inputs=inputs)
