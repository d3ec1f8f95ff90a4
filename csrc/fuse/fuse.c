/* Elementwise fusion and the buffer plan between groups.
 * Requires: CSE and DCE ran; every output is a computed node (pipeline.c inserts
 * COPY for returned leaves and views). Guarantees: each group is one loop nest over
 * its iteration shape computing its nodes in topological order; every value it reads
 * from memory is a leaf (a slot, and the node whose memory it holds), so broadcasting
 * and views cost index arithmetic (lowering, lower.c, gives each its access), never a
 * copy; the only memory between groups is a scratch slot for a computed node read
 * through a view, or for a reduction's result (each reduction is a group over its
 * operand's shape, its producers fused into the loop, its consumers reading the
 * result as a leaf). A pure value several groups read is recomputed in each unless
 * storing it once reads less (shared_value); a node that must run once (tj_op_pure
 * false: the EFFECT column) is always computed in one group and stored, and the
 * others read it (tj_pass_fuse). The schedule's arrays and the groups' live in its
 * arena. A graph with value guards (g->n_guard_out) is cut into phases: phase k
 * computes what guard k's value needs and no earlier guard's did, the last phase the
 * rest; no group spans two phases (a group's work is the phase of its outputs), groups
 * run in phase order, and s->guard_end says where each guard can be compared. A
 * concatenation that copies an earlier one read by nothing else at its own place (a
 * row write) takes that one's buffer and skips those parts (in_place_concats). */
#include "ir/ir.h"

static int is_leafish(const tj_graph *g, const tj_schedule *s, int32_t id) {
    const tj_node *n = &g->nodes[id];
    return tj_ops[n->op].kind == TJ_K_LEAF || n->op == TJ_OP_VIEW || s->mat_slot[id] >= 0;
}

/* Temporaries of build_group, sized by the graph; mark is all zeros between calls. */
typedef struct {
    uint8_t *mark;
    int32_t *nodes, *leaves, *stack, *touched;
} scratchpad;

static int by_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Fills group gr computing outs[0..n_outs) over the shape of outs[0], or, for a
 * reduction (outs[0]), over its operand's shape; a reduction's other out is its
 * operand, stored for later groups (see stored_operands). The group's arrays are
 * exact-size blocks of the schedule's arena; lowering fills in their access. */
static int build_group(const tj_graph *g, tj_schedule *s, tj_group *gr, const int32_t *outs,
                       const int32_t *out_slots, int n_outs, scratchpad *sp, tj_error *err) {
    const tj_node *first = &g->nodes[outs[0]];
    int is_scan = tj_ops[first->op].kind == TJ_K_SCAN;
    int is_red = tj_ops[first->op].kind == TJ_K_RED || is_scan;
    const tj_node *space = is_red ? &g->nodes[first->in[0]] : first;
    uint8_t *mark = sp->mark;
    gr->red = is_red ? outs[0] : -1;
    gr->acc_slot = is_red ? s->acc_slot[outs[0]] : -1;
    gr->ndim = space->ndim;
    memcpy(gr->shape, space->shape, sizeof gr->shape);
    gr->outs = tj_arena_alloc(&s->arena, (size_t)n_outs * sizeof *gr->outs);
    if (!gr->outs) return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    gr->n_outs = n_outs;
    int32_t top = 0, n_touched = 0;
    for (int o = 0; o < n_outs; o++) {
        gr->outs[o].node = outs[o];
        gr->outs[o].slot = out_slots[o];
        if (mark[outs[o]] != 2) sp->touched[n_touched++] = sp->stack[top++] = outs[o];
        mark[outs[o]] = 2;   /* computed here even when materialized elsewhere */
    }
    /* From the outs through their operands: a node is computed if a computed node uses
     * it. Only the nodes reached are visited (not the whole graph per group: a trace of
     * n row writes has O(n) groups), then taken in id (topological) order. */
    while (top > 0) {
        const tj_node *n = &g->nodes[sp->stack[--top]];
        for (int a = 0; a < tj_ops[n->op].arity; a++) {
            int32_t x = n->in[a];
            if (mark[x] || (n->op == TJ_OP_GATHER && a == 0)) continue;   /* read in place */
            mark[x] = is_leafish(g, s, x) ? 1 : 2;
            sp->touched[n_touched++] = x;
            if (mark[x] == 2) sp->stack[top++] = x;
        }
    }
    qsort(sp->touched, (size_t)n_touched, sizeof *sp->touched, by_id);
    int n_nodes = 0, n_leaves = 0;
    for (int32_t k = 0; k < n_touched; k++) {
        int32_t i = sp->touched[k];
        if (mark[i] == 2) sp->nodes[n_nodes++] = i;
        else sp->leaves[n_leaves++] = i;
        mark[i] = 0;
    }
    /* Data that gathers read: a leaf of its own per (node, gathered dim). */
    int n_plain = n_leaves;
    int8_t gdim[TJ_MAXDIM * 8];
    for (int k = 0; k < n_nodes; k++) {
        const tj_node *nd = &g->nodes[sp->nodes[k]];
        if (nd->op != TJ_OP_GATHER) continue;
        int dim = (int)nd->axes + (gr->ndim - nd->ndim), dup = 0;
        for (int l = n_plain; l < n_leaves; l++)
            dup |= sp->leaves[l] == nd->in[0] && gdim[l - n_plain] == dim;
        if (dup) continue;
        if (n_leaves - n_plain >= (int)sizeof gdim)
            return tj_error_set(err, TJ_ERR_INTERNAL, "too many gathers in one loop");
        gdim[n_leaves - n_plain] = (int8_t)dim;
        sp->leaves[n_leaves++] = nd->in[0];
    }
    gr->nodes = tj_arena_alloc(&s->arena, (size_t)n_nodes * sizeof *gr->nodes);
    gr->leaves = tj_arena_alloc(&s->arena, (size_t)n_leaves * sizeof *gr->leaves);
    gr->uniform = tj_arena_alloc(&s->arena, (size_t)n_nodes);
    if (!gr->nodes || !gr->leaves || !gr->uniform)
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    gr->n_nodes = n_nodes;
    gr->n_leaves = n_leaves;
    memcpy(gr->nodes, sp->nodes, (size_t)n_nodes * sizeof *gr->nodes);
    for (int l = 0; l < n_leaves; l++) {
        tj_leaf *lf = &gr->leaves[l];
        const tj_node *v = &g->nodes[sp->leaves[l]];
        lf->node = sp->leaves[l];
        lf->base = v->op == TJ_OP_VIEW ? v->in[0] : lf->node;   /* views: never materialized */
        const tj_node *base = &g->nodes[lf->base];
        lf->slot = tj_ops[base->op].kind == TJ_K_LEAF ? base->slot : s->mat_slot[lf->base];
        lf->gather = (int8_t)(l < n_plain ? -1 : gdim[l - n_plain]);
    }
    return 0;
}

/* An elementwise value (or gather) read by several users is recomputed by each group
 * that reads it, unless storing it once reads less: cone[i] counts the memory reads
 * of i's fused computation (its leaves but one-element ones, through elementwise nodes
 * not stored; the GATH bit 0x8000: a gather among them, whose reads are scattered). i is stored
 * (-2) when it gathers, or when (uses - 1) * (reads - 1) > 2: the reads its other
 * users would repeat exceed one write and their own reads of it. A GPT's residual
 * stream (embeddings gathered, then a sum per layer) was recomputed by every later
 * group: 31 gathers per call at 2 layers. */
static int shared_value(const tj_graph *g, const int32_t *uses, const int32_t *stored,
                        uint16_t *cone, int32_t i) {
    const tj_node *v = &g->nodes[i];
    unsigned reads = 0, gath = v->op == TJ_OP_GATHER;
    for (int a = 0; a < tj_ops[v->op].arity; a++) {
        int32_t x = v->in[a];
        int xk = tj_ops[g->nodes[x].op].kind;
        int fused = (xk == TJ_K_EW || xk == TJ_K_CAST || xk == TJ_K_GATH) && stored[x] == -1 &&
                    !(v->op == TJ_OP_GATHER && a == 0);   /* gathered data: from memory */
        int one = tj_node_size(&g->nodes[x]) == 1;   /* a scalar: no memory traffic */
        reads += fused ? (cone[x] & 0x7fffu) : one ? 0u : 1u;
        gath |= fused && (cone[x] & 0x8000u);
    }
    cone[i] = (uint16_t)((reads > 0x7fffu ? 0x7fffu : reads) | (gath ? 0x8000u : 0u));
    return uses[i] >= 2 && (gath || (int64_t)(uses[i] - 1) * (int64_t)(reads - 1) > 2);
}

/* Whether i's fused computation is too large for one loop: more than 32 gathers (each
 * a gathered leaf of its own, past build_group's limit: 300 writes `t[k] = v` at
 * constant k, each a WHERE over a gather) or more than 256 nodes (each a block buffer
 * of the TinyCC kernel's stack frame, a constant leaf one held for the whole call: a
 * Python loop of 2500 `x = np.tanh(x) * 0.5 + i` overflowed the stack). big[2 * i]
 * counts the gathers, big[2 * i + 1] the nodes, through its elementwise inputs not
 * stored; past either limit i is stored and its users read it from memory. */
static int too_big(const tj_graph *g, const int32_t *stored, uint16_t *big, int32_t i) {
    const tj_node *v = &g->nodes[i];
    unsigned k = v->op == TJ_OP_GATHER, m = 1;
    for (int a = 0; a < tj_ops[v->op].arity; a++) {
        int32_t x = v->in[a];
        int xk = tj_ops[g->nodes[x].op].kind;
        if ((xk == TJ_K_EW || xk == TJ_K_CAST || xk == TJ_K_GATH) && stored[x] == -1 &&
            !(v->op == TJ_OP_GATHER && a == 0)) {
            k += big[2 * x];
            m += big[2 * x + 1] + 1u;   /* and its leaf or constant */
        }
    }
    big[2 * i] = (uint16_t)(k > 0xffffu ? 0xffffu : k);
    big[2 * i + 1] = (uint16_t)(m > 0xffffu ? 0xffffu : m);
    return k > 32 || m > 256;
}

/* Per node: the first value guard (0 .. g->n_guard_out - 1, in the trace's order) whose
 * value it feeds, or n_guard_out when none does. An operand's phase is at most its
 * user's, so ordering groups by phase keeps them topological. New malloc'd array, NULL
 * when out of memory. */
static int32_t *guard_phases(const tj_graph *g) {
    int32_t n = g->n ? g->n : 1, ng = g->n_guard_out;
    int32_t *phase = malloc((size_t)n * sizeof *phase), *stack = malloc((size_t)n * sizeof *stack);
    if (!phase || !stack) { free(phase); free(stack); return NULL; }
    for (int32_t i = 0; i < g->n; i++) phase[i] = ng;
    for (int32_t k = 0; k < ng; k++) {
        int32_t top = 0, root = g->outputs[g->n_out - g->n_hidden + k];
        if (phase[root] <= k) continue;   /* an earlier guard's work covers it */
        phase[root] = k;
        stack[top++] = root;
        while (top) {
            const tj_node *v = &g->nodes[stack[--top]];
            for (int a = 0; a < tj_ops[v->op].arity; a++)
                if (phase[v->in[a]] > k) { phase[v->in[a]] = k; stack[top++] = v->in[a]; }
        }
    }
    free(stack);
    return phase;
}

/* A group's phase: its concatenation's, else the least of its outputs'. */
static int32_t group_phase(const tj_group *gr, const int32_t *phase) {
    if (gr->cat >= 0) return phase[gr->cat];
    int32_t p = phase[gr->outs[0].node];
    for (int o = 1; o < gr->n_outs; o++)
        if (phase[gr->outs[o].node] < p) p = phase[gr->outs[o].node];
    return p;
}

/* Orders s's groups by phase (stable: topological within one) and fills guard_end. */
static int order_phases(const tj_graph *g, tj_schedule *s, const int32_t *phase, tj_error *err) {
    int ng = g->n_guard_out, n = s->n_groups ? s->n_groups : 1;
    if (!ng) return 0;
    tj_group *sorted = malloc((size_t)n * sizeof *sorted);
    int32_t *gp = malloc((size_t)n * sizeof *gp);
    int32_t *at = calloc((size_t)ng + 2, sizeof *at);
    s->guard_end = tj_arena_alloc(&s->arena, (size_t)ng * sizeof *s->guard_end);
    if (!sorted || !gp || !at || !s->guard_end) {
        free(sorted); free(gp); free(at);
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    }
    for (int gi = 0; gi < s->n_groups; gi++) at[(gp[gi] = group_phase(&s->groups[gi], phase)) + 1]++;
    for (int p = 0; p <= ng; p++) at[p + 1] += at[p];   /* at[p]: phase p's first */
    for (int p = 0; p < ng; p++) s->guard_end[p] = at[p + 1];
    for (int gi = 0; gi < s->n_groups; gi++) sorted[at[gp[gi]]++] = s->groups[gi];
    memcpy(s->groups, sorted, (size_t)s->n_groups * sizeof *sorted);
    free(sorted); free(gp); free(at);
    s->n_guard_end = ng;
    return 0;
}

/* Whether every group reads a scratch slot only after an earlier group wrote it (the
 * order fusion and the guard phases made); an internal error otherwise: a slot read
 * before it is computed holds the previous call's value (silently wrong). */
static int check_order(const tj_schedule *s, tj_error *err) {
    int lo = s->first_scratch, n = s->n_scratch;
    if (!n) return 0;
    uint8_t *done = calloc((size_t)n, 1);
    if (!done) return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    for (int gi = 0; gi < s->n_groups; gi++) {
        const tj_group *gr = &s->groups[gi];
        for (int l = 0; l < gr->n_leaves; l++) {
            int slot = gr->leaves[l].slot;
            if (slot >= lo && slot < lo + n && !done[slot - lo]) {
                free(done);
                return tj_error_set(err, TJ_ERR_INTERNAL, "fusion scheduled group %d to read "
                                    "node %d (scratch slot %d) before a group computes it",
                                    gi, (int)gr->leaves[l].node, slot);
            }
        }
        for (int o = 0; o < gr->n_outs; o++)
            if (gr->outs[o].slot >= lo && gr->outs[o].slot < lo + n) done[gr->outs[o].slot - lo] = 1;
        if (gr->acc_slot >= lo && gr->acc_slot < lo + n) done[gr->acc_slot - lo] = 1;
    }
    free(done);
    return 0;
}

/* Per node: the reduction that stores it as a second output, -2 when it is computed
 * once into scratch because a user broadcasts it (mean = sum / n, used across rows,
 * is computed per row, not per element), or -1. A reduction's operand is stored
 * (rather than recomputed by its other users, as softmax's exp(x - max) would be)
 * when computing it is costly, it has other users, and all of them come after the
 * reduction. New malloc'd array, NULL when out of memory. */
static int32_t *stored_operands(const tj_graph *g, const int32_t *uses, const int32_t *phase) {
    int32_t n = g->n ? g->n : 1;
    int32_t *stored = malloc((size_t)n * sizeof *stored);
    int32_t *first_user = malloc((size_t)n * sizeof *first_user);
    uint8_t *costly = calloc((size_t)n, 1);
    uint16_t *cone = calloc((size_t)n, sizeof *cone);
    uint16_t *big = calloc(2 * (size_t)n, sizeof *big);
    uint8_t *s8 = calloc((size_t)n, 1);   /* an int8 GEMM's product (tj_s8_product) */
    if (!stored || !first_user || !costly || !cone || !big || !s8) {
        free(stored);
        stored = NULL;
        goto done;
    }
    for (int32_t i = 0; i < g->n; i++) { stored[i] = -1; first_user[i] = INT32_MAX; }
    for (int32_t i = 0; i < g->n; i++) {   /* its casts stay in its group, not stored */
        const tj_node *r = &g->nodes[i];
        if (r->op == TJ_OP_RSUM && uses[r->in[0]] == 1 && tj_s8_product(g, &g->nodes[r->in[0]], r))
            s8[r->in[0]] = 1;
    }
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
        if ((kind == TJ_K_EW || kind == TJ_K_CAST || kind == TJ_K_GATH) &&
            (shared_value(g, uses, stored, cone, i) || too_big(g, stored, big, i)) &&
            stored[i] == -1)
            stored[i] = -2;
        if (kind == TJ_K_RED) {
            int32_t x = r->in[0];
            if (costly[x] && uses[x] >= 2 && first_user[x] == i && stored[x] < 0 &&
                phase[x] == phase[i])   /* (a group spans one phase) */
                stored[x] = i;
        }
        if (kind != TJ_K_EW && kind != TJ_K_CAST) continue;
        if (s8[i]) {   /* the int8 factors are what the GEMM reads: stored when computed */
            for (int a = 0; a < 2; a++) {
                int32_t f = g->nodes[r->in[a]].in[0];
                int fk = tj_ops[g->nodes[f].op].kind;
                if ((fk == TJ_K_EW || fk == TJ_K_CAST || fk == TJ_K_GATH) && stored[f] == -1)
                    stored[f] = -2;
            }
            continue;
        }
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
    free(cone);
    free(big);
    free(s8);
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
 * straight into the output array and the copy is skipped. A hidden output (read by
 * the runtime only: never handed out) is such a buffer even when other nodes read the
 * value too. 0 otherwise. New malloc'd array, NULL when out of memory. */
static int same_shape(const tj_node *a, const tj_node *b);

static int32_t *direct_outputs(const tj_graph *g, const int32_t *users) {
    int32_t *direct = calloc((size_t)(g->n ? g->n : 1), sizeof *direct);
    if (!direct) return NULL;
    for (int32_t o = 0; o < g->n_out; o++) {
        const tj_node *c = &g->nodes[g->outputs[o]];
        if (c->op != TJ_OP_COPY || users[g->outputs[o]] != 1) continue;
        int32_t r = c->in[0];
        int kind = tj_ops[g->nodes[r].op].kind;
        if ((kind == TJ_K_RED || kind == TJ_K_SCAN || kind == TJ_K_CAT) && !direct[r] &&
            (users[r] == 1 || o >= g->n_out - g->n_hidden) &&
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

/* The concatenation P that part x of concatenation c (at offset off along c's axis)
 * copies unchanged from the same place: x is COPY(VIEW(P)) or VIEW(P), P a concatenation
 * of c's dtype and shape, the view P's elements [off, off + len) along the axis and all
 * of every other dim, each of x and its view read by nothing else. -1 otherwise. */
static int32_t same_place(const tj_graph *g, const int32_t *users, int32_t c, int32_t x,
                          int64_t off) {
    const tj_node *cn = &g->nodes[c], *v = &g->nodes[x];
    if (users[x] != 1) return -1;
    if (v->op == TJ_OP_COPY) {
        if (users[v->in[0]] != 1) return -1;
        v = &g->nodes[v->in[0]];
    }
    if (v->op != TJ_OP_VIEW || v->flat || v->ndim != cn->ndim || v->dtype != cn->dtype)
        return -1;
    const tj_node *P = &g->nodes[v->in[0]];
    if (P->op != TJ_OP_CONCAT || !same_shape(P, cn) || P->dtype != cn->dtype) return -1;
    for (int d = 0; d < v->ndim; d++) {
        int along = d == (int)cn->axes;
        if (v->perm[d] != d || (v->shape[d] > 1 && v->vstep[d] != 1) ||
            v->voff[d] != (along ? off : 0) || (!along && v->shape[d] != cn->shape[d]))
            return -1;
    }
    return v->in[0];
}

/* Per node: the concatenation that updates it in place, or -1. A concatenation c whose
 * parts include copies of an earlier concatenation P at their own place (same_place),
 * P read by nothing else (a row write `out[i] = v`: the new array is out's rows around
 * v), takes P's buffer: the parts that copy P's elements have nothing to do, and a loop
 * of n row writes costs O(n) work, not O(n^2). P must be a buffer of its own (not an
 * output, not inside another concatenation, not a node stored for its effect). */
static int32_t *in_place_concats(const tj_graph *g, const int32_t *users, const int32_t *into,
                                 const int32_t *direct, const uint8_t *once,
                                 const int32_t *stored_by, int32_t *parts, int64_t *offs) {
    int32_t n = g->n ? g->n : 1;
    int32_t *by = malloc((size_t)n * sizeof *by);
    if (!by) return NULL;
    for (int32_t i = 0; i < g->n; i++) by[i] = -1;
    for (int32_t c = 0; c < g->n; c++) {
        if (g->nodes[c].op != TJ_OP_CONCAT || into[c] >= 0) continue;
        int k = concat_parts(g, into, c, 0, parts, offs, 0), same = 0;
        int32_t P = -1;
        for (int p = 0; p < k; p++) {
            int32_t q = same_place(g, users, c, parts[p], offs[p]);
            if (q < 0) continue;
            if (P >= 0 && q != P) { P = -2; break; }
            P = q;
            same++;
        }
        if (P >= 0 && users[P] == same && into[P] < 0 && !direct[P] && !once[P] &&
            stored_by[P] == -1)
            by[P] = c;
    }
    return by;
}

/* Whether group b, after a in the schedule with no group between them, may join a in
 * one loop: both plain elementwise loops over one shape and of one phase, writing no
 * node both, and b reads a's outputs only element for element (never through a view
 * or a gather: those read other elements than the one the loop computes). */
static int joins(const tj_group *a, const tj_group *b, const int32_t *phase) {
    if (a->red >= 0 || a->cat >= 0 || b->red >= 0 || b->cat >= 0 || a->ndim != b->ndim ||
        group_phase(a, phase) != group_phase(b, phase))
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    for (int o = 0; o < b->n_outs; o++)   /* a node written to two slots (a value stored
                                           * for a view, and an output): emitters write
                                           * a node to one out of a group */
        for (int p = 0; p < a->n_outs; p++)
            if (a->outs[p].node == b->outs[o].node) return 0;
    for (int l = 0; l < b->n_leaves; l++) {
        const tj_leaf *lf = &b->leaves[l];
        for (int o = 0; o < a->n_outs; o++) {
            int32_t x = a->outs[o].node;
            if ((lf->node == x || lf->base == x) && (lf->node != x || lf->gather >= 0)) return 0;
        }
    }
    return 1;
}

/* The slot group a writes node x into. */
static int32_t oslot_of(const tj_group *a, int32_t x) {
    for (int o = 0; o < a->n_outs; o++)
        if (a->outs[o].node == x) return a->outs[o].slot;
    return -1;
}

/* Whether a group of s->groups[from .. to) reads node x (in place, through a view or
 * gathered). */
static int read_by(const tj_schedule *s, int from, int to, int32_t x) {
    for (int gi = from; gi < to; gi++) {
        const tj_group *gr = &s->groups[gi];
        for (int l = 0; l < gr->n_leaves; l++)
            if (gr->leaves[l].node == x || gr->leaves[l].base == x) return 1;
    }
    return 0;
}

/* Joins adjacent elementwise groups of one loop shape (joins) into one loop computing
 * the outputs of both, while the joined loop stays within too_big's 256 nodes and
 * leaves: a value one stored and the other read is computed once, and operands both
 * read are read once (an LSTM cell's c, then h = o * tanh(c); a complex value's real
 * and imaginary parts, two fusion roots of shared terms). A value the first stored in
 * scratch that no later group reads is no longer stored (its slot unused: memplan gives
 * it no room). Groups before the one being joined are final (w of them), those after
 * it not yet visited. */
static int join_groups(const tj_graph *g, tj_schedule *s, const int32_t *phase,
                       int32_t *outs, int32_t *oslots, scratchpad *sp, tj_error *err) {
    int w = 0, end_scratch = s->first_scratch + s->n_scratch;
    for (int gi = 0; gi < s->n_groups; gi++) {
        tj_group *a = w > 0 ? &s->groups[w - 1] : NULL, *b = &s->groups[gi];
        if (!a || !joins(a, b, phase)) {
            s->groups[w++] = *b;
            continue;
        }
        int k = 0, n_dropped = 0;
        int32_t dropped[64];
        for (int o = 0; o < a->n_outs + b->n_outs; o++) {
            const tj_out *out = o < a->n_outs ? &a->outs[o] : &b->outs[o - a->n_outs];
            int32_t x = out->node;
            if (o < a->n_outs && out->slot >= s->first_scratch && out->slot < end_scratch &&
                s->mat_slot[x] == out->slot && read_by(s, gi, gi + 1, x) &&
                !read_by(s, gi + 1, s->n_groups, x) && n_dropped < 64)
                dropped[n_dropped++] = x;
            else { outs[k] = x; oslots[k++] = out->slot; }
        }
        for (int d = 0; d < n_dropped; d++) s->mat_slot[dropped[d]] = -1;   /* computed */
        tj_group joined;
        memset(&joined, 0, sizeof joined);
        joined.red = joined.cat = -1;
        if (build_group(g, s, &joined, outs, oslots, k, sp, err) < 0) return -1;
        if (joined.n_nodes + joined.n_leaves > 256) {   /* b stays apart */
            for (int d = 0; d < n_dropped; d++) s->mat_slot[dropped[d]] = oslot_of(a, dropped[d]);
            s->groups[w++] = *b;
            continue;
        }
        s->groups[w - 1] = joined;
    }
    s->n_groups = w;
    return 0;
}

/* Gives node x memory of its own unless it has some: a scratch slot, or, for a node
 * that must run once and is an output (out_once), its output array (TO_OUT: set once
 * the outputs have their slots). */
#define TO_OUT (-3)
#define IN_PLACE (-4)   /* the buffer of the concatenation that updates it (in_place_concats) */
static void materialize(tj_schedule *s, const uint8_t *out_once, int32_t x, int *next) {
    if (s->mat_slot[x] != -1) return;
    s->mat_slot[x] = out_once[x] ? TO_OUT : (*next)++;
}

/* One fusion of g into s, the nodes marked in `once` stored (computed in one group). */
static int fuse_once(const tj_graph *g, tj_schedule *s, const uint8_t *once, tj_error *err) {
    int rc = -1;
    int32_t *stored_by = NULL, *into = NULL, *parts = NULL, *direct = NULL;
    int32_t *uses = NULL, *users = NULL, *phase = NULL, *in_place = NULL;
    int32_t *stored_first = NULL, *stored_next = NULL;   /* the nodes each stores, by id */
    int64_t *poffs = NULL;
    uint8_t *out_once = NULL;
    memset(s, 0, sizeof *s);
    int32_t n = g->n ? g->n : 1;
    int32_t *node_out = malloc((size_t)n * sizeof *node_out);
    int32_t *outs = malloc((size_t)n * sizeof *outs), *oslots = malloc((size_t)n * sizeof *oslots);
    scratchpad sp = {calloc((size_t)n, 1), malloc((size_t)n * sizeof(int32_t)),
                     malloc((size_t)n * 2 * sizeof(int32_t)),   /* leaves: + gathered data */
                     malloc((size_t)n * sizeof(int32_t)), malloc((size_t)n * sizeof(int32_t))};
    s->mat_slot = tj_arena_alloc(&s->arena, (size_t)n * sizeof *s->mat_slot);
    s->out_slot_of = tj_arena_alloc(&s->arena, (size_t)(g->n_out ? g->n_out : 1) * sizeof(int32_t));
    s->acc_slot = tj_arena_alloc(&s->arena, (size_t)n * sizeof *s->acc_slot);
    if (!node_out || !outs || !oslots || !sp.mark || !sp.nodes || !sp.leaves || !sp.stack ||
        !sp.touched || !s->mat_slot ||
        !s->out_slot_of || !s->acc_slot)
        goto nomem;
    for (int32_t i = 0; i < g->n; i++) s->mat_slot[i] = node_out[i] = s->acc_slot[i] = -1;

    int next = g->n_slots;
    s->first_scratch = next;
    /* Materialized: operands of views that are computed, every reduction (its
     * result and its accumulator), and the costly operands reductions store. */
    if (count_uses(g, &uses, &users) < 0) goto nomem;
    if (!(phase = guard_phases(g))) goto nomem;
    stored_by = stored_operands(g, uses, phase);
    if (!stored_by || !(into = inner_concats(g, users)) || !(direct = direct_outputs(g, users)))
        goto nomem;
    parts = malloc((size_t)n * sizeof *parts);
    poffs = malloc((size_t)n * sizeof *poffs);
    out_once = malloc((size_t)n);
    if (!parts || !poffs || !out_once) goto nomem;
    if (!(in_place = in_place_concats(g, users, into, direct, once, stored_by, parts, poffs)))
        goto nomem;
    stored_first = malloc((size_t)n * sizeof *stored_first);
    stored_next = malloc((size_t)n * sizeof *stored_next);
    if (!stored_first || !stored_next) goto nomem;
    for (int32_t i = 0; i < g->n; i++) stored_first[i] = -1;
    for (int32_t x = g->n - 1; x >= 0; x--)
        if (stored_by[x] >= 0) {
            stored_next[x] = stored_first[stored_by[x]];
            stored_first[stored_by[x]] = x;
        }
    for (int32_t i = 0; i < g->n; i++) out_once[i] = once[i] && users[i] > uses[i];
    for (int32_t i = 0; i < g->n; i++) {
        const tj_node *v = &g->nodes[i];
        if (v->op == TJ_OP_VIEW && tj_ops[g->nodes[v->in[0]].op].kind != TJ_K_LEAF)
            materialize(s, out_once, v->in[0], &next);
        if (tj_ops[v->op].kind == TJ_K_RED || tj_ops[v->op].kind == TJ_K_SCAN) {
            if (!direct[i]) s->mat_slot[i] = next++;
            s->acc_slot[i] = next++;
        }
        if (stored_by[i] != -1 || once[i]) materialize(s, out_once, i, &next);
        if (v->op == TJ_OP_CONCAT && into[i] < 0 && !direct[i])
            s->mat_slot[i] = in_place[i] >= 0 ? IN_PLACE : next++;
        if (v->op == TJ_OP_GATHER) {   /* gathered data is read in place: from memory */
            int32_t d = v->in[0];
            int32_t db = g->nodes[d].op == TJ_OP_VIEW ? g->nodes[d].in[0] : d;
            if (g->nodes[db].op == TJ_OP_IOTA) {   /* a virtual leaf has no memory */
                tj_error_set(err, TJ_ERR_VALUE, "indexing an element-index array (IOTA) "
                             "with an array is not supported");
                goto done;
            }
            int dk = tj_ops[g->nodes[d].op].kind;
            if (dk != TJ_K_LEAF && g->nodes[d].op != TJ_OP_VIEW) materialize(s, out_once, d, &next);
        }
    }
    s->n_scratch = next - s->first_scratch;
    s->first_out = next;
    for (int32_t o = 0; o < g->n_out; o++) {
        int32_t id = g->outputs[o];
        if (node_out[id] < 0) node_out[id] = next++;
        s->out_slot_of[o] = node_out[id];
    }
    for (int32_t i = 0; i < g->n; i++) {   /* written straight into its output */
        if (direct[i]) s->mat_slot[i] = node_out[direct[i] - 1];
        if (s->mat_slot[i] == TO_OUT) s->mat_slot[i] = node_out[i];
    }
    for (int32_t i = g->n - 1; i >= 0; i--)   /* a chain of them: the last one's buffer */
        if (s->mat_slot[i] == IN_PLACE) s->mat_slot[i] = s->mat_slot[in_place[i]];
    s->n_slots = next;
    s->slot_dtype = tj_arena_alloc(&s->arena, ((size_t)next + 1) * sizeof(int));
    s->slot_ndim = tj_arena_alloc(&s->arena, ((size_t)next + 1) * sizeof(int));
    s->slot_shape = tj_arena_alloc(&s->arena, ((size_t)next + 1) * sizeof *s->slot_shape);
    /* a group per materialized node, per part of a concatenation (a tree of m of them
     * has m + 1 parts), per output: not 2 * g->n groups of 488 bytes faulted in */
    int max_groups = g->n_out + 1;
    for (int32_t i = 0; i < g->n; i++)
        max_groups += g->nodes[i].op == TJ_OP_CONCAT ? 2 : s->mat_slot[i] >= 0;
    s->groups = calloc((size_t)max_groups, sizeof(tj_group));   /* to the arena, exact, at the end */
    for (int i = 0; s->groups && i < max_groups; i++) s->groups[i].red = s->groups[i].cat = -1;
    if (!s->slot_dtype || !s->slot_ndim || !s->slot_shape || !s->groups) goto nomem;
    for (int32_t i = 0; i < g->n; i++) {
        int slots[2] = {s->mat_slot[i], node_out[i]};
        for (int p = 0; p < 2; p++) {
            int slot = slots[p];
            if (slot < 0) continue;
            s->slot_dtype[slot] = g->nodes[i].dtype;
            s->slot_ndim[slot] = g->nodes[i].ndim;
            memcpy(s->slot_shape[slot], g->nodes[i].shape, sizeof s->slot_shape[slot]);
        }
        if (s->mat_slot[i] >= 0 && in_place[i] < 0)
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
                int32_t from = same_place(g, users, i, parts[p], poffs[p]);
                if (from >= 0 && in_place[from] == i) continue;   /* already there */
                tj_group *gr = &s->groups[s->n_groups++];
                gr->cat = i;
                gr->cat_off = poffs[p];
                if (build_group(g, s, gr, &parts[p], &s->mat_slot[i], 1, &sp, err) < 0)
                    goto done;
            }
            continue;
        }
        outs[0] = i;
        oslots[0] = s->mat_slot[i];
        int k = 1;
        for (int32_t x = stored_first[i]; x >= 0; x = stored_next[x]) {
            outs[k] = x;
            oslots[k++] = s->mat_slot[x];
        }
        if (build_group(g, s, &s->groups[s->n_groups++], outs, oslots, k, &sp, err) < 0)
            goto done;
    }
    uint8_t *grouped = calloc((size_t)n, 1);
    if (!grouped) goto nomem;
    for (int32_t i = 0; i < g->n; i++) {
        if (direct[i]) grouped[direct[i] - 1] = 1;   /* its copy has nothing to do */
        if (out_once[i]) grouped[i] = 1;             /* computed into it already */
    }
    for (int32_t o = 0; o < g->n_out; o++) {
        int32_t id = g->outputs[o];
        if (grouped[id]) continue;
        int k = 0;
        for (int32_t p = o; p < g->n_out; p++) {
            int32_t q = g->outputs[p];
            if (grouped[q] || !same_shape(&g->nodes[q], &g->nodes[id]) || phase[q] != phase[id])
                continue;
            grouped[q] = 1;
            outs[k] = q;
            oslots[k++] = node_out[q];
        }
        if (build_group(g, s, &s->groups[s->n_groups++], outs, oslots, k, &sp, err) < 0) {
            free(grouped);
            goto done;
        }
    }
    free(grouped);
    if (join_groups(g, s, phase, outs, oslots, &sp, err) < 0) goto done;
    if (order_phases(g, s, phase, err) < 0 || check_order(s, err) < 0) goto done;
    tj_group *exact = tj_arena_alloc(&s->arena, (size_t)s->n_groups * sizeof *exact);
    if (!exact) goto nomem;
    memcpy(exact, s->groups, (size_t)s->n_groups * sizeof *exact);
    free(s->groups);
    s->groups = exact;
    rc = 0;
    goto done;
nomem:
    tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
done:
    free(stored_by);
    free(phase);
    free(into);
    free(direct);
    free(uses);
    free(users);
    free(parts);
    free(poffs);
    free(out_once);
    free(in_place);
    free(stored_first);
    free(stored_next);
    free(node_out);
    free(outs);
    free(oslots);
    free(sp.mark);
    free(sp.nodes);
    free(sp.leaves);
    free(sp.stack);
    free(sp.touched);
    if (rc < 0) {
        free(s->groups);   /* still the working array */
        tj_schedule_free(s);
    }
    return rc;
}

/* Marks in `once` each node that must run once (tj_op_pure false) yet s computes in
 * more than one group; count: a scratch array of g->n. Returns how many it marked. */
static int recomputed_effects(const tj_graph *g, const tj_schedule *s, uint8_t *once,
                              int32_t *count) {
    memset(count, 0, (size_t)g->n * sizeof *count);
    for (int gi = 0; gi < s->n_groups; gi++)
        for (int k = 0; k < s->groups[gi].n_nodes; k++) count[s->groups[gi].nodes[k]]++;
    int marked = 0;
    for (int32_t i = 0; i < g->n; i++)
        if (!once[i] && count[i] > 1 && !tj_op_pure(g->nodes[i].op)) once[i] = 1, marked++;
    return marked;
}

/* Fuses until no node that must run once is computed twice: each round stores the
 * ones the last computed in several groups (at most one round per such node; graphs
 * of pure ops take one). */
int tj_pass_fuse(const tj_graph *g, tj_schedule *s, tj_error *err) {
    int32_t n = g->n ? g->n : 1;
    uint8_t *once = calloc((size_t)n, 1);
    int32_t *count = malloc((size_t)n * sizeof *count);
    int rc = -1;
    if (!once || !count) {
        memset(s, 0, sizeof *s);
        tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    } else {
        while ((rc = fuse_once(g, s, once, err)) == 0 && recomputed_effects(g, s, once, count))
            tj_schedule_free(s);
    }
    free(once);
    free(count);
    return rc;
}

void tj_schedule_free(tj_schedule *s) {
    tj_arena_free(&s->arena);
    memset(s, 0, sizeof *s);
}
