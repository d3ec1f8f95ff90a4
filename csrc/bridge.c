/* Where the Python-free core (csrc/ir, csrc/fuse, csrc/emit) meets Python: its errors
 * become exceptions, its pass log and generated sources become str, its dtypes map to
 * NumPy's type numbers. The tracer and compile.c call the core through these.
 * Contract: each wrapper raises exactly what the code before the split raised (same
 * class, same message), so the core's callers see no difference. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

static const int typenums[TJ_NDTYPES] = {
    [TJ_BOOL] = NPY_BOOL, [TJ_I8] = NPY_INT8, [TJ_I16] = NPY_INT16, [TJ_I32] = NPY_INT32,
    [TJ_I64] = NPY_INT64, [TJ_U8] = NPY_UINT8, [TJ_U16] = NPY_UINT16, [TJ_U32] = NPY_UINT32,
    [TJ_U64] = NPY_UINT64, [TJ_F32] = NPY_FLOAT32, [TJ_F64] = NPY_FLOAT64,
    [TJ_F16] = NPY_HALF, [TJ_BF16] = NPY_VOID,   /* bfloat16: NumPy has none (never reached) */
};

/* By size, as NumPy's C names map to sized types on this platform. */
static int int_of_size(size_t size, int is_unsigned) {
    switch (size) {
    case 1: return is_unsigned ? TJ_U8 : TJ_I8;
    case 2: return is_unsigned ? TJ_U16 : TJ_I16;
    case 4: return is_unsigned ? TJ_U32 : TJ_I32;
    case 8: return is_unsigned ? TJ_U64 : TJ_I64;
    default: return -1;
    }
}

int tj_dtype_from_typenum(int typenum) {
    switch (typenum) {
    case NPY_BOOL: return TJ_BOOL;
    case NPY_FLOAT: return TJ_F32;
    case NPY_DOUBLE: return TJ_F64;
    case NPY_HALF: return TJ_F16;
    case NPY_BYTE: return TJ_I8;
    case NPY_UBYTE: return TJ_U8;
    case NPY_SHORT: return int_of_size(sizeof(short), 0);
    case NPY_USHORT: return int_of_size(sizeof(short), 1);
    case NPY_INT: return int_of_size(sizeof(int), 0);
    case NPY_UINT: return int_of_size(sizeof(int), 1);
    case NPY_LONG: return int_of_size(sizeof(long), 0);
    case NPY_ULONG: return int_of_size(sizeof(long), 1);
    case NPY_LONGLONG: return int_of_size(sizeof(long long), 0);
    case NPY_ULONGLONG: return int_of_size(sizeof(long long), 1);
    default: return -1;
    }
}

int tj_dtype_typenum(tj_dtype dt) { return typenums[dt]; }

int tj_error_raise(tj_state *st, const tj_error *e) {
    switch (e->kind) {
    case TJ_ERR_NOMEM: PyErr_NoMemory(); break;
    case TJ_ERR_VALUE: PyErr_SetString(PyExc_ValueError, e->msg); break;
    case TJ_ERR_SHAPE: {
        tj_trace_error(st, "%s", e->msg);   /* the user's line, and the refusal noted */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);          /* NumPy raises ValueError here: so do we */
        PyErr_SetObject(PyExc_ValueError, v);
        Py_XDECREF(t); Py_XDECREF(v); Py_XDECREF(tb);
        break;
    }
    default: tj_internal_error(st, "%s", e->msg); break;
    }
    return -1;
}

int tj_broadcast(tj_state *st, const tj_node *a, const tj_node *b, int *ndim, int64_t *shape) {
    tj_error err;
    return tj_shape_broadcast(a, b, ndim, shape, &err) < 0 ? tj_error_raise(st, &err) : 0;
}

/* Appends each line of text (ending in '\n') to the list `out` as a str. 0/-1. */
static int append_lines(PyObject *out, const tj_sbuf *text) {
    for (size_t i = 0; i < text->len;) {
        const char *nl = memchr(text->buf + i, '\n', text->len - i);
        size_t end = nl ? (size_t)(nl - text->buf) : text->len;
        PyObject *s = PyUnicode_FromStringAndSize(text->buf + i, (Py_ssize_t)(end - i));
        if (!s || PyList_Append(out, s) < 0) { Py_XDECREF(s); return -1; }
        Py_DECREF(s);
        i = end + 1;
    }
    return 0;
}

int tj_pipeline(tj_trace *t, tj_schedule *s, PyObject *log) {
    tj_sbuf text = {0};
    tj_error err;
    int rc = tj_pipeline_run(&t->g, s, log ? &text : NULL, &err);
    if (rc < 0) tj_error_raise(t->st, &err);
    else if (log) rc = append_lines(log, &text);
    free(text.buf);
    return rc;
}

PyObject *tj_emit_c(tj_state *st, const tj_graph *g, const tj_schedule *s) {
    tj_sbuf src;
    tj_error err;
    if (tj_emit_c_source(g, s, &src, &err) < 0) {
        tj_error_raise(st, &err);
        return NULL;
    }
    PyObject *r = PyUnicode_FromStringAndSize(src.buf, (Py_ssize_t)src.len);
    free(src.buf);
    return r;
}

PyObject *tj_schedule_text(const tj_graph *g, const tj_schedule *s) {
    tj_sbuf text = {0};
    tj_lower_dump(g, s, &text);
    if (text.failed) {
        free(text.buf);
        return PyErr_NoMemory();
    }
    PyObject *r = PyUnicode_FromStringAndSize(text.buf ? text.buf : "", (Py_ssize_t)text.len);
    free(text.buf);
    return r;
}

PyObject *tj_emit_fused(tj_state *st, const tj_graph *g, const tj_schedule *s) {
    tj_sbuf src;
    tj_error err;
    if (tj_emit_fused_source(g, s, &src, &err) < 0) {
        tj_error_raise(st, &err);
        return NULL;
    }
    if (!src.buf) return Py_NewRef(Py_None);   /* no group qualifies */
    PyObject *r = PyUnicode_FromStringAndSize(src.buf, (Py_ssize_t)src.len);
    free(src.buf);
    return r;
}

/* _op_table() -> tuple, per op in table order: (name, numpy or None, torch names
 * (a tuple), arity, kind, flags): the op table's columns that Python reads (torch's
 * vocabulary, the tests that enumerate ops). kind: "leaf", "ew", "view", "cast",
 * "red", "cat", "gath", "scan"; flags: a tuple of "comm", "cond", "costly", "effect",
 * "index", "draw". */
PyObject *tj_py_op_table(PyObject *m, PyObject *unused) {
    static const char *kinds[] = {"leaf", "ew", "view", "cast", "red", "cat", "gath", "scan"};
    static const char *flags[] = {"comm", "cond", "costly", "effect", "index", "draw"};
    PyObject *r = PyTuple_New(TJ_NOPS);
    for (int op = 0; r && op < TJ_NOPS; op++) {
        const tj_opinfo *o = &tj_ops[op];
        PyObject *torch = PyUnicode_FromString(o->torch ? o->torch : "");
        PyObject *names = torch ? PyUnicode_Split(torch, NULL, -1) : NULL;
        PyObject *tnames = names ? PyList_AsTuple(names) : NULL;
        PyObject *fl = PyList_New(0);
        for (int b = 0; fl && b < (int)(sizeof flags / sizeof *flags); b++) {
            if (!(o->flags >> b & 1)) continue;
            PyObject *s = PyUnicode_FromString(flags[b]);
            if (!s || PyList_Append(fl, s) < 0) Py_CLEAR(fl);
            Py_XDECREF(s);
        }
        PyObject *tfl = fl ? PyList_AsTuple(fl) : NULL;
        PyObject *e = tnames && tfl ? Py_BuildValue("(szOisO)", o->name, o->numpy, tnames,
                                                    o->arity, kinds[o->kind], tfl)
                                    : NULL;
        Py_XDECREF(torch); Py_XDECREF(names); Py_XDECREF(tnames); Py_XDECREF(fl); Py_XDECREF(tfl);
        if (!e) Py_CLEAR(r);
        else PyTuple_SET_ITEM(r, op, e);
    }
    return r;
}

/* _test_mark_effect(name or None): the op of that name (its NAME column) counts as
 * having an effect (tj_op_test_effect), so the passes' and emitters' checks can be
 * tested before an op has the flag; None: no op. Tests only. */
PyObject *tj_py_test_mark_effect(PyObject *m, PyObject *name) {
    int op = -1;
    if (name != Py_None) {
        const char *s = PyUnicode_AsUTF8(name);
        if (!s) return NULL;
        for (op = 0; op < TJ_NOPS && strcmp(tj_ops[op].name, s) != 0; op++) {}
        if (op == TJ_NOPS) return PyErr_Format(PyExc_ValueError, "no op named %R", name);
    }
    tj_op_test_effect(op);
    Py_RETURN_NONE;
}

/* tj_emit_cuda_source's program as a dict (the CUDA backend's tests and its launch
 * table): source, kernels [(name, grid, block, gemm: an index in gemms or -1)], gemms
 * (the products cuBLAS may run, for _cublas_resolve), n_slots, nd, param_bytes, work_bytes,
 * by_value (slots passed by value), leaf_slots [(kind, index, dtype)] (a capture's
 * index into the "captures" list tj_compile_cuda_source adds), scratch
 * [(slot, dtype, shape, byte offset)], scratch_bytes, outputs [(slot, dtype, shape)],
 * out_slot_of, err_off (the gathers' error record's offset in the workspace, or -1).
 * A group it does not compile raises st's TraceError naming the op. New
 * reference; NULL + exception. */
PyObject *tj_emit_cuda(tj_state *st, const tj_graph *g, const tj_schedule *s) {
    static const char *kinds[] = {"arg", "capture", "const", "key"};
    tj_cuda_program p;
    tj_error err;
    if (tj_emit_cuda_source(g, s, &p, &err) < 0) {
        if (err.kind == TJ_ERR_VALUE) PyErr_SetString(st->TraceError, err.msg);
        else tj_error_raise(st, &err);
        return NULL;
    }
    PyObject *d = PyDict_New(), *ks = PyList_New(0), *bv = PyList_New(0), *ls = PyList_New(0),
             *sc = PyList_New(0), *os = PyList_New(0), *of = PyList_New(0), *v = NULL;
    int ok = d && ks && bv && ls && sc && os && of;
    for (int i = 0; ok && i < p.n_launches; i++) {
        v = PyUnicode_FromFormat(p.launches[i].fin ? "tj_g%d_fin" : "tj_g%d", p.launches[i].group);
        PyObject *k = v ? Py_BuildValue("(OLii)", v, (long long)p.launches[i].grid,
                                        p.launches[i].block, p.launches[i].gemm - 1) : NULL;
        Py_CLEAR(v);
        ok = k && PyList_Append(ks, k) == 0;
        Py_XDECREF(k);
    }
    for (int i = 0; ok && i < p.n_slots; i++) {
        if (!p.by_value[i]) continue;
        PyObject *k = PyLong_FromLong(i);
        ok = k && PyList_Append(bv, k) == 0;
        Py_XDECREF(k);
    }
    for (int i = 0; ok && i < g->n_slots; i++) {
        const tj_slotdesc *sd = &g->slots[i];
        PyObject *k = Py_BuildValue("(sis)", kinds[sd->kind], sd->index, tj_dtype_name(sd->dtype));
        ok = k && PyList_Append(ls, k) == 0;
        Py_XDECREF(k);
    }
    for (int i = s->first_scratch; ok && i < s->n_slots; i++) {
        PyObject *shape = PyTuple_New(s->slot_ndim[i]);
        for (int k = 0; shape && k < s->slot_ndim[i]; k++)
            PyTuple_SET_ITEM(shape, k, PyLong_FromLongLong(s->slot_shape[i][k]));
        PyObject *k = !shape ? NULL
                      : i < s->first_out
                          ? Py_BuildValue("(isOL)", i, tj_dtype_name(s->slot_dtype[i]), shape,
                                          (long long)s->scratch_off[i - s->first_scratch])
                          : Py_BuildValue("(isO)", i, tj_dtype_name(s->slot_dtype[i]), shape);
        Py_XDECREF(shape);
        ok = k && PyList_Append(i < s->first_out ? sc : os, k) == 0;
        Py_XDECREF(k);
    }
    PyObject *gm = ok ? PyList_New(0) : NULL;
    ok = gm != NULL;
    for (int i = 0; ok && i < p.n_gemms; i++) {   /* as _cublas_resolve reads them */
        const tj_cuda_gemm *x = &p.gemms[i];
        const tj_gemm_operand *o[3] = {&x->a, &x->b, &x->c};
        PyObject *t = PyTuple_New(8);
        ok = t != NULL;
        if (ok) {
            PyTuple_SET_ITEM(t, 0, PyLong_FromLong(x->dtype));
            PyTuple_SET_ITEM(t, 1, PyLong_FromLongLong(x->M));
            PyTuple_SET_ITEM(t, 2, PyLong_FromLongLong(x->N));
            PyTuple_SET_ITEM(t, 3, PyLong_FromLongLong(x->K));
            PyTuple_SET_ITEM(t, 4, PyLong_FromLongLong(x->batch));
        }
        for (int j = 0; ok && j < 3; j++) {
            PyObject *off = PyTuple_New(TJ_MAXDIM);
            for (int k = 0; off && k < TJ_MAXDIM; k++)
                PyTuple_SET_ITEM(off, k, PyLong_FromLongLong(o[j]->off[k]));
            PyObject *op = off ? Py_BuildValue("(iiN(iii)(LLL))", o[j]->slot, o[j]->flat, off,
                                               o[j]->map[0], o[j]->map[1], o[j]->map[2],
                                               (long long)o[j]->step[0], (long long)o[j]->step[1],
                                               (long long)o[j]->step[2]) : NULL;
            ok = op != NULL;
            if (ok) PyTuple_SET_ITEM(t, 5 + j, op);
        }
        ok = ok && !PyErr_Occurred() && PyList_Append(gm, t) == 0;
        Py_XDECREF(t);
    }
    ok = ok && PyDict_SetItemString(d, "gemms", gm) == 0;
    Py_XDECREF(gm);
    for (int i = 0; ok && i < g->n_out; i++) {
        PyObject *k = PyLong_FromLong(s->out_slot_of[i]);
        ok = k && PyList_Append(of, k) == 0;
        Py_XDECREF(k);
    }
    PyObject *src = ok ? PyUnicode_FromStringAndSize(p.src.buf, (Py_ssize_t)p.src.len) : NULL;
    ok = src && PyDict_SetItemString(d, "source", src) == 0 &&
         PyDict_SetItemString(d, "kernels", ks) == 0 &&
         PyDict_SetItemString(d, "by_value", bv) == 0 &&
         PyDict_SetItemString(d, "leaf_slots", ls) == 0 &&
         PyDict_SetItemString(d, "scratch", sc) == 0 &&
         PyDict_SetItemString(d, "outputs", os) == 0 &&
         PyDict_SetItemString(d, "out_slot_of", of) == 0;
    const char *names[] = {"n_slots", "nd", "param_bytes", "work_bytes", "scratch_bytes",
                           "err_off"};
    long long vals[] = {p.n_slots, p.nd, (long long)p.param_bytes, (long long)p.work_bytes,
                        (long long)s->scratch_bytes, (long long)p.err_off};
    for (int i = 0; ok && i < 6; i++) {
        PyObject *k = PyLong_FromLongLong(vals[i]);
        ok = k && PyDict_SetItemString(d, names[i], k) == 0;
        Py_XDECREF(k);
    }
    Py_XDECREF(src); Py_XDECREF(ks); Py_XDECREF(bv); Py_XDECREF(ls); Py_XDECREF(sc);
    Py_XDECREF(os); Py_XDECREF(of);
    tj_cuda_program_free(&p);
    if (!ok) Py_CLEAR(d);
    return d;
}
