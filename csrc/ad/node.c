/* Autodiff's window on the graph. Reverse mode (python/tracejit/_grad.py) walks the
 * traced graph backwards from a tracer and appends adjoint nodes with the same
 * tracer operations user code calls, so the backward graph is ordinary nodes that
 * the passes fuse and plan like any other (and that can be differentiated again).
 * This file only reads nodes, marks differentiation sources and makes detached copies.
 * Contract: nothing here changes an existing node. A source is a fresh node equal to
 * the value (a duplicate of its node: same op, operands and slot; a COPY of a view,
 * and of anything inside an enclosing grad),
 * so a gradient with respect to a value is never confused with one of an outer grad
 * that differentiates the same value; CSE merges the duplicate back afterwards. */
#include "tracejit.h"

static tj_tracer *as_tracer(PyObject *o) {
    if (!tj_is_tracer(o)) {
        PyErr_Format(PyExc_TypeError, "expected a Tracer, got %s", Py_TYPE(o)->tp_name);
        return NULL;
    }
    tj_tracer *x = (tj_tracer *)o;
    if (!x->trace->live) {
        tj_trace_error(x->trace->st, "a tracer escaped its trace: a traced value was stored and "
                       "used "
                       "after the compiled function returned");
        return NULL;
    }
    return x;
}

static PyObject *int_tuple8(const int8_t *v, int n) {
    PyObject *r = PyTuple_New(n);
    for (int i = 0; r && i < n; i++) {
        PyObject *x = PyLong_FromLong(v[i]);
        if (!x) { Py_CLEAR(r); break; }
        PyTuple_SET_ITEM(r, i, x);
    }
    return r;
}

static PyObject *int_tuple64(const int64_t *v, int n) {
    PyObject *r = PyTuple_New(n);
    for (int i = 0; r && i < n; i++) {
        PyObject *x = PyLong_FromLongLong(v[i]);
        if (!x) { Py_CLEAR(r); break; }
        PyTuple_SET_ITEM(r, i, x);
    }
    return r;
}

/* _ad_node(tracer, id=-1) -> (id, op name, operands, axes, flat, perm, vstep, voff)
 * for node `id` of tracer's trace (the tracer's own node when id < 0). operands is a
 * tuple of (id, Tracer) pairs; perm/vstep/voff are those of a VIEW, per output dim
 * (voff per operand dim; voff[0] counts elements when flat). New reference. */
static PyObject *ad_node(PyObject *mod, PyObject *args) {
    PyObject *o;
    long id = -1;
    if (!PyArg_ParseTuple(args, "O|l:_ad_node", &o, &id)) return NULL;
    tj_tracer *x = as_tracer(o);
    if (!x) return NULL;
    tj_trace *t = x->trace;
    if (id < 0) id = x->id;
    if (id >= t->g.n) return tj_internal_error(t->st, "_ad_node: node %ld of %d", id, (int)t->g.n);
    const tj_node *n = &t->g.nodes[id];
    int arity = tj_ops[n->op].arity;
    PyObject *ins = PyTuple_New(arity);
    for (int k = 0; ins && k < arity; k++) {
        PyObject *tr = tj_tracer_new(t, n->in[k]);
        PyObject *pair = tr ? Py_BuildValue("(iN)", (int)n->in[k], tr) : NULL;
        if (!pair) { Py_CLEAR(ins); break; }
        PyTuple_SET_ITEM(ins, k, pair);
    }
    if (!ins) return NULL;
    int nv = n->op == TJ_OP_VIEW ? n->ndim : 0;
    int in_ndim = n->op == TJ_OP_VIEW ? t->g.nodes[n->in[0]].ndim : 0;
    return Py_BuildValue("(lsNkiNNN)", id, tj_ops[n->op].name, ins, (unsigned long)n->axes,
                         (int)n->flat, int_tuple8(n->perm, nv), int_tuple64(n->vstep, nv),
                         int_tuple64(n->voff, n->flat ? 1 : in_ndim));
}

/* _ad_source(tracer, value, linked=False) -> a Tracer for a fresh node equal to `value`
 * (a Tracer of the same trace, or an array or scalar, which is captured): the node a
 * gradient is taken with respect to. `linked`: the source must depend on `value` (an
 * enclosing grad differentiates through it). New reference. */
static PyObject *ad_source(PyObject *mod, PyObject *args) {
    PyObject *o, *v;
    int linked = 0;
    if (!PyArg_ParseTuple(args, "OO|p:_ad_source", &o, &v, &linked)) return NULL;
    tj_tracer *x = as_tracer(o);
    if (!x) return NULL;
    tj_trace *t = x->trace;
    int32_t id = tj_operand(t, v);
    if (id < 0) return NULL;
    /* the tracer composes views with their operand's view: a view of this source
     * would read its base directly, so a view source is a COPY; so is any source
     * when an enclosing grad differentiates through it (a duplicate would bypass
     * the original, which may be that grad's own source) */
    tj_node n = t->g.nodes[id];   /* a copy: adding may move the node array */
    int32_t r = n.op == TJ_OP_VIEW || linked ? tj_trace_add_over(t, id, TJ_OP_COPY, 0)
                                             : tj_trace_add_node(t, &n);
    return r < 0 ? NULL : tj_tracer_new(t, r);
}

/* _ad_detach(tracer) -> a Tracer for a COPY of it marked TJ_COPY_DETACH: the value
 * autodiff's walk (_grad.vjp_trace) does not differentiate through, as torch's
 * Tensor.detach (and jax's stop_gradient). A mark on an ordinary COPY, not an op of
 * its own: the passes need to know nothing of it, and it costs nothing once traced. */
static PyObject *ad_detach(PyObject *mod, PyObject *o) {
    tj_tracer *x = as_tracer(o);
    if (!x) return NULL;
    int32_t r = tj_trace_add_over(x->trace, x->id, TJ_OP_COPY, TJ_COPY_DETACH);
    return r < 0 ? NULL : tj_tracer_new(x->trace, r);
}

/* _python_number(tracer) -> a Tracer for a detached copy of a 0-d float64 or int64
 * tracer that computes as a Python number (weak: torch's and NumPy's promotion treat it
 * as a float or int, and a result that is one comes back as a Python number). What
 * eager's x.item() gives where the value must stay in the graph: Pyro's torch_item of a
 * loss that depends on fresh draws, summed into the reported loss. */
static PyObject *python_number(PyObject *mod, PyObject *o) {
    tj_tracer *x = as_tracer(o);
    if (!x) return NULL;
    const tj_node *n = &x->trace->g.nodes[x->id];
    if (n->ndim || (n->dtype != TJ_F64 && n->dtype != TJ_I64)) {
        PyErr_SetString(PyExc_TypeError, "_python_number takes a 0-d float64 or int64 tracer");
        return NULL;
    }
    int32_t r = tj_trace_add_over(x->trace, x->id, TJ_OP_COPY, TJ_COPY_DETACH);
    if (r < 0) return NULL;
    x->trace->g.nodes[r].weak = 1;
    return tj_tracer_np(tj_tracer_new(x->trace, r), TJ_NP_PYTHON);
}

/* _is_python_number(o) -> whether o is a Tracer of a Python int or float (an argument's,
 * or what Python's operators made of them): eager's value is no tensor. */
static PyObject *is_python_number(PyObject *mod, PyObject *o) {
    return PyBool_FromLong(tj_is_tracer(o) && tj_tracer_is_np_scalar(o) == 2);
}

/* _ad_op_names() -> the names of every op in the table, in table order. */
static PyObject *ad_op_names(PyObject *mod, PyObject *unused) {
    PyObject *r = PyTuple_New(TJ_NOPS);
    for (int i = 0; r && i < TJ_NOPS; i++) {
        PyObject *s = PyUnicode_FromString(tj_ops[i].name);
        if (!s) { Py_CLEAR(r); break; }
        PyTuple_SET_ITEM(r, i, s);
    }
    return r;
}

static PyMethodDef ad_methods[] = {
    {"_ad_op_names", ad_op_names, METH_NOARGS, "autodiff: every op's name (rule coverage)"},
    {"_ad_node", ad_node, METH_VARARGS, "autodiff: a traced node's op, operands and layout"},
    {"_ad_source", ad_source, METH_VARARGS, "autodiff: a fresh node to differentiate against"},
    {"_ad_detach", ad_detach, METH_O, "autodiff: a copy the walk does not differentiate through"},
    {"_python_number", python_number, METH_O, "a detached 0-d tracer that computes as a "
     "Python number (eager's .item() kept in the graph)"},
    {"_is_python_number", is_python_number, METH_O, "whether o is a Tracer of a Python number"},
    {NULL, NULL, 0, NULL},
};

int tj_ad_init(PyObject *module) {
    if (PyModule_AddFunctions(module, ad_methods) < 0) return -1;
    return PyModule_AddIntConstant(module, "_AD_DETACH", TJ_COPY_DETACH);
}
