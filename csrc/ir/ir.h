/* ir.h: the map of the compiler's core, which knows no Python: dtypes, the op table,
 * the graph IR with its slot table, and the passes that turn a graph into a schedule
 * (csrc/fuse/). It includes C standard headers only; csrc/tracejit.h, the map of the
 * Python side, includes it. A failing function returns -1 (or NULL) and fills the
 * caller's tj_error, which the tracer or the driver raises as a Python exception. */
#ifndef TJ_IR_H
#define TJ_IR_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TJ_MAXDIM 16      /* most dimensions an array may have */

/* ---- dtypes (csrc/ir/graph.c) --------------------------------------------- */
#include "ops.h"   /* the dtype table and the op table */
/* The dtype table is declared once, TJ_DTYPES in ops.h (shipped with prims.c to the
 * optimizing tier, NVRTC and exported programs, which read no ir.h); its order is this
 * enum's. Every other per-dtype fact (size, names, kind, range) is a column of graph.c's
 * dtype_info, read through the functions below. */
typedef enum {
#define TJ_X(_, T, s, cls, NAME) TJ_##NAME,
    TJ_DTYPES(TJ_X, ~)
#undef TJ_X
    TJ_NDTYPES
} tj_dtype;

int tj_dtype_size(tj_dtype dt);
const char *tj_dtype_name(tj_dtype dt);     /* numpy's name: "float32" */
const char *tj_dtype_suffix(tj_dtype dt);   /* primitive suffix: "f32" */
const char *tj_dtype_ctype(tj_dtype dt);    /* C type in generated code */
const char *tj_dtype_stdtype(tj_dtype dt);  /* its <stdint.h>/<stdbool.h> name: "uint8_t" */
/* NumPy's kind character: 'b' bool, 'i' signed, 'u' unsigned integer, 'f' float */
char tj_dtype_kind(tj_dtype dt);
int tj_dtype_is_float(int dt);              /* float32, float64 */
int tj_dtype_is_unsigned(int dt);           /* uint8 ... uint64 */
/* An integer dtype's least and greatest values (uint64's greatest as its bits) */
int64_t tj_dtype_min(tj_dtype dt);
int64_t tj_dtype_max(tj_dtype dt);
/* Whether the integer v (as int64, or, when is_u64, as uint64) lies in dt's range. */
int tj_dtype_holds(tj_dtype dt, int64_t v, int is_u64);

/* ---- the op table (csrc/ir/ops.h) ----------------------------------------- */
typedef enum {
#define TJ_X(name, np, tn, ar, kind, mask, out, fl, fo, sp) TJ_OP_##name,
    TJ_OPS(TJ_X)
#undef TJ_X
    TJ_NOPS
} tj_opcode;
enum { TJ_K_LEAF, TJ_K_EW, TJ_K_VIEW, TJ_K_CAST, TJ_K_RED, TJ_K_CAT, TJ_K_GATH, TJ_K_SCAN };
enum { TJ_O_SAME, TJ_O_BOOL, TJ_O_F32, TJ_O_F64 };
enum { TJ_F_COMM = 1, TJ_F_COND = 2, TJ_F_COSTLY = 4, TJ_F_EFFECT = 8, TJ_F_INDEX = 16,
       TJ_F_DRAW = 32 };
/* A reduction's or scan's identity (the fold column) */
enum { TJ_ID_ZERO, TJ_ID_ONE, TJ_ID_LOWEST, TJ_ID_HIGHEST };
/* A reduction's or scan's accumulation dtype: the operand's, or int64/float64 */
enum { TJ_ACC_SAME, TJ_ACC_WIDE };
/* the masks: a bit per dtype (1 << TJ_<dtype>) */
#define TJ_M_ALL  0x7ff
#define TJ_M_NUM  0x7fe
#define TJ_M_INTB 0x1ff
#define TJ_M_FLT  0x600
#define TJ_M_INT  0x1fe
#define TJ_M_I64  0x010
#define TJ_M_F64  0x400
#define TJ_CONTRACT_F 1    /* tj_group.contract: float operands (emit/gemm.c) */
#define TJ_CONTRACT_S8 2   /* int8 operands, exact integer sums (emit/qgemm.c) */

typedef struct {
    const char *name;    /* "ADD" */
    const char *numpy;   /* "add" or NULL */
    const char *torch;   /* "sub subtract" or NULL */
    int arity, kind, mask, out, flags;
    int comb;            /* RED, SCAN: the op combining partial results (TJ_OP_ADD, ...); else -1 */
    int ident;           /* RED, SCAN: TJ_ID_* */
    int acc;             /* RED, SCAN: TJ_ACC_* */
} tj_opinfo;
extern const tj_opinfo tj_ops[TJ_NOPS];

/* Whether op is a pure function of its operands (no EFFECT flag): what fold, CSE,
 * simplify and the emitters' loop-invariant hoisting ask before they fold, merge,
 * rewrite or move a node, and fuse before it recomputes one in several groups. */
int tj_op_pure(int op);
/* Tests only (_C._test_mark_effect): op (or -1: none) counts as having EFFECT. */
void tj_op_test_effect(int op);
/* A reduction whose partial results over chunks of its reduced elements combine with
 * its combiner in any grouping (sum, product, max, min; not argmax/argmin, whose
 * index needs the chunks' order): the runtime may split it (emit_c.c), the tier
 * folds it in its loop (emit_fused.c). */
int tj_red_splittable(int op);
/* The dtype a reduction accumulates in for a given operand dtype (the fold column). */
int tj_red_acc_dtype(int op, int in_dtype);
/* The dtype of a reduction's result (NumPy's rule). */
int tj_red_out_dtype(int op, int in_dtype);

typedef union { double f; int64_t i; } tj_scalar;
/* One element of op through its primitive (csrc/emit/prims.c: the kernel's own code,
 * so the value is the one the compiled loop computes): operands in[0..arity) of loop
 * dtype `dtype` (WHERE's condition: bool), result of dtype `out_dtype` (CAST: any; else
 * what the op table says). Floats in .f, ints and bools in .i. -1 when no primitive
 * exists. */
int tj_eval_scalar(int op, int dtype, int out_dtype, const tj_scalar *in, tj_scalar *out);
/* One element of dtype at p as a tj_scalar (ints in .i, uint64 as its bits; floats in .f)
 * and back (csrc/emit/prims.c). */
tj_scalar tj_scalar_load(int dtype, const void *p);
void tj_scalar_store(int dtype, void *p, tj_scalar v);

/* ---- errors and text (csrc/ir/graph.c) ------------------------------------ */
/* Why a call failed. The raiser (tj_error_raise, csrc/bridge.c) picks the exception:
 * NOMEM MemoryError; VALUE ValueError with msg as NumPy words it; SHAPE ValueError with
 * msg and the user's source line, a refusal of the trace as a TraceError would be;
 * INTERNAL InternalError (a bug in tracejit). */
enum { TJ_ERR_NONE, TJ_ERR_NOMEM, TJ_ERR_VALUE, TJ_ERR_SHAPE, TJ_ERR_INTERNAL };
typedef struct {
    int kind;
    char msg[1024];
} tj_error;
/* Fills e (msg from fmt, truncated to fit). Returns -1, for `return tj_error_set(...)`. */
int tj_error_set(tj_error *e, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A growing string (the emitters' output, the pass log: a line per '\n'); `failed` once
 * an allocation failed. buf is malloc'd: free() it. */
typedef struct { char *buf; size_t len, cap; int failed; } tj_sbuf;
void tj_put(tj_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the graph IR (csrc/ir/graph.c) --------------------------------------- */
/* Plain data: nodes in one growable array, operands by index, shape and dtype
 * known for every node. A node's index is greater than its operands'. */
typedef struct {
    int16_t op;
    uint8_t dtype;
    uint8_t weak;          /* a Python scalar: weakly typed for promotion; 2: an int
                              beyond int64, held as float64 (usable with floats only);
                              3: an int in (INT64_MAX, UINT64_MAX], held as uint64 */
    uint8_t ndim;
    uint8_t flat;          /* VIEW: reads its operand flat (voff[0] counts elements) */
    int8_t perm[TJ_MAXDIM];/* VIEW: output dim d reads operand dim perm[d]; -1: a new or
                              broadcast dim; -2: the operand read flat (row-major) */
    int32_t in[3];
    int32_t slot;          /* leaves: the data slot they read */
    uint32_t axes;         /* RED: bit d set when operand dim d is reduced; COPY:
                              TJ_COPY_DETACH marks a detach (csrc/ad/node.c),
                              TJ_COPY_ALIAS an alias copy */
    tj_scalar value;       /* CONST; GATHER: value.i is the axis an IndexError names */
    int64_t shape[TJ_MAXDIM];
    int64_t vstep[TJ_MAXDIM];   /* VIEW: step along perm[d] (elements when flat) */
    int64_t voff[TJ_MAXDIM];    /* VIEW: start index per operand dim; voff[0] when flat */
} tj_node;

/* A COPY's axes when the copy is a detach (torch's Tensor.detach): autodiff's walk
 * stops there; the passes treat it as any COPY (simplify forwards it to its operand). */
#define TJ_COPY_DETACH 1u
/* A COPY's axes when the copy stands for its operand's memory in the trace's write
 * rules (csrc/trace/views_strided.c: a row-major copy of a strided array a strided view
 * reads, where eager's view reads the array itself): writes through the view reach the
 * operand. The passes and autodiff treat it as any COPY. */
#define TJ_COPY_ALIAS 2u

/* What a data slot holds at replay: an argument leaf, a captured array, a constant, a
 * random generator's key for this call (an int64 drawn at every call), or a compiled
 * loop's (csrc/loops.c): index >= 0, a result of the call's loops, computed before the
 * kernel runs; index < 0, an input of a loop's body while it is traced (dead outside). */
enum { TJ_SLOT_ARG, TJ_SLOT_CAPTURE, TJ_SLOT_CONST, TJ_SLOT_KEY, TJ_SLOT_LOOP };
typedef struct {
    int kind;
    int index;               /* ARG: leaf index; CAPTURE: index in captures; KEY: source */
    int dtype;
    uint8_t contig;          /* ARG/CAPTURE arrays: C-contiguous (part of the key) */
    uint8_t fits;            /* ARG Python int used as this narrower integer dtype (0:
                                none): its range is checked at each call */
    uint8_t torch;           /* ARG/CAPTURE: a torch tensor, read through DLPack */
    tj_scalar value;         /* CONST */
} tj_slotdesc;

typedef struct {
    tj_node *nodes;
    int32_t n, cap;
    int32_t *outputs;      /* node ids, in result order (may repeat) */
    int32_t n_out, cap_out;
    int32_t n_hidden;      /* outputs [n_out - n_hidden, n_out) are read by the runtime
                              only (guards' values, checks), never handed out */
    int32_t n_guard_out;   /* the first n_guard_out of those are value guards' (the trace's
                              order): fuse runs each one's work before what follows it */
    tj_slotdesc *slots;    /* the data slots leaves read; fold and simplify add constants,
                              so a plan reads the table once the passes ran */
    int32_t n_slots, cap_slots;
} tj_graph;

/* Whether r (an RSUM into int32/int64) sums x, a product of two int8 values each cast
 * to x's dtype (int16/int32): an int8 GEMM's pattern (exact sums; lower.c's
 * TJ_CONTRACT_S8, whose casts fuse.c keeps in the product's group). */
int tj_s8_product(const tj_graph *g, const tj_node *x, const tj_node *r);

/* Doubles a malloc'd array's capacity (at least `min_cap`). 0, or -1: out of memory. */
int tj_grow(void **buf, int32_t *cap, int32_t min_cap, size_t elem);
int tj_same_value(const tj_graph *g, int32_t a, int32_t b, int depth);
int tj_graph_init(tj_graph *g);
void tj_graph_free(tj_graph *g);
/* Each returns the new node's index (slot's, 0 for an output), or -1 + err. */
int32_t tj_graph_add(tj_graph *g, const tj_node *proto, tj_error *err);
/* Adds an `op` node over node `src` alone, with src's dtype and shape (COPY, or a
 * reduction over `axes`). */
int32_t tj_graph_add_over(tj_graph *g, int32_t src, int op, uint32_t axes, tj_error *err);
int tj_graph_add_output(tj_graph *g, int32_t id, tj_error *err);
int tj_graph_add_slot(tj_graph *g, const tj_slotdesc *d, tj_error *err);
int64_t tj_node_size(const tj_node *n);
/* The dtype a computed node's primitive is instantiated for (its loop's). */
int tj_node_loop_dtype(const tj_graph *g, const tj_node *n);
/* "(3, 4)", "(5,)", "()" into buf (truncated to cap) */
void tj_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);
/* NumPy broadcasting of shapes; -1 + a SHAPE error naming both shapes */
int tj_shape_broadcast(const tj_node *a, const tj_node *b, int *ndim, int64_t *shape,
                       tj_error *err);
/* Appends a readable listing of g to `log`, a line each. */
void tj_graph_dump(const tj_graph *g, const char *title, tj_sbuf *log);

/* ---- an arena (csrc/ir/arena.c) -------------------------------------------- */
/* Blocks that live and die together (a schedule's groups, leaves, slot tables): each
 * allocation is zeroed and 16-byte aligned; tj_arena_free releases them all at once.
 * The struct may be copied to move ownership (the copy then frees). */
typedef struct tj_arena_chunk tj_arena_chunk;
typedef struct { tj_arena_chunk *head; } tj_arena;
void *tj_arena_alloc(tj_arena *a, size_t bytes);   /* NULL: out of memory */
void tj_arena_free(tj_arena *a);

/* ---- passes (csrc/fuse/) --------------------------------------------------- */
#define TJ_BLOCK 512      /* elements per block in generated loops */

/* A value a group reads: from a slot (a leaf, a view of one, or a materialized node),
 * or, virtually, the loop index (an IOTA node: slot -1, its value the offset its
 * steps give, never a load). fuse fills node, base, slot and gather; lowering the
 * access (map, step, off, flat, the gathered dim's) and how it is read. */
typedef struct {
    int32_t node;                /* the node read */
    int32_t base;                /* the node whose memory the slot holds */
    int32_t slot;                /* the slot read; -1 for a virtual leaf */
    int8_t map[TJ_MAXDIM];       /* loop dim -> slot dim, -1 broadcast, -2 read flat */
    int64_t step[TJ_MAXDIM];     /* per loop dim: the step along that slot dim */
    int64_t off[TJ_MAXDIM];      /* start index per slot dim (off[0] when flat) */
    uint8_t flat;                /* read flat (off[0] counts elements) */
    int8_t gather;               /* read by a GATHER along this loop dim (map -1 there), or
                                    -1 for an ordinary leaf */
    int8_t gsrc;                 /* gather: the slot dim indexed (-1, -2 flat) */
    int64_t gstep, glen;         /* gather: the step along it, the indexed dim's length */
    int64_t vstride[TJ_MAXDIM];  /* virtual leaf: element stride per dim of its IOTA
                                    (C order), as a slot's byte strides are */
    int64_t vdiv, vmod;          /* virtual leaf: value = offset / vdiv (% vmod if > 0) */
    uint8_t uniform;             /* lowering: the same element at every iteration */
    uint8_t row;                 /* lowering: not uniform, but the same along the loop's
                                    innermost dim (read once per row by the tier) */
} tj_leaf;

/* A value a group writes: node `node` into slot `slot` through map (loop dim -> slot
 * dim, -1 where it does not vary). */
typedef struct {
    int32_t node, slot;
    int8_t map[TJ_MAXDIM];
} tj_out;

/* Lowering's loop nest of a group (csrc/fuse/lower.c), every scheduling decision the
 * emitters spell: D dims (at least 1), the innermost in blocks of `block` elements,
 * or, when short, 2-D blocks of `rows` rows of it (twod; the blocked dim bd); the
 * outer loop split across threads in `units` of `step`. */
typedef struct {
    int D, twod, bd;
    int64_t shape[TJ_MAXDIM], total, inner, rows, step, units, work;
    int64_t block;               /* elements of one block (a uniform value's buffer) */
    int par;                     /* units write disjoint memory: threads may split them */
    int chunked;                 /* a sum/prod/max/min over the outer loop's dim: the
                                    runtime reduces chunks of units into separate
                                    accumulators (acc_n of acc_dtype), folded in order */
    int64_t acc_n;
    int acc_dtype;
    int horizontal;              /* a reduction or scan along the innermost loop dim */
    int fused;                   /* the optimizing tier fuses this group per element */
    int cols;                    /* ... and its column sums of short rows interchanged */
    int draws;                   /* ... and its draws (DRAW ops) filled in tiles of this
                                    many consecutive counters (0: one element at a time) */
} tj_loop;

/* A fused group: one loop nest over `shape` computing `nodes` in order. */
typedef struct {
    int ndim;
    int64_t shape[TJ_MAXDIM];
    int32_t *nodes, n_nodes;     /* computed nodes, topological */
    tj_leaf *leaves;             /* values read (gathered data: a leaf per node and dim) */
    int n_leaves;
    tj_out *outs;                /* values written */
    int n_outs;
    int32_t red;                 /* a reduction group: the RED node (its only out), or -1;
                                    iteration shape is its operand's, outs[0].map is -1 on
                                    the reduced dims */
    int32_t acc_slot;            /* reduction: accumulator slot (output's shape, acc dtype);
                                    a scan (red is a SCAN node): the running value per
                                    position of the other dims, read through amap */
    int8_t amap[TJ_MAXDIM];      /* scan: iteration dim -> accumulator dim, -1 on the axis */
    int contract;                /* a reduction that is a GEMM: sum over the last dim of
                                    a product of leaves mm_a and mm_b (see lower.c);
                                    TJ_CONTRACT_S8: of int8 leaves widened to int16/32,
                                    summed in int32/64 (csrc/emit/qgemm.c) */
    int mm_a, mm_b;              /* leaf indices of the two factors */
    int mm_m, mm_n;              /* iteration dims of rows and columns, or -1 */
    int32_t cat;                 /* a part of a concatenation: the CONCAT node whose
                                    buffer outs[0] is written into, or -1 */
    int64_t cat_off;             /* its start along the CONCAT's axis */
    tj_loop loop;                /* lowering's */
    uint8_t *uniform;            /* lowering's, per node of `nodes`: loop-invariant,
                                    computed once before the loop */
} tj_group;

typedef struct {
    tj_arena arena;              /* every array below and the groups' */
    tj_group *groups;
    int n_groups;
    int32_t *mat_slot;           /* per node: slot it is materialized in, or -1 */
    int32_t *acc_slot;           /* per node: a reduction's accumulator slot, or -1 */
    int n_slots;                 /* all slots: leaves, scratch, outputs */
    int first_scratch, n_scratch;
    int32_t *out_slot_of;        /* per graph output position: its slot */
    int32_t *out_same_as;        /* per graph output position: -1: its slot's array; k >= 0:
                                    position k's object (the trace returned one value twice);
                                    -2: a copy of its slot's array (distinct traced values the
                                    passes made one node stay distinct arrays) */
    int64_t scratch_bytes;       /* scratch bytes: fuse's unshared sum, memplan's peak */
    int64_t *scratch_off;        /* per scratch slot (slot - first_scratch): its byte offset
                                    in the call's scratch block (memplan.c) */
    int *slot_dtype;             /* per scratch and output slot (indexed by slot) */
    int *slot_ndim;
    int64_t (*slot_shape)[TJ_MAXDIM];
    int first_out;               /* output slots are [first_out, n_slots) */
    int32_t *guard_end;          /* per value guard k (g->n_guard_out of them): the groups
                                    [0, guard_end[k]) compute its value and what earlier
                                    guards' need, nothing that only later work needs: the
                                    runtime compares guard k there, before the rest runs */
    int n_guard_end;
} tj_schedule;

/* fold and simplify create constants, each read through a new slot of g's table. */
int tj_pass_fold(tj_graph *g, tj_error *err);
int tj_pass_simplify(tj_graph *g, tj_error *err);
int tj_pass_cse(tj_graph *g, tj_error *err);
int tj_pass_dce(tj_graph *g, tj_error *err);
int tj_pass_fuse(const tj_graph *g, tj_schedule *s, tj_error *err);
int tj_pass_memplan(tj_schedule *s, tj_error *err);
/* Lowering (csrc/fuse/lower.c): each group's access, loop nest and strategies. */
int tj_pass_lower(const tj_graph *g, tj_schedule *s, tj_error *err);
/* The exponent of POW node n when it is a one-element constant: 0, else -1. */
int tj_pow_const(const tj_graph *g, const tj_node *n, double *e);
/* The lowered schedule, a few lines per group, into `log`. */
void tj_lower_dump(const tj_graph *g, const tj_schedule *s, tj_sbuf *log);
void tj_memplan_dump(const tj_schedule *s, tj_sbuf *log);
void tj_schedule_free(tj_schedule *s);
/* Runs the pipeline on g (whose slot table the passes may extend, so a plan reads it
 * after); appends debug text to `log` when non-NULL. */
int tj_pipeline_run(tj_graph *g, tj_schedule *s, tj_sbuf *log, tj_error *err);

#endif
