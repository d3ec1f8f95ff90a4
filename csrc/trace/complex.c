/* Complex numbers (issue 22, item 1): the IR has no complex dtype. A complex value of a
 * trace is a pair of real tracers (python/tracejit/_complex.py: Complex, its real and
 * imaginary parts), so every pass, emitter and backend sees real arrays only. The C
 * side routes to Python wherever a complex operand meets the tracer: a complex Python
 * or NumPy scalar, a complex ndarray, or a Complex in a Tracer's operator, ufunc, array
 * function or astype (tj_complex_involved, then tj_complex_op), and a call whose
 * arguments hold complex arrays (args.c marks it, function.c hands it to `call`, which
 * passes their .real and .imag views to a compiled function of real arguments).
 * Contract: nothing here builds a node; without _register_complex every complex
 * operand is refused as before. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* _register_complex(cls, call, op): the Complex class, the call of a compiled function
 * with complex arguments (cf, args, kwargs), and the dispatcher of complex operands
 * (kind, *args). */
PyObject *tj_complex_register(PyObject *m, PyObject *args) {
    PyObject *cls, *call, *op;
    if (!PyArg_ParseTuple(args, "O!OO:_register_complex", &PyType_Type, &cls, &call, &op))
        return NULL;
    tj_state *st = tj_state_of(m);
    Py_XSETREF(st->complex_cls, Py_NewRef(cls));
    Py_XSETREF(st->complex_call, Py_NewRef(call));
    Py_XSETREF(st->complex_op, Py_NewRef(op));
    Py_RETURN_NONE;
}

static int complex_leaf(tj_state *st, PyObject *o) {
    if (st->complex_cls && PyObject_TypeCheck(o, (PyTypeObject *)st->complex_cls)) return 1;
    if (PyComplex_Check(o) || PyArray_IsScalar(o, ComplexFloating)) return 1;
    return PyArray_Check(o) && PyArray_ISCOMPLEX((PyArrayObject *)o);
}

/* Whether o is complex: a Complex, a complex scalar or ndarray, or a list or tuple
 * holding one (np.stack's arrays, np.where's branches). */
int tj_complex_involved(tj_state *st, PyObject *o) {
    if (!st->complex_op) return 0;
    if (complex_leaf(st, o)) return 1;
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        PyObject **items = PySequence_Fast_ITEMS(o);
        for (Py_ssize_t i = 0; i < n; i++)
            if (complex_leaf(st, items[i])) return 1;
    }
    return 0;
}

int tj_complex_any(tj_state *st, PyObject *args, PyObject *kwargs) {
    if (!st->complex_op) return 0;
    for (Py_ssize_t i = 0; args && i < PyTuple_GET_SIZE(args); i++)
        if (tj_complex_involved(st, PyTuple_GET_ITEM(args, i))) return 1;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (kwargs && PyDict_Check(kwargs) && PyDict_Next(kwargs, &pos, &k, &v))
        if (tj_complex_involved(st, v)) return 1;
    return 0;
}

/* _complex.op(kind, *args[, **kwargs]). New reference. */
PyObject *tj_complex_op(tj_state *st, const char *kind, PyObject *args, PyObject *kwargs) {
    PyObject *k = PyUnicode_FromString(kind);
    if (!k) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *full = PyTuple_New(n + 1);
    if (!full) { Py_DECREF(k); return NULL; }
    PyTuple_SET_ITEM(full, 0, k);
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(full, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
    PyObject *r = PyObject_Call(st->complex_op, full, kwargs);
    Py_DECREF(full);
    return r;
}
