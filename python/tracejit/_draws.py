"""Random draws inside compiled code: torch's and NumPy's entry points, as graph ops.

Every draw becomes a random op of the graph (csrc/trace/random.c; Philox4x32-10 in
csrc/emit/prims_random.h): a pure function of the call's key and the element's index,
so it is fresh at every call, identical whatever the thread count or tier, and fuses
with what uses it. The key comes from the framework's generator at every call (the
`keyfn` of a source below): torch's default generator (or the `generator=` passed),
NumPy's global RandomState, a Generator or RandomState object. So the generator
advances at each call and `torch.manual_seed(s)` / `np.random.seed(s)` / a seeded
Generator make a whole program reproducible; the streams are not eager's (torch's CPU
generator is MT19937, NumPy's Generator PCG64), as with any other compiler.

Distributions are composed from uniform and normal draws with the tracer's own
operations (inverse CDFs, Box-Muller); gamma, Poisson and binomial are rejection
samplers of the op table (`sample`), and beta, Dirichlet, chi-square and Student's t
compositions of gamma draws; the rest (hypergeometric, ...) raise a TraceError naming
them.
"""
import contextlib
import math
import threading

import numpy as np

from . import _C

_I64_MIN, _I64_MAX = -(2 ** 63), 2 ** 63 - 1


def _trace_error(msg):
    _C._trace_error(msg)


# ---- sources: what a call's key is drawn from ------------------------------------

_sources = {}      # id(generator) -> (generator, keyfn), so a trace sees one source each
_pin = threading.local()   # .record: {source id: key} being recorded; .keys: keys to reuse


def _keyed(g, draw_key):
    """The key function of source g: a fresh key from draw_key(), unless a pullback is
    recomputing a forward (pinned): then that forward's key, so both see one draw."""
    gid = id(g)

    def keyfn():
        keys = getattr(_pin, "keys", None)
        if keys is not None:
            if gid not in keys:
                raise RuntimeError(
                    "tracejit: this backward would recompute random draws whose keys it "
                    "does not have (a second backward, retain_graph=True, through a "
                    "compiled function that draws random numbers): draw the noise outside "
                    "the compiled function and pass it in")
            return keys[gid]
        k = draw_key()
        rec = getattr(_pin, "record", None)
        if rec is not None:
            rec[gid] = k
        return k
    return keyfn


@contextlib.contextmanager
def recording():
    """The keys the calls inside draw ({source id: key}): what a backward reuses."""
    prev, _pin.record = getattr(_pin, "record", None), {}
    try:
        yield _pin.record
    finally:
        _pin.record = prev


@contextlib.contextmanager
def pinned(keys):
    """Calls inside draw with `keys` (recorded by `recording`), not fresh ones."""
    prev, _pin.keys = getattr(_pin, "keys", None), keys
    try:
        yield
    finally:
        _pin.keys = prev


def _torch():
    import torch
    return torch


def _torch_source(generator):
    torch = _torch()
    g = generator if generator is not None else torch.default_generator
    if g.device.type != "cpu":
        _trace_error(f"a random draw from a {g.device.type} generator is not supported "
                     "(tracejit compiles for the CPU)")
    hit = _sources.get(id(g))
    if hit is None or hit[0] is not g:
        def key(g=g, randint=torch.randint, i64=torch.int64):
            return randint(_I64_MIN, _I64_MAX, (), generator=g, dtype=i64).item()
        hit = _sources[id(g)] = (g, _keyed(g, key))
    return hit


def _numpy_source(gen):
    """gen: a np.random.Generator or RandomState (None: numpy's global one)."""
    g = np.random.mtrand._rand if gen is None else gen
    hit = _sources.get(id(g))
    if hit is None or hit[0] is not g:
        f = g.integers if isinstance(g, np.random.Generator) else g.randint

        def key(f=f):
            return int(f(_I64_MIN, _I64_MAX, dtype=np.int64))
        hit = _sources[id(g)] = (g, _keyed(g, key))
    return hit


def _as_numpy_dtype(dtype):
    if dtype is None or isinstance(dtype, np.dtype) or not hasattr(dtype, "is_floating_point"):
        return dtype
    from ._torch_ops import _np_dtype      # a torch dtype
    return _np_dtype(dtype)


def draw(kind, shape, dtype, source):
    """A Tracer of `shape`: standard normal or [0, 1) uniform numbers of `dtype` (numpy's
    or torch's; None: torch's default in a torch trace, float64 in a NumPy one)."""
    g, keyfn = source
    dtype = _as_numpy_dtype(dtype)
    return _C._random(kind, tuple(int(s) for s in shape), dtype, g, keyfn)


# ---- compositions (operands are tracers or numbers; results tracers) ---------------

def uniform(low, high, shape, dtype, source):
    u = draw("uniform", shape, dtype, source)
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and (low, high) == (0, 1):
        return u
    return low + (high - low) * u


def normal(mean, std, shape, dtype, source):
    z = draw("normal", shape, dtype, source)
    if isinstance(mean, (int, float)) and isinstance(std, (int, float)) and (mean, std) == (0, 1):
        return z
    return mean + std * z


def exponential(scale, shape, dtype, source):
    """-log(1 - u): u in [0, 1), so finite; scale 1/lambda."""
    e = -np.log1p(-draw("uniform", shape, dtype, source))
    return e if isinstance(scale, (int, float)) and scale == 1 else e * scale


def cauchy(loc, scale, shape, dtype, source):
    u = draw("uniform", shape, dtype, source)
    return loc + scale * np.tan(math.pi * (u - 0.5))


def integers(low, high, shape, np_dtype, source):
    """Uniform integers in [low, high): floor(u * n) with a 53-bit u, clamped below n
    (u * n may round up to n)."""
    low, high = int(low), int(high)
    n = high - low
    if n <= 0:
        raise ValueError(f"high <= low (low={low}, high={high})")
    if n > 2 ** 53:
        _trace_error(f"random integers over a range of {n} values (more than 2**53) are not "
                     "supported inside a compiled function")
    u = draw("uniform", shape, np.float64, source)
    k = np.minimum(np.floor(u * float(n)), float(n - 1))
    return (k + float(low)).astype(np_dtype)


def bernoulli(p, shape, dtype, source):
    """1 where u < p (so p = 0 never, p = 1 always), in dtype."""
    u = draw("uniform", shape, np.float64 if np.dtype(dtype) == np.float64 else np.float32,
             source)
    return (u < p).astype(dtype)


def categorical(probs, n, source):
    """n draws per row of probs (..., k), with replacement: inverse CDF of the row's
    normalized cumulative sum; int64 indices of shape (..., n)."""
    shape = tuple(probs.shape)
    cdf = np.cumsum(probs, axis=-1)
    cdf = cdf / cdf[..., -1:]
    u = draw("uniform", shape[:-1] + (n,), probs.dtype, source)
    # index = number of cdf entries <= u (the last one is 1 > u): a sum over k
    below = (np.expand_dims(cdf, -2) <= np.expand_dims(u, -1))
    return np.minimum(np.sum(below.astype(np.int64), axis=-1), shape[-1] - 1)


# ---- rejection samplers (csrc/emit/prims_random.h): gamma, Poisson, binomial ---------

def sample(kind, params, shape, dtype, source):
    """Draws of a rejection sampler op: kind "gamma" (concentration), "poisson" (rate)
    or "binomial" (count, prob); params broadcast to shape, in dtype (float32/64)."""
    g, keyfn = source
    return _C._sample(kind, tuple(int(s) for s in shape), _as_numpy_dtype(dtype), g, keyfn,
                      *params)


def gamma(alpha, shape, dtype, source):
    """Standard gamma (rate 1) of concentration alpha."""
    return sample("gamma", (alpha,), shape, dtype, source)


def dirichlet(alpha, dtype, source):
    """Gammas of the last axis's concentrations, normalized along it."""
    x = gamma(alpha, tuple(alpha.shape), dtype, source)
    return x / np.sum(x, axis=-1, keepdims=True)


def beta(a, b, shape, dtype, source):
    """X / (X + Y) of independent gammas X ~ G(a), Y ~ G(b)."""
    x = gamma(a, shape, dtype, source)
    return x / (x + gamma(b, shape, dtype, source))


def chisquare(df, shape, dtype, source):
    return 2 * gamma(np.multiply(df, 0.5) if not isinstance(df, (int, float)) else df / 2,
                     shape, dtype, source)


def standard_t(df, shape, dtype, source):
    """Z / sqrt(V / df), V ~ chi-square(df)."""
    z = draw("normal", shape, dtype, source)
    return z / np.sqrt(chisquare(df, shape, dtype, source) / df)


def refuse(what):
    _trace_error(f"{what} draws from a distribution tracejit does not compile yet (it has "
                 "no counter-based sampler for it): draw outside the compiled function and "
                 "pass the numbers in")


# ---- NumPy: the global functions, RandomState's and Generator's methods ------------

def _np_shape(size, *params):
    if size is not None:
        return (int(size),) if np.ndim(size) == 0 else tuple(int(s) for s in size)
    return np.broadcast_shapes(*(np.shape(p) for p in params))


def _np_float(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"Unsupported dtype {dt} for random floats")
    return dt


def _np_choice(source, a, size=None, replace=True, p=None, *, axis=0, shuffle=True):
    if not replace:
        _trace_error("choice(..., replace=False) draws without replacement, which tracejit "
                     "does not compile yet: draw outside the compiled function")
    if np.ndim(a) == 0:
        n, pool = int(a), None
    else:
        n, pool = np.shape(a)[0], a
    shape = _np_shape(size)
    if p is None:
        idx = integers(0, n, shape, np.int64, source)
    else:
        m = int(np.prod(shape))
        idx = categorical(np.asarray(p, np.float64) if not hasattr(p, "shape") else p,
                          m, source).reshape(shape)
    return idx if pool is None else np.take(pool, idx, axis=axis)


def _numpy_methods(source, generator):
    """name -> implementation, for one source; `generator`: Generator's signatures."""
    def std_normal(size=None, dtype=np.float64, out=None):
        return draw("normal", _np_shape(size), _np_float(dtype), source)

    def rnd(size=None, dtype=np.float64, out=None):
        return draw("uniform", _np_shape(size), _np_float(dtype), source)

    def norm(loc=0.0, scale=1.0, size=None):
        return normal(loc, scale, _np_shape(size, loc, scale), np.float64, source)

    def unif(low=0.0, high=1.0, size=None):
        return uniform(low, high, _np_shape(size, low, high), np.float64, source)

    def expo(scale=1.0, size=None):
        return exponential(scale, _np_shape(size, scale), np.float64, source)

    def std_expo(size=None, dtype=np.float64, method="zig", out=None):
        return exponential(1, _np_shape(size), _np_float(dtype), source)

    def lognormal(mean=0.0, sigma=1.0, size=None):
        return np.exp(normal(mean, sigma, _np_shape(size, mean, sigma), np.float64, source))

    def laplace(loc=0.0, scale=1.0, size=None):
        u = uniform(-0.5, 0.5, _np_shape(size, loc, scale), np.float64, source)
        return loc - scale * np.sign(u) * np.log1p(-2 * np.abs(u))

    def gumbel(loc=0.0, scale=1.0, size=None):
        return loc - scale * np.log(exponential(1, _np_shape(size, loc, scale), np.float64,
                                                source))

    def logistic(loc=0.0, scale=1.0, size=None):
        u = draw("uniform", _np_shape(size, loc, scale), np.float64, source)
        return loc + scale * (np.log(u) - np.log1p(-u))

    def std_cauchy(size=None):
        return cauchy(0.0, 1.0, _np_shape(size), np.float64, source)

    def ints(low, high=None, size=None, dtype=np.int64, endpoint=False):
        if high is None:
            low, high = 0, low
        return integers(low, int(high) + (1 if endpoint else 0), _np_shape(size),
                        np.dtype(dtype), source)

    def randint(low, high=None, size=None, dtype=int):
        if high is None:
            low, high = 0, low
        return integers(low, high, _np_shape(size), np.dtype(dtype), source)

    def choice(a, size=None, replace=True, p=None, *args, **kwargs):
        return _np_choice(source, a, size, replace, p, *args, **kwargs)

    f64 = np.float64

    def std_gamma(shape, size=None, dtype=np.float64, out=None):
        _positive(shape, "shape", False)
        return gamma(shape, _np_shape(size, shape), _np_float(dtype), source)

    def gam(shape, scale=1.0, size=None):
        _positive(shape, "shape", False)
        _positive(scale, "scale", False)
        return gamma(shape, _np_shape(size, shape, scale), f64, source) * scale

    def bet(a, b, size=None):
        _positive(a, "a", True)
        _positive(b, "b", True)
        return beta(a, b, _np_shape(size, a, b), f64, source)

    def dirich(alpha, size=None):
        alpha = np.asarray(alpha, f64) if not isinstance(alpha, _C.Tracer) else alpha
        _positive(alpha, "alpha", False)
        k = alpha.shape[-1]
        shape = _np_shape(size) + (k,) if size is not None else tuple(alpha.shape)
        return dirichlet(np.broadcast_to(alpha, shape) if tuple(alpha.shape) != shape
                         else alpha, f64, source)

    def chisq(df, size=None):
        _positive(df, "df", True)
        return chisquare(df, _np_shape(size, df), f64, source)

    def std_t(df, size=None):
        _positive(df, "df", True)
        return standard_t(df, _np_shape(size, df), f64, source)

    def pois(lam=1.0, size=None):
        _positive(lam, "lam", False)
        return sample("poisson", (lam,), _np_shape(size, lam), f64, source).astype(np.int64)

    def binom(n, p, size=None):
        _positive(n, "n", False)
        _probability(p)
        n = np.floor(n)   # NumPy reads n as an int64 (10.7 trials are 10)
        return sample("binomial", (n, p), _np_shape(size, n, p), f64, source).astype(np.int64)

    m = {"standard_normal": std_normal, "normal": norm, "uniform": unif,
         "gamma": gam, "standard_gamma": std_gamma, "beta": bet, "dirichlet": dirich,
         "chisquare": chisq, "standard_t": std_t, "poisson": pois, "binomial": binom,
         "exponential": expo, "standard_exponential": std_expo, "lognormal": lognormal,
         "laplace": laplace, "gumbel": gumbel, "logistic": logistic,
         "standard_cauchy": std_cauchy, "choice": choice}
    if generator:
        m.update({"random": rnd, "integers": ints})
    else:
        m.update({"random": lambda size=None: rnd(size), "random_sample":
                  lambda size=None: rnd(size), "sample": lambda size=None: rnd(size),
                  "ranf": lambda size=None: rnd(size),
                  "rand": lambda *dims: rnd(dims if dims else None),
                  "randn": lambda *dims: std_normal(dims if dims else None),
                  "standard_normal": lambda size=None: std_normal(size),
                  "standard_exponential": lambda size=None: std_expo(size),
                  "randint": randint})
    return m


def _traced(x):
    return isinstance(x, _C.Tracer)


def _positive(x, name, strict):
    """NumPy's parameter check (`shape < 0`, `a <= 0`): at once for a constant, at every
    call (a check of the plan) for a traced value."""
    msg = f"{name} {'<=' if strict else '<'} 0"
    if _traced(x):
        _C._check((x > 0) if strict else (x >= 0), f"{name} {'>' if strict else '>='} 0",
                  ValueError)
    elif np.any(np.asarray(x) <= 0 if strict else np.asarray(x) < 0):
        raise ValueError(msg)


def _probability(p):
    msg = "p < 0, p > 1 or p is NaN"
    if _traced(p):
        _C._check((p >= 0) & (p <= 1), "0 <= p <= 1", ValueError)
    elif not np.all((np.asarray(p) >= 0) & (np.asarray(p) <= 1)):
        raise ValueError(msg)


def numpy_global(name, check=False):
    """The implementation of numpy.random.<name> inside a trace, or None; check: only
    whether there is one (no source is made)."""
    if check:
        return name in _GLOBAL_NAMES
    return _numpy_methods(_numpy_source(None), False).get(name)


def numpy_generator(gen):
    """A stand-in for Generator or RandomState `gen` while a trace runs: the methods
    above as graph draws keyed from gen; any other method refuses."""
    return _GenProxy(gen)


_GLOBAL_NAMES = frozenset(_numpy_methods((None, None), False))


class _GenProxy:
    def __init__(self, gen):
        self._gen = gen
        self._impl = _numpy_methods(_numpy_source(gen),
                                    isinstance(gen, np.random.Generator))

    def __getattr__(self, name):
        impl = self._impl.get(name)
        if impl is not None:
            return impl
        attr = getattr(self._gen, name)
        if callable(attr) and not name.startswith("_"):
            kind = type(self._gen).__name__
            return lambda *a, **k: _trace_error(f"{kind}.{name}() draws from a distribution "
                                                "tracejit does not compile yet: draw outside "
                                                "the compiled function and pass the numbers in")
        return attr
