"""complex64 and complex128 (issue 22, item 1) against NumPy, in one process, on the same
data, every peer given the same thread budget.

Cases:
  chain/1M      np.exp(1j * phase) * amp + z * z.conj() in complex128 on 2**20 elements
                (the issue's target: at most 0.3x NumPy)
  chain64/1M    the same chain in complex64 (float32 phase and amp)
  qstate/1M     a quantum-state step: a phase rotation, |psi|^2, a normalization and
                np.vdot(psi, phi), complex128
  matmul/256    a 256x256 complex128 product (four real products; NumPy: zgemm)
Every result is checked against NumPy's (relative 1e-12, 1e-5 for complex64) before
timing; a wrong one exits with status 1. The first-call latency (trace + compile + run)
is printed per case.

Run:  PYTHONPATH=python python benchmarks/bench_complex.py [--quick] [--threads N]
      [--cases chain/1M,chain64/1M,qstate/1M,matmul/256]
"""
from __future__ import annotations

import sys
import time

import numpy as np

import _harness as H

PEERS = ("tracejit", "numpy")
TARGET = {"chain/1M": {"numpy": 0.3}}
CASES = ["chain/1M", "chain64/1M", "qstate/1M", "matmul/256"]


def chain(phase, amp, z):
    return np.exp(1j * phase) * amp + z * z.conj()


def qstate(psi, theta, phi):
    psi = psi * np.exp(1j * theta)
    p = np.abs(psi) ** 2
    psi = psi / np.sqrt(p.sum())
    return psi, np.vdot(psi, phi), p.max()


def matmul(a, b):
    return a @ b


def _inputs(case, quick, rng):
    n = 1 << 14 if quick else 1 << 20
    c = lambda k, dt: (rng.standard_normal(k) + 1j * rng.standard_normal(k)).astype(dt)
    if case.startswith("chain"):
        dt, rdt = (np.complex64, np.float32) if case.startswith("chain64") else \
            (np.complex128, np.float64)
        return chain, (rng.uniform(-3, 3, n).astype(rdt), rng.uniform(0, 2, n).astype(rdt),
                       c(n, dt)), 1e-5 if dt == np.complex64 else 1e-12
    if case.startswith("qstate"):
        return qstate, (c(n, np.complex128), rng.uniform(-3, 3, n), c(n, np.complex128)), 1e-12
    m = 64 if quick else 256
    return matmul, (c(m * m, np.complex128).reshape(m, m),
                    c(m * m, np.complex128).reshape(m, m)), 1e-12


def _close(what, got, want, rtol):
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            _close(what, g, w, rtol)
        return
    got, want = np.asarray(got), np.asarray(want)
    scale = np.max(np.abs(want)) if want.size else 0
    if got.dtype != want.dtype or got.shape != want.shape or \
            not np.all(np.abs(got - want) <= rtol * (np.abs(want) + scale * 1e-3)):
        raise H.WrongResult(f"{what}: differs from NumPy ({got.dtype} vs {want.dtype})")


def run(opts):
    print("## complex64 and complex128 (bench_complex)\n")
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
        fn, xs, rtol = _inputs(case, opts.quick, rng)
        want = fn(*xs)
        f = tj.compile(fn)
        calls = {"tracejit": lambda f=f, xs=xs: f(*xs), "numpy": lambda xs=xs: fn(*xs)}
        ok = {}
        for peer, call in calls.items():
            try:
                t0 = time.perf_counter_ns()
                r = call()
                first = time.perf_counter_ns() - t0
                _close(f"{peer} {case}", r, want, rtol)
                if peer == "tracejit":   # the compiled function of the parts settles
                    H.settle_tier(f.__dict__.get("_tj_complex", f), call)
                    _close(f"{peer} {case}, settled", call(), want, rtol)
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
    return H.main_with_threads(run, __doc__, "bench_complex", argv)


if __name__ == "__main__":
    sys.exit(main())
