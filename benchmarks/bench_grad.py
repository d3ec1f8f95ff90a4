"""Value and gradient of log densities: tracejit.value_and_grad against jax.jit(value_and_grad),
torch eager autograd and torch.compile(torch.func.grad_and_value), in one process on
the same data.

Cases (the inner loop of SVI and HMC: a log density and its gradient, many times):
  logreg   logistic-regression log density, X 1000x20, y in {-1,+1}, gradient in w (20,):
           -sum(logaddexp(0, -y * (X @ w))) - 0.5 * dot(w, w)        float32 and float64
  eight    eight-schools (non-centered) log density, gradient in a dict of parameters
           {mu: (), log_tau: (), theta: (8,)}                                   float64

Every peer runs with --threads (default 1) tracejit, torch and OpenBLAS threads (jax's
CPU client keeps its own pool): on this small shared machine a second spinning thread
costs milliseconds per call. tracejit's optimizing tier settles before timing. The
peers of a case are timed in alternating rounds (_harness.interleaved). For each peer:
the median time per warm call (value and gradient, results ready as arrays), the
median of the same-round ratios tracejit/peer (< 1: tracejit faster) next to the
issue's target (logreg: <= 0.3x jax.jit, <= 0.1x torch eager), and the first-call
latency. Every
peer's value and gradient are checked, before any timing, against NumPy code with the
gradient written by hand (float64); a wrong result makes the run exit with status 1.

Run:  PYTHONPATH=python python benchmarks/bench_grad.py
      [--quick] [--json PATH] [--cases logreg,eight,logreg/float32]
      [--peers tracejit,jax.jit,torch,torch.compile] [--threads N]
(or through benchmarks/run.py, which runs every benchmark module; peers it names that
do not apply here, numpy and numexpr, are ignored).
"""
from __future__ import annotations

import sys
import time

import numpy as np

import _harness as H

PEERS = ("tracejit", "jax.jit", "torch", "torch.compile")
TARGETS = {"logreg": {"jax.jit": 0.3, "torch": 0.1}}


# ---- the log densities, as a user writes them (np is rebound for jax and torch) ----

def logreg(w, X, y):
    return -np.sum(np.logaddexp(0.0, -y * (X @ w))) - 0.5 * np.dot(w, w)


def logreg_torch(w, X, y):
    z = -y * (X @ w)
    return -np.sum(np.logaddexp(np.zeros_like(z), z)) - 0.5 * np.dot(w, w)


def eight(p, y, sigma):
    tau = np.exp(p["log_tau"])
    theta = p["mu"] + tau * p["theta"]
    lp = -0.5 * p["mu"] ** 2 / 25.0                      # mu ~ Normal(0, 5)
    lp = lp - np.log1p((tau / 5.0) ** 2) + p["log_tau"]   # tau ~ HalfCauchy(5), log-Jacobian
    lp = lp - 0.5 * np.sum(p["theta"] ** 2)               # theta ~ Normal(0, 1)
    return lp - 0.5 * np.sum(((y - theta) / sigma) ** 2)  # y ~ Normal(theta, sigma)


# ---- references: NumPy with the gradient written by hand ----------------------------

def logreg_ref(w, X, y):
    z = -y * (X @ w)
    v = -np.sum(np.logaddexp(0.0, z)) - 0.5 * w @ w
    s = 1.0 / (1.0 + np.exp(-z))                          # d logaddexp(0, z) / dz
    return v, X.T @ (s * y) - w


def eight_ref(p, y, sigma):
    tau = np.exp(p["log_tau"])
    theta = p["mu"] + tau * p["theta"]
    r = (y - theta) / sigma ** 2
    v = eight(p, y, sigma)
    g_mu = -p["mu"] / 25.0 + r.sum()
    g_lt = -2 * (tau / 5.0) ** 2 / (1 + (tau / 5.0) ** 2) + 1.0 + tau * (r * p["theta"]).sum()
    g_th = -p["theta"] + tau * r
    return v, {"mu": np.float64(g_mu), "log_tau": np.float64(g_lt), "theta": g_th}


def make_logreg(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 20)).astype(dtype)
    y = np.sign(rng.standard_normal(1000)).astype(dtype)
    w = (0.1 * rng.standard_normal(20)).astype(dtype)
    return (w, X, y)


def make_eight():
    y = np.array([28., 8., -3., 7., -1., 1., 18., 12.])
    sigma = np.array([15., 10., 16., 11., 9., 11., 10., 18.])
    rng = np.random.default_rng(1)
    p = {"mu": np.array(4.4), "log_tau": np.array(1.2), "theta": rng.standard_normal(8)}
    return (p, y, sigma)


CASES = [("logreg", "float32", logreg, logreg_torch, logreg_ref, lambda: make_logreg(np.float32)),
         ("logreg", "float64", logreg, logreg_torch, logreg_ref, lambda: make_logreg(np.float64)),
         ("eight", "float64", eight, eight, eight_ref, make_eight)]


# ---- how each peer computes (value, gradient) ---------------------------------------

def _leaves(tree):
    if isinstance(tree, dict):
        return [v for k in sorted(tree) for v in _leaves(tree[k])]
    return [tree]


def build(peer, mod, fn, torch_fn, args):
    """(call, to_numpy): call() returns the peer's (value, gradient) ready to use."""
    if peer == "tracejit":
        vg = mod.value_and_grad(H.rebind(fn))
        call = lambda: vg(*args)   # noqa: E731
        call.compiled = vg
        return call, (lambda r: (float(r[0]), _leaves(r[1])))
    if peer == "jax.jit":
        vg = mod.jit(mod.value_and_grad(H.rebind(fn, np=mod.numpy)))
        jargs = mod.tree_util.tree_map(mod.device_put, args)
        return (lambda: mod.block_until_ready(vg(*jargs))), \
            (lambda r: (float(r[0]), [np.asarray(v) for v in _leaves(r[1])]))
    torch = mod
    targs = [({k: torch.from_numpy(np.asarray(v)) for k, v in a.items()} if isinstance(a, dict)
              else torch.from_numpy(a)) for a in args]
    tfn = H.rebind(torch_fn, np=torch)
    if peer == "torch":
        def call():   # a fresh leaf per call, as an SVI/HMC step gets new parameters
            p = targs[0]
            if isinstance(p, dict):
                p = {k: v.detach().requires_grad_() for k, v in p.items()}
                ps = [p[k] for k in sorted(p)]
            else:
                p = p.detach().requires_grad_()
                ps = [p]
            v = tfn(p, *targs[1:])
            gs = torch.autograd.grad(v, ps)
            return v.detach(), list(gs)
        return call, (lambda r: (float(r[0]), [g.numpy() for g in r[1]]))
    # torch.compile: the same computation spelled with torch directly (dynamo rejects a
    # module bound to the name np), differentiated by torch.func and compiled whole.
    tc = {"logreg": _logreg_tc, "eight": _eight_tc}[fn.__name__]
    gv = torch.compile(torch.func.grad_and_value(H.rebind(tc)), dynamic=False)

    def call():
        g, v = gv(*targs)
        return v, (_leaves(g) if isinstance(g, dict) else [g])
    return call, (lambda r: (float(r[0]), [g.detach().numpy() for g in r[1]]))


def _logreg_tc(w, X, y):
    import torch
    z = -y * (X @ w)
    return -torch.sum(torch.logaddexp(torch.zeros_like(z), z)) - 0.5 * torch.dot(w, w)


def _eight_tc(p, y, sigma):
    import torch
    tau = torch.exp(p["log_tau"])
    theta = p["mu"] + tau * p["theta"]
    lp = -0.5 * p["mu"] ** 2 / 25.0 - torch.log1p((tau / 5.0) ** 2) + p["log_tau"]
    lp = lp - 0.5 * torch.sum(p["theta"] ** 2)
    return lp - 0.5 * torch.sum(((y - theta) / sigma) ** 2)


def check(peer, what, got, ref, rtol):
    v, gs = got
    rv, rg = ref[0], _leaves(ref[1])
    H.check_close(f"{peer} {what} value", np.float64(v), np.float64(rv), rtol, rtol)
    for g, r in zip(gs, rg):
        H.check_close(f"{peer} {what} gradient", np.asarray(g, np.float64),
                      np.asarray(r, np.float64), rtol, rtol)


def run(opts) -> dict:
    """Runs the selected cases and peers, prints the tables; returns the raw numbers
    (records) and the failures (a wrong or failed peer)."""
    H._prepare_environment()
    chosen = [s.strip() for s in (opts.peers or ",".join(PEERS)).split(",") if s.strip()]
    mods = {}
    print("## value and gradient of log densities (bench_grad)\n")
    for name in PEERS:
        if name not in chosen:
            continue
        if name == "tracejit":
            import tracejit
            mods[name] = tracejit
            continue
        modname = "jax" if name == "jax.jit" else "torch"
        try:
            mod = __import__(modname)
            if modname == "jax":
                mod.config.update("jax_enable_x64", True)
            mods[name] = mod
        except ImportError as e:
            print(f"{name}: not installed ({e}); skipped")
    threads = getattr(opts, "threads", 1)
    H.set_openblas_threads(threads)
    if "tracejit" in mods and hasattr(mods["tracejit"], "set_num_threads"):
        mods["tracejit"].set_num_threads(threads)
    if "torch" in mods or "torch.compile" in mods:
        (mods.get("torch") or mods["torch.compile"]).set_num_threads(threads)
    print(f"torch and OpenBLAS threads: {threads} (OpenBLAS reports {H.openblas_threads()})")
    busy = H.busy_elsewhere()
    if busy is not None:
        print(f"other load on the machine while idle: {100 * busy:.0f}% of all cores")
    wanted = set(opts.cases.split(",")) if opts.cases else None
    target_s = 0.3 if opts.quick else 2.0
    rows, records, failures = [], [], []
    for name, dt, fn, torch_fn, ref_fn, make in CASES:
        if wanted and name not in wanted and f"{name}/{dt}" not in wanted:
            continue
        args = make()
        ref = ref_fn(*[a if isinstance(a, dict) else a.astype(np.float64) for a in args])
        rtol = 2e-4 if dt == "float32" else 1e-9
        calls, recs = {}, {}
        for peer, mod in mods.items():
            try:
                call, to_np = build(peer, mod, fn, torch_fn, args)
                t0 = time.perf_counter_ns()
                first = call()
                first_ns = time.perf_counter_ns() - t0
                check(peer, f"{name}/{dt}", to_np(first), ref, rtol)
                check(peer, f"{name}/{dt}", to_np(call()), ref, rtol)
                if hasattr(getattr(call, "compiled", None), "tiers"):   # tracejit's steady state
                    H.settle_tier(call.compiled, call)
                    check(peer, f"{name}/{dt}", to_np(call()), ref, rtol)
                calls[peer] = call
                recs[peer] = {"case": name, "dtype": dt, "peer": peer, "first_ns": first_ns}
            except Exception as e:   # a peer that cannot run this case is reported, not fatal
                H.failure(peer, f"{name}/{dt}", e, failures)
        # alternating rounds: each ratio is the median of same-round ratios
        m = H.interleaved(calls, target_s * len(calls)) if calls else {"ratios": {}}
        for peer, rec in recs.items():
            rec.update(m[peer])
            records.append(rec)
        row = [name, dt]
        for peer in mods:
            t = m.get(peer, {}).get("median_ns")
            cell = H.fmt_time(t) if t else "-"
            r = m["ratios"].get(peer)
            if peer != "tracejit" and r is not None and "tracejit" in calls:
                goal = TARGETS.get(name, {}).get(peer)
                cell += f" ({H.fmt_ratio(r)}" + (f", target <= {goal}x {'met' if r <= goal else 'NOT met'}"
                                                 if goal else "") + ")"
            row.append(cell)
        rows.append(row)
    if wanted and not rows and not getattr(opts, "skip_unmatched", False):
        raise SystemExit(f"--cases {opts.cases!r} matches no case")
    if rows:
        print()
        print(H.markdown_table(["case", "dtype"] + [f"{p} (tracejit/{p})" if p != "tracejit" else p
                                                    for p in mods], rows))
        print("\nfirst call (trace + compile + run):")
        for r in records:
            print(f"  {r['case']}/{r['dtype']:8s} {r['peer']:14s} {H.fmt_ms(r['first_ns'])}")
    H.print_failures(failures)
    return {"records": records, "failures": failures}


def main(argv=None) -> int:
    return H.main_with_threads(run, __doc__, "bench_grad", argv)


if __name__ == "__main__":
    sys.exit(main())
