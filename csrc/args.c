/* Arguments and results. Flattening a call walks its pytrees (csrc/pytree.c's rule)
 * and writes the cache key: per container its kind, size, keys and type; per array its dtype, shape and layout class; per Python
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

enum { K_ARRAY = 1, K_FLOAT, K_INT, K_NPSCALAR, K_NODE, K_STATIC, K_KWNAMES, K_BIGINT };
#define TAG(k, payload) ((int64_t)(k) << 56 | (int64_t)(payload))

void tj_flat_init(tj_flat *f, tj_state *st) {
    f->st = st;
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
    f->complex_arg = 0;
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

static int arg_error(const tj_path *p, const char *fmt, PyObject *what) {
    PyObject *msg = PyUnicode_FromFormat(fmt, what);
    if (msg) tj_path_error(PyExc_TypeError, p, "%U", msg);
    Py_XDECREF(msg);
    return -1;
}

static int check_array(tj_flat *f, PyArrayObject *a, const tj_path *p, int *dt) {
    *dt = tj_dtype_from_typenum(PyArray_TYPE(a));
    if (*dt < 0 && (PyArray_TYPE(a) == NPY_CFLOAT || PyArray_TYPE(a) == NPY_CDOUBLE) &&
        PyArray_ISNBO(PyArray_DESCR(a)->byteorder) && f->st->complex_call)
        f->complex_arg = 1;   /* complex64, complex128: _complex.call */
    if (*dt < 0)
        return arg_error(p, "arrays of dtype %S are not supported by tracejit (supported: "
                            TJ_SUPPORTED_DTYPES ")", (PyObject *)PyArray_DESCR(a));
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
static int static_arg(tj_flat *f, PyObject *o, const tj_path *p) {
    if (static_value(f, o) == 0) return 0;
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
    PyErr_Clear();
    return tj_tree_leaf_error(p, o, "is a static value and must be hashable");
}

/* A torch tensor (read through its DLPack view at every call) or another DLPack
 * producer's array (an ndarray view of it, owned by the flat). The key word carries
 * the library, and a producer's type is a static, so results come back right. */
static int flatten_dlpack(tj_flat *f, PyObject *o, int lib, const tj_path *p) {
    int dt, nd, contig;
    const int64_t *shape;
    PyObject *leaf_obj = o;
    if (lib == TJ_LIB_TORCH) {
        if (f->n_dl == f->cap_dl &&
            grow((void **)&f->dl, &f->cap_dl, f->dl_stack, sizeof(tj_dlview)) < 0)
            return -1;
        tj_dlview *v = &f->dl[f->n_dl];
        const char *why = NULL;
        int rc = tj_dl_torch_view(f->st, o, v, &why);
        if (rc < 0) return -1;
        if (rc > 0) {
            if (why == tj_dl_why_grad) {   /* the call may go to autograd */
                f->needs_grad = 1;
                if (f->grad_quiet && f->st->autograd_call) {   /* it clears this */
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
        PyObject *a = tj_dl_to_numpy(f->st, o);
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
        if (check_array(f, (PyArrayObject *)a, p, &dt) < 0) return -1;
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

/* A leaf of an argument's pytree: its key words, and its object among the leaves
 * (arrays, numbers) or the statics. */
static int flatten_leaf(void *ctx, PyObject *o, const tj_path *p) {
    tj_flat *f = ctx;
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyArray_Type) {
        PyArrayObject *a = (PyArrayObject *)o;
        int dt, nd = PyArray_NDIM(a);
        if (check_array(f, a, p, &dt) < 0) return -1;
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
    if (tj_is_tracer(o)) {
        f->has_tracer = 1;
        return 0;
    }
    if (f->st->complex_cls && PyObject_TypeCheck(o, (PyTypeObject *)f->st->complex_cls)) {
        f->has_tracer = f->complex_arg = 1;   /* a complex traced value: trace through */
        PyErr_SetString(PyExc_TypeError, "a complex traced argument");
        return -1;
    }
    if (PyArray_Check(o))
        return arg_error(p, "ndarray subclass %R is not supported; pass np.asarray(x)",
                         (PyObject *)tp);
    if (PyArray_IsScalar(o, Generic)) {
        PyArray_Descr *d = PyArray_DescrFromScalar(o);
        if (!d) return -1;
        int dt = tj_dtype_from_typenum(d->type_num);
        if (dt < 0) {
            if ((d->type_num == NPY_CFLOAT || d->type_num == NPY_CDOUBLE) && f->st->complex_call)
                f->complex_arg = 1;
            arg_error(p, "numpy scalars of dtype %S are not supported by tracejit", (PyObject *)d);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(d);
        return word(f, TAG(K_NPSCALAR, dt)) < 0 ? -1 : leaf(f, o);
    }
    int lib = tj_dl_kind(f->st, o);
    if (lib) return flatten_dlpack(f, o, lib, p);
    return static_arg(f, o, p);
}


/* A container: its kind and size, then its aux (a namedtuple's type, a defaultdict's
 * factory) as a static; a dict's keys are statics too (flatten_key). */
static int flatten_node(void *ctx, PyObject *o, tj_tree_kind kind, Py_ssize_t n, PyObject *aux,
                        const tj_path *p) {
    tj_flat *f = ctx;
    if (word(f, TAG(K_NODE, (int64_t)n << 4 | kind)) < 0) return -1;
    if (!aux || static_value(f, aux) == 0) return 0;
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        arg_error(p, "the defaultdict's default_factory %R is not hashable", aux);
    }
    return -1;
}

static int flatten_key(void *ctx, PyObject *key) { return static_value(ctx, key); }

static const tj_tree_visitor flatten_visitor = {flatten_node, flatten_key, flatten_leaf};

static int flatten(tj_flat *f, PyObject *o, int is_static, const tj_path *p) {
    if (is_static) return static_arg(f, o, p);
    if (Py_IS_TYPE(o, &PyArray_Type)) return flatten_leaf(f, o, p);   /* a leaf, without the walk */
    return tj_tree_walk(f->st, o, &flatten_visitor, f, p);
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
        tj_path p = {NULL, "arg", i, NULL, NULL};
        int st = i < 64 && (conf->static_mask >> i & 1);
        if (flatten(f, args[i], st, &p) < 0) return -1;
    }
    if (kwnames && PyTuple_GET_SIZE(kwnames)) {
        if (word(f, TAG(K_KWNAMES, PyTuple_GET_SIZE(kwnames))) < 0) return -1;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            tj_path p = {NULL, "arg", -1, name, NULL};
            if (static_value(f, name) < 0) return -1;
            if (flatten(f, args[nargs + i], is_static_name(conf, name), &p) < 0) return -1;
        }
    }
    return 0;
}

/* ---- the device a call runs on ------------------------------------------------ */

/* Notes one array's device; -1 + TraceError when it differs from those seen. */
static int note_device(tj_state *st, int *have, int *device, int *id, int dev, int dev_id,
                       const char *what) {
    if (!*have || (*device == dev && *id == dev_id)) {
        *have = 1, *device = dev, *id = dev_id;
        return 0;
    }
    char a[32], b[32];
    snprintf(a, sizeof a, *device == TJ_DEVICE_CUDA ? "cuda:%d" : "cpu", *id);
    snprintf(b, sizeof b, dev == TJ_DEVICE_CUDA ? "cuda:%d" : "cpu", dev_id);
    PyErr_Format(st->TraceError, "the traced function's arrays are on more than one device: "
                 "%s, and %s on %s; move them to one device first", a, what, b);
    return -1;
}

int tj_flat_device(const tj_flat *f, PyObject *captures, int *device, int *id) {
    int have = 0;
    *device = TJ_DEVICE_CPU, *id = 0;
    for (int i = 0; i < f->n_dl; i++)
        if (note_device(f->st, &have, device, id, f->dl[i].device, f->dl[i].device_id,
                        "a torch argument") < 0)
            return -1;
    for (int i = 0; i < f->n_leaves; i++)
        if (PyArray_Check(f->leaves[i]) &&
            note_device(f->st, &have, device, id, TJ_DEVICE_CPU, 0, "an array argument") < 0)
            return -1;
    for (Py_ssize_t i = 0; captures && i < PyList_GET_SIZE(captures); i++) {
        PyObject *o = PyTuple_GET_ITEM(PyList_GET_ITEM(captures, i), 3);
        tj_dlview v;
        const char *why;
        if (PyArray_Check(o)) continue;
        if (tj_dl_torch_view(f->st, o, &v, &why) != 0) {
            if (!PyErr_Occurred() && why == tj_dl_why_grad)
                PyErr_SetString(f->st->TraceError, tj_dl_why_no_grad_read);
            else if (!PyErr_Occurred())
                tj_internal_error(f->st, "a captured torch tensor changed");
            return -1;
        }
        if (note_device(f->st, &have, device, id, v.device, v.device_id, "a captured array") < 0)
            return -1;
    }
    return 0;
}

/* ---- tracing the arguments ---------------------------------------------------- */

/* A leaf as its Tracer (a new INPUT or SCALAR node), or itself (a static). New reference. */
static PyObject *traced_leaf(tj_trace *t, PyObject *o) {
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
    } else if (PyArray_IsScalar(o, Generic)) {
        PyArray_Descr *descr = PyArray_DescrFromScalar(o);
        if (!descr) return NULL;
        d.dtype = tj_dtype_from_typenum(descr->type_num);
        Py_DECREF(descr);
        id = tj_trace_leaf(t, TJ_OP_SCALAR, &d, 0, 0, NULL);
    } else {
        int lib = tj_dl_kind(t->st, o);
        if (lib == TJ_LIB_DLPACK) {     /* the ndarray view of it, as flatten made */
            PyObject *a = tj_dl_to_numpy(t->st, o);
            PyObject *r = a ? traced_leaf(t, a) : NULL;
            Py_XDECREF(a);
            return r;
        }
        if (lib != TJ_LIB_TORCH) return Py_NewRef(o);   /* static */
        tj_dlview v;
        const char *why = NULL;
        int rc = tj_dl_torch_view(t->st, o, &v, &why);
        if (rc != 0) return rc < 0 ? NULL : tj_internal_error(t->st, "a torch argument changed: "
                                                              "%s", why);
        d.dtype = v.dtype;
        d.contig = (uint8_t)v.contig;
        d.torch = 1;
        if (!t->torch && v.device == TJ_DEVICE_CUDA) t->cuda_device = v.device_id + 1;
        t->torch = 1;
        id = tj_trace_leaf(t, TJ_OP_INPUT, &d, 0, v.ndim, v.shape);
    }
    return id < 0 ? NULL : tj_tracer_new(t, id);
}

typedef struct { tj_trace *t; PyObject *leaves; } traced_ctx;

static int append_traced(void *ctx, PyObject *o, const tj_path *p) {
    traced_ctx *c = ctx;
    PyObject *v = traced_leaf(c->t, o);
    int rc = v ? PyList_Append(c->leaves, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* An argument with its leaves traced, rebuilt by the walk's treedef (its structure,
 * types included). New reference. */
static PyObject *traced(tj_trace *t, PyObject *o, int is_static) {
    if (is_static) return Py_NewRef(o);
    if (tj_tree_kind_of(t->st, o) == TJ_TREE_LEAF) return traced_leaf(t, o);
    tj_treedef td;
    traced_ctx c = {t, PyList_New(0)};
    PyObject *r = NULL;
    if (!c.leaves) return NULL;
    if (tj_tree_flatten(t->st, o, &td, append_traced, &c, NULL) == 0) {
        r = tj_treedef_build(&td, PySequence_Fast_ITEMS(c.leaves));
        tj_treedef_free(&td);
    }
    Py_DECREF(c.leaves);
    return r;
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

/* Whether a static result leaf holds a traced value a few levels down: inside a
 * subclass of tuple, list or dict this rule does not walk, or among the leaf's own
 * attributes (a dataclass of tracers; not its attributes' attributes, nor a module's).
 * Such a leaf would hand out tracers of a finished trace at every call. */
static int holds_tracer(PyObject *o, int depth, int attrs) {
    if (tj_is_tracer(o)) return 1;
    if (depth == 0 || PyUnicode_Check(o) || PyLong_Check(o) || PyFloat_Check(o) ||
        PyType_Check(o) || PyModule_Check(o))
        return 0;
    PyObject *items = NULL;
    if (PyDict_Check(o)) items = PyDict_Values(o);
    else if (PyTuple_Check(o) || PyList_Check(o)) items = PySequence_List(o);
    else {
        PyObject **dictptr = attrs ? _PyObject_GetDictPtr(o) : NULL;
        if (!dictptr || !*dictptr || !PyDict_Check(*dictptr)) return 0;
        items = PyDict_Values(*dictptr);
    }
    if (!items) return -1;
    int found = 0;
    for (Py_ssize_t i = 0; !found && i < PyList_GET_SIZE(items); i++)
        found = holds_tracer(PyList_GET_ITEM(items, i), depth - 1, 0);
    Py_DECREF(items);
    return found;
}

typedef struct { tj_template *tp; tj_trace *t; } result_ctx;

/* A result leaf: a traced value or an array becomes an output, anything else a static
 * of the template. */
static int result_leaf(void *ctx, PyObject *o, const tj_path *p) {
    result_ctx *c = ctx;
    tj_template *tp = c->tp;
    int32_t out = -1;
    int kind = TJ_RESULT_ARRAY, ckind = -1;
    PyObject *cplx = NULL;   /* a complex result: (its stacked parts, NumPy scalar?) */
    if (c->t->st->complex_cls && PyObject_TypeCheck(o, (PyTypeObject *)c->t->st->complex_cls)) {
        PyObject *a = PyTuple_Pack(1, o);
        cplx = a ? tj_complex_op(c->t->st, "result", a, NULL) : NULL;
        Py_XDECREF(a);
        if (!cplx) return -1;
        if (!PyTuple_Check(cplx) || PyTuple_GET_SIZE(cplx) != 2) {
            Py_DECREF(cplx);
            PyErr_SetString(PyExc_TypeError, "_complex.op('result') gives (array, np0)");
            return -1;
        }
        ckind = PyTuple_GET_ITEM(cplx, 1) == Py_True ? TJ_RESULT_COMPLEX_SCALAR
                                                     : TJ_RESULT_COMPLEX;
        o = PyTuple_GET_ITEM(cplx, 0);
    }
    if (tj_is_tracer(o) || PyArray_Check(o) || tj_dl_kind(c->t->st, o) == TJ_LIB_TORCH) {
        int32_t id = tj_operand(c->t, o);
        int scalar = id >= 0 && tj_is_tracer(o) ? tj_tracer_is_np_scalar(o) : 0;
        Py_XDECREF(cplx);   /* (o is an output now, or the call fails) */
        if (id < 0) return -1;
        tj_error err;
        if (tj_graph_add_output(&c->t->g, id, &err) < 0) return tj_error_raise(c->t->st, &err);
        out = c->t->g.n_out - 1;
        kind = scalar == 2 ? TJ_RESULT_PYNUMBER : scalar ? TJ_RESULT_SCALAR : TJ_RESULT_ARRAY;
        if (ckind >= 0) kind = ckind;
    } else if (PyObject_HasAttrString(o, "_tj_merge_into")) {   /* python/tracejit/_masked.py */
        return tj_path_error(c->t->st->TraceError, p, "is x[mask] with a traced boolean mask, "
                             "whose size depends on the data, which a trace cannot represent: "
                             "return a reduction of it, or np.where(mask, x, fill) over the "
                             "whole array");
    } else {
        if (cplx) {   /* a Complex of constants: NumPy's value */
            Py_DECREF(cplx);
            PyErr_SetString(PyExc_TypeError, "a complex result holds no traced value");
            return -1;
        }
        int held = holds_tracer(o, 4, 1);
        if (held < 0) return -1;
        if (held) return tj_tree_leaf_error(p, o, "cannot hold traced values");
    }
    Py_ssize_t i = PyList_GET_SIZE(tp->statics);
    if (i == tp->cap_out) {
        if (tj_grow((void **)&tp->out_of, &tp->cap_out, 8, sizeof *tp->out_of) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        uint8_t *k = realloc(tp->kind_of, (size_t)tp->cap_out);
        if (!k) { PyErr_NoMemory(); return -1; }
        tp->kind_of = k;
    }
    tp->out_of[i] = out;
    tp->kind_of[i] = (uint8_t)kind;
    tp->any_scalar |= kind != TJ_RESULT_ARRAY;
    return PyList_Append(tp->statics, out < 0 ? o : Py_None);
}

int tj_template_from_result(tj_template *tp, tj_trace *t, PyObject *result) {
    memset(tp, 0, sizeof *tp);
    if (!(tp->statics = PyList_New(0))) return -1;
    result_ctx c = {tp, t};
    tj_path root = {NULL, "result", -1, NULL, NULL};
    return tj_tree_flatten(t->st, result, &tp->tree, result_leaf, &c, &root);
}

void tj_template_free(tj_template *tp) {
    tj_treedef_free(&tp->tree);
    free(tp->out_of);   /* tj_grow's */
    free(tp->kind_of);
    Py_CLEAR(tp->statics);
    memset(tp, 0, sizeof *tp);
}

/* Output `a` as eager hands it out: a NumPy scalar or a Python number where eager NumPy
 * gives one (np.sum(x), x[0, 0], a ufunc of 0-d operands; a Python float argument,
 * n * 2 of a Python int n), from its 0-d array; a torch result stays a tensor, unless
 * eager's is a Python number (a float argument's `s * 2`, Pyro's torch_item). New
 * reference. */
static PyObject *as_result(PyObject *a, int kind) {
    if (kind >= TJ_RESULT_COMPLEX && PyArray_CheckExact(a)) {
        /* float (..., 2), re and im interleaved: the same memory as complex (...) */
        PyArrayObject *f = (PyArrayObject *)a;
        int nd = PyArray_NDIM(f);
        if (nd < 1 || PyArray_DIM(f, nd - 1) != 2 ||
            PyArray_STRIDE(f, nd - 1) != PyArray_ITEMSIZE(f) || !PyArray_ISFLOAT(f)) {
            PyErr_SetString(PyExc_SystemError, "tracejit: a complex result's parts are not "
                            "interleaved");
            return NULL;
        }
        PyArray_Descr *d = PyArray_DescrFromType(PyArray_TYPE(f) == NPY_FLOAT ? NPY_CFLOAT
                                                                              : NPY_CDOUBLE);
        PyObject *z = d ? PyArray_NewFromDescr(&PyArray_Type, d, nd - 1, PyArray_DIMS(f),
                                               PyArray_STRIDES(f), PyArray_DATA(f),
                                               NPY_ARRAY_WRITEABLE, NULL) : NULL;
        if (!z) return NULL;
        if (PyArray_SetBaseObject((PyArrayObject *)z, Py_NewRef(a)) < 0) {
            Py_DECREF(z);
            return NULL;
        }
        if (kind == TJ_RESULT_COMPLEX || nd > 1) return z;
        PyObject *sc = PyArray_ToScalar(PyArray_DATA((PyArrayObject *)z), (PyArrayObject *)z);
        Py_DECREF(z);
        return sc;
    }
    if (kind == TJ_RESULT_PYNUMBER && !PyArray_Check(a))   /* a torch trace's Python number */
        return PyObject_CallMethod(a, "item", NULL);
    if (kind == TJ_RESULT_ARRAY || !PyArray_CheckExact(a) || PyArray_NDIM((PyArrayObject *)a))
        return Py_NewRef(a);
    PyArrayObject *arr = (PyArrayObject *)a;
    return kind == TJ_RESULT_SCALAR ? PyArray_ToScalar(PyArray_DATA(arr), arr)
                                    : PyArray_GETITEM(arr, PyArray_DATA(arr));
}

PyObject *tj_template_build(const tj_template *tp, PyObject *const *outs) {
    Py_ssize_t n = tp->tree.n_leaves;
    if (n == 0 || (n == 1 && tp->tree.n_tokens == 1))   /* no leaf; a leaf alone */
        return n ? (tp->out_of[0] >= 0 ? as_result(outs[tp->out_of[0]], tp->kind_of[0])
                                       : Py_NewRef(PyList_GET_ITEM(tp->statics, 0)))
                 : tj_treedef_build(&tp->tree, NULL);
    PyObject *stack[16], **leaves = n <= 16 ? stack : PyMem_Malloc((size_t)n * sizeof *leaves);
    if (!leaves) return PyErr_NoMemory();
    stack[0] = NULL;   /* (n >= 2 below: for the compiler's uninitialized-use analysis) */
    Py_ssize_t made = 0;   /* leaves [0, made) are new references when any_scalar */
    PyObject *r = NULL;
    for (Py_ssize_t i = 0; i < n; i++, made++) {
        PyObject *leaf = tp->out_of[i] >= 0 ? outs[tp->out_of[i]] : PyList_GET_ITEM(tp->statics, i);
        if (tp->any_scalar && !(leaf = tp->out_of[i] >= 0 ? as_result(leaf, tp->kind_of[i])
                                                          : Py_NewRef(leaf)))
            goto done;
        leaves[i] = leaf;
    }
    r = tj_treedef_build(&tp->tree, leaves);
done:
    for (Py_ssize_t i = 0; tp->any_scalar && i < made; i++) Py_DECREF(leaves[i]);
    if (leaves != stack) PyMem_Free(leaves);
    return r;
}
