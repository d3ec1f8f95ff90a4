/* tracejit.h: the map of the compiler's Python side. One section per source file; read
 * top to bottom it follows one call: arguments -> key -> cache -> trace -> passes ->
 * emit -> plan -> replay. The IR, the passes and the emitters know no Python: their
 * maps are csrc/ir/ir.h and csrc/emit/emit.h, included here. Ownership of Python
 * references is stated per function. */
#ifndef TRACEJIT_H
#define TRACEJIT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdbool.h>

#include "emit/emit.h"   /* and ir/ir.h: the Python-free core */

typedef struct tj_state tj_state;   /* the module state (below) */

/* ---- the IR's Python face (csrc/bridge.c) --------------------------------- */
int tj_dtype_from_typenum(int typenum);     /* -1 when unsupported */
/* What the dtype errors list (NumPy's names; torch's: its uint16/32/64 have few ops) */
#define TJ_SUPPORTED_DTYPES "bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, " \
    "float16 (NumPy), float32, float64"
#define TJ_SUPPORTED_TORCH_DTYPES "torch.bool, int8, int16, int32, int64, uint8, float32, float64"
int tj_dtype_typenum(tj_dtype dt);
/* Raises e as its Python exception (see tj_error in ir.h). -1. */
int tj_error_raise(tj_state *st, const tj_error *e);
/* NumPy broadcasting of shapes; -1 + ValueError naming both shapes, at the user's line */
int tj_broadcast(tj_state *st, const tj_node *a, const tj_node *b, int *ndim, int64_t *shape);
PyObject *tj_py_op_table(PyObject *m, PyObject *unused);          /* _C._op_table */
PyObject *tj_py_test_mark_effect(PyObject *m, PyObject *name);   /* _C._test_mark_effect */

/* ---- module state and errors (csrc/module.c) ------------------------------ */
struct tj_state {
    PyObject *TracejitError, *TraceError, *CompileError, *InternalError;
    PyTypeObject *TracerType, *TraceType, *FunctionType;
    PyObject *numpy;                /* the numpy module */
    PyObject *ndarray_type;         /* numpy.ndarray */
    PyObject *ufunc_ops;            /* dict: ufunc -> op index */
    PyObject *ufunc_of[TJ_NOPS];    /* op index -> its numpy ufunc, or NULL */
    PyObject *array_funcs;          /* dict: numpy function -> its entry's index (protocols.c) */
    PyObject *py_impls;             /* dict: numpy function -> composition in Python */
    PyObject *dtypes[TJ_NDTYPES];   /* numpy dtype objects */
    PyObject *py_int, *py_float;    /* the int and float types (weak operands) */
    PyObject *skip_dirs;            /* tuple of directory prefixes skipped when locating user code */
    PyTypeObject *CacheInfoType;
    PyTypeObject *TreeDefType;      /* a pytree's structure (pytree.c) */
    PyObject *defaultdict_type;     /* collections.defaultdict: a container (pytree.c) */
    PyObject *simplens_type;        /* types.SimpleNamespace: a container (pytree.c) */
    PyObject *tree_star;            /* the leaf placeholder of TreeDef's repr: `*` */
    PyObject *torch_attrs;          /* dict: tracer attribute name -> torch-style (_torch.py) */
    PyObject *trace_call;           /* runs the traced function (_effects.call) */
    PyObject *effects;              /* [module, name, wrapper(, original)] lists (effects.c) */
    PyObject *effects_make;         /* makes that list at the first trace */
    long effects_active;            /* traces running, all threads: wrappers swapped in */
    PyObject *autograd_call;        /* (fn, args, kwargs): a call with tensors requiring grad */
    PyObject *grad_capture_error;   /* raised for a captured tensor that requires grad */
    /* complex numbers (trace/complex.c, python/tracejit/_complex.py) */
    PyObject *complex_cls, *complex_call, *complex_op;
    /* torch, found lazily and never imported at import time (dlpack.c): NULL until seen */
    PyTypeObject *torch_tensor;     /* torch.Tensor, found in sys.modules */
    PyObject *torch_dtypes[TJ_NDTYPES];
    PyObject *torch_grad_enabled;   /* torch.is_grad_enabled */
    PyObject *torch_from_numpy, *torch_empty, *torch_get_default_dtype;
    PyObject *torch_bump;           /* torch._C._increment_version (a replay's writes) */
    /* the autograd route's constants (ad/torch_route.c): key markers compared by
     * identity, attribute names, and what it finds lazily in tracejit and torch */
    PyObject *ag_mark_diff, *ag_mark_other;
    PyObject *ag_str_autograd, *ag_str_fast, *ag_str_mixed, *ag_str_value_and_grad,
             *ag_str_grads, *ag_str_job, *ag_str_mark_nd, *ag_str_dict;
    /* a compiled training step (_train_step.py): cf.__dict__ keys. "_tj_train": called
     * as (cf, args, kwargs) when a trace refuses a captured tensor that requires grad;
     * "_tj_step": once set, every call goes there (cf, args, kwargs) */
    PyObject *ag_str_train, *ag_str_step;
    PyObject *ag_not_scalar;        /* tracejit._grad.NotScalarError */
    PyObject *ag_fused_backward;    /* tracejit._torch_autograd._fused_backward */
    /* not objects: C pointers into torch's library, read from st->torch_tensor when it
     * is found (dlpack.c; torch is never unloaded), and a setting */
    const struct DLPackExchangeAPI *torch_api;   /* __dlpack_c_exchange_api__ */
    getter requires_grad_get;       /* TensorBase.requires_grad's C getter, its closure */
    void *requires_grad_closure;
    int torch_alloc_mode;           /* how torch results are allocated (_C._torch_alloc) */
};

/* The state, borrowed, reached through what the caller holds; there is no global.
 * A module function has its module (tj_state_of), a method of a heap type of _C its
 * type (tj_state_of_type); the objects made from them carry it, borrowed (the heap
 * type they hold a reference to holds the module): a Trace (t->st, so every tracer
 * operation reaches it through its trace), a CompiledFunction, the arguments being
 * flattened (tj_flat), a plan (the replay path: guards, binding, results) and a
 * TreeDef; deeper helpers take it as their first parameter. */
tj_state *tj_state_of(PyObject *module);
tj_state *tj_state_of_type(PyTypeObject *tp);   /* a heap type of _C (NULL + SystemError) */
/* Raises st's TraceError with the message and the user's source location appended
 * (user code: the innermost frame outside st->skip_dirs), noted in the trace running
 * on this thread (a refusal its code may catch). NULL. */
PyObject *tj_trace_error(tj_state *st, const char *fmt, ...);
/* The same message and user's line, raised as another exception class. NULL. */
PyObject *tj_error_at(tj_state *st, PyObject *cls, const char *fmt, ...);
/* What the user's current line does when it writes ("an assignment into an array
 * (`a[...] = value`)", "the in-place operator `+=`"), else NULL (an exception only
 * on failure). Borrowed static string. */
const char *tj_user_write_site(tj_state *st);
/* Whether the user's current line runs `c[k] op= v`'s in-place operator: the store
 * into c[k] follows at once (CPython: BINARY_OP, the stack shuffle, STORE_SUBSCR). */
int tj_user_augmented_subscript(tj_state *st);
/* "the in-place operator `+=`", ...: in CPython's NB_INPLACE_* order (BINARY_OP's
 * argument minus 13), for the write sites and the tracer's in-place slots. */
enum { TJ_IADD, TJ_IAND, TJ_IFLOORDIV, TJ_ILSHIFT, TJ_IMATMUL, TJ_IMUL, TJ_IMOD, TJ_IOR,
       TJ_IPOW, TJ_IRSHIFT, TJ_ISUB, TJ_ITRUEDIV, TJ_IXOR, TJ_NINPLACE };
extern const char *const tj_inplace_ops[TJ_NINPLACE];
/* Raises st's InternalError (a bug in tracejit). NULL. */
PyObject *tj_internal_error(tj_state *st, const char *fmt, ...);
/* TRACEJIT_DEBUG, read at each compile: 0 quiet; 1 each compile (with its times) and
 * each cache miss (with its retrace reason); 2 also the graph after each pass and the
 * generated C; 3 also the lowered schedule, the optimizing tier's C and its compile
 * failures. */
int tj_debug_level(void);
/* Writes a debug text (NULL: nothing) to sys.stderr; a failure is cleared: debug output
 * never fails a call. */
void tj_debug_write(PyObject *text);
/* An integer environment variable (base 10), `dflt` when unset or empty. */
long long tj_env_int(const char *name, long long dflt);

#include "trace/trace.h"   /* tracing, concrete values, writes */

/* ---- passes (csrc/fuse/, entered through csrc/bridge.c) -------------------- */
/* Runs the pipeline on t's graph (tj_pipeline_run: the plan reads t's slot table after
 * it); appends debug text to `log` (a list of str) when non-NULL. 0, -1 + exception. */
int tj_pipeline(tj_trace *t, tj_schedule *s, PyObject *log);

/* ---- reductions (csrc/trace/reduce.c) -------------------------------------- */
/* Python-facing: x.sum(axis, keepdims, dtype) and friends; mean/var/std/any/all are
 * composed from these. kind: which function (TJ_RED_*); method: 0 numpy function, 1
 * tracer method, 2 ufunc.reduce. tj_reduce_np is the handler of the numpy functions
 * (its datum: the kind). New reference to a Tracer. */
enum { TJ_RED_SUM, TJ_RED_PROD, TJ_RED_MAX, TJ_RED_AMAX, TJ_RED_MIN, TJ_RED_AMIN,
       TJ_RED_ARGMAX, TJ_RED_ARGMIN, TJ_RED_MEAN, TJ_RED_VAR, TJ_RED_STD, TJ_RED_ANY,
       TJ_RED_ALL, TJ_RED_CUMSUM, TJ_RED_CUMPROD, TJ_NRED };
PyObject *tj_apply_reduce(tj_trace *t, int op, PyObject *x, PyObject *axis, int keepdims);
PyObject *tj_reduction_call(tj_trace *t, int kind, PyObject *x, PyObject *args,
                            PyObject *kwargs, int method);
tj_npfunc_fn tj_reduce_np;

/* ---- emit (csrc/emit/, entered through csrc/bridge.c) ---------------------- */
/* tj_emit_c_source's C as a str: new reference; NULL + exception. */
PyObject *tj_emit_c(tj_state *st, const tj_graph *g, const tj_schedule *s);
/* tj_emit_fused_source's C as a str, None when no group qualifies: new reference;
 * NULL + exception. */
PyObject *tj_emit_fused(tj_state *st, const tj_graph *g, const tj_schedule *s);
/* tj_emit_cuda_source's program as a dict (csrc/bridge.c documents its keys); a group
 * the CUDA backend does not compile raises st's TraceError. New reference; NULL +
 * exception. */
PyObject *tj_emit_cuda(tj_state *st, const tj_graph *g, const tj_schedule *s);
/* The lowered schedule (tj_lower_dump) as a str: new reference; NULL + exception. */
PyObject *tj_schedule_text(const tj_graph *g, const tj_schedule *s);

/* ---- kernels (csrc/backend/kernel.c; the compilers behind them: backend/backend.h) */
/* A compiled kernel as the runtime sees it: the table of groups a replay runs in order,
 * and the state that keeps their code alive, its backend's, freed through it. The
 * runtime names no compiler: it holds kernels and calls these. */
typedef struct tj_backend tj_backend;
typedef struct tj_kernel {
    const tj_gdesc *groups;      /* NULL while a compile is under way */
    int n_groups;
    const tj_backend *backend;   /* NULL: an empty kernel */
    void *state;
    /* A kernel that runs itself on a device (CUDA): launches its groups with the bound
     * slots (P: device pointers, or host pointers to by-value scalars; S: byte strides)
     * and supplies its own scratch; the runtime only binds and allocates the results.
     * 0; -1 + exception. GIL held. NULL: the runtime runs `groups` on the CPU. */
    int (*run)(struct tj_kernel *k, void **P, const int64_t **S);
} tj_kernel;
/* Frees k's code and state through its backend; k is left empty. GIL held. */
void tj_kernel_free(tj_kernel *k);
/* A kernel's upgrade: the same groups as another backend's source (the optimizing
 * tier's fused C), compiled when the runtime's policy says (tj_plan_tier_up) and laid
 * over the kernel at the first call after it is ready. */
typedef struct {
    const tj_backend *backend;   /* who compiles `source` */
    PyObject *source;            /* str; NULL: none, or given up (its compile failed, no
                                    compiler): the kernel stays as it is for good */
    tj_kernel next;              /* its compile under way (state set, groups NULL) */
    int done;                    /* laid over: the kernel runs its bodies */
} tj_upgrade;
/* Starts u's compile in the background, unless its backend is switched off for now
 * (asked again at a later call); a backend that cannot compile it gives u up. GIL held. */
void tj_upgrade_start(tj_state *st, tj_upgrade *u);
/* u's compile under way: once ready, laid over k (u->done); failed, u given up. The
 * old table stays valid for runs in progress on other threads. GIL held. */
void tj_upgrade_poll(tj_upgrade *u, tj_kernel *k);
void tj_upgrade_free(tj_upgrade *u);

/* ---- threads (csrc/pool.c) ---------------------------------------------------- */
/* fn(ctx, lo, hi) over [0, units) split across the pool (ranges of at least
 * min_chunk units); runs it alone when the pool is busy or has one thread. No GIL. */
typedef void (*tj_task_fn)(void *ctx, int64_t lo, int64_t hi);
void tj_pool_for(tj_task_fn fn, void *ctx, int64_t units, int64_t min_chunk);
int tj_pool_threads(void);
int tj_pool_set_threads(int n);   /* 0; -1 out of range; -2 the pool is running a job */

/* ---- DLPack tensors: torch and other producers (csrc/dlpack.c) -------------- */
/* Where an array argument comes from; results come back as the first one's library. */
enum { TJ_LIB_NUMPY, TJ_LIB_TORCH, TJ_LIB_DLPACK };
/* A tensor read in place: data, dtype, shape (borrowed from the tensor, valid while it
 * lives), byte strides and device (DLPack's code and index: TJ_DEVICE_CPU or
 * TJ_DEVICE_CUDA, the ones tj_dl_torch_view accepts; it is part of the key). */
#define TJ_DEVICE_CPU 1
#define TJ_DEVICE_CUDA 2         /* DLPack's kDLCUDA: torch CUDA tensors (the CUDA backend) */
typedef struct {
    void *data;
    int dtype, ndim, contig;
    int device, device_id;
    const int64_t *shape;
    int64_t strides[TJ_MAXDIM];
} tj_dlview;
/* TJ_LIB_TORCH for a torch.Tensor (torch looked up by type, never imported),
 * TJ_LIB_DLPACK for another object with __dlpack__, 0 otherwise. No exception. */
int tj_dl_kind(tj_state *st, PyObject *o);
/* Reads a torch tensor in place. 0; 1 with *why (a static message) when it cannot
 * be used (dtype, device, requires grad); -1 + exception. */
int tj_dl_torch_view(tj_state *st, PyObject *o, tj_dlview *v, const char **why);
extern const char tj_dl_why_grad[];   /* *why of a tensor that requires grad under grad mode */
extern const char tj_dl_why_no_grad_read[];   /* a parameter read inside torch.no_grad() */
/* 1 when captures are strict (_torch_autograd's compiled pieces) and o requires grad. */
int tj_dl_strict_refuses(tj_state *st, PyObject *o);
/* 1 a float32/float64 CPU torch tensor requiring grad, 2 one off the CPU, 0 other;
 * -1 + exception (ad/torch_route.c). */
int tj_dl_grad_leaf(tj_state *st, PyObject *o);
/* 1 when o is a torch tensor of one float32/float64 CPU element equal to 1; else 0. */
int tj_dl_is_one(tj_state *st, PyObject *o);
/* Before a replay writes into the torch tensor o (an argument or a captured tensor
 * written by the function): torch's RuntimeError where eager's in-place write raises (a
 * leaf that requires grad, under grad mode or in _torch_autograd's compiled pieces,
 * which run with it off), or one where the autograd route would not see the write (a
 * non-leaf that requires grad there). 0; -1 + exception. */
int tj_dl_write_check(tj_state *st, PyObject *o);
/* After it: the version counters of the n tensors o[] bumped, as torch's in-place
 * operations do (autograd's saved-tensor checks see the write). 0; -1 + exception. */
int tj_dl_bump_versions(tj_state *st, PyObject *const *o, int n);
/* A zero-copy ndarray of another DLPack producer's array (numpy.from_dlpack). New ref. */
PyObject *tj_dl_to_numpy(tj_state *st, PyObject *o);
/* A fresh C-contiguous torch tensor; *data receives its memory. New reference. */
PyObject *tj_dl_torch_empty(tj_state *st, int ndim, const int64_t *shape, int dtype, void **data);
/* The same on CUDA device `device_id`, from torch's caching allocator (the current
 * stream's); *data a device pointer. New reference; NULL + exception. */
PyObject *tj_dl_torch_empty_cuda(tj_state *st, int device_id, int ndim, const int64_t *shape,
                                 int dtype, void **data);
/* torch's current stream of CUDA device `device_id` (a CUstream; NULL the legacy
 * default). 0; -1 + exception. */
int tj_dl_torch_stream(tj_state *st, int device_id, void **stream);
/* torch.Tensor once torch has been seen, else NULL. Borrowed. */
PyObject *tj_dl_torch_type(tj_state *st);
/* torch.get_default_dtype() as TJ_F32 or TJ_F64; -1 + exception. */
int tj_dl_default_float(tj_state *st);
/* The torch dtype object of a tracejit dtype (torch already imported). Borrowed. */
PyObject *tj_dl_torch_dtype(tj_state *st, int dtype);
/* The function that turns an ndarray into the library of type `tp`'s arrays, or NULL
 * without an exception when there is none. New reference. */
PyObject *tj_dl_converter(PyTypeObject *tp);

/* ---- pytrees (csrc/pytree.c) ------------------------------------------------ */
/* The one container rule (csrc/pytree.c's opening comment): every walk of arguments,
 * results and autograd's calls, in C and (through _C.tree_flatten) in Python. */
typedef enum { TJ_TREE_LEAF, TJ_TREE_NONE, TJ_TREE_TUPLE, TJ_TREE_LIST, TJ_TREE_DICT,
               TJ_TREE_NAMEDTUPLE, TJ_TREE_STRUCTSEQ, TJ_TREE_ODICT, TJ_TREE_DDICT,
               TJ_TREE_NS } tj_tree_kind;
tj_tree_kind tj_tree_kind_of(tj_state *st, PyObject *o);

/* Where a leaf sits, for messages: a root ("arg 0", "arg 'scale'", "result"), then
 * [i], [key] or .field (a namedtuple's). Lives on the C stack of the walk. */
typedef struct tj_path {
    const struct tj_path *up;
    const char *root;            /* up == NULL: the root's name */
    Py_ssize_t index;            /* a child's position; the root's number (-1: none) */
    PyObject *key;               /* a dict child's key (the root's name), or NULL */
    PyObject *fields_of;         /* a namedtuple child: the namedtuple type */
    int attr;                    /* key is a namespace's attribute name: shown as .key */
} tj_path;
PyObject *tj_path_str(const tj_path *p);   /* new reference */
/* Raises cls("<path>: <message>"). -1. */
int tj_path_error(PyObject *cls, const tj_path *p, const char *fmt, ...);
/* TypeError: leaf o at p is not what its place needs; `role` says what a leaf there
 * must be ("is a static value and must be hashable"). Names o's type and, for a
 * subclass of tuple, list or dict, the containers tracejit walks. -1. */
int tj_tree_leaf_error(const tj_path *p, PyObject *o, const char *role);

/* One walk, in the rule's order: node() before a container's children (aux: a
 * namedtuple's or structseq's type, a defaultdict's default_factory, else NULL; None is
 * a node of 0 children), key() before each dict child (NULL: not called), leaf() per
 * leaf. A callback's -1 stops the walk. Objects passed are borrowed for the call. */
typedef int (*tj_tree_leaf_fn)(void *ctx, PyObject *o, const tj_path *p);
typedef struct {
    int (*node)(void *ctx, PyObject *o, tj_tree_kind kind, Py_ssize_t n, PyObject *aux,
                const tj_path *p);
    int (*key)(void *ctx, PyObject *key);
    tj_tree_leaf_fn leaf;
} tj_tree_visitor;
int tj_tree_walk(tj_state *st, PyObject *o, const tj_tree_visitor *v, void *ctx,
                 const tj_path *p);

/* A structure: per node and leaf a token (kind | children << 4), in walk order; aux
 * holds, per node in order, its aux object then its keys; st, the state that
 * flattened it (a defaultdict's type, to rebuild one). */
typedef struct {
    tj_state *st;
    int32_t *tokens; int32_t n_tokens, cap_tokens;
    PyObject *aux;               /* list */
    Py_ssize_t n_leaves;
} tj_treedef;
/* Fills *td (which it initializes) with o's structure, calling leaf() per leaf. 0/-1
 * (td then empty). */
int tj_tree_flatten(tj_state *st, PyObject *o, tj_treedef *td, tj_tree_leaf_fn leaf, void *ctx,
                    const tj_path *root);
/* The tree of td's structure holding leaves[0..n_leaves) (borrowed). New reference. */
PyObject *tj_treedef_build(const tj_treedef *td, PyObject *const *leaves);
/* Each leaf's path below root, as a list of str. New reference. */
PyObject *tj_treedef_paths(const tj_treedef *td, const tj_path *root);
void tj_treedef_free(tj_treedef *td);
int tj_pytree_init(PyObject *module, tj_state *st);   /* TreeDef, tree_flatten, tree_leaves */

/* ---- arguments and keys (csrc/args.c) --------------------------------------- */
/* A call's arguments flattened: key words (structure, dtypes, shapes, layouts),
 * leaves (arrays and runtime scalars, borrowed) and static objects (borrowed). */
#define TJ_FLAT_STACK 128
typedef struct tj_flat {
    tj_state *st;                /* borrowed: the compiled function's */
    int64_t *words; int n_words, cap_words;
    PyObject **leaves; int n_leaves, cap_leaves;
    PyObject **statics; int n_statics, cap_statics;
    uint64_t hash;
    int has_tracer;
    int needs_grad;              /* a torch leaf requires grad under grad mode (refused) */
    int complex_arg;             /* a complex array or scalar leaf (refused; _complex.call) */
    int grad_quiet;              /* in: such a leaf's refusal is a bare TypeError (the
                                    caller routes the call to torch.autograd) */
    int out_lib;                 /* TJ_LIB_* of the first array leaf */
    PyTypeObject *out_type;      /* its type (borrowed) */
    tj_dlview *dl; int n_dl, cap_dl;     /* torch leaves' views, in leaf order */
    PyObject **owned; int n_owned, cap_owned;   /* ndarrays made of DLPack producers */
    tj_dlview dl_stack[4];
    PyObject *owned_stack[4];
    int64_t words_stack[TJ_FLAT_STACK];
    PyObject *leaves_stack[TJ_FLAT_STACK / 2];
    PyObject *statics_stack[TJ_FLAT_STACK / 4];
} tj_flat;

typedef struct {
    uint64_t static_mask;        /* positional indices < 64 that are static */
    PyObject *static_argnames;   /* tuple of str */
} tj_argconf;

void tj_flat_init(tj_flat *f, tj_state *st);
void tj_flat_free(tj_flat *f);
int tj_flatten_args(tj_flat *f, const tj_argconf *conf, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames);
/* Where a call runs: the one device of its arrays, the arguments (f) and the torch
 * tensors the trace captured (`captures`, a trace's list; NULL: none); Python and NumPy
 * scalars, and captured NumPy arrays (torch's vocabulary makes its constants with NumPy;
 * a CUDA kernel reads a device copy), go anywhere. TJ_DEVICE_CPU without arrays.
 * 0; -1 + TraceError (arrays on two devices). */
int tj_flat_device(const tj_flat *f, PyObject *captures, int *device, int *id);
/* The arguments with each leaf replaced by a Tracer of t (INPUT/SCALAR leaves, slots
 * 0..n_leaves-1 in leaf order). New references in *targs (tuple), *tkwargs (dict/NULL). */
int tj_trace_args(tj_trace *t, const tj_argconf *conf, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames, PyObject **targs, PyObject **tkwargs);
/* Flattens a traced result into graph outputs and a template (csrc/args.c). */
typedef struct {
    tj_treedef tree;             /* the result's structure */
    int32_t *out_of, cap_out;    /* per leaf: its output position, or -1 (a static) */
    uint8_t *kind_of;            /* per output leaf: TJ_RESULT_* (how eager hands it out) */
    int any_scalar;              /* some leaf is not handed out as the array itself */
    PyObject *statics;           /* list: per leaf its static value (None for outputs) */
} tj_template;
/* A result leaf as eager hands it out: the array (tensor), a NumPy scalar, a Python number */
/* COMPLEX(_SCALAR): a complex result (csrc/trace/complex.c), its output the float array
 * stack([re, im], -1), handed out viewed as complex (a NumPy scalar where eager gives one) */
enum { TJ_RESULT_ARRAY, TJ_RESULT_SCALAR, TJ_RESULT_PYNUMBER, TJ_RESULT_COMPLEX,
       TJ_RESULT_COMPLEX_SCALAR };
int tj_template_from_result(tj_template *tp, tj_trace *t, PyObject *result);
void tj_template_free(tj_template *tp);
/* Builds the result from outs (borrowed array per output position). New reference. */
PyObject *tj_template_build(const tj_template *tp, PyObject *const *outs);

/* ---- plans and replay (csrc/runtime.c) --------------------------------------- */
/* A plan's guard (csrc/guards.c): an assumption of its trace the key does not hold.
 * The kinds before TJ_GUARD_VALUE are checked before the kernel runs; VALUE guards read
 * what the kernel computed (hidden outputs) and are checked before any result is
 * returned. */
enum { TJ_GUARD_PYVALUE, TJ_GUARD_TORCH_DTYPE, TJ_GUARD_CAPTURE, TJ_GUARD_FITS,
       TJ_GUARD_ARG, TJ_GUARD_VALUE };
/* How a value guard compares what a call computes with what its trace read: the truth
 * value (a branch), the truth of a comparison with a constant (`if s > 0:` guards s:
 * no kernel work for the comparison), int() of a float (its truncation), or the exact
 * value (bits; any NaN equals any NaN). */
enum { TJ_VALUE_TRUTH, TJ_VALUE_CMP, TJ_VALUE_INT, TJ_VALUE_EXACT };
typedef struct {
    int kind;
    int index;      /* PYVALUE: into pyvalues; CAPTURE, INT32, ARG: the leaf slot; VALUE:
                       the graph output position of the value */
    int mode, dtype;            /* ARG, VALUE: TJ_VALUE_*, the value's dtype */
    int64_t n;                  /* VALUE: its elements */
    int entry;                  /* ARG, VALUE: into the plan's values */
    const unsigned char *rec;   /* VALUE, ARG of a number: the recorded bytes (borrowed
                                   from values) */
    int cmp_op, cmp_left;       /* CMP: the comparison (TJ_OP_GT, ...), the constant on
                                   its left */
    tj_scalar cmp_val;          /* CMP: the constant, of the value's dtype */
    int rec_truth;              /* TRUTH, CMP: the branch the trace took */
} tj_guard;

typedef struct tj_plan {
    struct tj_plan *next;
    tj_state *st;                /* borrowed: the compiled function's (which holds it) */
    int refs;                    /* the cache's reference + calls running it without the GIL */
    int in_cache;
    int64_t *key; int n_key;
    uint64_t hash;
    PyObject *statics;           /* tuple: the key's static objects */
    int n_leaves;                /* argument leaves = slots [0, n_leaves) */
    int n_slots;
    tj_slotdesc *slots;          /* leaf slots [0, n_leaf_slots) */
    int n_leaf_slots;
    PyObject *captures;          /* list of (kind, where, name, array, node) */
    int64_t (*cap_shape)[TJ_MAXDIM];   /* per capture: shape and ndim at trace time */
    int *cap_ndim;
    unsigned char (*consts)[8];  /* per leaf slot: typed constant value */
    tj_schedule sched;           /* slot shapes and dtypes of scratch and outputs */
    int64_t (*slot_strides)[TJ_MAXDIM];   /* scratch slots: contiguous strides */
    int n_results;               /* graph outputs, in template order */
    tj_template tmpl;
    tj_kernel kernel;            /* what a replay runs: TinyCC's, then the tier's over it */
    tj_upgrade upgrade;          /* the optimizing tier's, when the kernel has fused C */
    int64_t calls, work_done;
    int groups_ran;              /* the groups the latest replay's kernel ran (a value guard
                                    that fails stops it: CompiledFunction._groups_ran) */
    int64_t work;                /* elements computed per call: decides the GIL release */
    PyObject *descr;             /* argument descriptions, for retrace reasons */
    PyObject *source;            /* the generated C */
    PyObject *log;               /* pass log (list of str) */
    int out_lib;                 /* TJ_LIB_*: which library the results belong to */
    int torch_dflt;              /* torch's default dtype the trace assumed, or -1: checked */
    int n_checks;                /* the trace's checks: results [n_results - n_checks,
                                    n_results) are their 0-d bools, not the template's */
    int n_hidden;                /* outputs no result reads: the VALUE guards' values
                                    (before the checks), then the checks' */
    PyObject *check_msgs;        /* NULL or tuple: per check, (exception class, message) */
    PyObject *keyfns;            /* NULL or list: per KEY slot's index, what draws the call's
                                    key (random.c); called at every replay (bind) */
    PyObject *pyvalues;          /* tuple of (container, key, value, label) or NULL: Python
                                    values the trace read as constants (_effects.guards) */
    tj_guard *guards;            /* what a replay checks (csrc/guards.c): [0, first_value)
                                    before the kernel, the VALUE guards after it */
    int n_guards, first_value;
    PyObject *values;            /* NULL or tuple: the trace's values (tj_trace.values) */
    uint8_t *out_hidden;         /* per output slot: read by no result (a check's or a
                                    guard's value): in the replay's own memory, no array */
    int64_t *hidden_off;         /* per output slot: its offset there */
    int64_t hidden_bytes;
    PyObject *out_conv;          /* TJ_LIB_DLPACK: ndarray -> that library, or NULL */
    int n_writes;                /* outputs [n_results - n_hidden - n_writes, n_results -
                                    n_hidden), after the template's: the new contents of the
                                    caller's arrays, written back in place */
    int32_t *write_slot;         /* per write: the leaf slot (argument or capture) it goes to */
    int32_t *out_alias;          /* NULL or per output: a leaf slot whose array it is (a
                                    written argument returned: handed out itself), or -1 */
    int64_t (*out_strides)[TJ_MAXDIM];   /* output slots: contiguous byte strides */
    int device, device_id;       /* where it runs: TJ_DEVICE_CPU, or TJ_DEVICE_CUDA and the
                                    device's ordinal (its kernel runs itself, kernel.run) */
    char *scratch_cache;         /* the scratch block, kept between calls */
    int scratch_busy;            /* a call (maybe without the GIL) is using it */
    PyObject *loops;             /* NULL or list: the compiled loops that run before the
                                    kernel (csrc/loops.c), their results read by its
                                    TJ_SLOT_LOOP leaves */
} tj_plan;

/* compiled loops: csrc/loops.h */
/* The end of t's trace: its loops drop what _loops.py kept for their backward. */
void tj_loops_end_trace(tj_trace *t);

/* A fresh C-contiguous result array; large ones over recycled memory (csrc/blocks.c).
 * New reference; NULL + exception. */
PyObject *tj_new_result(int ndim, const int64_t *shape, int typenum, int itemsize);
/* The recycled blocks behind results of TJ_BLOCK_MIN bytes and more, NumPy's and
 * torch's (csrc/dlpack.c): get and put from any thread, with or without the GIL. */
#define TJ_BLOCK_MIN (1 << 20)
int tj_block_recycling(void);                   /* 0 when TRACEJIT_BLOCK_CACHE_MB=0 */
void *tj_block_get(size_t bytes, size_t *cap);  /* NULL when out of memory */
void tj_block_put(void *p, size_t cap);

/* Advances the plan's optimizing tier: starts the compile once hot, installs it once
 * ready (csrc/runtime.c). GIL held. */
void tj_plan_tier_up(tj_plan *p);

/* 0: *result set; 1: a captured array changed (*reason set, plan is stale); -1: error */
int tj_plan_run(tj_plan *p, const tj_flat *f, PyObject **result, PyObject **reason);
/* The plan's guards from its slots, captures and pyvalues (make_plan). 0/-1. */
int tj_guards_build(tj_plan *p);
/* Whether value guard k (0: the first VALUE guard) holds for the value in its output
 * slot of P: plain C, no GIL needed (the kernel's phases, csrc/runtime.c). */
int tj_guards_value_holds(const tj_plan *p, int k, void *const *P);
/* Checks every guard of p for the call f: 0 all hold (cap_obj[c] is a new reference to
 * capture c as it is now, cap_view[c] its DLPack view when a torch tensor), 1 + *reason
 * stale, -1 + exception. cap_obj has a slot per capture, NULL-filled by the caller, who
 * releases what it holds on every outcome. */
int tj_guards_check(const tj_plan *p, const tj_flat *f, PyObject **cap_obj, tj_dlview *cap_view,
                    PyObject **reason);
/* After the kernel ran (P: the slots' data): 0 every VALUE guard holds, 1 + *reason
 * one failed (nothing the kernel computed may be returned), -1 + exception. */
int tj_guards_check_values(const tj_plan *p, void *const *P, PyObject **reason);
/* A CMP guard's comparison of the value at v (g's dtype) with its constant. */
int tj_guards_compare(const tj_guard *g, const unsigned char *v);
/* What each guard of p assumes, a str each (cache_info().guards, explain()). New ref. */
PyObject *tj_guards_describe(const tj_plan *p);
/* Drops a reference; the plan is freed with its last. Cache removal and runs both
 * hold one, so a plan evicted while another thread runs it lives until that run ends. */
void tj_plan_decref(tj_plan *p);

/* ---- a plan as data (csrc/export.c) -------------------------------------------- */
/* What tracejit.export reads of a CPU plan (a dict: its kernel's source, slots, scratch
 * layout, outputs, guards, checks, writes, captures). New reference; NULL + exception
 * (ValueError for a device plan). */
PyObject *tj_plan_export_info(const tj_plan *p);

/* ---- the compile driver (csrc/compile.c) -------------------------------------- */
/* Notes on stderr, once, that t's compile has taken TRACEJIT_PROGRESS seconds (0.5 by
 * default) and is now `doing`; called between the driver's phases and while tracing. */
void tj_compile_progress(tj_trace *t, const char *doing);
/* A plan for the call f (args, nargs, kwnames as given to the function): traces fn,
 * runs the pipeline, emits and compiles the kernel, starts the optimizing tier where it
 * applies. want_log keeps the pass log in the plan; *seconds gains the time taken.
 * New plan (one reference, not cached); NULL + exception (the traced code's own
 * exception unchanged). */
tj_plan *tj_compile_plan(tj_state *st, PyObject *fn, const tj_argconf *conf, const tj_flat *f,
                         PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                         int want_log, double *seconds);
/* tracejit._explain.Explanation(log, source, tier_source) (NULL arguments: None): what
 * explain() returns and TRACEJIT_DEBUG=2 prints. New reference; NULL + exception. */
PyObject *tj_explanation(PyObject *log, PyObject *source, PyObject *tier_source);
/* The value of node id of the live trace t for the call being traced (t->flat): the
 * graph so far with id as its one output, compiled and run on the call's inputs. A
 * new C-contiguous ndarray of id's dtype and shape; NULL + exception (TraceError when
 * the value depends on a random draw). */
PyObject *tj_compile_value(tj_trace *t, int32_t id);
/* Traces fn for these arguments and runs the passes only (no emitter, no backend):
 * the pass log, a list of str (a section per pass, as explain's). NULL + exception. */
PyObject *tj_compile_passes(tj_state *st, PyObject *fn, const tj_argconf *conf, const tj_flat *f,
                            PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
/* Traces fn for these arguments (any device: the trace needs shapes and dtypes only),
 * runs the passes and emits the CUDA program (tj_emit_cuda's dict); nothing is compiled.
 * NULL + exception (TraceError for what the CUDA backend does not compile yet). */
PyObject *tj_compile_cuda_source(tj_state *st, PyObject *fn, const tj_argconf *conf,
                                 const tj_flat *f, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames);

#endif
