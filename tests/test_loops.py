"""tracejit.cond, while_loop, fori_loop and scan: eager (plain Python loops), compiled
(a loop in the plan, csrc/loops.c: the body traced once), against eager Python loops,
jax.lax where installed, finite differences and torch autograd for gradients; pytrees,
the errors' messages, nested loops, cond inside scan, random draws per step."""
import numpy as np
import pytest

import tracejit as tj


def _loops_of(cf, *args):
    """The compiled loops explain() names for these arguments."""
    return [l for l in cf.explain(*args).text.splitlines() if l.startswith("-- loop ")]


def _rnn_np(W, U, b, h0, xs):
    def cell(h, x):
        h = np.tanh(W @ h + U @ x + b)
        return h, h * 2
    return tj.scan(cell, h0, xs)


def _rnn_loop(W, U, b, h0, xs):
    h, ys = h0, []
    for x in xs:
        h = np.tanh(W @ h + U @ x + b)
        ys.append(h * 2)
    return h, np.stack(ys)


def _rnn_args(dtype, H=8, T=12, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((H, H)) * 0.3).astype(dtype),
            (rng.standard_normal((H, H)) * 0.3).astype(dtype),
            (rng.standard_normal(H) * 0.1).astype(dtype),
            np.zeros(H, dtype), rng.standard_normal((T, H)).astype(dtype))


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


# ---- scan ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T", [2, 5, 300])
def test_scan_rnn_matches_python_loop(dtype, T):
    args = _rnn_args(dtype, T=T)
    want = _rnn_loop(*args)
    eager = _rnn_np(*args)
    cf = tj.compile(_rnn_np)
    got = cf(*args)
    for w, e, g in zip(want, eager, got):
        np.testing.assert_allclose(e, w, **_tol(dtype))
        np.testing.assert_allclose(g, w, **_tol(dtype))
        assert g.dtype == w.dtype and g.shape == w.shape
    assert len(_loops_of(cf, *args)) == 1
    # a second call with other values: the same plan, the new values' loop
    args2 = _rnn_args(dtype, T=T, seed=1)
    for w, g in zip(_rnn_loop(*args2), cf(*args2)):
        np.testing.assert_allclose(g, w, **_tol(dtype))
    assert cf.cache_info().variants == 1


def test_scan_body_traced_once_not_unrolled():
    calls = []

    def f(h0, xs):
        def body(h, x):
            calls.append(1)
            return h + x, h.sum()
        return tj.scan(body, h0, xs)
    cf = tj.compile(f)
    h0, xs = np.zeros(3), np.arange(3000.0).reshape(1000, 3)
    got = cf(h0, xs)
    assert len(calls) == 1
    np.testing.assert_allclose(got[0], xs.sum(0))
    np.testing.assert_allclose(got[1], np.concatenate([[0], np.cumsum(xs.sum(1))[:-1]]))
    assert "scan of 1000 steps (compiled, not unrolled)" in _loops_of(cf, h0, xs)[0]


def test_scan_reverse_and_xs_none():
    def f(h0, xs):
        a = tj.scan(lambda c, x: (c * 0.5 + x, c), h0, xs, reverse=True)
        b = tj.scan(lambda c, _: (c + 1.0, c * c), h0, None, length=6)
        return a, b
    h0, xs = np.ones(2), np.random.default_rng(0).standard_normal((7, 2))
    c, ys = h0, [None] * 7
    for i in reversed(range(7)):
        ys[i] = c
        c = c * 0.5 + xs[i]
    c2, ys2 = h0, []
    for _ in range(6):
        ys2.append(c2 * c2)
        c2 = c2 + 1.0
    for got in (f(h0, xs), tj.compile(f)(h0, xs)):
        (ga, gya), (gb, gyb) = got
        np.testing.assert_allclose(ga, c)
        np.testing.assert_allclose(gya, np.stack(ys))
        np.testing.assert_allclose(gb, c2)
        np.testing.assert_allclose(gyb, np.stack(ys2))


def test_scan_pytree_carries_and_xs():
    def f(state, xs):
        def body(s, x):
            h = np.tanh(s["h"] + x["a"] * s["scale"][0])
            return ({"h": h, "scale": [s["scale"][0] * 0.9], "n": s["n"] + 1},
                    (h.sum(), {"b": x["b"] * 2}))
        return tj.scan(body, state, xs)
    rng = np.random.default_rng(3)
    state = {"h": np.zeros(4), "scale": [np.float64(1.0)], "n": np.int64(0)}
    xs = {"a": rng.standard_normal((9, 4)), "b": rng.standard_normal((9, 2, 2))}
    want = f(state, xs)
    got = tj.compile(f)(state, xs)
    assert isinstance(got[0], dict) and isinstance(got[0]["scale"], list)
    np.testing.assert_allclose(got[0]["h"], want[0]["h"], rtol=1e-12)
    np.testing.assert_allclose(got[0]["scale"][0], want[0]["scale"][0])
    assert int(got[0]["n"]) == 9
    np.testing.assert_allclose(got[1][0], want[1][0], rtol=1e-12)
    np.testing.assert_allclose(got[1][1]["b"], xs["b"] * 2)


def test_scan_torch_matches_eager():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    W, xs = torch.randn(6, 6, generator=g) * 0.3, torch.randn(20, 6, generator=g)

    def f(W, h0, xs):
        return tj.scan(lambda h, x: (torch.tanh(W @ h + x), torch.relu(h).sum()), h0, xs)
    h0 = torch.zeros(6)
    want = f(W, h0, xs)
    got = tj.compile(f)(W, h0, xs)
    assert isinstance(got[0], torch.Tensor) and got[1].shape == (20,)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


def test_scan_of_captured_global_reads_it_at_every_call():
    W = np.eye(3) * 0.5

    def f(h0, xs):
        return tj.scan(lambda h, x: (W @ h + x, h), h0, xs)
    cf = tj.compile(f)
    h0, xs = np.ones(3), np.ones((4, 3))
    np.testing.assert_allclose(cf(h0, xs)[0], f(h0, xs)[0])
    W[...] = np.eye(3) * 2.0   # in place: the plan reads the array at every call
    np.testing.assert_allclose(cf(h0, xs)[0], f(h0, xs)[0])


def test_scan_then_branch_on_its_result():
    def f(h0, xs):
        h, _ = tj.scan(lambda h, x: (np.tanh(h + x), h), h0, xs)
        if h.sum() > 0:
            return h * 2
        return h - 1
    cf = tj.compile(f)
    xs = np.random.default_rng(2).standard_normal((5, 3)) * 0.1
    for s in (1.0, -1.0, 1.0):
        np.testing.assert_allclose(cf(np.zeros(3), s + xs), f(np.zeros(3), s + xs))
    assert cf.cache_info().variants == 2


def test_two_loops_the_second_reads_the_first():
    def f(h0, xs):
        h, ys = tj.scan(lambda h, x: (h * 0.9 + x, h), h0, xs)
        k = tj.fori_loop(0, 7, lambda i, c: c + ys[i] * i, h)
        return k, ys.sum() + h
    h0, xs = np.ones(2), np.random.default_rng(5).standard_normal((8, 2))
    want = f(h0, xs)
    cf = tj.compile(f)
    got = cf(h0, xs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    assert len(_loops_of(cf, h0, xs)) == 2



def test_a_loop_nothing_reads_does_not_run():
    """A loop whose results nothing reads (not a result, not a later loop's operand, nor
    one computed from it) is dropped from the plan (loops.c tj_loops_prune), however long
    it would run; the loops the results need still run, in order."""
    import signal

    def f(x, steps):
        tj.fori_loop(0, steps, lambda i, c: c * 0.5 + 1.0, x)              # dead
        dead = tj.while_loop(lambda c: c[0] > -1.0, lambda c: c + 1.0, x)  # dead, endless
        tj.fori_loop(0, steps, lambda i, c: c + dead, x)                   # reads a dead one
        h, ys = tj.scan(lambda h, r: (h * 0.9 + r, h), x, np.ones((5, 3)))
        k = tj.fori_loop(0, 4, lambda i, c: c + ys[i], h * 2.0)   # h*2: its operands' plan
        return x + 1.0, k
    x = np.arange(3.0)
    cf = tj.compile(f, static_argnames=("steps",))

    def timeout(*_):
        raise TimeoutError("a dead loop ran")
    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(60)
    try:
        got = cf(x, 10 ** 15)
        got = cf(x + 1.0, 10 ** 15)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    h, ys = x + 1.0, []
    for r in np.ones((5, 3)):
        ys.append(h)
        h = h * 0.9 + r
    want = h * 2.0 + sum(ys[:4])
    np.testing.assert_array_equal(got[0], x + 2.0)
    np.testing.assert_allclose(got[1], want, rtol=1e-14)
    assert len(_loops_of(cf, x, 10 ** 15)) == 2

# ---- fori_loop and while_loop ----------------------------------------------------------

@pytest.mark.parametrize("lo,hi", [(0, 5), (3, 40), (2, 3)])
def test_fori_loop_matches_python_loop(lo, hi):
    def f(x, v):
        return tj.fori_loop(lo, hi, lambda i, c: (c[0] * 0.5 + x[i % 4] * i, c[1] + i), (v, 0))
    x, v = np.random.default_rng(1).standard_normal(4), np.float64(1.0)
    c = (v, 0)
    for i in range(lo, hi):
        c = (c[0] * 0.5 + x[i % 4] * i, c[1] + i)
    for got in (f(x, v), tj.compile(f)(x, v)):
        np.testing.assert_allclose(got[0], c[0], rtol=1e-12)
        assert int(got[1]) == c[1]


def test_fori_loop_index_keeps_float32():
    def f(x):
        return tj.fori_loop(0, 10, lambda i, c: c + x * i, x)
    x = np.ones(3, np.float32)
    got = tj.compile(f)(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, f(x))


def _jacobi(A, b, tol):
    D = np.diag(A)
    R = A - np.diag(D)

    def cond(c):
        return (c[1] > tol) & (c[2] < 10000)

    def body(c):
        x, _, k = c
        xn = (b - R @ x) / D
        return xn, np.abs(xn - x).max(), k + 1
    return tj.while_loop(cond, body, (np.zeros_like(b), np.float64(np.inf), np.int64(0)))


def _jacobi_python(A, b, tol):
    D = np.diag(A)
    R = A - np.diag(D)
    x, err, k = np.zeros_like(b), np.inf, 0
    while err > tol and k < 10000:
        xn = (b - R @ x) / D
        x, err, k = xn, np.abs(xn - x).max(), k + 1
    return x, k


def test_while_loop_solver_compiles_once_and_matches_eager():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((16, 16))
    A = A + A.T + 40 * np.eye(16)   # diagonally dominant: Jacobi converges
    b = rng.standard_normal(16)
    cf = tj.compile(_jacobi)
    for tol in (1e-10, 1e-4, 1e-12):
        x, k = _jacobi_python(A, b, tol)
        got = cf(A, b, tol)
        assert int(got[2]) == k
        np.testing.assert_allclose(got[0], x, rtol=1e-13)
        np.testing.assert_allclose(np.linalg.solve(A, b), got[0], atol=100 * tol)
    assert cf.cache_info().variants == 1 and cf.cache_info().misses == 1
    assert "while_loop (compiled, not unrolled)" in _loops_of(cf, A, b, 1e-3)[0]


def test_while_loop_zero_steps_and_eager_semantics():
    f = lambda x: tj.while_loop(lambda c: c.sum() < 10, lambda c: c * 2, x)  # noqa: E731
    for x in (np.ones(2), np.full(2, 6.0)):
        want = x
        while want.sum() < 10:
            want = want * 2
        np.testing.assert_allclose(f(x), want)
        np.testing.assert_allclose(tj.compile(f)(x), want)


def test_while_loop_pure_python_values():
    assert tj.while_loop(lambda i: i < 10, lambda i: i + 3, 0) == 12
    assert tj.fori_loop(0, 4, lambda i, s: s + i, 0) == 6


# ---- cond ------------------------------------------------------------------------------

def test_cond_eager_and_compiled_only_the_taken_branch():
    def f(p, x):
        return tj.cond(p > 0, lambda a: (a * 2, a.sum()), lambda a: (a - 1, a.max()), x)
    cf = tj.compile(f)
    x = np.arange(4.0)
    for p in (1.0, -1.0, 2.0, -3.0):
        want = (x * 2, x.sum()) if p > 0 else (x - 1, x.max())
        for got in (f(p, x), cf(p, x)):
            np.testing.assert_allclose(got[0], want[0])
            np.testing.assert_allclose(got[1], want[1])
    assert cf.cache_info().variants == 2


def test_cond_on_data_predicate():
    def f(x):
        return tj.cond(x.sum() > 0, lambda: x * 2, lambda: -x)
    cf = tj.compile(f)
    for x in (np.ones(3), -np.ones(3), np.arange(3.0)):
        np.testing.assert_allclose(cf(x), f(x))


def test_cond_inside_scan_selects_per_step():
    def f(h0, xs):
        def body(h, x):
            h = tj.cond(x.sum() > 0, lambda a: a + x, lambda a: a * 0.5, h)
            return h, h.max()
        return tj.scan(body, h0, xs)
    h0, xs = np.ones(3), np.random.default_rng(4).standard_normal((30, 3))
    h, ys = h0, []
    for x in xs:
        h = h + x if x.sum() > 0 else h * 0.5
        ys.append(h.max())
    cf = tj.compile(f)
    got = cf(h0, xs)
    np.testing.assert_allclose(got[0], h, rtol=1e-12)
    np.testing.assert_allclose(got[1], ys, rtol=1e-12)
    np.testing.assert_allclose(f(h0, xs)[0], h, rtol=1e-12)
    assert cf.cache_info().variants == 1


def test_nested_loops():
    def f(h0, xs):
        def outer(h, x):
            inner = tj.fori_loop(0, 3, lambda i, c: c * 0.5 + x * i, h)
            _, ys = tj.scan(lambda c, v: (c + v, c * v), inner.sum(), x)
            return inner, ys
        return tj.scan(outer, h0, xs)
    h0, xs = np.zeros(3), np.random.default_rng(6).standard_normal((5, 3))
    want = f(h0, xs)
    got = tj.compile(f)(h0, xs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    h = h0
    for x in xs:
        for i in range(3):
            h = h * 0.5 + x * i
    np.testing.assert_allclose(got[0], h, rtol=1e-12)


# ---- random draws -----------------------------------------------------------------------

def test_random_draws_fresh_at_every_step_and_call():
    def f(h0):
        return tj.scan(lambda h, _: (h + 1.0, np.random.standard_normal(h.shape) + h * 0),
                       h0, None, length=40)
    cf = tj.compile(f)
    np.random.seed(0)
    _, a = cf(np.zeros(2000))
    _, b = cf(np.zeros(2000))
    assert a.shape == (40, 2000)
    c = np.corrcoef(a)   # rows (steps) uncorrelated
    assert np.abs(c[np.triu_indices(40, 1)]).max() < 0.12
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02
    assert not np.allclose(a, b)   # a fresh key per call
    np.random.seed(0)
    np.testing.assert_array_equal(cf(np.zeros(2000))[1], a)   # seeding reproduces


# ---- gradients ----------------------------------------------------------------------------

def _fd(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


def test_grad_through_scan_and_fori_matches_finite_differences():
    rng = np.random.default_rng(0)
    W, xs = rng.standard_normal((4, 4)) * 0.4, rng.standard_normal((6, 4))

    def loss(W):
        h, ys = tj.scan(lambda h, x: (np.tanh(W @ h + x), h * h), np.zeros(4), xs)
        k = tj.fori_loop(0, 3, lambda i, c: c * np.tanh(W[i, 0] + 1.0), h)
        return (k ** 2).sum() + ys.sum()
    np.testing.assert_allclose(tj.grad(loss)(W), _fd(loss, W), rtol=1e-6, atol=1e-8)
    inside = tj.compile(lambda W: tj.grad(loss)(W) * 1.0)
    np.testing.assert_allclose(inside(W), _fd(loss, W), rtol=1e-6, atol=1e-8)


def test_torch_autograd_through_compiled_scan_matches_unrolled():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(1)
    W, U = torch.randn(5, 5, generator=g) * 0.3, torch.randn(5, 5, generator=g) * 0.3
    xs, h0 = torch.randn(9, 5, generator=g), torch.zeros(5)

    def f(W, U, h0, xs):
        return tj.scan(lambda h, x: (torch.tanh(W @ h + U @ x), h.square().sum()), h0, xs)
    cf = tj.compile(f)
    Wc, Uc = W.clone().requires_grad_(), U.clone().requires_grad_()
    h, ys = cf(Wc, Uc, h0, xs)
    (h.sum() + ys.sum()).backward()
    We, Ue = W.clone().requires_grad_(), U.clone().requires_grad_()
    he, yse = h0, []
    for x in xs:
        yse.append(he.square().sum())
        he = torch.tanh(We @ he + Ue @ x)
    (he.sum() + torch.stack(yse).sum()).backward()
    torch.testing.assert_close(Wc.grad, We.grad)
    torch.testing.assert_close(Uc.grad, Ue.grad)


def test_while_loop_gradient_is_refused():
    def loss(x):
        return tj.while_loop(lambda c: c.sum() < 10, lambda c: c * 2, x).sum()
    with pytest.raises(tj.TraceError, match="Reverse-mode differentiation does not work for "
                                            "tracejit.while_loop"):
        tj.grad(loss)(np.ones(2))
    # a while_loop that does not depend on the differentiated value is fine
    def ok(x):
        n = tj.while_loop(lambda c: c < 5, lambda c: c + 1, np.float64(0.0))
        return (x * n).sum()
    np.testing.assert_allclose(tj.grad(ok)(np.ones(2)), [5.0, 5.0])


def test_while_loop_torch_backward_raises():
    torch = pytest.importorskip("torch")
    x = torch.ones(2, requires_grad=True)
    y = tj.while_loop(lambda c: c.sum() < 10, lambda c: c * 2, x)
    torch.testing.assert_close(y.detach(), torch.full((2,), 8.0))
    with pytest.raises(RuntimeError, match="Reverse-mode differentiation does not work for "
                                           "tracejit.while_loop"):
        y.sum().backward()


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("compiled", [False, True])
def test_scan_carry_shape_and_dtype_mismatch(compiled):
    wrap = tj.compile if compiled else (lambda f: f)
    with pytest.raises(TypeError, match=r"carry\[0\] is float64\[3\] in the input and "
                                        r"float64\[1, 3\] in the output"):
        wrap(lambda h, xs: tj.scan(lambda c, x: (((c[0] + x)[None],), x), (h,), xs))(
            np.zeros(3), np.ones((4, 3)))
    with pytest.raises(TypeError, match=r"carry\[0\] is float64\[3\] in the input and "
                                        r"float32\[3\] in the output"):
        wrap(lambda h, xs: tj.scan(lambda c, x: (((c[0] + x).astype(np.float32),), x), (h,), xs))(
            np.zeros(3), np.ones((4, 3)))


@pytest.mark.parametrize("compiled", [False, True])
def test_scan_carry_structure_mismatch(compiled):
    wrap = tj.compile if compiled else (lambda f: f)
    with pytest.raises(TypeError, match="same pytree structure"):
        wrap(lambda h, xs: tj.scan(lambda c, x: ((c, c), x), h, xs))(np.zeros(3), np.ones((4, 3)))
    with pytest.raises(TypeError, match="must return a pair"):
        wrap(lambda h, xs: tj.scan(lambda c, x: c, h, xs))(np.zeros(3), np.ones((4, 3)))


def test_fori_loop_python_float_carry_promoted_by_the_body():
    """A Python-float carry the body turns into float32: float32 from the first step, as
    in eager's loop; a float64 argument the body turns into float32 is an error."""
    def f(x):
        return tj.fori_loop(0, 4, lambda i, s: s + x[i], 0.0)
    x = np.arange(4, dtype=np.float32)
    got = tj.compile(f)(x)
    assert f(x) == 6.0 and got == 6.0 and got.dtype == np.float32

    def g(x, s0):
        return tj.fori_loop(0, 4, lambda i, s: (s + x[i]).astype(np.float32), s0)
    with pytest.raises(TypeError, match=r"the carry is float64\[\] in the input and "
                                        r"float32\[\] in the output"):
        tj.compile(g)(x, np.float64(0.0))


def test_cond_branch_mismatch_errors():
    f = tj.compile(lambda x: tj.cond(x.sum() > 0, lambda: x, lambda: x[:2]))
    with pytest.raises(TypeError, match=r"output is float64\[3\] from true_fun and "
                                        r"float64\[2\] from false_fun"):
        f(np.ones(3))
    g = tj.compile(lambda x: tj.cond(x.sum() > 0, lambda: (x, x), lambda: x))
    with pytest.raises(TypeError, match="same pytree structure"):
        g(np.ones(3))
    h = tj.compile(lambda x: tj.cond(x > 0, lambda: x, lambda: -x))
    with pytest.raises(TypeError, match=r"the predicate must be a scalar \(shape \(\)\), got an "
                                        r"array of shape \(3,\)"):
        h(np.ones(3))
    with pytest.raises(TypeError, match="the predicate must be a boolean or integer scalar"):
        tj.cond(np.float64(1.0), lambda: 1, lambda: 2)


def test_value_read_inside_a_compiled_body_is_refused():
    def f(h0, xs):
        def body(h, x):
            if x.sum() > 0:   # a Python branch on data inside the body
                return h + x, h
            return h, h
        return tj.scan(body, h0, xs)
    with pytest.raises(tj.TraceError, match="inside the body of a compiled loop .* Use "
                                            "tracejit.cond or np.where"):
        tj.compile(f)(np.zeros(3), np.ones((4, 3)))


def test_body_value_leaking_out_is_refused():
    leaked = []

    def f(h0, xs):
        def body(h, x):
            leaked.append(h * 2)
            return h + x, h
        h, _ = tj.scan(body, h0, xs)
        return h + leaked[-1]
    with pytest.raises(tj.TraceError, match="a value traced inside the body of a compiled loop "
                                            r"\(tracejit.scan, fori_loop\) is read after the loop"):
        tj.compile(f)(np.zeros(3), np.ones((4, 3)))


def test_scan_argument_errors():
    with pytest.raises(ValueError, match="must be an array with a leading axis"):
        tj.scan(lambda c, x: (c, x), 0.0, np.float64(1.0))
    with pytest.raises(ValueError, match="needs length="):
        tj.scan(lambda c, x: (c, x), 0.0, None)
    with pytest.raises(ValueError, match="one leading axis length"):
        tj.scan(lambda c, x: (c, x), 0.0, (np.ones(3), np.ones(4)))
    with pytest.raises(TypeError, match="fori_loop: lower must be an integer"):
        tj.fori_loop(0.5, 3, lambda i, c: c, 0)


# ---- against jax.lax ------------------------------------------------------------------------

_JAX_SCRIPT = r"""
import numpy as np
import jax
import tracejit as tj
jax.config.update("jax_enable_x64", True)
lax, jnp = jax.lax, jax.numpy
rng = np.random.default_rng(0)
W, U = rng.standard_normal((8, 8)) * 0.3, rng.standard_normal((8, 8)) * 0.3
b, h0, xs = rng.standard_normal(8) * 0.1, np.zeros(8), rng.standard_normal((25, 8))

def cell(np_):
    def c(h, x):
        h = np_.tanh(W @ h + U @ x + b)
        return h, h * 2
    return c
jh, jys = lax.scan(cell(jnp), h0, xs)
th, tys = tj.compile(lambda h0, xs: tj.scan(cell(np), h0, xs))(h0, xs)
np.testing.assert_allclose(th, np.asarray(jh), rtol=1e-12)
np.testing.assert_allclose(tys, np.asarray(jys), rtol=1e-12)
jr, jry = lax.scan(cell(jnp), h0, xs, reverse=True)
tr, tr_ys = tj.compile(lambda h0, xs: tj.scan(cell(np), h0, xs, reverse=True))(h0, xs)
np.testing.assert_allclose(tr_ys, np.asarray(jry), rtol=1e-12)
jf = lax.fori_loop(2, 9, lambda i, c: c * 0.5 + i, 1.0)
tf = tj.compile(lambda x: tj.fori_loop(2, 9, lambda i, c: c * 0.5 + i, x))(np.float64(1.0))
assert float(tf) == float(jf), (tf, jf)
jw = lax.while_loop(lambda c: c[0] < 100, lambda c: (c[0] * 3, c[1] + 1), (1.0, 0))
tw = tj.compile(lambda x: tj.while_loop(lambda c: c[0] < 100, lambda c: (c[0] * 3, c[1] + 1),
                                        (x, np.int64(0))))(np.float64(1.0))
assert float(tw[0]) == float(jw[0]) and int(tw[1]) == int(jw[1]), (tw, jw)
for p in (True, False):
    jc = lax.cond(p, lambda a: a * 2, lambda a: a - 1, 3.0)
    tc = tj.compile(lambda q, a: tj.cond(q, lambda v: v * 2, lambda v: v - 1, a))(
        np.bool_(p), np.float64(3.0))
    assert float(tc) == float(jc), (p, tc, jc)

def loss(np_, scan):
    def f(W):
        h, ys = scan(lambda h, x: (np_.tanh(W @ h + x), h), np_.zeros(8), xs)
        return (h ** 2).sum() + ys.sum()
    return f
np.testing.assert_allclose(tj.grad(loss(np, tj.scan))(W),
                           np.asarray(jax.grad(loss(jnp, lax.scan))(W)), rtol=1e-10)
print("jax agrees")
"""


def test_against_jax_lax():
    """In a process of its own: jax's threads would make later fork tests warn."""
    pytest.importorskip("jax")
    import os
    import subprocess
    import sys
    from conftest import _package_root     # the tracejit this process imported
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([_package_root(), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", _JAX_SCRIPT], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0 and "jax agrees" in r.stdout, r.stdout + r.stderr


def test_grad_wrt_init_and_xs_reverse_scan_compiled():
    rng = np.random.default_rng(7)
    W, xs, h0 = rng.standard_normal((3, 3)) * 0.5, rng.standard_normal((9, 3)), rng.standard_normal(3)

    def loss(h0, xs, W):
        h, ys = tj.scan(lambda h, x: (np.sin(W @ h) + x * h, (h * x).sum()), h0, xs, reverse=True)
        return (h * h).sum() + (ys * np.arange(9.0)).sum()
    g = tj.grad(loss, argnums=(0, 1, 2))
    got = g(h0, xs, W)
    for k, arg in enumerate((h0, xs, W)):
        def f(v, k=k):
            a = [h0, xs, W]
            a[k] = v
            return loss(*a)
        np.testing.assert_allclose(got[k], _fd(f, arg), rtol=1e-6, atol=1e-8)
    # the forward and its backward both compiled loops
    assert sum("compiled, not unrolled" in l for l in _loops_of(g, h0, xs, W)) == 2


def test_value_read_after_a_loop_that_draws_is_refused():
    def f(h0):
        h, _ = tj.scan(lambda h, _: (h + np.random.standard_normal(h.shape), h), h0, None,
                       length=5)
        if h.sum() > 0:
            return h
        return -h
    with pytest.raises(tj.TraceError, match="a value computed from random draws cannot steer "
                                            "Python"):
        tj.compile(f)(np.zeros(4))


def test_long_trace_suggests_a_compiled_loop(monkeypatch, capsys):
    monkeypatch.setenv("TRACEJIT_PROGRESS", "0")

    def f(x):
        for i in range(1800):   # (5400 ops; 2500 steps crash in main: see the report)
            x = np.tanh(x) * 0.5 + i
        return x
    np.testing.assert_allclose(tj.compile(f)(np.ones(2)), f(np.ones(2)))
    err = capsys.readouterr().err
    assert "a Python loop traced step by step? tracejit.fori_loop or tracejit.scan" in err


def test_writes_into_the_body_own_arrays():
    def f(h0, xs):
        def body(h, x):
            h = h.copy()
            h[0] = x.sum()   # the body's own array: functionalized
            h[1:] += x[1:] * 2
            return h, h[0]
        return tj.scan(body, h0, xs)
    h0, xs = np.zeros(3), np.random.default_rng(8).standard_normal((6, 3))
    want = f(h0, xs)
    got = tj.compile(f)(h0, xs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    np.testing.assert_array_equal(h0, np.zeros(3))


def test_write_into_an_outer_array_inside_the_body_is_refused():
    def f(x, xs):
        def body(h, v):
            x[0] = v.sum()   # the caller's array, written once per step in eager
            return h + v, h
        return tj.scan(body, x * 0, xs)
    with pytest.raises(tj.TraceError, match="a write into an array from outside the body"):
        tj.compile(f)(np.zeros(3), np.ones((4, 3)))


@pytest.mark.parametrize("mode", ["eager", "tcc"])
def test_loop_bodies_on_the_optimizing_tier(mode):
    """A body's kernel is upgraded by the tier as a plan's is (at once under "eager"): the
    same results."""
    tj.set_tier(mode)
    try:
        for dtype in (np.float32, np.float64):
            args = _rnn_args(dtype, T=40, seed=3)
            cf = tj.compile(_rnn_np)
            for _ in range(3):
                for w, g in zip(_rnn_loop(*args), cf(*args)):
                    np.testing.assert_allclose(g, w, **_tol(dtype))
        def ew(x, xs):   # elementwise: what the tier fuses
            return tj.scan(lambda c, v: (np.exp(-c * c) + np.sin(v) * 0.5, c.sum()), x, xs)
        x, xs = np.linspace(-1, 1, 1000), np.random.default_rng(9).standard_normal((30, 1000))
        ce = tj.compile(ew)
        for _ in range(3):
            got, want = ce(x, xs), ew(x, xs)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-10)
    finally:
        tj.set_tier("auto")


def test_second_order_through_scan():
    """grad of grad: the inner loop is traced step by step (two levels of
    differentiation), its result against central differences of the first gradient."""
    xs = np.random.default_rng(0).standard_normal((5, 3))

    def loss(w):
        h, ys = tj.scan(lambda h, x: (np.tanh(w * h + x), h * w), np.zeros(3), xs)
        return (h ** 2).sum() + ys.sum()
    g1 = tj.grad(loss)
    g2 = tj.grad(lambda w: g1(w).sum())
    w = np.array([0.3, -0.2, 0.5])
    fd = np.array([(g1(w + e).sum() - g1(w - e).sum()) / 2e-5 for e in np.eye(3) * 1e-5])
    np.testing.assert_allclose(g2(w), fd, rtol=1e-6, atol=1e-8)


def test_vjp_through_scan():
    xs = np.random.default_rng(0).standard_normal((6, 3))

    def f(w):
        return tj.scan(lambda h, x: (np.tanh(w * h + x), h * w), np.zeros(3), xs)
    w = np.array([0.3, -0.2, 0.5])
    out, fn = tj.vjp(f, w)
    want = f(w)
    np.testing.assert_allclose(out[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(out[1], want[1], rtol=1e-12)
    ct = (np.array([1.0, -2.0, 0.5]), np.linspace(-1, 1, 18).reshape(6, 3))

    def inner(v):
        o = f(v)
        return (o[0] * ct[0]).sum() + (o[1] * ct[1]).sum()
    np.testing.assert_allclose(fn(ct)[0], _fd(inner, w), rtol=1e-6, atol=1e-8)


def test_threads_share_a_compiled_loop():
    from concurrent.futures import ThreadPoolExecutor
    args = _rnn_args(np.float64, H=16, T=3000)
    cf = tj.compile(_rnn_np)
    cf(*args)
    inputs = [_rnn_args(np.float64, H=16, T=3000, seed=s) for s in range(8)]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda a: cf(*a), inputs))
    for a, g in zip(inputs, got):
        for w, v in zip(_rnn_loop(*a), g):
            np.testing.assert_allclose(v, w, rtol=1e-12, atol=1e-12)
