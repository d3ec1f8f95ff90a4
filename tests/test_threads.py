"""Kernels split across the thread pool: the same results, bit for bit, whatever the
thread count (only loops that write disjoint memory are split, never a reduced dim)."""
import numpy as np
import pytest

import tracejit

from conftest import make_input, run_python


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
    ("total of a transposed read", lambda x: (x.T * 2.0).sum(), [(700, 900)]),
    ("max and min", lambda x: (np.max(np.exp(x)), np.min(x * 3.0)), [(333_333,)]),
    ("mean, var, std", lambda x: (x.mean(), x.var(), x.std(axis=0)), [(2001, 301)]),
    ("column max", lambda x: np.max(x - 1.0, axis=0), [(3000, 40)]),
    ("product", lambda x: np.prod((1.0 + x * 1e-6).astype(np.float64)), [(500_000,)]),
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
    if not isinstance(expect, tuple):
        results, expect = [(r,) for r in results], (expect,)
    rtol = 2e-5 if dtype == "float32" else 1e-12
    for k, want in enumerate(expect):
        for r in results:
            assert r[k].dtype == want.dtype and r[k].shape == want.shape
            np.testing.assert_array_equal(r[k], results[0][k])
        np.testing.assert_allclose(results[0][k], want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_reductions_split_exactly(dtype, rng, threads):
    x = make_input(rng, (1_000_003,), dtype)
    fn = lambda x: (x.sum(), x.max(), np.min(x, axis=0))  # noqa: E731
    for n in (1, 2, 5):
        tracejit.set_num_threads(n)
        for got, want in zip(tracejit.compile(fn)(x), fn(x)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_nan_propagates_through_split_reductions(rng, threads):
    x = make_input(rng, (800_000,), "float64")
    x[654_321] = np.nan
    tracejit.set_num_threads(2)
    f = tracejit.compile(lambda x: (x.max(), x.min(), x.sum(), np.max(x.reshape(800, 1000), 0)))
    mx, mn, sm, cols = f(x)
    assert np.isnan(mx) and np.isnan(mn) and np.isnan(sm)
    np.testing.assert_array_equal(cols, np.max(x.reshape(800, 1000), 0))


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


_BLAS_THREADS = r"""
import ctypes, glob, json, os, sys
import numpy as np
import tracejit
libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
get = None
for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
    lib = ctypes.CDLL(path)
    for sym in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads"):
        if hasattr(lib, sym):
            get = getattr(lib, sym)
if get is None:
    print(json.dumps(None)); sys.exit()
seen = [get()]
for n in map(int, sys.argv[1:] or ["1", "2", "1"]):
    tracejit.set_num_threads(n)
    seen.append([tracejit.get_num_threads(), get()])
a = np.ones((300, 300), np.float32)   # a product through BLAS with its new threads
seen.append(bool((tracejit.compile(lambda a: a @ a)(a) == 300).all()))
print(json.dumps(seen))
"""


def test_set_num_threads_governs_numpys_blas():
    # one thread budget (issue 18): tracejit's pool and the OpenBLAS NumPy ships (which
    # tracejit's products call) follow set_num_threads together; without it, BLAS's own
    # threads fought the pool for the cores (the quickstart MLP at batch 32: 6.6-24 ms
    # with OpenBLAS's default threads against 1.76 ms with one)
    rc, seen, out, err = run_python(_BLAS_THREADS)
    assert rc == 0, err[-3000:]
    if seen is None:
        pytest.skip("NumPy's BLAS is not a bundled OpenBLAS")
    assert seen[1:] == [[1, 1], [2, 2], [1, 1], True]


def test_env_threads_govern_blas_from_import():
    rc, seen, out, err = run_python(_BLAS_THREADS.replace('sys.argv[1:] or ["1", "2", "1"]', "[]"),
                                    env_extra={"TRACEJIT_NUM_THREADS": "1",
                                               "OPENBLAS_NUM_THREADS": "2"})
    assert rc == 0, err[-3000:]
    if seen is None:
        pytest.skip("NumPy's BLAS is not a bundled OpenBLAS")
    assert seen == [1, True]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batched_products_bit_identical_across_thread_counts(dtype, rng, threads):
    # a batched product's GEMM calls may be split across the pool (one call per batch
    # element, each writing its own part of the result): the same bits for any count
    a = make_input(rng, (16, 6, 40, 24), dtype)
    b = make_input(rng, (16, 6, 24, 40), dtype)
    outs = []
    for n in (1, 2, 3):
        tracejit.set_num_threads(n)
        outs.append(tracejit.compile(lambda a, b: a @ b)(a, b))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    np.testing.assert_allclose(outs[0], a @ b, rtol=1e-4 if dtype == "float32" else 1e-12)


_MKL = r"""
import json, sys
import numpy as np
import tracejit
from tracejit import _C
torch = __import__("torch")
torch.set_num_threads(1)
first = _C._blas()[0]
layer = torch.nn.Linear(6, 5)
tracejit.compile(layer)(torch.ones(3, 6))      # the first torch call loads torch's MKL
seen = {"before": first, "after": list(_C._blas())}
tracejit.set_num_threads(2)
seen["threads"] = _C._blas()[1]
rng = np.random.default_rng(0)
errs = []
# every layout the GEMM entry passes to BLAS: a, b plain or transposed, the result
# stored transposed, matrix-vector products on either side, both float types
for dt, tol in (("float32", 1e-5), ("float64", 1e-12)):
    for M, K, N in ((2, 3, 2), (40, 70, 50), (300, 64, 9), (1, 500, 300), (300, 500, 1), (8, 784, 512)):
        a = rng.standard_normal((M, K)).astype(dt)
        b = rng.standard_normal((K, N)).astype(dt)
        fns = {"ab": (lambda a, b: a @ b, (a, b), a @ b),
               "aT": (lambda a, b: a.T @ b, (np.ascontiguousarray(a.T), b), a @ b),
               "bT": (lambda a, b: a @ b.T, (a, np.ascontiguousarray(b.T)), a @ b),
               "outT": (lambda a, b: (a @ b).T, (a, b), (a @ b).T)}
        for name, (fn, args, want) in fns.items():
            got = tracejit.compile(fn)(*args)
            scale = np.abs(a).max() * np.abs(b).max() * K
            errs.append([dt, M, K, N, name, float(np.abs(got - want).max() / scale), tol])
seen["errs"] = [e for e in errs if not e[5] <= e[6]]
print(json.dumps(seen))
"""


def test_torch_products_run_on_torchs_mkl_with_the_thread_budget():
    # issue 18: once torch is in use, products call the MKL inside libtorch_cpu (what
    # torch's own Linear runs on: 1.7-2.8x faster than NumPy's OpenBLAS at the
    # quickstart MLP's batch 8-32), with tracejit's thread budget; every layout agrees
    pytest.importorskip("torch")
    rc, seen, out, err = run_python(_MKL, env_extra={"TRACEJIT_NUM_THREADS": "1"})
    assert rc == 0, err[-3000:]
    if seen["after"][0] != "mkl":
        pytest.skip("this torch build has no MKL inside libtorch_cpu")
    assert seen["before"] in ("openblas", None)
    assert seen["after"] == ["mkl", 1] and seen["threads"] == 2
    assert seen["errs"] == []


def test_mkl_can_be_switched_off():
    pytest.importorskip("torch")
    rc, seen, out, err = run_python(_MKL, env_extra={"TRACEJIT_MKL": "0"})
    assert rc == 0, err[-3000:]
    assert seen["after"][0] == seen["before"] and seen["errs"] == []
