/* The pass order, written out once.
 * Requires: a traced graph whose outputs are set. Guarantees: a schedule of fused
 * groups whose outputs are fresh computed values (never a leaf's memory). */
#include "tracejit.h"

/* Returned leaves, views and reductions (whose results live in scratch) become COPY
 * nodes, so every output is computed into a fresh array and never aliases memory the
 * plan reads or owns. */
static int fresh_outputs(tj_graph *g) {
    for (int32_t o = 0; o < g->n_out; o++) {
        const tj_node *n = &g->nodes[g->outputs[o]];
        int kind = tj_ops[n->op].kind;
        if (kind != TJ_K_LEAF && kind != TJ_K_RED && n->op != TJ_OP_VIEW) continue;
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
        int32_t id = tj_graph_add(g, &c);
        if (id < 0) return -1;
        g->outputs[o] = id;
    }
    return 0;
}

/* Each output position gets its own node: `return y, y` (or two equal expressions
 * that CSE merged) gives two arrays, as NumPy would, not one object twice. Runs after
 * CSE, which would merge the copies again. */
static int distinct_outputs(tj_graph *g) {
    for (int32_t o = 1; o < g->n_out; o++) {
        int dup = 0;
        for (int32_t p = 0; p < o && !dup; p++) dup = g->outputs[p] == g->outputs[o];
        if (!dup) continue;
        tj_node c;
        memset(&c, 0, sizeof c);
        c.op = TJ_OP_COPY;
        c.dtype = g->nodes[g->outputs[o]].dtype;
        c.ndim = g->nodes[g->outputs[o]].ndim;
        memcpy(c.shape, g->nodes[g->outputs[o]].shape, sizeof c.shape);
        c.slot = -1;
        c.in[0] = g->outputs[o];
        c.in[1] = c.in[2] = -1;
        int32_t id = tj_graph_add(g, &c);
        if (id < 0) return -1;
        g->outputs[o] = id;
    }
    return 0;
}

static int dump_schedule(const tj_schedule *s, PyObject *log) {
    PyObject *line = PyUnicode_FromFormat("-- fuse: %d groups, %d scratch slots (%lld bytes)",
                                          s->n_groups, s->n_scratch, (long long)s->scratch_bytes);
    if (!line || PyList_Append(log, line) < 0) { Py_XDECREF(line); return -1; }
    Py_DECREF(line);
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
            k += (size_t)snprintf(buf + k, sizeof buf - k, " %%%d->slot %d", (int)gr->outs[o],
                                  (int)gr->out_slot[o]);
        line = PyUnicode_FromString(buf);
        if (!line || PyList_Append(log, line) < 0) { Py_XDECREF(line); return -1; }
        Py_DECREF(line);
    }
    return 0;
}

int tj_pipeline(tj_graph *g, int n_leaf_slots, const uint8_t *leaf_contig, tj_schedule *s,
                PyObject *log) {
    if (fresh_outputs(g) < 0) return -1;
    if (log && tj_graph_dump(g, "traced", log) < 0) return -1;
    if (tj_pass_cse(g) < 0) return -1;
    if (log && tj_graph_dump(g, "cse", log) < 0) return -1;
    if (tj_pass_dce(g) < 0) return -1;
    if (distinct_outputs(g) < 0) return -1;
    if (log && tj_graph_dump(g, "dce", log) < 0) return -1;
    if (tj_pass_fuse(g, n_leaf_slots, leaf_contig, s) < 0) return -1;
    if (log && dump_schedule(s, log) < 0) return -1;
    return 0;
}
