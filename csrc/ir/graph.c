/* The graph IR: dtypes, the op-info table expanded from ops.h and its dtype rules,
 * node and slot storage, broadcasting, errors, and a readable dump for TRACEJIT_DEBUG
 * and tests. Contract: a node is appended after its operands, so index order is
 * topological. */
#include "ir/ir.h"
#include <stdarg.h>
#include <stdio.h>

const tj_opinfo tj_ops[TJ_NOPS] = {
#define TJ_X(name, np, tn, ar, kind, mask, out, fl, fo, sp) \
    {#name, np, tn, ar, TJ_K_##kind, TJ_M_##mask, TJ_O_##out, fl, fo},
#define COMM TJ_F_COMM
#define COND TJ_F_COND
#define COSTLY TJ_F_COSTLY
#define EFFECT TJ_F_EFFECT
#define INDEX TJ_F_INDEX
#define DRAW TJ_F_DRAW
#define NONE -1, 0, 0
#define FOLD(comb, ident, acc) TJ_OP_##comb, TJ_ID_##ident, TJ_ACC_##acc
    TJ_OPS(TJ_X)
#undef FOLD
#undef NONE
#undef INDEX
#undef DRAW
#undef EFFECT
#undef COMM
#undef COND
#undef COSTLY
#undef TJ_X
};

static int test_effect_op = -1;

void tj_op_test_effect(int op) { test_effect_op = op; }

int tj_op_pure(int op) { return !(tj_ops[op].flags & TJ_F_EFFECT) && op != test_effect_op; }

int tj_red_splittable(int op) {
    return tj_ops[op].kind == TJ_K_RED && !(tj_ops[op].flags & TJ_F_INDEX);
}

int tj_s8_product(const tj_graph *g, const tj_node *x, const tj_node *r) {
    if (r->op != TJ_OP_RSUM || (r->dtype != TJ_I32 && r->dtype != TJ_I64) ||
        x->op != TJ_OP_MUL || (x->dtype != TJ_I16 && x->dtype != TJ_I32))
        return 0;
    for (int a = 0; a < 2; a++) {
        const tj_node *c = &g->nodes[x->in[a]];
        if (c->op != TJ_OP_CAST || c->dtype != x->dtype || g->nodes[c->in[0]].dtype != TJ_I8)
            return 0;
    }
    return 1;
}

static const struct {
    int size;
    const char *name, *suffix, *ctype, *stdtype;
    char kind;
    int64_t min, max;
} dtype_info[] = {
    [TJ_BOOL] = {1, "bool", "b", "unsigned char", "bool", 'b', 0, 1},
    [TJ_I8] = {1, "int8", "i8", "signed char", "int8_t", 'i', INT8_MIN, INT8_MAX},
    [TJ_I16] = {2, "int16", "i16", "short", "int16_t", 'i', INT16_MIN, INT16_MAX},
    [TJ_I32] = {4, "int32", "i32", "int", "int32_t", 'i', INT32_MIN, INT32_MAX},
    [TJ_I64] = {8, "int64", "i64", "long long", "int64_t", 'i', INT64_MIN, INT64_MAX},
    [TJ_U8] = {1, "uint8", "u8", "unsigned char", "uint8_t", 'u', 0, UINT8_MAX},
    [TJ_U16] = {2, "uint16", "u16", "unsigned short", "uint16_t", 'u', 0, UINT16_MAX},
    [TJ_U32] = {4, "uint32", "u32", "unsigned int", "uint32_t", 'u', 0, UINT32_MAX},
    [TJ_U64] = {8, "uint64", "u64", "unsigned long long", "uint64_t", 'u', 0, -1 /* bits of UINT64_MAX */},
    [TJ_F32] = {4, "float32", "f32", "float", "float", 'f', 0, 0},
    [TJ_F64] = {8, "float64", "f64", "double", "double", 'f', 0, 0},
    [TJ_F16] = {2, "float16", "f16", "unsigned short", "uint16_t", 'f', 0, 0},
    [TJ_BF16] = {2, "bfloat16", "bf16", "unsigned short", "uint16_t", 'f', 0, 0},
};

int tj_dtype_size(tj_dtype dt) { return dtype_info[dt].size; }
const char *tj_dtype_name(tj_dtype dt) { return dtype_info[dt].name; }
const char *tj_dtype_suffix(tj_dtype dt) { return dtype_info[dt].suffix; }
const char *tj_dtype_ctype(tj_dtype dt) { return dtype_info[dt].ctype; }
const char *tj_dtype_stdtype(tj_dtype dt) { return dtype_info[dt].stdtype; }
char tj_dtype_kind(tj_dtype dt) { return dtype_info[dt].kind; }
int tj_dtype_is_float(int dt) { return dtype_info[dt].kind == 'f'; }
int tj_dtype_is_unsigned(int dt) { return dtype_info[dt].kind == 'u'; }
int64_t tj_dtype_min(tj_dtype dt) { return dtype_info[dt].min; }
int64_t tj_dtype_max(tj_dtype dt) { return dtype_info[dt].max; }

int tj_dtype_holds(tj_dtype dt, int64_t v, int is_u64) {
    if (dt == TJ_U64) return is_u64 || v >= 0;
    if (is_u64 && v < 0) return 0;          /* beyond int64: only uint64 holds it */
    return v >= dtype_info[dt].min && v <= dtype_info[dt].max;
}

/* WIDE: NumPy's sum and prod of bools and signed ints give int64 (the platform's long),
 * of unsigned ints uint64, of floats their dtype */
int tj_red_out_dtype(int op, int dt) {
    if (tj_ops[op].flags & TJ_F_INDEX) return TJ_I64;
    if (tj_ops[op].acc == TJ_ACC_WIDE) return tj_dtype_is_float(dt) ? dt : tj_dtype_is_unsigned(dt) ? TJ_U64 : TJ_I64;
    return dt;
}

int tj_red_acc_dtype(int op, int dt) {
    if (tj_ops[op].acc == TJ_ACC_WIDE)
        return tj_dtype_is_float(dt) ? TJ_F64 : tj_dtype_is_unsigned(dt) ? TJ_U64 : TJ_I64;
    return dt;
}

int tj_error_set(tj_error *e, int kind, const char *fmt, ...) {
    va_list va;
    va_start(va, fmt);
    e->kind = kind;
    vsnprintf(e->msg, sizeof e->msg, fmt, va);
    va_end(va);
    return -1;
}

void tj_put(tj_sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list va;
        va_start(va, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, va);
        va_end(va);
        if (n < 0) { b->failed = 1; return; }
        if (b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) { b->failed = 1; return; }
        b->buf = nb;
        b->cap = cap;
    }
}

int tj_graph_init(tj_graph *g) {
    memset(g, 0, sizeof *g);
    return 0;
}

void tj_graph_free(tj_graph *g) {
    free(g->nodes);
    free(g->outputs);
    free(g->slots);
    memset(g, 0, sizeof *g);
}

int tj_grow(void **buf, int32_t *cap, int32_t min_cap, size_t elem) {
    int32_t ncap = *cap ? *cap * 2 : min_cap;
    void *nb = realloc(*buf, (size_t)ncap * elem);
    if (!nb) return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

int32_t tj_graph_add(tj_graph *g, const tj_node *proto, tj_error *err) {
    /* NumPy's limit for every array, also those a fused loop never stores: the product
     * of the nonzero dims times the item size fits in intp (loop counts cannot wrap) */
    int64_t bytes = tj_dtype_size(proto->dtype);
    for (int d = 0; d < proto->ndim; d++)
        if (proto->shape[d] && __builtin_mul_overflow(bytes, proto->shape[d], &bytes))
            return tj_error_set(err, TJ_ERR_VALUE, "array is too big; `arr.size * "
                                "arr.dtype.itemsize` is larger than the maximum possible size.");
    if (g->n == g->cap && tj_grow((void **)&g->nodes, &g->cap, 64, sizeof *g->nodes) < 0)
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    g->nodes[g->n] = *proto;
    return g->n++;
}

int32_t tj_graph_add_over(tj_graph *g, int32_t src, int op, uint32_t axes, tj_error *err) {
    tj_node n = g->nodes[src];
    n.op = (int16_t)op;
    n.weak = 0;
    n.flat = 0;
    n.slot = -1;
    n.axes = axes;
    n.in[0] = src;
    n.in[1] = n.in[2] = -1;
    memset(n.perm, 0, sizeof n.perm);
    memset(n.vstep, 0, sizeof n.vstep);
    memset(n.voff, 0, sizeof n.voff);
    return tj_graph_add(g, &n, err);
}

int tj_graph_add_output(tj_graph *g, int32_t id, tj_error *err) {
    if (g->n_out == g->cap_out &&
        tj_grow((void **)&g->outputs, &g->cap_out, 8, sizeof *g->outputs) < 0)
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    g->outputs[g->n_out++] = id;
    return 0;
}

int tj_graph_add_slot(tj_graph *g, const tj_slotdesc *d, tj_error *err) {
    if (g->n_slots == g->cap_slots &&
        tj_grow((void **)&g->slots, &g->cap_slots, 16, sizeof *g->slots) < 0)
        return tj_error_set(err, TJ_ERR_NOMEM, "out of memory");
    g->slots[g->n_slots] = *d;
    return g->n_slots++;
}

int64_t tj_node_size(const tj_node *n) {
    int64_t s = 1;
    for (int d = 0; d < n->ndim; d++) s *= n->shape[d];
    return s;
}

int tj_node_loop_dtype(const tj_graph *g, const tj_node *n) {
    if (tj_ops[n->op].flags & TJ_F_COND) return g->nodes[n->in[1]].dtype;   /* where */
    if (n->op == TJ_OP_COPY) return n->dtype;
    return g->nodes[n->in[0]].dtype;
}

void tj_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, ndim == 1 ? ",)" : ")");
}

int tj_shape_broadcast(const tj_node *a, const tj_node *b, int *ndim, int64_t *shape,
                       tj_error *err) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char s1[256], s2[256];
            tj_shape_str(s1, sizeof s1, a->ndim, a->shape);
            tj_shape_str(s2, sizeof s2, b->ndim, b->shape);
            return tj_error_set(err, TJ_ERR_SHAPE, "operands could not be broadcast together "
                                "with shapes %s %s", s1, s2);
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = nd;
    return 0;
}

void tj_graph_dump(const tj_graph *g, const char *title, tj_sbuf *log) {
    tj_put(log, "-- %s (%d nodes)\n", title, (int)g->n);
    for (int32_t i = 0; i < g->n; i++) {
        const tj_node *n = &g->nodes[i];
        char line[512], shp[256];
        size_t k;
        tj_shape_str(shp, sizeof shp, n->ndim, n->shape);
        k = (size_t)snprintf(line, sizeof line, "  %%%d = %s%s %s%s", (int)i, tj_ops[n->op].name,
                             "", tj_dtype_name(n->dtype), shp);
        if (n->weak) k += (size_t)snprintf(line + k, sizeof line - k, " weak");
        for (int a = 0; a < tj_ops[n->op].arity; a++)
            k += (size_t)snprintf(line + k, sizeof line - k, " %%%d", (int)n->in[a]);
        if (n->op == TJ_OP_IOTA)
            k += (size_t)snprintf(line + k, sizeof line - k, " axis %d", (int)(int32_t)n->axes);
        else if (tj_ops[n->op].kind == TJ_K_LEAF && n->op != TJ_OP_CONST)
            k += (size_t)snprintf(line + k, sizeof line - k, " slot %d", (int)n->slot);
        if (n->op == TJ_OP_CONST) {
            if (tj_dtype_is_float(n->dtype))
                k += (size_t)snprintf(line + k, sizeof line - k, " = %.17g", n->value.f);
            else if (n->dtype == TJ_U64)
                k += (size_t)snprintf(line + k, sizeof line - k, " = %llu",
                                      (unsigned long long)n->value.i);
            else
                k += (size_t)snprintf(line + k, sizeof line - k, " = %lld", (long long)n->value.i);
        }
        if (n->op == TJ_OP_CONCAT) k += (size_t)snprintf(line + k, sizeof line - k, " axis %u", n->axes);
        if (n->op == TJ_OP_COPY && n->axes == TJ_COPY_DETACH)
            k += (size_t)snprintf(line + k, sizeof line - k, " detach");
        if (n->op == TJ_OP_VIEW) {
            k += (size_t)snprintf(line + k, sizeof line - k, " perm");
            for (int d = 0; d < n->ndim && k < sizeof line; d++)
                k += (size_t)snprintf(line + k, sizeof line - k, " %d", n->perm[d]);
        }
        for (int32_t o = 0; o < g->n_out; o++)
            if (g->outputs[o] == i && k < sizeof line)
                k += (size_t)snprintf(line + k, sizeof line - k, "  -> out %d", (int)o);
        tj_put(log, "%s\n", line);
    }
}

/* Whether nodes a and b compute the same value: the same node, or the same pure op
 * (attributes, view, constant) of operands that compute the same values, up to `depth`
 * levels; leaves are the same when they read the same slot, or equal constants. A
 * conservative answer: 0 where it cannot tell. */
int tj_same_value(const tj_graph *g, int32_t a, int32_t b, int depth) {
    if (a == b) return 1;
    if (a < 0 || b < 0 || depth <= 0) return 0;
    const tj_node *x = &g->nodes[a], *y = &g->nodes[b];
    if (x->op != y->op || !tj_op_pure(x->op) || x->dtype != y->dtype || x->weak != y->weak ||
        x->ndim != y->ndim || x->axes != y->axes || x->flat != y->flat ||
        memcmp(x->voff, y->voff, sizeof x->voff) != 0)
        return 0;
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] != y->shape[d] || x->perm[d] != y->perm[d] || x->vstep[d] != y->vstep[d])
            return 0;
    if (x->op == TJ_OP_CONST) return x->value.i == y->value.i;
    if (tj_ops[x->op].kind == TJ_K_LEAF) {
        if (x->slot == y->slot) return 1;
        const tj_slotdesc *s = &g->slots[x->slot], *t = &g->slots[y->slot];
        return s->kind == TJ_SLOT_CONST && t->kind == TJ_SLOT_CONST && s->dtype == t->dtype &&
               s->value.i == t->value.i;
    }
    for (int i = 0; i < 3; i++)
        if (!tj_same_value(g, x->in[i], y->in[i], depth - 1)) return 0;
    return 1;
}
