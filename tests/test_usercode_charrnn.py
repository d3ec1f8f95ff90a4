"""A user's NumPy program as users write it: a character-level vanilla RNN trained with
Adagrad (the classic minimal char-rnn pattern: dicts of per-step arrays, one-hot rows
written with a traced index, gradients accumulated into np.zeros_like arrays with +=,
clipped in place with np.clip(..., out=), parameters and Adagrad memories updated in
place in a dict read from a global). Compiled and eager runs start from the same
parameters and must agree step for step; each step passes other integer inputs."""
import copy

import numpy as np
import pytest

import tracejit

CORPUS = "a tiny corpus, for a tiny recurrent network to learn. " * 8
CHARS = sorted(set(CORPUS))
V, H, T = len(CHARS), 16, 8
IX = {c: i for i, c in enumerate(CHARS)}
rng = np.random.RandomState(3)
P = {"Wxh": rng.randn(H, V) * 0.01, "Whh": rng.randn(H, H) * 0.01, "Why": rng.randn(V, H) * 0.01,
     "bh": np.zeros((H, 1)), "by": np.zeros((V, 1))}
M = {k: np.zeros_like(v) for k, v in P.items()}
NAMES = ["Wxh", "Whh", "Why", "bh", "by"]


def loss_fun(inputs, targets, hprev):
    Wxh, Whh, Why, bh, by = (P[k] for k in NAMES)
    xs, hs, ps = {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((V, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        y = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(y) / np.sum(np.exp(y))
        loss += -np.log(ps[t][targets[t], 0])
    grads = [np.zeros_like(P[k]) for k in NAMES]
    dWxh, dWhh, dWhy, dbh, dby = grads
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for d in grads:
        np.clip(d, -5, 5, out=d)
    return loss, grads, hs[len(inputs) - 1]


def adagrad(grads, lr=0.1):
    for k, d in zip(NAMES, grads):
        M[k] += d * d
        P[k] += -lr * d / np.sqrt(M[k] + 1e-8)


def train(loss, update, steps):
    h, p, losses = np.zeros((H, 1)), 0, []
    for _ in range(steps):
        if p + T + 1 >= len(CORPUS):
            p, h = 0, np.zeros((H, 1))
        inputs = [IX[c] for c in CORPUS[p:p + T]]
        targets = [IX[c] for c in CORPUS[p + 1:p + T + 1]]
        value, grads, h = loss(inputs, targets, h)
        update(grads)
        losses.append(float(value))
        p += T
    return np.array(losses)


def test_char_rnn_trains_as_eager():
    start_p, start_m = copy.deepcopy(P), copy.deepcopy(M)
    eager = train(loss_fun, adagrad, 12)
    eager_p = copy.deepcopy(P)
    for d, s in ((P, start_p), (M, start_m)):
        for k in d:
            d[k][...] = s[k]   # in place: the same arrays the compiled functions read
    loss_c, adagrad_c = tracejit.compile(loss_fun), tracejit.compile(adagrad)
    compiled = train(loss_c, adagrad_c, 12)
    np.testing.assert_allclose(compiled, eager, rtol=1e-10)
    for k in P:
        np.testing.assert_allclose(P[k], eager_p[k], rtol=1e-9, atol=1e-12)
    assert loss_c.cache_info().variants == 1 and adagrad_c.cache_info().variants == 1
    assert compiled[-1] < compiled[0]


@pytest.mark.parametrize("out_dtype", ["float64", "float32"])
def test_clip_into_out(out_dtype):
    def f(x, o):
        r = np.clip(x, -1, 1, out=o)
        return o * 2, r is o

    x = np.linspace(-3, 3, 7)
    for scale in (1.0, 0.25):   # a second call with other values
        want_o, got_o = np.zeros(7, out_dtype), np.zeros(7, out_dtype)
        want = f(x * scale, want_o)
        got = tracejit.compile(f)(x * scale, got_o)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got_o, want_o)
        assert got[1] is True and want[1] is True


def test_clip_into_out_casting_error_is_numpys():
    def f(x, o):
        np.clip(x, -1, 1, out=o)
        return o

    x, o = np.linspace(-3, 3, 7), np.zeros(7, np.int64)
    with pytest.raises(TypeError, match="Cannot cast ufunc 'clip' output"):
        f(x, o)
    with pytest.raises(TypeError, match=r"numpy.clip\(..., out=...\): Cannot cast ufunc output "
                                        r"from dtype\('float64'\) to dtype\('int64'\)"):
        tracejit.compile(f)(x, o)
    assert not o.any()
