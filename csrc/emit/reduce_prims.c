/* Reduction primitives, per (reduction, operand dtype). Generated code calls:
 *   tj_ri_OP_dt(acc, idx, n)               acc[0..n) = identity (idx = 0 for arg ops)
 *   tj_rh_OP_dt(acc, idx, v, n, base)      folds v[0..n) into acc[0] (horizontal)
 *   tj_rv_OP_dt(acc, idx, v, n, base)      folds v[i] into acc[i], i < n (vertical)
 *   tj_rf_OP_dt(out, acc, n)               out = acc converted to the result dtype
 * Contract: sums and products accumulate in int64, uint64 or float64 (tj_red_acc_dtype);
 * max/min propagate NaN as NumPy does; argmax/argmin return the first index of the
 * extreme value, a NaN counting as the extreme; `base` is the flat reduced index
 * of v[0], so blocks may come in any order along kept dims but in increasing order
 * along reduced ones. Horizontal folds reassociate in an order written here, not the
 * vectorizer's: TJ_LANES partial folds (element i into lane i % TJ_LANES), folded
 * pairwise, then the tail in order; so any compiler, target or clone (an exported
 * program built by TinyCC, python/tracejit/_export.py) gives the same bits. */
#ifdef TJ_STANDALONE
#include "tjrt.h"
#else
#include "emit/emit.h"
#endif
#include <math.h>

#define TJ_LANES 16   /* folded as 1-4 vectors */
/* A loop over independent lanes (no reduction: its order is the code's), vectorized
 * where gcc's cost model alone declines the selects; TinyCC ignores it. */
#if defined(__GNUC__)
#define TJ_SIMD _Pragma("omp simd")
#else
#define TJ_SIMD   /* (TinyCC: no _Pragma in macros; nothing to vectorize) */
#endif
#define TJ_LANE_LOOP TJ_SIMD for (int l = 0; l < TJ_LANES; l++)
/* lanes[0..TJ_LANES) folded pairwise into lanes[0] */
#define TJ_FOLD_LANES(r, COMB)                                                            \
    for (int w_ = TJ_LANES / 2; w_ >= 1; w_ /= 2)                                         \
        for (int l_ = 0; l_ < w_; l_++) r[l_] = COMB(r[l_], r[l_ + w_]);

#pragma GCC optimize("O3", "no-trapping-math")   /* selects if-converted (prims.c) */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TJ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TJ_CLONES
#endif

#define SIG_I void *restrict acc_, void *restrict idx_, int64_t n
#define SIG_F void *restrict acc_, void *restrict idx_, const void *restrict v_, int64_t n, \
              int64_t base

/* sum and product: a SIMD partial fold per block, added into the accumulator */
#define TJ_FOLD(NAME, OPR, ID, T, A, O, s)                                              \
    void tj_ri_##NAME##_##s(SIG_I) {                                                      \
        A *acc = acc_;                                                                    \
        for (int64_t i = 0; i < n; i++) acc[i] = (A)(ID);                                 \
    }                                                                                     \
    TJ_CLONES void tj_rh_##NAME##_##s(SIG_F) {                                            \
        const T *v = v_;                                                                  \
        A r[TJ_LANES];                                                                    \
        int64_t i = 0;                                                                    \
        for (int l = 0; l < TJ_LANES; l++) r[l] = (A)(ID);                                \
        for (; i + TJ_LANES <= n; i += TJ_LANES)                                          \
            TJ_LANE_LOOP r[l] = r[l] OPR (A)v[i + l];                                     \
        TJ_FOLD_LANES(r, NAME##_COMB)                                                     \
        for (; i < n; i++) r[0] = r[0] OPR (A)v[i];                                       \
        *(A *)acc_ = *(A *)acc_ OPR r[0];                                                 \
    }                                                                                     \
    TJ_CLONES void tj_rv_##NAME##_##s(SIG_F) {                                            \
        A *restrict acc = acc_;                                                           \
        const T *v = v_;                                                                  \
        for (int64_t i = 0; i < n; i++) acc[i] = acc[i] OPR (A)v[i];                      \
    }                                                                                     \
    void tj_rf_##NAME##_##s(void *restrict out_, const void *restrict acc_, int64_t n) {  \
        O *out = out_;                                                                    \
        const A *acc = acc_;                                                              \
        for (int64_t i = 0; i < n; i++) out[i] = (O)acc[i];                               \
    }

#define RSUM_COMB(x, y) ((x) + (y))
#define RPROD_COMB(x, y) ((x) * (y))
#define TJ_FOLDS(T, s, A, O)                                                              \
    TJ_FOLD(RSUM, +, 0, T, A, O, s)                                                       \
    TJ_FOLD(RPROD, *, 1, T, A, O, s)
TJ_FOLDS(bool, b, int64_t, int64_t)
TJ_FOLDS(int8_t, i8, int64_t, int64_t)
TJ_FOLDS(int16_t, i16, int64_t, int64_t)
TJ_FOLDS(int32_t, i32, int64_t, int64_t)
TJ_FOLDS(uint8_t, u8, uint64_t, uint64_t)
TJ_FOLDS(uint16_t, u16, uint64_t, uint64_t)
TJ_FOLDS(uint32_t, u32, uint64_t, uint64_t)
TJ_FOLDS(uint64_t, u64, uint64_t, uint64_t)
TJ_FOLDS(int64_t, i64, int64_t, int64_t)
TJ_FOLDS(float, f32, double, float)
TJ_FOLDS(double, f64, double, double)

/* max and min: BETTER(x, m) says x replaces m; NaN (x != x) always does, and a NaN
 * accumulator is never replaced. */
#define TJ_EXTREME(NAME, BETTER, ID, T, s)                                        \
    void tj_ri_##NAME##_##s(SIG_I) {                                                      \
        T *acc = acc_;                                                                    \
        for (int64_t i = 0; i < n; i++) acc[i] = (T)(ID);                                 \
    }                                                                                     \
    TJ_CLONES void tj_rh_##NAME##_##s(SIG_F) {                                            \
        const T *v = v_;                                                                  \
        T m[TJ_LANES];                                                                    \
        int64_t i = 0;                                                                    \
        for (int l = 0; l < TJ_LANES; l++) m[l] = *(T *)acc_;                             \
        for (; i + TJ_LANES <= n; i += TJ_LANES)                                          \
            TJ_LANE_LOOP m[l] = NAME##_COMB(m[l], v[i + l]);                              \
        TJ_FOLD_LANES(m, NAME##_COMB)                                                     \
        for (; i < n; i++) m[0] = NAME##_COMB(m[0], v[i]);                                \
        *(T *)acc_ = m[0];                                                                \
    }                                                                                     \
    TJ_CLONES void tj_rv_##NAME##_##s(SIG_F) {                                            \
        T *restrict acc = acc_;                                                           \
        const T *v = v_;                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                 \
            T x = v[i], m = acc[i];                                                       \
            acc[i] = (BETTER(x, m) || (x != x)) && m == m ? x : m;                        \
        }                                                                                 \
    }                                                                                     \
    void tj_rf_##NAME##_##s(void *restrict out_, const void *restrict acc_, int64_t n) {  \
        memcpy(out_, acc_, (size_t)n * sizeof(T));                                        \
    }

/* argmax and argmin: the value in acc, its flat reduced index in idx */
#define TJ_ARG(NAME, BETTER, ID, T, s)                                                    \
    void tj_ri_##NAME##_##s(SIG_I) {                                                      \
        T *acc = acc_;                                                                    \
        int64_t *idx = idx_;                                                              \
        for (int64_t i = 0; i < n; i++) { acc[i] = (T)(ID); idx[i] = 0; }                 \
    }                                                                                     \
    void tj_rh_##NAME##_##s(SIG_F) {                                                      \
        const T *v = v_;                                                                  \
        T m = *(T *)acc_;                                                                 \
        int64_t k = *(int64_t *)idx_;                                                     \
        for (int64_t i = 0; i < n; i++) {                                                 \
            T x = v[i];                                                                   \
            if (m == m && (BETTER(x, m) || x != x)) { m = x; k = base + i; }              \
        }                                                                                 \
        *(T *)acc_ = m;                                                                   \
        *(int64_t *)idx_ = k;                                                             \
    }                                                                                     \
    void tj_rv_##NAME##_##s(SIG_F) {                                                      \
        T *restrict acc = acc_;                                                           \
        int64_t *restrict idx = idx_;                                                     \
        const T *v = v_;                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                 \
            T x = v[i], m = acc[i];                                                       \
            if (m == m && (BETTER(x, m) || x != x)) { acc[i] = x; idx[i] = base; }        \
        }                                                                                 \
    }                                                                                     \
    void tj_rf_##NAME##_##s(void *restrict out_, const void *restrict acc_, int64_t n) {  \
        (void)out_; (void)acc_; (void)n;   /* the index is accumulated in place */       \
    }

#define GT(x, m) ((x) > (m))
#define LT(x, m) ((x) < (m))
/* m folded with x: x when better or NaN (a NaN m stays: nothing compares better), so a
 * NaN anywhere is the result; ties (-0.0, 0.0) keep the earlier value */
#define RMAX_COMB(m, x) ((GT(x, m) | ((x) != (x))) ? (x) : (m))
#define RMIN_COMB(m, x) ((LT(x, m) | ((x) != (x))) ? (x) : (m))
#define TJ_EXTREMES(T, s, LO, HI)                                                         \
    TJ_EXTREME(RMAX, GT, LO, T, s)                                                        \
    TJ_EXTREME(RMIN, LT, HI, T, s)                                                        \
    TJ_ARG(RARGMAX, GT, LO, T, s)                                                         \
    TJ_ARG(RARGMIN, LT, HI, T, s)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtautological-compare"   /* x != x on integer types */
#pragma GCC diagnostic ignored "-Wbool-compare"
TJ_EXTREMES(bool, b, 0, 1)
TJ_EXTREMES(int8_t, i8, INT8_MIN, INT8_MAX)
TJ_EXTREMES(int16_t, i16, INT16_MIN, INT16_MAX)
TJ_EXTREMES(int32_t, i32, INT32_MIN, INT32_MAX)
TJ_EXTREMES(uint8_t, u8, 0, UINT8_MAX)
TJ_EXTREMES(uint16_t, u16, 0, UINT16_MAX)
TJ_EXTREMES(uint32_t, u32, 0, UINT32_MAX)
TJ_EXTREMES(uint64_t, u64, 0, UINT64_MAX)
TJ_EXTREMES(int64_t, i64, INT64_MIN, INT64_MAX)
TJ_EXTREMES(float, f32, -INFINITY, INFINITY)
TJ_EXTREMES(double, f64, -INFINITY, INFINITY)
#pragma GCC diagnostic pop

/* Scans in the result dtype, sequentially, as NumPy's accumulate does (so float
 * results are bitwise NumPy's): tj_si_ fills the running values with the identity,
 * tj_sh_ continues one running value along a block, tj_sv_ advances a row of them. */
#define TJ_SCAN(NAME, OPR, ID, T, s)                                                      \
    void tj_si_##NAME##_##s(void *restrict acc_, int64_t n) {                             \
        T *acc = acc_;                                                                    \
        for (int64_t i = 0; i < n; i++) acc[i] = (T)(ID);                                 \
    }                                                                                     \
    void tj_sh_##NAME##_##s(void *restrict out_, void *restrict acc_,                     \
                            const void *restrict v_, int64_t n) {                         \
        T *out = out_, r = *(T *)acc_;                                                    \
        const T *v = v_;                                                                  \
        for (int64_t i = 0; i < n; i++) out[i] = r = (T)(r OPR v[i]);                     \
        *(T *)acc_ = r;                                                                   \
    }                                                                                     \
    TJ_CLONES void tj_sv_##NAME##_##s(void *restrict out_, void *restrict acc_,           \
                                      const void *restrict v_, int64_t n) {               \
        T *restrict out = out_, *restrict acc = acc_;                                     \
        const T *v = v_;                                                                  \
        for (int64_t i = 0; i < n; i++) out[i] = acc[i] = (T)(acc[i] OPR v[i]);           \
    }
#define TJ_SCANS(T, s) TJ_SCAN(CUMSUM, +, 0, T, s) TJ_SCAN(CUMPROD, *, 1, T, s)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wint-in-bool-context"   /* bool products are logical and */
TJ_SCANS(bool, b)
TJ_SCANS(int8_t, i8)
TJ_SCANS(int16_t, i16)
TJ_SCANS(int32_t, i32)
TJ_SCANS(uint8_t, u8)
TJ_SCANS(uint16_t, u16)
TJ_SCANS(uint32_t, u32)
TJ_SCANS(uint64_t, u64)
TJ_SCANS(int64_t, i64)
TJ_SCANS(float, f32)
TJ_SCANS(double, f64)
#pragma GCC diagnostic pop

#ifndef TJ_STANDALONE   /* (an export links the primitives by name) */
#define SYM3(NAME, s)                                                                     \
    {"tj_si_" #NAME "_" #s, (void *)tj_si_##NAME##_##s},                                  \
    {"tj_sh_" #NAME "_" #s, (void *)tj_sh_##NAME##_##s},                                  \
    {"tj_sv_" #NAME "_" #s, (void *)tj_sv_##NAME##_##s},
#define SCANSYMS(s) SYM3(CUMSUM, s) SYM3(CUMPROD, s)

#define SYM4(NAME, s)                                                                     \
    {"tj_ri_" #NAME "_" #s, (void *)tj_ri_##NAME##_##s},                                  \
    {"tj_rh_" #NAME "_" #s, (void *)tj_rh_##NAME##_##s},                                  \
    {"tj_rv_" #NAME "_" #s, (void *)tj_rv_##NAME##_##s},                                  \
    {"tj_rf_" #NAME "_" #s, (void *)tj_rf_##NAME##_##s},
#define SYMS(s) SYM4(RSUM, s) SYM4(RPROD, s) SYM4(RMAX, s) SYM4(RMIN, s) SYM4(RARGMAX, s) \
    SYM4(RARGMIN, s)

#define ALLSYMS(s) SYMS(s) SCANSYMS(s)
const tj_symbol tj_reduce_symbols[] = {
    ALLSYMS(b) ALLSYMS(i8) ALLSYMS(i16) ALLSYMS(i32) ALLSYMS(i64) ALLSYMS(u8) ALLSYMS(u16)
    ALLSYMS(u32) ALLSYMS(u64) ALLSYMS(f32) ALLSYMS(f64) {NULL, NULL}};
#endif
