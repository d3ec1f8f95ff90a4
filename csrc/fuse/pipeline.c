/* The pass order, written out once.
 * Requires: a traced graph whose outputs are set. Guarantees: a schedule of fused
 * groups whose outputs are fresh computed values (never a leaf's memory), with
 * scratch offsets planned and every group lowered (its loop nest, split and access).
 * Interface: the graph carries its slot table because fold and simplify create
 * constants and a constant is read through a slot; fuse reads the leaf slots' layouts
 * (contiguity) from that table once those passes ran, and the plan takes the table
 * afterwards. */
#include "ir/ir.h"
#include <stdio.h>

/* Returned leaves, views and reductions (whose results live in scratch) become COPY
 * nodes, so every output is computed into a fresh array and never aliases memory the
 * plan reads or owns. */
static int fresh_outputs(tj_graph *g, tj_error *err) {
    for (int32_t o = 0; o < g->n_out; o++) {
        const tj_node *n = &g->nodes[g->outputs[o]];
        int kind = tj_ops[n->op].kind;
        if (kind != TJ_K_LEAF && kind != TJ_K_RED && kind != TJ_K_CAT && kind != TJ_K_SCAN &&
            n->op != TJ_OP_VIEW)
            continue;
        tj_node c = *n;
        c.op = TJ_OP_COPY;
        c.weak = 0;
        c.slot = -1;
        memset(c.perm, 0, sizeof c.perm);
        memset(c.vstep, 0, sizeof c.vstep);
        memset(c.voff, 0, sizeof c.voff);
        c.axes = 0;
        c.in[0] = g->outputs[o];
        c.in[1] = c.in[2] = -1;
        int32_t id = tj_graph_add(g, &c, err);
        if (id < 0) return -1;
        g->outputs[o] = id;
    }
    return 0;
}

static void dump_schedule(const tj_schedule *s, tj_sbuf *log) {
    tj_put(log, "-- fuse: %d groups, %d scratch slots (%lld bytes)\n", s->n_groups, s->n_scratch,
           (long long)s->scratch_bytes);
    for (int i = 0; i < s->n_groups; i++) {
        const tj_group *gr = &s->groups[i];
        char buf[512];
        size_t k = (size_t)snprintf(buf, sizeof buf, "  group %d: loop [", i);
        for (int d = 0; d < gr->ndim && k < sizeof buf; d++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, d ? ", %lld" : "%lld",
                                  (long long)gr->shape[d]);
        k += (size_t)snprintf(buf + k, sizeof buf - k, "], %d nodes, %d leaves, outs",
                              gr->n_nodes, gr->n_leaves);
        for (int o = 0; o < gr->n_outs && k < sizeof buf; o++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, " %%%d->slot %d", (int)gr->outs[o].node,
                                  (int)gr->outs[o].slot);
        tj_put(log, "%s\n", buf);
    }
}

/* Which output positions share an object: the traced values decide (one value
 * returned twice is one array), never the passes: values they made one node (CSE
 * merges `x + 1, x + 1`; simplify may redirect an output) stay distinct arrays, the
 * runtime copying the later ones. `traced`: the outputs before any pass. */
static int same_outputs(const tj_graph *g, const int32_t *traced, tj_schedule *s,
                        tj_error *err) {
    s->out_same_as = tj_arena_alloc(&s->arena, (size_t)(g->n_out ? g->n_out : 1) * sizeof(int32_t));
    if (!s->out_same_as) return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    for (int32_t o = 0; o < g->n_out; o++) {
        int32_t same = -1;
        for (int32_t p = 0; p < o && same == -1; p++)
            if (traced[p] == traced[o]) same = p;   /* the first with this value */
        for (int32_t p = 0; p < o && same == -1; p++)
            if (s->out_slot_of[p] == s->out_slot_of[o]) same = -2;
        s->out_same_as[o] = same;
    }
    return 0;
}

#define STEP(call) do { if ((call) < 0) goto fail; } while (0)

int tj_pipeline_run(tj_graph *g, tj_schedule *s, tj_sbuf *log, tj_error *err) {
    int32_t *traced = malloc((size_t)(g->n_out ? g->n_out : 1) * sizeof *traced);
    if (!traced) return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    memcpy(traced, g->outputs, (size_t)g->n_out * sizeof *traced);

    STEP(fresh_outputs(g, err));
    if (log) tj_graph_dump(g, "traced", log);
    STEP(tj_pass_fold(g, err));
    if (log) tj_graph_dump(g, "fold", log);
    STEP(tj_pass_simplify(g, err));
    if (log) tj_graph_dump(g, "simplify", log);
    STEP(tj_pass_cse(g, err));
    if (log) tj_graph_dump(g, "cse", log);
    STEP(tj_pass_dce(g, err));
    if (log) tj_graph_dump(g, "dce", log);
    STEP(tj_pass_fuse(g, s, err));   /* reads the slots fold and simplify may have added */
    STEP(tj_pass_lower(g, s, err));   /* the groups' loops (collapsed) and access */
    if (log) dump_schedule(s, log);
    STEP(tj_pass_memplan(s, err));
    if (log) tj_memplan_dump(s, log);
    STEP(same_outputs(g, traced, s, err));
    if (log && log->failed) {   /* a dump ran out of memory */
        tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
        goto fail;
    }

    free(traced);
    return 0;
fail:
    free(traced);
    return -1;
}
