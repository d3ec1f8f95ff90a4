"""Cache and retrace behaviour, pytrees, runtime vs static scalars, arrays read
from closures/globals at call time, fresh outputs, inputs never mutated."""
import sys

import numpy as np
import pytest

import tracejit
from conftest import assert_matches_numpy, make_input

_THIS = sys.modules[__name__]
_G = np.arange(4, dtype=np.float64)  # global read by traced functions


def _mul_add(x, y):
    return x * y + 1.0


# ----------------------------------------------------------------- wrapping
def test_compile_forms_and_wrapped(rng):
    x, y = make_input(rng, (3,), "float64"), make_input(rng, (3,), "float64")

    @tracejit.compile
    def deco(a, b):
        return a * b + 1.0

    direct = tracejit.compile(_mul_add)

    @tracejit.compile(static_argnames=("n",))
    def factory(a, b, n):
        return a * b + n

    assert direct.__wrapped__ is _mul_add
    assert callable(deco.__wrapped__) and deco.__wrapped__(x, y) is not None
    for f in (deco, direct):
        assert_matches_numpy(f(x, y), x * y + 1.0)
    assert_matches_numpy(factory(x, y, n=1.0), x * y + 1.0)


def test_cache_info_fields(rng):
    f = tracejit.compile(_mul_add)
    info = f.cache_info()
    assert isinstance(info, tuple)
    assert (info.hits, info.misses, info.variants) == (0, 0, 0)
    assert info.last_retrace is None
    assert isinstance(info.compile_time, float) and info.compile_time == 0.0
    x = make_input(rng, (3, 4), "float32")
    f(x, x)
    info = f.cache_info()
    assert (info.hits, info.misses, info.variants) == (0, 1, 1)
    assert isinstance(info.compile_time, float) and info.compile_time > 0.0
    assert info[0] == info.hits and info[1] == info.misses and info[2] == info.variants
    f(x, x)
    info2 = f.cache_info()
    assert (info2.hits, info2.misses, info2.variants) == (1, 1, 1)
    assert info2.compile_time == info.compile_time  # a hit compiles nothing


def test_independent_caches(rng):
    f, g = tracejit.compile(_mul_add), tracejit.compile(_mul_add)
    x = make_input(rng, (3,), "float64")
    f(x, x)
    assert g.cache_info().misses == 0 and g.cache_info().variants == 0
    g(x, x)
    assert f.cache_info().hits == 0


def test_shape_change_retraces(rng):
    f = tracejit.compile(_mul_add)
    a, b = make_input(rng, (3, 4), "float64"), make_input(rng, (3, 5), "float64")
    f(a, 2.0)
    assert_matches_numpy(f(b, 2.0), b * 2.0 + 1.0)
    info = f.cache_info()
    assert (info.misses, info.variants, info.hits) == (2, 2, 0)
    assert "arg 0: shape (3, 4) -> (3, 5)" in info.last_retrace
    assert_matches_numpy(f(a, 3.0), a * 3.0 + 1.0)  # old variant still cached
    info = f.cache_info()
    assert (info.misses, info.variants, info.hits) == (2, 2, 1)


def test_dtype_change_retraces(rng):
    f = tracejit.compile(_mul_add)
    x = make_input(rng, (4,), "float32")
    y32, y64 = make_input(rng, (4,), "float32"), make_input(rng, (4,), "float64")
    assert_matches_numpy(f(x, y32), x * y32 + 1.0)
    assert_matches_numpy(f(x, y64), x * y64 + 1.0)
    info = f.cache_info()
    assert info.misses == 2 and info.variants == 2
    assert "arg 1: dtype float32 -> float64" in info.last_retrace


def test_layout_change_retraces_and_reads_correctly(rng):
    f = tracejit.compile(lambda a, b: a - 2 * b)
    base = make_input(rng, (6, 6), "float64")
    y = make_input(rng, (6, 6), "float64")
    assert_matches_numpy(f(base, y), base - 2 * y)
    assert_matches_numpy(f(base.T, y), base.T - 2 * y)
    info = f.cache_info()
    assert info.misses == 2
    assert "layout" in info.last_retrace and "arg 0" in info.last_retrace
    big = make_input(rng, (18, 18), "float64")
    wide, tall = make_input(rng, (12, 18), "float64"), make_input(rng, (18, 12), "float64")
    views = [base, base.T, base[::-1], wide[::2, ::3], tall[::3, ::2], big[1::3, 5:11],
             big[::-3, ::-3], base.T, big[::3, ::3], base]
    for v in views:  # same shape, many strides: layout/strides must not be baked wrongly
        assert v.shape == (6, 6)
        assert_matches_numpy(f(v, y), v - 2 * y)
        assert_matches_numpy(f(y, v), y - 2 * v)


def test_many_variants(rng):
    f = tracejit.compile(lambda a: a * a - a)
    xs = [make_input(rng, (n,), "int64") for n in range(30)]
    for x in xs + xs[::-1]:
        assert_matches_numpy(f(x), x * x - x)
    info = f.cache_info()
    assert info.variants == 30 and info.misses == 30 and info.hits == 30


def test_cache_clear(rng):
    f = tracejit.compile(_mul_add)
    x = make_input(rng, (3,), "float64")
    f(x, x)
    f(x[:2], x[:2])
    assert f.cache_info().variants == 2
    f.cache_clear()
    assert f.cache_info().variants == 0
    misses = f.cache_info().misses
    assert_matches_numpy(f(x, x), x * x + 1.0)
    assert f.cache_info().misses == misses + 1 and f.cache_info().variants == 1


# ----------------------------------------------------------------- scalars
def test_python_float_is_runtime(rng):
    f = tracejit.compile(lambda a, s: a * s)
    x = make_input(rng, (5,), "float32")
    for s in (2.0, 3.5, 0.1, -7.25, 1e30):
        assert_matches_numpy(f(x, s), x * s)
    info = f.cache_info()
    assert info.misses == 1 and info.hits == 4


def test_python_int_is_runtime(rng):
    f = tracejit.compile(lambda a, s: (a + s, a // s))
    x = make_input(rng, (5,), "int32")
    for s in (3, 7, -2, 100000):
        r = f(x, s)
        assert_matches_numpy(r[0], x + s)
        assert_matches_numpy(r[1], x // s)
    assert f.cache_info().misses == 1


def test_runtime_scalar_as_keyword_and_in_pytree(rng):
    f = tracejit.compile(lambda a, pair, scale=1.0: a * scale + pair[1] * pair[0])
    x = make_input(rng, (4,), "float64")
    for s, p in [(2.0, 3.0), (5.0, -1.5), (0.25, 8.0)]:
        assert_matches_numpy(f(x, (x, p), scale=s), x * s + p * x)
    assert f.cache_info().misses == 1


def test_int_then_float_scalar_changes_dtype(rng):
    f = tracejit.compile(lambda a, s: a + s)
    x = make_input(rng, (4,), "int32")
    assert_matches_numpy(f(x, 2), x + 2)
    assert_matches_numpy(f(x, 2.5), x + 2.5)
    assert_matches_numpy(f(x, 4), x + 4)


def test_static_argnames_retrace(rng):
    @tracejit.compile(static_argnames=("n",))
    def f(x, n):
        for _ in range(n):  # needs a concrete n
            x = x * 2.0
        return x

    x = make_input(rng, (3,), "float64")
    assert_matches_numpy(f(x, n=2), x * 4.0)
    assert_matches_numpy(f(x, n=3), x * 8.0)
    info = f.cache_info()
    assert info.misses == 2 and info.variants == 2
    assert "arg 'n'" in info.last_retrace
    assert_matches_numpy(f(x, n=2), x * 4.0)
    assert f.cache_info().hits == 1


def test_static_argnames_passed_positionally(rng):
    @tracejit.compile(static_argnames=("n",))
    def f(x, n):
        return x * 10.0 if n > 2 else x - 1.0

    x = make_input(rng, (3,), "float64")
    assert_matches_numpy(f(x, 3), x * 10.0)
    assert_matches_numpy(f(x, 1), x - 1.0)
    assert f.cache_info().misses == 2


@pytest.mark.parametrize("values", [(True, False), (None, "x"), ("relu", "neg")])
def test_non_numeric_python_values_are_static(values, rng):
    def fn(x, opt):
        if opt is True or opt == "relu":
            return np.maximum(x, 0.0)
        if opt is None:
            return x + 100.0
        return -x

    f = tracejit.compile(fn)
    x = make_input(rng, (6,), "float64")
    for v in values + values:
        assert_matches_numpy(f(x, v), fn(x, v))
    info = f.cache_info()
    assert info.misses == 2 and info.hits == 2


# ----------------------------------------------------------------- pytrees
def test_pytree_inputs_and_outputs(rng):
    def fn(pair, params, lst, scale):
        a, b = pair
        return {"sum": a + b, "nested": (params["w"] * a, [params["b"] - lst[0], lst[1]]),
                "scaled": b * scale}

    a, b = make_input(rng, (3,), "float64"), make_input(rng, (3,), "float64")
    params = {"w": make_input(rng, (2, 1), "float64"), "b": make_input(rng, (3,), "float32")}
    lst = [make_input(rng, (3,), "int32"), make_input(rng, (), "bool")]
    out = tracejit.compile(fn)((a, b), params, lst, 2.0)
    exp = fn((a, b), params, lst, 2.0)
    assert type(out) is dict and list(out) == ["sum", "nested", "scaled"]
    assert type(out["nested"]) is tuple and len(out["nested"]) == 2
    assert type(out["nested"][1]) is list and len(out["nested"][1]) == 2
    assert_matches_numpy(out["sum"], exp["sum"])
    assert_matches_numpy(out["scaled"], exp["scaled"])
    assert_matches_numpy(out["nested"][0], exp["nested"][0])
    assert_matches_numpy(out["nested"][1][0], exp["nested"][1][0])
    assert_matches_numpy(out["nested"][1][1], exp["nested"][1][1], inputs=[lst[1]])


def test_pytree_structure_change_retraces(rng):
    f = tracejit.compile(lambda xs: sum(xs[1:], xs[0]))
    x = [make_input(rng, (3,), "float64") for _ in range(3)]
    assert_matches_numpy(f((x[0], x[1])), x[0] + x[1])
    assert_matches_numpy(f((x[0], x[1], x[2])), x[0] + x[1] + x[2])
    assert_matches_numpy(f([x[2], x[1]]), x[2] + x[1])
    assert f.cache_info().misses >= 2


@pytest.mark.parametrize("case", ["tuple", "list", "dict", "kwarg", "deep"])
def test_retrace_paths(case, rng):
    a3, a4 = make_input(rng, (3,), "float64"), make_input(rng, (4,), "float64")
    w = make_input(rng, (1,), "float64")
    if case == "tuple":
        f = tracejit.compile(lambda t: t[0] + t[1])
        calls, path = [((w, a3),), ((w, a4),)], "arg 0[1]: shape (3,) -> (4,)"
    elif case == "list":
        f = tracejit.compile(lambda t: t[0] + t[1])
        calls, path = [([w, a3],), ([w, a4],)], "arg 0[1]: shape (3,) -> (4,)"
    elif case == "dict":
        f = tracejit.compile(lambda d: d["w"] * d["b"])
        calls = [({"b": w, "w": a3},), ({"b": w, "w": a4},)]
        path = "arg 0['w']: shape (3,) -> (4,)"
    elif case == "kwarg":
        f = tracejit.compile(lambda x, scale: x * scale)
        calls, path = [(w,), (w,)], "arg 'scale': shape (3,) -> (4,)"
    else:
        f = tracejit.compile(lambda x, t: x + t[1]["w"])
        calls = [(w, (w, {"w": a3})), (w, (w, {"w": a4}))]
        path = "arg 1[1]['w']: shape (3,) -> (4,)"
    for i, args in enumerate(calls):
        if case == "kwarg":
            r = f(*args, scale=(a3, a4)[i])
            assert_matches_numpy(r, w * (a3, a4)[i])
        else:
            f(*args)
    assert path in f.cache_info().last_retrace


# ----------------------------------------------------------------- closures/globals
def test_global_array_mutated_in_place_is_seen(rng):
    def fn(x):
        return x + _G

    f = tracejit.compile(fn)
    x = make_input(rng, (4,), "float64")
    saved = _G.copy()
    try:
        assert_matches_numpy(f(x), x + _G)
        _G[:] = [10.0, 20.0, 30.0, 40.0]
        assert_matches_numpy(f(x), x + np.array([10.0, 20.0, 30.0, 40.0]))
        assert f.cache_info().misses == 1, f.cache_info()
    finally:
        _G[:] = saved


def test_global_array_rebound(monkeypatch, rng):
    def fn(x):
        return x * _G

    f = tracejit.compile(fn)
    x = make_input(rng, (3, 1), "float64")
    assert_matches_numpy(f(x), x * _G)
    monkeypatch.setattr(_THIS, "_G", make_input(rng, (4,), "float64"))  # same shape, new object
    assert_matches_numpy(f(x), x * _G)
    monkeypatch.setattr(_THIS, "_G", make_input(rng, (6,), "float64"))  # new shape
    assert_matches_numpy(f(x), x * _G)
    monkeypatch.setattr(_THIS, "_G", make_input(rng, (6,), "int32"))  # new dtype
    assert_matches_numpy(f(x.astype(np.int32)), x.astype(np.int32) * _G)
    assert f.cache_info().misses >= 3


def test_closure_array_read_at_call_time(rng):
    w = make_input(rng, (3,), "float32")

    def fn(x):
        return x - w

    f = tracejit.compile(fn)
    x = make_input(rng, (3,), "float32")
    assert_matches_numpy(f(x), x - w)
    w[1] = 123.0  # in-place
    assert_matches_numpy(f(x), x - w)
    w = make_input(rng, (2, 3), "float32")  # rebinds the closure cell
    assert_matches_numpy(f(x), x - w)
    w = w.T.copy().T[::-1]  # same shape, different layout
    assert_matches_numpy(f(x), x - w)


# ----------------------------------------------------------------- fresh outputs
@pytest.mark.parametrize("fn", [lambda x: x, lambda x: x.T, lambda x: x.astype(x.dtype),
                                lambda x: +x, lambda x: np.transpose(x)],
                         ids=["identity", "T", "astype_same", "pos", "np_transpose"])
def test_outputs_are_fresh_copies(fn, rng):
    f = tracejit.compile(fn)
    x = make_input(rng, (3, 4), "float64")
    for inp in (x, x[:, ::2], x.T):
        r = f(inp)
        assert r is not inp
        assert not np.shares_memory(r, inp)
        assert_matches_numpy(r, fn(inp))
        assert r.flags.writeable and r.flags.c_contiguous


def test_outputs_fresh_across_calls(rng):
    f = tracejit.compile(lambda x: x * 2.0)
    x = make_input(rng, (4,), "float64")
    r1 = f(x)
    r2 = f(x)
    assert not np.shares_memory(r1, r2)
    r1[:] = -1.0
    assert_matches_numpy(r2, x * 2.0)
    assert_matches_numpy(f(x), x * 2.0)


def test_global_array_returned_unchanged_is_a_copy(rng):
    f = tracejit.compile(lambda x: (x * 2.0, _G))
    x = make_input(rng, (4,), "float64")
    _, g1 = f(x)
    assert_matches_numpy(g1, _G, inputs=[_G])
    g1[:] = -1.0
    assert not (_G == -1.0).any()
    assert_matches_numpy(f(x)[1], _G)


def test_zero_d_results_have_numpys_types(rng):
    """Arithmetic on 0-d arrays gives NumPy scalars, as in NumPy; a 0-d argument returned
    is a (fresh) 0-d array."""
    f = tracejit.compile(lambda x, y: (x + y, x < y, x))
    x, y = np.array(1.5), np.array(2.0)
    for r, e, want in zip(f(x, y), (x + y, x < y, x), (np.float64, np.bool_, np.ndarray)):
        assert type(r) is type(e) is want
        assert_matches_numpy(r, e, inputs=[x])


# ----------------------------------------------------------------- inputs
def test_in_place_on_an_argument_reaches_the_caller(rng):
    """Eager NumPy writes `x += 1.0` into the caller's array: so does every call of the
    compiled function, into that call's array; the same array passed twice (eager's
    write would be seen through both) is refused, not computed otherwise."""
    def fn(x, d):
        x += 1.0
        return x

    f = tracejit.compile(fn)
    for _ in range(2):
        x = make_input(rng, (3, 4), "float64")
        x0 = x.copy()
        assert f(x, {}) is x
        np.testing.assert_array_equal(x, x0 + 1.0)
    with pytest.raises(tracejit.TraceError, match=r"writes into an array whose memory another "
                       r"array it reads shares"):
        tracejit.compile(lambda x, d: d.__setitem__("w", d["w"].__imul__(2.0)))(x, {"w": x})
    np.testing.assert_array_equal(x, x0 + 1.0)


def test_in_place_on_a_fresh_value_is_eagers(rng):
    def fn(x, w):
        y = x * 1.0
        z = y               # another name for the same array sees the update
        y += 1.0
        y -= w
        s = x.sum()         # a NumPy scalar: `+=` rebinds the name only
        s0 = s
        s += 1.0
        return y, z, s, s0

    x = make_input(rng, (3, 4), "float64")
    w = make_input(rng, (6, 4), "float64")[::2]
    x0, w0 = x.copy(), w.copy()
    f = tracejit.compile(fn)
    for _ in range(2):
        r = f(x, w)
        want = fn(x.copy(), w.copy())
        for got, exp in zip(r, want):
            assert_matches_numpy(got, exp)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


def test_same_array_passed_twice(rng):
    f = tracejit.compile(lambda a, b: a * 2.0 - b)
    x = make_input(rng, (5,), "float64")
    assert_matches_numpy(f(x, x), x * 2.0 - x)
    assert_matches_numpy(f(x, x[::-1]), x * 2.0 - x[::-1])


def test_large_array(rng):
    x = make_input(rng, (1000, 1001), "float32")
    y = make_input(rng, (1001,), "float32")
    f = tracejit.compile(lambda a, b: np.where(a > b, a - b, b * 0.5))
    assert_matches_numpy(f(x, y), np.where(x > y, x - y, y * 0.5))
    yc = y[:, None]
    assert_matches_numpy(f(x.T, yc), np.where(x.T > yc, x.T - yc, yc * 0.5))


def test_byteswapped_and_unaligned_inputs(rng):
    f = tracejit.compile(lambda a: a * 2.0 + 1.0)
    x = make_input(rng, (7,), "float64")
    swapped = x.astype(x.dtype.newbyteorder(">"))
    try:
        r = f(swapped)
    except TypeError:
        pass  # refusing a non-native byte order is acceptable
    else:
        assert_matches_numpy(r, x * 2.0 + 1.0)
    buf = np.zeros(7 * 8 + 1, dtype=np.uint8)
    unaligned = np.frombuffer(buf.data, dtype=np.float64, count=7, offset=1)
    buf[1:] = x.view(np.uint8)
    assert not unaligned.flags.aligned
    assert_matches_numpy(f(unaligned), x * 2.0 + 1.0)


# ----------------------------------------------------------------- argument binding
def test_keyword_order_does_not_matter(rng):
    f = tracejit.compile(lambda a, b: a - 2.0 * b)
    x, y = make_input(rng, (5,), "float64"), make_input(rng, (5,), "float64")
    assert_matches_numpy(f(a=x, b=y), x - 2.0 * y)
    assert_matches_numpy(f(b=y, a=x), x - 2.0 * y)
    assert_matches_numpy(f(x, b=y), x - 2.0 * y)
    assert_matches_numpy(f(b=x, a=y), y - 2.0 * x)


def test_defaults_and_varargs(rng):
    x = make_input(rng, (4,), "float32")
    h = tracejit.compile(lambda a, scale=2.0: a * scale)
    assert_matches_numpy(h(x), x * 2.0)
    assert_matches_numpy(h(x, 3.0), x * 3.0)
    v = tracejit.compile(lambda *xs, **kw: sum(xs[1:], xs[0]) * kw.get("s", 1.0))
    assert_matches_numpy(v(x, x, s=0.5), (x + x) * 0.5)
    assert_matches_numpy(v(x, x, x), x + x + x)


def test_static_values_equal_but_of_different_type(rng):
    """1, 1.0 and True hash equal but promote differently."""
    f = tracejit.compile(lambda a, n: a * n, static_argnames=("n",))
    x = make_input(rng, (4,), "int32")
    for n in (1, 1.0, True, 1, 1.0):
        assert_matches_numpy(f(x, n=n), x * n)


def test_weak_promotion_of_static_float(rng):
    f = tracejit.compile(lambda a, s: a * s, static_argnames=("s",))
    x = make_input(rng, (4,), "float32")
    assert_matches_numpy(f(x, s=0.1), x * 0.1)


def test_reference_counts_are_stable(rng):
    x, y = make_input(rng, (3, 4), "float64"), make_input(rng, (4,), "float64")
    s = float("2.5") * 1.0
    pair, params = (y, 3), {"w": y}
    f = tracejit.compile(lambda a, t, d, sc: (a * t[0] + d["w"] * sc + _G, [a.T]))
    objs = (x, y, s, _G, pair, params)
    f(x, pair, params, s)
    before = [sys.getrefcount(o) for o in objs]
    for _ in range(50):
        r = f(x, pair, params, s)
    for _ in range(5):
        f.cache_clear()
        r = f(x, pair, params, s)
    for _ in range(20):
        with pytest.raises(TypeError):
            f(x.astype(np.longdouble), pair, params, s)
    after = [sys.getrefcount(o) for o in objs]
    assert after == before
    out0, out1 = r[0], r[1][0]
    del r
    counts = (sys.getrefcount(out0), sys.getrefcount(out1))  # variable + argument
    assert counts == (2, 2)


def test_the_suite_keeps_its_tier_cache_out_of_the_users_home():
    """conftest points TRACEJIT_CACHE_DIR at a temporary directory of the suite's."""
    import os
    d = os.environ["TRACEJIT_CACHE_DIR"]
    assert os.path.basename(d).startswith("tracejit-tests-") or "pytest" in d
    assert not d.startswith(os.path.expanduser("~/.cache"))
