"""A compiled training step: `tracejit.compile` of a function that runs forward,
`loss.backward()`, `optimizer.step()` and `optimizer.zero_grad()` on parameters it
reads from its closure, globals or modules, compiled as ONE call with eager's effects.

Route: the first trace of such a function meets a captured tensor that requires grad
(GradCaptureError); the C call path (function.c) then hands the call to `train` (the
function's `_tj_train`), which makes a `_Step` the function's `_tj_step`: from then on
every call goes to it. The step is traced as an inner CompiledFunction `core` over

  * the parameters (every tensor that requires grad in the optimizers and modules the
    function reaches: `_discover`), given detached (the same memory) and read through
    `_torch.stand_in` wherever the code reaches the real parameter;
  * their `.grad` tensors where not None (arguments: written in place, as eager's
    accumulation and `zero_grad(set_to_none=False)` write);
  * the optimizers' state tensors (exp_avg, step, momentum_buffer...), arguments
    written in place;
  * each param group's float lr (0-d float64 inputs, set in the group while traced:
    a scheduler's new lr reuses the compiled step);
  * the user's arguments, and a static key: every param group's other hyperparameters
    (a change retraces), its parameters' identities and requires_grad (a parameter
    added or frozen retraces), the state's non-tensor values.

torch.optim's own Python code runs while tracing (so its algorithm is torch's, option
for option); its `_get_value(step)` (`step.item()`) reads the traced step as a float64
value instead of a concrete number. `Tensor.backward()` on a traced loss is
`_grad.vjp_trace` of the loss over the parameters' current values; a parameter whose
`.grad` is None gets a placeholder tensor whose stand-in is the gradient, one with a
gradient accumulates into it. What `p.grad` ends as (None, the caller's tensor written
in place, or a new gradient: an output of the call) is a static result of each variant,
applied after each call.

Refused (TraceError) or run eagerly, never replayed wrong: a step that initializes an
optimizer's state (its first step: eager, compiled from the next call); optimizer hooks,
tensor hyperparameters (eager, a warning); a scheduler's step() or another change of a
param group inside the compiled function, `.grad` set to a tensor of the user's,
create_graph/inputs= in backward, a second backward through a freed graph (TraceError).
"""
import sys
import threading
import warnings

import numpy as np

from . import _C, _grad, _torch
from ._C import TraceError, Tracer
from ._keyed import Keyed

_active = threading.local()        # .ctx: the _Ctx of the step being traced


def _torch_mod():
    return sys.modules["torch"]


# ---- the optimizers' elementwise vocabulary (torch's CPU kernels' order) ------------

def _scalar(value, x):
    """A scalar operand as torch's kernel reads it: cast to x's dtype."""
    if isinstance(value, Tracer) and isinstance(x, Tracer):
        dt = _torch._NP_DTYPE.__get__(x)
        return value.astype(dt) if _torch._NP_DTYPE.__get__(value) != dt else value
    return value


def lerp(x, end, weight):
    """torch.lerp with a scalar or tensor weight: x + w * (end - x) where |w| < 0.5,
    else end - (end - x) * (1 - w) (ATen's lerp)."""
    if isinstance(weight, (int, float)):
        w = float(weight)
        return x + w * (end - x) if abs(w) < 0.5 else end - (end - x) * (1 - w)
    w = _scalar(weight, x)
    return np.where(np.abs(w) < 0.5, x + w * (end - x), end - (end - x) * (1 - w))


def addcmul(x, t1, t2, value=1):
    return x + _scalar(value, x) * t1 * t2


def addcdiv(x, t1, t2, value=1):
    return x + _scalar(value, x) * t1 / t2


FUNCS = {"lerp": lerp, "addcmul": addcmul, "addcdiv": addcdiv}


# ---- Tensor.backward() inside a traced step ------------------------------------------

class _Ctx:
    """One trace of a step: the parameters' tracers, the placeholders given as .grad,
    whether backward ran."""

    def __init__(self, step):
        self.step = step
        self.source = {}          # id(param) -> its tracer (the value autodiff reaches)
        self.grad_of = {}         # id(placeholder) -> the gradient tracer it stands for
        self.backwarded = set()   # ids of the losses whose graph a backward freed
        self.called = False


def backward(x, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Tensor.backward() on a traced value: inside a compiled training step, the
    gradients of every parameter the step reads, accumulated into `.grad` as eager
    does; elsewhere refused."""
    ctx = getattr(_active, "ctx", None)
    if ctx is None:
        raise TraceError("torch.Tensor.backward() is not supported by tracejit here: it "
                         "computes gradients only in a compiled training step (a function "
                         "that reads its parameters from a closure, a global or a module "
                         "and calls loss.backward() and optimizer.step())")
    if create_graph or inputs is not None:
        raise TraceError("loss.backward(create_graph=True) or inputs= inside a compiled "
                         "training step is not supported by tracejit")
    torch = _torch_mod()
    node = _C._ad_node(x)[0]
    if node in ctx.backwarded:
        raise RuntimeError("Trying to backward through the graph a second time (or directly "
                           "access saved tensors after they have already been freed). Specify "
                           "retain_graph=True if you need to backward through the graph a "
                           "second time.")
    if gradient is None:
        if tuple(x.shape) != ():
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        ct = np.ones_like(x)
    else:
        ct = _torch._lift(gradient, x) if _torch._is_tensor(gradient) else gradient
    if not retain_graph:
        ctx.backwarded.add(node)
    ctx.called = True
    params = ctx.step.params
    grads = _grad.vjp_trace(x, ct, [ctx.source[id(p)] for p in params])
    for p, g in zip(params, grads):
        if g is None or not p.requires_grad:     # (frozen since: keyed)
            continue
        g = g.astype(_torch._NP_DTYPE.__get__(ctx.source[id(p)]))
        old = p.grad
        if old is None:
            holder = ctx.step.holder(p)
            p.grad = holder
            ctx.grad_of[id(holder)] = g
            _torch.stand_in(holder, g)
        elif id(old) in ctx.grad_of:      # a gradient this step made: a new value
            g = ctx.grad_of[id(old)] + g
            ctx.grad_of[id(old)] = g
            _torch.stand_in(old, g)
        else:                             # the caller's tensor: accumulated in place
            old.add_(g)


def _get_value(x):
    """torch.optim's _get_value (step.item()) in a traced step: a traced step counter is
    read as its float64 value (a traced number, not a constant of the trace)."""
    ctx = getattr(_active, "ctx", None)
    if ctx is not None and isinstance(x, _torch_mod().Tensor) and id(x) in ctx.step.stood:
        return x.to(_torch_mod().float64)
    return x.item() if isinstance(x, _torch_mod().Tensor) else x


def _swap_get_value():
    """torch.optim's modules' _get_value swapped for ours: [(module, original)]."""
    done = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("torch.optim.") and mod is not None and \
                getattr(mod, "_get_value", None) is not None and mod._get_value is not _get_value:
            done.append((mod, mod._get_value))
            mod._get_value = _get_value
    return done


def _scheduler_step(orig):
    """LRScheduler.step while a step is traced: refused in the tracing thread, torch's
    own in any other."""
    def step(self, *args, **kwargs):
        if getattr(_active, "ctx", None) is None:
            return orig(self, *args, **kwargs)
        _no_scheduler_step(self)
    step._tracejit = True
    return step


def _swap_schedulers(torch):
    """Every torch.optim.lr_scheduler class's own step() (LRScheduler's,
    ReduceLROnPlateau's, ...) swapped for _scheduler_step's: [(class, original)]."""
    done = []
    for cls in list(vars(torch.optim.lr_scheduler).values()):
        orig = vars(cls).get("step") if isinstance(cls, type) else None
        if orig is not None and callable(orig) and not getattr(orig, "_tracejit", False):
            done.append((cls, orig))
            cls.step = _scheduler_step(orig)
    return done


def _no_scheduler_step(self):
    raise TraceError(f"{type(self).__name__}.step() inside a compiled training step: it "
                     f"changes the optimizer's learning rate in Python, which a replay "
                     f"cannot repeat; call it outside the compiled function")


# ---- the route ---------------------------------------------------------------------

def train(cf, args, kwargs):
    """cf's first trace refused a captured tensor that requires grad: a training step's
    route (it raises GradCaptureError again if the function is not one)."""
    step = _Step(cf)
    result = step(cf, args, kwargs)
    cf._tj_step = step
    return result


class _Eager(Exception):
    """This call runs eagerly (the trace would initialize optimizer state)."""


class _NotAStep(Exception):
    """The trace computed no gradient: not a training step (the call's own refusal)."""


def _plain(cf, args, kwargs):
    """cf's call without the training step's route: the GradCaptureError its trace
    raises names the user's line that read the tensor."""
    saved = {k: cf.__dict__.pop(k) for k in ("_tj_train", "_tj_step") if k in cf.__dict__}
    try:
        return cf(*args, **kwargs)
    finally:
        cf.__dict__.update(saved)


_Static = Keyed     # (_keyed.py)


def _discover(fn):
    """(optimizers, parameters) that fn reaches: its closure cells, the globals its code
    names, its defaults, its bound self's attributes, one container level deep."""
    torch = _torch_mod()
    seen, opts, params, mods = set(), [], [], []

    def visit(v, depth=0):
        if id(v) in seen:
            return
        seen.add(id(v))
        if isinstance(v, torch.optim.Optimizer):
            opts.append(v)
        elif isinstance(v, torch.nn.Module):
            mods.append(v)
        elif isinstance(v, torch.Tensor):
            if v.requires_grad and v.is_leaf:
                params.append(v)
        elif depth < 2 and isinstance(v, (list, tuple)):
            for o in v:
                visit(o, depth + 1)
        elif depth < 2 and isinstance(v, dict):
            for o in v.values():
                visit(o, depth + 1)
        elif depth == 0 and hasattr(v, "__dict__") and not isinstance(v, type) and \
                not callable(v):
            for o in vars(v).values():
                visit(o, depth + 1)

    target = getattr(fn, "__func__", fn)
    if getattr(fn, "__self__", None) is not None:
        visit(fn.__self__)
    for cell in getattr(target, "__closure__", None) or ():
        try:
            visit(cell.cell_contents)
        except ValueError:
            pass
    code, g = getattr(target, "__code__", None), getattr(target, "__globals__", {})
    names = set()
    stack = [code] if code is not None else []
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    for n in sorted(names):
        if n in g:
            visit(g[n])
    for d in getattr(target, "__defaults__", None) or ():
        visit(d)
    ordered, ids = [], set()
    for p in [p for o in opts for grp in o.param_groups for p in grp["params"]] + \
            [p for m in mods for p in m.parameters()] + params:
        if p.requires_grad and id(p) not in ids:
            ids.add(id(p))
            ordered.append(p)
    return opts, ordered


def _hook_free(opts):
    optimizer = sys.modules["torch.optim.optimizer"]
    return not (optimizer._global_optimizer_pre_hooks or
                optimizer._global_optimizer_post_hooks or
                any(o._optimizer_step_pre_hooks or o._optimizer_step_post_hooks
                    for o in opts))


def _state_changed(snaps):
    """Whether an optimizer's state holds other entries or objects than in `snaps`
    (an empty entry counts as none)."""
    for o, before in snaps:
        now = {p: s for p, s in o.state.items() if s}
        if now.keys() != {p for p, s in before.items() if s}:
            return True
        for p, s in now.items():
            old = before[p]
            if s.keys() != old.keys() or any(v is not old[k] for k, v in s.items()):
                return True
    return False


class _Step:
    """The compiled training step of one function (module docstring)."""

    def __init__(self, cf):
        self.fn = cf.__wrapped__
        self.opts, self.params = _discover(self.fn)
        self.ids = {id(p) for p in self.params}
        self.holders = {}       # id(param) -> its placeholder .grad while traced
        self.stood = set()      # ids of the state tensors read as traced values
        self.warned = False
        step = self

        def core(ps, gs, states, lrs, args, kwargs, static):
            return step._traced(ps, gs, states, lrs, args, kwargs)
        core.__wrapped__ = self.fn
        self.core = _C.CompiledFunction(core, (6,), ())

    def holder(self, p):
        h = self.holders.get(id(p))
        if h is None or h.shape != p.shape or h.dtype != p.dtype:
            torch = _torch_mod()
            with torch._C.DisableTorchFunction():
                h = torch.empty(1, dtype=p.dtype, device=p.device).expand(p.shape)
            self.holders[id(p)] = h
        return h

    def _state(self):
        """(state tensors, static description of every optimizer's groups and state),
        or None where a value cannot be keyed (a tensor hyperparameter)."""
        torch = _torch_mod()
        tensors, sig, lrs = [], [], []
        for o in self.opts:
            for grp in o.param_groups:
                lr = grp.get("lr")
                runtime_lr = type(lr) is float     # an input of the call, not keyed
                if runtime_lr:
                    lrs.append(lr)
                hyper = tuple((k, tuple(v) if isinstance(v, list) else v)
                              for k, v in grp.items()
                              if k != "params" and not (k == "lr" and runtime_lr))
                if any(isinstance(v, torch.Tensor) for _, v in hyper) or \
                        grp.get("foreach") or grp.get("fused"):   # (multi-tensor ops)
                    return None
                ids = tuple(map(id, grp["params"]))
                if not self.ids.issuperset(ids):     # a parameter added: found again
                    self.opts, self.params = _discover(self.fn)
                    self.ids = {id(p) for p in self.params}
                    return self._state()
                sig.append((hyper, ids))
                for p in grp["params"]:
                    st = o.state.get(p)
                    if not st:
                        sig.append(None)
                        continue
                    items = []
                    for k, v in st.items():
                        if isinstance(v, torch.Tensor):
                            tensors.append(v)
                            items.append((k, "T"))
                        else:
                            items.append((k, v))
                    sig.append(tuple(items))
        try:
            return tensors, _Static((tuple(sig), tuple(map(id, self.params)),
                                     tuple(p.requires_grad for p in self.params))), lrs
        except TypeError:         # an unhashable hyperparameter
            return None

    def __call__(self, cf, args, kwargs, again=False):
        torch = _torch_mod()
        state = self._state() if torch.is_grad_enabled() and _hook_free(self.opts) else None
        if state is None:
            if torch.is_grad_enabled() and not self.warned:
                self.warned = True
                warnings.warn(f"tracejit: {self.fn!r} runs eagerly: an optimizer has hooks, "
                              f"a tensor hyperparameter or foreach/fused=True",
                              RuntimeWarning, stacklevel=3)
            return self.fn(*args, **kwargs)
        tensors, static, lrs = state
        lrs = [torch.tensor(v, dtype=torch.float64) for v in lrs]
        ps = [p.detach() for p in self.params]
        gs = [None if p.grad is None else p.grad for p in self.params]
        snap = self._snapshot()
        try:
            out, final = self.core(ps, gs, tensors, lrs, args, kwargs, static)
        except _Eager:
            self._restore(snap)
            return self.fn(*args, **kwargs)
        except _NotAStep:
            self._restore(snap)
            return _plain(cf, args, kwargs)
        except TypeError as e:   # GradCaptureError: a parameter it did not know of
            self._restore(snap)
            if type(e).__name__ != "GradCaptureError" or again:
                raise
            opts, params = _discover(self.fn)
            if [id(p) for p in params] == [id(p) for p in self.params]:
                raise
            self.opts, self.params = opts, params
            self.ids = {id(p) for p in params}
            return self(cf, args, kwargs, True)
        for p, f in zip(self.params, final):
            if f is None:
                p.grad = None
            elif f is not True:
                p.grad = f
        return out

    def _snapshot(self):
        return ([p.grad for p in self.params],
                [(o, {p: dict(s) for p, s in o.state.items()}) for o in self.opts])

    def _restore(self, snap):
        for p, g in zip(self.params, snap[0]):
            p.grad = g
        for o, states in snap[1]:
            o.state.clear()
            for p, s in states.items():
                o.state[p].update(s)

    def _lrs_in(self, lrs):
        """Each param group's float lr replaced by its traced value while the step is
        traced (a scheduler's new lr is the next call's input): [(group, lr, tracer)]."""
        groups = [g for o in self.opts for g in o.param_groups if type(g.get("lr")) is float]
        swapped = [(g, g["lr"], t, _C._ad_node(t)[0]) for g, t in zip(groups, lrs)]
        for g, _, t, _ in swapped:
            g["lr"] = t
        return swapped

    def _traced(self, ps, gs, states, lrs, args, kwargs):
        """The step on tracers (core's body): stand-ins, the user's function, the final
        .grad of each parameter."""
        torch = _torch_mod()
        ctx = _Ctx(self)
        snap = self._snapshot()
        before = self._state()
        real_states = before[0]
        for p, t in zip(self.params, ps):
            _torch.stand_in(p, t)
            ctx.source[id(p)] = t
        for p, g in zip(self.params, gs):
            if g is not None:
                _torch.stand_in(p.grad, g)
        self.stood = {id(t) for t in real_states}
        for real, t in zip(real_states, states):
            _torch.stand_in(real, t)
        swapped = _swap_get_value()
        scheds = _swap_schedulers(torch)
        outer, _active.ctx = getattr(_active, "ctx", None), ctx
        lr_in = self._lrs_in(lrs)
        try:
            out = self.fn(*args, **kwargs)
            final = self._final(ctx, snap[0])
        finally:
            # (`group["lr"] *= 0.5` rebinds the same tracer: its node tells)
            lr_changed = any(g.get("lr") is not t or _C._ad_node(t)[0] != node
                             for g, _, t, node in lr_in)
            for g, lr, _, _ in lr_in:
                g["lr"] = lr
            after = self._state()
            _active.ctx = outer
            for cls, orig in scheds:
                cls.step = orig
            for mod, orig in swapped:
                mod._get_value = orig
            changed_state = _state_changed(snap[1])
            self._restore(snap)
        if not ctx.called:
            raise _NotAStep()
        if changed_state or lr_changed or after is None or \
                after[1].value[0] != before[1].value[0]:
            if changed_state:
                raise _Eager()   # an optimizer's first step initializes its state
            raise TraceError("the compiled training step changes an optimizer's param "
                             "groups while traced (their hyperparameters or parameters): a "
                             "replay cannot repeat a change made in Python; make it outside "
                             "the compiled function")
        return out, final

    def _final(self, ctx, entry):
        """Per parameter, what its .grad is after the step: None, True (the caller's
        tensor, written in place), or the new gradient's tracer."""
        final = []
        for p, old in zip(self.params, entry):
            g = p.grad
            if g is None:
                final.append(None)
            elif id(g) in ctx.grad_of:
                final.append(ctx.grad_of[id(g)])
            elif g is old:
                final.append(True)
            else:
                raise TraceError("the compiled training step sets a parameter's .grad to a "
                                 "tensor of its own, which tracejit cannot replay")
        return tuple(final)
