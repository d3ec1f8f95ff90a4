"""Complex numbers (issue 22, item 1) as pairs of real tracers.

The IR has no complex dtype: a complex value of a trace is a `Complex`, its real and
imaginary parts two real tracers of one shape and float dtype (float32 for complex64,
float64 for complex128). Every op on it is an op on the parts, written with NumPy's own
algorithms (_complex_math.py: division, power, exp, log, sqrt, the hyperbolic functions,
with NumPy's special values), so the passes, the emitters, the backends (TinyCC, the
tier, NVRTC, export) and autodiff see real arrays only: gradients of real-valued
functions through complex intermediates are the real chain rule (jax's convention).

Where complex values enter: a complex Python or NumPy scalar, or a complex ndarray, met
by a Tracer's operator, ufunc, array function or astype (csrc/trace/complex.c hands it
to `op`), and complex arrays among a compiled function's arguments (args.c refuses them,
function.c hands the call to `call`): the function is compiled over their `.real` and
`.imag` views (in place, no copy; a write through them reaches the caller's array), and
each Complex result comes back as one float array `stack([re, im], -1)` viewed as
complex (no copy). Not yet: torch complex tensors, complex arrays captured from outside
(closures, globals: pass them as arguments), differentiating with respect to a complex
argument; each refused by name.
"""
import collections

import numpy as np

from . import _C
from . import _complex_math as M


def _refuse(msg):
    _C._trace_error(msg)


def _rdt(cdt):
    return np.dtype(np.float32) if np.dtype(cdt) == np.complex64 else np.dtype(np.float64)


def _cdt(rdt):
    return np.dtype(np.complex64) if np.dtype(rdt) == np.float32 else np.dtype(np.complex128)


def _is_tracer(x):
    return isinstance(x, _C.Tracer)


def _is_complex(x):
    if isinstance(x, Complex):
        return True
    if isinstance(x, (complex, np.complexfloating)):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind == "c"


def _proxy(x):
    """What np.result_type reads for x: weak Python scalars as themselves."""
    if isinstance(x, Complex):
        return x.dtype
    if isinstance(x, (bool, int, float, complex)) and not isinstance(x, np.generic):
        return x
    if _is_tracer(x):
        return x.dtype
    return np.asarray(x).dtype if not isinstance(x, np.generic) else x.dtype


def _result(*xs):
    dt = np.result_type(*[_proxy(x) for x in xs])
    if dt.kind != "c":
        dt = np.result_type(dt, np.complex64)
    if dt not in (np.complex64, np.complex128):
        _refuse(f"{dt} values are not supported by tracejit (complex64 and complex128 are)")
    return dt



def parts(x, rdt, full=True):
    """x's real and imaginary parts in the real dtype rdt: scalars for a scalar; a real
    array's imaginary part zeros of its shape, or (not `full`: the elementwise ufuncs,
    whose results C.make broadcasts) the scalar zero, NumPy's value, whose products and
    tests fold while tracing instead of being computed per element."""
    if isinstance(x, Complex):
        re, im = x.re, x.im
    elif isinstance(x, (complex, np.complexfloating)):
        return rdt.type(x.real), rdt.type(x.imag)
    elif isinstance(x, np.ndarray) and x.dtype.kind == "c":
        re, im = np.ascontiguousarray(x.real), np.ascontiguousarray(x.imag)
    elif isinstance(x, (bool, int, float)) or isinstance(x, np.generic):
        return rdt.type(x), rdt.type(0)
    elif not full:   # a real array: its imaginary part the scalar zero (folded)
        return (x if x.dtype == rdt else x.astype(rdt)), rdt.type(0)
    else:
        re = x
        im = _C._full(tuple(x.shape), rdt, 0) if _is_tracer(x) else np.zeros(np.shape(x), rdt)
    if re.dtype != rdt:
        re = re.astype(rdt)
    if im.dtype != rdt:
        im = im.astype(rdt)
    return re, im


def make(re, im, np0=None):
    """A Complex of parts that may be scalars or of differing shapes: broadcast."""
    shape = np.broadcast_shapes(np.shape(re), np.shape(im))
    if np.shape(re) != shape:
        re = np.broadcast_to(re, shape) if _is_tracer(re) else _C._full(shape, re.dtype, 0) + re
    if np.shape(im) != shape:
        im = np.broadcast_to(im, shape) if _is_tracer(im) else _C._full(shape, im.dtype, 0) + im
    if not _is_tracer(re) and not _is_tracer(im):
        return np.asarray(re) + 1j * np.asarray(im)   # (constants: NumPy computes them)
    if not _is_tracer(re):
        re = _C._full(shape, im.dtype, 0) + re
    if not _is_tracer(im):
        im = _C._full(shape, re.dtype, 0) + im
    if re.dtype != im.dtype or re.dtype not in (np.float32, np.float64):
        raise _C.InternalError(f"complex parts of dtypes {re.dtype} and {im.dtype}")
    return Complex(re, im, len(shape) == 0 if np0 is None else np0)


class Complex:
    """A complex array of a trace: real and imaginary parts, real tracers of one shape
    and dtype. `np0`: a 0-d result is a NumPy scalar (ufuncs, reductions, indexing)."""
    __slots__ = ("re", "im", "np0", "__weakref__")
    __array_priority__ = 1000
    __hash__ = None

    def __init__(self, re, im, np0=False):
        self.re, self.im, self.np0 = re, im, np0

    # -- attributes
    @property
    def dtype(self):
        return _cdt(self.re.dtype)

    @property
    def shape(self):
        return tuple(self.re.shape)

    @property
    def ndim(self):
        return len(self.re.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.itemsize

    @property
    def real(self):
        return self.re   # NumPy's view: a write through it reaches this array

    @real.setter
    def real(self, v):
        self.re[...] = v

    @property
    def imag(self):
        return self.im

    @imag.setter
    def imag(self, v):
        self.im[...] = v

    @property
    def T(self):
        return Complex(self.re.T, self.im.T)

    def __len__(self):
        return len(self.re)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        return f"tracejit.Complex(shape={self.shape}, dtype={self.dtype})"

    # -- Python's conversions (computed from the call's values and guarded)
    def __complex__(self):
        return complex(float(self.re), float(self.im))

    def __bool__(self):
        return bool((self.re != 0) | (self.im != 0))

    def __float__(self):
        _refuse("float() of a complex value is not supported by tracejit (NumPy discards the "
                "imaginary part with a ComplexWarning): take .real")

    __int__ = __float__

    def item(self, *args):
        return complex(self[args] if args else self.reshape(-1)[0] if self.size == 1 else
                       _size_one(self))

    def tolist(self):
        _refuse("tolist() of a complex value is not supported by tracejit")

    # -- operators: NumPy's ufuncs
    def _u(name, reflect=False):
        uf = getattr(np, name)
        if reflect:
            return lambda self, other: ufunc_call(uf, "__call__", (other, self), {})
        return lambda self, other: ufunc_call(uf, "__call__", (self, other), {})

    __add__, __radd__ = _u("add"), _u("add", True)
    __sub__, __rsub__ = _u("subtract"), _u("subtract", True)
    __mul__, __rmul__ = _u("multiply"), _u("multiply", True)
    __truediv__, __rtruediv__ = _u("divide"), _u("divide", True)
    __matmul__, __rmatmul__ = _u("matmul"), _u("matmul", True)
    __eq__, __ne__ = _u("equal"), _u("not_equal")
    __lt__, __le__ = _u("less"), _u("less_equal")
    __gt__, __ge__ = _u("greater"), _u("greater_equal")
    del _u

    def __pow__(self, other):
        return M.power(self, other, scalar_op=True)

    def __rpow__(self, other):
        return M.power(other, self, scalar_op=True)

    def __floordiv__(self, other):
        _refuse("floor division of complex values: NumPy has no loop for it (TypeError)")

    __rfloordiv__ = __mod__ = __rmod__ = __floordiv__

    def __neg__(self):
        return ufunc_call(np.negative, "__call__", (self,), {})

    def __pos__(self):
        return ufunc_call(np.positive, "__call__", (self,), {})

    def __abs__(self):
        return ufunc_call(np.absolute, "__call__", (self,), {})

    def _inplace(self, other, uf):
        r = ufunc_call(uf, "__call__", (self, other), {})
        if self.np0 and self.ndim == 0:
            return r                  # a NumPy scalar: eager rebinds the name
        self[...] = r
        return self

    def __iadd__(self, o):
        return self._inplace(o, np.add)

    def __isub__(self, o):
        return self._inplace(o, np.subtract)

    def __imul__(self, o):
        return self._inplace(o, np.multiply)

    def __itruediv__(self, o):
        return self._inplace(o, np.divide)

    # -- indexing and writes
    def __getitem__(self, key):
        re = self.re[key]
        np0 = np.ndim(re) == 0 and key is not Ellipsis and key != ()
        return Complex(re, self.im[key], np0)

    def __setitem__(self, key, value):
        rdt = self.re.dtype
        if isinstance(value, Complex) or _is_complex(value):
            vr, vi = parts(value, rdt)
        else:
            vr, vi = value, rdt.type(0)
        self.re[key] = vr
        self.im[key] = vi

    # -- methods
    def conj(self):
        return ufunc_call(np.conjugate, "__call__", (self,), {})

    conjugate = conj

    def copy(self, order="C"):
        return Complex(self.re.copy(), self.im.copy())

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        return astype(self, dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return ufunc_call(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return function_call(func, args, kwargs)


def _size_one(z):
    _refuse(f"item() of a complex array of {z.size} elements: can only convert an array of "
            "size 1 to a Python scalar")


def _method(name):
    fn = getattr(np, name)
    return lambda self, *a, **k: function_call(fn, (self,) + a, k)


for _name in ("reshape", "transpose", "ravel", "flatten", "squeeze", "swapaxes", "sum",
              "mean", "prod", "dot", "repeat", "take", "diagonal", "trace", "cumsum",
              "all", "any"):
    setattr(Complex, _name, _method(_name if _name != "flatten" else "ravel"))
Complex.flatten = lambda self, order="C": Complex(self.re.flatten(), self.im.flatten())


def astype(x, dtype):
    """x (a Complex, or a real tracer going to a complex dtype) as `dtype`, NumPy's casts:
    complex to real keeps the real part with NumPy's ComplexWarning at every call,
    complex to bool is `!= 0`."""
    dt = np.dtype(dtype)
    if not isinstance(x, Complex):
        rdt = _rdt(dt)
        if dt not in (np.complex64, np.complex128):
            _refuse(f"astype({dt}) is not supported by tracejit (complex64 and complex128 are)")
        return Complex(x.astype(rdt), _C._full(tuple(x.shape), rdt, 0), False)
    if dt.kind == "c":
        if dt not in (np.complex64, np.complex128):
            _refuse(f"astype({dt}) is not supported by tracejit (complex64 and complex128 are)")
        rdt = _rdt(dt)
        return Complex(x.re.astype(rdt), x.im.astype(rdt))
    if dt == np.bool_:
        return (x.re != 0) | (x.im != 0)
    _C._check(_C._full((), np.dtype(np.bool_), 0),
              "Casting complex values to real discards the imaginary part", np.exceptions.ComplexWarning)
    return x.re.astype(dt)


# ---- ufuncs ------------------------------------------------------------------------

def ufunc_call(ufunc, method, inputs, kwargs):
    if method != "__call__":
        if method == "reduce" and ufunc in (np.add, np.multiply):
            fn = np.sum if ufunc is np.add else np.prod
            return function_call(fn, inputs, kwargs)
        _refuse(f"numpy.{ufunc.__name__}.{method} of complex values is not supported by "
                "tracejit yet")
    if kwargs.get("out") is not None or kwargs.get("where", True) is not True:
        _refuse(f"numpy.{ufunc.__name__}(out=/where=) of complex values is not supported by "
                "tracejit yet")
    if kwargs.get("dtype") is not None:
        dt = np.dtype(kwargs["dtype"])
        inputs = tuple(astype(i, dt) if isinstance(i, Complex) or _is_tracer(i) else i
                       for i in inputs)
    impl = M.UFUNCS.get(ufunc.__name__)
    if impl is None:
        _refuse(f"numpy.{ufunc.__name__} of complex values is not supported by tracejit yet")
    return impl(*inputs)


# ---- array functions ---------------------------------------------------------------

def _as_complex(x, rdt):
    re, im = parts(x, rdt)
    if not _is_tracer(re) and not _is_tracer(im):
        re, im = np.asarray(re), np.asarray(im)
    return re, im


def _split(func, args, kwargs, data, rdt):
    """func applied to the real parts, then to the imaginary parts, of the data args."""
    def side(k):
        out = list(args)
        for i in data:
            if i == "seq":
                out[0] = [_as_complex(v, rdt)[k] for v in args[0]]
            elif i < len(out):
                out[i] = _as_complex(args[i], rdt)[k]
        return func(*out, **kwargs)
    return Complex(side(0), side(1))


# functions that act on each part alike: which arguments are data ("seq": the first
# argument is a sequence of arrays)
_PARTWISE = {
    "reshape": (0,), "transpose": (0,), "ravel": (0,), "squeeze": (0,), "swapaxes": (0,),
    "moveaxis": (0,), "expand_dims": (0,), "broadcast_to": (0,), "flip": (0,),
    "fliplr": (0,), "flipud": (0,), "roll": (0,), "rot90": (0,), "tile": (0,),
    "repeat": (0,), "take": (0,), "diagonal": (0,), "triu": (0,), "tril": (0,),
    "copy": (0,), "asarray": (0,), "asanyarray": (0,), "ascontiguousarray": (0,),
    "array": (0,), "atleast_1d": (0,), "atleast_2d": (0,), "atleast_3d": (0,),
    "concatenate": ("seq",), "stack": ("seq",), "hstack": ("seq",), "vstack": ("seq",),
    "column_stack": ("seq",), "where": (1, 2), "sum": (0,), "cumsum": (0,),
    "trace": (0,), "zeros_like": (0,), "empty_like": (0,), "diag": (0,),
}


def function_call(func, args, kwargs):
    name = getattr(func, "__name__", "")
    impl = M.FUNCS.get(name)
    if impl is not None:
        return impl(*args, **kwargs)
    if name in _PARTWISE:
        data = _PARTWISE[name]
        vals = list(args[0]) if data == ("seq",) else [args[i] for i in data if i < len(args)]
        if name in ("where",) and len(args) < 3:
            _refuse("numpy.where(condition) of complex values is not supported by tracejit")
        if name in ("asarray", "asanyarray", "array", "ascontiguousarray") and \
                kwargs.get("dtype") is not None:
            return astype(args[0], kwargs.pop("dtype"))
        dt = _result(*vals)
        if name in ("sum", "trace") and kwargs.get("dtype") is not None:
            dt = np.dtype(kwargs.pop("dtype"))
        r = _split(func, args, kwargs, data, _rdt(dt))
        if name in ("sum", "trace"):
            r.np0 = r.ndim == 0
        return r
    _refuse(f"numpy.{name} of complex values is not supported by tracejit yet")


# ---- the C side's entry points -----------------------------------------------------

def _torch_trace(args):
    for a in args:
        for v in (a if isinstance(a, (list, tuple)) else (a,)):
            if _is_tracer(v) and not isinstance(v.dtype, np.dtype):
                return True
    return False


def op(kind, *args, **kwargs):
    """csrc/trace/complex.c: a complex operand met by a Tracer (or a Complex result,
    kind "result": its parts stacked, and whether eager gives a NumPy scalar)."""
    if kind != "result" and _torch_trace(args if kind != "ufunc" else args[2:]):
        _refuse("complex values in torch code are not supported by tracejit yet (complex "
                "NumPy arrays are)")
    if kind == "binop":
        name, a, b = args
        if name == "matmul":
            return M.matmul(a, b)
        if name == "power":
            return M.power(a, b, scalar_op=True)
        if name in ("floor_divide", "remainder"):
            _refuse(f"numpy.{name} of complex values: NumPy has no loop for it (TypeError)")
        if name is None or not hasattr(np, name):
            _refuse("this operator on complex values is not supported by tracejit")
        return ufunc_call(getattr(np, name), "__call__", (a, b), {})
    if kind == "ufunc":
        ufunc, method, *inputs = args
        return ufunc_call(ufunc, method, tuple(inputs), kwargs)
    if kind == "function":
        func, types, fargs = args
        return function_call(func, fargs, kwargs)
    if kind == "astype":
        x, dtype = args
        return astype(x, dtype)
    if kind == "result":
        z, = args
        return np.stack([z.re, z.im], axis=-1), bool(z.np0 and z.ndim == 0)
    raise _C.InternalError(f"_complex.op({kind!r})")


_CPair = collections.namedtuple("_CPair", "re im np0")   # a complex argument, split


def _walk(x, leaf):
    """x with leaf(v) for every non-container v (tuples, lists, dicts, namedtuples)."""
    if isinstance(x, _CPair):
        return leaf(x)
    if isinstance(x, tuple):
        items = [_walk(v, leaf) for v in x]
        return type(x)(*items) if hasattr(type(x), "_fields") else type(x)(items)
    if isinstance(x, list):
        return [_walk(v, leaf) for v in x]
    if isinstance(x, dict):
        d = x.copy()
        for k, v in x.items():
            d[k] = _walk(v, leaf)
        return d
    return leaf(x)


def _split_arg(v):
    if isinstance(v, np.ndarray) and v.dtype.kind == "c" and type(v) is np.ndarray:
        return _CPair(v.real, v.imag, False)
    if isinstance(v, np.complexfloating):
        rdt = _rdt(v.dtype)
        return _CPair(rdt.type(v.real), rdt.type(v.imag), True)
    return v


def _join_arg(v):
    if isinstance(v, _CPair):
        return Complex(v.re, v.im, v.np0)
    return v


def _has_complex_tracer(x):
    found = []
    _walk(x, lambda v: found.append(v) if isinstance(v, Complex) else v)
    return bool(found)


def call(cf, args, kwargs):
    """function.c: cf called with complex arrays among its arguments."""
    if _has_complex_tracer((args, kwargs)):      # inside another trace: trace through
        return cf.__wrapped__(*args, **kwargs)
    inner = cf.__dict__.get("_tj_complex")
    if inner is None:
        fn = cf.__wrapped__

        def inner_fn(*a, **k):
            a, k = _walk((a, k), _join_arg)
            return fn(*a, **k)

        inner_fn.__wrapped__ = fn
        inner_fn.__name__ = getattr(fn, "__name__", "f")
        inner_fn.__qualname__ = getattr(fn, "__qualname__", inner_fn.__name__)
        inner = _C.CompiledFunction(inner_fn, cf._static_argnums, cf._static_argnames,
                                    cf._max_variants, cf._on_guard_limit)
        cf.__dict__["_tj_complex"] = inner
    sargs, skw = _walk((tuple(args), dict(kwargs)), _split_arg)
    try:
        return inner(*sargs, **skw)
    except _C.TraceError as e:
        if "whose memory another array it reads shares" not in str(e):
            raise
        raise _C.TraceError("the compiled function writes into a complex argument whose "
                            "elements another argument shares (its real and imaginary parts "
                            "are read in place): pass separate arrays\n" + str(e)) from None


def register():
    _C._register_complex(Complex, call, op)

