"""fuse.c's join_groups (once absorbs_previous): an elementwise group that reads the
value the group just before it stores, at its own shape, computes both in one loop (an
LSTM cell's c, then h = o * tanh(c)). Results against eager NumPy/torch; the schedule's groups counted."""
import re

import numpy as np
import pytest

import tracejit


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cells(h, c, W, steps=3):
    n = h.shape[1]
    for _ in range(steps):
        g = h @ W
        i, f, o, u = g[:, :n], g[:, n:2 * n], g[:, 2 * n:3 * n], g[:, 3 * n:]
        c = _sig(f) * c + _sig(i) * np.tanh(u)
        h = _sig(o) * np.tanh(c)
    return h, c


def _groups(text):
    return re.findall(r"^  group \d+: loop \[[^\]]*\], \d+ nodes, \d+ leaves, outs(.*)$",
                      text, re.M)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 3])
def test_lstm_like_cells_match_eager_with_c_and_h_in_one_group(dtype, batch, rng):
    n = 8
    h = rng.standard_normal((batch, n)).astype(dtype)
    c = rng.standard_normal((batch, n)).astype(dtype)
    W = (rng.standard_normal((n, 4 * n)) * 0.5).astype(dtype)
    f = tracejit.compile(_cells)
    for _ in range(2):   # a second call with other values replays the plan
        got, want = f(h, c, W), _cells(h, c, W)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == "float32" else 1e-12,
                                       atol=1e-6)
        h, c = h * 0.5 + 0.1, c - 0.2
    groups = _groups(str(f._explain_passes(h, c, W)))
    two = [g for g in groups if len(re.findall(r"->slot", g)) == 2]
    # each step but the last stores c for the next step's cell: c and h in one group
    assert len(two) >= 2, groups


def test_absorb_refused_when_the_later_group_reads_a_view_of_the_value(rng):
    """h reads c reversed (a view: other elements than the one the loop computes): the
    two groups stay apart, and the result is eager's."""
    def fn(a, b):
        c = np.exp(a) * b + a
        d = c + 1.0
        return c[::-1] * d + np.tanh(d), d[::-1] * b
    a, b = rng.standard_normal(64), rng.standard_normal(64)
    got = tracejit.compile(fn)(a, b)
    for x, y in zip(got, fn(a, b)):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_absorb_stays_within_a_guard_phase():
    """A state written in place, then read by Python (a guard's phase), per element of a
    list (torch.optim.ASGD's step/eta/mu): the group storing s1 + 1 (phase of the guard
    on it) must not absorb the one computing e1 from lr * 1e-4 (the last phase, stored
    by a group of that phase), or it reads that value before it is computed: the
    previous call's, or whatever the scratch held. Exact against eager, lr changing."""
    torch = pytest.importorskip("torch")

    def fn(s0, s1, e0, e1, lr):
        for s, e in ((s0, e0), (s1, e1)):
            s += 1
            e.copy_(lr / (1 + 1e-4 * lr * s))
            if (s - 1e6).item() > 1:
                e.mul_(2)

    f = tracejit.compile(fn)
    for k in range(4):
        args = [torch.tensor(1.0 + k), torch.tensor(2.0), torch.tensor(0.0), torch.tensor(0.0),
                torch.tensor(0.01 * (k + 1))]
        want = [a.clone() for a in args]
        f(*args)
        fn(*want)
        for a, b in zip(args, want):
            assert torch.equal(a, b), (k, args, want)
    groups = _groups(str(f._explain_passes(*args)))
    assert len(groups) >= 2


def test_fusion_order_checked():
    """fuse.c's check_order: the schedule of a program whose groups span guard phases
    reads no scratch slot before the group computing it (an InternalError otherwise);
    here, a Python read of a written value between two chains sharing a product."""
    def fn(a, b, c):
        t = a * 3.0
        a += 1.0
        b[...] = (t / (1.0 + a))[::-1]
        if float(a.sum()) > 1e9:
            b += 1.0
        c[...] = (t / (2.0 + a))[::-1]
        return a * 2.0
    f = tracejit.compile(fn)
    for k in range(3):
        args = [np.arange(4.0) + k, np.zeros(4), np.zeros(4)]
        want = [x.copy() for x in args]
        got = f(*args)
        np.testing.assert_array_equal(got, fn(*want))
        for x, y in zip(args, want):
            np.testing.assert_array_equal(x, y)
