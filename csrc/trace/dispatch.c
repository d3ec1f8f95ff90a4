/* From a Python-level operation on tracers to graph nodes: operand conversion
 * (arrays read from closures become captured slots), NumPy type resolution (NumPy
 * itself decides the loop dtypes, so promotion is NumPy 2's, weak scalars included),
 * __array_ufunc__ / __array_function__, and TraceError with the user's source line.
 * Contract: a node created here has operands of its loop dtype (casts inserted). */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>
#include <frameobject.h>

/* ---- errors that point at the user's line ---------------------------------- */

/* New reference to the innermost frame outside numpy, torch and tracejit, or NULL
 * (no exception) when there is none. */
static PyFrameObject *user_frame(tj_state *st) {
    PyFrameObject *f = PyEval_GetFrame();
    Py_XINCREF(f);
    while (f) {
        PyCodeObject *code = PyFrame_GetCode(f);
        PyObject *file = code->co_filename;
        int skip = 0;
        for (Py_ssize_t i = 0; st->skip_dirs && i < PyTuple_GET_SIZE(st->skip_dirs); i++) {
            PyObject *dir = PyTuple_GET_ITEM(st->skip_dirs, i);
            if (PyUnicode_Tailmatch(file, dir, 0, PY_SSIZE_T_MAX, -1) == 1) skip = 1;
        }
        Py_DECREF(code);
        if (!skip) return f;
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    return NULL;
}

/* New reference to "\n  at FILE:LINE, in NAME\n    SOURCE" for the user's frame, or ""
 * when there is none. */
static PyObject *user_location(tj_state *st) {
    PyFrameObject *f = user_frame(st);
    if (!f) return PyUnicode_FromString("");
    PyCodeObject *code = PyFrame_GetCode(f);
    PyObject *file = code->co_filename;
    int line = PyFrame_GetLineNumber(f);
    PyObject *src = NULL, *lc = PyImport_ImportModule("linecache");
    if (lc) {
        src = PyObject_CallMethod(lc, "getline", "Oi", file, line);
        Py_DECREF(lc);
    }
    if (src) {
        PyObject *stripped = PyObject_CallMethod(src, "strip", NULL);
        Py_SETREF(src, stripped);
    }
    PyErr_Clear();
    PyObject *r = src ? PyUnicode_FromFormat("\n  at %U:%d, in %U\n    %U", file, line,
                                             code->co_name, src)
                      : PyUnicode_FromFormat("\n  at %U:%d, in %U", file, line, code->co_name);
    Py_XDECREF(src);
    Py_DECREF(code);
    Py_DECREF(f);
    return r;
}

PyObject *tj_user_line(tj_state *st) {
    PyFrameObject *f = user_frame(st);
    if (!f) return PyUnicode_FromString("");
    PyCodeObject *code = PyFrame_GetCode(f);
    int line = PyFrame_GetLineNumber(f);
    PyObject *src = NULL, *lc = PyImport_ImportModule("linecache");
    if (lc) {
        src = PyObject_CallMethod(lc, "getline", "Oi", code->co_filename, line);
        Py_DECREF(lc);
    }
    if (src) Py_SETREF(src, PyObject_CallMethod(src, "strip", NULL));
    PyErr_Clear();
    PyObject *r = src && PyUnicode_GET_LENGTH(src)
                      ? PyUnicode_FromFormat("%U:%d (`%U`)", code->co_filename, line, src)
                      : PyUnicode_FromFormat("%U:%d", code->co_filename, line);
    Py_XDECREF(src);
    Py_DECREF(code);
    Py_DECREF(f);
    return r;
}

/* The instruction the user's frame is executing, by dis's names: a subscript store, or
 * an in-place operator (BINARY_OP's NB_INPLACE_* since 3.11, INPLACE_* before). */
const char *const tj_inplace_ops[TJ_NINPLACE] = {
    "the in-place operator `+=`", "the in-place operator `&=`", "the in-place operator `//=`",
    "the in-place operator `<<=`", "the in-place operator `@=`", "the in-place operator `*=`",
    "the in-place operator `%=`", "the in-place operator `|=`", "the in-place operator `**=`",
    "the in-place operator `>>=`", "the in-place operator `-=`", "the in-place operator `/=`",
    "the in-place operator `^=`"};

/* The user's frame's bytecode, the offset it executes and dis.opname. 0, or -1 with
 * nothing held (no user frame, or a failure: cleared). */
static int user_code(tj_state *st, PyObject **bytes, Py_ssize_t *at, PyObject **names) {
    *bytes = *names = NULL;
    PyFrameObject *f = user_frame(st);
    if (!f) return -1;
    PyObject *lasti = PyObject_GetAttrString((PyObject *)f, "f_lasti");
    PyCodeObject *code = PyFrame_GetCode(f);
    *bytes = PyObject_GetAttrString((PyObject *)code, "co_code");
    PyObject *dis = PyImport_ImportModule("dis");
    *names = dis ? PyObject_GetAttrString(dis, "opname") : NULL;
    *at = lasti ? PyLong_AsSsize_t(lasti) : -1;
    Py_XDECREF(dis);
    Py_DECREF(code);
    Py_XDECREF(lasti);
    Py_DECREF(f);
    if (*names && *bytes && PyBytes_Check(*bytes) && *at >= 0 &&
        *at + 1 < PyBytes_GET_SIZE(*bytes))
        return 0;
    Py_CLEAR(*bytes);
    Py_CLEAR(*names);
    PyErr_Clear();
    return -1;
}

/* dis's name of the instruction at offset i (a borrowed static-lifetime string of
 * dis.opname's, or ""). */
static const char *op_name(PyObject *names, PyObject *bytes, Py_ssize_t i) {
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(bytes);
    PyObject *name = PySequence_GetItem(names, b[i]);
    const char *op = name ? PyUnicode_AsUTF8(name) : NULL;
    Py_XDECREF(name);   /* dis.opname holds it */
    if (!op) PyErr_Clear();
    return op ? op : "";
}

const char *tj_user_write_site(tj_state *st) {
    PyObject *bytes, *names;
    Py_ssize_t i;
    if (user_code(st, &bytes, &i, &names) < 0) return NULL;
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(bytes);
    const char *op = op_name(names, bytes, i), *r = NULL;
    if (!strcmp(op, "STORE_SUBSCR"))
        r = "an assignment into an array (`a[...] = value`)";
    else if (!strcmp(op, "BINARY_OP") && b[i + 1] >= 13 && b[i + 1] < 13 + TJ_NINPLACE)
        r = tj_inplace_ops[b[i + 1] - 13];
    else if (!strncmp(op, "INPLACE_", 8))
        r = "an in-place operator";
    Py_DECREF(names);
    Py_DECREF(bytes);
    return r;
}

int tj_user_augmented_subscript(tj_state *st) {
    PyObject *bytes, *names;
    Py_ssize_t i, n;
    if (user_code(st, &bytes, &i, &names) < 0) return 0;
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(bytes);
    const char *op = op_name(names, bytes, i);
    int r = (!strcmp(op, "BINARY_OP") && b[i + 1] >= 13) || !strncmp(op, "INPLACE_", 8);
    n = PyBytes_GET_SIZE(bytes);
    for (i += 2; r && i + 1 < n; i += 2) {   /* the stack shuffle, then the store */
        op = op_name(names, bytes, i);
        if (!strcmp(op, "STORE_SUBSCR")) break;
        r = !strcmp(op, "CACHE") || !strcmp(op, "SWAP") || !strncmp(op, "ROT_", 4);
    }
    r = r && i + 1 < n;
    Py_DECREF(names);
    Py_DECREF(bytes);
    return r;
}

static PyObject *error_at(tj_state *st, PyObject *cls, const char *fmt, va_list va) {
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    if (!msg) return NULL;
    PyObject *loc = user_location(st);
    if (!loc) { Py_DECREF(msg); return NULL; }
    PyErr_Format(cls, "%U%U", msg, loc);
    Py_DECREF(msg);
    Py_DECREF(loc);
    return NULL;
}

PyObject *tj_trace_error(tj_state *st, const char *fmt, ...) {
    va_list va;
    va_start(va, fmt);
    error_at(st, st->TraceError, fmt, va);
    va_end(va);
    tj_trace_note_refusal();
    return NULL;
}

PyObject *tj_error_at(tj_state *st, PyObject *cls, const char *fmt, ...) {
    va_list va;
    va_start(va, fmt);
    error_at(st, cls, fmt, va);
    va_end(va);
    return NULL;
}

/* numpy.exceptions.AxisError(axis, ndim), as NumPy raises it. -1. */
int tj_axis_error(long axis, int ndim) {
    PyObject *mod = PyImport_ImportModule("numpy.exceptions");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "AxisError") : NULL;
    Py_XDECREF(mod);
    if (!cls) return -1;
    PyObject *exc = PyObject_CallFunction(cls, "li", axis, ndim);
    if (exc) {
        PyErr_SetObject(cls, exc);
        Py_DECREF(exc);
    }
    Py_DECREF(cls);
    return -1;
}

int tj_norm_axis(PyObject *o, int ndim, int *axis) {
    long a = PyLong_AsLong(o);
    if (a == -1 && PyErr_Occurred()) return -1;
    if (a < -ndim || a >= ndim) return tj_axis_error(a, ndim);
    *axis = (int)(a < 0 ? a + ndim : a);
    return 0;
}

PyObject *tj_arg(PyObject *args, PyObject *kwargs, Py_ssize_t i, const char *name,
                 PyObject *dflt) {
    if (args && i < PyTuple_GET_SIZE(args)) return PyTuple_GET_ITEM(args, i);
    PyObject *v = kwargs ? PyDict_GetItemString(kwargs, name) : NULL;
    return v ? v : dflt;
}

/* ---- operands --------------------------------------------------------------- */

static int32_t const_node(tj_trace *t, int dtype, int weak, tj_scalar v) {
    tj_slotdesc d = {.kind = TJ_SLOT_CONST, .dtype = dtype, .contig = 1, .value = v};
    return tj_trace_leaf(t, TJ_OP_CONST, &d, weak, 0, NULL);
}

/* Where the traced function can find `arr` again at call time: a closure cell,
 * a global name, or (fallback) the object itself. New reference to (kind, where, name). */
PyObject *tj_capture_source(tj_trace *t, PyObject *arr) {
    PyObject *fn = t->fn;
    /* compile(nn.Module): the module's parameter and buffer dicts, read at call time */
    PyObject *dicts = PyObject_GetAttrString(fn, "__tracejit_dicts__");
    if (!dicts) PyErr_Clear();
    for (Py_ssize_t i = 0; dicts && PyList_Check(dicts) && i < PyList_GET_SIZE(dicts); i++) {
        PyObject *dict = PyList_GET_ITEM(dicts, i), *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Check(dict) && PyDict_Next(dict, &pos, &key, &value))
            if (value == arr) {
                Py_DECREF(dicts);
                return Py_BuildValue("(iOO)", 3, dict, key);
            }
    }
    Py_XDECREF(dicts);
    if (PyFunction_Check(fn)) {
        PyObject *cells = PyFunction_GetClosure(fn);
        PyCodeObject *code = (PyCodeObject *)PyFunction_GetCode(fn);
        PyObject *names = PyObject_GetAttrString((PyObject *)code, "co_freevars");
        if (!names) return NULL;
        for (Py_ssize_t i = 0; cells && i < PyTuple_GET_SIZE(cells); i++) {
            PyObject *cell = PyTuple_GET_ITEM(cells, i);
            if (PyCell_GET(cell) == arr && i < PyTuple_GET_SIZE(names)) {
                PyObject *r = Py_BuildValue("(iOO)", 0, cell, PyTuple_GET_ITEM(names, i));
                Py_DECREF(names);
                return r;
            }
        }
        Py_DECREF(names);
        PyObject *globals = PyFunction_GetGlobals(fn), *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(globals, &pos, &key, &value))
            if (value == arr) return Py_BuildValue("(iOO)", 1, globals, key);
    }
    return Py_BuildValue("(iOO)", 2, arr, Py_None);
}

static int32_t capture_array(tj_trace *t, PyArrayObject *a) {
    int dt = tj_dtype_from_typenum(PyArray_TYPE(a));
    if (dt < 0 || !PyArray_ISNOTSWAPPED(a) || PyArray_NDIM(a) > TJ_MAXDIM) {
        PyErr_Format(PyExc_TypeError,
                     "the traced function reads an array of dtype %S and %d dimensions; tracejit "
                     "supports " TJ_SUPPORTED_DTYPES " in native byte order, up to %d dimensions",
                     (PyObject *)PyArray_DESCR(a), PyArray_NDIM(a), TJ_MAXDIM);
        return -1;
    }
    /* The same array read twice is one slot; after a write, its written contents. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(t->captures); i++) {
        PyObject *c = PyList_GET_ITEM(t->captures, i);
        if (PyTuple_GET_ITEM(c, 3) == (PyObject *)a)   /* its contents now */
            return tj_write_current(t, (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(c, 4)));
    }
    PyObject *src = tj_capture_source(t, (PyObject *)a);
    if (!src) return -1;
    tj_slotdesc d = {.kind = TJ_SLOT_CAPTURE, .index = (int)PyList_GET_SIZE(t->captures),
                     .dtype = dt, .contig = (uint8_t)(PyArray_IS_C_CONTIGUOUS(a) != 0)};
    int64_t shape[TJ_MAXDIM];
    for (int i = 0; i < PyArray_NDIM(a); i++) shape[i] = PyArray_DIM(a, i);
    int32_t id = tj_trace_leaf(t, TJ_OP_CAPTURE, &d, 0, PyArray_NDIM(a), shape);
    if (id < 0) { Py_DECREF(src); return -1; }
    PyObject *entry = Py_BuildValue("(OOOOi)", PyTuple_GET_ITEM(src, 0), PyTuple_GET_ITEM(src, 1),
                                    PyTuple_GET_ITEM(src, 2), (PyObject *)a, (int)id);
    Py_DECREF(src);
    if (!entry || PyList_Append(t->captures, entry) < 0) { Py_XDECREF(entry); return -1; }
    Py_DECREF(entry);
    return id;
}

int32_t tj_operand(tj_trace *t, PyObject *o) {
    if (tj_is_tracer(o)) {
        tj_tracer *x = (tj_tracer *)o;
        if (x->trace != t) {
            tj_trace_error(t->st, x->trace->live ? "a tracer of another function's trace was "
                           "used here"
                                          : "a tracer escaped its trace: a traced value was "
                                            "stored and used after the compiled function "
                                            "returned; return it as an output instead");
            return -1;
        }
        return x->id;
    }
    /* numpy scalars first: np.float64 is a float subclass, but strongly typed */
    if (PyArray_IsScalar(o, Generic)) {
        PyArray_Descr *descr = PyArray_DescrFromScalar(o);
        if (!descr) return -1;
        int dt = tj_dtype_from_typenum(descr->type_num);
        Py_DECREF(descr);
        if (dt < 0) {
            PyErr_Format(PyExc_TypeError, "numpy scalar of type %s is not supported by tracejit "
                         "(supported: " TJ_SUPPORTED_DTYPES ")", Py_TYPE(o)->tp_name);
            return -1;
        }
        tj_scalar v;
        if (dt >= TJ_F32) v.f = PyFloat_AsDouble(o);
        else if (dt == TJ_BOOL) v.i = PyObject_IsTrue(o);
        else if (dt == TJ_U64) v.i = (int64_t)PyLong_AsUnsignedLongLong(o);
        else v.i = PyLong_AsLongLong(o);
        if (PyErr_Occurred()) return -1;
        return const_node(t, dt, 0, v);
    }
    if (PyBool_Check(o)) return const_node(t, TJ_BOOL, 0, (tj_scalar){.i = o == Py_True});
    if (PyLong_Check(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (overflow > 0 && !t->torch) {   /* in uint64's range: exact, for uint64 arrays */
            unsigned long long u = PyLong_AsUnsignedLongLong(o);
            if (!PyErr_Occurred()) return const_node(t, TJ_U64, 3, (tj_scalar){.i = (int64_t)u});
            PyErr_Clear();
        }
        if (overflow) {
            /* beyond int64: still a weak int; usable with float operands only */
            double big = PyLong_AsDouble(o);
            if (big == -1.0 && PyErr_Occurred()) return -1;
            return const_node(t, TJ_F64, 2, (tj_scalar){.f = big});
        }
        return const_node(t, TJ_I64, 1, (tj_scalar){.i = v});
    }
    if (PyFloat_Check(o)) return const_node(t, TJ_F64, 1, (tj_scalar){.f = PyFloat_AS_DOUBLE(o)});
    if (PyArray_CheckExact(o)) return capture_array(t, (PyArrayObject *)o);
    if (PyArray_Check(o)) {   /* np.matrix multiplies as matrices: its semantics are not ours */
        tj_trace_error(t->st, "the traced function uses an array of the ndarray subclass %R (read "
                       "from outside or made inside it); tracejit computes with plain ndarray "
                       "semantics: use np.asarray(...) of it", (PyObject *)Py_TYPE(o));
        return -1;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        /* A literal nested sequence: a constant array, made once while tracing. */
        PyObject *arr = PyArray_FROM_O(o);
        if (!arr) return -1;
        int32_t id = capture_array(t, (PyArrayObject *)arr);
        Py_DECREF(arr);
        return id;
    }
    if (tj_dl_kind(t->st, o) == TJ_LIB_TORCH) return tj_capture_torch(t, o);
    tj_trace_error(t->st, "an operand of type %s cannot be used in a traced computation",
                   Py_TYPE(o)->tp_name);
    return -1;
}

/* _capture(array): the running trace's captured leaf of a NumPy array, as a tracer: one
 * the traced function reads from outside (_effects._stand_in stands it in for the
 * array, so NumPy code on it alone is traced too, never a constant) or one NumPy's
 * factory made while tracing (_effects._making). Notes that the trace did (a trace that
 * then fails is retried without: compile.c's trace_passes). */
PyObject *tj_trace_capture(PyObject *m, PyObject *arr) {
    tj_trace *t = tj_trace_current();
    if (!t || !t->live || !PyArray_CheckExact(arr)) {
        PyErr_SetString(PyExc_TypeError, "_capture(ndarray), while tracing");
        return NULL;
    }
    int32_t id = capture_array(t, (PyArrayObject *)arr);
    if (id < 0) return NULL;
    t->outside = 1;
    return tj_tracer_new(t, id);
}

/* ---- node construction ------------------------------------------------------ */

static int32_t add_node(tj_trace *t, int op, int dtype, int weak, int ndim, const int64_t *shape,
                        int32_t a, int32_t b, int32_t c) {
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = (int16_t)op;
    n.dtype = (uint8_t)dtype;
    n.weak = (uint8_t)weak;
    n.ndim = (uint8_t)ndim;
    if (ndim) memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    n.in[0] = a; n.in[1] = b; n.in[2] = c;
    n.slot = -1;
    return tj_trace_add_node(t, &n);
}

/* Converts node id to dtype dt; constants are converted in place of a CAST node. A
 * Python int must fit an integer dt (NEP 50's OverflowError), unless `wrap` (np.where
 * converts it as an unsafe cast; a comparison's masked operand). */
static int32_t cast_to(tj_trace *t, int32_t id, int dt, int wrap) {
    tj_node *n = &t->g.nodes[id];
    if (n->weak == 2 && dt < TJ_F32) {   /* a Python int beyond int64 */
        char msg[128];
        snprintf(msg, sizeof msg, "Python integer %.0f out of bounds for %s", n->value.f,
                 tj_dtype_name(dt));
        PyErr_SetString(PyExc_OverflowError, msg);
        return -1;
    }
    if (n->weak == 3 && dt != TJ_U64) {   /* a Python int in (int64, uint64]'s range */
        tj_scalar r;
        if (!tj_dtype_is_float(dt) && !wrap) {
            PyErr_Format(PyExc_OverflowError, "Python integer %llu out of bounds for %s",
                         (unsigned long long)n->value.i, tj_dtype_name(dt));
            return -1;
        }
        if (tj_eval_scalar(TJ_OP_CAST, TJ_U64, dt, &n->value, &r) < 0) return -1;
        return const_node(t, dt, 0, r);
    }
    if (n->dtype == dt) return id;
    if (n->op == TJ_OP_SCALAR && n->weak == 1 && n->dtype == TJ_I64 && dt != TJ_I64 &&
        !tj_dtype_is_float(dt) && dt != TJ_BOOL && !t->torch && !wrap) {
        /* a Python int argument computed with as a narrower integer: its range is
         * checked at every call (NumPy's OverflowError), csrc/guards.c */
        t->g.slots[n->slot].fits = (uint8_t)dt;
    }
    if (n->op == TJ_OP_CONST) {
        tj_scalar v = n->value, r;
        int from = n->dtype;
        if (n->weak == 1 && from == TJ_I64 && !tj_dtype_is_float(dt) && dt != TJ_BOOL &&
            !t->torch && !wrap && !tj_dtype_holds(dt, v.i, 0)) {   /* NEP 50: a Python int must fit
                                                             (torch wraps it) */
            PyErr_Format(PyExc_OverflowError, "Python integer %lld out of bounds for %s",
                         (long long)v.i, tj_dtype_name(dt));
            return -1;
        }
        /* one element of the cast primitive: NumPy's conversion, as the kernels do */
        if (tj_eval_scalar(TJ_OP_CAST, from, dt, &v, &r) < 0) {
            tj_internal_error(t->st, "no cast from %s to %s", tj_dtype_name(from), tj_dtype_name(dt));
            return -1;
        }
        return const_node(t, dt, 0, r);
    }
    int64_t shape[TJ_MAXDIM];
    memcpy(shape, n->shape, sizeof shape);
    return add_node(t, TJ_OP_CAST, dt, 0, n->ndim, shape, id, -1, -1);
}

/* The dtype object NumPy should see for a node: weak scalars as int/float. */
static PyObject *numpy_view_of(tj_trace *t, int32_t id, int as_value) {
    tj_state *st = t->st;
    const tj_node *n = &t->g.nodes[id];
    if ((n->weak && n->dtype == TJ_I64) || n->weak == 2 || n->weak == 3)
        return as_value ? PyLong_FromLong(0) : Py_NewRef(st->py_int);
    if (n->weak && n->dtype == TJ_F64) return as_value ? PyFloat_FromDouble(0) : Py_NewRef(st->py_float);
    return Py_NewRef(st->dtypes[n->dtype]);
}

static int dtype_of_descr(PyObject *d) {
    if (!PyArray_DescrCheck(d)) return -1;
    return tj_dtype_from_typenum(((PyArray_Descr *)d)->type_num);
}

/* NumPy's loop dtypes for op on the operands: loop[] for inputs, *out for the result. */
static int resolve(tj_trace *t, int op, int nargs, const int32_t *ids, int *loop, int *out) {
    tj_state *st = t->st;
    const char *name = tj_ops[op].numpy;
    if (t->torch || !name) return tj_torch_resolve(t, op, nargs, ids, loop, out);
    if (op == TJ_OP_WHERE) {
        PyObject *a = numpy_view_of(t, ids[1], 1), *b = numpy_view_of(t, ids[2], 1);
        PyObject *r = (a && b) ? PyObject_CallMethod(st->numpy, "result_type", "OO", a, b) : NULL;
        Py_XDECREF(a); Py_XDECREF(b);
        if (!r) return -1;
        int dt = dtype_of_descr(r);
        Py_DECREF(r);
        loop[0] = TJ_BOOL;
        loop[1] = loop[2] = *out = dt;
        if (dt < 0) { tj_trace_error(t->st, "numpy.where on these operands computes in a dtype tracejit does not support"); return -1; }
        return 0;
    }
    PyObject *types = PyTuple_New(nargs + 1);
    if (!types) return -1;
    /* Python numbers only (`n > 2` of a Python int argument): Python's arithmetic,
     * int64 and float64 (NumPy resolves two Python types to object) */
    int all_weak = 1;
    for (int i = 0; i < nargs; i++) all_weak &= t->g.nodes[ids[i]].weak != 0;
    for (int i = 0; i < nargs; i++) {
        PyObject *v = all_weak ? Py_NewRef(st->dtypes[t->g.nodes[ids[i]].dtype])
                               : numpy_view_of(t, ids[i], 0);
        if (!v) { Py_DECREF(types); return -1; }
        PyTuple_SET_ITEM(types, i, v);
    }
    PyTuple_SET_ITEM(types, nargs, Py_NewRef(Py_None));
    if (!st->ufunc_of[op]) {
        Py_DECREF(types);
        tj_internal_error(t->st, "op %s has no numpy ufunc to resolve its dtypes", tj_ops[op].name);
        return -1;
    }
    PyObject *r = PyObject_CallMethod(st->ufunc_of[op], "resolve_dtypes", "(O)", types);
    if (!r) { Py_DECREF(types); return -1; }
    for (int i = 0; i <= nargs; i++) {
        int dt = dtype_of_descr(PyTuple_GET_ITEM(r, i));
        if (dt < 0) {
            tj_trace_error(t->st, "numpy.%s on %R computes in %R, which tracejit does not support "
                           "(supported: " TJ_SUPPORTED_DTYPES ")",
                           name, types, PyTuple_GET_ITEM(r, i));
            Py_DECREF(r); Py_DECREF(types);
            return -1;
        }
        if (i < nargs) loop[i] = dt; else *out = dt;
    }
    if (nargs == 2 && op >= TJ_OP_EQ && op <= TJ_OP_GE && loop[0] != loop[1] &&
        tj_dtype_kind(loop[0]) + tj_dtype_kind(loop[1]) == 'i' + 'u') {
        Py_DECREF(r);                  /* NumPy 2's uint64-with-int64 comparison loops */
        Py_DECREF(types);
        return 1;
    }
    int half = loop[0] >= TJ_F16 || loop[nargs - 1] >= TJ_F16;   /* computed in float32 */
    int ok = (tj_ops[op].mask >> (half ? TJ_F32 : loop[0])) & 1;
    for (int i = 1; i < nargs; i++) ok &= loop[i] == loop[0];
    ok &= tj_ops[op].out == TJ_O_BOOL ? *out == TJ_BOOL : *out == loop[0];
    if (!ok) {
        tj_trace_error(t->st, "numpy.%s on %R uses the loop %R, which tracejit does not implement",
                       name, types, r);
        Py_DECREF(r); Py_DECREF(types);
        return -1;
    }
    Py_DECREF(r);
    Py_DECREF(types);
    return 0;
}

static int32_t apply_ids(tj_trace *t, int op, int nargs, int32_t *ids);

/* A comparison of a uint64 with an int64 by value, as NumPy's mixed loop: where the
 * signed operand is negative the answer is known (it is the smaller), elsewhere both
 * compare as uint64. loop[] is NumPy's (one uint64, one int64). */
static int32_t mixed_compare(tj_trace *t, int op, int32_t *ids, const int *loop) {
    int si = tj_dtype_kind(loop[0]) == 'i' ? 0 : 1;
    int32_t s = cast_to(t, ids[si], loop[si], 1);
    int32_t zero = s < 0 ? -1 : const_node(t, loop[si], 0, (tj_scalar){.i = 0});
    int32_t neg_ids[2] = {s, zero}, u_ids[2];
    int32_t neg = zero < 0 ? -1 : apply_ids(t, TJ_OP_LT, 2, neg_ids);
    for (int i = 0; i < 2 && neg >= 0; i++)
        if ((u_ids[i] = cast_to(t, ids[i], TJ_U64, 1)) < 0) return -1;
    int32_t cmp = neg < 0 ? -1 : apply_ids(t, op, 2, u_ids);
    /* the answer where the signed operand (left when si == 0) is negative */
    int known = op == TJ_OP_NE || ((op == TJ_OP_LT || op == TJ_OP_LE) == (si == 0) &&
                                   op != TJ_OP_EQ);
    int32_t k = cmp < 0 ? -1 : const_node(t, TJ_BOOL, 0, (tj_scalar){.i = known});
    int32_t w_ids[3] = {neg, k, cmp};
    return k < 0 ? -1 : apply_ids(t, TJ_OP_WHERE, 3, w_ids);
}

/* A comparison of an integer array with a Python int it cannot hold: NumPy 2 compares
 * by value (np.uint8 array > -1 is all True), so both are compared in int64, or as
 * the uint64-with-int64 loop. A Python int argument is compared so at every call.
 * -2: not such a comparison. */
static int32_t weak_compare(tj_trace *t, int op, int32_t *ids, const int *loop) {
    for (int k = 0; k < 2; k++) {
        const tj_node *c = &t->g.nodes[ids[k]], *x = &t->g.nodes[ids[1 - k]];
        int a = loop[1 - k];
        if (c->weak == 2 && !x->weak && a != TJ_BOOL && !tj_dtype_is_float(a)) {
            /* beyond uint64: the answer is its sign's, everywhere (x == x: all True) */
            int pos = c->value.f > 0, lt = op == TJ_OP_LT || op == TJ_OP_LE;
            int known = op == TJ_OP_NE || (op != TJ_OP_EQ && (lt == (k == 1)) == pos);
            int32_t xx[2] = {ids[1 - k], ids[1 - k]};
            return apply_ids(t, known ? TJ_OP_EQ : TJ_OP_NE, 2, xx);
        }
        if (!(c->weak == 1 && c->dtype == TJ_I64) && c->weak != 3) continue;
        if (x->weak || a == TJ_BOOL || tj_dtype_is_float(a) || a == TJ_I64) continue;
        if (c->op == TJ_OP_CONST && (c->weak == 3 ? a == TJ_U64 : tj_dtype_holds(a, c->value.i, 0)))
            continue;
        int m[2];
        m[1 - k] = a == TJ_U64 ? TJ_U64 : c->weak == 3 && tj_dtype_kind(a) == 'u' ? TJ_U64 : TJ_I64;
        m[k] = c->weak == 3 ? TJ_U64 : TJ_I64;
        if (m[0] != m[1]) return mixed_compare(t, op, ids, m);
        int32_t w[2];
        for (int i = 0; i < 2; i++)
            if ((w[i] = cast_to(t, ids[i], m[i], 1)) < 0) return -1;
        return apply_ids(t, op, 2, w);
    }
    return -2;
}

static int32_t apply_ids(tj_trace *t, int op, int nargs, int32_t *ids) {
    int loop[3] = {0, 0, 0}, out = 0, weak = 1, ndim;
    int64_t shape[TJ_MAXDIM];
    int rc = resolve(t, op, nargs, ids, loop, &out);
    if (rc < 0) return -1;
    if (rc == 1) return mixed_compare(t, op, ids, loop);
    if (nargs == 2 && op >= TJ_OP_EQ && op <= TJ_OP_GE && !t->torch) {
        int32_t r = weak_compare(t, op, ids, loop);
        if (r != -2) return r;
    }
    tj_node acc;
    memset(&acc, 0, sizeof acc);
    for (int i = 0; i < nargs; i++) {
        const tj_node *n = &t->g.nodes[ids[i]];
        weak = weak && n->weak;
        if (i == 0) { acc.ndim = n->ndim; memcpy(acc.shape, n->shape, sizeof acc.shape); continue; }
        if (tj_broadcast(t->st, &acc, n, &ndim, shape) < 0) return -1;
        acc.ndim = (uint8_t)ndim;
        memcpy(acc.shape, shape, sizeof shape);
    }
    for (int i = 0; i < nargs; i++)
        if ((ids[i] = cast_to(t, ids[i], loop[i], op == TJ_OP_WHERE)) < 0) return -1;
    int half = loop[nargs - 1];
    if (half >= TJ_F16) {   /* float16/bfloat16: NumPy's loop computes in float32 and rounds */
        for (int i = op == TJ_OP_WHERE; i < nargs; i++)
            if ((ids[i] = cast_to(t, ids[i], TJ_F32, 0)) < 0) return -1;
        int32_t r = add_node(t, op, out == half ? TJ_F32 : out, weak, acc.ndim, acc.shape, ids[0],
                             nargs > 1 ? ids[1] : -1, nargs > 2 ? ids[2] : -1);
        return r < 0 || out != half ? r : cast_to(t, r, half, 0);
    }
    const tj_node *e = nargs > 1 ? &t->g.nodes[ids[1]] : NULL;
    if (op == TJ_OP_POW && loop[0] < TJ_F32 && e->op == TJ_OP_CONST && e->value.i < 0 &&
        tj_node_size(&acc) != 0) {   /* (NumPy checks elements: none, no error) */
        PyErr_SetString(PyExc_ValueError, "Integers to negative integer powers are not allowed.");
        return -1;
    }
    return add_node(t, op, out, weak, acc.ndim, acc.shape, ids[0], nargs > 1 ? ids[1] : -1,
                    nargs > 2 ? ids[2] : -1);
}

PyObject *tj_apply(tj_trace *t, int op, int nargs, PyObject *const *args, const char *spelled) {
    int32_t ids[3];
    for (int i = 0; i < nargs; i++)
        if ((ids[i] = tj_operand(t, args[i])) < 0) return NULL;
    int32_t r = apply_ids(t, op, nargs, ids);
    return r < 0 ? NULL : tj_tracer_new(t, r);
}

PyObject *tj_apply_cast(tj_trace *t, PyObject *x, PyObject *dtype_like) {
    PyArray_Descr *descr = NULL;
    if (!PyArray_DescrConverter(dtype_like, &descr)) return NULL;
    int dt = tj_dtype_from_typenum(descr->type_num);
    if ((descr->type_num == NPY_CFLOAT || descr->type_num == NPY_CDOUBLE) &&
        PyArray_ISNBO(descr->byteorder) && t->st->complex_op) {   /* real to complex: _complex.py */
        PyObject *cargs = Py_BuildValue("(ON)", x, (PyObject *)descr);
        return cargs ? tj_complex_op(t->st, "astype", cargs, NULL) : NULL;
    }
    if (dt < 0 || !PyArray_ISNBO(descr->byteorder)) {
        PyErr_Format(PyExc_TypeError, "astype(%R): %S is not supported by tracejit (supported: "
                     TJ_SUPPORTED_DTYPES ")", (PyObject *)descr, (PyObject *)descr);
        Py_DECREF(descr);
        return NULL;
    }
    Py_DECREF(descr);
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    const tj_node *n = &t->g.nodes[id];
    int64_t shape[TJ_MAXDIM];
    memcpy(shape, n->shape, sizeof shape);
    int32_t r = n->dtype == dt ? add_node(t, TJ_OP_COPY, dt, 0, n->ndim, shape, id, -1, -1)
                               : add_node(t, TJ_OP_CAST, dt, 0, n->ndim, shape, id, -1, -1);
    return r < 0 ? NULL : tj_tracer_new(t, r);
}

PyObject *tj_astype(tj_trace *t, PyObject *x, PyObject *dtype_like, PyObject *copy) {
    int c = copy ? PyObject_IsTrue(copy) : 1;
    if (c < 0) return NULL;
    int32_t id = c ? 0 : tj_operand(t, x);
    if (id < 0) return NULL;
    if (!c) {   /* copy=False: x itself where no conversion is needed, as NumPy's */
        PyArray_Descr *descr = NULL;
        if (!PyArray_DescrConverter(dtype_like, &descr)) return NULL;
        int same = tj_dtype_from_typenum(descr->type_num) == t->g.nodes[id].dtype &&
                   PyArray_ISNBO(descr->byteorder);
        Py_DECREF(descr);
        if (same) return Py_NewRef(x);
    }
    return tj_apply_cast(t, x, dtype_like);
}

PyObject *tj_apply_clip(tj_trace *t, PyObject *x, PyObject *lo, PyObject *hi) {
    /* NumPy promotes x, lo and hi together (np.clip is one ufunc), so x is cast to
     * their common dtype first; maximum and minimum then keep it. */
    PyObject *ops[3] = {x, lo, hi}, *views[3] = {NULL, NULL, NULL};
    int n = 0, ok = 1;
    for (int i = 0; i < 3; i++) {
        if (ops[i] == Py_None) continue;
        int32_t id = tj_operand(t, ops[i]);
        if (id < 0 || !(views[n++] = numpy_view_of(t, id, 1))) { ok = 0; break; }
    }
    PyObject *common = NULL;
    if (ok) {
        PyObject *args = PyTuple_New(n);
        for (int i = 0; args && i < n; i++) PyTuple_SET_ITEM(args, i, Py_NewRef(views[i]));
        PyObject *rt = args ? PyObject_GetAttrString(t->st->numpy, "result_type") : NULL;
        common = rt ? PyObject_CallObject(rt, args) : NULL;
        Py_XDECREF(rt);
        Py_XDECREF(args);
    }
    for (int i = 0; i < 3; i++) Py_XDECREF(views[i]);
    if (!common) return NULL;
    /* NumPy 2 ignores a Python int bound beyond an integer dtype's range on its side
     * (np.clip(uint8, -1, 300) is the array); the other side's is NumPy's OverflowError */
    int cdt = dtype_of_descr(common);
    if (cdt > TJ_BOOL && !tj_dtype_is_float(cdt)) {
        for (int side = 0; side < 2; side++) {
            PyObject *b = side ? hi : lo;
            if (!PyLong_CheckExact(b)) continue;
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(b, &overflow);
            if (v == -1 && PyErr_Occurred()) { Py_DECREF(common); return NULL; }
            int below = overflow < 0 || (!overflow && v < tj_dtype_min(cdt));
            int above = !overflow && cdt != TJ_U64 && v > tj_dtype_max(cdt);
            if (overflow > 0 && cdt == TJ_U64) {   /* beyond uint64 itself? */
                PyLong_AsUnsignedLongLong(b);
                above = PyErr_Occurred() != NULL;
                PyErr_Clear();
            } else if (overflow > 0) {
                above = 1;
            }
            if (side ? above : below) *(side ? &hi : &lo) = Py_None;
        }
    }
    PyObject *xc = tj_apply_cast(t, x, common);
    Py_DECREF(common);
    if (!xc) return NULL;
    PyObject *r = xc;
    if (lo != Py_None) {
        PyObject *args[2] = {r, lo};
        Py_SETREF(r, tj_apply(t, TJ_OP_MAX, 2, args, NULL));
        if (!r) return NULL;
    }
    if (hi != Py_None) {
        PyObject *args[2] = {r, hi};
        Py_SETREF(r, tj_apply(t, TJ_OP_MIN, 2, args, NULL));
    }
    return r;   /* a fresh value even for clip(x, None, None): the cast made a COPY */
}

/* A COPY node whose shape differs from its operand's: fuse reads the operand through
 * a broadcast access map (trailing dims aligned, as for any operand; leading size-1
 * dims beyond the node's are never indexed), and emit computes a 0-d operand once
 * before the loop and fills the output from it. The result never aliases anything. */
PyObject *tj_apply_fill(tj_trace *t, PyObject *value, int dt, int ndim, const int64_t *shape) {
    int32_t id = tj_operand(t, value);
    if (id < 0) return NULL;
    const tj_node *v = &t->g.nodes[id];
    int fits = 1;   /* numpy's assignment broadcasting: leading size-1 dims drop */
    for (int e = 0; fits && e < v->ndim; e++) {
        int d = ndim - v->ndim + e;
        fits = d < 0 ? v->shape[e] == 1 : v->shape[e] == shape[d] || v->shape[e] == 1;
    }
    if (!fits) {   /* numpy's copyto message */
        char s1[256], s2[256];
        tj_shape_str(s1, sizeof s1, v->ndim, v->shape);
        tj_shape_str(s2, sizeof s2, ndim, shape);
        PyErr_Format(PyExc_ValueError, "could not broadcast input array from shape %s into "
                     "shape %s", s1, s2);
        return NULL;
    }
    if ((id = cast_to(t, id, dt, 0)) < 0) return NULL;
    int32_t r = add_node(t, TJ_OP_COPY, dt, 0, ndim, shape, id, -1, -1);
    return r < 0 ? NULL : tj_tracer_np(tj_tracer_new(t, r), TJ_NP_ARRAY);
}

/* float16 and bfloat16 are storage: their values are only loaded, stored, viewed,
 * gathered, concatenated, copied and cast (dispatch.c computes elementwise ops in
 * float32); any other op on them is refused by name, never run on their bits. */
int tj_storage_only(tj_trace *t, const tj_node *n) {
    int kind = tj_ops[n->op].kind, dt = n->dtype;
    if (kind == TJ_K_LEAF || kind == TJ_K_VIEW || kind == TJ_K_CAST || kind == TJ_K_CAT ||
        kind == TJ_K_GATH || n->op == TJ_OP_COPY)
        return 0;
    for (int i = 0; i < tj_ops[n->op].arity && dt < TJ_F16; i++)
        if (n->in[i] >= 0 && t->g.nodes[n->in[i]].dtype >= TJ_F16) dt = t->g.nodes[n->in[i]].dtype;
    if (dt < TJ_F16) return 0;
    tj_trace_error(t->st, "%s of %s is not supported by tracejit yet (float16 and bfloat16 "
                   "are computed elementwise only: reductions, scans and contractions of them "
                   "are refused; cast to float32 first)", tj_ops[n->op].numpy ? tj_ops[n->op].numpy
                   : tj_ops[n->op].name, tj_dtype_name(dt));
    return -1;
}
