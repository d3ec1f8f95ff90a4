/* Memory planning of scratch slots.
 * Requires: a schedule from fuse (groups run in order). Guarantees: every scratch
 * slot gets a 64-byte aligned offset in one block of s->scratch_bytes (the planned
 * peak); two slots share bytes only when their lifetimes (first group that writes
 * one .. last group that reads it) are disjoint, so a group never reads or writes a
 * slot whose memory another live slot holds. Placement is first fit, largest first. */
#include "ir/ir.h"

#define ALIGN 64

typedef struct { int64_t size, first, last; } life;

static int64_t slot_bytes(const tj_schedule *s, int slot) {
    int64_t bytes = tj_dtype_size(s->slot_dtype[slot]);
    for (int d = 0; d < s->slot_ndim[slot]; d++) bytes *= s->slot_shape[slot][d];
    return (bytes + ALIGN - 1) / ALIGN * ALIGN;
}

/* Per scratch slot: aligned size and lifetime in groups. New malloc'd array, NULL when
 * out of memory. */
static life *lifetimes(const tj_schedule *s) {
    life *L = malloc((size_t)(s->n_scratch ? s->n_scratch : 1) * sizeof *L);
    if (!L) return NULL;
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
        for (int o = 0; o < gr->n_outs; o++) TOUCH(gr->outs[o].slot, gi);
        for (int l = 0; l < gr->n_leaves; l++) TOUCH(gr->leaves[l].slot, gi);
        if (gr->acc_slot >= 0) TOUCH(gr->acc_slot, gi);
    }
#undef TOUCH
    for (int k = 0; k < s->n_scratch; k++)
        if (L[k].last < 0) L[k].first = L[k].last = 0;   /* unused: still given room */
    return L;
}

int tj_pass_memplan(tj_schedule *s, tj_error *err) {
    int n = s->n_scratch;
    life *L = lifetimes(s);
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int *placed = malloc((size_t)(n ? n : 1) * sizeof *placed);
    s->scratch_off = tj_arena_alloc(&s->arena, (size_t)(n ? n : 1) * sizeof *s->scratch_off);
    if (!L || !order || !placed || !s->scratch_off) {
        free(L);
        free(order);
        free(placed);
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
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
    free(L);
    free(order);
    free(placed);
    return 0;
}

void tj_memplan_dump(const tj_schedule *s, tj_sbuf *log) {
    life *L = lifetimes(s);
    if (!L) { log->failed = 1; return; }
    int64_t unshared = 0;
    for (int k = 0; k < s->n_scratch; k++) unshared += L[k].size;
    tj_put(log, "-- memplan: %d scratch slots, peak %lld bytes (unshared %lld)\n", s->n_scratch,
           (long long)s->scratch_bytes, (long long)unshared);
    for (int k = 0; k < s->n_scratch; k++)
        tj_put(log, "  slot %d: %lld bytes at %lld, groups %d..%d\n", s->first_scratch + k,
               (long long)L[k].size, (long long)s->scratch_off[k], (int)L[k].first,
               (int)L[k].last);
    free(L);
}
