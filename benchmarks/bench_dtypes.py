"""Every dtype users pass (issue 22): narrow integer data against NumPy, in one process,
on the same data, every peer given the same thread budget.

Cases:
  image/4096x4096   (img.astype(np.float32) * a + b).clip(0, 255).astype(np.uint8) on a
                    uint8 image of 4096x4096 (the issue's target: at most 0.25x NumPy)
  dequant/16M       (q.astype(np.float32) - zero) * scale of int8 data, 2**24 elements
  u8hist/16M        ((img >> 4) == 3).sum() + img.max() of uint8 data: a reduction of
                    narrow ints (NumPy: the sum in int64)
  f16chain/16M      the 12-op arithmetic chain in float16 (every op rounded to float16,
                    as NumPy), against NumPy and against the same chain on the same
                    values in float32 in tracejit (column tracejit-f32; the issue's
                    target: at most 0.6x). bfloat16 has no NumPy dtype (torch's is
                    refused so far): no row
Every result is checked against NumPy's, bit for bit, before timing; a wrong one exits
with status 1. The first-call latency (trace + compile + run) is printed per case.

Run:  PYTHONPATH=python python benchmarks/bench_dtypes.py [--quick] [--threads N]
      [--cases image/4096x4096,dequant/16M,u8hist/16M,f16chain/16M]
"""
from __future__ import annotations

import sys
import time

import numpy as np

import _harness as H

PEERS = ("tracejit", "numpy", "tracejit-f32")
TARGET = {"image/4096x4096": {"numpy": 0.25}, "f16chain/16M": {"tracejit-f32": 0.6}}
CASES = ["image/4096x4096", "dequant/16M", "u8hist/16M", "f16chain/16M"]


def brighten(img, a, b):
    return (img.astype(np.float32) * a + b).clip(0, 255).astype(np.uint8)


def dequant(q, zero, scale):
    return (q.astype(np.float32) - zero) * scale


def u8hist(img):
    return ((img >> 4) == 3).sum() + img.max()


def arith12(x, y):
    return ((x * y + y) * 0.5 - x) * (y + 2.0) / (x * x + 1.0) - y * 0.25 + x


def _inputs(case, quick, rng):
    if case.startswith("image"):
        side = 512 if quick else 4096
        return brighten, (rng.integers(0, 256, size=(side, side), dtype=np.uint8),
                          np.float32(1.3), np.float32(-20.0))
    n = 1 << 18 if quick else 1 << 24
    if case.startswith("dequant"):
        return dequant, (rng.integers(-128, 128, size=n, dtype=np.int8), np.float32(3.0),
                         np.float32(0.05))
    if case.startswith("u8hist"):
        return u8hist, (rng.integers(0, 256, size=n, dtype=np.uint8),)
    return arith12, tuple(rng.uniform(-2, 2, size=n).astype(np.float16) for _ in range(2))


def _same(what, got, want):
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or not np.array_equal(got, want, equal_nan=True):
        raise H.WrongResult(f"{what}: differs from NumPy ({got.dtype} vs {want.dtype})")


def run(opts):
    print("## Every dtype users pass (bench_dtypes)\n")
    import tracejit as tj
    tj.set_num_threads(opts.threads)   # its pool and NumPy's OpenBLAS
    busy = H.busy_elsewhere()
    if busy is not None:
        print(f"other load on the machine while idle: {100 * busy:.0f}% of all cores")
    print(f"threads: tracejit {tj.get_num_threads()}, OpenBLAS {H.openblas_threads()}\n")
    cases = CASES if not opts.cases else [c for c in CASES if c in opts.cases.split(",")]
    rng = np.random.default_rng(0)
    target_s = 0.3 if opts.quick else 2.0
    records, failures, rows = [], [], []
    for case in cases:
        fn, xs = _inputs(case, opts.quick, rng)
        want = fn(*xs)
        f = tj.compile(fn)
        calls = {"tracejit": lambda f=f, xs=xs: f(*xs), "numpy": lambda xs=xs: fn(*xs)}
        wants = {"tracejit": want, "numpy": want}
        if case.startswith("f16"):   # the float32 chain on the same values
            f32 = tj.compile(fn)
            x32 = tuple(x.astype(np.float32) for x in xs)
            calls["tracejit-f32"] = lambda f=f32, xs=x32: f(*xs)
            wants["tracejit-f32"] = fn(*x32)
        ok = {}
        for peer, call in calls.items():
            try:
                t0 = time.perf_counter_ns()
                r = call()
                first = time.perf_counter_ns() - t0
                _same(f"{peer} {case}", r, wants[peer])
                if peer.startswith("tracejit"):
                    H.settle_tier(f if peer == "tracejit" else f32, call)
                    _same(f"{peer} {case}, settled", call(), wants[peer])
                ok[peer] = call
                records.append({"case": case, "peer": peer, "first_ns": first})
            except Exception as e:   # reported, not fatal
                H.failure(peer, case, e, failures)
        rows.append(H.measure_case(case, list(PEERS), ok, records, target_s,
                                   TARGET.get(case, {}))[0])
    H.print_case_table(list(PEERS), rows, records)
    H.print_failures(failures)
    return {"records": records, "failures": failures}


def main(argv=None) -> int:
    return H.main_with_threads(run, __doc__, "bench_dtypes", argv)


if __name__ == "__main__":
    sys.exit(main())
