"""torch.autograd for compiled functions (CPU and CUDA tensors): what a compiled function (or
compiled nn.Module) does when torch tensors that require grad reach it under grad mode.

    f = tracejit.compile(loss_fn)
    loss = f(params, X, y)        # tensors; some require grad
    loss.backward()               # params receive .grad; torch.optim works as usual

The replay path (csrc/function.c) refuses such a tensor while flattening the
arguments and hands the call to `call` below: the no-grad path pays nothing for it.
A compiled module whose parameters require grad is routed by CompiledModule (see
tracejit/__init__.py): its parameters become differentiated inputs. `function(fn)` is
the same adapter for a plain function.

The tensors that require grad (float32/float64 leaves of the argument pytrees) are the
differentiated inputs; the others (integer tensors, tensors without grad, numbers)
are constants of the call; static arguments (static_argnames) key the variants.

  * A scalar output (a loss): forward runs ONE compiled graph computing the value and
    the gradients (tracejit.value_and_grad, forward and backward fused); backward only
    scales the saved gradients by the incoming cotangent and hands them over (a second
    backward, with retain_graph, computes them again).
  * Any other output (a pytree of float tensors): forward runs the compiled function;
    backward runs the compiled pullback (tracejit.vjp's), which recomputes the forward
    inside its own graph, so nothing but the inputs is saved.

A differentiated leaf the output does not depend on along a path autograd follows
(unused; read only through .detach(), a comparison or an integer cast) gets None, as in
eager torch, not zeros (which torch.optim would act on: Adam's weight decay). This is
found when the compiled pieces are traced (_grad.vjp_trace, _grad.with_dependencies):
the None is a static leaf of value_and_grad's and the pullback's results, and Pulled's
forward returns per output the leaves it depends on, so a replay does no work for it.
An output that depends on no leaf is marked non-differentiable (it does not require
grad, as in eager torch); Pulled's backward gives None to a leaf that no output the
backward reached depends on.

The scalar route's common case is C from the replay path's refusal to the gradients'
hand-over (csrc/ad/torch_route.c: the scan keying the variants, the node's forward, its
backward as the node class's apply); Adapter.call and _fused_backward keep every other
case. Python work there measured several times its isolated cost inside a training step.

The compiled pieces are called with the tensors themselves: autograd.Function.forward
and backward run with grad mode off, so they are read in place (no detach, no copy).
Backward is not itself differentiable (create_graph=True raises RuntimeError). CUDA
tensors take the same route: the compiled pieces are CUDA plans on torch's current stream
(a cotangent that is not exactly 1 on the CPU scales the gradients with one torch
multiply); tensors on other devices (meta, MPS) are refused. torch is imported lazily:
importing tracejit never imports it.
"""
import numpy as np

from . import _draws
from ._grad import NotScalarError, _flatten, _inner, _make, with_dependencies
from ._C import (CompiledFunction, TraceError, Tracer, _ag_backward_method, _ag_forward,
                 _ag_layout, _ag_scan, _ag_unit, _discard_writes, _strict_captures)

__all__ = ["function", "call", "GradCaptureError"]


class GradCaptureError(TraceError, TypeError):
    """A compiled function reads (from a closure, a global or a module) a torch tensor
    that requires grad while grad mode is on: only arguments take part in autograd."""


class _Entry:
    """The compiled pieces for one pattern of differentiated leaves (and statics)."""

    def __init__(self, fn, tree, diff_pos, other_pos, statics):
        n = len(diff_pos) + len(other_pos) + len(statics)

        def body(diff, other):
            flat = [None] * n
            for k, v in zip(diff_pos, diff):
                flat[k] = v
            for k, v in zip(other_pos, other):
                flat[k] = v
            for k, v in statics:
                flat[k] = v
            args, kwargs = tree.unflatten(flat)
            return fn(*args, **kwargs)

        def forward(diff, other):
            # (out, deps): per output leaf, the positions in diff of the leaves it depends
            # on (along a path autograd follows), found when traced: static thereafter
            return with_dependencies(body, diff, other)

        body.__wrapped__ = getattr(fn, "__wrapped__", fn)   # what _torch's mode inspects
        forward.__wrapped__ = body.__wrapped__
        self.forward = CompiledFunction(forward, (), ())
        self.probe = CompiledFunction(forward, (), ())   # the output's kind, writing nothing
        # None (not zeros) for a leaf the output does not depend on, as torch gives:
        # decided when traced, so the compiled results carry the None themselves
        self.value_and_grad = _make(body, 0, False, True, (), none_unused=True)
        # the pieces that recompute a call whose forward ran already write nothing
        # back (a module's running statistics are updated once per call): _recompute
        self.pullback = _make(lambda diff, other, ct: _inner(_arrays(body(diff, other)), ct),
                              0, False, False, (), none_unused=True)
        self.value_and_grad_again = _make(body, 0, False, True, (), none_unused=True)
        dicts = getattr(fn, "__tracejit_dicts__", None)
        if dicts is not None:   # a module's buffers: read from its dicts at every call
            for cf in (self.forward, self.probe, self.value_and_grad, self.pullback,
                       self.value_and_grad_again):
                cf.__wrapped__.__tracejit_dicts__ = dicts
        self.mixed = False  # some signature gave a non-scalar output: check each call
        self.scalar = {}    # then: leaf signature -> whether the output is a float scalar


def _arrays(out):
    """The leaves of a result that are Pulled's outputs (traced values and tensors; not
    its static leaves: numbers, strings, a torch.Size)."""
    return [o for o in _flatten(out)[0] if isinstance(o, (Tracer, _state[1]))]


def _strict(fn, *args):
    """fn(*args) with captured tensors that require grad refused (csrc/dlpack.c): the
    compiled pieces run with grad mode off, where such a tensor would get no gradient."""
    old = _strict_captures(True)
    try:
        return fn(*args)
    finally:
        _strict_captures(old)


def _recompute(fn, *args):
    """_strict(fn, *args) for a piece that recomputes a call (the pullback, a second
    backward): traced with _discard_writes, it does not write the caller's arrays again."""
    old = _discard_writes(True)
    try:
        return _strict(fn, *args)
    finally:
        _discard_writes(old)


def _not_differentiable(torch):
    if torch.is_grad_enabled():
        raise RuntimeError("tracejit: the backward of a compiled function is not "
                           "differentiable (create_graph=True)")


def _make_functions(torch):

    class Fused(torch.autograd.Function):
        """Scalar output: value and gradients in one compiled call."""

        # (ctx, (entry, diff, other), *diff) -> value: entry.value_and_grad(diff, other)
        # under _strict_captures, the gradients kept in ctx.grads and the job in ctx.job
        forward = staticmethod(_ag_forward)   # (in C: it runs at every training step)

        @staticmethod
        def backward(ctx, go):   # (the C apply below calls _fused_backward only when needed)
            return _fused_backward(ctx, go, ctx.__dict__.pop("grads", None))

    class Pulled(torch.autograd.Function):
        """Any output: the compiled forward, then the compiled pullback."""

        @staticmethod
        def forward(ctx, entry, arrays, other, box, *diff):
            with _draws.recording() as keys:     # the pullback recomputes these draws
                out, deps = _strict(entry.forward, arrays, other)
            ctx.keys = keys
            leaves, tree = _flatten(out)
            # the tensors are this node's outputs; the other leaves (numbers, strings,
            # a torch.Size: the result's static leaves) pass through
            pos = [k for k, o in enumerate(leaves) if isinstance(o, torch.Tensor)]
            outs = [leaves[k] for k in pos]
            box.append((tree, leaves, pos))   # the output's structure, for the caller
            deps = [deps[k] for k in pos]
            ctx.entry, ctx.other, ctx.arrays, ctx.deps = entry, other, arrays, deps
            ctx.outs = [(o.shape, o.dtype, o.device) for o in outs]
            # an output that depends on no differentiated leaf (integer and bool ones
            # among them) does not require grad, as in eager torch
            nondiff = [o for o, d in zip(outs, deps) if not d]
            if nondiff:
                ctx.mark_non_differentiable(*nondiff)
            ctx.set_materialize_grads(False)   # None: an output backward does not reach
            return tuple(outs)

        @staticmethod
        def backward(ctx, *gos):
            _not_differentiable(torch)
            # a leaf that no output reached by this backward depends on gets None, as
            # in eager torch (where each output has its own graph)
            used = {k for g, d in zip(gos, ctx.deps) if g is not None for k in d}
            n = len(ctx.arrays)
            if not used:
                return (None,) * (4 + n)
            cts = [torch.zeros(s, dtype=d, device=v) if g is None else g
                   for g, (s, d, v) in zip(gos, ctx.outs)]
            with _draws.pinned(ctx.keys):
                grads = _recompute(ctx.entry.pullback, ctx.arrays, ctx.other, tuple(cts))
            return (None,) * 4 + tuple(g if k in used else None for k, g in enumerate(grads))

    _direct_backward(torch, Fused)
    return _fast_apply(torch, Fused), _fast_apply(torch, Pulled)


def _fused_backward(ctx, go, grads):
    """Fused's backward (grads: what its forward kept, None once taken). The node's
    apply (C, _ag_backward_method) returns them itself in the common case: grad mode
    off, a cotangent of exactly 1 (loss.backward()), the gradients there."""
    # (torch's once_differentiable wrapper measured ~100 us per call here)
    torch = _state[0]
    if torch.is_grad_enabled():
        _not_differentiable(torch)
    if grads is None:   # a second backward (retain_graph): computed again
        entry, arrays, other = ctx.job
        with _draws.pinned({}):   # its draws' keys are gone: refused if it has any
            grads = _recompute(entry.value_and_grad_again, arrays, other)[1]
    # handed over, not kept: autograd adopts them as .grad without a copy
    if not _ag_unit(go):   # (go.item() measured ~1.5 us in a training step)
        grads = [None if g is None else g * go for g in grads]
    return (None, *grads)


def _direct_backward(torch, cls):
    """The engine calls a node's ctx.apply(*grads), whose generic version (torch's
    BackwardCFunction.apply) looks up and checks backward/vjp on every call: the node
    class gets its own apply, the fused node's backward in C (csrc/ad/torch_route.c).
    Left as it is if torch's structure differs from the one this relies on."""
    base = getattr(cls, "_backward_cls", None)
    generic = getattr(torch.autograd.function, "BackwardCFunction", None)
    if base is None or generic is None or base.apply is not generic.apply:
        return
    node = type(base.__name__, (base,), {"__module__": __name__})
    node.apply = _ag_backward_method(node)
    cls._backward_cls = node


def _fast_apply(torch, cls):
    """cls.apply without autograd.Function.apply's Python prologue (its functorch
    wrapper unwrapping, ~2.5 us a call here) when no functorch transform is active."""
    c_apply = super(torch.autograd.Function, cls).apply
    active = torch._C._are_functorch_transforms_active
    slow = cls.apply

    def apply(*args):
        return slow(*args) if active() else c_apply(*args)
    apply.c_apply, apply.active = c_apply, active   # (Adapter.call inlines this)
    return apply


_state = []   # torch, Tensor, float dtypes, Fused.apply, Pulled.apply: filled on first use


def _torch_state():
    if not _state:
        import torch
        _state.extend((torch, torch.Tensor, (torch.float32, torch.float64)) +
                      _make_functions(torch))
    return _state


class _STATIC:
    """Marks a static argument's place in the flattened tree."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class Adapter:
    """`fn` taking part in torch.autograd, compiled variants cached per pattern of
    differentiated leaves, tree structure and static values."""

    def __init__(self, fn, static_argnums=(), static_argnames=()):
        self.fn = fn
        self.static_argnums = frozenset(static_argnums)
        self.static_argnames = frozenset(static_argnames)
        self.entries = {}
        # set on the first call without statics: what csrc/ad/torch_route.c's
        # tj_ag_fast_call needs to run this call's common case in C
        self.fast = None

    def __call__(self, *args, **kwargs):
        return self.call(args, kwargs)

    def call(self, args, kwargs):
        if not _state:
            _torch_state()
        if self.fast is None and not self.static_argnums and not self.static_argnames:
            self.fast = (self.entries, _STATIC, _state[3].c_apply, _state[3].active)
        if self.static_argnums:
            args = tuple(_STATIC(v) if i in self.static_argnums else v
                         for i, v in enumerate(args))
        if self.static_argnames and kwargs:
            kwargs = {k: _STATIC(v) if k in self.static_argnames else v
                      for k, v in kwargs.items()}
        # the per-call walk (csrc/ad/torch_route.c): the leaves sorted into differentiated
        # tensors and others, the call's pattern, and the entry made for that pattern
        entry, key, diff, other = _ag_scan(self.entries, args, kwargs, _STATIC)
        if entry is None:
            entry = self.entries[key] = self._entry(args, kwargs)
        if not diff:
            return _strict(entry.forward, diff, other)[0]
        if not entry.mixed:   # every output so far a scalar: the fused path straight away
            try:
                fused = _state[3]   # fused(job, *diff), its wrapper's test inlined
                return (fused.c_apply((entry, diff, other), *diff) if not fused.active()
                        else fused((entry, diff, other), *diff))
            except NotScalarError:
                entry.mixed = True
        torch, tensor_type, floats, Fused, Pulled = _state
        sig = tuple(_key(v) for v in diff + other)
        scalar = entry.scalar.get(sig)
        if scalar is None:
            with torch.no_grad():
                probe = _recompute(entry.probe, diff, other)[0]
            scalar = entry.scalar[sig] = (isinstance(probe, tensor_type) and probe.shape == ()
                                          and probe.dtype in floats)
        if scalar:
            return Fused((entry, diff, other), *diff)
        box = []
        outs = Pulled(entry, diff, other, box, *diff)
        tree, leaves, pos = box[0]
        leaves = list(leaves)
        for k, o in zip(pos, outs if isinstance(outs, tuple) else (outs,)):
            leaves[k] = o
        return tree.unflatten(leaves)

    def _entry(self, args, kwargs):
        """The compiled pieces for a new pattern (made once per pattern): the leaves'
        positions from _C._ag_layout, the same walk as the per-call _ag_scan's."""
        diff_pos, other_pos, statics = _ag_layout(args, kwargs, _STATIC)
        tree = _flatten((args, kwargs))[1]   # the same walk's structure
        return _Entry(self.fn, tree, diff_pos, other_pos, statics)

    def compiled(self):
        return [c for e in self.entries.values()
                for c in (e.value_and_grad, e.forward, e.pullback)]


def function(fn, static_argnums=(), static_argnames=()):
    """`fn` compiled for torch tensors, taking part in torch.autograd (see the module
    docstring). The result is a plain callable; compiled variants are cached in it."""
    ad = Adapter(fn, static_argnums, static_argnames)

    def call(*args, **kwargs):
        return ad(*args, **kwargs)

    call.__wrapped__ = fn
    call.compiled = ad.compiled
    return call


class _ModuleCall:
    """A compiled module's own CompiledFunction met an input requiring grad: the module
    takes the autograd route with its parameters (CompiledModule catches this)."""

    @staticmethod
    def call(args, kwargs):
        raise GradCaptureError("a compiled module's call needs autograd")


module_call = _ModuleCall()


def call(cf, args, kwargs):
    """A CompiledFunction's call whose arguments hold a tensor requiring grad under grad
    mode (called by csrc/function.c): through the function's Adapter, made once."""
    ad = cf.__dict__.get("_tj_autograd")
    if ad is None:
        _torch_state()
        ad = cf.__dict__["_tj_autograd"] = Adapter(cf.__wrapped__, cf._static_argnums,
                                                   cf._static_argnames)
    return ad.call(args, kwargs)


def _key(v):
    return (tuple(v.shape), v.dtype) if hasattr(v, "dtype") else (type(v),)


class ModuleRoute:
    """A compiled nn.Module's calls once its parameters have required grad: under grad
    mode, with a parameter requiring grad, the parameters are passed to an Adapter as a
    dict argument and put in the module's place while the forward is traced; otherwise
    the module's CompiledFunction as before."""

    def __init__(self, module, static_argnames=()):
        self.module = module
        self.dicts = [m._parameters for m in module.modules()]
        dicts = self.dicts

        def forward(training, params, *args, **kwargs):
            saved = []
            try:
                for name, t in params.items():
                    i, k = name.split(".", 1)
                    d = dicts[int(i)]
                    saved.append((d, k, d[k]))
                    d[k] = t          # a tracer while the forward is traced
                return module(*args, **kwargs)
            finally:
                for d, k, t in reversed(saved):
                    d[k] = t

        forward.__name__ = forward.__qualname__ = f"{type(module).__name__}.forward"
        forward.__tracejit_dicts__ = ([m._parameters for m in module.modules()] +
                                      [m._buffers for m in module.modules()])
        self.adapter = Adapter(forward, (0,), static_argnames)

    def __call__(self, cf, *args, **kwargs):
        torch = _torch_state()[0]
        if torch.is_grad_enabled():
            params = {f"{i}.{k}": p for i, d in enumerate(self.dicts) for k, p in d.items()
                      if p is not None and p.requires_grad}
            if params:
                return self.adapter(self.module.training, params, *args, **kwargs)
        return cf(self.module.training, *args, **kwargs)

    def compiled(self):
        return self.adapter.compiled()
