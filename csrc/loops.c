/* Compiled loops: tracejit.scan and fori_loop over traced carries (python/tracejit/_loops.py).
 *
 * While the function traces, a loop's body is traced once into the trace's graph between
 * _loop_begin and _loop_end, over placeholder leaves (TJ_SLOT_LOOP slots of negative
 * index: the carries, one step's x, the step number). _loop_end cuts that region out as
 * a graph of its own: its placeholders become argument slots, every value of the outer
 * graph it reads (weights, closures' arrays, a random key) an operand, and compiles it
 * (the body's plan); the outer graph up to the loop, with the carries' initial values,
 * the xs and those operands as its outputs, is compiled too (the operands' plan). The
 * loop's results (the final carries, the stacked ys) are leaves of the outer graph
 * (TJ_SLOT_LOOP, index >= 0), and the loop a record of the trace (t->loops), which the
 * plan takes.
 *
 * At replay, after the plan's guards held and before it binds (tj_plan_run_ctx), each
 * loop in trace order runs its operands' plan, then its body's kernel n times on bound
 * slots (the x of step i read in place from the xs, the carries copied from the body's
 * outputs into its inputs, each y copied into its row of the ys), and its results stand
 * in the call's context (tj_loopctx), which the kernel's LOOP leaves and later loops
 * read. The call's random keys are drawn once for all of them; a body's key is mixed
 * with the step number (key ^ step * 0x9E3779B1), so its draws are fresh at each step.
 *
 * Contract: a loop's body computes what eager's Python loop computes at every step: its
 * carries keep their shapes and dtypes (a TypeError otherwise); Python cannot read a
 * value inside it (a TraceError: compile.c's tj_compile_value); nothing it computed is
 * read after the loop except through its results (tj_loops_check: a write into an outer
 * array, a check or a value stored from inside the body is refused). */
#include "tracejit.h"
#include "loops.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>

#define KEY_MIX 0x9E3779B1LL   /* step * KEY_MIX stays below 2^63 for steps below 2^31 */

static void rec_free(looprec *r) {
    if (r->pre) tj_plan_decref(r->pre);
    if (r->body) tj_plan_decref(r->body);
    PyMem_Free(r->operands);
    PyMem_Free(r->src_kind);
    PyMem_Free(r->src_index);
    Py_XDECREF(r->info);
    PyMem_Free(r->yshape);
    PyMem_Free(r->yndim);
    PyMem_Free(r->ydtype);
    PyMem_Free(r);
}

static void looprec_free(PyObject *cap) {
    looprec *r = PyCapsule_GetPointer(cap, "tracejit.loop");
    if (r) rec_free(r);
}

/* ---- tracing ----------------------------------------------------------------- */

static tj_trace *anchor_trace(PyObject *a) {
    if (!tj_is_tracer(a)) {
        PyErr_SetString(PyExc_TypeError, "a compiled loop needs a traced operand");
        return NULL;
    }
    tj_trace *t = ((tj_tracer *)a)->trace;
    if (!t->live) {
        tj_trace_error(t->st, "a tracer escaped its trace: a traced value was stored and used "
                       "after the compiled function returned");
        return NULL;
    }
    return t;
}

/* A placeholder of the body: a leaf reading slot LOOP -(k + 1). */
static PyObject *placeholder(tj_trace *t, int k, int dtype, int weak, int ndim, const int64_t *shape) {
    tj_slotdesc d = {.kind = TJ_SLOT_LOOP, .index = -(k + 1), .dtype = dtype, .contig = 1};
    int32_t id = tj_trace_leaf(t, TJ_OP_INPUT, &d, weak, ndim, shape);
    return id < 0 ? NULL : tj_tracer_new(t, id);
}

/* _loop_begin(anchor, inits, xs) -> (init Tracers, xs Tracers, start, carry placeholders,
 * x placeholders, step placeholder): the body is traced next, over the placeholders. */
PyObject *tj_py_loop_begin(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    tj_trace *t = nargs == 3 ? anchor_trace(args[0]) : NULL;
    if (!t) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_loop_begin(anchor, inits, xs)");
        return NULL;
    }
    PyObject *inits = PySequence_Fast(args[1], "inits"), *xs = PySequence_Fast(args[2], "xs");
    PyObject *ti = NULL, *tx = NULL, *pc = NULL, *px = NULL, *ps = NULL, *r = NULL;
    if (!inits || !xs) goto done;
    Py_ssize_t nc = PySequence_Fast_GET_SIZE(inits), nx = PySequence_Fast_GET_SIZE(xs);
    if (!(ti = PyList_New(nc)) || !(tx = PyList_New(nx)) || !(pc = PyList_New(nc)) ||
        !(px = PyList_New(nx)))
        goto done;
    for (int pass = 0; pass < 2; pass++) {   /* the operands, all before the region */
        PyObject *src = pass ? xs : inits, *dst = pass ? tx : ti;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(dst); i++) {
            int32_t id = tj_operand(t, PySequence_Fast_GET_ITEM(src, i));
            PyObject *o = id < 0 ? NULL : tj_tracer_new(t, id);
            if (!o) goto done;
            PyList_SET_ITEM(dst, i, o);
        }
    }
    int32_t start = t->g.n;
    for (Py_ssize_t i = 0; i < nc; i++) {
        const tj_node *n = &t->g.nodes[((tj_tracer *)PyList_GET_ITEM(ti, i))->id];
        int64_t shape[TJ_MAXDIM];
        memcpy(shape, n->shape, sizeof shape);
        PyObject *o = placeholder(t, (int)i, n->dtype, n->weak, n->ndim, shape);
        if (!o) goto done;
        PyList_SET_ITEM(pc, i, o);
    }
    for (Py_ssize_t i = 0; i < nx; i++) {
        const tj_node *n = &t->g.nodes[((tj_tracer *)PyList_GET_ITEM(tx, i))->id];
        int64_t shape[TJ_MAXDIM];
        if (n->ndim < 1) {
            PyErr_SetString(PyExc_ValueError, "scan: each xs leaf needs a leading axis");
            goto done;
        }
        memcpy(shape, n->shape + 1, (size_t)(n->ndim - 1) * sizeof *shape);
        PyObject *o = placeholder(t, (int)(nc + i), n->dtype, 0, n->ndim - 1, shape);
        if (!o) goto done;
        PyList_SET_ITEM(px, i, o);
    }
    /* the step number: weak, as the Python int eager's loop passes */
    if (!(ps = placeholder(t, (int)(nc + nx), TJ_I64, 1, 0, NULL))) goto done;
    t->loop_depth++;
    r = Py_BuildValue("OOiOOO", ti, tx, (int)start, pc, px, ps);
done:
    Py_XDECREF(inits); Py_XDECREF(xs); Py_XDECREF(ti); Py_XDECREF(tx);
    Py_XDECREF(pc); Py_XDECREF(px); Py_XDECREF(ps);
    return r;
}

/* A TraceError where a node of ids[0..n) reaches a computed node (or a placeholder) of a
 * loop body's region among the first n_rec loops of t. 0/-1. */
static int check_reach(tj_trace *t, const int32_t *ids, int n, Py_ssize_t n_rec) {
    if (!t->loops || !n_rec) return 0;
    uint8_t *seen = PyMem_Calloc((size_t)t->g.n + 1, 1);
    if (!seen) { PyErr_NoMemory(); return -1; }
    for (int k = 0; k < n; k++) if (ids[k] >= 0) seen[ids[k]] = 1;
    int bad = 0;
    for (int32_t i = t->g.n - 1; i >= 0 && !bad; i--) {
        if (!seen[i]) continue;
        const tj_node *nd = &t->g.nodes[i];
        int computed = nd->in[0] >= 0 ||
                       (nd->slot >= 0 && t->g.slots[nd->slot].kind == TJ_SLOT_LOOP &&
                        t->g.slots[nd->slot].index < 0);
        for (Py_ssize_t r = 0; computed && r < n_rec; r++) {
            const looprec *lr = tj_loop_rec(t->loops, r);
            bad |= i >= lr->start && i < lr->end;
        }
        for (int k = 0; k < 3; k++) if (nd->in[k] >= 0) seen[nd->in[k]] = 1;
    }
    PyMem_Free(seen);
    if (bad)
        tj_trace_error(t->st, "a value traced inside the body of a compiled loop "
                       "(tracejit.scan, fori_loop) is read after the loop, not through its "
                       "results: a write into an array from outside the body, a check or a "
                       "value stored from inside it. Return it from the body instead");
    return bad ? -1 : 0;
}

int tj_loops_check(tj_trace *t) {
    return t->loops ? check_reach(t, t->g.outputs, t->g.n_out, PyList_GET_SIZE(t->loops)) : 0;
}

/* Whether nodes ids[0..n) of t read a random key (or an earlier loop that draws). */
static int reads_draws(tj_trace *t, const int32_t *ids, int n) {
    uint8_t *seen = PyMem_Calloc((size_t)t->g.n + 1, 1);
    if (!seen) return 1;   /* (conservative) */
    for (int k = 0; k < n; k++) if (ids[k] >= 0) seen[ids[k]] = 1;
    int draws = 0;
    for (int32_t i = t->g.n - 1; i >= 0 && !draws; i--) {
        if (!seen[i]) continue;
        const tj_node *nd = &t->g.nodes[i];
        const tj_slotdesc *d = nd->slot >= 0 ? &t->g.slots[nd->slot] : NULL;
        draws = d && (d->kind == TJ_SLOT_KEY || (d->kind == TJ_SLOT_LOOP &&
                                                 tj_loops_draw(t->loops, d->index)));
        for (int k = 0; k < 3; k++) if (nd->in[k] >= 0) seen[nd->in[k]] = 1;
    }
    PyMem_Free(seen);
    return draws;
}

int tj_loops_draw(PyObject *loops, int val) {
    for (Py_ssize_t i = 0; loops && val >= 0 && i < PyList_GET_SIZE(loops); i++) {
        const looprec *r = tj_loop_rec(loops, i);
        if (r && val >= r->first_val && val < r->first_val + r->n_carry + r->n_y) return r->draws;
    }
    return 0;
}

/* Drops from p's loops those whose results nothing of the call reads: no group of the
 * kernel, no result or hidden output of p, no later live loop (its operands read in
 * place or its operands' plan). A loop cannot write what the call returns (tj_loops_check)
 * and the call's keys are drawn whatever loops run, so a dead loop's only effect is its
 * time (a while_loop's, unbounded). 0; -1 + exception. */
int tj_loops_prune(tj_plan *p) {
    if (!p->loops || !PyList_GET_SIZE(p->loops)) return 0;
    Py_ssize_t n = PyList_GET_SIZE(p->loops);
    const looprec *last = tj_loop_rec(p->loops, n - 1);
    if (!last) return -1;
    int n_vals = last->first_val + last->n_carry + last->n_y;
    uint8_t *read = PyMem_Calloc((size_t)n_vals + 1, 1);
    if (!read) { PyErr_NoMemory(); return -1; }
    const tj_schedule *s = &p->sched;
#define TJ_READ_SLOT(pl, slot)                                                            \
    do {                                                                                  \
        int sl_ = (slot);                                                                 \
        if (sl_ >= 0 && sl_ < (pl)->n_leaf_slots && (pl)->slots[sl_].kind == TJ_SLOT_LOOP && \
            (pl)->slots[sl_].index >= 0 && (pl)->slots[sl_].index < n_vals)               \
            read[(pl)->slots[sl_].index] = 1;                                             \
    } while (0)
    for (int gi = 0; gi < s->n_groups; gi++)
        for (int l = 0; l < s->groups[gi].n_leaves; l++) TJ_READ_SLOT(p, s->groups[gi].leaves[l].slot);
    for (int o = 0; o < p->n_results; o++) TJ_READ_SLOT(p, s->out_slot_of[o]);
    PyObject *live = PyList_New(0);
    uint8_t *keep = PyMem_Calloc((size_t)n + 1, 1);
    int rc = live && keep ? 0 : -1;
    for (Py_ssize_t i = n - 1; rc == 0 && i >= 0; i--) {   /* later loops read earlier ones */
        const looprec *r = tj_loop_rec(p->loops, i);
        for (int k = 0; k < r->n_carry + r->n_y; k++) keep[i] |= read[r->first_val + k];
        if (!keep[i]) continue;
        for (int k = 0; k < r->n_carry + r->n_x + r->n_ops; k++)
            if (r->src_kind[k] == TJ_SRC_LOOP && r->src_index[k] >= 0 && r->src_index[k] < n_vals)
                read[r->src_index[k]] = 1;
        const tj_plan *q = r->pre;
        for (int gi = 0; q && gi < q->sched.n_groups; gi++)
            for (int l = 0; l < q->sched.groups[gi].n_leaves; l++)
                TJ_READ_SLOT(q, q->sched.groups[gi].leaves[l].slot);
        for (int o = 0; q && o < q->n_results; o++) TJ_READ_SLOT(q, q->sched.out_slot_of[o]);
    }
#undef TJ_READ_SLOT
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
        if (keep[i]) rc = PyList_Append(live, PyList_GET_ITEM(p->loops, i));
    if (rc == 0) {
        if (PyList_GET_SIZE(live)) Py_SETREF(p->loops, Py_NewRef(live));
        else Py_CLEAR(p->loops);
    } else if (!PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    Py_XDECREF(live);
    PyMem_Free(keep);
    PyMem_Free(read);
    return rc;
}

/* The loop's operands' graph: t's up to `end`, outputs ids (its random keys stay
 * keys: the call's, shared with the plan). New live trace; NULL + exception. */
static tj_trace *operands_trace(tj_trace *t, int32_t end, const int32_t *ids, int n) {
    tj_trace *c = (tj_trace *)tj_trace_new(t->st, t->fn);
    if (!c) return NULL;
    c->torch = t->torch;
    c->g.nodes = malloc((size_t)(end ? end : 1) * sizeof *c->g.nodes);
    c->g.slots = malloc((size_t)(t->g.n_slots ? t->g.n_slots : 1) * sizeof *c->g.slots);
    Py_SETREF(c->captures, PyList_GetSlice(t->captures, 0, PyList_GET_SIZE(t->captures)));
    c->loops = t->loops ? PyList_GetSlice(t->loops, 0, PyList_GET_SIZE(t->loops)) : NULL;
    c->rng_keyfns = t->rng_keyfns ? Py_NewRef(t->rng_keyfns) : NULL;
    if (!c->g.nodes || !c->g.slots || !c->captures || (t->loops && !c->loops)) {
        Py_DECREF(c);
        return (tj_trace *)PyErr_NoMemory();
    }
    memcpy(c->g.nodes, t->g.nodes, (size_t)end * sizeof *c->g.nodes);
    c->g.n = c->g.cap = end;
    memcpy(c->g.slots, t->g.slots, (size_t)t->g.n_slots * sizeof *c->g.slots);
    c->g.n_slots = c->g.cap_slots = t->g.n_slots;
    return c;
}

/* A tuple of Tracers of c for nodes ids[0..n). New reference. */
static PyObject *tracers_of(tj_trace *c, const int32_t *ids, int n) {
    PyObject *r = PyTuple_New(n);
    for (int k = 0; r && k < n; k++) {
        PyObject *o = tj_tracer_new(c, ids[k]);
        if (!o) { Py_CLEAR(r); break; }
        PyTuple_SET_ITEM(r, k, o);
    }
    return r;
}

typedef struct {
    tj_trace *t, *c;
    int32_t start, end;
    int32_t *map;            /* outer id -> body id, -1 */
    int32_t *ops;            /* outer ids lifted as the body's operands */
    int n_ops, cap_ops, n_in;   /* n_in: carries + xs */
    uint8_t *need;           /* per region node */
} cut;

static int lift(cut *k, int32_t id) {
    for (int j = 0; j < k->n_ops; j++) if (k->ops[j] == id) return 0;
    if (k->n_ops == k->cap_ops) {
        int cap = k->cap_ops ? 2 * k->cap_ops : 16;
        int32_t *o = PyMem_Realloc(k->ops, (size_t)cap * sizeof *o);
        if (!o) { PyErr_NoMemory(); return -1; }
        k->ops = o;
        k->cap_ops = cap;
    }
    k->ops[k->n_ops++] = id;
    return 0;
}

/* Whether region node i is a leaf the body reads as an operand (not a placeholder, a
 * constant or an index). */
static int lifted_leaf(const tj_trace *t, int32_t i) {
    const tj_node *n = &t->g.nodes[i];
    if (n->in[0] >= 0 || n->slot < 0) return 0;
    const tj_slotdesc *d = &t->g.slots[n->slot];
    return !(d->kind == TJ_SLOT_CONST || (d->kind == TJ_SLOT_LOOP && d->index < 0));
}

/* The region's nodes the outputs need, and the outer values they read (k->ops). */
static int mark(cut *k, const int32_t *outs, int n_outs) {
    tj_trace *t = k->t;
    for (int o = 0; o < n_outs; o++) {
        if (outs[o] >= k->start) k->need[outs[o] - k->start] = 1;
        else if (lift(k, outs[o]) < 0) return -1;
    }
    for (int32_t i = k->end - 1; i >= k->start; i--) {
        if (!k->need[i - k->start]) continue;
        if (lifted_leaf(t, i)) { if (lift(k, i) < 0) return -1; continue; }
        for (int j = 0; j < 3; j++) {
            int32_t a = t->g.nodes[i].in[j];
            if (a < 0) continue;
            if (a >= k->start) k->need[a - k->start] = 1;
            else if (lift(k, a) < 0) return -1;
        }
    }
    return 0;
}

static int32_t body_node(cut *k, const tj_node *proto) {
    return tj_trace_add_node(k->c, proto);
}

/* The body's graph in k->c: inputs (carries, xs, operands, step), then the region's
 * needed nodes; *uses_keys when it reads a random key (mixed with the step). 0/-1. */
static int build_body(cut *k, int *uses_keys) {
    tj_trace *t = k->t, *c = k->c;
    int n_in = k->n_in;
    int32_t step_id = -1;
    for (int a = 0; a < n_in + k->n_ops + 1; a++) {
        int32_t src = a < n_in ? k->start + a : a < n_in + k->n_ops ? k->ops[a - n_in]
                                                                    : k->start + n_in;
        const tj_node *n = &t->g.nodes[src];
        tj_slotdesc d = {.kind = TJ_SLOT_ARG, .index = a, .dtype = n->dtype, .contig = 1};
        int64_t shape[TJ_MAXDIM];
        memcpy(shape, n->shape, sizeof shape);
        int32_t id = tj_trace_leaf(c, TJ_OP_INPUT, &d, 0, n->ndim, shape);
        if (id < 0) return -1;
        if (a == n_in + k->n_ops) step_id = id;
        k->map[src] = id;
    }
    for (int j = 0; j < k->n_ops; j++) {   /* a random key: fresh at each step */
        const tj_node *n = &t->g.nodes[k->ops[j]];
        if (n->in[0] >= 0 || n->slot < 0 || t->g.slots[n->slot].kind != TJ_SLOT_KEY) continue;
        *uses_keys = 1;
        tj_slotdesc d = {.kind = TJ_SLOT_CONST, .dtype = TJ_I64, .value.i = KEY_MIX};
        int32_t mix = tj_trace_leaf(c, TJ_OP_CONST, &d, 0, 0, NULL);
        tj_node m = {.op = TJ_OP_MUL, .dtype = TJ_I64, .in = {step_id, mix, -1}, .slot = -1};
        int32_t prod = mix < 0 ? -1 : body_node(k, &m);
        tj_node x = {.op = TJ_OP_BXOR, .dtype = TJ_I64, .in = {k->map[k->ops[j]], prod, -1},
                     .slot = -1};
        int32_t id = prod < 0 ? -1 : body_node(k, &x);
        if (id < 0) return -1;
        k->map[k->ops[j]] = id;
    }
    for (int32_t i = k->start + n_in + 1; i < k->end; i++) {
        if (!k->need[i - k->start] || k->map[i] >= 0) continue;
        tj_node n = t->g.nodes[i];
        if (n.in[0] < 0 && n.slot >= 0 && t->g.slots[n.slot].kind != TJ_SLOT_CONST) {
            tj_internal_error(t->st, "a compiled loop's body reads another loop's input");
            return -1;
        }
        if (n.in[0] < 0 && n.slot >= 0) {   /* a constant */
            tj_error err;
            if ((n.slot = tj_graph_add_slot(&c->g, &t->g.slots[n.slot], &err)) < 0)
                return tj_error_raise(t->st, &err);
        }
        for (int j = 0; j < 3; j++)
            if (n.in[j] >= 0 && (n.in[j] = k->map[n.in[j]]) < 0) {
                tj_internal_error(t->st, "a loop body's operand is unmapped");
                return -1;
            }
        if ((k->map[i] = body_node(k, &n)) < 0) return -1;
    }
    return 0;
}

/* Node ids of the operands of a list (tj_operand: Python numbers become constants). */
static int32_t *ids_of(tj_trace *t, PyObject *seq, int *n) {
    PyObject *f = PySequence_Fast(seq, "a list of loop values");
    if (!f) return NULL;
    *n = (int)PySequence_Fast_GET_SIZE(f);
    int32_t *ids = PyMem_Malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int k = 0; ids && k < *n; k++)
        if ((ids[k] = tj_operand(t, PySequence_Fast_GET_ITEM(f, k))) < 0) {
            PyMem_Free(ids);
            ids = NULL;
        }
    if (!ids && !PyErr_Occurred()) PyErr_NoMemory();
    Py_DECREF(f);
    return ids;
}

/* A TypeError where the carries the body returns differ from those it received. */
static int check_carries(tj_trace *t, int32_t start, const int32_t *outs, int nc) {
    for (int k = 0; k < nc; k++) {
        const tj_node *a = &t->g.nodes[start + k], *b = &t->g.nodes[outs[k]];
        int same = a->dtype == b->dtype && a->ndim == b->ndim;
        for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
        if (same) continue;
        char sa[256], sb[256];
        tj_shape_str(sa, sizeof sa, a->ndim, a->shape);
        tj_shape_str(sb, sizeof sb, b->ndim, b->shape);
        PyErr_Format(PyExc_TypeError, "the body of a compiled loop must return its carry with "
                     "the shapes and dtypes it received, but carry leaf %d is %s of shape %s in "
                     "the input and %s of shape %s in the output (give the initial carry the "
                     "dtype the body computes, e.g. np.float32(0.0))", k,
                     tj_dtype_name(a->dtype), sa, tj_dtype_name(b->dtype), sb);
        return -1;
    }
    return 0;
}

/* Where loop r reads each of its operands ids[0..n) (r->src_kind, r->src_index): in
 * place when it is a leaf of the outer graph that holds an ndarray (an argument, a
 * captured array, an earlier loop's result: no copy per call), else from its operands'
 * plan, whose outputs are then comp[0..returned). -1 + exception. */
static int read_in_place(tj_trace *t, looprec *r, const int32_t *ids, int n, int32_t *comp) {
    int n_comp = 0;
    r->src_kind = PyMem_Calloc((size_t)n + 1, 1);
    r->src_index = PyMem_Calloc((size_t)n + 1, sizeof *r->src_index);
    if (!r->src_kind || !r->src_index) { PyErr_NoMemory(); return -1; }
    for (int k = 0; k < n; k++) {
        const tj_node *v = &t->g.nodes[ids[k]];
        const tj_slotdesc *d = v->in[0] < 0 && v->slot >= 0 ? &t->g.slots[v->slot] : NULL;
        int kind = !d || d->torch ? TJ_SRC_PRE
                 : d->kind == TJ_SLOT_ARG && v->op == TJ_OP_INPUT ? TJ_SRC_ARG
                 : d->kind == TJ_SLOT_CAPTURE ? TJ_SRC_CAPTURE
                 : d->kind == TJ_SLOT_LOOP && d->index >= 0 ? TJ_SRC_LOOP : TJ_SRC_PRE;
        r->src_kind[k] = (uint8_t)kind;
        r->src_index[k] = kind == TJ_SRC_PRE ? n_comp : d->index;
        if (kind == TJ_SRC_PRE) comp[n_comp++] = ids[k];
    }
    return n_comp;
}

/* _loop_end(anchor, start, kind, n, reverse, inits, xs, carries, ys) -> the results
 * (final carries, stacked ys) as Tracers; _loop_end(anchor): the body's trace failed. */
PyObject *tj_py_loop_end(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    tj_trace *t = nargs >= 1 ? anchor_trace(args[0]) : NULL;
    if (!t) return NULL;
    if (t->loop_depth > 0) t->loop_depth--;
    if (nargs == 1) Py_RETURN_NONE;
    int32_t *inits = NULL, *xs = NULL, *outs = NULL, *pre_ids = NULL, *comp_ids = NULL;
    cut k = {t, NULL, 0, 0, NULL, NULL, 0, 0, 0, NULL};
    tj_trace *pre = NULL;
    PyObject *bres = NULL, *pres = NULL, *cap = NULL, *res = NULL;
    looprec *r = PyMem_Calloc(1, sizeof *r);
    int ni, nx, nc, ny;
    if ((nargs != 9 && nargs != 10) || !r) {
        if (r) PyErr_SetString(PyExc_TypeError, "_loop_end(anchor, start, kind, n, reverse, "
                               "inits, xs, carries, ys)");
        else PyErr_NoMemory();
        goto done;
    }
    int device, device_id;   /* the operands' plan and the body run on the CPU */
    if (t->flat && tj_flat_device(t->flat, t->captures, &device, &device_id) < 0) goto done;
    if (t->flat && device != TJ_DEVICE_CPU) {
        tj_trace_error(t->st, "a compiled loop (tracejit.scan, fori_loop, while_loop) is not "
                       "supported on the GPU yet (cuda:%d): run it on CPU tensors", device_id);
        goto done;
    }
    r->start = k.start = (int32_t)PyLong_AsLong(args[1]);
    r->kind = (int)PyLong_AsLong(args[2]);
    r->n = PyLong_AsLongLong(args[3]);
    r->reverse = PyObject_IsTrue(args[4]);
    if (PyErr_Occurred() || !(inits = ids_of(t, args[5], &ni)) || !(xs = ids_of(t, args[6], &nx)))
        goto done;
    /* the body's results, as nodes of the region (constants made here included) */
    PyObject *both = PySequence_Concat(args[7], args[8]);
    if (!both) goto done;
    int n_outs;
    outs = ids_of(t, both, &n_outs);
    Py_DECREF(both);
    if (!outs || PyObject_Length(args[7]) < 0) goto done;
    nc = (int)PyObject_Length(args[7]);
    ny = n_outs - nc;
    if (nc != ni) { PyErr_SetString(PyExc_TypeError, "a loop's carries differ in number"); goto done; }
    if (check_carries(t, r->start, outs, nc) < 0) goto done;
    r->end = k.end = t->g.n;
    r->n_carry = nc; r->n_x = nx; r->n_y = ny;
    k.n_in = nc + nx;
    if (!(k.map = PyMem_Malloc((size_t)k.end * sizeof *k.map)) ||
        !(k.need = PyMem_Calloc((size_t)(k.end - k.start) + 1, 1))) {
        PyErr_NoMemory();
        goto done;
    }
    for (int32_t i = 0; i < k.end; i++) k.map[i] = -1;
    if (mark(&k, outs, n_outs) < 0) goto done;
    if (!(k.c = (tj_trace *)tj_trace_new(t->st, t->fn))) goto done;
    k.c->torch = t->torch;
    if (build_body(&k, &r->uses_keys) < 0) goto done;
    r->yshape = PyMem_Calloc((size_t)ny + 1, sizeof *r->yshape);
    r->yndim = PyMem_Calloc((size_t)ny + 1, sizeof *r->yndim);
    r->ydtype = PyMem_Calloc((size_t)ny + 1, sizeof *r->ydtype);
    if (!r->yshape || !r->yndim || !r->ydtype) { PyErr_NoMemory(); goto done; }
    for (int j = 0; j < ny; j++) {   /* (before the passes rewrite the body's graph) */
        const tj_node *n = &t->g.nodes[outs[nc + j]];
        if (n->ndim + 1 > TJ_MAXDIM) {
            tj_trace_error(t->st, "a scan's ys have too many dimensions");
            goto done;
        }
        memcpy(r->yshape[j], n->shape, sizeof r->yshape[j]);
        r->yndim[j] = n->ndim;
        r->ydtype[j] = n->dtype;
    }
    for (int o = 0; o < n_outs; o++) outs[o] = k.map[outs[o]];
    if (!(bres = tracers_of(k.c, outs, n_outs)) ||
        !(r->body = tj_compile_subplan(t, k.c, bres, 1)))
        goto done;
    r->n_ops = k.n_ops;
    int n_pre = nc + nx + k.n_ops;
    if (!(pre_ids = PyMem_Malloc((size_t)(n_pre ? n_pre : 1) * sizeof *pre_ids)) ||
        !(comp_ids = PyMem_Malloc((size_t)(n_pre ? n_pre : 1) * sizeof *comp_ids))) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(pre_ids, inits, (size_t)nc * sizeof *pre_ids);
    memcpy(pre_ids + nc, xs, (size_t)nx * sizeof *pre_ids);
    memcpy(pre_ids + nc + nx, k.ops, (size_t)k.n_ops * sizeof *pre_ids);
    if (r->uses_keys && nargs == 10 && args[9] != Py_None) {   /* (its backward would draw */
        res = Py_NewRef(Py_None);                                /* other numbers: unrolled) */
        goto done;
    }
    int n_comp = read_in_place(t, r, pre_ids, n_pre, comp_ids);
    if (n_comp < 0 ||
        check_reach(t, pre_ids, n_pre, t->loops ? PyList_GET_SIZE(t->loops) : 0) < 0 ||
        (n_comp && (!(pre = operands_trace(t, r->end, comp_ids, n_comp)) ||
                    !(pres = tracers_of(pre, comp_ids, n_comp)) ||
                    !(r->pre = tj_compile_subplan(t, pre, pres, 0)))))
        goto done;
    r->first_val = t->n_loop_vals;
    r->draws = r->uses_keys || reads_draws(t, pre_ids, n_pre);
    r->operands = pre_ids;
    pre_ids = NULL;
    r->first_res = t->g.n;   /* (the result leaves, made below, one node each) */
    if (nargs == 10 && args[9] != Py_None) r->info = Py_NewRef(args[9]);
    if (!t->loops && !(t->loops = PyList_New(0))) goto done;
    if (!(cap = PyCapsule_New(r, "tracejit.loop", looprec_free))) goto done;
    looprec *rr = r;
    r = NULL;   /* the capsule's */
    if (PyList_Append(t->loops, cap) < 0) goto done;
    t->n_loop_vals += nc + ny;
    res = PyList_New(nc + ny);   /* the ys' shapes: the body's y nodes' */
    for (int j = 0; res && j < nc + ny; j++) {
        const tj_node *n = &t->g.nodes[rr->start + (j < nc ? j : 0)];
        int64_t shape[TJ_MAXDIM];
        int ndim = j < nc ? n->ndim : rr->yndim[j - nc] + 1;
        if (j < nc) memcpy(shape, n->shape, sizeof shape);
        else {
            shape[0] = rr->n;
            memcpy(shape + 1, rr->yshape[j - nc], (size_t)(ndim - 1) * sizeof *shape);
        }
        tj_slotdesc d = {.kind = TJ_SLOT_LOOP, .index = rr->first_val + j,
                         .dtype = j < nc ? n->dtype : rr->ydtype[j - nc], .contig = 1};
        int32_t id = tj_trace_leaf(t, TJ_OP_INPUT, &d, 0, ndim, shape);
        PyObject *o = id < 0 ? NULL : tj_tracer_new(t, id);
        if (!o) {
            Py_CLEAR(res);
            break;
        }
        PyList_SET_ITEM(res, j, o);
    }
done:
    if (k.c) k.c->live = 0;
    if (pre) pre->live = 0;
    Py_XDECREF((PyObject *)k.c);
    Py_XDECREF((PyObject *)pre);
    Py_XDECREF(bres);
    Py_XDECREF(pres);
    Py_XDECREF(cap);
    if (r) rec_free(r);
    PyMem_Free(inits); PyMem_Free(xs); PyMem_Free(outs); PyMem_Free(pre_ids);
    PyMem_Free(comp_ids);
    PyMem_Free(k.map); PyMem_Free(k.need); PyMem_Free(k.ops);
    return res;
}

int tj_loops_log(PyObject *loops, PyObject *log) {
    static const char *const kinds[] = {"scan", "fori_loop", "while_loop"};
    if (!loops || !log) return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(loops); i++) {
        const looprec *r = tj_loop_rec(loops, i);
        int n_in = r->n_carry + r->n_x + r->n_ops, n_place = 0;
        for (int k = 0; k < n_in; k++) n_place += r->src_kind[k] != TJ_SRC_PRE;
        PyObject *l = r->n < 0
            ? PyUnicode_FromFormat("-- loop %zd: %s (compiled, not unrolled): body of %d groups, "
                                   "%d carries; %d of %d operands read in place", i,
                                   kinds[r->kind], r->body->sched.n_groups, r->n_carry - 1,
                                   n_place, n_in)
            : PyUnicode_FromFormat("-- loop %zd: %s of %lld steps (compiled, not unrolled): body "
                                   "of %d groups, %d carries, %d ys; %d of %d operands read in "
                                   "place", i, kinds[r->kind], (long long)r->n,
                                   r->body->sched.n_groups, r->n_carry, r->n_y, n_place, n_in);
        int rc = l ? PyList_Append(log, l) : -1;
        Py_XDECREF(l);
        if (rc < 0) return -1;
    }
    return 0;
}

/* _loop_info(tracer) -> None, or for a result of a compiled loop: (the info object it
 * was traced with or None, its results, its operands (carries' initial values, xs, the outer
 * values its body reads), n_carry, n_x, uses_keys), as Tracers. */
PyObject *tj_py_loop_info(PyObject *m, PyObject *o) {
    if (!tj_is_tracer(o)) Py_RETURN_NONE;
    tj_trace *t = ((tj_tracer *)o)->trace;
    int32_t id = ((tj_tracer *)o)->id;
    const tj_node *n = &t->g.nodes[id];
    if (!t->loops || n->in[0] >= 0 || n->slot < 0 || t->g.slots[n->slot].kind != TJ_SLOT_LOOP ||
        t->g.slots[n->slot].index < 0)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(t->loops); i++) {
        const looprec *r = tj_loop_rec(t->loops, i);
        int nres = r->n_carry + r->n_y;
        if (id < r->first_res || id >= r->first_res + nres) continue;
        int32_t *ids = PyMem_Malloc((size_t)nres * sizeof *ids);
        if (!ids) return PyErr_NoMemory();
        for (int k = 0; k < nres; k++) ids[k] = r->first_res + k;
        PyObject *res = tracers_of(t, ids, nres);
        PyMem_Free(ids);
        PyObject *ops = res ? tracers_of(t, r->operands, r->n_carry + r->n_x + r->n_ops) : NULL;
        PyObject *out = ops ? Py_BuildValue("OOOiii", r->info ? r->info : Py_None, res, ops,
                                            r->n_carry, r->n_x, r->uses_keys) : NULL;
        Py_XDECREF(res);
        Py_XDECREF(ops);
        return out;
    }
    Py_RETURN_NONE;
}

void tj_loops_end_trace(tj_trace *t) {
    for (Py_ssize_t i = 0; t->loops && i < PyList_GET_SIZE(t->loops); i++) {
        looprec *r = (looprec *)tj_loop_rec(t->loops, i);
        if (r) Py_CLEAR(r->info);   /* (it holds the trace's Tracers: no cycle outlives it) */
    }
}

/* _loop_anchor() -> a Tracer of the trace running on this thread (a constant), or None:
 * what anchors a loop whose carries and xs are all arrays of the caller's. */
PyObject *tj_py_loop_anchor(PyObject *m, PyObject *unused) {
    tj_trace *t = tj_trace_current();
    if (!t || !t->live) Py_RETURN_NONE;
    PyObject *zero = PyLong_FromLong(0);
    int32_t id = zero ? tj_operand(t, zero) : -1;
    Py_XDECREF(zero);
    return id < 0 ? NULL : tj_tracer_new(t, id);
}
