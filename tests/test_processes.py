"""Processes: compiled functions survive os.fork (the child replays the parent's
variants and compiles new ones; libtcc's lock is taken around fork), run in
multiprocessing pools of every start method, and pickle by reference."""
import multiprocessing as mp
import os
import pickle
import sys
import threading
import warnings

import numpy as np
import pytest

import tracejit
from conftest import assert_matches_numpy

import _mp_funcs as m

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _fork(child):
    """Runs child() in a forked process; its exit status is 0 when it returned True."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # fork with threads (3.12)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if child() else 3
        except BaseException:   # noqa: BLE001 - reported as the exit status
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_fork_child_replays_and_compiles():
    f = tracejit.compile(lambda a, s: np.exp(-a * s) + a.mean())
    x = np.linspace(-2, 2, 1000)
    want = np.exp(-x * 0.5) + x.mean()
    assert_matches_numpy(f(x, 0.5), want, exact=False)

    def child():
        ok = np.allclose(f(x, 0.5), want, rtol=1e-12) and f.cache_info().misses == 1
        ok &= np.allclose(f(x[:10], 2.0), np.exp(-x[:10] * 2.0) + x[:10].mean())   # compiles
        g = tracejit.compile(lambda a: a @ a.T)
        ok &= np.allclose(g(x.reshape(10, 100)), x.reshape(10, 100) @ x.reshape(10, 100).T)
        return ok and f.cache_info().variants == 2
    assert _fork(child) == 0
    assert f.cache_info().variants == 1     # the parent's cache is its own
    assert_matches_numpy(f(x, 0.5), want, exact=False)


def test_fork_while_other_threads_compile_and_run():
    """Forks while other threads compile (libtcc under its lock) and run kernels
    without the GIL: the child compiles and runs normally (no lock held by a thread
    that does not exist in it)."""
    stop = threading.Event()
    x = np.linspace(0, 1, 100_000)

    def busy(k):
        i = 0
        while not stop.is_set():
            i += 1
            tracejit.compile(lambda a: a * (k + i) + 1.0)(x[: 50 + i % 7])
            tracejit.compile(lambda a: np.sin(a) * 2.0)(x)
    ts = [threading.Thread(target=busy, args=(k,)) for k in range(3)]
    for t in ts:
        t.start()
    try:
        for rep in range(5):
            def child():
                h = tracejit.compile(lambda a: np.cos(a) + rep)
                return np.allclose(h(x), np.cos(x) + rep)
            assert _fork(child) == 0
    finally:
        stop.set()
        for t in ts:
            t.join()


def test_pickle_by_reference():
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        for fn in (m.scaled_tanh, m.plain_compiled, m.Holder.method):
            data = pickle.dumps(fn, protocol=proto)
            assert len(data) < 300, "pickled by value?"
            back = pickle.loads(data)
            assert back is fn or (back.__wrapped__ is fn.__wrapped__ and
                                  pickle.loads(data) is back)
    assert pickle.loads(pickle.dumps(m.scaled_tanh)) is m.scaled_tanh


def test_pickle_refuses_what_cannot_be_referenced():
    f = tracejit.compile(lambda a: a + 1)
    with pytest.raises((pickle.PicklingError, AttributeError), match="lambda"):
        pickle.dumps(f)

    def local(a):
        return a
    with pytest.raises((pickle.PicklingError, AttributeError), match="local"):
        pickle.dumps(tracejit.compile(local))


def _check_pool_results(results, xs):
    for (r1, r2, r3, misses), (x, s) in zip(results, xs):
        assert_matches_numpy(r1, np.tanh(x * s) + x.sum(), exact=False)
        assert_matches_numpy(r2, x * 3 + 1.0)
        assert_matches_numpy(r3, x[::-1] * 2.0)
        assert misses >= 1


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_pool(method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"no {method} start method")
    xs = [(np.linspace(0, 1, 10 + k), 0.5 * k) for k in range(8)]
    m.scaled_tanh(xs[0][0], 1.0)            # the parent compiled before forking
    ctx = mp.get_context(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with ctx.Pool(2) as pool:
            results = pool.map(m.apply, xs)
            # compiled functions themselves travel as task arguments
            more = pool.starmap(m.call, [(m.Holder.method, x) for x, _ in xs[:3]])
    _check_pool_results(results, xs)
    for r, (x, _) in zip(more, xs):
        assert_matches_numpy(r, x[::-1] * 2.0)


def test_concurrent_futures_process_pool_spawn():
    from concurrent.futures import ProcessPoolExecutor
    xs = [(np.arange(5.0) * k, 1.5) for k in range(4)]
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        results = list(ex.map(m.apply, xs))
    _check_pool_results(results, xs)
    assert sys.modules["_mp_funcs"] is m
