"""torch's indexed in-place writes on tracers: index_put_, index_add_, scatter_,
scatter_add_ (and index_fill_), each computing the tensor's new contents with the
tracer's NumPy-vocabulary operations and handing them to _C._assign (which refuses a
write other tensors would see, as for every in-place method).

A scatter along dim D reads its index one slice j along D at a time: the positions it
writes are where an iota along D equals index[..., j, ...], so the result is a chain of
selects (scatter_: the last write wins; scatter_add_: a sum in index order). The
index's other dims must equal the tensor's (torch allows smaller ones: refused), and
its length along D is bounded by SCATTER_MAX (the chain is unrolled). An index out of
range raises IndexError at run time (a GATHER of the index checks it), as eager
raises."""
import numpy as np

from . import _C
from ._C import TraceError, Tracer
from ._torch_ops import _NP_DTYPE, _NP_SHAPE, FUNCS, _no_out

SCATTER_MAX = 64        # unrolled selects per scatter


def _shape(x):
    return tuple(_NP_SHAPE.__get__(x)) if isinstance(x, Tracer) else tuple(np.shape(x))


def _checked(index, n):
    """index (int64) + 0, the 0 read at every position through a gather of n zeros, so
    a position outside [0, n) raises IndexError at run time (negative ones too: torch
    refuses them)."""
    index = index.astype(np.int64) if isinstance(index, Tracer) else np.asarray(index, np.int64)
    if not isinstance(index, Tracer):
        return np.take(np.zeros(n, np.int64), index) + index     # NumPy's IndexError now
    probe = np.reshape(np.where(index < 0, n, index), (-1,))
    zero = np.zeros_like(probe, shape=(n,))[probe]
    return index + np.reshape(zero, _shape(index))


def _scatter(x, dim, index, src, add, what, inplace=True):
    shape = _shape(x)
    nd = len(shape)
    dim = dim + nd if dim < 0 else dim
    if not 0 <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}], "
                         f"but got {dim})")
    ishape = _shape(index)
    if len(ishape) != nd or any(i != s for d, (i, s) in enumerate(zip(ishape, shape)) if d != dim):
        raise TraceError(f"{what} with an index of shape {list(ishape)} into a tensor of shape "
                         f"{list(shape)}: tracejit supports an index whose dims other than {dim} "
                         f"equal the tensor's")
    m = ishape[dim]
    if m > SCATTER_MAX:
        raise TraceError(f"{what} with {m} indices along dim {dim}: tracejit unrolls a scatter "
                         f"into one select per index and supports at most {SCATTER_MAX}")
    dt = _NP_DTYPE.__get__(x)
    if isinstance(src, (Tracer,)) or hasattr(src, "shape"):
        sshape = _shape(src)
        if len(sshape) != nd or any(s < i for s, i in zip(sshape, ishape)):
            raise RuntimeError(f"Expected index {list(ishape)} to be no larger than src "
                               f"{list(sshape)} apart from dimension {dim}")
        src = src[tuple(slice(0, i) for i in ishape)]
        sdt = _NP_DTYPE.__get__(src) if isinstance(src, Tracer) else np.asarray(src[:0]).dtype
        if sdt != dt:
            raise RuntimeError(f"{what.split('.')[-1][:-2].rstrip('_')}(): Expected self.dtype "
                               f"to be equal to src.dtype")
    index = _checked(index, shape[dim])
    iota = np.arange(shape[dim]).reshape(tuple(-1 if d == dim else 1 for d in range(nd)))
    new = x
    for j in range(m):
        at = tuple(slice(j, j + 1) if d == dim else slice(None) for d in range(nd))
        hit = iota == index[at]
        part = src[at] if isinstance(src, Tracer) or hasattr(src, "shape") else src
        if add:
            new = new + np.where(hit, part, np.zeros((), dt)).astype(dt)
        else:
            new = np.where(hit, part, new).astype(dt)
    if not inplace:
        return new if m else np.copy(x)   # (a new tensor, as torch's out-of-place forms)
    return _C._assign(x, new, what)


def scatter_(x, dim, index, src=None, value=None, reduce=None, _inplace=True):
    if reduce is not None:
        raise TraceError(f"torch.Tensor.{_name('scatter', _inplace)}(reduce=...) is not "
                         "supported by tracejit yet")
    return _scatter(x, dim, index, value if src is None else src, False,
                    f"torch.Tensor.{_name('scatter', _inplace)}()", _inplace)


def scatter_add_(x, dim, index, src, _inplace=True):
    return _scatter(x, dim, index, src, True, f"torch.Tensor.{_name('scatter_add', _inplace)}()",
                    _inplace)


def _name(base, inplace):
    return base + "_" if inplace else base


def _along(index, shape, dim):
    """A 1-d index of length m as a scatter index: (..., m, ...) broadcast over the
    other dims of shape."""
    nd = len(shape)
    index = index if isinstance(index, Tracer) else np.asarray(index)
    m = _shape(index)[0]
    full = tuple(m if d == dim else shape[d] for d in range(nd))
    return np.broadcast_to(np.reshape(index, tuple(-1 if d == dim else 1 for d in range(nd))), full)


def index_add_(x, dim, index, source, alpha=1, _inplace=True):
    shape = _shape(x)
    dim = dim + len(shape) if dim < 0 else dim
    src = source if alpha == 1 else source * alpha
    return _scatter(x, dim, _along(index, shape, dim), src, True,
                    f"torch.Tensor.{_name('index_add', _inplace)}()", _inplace)


def index_fill_(x, dim, index, value, _inplace=True):
    shape = _shape(x)
    dim = dim + len(shape) if dim < 0 else dim
    idx = _along(index, shape, dim)
    return _scatter(x, dim, idx, value, False, f"torch.Tensor.{_name('index_fill', _inplace)}()",
                    _inplace)


def index_put_(x, indices, values, accumulate=False, _inplace=True):
    indices = tuple(indices)
    if not accumulate:
        if not _inplace:
            x = np.copy(x)
        x[indices] = values
        return x
    idx = indices[0] if len(indices) == 1 else None
    if idx is not None and len(_shape(idx)) == 1 and (
            _NP_DTYPE.__get__(idx) if isinstance(idx, Tracer) else np.asarray(idx).dtype) != bool:
        shape = _shape(x)
        vals = np.broadcast_to(values, (_shape(idx)[0],) + shape[1:])
        return _scatter(x, 0, _along(idx, shape, 0), vals, True,
                        f"torch.Tensor.{_name('index_put', _inplace)}(accumulate=True)", _inplace)
    raise TraceError("torch.Tensor.index_put_(accumulate=True) is supported by tracejit with "
                     "one 1-d integer index tensor only")


ATTRS = {"scatter_": scatter_, "scatter_add_": scatter_add_, "index_add_": index_add_,
         "index_fill_": index_fill_, "index_put_": index_put_}
# the out-of-place forms (x.scatter_add(...), torch.scatter_add(x, ...)): the same new
# contents in a new tensor, x unwritten
def _out_of_place(f):
    def fn(x, *args, **kwargs):      # a function, not a partial: bound as a method
        return f(x, *args, _inplace=False, **kwargs)
    fn.__name__ = fn.__qualname__ = f.__name__[:-1]
    return fn


OUT_OF_PLACE = {n[:-1]: _out_of_place(f) for n, f in ATTRS.items()}


def _out_refused(name, fn):
    """torch.NAME(..., out=o) is refused by name (torch infers the reduction's dtype from
    out and resizes it; the autograd route would have to raise torch's out= error), not
    answered with a TypeError about an unknown keyword."""
    def f(*args, out=None, **kw):
        _no_out(out, name)
        return fn(*args, **kw)
    f.__name__ = fn.__name__
    return f


OUT_REFUSED = {name: _out_refused(name, FUNCS[name])
               for name in ("sum", "mean", "prod", "cumsum", "cumprod", "amax", "amin", "any",
                            "all", "argmax", "argmin", "logsumexp", "var", "std")}
