/* Trace entries Python's vocabulary needs beside the operators: _C._random(kind, shape,
 * dtype, source, keyfn) appends a random op of the op table (RUNIF32/64, RNORM32/64;
 * csrc/emit/prims_random.h) whose operands are the call's key and each element's
 * counter; _C._full makes a filled array (torch.empty in a trace); _C._check a check
 * assumed while tracing and made at every call; _C._iota the element index (IOTA).
 *
 * Contract: a draw is a pure function of (key, counter). The key is a KEY slot, one per
 * generator the trace drew from (`source`: torch's default generator, a torch.Generator,
 * NumPy's global RandomState, a Generator...), filled at every call by calling `keyfn`,
 * which draws 64 bits from that generator (csrc/runtime.c, bind): so every call draws
 * fresh numbers, advances the framework's generator, and is reproducible under its
 * seed. Within a call the draws of one source take consecutive counter ranges (as
 * torch's Philox offsets do), each starting on a multiple of 4 (prims_random.h's
 * element -> block and word mapping), so no two elements of one call share a Philox
 * word. Nothing
 * about a draw is known at trace time: no pass can fold it, and CSE cannot merge two
 * draws (their counters differ). */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* The source's index in t's list (added with its key leaf when new). -1 + exception. */
static int source_index(tj_trace *t, PyObject *source, PyObject *keyfn) {
    Py_ssize_t n = t->rng_sources ? PyList_GET_SIZE(t->rng_sources) : 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyList_GET_ITEM(t->rng_sources, i) == source) return (int)i;
    if (n >= TJ_MAX_RNG) {
        tj_trace_error(t->st, "a traced function may draw from at most %d random generators",
                       TJ_MAX_RNG);
        return -1;
    }
    if (!t->rng_sources && !(t->rng_sources = PyList_New(0))) return -1;
    if (!t->rng_keyfns && !(t->rng_keyfns = PyList_New(0))) return -1;
    tj_slotdesc d = {.kind = TJ_SLOT_KEY, .index = (int)n, .dtype = TJ_I64, .contig = 1};
    int32_t key = tj_trace_leaf(t, TJ_OP_SCALAR, &d, 0, 0, NULL);
    if (key < 0) return -1;
    if (PyList_Append(t->rng_sources, source) < 0 || PyList_Append(t->rng_keyfns, keyfn) < 0)
        return -1;
    t->rng_key[n] = key;
    t->rng_next[n] = 0;
    return (int)n;
}

/* int64 counters base, base + 1, ... in C order over shape: the linear element index
 * (an IOTA, a virtual leaf: no memory, computed in the loop) plus the draw's base. */
static int32_t counters(tj_trace *t, int ndim, const int64_t *shape, int64_t base) {
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = TJ_OP_IOTA;
    n.dtype = TJ_I64;
    n.ndim = (uint8_t)ndim;
    memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    n.axes = (uint32_t)-1;   /* the C-order linear index */
    n.slot = -1;
    n.in[0] = n.in[1] = n.in[2] = -1;
    int32_t idx = tj_trace_add_node(t, &n);
    if (idx < 0 || base == 0) return idx;
    tj_slotdesc d = {.kind = TJ_SLOT_CONST, .dtype = TJ_I64, .contig = 1, .value = {.i = base}};
    int32_t b = tj_trace_leaf(t, TJ_OP_CONST, &d, 0, 0, NULL);
    if (b < 0) return -1;
    memset(&n, 0, sizeof n);
    n.op = TJ_OP_ADD;
    n.dtype = TJ_I64;
    n.ndim = (uint8_t)ndim;
    memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    n.slot = -1;
    n.in[0] = idx;
    n.in[1] = b;
    n.in[2] = -1;
    return tj_trace_add_node(t, &n);
}

/* A tuple of ints into shape[]: its ndim, or -1 + exception (TraceError past
 * TJ_MAXDIM dims, NumPy's ValueError for a negative one). *size: the element count. */
static int parse_shape(tj_trace *t, PyObject *tuple, int64_t *shape, int64_t *size) {
    int ndim = (int)PyTuple_GET_SIZE(tuple);
    if (ndim > TJ_MAXDIM) {
        tj_trace_error(t->st, "an array may have at most %d dims", TJ_MAXDIM);
        return -1;
    }
    *size = 1;
    for (int d = 0; d < ndim; d++) {
        shape[d] = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, d));
        if (shape[d] == -1 && PyErr_Occurred()) return -1;
        if (shape[d] < 0) {
            PyErr_SetString(PyExc_ValueError, "negative dimensions are not allowed");
            return -1;
        }
        *size *= shape[d];
    }
    return ndim;
}

/* A dtype argument: None is torch's default float in a torch trace (the plan then
 * checks it), float64 in a NumPy one. -1 + exception when tracejit has no such dtype. */
static int parse_dtype(tj_trace *t, PyObject *dtype) {
    if (dtype == Py_None) return tj_torch_default_float(t);
    PyArray_Descr *descr = NULL;
    if (!PyArray_DescrConverter(dtype, &descr)) return -1;
    int dt = tj_dtype_from_typenum(descr->type_num);
    Py_DECREF(descr);
    if (dt < 0) tj_trace_error(t->st, "arrays of dtype %R are not supported", dtype);
    return dt;
}

/* _random(kind, shape, dtype, source, keyfn) -> Tracer: kind "uniform" ([0, 1)) or
 * "normal" (standard); shape a tuple of ints; dtype float32, float64 or None (torch's
 * default in a torch trace, float64 in a NumPy one). */
PyObject *tj_trace_random(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyUnicode_Check(args[0]) || !PyTuple_Check(args[1]))
        return tj_internal_error(tj_state_of(m), "_random(kind, shape, dtype, source, keyfn)");
    tj_trace *t = tj_trace_current();
    if (!t || !t->live) return tj_internal_error(tj_state_of(m), "_random outside a trace");
    const char *kind = PyUnicode_AsUTF8(args[0]);
    if (!kind) return NULL;
    int dt = parse_dtype(t, args[2]);
    if (dt < 0) return NULL;
    if (dt != TJ_F32 && dt != TJ_F64)
        return tj_trace_error(t->st, "random floats of dtype %R are not supported: float32 and "
                              "float64 are", args[2]);
    int normal = !strcmp(kind, "normal");
    if (!normal && strcmp(kind, "uniform")) return tj_internal_error(t->st, "_random: kind %s", kind);
    int op = normal ? (dt == TJ_F32 ? TJ_OP_RNORM32 : TJ_OP_RNORM64)
                    : (dt == TJ_F32 ? TJ_OP_RUNIF32 : TJ_OP_RUNIF64);
    int64_t shape[TJ_MAXDIM], size;
    int ndim = parse_shape(t, args[1], shape, &size);
    if (ndim < 0) return NULL;
    int src = source_index(t, args[3], args[4]);
    if (src < 0) return NULL;
    int64_t base = (t->rng_next[src] + 3) & ~(int64_t)3;   /* a whole Philox block */
    int32_t ctr = counters(t, ndim, shape, base);
    if (ctr < 0) return NULL;
    t->rng_next[src] = base + size;
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = (int16_t)op;
    n.dtype = (uint8_t)(tj_ops[op].out == TJ_O_F32 ? TJ_F32 : TJ_F64);
    n.ndim = (uint8_t)ndim;
    memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    n.in[0] = t->rng_key[src];
    n.in[1] = ctr;
    n.in[2] = -1;
    int32_t id = tj_trace_add_node(t, &n);
    return id < 0 ? NULL : tj_tracer_new(t, id);
}

/* _full(shape, dtype, value) -> Tracer: a fresh array of the current trace, every
 * element `value` (torch.empty and Tensor.new_empty inside a trace: a traced array
 * that random in-place methods can fill). dtype None: as _random's. */
PyObject *tj_trace_full(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[0]))
        return tj_internal_error(tj_state_of(m), "_full(shape, dtype, value)");
    tj_trace *t = tj_trace_current();
    if (!t || !t->live) return tj_internal_error(tj_state_of(m), "_full outside a trace");
    int64_t shape[TJ_MAXDIM], size;
    int ndim = parse_shape(t, args[0], shape, &size);
    int dt = ndim < 0 ? -1 : parse_dtype(t, args[1]);
    if (dt < 0) return NULL;
    return tj_apply_fill(t, args[2], dt, ndim, shape);
}

/* _check(x, what[, error]): a check the traced code makes on traced values
 * (torch._is_all_true in torch.distributions' argument validation: `if not
 * _is_all_true(ok): raise`; cholesky's positive-definite input). Python's `if` needs
 * the answer now; the trace assumes it is True and every call checks: all(x) becomes a
 * hidden output of the plan, and a call where it is False raises `error` (an exception
 * class, ValueError by default: the class eager raises there) naming `what` and the
 * user's line; a Warning class is warned instead (Pyro's warn_if_nan). Returns None. */
PyObject *tj_trace_check(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2 || nargs > 3 || !PyUnicode_Check(args[1]) ||
        (nargs == 3 && !(PyType_Check(args[2]) &&
                         PyType_IsSubtype((PyTypeObject *)args[2],
                                          (PyTypeObject *)PyExc_Exception))))
        return tj_internal_error(tj_state_of(m), "_check(x, what[, exception class])");
    PyObject *error = nargs == 3 ? args[2] : PyExc_ValueError;
    tj_trace *t = tj_trace_current();
    if (!t || !t->live) return tj_internal_error(tj_state_of(m), "_check outside a trace");
    PyObject *all = tj_reduction_call(t, TJ_RED_ALL, args[0], NULL, NULL, 1);
    int32_t id = all ? tj_operand(t, all) : -1;
    Py_XDECREF(all);
    if (id < 0) return NULL;
    /* the message, with the user's line, made now (the replay has no frames to read) */
    if (PyType_IsSubtype((PyTypeObject *)error, (PyTypeObject *)PyExc_Warning))
        tj_error_at(t->st, PyExc_ValueError, "%U (a warning the traced code gives for this "
                    "call's values, checked at every call)", args[1]);
    else
        tj_error_at(t->st, PyExc_ValueError, "%U was False for this call's values: a check the "
                    "traced code made (the trace assumed it held; eager raises here)", args[1]);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *msg = value ? PyObject_Str(value) : NULL;
    Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
    if (!msg) return NULL;
    PyObject *entry = Py_BuildValue("(iNO)", (int)id, msg, error);
    if (!entry) return NULL;
    if (!t->checks && !(t->checks = PyList_New(0))) { Py_DECREF(entry); return NULL; }
    int rc = PyList_Append(t->checks, entry);
    Py_DECREF(entry);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

PyObject *tj_trace_iota(PyObject *m, PyObject *args) {
    PyObject *shape;
    int axis;
    if (!PyArg_ParseTuple(args, "O!i:_iota", &PyTuple_Type, &shape, &axis)) return NULL;
    tj_trace *t = tj_trace_current();
    if (!t) {
        PyErr_SetString(PyExc_RuntimeError, "_iota: no trace is running on this thread");
        return NULL;
    }
    tj_node n;
    memset(&n, 0, sizeof n);
    Py_ssize_t nd = PyTuple_GET_SIZE(shape);
    if (nd > TJ_MAXDIM) {
        PyErr_Format(PyExc_ValueError, "_iota: %zd dimensions, at most %d", nd, TJ_MAXDIM);
        return NULL;
    }
    for (Py_ssize_t d = 0; d < nd; d++) {
        long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, d));
        if (v == -1 && PyErr_Occurred()) return NULL;
        if (v < 0) {
            PyErr_Format(PyExc_ValueError, "_iota: negative dimension %lld", v);
            return NULL;
        }
        n.shape[d] = v;
    }
    if (axis < -1 || axis >= nd) {
        PyErr_Format(PyExc_ValueError, "_iota: axis %d out of range for %zd dimensions "
                     "(-1: the linear index)", axis, nd);
        return NULL;
    }
    n.op = TJ_OP_IOTA;
    n.dtype = TJ_I64;
    n.ndim = (uint8_t)nd;
    n.axes = (uint32_t)axis;
    n.slot = -1;
    n.in[0] = n.in[1] = n.in[2] = -1;
    int32_t id = tj_trace_add_node(t, &n);
    return id < 0 ? NULL : tj_tracer_new(t, id);
}

/* An int64 node of shape: op over a and b (both int64). -1 + exception. */
static int32_t i64_node(tj_trace *t, int op, int ndim, const int64_t *shape, int32_t a, int32_t b) {
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = (int16_t)op;
    n.dtype = TJ_I64;
    n.ndim = (uint8_t)ndim;
    memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    n.slot = -1;
    n.in[0] = a;
    n.in[1] = b;
    n.in[2] = -1;
    return tj_trace_add_node(t, &n);
}

/* _sample(kind, shape, dtype, source, keyfn, *params) -> Tracer: a rejection sampler of
 * the op table (prims_random.h): kind "gamma" (concentration), "poisson" (rate) or
 * "binomial" (count, prob); each parameter a number, an array or a Tracer, broadcast to
 * shape and cast to dtype (float32 or float64). The element's seed is the key XOR its
 * counter times an odd constant (a bijection of the counter: no two elements of a call
 * share a seed); the counters are taken from the source as _random's are. */
PyObject *tj_trace_sample(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 6 || !PyUnicode_Check(args[0]) || !PyTuple_Check(args[1]))
        return tj_internal_error(tj_state_of(m), "_sample(kind, shape, dtype, source, keyfn, "
                                 "*params)");
    tj_trace *t = tj_trace_current();
    if (!t || !t->live) return tj_internal_error(tj_state_of(m), "_sample outside a trace");
    const char *kind = PyUnicode_AsUTF8(args[0]);
    if (!kind) return NULL;
    int op = !strcmp(kind, "gamma") ? TJ_OP_RGAMMA : !strcmp(kind, "poisson") ? TJ_OP_RPOIS
           : !strcmp(kind, "binomial") ? TJ_OP_RBINOM : -1;
    if (op < 0 || tj_ops[op].arity != nargs - 5 + 1)
        return tj_internal_error(t->st, "_sample: kind %s with %zd parameters", kind, nargs - 5);
    int dt = parse_dtype(t, args[2]);
    if (dt < 0) return NULL;
    if (dt != TJ_F32 && dt != TJ_F64)
        return tj_trace_error(t->st, "random %s draws of dtype %R are not supported: float32 "
                              "and float64 are", kind, args[2]);
    int64_t shape[TJ_MAXDIM], size;
    int ndim = parse_shape(t, args[1], shape, &size);
    if (ndim < 0) return NULL;
    int32_t ids[3] = {-1, -1, -1};
    for (Py_ssize_t i = 5; i < nargs; i++) {
        PyObject *p = tj_apply_fill(t, args[i], dt, ndim, shape);
        int32_t id = p ? tj_operand(t, p) : -1;
        Py_XDECREF(p);
        if (id < 0) return NULL;
        ids[i - 5] = id;
    }
    int src = source_index(t, args[3], args[4]);
    if (src < 0) return NULL;
    int64_t base = (t->rng_next[src] + 3) & ~(int64_t)3;
    int32_t ctr = counters(t, ndim, shape, base);
    if (ctr < 0) return NULL;
    t->rng_next[src] = base + size;
    tj_slotdesc d = {.kind = TJ_SLOT_CONST, .dtype = TJ_I64, .contig = 1,
                     .value = {.i = (int64_t)0xD1342543DE82EF95ull}};
    int32_t odd = tj_trace_leaf(t, TJ_OP_CONST, &d, 0, 0, NULL);
    int32_t mixed = odd < 0 ? -1 : i64_node(t, TJ_OP_MUL, ndim, shape, ctr, odd);
    int32_t seed = mixed < 0 ? -1 : i64_node(t, TJ_OP_BXOR, ndim, shape, t->rng_key[src], mixed);
    if (seed < 0) return NULL;
    ids[nargs - 5] = seed;
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = (int16_t)op;
    n.dtype = (uint8_t)dt;
    n.ndim = (uint8_t)ndim;
    memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    n.slot = -1;
    memcpy(n.in, ids, sizeof ids);
    int32_t id = tj_trace_add_node(t, &n);
    return id < 0 ? NULL : tj_tracer_new(t, id);
}
