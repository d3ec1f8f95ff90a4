"""Contractions against NumPy: a @ b, np.matmul, np.dot, np.vdot, np.inner, np.outer,
np.tensordot; every dtype; 1-D/2-D/batched shapes with broadcasting batch dims, K=0,
empty M/N; transposed, strided, negative-stride and broadcast operands; sizes below and
above the BLAS threshold (and each path forced in a subprocess); computed operands;
hand-written product-sums (which fuse turns into GEMM); the errors NumPy raises."""
import json
import math

import numpy as np
import pytest

import tracejit
from conftest import DTYPES, FLOAT_DTYPES, INT_DTYPES, assert_matches_numpy, make_input, run_python

LAYOUTS = ("c", "T", "strided", "neg")
EXACT_DTYPES = ("bool", "int32", "int64")


def arg(rng, shape, dtype="float64", layout="c", domain="any"):
    shape = tuple(shape)
    if layout == "c" or len(shape) == 0:
        return make_input(rng, shape, dtype, domain)
    if layout == "T":
        return make_input(rng, shape[::-1], dtype, domain).T
    if layout == "strided":
        big = make_input(rng, tuple(2 * s + 1 for s in shape), dtype, domain)
        return big[tuple(slice(1, None, 2) for _ in shape)]
    if layout == "neg":
        return make_input(rng, shape, dtype, domain)[tuple(slice(None, None, -1) for _ in shape)]
    raise ValueError(layout)


def tolerance(dtype, k, scale):
    """rtol 1e-5 / 1e-12 and an atol that grows like sqrt(K) * |a|max * |b|max * eps."""
    dt = np.dtype(dtype)
    rtol = 1e-5 if dt == np.float32 else 1e-12
    eps = float(np.finfo(dt).eps)
    return rtol, 8 * eps * math.sqrt(max(k, 1)) * max(scale, 1e-30)


def check(fn, *args, k=None, f=None):
    """fn compiled equals NumPy's fn (twice: trace and replay); floats with the
    contraction tolerance for a contraction of length k (default: the largest dim)."""
    saved = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with np.errstate(all="ignore"):
        expected = fn(*saved)
    if isinstance(expected, tuple):
        f = tracejit.compile(fn)
        for i in range(len(expected)):
            check(lambda *xs, i=i: fn(*xs)[i], *args, k=k, f=lambda *xs: f(*xs)[i])
        return f
    dtype = np.asarray(expected).dtype   # (expected keeps its type: a NumPy scalar or not)
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    if k is None:
        k = max([1] + [max(a.shape, default=1) for a in arrays])
    scale = math.prod(float(np.max(np.abs(a.astype(np.float64)), initial=0.0)) or 1.0
                      for a in arrays)
    rtol, atol = tolerance(dtype, k, scale) if dtype.kind == "f" else (0, 0)
    f = f or tracejit.compile(fn)
    for _ in range(2):
        result = f(*args)
        assert_matches_numpy(result, expected, exact=dtype.kind != "f",
                             rtol=rtol, atol=atol, inputs=arrays)
    for a, s in zip(args, saved):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, s)
    return f


# ------------------------------------------------------------------------- matmul
MATMUL_SHAPES = [
    ((5,), (5,)), ((5,), (5, 3)), ((4, 5), (5,)), ((4, 5), (5, 3)), ((1, 1), (1, 1)),
    ((1, 5), (5, 1)), ((5, 1), (1, 4)), ((2, 4, 5), (5, 3)), ((4, 5), (2, 5, 3)),
    ((2, 4, 5), (2, 5, 3)), ((2, 1, 4, 5), (3, 5, 6)), ((1, 4, 5), (3, 5, 2)),
    ((3, 1, 2, 4), (1, 2, 4, 3)), ((5,), (2, 5, 3)), ((2, 4, 5), (5,)), ((1,), (1,)),
    ((4, 0), (0, 3)), ((0,), (0,)), ((0,), (0, 3)), ((2, 3, 0), (0, 4)),
    ((0, 5), (5, 3)), ((4, 5), (5, 0)), ((0, 4, 5), (5, 3)), ((2, 0, 5), (5, 3)),
    ((3, 2, 5), (1, 5, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=repr)
def test_matmul_shapes(shapes, dtype, rng):
    a = make_input(rng, shapes[0], dtype)
    b = make_input(rng, shapes[1], dtype)
    check(lambda a, b: a @ b, a, b, k=shapes[0][-1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_spellings(dtype, rng):
    a = make_input(rng, (3, 6), dtype)
    b = make_input(rng, (6, 4), dtype)
    check(lambda a, b: np.matmul(a, b), a, b)
    check(lambda a, b: np.matmul(b.T, a.T), a, b)
    check(lambda a, b: a.__matmul__(b), a, b)
    check(lambda a, b: b.__rmatmul__(a), a, b)
    check(lambda a, b: np.matmul(a, b[:, :1]), a, b)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES)
@pytest.mark.parametrize("mnk", [(4, 4, 4), (15, 16, 8), (16, 16, 8), (64, 64, 64),
                                 (200, 150, 100), (1, 300, 40), (300, 1, 40), (70, 90, 1),
                                 (33, 2, 65)], ids=repr)
def test_matmul_sizes_around_blas_threshold(mnk, dtype, rng):
    m, n, k = mnk
    a = make_input(rng, (m, k), dtype, "small")
    b = make_input(rng, (k, n), dtype, "small")
    check(lambda a, b: a @ b, a, b, k=k)


@pytest.mark.parametrize("la", LAYOUTS)
@pytest.mark.parametrize("lb", LAYOUTS)
@pytest.mark.parametrize("size", [(5, 3, 4), (64, 48, 40)], ids=("small", "blas"))
def test_matmul_layouts(size, la, lb, rng):
    m, n, k = size
    for dtype in ("float32", "float64", "int64"):
        a = arg(rng, (m, k), dtype, la)
        b = arg(rng, (k, n), dtype, lb)
        check(lambda a, b: a @ b, a, b, k=k)
        check(lambda a, b: np.matmul(a, b[:, 0]), a, b, k=k)      # matrix-vector
        check(lambda a, b: a[0] @ b, a, b, k=k)                    # vector-matrix


@pytest.mark.parametrize("size", [(6, 5, 7), (60, 50, 70)], ids=("small", "blas"))
def test_matmul_views_of_arguments(size, rng):
    m, n, k = size
    x = make_input(rng, (2 * m + 3, 2 * k + 2), "float64")
    y = make_input(rng, (2 * k + 2, 2 * n + 1), "float64")
    check(lambda x, y: x[:m, :k] @ y[:k, :n], x, y, k=k)            # leading dim > cols
    check(lambda x, y: x[::2, 1::2][:m, :k] @ y[::-2, ::2][:k, :n], x, y, k=k)
    check(lambda x, y: x[:k, :m].T @ y[:n, :k].T, x, y, k=k)         # both transposed
    check(lambda x, y: x[::-1][:m, :k] @ y[::-1, ::-1][:k, :n], x, y, k=k)
    check(lambda x, y: np.broadcast_to(x[0, :k, None], (k, n)).T @ y[:k, :n], x, y, k=k)
    check(lambda x, y: x[:m, :k] @ np.broadcast_to(y[:k, :1], (k, n)), x, y, k=k)
    check(lambda x, y: np.broadcast_to(x[:m, :k], (3, m, k)) @ y[:k, :n], x, y, k=k)
    check(lambda x, y: x[:m, :k][None] @ y[:k, :n][None, None], x, y, k=k)


@pytest.mark.parametrize("size", [(5, 4, 3), (48, 40, 64)], ids=("small", "blas"))
def test_matmul_replay_with_other_strides(size, rng):
    """One compiled variant replayed on operands of the same shapes but other
    strides (leading dims, transposed, negative) must read through the new strides."""
    m, n, k = size
    f = tracejit.compile(lambda a, b: a @ b)
    big_a = make_input(rng, (2 * m + 2, 2 * k + 2), "float64")
    big_b = make_input(rng, (2 * k + 2, 2 * n + 2), "float64")
    a_views = [big_a[:m, :k], big_a[1:m + 1, 2:k + 2], big_a[::2, ::2][:m, :k],
               big_a[:k, :m].T, big_a[::-1, :k][:m], np.ascontiguousarray(big_a[:m, :k])]
    b_views = [big_b[:k, :n], big_b[:n, :k].T, big_b[::2, 1:][:k, :n], big_b[:k, ::-1][:, :n],
               big_b[3:k + 3, :n], np.ascontiguousarray(big_b[:k, :n])]
    for a, b in zip(a_views, b_views):
        check(lambda a, b: a @ b, a, b, k=k, f=f)
    for a, b in zip(a_views, b_views[::-1]):
        check(lambda a, b: a @ b, a, b, k=k, f=f)


@pytest.mark.parametrize("shapes", [((2, 40, 50), (50, 30)), ((2, 1, 64, 64), (1, 3, 64, 64)),
                                    ((3, 64), (2, 64, 40)), ((4, 33, 70), (70,))], ids=repr)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_batched_matmul_large(shapes, dtype, rng):
    a = make_input(rng, shapes[0], dtype)
    b = make_input(rng, shapes[1], dtype)
    check(lambda a, b: a @ b, a, b, k=shapes[0][-1])
    check(lambda a, b: np.swapaxes(a, -1, -2).swapaxes(-1, -2) @ b, a, b, k=shapes[0][-1])


@pytest.mark.parametrize("pair", [("float32", "float64"), ("int32", "float32"), ("int64", "float64"),
                                  ("bool", "int32"), ("int32", "int64"), ("bool", "float32"),
                                  ("float64", "int32")])
def test_matmul_mixed_dtypes(pair, rng):
    a = make_input(rng, (6, 7), pair[0])
    b = make_input(rng, (7, 5), pair[1])
    check(lambda a, b: a @ b, a, b)
    a = make_input(rng, (40, 70), pair[0])
    b = make_input(rng, (70, 30), pair[1])
    check(lambda a, b: a @ b, a, b)


def test_matmul_bool_is_logical(rng):
    a = make_input(rng, (9, 33), "bool")
    b = make_input(rng, (33, 7), "bool")
    f = check(lambda a, b: a @ b, a, b)
    z = np.zeros((9, 33), bool)
    assert_matches_numpy(f(z, b), z @ b)
    one = np.ones((9, 33), bool)
    assert_matches_numpy(f(one, b), one @ b)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_integer_matmul_wraps_like_numpy(dtype, rng):
    big = 2 ** 20 if dtype == "int32" else 2 ** 40
    a = rng.integers(-big, big, size=(8, 64)).astype(dtype)
    b = rng.integers(-big, big, size=(64, 5)).astype(dtype)
    check(lambda a, b: a @ b, a, b)
    check(lambda a, b: np.dot(a[0], b[:, 0]), a, b)


def test_matmul_k_zero_gives_zeros(rng):
    for dtype in DTYPES:
        a = make_input(rng, (3, 0), dtype)
        b = make_input(rng, (0, 4), dtype)
        f = check(lambda a, b: a @ b, a, b)
        r = f(a, b)
        assert r.shape == (3, 4) and not r.any()
        check(lambda a, b: (a @ b) + 1, a, b)


# --------------------------------------------------------------- the other names
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shapes", [
    ("dot", ((5,), (5,))), ("dot", ((3, 5), (5, 4))), ("dot", ((3, 5), (5,))),
    ("dot", ((5,), (5, 4))), ("dot", ((0,), (0,))), ("dot", ((3, 0), (0, 2))),
    ("vdot", ((5,), (5,))), ("vdot", ((3, 4), (4, 3))), ("vdot", ((2, 3, 2), (12,))),
    ("vdot", ((0,), (0,))),
    ("inner", ((5,), (5,))), ("inner", ((3, 5), (4, 5))), ("inner", ((2, 3, 5), (4, 5))),
    ("inner", ((5,), (2, 4, 5))), ("inner", ((2, 0), (3, 0))),
    ("outer", ((3,), (4,))), ("outer", ((2, 3), (2, 2))), ("outer", ((0,), (4,))),
    ("outer", ((1,), (1,))),
])
def test_named_contractions(name, shapes, dtype, rng):
    a = make_input(rng, shapes[0], dtype)
    b = make_input(rng, shapes[1], dtype)
    fn = getattr(np, name)
    check(lambda a, b: fn(a, b), a, b)


@pytest.mark.parametrize("fn", [
    lambda a, b: a.dot(b), lambda a, b: np.dot(a, 2.0), lambda a, b: np.dot(3, b),
    lambda a, b: np.outer(a, 2.0), lambda a, b: np.inner(a, 3), lambda a, b: np.inner(0.5, b),
    lambda a, b: np.vdot(a[0], b[:, 0]), lambda a, b: np.tensordot(a, 2.0, 0),
])
def test_method_and_scalar_operands_correct_or_trace_error(fn, rng):
    """ndarray.dot and 0-d/scalar operands of dot/outer/inner/tensordot: NumPy's
    result or a TraceError, never another exception."""
    a = make_input(rng, (3, 4), "float64")
    b = make_input(rng, (4, 2), "float64")
    try:
        tracejit.compile(fn)(a, b)
    except tracejit.TraceError:
        return
    check(fn, a, b)


@pytest.mark.parametrize("name", ["dot", "vdot", "inner", "outer"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_named_contractions_layouts_and_sizes(name, layout, rng):
    fn = getattr(np, name)
    for shapes in (((4, 6), (6, 5)), ((60, 70), (70, 50))):
        if name == "inner":
            shapes = (shapes[0], shapes[1][::-1])
        elif name == "vdot":
            shapes = (shapes[0], shapes[0])
        a = arg(rng, shapes[0], "float64", layout)
        b = arg(rng, shapes[1], "float64", layout)
        check(lambda a, b: fn(a, b), a, b)
        check(lambda a, b: fn(a[0], b[0]) if name != "dot" else fn(a[0], b[:, 0]), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes,axes", [
    (((3, 4, 5), (4, 5, 6)), 2), (((3, 4, 5), (5, 6)), 1), (((3, 4), (5, 6)), 0),
    (((3, 4, 5), (4, 3, 2)), ([1, 0], [0, 1])), (((3, 4, 5), (5, 2)), ([2], [0])),
    (((3, 4, 5), (6, 4)), (1, 1)), (((2, 3, 4), (4, 2, 3)), [[0, 2], [1, 0]]),
    (((3, 4, 5), (3, 4, 5)), 3), (((3, 4), (4, 3)), ([0, 1], [1, 0])),
    (((2, 3), (3, 2)), ((-1,), (0,))), (((0, 4), (4, 2)), 1), (((3, 0), (0, 2)), 1),
])
def test_tensordot(shapes, axes, dtype, rng):
    a = make_input(rng, shapes[0], dtype)
    b = make_input(rng, shapes[1], dtype)
    check(lambda a, b: np.tensordot(a, b, axes), a, b)
    check(lambda a, b: np.tensordot(a, b, axes=axes), a, b)


def test_tensordot_default_and_large(rng):
    a = make_input(rng, (8, 9, 10), "float64")
    b = make_input(rng, (9, 10, 7), "float64")
    check(lambda a, b: np.tensordot(a, b), a, b, k=90)
    a = make_input(rng, (30, 20, 16), "float32")
    b = make_input(rng, (16, 20, 25), "float32")
    check(lambda a, b: np.tensordot(a, b, axes=([1, 2], [1, 0])), a, b, k=320)
    check(lambda a, b: np.tensordot(a.T, b, axes=([0], [0])), a, b, k=16)


# -------------------------------------------------------------- computed operands
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("sizes", [(5, 7, 3, 2), (64, 100, 80, 10)], ids=("small", "blas"))
def test_mlp(sizes, dtype, rng):
    n, d, h, o = sizes
    x = make_input(rng, (n, d), dtype, "small")
    w1 = make_input(rng, (d, h), dtype, "small") / np.asarray(d, dtype)
    b1 = make_input(rng, (h,), dtype, "small")
    w2 = make_input(rng, (h, o), dtype, "small")
    b2 = make_input(rng, (o,), dtype, "small")
    def mlp(x, W1, b1, W2, b2):
        return np.tanh(x @ W1 + b1) @ W2 + b2
    with np.errstate(all="ignore"):
        expected = mlp(x, w1, b1, w2, b2)
    result = tracejit.compile(mlp)(x, w1, b1, w2, b2)
    rtol, atol = tolerance(dtype, max(d, h), 3.0 * max(d, h))
    assert_matches_numpy(result, expected, exact=False, rtol=rtol, atol=atol)


@pytest.mark.parametrize("size", [(4, 5, 6), (50, 60, 70)], ids=("small", "blas"))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_matmul_of_computed_operands(size, dtype, rng):
    m, n, k = size
    x = make_input(rng, (m, k), dtype, "small")
    y = make_input(rng, (k, n), dtype, "small")
    z = make_input(rng, (n, m), dtype, "small")
    check(lambda x, y: (x + 1.0) @ (y * 2.0), x, y, k=4 * k)
    check(lambda x, y: np.tanh(x) @ np.exp(y * 0.1).T.T, x, y, k=4 * k)
    check(lambda x, y, z: (x @ y) @ z, x, y, z, k=k * n)
    check(lambda x, y: x @ y + x @ y, x, y, k=k)
    check(lambda x, y: (x @ y).sum(axis=0), x, y, k=k * m)
    check(lambda x, y: np.max(x @ y, axis=1) - (x @ y).min(), x, y, k=k)
    check(lambda x, y: (x @ y, x * 2.0, y.T @ x.T), x, y, k=k)
    check(lambda x, y: x[::2] @ y[:, ::-1] + y[0, ::-1], x, y, k=k)
    check(lambda x, y: (x.T @ x)[1:, :-1], x, y, k=m)
    check(lambda x, y: np.dot(np.sin(x), y) / math.sqrt(k), x, y, k=k)
    check(lambda x, y: np.outer(x.sum(axis=1), y[0] + 1.0), x, y, k=k)
    check(lambda x, y: np.tensordot(x * x, y, axes=1) - np.inner(x, y.T), x, y, k=10 * k)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + ("int64",))
@pytest.mark.parametrize("size", [(4, 5, 6), (50, 60, 70)], ids=("small", "blas"))
def test_handwritten_product_sums(size, dtype, rng):
    """Reductions of broadcast products: the sum over the last axis becomes a GEMM
    (fuse), everything else must stay what it is."""
    m, n, k = size
    a = make_input(rng, (m, k), dtype, "small")
    b = make_input(rng, (k, n), dtype, "small")
    check(lambda a, b: (a[:, :, None] * b[None, :, :]).sum(axis=1), a, b, k=k)
    check(lambda a, b: np.sum(a[:, None, :] * b.T[None, :, :], axis=-1), a, b, k=k)
    check(lambda a, b: np.sum(b.T[:, None, :] * a[None, :, :], axis=-1), a, b, k=k)  # (n, m)
    check(lambda a, b: np.sum(a[:, None, :] * b.T[None, :, :], axis=-1, keepdims=True), a, b, k=k)
    check(lambda a, b: np.sum(2 * a[:, None, :] * b.T[None, :, :], axis=-1), a, b, k=k)
    check(lambda a, b: np.mean(a[:, None, :] * b.T[None, :, :], axis=-1), a, b, k=k)
    check(lambda a, b: np.max(a[:, None, :] * b.T[None, :, :], axis=-1), a, b, k=k)
    check(lambda a, b: np.prod(a[:3, None, :4] * b.T[None, :3, :4], axis=-1), a, b, k=k)
    check(lambda a, b: np.sum(a[:, None, :] * b.T[None, :, :], axis=(-1, 0)), a, b, k=k * m)
    check(lambda a, b: np.sum(a[:, None, :] * b.T[None, :, :], axis=1), a, b, k=k)
    check(lambda a, b: np.sum(a[:, None, :] - b.T[None, :, :], axis=-1), a, b, k=k)
    check(lambda a, b: np.sum(a * a, axis=-1), a, b, k=k)
    check(lambda a, b: np.sum(a[:, None, :] * b.T[None, :, :], axis=-1, dtype=np.float64), a, b, k=k)
    check(lambda a, b: np.sum(np.broadcast_to(a, (3, m, k)) * a, axis=-1), a, b, k=k)
    check(lambda a, b: np.sum(a[:, None, :] * np.broadcast_to(b.T[:1], (n, k))[None], axis=-1),
          a, b, k=k)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + ("int64",))
@pytest.mark.parametrize("n", [5, 64])
def test_products_of_an_array_with_itself(n, dtype, rng):
    x = make_input(rng, (n, n), dtype, "small")
    check(lambda x: x @ x, x)
    check(lambda x: x @ x.T, x)
    check(lambda x: x.T @ x[:, ::-1], x)
    check(lambda x: np.dot(x, x[0]), x)
    check(lambda x: (x[:, None, :] * x.T[None]).sum(-1), x)
    def product_also_used(x):   # the product feeds the sum and another consumer
        p = x[:, None, :] * x[None]
        return p.sum(-1), p.max(-1), p
    check(product_also_used, x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_long_contractions(dtype, rng):
    """K beyond the 4096-element buffers of the matrix-vector and packing paths."""
    a = make_input(rng, (4, 5000), dtype, "unit")
    b = make_input(rng, (5000, 3), dtype, "unit")
    for fn in (lambda a, b: a @ b, lambda a, b: a @ b[:, 0], lambda a, b: a[0] @ b[:, 1],
               lambda a, b: a[0] @ b, lambda a, b: a @ b[::-1, :1], lambda a, b: a[:, ::2] @ b[::2],
               lambda a, b: np.vdot(a, a)):
        check(fn, a, b, k=5000)


# ------------------------------------------------------- the BLAS path, forced
_SUBPROCESS = r"""
import json, numpy as np, tracejit
rng = np.random.default_rng(7)
cases = [((4, 5), (5, 3)), ((5,), (5, 3)), ((4, 5), (5,)), ((2, 4, 5), (5, 3)), ((4, 0), (0, 3)),
         ((0, 5), (5, 3)), ((4, 5), (5, 0)), ((2, 1), (1, 3)), ((3, 1, 2, 4), (1, 2, 4, 3)),
         ((64, 64), (64, 64)), ((200, 150), (150, 100)), ((3, 40, 50), (50, 30))]
bad = []
for dt in ("float32", "float64"):
    for sa, sb in cases:
        for lay in ("c", "T", "lead", "neg"):
            a = rng.uniform(-1, 1, sa).astype(dt)
            b = rng.uniform(-1, 1, sb).astype(dt)
            if lay == "T" and a.ndim >= 2 and b.ndim >= 2:
                a = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
                b = np.ascontiguousarray(np.swapaxes(b, -1, -2)).swapaxes(-1, -2)
            elif lay == "lead":
                a = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, 3)])[..., :sa[-1]]
                b = np.pad(b, [(0, 0)] * (b.ndim - 1) + [(0, 2)])[..., :sb[-1]]
            elif lay == "neg":
                a = a[::-1]
            for fn in (lambda a, b: a @ b, lambda a, b: (a * 2) @ b + 1):
                exp = fn(a, b)
                got = tracejit.compile(fn)(a, b)
                k = sa[-1]
                tol = (1e-5 if dt == "float32" else 1e-12) * max(1, k) ** 0.5 * 8
                if got.shape != exp.shape or got.dtype != exp.dtype or not np.allclose(got, exp, rtol=tol, atol=tol):
                    bad.append([dt, sa, sb, lay])
print(json.dumps(bad))
"""


@pytest.mark.parametrize("env", [{"TRACEJIT_BLAS_MIN": "1"}, {"TRACEJIT_BLAS": "0"}],
                         ids=("blas-always", "blas-never"))
def test_blas_path_forced(env):
    rc, bad, out, err = run_python(_SUBPROCESS, env_extra=env)
    assert rc == 0, err[-3000:]
    assert bad == [], f"mismatching cases: {bad}"


# ------------------------------------------------------------------------- errors
def check_raises(fn, *args, match=None):
    with np.errstate(all="ignore"), pytest.raises(Exception) as ref:
        fn(*args)
    with pytest.raises(type(ref.value)) as ei:
        tracejit.compile(fn)(*args)
    assert type(ei.value) is type(ref.value)
    if match is None:
        assert str(ei.value) == str(ref.value)
    else:
        assert str(ref.value).startswith(match) or match in str(ref.value), "bad test"
        assert match in str(ei.value), str(ei.value)


@pytest.mark.parametrize("fn,shapes,match", [
    (lambda a, b: a @ b, ((3, 4), (5, 6)), "mismatch in its core dimension"),
    (lambda a, b: np.matmul(a, b), ((4,), (5,)), "mismatch in its core dimension"),
    (lambda a, b: a @ b, ((2, 3, 4), (3,)), "mismatch in its core dimension"),
    (lambda a, b: a @ b, ((3,), (4, 3)), "mismatch in its core dimension"),
    (lambda a, b: a @ b, ((2, 3, 4), (3, 4, 5)), "operands could not be broadcast together"),
    (lambda a, b: a @ b, ((), (3,)), "does not have enough dimensions"),
    (lambda a, b: np.matmul(a, b), ((3, 3), ()), "does not have enough dimensions"),
    (lambda a, b: a @ b[0, 0], ((3, 3), (3, 3)), "does not have enough dimensions"),
    (lambda a, b: np.dot(a, b), ((3, 4), (5, 6)), ""),
    (lambda a, b: np.inner(a, b), ((3, 4), (3, 5)), ""),
    (lambda a, b: np.vdot(a, b), ((3, 4), (5,)), ""),
    (lambda a, b: np.tensordot(a, b, 1), ((3, 4), (5, 6)), "shape-mismatch for sum"),
    (lambda a, b: np.tensordot(a, b, ([0], [1])), ((3, 4), (5, 6)), "shape-mismatch for sum"),
])
def test_contraction_value_errors(fn, shapes, match, rng):
    a = make_input(rng, shapes[0], "float64")
    b = make_input(rng, shapes[1], "float64")
    check_raises(fn, a, b, match=match)


def test_matmul_core_mismatch_message_is_numpys(rng):
    a = make_input(rng, (3, 4), "float64")
    b = make_input(rng, (5, 6), "float64")
    check_raises(lambda a, b: a @ b, a, b)


@pytest.mark.parametrize("fn,shapes", [
    (lambda a, b: np.dot(a, b), ((3, 4), (5, 6))), (lambda a, b: np.dot(a, b), ((4,), (5,))),
    (lambda a, b: np.inner(a, b), ((3, 4), (3, 5))),
])
def test_dot_and_inner_mismatch_messages_are_numpys(fn, shapes, rng):
    """np.dot/np.inner say 'shapes (3,4) and (5,6) not aligned: ...', not matmul's or
    tensordot's wording."""
    a = make_input(rng, shapes[0], "float64")
    b = make_input(rng, shapes[1], "float64")
    check_raises(fn, a, b, match="not aligned")


def test_matmul_with_python_scalar_is_a_value_error(rng):
    a = make_input(rng, (3, 3), "float64")
    with pytest.raises(ValueError):
        a @ 2.0
    with pytest.raises(ValueError, match="matmul"):
        tracejit.compile(lambda a: a @ 2.0)(a)
    with pytest.raises(ValueError, match="matmul"):
        tracejit.compile(lambda a: 2 @ a)(a)


@pytest.mark.parametrize("shapes", [((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 2, 2), (2, 2, 2))])
def test_dot_of_more_than_two_dims_is_a_trace_error(shapes, rng):
    a = make_input(rng, shapes[0], "float64")
    b = make_input(rng, shapes[1], "float64")
    np.dot(a, b)   # NumPy can
    with pytest.raises(tracejit.TraceError) as ei:
        tracejit.compile(lambda a, b: np.dot(a, b))(a, b)
    assert "dot" in str(ei.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,h,n", [(128, 32, 64, 10), (64, 128, 10, 3), (10, 300, 3, 7),
                                     (33, 65, 17, 5)])
def test_weight_gradients_of_two_layers_match_numpy(m, k, h, n, dtype):
    # the weights' gradients are contractions stored in the weights' layouts; some are
    # computed as their transposes (b.T @ a.T, csrc/emit/gemm.c) to reach BLAS
    rng = np.random.default_rng(m * k + n)
    x = rng.standard_normal((m, k)).astype(dtype)
    y = rng.standard_normal((m, n)).astype(dtype)
    w1 = (0.2 * rng.standard_normal((k, h))).astype(dtype)
    w2 = (0.2 * rng.standard_normal((h, n))).astype(dtype)
    g = tracejit.grad(lambda w1, w2, x, y: np.sum((np.tanh(x @ w1) @ w2 - y) ** 2), argnums=(0, 1))
    a = np.tanh(x @ w1)
    d = 2 * (a @ w2 - y)
    want2 = a.T @ d
    want1 = x.T @ ((d @ w2.T) * (1 - a * a))
    got1, got2 = g(w1, w2, x, y)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got1, want1, rtol=tol, atol=tol * np.abs(want1).max())
    np.testing.assert_allclose(got2, want2, rtol=tol, atol=tol * np.abs(want2).max())


def test_weight_gradient_is_the_contraction_itself():
    # d/dW sum(f(X @ W)) = X.T @ G: computed in W's layout, no transposing copy after it
    x = np.ones((128, 32), np.float32)
    w = np.ones((32, 64), np.float32)
    g = tracejit.grad(lambda w, x: np.sum(np.tanh(x @ w)))
    g(w, x)
    text = g.explain(w, x)
    groups = [line for line in text.groups.splitlines() if line.strip().startswith("group ")]
    assert any("loop [32, 64, 128]" in line for line in groups), groups
    assert not any(line.split("loop [")[1].startswith("32, 64]") for line in groups), groups


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k", [(128, 64, 10), (40, 16, 256), (40, 15, 256), (33, 64, 64),
                                   (9, 64, 65), (200, 30, 50)])
def test_product_with_a_transposed_right_operand(m, n, k, dtype):
    # x @ w.T (nn.Linear's layout): w.T is packed for BLAS when it is small (K*N <= 4096)
    # and has 16 columns or more (csrc/emit/gemm.c), else passed as stored
    rng = np.random.default_rng(m + n + k)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    f = tracejit.compile(lambda x, w: x @ w.T)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(f(x, w), x @ w.T, rtol=tol, atol=tol * np.sqrt(k))
    g = tracejit.compile(lambda x, w: (x @ w.T).T)   # stored transposed: b^T a^T
    np.testing.assert_allclose(g(x, w), (x @ w.T).T, rtol=tol, atol=tol * np.sqrt(k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_over_two_trailing_dims_is_one_gemm(dtype):
    # a weight's gradient through nn.Linear on (B, T, C): the sum over B and T of
    # x[b, t, i] * dy[b, t, j]; B and T, contiguous in both, become one K dim of a single
    # GEMM (it ran as a fused loop: a GPT training step 22.7x eager's time, issue 18)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 7, 24)).astype(dtype)
    dy = rng.standard_normal((6, 7, 20)).astype(dtype)
    fn = lambda x, dy: (x.transpose(2, 0, 1)[:, None] * dy.transpose(2, 0, 1)[None]).sum((2, 3))
    f = check(fn, x, dy, k=42)
    src = f.explain(x, dy).source
    assert src.count("tj_gemm_%s(po" % ("f32" if dtype == np.float32 else "f64")) == 1
    assert "24LL, 20LL, 42LL" in src
    # not contiguous across B and T: two summed dims stay a fused loop, and agree
    check(fn, x[:, ::2], dy[:, ::2], k=24)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["c", "T", "strided", "neg"])
@pytest.mark.parametrize("form", ["x @ w.T", "x @ w", "(x @ w).T"])
def test_leading_batch_dims_fold_into_rows(form, layout, dtype):
    # nn.Linear on a (B, T, C) input: B and T, contiguous in x and the result, are one
    # row dim of a single GEMM call, not a loop nest of B products (issue 18); other
    # layouts keep whatever form they had and match NumPy either way
    rng = np.random.default_rng(18)
    x = arg(rng, (6, 7, 24), dtype.__name__, layout)
    w = arg(rng, (20, 24) if form == "x @ w.T" else (24, 20), dtype.__name__)
    fn = {"x @ w.T": lambda x, w: x @ w.T, "x @ w": lambda x, w: x @ w,
          "(x @ w).T": lambda x, w: (x @ w).T}[form]
    f = check(fn, x, w, k=24)
    if layout == "c":
        src = f.explain(x, w).source
        assert src.count("tj_gemm_%s(po" % ("f32" if dtype == np.float32 else "f64")) == 1
        assert "for (long long i0" not in src.split("static void tj_g0")[1].split("\n}\n")[0]


def test_batch_dims_fold_into_columns():
    # a hand-written product-sum whose right operand's two leading dims are the
    # result's two trailing ones, contiguous in both: one GEMM with N = 3 * 4
    rng = np.random.default_rng(7)
    a = rng.standard_normal((5, 16))
    b = rng.standard_normal((3, 4, 16))
    f = check(lambda a, b: (a[:, None, None, :] * b[None]).sum(-1), a, b, k=16)
    src = f.explain(a, b).source
    assert src.count("tj_gemm_f64(po") == 1 and "5LL, 12LL, 16LL" in src


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["c", "strided"])
def test_flattened_operand_is_one_gemm(layout, dtype):
    # Flatten then Linear: x.reshape(B, -1) of a (B, 1, 28, 28) input reads its summed
    # dim through a flat view (a constant stride), still one GEMM call
    rng = np.random.default_rng(3)
    x = arg(rng, (16, 1, 12, 12), dtype.__name__, layout)
    w = arg(rng, (20, 144), dtype.__name__)
    f = check(lambda x, w: x.reshape(16, -1) @ w.T, x, w, k=144)
    if layout == "c":
        src = f.explain(x, w).source
        assert src.count("tj_gemm_%s(po" % ("f32" if dtype == np.float32 else "f64")) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [3, 4, 5, 8, 13, 16, 17])
@pytest.mark.parametrize("k", [0, 1, 7, 300])
def test_few_rows_against_a_transposed_weight(m, k, dtype):
    # 4 to 16 rows of x @ w.T (both operands contiguous along K) are dot products that
    # read w once (csrc/emit/gemm.c, dots_); the result also stored transposed, and
    # written through a strided output
    rng = np.random.default_rng(m * 1000 + k)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((37, k)).astype(dtype)
    check(lambda x, w: x @ w.T, x, w, k=k)
    check(lambda x, w: (x @ w.T).T, x, w, k=k)
    check(lambda x, w: (x @ w.T)[:, ::2] * 2.0, x, w, k=k)
