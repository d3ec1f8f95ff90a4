/* Contractions at trace time: matmul, dot, vdot, inner, outer and tensordot become
 * views, a multiply and a sum over one axis: a @ b is sum(a[..., :, None, :] *
 * b^T[..., None, :, :], axis=-1). fuse.c recognizes that pattern and emits a call of
 * a GEMM primitive; anything else stays a fused reduction, correct at any size.
 * Contract: results have NumPy's shapes and dtypes (np.matmul.resolve_dtypes);
 * operands with too few dimensions raise NumPy's ValueError. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

static void dim(tj_viewspec *v, int64_t len, int src, int64_t step) {
    v->shape[v->ndim] = len;
    v->src[v->ndim] = (int8_t)src;
    v->step[v->ndim] = step;
    v->ndim++;
}

/* sum over the last axis of x[..., M, 1, K] * y[..., 1, N, K], cast to dtype */
static int32_t matmul_ids(tj_trace *t, int32_t a, int32_t b, int out_dtype) {
    const tj_node *x = &t->g.nodes[a], *y = &t->g.nodes[b];
    int nx = x->ndim, ny = y->ndim;
    tj_viewspec va, vb;
    memset(&va, 0, sizeof va);
    memset(&vb, 0, sizeof vb);
    for (int d = 0; d < nx - 2; d++) dim(&va, x->shape[d], d, 1);
    dim(&va, x->shape[nx - 2], nx - 2, 1);
    dim(&va, 1, -1, 0);
    dim(&va, x->shape[nx - 1], nx - 1, 1);
    for (int d = 0; d < ny - 2; d++) dim(&vb, y->shape[d], d, 1);
    dim(&vb, 1, -1, 0);
    dim(&vb, y->shape[ny - 1], ny - 1, 1);
    dim(&vb, y->shape[ny - 2], ny - 2, 1);
    if (va.ndim > TJ_MAXDIM || vb.ndim > TJ_MAXDIM) {
        tj_trace_error(t->st, "matmul of arrays with more than %d dimensions", TJ_MAXDIM - 2);
        return -1;
    }
    int32_t ia = tj_view(t, a, &va);
    int32_t ib = ia < 0 ? -1 : tj_view(t, b, &vb);
    if (ib < 0) return -1;
    PyObject *ta = tj_tracer_new(t, ia), *tb = ta ? tj_tracer_new(t, ib) : NULL;
    PyObject *args[2] = {ta, tb};
    PyObject *prod = tb ? tj_apply(t, TJ_OP_MUL, 2, args, NULL) : NULL;
    Py_XDECREF(ta);
    Py_XDECREF(tb);
    if (!prod) return -1;
    PyObject *axis = PyLong_FromLong(-1);
    PyObject *s = axis ? tj_apply_reduce(t, TJ_OP_RSUM, prod, axis, 0) : NULL;
    Py_XDECREF(axis);
    Py_DECREF(prod);
    if (!s) return -1;
    PyObject *r = tj_apply_cast(t, s, t->st->dtypes[out_dtype]);
    Py_DECREF(s);
    if (!r) return -1;
    int32_t id = ((tj_tracer *)r)->id;
    Py_DECREF(r);
    return id;
}

static int32_t expand(tj_trace *t, int32_t id, int where) {
    const tj_node *n = &t->g.nodes[id];
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    if (where == 0) dim(&v, 1, -1, 0);
    for (int d = 0; d < n->ndim; d++) dim(&v, n->shape[d], d, 1);
    if (where == 1) dim(&v, 1, -1, 0);
    return tj_view(t, id, &v);
}

/* Drops dim `d` (of size 1) from a result. */
static int32_t drop(tj_trace *t, int32_t id, int which) {
    const tj_node *n = &t->g.nodes[id];
    tj_viewspec v;
    memset(&v, 0, sizeof v);
    for (int d = 0; d < n->ndim; d++)
        if (d != which) dim(&v, n->shape[d], d, 1);
    return tj_view(t, id, &v);
}

static int result_dtype(tj_trace *t, int32_t a, int32_t b) {
    tj_state *st = t->st;
    PyObject *types = Py_BuildValue("(OOO)", st->dtypes[t->g.nodes[a].dtype],
                                    st->dtypes[t->g.nodes[b].dtype], Py_None);
    if (!types) return -1;
    PyObject *r = PyObject_CallMethod(st->numpy, "result_type", "OO", PyTuple_GET_ITEM(types, 0),
                                      PyTuple_GET_ITEM(types, 1));
    Py_DECREF(types);
    if (!r) return -1;
    int dt = PyArray_DescrCheck(r) ? tj_dtype_from_typenum(((PyArray_Descr *)r)->type_num) : -1;
    Py_DECREF(r);
    if (dt < 0) tj_trace_error(t->st, "matmul of these dtypes is not supported by tracejit");
    return dt;
}

PyObject *tj_matmul(tj_trace *t, PyObject *a, PyObject *b) {
    int32_t ia = tj_operand(t, a), ib = ia < 0 ? -1 : tj_operand(t, b);
    if (ib < 0) return NULL;
    int na = t->g.nodes[ia].ndim, nb = t->g.nodes[ib].ndim;
    if (na == 0 || nb == 0) {
        PyErr_Format(PyExc_ValueError, "matmul: Input operand %d does not have enough "
                     "dimensions (has 0, gufunc core with signature (n?,k),(k,m?)->(n?,m?) "
                     "requires 1)", na == 0 ? 0 : 1);
        return NULL;
    }
    int64_t ka = t->g.nodes[ia].shape[na - 1], kb = t->g.nodes[ib].shape[nb == 1 ? 0 : nb - 2];
    if (ka != kb) {
        PyErr_Format(PyExc_ValueError, "matmul: Input operand 1 has a mismatch in its core "
                     "dimension 0, with gufunc signature (n?,k),(k,m?)->(n?,m?) (size %lld is "
                     "different from %lld)", (long long)kb, (long long)ka);
        return NULL;
    }
    int dt = result_dtype(t, ia, ib);
    if (dt < 0) return NULL;
    int32_t xa = na == 1 ? expand(t, ia, 0) : ia;          /* (K,) -> (1, K) */
    int32_t xb = xa < 0 ? -1 : nb == 1 ? expand(t, ib, 1) : ib;   /* (K,) -> (K, 1) */
    if (xb < 0) return NULL;
    /* batch dims broadcast: check them the way NumPy does */
    tj_node ba = t->g.nodes[xa], bb = t->g.nodes[xb];
    ba.ndim -= 2;
    bb.ndim -= 2;
    int bnd;
    int64_t bshape[TJ_MAXDIM];
    if (tj_broadcast(t->st, &ba, &bb, &bnd, bshape) < 0) return NULL;
    int32_t r = matmul_ids(t, xa, xb, dt);
    if (r >= 0 && nb == 1) r = drop(t, r, t->g.nodes[r].ndim - 1);
    if (r >= 0 && na == 1) r = drop(t, r, t->g.nodes[r].ndim - (nb == 1 ? 1 : 2));
    /* a vector times a vector is a NumPy scalar (tensordot reshapes it into an array) */
    return r < 0 ? NULL : tj_tracer_np(tj_tracer_new(t, r), TJ_NP_SCALAR);
}

/* np.dot: matmul for 1-D and 2-D operands, a product with a 0-d operand. */
/* NumPy's message for np.dot/np.inner operands whose summed dims differ. */
static int not_aligned(tj_trace *t, int32_t ia, int32_t ib, int da, int db) {
    const tj_node *x = &t->g.nodes[ia], *y = &t->g.nodes[ib];
    if (x->shape[da] == y->shape[db]) return 0;
    char sa[256], sb[256];
    tj_shape_str(sa, sizeof sa, x->ndim, x->shape);
    tj_shape_str(sb, sizeof sb, y->ndim, y->shape);
    PyErr_Format(PyExc_ValueError, "shapes %s and %s not aligned: %lld (dim %d) != %lld (dim %d)",
                 sa, sb, (long long)x->shape[da], da, (long long)y->shape[db], db);
    return 1;
}

static PyObject *dot(tj_trace *t, PyObject *a, PyObject *b) {
    int32_t ia = tj_operand(t, a), ib = ia < 0 ? -1 : tj_operand(t, b);
    if (ib < 0) return NULL;
    int na = t->g.nodes[ia].ndim, nb = t->g.nodes[ib].ndim;
    if (na && nb && na <= 2 && nb <= 2 && not_aligned(t, ia, ib, na - 1, nb == 1 ? 0 : nb - 2))
        return NULL;
    if (na == 0 || nb == 0) {
        PyObject *args[2] = {a, b};
        return tj_apply(t, TJ_OP_MUL, 2, args, NULL);
    }
    if (na > 2 || nb > 2)
        return tj_trace_error(t->st, "numpy.dot of arrays with more than 2 dimensions is not "
                              "supported "
                              "by tracejit yet; use numpy.matmul or numpy.tensordot");
    return tj_matmul(t, a, b);
}

static PyObject *flat(tj_trace *t, PyObject *x) {
    PyObject *m1 = PyLong_FromLong(-1);
    PyObject *r = m1 ? tj_reshape(t, x, m1) : NULL;
    Py_XDECREF(m1);
    return r;
}

/* np.tensordot(a, b, axes): the contracted axes moved last in a and first in b,
 * both reshaped to matrices, a matmul, and the result reshaped. */
static PyObject *tensordot(tj_trace *t, PyObject *a, PyObject *b, PyObject *axes) {
    int32_t ia = tj_operand(t, a), ib = ia < 0 ? -1 : tj_operand(t, b);
    if (ib < 0) return NULL;
    tj_node x = t->g.nodes[ia], y = t->g.nodes[ib];
    int ca[TJ_MAXDIM], cb[TJ_MAXDIM], nc = 0;
    if (PyIndex_Check(axes)) {
        Py_ssize_t n = PyNumber_AsSsize_t(axes, PyExc_ValueError);
        if (n == -1 && PyErr_Occurred()) return NULL;
        if (n < 0 || n > x.ndim || n > y.ndim) {
            PyErr_SetString(PyExc_ValueError, "shape-mismatch for sum");
            return NULL;
        }
        for (int i = 0; i < n; i++) { ca[i] = x.ndim - (int)n + i; cb[i] = i; }
        nc = (int)n;
    } else {
        PyObject *pair = PySequence_Tuple(axes);
        if (!pair || PyTuple_GET_SIZE(pair) != 2) {
            Py_XDECREF(pair);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "axes must be an int or a pair");
            return NULL;
        }
        for (int s = 0; s < 2; s++) {
            PyObject *side = PyTuple_GET_ITEM(pair, s);
            PyObject *seq = PyIndex_Check(side) ? PyTuple_Pack(1, side) : PySequence_Tuple(side);
            if (!seq) { Py_DECREF(pair); return NULL; }
            int nd = s ? y.ndim : x.ndim;
            int *c = s ? cb : ca;
            if (PyTuple_GET_SIZE(seq) > TJ_MAXDIM) { Py_DECREF(seq); Py_DECREF(pair); return tj_trace_error(t->st, "too many axes"); }
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
                long v = PyLong_AsLong(PyTuple_GET_ITEM(seq, i));
                if (v == -1 && PyErr_Occurred()) { Py_DECREF(seq); Py_DECREF(pair); return NULL; }
                c[i] = (int)(v < 0 ? v + nd : v);
            }
            if (s == 0) nc = (int)PyTuple_GET_SIZE(seq);
            else if (nc != PyTuple_GET_SIZE(seq)) {
                Py_DECREF(seq); Py_DECREF(pair);
                PyErr_SetString(PyExc_ValueError, "shape-mismatch for sum");
                return NULL;
            }
            Py_DECREF(seq);
        }
        Py_DECREF(pair);
    }
    int used_a[TJ_MAXDIM] = {0}, used_b[TJ_MAXDIM] = {0}, pa[TJ_MAXDIM], pb[TJ_MAXDIM], k = 0;
    int64_t K = 1, Ma = 1, Nb = 1;
    for (int i = 0; i < nc; i++) {
        if (ca[i] < 0 || ca[i] >= x.ndim || cb[i] < 0 || cb[i] >= y.ndim ||
            x.shape[ca[i]] != y.shape[cb[i]] || used_a[ca[i]]++ || used_b[cb[i]]++) {
            PyErr_SetString(PyExc_ValueError, "shape-mismatch for sum");
            return NULL;
        }
        K *= x.shape[ca[i]];
    }
    PyObject *oshape = PyList_New(0);
    if (!oshape) return NULL;
    for (int d = 0; d < x.ndim; d++)
        if (!used_a[d]) {
            pa[k++] = d;
            Ma *= x.shape[d];
            PyObject *v = PyLong_FromLongLong(x.shape[d]);
            if (!v || PyList_Append(oshape, v) < 0) { Py_XDECREF(v); Py_DECREF(oshape); return NULL; }
            Py_DECREF(v);
        }
    for (int i = 0; i < nc; i++) pa[k++] = ca[i];
    k = 0;
    for (int i = 0; i < nc; i++) pb[k++] = cb[i];
    for (int d = 0; d < y.ndim; d++)
        if (!used_b[d]) {
            pb[k++] = d;
            Nb *= y.shape[d];
            PyObject *v = PyLong_FromLongLong(y.shape[d]);
            if (!v || PyList_Append(oshape, v) < 0) { Py_XDECREF(v); Py_DECREF(oshape); return NULL; }
            Py_DECREF(v);
        }
    PyObject *r = NULL, *ta = NULL, *tb = NULL, *ma = NULL, *mb = NULL, *sa = NULL, *sb = NULL;
    PyObject *perm_a = PyTuple_New(x.ndim), *perm_b = PyTuple_New(y.ndim);
    for (int d = 0; perm_a && d < x.ndim; d++) PyTuple_SET_ITEM(perm_a, d, PyLong_FromLong(pa[d]));
    for (int d = 0; perm_b && d < y.ndim; d++) PyTuple_SET_ITEM(perm_b, d, PyLong_FromLong(pb[d]));
    if (!perm_a || !perm_b) goto done;
    if (!(ta = tj_apply_transpose(t, a, perm_a)) || !(tb = tj_apply_transpose(t, b, perm_b))) goto done;
    if (!(sa = Py_BuildValue("(LL)", (long long)Ma, (long long)K)) ||
        !(sb = Py_BuildValue("(LL)", (long long)K, (long long)Nb)))
        goto done;
    if (!(ma = tj_reshape(t, ta, sa)) || !(mb = tj_reshape(t, tb, sb))) goto done;
    PyObject *m = tj_matmul(t, ma, mb);
    if (m) {
        r = tj_reshape(t, m, oshape);
        Py_DECREF(m);
    }
done:
    Py_XDECREF(perm_a); Py_XDECREF(perm_b); Py_XDECREF(ta); Py_XDECREF(tb);
    Py_XDECREF(sa); Py_XDECREF(sb); Py_XDECREF(ma); Py_XDECREF(mb); Py_DECREF(oshape);
    return r;
}

/* A Python scalar as np.asarray makes it: a strongly typed 0-d array. New reference. */
static PyObject *strong(PyObject *o) {
    if (!PyLong_CheckExact(o) && !PyFloat_CheckExact(o) && !PyBool_Check(o)) return Py_NewRef(o);
    return PyArray_FROM_O(o);
}

/* ---- the numpy functions (handlers of protocols.c's table) ------------------ */

/* The second operand (*b, borrowed) and the refusals every contraction shares. 0/-1.
 * out= (matmul's and dot's, a Tracer): NumPy's checks on stand-ins (write_out.c) and
 * *out the Tracer, borrowed; any other contraction's out= is refused by name. */
static int operands(tj_trace *t, const tj_npfunc *f, PyObject *a, PyObject *args,
                    PyObject *kwargs, PyObject **b, PyObject **out) {
    *b = PyTuple_GET_SIZE(args) > 1 ? PyTuple_GET_ITEM(args, 1) : NULL;
    *out = NULL;
    int dot = !strcmp(f->name, "dot");
    PyObject *o = dot && PyTuple_GET_SIZE(args) > 2 ? PyTuple_GET_ITEM(args, 2) : NULL;
    if (kwargs) {
        if (!*b) *b = PyDict_GetItemString(kwargs, "b");
        if (!o) o = PyDict_GetItemString(kwargs, "out");
    }
    if (o && o != Py_None) {
        if (!dot && strcmp(f->name, "matmul")) {
            tj_trace_error(t->st, "numpy.%s(..., out=...) is not supported by tracejit", f->name);
            return -1;
        }
        if (!(*out = tj_out_tracer(t, o, f->name))) return -1;
        PyObject *fn = PyObject_GetAttrString(t->st->numpy, f->name);
        int rc = fn ? tj_out_probe(t, fn, args, kwargs, *out) : -1;
        Py_XDECREF(fn);
        if (rc < 0) return -1;
        if (dot && !tj_out_c_contiguous(t, ((tj_tracer *)*out)->id)) {   /* NumPy's check */
            PyErr_SetString(PyExc_ValueError, "output array is not acceptable (must have the "
                            "right datatype, number of dimensions, and be a C-Array)");
            return -1;
        }
    }
    if (!a || !*b) {
        PyErr_Format(PyExc_TypeError, "%s() needs two arrays", f->name);
        return -1;
    }
    return 0;
}

/* r written into out (steals r): matmul's casting is same_kind, dot's out has r's dtype
 * (the probe refused any other). New reference to out. */
static PyObject *write_out(tj_trace *t, const tj_npfunc *f, PyObject *out, PyObject *r) {
    char what[48];
    snprintf(what, sizeof what, "numpy.%s(..., out=...)", f->name);
    PyObject *w = tj_write_out(out, r, what);
    Py_DECREF(r);
    return w;
}

/* dot, vdot, inner, outer and tensordot convert Python scalars with asarray, not as
 * the weak scalars of ufuncs: np.dot(float32_array, 2) is float64. `body` then gets
 * both as arrays or tracers. */
static PyObject *with_strong(tj_trace *t, const tj_npfunc *f, PyObject *a, PyObject *args,
                             PyObject *kwargs,
                             PyObject *(*body)(tj_trace *, const tj_npfunc *, PyObject *,
                                               PyObject *, PyObject *, PyObject *)) {
    PyObject *b, *out;
    if (operands(t, f, a, args, kwargs, &b, &out) < 0) return NULL;
    PyObject *sa = strong(a), *sb = sa ? strong(b) : NULL;
    PyObject *r = sb ? body(t, f, sa, sb, args, kwargs) : NULL;
    Py_XDECREF(sa);
    Py_XDECREF(sb);
    return r && out ? write_out(t, f, out, r) : r;
}

/* numpy.matmul as a ufunc (protocols.c's __array_ufunc__): Python scalars stay weak */
PyObject *tj_contract_matmul(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                             PyObject *kwargs) {
    PyObject *b, *out;
    if (operands(t, f, x, args, kwargs, &b, &out) < 0) return NULL;
    PyObject *r = tj_matmul(t, x, b);
    return r && out ? write_out(t, f, out, r) : r;
}

static PyObject *dot_body(tj_trace *t, const tj_npfunc *f, PyObject *a, PyObject *b,
                          PyObject *args, PyObject *kwargs) {
    return dot(t, a, b);
}

PyObject *tj_contract_dot(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                          PyObject *kwargs) {
    return with_strong(t, f, x, args, kwargs, dot_body);
}

/* vdot ('v'): the flattened operands' matmul; inner ('i'): over both last dims (a
 * product where one is 0-d); outer ('o'): a[:, None] * b[None, :] of the flattened */
static PyObject *inner_body(tj_trace *t, const tj_npfunc *f, PyObject *a, PyObject *b,
                            PyObject *args, PyObject *kwargs) {
    int vdot = f->arg == 'v', inner = f->arg == 'i';
    PyObject *fa = vdot || !inner ? flat(t, a) : Py_NewRef(a);
    PyObject *fb = fa ? (vdot || !inner ? flat(t, b) : Py_NewRef(b)) : NULL;
    PyObject *r = NULL;
    int32_t ia = fa ? tj_operand(t, fa) : -1, ib = fb ? tj_operand(t, fb) : -1;
    if (fb && inner && ia >= 0 && ib >= 0 &&
        (t->g.nodes[ia].ndim == 0 || t->g.nodes[ib].ndim == 0)) {   /* a scalar: a product */
        PyObject *ops[2] = {fa, fb};
        r = tj_apply(t, TJ_OP_MUL, 2, ops, NULL);
    } else if (fb && inner && ia >= 0 && ib >= 0 &&
               not_aligned(t, ia, ib, t->g.nodes[ia].ndim - 1, t->g.nodes[ib].ndim - 1)) {
        r = NULL;
    } else if (fb && inner) {
        PyObject *one = PyLong_FromLong(1);
        PyObject *spec = one ? Py_BuildValue("((i)(i))", -1, -1) : NULL;
        r = spec ? tensordot(t, fa, fb, spec) : NULL;
        Py_XDECREF(one);
        Py_XDECREF(spec);
    } else if (fb && vdot) {
        r = tj_matmul(t, fa, fb);
    } else if (fb) {   /* outer: a[:, None] * b[None, :] */
        PyObject *ka = Py_BuildValue("(OO)", Py_None, Py_None);
        PyObject *sl = PySlice_New(NULL, NULL, NULL);
        PyObject *ia = sl ? PyTuple_Pack(2, sl, Py_None) : NULL;
        PyObject *ib = sl ? PyTuple_Pack(2, Py_None, sl) : NULL;
        PyObject *xa = ia ? tj_getitem(t, fa, ia) : NULL;
        PyObject *xb = xa && ib ? tj_getitem(t, fb, ib) : NULL;
        if (xb) {
            PyObject *ops[2] = {xa, xb};
            r = tj_apply(t, TJ_OP_MUL, 2, ops, NULL);
        }
        Py_XDECREF(ka); Py_XDECREF(sl); Py_XDECREF(ia); Py_XDECREF(ib);
        Py_XDECREF(xa); Py_XDECREF(xb);
    }
    Py_XDECREF(fa);
    Py_XDECREF(fb);
    return tj_tracer_np(r, TJ_NP_SCALAR);   /* (through tensordot, whose result is an array) */
}

PyObject *tj_contract_inner(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                            PyObject *kwargs) {
    return with_strong(t, f, x, args, kwargs, inner_body);
}

static PyObject *tensordot_body(tj_trace *t, const tj_npfunc *f, PyObject *a, PyObject *b,
                                PyObject *args, PyObject *kwargs) {
    PyObject *axes = PyTuple_GET_SIZE(args) > 2 ? PyTuple_GET_ITEM(args, 2)
                     : kwargs && PyDict_GetItemString(kwargs, "axes") ? PyDict_GetItemString(kwargs, "axes")
                     : NULL;
    PyObject *two = axes ? NULL : PyLong_FromLong(2);
    PyObject *r = tensordot(t, a, b, axes ? axes : two);
    Py_XDECREF(two);
    return r;
}

PyObject *tj_contract_tensordot(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                                PyObject *kwargs) {
    return with_strong(t, f, x, args, kwargs, tensordot_body);
}
