/* Constant folding.
 * Requires: operands precede users. Guarantees: an elementwise or cast node whose
 * operands are all CONST becomes, in place, a CONST holding what its primitive
 * computes (tj_eval_scalar: the kernel's own code, so float32 rounds in float and
 * ints wrap), with its dtype and weak flag and a new constant slot in g's table.
 * Not folded: libm-backed float ops (COSTLY: exp, log, pow, ...), whose scalar,
 * vector (libmvec) and NumPy SIMD versions may differ in the last place; ops with
 * an effect (tj_op_pure); and graph outputs, which stay computed so they remain
 * fresh arrays. */
#include "ir/ir.h"

static int foldable(const tj_graph *g, const tj_node *n) {
    const tj_opinfo *info = &tj_ops[n->op];
    if ((info->kind != TJ_K_EW && info->kind != TJ_K_CAST) || n->ndim != 0 || !tj_op_pure(n->op))
        return 0;
    for (int a = 0; a < info->arity; a++)
        if (g->nodes[n->in[a]].op != TJ_OP_CONST) return 0;
    return !((info->flags & TJ_F_COSTLY) && tj_node_loop_dtype(g, n) >= TJ_F32);
}

int tj_pass_fold(tj_graph *g, tj_error *err) {
    uint8_t *is_out = calloc((size_t)(g->n ? g->n : 1), 1);
    if (!is_out) return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    for (int32_t o = 0; o < g->n_out; o++) is_out[g->outputs[o]] = 1;
    int rc = 0;
    for (int32_t i = 0; i < g->n; i++) {
        tj_node *n = &g->nodes[i];
        if (is_out[i] || !foldable(g, n)) continue;
        tj_scalar in[3] = {{0}}, v;
        for (int a = 0; a < tj_ops[n->op].arity; a++) in[a] = g->nodes[n->in[a]].value;
        if (tj_eval_scalar(n->op, tj_node_loop_dtype(g, n), n->dtype, in, &v) < 0) continue;
        tj_slotdesc d = {.kind = TJ_SLOT_CONST, .dtype = n->dtype, .contig = 1, .value = v};
        int slot = tj_graph_add_slot(g, &d, err);
        if (slot < 0) { rc = -1; break; }
        tj_node c;
        memset(&c, 0, sizeof c);
        c.op = TJ_OP_CONST;
        c.dtype = n->dtype;
        c.weak = n->weak;
        c.in[0] = c.in[1] = c.in[2] = -1;
        c.slot = slot;
        c.value = v;
        *n = c;
    }
    free(is_out);
    return rc;
}
