/* emit.h: the code generators (csrc/emit/), which spell a schedule as C, and what that
 * C links against: the primitives, and the table of groups the runtime runs. No
 * Python, like csrc/ir/ir.h, which it includes; csrc/tracejit.h includes it. */
#ifndef TJ_EMIT_H
#define TJ_EMIT_H

#include <stdbool.h>   /* the primitives' element type of bool arrays */
#include "ir/ir.h"

/* ---- generators (csrc/emit/emit_c.c, csrc/emit/emit_fused.c) -------------- */
/* C source of the kernel into *out (fresh): per group a function over a range of its
 * outer loop, and the table `tj_groups` (one tj_gdesc per group, run in order).
 * 0, or -1 + err. */
int tj_emit_c_source(const tj_graph *g, const tj_schedule *s, tj_sbuf *out, tj_error *err);

/* Per leaf: `bl<l>`, its first element, and `l<l>_<d>`, its byte stride along loop dim
 * d (0 where broadcast); strides are left out for uniform leaves. */
void tj_emit_leaf_setup(tj_sbuf *b, const tj_graph *g, const tj_group *gr, int D);
/* A virtual leaf's value at element offset `offset` (a C expression) of its index space. */
void tj_emit_iota_value(tj_sbuf *b, const tj_leaf *lf, const char *offset);
/* `o<o>_<d>`: output o's byte stride along loop dim d (0 where it does not vary). */
void tj_emit_out_stride(tj_sbuf *b, const tj_group *gr, int o, int d);
/* `T x<id> = <node n of one element>;` through prims.c's element helpers (tj_e_*),
 * as the optimizing tier's loops and the CUDA kernels compute it (emit_fused.c). */
void tj_emit_elem_node(tj_sbuf *b, const tj_graph *g, const tj_node *n);
/* The optimizing tier's C (csrc/emit/emit_fused.c) into *out (fresh): elementwise
 * groups as fused per-element loops, `tj_fused[gi]` their bodies (NULL for the others).
 * 0 (out->buf NULL when no group qualifies), or -1 + err. */
int tj_emit_fused_source(const tj_graph *g, const tj_schedule *s, tj_sbuf *out,
                         tj_error *err);

/* ---- CUDA C (csrc/emit/emit_cuda.c) ------------------------------------------ */
/* A kernel launch of a CUDA program, in order: group `group`'s kernel `tj_g<group>`,
 * or its reduction's second pass `tj_g<group>_fin` (fin). grid 0: nothing to do. */
typedef struct { int group, fin; int64_t grid; int block; int gemm; } tj_cuda_launch;
/* A product cuBLAS may run instead of a launch's tiled kernel (tj_cuda_launch.gemm: its
 * index + 1 in the program's gemms, 0 none; csrc/backend/cublas.c): C[M,N] = A[M,K] B[K,N]
 * over `batch` batches; per operand its slot, its start offsets (a leaf's: elements per
 * slot dim, or flat) and along its roles (A: rows, K, batch; B: K, columns, batch; C:
 * rows, columns, batch) the slot dim read (-1 none, -2 flat) and the step. */
typedef struct { int slot, flat; int64_t off[TJ_MAXDIM]; int8_t map[3]; int64_t step[3]; } tj_gemm_operand;
typedef struct { int dtype; int64_t M, N, K, batch; tj_gemm_operand a, b, c; } tj_cuda_gemm;
/* What every kernel of a program receives, by value (tj_args in the source): the
 * slots' data pointers P[n_slots] (a by-value slot's 8 bytes instead: a scalar argument,
 * a random key), their byte strides S[n_slots][nd], and W, the plan's workspace of
 * work_bytes (reductions' block partials). */
typedef struct {
    tj_sbuf src;
    tj_cuda_launch *launches;
    int n_launches;
    int n_slots, nd;
    int64_t param_bytes, work_bytes;
    tj_cuda_gemm *gemms;         /* products cuBLAS may run (tj_cuda_launch.gemm) */
    int n_gemms;
    int64_t err_off;             /* gathers' error record (4 int64: flag, index, length,
                                    axis; zero before the launches) at W + err_off, or -1 */
    uint8_t *by_value;           /* per slot: 1 when P[slot] holds the value itself */
} tj_cuda_program;
/* The CUDA C++ of a lowered schedule, for NVRTC (csrc/backend/cuda_api.c). 0; -1 + err
 * (a group the CUDA backend does not compile yet names its op). out is filled on 0. */
int tj_emit_cuda_source(const tj_graph *g, const tj_schedule *s, tj_cuda_program *out,
                        tj_error *err);
void tj_cuda_program_free(tj_cuda_program *p);

/* ---- what generated code calls and fills ---------------------------------- */
/* A group's loop over outer-loop units [lo, hi); P[slot] data, S[slot] byte strides. */
typedef void (*tj_range_fn)(void **P, const int64_t **S, int64_t lo, int64_t hi);
typedef struct {
    void (*init)(void **P, const int64_t **S);   /* a reduction's accumulators; or NULL */
    tj_range_fn body;
    void (*fin)(void **P, const int64_t **S);    /* a reduction's results; or NULL */
    int64_t units;                               /* outer-loop units */
    int64_t work;                                /* elements per unit */
    int32_t par;                                 /* units write disjoint memory */
    /* a reduction over the outer loop's dim: its accumulator slot and bytes, and
     * comb(acc, 0, part, n, 0) folding one accumulator into another elementwise
     * (the runtime reduces fixed chunks of units into parts, then parts in order) */
    int32_t acc_slot;
    int64_t acc_n, acc_bytes;                    /* accumulators, and their bytes */
    void (*comb)(void *acc, void *idx, const void *part, int64_t n, int64_t base);
} tj_gdesc;

typedef struct { const char *name; void *fn; } tj_symbol;   /* a symbol for libtcc */
typedef void (*tj_prim_fn)(void *, const void *, const void *, const void *, int64_t);
extern const tj_symbol tj_prim_symbols[];     /* NULL-terminated; csrc/emit/prims.c */
extern const int tj_n_prim_symbols;
extern const tj_symbol tj_reduce_symbols[];   /* NULL-terminated; csrc/emit/reduce_prims.c */
extern const tj_symbol tj_gemm_symbols[];     /* csrc/emit/gemm.c */
int tj_blas_load(const char *path);           /* NumPy's OpenBLAS; 0 or -1 */
extern int64_t tj_blas_min;                   /* multiply-adds from which GEMM calls BLAS */
int tj_blas_load_mkl(const char *path);       /* torch's MKL, when loaded; 0 or -1 */
const char *tj_blas_name(void);               /* "mkl", "openblas" or NULL */
int tj_blas_set_threads(int n);               /* the BLAS's threads; 0, or -1 without one */
int tj_blas_threads(void);                    /* the BLAS's threads, 0 without one */
/* csrc/emit/qgemm.c: int8 products into int32 / int64 (contraction groups of int8) */
void tj_gemm_s8s32(void *, int64_t, int64_t, const void *, int64_t, int64_t, const void *,
                   int64_t, int64_t, int64_t, int64_t, int64_t);
void tj_gemm_s8s64(void *, int64_t, int64_t, const void *, int64_t, int64_t, const void *,
                   int64_t, int64_t, int64_t, int64_t, int64_t);
int tj_qgemm_level(void);                     /* 0 portable, 1 AVX2, 2 AVX-VNNI, 3 AVX-512 VNNI */
int tj_qgemm_cap(int cap);                    /* caps the level (tests); the previous cap */

#endif
