"""Ctrl-C inside a long compiled loop (issue 19): the step loop of a compiled
while_loop/fori_loop runs a pending signal's handler every few steps (csrc/loops.c,
with the GIL re-acquired where the loop released it), so SIGINT raises
KeyboardInterrupt in the caller; the function stays usable afterwards. Each case runs
in a subprocess that is sent SIGINT once its loop is running."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import _package_root

if sys.platform == "win32":
    pytest.skip("SIGINT to a subprocess", allow_module_level=True)

_SCRIPT = r"""
import json, sys, time
import numpy as np
import tracejit as tj

kind, n = sys.argv[1], int(sys.argv[2])

def body(c):
    return c[0] * 0.999 + 0.001, c[1] + 1.0

def run_while(x, steps):       # steps: a 0-d array, read at every call (no retrace)
    return tj.while_loop(lambda c: c[1] < steps, body, (x, x[0] * 0.0))

def run_fori(x, steps):        # steps: static, so the long call compiles first
    return tj.fori_loop(0, steps, lambda i, c: body(c), (x, x[0] * 0.0))

f = tj.compile(run_while) if kind == "while" else \
    tj.compile(run_fori, static_argnames=("steps",))
short = np.float64(3.0) if kind == "while" else 3
long_ = np.float64(1e15) if kind == "while" else 10 ** 15
x = np.ones(n)
t0 = time.perf_counter()
small = f(x, short)            # compiled and run: the compile's time, for the parent
compile_s = time.perf_counter() - t0 if kind == "fori" else 0.0
want = body(body(body((x, 0.0))))
print("ready", compile_s, flush=True)
t0 = time.perf_counter()
try:
    f(x, long_)                # years of steps: only Ctrl-C ends it
    print(json.dumps({"interrupted": False}))
except KeyboardInterrupt:
    after = f(x, short)        # still usable, eager's answer
    print(json.dumps({"interrupted": True, "seconds": time.perf_counter() - t0,
                      "same": bool(np.allclose(after[0], want[0], rtol=1e-15)) and
                              float(after[1]) == 3.0 and
                              bool(np.array_equal(after[0], small[0]))}))
"""


@pytest.mark.parametrize("kind", ["while", "fori"])
@pytest.mark.parametrize("n", [4, 200_000])   # a small body holds the GIL, a large one not
def test_sigint_interrupts_a_long_compiled_loop(kind, n):
    env = dict(os.environ)
    env["PYTHONPATH"] = _package_root() + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, kind, str(n)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "ready", proc.stderr.read()
        time.sleep(1.0 + 5 * float(line[1]))   # into the long call's loop
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interrupted"] and result["same"]
