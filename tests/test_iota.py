"""The element index (an IOTA node, reached through the hidden _C._iota(shape, axis)):
a virtual leaf that lowering gives an access like any leaf's, so fusion, broadcasting,
views, collapsed dims and parallel splits need nothing of their own, and that the
emitters spell as the computed offset instead of a load. Every result is compared with
NumPy's arange-built equivalent, on TinyCC and on the optimizing tier."""
import shutil

import numpy as np
import pytest

import tracejit
from tracejit import _C

from conftest import both_tiers

HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang"))


def along(shape, axis):
    """NumPy's value of _iota(shape, axis)."""
    if axis == -1:
        return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.broadcast_to(np.arange(shape[axis], dtype=np.int64).reshape(view), shape)


BIG = (1024, 1536)   # large enough for the thread pool to split it

CASES = [
    # name, traced function, numpy's function (iota -> value), argument shapes, dtype
    ("1d", lambda x: _C._iota((7,), 0) + x, lambda x: along((7,), 0) + x, [(7,)], np.int64),
    ("rows", lambda x: _C._iota((3, 5), 0) * x, lambda x: along((3, 5), 0) * x, [(3, 5)],
     np.int64),
    ("cols", lambda x: _C._iota((3, 5), 1) - x, lambda x: along((3, 5), 1) - x, [(3, 5)],
     np.int64),
    ("linear", lambda x: _C._iota((2, 3, 4), -1) + x, lambda x: along((2, 3, 4), -1) + x,
     [(2, 3, 4)], np.int64),
    ("middle", lambda x: _C._iota((2, 3, 4), 1) + x, lambda x: along((2, 3, 4), 1) + x,
     [(2, 3, 4)], np.int64),
    ("broadcast", lambda x: _C._iota((5,), 0) + x, lambda x: along((5,), 0) + x, [(4, 5)],
     np.int64),
    ("broadcast-col", lambda x: _C._iota((4, 1), 0) + x, lambda x: along((4, 1), 0) + x,
     [(4, 5)], np.int64),
    ("transposed", lambda x: _C._iota((3, 5), -1).T + x, lambda x: along((3, 5), -1).T + x,
     [(5, 3)], np.int64),
    ("transposed-out", lambda x: (_C._iota((3, 5), 1) + x).T,
     lambda x: (along((3, 5), 1) + x).T, [(3, 5)], np.int64),
    ("reshaped", lambda x: _C._iota((2, 3, 4), 1).reshape(6, 4) + x,
     lambda x: along((2, 3, 4), 1).reshape(6, 4) + x, [(6, 4)], np.int64),
    ("flat-of-transposed", lambda x: _C._iota((3, 4), 0).T.reshape(12) + x,
     lambda x: along((3, 4), 0).T.reshape(12) + x, [(12,)], np.int64),
    ("sliced", lambda x: _C._iota((10, 12), -1)[1::3, ::-2] + x,
     lambda x: along((10, 12), -1)[1::3, ::-2] + x, [(3, 6)], np.int64),
    ("float", lambda x: np.sin(_C._iota((6, 8), 1) * 0.25) * x,
     lambda x: np.sin(along((6, 8), 1) * 0.25) * x, [(6, 8)], np.float64),
    ("float32", lambda x: _C._iota((6, 8), -1).astype(np.float32) + x,
     lambda x: along((6, 8), -1).astype(np.float32) + x, [(6, 8)], np.float32),
    ("eye", lambda x: np.where(_C._iota((6, 6), 0) == _C._iota((6, 6), 1), 1.0, x),
     lambda x: np.where(along((6, 6), 0) == along((6, 6), 1), 1.0, x), [(6, 6)], np.float64),
    ("tril", lambda x: np.where(_C._iota((5, 7), 0) >= _C._iota((5, 7), 1), x, 0.0),
     lambda x: np.where(along((5, 7), 0) >= along((5, 7), 1), x, 0.0), [(5, 7)], np.float64),
    ("scalar", lambda x: _C._iota((), -1) + x, lambda x: along((), -1) + x, [()], np.int64),
    ("big-linear", lambda x: _C._iota(BIG, -1) + x, lambda x: along(BIG, -1) + x, [BIG],
     np.int64),
    ("big-cols", lambda x: _C._iota(BIG, 1) * 0.5 + x, lambda x: along(BIG, 1) * 0.5 + x,
     [BIG], np.float64),
    ("big-transposed", lambda x: _C._iota(BIG, 0).T + x, lambda x: along(BIG, 0).T + x,
     [BIG[::-1]], np.int64),
    ("sum", lambda x: (_C._iota((4, 6), 1) + x).sum(), lambda x: (along((4, 6), 1) + x).sum(),
     [(4, 6)], np.int64),
    ("sum-rows", lambda x: (_C._iota((40, 6), 0) * x).sum(axis=0),
     lambda x: (along((40, 6), 0) * x).sum(axis=0), [(40, 6)], np.float64),
    ("sum-cols", lambda x: (_C._iota((40, 6), -1) * x).sum(axis=1),
     lambda x: (along((40, 6), -1) * x).sum(axis=1), [(40, 6)], np.float64),
    ("big-sum", lambda x: (_C._iota(BIG, -1) * x).sum(axis=0),
     lambda x: (along(BIG, -1) * x).sum(axis=0), [BIG], np.float64),
    ("max", lambda x: (_C._iota((5, 9), 1) - x).max(axis=1),
     lambda x: (along((5, 9), 1) - x).max(axis=1), [(5, 9)], np.int64),
    ("argmax", lambda x: np.argmax(_C._iota((5, 9), -1) % 7 + x, axis=1),
     lambda x: np.argmax(along((5, 9), -1) % 7 + x, axis=1), [(5, 9)], np.int64),
    ("cumsum", lambda x: np.cumsum(_C._iota((3, 8), 1) + x, axis=1),
     lambda x: np.cumsum(along((3, 8), 1) + x, axis=1), [(3, 8)], np.int64),
    ("returned", lambda x: (_C._iota((3, 4), 0), x + 1),
     lambda x: (along((3, 4), 0), x + 1), [(2,)], np.int64),
    ("concatenated", lambda x: np.concatenate([_C._iota((3, 4), 1), x]),
     lambda x: np.concatenate([along((3, 4), 1), x]), [(2, 4)], np.int64),
]


def inputs(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(-5, 6, size=s).astype(dtype) if s != () else dtype(3)
            for s in shapes]


def same(got, want):
    got, want = (got if isinstance(got, tuple) else (got,)), \
        (want if isinstance(want, tuple) else (want,))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name,fn,ref,shapes,dtype", CASES, ids=[c[0] for c in CASES])
def test_iota_matches_numpy(name, fn, ref, shapes, dtype):
    f = tracejit.compile(fn)
    for seed in (0, 1):   # the second call replays the plan with other data
        args = inputs(shapes, dtype, seed)
        same(f(*args), ref(*args))
    assert f.cache_info().misses == 1


@pytest.mark.skipif(not HAVE_CC, reason="no system C compiler")
@pytest.mark.parametrize("name,fn,ref,shapes,dtype",
                         [c for c in CASES if c[0] in ("1d", "cols", "linear", "broadcast",
                                                       "transposed", "reshaped", "float32",
                                                       "eye", "tril", "big-linear",
                                                       "big-transposed", "sum-rows",
                                                       "sum-cols", "big-sum")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_iota_on_the_optimizing_tier(name, fn, ref, shapes, dtype, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path / "cache"))
    try:
        args = inputs(shapes, dtype)
        r2, r1, f2 = both_tiers(fn, args)
        same(r1, ref(*args))
        same(r2, ref(*args))
        # the tier's fused loop spells the index: no load, no slot
        text = str(f2.explain(*args))
        tier_c = text[text.index("optimizing tier C"):]
        assert "tj_iota_i64" not in tier_c and "P[-1]" not in text
    finally:
        tracejit.set_tier("auto")


def test_iota_is_a_virtual_leaf():
    """No slot, no memory: the graph lists it with its axis, the kernel fills its
    blocks with tj_iota_i64 (TinyCC) instead of loading them, and collapsing keeps
    the counted dim apart from its neighbour."""
    f = tracejit.compile(lambda x: _C._iota((3, 4), 1) + x)
    text = str(f.explain(np.zeros((3, 4), np.int64)))
    assert "IOTA int64(3, 4) axis 1" in text
    assert "tj_iota_i64(tjb" in text and "P[-1]" not in text
    assert "group 0: loop [3, 4]" in text          # not collapsed to [12]
    g = tracejit.compile(lambda x: _C._iota((3, 4), -1) + x)
    assert "group 0: loop [12]" in str(g.explain(np.zeros((3, 4), np.int64)))


def test_iota_refusals_name_the_problem():
    with pytest.raises(RuntimeError, match=r"^_iota: no trace is running on this thread$"):
        _C._iota((3,), 0)
    f = tracejit.compile(lambda x: _C._iota((3,), 1) + x)
    with pytest.raises(ValueError, match=r"^_iota: axis 1 out of range for 1 dimensions "
                                         r"\(-1: the linear index\)$"):
        f(np.zeros(3, np.int64))
    f = tracejit.compile(lambda x: _C._iota((3, -1), 0) + x)
    with pytest.raises(ValueError, match=r"^_iota: negative dimension -1$"):
        f(np.zeros(3, np.int64))
    f = tracejit.compile(lambda x: _C._iota((10,), 0)[x])
    with pytest.raises(ValueError, match=r"^indexing an element-index array \(IOTA\) with an "
                                         r"array is not supported$"):
        f(np.array([1, 3]))
