"""The files of an exported program (tracejit.export, _export.py): the plan of
csrc/export.c spelled as C. NAME.c replays it as csrc/runtime.c does -- bind each slot
(arguments, weights, constants, scratch, outputs), run the kernel's groups in order
(a chunked reduction in the chunks run_groups takes: its bits do not depend on the
thread count), read the kernel's error record and the trace's checks -- single-threaded.

Weights file (`NAME.weights`, version 1, little-endian): a 32-byte header (magic
"TJXW", u32 version, u32 count, u32 0, u64 plan id: the FNV-1a hash of the kernel
source and the weights' layout, so a file of another export is refused), then per
weight 32 bytes (u32 dtype code: 0 bool 1 int32 2 int64 3 float32 4 float64, u32 0,
u64 offset, u64 bytes, u64 CRC-32 (zlib's) of the bytes), then the data at 64-byte aligned
offsets. NAME_open checks all of it (NAME_EWEIGHTS and a message otherwise)."""

import os
import struct
import zlib

import numpy as _np

from ._export_files import check_c as _check_c, makefile as _makefile, readme as _readme
from ._export_files import weights_c as _weights_c

_CTYPE = {"bool": "bool", "int32": "int32_t", "int64": "int64_t", "float32": "float",
          "float64": "double"}
_BITS = {"bool": ("uint8_t", _np.uint8, 1), "int32": ("uint32_t", _np.uint32, 4),
         "int64": ("uint64_t", _np.uint64, 8), "float32": ("uint32_t", _np.uint32, 4),
         "float64": ("uint64_t", _np.uint64, 8)}
_CODE = {"bool": 0, "int32": 1, "int64": 2, "float32": 3, "float64": 4}
_SLOT_ARG, _SLOT_CAPTURE, _SLOT_CONST = 0, 1, 2
_G_INT32 = 3
_WARNINGS = (Warning,)


def _fnv(data, h=0xcbf29ce484222325):
    """FNV-1a, 64 bits (the C loader computes the same over the weights' bytes)."""
    prime, mask = 0x100000001b3, (1 << 64) - 1
    for b in bytes(data):
        h = ((h ^ b) * prime) & mask
    return h


def _strides(shape, itemsize):
    out, s = [], itemsize
    for d in reversed(shape):
        out.append(s)
        s *= d
    return list(reversed(out))


def _c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _nbytes(dtype, shape):
    n = _BITS[dtype][2]
    for d in shape:
        n *= d
    return n


class _Program:
    """What NAME.c needs, derived once from the plan."""

    def __init__(self, name, plan, inputs, weights, expected, k=0, batch=None):
        self.name, self.plan = name, plan
        self.k, self.batch = k, batch     # variant index; its run-time batch (None: static)
        self.tag = f"v{k}_"
        slots = plan["slots"]
        self.nls = plan["n_leaf_slots"]
        self.ns = plan["n_slots"]
        # argument leaves: dtype and shape; scalars by value
        self.ins = []
        arg_slot = {s[1]: (k, s) for k, s in enumerate(slots[:self.nls]) if s[0] == _SLOT_ARG}
        for i, x in enumerate(inputs):
            if isinstance(x, _np.ndarray):
                self.ins.append(("array", str(x.dtype), tuple(x.shape)))
            else:
                dt = arg_slot[i][1][2] if i in arg_slot else (
                    "float64" if isinstance(x, float) else "bool" if isinstance(x, bool)
                    else str(_np.asarray(x).dtype) if isinstance(x, _np.generic) else "int64")
                self.ins.append(("scalar", dt, ()))
        self.inputs = inputs
        self.weights = weights
        # results: graph outputs [0, n_vis); expected by output position
        self.n_vis = plan["n_results"] - plan["n_hidden"] - plan["n_writes"]
        tout = plan["template_out"]
        self.expected = [None] * self.n_vis
        for leaf, o in zip(expected, tout):
            if o >= 0:
                self.expected[o] = leaf
        self.outs = []
        for o in range(self.n_vis):
            slot = plan["out_slot_of"][o]
            e = self.expected[o]
            if slot >= self.nls:
                dt, shape = slots[slot]
            else:
                dt, shape = str(e.dtype), tuple(e.shape)
            self.outs.append((dt, tuple(shape)))
        # which output binds its slot to the caller's memory; the rest copy after the run
        self.bound = {}
        for o in range(self.n_vis):
            slot = plan["out_slot_of"][o]
            if plan["out_same_as"][o] == -1 and slot >= plan["first_out"] and slot not in self.bound:
                self.bound[slot] = o
        # internal output buffers: output slots no caller pointer binds
        self.outbuf, off = {}, 0
        for slot in range(plan["first_out"], self.ns):
            if slot in self.bound:
                continue
            dt, shape = slots[slot]
            self.outbuf[slot] = off
            off += (_nbytes(dt, shape) + 63) // 64 * 64
        self.outbuf_bytes = off
        self.int32_slots = [g[1] for g in plan["guards"] if g[0] == _G_INT32]
        self.frozen = [g[2] for g in plan["guards"] if g[0] != _G_INT32]
        src = plan["source"]
        key = src + repr([(str(w.dtype), w.shape) for w in weights])
        self.plan_id = _fnv(key.encode())

    def arg_decls(self):
        d = []
        for i, (kind, dt, shape) in enumerate(self.ins):
            d.append(f"const {_CTYPE[dt]} *in{i}" if kind == "array" else f"{_CTYPE[dt]} in{i}")
        for o, (dt, shape) in enumerate(self.outs):
            d.append(f"{_CTYPE[dt]} *out{o}")
        return d


def write_program(path, name, variants, weights, weights_mode):
    """variants: [(plan, inputs, expected, batch)], batch None for a static export."""
    prs = [_Program(name, plan, inputs, weights, expected, k, batch)
           for k, (plan, inputs, expected, batch) in enumerate(variants)]
    plan_id = _fnv(("".join(p.plan["source"] for p in prs) +
                    repr([(str(w.dtype), w.shape) for w in weights])).encode())
    for p in prs:
        p.plan_id = plan_id
    n = name
    files = {}
    files[f"{n}.h"] = _header(prs)
    files[f"{n}.c"] = _plan_c(prs, weights_mode)
    for p in prs:
        files[_kernel_file(p)] = _kernel_c(p)
    files[f"{n}_check.c"] = _check_c(prs, weights_mode)
    if weights_mode == "embed":
        files[f"{n}_weights.c"] = _weights_c(prs[0])
    files["Makefile"] = _makefile(prs, weights_mode)
    files["README.md"] = _readme(prs, weights_mode)
    inc = os.path.join(os.path.dirname(__file__), "_include")
    for src, dst in (("prims.c", "tjrt_prims.c"), ("reduce_prims.c", "tjrt_reduce.c"),
                     ("gemm.c", "tjrt_gemm.c"), ("qgemm.c", "tjrt_qgemm.c"),
                     ("ops.h", "ops.h"), ("vmath.h", "vmath.h"),
                     ("prims_random.h", "prims_random.h"),
                     ("prims_special.h", "prims_special.h"), ("prims_half.h", "prims_half.h")):
        with open(os.path.join(inc, src)) as f:
            files[dst] = f.read()
    files["tjrt.h"] = _TJRT_H
    for fname, text in files.items():
        with open(os.path.join(path, fname), "w") as f:
            f.write(text)
    if weights_mode == "file":
        with open(os.path.join(path, f"{n}.weights"), "wb") as f:
            f.write(weights_file(prs[0]))
    os.makedirs(os.path.join(path, "check"), exist_ok=True)
    with open(os.path.join(path, "check", "inputs.bin"), "wb") as f:
        for pr in prs:
            for (kind, dt, _shape), x in zip(pr.ins, pr.inputs):
                f.write(_np.ascontiguousarray(_np.asarray(x, dtype=dt)).tobytes())
    with open(os.path.join(path, "check", "expected.bin"), "wb") as f:
        for pr in prs:
            for (dt, shape), e in zip(pr.outs, pr.expected):
                f.write(_np.ascontiguousarray(_np.asarray(e, dtype=dt)).reshape(shape).tobytes())


def _kernel_file(pr):
    return f"{pr.name}_kernel.c" if pr.batch is None else f"{pr.name}_kernel_b{pr.batch}.c"


def weights_file(pr):
    head = struct.pack("<4sIIIQQ", b"TJXW", 1, len(pr.weights), 0, pr.plan_id, 0)
    table, data, off = [], [], 32 + 32 * len(pr.weights)
    off = (off + 63) // 64 * 64
    body_start = off
    for w in pr.weights:
        b = w.tobytes()
        table.append(struct.pack("<IIQQQ", _CODE[str(w.dtype)], 0, off, len(b), zlib.crc32(b)))
        pad = (-(off + len(b))) % 64
        data.append(b + b"\0" * pad)
        off += len(b) + pad
    blob = head + b"".join(table)
    blob += b"\0" * (body_start - len(blob))
    return blob + b"".join(data)


# ---- NAME.h ------------------------------------------------------------------------

def _shape_text(prs, i, kind, shape):
    """A shape for the docs, `batch` where the variants differ."""
    if len(prs) == 1:
        return str(list(shape))
    dims = [str(d) for d in shape]
    if dims and len({(p.ins[i] if kind == "in" else p.outs[i])[-1][0] for p in prs}) > 1:
        dims[0] = "batch"
    return "[" + ", ".join(dims) + "]"


def _run_decl(prs):
    pr = prs[0]
    batch = "long long batch, " if pr.batch is not None else ""
    return f"int {pr.name}_run({pr.name}_model *model, {batch}" + ", ".join(pr.arg_decls()) + ")"


def _header(prs):
    pr = prs[0]
    n, N = pr.name, pr.name.upper()
    lines = [f"/* {n}.h: a function exported by tracejit.export (standalone C99: no Python,",
             " * NumPy or tracejit). Generated; do not edit. */",
             f"#ifndef {N}_H", f"#define {N}_H", "#include <stdbool.h>", "#include <stdint.h>", "",
             "/* Error codes (0: success); " + f"{n}_message(m) tells more. */",
             f"enum {{ {N}_OK = 0, {N}_ENOMEM = 1, {N}_EWEIGHTS = 2, {N}_EINDEX = 3,",
             f"       {N}_ECHECK = 4, {N}_ERANGE = 5, {N}_EARG = 6, {N}_ESHAPE = 7 }};", "",
             f"typedef struct {n}_model {n}_model;", "",
             f"/* Opens a model: reads the weights from `weights_path` ({n}.weights; ignored",
             " * when the weights are embedded, NULL allowed) and allocates its scratch.",
             f" * 0, or an error code (*model NULL). */",
             f"int {n}_open({n}_model **model, const char *weights_path);",
             f"void {n}_close({n}_model *model);", "",
             f"/* One call of the function. Arrays are C-contiguous, of exactly these dtypes and",
             " * shapes; outputs are written by the call (the caller allocates them; an output",
             f" * overlapping an input or another output is {N}_EARG). Not reentrant for one",
             " * model (its scratch); one model per thread. */"]
    if pr.batch is not None:
        sizes = ", ".join(str(p.batch) for p in prs)
        lines.append(f"/*   batch: the leading dimension, one of {sizes} (else {N}_ESHAPE) */")
    for i, (kind, dt, shape) in enumerate(pr.ins):
        sh = _shape_text(prs, i, "in", shape) if kind == "array" else " (by value)"
        lines.append(f"/*   in{i}: {dt}{sh} */")
    for o, (dt, shape) in enumerate(pr.outs):
        lines.append(f"/*   out{o}: {dt}{_shape_text(prs, o, 'out', shape)} */")
    lines.append(_run_decl(prs) + ";")
    lines += ["", f"/* A code's name; the last error's details for a model (NULL: why the last",
              f" * {n}_open failed). */",
              f"const char *{n}_strerror(int code);",
              f"const char *{n}_message(const {n}_model *model);", "",
              "/* Optional BLAS for the products (ILP64 row-major CBLAS sgemm, dgemm, sgemv, dgemv; NULL:",
              " * the portable GEMM, whose bits are the in-process function's without BLAS). */",
              "void tjrt_set_blas(void *sgemm, void *dgemm, void *sgemv, void *dgemv);", "", "#endif", ""]
    return "\n".join(lines)


_TJRT_H = """/* tjrt.h: what the primitives of an exported tracejit program need (tjrt_prims.c,
 * tjrt_reduce.c, tjrt_gemm.c and tjrt_qgemm.c: the extension's own primitives, built with
 * -DTJ_STANDALONE). Generated by tracejit.export. */
#ifndef TJRT_H
#define TJRT_H
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#define TJ_BLOCK 512   /* elements per block of the generated loops */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunknown-pragmas"   /* omp simd without -fopenmp-simd */
#endif
void tjrt_set_blas(void *sgemm, void *dgemm, void *sgemv, void *dgemv);
#endif
"""


# ---- NAME_kernel.c: the kernel's source, as TinyCC compiles it in process ----------------

_KERNEL_HEAD = """/* {n}_kernel.c: the plan's kernel, the C tracejit emits and TinyCC compiles in
 * process (csrc/emit/emit_c.c), verbatim but for its group table's name. Generated. */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
"""


def _kernel_c(pr):
    src = pr.plan["source"]
    marker = f"}} tj_groups[{pr.plan['n_groups']}] = {{"
    if src.count(marker) != 1:
        from . import InternalError
        raise InternalError("tracejit.export: the kernel's group table was not found")
    return _KERNEL_HEAD.format(n=pr.name) + src.replace(
        marker, f"}} {pr.name}_{pr.tag}groups[{pr.plan['n_groups']}] = {{")


# ---- NAME.c: the plan ------------------------------------------------------------------

_PLAN_HEAD = r"""/* {n}.c: the plan of {n}, replayed as tracejit's runtime replays it (csrc/runtime.c):
 * bind the slots, run the kernel's groups in order (a reduction over the outer loop in
 * the runtime's fixed chunks, so the bits are the in-process function's whatever its
 * thread count), check, hand out. Generated by tracejit.export; do not edit. */
{includes}
#define NS {ns}              /* slots: leaves, scratch, outputs */
#define SPLIT_WORK 65536     /* csrc/runtime.c's TJ_SPLIT_WORK, TJ_MIN_CHUNK, ... */
#define MIN_CHUNK 16384
#define MAX_PARTS 64
#define MAX_PART_BYTES (4 << 20)

typedef struct {{
    void (*init)(void **, const long long **);
    void (*body)(void **, const long long **, long long, long long);
    void (*fin)(void **, const long long **);
    long long units, work;
    int par, acc_slot;
    long long acc_n, acc_bytes;
    void (*comb)(void *, void *, const void *, long long, long long);
}} tjx_group;
{extern}

struct {n}_model {{
    void *w[{nw}];           /* the weights */
    unsigned char *blob;     /* the weights file's bytes (NULL: embedded) */
    char *scratch;           /* {scratch} bytes */
    char *outbuf;            /* {outbuf} bytes: outputs no caller pointer receives */
    char msg[256];
}};

static const char *const errors[] = {{"ok", "out of memory", "bad weights",
    "index out of bounds", "a check failed", "an integer argument out of int32 range",
    "a NULL or overlapping argument", "a dimension that was not exported"}};
const char *{n}_strerror(int code) {{
    return code >= 0 && code < (int)(sizeof errors / sizeof errors[0]) ? errors[code] : "unknown error";
}}
static char open_msg[256];   /* why the last {n}_open failed */
const char *{n}_message(const {n}_model *m) {{ return m ? m->msg : open_msg; }}

/* The kernel's groups in order (csrc/runtime.c's run_groups, one thread). */
static int run_groups(const void *table, int ng, void **P, const long long **S) {{
    for (int gi = 0; gi < ng; gi++) {{
        const tjx_group *g = (const tjx_group *)table + gi;
        if (g->init) g->init(P, S);
        if (g->comb && g->units * g->work >= SPLIT_WORK && g->units > 1) {{
            long long ch = (MIN_CHUNK + g->work - 1) / (g->work ? g->work : 1);
            if (ch < (g->units + MAX_PARTS - 1) / MAX_PARTS) ch = (g->units + MAX_PARTS - 1) / MAX_PARTS;
            long long np = (g->units + ch - 1) / ch;
            if (np > 1 && np * g->acc_bytes <= MAX_PART_BYTES) {{
                char *parts = malloc((size_t)(np * g->acc_bytes));
                void *Q[NS + 1];
                if (!parts) return {N}_ENOMEM;
                memcpy(Q, P, sizeof Q);
                for (long long k = 0; k < np; k++) {{
                    long long u1 = (k + 1) * ch < g->units ? (k + 1) * ch : g->units;
                    Q[g->acc_slot] = parts + k * g->acc_bytes;
                    g->init(Q, S);
                    g->body(Q, S, k * ch, u1);
                }}
                for (long long k = 0; k < np; k++)
                    g->comb(P[g->acc_slot], NULL, parts + k * g->acc_bytes, g->acc_n, 0);
                free(parts);
                if (g->fin) g->fin(P, S);
                continue;
            }}
        }}
        g->body(P, S, 0, g->units);
        if (g->fin) g->fin(P, S);
    }}
    return 0;
}}
"""


_INPROC_PRELUDE = """/* (compiled in memory by tracejit.load: no headers; libtcc links these) */
typedef unsigned long size_t;
typedef _Bool bool;
typedef int int32_t;
typedef long int64_t;
#define NULL ((void *)0)
void *malloc(size_t);
void *calloc(size_t, size_t);
void free(void *);
void *memcpy(void *, const void *, size_t);
int snprintf(char *, size_t, const char *, ...);
enum {{ {N}_OK = 0, {N}_ENOMEM = 1, {N}_EWEIGHTS = 2, {N}_EINDEX = 3, {N}_ECHECK = 4,
       {N}_ERANGE = 5, {N}_EARG = 6, {N}_ESHAPE = 7 }};
typedef struct {n}_model {n}_model;
void {n}_close({n}_model *m);
"""


def inproc_source(pr):
    """The program as one unit for libtcc in memory (tracejit.load): the kernel, then the
    plan with its weights passed as pointers to {n}_open."""
    return _kernel_c(pr) + "\n" + _plan_c([pr], "pointers")


def _u8_init(b):
    return "{" + ", ".join(str(x) for x in b) + "}"


def _plan_c(prs, weights_mode):
    pr = prs[0]
    n, N = pr.name, pr.name.upper()
    if weights_mode == "pointers":   # tracejit.load: one unit with the kernel, no headers
        includes = _INPROC_PRELUDE.format(n=n, N=N)
        extern = ""
    else:
        includes = f'#include "{n}.h"\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n'
        extern = "\n".join(f"extern const tjx_group {n}_{p.tag}groups[{p.plan['n_groups']}];"
                           f"   /* {_kernel_file(p)} */" for p in prs)
    out = [_PLAN_HEAD.format(n=n, N=N, ns=max(p.ns for p in prs),
                             nw=max(len(pr.weights), 1),
                             scratch=max(p.plan["scratch_bytes"] for p in prs),
                             outbuf=max(p.outbuf_bytes for p in prs),
                             includes=includes, extern=extern)]
    if weights_mode == "embed":
        for c in range(len(pr.weights)):
            out.append(f"extern const void *const {n}_weight{c};   /* {n}_weights.c */")
    out.append(_loader(prs, weights_mode))
    for p in prs:
        out.append(_slot_tables(p))
        out.append(_run_fn(p))
    names = ", ".join([f"in{i}" for i in range(len(pr.ins))] +
                      [f"out{o}" for o in range(len(pr.outs))])
    out.append(_run_decl(prs) + " {")
    if pr.batch is None:
        out.append(f"    return {n}_run_{pr.tag}(model, {names});")
    else:
        out.append("    switch (batch) {")
        for p in prs:
            out.append(f"    case {p.batch}: return {n}_run_{p.tag}(model, {names});")
        sizes = ", ".join(str(p.batch) for p in prs)
        out += ["    default: break;", "    }",
                "    if (model) snprintf(model->msg, sizeof model->msg, \"batch = %lld: "
                f"exported for {sizes}\", batch);",
                f"    return {N}_ESHAPE;"]
    out.append("}")
    return "\n".join(out) + "\n"


def _slot_tables(pr):
    """The variant's slot strides (contiguous) and constants."""
    out, t = [], pr.tag
    for i, s in enumerate(pr.plan["slots"]):
        if i < pr.nls:
            kind, index, dt, cbytes = s
            if kind == _SLOT_CONST:
                out.append(f"static const union {{ unsigned char b[8]; double align; }} {t}c{i} = "
                           f"{{{_u8_init(cbytes)}}};")
                continue
            if kind == _SLOT_ARG:
                shape = pr.ins[index][2]
                if pr.ins[index][0] == "scalar":
                    continue
            else:
                shape = pr.weights[index].shape
        else:
            dt, shape = s
        st = _strides(shape, _BITS[dt][2]) or [0]
        out.append(f"static const long long {t}s{i}[{len(st)}] = "
                   f"{{{', '.join(f'{x}LL' for x in st)}}};")
    return "\n".join(out)


def _loader(prs, weights_mode):
    pr = prs[0]
    n, N = pr.name, pr.name.upper()
    w = pr.weights
    body = [f"int {n}_open({n}_model **model, const char *weights_path) {{",
            f"    {n}_model *m;",
            f"    if (!model) return {N}_EARG;",
            "    *model = NULL;",
            f"    if (!(m = calloc(1, sizeof *m))) return {N}_ENOMEM;",
            f"    m->scratch = malloc({max(p.plan['scratch_bytes'] for p in prs)} + 1);",
            f"    m->outbuf = malloc({max(p.outbuf_bytes for p in prs)} + 1);",
            f"    if (!m->scratch || !m->outbuf) {{ {n}_close(m); return {N}_ENOMEM; }}"]
    if weights_mode == "pointers":
        body[0] = f"int {n}_open({n}_model **model, void *const *weights) {{"
        body += [f"    m->w[{c}] = weights[{c}];" for c in range(len(w))]
    elif weights_mode == "embed":
        body += [f"    (void)weights_path;"]
        body += [f"    m->w[{c}] = (void *){n}_weight{c};" for c in range(len(w))]
    else:
        exp = ", ".join(f"{{{_CODE[str(a.dtype)]}, {a.nbytes}ULL}}" for a in w) or "{0, 0}"
        body += [f"    static const struct {{ unsigned code; unsigned long long bytes; }} want[] = {{{exp}}};",
                 f"    int rc = load_weights(m, weights_path, want, {len(w)});",
                 f"    if (rc) {{ memcpy(open_msg, m->msg, sizeof open_msg); {n}_close(m); return rc; }}"]
    body += ["    *model = m;", "    return 0;", "}", "",
             f"void {n}_close({n}_model *m) {{",
             "    if (!m) return;", "    free(m->blob);", "    free(m->scratch);",
             "    free(m->outbuf);", "    free(m);", "}", ""]
    if weights_mode != "file":
        return "\n".join(body)
    loader = r"""
static unsigned long long le(const unsigned char *p, int n) {
    unsigned long long v = 0;
    for (int k = n - 1; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

/* CRC-32 (zlib's), a byte at a time through its table */
static unsigned long long crc32(const unsigned char *p, unsigned long long n) {
    unsigned long table[256], c = 0xFFFFFFFFUL;
    for (unsigned long i = 0; i < 256; i++) {
        unsigned long t = i;
        for (int b = 0; b < 8; b++) t = (t >> 1) ^ (0xEDB88320UL & (0UL - (t & 1)));
        table[i] = t;
    }
    for (unsigned long long k = 0; k < n; k++) c = table[(c ^ p[k]) & 0xFF] ^ (c >> 8);
    return (c ^ 0xFFFFFFFFUL) & 0xFFFFFFFFUL;
}

/* The weights file (format: python/tracejit/_export_c.py), validated entirely. */
static int load_weights(NAME_model *m, const char *path,
                        const void *want_, int count) {
    const struct { unsigned code; unsigned long long bytes; } *want = want_;
    FILE *f = path ? fopen(path, "rb") : NULL;
    long size;
    if (!f) { snprintf(m->msg, sizeof m->msg, "cannot open weights file %s", path ? path : "(NULL)"); return NAMEU_EWEIGHTS; }
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        snprintf(m->msg, sizeof m->msg, "cannot read weights file %s", path);
        return NAMEU_EWEIGHTS;
    }
    if (!(m->blob = malloc((size_t)size + 1))) { fclose(f); return NAMEU_ENOMEM; }
    if (fread(m->blob, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        snprintf(m->msg, sizeof m->msg, "cannot read weights file %s", path);
        return NAMEU_EWEIGHTS;
    }
    fclose(f);
    const unsigned char *b = m->blob;
    if (size < 32 || memcmp(b, "TJXW", 4) != 0) {
        snprintf(m->msg, sizeof m->msg, "%s is not a tracejit weights file", path);
        return NAMEU_EWEIGHTS;
    }
    if (le(b + 4, 4) != 1) {
        snprintf(m->msg, sizeof m->msg, "%s: weights format version %llu, this program reads 1", path, le(b + 4, 4));
        return NAMEU_EWEIGHTS;
    }
    if (le(b + 8, 4) != (unsigned long long)count || le(b + 16, 8) != PLAN_ID) {
        snprintf(m->msg, sizeof m->msg, "%s holds the weights of another export", path);
        return NAMEU_EWEIGHTS;
    }
    if ((unsigned long long)size < 32ULL + 32ULL * (unsigned long long)count) {
        snprintf(m->msg, sizeof m->msg, "%s is truncated", path);
        return NAMEU_EWEIGHTS;
    }
    for (int c = 0; c < count; c++) {
        const unsigned char *e = b + 32 + 32 * c;
        unsigned long long off = le(e + 8, 8), bytes = le(e + 16, 8);
        if (le(e, 4) != want[c].code || bytes != want[c].bytes) {
            snprintf(m->msg, sizeof m->msg, "%s: weight %d has another dtype or size", path, c);
            return NAMEU_EWEIGHTS;
        }
        if (off % 64 || off > (unsigned long long)size || bytes > (unsigned long long)size - off) {
            snprintf(m->msg, sizeof m->msg, "%s is truncated (weight %d)", path, c);
            return NAMEU_EWEIGHTS;
        }
        if (crc32(b + off, bytes) != le(e + 24, 8)) {
            snprintf(m->msg, sizeof m->msg, "%s is corrupted (weight %d's checksum)", path, c);
            return NAMEU_EWEIGHTS;
        }
        m->w[c] = m->blob + off;
    }
    return 0;
}
"""
    loader = loader.replace("NAMEU_", f"{N}_").replace("NAME_model", f"{n}_model")
    loader = loader.replace("PLAN_ID", f"{pr.plan_id}ULL")
    return loader + "\n" + "\n".join(body)


def _run_fn(pr):
    n, N, p = pr.name, pr.name.upper(), pr.plan
    slots = p["slots"]
    t = pr.tag
    L = [f"static int {n}_run_{t}({n}_model *m, " + ", ".join(pr.arg_decls()) + ") {",
         "    void *P[NS + 1];", "    const long long *S[NS];",
         "    unsigned char sc[NS][8];", "    long long err[4] = {0, 0, 0, 0};", "    int rc;",
         "    (void)sc;",
         f"    if (!m) return {N}_EARG;", "    m->msg[0] = 0;"]
    for i, (kind, dt, shape) in enumerate(pr.ins):
        if kind == "array":
            L.append(f"    if (!in{i}) return {N}_EARG;")
    for o in range(len(pr.outs)):
        L.append(f"    if (!out{o}) return {N}_EARG;")
    # the kernel's primitives take restrict pointers: an output overlapping an input or
    # another output is refused, not computed wrong
    arrays = [(f"in{i}", _nbytes(dt, sh)) for i, (k, dt, sh) in enumerate(pr.ins)
              if k == "array"] + [(f"out{o}", _nbytes(dt, sh)) for o, (dt, sh) in
                                  enumerate(pr.outs)]
    for a in range(len(arrays)):
        for b in range(a + 1, len(arrays)):
            (x, nx), (y, ny) = arrays[a], arrays[b]
            if not y.startswith("out") or not nx or not ny:
                continue
            L += [f"    if ((unsigned long long){x} < (unsigned long long){y} + {ny}ULL &&",
                  f"        (unsigned long long){y} < (unsigned long long){x} + {nx}ULL) {{",
                  f"        snprintf(m->msg, sizeof m->msg, \"{y} overlaps {x}\");",
                  f"        return {N}_EARG;", "    }"]
    for i, s in enumerate(slots[:pr.nls]):
        kind, index, dt, _ = s
        if kind == _SLOT_CONST:
            L.append(f"    P[{i}] = (void *){t}c{i}.b; S[{i}] = NULL;")
        elif kind == _SLOT_CAPTURE:
            L.append(f"    P[{i}] = m->w[{index}]; S[{i}] = {t}s{i};")
        elif pr.ins[index][0] == "array":
            L.append(f"    P[{i}] = (void *)in{index}; S[{i}] = {t}s{i};")
        else:
            ct = _CTYPE[dt]
            if i in pr.int32_slots:
                L.append(f"    if (in{index} < -2147483647LL - 1 || in{index} > 2147483647LL) {{")
                L.append(f"        snprintf(m->msg, sizeof m->msg, \"argument in{index} = %lld is out "
                         f"of int32 range\", (long long)in{index});")
                L.append(f"        return {N}_ERANGE;")
                L.append("    }")
            L.append(f"    {{ {ct} v = ({ct})in{index}; memcpy(sc[{i}], &v, sizeof v); }}")
            L.append(f"    P[{i}] = sc[{i}]; S[{i}] = NULL;")
    for k, off in enumerate(p["scratch_off"]):
        i = p["first_scratch"] + k
        L.append(f"    P[{i}] = m->scratch + {off}; S[{i}] = {t}s{i};")
    for i in range(p["first_out"], pr.ns):
        if i in pr.bound:
            L.append(f"    P[{i}] = out{pr.bound[i]}; S[{i}] = {t}s{i};")
        else:
            L.append(f"    P[{i}] = m->outbuf + {pr.outbuf[i]}; S[{i}] = {t}s{i};")
    L += [f"    P[{pr.ns}] = err;",
          f"    if ((rc = run_groups({n}_{t}groups, {p['n_groups']}, P, S)) != 0) return rc;",
          "    if (err[0] && err[3] < 0) {",
          "        long long want = -err[3] - 1, got = err[1] / 2 + want;",
          "        snprintf(m->msg, sizeof m->msg, \"boolean array indexing assignment cannot "
          "assign %lld input values to the %lld output values where the mask is true\", want, got);",
          f"        return {N}_EINDEX;", "    }",
          "    if (err[0]) {",
          "        snprintf(m->msg, sizeof m->msg, \"index %lld is out of bounds for axis %lld "
          "with size %lld\", err[1], err[3], err[2]);",
          f"        return {N}_EINDEX;", "    }"]
    msgs = p["check_msgs"] or ()
    for c, (cls, msg) in enumerate(msgs):
        if isinstance(cls, type) and issubclass(cls, _WARNINGS):
            continue   # eager warns and goes on: so does the program
        slot = p["out_slot_of"][p["n_results"] - p["n_checks"] + c]
        text = f"{getattr(cls, '__name__', 'Error')}: {msg}"
        L += [f"    if (!*(const unsigned char *)P[{slot}]) {{",
              f"        snprintf(m->msg, sizeof m->msg, \"%s\", {_c_str(text[:240])});",
              f"        return {N}_ECHECK;", "    }"]
    for o in range(pr.n_vis):
        slot, same = p["out_slot_of"][o], p["out_same_as"][o]
        if pr.bound.get(slot) == o:
            continue
        nb = _nbytes(*pr.outs[o])
        src = f"out{same}" if same >= 0 else f"P[{slot}]"
        L.append(f"    memcpy(out{o}, {src}, {nb});")
    L += ["    return 0;", "}"]
    return "\n".join(L)
