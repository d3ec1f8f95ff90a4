"""The cost of a passing guard at replay (issue 19): functions that branch on data or use
a Python int as a size, against the same functions without the guard, in one process,
timed in interleaved rounds (_harness.interleaved) so a busy machine hits both alike.

Cases (x: 16 float64, replayed; every call takes the branch its variant assumed):
  branch   `s = x.sum(); if s > 0: return x * s` (a value guard: `s > 0` is a hidden
           output of the kernel, compared after it runs) vs `return x * s`
  size     `x[:n] * 2.0` with n a Python int argument (an argument guard, compared
           before the kernel) vs `x[:8] * 2.0` given the same n (a runtime input no
           guard reads)
  switch   the branch function called with x and -x in turn: each call runs the
           most recent variant's kernel, whose guard fails, then the other's (the cost
           of a failing guard), vs the same calls of the function without the branch
  trace    the first call (trace + compile + run) of `while x.max() > 0.0: x = ...` in
           plain Python, 10, 100 and 1000 steps (each step reads a value, so each
           compiles a graph for it): values computed incrementally from those kept
           (csrc/prefix.c) against the whole prefix each time (_C._incremental_values
           (False), the previous behaviour; 1000 steps that way take ~1.5 min: left out
           with --quick, which also stops at 100)
Target (issue 19): a passing guard costs at most 20 ns. Under callgrind (a machine
too busy for nanoseconds; valgrind --tool=callgrind --toggle-collect=tj_plan_run_ctx
over 10^4 replays of the branch and plain functions), the branch case costs 91
instructions per replay more than the plain one (129 before a float64 comparison guard
was compared without the loads' dtype dispatch, csrc/guards.c compare_f64; 162 before
value guards were compared between the kernel's phases, csrc/runtime.c run_phases):
~42 of them the kernel's groups run one at a time between the phases, ~51 the replay's
bookkeeping, including binding the two constants the trace made for `s > 0` (dead
after the passes, their slots still bound). No cycle counter on this machine (perf
stat: not supported), so nanoseconds only from the interleaved timings below.
The switch case's failing variant now stops after the sum's group.

Run:  PYTHONPATH=python python benchmarks/bench_guards.py [--quick]
"""
from __future__ import annotations

import sys

import numpy as np

import _harness as H


def _cases(tj):
    def branch(x):
        s = x.sum()
        if s > 0:
            return x * s
        return x * -s

    def plain(x):
        s = x.sum()
        return x * s

    def sized(x, n):
        return x[:n] * 2.0

    def passed(x, n):     # n a runtime input too, read by nothing: no guard
        return x[:8] * 2.0

    x = np.arange(1.0, 17.0)
    fb, fp = tj.compile(branch), tj.compile(plain)
    fs, fst = tj.compile(sized), tj.compile(passed)
    fb2, fp2 = tj.compile(branch), tj.compile(plain)
    xs = [x, -x]
    k = [0]

    def switching(f):
        def call():
            k[0] ^= 1
            return f(xs[k[0]])
        return call

    return {
        "branch": ({"guarded": lambda: fb(x), "unguarded": lambda: fp(x)},
                   lambda: (np.array_equal(fb(x), branch(x)), fb)),
        "size": ({"guarded": lambda: fs(x, 8), "unguarded": lambda: fst(x, 8)},
                 lambda: (np.array_equal(fs(x, 8), sized(x, 8)), fs)),
        "switch": ({"guarded": switching(fb2), "unguarded": switching(fp2)},
                   lambda: (np.array_equal(fb2(-x), branch(-x)), fb2)),
    }


def _countdown(x):
    while x.max() > 0.0:
        x = np.tanh(x) * 0.0 + x - 1.0
    return x


def _trace_times(tj, quick):
    """First-call times of a Python loop on data, incremental and whole-prefix."""
    import time
    from tracejit import _C
    rows = []
    for n in (10, 100) if quick else (10, 100, 1000):
        x = np.linspace(n - 1.0, n - 0.5, 64)
        want = _countdown(x)
        t = {}
        for mode in (True, False):
            prev = _C._incremental_values(mode)
            try:
                f = tj.compile(_countdown)
                t0 = time.perf_counter()
                got = f(x)
                t[mode] = time.perf_counter() - t0
            finally:
                _C._incremental_values(prev)
            if not np.array_equal(got, want):
                raise AssertionError(f"trace {n}: the compiled result differs from eager")
        rows.append([f"trace {n} steps", f"{1e3 * t[True]:.0f} ms", f"{1e3 * t[False]:.0f} ms",
                     f"{t[False] / t[True]:.1f}x"])
    return rows


def main(argv=None) -> int:
    opts = H.common_parser(__doc__.split("\n")[0]).parse_args(argv)
    import tracejit as tj
    H.busy_elsewhere()
    target_s = 0.3 if opts.quick else 3.0
    rows, failed = [], 0
    for name, (calls, check) in _cases(tj).items():
        for c in calls.values():
            c()
        ok, f = check()
        if not ok:
            print(f"{name}: the compiled result differs from eager", file=sys.stderr)
            failed = 1
        m = H.interleaved(calls, target_s)
        g, u = m["guarded"], m["unguarded"]
        extra = g["median_ns"] - u["median_ns"]
        rows.append([name, H.fmt_time(g["median_ns"]), H.fmt_time(u["median_ns"]),
                     f"{extra:+.0f} ns", f"{g['min_ns'] - u['min_ns']:+.0f} ns",
                     f"{m['ratios']['unguarded']:.3f}", str(f.cache_info().variants)])
    print(H.markdown_table(["case", "guarded", "unguarded", "extra (median)", "extra (min)",
                            "guarded/unguarded", "variants"], rows))
    print("target: a passing guard (branch, size) at most +20 ns")
    print()
    print(H.markdown_table(["case", "first call, incremental", "first call, whole prefix",
                            "speedup"], _trace_times(tj, opts.quick)))
    return failed


if __name__ == "__main__":
    sys.exit(main())
