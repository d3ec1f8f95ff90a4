"""Structured control flow with jax.lax's signatures: cond, while_loop, fori_loop, scan.

Carries are pytrees (csrc/pytree.c's containers) of arrays: NumPy arrays, torch
tensors, Python numbers, or Tracers while a compiled function traces. The carry a body
returns must have the structure, shapes and dtypes of the carry it received (a
TypeError naming the path otherwise, as jax's).

Called eagerly (no trace running) each is a plain Python loop or branch with jax's
semantics. While a compiled function traces, `scan` and `fori_loop` over traced carries
become a compiled loop in the plan (_loops.py: the body traced once into a region of
its own, run n times by the replay), unless differentiation reaches them (tracejit.grad,
torch's autograd route): then the body is traced once per step (unrolled), so the
backward is autodiff of the steps; `while_loop` runs as Python's `while` whose test is
a guarded value (csrc/trace/concrete.c: a call whose loop runs another number of steps
retraces), and refuses reverse-mode differentiation as jax does; `cond` on a traced
predicate traces both branches, checks they agree, and keeps the one the predicate
takes (a guard: the other variant compiles the other branch), or, inside a compiled
loop's body, computes both and selects (np.where).
"""
import sys
import threading

import numpy as np

from . import _C
from ._C import TraceError, Tracer

__all__ = ["cond", "while_loop", "fori_loop", "scan"]

_flatten = _C.tree_flatten
_state = threading.local()   # .body: bodies of compiled loops being traced on this thread


def _in_body():
    return getattr(_state, "body", 0) > 0


def _torch():
    return sys.modules.get("torch")


def _is_torch(v):
    t = _torch()
    if t is not None and isinstance(v, t.Tensor):
        return True
    return isinstance(v, Tracer) and not isinstance(v.dtype, np.dtype)


def _spec(v):
    """(shape, dtype name) of a leaf; a Python number's dtype is 'python float' etc."""
    if isinstance(v, (bool, int, float, complex)) and not isinstance(v, np.generic):
        return (), "python " + type(v).__name__
    shape, dt = getattr(v, "shape", None), getattr(v, "dtype", None)
    if shape is None or dt is None:
        raise TypeError(f"a carry leaf must be an array, a tensor or a Python number, "
                        f"got {type(v).__name__}")
    return tuple(shape), str(dt).replace("torch.", "")


def _kind(dt):
    if dt.startswith("python "):
        return {"bool": "b", "int": "i", "float": "f", "complex": "c"}[dt[7:]]
    return "b" if dt == "bool" else np.dtype(dt).kind.replace("u", "i")


def _compatible(a, b):
    """Whether carry leaves of specs a (in) and b (out) agree: equal shape and dtype; a
    Python number agrees with a 0-d array of its kind (it has no dtype of its own)."""
    if a == b:
        return True
    if a[0] != b[0]:
        return False
    if a[1].startswith("python ") or b[1].startswith("python "):
        return _kind(a[1]) == _kind(b[1])
    return False


def _check_same(what, tree_in, specs_in, out):
    leaves, tree_out = _flatten(out)
    if tree_out != tree_in:
        raise TypeError(f"{what} must have the same pytree structure as its input carry, "
                        f"but the input is {tree_in} and the output {tree_out}")
    paths = tree_in.paths()
    for p, a, v in zip(paths, specs_in, leaves):
        b = _spec(v)
        if not _compatible(a, b):
            raise TypeError(f"{what} must have the same shapes and dtypes as its input carry, "
                            f"but the carry{p} is {a[1]}{list(a[0])} in the input and "
                            f"{b[1]}{list(b[0])} in the output")
    return leaves


def _stack(vals):
    if any(_is_torch(v) for v in vals):
        t = _torch()
        return t.stack([v if _is_torch(v) else t.as_tensor(v) for v in vals])
    return np.stack(vals)


def _scalar_pred(pred, what):
    shape = getattr(pred, "shape", ())
    if tuple(shape) != ():
        raise TypeError(f"{what}: the predicate must be a scalar (shape ()), got an array of "
                        f"shape {tuple(shape)}")
    dt = getattr(pred, "dtype", None)
    if dt is not None and _kind(str(dt).replace("torch.", "")) not in "bi":
        raise TypeError(f"{what}: the predicate must be a boolean or integer scalar, got "
                        f"{str(dt).replace('torch.', '')}")


class _Body:
    """Marks a traced loop's body while it is traced (cond selects there: no guard)."""
    def __init__(self, on):
        self.on = on

    def __enter__(self):
        if self.on:
            _state.body = getattr(_state, "body", 0) + 1

    def __exit__(self, *exc):
        if self.on:
            _state.body -= 1


def _traced_loop(leaves):
    """Whether a loop is one a compiled function traces: a traced carry or x, or, while
    a trace runs, arrays (the body may read traced values from its closure). A loop over
    Python numbers only stays Python's."""
    if any(isinstance(v, Tracer) for v in leaves):
        return True
    return _C._tracing() and any(hasattr(v, "shape") for v in leaves)


def scan_step(f, carry, x):
    out = f(carry, x)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"scan: f must return a pair (carry, y), got {type(out).__name__}")
    return out[0], out[1]


# ---- cond ---------------------------------------------------------------------------

def cond(pred, true_fun, false_fun, *operands):
    """true_fun(*operands) if pred else false_fun(*operands) (jax.lax.cond). A traced
    pred traces both branches (their results must agree in structure, shapes and
    dtypes) and evaluates only the one taken at replay."""
    if not (callable(true_fun) and callable(false_fun)):
        raise TypeError("cond: true_fun and false_fun must be callable")
    _scalar_pred(pred, "cond")
    if not isinstance(pred, Tracer):
        return true_fun(*operands) if pred else false_fun(*operands)
    t_out = true_fun(*operands)
    f_out = false_fun(*operands)
    t_leaves, t_tree = _flatten(t_out)
    f_leaves, f_tree = _flatten(f_out)
    if t_tree != f_tree:
        raise TypeError(f"cond: true_fun and false_fun must return the same pytree structure, "
                        f"but true_fun returned {t_tree} and false_fun {f_tree}")
    for p, a, b in zip(t_tree.paths(), t_leaves, f_leaves):
        sa, sb = _spec(a), _spec(b)
        if sa != sb:
            raise TypeError(f"cond: true_fun and false_fun must return the same shapes and "
                            f"dtypes, but output{p} is {sa[1]}{list(sa[0])} from true_fun and "
                            f"{sb[1]}{list(sb[0])} from false_fun")
    if _in_body():   # no guard inside a compiled loop's body: both, selected
        sel = []
        for a, b in zip(t_leaves, f_leaves):
            if _is_torch(a) or _is_torch(b):
                t = _torch()
                sel.append(t.where(pred.bool() if _is_torch(pred) else pred != 0, a, b))
            else:
                sel.append(np.where(pred != 0, a, b))
        return t_tree.unflatten(sel)
    return t_out if pred else f_out


# ---- while_loop -----------------------------------------------------------------------

def _no_grad_through(leaves):
    """The results of a while_loop: refused where differentiation reaches them."""
    from . import _grad
    srcs = _grad._current_sources()
    for v in leaves:
        if isinstance(v, Tracer) and srcs and any(_grad._depends(v, srcs)):
            raise TraceError("Reverse-mode differentiation does not work for "
                             "tracejit.while_loop (as jax.lax.while_loop): its number of steps "
                             "is known only when it runs. Use tracejit.fori_loop or "
                             "tracejit.scan with a fixed trip count")
    t = _torch()
    if t is not None and t.is_grad_enabled() and any(
            isinstance(v, t.Tensor) and v.requires_grad for v in leaves):
        return [_WhileNoGrad.get().apply(v) if isinstance(v, t.Tensor) and v.requires_grad
                else v for v in leaves]
    return leaves


class _WhileNoGrad:
    """torch.autograd.Function that is the identity forward and refuses backward."""
    _fn = None

    @classmethod
    def get(cls):
        if cls._fn is None:
            import torch

            class WhileLoopBackward(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x.view_as(x)

                @staticmethod
                def backward(ctx, g):
                    raise RuntimeError(
                        "Reverse-mode differentiation does not work for tracejit.while_loop "
                        "(as jax.lax.while_loop): its number of steps is known only when it "
                        "runs. Use tracejit.fori_loop or tracejit.scan with a fixed trip count")
            cls._fn = WhileLoopBackward
        return cls._fn


def while_loop(cond_fun, body_fun, init_val):
    """val = init_val; while cond_fun(val): val = body_fun(val); return val
    (jax.lax.while_loop). Forward only: its gradient raises."""
    if not (callable(cond_fun) and callable(body_fun)):
        raise TypeError("while_loop: cond_fun and body_fun must be callable")
    leaves, tree = _flatten(init_val)
    specs = [_spec(v) for v in leaves]
    c0 = None
    if not _traced_loop(leaves) and _C._tracing() and not _in_body():
        # a carry of Python numbers whose condition reads traced values: the trip count
        # is data, so the loop is compiled too (Python's loop would unroll it, a guard
        # per step, as long as the data says)
        c0 = cond_fun(init_val)
    if _traced_loop(leaves) or isinstance(c0, Tracer):
        from . import _loops
        out = _loops.compiled_while(cond_fun, body_fun, init_val, tree, specs, c0)
        if out is not NotImplemented:
            return out
    val = init_val
    while True:
        c = cond_fun(val) if c0 is None or val is not init_val else c0
        _scalar_pred(c, "while_loop: cond_fun")
        if not c:
            break
        val = body_fun(val)
        _check_same("while_loop: body_fun's result", tree, specs, val)
    out_leaves, _ = _flatten(val)
    return tree.unflatten(_no_grad_through(out_leaves))


# ---- fori_loop and scan -----------------------------------------------------------------

def _trip(v, what):
    if isinstance(v, Tracer):
        return None
    try:
        return int(np.asarray(v.detach() if _is_torch(v) else v).item()) \
            if hasattr(v, "shape") else v.__index__()
    except (TypeError, AttributeError, ValueError):
        raise TypeError(f"{what} must be an integer, got {type(v).__name__}") from None


def fori_loop(lower, upper, body_fun, init_val):
    """val = init_val; for i in range(lower, upper): val = body_fun(i, val); return val
    (jax.lax.fori_loop). With Python-int bounds it is a scan (differentiable); with
    traced bounds a while_loop (forward only)."""
    if not callable(body_fun):
        raise TypeError("fori_loop: body_fun must be callable")
    lo, hi = _trip(lower, "fori_loop: lower"), _trip(upper, "fori_loop: upper")
    if lo is None or hi is None:   # a traced bound: the trip count is data
        def body(c):
            return c[0] + 1, body_fun(c[0], c[1])
        return while_loop(lambda c: c[0] < upper, body, (lower, init_val))[1]
    leaves, tree = _flatten(init_val)
    specs = [_spec(v) for v in leaves]
    if _traced_loop(leaves) and hi > lo:
        from . import _loops
        out = _loops.compiled_fori(lo, hi, body_fun, init_val, tree, specs)
        if out is not NotImplemented:
            return out
    val = init_val
    with _Body(any(isinstance(v, Tracer) for v in leaves)):
        for i in range(lo, hi):
            val = body_fun(i, val)
            _check_same("fori_loop: body_fun's result", tree, specs, val)
    return val


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """(carry, ys): carry = init; for each x of xs (the leading axis of each leaf):
    carry, y = f(carry, x); ys stacks the y's (jax.lax.scan). xs=None scans `length`
    steps with x None. reverse=True walks xs from the end (ys stay in xs's order)."""
    if not callable(f):
        raise TypeError("scan: f must be callable")
    x_leaves, x_tree = _flatten(xs)
    lengths = set()
    for p, v in zip(x_tree.paths(), x_leaves):
        shape = getattr(v, "shape", None)
        if shape is None or len(shape) == 0:
            raise ValueError(f"scan: xs{p} must be an array with a leading axis to scan over, "
                             f"got {type(v).__name__}" + ("" if shape is None else " of shape ()"))
        lengths.add(int(shape[0]))
    if length is not None:
        length = int(length)
        if lengths and lengths != {length}:
            raise ValueError(f"scan: length={length} disagrees with the leading axis of xs "
                             f"({sorted(lengths)})")
        lengths = {length}
    if len(lengths) != 1:
        raise ValueError("scan: xs must have leaves with one leading axis length, got "
                         f"{sorted(lengths)}" if lengths else
                         "scan: xs is empty, so scan needs length=")
    n = lengths.pop()
    if n == 0:
        raise ValueError("scan of length 0 is not supported (its ys' shapes need a step)")
    leaves, tree = _flatten(init)
    specs = [_spec(v) for v in leaves]
    if _traced_loop(leaves + x_leaves):
        from . import _loops
        out = _loops.compiled_scan(f, init, xs, n, reverse, tree, specs, x_tree, x_leaves)
        if out is not NotImplemented:
            return out
    carry, ys, y_tree = init, [None] * n, None
    with _Body(any(isinstance(v, Tracer) for v in leaves + x_leaves)):
        for i in (reversed(range(n)) if reverse else range(n)):
            x = x_tree.unflatten([v[i] for v in x_leaves]) if x_leaves else None
            carry, y = scan_step(f, carry, x)
            _check_same("scan: f's carry output", tree, specs, carry)
            y_leaves, yt = _flatten(y)
            if y_tree is None:
                y_tree, y_specs = yt, [_spec(v) for v in y_leaves]
            elif yt != y_tree or [_spec(v) for v in y_leaves] != y_specs:
                raise TypeError(f"scan: f's y output must have one structure, shape and dtype "
                                f"at every step, got {y_tree} then {yt}")
            ys[i] = y_leaves
    stacked = [_stack([ys[i][k] for i in range(n)]) for k in range(y_tree.num_leaves)]
    return carry, y_tree.unflatten(stacked)
