/* Replay: from a flattened call to results, in C. Fills each slot's data pointer and
 * strides (arguments, captured arrays re-read from their closure cell or global,
 * constants, scratch, fresh outputs), runs the compiled kernel (without the GIL when
 * the work is large), and rebuilds the result structure.
 * Contract: allocates only the outputs (and scratch, when the plan has any: one block
 * of the planned peak, csrc/fuse/memplan.c, kept by the plan between calls up to
 * TJ_KEEP_SCRATCH, larger ones recycled through blocks.c's cache); outputs
 * are fresh C-contiguous arrays; a captured array whose dtype, shape or layout no
 * longer matches the trace makes the plan stale (returns 1), never a wrong answer. */
#include "tracejit.h"
#include "loops.h"
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

int tj_kernel_run(const tj_kernel *k, int ns, void **P, const int64_t **S, int may_split) {
    return tj_kernel_run_groups(k, ns, P, S, may_split, 0, k->n_groups);
}

/* Group g on bound slots (ns: slots + 1, the error record's). 0; -1 out of memory. */
static inline __attribute__((always_inline)) int run_group(const tj_gdesc *g, int ns,
                                                           void **P, const int64_t **S,
                                                           int may_split) {
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
            return 0;
        }
    }
    if (may_split && g->par && g->units > 1 && big)
        tj_pool_for(run_range, &c, g->units,
                    g->work >= TJ_MIN_CHUNK ? 1 : (TJ_MIN_CHUNK + g->work - 1) / g->work);
    else
        g->body(P, S, 0, g->units);
    if (g->fin) g->fin(P, S);
    return 0;
}

int tj_kernel_run_groups(const tj_kernel *k, int ns, void **P, const int64_t **S, int may_split,
                         int g0, int g1) {
    for (int gi = g0; gi < g1; gi++)
        if (run_group(&k->groups[gi], ns + 1, P, S, may_split) < 0) return -1;
    return 0;
}

/* The optimizing tier: a plan whose kernel has an upgrade (its elementwise groups as
 * fused C) starts the upgrade's compile once it proves hot -- TJ_TIER_CALLS calls and
 * TJ_TIER_WORK element-ops computed, about the time the compile itself takes on
 * another core -- and swaps the compiled bodies in at the first call after they are
 * ready (tj_upgrade_poll). Runs in progress on other threads finish on the table they
 * started with (both stay valid). */
#define TJ_TIER_CALLS 2
#define TJ_TIER_WORK (1LL << 26)

void tj_plan_tier_up(tj_plan *p) {
    if (!p->upgrade.next.state) {
        if (p->calls >= TJ_TIER_CALLS && p->work_done >= TJ_TIER_WORK)
            tj_upgrade_start(p->st, &p->upgrade);
        return;
    }
    tj_upgrade_poll(&p->upgrade, &p->kernel);
}

/* ---- one replay: guards, bind, allocate, launch, finish ------------------------ */

/* A replay's working memory: each slot's data pointer and strides (P[ns] is the error
 * record gathers report an out-of-bounds index in), the arrays it holds and makes.
 * Small plans use the stack arrays. */
typedef struct {
    int ns, big;
    void **P;
    const int64_t **S;
    unsigned char (*sc)[8];        /* scalar arguments, as the kernel reads them */
    PyObject **outs;               /* results made (released at the end: the template
                                      holds its own references) */
    int n_made;
    PyObject **by_pos;             /* results in template order */
    PyObject **cap;                /* captured arrays, as the guards read them: held for the
                                      run (another thread may rebind their names while the
                                      kernel runs without the GIL) */
    tj_dlview *cap_view;           /* their DLPack views (torch tensors) */
    int64_t (*dls)[TJ_MAXDIM];     /* byte strides of captured torch tensors (their DLPack
                                      views count elements) */
    PyObject **conv;               /* results converted to another DLPack library */
    char *scratch;
    size_t scratch_cap;            /* a recycled block's capacity (blocks.c), else 0 */
    char *hidden;                  /* the outputs no result reads (guards', checks') */
    int64_t err[4];
    const tj_loopctx *lc;          /* the call's compiled loops' results and keys, or NULL */
    int64_t hidden_stack[32];
    void *P_stack[TJ_STACK_SLOTS + 1];
    const int64_t *S_stack[TJ_STACK_SLOTS];
    unsigned char sc_stack[TJ_STACK_SLOTS][8];
    PyObject *o_stack[2 * TJ_STACK_SLOTS], *pos_stack[TJ_STACK_SLOTS + 1];
    PyObject *cap_stack[TJ_STACK_SLOTS];
    tj_dlview view_stack[TJ_STACK_SLOTS];
    int64_t dls_stack[TJ_STACK_SLOTS][TJ_MAXDIM];
} replay;

static int replay_init(replay *r, const tj_plan *p) {
    int ns = p->sched.n_slots, nc = (int)PyList_GET_SIZE(p->captures);
    r->ns = ns;
    r->big = ns + 1 > TJ_STACK_SLOTS || p->n_results > TJ_STACK_SLOTS || nc > TJ_STACK_SLOTS;
    r->n_made = 0;
    r->conv = NULL;
    r->scratch = NULL;
    r->scratch_cap = 0;
    r->hidden = (char *)r->hidden_stack;
    memset(r->err, 0, sizeof r->err);
    if (p->hidden_bytes > (int64_t)sizeof r->hidden_stack &&
        !(r->hidden = PyMem_Malloc((size_t)p->hidden_bytes))) {
        PyErr_NoMemory();
        return -1;
    }
    if (!r->big) {
        r->P = r->P_stack; r->S = r->S_stack; r->sc = r->sc_stack; r->outs = r->o_stack;
        r->by_pos = r->pos_stack; r->cap = r->cap_stack; r->cap_view = r->view_stack;
        r->dls = r->dls_stack;
        memset(r->cap, 0, (size_t)nc * sizeof *r->cap);
        return 0;
    }
    r->P = PyMem_Calloc((size_t)ns + 1, sizeof *r->P);
    r->S = PyMem_Calloc((size_t)ns, sizeof *r->S);
    r->sc = PyMem_Calloc((size_t)ns, 8);
    r->outs = PyMem_Calloc((size_t)ns + (size_t)p->n_results, sizeof *r->outs);
    r->by_pos = PyMem_Calloc((size_t)p->n_results + 1, sizeof *r->by_pos);
    r->cap = PyMem_Calloc((size_t)nc + 1, sizeof *r->cap);
    r->cap_view = PyMem_Calloc((size_t)nc + 1, sizeof *r->cap_view);
    r->dls = PyMem_Calloc((size_t)ns, sizeof *r->dls);
    if (r->P && r->S && r->sc && r->outs && r->by_pos && r->cap && r->cap_view && r->dls)
        return 0;
    PyErr_NoMemory();
    return -1;
}

static void replay_release(replay *r, tj_plan *p) {
    for (int k = 0; k < r->n_made; k++) Py_XDECREF(r->outs[k]);
    if (r->hidden != (char *)r->hidden_stack) PyMem_Free(r->hidden);
    for (Py_ssize_t c = 0; r->cap && c < PyList_GET_SIZE(p->captures); c++) Py_XDECREF(r->cap[c]);
    for (int o = 0; r->conv && o < p->n_results; o++) Py_XDECREF(r->conv[o]);
    PyMem_Free(r->conv);
    if (r->scratch && r->scratch == p->scratch_cache) p->scratch_busy = 0;
    else if (r->scratch_cap) tj_block_put(r->scratch, r->scratch_cap);
    else PyMem_RawFree(r->scratch);
    if (r->big) {
        PyMem_Free(r->P);
        PyMem_Free(r->S);
        PyMem_Free(r->sc);
        PyMem_Free(r->outs);
        PyMem_Free(r->by_pos);
        PyMem_Free(r->cap);
        PyMem_Free(r->cap_view);
        PyMem_Free(r->dls);
    }
}

/* Leaf slots: arguments (a torch one through the view its key was made with),
 * captured arrays (as the guards read them), constants. 0/-1. */
static int bind(replay *r, const tj_plan *p, const tj_flat *f) {
    int dl_k = 0;
    for (int i = 0; i < p->n_leaf_slots; i++) {
        const tj_slotdesc *d = &p->slots[i];
        if (d->kind == TJ_SLOT_CONST) {
            r->P[i] = p->consts[i];
            r->S[i] = NULL;
            continue;
        }
        PyObject *o;
        if (d->kind == TJ_SLOT_LOOP) {   /* a loop's result (a body's input: dead here) */
            PyArrayObject *a = d->index >= 0 && r->lc && d->index < r->lc->n_vals
                                   ? (PyArrayObject *)r->lc->vals[d->index] : NULL;
            r->P[i] = a ? PyArray_DATA(a) : NULL;
            r->S[i] = a ? (const int64_t *)PyArray_STRIDES(a) : NULL;
            continue;
        }
        if (d->kind == TJ_SLOT_KEY && r->lc && d->index < r->lc->n_keys) {   /* the call's */
            memcpy(r->sc[i], &r->lc->keys[d->index], 8);
            r->P[i] = r->sc[i];
            r->S[i] = NULL;
            continue;
        }
        if (d->kind == TJ_SLOT_KEY) {   /* 64 fresh bits from the generator, every call */
            PyObject *k = PyObject_CallNoArgs(PyList_GET_ITEM(p->keyfns, d->index));
            unsigned long long v = k ? PyLong_AsUnsignedLongLongMask(k) : 0;
            Py_XDECREF(k);
            if (PyErr_Occurred()) return -1;
            memcpy(r->sc[i], &v, 8);
            r->P[i] = r->sc[i];
            r->S[i] = NULL;
            continue;
        }
        if (d->kind == TJ_SLOT_CAPTURE && d->torch) {
            const tj_dlview *v = &r->cap_view[d->index];
            memcpy(r->dls[i], v->strides, (size_t)v->ndim * sizeof(int64_t));
            r->P[i] = v->data;
            r->S[i] = r->dls[i];
            continue;
        }
        if (d->kind == TJ_SLOT_CAPTURE) {
            o = r->cap[d->index];
        } else {
            o = f->leaves[d->index];
            if (d->torch) {   /* its view, taken when the key was made */
                const tj_dlview *v = &f->dl[dl_k++];
                r->P[i] = v->data;
                r->S[i] = v->strides;
                continue;
            }
        }
        if (PyArray_Check(o)) {
            r->P[i] = PyArray_DATA((PyArrayObject *)o);
            r->S[i] = (const int64_t *)PyArray_STRIDES((PyArrayObject *)o);
            continue;
        }
        r->S[i] = NULL;
        r->P[i] = r->sc[i];
        if (PyFloat_CheckExact(o)) {
            double v = PyFloat_AS_DOUBLE(o);
            memcpy(r->sc[i], &v, 8);
        } else if (PyLong_CheckExact(o)) {
            if (d->dtype == TJ_F64) {       /* beyond int64 (the key says so) */
                double v = PyLong_AsDouble(o);
                if (v == -1.0 && PyErr_Occurred()) return -1;
                memcpy(r->sc[i], &v, 8);
                continue;
            }
            int overflow;       /* (the int32 range is a guard) */
            long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
            if (overflow) {
                PyErr_Format(PyExc_OverflowError, "Python integer %R out of bounds for int64", o);
                return -1;
            }
            memcpy(r->sc[i], &v, 8);
        } else if (PyArray_ScalarAsCtype(o, r->sc[i]), PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

/* Scratch (one block, each slot at the offset memplan gave it) and fresh outputs. */
static int allocate(replay *r, tj_plan *p) {
    const tj_schedule *s = &p->sched;
    if (s->n_scratch && !p->kernel.run) {   /* (a device kernel has its own) */
        /* the plan's own block, unless another thread's call is using it (the GIL
         * guards the flag: it is set before and cleared after a run without it) or it
         * is too large to hold between calls */
        if (!p->scratch_busy && s->scratch_bytes <= TJ_KEEP_SCRATCH) {
            if (!p->scratch_cache) p->scratch_cache = PyMem_RawMalloc((size_t)s->scratch_bytes + 1);
            if (p->scratch_cache) { r->scratch = p->scratch_cache; p->scratch_busy = 1; }
        }
        /* else a recycled block, already mapped (a fresh one of a ConvNet's 35 MB
         * faulted in page by page took a quarter of each call) */
        if (!r->scratch && tj_block_recycling() &&
            (r->scratch = tj_block_get((size_t)s->scratch_bytes + 1, &r->scratch_cap)) == NULL)
            r->scratch_cap = 0;
        if (!r->scratch && !(r->scratch = PyMem_RawMalloc((size_t)s->scratch_bytes + 1))) {
            PyErr_Format(PyExc_MemoryError, "Unable to allocate %lld bytes of scratch memory "
                         "for a compiled kernel", (long long)s->scratch_bytes);
            return -1;
        }
        for (int k = 0; k < s->n_scratch; k++) {
            r->P[s->first_scratch + k] = r->scratch + s->scratch_off[k];
            r->S[s->first_scratch + k] = p->slot_strides[k];
        }
    }
    for (int k = 0; k < r->ns - s->first_out; k++) {
        int slot = s->first_out + k;
        if (p->out_hidden && p->out_hidden[k]) {   /* read here only: no array */
            r->P[slot] = r->hidden + p->hidden_off[k];
            r->S[slot] = p->out_strides[k];
            r->outs[r->n_made++] = NULL;
            continue;
        }
        if (p->out_lib == TJ_LIB_TORCH) {
            void *data;
            PyObject *tensor =
                p->device == TJ_DEVICE_CUDA
                    ? tj_dl_torch_empty_cuda(p->st, p->device_id, s->slot_ndim[slot],
                                             s->slot_shape[slot], s->slot_dtype[slot], &data)
                    : tj_dl_torch_empty(p->st, s->slot_ndim[slot], s->slot_shape[slot],
                                        s->slot_dtype[slot], &data);
            if (!tensor) return -1;
            r->outs[r->n_made++] = tensor;
            r->P[slot] = data;
            r->S[slot] = p->out_strides[k];
            continue;
        }
        PyArrayObject *a = (PyArrayObject *)tj_new_result(
            s->slot_ndim[slot], s->slot_shape[slot], tj_dtype_typenum(s->slot_dtype[slot]),
            tj_dtype_size(s->slot_dtype[slot]));
        if (!a) return -1;
        r->outs[r->n_made++] = (PyObject *)a;
        r->P[slot] = PyArray_DATA(a);
        r->S[slot] = (const int64_t *)PyArray_STRIDES(a);
    }
    return 0;
}

/* The kernel's groups in phases (fuse.c): the groups that compute value guard k's value,
 * then its comparison, for each k in the trace's order, then the rest; a guard that
 * fails stops the kernel there (*failed = 1), so a variant whose guard fails runs none
 * of the work that follows it. Plain C: runs with or without the GIL. 0/-1. */
static int run_phases(tj_plan *p, replay *r, int split, int *failed) {
    const tj_schedule *s = &p->sched;
    const tj_kernel *k = &p->kernel;
    int ns = s->n_slots + 1, ng = k->n_groups, nk = s->n_guard_end, next = nk ? s->guard_end[0] : -1;
    p->groups_ran = ng;
    if (!nk) return tj_kernel_run_groups(k, s->n_slots, r->P, r->S, split, 0, ng);
    for (int gi = 0, g = 0;; gi++) {
        for (; gi == next; next = ++g < nk ? s->guard_end[g] : -1)   /* guard g's turn */
            if (!tj_guards_value_holds(p, g, (void *const *)r->P)) {
                *failed = 1;
                p->groups_ran = gi;
                return 0;
            }
        if (gi == ng) return 0;
        if (run_group(&k->groups[gi], ns, r->P, r->S, split) < 0) return -1;
    }
}

/* The kernel (without the GIL when the work is large), then the tier's progress. 0/-1;
 * *failed: a value guard failed (kernel_errors reads the error record once they held). */
static int launch(replay *r, tj_plan *p, int *failed) {
    r->P[r->ns] = r->err;
    int rc;
    if (p->kernel.run)   /* a device's kernel: launched on its stream, not waited for */
        return p->kernel.run(&p->kernel, r->P, r->S);
    if (p->work >= TJ_NOGIL_WORK) {
        Py_BEGIN_ALLOW_THREADS
        rc = run_phases(p, r, 1, failed);
        Py_END_ALLOW_THREADS
    } else {
        rc = run_phases(p, r, 0, failed);
    }
    if (rc < 0) { PyErr_NoMemory(); return -1; }
    if (p->upgrade.source && !p->upgrade.done) {
        p->calls++;
        p->work_done += p->work;
        tj_plan_tier_up(p);
    }
    return 0;
}

/* The kernel's error record (read once the value guards held: a kernel that ran on
 * values its trace did not assume may report what eager never meets). 0/-1. */
static int kernel_errors(replay *r, tj_plan *p) {
    if (r->err[0] && r->err[3] < 0) {
        /* a masked assignment's count check (csrc/trace/write.c): the index was
         * 2 * (True elements - values), the axis -(values + 1) */
        long long want = -(long long)r->err[3] - 1, got = (long long)r->err[1] / 2 + want;
        if (p->out_lib == TJ_LIB_TORCH)
            PyErr_Format(PyExc_RuntimeError, "shape mismatch: value tensor of shape [%lld] "
                         "cannot be broadcast to indexing result of shape [%lld]", want, got);
        else
            PyErr_Format(PyExc_ValueError, "NumPy boolean array indexing assignment cannot "
                         "assign %lld input values to the %lld output values where the mask "
                         "is true", want, got);
        return -1;
    }
    if (r->err[0]) {
        PyErr_Format(PyExc_IndexError, "index %lld is out of bounds for axis %lld with size %lld",
                     (long long)r->err[1], (long long)r->err[3], (long long)r->err[2]);
        return -1;
    }
    return 0;
}

/* ---- writes back into the caller's arrays ----------------------------------------- */

/* The position among the call's torch argument views (f->dl) of leaf slot `slot`'s,
 * in the order bind() takes them. */
static int dl_index(const tj_plan *p, int slot) {
    int k = 0;
    for (int i = 0; i < slot; i++) k += p->slots[i].kind == TJ_SLOT_ARG && p->slots[i].torch;
    return k;
}

/* Leaf slot `slot`'s array (an argument or a capture, as bound), its shape and ndim
 * (NULL when the slot holds no array); k: its dl_index. Borrowed. */
static PyObject *leaf_array(const replay *r, const tj_plan *p, const tj_flat *f, int slot,
                            int k, const int64_t **shape, int *ndim) {
    const tj_slotdesc *d = &p->slots[slot];
    *shape = NULL;
    if (d->kind == TJ_SLOT_CAPTURE && d->torch) {
        *shape = r->cap_view[d->index].shape;
        *ndim = r->cap_view[d->index].ndim;
        return r->cap[d->index];
    }
    PyObject *o = d->kind == TJ_SLOT_CAPTURE ? r->cap[d->index]
                : d->kind == TJ_SLOT_ARG ? f->leaves[d->index] : NULL;
    if (o && d->torch) {   /* an argument: its view */
        *shape = f->dl[k].shape;
        *ndim = f->dl[k].ndim;
    } else if (o && PyArray_Check(o)) {
        static const int64_t none[1] = {0};
        *ndim = PyArray_NDIM((PyArrayObject *)o);
        *shape = *ndim ? (const int64_t *)PyArray_DIMS((PyArrayObject *)o) : none;
    }
    return *shape ? o : NULL;
}

/* The bytes [*lo, *hi) a strided array spans. */
static void span(const char *data, const int64_t *strides, const int64_t *shape, int ndim,
                 int64_t item, const char **lo, const char **hi) {
    int64_t a = 0, b = item;
    for (int d = 0; d < ndim; d++) {
        if (!shape[d]) { *lo = *hi = data; return; }
        int64_t e = (shape[d] - 1) * strides[d];
        if (e < 0) a += e; else b += e;
    }
    *lo = data + a;
    *hi = data + b;
}

/* dst[i] = src[i] over a shape, both strided (byte strides; NULL: a 0-d value, read
 * broadcast). */
static int c_contiguous(const int64_t *strides, const int64_t *shape, int ndim, int64_t item) {
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] != 1 && strides[d] != item) return 0;
        item *= shape[d];
    }
    return 1;
}

static void copy_strided(char *dst, const int64_t *ds, const char *src, const int64_t *ss,
                         const int64_t *shape, int ndim, int64_t item) {
    if (ndim == 0) { memcpy(dst, src, (size_t)item); return; }
    if (ss && c_contiguous(ds, shape, ndim, item) && c_contiguous(ss, shape, ndim, item)) {
        int64_t n = item;          /* both dense in the same order: one copy (the
                                      common case, a training step's parameters) */
        for (int d = 0; d < ndim; d++) n *= shape[d];
        memmove(dst, src, (size_t)n);
        return;
    }
    if (ndim == 1 && item == 4) {  /* the innermost dim without a call per element */
        for (int64_t i = 0; i < shape[0]; i++)
            memcpy(dst + i * ds[0], src + (ss ? i * ss[0] : 0), 4);
        return;
    }
    if (ndim == 1 && item == 8) {
        for (int64_t i = 0; i < shape[0]; i++)
            memcpy(dst + i * ds[0], src + (ss ? i * ss[0] : 0), 8);
        return;
    }
    for (int64_t i = 0; i < shape[0]; i++)
        copy_strided(dst + i * ds[0], ds + 1, src + (ss ? i * ss[0] : 0), ss ? ss + 1 : NULL,
                     shape + 1, ndim - 1, item);
}

/* Whether NumPy arrays a and b, whose byte spans overlap, have an element in common
 * (NumPy's exact answer, np.shares_memory: a structured array's fields interleave and
 * share none); a torch tensor is taken as sharing. 1/0/-1. */
static int elements_shared(tj_state *st, PyObject *a, PyObject *b) {
    if (!PyArray_Check(a) || !PyArray_Check(b)) return 1;
    PyObject *r = PyObject_CallMethod(st->numpy, "shares_memory", "OO", a, b);
    if (!r) return -1;
    int shared = PyObject_IsTrue(r);
    Py_DECREF(r);
    return shared;
}

/* Whether writing into leaf slot `slot` is what eager's write would do: NumPy's error
 * for a read-only array, torch's for a leaf that requires grad or a tensor whose
 * elements share memory; a TraceError where its memory overlaps another array the call
 * reads (an argument passed twice, overlapping views): eager's writes would be seen
 * through the other, the compiled code's are not. 0/-1. */
static int write_allowed(const replay *r, const tj_plan *p, const tj_flat *f, int slot) {
    const int64_t *shape, *oshape;
    int ndim, ondim;
    PyObject *o = leaf_array(r, p, f, slot, dl_index(p, slot), &shape, &ndim);
    const tj_slotdesc *d = &p->slots[slot];
    if (!o) { tj_internal_error(p->st, "a written argument holds no array"); return -1; }
    if (PyArray_Check(o) && !PyArray_ISWRITEABLE((PyArrayObject *)o)) {
        PyErr_SetString(PyExc_ValueError, "assignment destination is read-only");
        return -1;
    }
    if (d->torch) {
        if (tj_dl_write_check(p->st, o) < 0) return -1;
        for (int k = 0; k < ndim; k++)
            if (shape[k] > 1 && r->S[slot][k] == 0) {
                PyErr_SetString(PyExc_RuntimeError, "unsupported operation: more than one "
                                "element of the written-to tensor refers to a single memory "
                                "location. Please clone() the tensor before performing the "
                                "operation.");
                return -1;
            }
    }
    int64_t item = tj_dtype_size(d->dtype);
    const char *lo, *hi, *olo, *ohi;
    span(r->P[slot], r->S[slot], shape, ndim, item, &lo, &hi);
    for (int i = 0, k = 0; i < p->n_leaf_slots && lo < hi; k += p->slots[i].kind == TJ_SLOT_ARG &&
                                                            p->slots[i].torch, i++) {
        PyObject *other = i == slot ? NULL : leaf_array(r, p, f, i, k, &oshape, &ondim);
        if (!other) continue;
        span(r->P[i], r->S[i], oshape, ondim, tj_dtype_size(p->slots[i].dtype), &olo, &ohi);
        if (olo < ohi && olo < hi && lo < ohi) {
            int shared = elements_shared(p->st, o, other);
            if (shared < 0) return -1;
            if (!shared) continue;   /* interleaved, no element in common (a structured
                                        array's fields): eager's write is not seen */
            PyErr_SetString(p->st->TraceError,
                            "the compiled function writes into an array whose memory another "
                            "array it reads shares (the same array passed twice, overlapping "
                            "views, an argument that is also a captured array): eager's write "
                            "would be seen through the other, which tracejit does not follow; "
                            "pass separate arrays (x.copy())");
            return -1;
        }
    }
    return 0;
}

/* The new contents of the caller's arrays the function wrote into, copied into their
 * memory (after every check: nothing is written when one fails). Contents that are
 * another argument's (`a[...] = b`) are copied first, before any argument changes. */
static int write_back(const replay *r, const tj_plan *p, const tj_flat *f) {
    const tj_schedule *s = &p->sched;
    int first = p->n_results - p->n_hidden - p->n_writes;   /* after the template's */
    for (int w = 0; w < p->n_writes; w++)
        if (write_allowed(r, p, f, p->write_slot[w]) < 0) return -1;
    for (int pass = 0; pass < 2; pass++)
        for (int w = 0; w < p->n_writes; w++) {
            int src = s->out_slot_of[first + w], dst = p->write_slot[w];
            const int64_t *shape;
            int ndim;
            if ((src < p->n_leaf_slots) != (pass == 0)) continue;
            leaf_array(r, p, f, dst, dl_index(p, dst), &shape, &ndim);
            copy_strided(r->P[dst], r->S[dst], r->P[src], r->S[src], shape, ndim,
                         tj_dtype_size(p->slots[dst].dtype));
        }
    PyObject *torch_written[TJ_STACK_SLOTS];   /* their version counters, in one call */
    int n = 0;
    for (int w = 0; w < p->n_writes; w++) {
        const int64_t *shape;
        int ndim, slot = p->write_slot[w];
        if (p->slots[slot].torch && n < TJ_STACK_SLOTS)
            torch_written[n++] = leaf_array(r, p, f, slot, dl_index(p, slot), &shape, &ndim);
        if (n == TJ_STACK_SLOTS || (n && w == p->n_writes - 1)) {
            if (tj_dl_bump_versions(p->st, torch_written, n) < 0) return -1;
            n = 0;
        }
    }
    return 0;
}

/* The results in template order (a result returned twice is one array; one returned
 * also as an input's alias is copied), converted to their library, as the template's
 * structure. New reference; NULL + exception. */
static PyObject *finish(replay *r, tj_plan *p, const tj_flat *f) {
    const tj_schedule *s = &p->sched;
    PyObject **by_pos = r->by_pos;
    for (int c = 0; c < p->n_checks; c++) {   /* the trace's checks, read in their slots */
        int slot = s->out_slot_of[p->n_results - p->n_checks + c];   /* the last outputs */
        if (!*(const unsigned char *)r->P[slot]) {
            PyObject *pair = PyTuple_GET_ITEM(p->check_msgs, c);
            PyObject *cls = PyTuple_GET_ITEM(pair, 0), *msg = PyTuple_GET_ITEM(pair, 1);
            if (!PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)PyExc_Warning)) {
                PyErr_SetObject(cls, msg);
                return NULL;
            }
            const char *text = PyUnicode_AsUTF8(msg);   /* a warning: the call goes on */
            if (!text || PyErr_WarnEx(cls, text, 1) < 0) return NULL;
        }
    }
    if (p->n_writes && write_back(r, p, f) < 0) return NULL;
    for (int o = 0; o < p->n_results - p->n_hidden - p->n_writes; o++) {
        int same = s->out_same_as ? s->out_same_as[o] : -1;
        const int64_t *shape;
        int ndim;
        PyObject *arr = p->out_alias && p->out_alias[o] >= 0 && !p->out_conv
                            ? leaf_array(r, p, f, p->out_alias[o], dl_index(p, p->out_alias[o]),
                                         &shape, &ndim) : NULL;
        if (arr) {   /* a written array of the caller's returned: eager hands out itself */
            by_pos[o] = arr;
            continue;
        }
        by_pos[o] = same >= 0 ? by_pos[same] : r->outs[s->out_slot_of[o] - s->first_out];
        if (same != -2) continue;
        if (p->device == TJ_DEVICE_CUDA) {   /* a device copy, ordered on torch's stream */
            by_pos[o] = PyObject_CallMethod(by_pos[o], "clone", NULL);
        } else if (p->out_lib == TJ_LIB_TORCH) {
            int slot = s->out_slot_of[o];
            int64_t nbytes = tj_dtype_size(s->slot_dtype[slot]);
            for (int d = 0; d < s->slot_ndim[slot]; d++) nbytes *= s->slot_shape[slot][d];
            void *data;
            by_pos[o] = tj_dl_torch_empty(p->st, s->slot_ndim[slot], s->slot_shape[slot],
                                          s->slot_dtype[slot], &data);
            if (by_pos[o] && nbytes) memcpy(data, r->P[slot], (size_t)nbytes);
        } else {
            by_pos[o] = PyArray_NewCopy((PyArrayObject *)by_pos[o], NPY_CORDER);
        }
        if (!by_pos[o]) return NULL;
        r->outs[r->n_made++] = by_pos[o];   /* released below, like the slot arrays */
    }
    if (p->out_conv) {   /* another DLPack producer's arrays: its from_dlpack */
        if (!(r->conv = PyMem_Calloc((size_t)p->n_results + 1, sizeof *r->conv)))
            return PyErr_NoMemory();
        for (int o = 0; o < p->n_results - p->n_hidden - p->n_writes; o++) {
            int same = s->out_same_as ? s->out_same_as[o] : -1;
            r->conv[o] = same >= 0 ? Py_NewRef(r->conv[same])
                                   : PyObject_CallOneArg(p->out_conv, by_pos[o]);
            if (!r->conv[o]) return NULL;
            by_pos[o] = r->conv[o];
        }
    }
    return tj_template_build(&p->tmpl, by_pos);
}

int tj_plan_run(tj_plan *p, const tj_flat *f, PyObject **result, PyObject **reason) {
    return tj_plan_run_ctx(p, f, NULL, result, reason);
}

int tj_plan_run_ctx(tj_plan *p, const tj_flat *f, const tj_loopctx *lc, PyObject **result,
                    PyObject **reason) {
    replay r;
    tj_loopctx own = {0};
    int rc = -1, failed = 0;
    *result = *reason = NULL;
    r.lc = lc;
    if (replay_init(&r, p) == 0 &&
        (!p->first_value || (rc = tj_guards_check(p, f, r.cap, r.cap_view, reason)) == 0) &&
        (lc || !p->loops || (rc = tj_loops_run(p, f, r.cap, &own, reason)) == 0)) {
        rc = -1;
        if (!lc && p->loops) r.lc = &own;
        /* the value guards: compared in the kernel's phases (failed: its reason, here);
         * a kernel without phases (a device's) has them compared once it ran */
        if (bind(&r, p, f) == 0 && allocate(&r, p) == 0 && launch(&r, p, &failed) == 0) {
            if (failed || (!p->sched.n_guard_end && p->first_value < p->n_guards))
                rc = tj_guards_check_values(p, (void *const *)r.P, reason);
            else
                rc = 0;
            if (rc == 0 && failed) {   /* (never a kernel that stopped early) */
                tj_internal_error(p->st, "a value guard failed in the kernel, not after");
                rc = -1;
            }
            if (rc == 0)
                rc = kernel_errors(&r, p) == 0 && (*result = finish(&r, p, f)) ? 0 : -1;
        }
    }
    replay_release(&r, p);
    tj_loopctx_free(&own);
    return rc;
}

void tj_plan_decref(tj_plan *p) {
    if (!p || --p->refs > 0) return;
    tj_kernel_free(&p->kernel);
    tj_upgrade_free(&p->upgrade);
    PyMem_RawFree(p->scratch_cache);
    PyMem_Free(p->key);
    Py_XDECREF(p->statics);
    PyMem_Free(p->slots);
    Py_XDECREF(p->captures);
    Py_XDECREF(p->pyvalues);
    Py_XDECREF(p->keyfns);
    Py_XDECREF(p->check_msgs);
    PyMem_Free(p->guards);
    Py_XDECREF(p->values);
    PyMem_Free(p->out_hidden);
    PyMem_Free(p->hidden_off);
    Py_XDECREF(p->out_conv);
    Py_XDECREF(p->loops);
    PyMem_Free(p->out_strides);
    PyMem_Free(p->write_slot);
    PyMem_Free(p->out_alias);
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
