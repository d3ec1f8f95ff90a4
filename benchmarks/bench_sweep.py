"""Fast at every size: tracejit against NumPy (and numexpr, jax.jit, torch.compile)
over element counts from 1 to 2^24, float32, in one process on the same data.

Kernels (plain NumPy code, run as they are by tracejit, with np rebound by jax/torch):
  chain12    the GELU-like 12-op chain of bench_elementwise (tanh, power, exp)
  lse_rows   logsumexp over rows of 256 (n/256 rows; a single row below 256)
  arith12    12 arithmetic ops, no transcendentals
  softplus   log1p(exp(-|x|)) + max(x, 0): transcendental-heavy, a Pyro staple
  normal_lp  a Normal log density, -0.5*((x-mu)/s)^2 - log(s) - 0.5*log(2 pi),
             with log and a division: the other transcendental-heavy workload

Prints, per kernel, the median time per call at each size and the ratio
tracejit/peer (< 1: tracejit is faster), and flags any size where tracejit is slower
than NumPy. Then the memory bandwidth of arith12 at 16M: bytes read and written per
second over those of a plain copy (np.copyto into a preallocated array) measured in
the same run.

Run:  PYTHONPATH=python python benchmarks/bench_sweep.py [--quick] [--json PATH]
      [--cases chain12,arith12/16M] [--peers numpy,tracejit,jax.jit]
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

import _harness as H
from bench_elementwise import _ne_kernel, arith12, chain12  # the same kernels


def lse_rows(x):
    m = np.max(x, axis=-1, keepdims=True)
    return np.log(np.sum(np.exp(x - m), axis=-1)) + m[..., 0]


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


def normal_lp(x, y):
    s = np.abs(y) + 0.5
    z = (x - 0.25) / s
    return -0.5 * z * z - np.log(s) - 0.9189385332046727


def _lse_torch(x):
    import torch
    return torch.logsumexp(x, dim=-1)


KERNELS = {"chain12": chain12, "lse_rows": lse_rows, "arith12": arith12,
           "softplus": softplus, "normal_lp": normal_lp}
ARITY = {"chain12": 2, "lse_rows": 1, "arith12": 2, "softplus": 1, "normal_lp": 2}
NE_EXPR = {
    "chain12": "0.5 * (x*y + y) * (1.0 + tanh(0.7978845608 * ((x*y + y) + 0.044715 * "
               "(x*y + y)**3))) + exp(x)",
    "arith12": "((x*y + y) * 0.5 - x) * (y + 2.0) / (x*x + 1.0) - y*0.25 + x",
    "softplus": "log1p(exp(-abs(x))) + where(x > 0.0, x, 0.0)",
    "normal_lp": "-0.5 * ((x - 0.25) / (abs(y) + 0.5))**2 - log(abs(y) + 0.5) "
                 "- 0.9189385332046727",
}
FULL_SIZES = [1 << k for k in range(0, 25, 2)]            # 1, 4, 16, ..., 2^24
QUICK_SIZES = [1, 64, 4096, 1 << 16]
RTOL, ATOL = 2e-4, 1e-5


@dataclass
class Case:
    name: str
    size: int

    @property
    def label(self) -> str:
        return f"{self.name}/{self.size}"

    def inputs(self):
        rng = np.random.default_rng(7 + self.size)
        shape = (self.size,)
        if self.name == "lse_rows":
            shape = (self.size // 256, 256) if self.size >= 256 else (1, self.size)
        return [rng.standard_normal(shape, dtype=np.float32) for _ in range(ARITY[self.name])]


class Peer(H.Peer):
    def build(self, kernel: str):
        if self.name == "numexpr":
            if kernel not in NE_EXPR:
                return None
            # float literals become float32 variables, so numexpr stays in float32
            return _ne_kernel(self.mod, NE_EXPR[kernel], ARITY[kernel])
        if self.name == "torch.compile" and kernel == "lse_rows":
            return super().build(KERNELS[kernel], torch_fn=_lse_torch)
        return super().build(KERNELS[kernel])


def copy_bandwidth(n: int) -> float:
    """Bytes per second of np.copyto between two preallocated float32 arrays of n."""
    src = np.ones(n, dtype=np.float32)
    dst = np.empty_like(src)
    t = H.measure(lambda: np.copyto(dst, src), target_s=1.0, min_reps=5)["median_ns"]
    return 2 * src.nbytes / (t * 1e-9)


def run(opts) -> dict:
    sizes = QUICK_SIZES if opts.quick else FULL_SIZES
    cases = H.select_cases([Case(k, n) for k in KERNELS for n in sizes], opts)
    peers, skipped, info = H.start(opts, "Size sweep (float32)", peer_class=Peer)
    records, failures = [], []
    for case in cases:
        xs = case.inputs()
        ref = KERNELS[case.name](*xs)
        print(f"running {case.label} ...", file=sys.stderr, flush=True)
        target = 0.1 if case.size <= (1 << 16) else 0.4
        for p in peers:
            rec = {"case": case.name, "size": case.size, "peer": p.name}
            f = p.build(case.name)
            if f is None:
                continue
            try:
                rec.update(H.run_peer(p, f, xs, ref, case.label, opts, RTOL, ATOL,
                                      target_s=target))
            except Exception as e:  # noqa: BLE001  (reported, and fails the run)
                rec.update(H.failure(p.name, case.label, e, failures))
            records.append(rec)
        del xs, ref
    bw = None
    big = [r for r in records if r["case"] == "arith12" and r["size"] == 1 << 24
           and r["peer"] == "tracejit" and r.get("status") == "ok"]
    if big:
        copy = copy_bandwidth(1 << 24)
        moved = 3 * 4 * (1 << 24) / (big[0]["median_ns"] * 1e-9)
        bw = {"copy_Bps": copy, "arith12_Bps": moved, "fraction": moved / copy}
    result = {"system": info, "records": records, "failures": failures, "bandwidth": bw}
    print_tables(result, [p.name for p in peers])
    return result


def print_tables(result: dict, names: list[str]) -> None:
    by = {(r["case"], r["size"], r["peer"]): r for r in result["records"]}
    others = [p for p in names if p != "tracejit"]
    for kernel in dict.fromkeys(r["case"] for r in result["records"]):
        print(f"\n### {kernel}\n")
        print("| n | tracejit | " + " | ".join(f"tj/{p}" for p in others) + " |")
        print("|---:|---:|" + "---:|" * len(others))
        slower = []
        for n in sorted({r["size"] for r in result["records"] if r["case"] == kernel}):
            tj = by.get((kernel, n, "tracejit"))
            if not tj or tj.get("status") != "ok":
                continue
            cells = []
            for p in others:
                r = by.get((kernel, n, p))
                ok = r and r.get("status") == "ok"
                cells.append(f"{tj['median_ns'] / r['median_ns']:.2f}" if ok else "-")
                if p == "numpy" and ok and tj["median_ns"] > r["median_ns"]:
                    slower.append(n)
            print(f"| {n} | {H.fmt_time(tj['median_ns'])} | " + " | ".join(cells) + " |")
        print("\nslower than NumPy at: " + (", ".join(map(str, slower)) if slower else "no size"))
    bw = result.get("bandwidth")
    if bw:
        print(f"\narith12 at 16M moves {bw['arith12_Bps'] / 1e9:.1f} GB/s; a plain copy "
              f"{bw['copy_Bps'] / 1e9:.1f} GB/s: {100 * bw['fraction']:.0f}% of copy bandwidth")
    if result["failures"]:
        print("\nFAILURES:\n" + "\n".join(result["failures"]))


def main(argv=None) -> int:
    opts = H.common_parser(__doc__.splitlines()[0]).parse_args(argv)
    return H.finish(run(opts), "sweep", opts.json)


if __name__ == "__main__":
    sys.exit(main())
