"""Large torch results (issue 18, item 6): results of 1 MiB and more on the torch route
live in the recycled, already-mapped blocks NumPy results have (csrc/blocks.c through
csrc/dlpack.c's allocation), so a loop over large tensors takes no page faults; a
result is never handed out while an earlier one still uses its memory."""
import resource
import threading

import numpy as np
import pytest

import tracejit
from conftest import run_python

torch = pytest.importorskip("torch")

N = 1 << 21   # 8 MiB of float32: 2048 pages


def chain(x, y):
    z = x * y + y
    return 0.5 * z * (1.0 + torch.tanh(0.7978845608 * (z + 0.044715 * z ** 3))) + torch.exp(x)


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, generator=g), torch.randn(N, generator=g)


def test_a_dead_result_is_recycled_a_live_one_is_not(xy):
    f = tracejit.compile(chain)
    want = chain(*xy)
    r1 = f(*xy)
    r2 = f(*xy)   # r1 alive: its memory is not reused
    assert r1.data_ptr() != r2.data_ptr()
    torch.testing.assert_close(r1, want)
    torch.testing.assert_close(r2, want)
    p = r1.data_ptr()
    del r1
    r3 = f(*xy)   # r1's block, already mapped
    assert r3.data_ptr() == p
    torch.testing.assert_close(r3, want)
    assert r3.data_ptr() % 64 == 0


def test_a_loop_over_large_results_takes_no_page_faults(xy):
    f = tracejit.compile(chain)
    y = f(*xy)
    for _ in range(3):
        y = f(*xy)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        y = f(*xy)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 2048, f"{faults} page faults in 5 calls (a fresh result: 2048 each)"
    torch.testing.assert_close(y, chain(*xy))


def test_results_released_on_other_threads(xy):
    # torch's deleter may run on any thread: blocks come back from each
    f = tracejit.compile(chain)
    want = chain(*xy)
    out = []

    def worker():
        for _ in range(4):
            r = f(*xy)
            out.append(bool(torch.allclose(r, want, rtol=1e-5, atol=1e-5)))
            del r

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [True] * 12


def test_recycling_off():
    code = r"""
import json, torch, tracejit
f = tracejit.compile(lambda x: x * 2.0 + 1.0)
x = torch.ones(1 << 20)
ok = []
for _ in range(3):
    r = f(x)
    ok.append(bool((r == 3.0).all()))
print(json.dumps(ok))
"""
    rc, ok, out, err = run_python(code, env_extra={"TRACEJIT_BLOCK_CACHE_MB": "0"})
    assert rc == 0, err[-3000:]
    assert ok == [True, True, True]
