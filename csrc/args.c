/* Arguments and results. Flattening a call walks nested tuples, lists and dicts and
 * writes the cache key: per array its dtype, shape and layout class; per Python
 * int/float only its type (the value is a runtime input); per static value its hash
 * (the object itself is compared with ==). The same walk, at trace time, replaces
 * each leaf with a Tracer. Results are flattened into graph outputs and a template
 * from which replay rebuilds the same structure.
 * Contract: flatten allocates nothing for calls with few leaves (stack buffers), and
 * a call's leaves appear in the same order in both walks. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

enum { K_ARRAY = 1, K_FLOAT, K_INT, K_NPSCALAR, K_TUPLE, K_LIST, K_DICT, K_STATIC, K_KWNAMES,
       K_BIGINT };
#define TAG(k, payload) ((int64_t)(k) << 56 | (int64_t)(payload))

void tj_flat_init(tj_flat *f) {
    f->words = f->words_stack;
    f->cap_words = TJ_FLAT_STACK;
    f->leaves = f->leaves_stack;
    f->cap_leaves = TJ_FLAT_STACK / 2;
    f->statics = f->statics_stack;
    f->cap_statics = TJ_FLAT_STACK / 4;
    f->n_words = f->n_leaves = f->n_statics = 0;
    f->hash = 1469598103934665603ull;
    f->has_tracer = 0;
    f->needs_grad = 0;
    f->grad_quiet = 0;
    f->out_lib = -1;
    f->out_type = NULL;
    f->dl = f->dl_stack;
    f->cap_dl = 4;
    f->owned = f->owned_stack;
    f->cap_owned = 4;
    f->n_dl = f->n_owned = 0;
}

void tj_flat_free(tj_flat *f) {
    if (f->words != f->words_stack) PyMem_Free(f->words);
    if (f->leaves != f->leaves_stack) PyMem_Free(f->leaves);
    if (f->statics != f->statics_stack) PyMem_Free(f->statics);
    for (int i = 0; i < f->n_owned; i++) Py_DECREF(f->owned[i]);
    if (f->owned != f->owned_stack) PyMem_Free(f->owned);
    if (f->dl != f->dl_stack) PyMem_Free(f->dl);
}

static int grow(void **buf, int *cap, void *stack, size_t elem) {
    int ncap = *cap * 2;
    void *nb = PyMem_Malloc((size_t)ncap * elem);
    if (!nb) { PyErr_NoMemory(); return -1; }
    memcpy(nb, *buf, (size_t)*cap * elem);
    if (*buf != stack) PyMem_Free(*buf);
    *buf = nb;
    *cap = ncap;
    return 0;
}

static inline int word(tj_flat *f, int64_t w) {
    if (f->n_words == f->cap_words &&
        grow((void **)&f->words, &f->cap_words, f->words_stack, sizeof(int64_t)) < 0)
        return -1;
    f->words[f->n_words++] = w;
    f->hash = (f->hash ^ (uint64_t)w) * 1099511628211ull;
    return 0;
}

static inline int leaf(tj_flat *f, PyObject *o) {
    if (f->n_leaves == f->cap_leaves &&
        grow((void **)&f->leaves, &f->cap_leaves, f->leaves_stack, sizeof(PyObject *)) < 0)
        return -1;
    f->leaves[f->n_leaves++] = o;
    return 0;
}

static int static_value(tj_flat *f, PyObject *o) {
    Py_hash_t h = PyObject_Hash(o);
    if (h == -1) return -1;
    if (f->n_statics == f->cap_statics &&
        grow((void **)&f->statics, &f->cap_statics, f->statics_stack, sizeof(PyObject *)) < 0)
        return -1;
    f->statics[f->n_statics++] = o;
    return word(f, TAG(K_STATIC, 0)) < 0 ? -1 : word(f, (int64_t)h);
}

/* A path to a leaf for error messages: "arg 0[1]['w']" or "arg 'scale'". */
typedef struct path { const struct path *up; Py_ssize_t index; PyObject *key; } path;

static PyObject *path_str(const path *p) {
    if (!p) return PyUnicode_FromString("");
    PyObject *up = path_str(p->up);
    if (!up) return NULL;
    PyObject *r;
    if (!p->up)
        r = p->key ? PyUnicode_FromFormat("arg %R", p->key) : PyUnicode_FromFormat("arg %zd", p->index);
    else
        r = p->key ? PyUnicode_FromFormat("%U[%R]", up, p->key) : PyUnicode_FromFormat("%U[%zd]", up, p->index);
    Py_DECREF(up);
    return r;
}

static int arg_error(const path *p, const char *fmt, PyObject *what) {
    PyObject *ps = path_str(p);
    if (!ps) return -1;
    PyObject *msg = PyUnicode_FromFormat(fmt, what);
    if (msg) PyErr_Format(PyExc_TypeError, "%U: %U", ps, msg);
    Py_XDECREF(msg);
    Py_DECREF(ps);
    return -1;
}

static int check_array(PyArrayObject *a, const path *p, int *dt) {
    *dt = tj_dtype_from_typenum(PyArray_TYPE(a));
    if (*dt < 0)
        return arg_error(p, "arrays of dtype %S are not supported by tracejit (supported: bool, "
                            "int32, int64, float32, float64)", (PyObject *)PyArray_DESCR(a));
    if (!PyArray_ISNOTSWAPPED(a))
        return arg_error(p, "array of dtype %S is not in native byte order; convert it with "
                            ".astype(its dtype.newbyteorder('='))", (PyObject *)PyArray_DESCR(a));
    if (PyArray_NDIM(a) > TJ_MAXDIM) {
        PyObject *n = PyLong_FromLong(PyArray_NDIM(a));
        arg_error(p, "arrays with %R dimensions are not supported (at most 16)", n);
        Py_XDECREF(n);
        return -1;
    }
    return 0;
}

/* A static value; an unhashable one is a TypeError naming the argument. */
static int static_arg(tj_flat *f, PyObject *o, const path *p) {
    if (static_value(f, o) == 0) return 0;
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
    PyErr_Clear();
    return arg_error(p, "%R is neither an array, a number, a tuple/list/dict of them, nor a "
                        "hashable static value", (PyObject *)Py_TYPE(o));
}

/* A torch tensor (read through its DLPack view at every call) or another DLPack
 * producer's array (an ndarray view of it, owned by the flat). The key word carries
 * the library, and a producer's type is a static, so results come back right. */
static int flatten_dlpack(tj_flat *f, PyObject *o, int lib, const path *p) {
    int dt, nd, contig;
    const int64_t *shape;
    PyObject *leaf_obj = o;
    if (lib == TJ_LIB_TORCH) {
        if (f->n_dl == f->cap_dl &&
            grow((void **)&f->dl, &f->cap_dl, f->dl_stack, sizeof(tj_dlview)) < 0)
            return -1;
        tj_dlview *v = &f->dl[f->n_dl];
        const char *why = NULL;
        int rc = tj_dl_torch_view(o, v, &why);
        if (rc < 0) return -1;
        if (rc > 0) {
            if (why == tj_dl_why_grad) {   /* the call may go to autograd */
                f->needs_grad = 1;
                if (f->grad_quiet && tj_get_state()->autograd_call) {   /* it clears this */
                    PyErr_SetNone(PyExc_TypeError);
                    return -1;
                }
            }
            PyObject *msg = PyUnicode_FromString(why);
            if (msg) arg_error(p, "this torch tensor %U", msg);
            Py_XDECREF(msg);
            return -1;
        }
        f->n_dl++;
        dt = v->dtype, nd = v->ndim, contig = v->contig, shape = v->shape;
    } else {
        PyObject *a = tj_dl_to_numpy(o);
        if (!a) {   /* on another device, or of a layout numpy cannot view */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyObject *msg = value ? PyObject_Str(value) : NULL;
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
            PyErr_Clear();
            if (msg) {
                PyObject *what = PyUnicode_FromFormat("%s array cannot be read on the CPU "
                                                      "(numpy.from_dlpack: %U)",
                                                      Py_TYPE(o)->tp_name, msg);
                if (what) arg_error(p, "this %U", what);
                Py_XDECREF(what);
                Py_DECREF(msg);
            }
            return -1;
        }
        if (f->n_owned == f->cap_owned &&
            grow((void **)&f->owned, &f->cap_owned, f->owned_stack, sizeof(PyObject *)) < 0) {
            Py_DECREF(a);
            return -1;
        }
        f->owned[f->n_owned++] = a;
        if (!PyArray_CheckExact(a))
            return arg_error(p, "numpy.from_dlpack of %R did not give an ndarray", (PyObject *)Py_TYPE(o));
        if (check_array((PyArrayObject *)a, p, &dt) < 0) return -1;
        nd = PyArray_NDIM((PyArrayObject *)a);
        contig = PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a) != 0;
        shape = (const int64_t *)PyArray_DIMS((PyArrayObject *)a);
        leaf_obj = a;
        if (static_value(f, (PyObject *)Py_TYPE(o)) < 0) return -1;
    }
    /* the device: its DLPack code and index (a CPU view for every producer today) */
    int64_t dev = lib == TJ_LIB_TORCH ? f->dl[f->n_dl - 1].device |
                                        (int64_t)f->dl[f->n_dl - 1].device_id << 8
                                      : TJ_DEVICE_CPU;
    if (word(f, TAG(K_ARRAY, dt | nd << 8 | contig << 16 | lib << 17 | dev << 20)) < 0) return -1;
    for (int d = 0; d < nd; d++)
        if (word(f, shape[d]) < 0) return -1;
    if (f->out_lib < 0) { f->out_lib = lib; f->out_type = Py_TYPE(o); }
    return leaf(f, leaf_obj);
}

static int flatten(tj_flat *f, PyObject *o, int is_static, const path *p) {
    if (is_static) return static_arg(f, o, p);
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyArray_Type) {
        PyArrayObject *a = (PyArrayObject *)o;
        int dt, nd = PyArray_NDIM(a);
        if (check_array(a, p, &dt) < 0) return -1;
        if (word(f, TAG(K_ARRAY, dt | nd << 8 | (PyArray_IS_C_CONTIGUOUS(a) ? 1 : 0) << 16 |
                            (int64_t)TJ_DEVICE_CPU << 20)) < 0)
            return -1;
        for (int d = 0; d < nd; d++)
            if (word(f, PyArray_DIM(a, d)) < 0) return -1;
        if (f->out_lib < 0) { f->out_lib = TJ_LIB_NUMPY; f->out_type = tp; }
        return leaf(f, o);
    }
    if (tp == &PyFloat_Type) return word(f, TAG(K_FLOAT, 0)) < 0 ? -1 : leaf(f, o);
    if (tp == &PyLong_Type) {   /* ints beyond int64 are weak ints held as float64 */
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return -1;
        return word(f, TAG(overflow ? K_BIGINT : K_INT, 0)) < 0 ? -1 : leaf(f, o);
    }
    if (tp == &PyTuple_Type || tp == &PyList_Type) {
        Py_ssize_t n = Py_SIZE(o);
        if (word(f, TAG(tp == &PyTuple_Type ? K_TUPLE : K_LIST, n)) < 0) return -1;
        PyObject **items = tp == &PyTuple_Type ? &PyTuple_GET_ITEM(o, 0) : ((PyListObject *)o)->ob_item;
        for (Py_ssize_t i = 0; i < n; i++) {
            path sub = {p, i, NULL};
            if (flatten(f, items[i], 0, &sub) < 0) return -1;
        }
        return 0;
    }
    if (tp == &PyDict_Type) {
        if (word(f, TAG(K_DICT, PyDict_GET_SIZE(o))) < 0) return -1;
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(o, &pos, &k, &v)) {
            path sub = {p, 0, k};
            if (static_value(f, k) < 0 || flatten(f, v, 0, &sub) < 0) return -1;
        }
        return 0;
    }
    if (tj_is_tracer(o)) {
        f->has_tracer = 1;
        return 0;
    }
    if (PyArray_Check(o))
        return arg_error(p, "ndarray subclass %R is not supported; pass np.asarray(x)",
                         (PyObject *)tp);
    if (PyArray_IsScalar(o, Generic)) {
        PyArray_Descr *d = PyArray_DescrFromScalar(o);
        if (!d) return -1;
        int dt = tj_dtype_from_typenum(d->type_num);
        if (dt < 0) {
            arg_error(p, "numpy scalars of dtype %S are not supported by tracejit", (PyObject *)d);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(d);
        return word(f, TAG(K_NPSCALAR, dt)) < 0 ? -1 : leaf(f, o);
    }
    int lib = tj_dl_kind(o);
    if (lib) return flatten_dlpack(f, o, lib, p);
    return static_arg(f, o, p);
}

static int is_static_name(const tj_argconf *conf, PyObject *name) {
    if (!conf->static_argnames) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(conf->static_argnames); i++) {
        int eq = PyUnicode_Compare(PyTuple_GET_ITEM(conf->static_argnames, i), name) == 0;
        if (eq) return 1;
    }
    return 0;
}

int tj_flatten_args(tj_flat *f, const tj_argconf *conf, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames) {
    for (Py_ssize_t i = 0; i < nargs; i++) {
        path p = {NULL, i, NULL};
        int st = i < 64 && (conf->static_mask >> i & 1);
        if (flatten(f, args[i], st, &p) < 0) return -1;
    }
    if (kwnames && PyTuple_GET_SIZE(kwnames)) {
        if (word(f, TAG(K_KWNAMES, PyTuple_GET_SIZE(kwnames))) < 0) return -1;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            path p = {NULL, 0, name};
            if (static_value(f, name) < 0) return -1;
            if (flatten(f, args[nargs + i], is_static_name(conf, name), &p) < 0) return -1;
        }
    }
    return 0;
}

/* ---- tracing the arguments ---------------------------------------------------- */

static PyObject *traced(tj_trace *t, PyObject *o, int is_static) {
    if (is_static) return Py_NewRef(o);
    PyTypeObject *tp = Py_TYPE(o);
    tj_slotdesc d = {.kind = TJ_SLOT_ARG, .index = t->g.n_slots, .contig = 1};
    int32_t id;
    if (tp == &PyArray_Type) {
        PyArrayObject *a = (PyArrayObject *)o;
        int64_t shape[TJ_MAXDIM];
        for (int i = 0; i < PyArray_NDIM(a); i++) shape[i] = PyArray_DIM(a, i);
        d.dtype = tj_dtype_from_typenum(PyArray_TYPE(a));
        d.contig = PyArray_IS_C_CONTIGUOUS(a) != 0;
        id = tj_trace_leaf(t, TJ_OP_INPUT, &d, 0, PyArray_NDIM(a), shape);
    } else if (tp == &PyFloat_Type || tp == &PyLong_Type) {
        int overflow = 0;
        if (tp == &PyLong_Type) PyLong_AsLongLongAndOverflow(o, &overflow);
        d.dtype = tp == &PyFloat_Type || overflow ? TJ_F64 : TJ_I64;
        id = tj_trace_leaf(t, TJ_OP_SCALAR, &d, overflow ? 2 : 1, 0, NULL);
    } else if (tp == &PyTuple_Type || tp == &PyList_Type) {
        Py_ssize_t n = Py_SIZE(o);
        PyObject *r = tp == &PyTuple_Type ? PyTuple_New(n) : PyList_New(n);
        for (Py_ssize_t i = 0; r && i < n; i++) {
            PyObject *item = traced(t, tp == &PyTuple_Type ? PyTuple_GET_ITEM(o, i)
                                                            : PyList_GET_ITEM(o, i), 0);
            if (!item) { Py_CLEAR(r); break; }
            if (tp == &PyTuple_Type) PyTuple_SET_ITEM(r, i, item);
            else PyList_SET_ITEM(r, i, item);
        }
        return r;
    } else if (tp == &PyDict_Type) {
        PyObject *r = PyDict_New(), *k, *v;
        Py_ssize_t pos = 0;
        while (r && PyDict_Next(o, &pos, &k, &v)) {
            PyObject *item = traced(t, v, 0);
            if (!item || PyDict_SetItem(r, k, item) < 0) Py_CLEAR(r);
            Py_XDECREF(item);
        }
        return r;
    } else if (PyArray_IsScalar(o, Generic)) {
        PyArray_Descr *descr = PyArray_DescrFromScalar(o);
        if (!descr) return NULL;
        d.dtype = tj_dtype_from_typenum(descr->type_num);
        Py_DECREF(descr);
        id = tj_trace_leaf(t, TJ_OP_SCALAR, &d, 0, 0, NULL);
    } else {
        int lib = tj_dl_kind(o);
        if (lib == TJ_LIB_DLPACK) {     /* the ndarray view of it, as flatten made */
            PyObject *a = tj_dl_to_numpy(o);
            PyObject *r = a ? traced(t, a, 0) : NULL;
            Py_XDECREF(a);
            return r;
        }
        if (lib != TJ_LIB_TORCH) return Py_NewRef(o);   /* static */
        tj_dlview v;
        const char *why = NULL;
        int rc = tj_dl_torch_view(o, &v, &why);
        if (rc != 0) return rc < 0 ? NULL : tj_internal_error("a torch argument changed: %s", why);
        d.dtype = v.dtype;
        d.contig = (uint8_t)v.contig;
        d.torch = 1;
        t->torch = 1;
        id = tj_trace_leaf(t, TJ_OP_INPUT, &d, 0, v.ndim, v.shape);
    }
    return id < 0 ? NULL : tj_tracer_new(t, id);
}

int tj_trace_args(tj_trace *t, const tj_argconf *conf, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames, PyObject **targs, PyObject **tkwargs) {
    *targs = PyTuple_New(nargs);
    *tkwargs = NULL;
    if (!*targs) return -1;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *v = traced(t, args[i], i < 64 && (conf->static_mask >> i & 1));
        if (!v) goto fail;
        PyTuple_SET_ITEM(*targs, i, v);
    }
    if (kwnames && PyTuple_GET_SIZE(kwnames)) {
        if (!(*tkwargs = PyDict_New())) goto fail;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            PyObject *v = traced(t, args[nargs + i], is_static_name(conf, name));
            if (!v || PyDict_SetItem(*tkwargs, name, v) < 0) { Py_XDECREF(v); goto fail; }
            Py_DECREF(v);
        }
    }
    return 0;
fail:
    Py_CLEAR(*targs);
    Py_CLEAR(*tkwargs);
    return -1;
}

/* ---- results ------------------------------------------------------------------ */

/* T_SCALAR: an output eager NumPy returns as a NumPy scalar (np.sum(x), x[0, 0], a ufunc
 * of 0-d operands), T_PYNUMBER one eager returns as a Python number (a Python float
 * argument, n * 2 of a Python int n): replayed from its 0-d array */
enum { T_OUT, T_TUPLE, T_LIST, T_DICT, T_STATIC, T_SCALAR, T_PYNUMBER };

static int token(tj_template *tp, int kind, int payload) {
    if (tp->n_tokens == tp->cap_tokens &&
        tj_grow((void **)&tp->tokens, &tp->cap_tokens, 8, sizeof *tp->tokens) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    tp->tokens[tp->n_tokens++] = kind | payload << 4;
    return 0;
}

static int add_static(tj_template *tp, PyObject *o) {
    if (PyList_Append(tp->statics, o) < 0) return -1;
    return token(tp, T_STATIC, (int)PyList_GET_SIZE(tp->statics) - 1);
}

static int result_walk(tj_template *tp, tj_trace *t, PyObject *o) {
    PyTypeObject *type = Py_TYPE(o);
    if (tj_is_tracer(o) || PyArray_Check(o) || tj_dl_kind(o) == TJ_LIB_TORCH) {
        int32_t id = tj_operand(t, o);
        if (id < 0) return -1;
        tj_error err;
        if (tj_graph_add_output(&t->g, id, &err) < 0) return tj_error_raise(&err);
        int scalar = tj_is_tracer(o) ? tj_tracer_is_np_scalar(o) : 0;
        return token(tp, scalar == 2 ? T_PYNUMBER : scalar ? T_SCALAR : T_OUT, t->g.n_out - 1);
    }
    if (type != &PyTuple_Type && PyTuple_Check(o)) {
        /* a named tuple (torch.max(x, dim)'s (values, indices)) holding traced values
         * comes back as a plain tuple; one of static values stays static */
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); i++)
            if (tj_is_tracer(PyTuple_GET_ITEM(o, i))) { type = &PyTuple_Type; break; }
    }
    if (type == &PyTuple_Type || type == &PyList_Type) {
        Py_ssize_t n = Py_SIZE(o);
        if (token(tp, type == &PyTuple_Type ? T_TUPLE : T_LIST, (int)n) < 0) return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (result_walk(tp, t, type == &PyTuple_Type ? PyTuple_GET_ITEM(o, i)
                                                          : PyList_GET_ITEM(o, i)) < 0)
                return -1;
        return 0;
    }
    if (type == &PyDict_Type) {
        if (token(tp, T_DICT, (int)PyDict_GET_SIZE(o)) < 0) return -1;
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(o, &pos, &k, &v))
            if (add_static(tp, k) < 0 || result_walk(tp, t, v) < 0) return -1;
        return 0;
    }
    return add_static(tp, o);
}

int tj_template_from_result(tj_template *tp, tj_trace *t, PyObject *result) {
    memset(tp, 0, sizeof *tp);
    if (!(tp->statics = PyList_New(0))) return -1;
    return result_walk(tp, t, result);
}

void tj_template_free(tj_template *tp) {
    free(tp->tokens);   /* tj_grow's */
    Py_CLEAR(tp->statics);
    memset(tp, 0, sizeof *tp);
}

static PyObject *build(const tj_template *tp, PyObject *const *outs, int *pos) {
    int32_t tok = tp->tokens[(*pos)++];
    int kind = tok & 15, payload = tok >> 4;
    switch (kind) {
    case T_OUT: return Py_NewRef(outs[payload]);
    case T_SCALAR:
    case T_PYNUMBER: {     /* (a torch result stays a tensor) */
        PyArrayObject *a = (PyArrayObject *)outs[payload];
        if (!PyArray_CheckExact(a) || PyArray_NDIM(a)) return Py_NewRef(a);
        return kind == T_SCALAR ? PyArray_ToScalar(PyArray_DATA(a), a)
                                : PyArray_GETITEM(a, PyArray_DATA(a));
    }
    case T_STATIC: return Py_NewRef(PyList_GET_ITEM(tp->statics, payload));
    case T_TUPLE:
    case T_LIST: {
        PyObject *r = kind == T_TUPLE ? PyTuple_New(payload) : PyList_New(payload);
        for (int i = 0; r && i < payload; i++) {
            PyObject *item = build(tp, outs, pos);
            if (!item) { Py_CLEAR(r); break; }
            if (kind == T_TUPLE) PyTuple_SET_ITEM(r, i, item);
            else PyList_SET_ITEM(r, i, item);
        }
        return r;
    }
    default: {
        PyObject *r = PyDict_New();
        for (int i = 0; r && i < payload; i++) {
            PyObject *k = build(tp, outs, pos), *v = k ? build(tp, outs, pos) : NULL;
            if (!v || PyDict_SetItem(r, k, v) < 0) Py_CLEAR(r);
            Py_XDECREF(k);
            Py_XDECREF(v);
        }
        return r;
    }
    }
}

PyObject *tj_template_build(const tj_template *tp, PyObject *const *outs) {
    int pos = 0;
    return build(tp, outs, &pos);
}
