"""Elementwise NumPy code: tracejit against NumPy, numexpr, jax.jit and torch.compile.

What it measures, in one process on the same float32 data:
  * the median time per call of a warm (already compiled) function, for
      tiny      x * 2.0 + 1.0                         16 elements (call overhead)
      chain12   a GELU-like chain with tanh, power, exp   1k, 1M, 16M elements
      arith12   12 arithmetic ops, no transcendentals     16M elements
    and the ratios peer/numpy and tracejit/peer (time ratios: < 1 means faster);
  * the first-call latency of a freshly compiled function (trace + compile + run
    for tracejit, jit compile + run for jax, dynamo + inductor + run for torch).

Every peer's result is checked against NumPy (allclose, same dtype) on its first
call and again on a warm call, before any timing; a wrong result is reported loudly
and makes the run exit with status 1. Peers that are not installed are skipped.

Run:  PYTHONPATH=python python benchmarks/bench_elementwise.py
      [--quick] [--json PATH] [--cases tiny,chain12/1M] [--peers numpy,tracejit]
(or through benchmarks/run.py, which runs every benchmark module).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import numpy as np

import _harness as H


# ---- the kernels: plain NumPy code, exactly what a user writes ------------------------
# tracejit compiles these functions as they are; jax and torch run the same source with
# `np` rebound to jax.numpy / torch (see _harness.rebind); numexpr gets NE_EXPR below.

def tiny(x):
    return x * 2.0 + 1.0                      # 2 ops


def chain12(x, y):
    # Exactly 12 elementwise ops: x*y, +y, z**3, 0.044715*, z+, 0.7978845608*, tanh,
    # 1.0+, 0.5*z, *(...), exp(x), +. Transcendentals: tanh, power, exp.
    z = x * y + y
    return 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z**3))) + np.exp(x)


def arith12(x, y):
    # Exactly 12 arithmetic ops: x*y, +y, *0.5, -x, y+2.0, *, x*x, +1.0, /, y*0.25, -, +x.
    return ((x * y + y) * 0.5 - x) * (y + 2.0) / (x * x + 1.0) - y * 0.25 + x


def _warm(x):
    return x * 3.0 - 1.0


# numexpr has no common-subexpression variables, so z is written out three times (one
# evaluate; measured faster here than two evaluates with z materialised). Float
# literals are turned into float32 variables by _ne_kernel: as literals they are
# float64 and numexpr would compute, and return, float64.
NE_EXPR = {
    "tiny": "x * 2.0 + 1.0",
    "chain12": "0.5 * (x*y + y) * (1.0 + tanh(0.7978845608 * ((x*y + y) + 0.044715 * (x*y + y)**3)))"
               " + exp(x)",
    "arith12": "((x*y + y) * 0.5 - x) * (y + 2.0) / (x*x + 1.0) - y*0.25 + x",
    "_warm": "x * 3.0 - 1.0",
}

KERNELS = {"tiny": tiny, "chain12": chain12, "arith12": arith12, "_warm": _warm}
ARITY = {"tiny": 1, "chain12": 2, "arith12": 2, "_warm": 1}

FULL_SIZES = [("tiny", 16), ("chain12", 1_000), ("chain12", 1_000_000),
              ("chain12", 16_000_000), ("arith12", 16_000_000)]
QUICK_SIZES = [("tiny", 16), ("chain12", 1_000), ("chain12", 100_000), ("arith12", 100_000)]

RTOL, ATOL = 1e-4, 1e-5          # float32, different tanh/exp implementations
OTHER_PEERS = ("numexpr", "jax.jit", "torch.compile")   # "best peer" is the fastest of these


def size_label(n: int) -> str:
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


@dataclass
class Case:
    name: str
    size: int

    @property
    def label(self) -> str:
        return f"{self.name}/{size_label(self.size)}"

    def inputs(self) -> list[np.ndarray]:
        rng = np.random.default_rng(20240601 + self.size)
        return [rng.standard_normal(self.size, dtype=np.float32) for _ in range(ARITY[self.name])]


# ---- how each peer runs a kernel --------------------------------------------------------

def _ne_kernel(ne, expr: str, nargs: int):
    consts = {}

    def name_literal(m):
        key = f"k{len(consts)}"
        consts[key] = np.float32(float(m.group(0)))
        return key

    expr32 = re.sub(r"(?<![\w.])\d+\.\d*(?:e[-+]?\d+)?", name_literal, expr)
    if nargs == 1:
        return lambda x: ne.evaluate(expr32, local_dict={"x": x, **consts})
    return lambda x, y: ne.evaluate(expr32, local_dict={"x": x, "y": y, **consts})


class Peer(H.Peer):
    """The shared peers of _harness, plus numexpr with its own expression strings."""

    def build(self, kernel: str):
        if self.name == "numexpr":
            return _ne_kernel(self.mod, NE_EXPR[kernel], ARITY[kernel])
        return super().build(KERNELS[kernel])


# ---- running ------------------------------------------------------------------------------

def run_one(peer: Peer, case: Case, xs, ref, opts) -> dict:
    """First call (checked, timed), a warm call (checked), then the steady-state timing."""
    rec = {"case": case.name, "size": case.size, "label": case.label, "peer": peer.name}
    rec.update(H.run_peer(peer, peer.build(case.name), xs, ref, case.label, opts, RTOL, ATOL))
    return rec


def select_cases(opts) -> list[Case]:
    return H.select_cases([Case(n, s) for n, s in (QUICK_SIZES if opts.quick else FULL_SIZES)],
                          opts)


def numpy_pow_note(case: Case, xs) -> float:
    """NumPy's time for z**3 alone on chain12's data (float32 power is slow for z < 0)."""
    x, y = xs
    z = x * y + y
    return H.measure(lambda: z**3, target_s=0.3, min_reps=3, warmup_s=0.01)["median_ns"]


def run(opts) -> dict:
    cases = select_cases(opts)
    if not cases:
        print(f"## Elementwise benchmark: no case matches --cases {opts.cases!r}; skipped")
        return {"records": [], "failures": []}
    peers, skipped, info = H.start(opts, "Elementwise benchmark (float32)", peer_class=Peer)

    failures, records, warmup_ns = [], [], {}
    x = np.arange(8, dtype=np.float32)
    for p in peers:
        if p.name in H.JIT_PEERS:
            try:
                warmup_ns[p.name] = H.warm_up(p, p.build("_warm"), x, _warm(x), RTOL, ATOL)
            except Exception as e:  # noqa: BLE001  (reported, and fails the run)
                failures.append(f"{p.name} warm-up: {type(e).__name__}: {e}")

    pow_notes = {}
    for case in cases:
        xs = case.inputs()
        ref = KERNELS[case.name](*xs)
        print(f"running {case.label} ...", file=sys.stderr, flush=True)
        for p in peers:
            try:
                rec = run_one(p, case, xs, ref, opts)
            except Exception as e:  # noqa: BLE001  (reported, and fails the run)
                rec = {"case": case.name, "size": case.size, "label": case.label, "peer": p.name}
                rec.update(H.failure(p.name, case.label, e, failures))
            records.append(rec)
        if case.name == "chain12" and case.size <= 1_000_000 and peers[0].name == "numpy":
            pow_notes[case.label] = numpy_pow_note(case, xs)
        del xs, ref

    result = {"system": info, "quick": opts.quick, "skipped": skipped, "records": records,
              "warmup_ns": warmup_ns, "numpy_pow3_ns": pow_notes, "failures": failures,
              "rtol": RTOL, "atol": ATOL}
    print_tables(result, [p.name for p in peers])
    return result


# ---- tables -------------------------------------------------------------------------------

def print_tables(result: dict, peer_names: list[str]) -> None:
    by = {(r["label"], r["peer"]): r for r in result["records"]}
    labels = list(dict.fromkeys(r["label"] for r in result["records"]))
    cols = [p for p in H.PEERS if p in peer_names or p in result["skipped"]]

    def med(label, peer):
        r = by.get((label, peer))
        return r["median_ns"] if r and r.get("status") == "ok" else None

    def cell(label, peer):
        r = by.get((label, peer))
        if r is None:
            return "-"
        return H.fmt_time(r["median_ns"]) if r["status"] == "ok" else r["status"]

    rows, ratio_rows = [], []
    for label in labels:
        name, size = label.split("/")
        tj, npy = med(label, "tracejit"), med(label, "numpy")
        others = [(med(label, p), p) for p in OTHER_PEERS if med(label, p) is not None]
        best = min(others) if others else None
        best_txt = f"{H.fmt_ratio(H.ratio(tj, best[0]))} ({best[1]})" if best and tj else "-"
        rows.append([name, size] + [cell(label, p) for p in cols]
                    + [H.fmt_ratio(H.ratio(tj, npy)), best_txt])
        ratio_rows.append([name, size]
                          + [H.fmt_ratio(H.ratio(med(label, p), npy)) for p in cols if p != "numpy"]
                          + [H.fmt_ratio(H.ratio(tj, med(label, p))) for p in OTHER_PEERS if p in cols])
        for p in OTHER_PEERS:
            if p in cols:
                result.setdefault("ratios", {}).setdefault(label, {})[f"tracejit/{p}"] = \
                    H.ratio(tj, med(label, p))
        for p in cols:
            result.setdefault("ratios", {}).setdefault(label, {})[f"{p}/numpy"] = \
                H.ratio(med(label, p), npy)

    print("\n### Median time per call (warm; lower is better)\n")
    print(H.markdown_table(["case", "size"] + cols + ["tracejit/numpy", "tracejit/best peer"], rows))
    print("\nRatios are time ratios: below 1.00x tracejit takes less time. 'best peer' is the "
          "fastest of numexpr, jax.jit, torch.compile on that row.")

    print("\n### Time relative to numpy, and tracejit relative to each peer\n")
    print(H.markdown_table(["case", "size"] + [f"{p}/numpy" for p in cols if p != "numpy"]
                           + [f"tracejit/{p}" for p in OTHER_PEERS if p in cols], ratio_rows))

    H.print_first_call_table(by, labels, ["case", "size"], lambda label: label.split("/"), cols,
                             result["warmup_ns"])

    notes = [(label, ns, med(label, "numpy")) for label, ns in result["numpy_pow3_ns"].items()]
    notes = [f"{label}: {H.fmt_time(ns)} of {H.fmt_time(tot)} ({100 * ns / tot:.0f}%)"
             for label, ns, tot in notes if tot]
    if notes:
        print("\nNote: numpy's float32 `z**3` is slow for negative bases; on chain12 it alone takes "
              + "; ".join(notes) + " of numpy's time, which inflates chain12's tracejit/numpy ratio.")

    H.print_failures(result["failures"])


def main(argv=None) -> int:
    opts = H.common_parser(__doc__.splitlines()[0]).parse_args(argv)
    return H.finish(run(opts), "elementwise", opts.json)


if __name__ == "__main__":
    sys.exit(main())
