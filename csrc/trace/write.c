/* Writes into traced arrays, functionalized: `x op= v`, torch's in-place methods and
 * `x[key] = v` compute x's new contents as a new node and rebind x's Tracer object to
 * it. Where other arrays see x's memory (x is a view, or views of x are held: its
 * alias family, the node a chain of views and detaches starts from and every view of
 * it), the write goes into that base and every live Tracer of the family is rebound
 * (write_views.c). What stays refused (another Tracer of x's very node, a broadcast
 * view, arrays read from outside that are not traced) raises TraceError naming the
 * write and the reason (write_refusal).
 * The caller's arrays: a write into an argument itself, or into a tensor the function
 * reads from outside (a module's buffer, a closure's or global's tensor: lifted by
 * _torch's mode), is the same rebinding, and the array's entry in t->ext records its
 * contents now (tj_extwrite): reads of the capture later in the trace see them, and at
 * the end of the trace they become an output the replay writes back into the caller's
 * memory (csrc/runtime.c); a write through a view of it writes into its contents.
 * Contract: an assignment's positions come from NumPy's own indexing of an index map
 * (duplicates: the last write wins; NumPy's IndexErrors), its value is broadcast and
 * cast to x's dtype as NumPy's setitem does (unsafe casting), and the result is one
 * WHERE over x: no write reaches memory another value reads. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* Whether node n reads its operand's memory in eager: a view, torch's detach, or an
 * alias copy (ir.h). */
static int aliases(const tj_node *n) {
    return tj_ops[n->op].kind == TJ_K_VIEW ||
           (n->op == TJ_OP_COPY && (n->axes == TJ_COPY_DETACH || n->axes == TJ_COPY_ALIAS));
}

static PyObject *shape_tuple(int ndim, const int64_t *shape);

/* views_strided.c: NumPy's error for a write into a read-only view (0/-1); and
 * x[key] = value through the view x[key] where x reads an element twice (1 done, 0
 * not such a write, -1 error). */
int tj_view_readonly_error(tj_trace *t, tj_tracer *x, const char *what);
int tj_view_assign_region(tj_trace *t, PyObject *x, PyObject *key, PyObject *value);

static int held(const tj_trace *t, int32_t id) {
    return id < t->cap_holders ? t->holders[id] : 0;
}

/* Why writing into x would not be eager's, or NULL: the write then reaches x and every
 * live view of its alias root (write_views.c). `ignore`: a Tracer the write reads and
 * then drops (its value is read before the write, as NumPy's overlap rule does), or
 * NULL. ext: whether the root is the caller's array (a t->ext entry). */
static const char *write_refusal(tj_tracer *x, PyObject *ignore, int ext) {
    tj_trace *t = x->trace;
    const tj_graph *g = &t->g;
    int32_t root = x->id;
    while (aliases(&g->nodes[root])) root = g->nodes[root].in[0];
    const tj_node *r = &g->nodes[root];
    int view = root != x->id;
    if (r->op == TJ_OP_INPUT && view && !ext)
        return "it is a view of an argument's contents before an earlier write (tracejit "
               "writes into an argument, or through a view of it taken since)";
    if (tj_ops[r->op].kind == TJ_K_LEAF && !ext)
        return view ? "it is a view of an array the function reads from outside (a closure, a "
                      "global, a module's parameter or buffer), which is not traced"
                    : "it is an array the function reads from outside (a closure, a global, a "
                      "module's parameter or buffer) or made by a factory, which are not traced";
    const char *copied = tj_write_view_copy_refusal(t, x);
    if (copied) return copied;
    if (held(t, x->id) - (ignore && ((tj_tracer *)ignore)->id == x->id) > 1)
        return ext && !view ? "another traced value stands for the same array (an older "
                              "reference that would see the write too)"
                            : "another traced value shares its memory";
    return NULL;
}

static int32_t alias_root(const tj_graph *g, int32_t id) {
    while (aliases(&g->nodes[id])) id = g->nodes[id].in[0];
    return id;
}

/* Whether capture node id holds a tensor a torch factory made while tracing. */
static int made_in_trace(const tj_trace *t, int32_t id) {
    for (Py_ssize_t i = 0; t->made && i < PyList_GET_SIZE(t->captures); i++) {
        PyObject *c = PyList_GET_ITEM(t->captures, i);
        if (PyLong_AsLong(PyTuple_GET_ITEM(c, 4)) != id) continue;
        PyObject *o = PyTuple_GET_ITEM(c, 3);
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(t->made); k++)
            if (PyList_GET_ITEM(t->made, k) == o) return 1;
        return 0;
    }
    return 0;
}

/* The entry of t->ext x stands for: the caller's array itself (x's node is an entry's
 * cur, or an argument's or capture's leaf, whose entry is made now). -1 none; -2 +
 * MemoryError. */
static int ext_entry(tj_trace *t, int32_t id) {
    for (int i = 0; i < t->n_ext; i++)
        if (t->ext[i].cur == id) return i;
    const tj_node *n = &t->g.nodes[id];
    if (n->op != TJ_OP_INPUT && n->op != TJ_OP_CAPTURE) return -1;
    for (int i = 0; i < t->n_ext; i++)
        if (t->ext[i].root == id) return -1;   /* a Tracer of its contents before a write */
    if (t->n_ext == t->cap_ext) {
        int cap = t->cap_ext ? 2 * t->cap_ext : 8;
        tj_extwrite *e = PyMem_Realloc(t->ext, (size_t)cap * sizeof *e);
        if (!e) { PyErr_NoMemory(); return -2; }
        t->ext = e;
        t->cap_ext = cap;
    }
    t->ext[t->n_ext] = (tj_extwrite){id, id, !(n->op == TJ_OP_CAPTURE && made_in_trace(t, id))};
    return t->n_ext++;
}

/* Set (per thread) while _torch_autograd traces a piece that recomputes a call whose
 * writes its forward already made (the pullback): read by tj_trace_new. */
static _Thread_local int discarding;

PyObject *tj_write_set_discard(PyObject *m, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    int old = discarding;
    discarding = on;
    return PyBool_FromLong(old);
}

int tj_write_discarding(void) { return discarding; }

int32_t tj_write_current(const tj_trace *t, int32_t leaf) {
    for (int i = 0; i < t->n_ext; i++)
        if (t->ext[i].root == leaf) return t->ext[i].cur;
    return leaf;
}

/* Raises the refusal of `what` into x. -1, or 0 where the write is eager's, or where
 * x is c[k] of `c[k] op= v` (aug): eager's in-place operator writes c[k]'s memory and
 * the store that follows writes the same values into c, so x's new value is rebound
 * and the store, checked as any assignment, carries the write; until it comes x is
 * pending, and a trace it never comes to is refused (tj_write_check_done). *ext: the
 * t->ext entry x stands for, or -1. */
static int refuse_shared(tj_tracer *x, PyObject *value, const char *what, int aug, int *ext) {
    tj_trace *t = x->trace;
    if ((*ext = ext_entry(t, alias_root(&t->g, x->id))) == -2) return -1;
    if (tj_view_readonly_error(t, x, what) < 0) return -1;
    const tj_node *n = &t->g.nodes[x->id];
    for (int d = 0; n->op == TJ_OP_VIEW && d < n->ndim; d++) {
        if (n->perm[d] != -1 || n->shape[d] < 2) continue;   /* a broadcast dim */
        if (t->torch)
            tj_error_at(t->st, PyExc_RuntimeError, "%s: unsupported operation: more than one element "
                        "of the written-to tensor refers to a single memory location. Please "
                        "clone() the tensor before performing the operation.", what);
        else
            tj_error_at(t->st, PyExc_ValueError, "%s: assignment destination is read-only (a "
                        "broadcast view)", what);
        return -1;
    }
    /* a temporary (only the caller's stack holds it: `b[1:] = b[:-1]`) dies after */
    PyObject *ignore = value && tj_is_tracer(value) && Py_REFCNT(value) == 1 ? value : NULL;
    const char *why = write_refusal(x, ignore, *ext >= 0);
    if (!why) return 0;
    aug = aug && !t->pending && tj_user_augmented_subscript(t->st);
    int noted = t->refusal != NULL;
    tj_trace_error(t->st, "%s writes into a traced array, which tracejit cannot do yet where other "
                   "arrays would see the write: %s. Compute a new value instead (y = x + v, or "
                   "np.where(mask, v, x))", what, why);
    *ext = -1;
    if (!aug) return -1;
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    t->pending_error = exc ? PyObject_Str(exc) : NULL;
    if (!t->pending_error) { PyErr_Restore(type, exc, tb); return -1; }
    Py_XDECREF(type); Py_XDECREF(exc); Py_XDECREF(tb);
    if (!noted) Py_CLEAR(t->refusal);   /* not raised: nothing for the user to catch */
    t->pending = Py_NewRef((PyObject *)x);
    t->pending_root = alias_root(&t->g, x->id);
    return 0;
}

int tj_write_check_done(tj_trace *t) {
    if (!t->pending) return 0;
    PyErr_SetObject(t->st->TraceError, t->pending_error);
    Py_CLEAR(t->pending);
    Py_CLEAR(t->pending_error);
    return -1;
}

/* "(2, 3)", "(3,)": a shape as NumPy prints it. New reference. */
static PyObject *shape_str(const tj_node *n) {
    PyObject *tup = PyTuple_New(n->ndim);
    for (int d = 0; tup && d < n->ndim; d++) {
        PyObject *v = PyLong_FromLongLong(n->shape[d]);
        if (!v) { Py_CLEAR(tup); break; }
        PyTuple_SET_ITEM(tup, d, v);
    }
    PyObject *r = tup ? PyObject_Repr(tup) : NULL;
    Py_XDECREF(tup);
    return r;
}

static const char *torch_dtype_name(int dt) {
    static const char *const names[TJ_NDTYPES] = {   /* c10's ScalarType names */
        [TJ_BOOL] = "Bool", [TJ_I8] = "Char", [TJ_I16] = "Short", [TJ_I32] = "Int",
        [TJ_I64] = "Long", [TJ_U8] = "Byte", [TJ_U16] = "UInt16", [TJ_U32] = "UInt32",
        [TJ_U64] = "UInt64", [TJ_F32] = "Float", [TJ_F64] = "Double"};
    return dt >= 0 && dt < TJ_NDTYPES ? names[dt] : "?";
}

/* x's Tracer now stands for the value `r` (a Tracer of x's shape and dtype). A view
 * or leaf is copied first: x then owns its memory, so later writes need no family. A
 * caller's array (ext >= 0: its t->ext entry) always gets a node of its own, its
 * entry's cur: no other Tracer stands for it. */
static int rebind(tj_trace *t, tj_tracer *x, PyObject *r, int ext, const char *what) {
    int32_t root = alias_root(&t->g, x->id);
    /* other arrays see it (unless the store of a pending `c[k] op= v` carries it) */
    if (t->pending != (PyObject *)x && (root != x->id || tj_write_family_held(t, x, root)))
        return tj_write_family(t, x, r, ext, what);
    int32_t id = ((tj_tracer *)r)->id;
    int kind = tj_ops[t->g.nodes[id].op].kind;
    if (ext >= 0) {
        PyObject *c = tj_apply_cast(t, r, t->st->dtypes[t->g.nodes[id].dtype]);
        int rc = c ? tj_tracer_rebind(x, ((tj_tracer *)c)->id) : -1;
        Py_XDECREF(c);
        if (rc == 0) t->ext[ext].cur = x->id;
        return rc;
    }
    if (kind == TJ_K_VIEW || kind == TJ_K_LEAF || aliases(&t->g.nodes[id])) {
        PyObject *c = tj_apply_cast(t, r, t->st->dtypes[t->g.nodes[id].dtype]);
        if (!c) return -1;
        id = ((tj_tracer *)c)->id;
        int rc = tj_tracer_rebind(x, id);
        Py_DECREF(c);
        return rc;
    }
    return tj_tracer_rebind(x, id);
}

PyObject *tj_tracer_assign(PyObject *target, PyObject *value, const char *what) {
    tj_tracer *x = (tj_tracer *)target;
    tj_trace *t = tj_tracer_live(x);
    int ext;
    if (!t || refuse_shared(x, NULL, what, 1, &ext) < 0) return NULL;
    int32_t vid = tj_operand(t, value);
    if (vid < 0) return NULL;
    const tj_node *n = &t->g.nodes[x->id], *v = &t->g.nodes[vid];
    int same = v->ndim == n->ndim;
    for (int d = 0; same && d < n->ndim; d++) same = v->shape[d] == n->shape[d];
    if (!same) {
        PyObject *want = shape_str(n), *got = shape_str(v);
        if (want && got)
            tj_error_at(t->st, t->torch ? PyExc_RuntimeError : PyExc_ValueError,
                        "%s: non-broadcastable output operand with shape %U doesn't match the "
                         "broadcast shape %U", what, want, got);
        Py_XDECREF(want);
        Py_XDECREF(got);
        return NULL;
    }
    PyObject *r;
    if (v->dtype != n->dtype) {
        tj_state *st = t->st;
        if (!PyArray_CanCastTypeTo((PyArray_Descr *)st->dtypes[v->dtype],
                                   (PyArray_Descr *)st->dtypes[n->dtype], NPY_SAME_KIND_CASTING)) {
            if (t->torch)
                return tj_error_at(t->st, PyExc_RuntimeError, "%s: result type %s can't be cast to the "
                                    "desired output type %s", what, torch_dtype_name(v->dtype),
                                    torch_dtype_name(n->dtype));
            return tj_error_at(t->st, PyExc_TypeError, "%s: Cannot cast ufunc output from dtype('%s') "
                                "to dtype('%s') with casting rule 'same_kind'", what,
                                tj_dtype_name(v->dtype), tj_dtype_name(n->dtype));
        }
        r = tj_apply_cast(t, value, st->dtypes[n->dtype]);
    } else {
        r = tj_is_tracer(value) ? Py_NewRef(value) : tj_tracer_new(t, vid);
    }
    if (!r) return NULL;
    int rc = rebind(t, x, r, ext, what);
    Py_DECREF(r);
    return rc < 0 ? NULL : Py_NewRef(target);
}

PyObject *tj_write_out(PyObject *out, PyObject *result, const char *what) {
    tj_tracer *x = (tj_tracer *)out;
    tj_trace *t = tj_tracer_live(x);
    int32_t rid = t ? tj_operand(t, result) : -1;
    if (rid < 0) return NULL;
    const tj_node *n = &t->g.nodes[x->id], *r = &t->g.nodes[rid];
    int same = n->ndim == r->ndim;
    for (int d = 0; same && d < n->ndim; d++) same = n->shape[d] == r->shape[d];
    PyObject *shape = same ? NULL : shape_tuple(n->ndim, n->shape), *b = NULL;
    if (shape) {   /* the inputs broadcast to out's shape; else NumPy's error (assign's) */
        b = PyObject_CallMethod(t->st->numpy, "broadcast_to", "OO", result, shape);
        Py_DECREF(shape);
        if (!b && !PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
        PyErr_Clear();
    }
    PyObject *res = tj_tracer_assign(out, b ? b : result, what);
    Py_XDECREF(b);
    return res;
}

static const char assign_what[] = "an assignment (`x[...] = value`)";

/* ---- x[key] = value ------------------------------------------------------------ */

static PyObject *node_tracer(tj_trace *t, int32_t id) { return id < 0 ? NULL : tj_tracer_new(t, id); }

/* The index map of a concrete key over x's shape, computed by NumPy's own setitem:
 * src[p] = the C-order position in the value (broadcast to the indexed region) that
 * lands at p, -1 where nothing does. Fills the region's shape. New reference. */
static PyArrayObject *index_map(tj_trace *t, const tj_node *n, PyObject *key, int *rnd,
                                int64_t *rshape, int *element) {
    npy_intp dims[TJ_MAXDIM];
    for (int d = 0; d < n->ndim; d++) dims[d] = (npy_intp)n->shape[d];
    PyArrayObject *src = (PyArrayObject *)PyArray_SimpleNew(n->ndim, dims, NPY_INT64);
    if (!src) return NULL;
    int64_t *p = PyArray_DATA(src), size = PyArray_SIZE(src);
    for (int64_t i = 0; i < size; i++) p[i] = -1;
    PyObject *region = PyObject_GetItem((PyObject *)src, key), *pos = NULL, *shaped = NULL;
    *element = region && !PyArray_Check(region);   /* one element: NumPy gave a scalar */
    if (*element) Py_SETREF(region, PyArray_FROM_O(region));
    if (!region) goto fail;
    if (!PyArray_Check(region) || PyArray_NDIM((PyArrayObject *)region) > TJ_MAXDIM) {
        tj_trace_error(t->st, "an assignment whose indexed region has more than %d dimensions is "
                       "not "
                       "supported by tracejit", TJ_MAXDIM);
        goto fail;
    }
    PyArrayObject *ra = (PyArrayObject *)region;
    *rnd = PyArray_NDIM(ra);
    for (int d = 0; d < *rnd; d++) rshape[d] = PyArray_DIM(ra, d);
    pos = PyArray_Arange(0, (double)PyArray_SIZE(ra), 1, NPY_INT64);
    shaped = pos ? PyArray_Newshape((PyArrayObject *)pos,
                                    &(PyArray_Dims){PyArray_DIMS(ra), *rnd}, NPY_CORDER) : NULL;
    if (!shaped || PyObject_SetItem((PyObject *)src, key, shaped) < 0) goto fail;
    Py_DECREF(region);
    Py_DECREF(pos);
    Py_DECREF(shaped);
    return src;
fail:
    Py_XDECREF(region);
    Py_XDECREF(pos);
    Py_XDECREF(shaped);
    Py_DECREF(src);
    return NULL;
}

/* 1-d int64 max(src, 0) (data 0) or n-d bool src >= 0 (data 1) of the index map,
 * captured. -1 + exception. */
static int32_t map_operand(tj_trace *t, PyArrayObject *src, int which) {
    npy_intp size = PyArray_SIZE(src);
    PyArrayObject *a = which ? (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(src),
                                                                   PyArray_DIMS(src), NPY_BOOL)
                             : (PyArrayObject *)PyArray_SimpleNew(1, &size, NPY_INT64);
    if (!a) return -1;
    const int64_t *s = PyArray_DATA(src);
    for (npy_intp i = 0; i < size; i++) {
        if (which) ((npy_bool *)PyArray_DATA(a))[i] = s[i] >= 0;
        else ((int64_t *)PyArray_DATA(a))[i] = s[i] < 0 ? 0 : s[i];
    }
    int32_t id = tj_operand(t, (PyObject *)a);
    Py_DECREF(a);
    return id;
}

static PyObject *shape_tuple(int ndim, const int64_t *shape) {
    PyObject *r = PyTuple_New(ndim);
    for (int d = 0; r && d < ndim; d++) {
        PyObject *v = PyLong_FromLongLong(shape[d]);
        if (!v) { Py_CLEAR(r); break; }
        PyTuple_SET_ITEM(r, d, v);
    }
    return r;
}

/* x's new value with `value` written at a concrete key: WHERE(src >= 0, the value
 * broadcast to the region and gathered at src, x). New Tracer; x itself when the key
 * selects nothing. */
static PyObject *slice_of(int64_t a, int64_t b) {
    PyObject *pa = PyLong_FromLongLong(a), *pb = PyLong_FromLongLong(b);
    PyObject *s = pa && pb ? PySlice_New(pa, pb, NULL) : NULL;
    Py_XDECREF(pa);
    Py_XDECREF(pb);
    return s;
}

/* x with the box [lo, hi) replaced by v (the box's shape, C order): concatenations of
 * x's slices around v, one per dim the box does not span, which fusion computes
 * straight into place (a stencil's `out[1:-1, 1:-1] = ...` is one pass, no index map).
 * New Tracer. */
static PyObject *assign_box(tj_trace *t, PyObject *x, PyObject *v, const tj_node *n,
                            const int64_t *lo, const int64_t *hi) {
    PyObject *cur = Py_NewRef(v);
    for (int d = n->ndim - 1; d >= 0 && cur; d--) {
        if (lo[d] == 0 && hi[d] == n->shape[d]) continue;
        int32_t ids[3];
        int k = 0;
        PyObject *parts[2] = {NULL, NULL};
        for (int side = 0; side < 2; side++) {
            int64_t a = side ? hi[d] : 0, b = side ? n->shape[d] : lo[d];
            if (a == b) continue;
            PyObject *key = PyTuple_New(n->ndim);
            for (int e = 0; key && e < n->ndim; e++) {
                PyObject *s = e < d ? slice_of(lo[e], hi[e]) : e == d ? slice_of(a, b)
                                                                      : PySlice_New(NULL, NULL, NULL);
                if (!s) { Py_CLEAR(key); break; }
                PyTuple_SET_ITEM(key, e, s);
            }
            parts[side] = key ? PyObject_GetItem(x, key) : NULL;
            Py_XDECREF(key);
            if (!parts[side]) goto fail;
        }
        if (parts[0]) ids[k++] = ((tj_tracer *)parts[0])->id;
        ids[k++] = ((tj_tracer *)cur)->id;
        if (parts[1]) ids[k++] = ((tj_tracer *)parts[1])->id;
        Py_SETREF(cur, tj_concat_ids(t, ids, k, d));
    fail:
        Py_XDECREF(parts[0]);
        Py_XDECREF(parts[1]);
        if (PyErr_Occurred()) Py_CLEAR(cur);
    }
    return cur;
}

/* Whether the index map covers one box [lo, hi) of x, in C order (a key of ints and
 * unit-step slices, `...`, None): the value's positions run 0, 1, ... over the box. */
static int box_of(const PyArrayObject *src, const tj_node *n, int64_t *lo, int64_t *hi) {
    const int64_t *s = PyArray_DATA((PyArrayObject *)src);
    int64_t size = PyArray_SIZE((PyArrayObject *)src), idx[TJ_MAXDIM] = {0};
    for (int d = 0; d < n->ndim; d++) { lo[d] = n->shape[d]; hi[d] = 0; }
    int64_t count = 0;
    for (int64_t p = 0; p < size; p++) {
        if (s[p] >= 0) {
            for (int d = 0; d < n->ndim; d++) {
                if (idx[d] < lo[d]) lo[d] = idx[d];
                if (idx[d] + 1 > hi[d]) hi[d] = idx[d] + 1;
            }
            count++;
        }
        for (int d = n->ndim - 1; d >= 0 && ++idx[d] == n->shape[d]; d--) idx[d] = 0;
    }
    int64_t box = 1;
    for (int d = 0; d < n->ndim; d++) box *= hi[d] > lo[d] ? hi[d] - lo[d] : 0;
    if (!count || box != count) return 0;
    int64_t next = 0;   /* C order over the box: the box's positions in p's order */
    memset(idx, 0, sizeof idx);
    for (int64_t p = 0; p < size; p++) {
        if (s[p] >= 0 && s[p] != next++) return 0;
        for (int d = n->ndim - 1; d >= 0 && ++idx[d] == n->shape[d]; d--) idx[d] = 0;
    }
    return 1;
}

static PyObject *assign_concrete(tj_trace *t, PyObject *x, PyObject *key, PyObject *value) {
    tj_node n = t->g.nodes[((tj_tracer *)x)->id];
    int rnd, element;
    int64_t rshape[TJ_MAXDIM], lo[TJ_MAXDIM], hi[TJ_MAXDIM];
    /* a basic key's box is read off the key (write_box.c); else NumPy indexes a map */
    int basic = !t->torch && n.ndim ? tj_write_basic_box(&n, key, lo, hi, &rnd, rshape, &element) : 0;
    if (basic < 0) return NULL;
    PyArrayObject *src = basic ? NULL : index_map(t, &n, key, &rnd, rshape, &element);
    if (!basic && !src) return NULL;
    int32_t vid = element && !t->torch ? tj_operand(t, value) : -2;
    if (vid == -1 || (vid >= 0 && t->g.nodes[vid].ndim)) {   /* NumPy's item assignment */
        if (vid >= 0) PyErr_SetString(PyExc_ValueError, "setting an array element with a sequence.");
        Py_XDECREF(src);
        return NULL;
    }
    PyObject *v = tj_apply_fill(t, value, n.dtype, rnd, rshape);   /* NumPy's broadcast */
    PyObject *r = NULL, *shape = NULL, *m1 = NULL, *flat = NULL, *placed = NULL;
    PyObject *pshaped = NULL, *mask = NULL;
    if (!v) goto done;
    int64_t count = basic, size = basic ? 0 : PyArray_SIZE(src);
    int identity = 1;
    for (int d = 0; basic && d < n.ndim; d++) {
        count *= hi[d] - lo[d];
        identity &= lo[d] == 0 && hi[d] == n.shape[d];
    }
    const int64_t *s = basic ? NULL : PyArray_DATA(src);
    for (int64_t i = 0; i < size; i++) {
        count += s[i] >= 0;
        identity &= s[i] == i;
    }
    if (!count) { r = Py_NewRef(x); goto done; }
    if (!(shape = shape_tuple(n.ndim, n.shape))) goto done;
    if (identity) { r = tj_reshape(t, v, shape); goto done; }   /* x[...] = v, x[:] = v */
    if (basic || (!t->torch && n.ndim && box_of(src, &n, lo, hi))) {   /* a box: x's parts around v */
        PyObject *bshape = PyTuple_New(n.ndim);
        for (int d = 0; bshape && d < n.ndim; d++) {
            PyObject *l = PyLong_FromLongLong(hi[d] - lo[d]);
            if (!l) { Py_CLEAR(bshape); break; }
            PyTuple_SET_ITEM(bshape, d, l);
        }
        PyObject *vb = bshape ? tj_reshape(t, v, bshape) : NULL;
        Py_XDECREF(bshape);
        r = vb ? assign_box(t, x, vb, &n, lo, hi) : NULL;
        Py_XDECREF(vb);
        goto done;
    }
    m1 = PyLong_FromLong(-1);
    flat = m1 ? tj_reshape(t, v, m1) : NULL;
    int32_t iid = flat ? map_operand(t, src, 0) : -1;
    placed = iid >= 0 ? tj_gather(t, ((tj_tracer *)flat)->id, iid, 0, 0) : NULL;
    pshaped = placed ? tj_reshape(t, placed, shape) : NULL;
    mask = pshaped ? node_tracer(t, map_operand(t, src, 1)) : NULL;
    if (!mask) goto done;
    PyObject *ops[3] = {mask, pshaped, x};
    r = tj_apply(t, TJ_OP_WHERE, 3, ops, NULL);
done:
    Py_XDECREF(src);
    Py_XDECREF(v); Py_XDECREF(shape); Py_XDECREF(m1); Py_XDECREF(flat); Py_XDECREF(placed);
    Py_XDECREF(pshaped); Py_XDECREF(mask);
    return r;
}

/* x[mask] = value, mask a traced bool array of x's leading shape: WHERE(mask, value,
 * x), where the value is broadcast over the selected elements, or holds one row per
 * True element in C order (gathered at cumsum(mask) - 1; a count other than its
 * length raises at run time, as NumPy does, through the GATHER of a check index:
 * csrc/runtime.c reads the negative axis). New Tracer. */
static PyObject *assign_masked(tj_trace *t, PyObject *x, PyObject *mask, PyObject *value) {
    tj_node n = t->g.nodes[((tj_tracer *)x)->id];
    int32_t mid = tj_operand(t, mask), vid = tj_operand(t, value);
    if (mid < 0 || vid < 0) return NULL;
    tj_node m = t->g.nodes[mid], v = t->g.nodes[vid];
    int k = m.ndim, tn = n.ndim - k;
    if (k > n.ndim) {
        PyErr_Format(PyExc_IndexError, "too many indices for array: array is %d-dimensional, "
                     "but %d were indexed", n.ndim, k);
        return NULL;
    }
    for (int d = 0; d < k; d++)
        if (m.shape[d] != n.shape[d]) {
            PyErr_Format(PyExc_IndexError, "boolean index did not match indexed array along "
                         "axis %d; size of axis is %lld but size of corresponding boolean axis "
                         "is %lld", d, (long long)n.shape[d], (long long)m.shape[d]);
            return NULL;
        }
    int64_t L = v.ndim > tn ? v.shape[v.ndim - tn - 1] : 1, shape[TJ_MAXDIM], M = 1;
    for (int d = 0; d < n.ndim; d++) shape[d] = d < k ? 1 : n.shape[d];
    for (int d = 0; d < k; d++) M *= m.shape[d];
    int64_t mdims[TJ_MAXDIM] = {0};   /* the mask with x's trailing dims as 1s */
    for (int d = 0; d < n.ndim; d++) mdims[d] = d < k ? m.shape[d] : 1;
    PyObject *placed = NULL, *mshape = shape_tuple(n.ndim, mdims), *xshape = NULL, *r = NULL;
    if (!mshape) goto done;
    if (L == 1 || k == 0) {
        placed = tj_apply_fill(t, value, n.dtype, n.ndim, shape);
    } else {
        shape[k - 1] = L;   /* the value as (L,) + x.shape[k:] */
        PyObject *vals = tj_apply_fill(t, value, n.dtype, tn + 1, shape + k - 1);
        PyObject *mi = vals ? tj_apply_cast(t, mask, t->st->dtypes[TJ_I64]) : NULL;
        PyObject *m1 = PyLong_FromLong(-1), *mf = mi && m1 ? tj_reshape(t, mi, m1) : NULL;
        PyObject *cs = mf ? tj_reduction_call(t, TJ_RED_CUMSUM, mf, NULL, NULL, 1) : NULL;
        PyObject *tot = cs ? tj_reduction_call(t, TJ_RED_SUM, mf, NULL, NULL, 1) : NULL;
        PyObject *lc = PyLong_FromLongLong(L), *two = PyLong_FromLong(2), *one = PyLong_FromLong(1);
        PyObject *a1[2] = {tot, lc}, *diff = tot ? tj_apply(t, TJ_OP_SUB, 2, a1, NULL) : NULL;
        PyObject *a2[2] = {diff, two}, *d2 = diff ? tj_apply(t, TJ_OP_MUL, 2, a2, NULL) : NULL;
        PyObject *d1 = d2 ? tj_reshape(t, d2, one) : NULL;
        npy_intp len = 1;
        PyObject *zero1 = d1 ? PyArray_ZEROS(1, &len, NPY_INT64, 0) : NULL;
        int32_t zid = zero1 ? tj_operand(t, zero1) : -1;
        PyObject *chk = zid >= 0 ? tj_gather(t, zid, ((tj_tracer *)d1)->id, 0, -(int)(L + 1)) : NULL;
        PyObject *a3[2] = {cs, chk}, *pos = chk ? tj_apply(t, TJ_OP_ADD, 2, a3, NULL) : NULL;
        PyObject *a4[2] = {pos, m1}, *pm = pos ? tj_apply(t, TJ_OP_ADD, 2, a4, NULL) : NULL;
        int64_t pshape[TJ_MAXDIM];
        pshape[0] = M;
        for (int d = 1; d <= tn; d++) pshape[d] = 1;
        PyObject *ps = pm ? shape_tuple(tn + 1, pshape) : NULL;
        PyObject *pw = ps ? tj_reshape(t, pm, ps) : NULL;
        PyObject *g = pw ? tj_gather(t, ((tj_tracer *)vals)->id, ((tj_tracer *)pw)->id, 0, 0) : NULL;
        xshape = g ? shape_tuple(n.ndim, n.shape) : NULL;
        placed = xshape ? tj_reshape(t, g, xshape) : NULL;
        Py_XDECREF(vals); Py_XDECREF(mi); Py_XDECREF(m1); Py_XDECREF(mf); Py_XDECREF(cs);
        Py_XDECREF(tot); Py_XDECREF(lc); Py_XDECREF(two); Py_XDECREF(one); Py_XDECREF(diff);
        Py_XDECREF(d2); Py_XDECREF(d1); Py_XDECREF(zero1); Py_XDECREF(chk); Py_XDECREF(pos);
        Py_XDECREF(pm); Py_XDECREF(ps); Py_XDECREF(pw); Py_XDECREF(g);
    }
    PyObject *mb = placed ? tj_reshape(t, mask, mshape) : NULL;
    PyObject *ops[3] = {mb, placed, x};
    r = mb ? tj_apply(t, TJ_OP_WHERE, 3, ops, NULL) : NULL;
    Py_XDECREF(mb);
done:
    Py_XDECREF(placed); Py_XDECREF(mshape); Py_XDECREF(xshape);
    return r;
}

/* Positions a traced integer index may name in one assignment: its where-chain is
 * unrolled, one select per position. */
#define TJ_WRITE_INDEX_MAX 64

/* x[idx] = value, idx a traced integer array indexing x's first dim: the value
 * broadcast to idx.shape + x.shape[1:], then one select per position of idx in C
 * order (repeated positions: the last wins, as NumPy's). An index outside
 * [-len, len) raises IndexError at run time (a GATHER of it checks). New Tracer. */
static PyObject *assign_indexed(tj_trace *t, PyObject *x, PyObject *idx, PyObject *value) {
    tj_node n = t->g.nodes[((tj_tracer *)x)->id];
    int32_t iid = tj_operand(t, idx);
    if (iid < 0) return NULL;
    tj_node i = t->g.nodes[iid];
    int64_t m = tj_node_size(&i), rshape[TJ_MAXDIM], vshape[TJ_MAXDIM];
    if (n.ndim == 0) {
        PyErr_SetString(PyExc_IndexError, "too many indices for array: array is 0-dimensional, "
                        "but 1 were indexed");
        return NULL;
    }
    if (m > TJ_WRITE_INDEX_MAX || i.ndim + n.ndim - 1 > TJ_MAXDIM)
        return tj_trace_error(t->st, "%s at a traced integer index of %lld positions: tracejit "
                              "unrolls "
                              "it into one select per position and supports at most %d (or "
                              "%d dimensions); compute the new array instead (np.where)",
                              assign_what, (long long)m, TJ_WRITE_INDEX_MAX, TJ_MAXDIM);
    int rnd = i.ndim + n.ndim - 1;
    memcpy(rshape, i.shape, (size_t)i.ndim * sizeof *rshape);
    memcpy(rshape + i.ndim, n.shape + 1, (size_t)(n.ndim - 1) * sizeof *rshape);
    vshape[0] = m;
    memcpy(vshape + 1, n.shape + 1, (size_t)(n.ndim - 1) * sizeof *vshape);
    PyObject *vals = tj_apply_fill(t, value, n.dtype, rnd, rshape);   /* NumPy's broadcast */
    if (!vals || !m) { Py_XDECREF(vals); return vals ? Py_NewRef(x) : NULL; }
    int64_t ones[TJ_MAXDIM], len = n.shape[0];
    for (int d = 0; d < n.ndim; d++) ones[d] = d ? 1 : len;
    npy_intp nlen = (npy_intp)len;
    PyObject *vs = shape_tuple(n.ndim, vshape), *m1 = PyLong_FromLong(-1);
    PyObject *os = shape_tuple(n.ndim, ones), *one = NULL, *new = Py_NewRef(x);
    PyObject *vf = vs ? tj_reshape(t, vals, vs) : NULL;
    PyObject *i64 = vf ? tj_apply_cast(t, idx, t->st->dtypes[TJ_I64]) : NULL;
    PyObject *flat = i64 && m1 ? tj_reshape(t, i64, m1) : NULL;
    PyObject *zeros = flat ? PyArray_ZEROS(1, &nlen, NPY_INT64, 0) : NULL;
    PyObject *iota = zeros ? PyArray_Arange(0, (double)len, 1, NPY_INT64) : NULL;
    PyObject *iotas = iota && os ? PyArray_Reshape((PyArrayObject *)iota, os) : NULL;
    int32_t zid = iotas ? tj_operand(t, zeros) : -1;
    PyObject *chk = zid >= 0 ? tj_gather(t, zid, ((tj_tracer *)flat)->id, 0, 0) : NULL;
    PyObject *a1[2] = {flat, chk}, *ok = chk ? tj_apply(t, TJ_OP_ADD, 2, a1, NULL) : NULL;
    PyObject *lenv = PyLong_FromLongLong(len), *zero = PyLong_FromLong(0);
    PyObject *a2[2] = {ok, zero}, *neg = ok && zero ? tj_apply(t, TJ_OP_LT, 2, a2, NULL) : NULL;
    PyObject *a3[2] = {ok, lenv}, *up = neg && lenv ? tj_apply(t, TJ_OP_ADD, 2, a3, NULL) : NULL;
    PyObject *a4[3] = {neg, up, ok}, *pos = up ? tj_apply(t, TJ_OP_WHERE, 3, a4, NULL) : NULL;
    int64_t unit[TJ_MAXDIM];
    for (int d = 0; d < n.ndim; d++) unit[d] = 1;
    one = pos ? shape_tuple(n.ndim, unit) : NULL;
    for (int64_t j = 0; one && new && j < m; j++) {
        PyObject *jo = PyLong_FromLongLong(j);
        PyObject *ij = jo ? tj_getitem(t, pos, jo) : NULL;
        PyObject *ijs = ij ? tj_reshape(t, ij, one) : NULL;
        PyObject *a5[2] = {iotas, ijs}, *eq = ijs ? tj_apply(t, TJ_OP_EQ, 2, a5, NULL) : NULL;
        PyObject *vj = eq ? tj_getitem(t, vf, jo) : NULL;
        PyObject *a6[3] = {eq, vj, new};
        Py_SETREF(new, vj ? tj_apply(t, TJ_OP_WHERE, 3, a6, NULL) : NULL);
        Py_XDECREF(jo); Py_XDECREF(ij); Py_XDECREF(ijs); Py_XDECREF(eq); Py_XDECREF(vj);
    }
    if (!one) Py_CLEAR(new);
    Py_DECREF(vals); Py_XDECREF(vs); Py_XDECREF(m1); Py_XDECREF(os); Py_XDECREF(one);
    Py_XDECREF(vf); Py_XDECREF(i64); Py_XDECREF(flat); Py_XDECREF(zeros); Py_XDECREF(iota);
    Py_XDECREF(iotas); Py_XDECREF(chk); Py_XDECREF(ok); Py_XDECREF(lenv); Py_XDECREF(zero);
    Py_XDECREF(neg); Py_XDECREF(up); Py_XDECREF(pos);
    return new;
}

/* Whether o is (or, a tuple, holds) a Tracer. */
static int holds_tracer(PyObject *o) {
    if (tj_is_tracer(o)) return 1;
    for (Py_ssize_t i = 0; PyTuple_Check(o) && i < PyTuple_GET_SIZE(o); i++)
        if (tj_is_tracer(PyTuple_GET_ITEM(o, i))) return 1;
    return 0;
}

/* The key with torch tensors (concrete ones, read while tracing) as ndarrays, which
 * NumPy's indexing reads with torch's meaning. New reference. */
static PyObject *numpy_key(tj_state *st, PyObject *key) {
    int tuple = PyTuple_Check(key);
    PyObject *items = tuple ? PySequence_List(key) : PyList_New(1);
    if (!items) return NULL;
    if (!tuple) PyList_SET_ITEM(items, 0, Py_NewRef(key));
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *k = PyList_GET_ITEM(items, i);
        if (tj_dl_kind(st, k) != TJ_LIB_TORCH) continue;
        PyObject *a = PyObject_CallMethod(k, "numpy", NULL);
        if (!a || PyList_SetItem(items, i, a) < 0) { Py_DECREF(items); return NULL; }
    }
    PyObject *r = tuple ? PyList_AsTuple(items) : Py_NewRef(PyList_GET_ITEM(items, 0));
    Py_DECREF(items);
    return r;
}

/* torch's advanced-index assignment (index_put_) takes a tensor value of x's dtype
 * only (a Python scalar is converted). -1 with torch's RuntimeError, else 0. */
static int torch_index_put(tj_trace *t, tj_tracer *x, PyObject *key, PyObject *value) {
    int advanced = tj_is_advanced_index(key) || tj_dl_kind(t->st, key) == TJ_LIB_TORCH;
    for (Py_ssize_t i = 0; PyTuple_Check(key) && i < PyTuple_GET_SIZE(key); i++) {
        PyObject *k = PyTuple_GET_ITEM(key, i);
        advanced |= tj_is_advanced_index(k) || tj_dl_kind(t->st, k) == TJ_LIB_TORCH;
    }
    int ints = 0;   /* torch selects with ints before it indexes with arrays */
    for (Py_ssize_t i = 0; PyTuple_Check(key) && i < PyTuple_GET_SIZE(key); i++) {
        PyObject *k = PyTuple_GET_ITEM(key, i);
        ints |= PyLong_Check(k) && !PyBool_Check(k);
    }
    if (advanced && ints) {
        tj_trace_error(t->st, "%s with both an int and an index tensor in one subscript is not "
                       "supported by tracejit yet (torch orders the region's dims unlike "
                       "NumPy): index that dim with a tensor too, or compute the new tensor "
                       "(torch.where)", assign_what);
        return -1;
    }
    if (!advanced || !(tj_is_tracer(value) || tj_dl_kind(t->st, value) == TJ_LIB_TORCH)) return 0;
    int32_t vid = tj_operand(t, value);
    if (vid < 0) return -1;
    int vd = t->g.nodes[vid].dtype, xd = t->g.nodes[x->id].dtype;
    if (vd == xd || t->g.nodes[vid].op == TJ_OP_SCALAR) return 0;   /* or a Python number */
    tj_error_at(t->st, PyExc_RuntimeError, "Index put requires the source and destination dtypes "
                "match, got %s for the destination and %s for the source.",
                torch_dtype_name(xd), torch_dtype_name(vd));
    return -1;
}


/* x[key] = value of a constant value at a constant key into an array NumPy's factory
 * made while tracing (_effects._making), before any node reads it (`t = np.zeros(n);
 * for i in range(n): t[i] = i * i`): NumPy's own setitem on that array, no node (the
 * trace reads it at every call as it is when the trace ends; a write after a read is
 * traced). 1 done, 0 not such a write, -1 with NumPy's error. */
static int write_made_now(tj_trace *t, tj_tracer *x, PyObject *key, PyObject *value) {
    if (t->torch || t->g.nodes[x->id].op != TJ_OP_CAPTURE || holds_tracer(key) ||
        !(PyArray_CheckExact(value) || PyFloat_Check(value) || PyLong_Check(value) ||
          PyArray_IsScalar(value, Generic)) || !made_in_trace(t, x->id))
        return 0;
    for (int32_t i = x->id + 1; i < t->g.n; i++)
        for (int a = 0; a < tj_ops[t->g.nodes[i].op].arity; a++)
            if (t->g.nodes[i].in[a] == x->id) return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(t->captures); i++) {
        PyObject *c = PyList_GET_ITEM(t->captures, i);
        if (PyLong_AsLong(PyTuple_GET_ITEM(c, 4)) == x->id)
            return PyObject_SetItem(PyTuple_GET_ITEM(c, 3), key, value) < 0 ? -1 : 1;
    }
    return 0;
}

int tj_write_setitem(PyObject *target, PyObject *key, PyObject *value) {
    tj_tracer *x = (tj_tracer *)target;
    tj_trace *t = tj_tracer_live(x);
    if (!t) return -1;
    if (!tj_is_tracer(value) && !t->torch && PyObject_HasAttrString(value, "_tj_merge_into")) {
        /* `y[m] = x[m]...`: a selection (python/tracejit/_masked.py) merged into y */
        PyObject *merged = PyObject_CallMethod(value, "_tj_merge_into", "OO", target, key);
        int rc = merged ? tj_write_setitem(target, Py_Ellipsis, merged) : -1;
        Py_XDECREF(merged);
        return rc;
    }
    int now = write_made_now(t, x, key, value);
    if (now) return now < 0 ? -1 : 0;
    int scalar = tj_tracer_is_np_scalar(target);   /* eager's scalars are immutable */
    if (scalar) {
        int dt = t->g.nodes[x->id].dtype;
        tj_error_at(t->st, PyExc_TypeError, "'%s%s' object does not support item assignment",
                    scalar == 1 ? "numpy." : "", scalar == 1 ? tj_dtype_name(dt)
                    : dt >= TJ_F32 ? "float" : dt == TJ_BOOL ? "bool" : "int");
        return -1;
    }
    if (t->pending && value == t->pending) {   /* the store of `c[k] op= v` */
        int same = alias_root(&t->g, x->id) == t->pending_root;
        if (!same) {
            PyErr_SetObject(t->st->TraceError, t->pending_error);
            return -1;
        }
        Py_CLEAR(t->pending);
        Py_CLEAR(t->pending_error);
    }
    int region = tj_view_assign_region(t, target, key, value);
    if (region) return region < 0 ? -1 : 0;
    int ext;
    if (refuse_shared(x, value, assign_what, 0, &ext) < 0) return -1;
    if (t->torch && torch_index_put(t, x, key, value) < 0) return -1;
    PyObject *r = NULL;
    PyObject *mask = PyTuple_Check(key) && PyTuple_GET_SIZE(key) == 1 ? PyTuple_GET_ITEM(key, 0)
                                                                       : key;
    if (tj_is_tracer(mask) && t->g.nodes[((tj_tracer *)mask)->id].dtype == TJ_BOOL) {
        r = assign_masked(t, target, mask, value);
    } else if (tj_is_tracer(mask) && t->g.nodes[((tj_tracer *)mask)->id].dtype < TJ_F32) {
        r = assign_indexed(t, target, mask, value);
    } else if (holds_tracer(key)) {
        tj_trace_error(t->st, "%s at a traced index other than one integer array or boolean mask "
                       "is "
                       "not supported by tracejit yet: index with ints, slices, ..., None and "
                       "constant integer arrays, or one traced index, or compute the new array "
                       "(np.where)", assign_what);
        return -1;
    } else {
        PyObject *k = numpy_key(t->st, key);
        r = k ? assign_concrete(t, target, k, value) : NULL;
        Py_XDECREF(k);
    }
    if (!r) return -1;
    int rc = r == target ? 0 : rebind(t, x, r, ext, assign_what);
    Py_DECREF(r);
    return rc;
}
