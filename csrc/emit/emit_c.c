/* The C generator: one static function per fused group, over a range of its outer
 * loop (so the runtime can split it across threads, csrc/pool.c), and the table
 * `tj_groups` the runtime runs them from, in order. A group is a loop nest over its iteration shape; the innermost dim
 * runs in blocks of TJ_BLOCK elements, and each node is one call of a SIMD primitive
 * (csrc/emit/prims.c) over the block, so values between ops stay in L1-resident
 * block buffers rather than memory. Values that do not vary over the loop (constants,
 * scalars, and ops on them) are computed once before it.
 * Requires: a lowered schedule (csrc/fuse/lower.c decides the loop nest, blocks, units,
 * splits and invariant values; this file spells them). Guarantees: source that includes no header;
 * every external symbol it names is a primitive registered by csrc/backend/tcc.c;
 * a block buffer is never both an operand and the result of one call.
 * Calling convention: P[slot] is the slot's data, S[slot] its byte strides. */
#include "emit/emit.h"
#include <stdio.h>

typedef tj_sbuf sbuf;
#define put tj_put

/* POW with a loop-invariant exponent has its own primitives (prims.c). */
static int pow_scalar(const tj_graph *g, const tj_node *n, const uint8_t *uniform) {
    return n->op == TJ_OP_POW && uniform && uniform[n->in[1]] && !uniform[n->in[0]] &&
           g->nodes[n->in[0]].dtype >= TJ_F32;
}

static void prim_name(char *out, size_t cap, const tj_graph *g, const tj_node *n,
                      const uint8_t *uniform) {
    if (pow_scalar(g, n, uniform))
        snprintf(out, cap, "tj_p_POWS%s_%s", n->axes ? "F" : "",
                 tj_dtype_suffix(g->nodes[n->in[0]].dtype));
    else if (n->op == TJ_OP_CAST)
        snprintf(out, cap, "tj_p_CAST_%s_%s", tj_dtype_suffix(g->nodes[n->in[0]].dtype),
                 tj_dtype_suffix(n->dtype));
    else
        snprintf(out, cap, "tj_p_%s_%s", tj_ops[n->op].name,
                 tj_dtype_suffix(tj_node_loop_dtype(g, n)));
}

typedef struct {
    int32_t *where;      /* per node: -1 unset, else index into the group's value table */
    int32_t *last_use;   /* per node: position of its last use in the group */
    uint8_t *uniform;    /* per node */
    int *free_bufs, n_free, n_bufs;
    sbuf *decls;         /* one declaration per distinct primitive used */
    char (*names)[48];
    int n_names;
} gstate;

/* Declares `name` once, with the prototype `proto` (a format taking the name). */
static void declare_fn(gstate *gs, const char *name, const char *proto) {
    for (int i = 0; i < gs->n_names; i++)
        if (strcmp(gs->names[i], name) == 0) return;
    snprintf(gs->names[gs->n_names++], sizeof gs->names[0], "%s", name);
    put(gs->decls, proto, name);
}

static void declare(gstate *gs, const char *name) { declare_fn(gs, name, "tj_prim %s;\n"); }

/* tj_iota_i64(out, start, step, div, mod, n): out[k] = (start + k * step) / div, modulo
 * mod when mod > 0 (a virtual leaf's values, csrc/emit/prims.c). */
#define IOTA_PROTO "void %s(void *, long long, long long, long long, long long, long long);\n"

static int take_buf(gstate *gs) {
    if (gs->n_free) return gs->free_bufs[--gs->n_free];
    return gs->n_bufs++;
}

/* The suffix naming a reduction's primitives: its operand's dtype. */
static const char *red_suffix(const tj_graph *g, const tj_node *r) {
    return tj_dtype_suffix(g->nodes[r->in[0]].dtype);
}

/* argmax/argmin: the primitives take the result slot and the block's first index */
static int is_arg(const tj_node *r) { return (tj_ops[r->op].flags & TJ_F_INDEX) != 0; }

static int is_scan(const tj_graph *g, const tj_group *gr) {
    return gr->red >= 0 && tj_ops[g->nodes[gr->red].op].kind == TJ_K_SCAN;
}

/* A scan's block: one running value along it (the scanned dim is the loop's inner
 * dim), or a row of them advanced elementwise; the result written as it goes. */
static void emit_scan(sbuf *b, const tj_graph *g, const tj_group *gr, gstate *gs,
                      const tj_node *r, int D) {
    int horizontal = gr->loop.horizontal;
    char pn[96];
    snprintf(pn, sizeof pn, "tj_s%c_%s_%s", horizontal ? 'h' : 'v', tj_ops[r->op].name,
             tj_dtype_suffix(r->dtype));
    declare_fn(gs, pn, "void %s(void *, void *, const void *, long long);\n");
    int32_t x = r->in[0];
    put(b, "            %s(po0 + j * o0_%d, ", pn, D - 1);
    if (horizontal) put(b, "pc0, ");
    else put(b, "pc0 + j * c0_%d, ", D - 1);
    put(b, gs->uniform[x] ? "tju%d, n);\n" : "v%d, n);\n",
        gs->uniform[x] ? (int)gs->where[x] : (int)x);
}

/* Before the loop nest: accumulators to the identity; after it: results from them. */
static void emit_reduction_edges(sbuf *b, const tj_graph *g, const tj_group *gr, gstate *gs,
                                 int after) {
    const tj_node *r = &g->nodes[gr->red];
    char pn[96];
    if (is_scan(g, gr)) {   /* running values start at the identity; nothing to finish */
        if (after) return;
        snprintf(pn, sizeof pn, "tj_si_%s_%s", tj_ops[r->op].name, tj_dtype_suffix(r->dtype));
        declare_fn(gs, pn, "void %s(void *, long long);\n");
        int64_t n = tj_node_size(r) / (r->shape[r->axes] ? r->shape[r->axes] : 1);
        put(b, "    %s(P[%d], %lldLL);\n", pn, (int)gr->acc_slot, (long long)n);
        return;
    }
    snprintf(pn, sizeof pn, "tj_r%c_%s_%s", after ? 'f' : 'i', tj_ops[r->op].name,
             red_suffix(g, r));
    if (after) {
        declare_fn(gs, pn, "void %s(void *, const void *, long long);\n");
        put(b, "    %s(P[%d], P[%d], %lldLL);\n", pn, (int)gr->outs[0].slot, (int)gr->acc_slot,
            (long long)tj_node_size(r));
    } else {
        declare_fn(gs, pn, "void %s(void *, void *, long long);\n");
        if (is_arg(r))
            put(b, "    %s(P[%d], P[%d], %lldLL);\n", pn, (int)gr->acc_slot,
                (int)gr->outs[0].slot, (long long)tj_node_size(r));
        else
            put(b, "    %s(P[%d], 0, %lldLL);\n", pn, (int)gr->acc_slot, (long long)tj_node_size(r));
    }
}

/* Folds the block of the reduction's operand into its accumulator: horizontally when
 * the innermost loop dim is reduced, elementwise when it is kept. For argmax/argmin
 * the result slot holds the indices and `base` is the flat index, within the reduced
 * dims, of the block's first element. */
static void emit_accumulate(sbuf *b, const tj_graph *g, const tj_group *gr, gstate *gs,
                            const tj_node *r, const int64_t *shape, int D, int twod) {
    int horizontal = gr->loop.horizontal;
    char pn[96];
    snprintf(pn, sizeof pn, "tj_r%c_%s_%s", horizontal ? 'h' : 'v', tj_ops[r->op].name,
             red_suffix(g, r));
    declare_fn(gs, pn, "void %s(void *, void *, const void *, long long, long long);\n");
    int32_t x = r->in[0];
    if (twod) {   /* a block of rows (reduction_rows): accumulated a row at a time, in order */
        char src[32];
        snprintf(src, sizeof src, gs->uniform[x] ? "tju%d" : "v%d",
                 gs->uniform[x] ? (int)gs->where[x] : (int)x);
        put(b, "            for (long long rr = 0; rr < rows; rr++)\n");
        put(b, "                %s(pc0 + (i%d + rr) * c0_%d, 0, (const char *)%s + rr * %lldLL, "
               "%lldLL, 0);\n", pn, D - 2, D - 2, src,
            (long long)(shape[D - 1] * tj_dtype_size(g->nodes[x].dtype)), (long long)shape[D - 1]);
        return;
    }
    put(b, "            %s(", pn);
    if (horizontal) put(b, "pc0, %s, ", is_arg(r) ? "po0" : "0");
    else if (is_arg(r)) put(b, "pc0 + j * c0_%d, po0 + j * o0_%d, ", D - 1, D - 1);
    else put(b, "pc0 + j * c0_%d, 0, ", D - 1);
    put(b, gs->uniform[x] ? "tju%d, n, " : "v%d, n, ", gs->uniform[x] ? (int)gs->where[x] : (int)x);
    put(b, "0");
    if (is_arg(r) && gr->ndim) {
        int64_t w = 1;
        for (int d = D - 1; d >= 0; d--) {
            if (gr->outs[0].map[d] >= 0) continue;
            if (d == D - 1) put(b, " + j");
            else put(b, " + i%d * %lldLL", d, (long long)w);
            w *= shape[d];
        }
    }
    put(b, ");\n");
}

/* Per leaf: its first element (the slot's data plus the view's start offsets), and
 * per loop dim a byte stride: 0 where broadcast, the slot's stride times the view's
 * step, or for a flat read the item size times the step. Uniform leaves need only
 * the first. */
/* A virtual leaf's (IOTA's): `bl<l>` and `l<l>_<d>` count elements of its C-order
 * index space, whose strides lowering gives (vstride). */
static void virtual_setup(sbuf *b, const tj_group *gr, int l, int D) {
    const tj_leaf *lf = &gr->leaves[l];
    long long base = 0;
    for (int k = 0; k < TJ_MAXDIM; k++)
        base += (long long)lf->off[k] * (lf->flat ? k == 0 : (long long)lf->vstride[k]);
    put(b, "    const long long bl%d = %lldLL;\n", l, base);
    for (int d = 0; d < D && !lf->uniform; d++) {
        int m = gr->ndim ? lf->map[d] : -1;
        long long step = (long long)lf->step[d];
        put(b, "    const long long l%d_%d = %lldLL;\n", l, d,
            m == -2 ? step : m >= 0 ? step * (long long)lf->vstride[m] : 0);
    }
}

void tj_emit_iota_value(sbuf *b, const tj_leaf *lf, const char *offset) {
    if (lf->vmod > 0) put(b, "((%s) / %lldLL %% %lldLL)", offset, (long long)lf->vdiv, (long long)lf->vmod);
    else if (lf->vdiv != 1) put(b, "((%s) / %lldLL)", offset, (long long)lf->vdiv);
    else put(b, "(%s)", offset);
}

void tj_emit_leaf_setup(sbuf *b, const tj_graph *g, const tj_group *gr, int D) {
    for (int l = 0; l < gr->n_leaves; l++) {
        if (gr->leaves[l].slot < 0) {
            virtual_setup(b, gr, l, D);
            continue;
        }
        int slot = gr->leaves[l].slot, size = tj_dtype_size(g->nodes[gr->leaves[l].node].dtype);
        put(b, "    const char *bl%d = (const char *)P[%d]", l, slot);
        if (gr->leaves[l].flat && gr->leaves[l].off[0])
            put(b, " + %lldLL", (long long)(gr->leaves[l].off[0] * size));
        for (int k = 0; !gr->leaves[l].flat && k < TJ_MAXDIM; k++)
            if (gr->leaves[l].off[k]) put(b, " + %lldLL * S[%d][%d]", (long long)gr->leaves[l].off[k], slot, k);
        put(b, ";\n");
        if (gr->leaves[l].gather >= 0) {   /* the byte stride of the gathered dim */
            int m = gr->leaves[l].gsrc;
            long long step = (long long)gr->leaves[l].gstep;
            if (m == -2) put(b, "    const long long g%d = %lldLL;\n", l, step * size);
            else if (m >= 0) put(b, "    const long long g%d = %lldLL * S[%d][%d];\n", l, step, slot, m);
            else put(b, "    const long long g%d = 0;\n", l);
        }
        if (gr->leaves[l].uniform) continue;
        for (int d = 0; d < D; d++) {
            int m = gr->ndim ? gr->leaves[l].map[d] : -1;
            long long step = (long long)gr->leaves[l].step[d];
            if (m == -2)
                put(b, "    const long long l%d_%d = %lldLL;\n", l, d, step * size);
            else if (m >= 0 && step == 1)
                put(b, "    const long long l%d_%d = S[%d][%d];\n", l, d, slot, m);
            else if (m >= 0)
                put(b, "    const long long l%d_%d = %lldLL * S[%d][%d];\n", l, d, step, slot, m);
            else
                put(b, "    const long long l%d_%d = 0;\n", l, d);
        }
    }
}

/* A matrix-product group: GEMM calls over its batch dims (see fuse.c). */
static void emit_contraction(sbuf *b, const tj_graph *g, const tj_group *gr, int gi,
                             gstate *gs) {
    int D = gr->ndim, la = gr->mm_a, lb = gr->mm_b, mm = gr->mm_m, nn = gr->mm_n;
    char pn[32];
    if (gr->contract == TJ_CONTRACT_S8)   /* int8 factors, int32/int64 sums: qgemm.c */
        snprintf(pn, sizeof pn, "tj_gemm_s8s%s", g->nodes[gr->red].dtype == TJ_I64 ? "64" : "32");
    else
        snprintf(pn, sizeof pn, "tj_gemm_%s", tj_dtype_suffix(g->nodes[gr->red].dtype));
    declare_fn(gs, pn, "void %s(void *, long long, long long, const void *, long long, long long, "
                       "const void *, long long, long long, long long, long long, long long);\n");
    put(b, "\nstatic void tj_g%d(void **P, const long long **S, long long lo, long long hi) {\n", gi);
    tj_emit_leaf_setup(b, g, gr, D);
    for (int d = 0; d < D; d++) {
        if (gr->outs[0].map[d] >= 0)
            put(b, "    const long long o0_%d = S[%d][%d];\n", d, (int)gr->outs[0].slot, gr->outs[0].map[d]);
        else
            put(b, "    const long long o0_%d = 0;\n", d);
    }
    int depth = 1;
    for (int d = 0; d < D - 1; d++) {
        if (d == mm || d == nn) continue;
        put(b, "%*sfor (long long i%d = 0; i%d < %lldLL; i%d++) {\n", 4 * depth++, "", d, d,
            (long long)gr->shape[d], d);
    }
    int ind = 4 * depth;
    put(b, "%*sconst char *pa = bl%d", ind, "", la);
    for (int d = 0; d < D - 1; d++)
        if (d != mm && d != nn) put(b, " + i%d * l%d_%d", d, la, d);
    put(b, ";\n%*sconst char *pb = bl%d", ind, "", lb);
    for (int d = 0; d < D - 1; d++)
        if (d != mm && d != nn) put(b, " + i%d * l%d_%d", d, lb, d);
    put(b, ";\n%*schar *po = (char *)P[%d]", ind, "", (int)gr->outs[0].slot);
    for (int d = 0; d < D - 1; d++)
        if (d != mm && d != nn) put(b, " + i%d * o0_%d", d, d);
    put(b, ";\n");
    char sm[32] = "0", sn[32] = "0", am[32] = "0", bn[32] = "0";
    if (mm >= 0) { snprintf(sm, sizeof sm, "o0_%d", mm); snprintf(am, sizeof am, "l%d_%d", la, mm); }
    if (nn >= 0) { snprintf(sn, sizeof sn, "o0_%d", nn); snprintf(bn, sizeof bn, "l%d_%d", lb, nn); }
    put(b, "%*s%s(po, %s, %s, pa, %s, l%d_%d, pb, l%d_%d, %s, %lldLL, %lldLL, %lldLL);\n", ind, "",
        pn, sm, sn, am, la, D - 1, lb, D - 1, bn,
        (long long)(mm >= 0 ? gr->shape[mm] : 1), (long long)(nn >= 0 ? gr->shape[nn] : 1),
        (long long)gr->shape[D - 1]);
    for (int d = depth - 1; d >= 1; d--) put(b, "%*s}\n", 4 * d, "");
    put(b, "}\n");
}

/* What the runtime needs to know of a group to run it (and split it): the
 * generated table `tj_groups` holds the same, csrc/emit/emit.h's tj_gdesc. */
typedef struct { int64_t units, work, acc_n, acc_bytes; int par, edges, acc_slot; char comb[48]; } gdesc;

void tj_emit_out_stride(sbuf *b, const tj_group *gr, int o, int d) {
    if (gr->ndim && gr->outs[o].map[d] >= 0)
        put(b, "    const long long o%d_%d = S[%d][%d];\n", o, d, (int)gr->outs[o].slot,
            gr->outs[o].map[d]);
    else
        put(b, "    const long long o%d_%d = 0;\n", o, d);
}

/* Loop-invariant values (lowering's): one buffer each for the whole call, filled into
 * `pre` before the loop. Returns how many. */
static int emit_hoisted(sbuf *pre, const tj_graph *g, const tj_group *gr, gstate *gs) {
    int64_t nu = gr->loop.block;
    int n_ubufs = 0;
    for (int l = 0; l < gr->n_leaves; l++) {
        int32_t id = gr->leaves[l].node;
        if (!gs->uniform[id]) continue;
        int ub = n_ubufs++;
        const tj_leaf *lf = &gr->leaves[l];
        if (lf->slot < 0) {   /* a virtual leaf: its one value */
            declare_fn(gs, "tj_iota_i64", IOTA_PROTO);
            put(pre, "    tj_iota_i64(tju%d, bl%d, 0, %lldLL, %lldLL, %lld);\n", ub, l,
                (long long)lf->vdiv, (long long)lf->vmod, (long long)nu);
        } else {
            put(pre, "    tj_load_%s(tju%d, bl%d, 0, %lld);\n", tj_dtype_suffix(g->nodes[id].dtype),
                ub, l, (long long)nu);
        }
        gs->where[id] = ub;
    }
    for (int k = 0; k < gr->n_nodes; k++) {
        int32_t id = gr->nodes[k];
        if (!gs->uniform[id]) continue;
        const tj_node *n = &g->nodes[id];
        char pn[96];
        prim_name(pn, sizeof pn, g, n, gs->uniform);
        declare(gs, pn);
        int ub = n_ubufs++;
        put(pre, "    %s(tju%d", pn, ub);
        for (int a = 0; a < 3; a++) {
            if (a < tj_ops[n->op].arity) put(pre, ", tju%d", (int)gs->where[n->in[a]]);
            else put(pre, ", 0");
        }
        put(pre, ", %lld);\n", (long long)nu);
        gs->where[id] = ub;
    }
    return n_ubufs;
}

/* Each block's values of the leaves that vary: a pointer into the slot when the block
 * is contiguous there, else gathered into a block buffer; a virtual leaf's indices. */
static void emit_block_loads(sbuf *body, const tj_graph *g, const tj_group *gr, gstate *gs,
                             const char *blk) {
    int D = gr->loop.D, twod = gr->loop.twod, bd = gr->loop.bd;
    int64_t inner = gr->loop.inner;
    for (int l = 0; l < gr->n_leaves; l++) {
        int32_t id = gr->leaves[l].node;
        if (gs->uniform[id] || gr->leaves[l].gather >= 0) continue;
        int dt = g->nodes[id].dtype, bufi = take_buf(gs);
        const tj_leaf *lf = &gr->leaves[l];
        if (lf->slot < 0) {   /* a virtual leaf: the block's indices (never 2-D blocks) */
            declare_fn(gs, "tj_iota_i64", IOTA_PROTO);
            put(body, "            tj_iota_i64(tjb%d, pl%d + j * l%d_%d, l%d_%d, %lldLL, %lldLL, n);\n"
                      "            const void *v%d = tjb%d;\n", bufi, l, l, D - 1, l, D - 1,
                (long long)lf->vdiv, (long long)lf->vmod, (int)id, bufi);
            gs->where[id] = bufi;
            continue;
        }
        put(body, "            const char *a%d = pl%d + %s * l%d_%d;\n", l, l, blk, l, bd);
        if (twod)   /* rows of a strided or broadcast leaf are gathered into the block */
            put(body, "            const void *v%d = l%d_%d == %d && l%d_%d == %lldLL ? "
                      "(const void *)a%d : (tj_load2_%s(tjb%d, a%d, %lldLL, l%d_%d, l%d_%d, "
                      "rows), (const void *)tjb%d);\n",
                (int)id, l, D - 1, tj_dtype_size(dt), l, D - 2,
                (long long)(inner * tj_dtype_size(dt)), l, tj_dtype_suffix(dt), bufi, l,
                (long long)inner, l, D - 1, l, D - 2, bufi);
        else
            put(body, "            const void *v%d = l%d_%d == %d ? (const void *)a%d : "
                      "(tj_load_%s(tjb%d, a%d, l%d_%d, n), (const void *)tjb%d);\n",
                (int)id, l, D - 1, tj_dtype_size(dt), l, tj_dtype_suffix(dt), bufi, l, l, D - 1,
                bufi);
        gs->where[id] = bufi;
    }
}

/* A GATHER node k (output `out`, or -1; `scatter`: stored with the output's stride): its
 * data leaf read in place at the positions its index operand gives. */
static void emit_gather(sbuf *body, const tj_graph *g, const tj_schedule *s, const tj_group *gr,
                        gstate *gs, int k, int out, int scatter, const char *blk) {
    int D = gr->loop.D, bd = gr->loop.bd;
    int32_t id = gr->nodes[k];
    const tj_node *n = &g->nodes[id];
    char pn[96];
    int dim = (int)n->axes + (gr->ndim - n->ndim), l = 0;
    while (l < gr->n_leaves &&
           !(gr->leaves[l].node == n->in[0] && gr->leaves[l].gather == dim)) l++;
    snprintf(pn, sizeof pn, "tj_gather_%s", tj_dtype_suffix(n->dtype));
    declare_fn(gs, pn, "void %s(void *, const char *, long long, long long, long long, "
                       "const long long *, long long, long long *, long long);\n");
    int bufi = out >= 0 && !scatter ? -1 : take_buf(gs);
    if (bufi < 0)
        put(body, "            void *v%d = po%d + %s * o%d_%d;\n", (int)id, out, blk, out, bd);
    else
        put(body, "            void *v%d = tjb%d;\n", (int)id, bufi);
    int32_t ix = n->in[1];
    char ixs[32];
    snprintf(ixs, sizeof ixs, gs->uniform[ix] ? "tju%d" : "v%d",
             gs->uniform[ix] ? (int)gs->where[ix] : (int)ix);
    put(body, "            %s(v%d, pl%d + j * l%d_%d, l%d_%d, g%d, %lldLL, %s, n, "
              "(long long *)P[%d], %lldLL);\n",
        pn, (int)id, l, l, D - 1, l, D - 1, l, (long long)gr->leaves[l].glen, ixs,
        s->n_slots, (long long)n->value.i);
    if (scatter)
        put(body, "            tj_store_%s(po%d + j * o%d_%d, v%d, o%d_%d, n);\n",
            tj_dtype_suffix(n->dtype), out, out, D - 1, (int)id, out, D - 1);
    gs->where[id] = bufi;
    if (!gs->uniform[ix] && gs->last_use[ix] == k && gs->where[ix] >= 0) {
        gs->free_bufs[gs->n_free++] = gs->where[ix];
        gs->where[ix] = -1;
    }
}

/* Each block's nodes: one primitive call each, into an output's block or a buffer that
 * goes back when its value's last use has read it. */
static void emit_block_nodes(sbuf *body, const tj_graph *g, const tj_schedule *s,
                             const tj_group *gr, gstate *gs, const char *blk) {
    int D = gr->loop.D, twod = gr->loop.twod, bd = gr->loop.bd;
    const int64_t *shape = gr->loop.shape;
    for (int k = 0; k < gr->n_nodes; k++) {
        int32_t id = gr->nodes[k];
        const tj_node *n = &g->nodes[id];
        int out = -1;
        for (int o = 0; o < gr->n_outs; o++)
            if (gr->outs[o].node == id) out = o;
        /* A concatenation's part may be strided along the loop's inner dim: it is
         * computed into a block buffer and stored with the output's stride. */
        int scatter = out >= 0 && gr->cat >= 0;
        if (gs->uniform[id]) {
            if (out >= 0 && scatter)
                put(body, "            tj_store_%s(po%d + j * o%d_%d, tju%d, o%d_%d, n);\n",
                    tj_dtype_suffix(n->dtype), out, out, D - 1, (int)gs->where[id], out, D - 1);
            else if (out >= 0)
                put(body, "            tj_load_%s(po%d + %s * o%d_%d, (const char *)tju%d, 0, n);\n",
                    tj_dtype_suffix(n->dtype), out, blk, out, bd, (int)gs->where[id]);
            continue;
        }
        char pn[96];
        if (tj_ops[n->op].kind == TJ_K_RED) {
            emit_accumulate(body, g, gr, gs, n, shape, D, twod);
            continue;
        }
        if (tj_ops[n->op].kind == TJ_K_SCAN) {
            emit_scan(body, g, gr, gs, n, D);
            continue;
        }
        if (n->op == TJ_OP_GATHER) {
            emit_gather(body, g, s, gr, gs, k, out, scatter, blk);
            continue;
        }
        prim_name(pn, sizeof pn, g, n, gs->uniform);
        declare(gs, pn);
        int bufi = -1;
        if (out >= 0 && !scatter) {
            put(body, "            void *v%d = po%d + %s * o%d_%d;\n", (int)id, out, blk, out, bd);
        } else {
            bufi = take_buf(gs);
            put(body, "            void *v%d = tjb%d;\n", (int)id, bufi);
        }
        put(body, "            %s(v%d", pn, (int)id);
        for (int a = 0; a < 3; a++) {
            if (a >= tj_ops[n->op].arity) { put(body, ", 0"); continue; }
            int32_t x = n->in[a];
            if (gs->uniform[x]) put(body, ", tju%d", (int)gs->where[x]);
            else put(body, ", v%d", (int)x);
        }
        put(body, ", n);\n");
        if (scatter)
            put(body, "            tj_store_%s(po%d + j * o%d_%d, v%d, o%d_%d, n);\n",
                tj_dtype_suffix(n->dtype), out, out, D - 1, (int)id, out, D - 1);
        gs->where[id] = bufi;
        /* Operands whose last use this was give their buffers back (after the result
         * took its own, so a call never writes a buffer it reads). */
        for (int a = 0; a < tj_ops[n->op].arity; a++) {
            int32_t x = n->in[a];
            int dup = 0;
            for (int c = 0; c < a; c++) dup |= n->in[c] == x;
            if (dup || gs->uniform[x] || gs->last_use[x] != k || gs->where[x] < 0) continue;
            gs->free_bufs[gs->n_free++] = gs->where[x];
            gs->where[x] = -1;
        }
    }

}

/* The function's buffers, the hoisted values, and the loop nest around the blocks. */
static void emit_nest(sbuf *b, const tj_graph *g, const tj_group *gr, const gstate *gs,
                      int n_ubufs, const sbuf *pre, const sbuf *body, const char *blk) {
    int D = gr->loop.D, twod = gr->loop.twod, bd = gr->loop.bd;
    const int64_t *shape = gr->loop.shape;
    int64_t inner = gr->loop.inner, rows = gr->loop.rows;
    for (int u = 0; u < n_ubufs; u++) put(b, "    double tju%d[%d];\n", u, TJ_BLOCK);
    for (int k = 0; k < gs->n_bufs; k++) put(b, "    double tjb%d[%d];\n", k, TJ_BLOCK);
    if (pre->buf) put(b, "%s", pre->buf);
    for (int d = 0; d < bd; d++)
        if (d == 0)
            put(b, "    for (long long i0 = lo; i0 < hi; i0++) {\n");
        else
            put(b, "%*sfor (long long i%d = 0; i%d < %lldLL; i%d++) {\n", 4 * (d + 1), "", d, d,
                (long long)shape[d], d);
    int ind = 4 * (bd + 1);
    for (int l = 0; l < gr->n_leaves; l++) {
        if (gs->uniform[gr->leaves[l].node]) continue;
        put(b, gr->leaves[l].slot < 0 ? "%*sconst long long pl%d = bl%d" : "%*sconst char *pl%d = bl%d",
            ind, "", l, l);
        for (int d = 0; d < bd; d++) put(b, " + i%d * l%d_%d", d, l, d);
        put(b, ";\n");
    }
    for (int o = 0; o < gr->n_outs; o++) {
        put(b, "%*schar *po%d = (char *)P[%d]", ind, "", o, (int)gr->outs[o].slot);
        if (gr->cat >= 0 && gr->cat_off)   /* a part: its region of the concatenation */
            put(b, " + %lldLL * S[%d][%d]", (long long)gr->cat_off, (int)gr->outs[o].slot,
                (int)g->nodes[gr->cat].axes);
        for (int d = 0; d < bd; d++) put(b, " + i%d * o%d_%d", d, o, d);
        put(b, ";\n");
        if (gr->red < 0 || o) continue;
        put(b, "%*schar *pc%d = (char *)P[%d]", ind, "", o, (int)gr->acc_slot);
        for (int d = 0; d < bd; d++) put(b, " + i%d * c%d_%d", d, o, d);
        put(b, ";\n");
    }
    if (twod) {
        long long R = (long long)rows, S2 = (long long)shape[D - 2];
        if (bd == 0)
            put(b, "%*sfor (long long %s = lo * %lldLL; %s < hi * %lldLL && %s < %lldLL; %s += %lld) {\n",
                ind, "", blk, R, blk, R, blk, S2, blk, R);
        else
            put(b, "%*sfor (long long %s = 0; %s < %lldLL; %s += %lld) {\n", ind, "", blk, blk, S2,
                blk, R);
        put(b, "%*s    long long rows = %lldLL - %s < %lld ? %lldLL - %s : %lld;\n", ind, "", S2,
            blk, R, S2, blk, R);
        put(b, "%*s    long long n = rows * %lldLL;\n", ind, "", (long long)inner);
    } else {
        if (bd == 0)
            put(b, "%*sfor (long long j = lo * %dLL; j < hi * %dLL && j < %lldLL; j += %d) {\n", ind,
                "", TJ_BLOCK, TJ_BLOCK, (long long)inner, TJ_BLOCK);
        else
            put(b, "%*sfor (long long j = 0; j < %lldLL; j += %d) {\n", ind, "", (long long)inner,
                TJ_BLOCK);
        put(b, "%*s    long long n = %lldLL - j < %d ? %lldLL - j : %d;\n", ind, "",
            (long long)inner, TJ_BLOCK, (long long)inner, TJ_BLOCK);
    }
    if (body->buf) put(b, "%s", body->buf);
    put(b, "%*s}\n", ind, "");
    for (int d = bd - 1; d >= 0; d--) put(b, "%*s}\n", 4 * (d + 1), "");
    put(b, "}\n");
}

static void emit_group(sbuf *b, const tj_graph *g, const tj_schedule *s, int gi, gstate *gs,
                       gdesc *gd) {
    const tj_group *gr = &s->groups[gi];
    const tj_loop *q = &gr->loop;
    gd->units = q->units;
    if (gr->contract) {
        emit_contraction(b, g, gr, gi, gs);
        return;
    }
    int D = q->D;
    char blk[16];   /* the blocked loop's index: j, or the row dim's with 2-D blocks */
    snprintf(blk, sizeof blk, q->twod ? "i%d" : "j", D - 2);
    gd->work = q->work;
    gd->par = q->par;
    if (q->chunked) {   /* the runtime reduces chunks of units into parts, folded in order */
        const tj_node *rn = &g->nodes[gr->red];
        gd->acc_slot = (int)gr->acc_slot;
        gd->acc_n = q->acc_n;
        gd->acc_bytes = q->acc_n * tj_dtype_size(q->acc_dtype);
        snprintf(gd->comb, sizeof gd->comb, "tj_rv_%s_%s", tj_ops[rn->op].name,
                 tj_dtype_suffix(q->acc_dtype));
        declare_fn(gs, gd->comb, "void %s(void *, void *, const void *, long long, long long);\n");
    }
    if (gr->red >= 0) {   /* accumulators to the identity before the loop, results after */
        put(b, "\nstatic void tj_g%di(void **P, const long long **S) {\n", gi);
        emit_reduction_edges(b, g, gr, gs, 0);
        put(b, "}\n\nstatic void tj_g%df(void **P, const long long **S) {\n", gi);
        emit_reduction_edges(b, g, gr, gs, 1);
        put(b, "}\n");
        gd->edges = 1;
    }
    put(b, "\nstatic void tj_g%d(void **P, const long long **S, long long lo, long long hi) {\n", gi);
    if (q->total == 0) {
        put(b, "}\n");
        return;
    }

    /* Positions: leaves at -1 (loaded at block start), nodes in order 0.. */
    for (int l = 0; l < gr->n_leaves; l++) {
        gs->last_use[gr->leaves[l].node] = -1;
        gs->uniform[gr->leaves[l].node] = gr->leaves[l].uniform;
    }
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *n = &g->nodes[gr->nodes[k]];
        for (int a = 0; a < tj_ops[n->op].arity; a++) gs->last_use[n->in[a]] = k;
        gs->uniform[gr->nodes[k]] = gr->uniform[k];
        gs->last_use[gr->nodes[k]] = k;
    }
    for (int o = 0; o < gr->n_outs; o++) gs->last_use[gr->outs[o].node] = gr->n_nodes;

    gs->n_free = 0;
    gs->n_bufs = 0;
    sbuf pre = {0}, body = {0};
    int n_ubufs = emit_hoisted(&pre, g, gr, gs);
    tj_emit_leaf_setup(b, g, gr, D);
    for (int o = 0; o < gr->n_outs; o++)
        for (int d = 0; d < D; d++) {
            tj_emit_out_stride(b, gr, o, d);
            if (gr->red < 0 || o) continue;   /* the accumulator: the result's shape and map */
            int cm = is_scan(g, gr) ? gr->amap[d] : gr->outs[o].map[d];   /* a scan's: amap */
            if (gr->ndim && cm >= 0)
                put(b, "    const long long c%d_%d = S[%d][%d];\n", o, d, (int)gr->acc_slot, cm);
            else
                put(b, "    const long long c%d_%d = 0;\n", o, d);
        }

    /* Loop body. Block buffers are numbered after the uniform ones. */
    emit_block_loads(&body, g, gr, gs, blk);
    emit_block_nodes(&body, g, s, gr, gs, blk);
    emit_nest(b, g, gr, gs, n_ubufs, &pre, &body, blk);
    if (pre.failed || body.failed) b->failed = 1;
    free(pre.buf);
    free(body.buf);
}

int tj_emit_c_source(const tj_graph *g, const tj_schedule *s, tj_sbuf *out, tj_error *err) {
    sbuf b = {0};
    int32_t n = g->n ? g->n : 1;
    gstate gs = {0};
    gs.where = malloc((size_t)n * sizeof(int32_t));
    gs.last_use = malloc((size_t)n * sizeof(int32_t));
    gs.uniform = calloc((size_t)n, 1);
    gs.free_bufs = malloc((size_t)(2 * n + 4) * sizeof(int));
    sbuf decls = {0}, body = {0}, table = {0};
    gs.decls = &decls;
    gs.names = malloc((size_t)(TJ_NOPS + 8) * TJ_NDTYPES * TJ_NDTYPES * sizeof *gs.names);
    int rc = -1;
    if (!gs.where || !gs.last_use || !gs.uniform || !gs.free_bufs || !gs.names) {
        tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
        goto done;
    }
    put(&b, "/* generated by tracejit: %d group(s) */\n", s->n_groups);
    put(&b, "typedef void tj_prim(void *, const void *, const void *, const void *, long long);\n");
    for (int dt = 0; dt < TJ_NDTYPES; dt++)
        put(&b, "void tj_load_%s(void *, const char *, long long, long long);\n"
                "void tj_load2_%s(void *, const char *, long long, long long, long long, "
                "long long);\n"
                "void tj_store_%s(char *, const void *, long long, long long);\n",
            tj_dtype_suffix(dt), tj_dtype_suffix(dt), tj_dtype_suffix(dt));
    for (int32_t i = 0; i < n; i++) gs.where[i] = -1;
    for (int gi = 0; gi < s->n_groups; gi++) {
        gdesc gd = {0};
        emit_group(&body, g, s, gi, &gs, &gd);
        const tj_group *gr = &s->groups[gi];   /* -1 again where this group set it (not */
        for (int k = 0; k < gr->n_nodes; k++)  /* all n per group: O(n^2) at 10^4 row writes) */
            gs.where[gr->nodes[k]] = -1;
        for (int l = 0; l < gr->n_leaves; l++) gs.where[gr->leaves[l].node] = -1;
        put(&table, "    {%s%d%s, tj_g%d, %s%d%s, %lldLL, %lldLL, %d, %d, %lldLL, %lldLL, %s},\n",
            gd.edges ? "tj_g" : "", gd.edges ? gi : 0, gd.edges ? "i" : "", gi,
            gd.edges ? "tj_g" : "", gd.edges ? gi : 0, gd.edges ? "f" : "",
            (long long)gd.units, (long long)gd.work, gd.par, gd.acc_slot, (long long)gd.acc_n,
            (long long)gd.acc_bytes, gd.comb[0] ? gd.comb : "0");
    }
    put(&b, "%s%s", decls.buf ? decls.buf : "", body.buf ? body.buf : "");
    if (decls.failed || body.failed || table.failed) b.failed = 1;
    /* the runtime runs the groups in order from this table (csrc/runtime.c) */
    put(&b, "\nconst struct {\n    void (*init)(void **, const long long **);\n"
            "    void (*body)(void **, const long long **, long long, long long);\n"
            "    void (*fin)(void **, const long long **);\n"
            "    long long units, work;\n    int par, acc_slot;\n    long long acc_n, acc_bytes;\n"
            "    void (*comb)(void *, void *, const void *, long long, long long);\n"
            "} tj_groups[%d] = {\n%s};\n",
        s->n_groups ? s->n_groups : 1,
        s->n_groups ? table.buf : "    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0},\n");
    if (b.failed) {
        tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
        goto done;
    }
    *out = b;
    b.buf = NULL;
    rc = 0;
done:
    free(b.buf);
    free(gs.where);
    free(gs.last_use);
    free(gs.uniform);
    free(gs.free_bufs);
    free(gs.names);
    free(decls.buf);
    free(body.buf);
    free(table.buf);
    return rc;
}
