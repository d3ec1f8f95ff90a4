"""Pickling compiled functions by reference (CompiledFunction.__reduce__ calls
reduce), so that they cross process boundaries: multiprocessing pools (fork,
spawn, forkserver), concurrent.futures, Dask and Ray workers. Nothing compiled
travels: the receiving process compiles on its first call.

- A compiled function bound in its module under its qualified name (the usual
  ``@tracejit.compile`` at module level) pickles as that global name.
- Otherwise it pickles as "compile this function" with the original function
  (which pickle references by its own module and name) and its static_argnames;
  loading it again in one process gives the same compiled function (one cache).
- Functions pickle cannot reference (lambdas, nested functions) fail with
  pickle's own PicklingError naming them.
"""
import sys

_rebuilt = {}


def _lookup(module, qualname):
    obj = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def reduce(cf, fn, static_argnames):
    module = getattr(cf, "__module__", None)
    qualname = getattr(cf, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname \
            and _lookup(module, qualname) is cf:
        return qualname
    limits = (getattr(cf, "_max_variants", 8), getattr(cf, "_on_guard_limit", "eager"))
    if limits == (8, "eager"):
        return rebuild, (fn, tuple(static_argnames))
    return rebuild, (fn, tuple(static_argnames)) + limits


def rebuild(fn, static_argnames, max_variants=8, on_guard_limit="eager"):
    """The compiled function of fn, one per process for each (fn, static_argnames) and
    guard limits."""
    from . import compile
    key = (fn, static_argnames, max_variants, on_guard_limit)
    opts = {"static_argnames": static_argnames, "max_variants": max_variants,
            "on_guard_limit": on_guard_limit}
    try:
        return _rebuilt[key]
    except KeyError:
        cf = _rebuilt[key] = compile(fn, **opts)
        return cf
    except TypeError:  # an unhashable callable
        return compile(fn, **opts)
