/* out= of NumPy's reductions and products (np.sum, np.mean, np.max, np.cumsum, ...,
 * np.matmul, np.dot: reduce.c and contract.c call here). NumPy's own checks run first,
 * on stand-ins (python/tracejit/_impls_np.py, _out_probe: zeros of every traced
 * operand's shape and dtype, out a fresh array of its own), so a wrong shape, number of
 * dimensions or dtype raises NumPy's error, its type and wording. The value is then
 * computed as eager computes it (the caller picks the loop dtype NumPy resolves from
 * the operand and out), cast to out's dtype and written into out under
 * tj_tracer_assign's rule: out may be a view of an argument or alias an input (the
 * value is computed from the old contents, as NumPy's overlap copies do), and the call
 * returns out itself, as eager's does.
 * Contract: a result written here has out's shape (the probe refused every other). */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

PyObject *tj_out_tracer(tj_trace *t, PyObject *out, const char *fname) {
    if (PyTuple_Check(out) && PyTuple_GET_SIZE(out) == 1) out = PyTuple_GET_ITEM(out, 0);
    if (tj_is_tracer(out) && ((tj_tracer *)out)->trace == t) return out;
    return tj_trace_error(t->st, "numpy.%s(..., out=...) is not supported by tracejit where out "
                          "is not a traced array (a NumPy array made or read by the function, "
                          "which is not traced); use the returned value", fname);
}

int tj_out_probe(tj_trace *t, PyObject *fn, PyObject *args, PyObject *kwargs, PyObject *out) {
    PyObject *probe = t->st->py_impls ? PyDict_GetItemString(t->st->py_impls, "out=probe") : NULL;
    if (!probe) {
        tj_internal_error(t->st, "the out= probe (_impls_np._out_probe) is not registered");
        return -1;
    }
    /* out a NumPy scalar in eager (o[0, 0]): its stand-in is one, which NumPy refuses */
    PyObject *r = PyObject_CallFunctionObjArgs(probe, fn, args ? args : Py_None,
                                               kwargs ? kwargs : Py_None, out,
                                               tj_tracer_is_np_scalar(out) ? Py_True : Py_False,
                                               NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

PyObject *tj_out_promote(tj_trace *t, PyObject *x, PyObject *out) {
    int32_t a = tj_operand(t, x), b = a >= 0 ? tj_operand(t, out) : -1;
    if (b < 0) return NULL;
    return (PyObject *)PyArray_PromoteTypes((PyArray_Descr *)t->st->dtypes[t->g.nodes[a].dtype],
                                            (PyArray_Descr *)t->st->dtypes[t->g.nodes[b].dtype]);
}

PyObject *tj_out_write(tj_trace *t, PyObject *out, PyObject *res, const char *what) {
    int32_t o = tj_operand(t, out), r = o >= 0 ? tj_operand(t, res) : -1;
    if (r < 0) return NULL;
    int dt = t->g.nodes[o].dtype;
    PyObject *v = t->g.nodes[r].dtype == dt ? Py_NewRef(res) : tj_apply_cast(t, res, t->st->dtypes[dt]);
    PyObject *w = v ? tj_tracer_assign(out, v, what) : NULL;
    Py_XDECREF(v);
    return w;
}

/* Whether the array node id stands for is C-contiguous in eager (np.dot's out must be):
 * a computed value is; a leaf as its slot says; a view by its strides over a
 * C-contiguous base. */
int tj_out_c_contiguous(tj_trace *t, int32_t id) {
    const tj_node *n = &t->g.nodes[id];
    if (tj_ops[n->op].kind == TJ_K_LEAF) return n->slot >= 0 ? t->g.slots[n->slot].contig : 1;
    if (n->op != TJ_OP_VIEW) return 1;
    const tj_node *b = &t->g.nodes[n->in[0]];
    if (!tj_out_c_contiguous(t, n->in[0])) return 0;
    int64_t bstride[TJ_MAXDIM], s = 1;
    for (int d = b->ndim - 1; d >= 0; d--) {
        bstride[d] = s;
        s *= b->shape[d];
    }
    int64_t expect = 1;
    for (int d = n->ndim - 1; d >= 0; d--) {
        if (n->shape[d] == 1) continue;
        int64_t stride = n->flat ? n->vstep[d] : n->perm[d] >= 0 ? n->vstep[d] * bstride[n->perm[d]] : 0;
        if (stride != expect) return 0;
        expect *= n->shape[d];
    }
    return 1;
}
