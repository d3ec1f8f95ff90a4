/* Replay: from a flattened call to results, in C. Fills each slot's data pointer and
 * strides (arguments, captured arrays re-read from their closure cell or global,
 * constants, scratch, fresh outputs), runs the compiled kernel (without the GIL when
 * the work is large), and rebuilds the result structure.
 * Contract: allocates only the outputs (and scratch, when the plan has any: one block
 * of the planned peak, csrc/fuse/memplan.c, kept by the plan between calls); outputs
 * are fresh C-contiguous arrays; a captured array whose dtype, shape or layout no
 * longer matches the trace makes the plan stale (returns 1), never a wrong answer. */
#include "tracejit.h"
#include <stdlib.h>
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

#define TJ_NOGIL_WORK 32768   /* elements per call above which the GIL is released */
#define TJ_SPLIT_WORK 65536   /* elements in a group from which it is split across threads */
#define TJ_MIN_CHUNK 16384    /* elements at least in each thread's range */
#define TJ_MAX_PARTS 64       /* a chunked reduction's parts, at most */
#define TJ_MAX_PART_BYTES (4 << 20)   /* and their accumulators' bytes */
#define TJ_STACK_SLOTS 32
#define TJ_KEEP_SCRATCH (16 << 20)   /* bytes of scratch a plan keeps between calls */

_Static_assert(sizeof(npy_intp) == sizeof(int64_t), "npy_intp must be 64-bit");

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
static PyObject *array_desc(PyObject *a) {
    PyObject *dt = PyObject_GetAttrString(a, "dtype"), *sh = PyObject_GetAttrString(a, "shape");
    int contig = 1;
    if (PyArray_Check(a)) {
        contig = PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a) != 0;
    } else {   /* a torch tensor: "float32(3, 4)" like an array */
        tj_dlview v;
        const char *why;
        char shape[256];
        PyObject *r = NULL;
        if (tj_dl_torch_view(a, &v, &why) == 0) {
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

static PyObject *stale_reason(PyObject *entry, PyObject *now) {
    int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
    PyObject *name = PyTuple_GET_ITEM(entry, 2);
    const char *what = kind == 0 ? "closure variable" : kind == 1 ? "global"
                     : kind == 3 ? "module parameter or buffer" : "captured array";
    PyObject *old = array_desc(PyTuple_GET_ITEM(entry, 3));
    PyObject *cur = now && (PyArray_Check(now) || tj_dl_kind(now) == TJ_LIB_TORCH)
                        ? array_desc(now)
                                              : PyUnicode_FromString(now ? Py_TYPE(now)->tp_name
                                                                         : "unbound");
    PyObject *r = old && cur ? PyUnicode_FromFormat("%s %R: %U -> %U", what, name, old, cur) : NULL;
    Py_XDECREF(old);
    Py_XDECREF(cur);
    return r;
}

/* The kernel: its groups in order, each large one split across the thread pool.
 * Only groups whose outer-loop units write disjoint memory are split, and a
 * reduction over the outer loop's dim is reduced in chunks of units fixed by its
 * shape alone (each into its own accumulator, folded together in chunk order): so
 * results are the same, bit for bit, whatever the thread count. */
typedef struct {
    const tj_gdesc *g;
    void **P;
    const int64_t **S;
    int n_slots;
    int64_t chunk;       /* units per part (reductions) */
    char *parts;         /* reductions: one accumulator per part */
} run_ctx;

static void run_range(void *c_, int64_t lo, int64_t hi) {
    run_ctx *c = c_;
    c->g->body(c->P, c->S, lo, hi);
}

/* Parts [lo, hi) of a chunked reduction: each into its own accumulator. */
static void run_parts(void *c_, int64_t lo, int64_t hi) {
    run_ctx *c = c_;
    const tj_gdesc *g = c->g;
    void *stack[64], **P = c->n_slots <= 64 ? stack : malloc((size_t)c->n_slots * sizeof *P);
    if (!P) { c->chunk = -1; return; }   /* reported by the caller */
    memcpy(P, c->P, (size_t)c->n_slots * sizeof *P);
    for (int64_t k = lo; k < hi; k++) {
        P[g->acc_slot] = c->parts + k * g->acc_bytes;
        g->init(P, c->S);
        int64_t u1 = (k + 1) * c->chunk < g->units ? (k + 1) * c->chunk : g->units;
        g->body(P, c->S, k * c->chunk, u1);
    }
    if (P != stack) free(P);
}

static int run_groups(const tj_plan *p, void **P, const int64_t **S, int may_split) {
    int ns = p->sched.n_slots + 1;
    for (int gi = 0; gi < p->n_groups; gi++) {
        const tj_gdesc *g = &p->groups[gi];
        run_ctx c = {g, P, S, ns, 0, NULL};
        if (g->init) g->init(P, S);
        int64_t big = g->units * g->work >= TJ_SPLIT_WORK;
        if (g->comb && big && g->units > 1) {
            /* parts of at least TJ_MIN_CHUNK elements, at most TJ_MAX_PARTS of them */
            int64_t ch = (TJ_MIN_CHUNK + g->work - 1) / (g->work ? g->work : 1);
            if (ch < (g->units + TJ_MAX_PARTS - 1) / TJ_MAX_PARTS)
                ch = (g->units + TJ_MAX_PARTS - 1) / TJ_MAX_PARTS;
            int64_t n = (g->units + ch - 1) / ch;
            if (n > 1 && n * g->acc_bytes <= TJ_MAX_PART_BYTES &&
                (c.parts = malloc((size_t)(n * g->acc_bytes)))) {
                c.chunk = ch;
                if (may_split) tj_pool_for(run_parts, &c, n, 1);
                else run_parts(&c, 0, n);
                if (c.chunk < 0) { free(c.parts); return -1; }
                for (int64_t k = 0; k < n; k++)
                    g->comb(P[g->acc_slot], NULL, c.parts + k * g->acc_bytes, g->acc_n, 0);
                free(c.parts);
                if (g->fin) g->fin(P, S);
                continue;
            }
        }
        if (may_split && g->par && g->units > 1 && big)
            tj_pool_for(run_range, &c, g->units,
                        g->work >= TJ_MIN_CHUNK ? 1 : (TJ_MIN_CHUNK + g->work - 1) / g->work);
        else
            g->body(P, S, 0, g->units);
        if (g->fin) g->fin(P, S);
    }
    return 0;
}

/* The optimizing tier: a plan whose elementwise groups have fused C starts their
 * compile once it proves hot -- TJ_TIER_CALLS calls and TJ_TIER_WORK element-ops
 * computed, about the time the compile itself takes on another core -- and swaps the
 * compiled bodies in at the first call after they are ready. Runs in progress on
 * other threads finish on the table they started with (both stay valid). */
#define TJ_TIER_CALLS 2
#define TJ_TIER_WORK (1LL << 26)

void tj_plan_tier_up(tj_plan *p) {
    if (!p->tier_job) {
        if (p->calls >= TJ_TIER_CALLS && p->work_done >= TJ_TIER_WORK &&
            tj_tier_mode() != TJ_TIER_OFF) {
            const char *c = PyUnicode_AsUTF8(p->fused_source);
            if (!c) { PyErr_Clear(); Py_CLEAR(p->fused_source); return; }
            if (!(p->tier_job = tj_tier_start(c, TJ_TIER_BACKGROUND)))
                Py_CLEAR(p->fused_source);   /* no compiler: TinyCC for good */
        }
        return;
    }
    void *fused, *handle;
    int st = tj_tier_poll(p->tier_job, &fused, &handle);
    if (st == 0) return;
    tj_tier_drop(p->tier_job);
    p->tier_job = NULL;
    if (st < 0) { Py_CLEAR(p->fused_source); return; }   /* TinyCC for good */
    tj_gdesc *g2 = PyMem_Malloc((size_t)p->n_groups * sizeof *g2);
    if (!g2) { tj_tier_unload(handle); return; }
    tj_range_fn const *bodies = fused;
    for (int gi = 0; gi < p->n_groups; gi++) {
        g2[gi] = p->groups[gi];
        if (bodies[gi]) g2[gi].body = bodies[gi];
    }
    p->tier_handle = handle;
    p->tier2_groups = g2;
    p->groups = g2;
}

/* Whether the Python values a trace read as constants are still there (tj_plan's
 * guards): 0 yes, 1 + *reason one changed, -1 + exception. */
static int check_guards(PyObject *guards, PyObject **reason) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(guards); i++) {
        PyObject *g = PyTuple_GET_ITEM(guards, i);
        PyObject *box = PyTuple_GET_ITEM(g, 0), *was = PyTuple_GET_ITEM(g, 2);
        PyObject *now = PyCell_Check(box) ? PyCell_GET(box)
                                          : PyDict_GetItemWithError(box, PyTuple_GET_ITEM(g, 1));
        if (now == was) continue;
        if (!now && PyErr_Occurred()) return -1;
        /* an equal number or string (a notebook cell run again) is the same constant */
        if (now && Py_TYPE(now) == Py_TYPE(was) &&
            (PyFloat_CheckExact(was) || PyLong_CheckExact(was) || PyUnicode_CheckExact(was) ||
             PyBool_Check(was) || PyComplex_CheckExact(was) || PyTuple_CheckExact(was))) {
            int eq = PyObject_RichCompareBool(now, was, Py_EQ);
            if (eq < 0) return -1;
            if (eq) continue;
        }
        *reason = now ? PyUnicode_FromFormat("%U changed (%.60R -> %.60R)",
                                             PyTuple_GET_ITEM(g, 3), was, now)
                      : PyUnicode_FromFormat("%U was deleted", PyTuple_GET_ITEM(g, 3));
        return *reason ? 1 : -1;
    }
    return 0;
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
    /* byte strides of captured torch tensors (their DLPack views count elements) */
    int64_t dls_stack[TJ_STACK_SLOTS][TJ_MAXDIM];
    int64_t (*dls)[TJ_MAXDIM] = big ? PyMem_Calloc((size_t)ns, sizeof *dls) : dls_stack;
    PyObject **conv = NULL;     /* results converted to another DLPack library */
    int dl_k = 0;
    char *scratch = NULL;
    int n_made = 0;
    *result = *reason = NULL;
    if (!P || !S || !sc || !outs || !by_pos || !held || !dls) { PyErr_NoMemory(); goto done; }
    if (p->guards && (rc = check_guards(p->guards, reason)) != 0) goto done;
    rc = -1;
    if (p->torch_dflt >= 0) {   /* the trace promoted with torch's default dtype */
        int now = tj_dl_default_float();
        if (now < 0) goto done;
        if (now != p->torch_dflt) {
            *reason = PyUnicode_FromFormat("torch default dtype %s -> %s",
                                           tj_dtype_name(p->torch_dflt), tj_dtype_name(now));
            rc = *reason ? 1 : -1;
            goto done;
        }
    }

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
            if (d->torch) {   /* its view, taken when the key was made */
                const tj_dlview *v = &f->dl[dl_k++];
                P[i] = v->data;
                S[i] = v->strides;
                continue;
            }
        } else if (d->torch) {
            PyObject *entry = PyList_GET_ITEM(p->captures, d->index);
            o = capture_now(entry);
            if (!o && PyErr_Occurred()) goto done;
            tj_dlview v;
            const char *why = NULL;
            int vr = o && tj_dl_kind(o) == TJ_LIB_TORCH ? tj_dl_torch_view(o, &v, &why) : 2;
            if (vr < 0) goto done;
            if (vr == 0 && tj_dl_strict_refuses(o)) vr = 1, why = tj_dl_why_grad;
            if (vr == 1) {
                tj_state *st = tj_get_state();
                PyErr_Format(why == tj_dl_why_grad && st->grad_capture_error
                                 ? st->grad_capture_error : PyExc_TypeError,
                             "the torch tensor %R the compiled function reads "
                             "%s", PyTuple_GET_ITEM(entry, 2), why);
                goto done;
            }
            if (vr == 2 || v.dtype != d->dtype || v.contig != d->contig ||
                v.ndim != p->cap_ndim[d->index] ||
                memcmp(v.shape, p->cap_shape[d->index], (size_t)v.ndim * sizeof(int64_t))) {
                *reason = stale_reason(entry, o);
                rc = *reason ? 1 : -1;
                goto done;
            }
            held[n_held++] = Py_NewRef(o);
            memcpy(dls[i], v.strides, (size_t)v.ndim * sizeof(int64_t));
            P[i] = v.data;
            S[i] = dls[i];
            continue;
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
        if (p->out_lib == TJ_LIB_TORCH) {
            void *data;
            PyObject *tensor = tj_dl_torch_empty(s->slot_ndim[slot], s->slot_shape[slot],
                                                 s->slot_dtype[slot], &data);
            if (!tensor) goto done;
            outs[k] = tensor;
            n_made++;
            P[slot] = data;
            S[slot] = p->out_strides[k];
            continue;
        }
        PyArrayObject *a = (PyArrayObject *)tj_new_result(
            s->slot_ndim[slot], s->slot_shape[slot], tj_dtype_typenum(s->slot_dtype[slot]),
            tj_dtype_size(s->slot_dtype[slot]));
        if (!a) goto done;
        outs[k] = (PyObject *)a;
        n_made++;
        P[slot] = PyArray_DATA(a);
        S[slot] = (const int64_t *)PyArray_STRIDES(a);
    }
    P[ns] = err;
    int run_rc;
    if (p->work >= TJ_NOGIL_WORK) {
        Py_BEGIN_ALLOW_THREADS
        run_rc = run_groups(p, P, S, 1);
        Py_END_ALLOW_THREADS
    } else {
        run_rc = run_groups(p, P, S, 0);
    }
    if (run_rc < 0) { PyErr_NoMemory(); goto done; }
    if (p->fused_source && !p->tier2_groups) {
        p->calls++;
        p->work_done += p->work;
        tj_plan_tier_up(p);
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
        if (p->out_lib == TJ_LIB_TORCH) {
            int slot = s->out_slot_of[o];
            int64_t nbytes = tj_dtype_size(s->slot_dtype[slot]);
            for (int d = 0; d < s->slot_ndim[slot]; d++) nbytes *= s->slot_shape[slot][d];
            void *data;
            by_pos[o] = tj_dl_torch_empty(s->slot_ndim[slot], s->slot_shape[slot],
                                          s->slot_dtype[slot], &data);
            if (by_pos[o] && nbytes) memcpy(data, P[slot], (size_t)nbytes);
        } else {
            by_pos[o] = PyArray_NewCopy((PyArrayObject *)by_pos[o], NPY_CORDER);
        }
        if (!by_pos[o]) goto done;
        outs[n_made++] = by_pos[o];   /* released below, like the slot arrays */
    }
    if (p->out_conv) {   /* another DLPack producer's arrays: its from_dlpack */
        if (!(conv = PyMem_Calloc((size_t)p->n_results + 1, sizeof *conv))) {
            PyErr_NoMemory();
            goto done;
        }
        for (int o = 0; o < p->n_results; o++) {
            int same = s->out_same_as ? s->out_same_as[o] : -1;
            conv[o] = same >= 0 ? Py_NewRef(conv[same]) : PyObject_CallOneArg(p->out_conv, by_pos[o]);
            if (!conv[o]) goto done;
            by_pos[o] = conv[o];
        }
    }
    *result = tj_template_build(&p->tmpl, by_pos);
    rc = *result ? 0 : -1;
done:
    for (int k = 0; k < n_made; k++) Py_DECREF(outs[k]);
    for (int k = 0; k < n_held; k++) Py_DECREF(held[k]);
    for (int o = 0; conv && o < p->n_results; o++) Py_XDECREF(conv[o]);
    PyMem_Free(conv);
    if (scratch && scratch == p->scratch_cache) p->scratch_busy = 0;
    else PyMem_RawFree(scratch);
    if (big) {
        PyMem_Free(P);
        PyMem_Free(S);
        PyMem_Free(sc);
        PyMem_Free(outs);
        PyMem_Free(by_pos);
        PyMem_Free(held);
        PyMem_Free(dls);
    }
    return rc;
}

void tj_plan_decref(tj_plan *p) {
    if (!p || --p->refs > 0) return;
    tj_tcc_free(p->mod);
    tj_tier_drop(p->tier_job);
    tj_tier_unload(p->tier_handle);
    PyMem_Free(p->tier2_groups);
    Py_XDECREF(p->fused_source);
    PyMem_RawFree(p->scratch_cache);
    PyMem_Free(p->key);
    Py_XDECREF(p->statics);
    PyMem_Free(p->slots);
    Py_XDECREF(p->captures);
    Py_XDECREF(p->guards);
    Py_XDECREF(p->out_conv);
    PyMem_Free(p->out_strides);
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
