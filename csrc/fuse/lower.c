/* Lowering: every scheduling decision between fusion and emission, made once.
 * Requires: groups from fuse (nodes, leaves with their slots, outputs). Guarantees:
 * per group, each leaf's access (map, steps, offsets; a gather's indexed dim), the
 * output maps, the loop nest after collapsing (adjacent dims every access reads as
 * one become one), the matrix-product form, the blocks (2-D blocks of short rows),
 * the outer loop's units and whether threads may split them (never a reduced or
 * scanned dim, so results do not depend on the thread count), a chunked reduction's
 * accumulators, which values are loop-invariant, and the optimizing tier's strategy.
 * The emitters (csrc/emit/) only spell this; they compute no geometry. */
#include "ir/ir.h"
#include <stdio.h>

/* Access of leaf lf from a group with D iteration dims: per dim the slot dim read
 * (-1 broadcast, -2 flat) and the step along it; start offsets per slot dim. */
static void leaf_access(const tj_graph *g, tj_leaf *lf, int D) {
    const tj_node *v = &g->nodes[lf->node];
    int is_view = v->op == TJ_OP_VIEW;
    memset(lf->map, -1, TJ_MAXDIM);
    memset(lf->step, 0, sizeof lf->step);
    memset(lf->off, 0, sizeof lf->off);
    if (is_view) memcpy(lf->off, v->voff, sizeof lf->off);
    lf->flat = (uint8_t)(is_view && v->flat);
    for (int d = 0; d < D; d++) {
        int e = d - (D - v->ndim);
        if (e < 0 || v->shape[e] == 1) continue;
        int src = is_view ? v->perm[e] : e;
        lf->map[d] = (int8_t)src;
        lf->step[d] = src == -1 ? 0 : is_view ? v->vstep[e] : 1;
    }
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

static int is_scan(const tj_graph *g, const tj_group *gr) {
    return gr->red >= 0 && tj_ops[g->nodes[gr->red].op].kind == TJ_K_SCAN;
}

/* Whether virtual leaf lf reads its IOTA as a C-contiguous array (see virtual_leaf). */
static int virtual_contig(const tj_graph *g, const tj_leaf *lf) {
    const tj_node *iota = &g->nodes[lf->base];
    return (int32_t)iota->axes < 0 || iota->ndim <= 1 || lf->flat;
}

/* A virtual leaf (an IOTA, slot -1) is read as an array whose element is its offset:
 * for the index along dim a, an array of element strides 1 on dim a and 0 elsewhere
 * (not contiguous: collapsing keeps dim a apart from its neighbours); for the linear
 * index, a C-contiguous array. Read flat (a reshape of a view), the dim-a index is
 * recovered from the C-order offset: divided by dim a's C stride, modulo its length.
 * So views, collapsing and splits need nothing of their own. */
static void virtual_leaf(const tj_graph *g, tj_leaf *lf) {
    const tj_node *iota = &g->nodes[lf->base];
    int axis = (int)(int32_t)iota->axes;
    int64_t stride = 1;
    for (int d = iota->ndim - 1; d >= 0; d--) {
        lf->vstride[d] = stride;
        stride *= iota->shape[d];
    }
    lf->vdiv = 1;
    lf->vmod = 0;
    if (virtual_contig(g, lf) && axis >= 0 && iota->ndim > 1) {   /* flat */
        lf->vdiv = lf->vstride[axis];
        lf->vmod = axis > 0 ? iota->shape[axis] : 0;   /* dim 0: the offset never wraps */
    } else if (!virtual_contig(g, lf)) {
        for (int d = 0; d < iota->ndim; d++) lf->vstride[d] = d == axis;
    }
}

/* The leaves' and outputs' access over the group's own (uncollapsed) dims. */
static void access(const tj_graph *g, tj_group *gr) {
    int scan = is_scan(g, gr);
    for (int l = 0; l < gr->n_leaves; l++) {
        tj_leaf *lf = &gr->leaves[l];
        leaf_access(g, lf, gr->ndim);
        if (lf->slot < 0) virtual_leaf(g, lf);
        if (lf->gather < 0) continue;
        int dim = lf->gather;   /* the loop does not index the gathered dim */
        const tj_node *data = &g->nodes[lf->node];
        lf->gsrc = lf->map[dim];
        lf->gstep = lf->step[dim];
        lf->glen = data->shape[dim - (gr->ndim - data->ndim)];
        lf->map[dim] = -1;
        lf->step[dim] = 0;
    }
    for (int o = 0; o < gr->n_outs; o++) {
        tj_out *out = &gr->outs[o];
        memset(out->map, -1, TJ_MAXDIM);
        if (gr->red >= 0 && !scan && o == 0)
            reduction_map(&g->nodes[gr->red], &g->nodes[g->nodes[gr->red].in[0]], out->map);
        else
            for (int d = 0; d < gr->ndim; d++) out->map[d] = gr->shape[d] == 1 ? -1 : (int8_t)d;
    }
    memset(gr->amap, -1, sizeof gr->amap);
    for (int d = 0, k = 0; scan && d < gr->ndim; d++)   /* the scan's running values */
        if (d != (int)g->nodes[gr->red].axes) {
            gr->amap[d] = gr->shape[d] == 1 ? -1 : (int8_t)k;
            k++;
        }
}

/* A reduction group that is a matrix product: the sum over the last dim(s) of X = a * b,
 * a and b leaves, float, X used by the sum alone, and among the other dims of the
 * group the innermost where only a varies is the rows, the innermost where only b
 * varies the columns; the rest are batch dims, an operand broadcast along some (a
 * convolution's weight against each image's im2col columns: one GEMM per image).
 * Several row (or column) dims are taken (`several`) only after collapsing, which may
 * merge them into one larger GEMM. Such a group is emitted as GEMM calls, not a fused loop.
 * Asked before collapsing (the group's dims are X's) and again after (nn.Linear on a
 * (B, T, C) input: B and T, contiguous in a and the result, become one row dim; its
 * weight's gradient sums over B and T, which become one K dim). */
#define TJ_CALL_MIN 4096

static int detect_contraction(const tj_graph *g, tj_group *gr, int several) {
    gr->contract = 0;
    gr->mm_m = gr->mm_n = gr->mm_a = gr->mm_b = -1;
    if (gr->red < 0) return 0;
    const tj_node *r = &g->nodes[gr->red], *x = &g->nodes[r->in[0]];
    int s8 = tj_s8_product(g, x, r), kind = s8 ? TJ_CONTRACT_S8 : TJ_CONTRACT_F;
    if (gr->n_nodes != (s8 ? 4 : 2) || gr->n_leaves != 2) return 0;
    int32_t fa = s8 ? g->nodes[x->in[0]].in[0] : x->in[0];   /* the factors: leaves */
    int32_t fb = s8 ? g->nodes[x->in[1]].in[0] : x->in[1];
    int nd = x->ndim, D = gr->ndim, ks = 0, batched = 0;
    int64_t K = 1;
    while (ks < nd && (r->axes >> (nd - 1 - ks) & 1u)) K *= x->shape[nd - 1 - ks++];
    /* the summed dims: X's last ks (several: a weight's gradient sums over B and T) */
    if (r->op != TJ_OP_RSUM || x->op != TJ_OP_MUL || nd < 1 || ks < 1 ||
        r->axes != (((1u << ks) - 1u) << (nd - ks)) ||
        (!s8 && (x->dtype < TJ_F32 || r->dtype != x->dtype)) || D < 1 || D > nd ||
        (ks > 1 && D == nd))
        return 0;
    /* collapsed: the last dim must be the summed ones, merged, and no other dim summed */
    if (D < nd && (gr->n_outs != 1 || gr->outs[0].node != gr->red ||
                   gr->shape[D - 1] != K || gr->outs[0].map[D - 1] != -1))
        return 0;
    for (int d = 0; D < nd && d < D - 1; d++)
        if (gr->outs[0].map[d] < 0) return 0;
    for (int l = 0; l < 2; l++) {
        if (gr->leaves[l].node == fa) gr->mm_a = l;
        if (gr->leaves[l].node == fb) gr->mm_b = l;
    }
    if (gr->mm_a < 0 || gr->mm_b < 0 || gr->mm_a == gr->mm_b) return 0;
    const tj_leaf *a = &gr->leaves[gr->mm_a], *b = &gr->leaves[gr->mm_b];
    /* (a flat view's dims, -2, read at a constant stride: Flatten then Linear) */
    if (a->map[D - 1] == -1 || b->map[D - 1] == -1) return 0;
    for (int d = 0; d < D - 1; d++) {
        if (gr->shape[d] == 1) continue;
        int va = a->map[d] != -1, vb = b->map[d] != -1;
        if (va == vb) continue;
        int *mn = va ? &gr->mm_m : &gr->mm_n;
        if (*mn >= 0 && !several) return 0;
        batched |= *mn >= 0;
        *mn = d;   /* the innermost: any before it is a batch dim */
    }
    /* (a broadcast batch dim: each call at least TJ_CALL_MIN multiply-adds, else the
     * calls' own cost outweighs them and the fused loop does better) */
    if (batched && (gr->mm_m >= 0 ? gr->shape[gr->mm_m] : 1) *
                   (gr->mm_n >= 0 ? gr->shape[gr->mm_n] : 1) * K < TJ_CALL_MIN)
        return 0;
    /* neither rows nor columns: a batch of dot products (a LayerNorm weight's gradient,
     * sum over B and T of dy * xhat per channel) is a reduction loop, which reads the
     * channels side by side, not one strided 1 x 1 GEMM per channel */
    if (gr->mm_m < 0 && gr->mm_n < 0) return 0;
    if (s8 && batched) return 0;   /* (the int8 kernels take no batch loop yet) */
    gr->contract = kind;
    return 1;
}

/* Drops size-1 dims and merges adjacent dims that every access reads as one: both
 * broadcast, or consecutive full-extent unit-step dims of a C-contiguous slot, or
 * flat dims whose steps nest. Merged dims read with the inner dim's stride and step. */
static void collapse(const tj_graph *g, const tj_schedule *s, tj_group *gr) {
    int D = gr->ndim, nl = gr->n_leaves, na = nl + gr->n_outs;
    int64_t total = 1;
    for (int d = 0; d < D; d++) total *= gr->shape[d];
    if (total == 0 || na > 4 * TJ_MAXDIM) return;   /* huge groups stay uncollapsed */
    int8_t lo[4 * TJ_MAXDIM][TJ_MAXDIM], hi[4 * TJ_MAXDIM][TJ_MAXDIM];
    int64_t st[4 * TJ_MAXDIM][TJ_MAXDIM];
    for (int a = 0; a < na; a++) {
        int8_t *m = a < nl ? gr->leaves[a].map : gr->outs[a - nl].map;
        memcpy(lo[a], m, TJ_MAXDIM);
        memcpy(hi[a], m, TJ_MAXDIM);
        for (int d = 0; d < TJ_MAXDIM; d++) st[a][d] = a < nl ? gr->leaves[a].step[d] : 1;
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
            int32_t slot = a < nl ? gr->leaves[a].slot : gr->outs[a - nl].slot;
            const tj_node *base = &g->nodes[a < nl ? gr->leaves[a].base
                                           : gr->cat >= 0 ? gr->cat : gr->outs[a - nl].node];
            int contig = slot < 0 ? virtual_contig(g, &gr->leaves[a])
                                  : slot >= g->n_slots || g->slots[slot].contig;
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
                if (a < nl) zero_off &= gr->leaves[a].off[e] == 0;
            }
            ok = contig && st[a][d] == 1 && st[a][d + 1] == 1 && span == gr->shape[d + 1] &&
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
        int8_t *m = a < nl ? gr->leaves[a].map : gr->outs[a - nl].map;
        memset(m, -1, TJ_MAXDIM);
        memcpy(m, hi[a], (size_t)D);
        if (a < nl) {
            memset(gr->leaves[a].step, 0, sizeof gr->leaves[a].step);
            memcpy(gr->leaves[a].step, st[a], (size_t)D * sizeof(int64_t));
        }
    }
}

static int is_arg(const tj_node *r) { return (tj_ops[r->op].flags & TJ_F_INDEX) != 0; }

/* A reduction group over rows shorter than a block (a bias's gradient: column sums
 * of 128 rows of 10; a mean over [128, 10]) gets 2-D blocks of rows too: its
 * elementwise part is a call per op per block instead of per row, and the reduction
 * still takes the rows one at a time in order, so results are unchanged. Its other
 * outputs must be contiguous across rows (as blocks' are); the reduced value
 * (output 0) is the accumulator, written after the loop. */
static void reduction_rows(const tj_graph *g, const tj_group *gr, tj_loop *q) {
    int D = q->D;
    if (gr->red < 0 || gr->cat >= 0 || gr->contract || q->twod || D < 2 || !gr->ndim ||
        tj_ops[g->nodes[gr->red].op].kind != TJ_K_RED || is_arg(&g->nodes[gr->red]) ||
        q->inner <= 0 || q->inner * 2 > TJ_BLOCK || q->shape[D - 2] < 2)
        return;
    int reds = 0;
    for (int k = 0; k < gr->n_nodes; k++) {
        int kind = tj_ops[g->nodes[gr->nodes[k]].op].kind;
        reds += kind == TJ_K_RED || kind == TJ_K_SCAN;
        if (g->nodes[gr->nodes[k]].op == TJ_OP_GATHER) return;
    }
    for (int l = 0; l < gr->n_leaves; l++)
        if (gr->leaves[l].gather >= 0 || gr->leaves[l].slot < 0) return;
    for (int o = 1; o < gr->n_outs; o++)
        if (gr->outs[o].map[D - 1] < 0 || gr->outs[o].map[D - 2] < 0) return;
    if (reds != 1 || gr->outs[0].node != gr->red) return;
    q->rows = TJ_BLOCK / q->inner < q->shape[D - 2] ? TJ_BLOCK / q->inner : q->shape[D - 2];
    q->twod = 1;
    q->bd = D - 2;
    q->step = q->bd >= 1 ? 1 : q->rows;
    int64_t extent = q->shape[0];
    q->units = q->total == 0 ? 1 : (extent + q->step - 1) / q->step;
}

/* The loop nest: D dims (at least 1), the innermost in blocks of TJ_BLOCK, or, when it
 * is short, 2-D blocks of `rows` rows of it (so a bias added to 32 rows of 64 is one
 * call per op, not 32). 2-D blocks need outputs contiguous across rows: fresh arrays
 * and scratch are, a concatenation's parts are not. The outer loop is split across
 * threads: i0 when there are loops outside the blocks, else the blocks themselves. */
static void geometry(const tj_graph *g, const tj_group *gr, tj_loop *q) {
    int D = q->D = gr->ndim ? gr->ndim : 1;
    q->total = 1;
    for (int d = 0; d < D; d++) q->shape[d] = gr->ndim ? gr->shape[d] : 1;
    for (int d = 0; d < D; d++) q->total *= q->shape[d];
    int64_t inner = q->inner = q->shape[D - 1];
    q->rows = 1;
    int gathers = 0;   /* and virtual leaves: TinyCC's 2-D blocks have no index fill */
    for (int l = 0; l < gr->n_leaves; l++) gathers |= gr->leaves[l].gather >= 0 || gr->leaves[l].slot < 0;
    if (gr->red < 0 && gr->cat < 0 && !gathers && D >= 2 && inner > 0 && inner * 2 <= TJ_BLOCK) {
        q->rows = TJ_BLOCK / inner < q->shape[D - 2] ? TJ_BLOCK / inner : q->shape[D - 2];
        for (int o = 0; o < gr->n_outs; o++)
            if (gr->outs[o].map[D - 1] < 0 || gr->outs[o].map[D - 2] < 0) q->rows = 1;
    }
    q->twod = q->rows > 1;
    q->bd = q->twod ? D - 2 : D - 1;
    q->step = q->bd >= 1 ? 1 : q->twod ? q->rows : TJ_BLOCK;
    int64_t extent = q->bd == 0 && !q->twod ? inner : q->shape[0];
    q->units = q->total == 0 ? 1 : (extent + q->step - 1) / q->step;
    reduction_rows(g, gr, q);
    q->block = q->twod ? q->rows * q->inner : inner < TJ_BLOCK ? inner : TJ_BLOCK;
}

/* Threads and chunks: splitting must not split a reduced dim (a reduction keeps the
 * outer dim) nor a scanned one. A sum, product, max or min over the outer loop's dim
 * may instead be reduced in chunks into separate accumulators, folded in order. */
static void split(const tj_graph *g, const tj_group *gr, tj_loop *q) {
    int scan = is_scan(g, gr), D = q->D;
    q->work = q->units ? q->total / q->units : 0;
    q->par = q->total > 0 && !scan &&
             (gr->red < 0 || (q->bd >= 1 && gr->outs[0].map[0] >= 0) ||
              (q->bd == 0 && gr->outs[0].map[q->twod ? 0 : D - 1] >= 0));
    const tj_node *rn = gr->red >= 0 ? &g->nodes[gr->red] : NULL;
    if (rn && q->total > 0 && !scan && !q->par && tj_red_splittable(rn->op)) {
        q->chunked = 1;
        q->acc_dtype = tj_red_acc_dtype(rn->op, g->nodes[rn->in[0]].dtype);
        q->acc_n = tj_node_size(rn);
    }
    if (gr->red >= 0) {
        const int8_t *m = scan ? gr->amap : gr->outs[0].map;
        q->horizontal = !gr->ndim || m[D - 1] < 0;
    }
}

/* Loop-invariant values, computed once before the loop: leaves read at one element
 * (not gathered) and nodes of such values alone (a reduction or scan accumulates in
 * the loop). `u`: per node id, scratch. A matrix product has none. */
static void invariants(const tj_graph *g, tj_group *gr, uint8_t *u) {
    int D = gr->loop.D;
    for (int l = 0; l < gr->n_leaves; l++) {
        tj_leaf *lf = &gr->leaves[l];
        int uni = !gr->contract && lf->gather < 0;
        for (int d = 0; d < D; d++) uni &= lf->map[d] == -1;
        u[lf->node] = (uint8_t)uni;   /* a node read plain and gathered: not uniform */
    }
    for (int l = 0; l < gr->n_leaves; l++) {
        tj_leaf *lf = &gr->leaves[l];
        lf->uniform = u[lf->node];
        lf->row = !lf->uniform && lf->gather < 0 && lf->map[D - 1] == -1;
    }
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *n = &g->nodes[gr->nodes[k]];
        int uni = !gr->contract;
        for (int a = 0; a < tj_ops[n->op].arity; a++) uni &= u[n->in[a]];
        if (tj_ops[n->op].kind == TJ_K_RED || tj_ops[n->op].kind == TJ_K_SCAN ||
            !tj_op_pure(n->op))
            uni = 0;   /* accumulated in the loop; an effect is never hoisted out of it */
        gr->uniform[k] = u[gr->nodes[k]] = (uint8_t)uni;
    }
}

/* The leaf of gr reading node id, or NULL. */
static const tj_leaf *leaf_of(const tj_group *gr, int32_t id) {
    for (int l = 0; l < gr->n_leaves; l++)
        if (gr->leaves[l].node == id) return &gr->leaves[l];
    return NULL;
}

static int in_group(const tj_group *gr, int32_t id) {
    for (int k = 0; k < gr->n_nodes; k++)
        if (gr->nodes[k] == id) return 1;
    return 0;
}

/* Whether node id is an index (IOTA leaf) that steps by exactly 1 along the loop's
 * innermost dim: its value there is offset + e (no division, no wrap). */
static int steps_by_one(const tj_group *gr, int32_t id) {
    const tj_leaf *lf = leaf_of(gr, id);
    int D = gr->loop.D;
    if (!lf || lf->slot >= 0 || lf->uniform || lf->vdiv != 1 || lf->vmod > 0) return 0;
    int m = gr->ndim ? lf->map[D - 1] : -1;
    int64_t step = m == -2 ? lf->step[D - 1] : m >= 0 ? lf->step[D - 1] * lf->vstride[m] : 0;
    return step == 1;
}

/* The tier's tiles of draws (prims_random.h's fills: whole Philox blocks, vectorized,
 * where one element at a time computes a block per element): for a fused elementwise
 * group whose every draw has a loop-invariant key and a counter that is an index
 * stepping by one along the innermost dim, plus a loop-invariant value (csrc/trace/
 * random.c's ADD(IOTA, base)); so the counters of a row's consecutive elements are
 * consecutive, and a tile's fill gives each element its own counter's value. `u`:
 * invariants' per node. Else 0: the element function, the same bits. */
#define TJ_DRAW_TILE 256
static int draw_tiles(const tj_graph *g, const tj_group *gr, const uint8_t *u) {
    int any = 0;
    if (!gr->loop.fused || gr->red >= 0) return 0;
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *n = &g->nodes[gr->nodes[k]];
        if (!(tj_ops[n->op].flags & TJ_F_DRAW) || gr->uniform[k]) continue;
        int32_t c = n->in[1];
        const tj_node *a = &g->nodes[c];
        int ok = u[n->in[0]] && (steps_by_one(gr, c) ||
                 (a->op == TJ_OP_ADD && in_group(gr, c) && !u[c] &&
                  ((steps_by_one(gr, a->in[0]) && u[a->in[1]]) ||
                   (steps_by_one(gr, a->in[1]) && u[a->in[0]]))));
        if (!ok) return 0;
        any = 1;
    }
    return any ? TJ_DRAW_TILE : 0;
}

int tj_pow_const(const tj_graph *g, const tj_node *n, double *e) {
    const tj_node *x = &g->nodes[n->in[1]];
    if (x->op != TJ_OP_CONST || tj_node_size(x) != 1) return -1;
    *e = x->dtype >= TJ_F32 ? x->value.f : (double)x->value.i;
    return 0;
}

/* The optimizing tier fuses a group into one per-element loop nest when every node is
 * elementwise but for at most one sum, product, max or min (output 0, folded in the
 * same loop), a concatenation's part too (written at its offset). Not: argmax/argmin,
 * scans, gathers, matrix products; reductions of costly values (exp, tanh, ...: the
 * function's time dominates and TinyCC's blocks were measured faster, a fused exp-sum
 * at 1.18x); sin and cos in a reduction or beside draws (vmath leaves huge arguments
 * to libm: prims.c's fixup pass after each block; a fused loop notes them and computes
 * its element range again with libm's values for them, emit_fused.c, which only a loop
 * that writes each element once and draws nothing can do); float powers but by a
 * constant or loop-invariant (computed once, as TinyCC does: Adam's beta ** step). */
static int fusable(const tj_graph *g, const tj_group *gr) {
    if (gr->contract || gr->loop.total == 0 || !gr->n_outs) return 0;
    if (gr->cat >= 0 && gr->red >= 0) return 0;
    if (gr->red >= 0) {
        if (!tj_red_splittable(g->nodes[gr->red].op) || gr->outs[0].node != gr->red)
            return 0;
    }
    for (int l = 0; l < gr->n_leaves; l++)
        if (gr->leaves[l].gather >= 0) return 0;
    int trig = 0, draws = 0;
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *n = &g->nodes[gr->nodes[k]];
        int kind = tj_ops[n->op].kind;
        double e;
        draws |= (tj_ops[n->op].flags & TJ_F_DRAW) != 0;
        if (gr->nodes[k] == gr->red) continue;
        if (kind != TJ_K_EW && kind != TJ_K_CAST) return 0;
        if (gr->red >= 0 && (tj_ops[n->op].flags & TJ_F_COSTLY)) return 0;
        trig |= n->op == TJ_OP_SIN || n->op == TJ_OP_COS;
        if (n->op == TJ_OP_POW && n->dtype >= TJ_F32 && !gr->uniform[k] &&
            tj_pow_const(g, n, &e) < 0)
            return 0;
    }
    return !(trig && (gr->red >= 0 || gr->cat >= 0 || draws));
}

int tj_pass_lower(const tj_graph *g, tj_schedule *s, tj_error *err) {
    uint8_t *u = calloc((size_t)(g->n ? g->n : 1), 1);
    if (!u) return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    for (int gi = 0; gi < s->n_groups; gi++) {
        tj_group *gr = &s->groups[gi];
        tj_loop *q = &gr->loop;
        int gathers = 0;
        for (int l = 0; l < gr->n_leaves; l++) gathers |= gr->leaves[l].gather >= 0;
        access(g, gr);
        if (!detect_contraction(g, gr, 0) && !gathers && !is_scan(g, gr)) {
            collapse(g, s, gr);
            detect_contraction(g, gr, 1);
        }
        memset(q, 0, sizeof *q);
        if (gr->contract) {   /* GEMM calls over the batch dims: one unit, no split */
            q->D = gr->ndim;
            q->units = 1;
        } else {
            geometry(g, gr, q);
            split(g, gr, q);
        }
        invariants(g, gr, u);
        q->fused = fusable(g, gr);
        /* column sums of short rows: the tier keeps accumulators in registers while
         * rows go by (2-D blocks of rows, the inner dim kept) */
        q->cols = q->fused && gr->red >= 0 && !q->horizontal && q->D == 2 && q->twod &&
                  gr->ndim == 2 && gr->outs[0].map[0] < 0 && gr->outs[0].map[1] >= 0;
        q->draws = draw_tiles(g, gr, u);
    }
    free(u);
    return 0;
}

static void put_dims(tj_sbuf *log, const char *name, int n, const int8_t *m) {
    tj_put(log, " %s[", name);
    for (int d = 0; d < n; d++) tj_put(log, d ? " %d" : "%d", m[d]);
    tj_put(log, "]");
}

void tj_lower_dump(const tj_graph *g, const tj_schedule *s, tj_sbuf *log) {
    tj_put(log, "-- schedule: %d groups\n", s->n_groups);
    for (int gi = 0; gi < s->n_groups; gi++) {
        const tj_group *gr = &s->groups[gi];
        const tj_loop *q = &gr->loop;
        tj_put(log, "  group %d:", gi);
        if (gr->contract) {
            tj_put(log, " GEMM over [");
            for (int d = 0; d < gr->ndim; d++) tj_put(log, d ? ", %lld" : "%lld", (long long)gr->shape[d]);
            tj_put(log, "], rows dim %d, columns dim %d\n", gr->mm_m, gr->mm_n);
        } else {
            tj_put(log, " loop [");
            for (int d = 0; d < q->D; d++) tj_put(log, d ? ", %lld" : "%lld", (long long)q->shape[d]);
            tj_put(log, "], blocks of %lld%s, %lld units of %lld%s%s%s%s%s\n", (long long)q->block,
                   q->twod ? " (rows)" : "", (long long)q->units, (long long)q->step,
                   q->par ? ", parallel" : "", q->chunked ? ", chunked reduction" : "",
                   q->fused ? (q->cols ? ", tier: fused, columns" : ", tier: fused") : "",
                   q->draws ? ", draws in tiles" : "",
                   gr->red >= 0 ? (q->horizontal ? ", horizontal" : ", vertical") : "");
        }
        for (int l = 0; l < gr->n_leaves; l++) {
            const tj_leaf *lf = &gr->leaves[l];
            if (lf->slot < 0) tj_put(log, "    leaf %d: %%%d index", l, (int)lf->node);
            else tj_put(log, "    leaf %d: %%%d slot %d", l, (int)lf->node, (int)lf->slot);
            put_dims(log, "map", q->D > gr->ndim ? gr->ndim : q->D, lf->map);
            tj_put(log, " step[");
            for (int d = 0; d < gr->ndim; d++) tj_put(log, d ? " %lld" : "%lld", (long long)lf->step[d]);
            tj_put(log, "]%s%s%s", lf->flat ? " flat" : "", lf->uniform ? " uniform" : "",
                   lf->row ? " row" : "");
            if (lf->gather >= 0) tj_put(log, " gathered along %d", lf->gather);
            tj_put(log, "\n");
        }
        for (int o = 0; o < gr->n_outs; o++) {
            tj_put(log, "    out %d: %%%d slot %d", o, (int)gr->outs[o].node, (int)gr->outs[o].slot);
            put_dims(log, "map", gr->ndim, gr->outs[o].map);
            tj_put(log, "\n");
        }
        int any = 0;
        for (int k = 0; k < gr->n_nodes; k++) any |= gr->uniform[k];
        if (!any) continue;
        tj_put(log, "    hoisted:");
        for (int k = 0; k < gr->n_nodes; k++)
            if (gr->uniform[k]) tj_put(log, " %%%d", (int)gr->nodes[k]);
        tj_put(log, "\n");
    }
    (void)g;
}
