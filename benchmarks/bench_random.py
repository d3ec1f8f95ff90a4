"""Random numbers inside compiled code (issue 15): tracejit's counter-based draws
(Philox4x32-10, fused into the loops that use them) against torch eager, torch.compile
and NumPy's Generator, in one process, every peer given the same thread budget.

Cases:
  randn/16M     normal float32 draws of 2**24 elements: tracejit (torch.randn_like in a
                compiled function) vs torch.randn_like, torch.compile of it, and
                np.random.Generator.standard_normal(dtype=float32)
  dropout/1M, dropout/16M
                F.dropout(x, 0.1) * 2 + b in training mode, float32: vs torch eager and
                torch.compile
  gamma/1M      standard gamma draws (concentration 0.7 and 2.5, half each: both branches of
                Marsaglia-Tsang), float32: torch._standard_gamma in a compiled function vs
                torch._standard_gamma, torch.compile of it, np.random.Generator.standard_gamma
  poisson/1M    Poisson draws (rates 4 and 40, half each: inversion and PTRS), float32:
                torch.poisson compiled vs torch.poisson, torch.compile, Generator.poisson
                Each sampler case also prints the Kolmogorov-Smirnov statistic of
                tracejit's draws against the exact CDF (scipy.stats, when installed)
  vae           one training step of a VAE (784-400-20 encoder, 20-400-784 decoder,
                batch 128, Adam): the compiled module's loss (its forward and backward
                fused, autograd route) vs torch eager
  vae-step      the same step with the whole step function compiled (zero_grad,
                loss, backward, Adam's step: python/tracejit/_train_step.py)
Targets (issue 15, same-run median ratios): randn at most 0.5x torch and 0.5x NumPy;
dropout chain at 16M at most 0.3x torch eager and 0.8x torch.compile; the VAE step at
most 0.6x torch eager. Draws differ from eager's streams, so results are checked by
their moments (and the dropout chain by its structure), not element by element.

Run:  PYTHONPATH=python python benchmarks/bench_random.py [--quick] [--threads N]
      [--cases randn/16M,dropout/16M,vae] [--peers tracejit,torch,torch.compile,numpy]
"""
from __future__ import annotations

import sys
import time

import numpy as np

import _harness as H

PEERS = ("tracejit", "torch", "torch.compile", "numpy")
TARGET = {"randn/16M": {"torch": 0.5, "numpy": 0.5},
          "dropout/16M": {"torch": 0.3, "torch.compile": 0.8},
          "vae": {"torch": 0.6}, "vae-step": {"torch": 0.6}}
CASES = ["randn/16M", "dropout/1M", "dropout/16M", "gamma/1M", "poisson/1M", "vae",
         "vae-step"]


def _bound(f, *args):
    call = lambda: f(*args)  # noqa: E731
    call.compiled = f        # for settle_tier
    return call


def _randn_peers(torch, tj, n, peers):
    x = torch.zeros(n)
    out = {}
    if "tracejit" in peers:
        out["tracejit"] = _bound(tj.compile(lambda x: torch.randn_like(x)), x)
    if "torch" in peers:
        out["torch"] = lambda: torch.randn_like(x)
    if "torch.compile" in peers:
        out["torch.compile"] = (lambda f: lambda: f(x))(torch.compile(lambda x: torch.randn_like(x)))
    if "numpy" in peers:
        g = np.random.default_rng(0)
        out["numpy"] = lambda: g.standard_normal(n, dtype=np.float32)
    return out


def _check_normal(name, r):
    r = np.asarray(r, np.float64)
    if abs(r.mean()) > 0.01 or abs(r.std() - 1) > 0.01:
        raise AssertionError(f"{name}: mean {r.mean():.4f}, std {r.std():.4f}")


def _dropout_peers(torch, tj, n, peers):
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, generator=gen) + 1
    b = torch.rand(n, generator=gen)

    def chain(x, b):
        return F.dropout(x, 0.1, training=True) * 2.0 + b
    out = {}
    if "tracejit" in peers:
        out["tracejit"] = _bound(tj.compile(chain), x, b)
    if "torch" in peers:
        out["torch"] = lambda: chain(x, b)
    if "torch.compile" in peers:
        out["torch.compile"] = (lambda f: lambda: f(x, b))(torch.compile(chain))
    return out, (x, b)


def _check_dropout(name, r, xb):
    x, b = (t.numpy() for t in xb)
    r = r.numpy()
    dropped = np.isclose(r, b)
    kept = ~dropped
    if abs(dropped.mean() - 0.1) > 0.01 or not np.allclose(r[kept], x[kept] / 0.9 * 2 + b[kept],
                                                              rtol=1e-5):
        raise AssertionError(f"{name}: not dropout(x, 0.1) * 2 + b")


def _sampler_peers(torch, tj, kind, n, peers):
    """Gamma or Poisson draws of n float32 elements, half with each parameter."""
    lo, hi = (0.7, 2.5) if kind == "gamma" else (4.0, 40.0)
    p = torch.cat([torch.full((n // 2,), lo), torch.full((n - n // 2,), hi)])
    fn = torch._standard_gamma if kind == "gamma" else torch.poisson
    out = {}
    if "tracejit" in peers:
        out["tracejit"] = _bound(tj.compile(lambda p: fn(p)), p)
    if "torch" in peers:
        out["torch"] = lambda: fn(p)
    if "torch.compile" in peers:
        out["torch.compile"] = (lambda f: lambda: f(p))(torch.compile(lambda p: fn(p)))
    if "numpy" in peers:
        g, pn = np.random.default_rng(0), p.numpy()
        if kind == "gamma":
            out["numpy"] = lambda: g.standard_gamma(pn, dtype=np.float32)
        else:
            out["numpy"] = lambda: g.poisson(pn).astype(np.float32)
    return out, (lo, hi)


def _check_sampler(kind, params, name, r):
    """The two halves' means within 6 standard errors of the parameter."""
    x = np.asarray(r, np.float64)
    for half, v in zip((x[: x.size // 2], x[x.size // 2:]), params):
        if abs(half.mean() - v) > 6 * np.sqrt(v / half.size):
            raise AssertionError(f"{name}: mean {half.mean()} for parameter {v}")


def _ks_line(kind, params, r):
    try:
        import scipy.stats as st
    except ImportError:
        return None
    x = np.asarray(r, np.float64)
    out = []
    for half, v in zip((x[: x.size // 2], x[x.size // 2:]), params):
        if kind == "gamma":
            k = st.kstest(half, st.gamma(v).cdf)
            out.append(f"alpha {v}: KS D = {k.statistic:.5f} (p = {k.pvalue:.3f}, n = {half.size})")
        else:   # a count: the statistic of the randomized (continuous) version
            u = half + np.random.default_rng(0).random(half.size)
            cdf = (lambda t, v=v: st.poisson(v).cdf(np.floor(t) - 1) +
                   st.poisson(v).pmf(np.floor(t)) * (t - np.floor(t)))
            k = st.kstest(u, cdf)
            out.append(f"rate {v}: KS D = {k.statistic:.5f} (p = {k.pvalue:.3f}, n = {half.size})")
    return f"  {kind} (tracejit): " + "; ".join(out)


def _vae(torch):
    F = torch.nn.functional

    class VAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Linear(784, 400)
            self.mu = torch.nn.Linear(400, 20)
            self.logvar = torch.nn.Linear(400, 20)
            self.dec1 = torch.nn.Linear(20, 400)
            self.dec2 = torch.nn.Linear(400, 784)

        def forward(self, x):
            h = torch.relu(self.enc(x))
            mu, logvar = self.mu(h), self.logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            logits = self.dec2(torch.relu(self.dec1(z)))
            rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu * mu - logvar.exp())
            return (rec + kl) / x.shape[0]
    return VAE


def _vae_peers(torch, tj, peers, whole=False):
    VAE = _vae(torch)
    data = (torch.rand(128, 784, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    out, losses = {}, {}
    for peer in ("tracejit", "torch"):
        if peer not in peers:
            continue
        torch.manual_seed(1)
        m = VAE()
        f = tj.compile(m) if peer == "tracejit" and not whole else m
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)

        def inner(x, f=f, opt=opt):
            opt.zero_grad()
            loss = f(x)
            loss.backward()
            opt.step()
            return loss
        run = tj.compile(inner) if peer == "tracejit" and whole else inner

        def step(run=run, peer=peer):
            losses[peer] = run(data).item()
        out[peer] = step
    return out, losses


def run(opts) -> dict:
    started = H.torch_start(opts, "Random numbers inside compiled code (bench_random)", PEERS,
                            CASES, 2)
    if started is None:
        return {"records": [], "failures": []}
    torch, tj, peers, cases = started
    target_s = 0.3 if opts.quick else 2.0
    records, failures, rows, ks_lines = [], [], [], []
    for case in cases:
        n = 1 << 20 if case.endswith("1M") else 1 << 24
        if opts.quick and not case.startswith("vae"):
            n = 1 << 18
        check = None
        if case.startswith("randn"):
            calls = _randn_peers(torch, tj, n, peers)
            check = _check_normal
        elif case.startswith("dropout"):
            calls, xb = _dropout_peers(torch, tj, n, [p for p in peers if p != "numpy"])
            check = (lambda name, r, xb=xb: _check_dropout(name, r, xb))
        elif case.startswith(("gamma", "poisson")):
            kind = case.split("/")[0]
            calls, params = _sampler_peers(torch, tj, kind, n, peers)
            check = (lambda name, r, kind=kind, params=params: _check_sampler(kind, params, name, r))
            if "tracejit" in calls:
                line = _ks_line(kind, params, calls["tracejit"]())
                if line:
                    ks_lines.append(line)
        else:
            calls, _ = _vae_peers(torch, tj, peers, case == "vae-step")
        ok = {}
        for peer, call in calls.items():
            try:
                t0 = time.perf_counter_ns()
                r = call()
                first = time.perf_counter_ns() - t0
                if check is not None:
                    check(f"{peer} {case}", r)
                if hasattr(call, "compiled") and call.compiled.tiers():
                    H.settle_tier(call.compiled, call)   # the optimizing tier's kernel
                ok[peer] = call
                records.append({"case": case, "peer": peer, "first_ns": first})
            except Exception as e:   # reported, not fatal
                H.failure(peer, case, e, failures)
        batch = 2e-3 if case.startswith("vae") else 2e-5
        rows.append(H.measure_case(case, peers, ok, records, target_s, TARGET.get(case, {}),
                                   batch_s=batch)[0])
    H.print_case_table(peers, rows, records)
    for line in ks_lines:
        print(line)
    H.print_failures(failures)
    return {"records": records, "failures": failures}


def main(argv=None) -> int:
    return H.main_with_threads(run, __doc__, "bench_random", argv)


if __name__ == "__main__":
    sys.exit(main())
