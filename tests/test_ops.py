"""Every op in tracejit.op_table() against NumPy.

The parametrization is generated from the op table itself.  Each op needs an
entry in OP_DOMAINS (keyed by the NumPy ufunc name, or by the op name when the
op has no NumPy ufunc); an op the tests do not know fails loudly.
"""
import itertools

import numpy as np
import pytest

import tracejit
from conftest import (run_or_raise, ALL_DTYPES as DTYPES, OP_DOMAINS, SUPPORTED, assert_matches_numpy, make_input,
                      numpy_outcome, resolve_loop, scalar_for)

OP_TABLE = tracejit.op_table()

# Ops that are not ufuncs (numpy is None or a plain numpy function), keyed by the
# numpy name or else the lower-cased op name:
#   -> (traced callable, numpy reference, operand domains)
NON_UFUNC_OPS = {
    "where": (np.where, np.where, ("cond", "any", "any")),
    "select": (np.where, np.where, ("cond", "any", "any")),
    "copy": (lambda a: a, np.copy, ("any",)),
}
# Float results compared with tolerance; all other results must be exact.
TRANSCENDENTAL = {"exp", "expm1", "log", "log1p", "log2", "sin", "cos", "tan", "tanh",
                  "arctan", "logaddexp", "power", "arcsin", "arccos", "sinh", "cosh",
                  "arcsinh", "arccosh", "arctanh", "exp2", "log10", "cbrt", "arctan2", "hypot",
                  "float_power"}
NEAR_EXACT = {"floor_divide", "remainder"}  # fmod-based in numpy; allow a few ulps

# Ufuncs the spec requires to be in the table.
SPEC_UFUNCS = (
    "add subtract multiply divide floor_divide remainder power negative positive "
    "absolute equal not_equal less less_equal greater greater_equal logical_and "
    "logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor invert "
    "maximum minimum exp expm1 log log1p log2 sqrt square reciprocal sign floor ceil "
    "sin cos tan tanh arctan logaddexp "
    # the NumPy vocabulary issue
    "arcsin arccos sinh cosh arcsinh arccosh arctanh arctan2 hypot exp2 log10 cbrt fmod "
    "float_power isnan isinf isfinite signbit copysign left_shift right_shift").split()

UNARY_SHAPES = [(), (0,), (1,), (5,), (3, 4), (2, 3, 4), (0, 3)]
BINARY_SHAPES = [((), ()), ((5,), ()), ((), (5,)), ((0,), (0,)), ((0,), (1,)),
                 ((1,), (1,)), ((1,), (5,)), ((5,), (5,)), ((3, 1), (1, 4)),
                 ((2, 3, 4), (4,)), ((4,), (2, 3, 4)), ((0, 3), (1, 3))]
TERNARY_SHAPES = [((), (), ()), ((5,), (5,), (5,)), ((3, 1), (1, 4), ()),
                  ((0, 3), (1, 3), (3,)), ((2, 3, 4), (4,), (3, 1))]


def _ref(op):
    """(numpy reference, operand domains, key, traced callable) for a table entry;
    None if the tests do not know the op."""
    if op["numpy"] is not None:
        uf = getattr(np, op["numpy"], None)
        if isinstance(uf, np.ufunc):
            dom = OP_DOMAINS.get(uf.__name__)
            return None if dom is None else (uf, dom, uf.__name__, uf)
    key = (op["numpy"] or op["name"]).lower()
    if key in NON_UFUNC_OPS:
        traced, ref, dom = NON_UFUNC_OPS[key]
        return ref, dom, key, traced
    return None


def _case_outcome(op, dtypes):
    """'ok' | 'typeerror' | 'unsupported' per NumPy, for these operand dtypes."""
    ref = _ref(op)
    if ref is None:
        return "unknown"
    fn = ref[0]
    if isinstance(fn, np.ufunc):
        res = resolve_loop(fn, dtypes)
        if res is None:
            return "typeerror"
        return "ok" if all(d in SUPPORTED for d in res) else "unsupported"
    args = [np.zeros(1, d) for d in dtypes]
    return numpy_outcome(fn, *args)[0]


_COMPILED = {}


def _compiled(op):
    """One compiled function per op (its cache accumulates the variants)."""
    name = op["name"]
    if name not in _COMPILED:
        fn = _ref(op)[3]
        arity = op["arity"]
        if arity == 1:
            _COMPILED[name] = tracejit.compile(lambda a: fn(a))
        elif arity == 2:
            _COMPILED[name] = tracejit.compile(lambda a, b: fn(a, b))
        else:
            _COMPILED[name] = tracejit.compile(lambda a, b, c: fn(a, b, c))
    return _COMPILED[name]


def _exact(op, dtype):
    key = _ref(op)[2]
    return not (key in TRANSCENDENTAL or key in NEAR_EXACT) or np.dtype(dtype).kind != "f"


def _check(op, args):
    fn = _ref(op)[0]
    with np.errstate(all="ignore"):
        expected = fn(*args)
    copies = [a.copy() for a in args]
    result = _compiled(op)(*args)
    exp_arr = np.asarray(expected)
    assert_matches_numpy(result, expected, exact=_exact(op, exp_arr.dtype), inputs=args,
                         atol=None if _ref(op)[2] not in NEAR_EXACT else
                         (1e-5 if exp_arr.dtype == np.float32 else 1e-12))
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)  # inputs not mutated


def _shapes_for(arity):
    return {1: [(s,) for s in UNARY_SHAPES], 2: BINARY_SHAPES, 3: TERNARY_SHAPES}[arity]


# ----------------------------------------------------------------- parametrization
_SUPPORTED_CASES, _REJECTED_CASES = [], []
for _op in OP_TABLE:
    if _ref(_op) is None:
        continue  # reported by test_every_table_op_is_known
    for _dt in DTYPES:
        _outcome = _case_outcome(_op, (_dt,) * _op["arity"])
        if _outcome == "ok":
            for _shapes in _shapes_for(_op["arity"]):
                _SUPPORTED_CASES.append(pytest.param(
                    _op, _dt, _shapes, id=f"{_op['name']}-{_dt}-{'x'.join(map(str, _shapes))}"))
        else:
            _REJECTED_CASES.append(pytest.param(_op, _dt, _outcome,
                                                id=f"{_op['name']}-{_dt}-{_outcome}"))


# ----------------------------------------------------------------- op table itself
def test_op_table_structure():
    assert isinstance(OP_TABLE, list) and OP_TABLE
    names = [op["name"] for op in OP_TABLE]
    assert len(names) == len(set(names)), "duplicate op names"
    for op in OP_TABLE:
        assert isinstance(op, dict)
        assert {"name", "numpy", "arity", "dtypes"} <= set(op), op
        assert isinstance(op["name"], str) and op["name"]
        assert op["arity"] in (1, 2, 3), op
        assert op["dtypes"], op
        assert set(op["dtypes"]) <= set(DTYPES), op
        if op["numpy"] is not None:
            obj = getattr(np, op["numpy"], None)
            assert callable(obj), f"{op['name']}: numpy.{op['numpy']} does not exist"
            if isinstance(obj, np.ufunc):
                assert obj.nin == op["arity"] and obj.nout == 1, op


def test_op_table_covers_spec_ufuncs():
    table_ufuncs = {getattr(np, op["numpy"], None) for op in OP_TABLE if op["numpy"] is not None}
    missing = [n for n in SPEC_UFUNCS if getattr(np, n) not in table_ufuncs]
    assert not missing, f"ufuncs missing from op_table: {missing}"


def test_op_table_is_a_fresh_copy():
    table = tracejit.op_table()
    table[0]["name"] = "clobbered"
    table.append({"name": "bogus"})
    again = tracejit.op_table()
    assert again == OP_TABLE


def test_every_table_op_is_known():
    unknown = [op["name"] for op in OP_TABLE if _ref(op) is None]
    assert not unknown, (f"op_table lists ops the tests cannot check: {unknown}; "
                         "add a reference/domain to tests/test_ops.py")


@pytest.mark.parametrize("op", OP_TABLE, ids=lambda op: op["name"])
def test_table_dtypes_are_numpy_loops(op):
    """Every dtype the table claims must be one NumPy accepts without leaving the
    supported set (otherwise tracejit would disagree with NumPy)."""
    if _ref(op) is None:
        pytest.fail(f"unknown op {op['name']}")
    for dt in op["dtypes"]:
        assert _case_outcome(op, (dt,) * op["arity"]) == "ok", (op["name"], dt)


# ----------------------------------------------------------------- values
@pytest.mark.parametrize("op,dtype,shapes", _SUPPORTED_CASES)
def test_op_matches_numpy(op, dtype, shapes, rng):
    doms = _ref(op)[1]
    args = [make_input(rng, s, dtype, d) for s, d in zip(shapes, doms)]
    _check(op, args)


@pytest.mark.parametrize("op,dtype,outcome", _REJECTED_CASES)
def test_op_rejects_what_numpy_rejects(op, dtype, outcome, rng):
    doms = _ref(op)[1]
    args = [make_input(rng, (3,), dtype, d) for d in doms]
    f = _compiled(op)
    if outcome == "typeerror":
        with pytest.raises((TypeError, tracejit.TraceError)):
            f(*args)
    else:
        with pytest.raises(tracejit.TraceError):
            f(*args)


def _first_ok(op, kinds):
    for dt in DTYPES:
        if np.dtype(dt).kind in kinds and _case_outcome(op, (dt,) * op["arity"]) == "ok":
            return dt
    return None


def _layouts(rng, dtype, dom):
    """Arrays of shape (4, 5) with various memory layouts."""
    return {
        "T": make_input(rng, (5, 4), dtype, dom).T,
        "fortran": np.asfortranarray(make_input(rng, (4, 5), dtype, dom)),
        "step2": make_input(rng, (8, 5), dtype, dom)[::2],
        "col_step3": make_input(rng, (4, 15), dtype, dom)[:, 1::3],
        "neg_stride": make_input(rng, (4, 5), dtype, dom)[::-1],
        "neg_both": make_input(rng, (4, 5), dtype, dom)[::-1, ::-1],
        "T_step": make_input(rng, (10, 12), dtype, dom)[::2, ::2].T[1:5],
        "broadcast_to": np.broadcast_to(make_input(rng, (5,), dtype, dom), (4, 5)),
    }


_LAYOUT_NAMES = ["T", "fortran", "step2", "col_step3", "neg_stride", "neg_both",
                 "T_step", "broadcast_to"]


_NONCONTIG = []
for _op in OP_TABLE:
    if _ref(_op) is None:
        continue
    for _kinds, _names in (("f", _LAYOUT_NAMES), ("biu", ["T", "step2", "neg_stride", "broadcast_to"])):
        if _first_ok(_op, _kinds) is not None:
            _NONCONTIG += [pytest.param(_op, _kinds, _l, id=f"{_op['name']}-{_kinds}-{_l}")
                           for _l in _names]


@pytest.mark.parametrize("op,kinds,layout", _NONCONTIG)
def test_op_noncontiguous(op, kinds, layout, rng):
    dtype = _first_ok(op, kinds)
    doms = _ref(op)[1]
    odd = _layouts(rng, dtype, doms[0])[layout]
    assert odd.shape == (4, 5) and not odd.flags.c_contiguous or layout == "broadcast_to"
    rest = [make_input(rng, (4, 5), dtype, d) for d in doms[1:]]
    _check(op, [odd] + rest)
    if op["arity"] >= 2:
        # non-contiguous operand in last position, broadcasting against it
        odd2 = _layouts(rng, dtype, doms[-1])[layout]
        first = [make_input(rng, (5,), dtype, d) for d in doms[:-1]]
        _check(op, first + [odd2])


# ----------------------------------------------------------------- promotion
_MIXED = []
for _op in OP_TABLE:
    if _ref(_op) is None or _op["arity"] != 2:
        continue
    for _a, _b in itertools.permutations(DTYPES, 2):
        _MIXED.append(pytest.param(_op, _a, _b, id=f"{_op['name']}-{_a}-{_b}"))


@pytest.mark.parametrize("op,dt_a,dt_b", _MIXED)
def test_mixed_dtypes(op, dt_a, dt_b, rng):
    doms = _ref(op)[1]
    a = make_input(rng, (3, 1), dt_a, doms[0])
    b = make_input(rng, (4,), dt_b, doms[1])
    outcome = _case_outcome(op, (dt_a, dt_b))
    if outcome == "ok":
        _check(op, [a, b])
    elif outcome == "typeerror":
        with pytest.raises((TypeError, tracejit.TraceError)):
            _compiled(op)(a, b)
    else:
        with pytest.raises(tracejit.TraceError):
            _compiled(op)(a, b)


_WEAK = []
for _op in OP_TABLE:
    if _ref(_op) is None or _op["arity"] != 2:
        continue
    for _dt in DTYPES:
        for _kind in ("int", "float"):
            for _side in ("left", "right"):
                _WEAK.append(pytest.param(_op, _dt, _kind, _side,
                                          id=f"{_op['name']}-{_dt}-{_kind}-{_side}"))


def _weak_check(op, dtype, kind, side, rng, runtime):
    fn, doms = _ref(op)[:2]
    arr_dom, sc_dom = (doms[1], doms[0]) if side == "left" else (doms[0], doms[1])
    arr = make_input(rng, (2, 3), dtype, arr_dom)
    s = scalar_for(sc_dom, kind)
    if side == "left":
        call_np = lambda a: fn(s, a)  # noqa: E731
        f = (tracejit.compile(lambda a, t: fn(t, a)) if runtime
             else tracejit.compile(lambda a: fn(s, a)))
    else:
        call_np = lambda a: fn(a, s)  # noqa: E731
        f = (tracejit.compile(lambda a, t: fn(a, t)) if runtime
             else tracejit.compile(lambda a: fn(a, s)))
    args = (arr, s) if runtime else (arr,)
    outcome, expected = numpy_outcome(call_np, arr)
    if outcome != "ok":
        return run_or_raise(f, args, outcome, expected)
    run_or_raise(f, args, outcome, expected, exact=_exact(op, expected.dtype),
                 atol=None if _ref(op)[2] not in NEAR_EXACT else
                 (1e-5 if expected.dtype == np.float32 else 1e-12))


@pytest.mark.parametrize("op,dtype,kind,side", _WEAK)
def test_weak_scalar_constant(op, dtype, kind, side, rng):
    """Python scalar written in the traced function (NumPy 2 weak promotion)."""
    _weak_check(op, dtype, kind, side, rng, runtime=False)


@pytest.mark.parametrize("op,dtype,kind,side", _WEAK)
def test_weak_scalar_argument(op, dtype, kind, side, rng):
    """Python scalar passed as a (runtime) argument: same promotion as NumPy."""
    _weak_check(op, dtype, kind, side, rng, runtime=True)


# ----------------------------------------------------------------- special values
def _table_has(name):
    return any(op["numpy"] is not None and getattr(np, op["numpy"], None) is getattr(np, name)
               for op in OP_TABLE)


SPECIAL_UNARY = [
    ("log", [-1.0, 0.0, -0.0, 1.0, np.inf, -np.inf, np.nan]),
    ("log2", [-1.0, 0.0, 1.0, np.inf, np.nan]),
    ("log1p", [-2.0, -1.0, 0.0, np.inf, np.nan]),
    ("sqrt", [-1.0, -0.0, 0.0, np.inf, -np.inf, np.nan]),
    ("exp", [1000.0, -1000.0, np.inf, -np.inf, np.nan]),
    ("expm1", [1000.0, -np.inf, np.inf, np.nan]),
    ("reciprocal", [0.0, -0.0, np.inf, np.nan]),
    ("tanh", [np.inf, -np.inf, 50.0, -50.0, np.nan]),
    ("arctan", [np.inf, -np.inf, np.nan]),
    ("sin", [np.inf, np.nan]), ("cos", [-np.inf, np.nan]), ("tan", [np.inf, np.nan]),
    ("sign", [np.nan, -0.0, 0.0, np.inf, -np.inf]),
    ("floor", [np.nan, np.inf, -0.5, -0.0]), ("ceil", [np.nan, -np.inf, -0.5]),
    ("absolute", [-np.inf, np.nan, -0.0]), ("negative", [np.inf, np.nan]),
    ("square", [np.inf, np.nan, 1e200]),
    ("arcsin", [2.0, -2.0, 1.0, -1.0, 0.0, -0.0, np.inf, np.nan]),
    ("arccos", [2.0, -1.0, 1.0, np.inf, np.nan]),
    ("sinh", [1000.0, -1000.0, np.inf, -np.inf, np.nan, -0.0]),
    ("cosh", [1000.0, -1000.0, np.inf, -np.inf, np.nan, -0.0]),
    ("arcsinh", [np.inf, -np.inf, np.nan, 1e300, -1e300, -0.0]),
    ("arccosh", [0.5, 1.0, np.inf, -np.inf, np.nan, 1e300]),
    ("arctanh", [1.0, -1.0, 2.0, np.inf, np.nan, -0.0]),
    ("exp2", [1024.0, -1080.0, 200.0, -200.0, np.inf, -np.inf, np.nan]),
    ("log10", [-1.0, 0.0, -0.0, 1.0, np.inf, -np.inf, np.nan, 1e-300]),
    ("cbrt", [-8.0, np.inf, -np.inf, np.nan, -0.0, 1e-300]),
    ("isnan", [np.nan, -np.nan, np.inf, -np.inf, 0.0, 1e-310]),
    ("isinf", [np.nan, -np.nan, np.inf, -np.inf, 0.0, 1e300]),
    ("isfinite", [np.nan, -np.nan, np.inf, -np.inf, -0.0, 1e300]),
    ("signbit", [-0.0, 0.0, -np.nan, np.nan, -np.inf, np.inf, -1e-310]),
]
SPECIAL_BINARY = [
    ("divide", [1.0, -1.0, 0.0, np.inf, np.nan], [0.0, 0.0, 0.0, np.inf, 1.0]),
    ("floor_divide", [1.0, -1.0, 0.0, 1.0, -1.0, 1.0, -7.5],
     [0.0, 0.0, 0.0, 0.1, np.inf, -np.inf, 2.0]),
    ("remainder", [1.0, -1.0, 0.0, 1.0, -1.0, 1.0, -7.5, np.inf],
     [0.0, 0.0, np.nan, 0.1, np.inf, -np.inf, 2.0, 3.0]),
    ("power", [-2.0, 0.0, 0.0, np.inf, 1.0, np.nan, -8.0],
     [0.5, -1.0, 0.0, -1.0, np.nan, 0.0, 1.0 / 3.0]),
    ("maximum", [np.nan, 1.0, np.nan, -np.inf], [1.0, np.nan, np.nan, 3.0]),
    ("minimum", [np.nan, 1.0, np.nan, np.inf], [1.0, np.nan, np.nan, 3.0]),
    ("logaddexp", [np.inf, -np.inf, np.nan, 1000.0, -np.inf], [np.inf, -np.inf, 1.0, 1000.0, 2.0]),
    ("less", [np.nan, 1.0, np.nan], [1.0, np.nan, np.nan]),
    ("equal", [np.nan, 1.0, -0.0], [np.nan, np.nan, 0.0]),
    ("not_equal", [np.nan, 1.0, -0.0], [np.nan, np.nan, 0.0]),
    ("greater_equal", [np.nan, np.inf, -np.inf], [np.nan, np.inf, np.inf]),
    ("logical_and", [np.nan, 0.0, -0.0], [1.0, np.nan, 1.0]),
    ("logical_xor", [np.nan, 0.0, -0.0], [np.nan, np.nan, 1.0]),
    ("arctan2", [0.0, -0.0, 0.0, -0.0, 1.0, np.inf, np.inf, -np.inf, np.nan, 1.0],
     [0.0, 0.0, -0.0, -0.0, 0.0, np.inf, -np.inf, 1.0, 1.0, np.nan]),
    ("hypot", [np.inf, np.nan, -np.inf, 3.0, 1e30, 0.0], [np.nan, np.inf, 1.0, -4.0, 1e30, -0.0]),
    ("copysign", [1.0, 1.0, -2.0, np.inf, np.nan, 0.0], [-0.0, np.nan, 3.0, -1.0, -1.0, -np.inf]),
    ("fmod", [5.5, -5.5, np.inf, 1.0, 0.0, -0.0, np.nan, 3.0, -1.0, 1e30],
     [2.0, 2.0, 2.0, 0.0, np.inf, 1.0, 1.0, np.inf, 1.0, 3.0]),
    ("float_power", [-8.0, 0.0, 0.0, np.inf, 1.0, np.nan, -2.0, 10.0],
     [1.0 / 3.0, -1.0, 0.0, -1.0, np.nan, 0.0, 3.0, 400.0]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,values", SPECIAL_UNARY, ids=[s[0] for s in SPECIAL_UNARY])
def test_special_values_unary(name, values, dtype):
    if not _table_has(name):
        pytest.fail(f"{name} missing from op_table")
    uf = getattr(np, name)
    with np.errstate(all="ignore"):
        x = np.array(values, dtype=dtype)
        expected = uf(x)
        result = tracejit.compile(lambda a: uf(a))(x)
    assert_matches_numpy(result, expected, exact=name not in TRANSCENDENTAL)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,a,b", SPECIAL_BINARY, ids=[s[0] for s in SPECIAL_BINARY])
def test_special_values_binary(name, a, b, dtype):
    if not _table_has(name):
        pytest.fail(f"{name} missing from op_table")
    uf = getattr(np, name)
    x, y = np.array(a, dtype=dtype), np.array(b, dtype=dtype)
    with np.errstate(all="ignore"):
        expected = uf(x, y)
        result = tracejit.compile(lambda p, q: uf(p, q))(x, y)
    assert_matches_numpy(result, expected, exact=name not in TRANSCENDENTAL)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("name", ["floor_divide", "remainder"])
def test_integer_division_signs(name, dtype):
    """Python-style (floor) semantics for all sign combinations."""
    a = np.array([7, -7, 7, -7, 0, 1, -1, 6, -6, 100], dtype=dtype)
    b = np.array([2, 2, -2, -2, 3, -5, 5, 3, -3, 7], dtype=dtype)
    uf = getattr(np, name)
    result = tracejit.compile(lambda p, q: uf(p, q))(a, b)
    assert_matches_numpy(result, uf(a, b))


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("name", ["floor_divide", "remainder"])
def test_integer_division_by_zero_does_not_crash(name, dtype):
    """numpy warns and gives 0; compare only where the divisor is nonzero."""
    a = np.array([7, -7, 3, 0, 5, -9], dtype=dtype)
    b = np.array([2, 0, 0, 0, -3, 4], dtype=dtype)
    uf = getattr(np, name)
    with np.errstate(all="ignore"):
        result = tracejit.compile(lambda p, q: uf(p, q))(a, b)
        expected = uf(a, b)
    assert result.dtype == expected.dtype and result.shape == expected.shape
    nz = b != 0
    np.testing.assert_array_equal(result[nz], expected[nz])


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_extremes_exact(dtype):
    info = np.iinfo(dtype)
    a = np.array([info.max, info.min, info.max - 1, -1, 0], dtype=dtype)
    b = np.array([1, 1, -1, info.max, info.min], dtype=dtype)
    f = tracejit.compile(lambda p, q: (p // q, p % q, np.maximum(p, q), p < q, p ^ q))
    for r, e in zip(f(a, b), (a // b, a % b, np.maximum(a, b), a < b, a ^ b)):
        assert_matches_numpy(r, e)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_shift_counts_outside_the_bit_width(dtype):
    """NumPy defines shifts C leaves undefined: a count >= the bit width or negative
    gives 0 (left) or the sign (right); left shifts wrap."""
    info = np.iinfo(dtype)
    bits = np.dtype(dtype).itemsize * 8
    a = np.array([1, -1, 5, -8, -8, info.min, info.max, 3, -3, 1, -1, 7, -7], dtype=dtype)
    b = np.array([40, 40, -1, 70, -70, 1, 1, bits - 1, bits - 1, bits, bits, info.max, info.min],
                 dtype=dtype)
    f = tracejit.compile(lambda p, q: (np.left_shift(p, q), np.right_shift(p, q), p << q, p >> q))
    for r, e in zip(f(a, b), (a << b, a >> b, a << b, a >> b)):
        assert_matches_numpy(r, e)
    g = tracejit.compile(lambda p: (p << 40, p >> 70, 1 << p, -8 >> p))
    c = np.array([0, 1, 31, 32, 33, 63, 64, -1, 200], dtype=dtype)
    for r, e in zip(g(c), (c << 40, c >> 70, 1 << c, -8 >> c)):
        assert_matches_numpy(r, e)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_fmod_signs_and_zero(dtype):
    """C's truncated remainder; numpy gives 0 for a zero divisor and for INT_MIN % -1."""
    info = np.iinfo(dtype)
    a = np.array([7, -7, 7, -7, info.min, info.min, 5, 0, info.max, info.min], dtype=dtype)
    b = np.array([3, 3, -3, -3, -1, 0, 0, 0, -1, info.max], dtype=dtype)
    with np.errstate(all="ignore"):
        expected = np.fmod(a, b)
    assert_matches_numpy(tracejit.compile(lambda p, q: np.fmod(p, q))(a, b), expected)


# Every float op of the vocabulary issue: the sign of zeros and infinities as numpy's.
_SIGNED = ["arcsin", "arccos", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "exp2",
           "log10", "cbrt", "arctan2", "hypot", "copysign", "fmod", "float_power"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", _SIGNED)
def test_signed_zeros_and_infinities(name, dtype):
    uf = getattr(np, name)
    vals = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 0.5, -0.5, 2.0, -3.0], dtype=dtype)
    args = [vals] if uf.nin == 1 else [np.repeat(vals, len(vals)), np.tile(vals, len(vals))]
    with np.errstate(all="ignore"):
        expected = uf(*args)
    f = (tracejit.compile(lambda p: uf(p)) if uf.nin == 1
         else tracejit.compile(lambda p, q: uf(p, q)))
    result = f(*args)
    assert_matches_numpy(result, expected, exact=name not in TRANSCENDENTAL)
    sure = ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(result[sure]), np.signbit(expected[sure]))
