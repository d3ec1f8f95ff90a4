"""tracejit in one screen: compile a NumPy function, check it, time it against NumPy.

    python demo.py        # from the repository root, after `pip install .`

gelu_mix is ordinary NumPy code. The first call of the compiled function traces it,
fuses its elementwise ops into one loop, compiles that loop with libtcc and runs it;
later calls with the same dtypes and shapes replay the compiled loop. The demo prints
a few values, the largest difference from NumPy, the first-call (trace + compile + run)
time, and the median time per call of tracejit and NumPy on 1M float32 elements.
Takes a few seconds. For the full comparison with numexpr, jax and torch see
benchmarks/run.py.
"""
import os
import statistics
import sys
import time

import numpy as np

try:
    import tracejit
except ImportError:                       # running from a checkout without PYTHONPATH=python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
    import tracejit


def gelu_mix(x, y):
    z = x * y + y
    return 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z**3)))


def median_call_ns(fn, *args, budget_s=1.0, min_reps=5):
    """Median time of one call, over as many calls as fit in about budget_s."""
    fn(*args)                             # warm-up
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter_ns()
        fn(*args)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times), len(times)


def main():
    n = 1_000_000
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.standard_normal(n, dtype=np.float32)

    fast = tracejit.compile(gelu_mix)
    t0 = time.perf_counter_ns()
    out = fast(x, y)                      # first call: trace + compile + run
    first_ms = (time.perf_counter_ns() - t0) / 1e6

    ref = gelu_mix(x, y)
    out = fast(x, y)                      # a replayed call
    diff = float(np.max(np.abs(out.astype(np.float64) - ref)))
    print(f"gelu_mix on {n:,} float32 elements (x, y ~ N(0, 1))")
    print(f"  tracejit[:4] = {out[:4]}")
    print(f"  numpy[:4]    = {ref[:4]}")
    print(f"  max |tracejit - numpy| = {diff:.3g}  (dtype {out.dtype})")
    if out.dtype != ref.dtype or not np.allclose(out, ref, rtol=1e-4, atol=1e-5):
        sys.exit("tracejit's result differs from numpy's")

    tj_ns, tj_reps = median_call_ns(fast, x, y)
    np_ns, np_reps = median_call_ns(gelu_mix, x, y)
    print(f"  first call (trace + compile + run): {first_ms:.2f} ms")
    print(f"  tracejit: {tj_ns / 1e6:8.3f} ms per call (median of {tj_reps})")
    print(f"  numpy:    {np_ns / 1e6:8.3f} ms per call (median of {np_reps})")
    print(f"  tracejit is {np_ns / tj_ns:.1f}x {'faster' if tj_ns < np_ns else 'SLOWER'} than numpy")
    z = x * y + y
    pow_ns, _ = median_call_ns(lambda: z**3, budget_s=0.3)
    print(f"  (of numpy's time, {pow_ns / 1e6:.1f} ms is `z**3` alone: numpy's float32 power "
          "is slow for negative bases)")


if __name__ == "__main__":
    main()
