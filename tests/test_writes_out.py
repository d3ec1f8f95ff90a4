"""out= of NumPy's reductions and products (csrc/trace/write_out.c): np.sum, prod, max,
min, amax, amin, mean, any, all, argmax, argmin, cumsum, cumprod (functions, methods,
ufunc.reduce), np.matmul and np.dot, differentially against eager NumPy over input
dtypes and layouts, out's dtype and where out lives (an argument, a view of one, an
array made inside, an input itself), on the first call and a replay with other values;
NumPy's errors with its wording; what stays refused, by its message."""
import copy

import numpy as np
import pytest

import tracejit
from tracejit import TraceError

from conftest import LAYOUTS, arg_in_layout
from test_faithful import refused


def outcome(fn, args):
    args = copy.deepcopy(args)
    try:
        return fn(*args), args
    except Exception as e:       # noqa: BLE001 - eager's outcome, compared by type and text
        return e, args


def same(g, w):
    """Bit for bit, but floats' sums, whose order is tracejit's (as without out=):
    within their rounding."""
    g, w = np.asarray(g), np.asarray(w)
    assert g.dtype == w.dtype and g.shape == w.shape, (g, w)
    if g.dtype.kind != "f":
        assert np.array_equal(g, w), (g, w)
    else:
        rtol = 1e-12 if g.dtype == np.float64 else 1e-5 if g.dtype == np.float32 else 2e-3
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)


def check(fn, *calls):
    """fn compiled once: on each argument tuple, its result, its exception (type and
    message) and the arguments it wrote into are eager's (same())."""
    f = tracejit.compile(fn)
    for args in calls:
        want, want_args = outcome(fn, args)
        got, got_args = outcome(f, args)
        if isinstance(want, Exception):
            assert type(got) is type(want) and str(got).startswith(str(want)), (got, want)
            continue
        assert not isinstance(got, Exception), got
        for g, w in zip(got_args, want_args):
            same(g, w)
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            assert type(g) is type(w), (g, w)
            same(g, w)


REDUCTIONS = ["sum", "prod", "max", "min", "amax", "amin", "mean", "any", "all"]
OUT_DTYPES = ["float64", "float32", "int64", "int32", "bool"]


def reduce_into(name, axis, keepdims):
    fn = getattr(np, name)

    def f(x, o):
        r = fn(x, axis=axis, out=o, keepdims=keepdims)
        return r is o, o * 1
    return f


def out_shape(x, axis, keepdims):
    return np.sum(np.zeros(x.shape), axis=axis, keepdims=keepdims).shape


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("in_dtype", ["float64", "float32", "int64", "int8", "bool"])
@pytest.mark.parametrize("out_dtype", OUT_DTYPES)
def test_reductions_into_out_match_eager(name, in_dtype, out_dtype):
    rng = np.random.default_rng(0)
    for axis, keepdims in ((None, False), (0, False), (1, True), ((0, 1), False)):
        x1, x2 = (arg_in_layout(rng, (3, 5), in_dtype, "c") for _ in range(2))
        if name == "prod" and in_dtype != "bool":      # products that fit every out
            x1, x2 = (x / 4 if x.dtype.kind == "f" else x % 3 for x in (x1, x2))
        shape = out_shape(x1, axis, keepdims)
        check(reduce_into(name, axis, keepdims), (x1, np.zeros(shape, out_dtype)),
              (x2, np.ones(shape, out_dtype)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "argmin", "cumsum", "cumprod"])
def test_inputs_and_outs_in_every_layout(layout, name):
    rng = np.random.default_rng(1)
    fn = getattr(np, name)
    out_dtype = "int64" if name == "argmin" else "float64"

    def f(x, o):                          # out a view of an argument in o's layout
        fn(x, axis=1, out=o[1])
        return o
    for _ in range(2):
        x = arg_in_layout(rng, (4, 3), "float64", layout)
        shape = fn(x, axis=1).shape
        o = arg_in_layout(rng, (2,) + shape, out_dtype, layout)
        check(f, (x, o))


def test_the_loop_dtype_is_numpys():
    # float32 into a float64 out sums in float64; int8 into int8 wraps; floats into
    # int outs are cast after the reduction (unsafe, as NumPy's reductions)
    check(lambda x, o: np.sum(x, out=o), (np.array([16777216, 1, 1], np.float32), np.zeros(())))
    check(lambda x, o: np.cumsum(x, out=o), (np.array([16777216, 1, 1], np.float32), np.zeros(3)))
    check(lambda x, o: np.sum(x, out=o), (np.array([100, 100, 100], np.int8), np.zeros((), np.int8)))
    check(lambda x, o: (np.prod(x, out=o), np.max(x, out=o + 0)),
          (np.array([1.5, 2.5]), np.zeros((), np.int64)))
    check(lambda x, o: np.mean(x, axis=0, out=o),
          (np.array([[1, 2], [2, 5]], np.int64), np.zeros(2, np.int64)),
          (np.array([[1.5, 2], [2, 5]], np.float32), np.zeros(2)),
          (np.array([[1.5, 2], [2, 5]], np.float16), np.zeros(2, np.float16)))


def test_methods_and_ufunc_reduce_and_scans():
    x = np.arange(12.0).reshape(3, 4) - 5
    check(lambda x, o: x.sum(1, out=o), (x, np.zeros(3, np.float32)))
    check(lambda x, o: x.max(axis=0, out=o[::-1]), (x, np.zeros(4)))
    check(lambda x, o: (np.add.reduce(x, out=o) is o, o), (x, np.zeros(4)))
    check(lambda x, o: np.maximum.reduce(x, axis=1, out=o), (x, np.zeros(3)))
    check(lambda x, o: np.multiply.reduce(x, 0, None, o), (x, np.zeros(4)))
    check(lambda x, o: (np.cumsum(x, axis=1, out=o), np.cumprod(x, out=o.reshape(-1))),
          (x, np.zeros((3, 4), np.float32)))
    check(lambda x, o: np.argmax(x, axis=0, out=o), (x, np.zeros(4, np.int64)))
    check(lambda x, o: np.sum(x, 0, None, o), (x, np.zeros(4)))        # positional out


def test_out_aliasing_an_input_reads_the_old_values():
    x = np.arange(12.0).reshape(3, 4) * 1.5 - 4

    def into_row(x):
        np.sum(x, axis=0, out=x[0])
        return x

    def scan_reversed(x):
        np.cumsum(x[::-1], axis=0, out=x)
        return x

    def square(a):
        np.matmul(a, a, out=a)
        return a
    check(into_row, (x.copy(),), (x.copy() + 1,))
    check(scan_reversed, (x.copy(),))
    check(square, (np.arange(9.0).reshape(3, 3),), (np.eye(3) * 2,))


def test_out_made_inside_and_written_argument():
    def made(x):
        o = np.empty(4)
        np.sum(x, axis=0, out=o)
        m = np.zeros(())
        np.mean(x, out=m)
        return o * 2, m

    def into_arg(x, o):                    # o reaches the caller
        np.min(x, axis=1, keepdims=True, out=o)
    x = np.arange(12.0).reshape(3, 4)
    check(made, (x,), (x[::-1].copy(),))
    check(into_arg, (x, np.zeros((3, 1))), (-x, np.ones((3, 1))))


OUT = np.zeros(4)


def test_out_a_global_array_is_written_at_every_call():
    def f(x):
        r = np.sum(x, axis=0, out=OUT)
        return r is OUT

    g = tracejit.compile(f)
    for x in (np.arange(12.0).reshape(3, 4), np.ones((3, 4))):
        assert g(x) is True
        np.testing.assert_array_equal(OUT, x.sum(axis=0))


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_matmul_and_dot_into_out(dtype):
    rng = np.random.default_rng(2)
    a = arg_in_layout(rng, (3, 4), dtype, "T")
    b = arg_in_layout(rng, (4, 2), dtype, "strided")

    def mm(a, b, o):
        r = np.matmul(a, b, out=o)
        return r is o, o

    def dot(a, b, o):
        return np.dot(a, b, o)

    def into_views(a, b, o):
        np.matmul(a, a.T, out=o[::2, ::2])
        np.dot(a[0], b, out=o[1, :2])
        return o
    out_dt = "float64" if dtype != "int64" else "int64"
    check(mm, (a, b, np.zeros((3, 2), out_dt)), (a * 2, b, np.ones((3, 2), out_dt)))
    check(dot, (a, b, np.zeros((3, 2), dtype)), (a + 1, b, np.zeros((3, 2), dtype)))
    check(into_views, (a, b, np.zeros((6, 6), dtype)))


def test_numpys_errors_with_its_wording():
    x = np.arange(12.0).reshape(3, 4)
    for o in (np.zeros(3), np.zeros((1, 4)), np.zeros(())):          # wrong shape, ndim
        check(lambda x, o: np.sum(x, axis=0, out=o), (x, o))
    check(lambda x, o: np.sum(x, axis=1, keepdims=True, out=o), (x, np.zeros(3)))
    check(lambda x, o: np.cumsum(x, out=o), (x, np.zeros((3, 4))))
    check(lambda x, o: np.argmax(x, axis=0, out=o), (x, np.zeros(4)))  # 'safe' casting
    check(lambda x, o: np.min(x, out=o[0, 0]), (x, np.zeros((2, 2))))  # a NumPy scalar
    check(lambda a, o: np.matmul(a, a, out=o), (x, np.zeros((3, 4))))  # a, a: not aligned
    check(lambda a, o: np.matmul(a, a.T, out=o), (x, np.zeros((3, 4))))
    check(lambda a, o: np.matmul(a, a.T, out=o), (x, np.zeros((3, 3), np.int64)))
    for o in (np.zeros((3, 3), np.float32), np.zeros((3, 3)).T, np.zeros((3, 6))[:, ::2]):
        check(lambda a, o: np.dot(a, a.T, out=o), (x, o))
    check(lambda a, o: np.dot(a, a.T, out=o[:, 1:4]), (x, np.zeros((3, 4))))


def test_what_stays_refused_names_itself():
    x = np.arange(5.0)
    refused(lambda x: np.var(x, out=np.empty(())), [x], r"numpy\.var\(\.\.\., out=\.\.\.\) is "
            r"not supported by tracejit yet", "np.var")
    refused(lambda x: np.sum(x, out=np.eye(2)[0, :1].reshape(())), [x],
            r"numpy\.sum\(\.\.\., out=\.\.\.\) is not supported by tracejit where out is not a "
            r"traced array", "np.sum")
    refused(lambda x: np.logical_or.reduce(x > 1, out=np.zeros(())), [x],
            r"ufunc\.reduce\(\.\.\., out=\.\.\.\) of this ufunc is not supported", "np.logical_or")
    with pytest.raises(TraceError, match=r"numpy\.outer\(\.\.\., out=\.\.\.\) is not supported"):
        tracejit.compile(lambda x, o: np.outer(x, x, out=o))(x, np.zeros((5, 5)))


def test_gradient_through_a_reduction_into_out():
    def loss(x):
        o = np.zeros(3)
        np.sum(x * x, axis=1, out=o)
        np.cumsum(o, out=o)
        return np.sum(o)
    x = np.arange(12.0).reshape(3, 4) / 7
    g = tracejit.grad(loss)(x)
    np.testing.assert_allclose(g, 2 * x * np.array([3.0, 2.0, 1.0])[:, None], rtol=1e-14)


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "cumsum", "amax", "argmax", "matmul"])
def test_torch_out_is_refused_by_name(name):
    torch = pytest.importorskip("torch")
    fn = getattr(torch, name)
    x = torch.arange(12.0).reshape(3, 4)
    args = (x, x.T) if name == "matmul" else (x, 0)
    o = torch.zeros(fn(*args).shape, dtype=fn(*args).dtype)
    fn(*args, out=o.clone())                                   # eager accepts it
    with pytest.raises(TraceError, match=rf"torch\.{name}\(\.\.\., out=\.\.\.\) is not supported "
                                         r"by tracejit"):
        tracejit.compile(lambda x, o: fn(*((x, x.T) if name == "matmul" else (x, 0)), out=o))(x, o)


# ---- user code: kernels written the NumPy-tutorial way, with preallocated outputs ----

def kmeans_step(X, centers, counts):
    """One Lloyd step into the caller's arrays: distances by np.dot into a buffer, the
    assignment's per-cluster sums and means with out= into rows of `centers`."""
    d = np.empty((X.shape[0], centers.shape[0]))
    np.dot(X, centers.T, out=d)
    d *= -2
    d += np.sum(X * X, axis=1, keepdims=True) + np.sum(centers * centers, axis=1)
    labels = np.argmin(d, axis=1)
    for k in range(centers.shape[0]):
        w = (labels == k).astype(X.dtype)
        np.sum(w, out=counts[k, ...])                 # a 0-d view (counts[k]: a scalar)
        np.sum(X * w[:, None], axis=0, out=centers[k])
        centers[k] /= np.maximum(counts[k], 1)
    return labels


def running_stats(x, acc):
    """Online moments, scikit-learn's partial_fit style: column sums and sums of squares
    added into acc's rows, the cumulative distribution of the weights into acc[2]."""
    s = np.zeros(x.shape[1])
    np.add.reduce(x, axis=0, out=s)
    acc[0] += s
    np.sum(x * x, axis=0, out=s)
    acc[1] += s
    w = np.abs(x[:, 0])
    np.cumsum(w / w.sum(), out=acc[2, :x.shape[0]])
    return np.mean(acc[:2], axis=0, out=np.empty(x.shape[1]))


def test_user_kernels_with_out_match_eager():
    rng = np.random.default_rng(3)
    for _ in range(2):
        X = rng.standard_normal((40, 3))
        check(kmeans_step, (X, X[:4].copy(), np.zeros(4)))
        x = rng.standard_normal((6, 6))
        check(running_stats, (x, np.ones((3, 6))))


def test_row_writes_with_basic_keys_match_eager():
    # the box read off the key (write_box.c): ints, slices, `...`, None; NumPy's errors
    def rows(x):
        out = np.zeros((5, 4, 3))
        for i in range(5):
            out[i] = x[i]
            out[i, 1:-1] += 1
            out[-i - 1, ..., 0] = out[i, :, 1] * 2
            out[i, None, 2:] = x[i, 2:] - 1
        out[1, 2, 0] = 7
        return out
    x = np.arange(60.0).reshape(5, 4, 3)
    check(rows, (x,), (-x,))
    check(lambda x: x.copy().__setitem__((5, 0), 1), (x,))              # IndexError
    check(lambda x: x.copy().__setitem__((1, 2, 0), x[0, 0]), (x,))     # a sequence
    check(lambda x: x.copy().__setitem__((0, 0, 0, 0), 1), (x,))        # too many


@pytest.mark.parametrize("dt", ["float32", "float64", "int64"])
@pytest.mark.parametrize("odt", ["float64", "float32", "int32", "float16"])
def test_dtype_and_out_together(dt, odt):
    # NumPy reduces in dtype, then casts into out (mean: divided in float64, cast again)
    x = (np.arange(12.0).reshape(3, 4) - 5.5) / 2         # sums exact in float32
    check(lambda x, o: np.sum(x, axis=0, dtype=dt, out=o), (x, np.zeros(4, odt)))
    check(lambda x, o: np.mean(x, axis=1, dtype=dt, out=o), (x, np.zeros(3, odt)))
    check(lambda x, o: np.cumsum(x, axis=1, dtype=dt, out=o), (x, np.zeros((3, 4), odt)))
    check(lambda x, o: np.mean(x.astype(dt), out=o), (x, np.zeros((), odt)))
    check(lambda x, o: np.prod(x.astype(dt), axis=0, keepdims=True, out=o),
          (x, np.zeros((1, 4), odt)))
