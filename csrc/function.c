/* CompiledFunction: the object @tracejit.compile returns. Its vectorcall is the
 * replay path: flatten the arguments into a key, find the plan, run it, all in C.
 * A miss traces the Python function with Tracers, runs the pipeline, emits C,
 * compiles it with libtcc and caches the plan (most recently used first).
 * Contract: an exception raised while tracing propagates unchanged and caches
 * nothing; the user's Python runs only on a miss. */
#include "tracejit.h"
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL tj_ARRAY_API
#include <numpy/arrayobject.h>
#include <structmember.h>
#include <time.h>

#define TJ_MAX_VARIANTS 64

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fn;
    PyObject *static_argnums;      /* tuple of int */
    tj_argconf conf;               /* static_argnames owned here */
    tj_plan *plans;                /* most recently used first */
    int n_plans;
    Py_ssize_t hits, misses;
    double compile_time;
    PyObject *last_retrace;        /* str or None */
    PyObject *dict;
} tj_function;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void write_stderr(PyObject *text) {
    PyObject *err = PySys_GetObject("stderr");
    if (err && text) PyFile_WriteObject(text, err, Py_PRINT_RAW);
    PyErr_Clear();
}

/* Python-level descriptions of the arguments, for retrace reasons (slow path). */
static PyObject *describe(tj_function *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames) {
    PyObject *mod = PyImport_ImportModule("tracejit._describe");
    if (!mod) return NULL;
    PyObject *targs = PyTuple_New(nargs), *kw = PyDict_New(), *r = NULL;
    if (!targs || !kw) goto done;
    for (Py_ssize_t i = 0; i < nargs; i++) PyTuple_SET_ITEM(targs, i, Py_NewRef(args[i]));
    for (Py_ssize_t i = 0; kwnames && i < PyTuple_GET_SIZE(kwnames); i++)
        if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) goto done;
    r = PyObject_CallMethod(mod, "describe", "OOOO", targs, kw, self->static_argnums,
                            self->conf.static_argnames);
done:
    Py_XDECREF(targs);
    Py_XDECREF(kw);
    Py_DECREF(mod);
    return r;
}

static PyObject *retrace_reason(PyObject *old, PyObject *cur) {
    PyObject *mod = PyImport_ImportModule("tracejit._describe");
    if (!mod) return NULL;
    PyObject *r = PyObject_CallMethod(mod, "diff", "OO", old, cur);
    Py_DECREF(mod);
    return r;
}

/* Moves what the trace produced into a new plan. */
static tj_plan *make_plan(const tj_flat *f, tj_trace *t, tj_schedule *sched, tj_template *tmpl) {
    tj_plan *p = PyMem_Calloc(1, sizeof *p);
    if (!p) return (tj_plan *)PyErr_NoMemory();
    p->refs = 1;
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
        switch (d->dtype) {
        case TJ_BOOL: c[0] = d->value.i != 0; break;
        case TJ_I32: { int32_t v = (int32_t)d->value.i; memcpy(c, &v, 4); break; }
        case TJ_I64: memcpy(c, &d->value.i, 8); break;
        case TJ_F32: { float v = (float)d->value.f; memcpy(c, &v, 4); break; }
        default: memcpy(c, &d->value.f, 8); break;
        }
    }
    for (Py_ssize_t i = 0; i < nc; i++) {
        PyObject *o = PyTuple_GET_ITEM(PyList_GET_ITEM(t->captures, i), 3);
        if (!PyArray_Check(o)) {   /* a torch tensor: read at trace time already */
            tj_dlview v;
            const char *why;
            if (tj_dl_torch_view(o, &v, &why) != 0) {
                if (!PyErr_Occurred()) tj_internal_error("a captured torch tensor changed");
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
    p->pyvalues = t->guards ? Py_NewRef(t->guards) : NULL;
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
    p->n_results = t->g.n_out;
    for (int gi = 0; gi < p->sched.n_groups; gi++) {
        int64_t w = 1;
        for (int d = 0; d < p->sched.groups[gi].ndim; d++) w *= p->sched.groups[gi].shape[d];
        p->work += w * (p->sched.groups[gi].n_nodes + 1);
    }
    return p;
}

/* Traces, optimizes and compiles a plan for this call. NULL + exception. */
static tj_plan *compile_plan(tj_function *self, const tj_flat *f, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames, int want_log) {
    double t0 = now_s();
    tj_plan *plan = NULL;
    tj_schedule sched = {0};
    tj_template tmpl = {0};
    PyObject *targs = NULL, *tkwargs = NULL, *res = NULL, *log = NULL, *src = NULL, *fsrc = NULL;
    tj_trace *t = (tj_trace *)tj_trace_new(self->fn);
    if (!t) return NULL;
    if (tj_trace_args(t, &self->conf, args, nargs, kwnames, &targs, &tkwargs) < 0) goto done;
    tj_state *st = tj_get_state();
    if (tj_effects_enter() < 0) goto done;
    tj_trace *outer = tj_trace_enter(t);
    if (st->trace_call)   /* _effects.call: random draws refused, torch's mode entered */
        res = PyObject_CallFunctionObjArgs(st->trace_call, self->fn, targs,
                                           tkwargs ? tkwargs : Py_None,
                                           t->torch ? Py_True : Py_False, NULL);
    else
        res = PyObject_Call(self->fn, targs, tkwargs);
    tj_effects_leave();
    tj_trace_leave(outer);
    if (!res) goto done;                       /* the user's exception, unchanged */
    if (st->trace_call) {                      /* (result, guards) */
        if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) {
            tj_internal_error("the trace call returned no (result, guards)");
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
    if (tj_template_from_result(&tmpl, t, res) < 0) goto done;
    t->live = 0;
    double t_trace = now_s();
    int debug = tj_debug_level();   /* 1: a line per compile; 2: passes, C; 3: tier's C */
    if ((want_log || debug >= 2) && !(log = PyList_New(0))) goto done;
    if (tj_pipeline(t, &sched, log) < 0) goto done;   /* may add constant slots to t */
    if (!(src = tj_emit_c(&t->g, &sched))) goto done;
    if (tj_tier_mode() != TJ_TIER_OFF && !(fsrc = tj_emit_fused(&t->g, &sched))) goto done;
    double t_passes = now_s();
    const char *csrc = PyUnicode_AsUTF8(src);
    if (!csrc) goto done;
    void *entry = NULL;
    tj_module *mod = tj_tcc_compile(csrc, "tj_groups", &entry);
    if (!mod) goto done;
    double t_compile = now_s();
    plan = make_plan(f, t, &sched, &tmpl);
    if (!plan) { tj_tcc_free(mod); goto done; }
    plan->mod = mod;
    plan->groups = (const tj_gdesc *)entry;
    plan->n_groups = plan->sched.n_groups;
    plan->source = Py_NewRef(src);
    if (fsrc && fsrc != Py_None) {
        plan->fused_source = Py_NewRef(fsrc);
        /* an object cached on disk loads at once; eager mode compiles it now */
        const char *c = PyUnicode_AsUTF8(fsrc);
        if (!c) { tj_plan_decref(plan); plan = NULL; goto done; }
        int eager = tj_tier_mode() == TJ_TIER_EAGER;
        tj_tier_job *j;
        Py_BEGIN_ALLOW_THREADS
        j = tj_tier_start(c, eager ? TJ_TIER_NOW : TJ_TIER_IF_CACHED);
        Py_END_ALLOW_THREADS
        plan->tier_job = j;
        tj_plan_tier_up(plan);
    }
    if (log) {
        PyObject *times = PyUnicode_FromFormat(
            "-- times: trace %d us, passes+emit %d us, libtcc %d us",
            (int)((t_trace - t0) * 1e6), (int)((t_passes - t_trace) * 1e6),
            (int)((t_compile - t_passes) * 1e6));
        if (!times || PyList_Append(log, times) < 0) { Py_XDECREF(times); tj_plan_decref(plan); plan = NULL; goto done; }
        Py_DECREF(times);
        plan->log = Py_NewRef(log);
    }
    if (debug) {
        PyObject *nl = PyUnicode_FromString("\n");
        PyObject *body = nl && debug >= 2 ? PyUnicode_Join(nl, log) : NULL;
        PyObject *text = PyUnicode_FromFormat(
            "[tracejit] compiled %R in %d us (trace %d us, passes+emit %d us, libtcc %d us)\n",
            self->fn, (int)((now_s() - t0) * 1e6), (int)((t_trace - t0) * 1e6),
            (int)((t_passes - t_trace) * 1e6), (int)((t_compile - t_passes) * 1e6));
        if (text && body)
            Py_SETREF(text, PyUnicode_FromFormat("%U%U\n-- generated C\n%U", text, body, src));
        if (text && debug >= 3 && fsrc && fsrc != Py_None)
            Py_SETREF(text, PyUnicode_FromFormat("%U-- the optimizing tier's C\n%U", text, fsrc));
        write_stderr(text);
        Py_XDECREF(text); Py_XDECREF(body); Py_XDECREF(nl);
    }
    self->compile_time += now_s() - t0;
done:
    t->live = 0;
    tj_schedule_free(&sched);
    tj_template_free(&tmpl);
    Py_XDECREF(targs);
    Py_XDECREF(tkwargs);
    Py_XDECREF(res);
    Py_XDECREF(log);
    Py_XDECREF(src);
    Py_XDECREF(fsrc);
    Py_DECREF(t);
    return plan;
}

/* Clears a pending Exception (a nicety failed) and returns 0; -1 keeps a pending
 * BaseException that is not an Exception (KeyboardInterrupt, SystemExit) to propagate. */
static int clear_unless_interrupt(void) {
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) return -1;
    PyErr_Clear();
    return 0;
}

/* 1 when p is for these arguments, 0 when not, -1 + KeyboardInterrupt or SystemExit
 * raised by a static's __eq__ (other exceptions from it mean "not equal"). */
static int key_matches(const tj_plan *p, const tj_flat *f) {
    if (p->hash != f->hash || p->n_key != f->n_words ||
        PyTuple_GET_SIZE(p->statics) != f->n_statics ||
        memcmp(p->key, f->words, (size_t)f->n_words * sizeof(int64_t)) != 0)
        return 0;
    for (int i = 0; i < f->n_statics; i++) {
        PyObject *a = PyTuple_GET_ITEM(p->statics, i), *b = f->statics[i];
        if (a == b) continue;
        if (Py_TYPE(a) != Py_TYPE(b)) return 0;
        int eq = PyObject_RichCompareBool(a, b, Py_EQ);
        if (eq <= 0) return clear_unless_interrupt();
    }
    return 1;
}

static void unlink_plan(tj_function *self, tj_plan *p) {
    for (tj_plan **pp = &self->plans; *pp; pp = &(*pp)->next)
        if (*pp == p) { *pp = p->next; self->n_plans--; p->in_cache = 0; return; }
}

/* A torch tensor argument requires grad under grad mode (flatten refused it, the
 * TypeError is set): the call goes through torch.autograd (_torch_autograd.call),
 * or the TypeError stands when that is not registered. */
static PyObject *autograd_call(tj_function *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    tj_state *st = tj_get_state();
    if (!st->autograd_call) return NULL;
    PyErr_Clear();
    PyObject *targs = PyTuple_New(nargs), *kw = PyDict_New(), *r = NULL;
    if (targs && kw) {
        for (Py_ssize_t i = 0; i < nargs; i++) PyTuple_SET_ITEM(targs, i, Py_NewRef(args[i]));
        Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i = 0;
        for (; i < nk; i++)
            if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) break;
        if (i == nk && !(r = tj_ag_fast_call(self->dict, targs, kw)) && !PyErr_Occurred())
            r = PyObject_CallFunctionObjArgs(st->autograd_call, (PyObject *)self, targs, kw, NULL);
    }
    Py_XDECREF(targs);
    Py_XDECREF(kw);
    return r;
}

static PyObject *fn_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    tj_function *self = (tj_function *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *result = NULL, *reason = NULL, *stale_reason = NULL;
    tj_flat f;
    tj_flat_init(&f);
    f.grad_quiet = 1;   /* formatting the refusal measured ~5 us of a training step */
    if (tj_flatten_args(&f, &self->conf, args, nargs, kwnames) < 0) {
        if (f.needs_grad) result = autograd_call(self, args, nargs, kwnames);
        goto done;
    }
    if (f.has_tracer) {   /* called inside another function's trace: trace through */
        result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
        goto done;
    }
rescan:
    for (tj_plan *p = self->plans; p; p = p->next) {
        p->refs++;     /* a static's __eq__ may run Python, and another thread drop p */
        int match = key_matches(p, &f);
        if (match < 0 || !p->in_cache) {     /* dropped meanwhile: p->next is stale */
            tj_plan_decref(p);
            if (match < 0) goto done;
            goto rescan;
        }
        if (!match) { p->refs--; continue; }
        int rc = tj_plan_run(p, &f, &result, &reason);
        int evicted = !p->in_cache;       /* dropped by another thread during the run */
        tj_plan_decref(p);
        if (rc < 0) goto done;
        if (evicted) {
            if (rc == 0) { self->hits++; goto done; }
            Py_CLEAR(reason);
            break;
        }
        if (rc == 0) {
            self->hits++;
            if (p != self->plans) {          /* most recently used first */
                unlink_plan(self, p);
                p->next = self->plans;
                self->plans = p;
                self->n_plans++;
                p->in_cache = 1;
            }
            goto done;
        }
        /* a guard failed: another variant of the key may hold (a global that went
         * back to an earlier value); the first failure's reason names the retrace */
        if (stale_reason) Py_CLEAR(reason);
        else stale_reason = reason, reason = NULL;
    }
    reason = stale_reason;
    stale_reason = NULL;
    self->misses++;
    PyObject *descr = describe(self, args, nargs, kwnames);
    if (!descr) {                       /* a reason is a nicety: never fail a call on it */
        if (clear_unless_interrupt() < 0) goto done;   /* ... but let ^C through */
        descr = Py_NewRef(Py_None);
    }
    if (!reason && self->plans && PyList_Check(self->plans->descr) && PyList_Check(descr))
        reason = retrace_reason(self->plans->descr, descr);
    if (reason) Py_XSETREF(self->last_retrace, Py_NewRef(reason));
    if (clear_unless_interrupt() < 0) { Py_DECREF(descr); goto done; }
    if (tj_debug_level()) {
        PyObject *text = reason ? PyUnicode_FromFormat("[tracejit] cache miss %zd of %R: %S\n",
                                                       self->misses, self->fn, reason)
                                : PyUnicode_FromFormat("[tracejit] cache miss %zd of %R: the "
                                                       "first call with these argument types\n",
                                                       self->misses, self->fn);
        write_stderr(text);
        Py_XDECREF(text);
    }
    tj_plan *p = compile_plan(self, &f, args, nargs, kwnames, 0);
    if (!p) { Py_DECREF(descr); goto done; }
    p->descr = descr;
    p->next = self->plans;
    self->plans = p;
    p->in_cache = 1;
    if (++self->n_plans > TJ_MAX_VARIANTS) {
        tj_plan *q = self->plans;
        while (q->next && q->next->next) q = q->next;
        tj_plan *last = q->next;
        q->next = NULL;
        self->n_plans--;
        last->in_cache = 0;
        tj_plan_decref(last);
    }
    p->refs++;
    Py_CLEAR(reason);                   /* (the run sets it: it owns a new one) */
    if (tj_plan_run(p, &f, &result, &reason) > 0) {
        Py_CLEAR(reason);
        tj_internal_error("a plan went stale during its first run");
    }
    tj_plan_decref(p);
done:
    Py_XDECREF(reason);
    Py_XDECREF(stale_reason);
    tj_flat_free(&f);
    return result;
}

/* ---- the Python-facing type ------------------------------------------------- */

static PyObject *fn_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"fn", "static_argnums", "static_argnames", NULL};
    PyObject *fn, *nums = NULL, *names_t = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:CompiledFunction", names, &fn, &nums, &names_t))
        return NULL;
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "tracejit.compile expects a callable, got %R", (PyObject *)Py_TYPE(fn));
        return NULL;
    }
    tj_function *self = (tj_function *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->vectorcall = fn_vectorcall;
    self->fn = Py_NewRef(fn);
    self->last_retrace = Py_NewRef(Py_None);
    self->static_argnums = nums ? PySequence_Tuple(nums) : PyTuple_New(0);
    self->conf.static_argnames = names_t ? PySequence_Tuple(names_t) : PyTuple_New(0);
    if (!self->static_argnums || !self->conf.static_argnames) { Py_DECREF(self); return NULL; }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->static_argnums); i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(self->static_argnums, i));
        if (v == -1 && PyErr_Occurred()) { Py_DECREF(self); return NULL; }
        if (v < 0 || v >= 64) {
            PyErr_Format(PyExc_ValueError, "static_argnums: %ld is out of range [0, 64)", v);
            Py_DECREF(self);
            return NULL;
        }
        self->conf.static_mask |= 1ull << v;
    }
    return (PyObject *)self;
}

static void clear_plans(tj_function *self) {
    while (self->plans) {
        tj_plan *p = self->plans;
        self->plans = p->next;
        p->in_cache = 0;
        tj_plan_decref(p);
    }
    self->n_plans = 0;
}

static int fn_traverse(tj_function *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->fn);
    Py_VISIT(self->dict);
    for (tj_plan *p = self->plans; p; p = p->next) {
        Py_VISIT(p->captures);
        Py_VISIT(p->statics);
        Py_VISIT(p->tmpl.statics);
        Py_VISIT(p->descr);
        Py_VISIT(p->out_conv);
    }
    return 0;
}

static int fn_clear(tj_function *self) {
    clear_plans(self);
    Py_CLEAR(self->fn);
    Py_CLEAR(self->dict);
    return 0;
}

static void fn_dealloc(tj_function *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    fn_clear(self);
    Py_CLEAR(self->static_argnums);
    Py_CLEAR(self->conf.static_argnames);
    Py_CLEAR(self->last_retrace);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *fn_cache_info(tj_function *self, PyObject *unused) {
    PyObject *r = PyStructSequence_New(tj_get_state()->CacheInfoType);
    if (!r) return NULL;
    PyStructSequence_SetItem(r, 0, PyLong_FromSsize_t(self->hits));
    PyStructSequence_SetItem(r, 1, PyLong_FromSsize_t(self->misses));
    PyStructSequence_SetItem(r, 2, PyLong_FromLong(self->n_plans));
    PyStructSequence_SetItem(r, 3, PyFloat_FromDouble(self->compile_time));
    PyStructSequence_SetItem(r, 4, Py_NewRef(self->last_retrace));
    for (int i = 0; i < 5; i++)
        if (!PyStructSequence_GetItem(r, i)) { Py_DECREF(r); return NULL; }
    return r;
}

static PyObject *fn_cache_clear(tj_function *self, PyObject *unused) {
    clear_plans(self);
    self->hits = self->misses = 0;
    self->compile_time = 0;
    Py_XSETREF(self->last_retrace, Py_NewRef(Py_None));
    Py_RETURN_NONE;
}

/* explain(*args, **kwargs): traces and compiles for these arguments without caching;
 * returns the pass log and the generated C as one str. */
static PyObject *fn_explain(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames) {
    tj_function *self = (tj_function *)op;
    tj_flat f;
    tj_flat_init(&f);
    PyObject *r = NULL;
    if (tj_flatten_args(&f, &self->conf, args, nargs, kwnames) == 0) {
        tj_plan *p = compile_plan(self, &f, args, nargs, kwnames, 1);
        if (p) {
            PyObject *nl = PyUnicode_FromString("\n");
            PyObject *body = nl ? PyUnicode_Join(nl, p->log) : NULL;
            r = body ? PyUnicode_FromFormat("%U\n-- generated C\n%U", body, p->source) : NULL;
            if (r && p->fused_source)
                Py_SETREF(r, PyUnicode_FromFormat("%U\n-- optimizing tier C (gcc)\n%U", r,
                                                  p->fused_source));
            Py_XDECREF(body);
            Py_XDECREF(nl);
            tj_plan_decref(p);
        }
    }
    tj_flat_free(&f);
    return r;
}

/* tiers(): per variant, most recent first: 'opt' (running the optimizing tier's
 * code), 'compiling' (its compile is under way), 'tcc'. Installs a finished compile. */
static PyObject *fn_tiers(tj_function *self, PyObject *unused) {
    PyObject *r = PyList_New(0);
    for (tj_plan *p = self->plans; r && p; p = p->next) {
        if (p->tier_job) tj_plan_tier_up(p);
        PyObject *s = PyUnicode_FromString(p->tier2_groups ? "opt" : p->tier_job ? "compiling"
                                                                                 : "tcc");
        if (!s || PyList_Append(r, s) < 0) Py_CLEAR(r);
        Py_XDECREF(s);
    }
    return r;
}

/* Pickling is by reference (tracejit/_process.py): to the module attribute the
 * function is bound to, or to the original function, recompiled on load. */
static PyObject *fn_reduce(tj_function *self, PyObject *unused) {
    PyObject *mod = PyImport_ImportModule("tracejit._process");
    if (!mod) return NULL;
    PyObject *r = PyObject_CallMethod(mod, "reduce", "OOO", (PyObject *)self, self->fn,
                                      self->conf.static_argnames);
    Py_DECREF(mod);
    return r;
}

static PyObject *fn_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    if (!obj || obj == Py_None) return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyObject *get_wrapped(tj_function *self, void *c) { return Py_NewRef(self->fn); }
static PyObject *get_last_retrace(tj_function *self, void *c) { return Py_NewRef(self->last_retrace); }
static PyObject *get_last_source(tj_function *self, void *c) {
    return Py_NewRef(self->plans && self->plans->source ? self->plans->source : Py_None);
}

static PyGetSetDef fn_getset[] = {
    {"__wrapped__", (getter)get_wrapped, NULL, "the original Python function", NULL},
    {"last_retrace", (getter)get_last_retrace, NULL, "why the latest retrace happened", NULL},
    {"last_source", (getter)get_last_source, NULL, "generated C of the most recent variant", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

static PyMethodDef fn_methods[] = {
    {"cache_info", (PyCFunction)fn_cache_info, METH_NOARGS,
     "CacheInfo(hits, misses, variants, compile_time, last_retrace)"},
    {"cache_clear", (PyCFunction)fn_cache_clear, METH_NOARGS, "drop every compiled variant"},
    {"tiers", (PyCFunction)fn_tiers, METH_NOARGS,
     "per variant, most recent first: 'opt', 'compiling' or 'tcc'"},
    {"__reduce__", (PyCFunction)fn_reduce, METH_NOARGS, "pickle by reference"},
    {"explain", (PyCFunction)(void (*)(void))fn_explain, METH_FASTCALL | METH_KEYWORDS,
     "explain(*args, **kwargs) -> str: passes, fusion groups and generated C for these args"},
    {NULL},
};

static PyMemberDef fn_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(tj_function, dict), READONLY},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(tj_function, vectorcall), READONLY},
    {"_static_argnums", T_OBJECT_EX, offsetof(tj_function, static_argnums), READONLY},
    {"_static_argnames", T_OBJECT_EX, offsetof(tj_function, conf) +
                                      offsetof(tj_argconf, static_argnames), READONLY},
    {NULL},
};

static PyObject *fn_repr(tj_function *self) {
    return PyUnicode_FromFormat("<tracejit.CompiledFunction of %R>", self->fn);
}

static PyType_Slot fn_slots[] = {
    {Py_tp_new, fn_new},
    {Py_tp_dealloc, fn_dealloc},
    {Py_tp_traverse, fn_traverse},
    {Py_tp_clear, fn_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, fn_descr_get},
    {Py_tp_repr, fn_repr},
    {Py_tp_getset, fn_getset},
    {Py_tp_methods, fn_methods},
    {Py_tp_members, fn_members},
    {Py_tp_doc, "A function compiled by tracejit: traced on the first call per signature, "
                "replayed from compiled code afterwards."},
    {0, NULL},
};

static PyType_Spec fn_spec = {
    "tracejit.CompiledFunction", sizeof(tj_function), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    fn_slots,
};

int tj_function_type_init(PyObject *module, tj_state *st) {
    st->FunctionType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &fn_spec, NULL);
    if (!st->FunctionType) return -1;
    return PyModule_AddType(module, st->FunctionType);
}
