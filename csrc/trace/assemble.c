/* Arrays assembled from parts: concatenate, stack, hstack, vstack, roll and constant
 * pad. Each part is a computed value (a COPY of a leaf or view), and a concatenation
 * is a chain of binary CONCAT nodes; fuse.c flattens the chain and writes every part,
 * with its producers fused, straight into its region of one buffer.
 * Contract: results have NumPy's dtype (result_type of the parts) and shape; NumPy's
 * errors for mismatched shapes or axes are raised at trace time. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>
#include <math.h>

static int32_t part(tj_trace *t, int32_t id, int dt) {
    tj_node n;
    memset(&n, 0, sizeof n);
    const tj_node *x = &t->g.nodes[id];
    n.op = x->dtype == dt ? TJ_OP_COPY : TJ_OP_CAST;
    n.dtype = (uint8_t)dt;
    n.ndim = x->ndim;
    memcpy(n.shape, x->shape, sizeof n.shape);
    n.in[0] = id;
    n.in[1] = n.in[2] = -1;
    n.slot = -1;
    return tj_trace_add_node(t, &n);
}

PyObject *tj_concat_ids(tj_trace *t, int32_t *ids, Py_ssize_t n, int axis) {
    tj_state *st = t->st;
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "need at least one array to concatenate");
        return NULL;
    }
    const tj_node *first = &t->g.nodes[ids[0]];
    int nd = first->ndim;
    if (nd == 0) {
        PyErr_SetString(PyExc_ValueError, "zero-dimensional arrays cannot be concatenated");
        return NULL;
    }
    PyObject *dts = PyTuple_New(n);
    if (!dts) return NULL;
    int64_t shape[TJ_MAXDIM];
    memcpy(shape, first->shape, sizeof shape);
    shape[axis] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const tj_node *x = &t->g.nodes[ids[i]];
        PyTuple_SET_ITEM(dts, i, Py_NewRef(st->dtypes[x->dtype]));
        if (x->ndim != nd) {
            Py_DECREF(dts);
            PyErr_Format(PyExc_ValueError, "all the input arrays must have same number of "
                         "dimensions, but the array at index 0 has %d dimension(s) and the "
                         "array at index %zd has %d dimension(s)", nd, i, x->ndim);
            return NULL;
        }
        for (int d = 0; d < nd; d++)
            if (d != axis && x->shape[d] != first->shape[d]) {
                Py_DECREF(dts);
                PyErr_Format(PyExc_ValueError, "all the input array dimensions except for the "
                             "concatenation axis must match exactly, but along dimension %d, "
                             "the array at index 0 has size %lld and the array at index %zd "
                             "has size %lld", d, (long long)first->shape[d], i,
                             (long long)x->shape[d]);
                return NULL;
            }
        shape[axis] += x->shape[axis];
    }
    PyObject *rt = PyObject_GetAttrString(st->numpy, "result_type");
    PyObject *r = rt ? PyObject_CallObject(rt, dts) : NULL;
    Py_XDECREF(rt);
    Py_DECREF(dts);
    if (!r) return NULL;
    int dt = PyArray_DescrCheck(r) ? tj_dtype_from_typenum(((PyArray_Descr *)r)->type_num) : -1;
    Py_DECREF(r);
    if (dt < 0) return tj_trace_error(t->st, "concatenating these dtypes is not supported by "
                                      "tracejit");
    int32_t acc = part(t, ids[0], dt);
    int64_t len = t->g.nodes[ids[0]].shape[axis];
    for (Py_ssize_t i = 1; acc >= 0 && i < n; i++) {
        int32_t p = part(t, ids[i], dt);
        if (p < 0) return NULL;
        tj_node c;
        memset(&c, 0, sizeof c);
        c.op = TJ_OP_CONCAT;
        c.dtype = (uint8_t)dt;
        c.ndim = (uint8_t)nd;
        memcpy(c.shape, shape, sizeof c.shape);
        len += t->g.nodes[ids[i]].shape[axis];
        c.shape[axis] = len;
        c.axes = (uint32_t)axis;
        c.in[0] = acc;
        c.in[1] = p;
        c.in[2] = -1;
        c.slot = -1;
        acc = tj_trace_add_node(t, &c);
    }
    return acc < 0 ? NULL : tj_tracer_new(t, acc);
}

static int shape_differs(tj_trace *t, int32_t a, int32_t b) {
    const tj_node *x = &t->g.nodes[a], *y = &t->g.nodes[b];
    if (x->ndim != y->ndim) return 1;
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] != y->shape[d]) return 1;
    return 0;
}

/* Node ids of a sequence of arrays (tracers, arrays, scalars); with `stack`, a new
 * axis is inserted first at `expand` (which may be negative). PyMem array in *ids. */
static Py_ssize_t operands(tj_trace *t, PyObject *seq_o, int stack, int expand, int32_t **ids) {
    if (!PySequence_Check(seq_o) || tj_is_tracer(seq_o)) {   /* NumPy refuses iterators */
        PyErr_SetString(PyExc_TypeError, stack ? "arrays to stack must be passed as a "
                                                 "\"sequence\" type such as list or tuple."
                                               : "The first input argument needs to be a "
                                                 "sequence");
        return -1;
    }
    PyObject *seq = PySequence_Fast(seq_o, "expected a sequence of arrays");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    *ids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof **ids);
    if (!*ids) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    int32_t first_id = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t id = tj_operand(t, PySequence_Fast_GET_ITEM(seq, i));
        if (id >= 0 && stack && i > 0 && shape_differs(t, first_id, id)) {
            PyErr_SetString(PyExc_ValueError, "all input arrays must have the same shape");
            id = -1;
        }
        if (i == 0) first_id = id;
        if (id >= 0 && stack) {
            const tj_node *x = &t->g.nodes[id];
            int a;
            PyObject *ax = PyLong_FromLong(expand);
            int ok = ax && tj_norm_axis(ax, x->ndim + 1, &a) == 0;
            Py_XDECREF(ax);
            if (!ok) id = -1;
            else {
                tj_viewspec v;
                memset(&v, 0, sizeof v);
                for (int d = 0, k = 0; d <= x->ndim; d++) {
                    v.shape[v.ndim] = d == a ? 1 : x->shape[k];
                    v.src[v.ndim] = (int8_t)(d == a ? -1 : k);
                    v.step[v.ndim] = d == a ? 0 : 1;
                    v.ndim++;
                    if (d != a) k++;
                }
                id = tj_view(t, id, &v);
            }
        }
        if (id < 0) { Py_DECREF(seq); PyMem_Free(*ids); return -1; }
        (*ids)[i] = id;
    }
    Py_DECREF(seq);
    return n;
}

static PyObject *concatenate(tj_trace *t, PyObject *seq, PyObject *axis_o, int stack) {
    int32_t *ids;
    long ax = axis_o == Py_None ? 0 : PyLong_AsLong(axis_o);
    if (ax == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = operands(t, seq, stack, (int)ax, &ids);
    if (n < 0) return NULL;
    PyObject *r = NULL;
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, stack ? "need at least one array to stack"
                                                : "need at least one array to concatenate");
    } else if (axis_o == Py_None && !stack) {   /* axis=None: flattened */
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *x = tj_tracer_new(t, ids[i]), *m1 = PyLong_FromLong(-1);
            PyObject *f = x && m1 ? tj_reshape(t, x, m1) : NULL;
            Py_XDECREF(x);
            Py_XDECREF(m1);
            if (!f) goto done;
            ids[i] = ((tj_tracer *)f)->id;
            Py_DECREF(f);
        }
        r = tj_concat_ids(t, ids, n, 0);
    } else if (t->g.nodes[ids[0]].ndim == 0) {
        PyErr_SetString(PyExc_ValueError, "zero-dimensional arrays cannot be concatenated");
    } else {
        int axis;
        if (tj_norm_axis(axis_o, t->g.nodes[ids[0]].ndim, &axis) == 0) r = tj_concat_ids(t, ids, n, axis);
    }
done:
    PyMem_Free(ids);
    return r;
}

/* np.roll(x, shift, axis): the last `shift` along axis come first. */
static PyObject *roll(tj_trace *t, PyObject *x, PyObject *shift_o, PyObject *axis_o) {
    if (axis_o == Py_None) {
        int32_t id = tj_operand(t, x);
        if (id < 0) return NULL;
        tj_node n = t->g.nodes[id];
        PyObject *m1 = PyLong_FromLong(-1), *zero = PyLong_FromLong(0);
        PyObject *flat = m1 ? tj_reshape(t, x, m1) : NULL;
        PyObject *rolled = flat && zero ? roll(t, flat, shift_o, zero) : NULL;
        PyObject *shape = PyTuple_New(n.ndim);
        for (int d = 0; shape && d < n.ndim; d++) PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(n.shape[d]));
        PyObject *r = rolled && shape ? tj_reshape(t, rolled, shape) : NULL;
        Py_XDECREF(m1); Py_XDECREF(zero); Py_XDECREF(flat); Py_XDECREF(rolled); Py_XDECREF(shape);
        return r;
    }
    if (!PyIndex_Check(shift_o) || !PyIndex_Check(axis_o))
        return tj_trace_error(t->st, "numpy.roll with several shifts or axes is not supported by "
                              "tracejit yet");
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    int axis;
    if (tj_norm_axis(axis_o, t->g.nodes[id].ndim, &axis) < 0) return NULL;
    int64_t len = t->g.nodes[id].shape[axis];
    long long sh = PyLong_AsLongLong(shift_o);
    if (sh == -1 && PyErr_Occurred()) return NULL;
    sh = len ? ((sh % len) + len) % len : 0;
    if (sh == 0) return tj_apply_cast(t, x, t->st->dtypes[t->g.nodes[id].dtype]);
    int32_t pieces[2];
    for (int k = 0; k < 2; k++) {
        const tj_node *n = &t->g.nodes[id];
        tj_viewspec v;
        memset(&v, 0, sizeof v);
        for (int d = 0; d < n->ndim; d++) {
            v.shape[d] = d != axis ? n->shape[d] : k == 0 ? sh : len - sh;
            v.src[d] = (int8_t)d;
            v.step[d] = 1;
        }
        v.ndim = n->ndim;
        v.off[axis] = k == 0 ? len - sh : 0;
        if ((pieces[k] = tj_view(t, id, &v)) < 0) return NULL;
    }
    return tj_concat_ids(t, pieces, 2, axis);
}

/* np.pad(x, pad_width, mode="constant", constant_values=c) with one c. */
static PyObject *pad(tj_trace *t, PyObject *x, PyObject *width, PyObject *mode, PyObject *value) {
    if (mode && (!PyUnicode_Check(mode) || PyUnicode_CompareWithASCIIString(mode, "constant")))
        return tj_trace_error(t->st, "numpy.pad(mode=%R) is not supported by tracejit yet (only "
                              "'constant')", mode);
    if (value && PyFloat_Check(value) && !isfinite(PyFloat_AS_DOUBLE(value))) {
        int32_t xid = tj_operand(t, x);
        if (xid < 0) return NULL;
        if (t->g.nodes[xid].dtype < TJ_F32) {   /* as NumPy's int(inf) */
            PyErr_SetString(PyExc_OverflowError, "cannot convert float infinity to integer");
            return NULL;
        }
    }
    if (value && !PyFloat_Check(value) && !PyLong_Check(value) && !PyArray_IsScalar(value, Generic))
        return tj_trace_error(t->st, "numpy.pad with per-axis constant_values is not supported by "
                              "tracejit yet");
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    int nd = t->g.nodes[id].ndim;
    PyObject *np_mod = t->st->numpy;
    PyObject *shape = Py_BuildValue("(ii)", nd, 2);
    PyObject *w = NULL, *cur = Py_NewRef(x), *zero = PyLong_FromLong(0);
    if (!shape || !zero) goto fail;
    /* numpy's own broadcasting of pad_width to (ndim, 2) */
    PyObject *warr = PyObject_CallMethod(np_mod, "asarray", "(O)", width);
    w = warr ? PyObject_CallMethod(np_mod, "broadcast_to", "OO", warr, shape) : NULL;
    Py_XDECREF(warr);
    if (!w) goto fail;
    for (int d = 0; d < nd; d++) {
        long long before = 0, after = 0;
        PyObject *b = PyObject_CallMethod(w, "item", "ii", d, 0);
        PyObject *a = b ? PyObject_CallMethod(w, "item", "ii", d, 1) : NULL;
        if (a) { before = PyLong_AsLongLong(b); after = PyLong_AsLongLong(a); }
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (PyErr_Occurred()) goto fail;
        if (before < 0 || after < 0) {
            PyErr_SetString(PyExc_ValueError, "index can't contain negative values");
            goto fail;
        }
        if (!before && !after) continue;
        int32_t cid = tj_operand(t, cur);
        if (cid < 0) goto fail;
        tj_node c = t->g.nodes[cid];
        int32_t ids[3];
        int k = 0;
        for (int side = 0; side < 3; side++) {
            long long len = side == 0 ? before : side == 2 ? after : -1;
            if (side == 1) { ids[k++] = cid; continue; }
            if (!len) continue;
            int64_t sh[TJ_MAXDIM];
            memcpy(sh, c.shape, sizeof sh);
            sh[d] = len;
            PyObject *f = tj_apply_fill(t, value ? value : zero, c.dtype, c.ndim, sh);
            if (!f) goto fail;
            ids[k++] = ((tj_tracer *)f)->id;
            Py_DECREF(f);
        }
        PyObject *next = tj_concat_ids(t, ids, k, d);
        if (!next) goto fail;
        Py_SETREF(cur, next);
    }
    Py_DECREF(shape);
    Py_DECREF(w);
    Py_DECREF(zero);
    if (cur == x)   /* nothing padded: NumPy's result is a new array all the same */
        Py_SETREF(cur, tj_apply_cast(t, x, t->st->dtypes[t->g.nodes[id].dtype]));
    return cur;
fail:
    Py_XDECREF(shape);
    Py_XDECREF(w);
    Py_XDECREF(cur);
    Py_XDECREF(zero);
    return NULL;
}

/* ---- the numpy functions (handlers of protocols.c's table) ------------------ */

/* The refusals every assembly shares: out= and a casting other than numpy's default. */
static int refuse_options(tj_trace *t, const tj_npfunc *f, PyObject *kwargs) {
    PyObject *out = kwargs ? PyDict_GetItemString(kwargs, "out") : NULL;
    if (out && out != Py_None) {
        tj_trace_error(t->st, "numpy.%s(..., out=...) is not supported by tracejit", f->name);
        return -1;
    }
    PyObject *casting = kwargs ? PyDict_GetItemString(kwargs, "casting") : NULL;
    if (casting && (!PyUnicode_Check(casting) ||
                    PyUnicode_CompareWithASCIIString(casting, "same_kind"))) {
        tj_trace_error(t->st, "numpy.%s(casting=%R) is not supported by tracejit", f->name, casting);
        return -1;
    }
    return 0;
}

/* dtype=: the result in that dtype. Steals r. */
static PyObject *in_dtype(tj_trace *t, PyObject *r, PyObject *kwargs) {
    PyObject *dtype = kwargs ? PyDict_GetItemString(kwargs, "dtype") : NULL;
    if (r && dtype && dtype != Py_None) Py_SETREF(r, tj_apply_cast(t, r, dtype));
    return r;
}

/* numpy.concatenate (datum 0) and stack (1) */
PyObject *tj_assemble_concat(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                             PyObject *kwargs) {
    if (refuse_options(t, f, kwargs) < 0) return NULL;
    PyObject *zero = PyLong_FromLong(0);
    if (!zero) return NULL;
    PyObject *axis = tj_arg(args, kwargs, 1, "axis", NULL);
    PyObject *r = concatenate(t, x, axis ? axis : zero, f->arg);
    Py_DECREF(zero);
    return in_dtype(t, r, kwargs);
}

/* The view of a part of ndim nd that np.atleast_3d gives (0-d (1, 1, 1), (N,) (1, N, 1),
 * (M, N) (M, N, 1)), or, for column_stack, a 1-d part as a column (N, 1). */
static void as_3d_or_column(tj_viewspec *v, const tj_node *p, int column) {
    static const int8_t lay[3][3] = {{-1, -1, -1}, {-1, 0, -1}, {0, 1, -1}};
    if (column) {   /* (N,) -> (N, 1) */
        v->ndim = 2;
        v->shape[0] = p->shape[0]; v->src[0] = 0; v->step[0] = 1;
        v->shape[1] = 1; v->src[1] = -1;
        return;
    }
    v->ndim = 3;
    for (int k = 0; k < 3; k++) {
        int d = lay[p->ndim][k];
        v->src[k] = (int8_t)d;
        v->shape[k] = d < 0 ? 1 : p->shape[d];
        v->step[k] = d < 0 ? 0 : 1;
    }
}

/* numpy.hstack (datum 1) and vstack (2): every part made at least datum-d first
 * (atleast_1d, atleast_2d), then joined along axis 0, or 1 for hstack of parts that
 * are not all 1-d; dstack (3): parts made atleast_3d, joined along axis 2;
 * column_stack (4): 1-d parts as columns, joined along axis 1 */
PyObject *tj_assemble_hvstack(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                              PyObject *kwargs) {
    if (refuse_options(t, f, kwargs) < 0) return NULL;
    int32_t *ids;
    Py_ssize_t n = operands(t, x, 0, 0, &ids);
    if (n < 0) return NULL;
    int want = f->arg, all1 = 1;
    for (Py_ssize_t i = 0; i < n && ids[i] >= 0; i++) {
        const tj_node *p = &t->g.nodes[ids[i]];
        tj_viewspec v;
        memset(&v, 0, sizeof v);
        if (want >= 3) {
            if (want == 4 ? p->ndim == 1 : p->ndim < 3) {
                as_3d_or_column(&v, p, want == 4);
                ids[i] = tj_view(t, ids[i], &v);
            } else if (want == 4 && p->ndim != 2) {
                PyErr_Format(PyExc_ValueError, "all the input array dimensions except for the "
                             "concatenation axis must match exactly (column_stack of a "
                             "%d-d array)", p->ndim);
                ids[i] = -1;
            }
            continue;
        }
        if (p->ndim >= want) { all1 &= p->ndim == 1; continue; }
        for (int k = 0; k < want - p->ndim; k++) { v.shape[v.ndim] = 1; v.src[v.ndim] = -1; v.ndim++; }
        for (int d = 0; d < p->ndim; d++) {
            v.shape[v.ndim] = p->shape[d];
            v.src[v.ndim] = (int8_t)d;
            v.step[v.ndim] = 1;
            v.ndim++;
        }
        ids[i] = tj_view(t, ids[i], &v);
    }
    int bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad |= ids[i] < 0;
    int axis = want == 3 ? 2 : want == 4 || (want == 1 && !all1) ? 1 : 0;
    PyObject *r = bad ? NULL : tj_concat_ids(t, ids, n, axis);
    PyMem_Free(ids);
    return in_dtype(t, r, kwargs);
}

/* r, of np.roll or np.pad: a 0-d one (the operand unchanged) is a 0-d array in NumPy,
 * even of a NumPy scalar. Steals r. */
static PyObject *as_array(tj_trace *t, PyObject *r) {
    if (!r || !tj_is_tracer(r) || t->g.nodes[((tj_tracer *)r)->id].ndim) return r;
    PyObject *a = tj_tracer_new(t, ((tj_tracer *)r)->id);   /* (r may be the operand) */
    Py_DECREF(r);
    return tj_tracer_np(a, TJ_NP_ARRAY);
}

PyObject *tj_assemble_roll(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                           PyObject *kwargs) {
    if (refuse_options(t, f, kwargs) < 0) return NULL;
    PyObject *shift = tj_arg(args, kwargs, 1, "shift", NULL), *axis = tj_arg(args, kwargs, 2, "axis", NULL);
    if (!shift) {
        PyErr_SetString(PyExc_TypeError, "roll() needs a shift");
        return NULL;
    }
    return as_array(t, roll(t, x, shift, axis ? axis : Py_None));
}

PyObject *tj_assemble_pad(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                          PyObject *kwargs) {
    if (refuse_options(t, f, kwargs) < 0) return NULL;
    PyObject *width = tj_arg(args, kwargs, 1, "pad_width", NULL);
    PyObject *mode = tj_arg(args, kwargs, 2, "mode", NULL);
    PyObject *value = kwargs ? PyDict_GetItemString(kwargs, "constant_values") : NULL;
    if (!width) {
        PyErr_SetString(PyExc_TypeError, "pad() needs pad_width");
        return NULL;
    }
    return as_array(t, pad(t, x, width, mode, value));
}
