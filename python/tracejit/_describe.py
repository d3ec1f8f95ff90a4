"""Argument descriptions and retrace reasons (the slow path of a cache miss).

describe() walks the arguments with the C flattening's walk (_C.tree_flatten, one
container rule) and returns one (path, kind, detail) per container structure, leaf
or static value; diff() names the first difference, e.g. "arg 0: shape (3, 4) -> (3, 5)".
"""
import numpy as np

from . import _C


def _walk(obj, path, static, out):
    if static:
        out.append((path, "static", repr(obj)))
        return
    leaves, tree = _C.tree_flatten(obj)
    paths = tree.paths()
    if paths != [""]:          # a container: its structure (types, sizes, keys)
        out.append((path, "structure", repr(tree)[len("TreeDef("):-1]))
    for leaf, sub in zip(leaves, paths):
        _leaf(leaf, path + sub, out)


def _leaf(obj, path, out):
    if type(obj) is np.ndarray:
        layout = "C-contiguous" if obj.flags.c_contiguous else "strided"
        out.append((path, "array", (str(obj.dtype), tuple(obj.shape), layout)))
    elif type(obj) in (float, int):
        out.append((path, type(obj).__name__, None))
    elif isinstance(obj, np.generic):
        out.append((path, f"numpy scalar {obj.dtype}", None))
    elif any(c.__module__ == "torch" and c.__name__ == "Tensor" for c in type(obj).__mro__):
        layout = "C-contiguous" if obj.is_contiguous() else "strided"
        out.append((path, "torch tensor", (str(obj.dtype), tuple(obj.shape), layout)))
    elif hasattr(obj, "__dlpack__"):
        a = np.from_dlpack(obj)
        layout = "C-contiguous" if a.flags.c_contiguous else "strided"
        out.append((path, f"{type(obj).__name__} array", (str(a.dtype), tuple(a.shape), layout)))
    else:
        out.append((path, "static", repr(obj)))


def describe(args, kwargs, static_argnums, static_argnames):
    out = []
    for i, a in enumerate(args):
        _walk(a, f"arg {i}", i in static_argnums, out)
    for k, v in kwargs.items():
        _walk(v, f"arg {k!r}", k in static_argnames, out)
    return out


def _fmt_shape(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def diff(old, new):
    """The first difference between two descriptions, as a sentence."""
    for (p0, k0, d0), (p1, k1, d1) in zip(old, new):
        if p0 != p1:
            return f"arguments changed: {p0} -> {p1}"
        if k0 != k1:
            return f"{p0}: {k0} -> {k1}"
        if k0 in ("array", "torch tensor") or k0.endswith(" array"):
            (dt0, s0, l0), (dt1, s1, l1) = d0, d1
            if dt0 != dt1:
                return f"{p0}: dtype {dt0} -> {dt1}"
            if s0 != s1:
                return f"{p0}: shape {_fmt_shape(s0)} -> {_fmt_shape(s1)}"
            if l0 != l1:
                return f"{p0}: layout {l0} -> {l1}"
        elif k0 == "structure" and d0 != d1:
            return f"{p0}: structure {d0} -> {d1}"
        elif d0 != d1:
            return f"{p0}: static value {d0} -> {d1}"
    if len(old) != len(new):
        return f"number of arguments: {len(old)} -> {len(new)} leaves"
    return "a captured array or a static value changed"
