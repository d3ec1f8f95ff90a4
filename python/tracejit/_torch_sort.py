"""torch's sorting along a dim of fixed size n: sort, argsort, topk, kthvalue, msort.

The position of each element in the sorted order is its rank, counted with
comparisons of every pair along the dim (n^2 elements per row: meant for the sizes
models sort, up to _MAX_N), then the permutation is read off the ranks and the values
gathered through it: so the backward is the gather's (each value's gradient goes to
the element it came from, as in eager). Order: NaN is the largest value (last
ascending, first descending), as torch; equal elements keep their index order (a
stable sort). torch guarantees that order with stable=True only; with stable=False
(its default) the order of equal elements is unspecified and eager's CPU kernel
differs from it, so indices of ties (and where their gradients go) may differ from
eager's there, the values never.
"""
import numpy as np

from ._C import TraceError, Tracer
from ._torch_ops import _NP_DTYPE, _NP_SHAPE, _torch

_MAX_N = 4096


def _shape(x):
    return tuple(_NP_SHAPE.__get__(x))


def _before(a, b, descending, is_float):
    """Whether a sorts strictly before b (NaN largest)."""
    if descending:
        r = a > b
        return r | (np.isnan(a) & ~np.isnan(b)) if is_float else r
    r = a < b
    return r | (~np.isnan(a) & np.isnan(b)) if is_float else r


def _order(x, dim, descending, what):
    """(xm, perm): x with dim moved last, and the stable sorting permutation of its
    last axis (int64, (..., n)): perm[..., k] the index of the k-th element."""
    if not isinstance(x, Tracer):
        raise TraceError(f"{what} of a value that is not traced")
    nd = len(_shape(x))
    dim = dim % max(nd, 1)
    xm = x[None] if nd == 0 else np.moveaxis(x, dim, -1)
    n = _shape(xm)[-1]
    if n > _MAX_N:
        raise TraceError(f"{what} along a dim of {n} elements: tracejit sorts by comparing every "
                         f"pair, up to {_MAX_N} elements")
    is_float = _NP_DTYPE.__get__(x).kind == "f"
    a, b = xm[..., :, None], xm[..., None, :]          # a: element i, b: element j
    j_before_i = np.arange(n)[None, :] < np.arange(n)[:, None]
    equal = (a == b) | (np.isnan(a) & np.isnan(b)) if is_float else (a == b)
    ahead = _before(b, a, descending, is_float) | (equal & j_before_i)
    rank = np.sum(ahead, axis=-1, dtype=np.int64)                  # (..., n)
    slots = np.arange(n)[:, None]
    perm = np.sum(np.where(rank[..., None, :] == slots, np.arange(n), 0), axis=-1,
                  dtype=np.int64)
    return xm, perm, nd, dim


def _back(y, nd, dim, keepdim=True):
    if nd == 0:
        return y[0] if keepdim else y
    return np.moveaxis(y, -1, dim)


def sort(x, dim=-1, descending=False, stable=False, *, out=None):
    if out is not None:
        raise TraceError("torch.sort(..., out=...) is not supported by tracejit")
    xm, perm, nd, dim = _order(x, dim, descending, "torch.sort")
    values = np.take_along_axis(xm, perm, axis=-1)
    return _torch().return_types.sort((_back(values, nd, dim), _back(perm, nd, dim)))


def argsort(x, dim=-1, descending=False, stable=False):
    _, perm, nd, dim = _order(x, dim, descending, "torch.argsort")
    return _back(perm, nd, dim)


def msort(x):
    return sort(x, 0).values


def topk(x, k, dim=-1, largest=True, sorted=True, *, out=None):
    if out is not None:
        raise TraceError("torch.topk(..., out=...) is not supported by tracejit")
    xm, perm, nd, dim = _order(x, dim, largest, "torch.topk")
    n = _shape(xm)[-1]
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range")
    perm = perm[..., :k]
    values = np.take_along_axis(xm, perm, axis=-1)
    return _torch().return_types.topk((_back(values, nd, dim), _back(perm, nd, dim)))


def kthvalue(x, k, dim=-1, keepdim=False, *, out=None):
    xm, perm, nd, dim = _order(x, dim, False, "torch.kthvalue")
    n = _shape(xm)[-1]
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim}")
    idx = perm[..., k - 1:k]
    value = np.take_along_axis(xm, idx, axis=-1)
    if nd == 0:
        value, idx = value[0], idx[0]
    elif keepdim:
        value, idx = np.moveaxis(value, -1, dim), np.moveaxis(idx, -1, dim)
    else:
        value, idx = value[..., 0], idx[..., 0]
    return _torch().return_types.kthvalue((value, idx))


FUNCS = {"sort": sort, "argsort": argsort, "msort": msort, "topk": topk, "kthvalue": kthvalue}
METHODS = tuple(FUNCS)
