/* A plan as data, for tracejit.export (python/tracejit/_export.py): what a standalone
 * C program needs to replay it without Python -- the first kernel's C source (what
 * TinyCC compiled, csrc/emit/emit_c.c), the slot table (arguments, captured arrays,
 * constants, random keys, scratch and outputs with their shapes), the scratch layout,
 * the outputs' slots, and what the replay checks (guards, checks, writes), which the
 * exporter turns into C or refuses by name. Nothing here emits or compiles: the export
 * spells the same plan and source the runtime replays (csrc/runtime.c). */
#include "tracejit.h"

static PyObject *int_list(const int32_t *v, int n) {
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        PyObject *x = PyLong_FromLong(v ? v[i] : -1);
        if (!x) { Py_CLEAR(l); break; }
        PyList_SET_ITEM(l, i, x);
    }
    return l;
}

static PyObject *shape_tuple(const int64_t *shape, int ndim) {
    PyObject *t = PyTuple_New(ndim);
    for (int d = 0; t && d < ndim; d++) {
        PyObject *x = PyLong_FromLongLong(shape[d]);
        if (!x) { Py_CLEAR(t); break; }
        PyTuple_SET_ITEM(t, d, x);
    }
    return t;
}

/* Leaf slots: (kind, index, dtype name, the constant's 8 bytes); the others: (dtype
 * name, shape). New reference. */
static PyObject *slot_list(const tj_plan *p) {
    const tj_schedule *s = &p->sched;
    PyObject *l = PyList_New(s->n_slots);
    for (int i = 0; l && i < s->n_slots; i++) {
        PyObject *e;
        if (i < p->n_leaf_slots) {
            const tj_slotdesc *d = &p->slots[i];
            e = Py_BuildValue("(iisy#)", d->kind, d->index, tj_dtype_name(d->dtype),
                              (const char *)p->consts[i], (Py_ssize_t)8);
        } else {
            PyObject *shape = shape_tuple(s->slot_shape[i], s->slot_ndim[i]);
            e = shape ? Py_BuildValue("(sN)", tj_dtype_name(s->slot_dtype[i]), shape) : NULL;
        }
        if (!e) { Py_CLEAR(l); break; }
        PyList_SET_ITEM(l, i, e);
    }
    return l;
}

/* (kind, leaf slot or value index, description) per guard. New reference. */
static PyObject *guard_list(const tj_plan *p) {
    PyObject *text = tj_guards_describe(p);
    if (!text) return NULL;
    PyObject *l = PyList_New(p->n_guards);
    for (int k = 0; l && k < p->n_guards; k++) {
        PyObject *e = Py_BuildValue("(iiO)", p->guards[k].kind, p->guards[k].index,
                                    PyTuple_GET_ITEM(text, k));
        if (!e) { Py_CLEAR(l); break; }
        PyList_SET_ITEM(l, k, e);
    }
    Py_DECREF(text);
    return l;
}

PyObject *tj_plan_export_info(const tj_plan *p) {
    const tj_schedule *s = &p->sched;
    if (p->device != TJ_DEVICE_CPU || p->kernel.run)
        return PyErr_Format(PyExc_ValueError, "tracejit.export: the plan runs on a GPU; "
                            "export traces with CPU arrays");
    int64_t *off = s->scratch_off;
    PyObject *scratch = PyList_New(s->n_scratch);
    for (int k = 0; scratch && k < s->n_scratch; k++) {
        PyObject *x = PyLong_FromLongLong(off[k]);
        if (!x) { Py_CLEAR(scratch); break; }
        PyList_SET_ITEM(scratch, k, x);
    }
    PyObject *template_out = PyList_New(p->tmpl.tree.n_leaves);
    for (Py_ssize_t i = 0; template_out && i < p->tmpl.tree.n_leaves; i++) {
        PyObject *x = PyLong_FromLong(p->tmpl.out_of[i]);
        if (!x) { Py_CLEAR(template_out); break; }
        PyList_SET_ITEM(template_out, i, x);
    }
    PyObject *d = Py_BuildValue(
        "{sO sN sN sN sN si si si si si si sL sL si si si si sO sO sO sO}",
        "source", p->source ? p->source : Py_None,
        "slots", slot_list(p),
        "scratch_off", scratch,
        "out_slot_of", int_list(s->out_slot_of, p->n_results),
        "out_same_as", int_list(s->out_same_as, p->n_results),
        "n_leaves", p->n_leaves, "n_leaf_slots", p->n_leaf_slots,
        "first_scratch", s->first_scratch, "n_scratch", s->n_scratch,
        "first_out", s->first_out, "n_slots", s->n_slots,
        "scratch_bytes", (long long)s->scratch_bytes, "work", (long long)p->work,
        "n_results", p->n_results, "n_writes", p->n_writes, "n_hidden", p->n_hidden,
        "n_checks", p->n_checks,
        "check_msgs", p->check_msgs ? p->check_msgs : Py_None,
        "captures", p->captures,
        "template_out", template_out ? template_out : Py_None,
        "template_statics", p->tmpl.statics ? p->tmpl.statics : Py_None);
    Py_XDECREF(template_out);
    if (!d) return NULL;
    PyObject *guards = guard_list(p);
    PyObject *alias = p->out_alias ? int_list(p->out_alias, p->n_results) : Py_NewRef(Py_None);
    PyObject *writes = int_list(p->write_slot, p->n_writes);
    if (!writes || PyDict_SetItemString(d, "write_slots", writes) < 0) {
        Py_XDECREF(writes); Py_XDECREF(alias); Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(writes);
    int n_groups = p->kernel.n_groups;
    if (!guards || !alias || PyDict_SetItemString(d, "guards", guards) < 0 ||
        PyDict_SetItemString(d, "out_alias", alias) < 0 ||
        PyDict_SetItemString(d, "draws", p->keyfns ? Py_True : Py_False) < 0) {
        Py_XDECREF(guards); Py_XDECREF(alias); Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(guards);
    Py_DECREF(alias);
    PyObject *ng = PyLong_FromLong(n_groups);
    if (!ng || PyDict_SetItemString(d, "n_groups", ng) < 0) { Py_XDECREF(ng); Py_DECREF(d); return NULL; }
    Py_DECREF(ng);
    return d;
}
