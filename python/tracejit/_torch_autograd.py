"""torch.autograd for compiled functions (CPU tensors): the adapter that lets a traced
function take part in a torch training loop.

    f = tracejit._torch_autograd.function(loss_fn)
    loss = f(params, X, y)        # tensors; some require grad
    loss.backward()               # params receive .grad; torch.optim works as usual

`loss_fn` is traced like any compiled function (the tensors arrive as tracers). The
tensors that require grad (float32/float64 leaves of the argument pytrees) are the
differentiated inputs; the others are constants of the call.

  * A scalar output (a loss): forward runs ONE compiled graph computing the value and
    the gradients (tracejit.value_and_grad, forward and backward fused); backward only
    scales the saved gradients by the incoming cotangent and hands them over (a second
    backward, with retain_graph, computes them again).
  * Any other output (a pytree of float arrays): forward runs the compiled function;
    backward runs the compiled pullback (tracejit.vjp's), which recomputes the forward
    inside its own graph, so nothing but the inputs is saved.

Backward is not itself differentiable (create_graph=True raises RuntimeError).
torch is imported lazily: importing tracejit never imports it. Tensors are shared with
NumPy without copies (CPU only); results are fresh arrays handed to torch.
"""
import numpy as np

from ._grad import NotScalarError, _inner, _leaves, _rebuild, grad, value_and_grad
from ._C import CompiledFunction

__all__ = ["function"]


def _torch():
    import torch
    return torch


def _key(arr):
    return (arr.shape, arr.dtype.str) if isinstance(arr, np.ndarray) else (type(arr),)


class _Entry:
    """The compiled pieces for one pattern of differentiated leaves."""

    def __init__(self, fn, tree, diff_pos, other_pos):
        n = len(diff_pos) + len(other_pos)

        def body(diff, other):
            flat = [None] * n
            for k, v in zip(diff_pos, diff):
                flat[k] = v
            for k, v in zip(other_pos, other):
                flat[k] = v
            args, kwargs = _rebuild(tree, iter(flat))
            return fn(*args, **kwargs)

        self.forward = CompiledFunction(body, (), ())
        self.value_and_grad = value_and_grad(body)
        self.pullback = grad(lambda diff, other, ct: _inner(body(diff, other), ct))
        self.mixed = False  # some signature gave a non-scalar output: check each call
        self.scalar = {}    # then: leaf signature -> whether the output is a float scalar


def _make_functions(torch):
    class Fused(torch.autograd.Function):
        """Scalar output: value and gradients in one compiled call."""

        @staticmethod
        def forward(ctx, entry, arrays, other, *diff):
            value, grads = entry.value_and_grad(arrays, other)
            ctx.grads = [torch.from_numpy(g) for g in grads]
            ctx.entry, ctx.arrays, ctx.other = entry, arrays, other
            return torch.from_numpy(value)

        @staticmethod
        def backward(ctx, go):
            # (torch's once_differentiable wrapper measured ~100 us per call here)
            if torch.is_grad_enabled():
                raise RuntimeError("tracejit: the backward of a compiled function is not "
                                   "differentiable (create_graph=True)")
            grads = ctx.__dict__.pop("grads", None)
            if grads is None:   # a second backward (retain_graph): computed again
                grads = [torch.from_numpy(g)
                         for g in ctx.entry.value_and_grad(ctx.arrays, ctx.other)[1]]
            # handed over, not kept: autograd adopts them as .grad without a copy
            if go.item() != 1.0:
                grads = [g * go for g in grads]
            return (None, None, None) + tuple(grads)

    class Pulled(torch.autograd.Function):
        """Any output: the compiled forward, then the compiled pullback."""

        @staticmethod
        def forward(ctx, entry, arrays, other, box, *diff):
            out = entry.forward(arrays, other)
            outs = [np.asarray(o) for o in _leaves(out, [])]
            box.append(out)   # the output's structure, for the caller
            ctx.entry, ctx.other, ctx.arrays = entry, other, arrays
            ctx.outs = [(o.shape, o.dtype) for o in outs]
            return tuple(torch.from_numpy(o) for o in outs)

        @staticmethod
        def backward(ctx, *gos):
            if torch.is_grad_enabled():
                raise RuntimeError("tracejit: the backward of a compiled function is not "
                                   "differentiable (create_graph=True)")
            cts = [np.zeros(s, d) if g is None else g.detach().numpy()
                   for g, (s, d) in zip(gos, ctx.outs)]
            grads = ctx.entry.pullback(ctx.arrays, ctx.other, tuple(cts))
            return (None, None, None, None) + tuple(torch.from_numpy(g) for g in grads)

    return Fused, Pulled


def function(fn):
    """`fn` compiled for torch tensors, taking part in torch.autograd (see the module
    docstring). The result is a plain callable; compiled variants are cached in it."""
    entries = {}
    state = []

    def call(*args, **kwargs):
        if not state:
            torch = _torch()
            state.extend((torch, torch.Tensor, (torch.float32, torch.float64)) +
                         _make_functions(torch))
        torch, tensor_type, floats, Fused, Pulled = state
        tree = (args, kwargs)
        flat, shape = [], []
        _flatten(tree, flat, shape)
        diff_pos, diff, arrays, other = [], [], [], []
        for k, v in enumerate(flat):
            if isinstance(v, tensor_type):
                if not v.is_cpu:
                    raise TypeError(f"tracejit autograd: tensors must be on the CPU, got "
                                    f"{v.device}")
                if v.requires_grad and v.dtype in floats:
                    diff_pos.append(k)
                    diff.append(v)
                    arrays.append(v.detach().numpy())
                    continue
                v = v.numpy()
            other.append(v)
        key = (tuple(diff_pos), tuple(shape))
        entry = entries.get(key)
        if entry is None:
            skeleton = _rebuild(tree, iter([None] * len(flat)))   # structure only
            other_pos = [k for k in range(len(flat)) if k not in diff_pos]
            entry = entries[key] = _Entry(fn, skeleton, diff_pos, other_pos)
        arrays, other = tuple(arrays), tuple(other)
        if not diff:
            return _to_torch(torch, entry.forward((), other))
        if not entry.mixed:   # every output so far a scalar: the fused path straight away
            try:
                return Fused.apply(entry, arrays, other, *diff)
            except NotScalarError:
                entry.mixed = True
        sig = tuple(_key(v) for v in arrays + other)
        scalar = entry.scalar.get(sig)
        if scalar is None:
            probe = entry.forward(arrays, other)
            scalar = entry.scalar[sig] = (isinstance(probe, np.ndarray) and probe.shape == ()
                                          and probe.dtype.kind == "f")
        if scalar:
            return Fused.apply(entry, arrays, other, *diff)
        box = []
        outs = Pulled.apply(entry, arrays, other, box, *diff)
        return _rebuild(box[0], iter(outs))

    call.__wrapped__ = fn
    call.compiled = lambda: [c for e in entries.values()
                             for c in (e.value_and_grad, e.forward, e.pullback)]
    return call


def _flatten(tree, leaves, shape):
    """_grad._leaves, also writing the tree's structure (sizes and dict keys) to shape."""
    if isinstance(tree, (tuple, list)):
        shape.append((type(tree), len(tree)))
        for v in tree:
            _flatten(v, leaves, shape)
    elif isinstance(tree, dict):
        shape.append(tuple(tree))
        for v in tree.values():
            _flatten(v, leaves, shape)
    else:
        leaves.append(tree)


def _to_torch(torch, out):
    if isinstance(out, (tuple, list)):
        return type(out)(_to_torch(torch, v) for v in out)
    if isinstance(out, dict):
        return {k: _to_torch(torch, v) for k, v in out.items()}
    return torch.from_numpy(out) if isinstance(out, np.ndarray) else out
