"""Compiled loops on code written as users write it (the shapes of public examples:
jax.scipy.sparse.linalg.cg's conjugate gradient, a GRU cell over a sequence, an ODE
integrator, Newton's iteration, an exponential moving average), each against eager."""
import numpy as np
import pytest

import tracejit as tj


def _loops_of(cf, *args):
    return [l for l in cf.explain(*args).text.splitlines() if l.startswith("-- loop ")]


def cg(A, b, tol=1e-10, maxiter=1000):
    """Conjugate gradient, as jax.scipy.sparse.linalg.cg writes it with lax.while_loop."""
    def cond_fun(value):
        _, r, gamma, _, k = value
        return (np.sqrt(gamma) > tol) & (k < maxiter)

    def body_fun(value):
        x, r, gamma, p, k = value
        Ap = A @ p
        alpha = gamma / (p @ Ap)
        x_ = x + alpha * p
        r_ = r - alpha * Ap
        gamma_ = r_ @ r_
        beta_ = gamma_ / gamma
        p_ = r_ + beta_ * p
        return x_, r_, gamma_, p_, k + 1
    r0 = b - A @ np.zeros_like(b)
    init = (np.zeros_like(b), r0, r0 @ r0, r0, np.int64(0))
    x, _, _, _, k = tj.while_loop(cond_fun, body_fun, init)
    return x, k


def test_conjugate_gradient():
    rng = np.random.default_rng(0)
    for n in (8, 40):
        M = rng.standard_normal((n, n))
        A = M @ M.T + n * np.eye(n)
        b = rng.standard_normal(n)
        want = cg(A, b)
        cf = tj.compile(cg)
        got = cf(A, b)
        assert int(got[1]) == int(want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
        np.testing.assert_allclose(A @ got[0], b, atol=1e-8)
        assert _loops_of(cf, A, b)


def gru(params, h0, xs):
    """A GRU layer over a sequence (the cell of torch.nn.GRU / flax's GRUCell)."""
    Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh = params

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    def cell(h, x):
        z = sigmoid(x @ Wz + h @ Uz + bz)
        r = sigmoid(x @ Wr + h @ Ur + br)
        hh = np.tanh(x @ Wh + (r * h) @ Uh + bh)
        h = (1 - z) * h + z * hh
        return h, h
    return tj.scan(cell, h0, xs)


def _gru_params(rng, d, hdim, dtype):
    ps = []
    for _ in range(3):
        ps += [rng.standard_normal((d, hdim)) * 0.3, rng.standard_normal((hdim, hdim)) * 0.3,
               rng.standard_normal(hdim) * 0.1]
    return tuple(p.astype(dtype) for p in ps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gru_over_a_sequence_and_its_gradient(dtype):
    rng = np.random.default_rng(1)
    params = _gru_params(rng, 5, 7, dtype)
    h0 = np.zeros(7, dtype)
    xs = rng.standard_normal((30, 5)).astype(dtype)
    want = gru(params, h0, xs)
    got = tj.compile(gru)(params, h0, xs)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[0], want[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(got[1], want[1], rtol=tol, atol=tol)
    if dtype == np.float64:
        def loss(params, xs):
            h, ys = gru(params, h0, xs)
            return (h ** 2).sum() + (ys * ys).mean()
        g = tj.grad(loss, argnums=(0, 1))
        gp, gx = g(params, xs)
        eps = 1e-6
        for k in (0, 4, 8):   # a few parameters by central differences
            p = params[k]
            for idx in [(0,) * p.ndim, tuple(s - 1 for s in p.shape)]:
                d = np.zeros_like(p)
                d[idx] = eps
                up = params[:k] + (p + d,) + params[k + 1:]
                dn = params[:k] + (p - d,) + params[k + 1:]
                fd = (loss(up, xs) - loss(dn, xs)) / (2 * eps)
                np.testing.assert_allclose(gp[k][idx], fd, rtol=1e-5, atol=1e-9)
        d = np.zeros_like(xs)
        d[3, 2] = eps
        np.testing.assert_allclose(gx[3, 2], (loss(params, xs + d) - loss(params, xs - d)) /
                                   (2 * eps), rtol=1e-5, atol=1e-9)
        # the forward and the backward are compiled loops, not unrolled steps
        assert len(_loops_of(g, params, xs)) >= 2


def test_gru_torch_against_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    params = tuple(torch.tensor(p, requires_grad=True)
                   for p in _gru_params(rng, 4, 6, np.float64))
    xs = torch.tensor(rng.standard_normal((12, 4)))
    h0 = torch.zeros(6, dtype=torch.float64)

    def tgru(params, h0, xs):
        Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh = params

        def cell(h, x):
            z = torch.sigmoid(x @ Wz + h @ Uz + bz)
            r = torch.sigmoid(x @ Wr + h @ Ur + br)
            hh = torch.tanh(x @ Wh + (r * h) @ Uh + bh)
            h = (1 - z) * h + z * hh
            return h, h
        return tj.scan(cell, h0, xs)
    h, ys = tj.compile(tgru)(params, h0, xs)
    (h.sum() + ys.square().sum()).backward()
    got = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    h, ys = tgru(params, h0, xs)   # eager: a Python loop torch's autograd differentiates
    (h.sum() + ys.square().sum()).backward()
    for g, p in zip(got, params):
        torch.testing.assert_close(g, p.grad)


def euler(f, y0, t0, t1, n):
    """Explicit Euler with fori_loop (an ODE integrator's inner loop)."""
    dt = (t1 - t0) / n
    return tj.fori_loop(0, n, lambda i, y: y + dt * f(t0 + i * dt, y), y0)


def test_ode_integrator_with_fori_loop():
    k = np.array([0.5, 1.0, 2.0])

    def run(y0, t1):
        return euler(lambda t, y: -k * y + np.sin(t), y0, 0.0, t1, 200)
    y0 = np.ones(3)
    want = run(y0, 2.0)
    cf = tj.compile(run)
    for t1 in (2.0, 3.0):
        np.testing.assert_allclose(cf(y0, t1), run(y0, t1), rtol=1e-12)
    y = y0.copy()
    for i in range(200):
        y = y + 0.01 * (-k * y + np.sin(i * 0.01))
    np.testing.assert_allclose(want, y, rtol=1e-12)
    assert cf.cache_info().variants == 1


def newton_sqrt(a, tol):
    def body(c):
        x, _ = c
        x_new = 0.5 * (x + a / x)
        return x_new, np.max(np.abs(x_new - x))
    return tj.while_loop(lambda c: c[1] > tol, body, (np.maximum(a, 1.0), np.float64(np.inf)))[0]


def test_newton_iteration():
    a = np.array([2.0, 10.0, 1e6, 0.25])
    cf = tj.compile(newton_sqrt)
    for tol in (1e-12, 1e-3):
        np.testing.assert_allclose(cf(a, tol), newton_sqrt(a, tol), rtol=0)
    np.testing.assert_allclose(cf(a, 1e-12), np.sqrt(a), rtol=1e-12)


def test_exponential_moving_average_torch():
    torch = pytest.importorskip("torch")

    def ema(xs, alpha):
        return tj.scan(lambda m, x: (alpha * x + (1 - alpha) * m,) * 2, xs[0], xs[1:])[1]
    xs = torch.randn(50, 3, generator=torch.Generator().manual_seed(3))
    want = ema(xs, 0.1)
    got = tj.compile(ema)(xs, 0.1)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(tj.compile(ema)(xs, 0.3), ema(xs, 0.3))
