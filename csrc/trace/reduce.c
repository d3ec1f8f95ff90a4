/* Reductions at trace time: axis handling, result dtypes, and the NumPy functions
 * and methods built on the six reduction ops (sum, prod, max, min, argmax, argmin):
 * mean, var, std, any and all are compositions, so they fuse like everything else.
 * Contract: a RED node's shape is its result's (keepdims or not); `axes` names the
 * reduced dims of its operand; reductions NumPy refuses (max of an empty array,
 * argmax over a tuple of axes) raise NumPy's exception here, at trace time. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* axis (None, int or tuple of ints) -> bitmask of dims of an ndim-array. */
/* `single`: one axis only (argmax); `ufunc`: a ufunc reduction, which (unlike mean and
 * var) lets a 0-d array reduce over axis 0 or -1, as NumPy does. */
static int parse_axes(PyObject *axis, int ndim, int single, int ufunc, uint32_t *mask) {
    *mask = 0;
    if (axis == Py_None) {
        *mask = ndim ? (uint32_t)((1ull << ndim) - 1) : 0;
        return 0;
    }
    if (ufunc && ndim == 0 && PyIndex_Check(axis)) {
        long a = PyLong_AsLong(axis);
        if (a == -1 && PyErr_Occurred()) return -1;
        if (a == 0 || a == -1) return 0;
    }
    if (single && PyTuple_Check(axis)) {   /* argmax/argmin take one axis, never a tuple */
        PyErr_SetString(PyExc_TypeError, "'tuple' object cannot be interpreted as an integer");
        return -1;
    }
    PyObject *seq = PyTuple_Check(axis) ? Py_NewRef(axis) : PyTuple_Pack(1, axis);
    if (!seq) return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        PyObject *a = PyTuple_GET_ITEM(seq, i);
        long v = PyLong_AsLong(a);
        if (v == -1 && PyErr_Occurred()) { Py_DECREF(seq); return -1; }
        if (v < -ndim || v >= ndim) { Py_DECREF(seq); return tj_axis_error(v, ndim); }
        if (v < 0) v += ndim;
        if (*mask >> v & 1) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "duplicate value in 'axis'");
            return -1;
        }
        *mask |= 1u << v;
    }
    Py_DECREF(seq);
    return 0;
}

/* NumPy's name in its empty-reduction errors: argmax's own, max's ufunc's (maximum) */
static const char *numpy_reduce_name(int op) {
    return tj_ops[op].flags & TJ_F_INDEX ? tj_ops[op].numpy : tj_ops[tj_ops[op].comb].numpy;
}

/* torch sums and multiplies its unsigned integers in int64 (NumPy: uint64, the op
 * table's rule): such an operand is cast first. -1 + error. */
static int32_t torch_wide_operand(tj_trace *t, int op, int32_t id) {
    const tj_node *x = &t->g.nodes[id];
    if (!t->torch || tj_ops[op].acc != TJ_ACC_WIDE || !tj_dtype_is_unsigned(x->dtype)) return id;
    int32_t r = tj_trace_add_over(t, id, TJ_OP_CAST, 0);
    if (r >= 0) t->g.nodes[r].dtype = TJ_I64;
    return r;
}

static int32_t reduce_id(tj_trace *t, int op, int32_t id, uint32_t mask, int keepdims,
                         int allow_empty) {
    if ((id = torch_wide_operand(t, op, id)) < 0) return -1;
    const tj_node *x = &t->g.nodes[id];
    int64_t count = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask >> d & 1) count *= x->shape[d];
    /* NumPy's identities are 0 and 1; max and min start from the dtype's extreme */
    int identity = tj_ops[op].ident == TJ_ID_ZERO || tj_ops[op].ident == TJ_ID_ONE;
    if (count == 0 && !identity && !allow_empty) {
        if (tj_ops[op].flags & TJ_F_INDEX)
            PyErr_Format(PyExc_ValueError, "attempt to get %s of an empty sequence",
                         numpy_reduce_name(op));
        else
            PyErr_Format(PyExc_ValueError, "zero-size array to reduction operation %s which "
                         "has no identity", numpy_reduce_name(op));
        return -1;
    }
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = (int16_t)op;
    n.dtype = (uint8_t)tj_red_out_dtype(op, x->dtype);
    n.in[0] = id;
    n.in[1] = n.in[2] = -1;
    n.slot = -1;
    n.axes = mask;
    int k = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!(mask >> d & 1)) n.shape[k++] = x->shape[d];
        else if (keepdims) n.shape[k++] = 1;
    }
    n.ndim = (uint8_t)k;
    return tj_trace_add_node(t, &n);
}

PyObject *tj_apply_reduce(tj_trace *t, int op, PyObject *x, PyObject *axis, int keepdims) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    uint32_t mask;
    int arg = (tj_ops[op].flags & TJ_F_INDEX) != 0;
    if (parse_axes(axis, t->g.nodes[id].ndim, arg, 1, &mask) < 0) return NULL;
    int32_t r = reduce_id(t, op, id, mask, keepdims, 0);
    return r < 0 ? NULL : tj_tracer_new(t, r);
}

/* ---- the NumPy signatures ------------------------------------------------------ */

typedef struct {
    PyObject *axis, *dtype, *keepdims, *ddof, *out;
} red_args;

/* Binds numpy's (a, axis, dtype, out, ...) arguments by position and keyword. The
 * parameters tracejit cannot honour raise TraceError naming them. */
static int bind(tj_trace *t, const char *name, const char *const *params, PyObject *args,
                PyObject *kwargs, int method, red_args *r) {
    Py_ssize_t skip = method ? 0 : 1, np = 0;
    while (params[np]) np++;
    r->axis = r->dtype = r->keepdims = r->ddof = r->out = NULL;
    PyObject *vals[8] = {0};
    for (Py_ssize_t i = skip; args && i < PyTuple_GET_SIZE(args); i++) {
        if (i - skip >= np) {
            PyErr_Format(PyExc_TypeError, "%s() takes at most %zd positional arguments", name,
                         np + skip);
            return -1;
        }
        vals[i - skip] = PyTuple_GET_ITEM(args, i);
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (kwargs && PyDict_Next(kwargs, &pos, &k, &v)) {
        Py_ssize_t j = 0;
        for (; j < np; j++)
            if (PyUnicode_CompareWithASCIIString(k, params[j]) == 0) break;
        if (j < np) { vals[j] = v; continue; }
        if (PyUnicode_CompareWithASCIIString(k, "a") == 0 && !method) continue;
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", name, k);
        return -1;
    }
    for (Py_ssize_t j = 0; j < np; j++) {
        PyObject *val = vals[j];
        if (!val) continue;
        const char *p = params[j];
        if (!strcmp(p, "axis")) r->axis = val;
        else if (!strcmp(p, "dtype")) r->dtype = val;
        else if (!strcmp(p, "keepdims")) r->keepdims = val;
        else if (!strcmp(p, "ddof")) r->ddof = val;
        else if (!strcmp(p, "out")) r->out = val != Py_None ? val : NULL;
        else if (!strcmp(p, "where") && val == Py_True) continue;
        else if (val != Py_None) {
            tj_trace_error(t->st, "numpy.%s(..., %s=...) is not supported by tracejit yet", name, p);
            return -1;
        }
    }
    return 0;
}

static PyObject *cast_if(tj_trace *t, PyObject *x, PyObject *dtype) {
    if (!dtype || dtype == Py_None) return Py_NewRef(x);
    return tj_apply_cast(t, x, dtype);
}

static PyObject *binop_int(tj_trace *t, int op, PyObject *x, long long v) {
    PyObject *n = PyLong_FromLongLong(v);
    if (!n) return NULL;
    PyObject *args[2] = {x, n};
    PyObject *r = tj_apply(t, op, 2, args, NULL);
    Py_DECREF(n);
    return r;
}

static long long reduced_count(tj_trace *t, PyObject *x, PyObject *axis, int64_t *count) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return -1;
    const tj_node *n = &t->g.nodes[id];
    uint32_t mask;
    if (parse_axes(axis, n->ndim, 0, 0, &mask) < 0) return -1;
    *count = 1;
    for (int d = 0; d < n->ndim; d++)
        if (mask >> d & 1) *count *= n->shape[d];
    return 0;
}

/* mean = sum / count; NumPy computes the mean of ints and bools in float64. */
static PyObject *mean(tj_trace *t, PyObject *x, PyObject *axis, int keepdims, PyObject *dtype) {
    int64_t count;
    if (reduced_count(t, x, axis, &count) < 0) return NULL;
    PyObject *xc = cast_if(t, x, dtype);
    if (!xc) return NULL;
    int32_t id = tj_operand(t, xc);
    if (id >= 0 && t->g.nodes[id].dtype < TJ_F32) {
        Py_SETREF(xc, tj_apply_cast(t, xc, t->st->dtypes[TJ_F64]));
        if (!xc) return NULL;
    }
    PyObject *s = tj_apply_reduce(t, TJ_OP_RSUM, xc, axis, keepdims);
    Py_DECREF(xc);
    if (!s) return NULL;
    PyObject *r = binop_int(t, TJ_OP_DIV, s, count);
    Py_DECREF(s);
    return r;
}

/* var = sum((x - mean)^2) / max(count - ddof, 0); std = sqrt(var). */
static PyObject *variance(tj_trace *t, PyObject *x, PyObject *axis, int keepdims, PyObject *dtype,
                          long long ddof, int take_sqrt) {
    int64_t count;
    if (reduced_count(t, x, axis, &count) < 0) return NULL;
    PyObject *m = mean(t, x, axis, 1, dtype);
    if (!m) return NULL;
    PyObject *args[2] = {x, m};
    PyObject *d = tj_apply(t, TJ_OP_SUB, 2, args, NULL);
    Py_DECREF(m);
    if (!d) return NULL;
    PyObject *sq = tj_apply(t, TJ_OP_SQUARE, 1, &d, NULL);
    Py_DECREF(d);
    if (!sq) return NULL;
    PyObject *s = tj_apply_reduce(t, TJ_OP_RSUM, sq, axis, keepdims);
    Py_DECREF(sq);
    if (!s) return NULL;
    long long div = count - ddof > 0 ? count - ddof : 0;
    PyObject *v = binop_int(t, TJ_OP_DIV, s, div);
    Py_DECREF(s);
    if (!v || !take_sqrt) return v;
    PyObject *r = tj_apply(t, TJ_OP_SQRT, 1, &v, NULL);
    Py_DECREF(v);
    return r;
}

/* any/all: a max/min over the truth values (NaN is true). */
static PyObject *truth(tj_trace *t, int op, PyObject *x, PyObject *axis, int keepdims) {
    PyObject *b = tj_apply_cast(t, x, t->st->dtypes[TJ_BOOL]);
    if (!b) return NULL;
    int32_t id = tj_operand(t, b);
    uint32_t mask;
    PyObject *r = NULL;
    if (id >= 0 && parse_axes(axis, t->g.nodes[id].ndim, 0, 1, &mask) == 0) {
        int32_t rid = reduce_id(t, op, id, mask, keepdims, 1);
        r = rid < 0 ? NULL : tj_tracer_new(t, rid);
    }
    Py_DECREF(b);
    return r;
}

/* cumsum/cumprod(a, axis=None, dtype=None, out=None): NumPy's dtype (ints and bools
 * accumulate in int64), the input cast to it, a running sum or product along axis. */
static PyObject *scan(tj_trace *t, int op, PyObject *x, PyObject *axis, PyObject *dtype) {
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    PyObject *xc;
    if (axis == Py_None || t->g.nodes[id].ndim == 0) {   /* NumPy scans a 0-d array as 1-d */
        PyObject *m1 = PyLong_FromLong(-1);
        xc = m1 ? tj_reshape(t, x, m1) : NULL;
        Py_XDECREF(m1);
        if (axis == Py_None) axis = NULL;
    } else {
        xc = Py_NewRef(x);
    }
    if (!xc) return NULL;
    id = tj_operand(t, xc);
    int nd = id >= 0 ? t->g.nodes[id].ndim : 0, ax = 0;
    uint32_t mask = 0;
    if (id >= 0 && axis && parse_axes(axis, nd, 1, 0, &mask) == 0)
        while (!(mask >> ax & 1)) ax++;
    if (id < 0 || PyErr_Occurred()) { Py_DECREF(xc); return NULL; }
    int in_dt = t->g.nodes[id].dtype, dt;
    if (dtype && dtype != Py_None) {
        PyArray_Descr *d = NULL;
        if (!PyArray_DescrConverter(dtype, &d)) { Py_DECREF(xc); return NULL; }
        dt = tj_dtype_from_typenum(d->type_num);
        Py_DECREF(d);
        if (dt < 0) {
            Py_DECREF(xc);
            return tj_trace_error(t->st, "%s(dtype=%R): tracejit does not support that dtype "
                                  "(supported: " TJ_SUPPORTED_DTYPES ")", tj_ops[op].numpy, dtype);
        }
    } else {   /* NumPy's: sums of small ints in int64 or uint64; torch's: int64 */
        dt = tj_red_out_dtype(TJ_OP_RSUM, in_dt);
        if (t->torch && dt == TJ_U64) dt = TJ_I64;
    }
    PyObject *xd = tj_apply_cast(t, xc, t->st->dtypes[dt]);
    Py_DECREF(xc);
    if (!xd) return NULL;
    int32_t src = ((tj_tracer *)xd)->id;
    Py_DECREF(xd);
    int32_t r = tj_trace_add_over(t, src, op, (uint32_t)ax);
    return r < 0 ? NULL : tj_tracer_new(t, r);
}

static const char *const p_sum[] = {"axis", "dtype", "out", "keepdims", "initial", "where", NULL};
static const char *const p_max[] = {"axis", "out", "keepdims", "initial", "where", NULL};
static const char *const p_arg[] = {"axis", "out", "keepdims", NULL};
static const char *const p_mean[] = {"axis", "dtype", "out", "keepdims", "where", NULL};
static const char *const p_var[] = {"axis", "dtype", "out", "ddof", "keepdims", "where", "mean",
                                    "correction", NULL};
static const char *const p_any[] = {"axis", "out", "keepdims", "where", NULL};
static const char *const p_scan[] = {"axis", "dtype", "out", NULL};

/* Per kind (TJ_RED_*): the name messages spell, the parameters after the array, and
 * the reduction op (-1 for the compositions, which switch on the kind) */
static const struct { const char *name; const char *const *params; int op; } reductions[TJ_NRED] = {
    [TJ_RED_SUM] = {"sum", p_sum, TJ_OP_RSUM}, [TJ_RED_PROD] = {"prod", p_sum, TJ_OP_RPROD},
    [TJ_RED_MAX] = {"max", p_max, TJ_OP_RMAX}, [TJ_RED_AMAX] = {"amax", p_max, TJ_OP_RMAX},
    [TJ_RED_MIN] = {"min", p_max, TJ_OP_RMIN}, [TJ_RED_AMIN] = {"amin", p_max, TJ_OP_RMIN},
    [TJ_RED_ARGMAX] = {"argmax", p_arg, TJ_OP_RARGMAX},
    [TJ_RED_ARGMIN] = {"argmin", p_arg, TJ_OP_RARGMIN},
    [TJ_RED_MEAN] = {"mean", p_mean, -1}, [TJ_RED_VAR] = {"var", p_var, -1},
    [TJ_RED_STD] = {"std", p_var, -1}, [TJ_RED_ANY] = {"any", p_any, -1},
    [TJ_RED_ALL] = {"all", p_any, -1}, [TJ_RED_CUMSUM] = {"cumsum", p_scan, -1},
    [TJ_RED_CUMPROD] = {"cumprod", p_scan, -1},
};

/* np.mean(..., out=o) as NumPy's _mean: the sum (in dtype; else float64 for ints and
 * bools, float32 for float16, else the loop dtype of x and out) cast into out's dtype,
 * then divided by the count in float64 (true_divide(out, intp)) and cast again. */
static PyObject *mean_out(tj_trace *t, PyObject *x, PyObject *axis, int keepdims,
                          PyObject *dtype, PyObject *out) {
    int64_t count;
    if (reduced_count(t, x, axis, &count) < 0) return NULL;
    int32_t xi = tj_operand(t, x), oi = xi >= 0 ? tj_operand(t, out) : -1;
    if (oi < 0) return NULL;
    int xdt = t->g.nodes[xi].dtype, odt = t->g.nodes[oi].dtype;
    PyObject *d = dtype ? Py_NewRef(dtype) : xdt < TJ_F32 ? Py_NewRef(t->st->dtypes[TJ_F64])
                : xdt == TJ_F16 ? Py_NewRef(t->st->dtypes[TJ_F32]) : tj_out_promote(t, x, out);
    PyObject *xc = d ? tj_apply_cast(t, x, d) : NULL;
    PyObject *s = xc ? tj_apply_reduce(t, TJ_OP_RSUM, xc, axis, keepdims) : NULL;
    Py_XDECREF(d);
    Py_XDECREF(xc);
    if (s) Py_SETREF(s, tj_apply_cast(t, s, t->st->dtypes[odt]));
    if (s) Py_SETREF(s, tj_apply_cast(t, s, t->st->dtypes[TJ_F64]));
    PyObject *r = s ? binop_int(t, TJ_OP_DIV, s, count) : NULL;
    Py_XDECREF(s);
    return r;
}

/* What eager runs for a call with out= (the probe's function): numpy.NAME, ndarray.NAME
 * (a method: *pargs is x then args) or the ufunc's reduce. New references. */
static PyObject *eager_fn(tj_trace *t, int kind, PyObject *x, PyObject *args, int method,
                          PyObject **pargs) {
    static const char *const ufuncs[TJ_NRED] = {[TJ_RED_SUM] = "add", [TJ_RED_PROD] = "multiply",
                                                [TJ_RED_MAX] = "maximum", [TJ_RED_MIN] = "minimum"};
    const char *name = reductions[kind].name;
    PyObject *f, *none = PyTuple_New(0);
    if (!none) return NULL;
    if (!args) args = none;
    if (method == 2) {
        if (!ufuncs[kind]) {
            Py_DECREF(none);
            return tj_trace_error(t->st, "numpy's ufunc.reduce(..., out=...) of this ufunc is not "
                                  "supported by tracejit yet; use the returned value");
        }
        PyObject *u = PyObject_GetAttrString(t->st->numpy, ufuncs[kind]);
        f = u ? PyObject_GetAttrString(u, "reduce") : NULL;
        Py_XDECREF(u);
        *pargs = Py_NewRef(args);
    } else if (method == 1) {
        f = PyObject_GetAttrString(t->st->ndarray_type, name);
        PyObject *head = PyTuple_Pack(1, x);
        *pargs = head ? PySequence_Concat(head, args) : NULL;
        Py_XDECREF(head);
    } else {
        f = PyObject_GetAttrString(t->st->numpy, name);
        *pargs = Py_NewRef(args);
    }
    Py_DECREF(none);
    if (!f || !*pargs) { Py_XDECREF(f); Py_CLEAR(*pargs); return NULL; }
    return f;
}

/* out= (a Tracer): NumPy's checks on stand-ins (write_out.c), and the dtype NumPy's loop
 * takes where no dtype is given (sums, products, extrema, scans: x's and out's
 * promoted; *promoted a new reference or NULL). Borrowed out, or NULL. */
static PyObject *bind_out(tj_trace *t, int kind, PyObject *x, PyObject *args, PyObject *kwargs,
                          int method, PyObject *given, PyObject *dtype, PyObject **promoted) {
    const char *name = reductions[kind].name;
    *promoted = NULL;
    if (kind == TJ_RED_VAR || kind == TJ_RED_STD)
        return tj_trace_error(t->st, "numpy.%s(..., out=...) is not supported by tracejit yet; "
                              "use the returned value", name);
    PyObject *out = tj_out_tracer(t, given, name), *pargs = NULL;
    PyObject *fn = out ? eager_fn(t, kind, x, args, method, &pargs) : NULL;
    int rc = fn ? tj_out_probe(t, fn, pargs, kwargs, out) : -1;
    Py_XDECREF(fn);
    Py_XDECREF(pargs);
    if (rc < 0) return NULL;
    int loop = kind != TJ_RED_MEAN && kind != TJ_RED_ANY && kind != TJ_RED_ALL &&
               kind != TJ_RED_ARGMAX && kind != TJ_RED_ARGMIN;
    if (loop && !dtype && !(*promoted = tj_out_promote(t, x, out))) return NULL;
    return out;
}

PyObject *tj_reduction_call(tj_trace *t, int kind, PyObject *x, PyObject *args,
                            PyObject *kwargs, int method) {
    if (kind < 0 || kind >= TJ_NRED) return tj_internal_error(t->st, "unknown reduction %d", kind);
    const char *name = reductions[kind].name;
    red_args r;
    /* ufunc.reduce (method 2) has one signature for every ufunc */
    if (bind(t, name, method == 2 ? p_sum : reductions[kind].params, args, kwargs, method == 1,
             &r) < 0)
        return NULL;
    PyObject *axis = r.axis ? r.axis : Py_None;
    int keepdims = r.keepdims ? PyObject_IsTrue(r.keepdims) : 0;
    if (keepdims < 0) return NULL;
    PyObject *dtype = r.dtype && r.dtype != Py_None ? r.dtype : NULL, *promoted = NULL, *out = NULL;
    if (r.out && !(out = bind_out(t, kind, x, args, kwargs, method, r.out, dtype, &promoted)))
        return NULL;
    if (promoted) dtype = promoted;
    int op = reductions[kind].op;
    PyObject *res;
    switch (kind) {
    case TJ_RED_MEAN:
        res = out ? mean_out(t, x, axis, keepdims, dtype, out) : mean(t, x, axis, keepdims, dtype);
        break;
    case TJ_RED_CUMSUM: case TJ_RED_CUMPROD:
        res = scan(t, kind == TJ_RED_CUMSUM ? TJ_OP_CUMSUM : TJ_OP_CUMPROD, x, axis, dtype);
        dtype = NULL;   /* scan computes in it */
        break;
    case TJ_RED_ANY: case TJ_RED_ALL:
        res = truth(t, kind == TJ_RED_ANY ? TJ_OP_RMAX : TJ_OP_RMIN, x, axis, keepdims);
        break;
    case TJ_RED_VAR: case TJ_RED_STD: {
        long long ddof = r.ddof ? PyLong_AsLongLong(r.ddof) : 0;
        if (ddof == -1 && PyErr_Occurred()) return NULL;
        PyObject *xc = cast_if(t, x, dtype);   /* NumPy computes var in the given dtype */
        if (!xc) return NULL;
        res = variance(t, xc, axis, keepdims, dtype, ddof, kind == TJ_RED_STD);
        Py_DECREF(xc);
        break;
    }
    default: {
        PyObject *xc = cast_if(t, x, dtype);
        if (!xc) { Py_XDECREF(promoted); return NULL; }
        res = tj_apply_reduce(t, op, xc, axis, keepdims);
        Py_DECREF(xc);
    }
    }
    /* With dtype=, NumPy reduces in and returns that dtype (sum(int32, dtype=int32) is
     * int32, wrapping; a mean in an integer dtype truncates). */
    if (res && dtype && !(out && kind == TJ_RED_MEAN) &&
        (op < 0 || !(tj_ops[op].flags & TJ_F_INDEX)))
        Py_SETREF(res, tj_apply_cast(t, res, dtype));
    Py_XDECREF(promoted);
    if (res && out) {
        char what[64];
        snprintf(what, sizeof what, "numpy.%s(..., out=...)", name);
        Py_SETREF(res, tj_out_write(t, out, res, what));
    }
    return res;
}

/* The numpy functions (handler of protocols.c's table; the datum is the kind) */
PyObject *tj_reduce_np(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                       PyObject *kwargs) {
    return tj_reduction_call(t, f->arg, x, args, kwargs, 0);
}
