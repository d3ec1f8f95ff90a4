"""NumPy functions that tracejit implements by composition: each is ordinary NumPy code
run on tracers, so it becomes graph nodes the passes fuse like any other. The C
tracer's __array_function__ looks a function up here when it has no handler of its
own (registered once, at import)."""
import numpy as np

from . import _C


def _norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm for vectors (ord None, 2, 1, inf, -inf, 0, p) and matrices
    (None/'fro' and 1/inf/-1/-inf); 2-norms of matrices need an SVD: not supported."""
    from . import TraceError
    nd = x.ndim
    if axis is None:
        if ord is None or (ord == "fro" and nd == 2) or (ord == 2 and nd == 1):
            xf = x if x.dtype.kind == "f" else x.astype(np.float64)
            r = np.sqrt(np.sum(xf * xf))
            return r.reshape((1,) * nd) if keepdims else r
        axis = tuple(range(nd))
    if isinstance(axis, int):
        axis = (axis,)
    axis = tuple(a % nd for a in axis)
    xf = x if x.dtype.kind == "f" else x.astype(np.float64)
    if len(axis) == 1:
        a = axis[0]
        if ord is None or ord == 2:
            return np.sqrt(np.sum(xf * xf, axis=a, keepdims=keepdims))
        if ord == np.inf:
            return np.max(abs(xf), axis=a, keepdims=keepdims)
        if ord == -np.inf:
            return np.min(abs(xf), axis=a, keepdims=keepdims)
        if ord == 0:
            return np.sum((xf != 0).astype(xf.dtype), axis=a, keepdims=keepdims)
        if ord == 1:
            return np.sum(abs(xf), axis=a, keepdims=keepdims)
        if isinstance(ord, str):
            raise ValueError(f"Invalid norm order '{ord}' for vectors")
        return np.sum(abs(xf) ** ord, axis=a, keepdims=keepdims) ** (1.0 / ord)
    if len(axis) == 2:
        r, c = axis
        if ord is None or ord == "fro":
            return np.sqrt(np.sum(xf * xf, axis=axis, keepdims=keepdims))
        if ord in (1, -1, np.inf, -np.inf):
            inner, outer = (r, c) if ord in (1, -1) else (c, r)
            s = np.sum(abs(xf), axis=inner, keepdims=True)
            s = np.max(s, axis=outer, keepdims=True) if ord > 0 else np.min(s, axis=outer, keepdims=True)
            return s if keepdims else np.squeeze(s, axis=(r, c))
        raise TraceError(f"numpy.linalg.norm(ord={ord!r}) of a matrix needs an SVD, which "
                         "tracejit does not support")
    raise ValueError("Improper number of dimensions to norm.")


def _tri(x, k, lower):
    n, m = x.shape[-2:]
    mask = np.tri(n, m, k, dtype=bool) if lower else ~np.tri(n, m, k - 1, dtype=bool)
    return np.where(mask, x, np.zeros((), dtype=x.dtype))


def _tril(m, k=0):
    return _tri(m, k, True)


def _triu(m, k=0):
    return _tri(m, k, False)


def _diff(a, n=1, axis=-1, prepend=None, append=None):
    from . import TraceError
    if prepend is not None or append is not None:
        raise TraceError("numpy.diff(prepend=, append=) is not supported by tracejit yet")
    ax = axis % a.ndim
    hi = tuple(slice(1, None) if d == ax else slice(None) for d in range(a.ndim))
    lo = tuple(slice(None, -1) if d == ax else slice(None) for d in range(a.ndim))
    for _ in range(n):
        a = (a[hi] != a[lo]) if a.dtype.kind == "b" else a[hi] - a[lo]
    return a


def _einsum(subscripts, *operands, optimize=False, **kwargs):
    """einsum of one or two operands without repeated indices within an operand: a
    product of broadcast views summed over the contracted indices, or, for two
    operands, a (batched) matmul of transposed and reshaped operands."""
    from . import TraceError
    if kwargs:
        raise TraceError(f"numpy.einsum keyword arguments {sorted(kwargs)} are not supported "
                         "by tracejit")
    if not isinstance(subscripts, str) or "." in subscripts:
        raise TraceError("numpy.einsum is supported with explicit subscripts without '...'")
    spec = subscripts.replace(" ", "")
    inputs, _, out = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands) or len(terms) > 2:
        raise TraceError("numpy.einsum is supported for one or two operands")
    for t in terms:
        if len(set(t)) != len(t):
            raise TraceError(f"numpy.einsum with a repeated index in {t!r} (a diagonal) is "
                             "not supported by tracejit yet")
    if "->" not in spec:
        counts = {}
        for t in terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
    sizes = {}
    for t, op in zip(terms, operands):
        if len(t) != np.ndim(op):
            raise ValueError(f"einstein sum subscripts string contains too many subscripts for "
                             f"operand {terms.index(t)}")
        for c, s in zip(t, np.shape(op)):
            if sizes.setdefault(c, s) != s and s != 1 and sizes[c] != 1:
                raise ValueError(f"operands could not be broadcast together for index {c!r}")
            sizes[c] = max(sizes[c], s)
    contracted = [c for c in dict.fromkeys("".join(terms)) if c not in out]
    if len(terms) == 2:
        a, b = operands
        ta, tb = terms
        batch = [c for c in out if c in ta and c in tb]
        ia = [c for c in out if c in ta and c not in tb]
        jb = [c for c in out if c in tb and c not in ta]
        ks = [c for c in contracted if c in ta and c in tb]
        only = [c for c in contracted if c not in ks]
        if not only and all(np.shape(a)[ta.index(c)] == np.shape(b)[tb.index(c)] for c in batch + ks):
            A = np.transpose(a, [ta.index(c) for c in batch + ia + ks])
            B = np.transpose(b, [tb.index(c) for c in batch + ks + jb])
            nb = [sizes[c] for c in batch]
            mi = int(np.prod([sizes[c] for c in ia], dtype=np.int64))
            nj = int(np.prod([sizes[c] for c in jb], dtype=np.int64))
            kk = int(np.prod([sizes[c] for c in ks], dtype=np.int64))
            r = np.reshape(A, nb + [mi, kk]) @ np.reshape(B, nb + [kk, nj])
            r = np.reshape(r, nb + [sizes[c] for c in ia + jb])
            order = batch + ia + jb
            r = np.transpose(r, [order.index(c) for c in out])
            return r if out else r[()]   # a 0-d result is a NumPy scalar, as NumPy's
    letters = list(out) + contracted
    prod = None
    for t, op in zip(terms, operands):
        idx = tuple(slice(None) if c in t else None for c in letters)
        perm = [t.index(c) for c in letters if c in t]
        v = np.transpose(op, perm)[idx]
        prod = v if prod is None else prod * v
    if contracted:  # in the operands' dtype (no int32 -> int64 of np.sum); bool: or
        axes = tuple(range(len(out), len(letters)))
        prod = np.any(prod, axis=axes) if prod.dtype == np.bool_ else \
            np.sum(prod, axis=axes, dtype=prod.dtype)
    return prod if out else prod[()]   # a 0-d result is a NumPy scalar, as NumPy's


def _untraced(dst, name):
    from . import TraceError
    if not isinstance(dst, _C.Tracer):
        raise TraceError(f"numpy.{name} writes into an existing array, which a traced function "
                         f"can do only where that array is traced (numpy.full_like(a, v) calls "
                         f"numpy.copyto when a is not traced); compute the value instead, e.g. "
                         f"with numpy.full_like or numpy.where")


def _copyto(dst, src, casting="same_kind", where=True):
    """copyto: src broadcast to dst's shape, cast under `casting`, where `where`."""
    _untraced(dst, "copyto")
    src_dt = src.dtype if isinstance(src, _C.Tracer) else np.result_type(src)
    if not np.can_cast(src_dt, dst.dtype, casting=casting):
        what = "scalar" if np.ndim(src) == 0 else "array data"
        raise TypeError(f"Cannot cast {what} from dtype('{src_dt}') to dtype('{dst.dtype}') "
                        f"according to the rule '{casting}'")
    new = np.full_like(dst, src)            # broadcast (NumPy's message) and cast
    if where is not True:
        new = np.where(where, new, dst)
    _C._assign(dst, new, "numpy.copyto()")


def _putmask(a, mask, values):
    """putmask: a.flat[n] = values.flat[n % values.size] where mask.flat[n]."""
    _untraced(a, "putmask")
    vals = np.reshape(values, (-1,)) if np.ndim(values) else values
    n = np.size(values)
    if n == 0:                              # NumPy writes nothing
        return
    if np.ndim(values):
        reps = -(-a.size // n)
        tiled = np.concatenate([vals] * reps) if reps > 1 else vals
        vals = np.reshape(tiled[:a.size], a.shape)
    _C._assign(a, np.where(mask, np.full_like(a, vals), a), "numpy.putmask()")


def _place(arr, mask, vals):
    """place: the k-th True element of mask takes vals.flat[k % vals.size]."""
    from . import TraceError
    _untraced(arr, "place")
    flat = np.reshape(vals, (-1,))
    n = np.size(flat)
    if n == 0:
        raise TraceError("numpy.place with empty vals raises in eager only where mask has a "
                         "True element, which a trace cannot know; pass non-empty vals")
    m = np.reshape(mask, (-1,)).astype(np.int64)
    pos = (np.cumsum(m) - 1) % n
    placed = np.reshape(np.full_like(arr, flat, shape=(n,))[pos], arr.shape)
    _C._assign(arr, np.where(mask, placed, arr), "numpy.place()")


def _copy(a, order="K", subok=False):
    return a.copy()


from ._impls_np import IMPLS as _MORE  # noqa: E402

IMPLS = {
    np.copy: _copy,
    np.copyto: _copyto,
    np.putmask: _putmask,
    np.place: _place,
    np.linalg.norm: _norm,
    np.tril: _tril,
    np.triu: _triu,
    np.diff: _diff,
    np.einsum: _einsum,
}
IMPLS.update(_MORE)
