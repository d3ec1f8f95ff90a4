/* Compiled loops at replay (loops.c records them while tracing): after the plan's guards
 * held and before it binds (tj_plan_run_ctx), each loop in trace order gets its operands
 * (the carries' initial values, the xs, the outer values its body reads): those that are
 * leaves of the outer graph in place (an ndarray argument, a captured ndarray as the
 * call's guards read it, an earlier loop's result), the others from its operands' plan;
 * then its body's kernel runs n times on bound slots (the x of step i read in place from
 * the xs, the carries copied from the body's outputs into its inputs, each y copied into
 * its row of the ys), and its results stand in the call's context (tj_loopctx), which the
 * kernel's LOOP leaves and later loops read. A pending signal (Ctrl-C) is handled every
 * TJ_SIGNAL_STEPS steps: KeyboardInterrupt ends the call.
 * Contract: the loop never writes what it reads in place (carries are copied first). */
#include "tracejit.h"
#include "loops.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

void tj_loopctx_free(tj_loopctx *ctx) {
    for (int i = 0; ctx->vals && i < ctx->n_vals; i++) Py_XDECREF(ctx->vals[i]);
    PyMem_Free(ctx->vals);
    PyMem_Free(ctx->keys);
    memset(ctx, 0, sizeof *ctx);
}

static int64_t slot_bytes(const tj_schedule *s, int slot) {
    int64_t b = tj_dtype_size(s->slot_dtype[slot]);
    for (int d = 0; d < s->slot_ndim[slot]; d++) b *= s->slot_shape[slot][d];
    return b;
}

#define TJ_SIGNAL_STEPS 1024       /* steps between checks for a pending signal (Ctrl-C) */
#define TJ_SIGNAL_WORK (1 << 20)   /* elements of a body checked after every step */

/* The body's steps: the carries (fresh copies of in[0..nc)) and ys into ctx. 0/-1. */
static int run_body(const looprec *r, PyArrayObject **in, tj_loopctx *ctx) {
    tj_plan *p = r->body;
    const tj_schedule *s = &p->sched;
    int ns = s->n_slots, nc = r->n_carry, nx = r->n_x, rc = -1;
    int n_out = ns - s->first_out;
    void **P = PyMem_Calloc((size_t)ns + 1, sizeof *P);
    const int64_t **S = PyMem_Calloc((size_t)ns + 1, sizeof *S);
    int *xslot = PyMem_Calloc((size_t)nx + 1, sizeof *xslot);
    char **obuf = PyMem_Calloc((size_t)n_out + 1, sizeof *obuf);
    PyObject **res = PyMem_Calloc((size_t)(nc + r->n_y) + 1, sizeof *res);
    /* carries ping-pong between res[k] and alt[k] (the body reads one, writes the other)
     * where no other carry shares the slot it is written in; the others are copied */
    PyObject **alt = PyMem_Calloc((size_t)nc + 1, sizeof *alt);
    int *cin = PyMem_Calloc((size_t)nc + 1, sizeof *cin);
    char *scratch = NULL;
    int64_t step = 0, err[4] = {0, 0, 0, 0};
    if (!P || !S || !xslot || !obuf || !res || !alt || !cin) { PyErr_NoMemory(); goto done; }
    for (int k = 0; k < nc; k++) {
        int shared = 0;
        for (int o = 0; o < nc; o++) shared |= o != k && s->out_slot_of[o] == s->out_slot_of[k];
        cin[k] = -1;
        if (!(res[k] = PyArray_NewCopy(in[k], NPY_CORDER)) ||
            (!shared && !(alt[k] = PyArray_NewLikeArray(in[k], NPY_CORDER, NULL, 0))))
            goto done;
    }
    for (int k = 0; k < nc + r->n_y; k++) {   /* what the outer graph's leaves assumed */
        int slot = s->out_slot_of[k];
        int ok = s->slot_ndim[slot] == (k < nc ? PyArray_NDIM(in[k]) : r->yndim[k - nc]) &&
                 s->slot_dtype[slot] == (k < nc ? s->slot_dtype[slot] : r->ydtype[k - nc]);
        for (int d = 0; ok && d < s->slot_ndim[slot]; d++)
            ok = s->slot_shape[slot][d] == (k < nc ? PyArray_DIM(in[k], d) : r->yshape[k - nc][d]);
        if (!ok) {
            tj_internal_error(p->st, "a compiled loop's body computes output %d in another shape "
                              "than its trace", k);
            goto done;
        }
    }
    for (int j = 0; j < r->n_y; j++) {
        int slot = s->out_slot_of[nc + j];
        npy_intp shape[TJ_MAXDIM];
        shape[0] = (npy_intp)r->n;
        for (int d = 0; d < s->slot_ndim[slot]; d++) shape[d + 1] = s->slot_shape[slot][d];
        if (!(res[nc + j] = PyArray_SimpleNew(s->slot_ndim[slot] + 1, shape,
                                              tj_dtype_typenum(s->slot_dtype[slot]))))
            goto done;
    }
    for (int i = 0; i < p->n_leaf_slots; i++) {
        const tj_slotdesc *d = &p->slots[i];
        if (d->kind == TJ_SLOT_CONST) { P[i] = p->consts[i]; continue; }
        int a = d->index;   /* ARG: carries, xs, operands, the step */
        PyArrayObject *arr = a < nc ? (PyArrayObject *)res[a] : a < nc + nx + r->n_ops ? in[a] : NULL;
        if (!arr) { P[i] = &step; continue; }
        P[i] = PyArray_DATA(arr);
        S[i] = (const int64_t *)PyArray_STRIDES(arr) + (a >= nc && a < nc + nx);
        if (a >= nc && a < nc + nx) xslot[a - nc] = i;
        if (a < nc) cin[a] = i;
    }
    for (int k = 0; k < n_out; k++) {
        if (!(obuf[k] = PyMem_RawMalloc((size_t)slot_bytes(s, s->first_out + k) + 8))) {
            PyErr_NoMemory();
            goto done;
        }
        P[s->first_out + k] = obuf[k];
        S[s->first_out + k] = p->out_strides[k];
    }
    if (s->n_scratch) {
        if (!(scratch = PyMem_RawMalloc((size_t)s->scratch_bytes + 1))) { PyErr_NoMemory(); goto done; }
        for (int k = 0; k < s->n_scratch; k++) {
            P[s->first_scratch + k] = scratch + s->scratch_off[k];
            S[s->first_scratch + k] = p->slot_strides[k];
        }
    }
    P[ns] = err;
    int split = p->work >= (1 << 16), krc = 0;
    int nogil = (r->n < 0 || r->n * p->work >= (1 << 15)) && p->work >= 64;
    PyThreadState *ts = nogil ? PyEval_SaveThread() : NULL;
    for (int64_t i = 0; (r->n < 0 || i < r->n) && !krc && !err[0]; i++) {
        /* Ctrl-C: a pending signal's handler runs every TJ_SIGNAL_STEPS steps (each
         * step of a large body), with the GIL: KeyboardInterrupt ends the loop */
        if (i && (i % TJ_SIGNAL_STEPS == 0 || p->work >= TJ_SIGNAL_WORK)) {
            if (ts) PyEval_RestoreThread(ts);
            krc = PyErr_CheckSignals() < 0 ? 2 : 0;
            ts = nogil ? PyEval_SaveThread() : NULL;
            if (krc) break;
        }
        int64_t at = r->reverse ? r->n - 1 - i : i;
        if (r->n < 0 && !*(const uint8_t *)PyArray_DATA((PyArrayObject *)res[nc - 1]))
            break;   /* a while_loop: its last carry is cond_fun's value */
        step = i;
        for (int j = 0; j < nx; j++)
            P[xslot[j]] = (char *)PyArray_DATA(in[nc + j]) + at * PyArray_STRIDES(in[nc + j])[0];
        for (int k = 0; k < nc; k++) {
            if (cin[k] >= 0) P[cin[k]] = PyArray_DATA((PyArrayObject *)res[k]);
            if (alt[k]) P[s->out_slot_of[k]] = PyArray_DATA((PyArrayObject *)alt[k]);
        }
        krc = tj_kernel_run(&p->kernel, ns, P, S, split);
        for (int k = 0; k < nc; k++) {
            if (alt[k]) {   /* the one written becomes the one read */
                PyObject *w = alt[k];
                alt[k] = res[k];
                res[k] = w;
                continue;
            }
            memcpy(PyArray_DATA((PyArrayObject *)res[k]), P[s->out_slot_of[k]],
                   (size_t)slot_bytes(s, s->out_slot_of[k]));
        }
        for (int j = 0; j < r->n_y; j++) {
            int slot = s->out_slot_of[nc + j];
            int64_t b = slot_bytes(s, slot);
            memcpy((char *)PyArray_DATA((PyArrayObject *)res[nc + j]) + at * b, P[slot], (size_t)b);
        }
    }
    if (ts) PyEval_RestoreThread(ts);
    if (krc == 2) goto done;   /* the signal handler's exception */
    if (krc) { PyErr_NoMemory(); goto done; }
    if (p->upgrade.source && !p->upgrade.done) {   /* the tier's policy, as a plan's */
        p->calls++;
        p->work_done += p->work * (r->n < 0 ? step + 1 : r->n);
        tj_plan_tier_up(p);
    }
    if (err[0]) {
        PyErr_Format(PyExc_IndexError, "index %lld is out of bounds for axis %lld with size %lld "
                     "(in the body of a compiled loop)", (long long)err[1], (long long)err[3],
                     (long long)err[2]);
        goto done;
    }
    for (int k = 0; k < nc + r->n_y; k++) {
        ctx->vals[r->first_val + k] = res[k];
        res[k] = NULL;
    }
    rc = 0;
done:
    for (int k = 0; res && k < nc + r->n_y; k++) Py_XDECREF(res[k]);
    for (int k = 0; alt && k < nc; k++) Py_XDECREF(alt[k]);
    PyMem_Free(alt);
    PyMem_Free(cin);
    for (int k = 0; obuf && k < n_out; k++) PyMem_RawFree(obuf[k]);
    PyMem_RawFree(scratch);
    PyMem_Free(P); PyMem_Free(S); PyMem_Free(xslot); PyMem_Free(obuf); PyMem_Free(res);
    return rc;
}

/* Loop r's operand k: in place (borrowed) or from its operands' plan's results `res`
 * (borrowed); NULL + exception. */
static PyObject *operand(const looprec *r, int k, const tj_flat *f, PyObject *const *cap,
                         const tj_loopctx *ctx, PyObject *res) {
    int i = r->src_index[k];
    switch (r->src_kind[k]) {
    case TJ_SRC_ARG: return f->leaves[i];
    case TJ_SRC_CAPTURE: return cap[i];
    case TJ_SRC_LOOP: return i < ctx->n_vals ? ctx->vals[i] : NULL;
    }
    return PyTuple_Check(res) ? PyTuple_GetItem(res, i) : res;
}

int tj_loops_run(tj_plan *p, const tj_flat *f, PyObject *const *cap, tj_loopctx *ctx,
                 PyObject **reason) {
    Py_ssize_t n = PyList_GET_SIZE(p->loops);
    const looprec *last = n ? tj_loop_rec(p->loops, n - 1) : NULL;
    if (!last && n) return -1;
    ctx->n_vals = last ? last->first_val + last->n_carry + last->n_y : 0;
    ctx->n_keys = p->keyfns ? (int)PyList_GET_SIZE(p->keyfns) : 0;
    ctx->vals = PyMem_Calloc((size_t)ctx->n_vals + 1, sizeof *ctx->vals);
    ctx->keys = PyMem_Calloc((size_t)ctx->n_keys + 1, sizeof *ctx->keys);
    if (!ctx->vals || !ctx->keys) { PyErr_NoMemory(); return -1; }
    for (int i = 0; i < ctx->n_keys; i++) {   /* the call's keys, drawn once */
        PyObject *k = PyObject_CallNoArgs(PyList_GET_ITEM(p->keyfns, i));
        ctx->keys[i] = k ? PyLong_AsUnsignedLongLongMask(k) : 0;
        Py_XDECREF(k);
        if (PyErr_Occurred()) return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const looprec *r = tj_loop_rec(p->loops, i);
        PyObject *res = NULL;
        int rc = r->pre ? tj_plan_run_ctx(r->pre, f, ctx, &res, reason) : 0;
        if (rc) return rc;
        int n_in = r->n_carry + r->n_x + r->n_ops;
        PyArrayObject *in[64], **inp = n_in <= 64 ? in : PyMem_Calloc((size_t)n_in, sizeof *inp);
        if (!inp) { Py_XDECREF(res); PyErr_NoMemory(); return -1; }
        int k = 0;
        for (; k < n_in; k++) {
            PyObject *o = operand(r, k, f, cap, ctx, res);
            if (!o && !PyErr_Occurred())
                tj_internal_error(p->st, "a compiled loop's operand %d is missing", k);
            if (!o || !(inp[k] = (PyArrayObject *)PyArray_FromAny(
                            o, NULL, 0, 0, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED |
                            NPY_ARRAY_ENSUREARRAY, NULL)))
                break;
        }
        rc = k == n_in ? run_body(r, inp, ctx) : -1;
        while (k-- > 0) Py_DECREF(inp[k]);
        if (inp != in) PyMem_Free(inp);
        Py_XDECREF(res);
        if (rc) return rc;
    }
    return 0;
}

