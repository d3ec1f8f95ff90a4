/* Dead code elimination.
 * Requires: operands precede users. Guarantees: only nodes an output depends on
 * remain, in the same relative order, renumbered densely; outputs are updated. */
#include "ir/ir.h"

int tj_pass_dce(tj_graph *g, tj_error *err) {
    int32_t *map = malloc((size_t)(g->n ? g->n : 1) * sizeof *map);
    if (!map) return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n; i++) map[i] = 0;
    for (int32_t o = 0; o < g->n_out; o++) map[g->outputs[o]] = 1;
    for (int32_t i = g->n - 1; i >= 0; i--)
        if (map[i])
            for (int a = 0; a < tj_ops[g->nodes[i].op].arity; a++) map[g->nodes[i].in[a]] = 1;
    int32_t k = 0;
    for (int32_t i = 0; i < g->n; i++) {
        if (!map[i]) { map[i] = -1; continue; }
        tj_node n = g->nodes[i];
        for (int a = 0; a < tj_ops[n.op].arity; a++) n.in[a] = map[n.in[a]];
        g->nodes[k] = n;
        map[i] = k++;
    }
    g->n = k;
    for (int32_t o = 0; o < g->n_out; o++) g->outputs[o] = map[g->outputs[o]];
    free(map);
    return 0;
}
