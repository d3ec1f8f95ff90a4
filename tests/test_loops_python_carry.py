"""A while_loop whose carry is only Python numbers but whose condition reads traced values
(and fori_loop with a traced bound and a Python-number init, which is such a while_loop)
is a compiled loop: its trip count is data. Python's loop would unroll it while tracing,
one value read and guard per step, as many steps as the data says (a retrace per other
count, a trace as long as the count). Against eager's loop over several values at
replay; the loop named by explain(); gradients as before."""
import re

import numpy as np
import pytest

import tracejit as tj


def _loops(cf, *args):
    return [l for l in cf.explain(*args).text.splitlines() if l.startswith("-- loop ")]


def test_python_float_carry_with_traced_condition_compiles_one_loop():
    fn = lambda steps: tj.while_loop(lambda c: c < steps, lambda c: c + 1.0, 0.0)  # noqa: E731
    cf = tj.compile(fn)
    for s in [5.5, 0.0, -3.0, 9.0, 4000.0]:
        got, want = cf(np.float64(s)), fn(np.float64(s))
        assert float(got) == want and np.asarray(got).dtype == np.float64, (s, got, want)
    assert cf.cache_info().misses == 1   # one variant: no guard on the trip count
    assert len(_loops(cf, np.float64(3.0))) == 1 and "while_loop" in _loops(cf, np.float64(3.0))[0]


def test_python_int_and_tuple_carries():
    def fn(x, tol):
        def body(c):
            k, v = c
            return k + 1, v * 0.5
        return tj.while_loop(lambda c: c[1] * x.max() > tol, body, (0, 1.0))
    cf = tj.compile(fn)
    x = np.array([3.0, 8.0])
    for tol in [1.0, 1e-3, 100.0, 1e-9]:
        (k, v), (ke, ve) = cf(x, np.float64(tol)), fn(x, np.float64(tol))
        assert int(k) == ke and float(v) == ve, (tol, k, v, ke, ve)
    assert cf.cache_info().misses == 1
    assert len(_loops(cf, x, np.float64(1.0))) == 1


@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_fori_loop_with_a_traced_bound_and_python_init(n):
    body = lambda i, c: c * 0.5 + i  # noqa: E731
    cf = tj.compile(lambda n, x: tj.fori_loop(0, n, body, 1.0) * x)
    want = 1.0
    for i in range(n):
        want = body(i, want)
    np.testing.assert_array_equal(cf(np.int64(n), np.ones(3)), np.full(3, want))


def test_python_carry_loop_under_grad():
    """Differentiating: the loop is not compiled (no reverse mode); a result that does not
    depend on the differentiated value through the carry still differentiates, one that
    does is refused by name."""
    def ok(x):
        k = tj.while_loop(lambda c: c < x.sum() * 2, lambda c: c + 1.0, 0.0)
        return (x * k).sum()
    np.testing.assert_allclose(tj.grad(ok)(np.ones(3)), np.full(3, 6.0))

    def bad(x):
        return tj.while_loop(lambda c: c < x.sum(), lambda c: c + x[0], 0.0)
    with pytest.raises(tj.TraceError, match=re.escape("Reverse-mode differentiation does not "
                                                      "work for tracejit.while_loop")):
        tj.grad(bad)(np.ones(3))


def test_python_carry_while_inside_a_compiled_body_is_refused():
    """Inside a compiled loop's body a Python loop on a traced condition would read a value
    there: refused with a TraceError, not unrolled."""
    def fn(xs):
        def step(c, x):
            k = tj.while_loop(lambda k: k < x, lambda k: k + 1.0, 0.0)
            return c + k, k
        return tj.scan(step, np.float64(0.0), xs)
    with pytest.raises(tj.TraceError, match="inside the body of a compiled loop"):
        tj.compile(fn)(np.array([1.0, 2.5, 3.0]))
