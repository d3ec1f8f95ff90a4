"""tracejit.export: a compiled function as a standalone C program (no Python, NumPy or
tracejit at run time).

The export is a backend-like seam, not a second code generator: it asks the compiled
function for a plan of the example arguments (`CompiledFunction._export_plan`,
csrc/export.c: the same trace, passes and emitted C the runtime replays, as data) and
spells the runtime's replay (csrc/runtime.c: bind the slots, run the kernel's groups,
check, hand out the outputs) as straight-line C around that kernel source. The
primitives the kernel calls are the extension's own sources (csrc/emit/prims.c,
reduce_prims.c, gemm.c, built with TJ_STANDALONE), whose sums run in an order written
in C, so gcc and TinyCC builds give the in-process bits.

What the plan holds that C cannot replay faithfully is refused with a TraceError that
names it: random draws (their key comes from a Python generator at every call), values
Python read from the traced arrays (a branch on data), writes into the caller's arrays,
GPU plans. Python values and arrays the function read from outside (globals,
closures, module parameters) are frozen into the export as they are now: that is what
an exported program is. Layout of the files: `_export_c.py` writes them."""

import os

import numpy as _np

from . import _C
from ._export_c import write_program

_DTYPES = ("bool", "int32", "int64", "float32", "float64")
# guard kinds (csrc/tracejit.h: TJ_GUARD_*)
_G_PYVALUE, _G_TORCH_DTYPE, _G_CAPTURE, _G_INT32, _G_ARG, _G_VALUE = range(6)
_SLOT_ARG, _SLOT_CAPTURE, _SLOT_CONST, _SLOT_KEY = range(4)


def _is_torch(x):
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _is_number(x):
    return isinstance(x, (bool, int, float, _np.generic))


def _to_numpy(x):
    if isinstance(x, _np.ndarray):
        return x
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return _np.asarray(x)


def _contiguous(x):
    """The example argument as the exported program reads it: C-contiguous."""
    if isinstance(x, _np.ndarray):
        return _np.ascontiguousarray(x)
    if _is_torch(x):
        return x.detach().contiguous()
    return x


def _target(f):
    """(the CompiledFunction, its leading static arguments, a fresh twin for the
    expected outputs) of what the user passed."""
    from . import CompiledFunction, CompiledModule, compile as _compile, _is_module
    if isinstance(f, CompiledModule):
        return f._cf, (f.module.training,), lambda: CompiledModule(f.module)._cf
    if _is_module(f):
        cm = CompiledModule(f)
        return cm._cf, (f.training,), lambda: CompiledModule(f)._cf
    if isinstance(f, CompiledFunction):
        fn = f.__wrapped__
        return f, (), lambda: _compile(fn)
    if callable(f):
        cf = _compile(f)
        return cf, (), lambda: _compile(f)
    raise TypeError(f"tracejit.export: expected a function, a compiled function or a "
                    f"torch.nn.Module, got {type(f).__name__}")


def _leaves(args):
    """The argument leaves in the order the key flattens them (csrc/args.c): arrays and
    numbers; other leaves are static."""
    out = []
    for a in args:
        for leaf in _C.tree_flatten(a)[0]:
            if isinstance(leaf, _np.ndarray) or _is_torch(leaf) or _is_number(leaf):
                out.append(leaf)
    return out


def _refuse(what):
    from . import TraceError
    raise TraceError(f"tracejit.export cannot export {what}")


_EXPORTED_DTYPES = ("bool", "int32", "int64", "float32", "float64")


def _check_plan(plan):
    """Refuses, by name, what a standalone program cannot replay faithfully."""
    if plan["draws"]:
        _refuse("random draws: the plan draws a fresh key from a Python random "
                "generator at every call (np.random / torch.rand...); export the "
                "function with the random values as an argument instead")
    if plan["n_writes"]:
        names = []
        for slot in plan["write_slots"]:
            kind, index = plan["slots"][slot][:2]
            if kind == _SLOT_ARG:
                names.append(f"argument leaf {index}")
            else:
                c = plan["captures"][index]
                names.append(f"the captured array {c[2]!r}" if c[2] is not None else
                             "a captured array")
        _refuse(f"writes into the caller's arrays ({plan['n_writes']} written back: "
                f"{', '.join(names)}; an in-place update the program would have to make "
                f"in its caller's memory)")
    if plan["out_alias"] is not None and any(a >= 0 for a in plan["out_alias"]):
        _refuse("a result that is a written argument itself")
    for kind, _index, text in plan["guards"]:
        if kind in (_G_VALUE, _G_ARG):
            _refuse(f"a value Python read from the traced arrays while tracing (a branch, "
                    f"int() or .item() on data), which its plan guards: {text}")
    for slot in plan["slots"][:plan["n_leaf_slots"]]:
        if slot[0] == _SLOT_KEY:
            _refuse("random draws (a generator's key slot)")
    for slot in plan["slots"]:
        dt = slot[2] if len(slot) > 2 else slot[0]
        if dt not in _EXPORTED_DTYPES:
            _refuse(f"an array of dtype {dt} (the export writes bool, int32, int64, float32 "
                    f"and float64 so far)")
    for kind, index, _text in plan["guards"]:
        if kind == _G_INT32 and plan["slots"][index][2] != "int32":
            _refuse(f"a Python int argument computed as {plan['slots'][index][2]} (the "
                    f"export range-checks int32 ones so far)")
    if plan["source"] is None:
        _refuse("a plan without generated C")


def export(f, *example_args, path, name=None, dynamic=None, weights="file", **example_kwargs):
    """Write `f` compiled for `example_args` as a standalone C program into the directory
    `path`: NAME.h (the API), NAME.c (the plan), NAME_kernel.c (the kernel: the C that
    TinyCC compiles in process), the primitives (tjrt_*.c), the weights (NAME.weights,
    read by NAME_open, or `weights="embed"`: NAME_weights.c, const arrays), a Makefile,
    a README and a check (`make check`: runs the program on the example arguments and
    compares with the in-process results, bit for bit). Returns `path`.

    `f`: a function (compiled here), a CompiledFunction, or a torch.nn.Module (or its
    tracejit.compile). Arrays must be on the CPU; they are passed to the program
    C-contiguous. Arrays and Python values the function reads from outside (weights,
    globals) are frozen as they are now. `dynamic={arg_index: sizes}`: those arguments'
    leading dimension becomes NAME_run's run-time `batch` argument, one of `sizes` (a
    plan per size, traced on the example's rows taken cyclically: the kernel's loop
    bounds are constants); any other batch is NAME_ESHAPE. Without it every dimension
    is the example's.

    Refused with TraceError: random draws, values read from traced arrays while tracing
    (branches on data), writes into the caller's arrays."""
    if weights not in ("file", "embed"):
        raise ValueError(f"tracejit.export: weights must be 'file' or 'embed', got {weights!r}")
    cf, lead, twin = _target(f)
    name = name or getattr(getattr(cf, "__wrapped__", None), "__name__", "model")
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name).strip("_") or "model"
    if name[0].isdigit():
        name = "m_" + name
    if example_kwargs:
        raise TypeError("tracejit.export: pass the example arguments positionally")
    args = tuple(_contiguous(a) for a in example_args)
    for leaf in _leaves(args):
        if _is_torch(leaf) and leaf.device.type != "cpu":
            raise ValueError("tracejit.export: example arrays must be on the CPU, got a "
                             f"tensor on {leaf.device}")
    sizes, dyn_args = _dynamic_spec(dynamic, args)
    variants, weights_arrays = [], None
    with _no_grad(args):
        for b in sizes:
            args_b = args if b is None else _with_batch(args, dyn_args, b)
            plan = cf._export_plan(*lead, *args_b)
            _check_plan(plan)
            expected = _expected(twin, lead, args_b)
            leaves = _leaves(args_b)
            if len(leaves) != plan["n_leaves"]:
                from . import InternalError
                raise InternalError(f"tracejit.export: {len(leaves)} argument leaves found, "
                                    f"the plan has {plan['n_leaves']}")
            inputs = [(_np.asarray(_to_numpy(x)) if not _is_number(x) else x) for x in leaves]
            ws = [_np.ascontiguousarray(_to_numpy(c[3])) for c in plan["captures"]]
            if weights_arrays is None:
                weights_arrays = ws
            elif len(ws) != len(weights_arrays) or any(
                    a.dtype != w.dtype or a.shape != w.shape or a.tobytes() != w.tobytes()
                    for a, w in zip(ws, weights_arrays)):
                _refuse(f"a function that reads other arrays from outside at batch {b} than "
                        f"at batch {sizes[0]}")
            variants.append((plan, inputs, expected, b))
    os.makedirs(path, exist_ok=True)
    write_program(path, name, variants, weights_arrays, weights)
    return path


def _dynamic_spec(dynamic, args):
    """`dynamic={arg_index: sizes}`: argument arg_index's leading dimension is the
    program's run-time `batch`, one of `sizes` (a program per size; the same sizes for
    every such argument). ([None], ()) without it."""
    if not dynamic:
        return [None], ()
    if not isinstance(dynamic, dict):
        raise TypeError(f"tracejit.export: dynamic must be a dict {{argument index: batch "
                        f"sizes}}, got {type(dynamic).__name__}")
    sizes = None
    for k, v in dynamic.items():
        if not isinstance(k, int) or not 0 <= k < len(args):
            raise ValueError(f"tracejit.export: dynamic names argument {k!r}; the function "
                             f"has {len(args)} example arguments")
        a = args[k]
        if not (isinstance(a, _np.ndarray) or _is_torch(a)) or a.ndim == 0:
            raise ValueError(f"tracejit.export: dynamic argument {k} must be an array with a "
                             f"leading dimension, got {type(a).__name__}")
        try:
            if isinstance(v, (str, bytes)) or any(not isinstance(b, int) for b in v):
                raise TypeError
            s = sorted(set(v))
        except TypeError:
            raise TypeError(f"tracejit.export: dynamic[{k}] must be the batch sizes to "
                            f"export (an iterable of ints), got {v!r}") from None
        if not s or s[0] < 1:
            raise ValueError(f"tracejit.export: dynamic[{k}]: batch sizes must be >= 1, got {v!r}")
        if sizes is not None and s != sizes:
            raise ValueError(f"tracejit.export: dynamic arguments share one batch: sizes "
                             f"{sizes} and {s}")
        sizes = s
    return sizes, tuple(dynamic)


def _with_batch(args, dyn_args, b):
    """The example arguments at batch b: their rows taken cyclically."""
    out = list(args)
    for k in dyn_args:
        a = args[k]
        if _is_torch(a):
            import torch
            out[k] = a[torch.arange(b) % a.shape[0]].contiguous()
        else:
            out[k] = _np.ascontiguousarray(a[_np.arange(b) % a.shape[0]])
    return tuple(out)


def _no_grad(args):
    """torch.no_grad() when the arguments are torch tensors (an exported program
    computes the forward only), else a null context."""
    import contextlib
    if any(_is_torch(x) for x in _leaves(args)):
        import torch
        return torch.no_grad()
    return contextlib.nullcontext()


def _expected(twin, lead, args):
    """The outputs of the in-process function for the example arguments, as the export
    computes them: the plan's TinyCC kernel (a fresh compiled function with the tier
    off) and the portable GEMM (no BLAS), flattened in the plan's output order."""
    mode = _C._tier_mode()
    prev = _C._blas_min(1 << 62)
    try:
        _C.set_tier("tcc")
        result = twin()(*lead, *args)
    finally:
        _C.set_tier(mode)
        _C._blas_min(prev)
    return [_np.ascontiguousarray(_to_numpy(x)) if not _is_number(x) else _np.asarray(x)
            for x in _C.tree_flatten(result)[0]]
