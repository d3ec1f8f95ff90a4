"""Samples of torch's linear algebra of small matrices (tracejit._torch_linalg), sorting
(tracejit._torch_sort) and the other entries the distributions need (as_tensor,
isclose), for tests/test_torch_opinfo.py: batched and not, transposed layouts, the
upper/left/unitriangular variants; sorts of distinct values (ties: tests/test_torch_sort.py)."""
import warnings

import torch

from torch_samples import NODIFF, LOOSE, R, Sample as S  # noqa: F401


class SPD(R):
    """A symmetric positive-definite matrix (..., n, n), well conditioned."""

    def __init__(self, *shape, layout="c"):
        super().__init__(*shape, layout=layout)

    def build(self, dtype, g):
        a = torch.rand(self.shape, generator=g, dtype=torch.float64) * 2 - 1
        n = self.shape[-1]
        x = (a @ a.mT + n * torch.eye(n, dtype=torch.float64)).to(dtype)
        return x.mT.contiguous().mT if self.layout == "t" else x


class TRI(R):
    """A well-conditioned lower triangular matrix (the strict upper part random too when
    `full`: what a solve reading the triangle must ignore)."""

    def __init__(self, *shape, full=False, upper=False):
        super().__init__(*shape)
        self.full, self.upper = full, upper

    def build(self, dtype, g):
        a = torch.rand(self.shape, generator=g, dtype=torch.float64) - 0.5
        n = self.shape[-1]
        t = a.tril(-1) + torch.diag_embed(torch.rand(self.shape[:-1], generator=g,
                                                     dtype=torch.float64) + 1.0)
        if self.full:
            t = t + a.triu(1)
        return (t.mT if self.upper else t).to(dtype).contiguous()


def _quiet(f):
    """f without torch's deprecation warnings (torch.cholesky, triangular_solve)."""
    def g(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return f(*args)
    return g


# gradcheck perturbs one element; torch's cholesky reads one triangle and symmetrizes its
# gradient, so eager fails gradcheck too: compared with eager's backward instead
_SYM = "torch symmetrizes cholesky's gradient, which one-element finite differences do not"
_TRI = ("torch differentiates cholesky_solve's L as a full matrix (the triangle the solve "
        "ignores included), which finite differences do not see")


def _samples():
    out = [
        S("cholesky", torch.linalg.cholesky, SPD(4, 4), gradcheck=_SYM),
        S("cholesky", torch.linalg.cholesky, SPD(2, 3, 3, layout="t"), gradcheck=_SYM,
          label="batched"),
        S("cholesky", lambda a: torch.linalg.cholesky(a, upper=True), SPD(3, 3),
          gradcheck=_SYM, label="upper"),
        S("cholesky", lambda a: torch.linalg.cholesky(a @ a.mT + 3 * torch.eye(3, dtype=a.dtype)),
          R(3, 3), label="composed"),
        S("cholesky", _quiet(lambda a: a.cholesky()), SPD(3, 3), gradcheck=_SYM, label="method"),
        S("cholesky_ex", torch.linalg.cholesky_ex, SPD(2, 3, 3), gradcheck=_SYM),
        S("cholesky_ex", lambda a: torch.linalg.cholesky_ex(a * torch.tensor(
            [[1.0, 1, 1], [1, 1, 1], [1, 1, -1]], dtype=a.dtype)).info, SPD(2, 3, 3),
          grad=NODIFF, label="info"),
        S("solve_triangular", lambda a, b: torch.linalg.solve_triangular(a, b, upper=False),
          TRI(4, 4), R(4, 3)),
        S("solve_triangular", lambda a, b: torch.linalg.solve_triangular(a, b, upper=True),
          TRI(2, 4, 4, upper=True), R(4, 2), label="upper broadcast"),
        S("solve_triangular", lambda a, b: torch.linalg.solve_triangular(a, b, upper=False,
                                                                         left=False),
          TRI(3, 3, full=True), R(2, 5, 3), label="right full"),
        S("solve_triangular", lambda a, b: torch.linalg.solve_triangular(
            a, b, upper=False, unitriangular=True), TRI(3, 3, full=True), R(3, 2), label="unit"),
        S("triangular_solve", _quiet(lambda b, a: torch.triangular_solve(b, a, upper=False)), R(3, 2),
          TRI(3, 3)),
        S("triangular_solve", _quiet(lambda b, a: b.triangular_solve(a, transpose=True)), R(2, 3, 2),
          TRI(2, 3, 3, upper=True), label="transpose method"),
        S("cholesky_solve", torch.cholesky_solve, R(4, 2), TRI(4, 4), gradcheck=_TRI),
        S("cholesky_solve", lambda b, l: b.cholesky_solve(l, upper=True), R(2, 3, 2),
          TRI(2, 3, 3, upper=True), gradcheck=_TRI, label="upper method"),
        S("cholesky_solve", lambda b, l: torch.cholesky_solve(b, l), R(3, 2),
          TRI(3, 3, full=True), gradcheck=_TRI, label="full"),
        S("cholesky_solve", lambda b, w: torch.cholesky_solve(b, w.tril() + 2 * torch.eye(
            3, dtype=w.dtype)), R(3, 2), R(3, 3), label="composed"),
        S("slogdet", torch.slogdet, R(4, 4)),
        S("slogdet", lambda a: a.slogdet(), R(2, 3, 3, layout="t"), label="batched method"),
        S("linalg_slogdet", torch.linalg.slogdet, R(3, 3)),
        S("logdet", torch.logdet, SPD(4, 4)),
        S("logdet", lambda a: a.logdet(), SPD(2, 3, 3), label="method"),
        S("det", torch.det, R(4, 4)),
        S("det", lambda a: a.det(), R(2, 3, 3), label="method"),
        S("solve", torch.linalg.solve, R(4, 4), R(4, 2)),
        S("solve", torch.linalg.solve, R(2, 3, 3), R(3), label="vector broadcast"),
        S("solve", lambda a, b: torch.linalg.solve(a, b, left=False), SPD(3, 3, layout="t"),
          R(2, 3), label="right"),
        S("inv", torch.linalg.inv, R(4, 4)),
        S("inverse", lambda a: a.inverse(), R(2, 3, 3), label="method"),
        S("diag", torch.diag, R(3, 4)),
        S("diag", lambda v: v.diag(), R(3), label="vector method"),
        S("diag_embed", torch.diag_embed, R(2, 3)),
        S("diag_embed", lambda v: v.diag_embed(), R(3), label="method"),
        S("isclose", lambda a, b: torch.isclose(a, a + b * 1e-5, atol=1e-6), R(3, 4), R(3, 4),
          grad=NODIFF),
        S("isclose", lambda a: torch.isclose(a, a.floor(), rtol=0, atol=0.1), R(3, 4),
          grad=NODIFF, label="tolerances"),
        S("mvlgamma", lambda x: torch.mvlgamma(x, 3), R(3, 4, lo=1.2, hi=4.0)),
        S("multigammaln", lambda x: torch.special.multigammaln(x, 1), R(5, lo=0.2, hi=3.0)),
        S("mvlgamma", lambda x: x.mvlgamma(2), R(4, lo=0.7, hi=3.0), label="method"),
        S("mvlgamma", lambda x: torch.mvlgamma(x, 3), R(4, lo=0.2, hi=0.9), label="below (p-1)/2"),
        S("as_tensor", lambda x: torch.as_tensor(x, dtype=torch.float64) * 2, R(3, 4),
          gradcheck=LOOSE),
    ]
    return out


def _sort_samples():
    x, t = R(3, 5), R(4, 3, layout="t")
    return [
        S("sort", torch.sort, x),
        S("sort", lambda x: x.sort(dim=0, descending=True, stable=True), t, label="dim0 method"),
        S("argsort", lambda x: torch.argsort(x, dim=1, descending=True), x, grad=NODIFF),
        S("argsort", lambda x: x.argsort(0), t, grad=NODIFF, label="method"),
        S("msort", torch.msort, t),
        S("topk", lambda x: torch.topk(x, 2), x),
        S("topk", lambda x: x.topk(3, dim=0, largest=False), t, label="smallest method"),
        S("kthvalue", lambda x: torch.kthvalue(x, 2), x),
        S("kthvalue", lambda x: x.kthvalue(3, 0, keepdim=True), t, label="keepdim method"),
    ]


_STE = ("fake quantization's backward is the straight-through estimator (1 inside the "
        "range): finite differences see its steps (0); compared with eager's backward")


def _quant_samples():
    """torch.round and fake quantization (tracejit._torch_quant; more in
    tests/test_quant_qat.py)."""
    x, t = R(3, 5), R(4, 3, layout="t")
    sc, zp = torch.tensor([0.1, 0.05, 0.2]), torch.tensor([0, 3, -2], dtype=torch.int32)
    return [
        S("round", lambda x: torch.round(x * 3), x),
        S("round", lambda x: torch.round(x * 50, decimals=1), t, label="decimals"),
        S("fake_quantize_per_tensor_affine",
          lambda x: torch.fake_quantize_per_tensor_affine(x, 0.1, 3, -8, 20), x, gradcheck=_STE),
        S("fake_quantize_per_channel_affine",
          lambda x: torch.fake_quantize_per_channel_affine(x, sc, zp, 1, -10, 10), t,
          gradcheck=_STE),
    ]


SAMPLES = _samples() + _sort_samples() + _quant_samples()
NOT_SAMPLED = {}
