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
 * A matrix product (lowering's contraction group) is such a sum, of products: correct,
 * far from cuBLAS's speed (not wired yet). Not yet: argmax/argmin, scans, gathers (a
 * TJ_ERR_VALUE naming the op, never a wrong kernel). Launch geometry is decided here until lowering has a GPU
 * strategy (ir.h's tj_loop is the CPU's). */
#include "emit/emit.h"
#include <stdio.h>

typedef tj_sbuf sbuf;
#define put tj_put

#define TJ_CU_THREADS 256          /* threads per block */
#define TJ_CU_MAX_GRID (1 << 20)   /* blocks per launch; grid-stride loops do the rest */
#define TJ_CU_CHUNK 8192           /* reduced elements per block and output, at least */
#define TJ_CU_MAX_PARTS 1024       /* partials per output (the second pass's loop) */
#define TJ_CU_PARAM_MAX 4000       /* bytes of kernel parameters every GPU accepts */

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

/* The element's leaves and nodes (the reduction node itself excluded). */
static void put_element(sbuf *b, const tj_graph *g, const tj_group *gr, int D, int ind) {
    for (int l = 0; l < gr->n_leaves; l++) put_leaf(b, g, gr, l, D, ind);
    for (int k = 0; k < gr->n_nodes; k++) {
        if (gr->nodes[k] == gr->red) continue;
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

/* tj_c<gi>(a, b): the fold's combiner in the accumulation dtype (max/min: NaN wins) */
static void put_combiner(sbuf *b, int gi, int op, int acc) {
    const char *t = ctype(acc);
    int comb = tj_ops[op].comb;
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

static void emit_reduction(sbuf *b, const tj_graph *g, const tj_group *gr, int gi,
                           int64_t *work_off, tj_cuda_launch *L, int *n_launch) {
    const tj_loop *q = &gr->loop;
    const tj_node *r = &g->nodes[gr->red];
    int acc = tj_red_acc_dtype(r->op, g->nodes[r->in[0]].dtype);
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
    int64_t woff = *work_off;
    if (parts > 1) *work_off += (M * parts * tj_dtype_size(acc) + 255) / 256 * 256;
    put_combiner(b, gi, r->op, acc);
    char name[32];
    snprintf(name, sizeof name, "tj_g%d", gi);
    put_prologue(b, g, gr, name);
    for (int d = 0; d < q->D; d++)   /* the output's strides along the kept dims */
        if (gr->ndim && gr->outs[0].map[d] >= 0) tj_emit_out_stride(b, gr, 0, d);
    const char *A = ctype(acc);
    put(b, "    __shared__ %s sh_[%d];\n", A, threads);
    put(b, "    for (long long blk = blockIdx.x; blk < %lldLL; blk += gridDim.x) {\n",
        (long long)(M * parts));
    put(b, "        const long long m = blk / %lldLL, r0 = blk %% %lldLL * %lldLL;\n",
        (long long)parts, (long long)parts, (long long)chunk);
    put(b, "        const long long r1 = r0 + %lldLL < %lldLL ? r0 + %lldLL : %lldLL;\n",
        (long long)chunk, (long long)R, (long long)chunk, (long long)R);
    put(b, "        %s acc_ = ", A);
    put_identity(b, r->op, acc);
    put(b, ";\n        for (long long rr = r0 + threadIdx.x; rr < r1; rr += %d) {\n", threads);
    put_unravel(b, q, kept, nk, "m", 12);
    put(b, "            {\n");
    put_unravel(b, q, red, nr, "rr", 16);
    put_element(b, g, gr, q->D, 16);
    for (int o = 1; o < gr->n_outs; o++) {
        char v[24];
        snprintf(v, sizeof v, "x%d", (int)gr->outs[o].node);
        put_store(b, g, gr, o, q->D, 16, v);
    }
    put(b, "                acc_ = tj_c%d(acc_, (%s)x%d);\n", gi, A, (int)r->in[0]);
    put(b, "            }\n        }\n");
    /* a fixed tree over the block's threads */
    put(b, "        sh_[threadIdx.x] = acc_;\n        __syncthreads();\n");
    put(b, "        for (int s_ = %d; s_ > 0; s_ >>= 1) {\n", threads / 2);
    put(b, "            if ((int)threadIdx.x < s_) sh_[threadIdx.x] = tj_c%d(sh_[threadIdx.x], "
           "sh_[threadIdx.x + s_]);\n            __syncthreads();\n        }\n", gi);
    put(b, "        if (threadIdx.x == 0) {\n");
    if (parts > 1)
        put(b, "            ((%s *)(A.W + %lldLL))[blk] = sh_[0];\n", A, (long long)woff);
    else
        put_red_store(b, g, gr, kept, nk, 12, "sh_[0]");
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
    put(b, "    for (long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x; m < %lldLL;\n"
           "         m += (long long)gridDim.x * blockDim.x) {\n", (long long)M);
    put(b, "        %s a_ = w_[m * %lldLL];\n", A, (long long)parts);
    put(b, "        for (long long k = 1; k < %lldLL; k++) a_ = tj_c%d(a_, w_[m * %lldLL + k]);\n",
        (long long)parts, gi, (long long)parts);
    put_red_store(b, g, gr, kept, nk, 8, "a_");
    put(b, "    }\n}\n");
    L[(*n_launch)++] = (tj_cuda_launch){gi, 1, grid_for(M, TJ_CU_THREADS), TJ_CU_THREADS};
}

/* NULL when the CUDA backend compiles group gr, else what it does not compile yet. */
static const char *unsupported(const tj_graph *g, const tj_group *gr) {
    for (int l = 0; l < gr->n_leaves; l++)
        if (gr->leaves[l].gather >= 0) return "an indexed read (gather)";
    for (int k = 0; k < gr->n_nodes; k++) {
        const tj_node *n = &g->nodes[gr->nodes[k]];
        int kind = tj_ops[n->op].kind;
        if (gr->nodes[k] == gr->red && kind == TJ_K_RED && tj_red_splittable(n->op)) continue;
        if (kind != TJ_K_EW && kind != TJ_K_CAST) return tj_ops[n->op].name;
    }
    if (gr->red >= 0 && tj_ops[g->nodes[gr->red].op].kind != TJ_K_RED)
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
    if (!out->launches || !out->by_value) goto nomem;
    put(b, "/* tracejit CUDA kernels */\n#define TJ_ELEM_ONLY\n#include \"prims.c\"\n");
    /* the generated code declares a stride per dim whether or not a dim is read */
    put(b, "#pragma nv_diag_suppress 177\n#pragma nv_diag_suppress 550\n");
    put(b, "#define TJ_ND %d\n", nd);
    put(b, "typedef struct { char *P[%d]; long long S[%d][TJ_ND]; char *W; } tj_args;\n",
        s->n_slots, s->n_slots);
    int64_t work = 0;
    for (int gi = 0; gi < s->n_groups; gi++) {
        tj_group gc = s->groups[gi], *gr = &gc;
        if (gr->contract) {   /* lowering leaves a GEMM's loop to BLAS: its dims as they are */
            gc.loop.D = gr->ndim;
            gc.loop.total = 1;
            for (int d = 0; d < gr->ndim; d++) gc.loop.total *= gc.loop.shape[d] = gr->shape[d];
        }
        for (int l = 0; l < gr->n_leaves; l++)
            if (leaf_kind(g, &gr->leaves[l]) == LEAF_VALUE) out->by_value[gr->leaves[l].slot] = 1;
        if (gr->red >= 0) emit_reduction(b, g, gr, gi, &work, out->launches, &out->n_launches);
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
    memset(p, 0, sizeof *p);
}
