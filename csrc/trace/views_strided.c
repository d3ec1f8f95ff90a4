/* Strided views that NumPy and torch make by strides alone, where no dim of the result
 * reads one dim of its operand: np.diagonal (one dim stepping two), Tensor.unfold and
 * sliding_window_view (two dims stepping one). Each is one flat VIEW over the contiguous
 * base of its operand, so writes through it and into that base reach each other as in
 * eager (write_views.c maps them); and the read-only marks of NumPy's views
 * (tj_trace.readonly: np.diagonal, broadcast_to, sliding_window_view), which tj_view
 * passes on to views of them and tj_view_readonly_error turns into NumPy's ValueError
 * (write.c asks it before any write); a basic-key write into a view reading an element
 * twice goes through the region it names (tj_view_assign_region).
 * Contract: the caller's offsets and coefficients keep every read inside x (checked:
 * an InternalError otherwise); an operand with no contiguous base (a strided argument,
 * a view of one) is read through an alias copy (TJ_COPY_ALIAS: row-major, and x itself
 * to the write rules, so writes through the view still reach x). */
#include "tracejit.h"

int tj_view_readonly_error(tj_trace *t, tj_tracer *x, const char *what);
int tj_view_assign_region(tj_trace *t, PyObject *x, PyObject *key, PyObject *value);

int tj_view_readonly(const tj_trace *t, int32_t id) {
    return id >= 0 && id < t->cap_readonly ? t->readonly[id] : 0;
}

int tj_view_mark_readonly(tj_trace *t, int32_t id, int how) {
    if (id >= t->cap_readonly) {
        int32_t cap = t->cap_readonly ? t->cap_readonly : 64;
        while (cap <= id) cap *= 2;
        uint8_t *r = PyMem_Realloc(t->readonly, (size_t)cap);
        if (!r) { PyErr_NoMemory(); return -1; }
        memset(r + t->cap_readonly, 0, (size_t)(cap - t->cap_readonly));
        t->readonly = r;
        t->cap_readonly = cap;
    }
    t->readonly[id] = (uint8_t)how;
    return 0;
}

int32_t tj_view_identity(tj_trace *t, int32_t id) {
    tj_node w = t->g.nodes[id], n;
    memset(&n, 0, sizeof n);
    n.op = TJ_OP_VIEW;
    n.dtype = w.dtype;
    n.ndim = w.ndim;
    n.slot = -1;
    n.in[1] = n.in[2] = -1;
    memcpy(n.shape, w.shape, sizeof n.shape);
    if (w.op == TJ_OP_VIEW) {   /* the same reads as w's, over w's base */
        n = w;
    } else {
        n.in[0] = id;
        for (int d = 0; d < w.ndim; d++) { n.perm[d] = (int8_t)d; n.vstep[d] = 1; }
    }
    int32_t r = tj_trace_add_node(t, &n);
    int ro = tj_view_readonly(t, id);
    return r >= 0 && ro && tj_view_mark_readonly(t, r, ro) < 0 ? -1 : r;
}

/* Whether node n is stored row-major contiguous (a flat view may read it). */
static int contiguous(const tj_trace *t, const tj_node *n) {
    if (n->op == TJ_OP_VIEW) return 0;
    if (tj_ops[n->op].kind == TJ_K_LEAF && n->op != TJ_OP_CONST && n->op != TJ_OP_SCALAR &&
        n->op != TJ_OP_IOTA)
        return t->g.slots[n->slot].contig;
    return 1;
}

/* x (node *id) as base + affine reads: element i of x is base's row-major element
 * *off + sum_e i[e] * stride[e]. Sets *base; copies x where it has no contiguous base.
 * 0/-1 + exception. */
static int affine(tj_trace *t, int32_t id, int32_t *base, int64_t *stride, int64_t *off) {
    tj_node x = t->g.nodes[id];
    if (x.op == TJ_OP_VIEW && (x.flat || contiguous(t, &t->g.nodes[x.in[0]]))) {
        const tj_node *b = &t->g.nodes[x.in[0]];
        int64_t rs[TJ_MAXDIM], acc = 1;
        for (int e = b->ndim - 1; e >= 0; e--) { rs[e] = acc; acc *= b->shape[e]; }
        *base = x.in[0];
        *off = 0;
        if (x.flat) *off = x.voff[0];
        else
            for (int e = 0; e < b->ndim; e++) *off += x.voff[e] * rs[e];
        for (int d = 0; d < x.ndim; d++)
            stride[d] = x.perm[d] == -1 ? 0 : x.perm[d] == -2 ? x.vstep[d]
                                                             : x.vstep[d] * rs[x.perm[d]];
        return 0;
    }
    if (!contiguous(t, &x)) {   /* read through a row-major alias copy (ir.h) */
        int ro = tj_view_readonly(t, id);
        id = tj_trace_add_over(t, id, TJ_OP_COPY, TJ_COPY_ALIAS);
        if (id < 0 || (ro && tj_view_mark_readonly(t, id, ro) < 0)) return -1;
    }
    int64_t acc = 1;
    for (int e = x.ndim - 1; e >= 0; e--) { stride[e] = acc; acc *= x.shape[e]; }
    *base = id;
    *off = 0;
    return 0;
}

static int int_seq(PyObject *o, int64_t *out, int max, const char *what) {
    PyObject *seq = PySequence_Fast(o, what);
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > max) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "tracejit supports at most %d dimensions", TJ_MAXDIM);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (out[i] == -1 && PyErr_Occurred()) { Py_DECREF(seq); return -1; }
    }
    Py_DECREF(seq);
    return (int)n;
}

PyObject *tj_py_strided_view(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    tj_state *st = tj_state_of(m);
    if (nargs != 5 || !tj_is_tracer(args[0]))
        return PyErr_Format(PyExc_TypeError, "_strided_view(x, shape, coefs, offs, readonly)");
    tj_tracer *x = (tj_tracer *)args[0];
    tj_trace *t = tj_tracer_live(x);
    if (!t) return NULL;
    int readonly = PyObject_IsTrue(args[4]);
    if (readonly < 0) return NULL;
    tj_node xn = t->g.nodes[x->id];
    int64_t shape[TJ_MAXDIM], offs[TJ_MAXDIM], coef[TJ_MAXDIM][TJ_MAXDIM];
    int nd = int_seq(args[1], shape, TJ_MAXDIM, "shape");
    if (nd < 0 || int_seq(args[3], offs, TJ_MAXDIM, "offs") != xn.ndim) goto bad;
    PyObject *cs = PySequence_Fast(args[2], "coefs");
    if (!cs) return NULL;
    int ok = PySequence_Fast_GET_SIZE(cs) == nd;
    for (int d = 0; ok && d < nd; d++)
        ok = int_seq(PySequence_Fast_GET_ITEM(cs, d), coef[d], TJ_MAXDIM, "coefs") == xn.ndim;
    Py_DECREF(cs);
    if (!ok) goto bad;
    int64_t size = 1;
    for (int d = 0; d < nd; d++) size *= shape[d];
    for (int e = 0; size && e < xn.ndim; e++) {   /* every read inside x */
        int64_t lo = offs[e], hi = offs[e];
        for (int d = 0; d < nd; d++) {
            int64_t span = (shape[d] - 1) * coef[d][e];
            if (span < 0) lo += span; else hi += span;
        }
        if (lo < 0 || hi >= xn.shape[e]) goto bad;
    }
    int32_t base;
    int64_t stride[TJ_MAXDIM], off;
    if (affine(t, x->id, &base, stride, &off) < 0) return NULL;
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = TJ_OP_VIEW;
    n.dtype = xn.dtype;
    n.ndim = (uint8_t)nd;
    n.flat = 1;
    n.slot = -1;
    n.in[0] = base;
    n.in[1] = n.in[2] = -1;
    n.voff[0] = off;
    for (int e = 0; e < xn.ndim; e++) n.voff[0] += offs[e] * stride[e];
    for (int d = 0; d < nd; d++) {
        n.shape[d] = shape[d];
        n.perm[d] = -2;
        for (int e = 0; e < xn.ndim; e++) n.vstep[d] += coef[d][e] * stride[e];
        if (!n.vstep[d]) n.perm[d] = -1;   /* reads one element: a broadcast dim */
    }
    int32_t r = tj_trace_add_node(t, &n);
    int ro = readonly ? 1 : tj_view_readonly(t, x->id);
    if (r < 0 || (ro && tj_view_mark_readonly(t, r, ro) < 0)) return NULL;
    return tj_tracer_np(tj_tracer_new(t, r), TJ_NP_ARRAY);
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(st->InternalError, "_strided_view: a shape, coefficients or offsets "
                        "that read outside the array");
    return NULL;
}

/* NumPy's error for a write into a read-only view (np.diagonal, broadcast_to,
 * sliding_window_view, and views of them; tj_trace.readonly), its wording per write
 * form; a TraceError for a reshape's copy of one, which NumPy may make a view. 0/-1. */
int tj_view_readonly_error(tj_trace *t, tj_tracer *x, const char *what) {
    int ro = t->torch ? 0 : tj_view_readonly(t, x->id);
    if (!ro) return 0;
    if (ro == 2) {
        tj_trace_error(t->st, "%s writes into a reshape of a read-only view (np.diagonal, "
                       "np.broadcast_to, sliding_window_view), which NumPy makes a read-only "
                       "view where the strides allow and tracejit a copy; write into a copy "
                       "(.copy()) instead", what);
        return -1;
    }
    const char *why = !strncmp(what, "an assignment", 13) || !strncmp(what, "numpy.copyto", 12) ||
                      !strncmp(what, "ndarray.fill", 12) ? "assignment destination is read-only"
                    : !strncmp(what, "numpy.putmask", 13) ? "putmask: output array is read-only"
                    : !strncmp(what, "numpy.put(", 10) ? "put: output array is read-only"
                    : !strncmp(what, "numpy.place", 11) ? "WRITEBACKIFCOPY base is read-only"
                    : "output array is read-only";
    tj_error_at(t->st, PyExc_ValueError, "%s: %s", what, why);
    return -1;
}

/* Whether key selects a view (ints, slices, None, ...): no array, list or Tracer. */
static int basic_key(PyObject *key) {
    int tuple = PyTuple_Check(key);
    Py_ssize_t n = tuple ? PyTuple_GET_SIZE(key) : 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = tuple ? PyTuple_GET_ITEM(key, i) : key;
        if (!(k == Py_None || k == Py_Ellipsis || PySlice_Check(k) ||
              (PyLong_Check(k) && !PyBool_Check(k))))
            return 0;
    }
    return 1;
}

/* x[key] = value where x reads some element twice (Tensor.unfold's overlapping windows)
 * but x[key] may not: the write goes through the view x[key] (NumPy's and torch's
 * setitem of a basic key), value broadcast and cast to it as setitem does. 1 done, 0
 * not such a write (x reads no element twice, or key is no basic key), -1 error. */
int tj_view_assign_region(tj_trace *t, PyObject *x, PyObject *key, PyObject *value) {
    int over = basic_key(key) ? tj_write_view_overlaps(t, ((tj_tracer *)x)->id) : 0;
    if (over <= 0) return over;
    PyObject *sub = tj_getitem(t, x, key);
    if (!sub) return -1;
    const tj_node *n = &t->g.nodes[((tj_tracer *)sub)->id];
    int64_t shape[TJ_MAXDIM];
    memcpy(shape, n->shape, sizeof shape);
    PyObject *v = tj_apply_fill(t, value, n->dtype, n->ndim, shape);
    PyObject *r = v ? tj_tracer_assign(sub, v, "an assignment (`x[...] = value`)") : NULL;
    Py_DECREF(sub);
    Py_XDECREF(v);
    Py_XDECREF(r);
    return r ? 1 : -1;
}

