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
