/* The GEMM primitives contraction groups call: out[m, n] = sum_k a[m, k] * b[k, n],
 * every operand at arbitrary byte strides (0 where broadcast). Compiled with SIMD
 * (target_clones) and fused multiply-add; float32 accumulates in float32, as BLAS
 * does. Contract: out never aliases a or b; M, N, K may be 0 (an empty sum is 0).
 * Rows of b are packed contiguously first when they are strided, and four rows of
 * out share each packed row of b. */
#include "tracejit.h"

#pragma GCC optimize("O3", "fp-contract=fast")

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TJ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TJ_CLONES
#endif

#define TJ_NB 256   /* columns of out computed together */

#define TJ_GEMM(T, s)                                                                      \
    TJ_CLONES static void matvec_##s(char *o, int64_t os_m, const char *a, int64_t as_m,     \
                                     const char *b, int64_t bs_k, int64_t M, int64_t K) {   \
        T stack[4096], *x = stack;                                                         \
        if (K > 4096 && !(x = PyMem_RawMalloc((size_t)K * sizeof(T)))) x = NULL;           \
        for (int64_t k = 0; x && k < K; k++) x[k] = *(const T *)(b + k * bs_k);            \
        for (int64_t m = 0; m < M; m++) {                                                  \
            const T *row = (const T *)(a + m * as_m);                                      \
            T acc = 0;                                                                     \
            if (x) {                                                                       \
                _Pragma("omp simd reduction(+:acc)")                                       \
                for (int64_t k = 0; k < K; k++) acc += row[k] * x[k];                      \
            } else {                                                                       \
                for (int64_t k = 0; k < K; k++) acc += row[k] * *(const T *)(b + k * bs_k); \
            }                                                                              \
            *(T *)(o + m * os_m) = acc;                                                    \
        }                                                                                  \
        if (x != stack) PyMem_RawFree(x);                                                  \
    }                                                                                      \
    /* without memory for packing: the plain triple loop */                                \
    static void naive_##s(char *o, int64_t os_m, int64_t os_n, const char *a, int64_t as_m,  \
                          int64_t as_k, const char *b, int64_t bs_k, int64_t bs_n,         \
                          int64_t M, int64_t N, int64_t K) {                               \
        for (int64_t m = 0; m < M; m++)                                                    \
            for (int64_t j = 0; j < N; j++) {                                              \
                T acc = 0;                                                                 \
                for (int64_t k = 0; k < K; k++)                                            \
                    acc += *(const T *)(a + m * as_m + k * as_k) *                         \
                           *(const T *)(b + k * bs_k + j * bs_n);                          \
                *(T *)(o + m * os_m + j * os_n) = acc;                                     \
            }                                                                              \
    }                                                                                      \
    TJ_CLONES static void gemm_panel_##s(char *o, int64_t os_m, int64_t os_n, const char *a, \
                                         int64_t as_m, int64_t as_k, const T *bp,          \
                                         int64_t M, int64_t n, int64_t K) {                \
        T acc[4][TJ_NB];                                                                   \
        for (int64_t m = 0; m < M; m += 4) {                                               \
            int64_t rows = M - m < 4 ? M - m : 4;                                          \
            for (int r = 0; r < 4; r++)                                                    \
                for (int64_t j = 0; j < n; j++) acc[r][j] = 0;                             \
            for (int64_t k = 0; k < K; k++) {                                              \
                const T *brow = bp + k * n;                                                \
                T a0 = *(const T *)(a + m * as_m + k * as_k);                              \
                T a1 = rows > 1 ? *(const T *)(a + (m + 1) * as_m + k * as_k) : 0;         \
                T a2 = rows > 2 ? *(const T *)(a + (m + 2) * as_m + k * as_k) : 0;         \
                T a3 = rows > 3 ? *(const T *)(a + (m + 3) * as_m + k * as_k) : 0;         \
                for (int64_t j = 0; j < n; j++) {                                          \
                    T bv = brow[j];                                                        \
                    acc[0][j] += a0 * bv;                                                  \
                    acc[1][j] += a1 * bv;                                                  \
                    acc[2][j] += a2 * bv;                                                  \
                    acc[3][j] += a3 * bv;                                                  \
                }                                                                          \
            }                                                                              \
            for (int r = 0; r < rows; r++) {                                               \
                char *orow = o + (m + r) * os_m;                                           \
                if (os_n == (int64_t)sizeof(T))                                            \
                    memcpy(orow, acc[r], (size_t)n * sizeof(T));                           \
                else                                                                       \
                    for (int64_t j = 0; j < n; j++) *(T *)(orow + j * os_n) = acc[r][j];  \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    void tj_gemm_##s(void *o_, int64_t os_m, int64_t os_n, const void *a_, int64_t as_m,   \
                     int64_t as_k, const void *b_, int64_t bs_k, int64_t bs_n, int64_t M,  \
                     int64_t N, int64_t K) {                                               \
        char *o = o_;                                                                      \
        const char *a = a_, *b = b_;                                                       \
        if (N == 1 && as_k == (int64_t)sizeof(T)) { /* matrix-vector: row dot products */   \
            matvec_##s(o, os_m, a, as_m, b, bs_k, M, K);                                   \
            return;                                                                        \
        }                                                                                  \
        T stack[4096], *pack = stack;                                                      \
        int64_t cap = (int64_t)(sizeof stack / sizeof stack[0]);                           \
        for (int64_t n0 = 0; n0 < N; n0 += TJ_NB) {                                        \
            int64_t n = N - n0 < TJ_NB ? N - n0 : TJ_NB;                                   \
            if (K * n > cap) {                                                             \
                if (pack != stack) PyMem_RawFree(pack);                                    \
                pack = PyMem_RawMalloc((size_t)(K * n) * sizeof(T));                       \
                cap = K * n;                                                               \
                if (!pack) { naive_##s(o, os_m, os_n, a, as_m, as_k, b, bs_k, bs_n, M, N, K); \
                             return; }                                                     \
            }                                                                              \
            for (int64_t k = 0; k < K; k++) {                                              \
                const char *src = b + k * bs_k + n0 * bs_n;                                \
                if (bs_n == (int64_t)sizeof(T))                                            \
                    memcpy(pack + k * n, src, (size_t)n * sizeof(T));                      \
                else                                                                       \
                    for (int64_t j = 0; j < n; j++) pack[k * n + j] = *(const T *)(src + j * bs_n); \
            }                                                                              \
            gemm_panel_##s(o + n0 * os_n, os_m, os_n, a, as_m, as_k, pack, M, n, K);       \
        }                                                                                  \
        if (pack != stack) PyMem_RawFree(pack);                                            \
    }

TJ_GEMM(float, f32)
TJ_GEMM(double, f64)

const tj_symbol tj_gemm_symbols[] = {
    {"tj_gemm_f32", (void *)tj_gemm_f32},
    {"tj_gemm_f64", (void *)tj_gemm_f64},
    {NULL, NULL},
};
