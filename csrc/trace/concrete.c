/* Values Python needs while tracing: the truth value of a traced value (an `if`, a
 * `while`, `and`/`or`, bool(), max(1.0, m)), int(), float(), its use as an index
 * (np.zeros(n), range(n), x[:n]), .item(), .tolist(); and iteration along the first
 * axis (`for row in x`, `a, b = x`), which needs none.
 *
 * Contract: the value is the call's own. A Python number argument is read from the
 * call (t->flat); any other value is computed by compiling the graph so far with the
 * value as its output and running it on the call's inputs (tj_compile_value). Python
 * gets what eager would have (the conversion applied to a NumPy scalar, a 0-d array or
 * a torch tensor of that value, its errors included), and the plan gets a guard: the
 * branch taken (a truth value), the int (int() of a float), else the exact value. An
 * argument's guard is checked before the kernel runs; any other value becomes a hidden
 * output of the plan, checked after the kernel and before any result is returned
 * (csrc/guards.c): a call whose values differ goes to another variant or retraces. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

static const char *const what_text[] = {
    [TJ_CONC_BOOL] = "the truth value (an `if`, `while`, `and`/`or`, bool())",
    [TJ_CONC_INT] = "int()",
    [TJ_CONC_FLOAT] = "float()",
    [TJ_CONC_INDEX] = "its use as an integer (an index, a size, range())",
    [TJ_CONC_ITEM] = ".item()",
    [TJ_CONC_TOLIST] = ".tolist()",
};

int tj_tracer_write_error(tj_state *st) {
    const char *w = tj_user_write_site(st);
    if (!w) return PyErr_Occurred() ? -1 : 0;
    tj_trace_error(st, "%s with a traced value cannot be traced: its target is not a traced array "
                   "(a NumPy array, a tensor made outside the trace, a container), and writes "
                   "into arrays are not supported by tracejit yet. Build the result from traced "
                   "values instead (np.where(mask, new, old), np.concatenate, np.stack) and "
                   "return it", w);
    return -1;
}

/* What eager holds for the value `arr` of tracer x: a Python number, a NumPy scalar, a
 * 0-d or n-d ndarray, or (a torch trace) a tensor. New reference. */
static PyObject *eager_form(tj_trace *t, PyObject *x, PyObject *arr) {
    int kind = tj_tracer_is_np_scalar(x);
    if (kind == 2) return PyObject_CallMethod(arr, "item", NULL);
    if (t->torch) {
        PyObject *torch = PyImport_ImportModule("torch");
        PyObject *r = torch ? PyObject_CallMethod(torch, "from_numpy", "O", arr) : NULL;
        Py_XDECREF(torch);
        return r;
    }
    if (kind == 1) return PyArray_ToScalar(PyArray_DATA((PyArrayObject *)arr), (PyArrayObject *)arr);
    return Py_NewRef(arr);
}

/* The conversion itself, on what eager holds. New reference; NULL + eager's error. */
static PyObject *convert(int what, PyObject *v, PyObject *args) {
    switch (what) {
    case TJ_CONC_BOOL: {
        int b = PyObject_IsTrue(v);
        return b < 0 ? NULL : PyBool_FromLong(b);
    }
    case TJ_CONC_INT: return PyNumber_Long(v);
    case TJ_CONC_FLOAT: return PyNumber_Float(v);
    case TJ_CONC_INDEX: return PyNumber_Index(v);
    case TJ_CONC_ITEM: {
        PyObject *m = PyObject_GetAttrString(v, "item");
        PyObject *a = args ? Py_NewRef(args) : PyTuple_New(0);
        PyObject *r = m && a ? PyObject_Call(m, a, NULL) : NULL;
        Py_XDECREF(m);
        Py_XDECREF(a);
        return r;
    }
    default: return PyObject_CallMethod(v, "tolist", NULL);
    }
}

/* The value `v` (an argument leaf, or the ndarray computed) as its dtype's bytes, into
 * a new bytes object; NULL + exception. */
static PyObject *value_bytes(PyObject *v, int dtype) {
    if (PyArray_Check(v))
        return PyBytes_FromStringAndSize(PyArray_DATA((PyArrayObject *)v),
                                         (Py_ssize_t)PyArray_NBYTES((PyArrayObject *)v));
    unsigned char buf[8] = {0};
    if (PyFloat_Check(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        memcpy(buf, &d, 8);
    } else if (PyLong_Check(v) && dtype == TJ_F64) {   /* beyond int64: held as float64 */
        double d = PyLong_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) return NULL;
        memcpy(buf, &d, 8);
    } else if (PyLong_Check(v)) {
        long long i = PyLong_AsLongLong(v);
        if (i == -1 && PyErr_Occurred()) return NULL;
        memcpy(buf, &i, 8);
    } else if (PyArray_ScalarAsCtype(v, buf), PyErr_Occurred()) {
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)buf, tj_dtype_size(dtype));
}

/* A comparison of a 0-d value with a constant of its dtype (`s > 0`, `0.5 <= m`): the
 * value's node, with *op, *left (the constant on the left) and *c set; else -1. */
static int32_t compared(const tj_trace *t, const tj_node *n, int *op, int *left, tj_scalar *c) {
    if (n->op != TJ_OP_LT && n->op != TJ_OP_LE && n->op != TJ_OP_GT && n->op != TJ_OP_GE &&
        n->op != TJ_OP_EQ && n->op != TJ_OP_NE)
        return -1;
    for (int k = 0; k < 2; k++) {
        const tj_node *v = &t->g.nodes[n->in[k]], *k_ = &t->g.nodes[n->in[1 - k]];
        if (k_->op != TJ_OP_CONST || v->op == TJ_OP_CONST || v->ndim || k_->ndim ||
            v->dtype != k_->dtype)
            continue;
        *op = n->op;
        *left = k == 1;
        *c = k_->value;
        return n->in[k];
    }
    return -1;
}

/* Appends the guard (kind, where, mode, dtype, recorded, label, shown, cmp) to
 * t->values, unless it has one of that value under that mode already. */
static int record(tj_trace *t, int kind, int where, int mode, int dtype, PyObject *recorded,
                  int what, PyObject *shown, PyObject *cmp) {
    for (Py_ssize_t i = 0; t->values && i < PyList_GET_SIZE(t->values); i++) {
        PyObject *e = PyList_GET_ITEM(t->values, i);
        if (PyLong_AsLong(PyTuple_GET_ITEM(e, 0)) != kind ||
            PyLong_AsLong(PyTuple_GET_ITEM(e, 1)) != where ||
            PyLong_AsLong(PyTuple_GET_ITEM(e, 2)) != mode)
            continue;
        int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(e, 7), cmp ? cmp : Py_None, Py_EQ);
        if (same) return same < 0 ? -1 : 0;
    }
    PyObject *line = tj_user_line(t->st);
    if (!line) return -1;
    PyObject *label = PyUnicode_FromFormat("%s at %U", what_text[what], line);
    Py_DECREF(line);
    if (!label) return -1;
    PyObject *e = Py_BuildValue("(iiiiONOO)", kind, where, mode, dtype, recorded, label, shown,
                                cmp ? cmp : Py_None);
    if (!e) return -1;
    if (!t->values && !(t->values = PyList_New(0))) { Py_DECREF(e); return -1; }
    int rc = PyList_Append(t->values, e);
    Py_DECREF(e);
    return rc;
}

PyObject *tj_concrete(PyObject *o, int what, PyObject *args) {
    tj_tracer *x = (tj_tracer *)o;
    tj_trace *t = tj_tracer_live(x);
    if (!t || tj_tracer_write_error(t->st) < 0) return NULL;
    if (!t->flat)
        return tj_trace_error(t->st, "the value of a traced array is not known here (no call's inputs "
                              "to compute it from), so %s cannot be computed", what_text[what]);
    int32_t id = x->id;
    const tj_node *n = &t->g.nodes[id];
    int leaf = -1, op = 0, left = 0;
    tj_scalar c;
    PyObject *value, *eager = NULL, *r = NULL, *recorded = NULL, *shown = NULL, *cmp = NULL;
    int32_t v = what == TJ_CONC_BOOL ? compared(t, n, &op, &left, &c) : -1;
    if (v >= 0) {   /* `if s > 0:` guards s (and needs no kernel work for the `>`) */
        id = v;
        n = &t->g.nodes[id];
        cmp = n->dtype >= TJ_F32 ? Py_BuildValue("(iid)", op, left, c.f)
                                 : Py_BuildValue("(iiL)", op, left, (long long)c.i);
        if (!cmp) return NULL;
    }
    int dtype = n->dtype;
    if (n->op == TJ_OP_SCALAR && n->slot >= 0 && t->g.slots[n->slot].kind == TJ_SLOT_ARG) {
        leaf = n->slot;   /* an argument: read from the call, no compile */
        value = Py_NewRef(t->flat->leaves[t->g.slots[leaf].index]);
        eager = Py_NewRef(value);   /* a Python number or a NumPy scalar, as passed */
    } else {
        value = tj_compile_value(t, id);
        eager = value && !cmp ? eager_form(t, o, value) : Py_XNewRef(value);
    }
    if (!eager) goto done;
    int fl = dtype == TJ_F32 || dtype == TJ_F64, mode;
    if (cmp) {   /* the comparison the kernel's loop makes, in the value's dtype */
        recorded = value_bytes(value, dtype);
        if (!recorded) goto done;
        tj_guard g = {.dtype = dtype, .cmp_op = op, .cmp_left = left, .cmp_val = c};
        r = Py_NewRef(tj_guards_compare(&g, (const unsigned char *)PyBytes_AS_STRING(recorded))
                          ? Py_True : Py_False);
        mode = TJ_VALUE_CMP;
    } else {
        r = convert(what, eager, args);
        mode = what == TJ_CONC_BOOL ? TJ_VALUE_TRUTH
             : what == TJ_CONC_INT && fl ? TJ_VALUE_INT : TJ_VALUE_EXACT;
    }
    if (!r) {
        /* int() of a float fails for NaN and infinities, a value's doing: the same
         * failure is assumed (an exact guard), so code that catches it stays faithful.
         * The other failures follow from the dtype and shape, part of the key. */
        if (mode != TJ_VALUE_INT) goto done;
        mode = TJ_VALUE_EXACT;
    }
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    if (!recorded)
        recorded = leaf >= 0 && PyLong_Check(value) ? Py_NewRef(value) : value_bytes(value, dtype);
    int ok = recorded && (shown = r ? PyObject_Repr(r) : PyUnicode_FromString("an error")) &&
             record(t, leaf >= 0 ? TJ_GUARD_ARG : TJ_GUARD_VALUE, leaf >= 0 ? leaf : id,
                    mode, dtype, recorded, what, shown, cmp) == 0;
    if (!ok) {
        Py_XDECREF(type); Py_XDECREF(exc); Py_XDECREF(tb);
        Py_CLEAR(r);
    } else {
        PyErr_Restore(type, exc, tb);
    }
done:
    Py_XDECREF(cmp);
    Py_XDECREF(value);
    Py_XDECREF(eager);
    Py_XDECREF(recorded);
    Py_XDECREF(shown);
    return r;
}

PyObject *tj_tracer_iter(PyObject *o) {
    tj_tracer *x = (tj_tracer *)o;
    tj_trace *t = tj_tracer_live(x);
    if (!t) return NULL;
    const tj_node *n = &t->g.nodes[x->id];
    if (!n->ndim) {
        PyErr_SetString(PyExc_TypeError, t->torch ? "iteration over a 0-d tensor"
                                                  : "iteration over a 0-d array");
        return NULL;
    }
    /* map(operator.getitem, repeat(x, n), range(n)): lazy, so a loop that breaks early
     * traces only the rows it read */
    PyObject *op = PyImport_ImportModule("operator"), *it = PyImport_ImportModule("itertools");
    PyObject *getitem = op ? PyObject_GetAttrString(op, "getitem") : NULL;
    PyObject *rep = it ? PyObject_CallMethod(it, "repeat", "OL", o, (long long)n->shape[0]) : NULL;
    PyObject *rng = PyObject_CallFunction((PyObject *)&PyRange_Type, "L", (long long)n->shape[0]);
    PyObject *m = getitem && rep && rng
                      ? PyObject_CallFunctionObjArgs((PyObject *)&PyMap_Type, getitem, rep, rng,
                                                     NULL)
                      : NULL;
    PyObject *r = m ? PyObject_GetIter(m) : NULL;
    Py_XDECREF(op); Py_XDECREF(it); Py_XDECREF(getitem); Py_XDECREF(rep); Py_XDECREF(rng);
    Py_XDECREF(m);
    return r;
}
