"""GEMM threshold sweep: tracejit's own SIMD GEMM against OpenBLAS, by product size (float32).

tracejit computes a matrix product with NumPy's bundled OpenBLAS when it has at least
TRACEJIT_BLAS_MIN multiply-adds (M*K*N; default 0, read once at import; the operands
also need a unit stride and M, N > 1), and with its own SIMD GEMM below that. This
sweep shows where that threshold comes from. For each shape MxKxN (a is MxK, b is KxN,
C-contiguous float32 N(0, 1) data) it times `a @ b` compiled by tracejit

  * in one subprocess with TRACEJIT_BLAS_MIN=1      (every product calls BLAS), and
  * in another with TRACEJIT_BLAS_MIN=10**12       (every product runs tracejit's GEMM),

plus NumPy's own `a @ b` in each of the two processes, and prints the median time per
call of each (two rounds of both processes, alternating; the lower of each time's two
medians is kept, so a burst of noise in one process does not decide a row), which of the two tracejit paths is faster, which path the default
threshold picks, and the crossover. Both subprocesses check every tracejit result
against NumPy (rtol 1e-4) before timing. Times include tracejit's per-call overhead
(~0.1-0.2 µs), which both paths pay alike. It is not part of benchmarks/run.py (it is a
tuning sweep, ~40 s).

Run:  PYTHONPATH=python python benchmarks/bench_matmul.py
      [--quick] [--json PATH] [--cases '16x16x16,*x256'] [--peers numpy,tracejit]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

import _harness as H

# (M, K, N), by multiply-adds, from 4x4x4 (64) up: the sweep that set the default (0).
SHAPES = [
    (4, 4, 4), (8, 8, 8), (10, 10, 10), (12, 12, 12), (4, 128, 4), (8, 32, 8), (16, 8, 16),
    (13, 13, 13), (16, 16, 16), (20, 20, 20), (8, 256, 8), (32, 64, 8), (64, 4, 64),
    (32, 32, 32), (32, 64, 64), (64, 64, 64), (256, 8, 256), (128, 128, 128), (256, 256, 256),
]
QUICK_SHAPES = [(4, 4, 4), (8, 8, 8), (16, 16, 16), (32, 64, 8), (64, 64, 64)]
MODES = {"BLAS": 1, "own": 10**12}       # the TRACEJIT_BLAS_MIN of each subprocess
DEFAULT_MIN = 0                          # tracejit/__init__.py's _BLAS_MIN
TARGET_S = 0.25                          # timing per (shape, peer) in a full run
ROUNDS = 2                               # of the pair of processes (1 with --quick)
RTOL, ATOL = 1e-4, 1e-4


@dataclass
class Case:
    m: int
    k: int
    n: int

    @property
    def name(self) -> str:
        return f"{self.m}x{self.k}x{self.n}"

    label = name

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n

    def inputs(self) -> list[np.ndarray]:
        rng = np.random.default_rng([20240601, self.m, self.k, self.n])
        return [rng.standard_normal((self.m, self.k), dtype=np.float32),
                rng.standard_normal((self.k, self.n), dtype=np.float32)]


def matmul(a, b):
    return a @ b


def cases(opts) -> list[Case]:
    return H.select_cases([Case(*s) for s in (QUICK_SHAPES if opts.quick else SHAPES)], opts)


# ---- one subprocess: one TRACEJIT_BLAS_MIN -------------------------------------------------

def child(opts) -> dict:
    """Times tracejit and numpy on every shape under this process's TRACEJIT_BLAS_MIN."""
    tj, why = H.import_peer("tracejit")
    if tj is None:
        raise SystemExit(f"tracejit: {why}")
    out = {"blas_min": os.environ.get("TRACEJIT_BLAS_MIN"), "have_blas": bool(tj._HAVE_BLAS),
           "records": [], "failures": []}
    peers = [H.Peer("numpy", np), H.Peer("tracejit", tj)]
    a = np.ones((4, 4), np.float32)     # warm the process (and the core) up before the first row
    for p in peers:
        f = p.build(matmul)
        H.measure(lambda: f(a, a), target_s=0.05 if opts.quick else 0.2)
    for case in cases(opts):
        xs = case.inputs()
        ref = xs[0] @ xs[1]
        for p in peers:
            rec = {"label": case.label, "peer": p.name}
            try:
                rec.update(H.run_peer(p, p.build(matmul), xs, ref,
                                      f"{case.label} (TRACEJIT_BLAS_MIN={out['blas_min']})",
                                      opts, RTOL, ATOL, target_s=TARGET_S))
            except Exception as e:  # noqa: BLE001  (reported, and fails the run)
                rec.update(H.failure(p.name, case.label, e, out["failures"]))
            out["records"].append(rec)
    return out


def spawn(mode: str, opts, rnd: int) -> dict:
    env = dict(os.environ, TRACEJIT_BLAS_MIN=str(MODES[mode]))
    argv = [sys.executable, os.path.abspath(__file__), "--child"]
    argv += ["--quick"] if opts.quick else []
    argv += ["--cases", opts.cases] if opts.cases else []
    print(f"round {rnd}: running TRACEJIT_BLAS_MIN={MODES[mode]} ({mode}) ...", file=sys.stderr,
          flush=True)
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True)   # stderr passes
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        msg = f"subprocess TRACEJIT_BLAS_MIN={MODES[mode]} exited {r.returncode} without a result"
        return {"records": [], "failures": [msg], "have_blas": None}


# ---- the sweep ----------------------------------------------------------------------------

def run(opts) -> dict:
    chosen = cases(opts)
    if not chosen:
        print(f"## GEMM threshold sweep: no shape matches --cases {opts.cases!r}; skipped")
        return {"records": [], "failures": []}
    peers, skipped, info = H.start(opts, "GEMM threshold sweep (float32 a @ b)",
                                   applicable=("numpy", "tracejit"))
    if "tracejit" not in [p.name for p in peers]:
        print("tracejit is not selected or not installed: nothing to sweep")
        return {"system": info, "records": [], "failures": []}
    rounds = [{mode: spawn(mode, opts, i + 1) for mode in MODES}
              for i in range(1 if opts.quick else ROUNDS)]
    failures = [f for rnd in rounds for r in rnd.values() for f in r["failures"]]
    if any(r.get("have_blas") is False for rnd in rounds for r in rnd.values()):
        failures.append("tracejit found no OpenBLAS, so both modes timed its own GEMM")
    runs = {mode: merge([rnd[mode] for rnd in rounds]) for mode in MODES}
    result = {"system": info, "quick": opts.quick, "skipped": skipped, "default_blas_min":
              DEFAULT_MIN, "modes": MODES, "runs": runs, "rounds": rounds, "failures": failures}
    print_tables(result, chosen)
    return result


def merge(outs: list[dict]) -> dict:
    """Per (shape, peer), the record with the lowest median over the rounds (a failure wins)."""
    best = {}
    for out in outs:
        for r in out["records"]:
            key = (r["label"], r["peer"])
            old = best.get(key)
            if (old is None or r.get("status") != "ok" or old.get("status") == "ok"
                    and r["median_ns"] < old["median_ns"]):
                best[key] = r
    return {"records": list(best.values())}


def print_tables(result: dict, chosen: list[Case]) -> None:
    runs = result["runs"]

    def med(mode, label, peer):
        for r in runs[mode]["records"]:
            if r["label"] == label and r["peer"] == peer:
                return r["median_ns"] if r.get("status") == "ok" else r.get("status", "-")
        return None

    def t(v):
        return H.fmt_time(v) if isinstance(v, (int, float)) else (v or "-")

    rows, verdicts, drift = [], [], []
    for c in sorted(chosen, key=lambda c: (c.macs, c.m)):
        blas, own = med("BLAS", c.label, "tracejit"), med("own", c.label, "tracejit")
        np_b, np_o = med("BLAS", c.label, "numpy"), med("own", c.label, "numpy")
        ok = all(isinstance(v, (int, float)) for v in (blas, own, np_b, np_o))
        r = H.ratio(own, blas) if ok else None
        winner = None if r is None else "own" if r < 1 else "BLAS"
        picks = "BLAS" if c.macs >= DEFAULT_MIN else "own"
        if ok:
            verdicts.append((c, winner, r))
            drift.append(abs(np_o / np_b - 1))
        loss = ("" if winner in (None, picks) else
                f" (+{100 * ((blas if picks == 'BLAS' else own) / min(blas, own) - 1):.0f}%)")
        rows.append([c.label, f"{c.macs:,}", t(np_b), t(blas), t(own), H.fmt_ratio(r),
                     winner or "-", picks + loss,
                     H.fmt_ratio(H.ratio(blas, np_b) if ok else None),
                     H.fmt_ratio(H.ratio(own, np_o) if ok else None)])
    print("\n### Median time per call of a @ b (warm; lower is better), by multiply-adds\n")
    print(H.markdown_table(["MxKxN", "MACs", "numpy", "tracejit BLAS", "tracejit own",
                            "own/BLAS", "faster", f"default ({DEFAULT_MIN}) picks",
                            "BLAS/numpy", "own/numpy"], rows, right_from=1))
    print("\n'tracejit BLAS' ran with TRACEJIT_BLAS_MIN=1, 'tracejit own' with 10**12, each in "
          "its own processes; 'numpy' is NumPy's a @ b in the BLAS processes, and each x/numpy "
          "ratio uses the numpy time of its own processes. "
          + (f"Each time is the lower of {len(result['rounds'])} rounds' medians. "
             if len(result["rounds"]) > 1 else "")
          + "A percentage after the default's pick is how much slower that pick was than the "
          "faster path.")
    if drift:
        print(f"NumPy's time differs between the two modes' processes by {100 * np.median(drift):.0f}% "
              f"on the median shape and at most {100 * max(drift):.0f}%: read own/BLAS "
              "differences within that as noise.")

    if verdicts:
        own_up_to = max((c.macs for c, w, _ in verdicts if w == "own"), default=None)
        blas_from = min((c.macs for c, w, _ in verdicts if w == "BLAS"), default=None)
        lo = max((c.macs for c, w, _ in verdicts if w == "own" and
                  all(w2 == "own" for c2, w2, _ in verdicts if c2.macs <= c.macs)), default=None)
        hi = min((c.macs for c, w, _ in verdicts if w == "BLAS" and
                  all(w2 == "BLAS" for c2, w2, _ in verdicts if c2.macs >= c.macs)), default=None)
        print("\n### Crossover\n")
        print(f"- tracejit's own GEMM is faster on every shape up to {lo:,} MACs" if lo
              else "- tracejit's own GEMM is not faster on the smallest shape")
        print(f"- BLAS is faster on every shape from {hi:,} MACs" if hi
              else "- BLAS is not faster on the largest shape")
        mixed = [f"{c.label} ({w}, {H.fmt_ratio(r)})" for c, w, r in verdicts
                 if lo is not None and hi is not None and lo < c.macs < hi]
        if mixed:
            print("- in between, by shape (faster path, own/BLAS): " + ", ".join(mixed))
        wrong = [(c, w, r) for c, w, r in verdicts
                 if w != ("BLAS" if c.macs >= DEFAULT_MIN else "own")]
        print(f"- the default threshold ({DEFAULT_MIN:,} MACs) picks the faster path on "
              f"{len(verdicts) - len(wrong)} of {len(verdicts)} shapes"
              + (": slower on " + ", ".join(f"{c.label} (own/BLAS {H.fmt_ratio(r)})"
                                            for c, w, r in wrong) if wrong else ""))
        result["crossover"] = {"own_faster_up_to": lo, "blas_faster_from": hi,
                               "last_own_win": own_up_to, "first_blas_win": blas_from,
                               "default_wrong_on": [c.label for c, _, _ in wrong]}
    H.print_failures(result["failures"])


def main(argv=None) -> int:
    p = H.common_parser(__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.child:
        out = child(opts)
        print(json.dumps(out))
        return 1 if out["failures"] else 0
    return H.finish(run(opts), "matmul", opts.json)


if __name__ == "__main__":
    sys.exit(main())
