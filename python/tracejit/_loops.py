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

from . import _C, _control, _grad, _loops_hoist
from ._C import TraceError, Tracer


def _anchor(values):
    """A Tracer of the running trace: one of the loop's values, else a constant of the
    trace (the carries and xs may all be the caller's arrays, the body's closure traced)."""
    a = next((v for v in values if isinstance(v, Tracer)), None)
    return a if a is not None else _C._loop_anchor()


def _usable(n, values):
    """A compiled loop serves: more than one step, not inside another compiled loop's
    body, at most one level of differentiation under way (its backward is then a
    compiled loop too, _backward), something traced to anchor it."""
    if n < 2 or _control._in_body() or len(getattr(_grad._nesting, "sources", ())) > 1:
        return False
    return _anchor(values) is not None


class _Info:
    """What the backward of a loop traced while differentiating needs: its step function
    and structure. Its ys are the user's, then the carries each step received."""
    __slots__ = ("kind", "n", "reverse", "step_fn", "tree", "x_tree", "n_y")

    def __init__(self, kind, n, reverse, step_fn, tree, x_tree, n_y):
        self.kind, self.n, self.reverse, self.step_fn = kind, n, reverse, step_fn
        self.tree, self.x_tree, self.n_y = tree, x_tree, n_y


def _run(kind, n, reverse, step_fn, init, tree, specs, x_leaves, x_tree):
    """Traces step_fn(carry, x, step) -> (carry, y) once; (carry, ys tree) of the loop, or
    NotImplemented (a differentiated body that draws random numbers: unrolled).
    A Python number in the carry takes the dtype the body gives it, as in eager's loop
    (0.0 + a float32 value is float32 from the first step on): traced again with it.
    While differentiating, the carries each step received are kept as more ys (the
    backward's residuals) and the loop carries an _Info (_C._loop_info reads it)."""
    leaves = _C.tree_flatten(init)[0]
    anchor = _anchor(leaves + list(x_leaves))
    grad_mode = kind != 2 and bool(_grad._current_sources())
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
            info = None
            if grad_mode:
                info = _Info(kind, n, reverse, step_fn, tree, x_tree, len(y_leaves))
                y_leaves = y_leaves + list(ph_c)
            res = _C._loop_end(anchor, start, kind, n, reverse, inits, xs, out_c, y_leaves,
                               info)
        except BaseException:
            _C._loop_end(anchor)
            raise
        if res is None:
            return NotImplemented
        nc = len(out_c)
        return tree.unflatten(res[:nc]), y_tree.unflatten(res[nc:nc + y_tree.num_leaves])


def _zeros(v):
    return np.zeros_like(v)


def backward(li, gs, need=None):
    """The cotangents of a compiled loop's operands (carries' initial values, xs, the
    outer values its body reads; None where not float or not in `need`, a flag per
    operand: those the differentiated result depends on) given those of its results
    (gs: None for none): a compiled loop over the steps in reverse whose body traces the
    step again at the carry it received (kept as a residual) and pulls the cotangents
    back through it (vjp_trace), summing the outer values' over the steps: in its carry,
    or, for the terms _loops_hoist finds, as one contraction after the loop."""
    info, results, operands, nc, nx, _ = li
    if info is None:
        raise TraceError("a gradient reaches a compiled loop (tracejit.scan, fori_loop, "
                         "while_loop) traced where no differentiation was under way (or a "
                         "while_loop, which has no reverse mode): trace the loop inside the "
                         "differentiated function")
    if need is None or not _loops_hoist.ENABLED:
        need = [True] * len(operands)
    ny = info.n_y
    ops = list(operands[nc + nx:])
    fl = [k for k, v in enumerate(ops) if _grad._is_float(v) and need[nc + nx + k]]
    ops_f = [ops[k] for k in fl]
    xl = [k for k in range(nx) if _grad._is_float(operands[nc + k]) and need[nc + k]]
    ct_c = [g if g is not None else _zeros(r) for g, r in zip(gs[:nc], results[:nc])]
    ct_y = [g if g is not None else _zeros(r) for g, r in zip(gs[nc:nc + ny], results[nc:nc + ny])]
    residuals = list(results[nc + ny:nc + ny + nc])
    # the values the forward computed at each step: the carry it passed on (the next
    # step's residual, the last one the final carry) and its ys. The step's derivative
    # rules read them (tanh's 1 - y^2) instead of the step's recomputed outputs, so
    # the recomputation feeding only those outputs is dead (W @ h + U @ x)
    if info.reverse:
        nexts = [np.concatenate([f[None], r[:-1]]) for f, r in zip(results[:nc], residuals)]
    else:
        nexts = [np.concatenate([r[1:], f[None]]) for f, r in zip(results[:nc], residuals)]
    y_vals = list(results[nc:nc + ny])
    xs = list(operands[nc:nc + nx])
    n, tree, x_tree, step_fn = info.n, info.tree, info.x_tree, info.step_fn
    anchor = results[0]
    shapes = [tuple(v.shape) for v in ops_f]
    plan = [[([], True)] * len(ops_f)]   # the split the carry is made for (first: all
                                         # carried; the first trace decides: Retrace)

    def bstep(c, x, s):
        ctc, acc = c
        c_t, x_t, cty, next_t, y_t = x
        src_c = [_C._ad_source(anchor, v, True) for v in c_t]
        src_x = [_C._ad_source(anchor, x_t[k], True) for k in xl]
        x_in = list(x_t)
        for k, v in zip(xl, src_x):
            x_in[k] = v
        out_c, out_y = step_fn(tree.unflatten(src_c),
                               x_tree.unflatten(x_in) if nx else None, (n - 1) - s)
        outs = _C.tree_flatten(out_c)[0] + _C.tree_flatten(out_y)[0]
        total = 0.0
        for o, g in zip(outs, list(ctc) + list(cty)):
            if _grad._is_float(o):
                total = total + np.sum(o * g)
        srcs = src_c + src_x + ops_f
        values = {}
        for o, v in zip(outs, list(next_t) + list(y_t)):
            if isinstance(o, Tracer) and _grad._is_float(o) and _loops_hoist.ENABLED:
                values[_C._ad_node(o)[0]] = v
        if isinstance(total, Tracer):
            cts = _grad.vjp_trace(total, np.ones_like(total), srcs, values)
        else:
            cts = [None] * len(srcs)
        cts = [_zeros(v) if g is None and k < nc + len(xl) else g
               for k, (g, v) in enumerate(zip(cts, srcs))]
        op_cts = cts[nc + len(xl):]
        if not _loops_hoist.ENABLED:
            op_cts = [_zeros(v) if g is None else g for g, v in zip(op_cts, ops_f)]
        p, rest, stacked = _loops_hoist.split(op_cts, shapes, n)
        if p != plan[0]:
            plan[0] = p
            raise _loops_hoist.Retrace
        return ((cts[:nc], [a + g for a, g in zip(acc, rest)]),
                cts[nc:nc + len(xl)] + stacked)

    b_x = (residuals, xs, ct_y, nexts, y_vals)
    bx_leaves, bx_tree = _C.tree_flatten(b_x)
    for attempt in range(3):
        init = (ct_c, [_zeros(v) for v, (_, r) in zip(ops_f, plan[0]) if r])
        b_leaves, b_tree = _C.tree_flatten(init)
        specs = [_control._spec(v) for v in b_leaves]
        try:
            out = _run(0, n, not info.reverse, bstep, init, b_tree, specs, bx_leaves, bx_tree)
            break
        except _loops_hoist.Retrace:
            continue
    else:
        raise TraceError("the backward of a compiled loop could not be compiled (its "
                         "cotangents split differently at each trace)")
    if out is NotImplemented:
        raise TraceError("the backward of a compiled loop could not be compiled")
    (ct_init, ct_carried), ys = out
    ct_xs_l, stacked = list(ys[:len(xl)]), list(ys[len(xl):])
    ct_ops = [None] * len(ops)
    carried = iter(ct_carried)
    for k, (terms, has_rest), shape in zip(fl, plan[0], shapes):
        g = next(carried) if has_rest else None
        if terms:
            h = _loops_hoist.contract(terms, stacked[:2 * len(terms)], shape)
            stacked = stacked[2 * len(terms):]
            g = h if g is None else g + h
        ct_ops[k] = g if g is not None else _zeros(ops[k])
    ct_xs = [None] * nx
    for k, g in zip(xl, ct_xs_l):
        ct_xs[k] = g
    return list(ct_init) + ct_xs + ct_ops


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


def compiled_while(cond_fun, body_fun, init_val, tree, specs, c0=None):
    """The carries extended with cond_fun's value: the body computes body_fun's carry and
    cond_fun of it; the runner stops once that value is False. c0: cond_fun(init_val)
    when the caller computed it (a carry of Python numbers only)."""
    leaves = _C.tree_flatten(init_val)[0]
    if not _usable(2, leaves) or _grad._current_sources():   # (no reverse mode: _control's
        return NotImplemented                                  # loop refuses it by name)
    if c0 is None:
        c0 = cond_fun(init_val)
    if not isinstance(c0, Tracer):   # decided by the caller's values alone: Python's loop
        return NotImplemented
    pred0 = _pred(c0)
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
