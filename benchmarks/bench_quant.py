"""Dynamic INT8 quantization: tracejit.quantize_dynamic against FP32 and torch's.

    PYTHONPATH=python python benchmarks/bench_quant.py [--quick] [--threads N] [--json PATH]

Peers, one process, same inputs, same thread budget (--threads: torch's intra-op
threads, tracejit's pool and its BLAS):
  int8      tracejit.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
  fp32      tracejit.compile(model)
  torch.q   torch.ao.quantization.quantize_dynamic (fbgemm/onednn kernels), eager
  torch     the float32 model, eager
Models: a 4-layer MLP 1024 wide (ReLU) and a transformer feed-forward block (LayerNorm,
Linear 512->2048, GELU, Linear 2048->512, residual), at batch 1, 16 and 128; timed in
alternating rounds (_harness.interleaved), median per call, ratios int8/peer. Also:
first-call latency of the two tracejit peers, weight memory (parameters and buffers of
the quantized model over FP32's), and the accuracy of a small classifier (an MLP
trained here on synthetic Gaussian-cluster data, evaluated FP32 / int8 / torch.q).
The issue's targets (issue 23): MLP at batch 16, int8 <= 0.6x fp32 tracejit and <= 0.8x
torch.q; accuracy within 0.5 points of FP32; weight memory <= 0.27x.
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

PEERS = ("int8", "fp32", "torch.q", "torch")
TARGETS = {("mlp", 16): {"fp32": 0.6, "torch.q": 0.8}}


def models(torch):
    nn = torch.nn

    class FFN(nn.Module):
        def __init__(self, d=512, h=2048):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.fc1, self.act, self.fc2 = nn.Linear(d, h), nn.GELU(), nn.Linear(h, d)

        def forward(self, x):
            return x + self.fc2(self.act(self.fc1(self.norm(x))))

    mlp = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(1024, 1024), nn.ReLU())][:-1])
    return {"mlp": (mlp, 1024), "ffn": (FFN(), 512)}


def torch_quantized(torch, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def classifier_accuracy(torch, tj, quick):
    """A 3-layer MLP trained on 16 Gaussian clusters in 64 dims; test accuracy of each peer."""
    g = torch.Generator().manual_seed(0)
    C, D, n = 16, 64, (2000 if quick else 8000)
    centers = torch.randn(C, D, generator=g) * 0.4   # overlapping clusters: FP32 below 100%

    def data(k):
        y = torch.randint(0, C, (k,), generator=g)
        return centers[y] + torch.randn(k, D, generator=g), y

    xtr, ytr = data(n)
    xte, yte = data(4000)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(D, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, C))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(3 if quick else 10):
        for i in range(0, n, 128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xtr[i:i + 128]), ytr[i:i + 128]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = {"fp32": (net(xte).argmax(1) == yte).float().mean().item() * 100,
               "int8": (tj.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)(xte)
                        .argmax(1) == yte).float().mean().item() * 100,
               "torch.q": (torch_quantized(torch, net)(xte).argmax(1) == yte).float().mean().item()
               * 100}
    return acc


def run(opts):
    start = H.torch_start(opts, "Dynamic INT8 quantization (tracejit.quantize_dynamic)",
                          PEERS, ["mlp", "ffn"], 1)
    if start is None:
        return {"failures": []}
    torch, tj, peers, cases = start
    print(f"int8 GEMM instruction set: "
          f"{['portable', 'AVX2', 'AVX-VNNI', 'AVX-512 VNNI'][tj._C._qgemm_isa(-1)[0]]}\n")
    torch.manual_seed(0)
    ms = models(torch)
    batches = [1, 16] if opts.quick else [1, 16, 128]
    target_s = 0.05 if opts.quick else 0.6
    rows, records, failures, first, mem = [], [], [], [], {}
    for name in cases:
        model, d = ms[name]
        model.eval()
        for b in batches:
            x = torch.randn(b, d)
            calls = {}
            with torch.no_grad():
                want = model(x)
                q = tj.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
                f = tj.compile(model)
                tq = torch_quantized(torch, model)
                for peer, fn in (("int8", q), ("fp32", f), ("torch.q", tq), ("torch", model)):
                    if peer not in peers:
                        continue
                    ns, out = H.first_call_ns(lambda: fn(x))
                    if peer in ("int8", "fp32"):
                        first.append([f"{name}/{b}", peer, H.fmt_ms(ns)])
                    err = (out - want).abs().max().item() / max(want.abs().max().item(), 1e-30)
                    tol = 1e-4 if peer in ("fp32", "torch") else 0.08
                    if not err <= tol:
                        failures.append(f"{name}/{b} {peer}: relative error {err:.3g} > {tol}")
                        continue
                    calls[peer] = (lambda fn=fn: fn(x))
                if name not in mem:
                    fp = sum(p.numel() * p.element_size() for p in model.parameters())
                    mem[name] = q.weight_bytes() / fp
                m = H.interleaved(calls, target_s * len(calls))
            row = [f"{name}/{b}"]
            goals = TARGETS.get((name, b), {})
            for peer in peers:
                t = m.get(peer, {}).get("median_ns")
                cell = H.fmt_time(t) if peer in calls else "-"
                r = m["ratios"].get(peer)
                if peer != "int8" and r is not None and "int8" in calls:
                    cell += f" ({H.fmt_ratio(r)}"
                    if peer in goals:
                        met = "met" if r <= goals[peer] else "NOT met"
                        cell += f", target <= {goals[peer]}x {met}"
                    cell += ")"
                row.append(cell)
                records.append({"case": f"{name}/{b}", "peer": peer, **m.get(peer, {}),
                                "ratio_int8_over": r})
            rows.append(row)
    print(H.markdown_table(["case"] + [p if p == "int8" else f"{p} (int8/{p})" for p in peers],
                           rows, right_from=1))
    print("\nfirst call (trace + compile + run):")
    print(H.markdown_table(["case", "peer", "first call"], first))
    print("\nweight memory, quantized / FP32 (target <= 0.27x): "
          + ", ".join(f"{k} {v:.3f}x {'met' if v <= 0.27 else 'NOT met'}" for k, v in mem.items()))
    acc = classifier_accuracy(torch, tj, opts.quick)
    drop = acc["fp32"] - acc["int8"]
    print(f"\nclassifier accuracy (synthetic, 16 classes): FP32 {acc['fp32']:.2f}%, "
          f"int8 {acc['int8']:.2f}%, torch.q {acc['torch.q']:.2f}% "
          f"(int8 within 0.5 points of FP32: {'met' if abs(drop) <= 0.5 else 'NOT met'})")
    H.print_failures(failures)
    return {"records": records, "memory": mem, "accuracy": acc, "failures": failures}


def main(argv=None):
    return H.main_with_threads(run, __doc__, "quant", argv)


if __name__ == "__main__":
    sys.exit(main())
