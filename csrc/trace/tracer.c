/* The Tracer type (the Trace type is trace.c's). A Tracer stands in for an array while the user's
 * function runs: operators, attributes and methods append nodes to its Trace's
 * graph. What needs a concrete value (bool, int, float, an index, item, tolist) gets
 * it from the call's inputs, guarded (concrete.c); iteration yields x[0], x[1], ...
 * Contract: every node a Tracer creates has its dtype and shape resolved. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>
#include <structmember.h>

/* ---- Tracer --------------------------------------------------------------- */

/* Counts one more Tracer object standing for node id. 0/-1. */
static int hold(tj_trace *t, int32_t id) {
    if (id >= t->cap_holders) {
        int32_t cap = t->cap_holders ? t->cap_holders : 64;
        while (cap <= id) cap *= 2;
        int32_t *h = PyMem_Realloc(t->holders, (size_t)cap * sizeof *h);
        if (!h) { PyErr_NoMemory(); return -1; }
        memset(h + t->cap_holders, 0, (size_t)(cap - t->cap_holders) * sizeof *h);
        t->holders = h;
        t->cap_holders = cap;
    }
    t->holders[id]++;
    return 0;
}

PyObject *tj_tracer_new(tj_trace *t, int32_t id) {
    if (hold(t, id) < 0) return NULL;
    tj_tracer *x = PyObject_GC_New(tj_tracer, t->st->TracerType);
    if (!x) { t->holders[id]--; return NULL; }
    x->trace = (tj_trace *)Py_NewRef((PyObject *)t);
    x->prev = NULL;
    x->next = t->tracers;
    if (t->tracers) t->tracers->prev = x;
    t->tracers = x;
    x->id = id;
    x->npkind = TJ_NP_AUTO;
    x->weakrefs = NULL;
    x->dict = NULL;
    PyObject_GC_Track(x);
    return (PyObject *)x;
}

static void release(tj_tracer *x) {
    if (!x->trace) return;
    if (x->id < x->trace->cap_holders) x->trace->holders[x->id]--;
    if (x->prev) x->prev->next = x->next;
    else if (x->trace->tracers == x) x->trace->tracers = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void tracer_dealloc(tj_tracer *x) {
    PyTypeObject *tp = Py_TYPE(x);
    PyObject_GC_UnTrack(x);
    if (x->weakrefs) PyObject_ClearWeakRefs((PyObject *)x);
    release(x);
    Py_CLEAR(x->dict);
    Py_CLEAR(x->trace);
    tp->tp_free((PyObject *)x);
    Py_DECREF(tp);
}

/* The Tracer type has no subclasses (no Py_TPFLAGS_BASETYPE) and each instance of _C
 * makes its own from one spec: a Tracer is an object that tracer_dealloc frees. */
int tj_is_tracer(PyObject *o) { return Py_TYPE(o)->tp_dealloc == (destructor)tracer_dealloc; }

static int tracer_traverse(tj_tracer *x, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(x));
    Py_VISIT(x->trace);
    Py_VISIT(x->dict);
    return 0;
}

static int tracer_clear(tj_tracer *x) {
    release(x);
    Py_CLEAR(x->dict);
    Py_CLEAR(x->trace);
    return 0;
}

static const tj_node *node_of(tj_tracer *x) { return &x->trace->g.nodes[x->id]; }

int tj_tracer_rebind(tj_tracer *x, int32_t id) {
    if (hold(x->trace, id) < 0) return -1;
    x->trace->holders[x->id]--;
    x->id = id;
    x->npkind = TJ_NP_ARRAY;     /* written in place: eager's array stays one */
    return 0;
}

/* The state of a Tracer (the self of its slots and methods): its trace's, or its type's
 * once a collection cleared the trace. */
static tj_state *state_of(PyObject *self) {
    tj_tracer *x = (tj_tracer *)self;
    return x->trace ? x->trace->st : tj_state_of_type(Py_TYPE(self));
}

tj_trace *tj_tracer_live(tj_tracer *x) {
    if (!x->trace || !x->trace->live) {
        tj_state *st = state_of((PyObject *)x);
        if (st)
            tj_trace_error(st, "a tracer escaped its trace: a traced value was stored and "
                           "used after the compiled function returned; return it as an output "
                           "instead");
        return NULL;
    }
    return x->trace;
}

int tj_tracer_is_np_scalar(PyObject *o) {
    tj_tracer *x = (tj_tracer *)o;
    const tj_node *n = node_of(x);
    if (x->npkind == TJ_NP_PYTHON) return 2;
    if (n->op == TJ_OP_SCALAR && x->npkind == TJ_NP_AUTO)   /* an argument (torch's too) */
        return n->weak ? 2 : 1;
    if (x->trace->torch || n->ndim) return 0;
    if (x->npkind != TJ_NP_AUTO) return x->npkind == TJ_NP_SCALAR;
    /* computed by an op of the table: a ufunc, an operator or a reduction */
    return tj_ops[n->op].kind != TJ_K_LEAF && tj_ops[n->op].kind != TJ_K_VIEW;
}

PyObject *tj_tracer_np(PyObject *x, int kind) {
    if (x && tj_is_tracer(x)) ((tj_tracer *)x)->npkind = (uint8_t)kind;
    return x;
}

PyObject *tj_tracer_np_as(PyObject *r, PyObject *src) {
    if (!r || !tj_is_tracer(r) || !tj_is_tracer(src) || node_of((tj_tracer *)src)->ndim ||
        node_of((tj_tracer *)r)->ndim)
        return r;
    /* (a Python number goes through np.asarray: an array) */
    return tj_tracer_np(r, tj_tracer_is_np_scalar(src) == 1 ? TJ_NP_SCALAR : TJ_NP_ARRAY);
}

static PyObject *tracer_repr(tj_tracer *x) {
    const tj_node *n = node_of(x);
    char buf[320];
    size_t k = (size_t)snprintf(buf, sizeof buf, "Tracer(%s[", tj_dtype_name(n->dtype));
    for (int d = 0; d < n->ndim && k < sizeof buf; d++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, d ? ", %lld" : "%lld",
                              (long long)n->shape[d]);
    if (k < sizeof buf) snprintf(buf + k, sizeof buf - k, "])");
    return PyUnicode_FromString(buf);
}

/* A Python int or float, or a Tracer of one: Python's own operators on these give a
 * Python number in eager (a NumPy function of them gives a NumPy scalar). */
static int python_number(PyObject *o) {
    if (PyLong_CheckExact(o) || PyFloat_CheckExact(o)) return 1;
    return tj_is_tracer(o) && tj_tracer_is_np_scalar(o) == 2;
}

static PyObject *binop(PyObject *a, PyObject *b, int op) {
    PyObject *self = tj_is_tracer(a) ? a : b;
    tj_trace *t = tj_tracer_live((tj_tracer *)self);
    if (!t) return NULL;
    PyObject *other = self == a ? b : a;
    if (tj_complex_involved(t->st, other)) {   /* a complex operand: _complex.py */
        PyObject *cargs = Py_BuildValue("(sOO)", tj_ops[op].numpy, a, b);
        PyObject *r = cargs ? tj_complex_op(t->st, "binop", cargs, NULL) : NULL;
        Py_XDECREF(cargs);
        return r;
    }
    /* Leave unknown objects to their own reflected operator; a list or tuple is an
     * array to NumPy's operators (`position += (w, h)`), not to torch's. */
    if (!tj_is_tracer(other) && !PyFloat_Check(other) && !PyLong_Check(other) &&
        !PyArray_Check(other) && !PyArray_IsScalar(other, Generic) &&
        tj_dl_kind(t->st, other) != TJ_LIB_TORCH &&
        (t->torch || !(PyList_Check(other) || PyTuple_Check(other))))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *args[2] = {a, b};
    PyObject *r = tj_apply(t, op, 2, args, NULL);
    return python_number(a) && python_number(b) ? tj_tracer_np(r, TJ_NP_PYTHON) : r;
}

static PyObject *unop(PyObject *a, int op) {
    tj_trace *t = tj_tracer_live((tj_tracer *)a);
    if (!t) return NULL;
    PyObject *r = tj_apply(t, op, 1, &a, NULL);
    return python_number(a) ? tj_tracer_np(r, TJ_NP_PYTHON) : r;
}

#define BINOP(fname, op) \
    static PyObject *fname(PyObject *a, PyObject *b) { return binop(a, b, op); }
BINOP(nb_add, TJ_OP_ADD)
BINOP(nb_sub, TJ_OP_SUB)
BINOP(nb_mul, TJ_OP_MUL)
BINOP(nb_truediv, TJ_OP_DIV)
BINOP(nb_floordiv, TJ_OP_FLOORDIV)
BINOP(nb_mod, TJ_OP_MOD)
BINOP(nb_and, TJ_OP_BAND)
BINOP(nb_or, TJ_OP_BOR)
BINOP(nb_xor, TJ_OP_BXOR)
BINOP(nb_lshift, TJ_OP_LSHIFT)
BINOP(nb_rshift, TJ_OP_RSHIFT)
#undef BINOP

static PyObject *nb_pow(PyObject *a, PyObject *b, PyObject *mod) {
    if (mod != Py_None)
        return tj_trace_error(state_of(tj_is_tracer(a) ? a : b),
                              "pow() with a modulus is not supported by tracejit");
    /* ndarray.__pow__ computes x ** 2 as np.square(x) (its dtype differs for bool) */
    if (tj_is_tracer(a) && PyLong_CheckExact(b)) {
        int overflow;
        if (PyLong_AsLongAndOverflow(b, &overflow) == 2 && !overflow) return unop(a, TJ_OP_SQUARE);
        PyErr_Clear();
    }
    /* ... and, for float arrays only, x ** 0.5 as np.sqrt(x) (they differ at -0.0 and
     * -inf; a bool or integer array goes to power: float64, where sqrt gives float16
     * for bool) */
    if (tj_is_tracer(a) && PyFloat_CheckExact(b) && PyFloat_AS_DOUBLE(b) == 0.5 &&
        node_of((tj_tracer *)a)->dtype >= TJ_F32)
        return unop(a, TJ_OP_SQRT);
    PyObject *r = binop(a, b, TJ_OP_POW);
    /* an exponent known only at run time: the kernel takes the same shortcuts (axes = 1
     * marks the POW as ndarray.__pow__'s, see tj_p_POWSF in prims.c) */
    if (r && tj_is_tracer(r) && tj_is_tracer(a)) {
        tj_node *n = &((tj_tracer *)r)->trace->g.nodes[((tj_tracer *)r)->id];
        if (n->op == TJ_OP_POW) n->axes = 1;
    }
    return r;
}
static PyObject *nb_neg(PyObject *a) { return unop(a, TJ_OP_NEG); }
static PyObject *nb_pos(PyObject *a) { return unop(a, TJ_OP_POS); }
static PyObject *nb_abs(PyObject *a) { return unop(a, TJ_OP_ABS); }
static PyObject *nb_invert(PyObject *a) { return unop(a, TJ_OP_INVERT); }

static PyObject *unsupported_operator(PyObject *self, const char *what) {
    return tj_trace_error(state_of(self), "the operator %s is not supported by tracejit yet", what);
}
static PyObject *nb_matmul(PyObject *a, PyObject *b) {
    PyObject *self = tj_is_tracer(a) ? a : b;
    tj_trace *t = tj_tracer_live((tj_tracer *)self);
    if (t && tj_complex_involved(t->st, self == a ? b : a)) {
        PyObject *cargs = Py_BuildValue("(sOO)", "matmul", a, b);
        PyObject *r = cargs ? tj_complex_op(t->st, "binop", cargs, NULL) : NULL;
        Py_XDECREF(cargs);
        return r;
    }
    return t ? tj_matmul(t, a, b) : NULL;
}
static PyObject *nb_divmod(PyObject *a, PyObject *b) {
    return unsupported_operator(tj_is_tracer(a) ? a : b, "divmod()");
}

/* x op= y. A Python or NumPy scalar is immutable, so eager rebinds the name (0-d
 * results of NumPy ufuncs and reductions are scalars); an array changes in place. */
static PyObject *inplace(PyObject *a, PyObject *b, int op, const char *what) {
    tj_tracer *x = (tj_tracer *)a;      /* the left operand: its type's slot was called */
    tj_trace *t = tj_tracer_live(x);
    if (!t) return NULL;
    /* (read before the operation: adding its nodes may move the graph's array) */
    int scalar = tj_tracer_is_np_scalar(a);
    PyObject *r = op == TJ_OP_POW ? nb_pow(a, b, Py_None) : op == -1 ? nb_matmul(a, b)
                                                                    : binop(a, b, op);
    if (!r || r == Py_NotImplemented) return r;
    if (!scalar && t->st->complex_cls &&
        PyObject_TypeCheck(r, (PyTypeObject *)t->st->complex_cls)) {
        /* NumPy's same_kind rule: a complex result cannot go into a real array */
        PyObject *in = PyObject_GetAttrString(a, "dtype");
        PyObject *out = PyObject_GetAttrString(r, "dtype");
        if (in && out)
            PyErr_Format(PyExc_TypeError, "Cannot cast ufunc '%s' output from %R to %R with "
                         "casting rule 'same_kind'", op == -1 ? "matmul" : tj_ops[op].numpy,
                         out, in);
        Py_XDECREF(in);
        Py_XDECREF(out);
        Py_DECREF(r);
        return NULL;
    }
    if (scalar || !tj_is_tracer(r)) return r;
    PyObject *res = tj_tracer_assign(a, r, what);
    Py_DECREF(r);
    return res;
}

#define INPLACE(fname, op, k) \
    static PyObject *fname(PyObject *a, PyObject *b) { return inplace(a, b, op, tj_inplace_ops[k]); }
INPLACE(nb_iadd, TJ_OP_ADD, TJ_IADD)
INPLACE(nb_isub, TJ_OP_SUB, TJ_ISUB)
INPLACE(nb_imul, TJ_OP_MUL, TJ_IMUL)
INPLACE(nb_itruediv, TJ_OP_DIV, TJ_ITRUEDIV)
INPLACE(nb_ifloordiv, TJ_OP_FLOORDIV, TJ_IFLOORDIV)
INPLACE(nb_imod, TJ_OP_MOD, TJ_IMOD)
INPLACE(nb_iand, TJ_OP_BAND, TJ_IAND)
INPLACE(nb_ior, TJ_OP_BOR, TJ_IOR)
INPLACE(nb_ixor, TJ_OP_BXOR, TJ_IXOR)
INPLACE(nb_ilshift, TJ_OP_LSHIFT, TJ_ILSHIFT)
INPLACE(nb_irshift, TJ_OP_RSHIFT, TJ_IRSHIFT)
INPLACE(nb_imatmul, -1, TJ_IMATMUL)
#undef INPLACE
static PyObject *nb_ipow(PyObject *a, PyObject *b, PyObject *mod) {
    return inplace(a, b, TJ_OP_POW, tj_inplace_ops[TJ_IPOW]);
}

/* x[key] = value (csrc/trace/write.c) and del x[key] */
/* A torch trace's key that holds real torch tensors (torch.distributions' tril masks:
 * mat[..., mask]) is handed to _torch.`how`: "index_key" rewrites it (a constant of the
 * trace as an ndarray, a tensor read at call time lifted), "getitem" indexes with it;
 * a tensor would otherwise be read as one integer (__index__). New reference: the key
 * (itself when it holds no tensor), or getitem's result. */
static PyObject *torch_key(PyObject *a, PyObject *key, const char *how) {
    tj_tracer *x = (tj_tracer *)a;
    PyTypeObject *tensor = (PyTypeObject *)tj_dl_torch_type(state_of(a));
    int has = 0;
    if (x->trace && x->trace->torch && tensor) {
        has = PyObject_TypeCheck(key, tensor);
        for (Py_ssize_t i = 0; !has && PyTuple_Check(key) && i < PyTuple_GET_SIZE(key); i++)
            has = PyObject_TypeCheck(PyTuple_GET_ITEM(key, i), tensor);
    }
    if (!has) return Py_NewRef(key);
    PyObject *mod = PyImport_ImportModule("tracejit._torch");
    PyObject *r = mod ? PyObject_CallMethod(mod, how, "OO", a, key) : NULL;
    Py_XDECREF(mod);
    return r;
}

static int tracer_setitem(PyObject *a, PyObject *key, PyObject *value) {
    if (value) {
        PyObject *k = torch_key(a, key, "index_key");
        int rc = k ? tj_write_setitem(a, k, value) : -1;
        Py_XDECREF(k);
        return rc;
    }
    tj_trace_error(state_of(a), "deletion (`del x[...]`) from a traced array is not supported: "
                   "arrays "
                   "cannot delete elements (build the new array: np.delete's result, "
                   "np.concatenate of slices)");
    return -1;
}

/* Python's conversions of a traced value: computed from the call's inputs and
 * guarded (csrc/trace/concrete.c). */
static int nb_bool(PyObject *a) {
    PyObject *r = tj_concrete(a, TJ_CONC_BOOL, NULL);
    if (!r) return -1;
    int b = r == Py_True;
    Py_DECREF(r);
    return b;
}
static PyObject *nb_float(PyObject *a) { return tj_concrete(a, TJ_CONC_FLOAT, NULL); }
static PyObject *nb_int(PyObject *a) { return tj_concrete(a, TJ_CONC_INT, NULL); }
static PyObject *nb_index(PyObject *a) { return tj_concrete(a, TJ_CONC_INDEX, NULL); }

static PyObject *tracer_richcompare(PyObject *a, PyObject *b, int cmp) {
    static const int ops[] = {[Py_LT] = TJ_OP_LT, [Py_LE] = TJ_OP_LE, [Py_EQ] = TJ_OP_EQ,
                              [Py_NE] = TJ_OP_NE, [Py_GT] = TJ_OP_GT, [Py_GE] = TJ_OP_GE};
    return binop(a, b, ops[cmp]);
}

static Py_ssize_t tracer_len(PyObject *a) {
    const tj_node *n = node_of((tj_tracer *)a);
    if (n->ndim == 0) {
        PyErr_SetString(PyExc_TypeError, "len() of unsized object");
        return -1;
    }
    return (Py_ssize_t)n->shape[0];
}

static PyObject *tracer_getitem(PyObject *a, PyObject *key) {
    tj_trace *t = tj_tracer_live((tj_tracer *)a);
    PyObject *k = t ? torch_key(a, key, "getitem") : NULL;
    if (k && k != key) return k;       /* _torch.getitem's result */
    PyObject *r = k ? tj_getitem(t, a, k) : NULL;
    Py_XDECREF(k);
    if (!r || t->torch || !tj_is_tracer(r) || node_of((tj_tracer *)r)->ndim) return r;
    /* NumPy gives a scalar for a 0-d result, except through an Ellipsis (a 0-d view) */
    int ellipsis = key == Py_Ellipsis;
    for (Py_ssize_t i = 0; PyTuple_Check(key) && i < PyTuple_GET_SIZE(key); i++)
        ellipsis |= PyTuple_GET_ITEM(key, i) == Py_Ellipsis;
    return tj_tracer_np(r, ellipsis ? TJ_NP_ARRAY : TJ_NP_SCALAR);
}

/* ---- attributes ----------------------------------------------------------- */

static PyObject *get_shape(tj_tracer *x, void *c) {
    const tj_node *n = node_of(x);
    PyObject *t = PyTuple_New(n->ndim);
    for (int d = 0; t && d < n->ndim; d++) {
        PyObject *v = PyLong_FromLongLong(n->shape[d]);
        if (!v) { Py_CLEAR(t); break; }
        PyTuple_SET_ITEM(t, d, v);
    }
    return t;
}
static PyObject *get_ndim(tj_tracer *x, void *c) { return PyLong_FromLong(node_of(x)->ndim); }
static PyObject *get_size(tj_tracer *x, void *c) { return PyLong_FromLongLong(tj_node_size(node_of(x))); }
static PyObject *get_dtype(tj_tracer *x, void *c) {
    return Py_NewRef(x->trace->st->dtypes[node_of(x)->dtype]);
}
static PyObject *get_itemsize(tj_tracer *x, void *c) {
    return PyLong_FromLong(tj_dtype_size(node_of(x)->dtype));
}
static PyObject *get_nbytes(tj_tracer *x, void *c) {
    return PyLong_FromLongLong(tj_node_size(node_of(x)) * tj_dtype_size(node_of(x)->dtype));
}
static PyObject *get_T(tj_tracer *x, void *c) {
    tj_trace *t = tj_tracer_live(x);
    return t ? tj_apply_transpose(t, (PyObject *)x, Py_None) : NULL;
}

/* x.__class__: ndarray in a NumPy trace, so `isinstance(x, np.ndarray)` is what eager's
 * is (type(x) stays Tracer); a torch trace's Tracer its own type. */
static PyObject *get_class(tj_tracer *x, void *c) {
    if (x->trace && !x->trace->torch && x->trace->st->ndarray_type)
        return Py_NewRef(x->trace->st->ndarray_type);
    return Py_NewRef((PyObject *)Py_TYPE(x));
}

static PyGetSetDef tracer_getset[] = {
    {"__class__", (getter)get_class, NULL, "ndarray in a NumPy trace", NULL},
    {"shape", (getter)get_shape, NULL, "shape, known at trace time", NULL},
    {"ndim", (getter)get_ndim, NULL, NULL, NULL},
    {"size", (getter)get_size, NULL, NULL, NULL},
    {"dtype", (getter)get_dtype, NULL, NULL, NULL},
    {"itemsize", (getter)get_itemsize, NULL, NULL, NULL},
    {"nbytes", (getter)get_nbytes, NULL, NULL, NULL},
    {"T", (getter)get_T, NULL, "transposed view", NULL},
    {NULL},
};

/* ---- methods -------------------------------------------------------------- */

static PyObject *m_astype(tj_tracer *x, PyObject *args, PyObject *kw) {
    static char *names[] = {"dtype", "order", "casting", "subok", "copy", NULL};
    PyObject *dt, *order = NULL, *casting = NULL, *subok = NULL, *copy = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOO:astype", names, &dt, &order, &casting,
                                     &subok, &copy))
        return NULL;
    tj_trace *t = tj_tracer_live(x);
    return t ? tj_tracer_np_as(tj_astype(t, (PyObject *)x, dt, copy), (PyObject *)x) : NULL;
}

/* x.copy(order='K'): a fresh value (traced values are C-contiguous either way) */
static PyObject *m_copy(tj_tracer *x, PyObject *args, PyObject *kw) {
    static char *names[] = {"order", NULL};
    PyObject *order = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:copy", names, &order)) return NULL;
    tj_trace *t = tj_tracer_live(x);
    return t ? tj_apply_cast(t, (PyObject *)x, t->st->dtypes[node_of(x)->dtype]) : NULL;
}

/* x.fill(value): every element value, cast as NumPy's fill does (unsafely) */
static PyObject *m_fill(tj_tracer *x, PyObject *value) {
    tj_trace *t = tj_tracer_live(x);
    if (!t) return NULL;
    tj_node n = *node_of(x);
    PyObject *v = tj_apply_fill(t, value, n.dtype, n.ndim, n.shape);
    PyObject *r = v ? tj_tracer_assign((PyObject *)x, v, "ndarray.fill()") : NULL;
    Py_XDECREF(v);
    Py_XDECREF(r);
    return r ? Py_NewRef(Py_None) : NULL;
}

static PyObject *m_transpose(tj_tracer *x, PyObject *args) {
    tj_trace *t = tj_tracer_live(x);
    if (!t) return NULL;
    PyObject *axes = Py_None;
    if (PyTuple_GET_SIZE(args) == 1 && PyTuple_GET_ITEM(args, 0) != Py_None)
        axes = PyTuple_GET_ITEM(args, 0);
    else if (PyTuple_GET_SIZE(args) > 1)
        axes = args;
    return tj_apply_transpose(t, (PyObject *)x, axes);
}

static PyObject *m_clip(tj_tracer *x, PyObject *args, PyObject *kw) {
    static char *names[] = {"min", "max", NULL};
    PyObject *lo = Py_None, *hi = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:clip", names, &lo, &hi)) return NULL;
    tj_trace *t = tj_tracer_live(x);
    return t ? tj_apply_clip(t, (PyObject *)x, lo, hi) : NULL;
}

#define REDUCTION_METHOD(fname, kind)                                                \
    static PyObject *m_##fname(tj_tracer *x, PyObject *args, PyObject *kw) {         \
        tj_trace *t = tj_tracer_live(x);                                                 \
        return t ? tj_reduction_call(t, kind, (PyObject *)x, args, kw, 1) : NULL;    \
    }
REDUCTION_METHOD(sum, TJ_RED_SUM)
REDUCTION_METHOD(prod, TJ_RED_PROD)
REDUCTION_METHOD(max, TJ_RED_MAX)
REDUCTION_METHOD(min, TJ_RED_MIN)
REDUCTION_METHOD(argmax, TJ_RED_ARGMAX)
REDUCTION_METHOD(argmin, TJ_RED_ARGMIN)
REDUCTION_METHOD(mean, TJ_RED_MEAN)
REDUCTION_METHOD(var, TJ_RED_VAR)
REDUCTION_METHOD(std, TJ_RED_STD)
REDUCTION_METHOD(any, TJ_RED_ANY)
REDUCTION_METHOD(all, TJ_RED_ALL)
REDUCTION_METHOD(cumsum, TJ_RED_CUMSUM)
REDUCTION_METHOD(cumprod, TJ_RED_CUMPROD)
#undef REDUCTION_METHOD

/* x.ravel() etc.: the numpy function's handler with x first (an entry of its own:
 * flatten has no numpy function, and messages name the method) */
#define MOVEMENT_METHOD(fname, handler)                                              \
    static PyObject *m_##fname(tj_tracer *x, PyObject *args, PyObject *kw) {         \
        static const tj_npfunc f = {#fname, "a", handler, 0};                        \
        tj_trace *t = tj_tracer_live(x);                                                 \
        if (!t) return NULL;                                                         \
        PyObject *full = PyTuple_New(PyTuple_GET_SIZE(args) + 1);                    \
        if (!full) return NULL;                                                      \
        PyTuple_SET_ITEM(full, 0, Py_NewRef((PyObject *)x));                         \
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++)                      \
            PyTuple_SET_ITEM(full, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));     \
        PyObject *r = handler(t, &f, (PyObject *)x, full, kw);                       \
        Py_DECREF(full);                                                             \
        return r;                                                                    \
    }
MOVEMENT_METHOD(ravel, tj_views_ravel)
MOVEMENT_METHOD(flatten, tj_views_ravel)
MOVEMENT_METHOD(squeeze, tj_views_squeeze)
MOVEMENT_METHOD(swapaxes, tj_views_swapaxes)
#undef MOVEMENT_METHOD

/* x.dot(y) */
static PyObject *m_dot(tj_tracer *x, PyObject *args, PyObject *kw) {
    tj_trace *t = tj_tracer_live(x);
    if (!t) return NULL;
    if (PyTuple_GET_SIZE(args) != 1) {
        PyErr_SetString(PyExc_TypeError, "dot() takes exactly one argument");
        return NULL;
    }
    static const tj_npfunc f = {"dot", "a", tj_contract_dot, 0};
    PyObject *pair = PyTuple_Pack(2, (PyObject *)x, PyTuple_GET_ITEM(args, 0));
    PyObject *r = pair ? tj_contract_dot(t, &f, (PyObject *)x, pair, kw) : NULL;
    Py_XDECREF(pair);
    return r;
}

/* x.reshape(2, 3) and x.reshape((2, 3)) */
static PyObject *m_reshape(tj_tracer *x, PyObject *args, PyObject *kw) {
    tj_trace *t = tj_tracer_live(x);
    if (!t) return NULL;
    PyObject *order = kw ? PyDict_GetItemString(kw, "order") : NULL;
    if (order && PyUnicode_Check(order) && PyUnicode_CompareWithASCIIString(order, "C"))
        return tj_trace_error(t->st, "reshape(order=%R) is not supported by tracejit yet", order);
    PyObject *shape = PyTuple_GET_SIZE(args) == 1 ? PyTuple_GET_ITEM(args, 0) : args;
    if (kw && PyDict_GetItemString(kw, "shape")) shape = PyDict_GetItemString(kw, "shape");
    return tj_reshape(t, (PyObject *)x, shape);
}

static PyObject *m_item(PyObject *x, PyObject *args) { return tj_concrete(x, TJ_CONC_ITEM, args); }
static PyObject *m_tolist(PyObject *x, PyObject *args) { return tj_concrete(x, TJ_CONC_TOLIST, NULL); }
/* np.asarray(x): a concrete array would be a constant of the trace; refused */
static PyObject *m_array(PyObject *x, PyObject *args, PyObject *kw) {
    tj_state *st = state_of(x);
    if (tj_tracer_write_error(st) < 0) return NULL;
    return tj_trace_error(st, "the value of a traced array is not known while tracing, so its "
                          "conversion to a concrete array (np.asarray, np.array, or a NumPy "
                          "function given a list of traced values; a list argument of a "
                          "compiled function is traced as a list of scalars: pass an array) "
                          "cannot be computed. Return the value as an output of the compiled "
                          "function, or keep it an array (select with np.where)");
}

static PyMethodDef tracer_methods[] = {
    {"astype", (PyCFunction)(void (*)(void))m_astype, METH_VARARGS | METH_KEYWORDS, NULL},
    {"transpose", (PyCFunction)m_transpose, METH_VARARGS, NULL},
    {"copy", (PyCFunction)(void (*)(void))m_copy, METH_VARARGS | METH_KEYWORDS, NULL},
    {"fill", (PyCFunction)m_fill, METH_O, NULL},
    {"clip", (PyCFunction)(void (*)(void))m_clip, METH_VARARGS | METH_KEYWORDS, NULL},
#define RM(fname) {#fname, (PyCFunction)(void (*)(void))m_##fname, METH_VARARGS | METH_KEYWORDS, NULL},
    RM(sum) RM(prod) RM(max) RM(min) RM(argmax) RM(argmin) RM(mean) RM(var) RM(std) RM(any) RM(all)
    RM(cumsum) RM(cumprod)
    RM(reshape) RM(ravel) RM(flatten) RM(squeeze) RM(swapaxes) RM(dot)
#undef RM
    {"item", (PyCFunction)m_item, METH_VARARGS, NULL},
    {"tolist", (PyCFunction)m_tolist, METH_NOARGS, NULL},
    {"__array__", (PyCFunction)(void (*)(void))m_array, METH_VARARGS | METH_KEYWORDS, NULL},
    {"__array_ufunc__", (PyCFunction)(void (*)(void))tj_array_ufunc,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"__array_function__", (PyCFunction)(void (*)(void))tj_array_function,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {NULL},
};

/* Attribute lookup: an attribute arrays have and the tracer lacks is named in a
 * TraceError; one arrays lack too is an AttributeError (hasattr and getattr with a
 * default work) with the user's line; protocol probes (`__array_struct__`, ...) get a
 * plain AttributeError, so NumPy goes on to the next protocol. */
static PyObject *tracer_getattro(PyObject *self, PyObject *name) {
    PyObject *r = tj_torch_getattr(self, name);   /* a torch trace: torch's names first */
    if (r || PyErr_Occurred()) return r;
    r = PyObject_GenericGetAttr(self, name);
    if (r || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
    const char *cname = PyUnicode_AsUTF8(name);
    size_t len = cname ? strlen(cname) : 0;
    if (!cname || (len > 4 && !strncmp(cname, "__", 2) && !strcmp(cname + len - 2, "__")))
        return NULL;
    PyErr_Clear();
    tj_tracer *x = (tj_tracer *)self;
    tj_state *st = state_of(self);
    if (!st) return NULL;
    int torch = x->trace && x->trace->torch && tj_dl_torch_type(st);
    const char *kind = torch ? "torch.Tensor" : "ndarray";
    int has = PyObject_HasAttr(torch ? tj_dl_torch_type(st) : st->ndarray_type, name);
    if (has && !torch && st->py_impls) {   /* a method by composition: "ndarray.repeat" */
        PyObject *key = PyUnicode_FromFormat("ndarray.%U", name);
        PyObject *impl = key ? PyDict_GetItemWithError(st->py_impls, key) : NULL;
        Py_XDECREF(key);
        if (impl) return PyMethod_New(impl, self);   /* x.repeat(2) is np.repeat(x, 2) */
        if (PyErr_Occurred()) return NULL;
    }
    if (has)
        return tj_trace_error(st, "%s.%U is not supported by tracejit yet", kind, name);
    tj_error_at(st, PyExc_AttributeError, "'%s' object (traced by tracejit) has no attribute '%U'",
                kind, name);
    /* name and obj: Python's "Did you mean ...?" */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && (PyObject_SetAttrString(value, "name", name) < 0 ||
                  PyObject_SetAttrString(value, "obj", self) < 0))
        PyErr_Clear();
    PyErr_Restore(type, value, tb);
    return NULL;
}

/* Setting an attribute: a torch trace's tracer takes a name torch.Tensor does not have,
 * as a tensor does (Pyro marks its values: _pyro_dims, unconstrained); one of torch's
 * names (x.data = ..., x.grad = ...) would change the tensor in eager: refused. A NumPy
 * trace's tracer takes none, as an ndarray. */
static int tracer_setattro(PyObject *self, PyObject *name, PyObject *value) {
    tj_tracer *x = (tj_tracer *)self;
    tj_state *st = state_of(self);
    if (!st) return -1;
    PyObject *torch = x->trace && x->trace->torch ? tj_dl_torch_type(st) : NULL;
    if (!torch) {
        PyErr_Format(PyExc_AttributeError, "'ndarray' object (traced by tracejit) has no "
                     "attribute '%U' to set", name);
        return -1;
    }
    if (PyObject_HasAttr(torch, name)) {
        tj_trace_error(st, "setting torch.Tensor.%U of a traced value is not supported by "
                       "tracejit", name);
        return -1;
    }
    return PyObject_GenericSetAttr(self, name, value);
}

/* A torch trace's tracer hashes by identity, as torch tensors do (nn.Module.parameters()
 * keeps a set of them); a NumPy trace's stays unhashable, as ndarrays are. */
static Py_hash_t tracer_hash(PyObject *self) {
    tj_tracer *x = (tj_tracer *)self;
    if (!x->trace || !x->trace->torch) return PyObject_HashNotImplemented(self);
    Py_hash_t h = (Py_hash_t)((uintptr_t)self >> 4);
    return h == -1 ? -2 : h;
}

static PyMemberDef tracer_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tj_tracer, weakrefs), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(tj_tracer, dict), READONLY, NULL},
    {NULL}
};

static PyType_Slot tracer_slots[] = {
    {Py_tp_dealloc, tracer_dealloc},
    {Py_tp_traverse, tracer_traverse},
    {Py_tp_clear, tracer_clear},
    {Py_tp_repr, tracer_repr},
    {Py_tp_hash, tracer_hash},
    {Py_tp_members, tracer_members},
    {Py_tp_richcompare, tracer_richcompare},
    {Py_tp_getattro, tracer_getattro},
    {Py_tp_setattro, tracer_setattro},
    {Py_tp_iter, tj_tracer_iter},
    {Py_tp_getset, tracer_getset},
    {Py_tp_methods, tracer_methods},
    {Py_nb_add, nb_add},
    {Py_nb_subtract, nb_sub},
    {Py_nb_multiply, nb_mul},
    {Py_nb_true_divide, nb_truediv},
    {Py_nb_floor_divide, nb_floordiv},
    {Py_nb_remainder, nb_mod},
    {Py_nb_power, nb_pow},
    {Py_nb_negative, nb_neg},
    {Py_nb_positive, nb_pos},
    {Py_nb_absolute, nb_abs},
    {Py_nb_invert, nb_invert},
    {Py_nb_and, nb_and},
    {Py_nb_or, nb_or},
    {Py_nb_xor, nb_xor},
    {Py_nb_matrix_multiply, nb_matmul},
    {Py_nb_lshift, nb_lshift},
    {Py_nb_rshift, nb_rshift},
    {Py_nb_divmod, nb_divmod},
    {Py_nb_bool, nb_bool},
    {Py_nb_float, nb_float},
    {Py_nb_int, nb_int},
    {Py_nb_index, nb_index},
    {Py_mp_length, tracer_len},
    {Py_sq_length, tracer_len},
    {Py_mp_subscript, tracer_getitem},
    {Py_mp_ass_subscript, tracer_setitem},
    {Py_nb_inplace_add, nb_iadd},
    {Py_nb_inplace_subtract, nb_isub},
    {Py_nb_inplace_multiply, nb_imul},
    {Py_nb_inplace_true_divide, nb_itruediv},
    {Py_nb_inplace_floor_divide, nb_ifloordiv},
    {Py_nb_inplace_remainder, nb_imod},
    {Py_nb_inplace_power, nb_ipow},
    {Py_nb_inplace_and, nb_iand},
    {Py_nb_inplace_or, nb_ior},
    {Py_nb_inplace_xor, nb_ixor},
    {Py_nb_inplace_lshift, nb_ilshift},
    {Py_nb_inplace_rshift, nb_irshift},
    {Py_nb_inplace_matrix_multiply, nb_imatmul},
    {Py_tp_doc, "Stands in for an array while a function is traced."},
    {0, NULL},
};
static PyType_Spec tracer_spec = {"tracejit.Tracer", sizeof(tj_tracer), 0,
                                  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, tracer_slots};

int tj_tracer_types_init(PyObject *module, tj_state *st) {
    st->TraceType = tj_trace_type_new(module);
    if (!st->TraceType) return -1;
    st->TracerType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &tracer_spec, NULL);
    if (!st->TracerType) return -1;
    return PyModule_AddType(module, st->TracerType);
}
