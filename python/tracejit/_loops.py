"""Compiled loops: tracejit.scan and fori_loop over traced carries (csrc/loops.c).

The body is traced once, over placeholders (the carries, one step's x, the step
number), between _C._loop_begin and _C._loop_end; the plan runs its compiled kernel n
times. A loop is traced step by step instead (returns NotImplemented, _control.py
unrolls it) where a compiled loop cannot serve: differentiation reaches it (a grad
body or torch's autograd route is being traced: its backward is autodiff of the
steps), it lies inside another compiled loop's body, it has a single step, or its
xs/carries include something that is not an array.
"""
import numpy as np

from . import _C, _control, _grad
from ._C import Tracer


def _anchor(values):
    return next((v for v in values if isinstance(v, Tracer)), None)


def _usable(n, values):
    if n < 2 or _control._in_body() or _grad._current_sources():
        return False
    return _anchor(values) is not None


def _run(kind, n, reverse, step_fn, init, tree, specs, x_leaves, x_tree):
    """Traces step_fn(carry, x, step) -> (carry, y) once; (carry, ys tree) of the loop.
    A Python number in the carry takes the dtype the body gives it, as in eager's loop
    (0.0 + a float32 value is float32 from the first step on): traced again with it."""
    leaves = _C.tree_flatten(init)[0]
    anchor = _anchor(leaves + list(x_leaves))
    for attempt in range(2):
        inits, xs, start, ph_c, ph_x, ph_step = _C._loop_begin(anchor, leaves, list(x_leaves))
        try:
            carry_in = tree.unflatten(ph_c)
            x_in = x_tree.unflatten(ph_x) if x_leaves else None
            with _control._Body(True):
                carry, y = step_fn(carry_in, x_in, ph_step)
            out_c = _control._check_same(
                "scan: f's carry output" if kind == 0 else "fori_loop: body_fun's result",
                tree, specs, carry)
            recast = [k for k, (v, o) in enumerate(zip(leaves, out_c))
                      if specs[k][1].startswith("python ") and isinstance(o, Tracer) and
                      isinstance(o.dtype, np.dtype) and o.dtype != ph_c[k].dtype]
            if recast and attempt == 0:
                _C._loop_end(anchor)
                leaves = [np.asarray(v, dtype=out_c[k].dtype) if k in recast else v
                          for k, v in enumerate(leaves)]
                continue
            y_leaves, y_tree = _C.tree_flatten(y)
            res = _C._loop_end(anchor, start, kind, n, reverse, inits, xs, out_c, y_leaves)
        except BaseException:
            _C._loop_end(anchor)
            raise
        nc = len(out_c)
        return tree.unflatten(res[:nc]), y_tree.unflatten(res[nc:])


def compiled_scan(f, init, xs, n, reverse, tree, specs, x_tree, x_leaves):
    leaves = _C.tree_flatten(init)[0]
    if not _usable(n, leaves + list(x_leaves)):
        return NotImplemented
    return _run(0, n, reverse, lambda c, x, i: _control.scan_step(f, c, x), init, tree, specs,
                x_leaves, x_tree)


def compiled_fori(lo, hi, body_fun, init_val, tree, specs):
    leaves = _C.tree_flatten(init_val)[0]
    if not _usable(hi - lo, leaves):
        return NotImplemented

    def step(c, x, i):
        return body_fun(i + lo if lo else i, c), ()
    return _run(1, hi - lo, False, step, init_val, tree, specs, [], _C.tree_flatten(None)[1])[0]


def compiled_while(cond_fun, body_fun, init_val, tree, specs):
    """The carries extended with cond_fun's value: the body computes body_fun's carry and
    cond_fun of it; the runner stops once that value is False."""
    leaves = _C.tree_flatten(init_val)[0]
    if not _usable(2, leaves):
        return NotImplemented
    pred0 = _pred(cond_fun(init_val))
    ext_tree = _C.tree_flatten((init_val, pred0))[1]
    ext_specs = specs + [_control._spec(pred0)]

    def step(c, x, i):
        val = body_fun(c[0])
        _control._check_same("while_loop: body_fun's result", tree, specs, val)
        return (val, _pred(cond_fun(val))), ()
    return _run(2, -1, False, step, (init_val, pred0), ext_tree, ext_specs, [],
                _C.tree_flatten(None)[1])[0][0]


def _pred(c):
    _control._scalar_pred(c, "while_loop: cond_fun")
    if not isinstance(c, Tracer):
        raise TypeError("while_loop: inside a compiled function, cond_fun must compute its "
                        f"value from the carry, got a constant {c!r}")
    return c if str(c.dtype).replace("torch.", "") == "bool" else c != 0
