"""Threads: many Python threads call the same and different compiled functions at
once, with retraces, evictions and cache_clear racing the calls, and all get
NumPy's answers; large kernels run without the GIL; an array another thread lets
go of while a kernel reads it stays valid (tracejit holds it for the call)."""
import threading
import time

import numpy as np
import pytest

import tracejit
from conftest import assert_matches_numpy

N_THREADS = 8


def _run_threads(target, n=N_THREADS):
    errors, barrier = [], threading.Barrier(n)

    def wrapped(k):
        try:
            barrier.wait()
            target(k)
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(f"thread {k}: {type(e).__name__}: {e}")
    ts = [threading.Thread(target=wrapped, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "a thread hung"
    assert not errors, "\n".join(errors[:5])


def _ref(a, b, s):
    return np.tanh(a * s) + b.sum(axis=-1, keepdims=True), (a.T @ b).max(axis=0)


def test_same_function_many_threads_with_retraces():
    """One function, 8 threads, each its own shapes, dtypes and layouts (so variants
    are compiled concurrently and evicted past 64), some kernels big enough to run
    without the GIL."""
    f = tracejit.compile(_ref)

    def work(k):
        rng = np.random.default_rng(k)
        for i in range(40):
            n = int(rng.integers(1, 6)) * (2000 if i % 5 == 0 else 3)
            dt = (np.float64, np.float32)[(k + i) % 2]
            a = rng.standard_normal((n, 8)).astype(dt)
            b = rng.standard_normal((n, 8)).astype(dt)
            if i % 3 == 0:
                a = np.asfortranarray(a)
            s = float(rng.uniform(-2, 2))
            got, want = f(a, b, s), _ref(a, b, s)
            assert_matches_numpy(got[0], want[0], exact=False)
            # a contraction of n (up to 10000) rows: the BLAS tracejit calls (torch's MKL
            # once a torch test ran) sums in another order than NumPy's OpenBLAS
            # (bounded by the sums' scale: a max of columns can be a cancelled one)
            tol = 3e-5 if dt == np.float32 else 1e-12
            assert_matches_numpy(got[1], want[1], exact=False, rtol=tol,
                                 atol=tol * float(np.abs(want[1]).max()))
    _run_threads(work)
    assert f.cache_info().hits + f.cache_info().misses == N_THREADS * 40


def test_different_functions_many_threads():
    fns = [(lambda a, k=k: np.exp(-a * k) * a + k) for k in range(N_THREADS)]
    compiled = [tracejit.compile(fn) for fn in fns]
    x = np.linspace(-1, 1, 50_000)

    def work(k):
        for i in range(30):
            j = (k + i) % N_THREADS      # every thread calls every function
            assert_matches_numpy(compiled[j](x[: 1000 + j]), fns[j](x[: 1000 + j]), exact=False)
    _run_threads(work)


def test_cache_clear_and_eviction_racing_calls():
    """One thread clears the cache in a loop while others replay, retrace and evict;
    plans dropped while another thread runs them live until that run ends."""
    f = tracejit.compile(lambda a, b: np.sqrt(np.abs(a)) * b - a.mean())
    stop = threading.Event()

    def clearer():
        while not stop.is_set():
            f.cache_clear()
            time.sleep(0.0005)
    c = threading.Thread(target=clearer)
    c.start()
    try:
        def work(k):
            rng = np.random.default_rng(100 + k)
            for i in range(60):
                n = 1 + (k * 60 + i) % 90        # 90 shapes: evictions too
                big = 5_000 if i % 7 == 0 else 1
                a, b = rng.standard_normal(n * big), rng.standard_normal(n * big)
                assert_matches_numpy(f(a, b), np.sqrt(np.abs(a)) * b - a.mean(), exact=False)
        _run_threads(work)
    finally:
        stop.set()
        c.join()


class _SlowEq:
    """A static argument whose __eq__ lets other threads run (time.sleep releases the
    GIL) while the cache is being searched."""

    def __init__(self, v):
        self.v = v

    def __hash__(self):
        return hash(self.v)

    def __eq__(self, other):
        time.sleep(0)
        return isinstance(other, _SlowEq) and self.v == other.v


def test_static_eq_running_python_while_cache_changes():
    """Comparing a static argument runs Python; another thread may then clear or evict
    the very plan being compared. The search holds the plan and starts over when it
    was dropped (before the fix it followed a freed plan's next pointer)."""
    f = tracejit.compile(lambda a, s: a * s.v, static_argnames=("s",))
    x = np.arange(5.0)
    stop = threading.Event()

    def clearer():
        while not stop.is_set():
            f.cache_clear()
            time.sleep(0)
    c = threading.Thread(target=clearer)
    c.start()
    try:
        def work(k):
            for i in range(150):
                v = (k + i) % 5
                assert_matches_numpy(f(x, s=_SlowEq(v)), x * v)
        _run_threads(work, 6)
    finally:
        stop.set()
        c.join()


def test_kernels_run_without_the_gil():
    """While one thread runs a large kernel (tens of ms), another thread's Python code
    runs: it records timestamps strictly inside the kernel call. With the GIL held
    for the whole kernel it could not (the switch interval is 5 ms)."""
    f = tracejit.compile(lambda a: np.tanh(np.exp(-a * a)) * np.sqrt(np.abs(a)) + np.cos(a))
    x = np.random.default_rng(0).standard_normal(4_000_000)
    f(x)                                                 # compile outside the timing
    stamps, stop, started = [], threading.Event(), threading.Event()

    def ticker():
        started.set()
        while not stop.is_set():
            stamps.append(time.perf_counter())
    t = threading.Thread(target=ticker)
    t.start()
    started.wait()
    try:
        inside = 0
        for _ in range(3):
            t0 = time.perf_counter()
            f(x)
            t1 = time.perf_counter()
            margin = 0.2 * (t1 - t0)
            inside = max(inside, sum(t0 + margin < s < t1 - margin for s in stamps[-200_000:]))
            if inside > 10:
                break
    finally:
        stop.set()
        t.join()
    assert inside > 10, f"another thread ran {inside} times during the kernel"


def test_array_dropped_by_another_thread_during_a_kernel():
    """The documented guarantee: a call holds a reference to every argument and
    captured array until it returns, so another thread dropping (or rebinding) its
    own reference while the kernel runs is harmless; resizing memory a running
    kernel reads is refused by Python (BufferError) rather than freed under it."""
    g = {"a": np.random.default_rng(1).standard_normal(3_000_000)}
    want = np.sin(g["a"]) * 2.0 + 1.0
    f = tracejit.compile(lambda a: np.sin(a) * 2.0 + 1.0)
    f(g["a"][:10])
    buf = bytearray(g["a"].tobytes())
    view = np.frombuffer(buf, dtype=np.float64)
    results, errors = [], []

    def call():
        results.append(f(view))
        results.append(f(g.pop("a")))     # our reference is gone while the kernel runs

    def meddle():
        for _ in range(200):
            try:
                buf.extend(b"\0" * 8)      # would reallocate the memory view reads
                errors.append("resized")
            except BufferError:
                pass
    t1, t2 = threading.Thread(target=call), threading.Thread(target=meddle)
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    assert not errors
    for r in results:
        assert_matches_numpy(r, want, exact=False)


def test_compile_in_many_threads_at_once():
    """Fresh functions compiled concurrently by 8 threads (libtcc is called under one
    lock; tracing runs Python, so threads interleave inside traces)."""
    x = np.linspace(0, 1, 33)

    def work(k):
        for i in range(25):
            c = float(k * 100 + i)
            f = tracejit.compile(lambda a: (a + c).sum() * a - c)
            assert_matches_numpy(f(x), (x + c).sum() * x - c, exact=False)
    _run_threads(work)


@pytest.mark.parametrize("n_threads", [2, 16])
def test_results_are_independent_arrays_across_threads(n_threads):
    f = tracejit.compile(lambda a: a * 2)
    x = np.arange(10.0)
    outs = []

    def work(k):
        for _ in range(100):
            outs.append(f(x))
    _run_threads(work, n_threads)
    assert len({id(o) for o in outs}) == len(outs) or all(o.flags.owndata for o in outs)
    for o in outs:
        np.testing.assert_array_equal(o, x * 2)
