"""NumPy programs (products, reductions, a stencil): tracejit vs NumPy, jax.jit, torch.compile.

What it measures, in one process on the same float32 data:
  * the median time per call of a warm (already compiled) function, for
      mlp        np.tanh(x @ W1 + b1) @ W2 + b2          x 32x64, W1 64x64, W2 64x8
      logreg     logistic-regression log density          X 1000x20, y in {-1,+1}, w 20:
                 -sum(logaddexp(0, -y * (X @ w))) - 0.5 * dot(w, w)
      softmax    row softmax (max-subtracted)             256x1024
      layernorm  mean/var over the last axis, gain, bias  256x1024
      stencil    2-D 5-point stencil, one explicit step   512x512
    the ratio tracejit/numpy next to the issue's target for that case (met or not),
    and the ratios tracejit/jax.jit and tracejit/torch.compile (time ratios: < 1 means
    tracejit is faster);
  * the first-call latency of a freshly compiled function (trace + compile + run).

Every peer's result is checked against NumPy (allclose, rtol 1e-4, same dtype and
shape) on its first call and again on a warm call, before any timing; a wrong result
is reported loudly and makes the run exit with status 1. Peers that are not installed
are skipped; numexpr is not run here (it has no matrix products). jax.jit runs the
same source with np = jax.numpy; torch.compile runs it with np = torch, except where
torch spells an op differently (TORCH_KERNELS). NumPy's @ and tracejit's products of
at least TRACEJIT_BLAS_MIN multiply-adds (mlp's two) call the same OpenBLAS.

Run:  PYTHONPATH=python python benchmarks/bench_numpy.py
      [--quick] [--json PATH] [--cases mlp,softmax] [--peers numpy,tracejit,jax.jit]
(or through benchmarks/run.py, which runs every benchmark module).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

import _harness as H


# ---- the kernels: plain NumPy code, exactly what a user writes ------------------------

def mlp(x, W1, b1, W2, b2):
    return np.tanh(x @ W1 + b1) @ W2 + b2


def logreg(X, y, w):
    return -np.sum(np.logaddexp(0.0, -y * (X @ w))) - 0.5 * np.dot(w, w)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layernorm(x, g, b):
    mu = np.mean(x, axis=-1, keepdims=True)
    var = np.var(x, axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def stencil(u):
    return u[1:-1, 1:-1] + 0.1 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:]
                                  - 4 * u[1:-1, 1:-1])


def _warm(x):
    return np.tanh(x @ x).sum(axis=-1) + 1.0


# The same computations as torch spells them (run with np = torch): torch.logaddexp takes
# no Python scalar, Tensor.max(dim) returns (values, indices), and var is unbiased by
# default. Kernels not named here run their NumPy source under torch unchanged.

def logreg_torch(X, y, w):
    z = -y * (X @ w)
    return -np.sum(np.logaddexp(np.zeros_like(z), z)) - 0.5 * np.dot(w, w)


def softmax_torch(x):
    e = np.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def layernorm_torch(x, g, b):
    mu = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, correction=0)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


KERNELS = {"mlp": mlp, "logreg": logreg, "softmax": softmax, "layernorm": layernorm,
           "stencil": stencil, "_warm": _warm}
TORCH_KERNELS = {"logreg": logreg_torch, "softmax": softmax_torch, "layernorm": layernorm_torch}

RTOL, ATOL = 1e-4, 1e-5          # float32; BLAS, vector math and summation orders differ
SEED = 20240601
COMPARE = ("jax.jit", "torch.compile")       # tracejit/peer columns


@dataclass
class Case:
    name: str
    shapes: str                  # for the table
    target: float | None         # the target for tracejit/numpy (same-run medians)

    @property
    def label(self) -> str:
        return self.name

    def inputs(self) -> list[np.ndarray]:
        rng = np.random.default_rng([SEED, *self.name.encode()])
        f32 = np.float32

        def normal(*shape, scale=1.0):
            return rng.standard_normal(shape, dtype=f32) * f32(scale)

        if self.name == "mlp":      # Glorot-like weights keep tanh out of saturation
            return [normal(32, 64), normal(64, 64, scale=0.125), normal(64, scale=0.1),
                    normal(64, 8, scale=0.125), normal(8, scale=0.1)]
        if self.name == "logreg":
            y = np.where(rng.random(1000) < 0.5, f32(-1), f32(1))
            return [normal(1000, 20), y, normal(20, scale=0.3)]
        if self.name == "softmax":
            return [normal(256, 1024)]
        if self.name == "layernorm":
            return [normal(256, 1024, scale=2.0) + f32(0.5), 1.0 + normal(1024, scale=0.1),
                    normal(1024, scale=0.1)]
        if self.name == "stencil":
            return [normal(512, 512)]
        raise ValueError(self.name)


CASES = [
    Case("mlp", "32x64 @ 64x64 @ 64x8", 0.6),
    Case("logreg", "1000x20 @ 20", 0.6),
    Case("softmax", "256x1024", 0.5),
    Case("layernorm", "256x1024", 0.5),
    Case("stencil", "512x512", None),
]


class Peer(H.Peer):
    def build(self, kernel: str):
        return super().build(KERNELS[kernel], TORCH_KERNELS.get(kernel))


# ---- running ------------------------------------------------------------------------------

def run(opts) -> dict:
    cases = H.select_cases(CASES, opts)
    if not cases:
        print(f"## NumPy programs benchmark: no case matches --cases {opts.cases!r}; skipped")
        return {"records": [], "failures": []}
    peers, skipped, info = H.start(opts, "NumPy programs benchmark (float32)",
                                   applicable=("numpy", "tracejit", "jax.jit", "torch.compile"),
                                   peer_class=Peer)

    failures, records, warmup_ns = [], [], {}
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
    for p in peers:
        if p.name in H.JIT_PEERS:
            try:
                warmup_ns[p.name] = H.warm_up(p, p.build("_warm"), x, _warm(x), RTOL, ATOL)
            except Exception as e:  # noqa: BLE001  (reported, and fails the run)
                failures.append(f"{p.name} warm-up: {type(e).__name__}: {e}")

    for case in cases:
        xs = case.inputs()
        ref = np.asarray(KERNELS[case.name](*xs))      # logreg: a 0-d array, as tracejit's
        print(f"running {case.label} ...", file=sys.stderr, flush=True)
        for p in peers:
            rec = {"case": case.name, "label": case.label, "peer": p.name}
            try:
                rec.update(H.run_peer(p, p.build(case.name), xs, ref, case.label, opts,
                                      RTOL, ATOL))
            except Exception as e:  # noqa: BLE001  (reported, and fails the run)
                rec.update(H.failure(p.name, case.label, e, failures))
            records.append(rec)
        del xs, ref

    result = {"system": info, "quick": opts.quick, "skipped": skipped, "records": records,
              "warmup_ns": warmup_ns, "failures": failures, "rtol": RTOL, "atol": ATOL}
    print_tables(result, cases, [p.name for p in peers])
    return result


# ---- tables -------------------------------------------------------------------------------

def print_tables(result: dict, cases: list[Case], peer_names: list[str]) -> None:
    by = {(r["label"], r["peer"]): r for r in result["records"]}
    cols = [p for p in H.PEERS if p in peer_names
            or (p in result["skipped"] and not result["skipped"][p].startswith("not applicable"))]
    cmp_cols = [p for p in COMPARE if p in cols]

    def med(label, peer):
        r = by.get((label, peer))
        return r["median_ns"] if r and r.get("status") == "ok" else None

    def cell(label, peer):
        r = by.get((label, peer))
        if r is None:
            return "-"
        return H.fmt_time(r["median_ns"]) if r["status"] == "ok" else r["status"]

    rows, ratio_rows, targets = [], [], {}
    for c in cases:
        tj, npy = med(c.label, "tracejit"), med(c.label, "numpy")
        r = H.ratio(tj, npy)
        met = None if c.target is None or r is None else r <= c.target
        if c.target is not None:
            targets[c.name] = {"target": c.target, "ratio": r, "met": met}
        rows.append([c.name, c.shapes] + [cell(c.label, p) for p in cols]
                    + [H.fmt_ratio(r), H.fmt_ratio(c.target) if c.target else "-",
                       "-" if met is None else "yes" if met else "NO"]
                    + [H.fmt_ratio(H.ratio(tj, med(c.label, p))) for p in cmp_cols])
        ratio_rows.append([c.name, c.shapes]
                          + [H.fmt_ratio(H.ratio(med(c.label, p), npy)) for p in cols if p != "numpy"]
                          + [H.fmt_ratio(H.ratio(tj, med(c.label, p))) for p in cmp_cols])
        ratios = result.setdefault("ratios", {}).setdefault(c.label, {})
        for p in cols:
            ratios[f"{p}/numpy"] = H.ratio(med(c.label, p), npy)
        for p in cmp_cols:
            ratios[f"tracejit/{p}"] = H.ratio(tj, med(c.label, p))
    result["targets"] = targets

    print("\n### Median time per call (warm; lower is better)\n")
    print(H.markdown_table(["case", "inputs"] + cols
                           + ["tracejit/numpy", "target", "met"]
                           + [f"tracejit/{p}" for p in cmp_cols], rows))
    print("\nRatios are time ratios: below 1.00x tracejit takes less time. 'target' is the "
          "issue's bound on tracejit/numpy (same-run medians); 'met' says whether this run meets it.")
    print("tracejit splits large kernels across its own thread pool (tracejit.get_num_threads(); "
          "its BLAS calls use OpenBLAS's threads, as NumPy's @ does); jax.jit and torch.compile "
          "use their own thread pools.")

    print("\n### Time relative to numpy, and tracejit relative to each peer\n")
    print(H.markdown_table(["case", "inputs"] + [f"{p}/numpy" for p in cols if p != "numpy"]
                           + [f"tracejit/{p}" for p in cmp_cols], ratio_rows))

    shapes = {c.label: c.shapes for c in cases}
    H.print_first_call_table(by, [c.label for c in cases], ["case", "inputs"],
                             lambda label: [label, shapes[label]], cols, result["warmup_ns"])

    faults = [[c.name] + [f"{by[(c.label, p)]['faults_per_call']:.0f}"
                          if by.get((c.label, p), {}).get("status") == "ok" else "-" for p in cols]
              for c in cases]
    if any(cell != "-" and int(cell) >= 10 for row in faults for cell in row[1:]):
        print("\n### Minor page faults per warm call (whole process)\n")
        print(H.markdown_table(["case"] + cols, faults, right_from=1))
        print("\nglibc malloc serves large blocks from fresh mmaps (threshold 128 KiB, raised "
              "as such blocks are freed), so a call whose arrays come from new mappings pays one "
              "fault per 4 KiB page; how often depends on what the process allocated before. "
              "MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456 in the "
              "environment keeps such blocks in the heap, to time compute alone.")

    if targets:
        done = [(n, t) for n, t in targets.items() if t["met"] is not None]
        parts = [f"{n} {H.fmt_ratio(t['ratio'])} {'<=' if t['met'] else '>'} "
                 f"{H.fmt_ratio(t['target'])} {'met' if t['met'] else 'MISSED'}" for n, t in done]
        print(f"\nIssue targets (tracejit/numpy, medians of this run): "
              f"{sum(t['met'] for _, t in done)} of {len(targets)} met"
              + (": " + "; ".join(parts) if parts else "") + ".")

    H.print_failures(result["failures"])


def main(argv=None) -> int:
    opts = H.common_parser(__doc__.splitlines()[0]).parse_args(argv)
    return H.finish(run(opts), "numpy", opts.json)


if __name__ == "__main__":
    sys.exit(main())
