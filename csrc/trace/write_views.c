/* Writes seen through views (write.c decides what a write computes; this file makes
 * it eager's for every array sharing the written memory). A view x of a base b (the
 * node x's chain of views and detaches starts from) maps each element of x to one
 * element of b, so a write into x is a write into b:
 *   b' = WHERE(covered, GATHER(flat(x'), at), b)
 * where `at` holds, per element of b, the flat position in x covering it (0 where
 * none does) and `covered` whether one does: constants computed here from x's VIEW
 * node (perm, vstep, voff, flat). Then every live Tracer of the family (b, and every
 * view or detach of b, taken before the write: trace->tracers lists the live ones)
 * is rebound to its node over b' (the same VIEW with b' for b). A write into b itself
 * while views of it are held is the same with b' = a copy of x'. Where b is the
 * caller's array (an argument's or capture's contents: its t->ext entry), b' becomes
 * its contents now, written back at the call's end.
 * Contract: a view reading one element of b twice (broadcast, NumPy's read-only
 * views) never reaches here (write.c's refusal); a chain this file cannot map (a view
 * of a detach of a view) is refused with TraceError naming the write. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* a detach, or an alias copy (ir.h): the same elements as its operand, row-major */
static int is_detach(const tj_node *n) {
    return n->op == TJ_OP_COPY && (n->axes == TJ_COPY_DETACH || n->axes == TJ_COPY_ALIAS);
}

static int aliases(const tj_node *n) {
    return tj_ops[n->op].kind == TJ_K_VIEW || is_detach(n);
}

/* The VIEW node of x's chain, -1 where x is a chain of detaches (an identity map of b),
 * -2 where the chain holds more than one view (not mapped here). */
static int32_t chain_view(const tj_graph *g, int32_t id, int32_t root) {
    int32_t view = -1;
    for (; id != root; id = g->nodes[id].in[0]) {
        if (is_detach(&g->nodes[id])) continue;
        if (view >= 0 || g->nodes[id].op != TJ_OP_VIEW) return -2;
        view = id;
    }
    return view;
}

/* Per element of the base (row-major, `size` of them): the C-order position in view v
 * reading it, -1 where none does. 0, or 1 where v reads an element twice or outside. */
static int fill_map(const tj_node *v, const tj_node *b, int64_t *map, int64_t size) {
    for (int64_t i = 0; i < size; i++) map[i] = -1;
    int64_t rstride[TJ_MAXDIM], acc = 1;
    for (int e = b->ndim - 1; e >= 0; e--) { rstride[e] = acc; acc *= b->shape[e]; }
    int64_t idx[TJ_MAXDIM] = {0}, count = tj_node_size(v);
    for (int d = 0; d < v->ndim; d++)
        if (v->flat ? v->perm[d] >= 0 : v->perm[d] == -2) return 1;
    for (int64_t k = 0; k < count; k++) {
        int64_t pos = 0;
        if (v->flat) {
            pos = v->voff[0];
            for (int d = 0; d < v->ndim; d++)
                if (v->perm[d] == -2) pos += idx[d] * v->vstep[d];
        } else {
            int64_t at[TJ_MAXDIM];
            for (int e = 0; e < b->ndim; e++) at[e] = v->voff[e];
            for (int d = 0; d < v->ndim; d++)
                if (v->perm[d] >= 0) at[v->perm[d]] += idx[d] * v->vstep[d];
            for (int e = 0; e < b->ndim; e++) {
                if (at[e] < 0 || at[e] >= b->shape[e]) return 1;
                pos += at[e] * rstride[e];
            }
        }
        if (pos < 0 || pos >= size || map[pos] >= 0) return 1;
        map[pos] = k;
        for (int d = v->ndim - 1; d >= 0; d--) {   /* the next C-order index */
            if (++idx[d] < v->shape[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

/* A constant of the trace from map: int64 max(map, 0) flat (which 0) or bool
 * map >= 0 of shape (which 1). -1 + exception. */
static int32_t map_const(tj_trace *t, const int64_t *map, int64_t size, const tj_node *b,
                         int which) {
    npy_intp dims[TJ_MAXDIM], n = (npy_intp)size;
    for (int d = 0; d < b->ndim; d++) dims[d] = (npy_intp)b->shape[d];
    PyArrayObject *a = which ? (PyArrayObject *)PyArray_SimpleNew(b->ndim, dims, NPY_BOOL)
                             : (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    if (!a) return -1;
    for (int64_t i = 0; i < size; i++) {
        if (which) ((npy_bool *)PyArray_DATA(a))[i] = map[i] >= 0;
        else ((int64_t *)PyArray_DATA(a))[i] = map[i] < 0 ? 0 : map[i];
    }
    int32_t id = tj_operand(t, (PyObject *)a);
    Py_DECREF(a);
    return id;
}

static PyObject *shape_of(const tj_node *n) {
    PyObject *r = PyTuple_New(n->ndim);
    for (int d = 0; r && d < n->ndim; d++) {
        PyObject *v = PyLong_FromLongLong(n->shape[d]);
        if (!v) { Py_CLEAR(r); break; }
        PyTuple_SET_ITEM(r, d, v);
    }
    return r;
}

/* b' of a write of r (x's new contents) into view node v of base root. New Tracer;
 * NULL + exception (TraceError naming `what` where v reads an element twice). */
static PyObject *scatter(tj_trace *t, int32_t v, int32_t root, PyObject *r, const char *what) {
    tj_node vn = t->g.nodes[v], b = t->g.nodes[root];
    int64_t size = tj_node_size(&b);
    int64_t *map = PyMem_Malloc((size_t)(size ? size : 1) * sizeof *map);
    if (!map) return PyErr_NoMemory();
    if (fill_map(&vn, &b, map, size)) {
        PyMem_Free(map);
        return tj_trace_error(t->st, "%s writes through a view that reads its base's elements "
                              "in a way tracejit cannot map back to them yet; write into a "
                              "copy instead", what);
    }
    PyObject *m1 = PyLong_FromLong(-1), *shape = shape_of(&b), *flat = NULL, *g = NULL;
    PyObject *placed = NULL, *mask = NULL, *base = NULL, *out = NULL;
    int32_t at = m1 && shape ? map_const(t, map, size, &b, 0) : -1;
    flat = at >= 0 ? tj_reshape(t, r, m1) : NULL;
    g = flat ? tj_gather(t, ((tj_tracer *)flat)->id, at, 0, 0) : NULL;
    placed = g ? tj_reshape(t, g, shape) : NULL;
    int32_t mid = placed ? map_const(t, map, size, &b, 1) : -1;
    mask = mid >= 0 ? tj_tracer_new(t, mid) : NULL;
    base = mask ? tj_tracer_new(t, root) : NULL;
    if (base) {
        PyObject *ops[3] = {mask, placed, base};
        out = tj_apply(t, TJ_OP_WHERE, 3, ops, NULL);
    }
    PyMem_Free(map);
    Py_XDECREF(m1); Py_XDECREF(shape); Py_XDECREF(flat); Py_XDECREF(g); Py_XDECREF(placed);
    Py_XDECREF(mask); Py_XDECREF(base);
    return out;
}

/* The node over nb standing for id (a member of root's family: root, or a view or
 * detach chain from it), -2 where id is no member, -1 + exception. */
static int32_t remap(tj_trace *t, int32_t id, int32_t root, int32_t nb) {
    if (id == root) return nb;
    if (id < root || !aliases(&t->g.nodes[id])) return -2;
    int32_t p = remap(t, t->g.nodes[id].in[0], root, nb);
    if (p < 0) return p;
    tj_node n = t->g.nodes[id];
    if (is_detach(&n)) return tj_trace_add_over(t, p, TJ_OP_COPY, n.axes);
    n.in[0] = p;
    int32_t r = tj_trace_add_node(t, &n);
    int ro = tj_view_readonly(t, id);   /* a read-only view stays one */
    return r >= 0 && ro && tj_view_mark_readonly(t, r, ro) < 0 ? -1 : r;
}

int tj_write_view_overlaps(tj_trace *t, int32_t id) {
    const tj_node *v = &t->g.nodes[id];
    int dims = 0;
    for (int d = 0; v->op == TJ_OP_VIEW && v->flat && d < v->ndim; d++)
        dims += v->perm[d] == -2 && v->shape[d] > 1;
    if (dims < 2) return 0;   /* only strided views (views_strided.c) read twice */
    int32_t root = id;
    while (aliases(&t->g.nodes[root])) root = t->g.nodes[root].in[0];
    if (chain_view(&t->g, id, root) != id) return 0;
    int64_t size = tj_node_size(&t->g.nodes[root]);
    int64_t *map = PyMem_Malloc((size_t)(size ? size : 1) * sizeof *map);
    if (!map) { PyErr_NoMemory(); return -1; }
    int r = fill_map(v, &t->g.nodes[root], map, size);
    PyMem_Free(map);
    return r;
}

int tj_write_family_held(tj_trace *t, tj_tracer *x, int32_t root) {
    for (tj_tracer *y = t->tracers; y; y = y->next) {
        if (y == x || y->id < root) continue;
        int32_t id = y->id;
        while (id != root && id > root && aliases(&t->g.nodes[id])) id = t->g.nodes[id].in[0];
        if (id == root) return 1;
    }
    return 0;
}

int tj_write_family(tj_trace *t, tj_tracer *x, PyObject *r, int ext, const char *what) {
    int32_t root = x->id;
    while (aliases(&t->g.nodes[root])) root = t->g.nodes[root].in[0];
    if (!tj_node_size(&t->g.nodes[x->id])) return 0;   /* writes no element */
    int32_t v = chain_view(&t->g, x->id, root);
    if (v == -2) {
        tj_trace_error(t->st, "%s writes through a view of a detached view (a chain of views "
                       "and detaches), which tracejit cannot map back to its base yet; write "
                       "into a copy instead", what);
        return -1;
    }
    /* b': x's new contents placed into the base (a copy of them for a write into it) */
    PyObject *nbt = v >= 0 ? scatter(t, v, root, r, what)
                           : tj_apply_cast(t, r, t->st->dtypes[t->g.nodes[root].dtype]);
    if (!nbt) return -1;
    int32_t nb = ((tj_tracer *)nbt)->id;
    int rc = 0;
    for (tj_tracer *y = t->tracers; y && rc == 0; y = y->next) {
        if (y == (tj_tracer *)nbt) continue;
        int32_t id = remap(t, y->id, root, nb);
        if (id == -1) rc = -1;
        else if (id >= 0) rc = tj_tracer_rebind(y, id);
    }
    if (rc == 0 && ext >= 0) t->ext[ext].cur = nb;
    Py_DECREF(nbt);
    return rc;
}

/* A NumPy composition's result (_impls*.py) as eager's: a copy where the composition
 * ends in a view of its operand or the operand itself (np.tile(a, 1)) but NumPy's function
 * returns a new array, so that no write into it reaches the operand (np.atleast_* and
 * np.einsum return views in NumPy too, np.diff(a, n=0) a itself; np.diagonal, np.diag
 * of a 2-d array and sliding_window_view are read-only views: kept). Steals r; new reference or NULL. */
int tj_write_note_view_copy(tj_trace *t, int32_t id) {
    if (t->n_view_copies == t->cap_view_copies) {
        int32_t cap = t->cap_view_copies ? 2 * t->cap_view_copies : 16;
        int32_t *v = PyMem_Realloc(t->view_copies, (size_t)cap * sizeof *v);
        if (!v) { PyErr_NoMemory(); return -1; }
        t->view_copies = v;
        t->cap_view_copies = cap;
    }
    t->view_copies[t->n_view_copies++] = id;
    return 0;
}

static int view_copy(const tj_trace *t, int32_t id) {
    for (int32_t i = 0; i < t->n_view_copies; i++)
        if (t->view_copies[i] == id) return 1;
    return 0;
}

/* The node id's chain of views, detaches and view copies starts from; *seen: whether
 * it passes a view copy. */
static int32_t eager_root(const tj_trace *t, int32_t id, int *seen) {
    *seen = 0;
    for (;;) {
        const tj_node *n = &t->g.nodes[id];
        if (view_copy(t, id)) *seen = 1;
        else if (!aliases(n)) return id;
        id = n->in[0];
    }
}

const char *tj_write_view_copy_refusal(tj_trace *t, tj_tracer *x) {
    static const char why[] = "it may share memory with another array through a reshape of "
                              "a strided view (which NumPy makes a view where the strides "
                              "allow, and tracejit a copy)";
    if (!t->n_view_copies) return NULL;
    int xs, ys;
    int32_t er = eager_root(t, x->id, &xs);
    for (tj_tracer *y = t->tracers; y; y = y->next)
        if (y != x && eager_root(t, y->id, &ys) == er && (xs || ys)) return why;
    return NULL;
}

static PyObject *own(tj_trace *t, PyObject *x, PyObject *args) {
    int arg = 0;   /* an operand handed back itself (np.tile(a, 1)) */
    for (Py_ssize_t i = 0; PyTuple_Check(args) && i < PyTuple_GET_SIZE(args); i++)
        arg |= PyTuple_GET_ITEM(args, i) == x;
    if (!tj_is_tracer(x) || !(arg || aliases(&t->g.nodes[((tj_tracer *)x)->id])))
        return Py_NewRef(x);
    return tj_apply_cast(t, x, t->st->dtypes[t->g.nodes[((tj_tracer *)x)->id].dtype]);
}

PyObject *tj_write_own_result(tj_trace *t, PyObject *func, PyObject *args, PyObject *r) {
    if (!r || t->torch) return r;
    PyObject *name = PyObject_GetAttrString(func, "__name__");
    const char *s = name && PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    int keep = s && (!strncmp(s, "atleast_", 8) || !strcmp(s, "einsum") || !strcmp(s, "diff") ||
                     !strcmp(s, "diagonal") || !strcmp(s, "diag") ||
                     !strcmp(s, "sliding_window_view"));
    Py_XDECREF(name);
    PyErr_Clear();
    if (keep) return r;
    if (tj_is_tracer(r)) { PyObject *c = own(t, r, args); Py_DECREF(r); return c; }
    if (!PyTuple_Check(r) && !PyList_Check(r)) return r;
    PyObject *items = PySequence_List(r);
    for (Py_ssize_t i = 0; items && i < PyList_GET_SIZE(items); i++) {
        PyObject *c = own(t, PyList_GET_ITEM(items, i), args);
        if (!c || PyList_SetItem(items, i, c) < 0) Py_CLEAR(items);
    }
    PyObject *out = !items ? NULL : PyTuple_Check(r) ? PyList_AsTuple(items) : Py_NewRef(items);
    Py_XDECREF(items);
    Py_DECREF(r);
    return out;
}
