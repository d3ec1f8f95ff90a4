/* Pytrees: tracejit's one container rule, for every walk in C (arguments -> key and
 * tracers in args.c, results -> template, the autograd route's scan) and, through
 * _C.tree_flatten / _C.tree_leaves / TreeDef.unflatten, in Python (_grad, _torch,
 * _torch_autograd, _describe).
 *
 * Containers, each rebuilt as its own type:
 *   tuple, list, dict; None (no children, as jax);
 *   a namedtuple (a tuple subclass whose type has _fields): type(*children);
 *   a structseq with no hidden fields (torch.return_types.max): type(children);
 *   collections.OrderedDict and collections.defaultdict (its default_factory kept);
 *   types.SimpleNamespace and argparse.Namespace (exactly those types: a script's parsed
 *   `args`): their attributes, as a dict's items in their own order; type(**items).
 * A dict's children are its values in the dict's own order (insertion order, as
 * torch.utils._pytree; jax sorts the keys): the keys, in that order, are structure.
 * Everything else is a leaf, other subclasses of tuple, list and dict among them
 * (torch.Size, Counter, a user's dict subclass): where a leaf must be a static value it
 * must be hashable, and the error names its type and its path ("arg 0['w'][1]").
 * Contract: one walk (tj_tree_walk) decides; the treedef's tokens record what it
 * decided, so flatten and unflatten agree by construction. */
#include "tracejit.h"

/* Its kind, for a tuple, list or dict subclass: namedtuple, structseq, OrderedDict,
 * defaultdict, or a leaf. Never fails (a failing lookup is a leaf). */
static tj_tree_kind subclass_kind(tj_state *st, PyObject *o) {
    PyObject *tp = (PyObject *)Py_TYPE(o);
    if (PyTuple_Check(o)) {
        PyObject *nseq = PyObject_GetAttrString(tp, "n_sequence_fields");
        if (nseq) {
            PyObject *nf = PyObject_GetAttrString(tp, "n_fields");
            int ok = nf && PyLong_Check(nseq) && PyObject_RichCompareBool(nf, nseq, Py_EQ) == 1;
            Py_XDECREF(nf);
            Py_DECREF(nseq);
            PyErr_Clear();
            return ok ? TJ_TREE_STRUCTSEQ : TJ_TREE_LEAF;   /* hidden fields: a leaf */
        }
        PyErr_Clear();
        int named = PyObject_HasAttrString(tp, "_fields");
        return named ? TJ_TREE_NAMEDTUPLE : TJ_TREE_LEAF;
    }
    if (Py_IS_TYPE(o, &PyODict_Type)) return TJ_TREE_ODICT;
    if (PyDict_Check(o) && tp == st->defaultdict_type) return TJ_TREE_DDICT;
    return TJ_TREE_LEAF;
}

/* Whether tp is argparse.Namespace itself (looked up by name: argparse stays unimported
 * until a script imports it). Never fails. */
static int is_argparse_namespace(PyTypeObject *tp) {
    if (strcmp(tp->tp_name, "Namespace") != 0 || !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) return 0;
    PyObject *mod = PyDict_GetItemString(tp->tp_dict, "__module__");   /* borrowed */
    return mod && PyUnicode_Check(mod) && PyUnicode_CompareWithASCIIString(mod, "argparse") == 0;
}

tj_tree_kind tj_tree_kind_of(tj_state *st, PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyTuple_Type) return TJ_TREE_TUPLE;
    if (tp == &PyList_Type) return TJ_TREE_LIST;
    if (tp == &PyDict_Type) return TJ_TREE_DICT;
    if (o == Py_None) return TJ_TREE_NONE;
    if (PyType_FastSubclass(tp, Py_TPFLAGS_TUPLE_SUBCLASS | Py_TPFLAGS_DICT_SUBCLASS))
        return subclass_kind(st, o);
    if ((PyObject *)tp == st->simplens_type || is_argparse_namespace(tp)) return TJ_TREE_NS;
    return TJ_TREE_LEAF;
}

/* ---- paths ------------------------------------------------------------------- */

PyObject *tj_path_str(const tj_path *p) {
    if (!p) return PyUnicode_FromString("");
    if (!p->up) {
        const char *root = p->root ? p->root : "";
        if (p->key) return PyUnicode_FromFormat("%s %R", root, p->key);   /* arg 'scale' */
        if (p->index >= 0) return PyUnicode_FromFormat("%s %zd", root, p->index);   /* arg 0 */
        return PyUnicode_FromString(root);
    }
    PyObject *up = tj_path_str(p->up), *r = NULL;
    if (!up) return NULL;
    if (p->key && p->attr) {
        r = PyUnicode_FromFormat("%U.%S", up, p->key);
    } else if (p->key) {
        r = PyUnicode_FromFormat("%U[%R]", up, p->key);
    } else if (p->fields_of) {   /* a namedtuple's field by name, found only when shown */
        PyObject *fields = PyObject_GetAttrString(p->fields_of, "_fields");
        PyObject *name = fields && PyTuple_Check(fields) && p->index < PyTuple_GET_SIZE(fields)
                             ? PyTuple_GET_ITEM(fields, p->index) : NULL;
        PyErr_Clear();
        r = name && PyUnicode_Check(name) ? PyUnicode_FromFormat("%U.%U", up, name)
                                          : PyUnicode_FromFormat("%U[%zd]", up, p->index);
        Py_XDECREF(fields);
    } else {
        r = PyUnicode_FromFormat("%U[%zd]", up, p->index);
    }
    Py_DECREF(up);
    return r;
}

int tj_path_error(PyObject *cls, const tj_path *p, const char *fmt, ...) {
    va_list va;
    va_start(va, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    PyObject *ps = msg ? tj_path_str(p) : NULL;
    if (ps) PyErr_Format(cls, PyUnicode_GET_LENGTH(ps) ? "%U: %U" : "%U%U", ps, msg);
    Py_XDECREF(ps);
    Py_XDECREF(msg);
    return -1;
}

#define CONTAINERS \
    "tuple, list, dict, None, a namedtuple, a structseq, OrderedDict, defaultdict, " \
    "SimpleNamespace, argparse.Namespace"

int tj_tree_leaf_error(const tj_path *p, PyObject *o, const char *role) {
    PyTypeObject *tp = Py_TYPE(o);
    const char *base = PyTuple_Check(o) ? "tuple" : PyList_Check(o) ? "list"
                     : PyDict_Check(o) ? "dict" : NULL;
    if (base)
        return tj_path_error(PyExc_TypeError, p,
                             "%s (a %s subclass) is not a container tracejit walks (" CONTAINERS
                             "): as a leaf it %s; pass a plain %s", tp->tp_name, base, role, base);
    return tj_path_error(PyExc_TypeError, p,
                         "%s is neither an array, a number, nor a container tracejit walks ("
                         CONTAINERS "): as a leaf it %s", tp->tp_name, role);
}

/* ---- the walk ------------------------------------------------------------------ */

static inline int is_dict(tj_tree_kind k) {
    return k == TJ_TREE_DICT || k == TJ_TREE_ODICT || k == TJ_TREE_DDICT || k == TJ_TREE_NS;
}

/* Kinds whose node carries an object in the treedef's aux before its keys: the type of
 * a namedtuple, structseq or namespace, a defaultdict's default_factory. */
static inline int has_aux(tj_tree_kind k) {
    return k == TJ_TREE_NAMEDTUPLE || k == TJ_TREE_STRUCTSEQ || k == TJ_TREE_DDICT ||
           k == TJ_TREE_NS;
}

/* Deeper than this is a container holding itself, as good as certainly: a RecursionError
 * (a counter, cheaper than Py_EnterRecursiveCall on the replay path). */
#define MAX_DEPTH 256

/* One walk's constants: whose rule (a defaultdict's type), its visitor and context. */
typedef struct {
    tj_state *st;
    const tj_tree_visitor *v;
    void *ctx;
} walker;

static int walk(const walker *w, PyObject *o, const tj_path *p, int depth);

static int walk_items(const walker *w, PyObject *o, tj_tree_kind kind, Py_ssize_t n,
                      const tj_path *p, int depth) {
    PyObject *fields_of = kind == TJ_TREE_NAMEDTUPLE ? (PyObject *)Py_TYPE(o) : NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* a list's item is held across the visit: a visitor may run Python code (a
         * static's __hash__); a tuple's cannot go while the tuple lives */
        int list = kind == TJ_TREE_LIST;
        PyObject *item = list ? Py_NewRef(PyList_GET_ITEM(o, i)) : PyTuple_GET_ITEM(o, i);
        tj_path sub = {p, NULL, i, NULL, fields_of};
        int rc = walk(w, item, &sub, depth);
        if (list) Py_DECREF(item);
        if (rc < 0) return -1;
        if (kind == TJ_TREE_LIST && PyList_GET_SIZE(o) != n)
            return tj_path_error(PyExc_RuntimeError, p, "the list changed size while it was read");
    }
    return 0;
}

static int walk_entry(const walker *w, PyObject *k, PyObject *val, const tj_path *p,
                      int depth, int attr) {
    Py_INCREF(k);
    Py_INCREF(val);
    tj_path sub = {p, NULL, 0, k, NULL, attr};
    int rc = w->v->key && w->v->key(w->ctx, k) < 0 ? -1 : walk(w, val, &sub, depth);
    Py_DECREF(k);
    Py_DECREF(val);
    return rc;
}

static int walk_dict(const walker *w, PyObject *o, tj_tree_kind kind, const tj_path *p,
                     int depth) {
    if (kind == TJ_TREE_ODICT) {   /* its own order (move_to_end), not the dict's */
        PyObject *items = PyMapping_Items(o);
        if (!items) return -1;
        int rc = 0;
        for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(items); i++) {
            PyObject *kv = PyList_GET_ITEM(items, i);
            rc = walk_entry(w, PyTuple_GET_ITEM(kv, 0), PyTuple_GET_ITEM(kv, 1), p, depth, 0);
        }
        Py_DECREF(items);
        return rc;
    }
    Py_ssize_t pos = 0, n = PyDict_GET_SIZE(o);
    PyObject *k, *val;
    while (PyDict_Next(o, &pos, &k, &val)) {
        if (walk_entry(w, k, val, p, depth, kind == TJ_TREE_NS) < 0) return -1;
        if (PyDict_GET_SIZE(o) != n)
            return tj_path_error(PyExc_RuntimeError, p, "the dict changed size while it was read");
    }
    return 0;
}

static int walk(const walker *w, PyObject *o, const tj_path *p, int depth) {
    tj_tree_kind kind = tj_tree_kind_of(w->st, o);
    if (kind == TJ_TREE_LEAF) return w->v->leaf(w->ctx, o, p);
    if (kind == TJ_TREE_NONE) return w->v->node(w->ctx, o, kind, 0, NULL, p);
    if (++depth > MAX_DEPTH)
        return tj_path_error(PyExc_RecursionError, p, "a pytree nested deeper than %d levels "
                                                      "(a container that holds itself?)", MAX_DEPTH);
    int rc = -1;
    PyObject *aux = NULL;   /* the defaultdict's default_factory, held */
    PyObject *attrs = NULL;   /* a namespace's __dict__, held */
    if (kind == TJ_TREE_DDICT && !(aux = PyObject_GetAttrString(o, "default_factory"))) goto done;
    if (kind == TJ_TREE_NS && !(attrs = PyObject_GenericGetDict(o, NULL))) goto done;
    Py_ssize_t n = kind == TJ_TREE_LIST ? PyList_GET_SIZE(o) : attrs ? PyDict_GET_SIZE(attrs)
                 : is_dict(kind) ? PyDict_GET_SIZE(o) : PyTuple_GET_SIZE(o);
    PyObject *node_aux = aux ? aux : has_aux(kind) ? (PyObject *)Py_TYPE(o) : NULL;
    if (w->v->node(w->ctx, o, kind, n, node_aux, p) < 0) goto done;
    rc = attrs ? walk_dict(w, attrs, TJ_TREE_NS, p, depth)
       : is_dict(kind) ? walk_dict(w, o, kind, p, depth) : walk_items(w, o, kind, n, p, depth);
done:
    Py_XDECREF(aux);
    Py_XDECREF(attrs);
    return rc;
}

static const tj_path no_root = {NULL, "", -1, NULL, NULL};   /* paths shown as "[0]['w']" */

int tj_tree_walk(tj_state *st, PyObject *o, const tj_tree_visitor *v, void *ctx,
                 const tj_path *p) {
    walker w = {st, v, ctx};
    return walk(&w, o, p ? p : &no_root, 0);
}

/* ---- treedefs ------------------------------------------------------------------- */

#define TOKEN_MAX_CHILDREN (INT32_MAX >> 4)

typedef struct {
    tj_treedef *td;
    tj_tree_leaf_fn leaf;
    void *ctx;
} flatten_ctx;

static int token(tj_treedef *td, tj_tree_kind kind, Py_ssize_t n) {
    if (n > TOKEN_MAX_CHILDREN) {
        PyErr_SetString(PyExc_OverflowError, "a tracejit pytree node with too many children");
        return -1;
    }
    if (td->n_tokens == td->cap_tokens &&
        tj_grow((void **)&td->tokens, &td->cap_tokens, 8, sizeof *td->tokens) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    td->tokens[td->n_tokens++] = (int32_t)kind | (int32_t)n << 4;
    return 0;
}

static int fl_node(void *c, PyObject *o, tj_tree_kind kind, Py_ssize_t n, PyObject *aux,
                   const tj_path *p) {
    tj_treedef *td = ((flatten_ctx *)c)->td;
    if (token(td, kind, n) < 0) return -1;
    return aux ? PyList_Append(td->aux, aux) : 0;
}

static int fl_key(void *c, PyObject *key) { return PyList_Append(((flatten_ctx *)c)->td->aux, key); }

static int fl_leaf(void *c, PyObject *o, const tj_path *p) {
    flatten_ctx *f = c;
    if (token(f->td, TJ_TREE_LEAF, 0) < 0) return -1;
    f->td->n_leaves++;
    return f->leaf(f->ctx, o, p);
}

int tj_tree_flatten(tj_state *st, PyObject *o, tj_treedef *td, tj_tree_leaf_fn leaf, void *ctx,
                    const tj_path *p) {
    memset(td, 0, sizeof *td);
    td->st = st;
    if (!(td->aux = PyList_New(0))) return -1;
    flatten_ctx f = {td, leaf, ctx};
    static const tj_tree_visitor v = {fl_node, fl_key, fl_leaf};
    if (tj_tree_walk(st, o, &v, &f, p) == 0) return 0;
    tj_treedef_free(td);
    return -1;
}

void tj_treedef_free(tj_treedef *td) {
    free(td->tokens);   /* tj_grow's */
    Py_CLEAR(td->aux);
    memset(td, 0, sizeof *td);
}

typedef struct { const tj_treedef *td; PyObject *const *leaves; int tok; Py_ssize_t aux, leaf; } cursor;

static PyObject *build(cursor *c);

/* n children into a new tuple (NULL on failure). */
static PyObject *build_tuple(cursor *c, Py_ssize_t n) {
    PyObject *r = PyTuple_New(n);
    for (Py_ssize_t i = 0; r && i < n; i++) {
        PyObject *item = build(c);
        if (!item) Py_CLEAR(r);
        else PyTuple_SET_ITEM(r, i, item);
    }
    return r;
}

static PyObject *build(cursor *c) {
    int32_t tok = c->td->tokens[c->tok++];
    tj_tree_kind kind = tok & 15;
    Py_ssize_t n = tok >> 4;
    PyObject *aux = has_aux(kind) ? PyList_GET_ITEM(c->td->aux, c->aux++) : NULL;
    switch (kind) {
    case TJ_TREE_LEAF: return Py_NewRef(c->leaves[c->leaf++]);
    case TJ_TREE_NONE: Py_RETURN_NONE;
    case TJ_TREE_TUPLE: return build_tuple(c, n);
    case TJ_TREE_NAMEDTUPLE:
    case TJ_TREE_STRUCTSEQ: {
        PyObject *items = build_tuple(c, n), *r = NULL;
        if (items) r = kind == TJ_TREE_NAMEDTUPLE ? PyObject_Call(aux, items, NULL)
                                                  : PyObject_CallOneArg(aux, items);
        Py_XDECREF(items);
        return r;
    }
    case TJ_TREE_LIST: {
        PyObject *r = PyList_New(n);
        for (Py_ssize_t i = 0; r && i < n; i++) {
            PyObject *item = build(c);
            if (!item) Py_CLEAR(r);
            else PyList_SET_ITEM(r, i, item);
        }
        return r;
    }
    default: {   /* the dicts; a namespace: type(**its dict) */
        PyObject *r = kind == TJ_TREE_DICT || kind == TJ_TREE_NS ? PyDict_New()
                    : kind == TJ_TREE_ODICT ? PyObject_CallNoArgs((PyObject *)&PyODict_Type)
                    : PyObject_CallOneArg(c->td->st->defaultdict_type, aux);
        for (Py_ssize_t i = 0; r && i < n; i++) {
            PyObject *k = PyList_GET_ITEM(c->td->aux, c->aux++), *v = build(c);
            if (!v || PyObject_SetItem(r, k, v) < 0) Py_CLEAR(r);
            Py_XDECREF(v);
        }
        if (r && kind == TJ_TREE_NS) {
            PyObject *none = PyTuple_New(0);
            PyObject *ns = none ? PyObject_Call(aux, none, r) : NULL;
            Py_XDECREF(none);
            Py_SETREF(r, ns);
        }
        return r;
    }
    }
}

PyObject *tj_treedef_build(const tj_treedef *td, PyObject *const *leaves) {
    cursor c = {td, leaves, 0, 0, 0};
    return build(&c);
}

/* The path of every leaf (below a root with no name: "[0]['w']", ".x"), in order. */
static int paths_walk(const tj_treedef *td, int *tok, Py_ssize_t *aux, const tj_path *p,
                      PyObject *out) {
    int32_t t = td->tokens[(*tok)++];
    tj_tree_kind kind = t & 15;
    Py_ssize_t n = t >> 4;
    if (kind == TJ_TREE_LEAF) {
        PyObject *s = tj_path_str(p);
        int rc = s ? PyList_Append(out, s) : -1;
        Py_XDECREF(s);
        return rc;
    }
    PyObject *fields_of = kind == TJ_TREE_NAMEDTUPLE ? PyList_GET_ITEM(td->aux, *aux) : NULL;
    if (has_aux(kind)) (*aux)++;
    int dict = is_dict(kind);
    for (Py_ssize_t i = 0; i < n; i++) {
        tj_path sub = {p, NULL, i, dict ? PyList_GET_ITEM(td->aux, (*aux)++) : NULL, fields_of,
                       kind == TJ_TREE_NS};
        if (paths_walk(td, tok, aux, &sub, out) < 0) return -1;
    }
    return 0;
}

PyObject *tj_treedef_paths(const tj_treedef *td, const tj_path *root) {
    PyObject *out = PyList_New(0);
    int tok = 0;
    Py_ssize_t aux = 0;
    if (out && td->n_tokens && paths_walk(td, &tok, &aux, root ? root : &no_root, out) < 0)
        Py_CLEAR(out);
    return out;
}

/* ---- TreeDef, the Python face ----------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    tj_treedef td;
} treedef_object;

static int collect_leaf(void *list, PyObject *o, const tj_path *p) { return PyList_Append(list, o); }

static PyObject *new_treedef(tj_state *st, tj_treedef *td) {
    treedef_object *r = PyObject_GC_New(treedef_object, st->TreeDefType);
    if (!r) { tj_treedef_free(td); return NULL; }
    r->td = *td;
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

/* tree_flatten(tree) -> (leaves, TreeDef) */
static PyObject *tree_flatten(PyObject *m, PyObject *tree) {
    PyObject *leaves = PyList_New(0), *def = NULL;
    tj_treedef td;
    if (!leaves || tj_tree_flatten(tj_state_of(m), tree, &td, collect_leaf, leaves, NULL) < 0 ||
        !(def = new_treedef(tj_state_of(m), &td))) {
        Py_XDECREF(leaves);
        return NULL;
    }
    PyObject *r = PyTuple_Pack(2, leaves, def);
    Py_DECREF(leaves);
    Py_DECREF(def);
    return r;
}

static int leaves_node(void *c, PyObject *o, tj_tree_kind k, Py_ssize_t n, PyObject *aux,
                       const tj_path *p) { return 0; }

/* tree_leaves(tree) -> list: tree_flatten's leaves, without the structure */
static PyObject *tree_leaves(PyObject *m, PyObject *tree) {
    static const tj_tree_visitor v = {leaves_node, NULL, collect_leaf};
    PyObject *leaves = PyList_New(0);
    if (leaves && tj_tree_walk(tj_state_of(m), tree, &v, leaves, NULL) < 0) Py_CLEAR(leaves);
    return leaves;
}

static PyObject *td_unflatten(treedef_object *self, PyObject *leaves) {
    PyObject *seq = PySequence_Fast(leaves, "TreeDef.unflatten expects a sequence of leaves");
    if (!seq) return NULL;
    PyObject *r = NULL;
    if (PySequence_Fast_GET_SIZE(seq) != self->td.n_leaves)
        PyErr_Format(PyExc_ValueError, "TreeDef.unflatten: %zd leaves for a structure of %zd",
                     PySequence_Fast_GET_SIZE(seq), self->td.n_leaves);
    else
        r = tj_treedef_build(&self->td, PySequence_Fast_ITEMS(seq));
    Py_DECREF(seq);
    return r;
}

static PyObject *td_paths(treedef_object *self, PyObject *unused) {
    return tj_treedef_paths(&self->td, NULL);
}

static PyObject *td_num_leaves(treedef_object *self, void *unused) {
    return PyLong_FromSsize_t(self->td.n_leaves);
}

/* The structure with * for each leaf: "(*, {'w': *})", "Point(x=*, y=*)". */
static PyObject *td_repr(treedef_object *self) {
    PyObject *star = self->td.st->tree_star, *r = NULL;
    PyObject **stars = PyMem_Malloc((size_t)(self->td.n_leaves + 1) * sizeof *stars);
    if (!stars) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < self->td.n_leaves; i++) stars[i] = star;
    PyObject *tree = tj_treedef_build(&self->td, stars);
    PyMem_Free(stars);
    if (tree) r = PyUnicode_FromFormat("TreeDef(%R)", tree);
    Py_XDECREF(tree);
    return r;
}

static Py_hash_t td_hash(treedef_object *self) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < self->td.n_tokens; i++) h = (h ^ (uint32_t)self->td.tokens[i]) * 1099511628211ull;
    Py_hash_t ah = PyObject_Hash(self->td.aux);   /* a list: its items' hashes */
    if (ah == -1 && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyObject *t = PyList_AsTuple(self->td.aux);
        ah = t ? PyObject_Hash(t) : -1;
        Py_XDECREF(t);
    }
    if (ah == -1) return -1;
    h = (h ^ (uint64_t)ah) * 1099511628211ull;
    return (Py_hash_t)(h >> 1);
}

static PyObject *td_richcompare(PyObject *a, PyObject *b, int op) {
    if ((op != Py_EQ && op != Py_NE) || !Py_IS_TYPE(b, Py_TYPE(a))) Py_RETURN_NOTIMPLEMENTED;
    const tj_treedef *x = &((treedef_object *)a)->td, *y = &((treedef_object *)b)->td;
    int eq = x->n_tokens == y->n_tokens &&
             !memcmp(x->tokens, y->tokens, (size_t)x->n_tokens * sizeof *x->tokens);
    if (eq) {
        eq = PyObject_RichCompareBool(x->aux, y->aux, Py_EQ);
        if (eq < 0) return NULL;
    }
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static int td_traverse(treedef_object *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->td.aux);
    return 0;
}

static int td_clear(treedef_object *self) {
    Py_CLEAR(self->td.aux);
    return 0;
}

static void td_dealloc(treedef_object *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    tj_treedef_free(&self->td);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef td_methods[] = {
    {"unflatten", (PyCFunction)td_unflatten, METH_O,
     "unflatten(leaves) -> the tree of this structure holding leaves, in order"},
    {"paths", (PyCFunction)td_paths, METH_NOARGS,
     "paths() -> each leaf's path as a str ('[0]', \"['w']\", '.x'), in order"},
    {NULL},
};

static PyGetSetDef td_getset[] = {
    {"num_leaves", (getter)td_num_leaves, NULL, "how many leaves the structure holds", NULL},
    {NULL},
};

static PyType_Slot td_slots[] = {
    {Py_tp_doc, "A pytree's structure (tracejit._C.tree_flatten): compared and hashed by "
                "value; unflatten(leaves) rebuilds the tree."},
    {Py_tp_dealloc, td_dealloc},
    {Py_tp_traverse, td_traverse},
    {Py_tp_clear, td_clear},
    {Py_tp_repr, td_repr},
    {Py_tp_hash, td_hash},
    {Py_tp_richcompare, td_richcompare},
    {Py_tp_methods, td_methods},
    {Py_tp_getset, td_getset},
    {0, NULL},
};

static PyObject *star_repr(PyObject *self) { return PyUnicode_FromString("*"); }

/* The placeholder TreeDef's repr shows for a leaf. */
static PyType_Slot star_slots[] = {{Py_tp_repr, star_repr}, {0, NULL}};
static PyType_Spec star_spec = {"tracejit._C._TreeLeaf", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT,
                                star_slots};

static PyType_Spec td_spec = {"tracejit._C.TreeDef", sizeof(treedef_object), 0,
                              Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                              td_slots};

PyMethodDef tj_pytree_methods[] = {
    {"tree_flatten", tree_flatten, METH_O,
     "tree_flatten(tree) -> (leaves, TreeDef): tracejit's container rule (csrc/pytree.c)"},
    {"tree_leaves", tree_leaves, METH_O, "tree_leaves(tree) -> tree_flatten(tree)'s leaves"},
    {NULL},
};

int tj_pytree_init(PyObject *module, tj_state *st) {
    PyObject *collections = PyImport_ImportModule("collections");
    if (!collections) return -1;
    st->defaultdict_type = PyObject_GetAttrString(collections, "defaultdict");
    Py_DECREF(collections);
    if (!st->defaultdict_type) return -1;
    PyObject *types = PyImport_ImportModule("types");
    st->simplens_type = types ? PyObject_GetAttrString(types, "SimpleNamespace") : NULL;
    Py_XDECREF(types);
    if (!st->simplens_type) return -1;
    st->TreeDefType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &td_spec, NULL);
    if (!st->TreeDefType) return -1;
    if (PyModule_AddObjectRef(module, "TreeDef", (PyObject *)st->TreeDefType) < 0) return -1;
    PyObject *star_type = PyType_FromModuleAndSpec(module, &star_spec, NULL);
    if (!star_type) return -1;
    st->tree_star = PyObject_CallNoArgs(star_type);
    Py_DECREF(star_type);   /* its one instance holds it */
    if (!st->tree_star) return -1;
    return PyModule_AddFunctions(module, tj_pytree_methods);
}
