/* NumPy's override protocols on the Tracer: __array_ufunc__ maps a ufunc to its op
 * through the op table; __array_function__ handles the functions below and names
 * every other one in a TraceError.
 * Contract: never returns NotImplemented for a NumPy call on a tracer: an operation
 * tracejit cannot represent is an error at the user's line, not a silent fallback. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* The numpy functions __array_function__ implements (handler index = position). */
static const char *const array_functions[] = {"where", "clip", "transpose", "astype",
                                              "shape", "ndim", "size",
                                              /* reductions: from F_REDUCE on */
                                              "sum", "prod", "max", "amax", "min", "amin",
                                              "argmax", "argmin", "mean", "var", "std", "any",
                                              "all",
                                              /* movement: from F_MOVE on */
                                              "reshape", "ravel", "squeeze", "expand_dims",
                                              "swapaxes", "moveaxis", "broadcast_to", "flip",
                                              "fliplr", "flipud", "split", "array_split", NULL};
enum { F_WHERE, F_CLIP, F_TRANSPOSE, F_ASTYPE, F_SHAPE, F_NDIM, F_SIZE, F_REDUCE, F_MOVE = 20 };

int tj_protocols_init(tj_state *st) {
    st->ufunc_ops = PyDict_New();
    st->array_funcs = PyDict_New();
    if (!st->ufunc_ops || !st->array_funcs) return -1;
    for (int op = 0; op < TJ_NOPS; op++) {
        if (!tj_ops[op].numpy || tj_ops[op].kind != TJ_K_EW || op == TJ_OP_WHERE) continue;
        PyObject *u = PyObject_GetAttrString(st->numpy, tj_ops[op].numpy);
        if (!u) return -1;
        st->ufunc_of[op] = u;
        PyObject *v = PyLong_FromLong(op);
        if (!v || PyDict_SetItem(st->ufunc_ops, u, v) < 0) { Py_XDECREF(v); return -1; }
        Py_DECREF(v);
    }
    for (int i = 0; array_functions[i]; i++) {
        PyObject *f = PyObject_GetAttrString(st->numpy, array_functions[i]);
        PyObject *v = PyLong_FromLong(i);
        if (!f || !v || PyDict_SetItem(st->array_funcs, f, v) < 0) {
            Py_XDECREF(f); Py_XDECREF(v);
            return -1;
        }
        Py_DECREF(f);
        Py_DECREF(v);
    }
    return 0;
}

static tj_trace *trace_of(PyObject *self) {
    tj_tracer *x = (tj_tracer *)self;
    if (!x->trace->live) {
        tj_trace_error("a tracer escaped its trace: a traced value was stored and used after "
                       "the compiled function returned; return it as an output instead");
        return NULL;
    }
    return x->trace;
}

/* "numpy.fft.fft": module and qualified name of a function. New reference. */
static PyObject *qualified_name(PyObject *f) {
    PyObject *mod = PyObject_GetAttrString(f, "__module__");
    PyObject *name = PyObject_GetAttrString(f, "__qualname__");
    if (!name) { PyErr_Clear(); name = PyObject_GetAttrString(f, "__name__"); }
    PyErr_Clear();
    PyObject *r;
    if (mod && mod != Py_None && name) {
        /* numpy's internals live in numpy._core; users know the public name */
        if (PyUnicode_CompareWithASCIIString(mod, "numpy._core.multiarray") == 0 ||
            PyUnicode_CompareWithASCIIString(mod, "numpy._core.fromnumeric") == 0 ||
            PyUnicode_CompareWithASCIIString(mod, "numpy._core.numeric") == 0)
            Py_SETREF(mod, PyUnicode_FromString("numpy"));
        r = PyUnicode_FromFormat("%U.%U", mod, name);
    } else {
        r = name ? Py_NewRef(name) : PyObject_Repr(f);
    }
    Py_XDECREF(mod);
    Py_XDECREF(name);
    return r;
}

/* __array_ufunc__(ufunc, method, *inputs, **kwargs) */
PyObject *tj_array_ufunc(PyObject *self, PyObject *args, PyObject *kwargs) {
    tj_state *st = tj_get_state();
    tj_trace *t = trace_of(self);
    if (!t) return NULL;
    if (PyTuple_GET_SIZE(args) < 2) {
        PyErr_SetString(PyExc_TypeError, "__array_ufunc__(ufunc, method, *inputs, **kwargs)");
        return NULL;
    }
    PyObject *ufunc = PyTuple_GET_ITEM(args, 0), *method = PyTuple_GET_ITEM(args, 1);
    PyObject *uname = PyObject_GetAttrString(ufunc, "__name__");
    if (!uname) return NULL;
    PyObject *result = NULL;
    PyObject *opv = PyDict_GetItemWithError(st->ufunc_ops, ufunc);
    if (!opv) {
        if (!PyErr_Occurred())
            tj_trace_error("numpy.%U is not supported by tracejit yet", uname);
        goto done;
    }
    int reduce_method = PyUnicode_CompareWithASCIIString(method, "reduce") == 0;
    if (!reduce_method && PyUnicode_CompareWithASCIIString(method, "__call__") != 0) {
        tj_trace_error("numpy.%U.%U is not supported by tracejit yet", uname, method);
        goto done;
    }
    if (!reduce_method && kwargs && PyDict_GET_SIZE(kwargs)) {
        PyObject *keys = PyDict_Keys(kwargs);
        if (keys) {
            PyObject *out = PyDict_GetItemString(kwargs, "out");
            if (out && out != Py_None)
                tj_trace_error("numpy.%U(..., out=...) is not supported by tracejit: traced "
                               "functions cannot write into arrays; use the returned value",
                               uname);
            else
                tj_trace_error("numpy.%U keyword arguments %R are not supported by tracejit",
                               uname, keys);
            Py_DECREF(keys);
        }
        goto done;
    }
    int op = (int)PyLong_AsLong(opv);
    Py_ssize_t nin = PyTuple_GET_SIZE(args) - 2;
    if (reduce_method) {
        /* ufunc.reduce(a, axis=0, dtype=None, out=None, keepdims=False, ...) */
        const char *fname = op == TJ_OP_ADD ? "sum" : op == TJ_OP_MUL ? "prod"
                          : op == TJ_OP_MAX ? "max" : op == TJ_OP_MIN ? "min"
                          : op == TJ_OP_OR ? "any" : op == TJ_OP_AND ? "all" : NULL;
        if (!fname || nin < 1) {
            tj_trace_error("numpy.%U.reduce is not supported by tracejit yet", uname);
            goto done;
        }
        PyObject *rest = PyTuple_GetSlice(args, 2, PyTuple_GET_SIZE(args));
        PyObject *kw = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
        PyObject *zero = PyLong_FromLong(0);
        if (rest && kw && zero && (nin > 1 || PyDict_GetItemString(kw, "axis") ||
                                   PyDict_SetItemString(kw, "axis", zero) == 0))
            result = tj_reduction_call(t, fname, PyTuple_GET_ITEM(rest, 0), rest, kw, 0);
        Py_XDECREF(rest);
        Py_XDECREF(kw);
        Py_XDECREF(zero);
        goto done;
    }
    if (nin != tj_ops[op].arity) {
        PyErr_Format(PyExc_TypeError, "numpy.%U takes %d operands, got %zd", uname,
                     tj_ops[op].arity, nin);
        goto done;
    }
    result = tj_apply(t, op, (int)nin, &PyTuple_GET_ITEM(args, 2), NULL);
done:
    Py_DECREF(uname);
    return result;
}

/* Positional-or-keyword argument i/name of a numpy function call. Borrowed. */
static PyObject *arg(PyObject *args, PyObject *kwargs, Py_ssize_t i, const char *name,
                     PyObject *dflt) {
    if (i < PyTuple_GET_SIZE(args)) return PyTuple_GET_ITEM(args, i);
    PyObject *v = kwargs ? PyDict_GetItemString(kwargs, name) : NULL;
    return v ? v : dflt;
}

/* __array_function__(func, types, args, kwargs) */
PyObject *tj_array_function(PyObject *self, PyObject *a, PyObject *kw) {
    tj_state *st = tj_get_state();
    PyObject *func, *types, *args, *kwargs;
    if (!PyArg_ParseTuple(a, "OOO!O:__array_function__", &func, &types, &PyTuple_Type, &args,
                          &kwargs))
        return NULL;
    if (kwargs == Py_None) kwargs = NULL;
    tj_trace *t = trace_of(self);
    if (!t) return NULL;
    PyObject *hv = PyDict_GetItemWithError(st->array_funcs, func);
    if (!hv) {
        if (PyErr_Occurred()) return NULL;
        PyObject *name = qualified_name(func);
        if (!name) return NULL;
        tj_trace_error("%U is not supported by tracejit yet", name);
        Py_DECREF(name);
        return NULL;
    }
    PyObject *x = arg(args, kwargs, 0, "a", NULL);
    if (!x) {
        PyErr_SetString(PyExc_TypeError, "missing the array argument");
        return NULL;
    }
    switch ((int)PyLong_AsLong(hv)) {
    case F_WHERE: {
        if (PyTuple_GET_SIZE(args) != 3)
            return tj_trace_error("numpy.where(cond) with one argument returns indices whose "
                                  "number depends on the data, which a trace cannot represent; "
                                  "use numpy.where(cond, x, y)");
        return tj_apply(t, TJ_OP_WHERE, 3, &PyTuple_GET_ITEM(args, 0), NULL);
    }
    case F_CLIP: {
        PyObject *lo = arg(args, kwargs, 1, "a_min", NULL), *hi = arg(args, kwargs, 2, "a_max", NULL);
        if (!lo && kwargs) lo = PyDict_GetItemString(kwargs, "min");
        if (!hi && kwargs) hi = PyDict_GetItemString(kwargs, "max");
        PyObject *out = kwargs ? PyDict_GetItemString(kwargs, "out") : NULL;
        if (out && out != Py_None)
            return tj_trace_error("numpy.clip(..., out=...) is not supported by tracejit");
        return tj_apply_clip(t, x, lo ? lo : Py_None, hi ? hi : Py_None);
    }
    case F_TRANSPOSE:
        return tj_apply_transpose(t, x, arg(args, kwargs, 1, "axes", Py_None));
    case F_ASTYPE: {
        PyObject *dt = arg(args, kwargs, 1, "dtype", NULL);
        if (!dt) { PyErr_SetString(PyExc_TypeError, "astype() needs a dtype"); return NULL; }
        return tj_apply_cast(t, x, dt);
    }
    case F_SHAPE: return PyObject_GetAttrString(x, "shape");
    case F_NDIM: return PyObject_GetAttrString(x, "ndim");
    case F_SIZE:
        if (arg(args, kwargs, 1, "axis", Py_None) != Py_None)
            return tj_trace_error("numpy.size(a, axis) is not supported by tracejit yet");
        return PyObject_GetAttrString(x, "size");
    default: {
        long h = PyLong_AsLong(hv);
        if (h >= F_MOVE) return tj_movement_call(t, array_functions[h], args, kwargs, 0);
        if (h >= F_REDUCE) return tj_reduction_call(t, array_functions[h], x, args, kwargs, 0);
        return tj_internal_error("unknown array function handler");
    }
    }
}
