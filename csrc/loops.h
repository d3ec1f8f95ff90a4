/* loops.h: compiled loops (csrc/loops.c), what the driver, the runtime and the module
 * call. Included after tracejit.h. */
#ifndef TJ_LOOPS_H
#define TJ_LOOPS_H
#include "tracejit.h"

/* ---- compiled loops (csrc/loops.c) ------------------------------------------ */
/* What the stages of one call share: the loops' results (ndarrays, by TJ_SLOT_LOOP
 * index) and the call's random keys, drawn once (per KEY slot index). */
typedef struct {
    PyObject **vals;
    int n_vals;
    uint64_t *keys;
    int n_keys;
} tj_loopctx;
/* Runs p's loops for call f into ctx (allocated here; tj_loopctx_free). 0; 1 + *reason
 * (a loop's operands' plan found a captured array changed); -1 + exception. */
int tj_loops_run(tj_plan *p, const tj_flat *f, PyObject *const *cap, tj_loopctx *ctx,
                 PyObject **reason);
void tj_loopctx_free(tj_loopctx *ctx);
/* Drops p's loops whose results nothing of the call reads (loops.c). 0; -1 + exception. */
int tj_loops_prune(tj_plan *p);
/* A TraceError where a result of t reads what a loop's body computed (a write into an
 * outer array, a check or a value stored from inside the body). 0/-1. */
int tj_loops_check(tj_trace *t);
/* Whether the loop whose results hold TJ_SLOT_LOOP index `val` draws random numbers
 * (its body, or its operands' plan); 0 for a body's input (val < 0). */
int tj_loops_draw(PyObject *loops, int val);
/* A line per loop of `loops` (NULL: none) into the pass log `log` (explain()). 0/-1. */
int tj_loops_log(PyObject *loops, PyObject *log);
/* tj_plan_run with the loops' context of the call (NULL: p runs its own loops first). */
int tj_plan_run_ctx(tj_plan *p, const tj_flat *f, const tj_loopctx *lc, PyObject **result,
                    PyObject **reason);
/* The kernel's groups in order on bound slots (ns: the schedule's slots; P[ns] the error
 * record), large groups split across the pool when may_split. 0; -1 out of memory. */
int tj_kernel_run(const tj_kernel *k, int ns, void **P, const int64_t **S, int may_split);
/* Its groups [g0, g1) only (a plan's phases between value guards). */
int tj_kernel_run_groups(const tj_kernel *k, int ns, void **P, const int64_t **S, int may_split,
                         int g0, int g1);
/* A plan of trace c (a graph made while t traced: a value's prefix, a loop's operands or
 * body) whose result is `res` (Tracers of c), for t's call; results are ndarrays.
 * tiered: with the optimizing tier's upgrade (a loop's body, run often). New plan; NULL +
 * exception. */
tj_plan *tj_compile_subplan(tj_trace *t, tj_trace *c, PyObject *res, int tiered);
/* Whether tj_compile_value starts from the values computed before (prefix.c; 1). */
extern int tj_prefix_incremental;
extern long long tj_prefix_nodes;   /* nodes compiled for such values, since import */
PyObject *tj_py_loop_begin(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_py_loop_end(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_py_loop_info(PyObject *m, PyObject *o);
PyObject *tj_py_loop_anchor(PyObject *m, PyObject *unused);

/* ---- one loop's record (loops.c makes it, loops_run.c runs it) ----------------- */
/* Where a loop reads an operand: its operands' plan's results, or in place (an ndarray
 * argument, a captured ndarray as the call's guards read it, an earlier loop's result). */
enum { TJ_SRC_PRE, TJ_SRC_ARG, TJ_SRC_CAPTURE, TJ_SRC_LOOP };
typedef struct {
    int kind;                /* 0 scan, 1 fori_loop, 2 while_loop */
    int64_t n;               /* steps; -1: while the last carry (a bool) is true */
    int reverse;             /* scan: from the last x to the first */
    int32_t start, end;      /* its body's region in the outer graph */
    int n_carry, n_x, n_y, n_ops;
    int first_val;           /* its results' TJ_SLOT_LOOP indices: carries, then ys */
    int uses_keys;           /* its body draws random numbers */
    int draws;               /* ... or its operands' plan does (an earlier loop's included) */
    int64_t (*yshape)[TJ_MAXDIM];   /* per y: one step's shape, ndim and dtype */
    int *yndim, *ydtype;
    tj_plan *pre;            /* () -> (carries' initial values, xs, operands), those not
                                read in place; NULL when every one is */
    int32_t *operands;       /* their nodes in the outer graph (n_carry + n_x + n_ops) */
    uint8_t *src_kind;       /* per operand: TJ_SRC_*, where the loop reads it from */
    int32_t *src_index;      /* ... its position among pre's results, the argument leaf,
                                the capture or the LOOP value */
    int32_t first_res;       /* the node of its first result (the others follow) */
    PyObject *info;          /* what _loops.py keeps for its backward while t traces, or NULL */
    tj_plan *body;           /* (carries, x, operands, step) -> (carries, ys) */
} looprec;

static inline looprec *tj_loop_rec(PyObject *loops, Py_ssize_t i) {
    return PyCapsule_GetPointer(PyList_GET_ITEM(loops, i), "tracejit.loop");
}

#endif
