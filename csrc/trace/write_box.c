/* The box a basic key selects, read off the key (write.c's assign_concrete): ints,
 * unit-step slices, one `...` and None, as a row loop writes (`out[i] = v`,
 * `out[i, 1:-1] = v`). The write's cost is then the key's, not x's size: no index map of
 * x's shape is built (with one per write, a loop of n row writes was quadratic).
 * Contract: the box and region are NumPy's for such a key; any other key (steps, arrays,
 * bools, an int out of range, too many indices) returns 0 and takes the index map,
 * whose NumPy indexing gives NumPy's errors. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

static int plain_int(PyObject *o) {
    return PyIndex_Check(o) && !PyBool_Check(o) && !PyArray_Check(o) && !tj_is_tracer(o) &&
           !PyArray_IsScalar(o, Bool);
}

int tj_write_basic_box(const tj_node *n, PyObject *key, int64_t *lo, int64_t *hi, int *rnd,
                       int64_t *rshape, int *element) {
    PyObject *tup = PyTuple_Check(key) ? Py_NewRef(key) : PyTuple_Pack(1, key);
    if (!tup) return -1;
    Py_ssize_t nk = PyTuple_GET_SIZE(tup), used = 0, ell = -1;
    int ok = 1, ints = 0;
    for (Py_ssize_t i = 0; ok && i < nk; i++) {
        PyObject *k = PyTuple_GET_ITEM(tup, i);
        if (k == Py_Ellipsis) { ok = ell < 0; ell = i; }
        else if (k == Py_None) continue;
        else if (PySlice_Check(k) || plain_int(k)) used++;
        else ok = 0;
    }
    ok = ok && used <= n->ndim;
    int d = 0, r = 0;
    for (Py_ssize_t i = 0; ok && i < nk; i++) {
        PyObject *k = PyTuple_GET_ITEM(tup, i);
        if (k == Py_None) {
            if (r >= TJ_MAXDIM) { ok = 0; break; }
            rshape[r++] = 1;
        } else if (k == Py_Ellipsis) {
            for (int64_t e = n->ndim - used; ok && e > 0; e--, d++) {
                if (r >= TJ_MAXDIM) { ok = 0; break; }
                lo[d] = 0;
                hi[d] = n->shape[d];
                rshape[r++] = n->shape[d];
            }
        } else if (PySlice_Check(k)) {
            Py_ssize_t start, stop, step;
            if (PySlice_Unpack(k, &start, &stop, &step) < 0) { Py_DECREF(tup); return -1; }
            Py_ssize_t len = PySlice_AdjustIndices((Py_ssize_t)n->shape[d], &start, &stop, step);
            if (step != 1 || r >= TJ_MAXDIM) { ok = 0; break; }
            lo[d] = start;
            hi[d] = start + len;
            rshape[r++] = len;
            d++;
        } else {
            Py_ssize_t v = PyNumber_AsSsize_t(k, NULL);
            if (v == -1 && PyErr_Occurred()) { Py_DECREF(tup); return -1; }
            if (v < 0) v += (Py_ssize_t)n->shape[d];
            if (v < 0 || v >= n->shape[d]) { ok = 0; break; }   /* NumPy's IndexError */
            lo[d] = v;
            hi[d] = v + 1;
            ints++;
            d++;
        }
    }
    for (; ok && d < n->ndim; d++) {   /* the dims the key leaves out */
        if (r >= TJ_MAXDIM) { ok = 0; break; }
        lo[d] = 0;
        hi[d] = n->shape[d];
        rshape[r++] = n->shape[d];
    }
    *rnd = r;
    *element = ok && ints == n->ndim && ell < 0 && r == 0;
    Py_DECREF(tup);
    return ok;
}
