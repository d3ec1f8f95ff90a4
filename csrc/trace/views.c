/* Views: indexing with ints, slices, None and Ellipsis, reshape, transpose and the
 * other movement functions. A view is index arithmetic over its operand (per output
 * dim: the operand dim read, a step, and start offsets), composed with the operand's
 * own view, so a chain of views is one VIEW node over a leaf or a computed node.
 * Contract: a flat (reshaping) view only ever reads memory that is row-major
 * contiguous: a strided operand is first copied (a COPY node, which fuse stores in
 * scratch). Nothing here copies data otherwise; NumPy's errors (IndexError, AxisError,
 * ValueError) are raised with NumPy's wording. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

static int32_t copy_node(tj_trace *t, int32_t id) {
    int32_t c = tj_trace_add_over(t, id, TJ_OP_COPY, 0);
    int view = t->g.nodes[id].op == TJ_OP_VIEW || tj_ops[t->g.nodes[id].op].kind == TJ_K_LEAF;
    if (c >= 0 && tj_view_readonly(t, id) && tj_view_mark_readonly(t, c, 2) < 0) return -1;
    return c >= 0 && view && tj_write_note_view_copy(t, c) < 0 ? -1 : c;
}

/* A flat view that reads its base as a row-major array (offsets aside). */
static int row_major(const tj_node *w) {
    if (!w->flat) return 0;
    int64_t expect = 1;
    for (int d = w->ndim - 1; d >= 0; d--) {
        if (w->shape[d] == 1) continue;
        if (w->perm[d] != -2 || w->vstep[d] != expect) return 0;
        expect *= w->shape[d];
    }
    return 1;
}

static int contiguous_value(tj_trace *t, const tj_node *n) {
    if (n->op == TJ_OP_CONST || n->op == TJ_OP_SCALAR || n->op == TJ_OP_IOTA) return 1;
    if (tj_ops[n->op].kind == TJ_K_LEAF) return t->g.slots[n->slot].contig;
    return n->op != TJ_OP_VIEW;   /* computed values are stored contiguously */
}

/* fresh: a new node even where the view is the identity (a Tracer the user holds) */
static int32_t view_node(tj_trace *t, int32_t id, const tj_viewspec *v, int fresh) {
    int flat = 0;
    for (int d = 0; d < v->ndim; d++) flat |= v->src[d] == -2;
    tj_node w = t->g.nodes[id];
    if (flat && (w.op == TJ_OP_VIEW ? !row_major(&w) : !contiguous_value(t, &w))) {
        if ((id = copy_node(t, id)) < 0) return -1;
        w = t->g.nodes[id];
    }
    int ro = tj_view_readonly(t, id);   /* passed on to views of a read-only view */
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = TJ_OP_VIEW;
    n.dtype = w.dtype;
    n.ndim = (uint8_t)v->ndim;
    n.flat = (uint8_t)(flat || (w.op == TJ_OP_VIEW && w.flat));
    n.slot = -1;
    n.in[1] = n.in[2] = -1;
    memcpy(n.shape, v->shape, sizeof n.shape);
    if (w.op != TJ_OP_VIEW) {
        n.in[0] = id;
        memcpy(n.perm, v->src, sizeof n.perm);
        memcpy(n.vstep, v->step, sizeof n.vstep);
        memcpy(n.voff, v->off, sizeof n.voff);
    } else if (flat) {   /* flat over a row-major view: flat over its base */
        n.in[0] = w.in[0];
        memcpy(n.perm, v->src, sizeof n.perm);
        memcpy(n.vstep, v->step, sizeof n.vstep);
        n.voff[0] = w.voff[0] + v->off[0];
    } else {
        n.in[0] = w.in[0];
        memcpy(n.voff, w.voff, sizeof n.voff);
        for (int d = 0; d < v->ndim; d++) {
            int e = v->src[d];
            n.perm[d] = (int8_t)(e < 0 ? -1 : w.perm[e]);
            n.vstep[d] = n.perm[d] == -1 ? 0 : v->step[d] * w.vstep[e];
        }
        for (int e = 0; e < w.ndim; e++) {
            if (!v->off[e] || w.perm[e] == -1) continue;
            n.voff[w.perm[e] == -2 ? 0 : w.perm[e]] += v->off[e] * w.vstep[e];
        }
    }
    const tj_node *base = &t->g.nodes[n.in[0]];
    int identity = n.ndim == base->ndim && !n.flat;
    for (int d = 0; identity && d < n.ndim; d++)
        identity = n.perm[d] == d && n.vstep[d] == 1 && n.voff[d] == 0 &&
                   n.shape[d] == base->shape[d];
    if (identity && !fresh && !ro) return n.in[0];
    int32_t r = tj_trace_add_node(t, &n);
    return r >= 0 && ro && tj_view_mark_readonly(t, r, ro) < 0 ? -1 : r;
}

int32_t tj_view(tj_trace *t, int32_t id, const tj_viewspec *v) { return view_node(t, id, v, 0); }

static void spec_dim(tj_viewspec *v, int64_t len, int src, int64_t step) {
    v->shape[v->ndim] = len;
    v->src[v->ndim] = (int8_t)src;
    v->step[v->ndim] = step;
    v->ndim++;
}

static PyObject *result(tj_trace *t, int32_t id, const tj_viewspec *v) {
    int32_t r = view_node(t, id, v, 1);   /* a view of a NumPy scalar is a 0-d array */
    return r < 0 ? NULL : tj_tracer_np(tj_tracer_new(t, r), TJ_NP_ARRAY);
}

/* ---- indexing ------------------------------------------------------------------ */

/* x[mask], one boolean key, in a NumPy trace: a constant mask is its nonzero()'s integer
 * arrays (NumPy's definition); a traced one of x's leading shape is a selection
 * (python/tracejit/_masked.py), whose size no array of the trace holds. */
static PyObject *mask_select(tj_trace *t, PyObject *x, PyObject *k, int traced) {
    if (!traced) {
        PyObject *nz = PyArray_Nonzero((PyArrayObject *)k);
        PyObject *r = nz ? tj_getitem(t, x, nz) : NULL;
        Py_XDECREF(nz);
        return r;
    }
    const tj_node *n = &t->g.nodes[((tj_tracer *)x)->id], *m = &t->g.nodes[((tj_tracer *)k)->id];
    if (m->ndim > n->ndim || m->ndim == 0)
        return tj_trace_error(t->st, "a traced boolean index of %d dims on an array of %d is not "
                              "supported by tracejit", m->ndim, n->ndim);
    for (int d = 0; d < m->ndim; d++)
        if (m->shape[d] != n->shape[d]) {   /* NumPy's error */
            tj_error_at(t->st, PyExc_IndexError, "boolean index did not match indexed array along "
                        "axis %d; size of axis is %lld but size of corresponding boolean axis is "
                        "%lld", d, (long long)n->shape[d], (long long)m->shape[d]);
            return NULL;
        }
    PyObject *mod = PyImport_ImportModule("tracejit._masked");
    PyObject *r = mod ? PyObject_CallMethod(mod, "select", "OO", x, k) : NULL;
    Py_XDECREF(mod);
    return r;
}

/* _same_value(a, b): whether tracers a and b of one live trace compute the same value
 * (tj_same_value): a mask computed twice, `a[a > 0] = a[a > 0] ** 2`. */
PyObject *tj_py_same_value(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !tj_is_tracer(args[0]) || !tj_is_tracer(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_same_value(a, b) takes two tracers");
        return NULL;
    }
    tj_tracer *a = (tj_tracer *)args[0], *b = (tj_tracer *)args[1];
    tj_trace *t = tj_tracer_live(a);
    if (!t) return NULL;
    return PyBool_FromLong(a->trace == b->trace && tj_same_value(&t->g, a->id, b->id, 48));
}

PyObject *tj_getitem(tj_trace *t, PyObject *x, PyObject *key) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    const tj_node *n = &t->g.nodes[id];
    int nd = n->ndim;
    int64_t shape[TJ_MAXDIM];
    memcpy(shape, n->shape, sizeof shape);
    PyObject *items = PyTuple_Check(key) ? Py_NewRef(key) : PyTuple_Pack(1, key);
    if (!items) return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(items); i++) {
        PyObject *k = PyTuple_GET_ITEM(items, i);
        int boolean = (PyArray_Check(k) && PyArray_TYPE((PyArrayObject *)k) == NPY_BOOL) ||
                      (tj_is_tracer(k) && t->g.nodes[((tj_tracer *)k)->id].dtype == TJ_BOOL);
        if (!boolean && tj_is_advanced_index(k)) {
            Py_DECREF(items);
            return tj_getitem_advanced(t, x, key);
        }
    }
    Py_ssize_t ni = PyTuple_GET_SIZE(items), consumed = 0, ellipses = 0;
    for (Py_ssize_t i = 0; i < ni; i++) {
        PyObject *k = PyTuple_GET_ITEM(items, i);
        if (k == Py_Ellipsis) ellipses++;
        else if (k != Py_None && !PyBool_Check(k)) {
            if (tj_is_tracer(k) || PyArray_Check(k) || (!PySlice_Check(k) && !PyIndex_Check(k))) {
                int boolean = PyArray_Check(k) && PyArray_TYPE((PyArrayObject *)k) == NPY_BOOL;
                int traced = tj_is_tracer(k) && t->g.nodes[((tj_tracer *)k)->id].dtype == TJ_BOOL;
                Py_DECREF(items);
                if ((boolean || traced) && ni == 1 && !t->torch)
                    return mask_select(t, x, k, traced);
                if (boolean || traced)
                    return tj_trace_error(t->st, "boolean-mask indexing gives a result whose "
                                          "size depends "
                                          "on the data, which a trace cannot represent; use "
                                          "np.where(mask, x, 0) instead");
                return tj_trace_error(t->st, "indexing with %s is not supported by tracejit yet "
                                      "(only "
                                      "ints, slices, None and ...)", Py_TYPE(k)->tp_name);
            }
            consumed++;
        }
    }
    if (ellipses > 1) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_IndexError, "an index can only have a single ellipsis ('...')");
        return NULL;
    }
    if (consumed > nd) {
        Py_DECREF(items);
        PyErr_Format(PyExc_IndexError, "too many indices for array: array is %d-dimensional, "
                     "but %zd were indexed", nd, consumed);
        return NULL;
    }
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    int dim = 0;
    for (Py_ssize_t i = 0; i < ni; i++) {
        PyObject *k = PyTuple_GET_ITEM(items, i);
        if (k == Py_None) { spec_dim(&v, 1, -1, 0); continue; }
        if (PyBool_Check(k)) { spec_dim(&v, k == Py_True, -1, 0); continue; }   /* a 0-d mask */
        if (k == Py_Ellipsis) {
            for (Py_ssize_t r = nd - consumed; r > 0; r--, dim++) spec_dim(&v, shape[dim], dim, 1);
            continue;
        }
        if (PySlice_Check(k)) {
            Py_ssize_t start, stop, step;
            if (PySlice_Unpack(k, &start, &stop, &step) < 0) { Py_DECREF(items); return NULL; }
            Py_ssize_t len = PySlice_AdjustIndices((Py_ssize_t)shape[dim], &start, &stop, step);
            v.off[dim] = len ? start : 0;
            spec_dim(&v, len, dim, step);
            dim++;
            continue;
        }
        Py_ssize_t idx = PyNumber_AsSsize_t(k, PyExc_IndexError);
        if (idx == -1 && PyErr_Occurred()) { Py_DECREF(items); return NULL; }
        if (idx < -shape[dim] || idx >= shape[dim]) {
            Py_DECREF(items);
            PyErr_Format(PyExc_IndexError, "index %zd is out of bounds for axis %d with size %lld",
                         idx, dim, (long long)shape[dim]);
            return NULL;
        }
        v.off[dim] = idx < 0 ? idx + shape[dim] : idx;
        dim++;
    }
    Py_DECREF(items);
    for (; dim < nd; dim++) spec_dim(&v, shape[dim], dim, 1);
    if (v.ndim > TJ_MAXDIM) {
        PyErr_Format(PyExc_IndexError, "tracejit supports at most %d dimensions", TJ_MAXDIM);
        return NULL;
    }
    return result(t, id, &v);
}

/* ---- reshape ------------------------------------------------------------------- */

/* A shape argument (int or sequence of ints, one may be -1) for `size` elements. */
static int parse_shape(PyObject *shape, int64_t size, int *ndim, int64_t *out) {
    int scalar = PyIndex_Check(shape) && !(PyArray_Check(shape) && PyArray_NDIM((PyArrayObject *)shape));
    PyObject *seq = scalar ? PyTuple_Pack(1, shape) : PySequence_Tuple(shape);
    if (!seq) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    int unknown = -1;
    int64_t known = 1;
    if (n > TJ_MAXDIM) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "tracejit supports at most %d dimensions", TJ_MAXDIM);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t d = PyNumber_AsSsize_t(PyTuple_GET_ITEM(seq, i), PyExc_ValueError);
        if (d == -1 && PyErr_Occurred()) { Py_DECREF(seq); return -1; }
        if (d == -1) {
            if (unknown >= 0) {
                Py_DECREF(seq);
                PyErr_SetString(PyExc_ValueError, "can only specify one unknown dimension");
                return -1;
            }
            unknown = (int)i;
            out[i] = 1;
            continue;
        }
        if (d < 0) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "negative dimensions not allowed");
            return -1;
        }
        out[i] = d;
        known *= d;
    }
    if (unknown >= 0) out[unknown] = known ? size / known : 0;
    int64_t total = 1;
    for (Py_ssize_t i = 0; i < n; i++) total *= out[i];
    if (total != size || (unknown >= 0 && known == 0)) {
        PyObject *r = PyObject_Repr(seq);
        if (r) {
            PyErr_Format(PyExc_ValueError, "cannot reshape array of size %lld into shape %U",
                         (long long)size, r);
            Py_DECREF(r);
        }
        Py_DECREF(seq);
        return -1;
    }
    Py_DECREF(seq);
    *ndim = (int)n;
    return 0;
}

PyObject *tj_reshape(tj_trace *t, PyObject *x, PyObject *shape) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    const tj_node *n = &t->g.nodes[id];
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    if (parse_shape(shape, tj_node_size(n), &v.ndim, v.shape) < 0) return NULL;
    int same = v.ndim == n->ndim;
    for (int d = 0; same && d < v.ndim; d++) same = v.shape[d] == n->shape[d];
    if (same) return Py_NewRef(x);
    int64_t step = 1;
    for (int d = v.ndim - 1; d >= 0; d--) {
        v.src[d] = -2;
        v.step[d] = step;
        step *= v.shape[d];
    }
    return result(t, id, &v);
}

/* ---- the movement functions ------------------------------------------------------- */

static PyObject *permuted(tj_trace *t, int32_t id, const int *perm) {
    const tj_node *n = &t->g.nodes[id];
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    for (int d = 0; d < n->ndim; d++) spec_dim(&v, n->shape[perm[d]], perm[d], 1);
    return result(t, id, &v);
}

PyObject *tj_apply_transpose(tj_trace *t, PyObject *x, PyObject *axes) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    int nd = t->g.nodes[id].ndim, perm[TJ_MAXDIM], seen[TJ_MAXDIM] = {0};
    if (axes == Py_None) {
        for (int d = 0; d < nd; d++) perm[d] = nd - 1 - d;
        return tj_tracer_np_as(permuted(t, id, perm), x);
    }
    PyObject *seq = PySequence_Fast(axes, "transpose: axes must be a sequence of ints");
    if (!seq) return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != nd) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "axes don't match array");
        return NULL;
    }
    for (int d = 0; d < nd; d++) {
        if (tj_norm_axis(PySequence_Fast_GET_ITEM(seq, d), nd, &perm[d]) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        if (seen[perm[d]]++) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "repeated axis in transpose");
            return NULL;
        }
    }
    Py_DECREF(seq);
    return tj_tracer_np_as(permuted(t, id, perm), x);
}

/* Axes from an int, a tuple of ints or None (all). */
static int axes_mask(PyObject *axis, int ndim, uint32_t *mask) {
    *mask = 0;
    if (axis == Py_None) { *mask = (uint32_t)((1ull << ndim) - 1); return 0; }
    PyObject *seq = PyTuple_Check(axis) || PyList_Check(axis) ? PySequence_Tuple(axis)
                                                              : PyTuple_Pack(1, axis);
    if (!seq) return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        int a;
        if (tj_norm_axis(PyTuple_GET_ITEM(seq, i), ndim, &a) < 0) { Py_DECREF(seq); return -1; }
        if (*mask >> a & 1) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "repeated axis");
            return -1;
        }
        *mask |= 1u << a;
    }
    Py_DECREF(seq);
    return 0;
}

static PyObject *squeeze(tj_trace *t, int32_t id, PyObject *axis) {
    const tj_node *n = &t->g.nodes[id];
    uint32_t mask;
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    if (axis == Py_None) {
        mask = 0;
        for (int d = 0; d < n->ndim; d++)
            if (n->shape[d] == 1) mask |= 1u << d;
    } else {
        if (axes_mask(axis, n->ndim, &mask) < 0) return NULL;
        for (int d = 0; d < n->ndim; d++)
            if ((mask >> d & 1) && n->shape[d] != 1) {
                PyErr_SetString(PyExc_ValueError,
                                "cannot select an axis to squeeze out which has size not equal "
                                "to one");
                return NULL;
            }
    }
    for (int d = 0; d < n->ndim; d++)
        if (!(mask >> d & 1)) spec_dim(&v, n->shape[d], d, 1);
    return result(t, id, &v);
}

static PyObject *expand_dims(tj_trace *t, int32_t id, PyObject *axis) {
    const tj_node *n = &t->g.nodes[id];
    int count = PyTuple_Check(axis) ? (int)PyTuple_GET_SIZE(axis) : 1, out = n->ndim + count;
    uint32_t mask;
    if (out > TJ_MAXDIM) {
        PyErr_Format(PyExc_ValueError, "tracejit supports at most %d dimensions", TJ_MAXDIM);
        return NULL;
    }
    if (axes_mask(axis, out, &mask) < 0) return NULL;
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    for (int d = 0, k = 0; d < out; d++) {
        if (mask >> d & 1) spec_dim(&v, 1, -1, 0);
        else { spec_dim(&v, n->shape[k], k, 1); k++; }
    }
    return result(t, id, &v);
}

static PyObject *broadcast_to(tj_trace *t, int32_t id, PyObject *shape) {
    const tj_node *n = &t->g.nodes[id];
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    int64_t size = 1;
    PyObject *seq = PyIndex_Check(shape) ? PyTuple_Pack(1, shape) : PySequence_Tuple(shape);
    if (!seq) return NULL;
    int nd = (int)PyTuple_GET_SIZE(seq);
    for (int d = 0; d < nd && d < TJ_MAXDIM; d++) {
        v.shape[d] = PyNumber_AsSsize_t(PyTuple_GET_ITEM(seq, d), PyExc_ValueError);
        size *= v.shape[d];
    }
    Py_DECREF(seq);
    if (PyErr_Occurred()) return NULL;
    (void)size;
    if (nd > TJ_MAXDIM || nd < n->ndim) goto bad;
    for (int d = 0; d < nd; d++) {
        int e = d - (nd - n->ndim);
        int64_t want = v.shape[d];
        if (want < 0) goto bad;
        if (e >= 0 && n->shape[e] == want) { v.src[d] = (int8_t)e; v.step[d] = 1; }
        else if (e < 0 || n->shape[e] == 1) { v.src[d] = -1; v.step[d] = 0; }
        else goto bad;
    }
    v.ndim = nd;
    return result(t, id, &v);
bad:
    PyErr_SetString(PyExc_ValueError, "operands could not be broadcast together with the "
                                      "requested shape (broadcast_to)");
    return NULL;
}

static PyObject *flip(tj_trace *t, int32_t id, PyObject *axis) {
    const tj_node *n = &t->g.nodes[id];
    uint32_t mask;
    if (axes_mask(axis, n->ndim, &mask) < 0) return NULL;
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    for (int d = 0; d < n->ndim; d++) {
        int f = mask >> d & 1 && n->shape[d] > 0;
        spec_dim(&v, n->shape[d], d, f ? -1 : 1);
        if (f) v.off[d] = n->shape[d] - 1;
    }
    return result(t, id, &v);
}

static PyObject *split(tj_trace *t, int32_t id, PyObject *sections, PyObject *axis_o, int strict) {
    const tj_node *n = &t->g.nodes[id];
    int axis;
    if (tj_norm_axis(axis_o, n->ndim, &axis) < 0) return NULL;
    int64_t len = n->shape[axis], bounds[1025];
    int nb = 0;
    if (PyIndex_Check(sections) || PyFloat_Check(sections)) {   /* numpy takes int(sections) */
        PyObject *as_int = PyNumber_Long(sections);
        if (!as_int) return NULL;
        Py_ssize_t k = PyNumber_AsSsize_t(as_int, PyExc_ValueError);
        Py_DECREF(as_int);
        if (k == -1 && PyErr_Occurred()) return NULL;
        if (k <= 0 || k > 1024) {
            PyErr_SetString(PyExc_ValueError, "number sections must be larger than 0.");
            return NULL;
        }
        if (strict && len % k) {
            PyErr_SetString(PyExc_ValueError, "array split does not result in an equal division");
            return NULL;
        }
        int64_t each = len / k, extra = len % k, pos = 0;
        bounds[nb++] = 0;
        for (Py_ssize_t i = 0; i < k; i++) bounds[nb++] = pos += each + (i < extra);
    } else {
        PyObject *seq = PySequence_Tuple(sections);
        if (!seq) return NULL;
        if (PyTuple_GET_SIZE(seq) > 1022) { Py_DECREF(seq); return tj_trace_error(t->st, "too many split points"); }
        bounds[nb++] = 0;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
            Py_ssize_t b = PyNumber_AsSsize_t(PyTuple_GET_ITEM(seq, i), PyExc_ValueError);
            if (b == -1 && PyErr_Occurred()) { Py_DECREF(seq); return NULL; }
            if (b < 0) b += len;
            bounds[nb++] = b < 0 ? 0 : b > len ? len : b;
        }
        bounds[nb++] = len;
        Py_DECREF(seq);
    }
    PyObject *list = PyList_New(0);
    for (int i = 0; list && i + 1 < nb; i++) {
        tj_viewspec v;
        memset(&v, 0, sizeof v);
        int64_t lo = bounds[i], hi = bounds[i + 1] > lo ? bounds[i + 1] : lo;
        for (int d = 0; d < n->ndim; d++) spec_dim(&v, d == axis ? hi - lo : n->shape[d], d, 1);
        v.off[axis] = hi > lo ? lo : 0;
        PyObject *piece = result(t, id, &v);
        n = &t->g.nodes[id];
        if (!piece || PyList_Append(list, piece) < 0) Py_CLEAR(list);
        Py_XDECREF(piece);
    }
    return list;
}

/* ---- the numpy functions (handlers of protocols.c's table) ------------------ */
/* Each converts x first, so an operand numpy could not read fails before any other
 * check, whichever function it was given to. */

PyObject *tj_views_reshape(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                           PyObject *kwargs) {
    if (tj_operand(t, x) < 0) return NULL;
    PyObject *order = kwargs ? PyDict_GetItemString(kwargs, "order") : NULL;
    if (order && PyUnicode_Check(order) && PyUnicode_CompareWithASCIIString(order, "C"))
        return tj_trace_error(t->st, "reshape(order=%R) is not supported by tracejit yet", order);
    PyObject *shape = tj_arg(args, kwargs, 1, "newshape", NULL);
    if (!shape && kwargs) shape = PyDict_GetItemString(kwargs, "shape");
    if (!shape) { PyErr_SetString(PyExc_TypeError, "reshape() needs a shape"); return NULL; }
    return tj_reshape(t, x, shape);
}

/* numpy.ravel, and x.ravel() / x.flatten() (f->name spells which) */
PyObject *tj_views_ravel(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                         PyObject *kwargs) {
    if (tj_operand(t, x) < 0) return NULL;
    PyObject *order = tj_arg(args, kwargs, 1, "order", NULL);
    int fortran = 0;
    if (order && order != Py_None) {
        if (!PyUnicode_Check(order) ||
            (PyUnicode_CompareWithASCIIString(order, "C") &&
             PyUnicode_CompareWithASCIIString(order, "F")))
            return tj_trace_error(t->st, "%s(order=%R) is not supported by tracejit (only 'C' and "
                                  "'F')", f->name, order);
        fortran = PyUnicode_CompareWithASCIIString(order, "F") == 0;
    }
    PyObject *m1 = PyLong_FromLong(-1);
    PyObject *src = fortran ? tj_apply_transpose(t, x, Py_None) : Py_NewRef(x);
    PyObject *r = m1 && src ? tj_reshape(t, src, m1) : NULL;
    Py_XDECREF(m1);
    Py_XDECREF(src);
    if (r && !t->torch && !strcmp(f->name, "flatten"))   /* NumPy's flatten copies */
        Py_SETREF(r, tj_apply_cast(t, r, t->st->dtypes[t->g.nodes[((tj_tracer *)r)->id].dtype]));
    return r;
}

PyObject *tj_views_squeeze(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                           PyObject *kwargs) {
    int32_t id = tj_operand(t, x);
    PyObject *axis = tj_arg(args, kwargs, 1, "axis", Py_None);
    return id < 0 ? NULL : tj_tracer_np_as(squeeze(t, id, axis), x);
}

PyObject *tj_views_expand_dims(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                               PyObject *kwargs) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    PyObject *axis = tj_arg(args, kwargs, 1, "axis", NULL);
    if (!axis) { PyErr_SetString(PyExc_TypeError, "expand_dims() needs an axis"); return NULL; }
    return expand_dims(t, id, axis);
}

PyObject *tj_views_swapaxes(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                            PyObject *kwargs) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    int nd = t->g.nodes[id].ndim, a, b, perm[TJ_MAXDIM];
    PyObject *ao = tj_arg(args, kwargs, 1, "axis1", NULL), *bo = tj_arg(args, kwargs, 2, "axis2", NULL);
    if (!ao || !bo) { PyErr_SetString(PyExc_TypeError, "swapaxes() needs two axes"); return NULL; }
    if (tj_norm_axis(ao, nd, &a) < 0 || tj_norm_axis(bo, nd, &b) < 0) return NULL;
    for (int d = 0; d < nd; d++) perm[d] = d == a ? b : d == b ? a : d;
    return permuted(t, id, perm);
}

PyObject *tj_views_moveaxis(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                            PyObject *kwargs) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    int nd = t->g.nodes[id].ndim, src, dst, perm[TJ_MAXDIM], k = 0;
    PyObject *so = tj_arg(args, kwargs, 1, "source", NULL), *dso = tj_arg(args, kwargs, 2, "destination", NULL);
    if (!so || !dso || !PyIndex_Check(so) || !PyIndex_Check(dso))
        return tj_trace_error(t->st, "numpy.moveaxis is supported with one source and one "
                              "destination axis");
    if (tj_norm_axis(so, nd, &src) < 0 || tj_norm_axis(dso, nd, &dst) < 0) return NULL;
    for (int d = 0; d < nd; d++)
        if (d != src) perm[k++] = d;
    for (int d = nd - 1; d > dst; d--) perm[d] = perm[d - 1];
    perm[dst] = src;
    return permuted(t, id, perm);
}

PyObject *tj_views_broadcast_to(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                                PyObject *kwargs) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    PyObject *shape = tj_arg(args, kwargs, 1, "shape", NULL);
    if (!shape) { PyErr_SetString(PyExc_TypeError, "broadcast_to() needs a shape"); return NULL; }
    PyObject *r = broadcast_to(t, id, shape);   /* NumPy's is read-only (torch's expand not) */
    if (r && !t->torch && tj_view_mark_readonly(t, ((tj_tracer *)r)->id, 1) < 0) Py_CLEAR(r);
    return r;
}

/* numpy.flip(m, axis) (datum 0); flipud (1) and fliplr (2) flip axis datum - 1 of an
 * array of at least datum dims. */
PyObject *tj_views_flip(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                        PyObject *kwargs) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    if (!f->arg)   /* np.flip of a 0-d value indexes it with (): a NumPy scalar */
        return tj_tracer_np(flip(t, id, tj_arg(args, kwargs, 1, "axis", Py_None)),
                            t->g.nodes[id].ndim ? TJ_NP_ARRAY : TJ_NP_SCALAR);
    if (t->g.nodes[id].ndim < f->arg)
        return PyErr_Format(PyExc_ValueError, "Input must be >= %d-d.", f->arg);
    PyObject *ax = PyLong_FromLong(f->arg - 1);
    PyObject *r = ax ? flip(t, id, ax) : NULL;
    Py_XDECREF(ax);
    return r;
}

/* numpy.split (datum 1: sections must divide the axis) and array_split (0) */
PyObject *tj_views_split(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                         PyObject *kwargs) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    PyObject *sec = tj_arg(args, kwargs, 1, "indices_or_sections", NULL);
    if (!sec) { PyErr_SetString(PyExc_TypeError, "split() needs sections"); return NULL; }
    PyObject *zero = PyLong_FromLong(0);
    PyObject *r = zero ? split(t, id, sec, tj_arg(args, kwargs, 2, "axis", zero), f->arg) : NULL;
    Py_XDECREF(zero);
    return r;
}
