"""The backward of a compiled loop (python/tracejit/_loops.py backward, _loops_hoist.py):
only the cotangents the differentiated result needs are computed, the step's rules read
the values the forward stored (its carries and ys), and an outer value's
cotangent that is a sum of products of smaller step values (W's in `W @ h`) is one
contraction after the reverse loop instead of a sum in its carry. Against finite
differences (float64), torch autograd of the eager loop (float32), and the carries the
reverse loop keeps (explain())."""
import re

import numpy as np
import pytest

import tracejit as tj
from test_loops import _fd  # central differences, as test_loops checks its gradients


def _backward_loop(cf, *args):
    """(carries, ys) of the last compiled loop explain() names (the reverse loop)."""
    lines = [l for l in cf.explain(*args).text.splitlines() if l.startswith("-- loop ")]
    m = re.search(r"(\d+) carries, (\d+) ys", lines[-1])
    return int(m.group(1)), int(m.group(2))


def _eager_scan(f, init, xs):
    c, ys = init, []
    for x in xs:
        c, y = f(c, x)
        ys.append(y)
    return c, np.stack(ys)


def _rng_args(T, H, I, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((H, H)) * 0.3, rng.standard_normal((H, I)) * 0.3,
            rng.standard_normal(H) * 0.1, rng.standard_normal(H) * 0.1,
            rng.standard_normal((T, I)))


@pytest.mark.parametrize("T,H,I", [(7, 4, 3), (12, 5, 5), (3, 1, 2)])
def test_rnn_gradients_of_every_operand_match_finite_differences(T, H, I):
    W, U, b, h0, xs = _rng_args(T, H, I)

    def make(scan):
        def loss(W, U, b, h0, xs):
            h, ys = scan(lambda h, x: (np.tanh(W @ h + U @ x + b),) * 2, h0, xs)
            return (h * h).sum() + (ys * np.arange(1.0, H + 1)).sum()
        return loss
    loss, eager = make(tj.scan), make(_eager_scan)
    args = [W, U, b, h0, xs]
    got = tj.grad(loss, argnums=(0, 1, 2, 3, 4))(*args)
    for k, g in enumerate(got):
        def fk(v, k=k):
            a = list(args)
            a[k] = v
            return eager(*a)
        np.testing.assert_allclose(g, _fd(fk, args[k]), rtol=1e-6, atol=1e-8)


def test_weight_cotangent_leaves_the_carry():
    """d/dW alone: the reverse loop carries only dh; W's outer product is hoisted (its
    two factors are the ys); U's and the xs' cotangents are not computed."""
    W, U, b, h0, xs = _rng_args(30, 6, 4)

    def loss(W):
        h, ys = tj.scan(lambda h, x: (np.tanh(W @ h + U @ x + b),) * 2, h0, xs)
        return h.sum() + ys.sum()
    cf = tj.compile(tj.grad(loss))
    eager = lambda W: sum(_eager_scan(lambda h, x: (np.tanh(W @ h + U @ x + b),) * 2,
                                      h0, xs)[k].sum() for k in (0, 1))
    np.testing.assert_allclose(cf(W), _fd(eager, W), rtol=1e-6, atol=1e-8)
    assert _backward_loop(cf, W) == (1, 2)
    # tanh's rule reads the carry the forward stored, so the step's recomputation (W @ h
    # + U @ x) is dead: the reverse body has no more groups than the forward's (it had
    # its two products again, and more)
    groups = [int(re.search(r"body of (\d+) groups", l).group(1))
              for l in cf.explain(W).text.splitlines() if l.startswith("-- loop ")]
    assert groups[1] <= groups[0], groups
    # a second call with other values replays the same plan and stays right
    W2 = W * 0.5
    np.testing.assert_allclose(cf(W2), _fd(eager, W2), rtol=1e-6, atol=1e-8)


def test_weight_used_twice_transposed_and_with_an_outer_vector():
    """W's step cotangent is a sum of three products: g h^T (W @ h), h g^T (h @ W: a
    transposed view) and g v^T with v a value outside the loop (stacked too)."""
    rng = np.random.default_rng(1)
    W, v, h0 = rng.standard_normal((5, 5)) * 0.2, rng.standard_normal(5), rng.standard_normal(5)
    xs = rng.standard_normal((9, 5))

    def cell(W):
        return lambda h, x: (np.tanh(W @ h + h @ W + W @ v * x),) * 2

    def loss(W):
        h, ys = tj.scan(cell(W), h0, xs)
        return (ys ** 2).sum() + h.sum()

    def eager(W):
        h, ys = _eager_scan(cell(W), h0, xs)
        return (ys ** 2).sum() + h.sum()
    cf = tj.compile(tj.grad(loss))
    np.testing.assert_allclose(cf(W), _fd(eager, W), rtol=1e-6, atol=1e-8)
    assert _backward_loop(cf, W)[0] == 1


def test_batched_carry_and_elementwise_weight_stay_in_the_carry():
    """(B, H) @ W.T sums over the batch inside the step (no hoisted product) and a
    vector scale's cotangent is no smaller than its factors: both stay in the carry,
    right."""
    rng = np.random.default_rng(2)
    W, s = rng.standard_normal((4, 4)) * 0.3, rng.standard_normal(4)
    H0, xs = rng.standard_normal((3, 4)), rng.standard_normal((6, 3, 4))

    def cell(W, s):
        return lambda h, x: (np.tanh(h @ W.T * s + x),) * 2

    def loss(W, s):
        h, ys = tj.scan(cell(W, s), H0, xs)
        return h.sum() + (ys * ys).sum()

    def eager(W, s):
        h, ys = _eager_scan(cell(W, s), H0, xs)
        return h.sum() + (ys * ys).sum()
    gW, gs = tj.grad(loss, argnums=(0, 1))(W, s)
    np.testing.assert_allclose(gW, _fd(lambda W: eager(W, s), W), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gs, _fd(lambda s: eager(W, s), s), rtol=1e-6, atol=1e-8)
    cf = tj.compile(tj.grad(loss, argnums=(0, 1)))
    assert _backward_loop(cf, W, s)[0] == 3   # dh, dW, ds


def test_reverse_scan_and_fori_loop_hoist():
    rng = np.random.default_rng(3)
    W, h0, xs = rng.standard_normal((4, 4)) * 0.4, rng.standard_normal(4), rng.standard_normal((8, 4))

    def loss(W):
        h, ys = tj.scan(lambda h, x: (np.sin(W @ h) + x, h), h0, xs, reverse=True)
        k = tj.fori_loop(0, 5, lambda i, c: np.tanh(W @ c) * 0.9, h)
        return k.sum() + (ys ** 2).sum()

    def eager(W):
        h, ys = h0, [None] * len(xs)
        for t in reversed(range(len(xs))):
            ys[t], h = h, np.sin(W @ h) + xs[t]
        k = h
        for i in range(5):
            k = np.tanh(W @ k) * 0.9
        return k.sum() + (np.stack(ys) ** 2).sum()
    np.testing.assert_allclose(tj.grad(loss)(W), _fd(eager, W), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_rnn_gradient_matches_autograd(dtype):
    torch = pytest.importorskip("torch")
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(4)
    W, U = torch.randn(6, 6, generator=g, dtype=dt) * 0.3, torch.randn(6, 3, generator=g, dtype=dt) * 0.3
    xs, h0 = torch.randn(11, 3, generator=g, dtype=dt), torch.randn(6, generator=g, dtype=dt)

    def step(W, U):
        return lambda h, x: (torch.tanh(W @ h + U @ x),) * 2

    def loss(W, U):
        h, ys = tj.scan(step(W, U), h0, xs)
        return h.sum() + (ys * ys).sum()
    got = tj.grad(loss, argnums=(0, 1))(W, U)
    We, Ue = W.clone().requires_grad_(), U.clone().requires_grad_()
    h, ys = h0, []
    for x in xs:
        h, y = step(We, Ue)(h, x)
        ys.append(y)
    (h.sum() + (torch.stack(ys) ** 2).sum()).backward()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[0], We.grad, **tol)
    torch.testing.assert_close(got[1], Ue.grad, **tol)
    assert _backward_loop(tj.compile(tj.grad(lambda W: loss(W, U))), W) == (1, 2)


def test_stacked_factors_past_the_limit_stay_in_the_carry(monkeypatch):
    """The stacked factors take at most _loops_hoist.STACK_LIMIT bytes; past it the
    cotangent is summed in the carry (as before), still right."""
    from tracejit import _loops_hoist
    monkeypatch.setattr(_loops_hoist, "STACK_LIMIT", 8 * 30 * 12)   # 30 steps, 12 a step
    W, U, b, h0, xs = _rng_args(30, 6, 4)

    def loss(W, U):
        h, ys = tj.scan(lambda h, x: (np.tanh(W @ h + U @ x + b),) * 2, h0, xs)
        return h.sum() + ys.sum()

    def eager(W, U):
        h, ys = _eager_scan(lambda h, x: (np.tanh(W @ h + U @ x + b),) * 2, h0, xs)
        return h.sum() + ys.sum()
    cf = tj.compile(tj.grad(loss, argnums=(0, 1)))
    gW, gU = cf(W, U)
    np.testing.assert_allclose(gW, _fd(lambda W: eager(W, U), W), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gU, _fd(lambda U: eager(W, U), U), rtol=1e-6, atol=1e-8)
    # W's outer product (6 + 6 values a step) is hoisted within the budget of 12; U's
    # (6 + 4) no longer fits: dh and dU carried, W's two factors the ys
    assert _backward_loop(cf, W, U) == (2, 2)


_TERMS = [
    lambda W, v, h, x: W @ h,
    lambda W, v, h, x: h @ W,
    lambda W, v, h, x: W.T @ (h * x),
    lambda W, v, h, x: W @ v * h,
    lambda W, v, h, x: np.sin(W[0] * h) + v,
    lambda W, v, h, x: (W * W) @ x,
    lambda W, v, h, x: np.outer(h, x) @ v,
    lambda W, v, h, x: W.sum(0) * v * x,
]


@pytest.mark.parametrize("seed", range(16))
def test_random_cells_gradients_match_finite_differences(seed):
    """Random sums of the patterns above (plain and transposed products, an outer vector,
    a weight used elementwise, indexed and squared) in scans forward and reverse: every
    operand's gradient against central differences of the eager loop."""
    rng = np.random.default_rng(100 + seed)
    H, T = int(rng.integers(1, 5)), int(rng.integers(2, 7))
    picks = rng.choice(len(_TERMS), size=int(rng.integers(1, 4)), replace=False)
    reverse = bool(rng.integers(2))
    W, v = rng.standard_normal((H, H)) * 0.4, rng.standard_normal(H) * 0.5
    h0, xs = rng.standard_normal(H) * 0.5, rng.standard_normal((T, H))
    scale = rng.standard_normal(H)

    def cell(W, v):
        return lambda h, x: (np.tanh(sum(_TERMS[k](W, v, h, x) for k in picks) + x),) * 2

    def loss(W, v, h0, xs):
        h, ys = tj.scan(cell(W, v), h0, xs, reverse=reverse)
        return (h * h).sum() + (ys * scale).sum()

    def eager(W, v, h0, xs):
        h, ys = h0, [None] * T
        for t in (reversed(range(T)) if reverse else range(T)):
            h, ys[t] = cell(W, v)(h, xs[t])
        return (h * h).sum() + (np.stack(ys) * scale).sum()
    args = [W, v, h0, xs]
    got = tj.grad(loss, argnums=(0, 1, 2, 3))(*args)
    for k, g in enumerate(got):
        def fk(a, k=k):
            b = list(args)
            b[k] = a
            return eager(*b)
        np.testing.assert_allclose(g, _fd(fk, args[k]), rtol=1e-5, atol=1e-7,
                                   err_msg=f"operand {k}, terms {list(picks)}, reverse {reverse}")


def test_lstm_cell_gates_sliced_from_one_product():
    """An LSTM step as written by hand (one product for the four gates, sliced): both
    weight matrices' cotangents leave the carry (dh, dc, db carried), gradients right."""
    rng = np.random.default_rng(5)
    H, I, T = 5, 3, 9
    Wih, Whh = rng.standard_normal((4 * H, I)) * 0.3, rng.standard_normal((4 * H, H)) * 0.3
    b, xs = rng.standard_normal(4 * H) * 0.1, rng.standard_normal((T, I))

    def sig(z):
        return 1 / (1 + np.exp(-z))

    def cell(Wih, Whh, b):
        def f(c, x):
            h, cc = c
            z = Wih @ x + Whh @ h + b
            i, fg, g, o = sig(z[:H]), sig(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), sig(z[3 * H:])
            cc = fg * cc + i * g
            h = o * np.tanh(cc)
            return (h, cc), h
        return f

    def loss(scan):
        def f(Wih, Whh, b):
            (h, c), ys = scan(cell(Wih, Whh, b), (np.zeros(H), np.zeros(H)), xs)
            return (ys ** 2).sum() + c.sum()
        return f
    args = [Wih, Whh, b]
    cf = tj.compile(tj.grad(loss(tj.scan), argnums=(0, 1, 2)))
    for k, g in enumerate(cf(*args)):
        def fk(a, k=k):
            a_ = list(args)
            a_[k] = a
            return loss(_eager_scan)(*a_)
        np.testing.assert_allclose(g, _fd(fk, args[k]), rtol=1e-6, atol=1e-8)
    assert _backward_loop(cf, *args) == (3, 4)
