"""x[mask] with a traced boolean mask (python/tracejit/_masked.py): elementwise
arithmetic, reductions and assignment back through the same mask give eager's values
on every call (the selection's size changes from call to call: no retrace); what needs
the selection's size is refused by name. A constant mask is NumPy's nonzero() indexing."""
import numpy as np
import pytest

import tracejit


def calls(fn, *make):
    """fn eagerly and compiled on three draws of arguments (other values, other counts)."""
    f = tracejit.compile(fn)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        args = [m(rng) for m in make]
        yield f(*[np.copy(a) for a in args]), fn(*[np.copy(a) for a in args])
    assert f.cache_info().variants == 1


def close(got, want, dtype):
    tol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert np.asarray(got).dtype == np.asarray(want).dtype


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
@pytest.mark.parametrize("name, fn", [
    ("sum", lambda x: x[x > 0].sum()),
    ("np.sum of arithmetic", lambda x: np.sum(x[x > 0] * 2 + 1)),
    ("mean", lambda x: x[x > 0].mean()),
    ("np.mean", lambda x: np.mean(x[x < 0])),
    ("prod", lambda x: (x[abs(x) < 2] + 3).prod()),
    ("max", lambda x: x[x != 0].max()),
    ("min", lambda x: np.min(x[x > -5])),
    ("any all", lambda x: ((x[x > 0] > 2).any(), (x[x > 0] > 2).all())),
    ("count_nonzero", lambda x: np.count_nonzero(x[x > -3] - 1)),
    ("two selections", lambda x: (x[x > 0] * x[x > 0] - x[x > 0]).sum()),
    ("a ufunc", lambda x: np.sum(np.abs(x[x < 1]) ** 2)),
])
def test_reductions_of_a_selection(dtype, name, fn):
    def make(rng):
        return (rng.integers(-4, 6, 40)).astype(dtype)
    for got, want in calls(fn, make):
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            close(g, w, dtype)


def test_leading_dims_mask_reduces_rows():
    def f(x, w):
        keep = x.sum(axis=1) > 0
        return x[keep].sum(axis=0), (x[keep] * w).mean(axis=0)
    for got, want in calls(f, lambda r: r.standard_normal((30, 4)), lambda r: r.standard_normal(4)):
        for g, w in zip(got, want):
            close(g, w, "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_assign_back_through_the_same_mask(dtype):
    def nbody_style(r):   # the mask computed twice, as the n-body tutorial writes it
        r = r * r + 0.01
        r[r > 0.5] = r[r > 0.5] ** (-1.5)
        return r

    def once(a):
        m = a < 0
        a[m] = a[m] * 2 + 1
        return a

    for fn in (nbody_style, once):
        for got, want in calls(fn, lambda rng: rng.standard_normal((6, 7)).astype(dtype)):
            close(got, want, dtype)


def test_nbody_acceleration_matches_eager():
    def acc(pos, mass, soft):
        x, y = pos[:, 0:1], pos[:, 1:2]
        dx, dy = x.T - x, y.T - y
        inv_r3 = dx ** 2 + dy ** 2 + soft ** 2
        inv_r3[inv_r3 > 0] = inv_r3[inv_r3 > 0] ** (-1.5)
        return np.hstack(((dx * inv_r3) @ mass, (dy * inv_r3) @ mass))
    for got, want in calls(acc, lambda r: r.standard_normal((20, 2)), lambda r: r.random((20, 1)),
                           lambda r: 0.1):
        close(got, want, "float64")


def test_max_of_an_empty_selection_raises_numpys_error_at_that_call():
    f = tracejit.compile(lambda x: x[x > 5].max())
    assert f(np.array([1.0, 7.0, 6.0])) == 7.0
    with pytest.raises(ValueError, match="zero-size array to reduction operation maximum"):
        f(np.array([1.0, 2.0, 3.0]))
    assert f(np.array([9.0, 2.0])) == 9.0


def test_constant_mask_is_nonzero_indexing():
    f = lambda x: x[np.eye(5, dtype=bool)[1] | np.eye(5, dtype=bool)[3]] * 2   # noqa: E731
    x = np.arange(10.0).reshape(5, 2)
    np.testing.assert_array_equal(tracejit.compile(f)(x), f(x))


def test_mask_of_another_shape_raises_numpys_index_error():
    f = lambda x, m: x[m].sum()   # noqa: E731
    x, m = np.ones(4), np.ones(3, bool)
    with pytest.raises(IndexError, match="boolean index did not match indexed array along axis 0"):
        f(x, m)
    with pytest.raises(IndexError, match="boolean index did not match indexed array along axis 0; "
                                         "size of axis is 4 but size of corresponding boolean "
                                         "axis is 3"):
        tracejit.compile(f)(x, m)


@pytest.mark.parametrize("fn, what", [
    (lambda x: len(x[x > 0]), r"len\(\) of x\[mask\] with a traced boolean mask"),
    (lambda x: x[x > 0][0], r"indexing of x\[mask\]"),
    (lambda x: x[x > 0].shape[0] + x, r"the shape of x\[mask\]"),
    (lambda x: x[x > 0] + x, r"arithmetic with an array of the selection's length"),
    (lambda x: x[x > 0] + x[x < 0], r"arithmetic with a selection of another mask"),
    (lambda x: np.sort(x[x > 0]), r"numpy.sort of x\[mask\]"),
])
def test_what_needs_the_size_is_refused_by_name(fn, what):
    with pytest.raises(tracejit.TraceError, match=what):
        tracejit.compile(fn)(np.array([1.0, -2.0, 3.0]))


def test_assigning_through_another_mask_is_refused():
    def f(a):
        a[a < 0] = a[a > 0] * 2
        return a
    with pytest.raises(tracejit.TraceError, match="assigning it other than through the same mask"):
        tracejit.compile(f)(np.array([1.0, -2.0, 3.0]))


@pytest.mark.parametrize("fn", [lambda x: x[x > 0], lambda x: {"kept": x[x > 0] * 2}])
def test_returning_a_selection_is_refused(fn):
    with pytest.raises(tracejit.TraceError, match=r"is x\[mask\] with a traced boolean mask, whose "
                                                  r"size depends on the data"):
        tracejit.compile(fn)(np.array([1.0, -2.0, 3.0]))
