/* The CUDA generator: a lowered schedule as CUDA C++ for NVRTC (csrc/backend/cuda_api.c).
 * Requires: a lowered schedule (csrc/fuse/lower.c: each group's collapsed loop dims and
 * leaf accesses). Guarantees: per elementwise group one kernel `tj_g<gi>`, a grid-stride
 * loop over the group's elements computing every node of an element in registers with
 * prims.c's element helpers (the optimizing tier's, so the arithmetic rounds as on the
 * CPU; NVRTC contracts nothing into fma); per sum/prod/max/min group a first pass whose
 * blocks fold fixed chunks of each output's reduced elements (a fixed tree in shared
 * memory) into partials, and, when an output has more than one chunk, `tj_g<gi>_fin`
 * folding its partials in order: no atomics, so the same input gives the same bits on
 * every run and every GPU. The launch geometry depends on the shapes alone.
 * argmax/argmin fold (value, index) pairs the same way, a tie or a NaN to the lower
 * index (the CPU's first). A gather (integer-array indexing, take) reads its data leaf
 * in place at the index its element computes; an index out of bounds records NumPy's
 * IndexError in the program's error record (4 int64 at the workspace's start, W, the
 * first reporter wins) and reads 0; the runtime reads the record back after the launches. A scan
 * (cumsum/cumprod) is one thread per row, sequential as on the CPU (bitwise its
 * result) up to TJ_CU_SCAN_SEQ elements a row; a longer row is one block, each thread
 * folding a fixed chunk, the chunks' totals prefixed in order by one thread, then each
 * chunk rescanned from its prefix: deterministic (the grouping depends on the length
 * alone), within rounding of the CPU's order.
 * A matrix product (lowering's contraction group) of at least a tile's rows and columns
 * is a shared-memory tiled kernel (each output's products summed in order); a
 * matrix-vector product or a dot is a sum of products (the reduction's kernel). cuBLAS
 * is not wired yet. What it does not compile is a TJ_ERR_VALUE
 * naming the op, never a wrong kernel. Launch geometry is decided here until lowering
 * has a GPU strategy (ir.h's tj_loop is the CPU's). */
#include "emit/emit.h"
#include <stdio.h>

typedef tj_sbuf sbuf;
#define put tj_put

#define TJ_CU_THREADS 256          /* threads per block */
#define TJ_CU_MAX_GRID (1 << 20)   /* blocks per launch; grid-stride loops do the rest */
#define TJ_CU_CHUNK 8192           /* reduced elements per block and output, at least */
#define TJ_CU_MAX_PARTS 1024       /* partials per output (the second pass's loop) */
#define TJ_CU_PARAM_MAX 4000       /* bytes of kernel parameters every GPU accepts */
#define TJ_CU_SCAN_SEQ 256         /* a scanned row up to this long: one thread, in order */

static const char *ctype(int dt) {
    return tj_dtype_stdtype(dt);
}

/* A leaf read as a value rather than through memory: a constant (spelled in the
 * source), or a scalar argument or random key (8 bytes in P[slot], by value). */
enum { LEAF_MEM, LEAF_CONST, LEAF_VALUE };
static int leaf_kind(const tj_graph *g, const tj_leaf *lf) {
    if (lf->slot < 0 || lf->slot >= g->n_slots) return LEAF_MEM;
    const tj_slotdesc *d = &g->slots[lf->slot];
    if (d->kind == TJ_SLOT_CONST) return LEAF_CONST;
    if (d->kind == TJ_SLOT_KEY || g->nodes[lf->base].op == TJ_OP_SCALAR) return LEAF_VALUE;
    return LEAF_MEM;
}

static void put_const(sbuf *b, const tj_slotdesc *d, int dt) {
    unsigned long long bits;
    switch (d->dtype) {
    case TJ_BOOL: put(b, "(%s)%s", ctype(dt), d->value.i ? "true" : "false"); return;
    case TJ_I8: case TJ_I16: case TJ_I32: case TJ_I64:
        put(b, "(%s)(%s)(%lldLL)", ctype(dt), ctype(d->dtype), (long long)d->value.i);
        return;
    case TJ_U8: case TJ_U16: case TJ_U32: case TJ_U64:
        put(b, "(%s)(%s)(%lluULL)", ctype(dt), ctype(d->dtype), (unsigned long long)d->value.i);
        return;
    default:     /* the double's bits: exact, inf and nan included */
        memcpy(&bits, &d->value.f, 8);
        put(b, "(%s)(%s)__longlong_as_double(0x%016llxLL)", ctype(dt),
            d->dtype == TJ_F32 ? "float" : "double", bits);
    }
}

/* `const T x<id> = ...;`: leaf l at the loop index i0..i<D-1> */
static void put_leaf(sbuf *b, const tj_graph *g, const tj_group *gr, int l, int D, int ind) {
    const tj_leaf *lf = &gr->leaves[l];
    if (lf->gather >= 0) return;   /* read by its GATHER node, at the index it computes */
    const char *t = ctype(g->nodes[lf->node].dtype);
    put(b, "%*sconst %s x%d = ", ind, "", t, (int)lf->node);
    int kind = leaf_kind(g, lf);
    if (kind == LEAF_CONST) {
        put_const(b, &g->slots[lf->slot], g->nodes[lf->node].dtype);
    } else if (kind == LEAF_VALUE) {
        put(b, "(%s)*(const %s *)&A.P[%d]", t, ctype(g->slots[lf->slot].dtype), (int)lf->slot);
    } else {
        sbuf at = {0};
        put(&at, "bl%d", l);
        for (int d = 0; d < D && !lf->uniform; d++) put(&at, " + i%d * l%d_%d", d, l, d);
        if (lf->slot < 0) tj_emit_iota_value(b, lf, at.buf ? at.buf : "0");
        else put(b, "*(const %s *)(%s)", t, at.buf ? at.buf : "0");
        b->failed |= at.failed;
        free(at.buf);
    }
    put(b, ";\n");
}

/* `T x<id> = data[... idx ...];`: GATHER node id reads its data leaf in place, the
 * gathered dim at the (wrapped) index; out of bounds: the error record, and 0. */
static void put_gather(sbuf *b, const tj_graph *g, const tj_group *gr, int32_t id, int D,
                       int ind) {
    const tj_node *n = &g->nodes[id];
    int dim = (int)n->axes + (gr->ndim - n->ndim), l = 0;
    while (l < gr->n_leaves && !(gr->leaves[l].node == n->in[0] && gr->leaves[l].gather == dim)) l++;
    if (l == gr->n_leaves) { b->failed = 1; return; }
    const tj_leaf *lf = &gr->leaves[l];
    const char *t = ctype(n->dtype);
    put(b, "%*s%s x%d = (%s)0;\n%*s{\n", ind, "", t, (int)id, t, ind, "");
    put(b, "%*s    long long v_ = (long long)x%d;\n%*s    if (v_ < 0) v_ += %lldLL;\n", ind, "",
        (int)n->in[1], ind, "", (long long)lf->glen);
    put(b, "%*s    if (v_ >= 0 && v_ < %lldLL) x%d = *(const %s *)(bl%d + v_ * g%d", ind, "",
        (long long)lf->glen, (int)id, t, l, l);
    for (int d = 0; d < D && !lf->uniform; d++) put(b, " + i%d * l%d_%d", d, l, d);
    put(b, ");\n%*s    else tj_gather_fail(A.W, (long long)x%d, %lldLL, %lldLL);\n%*s}\n",
        ind, "", (int)n->in[1], (long long)lf->glen, (long long)n->value.i, ind, "");
}

/* The element's leaves and nodes (the reduction or scan node itself excluded). */
static void put_element(sbuf *b, const tj_graph *g, const tj_group *gr, int D, int ind) {
    for (int l = 0; l < gr->n_leaves; l++) put_leaf(b, g, gr, l, D, ind);
    for (int k = 0; k < gr->n_nodes; k++) {
        if (gr->nodes[k] == gr->red) continue;
        if (g->nodes[gr->nodes[k]].op == TJ_OP_GATHER) {
            put_gather(b, g, gr, gr->nodes[k], D, ind);
            continue;
        }
        put(b, "%*s", ind, "");
        tj_emit_elem_node(b, g, &g->nodes[gr->nodes[k]]);
    }
}

/* Output o's element at the loop index (a concatenation's part: its region). */
static void put_store(sbuf *b, const tj_graph *g, const tj_group *gr, int o, int D, int ind,
                      const char *value) {
    put(b, "%*s*(%s *)(P[%d]", ind, "", ctype(g->nodes[gr->outs[o].node].dtype),
        (int)gr->outs[o].slot);
    if (gr->cat >= 0 && gr->cat_off)
        put(b, " + %lldLL * S[%d][%d]", (long long)gr->cat_off, (int)gr->outs[o].slot,
            (int)g->nodes[gr->cat].axes);
    for (int d = 0; d < D; d++) put(b, " + i%d * o%d_%d", d, o, d);
    put(b, ") = %s;\n", value);
}

/* const long long i<d> for the dims in `dims` (n of them, C order) from index `from`. */
static void put_unravel(sbuf *b, const tj_loop *q, const int *dims, int n, const char *from,
                        int ind) {
    if (!n) return;
    put(b, "%*slong long r_ = %s;\n", ind, "", from);
    for (int k = n - 1; k > 0; k--) {
        int d = dims[k];
        put(b, "%*sconst long long i%d = r_ %% %lldLL; r_ /= %lldLL;\n", ind, "", d,
            (long long)q->shape[d], (long long)q->shape[d]);
    }
    put(b, "%*sconst long long i%d = r_;\n", ind, "", dims[0]);
}

static void put_prologue(sbuf *b, const tj_graph *g, const tj_group *gr, const char *name) {
    put(b, "\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const tj_args A) {\n",
        TJ_CU_THREADS, name);
    put(b, "    char *const *P = A.P;\n    const long long (*S)[TJ_ND] = A.S;\n");
    const int D = gr->loop.D;
    tj_emit_leaf_setup(b, g, gr, D);
    for (int o = gr->red >= 0; o < gr->n_outs; o++)
        for (int d = 0; d < D; d++) tj_emit_out_stride(b, gr, o, d);
}

static int64_t grid_for(int64_t work, int64_t per_block) {
    int64_t n = (work + per_block - 1) / per_block;
    return n < TJ_CU_MAX_GRID ? n : TJ_CU_MAX_GRID;
}

/* Elements per thread and trip of a large elementwise kernel: each thread loads the
 * leaves of TJ_CU_UNROLL elements (one block width apart, so each load stays coalesced)
 * before it stores any, so the loads are in flight together (the compiler cannot move a
 * load past a store it cannot prove apart). One element a thread left an H100 at ~60% of
 * its copy bandwidth on a 16M-float chain (too few bytes in flight per SM; 4: ~83%);
 * below TJ_CU_UNROLL_MIN elements one a thread is faster (a 16-float call took 6.1 µs
 * with one, 9 µs with four, measured). */
#define TJ_CU_UNROLL 4
#define TJ_CU_UNROLL_MIN (1 << 16)

/* `{ const long long e = e0 + u * threads; if (e < total) {` and the loop index */
static void put_lane(sbuf *b, const tj_loop *q, const int *dims, int u) {
    put(b, "        {\n            const long long e = e0 + %dLL;\n", u * TJ_CU_THREADS);
    put(b, "            if (e < %lldLL) {\n", (long long)q->total);
    put_unravel(b, q, dims, q->D, "e", 16);
}

static void emit_elementwise(sbuf *b, const tj_graph *g, const tj_group *gr, int gi,
                             tj_cuda_launch *L) {
    const tj_loop *q = &gr->loop;
    int dims[TJ_MAXDIM];
    for (int d = 0; d < q->D; d++) dims[d] = d;
    char name[32];
    snprintf(name, sizeof name, "tj_g%d", gi);
    put_prologue(b, g, gr, name);
    const int unroll = q->total >= TJ_CU_UNROLL_MIN ? TJ_CU_UNROLL : 1;
    const int tile = TJ_CU_THREADS * unroll;
    put(b, "    for (long long e0 = (long long)blockIdx.x * %d + threadIdx.x; e0 < %lldLL;\n"
           "         e0 += (long long)gridDim.x * %d) {\n", tile, (long long)q->total, tile);
    for (int o = 0; o < gr->n_outs; o++)
        put(b, "        %s r%d_[%d];\n", ctype(g->nodes[gr->outs[o].node].dtype), o, unroll);
    for (int u = 0; u < unroll; u++) {   /* every lane's loads and arithmetic */
        put_lane(b, q, dims, u);
        put_element(b, g, gr, q->D, 16);
        for (int o = 0; o < gr->n_outs; o++)
            put(b, "                r%d_[%d] = x%d;\n", o, u, (int)gr->outs[o].node);
        put(b, "            }\n        }\n");
    }
    for (int u = 0; u < unroll; u++) {   /* then the stores */
        put_lane(b, q, dims, u);
        for (int o = 0; o < gr->n_outs; o++) {
            char v[24];
            snprintf(v, sizeof v, "r%d_[%d]", o, u);
            put_store(b, g, gr, o, q->D, 16, v);
        }
        put(b, "            }\n        }\n");
    }
    put(b, "    }\n}\n");
    *L = (tj_cuda_launch){gi, 0, grid_for(q->total, tile), TJ_CU_THREADS};
}

/* ---- reductions --------------------------------------------------------------- */

static void put_identity(sbuf *b, int op, int acc) {
    int id = tj_ops[op].ident;
    if (id == TJ_ID_ZERO || id == TJ_ID_ONE) { put(b, "(%s)%d", ctype(acc), id == TJ_ID_ONE); return; }
    int low = id == TJ_ID_LOWEST;
    switch (acc) {
    case TJ_BOOL: put(b, low ? "false" : "true"); break;
    case TJ_F32: case TJ_F64: put(b, "(%s)%sINFINITY", ctype(acc), low ? "-" : ""); break;
    default: {   /* an integer's least or greatest value, spelled from its bits */
        int64_t v = low ? tj_dtype_min(acc) : tj_dtype_max(acc);
        put(b, "(%s)%lluULL", ctype(acc), (unsigned long long)v);
    }
    }
}

/* argmax/argmin: the fold carries the reduced element's flat index (loop order, the
 * CPU's), and TJ_F_INDEX marks them */
static int is_arg(const tj_node *r) { return (tj_ops[r->op].flags & TJ_F_INDEX) != 0; }

/* tj_c<gi>(a, b): the fold's combiner in the accumulation dtype (max/min: NaN wins);
 * argmax/argmin: tj_c<gi>(a, ai, b, bi) takes (b, bi) into (a, ai) when b is better, a
 * NaN a is not, or they tie (NaN with NaN too) and bi is lower: the first index wins
 * whatever order the tree folds in */
static void put_combiner(sbuf *b, int gi, int op, int acc) {
    const char *t = ctype(acc);
    int comb = tj_ops[op].comb;
    if (tj_ops[op].flags & TJ_F_INDEX) {
        const char *gt = comb == TJ_OP_MAX ? ">" : "<";
        put(b, "\nstatic inline void tj_c%d(%s &a, long long &ai, %s b, long long bi) {\n"
               "    if (", gi, t, t);
        if (acc >= TJ_F32)
            put(b, "a != a ? (b != b && bi < ai) : (b != b || b %s a || (b == a && bi < ai))", gt);
        else
            put(b, "b %s a || (b == a && bi < ai)", gt);
        put(b, ") { a = b; ai = bi; }\n}\n");
        return;
    }
    put(b, "\nstatic inline %s tj_c%d(%s a, %s b) { return ", t, gi, t, t);
    if (comb == TJ_OP_ADD) put(b, acc == TJ_BOOL ? "a || b" : "a + b");
    else if (comb == TJ_OP_MUL) put(b, acc == TJ_BOOL ? "a && b" : "a * b");
    else if (acc >= TJ_F32) put(b, "((b %s a || b != b) && a == a) ? b : a", comb == TJ_OP_MAX ? ">" : "<");
    else put(b, "b %s a ? b : a", comb == TJ_OP_MAX ? ">" : "<");
    put(b, "; }\n");
}

/* Stores fold value `v` (accumulation dtype) as output 0 at output index m. */
static void put_red_store(sbuf *b, const tj_graph *g, const tj_group *gr, const int *kept,
                          int nk, int ind, const char *v) {
    put(b, "%*s{\n", ind, "");
    put_unravel(b, &gr->loop, kept, nk, "m", ind + 4);
    put(b, "%*s*(%s *)(P[%d]", ind + 4, "", ctype(g->nodes[gr->red].dtype), (int)gr->outs[0].slot);
    for (int k = 0; k < nk; k++) put(b, " + i%d * o0_%d", kept[k], kept[k]);
    put(b, ") = (%s)%s;\n%*s}\n", ctype(g->nodes[gr->red].dtype), v, ind, "");
}

/* `dst = tj_c<gi>(dst, src)`, or for an argmax/argmin `tj_c<gi>(dst, dsti, src, srci)` */
static void put_fold(sbuf *b, int gi, int arg, int ind, const char *dst, const char *dsti,
                     const char *src, const char *srci) {
    if (arg) put(b, "%*stj_c%d(%s, %s, %s, %s);\n", ind, "", gi, dst, dsti, src, srci);
    else put(b, "%*s%s = tj_c%d(%s, %s);\n", ind, "", dst, gi, dst, src);
}

static void emit_reduction(sbuf *b, const tj_graph *g, const tj_group *gr, int gi,
                           int64_t *work_off, tj_cuda_launch *L, int *n_launch) {
    const tj_loop *q = &gr->loop;
    const tj_node *r = &g->nodes[gr->red];
    const int arg = is_arg(r);
    int acc = arg ? g->nodes[r->in[0]].dtype : tj_red_acc_dtype(r->op, g->nodes[r->in[0]].dtype);
    int kept[TJ_MAXDIM], red[TJ_MAXDIM], nk = 0, nr = 0;
    int64_t M = 1, R = 1;
    for (int d = 0; d < q->D; d++) {
        if (gr->ndim && gr->outs[0].map[d] >= 0) { kept[nk++] = d; M *= q->shape[d]; }
        else { red[nr++] = d; R *= q->shape[d]; }
    }
    int threads = 32;
    while (threads < TJ_CU_THREADS && threads < R) threads *= 2;
    int64_t chunk = R, parts = 1;
    if (R > TJ_CU_CHUNK) {   /* fixed chunks: the partials' grouping depends on R alone */
        chunk = (R + TJ_CU_MAX_PARTS - 1) / TJ_CU_MAX_PARTS;
        if (chunk < TJ_CU_CHUNK) chunk = TJ_CU_CHUNK;
        chunk = (chunk + threads - 1) / threads * threads;
        parts = (R + chunk - 1) / chunk;
    }
    int64_t woff = *work_off, woffi = 0;   /* partials (and an arg fold's indices) */
    if (parts > 1) *work_off += (M * parts * tj_dtype_size(acc) + 255) / 256 * 256;
    if (parts > 1 && arg) {
        woffi = *work_off;
        *work_off += (M * parts * 8 + 255) / 256 * 256;
    }
    put_combiner(b, gi, r->op, acc);
    char name[32];
    snprintf(name, sizeof name, "tj_g%d", gi);
    put_prologue(b, g, gr, name);
    for (int d = 0; d < q->D; d++)   /* the output's strides along the kept dims */
        if (gr->ndim && gr->outs[0].map[d] >= 0) tj_emit_out_stride(b, gr, 0, d);
    const char *A = ctype(acc);
    put(b, "    __shared__ %s sh_[%d];\n", A, threads);
    if (arg) put(b, "    __shared__ long long shi_[%d];\n", threads);
    put(b, "    for (long long blk = blockIdx.x; blk < %lldLL; blk += gridDim.x) {\n",
        (long long)(M * parts));
    put(b, "        const long long m = blk / %lldLL, r0 = blk %% %lldLL * %lldLL;\n",
        (long long)parts, (long long)parts, (long long)chunk);
    put(b, "        const long long r1 = r0 + %lldLL < %lldLL ? r0 + %lldLL : %lldLL;\n",
        (long long)chunk, (long long)R, (long long)chunk, (long long)R);
    put(b, "        %s acc_ = ", A);
    put_identity(b, r->op, acc);
    put(b, ";\n");
    if (arg) put(b, "        long long acci_ = 0x7fffffffffffffffLL;\n");
    put(b, "        for (long long rr = r0 + threadIdx.x; rr < r1; rr += %d) {\n", threads);
    put_unravel(b, q, kept, nk, "m", 12);
    put(b, "            {\n");
    put_unravel(b, q, red, nr, "rr", 16);
    put_element(b, g, gr, q->D, 16);
    for (int o = 1; o < gr->n_outs; o++) {
        char v[24];
        snprintf(v, sizeof v, "x%d", (int)gr->outs[o].node);
        put_store(b, g, gr, o, q->D, 16, v);
    }
    char x[40];
    snprintf(x, sizeof x, "(%s)x%d", A, (int)r->in[0]);
    put_fold(b, gi, arg, 16, "acc_", "acci_", x, "rr");
    put(b, "            }\n        }\n");
    /* a fixed tree over the block's threads */
    put(b, "        sh_[threadIdx.x] = acc_;\n");
    if (arg) put(b, "        shi_[threadIdx.x] = acci_;\n");
    put(b, "        __syncthreads();\n        for (int s_ = %d; s_ > 0; s_ >>= 1) {\n"
           "            if ((int)threadIdx.x < s_)\n", threads / 2);
    put_fold(b, gi, arg, 16, "sh_[threadIdx.x]", "shi_[threadIdx.x]", "sh_[threadIdx.x + s_]",
             "shi_[threadIdx.x + s_]");
    put(b, "            __syncthreads();\n        }\n");
    put(b, "        if (threadIdx.x == 0) {\n");
    if (parts > 1) {
        put(b, "            ((%s *)(A.W + %lldLL))[blk] = sh_[0];\n", A, (long long)woff);
        if (arg) put(b, "            ((long long *)(A.W + %lldLL))[blk] = shi_[0];\n", (long long)woffi);
    } else {
        put_red_store(b, g, gr, kept, nk, 12, arg ? "shi_[0]" : "sh_[0]");
    }
    put(b, "        }\n        __syncthreads();\n    }\n}\n");
    L[(*n_launch)++] = (tj_cuda_launch){gi, 0, M * parts < TJ_CU_MAX_GRID ? M * parts : TJ_CU_MAX_GRID,
                                        threads};
    if (parts == 1) return;
    /* the second pass: each output's partials, in order */
    snprintf(name, sizeof name, "tj_g%d_fin", gi);
    put(b, "\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const tj_args A) {\n",
        TJ_CU_THREADS, name);
    put(b, "    char *const *P = A.P;\n    const long long (*S)[TJ_ND] = A.S;\n");
    for (int d = 0; d < q->D; d++)
        if (gr->ndim && gr->outs[0].map[d] >= 0) tj_emit_out_stride(b, gr, 0, d);
    put(b, "    const %s *w_ = (const %s *)(A.W + %lldLL);\n", A, A, (long long)woff);
    if (arg) put(b, "    const long long *wi_ = (const long long *)(A.W + %lldLL);\n", (long long)woffi);
    put(b, "    for (long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x; m < %lldLL;\n"
           "         m += (long long)gridDim.x * blockDim.x) {\n", (long long)M);
    put(b, "        %s a_ = w_[m * %lldLL];\n", A, (long long)parts);
    if (arg) put(b, "        long long ai_ = wi_[m * %lldLL];\n", (long long)parts);
    put(b, "        for (long long k = 1; k < %lldLL; k++)\n", (long long)parts);
    snprintf(x, sizeof x, "w_[m * %lldLL + k]", (long long)parts);
    char xi[40];
    snprintf(xi, sizeof xi, "wi_[m * %lldLL + k]", (long long)parts);
    put_fold(b, gi, arg, 12, "a_", "ai_", x, xi);
    put_red_store(b, g, gr, kept, nk, 8, arg ? "ai_" : "a_");
    put(b, "    }\n}\n");
    L[(*n_launch)++] = (tj_cuda_launch){gi, 1, grid_for(M, TJ_CU_THREADS), TJ_CU_THREADS};
}

/* ---- scans ------------------------------------------------------------------------ */

/* `dst = (T)(dst OP src);`: a scan's step in its result dtype, as the CPU's (reduce_prims.c) */
static void put_scan_step(sbuf *b, const tj_node *r, int ind, const char *dst, const char *src) {
    put(b, "%*s%s = (%s)(%s %c %s);\n", ind, "", dst, ctype(r->dtype), dst,
        r->op == TJ_OP_CUMPROD ? '*' : '+', src);
}

/* The loop body at scanned index j: the element, `run` advanced by it; with `store`, the
 * scan's value and the group's other outputs stored. */
static void put_scan_body(sbuf *b, const tj_graph *g, const tj_group *gr, int sd, int ind,
                          const char *run, int store) {
    const tj_node *r = &g->nodes[gr->red];
    const int D = gr->loop.D;
    put(b, "%*s{\n%*sconst long long i%d = j;\n", ind, "", ind + 4, "", sd);
    put_element(b, g, gr, D, ind + 4);
    char x[24];
    snprintf(x, sizeof x, "x%d", (int)r->in[0]);
    put_scan_step(b, r, ind + 4, run, x);
    for (int o = 0; store && o < gr->n_outs; o++) {
        snprintf(x, sizeof x, "x%d", (int)gr->outs[o].node);
        put_store(b, g, gr, o, D, ind + 4, o == 0 ? run : x);
    }
    put(b, "%*s}\n", ind, "");
}

/* A cumsum/cumprod group (the scan is its last node and outs[0]; the loop uncollapsed,
 * its dims the group's): rows of the other dims, one thread each (short rows) or one
 * block each (long rows: chunks, their prefixes in order, then the chunks again). */
static void emit_scan(sbuf *b, const tj_graph *g, const tj_group *gr, int gi, tj_cuda_launch *L) {
    const tj_loop *q = &gr->loop;
    const tj_node *r = &g->nodes[gr->red];
    const int D = q->D, sd = (int)r->axes;
    const int64_t len = q->shape[sd], rows = len ? q->total / len : 0;
    const int seq = len <= TJ_CU_SCAN_SEQ;
    int kept[TJ_MAXDIM], nk = 0;
    for (int d = 0; d < D; d++)
        if (d != sd) kept[nk++] = d;
    const char *T = ctype(r->dtype);
    char name[32];
    snprintf(name, sizeof name, "tj_g%d", gi);
    put_prologue(b, g, gr, name);
    for (int d = 0; d < D; d++) tj_emit_out_stride(b, gr, 0, d);
    if (seq) {
        put(b, "    for (long long row = (long long)blockIdx.x * %d + threadIdx.x; row < %lldLL;\n"
               "         row += (long long)gridDim.x * %d) {\n", TJ_CU_THREADS, (long long)rows,
            TJ_CU_THREADS);
    } else {
        put(b, "    __shared__ %s part_[%d];\n", T, TJ_CU_THREADS);
        put(b, "    for (long long row = blockIdx.x; row < %lldLL; row += gridDim.x) {\n",
            (long long)rows);
    }
    put_unravel(b, q, kept, nk, "row", 8);
    put(b, "        %s run_ = ", T);
    put_identity(b, r->op, r->dtype);
    put(b, ";\n");
    if (seq) {
        put(b, "        for (long long j = 0; j < %lldLL; j++)\n", (long long)len);
        put_scan_body(b, g, gr, sd, 8, "run_", 1);
        put(b, "    }\n}\n");
        *L = (tj_cuda_launch){gi, 0, grid_for(rows, TJ_CU_THREADS), TJ_CU_THREADS};
        return;
    }
    const int64_t chunk = (len + TJ_CU_THREADS - 1) / TJ_CU_THREADS;
    put(b, "        const long long j0 = (long long)threadIdx.x * %lldLL;\n", (long long)chunk);
    put(b, "        const long long j1 = j0 + %lldLL < %lldLL ? j0 + %lldLL : %lldLL;\n",
        (long long)chunk, (long long)len, (long long)chunk, (long long)len);
    put(b, "        for (long long j = j0; j < j1; j++)\n");
    put_scan_body(b, g, gr, sd, 8, "run_", 0);
    put(b, "        part_[threadIdx.x] = run_;\n        __syncthreads();\n");
    put(b, "        if (threadIdx.x == 0) {   /* the chunks' prefixes, in order */\n");
    put(b, "            %s pre_ = ", T);
    put_identity(b, r->op, r->dtype);
    put(b, ";\n            for (int t_ = 0; t_ < %d; t_++) {\n", TJ_CU_THREADS);
    put(b, "                const %s v_ = part_[t_];\n                part_[t_] = pre_;\n", T);
    put_scan_step(b, r, 16, "pre_", "v_");
    put(b, "            }\n        }\n        __syncthreads();\n");
    put(b, "        run_ = part_[threadIdx.x];\n");
    put(b, "        for (long long j = j0; j < j1; j++)\n");
    put_scan_body(b, g, gr, sd, 8, "run_", 1);
    put(b, "        __syncthreads();\n    }\n}\n");
    *L = (tj_cuda_launch){gi, 0, rows < TJ_CU_MAX_GRID ? rows : TJ_CU_MAX_GRID, TJ_CU_THREADS};
}

/* ---- matrix products ---------------------------------------------------------------- */

#define TJ_CU_TILE 16   /* a matrix product's output tile: TILE x TILE threads, one element each */

/* Whether contraction group gr is emitted as a tiled product (emit_matmul): float32 or
 * float64 factors read from memory (not an IOTA's indices) and at least a tile's rows
 * and columns; a matrix-vector product or a dot keeps the reduction's kernel (one
 * block per output, a tree over K). */
static int tiled(const tj_graph *g, const tj_group *gr) {
    int dt = gr->red >= 0 ? g->nodes[g->nodes[gr->red].in[0]].dtype : -1;
    return gr->contract == TJ_CONTRACT_F && (dt == TJ_F32 || dt == TJ_F64) &&
           gr->mm_m >= 0 && gr->mm_n >= 0 && gr->cat < 0 &&
           gr->shape[gr->mm_m] >= TJ_CU_TILE && gr->shape[gr->mm_n] >= TJ_CU_TILE &&
           leaf_kind(g, &gr->leaves[gr->mm_a]) == LEAF_MEM && gr->leaves[gr->mm_a].slot >= 0 &&
           leaf_kind(g, &gr->leaves[gr->mm_b]) == LEAF_MEM && gr->leaves[gr->mm_b].slot >= 0;
}

/* A float contraction group (lowering's GEMM form: rows mm_m, columns mm_n, K the last
 * dim, the others batch dims) as shared-memory tiles: each thread sums its output's K
 * products in order, in the sum's accumulation dtype (products rounded in the factors'
 * dtype, as the reduction's kernel does): deterministic, no atomics. With one batch
 * dim at most, the product is also described for cuBLAS (*gm; the runtime uses it when
 * cuBLAS loads and the call's strides map, else this kernel). */
static void gemm_operand(tj_gemm_operand *x, const tj_leaf *lf, int slot, const int *dims) {
    memset(x, 0, sizeof *x);
    x->slot = slot;
    if (lf) {
        x->flat = lf->flat;
        memcpy(x->off, lf->off, sizeof x->off);
    }
    for (int r = 0; r < 3; r++) {
        x->map[r] = -1;
        if (dims[r] < 0) continue;
        x->map[r] = lf ? lf->map[dims[r]] : -1;
        x->step[r] = lf ? lf->step[dims[r]] : 1;
    }
}

static void emit_matmul(sbuf *b, const tj_graph *g, const tj_group *gr, int gi, tj_cuda_launch *L,
                        tj_cuda_gemm *gm) {
    const tj_loop *q = &gr->loop;
    const tj_node *r = &g->nodes[gr->red];
    const int D = q->D, mm = gr->mm_m, nn = gr->mm_n, la = gr->mm_a, lb = gr->mm_b, t = TJ_CU_TILE;
    const char *T = ctype(g->nodes[r->in[0]].dtype);
    const char *A = ctype(tj_red_acc_dtype(r->op, g->nodes[r->in[0]].dtype));
    int bd[TJ_MAXDIM], nb = 0;
    int64_t B = 1, M = q->shape[mm], N = q->shape[nn], K = q->shape[D - 1];
    for (int d = 0; d < D - 1; d++)
        if (d != mm && d != nn) { bd[nb++] = d; B *= q->shape[d]; }
    const int64_t TM = (M + t - 1) / t, TN = (N + t - 1) / t, blocks = B * TM * TN;
    char name[32];
    snprintf(name, sizeof name, "tj_g%d", gi);
    put_prologue(b, g, gr, name);
    for (int d = 0; d < D; d++) tj_emit_out_stride(b, gr, 0, d);
    put(b, "    __shared__ %s as_[%d][%d];\n    __shared__ %s bs_[%d][%d];\n", T, t, t + 1, T, t, t + 1);
    put(b, "    const int ty = threadIdx.x / %d, tx = threadIdx.x %% %d;\n", t, t);
    put(b, "    for (long long blk = blockIdx.x; blk < %lldLL; blk += gridDim.x) {\n", (long long)blocks);
    put(b, "        const long long tn_ = blk %% %lldLL, tm_ = blk / %lldLL %% %lldLL, bb_ = blk / %lldLL;\n",
        (long long)TN, (long long)TN, (long long)TM, (long long)(TN * TM));
    put_unravel(b, q, bd, nb, "bb_", 8);
    put(b, "        const char *pa = bl%d, *pb = bl%d;\n        char *po = P[%d];\n", la, lb,
        (int)gr->outs[0].slot);
    for (int k = 0; k < nb; k++)
        put(b, "        pa += i%d * l%d_%d; pb += i%d * l%d_%d; po += i%d * o0_%d;\n", bd[k], la,
            bd[k], bd[k], lb, bd[k], bd[k], bd[k]);
    put(b, "        const long long m = tm_ * %d + ty, n = tn_ * %d + tx;\n", t, t);
    put(b, "        %s acc_ = (%s)0;\n", A, A);
    put(b, "        for (long long k0 = 0; k0 < %lldLL; k0 += %d) {\n", (long long)K, t);
    put(b, "            const long long am = tm_ * %d + ty, ak = k0 + tx, bk = k0 + ty, bn = tn_ * %d + tx;\n", t, t);
    put(b, "            as_[ty][tx] = am < %lldLL && ak < %lldLL ? *(const %s *)(pa + am * l%d_%d + ak * l%d_%d) : (%s)0;\n",
        (long long)M, (long long)K, T, la, mm, la, D - 1, T);
    put(b, "            bs_[ty][tx] = bk < %lldLL && bn < %lldLL ? *(const %s *)(pb + bk * l%d_%d + bn * l%d_%d) : (%s)0;\n",
        (long long)K, (long long)N, T, lb, D - 1, lb, nn, T);
    put(b, "            __syncthreads();\n");
    put(b, "            const int kn = %lldLL - k0 < %d ? (int)(%lldLL - k0) : %d;\n", (long long)K, t,
        (long long)K, t);
    put(b, "            for (int kk = 0; kk < kn; kk++) acc_ = acc_ + (%s)(%s)(as_[ty][kk] * bs_[kk][tx]);\n", A, T);
    put(b, "            __syncthreads();\n        }\n");
    put(b, "        if (m < %lldLL && n < %lldLL) *(%s *)(po + m * o0_%d + n * o0_%d) = (%s)acc_;\n",
        (long long)M, (long long)N, ctype(r->dtype), mm, nn, ctype(r->dtype));
    put(b, "    }\n}\n");
    *L = (tj_cuda_launch){gi, 0, blocks < TJ_CU_MAX_GRID ? blocks : TJ_CU_MAX_GRID, t * t, 0};
    if (nb > 1 || !gm) return;
    gm->dtype = g->nodes[r->in[0]].dtype;
    gm->M = M; gm->N = N; gm->K = K; gm->batch = B;
    const int bdim = nb ? bd[0] : -1;
    int da[3] = {mm, D - 1, bdim}, db[3] = {D - 1, nn, bdim}, dc[3] = {mm, nn, bdim};
    gemm_operand(&gm->a, &gr->leaves[la], gr->leaves[la].slot, da);
    gemm_operand(&gm->b, &gr->leaves[lb], gr->leaves[lb].slot, db);
    gemm_operand(&gm->c, NULL, gr->outs[0].slot, dc);
    for (int k = 0; k < 3; k++)   /* the output's slot dims along its roles */
        gm->c.map[k] = dc[k] >= 0 ? gr->outs[0].map[dc[k]] : -1;
    gm->dtype = r->dtype == gm->dtype ? gm->dtype : -1;   /* (a product of another dtype: the kernel) */
    L->gemm = gm->dtype >= 0 ? 1 : 0;
}

/* NULL when the CUDA backend compiles group gr, else what it does not compile yet. */
static const char *unsupported(const tj_graph *g, const tj_group *gr) {
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *n = &g->nodes[gr->nodes[k]];
        int kind = tj_ops[n->op].kind;
        if (gr->nodes[k] == gr->red && kind == TJ_K_RED &&
            (tj_red_splittable(n->op) || is_arg(n)))
            continue;
        if (gr->nodes[k] == gr->red && kind == TJ_K_SCAN && k == gr->n_nodes - 1 &&
            gr->loop.D == gr->ndim && (int)n->axes < gr->ndim && gr->outs[0].node == gr->red &&
            (n->op == TJ_OP_CUMSUM || n->op == TJ_OP_CUMPROD))
            continue;
        if (n->op == TJ_OP_GATHER) continue;
        if (kind != TJ_K_EW && kind != TJ_K_CAST) return tj_ops[n->op].name;
    }
    if (gr->red >= 0 && tj_ops[g->nodes[gr->red].op].kind != TJ_K_RED &&
        tj_ops[g->nodes[gr->red].op].kind != TJ_K_SCAN)
        return tj_ops[g->nodes[gr->red].op].name;
    return NULL;
}

int tj_emit_cuda_source(const tj_graph *g, const tj_schedule *s, tj_cuda_program *out,
                        tj_error *err) {
    memset(out, 0, sizeof *out);
    sbuf *b = &out->src;
    int nd = 1;
    for (int i = s->first_scratch; i < s->n_slots; i++)
        if (s->slot_ndim[i] > nd) nd = s->slot_ndim[i];
    for (int gi = 0; gi < s->n_groups; gi++)   /* leaves' dims (their slots' strides) */
        for (int l = 0; l < s->groups[gi].n_leaves; l++)
            for (int d = 0; d < s->groups[gi].ndim; d++)
                if (s->groups[gi].leaves[l].map[d] + 1 > nd) nd = s->groups[gi].leaves[l].map[d] + 1;
    for (int gi = 0; gi < s->n_groups; gi++)
        for (int l = 0; l < s->groups[gi].n_leaves; l++)
            for (int k = 0; k < TJ_MAXDIM; k++)
                if (s->groups[gi].leaves[l].off[k] && !s->groups[gi].leaves[l].flat && k + 1 > nd)
                    nd = k + 1;
    out->n_slots = s->n_slots;
    out->nd = nd;
    out->param_bytes = 8 * (int64_t)s->n_slots * (1 + nd) + 8;
    if (out->param_bytes > TJ_CU_PARAM_MAX) {
        tj_error_set(err, TJ_ERR_VALUE, "the CUDA backend cannot pass %d arrays of up to %d "
                     "dims to one kernel (%lld bytes of parameters, at most %d)", s->n_slots, nd,
                     (long long)out->param_bytes, TJ_CU_PARAM_MAX);
        goto fail;
    }
    for (int gi = 0; gi < s->n_groups; gi++) {
        const char *why = unsupported(g, &s->groups[gi]);
        if (why) {
            tj_error_set(err, TJ_ERR_VALUE, "the CUDA backend does not compile %s yet", why);
            goto fail;
        }
    }
    out->launches = calloc((size_t)(2 * s->n_groups + 1), sizeof *out->launches);
    out->by_value = calloc((size_t)(s->n_slots + 1), 1);
    out->gemms = calloc((size_t)(s->n_groups + 1), sizeof *out->gemms);
    if (!out->launches || !out->by_value || !out->gemms) goto nomem;
    put(b, "/* tracejit CUDA kernels */\n#define TJ_ELEM_ONLY\n#include \"prims.c\"\n");
    /* the generated code declares a stride per dim whether or not a dim is read */
    put(b, "#pragma nv_diag_suppress 177\n#pragma nv_diag_suppress 550\n");
    put(b, "#define TJ_ND %d\n", nd);
    put(b, "typedef struct { char *P[%d]; long long S[%d][TJ_ND]; char *W; } tj_args;\n",
        s->n_slots, s->n_slots);
    int64_t work = 0;
    out->err_off = -1;
    for (int gi = 0; gi < s->n_groups; gi++)
        for (int l = 0; l < s->groups[gi].n_leaves; l++)
            if (s->groups[gi].leaves[l].gather >= 0) out->err_off = 0;
    if (out->err_off == 0) {   /* the error record: W's first 4 int64, the first wins */
        work = 256;
        put(b, "\nstatic inline void tj_gather_fail(char *W, long long idx, long long len, "
               "long long axis) {\n    unsigned long long *e = (unsigned long long *)W;\n"
               "    if (atomicCAS(e, 0ULL, 1ULL) == 0ULL) {\n"
               "        e[1] = (unsigned long long)idx;\n        e[2] = (unsigned long long)len;\n"
               "        e[3] = (unsigned long long)axis;\n    }\n}\n");
    }
    for (int gi = 0; gi < s->n_groups; gi++) {
        tj_group gc = s->groups[gi], *gr = &gc;
        if (gr->contract) {   /* lowering leaves a GEMM's loop to BLAS: its dims as they are */
            gc.loop.D = gr->ndim;
            gc.loop.total = 1;
            for (int d = 0; d < gr->ndim; d++) gc.loop.total *= gc.loop.shape[d] = gr->shape[d];
        }
        for (int l = 0; l < gr->n_leaves; l++)
            if (leaf_kind(g, &gr->leaves[l]) == LEAF_VALUE) out->by_value[gr->leaves[l].slot] = 1;
        if (tiled(g, gr)) {
            tj_cuda_launch *L = &out->launches[out->n_launches++];
            emit_matmul(b, g, gr, gi, L, &out->gemms[out->n_gemms]);
            if (L->gemm) L->gemm = ++out->n_gemms;
        }
        else if (gr->red >= 0 && tj_ops[g->nodes[gr->red].op].kind == TJ_K_SCAN)
            emit_scan(b, g, gr, gi, &out->launches[out->n_launches++]);
        else if (gr->red >= 0) emit_reduction(b, g, gr, gi, &work, out->launches, &out->n_launches);
        else emit_elementwise(b, g, gr, gi, &out->launches[out->n_launches++]);
    }
    out->work_bytes = work;
    if (b->failed) goto nomem;
    return 0;
nomem:
    tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
fail:
    tj_cuda_program_free(out);
    return -1;
}

void tj_cuda_program_free(tj_cuda_program *p) {
    free(p->src.buf);
    free(p->launches);
    free(p->by_value);
    free(p->gemms);
    memset(p, 0, sizeof *p);
}
