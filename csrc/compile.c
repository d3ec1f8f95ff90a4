/* The compile driver: one call's arguments -> a plan. Traces the function with
 * Tracers (csrc/trace/), runs the pipeline (csrc/fuse/), emits and compiles the kernel
 * with the backends of the call's device (the table below: on the CPU, TinyCC's C at
 * once, the optimizing tier's fused C as the kernel's upgrade), and moves what the
 * trace produced into the plan the runtime replays.
 * Contract: an exception raised by the traced code propagates unchanged and makes no
 * plan; the plan is returned with one reference, the caller's, and cached nowhere. */
#include "backend/backend.h"
#include "loops.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- a long compile's progress on stderr ------------------------------------------ */

/* TRACEJIT_PROGRESS: the seconds after which a compile notes its progress; unset, empty
 * or not a number >= 0 is the default, 0.5 ("inf": never). */
#define TJ_LONG_TRACE 5000   /* ops from which a long compile suggests a compiled loop */

static double progress_after(void) {
    const char *v = getenv("TRACEJIT_PROGRESS");
    char *end = NULL;
    double s = v && *v ? strtod(v, &end) : -1;
    return end && !*end && s >= 0 ? s : 0.5;
}

/* The traced function's __qualname__, else its repr. New reference; NULL + exception. */
static PyObject *fn_name(PyObject *fn) {
    PyObject *name = PyObject_GetAttrString(fn, "__qualname__");
    if (name && PyUnicode_Check(name)) return name;
    Py_XDECREF(name);
    PyErr_Clear();
    return PyObject_Repr(fn);
}

/* Writes one line, "[tracejit] <what> <name>: <rest>", keeping a pending exception
 * (a nicety: a failure to write is dropped). */
static void progress_line(tj_trace *t, const char *what, const char *rest) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *name = fn_name(t->fn);
    PyObject *text = name ? PyUnicode_FromFormat("[tracejit] %s %U %s\n", what, name, rest)
                          : NULL;
    tj_debug_write(text);
    Py_XDECREF(text);
    Py_XDECREF(name);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

void tj_compile_progress(tj_trace *t, const char *doing) {
    double s = now_s() - t->started;
    if (t->progress_noted || t->progress_after < 0 || s < t->progress_after) return;
    t->progress_noted = 1;
    char rest[128];
    snprintf(rest, sizeof rest, "for %.1f s so far: %s (%d ops)", s, doing, (int)t->g.n);
    progress_line(t, "compiling", rest);
}

/* The closing line of a long compile, noted or not (its last phase may have been the
 * long one); TRACEJIT_DEBUG=1 prints its own. */
static void progress_done(tj_trace *t, double t0, double t_trace, double t_passes,
                          double t_compile) {
    if (!t->progress_noted && (t->progress_after < 0 || now_s() - t0 < t->progress_after))
        return;
    char rest[320];
    snprintf(rest, sizeof rest, "in %.2f s (trace %.2f s, passes+emit %.2f s, libtcc %.2f s)%s",
             now_s() - t0, t_trace - t0, t_passes - t_trace, t_compile - t_passes,
             t->g.n >= TJ_LONG_TRACE ? "; a Python loop traced step by step? "
             "tracejit.fori_loop or tracejit.scan trace its body once and compile a loop" : "");
    progress_line(t, "compiled", rest);
}

/* ---- the backends of each device --------------------------------------------------- */

/* The CPU's first kernel: the schedule as C, compiled in memory by TinyCC. */
static int cpu_first(const tj_compile_request *rq, PyObject **source, double *emitted,
                     tj_kernel *k) {
    if (!(*source = tj_emit_c(rq->st, rq->g, rq->s))) return -1;
    *emitted = now_s();
    const char *c = PyUnicode_AsUTF8(*source);
    return c ? tj_backend_tcc.compile(rq->st, c, TJ_COMPILE_NOW, k) : -1;
}

/* A CUDA device's kernel: the schedule as CUDA C++ (csrc/emit/emit_cuda.c), compiled by
 * NVRTC for the device and loaded into its primary context: a kernel that runs itself
 * on torch's current stream (csrc/backend/cuda.c). What it does not run yet is a
 * TraceError naming it: results that are Python or NumPy scalars, non-contiguous NumPy
 * captures, and every output the runtime reads on the host (the values Python read
 * while tracing, the trace's checks, the caller's arrays written back: the replay reads
 * them in host memory, its own or the argument's). */
static int cuda_first(const tj_compile_request *rq, PyObject **source, double *emitted,
                      tj_kernel *k) {
    tj_state *st = rq->st;
    const char *no = rq->tmpl->any_scalar
        ? "returns a Python number or a NumPy scalar"
        : rq->n_writes ? "writes into an argument or a captured tensor (the new contents are "
                         "written back on the host)"
        : rq->g->n_hidden > rq->n_checks ? "reads the value of a traced array in Python (a "
                                           "branch on data, int(), float(), .item())"
        : rq->n_checks ? "checks traced values (argument validation)" : NULL;
    if (no) {
        PyErr_Format(st->TraceError, "the traced function %s: not supported on the GPU yet "
                     "(cuda:%d); run it on CPU tensors", no, rq->device_id);
        return -1;
    }
    for (int i = 0; i < rq->g->n_slots; i++)
        if (rq->g->slots[i].kind == TJ_SLOT_CAPTURE && !rq->g->slots[i].torch &&
            !rq->g->slots[i].contig) {
            PyErr_SetString(st->TraceError, "the traced function reads a non-contiguous NumPy "
                            "array: not on CUDA yet (pass np.ascontiguousarray of it)");
            return -1;
        }
    tj_cuda_program prog;
    tj_error err;
    if (tj_emit_cuda_source(rq->g, rq->s, &prog, &err) < 0) {
        if (err.kind == TJ_ERR_VALUE) PyErr_SetString(st->TraceError, err.msg);
        else tj_error_raise(st, &err);
        return -1;
    }
    *emitted = now_s();
    *source = PyUnicode_FromStringAndSize(prog.src.buf, (Py_ssize_t)prog.src.len);
    int rc = *source ? tj_cuda_kernel_build(st, rq->g, rq->s, &prog, rq->device_id, k) : -1;
    tj_cuda_program_free(&prog);
    return rc;
}

/* One row per device (backend.h: tj_backend_row); the runtime does not change. */
static const tj_backend_row backends[] = {
    {TJ_DEVICE_CPU, "TinyCC", cpu_first, &tj_backend_tier, tj_emit_fused},
    {TJ_DEVICE_CUDA, "NVRTC", cuda_first, NULL, NULL},
};

const tj_backend_row *tj_backends_for(int device) {
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (backends[i].device == device) return &backends[i];
    return NULL;
}

/* ---- the plan ------------------------------------------------------------------ */

PyObject *tj_explanation(PyObject *log, PyObject *source, PyObject *tier_source) {
    PyObject *mod = PyImport_ImportModule("tracejit._explain");
    PyObject *r = mod ? PyObject_CallMethod(mod, "Explanation", "OOO", log ? log : Py_None,
                                            source ? source : Py_None,
                                            tier_source ? tier_source : Py_None)
                      : NULL;
    Py_XDECREF(mod);
    return r;
}

/* The trace's values computed by the kernel (VALUE guards): hidden outputs. */
static int n_value_outputs(const tj_trace *t) {
    int n = 0;
    for (Py_ssize_t i = 0; t->values && i < PyList_GET_SIZE(t->values); i++)
        n += PyLong_AsLong(PyTuple_GET_ITEM(PyList_GET_ITEM(t->values, i), 0)) == TJ_GUARD_VALUE;
    return n;
}

/* Output slots no result reads (a guard's or a check's value only, or the new contents
 * of an array the replay writes back into the caller's: write_back copies them from
 * there) live in the replay's own memory, not in an array made per call: their
 * offsets there. 0/-1. */
static int hidden_slots(tj_plan *p) {
    const tj_schedule *s = &p->sched;
    int n_out = s->n_slots - s->first_out;
    int n_results = p->n_results - p->n_hidden - p->n_writes;   /* the template's */
    if (!p->n_hidden && !p->n_writes) return 0;
    p->out_hidden = PyMem_Calloc((size_t)(n_out ? n_out : 1), 1);
    p->hidden_off = PyMem_Calloc((size_t)(n_out ? n_out : 1), sizeof(int64_t));
    if (!p->out_hidden || !p->hidden_off) { PyErr_NoMemory(); return -1; }
    for (int o = n_results; o < p->n_results; o++)   /* (a write's may be a leaf slot) */
        if (s->out_slot_of[o] >= s->first_out) p->out_hidden[s->out_slot_of[o] - s->first_out] = 1;
    for (int o = 0; o < n_results; o++)   /* a result's too: an array */
        if (s->out_slot_of[o] >= s->first_out) p->out_hidden[s->out_slot_of[o] - s->first_out] = 0;
    for (int k = 0; k < n_out; k++) {
        if (!p->out_hidden[k]) continue;
        int slot = s->first_out + k;
        int64_t bytes = tj_dtype_size(s->slot_dtype[slot]);
        for (int d = 0; d < s->slot_ndim[slot]; d++) bytes *= s->slot_shape[slot][d];
        p->hidden_off[k] = p->hidden_bytes;
        p->hidden_bytes += (bytes + 7) & ~(int64_t)7;
    }
    return 0;
}

/* Moves what the trace produced into a new plan. */
static tj_plan *make_plan(const tj_flat *f, tj_trace *t, tj_schedule *sched, tj_template *tmpl) {
    tj_plan *p = PyMem_Calloc(1, sizeof *p);
    if (!p) return (tj_plan *)PyErr_NoMemory();
    p->st = t->st;
    p->refs = 1;
    p->device = TJ_DEVICE_CPU;   /* (the driver's plans: their device's) */
    p->sched = *sched;
    memset(sched, 0, sizeof *sched);
    p->tmpl = *tmpl;
    memset(tmpl, 0, sizeof *tmpl);
    p->n_key = f->n_words;
    p->hash = f->hash;
    p->key = PyMem_Malloc((size_t)(f->n_words ? f->n_words : 1) * sizeof(int64_t));
    p->statics = PyTuple_New(f->n_statics);
    p->n_leaves = f->n_leaves;
    p->n_leaf_slots = t->g.n_slots;
    p->slots = PyMem_Malloc((size_t)(t->g.n_slots ? t->g.n_slots : 1) * sizeof *p->slots);
    p->consts = PyMem_Calloc((size_t)(t->g.n_slots ? t->g.n_slots : 1), 8);
    p->captures = Py_NewRef(t->captures);
    Py_ssize_t nc = PyList_GET_SIZE(t->captures);
    p->cap_shape = PyMem_Calloc((size_t)(nc ? nc : 1), sizeof *p->cap_shape);
    p->cap_ndim = PyMem_Calloc((size_t)(nc ? nc : 1), sizeof(int));
    p->slot_strides = PyMem_Calloc((size_t)(p->sched.n_scratch ? p->sched.n_scratch : 1),
                                   sizeof *p->slot_strides);
    if (!p->key || !p->statics || !p->slots || !p->consts || !p->cap_shape || !p->cap_ndim ||
        !p->slot_strides) {
        tj_plan_decref(p);
        return (tj_plan *)PyErr_NoMemory();
    }
    memcpy(p->key, f->words, (size_t)f->n_words * sizeof(int64_t));
    for (int i = 0; i < f->n_statics; i++) PyTuple_SET_ITEM(p->statics, i, Py_NewRef(f->statics[i]));
    memcpy(p->slots, t->g.slots, (size_t)t->g.n_slots * sizeof *p->slots);
    for (int i = 0; i < t->g.n_slots; i++) {
        const tj_slotdesc *d = &t->g.slots[i];
        if (d->kind != TJ_SLOT_CONST) continue;
        unsigned char *c = p->consts[i];
        tj_scalar_store(d->dtype, c, d->value);
    }
    for (Py_ssize_t i = 0; i < nc; i++) {
        PyObject *o = PyTuple_GET_ITEM(PyList_GET_ITEM(t->captures, i), 3);
        if (!PyArray_Check(o)) {   /* a torch tensor: read at trace time already */
            tj_dlview v;
            const char *why;
            if (tj_dl_torch_view(t->st, o, &v, &why) != 0) {
                if (!PyErr_Occurred() && why == tj_dl_why_grad)
                    PyErr_SetString(t->st->TraceError, tj_dl_why_no_grad_read);
                else if (!PyErr_Occurred())
                    tj_internal_error(t->st, "a captured torch tensor changed");
                tj_plan_decref(p);
                return NULL;
            }
            p->cap_ndim[i] = v.ndim;
            memcpy(p->cap_shape[i], v.shape, (size_t)v.ndim * sizeof(int64_t));
            continue;
        }
        PyArrayObject *a = (PyArrayObject *)o;
        p->cap_ndim[i] = PyArray_NDIM(a);
        for (int d = 0; d < PyArray_NDIM(a); d++) p->cap_shape[i][d] = PyArray_DIM(a, d);
    }
    p->out_lib = f->out_lib < 0 ? TJ_LIB_NUMPY : f->out_lib;
    p->torch_dflt = t->torch & 4 ? TJ_F64 : t->torch & 2 ? TJ_F32 : -1;
    p->pyvalues = Py_XNewRef(t->guards);   /* _effects.guards */
    p->keyfns = t->rng_keyfns ? Py_NewRef(t->rng_keyfns) : NULL;
    p->loops = t->loops ? Py_NewRef(t->loops) : NULL;
    p->n_results = t->g.n_out;
    if (tj_loops_prune(p) < 0) { tj_plan_decref(p); return NULL; }
    if (t->checks) {
        p->n_checks = (int)PyList_GET_SIZE(t->checks);
        if (!(p->check_msgs = PyTuple_New(p->n_checks))) { tj_plan_decref(p); return NULL; }
        for (int i = 0; i < p->n_checks; i++) {   /* (exception class, message) */
            PyObject *entry = PyList_GET_ITEM(t->checks, i);
            PyObject *pair = PyTuple_Pack(2, PyTuple_GET_ITEM(entry, 2),
                                          PyTuple_GET_ITEM(entry, 1));
            if (!pair) { tj_plan_decref(p); return NULL; }
            PyTuple_SET_ITEM(p->check_msgs, i, pair);
        }
    }
    p->n_hidden = p->n_checks + n_value_outputs(t);
    if (t->values && !(p->values = PyList_AsTuple(t->values))) { tj_plan_decref(p); return NULL; }
    if (tj_guards_build(p) < 0) {
        tj_plan_decref(p);
        return NULL;
    }
    if (p->out_lib == TJ_LIB_DLPACK) p->out_conv = tj_dl_converter(f->out_type);
    int n_out = p->sched.n_slots - p->sched.first_out;
    if (!(p->out_strides = PyMem_Calloc((size_t)(n_out ? n_out : 1), sizeof *p->out_strides))) {
        tj_plan_decref(p);
        return (tj_plan *)PyErr_NoMemory();
    }
    for (int k = 0; k < n_out; k++) {
        int slot = p->sched.first_out + k;
        int64_t stride = tj_dtype_size(p->sched.slot_dtype[slot]);
        for (int d = p->sched.slot_ndim[slot] - 1; d >= 0; d--) {
            p->out_strides[k][d] = stride;
            stride *= p->sched.slot_shape[slot][d];
        }
    }
    for (int k = 0; k < p->sched.n_scratch; k++) {
        int slot = p->sched.first_scratch + k;
        int64_t stride = tj_dtype_size(p->sched.slot_dtype[slot]);
        for (int d = p->sched.slot_ndim[slot] - 1; d >= 0; d--) {
            p->slot_strides[k][d] = stride;
            stride *= p->sched.slot_shape[slot][d];
        }
    }
    if (t->n_writes || t->out_alias) {   /* (n_results, n_hidden: set above) */
        p->n_writes = t->n_writes;
        p->write_slot = PyMem_Malloc((size_t)(t->n_writes + 1) * sizeof *p->write_slot);
        p->out_alias = PyMem_Malloc((size_t)(p->n_results + 1) * sizeof *p->out_alias);
        if (!p->write_slot || !p->out_alias) { tj_plan_decref(p); return (tj_plan *)PyErr_NoMemory(); }
        for (int i = 0, k = 0; i < t->n_ext; i++)
            if (t->ext[i].cur != t->ext[i].root && t->ext[i].back && !t->discard_writes)
                p->write_slot[k++] = t->ext[i].slot;
        for (int o = 0; o < p->n_results; o++)
            p->out_alias[o] = o < p->n_results - p->n_hidden - p->n_writes && t->out_alias
                                  ? t->out_alias[o] : -1;
    }
    if (hidden_slots(p) < 0) {   /* (after n_writes: their outputs are hidden too) */
        tj_plan_decref(p);
        return NULL;
    }
    for (int gi = 0; gi < p->sched.n_groups; gi++) {
        int64_t w = 1;
        for (int d = 0; d < p->sched.groups[gi].ndim; d++) w *= p->sched.groups[gi].shape[d];
        p->work += w * (p->sched.groups[gi].n_nodes + 1);
    }
    return p;
}

/* The caller's arrays the trace wrote into become outputs after the checks (unless
 * t->discard_writes), each with the leaf slot it is written back to; a result that is
 * one of them notes its slot (t->out_alias). 0/-1. */
static int add_writes(tj_trace *t) {
    int n_res = t->g.n_out;
    if (!t->n_ext) return 0;
    if (!(t->out_alias = PyMem_Malloc((size_t)(n_res ? n_res : 1) * sizeof *t->out_alias))) {
        PyErr_NoMemory();
        return -1;
    }
    for (int o = 0; o < n_res; o++) t->out_alias[o] = -1;
    for (int i = 0; i < t->n_ext; i++) {
        tj_extwrite *e = &t->ext[i];
        if (e->cur == e->root || !e->back || t->discard_writes) continue;
        e->slot = t->g.nodes[e->root].slot;
        for (int o = 0; o < n_res; o++)   /* the template's outputs (added before) */
            if (t->g.outputs[o] == e->cur) t->out_alias[o] = e->slot;
        tj_error err;
        if (tj_graph_add_output(&t->g, e->cur, &err) < 0) return tj_error_raise(t->st, &err);
        t->n_writes++;
    }
    return 0;
}

/* Traces fn for these arguments into t (its graph, the result's template tmpl) and
 * runs the pipeline into sched, appending its log to `log` when non-NULL; no code is
 * emitted or compiled. *t_trace: when the trace ended. 0; -1 with the exception (the
 * user's, unchanged). */
static int trace_once(PyObject *fn, const tj_argconf *conf, const tj_flat *f,
                      PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, tj_trace *t,
                      tj_template *tmpl, tj_schedule *sched, PyObject *log, double *t_trace) {
    int rc = -1;
    PyObject *targs = NULL, *tkwargs = NULL, *res = NULL;
    t->flat = f;   /* the values Python reads while tracing are this call's */
    if (tj_trace_args(t, conf, args, nargs, kwnames, &targs, &tkwargs) < 0) goto done;
    tj_state *st = t->st;
    if (tj_effects_enter(st) < 0) goto done;
    tj_trace *outer = tj_trace_enter(t);
    if (st->trace_call)   /* _effects.call: random draws refused, torch's mode entered */
        res = PyObject_CallFunctionObjArgs(st->trace_call, fn, targs,
                                           tkwargs ? tkwargs : Py_None,
                                           t->torch ? Py_True : Py_False,
                                           t->outside == 2 ? Py_False : Py_True, NULL);
    else
        res = PyObject_Call(fn, targs, tkwargs);
    tj_effects_leave(st);
    tj_trace_leave(outer);
    if (!res) goto done;                       /* the user's exception, unchanged */
    if (PyExceptionInstance_Check(res) && t->outside != 2) {   /* failed, arrays traced */
        t->outside = 3;
        PyErr_SetObject((PyObject *)Py_TYPE(res), res);
        goto done;
    }
    if (st->trace_call) {                      /* (result, guards) */
        if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) {
            tj_internal_error(st, "the trace call returned no (result, guards)");
            goto done;
        }
        t->guards = PyTuple_GET_ITEM(res, 1) == Py_None ? NULL
                                                         : Py_NewRef(PyTuple_GET_ITEM(res, 1));
        Py_SETREF(res, Py_NewRef(PyTuple_GET_ITEM(res, 0)));
    }
    if (t->refusal) {     /* caught by the user's code, which went on: not eager's path */
        PyErr_Format(st->TraceError, "%U\n(the traced function caught this TraceError and "
                     "went on, so what it computed may not be what eager computes: the trace "
                     "is refused)", t->refusal);
        goto done;
    }
    if (tj_write_check_done(t) < 0) goto done;
    if (tj_template_from_result(tmpl, t, res) < 0) goto done;
    int32_t n_template = t->g.n_out;
    /* outputs: the template's, the caller's arrays written (add_writes), then what only
     * the runtime reads: the guards' values and the checks' (g.n_hidden, the tail) */
    if (add_writes(t) < 0) goto done;
    for (Py_ssize_t i = 0; t->values && i < PyList_GET_SIZE(t->values); i++) {
        PyObject *e = PyList_GET_ITEM(t->values, i);   /* the guards' values, then the checks' */
        if (PyLong_AsLong(PyTuple_GET_ITEM(e, 0)) != TJ_GUARD_VALUE) continue;
        tj_error err;
        if (tj_graph_add_output(&t->g, (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(e, 1)), &err) < 0) {
            tj_error_raise(st, &err);
            goto done;
        }
    }
    for (Py_ssize_t i = 0; t->checks && i < PyList_GET_SIZE(t->checks); i++) {
        tj_error err;   /* after the template's outputs: the checks' 0-d bools */
        int32_t id = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(PyList_GET_ITEM(t->checks, i), 0));
        if (tj_graph_add_output(&t->g, id, &err) < 0) { tj_error_raise(st, &err); goto done; }
    }
    t->g.n_hidden = t->g.n_out - n_template - t->n_writes;
    t->g.n_guard_out = t->g.n_hidden - (t->checks ? (int32_t)PyList_GET_SIZE(t->checks) : 0);
    if (tj_loops_check(t) < 0) goto done;
    t->live = 0;
    *t_trace = now_s();
    tj_compile_progress(t, "optimizing");
    if (tj_pipeline(t, sched, log) < 0) goto done;   /* may add constant slots to t */
    rc = 0;
done:
    t->flat = NULL;
    tj_loops_end_trace(t);
    Py_XDECREF(targs);
    Py_XDECREF(tkwargs);
    Py_XDECREF(res);
    return rc;
}

/* trace_once into *tp; where that trace stood tracers in for the arrays fn reads from
 * outside (_C._capture) and fn raised (t->outside 3, _effects.call returned the
 * exception), once more into a new trace (replacing *tp)
 * with them as NumPy's arrays (t->outside 2): code that needs a real ndarray
 * (isinstance, an operation tracejit lacks) runs as it did, the arrays' contents guarded
 * (_effects.guards). 0; -1 with the exception. */
static int trace_passes(PyObject *fn, const tj_argconf *conf, const tj_flat *f,
                        PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                        tj_trace **tp, tj_template *tmpl, tj_schedule *sched, PyObject *log,
                        double *t_trace) {
    tj_trace *t = *tp;
    if (trace_once(fn, conf, f, args, nargs, kwnames, t, tmpl, sched, log, t_trace) == 0)
        return 0;
    if (t->outside != 3) return -1;
    tj_trace *r = (tj_trace *)tj_trace_new(t->st, fn);
    if (!r) return -1;
    PyObject *type, *first, *tb;   /* a TraceError there is what tracejit cannot do */
    PyErr_Fetch(&type, &first, &tb);
    PyErr_NormalizeException(&type, &first, &tb);
    r->started = t->started;
    r->progress_after = t->progress_after;
    r->outside = 2;
    t->live = 0;
    Py_DECREF(t);
    *tp = r;
    tj_schedule_free(sched);
    tj_template_free(tmpl);
    int rc = log ? PyList_SetSlice(log, 0, PyList_GET_SIZE(log), NULL) : 0;
    if (rc == 0) rc = trace_once(fn, conf, f, args, nargs, kwnames, r, tmpl, sched, log, t_trace);
    if (rc < 0 && first && PyErr_GivenExceptionMatches(first, r->st->TraceError) &&
        PyErr_ExceptionMatches(r->st->TraceError)) {
        PyErr_Restore(type, first, tb);
        return -1;
    }
    Py_XDECREF(type);
    Py_XDECREF(first);
    Py_XDECREF(tb);
    return rc;
}

PyObject *tj_compile_passes(tj_state *st, PyObject *fn, const tj_argconf *conf, const tj_flat *f,
                            PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    tj_schedule sched = {0};
    tj_template tmpl = {0};
    double t_trace;
    PyObject *r = NULL, *log = PyList_New(0);
    tj_trace *t = log ? (tj_trace *)tj_trace_new(st, fn) : NULL;
    if (t && trace_passes(fn, conf, f, args, nargs, kwnames, &t, &tmpl, &sched, log, &t_trace) == 0)
        r = Py_NewRef(log);
    if (t) t->live = 0;
    tj_schedule_free(&sched);
    tj_template_free(&tmpl);
    Py_XDECREF(t);
    Py_XDECREF(log);
    return r;
}

/* The upgrade of plan p: its source, asked for as its backend says when the plan is
 * made (a backend that declines leaves it to the runtime's policy, tj_plan_tier_up).
 * 0; -1 + exception. */
static int start_upgrade(tj_plan *p, const tj_backend *up, PyObject *usrc) {
    p->upgrade.backend = up;
    p->upgrade.source = Py_NewRef(usrc);
    const char *c = PyUnicode_AsUTF8(usrc);
    if (!c) return -1;
    int how = up->plan_how ? up->plan_how() : TJ_COMPILE_IF_CACHED;
    tj_state *st = p->st;
    tj_kernel next = {0};
    Py_BEGIN_ALLOW_THREADS
    up->compile(st, c, how, &next);
    Py_END_ALLOW_THREADS
    p->upgrade.next = next;
    tj_plan_tier_up(p);
    return 0;
}

/* "-- guards: N" and a line per guard, into the pass log (explain()), when there are
 * any. 0/-1. */
static int log_guards(const tj_plan *p, PyObject *log) {
    if (!p->n_guards) return 0;
    PyObject *lines = tj_guards_describe(p);
    if (!lines) return -1;
    PyObject *head = PyUnicode_FromFormat("-- guards: %d", p->n_guards);
    int rc = head ? PyList_Append(log, head) : -1;
    Py_XDECREF(head);
    for (Py_ssize_t i = 0; rc == 0 && lines && i < PyTuple_GET_SIZE(lines); i++) {
        PyObject *l = PyUnicode_FromFormat("  %U", PyTuple_GET_ITEM(lines, i));
        rc = l ? PyList_Append(log, l) : -1;
        Py_XDECREF(l);
    }
    Py_XDECREF(lines);
    return rc;
}

static int start_upgrade(tj_plan *p, const tj_backend *up, PyObject *usrc);

tj_plan *tj_compile_subplan(tj_trace *t, tj_trace *c, PyObject *res, int tiered) {
    tj_schedule sched = {0};
    tj_template tmpl = {0};
    tj_plan *plan = NULL;
    PyObject *src = NULL, *fsrc = NULL;
    tj_kernel kernel = {0};
    double emitted;
    const tj_backend_row *row = tj_backends_for(TJ_DEVICE_CPU);
    const tj_backend *up = tiered ? row->upgrade : NULL;
    if (tj_template_from_result(&tmpl, c, res) < 0 || tj_pipeline(c, &sched, NULL) < 0)
        goto done;
    if (up && (!up->enabled || up->enabled()) && !(fsrc = row->emit_upgrade(t->st, &c->g, &sched)))
        goto done;
    tj_compile_request rq = {t->st, &c->g, &sched, &tmpl, 0, 0, 0};
    if (row->first(&rq, &src, &emitted, &kernel) < 0) goto done;
    if (!(plan = make_plan(t->flat, c, &sched, &tmpl))) { tj_kernel_free(&kernel); goto done; }
    plan->kernel = kernel;
    plan->kernel.n_groups = plan->sched.n_groups;
    plan->out_lib = TJ_LIB_NUMPY;   /* ndarrays, whatever the call's library */
    Py_CLEAR(plan->out_conv);
    if (fsrc && fsrc != Py_None && start_upgrade(plan, up, fsrc) < 0) {
        tj_plan_decref(plan);
        plan = NULL;
    }
done:
    tj_schedule_free(&sched);
    tj_template_free(&tmpl);
    Py_XDECREF(src);
    Py_XDECREF(fsrc);
    return plan;
}

PyObject *tj_compile_cuda_source(tj_state *st, PyObject *fn, const tj_argconf *conf,
                                 const tj_flat *f, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames) {
    tj_schedule sched = {0};
    tj_template tmpl = {0};
    double t_trace;
    PyObject *r = NULL;
    tj_trace *t = (tj_trace *)tj_trace_new(st, fn);
    if (t && trace_passes(fn, conf, f, args, nargs, kwnames, &t, &tmpl, &sched, NULL, &t_trace) == 0)
        r = tj_emit_cuda(st, &t->g, &sched);
    PyObject *caps = r ? PyList_New(0) : NULL;   /* the captured arrays, by capture index */
    for (Py_ssize_t i = 0; caps && i < PyList_GET_SIZE(t->captures); i++)
        if (PyList_Append(caps, PyTuple_GET_ITEM(PyList_GET_ITEM(t->captures, i), 3)) < 0)
            Py_CLEAR(caps);
    if (r && (!caps || PyDict_SetItemString(r, "captures", caps) < 0)) Py_CLEAR(r);
    Py_XDECREF(caps);
    if (t) t->live = 0;
    tj_schedule_free(&sched);
    tj_template_free(&tmpl);
    Py_XDECREF(t);
    return r;
}

tj_plan *tj_compile_plan(tj_state *st, PyObject *fn, const tj_argconf *conf, const tj_flat *f,
                         PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                         int want_log, double *seconds) {
    double t0 = now_s(), t_trace;
    tj_plan *plan = NULL;
    tj_schedule sched = {0};
    tj_template tmpl = {0};
    PyObject *log = NULL, *src = NULL, *fsrc = NULL, *stext = NULL;
    int device, device_id;
    const tj_backend_row *row;
    tj_trace *t = (tj_trace *)tj_trace_new(st, fn);
    if (!t) return NULL;
    t->started = t0;
    t->progress_after = progress_after();
    int debug = tj_debug_level();   /* 1: a line per compile; 2: passes, C; 3: schedule, tier's C */
    if ((want_log || debug >= 2) && !(log = PyList_New(0))) goto done;
    if (trace_passes(fn, conf, f, args, nargs, kwnames, &t, &tmpl, &sched, log, &t_trace) < 0)
        goto done;
    /* the device: its arrays', the torch tensors the trace captured included */
    if (tj_flat_device(f, t->captures, &device, &device_id) < 0) goto done;
    if (!(row = tj_backends_for(device))) {
        PyErr_Format(st->CompileError, "no backend compiles for device %d (DLPack's code) in "
                     "this build of tracejit", device);
        goto done;
    }
    const tj_backend *up = row->upgrade;   /* its source first: the kernel's times follow */
    if (up && (!up->enabled || up->enabled()) && !(fsrc = row->emit_upgrade(st, &t->g, &sched)))
        goto done;
    if (debug >= 3 && !(stext = tj_schedule_text(&t->g, &sched))) goto done;
    char doing[64];
    snprintf(doing, sizeof doing, "emitting and compiling the kernel (%s)", row->name);
    tj_compile_progress(t, doing);
    tj_kernel kernel = {0};
    tj_compile_request rq = {st, &t->g, &sched, &tmpl, device_id, t->n_writes,
                             t->checks ? (int)PyList_GET_SIZE(t->checks) : 0};
    double t_passes = now_s();
    if (row->first(&rq, &src, &t_passes, &kernel) < 0) goto done;
    double t_compile = now_s();
    plan = make_plan(f, t, &sched, &tmpl);
    if (!plan) { tj_kernel_free(&kernel); goto done; }
    plan->device = device;
    plan->device_id = device_id;
    if (device == TJ_DEVICE_CUDA) plan->out_lib = TJ_LIB_TORCH;   /* its only arrays */
    plan->kernel = kernel;
    plan->kernel.n_groups = plan->sched.n_groups;
    plan->source = Py_NewRef(src);
    if (fsrc && fsrc != Py_None && start_upgrade(plan, row->upgrade, fsrc) < 0) {
        tj_plan_decref(plan);
        plan = NULL;
        goto done;
    }
    if (log) {
        PyObject *times = PyUnicode_FromFormat(
            "-- times: trace %d us, passes+emit %d us, libtcc %d us",
            (int)((t_trace - t0) * 1e6), (int)((t_passes - t_trace) * 1e6),
            (int)((t_compile - t_passes) * 1e6));
        if (!times || PyList_Append(log, times) < 0) { Py_XDECREF(times); tj_plan_decref(plan); plan = NULL; goto done; }
        Py_DECREF(times);
        if (log_guards(plan, log) < 0 || tj_loops_log(plan->loops, log) < 0) {
            tj_plan_decref(plan);
            plan = NULL;
            goto done;
        }
        plan->log = Py_NewRef(log);
    }
    if (!debug) progress_done(t, t0, t_trace, t_passes, t_compile);
    if (debug) {
        /* level 2: what explain() shows (a pass that changed nothing in one line) */
        PyObject *ex = debug >= 2 ? tj_explanation(log, src, NULL) : NULL;
        PyObject *body = ex ? PyObject_GetAttrString(ex, "text") : NULL;
        PyObject *text = PyUnicode_FromFormat(
            "[tracejit] compiled %R in %d us (trace %d us, passes+emit %d us, libtcc %d us)\n",
            fn, (int)((now_s() - t0) * 1e6), (int)((t_trace - t0) * 1e6),
            (int)((t_passes - t_trace) * 1e6), (int)((t_compile - t_passes) * 1e6));
        if (text && body)
            Py_SETREF(text, PyUnicode_FromFormat("%U%U", text, body));
        if (text && stext)
            Py_SETREF(text, PyUnicode_FromFormat("%U%U", text, stext));
        if (text && debug >= 3 && fsrc && fsrc != Py_None)
            Py_SETREF(text, PyUnicode_FromFormat("%U-- the optimizing tier's C\n%U", text, fsrc));
        tj_debug_write(text);
        Py_XDECREF(text); Py_XDECREF(body); Py_XDECREF(ex);
    }
    *seconds += now_s() - t0;
done:
    t->live = 0;
    tj_schedule_free(&sched);
    tj_template_free(&tmpl);
    Py_XDECREF(log);
    Py_XDECREF(src);
    Py_XDECREF(fsrc);
    Py_XDECREF(stext);
    Py_DECREF(t);
    return plan;
}
