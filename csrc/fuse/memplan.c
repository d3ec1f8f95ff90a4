/* Memory planning of scratch slots.
 * Requires: a schedule from fuse (groups run in order). Guarantees: every scratch
 * slot gets a 64-byte aligned offset in one block of s->scratch_bytes (the planned
 * peak); two slots share bytes only when their lifetimes (first group that writes
 * one .. last group that reads it) are disjoint, so a group never reads or writes a
 * slot whose memory another live slot holds. Placement is first fit, largest first;
 * the placed slots a slot's lifetime overlaps are found through a tree over the slots
 * by first group (not a scan of every placed slot: a trace of n row writes has O(n)
 * scratch slots), with the offsets of the scan the same. */
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
        if (L[k].last < 0) L[k].first = L[k].last = 0, L[k].size = 0;   /* unused (fuse.c's
                                                                     join_groups): no room */
    return L;
}

/* A slot and its sort key: by size, largest first, then by slot (the order an
 * insertion sort gave); by first group, then by slot. */
typedef struct { int64_t key; int k; } keyed;
static int by_key_desc(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    return x->key != y->key ? (x->key < y->key) - (x->key > y->key) : (x->k > y->k) - (x->k < y->k);
}
static int by_key_asc(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    return x->key != y->key ? (x->key > y->key) - (x->key < y->key) : (x->k > y->k) - (x->k < y->k);
}

/* A placed slot by offset, then placing order (rank). */
typedef struct { int64_t off; int rank, k; } placed_at;
static int by_offset(const void *a, const void *b) {
    const placed_at *x = a, *y = b;
    return x->off != y->off ? (x->off > y->off) - (x->off < y->off) : (x->rank > y->rank) - (x->rank < y->rank);
}

/* idx[0..n) = the slots sorted by key (size when desc, else first group), ties by slot. */
static int sorted_slots(const life *L, int n, int desc, int *idx) {
    keyed *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    if (!tmp) return -1;
    for (int k = 0; k < n; k++) tmp[k] = (keyed){desc ? L[k].size : L[k].first, k};
    qsort(tmp, (size_t)n, sizeof *tmp, desc ? by_key_desc : by_key_asc);
    for (int i = 0; i < n; i++) idx[i] = tmp[i].k;
    free(tmp);
    return 0;
}

/* The placed slots whose lifetimes overlap [lo, hi], found without a scan of every
 * placed slot (a trace of n row writes has O(n) scratch slots): every slot, sorted by
 * first group (byf), is a leaf of a tree holding the largest last group of the placed
 * slots below it (-1: none placed); the leaves before the first slot starting after
 * hi whose last >= lo are the overlaps. */
typedef struct { int width; int64_t *maxlast; const int *byf; } tree;

static void tree_place(tree *t, int pos, int64_t last) {
    int i = t->width + pos;
    t->maxlast[i] = last;
    for (i /= 2; i >= 1; i /= 2)
        t->maxlast[i] = t->maxlast[2 * i] > t->maxlast[2 * i + 1] ? t->maxlast[2 * i]
                                                                  : t->maxlast[2 * i + 1];
}

static void tree_find(const tree *t, int node, int from, int to, int end, int64_t lo,
                      int *found, int *n_found) {
    if (from >= end || t->maxlast[node] < lo) return;
    if (to - from == 1) {
        found[(*n_found)++] = t->byf[from];
        return;
    }
    int mid = (from + to) / 2;
    tree_find(t, 2 * node, from, mid, end, lo, found, n_found);
    tree_find(t, 2 * node + 1, mid, to, end, lo, found, n_found);
}

int tj_pass_memplan(tj_schedule *s, tj_error *err) {
    int n = s->n_scratch, width = 1;
    while (width < n) width *= 2;
    life *L = lifetimes(s);
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int *placed = malloc((size_t)(n ? n : 1) * sizeof *placed);
    int *byf = malloc((size_t)(n ? n : 1) * sizeof *byf);
    int *pos = malloc((size_t)(n ? n : 1) * sizeof *pos), *rank = malloc((size_t)(n ? n : 1) * sizeof *rank);
    int64_t *maxlast = malloc((size_t)2 * (size_t)width * sizeof *maxlast);
    placed_at *sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    s->scratch_off = tj_arena_alloc(&s->arena, (size_t)(n ? n : 1) * sizeof *s->scratch_off);
    if (!L || !order || !placed || !byf || !pos || !rank || !maxlast || !sorted || !s->scratch_off) {
        free(L); free(order); free(placed); free(byf); free(pos); free(rank); free(maxlast); free(sorted);
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    }
    if (sorted_slots(L, n, 1, order) < 0 || sorted_slots(L, n, 0, byf) < 0) {
        free(L); free(order); free(placed); free(byf); free(pos); free(rank); free(maxlast); free(sorted);
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        pos[byf[i]] = i;
        rank[order[i]] = i;
    }
    for (int i = 0; i < 2 * width; i++) maxlast[i] = -1;
    tree t = {width, maxlast, byf};
    int64_t peak = 0;
    for (int i = 0; i < n; i++) {
        int k = order[i], n_live = 0, end = 0, hi = n;
        /* placed slots overlapping k's lifetime (those of size 0 never placed in the
         * tree), by offset, then by placing order */
        while (end < hi) {   /* the slots that start by k's last group: byf[0, end) */
            int mid = (end + hi) / 2;
            if (L[byf[mid]].first <= L[k].last) end = mid + 1;
            else hi = mid;
        }
        tree_find(&t, 1, 0, width, end, L[k].first, placed, &n_live);
        for (int j = 0; j < n_live; j++)   /* by offset, then placing order */
            sorted[j] = (placed_at){s->scratch_off[placed[j]], rank[placed[j]], placed[j]};
        qsort(sorted, (size_t)n_live, sizeof *sorted, by_offset);
        for (int j = 0; j < n_live; j++) placed[j] = sorted[j].k;
        int64_t off = 0;
        for (int j = 0; j < n_live; j++) {
            int q = placed[j];
            if (off + L[k].size <= s->scratch_off[q]) break;
            if (off < s->scratch_off[q] + L[q].size) off = s->scratch_off[q] + L[q].size;
        }
        s->scratch_off[k] = off;
        if (off + L[k].size > peak) peak = off + L[k].size;
        if (L[k].size) tree_place(&t, pos[k], L[k].last);
    }
    s->scratch_bytes = peak;
    free(L); free(order); free(placed); free(byf); free(pos); free(rank); free(maxlast); free(sorted);
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
