/* Algebraic simplification: rules that are exact bit for bit, for every input
 * (NaN, inf, -0.0 and integer wraparound included). Requires: operands precede
 * users. Guarantees: a rewritten node keeps its dtype, shape and weak flag; it is
 * either changed in place into a cheaper computation of the same value, or its uses
 * are redirected to an equal node (which then has the same dtype, shape and weak
 * flag), leaving it dead for DCE. A graph output is redirected only to a computed
 * node no other output uses, so outputs stay fresh, distinct arrays.
 *
 * The graph is rebuilt in one forward sweep so a rule can put a new constant (with a
 * new slot in g's table) before the node using it; dead nodes are kept in the sweep,
 * so node ids move only past such constants.
 *
 * Rules (c a CONST; "int" includes bool where the op is defined on it):
 *   x + c -> x     int c == 0; float c == -0.0  (x + 0.0 is not exact: -0.0 + 0.0 = +0.0)
 *   x - c -> x     int c == 0; float c == +0.0  (x - (-0.0) = x + 0.0: not exact)
 *   x * c -> x     c == 1                        (x * -1 -> -x is not: NaN's sign bit)
 *   x / c -> x * (1/c)   float c = +-2^k with 1/c representable (both round x/c once;
 *                  for other c it is not exact: 3 / 10 = 0.3, 3 * 0.1 = 0.30000000000000004)
 *   x ** 2 -> square(x), x ** 1 -> x             (NumPy's own fast paths; pow(x, 2) = x*x)
 *   -(-x) -> x, +x -> x, ~~x -> x, not(not(x)) -> x for bool x
 *   cast(cast(x, T1), T2) -> cast(x, T2), or x when T2 is x's dtype, where the inner
 *                  cast is lossless (bool -> any, int32 -> int64/float64, float32 -> float64)
 *   view(e) -> e at the view's shape, where the view only puts size-1 dims in front
 *                  of elementwise e's (broadcasting computes the same elements)
 *   copy(x) -> x   (an output's copy only of a computed node no other output uses; a
 *                  copy read by views only, of a computed node, a row-major leaf, a sum
 *                  or a concatenation)
 *   x & true -> x, x | false -> x; x & false, x | true -> the constant (its copy, at
 *                  x's shape) for bool x; where(c, a, b) -> a or b for constant c
 *                  ("constant": a CONST or its copy to a shape, np.full's; complex
 *                  values' parts fold to them: _complex.parts)
 * A node with an effect (tj_op_pure), or whose first operand has one (the rules
 * above that look through an operand would drop it), is kept as it is.
 * Not rules: exp(log(x)) -> x (exp(log(3.0)) = 3.0000000000000004); x * 0 -> 0 (NaN, inf,
 * -0.0); x - x -> 0 (inf - inf = NaN). */
#include "ir/ir.h"
#include <math.h>

typedef struct {
    tj_graph *g;         /* the graph being simplified: its slot table gains constants */
    tj_graph ng;         /* the rebuilt graph (nodes only) */
    tj_error *err;
    uint8_t *claimed;    /* per new node: a graph output maps to it */
} ctx;

static int same_type(const tj_node *a, const tj_node *b) {
    if (a->dtype != b->dtype || a->weak != b->weak || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static int is_float(int dtype) { return dtype >= TJ_F32; }

/* A CONST of value `v`: floats compared with their sign, ints by value. */
static int const_is(const tj_node *c, double v) {
    if (c->op != TJ_OP_CONST) return 0;
    if (is_float(c->dtype)) return c->value.f == v && !signbit(c->value.f) == !signbit(v);
    return (double)c->value.i == v;
}

/* A float CONST +-2^k whose reciprocal is exact in its dtype: sets *r. */
static int exact_reciprocal(const tj_node *c, double *r) {
    if (c->op != TJ_OP_CONST || !is_float(c->dtype) || !isfinite(c->value.f) || c->value.f == 0)
        return 0;
    int e;
    if (fabs(frexp(c->value.f, &e)) != 0.5) return 0;
    if (c->dtype == TJ_F32) {
        float cf = (float)c->value.f, rf = 1.0f / cf;
        if (rf == 0 || !isfinite(rf) || rf * cf != 1.0f) return 0;
        *r = rf;
    } else {
        double rd = 1.0 / c->value.f;
        if (rd == 0 || !isfinite(rd) || rd * c->value.f != 1.0) return 0;
        *r = rd;
    }
    return 1;
}

/* Casts that keep every value (so a cast after them sees the original value). */
static int lossless(int from, int to) {
    switch (from) {
    case TJ_BOOL: return 1;
    case TJ_I32: return to == TJ_I64 || to == TJ_F64;
    case TJ_F32: return to == TJ_F64;
    default: return 0;
    }
}

/* Whether VIEW v of computed node a (row-major, contiguous) is a's elements in order
 * with size-1 dims put in front (`out[i] = value`'s value reshaped to its row's box), so
 * that a's op computed at v's shape (broadcasting its operands) is the same value: a
 * plain elementwise op or cast, no draw, no index. */
static int leading_unit_dims(const tj_node *v, const tj_node *a) {
    int kind = tj_ops[a->op].kind;
    if ((kind != TJ_K_EW && kind != TJ_K_CAST) || (tj_ops[a->op].flags & (TJ_F_DRAW | TJ_F_INDEX)) ||
        !v->flat || v->voff[0] != 0 || v->ndim < a->ndim || v->dtype != a->dtype)
        return 0;
    int lead = v->ndim - a->ndim;
    int64_t expect = 1;
    for (int d = v->ndim - 1; d >= 0; d--) {
        if (d < lead ? v->shape[d] != 1 : v->shape[d] != a->shape[d - lead]) return 0;
        if (v->shape[d] == 1) continue;
        if (v->perm[d] != -2 || v->vstep[d] != expect) return 0;
        expect *= v->shape[d];
    }
    return 1;
}

static int32_t add_const(ctx *c, int dtype, int weak, tj_scalar v) {
    tj_slotdesc d = {.kind = TJ_SLOT_CONST, .dtype = dtype, .contig = 1, .value = v};
    int slot = tj_graph_add_slot(c->g, &d, c->err);
    if (slot < 0) return -1;
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = TJ_OP_CONST;
    n.dtype = (uint8_t)dtype;
    n.weak = (uint8_t)weak;
    n.in[0] = n.in[1] = n.in[2] = -1;
    n.slot = slot;
    n.value = v;
    return tj_graph_add(&c->ng, &n, c->err);
}

enum { KEEP = -1, FAIL = -2 };

/* Node id of N if it is a CONST or a CONST's COPY (the constant at a shape): the CONST. */
static const tj_node *bconst(const tj_node *N, int32_t id) {
    const tj_node *x = &N[id];
    if (x->op == TJ_OP_COPY && N[x->in[0]].op == TJ_OP_CONST) x = &N[x->in[0]];
    return x->op == TJ_OP_CONST ? x : NULL;
}

/* bool x & c, x | c for a constant c: x, or n in place as the constant's copy. */
static int32_t bool_rule(ctx *c, tj_node *n) {
    const tj_node *N = c->ng.nodes;
    if (n->dtype != TJ_BOOL) return KEEP;
    for (int s = 1; s >= 0; s--) {
        const tj_node *k = bconst(N, n->in[s]);
        if (!k || k->dtype != TJ_BOOL) continue;
        int one = k->value.i != 0;
        if (one == (n->op == TJ_OP_BAND)) return n->in[1 - s];   /* x & true, x | false */
        if (!tj_op_pure(N[n->in[1 - s]].op)) return KEEP;
        int32_t kk = add_const(c, TJ_BOOL, k->weak, (tj_scalar){.i = one});   /* moves N */
        if (kk < 0) return FAIL;
        n->op = TJ_OP_COPY;
        n->in[0] = kk;
        n->in[1] = -1;
        return KEEP;
    }
    return KEEP;
}

/* The node `n` (operands already in the new graph) simplifies to: an existing node
 * of the new graph, KEEP (n as it is, possibly rewritten in place), or FAIL. */
static int32_t rule(ctx *c, tj_node *n) {
    const tj_node *N = c->ng.nodes;
    const tj_node *a = tj_ops[n->op].arity > 0 ? &N[n->in[0]] : NULL;
    const tj_node *b = tj_ops[n->op].arity > 1 ? &N[n->in[1]] : NULL;
    int fl = is_float(n->dtype);
    if (!tj_op_pure(n->op) || (a && !tj_op_pure(a->op))) return KEEP;
    switch (n->op) {
    case TJ_OP_ADD:
        for (int s = 1; s >= 0; s--)
            if (const_is(&N[n->in[s]], fl ? -0.0 : 0.0)) return n->in[1 - s];
        return KEEP;
    case TJ_OP_SUB: return const_is(b, 0.0) ? n->in[0] : KEEP;
    case TJ_OP_MUL:
        for (int s = 1; s >= 0; s--)
            if (const_is(&N[n->in[s]], 1.0)) return n->in[1 - s];
        return KEEP;
    case TJ_OP_DIV: {
        double r;
        if (const_is(b, 1.0)) return n->in[0];
        if (!exact_reciprocal(b, &r)) return KEEP;
        int32_t k = add_const(c, b->dtype, b->weak, (tj_scalar){.f = r});   /* moves N */
        if (k < 0) return FAIL;
        n->op = TJ_OP_MUL;
        n->in[1] = k;
        return KEEP;
    }
    case TJ_OP_POW:
        if (const_is(b, 1.0)) return n->in[0];
        if (const_is(b, 2.0)) { n->op = TJ_OP_SQUARE; n->in[1] = -1; }
        return KEEP;
    case TJ_OP_NEG:
    case TJ_OP_INVERT: return a->op == n->op ? a->in[0] : KEEP;
    case TJ_OP_NOT: return a->op == TJ_OP_NOT && N[a->in[0]].dtype == TJ_BOOL ? a->in[0] : KEEP;
    case TJ_OP_POS:
    case TJ_OP_COPY: return n->in[0];
    case TJ_OP_VIEW:
        if (!leading_unit_dims(n, a)) return KEEP;
        {   /* the operand's op at the view's shape: broadcasting prepends the 1s */
            tj_node w = *a;
            w.ndim = n->ndim;
            memcpy(w.shape, n->shape, sizeof w.shape);
            w.slot = n->slot;
            w.weak = n->weak;
            *n = w;
        }
        return KEEP;
    case TJ_OP_BAND:
    case TJ_OP_BOR: return bool_rule(c, n);
    case TJ_OP_WHERE: {
        const tj_node *k = bconst(N, n->in[0]);
        if (k && k->dtype != TJ_BOOL) k = NULL;   /* (a bool CONST's value is .i) */
        int32_t r = k ? n->in[k->value.i ? 1 : 2] : KEEP;
        return r >= 0 && tj_op_pure(N[n->in[k->value.i ? 2 : 1]].op) ? r : KEEP;
    }
    case TJ_OP_CAST:
        if (a->op != TJ_OP_CAST || !lossless(N[a->in[0]].dtype, a->dtype)) return KEEP;
        if (N[a->in[0]].dtype == n->dtype) return a->in[0];
        n->in[0] = a->in[0];
        return KEEP;
    default: return KEEP;
    }
}

/* Whether the node that is output-or-not, and read-by-a-view-or-not (viewed: 1 by a
 * VIEW, 2 as a CONCAT's part), may be replaced by node `r` of the new graph. A view's
 * operand is a leaf or a computed value (and a reshaping view's operand is contiguous:
 * views.c copies a strided one), and a concatenation's parts are computed into its
 * buffer, so these are only ever redirected to a computed value, or (read by views
 * only) to a C-contiguous argument or capture. */
static int may_redirect(const ctx *c, const tj_node *n, int32_t r, int is_out, int viewed) {
    const tj_node *x = &c->ng.nodes[r];
    if (!same_type(n, x)) return 0;
    int kind = tj_ops[x->op].kind, computed = kind == TJ_K_EW || kind == TJ_K_CAST;
    /* views only (no concatenation) may read a row-major argument or capture itself:
     * `out = u.copy(); out[1:-1] = ...` reads u, not a copy of it */
    int leaf = (x->op == TJ_OP_INPUT || x->op == TJ_OP_CAPTURE) && x->slot >= 0 &&
               x->slot < c->g->n_slots && c->g->slots[x->slot].contig;
    /* and views may read a sum's own result (a matrix product's, reshaped: conv's
     * (N, O, L) into (N, O, H, W)) rather than a copy of it */
    int red = kind == TJ_K_RED && !(tj_ops[x->op].flags & TJ_F_INDEX);
    /* or a concatenation's buffer (a row write's new array, read by the next write's
     * views of it: fuse.c's in_place_concats updates that buffer in place) */
    int cat = x->op == TJ_OP_CONCAT;
    if (viewed && !computed && !(viewed == 1 && (leaf || red || cat))) return 0;
    if (!is_out) return 1;
    return computed && !c->claimed[r];
}

int tj_pass_simplify(tj_graph *g, tj_error *err) {
    ctx c = {.g = g, .err = err};
    int32_t n = g->n ? g->n : 1, rc = -1;
    int32_t *map = malloc((size_t)n * sizeof *map);
    uint8_t *is_out = calloc((size_t)n, 1), *viewed = calloc((size_t)n, 1);
    c.claimed = calloc((size_t)2 * (size_t)n, 1);   /* at most one constant per node */
    if (!map || !is_out || !viewed || !c.claimed || tj_graph_init(&c.ng) < 0) {
        tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int32_t o = 0; o < g->n_out; o++) is_out[g->outputs[o]] = 1;
    for (int32_t i = 0; i < g->n; i++)
        if (g->nodes[i].op == TJ_OP_VIEW) viewed[g->nodes[i].in[0]] |= 1;
        else if (g->nodes[i].op == TJ_OP_CONCAT)   /* parts are computed into place */
            viewed[g->nodes[i].in[0]] |= 2, viewed[g->nodes[i].in[1]] |= 2;
    for (int32_t i = 0; i < g->n; i++) {
        tj_node nd = g->nodes[i];
        for (int a = 0; a < tj_ops[nd.op].arity; a++) nd.in[a] = map[nd.in[a]];
        tj_node orig = nd;
        int32_t r = rule(&c, &nd);
        if (r == FAIL) goto done;
        if (r >= 0 && !may_redirect(&c, &orig, r, is_out[i], viewed[i])) {
            r = KEEP;
            nd = orig;
        }
        /* a redirected node stays, dead, for DCE */
        int32_t id = tj_graph_add(&c.ng, r >= 0 ? &orig : &nd, err);
        if (id < 0) goto done;
        map[i] = r >= 0 ? r : id;
        if (is_out[i]) c.claimed[map[i]] = 1;
    }
    for (int32_t o = 0; o < g->n_out; o++) g->outputs[o] = map[g->outputs[o]];
    free(g->nodes);
    g->nodes = c.ng.nodes;
    g->n = c.ng.n;
    g->cap = c.ng.cap;
    c.ng.nodes = NULL;
    rc = 0;
done:
    free(c.ng.nodes);
    free(map);
    free(is_out);
    free(viewed);
    free(c.claimed);
    return rc;
}
