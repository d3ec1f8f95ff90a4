"""Compiled loops read their operands in place (issue 19): an operand that is a leaf of
the outer graph holding an ndarray (an argument, a captured array, an earlier loop's
result) is read where it is, not copied by the operands' plan at every call; computed
operands, views and torch tensors still go through that plan. explain()'s loop line
says how many were read in place. Each case against eager's Python loop, forward and
(scan) reverse mode, over dtypes and layouts, replayed with other values."""
import re

import numpy as np
import pytest

import tracejit

U64 = np.random.default_rng(5).standard_normal((6, 6)) * 0.3
U32 = U64.astype(np.float32)


def _in_place(cf, *args):
    lines = [l for l in cf.explain(*args).text.splitlines() if l.startswith("-- loop ")]
    return [tuple(map(int, re.search(r"(\d+) of (\d+) operands read in place", l).groups()))
            for l in lines]


def _rnn(W, h0, xs):
    U = U32 if W.dtype == np.float32 else U64   # a captured array, read in place
    return tracejit.scan(lambda h, x: (np.tanh(W @ h + U @ x),) * 2, h0, xs)


def _eager_rnn(W, h0, xs):
    h, ys = h0, []
    U = U32 if W.dtype == np.float32 else U64
    for x in xs:
        h = np.tanh(W @ h + U @ x)
        ys.append(h)
    return h, np.stack(ys)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_arguments_and_captures_are_read_in_place(dtype, layout):
    rng = np.random.default_rng(0)
    cf = tracejit.compile(_rnn)
    for _ in range(3):   # replays with other values: what is read is the call's
        W = (rng.standard_normal((6, 6)) * 0.3).astype(dtype)
        if layout == "transposed":
            W = np.ascontiguousarray(W).T
        h0 = rng.standard_normal(6).astype(dtype)
        xs = rng.standard_normal((20, 6)).astype(dtype)
        got, want = cf(W, h0, xs), _eager_rnn(W, h0, xs)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    (place, total), = _in_place(cf, W, h0, xs)
    assert total == 4 and place == 4        # h0, xs, W, the captured U


def test_a_computed_operand_goes_through_the_operands_plan():
    def f(W, h0, xs):
        return _rnn(W * 0.5, h0 + 1.0, xs[::2])

    rng = np.random.default_rng(1)
    W, h0, xs = rng.standard_normal((6, 6)), rng.standard_normal(6), rng.standard_normal((10, 6))
    cf = tracejit.compile(f)
    for g, w in zip(cf(W, h0, xs), _eager_rnn(W * 0.5, h0 + 1.0, xs[::2])):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    (place, total), = _in_place(cf, W, h0, xs)
    assert (place, total) == (1, 4)         # only the captured U


def test_an_earlier_loops_result_is_read_in_place():
    def two(W, h0, xs):
        h, ys = _rnn(W, h0, xs)
        return _rnn(W, h, ys)

    def eager(W, h0, xs):
        h, ys = _eager_rnn(W, h0, xs)
        return _eager_rnn(W, h, ys)

    rng = np.random.default_rng(2)
    cf = tracejit.compile(two)
    for _ in range(2):
        W, h0 = rng.standard_normal((6, 6)) * 0.3, rng.standard_normal(6)
        xs = rng.standard_normal((12, 6))
        for g, w in zip(cf(W, h0, xs), eager(W, h0, xs)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert [p for p, _ in _in_place(cf, W, h0, xs)] == [4, 4]


def test_gradient_through_scan_with_operands_in_place():
    rng = np.random.default_rng(3)
    h0, xs = rng.standard_normal(6), rng.standard_normal((15, 6))

    def loss(W):
        h, ys = _rnn(W, h0, xs)
        return h.sum() + ys.sum()

    def eager_loss(W):
        h, ys = _eager_rnn(W, h0, xs)
        return h.sum() + ys.sum()

    g = tracejit.grad(loss)
    for _ in range(2):
        W = rng.standard_normal((6, 6)) * 0.3
        got = g(W)
        want = np.zeros_like(W)
        for i in np.ndindex(W.shape):
            d = np.zeros_like(W)
            d[i] = 1e-6
            want[i] = (eager_loss(W + d) - eager_loss(W - d)) / 2e-6
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_torch_operands_still_match_eager():
    torch = pytest.importorskip("torch")

    def f(W, h0, xs):
        return tracejit.scan(lambda h, x: (torch.tanh(W @ h + x),) * 2, h0, xs)

    def eager(W, h0, xs):
        h, ys = h0, []
        for x in xs:
            h = torch.tanh(W @ h + x)
            ys.append(h)
        return h, torch.stack(ys)

    g = torch.Generator().manual_seed(0)
    W, h0 = torch.randn(5, 5, generator=g) * 0.3, torch.randn(5, generator=g)
    xs = torch.randn(9, 5, generator=g)
    cf = tracejit.compile(f)
    for a, b in zip(cf(W, h0, xs), eager(W, h0, xs)):
        torch.testing.assert_close(a, b)
