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
int tj_loops_run(tj_plan *p, const tj_flat *f, tj_loopctx *ctx, PyObject **reason);
void tj_loopctx_free(tj_loopctx *ctx);
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
/* Whether tj_compile_value starts from the values computed before (prefix.c; 1). */
extern int tj_prefix_incremental;
extern long long tj_prefix_nodes;   /* nodes compiled for such values, since import */
tj_plan *tj_compile_subplan(tj_trace *t, tj_trace *c, PyObject *res, int tiered);
PyObject *tj_py_loop_begin(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_py_loop_end(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *tj_py_loop_info(PyObject *m, PyObject *o);
PyObject *tj_py_loop_anchor(PyObject *m, PyObject *unused);

#endif
