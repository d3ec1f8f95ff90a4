"""tracejit.save / tracejit.load: a compiled function's plans in a file, replayed in
another process without its Python source.

A saved variant is what tracejit.export writes as C (_export.py: the plan's kernel
source and the plan spelled as C, the weights frozen), kept as data; loading compiles
the plan's C with libtcc in memory at its first call (about a millisecond) against the
primitives the extension's own kernels call (its BLAS included), so a loaded function
gives the bits of the in-process function's TinyCC kernel; it runs on one thread. What export refuses, save
refuses (random draws, branches on data, writes into arguments).

File format, version 1 (little-endian; no pickle: loading never runs code from it but
the C that tracejit generated, compiled by libtcc):

    magic b"TJFN", u32 version, u64 header bytes, u32 CRC-32 of the header, u32 0
    header: JSON (UTF-8) {"format": "tracejit.function", "version": 1, "abi": {...},
        "name": str, "variants": [{"args": [["array", dtype, shape] | ["scalar",
        dtype]...], "result": tree, "outs": [[dtype, shape]...], "source": C,
        "weights": [{"dtype", "shape", "offset", "bytes", "crc32"}...]}]}
    data: each weight's bytes at its 64-byte aligned offset

`abi` holds the primitives' identity (a hash of prims.c, reduce_prims.c, gemm.c,
ops.h and vmath.h as this tracejit ships them): a file saved by a build whose
primitives differ is refused. A result tree is ["leaf", k] (output k), ["static",
value] (a JSON number, string, bool or None), ["tuple" | "list", [trees]] or
["dict", [keys], [trees]] (string keys)."""

import ctypes
import hashlib
import json
import os
import struct
import zlib

import numpy as _np

from . import _C
from ._export import _check_plan, _contiguous, _is_number, _is_torch, _leaves, _no_grad, \
    _target, _to_numpy
from ._export_c import _CTYPE, _Program, inproc_source

VERSION = 1
_HEAD = struct.Struct("<4sIQII")
_CT = {"bool": ctypes.c_bool, "int32": ctypes.c_int32, "int64": ctypes.c_int64,
       "float32": ctypes.c_float, "float64": ctypes.c_double}
_ERRORS = {1: MemoryError, 3: IndexError, 4: ValueError, 5: OverflowError}


class LoadError(ValueError):
    """A file tracejit.load cannot use: not a saved function, truncated, corrupted, of
    another format version, or saved by a tracejit whose primitives differ."""


def _abi():
    inc = os.path.join(os.path.dirname(__file__), "_include")
    h = hashlib.sha256()
    for f in ("prims.c", "reduce_prims.c", "gemm.c", "ops.h", "vmath.h", "prims_random.h",
              "prims_special.h"):
        with open(os.path.join(inc, f), "rb") as fh:
            h.update(fh.read())
    return {"primitives": h.hexdigest()[:32], "block": 512}


def _tree(x, leaf_of):
    """The result's structure as JSON (module docstring); leaf_of(x) numbers outputs."""
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return ["tuple", [_tree(c, leaf_of) for c in x]]
    if isinstance(x, list):
        return ["list", [_tree(c, leaf_of) for c in x]]
    if type(x) is dict and all(isinstance(k, str) for k in x):
        return ["dict", list(x), [_tree(v, leaf_of) for v in x.values()]]
    if isinstance(x, _np.ndarray) or _is_torch(x) or _is_number(x):
        k = leaf_of(x)
        if k is not None:
            return ["leaf", k]
    if x is None or isinstance(x, (bool, int, float, str)):
        return ["static", x]
    from . import TraceError
    raise TraceError(f"tracejit.save cannot save a result holding {type(x).__name__} "
                     f"(tuples, lists, dicts with str keys, arrays and numbers)")


def _variant(cf, lead, twin, args, name):
    grad_off = _no_grad(args)
    with grad_off:
        plan = cf._export_plan(*lead, *args)
        _check_plan(plan)
        mode, prev = _C._tier_mode(), _C._blas_min(1 << 62)
        try:
            _C.set_tier("tcc")
            result = twin()(*lead, *args)
        finally:
            _C.set_tier(mode)
            _C._blas_min(prev)
    expected = [_np.ascontiguousarray(_to_numpy(x)) if not _is_number(x) else _np.asarray(x)
                for x in _C.tree_flatten(result)[0]]
    leaves = _leaves(args)
    inputs = [(_np.asarray(_to_numpy(x)) if not _is_number(x) else x) for x in leaves]
    weights = [_np.ascontiguousarray(_to_numpy(c[3])) for c in plan["captures"]]
    pr = _Program(name, plan, inputs, weights, expected)
    # the result's leaves in tree_flatten order are the template's: output k or static
    order = iter(plan["template_out"])

    def leaf_of(_x):
        k = next(order)
        return k if k >= 0 else None

    if any(not (isinstance(a, _np.ndarray) or _is_torch(a) or _is_number(a)) for a in args):
        from . import TraceError
        raise TraceError("tracejit.save saves functions of arrays and numbers passed "
                         "positionally (no containers or static arguments yet)")
    return pr, _tree(result, leaf_of)


def save(f, path, *example_args):
    """Save `f`'s plan for `example_args` (a compiled function, a function or a
    torch.nn.Module, as tracejit.export takes) into the file `path`; see the module
    docstring for the format. Refuses what export refuses, with the same messages."""
    if not example_args:
        raise TypeError("tracejit.save(f, path, *example_args): the example arguments "
                        "choose the variant to save")
    cf, lead, twin = _target(f)
    name = "tjf"
    args = tuple(_contiguous(a) for a in example_args)
    pr, tree = _variant(cf, lead, twin, args, name)
    blobs, off, wdesc = [], 0, []
    for w in pr.weights:
        b = w.tobytes()
        wdesc.append({"dtype": str(w.dtype), "shape": list(w.shape), "offset": off,
                      "bytes": len(b), "crc32": zlib.crc32(b)})
        pad = (-len(b)) % 64
        blobs.append(b + b"\0" * pad)
        off += len(b) + pad
    variant = {"args": [[k, dt, list(sh)] if k == "array" else [k, dt] for k, dt, sh in pr.ins],
               "result": tree, "outs": [[dt, list(sh)] for dt, sh in pr.outs],
               "source": inproc_source(pr), "weights": wdesc}
    header = json.dumps({"format": "tracejit.function", "version": VERSION, "abi": _abi(),
                         "name": name, "variants": [variant]}).encode()
    start = (_HEAD.size + len(header) + 63) // 64 * 64
    for w in wdesc:
        w["offset"] += start
    header = json.dumps({"format": "tracejit.function", "version": VERSION, "abi": _abi(),
                         "name": name, "variants": [variant]}).encode()
    start2 = (_HEAD.size + len(header) + 63) // 64 * 64
    if start2 != start:   # the offsets' digits moved the data: place it once more
        for w in wdesc:
            w["offset"] += start2 - start
        header = json.dumps({"format": "tracejit.function", "version": VERSION,
                             "abi": _abi(), "name": name, "variants": [variant]}).encode()
        start = start2
    with open(path, "wb") as fh:
        fh.write(_HEAD.pack(b"TJFN", VERSION, len(header), zlib.crc32(header), 0))
        fh.write(header)
        fh.write(b"\0" * (start - _HEAD.size - len(header)))
        for b in blobs:
            fh.write(b)
    return path


def _bad(path, why):
    raise LoadError(f"tracejit.load: {path} {why}")


def _need(cond, path, what):
    if not cond:
        _bad(path, f"is malformed ({what})")


def load(path):
    """A function saved by tracejit.save, validated (LoadError names what is wrong);
    its program compiles at the first call."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < _HEAD.size or data[:4] != b"TJFN":
        _bad(path, "is not a saved tracejit function" if data[:4] != b"TJFN" or not data
             else "is truncated")
    magic, version, hlen, hcrc, _ = _HEAD.unpack_from(data)
    if version != VERSION:
        _bad(path, f"has format version {version}; this tracejit reads version {VERSION}")
    if _HEAD.size + hlen > len(data):
        _bad(path, "is truncated (its header)")
    header = data[_HEAD.size:_HEAD.size + hlen]
    if zlib.crc32(header) != hcrc:
        _bad(path, "is corrupted (its header's checksum)")
    try:
        h = json.loads(header)
    except ValueError:
        _bad(path, "is corrupted (its header is not JSON)")
    _need(isinstance(h, dict) and h.get("format") == "tracejit.function", path, "format")
    if h.get("abi") != _abi():
        _bad(path, "was saved by a tracejit whose primitives differ from this one's; save "
                   "it again with this version")
    variants = h.get("variants")
    _need(isinstance(variants, list) and variants, path, "variants")
    out = []
    for v in variants:
        _need(isinstance(v, dict) and isinstance(v.get("source"), str), path, "source")
        for key in ("args", "outs", "weights"):
            _need(isinstance(v.get(key), list), path, key)
        ws = []
        for w in v["weights"]:
            _need(isinstance(w, dict) and w.get("dtype") in _CTYPE and
                  all(isinstance(w.get(k), int) and w[k] >= 0 for k in ("offset", "bytes")),
                  path, "weights")
            o, n = w["offset"], w["bytes"]
            if o + n > len(data):
                _bad(path, "is truncated (its weights)")
            b = data[o:o + n]
            if zlib.crc32(b) != w.get("crc32"):
                _bad(path, "is corrupted (a weight's checksum)")
            arr = _np.frombuffer(b, dtype=w["dtype"]).reshape(w["shape"]).copy()
            ws.append(arr)
        for a in v["args"]:
            _need(isinstance(a, list) and a[0] in ("array", "scalar") and a[1] in _CTYPE,
                  path, "args")
        for o in v["outs"]:
            _need(isinstance(o, list) and len(o) == 2 and o[0] in _CTYPE, path, "outs")
        out.append(_Variant(v, ws))
    return LoadedFunction(h.get("name", "tjf"), out, path)


class _Variant:
    def __init__(self, v, weights):
        self.args = [(a[0], a[1], tuple(a[2]) if a[0] == "array" else ()) for a in v["args"]]
        self.outs = [(dt, tuple(sh)) for dt, sh in v["outs"]]
        self.tree = v["result"]
        self.source = v["source"]
        self.weights = weights
        self.run = None

    def matches(self, args):
        if len(args) != len(self.args):
            return False
        for a, (kind, dt, shape) in zip(args, self.args):
            if kind == "array":
                if not isinstance(a, _np.ndarray) or str(a.dtype) != dt or a.shape != shape:
                    return False
            elif not _is_number(a) or isinstance(a, _np.ndarray):
                return False
        return True


class LoadedFunction:
    """A function tracejit.load read: called with arguments of a saved variant's dtypes
    and shapes (NumPy arrays and numbers), it runs that variant's program; other
    arguments raise TypeError naming what was saved."""

    def __init__(self, name, variants, path):
        self._name, self._variants, self._path = name, variants, path

    def _compile(self, v):
        n = self._name
        cap, (open_, run, close, msg) = _C._tcc_program(
            v.source, (f"{n}_open", f"{n}_run", f"{n}_close", f"{n}_message"))
        ptrs = (ctypes.c_void_p * max(len(v.weights), 1))(
            *[w.ctypes.data for w in v.weights])
        model = ctypes.c_void_p()
        rc = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(open_)(
            ctypes.byref(model), ptrs)
        if rc:
            raise MemoryError(f"tracejit.load: {self._path}: cannot open its program ({rc})")
        argtypes = [ctypes.c_void_p]
        argtypes += [ctypes.c_void_p if k == "array" else _CT[dt] for k, dt, _ in v.args]
        argtypes += [ctypes.c_void_p] * len(v.outs)
        fn = ctypes.CFUNCTYPE(ctypes.c_int, *argtypes)(run)
        message = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)(msg)
        closer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(close)
        v.run = (fn, model, message, closer, cap, ptrs)

    def __call__(self, *args):
        args = tuple(_np.ascontiguousarray(a) if isinstance(a, _np.ndarray) else a
                     for a in args)
        for v in self._variants:
            if v.matches(args):
                break
        else:
            want = " or ".join(repr([f"{dt}{list(sh)}" if k == "array" else dt
                                     for k, dt, sh in v.args]) for v in self._variants)
            got = [f"{a.dtype}{list(a.shape)}" if isinstance(a, _np.ndarray)
                   else type(a).__name__ for a in args]
            raise TypeError(f"{self._path}: saved for arguments {want}, called with {got}")
        if v.run is None:
            self._compile(v)
        fn, model, message = v.run[:3]
        outs = [_np.empty(sh, dtype=dt) for dt, sh in v.outs]
        cargs = [a.ctypes.data if k == "array" else a for a, (k, _, _) in zip(args, v.args)]
        rc = fn(model, *cargs, *[o.ctypes.data for o in outs])
        if rc:
            text = (message(model) or b"").decode()
            raise _ERRORS.get(rc, RuntimeError)(text or f"error {rc}")
        return _build(v.tree, outs)

    def __del__(self):
        for v in getattr(self, "_variants", ()):
            if v.run is not None:
                v.run[3](v.run[1])
                v.run = None

    def __repr__(self):
        return f"<tracejit.LoadedFunction from {self._path!r}: {len(self._variants)} variant(s)>"


def _build(tree, outs):
    kind = tree[0]
    if kind == "leaf":
        o = outs[tree[1]]
        return o[()] if o.ndim == 0 else o
    if kind == "static":
        return tree[1]
    if kind == "tuple":
        return tuple(_build(t, outs) for t in tree[1])
    if kind == "list":
        return [_build(t, outs) for t in tree[1]]
    return {k: _build(t, outs) for k, t in zip(tree[1], tree[2])}
