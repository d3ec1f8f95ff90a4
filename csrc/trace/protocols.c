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

static tj_npfunc_fn where, clip, transpose, astype, attribute, size, nan_to_num, like;

/* The numpy functions __array_function__ implements: name, first parameter, handler and
 * the handler's datum (see each handler). array_funcs maps each function object to its
 * entry's index; a function not here may have a Python composition (_impls.py). */
static const tj_npfunc np_funcs[] = {
    {"where", "condition", where, 0}, {"clip", "a", clip, 0},
    {"transpose", "a", transpose, 0}, {"astype", "x", astype, 0},
    {"shape", "a", attribute, 0}, {"ndim", "a", attribute, 0}, {"size", "a", size, 0},
    {"nan_to_num", "x", nan_to_num, 0},
    {"zeros_like", "a", like, 0}, {"ones_like", "a", like, 1},
    {"empty_like", "prototype", like, 0}, {"full_like", "a", like, 2},
    /* reductions (csrc/trace/reduce.c) */
    {"sum", "a", tj_reduce_np, TJ_RED_SUM}, {"prod", "a", tj_reduce_np, TJ_RED_PROD},
    {"max", "a", tj_reduce_np, TJ_RED_MAX}, {"amax", "a", tj_reduce_np, TJ_RED_AMAX},
    {"min", "a", tj_reduce_np, TJ_RED_MIN}, {"amin", "a", tj_reduce_np, TJ_RED_AMIN},
    {"argmax", "a", tj_reduce_np, TJ_RED_ARGMAX}, {"argmin", "a", tj_reduce_np, TJ_RED_ARGMIN},
    {"mean", "a", tj_reduce_np, TJ_RED_MEAN}, {"var", "a", tj_reduce_np, TJ_RED_VAR},
    {"std", "a", tj_reduce_np, TJ_RED_STD}, {"any", "a", tj_reduce_np, TJ_RED_ANY},
    {"all", "a", tj_reduce_np, TJ_RED_ALL}, {"cumsum", "a", tj_reduce_np, TJ_RED_CUMSUM},
    {"cumprod", "a", tj_reduce_np, TJ_RED_CUMPROD},
    /* movement (csrc/trace/views.c) */
    {"reshape", "a", tj_views_reshape, 0}, {"ravel", "a", tj_views_ravel, 0},
    {"squeeze", "a", tj_views_squeeze, 0}, {"expand_dims", "a", tj_views_expand_dims, 0},
    {"swapaxes", "a", tj_views_swapaxes, 0}, {"moveaxis", "a", tj_views_moveaxis, 0},
    {"broadcast_to", "array", tj_views_broadcast_to, 0}, {"flip", "m", tj_views_flip, 0},
    {"flipud", "m", tj_views_flip, 1}, {"fliplr", "m", tj_views_flip, 2},
    {"split", "ary", tj_views_split, 1}, {"array_split", "ary", tj_views_split, 0},
    /* contractions (csrc/trace/contract.c) */
    {"dot", "a", tj_contract_dot, 0}, {"vdot", "a", tj_contract_inner, 'v'},
    {"inner", "a", tj_contract_inner, 'i'}, {"outer", "a", tj_contract_inner, 'o'},
    {"tensordot", "a", tj_contract_tensordot, 0},
    /* assembly (csrc/trace/assemble.c) */
    {"concatenate", "arrays", tj_assemble_concat, 0}, {"stack", "arrays", tj_assemble_concat, 1},
    {"hstack", "tup", tj_assemble_hvstack, 1}, {"vstack", "tup", tj_assemble_hvstack, 2},
    {"dstack", "tup", tj_assemble_hvstack, 3}, {"column_stack", "tup", tj_assemble_hvstack, 4},
    {"roll", "a", tj_assemble_roll, 0}, {"pad", "array", tj_assemble_pad, 0},
    /* gathers (csrc/trace/gather.c) */
    {"take", "a", tj_gather_take, 0}, {"take_along_axis", "arr", tj_gather_take, 1},
};
#define N_NP_FUNCS ((int)(sizeof np_funcs / sizeof np_funcs[0]))

/* numpy.matmul reaches the tracer as a ufunc (it has no op of the table) */
static const tj_npfunc matmul_ufunc = {"matmul", "x1", tj_contract_matmul, 0};

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
    for (int i = 0; i < N_NP_FUNCS; i++) {
        PyObject *f = PyObject_GetAttrString(st->numpy, np_funcs[i].name);
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
        tj_trace_error(x->trace->st, "a tracer escaped its trace: a traced value was stored "
                       "and used after the compiled function returned; return it as an output "
                       "instead");
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

/* ufunc.outer(a, b) of a binary op: op(a reshaped to a.shape + (1,) * b.ndim, b). */
static PyObject *ufunc_outer(tj_trace *t, int op, PyObject *a, PyObject *b) {
    int32_t ia = tj_operand(t, a), ib = ia < 0 ? -1 : tj_operand(t, b);
    if (ib < 0) return NULL;
    int na = t->g.nodes[ia].ndim, nb = t->g.nodes[ib].ndim;
    if (na + nb > TJ_MAXDIM) {
        PyErr_Format(PyExc_ValueError, "ufunc.outer: %d + %d dimensions, tracejit supports %d",
                     na, nb, TJ_MAXDIM);
        return NULL;
    }
    PyObject *shape = PyTuple_New(na + nb);
    for (int d = 0; shape && d < na + nb; d++)
        PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(d < na ? t->g.nodes[ia].shape[d] : 1));
    PyObject *ar = shape ? tj_reshape(t, a, shape) : NULL;
    Py_XDECREF(shape);
    if (!ar) return NULL;
    PyObject *ops[2] = {ar, b};
    PyObject *r = tj_apply(t, op, 2, ops, NULL);
    Py_DECREF(ar);
    return r;
}

/* ufunc.accumulate(a, axis=0, dtype=None) of add and multiply: cumsum/cumprod (the same
 * loop dtypes: small ints widen to int64 in both); bool operands (add.accumulate of
 * bools is a logical or) are refused by name. */
static PyObject *ufunc_accumulate(tj_trace *t, int op, PyObject *uname, PyObject *args,
                                  PyObject *kwargs) {
    Py_ssize_t nin = PyTuple_GET_SIZE(args) - 2;
    PyObject *a = nin == 1 ? PyTuple_GET_ITEM(args, 2) : NULL, *axis = NULL, *dtype = NULL;
    Py_ssize_t nkw = kwargs ? PyDict_GET_SIZE(kwargs) : 0;
    if (kwargs) {
        axis = PyDict_GetItemString(kwargs, "axis");
        dtype = PyDict_GetItemString(kwargs, "dtype");
    }
    int32_t id = a ? tj_operand(t, a) : -1;
    if (a && id < 0) return NULL;
    if ((op != TJ_OP_ADD && op != TJ_OP_MUL) || !a || nkw != (axis != NULL) + (dtype != NULL) ||
        t->g.nodes[id].dtype == TJ_BOOL)
        return tj_trace_error(t->st, "numpy.%U.accumulate is supported by tracejit for add and "
                              "multiply of one non-bool array with axis= and dtype= only", uname);
    PyObject *np = PyImport_ImportModule("numpy");
    PyObject *kw = np ? PyDict_New() : NULL;
    PyObject *dt = dtype ? dtype : Py_None;
    PyObject *zero = PyLong_FromLong(0);
    PyObject *r = NULL;
    if (kw && zero && PyDict_SetItemString(kw, "axis", axis ? axis : zero) == 0 &&
        PyDict_SetItemString(kw, "dtype", dt) == 0) {
        PyObject *fn = PyObject_GetAttrString(np, op == TJ_OP_ADD ? "cumsum" : "cumprod");
        PyObject *pa = fn ? PyTuple_Pack(1, a) : NULL;
        r = pa ? PyObject_Call(fn, pa, kw) : NULL;
        Py_XDECREF(pa);
        Py_XDECREF(fn);
    }
    Py_XDECREF(np);
    Py_XDECREF(kw);
    Py_XDECREF(zero);
    return r;
}

/* __array_ufunc__(ufunc, method, *inputs, **kwargs) */
PyObject *tj_array_ufunc(PyObject *self, PyObject *args, PyObject *kwargs) {
    tj_state *st = ((tj_tracer *)self)->trace->st;   /* a method of Tracer */
    tj_trace *t = trace_of(self);
    if (!t) return NULL;
    if (PyTuple_GET_SIZE(args) < 2) {
        PyErr_SetString(PyExc_TypeError, "__array_ufunc__(ufunc, method, *inputs, **kwargs)");
        return NULL;
    }
    PyObject *ufunc = PyTuple_GET_ITEM(args, 0), *method = PyTuple_GET_ITEM(args, 1);
    if (tj_complex_any(st, args, kwargs)) return tj_complex_op(st, "ufunc", args, kwargs);
    PyObject *uname = PyObject_GetAttrString(ufunc, "__name__");
    if (!uname) return NULL;
    PyObject *result = NULL;
    PyObject *opv = PyDict_GetItemWithError(st->ufunc_ops, ufunc);
    if (!opv && !PyErr_Occurred() && PyUnicode_CompareWithASCIIString(uname, "matmul") == 0 &&
        PyUnicode_CompareWithASCIIString(method, "__call__") == 0) {
        PyObject *rest = PyTuple_GetSlice(args, 2, PyTuple_GET_SIZE(args));
        PyObject *x = rest && PyTuple_GET_SIZE(rest) ? PyTuple_GET_ITEM(rest, 0) : NULL;
        result = rest ? tj_contract_matmul(t, &matmul_ufunc, x, rest, kwargs) : NULL;
        Py_XDECREF(rest);
        goto done;
    }
    if (!opv && !PyErr_Occurred() && st->py_impls &&
        PyUnicode_CompareWithASCIIString(method, "__call__") == 0) {
        PyObject *impl = PyDict_GetItemWithError(st->py_impls, ufunc);   /* _impls_np.py */
        PyObject *rest = impl ? PyTuple_GetSlice(args, 2, PyTuple_GET_SIZE(args)) : NULL;
        if (rest) result = tj_write_own_result(t, impl, rest, PyObject_Call(impl, rest, kwargs));
        Py_XDECREF(rest);
        if (impl || PyErr_Occurred()) goto done;
    }
    if (!opv) {
        if (!PyErr_Occurred())
            tj_trace_error(t->st, "numpy.%U is not supported by tracejit yet", uname);
        goto done;
    }
    int reduce_method = PyUnicode_CompareWithASCIIString(method, "reduce") == 0;
    if (PyUnicode_CompareWithASCIIString(method, "outer") == 0 && tj_ops[PyLong_AsLong(opv)].arity == 2 &&
        PyTuple_GET_SIZE(args) == 4 && (!kwargs || !PyDict_GET_SIZE(kwargs))) {
        result = ufunc_outer(t, (int)PyLong_AsLong(opv), PyTuple_GET_ITEM(args, 2),
                             PyTuple_GET_ITEM(args, 3));
        goto done;
    }
    if (PyUnicode_CompareWithASCIIString(method, "accumulate") == 0) {
        result = ufunc_accumulate(t, (int)PyLong_AsLong(opv), uname, args, kwargs);
        goto done;
    }
    if (!reduce_method && PyUnicode_CompareWithASCIIString(method, "__call__") != 0) {
        tj_trace_error(t->st, "numpy.%U.%U is not supported by tracejit yet", uname, method);
        goto done;
    }
    PyObject *out = kwargs && !reduce_method ? PyDict_GetItemString(kwargs, "out") : NULL;
    if (out && PyTuple_Check(out) && PyTuple_GET_SIZE(out) == 1) out = PyTuple_GET_ITEM(out, 0);
    /* where=mask with a traced out: the elements where mask is False keep out's */
    PyObject *mask = out && !reduce_method ? PyDict_GetItemString(kwargs, "where") : NULL;
    int traced_out = out && tj_is_tracer(out) && PyDict_GET_SIZE(kwargs) == 1 + (mask != NULL);
    if (!reduce_method && kwargs && PyDict_GET_SIZE(kwargs) && !traced_out) {
        PyObject *keys = PyDict_Keys(kwargs);
        if (keys) {
            PyObject *out = PyDict_GetItemString(kwargs, "out");
            if ((!out || out == Py_None) && PyDict_GetItemString(kwargs, "where"))
                tj_trace_error(t->st, "numpy.%U(..., where=...) without out=: NumPy leaves the "
                               "elements where the mask is False uninitialized; pass a traced "
                               "out= (np.zeros_like(x), an argument) whose elements they keep",
                               uname);
            else if (out && out != Py_None)
                tj_trace_error(t->st, "numpy.%U(..., out=...) is not supported by tracejit where "
                               "out "
                               "is not a traced array (a NumPy array made or read by the "
                               "function, which is not traced) or with other keywords; use the "
                               "returned value", uname);
            else
                tj_trace_error(t->st, "numpy.%U keyword arguments %R are not supported by tracejit",
                               uname, keys);
            Py_DECREF(keys);
        }
        goto done;
    }
    int op = (int)PyLong_AsLong(opv);
    Py_ssize_t nin = PyTuple_GET_SIZE(args) - 2;
    if (reduce_method) {
        /* ufunc.reduce(a, axis=0, dtype=None, out=None, keepdims=False, ...) */
        int kind = op == TJ_OP_ADD ? TJ_RED_SUM : op == TJ_OP_MUL ? TJ_RED_PROD
                 : op == TJ_OP_MAX ? TJ_RED_MAX : op == TJ_OP_MIN ? TJ_RED_MIN
                 : op == TJ_OP_OR ? TJ_RED_ANY : op == TJ_OP_AND ? TJ_RED_ALL : -1;
        if (kind < 0 || nin < 1) {
            tj_trace_error(t->st, "numpy.%U.reduce is not supported by tracejit yet", uname);
            goto done;
        }
        PyObject *rest = PyTuple_GetSlice(args, 2, PyTuple_GET_SIZE(args));
        PyObject *kw = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
        PyObject *zero = PyLong_FromLong(0);
        if (rest && kw && zero && (nin > 1 || PyDict_GetItemString(kw, "axis") ||
                                   PyDict_SetItemString(kw, "axis", zero) == 0))
            result = tj_reduction_call(t, kind, PyTuple_GET_ITEM(rest, 0), rest, kw, 2);
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
    if (result && traced_out && mask && mask != Py_True) {
        PyObject *sel[3] = {mask, result, out};
        Py_SETREF(result, tj_apply(t, TJ_OP_WHERE, 3, sel, NULL));
    }
    if (result && traced_out) {
        PyObject *what = PyUnicode_FromFormat("numpy.%U(..., out=...)", uname);
        const char *w = what ? PyUnicode_AsUTF8(what) : NULL;
        Py_SETREF(result, w ? tj_write_out(out, result, w) : NULL);
        Py_XDECREF(what);
    }
done:
    Py_DECREF(uname);
    return result;
}

/* numpy.nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None): for floats
 * where(isnan, nan, where(isinf, where(signbit, neginf, posinf), x)) with the fill
 * values in x's dtype (numpy's defaults: the largest finite magnitudes); other
 * dtypes pass through. copy=False on floats writes into x (csrc/trace/write.c). */
static PyObject *nan_to_num(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                             PyObject *kwargs) {
    PyObject *copy = tj_arg(args, kwargs, 1, "copy", Py_True);
    PyObject *fill[3] = {tj_arg(args, kwargs, 2, "nan", NULL), tj_arg(args, kwargs, 3, "posinf", NULL),
                         tj_arg(args, kwargs, 4, "neginf", NULL)};
    int32_t id = tj_operand(t, x);
    int c = PyObject_IsTrue(copy);
    if (id < 0 || c < 0) return NULL;
    tj_node n = t->g.nodes[id];
    if (n.dtype < TJ_F32)
        return c ? tj_apply_cast(t, x, t->st->dtypes[n.dtype]) : Py_NewRef(x);
    double big = n.dtype == TJ_F32 ? FLT_MAX : n.dtype == TJ_F16 ? 65504.0   /* finfo's max */
               : n.dtype == TJ_BF16 ? 3.3895313892515355e38 : DBL_MAX, dflt[3] = {0.0, big, -big};
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
    if (r && !c) Py_SETREF(r, tj_tracer_assign(x, r, "numpy.nan_to_num(x, copy=False)"));
done:
    for (int i = 0; i < 3; i++) { Py_XDECREF(v[i]); Py_XDECREF(m[i]); }
    return r;
}

/* numpy.zeros_like / ones_like / empty_like / full_like(a, [fill_value,] dtype=None,
 * order='K', subok=True, shape=None, *, device=None): a fresh value of a's shape and
 * dtype (or those given). empty_like is zeros_like: a traced value has no
 * uninitialized memory. Results are C-contiguous, so order='F' is refused.
 * Datum: 0 zeros (empty), 1 ones, 2 full. */
static PyObject *like(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                      PyObject *kwargs) {
    const char *fname = f->name;
    int k = f->arg == 2;   /* parameters after fill_value move by one */
    PyObject *value = f->arg == 2 ? tj_arg(args, kwargs, 1, "fill_value", NULL)
                      : f->arg == 1 ? Py_True : Py_False;
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
            return tj_trace_error(t->st, "numpy.%s(..., order='F') is not supported by tracejit: "
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
            PyErr_Format(PyExc_TypeError, "numpy.%s(dtype=%R): tracejit supports "
                         TJ_SUPPORTED_DTYPES " in native byte order", fname, (PyObject *)descr);
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
            return tj_trace_error(t->st, "numpy.%s(..., shape=%R): tracejit supports at most %d "
                                  "dimensions", fname, shape_arg, TJ_MAXDIM);
        if (neg) {
            PyErr_SetString(PyExc_ValueError, "negative dimensions are not allowed");
            return NULL;
        }
    }
    return tj_apply_fill(t, value, dt, n.ndim, n.shape);
}

static PyObject *where(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                       PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) != 3)
        return tj_trace_error(t->st, "numpy.where(cond) with one argument returns indices whose "
                              "number depends on the data, which a trace cannot represent; "
                              "use numpy.where(cond, x, y)");
    return tj_tracer_np(tj_apply(t, TJ_OP_WHERE, 3, &PyTuple_GET_ITEM(args, 0), NULL),
                        TJ_NP_ARRAY);
}

static PyObject *clip(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                      PyObject *kwargs) {
    PyObject *lo = tj_arg(args, kwargs, 1, "a_min", NULL), *hi = tj_arg(args, kwargs, 2, "a_max", NULL);
    if (!lo && kwargs) lo = PyDict_GetItemString(kwargs, "min");
    if (!hi && kwargs) hi = PyDict_GetItemString(kwargs, "max");
    PyObject *out = kwargs ? PyDict_GetItemString(kwargs, "out") : NULL;
    if (out && PyTuple_Check(out) && PyTuple_GET_SIZE(out) == 1) out = PyTuple_GET_ITEM(out, 0);
    if (out && out != Py_None && !tj_is_tracer(out))
        return tj_trace_error(t->st, "numpy.clip(..., out=...) is not supported by tracejit where "
                              "out is not a traced array (a NumPy array made or read by the "
                              "function, which is not traced); use the returned value");
    PyObject *r = tj_apply_clip(t, x, lo ? lo : Py_None, hi ? hi : Py_None);
    if (r && out && out != Py_None)   /* into out, as the ufunc's out= (its casting rule) */
        Py_SETREF(r, tj_write_out(out, r, "numpy.clip(..., out=...)"));
    return r;
}

static PyObject *transpose(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                           PyObject *kwargs) {
    return tj_apply_transpose(t, x, tj_arg(args, kwargs, 1, "axes", Py_None));
}

static PyObject *astype(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                        PyObject *kwargs) {
    PyObject *dt = tj_arg(args, kwargs, 1, "dtype", NULL);
    if (!dt) { PyErr_SetString(PyExc_TypeError, "astype() needs a dtype"); return NULL; }
    return tj_tracer_np_as(tj_astype(t, x, dt, tj_arg(args, kwargs, 2, "copy", NULL)), x);
}

/* numpy.shape(a), numpy.ndim(a): the attribute of the same name */
static PyObject *attribute(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                           PyObject *kwargs) {
    return PyObject_GetAttrString(x, f->name);
}

static PyObject *size(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                      PyObject *kwargs) {
    if (tj_arg(args, kwargs, 1, "axis", Py_None) != Py_None)
        return tj_trace_error(t->st, "numpy.size(a, axis) is not supported by tracejit yet");
    return PyObject_GetAttrString(x, "size");
}

/* __array_function__(func, types, args, kwargs) */
PyObject *tj_array_function(PyObject *self, PyObject *a, PyObject *kw) {
    tj_state *st = ((tj_tracer *)self)->trace->st;   /* a method of Tracer */
    PyObject *func, *types, *args, *kwargs;
    if (!PyArg_ParseTuple(a, "OOO!O:__array_function__", &func, &types, &PyTuple_Type, &args,
                          &kwargs))
        return NULL;
    if (kwargs == Py_None) kwargs = NULL;
    tj_trace *t = trace_of(self);
    if (!t) return NULL;
    if (tj_complex_any(st, args, kwargs)) {
        PyObject *cargs = PyTuple_Pack(3, func, types, args);
        PyObject *r = cargs ? tj_complex_op(st, "function", cargs, kwargs) : NULL;
        Py_XDECREF(cargs);
        return r;
    }
    PyObject *hv = PyDict_GetItemWithError(st->array_funcs, func);
    if (!hv && !PyErr_Occurred() && st->py_impls) {   /* a composition (_impls.py) */
        PyObject *impl = PyDict_GetItemWithError(st->py_impls, func);
        if (impl) return tj_write_own_result(t, func, args, PyObject_Call(impl, args, kwargs));
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
            tj_trace_error(t->st, "%U returns an array whose size depends on the data, which a "
                           "trace "
                           "cannot represent; keep the shape fixed and select with "
                           "np.where(cond, x, fill) instead", name);
        else
            tj_trace_error(t->st, "%U is not supported by tracejit yet", name);
        Py_DECREF(name);
        return NULL;
    }
    const tj_npfunc *f = &np_funcs[PyLong_AsLong(hv)];
    PyObject *x = tj_arg(args, kwargs, 0, f->first, NULL);
    if (!x) {
        PyErr_SetString(PyExc_TypeError, "missing the array argument");
        return NULL;
    }
    return f->fn(t, f, x, args, kwargs);
}
