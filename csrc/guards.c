/* The guards of a plan: what a replay checks before it binds anything, in one place.
 * A trace assumed things its key does not hold: torch's default dtype (for promotion),
 * the dtype, shape and layout of each array it reads from outside (re-read at every
 * call), that a Python int argument it computed with as int32 fits, and the Python
 * values it read as constants (python/tracejit/_effects.py's guards). A failing guard
 * makes the plan stale (the call retraces, its reason in last_retrace), except the
 * int32 range, which NumPy too refuses (OverflowError); and the values Python read
 * while tracing (csrc/trace/concrete.c): an argument's, checked here before the kernel,
 * and any other's, a hidden output of the kernel checked after it runs and before
 * anything it computed is returned (tj_guards_check_values).
 * Contract: tj_guards_check reads each capture once and hands it (and a torch
 * capture's DLPack view) to the binding that follows: what was checked is what runs. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>
#include <math.h>

/* The array a capture refers to now (borrowed), or NULL without an exception when
 * its name is gone. */
static PyObject *capture_now(PyObject *entry) {
    int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
    PyObject *where = PyTuple_GET_ITEM(entry, 1);
    if (kind == 0) return PyCell_GET(where);
    if (kind == 1 || kind == 3) return PyDict_GetItemWithError(where, PyTuple_GET_ITEM(entry, 2));
    return where;
}

/* "float32(3, 4)", plus " strided" when not C-contiguous. New reference. */
static PyObject *array_desc(tj_state *st, PyObject *a) {
    PyObject *dt = PyObject_GetAttrString(a, "dtype"), *sh = PyObject_GetAttrString(a, "shape");
    int contig = 1;
    if (PyArray_Check(a)) {
        contig = PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a) != 0;
    } else {   /* a torch tensor: "float32(3, 4)" like an array */
        tj_dlview v;
        const char *why;
        char shape[256];
        PyObject *r = NULL;
        if (tj_dl_torch_view(st, a, &v, &why) == 0) {
            tj_shape_str(shape, sizeof shape, v.ndim, v.shape);
            r = PyUnicode_FromFormat("%s%s%s", tj_dtype_name(v.dtype), shape,
                                     v.contig ? "" : " strided");
        }
        PyErr_Clear();
        Py_XDECREF(dt);
        Py_XDECREF(sh);
        return r ? r : PyUnicode_FromString("torch tensor");
    }
    PyObject *r = dt && sh ? PyUnicode_FromFormat("%S%S%s", dt, sh, contig ? "" : " strided")
                           : NULL;
    Py_XDECREF(dt);
    Py_XDECREF(sh);
    return r;
}

static PyObject *stale_reason(tj_state *st, PyObject *entry, PyObject *now) {
    int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
    PyObject *name = PyTuple_GET_ITEM(entry, 2);
    const char *what = kind == 0 ? "closure variable" : kind == 1 ? "global"
                     : kind == 3 ? "module parameter or buffer" : "captured array";
    PyObject *old = array_desc(st, PyTuple_GET_ITEM(entry, 3));
    PyObject *cur = now && (PyArray_Check(now) || tj_dl_kind(st, now) == TJ_LIB_TORCH)
                        ? array_desc(st, now)
                                              : PyUnicode_FromString(now ? Py_TYPE(now)->tp_name
                                                                         : "unbound");
    PyObject *r = old && cur ? PyUnicode_FromFormat("%s %R: %U -> %U", what, name, old, cur) : NULL;
    Py_XDECREF(old);
    Py_XDECREF(cur);
    return r;
}

/* A Python value the trace read as a constant (container, key, value, label): 0 still
 * there, 1 + *reason changed, -1 + exception. An equal number or string (a notebook
 * cell run again) is the same constant. */
/* Whether NumPy array a still holds the bytes `snap` (_effects._array_bytes): 0, 1 +
 * *reason, -1. A C-contiguous array is compared in place. */
static int contents_hold(PyObject *a, PyObject *snap, PyObject *label, PyObject **reason) {
    int same;
    if (PyArray_Check(a) && PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a)) {
        Py_ssize_t n = PyArray_NBYTES((PyArrayObject *)a);
        same = n == PyBytes_GET_SIZE(snap) &&
               (n == 0 || memcmp(PyArray_DATA((PyArrayObject *)a), PyBytes_AS_STRING(snap),
                                 (size_t)n) == 0);
    } else {
        PyObject *b = PyObject_CallMethod(a, "tobytes", NULL);
        if (!b) return -1;
        same = PyObject_RichCompareBool(b, snap, Py_EQ);
        Py_DECREF(b);
        if (same < 0) return -1;
    }
    if (same) return 0;
    *reason = PyUnicode_FromFormat("the contents of %U changed (NumPy code on it alone ran "
                                   "while tracing: its results were constants)", label);
    return *reason ? 1 : -1;
}

static int pyvalue_holds(PyObject *g, PyObject **reason) {
    PyObject *box = PyTuple_GET_ITEM(g, 0), *key = PyTuple_GET_ITEM(g, 1);
    PyObject *was = PyTuple_GET_ITEM(g, 2), *now;
    if (PyCell_Check(box)) {
        now = PyCell_GET(box);
    } else if (PyList_Check(box) || PyTuple_Check(box)) {   /* an array a list holds */
        Py_ssize_t i = PyLong_AsSsize_t(key);
        if (i < 0 && PyErr_Occurred()) return -1;
        now = i < PySequence_Fast_GET_SIZE(box) ? PySequence_Fast_GET_ITEM(box, i) : NULL;
    } else {
        now = PyDict_GetItemWithError(box, key);
    }
    if (now == was)
        return PyTuple_GET_SIZE(g) > 4 ? contents_hold(now, PyTuple_GET_ITEM(g, 4),
                                                       PyTuple_GET_ITEM(g, 3), reason) : 0;
    if (!now && PyErr_Occurred()) return -1;
    if (now && Py_TYPE(now) == Py_TYPE(was) &&
        (PyFloat_CheckExact(was) || PyLong_CheckExact(was) || PyUnicode_CheckExact(was) ||
         PyBool_Check(was) || PyComplex_CheckExact(was) || PyTuple_CheckExact(was))) {
        int eq = PyObject_RichCompareBool(now, was, Py_EQ);
        if (eq) return eq < 0 ? -1 : 0;
    }
    *reason = now ? PyUnicode_FromFormat("%U changed (%.60R -> %.60R)", PyTuple_GET_ITEM(g, 3),
                                         was, now)
                  : PyUnicode_FromFormat("%U was deleted", PyTuple_GET_ITEM(g, 3));
    return *reason ? 1 : -1;
}

/* Capture c of slot d as it is now, into *obj (new reference) and, for a torch
 * tensor, *view: 0 as traced, 1 + *reason stale, -1 + exception. */
static int capture_holds(const tj_plan *p, const tj_slotdesc *d, PyObject **obj,
                         tj_dlview *view, PyObject **reason) {
    PyObject *entry = PyList_GET_ITEM(p->captures, d->index);
    PyObject *o = capture_now(entry);
    if (!o && PyErr_Occurred()) return -1;
    int ok;
    tj_state *st = p->st;
    if (d->torch) {
        const char *why = NULL;
        int vr = o && tj_dl_kind(st, o) == TJ_LIB_TORCH ? tj_dl_torch_view(st, o, view, &why) : 2;
        if (vr < 0) return -1;
        if (vr == 0 && tj_dl_strict_refuses(st, o)) vr = 1, why = tj_dl_why_grad;
        if (vr == 1) {
            PyErr_Format(why == tj_dl_why_grad && st->grad_capture_error
                             ? st->grad_capture_error : PyExc_TypeError,
                         "the torch tensor %R the compiled function reads %s",
                         PyTuple_GET_ITEM(entry, 2), why);
            return -1;
        }
        ok = vr == 0 && view->dtype == d->dtype && view->contig == d->contig &&
             view->device == p->device && view->device_id == p->device_id &&
             view->ndim == p->cap_ndim[d->index] &&
             !memcmp(view->shape, p->cap_shape[d->index], (size_t)view->ndim * sizeof(int64_t));
    } else {
        PyArrayObject *a = (PyArrayObject *)o;
        ok = o && PyArray_CheckExact(o) && tj_dtype_from_typenum(PyArray_TYPE(a)) == d->dtype &&
             PyArray_ISNOTSWAPPED(a) && (PyArray_IS_C_CONTIGUOUS(a) != 0) == d->contig &&
             PyArray_NDIM(a) == p->cap_ndim[d->index] &&
             !memcmp(PyArray_DIMS(a), p->cap_shape[d->index],
                     (size_t)PyArray_NDIM(a) * sizeof(int64_t));
    }
    if (!ok) {
        *reason = stale_reason(st, entry, o);
        return *reason ? 1 : -1;
    }
    *obj = Py_NewRef(o);
    return 0;
}

/* A Python int argument the trace computed with as the narrower integer dtype `dt`
 * (tj_slotdesc.fits): -1 + OverflowError when it does not fit, as NumPy raises; else 0. */
static int int_holds(PyObject *o, int dt) {
    if (!PyLong_CheckExact(o)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (!overflow && tj_dtype_holds(dt, v, 0)) return 0;
    PyErr_Format(PyExc_OverflowError, "Python integer %R out of bounds for %s", o,
                 overflow ? "int64" : tj_dtype_name(dt));
    return -1;
}

/* ---- values the trace read (csrc/trace/concrete.c) ---------------------------- */

static int truth(int dtype, const unsigned char *v) {
    tj_scalar x = tj_scalar_load(dtype, v);
    return tj_dtype_is_float(dtype) ? x.f != 0 : x.i != 0;   /* NaN is true */
}

static double as_double(int dtype, const unsigned char *v) {   /* a float of any width */
    return tj_scalar_load(dtype, v).f;
}

/* A float64 value against its constant on the right (`s > 0`): the common value
 * guard, compared without the loads' dtype dispatch (a passing guard's cost, issue 19). */
static inline int compare_f64(const tj_guard *g, const unsigned char *v) {
    double a, b = g->cmp_val.f;
    memcpy(&a, v, sizeof a);
    switch (g->cmp_op) {
    case TJ_OP_LT: return a < b;
    case TJ_OP_LE: return a <= b;
    case TJ_OP_GT: return a > b;
    case TJ_OP_GE: return a >= b;
    case TJ_OP_EQ: return a == b;
    default: return a != b;
    }
}

static inline int compare(const tj_guard *g, const unsigned char *v) {
    double a, b;
    if (g->dtype == TJ_F64 && !g->cmp_left) return compare_f64(g, v);
    if (g->dtype >= TJ_F32) {
        a = as_double(g->dtype, v), b = g->cmp_val.f;
    } else {
        int64_t x = tj_scalar_load(g->dtype, v).i;
        int64_t c = g->cmp_val.i;
        if (g->dtype == TJ_U64 && (x < 0 || c < 0)) {
            /* a uint64 past int64's range against a constant: its order is the sign's */
            x = x < 0 ? 1 : 0;
            c = c < 0 ? -1 : 0;
        }
        if (g->cmp_left) { int64_t tmp = x; x = c; c = tmp; }
        switch (g->cmp_op) {
        case TJ_OP_LT: return x < c;
        case TJ_OP_LE: return x <= c;
        case TJ_OP_GT: return x > c;
        case TJ_OP_GE: return x >= c;
        case TJ_OP_EQ: return x == c;
        default: return x != c;
        }
    }
    if (g->cmp_left) { double tmp = a; a = b; b = tmp; }
    switch (g->cmp_op) {
    case TJ_OP_LT: return a < b;
    case TJ_OP_LE: return a <= b;
    case TJ_OP_GT: return a > b;
    case TJ_OP_GE: return a >= b;
    case TJ_OP_EQ: return a == b;
    default: return a != b;
    }
}

int tj_guards_compare(const tj_guard *g, const unsigned char *v) { return compare(g, v); }

/* Whether g's value at `now` (g->n values of g->dtype) is what the trace read. */
static inline int values_hold(const tj_guard *g, const unsigned char *now) {
    int mode = g->mode, dtype = g->dtype;
    const unsigned char *rec = g->rec;
    int64_t n = g->n;
    if (mode == TJ_VALUE_TRUTH) return truth(dtype, now) == g->rec_truth;
    if (mode == TJ_VALUE_CMP) return compare(g, now) == g->rec_truth;
    if (mode == TJ_VALUE_INT) {   /* int() of a float: the same truncation (finite: rec is) */
        double a = as_double(dtype, now), b = as_double(dtype, rec);
        return trunc(a) == trunc(b);
    }
    int size = tj_dtype_size(dtype);
    if (dtype != TJ_F32 && dtype != TJ_F64) return !memcmp(now, rec, (size_t)(n * size));
    for (int64_t i = 0; i < n; i++, now += size, rec += size)
        if (memcmp(now, rec, (size_t)size)) {
            double a = as_double(dtype, now), b = as_double(dtype, rec);
            if (!(a != a && b != b)) return 0;   /* any NaN is any NaN */
        }
    return 1;
}

/* The plan's values entry of guard g: (kind, where, mode, dtype, recorded, label, shown) */
static PyObject *entry_of(const tj_plan *p, const tj_guard *g) {
    return PyTuple_GET_ITEM(p->values, g->entry);
}

/* "<label>: <shown> when traced, <now> now". New reference. */
static PyObject *value_reason(const tj_plan *p, const tj_guard *g, PyObject *now) {
    PyObject *e = entry_of(p, g);
    return now ? PyUnicode_FromFormat("%U: %U when traced, %.60S now", PyTuple_GET_ITEM(e, 5),
                                      PyTuple_GET_ITEM(e, 6), now)
               : PyUnicode_FromFormat("%U: %U when traced, other values now",
                                      PyTuple_GET_ITEM(e, 5), PyTuple_GET_ITEM(e, 6));
}

/* An argument the trace read (a Python number or NumPy scalar used as a size, an
 * index, a branch): 0 holds, 1 + *reason, -1 + exception. */
static int arg_holds(const tj_plan *p, const tj_guard *g, PyObject *now, PyObject **reason) {
    PyObject *was = PyTuple_GET_ITEM(entry_of(p, g), 4);
    if (now == was) return 0;
    int ok;
    if (PyLong_Check(was) && g->mode != TJ_VALUE_CMP) {   /* exact, however large */
        if (g->mode == TJ_VALUE_TRUTH) {
            int a = PyObject_IsTrue(now);
            if (a < 0) return -1;
            ok = a == PyObject_IsTrue(was);
        } else if ((ok = PyObject_RichCompareBool(now, was, Py_EQ)) < 0) {
            return -1;
        }
    } else {
        unsigned char buf[8] = {0};
        if (PyFloat_Check(now)) {
            double d = PyFloat_AS_DOUBLE(now);
            memcpy(buf, &d, 8);
        } else if (PyLong_Check(now) && g->dtype == TJ_F64) {   /* beyond int64 */
            double d = PyLong_AsDouble(now);
            if (d == -1.0 && PyErr_Occurred()) return -1;
            memcpy(buf, &d, 8);
        } else if (PyLong_Check(now)) {   /* (a comparison: the key says int64) */
            long long v = PyLong_AsLongLong(now);
            if (v == -1 && PyErr_Occurred()) return -1;
            memcpy(buf, &v, 8);
        } else if (PyArray_ScalarAsCtype(now, buf), PyErr_Occurred()) {
            return -1;
        }
        ok = values_hold(g, buf);
        if (!ok && g->mode == TJ_VALUE_CMP) {
            *reason = value_reason(p, g, compare(g, buf) ? Py_True : Py_False);
            return *reason ? 1 : -1;
        }
    }
    if (ok) return 0;
    PyObject *shown = g->mode == TJ_VALUE_TRUTH ? Py_NewRef(PyObject_IsTrue(now) ? Py_True : Py_False)
                                               : PyObject_Repr(now);
    *reason = shown ? value_reason(p, g, shown) : NULL;
    Py_XDECREF(shown);
    return *reason ? 1 : -1;
}

int tj_guards_value_holds(const tj_plan *p, int k, void *const *P) {
    const tj_guard *g = &p->guards[p->first_value + k];
    const unsigned char *now = P[p->sched.out_slot_of[g->index]];
    if (g->mode == TJ_VALUE_CMP && g->dtype == TJ_F64 && !g->cmp_left)
        return compare_f64(g, now) == g->rec_truth;
    return values_hold(g, now);
}

int tj_guards_check_values(const tj_plan *p, void *const *P, PyObject **reason) {
    for (int k = p->first_value; k < p->n_guards; k++) {
        const tj_guard *g = &p->guards[k];
        const unsigned char *now = P[p->sched.out_slot_of[g->index]];
        if (values_hold(g, now)) continue;
        PyObject *shown = NULL;
        if (g->mode == TJ_VALUE_TRUTH || g->mode == TJ_VALUE_CMP) {
            int b = g->mode == TJ_VALUE_TRUTH ? truth(g->dtype, now) : compare(g, now);
            shown = Py_NewRef(b ? Py_True : Py_False);
        } else if (g->n == 1) {
            PyArray_Descr *d = PyArray_DescrFromType(tj_dtype_typenum(g->dtype));
            PyObject *sc = d ? PyArray_Scalar((void *)now, d, NULL) : NULL;
            PyObject *item = sc ? PyObject_CallMethod(sc, "item", NULL) : NULL;
            Py_XDECREF(d);
            shown = item ? PyObject_Repr(item) : NULL;
            Py_XDECREF(sc);
            Py_XDECREF(item);
            PyErr_Clear();
        }
        *reason = value_reason(p, g, shown);
        Py_XDECREF(shown);
        return *reason ? 1 : -1;
    }
    return 0;
}

/* The trace's values, as guards from index k on; VALUE guards read the graph outputs
 * [first, ...) in order. */
static int value_guards(tj_plan *p, int kind, int first) {
    for (Py_ssize_t i = 0; p->values && i < PyTuple_GET_SIZE(p->values); i++) {
        PyObject *e = PyTuple_GET_ITEM(p->values, i), *rec = PyTuple_GET_ITEM(e, 4);
        if (PyLong_AsLong(PyTuple_GET_ITEM(e, 0)) != kind) continue;
        tj_guard g = {kind, (int)PyLong_AsLong(PyTuple_GET_ITEM(e, 1)),
                      (int)PyLong_AsLong(PyTuple_GET_ITEM(e, 2)),
                      (int)PyLong_AsLong(PyTuple_GET_ITEM(e, 3)), 1, (int)i, NULL};
        if (PyBytes_Check(rec)) {
            g.rec = (const unsigned char *)PyBytes_AS_STRING(rec);
            g.n = PyBytes_GET_SIZE(rec) / tj_dtype_size(g.dtype);
        }
        PyObject *cmp = PyTuple_GET_ITEM(e, 7);
        if (cmp != Py_None) {   /* (op, constant on the left, constant) */
            g.cmp_op = (int)PyLong_AsLong(PyTuple_GET_ITEM(cmp, 0));
            g.cmp_left = PyObject_IsTrue(PyTuple_GET_ITEM(cmp, 1));
            PyObject *c = PyTuple_GET_ITEM(cmp, 2);
            if (g.dtype >= TJ_F32) g.cmp_val.f = PyFloat_AsDouble(c);
            else g.cmp_val.i = PyLong_AsLongLong(c);
        }
        if (g.rec && g.mode == TJ_VALUE_CMP) g.rec_truth = compare(&g, g.rec);
        if (g.rec && g.mode == TJ_VALUE_TRUTH) g.rec_truth = truth(g.dtype, g.rec);
        if (kind == TJ_GUARD_VALUE) g.index = first++;
        p->guards[p->n_guards++] = g;
    }
    return PyErr_Occurred() ? -1 : 0;
}

int tj_guards_build(tj_plan *p) {
    int nv = p->values ? (int)PyTuple_GET_SIZE(p->values) : 0;
    int n = (p->torch_dflt >= 0) + (p->pyvalues ? (int)PyTuple_GET_SIZE(p->pyvalues) : 0) + nv;
    for (int i = 0; i < p->n_leaf_slots; i++)
        n += p->slots[i].kind == TJ_SLOT_CAPTURE ||
             (p->slots[i].kind == TJ_SLOT_ARG && p->slots[i].fits);
    p->n_guards = p->first_value = 0;
    if (!n) return 0;
    if (!(p->guards = PyMem_Calloc((size_t)n, sizeof *p->guards))) { PyErr_NoMemory(); return -1; }
    /* the cheapest first: a Python value is a dict lookup */
    for (Py_ssize_t k = 0; p->pyvalues && k < PyTuple_GET_SIZE(p->pyvalues); k++)
        p->guards[p->n_guards++] = (tj_guard){TJ_GUARD_PYVALUE, (int)k};
    if (p->torch_dflt >= 0) p->guards[p->n_guards++] = (tj_guard){TJ_GUARD_TORCH_DTYPE, 0};
    if (value_guards(p, TJ_GUARD_ARG, 0) < 0) return -1;
    for (int i = 0; i < p->n_leaf_slots; i++) {
        if (p->slots[i].kind == TJ_SLOT_CAPTURE)
            p->guards[p->n_guards++] = (tj_guard){TJ_GUARD_CAPTURE, i};
        else if (p->slots[i].kind == TJ_SLOT_ARG && p->slots[i].fits)
            p->guards[p->n_guards++] = (tj_guard){TJ_GUARD_FITS, i};
    }
    p->first_value = p->n_guards;
    /* the hidden outputs: after the template's, before the checks' */
    return value_guards(p, TJ_GUARD_VALUE, p->n_results - p->n_hidden);
}

int tj_guards_check(const tj_plan *p, const tj_flat *f, PyObject **cap_obj, tj_dlview *cap_view,
                    PyObject **reason) {
    for (int k = 0; k < p->first_value; k++) {
        const tj_guard *g = &p->guards[k];
        int rc = 0;
        switch (g->kind) {
        case TJ_GUARD_PYVALUE:
            rc = pyvalue_holds(PyTuple_GET_ITEM(p->pyvalues, g->index), reason);
            break;
        case TJ_GUARD_TORCH_DTYPE: {
            int now = tj_dl_default_float(p->st);
            if (now < 0) return -1;
            if (now != p->torch_dflt) {
                *reason = PyUnicode_FromFormat("torch default dtype %s -> %s",
                                               tj_dtype_name(p->torch_dflt), tj_dtype_name(now));
                rc = *reason ? 1 : -1;
            }
            break;
        }
        case TJ_GUARD_CAPTURE: {
            const tj_slotdesc *d = &p->slots[g->index];
            rc = capture_holds(p, d, &cap_obj[d->index], &cap_view[d->index], reason);
            break;
        }
        case TJ_GUARD_FITS:
            rc = int_holds(f->leaves[p->slots[g->index].index], p->slots[g->index].fits);
            break;
        case TJ_GUARD_ARG:
            rc = arg_holds(p, g, f->leaves[p->slots[g->index].index], reason);
            break;
        }
        if (rc) return rc;
    }
    return 0;
}

PyObject *tj_guards_describe(const tj_plan *p) {
    PyObject *r = PyTuple_New(p->n_guards);
    for (int k = 0; r && k < p->n_guards; k++) {
        const tj_guard *g = &p->guards[k];
        PyObject *s = NULL;
        switch (g->kind) {
        case TJ_GUARD_PYVALUE: {
            PyObject *v = PyTuple_GET_ITEM(p->pyvalues, g->index);
            s = PyUnicode_FromFormat("%U is %.60R", PyTuple_GET_ITEM(v, 3), PyTuple_GET_ITEM(v, 2));
            break;
        }
        case TJ_GUARD_TORCH_DTYPE:
            s = PyUnicode_FromFormat("torch's default dtype is %s", tj_dtype_name(p->torch_dflt));
            break;
        case TJ_GUARD_CAPTURE: {
            PyObject *e = PyList_GET_ITEM(p->captures, p->slots[g->index].index);
            PyObject *d = array_desc(p->st, PyTuple_GET_ITEM(e, 3)), *name = PyTuple_GET_ITEM(e, 2);
            long kind = PyLong_AsLong(PyTuple_GET_ITEM(e, 0));
            const char *what = kind == 0 ? "closure variable" : kind == 1 ? "global"
                             : kind == 3 ? "module parameter or buffer" : "captured array";
            s = !d ? NULL : name == Py_None ? PyUnicode_FromFormat("a %s is %U", what, d)
                                            : PyUnicode_FromFormat("%s %R is %U", what, name, d);
            Py_XDECREF(d);
            break;
        }
        case TJ_GUARD_FITS:
            s = PyUnicode_FromFormat("argument leaf %d fits %s", p->slots[g->index].index,
                                     tj_dtype_name(p->slots[g->index].fits));
            break;
        default: {
            PyObject *e = entry_of(p, g);
            s = PyUnicode_FromFormat("%U is %U", PyTuple_GET_ITEM(e, 5), PyTuple_GET_ITEM(e, 6));
        }
        }
        if (!s) Py_CLEAR(r);
        else PyTuple_SET_ITEM(r, k, s);
    }
    return r;
}
