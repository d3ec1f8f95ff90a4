"""More NumPy functions by composition (see _impls.py): each is ordinary NumPy code run
on tracers, written to give NumPy's values (the same formula where NumPy's own is
known: Horner for polyval, rint's round-half-to-even, interp's slope form). What a
trace cannot do (a count or size that depends on the data, an argument NumPy allows
that these do not) raises TraceError naming the function and argument."""
import operator

import numpy as np

from . import _C


def _refuse(msg):
    from . import TraceError
    raise TraceError(msg)


def _static_int(v, fn, arg):
    if isinstance(v, _C.Tracer):
        _refuse(f"numpy.{fn}'s {arg} is a traced value, but it sets the shape of the result; "
                f"pass it as a Python int (static_argnames)")
    try:
        return operator.index(v)
    except TypeError:
        _refuse(f"numpy.{fn}({arg}={v!r}) is not supported by tracejit yet (an int is)")


# ---- rounding ---------------------------------------------------------------------

def _rint(x, out=None, **kw):
    """Round half to even, exactly: d = x - floor(x) is exact below 2^(mantissa bits),
    where every float is already an integer; the sign of x kept (rint(-0.3) = -0.0)."""
    if out is not None or kw:
        _refuse("numpy.rint(out=, where=, ...) is not supported by tracejit yet")
    x = np.asarray(x) if not isinstance(x, _C.Tracer) else x
    if x.dtype.kind in "biu":   # NumPy's loops: integers become floats
        if x.dtype.kind == "b" or x.dtype.itemsize < 4:
            _refuse(f"numpy.rint of {x.dtype} (a float16 result) is not supported by tracejit yet")
        return x.astype(np.float64)
    r = np.floor(x)
    d = x - r
    half = np.asarray(0.5, x.dtype)
    odd = np.fmod(r, 2) != 0
    up = (d > half) | ((d == half) & odd)
    return np.copysign(np.where(up, r + 1, r), x)


def _trunc(x, out=None, **kw):
    if out is not None or kw:
        _refuse("numpy.trunc(out=, where=, ...) is not supported by tracejit yet")
    if x.dtype.kind in "biu":
        return x.copy()
    return np.where(x < 0, np.ceil(x), np.floor(x))


def _fix(x, out=None):
    if out is not None:
        _refuse("numpy.fix(out=) is not supported by tracejit yet")
    return _trunc(x)


def _round(a, decimals=0, out=None):
    if out is not None:
        _refuse("numpy.round(out=) is not supported by tracejit yet")
    decimals = _static_int(decimals, "round", "decimals")
    if a.dtype.kind in "biu":
        if decimals >= 0:
            return a.copy()
        _refuse("numpy.round of integers to negative decimals is not supported by tracejit yet")
    if decimals == 0:
        return _rint(a)
    # NumPy's: multiply by 10**decimals, round half to even, divide back
    scale = np.asarray(10.0 ** abs(decimals), a.dtype)
    if decimals > 0:
        return _rint(a * scale) / scale
    return _rint(a / scale) * scale


# ---- comparisons and counts -----------------------------------------------------

def _isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """NumPy's rule: |a - b| <= atol + rtol * |b|, infinities equal only to themselves."""
    a = a if isinstance(a, _C.Tracer) else np.asarray(a)
    b = b if isinstance(b, _C.Tracer) else np.asarray(b)
    dt = np.result_type(a.dtype, b.dtype, np.float64 if a.dtype.kind in "biu" and b.dtype.kind in "biu" else a.dtype)
    if dt.kind not in "fc":
        dt = np.dtype(np.float64)
    x, y = a.astype(dt), b.astype(dt)
    finite = np.isfinite(x) & np.isfinite(y)
    close = np.abs(x - y) <= np.asarray(atol, dt) + np.asarray(rtol, dt) * np.abs(y)
    r = np.where(finite, close, x == y)
    if equal_nan:
        r = r | (np.isnan(x) & np.isnan(y))
    return r


def _allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return np.all(_isclose(a, b, rtol, atol, equal_nan))


def _count_nonzero(a, axis=None, *, keepdims=False):
    return np.sum(a != 0, axis=axis, keepdims=keepdims, dtype=np.intp)


def _ptp(a, axis=None, out=None, keepdims=False):
    if out is not None:
        _refuse("numpy.ptp(out=) is not supported by tracejit yet")
    return np.max(a, axis=axis, keepdims=keepdims) - np.min(a, axis=axis, keepdims=keepdims)


def _nan_reduce(name, fill):
    def impl(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        if out is not None or kw:
            _refuse(f"numpy.{name}(out=, where=, ...) is not supported by tracejit yet")
        if a.dtype.kind not in "fc":
            return getattr(np, name[3:])(a, axis=axis, dtype=dtype, keepdims=keepdims)
        return getattr(np, name[3:])(np.where(np.isnan(a), np.asarray(fill, a.dtype), a),
                                     axis=axis, dtype=dtype, keepdims=keepdims)
    return impl


def _nan_extreme(name, fill):
    def impl(a, axis=None, out=None, keepdims=False, **kw):
        if out is not None or kw:
            _refuse(f"numpy.{name}(out=, where=, ...) is not supported by tracejit yet")
        red = getattr(np, name[3:])
        if a.dtype.kind not in "fc":
            return red(a, axis=axis, keepdims=keepdims)
        nan = np.isnan(a)
        r = red(np.where(nan, np.asarray(fill, a.dtype), a), axis=axis, keepdims=keepdims)
        # an all-NaN slice is NaN, as NumPy's (which warns)
        return np.where(np.all(nan, axis=axis, keepdims=keepdims), np.asarray(np.nan, a.dtype), r)
    return impl


def _nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    if out is not None or kw:
        _refuse("numpy.nanmean(out=, where=, ...) is not supported by tracejit yet")
    if a.dtype.kind not in "fc":
        return np.mean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    ok = ~np.isnan(a)
    total = np.sum(np.where(ok, a, np.asarray(0, a.dtype)), axis=axis, dtype=dtype, keepdims=keepdims)
    return total / np.sum(ok, axis=axis, keepdims=keepdims, dtype=np.intp)


def _average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    if weights is None:
        avg = np.mean(a, axis=axis, keepdims=keepdims)
        n = np.asarray(a.size // max(avg.size, 1), avg.dtype)
        return (avg, np.broadcast_to(n, avg.shape)) if returned else avg
    w = weights if isinstance(weights, _C.Tracer) else np.asarray(weights)
    if w.shape != a.shape:
        if axis is None or w.ndim != 1:
            _refuse("numpy.average with weights of another shape needs axis= and 1-D weights")
        ax = axis % a.ndim
        w = np.reshape(w, tuple(w.shape[0] if d == ax else 1 for d in range(a.ndim)))
    dt = np.result_type(a.dtype, w.dtype, np.float64 if a.dtype.kind in "biu" else a.dtype)
    wsum = np.sum(np.broadcast_to(w, a.shape).astype(dt), axis=axis, keepdims=keepdims)
    avg = np.sum((a * w).astype(dt), axis=axis, keepdims=keepdims) / wsum
    return (avg, wsum) if returned else avg


# ---- shapes, diagonals, repetition ----------------------------------------------

def _atleast(n):
    def impl(*arys):
        out = []
        for a in arys:
            a = a if isinstance(a, _C.Tracer) else np.asarray(a)
            if a.ndim < n:
                shape = (1,) * n if a.ndim == 0 else \
                    (1,) + a.shape + (1,) * (n - 2) if a.ndim == 1 else a.shape + (1,)
                a = np.reshape(a, shape)
            out.append(a)
        return out[0] if len(out) == 1 else tuple(out)
    return impl


def _diagonal(a, offset=0, axis1=0, axis2=1):
    """A read-only view, as NumPy's (writes into a raise; a's later writes show)."""
    from ._torch_nn import _diagonal_view
    offset = _static_int(offset, "diagonal", "offset")
    if a.ndim < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    a1, a2 = axis1 % a.ndim, axis2 % a.ndim
    if a1 == a2:
        raise ValueError("axis1 and axis2 cannot be the same")
    return _diagonal_view(a, offset, a1, a2, True)


def _sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    """NumPy's windows as a strided view (read-only unless writeable)."""
    window_shape = tuple(window_shape) if np.iterable(window_shape) else (window_shape,)
    window_shape = tuple(_static_int(w, "sliding_window_view", "window_shape")
                         for w in window_shape)
    if any(w < 0 for w in window_shape):
        raise ValueError("`window_shape` cannot contain negative values")
    nd = x.ndim
    if axis is None:
        axis = tuple(range(nd))
        if len(window_shape) != nd:
            raise ValueError(f"Since axis is `None`, must provide window_shape for all "
                             f"dimensions of `x`; got {len(window_shape)} window_shape "
                             f"elements and `x.ndim` is {nd}.")
    else:
        axis = tuple(axis) if np.iterable(axis) else (axis,)
        axis = tuple(operator.index(ax) % nd if -nd <= operator.index(ax) < nd else
                     _axis_error(ax, nd) for ax in axis)
        if len(window_shape) != len(axis):
            raise ValueError(f"Must provide matching length window_shape and axis; got "
                             f"{len(window_shape)} window_shape elements and {len(axis)} "
                             f"axes elements.")
    shape = list(x.shape)
    for ax, w in zip(axis, window_shape):
        if shape[ax] < w:
            raise ValueError("window shape cannot be larger than input array shape")
        shape[ax] -= w - 1
    unit = [[int(e == k) for e in range(nd)] for k in range(nd)]
    coefs = unit + [unit[ax] for ax in axis]
    return _C._strided_view(x, tuple(shape) + window_shape, coefs, [0] * nd, not writeable)


def _axis_error(ax, nd):
    raise np.exceptions.AxisError(ax, nd)


def _diag(v, k=0):
    k = _static_int(k, "diag", "k")
    if v.ndim == 2:
        return _diagonal(v, k)
    if v.ndim != 1:
        raise ValueError("Input must be 1- or 2-d.")
    n = v.shape[0] + abs(k)
    i, j = np.indices((n, n))
    # out[i, i + k] = v[i] (k >= 0), out[j - k, j] = v[j] (k < 0)
    src = np.clip(i if k >= 0 else j, 0, max(v.shape[0] - 1, 0))
    if v.shape[0] == 0:
        return np.zeros((n, n), v.dtype)
    return np.where(j - i == k, v[src], np.zeros((), v.dtype))


def _trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    if out is not None:
        _refuse("numpy.trace(out=) is not supported by tracejit yet")
    return np.sum(_diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def _repeat(a, repeats, axis=None):
    if isinstance(repeats, _C.Tracer):
        _refuse("numpy.repeat's repeats is a traced value, but it sets the size of the result; "
                "pass constant repeats")
    if axis is None:
        a, axis = np.reshape(a, (-1,)), 0
    axis = axis % a.ndim if a.ndim else 0
    idx = np.repeat(np.arange(a.shape[axis]), repeats)   # NumPy's own checks of repeats
    return np.take(a, idx, axis=axis)


def _tile(A, reps):
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    reps = tuple(_static_int(r, "tile", "reps") for r in reps)
    d = max(len(reps), A.ndim)
    A = np.reshape(A, (1,) * (d - A.ndim) + A.shape)
    reps = (1,) * (d - len(reps)) + reps
    for ax, r in enumerate(reps):
        if r != 1:
            A = np.take(A, np.tile(np.arange(A.shape[ax]), r), axis=ax)
    return A


def _kron(a, b):
    a = a if isinstance(a, _C.Tracer) else np.asarray(a)
    b = b if isinstance(b, _C.Tracer) else np.asarray(b)
    d = max(a.ndim, b.ndim)
    a = np.reshape(a, (1,) * (d - a.ndim) + a.shape)
    b = np.reshape(b, (1,) * (d - b.ndim) + b.shape)
    # out[i0 * m0 + j0, ...] = a[i0, ...] * b[j0, ...]: interleave a's and b's dims
    ea = np.reshape(a, sum(((s, 1) for s in a.shape), ()))
    eb = np.reshape(b, sum(((1, s) for s in b.shape), ()))
    return np.reshape(ea * eb, tuple(x * y for x, y in zip(a.shape, b.shape)))


def _meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    nd = len(xi)
    out = [np.reshape(x, (1,) * i + (-1,) + (1,) * (nd - i - 1)) for i, x in enumerate(xi)]
    if indexing == "xy" and nd > 1:
        out[0] = np.reshape(out[0], (1, -1) + (1,) * (nd - 2))
        out[1] = np.reshape(out[1], (-1, 1) + (1,) * (nd - 2))
    if not sparse:
        shape = np.broadcast_shapes(*(o.shape for o in out))
        out = [np.broadcast_to(o, shape) for o in out]
        out = [o.copy() for o in out] if copy else out
    return tuple(out)


def _cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = np.moveaxis(a, axisa, -1), np.moveaxis(b, axisb, -1)
    if a.shape[-1] not in (2, 3) or b.shape[-1] not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n(dimension must be 2 or 3)")
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        import warnings
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                      "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                      DeprecationWarning, stacklevel=3)
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    a2 = a[..., 2] if a.shape[-1] == 3 else np.zeros_like(a0)
    b2 = b[..., 2] if b.shape[-1] == 3 else np.zeros_like(b0)
    c = np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return np.moveaxis(c, -1, axisc)


# ---- polynomials, searching, interpolation, statistics --------------------------

def _polyval(p, x):
    """Horner's rule over p's (static) length, as NumPy's polyval."""
    p = p if isinstance(p, _C.Tracer) else np.asarray(p)
    x = x if isinstance(x, _C.Tracer) else np.asarray(x)
    y = np.zeros_like(x, dtype=np.result_type(p.dtype, x.dtype))
    for i in range(p.shape[0]):
        y = y * x + p[i]
    return y


def _searchsorted(a, v, side="left", sorter=None):
    """Counts of a's elements before each v (a sorted, NaN last as NumPy sorts it)."""
    if sorter is not None:
        _refuse("numpy.searchsorted(sorter=) is not supported by tracejit yet")
    a = a if isinstance(a, _C.Tracer) else np.asarray(a)
    v = v if isinstance(v, _C.Tracer) else np.asarray(v)
    if a.ndim != 1:
        raise ValueError("object too deep for desired array")
    x = v[..., None]
    if side == "left":
        before = (a < x) | (np.isnan(x) & ~np.isnan(a)) if a.dtype.kind in "fc" else a < x
    elif side == "right":
        before = (a <= x) | np.isnan(x) if a.dtype.kind in "fc" else a <= x
    else:
        raise ValueError(f"side must be 'left' or 'right' (got {side!r})")
    return np.sum(before, axis=-1, dtype=np.intp)


def _digitize(x, bins, right=False):
    side = "left" if right else "right"
    if not isinstance(bins, _C.Tracer):
        b = np.asarray(bins)
        if b.ndim != 1:
            raise ValueError("object too deep for desired array")
        if b.size > 1 and not (np.all(b[1:] >= b[:-1]) or np.all(b[1:] <= b[:-1])):
            raise ValueError("bins must be monotonically increasing or decreasing")
        if b.size > 1 and b[0] > b[-1]:   # decreasing: NumPy searches the reversed bins
            return b.size - _searchsorted(b[::-1], x, side=side)
        return _searchsorted(b, x, side=side)
    if bins.ndim != 1:
        raise ValueError("object too deep for desired array")
    if bins.shape[0] < 2:
        return _searchsorted(bins, x, side=side)
    # traced bins: their direction and monotony are known at every call only
    up, down = np.all(bins[1:] >= bins[:-1]), np.all(bins[1:] <= bins[:-1])
    _C._check(up | down, "bins must be monotonically increasing or decreasing", ValueError)
    return np.where(bins[0] > bins[-1], bins.shape[0] - _searchsorted(bins[::-1], x, side=side),
                    _searchsorted(bins, x, side=side))


def _interp(x, xp, fp, left=None, right=None, period=None):
    if period is not None:
        _refuse("numpy.interp(period=) is not supported by tracejit yet")
    xp = xp if isinstance(xp, _C.Tracer) else np.asarray(xp, np.float64)
    fp = fp if isinstance(fp, _C.Tracer) else np.asarray(fp)
    if fp.dtype.kind == "c":
        _refuse("numpy.interp of complex fp is not supported by tracejit yet")
    x = (x if isinstance(x, _C.Tracer) else np.asarray(x)).astype(np.float64)
    xp, fp = xp.astype(np.float64), fp.astype(np.float64)
    n = xp.shape[0]
    if n == 0:
        raise ValueError("array of sample points is empty")
    lo = fp[0] if left is None else np.asarray(left, np.float64)
    hi = fp[-1] if right is None else np.asarray(right, np.float64)
    if n == 1:
        return np.where(x < xp[0], lo, np.where(x > xp[0], hi, fp[0]))
    j = np.clip(_searchsorted(xp, x, "right") - 1, 0, n - 2)
    x0, x1, f0, f1 = xp[j], xp[j + 1], fp[j], fp[j + 1]
    slope = (f1 - f0) / (x1 - x0)
    y = slope * (x - x0) + f0
    y = np.where(np.isnan(y), slope * (x - x1) + f1, y)   # NumPy's second form
    y = np.where(np.isnan(y) & (f0 == f1), f0, y)
    y = np.where(x == xp[-1], fp[-1], y)
    return np.where(x < xp[0], lo, np.where(x > xp[-1], hi, y))


def _unravel_index(indices, shape, order="C"):
    shape = tuple(_static_int(s, "unravel_index", "shape") for s in
                  ((shape,) if np.ndim(shape) == 0 else shape))
    if order not in ("C", "F"):
        raise ValueError("only 'C' or 'F' order is permitted")
    idx = indices if isinstance(indices, _C.Tracer) else np.asarray(indices)
    dims = list(enumerate(shape))
    out = [None] * len(shape)
    for d, s in (reversed(dims) if order == "C" else dims):
        out[d] = idx % s
        idx = idx // s
    return tuple(out)


def _cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
         dtype=None):
    if fweights is not None or aweights is not None:
        _refuse("numpy.cov(fweights=, aweights=) is not supported by tracejit yet")
    X = m if isinstance(m, _C.Tracer) else np.asarray(m)
    if X.ndim > 2:
        raise ValueError("m has more than 2 dimensions")
    dt = dtype or np.result_type(X.dtype, np.float64 if X.dtype.kind in "biu" else X.dtype)
    X = np.atleast_2d(X).astype(dt)
    if not rowvar and X.shape[0] != 1:
        X = X.T
    if y is not None:
        Y = np.atleast_2d(y if isinstance(y, _C.Tracer) else np.asarray(y)).astype(dt)
        X = np.concatenate([X, Y if rowvar or Y.shape[0] == 1 else Y.T], axis=0)
    ddof = (0 if bias else 1) if ddof is None else ddof
    fact = X.shape[1] - ddof
    X = X - np.mean(X, axis=1, keepdims=True)
    c = (X @ X.T) * np.asarray(1.0 / fact if fact > 0 else np.inf, dt)
    return np.squeeze(c) if c.shape == (1, 1) else c


def _corrcoef(x, y=None, rowvar=True, *, dtype=None):
    c = _cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return c / c
    d = _diagonal(c)
    s = np.sqrt(d)
    c = c / s[:, None] / s[None, :]
    return np.clip(c, -1, 1)


def _out_probe(fn, args, kwargs, out, out_scalar):
    """NumPy's own checks of fn(*args, **kwargs) where out= is a traced array (called by
    csrc/trace/write_out.c before the value is traced): fn runs on stand-ins, zeros of
    every traced operand's shape and dtype (out, or any, a fresh writable array; out a
    NumPy scalar where eager's is one, `out=o[0, 0]`), so a wrong shape, number of
    dimensions or dtype of out raises eager's own error."""
    import warnings

    def stand(v):
        if v is out and out_scalar:
            return np.zeros((), v.dtype)[()]
        if isinstance(v, _C.Tracer):
            return np.zeros(v.shape, v.dtype)
        if type(v) is tuple:
            return tuple(stand(e) for e in v)
        return v
    args = tuple(stand(a) for a in (args or ()))
    kwargs = {k: stand(v) for k, v in (kwargs or {}).items()}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn(*args, **kwargs)


IMPLS = {
    np.rint: _rint, np.trunc: _trunc, np.fix: _fix, np.round: _round, np.around: _round,
    np.isclose: _isclose, np.allclose: _allclose, np.count_nonzero: _count_nonzero,
    np.ptp: _ptp, np.nansum: _nan_reduce("nansum", 0), np.nanprod: _nan_reduce("nanprod", 1),
    np.nanmax: _nan_extreme("nanmax", -np.inf), np.nanmin: _nan_extreme("nanmin", np.inf),
    np.nanmean: _nanmean, np.average: _average,
    np.atleast_1d: _atleast(1), np.atleast_2d: _atleast(2), np.atleast_3d: _atleast(3),
    np.diagonal: _diagonal, np.diag: _diag,
    np.lib.stride_tricks.sliding_window_view: _sliding_window_view, np.trace: _trace,
    np.repeat: _repeat,
    np.tile: _tile, np.kron: _kron, np.meshgrid: _meshgrid, np.cross: _cross,
    np.polyval: _polyval, np.searchsorted: _searchsorted, np.digitize: _digitize,
    np.interp: _interp, np.unravel_index: _unravel_index, np.cov: _cov, np.corrcoef: _corrcoef,
    "out=probe": _out_probe,
}
# ndarray methods that are these functions with the array first (never an in-place
# method: ndarray.sort sorts in place where np.sort returns a copy)
IMPLS.update({f"ndarray.{name}": IMPLS[getattr(np, name)]
              for name in ("repeat", "diagonal", "trace", "round", "searchsorted")})
