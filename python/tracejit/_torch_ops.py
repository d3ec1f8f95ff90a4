"""The implementations behind tracejit's torch support (see _torch.py for the routes
that lead here): each torch function, tensor method and torch.nn.functional function
written with the NumPy-vocabulary operations the C tracer implements, so it becomes
graph nodes the passes fuse like any other. Arguments are tracers and Python numbers
(real tensors were lifted to tracers by _torch.dispatch), so NumPy's ufuncs reach the
tracer's __array_ufunc__, and torch's promotion rules apply (csrc/trace/torch.c).
"""
import math
import operator
import sys

import numpy as np

from . import _C
from ._C import TraceError, Tracer

_NP_SHAPE = Tracer.shape          # the C getters (numpy-style), before ATTRS shadow them
_NP_DTYPE = Tracer.dtype
_NP_TRANSPOSE = Tracer.transpose
_NP_RESHAPE = Tracer.reshape


def _torch():
    return sys.modules["torch"]


def _np_dtype(dtype):
    """A torch (or numpy) dtype as a numpy dtype; TypeError for what tracejit lacks."""
    if dtype is None or isinstance(dtype, np.dtype) or dtype in (bool, int, float):
        return dtype
    torch = _torch()
    name = str(dtype).removeprefix("torch.")
    if isinstance(dtype, torch.dtype) and name in _TORCH_NAMES:
        return np.dtype(name)
    raise TypeError(f"{dtype} is not supported by tracejit (supported: torch.bool, int8, int16, "
                    "int32, int64, uint8, uint16, uint32, uint64, float32, float64)")


# the torch dtypes with a NumPy twin of the same name that tracejit computes in (torch's
# uint16/32/64 only as the target of a conversion: torch has few operations on them)
_TORCH_NAMES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float32", "float64")


def _torch_dtype(np_dtype):
    return getattr(_torch(), np.dtype(np_dtype).name)


def _is_float(x):
    return isinstance(x, float) or (isinstance(x, Tracer) and _NP_DTYPE.__get__(x).kind == "f")


def _axis(dim):
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(int(d) for d in dim) if len(dim) else None
    return int(dim)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _ew(name, *xs):
    return _C._ew(name, *xs)


# ---- elementwise -------------------------------------------------------------------
# Binary operations go through NumPy's ufuncs unless the left operand is a tracer: a
# real tensor on the left would call torch's operator, which dispatches back here.

def _bin(npf, op):
    def f(a, b):
        return op(a, b) if isinstance(a, Tracer) else npf(a, b)
    f.__name__ = npf.__name__
    return f


_add = _bin(np.add, operator.add)
_sub = _bin(np.subtract, operator.sub)
_mul = _bin(np.multiply, operator.mul)
_truediv = _bin(np.true_divide, operator.truediv)
_floordiv = _bin(np.floor_divide, operator.floordiv)
_mod = _bin(np.remainder, operator.mod)
_pow = _bin(np.power, operator.pow)
_matmul = _bin(np.matmul, operator.matmul)


def _getitem(a, key):
    if isinstance(a, Tracer):
        return a[key]
    if isinstance(key, Tracer):        # a real tensor indexed by a traced index
        return np.take(a, key, axis=0)
    raise TraceError("indexing a torch tensor with traced values other than one integer "
                     "index tensor is not supported by tracejit yet")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def relu(x, inplace=False):
    return np.maximum(x, 0)


def rsqrt(x):
    return 1.0 / np.sqrt(x)


def _scaled(y, alpha, ref):
    """y * alpha, y a real tensor read as a tracer of ref's trace (its contents at call
    time: x.add_(buf, alpha=a) with buf an optimizer's state, not a constant)."""
    if not isinstance(alpha, Tracer) and alpha == 1:   # (a traced lr: not read)
        return y
    if not isinstance(y, Tracer) and isinstance(ref, Tracer) and \
            type(y).__module__.startswith("torch"):
        y = _C._lift(ref, y)
    return _mul(y, alpha)


def add(x, y, alpha=1, out=None):
    _no_out(out, "add")
    return _add(x, _scaled(y, alpha, x))


def sub(x, y, alpha=1, out=None):
    _no_out(out, "sub")
    return _sub(x, _scaled(y, alpha, x))


def rsub(x, y, alpha=1):
    return _sub(y, _scaled(x, alpha, y))


def div(x, y, rounding_mode=None, out=None):
    _no_out(out, "div")
    if rounding_mode is None:
        return _truediv(x, y)
    if rounding_mode == "floor":
        return _floordiv(x, y)
    if rounding_mode == "trunc":
        if _is_float(x) or _is_float(y):
            q = _truediv(x, y)
            return np.where(q < 0, np.ceil(q), np.floor(q))
        q = _floordiv(x, y)
        return np.where((q < 0) & (q * y != x), q + 1, q)
    raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                     f"found '{rounding_mode}'")


def _no_out(out, name):
    if out is not None:
        raise TraceError(f"torch.{name}(..., out=...) is not supported by tracejit: traced "
                         "functions cannot write into tensors; use the returned value")


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    r = x
    if min is not None:
        r = np.maximum(r, min)
    if max is not None:
        r = np.minimum(r, max)
    return r


def where(cond, x=None, y=None):
    if x is None and y is None:
        raise TraceError("torch.where(cond) with one argument returns indices whose number "
                         "depends on the data, which a trace cannot represent; use "
                         "torch.where(cond, x, y)")
    return np.where(cond, x, y)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """torch.isclose (positive_definite's symmetry check): equal (infinities included),
    or both finite and |a - b| <= atol + rtol * |b|."""
    close = (a == b) | (np.isfinite(a) & np.isfinite(b) & (np.abs(a - b) <= atol + rtol * np.abs(b)))
    return close | (np.isnan(a) & np.isnan(b)) if equal_nan else close


def mvlgamma(x, p):
    """The multivariate log-gamma of dimension p (LKJCholesky.log_prob): torch's sum,
    for every x (torch no longer checks x > (p - 1) / 2)."""
    if p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    r = _ew("LGAMMA", x)
    for j in range(1, p):
        r = r + _ew("LGAMMA", x - j / 2)
    return r + p * (p - 1) / 4 * math.log(math.pi)


def masked_fill(x, mask, value):
    v = np.full_like(x, value) if not isinstance(value, Tracer) else value.astype(_NP_DTYPE.__get__(x))
    return np.where(mask, v, x)


def xlogy(x, y):
    """x * log(y), 0 where x == 0 (nan where y is nan), as torch; and torch's gradients:
    log(y) for x wherever x == 0 and y > 0 (Poisson's log_prob at a count of 0), 0 where
    x == 0 and y <= 0."""
    zero = x == 0
    log_y = np.where(zero & (y <= 0), 0.0, np.log(y))
    return np.where(zero & (y == math.inf), 0.0, x * log_y)


def _unary(npf):
    def f(x, out=None):
        _no_out(out, npf.__name__)
        return npf(x)
    f.__name__ = npf.__name__
    return f


def _binary(npf):
    """A function (so that, as a Tensor method, it binds its tensor: a ufunc does not)."""
    def f(x, y, out=None):
        _no_out(out, npf.__name__)
        return npf(x, y)
    f.__name__ = npf.__name__
    return f


def _special(opname):
    def f(x, out=None):
        _no_out(out, opname.lower())
        return _ew(opname, x)
    f.__name__ = opname.lower()
    return f


# ---- reductions ----------------------------------------------------------------------

def sum_(x, dim=None, keepdim=False, dtype=None):
    return np.sum(x, axis=_axis(dim), keepdims=keepdim, dtype=_np_dtype(dtype))


def mean(x, dim=None, keepdim=False, dtype=None):
    if dtype is None and not _is_float(x):
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {_torch_dtype(_NP_DTYPE.__get__(x))}")
    return np.mean(x, axis=_axis(dim), keepdims=keepdim, dtype=_np_dtype(dtype))


def prod(x, dim=None, keepdim=False, dtype=None):
    return np.prod(x, axis=_axis(dim), keepdims=keepdim, dtype=_np_dtype(dtype))


def _minmax(npf, arg, name):
    def f(x, dim=None, keepdim=False, out=None):
        _no_out(out, name)
        if isinstance(dim, (Tracer,)) or (dim is not None and not isinstance(dim, int)):
            return (np.maximum if name == "max" else np.minimum)(x, dim)   # max(x, other)
        if dim is None:
            return npf(x)
        values = npf(x, axis=dim, keepdims=keepdim)
        indices = arg(x, axis=dim, keepdims=keepdim)
        return getattr(_torch().return_types, name)((values, indices))
    f.__name__ = name
    return f


def amax(x, dim=(), keepdim=False):
    return np.max(x, axis=_axis(dim), keepdims=keepdim)


def amin(x, dim=(), keepdim=False):
    return np.min(x, axis=_axis(dim), keepdims=keepdim)


def argmax(x, dim=None, keepdim=False):
    if dim is None:
        r = np.argmax(x)
        return r.reshape((1,) * x.ndim) if keepdim else r
    return np.argmax(x, axis=dim, keepdims=keepdim)


def argmin(x, dim=None, keepdim=False):
    if dim is None:
        r = np.argmin(x)
        return r.reshape((1,) * x.ndim) if keepdim else r
    return np.argmin(x, axis=dim, keepdims=keepdim)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):            # var(x, unbiased)
        dim, unbiased = None, dim
    return np.var(x, axis=_axis(dim), ddof=_correction(unbiased, correction), keepdims=keepdim)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return np.std(x, axis=_axis(dim), ddof=_correction(unbiased, correction), keepdims=keepdim)


def any_(x, dim=None, keepdim=False):
    return np.any(x, axis=_axis(dim), keepdims=keepdim)


def all_(x, dim=None, keepdim=False):
    return np.all(x, axis=_axis(dim), keepdims=keepdim)


def cumsum(x, dim, dtype=None):
    return np.cumsum(x, axis=dim, dtype=_np_dtype(dtype))


def cumprod(x, dim, dtype=None):
    return np.cumprod(x, axis=dim, dtype=_np_dtype(dtype))


def logsumexp(x, dim, keepdim=False):
    if not _is_float(x):
        x = x.astype(_np_dtype(_torch().get_default_dtype()))
    m = np.max(x, axis=_axis(dim), keepdims=True)
    m = np.where(np.isinf(m), 0.0, m)
    r = np.log(np.sum(np.exp(x - m), axis=_axis(dim), keepdims=True)) + m
    if keepdim:
        return r
    ax = _axis(dim)
    return np.squeeze(r, axis=ax if ax is not None else tuple(range(x.ndim)))


def norm(x, p="fro", dim=None, keepdim=False, dtype=None, out=None):
    _no_out(out, "norm")
    if p in ("fro", 2, 2.0) or p is None:
        return np.sqrt(np.sum(x * x, axis=_axis(dim), keepdims=keepdim))
    if p in (1, 1.0):
        return np.sum(abs(x), axis=_axis(dim), keepdims=keepdim)
    if p == math.inf:
        return np.max(abs(x), axis=_axis(dim), keepdims=keepdim)
    return np.sum(abs(x) ** p, axis=_axis(dim), keepdims=keepdim) ** (1.0 / p)


# ---- movement ------------------------------------------------------------------------

def reshape(x, *shape):
    return _NP_RESHAPE(x, _shape_args(shape))


def view(x, *shape):
    if len(shape) == 1 and not isinstance(shape[0], (int, tuple, list)):
        raise TraceError("Tensor.view(dtype) (a bit reinterpretation) is not supported by "
                         "tracejit")
    return _NP_RESHAPE(x, _shape_args(shape))


def permute(x, *dims):
    return _NP_TRANSPOSE(x, _shape_args(dims))


def transpose(x, dim0, dim1):
    return np.swapaxes(x, dim0, dim1)


def t(x):
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return _NP_TRANSPOSE(x) if x.ndim == 2 else x


def unsqueeze(x, dim):
    return np.expand_dims(x, dim if dim >= 0 else dim + x.ndim + 1)


def squeeze(x, dim=None):
    shape = _NP_SHAPE.__get__(x)
    if dim is None:
        return np.squeeze(x)
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    dims = tuple(d % max(x.ndim, 1) for d in dims if x.ndim and shape[d % x.ndim] == 1)
    return np.squeeze(x, axis=dims) if dims else x


def expand(x, *sizes):
    sizes = _shape_args(sizes)
    shape = _NP_SHAPE.__get__(x)
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be "
                           f"greater or equal to the number of dimensions in the tensor ({len(shape)})")
    full = tuple(shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return np.broadcast_to(x, full)


def repeat(x, *sizes):
    """Tensor.repeat: x tiled sizes[i] times along each dim (new leading dims for the
    extra sizes), np.tile's result; fewer sizes than dims is torch's RuntimeError."""
    sizes = tuple(operator.index(s) for s in _shape_args(sizes))   # a traced int: guarded
    if len(sizes) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than "
                           "number of dimensions of tensor")
    if any(s < 0 for s in sizes):
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(sizes)}: "
                           f"{list(sizes)}")
    return np.tile(x, sizes)


def expand_as(x, other):
    return np.broadcast_to(x, tuple(other.shape))


def flip(x, *dims, dims_=None, **kw):
    dims = kw.get("dims", dims)
    # torch's flip copies (NumPy's is a view): a write into it reaches no other tensor
    return clone(np.flip(x, axis=_shape_args(dims) if isinstance(dims, tuple) else tuple(dims)))


def _view_is_contiguous(x):
    """Whether x, a VIEW node, reads its (row-major) operand as torch's is_contiguous
    would find its strides: row-major over x's own shape."""
    _, op, ins, _, flat, perm, vstep, _ = _C._ad_node(x)
    if op.upper() != "VIEW":
        return True                  # computed values are stored contiguously
    base = ins[0][1].shape
    rstride, acc = [0] * len(base), 1
    for e in range(len(base) - 1, -1, -1):
        rstride[e], acc = acc, acc * base[e]
    expect = 1
    for d in range(len(perm) - 1, -1, -1):
        n = x.shape[d]
        if n == 1:
            continue
        if perm[d] == -1:
            return False
        stride = vstep[d] if flat else vstep[d] * rstride[perm[d]]
        if stride != expect:
            return False
        expect *= n
    return True


def contiguous(x, memory_format=None):
    # torch's contiguous is x itself where its strides are row-major, else a copy
    return x if _view_is_contiguous(x) else clone(x)


def clone(x, memory_format=None):
    return x.astype(_NP_DTYPE.__get__(x))


def flatten(x, start_dim=0, end_dim=-1):
    shape = _NP_SHAPE.__get__(x)
    if not shape:
        return _NP_RESHAPE(x, (1,))
    s, e = start_dim % len(shape), end_dim % len(shape)
    return _NP_RESHAPE(x, shape[:s] + (-1,) + shape[e + 1:])


def unflatten(x, dim, sizes):
    shape = _NP_SHAPE.__get__(x)
    d = dim % len(shape)
    return _NP_RESHAPE(x, shape[:d] + tuple(sizes) + shape[d + 1:])


def narrow(x, dim, start, length):
    idx = [slice(None)] * x.ndim
    idx[dim] = slice(start, start + length)
    return x[tuple(idx)]


def select(x, dim, index):
    idx = [slice(None)] * x.ndim
    idx[dim] = index
    return x[tuple(idx)]


def movedim(x, source, destination):
    return np.moveaxis(x, source, destination)


def roll(x, shifts, dims=None):
    return np.roll(x, shifts, axis=dims)


def cat(tensors, dim=0, out=None):
    _no_out(out, "cat")
    return np.concatenate(list(tensors), axis=dim)


def stack(tensors, dim=0, out=None):
    _no_out(out, "stack")
    return np.stack(list(tensors), axis=dim)


def split(x, split_size_or_sections, dim=0):
    n = _NP_SHAPE.__get__(x)[dim]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        cuts = list(range(s, n, s))
    else:
        cuts = list(np.cumsum(split_size_or_sections)[:-1])
    return tuple(np.split(x, cuts, axis=dim))


def chunk(x, chunks, dim=0):
    n = _NP_SHAPE.__get__(x)[dim]
    return split(x, -(-n // chunks), dim)


def unbind(x, dim=0):
    return tuple(select(x, dim, i) for i in range(_NP_SHAPE.__get__(x)[dim]))


def index_select(x, dim, index):
    return np.take(x, index, axis=dim)


def gather(x, dim, index, sparse_grad=False):
    return np.take_along_axis(x, index, axis=dim)


def take_along_dim(x, indices, dim=None):
    if dim is None:
        return np.take_along_axis(_NP_RESHAPE(x, (-1,)), _NP_RESHAPE(indices, (-1,)), axis=0)
    return np.take_along_axis(x, indices, axis=dim)


def broadcast_to(x, size):
    return np.broadcast_to(x, tuple(size))


def as_tensor(data, dtype=None, device=None):
    """torch.as_tensor of a traced value: the value itself, cast to dtype (Gamma.log_prob)."""
    if not isinstance(data, Tracer):
        raise TraceError("torch.as_tensor of a container holding traced values is not supported "
                         "by tracejit yet: use torch.stack")
    if device is not None and str(device) not in ("cpu", "cpu:0"):
        raise TraceError(f"torch.as_tensor(device={device!r}): tracejit runs on the CPU only")
    nd = _np_dtype(dtype)
    return data if nd is None or nd == _NP_DTYPE.__get__(data) else data.astype(nd)


def broadcast_tensors(*tensors):
    """torch.broadcast_tensors: views of every operand at their common shape."""
    shape = np.broadcast_shapes(*(tuple(_NP_SHAPE.__get__(t)) if isinstance(t, Tracer)
                                  else np.shape(t) for t in tensors))
    return tuple(np.broadcast_to(t, shape) for t in tensors)


# ---- contractions --------------------------------------------------------------------

def matmul(a, b, out=None):
    _no_out(out, "matmul")
    return _matmul(a, b)


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError("mm: both arguments must be 2-D matrices")
    return _matmul(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError("bmm: both arguments must be 3-D tensors")
    return _matmul(a, b)


def mv(a, v):
    return _matmul(a, v)


def dot(a, b):
    return np.dot(a, b)


def outer(a, b):
    return np.outer(a, b)


def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return np.einsum(equation, *operands)


def tensordot(a, b, dims=2, out=None):
    _no_out(out, "tensordot")
    return np.tensordot(a, b, axes=dims)


def linear(x, weight, bias=None):
    y = _matmul(x, np.swapaxes(weight, -1, -2) if weight.ndim == 2 else weight)
    return y if bias is None else _add(y, bias)


def addmm(bias, a, b, beta=1, alpha=1):
    p = _matmul(a, b)
    return _add(bias if beta == 1 else _mul(bias, beta), p if alpha == 1 else _mul(p, alpha))


# ---- torch.nn.functional: _torch_nnf.py (it reads the helpers above) ----------------
from ._torch_nnf import (  # noqa: E402
    softplus, logsigmoid, leaky_relu, elu, selu, gelu, silu, mish, hardtanh, relu6,
    softsign, _softmax_dim, softmax, log_softmax, _is_all_true, dropout, alpha_dropout,
    rrelu, layer_norm, normalize, embedding, one_hot
)


def _table_ops():
    """The elementwise ops' torch names, from the op table (csrc/ir/ops.h's torch column):
    {name: implementation}: NumPy's ufunc (through _unary or _binary, which refuse out=
    and bind as methods), or _special for the ops NumPy lacks; and the names that are Tensor methods
    (not torch.special's only), in table order."""
    impls, methods = {}, []
    for name, numpy, torch_names, arity, kind, flags in _C._op_table():
        for t in torch_names:
            special = t.startswith("special.")
            t = t.removeprefix("special.")
            if numpy is None:
                impls[t] = _special(name)
            else:
                impls[t] = (_unary if arity == 1 else _binary)(getattr(np, numpy))
            if not special:
                methods.append(t)
    return impls, tuple(methods)


_TABLE_IMPLS, EW_METHODS = _table_ops()
_recip = _TABLE_IMPLS["reciprocal"]


def reciprocal(x, *args, **kwargs):
    """torch.reciprocal: integers and bools become torch's default float first (NumPy's
    reciprocal of an integer is an integer)."""
    if isinstance(x, Tracer) and not _is_float(x):
        x = x.astype(_np_dtype(_torch().get_default_dtype()))
    return _recip(x, *args, **kwargs)


# name -> implementation, shared by functions (torch.X, F.X, Tensor.X) and methods;
# the elementwise ops' names come from the op table, and the entries here that repeat
# one (add, sub, where, ...) implement torch's own arguments or scalar rules
FUNCS = {
    **_TABLE_IMPLS,
    "reciprocal": reciprocal, "sigmoid": sigmoid, "relu": relu, "rsqrt": rsqrt, "add": add, "sub": sub,
    "subtract": sub, "rsub": rsub, "div": div, "divide": div, "true_divide": div,
    "mul": _mul, "multiply": _mul, "floor_divide": _floordiv,
    "remainder": _mod, "pow": _pow, "xlogy": xlogy,
    "clamp": clamp, "clip": clamp, "clamp_min": lambda x, min: np.maximum(x, min),
    "clamp_max": lambda x, max: np.minimum(x, max), "where": where, "masked_fill": masked_fill, "isclose": isclose,
    "mvlgamma": mvlgamma, "multigammaln": mvlgamma,
    "expit": sigmoid,
    "sum": sum_, "mean": mean, "prod": prod, "amax": amax, "amin": amin,
    "max": _minmax(np.max, np.argmax, "max"), "min": _minmax(np.min, np.argmin, "min"),
    "argmax": argmax, "argmin": argmin, "var": var, "std": std, "any": any_, "all": all_,
    "cumsum": cumsum, "cumprod": cumprod, "logsumexp": logsumexp, "norm": norm,
    "reshape": reshape, "view": view, "permute": permute, "transpose": transpose,
    "swapaxes": transpose, "swapdims": transpose, "t": t, "unsqueeze": unsqueeze,
    "squeeze": squeeze, "expand": expand, "expand_as": expand_as, "repeat": repeat, "flip": flip,
    "contiguous": contiguous, "clone": clone, "flatten": flatten, "unflatten": unflatten,
    "ravel": lambda x: _NP_RESHAPE(x, (-1,)), "narrow": narrow, "select": select,
    "movedim": movedim, "moveaxis": movedim, "roll": roll, "cat": cat, "concat": cat,
    "concatenate": cat, "stack": stack, "split": split, "chunk": chunk, "unbind": unbind,
    "index_select": index_select, "gather": gather, "take_along_dim": take_along_dim,
    "broadcast_to": broadcast_to, "broadcast_tensors": broadcast_tensors, "as_tensor": as_tensor,
    "matmul": matmul, "mm": mm, "bmm": bmm, "mv": mv, "dot": dot, "outer": outer,
    "ger": outer, "einsum": einsum, "tensordot": tensordot, "linear": linear, "addmm": addmm,
    "softplus": softplus, "logsigmoid": logsigmoid, "log_sigmoid": logsigmoid,
    "leaky_relu": leaky_relu, "elu": elu, "selu": selu, "gelu": gelu, "silu": silu,
    "mish": mish, "hardtanh": hardtanh, "relu6": relu6, "softsign": softsign,
    "softmax": softmax, "log_softmax": log_softmax,
    "dropout": dropout, "dropout1d": dropout, "dropout2d": dropout, "dropout3d": dropout,
    "feature_dropout": dropout, "alpha_dropout": alpha_dropout,
    "feature_alpha_dropout": alpha_dropout, "rrelu": rrelu,
    "layer_norm": layer_norm, "normalize": normalize, "embedding": embedding,
    "one_hot": one_hot, "_is_all_true": _is_all_true, "zeros_like": lambda x, dtype=None, **kw: np.zeros_like(x, dtype=_np_dtype(dtype)),
    "ones_like": lambda x, dtype=None, **kw: np.ones_like(x, dtype=_np_dtype(dtype)),
    "empty_like": lambda x, dtype=None, **kw: np.zeros_like(x, dtype=_np_dtype(dtype)),
    "full_like": lambda x, fill_value, dtype=None, **kw: np.full_like(x, fill_value, dtype=_np_dtype(dtype)),
}

from ._torch_nn import FUNCS as _NN_FUNCS  # noqa: E402  (convolution, pooling, ...)
from ._torch_rnn import FUNCS as _RNN_FUNCS  # noqa: E402  (recurrent layers)
from ._torch_attention import FUNCS as _ATTENTION_FUNCS  # noqa: E402

FUNCS.update(_NN_FUNCS)
FUNCS.update(_RNN_FUNCS)
FUNCS.update(_ATTENTION_FUNCS)
from ._train_step import FUNCS as _OPTIM_FUNCS  # noqa: E402  (lerp, addcmul, addcdiv)
FUNCS.update(_OPTIM_FUNCS)
from ._torch_losses import FUNCS as _LOSS_FUNCS  # noqa: E402
from ._torch_linalg import FUNCS as _LINALG_FUNCS  # noqa: E402  (cholesky, solves, LU)
from ._torch_sort import FUNCS as _SORT_FUNCS  # noqa: E402  (sort, topk, ...)

FUNCS.update(_LOSS_FUNCS)
FUNCS.update(_LINALG_FUNCS)
from ._torch_quant import FUNCS as _QUANT_FUNCS  # noqa: E402  (fake quantization, round)
FUNCS.update(_QUANT_FUNCS)
FUNCS.update(_SORT_FUNCS)
