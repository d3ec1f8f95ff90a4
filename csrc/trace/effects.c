/* The entry points a trace refuses (python/tracejit/_effects.py says which and why):
 * module attributes swapped for refusing wrappers while any trace runs on any thread.
 * The swap and its undo are C around the traced call (compile.c), so no
 * KeyboardInterrupt can fall between them and leave a wrapper behind.
 * Contract: after the last running trace ends, every swapped attribute holds what it
 * held before the first one began. */
#include "tracejit.h"

/* _register_effects(make): a callable run at the first trace of the process (importing
 * numpy.random costs ~10 ms that an import of tracejit should not pay), returning a
 * list of [module, name, wrapper] lists; each gets a fourth item, the original, while
 * swapped. */
PyObject *tj_effects_register(PyObject *m, PyObject *make) {
    tj_state *st = tj_state_of(m);
    if (!PyCallable_Check(make)) {
        PyErr_SetString(PyExc_TypeError, "_register_effects(callable)");
        return NULL;
    }
    if (st->effects_active) {      /* the swapped-in list holds the originals */
        PyErr_SetString(PyExc_RuntimeError, "_register_effects while a trace runs");
        return NULL;
    }
    Py_XSETREF(st->effects_make, Py_NewRef(make));
    Py_CLEAR(st->effects);
    Py_RETURN_NONE;
}

/* The swap list, made at the first call. 0/-1. */
static int effects_list(tj_state *st) {
    if (st->effects || !st->effects_make) return 0;
    PyObject *swaps = PyObject_CallNoArgs(st->effects_make);
    if (!swaps) return -1;
    int ok = PyList_Check(swaps);
    for (Py_ssize_t i = 0; ok && i < PyList_GET_SIZE(swaps); i++) {
        PyObject *s = PyList_GET_ITEM(swaps, i);
        ok = PyList_Check(s) && PyList_GET_SIZE(s) == 3 && PyUnicode_Check(PyList_GET_ITEM(s, 1));
    }
    if (!ok) {
        Py_DECREF(swaps);
        PyErr_SetString(PyExc_TypeError, "_register_effects: make() gives a list of "
                        "[module, name, wrapper] lists");
        return -1;
    }
    st->effects = swaps;
    return 0;
}

/* One swap: module.name = value, keeping what it was in item 3. The caller's pending
 * exception (if any) is kept; a failing attribute is skipped. */
static void swap_one(PyObject *s, int in) {
    PyObject *mod = PyList_GET_ITEM(s, 0), *name = PyList_GET_ITEM(s, 1);
    if (in) {
        PyObject *orig = PyObject_GetAttr(mod, name);
        if (!orig) { PyErr_Clear(); return; }
        if (PyList_Append(s, orig) < 0 || PyObject_SetAttr(mod, name, PyList_GET_ITEM(s, 2)) < 0) {
            PyErr_Clear();
            if (PyList_GET_SIZE(s) == 4) PyList_SetSlice(s, 3, 4, NULL);
        }
        Py_DECREF(orig);
    } else if (PyList_GET_SIZE(s) == 4) {
        if (PyObject_SetAttr(mod, name, PyList_GET_ITEM(s, 3)) < 0) PyErr_Clear();
        if (PyList_SetSlice(s, 3, 4, NULL) < 0) PyErr_Clear();
    }
}

static void swap_all(tj_state *st, int in) {
    if (!st->effects) return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(st->effects); i++)
        swap_one(PyList_GET_ITEM(st->effects, i), in);
    PyErr_Restore(type, value, tb);
}

int tj_effects_enter(tj_state *st) {
    if (st->effects_active == 0 && effects_list(st) < 0) return -1;
    if (st->effects_active++ == 0) swap_all(st, 1);
    return 0;
}

void tj_effects_leave(tj_state *st) {
    if (--st->effects_active == 0) swap_all(st, 0);
}

/* _tracing(): whether a trace runs on this thread (the wrappers refuse only there). */
PyObject *tj_effects_tracing(PyObject *m, PyObject *unused) {
    return PyBool_FromLong(tj_trace_current() != NULL);
}
