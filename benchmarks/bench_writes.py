"""Writes into arrays (issue 16's targets): tracejit against eager NumPy and torch, in one
process on the same data, one thread each (tracejit.set_num_threads, torch's and
OpenBLAS's threads).

Cases:
  stencil  a 2-D 5-point stencil written as `out[1:-1, 1:-1] = ...` into a copy of the
           1024x1024 float64 grid (a Jacobi sweep). Target: at most 0.3x NumPy.
  mask     `a[a < 0] = 0` between elementwise chains at 1M float64. Target: at most
           0.5x NumPy.
  rows     issue 16's "a 10^4-iteration loop of slice assignments compiles in at most
           2 s": `for i in range(n): out[i] = x[i] * 2.0 + 1.0` into np.zeros((n, 8)),
           first call (trace + passes + TinyCC + run) at n = 10^2, 10^3, 10^4 (--quick:
           10^2, 10^3), wall and CPU time (this process's: the machine may be shared),
           and eager's loop for scale. Target: at most 2 s at 10^4.
  mlp-bn, mlp-bn-module, mlp-bn-step  bench_train's training steps of an MLP with
           BatchNorm1d and nn.ReLU(inplace=True) (SGD, running statistics checked
           against eager's; mlp-bn-step: the whole step function compiled). Target: at
           most 0.6x torch eager.

Every tracejit result is checked against the eager one before timing; the peers are
timed in alternating rounds (_harness.interleaved) and the ratio is the median of the
same-round ratios tracejit/eager. First-call latency (trace + compile + run) is printed.

Run:  PYTHONPATH=python python benchmarks/bench_writes.py [--quick] [--json PATH]
      [--cases stencil,mask,rows,mlp-bn,mlp-bn-module,mlp-bn-step]
"""
from __future__ import annotations

import sys
import time

import numpy as np

import _harness as H

TARGETS = {"stencil": 0.3, "mask": 0.5}


def stencil(u):
    out = u.copy()
    out[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])
    return out


def mask(x):
    a = np.sin(x) * 2.0 - 0.5
    a[a < 0] = 0
    return np.exp(-a) * a + 1.0


def row_loop(n):
    def fill(x):
        out = np.zeros((n, 8))
        for i in range(n):
            out[i] = x[i] * 2.0 + 1.0
        return out
    return fill


def rows_case(opts, records, failures):
    """First-call latency of an unrolled loop of n row writes, per n."""
    import tracejit
    table = []
    for n in ((100, 1000) if opts.quick else (100, 1000, 10000)):
        fill = row_loop(n)
        x = np.random.default_rng(n).standard_normal((n, 8))
        t0 = time.perf_counter_ns()
        want = fill(x)
        eager_ns = time.perf_counter_ns() - t0
        f = tracejit.compile(fill)
        try:
            c0, t0 = time.process_time_ns(), time.perf_counter_ns()
            got = f(x)
            wall, cpu = time.perf_counter_ns() - t0, time.process_time_ns() - c0
            H.check_close(f"tracejit rows {n}", got, want, 0, 0)
        except Exception as e:   # reported, not fatal
            H.failure("tracejit", f"rows {n}", e, failures)
            continue
        records.append({"case": f"rows-{n}", "first_ns": wall, "first_cpu_ns": cpu,
                        "numpy_ns": eager_ns})
        goal = "" if n != 10000 else f" (target <= 2 s {'met' if wall <= 2e9 else 'NOT met'})"
        table.append([str(n), H.fmt_time(eager_ns), H.fmt_ms(wall) + goal, H.fmt_ms(cpu)])
    print(H.markdown_table(["rows", "numpy loop", "tracejit first call (wall)",
                            "first call (CPU)"], table, right_from=1))


def numpy_case(name, fn, x, opts, records, failures):
    import tracejit
    want = fn(x)
    f = tracejit.compile(fn)
    try:
        t0 = time.perf_counter_ns()
        got = f(x)
        first_ns = time.perf_counter_ns() - t0
        H.check_close(f"tracejit {name}", got, want, 1e-12, 1e-12)
        H.settle_tier(f, lambda: f(x))
        H.check_close(f"tracejit {name} (tier)", f(x), want, 1e-12, 1e-12)
    except Exception as e:   # reported, not fatal
        H.failure("tracejit", name, e, failures)
        return [name, "-", "-", "-"]
    target_s = 0.3 if opts.quick else 3.0
    m = H.interleaved({"numpy": lambda: fn(x), "tracejit": lambda: f(x)}, target_s,
                      batch_s=2e-3)
    r = 1.0 / m["ratios"]["tracejit"]   # tracejit / numpy, same rounds
    goal = TARGETS[name]
    records.append({"case": name, "first_ns": first_ns, "ratio": r,
                    "numpy_ns": m["numpy"]["median_ns"],
                    "tracejit_ns": m["tracejit"]["median_ns"]})
    return [name, H.fmt_time(m["numpy"]["median_ns"]), H.fmt_time(m["tracejit"]["median_ns"]),
            f"{r:.2f}x (target <= {goal}x {'met' if r <= goal else 'NOT met'}), "
            f"first call {H.fmt_ms(first_ns)}"]


def run(opts) -> dict:
    print("## Writes into arrays (bench_writes)\n")
    H._prepare_environment()
    import tracejit
    tracejit.set_num_threads(1)
    H.set_openblas_threads(1)
    busy = H.busy_elsewhere()
    if busy is not None:
        print(f"other load on the machine while idle: {100 * busy:.0f}% of all cores")
    chosen = [c.strip() for c in opts.cases.split(",")] if opts.cases else \
        ["stencil", "mask", "rows", "mlp-bn", "mlp-bn-module", "mlp-bn-step"]
    rng = np.random.default_rng(0)
    n = 256 if opts.quick else 1024
    records, failures, rows = [], [], []
    if "stencil" in chosen:
        rows.append(numpy_case("stencil", stencil, rng.standard_normal((n, n)), opts,
                               records, failures))
    if "mask" in chosen:
        rows.append(numpy_case("mask", mask, rng.standard_normal(n * n), opts, records,
                               failures))
    if rows:
        print(H.markdown_table(["case", "numpy", "tracejit", "tracejit/numpy"], rows,
                               right_from=1))
    if "rows" in chosen:
        print()
        rows_case(opts, records, failures)
    train = [c for c in chosen if c.startswith("mlp-bn")]
    if train:
        try:
            import torch   # noqa: F401
        except ImportError as e:
            print(f"\ntorch not installed ({e}); the training steps are skipped")
            train = []
    if train:
        import bench_train
        print()
        opts.cases = ",".join(train)
        opts.peers = "tracejit,torch"
        opts.threads = 1
        out = bench_train.run(opts)
        records += out["records"]
        failures += out["failures"]
    H.print_failures(failures)
    return {"records": records, "failures": failures}


def main(argv=None) -> int:
    opts = H.common_parser(__doc__.split("\n")[0]).parse_args(argv)
    result = run(opts)
    return H.finish(result, "bench_writes", opts.json)


if __name__ == "__main__":
    sys.exit(main())
