/* Replay: from a flattened call to results, in C. Fills each slot's data pointer and
 * strides (arguments, captured arrays re-read from their closure cell or global,
 * constants, scratch, fresh outputs), runs the compiled kernel (without the GIL when
 * the work is large), and rebuilds the result structure.
 * Contract: allocates only the outputs (and scratch, when the plan has any: one block
 * of the planned peak, csrc/fuse/memplan.c, kept by the plan between calls); outputs
 * are fresh C-contiguous arrays; a captured array whose dtype, shape or layout no
 * longer matches the trace makes the plan stale (returns 1), never a wrong answer. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

#define TJ_NOGIL_WORK 32768   /* elements per call above which the GIL is released */
#define TJ_STACK_SLOTS 32
#define TJ_KEEP_SCRATCH (16 << 20)   /* bytes of scratch a plan keeps between calls */

_Static_assert(sizeof(npy_intp) == sizeof(int64_t), "npy_intp must be 64-bit");

/* The array a capture refers to now (borrowed), or NULL without an exception when
 * its name is gone. */
static PyObject *capture_now(PyObject *entry) {
    int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
    PyObject *where = PyTuple_GET_ITEM(entry, 1);
    if (kind == 0) return PyCell_GET(where);
    if (kind == 1) return PyDict_GetItemWithError(where, PyTuple_GET_ITEM(entry, 2));
    return where;
}

/* "float32(3, 4)", plus " strided" when not C-contiguous. New reference. */
static PyObject *array_desc(PyObject *a) {
    PyObject *dt = PyObject_GetAttrString(a, "dtype"), *sh = PyObject_GetAttrString(a, "shape");
    PyObject *r = dt && sh ? PyUnicode_FromFormat("%S%S%s", dt, sh,
                                                   PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a)
                                                       ? "" : " strided")
                           : NULL;
    Py_XDECREF(dt);
    Py_XDECREF(sh);
    return r;
}

static PyObject *stale_reason(PyObject *entry, PyObject *now) {
    int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
    PyObject *name = PyTuple_GET_ITEM(entry, 2);
    const char *what = kind == 0 ? "closure variable" : kind == 1 ? "global" : "captured array";
    PyObject *old = array_desc(PyTuple_GET_ITEM(entry, 3));
    PyObject *cur = now && PyArray_Check(now) ? array_desc(now)
                                              : PyUnicode_FromString(now ? Py_TYPE(now)->tp_name
                                                                         : "unbound");
    PyObject *r = old && cur ? PyUnicode_FromFormat("%s %R: %U -> %U", what, name, old, cur) : NULL;
    Py_XDECREF(old);
    Py_XDECREF(cur);
    return r;
}

int tj_plan_run(tj_plan *p, const tj_flat *f, PyObject **result, PyObject **reason) {
    const tj_schedule *s = &p->sched;
    int ns = s->n_slots, n_out = ns - s->first_out, rc = -1;
    void *P_stack[TJ_STACK_SLOTS];
    const int64_t *S_stack[TJ_STACK_SLOTS];
    unsigned char sc_stack[TJ_STACK_SLOTS][8];
    PyObject *o_stack[2 * TJ_STACK_SLOTS], *pos_stack[TJ_STACK_SLOTS], *h_stack[TJ_STACK_SLOTS];
    int big = ns + 1 > TJ_STACK_SLOTS || p->n_results > TJ_STACK_SLOTS;
    /* P[ns] is the call's error record: gathers report an out-of-bounds index there */
    int64_t err[4] = {0, 0, 0, 0};
    void **P = big ? PyMem_Calloc((size_t)ns + 1, sizeof *P) : P_stack;
    const int64_t **S = big ? PyMem_Calloc((size_t)ns, sizeof *S) : S_stack;
    unsigned char (*sc)[8] = big ? PyMem_Calloc((size_t)ns, 8) : sc_stack;
    PyObject **outs = big ? PyMem_Calloc((size_t)ns + (size_t)p->n_results, sizeof *outs)
                          : o_stack;
    PyObject **by_pos = big ? PyMem_Calloc((size_t)p->n_results + 1, sizeof *by_pos) : pos_stack;
    /* captured arrays are held for the run: another thread may rebind their names
     * while the kernel runs without the GIL */
    PyObject **held = big ? PyMem_Calloc((size_t)ns, sizeof *held) : h_stack;
    int n_held = 0;
    char *scratch = NULL;
    int n_made = 0;
    *result = *reason = NULL;
    if (!P || !S || !sc || !outs || !by_pos || !held) { PyErr_NoMemory(); goto done; }

    for (int i = 0; i < p->n_leaf_slots; i++) {
        const tj_slotdesc *d = &p->slots[i];
        if (d->kind == TJ_SLOT_CONST) {
            P[i] = p->consts[i];
            S[i] = NULL;
            continue;
        }
        PyObject *o;
        if (d->kind == TJ_SLOT_ARG) {
            o = f->leaves[d->index];
        } else {
            PyObject *entry = PyList_GET_ITEM(p->captures, d->index);
            o = capture_now(entry);
            if (!o && PyErr_Occurred()) goto done;
            PyArrayObject *a = (PyArrayObject *)o;
            int ok = o && PyArray_CheckExact(o) &&
                     tj_dtype_from_typenum(PyArray_TYPE(a)) == d->dtype &&
                     PyArray_ISNOTSWAPPED(a) &&
                     (PyArray_IS_C_CONTIGUOUS(a) != 0) == d->contig &&
                     PyArray_NDIM(a) == p->cap_ndim[d->index] &&
                     memcmp(PyArray_DIMS(a), p->cap_shape[d->index],
                            (size_t)PyArray_NDIM(a) * sizeof(int64_t)) == 0;
            if (!ok) {
                *reason = stale_reason(entry, o);
                rc = *reason ? 1 : -1;
                goto done;
            }
            held[n_held++] = Py_NewRef(o);
        }
        if (PyArray_Check(o)) {
            P[i] = PyArray_DATA((PyArrayObject *)o);
            S[i] = (const int64_t *)PyArray_STRIDES((PyArrayObject *)o);
            continue;
        }
        S[i] = NULL;
        P[i] = sc[i];
        if (PyFloat_CheckExact(o)) {
            double v = PyFloat_AS_DOUBLE(o);
            memcpy(sc[i], &v, 8);
        } else if (PyLong_CheckExact(o)) {
            if (d->dtype == TJ_F64) {       /* beyond int64 (the key says so) */
                double v = PyLong_AsDouble(o);
                if (v == -1.0 && PyErr_Occurred()) goto done;
                memcpy(sc[i], &v, 8);
                continue;
            }
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
            if (overflow || (d->fits_i32 && (v < INT32_MIN || v > INT32_MAX))) {
                PyErr_Format(PyExc_OverflowError, "Python integer %R out of bounds for %s", o,
                             overflow ? "int64" : "int32");
                goto done;
            }
            memcpy(sc[i], &v, 8);
        } else if (PyArray_ScalarAsCtype(o, sc[i]), PyErr_Occurred()) {
            goto done;
        }
    }
    if (s->n_scratch) {
        /* one block; each slot at the offset memplan gave it (slots whose lifetimes
         * do not overlap share bytes) */
        /* the plan's own block, unless another thread's call is using it (the GIL
         * guards the flag: it is set before and cleared after a run without it) or it
         * is too large to hold between calls */
        if (!p->scratch_busy && s->scratch_bytes <= TJ_KEEP_SCRATCH) {
            if (!p->scratch_cache) p->scratch_cache = PyMem_RawMalloc((size_t)s->scratch_bytes + 1);
            if (p->scratch_cache) { scratch = p->scratch_cache; p->scratch_busy = 1; }
        }
        if (!scratch && !(scratch = PyMem_RawMalloc((size_t)s->scratch_bytes + 1))) {
            PyErr_Format(PyExc_MemoryError, "Unable to allocate %lld bytes of scratch memory "
                         "for a compiled kernel", (long long)s->scratch_bytes);
            goto done;
        }
        for (int k = 0; k < s->n_scratch; k++) {
            P[s->first_scratch + k] = scratch + s->scratch_off[k];
            S[s->first_scratch + k] = p->slot_strides[k];
        }
    }
    for (int k = 0; k < n_out; k++) {
        int slot = s->first_out + k;
        PyArrayObject *a = (PyArrayObject *)PyArray_EMPTY(
            s->slot_ndim[slot], (npy_intp *)s->slot_shape[slot],
            tj_dtype_typenum(s->slot_dtype[slot]), 0);
        if (!a) goto done;
        outs[k] = (PyObject *)a;
        n_made++;
        P[slot] = PyArray_DATA(a);
        S[slot] = (const int64_t *)PyArray_STRIDES(a);
    }
    P[ns] = err;
    if (p->work >= TJ_NOGIL_WORK) {
        Py_BEGIN_ALLOW_THREADS
        p->run(P, S);
        Py_END_ALLOW_THREADS
    } else {
        p->run(P, S);
    }
    if (err[0]) {
        PyErr_Format(PyExc_IndexError, "index %lld is out of bounds for axis %lld with size %lld",
                     (long long)err[1], (long long)err[3], (long long)err[2]);
        goto done;
    }
    for (int o = 0; o < p->n_results; o++) {
        int same = s->out_same_as ? s->out_same_as[o] : -1;
        by_pos[o] = same >= 0 ? by_pos[same] : outs[s->out_slot_of[o] - s->first_out];
        if (same != -2) continue;
        by_pos[o] = PyArray_NewCopy((PyArrayObject *)by_pos[o], NPY_CORDER);
        if (!by_pos[o]) goto done;
        outs[n_made++] = by_pos[o];   /* released below, like the slot arrays */
    }
    *result = tj_template_build(&p->tmpl, by_pos);
    rc = *result ? 0 : -1;
done:
    for (int k = 0; k < n_made; k++) Py_DECREF(outs[k]);
    for (int k = 0; k < n_held; k++) Py_DECREF(held[k]);
    if (scratch && scratch == p->scratch_cache) p->scratch_busy = 0;
    else PyMem_RawFree(scratch);
    if (big) {
        PyMem_Free(P);
        PyMem_Free(S);
        PyMem_Free(sc);
        PyMem_Free(outs);
        PyMem_Free(by_pos);
        PyMem_Free(held);
    }
    return rc;
}

void tj_plan_decref(tj_plan *p) {
    if (!p || --p->refs > 0) return;
    tj_tcc_free(p->mod);
    PyMem_RawFree(p->scratch_cache);
    PyMem_Free(p->key);
    Py_XDECREF(p->statics);
    PyMem_Free(p->slots);
    Py_XDECREF(p->captures);
    PyMem_Free(p->cap_shape);
    PyMem_Free(p->cap_ndim);
    PyMem_Free(p->consts);
    tj_schedule_free(&p->sched);
    PyMem_Free(p->slot_strides);
    tj_template_free(&p->tmpl);
    Py_XDECREF(p->descr);
    Py_XDECREF(p->source);
    Py_XDECREF(p->log);
    PyMem_Free(p);
}
