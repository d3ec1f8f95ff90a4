"""PyTorch code on CPU tensors: tracejit against torch eager, torch.jit.trace and
torch.compile (warm), in one process on the same tensors.

Cases (all float32, torch CPU tensors, everything under torch.no_grad()):
  tiny       x * 2.0 + 1.0                                   16 elements (call overhead)
  chain12    the 12-op GELU-like chain of bench_elementwise   1k and 1M elements
  mlp        nn.Sequential(Linear(64, 64), ReLU, Linear(64, 64), Tanh, Linear(64, 8))
             module forward, batch 32 (tracejit.compile(module))
  logjoint   a small Bayesian logistic regression's log joint: Normal(0, 1) prior on
             w (5) and b, Bernoulli(logits = X @ w + b) likelihood of 100 labels,
             written with torch ops (the Normal/Bernoulli log densities)
For each: the median time per warm call, the ratios, and the first-call latency of a
freshly made callable (tracejit: trace + compile + run; jit.trace: trace + run;
torch.compile: dynamo + inductor + run, after torch._dynamo.reset() and with a fresh
inductor cache directory). Every peer's result is checked against eager first.
torch runs with --threads intra-op threads (default 1, like tracejit).

Targets (issue 4): tiny <= 0.3x eager; chain12/1k and mlp <= 0.5x the best of eager,
jit.trace and torch.compile; first call <= 1/100 of torch.compile's.

Run:  PYTHONPATH=python python benchmarks/bench_torch.py [--quick] [--json PATH]
      [--peers eager,tracejit,jit.trace,compile] [--cases tiny,mlp] [--alloc]
--alloc also compares the ways tracejit can allocate torch results (tiny case).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

import _harness as H

PEERS = ("eager", "jit.trace", "compile", "tracejit")
TARGETS = {"tiny": ("eager", 0.3), "chain12/1k": ("best", 0.5), "mlp": ("best", 0.5)}


def make_cases(torch, quick):
    nn, F = torch.nn, torch.nn.functional
    g = torch.Generator().manual_seed(0)

    def tiny(x):
        return x * 2.0 + 1.0

    def chain12(x, y):
        z = x * y + y
        return 0.5 * z * (1.0 + torch.tanh(0.7978845608 * (z + 0.044715 * z ** 3))) + torch.exp(x)

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh(),
                        nn.Linear(64, 8)).eval()
    X = torch.randn(100, 5, generator=g)
    y = (torch.rand(100, generator=g) > 0.5).float()
    half_log2pi = 0.5 * math.log(2 * math.pi)

    def logjoint(w, b):
        prior = (-0.5 * w * w - half_log2pi).sum() + (-0.5 * b * b - half_log2pi)
        logits = X @ w + b
        return prior - F.binary_cross_entropy_with_logits(logits, y, reduction="sum")

    big = 1 << 16 if quick else 1 << 20
    return [
        ("tiny", "16", tiny, (torch.randn(16, generator=g),)),
        ("chain12/1k", "1k", chain12, (torch.randn(1000, generator=g), torch.randn(1000, generator=g))),
        (f"chain12/{'64k' if quick else '1M'}", "64k" if quick else "1M", chain12,
         (torch.randn(big, generator=g), torch.randn(big, generator=g))),
        ("mlp", "32x64 -> 64 -> 64 -> 8", mlp, (torch.randn(32, 64, generator=g),)),
        ("logjoint", "w(5), b; X 100x5", logjoint, (torch.randn(5, generator=g), torch.randn((), generator=g))),
    ]


def build(peer, fn, args, torch, tracejit):
    """A fresh callable of `peer` for fn (its first call compiles)."""
    if peer == "eager":
        return fn
    if peer == "tracejit":
        return tracejit.compile(fn)
    if peer == "jit.trace":
        traced = []

        def call(*a):
            if not traced:
                traced.append(torch.jit.trace(fn, args))
            return traced[0](*a)
        return call
    if peer == "compile":
        torch._dynamo.reset()
        return torch.compile(fn)
    raise ValueError(peer)



def run(opts) -> dict:
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="tj-bench-inductor-"))
    import torch
    import tracejit
    torch.set_num_threads(opts.threads)
    peers = [p for p in PEERS if not opts.peers or p in opts.peers.split(",")]
    if "eager" not in peers:
        peers.insert(0, "eager")
    cases = make_cases(torch, opts.quick)
    if opts.cases:
        wanted = opts.cases.split(",")
        cases = [c for c in cases if c[0] in wanted or c[0].split("/")[0] in wanted]
    target_s = 0.05 if opts.quick else 0.4
    print(f"# bench_torch: torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"tracejit {tracejit.__version__}, {os.cpu_count()} cores")
    busy = H.busy_elsewhere()
    if busy:
        print(f"# warning: other processes are using the CPU ({busy}); timings are noisy")
    result = {"cases": {}, "failures": []}
    with torch.no_grad():
        for name, size, fn, args in cases:
            ref = fn(*args)
            row = {"size": size, "median_ns": {}, "first_ns": {}}
            for peer in peers:
                try:
                    f = build(peer, fn, args, torch, tracejit)
                    t_first, out = H.first_call_ns(lambda: f(*args))
                    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
                    m = H.measure(lambda: f(*args), target_s)
                    torch.testing.assert_close(f(*args), ref, rtol=1e-4, atol=1e-4)
                except Exception as e:   # a peer that fails is reported, not timed
                    result["failures"].append(f"{peer} {name}: {type(e).__name__}: {e}")
                    continue
                row["first_ns"][peer] = t_first
                row["median_ns"][peer] = m["median_ns"]
            result["cases"][name] = row
    if opts.alloc:
        result["alloc"] = alloc_modes(torch, tracejit, target_s)
    return result


def alloc_modes(torch, tracejit, target_s):
    """Per-call time of the tiny case for each way of allocating torch results,
    interleaved rounds, medians."""
    f = tracejit.compile(lambda x, y: x * y + 1.0)
    x, y = torch.randn(16), torch.randn(16)
    f(x, y)
    names = {0: "own memory -> DLPack to_py", 1: "ndarray + torch.from_numpy",
             2: "torch.empty", 3: "torch allocator (exchange API) -> to_py"}
    times = {m: [] for m in names}
    old = tracejit._C._torch_alloc(0)
    try:
        for _ in range(7):
            for mode in names:
                tracejit._C._torch_alloc(mode)
                times[mode].append(H.measure(lambda: f(x, y), target_s / 4)["median_ns"])
    finally:
        tracejit._C._torch_alloc(old)
    return {names[m]: statistics.median(v) for m, v in times.items()}


def print_tables(result, peers):
    rows = []
    for name, row in result["cases"].items():
        med = row["median_ns"]
        tj = med.get("tracejit")
        others = {p: med[p] for p in ("eager", "jit.trace", "compile") if p in med}
        best = min(others, key=others.get) if others else None
        kind, target = TARGETS.get(name, (None, None))
        ref = med.get("eager") if kind == "eager" else (others.get(best) if best else None)
        r = tj / ref if tj and ref else None
        rows.append([name, row["size"]] + [H.fmt_time(med.get(p)) if p in med else "-" for p in peers]
                    + [H.fmt_ratio(tj / med["eager"]) if tj and "eager" in med else "-",
                       f"{H.fmt_ratio(tj / others[best])} ({best})" if tj and best else "-",
                       f"{target}x {kind}" if target else "-",
                       ("yes" if r <= target else "NO") if target and r else "-"])
    print(H.markdown_table(["case", "size"] + list(peers) + ["tracejit/eager", "tracejit/best peer",
                                                             "target", "met"], rows))
    print()
    rows = []
    for name, row in result["cases"].items():
        fc = row["first_ns"]
        tj, comp = fc.get("tracejit"), fc.get("compile")
        rows.append([name, row["size"]] + [H.fmt_ms(fc.get(p)) if p in fc else "-" for p in peers]
                    + [f"1/{comp / tj:.0f}" if tj and comp else "-",
                       ("yes" if comp / tj >= 100 else "NO") if tj and comp else "-"])
    print("First call (fresh callable: compile + one run):")
    print(H.markdown_table(["case", "size"] + list(peers) + ["tracejit/compile", "<= 1/100"], rows))
    if "alloc" in result:
        print("\nTorch result allocation (tiny case, per call):")
        print(H.markdown_table(["how", "median"], [[k, H.fmt_time(v)] for k, v in result["alloc"].items()],
                               right_from=1))
    for f in result["failures"]:
        print("FAILED:", f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--peers", metavar="LIST", help="subset of " + ",".join(PEERS))
    p.add_argument("--cases", metavar="LIST")
    p.add_argument("--alloc", action="store_true", help="also compare torch result allocation")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: tracejit runs on one thread, and "
                        "on a shared 2-core machine torch's OpenMP threads spin against other "
                        "processes)")
    opts = p.parse_args(argv)
    result = run(opts)
    peers = [p for p in PEERS if not opts.peers or p in opts.peers.split(",") or p == "eager"]
    print_tables(result, peers)
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
