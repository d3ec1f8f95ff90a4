/* Common subexpression elimination by hash-consing.
 * Requires: operands precede users. Guarantees: no two live nodes compute the same
 * value (same op, dtype, shape, operands, view or constant); commutative operands are
 * ordered; uses of a duplicate are redirected to its first occurrence. Leaves reading
 * distinct slots are distinct; a node with an effect (tj_op_pure) is never merged.
 * Duplicates stay in the graph for DCE to remove. */
#include "ir/ir.h"

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t node_hash(const tj_node *n) {
    uint64_t h = mix((uint64_t)n->op, n->dtype | (uint64_t)n->weak << 8 | (uint64_t)n->ndim << 16);
    for (int d = 0; d < n->ndim; d++) {
        h = mix(h, (uint64_t)n->shape[d] ^ (uint64_t)n->perm[d] << 56);
        h = mix(h, (uint64_t)n->vstep[d]);
    }
    for (int d = 0; d < TJ_MAXDIM; d++) h = mix(h, (uint64_t)n->voff[d]);
    h = mix(h, n->axes);
    for (int a = 0; a < 3; a++) h = mix(h, (uint64_t)(uint32_t)n->in[a]);
    if (n->op == TJ_OP_CONST) h = mix(h, (uint64_t)n->value.i);
    else if (tj_ops[n->op].kind == TJ_K_LEAF) h = mix(h, (uint64_t)n->slot);
    return h;
}

static int node_equal(const tj_node *a, const tj_node *b) {
    if (a->op != b->op || a->dtype != b->dtype || a->weak != b->weak || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d] || a->perm[d] != b->perm[d] || a->vstep[d] != b->vstep[d])
            return 0;
    if (a->axes != b->axes || a->flat != b->flat || memcmp(a->voff, b->voff, sizeof a->voff) != 0)
        return 0;
    for (int i = 0; i < 3; i++)
        if (a->in[i] != b->in[i]) return 0;
    if (a->op == TJ_OP_CONST) return a->value.i == b->value.i;
    if (tj_ops[a->op].kind == TJ_K_LEAF) return a->slot == b->slot;
    return 1;
}

int tj_pass_cse(tj_graph *g, tj_error *err) {
    int32_t cap = 16;
    while (cap < 2 * g->n) cap *= 2;
    int32_t *table = malloc((size_t)cap * sizeof *table);
    int32_t *rep = malloc((size_t)(g->n ? g->n : 1) * sizeof *rep);
    if (!table || !rep) {
        free(table);
        free(rep);
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; i < cap; i++) table[i] = -1;
    for (int32_t i = 0; i < g->n; i++) {
        tj_node *n = &g->nodes[i];
        for (int a = 0; a < tj_ops[n->op].arity; a++) n->in[a] = rep[n->in[a]];
        if ((tj_ops[n->op].flags & TJ_F_COMM) && n->in[0] > n->in[1]) {
            int32_t t = n->in[0];
            n->in[0] = n->in[1];
            n->in[1] = t;
        }
        rep[i] = i;
        if (!tj_op_pure(n->op)) continue;   /* two draws are two values */
        uint64_t h = node_hash(n);
        int32_t k = (int32_t)(h & (uint64_t)(cap - 1));
        while (table[k] >= 0) {
            if (node_equal(&g->nodes[table[k]], n)) { rep[i] = table[k]; break; }
            k = (k + 1) & (cap - 1);
        }
        if (rep[i] == i) table[k] = i;
    }
    for (int32_t o = 0; o < g->n_out; o++) g->outputs[o] = rep[g->outputs[o]];
    free(table);
    free(rep);
    return 0;
}
