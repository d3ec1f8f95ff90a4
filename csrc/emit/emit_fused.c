/* The optimizing tier's generator. TinyCC's kernel (emit_c.c) runs each op as one
 * primitive call over a block, values passing through L1 block buffers; that is fast
 * to compile but pays a load and a store per op and element. For the system C
 * compiler (csrc/backend/tier.c) this emits each elementwise group as one loop nest whose
 * innermost loop computes every node of an element in registers: gcc vectorizes it
 * for the running CPU (-O3 -march=native).
 * Requires: a lowered schedule (csrc/fuse/lower.c: the loop nest, the units, the
 * invariant values, which groups fuse). Guarantees: a fused body has the signature,
 * the outer-loop units and the splitting rules of the TinyCC group it replaces, and
 * computes every element with the same per-element helpers (csrc/emit/prims.c
 * compiled with TJ_ELEM_ONLY), so results agree with TinyCC's (bit for bit for
 * arithmetic; within the functions' accuracy where gcc picks another vector width of
 * a libmvec function). A sum, product, max or min group folds each element into its
 * accumulator in the same loop (see `fold`). Groups lowering does not fuse
 * (argmax/argmin, scans, gathers, ...: lower.c's `fusable`) are NULL in tj_fused:
 * TinyCC's body stays. */
#include "emit/emit.h"
#include <stdio.h>

typedef tj_sbuf sbuf;
#define put tj_put

static const char *ctype(int dt) {
    return tj_dtype_stdtype(dt);
}

/* The element type a contiguous loop's pointers read and write: bool's bytes as
 * uint8_t (converted to and from bool by C's rules, so the values are the same), since
 * gcc vectorizes no loop that loads or stores a bool (measured: attention's causal
 * mask, np.where over a bool capture, scalar with a branch per element) */
static const char *mtype(int dt) {
    return dt == TJ_BOOL ? "uint8_t" : tj_dtype_stdtype(dt);
}

/* x ** e for a constant e, as tj_p_POWS/POWSF compute it (csrc/emit/prims.c). */
static void put_pow(sbuf *b, const tj_node *n, int32_t a, double e) {
    int f32 = n->dtype == TJ_F32;
    if (n->axes && e == 0.5) {   /* ndarray.__pow__'s sqrt shortcut */
        put(b, "%s(x%d)", f32 ? "sqrtf" : "sqrt", (int)a);
        return;
    }
    if ((n->axes && e == 2.0) || (!f32 && e == 2.0)) {
        put(b, "(x%d * x%d)", (int)a, (int)a);
        return;
    }
    if (f32 && e == (double)(int)e && e >= -64 && e <= 64) {
        /* repeated squaring in double, exact before the final rounding */
        int k = (int)(e < 0 ? -e : e);
        put(b, "({ double r_ = 1.0, p_ = x%d; ", (int)a);
        for (; k; k >>= 1) {
            if (k & 1) put(b, "r_ *= p_; ");
            if (k > 1) put(b, "p_ *= p_; ");
        }
        put(b, e < 0 ? "(float)(1.0 / r_); })" : "(float)r_; })");
        return;
    }
    put(b, "%s(x%d, (%s)%.17g)", f32 ? "powf" : "pow", (int)a, ctype(n->dtype), e);
}

void tj_emit_elem_node(sbuf *b, const tj_graph *g, const tj_node *n) {
    int32_t id = (int32_t)(n - g->nodes);
    int ldt = tj_node_loop_dtype(g, n);
    put(b, "%s x%d = ", ctype(n->dtype), (int)id);
    double e;
    if (n->op == TJ_OP_CAST) {
        put(b, "tj_cast_%s_%s(x%d);\n", tj_dtype_suffix(g->nodes[n->in[0]].dtype),
            tj_dtype_suffix(n->dtype), (int)n->in[0]);
        return;
    }
    if (n->op == TJ_OP_POW && n->dtype >= TJ_F32 && tj_pow_const(g, n, &e) == 0) {
        put_pow(b, n, n->in[0], e);
        put(b, ";\n");
        return;
    }
    put(b, "tj_e_%s_%s(", tj_ops[n->op].name, tj_dtype_suffix(ldt));
    for (int a = 0; a < tj_ops[n->op].arity; a++) put(b, a ? ", x%d" : "x%d", (int)n->in[a]);
    put(b, ");\n");
}

/* A reduction group's fold, as csrc/emit/reduce_prims.c's primitives compute it (the
 * accumulator `pc` is P[acc_slot] at call time plus the kept dims' offsets, in the
 * accumulation dtype). Vertical (the inner dim kept): acc[e] op= x, each element
 * receiving the rows in TinyCC's order, so results are bitwise its. Horizontal (the
 * inner dim reduced): a partial per block of the inner dim -- per row, when rows are
 * short -- that gcc may vectorize (reassociating within the block, as tj_rh_ does),
 * then folded into the accumulator. max/min: NaN as tj_rh_/tj_rv_ treat it. */
typedef struct {
    int op, comb, horizontal, flt, simd;   /* comb: the fold column's combiner */
    int32_t x;               /* the operand */
    const char *A, *T;       /* accumulator and operand C types */
} fold;

static void fold_init(fold *f, const tj_graph *g, const tj_group *gr, int D) {
    const tj_node *r = &g->nodes[gr->red];
    int dt = g->nodes[r->in[0]].dtype;
    f->op = r->op;
    f->comb = tj_ops[r->op].comb;
    f->x = r->in[0];
    f->horizontal = gr->loop.horizontal;
    f->flt = dt >= TJ_F32;
    f->simd = tj_red_acc_dtype(r->op, dt) != TJ_BOOL;   /* no omp simd reduction on bool */
    f->A = ctype(tj_red_acc_dtype(r->op, dt));
    f->T = ctype(dt);
}

static int is_extreme(const fold *f) { return f->comb == TJ_OP_MAX || f->comb == TJ_OP_MIN; }

static char opr(const fold *f) { return f->comb == TJ_OP_ADD ? '+' : '*'; }   /* sum, product */

/* Before a horizontal block's loop: its partial; `pass` 0 (contiguous) may vectorize. */
static void fold_block_open(sbuf *b, const fold *f, int ind, int pass) {
    if (is_extreme(f)) {
        put(b, "%*s%s m_ = *(%s *)pc;\n", ind, "", f->T, f->T);
        if (f->flt) put(b, "%*sint nan_ = m_ != m_;\n", ind, "");
    } else {
        put(b, "%*s%s r_ = (%s)%d;\n", ind, "", f->A, f->A,
            tj_ops[f->op].ident == TJ_ID_ONE);
    }
    if (pass || !f->simd) return;
    if (is_extreme(f))
        put(b, "#pragma omp simd reduction(%s:m_)%s\n", f->comb == TJ_OP_MAX ? "max" : "min",
            f->flt ? " reduction(|:nan_)" : "");
    else
        put(b, "#pragma omp simd reduction(%c:r_)\n", opr(f));
}

static void fold_block_close(sbuf *b, const fold *f, int ind) {
    if (is_extreme(f) && f->flt)
        put(b, "%*s*(%s *)pc = nan_ ? (%s)NAN : m_;\n", ind, "", f->T, f->T);
    else if (is_extreme(f))
        put(b, "%*s*(%s *)pc = m_;\n", ind, "", f->T);
    else
        put(b, "%*s*(%s *)pc = *(%s *)pc %c r_;\n", ind, "", f->A, f->A, opr(f));
}

/* One element into the fold: `acc` names the vertical accumulator element. */
static void fold_element(sbuf *b, const fold *f, int ind, const char *acc) {
    int x = (int)f->x;
    const char *cmp = f->comb == TJ_OP_MAX ? ">" : "<";
    if (f->horizontal && is_extreme(f)) {
        if (f->flt) put(b, "%*snan_ |= x%d != x%d;\n", ind, "", x, x);
        put(b, "%*sm_ = x%d %s m_ ? x%d : m_;\n", ind, "", x, cmp, x);
    } else if (f->horizontal) {
        put(b, "%*sr_ = r_ %c (%s)x%d;\n", ind, "", opr(f), f->A, x);
    } else if (is_extreme(f)) {
        put(b, "%*s{ const %s m_ = %s; ", ind, "", f->T, acc);
        if (f->flt) put(b, "%s = (((x%d %s m_) | (x%d != x%d)) & (m_ == m_)) ? x%d : m_; }\n",
                        acc, x, cmp, x, x, x);
        else put(b, "%s = x%d %s m_ ? x%d : m_; }\n", acc, x, cmp, x);
    } else {
        put(b, "%*s%s = %s %c (%s)x%d;\n", ind, "", acc, acc, opr(f), f->A, x);
    }
}

/* Column sums of short rows (lowering's `cols`: a vertical fold over the rows of a 2-D
 * group whose rows TinyCC takes in blocks): per tile of rows and chunk of columns the
 * accumulators stay in registers while the rows go by, in order, so each accumulator
 * element still receives its rows in TinyCC's order (bitwise its results). Emitted
 * before the general nest, for the contiguous case only; it returns when it ran. */
#define TJ_COLS_CHUNK 32         /* columns per chunk (accumulators held) */
#define TJ_COLS_TILE 2048        /* elements per tile of rows (L1-resident inputs) */

static void emit_cols_chunk(sbuf *b, const tj_graph *g, const tj_group *gr, const uint8_t *uni,
                            const fold *f, int w, int ind) {
    put(b, "%*s%s a_[%d];\n", ind, "", f->A, w);
    put(b, "%*sfor (int k = 0; k < %d; k++) a_[k] = ra[j0 + k];\n", ind, "", w);
    put(b, "%*sfor (long long i0 = t0; i0 < t1; i0++) {\n", ind, "");
    int in = ind + 4;
    for (int l = 0; l < gr->n_leaves; l++) {
        int32_t id = gr->leaves[l].node;
        const char *t = ctype(g->nodes[id].dtype);
        if (uni[id]) continue;
        if (gr->leaves[l].row)   /* broadcast along the row: one load per row */
            put(b, "%*sconst %s x%d = *(const %s *)(bl%d + i0 * l%d_0);\n", in, "", t, (int)id,
                t, l, l);
        else
            put(b, "%*sconst %s *restrict q%d = (const %s *)(bl%d + i0 * l%d_0) + j0;\n", in, "",
                mtype(g->nodes[id].dtype), l, mtype(g->nodes[id].dtype), l, l);
    }
    for (int o = 1; o < gr->n_outs; o++) {
        const char *t = mtype(g->nodes[gr->outs[o].node].dtype);
        put(b, "%*s%s *restrict r%d = (%s *)((char *)P[%d] + i0 * o%d_0) + j0;\n", in, "", t, o,
            t, (int)gr->outs[o].slot, o);
    }
    put(b, "%*sfor (int k = 0; k < %d; k++) {\n", in, "", w);
    for (int l = 0; l < gr->n_leaves; l++) {
        int32_t id = gr->leaves[l].node;
        if (!uni[id] && !gr->leaves[l].row)
            put(b, "%*s    const %s x%d = q%d[k];\n", in, "", ctype(g->nodes[id].dtype), (int)id, l);
    }
    for (int k = 0; k < gr->n_nodes; k++) {
        if (uni[gr->nodes[k]] || gr->nodes[k] == gr->red) continue;
        put(b, "%*s    ", in, "");
        tj_emit_elem_node(b, g, &g->nodes[gr->nodes[k]]);
    }
    for (int o = 1; o < gr->n_outs; o++) put(b, "%*s    r%d[k] = x%d;\n", in, "", o, (int)gr->outs[o].node);
    fold_element(b, f, in + 4, "a_[k]");
    put(b, "%*s}\n%*s}\n", in, "", ind, "");
    put(b, "%*sfor (int k = 0; k < %d; k++) ra[j0 + k] = a_[k];\n", ind, "", w);
}

static void emit_cols(sbuf *b, const tj_graph *g, const tj_group *gr, const tj_loop *q,
                      const uint8_t *uni, const fold *f) {
    long long inner = (long long)q->inner, R = (long long)q->rows, S0 = (long long)q->shape[0];
    long long tile = TJ_COLS_TILE / inner > 1 ? TJ_COLS_TILE / inner : 1;
    long long full = inner / TJ_COLS_CHUNK * TJ_COLS_CHUNK;
    put(b, "    if (1");
    for (int l = 0; l < gr->n_leaves; l++)
        if (!uni[gr->leaves[l].node] && !gr->leaves[l].row)
            put(b, " && l%d_1 == %d", l, tj_dtype_size(g->nodes[gr->leaves[l].node].dtype));
    for (int o = 1; o < gr->n_outs; o++)
        put(b, " && o%d_1 == %d", o, tj_dtype_size(g->nodes[gr->outs[o].node].dtype));
    put(b, " && c_1 == (long long)sizeof(%s)) {\n", f->A);
    put(b, "        %s *restrict ra = (%s *)P[%d];\n", f->A, f->A, (int)gr->acc_slot);
    put(b, "        const long long r1 = hi * %lldLL < %lldLL ? hi * %lldLL : %lldLL;\n", R, S0, R, S0);
    put(b, "        for (long long t0 = lo * %lldLL; t0 < r1; t0 += %lld) {\n", R, tile);
    put(b, "            const long long t1 = t0 + %lld < r1 ? t0 + %lld : r1;\n", tile, tile);
    if (full) {
        put(b, "            for (long long j0 = 0; j0 < %lldLL; j0 += %d) {\n", full, TJ_COLS_CHUNK);
        emit_cols_chunk(b, g, gr, uni, f, TJ_COLS_CHUNK, 16);
        put(b, "            }\n");
    }
    if (inner > full) {
        put(b, "            {\n                const long long j0 = %lldLL;\n", full);
        emit_cols_chunk(b, g, gr, uni, f, (int)(inner - full), 16);
        put(b, "            }\n");
    }
    put(b, "        }\n        return;\n    }\n");
}

/* `const T x<id> = ...;`: leaf l's element at `at` (a pointer; for a virtual leaf an
 * element offset, whose index it spells). */
static void put_leaf(sbuf *b, const tj_graph *g, const tj_group *gr, int l, int ind,
                     const char *at) {
    const tj_leaf *lf = &gr->leaves[l];
    const char *t = ctype(g->nodes[lf->node].dtype);
    put(b, "%*sconst %s x%d = ", ind, "", t, (int)lf->node);
    if (lf->slot < 0) tj_emit_iota_value(b, lf, at);
    else put(b, "*(const %s *)%s", t, at);
    put(b, ";\n");
}

/* Whether node k of gr is a draw its tiles fill (lowering's tj_loop.draws). */
static int tiled_draw(const tj_graph *g, const tj_group *gr, int k) {
    return gr->loop.draws && (tj_ops[g->nodes[gr->nodes[k]].op].flags & TJ_F_DRAW) &&
           !gr->uniform[k];
}

/* A tile of draws (lowering's tj_loop.draws): the element loop runs over [t0, t1), and
 * before it each draw's fill writes its values at the counters of t0, t0 + 1, ... into
 * d<id> (lowering proved them the counters of those elements); the counters at e = t0
 * are computed as the loop computes them (the index leaves, then the draws' ADDs). */
static void draw_tile_open(sbuf *b, const tj_graph *g, const tj_group *gr, const uint8_t *uni,
                           int ind) {
    int D = gr->loop.D, T = gr->loop.draws;
    put(b, "%*sfor (long long t0 = e0; t0 < e1; t0 += %d) {\n", ind, "", T);
    put(b, "%*s    const long long t1 = t0 + %d < e1 ? t0 + %d : e1;\n", ind, "", T, T);
    for (int k = 0; k < gr->n_nodes; k++)
        if (tiled_draw(g, gr, k))
            put(b, "%*s    %s d%d[%d];\n", ind, "", ctype(g->nodes[gr->nodes[k]].dtype),
                (int)gr->nodes[k], T);
    put(b, "%*s    {\n%*s        const long long e = t0;\n", ind, "", ind, "");
    for (int l = 0; l < gr->n_leaves; l++) {
        if (gr->leaves[l].slot >= 0 || uni[gr->leaves[l].node]) continue;
        char at[64];
        snprintf(at, sizeof at, "pl%d + e * l%d_%d", l, l, D - 1);
        put_leaf(b, g, gr, l, ind + 8, at);
    }
    for (int k = 0; k < gr->n_nodes; k++) {   /* the draws' counters (ADDs), in order */
        int ctr = 0;
        for (int j = k + 1; j < gr->n_nodes; j++)
            ctr |= tiled_draw(g, gr, j) && g->nodes[gr->nodes[j]].in[1] == gr->nodes[k];
        if (!ctr || uni[gr->nodes[k]]) continue;
        put(b, "%*s        ", ind, "");
        tj_emit_elem_node(b, g, &g->nodes[gr->nodes[k]]);
    }
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *n = &g->nodes[gr->nodes[k]];
        if (tiled_draw(g, gr, k))
            put(b, "%*s        tj_fill_%s(d%d, x%d, x%d, t1 - t0);\n", ind, "", tj_ops[n->op].name,
                (int)gr->nodes[k], (int)n->in[0], (int)n->in[1]);
    }
    put(b, "%*s    }\n", ind, "");
    put(b, "%*s    for (long long e = t0; e < t1; e++) {\n", ind, "");
}

/* Whether n is a sin or cos, whose vector function leaves huge arguments to libm
 * (vmath.h's fixup). */
static int is_trig(const tj_node *n) {
    return n->op == TJ_OP_SIN || n->op == TJ_OP_COS;
}

/* After sin or cos node n (emitted as the vector function computes it): trig 1 notes in
 * the element's hh_ an argument left to libm, trig 2 replaces the value by libm's there
 * (vmath.h's tj_trig_exact: the fixup's values, so the loop agrees with TinyCC's blocks
 * bit for bit). */
static void put_trig(sbuf *b, const tj_node *n, int32_t id, int trig, int ind) {
    const char *f = n->dtype == TJ_F32 ? "f" : "";
    if (trig == 1) put(b, "%*shh_ |= tj_trig_huge_bits%s(x%d);\n", ind, "", f, (int)n->in[0]);
    else put(b, "%*sx%d = tj_trig_exact%s(x%d, x%d, %d);\n", ind, "", (int)id, f, (int)n->in[0],
             (int)id, n->op == TJ_OP_SIN ? 1 : 2);
}

/* An element's loads in the loop (not the loop-invariant leaves): pass 0 through the q
 * pointers, pass 1 at its byte stride; a virtual leaf computed (put_leaf). */
static void put_element_loads(sbuf *b, const tj_graph *g, const tj_group *gr,
                              const uint8_t *uni, int in, int pass) {
    int D = gr->loop.D;
    for (int l = 0; l < gr->n_leaves; l++) {
        int32_t id = gr->leaves[l].node;
        if (uni[id]) continue;
        const char *t = ctype(g->nodes[id].dtype);
        char at[64];
        snprintf(at, sizeof at, "pl%d + e * l%d_%d", l, l, D - 1);
        if (gr->leaves[l].slot < 0) put_leaf(b, g, gr, l, in + 4, at);
        else if (!pass) put(b, "%*s    const %s x%d = q%d[e];\n", in, "", t, (int)id, l);
        else put(b, "%*s    const %s x%d = *(const %s *)(pl%d + e * l%d_%d);\n", in, "", t,
                 (int)id, t, l, l, D - 1);
    }
}

/* An element's nodes in the loop (not the invariant ones, not the folded reduction); a
 * tiled draw reads its tile; sin and cos as put_trig's `trig` says (0: as computed). */
static void put_element_nodes(sbuf *b, const tj_graph *g, const tj_group *gr,
                              const uint8_t *uni, int ind, int trig) {
    for (int k = 0; k < gr->n_nodes; k++) {
        int32_t id = gr->nodes[k];
        if (uni[id] || id == gr->red) continue;
        if (tiled_draw(g, gr, k)) {
            put(b, "%*s%s x%d = d%d[e - t0];\n", ind, "", ctype(g->nodes[id].dtype), (int)id, (int)id);
            continue;
        }
        put(b, "%*s", ind, "");
        tj_emit_elem_node(b, g, &g->nodes[id]);
        if (trig && is_trig(&g->nodes[id])) put_trig(b, &g->nodes[id], id, trig, ind);
    }
}

/* The element loop of pass `pass` (0: contiguous, through q and r pointers; 1: strided)
 * over [lo, hi) of a group that neither folds nor draws: the leaves' loads, the nodes,
 * the outputs' stores, sin and cos as put_trig's `trig` says (1: each element's note
 * stored in hb_[e - lo], not a reduction: gcc vectorizes the loop so). */
static void put_plain_loop(sbuf *b, const tj_graph *g, const tj_group *gr, const uint8_t *uni,
                           int in, int pass, int trig, const char *lo, const char *hi) {
    int D = gr->loop.D;
    put(b, "%*sfor (long long e = %s; e < %s; e++) {\n", in, "", lo, hi);
    if (trig == 1) put(b, "%*s    long long hh_ = 0;\n", in, "");
    put_element_loads(b, g, gr, uni, in, pass);
    put_element_nodes(b, g, gr, uni, in + 4, trig);
    for (int o = 0; o < gr->n_outs; o++) {
        const char *t = ctype(g->nodes[gr->outs[o].node].dtype);
        if (!pass) put(b, "%*s    r%d[e] = x%d;\n", in, "", o, (int)gr->outs[o].node);
        else put(b, "%*s    *(%s *)(po%d + e * o%d_%d) = x%d;\n", in, "", t, o, o, D - 1,
                 (int)gr->outs[o].node);
    }
    if (trig == 1) put(b, "%*s    hb_[e - %s] = hh_;\n", in, "", lo);
    put(b, "%*s}\n", in, "");
}

/* A group with sin or cos in its loop, pass `pass`: chunks of 256 elements, each
 * computed as the vector functions compute, their huge arguments noted, and the
 * chunks with some computed again with libm's values there (lowering fuses such a
 * group only when it writes each element once and draws nothing: lower.c). */
static void put_trig_loops(sbuf *b, const tj_graph *g, const tj_group *gr, const uint8_t *uni,
                           int in, int pass) {
    put(b, "%*sfor (long long c0 = e0; c0 < e1; c0 += 256) {\n", in, "");
    put(b, "%*s    const long long c1 = c0 + 256 < e1 ? c0 + 256 : e1;\n", in, "");
    put(b, "%*s    long long hb_[256], h_ = 0;\n", in, "");
    put_plain_loop(b, g, gr, uni, in + 4, pass, 1, "c0", "c1");
    put(b, "%*s    for (long long k = 0; k < c1 - c0; k++) h_ |= hb_[k];\n", in, "");
    put(b, "%*s    if (h_) {\n", in, "");
    put_plain_loop(b, g, gr, uni, in + 8, pass, 2, "c0", "c1");
    put(b, "%*s    }\n%*s}\n", in, "", in, "");
}

/* One case's loop nest of a fused group, inside its case's block: pass 0 the contiguous
 * case (restrict pointers, omp simd folds), pass 1 the strided one; trig: sin or cos in
 * its loop (put_trig_loops). */
static void emit_nest(sbuf *b, const tj_graph *g, const tj_group *gr, const fold *f,
                      const uint8_t *uni, int pass, int trig) {
    const tj_loop *q = &gr->loop;
    int D = q->D, o0 = f ? 1 : 0;
    /* the loops: dim 0 over the range (scaled to rows or blocks as TinyCC's units are) */
    int ind = 8;
    for (int d = 0; d < D - 1; d++) {
        if (d == 0)
            put(b, "%*sfor (long long i0 = lo * %lldLL; i0 < hi * %lldLL && i0 < %lldLL; i0++) {\n",
                ind, "", (long long)(q->twod && q->bd == 0 ? q->rows : 1),
                (long long)(q->twod && q->bd == 0 ? q->rows : 1), (long long)q->shape[0]);
        else
            put(b, "%*sfor (long long i%d = 0; i%d < %lldLL; i%d++) {\n", ind, "", d, d,
                (long long)q->shape[d], d);
        ind += 4;
    }
    for (int l = 0; l < gr->n_leaves; l++) {
        if (uni[gr->leaves[l].node] && !gr->leaves[l].row) continue;
        put(b, gr->leaves[l].slot < 0 ? "%*sconst long long pl%d = bl%d" : "%*sconst char *pl%d = bl%d",
            ind, "", l, l);
        for (int d = 0; d < D - 1; d++) put(b, " + i%d * l%d_%d", d, l, d);
        put(b, ";\n");
    }
    for (int o = o0; o < gr->n_outs; o++) {
        put(b, "%*schar *po%d = (char *)P[%d]", ind, "", o, (int)gr->outs[o].slot);
        if (gr->cat >= 0 && gr->cat_off)   /* a part: its region of the concatenation */
            put(b, " + %lldLL * S[%d][%d]", (long long)gr->cat_off, (int)gr->outs[o].slot,
                (int)g->nodes[gr->cat].axes);
        for (int d = 0; d < D - 1; d++) put(b, " + i%d * o%d_%d", d, o, d);
        put(b, ";\n");
    }
    if (f) {
        put(b, "%*schar *pc = (char *)P[%d]", ind, "", (int)gr->acc_slot);
        for (int d = 0; d < D - 1; d++) put(b, " + i%d * c_%d", d, d);
        put(b, ";\n");
    }
    if (D == 1)
        put(b, "%*sconst long long e0 = lo * %dLL, e1 = hi * %dLL < %lldLL ? hi * %dLL : %lldLL;\n",
            ind, "", TJ_BLOCK, TJ_BLOCK, (long long)q->inner, TJ_BLOCK, (long long)q->inner);
    else
        put(b, "%*sconst long long e0 = 0, e1 = %lldLL;\n", ind, "", (long long)q->inner);
    /* leaves broadcast along the inner dim: one load per row */
    for (int l = 0; l < gr->n_leaves; l++) {
        if (!gr->leaves[l].row) continue;
        char at[16];
        snprintf(at, sizeof at, "pl%d", l);
        put_leaf(b, g, gr, l, ind, at);
    }
    {
        int in = ind;
        for (int l = 0; !pass && l < gr->n_leaves; l++)
            if (!uni[gr->leaves[l].node] && gr->leaves[l].slot >= 0)
                put(b, "%*sconst %s *restrict q%d = (const %s *)pl%d;\n", in, "",
                    mtype(g->nodes[gr->leaves[l].node].dtype), l, mtype(g->nodes[gr->leaves[l].node].dtype), l);
        for (int o = o0; !pass && o < gr->n_outs; o++)
            put(b, "%*s%s *restrict r%d = (%s *)po%d;\n", in, "", mtype(g->nodes[gr->outs[o].node].dtype),
                o, mtype(g->nodes[gr->outs[o].node].dtype), o);
        if (f && !f->horizontal && !pass)
            put(b, "%*s%s *restrict ra = (%s *)pc;\n", in, "", f->A, f->A);
        if (trig && !f && !q->draws) {
            put_trig_loops(b, g, gr, uni, in, pass);
            goto close;
        }
        if (f && f->horizontal) {   /* blocks of the inner dim, as TinyCC's */
            put(b, "%*sfor (long long b0 = e0; b0 < e1; b0 += %d) {\n", in, "", TJ_BLOCK);
            in += 4;
            put(b, "%*sconst long long b1 = b0 + %d < e1 ? b0 + %d : e1;\n", in, "", TJ_BLOCK,
                TJ_BLOCK);
            fold_block_open(b, f, in, pass);
            put(b, "%*sfor (long long e = b0; e < b1; e++) {\n", in, "");
        } else if (q->draws) {
            draw_tile_open(b, g, gr, uni, in);
            in += 4;
        } else {
            put(b, "%*sfor (long long e = e0; e < e1; e++) {\n", in, "");
        }
        put_element_loads(b, g, gr, uni, in, pass);
        put_element_nodes(b, g, gr, uni, in + 4, 0);
        for (int o = o0; o < gr->n_outs; o++) {
            const char *t = ctype(g->nodes[gr->outs[o].node].dtype);
            if (!pass) put(b, "%*s    r%d[e] = x%d;\n", in, "", o, (int)gr->outs[o].node);
            else put(b, "%*s    *(%s *)(po%d + e * o%d_%d) = x%d;\n", in, "", t, o, o, D - 1,
                     (int)gr->outs[o].node);
        }
        if (f) {
            char acc[64];
            if (pass) snprintf(acc, sizeof acc, "*(%s *)(pc + e * c_%d)", f->A, D - 1);
            else snprintf(acc, sizeof acc, "ra[e]");
            fold_element(b, f, in + 4, acc);
        }
        put(b, "%*s}\n", in, "");
        if (q->draws) {
            in -= 4;
            put(b, "%*s}\n", in, "");
        }
        if (f && f->horizontal) {
            fold_block_close(b, f, in);
            in -= 4;
            put(b, "%*s}\n", in, "");
        }
    }
close:
    for (int d = D - 2; d >= 0; d--) put(b, "%*s}\n", 4 * (d + 2), "");
}

static void emit_fused_group(sbuf *b, const tj_graph *g, const tj_group *gr, int gi,
                             uint8_t *uni) {
    const tj_loop *q = &gr->loop;
    int D = q->D;
    fold fd, *f = NULL;
    if (gr->red >= 0) fold_init(f = &fd, g, gr, D);
    int o0 = f ? 1 : 0;   /* a reduction's output 0 is its accumulator's, written after */
    put(b, "\nstatic void tj_f%d(void **P, const long long **S, long long lo, long long hi) {\n", gi);
    for (int l = 0; l < gr->n_leaves; l++) uni[gr->leaves[l].node] = gr->leaves[l].uniform;
    tj_emit_leaf_setup(b, g, gr, D);
    for (int o = o0; o < gr->n_outs; o++)
        for (int d = 0; d < D; d++) tj_emit_out_stride(b, gr, o, d);
    for (int d = 0; f && d < D; d++) {   /* the accumulator: the result's shape and map */
        if (gr->ndim && gr->outs[0].map[d] >= 0)
            put(b, "    const long long c_%d = S[%d][%d];\n", d, (int)gr->acc_slot, gr->outs[0].map[d]);
        else
            put(b, "    const long long c_%d = 0;\n", d);
    }
    /* loop-invariant values, once per call */
    for (int l = 0; l < gr->n_leaves; l++) {
        int32_t id = gr->leaves[l].node;
        char at[16];
        snprintf(at, sizeof at, "bl%d", l);
        if (uni[id]) put_leaf(b, g, gr, l, 4, at);
    }
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *n = &g->nodes[gr->nodes[k]];
        uni[gr->nodes[k]] = gr->uniform[k];
        if (!gr->uniform[k]) continue;
        put(b, is_trig(n) ? "    " : "    const ");   /* (put_trig may assign it again) */
        if (n->op == TJ_OP_POW)   /* as TinyCC computes it: tj_p_POW's element (emit_c.c) */
            put(b, "%s x%d = tj_e_POW_%s(x%d, x%d);\n", ctype(n->dtype), (int)gr->nodes[k],
                tj_dtype_suffix(tj_node_loop_dtype(g, n)), (int)n->in[0], (int)n->in[1]);
        else
            tj_emit_elem_node(b, g, n);
        if (is_trig(n)) put_trig(b, n, gr->nodes[k], 2, 4);
    }
    /* sin or cos in the loop: put_trig_loops */
    int trig = 0;
    for (int k = 0; k < gr->n_nodes; k++)
        trig |= !gr->uniform[k] && is_trig(&g->nodes[gr->nodes[k]]);
    if (q->cols) emit_cols(b, g, gr, q, uni, f);
    /* leaves broadcast along the inner dim are loaded once per row (in the nest) */
    for (int l = 0; l < gr->n_leaves; l++)
        if (gr->leaves[l].row) uni[gr->leaves[l].node] = 2;
    /* contiguous inner dims (the common case, which gcc vectorizes), else strided: the
     * test is loop-invariant and made once, each case its own nest (both cases inside
     * one nest, gcc 12 merged them into one scalar, branchy inner loop: a masked max
     * over attention's rows measured 7x slower) */
    put(b, "    if (1");
    for (int l = 0; l < gr->n_leaves; l++)
        if (!uni[gr->leaves[l].node] && gr->leaves[l].slot >= 0)
            put(b, " && l%d_%d == %d", l, D - 1, tj_dtype_size(g->nodes[gr->leaves[l].node].dtype));
    for (int o = o0; o < gr->n_outs; o++)
        put(b, " && o%d_%d == %d", o, D - 1, tj_dtype_size(g->nodes[gr->outs[o].node].dtype));
    if (f && !f->horizontal) put(b, " && c_%d == (long long)sizeof(%s)", D - 1, f->A);
    put(b, ") {\n");
    emit_nest(b, g, gr, f, uni, 0, trig);
    put(b, "    } else {\n");
    emit_nest(b, g, gr, f, uni, 1, trig);
    put(b, "    }\n}\n");
}

int tj_emit_fused_source(const tj_graph *g, const tj_schedule *s, tj_sbuf *out,
                         tj_error *err) {
    sbuf b = {0};
    uint8_t *uni = calloc((size_t)(g->n ? g->n : 1), 1);
    int *fused = calloc((size_t)(s->n_groups ? s->n_groups : 1), sizeof(int));
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!uni || !fused) {
        tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
        goto done;
    }
    int any = 0;
    put(&b, "/* tracejit optimizing tier */\n#include \"prims.c\"\n");
    for (int gi = 0; gi < s->n_groups; gi++) {
        if (!s->groups[gi].loop.fused) continue;   /* lowering's choice (lower.c) */
        emit_fused_group(&b, g, &s->groups[gi], gi, uni);
        const tj_group *gr = &s->groups[gi];   /* zero again where it set them (not all */
        for (int k = 0; k < gr->n_nodes; k++)  /* n per group: O(n^2) at 10^4 row writes) */
            uni[gr->nodes[k]] = 0;
        for (int l = 0; l < gr->n_leaves; l++) uni[gr->leaves[l].node] = 0;
        fused[gi] = any = 1;
    }
    if (!any) { rc = 0; goto done; }
    put(&b, "\n__attribute__((visibility(\"default\")))\n"
            "void (*const tj_fused[%d])(void **, const long long **, long long, long long) = {\n",
        s->n_groups);
    for (int gi = 0; gi < s->n_groups; gi++)
        if (fused[gi]) put(&b, "    tj_f%d,\n", gi);
        else put(&b, "    0,\n");
    put(&b, "};\n");
    if (b.failed) {
        tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
        goto done;
    }
    *out = b;
    b.buf = NULL;
    rc = 0;
done:
    free(b.buf);
    free(uni);
    free(fused);
    return rc;
}
