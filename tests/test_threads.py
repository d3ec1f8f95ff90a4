"""Kernels split across the thread pool: the same results, bit for bit, whatever the
thread count (only loops that write disjoint memory are split, never a reduced dim)."""
import numpy as np
import pytest

import tracejit

from conftest import make_input


@pytest.fixture
def threads():
    before = tracejit.get_num_threads()
    yield
    tracejit.set_num_threads(before)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def chain(x, y):
    z = x * y + y
    return 0.5 * z * (1.0 + np.tanh(0.79788456 * (z + 0.044715 * z ** 3))) + np.exp(x)


CASES = [
    ("chain 1-D", chain, [(300_001,), (300_001,)]),
    ("chain broadcast", chain, [(513, 1031), (1031,)]),
    ("softmax rows", softmax, [(257, 1029)]),
    ("logsumexp rows", lambda x: np.log(np.exp(x).sum(axis=1)), [(3001, 100)]),
    ("column sums", lambda x: (x * x).sum(axis=0), [(1000, 300)]),
    ("total", lambda x: np.sqrt(x * x + 1.0).sum(), [(400_000,)]),
    ("argmax rows", lambda x: np.argmax(x * 2.0, axis=1), [(2000, 257)]),
    ("cumsum rows", lambda x: np.cumsum(x, axis=1), [(2000, 257)]),
    ("concatenate", lambda x, y: np.concatenate([x * 2.0, np.exp(y)], axis=0),
     [(700, 300), (500, 300)]),
    ("short rows", lambda x, b: np.tanh(x + b), [(40_000, 7), (7,)]),
    ("gather", lambda x, i: np.exp(x[i]), [(1000, 300), None]),
    ("transposed read", lambda x: np.exp(x.T) + 1.0, [(600, 700)]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_bit_identical_across_thread_counts(name, fn, shapes, dtype, rng, threads):
    args = [make_input(rng, s, dtype) if s is not None else rng.integers(0, 1000, 5000)
            for s in shapes]
    results = []
    for n in (1, 2, 3, 8):
        tracejit.set_num_threads(n)
        f = tracejit.compile(fn)
        results.append(f(*args))
    expect = fn(*args)
    for r in results:
        assert r.dtype == expect.dtype and r.shape == expect.shape
        np.testing.assert_array_equal(r, results[0])
    rtol = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(results[0], expect, rtol=rtol, atol=rtol)


def test_set_num_threads_errors(threads):
    with pytest.raises(ValueError, match="expected 1 to 256 threads, got 0"):
        tracejit.set_num_threads(0)
    with pytest.raises(TypeError):
        tracejit.set_num_threads("2")
    tracejit.set_num_threads(3)
    assert tracejit.get_num_threads() == 3


def test_python_threads_share_the_pool(threads):
    """Python threads running large kernels at once: one gets the pool, the others run
    their loops alone; all get the right answer."""
    import threading
    tracejit.set_num_threads(2)
    f = tracejit.compile(chain)
    rng = np.random.default_rng(1)
    xs = [rng.random(200_000) for _ in range(4)]
    expect = [chain(x, x) for x in xs]
    errors = []

    def work(k):
        for _ in range(20):
            try:
                np.testing.assert_allclose(f(xs[k], xs[k]), expect[k], rtol=1e-12)
            except AssertionError as e:   # pragma: no cover - reported below
                errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
