"""tracejit: trace NumPy-style array code once, fuse it, compile it in-process with
libtcc, and replay the compiled code on every later call with matching inputs.

    import numpy as np, tracejit

    @tracejit.compile
    def gelu_mix(x, y):
        z = x * y + y
        return 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z**3)))
"""
import inspect
import os
import types

import numpy as _np

try:
    from . import _C
except ImportError as _e:      # a source checkout on the path, without a build
    if not any(n.startswith("_C.") and n.endswith((".so", ".pyd"))
               for n in os.listdir(os.path.dirname(__file__))):
        raise ImportError(
            "tracejit's C extension (tracejit._C) is not built in "
            f"{os.path.dirname(__file__)}: install the package (`pip install .`) or build it "
            "in place (`python setup.py build_ext --inplace`) before using "
            "PYTHONPATH=python") from _e
    raise
from ._C import (CacheInfo, CompileError, CompiledFunction, InternalError, TraceError,
                 TracejitError, Tracer)
from ._explain import Explanation

__all__ = ["compile", "CompiledFunction", "CompiledModule", "CacheInfo", "Explanation",
           "TracejitError", "TraceError", "CompileError", "InternalError", "Tracer", "op_table",
           "libtcc_path", "get_num_threads", "set_num_threads", "set_tier", "grad",
           "value_and_grad", "vjp", "export", "save", "load",
           "cond", "while_loop", "fori_loop", "scan", "quantize_dynamic"]
__version__ = "0.1.0"


def _cache_info_repr(info):
    """The struct sequence's repr, with the compile time to 4 digits, not 17."""
    return (f"tracejit.CacheInfo(hits={info.hits}, misses={info.misses}, "
            f"variants={info.variants}, compile_time={info.compile_time:.4g}, "
            f"last_retrace={info.last_retrace!r})")


CacheInfo.__repr__ = _cache_info_repr

_C._set_include_dir(os.path.join(os.path.dirname(__file__), "_include"))
# Frames in these directories are not the user's code when an error names a line.
# (random.py and secrets.py: a refused draw of a fresh generator passes through them)
import random as _random  # noqa: E402
_SKIP_DIRS = (os.path.dirname(_np.__file__) + os.sep, os.path.dirname(__file__) + os.sep,
              _random.__file__, os.path.join(os.path.dirname(_random.__file__), "secrets.py"))
_C._set_skip_dirs(_SKIP_DIRS)


def _load_blas():
    """Large matrix products call the OpenBLAS NumPy ships (ILP64 CBLAS), already
    loaded in this process; TRACEJIT_BLAS=0 disables it, TRACEJIT_BLAS_MIN sets the
    size (multiply-adds) from which it is used."""
    import glob
    if os.environ.get("TRACEJIT_BLAS", "1") == "0":
        return False
    libs = os.path.join(os.path.dirname(os.path.dirname(_np.__file__)), "numpy.libs")
    minimum = int(os.environ.get("TRACEJIT_BLAS_MIN", str(_BLAS_MIN)))
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        if _C._load_blas(path, minimum):
            return True
    return False


from ._impls import IMPLS as _IMPLS  # noqa: E402
from . import _torch  # noqa: E402  (imports no torch: looked up when torch tensors arrive)
from . import _complex  # noqa: E402

_C._register_impls(_IMPLS)
_torch.register()
_complex.register()

from ._grad import grad, value_and_grad, vjp  # noqa: E402
from ._control import cond, fori_loop, scan, while_loop  # noqa: E402
from . import _loops  # noqa: E402,F401  (compiled loops: loaded with the package, not in a first call)
from . import _torch_autograd  # noqa: E402  (imports no torch either)
from . import _train_step  # noqa: E402  (a compiled training step)
from ._torch_autograd import GradCaptureError as _GradCaptureError  # noqa: E402

# Multiply-adds from which products call BLAS. benchmarks/bench_matmul.py measured
# NumPy's OpenBLAS faster than our GEMM at every shape from 4x4x4 up, so it is used
# wherever the operands' strides allow; our GEMM serves the rest (and matrix-vector).
_BLAS_MIN = 0
_HAVE_BLAS = _load_blas()


def compile(fn=None, *, static_argnames=(), max_variants=8, on_guard_limit="eager"):
    """Compile `fn`: trace it on the first call per argument signature, replay after.

    Usable as ``@compile`` or ``@compile(static_argnames=("n",))``. Python int and
    float arguments are runtime inputs unless named in `static_argnames`; other
    non-array arguments are static (part of the cache key). A value Python needs while
    tracing (``if x.sum() > 0:``, ``int(n)``, ``np.zeros(n)``, ``x.item()``) is computed
    from the call's inputs and guarded: a later call whose values differ runs another
    variant or retraces. Past `max_variants` variants for one argument signature, calls
    no variant fits run eagerly with a one-time warning (``on_guard_limit="eager"``) or
    raise TraceError (``"error"``).

    torch tensors that require grad under grad mode (and a compiled nn.Module's
    parameters) take part in torch.autograd: `f(w, x).backward()` fills `w.grad`
    (README, "torch.autograd"). What a trace cannot replay faithfully (a random draw, a
    write other arrays would see) raises TraceError at your line (README, "Never
    silently wrong").
    """
    if isinstance(static_argnames, str):
        static_argnames = (static_argnames,)
    static_argnames = tuple(static_argnames)
    if isinstance(max_variants, bool) or not isinstance(max_variants, int) or max_variants < 1:
        raise ValueError(f"max_variants must be an int of at least 1, got {max_variants!r}")
    if on_guard_limit not in ("eager", "error"):
        raise ValueError(f"on_guard_limit must be 'eager' or 'error', got {on_guard_limit!r}")
    limits = {"max_variants": max_variants, "on_guard_limit": on_guard_limit}

    def wrap(f):
        if _is_module(f):
            return _compile_module(f, static_argnames, **limits)
        nums = ()
        try:
            params = list(inspect.signature(f).parameters.values())
        except (TypeError, ValueError):
            params = []
        names = [p.name for p in params]
        for name in static_argnames:
            if params and name not in names:
                raise ValueError(f"static_argnames: {f.__name__!r} has no parameter {name!r}")
        positional = [p.name for p in params
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        nums = tuple(i for i, n in enumerate(positional) if n in static_argnames)
        cf = CompiledFunction(f, nums, static_argnames, **limits)
        cf._tj_train = _train_step.train   # a training step: function.c, _train_step.py
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            try:
                setattr(cf, attr, getattr(f, attr))
            except AttributeError:
                pass
        return cf

    return wrap if fn is None else wrap(fn)


def _is_module(obj):
    """A torch.nn.Module, recognized without importing torch."""
    return any(c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module"
               for c in type(obj).__mro__)


class CompiledModule:
    """tracejit.compile(nn.Module): the module's forward, traced with its parameters and
    buffers read from the module's own dicts at every call (an optimizer step, or a
    parameter replaced by another of the same shape, is seen; a new shape retraces).
    The module's `training` flag is part of the cache key (train() / eval() switch
    variants). cache_info(), explain(), last_source, ... are the CompiledFunction's.

    Under grad mode, parameters that require grad take part in torch.autograd
    (_torch_autograd.py): they become differentiated inputs of a compiled forward and
    backward and receive .grad. The first such call is detected by the refusal of the
    replay path (GradCaptureError); from then on each call checks grad mode first."""

    # CompiledModule[Net] in annotations evaluated at run time (generic in the stubs)
    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, module, static_argnames=(), max_variants=8, on_guard_limit="eager"):
        def forward(training, *args, **kwargs):
            return module(*args, **kwargs)

        mods = list(module.modules())
        forward.__tracejit_dicts__ = [m._parameters for m in mods] + [m._buffers for m in mods]
        forward.__name__ = forward.__qualname__ = f"{type(module).__name__}.forward"
        self.module = module
        self._static_argnames = tuple(static_argnames)
        self._cf = CompiledFunction(forward, (0,), self._static_argnames, max_variants,
                                    on_guard_limit)
        self._cf._tj_autograd = _torch_autograd.module_call   # to _RoutedModule below

    def __call__(self, *args, **kwargs):
        try:
            return self._cf(self.module.training, *args, **kwargs)
        except _GradCaptureError:
            # from now on a _RoutedModule (no check on this path: it is the no-grad one)
            self._autograd = _torch_autograd.ModuleRoute(self.module, self._static_argnames)
            self.__class__ = _RoutedModule
        return self._autograd(self._cf, *args, **kwargs)

    def explain(self, *args, **kwargs):
        return self._cf.explain(self.module.training, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cf, name)

    def __repr__(self):   # the CompiledFunction's counts: "2 variants (2 tcc), 5 hits, ..."
        counts = repr(self._cf).rsplit(": ", 1)[1]
        return f"<tracejit.CompiledModule of {type(self.module).__name__}: {counts}"


class _RoutedModule(CompiledModule):
    """A CompiledModule once autograd was needed: each call checks grad mode first."""

    def __call__(self, *args, **kwargs):
        return self._autograd(self._cf, *args, **kwargs)


def _compile_module(module, static_argnames=(), **limits):
    return CompiledModule(module, static_argnames, **limits)


def op_table():
    """The elementwise ops tracejit implements: name, numpy name, arity, loop dtypes."""
    return _C.op_table()


def libtcc_path():
    """Path of the libtcc that was loaded at import, or None if it could not be."""
    return _C.libtcc_path()


def get_num_threads():
    """Threads a large kernel is split across (TRACEJIT_NUM_THREADS, else the CPUs
    this process may run on)."""
    return _C.get_num_threads()


def set_num_threads(n):
    """Split large kernels across n threads from now on (1 runs them on the calling
    thread), and give the BLAS that matrix products call (NumPy's OpenBLAS, whose
    threads np.matmul shares) the same n: one thread budget, so the two never fight
    over the cores. Results are bit-identical whatever n is: only loops whose
    iterations write disjoint memory are split, never a reduced dimension."""
    _C.set_num_threads(n)


def set_tier(mode):
    """When kernels are recompiled by the system C compiler (the optimizing tier):
    'auto' (default) once a kernel proves hot, in a background thread; 'eager' at
    once, on the first call (for tests); 'tcc' never. TRACEJIT_TIER sets it too."""
    _C.set_tier(mode)


def export(f, *example_args, path, name=None, dynamic=None, weights="file"):
    """Write `f`, compiled for `example_args`, as a standalone C program (no Python, NumPy
    or tracejit) into the directory `path`: see tracejit._export.export."""
    from ._export import export as _export
    return _export(f, *example_args, path=path, name=name, dynamic=dynamic, weights=weights)


def save(f, path, *example_args):
    """Save `f`'s plan for `example_args` into the file `path` (a versioned format, no
    pickle): see tracejit._save."""
    from ._save import save as _save
    return _save(f, path, *example_args)


def load(path):
    """A function tracejit.save wrote, validated; it runs without the Python source (its
    program compiles at the first call): see tracejit._save."""
    from ._save import load as _load
    return _load(path)


def quantize_dynamic(model, qconfig_spec=None, dtype=None, inplace=False, **limits):
    """torch.ao.quantization.quantize_dynamic's signature: the model's nn.Linear layers with
    int8 weights (per output channel) and int8 activations (per row, at run time), compiled
    with an int8 GEMM: see tracejit._quant."""
    from ._quant import quantize_dynamic as _qd
    return _qd(model, qconfig_spec, dtype, inplace, **limits)
