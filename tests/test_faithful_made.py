"""Arrays the traced function makes with NumPy's factories (np.zeros, np.empty, ...):
traced, so writes into them are too (_effects._making; csrc/trace/write.c)."""
import numpy as np

import tracejit
from conftest import assert_matches_numpy
from test_faithful import refused


def test_writes_into_arrays_numpy_factories_make_are_traced():
    from numpy import empty

    def fn(x):
        z = np.zeros(5)
        z[...] = x * 2
        acc = np.ones(5)
        acc *= x
        out = empty((2, 5))               # named as a global of its own, too
        out[0], out[1] = z, acc
        table = np.full(5, 7.0)
        for i in range(5):                # constants: into the array itself, no node
            table[i] = i * i
        lag = np.zeros_like(x)
        lag[1:] = x[:-1]
        return out, table + lag, np.full_like(x, x.sum())

    f = tracejit.compile(fn)
    for k in range(3):
        x = np.arange(5.0) + k
        for got, want in zip(f(x), fn(x)):
            assert_matches_numpy(got, want)
    assert f.cache_info().misses == 1
    g = tracejit.compile(lambda x: (np.zeros(5) + x, {"lib": [np]}))   # numpy itself out
    assert g(np.ones(5))[1]["lib"][0] is np


def test_a_stencil_that_fills_a_new_grid():
    # the heat-equation step of a tutorial: a new grid from np.zeros, its interior
    # written from the old one, its boundary copied
    def step(u, alpha):
        new = np.zeros(u.shape)
        new[1:-1, 1:-1] = u[1:-1, 1:-1] + alpha * (
            u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1])
        new[0, :], new[-1, :] = u[0, :], u[-1, :]
        new[:, 0], new[:, -1] = u[:, 0], u[:, -1]
        return new

    f = tracejit.compile(step)
    u = np.random.default_rng(0).standard_normal((16, 12))
    for alpha in (0.1, 0.2):
        assert_matches_numpy(f(u, alpha), step(u, alpha))
        u = step(u, alpha)


def test_writes_into_arange_linspace_and_array_are_traced():
    def fn(x):
        z = np.arange(5.0)
        z[...] = x * 2
        acc = np.linspace(0.0, 1.0, 5)
        acc *= x
        w = np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]], dtype=np.float32)
        w[1] += x.astype(np.float32)
        t = np.arange(5)
        for i in range(5):        # constants: into the array itself
            t[i] = i * i
        t[2:] += x[:3].astype(np.int64)
        return z, acc, w, t

    f = tracejit.compile(fn)
    for k in range(3):
        x = np.arange(5.0) * (k + 1) - k
        for got, want in zip(f(x), fn(x)):
            assert_matches_numpy(got, want)
    assert f.cache_info().misses == 1


def test_np_array_of_an_array_it_does_not_copy_stays_that_array():
    keep = np.arange(3.0)

    def fn(x):
        a = np.array(keep, copy=False)     # keep itself: not the trace's own
        return a + x

    f = tracejit.compile(fn)
    np.testing.assert_array_equal(f(np.ones(3)), keep + 1)
    keep[0] = 10.0                         # read at every call
    np.testing.assert_array_equal(f(np.ones(3)), keep + 1)


def test_out_arguments_into_arrays_made_inside():
    def fn(x):                    # np.empty's array is traced: out= writes it
        out = np.empty(5)
        np.add(x, 1, out=out)
        np.multiply(out, x, out=out)
        return out, out.sum()

    f = tracejit.compile(fn)
    for x in (np.arange(5.0), np.ones(5)):
        for got, want in zip(f(x), fn(x)):
            assert_matches_numpy(got, want)

    def other(x):                 # np.arange's array too
        out = np.arange(5.0)
        np.add(x, 1, out=out)
        return out

    g = tracejit.compile(other)
    for x in (np.arange(5.0), np.ones(5)):
        assert_matches_numpy(g(x), other(x))
    def reduced(x):               # reductions too (tests/test_writes_out.py)
        out = np.empty(())
        np.sum(x, out=out)
        return out

    h = tracejit.compile(reduced)
    for x in (np.arange(5.0), np.ones(5)):
        assert_matches_numpy(h(x), reduced(x))


def test_rougiers_game_of_life_is_eagers():
    # Rougier's game of life: the neighbour counts go into np.zeros's array (traced),
    # the update writes through a view of the argument, into the caller's array
    def life(Z):
        N = np.zeros(Z.shape, int)
        N[1:-1, 1:-1] += (Z[:-2, :-2] + Z[:-2, 1:-1] + Z[:-2, 2:] + Z[1:-1, :-2]
                          + Z[1:-1, 2:] + Z[2:, :-2] + Z[2:, 1:-1] + Z[2:, 2:])
        inner = N[1:-1, 1:-1]
        birth = (inner == 3) & (Z[1:-1, 1:-1] == 0)
        survive = ((inner == 2) | (inner == 3)) & (Z[1:-1, 1:-1] == 1)
        Z[...] = 0
        Z[1:-1, 1:-1][birth | survive] = 1
        return Z

    c = tracejit.compile(life)
    Z = np.random.default_rng(1).integers(0, 2, (10, 10))
    Ze = Z.copy()
    for _ in range(5):
        assert c(Z) is Z
        life(Ze)
        np.testing.assert_array_equal(Z, Ze)

    def life_rolled(z):           # the same update by rolls and a mask: compiled
        n = sum(np.roll(np.roll(z, i, 0), j, 1) for i in (-1, 0, 1) for j in (-1, 0, 1)
                if (i, j) != (0, 0))
        birth = (n == 3) & (z == 0)
        survive = ((n == 2) | (n == 3)) & (z == 1)
        z[:] = 0
        z[birth | survive] = 1
        return z

    f = tracejit.compile(life_rolled)
    z = np.random.default_rng(0).integers(0, 2, (12, 12))
    ze = z.copy()
    for _ in range(4):
        assert f(z) is z
        life_rolled(ze)
        np.testing.assert_array_equal(z, ze)


def test_an_unrolled_loop_past_the_node_budget_is_refused(monkeypatch):
    monkeypatch.setenv("TRACEJIT_MAX_NODES", "5000")

    def rows(x):
        out = np.zeros((x.shape[0], 3))
        for i in range(x.shape[0]):
            out[i] = x[i] * 2 + 1
        return out

    x = np.ones((4000, 3))
    refused(rows, [x], r"the trace has grown past 5000 nodes \(TRACEJIT_MAX_NODES\): a Python "
            r"loop was unrolled.*Vectorize it", "out[i] =")
    monkeypatch.delenv("TRACEJIT_MAX_NODES")
    small = np.arange(30.0).reshape(10, 3)
    assert_matches_numpy(tracejit.compile(rows)(small), rows(small))
