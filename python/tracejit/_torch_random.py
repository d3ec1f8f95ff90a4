"""torch's random functions, methods and dropout layers inside a trace (_draws.py says
how a draw becomes a graph op and where its key comes from).

`call(func, args, kwargs)` is asked first by _torch.dispatch and the TraceMode for
every torch call while a trace runs: it returns _NOT_RANDOM for a call that draws
nothing (dropout in evaluation mode included), else the traced draw, or raises a
TraceError naming what is not compiled yet (rrelu in training, ...).
"""
import numpy as np

from . import _C
from . import _draws as R

_NOT_RANDOM = object()


def _torch():
    import torch
    return torch


def _size(args, kwargs):
    size = kwargs.get("size")
    if size is None:
        # (torch.Size is a tuple)
        size = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    return tuple(int(s) for s in size)


def _dtype(dtype):
    """numpy dtype of a torch dtype, None for torch's default."""
    if dtype is None:
        return None
    from ._torch_ops import _np_dtype
    return _np_dtype(dtype)


def _float_dtype(x, dtype=None):
    """The float dtype a draw shaped like x takes: `dtype`, else x's, which torch
    requires to be floating (its kernels raise for an integer or bool tensor)."""
    if dtype is not None:
        return _dtype(dtype)
    dt = _np_like(x)
    if dt not in (np.float32, np.float64):
        _C._trace_error(f"a random float draw like a tensor of dtype {dt} is not defined: "
                        "torch raises for it too (give a floating tensor or dtype=)")
    return dt


def _src(kwargs):
    device = kwargs.get("device")
    here, there = _torch().device(_C._trace_device()), device and _torch().device(device)
    if device is not None and there.type != "cpu" and \
            (there.type, there.index or 0) != (here.type, here.index or 0):
        _C._trace_error(f"a random draw on device {device!r} is not supported (the trace runs "
                        f"on {_C._trace_device()})")
    return R._torch_source(kwargs.get("generator"))


def _shape_of(x):
    return tuple(int(s) for s in x.shape)


# ---- factories ------------------------------------------------------------------

def rand(*args, **kwargs):
    return R.draw("uniform", _size(args, kwargs), _dtype(kwargs.get("dtype")), _src(kwargs))


def randn(*args, **kwargs):
    return R.draw("normal", _size(args, kwargs), _dtype(kwargs.get("dtype")), _src(kwargs))


def randint(*args, **kwargs):
    args = list(args)
    size = kwargs.pop("size", None)
    if size is None:
        size = args.pop()
    high = kwargs.pop("high", None)
    if high is None:
        high = args.pop()
    low = args.pop() if args else kwargs.pop("low", 0)
    dt = _dtype(kwargs.get("dtype")) or np.dtype(np.int64)
    return R.integers(low, high, tuple(int(s) for s in size), dt, _src(kwargs))


def rand_like(x, dtype=None, **kwargs):
    return R.draw("uniform", _shape_of(x), _float_dtype(x, dtype), _src(kwargs))


def randn_like(x, dtype=None, **kwargs):
    return R.draw("normal", _shape_of(x), _float_dtype(x, dtype), _src(kwargs))


def randint_like(x, low=0, high=None, *, dtype=None, **kwargs):
    if high is None:
        low, high = 0, low
    dt = _dtype(dtype) if dtype is not None else _np_like(x)
    return R.integers(low, high, _shape_of(x), dt, _src(kwargs))


def _np_like(x):
    from ._torch_ops import _np_dtype
    return _np_dtype(x.dtype) if not isinstance(x.dtype, np.dtype) else x.dtype


def normal(mean=0.0, std=1.0, size=None, **kwargs):
    src = _src(kwargs)
    if size is not None:
        dt = _dtype(kwargs.get("dtype"))
        return R.normal(mean, std, tuple(int(s) for s in size), dt, src)
    shapes = [_shape_of(v) for v in (mean, std) if hasattr(v, "shape")]
    shape = np.broadcast_shapes(*shapes)
    like = mean if hasattr(mean, "shape") else std
    return R.normal(mean, std, shape, _float_dtype(like), src)


def bernoulli(x, p=None, **kwargs):
    prob = x if p is None else p
    return R.bernoulli(prob, _shape_of(x), _np_like(x), _src(kwargs))


def multinomial(probs, num_samples, replacement=False, **kwargs):
    if not replacement and num_samples > 1:
        _C._trace_error("torch.multinomial(..., replacement=False) with more than one sample "
                        "draws without replacement, which tracejit does not compile yet")
    return R.categorical(probs, int(num_samples), _src(kwargs))


def randperm(n, *, generator=None, dtype=None, **kwargs):
    """A uniformly random permutation of range(n): the ranks of n float64 uniform draws
    (_torch_sort's every-pair comparison, up to its 4096; a tie, of probability about
    n^2 / 2^54, still gives a permutation: equal draws keep their index order).
    Pyro's subsampling plates draw their indices with it."""
    n = int(n)
    if n < 0:
        raise RuntimeError(f"n must be non-negative, got{n}")
    if dtype is not None and _dtype(dtype).kind not in "iuf":
        _C._trace_error(f"torch.randperm(dtype={dtype}) is not supported by tracejit")
    from ._torch_sort import _order
    u = R.draw("uniform", (max(n, 1),), np.dtype(np.float64), _src(dict(kwargs, generator=generator)))
    _, perm, _, _ = _order(u, -1, False, "torch.randperm")
    perm = perm[:n]
    return perm.astype(_dtype(dtype)) if dtype is not None else perm


# ---- uninitialized arrays: traced, so that an in-place draw can fill them ---------

def empty(*args, **kwargs):
    """torch.empty(size) inside a trace: a traced array (of zeros: eager's contents are
    undefined), so torch.empty(3).normal_() draws at every call."""
    return _C._full(_size(args, kwargs), _dtype(kwargs.get("dtype")), 0)


def new_empty(x, *args, **kwargs):
    dt = _dtype(kwargs.get("dtype")) if kwargs.get("dtype") is not None else _np_like(x)
    return _C._full(_size(args, kwargs), dt, 0)


def new(x, *args, **kwargs):
    """Tensor.new(*sizes) (the legacy constructor distributions use:
    self.loc.new(shape).normal_()); Tensor.new(data) is not an empty array."""
    if all(isinstance(a, int) for a in args) or (
            len(args) == 1 and isinstance(args[0], tuple) and
            all(isinstance(a, int) for a in args[0])):
        return new_empty(x, *args, **kwargs)
    return _NOT_RANDOM


# ---- in-place methods -------------------------------------------------------------

def _fill(x, value, what):
    if not isinstance(x, _C.Tracer):
        _C._trace_error(f"{what} into a tensor that is not traced (made inside the function "
                        "by a factory such as torch.zeros, or read from outside) would draw "
                        "once, while tracing: draw a new tensor instead (torch.randn_like, "
                        "torch.rand(shape), torch.empty(shape).normal_())")
    return _C._assign(x, value.astype(_np_like(x)) if hasattr(value, "astype") else value,
                      what)


def normal_(x, mean=0.0, std=1.0, **kwargs):
    return _fill(x, R.normal(mean, std, _shape_of(x), _float_dtype(x), _src(kwargs)),
                 "Tensor.normal_()")


def uniform_(x, a=0.0, b=1.0, **kwargs):
    a, b = kwargs.pop("from", a), kwargs.pop("to", b)
    return _fill(x, R.uniform(a, b, _shape_of(x), _float_dtype(x), _src(kwargs)),
                 "Tensor.uniform_()")


def bernoulli_(x, p=0.5, **kwargs):
    return _fill(x, R.bernoulli(p, _shape_of(x), _np_like(x), _src(kwargs)),
                 "Tensor.bernoulli_()")


def exponential_(x, lambd=1.0, **kwargs):
    return _fill(x, R.exponential(1.0 / lambd, _shape_of(x), _float_dtype(x), _src(kwargs)),
                 "Tensor.exponential_()")


def cauchy_(x, median=0.0, sigma=1.0, **kwargs):
    return _fill(x, R.cauchy(median, sigma, _shape_of(x), _float_dtype(x), _src(kwargs)),
                 "Tensor.cauchy_()")


def log_normal_(x, mean=1.0, std=2.0, **kwargs):
    z = R.normal(mean, std, _shape_of(x), _float_dtype(x), _src(kwargs))
    return _fill(x, np.exp(z), "Tensor.log_normal_()")


def geometric_(x, p, **kwargs):
    e = R.exponential(1.0, _shape_of(x), np.float64, _src(kwargs))
    return _fill(x, np.floor(e / -np.log1p(-p)) + 1, "Tensor.geometric_()")


def random_(x, *args, **kwargs):
    """random_(to) draws in [0, to), random_(from, to) in [from, to); random_() and
    random_(from=f) draw up to the dtype's largest exact integer: not compiled yet."""
    if len(args) == 1 and "to" not in kwargs and "from" not in kwargs:
        a, b = 0, args[0]
    else:
        a = kwargs.pop("from", args[0] if args else 0)
        b = kwargs.pop("to", args[1] if len(args) > 1 else None)
    if b is None:
        _C._trace_error("Tensor.random_() over the dtype's whole range is not compiled "
                        "by tracejit yet: give from and to")
    return _fill(x, R.integers(a, b, _shape_of(x), np.int64, _src(kwargs)), "Tensor.random_()")


# ---- dropout ------------------------------------------------------------------------

def _keep(x, p, shape, kwargs):
    """A float mask of `shape` (broadcasting against x): 1/(1-p) with probability 1-p."""
    u = R.draw("uniform", shape, _float_dtype(x), _src(kwargs))
    return (u >= p).astype(_np_like(x))


def _dropout(x, p, shape, kwargs):
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 1:
        return x * 0
    return x * _keep(x, p, shape, kwargs) * (1.0 / (1.0 - p))


def _feature_shape(x, batched_ndim):
    """(N, C, 1, ...): one draw per channel (dropout1d/2d/3d: no batch dim allowed)."""
    s = _shape_of(x)
    lead = 2 if len(s) == batched_ndim else 1
    return s[:lead] + (1,) * (len(s) - lead)


def _alpha(x, p, shape, kwargs):
    """alpha_dropout: dropped elements to SELU's negative saturation, then an affine
    map that keeps mean 0 and variance 1 (torch's constants)."""
    if p == 1:
        return x * 0
    alpha_p = -1.7580993408473766
    keep = _keep(x, p, shape, kwargs)
    a = ((1 - p) * (1 + p * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * p
    return (x * keep + alpha_p * (1 - keep)) * a + b


# name -> (flag position, its keywords, its default, kind); kind: elementwise mask,
# feature (channel) mask with the batched rank, or alpha
_DROPOUTS = {
    "dropout": (2, ("training", "train"), True, "ew"),
    "dropout1d": (2, ("training",), True, 3),
    "dropout2d": (2, ("training",), True, 4),
    "dropout3d": (2, ("training",), True, 5),
    "feature_dropout": (2, ("train", "training"), True, "feature"),
    "alpha_dropout": (2, ("training", "train"), False, "alpha"),
    "feature_alpha_dropout": (2, ("training", "train"), False, "falpha"),
    "native_dropout": (2, ("train",), True, "native"),
}


def _dropout_call(name, args, kwargs):
    pos, keys, default, kind = _DROPOUTS[name.rstrip("_")]
    flag = args[pos] if len(args) > pos else next(
        (kwargs[k] for k in keys if k in kwargs), default)
    p = float(args[1] if len(args) > 1 else kwargs.get("p", 0.5))
    if not flag or p == 0:
        return _NOT_RANDOM
    x = args[0] if args else kwargs["input"]
    rest = {k: v for k, v in kwargs.items() if k == "generator"}
    if kind == "ew" or kind == "native":
        out = _dropout(x, p, _shape_of(x), rest)
        if kind == "native":
            return out, out != 0
    elif kind == "alpha":
        out = _alpha(x, p, _shape_of(x), rest)
    elif kind == "falpha":
        out = _alpha(x, p, _feature_shape(x, len(_shape_of(x))), rest)
    else:
        nd = len(_shape_of(x)) if kind == "feature" else kind
        out = _dropout(x, p, _feature_shape(x, nd), rest)
    inplace = (args[3] if len(args) > 3 else kwargs.get("inplace", False)) or name.endswith("_")
    if inplace:
        return _C._assign(x, out, f"torch.{name}(inplace=True)")
    return out


# ---- rejection samplers (_draws.sample; csrc/emit/prims_random.h) -------------------

def _params_dtype(name, *xs):
    dt = _float_dtype(xs[0])
    for x in xs[1:]:
        if _np_like(x) != dt:
            _C._trace_error(f"torch.{name}() of tensors of dtypes {dt} and {_np_like(x)}: "
                            "torch requires one dtype")
    return dt


def standard_gamma(alpha, generator=None):
    """torch._standard_gamma: one draw per element of the concentration alpha; its
    gradient is the implicit reparameterization's (_rules.py's RGAMMA)."""
    return R.gamma(alpha, _shape_of(alpha), _params_dtype("_standard_gamma", alpha),
                   R._torch_source(generator))


def sample_dirichlet(alpha, generator=None):
    """torch._sample_dirichlet: gammas normalized along the last dim (torch's own CPU
    kernel computes so)."""
    return R.dirichlet(alpha, _params_dtype("_sample_dirichlet", alpha),
                       R._torch_source(generator))


def poisson(rates, generator=None):
    return R.sample("poisson", (rates,), _shape_of(rates), _params_dtype("poisson", rates),
                    R._torch_source(generator))


def binomial(count, prob, generator=None):
    shape = tuple(np.broadcast_shapes(_shape_of(count), _shape_of(prob)))
    return R.sample("binomial", (count, prob), shape, _params_dtype("binomial", count, prob),
                    R._torch_source(generator))


_REFUSED = {"rrelu": "torch.rrelu() in training mode", "rrelu_": "torch.rrelu_() in training mode",
            "rrelu_with_noise": "torch.rrelu_with_noise()"}

IMPLS = {"rand": rand, "randn": randn, "randint": randint, "rand_like": rand_like,
         "randn_like": randn_like, "randint_like": randint_like, "normal": normal,
         "bernoulli": bernoulli, "multinomial": multinomial, "normal_": normal_,
         "uniform_": uniform_, "bernoulli_": bernoulli_, "exponential_": exponential_,
         "cauchy_": cauchy_, "log_normal_": log_normal_, "geometric_": geometric_,
         "random_": random_, "randperm": randperm, "empty": empty, "new_empty": new_empty, "new": new,
         "_standard_gamma": standard_gamma, "standard_gamma": standard_gamma,
         "_sample_dirichlet": sample_dirichlet, "sample_dirichlet": sample_dirichlet,
         "poisson": poisson, "binomial": binomial}
# not random, but an array a random in-place method may fill (asked only in a trace)
EMPTY = frozenset({"empty", "new_empty", "new"})


def _reseeds(name):
    _C._trace_error(f"torch.{name}() inside a compiled function would reseed at every call "
                    "in eager but only once while tracing: seed outside the compiled function "
                    "(its draws take their key from the generator at every call, so seeding "
                    "before a call makes it reproducible)")


def call(name, args, kwargs):
    """The traced draw of torch function `name`, or _NOT_RANDOM."""
    base = name.rstrip("_") if name not in IMPLS else name
    if base in _DROPOUTS:
        return _dropout_call(name, args, kwargs)
    impl = IMPLS.get(name)
    if impl is not None:
        return impl(*args, **kwargs)
    if name in ("manual_seed", "seed"):
        _reseeds(name)
    if name in ("rrelu", "rrelu_"):
        training = args[3] if len(args) > 3 else kwargs.get("training", False)
        if not training:
            return _NOT_RANDOM
    if name in _REFUSED and _REFUSED[name]:
        R.refuse(_REFUSED[name])
    return _NOT_RANDOM
