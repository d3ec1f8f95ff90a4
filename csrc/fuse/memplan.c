/* Memory planning of scratch slots.
 * Requires: a schedule from fuse (groups run in order). Guarantees: every scratch
 * slot gets a 64-byte aligned offset in one block of s->scratch_bytes (the planned
 * peak); two slots share bytes only when their lifetimes (first group that writes
 * one .. last group that reads it) are disjoint, so a group never reads or writes a
 * slot whose memory another live slot holds. Placement is first fit, largest first. */
#include "tracejit.h"

#define ALIGN 64

typedef struct { int64_t size, first, last; } life;

static int64_t slot_bytes(const tj_schedule *s, int slot) {
    int64_t bytes = tj_dtype_size(s->slot_dtype[slot]);
    for (int d = 0; d < s->slot_ndim[slot]; d++) bytes *= s->slot_shape[slot][d];
    return (bytes + ALIGN - 1) / ALIGN * ALIGN;
}

/* Per scratch slot: aligned size and lifetime in groups. New PyMem array. */
static life *lifetimes(const tj_schedule *s) {
    life *L = PyMem_Malloc((size_t)(s->n_scratch ? s->n_scratch : 1) * sizeof *L);
    if (!L) return (life *)PyErr_NoMemory();
    for (int k = 0; k < s->n_scratch; k++) {
        L[k].size = slot_bytes(s, s->first_scratch + k);
        L[k].first = INT32_MAX;
        L[k].last = -1;
    }
#define TOUCH(slot, gi)                                                                   \
    do {                                                                                  \
        int k_ = (slot) - s->first_scratch;                                               \
        if (k_ >= 0 && k_ < s->n_scratch) {                                               \
            if (L[k_].first > (gi)) L[k_].first = (gi);                                   \
            if (L[k_].last < (gi)) L[k_].last = (gi);                                     \
        }                                                                                 \
    } while (0)
    for (int gi = 0; gi < s->n_groups; gi++) {
        const tj_group *gr = &s->groups[gi];
        for (int o = 0; o < gr->n_outs; o++) TOUCH(gr->out_slot[o], gi);
        for (int l = 0; l < gr->n_leaves; l++) TOUCH(gr->leaf_slot[l], gi);
        if (gr->acc_slot >= 0) TOUCH(gr->acc_slot, gi);
    }
#undef TOUCH
    for (int k = 0; k < s->n_scratch; k++)
        if (L[k].last < 0) L[k].first = L[k].last = 0;   /* unused: still given room */
    return L;
}

int tj_pass_memplan(tj_schedule *s) {
    int n = s->n_scratch;
    life *L = lifetimes(s);
    int *order = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *order);
    int *placed = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *placed);
    PyMem_Free(s->scratch_off);
    s->scratch_off = PyMem_Calloc((size_t)(n ? n : 1), sizeof *s->scratch_off);
    if (!L || !order || !placed || !s->scratch_off) {
        PyMem_Free(L);
        PyMem_Free(order);
        PyMem_Free(placed);
        if (L) PyErr_NoMemory();
        return -1;
    }
    /* largest first, then by slot: deterministic */
    for (int k = 0; k < n; k++) order[k] = k;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && L[order[j]].size > L[order[j - 1]].size; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    int64_t peak = 0;
    for (int i = 0; i < n; i++) {
        int k = order[i], n_live = 0;
        /* slots already placed whose lifetimes overlap k's, by offset */
        for (int j = 0; j < i; j++) {
            int q = order[j];
            if (L[q].first > L[k].last || L[q].last < L[k].first || !L[q].size) continue;
            int p = n_live++;
            for (; p > 0 && s->scratch_off[placed[p - 1]] > s->scratch_off[q]; p--)
                placed[p] = placed[p - 1];
            placed[p] = q;
        }
        int64_t off = 0;
        for (int j = 0; j < n_live; j++) {
            int q = placed[j];
            if (off + L[k].size <= s->scratch_off[q]) break;
            if (off < s->scratch_off[q] + L[q].size) off = s->scratch_off[q] + L[q].size;
        }
        s->scratch_off[k] = off;
        if (off + L[k].size > peak) peak = off + L[k].size;
    }
    s->scratch_bytes = peak;
    PyMem_Free(L);
    PyMem_Free(order);
    PyMem_Free(placed);
    return 0;
}

int tj_memplan_dump(const tj_schedule *s, PyObject *log) {
    life *L = lifetimes(s);
    if (!L) return -1;
    int64_t unshared = 0;
    for (int k = 0; k < s->n_scratch; k++) unshared += L[k].size;
    int rc = -1;
    PyObject *line = PyUnicode_FromFormat("-- memplan: %d scratch slots, peak %lld bytes "
                                          "(unshared %lld)", s->n_scratch,
                                          (long long)s->scratch_bytes, (long long)unshared);
    if (!line || PyList_Append(log, line) < 0) goto done;
    for (int k = 0; k < s->n_scratch; k++) {
        Py_SETREF(line, PyUnicode_FromFormat("  slot %d: %lld bytes at %lld, groups %d..%d",
                                             s->first_scratch + k, (long long)L[k].size,
                                             (long long)s->scratch_off[k], (int)L[k].first,
                                             (int)L[k].last));
        if (!line || PyList_Append(log, line) < 0) goto done;
    }
    rc = 0;
done:
    Py_XDECREF(line);
    PyMem_Free(L);
    return rc;
}
