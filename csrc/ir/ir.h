/* ir.h: the map of the compiler's core, which knows no Python: dtypes, the op table
 * and the graph IR. It includes C standard headers only; csrc/tracejit.h, the map of
 * the Python side, includes it. */
#ifndef TJ_IR_H
#define TJ_IR_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TJ_MAXDIM 16      /* most dimensions an array may have */

/* ---- dtypes (csrc/ir/graph.c) --------------------------------------------- */
typedef enum { TJ_BOOL, TJ_I32, TJ_I64, TJ_F32, TJ_F64, TJ_NDTYPES } tj_dtype;

int tj_dtype_size(tj_dtype dt);
const char *tj_dtype_name(tj_dtype dt);     /* numpy's name: "float32" */
const char *tj_dtype_suffix(tj_dtype dt);   /* primitive suffix: "f32" */
const char *tj_dtype_ctype(tj_dtype dt);    /* C type in generated code */

/* ---- the op table (csrc/ir/ops.h) ----------------------------------------- */
#include "ops.h"
typedef enum {
#define TJ_X(name, np, ar, kind, mask, out, fl, sp) TJ_OP_##name,
    TJ_OPS(TJ_X)
#undef TJ_X
    TJ_NOPS
} tj_opcode;
enum { TJ_K_LEAF, TJ_K_EW, TJ_K_VIEW, TJ_K_CAST, TJ_K_RED, TJ_K_CAT, TJ_K_GATH, TJ_K_SCAN };
enum { TJ_O_SAME, TJ_O_BOOL };
enum { TJ_F_COMM = 1, TJ_F_COND = 2, TJ_F_COSTLY = 4 };
#define TJ_M_ALL  0x1f
#define TJ_M_NUM  0x1e
#define TJ_M_INTB 0x07
#define TJ_M_FLT  0x18
#define TJ_M_INT  0x06
#define TJ_M_F64  0x10
typedef struct {
    const char *name;    /* "ADD" */
    const char *numpy;   /* "add" or NULL */
    int arity, kind, mask, out, flags;
} tj_opinfo;
extern const tj_opinfo tj_ops[TJ_NOPS];

/* ---- the graph IR (csrc/ir/graph.c) --------------------------------------- */
/* Plain data: nodes in one growable array, operands by index, shape and dtype
 * known for every node. A node's index is greater than its operands'. */
typedef union { double f; int64_t i; } tj_scalar;

typedef struct {
    int16_t op;
    uint8_t dtype;
    uint8_t weak;          /* a Python scalar: weakly typed for promotion; 2: an int
                              beyond int64, held as float64 (usable with floats only) */
    uint8_t ndim;
    uint8_t flat;          /* VIEW: reads its operand flat (voff[0] counts elements) */
    int8_t perm[TJ_MAXDIM];/* VIEW: output dim d reads operand dim perm[d]; -1: a new or
                              broadcast dim; -2: the operand read flat (row-major) */
    int32_t in[3];
    int32_t slot;          /* leaves: the data slot they read */
    uint32_t axes;         /* RED: bit d set when operand dim d is reduced; COPY:
                              TJ_COPY_DETACH marks a detach (csrc/ad/node.c) */
    tj_scalar value;       /* CONST; GATHER: value.i is the axis an IndexError names */
    int64_t shape[TJ_MAXDIM];
    int64_t vstep[TJ_MAXDIM];   /* VIEW: step along perm[d] (elements when flat) */
    int64_t voff[TJ_MAXDIM];    /* VIEW: start index per operand dim; voff[0] when flat */
} tj_node;

/* A COPY's axes when the copy is a detach (torch's Tensor.detach): autodiff's walk
 * stops there; the passes treat it as any COPY (simplify forwards it to its operand). */
#define TJ_COPY_DETACH 1u

typedef struct {
    tj_node *nodes;
    int32_t n, cap;
    int32_t *outputs;      /* node ids, in result order (may repeat) */
    int32_t n_out, cap_out;
} tj_graph;

int tj_graph_init(tj_graph *g);
int64_t tj_node_size(const tj_node *n);
/* "(3, 4)", "(5,)", "()" into buf (truncated to cap) */
void tj_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif
