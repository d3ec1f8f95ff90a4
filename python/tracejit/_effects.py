"""What a trace cannot replay (python side; csrc/trace/effects.c and the in-place
operators of csrc/trace/tracer.c are the rest), and the guards of what it froze.

A traced function runs once; its compiled code replays the graph on every later call.
`call` below runs every trace (csrc/compile.c's tj_compile_plan) and keeps it faithful:

  * Random draws (until random numbers are ops of the graph) are refused with a
    TraceError naming them and the user's line: numpy.random's and random's public
    functions (np.random.default_rng excepted: seeded, it is a constant) and the
    entropy source of a new unseeded generator (random._urandom, which numpy's
    SeedSequence and SystemRandom read) are swapped for refusing wrappers while any
    trace runs (in C, so an interrupt cannot leave one behind; a wrapper refuses only
    on a tracing thread); torch's random functions and samplers are refused by name
    (_torch.refuse_random); a net catches every other path (a Generator's method, a
    function bound before tracing, torch.manual_seed) by comparing the states of the
    generators the function can reach before and after the trace.
  * Writes into arrays the function reads from outside (closure, globals, attributes
    of its object) are refused: those arrays are read-only while it is traced.
  * Python values read as constants (numbers and strings in the closure, the globals,
    attributes) become guards of the plan: a changed one retraces (`guards`).
"""
import functools
import itertools
import sys
import types

import numpy as np

from . import _C, _draws

_HINT = ("draws random numbers or uses a random generator in a way tracejit does not "
         "compile (it compiles the uniform, normal, exponential, integer, choice and "
         "location-scale draws of numpy.random, of Generator and RandomState objects and "
         "of torch, each fresh at every call): the draw would happen once, while tracing, "
         "and every later call would return the same numbers. Draw outside the compiled "
         "function and pass the numbers in as an argument")


def _refusing(label, orig):
    @functools.wraps(orig)
    def refuse(*args, **kwargs):
        if _C._tracing():
            _C._trace_error(f"{label} {_HINT}")
        return orig(*args, **kwargs)
    return refuse


def _targets():
    """(module, name, label) of every public entry point that draws or seeds."""
    import random
    # default_rng(seed) draws the same numbers at every call; default_rng() reads fresh
    # entropy, refused below
    out = [(np.random, n, f"numpy.random.{n}()") for n in np.random.__all__
           if n != "default_rng"]
    out += [(random, n, f"random.{n}()") for n in random.__all__]
    # fresh entropy: a new unseeded generator (np.random.default_rng() however it was
    # imported, SystemRandom, secrets) reads it here
    out.append((random, "_urandom", "a new unseeded random generator (fresh entropy)"))
    # classes stay (isinstance must keep working while tracing): a seeded generator made
    # inside the function draws the same numbers at every call, an unseeded one reads
    # fresh entropy, refused above
    return [(m, n, label) for m, n, label in out
            if callable(getattr(m, n, None)) and not isinstance(getattr(m, n), type)]


def _drawing(name, label, orig):
    """numpy.random.<name> while tracing: a draw of the graph (_draws.py), keyed from
    numpy's global generator at every call."""
    @functools.wraps(orig)
    def draw(*args, **kwargs):
        if _C._tracing():
            return _draws.numpy_global(name)(*args, **kwargs)
        return orig(*args, **kwargs)
    return draw


_MAKERS = ("zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like",
           "full_like", "arange", "linspace", "array")


def _making(orig):
    """numpy.zeros (ones, empty, full and their _like forms of a NumPy array; arange,
    linspace, and array of constants where it makes a new array) as the
    traced function's own code names them (_stand_in swaps its global `np` for a
    _NumPy and its global `zeros` for this): NumPy's new array as a captured leaf of
    the trace, its own (never written back), so writes of traced values into it are
    traced like any (`out = np.zeros(n); out[1:] = x[:-1]`, refused before); constants
    written before anything reads it go into the array itself (csrc/trace/write.c,
    write_made_now). Libraries' calls (Cython's np.empty in numpy.random, which must get
    an ndarray) are NumPy's: their module's numpy is not swapped."""
    @functools.wraps(orig)
    def make(*args, **kwargs):
        if not _C._tracing():
            return orig(*args, **kwargs)
        fill = args[1] if orig.__name__ == "full" and len(args) > 1 else \
            args[1] if orig.__name__ == "full_like" and len(args) > 1 else \
            kwargs.get("fill_value")
        if isinstance(fill, _C.Tracer):
            return _fill_traced(orig, args, kwargs, fill)
        a = orig(*args, **kwargs)                # NumPy's array
        if type(a) is not np.ndarray:
            return a
        if any(isinstance(x, np.ndarray) and np.may_share_memory(a, x)
               for x in (*args, *kwargs.values())):
            return a                             # np.array(x, copy=False): x itself
        try:
            tr = _C._capture(a)
        except TypeError:                        # a dtype tracejit lacks
            return a
        _C._note_made(a)                         # the trace's own: never written back
        return tr
    return make


class _NumPy:
    """numpy as the traced function's globals name it while it is traced: numpy's own
    attributes, the array factories _making's."""
    def __init__(self):
        self.__dict__.update({n: _making(getattr(np, n)) for n in _MAKERS})

    def __getattr__(self, name):
        return getattr(np, name)

    def __repr__(self):
        return repr(np)


_NUMPY = _NumPy()


def _fill_traced(orig, args, kwargs, fill):
    """np.full(shape, x) / np.full_like(a, x) of a traced x: x broadcast, a fresh copy."""
    kw = dict(kwargs)
    kw.pop("fill_value", None)
    dtype = kw.get("dtype", args[2] if len(args) > 2 else None)
    if orig.__name__ == "full":
        shape = args[0] if args else kw["shape"]
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        dtype = fill.dtype if dtype is None else np.dtype(dtype)
    else:
        proto = np.asarray(args[0]) if not isinstance(args[0], _C.Tracer) else args[0]
        shape = kw.get("shape") or proto.shape
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        dtype = proto.dtype if dtype is None else np.dtype(dtype)
    return np.broadcast_to(fill.astype(dtype), shape).copy()


def _swaps():
    global _MT_BYTES
    _MT_BYTES = _mt_bytes_ok()
    return [[m, n, _drawing(n, label, getattr(m, n)) if m is np.random and
             _draws.numpy_global(n, check=True) else _refusing(label, getattr(m, n))]
            for m, n, label in _targets()]


def register():
    """The wrappers, made at the first trace (numpy.random is imported then, not with
    tracejit) and swapped in by csrc/trace/effects.c around every traced call."""
    _C._register_effects(_swaps)


# ---- the net: generator states before and after --------------------------------

def _mt_bytes_ok():
    """Whether MT19937's C state reads as numpy documents its dict (key[624], pos):
    then a snapshot copies those 2500 bytes (0.5 us) instead of building the dict
    (36 us, twice per trace)."""
    import ctypes
    try:
        bg = np.random.MT19937(12345)
        raw = ctypes.string_at(bg.ctypes.state_address, 2500)
        st = bg.state["state"]
        return (raw[:2496] == st["key"].astype("<u4").tobytes() and
                int.from_bytes(raw[2496:], sys.byteorder) == st["pos"])
    except Exception:       # another layout or no ctypes view: use the dict
        return False


_MT_BYTES = False          # set by _swaps, at the first trace


def _bit_state(bg):
    if _MT_BYTES and type(bg) is np.random.MT19937:
        import ctypes
        return ctypes.string_at(bg.ctypes.state_address, 2500)
    return _freeze(bg.state)


def _state(g):
    """A comparable snapshot of generator g's state, or None for another object."""
    if isinstance(g, np.random.Generator):
        return _bit_state(g.bit_generator)
    if isinstance(g, np.random.RandomState):
        return _bit_state(g._bit_generator)
    if isinstance(g, np.random.BitGenerator):
        return _bit_state(g)
    import random
    if isinstance(g, random.Random) and not isinstance(g, random.SystemRandom):
        return g.getstate()
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(g, torch.Generator) and g.device.type == "cpu":
        return bytes(g.get_state().numpy())
    return None


def _freeze(s):
    if isinstance(s, dict):
        return tuple((k, _freeze(v)) for k, v in s.items())
    if isinstance(s, np.ndarray):
        return s.tobytes()
    return s


def _candidates(fn, args, kwargs):
    """(description, object) pairs of what fn can reach that may be a generator."""
    import random
    yield "numpy.random's global generator", np.random.mtrand._rand
    yield "random's global generator", random._inst
    torch = sys.modules.get("torch")
    if torch is not None:
        yield "torch's default generator", torch.default_generator
    for obj in (fn, getattr(fn, "__wrapped__", None)):
        if obj is None:
            continue
        owner = getattr(obj, "__self__", None)
        if owner is not None:
            yield from _members("an attribute of the bound object", owner)
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                v = cell.cell_contents
            except ValueError:          # an empty cell
                continue
            yield "a variable of its closure", v
            yield from _members("an attribute of a closure variable", v)
        for name, v in (getattr(obj, "__globals__", None) or {}).items():
            yield f"the global {name!r}", v
    leaves = list(args) + list((kwargs or {}).values())
    for v in leaves:
        yield "an argument", v
        if isinstance(v, (list, tuple)):
            for w in v:
                yield "an argument", w


def _members(label, obj):
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict) and not isinstance(obj, type):
        for v in d.values():
            yield label, v


def _with_contents(pairs):
    """Each (label, object), then the items of a list, tuple or dict object (a generator
    kept in a container is reached too)."""
    for label, obj in pairs:
        yield label, obj
        if isinstance(obj, (list, tuple)):
            for v in obj[:64]:
                yield label, v
        elif isinstance(obj, dict) and len(obj) <= 64:
            for v in obj.values():
                yield label, v


def _snapshot(fn, args, kwargs):
    seen, out = set(), []
    for label, obj in _with_contents(_candidates(fn, args, kwargs)):
        if id(obj) in seen or isinstance(obj, (int, float, str, np.ndarray)):
            continue
        seen.add(id(obj))
        s = _state(obj)
        if s is not None:
            out.append((label, obj, s))
    return out


def _check(fn, before):
    for label, obj, s in before:
        if _state(obj) != s:
            name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
            code = getattr(getattr(fn, "__wrapped__", fn), "__code__", None)
            where = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
            _C._trace_error(
                f"tracing {name}{where} changed the state of {label} ({type(obj).__name__}): "
                f"the function {_HINT}")


# ---- the one entry -------------------------------------------------------------

def _lock_arrays(fn, args=(), kwargs=None):
    """Makes the NumPy arrays fn reads from outside (_reach, and its static arguments'
    attributes) read-only while it is traced: a write into one (counter[0] += 1) would
    happen once, while tracing, and never on the calls the compiled code replays.
    Returns [(label, array)] to unlock."""
    locked = []
    for kind, label, box, key, v in itertools.chain(_reach(fn), _reach_args(args, kwargs)):
        if type(v) is np.ndarray and v.flags.writeable:
            v.flags.writeable = False
            locked.append((label, v))
    return locked


def _unlock(locked):
    """A view is writeable again only once its base is: views after their bases (a
    global u = U[1:-1] locked before U)."""
    pending = [v for _, v in locked]
    while pending:
        later = []
        for v in pending:
            try:
                v.flags.writeable = True
            except ValueError:
                later.append(v)
        if len(later) == len(pending):
            raise later[0].flags.__setattr__("writeable", True)   # its own error
        pending = later


def _write_refusal(err, locked):
    """A TraceError for numpy's read-only error on a locked array, else None."""
    if not locked or "read-only" not in str(err):
        return None
    import traceback
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.startswith(_C._skip_dirs())]
    where = f"\n  at {frames[-1].filename}:{frames[-1].lineno}, in {frames[-1].name}\n" \
            f"    {frames[-1].line}" if frames else ""
    names = ", ".join(label for label, _ in locked)
    return _C.TraceError(
        f"a write into an array the function reads from outside ({names}) cannot be traced: "
        f"it would happen once, while tracing, and not on later calls. Return the new "
        f"value instead, or pass the array in and return its update{where}")


# ---- guards: Python values the trace read as constants ---------------------------

_SIMPLE = (int, float, complex, str, bytes, bool, type(None))


def _simple(v):
    return type(v) in _SIMPLE or (type(v) is tuple and len(v) < 16 and all(map(_simple, v)))


def _is_array(v):
    torch = sys.modules.get("torch")
    return type(v) is np.ndarray or (torch is not None and isinstance(v, torch.Tensor))


def _is_module(v):
    return any(c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module"
               for c in type(v).__mro__)


def _code_names(code, out):
    out.update(code.co_names)
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            _code_names(c, out)
    return out


def _reach(fn):
    """(kind, label, box, key, value) for each value fn reads from outside without
    arguments: its closure cells (kind "cell", key None), the globals its code names,
    nested code included ("global": box is the globals dict), the attributes of the
    object it is bound to and of a compiled module's submodules ("attr": box is the
    object's __dict__), and of plain objects held in closures, globals and attributes
    (h.cfg.scale, two levels below the first); functions and modules held in closures,
    and __wrapped__, are followed three levels deep. The read-only lock and the guards both walk it."""
    seen = set()

    def attrs(obj, owner, level=0):
        d = getattr(obj, "__dict__", None)
        if isinstance(d, dict) and not isinstance(obj, type):
            for k, v in list(d.items()):
                label = f"the attribute {k!r} of {owner}"
                yield "attr", label, d, k, v
                if level < 2 and id(v) not in seen and _plain_object(v):   # h.cfg.scale
                    seen.add(id(v))
                    yield from attrs(v, label, level + 1)

    def visit(obj, depth):
        if id(obj) in seen or depth > 3:
            return
        seen.add(id(obj))
        if _is_module(obj):
            for name, m in obj.named_modules():
                yield from attrs(m, type(m).__name__ + (f" ({name})" if name else ""))
            return
        owner = getattr(obj, "__self__", None)
        if owner is not None and not isinstance(owner, type(sys)):
            yield from attrs(owner, "the bound object")
            if _is_module(owner):
                yield from visit(owner, depth + 1)
            obj = getattr(obj, "__func__", obj)
        code = getattr(obj, "__code__", None)
        if code is None:
            return
        for name, cell in zip(code.co_freevars, getattr(obj, "__closure__", None) or ()):
            try:
                v = cell.cell_contents
            except ValueError:          # an empty cell
                continue
            yield "cell", f"the closure variable {name!r}", cell, None, v
            if callable(v) or _is_module(v):
                yield from visit(v, depth + 1)
            elif _plain_object(v):      # h.buf, h.scale: read as constants while tracing
                yield from attrs(v, f"the closure variable {name!r}")
        g = getattr(obj, "__globals__", None) or {}
        for name in _code_names(code, set()):
            if name in g:
                yield "global", f"the global {name!r}", g, name, g[name]
                if _plain_object(g[name]):
                    yield from attrs(g[name], f"the global {name!r}")
                elif isinstance(g[name], types.FunctionType):   # a helper it calls
                    yield from visit(g[name], depth + 1)
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:
            yield from visit(wrapped, depth + 1)

    return visit(fn, 0)


def _plain_object(v):
    """An instance holding its state in attributes (a config, a holder of arrays): not
    a function, class, module, generator, array or tracer."""
    d = getattr(v, "__dict__", None)
    return (isinstance(d, dict) and not callable(v) and not isinstance(v, (type, type(sys))) and
            not _is_module(v) and not _is_array(v) and not _is_generator(v) and
            not isinstance(v, _C.Tracer))


def _torch_internal(d, key):
    """A private attribute of an nn.Module (its dict has _parameters): torch's own
    bookkeeping (hooks, flags), not a value forward reads; a private attribute of any
    other object (self._scale) is guarded as a public one is."""
    return key.startswith("__") or (key.startswith("_") and "_parameters" in d)


def _reach_args(args, kwargs):
    """("arg", label, box, key, value) for the attributes of the objects fn is given that
    are no arrays or numbers (a static argument: keyed by identity or equality, so the
    trace may have read its attributes as constants: p.w, p.scale), one level into
    lists, tuples and dicts."""
    def objects():
        for i, v in enumerate(args):
            yield f"argument {i}", v
        for k, v in (kwargs or {}).items():
            yield f"argument {k!r}", v

    for where, v in objects():
        items = [v]
        if isinstance(v, (list, tuple)):
            items += list(v[:64])
        elif isinstance(v, dict) and len(v) <= 64:
            items += list(v.values())
        for obj in items:
            d = getattr(obj, "__dict__", None)
            if (not isinstance(d, dict) or isinstance(obj, (type, type(sys))) or
                    callable(obj) or isinstance(obj, _C.Tracer) or _is_module(obj)):
                continue
            for k, a in list(d.items()):
                if not k.startswith("__"):
                    yield ("arg", f"the attribute {k!r} of {where} ({type(obj).__name__})",
                           d, k, a)


def _called_args(args, kwargs):
    """The functions and modules among fn's arguments (static: keyed by identity), one
    level into lists, tuples and dicts: fn may call them (Pyro's ELBOs call the model
    and guide they are given), so what they read is reached as fn's own reads are."""
    out = []
    for v in list(args) + list((kwargs or {}).values()):
        items = [v]
        if isinstance(v, (list, tuple)):
            items += list(v[:64])
        elif isinstance(v, dict) and len(v) <= 64:
            items += list(v.values())
        out += [o for o in items if isinstance(o, (types.FunctionType, types.MethodType)) or
                _is_module(o)]
    return tuple(out)


def guards(fn, args=(), kwargs=None, stood=()):
    """(container, key, value, label[, contents]) for the Python values fn may have read
    as constants of its trace (_reach, and the attributes of its static arguments,
    _reach_args): numbers, strings and tuples of them, generators, and NumPy arrays
    with their contents' bytes (one level into the lists, tuples and dicts that
    hold them). An array fn reads from outside is a leaf of the trace where it meets a
    traced value, but NumPy code on it alone (`G.sum()`, `table[3]`) runs while
    tracing and its result is a constant: the replay (csrc/guards.c) checks that the
    object is the same and its contents too; a change retraces, where the compiled
    code would keep the old values. The arrays _stand_in traced (stood) are read at
    every call: their identity is guarded, not their contents."""
    out, traced = [], {(id(box), key) for _, box, key, _, _ in stood}
    for f in (fn,) + _called_args(args, kwargs):
        for kind, label, box, key, v in _reach(f):
            if kind == "attr" and _torch_internal(box, key):
                continue
            if (id(box), key) in traced:  # traced (_stand_in): the same array, any contents
                if type(v) is np.ndarray:
                    out.append((box, key, v, label))
                continue
            if _simple(v) or _is_generator(v) or (_is_array(v) and kind == "attr"):
                out.append((box, key, v, label) + _contents(v))
            elif type(v) is np.ndarray:
                out.append((box, key, v, label, _array_bytes(v)))
            else:
                out.extend(_held_arrays(v, label, traced))
    for kind, label, box, key, v in _reach_args(args, kwargs):
        if (id(box), key) in traced:
            out.append((box, key, v, label))
        elif _simple(v) or _is_array(v) or _is_generator(v):
            out.append((box, key, v, label) + _contents(v))
        else:
            out.extend(_held_arrays(v, label, traced))
    return tuple(out) or None


def _array_bytes(a):
    return a.tobytes()


def _contents(v):
    """(its bytes,) for a NumPy array, () for anything else (torch tensors: the trace
    reads them through its mode, never as constants)."""
    return (_array_bytes(v),) if type(v) is np.ndarray else ()


def _held_arrays(v, label, traced=()):
    """Guards for the NumPy arrays a list, tuple or dict holds (params = {"w": W}): their
    contents too, unless the trace read them as tracers (traced: (id(v), key)); and for
    the numbers and strings a list or dict holds (FLAGS[0], cfg["n"]: read as constants
    while tracing, and the container may change them after)."""
    if isinstance(v, (list, tuple)) and len(v) <= 64:
        items = enumerate(v)
    elif isinstance(v, dict) and len(v) <= 64:
        items = v.items()
    else:
        return []
    out = []
    for k, a in items:
        if type(a) is np.ndarray:
            out.append((v, k, a, f"{label}[{k!r}]")
                       + (() if (id(v), k) in traced else (_array_bytes(a),)))
        elif _simple(a) and not isinstance(v, tuple):
            out.append((v, k, a, f"{label}[{k!r}]"))
    return out


def _is_generator(v):
    return isinstance(v, (np.random.Generator, np.random.RandomState))


def _swap_generators(fn, args, kwargs):
    """NumPy Generator and RandomState objects fn is given or reads from outside, swapped
    for stand-ins whose methods draw in the graph (_draws.numpy_generator) while it is
    traced. Returns (args, kwargs, [(box, key, original)] to restore)."""
    if any(map(_is_generator, args)):
        args = tuple(_draws.numpy_generator(a) if _is_generator(a) else a for a in args)
    if kwargs and any(map(_is_generator, kwargs.values())):
        kwargs = {k: _draws.numpy_generator(v) if _is_generator(v) else v
                  for k, v in kwargs.items()}
    swapped = []
    for kind, label, box, key, v in _reach(fn):
        if _is_generator(v):
            proxy = _draws.numpy_generator(v)
            if kind == "cell":
                box.cell_contents = proxy
            else:
                box[key] = proxy
            swapped.append((kind, box, key, v))
    return args, kwargs, swapped


def _restore(swapped):
    for kind, box, key, v in reversed(swapped):
        if kind == "cell":
            box.cell_contents = v
        else:
            box[key] = v


def call(fn, args, kwargs, torch_trace, stand_in=True):
    """Runs fn(*args, **kwargs) on tracers (csrc/compile.c's tj_compile_plan, which swaps
    the refusing wrappers in around it), checks the generators' states after, and
    returns (result, the guards of its plan). stand_in: the NumPy arrays fn reads from
    outside are traced too (_stand_in); where fn then raises, the exception, returned:
    compile.c traces it again without (code that needs a real ndarray, an operation
    tracejit lacks), and raises it if that fails too and it is a TraceError."""
    before = _snapshot(fn, args, kwargs)
    locked = _lock_arrays(fn, args, kwargs)
    targs, tkwargs, swapped = _swap_generators(fn, args, kwargs)
    stood = _stand_in(fn, args, kwargs, {id(v) for _, v in locked}) \
        if stand_in and not torch_trace else []
    try:
        if torch_trace:
            from . import _torch
            result = _torch.call_traced(fn, targs, tkwargs)
        else:
            result = fn(*targs, **(tkwargs or {}))
    except Exception as e:
        if stood:          # compile.c traces again, NumPy's arrays NumPy's
            return e
        refusal = _write_refusal(e, locked) if isinstance(e, ValueError) else None
        if refusal is None:
            raise
        raise refusal from None
    finally:
        rebound = _stand_down(stood)
        _restore(swapped)
        _unlock(locked)
    if rebound:
        _C._trace_error(
            f"the traced function rebinds {', '.join(rebound)}, an array it reads from "
            f"outside, to a new value: that would happen once, while tracing. Write into "
            f"it in place (W[...] = ...) or return the new array")
    _check(fn, before)
    return _numpy_back(result), guards(fn, args, kwargs, stood)


def _numpy_back(result):
    """The result with _NUMPY (numpy as _stand_in swapped it in) as numpy again."""
    if result is _NUMPY:
        return np
    if type(result) in (tuple, list):
        return type(result)(map(_numpy_back, result)) if any(
            r is _NUMPY or type(r) in (tuple, list, dict) for r in result) else result
    if type(result) is dict:
        return {k: _numpy_back(v) for k, v in result.items()}
    return result


# ---- arrays from outside, traced ------------------------------------------------

def _outside_arrays(fn, args, kwargs):
    """(kind, label, box, key, array) for the NumPy arrays fn reads from outside: _reach
    and _reach_args, and one level into the lists and dicts they hold (params[0])."""
    for kind, label, box, key, v in itertools.chain(_reach(fn), _reach_args(args, kwargs)):
        if kind == "attr" and _torch_internal(box, key):
            continue
        if type(v) is np.ndarray:
            yield kind, label, box, key, v
        elif type(v) is list and len(v) <= 64:
            for i, a in enumerate(v):
                if type(a) is np.ndarray:
                    yield "item", f"{label}[{i}]", v, i, a
        elif type(v) is dict and len(v) <= 64:
            for k, a in v.items():
                if type(a) is np.ndarray:
                    yield "item", f"{label}[{k!r}]", v, k, a


def _stand_in(fn, args, kwargs, writeable=None):
    """Swaps each NumPy array fn reads from outside for its captured leaf, a tracer
    (_C._capture), while fn is traced: NumPy code on it alone (`(W**2).sum()`,
    `W / np.linalg.norm(W)`) is traced with the rest and reads the array's contents at
    every call, where it would otherwise have been a constant of the trace (kept only
    while the contents stay the same: guards). An array of a dtype tracejit lacks stays
    NumPy's. writeable: the ids of those the user left writeable (_lock_arrays made
    them read-only while tracing). Returns [(kind, box, key, array, tracer)] for
    _stand_down."""
    stood, tracers = [], {}
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    names = _code_names(code, set()) if code is not None else set(_MAKERS)
    wrapped = getattr(getattr(fn, "__wrapped__", None), "__code__", None)
    if wrapped is not None:   # (a wrapper's, as _complex.call's: the function's names)
        names |= _code_names(wrapped, set())
    for kind, label, box, key, v in list(_reach(fn)) if names.intersection(_MAKERS) else ():
        if kind in ("global", "cell") and (v is np or any(v is getattr(np, n) for n in _MAKERS)):
            tr = _NUMPY if v is np else _NUMPY.__dict__[v.__name__]
            if kind == "cell":
                box.cell_contents = tr
            else:
                box[key] = tr
            stood.append((kind, box, key, v, tr))
    outside = list(_outside_arrays(fn, args, kwargs))
    within = _views_within([v for *_, v in outside], writeable)
    for kind, label, box, key, v in sorted(outside, key=lambda e: id(e[4]) in within):
        tr = tracers.get(id(v))
        if tr is None and id(v) in within:    # a view of another: that one's tracer's
            base, index = within[id(v)]
            tr = tracers.get(id(base))
            tr = tracers[id(v)] = tr[index] if tr is not None else None
        if tr is None:
            try:
                tr = tracers[id(v)] = _C._capture(v)
            except TypeError:
                continue
        if kind == "cell":
            box.cell_contents = tr
        else:
            box[key] = tr
        stood.append((kind, box, key, v, tr))
    return stood


def _views_within(arrays, writeable=None):
    """{id(v): (b, key)} for each array v of `arrays` that is exactly b[key], a basic
    view of another array b of them of its dtype (the book's Gray-Scott reads U and its
    interior u = U[1:-1, 1:-1]): v stands in as b's tracer indexed by key, so a write
    through either is seen through the other as in eager. b is one that lies in no
    other (the outermost; of two views of the same elements, the first); the identity
    of both is guarded (guards: a rebound global retraces). A view writeable where b
    is not, or the other way, stays a capture of its own (the replay's write check
    reads each one's flag; writeable: the ids of the writeable ones, None: all are)."""
    inside = {}
    w = (lambda a: id(a) in writeable) if writeable is not None else (lambda a: True)
    for i, v in enumerate(arrays):
        for j, b in enumerate(arrays):
            if b is not v and b.dtype == v.dtype and w(b) == w(v) and np.shares_memory(b, v):
                key = _basic_key(b, v)
                if key is not None and not (j > i and _basic_key(v, b) is not None):
                    inside.setdefault(id(v), []).append((b, key))
    return {i: next((b, key) for b, key in within if id(b) not in inside)
            for i, within in inside.items()
            if any(id(b) not in inside for b, _ in within)}


def _basic_key(b, v):
    """The tuple of slices with b[key] the same memory, shape and strides as v (same
    ndim; b's strides non-negative), or None."""
    if v.ndim != b.ndim or v.size == 0 or any(s < 0 for s in b.strides):
        return None
    off = v.__array_interface__["data"][0] - b.__array_interface__["data"][0]
    start = [0] * b.ndim
    for d in sorted(range(b.ndim), key=lambda d: -b.strides[d]):
        if b.strides[d] and b.shape[d] > 1:
            start[d], off = divmod(off, b.strides[d])
    if off:
        return None
    key = []
    for d in range(b.ndim):
        step = 1 if v.shape[d] == 1 else v.strides[d] // b.strides[d] if b.strides[d] else 0
        if not step or (v.shape[d] > 1 and step * b.strides[d] != v.strides[d]):
            return None
        stop = start[d] + step * v.shape[d]
        key.append(slice(start[d], None if stop < 0 else stop, step))
    key = tuple(key)
    w = b[key]
    same = (w.__array_interface__["data"][0] == v.__array_interface__["data"][0] and
            w.shape == v.shape and all(n <= 1 or s == t for n, s, t in
                                       zip(v.shape, w.strides, v.strides)))
    return key if same else None


def _stand_down(stood):
    """Puts the arrays _stand_in swapped back; returns the labels of those fn rebound
    (a global assigned a new array: not an in-place write, which keeps the tracer)."""
    rebound = []
    for kind, box, key, v, tr in reversed(stood):
        now = box.cell_contents if kind == "cell" else box.get(key) if isinstance(box, dict) \
            else box[key] if key < len(box) else None
        if now is not tr and now is not v:
            rebound.append(f"the global {key!r}" if kind == "global" else
                           f"the closure variable" if kind == "cell" else repr(key))
        if kind == "cell":
            box.cell_contents = v
        elif isinstance(box, dict) or key < len(box):
            box[key] = v
    return rebound
