"""`x[mask]` with a traced boolean mask, in a NumPy trace: a selection whose size depends
on the data, which no array of the trace can hold. What real code does with one needs
no such array, so a selection is kept as (x, mask) and:
- elementwise arithmetic on selections of the same mask (and numbers, or arrays that
  broadcast against x's trailing dims) is a selection of the elementwise result over all
  of x (the unselected elements are computed and never used: their values cannot leak);
- its reductions (sum, mean, max, min, prod, any, all, count_nonzero, along every axis
  or axis 0) are reductions of x with the unselected elements replaced by the
  reduction's identity; max/min of an empty selection raise NumPy's ValueError at the
  call that has one (a check of every call);
- `y[mask2] = selection` with mask2 the same value as the selection's mask (the same
  node, or the same computation on the same values: `a[a > 0] = a[a > 0] ** -1.5`) is
  `y = where(mask, values, y)`.
Anything else (its shape or length, indexing it, returning it) raises TraceError
naming what to write instead. The selection's values are eager's values, element for
element; a sum's rounding order differs from NumPy's (as every compiled reduction's)."""
import numpy as np

from . import _C

_WHAT = "x[mask] with a traced boolean mask"


def _refuse(msg):
    _C._trace_error(msg)


def _unsupported(what):
    _refuse(f"{what} of {_WHAT} is not supported by tracejit: the selection's size depends on "
            "the data, which a trace cannot represent. Elementwise arithmetic on it, its "
            "reductions (sum, mean, max, min, prod, any, all) and assigning it back through the "
            "same mask are supported; otherwise compute over the whole array with "
            "np.where(mask, x, ...)")


def select(x, mask):
    """x[mask] for a traced bool mask of x's leading shape (csrc/trace/views.c)."""
    return Masked(x, mask)


class Masked:
    """x[mask], kept as x (all of it) and mask; see the module's docstring. (Its
    attributes are in its __dict__, where a returned selection is found holding traced
    values and refused, csrc/args.c.)"""
    __array_priority__ = 1e9

    def __init__(self, full, mask):
        self.full, self.mask = full, mask

    # ---- what needs the size ----------------------------------------------------
    def __len__(self):
        _unsupported("len()")

    def __iter__(self):
        _unsupported("iterating over")

    @property
    def shape(self):
        _unsupported("the shape")

    @property
    def size(self):
        _unsupported("the size")

    def __getitem__(self, key):
        _unsupported("indexing")

    def __setitem__(self, key, value):
        _unsupported("assigning into")

    def __bool__(self):
        _unsupported("the truth value")

    def __array__(self, *a, **k):
        _unsupported("converting to an array")

    @property
    def dtype(self):
        return self.full.dtype

    @property
    def ndim(self):
        return self.full.ndim - self.mask.ndim + 1

    # ---- elementwise ------------------------------------------------------------
    def _operand(self, v):
        """v as an operand over all of x: a selection of the same mask, a number, or an
        array broadcasting against x's trailing dims."""
        if isinstance(v, Masked):
            if not _same(v.mask, self.mask) or v.full.shape != self.full.shape:
                _unsupported("arithmetic with a selection of another mask")
            return v.full
        nd = getattr(v, "ndim", 0)
        if nd > self.full.ndim - self.mask.ndim:
            _unsupported("arithmetic with an array of the selection's length")
        return v

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs or ufunc.nout != 1:
            _unsupported(f"numpy.{ufunc.__name__}.{method}" if method != "__call__"
                         else f"numpy.{ufunc.__name__} with {sorted(kwargs) or 'two outputs'}")
        return Masked(ufunc(*[self._operand(v) for v in inputs]), self.mask)

    def __array_function__(self, func, types, args, kwargs):
        name = func.__name__
        if name in _REDUCTIONS and args and args[0] is self:
            return getattr(self, name)(*args[1:], **kwargs)
        _unsupported(f"numpy.{name}")

    def astype(self, dtype, **kw):
        return Masked(self.full.astype(dtype, **kw), self.mask)

    def copy(self):
        return self

    # ---- reductions -------------------------------------------------------------
    def _axes(self, axis, what):
        lead = tuple(range(self.mask.ndim))
        if axis is None:
            return None
        axes = axis if isinstance(axis, tuple) else (axis,)
        if len(axes) == 1 and axes[0] in (0, -self.ndim):
            return lead
        _unsupported(f"{what}(axis={axis!r})")

    def _where(self, fill):
        m = self.mask.reshape(self.mask.shape + (1,) * (self.full.ndim - self.mask.ndim))
        return np.where(m, self.full, fill)

    def _count(self, axes):
        per = 1
        for d in self.full.shape[self.mask.ndim:]:
            per *= d
        n = np.sum(self.mask)
        return n * per if axes is None else n

    def _reduce(self, name, fill, axis, kw):
        extra = set(kw) - {"keepdims", "dtype"}
        if extra or kw.get("keepdims"):
            _unsupported(f"{name}({', '.join(sorted(set(kw)))}=...)")
        axes = self._axes(axis, name)
        return getattr(np, name)(self._where(fill), axis=axes, **kw)

    def sum(self, axis=None, **kw):
        return self._reduce("sum", 0, axis, kw)

    def prod(self, axis=None, **kw):
        return self._reduce("prod", 1, axis, kw)

    def any(self, axis=None, **kw):
        return self._reduce("any", False, axis, kw)

    def all(self, axis=None, **kw):
        return self._reduce("all", True, axis, kw)

    def count_nonzero(self, axis=None, **kw):
        return self._reduce("count_nonzero", 0, axis, kw)

    def mean(self, axis=None, **kw):
        if set(kw) - {"dtype"}:
            _unsupported(f"mean({', '.join(sorted(kw))}=...)")
        axes = self._axes(axis, "mean")
        dt = kw.get("dtype") or (self.full.dtype if self.full.dtype.kind in "fc" else np.float64)
        total = np.sum(self._where(0).astype(dt), axis=axes)
        return (total / self._count(axes)).astype(dt)

    def _extreme(self, name, axis, kw):
        if kw:
            _unsupported(f"{name}({', '.join(sorted(kw))}=...)")
        axes = self._axes(axis, name)
        dt = self.full.dtype
        big = np.inf if dt.kind == "f" else (True if dt == np.bool_ else np.iinfo(dt).max)
        fill = big if name in ("min", "amin") else (-big if dt.kind == "f" else
                                                   False if dt == np.bool_ else np.iinfo(dt).min)
        _C._check(self._count(axes) > 0, f"zero-size array to reduction operation "
                  f"{'minimum' if name in ('min', 'amin') else 'maximum'} which has no identity",
                  ValueError)
        return getattr(np, "min" if name in ("min", "amin") else "max")(self._where(fill), axis=axes)

    def max(self, axis=None, **kw):
        return self._extreme("max", axis, kw)

    def min(self, axis=None, **kw):
        return self._extreme("min", axis, kw)

    amax, amin = max, min

    # ---- `y[mask] = selection` (csrc/trace/write.c) ------------------------------
    def _tj_merge_into(self, target, key):
        """target's new value for `target[key] = self`: where(mask, values, target)."""
        k = key[0] if isinstance(key, tuple) and len(key) == 1 else key
        if not isinstance(k, _C.Tracer) or not _same(k, self.mask) or \
                target.shape != self.full.shape:
            _unsupported("assigning it other than through the same mask into an array of "
                         "its shape")
        return self._where(target).astype(target.dtype)


def _binary(ufunc, reflected=False):
    if reflected:
        return lambda self, other: self.__array_ufunc__(ufunc, "__call__", other, self)
    return lambda self, other: self.__array_ufunc__(ufunc, "__call__", self, other)


for _name, _uf in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                   ("mod", np.remainder), ("pow", np.power), ("and", np.bitwise_and),
                   ("or", np.bitwise_or), ("xor", np.bitwise_xor)):
    setattr(Masked, f"__{_name}__", _binary(_uf))
    setattr(Masked, f"__r{_name}__", _binary(_uf, True))
for _name, _uf in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)):
    setattr(Masked, f"__{_name}__", _binary(_uf))
Masked.__neg__ = lambda self: self.__array_ufunc__(np.negative, "__call__", self)
Masked.__abs__ = lambda self: self.__array_ufunc__(np.absolute, "__call__", self)
Masked.__invert__ = lambda self: self.__array_ufunc__(np.invert, "__call__", self)
Masked.__hash__ = None

_REDUCTIONS = {"sum", "prod", "mean", "max", "min", "amax", "amin", "any", "all",
               "count_nonzero"}


def _same(a, b):
    return a is b or _C._same_value(a, b)
