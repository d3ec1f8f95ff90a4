/* Elementwise fusion and the buffer plan between groups.
 * Requires: CSE and DCE ran; every output is a computed node (pipeline.c inserts
 * COPY for returned leaves and views). Guarantees: each group is one loop nest over
 * its iteration shape computing its nodes in topological order; every value it reads
 * from memory is a leaf with an access map (iteration dim -> slot dim, -1 where
 * broadcast), so broadcasting and views cost index arithmetic, never a copy; the only
 * memory between groups is a scratch slot for a computed node read through a view,
 * or for a reduction's result (each reduction is a group over its operand's shape,
 * its producers fused into the loop, its consumers reading the result as a leaf);
 * adjacent dims that are contiguous in every access are collapsed into one. */
#include "ir/ir.h"

static int is_leafish(const tj_graph *g, const tj_schedule *s, int32_t id) {
    const tj_node *n = &g->nodes[id];
    return tj_ops[n->op].kind == TJ_K_LEAF || n->op == TJ_OP_VIEW || s->mat_slot[id] >= 0;
}

/* Access of leaf `id` from a group with D iteration dims: per dim the slot dim read
 * (-1 broadcast, -2 flat) and the step along it; start offsets per slot dim. */
static void leaf_access(const tj_graph *g, const tj_schedule *s, int32_t id, int D,
                        tj_group *gr, int l) {
    const tj_node *v = &g->nodes[id];
    int is_view = v->op == TJ_OP_VIEW;   /* views are never materialized themselves */
    int32_t bid = is_view ? v->in[0] : id;
    const tj_node *base = &g->nodes[bid];
    gr->leaf_slot[l] = tj_ops[base->op].kind == TJ_K_LEAF ? base->slot : s->mat_slot[bid];
    gr->leaf_base[l] = bid;
    memset(gr->maps[l], -1, TJ_MAXDIM);
    memset(gr->steps[l], 0, sizeof gr->steps[l]);
    memset(gr->offs[l], 0, sizeof gr->offs[l]);
    if (is_view) memcpy(gr->offs[l], v->voff, sizeof gr->offs[l]);
    gr->leaf_flat[l] = (uint8_t)(is_view && v->flat);
    for (int d = 0; d < D; d++) {
        int e = d - (D - v->ndim);
        if (e < 0 || v->shape[e] == 1) continue;
        int src = is_view ? v->perm[e] : e;
        gr->maps[l][d] = (int8_t)src;
        gr->steps[l][d] = src == -1 ? 0 : is_view ? v->vstep[e] : 1;
    }
}

/* Drops size-1 dims and merges adjacent dims that every access reads as one: both
 * broadcast, or consecutive full-extent unit-step dims of a C-contiguous slot, or
 * flat dims whose steps nest. Merged dims read with the inner dim's stride and step. */
static void collapse(const tj_graph *g, tj_group *gr, const uint8_t *contig) {
    int D = gr->ndim, nl = gr->n_leaves, na = nl + gr->n_outs;
    int64_t total = 1;
    for (int d = 0; d < D; d++) total *= gr->shape[d];
    if (total == 0 || na > 4 * TJ_MAXDIM) return;   /* huge groups stay uncollapsed */
    int8_t lo[4 * TJ_MAXDIM][TJ_MAXDIM], hi[4 * TJ_MAXDIM][TJ_MAXDIM];
    int64_t st[4 * TJ_MAXDIM][TJ_MAXDIM];
    for (int a = 0; a < na; a++) {
        int8_t *m = a < nl ? gr->maps[a] : gr->omaps[a - nl];
        memcpy(lo[a], m, TJ_MAXDIM);
        memcpy(hi[a], m, TJ_MAXDIM);
        for (int d = 0; d < TJ_MAXDIM; d++) st[a][d] = a < nl ? gr->steps[a][d] : 1;
    }
    int k = 0;
    for (int d = 0; d < D; d++) {   /* size-1 dims: every access broadcasts there */
        if (gr->shape[d] == 1) continue;
        gr->shape[k] = gr->shape[d];
        for (int a = 0; a < na; a++) { lo[a][k] = lo[a][d]; hi[a][k] = hi[a][d]; st[a][k] = st[a][d]; }
        k++;
    }
    D = k;
    for (int d = D - 2; d >= 0; d--) {
        int ok = 1;
        for (int a = 0; a < na && ok; a++) {
            int32_t slot = a < nl ? gr->leaf_slot[a] : gr->out_slot[a - nl];
            const tj_node *base = &g->nodes[a < nl ? gr->leaf_base[a]
                                           : gr->cat >= 0 ? gr->cat : gr->outs[a - nl]];
            if (hi[a][d] == -1 && lo[a][d + 1] == -1) continue;
            if (hi[a][d] == -2 && lo[a][d + 1] == -2) {
                ok = st[a][d] == st[a][d + 1] * gr->shape[d + 1];
                continue;
            }
            if (hi[a][d] < 0 || lo[a][d + 1] != hi[a][d] + 1) { ok = 0; continue; }
            int64_t span = 1;
            int zero_off = 1;
            for (int e = lo[a][d + 1]; e <= hi[a][d + 1]; e++) {
                span *= base->shape[e];
                if (a < nl) zero_off &= gr->offs[a][e] == 0;
            }
            ok = contig[slot] && st[a][d] == 1 && st[a][d + 1] == 1 && span == gr->shape[d + 1] &&
                 zero_off;
        }
        if (!ok) continue;
        gr->shape[d] *= gr->shape[d + 1];
        for (int a = 0; a < na; a++) {
            hi[a][d] = hi[a][d + 1];
            st[a][d] = st[a][d + 1];
            for (int e = d + 1; e < D - 1; e++) {
                lo[a][e] = lo[a][e + 1];
                hi[a][e] = hi[a][e + 1];
                st[a][e] = st[a][e + 1];
            }
        }
        for (int e = d + 1; e < D - 1; e++) gr->shape[e] = gr->shape[e + 1];
        D--;
    }
    gr->ndim = D;
    for (int a = 0; a < na; a++) {
        int8_t *m = a < nl ? gr->maps[a] : gr->omaps[a - nl];
        memset(m, -1, TJ_MAXDIM);
        memcpy(m, hi[a], (size_t)D);
        if (a < nl) {
            memset(gr->steps[a], 0, sizeof gr->steps[a]);
            memcpy(gr->steps[a], st[a], (size_t)D * sizeof(int64_t));
        }
    }
}

/* A reduction group that is a matrix product: the sum over the last dim of X = a * b,
 * a and b leaves, float, X used by the sum alone, and among the other dims of the
 * group at most one where only a varies (rows) and one where only b varies (columns);
 * the rest are batch dims. Such a group is emitted as GEMM calls, not a fused loop.
 * Asked before collapsing (the group's dims are X's) and again after (nn.Linear on a
 * (B, T, C) input: B and T, contiguous in a and the result, become one row dim). */
static int detect_contraction(const tj_graph *g, tj_group *gr) {
    gr->contract = 0;
    gr->mm_m = gr->mm_n = gr->mm_a = gr->mm_b = -1;
    if (gr->red < 0 || gr->n_nodes != 2 || gr->n_leaves != 2) return 0;
    const tj_node *r = &g->nodes[gr->red], *x = &g->nodes[r->in[0]];
    int nd = x->ndim, D = gr->ndim;
    if (r->op != TJ_OP_RSUM || x->op != TJ_OP_MUL || nd < 1 || r->axes != 1u << (nd - 1) ||
        x->dtype < TJ_F32 || r->dtype != x->dtype || D < 1 || D > nd)
        return 0;
    /* collapsed: the last dim must still be the summed one, and no other dim summed */
    if (D < nd && (gr->shape[D - 1] != x->shape[nd - 1] || gr->omaps[0][D - 1] != -1))
        return 0;
    for (int d = 0; D < nd && d < D - 1; d++)
        if (gr->omaps[0][d] < 0) return 0;
    for (int l = 0; l < 2; l++) {
        if (gr->leaves[l] == x->in[0]) gr->mm_a = l;
        if (gr->leaves[l] == x->in[1]) gr->mm_b = l;
    }
    if (gr->mm_a < 0 || gr->mm_b < 0 || gr->mm_a == gr->mm_b) return 0;
    /* (a flat view's dims, -2, read at a constant stride: Flatten then Linear) */
    if (gr->maps[gr->mm_a][D - 1] == -1 || gr->maps[gr->mm_b][D - 1] == -1) return 0;
    for (int d = 0; d < D - 1; d++) {
        if (gr->shape[d] == 1) continue;
        int va = gr->maps[gr->mm_a][d] != -1, vb = gr->maps[gr->mm_b][d] != -1;
        if (va && !vb) {
            if (gr->mm_m >= 0) return 0;
            gr->mm_m = d;
        } else if (!va && vb) {
            if (gr->mm_n >= 0) return 0;
            gr->mm_n = d;
        }
    }
    gr->contract = 1;
    return 1;
}

/* Output map of a reduction: operand dim d -> result dim, -1 where reduced. */
static void reduction_map(const tj_node *r, const tj_node *x, int8_t *map) {
    int keep = r->ndim == x->ndim, k = 0;
    for (int d = 0; d < x->ndim; d++) {
        int reduced = r->axes >> d & 1;
        int8_t dim = (int8_t)(keep ? d : k);
        if (!reduced || keep) k++;
        map[d] = reduced || x->shape[d] == 1 ? -1 : dim;
    }
}

/* Fills group gr computing outs[0..n_outs) over the shape of outs[0], or, for a
 * reduction (outs[0]), over its operand's shape; a reduction's other out is its
 * operand, stored for later groups (see stored_operands). */
static int build_group(const tj_graph *g, tj_schedule *s, tj_group *gr, const int32_t *outs,
                       const int32_t *out_slots, int n_outs, const uint8_t *contig,
                       uint8_t *mark, tj_error *err) {
    const tj_node *first = &g->nodes[outs[0]];
    int is_scan = tj_ops[first->op].kind == TJ_K_SCAN;
    int is_red = tj_ops[first->op].kind == TJ_K_RED || is_scan;
    const tj_node *space = is_red ? &g->nodes[first->in[0]] : first;
    gr->red = is_red ? outs[0] : -1;
    gr->acc_slot = is_red ? s->acc_slot[outs[0]] : -1;
    gr->ndim = space->ndim;
    memcpy(gr->shape, space->shape, sizeof gr->shape);
    memset(mark, 0, (size_t)g->n);
    gr->outs = malloc((size_t)n_outs * sizeof(int32_t));
    gr->out_slot = malloc((size_t)n_outs * sizeof(int32_t));
    gr->omaps = malloc((size_t)n_outs * TJ_MAXDIM);
    gr->nodes = malloc((size_t)g->n * sizeof(int32_t));
    gr->leaves = malloc((size_t)g->n * 2 * sizeof(int32_t));   /* + gathered data */
    if (!gr->outs || !gr->out_slot || !gr->omaps || !gr->nodes || !gr->leaves)
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    gr->n_outs = n_outs;
    for (int o = 0; o < n_outs; o++) {
        gr->outs[o] = outs[o];
        gr->out_slot[o] = out_slots[o];
        memset(gr->omaps[o], -1, TJ_MAXDIM);
        if (is_red && !is_scan && o == 0)
            reduction_map(first, space, gr->omaps[o]);
        else
            for (int d = 0; d < gr->ndim; d++) gr->omaps[o][d] = gr->shape[d] == 1 ? -1 : (int8_t)d;
        mark[outs[o]] = 2;   /* computed here even when materialized elsewhere */
    }
    /* Reverse topological sweep: a node is computed if a computed node uses it. */
    for (int32_t i = g->n - 1; i >= 0; i--) {
        if (mark[i] != 2) continue;
        const tj_node *n = &g->nodes[i];
        for (int a = 0; a < tj_ops[n->op].arity; a++) {
            int32_t x = n->in[a];
            if (mark[x] || (n->op == TJ_OP_GATHER && a == 0)) continue;   /* read in place */
            mark[x] = is_leafish(g, s, x) ? 1 : 2;
        }
    }
    gr->n_nodes = gr->n_leaves = 0;
    for (int32_t i = 0; i < g->n; i++) {
        if (mark[i] == 2) gr->nodes[gr->n_nodes++] = i;
        else if (mark[i] == 1) gr->leaves[gr->n_leaves++] = i;
    }
    /* Data that gathers read: a leaf of its own per (node, gathered dim). */
    int n_plain = gr->n_leaves;
    int8_t gdim[TJ_MAXDIM * 8];
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *nd = &g->nodes[gr->nodes[k]];
        if (nd->op != TJ_OP_GATHER) continue;
        int dim = (int)nd->axes + (gr->ndim - nd->ndim), dup = 0;
        for (int l = n_plain; l < gr->n_leaves; l++)
            dup |= gr->leaves[l] == nd->in[0] && gdim[l - n_plain] == dim;
        if (dup) continue;
        if (gr->n_leaves - n_plain >= (int)sizeof gdim)
            return tj_error_set(err, TJ_ERR_INTERNAL, "too many gathers in one loop");
        gdim[gr->n_leaves - n_plain] = (int8_t)dim;
        gr->leaves[gr->n_leaves++] = nd->in[0];
    }
    size_t nl = (size_t)(gr->n_leaves ? gr->n_leaves : 1);
    gr->maps = malloc(nl * TJ_MAXDIM);
    gr->steps = malloc(nl * sizeof *gr->steps);
    gr->offs = malloc(nl * sizeof *gr->offs);
    gr->leaf_slot = malloc(nl * sizeof(int32_t));
    gr->leaf_base = malloc(nl * sizeof(int32_t));
    gr->leaf_flat = malloc(nl);
    gr->leaf_gather = malloc(nl);
    gr->leaf_gsrc = malloc(nl);
    gr->leaf_gstep = malloc(nl * sizeof(int64_t));
    gr->leaf_glen = malloc(nl * sizeof(int64_t));
    if (!gr->maps || !gr->steps || !gr->offs || !gr->leaf_slot || !gr->leaf_base ||
        !gr->leaf_flat || !gr->leaf_gather || !gr->leaf_gsrc || !gr->leaf_gstep ||
        !gr->leaf_glen)
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    for (int l = 0; l < gr->n_leaves; l++) {
        leaf_access(g, s, gr->leaves[l], gr->ndim, gr, l);
        gr->leaf_gather[l] = -1;
        if (l < n_plain) continue;
        int dim = gdim[l - n_plain];   /* the loop does not index the gathered dim */
        const tj_node *data = &g->nodes[gr->leaves[l]];
        gr->leaf_gather[l] = (int8_t)dim;
        gr->leaf_gsrc[l] = gr->maps[l][dim];
        gr->leaf_gstep[l] = gr->steps[l][dim];
        gr->leaf_glen[l] = data->shape[dim - (gr->ndim - data->ndim)];
        gr->maps[l][dim] = -1;
        gr->steps[l][dim] = 0;
    }
    memset(gr->amap, -1, sizeof gr->amap);
    for (int d = 0, k = 0; is_scan && d < gr->ndim; d++)   /* the scan's running values */
        if (d != (int)first->axes) { gr->amap[d] = gr->shape[d] == 1 ? -1 : (int8_t)k; k++; }
    if (!detect_contraction(g, gr) && n_plain == gr->n_leaves && !is_scan) {
        collapse(g, gr, contig);
        detect_contraction(g, gr);
    }
    return 0;
}

/* Per node: the reduction that stores it as a second output, -2 when it is computed
 * once into scratch because a user broadcasts it (mean = sum / n, used across rows,
 * is computed per row, not per element), or -1. A reduction's operand is stored
 * (rather than recomputed by its other users, as softmax's exp(x - max) would be)
 * when computing it is costly, it has other users, and all of them come after the
 * reduction. New malloc'd array, NULL when out of memory. */
static int32_t *stored_operands(const tj_graph *g, const int32_t *uses) {
    int32_t n = g->n ? g->n : 1;
    int32_t *stored = malloc((size_t)n * sizeof *stored);
    int32_t *first_user = malloc((size_t)n * sizeof *first_user);
    uint8_t *costly = calloc((size_t)n, 1);
    if (!stored || !first_user || !costly) {
        free(stored);
        stored = NULL;
        goto done;
    }
    for (int32_t i = 0; i < g->n; i++) { stored[i] = -1; first_user[i] = INT32_MAX; }
    for (int32_t i = 0; i < g->n; i++) {
        const tj_node *nd = &g->nodes[i];
        int kind = tj_ops[nd->op].kind;
        if (kind == TJ_K_EW || kind == TJ_K_CAST) costly[i] = (tj_ops[nd->op].flags & TJ_F_COSTLY) != 0;
        for (int a = 0; a < tj_ops[nd->op].arity; a++) {
            int32_t x = nd->in[a];
            if (first_user[x] > i) first_user[x] = i;
            if ((kind == TJ_K_EW || kind == TJ_K_CAST) && costly[x]) costly[i] = 1;
        }
    }
    for (int32_t i = 0; i < g->n; i++) {
        const tj_node *r = &g->nodes[i];
        int kind = tj_ops[r->op].kind;
        if (kind == TJ_K_RED) {
            int32_t x = r->in[0];
            if (costly[x] && uses[x] >= 2 && first_user[x] == i && stored[x] < 0) stored[x] = i;
        }
        if (kind != TJ_K_EW && kind != TJ_K_CAST) continue;
        int64_t size = tj_node_size(r);
        for (int a = 0; a < tj_ops[r->op].arity; a++) {
            const tj_node *x = &g->nodes[r->in[a]];
            int xk = tj_ops[x->op].kind;
            int64_t xs = tj_node_size(x);
            if ((xk == TJ_K_EW || xk == TJ_K_CAST) && xs > 1 && xs * 4 <= size &&
                stored[r->in[a]] == -1)
                stored[r->in[a]] = -2;
        }
    }
done:
    free(first_user);
    free(costly);
    return stored;
}

/* Per node: the CONCAT that is its only user, when the node is itself a CONCAT along
 * the same axis (the chain concat(concat(a, b), c) is flattened into one buffer), or
 * -1. New malloc'd array, NULL when out of memory. */
static int32_t *inner_concats(const tj_graph *g, const int32_t *users) {
    int32_t n = g->n ? g->n : 1;
    int32_t *into = malloc((size_t)n * sizeof *into);
    if (!into) return NULL;
    for (int32_t i = 0; i < g->n; i++) into[i] = -1;
    for (int32_t i = 0; i < g->n; i++) {
        const tj_node *c = &g->nodes[i];
        if (c->op != TJ_OP_CONCAT) continue;
        for (int a = 0; a < 2; a++) {
            const tj_node *x = &g->nodes[c->in[a]];
            if (x->op == TJ_OP_CONCAT && x->axes == c->axes && users[c->in[a]] == 1)
                into[c->in[a]] = i;
        }
    }
    return into;
}

/* Per node: 1 + the output COPY that is its only user, when the node is a reduction,
 * scan or concatenation (computed into a buffer of its own): it is then computed
 * straight into the output array and the copy is skipped. 0 otherwise. New malloc'd
 * array, NULL when out of memory. */
static int same_shape(const tj_node *a, const tj_node *b);

static int32_t *direct_outputs(const tj_graph *g, const int32_t *users) {
    int32_t *direct = calloc((size_t)(g->n ? g->n : 1), sizeof *direct);
    if (!direct) return NULL;
    for (int32_t o = 0; o < g->n_out; o++) {
        const tj_node *c = &g->nodes[g->outputs[o]];
        if (c->op != TJ_OP_COPY || users[g->outputs[o]] != 1) continue;
        int32_t r = c->in[0];
        int kind = tj_ops[g->nodes[r].op].kind;
        if ((kind == TJ_K_RED || kind == TJ_K_SCAN || kind == TJ_K_CAT) && users[r] == 1 &&
            same_shape(c, &g->nodes[r]) && c->dtype == g->nodes[r].dtype)
            direct[r] = g->outputs[o] + 1;
    }
    return direct;
}

/* Per node: its uses as an operand (uses) and those plus its places among the outputs
 * (users). malloc'd arrays; -1 when out of memory. */
static int count_uses(const tj_graph *g, int32_t **uses, int32_t **users) {
    int32_t n = g->n ? g->n : 1;
    *uses = calloc((size_t)n, sizeof **uses);
    *users = calloc((size_t)n, sizeof **users);
    if (!*uses || !*users) return -1;
    for (int32_t i = 0; i < g->n; i++)
        for (int a = 0; a < tj_ops[g->nodes[i].op].arity; a++) (*uses)[g->nodes[i].in[a]]++;
    memcpy(*users, *uses, (size_t)n * sizeof **users);
    for (int32_t o = 0; o < g->n_out; o++) (*users)[g->outputs[o]]++;
    return 0;
}

/* The parts of concatenation `c` (inner concatenations flattened), with their
 * offsets along its axis. Returns the count. */
static int concat_parts(const tj_graph *g, const int32_t *into, int32_t c, int64_t off,
                        int32_t *parts, int64_t *offs, int k) {
    const tj_node *n = &g->nodes[c];
    for (int a = 0; a < 2; a++) {
        int32_t x = n->in[a];
        if (into[x] == c) k = concat_parts(g, into, x, off, parts, offs, k);
        else { parts[k] = x; offs[k++] = off; }
        off += g->nodes[x].shape[n->axes];
    }
    return k;
}

static int same_shape(const tj_node *a, const tj_node *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

int tj_pass_fuse(const tj_graph *g, tj_schedule *s, tj_error *err) {
    int rc = -1;
    int32_t *stored_by = NULL, *into = NULL, *parts = NULL, *direct = NULL;
    int32_t *uses = NULL, *users = NULL;
    int64_t *poffs = NULL;
    memset(s, 0, sizeof *s);
    int32_t n = g->n ? g->n : 1;
    int32_t *node_out = malloc((size_t)n * sizeof *node_out);
    int32_t *outs = malloc((size_t)n * sizeof *outs), *oslots = malloc((size_t)n * sizeof *oslots);
    uint8_t *mark = malloc((size_t)n), *contig = NULL;
    s->mat_slot = malloc((size_t)n * sizeof *s->mat_slot);
    s->out_slot_of = malloc((size_t)(g->n_out ? g->n_out : 1) * sizeof(int32_t));
    if (!node_out || !outs || !oslots || !mark || !s->mat_slot || !s->out_slot_of) goto nomem;
    s->acc_slot = malloc((size_t)n * sizeof *s->acc_slot);
    if (!s->acc_slot) goto nomem;
    for (int32_t i = 0; i < g->n; i++) s->mat_slot[i] = node_out[i] = s->acc_slot[i] = -1;

    int next = g->n_slots;
    s->first_scratch = next;
    /* Materialized: operands of views that are computed, every reduction (its
     * result and its accumulator), and the costly operands reductions store. */
    if (count_uses(g, &uses, &users) < 0) goto nomem;
    stored_by = stored_operands(g, uses);
    if (!stored_by || !(into = inner_concats(g, users)) || !(direct = direct_outputs(g, users)))
        goto nomem;
    parts = malloc((size_t)n * sizeof *parts);
    poffs = malloc((size_t)n * sizeof *poffs);
    if (!parts || !poffs) goto nomem;
    for (int32_t i = 0; i < g->n; i++) {
        const tj_node *v = &g->nodes[i];
        if (v->op == TJ_OP_VIEW && tj_ops[g->nodes[v->in[0]].op].kind != TJ_K_LEAF &&
            s->mat_slot[v->in[0]] < 0)
            s->mat_slot[v->in[0]] = next++;
        if (tj_ops[v->op].kind == TJ_K_RED || tj_ops[v->op].kind == TJ_K_SCAN) {
            if (!direct[i]) s->mat_slot[i] = next++;
            s->acc_slot[i] = next++;
        }
        if (stored_by[i] != -1 && s->mat_slot[i] < 0) s->mat_slot[i] = next++;
        if (v->op == TJ_OP_CONCAT && into[i] < 0 && !direct[i]) s->mat_slot[i] = next++;
        if (v->op == TJ_OP_GATHER) {   /* gathered data is read in place: from memory */
            int32_t d = v->in[0];
            int dk = tj_ops[g->nodes[d].op].kind;
            if (dk != TJ_K_LEAF && g->nodes[d].op != TJ_OP_VIEW && s->mat_slot[d] < 0)
                s->mat_slot[d] = next++;
        }
    }
    s->n_scratch = next - s->first_scratch;
    s->first_out = next;
    for (int32_t o = 0; o < g->n_out; o++) {
        int32_t id = g->outputs[o];
        if (node_out[id] < 0) node_out[id] = next++;
        s->out_slot_of[o] = node_out[id];
    }
    for (int32_t i = 0; i < g->n; i++)   /* written straight into its output */
        if (direct[i]) s->mat_slot[i] = node_out[direct[i] - 1];
    s->n_slots = next;
    s->slot_dtype = calloc((size_t)next + 1, sizeof(int));
    s->slot_ndim = calloc((size_t)next + 1, sizeof(int));
    s->slot_shape = calloc((size_t)next + 1, sizeof *s->slot_shape);
    contig = malloc((size_t)next + 1);
    int max_groups = s->n_scratch + g->n_out + 2 * g->n + 1;   /* parts of concatenations */
    s->groups = calloc((size_t)max_groups, sizeof(tj_group));
    for (int i = 0; s->groups && i < max_groups; i++) s->groups[i].red = s->groups[i].cat = -1;
    if (!s->slot_dtype || !s->slot_ndim || !s->slot_shape || !contig || !s->groups) goto nomem;
    for (int i = 0; i < next; i++) contig[i] = i < g->n_slots ? g->slots[i].contig : 1;
    for (int32_t i = 0; i < g->n; i++) {
        int slots[2] = {s->mat_slot[i], node_out[i]};
        for (int p = 0; p < 2; p++) {
            int slot = slots[p];
            if (slot < 0) continue;
            s->slot_dtype[slot] = g->nodes[i].dtype;
            s->slot_ndim[slot] = g->nodes[i].ndim;
            memcpy(s->slot_shape[slot], g->nodes[i].shape, sizeof s->slot_shape[slot]);
        }
        if (s->mat_slot[i] >= 0)
            s->scratch_bytes += tj_node_size(&g->nodes[i]) * tj_dtype_size(g->nodes[i].dtype);
        int acc = s->acc_slot[i];
        if (acc >= 0 && tj_ops[g->nodes[i].op].kind == TJ_K_SCAN) {   /* shape less the axis */
            const tj_node *r = &g->nodes[i];
            s->slot_dtype[acc] = r->dtype;
            s->slot_ndim[acc] = r->ndim - 1;
            for (int d = 0, k = 0; d < r->ndim; d++)
                if (d != (int)r->axes) s->slot_shape[acc][k++] = r->shape[d];
            s->scratch_bytes += tj_node_size(r) / (r->shape[r->axes] ? r->shape[r->axes] : 1) *
                                tj_dtype_size(r->dtype);
        } else if (acc >= 0) {
            const tj_node *r = &g->nodes[i];
            s->slot_dtype[acc] = tj_red_acc_dtype(r->op, g->nodes[r->in[0]].dtype);
            s->slot_ndim[acc] = r->ndim;
            memcpy(s->slot_shape[acc], r->shape, sizeof s->slot_shape[acc]);
            s->scratch_bytes += tj_node_size(r) * tj_dtype_size(s->slot_dtype[acc]);
        }
    }
    /* Materialized nodes first, in topological order; then outputs grouped by shape. */
    for (int32_t i = 0; i < g->n; i++) {
        if (s->mat_slot[i] < 0 || stored_by[i] >= 0) continue;
        if (g->nodes[i].op == TJ_OP_CONCAT) {   /* one group per part, into its region */
            int k = concat_parts(g, into, i, 0, parts, poffs, 0);
            for (int p = 0; p < k; p++) {
                tj_group *gr = &s->groups[s->n_groups++];
                gr->cat = i;
                gr->cat_off = poffs[p];
                if (build_group(g, s, gr, &parts[p], &s->mat_slot[i], 1, contig, mark, err) < 0)
                    goto done;
            }
            continue;
        }
        outs[0] = i;
        oslots[0] = s->mat_slot[i];
        int k = 1;
        for (int32_t x = 0; x < i; x++)
            if (stored_by[x] == i) { outs[k] = x; oslots[k++] = s->mat_slot[x]; }
        if (build_group(g, s, &s->groups[s->n_groups++], outs, oslots, k, contig, mark, err) < 0)
            goto done;
    }
    memset(mark, 0, (size_t)n);
    uint8_t *grouped = calloc((size_t)n, 1);
    if (!grouped) goto nomem;
    for (int32_t i = 0; i < g->n; i++)
        if (direct[i]) grouped[direct[i] - 1] = 1;   /* its copy has nothing to do */
    for (int32_t o = 0; o < g->n_out; o++) {
        int32_t id = g->outputs[o];
        if (grouped[id]) continue;
        int k = 0;
        for (int32_t p = o; p < g->n_out; p++) {
            int32_t q = g->outputs[p];
            if (grouped[q] || !same_shape(&g->nodes[q], &g->nodes[id])) continue;
            grouped[q] = 1;
            outs[k] = q;
            oslots[k++] = node_out[q];
        }
        if (build_group(g, s, &s->groups[s->n_groups++], outs, oslots, k, contig, mark, err) < 0) {
            free(grouped);
            goto done;
        }
    }
    free(grouped);
    rc = 0;
    goto done;
nomem:
    tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
done:
    free(stored_by);
    free(into);
    free(direct);
    free(uses);
    free(users);
    free(parts);
    free(poffs);
    free(node_out);
    free(outs);
    free(oslots);
    free(mark);
    free(contig);
    if (rc < 0) tj_schedule_free(s);
    return rc;
}

void tj_schedule_free(tj_schedule *s) {
    for (int i = 0; s->groups && i < s->n_groups; i++) {
        tj_group *gr = &s->groups[i];
        free(gr->nodes);
        free(gr->leaves);
        free(gr->maps);
        free(gr->steps);
        free(gr->offs);
        free(gr->leaf_slot);
        free(gr->leaf_base);
        free(gr->leaf_flat);
        free(gr->leaf_gather);
        free(gr->leaf_gsrc);
        free(gr->leaf_gstep);
        free(gr->leaf_glen);
        free(gr->outs);
        free(gr->out_slot);
        free(gr->omaps);
    }
    free(s->groups);
    free(s->mat_slot);
    free(s->acc_slot);
    free(s->out_slot_of);
    free(s->out_same_as);
    free(s->slot_dtype);
    free(s->slot_ndim);
    free(s->slot_shape);
    free(s->scratch_off);
    memset(s, 0, sizeof *s);
}
