/* The tracer's declarations: the Trace and Tracer objects, dispatch, concrete values
 * and writes (csrc/trace/). Included by tracejit.h at this point of it, after the module
 * state; not a header of its own to include elsewhere. */
#ifndef TJ_TRACE_H
#define TJ_TRACE_H

/* ---- tracing (csrc/trace/tracer.c, csrc/trace/dispatch.c) ----------------- */
/* A Trace owns the graph being built; each Tracer refers to one node of it. */
#define TJ_MAX_RNG 8   /* generators one trace may draw from */
/* An array of the caller's (an argument: an INPUT node, or a captured array: a CAPTURE
 * node) the function writes into: `root` is its leaf, `cur` the node of its contents
 * now (root until the first write). A Tracer whose node is `cur` stands for the array
 * itself: a write always makes a node no other Tracer holds (csrc/trace/write.c). At
 * the end of the trace each written one becomes an output the replay writes back into
 * the caller's memory (tj_plan.writes), unless the trace made it (back 0: a tensor a
 * torch factory returned while tracing, a constant of the trace; tj_trace.made). */
typedef struct { int32_t root, cur; int back, slot; } tj_extwrite;
typedef struct {
    PyObject_HEAD
    tj_state *st;            /* borrowed: its type holds the module */
    tj_graph g;              /* with its slot table */
    int live;                /* 0 once tracing ended: escaped tracers then raise */
    PyObject *captures;      /* list of (where, array): arrays read from closures/globals */
    PyObject *fn;            /* strong: the traced function, where captures are looked up */
    int torch;               /* a torch input: torch dtypes, promotion and methods; | 2 (4):
                                promotion read torch's default dtype, float32 (float64) */
    PyObject *guards;        /* what _effects.call returned beside the result (see tj_plan) */
    PyObject *refusal;       /* the first TraceError raised while tracing (message): if the
                                user's code caught it and went on, the trace is refused */
    int32_t *holders;        /* live Tracer objects per node (an in-place operator rebinds
                                its Tracer: faithful only where no other one shares it) */
    PyObject *pending;       /* the Tracer of `c[k] op= v`'s c[k] between its in-place
                                operator and its store into c (csrc/trace/write.c) */
    PyObject *pending_error; /* the refusal raised if that store does not come */
    int32_t pending_root;    /* the alias root c[k] was a view of */
    int32_t cap_holders;
    PyObject *rng_sources;   /* NULL or list: the generators the trace drew from (random.c) */
    PyObject *rng_keyfns;    /* NULL or list: per source, what draws a call's key from it */
    int32_t rng_key[TJ_MAX_RNG];   /* per source: its key leaf (a KEY slot) */
    int64_t rng_next[TJ_MAX_RNG];  /* per source: the next draw's first counter */
    PyObject *checks;        /* NULL or list of (node, message): all(x) the trace assumed
                                True, checked at every call (random.c, tj_trace_check) */
    const struct tj_flat *flat;   /* the call being traced (borrowed, NULL when none): the
                                     real inputs concrete values are computed from */
    PyObject *values;        /* NULL or list of the values Python read (concrete.c): per
                                guard (kind, where, mode, dtype, recorded, label, shown,
                                cmp: None or (op, constant on the left, constant)) */
    tj_extwrite *ext;        /* the caller's arrays the trace writes into (write.c) */
    int32_t n_ext, cap_ext;
    int32_t *out_alias;      /* per result output: the leaf slot of the caller's array it
                                is (the written contents of one), or -1 (trace_passes) */
    int32_t n_writes;        /* outputs written back, after the results (before
                                the guards' values and the checks) */
    PyObject *made;          /* NULL or list: tensors torch factories made while tracing
                                (_C._note_made), which no caller sees */
    PyObject *stand_ins;     /* NULL or list of (tensor, tracer): a real tensor the trace
                                reads as that tracer, not as a capture (_C._stand_in:
                                Pyro's parameters, read from its modules, are the compiled
                                ELBO's arguments) */
    int discard_writes;      /* the writes are not written back: a recomputation (the
                                autograd route's pullback) of a call that wrote them */
    double started, progress_after;   /* a long compile's progress (tj_compile_progress): */
    int progress_noted;               /* after progress_after s (< 0: never), noted once */
    int cuda_device;         /* 0: the CPU; k + 1: the first torch argument is on cuda:k
                                (what a Tracer's .device says, _C._trace_device) */
    int outside;             /* 1: arrays read from outside stood in as tracers
                                (_C._capture); 3: fn raised with them or NumPy's
                                new arrays traced (_effects.call); 2: a retrace with
                                them as NumPy's (compile.c's trace_passes) */
    PyObject *loops;         /* NULL or list: the compiled loops traced so far (loops.c) */
    int loop_depth;          /* bodies of compiled loops being traced */
    int32_t n_loop_vals;     /* the loops' results so far (TJ_SLOT_LOOP indices) */
    int32_t *view_copies;    /* COPY nodes a reshape made of a strided view (views.c),
                                which NumPy may make a view instead: writes reaching
                                them are refused (write_views.c) */
    int32_t n_view_copies, cap_view_copies;
    PyObject *conc_vals;     /* NULL or dict: node -> ndarray, the values computed for
                                Python so far that a later one may start from (prefix.c) */
    uint8_t *readonly;       /* per node: 1 a view NumPy makes read-only (np.diagonal,
                                broadcast_to, sliding_window_view, and views of them:
                                tj_view passes it on), 2 a copy a reshape made of one
                                (NumPy may view it: writes refused); views_strided.c */
    int32_t cap_readonly;
    struct tj_tracer *tracers;   /* the live Tracer objects of this trace, a list linked
                                    through their prev/next (tracer.c): a write through a
                                    view rebinds every one of its family (write_views.c) */
} tj_trace;

typedef struct tj_tracer {
    PyObject_HEAD
    tj_trace *trace;         /* strong */
    struct tj_tracer *prev, *next;   /* trace->tracers' list while trace is set */
    int32_t id;
    uint8_t npkind;          /* TJ_NP_*: what eager NumPy holds for a 0-d value */
    PyObject *weakrefs;      /* weakly referenceable, as tensors are (nn.RNNBase keeps
                                weak references to its weights) */
    PyObject *dict;          /* NULL or the attributes Python code set on it (a torch
                                trace's only, as on tensors: Pyro's _pyro_dims,
                                unconstrained); not torch's own names */
} tj_tracer;

/* A 0-d value is a NumPy scalar in eager NumPy (np.float64: 0-d results of ufuncs,
 * operators, reductions, x[0], np.dot of vectors) or a 0-d array (views, np.where,
 * astype, np.full, an array written in place), or a Python number (a Python int or
 * float argument, and Python's operators on such numbers only). TJ_NP_AUTO decides by
 * the node (see tj_tracer_is_np_scalar); the functions whose rule differs set the
 * others. */
enum { TJ_NP_AUTO, TJ_NP_SCALAR, TJ_NP_ARRAY, TJ_NP_PYTHON };

int tj_tracer_types_init(PyObject *module, tj_state *st);
/* New reference to a Tracer for node id of trace t. */
PyObject *tj_tracer_new(tj_trace *t, int32_t id);
/* Concatenates node ids along axis (csrc/trace/assemble.c). New reference to a Tracer. */
PyObject *tj_concat_ids(tj_trace *t, int32_t *ids, Py_ssize_t n, int axis);
/* o is a Tracer (of any instance of _C: the test is the type's C layout, its dealloc;
 * the Tracer type has no subclasses). */
int tj_is_tracer(PyObject *o);
/* What eager holds for x's value: 0 an array (or a torch tensor), 1 a NumPy scalar
 * (np.float64, ...), 2 a Python number. 1 and 2 are what `+=` rebinds, and what a
 * compiled function returns as a NumPy scalar or a Python number. Under torch only a
 * Python number is not a tensor. */
int tj_tracer_is_np_scalar(PyObject *x);
/* Sets a Tracer's TJ_NP_* kind and returns it (x may be NULL or not a Tracer: returned
 * as is), for `return tj_tracer_np(r, TJ_NP_ARRAY);` */
PyObject *tj_tracer_np(PyObject *x, int kind);
/* r, a 0-d result made from the 0-d src by a function that keeps NumPy scalars scalars
 * and 0-d arrays arrays (transpose, squeeze, astype), takes src's kind. Returns r. */
PyObject *tj_tracer_np_as(PyObject *r, PyObject *src);
/* x's live trace, or NULL + TraceError for a tracer that escaped its trace. */
tj_trace *tj_tracer_live(tj_tracer *x);
/* x's Tracer object stands for node id from now on (the functional form of a write). 0/-1. */
int tj_tracer_rebind(tj_tracer *x, int32_t id);
/* ---- concrete values (csrc/trace/concrete.c) ----
 * What Python needs of a traced value now (its truth value, int(), float(), an index,
 * .item(), .tolist()): computed from the call's real inputs, handed to Python as eager
 * would, and recorded as a guard of the plan. New reference; NULL + exception. */
enum { TJ_CONC_BOOL, TJ_CONC_INT, TJ_CONC_FLOAT, TJ_CONC_INDEX, TJ_CONC_ITEM,
       TJ_CONC_TOLIST };
PyObject *tj_concrete(PyObject *x, int what, PyObject *args);
/* iter(x): x[0], x[1], ... along its first axis, lazily (TypeError for a 0-d value). */
PyObject *tj_tracer_iter(PyObject *x);
/* A traced value written into something that is not traced: -1 with TraceError when
 * the user's line writes, else 0. */
int tj_tracer_write_error(tj_state *st);
/* "FILE:LINE (`SOURCE`)" of the user's current line, or "" (dispatch.c). New reference. */
PyObject *tj_user_line(tj_state *st);
/* ---- writes (csrc/trace/write.c) ----
 * x op= value, torch's x.add_(v), F.relu(x, inplace=True): `value` (the new contents)
 * becomes x's, with NumPy's (torch's) in-place casting and shape rules, where rebinding
 * x's Tracer object is what eager does; otherwise TraceError naming `what`. New
 * reference to x. */
PyObject *tj_tracer_assign(PyObject *x, PyObject *value, const char *what);
/* x[key] = value with NumPy's (torch's) indexing, broadcasting and casting, under the
 * rule of tj_tracer_assign. 0/-1 (mp_ass_subscript's contract). */
int tj_write_setitem(PyObject *x, PyObject *key, PyObject *value);
/* A ufunc's out=: result (broadcast to out's shape, as NumPy's output is) written into
 * the Tracer out under tj_tracer_assign's rule. New reference to out. */
PyObject *tj_write_out(PyObject *out, PyObject *result, const char *what);
/* write_out.c: out= of reductions and products. tj_out_tracer: out (or out=(o,)) as a
 * Tracer of t, borrowed, else TraceError naming numpy.FNAME. tj_out_probe: fn(*args,
 * **kwargs) on stand-ins of the traced operands (out a NumPy scalar where eager's is), so
 * NumPy raises its own errors; 0/-1.
 * tj_out_promote: the dtype NumPy's reduction loop takes with out= (x's and out's
 * promoted), new reference. tj_out_write: res cast to out's dtype and written into out
 * (tj_tracer_assign), new reference to out. tj_out_c_contiguous: whether node id's
 * array is C-contiguous in eager. */
PyObject *tj_out_tracer(tj_trace *t, PyObject *out, const char *fname);
int tj_out_probe(tj_trace *t, PyObject *fn, PyObject *args, PyObject *kwargs, PyObject *out);
PyObject *tj_out_promote(tj_trace *t, PyObject *x, PyObject *out);
PyObject *tj_out_write(tj_trace *t, PyObject *out, PyObject *res, const char *what);
int tj_out_c_contiguous(tj_trace *t, int32_t id);
/* write_box.c: the box [lo, hi) a basic key (ints, unit-step slices, `...`, None)
 * selects in x (node n), the region's shape, and whether it is one element: 1; 0 where
 * the key is another (or NumPy would raise: the index map decides); -1 + exception. */
int tj_write_basic_box(const tj_node *n, PyObject *key, int64_t *lo, int64_t *hi, int *rnd,
                       int64_t *rshape, int *element);
/* At the end of tracing: -1 with TraceError when a `c[k] op= v` never stored into c. */
int tj_write_check_done(tj_trace *t);
/* The node of a captured array's contents now: its leaf `leaf`, or what the trace wrote
 * into it (tj_extwrite's cur). */
int32_t tj_write_current(const tj_trace *t, int32_t leaf);
/* write_views.c: whether a live Tracer other than x stands for root or a view or
 * detach of it; and the write of r (x's new contents) into x's alias family: every
 * live Tracer of it rebound over root's new contents (ext: root's t->ext entry, or
 * -1). 0/-1 + exception (`what` names the write). */
int tj_write_family_held(tj_trace *t, tj_tracer *x, int32_t root);
/* Whether view node id reads an element of its base twice (overlapping windows of
 * Tensor.unfold): 1, 0, or -1 + exception (write_views.c). */
int tj_write_view_overlaps(tj_trace *t, int32_t id);
/* Why a write into x is refused because it may reach (or come from) a copy a reshape
 * made of a strided view that another live Tracer shares in eager, or NULL;
 * tj_write_note_view_copy notes such a copy (views.c). */
const char *tj_write_view_copy_refusal(tj_trace *t, tj_tracer *x);
int tj_write_note_view_copy(tj_trace *t, int32_t id);
int tj_write_family(tj_trace *t, tj_tracer *x, PyObject *r, int ext, const char *what);
/* A NumPy composition's result with every view in it copied, where NumPy's function
 * returns new arrays (write_views.c). Steals r. */
PyObject *tj_write_own_result(tj_trace *t, PyObject *func, PyObject *args, PyObject *r);
/* _C._discard_writes(on) -> previous: traces begun on this thread while it is on write
 * nothing back (tj_trace.discard_writes); tj_write_discarding reads it. */
PyObject *tj_write_set_discard(PyObject *m, PyObject *arg);
int tj_write_discarding(void);
/* Converts an operand (Tracer, ndarray, numpy scalar, Python scalar) to a node id
 * of t; arrays are captured. -1 + exception. */
int32_t tj_operand(tj_trace *t, PyObject *o);
/* Elementwise op with NumPy type resolution; returns a new Tracer reference. */
PyObject *tj_apply(tj_trace *t, int op, int nargs, PyObject *const *args, const char *spelled);
PyObject *tj_apply_cast(tj_trace *t, PyObject *x, PyObject *dtype_like);
/* x.astype(dtype, copy=copy) (copy NULL: True): with copy false, x itself where its
 * dtype is already dtype (a write through either is seen by both, as in NumPy). */
PyObject *tj_astype(tj_trace *t, PyObject *x, PyObject *dtype_like, PyObject *copy);
PyObject *tj_apply_transpose(tj_trace *t, PyObject *x, PyObject *axes);
/* A view of node id: per output dim the operand dim read (-1 new/broadcast, -2 flat),
 * its step and the operand's start indices; composed with id's own view. -1 + exc. */
typedef struct {
    int ndim;
    int64_t shape[TJ_MAXDIM];
    int8_t src[TJ_MAXDIM];
    int64_t step[TJ_MAXDIM];
    int64_t off[TJ_MAXDIM];
} tj_viewspec;
int32_t tj_view(tj_trace *t, int32_t id, const tj_viewspec *v);
/* views_strided.c: node id's read-only mark (tj_trace.readonly: 0, 1 or 2), and
 * setting it (0/-1 + MemoryError). */
int tj_view_readonly(const tj_trace *t, int32_t id);
int tj_view_mark_readonly(tj_trace *t, int32_t id, int how);
/* A fresh VIEW node reading node id whole (an identity view: a Tracer of its own that
 * shares id's memory, `v = b[:]`). -1 + exception. */
int32_t tj_view_identity(tj_trace *t, int32_t id);
/* _C._strided_view(x, shape, coefs, offs, readonly): the view of x whose element idx
 * reads x at offs[e] + sum_d idx[d] * coefs[d][e] (np.diagonal, Tensor.unfold,
 * sliding_window_view), as one flat VIEW over x's contiguous base. */
PyObject *tj_py_strided_view(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
/* An axis argument normalized for an ndim-array (dispatch.c); NumPy's AxisError. 0/-1. */
int tj_norm_axis(PyObject *o, int ndim, int *axis);
/* A NumPy function's argument i, or keyword `name`, or dflt (dispatch.c). Borrowed. */
PyObject *tj_arg(PyObject *args, PyObject *kwargs, Py_ssize_t i, const char *name,
                 PyObject *dflt);
int tj_axis_error(long axis, int ndim);
/* A NumPy function the tracer implements: one entry of the table __array_function__
 * dispatches through (csrc/trace/protocols.c; tracer methods that share a handler use
 * entries of their own). A handler gets its entry (the name its messages spell, its
 * datum), x, the first argument (positional, or the keyword `first`; NULL only where
 * a handler says so) and the call's args and kwargs. New reference; NULL + exception. */
typedef struct tj_npfunc tj_npfunc;
typedef PyObject *tj_npfunc_fn(tj_trace *t, const tj_npfunc *f, PyObject *x, PyObject *args,
                               PyObject *kwargs);
struct tj_npfunc {
    const char *name;        /* "concatenate": numpy.<name>, and how messages spell it */
    const char *first;       /* its first parameter's name */
    tj_npfunc_fn *fn;
    int arg;                 /* the handler's datum: which of its functions this is */
};
/* x[key], x.reshape(shape) and the other movement functions (csrc/trace/views.c).
 * flip's datum: 0 numpy.flip (axis argument), 1 flipud, 2 fliplr (the dims they need);
 * split's: 1 numpy.split (equal parts only), 0 array_split. */
PyObject *tj_getitem(tj_trace *t, PyObject *x, PyObject *key);
PyObject *tj_reshape(tj_trace *t, PyObject *x, PyObject *shape);
tj_npfunc_fn tj_views_reshape, tj_views_ravel, tj_views_squeeze, tj_views_expand_dims,
    tj_views_swapaxes, tj_views_moveaxis, tj_views_broadcast_to, tj_views_flip, tj_views_split;
/* a @ b and np.dot/vdot/inner/outer/tensordot (csrc/trace/contract.c). matmul's x may
 * be NULL (a TypeError); inner's datum: 'v' vdot, 'i' inner, 'o' outer. */
PyObject *tj_matmul(tj_trace *t, PyObject *a, PyObject *b);
tj_npfunc_fn tj_contract_matmul, tj_contract_dot, tj_contract_inner, tj_contract_tensordot;
/* x[int array], np.take (datum 0), np.take_along_axis (datum 1) (csrc/trace/gather.c). */
int tj_is_advanced_index(PyObject *k);
/* The GATHER node out[p] = data[p with dim `axis` replaced by idx[p]] (data and idx of
 * one ndim, int64 idx); user_axis is the axis its IndexError names. New Tracer. */
PyObject *tj_gather(tj_trace *t, int32_t data, int32_t idx, int axis, int user_axis);
PyObject *tj_getitem_advanced(tj_trace *t, PyObject *x, PyObject *key);
tj_npfunc_fn tj_gather_take;
/* np.concatenate (datum 0), stack (1), hstack (1) and vstack (2: the dims each part is
 * given), roll, pad (csrc/trace/assemble.c). */
tj_npfunc_fn tj_assemble_concat, tj_assemble_hvstack, tj_assemble_roll, tj_assemble_pad;
PyObject *tj_apply_clip(tj_trace *t, PyObject *x, PyObject *lo, PyObject *hi);
/* A fresh value of shape (ndim, shape) and dtype dt, every element `value` (an operand
 * that broadcasts to the shape) converted like numpy's unsafe copyto. New reference. */
PyObject *tj_apply_fill(tj_trace *t, PyObject *value, int dt, int ndim, const int64_t *shape);
/* __array_ufunc__ / __array_function__ bodies */
PyObject *tj_array_ufunc(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *tj_array_function(PyObject *self, PyObject *args, PyObject *kwargs);
/* complex operands, handed to python/tracejit/_complex.py (csrc/trace/complex.c) */
int tj_complex_involved(tj_state *st, PyObject *o);
int tj_complex_any(tj_state *st, PyObject *args, PyObject *kwargs);
PyObject *tj_complex_op(tj_state *st, const char *kind, PyObject *args, PyObject *kwargs);
PyObject *tj_complex_register(PyObject *m, PyObject *args);
/* Where the traced function finds an array again at call time: a closure cell, a
 * global, a dict of compile(nn.Module)'s, or the object itself. New ref to
 * (kind, where, name). */
PyObject *tj_capture_source(tj_trace *t, PyObject *arr);
/* torch (csrc/trace/torch.c): a torch tensor read from a closure/global/module as a
 * captured leaf; torch's type promotion (also for ops without a NumPy ufunc);
 * torch-named attributes of a tracer in a torch trace (NULL, no exception: none). */
int32_t tj_capture_torch(tj_trace *t, PyObject *o);
/* The float dtype a torch factory makes: torch's default (the plan then checks it at
 * every call) in a torch trace, float64 in a NumPy one. */
int tj_torch_default_float(tj_trace *t);
int tj_torch_resolve(tj_trace *t, int op, int nargs, const int32_t *ids, int *loop, int *out);
PyObject *tj_torch_getattr(PyObject *self, PyObject *name);
/* tj_graph_add and tj_graph_add_over on t's graph: the node's index, -1 + exception. */
int32_t tj_trace_add_node(tj_trace *t, const tj_node *proto);
/* -1 + TraceError when n is an op float16/bfloat16 values may not reach (not a load,
 * view, cast, copy, gather or concatenation: dispatch.c) */
int tj_storage_only(tj_trace *t, const tj_node *n);
int32_t tj_trace_add_over(tj_trace *t, int32_t src, int op, uint32_t axes);
/* Adds a leaf node of the given kind reading a new slot. -1 + exception. */
int32_t tj_trace_leaf(tj_trace *t, int op, const tj_slotdesc *d, int weak, int ndim,
                      const int64_t *shape);
/* A new, empty, live Trace of st's for fn. New reference. */
PyTypeObject *tj_trace_type_new(PyObject *module);
PyObject *tj_trace_new(tj_state *st, PyObject *fn);
/* _C._random(kind, shape, dtype, source, keyfn): a random draw in the current trace (random.c) */
PyObject *tj_trace_random(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_trace_sample(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_trace_full(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_py_same_value(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_trace_check(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
/* _C._iota(shape, axis) (random.c): in a trace, an int64 Tracer of `shape` whose
 * element is its index along `axis`, or its C-order linear index for axis -1 (IOTA). */
PyObject *tj_trace_iota(PyObject *m, PyObject *args);
/* The trace running on this thread (NULL when none): TraceErrors are noted in it. */
tj_trace *tj_trace_enter(tj_trace *t);   /* returns the previous one, for tj_trace_leave */
void tj_trace_leave(tj_trace *prev);
void tj_trace_note_refusal(void);         /* the raised TraceError, noted in the current trace */
tj_trace *tj_trace_current(void);
/* Around every traced call: the refusing wrappers of csrc/trace/effects.c in and out. */
int tj_effects_enter(tj_state *st);    /* 0/-1 (the first one makes the wrappers) */
void tj_effects_leave(tj_state *st);
/* Autodiff's node reader and source marker (csrc/ad/node.c): adds _C._ad_* functions. */
int tj_ad_init(PyObject *module);
/* A call needing autograd through its Adapter's common case (ad/torch_route.c): the
 * result; NULL + exception: its error; NULL alone: take _torch_autograd.call. */
PyObject *tj_ag_fast_call(tj_state *st, PyObject *cf_dict, PyObject *args, PyObject *kwargs);

#endif
