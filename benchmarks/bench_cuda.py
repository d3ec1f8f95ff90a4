"""The CUDA workloads of issue 20 against the GPU peers, one run, one GPU:

    PYTHONPATH=python python benchmarks/bench_cuda.py [--quick]

(--quick: fewer repetitions and no torch.compile columns, whose compiles take minutes.)

Rows: tiny x*2+1 on 16 floats; a 12-op elementwise chain at 1k, 1M and 16M floats (with
the copy-bandwidth floor of 16M floats measured in the same run: read + write); the MLP
of batch 32 (64-64-8); logistic regression value+grad (1000x20; torch eager autograd,
jax.jit of value_and_grad, tracejit.value_and_grad). Columns: torch eager, torch.jit.trace, torch.compile (default
and mode="reduce-overhead"), jax.jit and CuPy's ElementwiseKernel where installed, and
tracejit (µs per warm call, synchronized after each batch, median of batches), and
tracejit's first-call latency (trace + passes + emit + NVRTC + load). Prints the GPU
model. Skips (exit 0, a message) without a CUDA GPU."""
import argparse
import statistics
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


def mlp_factory(torch, dev):
    g = torch.Generator().manual_seed(0)
    w1 = (torch.randn(64, 64, generator=g) / 8).to(dev)
    w2 = (torch.randn(64, 8, generator=g) / 8).to(dev)
    b1, b2 = torch.zeros(64, device=dev), torch.zeros(8, device=dev)

    def mlp(x):
        return torch.tanh(x @ w1 + b1) @ w2 + b2
    return mlp


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
    try:
        nvrtc = _C._nvrtc_version()[:2]
    except RuntimeError as e:
        print(f"bench_cuda: {e}; skipped")
        return 0
    dev = torch.device("cuda", 0)
    sync = torch.cuda.synchronize
    reps = 5 if a.quick else 21
    print(f"GPU: {torch.cuda.get_device_name(0)} (sm_{''.join(map(str, torch.cuda.get_device_capability(0)))}), "
          f"torch {torch.__version__}, NVRTC {nvrtc}")
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
    cases = [("tiny x*2+1, 16", tiny, (16,)), ("12-op chain, 1k", chain, (1000,)),
             ("12-op chain, 1M", chain, (1 << 20,)), ("12-op chain, 16M", chain, (1 << 24,)),
             ("MLP 32, 64-64-8", mlp_factory(torch, dev), (32, 64))]
    cols = ["torch eager", "jit.trace", "compile", "compile r-o", "jax.jit", "cupy EK",
            "tracejit", "tj 1st ms"]
    print(f"{'workload':18}" + "".join(f"{c:>13}" for c in cols))
    for name, fn, shape in cases:
        x = torch.rand(shape, device=dev)
        inner = 50 if x.numel() <= 1 << 20 else 5
        row = {"torch eager": timeit(lambda: fn(x), sync, reps, inner)}
        with torch.no_grad():
            traced = torch.jit.trace(fn, (x,))
        row["jit.trace"] = timeit(lambda: traced(x), sync, reps, inner)
        for mode, col in () if a.quick else ((None, "compile"), ("reduce-overhead", "compile r-o")):
            try:
                c = torch.compile(fn, mode=mode)
                row[col] = timeit(lambda: c(x).clone() if mode else c(x), sync, reps, inner)
            except Exception as e:   # no triton, ...
                print(f"  torch.compile({mode}) failed: {type(e).__name__}: {e}"[:200])
        if jax is not None and fn in (tiny, chain):
            xj = jnp.asarray(x.cpu().numpy())
            jf = jax.jit(fn)
            row["jax.jit"] = timeit(lambda: jf(xj).block_until_ready(), lambda: None, reps, inner)
        if cupy is not None and fn is tiny:
            ek = cupy.ElementwiseKernel("float32 x", "float32 y", "y = x * 2 + 1", "tj_tiny")
            xc = cupy.asarray(x)
            row["cupy EK"] = timeit(lambda: ek(xc), cupy.cuda.Device().synchronize, reps, inner)
        tf = tracejit.compile(fn)
        t0 = time.perf_counter()
        first = tf(x)
        sync()
        row["tj 1st ms"] = (time.perf_counter() - t0) * 1e3
        torch.testing.assert_close(first, fn(x), rtol=1e-4, atol=1e-5)
        row["tracejit"] = timeit(lambda: tf(x), sync, reps, inner)
        print(f"{name:18}" + "".join(f"{row[c]:>13.1f}" if c in row else f"{'-':>13}" for c in cols))
    logistic_row(torch, dev, sync, reps, cols, jax)
    print("µs per warm call, synchronized (tj 1st ms: tracejit's first call in ms: trace, "
          "passes, NVRTC, load). tracejit's matrix products: cuBLAS when it loads "
          f"({_C._cublas()}), else its tiled kernel.")
    return 0


def logistic_row(torch, dev, sync, reps, cols, jax):
    """Logistic regression value+grad, 1000x20 float32: torch eager autograd, jax.jit of
    jax.value_and_grad, tracejit.value_and_grad (its gradient graph: one CUDA plan)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(1000, 20, generator=g).to(dev)
    y = (torch.rand(1000, generator=g) < 0.5).float().to(dev)
    w = (torch.randn(20, generator=g) * 0.1).to(dev)

    def loss(w, X, y):
        z = X @ w
        return (torch.nn.functional.softplus(z) - y * z).mean()

    def eager():
        wl = w.detach().requires_grad_(True)
        v = loss(wl, X, y)
        (gw,) = torch.autograd.grad(v, wl)
        return v, gw
    row = {"torch eager": timeit(eager, sync, reps, 50)}
    if jax is not None:
        import jax.numpy as jnp
        Xj, yj, wj = (jnp.asarray(t.cpu().numpy()) for t in (X, y, w))
        jl = jax.jit(jax.value_and_grad(
            lambda w, X, y: jnp.mean(jax.nn.softplus(X @ w) - y * (X @ w))))
        row["jax.jit"] = timeit(lambda: jl(wj, Xj, yj)[1].block_until_ready(), lambda: None,
                                reps, 50)
    vg = tracejit.value_and_grad(loss)
    t0 = time.perf_counter()
    v, gw = vg(w, X, y)
    sync()
    row["tj 1st ms"] = (time.perf_counter() - t0) * 1e3
    ev, eg = eager()
    torch.testing.assert_close(v, ev, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gw, eg, rtol=1e-4, atol=1e-6)
    row["tracejit"] = timeit(lambda: vg(w, X, y), sync, reps, 50)
    print(f"{'logreg v+g 1000x20':18}" + "".join(f"{row[c]:>13.1f}" if c in row else f"{'-':>13}"
                                                 for c in cols))


if __name__ == "__main__":
    sys.exit(main())
