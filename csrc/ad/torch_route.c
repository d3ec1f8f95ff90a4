/* The per-call pieces of _torch_autograd's route (a compiled function called with
 * torch tensors that require grad under grad mode), in C because they run at every
 * training step: in Python the scan alone measured ~10 us of a ~150 us MLP step
 * (benchmarks/bench_train.py), Python work costing several times its isolated time there.
 *
 *   _ag_scan(entries, args, kwargs, static_type) -> (entry or None, key, diff, other)
 *
 * walks the leaves of (args, kwargs) in _C.tree_flatten's order (csrc/pytree.c's rule,
 * kwargs after args): float32/float64 CPU or CUDA tensors requiring grad go to the list diff,
 * other leaves to the list other. key is the call's pattern (containers' types, sizes
 * and dict keys; per leaf a marker, or a static's value):
 * what the entries dict is keyed by; entry is entries[key], None when absent.
 * A static argument (wrapped in static_type by the caller) is part of the key; one that
 * is not hashable is a TypeError. A tensor requiring grad on another device (meta, MPS)
 * is a TypeError.
 *
 *   _ag_layout(args, kwargs, static_type) -> (diff_pos, other_pos, statics)
 *
 * is the same walk recording each leaf's position, for the entry of a new pattern
 * (whose structure _C.tree_flatten((args, kwargs)) gives). */
#include "tracejit.h"

PyObject *tj_dl_set_strict(PyObject *m, PyObject *arg);   /* dlpack.c: _strict_captures */

/* The markers of a key (compared by identity) and the attribute names this file reads,
 * made once at import into the module state (ag_*). 0/-1. */
int tj_ag_init(tj_state *st) {
    PyObject *base = (PyObject *)&PyBaseObject_Type;
    return (st->ag_mark_diff = PyObject_CallNoArgs(base)) &&
           (st->ag_mark_other = PyObject_CallNoArgs(base)) &&
           (st->ag_str_autograd = PyUnicode_InternFromString("_tj_autograd")) &&
           (st->ag_str_fast = PyUnicode_InternFromString("fast")) &&
           (st->ag_str_mixed = PyUnicode_InternFromString("mixed")) &&
           (st->ag_str_value_and_grad = PyUnicode_InternFromString("value_and_grad")) &&
           (st->ag_str_grads = PyUnicode_InternFromString("grads")) &&
           (st->ag_str_job = PyUnicode_InternFromString("job")) &&
           (st->ag_str_mark_nd = PyUnicode_InternFromString("mark_non_differentiable")) &&
           (st->ag_str_dict = PyUnicode_InternFromString("__dict__")) &&
           (st->ag_str_train = PyUnicode_InternFromString("_tj_train")) &&
           (st->ag_str_step = PyUnicode_InternFromString("_tj_step"))
               ? 0 : -1;
}

typedef struct {
    tj_state *st;
    PyObject *key, *diff, *other, *static_type;   /* key: a list, made a tuple at the end */
    /* _ag_layout only (else NULL): the leaf positions of diff and other, statics as
     * (position, value), and the next leaf's position */
    PyObject *diff_pos, *other_pos, *statics;
    Py_ssize_t k;
} scan_state;

static int append(PyObject *list, PyObject *o) { return PyList_Append(list, o); }

/* Records the current leaf's position in `list` (with `value` when given), when the
 * scan records a layout; the next leaf gets the next position. */
static int place(scan_state *s, PyObject *list, PyObject *value) {
    Py_ssize_t k = s->k++;
    if (!s->diff_pos) return 0;
    PyObject *item = value ? Py_BuildValue("(nO)", k, value) : PyLong_FromSsize_t(k);
    int rc = item ? append(list, item) : -1;
    Py_XDECREF(item);
    return rc;
}

static int leaf(void *ctx, PyObject *o, const tj_path *p) {
    scan_state *s = ctx;
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == (PyTypeObject *)s->static_type) {
        PyObject *v = PyObject_GetAttrString(o, "value");
        int rc = v ? append(s->key, s->static_type) : -1;
        if (rc == 0) rc = append(s->key, v);
        if (rc == 0) rc = place(s, s->statics, v);
        Py_XDECREF(v);
        return rc;
    }
    if (tp != &PyFloat_Type && tp != &PyLong_Type && tp != &PyBool_Type &&
        tj_dl_kind(s->st, o) == TJ_LIB_TORCH) {
        int g = tj_dl_grad_leaf(s->st, o);
        if (g < 0) return -1;
        if (g == 2) {
            PyObject *dev = PyObject_GetAttrString(o, "device");
            if (dev) PyErr_Format(PyExc_TypeError,
                                  "tracejit autograd: tensors must be on the CPU or a CUDA "
                                  "GPU, got %S", dev);
            Py_XDECREF(dev);
            return -1;
        }
        if (g == 1)
            return append(s->diff, o) < 0 || append(s->key, s->st->ag_mark_diff) < 0 ? -1
                                                                          : place(s, s->diff_pos, NULL);
    }
    return append(s->other, o) < 0 || append(s->key, s->st->ag_mark_other) < 0 ? -1
                                                                      : place(s, s->other_pos, NULL);
}

/* A container: its type and size in the key (a defaultdict's factory too); a dict's
 * keys follow, each before its value (key_of). */
static int node(void *ctx, PyObject *o, tj_tree_kind kind, Py_ssize_t n, PyObject *aux,
                const tj_path *p) {
    scan_state *s = ctx;
    PyObject *len = PyLong_FromSsize_t(n);
    int rc = len && append(s->key, (PyObject *)Py_TYPE(o)) == 0 && append(s->key, len) == 0 &&
             (kind != TJ_TREE_DDICT || append(s->key, aux) == 0) ? 0 : -1;
    Py_XDECREF(len);
    return rc;
}

static int key_of(void *ctx, PyObject *key) { return append(((scan_state *)ctx)->key, key); }

/* csrc/pytree.c's walk: the leaves in _C.tree_flatten's order */
static const tj_tree_visitor scan_visitor = {node, key_of, leaf};

static int scan(scan_state *s, PyObject *tree) {
    return tj_tree_walk(s->st, tree, &scan_visitor, s, NULL);
}

/* Walks (args, kwargs) into s, whose key, diff and other lists it makes. 0/-1. */
static int scan_call(scan_state *s, PyObject *args, PyObject *kwargs) {
    s->key = PyList_New(0);
    s->diff = PyList_New(0);
    s->other = PyList_New(0);
    if (!s->key || !s->diff || !s->other || scan(s, args) < 0) return -1;
    if (kwargs != Py_None && PyDict_Check(kwargs) && PyDict_GET_SIZE(kwargs))
        if (append(s->key, (PyObject *)&PyDict_Type) < 0 || scan(s, kwargs) < 0) return -1;
    return 0;
}

static void scan_clear(scan_state *s) {
    Py_CLEAR(s->key);
    Py_CLEAR(s->diff);
    Py_CLEAR(s->other);
    Py_CLEAR(s->diff_pos);
    Py_CLEAR(s->other_pos);
    Py_CLEAR(s->statics);
}

PyObject *tj_ag_scan(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyDict_Check(args[0]) || !PyTuple_Check(args[1]) ||
        !PyType_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "_ag_scan(entries, args, kwargs, static_type)");
        return NULL;
    }
    scan_state s = {.st = tj_state_of(m), .static_type = args[3]};
    PyObject *key = NULL, *res = NULL;
    if (scan_call(&s, args[1], args[2]) < 0) goto done;
    key = PyList_AsTuple(s.key);
    if (!key) goto done;
    PyObject *entry = PyDict_GetItemWithError(args[0], key);
    if (!entry && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "tracejit autograd: a static argument is not hashable");
        }
        goto done;
    }
    res = PyTuple_Pack(4, entry ? entry : Py_None, key, s.diff, s.other);
done:
    Py_XDECREF(key);
    scan_clear(&s);
    return res;
}

/* A CompiledFunction's call that needs autograd, the common case in C: its Adapter
 * (cf.__dict__["_tj_autograd"], _torch_autograd.py) has `fast` = (entries, static
 * type, Fused's C apply, functorch's active test) once it ran with no static
 * arguments; the call's pattern has an entry whose outputs were all scalars, some
 * leaf is differentiated, no functorch transform is active: then the fused node is
 * applied here. Otherwise NULL without an exception: Adapter.call decides (the first
 * NotScalarError of an entry marks it mixed first, as Adapter.call does). NULL with an
 * exception is the call's error. */
PyObject *tj_ag_fast_call(tj_state *st, PyObject *dict, PyObject *args, PyObject *kwargs) {
    if (!st->ag_not_scalar) {   /* tracejit._grad imports this module: found at first use */
        PyObject *g = PyImport_ImportModule("tracejit._grad");
        st->ag_not_scalar = g ? PyObject_GetAttrString(g, "NotScalarError") : NULL;
        Py_XDECREF(g);
        if (!st->ag_not_scalar) return NULL;
    }
    PyObject *ad = dict ? PyDict_GetItemWithError(dict, st->ag_str_autograd) : NULL;   /* borrowed */
    if (!ad) return NULL;
    PyObject *fast = PyObject_GetAttr(ad, st->ag_str_fast), *r = NULL, *key = NULL, *job = NULL;
    scan_state s = {.st = st};
    if (!fast || !PyTuple_Check(fast) || PyTuple_GET_SIZE(fast) != 4) {   /* not an Adapter */
        if (fast) Py_DECREF(fast);
        else if (PyErr_ExceptionMatches(PyExc_AttributeError)) PyErr_Clear();
        return NULL;
    }
    PyObject *entries = PyTuple_GET_ITEM(fast, 0), *on = PyObject_CallNoArgs(PyTuple_GET_ITEM(fast, 3));
    if (!on || on != Py_False || !PyDict_Check(entries)) goto done;
    s.static_type = PyTuple_GET_ITEM(fast, 1);
    if (scan_call(&s, args, kwargs) < 0 || !(key = PyList_AsTuple(s.key))) goto done;
    PyObject *entry = PyDict_GetItemWithError(entries, key);   /* borrowed */
    if (!entry || !PyList_GET_SIZE(s.diff)) goto done;
    PyObject *mixed = PyObject_GetAttr(entry, st->ag_str_mixed);
    int plain = mixed == Py_False;
    Py_XDECREF(mixed);
    if (!plain || !(job = PyTuple_Pack(3, entry, s.diff, s.other))) goto done;
    Py_ssize_t n = PyList_GET_SIZE(s.diff);
    PyObject *stack[16];
    PyObject **call = n + 1 <= (Py_ssize_t)(sizeof stack / sizeof *stack)
                          ? stack : PyMem_Malloc((size_t)(n + 1) * sizeof *call);
    if (!call) { PyErr_NoMemory(); goto done; }
    call[0] = job;
    for (Py_ssize_t i = 0; i < n; i++) call[i + 1] = PyList_GET_ITEM(s.diff, i);
    r = PyObject_Vectorcall(PyTuple_GET_ITEM(fast, 2), call, (size_t)(n + 1), NULL);
    if (call != stack) PyMem_Free(call);
    if (!r && PyErr_ExceptionMatches(st->ag_not_scalar)) {   /* Adapter.call takes the other route */
        PyErr_Clear();
        PyObject_SetAttr(entry, st->ag_str_mixed, Py_True);
    }
done:   /* NULL with an exception: it propagates (nothing runs twice) */
    Py_XDECREF(on);
    Py_XDECREF(job);
    Py_XDECREF(key);
    scan_clear(&s);
    Py_DECREF(fast);
    return r;
}

/* _ag_layout(args, kwargs, static_type) -> (diff_pos, other_pos, statics): the same
 * walk as _ag_scan's, recording each leaf's position among all leaves (statics as
 * (position, value)); run once per new pattern, to make its entry. */
PyObject *tj_ag_layout(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[0]) || !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "_ag_layout(args, kwargs, static_type)");
        return NULL;
    }
    scan_state s = {.st = tj_state_of(m), .static_type = args[2], .diff_pos = PyList_New(0),
                    .other_pos = PyList_New(0), .statics = PyList_New(0)};
    PyObject *res = NULL;
    if (s.diff_pos && s.other_pos && s.statics && scan_call(&s, args[0], args[1]) == 0)
        res = PyTuple_Pack(3, s.diff_pos, s.other_pos, s.statics);
    scan_clear(&s);
    return res;
}

/* Whether some gradient of `grads` (value_and_grad's list) is not None: None is the
 * gradient of a leaf the value does not depend on (decided when it was traced). */
static int some_gradient(PyObject *grads) {
    if (!PyList_Check(grads) && !PyTuple_Check(grads)) return 1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(grads); i++)
        if (PySequence_Fast_GET_ITEM(grads, i) != Py_None) return 1;
    return 0;
}

/* _ag_forward(ctx, job, *diff): the fused node's forward (Fused.forward in
 * _torch_autograd.py): job is (entry, diff, other); runs entry.value_and_grad(diff,
 * other) with captured tensors requiring grad refused (_strict_captures), keeps the
 * gradients in ctx.grads and job in ctx.job, returns the value. A value that depends
 * on no differentiated leaf (every gradient None) is marked non-differentiable: it does
 * not require grad, and its backward() raises, as in eager torch. */
PyObject *tj_ag_forward(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    tj_state *st = tj_state_of(m);
    if (nargs < 2 || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != 3) {
        PyErr_SetString(PyExc_TypeError, "_ag_forward(ctx, (entry, diff, other), *diff)");
        return NULL;
    }
    PyObject *ctx = args[0], *job = args[1];
    PyObject *vg = PyObject_GetAttr(PyTuple_GET_ITEM(job, 0), st->ag_str_value_and_grad);
    if (!vg) return NULL;
    PyObject *old = tj_dl_set_strict(NULL, Py_True);
    if (!old) { Py_DECREF(vg); return NULL; }
    PyObject *r = PyObject_Vectorcall(vg, &PyTuple_GET_ITEM(job, 1), 2, NULL);
    Py_DECREF(vg);
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);   /* restoring the flag keeps the error */
    PyObject *back = tj_dl_set_strict(NULL, old);
    Py_DECREF(old);
    Py_XDECREF(back);
    PyErr_Restore(et, ev, tb);
    if (!r) return NULL;
    PyObject *value = NULL;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        PyErr_SetString(PyExc_TypeError, "_ag_forward: value_and_grad gave no (value, grads)");
        goto done;
    }
    if (PyObject_SetAttr(ctx, st->ag_str_grads, PyTuple_GET_ITEM(r, 1)) < 0 ||
        PyObject_SetAttr(ctx, st->ag_str_job, job) < 0)
        goto done;
    value = Py_NewRef(PyTuple_GET_ITEM(r, 0));
    if (!some_gradient(PyTuple_GET_ITEM(r, 1))) {
        PyObject *ok = PyObject_CallMethodOneArg(ctx, st->ag_str_mark_nd, value);
        if (!ok) Py_CLEAR(value);
        Py_XDECREF(ok);
    }
done:
    Py_DECREF(r);
    return value;
}

/* The fused node's backward, as its backward class's `apply` (the engine calls
 * ctx.apply(go)): (None, *grads) when the gradients are there, grad mode is off and
 * the cotangent is exactly 1 (loss.backward()); anything else (create_graph, a second
 * backward, another cotangent) goes to _torch_autograd._fused_backward(ctx, go, grads).
 * C because it runs at every training step. A function of the module (its self), made
 * a method by an instancemethod: called as (module; ctx, go). */
static PyObject *ag_backward(PyObject *m, PyObject *const *args_, Py_ssize_t nargs_) {
    tj_state *st = tj_state_of(m);
    if (nargs_ < 1) {
        PyErr_SetString(PyExc_TypeError, "the fused node's backward is a method of its ctx");
        return NULL;
    }
    PyObject *ctx = args_[0], *const *args = args_ + 1;
    Py_ssize_t nargs = nargs_ - 1;
    if (!st->ag_fused_backward) {   /* found at the first backward (torch is imported by then) */
        PyObject *t = PyImport_ImportModule("torch");
        PyObject *ta = t ? PyImport_ImportModule("tracejit._torch_autograd") : NULL;
        PyObject *grad_enabled = t && ta ? PyObject_GetAttrString(t, "is_grad_enabled") : NULL;
        PyObject *slow = grad_enabled ? PyObject_GetAttrString(ta, "_fused_backward") : NULL;
        Py_XDECREF(t);
        Py_XDECREF(ta);
        if (!slow) { Py_XDECREF(grad_enabled); return NULL; }
        Py_XSETREF(st->torch_grad_enabled, grad_enabled);   /* dlpack.c's, if it found it */
        st->ag_fused_backward = slow;
    }
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "the fused node's backward takes one cotangent");
        return NULL;
    }
    PyObject *d = PyObject_GetAttr(ctx, st->ag_str_dict), *grads = NULL, *res = NULL;
    if (!d || !PyDict_Check(d)) {
        if (d) PyErr_SetString(PyExc_TypeError, "the fused node's ctx has no __dict__");
        Py_XDECREF(d);
        return NULL;
    }
    grads = PyDict_GetItemWithError(d, st->ag_str_grads);
    if (grads) {   /* handed over, not kept: autograd adopts them as .grad */
        Py_INCREF(grads);
        if (PyDict_DelItem(d, st->ag_str_grads) < 0) goto done;
    } else if (PyErr_Occurred()) {
        goto done;
    }
    PyObject *on = PyObject_CallNoArgs(st->torch_grad_enabled);
    if (!on) goto done;
    int fast = on == Py_False && grads && (PyList_Check(grads) || PyTuple_Check(grads)) &&
               tj_dl_is_one(st, args[0]);
    Py_DECREF(on);
    if (fast) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(grads);
        if (!(res = PyTuple_New(n + 1))) goto done;
        PyTuple_SET_ITEM(res, 0, Py_NewRef(Py_None));
        for (Py_ssize_t i = 0; i < n; i++)
            PyTuple_SET_ITEM(res, i + 1, Py_NewRef(PySequence_Fast_GET_ITEM(grads, i)));
    } else {
        res = PyObject_CallFunctionObjArgs(st->ag_fused_backward, ctx, args[0], grads ? grads : Py_None, NULL);
    }
done:
    Py_XDECREF(grads);
    Py_DECREF(d);
    return res;
}

static PyMethodDef ag_backward_def = {
    "apply", (PyCFunction)(void (*)(void))ag_backward, METH_FASTCALL,
    "the fused node's backward (csrc/ad/torch_route.c)"};

/* _ag_backward_method(cls) -> ag_backward for cls.apply: bound to the module (its
 * state), wrapped in an instancemethod so that ctx.apply binds ctx as well. */
PyObject *tj_ag_backward_method(PyObject *m, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "_ag_backward_method expects a class");
        return NULL;
    }
    PyObject *f = PyCFunction_NewEx(&ag_backward_def, m, NULL);
    PyObject *r = f ? PyInstanceMethod_New(f) : NULL;
    Py_XDECREF(f);
    return r;
}

/* _ag_unit(t) -> bool: t is a one-element float32/float64 CPU torch tensor equal to 1
 * (the implicit cotangent of loss.backward()), read in place; False when unsure. */
PyObject *tj_ag_unit(PyObject *m, PyObject *t) {
    return PyBool_FromLong(tj_dl_is_one(tj_state_of(m), t));
}
