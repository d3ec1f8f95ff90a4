/* A value Python needs while tracing (csrc/trace/concrete.c: a branch on data, int(),
 * float(), .item(), a size or an index), computed from the call being traced: the part
 * of the graph it depends on is compiled with the value as its output and run on the
 * call's inputs. Incremental: the values of the nodes live Tracers stood for are kept
 * (tj_trace.conc_vals, node -> ndarray) and a later value's prefix starts from them,
 * each a captured array, so `while err > tol:` over traced values compiles the new
 * step's nodes at each iteration, not everything before it (linear, not quadratic).
 * Contract: the value is what the whole prefix computes (the same element code, the
 * same fixed reduction order); a value that depends on a random draw is refused (the
 * call's draws are made when it replays). */
#include "tracejit.h"
#include "loops.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

#define TJ_KEEP_BYTES (64 << 20)   /* bytes of values a trace keeps for later prefixes */

int tj_prefix_incremental = 1;
long long tj_prefix_nodes;

/* The kept value of node i (borrowed), or NULL. */
static PyObject *kept(const tj_trace *t, int32_t i) {
    if (!t->conc_vals || !tj_prefix_incremental) return NULL;
    PyObject *k = PyLong_FromLong(i), *v = k ? PyDict_GetItemWithError(t->conc_vals, k) : NULL;
    Py_XDECREF(k);
    return v;
}

/* Marks in `used` (1: computed, 2: read as a kept value) what node id needs; -1 + a
 * TraceError when that reaches a random draw. */
static int needed(tj_trace *t, int32_t id, uint8_t *used) {
    used[id] = 1;
    for (int32_t i = id; i >= 0; i--) {
        if (!used[i]) continue;
        const tj_node *n = &t->g.nodes[i];
        if (i != id && tj_ops[n->op].kind != TJ_K_LEAF && kept(t, i)) {
            used[i] = 2;
            continue;
        }
        if (PyErr_Occurred()) return -1;
        for (int k = 0; k < 3; k++)
            if (n->in[k] >= 0) used[n->in[k]] = 1;
        if (n->slot >= 0 && (t->g.slots[n->slot].kind == TJ_SLOT_KEY ||
                             (t->g.slots[n->slot].kind == TJ_SLOT_LOOP &&
                              tj_loops_draw(t->loops, t->g.slots[n->slot].index)))) {
            tj_trace_error(t->st, "a value computed from random draws cannot steer Python (a branch, "
                           "int(), float(), .item()): the draws are fresh at every call, after "
                           "the branch is taken. Keep it an array (np.where(cond, x, y))");
            return -1;
        }
    }
    return 0;
}

/* Node i of t as a leaf of c reading its kept value, a captured array (kind 2: the
 * array itself). Its new slot's index; -1 + exception. */
static int kept_leaf(tj_trace *t, tj_trace *c, int32_t i, tj_node *n) {
    const tj_node *o = &t->g.nodes[i];
    PyObject *arr = kept(t, i);
    tj_slotdesc d = {.kind = TJ_SLOT_CAPTURE, .index = (int)PyList_GET_SIZE(c->captures),
                     .dtype = o->dtype, .contig = 1};
    memset(n, 0, sizeof *n);
    n->op = TJ_OP_CAPTURE;
    n->dtype = o->dtype;
    n->ndim = o->ndim;
    memcpy(n->shape, o->shape, sizeof n->shape);
    n->in[0] = n->in[1] = n->in[2] = -1;
    tj_error err;
    if ((n->slot = tj_graph_add_slot(&c->g, &d, &err)) < 0) return tj_error_raise(t->st, &err);
    PyObject *e = Py_BuildValue("(iOOOi)", 2, arr, Py_None, arr, -1);
    int rc = e ? PyList_Append(c->captures, e) : -1;
    Py_XDECREF(e);
    return rc;
}

/* Whether node i's value is worth keeping: a computed value a live Tracer stands for
 * (a later value may start from it), of a dtype NumPy holds. */
static int worth_keeping(const tj_trace *t, int32_t i) {
    const tj_node *n = &t->g.nodes[i];
    return tj_prefix_incremental && i < t->cap_holders && t->holders[i] > 0 && tj_ops[n->op].kind != TJ_K_LEAF &&
           n->dtype != TJ_BF16;
}

/* A graph of what node id needs and is not kept, its outputs id's value then the values
 * worth keeping (their nodes in t: keep[0..*n_keep)), for the call being traced; random
 * keys become constants. New live trace; NULL + exception. */
static tj_trace *prefix_trace(tj_trace *t, int32_t id, int32_t *keep, int *n_keep) {
    uint8_t *used = PyMem_Calloc((size_t)id + 1, 1);
    int32_t *map = PyMem_Malloc(((size_t)id + 1) * sizeof *map);
    tj_trace *c = NULL;
    int32_t n = 0;
    tj_error err;
    int loops = 0;
    *n_keep = 0;
    if (!used || !map) { PyErr_NoMemory(); goto fail; }
    if (needed(t, id, used) < 0) goto fail;
    if (!(c = (tj_trace *)tj_trace_new(t->st, t->fn))) goto fail;
    c->torch = t->torch;
    for (int32_t i = 0; i <= id; i++) n += used[i] != 0;
    c->g.nodes = malloc((size_t)n * sizeof *c->g.nodes);
    c->g.slots = malloc((size_t)(t->g.n_slots ? t->g.n_slots : 1) * sizeof *c->g.slots);
    Py_SETREF(c->captures, PyList_GetSlice(t->captures, 0, PyList_GET_SIZE(t->captures)));
    if (!c->g.nodes || !c->g.slots || !c->captures) { PyErr_NoMemory(); goto fail; }
    c->g.cap = n;
    memcpy(c->g.slots, t->g.slots, (size_t)t->g.n_slots * sizeof *c->g.slots);
    c->g.n_slots = c->g.cap_slots = t->g.n_slots;
    for (int i = 0; i < c->g.n_slots; i++)
        if (c->g.slots[i].kind == TJ_SLOT_KEY)
            c->g.slots[i] = (tj_slotdesc){.kind = TJ_SLOT_CONST, .dtype = TJ_I64, .contig = 1};
    for (int32_t i = 0; i <= id; i++) {
        if (!used[i]) continue;
        tj_node *nd = &c->g.nodes[c->g.n];
        if (used[i] == 2) {
            if (kept_leaf(t, c, i, nd) < 0) goto fail;
        } else {
            *nd = t->g.nodes[i];
            for (int k = 0; k < 3; k++)
                if (nd->in[k] >= 0) nd->in[k] = map[nd->in[k]];
            loops |= nd->slot >= 0 && t->g.slots[nd->slot].kind == TJ_SLOT_LOOP;
        }
        map[i] = c->g.n++;
    }
    tj_prefix_nodes += c->g.n;
    /* the loops run before the prefix's kernel only where it reads their results */
    if (loops && !(c->loops = PyList_GetSlice(t->loops, 0, PyList_GET_SIZE(t->loops)))) goto fail;
    if (tj_graph_add_output(&c->g, map[id], &err) < 0) goto raise;
    int64_t bytes = 0;
    for (int32_t i = 0; i <= id; i++) {   /* what a later value may start from */
        if (used[i] != 1 || !worth_keeping(t, i)) continue;
        int64_t b = tj_node_size(&t->g.nodes[i]) * tj_dtype_size(t->g.nodes[i].dtype);
        if (bytes + b > TJ_KEEP_BYTES) continue;
        bytes += b;
        if (i != id && tj_graph_add_output(&c->g, map[i], &err) < 0) goto raise;
        keep[(*n_keep)++] = i;
    }
    PyMem_Free(used);
    PyMem_Free(map);
    return c;
raise:
    tj_error_raise(t->st, &err);
fail:
    PyMem_Free(used);
    PyMem_Free(map);
    if (c) c->live = 0;
    Py_XDECREF(c);
    return NULL;
}

/* ndarray of node `dt`'s dtype, C-contiguous, a copy. New reference; NULL + exception. */
static PyObject *as_array(PyObject *v, int dt) {
    return PyArray_FromAny(v, PyArray_DescrFromType(tj_dtype_typenum(dt)), 0, 0,
                           NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ENSUREARRAY | NPY_ARRAY_ENSURECOPY,
                           NULL);
}

/* Keeps the values computed for nodes keep[0..n) (vals: the prefix's results after
 * id's, or id's own for id), dropping those no live Tracer stands for any more (a later
 * value reaches them only through values kept since: recomputed if not). 0/-1. */
static int keep_values(tj_trace *t, int32_t id, PyObject *first, PyObject *res,
                       const int32_t *keep, int n) {
    if (!t->conc_vals && !(t->conc_vals = PyDict_New())) return -1;
    PyObject *keys = PyDict_Keys(t->conc_vals);
    for (Py_ssize_t k = 0; keys && k < PyList_GET_SIZE(keys); k++) {
        PyObject *key = PyList_GET_ITEM(keys, k);
        if (!worth_keeping(t, (int32_t)PyLong_AsLong(key)) &&
            PyDict_DelItem(t->conc_vals, key) < 0)
            Py_CLEAR(keys);
    }
    if (!keys) return -1;
    Py_DECREF(keys);
    for (int k = 0, pos = 1; k < n; k++) {
        PyObject *v = keep[k] == id ? Py_NewRef(first)
                                    : as_array(PyTuple_GET_ITEM(res, pos++), t->g.nodes[keep[k]].dtype);
        PyObject *key = v ? PyLong_FromLong(keep[k]) : NULL;
        int rc = key ? PyDict_SetItem(t->conc_vals, key, v) : -1;
        Py_XDECREF(key);
        Py_XDECREF(v);
        if (rc < 0) return -1;
    }
    return 0;
}

PyObject *tj_compile_value(tj_trace *t, int32_t id) {
    tj_plan *plan = NULL;
    PyObject *res = NULL, *reason = NULL, *r = NULL, *outs = NULL;
    int device, device_id;   /* computed on the CPU, from the call's arrays in host memory */
    if (t->loop_depth) {
        tj_trace_error(t->st, "Python reads the value of a traced array (a branch on data, "
                       "int(), float(), .item(), a size or an index) inside the body of a "
                       "compiled loop (tracejit.scan, fori_loop): it may differ at each step. "
                       "Use tracejit.cond or np.where for a branch, and sizes known before "
                       "the loop");
        return NULL;
    }
    if (tj_flat_device(t->flat, t->captures, &device, &device_id) < 0) return NULL;
    if (device != TJ_DEVICE_CPU) {
        tj_trace_error(t->st, "Python reads the value of a traced array here (a branch on data, "
                       "int(), float(), .item(), a size or an index): not supported on the GPU "
                       "yet (cuda:%d); run it on CPU tensors, or keep it an array "
                       "(torch.where(cond, x, y))", device_id);
        return NULL;
    }
    int dt = t->g.nodes[id].dtype;
    PyObject *have = kept(t, id);
    if (have || PyErr_Occurred()) return have ? as_array(have, dt) : NULL;
    int32_t *keep = PyMem_Malloc(((size_t)id + 1) * sizeof *keep);
    int n_keep;
    tj_trace *c = keep ? prefix_trace(t, id, keep, &n_keep) : (tj_trace *)PyErr_NoMemory();
    if (!c) { PyMem_Free(keep); return NULL; }
    if (!(outs = PyTuple_New(c->g.n_out))) goto done;
    for (int32_t o = 0; o < c->g.n_out; o++) {
        PyObject *xo = tj_tracer_new(c, c->g.outputs[o]);
        if (!xo) goto done;
        PyTuple_SET_ITEM(outs, o, xo);
    }
    /* (a tuple of the one value and those kept; the outputs the template added) */
    c->g.n_out = 0;
    if (!(plan = tj_compile_subplan(t, c, outs, 0))) goto done;
    int rc = tj_plan_run(plan, t->flat, &res, &reason);
    if (rc > 0) {   /* the function changed what it reads while it was traced */
        tj_trace_error(t->st, "a value this trace needs cannot be computed: %U", reason);
        goto done;
    }
    if (rc == 0 && (r = as_array(PyTuple_GET_ITEM(res, 0), dt)) &&
        keep_values(t, id, r, res, keep, n_keep) < 0)
        Py_CLEAR(r);
done:
    c->live = 0;
    if (plan) tj_plan_decref(plan);
    PyMem_Free(keep);
    Py_XDECREF(outs);
    Py_XDECREF(res);
    Py_XDECREF(reason);
    Py_DECREF(c);
    return r;
}
