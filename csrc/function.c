/* CompiledFunction: the object @tracejit.compile returns. Its vectorcall is the
 * replay path: flatten the arguments into a key, find the plan, run it, all in C.
 * A miss has csrc/compile.c trace the Python function with Tracers, run the pipeline,
 * emit C and compile it, and caches the plan (most recently used first).
 * Contract: an exception raised while tracing propagates unchanged and caches
 * nothing; the user's Python runs only on a miss. */
#include "tracejit.h"
#include <structmember.h>

#define TJ_MAX_VARIANTS 64

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    tj_state *st;                  /* borrowed: its type holds the module */
    PyObject *fn;
    PyObject *static_argnums;      /* tuple of int */
    tj_argconf conf;               /* static_argnames owned here */
    tj_plan *plans;                /* most recently used first */
    int n_plans;
    Py_ssize_t hits, misses;
    double compile_time;
    PyObject *last_retrace;        /* str or None */
    PyObject *dict;
    int max_variants;              /* per key: past it, no more retracing */
    int limit_raises;              /* on_guard_limit="error" (else "eager") */
    int limit_warned;              /* the eager fallback's warning was given */
    Py_ssize_t eager_calls;        /* calls run eagerly past the limit */
} tj_function;

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

/* A call handed to a Python route, route(self, args_tuple, kwargs_dict): the autograd
 * route (with `fast`, tj_ag_fast_call first) or complex arguments'. */
static PyObject *python_route(tj_function *self, PyObject *route, int fast,
                              PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *targs = PyTuple_New(nargs), *kw = PyDict_New(), *r = NULL;
    if (targs && kw) {
        for (Py_ssize_t i = 0; i < nargs; i++) PyTuple_SET_ITEM(targs, i, Py_NewRef(args[i]));
        Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i = 0;
        for (; i < nk; i++)
            if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) break;
        if (i == nk && fast) r = tj_ag_fast_call(self->st, self->dict, targs, kw);
        if (i == nk && !r && !PyErr_Occurred())
            r = PyObject_CallFunctionObjArgs(route, (PyObject *)self, targs, kw, NULL);
    }
    Py_XDECREF(targs);
    Py_XDECREF(kw);
    return r;
}

/* A torch tensor argument requires grad under grad mode (flatten refused it, the
 * TypeError is set): the call goes through torch.autograd (_torch_autograd.call),
 * or the TypeError stands when that is not registered. */
static PyObject *autograd_call(tj_function *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    tj_state *st = self->st;
    if (!st->autograd_call) return NULL;
    PyErr_Clear();
    return python_route(self, st->autograd_call, 1, args, nargs, kwnames);
}

/* A complex array among the arguments (flatten refused it, the TypeError is set):
 * _complex.call compiles the function over their real and imaginary parts. */
static PyObject *complex_call(tj_function *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    PyErr_Clear();
    return python_route(self, self->st->complex_call, 0, args, nargs, kwnames);
}

/* A call whose values none of its key's max_variants variants assume: eager (the
 * function itself, with a warning the first time) or TraceError, by on_guard_limit.
 * `reason`: the most recent variant's failed guard (borrowed, may be NULL). */
static PyObject *past_limit(tj_function *self, PyObject *reason, int n, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames) {
    PyObject *why = reason ? Py_NewRef(reason) : PyUnicode_FromString("a guard failed");
    if (!why) return NULL;
    if (self->limit_raises) {
        tj_state *st = tj_state_of_type(Py_TYPE(self));
        if (st)
            PyErr_Format(st->TraceError, "%R has %d variants for these argument types "
                         "(max_variants=%d) and this call's values match none of them: %U "
                         "(on_guard_limit='error'; 'eager' runs such calls eagerly)",
                         self->fn, n, self->max_variants, why);
        Py_DECREF(why);
        return NULL;
    }
    if (!self->limit_warned) {
        self->limit_warned = 1;
        if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "tracejit: %R has %d variants for these "
                             "argument types (max_variants=%d); calls whose values match none "
                             "of them now run eagerly, uncompiled. What keeps changing: %U",
                             self->fn, n, self->max_variants, why) < 0) {
            Py_DECREF(why);
            return NULL;
        }
    }
    Py_DECREF(why);
    self->eager_calls++;
    return PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
}

/* A training step's route (_train_step.py) under `key` of the function's dict: the
 * borrowed callable, NULL if none (or an error set). */
static PyObject *train_hook(tj_function *self, PyObject *key) {
    return self->dict ? PyDict_GetItemWithError(self->dict, key) : NULL;
}

static PyObject *fn_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    tj_function *self = (tj_function *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *step = train_hook(self, self->st->ag_str_step);
    if (step) return python_route(self, step, 0, args, nargs, kwnames);
    if (PyErr_Occurred()) return NULL;
    PyObject *result = NULL, *reason = NULL, *stale_reason = NULL;
    tj_flat f;
    tj_flat_init(&f, self->st);
    f.grad_quiet = 1;   /* formatting the refusal measured ~5 us of a training step */
    if (tj_flatten_args(&f, &self->conf, args, nargs, kwnames) < 0) {
        if (f.needs_grad) result = autograd_call(self, args, nargs, kwnames);
        else if (f.complex_arg) result = complex_call(self, args, nargs, kwnames);
        goto done;
    }
    if (f.has_tracer) {   /* called inside another function's trace: trace through */
        result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
        goto done;
    }
    int n_same;          /* variants of this key whose guards failed */
rescan:
    n_same = 0;
    for (tj_plan *p = self->plans; p; p = p->next) {
        p->refs++;     /* a static's __eq__ may run Python, and another thread drop p */
        int match = key_matches(p, &f);
        if (match < 0 || !p->in_cache) {     /* dropped meanwhile: p->next is stale */
            tj_plan_decref(p);
            if (match < 0) goto done;
            goto rescan;
        }
        if (!match) { p->refs--; continue; }
        n_same++;
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
    if (n_same >= self->max_variants) {   /* no more variants of this key */
        result = past_limit(self, reason, n_same, args, nargsf, kwnames);
        goto done;
    }
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
        tj_debug_write(text);
        Py_XDECREF(text);
    }
    tj_plan *p = tj_compile_plan(self->st, self->fn, &self->conf, &f, args, nargs, kwnames, 0,
                                 &self->compile_time);
    if (!p) {
        Py_DECREF(descr);
        /* it reads a tensor that requires grad: a training step's route may take it */
        if (self->st->grad_capture_error && self->dict &&
                PyErr_ExceptionMatches(self->st->grad_capture_error)) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyObject *train = PyDict_GetItem(self->dict, self->st->ag_str_train);
            if (train) {
                Py_XDECREF(type), Py_XDECREF(value), Py_XDECREF(tb);
                result = python_route(self, train, 0, args, nargs, kwnames);
            } else {
                PyErr_Restore(type, value, tb);
            }
        }
        goto done;
    }
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
        if (p->values && p->in_cache) {
            /* a value computed while tracing differs from the compiled plan's for the
             * same inputs (a float the optimizing tier rounds otherwise, say): the plan
             * cannot serve these values; eager answers this call */
            unlink_plan(self, p);
            tj_plan_decref(p);
            Py_CLEAR(reason);
            self->eager_calls++;
            result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
        } else {
            Py_CLEAR(reason);
            tj_internal_error(self->st, "a plan went stale during its first run");
        }
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
    static char *names[] = {"fn", "static_argnums", "static_argnames", "max_variants",
                            "on_guard_limit", NULL};
    PyObject *fn, *nums = NULL, *names_t = NULL;
    int max_variants = 8;
    const char *on_limit = "eager";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOis:CompiledFunction", names, &fn, &nums,
                                     &names_t, &max_variants, &on_limit))
        return NULL;
    if (max_variants < 1) {
        PyErr_Format(PyExc_ValueError, "max_variants must be at least 1, got %d", max_variants);
        return NULL;
    }
    if (strcmp(on_limit, "eager") && strcmp(on_limit, "error")) {
        PyErr_Format(PyExc_ValueError, "on_guard_limit must be 'eager' or 'error', got %R",
                     PyTuple_GET_SIZE(args) > 4 ? PyTuple_GET_ITEM(args, 4)
                                                : PyDict_GetItemString(kw, "on_guard_limit"));
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "tracejit.compile expects a callable, got %R", (PyObject *)Py_TYPE(fn));
        return NULL;
    }
    tj_state *st = tj_state_of_type(type);
    tj_function *self = st ? (tj_function *)type->tp_alloc(type, 0) : NULL;
    if (!self) return NULL;
    self->st = st;
    self->vectorcall = fn_vectorcall;
    self->fn = Py_NewRef(fn);
    self->max_variants = max_variants;
    self->limit_raises = !strcmp(on_limit, "error");
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
        Py_VISIT(p->tmpl.tree.aux);
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
    PyObject *r = PyStructSequence_New(self->st->CacheInfoType);
    if (!r) return NULL;
    PyStructSequence_SetItem(r, 0, PyLong_FromSsize_t(self->hits));
    PyStructSequence_SetItem(r, 1, PyLong_FromSsize_t(self->misses));
    PyStructSequence_SetItem(r, 2, PyLong_FromLong(self->n_plans));
    PyStructSequence_SetItem(r, 3, PyFloat_FromDouble(self->compile_time));
    PyStructSequence_SetItem(r, 4, Py_NewRef(self->last_retrace));
    PyObject *guards = PyList_New(0);   /* per variant, most recently used first */
    for (tj_plan *p = self->plans; guards && p; p = p->next) {
        PyObject *g = tj_guards_describe(p);
        if (!g || PyList_Append(guards, g) < 0) Py_CLEAR(guards);
        Py_XDECREF(g);
    }
    PyStructSequence_SetItem(r, 5, guards ? PyList_AsTuple(guards) : NULL);
    Py_XDECREF(guards);
    PyStructSequence_SetItem(r, 6, PyLong_FromSsize_t(self->eager_calls));
    for (int i = 0; i < 7; i++)
        if (!PyStructSequence_GetItem(r, i)) { Py_DECREF(r); return NULL; }
    return r;
}

static PyObject *fn_cache_clear(tj_function *self, PyObject *unused) {
    clear_plans(self);
    self->hits = self->misses = self->eager_calls = 0;
    self->compile_time = 0;
    Py_XSETREF(self->last_retrace, Py_NewRef(Py_None));
    Py_RETURN_NONE;
}

/* What a diagnostic entry point does with the flattened arguments of one call. */
typedef PyObject *(*with_args_fn)(tj_function *self, tj_flat *f, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames);

/* The diagnostic entry points' common frame: flatten the call's arguments as a call
 * would, run `fn` on them, free them. */
static PyObject *with_args(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames, with_args_fn fn) {
    tj_function *self = (tj_function *)op;
    tj_flat f;
    tj_flat_init(&f, self->st);
    PyObject *r = tj_flatten_args(&f, &self->conf, args, nargs, kwnames) == 0
                      ? fn(self, &f, args, nargs, kwnames)
                      : NULL;
    tj_flat_free(&f);
    return r;
}

/* A fresh plan for these arguments (traced, optimized, its first kernel compiled, as a
 * call's; `explain` keeps the pass log), described by `describe`. The cache is left as
 * it was. */
static PyObject *fresh_plan(tj_function *self, tj_flat *f, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames, int explain) {
    tj_plan *p = tj_compile_plan(self->st, self->fn, &self->conf, f, args, nargs, kwnames,
                                 explain, &self->compile_time);
    if (!p) return NULL;
    PyObject *r = explain ? tj_explanation(p->log, p->source, p->upgrade.source)
                          : tj_plan_export_info(p);
    tj_plan_decref(p);
    return r;
}

static PyObject *explained(tj_function *self, tj_flat *f, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames) {
    return fresh_plan(self, f, args, nargs, kwnames, 1);
}

static PyObject *export_info(tj_function *self, tj_flat *f, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
    return fresh_plan(self, f, args, nargs, kwnames, 0);
}

static PyObject *passes_only(tj_function *self, tj_flat *f, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *log = tj_compile_passes(self->st, self->fn, &self->conf, f, args, nargs, kwnames);
    PyObject *r = log ? tj_explanation(log, NULL, NULL) : NULL;
    Py_XDECREF(log);
    return r;
}

static PyObject *cuda_source(tj_function *self, tj_flat *f, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
    return tj_compile_cuda_source(self->st, self->fn, &self->conf, f, args, nargs, kwnames);
}

/* explain(*args, **kwargs): traces and compiles for these arguments without caching;
 * returns a tracejit._explain.Explanation of the pass log and the generated sources. */
static PyObject *fn_explain(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames) {
    return with_args(op, args, nargs, kwnames, explained);
}

/* _export_plan(*args, **kwargs): the plan for these arguments described as data
 * (csrc/export.c): what tracejit.export writes as C. */
static PyObject *fn_export_plan(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    return with_args(op, args, nargs, kwnames, export_info);
}

/* _explain_passes(*args, **kwargs): explain's pass log with no backend: traces and
 * runs the passes for these arguments; emits and compiles nothing (the golden pass
 * tests) but the values Python reads while tracing (csrc/trace/concrete.c). */
static PyObject *fn_explain_passes(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames) {
    return with_args(op, args, nargs, kwnames, passes_only);
}

/* _cuda_source(*args, **kwargs): the CUDA program these arguments' trace compiles to
 * (tj_emit_cuda's dict), without a GPU: the CUDA backend's codegen tests. */
static PyObject *fn_cuda_source(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    return with_args(op, args, nargs, kwnames, cuda_source);
}

/* tiers(): per variant, most recent first: 'opt' (running the optimizing tier's
 * code), 'compiling' (its compile is under way), 'tcc'. Installs a finished compile. */
static PyObject *fn_tiers(tj_function *self, PyObject *unused) {
    PyObject *r = PyList_New(0);
    for (tj_plan *p = self->plans; r && p; p = p->next) {
        if (p->upgrade.next.state) tj_plan_tier_up(p);
        PyObject *s = PyUnicode_FromString(p->upgrade.done ? "opt"
                                           : p->upgrade.next.state ? "compiling" : "tcc");
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
static PyObject *get_on_guard_limit(tj_function *self, void *c) {
    return PyUnicode_FromString(self->limit_raises ? "error" : "eager");
}
static PyObject *get_last_source(tj_function *self, void *c) {
    return Py_NewRef(self->plans && self->plans->source ? self->plans->source : Py_None);
}
/* Per variant, most recently used first: (groups its latest replay ran, its groups, the
 * groups before each value guard's comparison). A test hook: a failing value guard stops
 * the kernel before the work that follows it (csrc/runtime.c). */
static PyObject *get_groups_ran(tj_function *self, void *c) {
    PyObject *r = PyList_New(0);
    for (tj_plan *p = self->plans; r && p; p = p->next) {
        PyObject *ends = PyTuple_New(p->sched.n_guard_end), *e = NULL;
        for (int k = 0; ends && k < p->sched.n_guard_end; k++)
            PyTuple_SET_ITEM(ends, k, PyLong_FromLong(p->sched.guard_end[k]));
        if (ends) e = Py_BuildValue("(iiN)", p->groups_ran, p->kernel.n_groups, ends);
        if (!e || PyList_Append(r, e) < 0) Py_CLEAR(r);
        Py_XDECREF(e);
    }
    return r;
}

static PyGetSetDef fn_getset[] = {
    {"_groups_ran", (getter)get_groups_ran, NULL, "per variant: (groups the latest replay ran, "
     "groups, groups before each value guard)", NULL},
    {"__wrapped__", (getter)get_wrapped, NULL, "the original Python function", NULL},
    {"last_retrace", (getter)get_last_retrace, NULL, "why the latest retrace happened", NULL},
    {"_on_guard_limit", (getter)get_on_guard_limit, NULL, "'eager' or 'error'", NULL},
    {"last_source", (getter)get_last_source, NULL, "generated C of the most recent variant", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

static PyMethodDef fn_methods[] = {
    {"cache_info", (PyCFunction)fn_cache_info, METH_NOARGS,
     "CacheInfo(hits, misses, variants, compile_time, last_retrace); .guards, .eager_calls"},
    {"cache_clear", (PyCFunction)fn_cache_clear, METH_NOARGS, "drop every compiled variant"},
    {"tiers", (PyCFunction)fn_tiers, METH_NOARGS,
     "per variant, most recent first: 'opt', 'compiling' or 'tcc'"},
    {"__reduce__", (PyCFunction)fn_reduce, METH_NOARGS, "pickle by reference"},
    /* CompiledFunction[[int], int] in annotations evaluated at run time (the stubs
     * declare the type generic in the function's parameters and result) */
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585"},
    {"explain", (PyCFunction)(void (*)(void))fn_explain, METH_FASTCALL | METH_KEYWORDS,
     "explain(*args, **kwargs) -> Explanation: the graph after each pass, the fusion groups "
     "and the generated C for these arguments (str() of it is the text)"},
    {"_export_plan", (PyCFunction)(void (*)(void))fn_export_plan, METH_FASTCALL | METH_KEYWORDS,
     "_export_plan(*args, **kwargs) -> dict: a plan for these arguments, as data (tracejit.export)"},
    {"_cuda_source", (PyCFunction)(void (*)(void))fn_cuda_source, METH_FASTCALL | METH_KEYWORDS,
     "_cuda_source(*args, **kwargs) -> dict: the CUDA program of a trace for these args"},
    {"_explain_passes", (PyCFunction)(void (*)(void))fn_explain_passes,
     METH_FASTCALL | METH_KEYWORDS, "_explain_passes(*args, **kwargs) -> Explanation: the pass log "
     "of a trace for these args; nothing is emitted or compiled"},
    {NULL},
};

static PyMemberDef fn_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(tj_function, dict), READONLY},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(tj_function, vectorcall), READONLY},
    {"_static_argnums", T_OBJECT_EX, offsetof(tj_function, static_argnums), READONLY},
    {"_static_argnames", T_OBJECT_EX, offsetof(tj_function, conf) +
                                      offsetof(tj_argconf, static_argnames), READONLY},
    {"_max_variants", T_INT, offsetof(tj_function, max_variants), READONLY},
    {NULL},
};

/* The name repr shows: the __qualname__ compile() copied (else the wrapped function's,
 * else its repr), its last part replaced by a __name__ that differs (grad's "grad(f)"). */
static PyObject *display_name(tj_function *self) {
    PyObject *q = self->dict ? PyDict_GetItemString(self->dict, "__qualname__") : NULL;
    q = q && PyUnicode_Check(q) ? Py_NewRef(q)
                                : PyObject_GetAttrString(self->fn, "__qualname__");
    if (!q || !PyUnicode_Check(q)) {
        Py_XDECREF(q);
        return clear_unless_interrupt() < 0 ? NULL : PyObject_Repr(self->fn);
    }
    PyObject *name = self->dict ? PyDict_GetItemString(self->dict, "__name__") : NULL;
    if (!name || !PyUnicode_Check(name)) return q;
    PyObject *head = NULL, *last = NULL, *r = NULL;
    Py_ssize_t len = PyUnicode_GET_LENGTH(q), dot = PyUnicode_FindChar(q, '.', 0, len, -1);
    if (dot == -2 || !(head = PyUnicode_Substring(q, 0, dot + 1)) ||
        !(last = PyUnicode_Substring(q, dot + 1, len)))
        goto done;
    r = PyUnicode_Compare(last, name) ? PyUnicode_Concat(head, name) : Py_NewRef(q);
done:
    Py_XDECREF(head);
    Py_XDECREF(last);
    Py_DECREF(q);
    return r;
}

/* <tracejit.CompiledFunction f.<locals>.g: 2 variants (1 opt, 1 tcc), 5 hits, 2 misses>:
 * the tiers as tiers() would say them, without installing a finished compile. */
static PyObject *fn_repr(tj_function *self) {
    PyObject *name = display_name(self);
    if (!name) return NULL;
    int n[3] = {0, 0, 0};   /* opt, compiling, tcc */
    for (tj_plan *p = self->plans; p; p = p->next)
        n[p->upgrade.done ? 0 : p->upgrade.next.state ? 1 : 2]++;
    static const char *const tier[3] = {"opt", "compiling", "tcc"};
    char tiers[96] = "";
    for (int k = 0, len = 0; k < 3; k++)
        if (n[k])
            len += snprintf(tiers + len, sizeof tiers - (size_t)len, "%s%d %s",
                            len ? ", " : " (", n[k], tier[k]);
    if (self->n_plans) strcat(tiers, ")");
    PyObject *r = PyUnicode_FromFormat(
        "<tracejit.CompiledFunction %U: %d variant%s%s, %zd hit%s, %zd miss%s>", name,
        self->n_plans, self->n_plans == 1 ? "" : "s", tiers, self->hits,
        self->hits == 1 ? "" : "s", self->misses, self->misses == 1 ? "" : "es");
    Py_DECREF(name);
    return r;
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
