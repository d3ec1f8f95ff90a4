/* The Trace type: one tracing of a function, the graph being built and everything the
 * trace keeps while the user's code runs (tracejit.h's tj_trace); its nodes and slots
 * are added here (tj_trace_add_node and the leaves' helpers). Tracers are tracer.c's. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

/* ---- Trace ---------------------------------------------------------------- */

static int trace_clear(tj_trace *t) {
    Py_CLEAR(t->pending);
    Py_CLEAR(t->pending_error);
    Py_CLEAR(t->refusal);
    Py_CLEAR(t->guards);
    Py_CLEAR(t->captures);
    Py_CLEAR(t->rng_sources);
    Py_CLEAR(t->rng_keyfns);
    Py_CLEAR(t->checks);
    Py_CLEAR(t->values);
    Py_CLEAR(t->conc_vals);
    Py_CLEAR(t->made);
    Py_CLEAR(t->stand_ins);
    Py_CLEAR(t->fn);
    Py_CLEAR(t->loops);
    return 0;
}

static void trace_dealloc(tj_trace *t) {
    PyTypeObject *tp = Py_TYPE(t);
    PyObject_GC_UnTrack(t);
    tj_graph_free(&t->g);
    PyMem_Free(t->holders);
    PyMem_Free(t->view_copies);
    PyMem_Free(t->readonly);
    PyMem_Free(t->ext);
    PyMem_Free(t->out_alias);
    trace_clear(t);
    tp->tp_free((PyObject *)t);
    Py_DECREF(tp);
}

static int trace_traverse(tj_trace *t, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(t));
    Py_VISIT(t->captures);
    Py_VISIT(t->pending);
    Py_VISIT(t->guards);
    Py_VISIT(t->rng_sources);
    Py_VISIT(t->rng_keyfns);
    Py_VISIT(t->checks);
    Py_VISIT(t->values);
    Py_VISIT(t->conc_vals);
    Py_VISIT(t->made);
    Py_VISIT(t->stand_ins);
    Py_VISIT(t->fn);
    Py_VISIT(t->loops);
    return 0;
}

static PyType_Slot trace_slots[] = {
    {Py_tp_dealloc, trace_dealloc},
    {Py_tp_traverse, trace_traverse},
    {Py_tp_clear, trace_clear},
    {Py_tp_doc, "One tracing of a function: the graph being built (internal)."},
    {0, NULL},
};
static PyType_Spec trace_spec = {"tracejit._C.Trace", sizeof(tj_trace), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, trace_slots};

PyTypeObject *tj_trace_type_new(PyObject *module) {
    return (PyTypeObject *)PyType_FromModuleAndSpec(module, &trace_spec, NULL);
}

PyObject *tj_trace_new(tj_state *st, PyObject *fn) {
    tj_trace *t = PyObject_GC_New(tj_trace, st->TraceType);
    if (!t) return NULL;
    /* every field zero (NULL) but the object header: a field added later starts so */
    memset((char *)t + sizeof(PyObject), 0, sizeof *t - sizeof(PyObject));
    t->st = st;
    tj_graph_init(&t->g);
    t->live = 1;
    t->discard_writes = tj_write_discarding();
    t->pending_root = -1;
    t->progress_after = -1;
    t->captures = PyList_New(0);
    t->fn = Py_NewRef(fn);
    PyObject_GC_Track(t);
    if (!t->captures) { Py_DECREF(t); return NULL; }
    return (PyObject *)t;
}

static _Thread_local tj_trace *current;   /* borrowed: tj_compile_plan holds it */

tj_trace *tj_trace_enter(tj_trace *t) {
    tj_trace *prev = current;
    current = t;
    return prev;
}

void tj_trace_leave(tj_trace *prev) { current = prev; }

tj_trace *tj_trace_current(void) { return current; }

void tj_trace_note_refusal(void) {
    if (!current || current->refusal || !PyErr_Occurred()) return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    current->refusal = value ? PyObject_Str(value) : NULL;
    if (!current->refusal) PyErr_Clear();     /* the original error matters more */
    PyErr_Restore(type, value, tb);
}

/* The node budget of a trace (TRACEJIT_MAX_NODES, default 2,000,000), checked every
 * 4096 nodes. */
static long long max_nodes(void) {
    const char *v = getenv("TRACEJIT_MAX_NODES");
    char *end = NULL;
    long long m = v && *v ? strtoll(v, &end, 10) : 0;
    return end && !*end && m > 0 ? m : 2000000;
}

int32_t tj_trace_add_node(tj_trace *t, const tj_node *proto) {
    tj_error err;
    if (tj_storage_only(t, proto) < 0) return -1;
    if ((t->g.n & 4095) == 4095 && t->g.n >= max_nodes()) {
        tj_trace_error(t->st, "the trace has grown past %lld nodes (TRACEJIT_MAX_NODES): a "
                       "Python loop was unrolled into the graph, one copy of its body per "
                       "iteration (`for i in range(n): out[i] = ...`). Vectorize it "
                       "(whole-array operations, slices, np.where), run it as a compiled loop "
                       "(tracejit.fori_loop, scan), or pass its length as a static argument "
                       "(static_argnames) of a smaller function; TRACEJIT_MAX_NODES raises "
                       "the budget", (long long)max_nodes());
        return -1;
    }
    int32_t r = tj_graph_add(&t->g, proto, &err);
    if (r >= 0 && (r & 4095) == 4095 && t->progress_after >= 0)
        tj_compile_progress(t, "tracing");   /* a clock read every 4096 nodes */
    return r < 0 ? tj_error_raise(t->st, &err) : r;
}

int32_t tj_trace_add_over(tj_trace *t, int32_t src, int op, uint32_t axes) {
    tj_error err;
    tj_node n = t->g.nodes[src];
    n.op = (int16_t)op;
    n.in[0] = src;
    n.in[1] = n.in[2] = -1;
    if (tj_storage_only(t, &n) < 0) return -1;
    int32_t r = tj_graph_add_over(&t->g, src, op, axes, &err);
    return r < 0 ? tj_error_raise(t->st, &err) : r;
}

int32_t tj_trace_leaf(tj_trace *t, int op, const tj_slotdesc *d, int weak, int ndim,
                      const int64_t *shape) {
    tj_node n;
    memset(&n, 0, sizeof n);
    n.op = (int16_t)op;
    n.dtype = (uint8_t)d->dtype;
    n.weak = (uint8_t)weak;
    n.ndim = (uint8_t)ndim;
    n.in[0] = n.in[1] = n.in[2] = -1;
    if (ndim) memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    n.value = d->value;
    tj_error err;
    n.slot = tj_graph_add_slot(&t->g, d, &err);
    if (n.slot < 0) return tj_error_raise(t->st, &err);
    return tj_trace_add_node(t, &n);
}
