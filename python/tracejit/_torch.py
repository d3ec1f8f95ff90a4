"""PyTorch's vocabulary on tracers: how torch functions, torch.nn.functional and tensor
methods reach their implementations (_torch_ops.py, written with the NumPy-vocabulary
operations the C tracer implements, so they become graph nodes the passes fuse).

Three routes lead here while a function with torch inputs is traced:
  * tensor methods and attributes (``x.exp()``, ``x.sum(dim=1)``, ``x.shape``): the C
    tracer looks their names up in ATTRS first (a torch trace only);
  * torch functions on tracers (``torch.exp(x)``, ``F.softplus(x)``, ``t + x`` with a
    real tensor on the left): ``Tracer.__torch_function__`` -> dispatch();
  * factory functions with no tracer argument (``torch.zeros(3)``): the
    TorchFunctionMode that call_traced() enters runs them as they are, so they are
    constants of the trace (captured tensors).
torch is never imported by this module; it is looked up when the first torch call
arrives (and torch is imported by then: a torch tensor was passed).
"""
import sys
import threading

import numpy as np

from . import _C, _effects, _torch_dists, _torch_random, _torch_swaps, _torch_writes, _train_step
from ._torch_random import _NOT_RANDOM
from ._C import TraceError, Tracer
from ._torch_ops import (EW_METHODS, FUNCS, _NP_DTYPE, _NP_SHAPE, _add, _floordiv, _getitem, _is_float,
                         _matmul, _mod, _mul, _no_out, _np_dtype, _pow, _sub, _torch, _torch_dtype,
                         _truediv, norm)

# ---- casts and tensor attributes -----------------------------------------------------

def _same_device(d):
    """Whether device d is the trace's (its arrays stay where they are)."""
    torch = _torch()
    here, there = torch.device(_C._trace_device()), torch.device(d)
    return here.type == there.type and (here.index or 0) == (there.index or 0)


def to(x, *args, **kwargs):
    dtype = kwargs.get("dtype")
    for a in args:
        if isinstance(a, Tracer) or _is_tensor(a):
            dtype = a.dtype
        elif isinstance(a, str) or type(a).__name__ == "device":
            if not _same_device(a):
                raise TraceError(f"Tensor.to({a!r}): tracejit does not move arrays between "
                                 f"devices inside a trace (it runs on {_C._trace_device()})")
        elif a is not None:
            dtype = a
    if "device" in kwargs and kwargs["device"] is not None and not _same_device(kwargs["device"]):
        raise TraceError(f"Tensor.to(device={kwargs['device']!r}): tracejit does not move "
                         f"arrays between devices inside a trace (it runs on {_C._trace_device()})")
    if dtype is None:
        return x
    nd = _np_dtype(dtype)
    return x if nd == _NP_DTYPE.__get__(x) else x.astype(nd)


def _is_tensor(a):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def _cast(np_dtype):
    def f(x, memory_format=None):
        return x if _NP_DTYPE.__get__(x) == np_dtype else x.astype(np_dtype)
    return f


_TYPE_NAMES = {"torch.FloatTensor": "float32", "torch.DoubleTensor": "float64",
               "torch.LongTensor": "int64", "torch.IntTensor": "int32", "torch.BoolTensor": "bool"}


def type_(x, dtype=None, non_blocking=False, **kwargs):
    """Tensor.type(): the type's name; Tensor.type(dtype or name): a cast (Pyro's Delta)."""
    names = {v: k for k, v in _TYPE_NAMES.items()}
    if dtype is None:
        return names[_NP_DTYPE.__get__(x).name]
    if isinstance(dtype, str):
        if dtype not in _TYPE_NAMES:
            raise TraceError(f"torch.Tensor.type({dtype!r}) is not supported by tracejit")
        dtype = np.dtype(_TYPE_NAMES[dtype])
    return to(x, dtype)


def type_as(x, other):
    return to(x, other.dtype)


def size(x, dim=None):
    shape = _NP_SHAPE.__get__(x)
    return _torch().Size(shape) if dim is None else shape[dim]


def _refuse(what, hint):
    def f(x, *args, **kwargs):
        raise TraceError(f"{what} {hint}")
    return f


# torch's functions and methods that draw random numbers, refused until the graph has
# random ops (_effects.py says why); so is any call given generator=
_RANDOM = frozenset({
    "rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial", "poisson",
    "rand_like", "randn_like", "randint_like", "normal_", "uniform_", "bernoulli_",
    "exponential_", "random_", "cauchy_", "log_normal_", "geometric_", "gumbel_softmax",
    "binomial", "standard_gamma", "sample_dirichlet", "_standard_gamma", "_sample_dirichlet",
    "rrelu_with_noise", "manual_seed", "seed"})
# ... and those that draw in training mode only: name -> (position of the flag, its
# keywords, its default, whether a p of 0 draws nothing)
_RANDOM_IF_TRAINING = {
    "dropout": (2, ("training", "train"), True, True),
    "dropout_": (2, ("training", "train"), True, True),
    "dropout1d": (2, ("training",), True, True),
    "dropout2d": (2, ("training",), True, True),
    "dropout3d": (2, ("training",), True, True),
    "feature_dropout": (2, ("train", "training"), True, True),
    "alpha_dropout": (2, ("training", "train"), False, True),
    "feature_alpha_dropout": (2, ("training", "train"), False, True),
    "feature_dropout_": (2, ("train", "training"), True, True),
    "alpha_dropout_": (2, ("training", "train"), False, True),
    "feature_alpha_dropout_": (2, ("training", "train"), False, True),
    "native_dropout": (2, ("train",), True, True),
    "rrelu": (3, ("training",), False, False),
    "rrelu_": (3, ("training",), False, False),
}


ATTRS = {
    "shape": property(lambda x: _torch().Size(_NP_SHAPE.__get__(x))),
    "dtype": property(lambda x: _torch_dtype(_NP_DTYPE.__get__(x))),
    "device": property(lambda x: _torch().device(_C._trace_device())),
    "is_cuda": property(lambda x: _C._trace_device() != "cpu"),
    "requires_grad": property(lambda x: False),
    "grad_fn": property(lambda x: None),
    "mT": property(lambda x: np.swapaxes(x, -1, -2)),
    "size": size,
    "dim": lambda x: x.ndim,
    "ndimension": lambda x: x.ndim,
    "numel": lambda x: int(np.prod(_NP_SHAPE.__get__(x), dtype=np.int64)),
    "nelement": lambda x: int(np.prod(_NP_SHAPE.__get__(x), dtype=np.int64)),
    "element_size": lambda x: x.itemsize,
    "is_floating_point": lambda x: _is_float(x),
    "is_contiguous": lambda x, memory_format=None: True,
    "detach": lambda x: _C._ad_detach(x),   # the same value; autodiff stops there
    "data": property(lambda x: _C._ad_detach(x)),   # as detach (Pyro's enum reads its shape)
    "float": _cast(np.dtype(np.float32)),
    "double": _cast(np.dtype(np.float64)),
    "long": _cast(np.dtype(np.int64)),
    "int": _cast(np.dtype(np.int32)),
    "bool": _cast(np.dtype(np.bool_)),
    "byte": _cast(np.dtype(np.uint8)),
    "char": _cast(np.dtype(np.int8)),
    "short": _cast(np.dtype(np.int16)),
    "half": _refuse("torch.Tensor.half()", "(float16) is not supported by tracejit"),
    "backward": _train_step.backward,    # inside a compiled training step only
    "numpy": _refuse("torch.Tensor.numpy()", "needs a concrete tensor; return the value as an "
                     "output of the compiled function instead"),
    "to": to,
    "type_as": type_as,
    "type": type_,
}

def _inplace_method(name, impl):
    """x.add_(v): x's new contents, written by _C._assign (the checks of `x += v`)."""
    what = f"torch.Tensor.{name}_()"

    def method(x, *args, **kwargs):
        return _C._assign(x, impl(x, *args, **kwargs), what)
    return method


def _fill(x, value):
    return np.broadcast_to(np.asarray(value, dtype=_NP_DTYPE.__get__(x))
                           if not isinstance(value, Tracer) else value, _NP_SHAPE.__get__(x))


ATTRS["zero_"] = lambda x: _C._assign(x, _fill(x, 0), "torch.Tensor.zero_()")
ATTRS["fill_"] = lambda x, value: _C._assign(x, _fill(x, value), "torch.Tensor.fill_()")
ATTRS["copy_"] = lambda x, src, non_blocking=False: _C._assign(
    x, np.broadcast_to(src, _NP_SHAPE.__get__(x)), "torch.Tensor.copy_()")

FUNCS.update(_torch_writes.OUT_REFUSED)   # torch.sum(..., out=...): refused by name
_OUT_OWN = frozenset(_torch_writes.OUT_REFUSED.values()) | {FUNCS["matmul"]}

# Tensor methods: every elementwise op's torch names (the op table's, EW_METHODS) and
# these others
for _name in EW_METHODS + (
        "sum", "mean", "prod", "max", "min", "argmax", "argmin", "var", "std", "any", "all",
        "cumsum", "cumprod", "transpose", "squeeze", "flatten", "clip", "reshape", "dot",
        "swapaxes", "ravel", "sigmoid", "relu", "clamp", "view", "permute", "t", "unsqueeze",
        "expand", "expand_as", "repeat", "flip", "contiguous", "clone", "unflatten", "narrow", "select",
        "movedim", "roll", "split", "chunk", "unbind", "index_select", "gather", "matmul",
        "mm", "bmm", "mv", "outer", "logsumexp", "norm", "amax", "amin", "masked_fill",
        "softmax", "log_softmax", "rsqrt", "xlogy", "clamp_min", "clamp_max", "broadcast_to",
        "tensordot", "addmm", "mvlgamma"):
    ATTRS[_name] = FUNCS[_name]

# the methods of nn-style vocabulary (new_zeros, tril, baddbmm, ...) and the flags torch's
# own modules read before choosing a fast path this trace does not take
from ._torch_nn import FUNCS as _NN_FUNCS, METHODS as _NN_METHODS  # noqa: E402
ATTRS.update(_NN_METHODS)
for _name in ("tril", "triu", "baddbmm", "addbmm", "addmv", "addr", "diagonal"):
    ATTRS[_name] = _NN_FUNCS[_name]
from ._torch_linalg import METHODS as _LINALG_METHODS  # noqa: E402
from ._torch_sort import METHODS as _SORT_METHODS  # noqa: E402
for _name in _LINALG_METHODS + _SORT_METHODS:
    ATTRS[_name] = FUNCS[_name]
for _name in ("is_nested", "is_sparse", "is_quantized", "is_meta", "is_mkldnn", "is_complex",
              "is_xpu", "is_mps"):
    ATTRS[_name] = property(lambda x: False) if _name != "is_complex" else (lambda x: False)



def _cdata(x):
    """Tensor._cdata (the C++ tensor's address, which Pyro's pyro.module compares to ask
    whether the param store holds the module's own parameter): the real tensor's where
    the tracer stands in for one (a parameter read as a traced input), else the
    tracer's own identity, as a new tensor of eager's has an address of its own."""
    real = _C._stood_in_for(x)
    return real._cdata if real is not None else id(x)


ATTRS["_cdata"] = property(_cdata)

# Tensor.where(condition, y) is torch.where(condition, x, y), not where(x, condition, y)
ATTRS["where"] = lambda x, condition, other: FUNCS["where"](condition, x, other)

# torch's elementwise methods with no in-place form (Tensor.isnan_ does not exist)
_NO_INPLACE = ("isnan", "isinf", "isfinite", "signbit", "maximum", "minimum", "logaddexp",
               "where")

# In-place methods of the elementwise ones (same shape as x): x.add_(v), x.clamp_(0)
for _name in tuple(n for n in EW_METHODS if n not in _NO_INPLACE) + (
        "sigmoid", "relu", "clamp", "clamp_min", "clamp_max", "masked_fill", "rsqrt", "xlogy"):
    ATTRS[_name + "_"] = _inplace_method(_name, FUNCS[_name])


ATTRS.update(_torch_writes.ATTRS)   # index_put_, index_add_, scatter_, ...
for _name, _f in _torch_writes.OUT_OF_PLACE.items():   # x.scatter_add(...), torch.scatter_add
    assert _name not in FUNCS and _name not in ATTRS, _name
    ATTRS[_name] = FUNCS[_name] = _f
for _name, _f in _train_step.FUNCS.items():    # the optimizers' lerp_, addcdiv_, ...
    ATTRS[_name] = _f
    ATTRS[_name + "_"] = _inplace_method(_name, _f)


def _random_method(name):
    def method(x, *args, **kwargs):
        r = _torch_random.call(name, (x,) + args, kwargs)
        if r is _torch_random._NOT_RANDOM:
            _C._trace_error(f"torch.Tensor.{name}() is not supported by tracejit yet")
        return r
    return method


for _name in _RANDOM | {"new", "new_empty"}:   # methods on a tracer are not dispatched
    ATTRS[_name] = _random_method(_name)


def _inplace_dunder(op, spelled):
    what = f"the in-place operator `{spelled}`"
    return lambda a, b: _C._assign(a, op(a, b), what)


def _setitem(x, key, value):
    """t[key] = value on a real tensor, lifted (a capture, or a tensor made while
    tracing): the tracer's own item assignment (csrc/trace/write.c)."""
    if not isinstance(x, Tracer):
        _C._trace_error("assignment into a tensor (`t[...] = value`) with traced operands is "
                        "not supported by tracejit here: build the new tensor instead "
                        "(torch.where, torch.cat, torch.stack)")
    x[key] = value


# Tensor dunders reached by __torch_function__ when a real tensor is the left operand
_DUNDERS = {
    "__add__": _add, "__radd__": lambda a, b: _add(b, a),
    "__sub__": _sub, "__rsub__": lambda a, b: _sub(b, a), "__mul__": _mul,
    "__rmul__": lambda a, b: _mul(b, a), "__truediv__": _truediv,
    "__rtruediv__": lambda a, b: _truediv(b, a), "__div__": _truediv,
    "__rdiv__": lambda a, b: _truediv(b, a), "__floordiv__": _floordiv,
    "__rfloordiv__": lambda a, b: _floordiv(b, a), "__mod__": _mod,
    "__rmod__": lambda a, b: _mod(b, a), "__pow__": _pow, "__rpow__": lambda a, b: _pow(b, a),
    "__matmul__": _matmul, "__rmatmul__": lambda a, b: _matmul(b, a),
    "__and__": np.bitwise_and, "__rand__": lambda a, b: np.bitwise_and(b, a),
    "__or__": np.bitwise_or, "__ror__": lambda a, b: np.bitwise_or(b, a),
    "__xor__": np.bitwise_xor, "__rxor__": lambda a, b: np.bitwise_xor(b, a),
    "__eq__": np.equal, "__ne__": np.not_equal, "__lt__": np.less, "__le__": np.less_equal,
    "__gt__": np.greater, "__ge__": np.greater_equal, "__neg__": np.negative,
    "__abs__": np.absolute, "__invert__": np.invert, "__getitem__": _getitem,
    "__setitem__": _setitem,
    # a real tensor updated in place (t += x): lifted, it is a capture, whose write
    # _C._assign traces and the replay writes back (csrc/trace/write.c)
    "__iadd__": _inplace_dunder(_add, "+="), "__isub__": _inplace_dunder(_sub, "-="),
    "__imul__": _inplace_dunder(_mul, "*="), "__itruediv__": _inplace_dunder(_truediv, "/="),
    "__ifloordiv__": _inplace_dunder(_floordiv, "//="), "__imod__": _inplace_dunder(_mod, "%="),
    "__ipow__": _inplace_dunder(_pow, "**="), "__imatmul__": _inplace_dunder(_matmul, "@="),
    "__iand__": _inplace_dunder(np.bitwise_and, "&="),
    "__ior__": _inplace_dunder(np.bitwise_or, "|="),
    "__ixor__": _inplace_dunder(np.bitwise_xor, "^="),
}

_table = {}          # func object -> implementation (or None), filled as calls arrive
_names = None        # func object -> public name, built on the first error only
_ready = False


def _init():
    """Once per process, at the first torch call on a tracer."""
    global _ready
    skip_dirs(_torch())            # frames in torch are not the user's code either
    _load_mkl()
    _ready = True


_skip_packages = []


def skip_dirs(package):
    """Frames in `package`'s directory (torch; Pyro, once tracejit.pyro is imported) are
    not the user's code either: a TraceError names the line of the user's that reached
    them."""
    import os
    from . import _SKIP_DIRS
    where = os.path.dirname(package.__file__) + os.sep
    if where not in _skip_packages:
        _skip_packages.append(where)
    _C._set_skip_dirs(_SKIP_DIRS + tuple(_skip_packages))


def _load_mkl():
    """Products call the MKL torch runs on (inside libtorch_cpu, loaded with torch),
    faster than NumPy's OpenBLAS at model shapes; TRACEJIT_BLAS=0 or TRACEJIT_MKL=0
    keeps them off it."""
    import os
    from . import _HAVE_BLAS
    if not _HAVE_BLAS or os.environ.get("TRACEJIT_MKL", "1") == "0":
        return
    lib = os.path.join(os.path.dirname(_torch().__file__), "lib", "libtorch_cpu.so")
    if os.path.exists(lib):
        _C._load_blas_mkl(lib)


def _vector_norm(x, ord=2, dim=None, keepdim=False, dtype=None, out=None):
    _no_out(out, "linalg.vector_norm")
    return norm(x, ord, dim, keepdim)


def _torch_softmax(fn):          # torch.softmax(x, dim, dtype): no _stacklevel
    return lambda x, dim=None, dtype=None: fn(x, dim, dtype=dtype)


def _resolve(func):
    """The implementation of a torch function, by its name, for functions of torch's
    own namespaces and Tensor methods only (a user function that dispatches through
    __torch_function__ is not mistaken for one of torch's)."""
    mod = getattr(func, "__module__", None) or ""
    qual = getattr(func, "__qualname__", "") or ""
    name = getattr(func, "__name__", "") or ""
    is_method = qual.startswith(("TensorBase.", "Tensor."))
    if name == "__get__":            # a property of a tensor read at call time: W.T
        owner = getattr(func, "__self__", None)
        if getattr(owner, "__objclass__", None) is not _torch()._C.TensorBase:
            return None
        return _PROPERTIES.get(getattr(owner, "__name__", None))
    if not (mod == "torch" or mod.startswith("torch.") or is_method):
        return None
    if is_method and name in _DUNDERS:
        return _DUNDERS[name]
    if name.startswith("__"):
        return None
    for prefix in ("special_", "linalg_"):
        if name.startswith(prefix) and name not in FUNCS:    # linalg_slogdet's own type
            name = name[len(prefix):]
    if name == "vector_norm":
        return _vector_norm
    impl = FUNCS.get(name)
    method = ATTRS.get(name) if is_method else None
    if method is not None and not isinstance(method, property):
        impl = method     # W.float(), W.size() of a real tensor; W.unfold, W.where: methods
                          # whose function of that name differs
    if impl is not None and mod == "torch" and name in ("softmax", "log_softmax"):
        return _torch_softmax(impl)
    return impl


_PROPERTIES = {"T": lambda x: x.T, "mT": lambda x: np.swapaxes(x, -1, -2),
               "H": lambda x: x.T, "mH": lambda x: np.swapaxes(x, -1, -2),
               "data": lambda x: x, "real": lambda x: x}


def _build_names():
    global _names
    torch = _torch()
    spaces = [("torch.nn.functional", torch.nn.functional), ("torch", torch),
              ("torch.special", torch.special), ("torch.linalg", torch.linalg),
              ("torch.fft", torch.fft), ("torch.Tensor", torch.Tensor)]
    names = {}
    for prefix, space in spaces:
        for name in dir(space):
            try:
                obj = getattr(space, name)
                names.setdefault(obj, f"{prefix}.{name}")
            except Exception:       # unhashable or failing attributes: not functions
                continue
    _names = names


def name_of(func):
    if _names is None:
        _build_names()
    n = _names.get(func)
    if n:
        return n
    mod = getattr(func, "__module__", None) or ""
    return f"{mod}.{getattr(func, '__qualname__', getattr(func, '__name__', repr(func)))}".lstrip(".")


# pytrees: tracejit's one container rule (csrc/pytree.c), as for arguments and results
def _find_tracer(obj):
    return next((o for o in _C.tree_leaves(obj) if isinstance(o, Tracer)), None)


def _lift(obj, ref):
    """Real tensors among a call's arguments become tracers of the trace (captured,
    read at call time), so implementations see tracers and Python numbers only."""
    leaves, tree = _C.tree_flatten(obj)
    return tree.unflatten([_C._lift(ref, o) if _is_tensor(o) else o for o in leaves])


def _impl(func):
    if not _ready:
        _init()
    try:
        return _table[func]
    except KeyError:
        impl = _table[func] = _resolve(func)
        return impl


def _is_torch_func(func):
    mod = getattr(func, "__module__", None) or ""
    qual = getattr(func, "__qualname__", "") or ""
    return mod == "torch" or mod.startswith("torch.") or qual.startswith(("TensorBase.", "Tensor."))


def random_call(func, args, kwargs):
    """A torch call that draws random numbers, as draws of the graph (_torch_random);
    _NOT_RANDOM for any other call (dropout in evaluation mode included)."""
    name = getattr(func, "__name__", "") or ""
    if not (name in _RANDOM or name in _RANDOM_IF_TRAINING or name in _torch_random.EMPTY or
            kwargs.get("generator") is not None) or not _is_torch_func(func):
        return _NOT_RANDOM
    return _torch_random.call(name, args, kwargs)


def dispatch(func, args, kwargs, ref=None):
    kwargs = kwargs or {}
    r = random_call(func, args, kwargs)
    if r is not _NOT_RANDOM:
        return r
    impl = _impl(func)
    if impl is None:
        _C._trace_error(f"{name_of(func)} is not supported by tracejit yet")
    if ref is None:
        ref = _find_tracer(args)
    if ref is None:
        ref = _find_tracer(list(kwargs.values()))
    target = args[0] if args and _is_tensor(args[0]) else None
    out = kwargs.get("out")
    if out is not None and ref is not None and (_is_tensor(out) or isinstance(out, Tracer)) \
            and not _takes_out(impl):     # (one that takes out= decides: reductions refuse it)
        return _out_write(func, impl, args, dict(kwargs), ref)
    if ref is not None:
        try:
            args = _lift(args, ref)
            kwargs = {k: _lift(v, ref) for k, v in kwargs.items()}
        except TypeError as e:        # GradCaptureError: see call_traced
            _pending.error = e
            raise
    result = impl(*args, **kwargs)
    if _writes_first(impl, args, kwargs):      # F.relu(x, inplace=True)
        result = _C._assign(args[0], result, f"{name_of(func)}(inplace=True)")
    if target is not None and isinstance(args[0], Tracer) and result is args[0]:
        return target     # a real tensor written in place: eager returns it (t += x)
    return result


def _out_write(func, impl, args, kwargs, ref):
    """torch.f(..., out=t): f's result written into t (torch.maximum(a, b, out=a) of
    amsgrad), returning t as eager does; a result of another shape (which torch would
    resize t to) or dtype kind is refused."""
    target = kwargs.pop("out")
    what = f"{name_of(func)}(..., out=...)"
    args = _lift(args, ref)
    kwargs = {k: _lift(v, ref) for k, v in kwargs.items()}
    out = _C._lift(ref, target) if _is_tensor(target) else target
    result = impl(*args, **kwargs)
    if not isinstance(result, Tracer) or \
            tuple(_NP_SHAPE.__get__(result)) != tuple(_NP_SHAPE.__get__(out)):
        raise TraceError(f"{what} into a tensor of another shape than the result is not "
                         f"supported by tracejit (torch resizes it)")
    dt = _NP_DTYPE.__get__(out)
    if _NP_DTYPE.__get__(result) != dt:
        if _is_float(result) and not _is_float(out):
            raise RuntimeError(f"result type Float can't be cast to the desired output type "
                               f"{_torch_dtype(dt)}")
        result = result.astype(dt)
    _C._assign(out, result, what)
    return target


_inplace_pos = {}     # impl -> position of its `inplace` parameter, or None
def _takes_out(impl):
    """Whether impl answers out= itself: the reductions and matmul refuse it by name
    (torch takes a reduction's dtype from out and resizes out; _torch_writes.OUT_REFUSED),
    where every other function's result is written into out (_out_write)."""
    return impl in _OUT_OWN


def _writes_first(impl, args, kwargs):
    """Whether impl was called with inplace=True (by keyword or position)."""
    try:
        pos = _inplace_pos[impl]
    except KeyError:
        import inspect
        try:
            names = list(inspect.signature(impl).parameters)
        except (TypeError, ValueError):
            names = []
        pos = _inplace_pos[impl] = names.index("inplace") if "inplace" in names else None
    if pos is None:
        return False
    flag = args[pos] if len(args) > pos else kwargs.get("inplace", False)
    return bool(flag) and isinstance(args[0], Tracer)


def _torch_function(cls, func, types, args=(), kwargs=None):
    return dispatch(func, args, kwargs)


def _sizes(obj):
    """obj with its traced 0-d integers as the ints they are for this call (each read is
    a guard of the trace: csrc/trace/concrete.c)."""
    import operator
    leaves, tree = _C.tree_flatten(obj)
    return tree.unflatten([operator.index(o) if isinstance(o, Tracer) and o.ndim == 0 and
                           np.dtype(_NP_DTYPE.__get__(o)).kind in "iu" else o for o in leaves])


def _has_tracer(obj):
    return any(isinstance(o, Tracer) for o in _C.tree_leaves(obj))


def _tensors(obj):
    return [o for o in _C.tree_leaves(obj) if _is_tensor(o)]


def _external(fn):
    """ids of the tensors fn reads at call time: its closure cells and globals, and
    compile(nn.Module)'s parameter and buffer dicts."""
    ext = set()
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            ext.update(id(t) for t in _tensors(cell.cell_contents))
        except ValueError:           # an empty cell
            pass
    for v in (getattr(fn, "__globals__", None) or {}).values():
        if _is_tensor(v):
            ext.add(id(v))
    for d in getattr(fn, "__tracejit_dicts__", ()):
        ext.update(id(t) for t in d.values() if t is not None)
    return ext


_mode_cls = None
# Tensor methods that read a tensor's value into Python (no implementation in the
# table: a tracer has its own), for a tensor the function reads at call time
_VALUE_READS = {"item": lambda t: t.item(), "tolist": lambda t: t.tolist(),
                "__bool__": bool, "__float__": float, "__int__": int,
                "__index__": lambda t: t.__index__(), "__complex__": complex}
_INPLACE_DUNDERS = frozenset(f"__i{op}__" for op in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor",
    "lshift", "rshift", "matmul")) | {"__setitem__"}


def _storage(t):
    """Where a tensor's memory starts (None where it has none to read)."""
    try:
        return t.untyped_storage().data_ptr()
    except Exception:
        return None


def _writes_in_place(func):
    """Whether a torch function writes into its first argument: an in-place method
    (add_, copy_, ...), an in-place operator or item assignment."""
    name = getattr(func, "__name__", "") or ""
    return (name in _INPLACE_DUNDERS or (name.endswith("_") and not name.startswith("_"))) \
        and _is_torch_func(func)


def _mode(ref, external):
    global _mode_cls
    if _mode_cls is None:
        from torch.overrides import TorchFunctionMode

        class TraceMode(TorchFunctionMode):
            """Active while a torch trace runs. Calls with tracers go to dispatch(), and so
            do calls on tensors the function reads at call time (W.t() of a closure or a
            module's parameter becomes part of the trace, not a snapshot); the rest
            (factories: torch.zeros(3), torch.tensor([...]), and what is computed from
            them) run as they are and become constants of the trace."""

            def __init__(self, ref, external):
                super().__init__()
                self.ref, self.external, self.made = ref, external, set()

            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if (_has_tracer(args) or _has_tracer(kwargs)) and _impl(func) is None:
                    # torch.zeros(n): a traced Python int as a size, read (and guarded)
                    args, kwargs = _sizes(args), {k: _sizes(v) for k, v in kwargs.items()}
                if _has_tracer(args) or _has_tracer(kwargs):
                    if args and _is_tensor(args[0]) and _writes_in_place(func):
                        self.external.add(id(args[0]))       # traced contents from now on
                    return dispatch(func, args, kwargs)      # (refuses random calls)
                if (self.ref is not None and self.external and _impl(func) is not None and
                        any(id(t) in self.external for t in _tensors((args, kwargs)))):
                    return dispatch(func, args, kwargs, self.ref)
                if (args and _is_tensor(args[0]) and id(args[0]) not in self.made and
                        _writes_in_place(func) and _impl(func) is not None):
                    # a write into a tensor the caller holds (a module's buffer read
                    # through an attribute): traced and written back at every call
                    if self.ref is None:
                        _C._trace_error(f"{name_of(func)} writes into a tensor the function "
                                        f"reads from outside with no traced operand, which "
                                        f"tracejit cannot replay")
                    self.external.add(id(args[0]))   # read from now on as traced
                    return dispatch(func, args, kwargs, self.ref)
                if (self.ref is not None and self.external and args and
                        (getattr(func, "__name__", "") or "") in _VALUE_READS and
                        _is_tensor(args[0]) and id(args[0]) in self.external):
                    # state.item(), float(state) of a tensor read at call time (an
                    # optimizer's state, read as traced): its traced value, guarded,
                    # never the value it held while tracing
                    return _VALUE_READS[func.__name__](_C._lift(self.ref, args[0]),
                                                        *args[1:], **kwargs)
                if (getattr(func, "__name__", "") or "").startswith("_foreach_") and \
                        any(id(t) in self.external for t in _tensors((args, kwargs))):
                    # run as it is, it would read (and write) the real tensors once
                    _C._trace_error(f"{name_of(func)} (a multi-tensor op: foreach=True "
                                    f"optimizers, clip_grad_norm_) is not supported by "
                                    f"tracejit yet; pass foreach=False")
                r = random_call(func, args, kwargs)
                r = func(*args, **kwargs) if r is _NOT_RANDOM else r
                self._note_made(r, args, kwargs)
                return r

            def _note_made(self, r, args, kwargs):
                """The tensors r holds were made while tracing (the trace's own: a
                write into one is never written back), except views of a tensor that
                was not (their memory is the caller's)."""
                outside = {_storage(t) for t in _tensors((args, kwargs))
                           if id(t) not in self.made}
                for t in _tensors(r):
                    if _storage(t) not in outside:
                        self.made.add(id(t))
                        _C._note_made(t)

        _mode_cls = TraceMode
    return _mode_cls(ref, external)


_pending = threading.local()   # .error: the last capture refused by dispatch();
                               # .external: ids of the tensors the traced function reads


def stand_in(tensor, tracer):
    """While this torch trace runs, the real `tensor` is read as `tracer` wherever the
    traced code reaches it (an operand, a torch function's argument, a method of it):
    a value the caller passes as an argument but the code reads from elsewhere (Pyro's
    parameters, read from its modules and param store; tracejit.pyro)."""
    _C._stand_in(tensor, tracer)
    external = getattr(_pending, "external", None)
    if external is not None:
        external.add(id(tensor))


def index_key(x, key):
    """x[key] in a torch trace with real tensors in the key (csrc/trace/tracer.c): a
    tensor made during the trace (a factory's, torch.distributions' tril masks) is a
    constant of the trace, given as an ndarray (a boolean one as the positions of its
    True elements); one the function reads at call time (a closure's, a global)
    becomes a tracer read at every call."""
    external = getattr(_pending, "external", None) or ()
    out = []
    for k in key if isinstance(key, tuple) else (key,):
        if not _is_tensor(k):
            out.append(k)
        elif id(k) in external:
            out.append(_C._lift(x, k))
        elif k.ndim == 0:                 # x[torch.tensor(1)], x[torch.tensor(True)]
            out.append(k.item())
        elif k.dtype == _torch().bool:    # a constant mask: its positions, as NumPy reads it
            out.extend(np.nonzero(k.numpy()))
        else:
            out.append(k.numpy())
    return tuple(out) if isinstance(key, tuple) or len(out) > 1 else out[0]


def getitem(x, key):
    """x[key] with real tensors in the key (csrc/trace/tracer.c): index_key's key; a
    constant mask of two or more dims after an Ellipsis (torch.distributions'
    tril_matrix_to_vec: mat[..., tril_mask]) indexes those dims flattened together, one
    integer array (the tracer gathers with one)."""
    if (isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis and _is_tensor(key[1])
            and key[1].dtype == _torch().bool and key[1].ndim >= 2 and
            id(key[1]) not in (getattr(_pending, "external", None) or ())):
        k = key[1].ndim
        shape = tuple(_NP_SHAPE.__get__(x))
        if shape[len(shape) - k:] != tuple(key[1].shape):
            raise IndexError(f"The shape of the mask {list(key[1].shape)} does not match the "
                             f"shape of the indexed tensor {list(shape)}")
        flat = x.reshape(shape[:len(shape) - k] + (-1,))
        return flat[..., np.flatnonzero(key[1].numpy())]
    return x[index_key(x, key)]


def call_traced(fn, args, kwargs):
    """fn(*args, **kwargs) on tracers under the TraceMode. A tensor operator's
    TypeError becomes NotImplemented in torch (`param * 2.0` then fails as
    "unsupported operand type(s)"): a capture that dispatch() refused (a parameter that
    requires grad, which sends a compiled module to the autograd route) is raised
    in its place."""
    kwargs = kwargs or {}
    ref = _find_tracer(args)
    if ref is None:
        ref = _find_tracer(list(kwargs.values()))
    outer, _pending.error = getattr(_pending, "error", None), None
    outer_external = getattr(_pending, "external", None)
    _pending.external = _external(getattr(fn, "__wrapped__", fn))
    swapped = _torch_swaps.swap_helpers()
    try:
        with _mode(ref, _pending.external):
            return fn(*args, **kwargs)
    except TypeError as e:
        refused = _pending.error
        if refused is None or refused is e:
            raise
        raise refused from e
    except TraceError as e:
        _name_module(e)
        raise
    finally:
        _pending.error, _pending.external = outer, outer_external
        for owner, name, orig in reversed(swapped):
            if orig is _torch_dists.ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, orig)


def _name_module(e):
    """A TraceError raised inside torch's own module code (torch/nn/...) names the module
    whose forward led there (the error's line is the user's, which called it)."""
    import os
    torch_dir = os.path.dirname(_torch().__file__) + os.sep
    module_type = _torch().nn.Module
    tb, inner = e.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get("self") if frame.f_code.co_name == "forward" else None
        if frame.f_code.co_filename.startswith(torch_dir) and isinstance(owner, module_type):
            inner = owner
        tb = tb.tb_next
    if inner is None or not e.args or not isinstance(e.args[0], str):
        return
    cls = type(inner)
    name = f"{cls.__module__.split('.modules')[0]}.{cls.__qualname__}"
    if name in e.args[0]:
        return
    e.args = (f"{e.args[0]}\n  (reached inside {name}.forward, torch's code)",) + e.args[1:]


def register():
    Tracer.__torch_function__ = classmethod(_torch_function)
    from . import _torch_autograd
    _effects.register()
    _C._register_torch(ATTRS, _effects.call, _torch_autograd.call,
                       _torch_autograd.GradCaptureError)
