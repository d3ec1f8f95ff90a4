"""Derivative rules: one vector-Jacobian product per op of the op table (csrc/ir/ops.h),
keyed by the table's names. A rule builds the cotangents of a node's operands from the
cotangent `g` of its result with ordinary NumPy calls on tracers, so the backward graph
is made of the same nodes as the forward one: it fuses with it, and it can itself be
differentiated (grad of grad).

    rule(g, y, xs, node) -> one cotangent (or None: no contribution) per operand

`y` is the node's value, `xs` its operands (Tracers), `node` the _C._ad_node tuple
(id, op, operands, axes, flat, perm, vstep, voff). A cotangent may have the broadcast
shape of the result: the walk (_grad.py) sums it back to the operand's shape and casts
it to the operand's dtype. Ops in NONDIFF have no derivative (bool or integer results,
integer-only ops, leaves); ops in ZERO have derivative zero wherever it exists
(floor, ceil, sign, floor_divide), as torch gives. tests/test_grad.py checks that every
op of the table is in exactly one of RULES, ZERO and NONDIFF.

Tie rules (as torch): abs'(0) = 0; maximum/minimum split the cotangent evenly between
equal operands; max/min reductions split it evenly among the tied elements; where
sends it to the branch the condition selects (the other branch gets zero); clip is
maximum then minimum, so at a bound the cotangent is split between x and the bound.
"""
import math

import numpy as np

from . import _C
from ._C import Tracer

# NumPy's view of a tracer: in a torch trace, Tensor attributes shadow these (x.dtype a
# torch dtype, x.size a method), and the rules speak NumPy
_NP_DTYPE = Tracer.dtype
_NP_SIZE = Tracer.size


def np_dtype(x):
    """x's NumPy dtype (a Tracer's, in a NumPy or a torch trace, or an array's)."""
    return _NP_DTYPE.__get__(x) if isinstance(x, Tracer) else np.asarray(x).dtype


def np_size(x):
    return _NP_SIZE.__get__(x) if isinstance(x, Tracer) else np.size(x)

_LN2 = math.log(2.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


_LN10 = math.log(10.0)


def _trigamma(x):
    """digamma's derivative, composed as torch computes it (ATen's calc_trigamma, so
    gradients match eager's): the recurrence psi1(z) = psi1(z + 1) + 1/z^2 up to z + 6,
    the asymptotic series there, and the reflection psi1(x) = pi^2 / sin^2(pi x) -
    psi1(1 - x) below 1/2."""
    low = x < 0.5
    z = np.where(low, 1.0 - x, x)
    acc = 0.0
    for k in range(6):
        acc = acc + 1.0 / ((z + k) * (z + k))
    w = z + 6.0
    ixx = 1.0 / (w * w)
    t = acc + (1.0 + 1.0 / (2.0 * w) + ixx * (1.0 / 6 - ixx * (1.0 / 30 - ixx * (1.0 / 42)))) / w
    s = math.pi / np.sin(math.pi * x)
    return np.where(low, s * s - t, t)

# Poisson and binomial counts: torch.poisson's and torch.binomial's derivative is zero
ZERO = frozenset({"SIGN", "FLOOR", "CEIL", "FLOORDIV", "RPOIS", "RBINOM"})
NONDIFF = frozenset({
    "INPUT", "SCALAR", "CAPTURE", "CONST", "IOTA", "INVERT", "NOT", "ISNAN", "ISINF", "ISFINITE",
    "SIGNBIT", "EQ", "NE", "LT", "LE", "GT", "GE", "AND", "OR", "XOR", "BAND", "BOR", "BXOR",
    "LSHIFT", "RSHIFT", "RARGMAX", "RARGMIN",
    # draws: their operands are the call's key and integer counters (a gradient flows
    # through what is computed from a draw: mu + sigma * eps)
    "RUNIF32", "RUNIF64", "RNORM32", "RNORM64"})


class Product:
    """The cotangent p * q, left unmultiplied so that the walk, when it sums it back
    to a broadcast operand's shape, can sum over trailing dims of a product of views:
    the pattern fuse lowers to GEMM (the transpose of a contraction is a contraction)."""
    __slots__ = ("p", "q")

    def __init__(self, p, q):
        self.p, self.q = p, q


def _unary(f):
    return lambda g, y, xs, node: (f(g, y, xs[0]),)


def _pow(g, y, xs, node):
    a, b = xs
    # torch: d/da is 0 where the exponent is 0; d/db is 0 where a == 0 and b >= 0
    ga = np.where(b == 0, 0.0, g * b * a ** (b - 1))
    gb = np.where((a == 0) & (b >= 0), 0.0, g * y * np.log(a))
    return ga, gb


def _extreme(pick):
    def rule(g, y, xs, node):
        a, b = xs
        half = g * 0.5
        ga = np.where(pick(a, b), g, np.where(a == b, half, 0.0))
        gb = np.where(pick(b, a), g, np.where(a == b, half, 0.0))
        return ga, gb
    return rule


def _trunc(x):
    return np.where(x < 0, np.ceil(x), np.floor(x))


def _red_axes(node, ndim):
    return tuple(d for d in range(ndim) if node[3] >> d & 1)


def _keep(g, x, axes):
    """g (a reduction's result, keepdims or not) with the reduced dims as size 1."""
    if g.ndim == x.ndim or not axes:
        return g
    return np.expand_dims(g, axes)


def _rsum(g, y, xs, node):
    x = xs[0]
    return (np.broadcast_to(_keep(g, x, _red_axes(node, x.ndim)), x.shape),)


def _rextreme(g, y, xs, node):
    x = xs[0]
    axes = _red_axes(node, x.ndim)
    hit = x == _keep(y, x, axes)
    count = np.sum(hit.astype(np_dtype(x)), axis=axes, keepdims=True)
    return (np.where(hit, _keep(g, x, axes) / count, 0.0),)


def _exclusive_cumprod(v):
    """Products of the elements before each one along the last axis."""
    ones = np.ones_like(v[..., :1])
    return np.concatenate([ones, np.cumprod(v[..., :-1], axis=-1)], axis=-1)


def _rprod(g, y, xs, node):
    # The product of all the other elements, without dividing (exact at zeros):
    # exclusive products from the left times exclusive products from the right.
    x = xs[0]
    axes = _red_axes(node, x.ndim)
    k = len(axes)
    if np_size(x) == 0 or k == 0:
        return (np.broadcast_to(_keep(g, x, axes), x.shape),)
    order = [d for d in range(x.ndim) if d not in axes] + list(axes)
    moved = np.transpose(x, order)
    rest = moved.shape[:x.ndim - k]
    flat = moved.reshape(rest + (-1,))
    others = _exclusive_cumprod(flat) * _exclusive_cumprod(flat[..., ::-1])[..., ::-1]
    gr = np.transpose(_keep(g, x, axes), order).reshape(rest + (1,))
    back = (others * gr).reshape(moved.shape)
    return (np.transpose(back, np.argsort(order)),)


def _cumsum(g, y, xs, node):
    ax = node[3]
    return (np.flip(np.cumsum(np.flip(g, ax), axis=ax), ax),)


def _revcumsum(v):
    return np.cumsum(v[..., ::-1], axis=-1)[..., ::-1]


def _cumprod(g, y, xs, node):
    # d y_j / d x_i = prod_{k <= j, k != i} x_k for j >= i. Before the first zero along
    # the axis that is y_j / x_i; at the first zero, the running product with that zero
    # taken as 1; after it, zero (torch's rule, exact at zeros).
    ax = node[3]
    x, g, y = np.moveaxis(xs[0], ax, -1), np.moveaxis(g, ax, -1), np.moveaxis(y, ax, -1)
    nz = x != 0
    before = _exclusive_cumprod(nz.astype(np_dtype(x))) != 0   # no zero before position i
    first = before & ~nz
    safe = np.where(nz, x, 1.0)
    plain = _revcumsum(g * y) / safe
    at_zero = _revcumsum(g * np.cumprod(np.where(first, 1.0, x), axis=-1))
    gx = np.where(first, at_zero, np.where(before, plain, 0.0))
    return (np.moveaxis(gx, -1, ax),)


def _concat(g, y, xs, node):
    ax = node[3]
    a, b = xs
    head = (slice(None),) * ax
    n = a.shape[ax]
    return g[head + (slice(0, n),)], g[head + (slice(n, None),)]


def _gather(g, y, xs, node):
    # The transpose of a gather is a scatter-add; it is built as a one-hot contraction
    # over the gathered axis (cost: result size times that axis' length).
    ax = node[3]
    data, idx = xs
    n = data.shape[ax]
    idx = np.where(idx < 0, idx + n, idx)
    lanes = np.arange(n, dtype=np.int64)
    hit = np.expand_dims(idx, -1) == lanes
    spread = np.where(hit, np.expand_dims(g, -1), 0.0)
    summed = np.sum(spread, axis=ax)
    return np.moveaxis(summed, -1, ax), None


def _cast(g, y, xs, node):
    dt = np_dtype(xs[0])
    return (None,) if dt.kind != "f" else (g.astype(dt),)


def _where(g, y, xs, node):
    c = xs[0]
    return None, np.where(c, g, 0.0), np.where(c, 0.0, g)


RULES = {
    "COPY": lambda g, y, xs, node: (g,),
    "POS": lambda g, y, xs, node: (g,),
    "NEG": lambda g, y, xs, node: (-g,),
    "ABS": _unary(lambda g, y, x: g * np.sign(x)),
    "EXP": _unary(lambda g, y, x: g * y),
    # erf' = 2/sqrt(pi) exp(-x^2); lgamma' = digamma
    "ERF": _unary(lambda g, y, x: g * (_TWO_OVER_SQRT_PI * np.exp(-(x * x)))),
    "ERFC": _unary(lambda g, y, x: g * (-_TWO_OVER_SQRT_PI * np.exp(-(x * x)))),
    "LGAMMA": _unary(lambda g, y, x: g * _C._ew("DIGAMMA", x)),
    "DIGAMMA": _unary(lambda g, y, x: g * _trigamma(x)),
    "EXPM1": _unary(lambda g, y, x: g * (y + 1.0)),
    "LOG": _unary(lambda g, y, x: g / x),
    "LOG1P": _unary(lambda g, y, x: g / (x + 1.0)),
    "LOG2": _unary(lambda g, y, x: g / (x * _LN2)),
    "LOG10": _unary(lambda g, y, x: g / (x * _LN10)),
    "SQRT": _unary(lambda g, y, x: g / (2.0 * y)),
    "SIN": _unary(lambda g, y, x: g * np.cos(x)),
    "COS": _unary(lambda g, y, x: -g * np.sin(x)),
    "TAN": _unary(lambda g, y, x: g * (1.0 + y * y)),
    "TANH": _unary(lambda g, y, x: g * (1.0 - y * y)),
    "ARCTAN": _unary(lambda g, y, x: g / (1.0 + x * x)),
    "ARCSIN": _unary(lambda g, y, x: g / np.sqrt(1.0 - x * x)),
    "ARCCOS": _unary(lambda g, y, x: -g / np.sqrt(1.0 - x * x)),
    "SINH": _unary(lambda g, y, x: g * np.cosh(x)),
    "COSH": _unary(lambda g, y, x: g * np.sinh(x)),
    "ARCSINH": _unary(lambda g, y, x: g / np.sqrt(x * x + 1.0)),
    "ARCCOSH": _unary(lambda g, y, x: g / np.sqrt(x * x - 1.0)),
    "ARCTANH": _unary(lambda g, y, x: g / (1.0 - x * x)),
    "EXP2": _unary(lambda g, y, x: g * y * _LN2),
    "CBRT": _unary(lambda g, y, x: g / (3.0 * y * y)),
    "SQUARE": _unary(lambda g, y, x: g * (2.0 * x)),
    "RECIP": _unary(lambda g, y, x: -g * (y * y)),
    "ADD": lambda g, y, xs, node: (g, g),
    "SUB": lambda g, y, xs, node: (g, -g),
    "MUL": lambda g, y, xs, node: (Product(g, xs[1]), Product(g, xs[0])),
    "DIV": lambda g, y, xs, node: (g / xs[1], -g * xs[0] / (xs[1] * xs[1])),
    "MOD": lambda g, y, xs, node: (g, -g * np.floor_divide(xs[0], xs[1])),
    "FMOD": lambda g, y, xs, node: (g, -g * _trunc(xs[0] / xs[1])),
    "POW": _pow,
    "FPOWER": _pow,
    "MAX": _extreme(lambda a, b: a > b),
    "MIN": _extreme(lambda a, b: a < b),
    "LOGADDEXP": lambda g, y, xs, node: (g * np.exp(xs[0] - y), g * np.exp(xs[1] - y)),
    "ARCTAN2": lambda g, y, xs, node: (g * xs[1] / (xs[0] * xs[0] + xs[1] * xs[1]),
                                        -g * xs[0] / (xs[0] * xs[0] + xs[1] * xs[1])),
    "HYPOT": lambda g, y, xs, node: (g * xs[0] / y, g * xs[1] / y),
    # torch: the sign ratio result/x, zero where x is zero; nothing flows to the sign source
    "COPYSIGN": lambda g, y, xs, node: (np.where(xs[0] == 0, 0.0, g * (y / xs[0])), None),
    "WHERE": _where,
    "CAST": _cast,
    "RSUM": _rsum,
    "RPROD": _rprod,
    "RMAX": _rextreme,
    "RMIN": _rextreme,
    "CUMSUM": _cumsum,
    "CUMPROD": _cumprod,
    "CONCAT": _concat,
    "GATHER": _gather,
}

from ._vjp_view import view_rule as _view_rule  # noqa: E402

RULES["VIEW"] = _view_rule


def _rgamma(g, y, xs, node):
    """A standard gamma sample's derivative in its concentration: implicit
    reparameterization, dx/dalpha = -(dF/dalpha)(x; alpha) / p(x; alpha), as torch's
    _standard_gamma_grad (the GAMMAGRAD op, prims_special.h); the seed gets none."""
    return (g * _C._ew("GAMMAGRAD", xs[0], y), None)


def _gammagrad(g, y, xs, node):
    _C._trace_error("a second derivative through a Gamma sample (torch._standard_gamma's "
                    "reparameterized gradient, differentiated again) is not supported: torch "
                    "does not define it either")


RULES["RGAMMA"] = _rgamma
RULES["GAMMAGRAD"] = _gammagrad
