/* The torch side of the tracer, in C where it touches the graph: captured torch
 * tensors, torch's type promotion, torch-named attributes (their implementations
 * are Python, python/tracejit/_torch.py, registered at import), and the entry that
 * applies an op of the table by name (the ops with no NumPy ufunc: erf, lgamma, ...).
 * Contract: a trace is a torch trace when an argument is a torch tensor; its nodes
 * then follow torch.result_type (dimensioned tensors > 0-d tensors > Python scalars,
 * by category bool < int < float; a Python float is the default dtype; Python numbers
 * combined only with each other are Python's arithmetic, double or int64), and ops
 * that compute in floats (exp, true division) take ints to the default dtype; a
 * plan that used the default dtype checks it at every call (csrc/runtime.c). */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

int32_t tj_capture_torch(tj_trace *t, PyObject *o) {
    for (Py_ssize_t i = t->stand_ins ? PyList_GET_SIZE(t->stand_ins) : 0; i-- > 0;) {
        PyObject *s = PyList_GET_ITEM(t->stand_ins, i);   /* the latest stand-in wins */
        if (PyTuple_GET_ITEM(s, 0) == o) return ((tj_tracer *)PyTuple_GET_ITEM(s, 1))->id;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(t->captures); i++) {
        PyObject *c = PyList_GET_ITEM(t->captures, i);
        if (PyTuple_GET_ITEM(c, 3) == o)   /* its contents now (csrc/trace/write.c) */
            return tj_write_current(t, (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(c, 4)));
    }
    tj_dlview v;
    const char *why = NULL;
    int rc = tj_dl_torch_view(t->st, o, &v, &why);
    if (rc < 0) return -1;
    if (rc == 0 && tj_dl_strict_refuses(t->st, o)) rc = 1, why = tj_dl_why_grad;
    if (rc > 0) {
        tj_trace_error(t->st, "the traced function reads a torch tensor (from a closure, a "
                       "global or a module) that %s", why);
        tj_state *st = t->st;
        if (why == tj_dl_why_grad && st->grad_capture_error) {   /* the same, recognizable */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_SetObject(st->grad_capture_error, value);
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
        }
        return -1;
    }
    PyObject *src = tj_capture_source(t, o);
    if (!src) return -1;
    tj_slotdesc d = {.kind = TJ_SLOT_CAPTURE, .index = (int)PyList_GET_SIZE(t->captures),
                     .dtype = v.dtype, .contig = (uint8_t)v.contig, .torch = 1};
    int32_t id = tj_trace_leaf(t, TJ_OP_CAPTURE, &d, 0, v.ndim, v.shape);
    if (id < 0) { Py_DECREF(src); return -1; }
    PyObject *entry = Py_BuildValue("(OOOOi)", PyTuple_GET_ITEM(src, 0), PyTuple_GET_ITEM(src, 1),
                                    PyTuple_GET_ITEM(src, 2), o, (int)id);
    Py_DECREF(src);
    if (!entry || PyList_Append(t->captures, entry) < 0) { Py_XDECREF(entry); return -1; }
    Py_DECREF(entry);
    return id;
}

/* torch.get_default_dtype() as a tracejit dtype (float32 unless changed); float64
 * for NumPy traces, which reach here only for the ops NumPy has no ufunc for. */
int tj_torch_default_float(tj_trace *t) {
    if (!t->torch) return TJ_F64;
    int r = tj_dl_default_float(t->st);
    if (r < 0) { PyErr_Clear(); r = TJ_F32; }
    t->torch |= r == TJ_F64 ? 4 : 2;     /* the plan checks it at every call */
    return r;
}

static int category(int dt) { return dt == TJ_BOOL ? 0 : tj_dtype_is_float(dt) ? 2 : 1; }
/* torch.promote_types on the dtypes a torch trace computes in (bool, uint8, the signed
 * ints, the floats): bool yields; a float wins over an int, the wider float over the
 * narrower; between ints the wider, uint8 with int8 giving int16 */
static int promote(int a, int b) {
    if (a < 0 || a == b) return b;
    if (b < 0) return a;
    if (a == TJ_BOOL || b == TJ_BOOL) return a == TJ_BOOL ? b : a;
    if (tj_dtype_is_float(a) || tj_dtype_is_float(b))
        return !tj_dtype_is_float(a) ? b : !tj_dtype_is_float(b) ? a : a > b ? a : b;
    if (a == TJ_U8 || b == TJ_U8) {
        int s = a == TJ_U8 ? b : a;
        return s == TJ_I8 ? TJ_I16 : s;
    }
    return a > b ? a : b;
}
/* c10's combine_categories: the higher priority class wins unless the lower one is
 * of a higher category */
static int combine(int higher, int lower) {
    if (higher < 0) return lower;
    if (lower < 0) return higher;
    if (category(higher) == 2) return higher;
    if (higher == TJ_BOOL || category(lower) == 2) return promote(higher, lower);
    return higher;
}

static const char *torch_name(int op) {
    const char *n = tj_ops[op].numpy;
    return n ? n : tj_ops[op].name;
}

int tj_torch_resolve(tj_trace *t, int op, int nargs, const int32_t *ids, int *loop, int *out) {
    int cls[3] = {-1, -1, -1};   /* dimensioned tensors, 0-d tensors, Python scalars */
    int first = tj_ops[op].flags & TJ_F_COND ? 1 : 0, dflt = -1, weak_float = 0, all_weak = 1;
    for (int i = first; i < nargs; i++) {
        const tj_node *n = &t->g.nodes[ids[i]];
        int c = n->weak ? 2 : n->ndim ? 0 : 1, dt = n->dtype;
        all_weak = all_weak && n->weak;
        if (t->torch && tj_dtype_is_unsigned(dt) && dt != TJ_U8) {
            tj_trace_error(t->st, "torch.%s on torch.%s tensors is not supported: torch itself "
                           "implements few operations on it (convert with .to(torch.int64))",
                           torch_name(op), tj_dtype_name(dt));
            return -1;
        }
        if (n->weak == 1 && dt == TJ_F64) { weak_float = 1; continue; }
        cls[c] = promote(cls[c], n->weak >= 2 ? TJ_I64 : dt);
    }
    if (all_weak && nargs > first) {
        /* Python numbers only (runtime scalar arguments, p - 1/3): Python's arithmetic,
         * in double (or int64); the result stays a Python number for what uses it */
        int r = weak_float || tj_ops[op].mask == TJ_M_F64 || tj_ops[op].mask == TJ_M_FLT
                    ? TJ_F64 : cls[2] < 0 ? TJ_I64 : cls[2];
        if (tj_ops[op].mask >> r & 1) {
            for (int i = 0; i < nargs; i++) loop[i] = i < first ? TJ_BOOL : r;
            *out = tj_ops[op].out == TJ_O_BOOL ? TJ_BOOL : r;
            return 0;
        }
    }
    /* a Python float counts as the default dtype, which matters only when no tensor
     * operand is a float (only then is the default read, and checked at each call) */
    int hi = combine(cls[0], cls[1]);
    if (weak_float && (hi < 0 || category(hi) < 2))
        cls[2] = promote(cls[2], dflt = tj_torch_default_float(t));
    int r = combine(cls[0], combine(cls[1], cls[2]));
    int mask = tj_ops[op].mask;
    if (mask == TJ_M_F64) r = TJ_F64;
    else if (mask == TJ_M_FLT && r < TJ_F32) r = dflt < 0 ? tj_torch_default_float(t) : dflt;
    if (!(mask >> r & 1)) {
        tj_trace_error(t->st, "torch.%s is not supported on %s tensors", torch_name(op),
                       tj_dtype_name(r));
        return -1;
    }
    for (int i = 0; i < nargs; i++) loop[i] = i < first ? TJ_BOOL : r;
    *out = tj_ops[op].out == TJ_O_BOOL ? TJ_BOOL : r;
    return 0;
}

PyObject *tj_torch_getattr(PyObject *self, PyObject *name) {
    tj_tracer *x = (tj_tracer *)self;
    if (!x->trace || !x->trace->torch || !x->trace->st->torch_attrs) return NULL;
    tj_state *st = x->trace->st;
    PyObject *v = PyDict_GetItemWithError(st->torch_attrs, name);
    if (!v) return NULL;
    descrgetfunc get = Py_TYPE(v)->tp_descr_get;
    return get ? get(v, self, (PyObject *)Py_TYPE(self)) : Py_NewRef(v);
}

/* _ew(name, *operands): the op of the table called `name` ("ERF") on the operands,
 * in the trace of the first tracer among them. New reference to a Tracer. */
PyObject *tj_torch_ew(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_ew(name, *operands)");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(args[0]);
    int op = -1;
    for (int i = 0; name && i < TJ_NOPS; i++)
        if (tj_ops[i].kind == TJ_K_EW && strcmp(tj_ops[i].name, name) == 0) op = i;
    if (op < 0 || tj_ops[op].arity != nargs - 1) {
        PyErr_Format(PyExc_ValueError, "_ew: no elementwise op %R of %zd operands", args[0],
                     nargs - 1);
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        if (!tj_is_tracer(args[i])) continue;
        tj_trace *t = ((tj_tracer *)args[i])->trace;
        if (!t->live)
            return tj_trace_error(t->st, "a tracer escaped its trace: a traced value was "
                                  "stored and used after the compiled function returned");
        return tj_apply(t, op, (int)nargs - 1, args + 1, NULL);
    }
    PyErr_SetString(PyExc_TypeError, "_ew: no traced operand");
    return NULL;
}

/* _register_torch(attrs, call[, autograd]): the torch-named tracer attributes, the
 * function that runs every trace (_effects.call; a torch trace under _torch's
 * TorchFunctionMode), and the one that runs a call whose tensors require grad
 * (_torch_autograd.call). */
PyObject *tj_torch_register(PyObject *m, PyObject *args) {
    PyObject *attrs, *call, *autograd = NULL, *error = NULL;
    if (!PyArg_ParseTuple(args, "O!O|OO:_register_torch", &PyDict_Type, &attrs, &call, &autograd,
                          &error))
        return NULL;
    tj_state *st = tj_state_of(m);
    if (autograd) Py_XSETREF(st->autograd_call, Py_NewRef(autograd));
    if (error) Py_XSETREF(st->grad_capture_error, Py_NewRef(error));
    Py_XSETREF(st->torch_attrs, Py_NewRef(attrs));
    Py_XSETREF(st->trace_call, Py_NewRef(call));
    Py_RETURN_NONE;
}

/* _lift(tracer, tensor): a real tensor (or array) as a tracer of `tracer`'s trace,
 * read at call time like any captured array. New reference. */
PyObject *tj_torch_lift(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !tj_is_tracer(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_lift(tracer, tensor)");
        return NULL;
    }
    tj_trace *t = ((tj_tracer *)args[0])->trace;
    if (!t->live)
        return tj_trace_error(t->st, "a tracer escaped its trace: a traced value was stored "
                              "and used after the compiled function returned");
    /* a stand-in is its tracer itself: a write through the real tensor rebinds it, so
     * every later read of either sees the write (a training step's parameters) */
    for (Py_ssize_t i = t->stand_ins ? PyList_GET_SIZE(t->stand_ins) : 0; i-- > 0;) {
        PyObject *s = PyList_GET_ITEM(t->stand_ins, i);
        if (PyTuple_GET_ITEM(s, 0) == args[1]) return Py_NewRef(PyTuple_GET_ITEM(s, 1));
    }
    int32_t id = tj_operand(t, args[1]);
    return id < 0 ? NULL : tj_tracer_new(t, id);
}

/* _stand_in(tensor, tracer): from now on the current trace reads the real `tensor` as
 * `tracer` (its node when read), not as a capture. None. */
PyObject *tj_torch_stand_in(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !tj_is_tracer(args[1]) || tj_dl_kind(tj_state_of(m), args[0]) != TJ_LIB_TORCH) {
        PyErr_SetString(PyExc_TypeError, "_stand_in(tensor, tracer)");
        return NULL;
    }
    tj_trace *t = ((tj_tracer *)args[1])->trace;
    if (!t->live)
        return tj_trace_error(t->st, "a tracer escaped its trace: a traced value was stored "
                              "and used after the compiled function returned");
    if (!t->stand_ins && !(t->stand_ins = PyList_New(0))) return NULL;
    PyObject *entry = PyTuple_Pack(2, args[0], args[1]);
    if (!entry || PyList_Append(t->stand_ins, entry) < 0) { Py_XDECREF(entry); return NULL; }
    Py_DECREF(entry);
    Py_RETURN_NONE;
}

/* _stood_in_for(tracer): the real tensor the current trace reads as this tracer's value
 * (_stand_in), or None. */
PyObject *tj_torch_stood_in_for(PyObject *m, PyObject *o) {
    if (!tj_is_tracer(o)) Py_RETURN_NONE;
    tj_tracer *x = (tj_tracer *)o;
    for (Py_ssize_t i = 0; x->trace->stand_ins && i < PyList_GET_SIZE(x->trace->stand_ins); i++) {
        PyObject *s = PyList_GET_ITEM(x->trace->stand_ins, i);
        if (((tj_tracer *)PyTuple_GET_ITEM(s, 1))->id == x->id)
            return Py_NewRef(PyTuple_GET_ITEM(s, 0));
    }
    Py_RETURN_NONE;
}

/* _note_made(tensor): a tensor torch made while the current trace runs (_torch's
 * mode): a write into it is the trace's own, never written back (tj_extwrite). */
PyObject *tj_torch_note_made(PyObject *m, PyObject *o) {
    tj_trace *t = tj_trace_current();
    if (!t || !t->live) Py_RETURN_NONE;
    if (!t->made && !(t->made = PyList_New(0))) return NULL;
    if (PyList_Append(t->made, o) < 0) return NULL;
    Py_RETURN_NONE;
}

/* _assign(x, value, what): tj_tracer_assign, for torch's in-place methods
 * (x.add_(v), F.relu(x, inplace=True)). New reference to x. */
PyObject *tj_torch_assign(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    const char *what = nargs == 3 ? PyUnicode_AsUTF8(args[2]) : NULL;
    if (!what || !tj_is_tracer(args[0])) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_assign(tracer, value, what)");
        return NULL;
    }
    return tj_tracer_assign(args[0], args[1], what);
}

/* _trace_error(msg): raises TraceError with msg and the user's source line. */
PyObject *tj_torch_trace_error(PyObject *m, PyObject *msg) {
    return tj_trace_error(tj_state_of(m), "%S", msg);
}

/* _trace_device() -> "cpu" or "cuda:<k>": the device of the current trace's first torch
 * argument (what a Tracer's .device is), "cpu" outside a trace. */
PyObject *tj_py_trace_device(PyObject *m, PyObject *unused) {
    tj_trace *t = tj_trace_current();
    if (!t || !t->cuda_device) return PyUnicode_FromString("cpu");
    return PyUnicode_FromFormat("cuda:%d", t->cuda_device - 1);
}
