"""Reverse-mode autodiff on the traced graph: grad and value_and_grad.

`grad(f)` is a CompiledFunction whose traced body marks the differentiated arguments
as sources (_C._ad_source), traces `f`, then walks the graph backwards from the result
and appends the adjoint nodes (rules in _rules.py). So:
  * called with arrays, forward and backward are one graph: the passes fuse across
    the boundary, the memory plan decides what lives in scratch, and the compiled
    plan is cached per argument signature like any compiled function;
  * called with tracers (inside @compile or inside another grad), the body traces
    inline into the caller's graph: grad(grad(f)) and grad inside @compile work by
    construction, because the backward nodes are ordinary differentiable nodes.

Semantics follow jax.grad: argnums an int or a tuple of ints; each differentiated
argument may be a pytree (tracejit's containers: tuple, list, dict, None, namedtuple,
structseq, OrderedDict, defaultdict; csrc/pytree.c) of float arrays or Python floats;
integer and bool inputs raise TypeError; the result must be a float scalar (a
TraceError names the shape otherwise).
"""
import inspect
import threading
import weakref

import numpy as np

from . import _C, _draws
from ._C import TraceError, Tracer
from ._rules import NONDIFF, RULES, ZERO, Product, np_dtype

__all__ = ["grad", "value_and_grad", "vjp", "vjp_trace"]


# ---- pytrees ------------------------------------------------------------------
# One container rule for C and Python (csrc/pytree.c): tuple, list, dict, None,
# namedtuple, structseq, OrderedDict, defaultdict; each rebuilt as its own type.
_leaves = _C.tree_leaves
_flatten = _C.tree_flatten


# ---- the backward walk ----------------------------------------------------------

def _dtype_kind(dt):
    """NumPy's kind letter of a NumPy or torch dtype (a torch trace's tracers report
    torch dtypes)."""
    kind = getattr(dt, "kind", None)
    if kind is None and dt is not None:
        kind = "f" if getattr(dt, "is_floating_point", False) else "i"
    return kind


def _is_float(t):
    return _dtype_kind(t.dtype) == "f"


def _base_order(node, ndim):
    """For x a VIEW that only transposes its operand and adds new dims (matmul's
    operands), the operand dim each of x's dims reads (-1 new); else None."""
    if node is None or node[1] != "VIEW" or node[4]:
        return None
    perm, vstep, voff = node[5], node[6], node[7]
    read = [p for p in perm if p != -1]
    if (len(perm) != ndim or len(set(read)) != len(read) or any(o != 0 for o in voff) or
            any(s != 1 for p, s in zip(perm, vstep) if p != -1)):
        return None
    return list(perm)


def _sum_product(c, shape, base=None):
    """c.p * c.q summed to `shape` over the trailing dims of a transposed view. With
    `base` (see _base_order), the kept dims are summed in the order of the operand x
    views, and the result is that layout seen through x's transposition: the view's own
    derivative transposes it back, so a weight's gradient is the contraction's result
    itself, not a transposed copy of it."""
    p, q = c.p, c.q
    full = np.broadcast_shapes(p.shape, q.shape)
    lead = len(full) - len(shape)
    summed = [d for d in range(len(full))
              if d < lead or (shape[d - lead] == 1 and full[d] != 1)]
    if not summed:
        return p * q
    kept = [d for d in range(len(full)) if d not in summed]
    if base is not None:
        kept.sort(key=lambda d: base[d - lead])
    order = kept + summed
    p = np.transpose(np.broadcast_to(p, full), order)
    q = np.transpose(np.broadcast_to(q, full), order)
    s = np.sum(p * q, axis=tuple(range(len(kept), len(full))))
    if base is None:
        return s.reshape(shape)
    s = np.transpose(s, np.argsort(kept))   # x's dim order (a view)
    ones = tuple(d - lead for d in summed if d >= lead)
    return np.expand_dims(s, ones) if ones else s


def _fit(c, x, node=None):
    """Cotangent c summed back to x's shape and cast to x's dtype (node: x's own, when
    known, for _sum_product's layout)."""
    shape = x.shape
    if isinstance(c, Product):
        c = _sum_product(c, shape, _base_order(node, len(shape)))
    if c.shape != shape:
        lead = c.ndim - len(shape)
        if lead > 0:
            c = np.sum(c, axis=tuple(range(lead)))
        ones = tuple(d for d, n in enumerate(shape) if n == 1 and c.shape[d] != 1)
        if ones:
            c = np.sum(c, axis=ones, keepdims=True)
        if c.shape != shape:
            c = np.broadcast_to(c, shape)
    dt = np_dtype(x)
    if np_dtype(c) != dt:
        c = c.astype(dt)
    return c


def _detached(info):
    """A COPY made by a detach (_C._ad_detach, torch's Tensor.detach): the walk stops there."""
    return info[1] == "COPY" and info[3] == _C._AD_DETACH


def _walk(out, src_ids):
    """The part of out's graph between the source nodes `src_ids` and out: (nodes: id ->
    _ad_node info, tracer_of: id -> a Tracer of it, live: id -> whether it depends on a
    source through float values and differentiable ops, no detach (torch's requires_grad:
    bool and integer results never do), reached: the live ids on a path from out that
    autograd follows, sources included)."""
    lo = min(src_ids)
    root = _C._ad_node(out)
    nodes, tracer_of = {}, {root[0]: out}
    stack = [root[0]]
    while stack:
        i = stack.pop()
        if i in nodes:
            continue
        info = _loop_node(root if i == root[0] else _C._ad_node(out, i), tracer_of[i])
        nodes[i] = info
        if i in src_ids or _detached(info):
            continue
        for j, t in info[2]:
            if j >= lo and j not in nodes:
                tracer_of.setdefault(j, t)
                stack.append(j)
    srcset = set(src_ids)
    live = {}
    for i in sorted(nodes):
        info = nodes[i]
        live[i] = i in srcset or (
            info[1] not in NONDIFF and not _detached(info) and _is_float(tracer_of[i]) and
            any(live.get(j, False) for j, _ in info[2]))
    reached = {root[0]} if live[root[0]] else set()
    for i in sorted(nodes, reverse=True):
        if i in reached and i not in srcset:
            reached.update(j for j, _ in nodes[i][2] if live.get(j, False))
    return nodes, tracer_of, live, reached


def _loop_node(info, tracer):
    """A compiled loop's result (a leaf of the graph): (id, "LOOP", the loop's operands,
    its _C._loop_info), so that the walk follows the loop to what it reads."""
    if info[1] != "INPUT" or (li := _C._loop_info(tracer)) is None:
        return info
    return (info[0], "LOOP", [(_C._ad_node(t)[0], t) for t in li[2]], li)


def _depends(out, sources):
    """For each source (a Tracer of out's trace), whether `out` (anything: False unless
    a Tracer) depends on it along a path autograd follows (see vjp_trace)."""
    if not isinstance(out, Tracer):
        return [False] * len(sources)
    ids = [_C._ad_node(s)[0] for s in sources]
    reached = _walk(out, ids)[3]
    return [i in reached for i in ids]


def with_dependencies(fun, diff, *rest):
    """(fun(diff, *rest), deps): deps gives, per leaf of the result, the positions in the
    list `diff` of the leaves it depends on along a path autograd follows, known when
    traced. The leaves of diff are marked as grad marks its sources (linked copies, the
    nesting depth raised), so that a grad inside `fun` is seen to depend on them; the
    copies cost nothing once traced (simplify forwards them)."""
    anchor = next((v for v in diff if isinstance(v, Tracer)), None)
    if anchor is None:   # nothing traced to depend on
        out = fun(diff, *rest)
        return out, tuple(() for _ in _leaves(out))
    depth = getattr(_nesting, "depth", 0)
    sources = [_C._ad_source(anchor, v, True) for v in diff]
    _nesting.depth = depth + 1
    _push_sources(sources)
    try:
        out = fun(sources, *rest)
    finally:
        _nesting.depth = depth
        _nesting.sources.pop()
    return out, tuple(tuple(k for k, d in enumerate(_depends(o, sources)) if d)
                      for o in _leaves(out))


def vjp_trace(out, ct, sources, values=None):
    """Cotangents of `sources` (Tracers) for cotangent `ct` of `out`, all of one trace;
    None where `out` does not depend on a source along a path autograd follows (float
    values, differentiable ops, no detach): torch's None gradient. A source on such a
    path gets an array even where the ops along it have derivative zero (floor, w * 0),
    as torch gives a zero gradient there. values: {node id: a Tracer of the same value}
    that the rules read as that node's result (a compiled loop's backward: what the
    forward stored)."""
    src_ids = [_C._ad_node(s)[0] for s in sources]
    nodes, tracer_of, live, reached = _walk(out, src_ids)
    srcset = set(src_ids)
    adj = {_C._ad_node(out)[0]: ct}
    loops_done = set()
    for i in sorted(reached - srcset, reverse=True):   # operands after their users
        info = nodes[i]
        if info[1] == "LOOP":   # all its results' cotangents at its last one reached
            res_ids = [_C._ad_node(t)[0] for t in info[3][1]]
            gs = [adj.pop(j, None) for j in res_ids]
            if res_ids[0] in loops_done or all(g is None for g in gs):
                continue
            loops_done.add(res_ids[0])
            from . import _loops
            cts = _loops.backward(info[3], gs, [live.get(j, False) for j, _ in info[2]])
        else:
            g = adj.pop(i, None)
            if g is None or info[1] in ZERO:
                continue
            y = values.get(i, tracer_of[i]) if values else tracer_of[i]
            cts = RULES[info[1]](g, y, [t for _, t in info[2]], info)
        for (j, x), c in zip(info[2], cts):
            if c is None or not live.get(j, False) or not _is_float(x):
                continue
            c = _fit(c, x, nodes.get(j))
            prev = adj.get(j)
            adj[j] = c if prev is None else prev + c
    return [adj[i] if i in adj else np.zeros_like(s) if i in reached else None
            for i, s in zip(src_ids, sources)]


# ---- grad and value_and_grad ----------------------------------------------------

class NotScalarError(TraceError):
    """The differentiated function's result is not a float scalar (a TraceError)."""


_nesting = threading.local()   # .depth: grad bodies being traced on this thread;
                               # .sources: a list per body, its differentiated Tracers


def _push_sources(sources):
    if not hasattr(_nesting, "sources"):
        _nesting.sources = []
    _nesting.sources.append(list(sources))


def _current_sources():
    """The Tracers every grad body being traced on this thread differentiates with
    respect to (what a compiled loop or a while_loop checks its operands against)."""
    return [s for group in getattr(_nesting, "sources", ()) for s in group]


def _check_argnums(argnums, nargs):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums or not all(isinstance(k, int) for k in nums):
        raise TypeError(f"argnums must be an int or a non-empty tuple of ints, got {argnums!r}")
    fixed = []
    for k in nums:
        if not -nargs <= k < nargs:
            raise ValueError(f"argnums {argnums!r}: the function was called with {nargs} "
                             f"positional argument(s)")
        fixed.append(k % nargs)
    return fixed


def _dtype_name(v):
    dt = getattr(v, "dtype", None)
    return str(dt) if dt is not None else type(v).__name__


def _static_positions(fun, static_argnames):
    """Positional indices of the parameters named static (as tracejit.compile does)."""
    if isinstance(static_argnames, str):
        static_argnames = (static_argnames,)
    static_argnames = tuple(static_argnames)
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params]
    for n in static_argnames:
        if params and n not in names:
            raise ValueError(f"static_argnames: {getattr(fun, '__name__', fun)!r} has no "
                             f"parameter {n!r}")
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return tuple(i for i, n in enumerate(positional) if n in static_argnames), static_argnames


def _make(fun, argnums, has_aux, with_value, static_argnames, none_unused=False):
    """grad or value_and_grad. none_unused (torch.autograd's convention, for
    _torch_autograd): a differentiated leaf `fun`'s result does not depend on gets
    None instead of zeros (jax's), decided when the body is traced, so the compiled
    result carries the None itself (a static leaf of its output)."""
    name = "value_and_grad" if with_value else "grad"
    static_nums, static_argnames = _static_positions(fun, static_argnames)

    def body(*args, **kwargs):
        nums = _check_argnums(argnums, len(args))
        anchor = next((v for v in _leaves((args, kwargs)) if isinstance(v, Tracer)), None)
        if anchor is None:
            raise TypeError(f"{name}: the differentiated arguments must be arrays or floats")
        args = list(args)
        depth = getattr(_nesting, "depth", 0)
        sources, trees = [], []
        for k in nums:
            leaves, tree = _flatten(args[k])
            made = []
            for i, v in enumerate(leaves):
                kind = _dtype_kind(getattr(v, "dtype", None))
                if kind != "f" and not isinstance(v, float):
                    raise TypeError(f"{name} requires float inputs (float32 or float64), but "
                                    f"arg {k}{tree.paths()[i]} is of type {_dtype_name(v)}; "
                                    f"integer and bool inputs have no gradient")
                made.append(_C._ad_source(anchor, v, depth > 0))
            sources += made
            trees.append(tree)
            args[k] = tree.unflatten(made)
        _nesting.depth = depth + 1
        _push_sources(sources)
        try:
            res = fun(*args, **kwargs)
        finally:
            _nesting.depth = depth
            _nesting.sources.pop()
        if has_aux:
            if not (isinstance(res, (tuple, list)) and len(res) == 2):
                raise TypeError(f"{name}(has_aux=True): the function must return a pair "
                                f"(output, aux), got {type(res).__name__}")
            out, aux = res
        else:
            out, aux = res, None
        if type(out) is float:   # a constant: its gradient is zero (as jax)
            out = np.float64(out)
        shape = getattr(out, "shape", None)
        if shape is None or getattr(out, "dtype", None) is None:
            raise NotScalarError(f"{name}: the function must return a scalar float array, "
                             f"got {type(out).__name__}")
        if shape != ():
            raise NotScalarError(f"{name} requires a scalar output, but the function returned "
                             f"an array of shape {tuple(shape)}; reduce it (e.g. .sum()) first, or give "
                             f"a cotangent with tracejit.vjp")
        if _dtype_kind(out.dtype) != "f":
            raise NotScalarError(f"{name} requires a float output, but the function returned "
                             f"{out.dtype}")
        if isinstance(out, Tracer) and sources:
            cts = vjp_trace(out, np.ones_like(out), sources)
        else:
            cts = [None] * len(sources)
        if not none_unused:
            cts = [np.zeros_like(s) if c is None else c for s, c in zip(sources, cts)]
        # a gradient has its argument's shape, a 0-d one too: an array (as jax's), not
        # the NumPy scalar a computed 0-d value is returned as
        cts = [c[...] if isinstance(c, Tracer) and c.ndim == 0 else c for c in cts]
        parts, pos = [], 0
        for tree in trees:
            parts.append(tree.unflatten(cts[pos:pos + tree.num_leaves]))
            pos += tree.num_leaves
        g = parts[0] if isinstance(argnums, int) else tuple(parts)
        if not with_value:
            return (g, aux) if has_aux else g
        return ((out, aux) if has_aux else out), g

    cf = _C.CompiledFunction(body, static_nums, static_argnames)
    for attr in ("__module__", "__qualname__", "__doc__"):
        try:
            setattr(cf, attr, getattr(fun, attr))
        except AttributeError:
            pass
    try:
        cf.__name__ = f"{name}({getattr(fun, '__name__', 'fun')})"
    except AttributeError:
        pass
    return cf


def grad(fun, argnums=0, has_aux=False, *, static_argnames=()):
    """The gradient of scalar-valued `fun` with respect to argument(s) `argnums`, as a
    compiled function (forward and backward traced into one graph, compiled once per
    argument signature, replayed after). With has_aux, `fun` returns (output, aux) and
    the result is (gradient, aux). `static_argnames`: as for tracejit.compile (Python
    ints and floats are otherwise runtime inputs)."""
    return _make(fun, argnums, has_aux, False, static_argnames)


def value_and_grad(fun, argnums=0, has_aux=False, *, static_argnames=()):
    """Like grad, returning (value, gradient); with has_aux ((value, aux), gradient)."""
    return _make(fun, argnums, has_aux, True, static_argnames)


# ---- vjp: a given cotangent for any (pytree) output ------------------------------------

_vjp_plans = weakref.WeakKeyDictionary()   # fun -> (compiled forward, compiled joint)


def _inner(out, ct):
    """sum(out * ct) over the leaves of two pytrees of equal structure and shapes: its
    gradient with respect to anything is ct pulled back through out."""
    outs, cts = _leaves(out), _leaves(ct)
    if len(outs) != len(cts):
        raise ValueError(f"vjp: the cotangent has {len(cts)} leaves, the output {len(outs)}")
    total = 0.0
    for o, c in zip(outs, cts):
        if np.shape(o) != np.shape(c):
            raise ValueError(f"vjp: a cotangent of shape {tuple(np.shape(c))} for an "
                             f"output of shape {tuple(np.shape(o))}")
        total = total + np.sum(o * c)
    return total


def _pullback(fun, has_aux):
    """The vector-Jacobian product as a gradient (of _inner). Forward and backward are
    recomputed together in one compiled graph (nothing is kept between the calls)."""
    def contract(primals, ct):
        res = fun(*primals)
        return _inner(res[0] if has_aux else res, ct)
    return grad(contract)


def vjp(fun, *primals, has_aux=False):
    """jax.vjp: (out, vjp_fn), or (out, vjp_fn, aux) with has_aux. vjp_fn(ct), with ct
    of out's structure and shapes, returns a tuple of cotangents, one per primal (each
    of its primal's pytree structure). Forward and the pullback are compiled (and
    cached per `fun`); the pullback recomputes the forward inside its own graph."""
    try:
        fwd, back = _vjp_plans[fun][has_aux]
    except (KeyError, TypeError):
        fwd, back = _C.CompiledFunction(fun, (), ()), _pullback(fun, has_aux)
        try:
            _vjp_plans.setdefault(fun, {})[has_aux] = (fwd, back)
        except TypeError:    # not weakly referenceable: not cached
            pass
    with _draws.recording() as keys:     # the pullback recomputes these draws
        res = fwd(*primals)
    out, aux = (res[0], res[1]) if has_aux else (res, None)

    def vjp_fn(ct):
        with _draws.pinned(keys):
            return back(tuple(primals), ct)

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)
