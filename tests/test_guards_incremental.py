"""Values Python reads while tracing, computed incrementally (issue 19): a Python loop on
data (`while err > tol:`) needs a value per step; each is computed from the values kept
for the nodes live Tracers stood for (csrc/prefix.c), so the graphs compiled for them
grow with the step, not with everything before it. _C._prefix_nodes counts the nodes
those graphs held; _C._incremental_values(False) computes the whole prefix each time."""
import warnings

import numpy as np
import pytest

import tracejit
from tracejit import _C


def _countdown(x):
    while x.max() > 0.0:
        x = np.tanh(x) * 0.0 + x - 1.0
    return x


def _prefix_nodes_for(n):
    f = tracejit.compile(_countdown)
    x = np.linspace(n - 1.0, n - 0.5, 16)
    before = _C._prefix_nodes()
    np.testing.assert_array_equal(f(x), _countdown(x))
    return _C._prefix_nodes() - before


@pytest.fixture
def whole_prefix():
    prev = _C._incremental_values(False)
    yield
    _C._incremental_values(prev)


def test_a_python_loop_compiles_each_step_once():
    small, large = _prefix_nodes_for(20), _prefix_nodes_for(40)
    assert large < 2.3 * small       # linear in the steps


def test_without_kept_values_the_prefixes_grow_quadratically(whole_prefix):
    small, large = _prefix_nodes_for(20), _prefix_nodes_for(40)
    assert large > 3.5 * small       # what the test above would catch


def _newton_sqrt(x):
    y, err = x, 1.0
    while err > 1e-6:
        y2 = 0.5 * (y + x / y)
        err = np.abs(y2 - y).max()
        y = y2
    return y


def _jacobi(a, b):
    d = np.diag(a)
    r = a - np.diag(d)
    x = np.zeros_like(b)
    steps = 0
    while True:
        x_new = (b - r @ x) / d
        steps += 1
        if np.abs(x_new - x).max() < 1e-9 or steps > 200:
            return x_new, steps
        x = x_new


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_iterative_solvers_match_eager_and_the_whole_prefix(dtype, layout):
    rng = np.random.default_rng(1)
    x = np.abs(rng.standard_normal((6, 8))).astype(dtype) + 1
    if layout == "strided":
        x = x.T
    a = (rng.standard_normal((5, 5)) + 8 * np.eye(5)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    results = []
    for incremental in (True, False):
        prev = _C._incremental_values(incremental)
        try:
            fs, fj = tracejit.compile(_newton_sqrt), tracejit.compile(_jacobi)
            got = fs(x), fj(a, b)
            results.append((got, fs.cache_info().guards, fj.cache_info().guards))
        finally:
            _C._incremental_values(prev)
        np.testing.assert_array_equal(got[0], _newton_sqrt(x))
        jx, js = got[1]
        ex, es = _jacobi(a, b)
        assert js == es
        np.testing.assert_array_equal(jx, ex)
    (inc, g1, g2), (whole, h1, h2) = results
    assert g1 == h1 and g2 == h2     # the same values read, the same guards
    np.testing.assert_array_equal(inc[0], whole[0])


def _decrement_the_largest(x):
    x = x.copy()
    while x.max() > 0:
        i = int(x.argmax())
        x[i] = x[i] - 1.5
    return x


def test_writes_and_indices_in_a_loop_on_data():
    x = np.array([3.0, 1.0, 2.5, 0.5])
    f = tracejit.compile(_decrement_the_largest)
    for v in (x, x, x * 2):
        np.testing.assert_array_equal(f(v), _decrement_the_largest(v))


def test_torch_loop_on_data_matches_eager():
    torch = pytest.importorskip("torch")

    def halve(t):
        n = 0
        while t.abs().max().item() > 1.0:
            t = t / 2.0
            n += 1
        return t, n

    f = tracejit.compile(halve)
    for v in (torch.tensor([9.0, -3.0]), torch.tensor([100.0, 0.5]), torch.tensor([0.1])):
        got, want = f(v), halve(v)
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
        assert got[1] == want[1]


def test_a_value_drawn_at_random_is_still_refused_after_kept_values():
    def g(a):
        while a.sum() > 1.0:      # kept values: a's steps
            a = a * 0.5
        z = np.random.normal(size=a.shape) + a
        if z.sum() > 0:
            return z
        return -z

    f = tracejit.compile(g)
    with pytest.raises(tracejit.TraceError, match="computed from random draws cannot steer"):
        f(np.array([4.0, 4.0]))


def test_a_loop_past_the_limit_still_falls_back_with_the_warning():
    f = tracejit.compile(_newton_sqrt, max_variants=1)
    x = np.linspace(1.0, 4.0, 8)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for scale in (1.0, 1e6, 1e12):
            np.testing.assert_array_equal(f(x * scale), _newton_sqrt(x * scale))
    assert any("max_variants=1" in str(m.message) for m in w)
