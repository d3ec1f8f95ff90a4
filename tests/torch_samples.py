"""Sample inputs for every torch function, Tensor method and torch.nn.functional entry
tracejit implements (tracejit._torch_ops.FUNCS and the Tensor methods of
tracejit._torch.ATTRS): an OpInfo-style table read by tests/test_torch_opinfo.py.

A Sample is (op, fn, specs): `fn` calls torch's own function on the arguments built
from `specs`; R(...) is a float tensor that requires grad in the gradcheck, K(...) a
float tensor that does not, I(...)/B(...) integer and bool tensors, anything else a
Python value given as it is. `grad` says what the backward test does: True
(gradcheck in float64 through tracejit.compile's torch route), NODIFF (eager's
result does not require grad either: compared), or an XFail naming the reason."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from tracejit import _C


class R:
    """A float tensor (differentiable in the gradcheck) of `shape`, uniform in [lo, hi)."""
    grad = True

    def __init__(self, *shape, lo=-2.0, hi=2.0, layout="c"):
        self.shape, self.lo, self.hi, self.layout = shape, lo, hi, layout

    def build(self, dtype, g):
        x = torch.rand(self.shape, generator=g, dtype=torch.float64) * (self.hi - self.lo) + self.lo
        x = x.to(dtype)
        if self.layout == "t" and x.ndim >= 2:        # the same values, transposed strides
            x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
        return x


class K(R):
    """A float tensor that does not require grad."""
    grad = False


class I:
    """An int64 tensor: explicit values, or random in [0, hi) of `shape`."""
    grad = False

    def __init__(self, values=None, shape=None, hi=None):
        self.values, self.shape, self.hi = values, shape, hi

    def build(self, dtype, g):
        if self.values is not None:
            return torch.tensor(self.values)
        return torch.randint(0, self.hi, self.shape, generator=g)


class B:
    grad = False

    def __init__(self, *shape):
        self.shape = shape

    def build(self, dtype, g):
        return torch.rand(self.shape, generator=g) > 0.5


NODIFF = "nodiff"


class XFail:
    def __init__(self, reason):
        self.reason = reason


# gradcheck's options for a result computed in float32 (its finite differences need a
# larger step)
LOOSE = dict(eps=1e-3, atol=1e-3, rtol=1e-3)


class Sample:
    """gradcheck: True, options for it (LOOSE), or the reason it cannot apply (the
    backward is then compared with eager's only); eager: True, or the reason eager's
    backward cannot be compared (gradcheck's then is)."""

    def __init__(self, op, fn, *specs, grad=True, tol=None, label="", gradcheck=True,
                 eager=True):
        self.op, self.fn, self.specs, self.grad, self.tol = op, fn, specs, grad, tol
        self.label, self.gradcheck, self.eager = label, gradcheck, eager

    @property
    def id(self):
        return f"{self.op}{'-' + self.label if self.label else ''}"

    def args(self, dtype, seed=0, requires_grad=False):
        g = torch.Generator().manual_seed(seed)
        out = []
        for s in self.specs:
            if hasattr(s, "build"):
                t = s.build(dtype, g)
                if requires_grad and s.grad:
                    t.requires_grad_()
                out.append(t)
            else:
                out.append(s)
        return out


# ---- the elementwise ops of the op table (their torch names) ------------------------

# the op's domain for differentiable samples: (lo, hi)
_DOMAIN = {
    "LOG": (0.3, 3.0), "LOG2": (0.3, 3.0), "LOG10": (0.3, 3.0), "SQRT": (0.3, 3.0),
    "LOG1P": (-0.5, 2.0), "ARCSIN": (-0.8, 0.8), "ARCCOS": (-0.8, 0.8),
    "ARCTANH": (-0.8, 0.8), "ARCCOSH": (1.2, 3.0), "RECIP": (0.5, 2.0),
    "LGAMMA": (0.3, 4.0), "DIGAMMA": (0.3, 4.0), "TAN": (-1.2, 1.2),
    "DIV": (0.5, 2.0), "FLOORDIV": (0.5, 2.0), "MOD": (0.7, 1.3), "FMOD": (0.7, 1.3),
    "POW": (0.3, 2.0), "FPOWER": (0.3, 2.0),
}
# binary ops whose second operand needs its own domain
_DOMAIN2 = {"DIV": (0.5, 2.0), "FLOORDIV": (0.5, 2.0), "MOD": (0.7, 1.3), "FMOD": (0.7, 1.3),
            "POW": (-1.5, 1.5), "FPOWER": (-1.5, 1.5)}
_INT_OPS = {"INVERT", "BAND", "BOR", "BXOR"}          # integer (or bool) operands only
_BOOL_OPS = {"NOT", "AND", "OR", "XOR"}
_BOOL_RESULT = {"ISNAN", "ISINF", "ISFINITE", "SIGNBIT", "EQ", "NE", "LT", "LE", "GT", "GE"}
_XFAIL_GRAD = {}

_NO_EAGER_GRAD = {
    "FLOORDIV": "eager's floor_divide has no derivative (it raises); tracejit's is zero, "
                "as torch.div(rounding_mode='floor') gives",
}


def _torch_callable(name):
    for space in (torch, torch.special, F):
        f = getattr(space, name, None)
        if f is not None:
            return f
    return getattr(torch.Tensor, name)


def _takes_scalar(f, s):
    """Whether torch's f accepts a Python number as its second operand."""
    try:
        f(torch.ones(2), s)
        return True
    except TypeError:
        return False


def _table_samples():
    out = []
    for opname, numpy, names, arity, kind, flags in _C._op_table():
        if kind != "ew" or opname == "WHERE":
            continue
        for tname in names:
            name = tname.removeprefix("special.")
            f = getattr(torch.special, name) if tname.startswith("special.") else _torch_callable(name)
            if opname in _INT_OPS:
                specs = [I(shape=(3, 4), hi=50)] * arity
                out.append(Sample(name, f, *specs, grad=NODIFF))
            elif opname in _BOOL_OPS:
                out.append(Sample(name, f, *[B(3, 4)] * arity, grad=NODIFF))
            else:
                lo, hi = _DOMAIN.get(opname, (-2.0, 2.0))
                specs = [R(3, 4, lo=lo, hi=hi)]
                if arity == 2:
                    lo2, hi2 = _DOMAIN2.get(opname, (-2.0, 2.0))
                    specs.append(R(4, lo=lo2, hi=hi2))          # broadcast
                grad = NODIFF if opname in _BOOL_RESULT else (
                    XFail(_XFAIL_GRAD[opname]) if opname in _XFAIL_GRAD else True)
                eager = _NO_EAGER_GRAD.get(opname, True)
                out.append(Sample(name, f, *specs, grad=grad, eager=eager))
                s = 1.5 if opname not in ("POW", "FPOWER") else 2.0
                if arity == 2 and grad is True and _takes_scalar(f, s):
                    out.append(Sample(name, lambda x, f=f, s=s: f(x, s), specs[0], label="scalar",
                                      eager=eager))
    return out


# ---- every other entry, by hand -----------------------------------------------------

def _hand_samples():
    S = Sample
    x34, y34 = R(3, 4), R(3, 4)
    logits, cls = R(4, 5), I([0, 4, 2, 1])
    ew = [
        S("where", lambda c, x, y: torch.where(c, x, y), B(3, 4), x34, R(4)),
        S("where", lambda c, x: torch.where(c, x, 0.5), B(3, 4), x34, label="scalar"),
        S("sigmoid", torch.sigmoid, x34), S("expit", torch.special.expit, x34),
        S("relu", F.relu, x34), S("rsqrt", torch.rsqrt, R(3, 4, lo=0.3, hi=3.0)),
        S("add", lambda x, y: torch.add(x, y, alpha=0.5), x34, y34, label="alpha"),
        S("sub", lambda x, y: torch.sub(x, y, alpha=2), x34, y34, label="alpha"),
        S("rsub", lambda x, y: torch.rsub(x, y, alpha=3), x34, y34),
        S("div", lambda x, y: torch.div(x, y, rounding_mode="trunc"), x34,
          R(3, 4, lo=0.5, hi=2.0), label="trunc"),
        S("div", lambda x, y: torch.div(x, y, rounding_mode="floor"), x34,
          R(3, 4, lo=0.5, hi=2.0), label="floor"),
        S("xlogy", torch.xlogy, R(3, 4, lo=0.1, hi=2.0), R(3, 4, lo=0.3, hi=2.0)),
        S("xlogy", lambda x, y: torch.xlogy(x * (x > 0.5), y), R(3, 4, lo=-1.0, hi=2.0),
          R(3, 4, lo=0.3, hi=2.0), label="zeros"),
        S("clamp", lambda x: torch.clamp(x, -1.0, 0.5), x34),
        S("clamp", lambda x, lo: torch.clamp(x, min=lo), x34, R(4, lo=-1.0, hi=1.0), label="tensor"),
        S("clip", lambda x: torch.clip(x, max=0.3), x34),
        S("clamp_min", lambda x: torch.clamp_min(x, 0.1), x34),
        S("clamp_max", lambda x: torch.clamp_max(x, 0.1), x34),
        S("masked_fill", lambda x, m: x.masked_fill(m, -1.5), x34, B(3, 4)),
        S("masked_fill", lambda x, m, v: torch.masked_fill(x, m, v), x34, B(3, 4), R(),
          label="tensor value"),
    ]
    red = [
        S("sum", lambda x: torch.sum(x, dim=1, keepdim=True), x34),
        S("sum", lambda x: x.sum(), R(3, 4, layout="t"), label="all"),
        S("mean", lambda x: x.mean((0, 1)), R(2, 3, 4)),
        S("prod", lambda x: torch.prod(x, 1), x34),
        S("amax", lambda x: torch.amax(x, dim=1), x34),
        S("amin", lambda x: torch.amin(x, dim=(0, 1)), R(2, 3, 2)),
        S("max", lambda x: torch.max(x, dim=1), x34, label="dim"),
        S("max", torch.max, x34, label="all"),
        S("max", lambda x, y: torch.max(x, y), x34, y34, label="binary"),
        S("min", lambda x: x.min(0, keepdim=True), x34, label="dim"),
        S("min", torch.min, x34, label="all"),
        S("argmax", lambda x: torch.argmax(x, dim=1), x34, grad=NODIFF),
        S("argmin", lambda x: x.argmin(), x34, grad=NODIFF),
        S("var", lambda x: torch.var(x, 1), x34),
        S("var", lambda x: x.var(0, unbiased=False, keepdim=True), x34, label="biased"),
        S("std", lambda x: torch.std(x, dim=1, correction=0), x34),
        S("any", lambda x: torch.any(x > 0, dim=1), x34, grad=NODIFF),
        S("all", lambda x: (x > -1).all(), x34, grad=NODIFF),
        S("cumsum", lambda x: torch.cumsum(x, 1), x34),
        S("cumprod", lambda x: torch.cumprod(x, dim=0), x34),
        S("logsumexp", lambda x: torch.logsumexp(x, 1), x34),
        S("logsumexp", lambda x: x.logsumexp((0, 1), keepdim=True), x34, label="dims"),
        S("norm", lambda x: torch.norm(x), x34),
        S("norm", lambda x: x.norm(p=1, dim=1), x34, label="p1"),
        S("norm", lambda x: torch.norm(x, p=3, dim=0), x34, label="p3"),
        S("norm", lambda x: torch.linalg.vector_norm(x, ord=math.inf, dim=1), x34, label="inf"),
    ]
    move = [
        S("reshape", lambda x: torch.reshape(x, (2, 6)), x34),
        S("view", lambda x: x.view(4, 3), x34),
        S("view", lambda x: x.t().reshape(-1), x34, label="transposed"),
        S("permute", lambda x: x.permute(2, 0, 1), R(2, 3, 4)),
        S("transpose", lambda x: torch.transpose(x, 0, 2), R(2, 3, 4)),
        S("swapaxes", lambda x: torch.swapaxes(x, 0, 1), x34),
        S("swapdims", lambda x: torch.swapdims(x, 0, 1), x34),
        S("t", torch.t, x34), S("unsqueeze", lambda x: torch.unsqueeze(x, -1), x34),
        S("squeeze", lambda x: torch.squeeze(x, 1), R(3, 1, 4)),
        S("squeeze", torch.squeeze, R(3, 1, 4, 1), label="all"),
        S("expand", lambda x: x.expand(2, 3, 4), R(3, 1)),
        S("expand_as", lambda x, y: x.expand_as(y), R(1, 4), K(3, 4)),
        S("repeat", lambda x: x.repeat(2, 1, 3), R(3, 2)),
        S("scatter", lambda x, s, i: x.scatter(1, i, s), R(3, 4), R(3, 2), I([[0, 3], [1, 2], [2, 0]])),
        S("scatter", lambda x, i: torch.scatter(x, 0, i, 5.0), R(3, 4), I([[2, 0, 1, 1]]),
          label="value"),
        S("scatter_add", lambda x, s, i: x.scatter_add(1, i, s), R(3, 4), R(3, 2),
          I([[0, 0], [1, 3], [2, 2]])),
        S("scatter_add", lambda x, s, i: torch.scatter_add(x, 0, i, s), R(3, 2), R(2, 2),
          I([[2, 0], [2, 2]]), label="func"),
        S("index_add", lambda x, s, i: x.index_add(0, i, s, alpha=2), R(4, 3), R(3, 3), I([3, 1, 3])),
        S("index_fill", lambda x, i: x.index_fill(1, i, -1.0), R(3, 4), I([0, 2])),
        S("index_put", lambda x, v, i: x.index_put((i,), v), R(4, 3), R(2, 3), I([0, 2])),
        S("index_put", lambda x, v, i: x.index_put((i,), v, accumulate=True), R(4, 3), R(3, 3),
          I([1, 1, 2]), label="accumulate"),
        S("flip", lambda x: torch.flip(x, (0, 1)), x34),
        S("contiguous", lambda x: x.t().contiguous(), x34),
        S("clone", torch.clone, x34),
        S("flatten", lambda x: torch.flatten(x, 1), R(2, 3, 2)),
        S("unflatten", lambda x: x.unflatten(1, (2, 2)), x34),
        S("ravel", torch.ravel, R(3, 4, layout="t")),
        S("narrow", lambda x: torch.narrow(x, 1, 1, 2), x34),
        S("select", lambda x: torch.select(x, 1, 2), x34),
        S("movedim", lambda x: torch.movedim(x, 0, 2), R(2, 3, 4)),
        S("moveaxis", lambda x: torch.moveaxis(x, 1, 0), x34),
        S("roll", lambda x: torch.roll(x, 1, 1), x34),
        S("cat", lambda x, y: torch.cat([x, y], dim=1), x34, R(3, 2)),
        S("concat", lambda x, y: torch.concat((x, y)), x34, y34),
        S("concatenate", lambda x, y: torch.concatenate((x, y), 1), x34, y34),
        S("stack", lambda x, y: torch.stack([x, y], -1), x34, y34),
        S("split", lambda x: torch.split(x, [1, 3], dim=1), x34),
        S("split", lambda x: x.split(2), R(5, 2), label="size"),
        S("chunk", lambda x: torch.chunk(x, 2, 1), R(3, 5)),
        S("unbind", lambda x: torch.unbind(x, 1), x34),
        S("index_select", lambda x, i: torch.index_select(x, 1, i), x34, I([3, 0, 0, 2])),
        S("gather", lambda x, i: torch.gather(x, 1, i), x34, I([[0, 3], [1, 1], [2, 0]])),
        S("take_along_dim", lambda x, i: torch.take_along_dim(x, i, 1), x34,
          I([[0, 3], [1, 1], [2, 0]])),
        S("broadcast_to", lambda x: torch.broadcast_to(x, (2, 3, 4)), R(3, 1)),
        S("broadcast_tensors", torch.broadcast_tensors, R(3, 1), R(1, 4)),
    ]
    contract = [
        S("matmul", torch.matmul, R(2, 3, 4), R(4, 2)),
        S("mm", torch.mm, x34, R(4, 2)), S("bmm", torch.bmm, R(2, 3, 4), R(2, 4, 2)),
        S("mv", torch.mv, x34, R(4)), S("dot", torch.dot, R(4), R(4)),
        S("outer", torch.outer, R(3), R(4)), S("ger", torch.ger, R(3), R(4)),
        S("einsum", lambda a, b: torch.einsum("bij,bjk->bik", a, b), R(2, 3, 4), R(2, 4, 2)),
        S("tensordot", lambda a, b: torch.tensordot(a, b, dims=([1], [0])), x34, R(4, 2)),
        S("linear", F.linear, x34, R(2, 4), R(2)),
        S("linear", F.linear, R(2, 3, 4), R(2, 4), label="no bias"),
        S("addmm", lambda b, x, y: torch.addmm(b, x, y, beta=0.5, alpha=2.0), R(2), x34, R(4, 2)),
    ]
    nn = [
        S("softplus", lambda x: F.softplus(x, beta=2.0, threshold=1.5), x34),
        S("logsigmoid", F.logsigmoid, x34), S("log_sigmoid", torch._C._nn.log_sigmoid, x34),
        S("leaky_relu", lambda x: F.leaky_relu(x, 0.2), x34), S("elu", F.elu, x34),
        S("selu", F.selu, x34), S("gelu", F.gelu, x34),
        S("gelu", lambda x: F.gelu(x, approximate="tanh"), x34, label="tanh"),
        S("silu", F.silu, x34), S("mish", F.mish, x34), S("hardtanh", F.hardtanh, x34),
        S("relu6", lambda x: F.relu6(x * 4), x34), S("softsign", F.softsign, x34),
        S("softmax", lambda x: F.softmax(x, dim=0), x34),
        S("softmax", lambda x: torch.softmax(x, -1, dtype=torch.float64), x34, label="dtype"),
        S("log_softmax", lambda x: F.log_softmax(x, dim=-1), x34),
        S("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits, x34,
          K(3, 4, lo=0.0, hi=1.0)),
        S("binary_cross_entropy_with_logits",
          lambda x, t, w, p: F.binary_cross_entropy_with_logits(x, t, w, pos_weight=p,
                                                                reduction="sum"),
          x34, K(3, 4, lo=0.0, hi=1.0), K(4, lo=0.5, hi=1.5), K(4, lo=0.5, hi=1.5),
          label="weights"),
        S("binary_cross_entropy", F.binary_cross_entropy, R(3, 4, lo=0.1, hi=0.9),
          K(3, 4, lo=0.0, hi=1.0)),
        S("mse_loss", F.mse_loss, x34, y34),
        S("mse_loss", lambda x, y: F.mse_loss(x, y, reduction="none"), x34, y34, label="none"),
        S("l1_loss", lambda x, y: F.l1_loss(x, y, reduction="sum"), x34, y34),
        S("nll_loss", lambda x, c: F.nll_loss(x, c), logits, cls),
        S("nll_loss", lambda x, c, w: F.nll_loss(x, c, w, ignore_index=1), logits, cls,
          K(5, lo=0.5, hi=1.5), label="weight"),
        S("cross_entropy", F.cross_entropy, logits, cls),
        S("cross_entropy", lambda x, c: F.cross_entropy(x, c, reduction="none"), logits, cls,
          label="none"),
        S("cross_entropy", F.cross_entropy, logits, R(4, 5, lo=0.0, hi=1.0), label="probs"),
        S("dropout", lambda x: F.dropout(x, 0.3, training=False), x34),
        S("dropout1d", lambda x: F.dropout1d(x, 0.3, training=False), R(2, 3, 4)),
        S("dropout2d", lambda x: F.dropout2d(x, 0.3, training=False), R(2, 3, 2, 2)),
        S("dropout3d", lambda x: F.dropout3d(x, 0.3, training=False), R(2, 1, 2, 2, 2)),
        S("feature_dropout", lambda x: torch.feature_dropout(x, 0.3, False), R(2, 3, 4)),
        S("alpha_dropout", lambda x: F.alpha_dropout(x, 0.3, training=False), x34),
        S("feature_alpha_dropout", lambda x: F.feature_alpha_dropout(x, 0.3, training=False),
          R(2, 3, 4)),
        S("rrelu", lambda x: F.rrelu(x, training=False), x34),
        S("layer_norm", lambda x, w, b: F.layer_norm(x, (4,), w, b), x34, R(4), R(4)),
        S("layer_norm", lambda x: F.layer_norm(x, (3, 4)), R(2, 3, 4), label="2d"),
        S("normalize", lambda x: F.normalize(x, dim=1), x34),
        S("embedding", lambda i, w: F.embedding(i, w), I([[0, 2], [4, 0]]), R(5, 3)),
        S("embedding", lambda i, w: F.embedding(i, w, padding_idx=0), I([[0, 2], [4, 0]]),
          R(5, 3), label="padding_idx", gradcheck="the padding row's gradient is zero by "
          "definition (eager's is compared), not the derivative gradcheck finds"),
        S("cross_entropy", lambda x, c: F.cross_entropy(x, c, label_smoothing=0.2), logits, cls,
          label="label_smoothing"),
        S("smooth_l1_loss", lambda x, y: F.smooth_l1_loss(x, y, beta=0.5), x34, y34),
        S("huber_loss", lambda x, y: F.huber_loss(x, y, delta=0.7, reduction="sum"), x34, y34),
        S("kl_div", lambda x, t: F.kl_div(F.log_softmax(x, 1), t, reduction="batchmean"),
          x34, R(3, 4, lo=0.05, hi=1.0)),
        S("kl_div", lambda x, t: F.kl_div(x, t, log_target=True, reduction="sum"), x34, y34,
          label="log_target"),
        S("one_hot", lambda i: F.one_hot(i, 5), I([0, 4, 2]), grad=NODIFF),
        S("zeros_like", torch.zeros_like, x34, grad=NODIFF),
        S("ones_like", lambda x: torch.ones_like(x, dtype=torch.float64), x34, grad=NODIFF),
        S("full_like", lambda x: torch.full_like(x, 2.5), x34, grad=NODIFF),
        S("empty_like", lambda x: x * torch.empty_like(x).shape[1], x34),
    ]
    return ew + red + move + contract + nn


# Tensor methods that are not functions of FUNCS (tracejit._torch.ATTRS)
def _method_samples():
    S = Sample
    x34 = R(3, 4)
    return [
        S("to", lambda x: x.to(torch.float64) * x.to(x.dtype), x34),
        S("to", lambda x: x.to(torch.float32) * 2, x34, gradcheck=LOOSE, label="float32"),
        S("type_as", lambda x, y: x.type_as(y), x34, K(2)),
        S("type", lambda x: x.type(torch.float64) * (x.type() == "torch.DoubleTensor") +
          x.type("torch.DoubleTensor"), x34),
        S("float", lambda x: x.float() * 2, x34, gradcheck=LOOSE),
        S("double", lambda x: x.double(), x34),
        S("long", lambda x: (x * 3).long(), x34, grad=NODIFF),
        S("int", lambda x: (x * 3).int(), x34, grad=NODIFF),
        S("bool", lambda x: x.bool(), x34, grad=NODIFF),
        S("byte", lambda x: (x.abs() * 30).byte() + (x > 0).byte(), x34, grad=NODIFF),
        S("char", lambda x: (x * 30).char() * 3, x34, grad=NODIFF),
        S("short", lambda x: (x * 3000).short() - 7, x34, grad=NODIFF),
        S("detach", lambda x: x.detach() * x, x34,
          gradcheck="gradcheck perturbs the input, so the detached value too (compared with "
                    "eager's backward instead)"),
        S("data", lambda x: x.data * x + x.data.shape[0], x34,
          gradcheck="gradcheck perturbs the input, so x.data too (compared with eager's "
                    "backward instead)"),
        S("where", lambda x, c: x.where(c, -x), x34, B(3, 4), label="method"),
        S("mT", lambda x: x.mT * 1, R(2, 3, 4)),
        S("size", lambda x: x * x.size(1) + x.size()[0], x34),
        S("dim", lambda x: x * x.dim() + x.ndimension(), x34),
        S("numel", lambda x: x * x.numel() + x.nelement() + x.element_size(), x34),
        S("is_floating_point", lambda x: x * x.is_floating_point() * x.is_contiguous(), x34),
        S("lerp", lambda x, y: torch.lerp(x, y, 0.3) + x.lerp(y, y * 0.5), x34, R(4)),
        S("addcmul", lambda x, y, z: torch.addcmul(x, y, z, value=0.5), x34, R(4), R(3, 1)),
        S("addcdiv", lambda x, y, z: torch.addcdiv(x, y, z.abs() + 1, value=-2.0), x34, R(4),
          R(3, 1)),
    ]


SAMPLES = _table_samples() + _hand_samples() + _method_samples()

# ATTRS entries that are not computations on values (or belong elsewhere): the reason
# they have no sample here
NOT_SAMPLED = {
    "shape": "metadata (read by the size sample)", "dtype": "metadata (read by to)",
    "device": "metadata", "is_cuda": "metadata", "requires_grad": "metadata",
    "grad_fn": "metadata", "nelement": "read by the numel sample",
    "ndimension": "read by the dim sample", "element_size": "read by the numel sample",
    "is_contiguous": "read by the is_floating_point sample",
    "half": "refused: float16 is not supported",
    "backward": "refused inside a compiled function",
    "numpy": "refused: needs a concrete tensor",
    "new": "refused: legacy constructor", "new_empty": "uninitialized values",
    "_is_all_true": "torch.distributions' validity check, a guard (tests/test_torch.py)",
    "_cdata": "the C++ tensor's address, Pyro's pyro.module (tests/test_pyro_elbo_module.py)",
}
