"""NumPy vocabulary beyond ufuncs: np.nan_to_num and the *_like creation functions
(zeros_like, ones_like, empty_like, full_like) on traced values, against NumPy."""
import re

import numpy as np
import pytest

import tracejit
from conftest import DTYPES, FLOAT_DTYPES, assert_matches_numpy, make_input

SPECIAL = [1.5, -2.0, np.nan, np.inf, -np.inf, -0.0, 0.0, -np.nan, 3e38, -1e-300]
SHAPES = [(), (0,), (5,), (3, 4), (0, 3), (2, 3, 4)]


def _special(dtype, shape=(2, 5)):
    """SPECIAL values in `dtype` (ints and bools from the finite ones), tiled to shape."""
    vals = np.array(SPECIAL)
    if np.dtype(dtype).kind != "f":
        vals = np.array([3, -7, 0, 1, 100, -1, 2, 5, -100, 42])
    with np.errstate(all="ignore"):
        return np.resize(vals, shape).astype(dtype)


def _msg(exc_type, fn, *args, **kwargs):
    with pytest.raises(exc_type) as ei:
        fn(*args, **kwargs)
    return str(ei.value)


# ----------------------------------------------------------------- nan_to_num
@pytest.mark.parametrize("shape", [(2, 5), (), (0,), (0, 3), (10,)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_to_num_defaults(dtype, shape):
    x = _special(dtype, shape)
    r = tracejit.compile(lambda a: np.nan_to_num(a))(x)
    assert_matches_numpy(r, np.nan_to_num(x), inputs=[x])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kw", [
    dict(nan=-1.0), dict(posinf=9), dict(neginf=-9.5), dict(nan=1, posinf=2, neginf=3),
    dict(nan=np.float64(1e300)), dict(posinf=np.int64(5), neginf=np.float32(-0.5)),
    dict(nan=True), dict(posinf=1e300, neginf=-1e300), dict(nan=np.nan), dict(posinf=2**70),
    dict(nan=-0.0, copy=True),
], ids=lambda kw: ",".join(f"{k}={v!r}" for k, v in kw.items()))
def test_nan_to_num_arguments(dtype, kw):
    x = _special(dtype)
    with np.errstate(all="ignore"):
        expected = np.nan_to_num(x, **kw)
        r = tracejit.compile(lambda a: np.nan_to_num(a, **kw))(x)
    assert_matches_numpy(r, expected, inputs=[x])
    np.testing.assert_array_equal(np.signbit(r), np.signbit(expected))


def test_nan_to_num_positional_keyword_and_runtime_values():
    x = _special("float64", (3, 4))
    f = tracejit.compile(lambda a: np.nan_to_num(a, True, 1.0, 2.0, 3.0))
    assert_matches_numpy(f(x), np.nan_to_num(x, True, 1.0, 2.0, 3.0))
    g = tracejit.compile(lambda a: np.nan_to_num(x=a, neginf=-4))
    assert_matches_numpy(g(x), np.nan_to_num(x, neginf=-4))
    h = tracejit.compile(lambda a, v, p: np.nan_to_num(a, nan=v, posinf=p))
    for v, p in ((7.0, 8.0), (-1.5, 2.0)):    # runtime arguments: no retrace
        assert_matches_numpy(h(x, v, p), np.nan_to_num(x, nan=v, posinf=p))
    assert h.cache_info().variants == 1


def test_nan_to_num_of_python_scalar_arguments():
    f = tracejit.compile(lambda s: np.nan_to_num(s))
    for s in (float("inf"), float("-inf"), float("nan"), -0.0, 2.5, 3, -7):
        assert_matches_numpy(f(s), np.nan_to_num(s))


def test_nan_to_num_none_for_nan_is_refused_like_numpy():
    x = _special("float64")
    with pytest.raises(TypeError):
        np.nan_to_num(x, nan=None)
    msg = _msg((TypeError, tracejit.TraceError),
               tracejit.compile(lambda a: np.nan_to_num(a, nan=None)), x)
    assert "NoneType" in msg
    r = tracejit.compile(lambda a: np.nan_to_num(a, posinf=None, neginf=None))(x)
    assert_matches_numpy(r, np.nan_to_num(x, posinf=None, neginf=None))


def test_nan_to_num_broadcast_fill_value_and_noncontiguous():
    x = _special("float32", (4, 6))[::2, ::-2].T
    fill = np.array([10.0, 20.0])
    r = tracejit.compile(lambda a: np.nan_to_num(a, nan=fill))(x)
    assert_matches_numpy(r, np.nan_to_num(x, nan=fill), inputs=[x])
    msg = _msg(ValueError, tracejit.compile(lambda a: np.nan_to_num(a, nan=np.ones(4))), x)
    assert "could not broadcast input array from shape (4,) into shape (3, 2)" in msg


def test_nan_to_num_fuses_with_other_ops():
    x = _special("float64", (3, 5))
    f = tracejit.compile(lambda a: np.sqrt(np.abs(np.nan_to_num(a * 2.0))) + 1.0)
    with np.errstate(all="ignore"):
        assert_matches_numpy(f(x), np.sqrt(np.abs(np.nan_to_num(x * 2.0))) + 1.0)


@pytest.mark.parametrize("dtype", ["bool", "int32", "int64"])
def test_nan_to_num_copy_false_passes_integers_through(dtype):
    x = _special(dtype)
    r = tracejit.compile(lambda a: np.nan_to_num(a, copy=False) * 1)(x)
    assert_matches_numpy(r, np.nan_to_num(x, copy=False) * 1, inputs=[x])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_to_num_copy_false_on_floats_writes_into_x(dtype):
    f = tracejit.compile(lambda a: np.nan_to_num(a, copy=False))
    x, want = _special(dtype), _special(dtype)
    r = f(x)
    assert r is x
    np.testing.assert_array_equal(x, np.nan_to_num(want, copy=False))

    def fresh(a):
        b = a * 1
        r = np.nan_to_num(b, copy=False)
        return b, r

    x = _special(dtype)
    with np.errstate(all="ignore"):
        for got, want in zip(tracejit.compile(fresh)(x), fresh(x)):
            assert_matches_numpy(got, want)


# ----------------------------------------------------------------- *_like
LIKE = {
    "zeros_like": (lambda a, **kw: np.zeros_like(a, **kw), lambda a, **kw: np.zeros_like(a, **kw)),
    "ones_like": (lambda a, **kw: np.ones_like(a, **kw), lambda a, **kw: np.ones_like(a, **kw)),
    # empty_like is zeros_like on a traced value: compared against zeros
    "empty_like": (lambda a, **kw: np.empty_like(a, **kw), lambda a, **kw: np.zeros_like(a, **kw)),
    "full_like": (lambda a, **kw: np.full_like(a, 2.5, **kw),
                  lambda a, **kw: np.full_like(a, 2.5, **kw)),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [None, *DTYPES])
@pytest.mark.parametrize("in_dtype", DTYPES)
@pytest.mark.parametrize("name", list(LIKE))
def test_like(name, in_dtype, dtype, shape, rng):
    traced, ref = LIKE[name]
    x = make_input(rng, shape, in_dtype)
    f = tracejit.compile(lambda a: traced(a, dtype=dtype))
    r = f(x)
    assert_matches_numpy(r, ref(x, dtype=dtype), inputs=[x])
    assert r.flags.writeable and r.flags.owndata
    r2 = f(x)
    assert r2 is not r and not np.shares_memory(r, r2)


@pytest.mark.parametrize("name", list(LIKE))
def test_like_keywords_layouts_and_use_in_expressions(name, rng):
    traced, ref = LIKE[name]
    x = make_input(rng, (6, 8), "float32")[::2, ::-3].T     # non-contiguous (3, 3)
    first = "prototype" if name == "empty_like" else "a"
    extra = dict(fill_value=2.5) if name == "full_like" else {}
    fn = getattr(np, name)
    f = tracejit.compile(lambda a: fn(**{first: a}, **extra))   # all by keyword
    assert_matches_numpy(f(x), ref(x), inputs=[x])
    for order in ("C", "K", "A", None):
        g = tracejit.compile(lambda a: traced(a, order=order, subok=False, device="cpu"))
        assert_matches_numpy(g(x), ref(x))
    h = tracejit.compile(lambda a: (traced(a) + a, traced(a).T * 2, traced(a, dtype=np.int32) - 1))
    for r, e in zip(h(x), (ref(x) + x, ref(x).T * 2, ref(x, dtype=np.int32) - 1)):
        assert_matches_numpy(r, e, inputs=[x])


@pytest.mark.parametrize("name", list(LIKE))
def test_like_many_blocks_next_to_strided_reads(name, rng):
    """The filled output shares a loop nest (several blocks per row, rows not
    collapsible) with outputs that read a strided input."""
    traced, ref = LIKE[name]
    x = make_input(rng, (3, 3000), "float64")[:, ::2]
    f = tracejit.compile(lambda a: (traced(a), a * 2.0, traced(a, dtype=bool) | (a > 0)))
    for r, e in zip(f(x), (ref(x), x * 2.0, ref(x, dtype=bool) | (x > 0))):
        assert_matches_numpy(r, e, inputs=[x])


@pytest.mark.parametrize("shape", [5, (2, 3), (), (0,), (4, 1, 2), [3], np.int64(2)], ids=str)
@pytest.mark.parametrize("name", list(LIKE))
def test_like_shape_override(name, shape, rng):
    traced, ref = LIKE[name]
    x = make_input(rng, (3, 4), "int32")
    r = tracejit.compile(lambda a: traced(a, shape=shape, dtype=np.float32))(x)
    assert_matches_numpy(r, ref(x, shape=shape, dtype=np.float32))


def test_like_of_scalar_argument():
    f = tracejit.compile(lambda s: (np.zeros_like(s), np.ones_like(s), np.full_like(s, 4)))
    for s in (2.5, 3, True):
        for r, e in zip(f(s), (np.zeros_like(s), np.ones_like(s), np.full_like(s, 4))):
            assert_matches_numpy(r, e)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0, 7, -3, 2.7, -7.9, True, np.float32(1.5), np.int64(2**40),
                                   np.nan, np.inf, -0.0, 2**31 - 1], ids=repr)
def test_full_like_fill_values(dtype, value):
    x = np.zeros((2, 3), dtype)
    with np.errstate(all="ignore"):
        try:
            expected = np.full_like(x, value)
        except OverflowError:
            with pytest.raises(OverflowError):
                tracejit.compile(lambda a: np.full_like(a, value))(x)
            return
        r = tracejit.compile(lambda a: np.full_like(a, value))(x)
    assert_matches_numpy(r, expected)
    if expected.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(r), np.signbit(expected))


@pytest.mark.parametrize("value", [2**40, -2**31 - 1, 2**70])
def test_full_like_python_int_out_of_range(value):
    x = np.zeros(3, np.int32 if value != 2**70 else np.int64)
    with pytest.raises(OverflowError):
        np.full_like(x, value)
    with pytest.raises(OverflowError, match="out of bounds"):
        tracejit.compile(lambda a: np.full_like(a, value))(x)


def test_full_like_traced_fill_values(rng):
    x = make_input(rng, (3, 4), "float64")
    row = make_input(rng, (4,), "int64")
    f = tracejit.compile(lambda a, r, s: (np.full_like(a, r), np.full_like(a, s, dtype=np.int32),
                                          np.full_like(a, r * 2)))
    for s in (3, 7):
        for got, e in zip(f(x, row, s), (np.full_like(x, row), np.full_like(x, s, dtype=np.int32),
                                         np.full_like(x, row * 2))):
            assert_matches_numpy(got, e, inputs=[x, row])
    # numpy's assignment broadcasting: leading size-1 dims of the value drop
    r, s = make_input(rng, (1, 4), "float64"), make_input(rng, (1, 1), "float64")
    g = tracejit.compile(lambda a, r, s: (
        np.full_like(a, np.ones((1, 1, 4)) * 2), np.full_like(a, r) + a,
        np.full_like(a, r, shape=(4,)).T, np.full_like(a, np.sin(r), shape=(2, 3, 4)).T,
        np.full_like(a, s * 2, shape=()), np.full_like(a, s, shape=(5, 1)) * r))
    expected = (np.full_like(x, np.ones((1, 1, 4)) * 2), np.full_like(x, r) + x,
                np.full_like(x, r, shape=(4,)).T, np.full_like(x, np.sin(r), shape=(2, 3, 4)).T,
                np.full_like(x, s * 2, shape=()), np.full_like(x, s, shape=(5, 1)) * r)
    for got, e in zip(g(x, r, s), expected):
        assert_matches_numpy(got, e, inputs=[x, r, s], exact=False)   # sin: a few ulps
    msg = _msg(ValueError, tracejit.compile(lambda a, r: np.full_like(a, r)), x,
               make_input(rng, (3,), "float64"))
    assert "could not broadcast input array from shape (3,) into shape (3, 4)" in msg
    msg = _msg(ValueError, tracejit.compile(lambda a: np.zeros_like(a, shape=(2,)) + np.full_like(
        a, np.ones((2, 2)), shape=(2,))), x)
    assert "could not broadcast input array from shape (2, 2) into shape (2,)" in msg
    msg = _msg(ValueError, tracejit.compile(lambda a: np.full_like(a, np.ones((2, 4)),
                                                                   shape=(4,))), x)
    assert "could not broadcast input array from shape (2, 4) into shape (4,)" in msg


def test_full_like_of_array_with_traced_value_names_copyto():
    def into(v):
        np.copyto(np.eye(3)[0], v)   # np.eye's array is not traced (np.arange's is)
        return v

    msg = _msg(tracejit.TraceError, tracejit.compile(into), np.ones(3))
    assert "numpy.copyto writes into an existing array" in msg and "full_like" in msg
    base = np.zeros(3)          # an array from outside is traced: full_like of it is too
    f = tracejit.compile(lambda v: np.full_like(base, v) + v)
    np.testing.assert_array_equal(f(np.arange(3.0)), 2 * np.arange(3.0))
    f = tracejit.compile(lambda v: np.full_like(np.arange(3, dtype=np.int32), v[0]) + v)
    np.testing.assert_array_equal(f(np.arange(3.0) + 0.5), np.arange(3.0) + 0.5)


@pytest.mark.parametrize("name", list(LIKE))
def test_like_errors(name, rng):
    traced = LIKE[name][0]
    x = make_input(rng, (3,), "float64")
    msg = _msg(tracejit.TraceError, tracejit.compile(lambda a: traced(a, order="F")), x)
    assert f"numpy.{name}(..., order='F') is not supported by tracejit" in msg
    assert "C-contiguous" in msg and "test_vocab.py" in msg
    msg = _msg(ValueError, tracejit.compile(lambda a: traced(a, order="Q")), x)
    assert "order must be one of 'C', 'F', 'A', or 'K' (got 'Q')" in msg
    msg = _msg(ValueError, tracejit.compile(lambda a: traced(a, device="gpu")), x)
    assert 'Only "cpu" is allowed, but received: gpu' in msg
    for dt in (np.complex128, np.longdouble, ">f8"):
        msg = _msg(TypeError, tracejit.compile(lambda a: traced(a, dtype=dt)), x)
        assert f"numpy.{name}(dtype={np.dtype(dt)!r})" in msg, msg
        assert "tracejit supports bool, int8, int16, int32, int64, uint8, uint16, uint32, " \
            "uint64, float16 (NumPy), float32, float64 in native byte order" in msg, msg
    msg = _msg(ValueError, tracejit.compile(lambda a: traced(a, shape=(2, -1))), x)
    assert msg == "negative dimensions are not allowed"
    msg = _msg(tracejit.TraceError, tracejit.compile(lambda a: traced(a, shape=(1,) * 17)), x)
    assert re.search(rf"numpy\.{name}\(\.\.\., shape=\(1, .*\): tracejit supports at most 16 "
                     "dimensions", msg), msg


def test_full_like_missing_fill_value_called_directly():
    """numpy's dispatcher checks the signature; the handler still refuses a bare call."""
    def fn(a):
        return a.__array_function__(np.full_like, (type(a),), (a,), {})
    msg = _msg(TypeError, tracejit.compile(fn), np.zeros(3))
    assert msg == "full_like() missing required argument 'fill_value'"


def test_equal_like_results_are_distinct_arrays():
    a, b = tracejit.compile(lambda x: (np.zeros_like(x), np.zeros_like(x)))(np.ones(3))
    assert a is not b and not np.shares_memory(a, b)
    y, z = tracejit.compile(lambda x: (x + 1, x + 1))(np.ones(3))
    assert y is not z and not np.shares_memory(y, z)
    u, v = tracejit.compile(lambda x: (x.sum(), x.sum()))(np.ones(3))
    assert u is not v and u == v == 3
