/* The graph IR: dtypes, the op-info table expanded from ops.h, node storage,
 * broadcasting, and a readable dump for TRACEJIT_DEBUG and tests.
 * Contract: a node is appended after its operands, so index order is topological. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

const tj_opinfo tj_ops[TJ_NOPS] = {
#define TJ_X(name, np, ar, kind, mask, out, fl, sp) \
    {#name, np, ar, TJ_K_##kind, TJ_M_##mask, TJ_O_##out, fl},
#define COMM TJ_F_COMM
#define COND TJ_F_COND
#define COSTLY TJ_F_COSTLY
    TJ_OPS(TJ_X)
#undef COMM
#undef COND
#undef COSTLY
#undef TJ_X
};

static const struct { int typenum, size; const char *name, *suffix, *ctype; } dtype_info[] = {
    [TJ_BOOL] = {NPY_BOOL, 1, "bool", "b", "unsigned char"},
    [TJ_I32] = {NPY_INT32, 4, "int32", "i32", "int"},
    [TJ_I64] = {NPY_INT64, 8, "int64", "i64", "long long"},
    [TJ_F32] = {NPY_FLOAT32, 4, "float32", "f32", "float"},
    [TJ_F64] = {NPY_FLOAT64, 8, "float64", "f64", "double"},
};

int tj_dtype_from_typenum(int typenum) {
    switch (typenum) {
    case NPY_BOOL: return TJ_BOOL;
    case NPY_FLOAT: return TJ_F32;
    case NPY_DOUBLE: return TJ_F64;
    case NPY_INT: return sizeof(int) == 4 ? TJ_I32 : -1;
    case NPY_LONG: return sizeof(long) == 8 ? TJ_I64 : TJ_I32;
    case NPY_LONGLONG: return sizeof(long long) == 8 ? TJ_I64 : -1;
    default: return -1;
    }
}

int tj_dtype_typenum(tj_dtype dt) { return dtype_info[dt].typenum; }
int tj_dtype_size(tj_dtype dt) { return dtype_info[dt].size; }
const char *tj_dtype_name(tj_dtype dt) { return dtype_info[dt].name; }
const char *tj_dtype_suffix(tj_dtype dt) { return dtype_info[dt].suffix; }
const char *tj_dtype_ctype(tj_dtype dt) { return dtype_info[dt].ctype; }

int tj_graph_init(tj_graph *g) {
    memset(g, 0, sizeof *g);
    return 0;
}

void tj_graph_free(tj_graph *g) {
    PyMem_Free(g->nodes);
    PyMem_Free(g->outputs);
    memset(g, 0, sizeof *g);
}

int tj_grow(void **buf, int32_t *cap, int32_t min_cap, size_t elem) {
    int32_t ncap = *cap ? *cap * 2 : min_cap;
    void *nb = PyMem_Realloc(*buf, (size_t)ncap * elem);
    if (!nb) { PyErr_NoMemory(); return -1; }
    *buf = nb;
    *cap = ncap;
    return 0;
}

int32_t tj_graph_add(tj_graph *g, const tj_node *proto) {
    /* NumPy's limit for every array, also those a fused loop never stores: the product
     * of the nonzero dims times the item size fits in intp (loop counts cannot wrap) */
    int64_t bytes = tj_dtype_size(proto->dtype);
    for (int d = 0; d < proto->ndim; d++)
        if (proto->shape[d] && __builtin_mul_overflow(bytes, proto->shape[d], &bytes)) {
            PyErr_SetString(PyExc_ValueError, "array is too big; `arr.size * arr.dtype.itemsize` "
                            "is larger than the maximum possible size.");
            return -1;
        }
    if (g->n == g->cap && tj_grow((void **)&g->nodes, &g->cap, 64, sizeof *g->nodes) < 0)
        return -1;
    g->nodes[g->n] = *proto;
    return g->n++;
}

int32_t tj_graph_add_over(tj_graph *g, int32_t src, int op, uint32_t axes) {
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
    return tj_graph_add(g, &n);
}

int tj_graph_add_output(tj_graph *g, int32_t id) {
    if (g->n_out == g->cap_out &&
        tj_grow((void **)&g->outputs, &g->cap_out, 8, sizeof *g->outputs) < 0)
        return -1;
    g->outputs[g->n_out++] = id;
    return 0;
}

int64_t tj_node_size(const tj_node *n) {
    int64_t s = 1;
    for (int d = 0; d < n->ndim; d++) s *= n->shape[d];
    return s;
}

void tj_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, ndim == 1 ? ",)" : ")");
}

int tj_broadcast(const tj_node *a, const tj_node *b, int *ndim, int64_t *shape) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char s1[256], s2[256];
            tj_shape_str(s1, sizeof s1, a->ndim, a->shape);
            tj_shape_str(s2, sizeof s2, b->ndim, b->shape);
            tj_trace_error("operands could not be broadcast together with shapes %s %s", s1, s2);
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);          /* NumPy raises ValueError here: so do we */
            PyErr_SetObject(PyExc_ValueError, v);
            Py_XDECREF(t); Py_XDECREF(v); Py_XDECREF(tb);
            return -1;
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = nd;
    return 0;
}

int tj_graph_dump(const tj_graph *g, const char *title, PyObject *out) {
    PyObject *s = PyUnicode_FromFormat("-- %s (%d nodes)", title, (int)g->n);
    if (!s || PyList_Append(out, s) < 0) { Py_XDECREF(s); return -1; }
    Py_DECREF(s);
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
        if (tj_ops[n->op].kind == TJ_K_LEAF && n->op != TJ_OP_CONST)
            k += (size_t)snprintf(line + k, sizeof line - k, " slot %d", (int)n->slot);
        if (n->op == TJ_OP_CONST) {
            if (n->dtype >= TJ_F32)
                k += (size_t)snprintf(line + k, sizeof line - k, " = %.17g", n->value.f);
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
        s = PyUnicode_FromString(line);
        if (!s || PyList_Append(out, s) < 0) { Py_XDECREF(s); return -1; }
        Py_DECREF(s);
    }
    return 0;
}
