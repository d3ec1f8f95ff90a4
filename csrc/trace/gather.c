/* Integer-array indexing: x[idx] (one advanced index among basic ones), np.take and
 * np.take_along_axis, all as one GATHER node: out[p] = data[p with its `axes` dim
 * replaced by idx[p]], data and idx broadcast to out's shape (views insert the axes).
 * The index values are computed in the loop; the data is read in place.
 * Contract: indices are int64 (other integer dtypes are cast); negative ones count
 * from the end; an index out of bounds raises IndexError at run time, as in NumPy. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* View of node id with `lead` new axes before dim `at` and `trail` after its end. */
static int32_t widen(tj_trace *t, int32_t id, int at, int lead, int trail) {
    const tj_node *n = &t->g.nodes[id];
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    if (n->ndim + lead + trail > TJ_MAXDIM) {
        tj_trace_error(t->st, "indexing gives more than %d dimensions", TJ_MAXDIM);
        return -1;
    }
    for (int d = 0; d <= n->ndim; d++) {
        if (d == at)
            for (int k = 0; k < lead; k++) { v.shape[v.ndim] = 1; v.src[v.ndim] = -1; v.ndim++; }
        if (d == n->ndim) break;
        v.shape[v.ndim] = n->shape[d];
        v.src[v.ndim] = (int8_t)d;
        v.step[v.ndim] = 1;
        v.ndim++;
    }
    for (int k = 0; k < trail; k++) { v.shape[v.ndim] = 1; v.src[v.ndim] = -1; v.ndim++; }
    return tj_view(t, id, &v);
}

static int32_t index_operand(tj_trace *t, PyObject *idx) {
    int32_t id = tj_operand(t, idx);
    if (id < 0) return -1;
    int dt = t->g.nodes[id].dtype;
    if (dt == TJ_BOOL) {
        tj_trace_error(t->st, "boolean-mask indexing gives a result whose size depends on the "
                       "data, "
                       "which a trace cannot represent; use np.where(mask, x, 0) instead");
        return -1;
    }
    if (dt >= TJ_F32) {
        PyErr_SetString(PyExc_IndexError, "arrays used as indices must be of integer (or "
                                          "boolean) type");
        return -1;
    }
    if (dt == TJ_I64) return id;
    PyObject *x = tj_tracer_new(t, id);
    PyObject *c = x ? tj_apply_cast(t, x, t->st->dtypes[TJ_I64]) : NULL;
    Py_XDECREF(x);
    if (!c) return -1;
    id = ((tj_tracer *)c)->id;
    Py_DECREF(c);
    return id;
}

/* The GATHER node: data and idx have the same ndim; out's shape broadcasts them with
 * data's `axis` dim taken from idx. */
PyObject *tj_gather(tj_trace *t, int32_t data, int32_t idx, int axis, int user_axis) {
    tj_node d = t->g.nodes[data], i = t->g.nodes[idx];
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = TJ_OP_GATHER;
    n.dtype = d.dtype;
    n.ndim = d.ndim;
    n.axes = (uint32_t)axis;
    n.value.i = user_axis;   /* the axis an IndexError names */
    n.in[0] = data;
    n.in[1] = idx;
    n.in[2] = -1;
    n.slot = -1;
    for (int k = 0; k < d.ndim; k++) {
        int64_t a = k == axis ? 1 : d.shape[k], b = i.shape[k];
        if (a != b && a != 1 && b != 1) {
            PyErr_SetString(PyExc_ValueError, "shape mismatch: indexing arrays could not be "
                                              "broadcast together");
            return NULL;
        }
        n.shape[k] = k == axis ? b : a == 1 ? b : a;
    }
    int32_t r = tj_trace_add_node(t, &n);
    return r < 0 ? NULL : tj_tracer_new(t, r);
}

/* take(x, idx, axis): out = x.shape[:axis] + idx.shape + x.shape[axis+1:]. */
static PyObject *take(tj_trace *t, int32_t x, PyObject *idx_o, int axis) {
    int32_t idx = index_operand(t, idx_o);
    if (idx < 0) return NULL;
    int scalar = t->g.nodes[idx].ndim == 0;
    if (scalar && (idx = widen(t, idx, 0, 0, 1)) < 0) return NULL;   /* as shape (1,) */
    int xn = t->g.nodes[x].ndim, in = t->g.nodes[idx].ndim;
    int32_t xd = widen(t, x, axis, in - 1, 0);
    int32_t id = xd < 0 ? -1 : widen(t, idx, 0, axis, xn - axis - 1);
    if (id < 0) return NULL;
    PyObject *g = tj_gather(t, xd, id, axis + in - 1, axis);
    if (!g || !scalar) return g;
    int32_t gid = ((tj_tracer *)g)->id;   /* a 0-d index keeps no axis for itself */
    Py_DECREF(g);
    const tj_node *gn = &t->g.nodes[gid];
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    for (int k = 0; k < gn->ndim; k++) {
        if (k == axis) continue;
        v.shape[v.ndim] = gn->shape[k];
        v.src[v.ndim] = (int8_t)k;
        v.step[v.ndim] = 1;
        v.ndim++;
    }
    int32_t r = tj_view(t, gid, &v);   /* np.take(v, 0) is a NumPy scalar */
    return r < 0 ? NULL : tj_tracer_np(tj_tracer_new(t, r), TJ_NP_SCALAR);
}

/* r (a take at dim `axis` of a `basic_nd`-dim value) with the index's dims moved
 * first. Steals r; new reference. */
static PyObject *to_front(tj_trace *t, PyObject *r, int axis, int basic_nd) {
    int nd = t->g.nodes[((tj_tracer *)r)->id].ndim, in = nd - (basic_nd - 1), k = 0;
    PyObject *perm = PyTuple_New(nd);
    for (int d = axis; perm && d < axis + in; d++) PyTuple_SET_ITEM(perm, k++, PyLong_FromLong(d));
    for (int d = 0; perm && d < nd; d++)
        if (d < axis || d >= axis + in) PyTuple_SET_ITEM(perm, k++, PyLong_FromLong(d));
    PyObject *res = perm && !PyErr_Occurred() ? tj_apply_transpose(t, r, perm) : NULL;
    Py_XDECREF(perm);
    Py_DECREF(r);
    return res;
}

int tj_is_advanced_index(PyObject *k) {
    return tj_is_tracer(k) || PyArray_Check(k) || PyList_Check(k);
}

/* x[key] where key holds exactly one integer array: the basic indices first, then a
 * take along the axis the array indexes. */
PyObject *tj_getitem_advanced(tj_trace *t, PyObject *x, PyObject *key) {
    PyObject *items = PyTuple_Check(key) ? Py_NewRef(key) : PyTuple_Pack(1, key);
    if (!items) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items), which = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!tj_is_advanced_index(PyTuple_GET_ITEM(items, i))) continue;
        if (which >= 0) {
            Py_DECREF(items);
            return tj_trace_error(t->st, "indexing with more than one integer array is not "
                                  "supported "
                                  "by tracejit yet");
        }
        which = i;
    }
    /* the output axis of the advanced index: dims produced by the keys before it */
    int axis = 0;
    int32_t xid = tj_operand(t, x);
    if (xid < 0) { Py_DECREF(items); return NULL; }
    int nd = t->g.nodes[xid].ndim, consumed = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyTuple_GET_ITEM(items, i);
        if (k != Py_None && k != Py_Ellipsis) consumed++;
    }
    for (Py_ssize_t i = 0; i < which; i++) {
        PyObject *k = PyTuple_GET_ITEM(items, i);
        if (k == Py_Ellipsis) axis += nd - consumed;
        else if (k == Py_None || PySlice_Check(k)) axis++;
    }
    /* beside an array, NumPy counts an int as an advanced index too: advanced indices
     * separated by a slice, None or ... put their dims first */
    Py_ssize_t lo = which, hi = which;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyTuple_GET_ITEM(items, i);
        if (i == which || k == Py_None || k == Py_Ellipsis || PySlice_Check(k) || PyBool_Check(k))
            continue;
        if (i < lo) lo = i;
        if (i > hi) hi = i;
    }
    int front = 0;
    for (Py_ssize_t i = lo; i < hi; i++) {
        PyObject *k = PyTuple_GET_ITEM(items, i);
        front |= k == Py_None || k == Py_Ellipsis || PySlice_Check(k) || PyBool_Check(k);
    }
    front &= !t->torch;   /* torch selects with ints first: its arrays keep their place */
    PyObject *basic = PyTuple_New(n), *full = PySlice_New(NULL, NULL, NULL);
    for (Py_ssize_t i = 0; basic && full && i < n; i++)
        PyTuple_SET_ITEM(basic, i, Py_NewRef(i == which ? full : PyTuple_GET_ITEM(items, i)));
    PyObject *y = basic && full ? tj_getitem(t, x, basic) : NULL, *r = NULL;
    Py_XDECREF(basic);
    Py_XDECREF(full);
    if (y) {
        int32_t yid = tj_operand(t, y);
        PyObject *idx = PyTuple_GET_ITEM(items, which);
        PyObject *arr = PyList_Check(idx) ? PyArray_FROM_O(idx) : Py_NewRef(idx);
        if (yid >= 0 && arr) r = take(t, yid, arr, axis);
        Py_XDECREF(arr);
        if (r && front && axis > 0) r = to_front(t, r, axis, t->g.nodes[yid].ndim);
        Py_DECREF(y);
    }
    Py_DECREF(items);
    return r;
}

/* numpy.take (datum 0) and take_along_axis (1); a handler of protocols.c's table */
PyObject *tj_gather_take(tj_trace *t, const tj_npfunc *f, PyObject *a, PyObject *args,
                         PyObject *kwargs) {
    int along = f->arg;
    PyObject *idx = PyTuple_GET_SIZE(args) > 1 ? PyTuple_GET_ITEM(args, 1) : NULL;
    PyObject *axis = PyTuple_GET_SIZE(args) > 2 ? PyTuple_GET_ITEM(args, 2) : NULL;
    if (kwargs) {
        if (!idx) idx = PyDict_GetItemString(kwargs, "indices");
        if (!axis) axis = PyDict_GetItemString(kwargs, "axis");
        PyObject *mode = PyDict_GetItemString(kwargs, "mode"), *out = PyDict_GetItemString(kwargs, "out");
        if ((mode && mode != Py_None && PyUnicode_Check(mode) &&
             PyUnicode_CompareWithASCIIString(mode, "raise")) || (out && out != Py_None))
            return tj_trace_error(t->st, "numpy.%s with out= or mode other than 'raise' is not "
                                  "supported by tracejit yet", f->name);
    }
    if (!a || !idx) return PyErr_Format(PyExc_TypeError, "%s() needs an array and indices", f->name);
    int32_t x = tj_operand(t, a);
    if (x < 0) return NULL;
    if (!axis || axis == Py_None) {   /* the flattened array */
        PyObject *m1 = PyLong_FromLong(-1);
        PyObject *flat = m1 ? tj_reshape(t, a, m1) : NULL;
        Py_XDECREF(m1);
        if (!flat) return NULL;
        x = ((tj_tracer *)flat)->id;
        Py_DECREF(flat);
        if (!along) return take(t, x, idx, 0);
        int32_t id = index_operand(t, idx);
        if (id < 0) return NULL;
        if (t->g.nodes[id].ndim != 1) {
            PyErr_SetString(PyExc_ValueError, "when axis=None, `indices` must have a single "
                                              "dimension.");
            return NULL;
        }
        return tj_gather(t, x, id, 0, 0);
    }
    int ax;
    if (tj_norm_axis(axis, t->g.nodes[x].ndim, &ax) < 0) return NULL;
    if (!along) return take(t, x, idx, ax);
    int32_t id = index_operand(t, idx);
    if (id < 0) return NULL;
    if (t->g.nodes[id].ndim != t->g.nodes[x].ndim) {
        PyErr_SetString(PyExc_ValueError, "`indices` and `arr` must have the same number of "
                                          "dimensions");
        return NULL;
    }
    return tj_gather(t, x, id, ax, ax);
}
