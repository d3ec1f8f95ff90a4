/* NumPy's override protocols on the Tracer: __array_ufunc__ maps a ufunc to its op
 * through the op table; __array_function__ handles the functions below and names
 * every other one in a TraceError.
 * Contract: never returns NotImplemented for a NumPy call on a tracer: an operation
 * tracejit cannot represent is an error at the user's line, not a silent fallback. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>
#include <float.h>

/* The numpy functions __array_function__ implements (handler index = position), with
 * the name of their first parameter (the traced array when passed by keyword). */
static const struct { const char *name, *first; } array_functions[] = {
    {"where", "condition"}, {"clip", "a"}, {"transpose", "a"}, {"astype", "x"},
    {"shape", "a"}, {"ndim", "a"}, {"size", "a"}, {"nan_to_num", "x"},
    {"zeros_like", "a"}, {"ones_like", "a"}, {"empty_like", "prototype"},
    {"full_like", "a"}, {"copyto", "dst"},
    /* reductions: from F_REDUCE on */
    {"sum", "a"}, {"prod", "a"}, {"max", "a"}, {"amax", "a"}, {"min", "a"}, {"amin", "a"},
    {"argmax", "a"}, {"argmin", "a"}, {"mean", "a"}, {"var", "a"}, {"std", "a"}, {"any", "a"},
    {"all", "a"}, {"cumsum", "a"}, {"cumprod", "a"},
    /* movement: from F_MOVE on */
    {"reshape", "a"}, {"ravel", "a"}, {"squeeze", "a"}, {"expand_dims", "a"},
    {"swapaxes", "a"}, {"moveaxis", "a"}, {"broadcast_to", "array"}, {"flip", "m"},
    {"fliplr", "m"}, {"flipud", "m"}, {"split", "ary"}, {"array_split", "ary"},
    /* contractions: from F_CONTRACT on */
    {"dot", "a"}, {"vdot", "a"}, {"inner", "a"}, {"outer", "a"}, {"tensordot", "a"},
    /* assembly: from F_ASSEMBLE on */
    {"concatenate", "arrays"}, {"stack", "arrays"}, {"hstack", "tup"}, {"vstack", "tup"},
    {"roll", "a"}, {"pad", "array"},
    /* gathers: from F_GATHER on */
    {"take", "a"}, {"take_along_axis", "arr"},
    {NULL, NULL}};
enum { F_WHERE, F_CLIP, F_TRANSPOSE, F_ASTYPE, F_SHAPE, F_NDIM, F_SIZE, F_NAN_TO_NUM,
       F_ZEROS_LIKE, F_ONES_LIKE, F_EMPTY_LIKE, F_FULL_LIKE, F_COPYTO, F_REDUCE,
       F_MOVE = F_REDUCE + 15, F_CONTRACT = F_MOVE + 12, F_ASSEMBLE = F_CONTRACT + 5,
       F_GATHER = F_ASSEMBLE + 6 };

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
    for (int i = 0; array_functions[i].name; i++) {
        PyObject *f = PyObject_GetAttrString(st->numpy, array_functions[i].name);
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
    if (!opv && !PyErr_Occurred() && PyUnicode_CompareWithASCIIString(uname, "matmul") == 0 &&
        PyUnicode_CompareWithASCIIString(method, "__call__") == 0) {
        PyObject *rest = PyTuple_GetSlice(args, 2, PyTuple_GET_SIZE(args));
        result = rest ? tj_contraction_call(t, "matmul", rest, kwargs) : NULL;
        Py_XDECREF(rest);
        goto done;
    }
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
            result = tj_reduction_call(t, fname, PyTuple_GET_ITEM(rest, 0), rest, kw, 2);
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

/* numpy.nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None): for floats
 * where(isnan, nan, where(isinf, where(signbit, neginf, posinf), x)) with the fill
 * values in x's dtype (numpy's defaults: the largest finite magnitudes); other
 * dtypes pass through. copy=False on floats writes into x in numpy: refused. */
static PyObject *nan_to_num(tj_trace *t, PyObject *x, PyObject *args, PyObject *kwargs) {
    PyObject *copy = tj_arg(args, kwargs, 1, "copy", Py_True);
    PyObject *fill[3] = {tj_arg(args, kwargs, 2, "nan", NULL), tj_arg(args, kwargs, 3, "posinf", NULL),
                         tj_arg(args, kwargs, 4, "neginf", NULL)};
    int32_t id = tj_operand(t, x);
    int c = PyObject_IsTrue(copy);
    if (id < 0 || c < 0) return NULL;
    tj_node n = t->g.nodes[id];
    if (n.dtype < TJ_F32)
        return c ? tj_apply_cast(t, x, tj_get_state()->dtypes[n.dtype]) : Py_NewRef(x);
    if (!c)
        return tj_trace_error("numpy.nan_to_num(x, copy=False) writes into x, which a traced "
                              "function cannot do; use x = numpy.nan_to_num(x)");
    double big = n.dtype == TJ_F32 ? FLT_MAX : DBL_MAX, dflt[3] = {0.0, big, -big};
    PyObject *v[3] = {NULL, NULL, NULL}, *m[3] = {NULL, NULL, NULL}, *r = NULL;
    for (int i = 0; i < 3; i++) {
        /* nan=None is an error in numpy (and in tj_operand); posinf/neginf=None: default */
        int dflt_i = !fill[i] || (i > 0 && fill[i] == Py_None);
        PyObject *d = dflt_i ? PyFloat_FromDouble(dflt[i]) : Py_NewRef(fill[i]);
        v[i] = d ? tj_apply_fill(t, d, n.dtype, n.ndim, n.shape) : NULL;
        Py_XDECREF(d);
        if (!v[i]) goto done;
    }
    static const int tests[3] = {TJ_OP_ISNAN, TJ_OP_ISINF, TJ_OP_SIGNBIT};
    for (int i = 0; i < 3; i++)
        if (!(m[i] = tj_apply(t, tests[i], 1, &x, NULL))) goto done;
    PyObject *inf_args[3] = {m[2], v[2], v[1]};
    PyObject *inf = tj_apply(t, TJ_OP_WHERE, 3, inf_args, NULL);
    if (!inf) goto done;
    PyObject *num_args[3] = {m[1], inf, x};
    PyObject *num = tj_apply(t, TJ_OP_WHERE, 3, num_args, NULL);
    Py_DECREF(inf);
    if (!num) goto done;
    PyObject *r_args[3] = {m[0], v[0], num};
    r = tj_apply(t, TJ_OP_WHERE, 3, r_args, NULL);
    Py_DECREF(num);
done:
    for (int i = 0; i < 3; i++) { Py_XDECREF(v[i]); Py_XDECREF(m[i]); }
    return r;
}

/* numpy.zeros_like / ones_like / empty_like / full_like(a, [fill_value,] dtype=None,
 * order='K', subok=True, shape=None, *, device=None): a fresh value of a's shape and
 * dtype (or those given). empty_like is zeros_like: a traced value has no
 * uninitialized memory. Results are C-contiguous, so order='F' is refused. */
static PyObject *like(tj_trace *t, int h, PyObject *x, PyObject *args, PyObject *kwargs) {
    const char *fname = array_functions[h].name;
    int k = h == F_FULL_LIKE;   /* parameters after fill_value move by one */
    PyObject *value = h == F_FULL_LIKE ? tj_arg(args, kwargs, 1, "fill_value", NULL)
                      : h == F_ONES_LIKE ? Py_True : Py_False;
    PyObject *dtype = tj_arg(args, kwargs, 1 + k, "dtype", Py_None);
    PyObject *order = tj_arg(args, kwargs, 2 + k, "order", Py_None);
    PyObject *shape_arg = tj_arg(args, kwargs, 4 + k, "shape", Py_None);
    PyObject *device = kwargs ? PyDict_GetItemString(kwargs, "device") : NULL;
    if (!value) {
        PyErr_SetString(PyExc_TypeError, "full_like() missing required argument 'fill_value'");
        return NULL;
    }
    if (order != Py_None) {
        const char *o = PyUnicode_Check(order) ? PyUnicode_AsUTF8(order) : NULL;
        if (o && strcmp(o, "F") == 0)
            return tj_trace_error("numpy.%s(..., order='F') is not supported by tracejit: "
                                  "traced results are C-contiguous", fname);
        if (!o || (strcmp(o, "K") && strcmp(o, "A") && strcmp(o, "C"))) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "order must be one of 'C', 'F', 'A', or 'K' (got %R)",
                         order);
            return NULL;
        }
    }
    if (device && device != Py_None &&
        !(PyUnicode_Check(device) && PyUnicode_CompareWithASCIIString(device, "cpu") == 0)) {
        PyErr_Format(PyExc_ValueError, "Device not understood. Only \"cpu\" is allowed, but "
                     "received: %S", device);
        return NULL;
    }
    int32_t id = tj_operand(t, x);
    if (id < 0) return NULL;
    tj_node n = t->g.nodes[id];
    int dt = n.dtype;
    if (dtype != Py_None) {
        PyArray_Descr *descr = NULL;
        if (!PyArray_DescrConverter(dtype, &descr)) return NULL;
        dt = tj_dtype_from_typenum(descr->type_num);
        if (dt < 0 || !PyArray_ISNBO(descr->byteorder)) {
            PyErr_Format(PyExc_TypeError, "numpy.%s(dtype=%R): tracejit supports bool, int32, "
                         "int64, float32 and float64", fname, (PyObject *)descr);
            Py_DECREF(descr);
            return NULL;
        }
        Py_DECREF(descr);
    }
    if (shape_arg != Py_None) {
        PyArray_Dims dims = {NULL, 0};
        if (!PyArray_IntpConverter(shape_arg, &dims)) return NULL;
        int bad = dims.len > TJ_MAXDIM, neg = 0;
        for (int d = 0; !bad && d < dims.len; d++) {
            neg |= dims.ptr[d] < 0;
            n.shape[d] = dims.ptr[d];
        }
        n.ndim = (uint8_t)(bad ? 0 : dims.len);
        PyDimMem_FREE(dims.ptr);
        if (bad)
            return tj_trace_error("numpy.%s(..., shape=%R): tracejit supports at most %d "
                                  "dimensions", fname, shape_arg, TJ_MAXDIM);
        if (neg) {
            PyErr_SetString(PyExc_ValueError, "negative dimensions are not allowed");
            return NULL;
        }
    }
    return tj_apply_fill(t, value, dt, n.ndim, n.shape);
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
    if (!hv && !PyErr_Occurred() && st->py_impls) {   /* a composition (_impls.py) */
        PyObject *impl = PyDict_GetItemWithError(st->py_impls, func);
        if (impl) return PyObject_Call(impl, args, kwargs);
    }
    if (!hv) {
        if (PyErr_Occurred()) return NULL;
        PyObject *name = qualified_name(func);
        if (!name) return NULL;
        static const char *const data_dependent[] = {
            "numpy.nonzero", "numpy.flatnonzero", "numpy.argwhere", "numpy.unique",
            "numpy.extract", "numpy.compress", "numpy.trim_zeros", "numpy.unique_values",
            "numpy.unique_counts", "numpy.unique_inverse", "numpy.unique_all", NULL};
        int dd = 0;
        for (int i = 0; data_dependent[i] && !dd; i++)
            dd = PyUnicode_CompareWithASCIIString(name, data_dependent[i]) == 0;
        if (dd)
            tj_trace_error("%U returns an array whose size depends on the data, which a trace "
                           "cannot represent; keep the shape fixed and select with "
                           "np.where(cond, x, fill) instead", name);
        else
            tj_trace_error("%U is not supported by tracejit yet", name);
        Py_DECREF(name);
        return NULL;
    }
    int h = (int)PyLong_AsLong(hv);
    PyObject *x = tj_arg(args, kwargs, 0, array_functions[h].first, NULL);
    if (!x) {
        PyErr_SetString(PyExc_TypeError, "missing the array argument");
        return NULL;
    }
    switch (h) {
    case F_WHERE: {
        if (PyTuple_GET_SIZE(args) != 3)
            return tj_trace_error("numpy.where(cond) with one argument returns indices whose "
                                  "number depends on the data, which a trace cannot represent; "
                                  "use numpy.where(cond, x, y)");
        return tj_apply(t, TJ_OP_WHERE, 3, &PyTuple_GET_ITEM(args, 0), NULL);
    }
    case F_CLIP: {
        PyObject *lo = tj_arg(args, kwargs, 1, "a_min", NULL), *hi = tj_arg(args, kwargs, 2, "a_max", NULL);
        if (!lo && kwargs) lo = PyDict_GetItemString(kwargs, "min");
        if (!hi && kwargs) hi = PyDict_GetItemString(kwargs, "max");
        PyObject *out = kwargs ? PyDict_GetItemString(kwargs, "out") : NULL;
        if (out && out != Py_None)
            return tj_trace_error("numpy.clip(..., out=...) is not supported by tracejit");
        return tj_apply_clip(t, x, lo ? lo : Py_None, hi ? hi : Py_None);
    }
    case F_TRANSPOSE:
        return tj_apply_transpose(t, x, tj_arg(args, kwargs, 1, "axes", Py_None));
    case F_ASTYPE: {
        PyObject *dt = tj_arg(args, kwargs, 1, "dtype", NULL);
        if (!dt) { PyErr_SetString(PyExc_TypeError, "astype() needs a dtype"); return NULL; }
        return tj_apply_cast(t, x, dt);
    }
    case F_SHAPE: return PyObject_GetAttrString(x, "shape");
    case F_NDIM: return PyObject_GetAttrString(x, "ndim");
    case F_SIZE:
        if (tj_arg(args, kwargs, 1, "axis", Py_None) != Py_None)
            return tj_trace_error("numpy.size(a, axis) is not supported by tracejit yet");
        return PyObject_GetAttrString(x, "size");
    case F_NAN_TO_NUM:
        return nan_to_num(t, x, args, kwargs);
    case F_ZEROS_LIKE: case F_ONES_LIKE: case F_EMPTY_LIKE: case F_FULL_LIKE:
        return like(t, h, x, args, kwargs);
    case F_COPYTO:
        return tj_trace_error("numpy.copyto writes into an existing array, which a traced "
                              "function cannot do (numpy.full_like(a, v) calls it when a is "
                              "not traced); compute the value instead, e.g. with "
                              "numpy.full_like or numpy.where");
    default:
        if (h >= F_GATHER) return tj_gather_call(t, array_functions[h].name, args, kwargs);
        if (h >= F_ASSEMBLE) return tj_assemble_call(t, array_functions[h].name, args, kwargs);
        if (h >= F_CONTRACT) return tj_contraction_call(t, array_functions[h].name, args, kwargs);
        if (h >= F_MOVE) return tj_movement_call(t, array_functions[h].name, args, kwargs, 0);
        if (h >= F_REDUCE) return tj_reduction_call(t, array_functions[h].name, x, args, kwargs, 0);
        return tj_internal_error("unknown array function handler");
    }
}
