/* The guards of a plan: what a replay checks before it binds anything, in one place.
 * A trace assumed things its key does not hold: torch's default dtype (for promotion),
 * the dtype, shape and layout of each array it reads from outside (re-read at every
 * call), that a Python int argument it computed with as int32 fits, and the Python
 * values it read as constants (python/tracejit/_effects.py's guards). A failing guard
 * makes the plan stale (the call retraces, its reason in last_retrace), except the
 * int32 range, which NumPy too refuses (OverflowError).
 * Contract: tj_guards_check reads each capture once and hands it (and a torch
 * capture's DLPack view) to the binding that follows: what was checked is what runs. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

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
static int pyvalue_holds(PyObject *g, PyObject **reason) {
    PyObject *box = PyTuple_GET_ITEM(g, 0), *was = PyTuple_GET_ITEM(g, 2);
    PyObject *now = PyCell_Check(box) ? PyCell_GET(box)
                                      : PyDict_GetItemWithError(box, PyTuple_GET_ITEM(g, 1));
    if (now == was) return 0;
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

/* A Python int argument the trace computed with as int32 (fits_i32): -1 +
 * OverflowError when it does not fit, as NumPy raises; else 0. */
static int int32_holds(PyObject *o) {
    if (!PyLong_CheckExact(o)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (!overflow && v >= INT32_MIN && v <= INT32_MAX) return 0;
    PyErr_Format(PyExc_OverflowError, "Python integer %R out of bounds for %s", o,
                 overflow ? "int64" : "int32");
    return -1;
}

int tj_guards_build(tj_plan *p) {
    int n = (p->torch_dflt >= 0) + (p->pyvalues ? (int)PyTuple_GET_SIZE(p->pyvalues) : 0);
    for (int i = 0; i < p->n_leaf_slots; i++)
        n += p->slots[i].kind == TJ_SLOT_CAPTURE ||
             (p->slots[i].kind == TJ_SLOT_ARG && p->slots[i].fits_i32);
    p->n_guards = 0;
    if (!n) return 0;
    if (!(p->guards = PyMem_Calloc((size_t)n, sizeof *p->guards))) { PyErr_NoMemory(); return -1; }
    /* the cheapest first: a Python value is a dict lookup */
    for (Py_ssize_t k = 0; p->pyvalues && k < PyTuple_GET_SIZE(p->pyvalues); k++)
        p->guards[p->n_guards++] = (tj_guard){TJ_GUARD_PYVALUE, (int)k};
    if (p->torch_dflt >= 0) p->guards[p->n_guards++] = (tj_guard){TJ_GUARD_TORCH_DTYPE, 0};
    for (int i = 0; i < p->n_leaf_slots; i++) {
        if (p->slots[i].kind == TJ_SLOT_CAPTURE)
            p->guards[p->n_guards++] = (tj_guard){TJ_GUARD_CAPTURE, i};
        else if (p->slots[i].kind == TJ_SLOT_ARG && p->slots[i].fits_i32)
            p->guards[p->n_guards++] = (tj_guard){TJ_GUARD_INT32, i};
    }
    return 0;
}

int tj_guards_check(const tj_plan *p, const tj_flat *f, PyObject **cap_obj, tj_dlview *cap_view,
                    PyObject **reason) {
    for (int k = 0; k < p->n_guards; k++) {
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
        case TJ_GUARD_INT32:
            rc = int32_holds(f->leaves[p->slots[g->index].index]);
            break;
        }
        if (rc) return rc;
    }
    return 0;
}
