/* The GEMM primitives contraction groups call: out[m, n] = sum_k a[m, k] * b[k, n],
 * every operand at arbitrary byte strides (0 where broadcast). Compiled with SIMD
 * (target_clones); float32 accumulates in float32, as BLAS does. Contract: out never aliases a or b; M, N, K may be 0 (an empty sum is 0).
 * Rows of b are packed contiguously first when they are strided, and four rows of
 * out share each packed row of b; a few rows against a b that runs along K (x @ w.T)
 * are dot products, nothing packed. Every multiply-add is a multiply then an add (no
 * FMA contraction) and every sum runs in an order written here (dot products: TJ_DLANES partial sums folded
 * pairwise, then the tail), never the vectorizer's: any compiler, target or clone (an
 * exported program built by TinyCC, python/tracejit/_export.py) gives the same bits.
 * Under TJ_STANDALONE (an export) no BLAS is loaded; tjrt_set_blas hooks one in. */
#ifdef TJ_STANDALONE
#include "tjrt.h"
#else
#include "emit/emit.h"
#include <dlfcn.h>
#endif
#include <math.h>

#pragma GCC optimize("O3")
/* c + a * b, each rounded: never contracted into an FMA (-ffp-contract=off here and in
 * an export's Makefile; TinyCC never contracts), which gcc would do in some clones only;
 * explicit fma() keeps gcc 12 from vectorizing the lanes (measured: scalar vfmadd231ss) */
#define TJ_FMA(T, a, b, c) ((c) + (a) * (b))
#define TJ_DLANES 16   /* a dot product's partial sums: 1-4 vectors (TJ_DOT_FOLD's levels) */
/* loops over independent lanes (their order is the code's), vectorized */
#if defined(__GNUC__)
#define TJ_SIMD _Pragma("omp simd")
#else
#define TJ_SIMD   /* (TinyCC: no _Pragma in macros; nothing to vectorize) */
#endif

/* The BLAS behind NumPy (its bundled OpenBLAS, ILP64 CBLAS), used for products of at
 * least TJ_BLAS_MIN multiply-adds whose operands and result have a unit stride (a
 * result stored transposed is computed as its transpose, b^T a^T); loaded by
 * tj_blas_load from the Python layer at import. */
typedef void blas_gemm_fn(int, int, int, int64_t, int64_t, int64_t, double, const void *,
                          int64_t, const void *, int64_t, double, void *, int64_t);
typedef void blas_sgemm_fn(int, int, int, int64_t, int64_t, int64_t, float, const void *,
                           int64_t, const void *, int64_t, float, void *, int64_t);
typedef void blas_gemv_fn(int, int, int64_t, int64_t, double, const void *, int64_t,
                          const void *, int64_t, double, void *, int64_t);
typedef void blas_sgemv_fn(int, int, int64_t, int64_t, float, const void *, int64_t,
                           const void *, int64_t, float, void *, int64_t);
static blas_sgemm_fn *blas_sgemm;
static blas_gemm_fn *blas_dgemm;
static blas_sgemv_fn *blas_sgemv;   /* matrix-vector products (a row or column of out) */
static blas_gemv_fn *blas_dgemv;
int64_t tj_blas_min = 0;
static int blas_is_mkl;       /* the dot-product and packing paths are OpenBLAS's workarounds */
#ifdef TJ_STANDALONE
/* An export's optional BLAS (ILP64 row-major CBLAS sgemm, dgemm, sgemv, dgemv; NULL:
 * the portable GEMM). */
void tjrt_set_blas(void *sgemm, void *dgemm, void *sgemv, void *dgemv) {
    blas_sgemm = (blas_sgemm_fn *)sgemm;
    blas_dgemm = (blas_gemm_fn *)dgemm;
    blas_sgemv = (blas_sgemv_fn *)sgemv;
    blas_dgemv = (blas_gemv_fn *)dgemv;
}
#else
static void (*blas_set_threads)(int);   /* C int even in the ILP64 build */
static int (*blas_get_threads)(void);

int tj_blas_load(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
    blas_sgemm = (blas_sgemm_fn *)dlsym(h, "scipy_cblas_sgemm64_");
    blas_dgemm = (blas_gemm_fn *)dlsym(h, "scipy_cblas_dgemm64_");
    if (!blas_sgemm) blas_sgemm = (blas_sgemm_fn *)dlsym(h, "cblas_sgemm64_");
    if (!blas_dgemm) blas_dgemm = (blas_gemm_fn *)dlsym(h, "cblas_dgemm64_");
    blas_sgemv = (blas_sgemv_fn *)dlsym(h, "scipy_cblas_sgemv64_");
    blas_dgemv = (blas_gemv_fn *)dlsym(h, "scipy_cblas_dgemv64_");
    *(void **)&blas_set_threads = dlsym(h, "scipy_openblas_set_num_threads64_");
    *(void **)&blas_get_threads = dlsym(h, "scipy_openblas_get_num_threads64_");
    if (!blas_set_threads) *(void **)&blas_set_threads = dlsym(h, "openblas_set_num_threads64_");
    if (!blas_get_threads) *(void **)&blas_get_threads = dlsym(h, "openblas_get_num_threads64_");
    return blas_sgemm && blas_dgemm ? 0 : -1;
}

/* MKL, inside torch's libtorch_cpu (already loaded once torch is in use): its Fortran
 * ILP64 entry points, called through row-major CBLAS-shaped adapters so every call site
 * stays one. Measured against NumPy's OpenBLAS at nn.Linear's shapes (x @ w.T, float32,
 * 1 thread, K=784, N=512): 32 rows 170 against 297 us, 8 rows 69 against 192 us, 1024
 * rows 3971 against 4240; torch's own Linear runs on it. Its thread count is set for
 * the calling thread at each call (MKL_Set_Num_Threads_Local: a thread-local store) to
 * tracejit's budget, then restored, so torch's own setting is left as it was. */
typedef void mkl_gemm_fn(const char *, const char *, const int64_t *, const int64_t *,
                         const int64_t *, const void *, const void *, const int64_t *,
                         const void *, const int64_t *, const void *, void *, const int64_t *);
typedef void mkl_gemv_fn(const char *, const int64_t *, const int64_t *, const void *,
                         const void *, const int64_t *, const void *, const int64_t *,
                         const void *, void *, const int64_t *);
static mkl_gemm_fn *mkl_sgemm, *mkl_dgemm;
static mkl_gemv_fn *mkl_sgemv, *mkl_dgemv;
static int (*mkl_set_local)(int);
static int mkl_threads = 1;   /* tracejit's budget, for MKL's calls */

/* Row-major C = op(A) op(B) is, read column-major, C^T = op(B)^T op(A)^T: the operands
 * swap and keep their flags (111 CblasNoTrans 'N', 112 CblasTrans 'T'). */
#define TJ_MKL_ADAPT(T, s)                                                                  \
    static void mkl_##s##gemm_rm(int order, int ta, int tb, int64_t M, int64_t N, int64_t K, \
                                 T alpha, const void *A, int64_t lda, const void *B,        \
                                 int64_t ldb, T beta, void *C, int64_t ldc) {               \
        (void)order;                                                                        \
        char fa = tb == 112 ? 'T' : 'N', fb = ta == 112 ? 'T' : 'N';                        \
        int prev = mkl_set_local(mkl_threads);                                              \
        mkl_##s##gemm(&fa, &fb, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);      \
        mkl_set_local(prev);                                                                \
    }                                                                                       \
    /* y = op(A) x with A row-major M x N: column-major it is A^T (N x M), flag flipped */   \
    static void mkl_##s##gemv_rm(int order, int ta, int64_t M, int64_t N, T alpha,         \
                                 const void *A, int64_t lda, const void *x, int64_t incx,   \
                                 T beta, void *y, int64_t incy) {                           \
        (void)order;                                                                        \
        char f = ta == 112 ? 'N' : 'T';                                                     \
        int prev = mkl_set_local(mkl_threads);                                              \
        mkl_##s##gemv(&f, &N, &M, &alpha, A, &lda, x, &incx, &beta, y, &incy);             \
        mkl_set_local(prev);                                                                \
    }
TJ_MKL_ADAPT(float, s)
TJ_MKL_ADAPT(double, d)

int tj_blas_load_mkl(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);   /* only if loaded */
    if (!h) return -1;
    *(void **)&mkl_sgemm = dlsym(h, "sgemm_64_");
    *(void **)&mkl_dgemm = dlsym(h, "dgemm_64_");
    *(void **)&mkl_sgemv = dlsym(h, "sgemv_64_");
    *(void **)&mkl_dgemv = dlsym(h, "dgemv_64_");
    *(void **)&mkl_set_local = dlsym(h, "MKL_Set_Num_Threads_Local");
    if (!mkl_sgemm || !mkl_dgemm || !mkl_sgemv || !mkl_dgemv || !mkl_set_local) {
        dlclose(h);
        return -1;
    }
    if (blas_get_threads && blas_get_threads() > 0) mkl_threads = blas_get_threads();
    blas_sgemm = mkl_sgemm_rm;
    blas_dgemm = mkl_dgemm_rm;
    blas_sgemv = mkl_sgemv_rm;
    blas_dgemv = mkl_dgemv_rm;
    blas_is_mkl = 1;
    return 0;   /* the handle stays open: torch's library outlives us */
}

/* The BLAS's own threads (NumPy's np.matmul shares them): tracejit's thread budget
 * covers both its pool and the BLAS it calls (module.c's set_num_threads). A BLAS call
 * runs on the calling thread while the pool is idle (a contraction group is one unit),
 * so both get the whole budget. 0; -1 without a loaded BLAS that exposes it. */
const char *tj_blas_name(void) {
    return blas_is_mkl ? "mkl" : blas_sgemm ? "openblas" : NULL;
}

int tj_blas_set_threads(int n) {
    if (n < 1) return -1;
    mkl_threads = n;
    if (!blas_set_threads) return blas_is_mkl ? 0 : -1;
    blas_set_threads(n);
    return 0;
}

int tj_blas_threads(void) {
    if (blas_is_mkl) return mkl_threads;
    return blas_get_threads ? blas_get_threads() : 0;
}

#endif   /* TJ_STANDALONE */

/* The CBLAS (transpose flag, leading dimension) of a matrix with byte strides
 * (rs, cs) of `rows` x `cols`, or 0 when neither stride is the unit. */
static int blas_layout(int64_t rs, int64_t cs, int64_t rows, int64_t cols, int64_t size,
                       int *trans, int64_t *ld) {
    if (cs == size && rs % size == 0 && rs / size >= (cols > 1 ? cols : 1)) {
        *trans = 111;   /* CblasNoTrans */
        *ld = rs / size > 0 ? rs / size : 1;
        return 1;
    }
    if (rs == size && cs % size == 0 && cs / size >= (rows > 1 ? rows : 1)) {
        *trans = 112;   /* CblasTrans */
        *ld = cs / size > 0 ? cs / size : 1;
        return 1;
    }
    return 0;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TJ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TJ_CLONES
#endif

#define TJ_NB 256   /* columns of out computed together */
#define TJ_PACK_MAX 4096   /* elements of a transposed b packed before BLAS (on the stack) */
/* Multiply-adds from which a matrix-vector product calls BLAS gemv (at least
 * tj_blas_min too): measured (float32/64, A x and z A, 4x4 to 1000x20) on par below
 * ~1k and faster above, up to 14x for z A (which our GEMM computes one row at a time). */
#define TJ_GEMV_MIN 512
/* A product of TJ_DOT_MIN to TJ_DOT_MAX rows whose operands both run along K (x @ w.T:
 * nn.Linear's layout, w stored (N, K)) is computed as dot products, reading w once and
 * packing nothing: OpenBLAS repacks the whole of w at every call, which dominated small
 * batches (the quickstart MLP at batch 8: 61% of its time in sgemm_incopy). Measured on
 * that MLP (784-512-512-10, float32, 1 thread): batch 4 117 us against BLAS's 349, 8:
 * 196 against 419, 16: 388 against 493; at 2 rows BLAS's own small-matrix kernel (no
 * packing) was faster (90 against 105 us), at 24 and up BLAS. */
#define TJ_DOT_MIN 4
#define TJ_DOT_MAX 16

/* A vector's element step from a byte stride: positive and whole, else 0. */
static int64_t blas_inc(int64_t stride, int64_t size) {
    return stride > 0 && stride % size == 0 ? stride / size : 0;
}

/* partial sums r[0..TJ_DLANES) folded pairwise into r[0], a level at a time: each level
 * one vector add (written as nested loops, gcc kept the lanes in memory: matrix-vector
 * dot products measured 2.5x slower, the same bits) */
#define TJ_FOLD_W(r, w) TJ_SIMD for (int l_ = 0; l_ < (w); l_++) r[l_] += r[l_ + (w)];
#define TJ_DOT_FOLD(r) TJ_FOLD_W(r, 8) TJ_FOLD_W(r, 4) TJ_FOLD_W(r, 2) TJ_FOLD_W(r, 1)
/* x . y over K contiguous elements: TJ_DLANES partial sums, folded, then the tail */
#define TJ_DOT(T, s)                                                                       \
    TJ_CLONES static T dot_##s(const T *x, const T *y, int64_t K) {                        \
        T r[TJ_DLANES];                                                                    \
        int64_t k = 0;                                                                     \
        for (int l = 0; l < TJ_DLANES; l++) r[l] = 0;                                      \
        for (; k + TJ_DLANES <= K; k += TJ_DLANES)                                         \
            TJ_SIMD for (int l = 0; l < TJ_DLANES; l++)                           \
                r[l] = TJ_FMA(T, x[k + l], y[k + l], r[l]); \
        TJ_DOT_FOLD(r)                                                                     \
        for (; k < K; k++) r[0] = TJ_FMA(T, x[k], y[k], r[0]);                             \
        return r[0];                                                                       \
    }
TJ_DOT(float, f32)
TJ_DOT(double, f64)

#define TJ_GEMM(T, s, BLAS, GEMV)                                                             \
    /* out[m, n] = a[m, :] . b[:, n], both contiguous along K; four rows share each   */   \
    /* column of b while it is in L1; each dot product in TJ_DLANES partial sums      */   \
    TJ_CLONES static void dots_##s(char *o, int64_t os_m, int64_t os_n, const char *a,     \
                                   int64_t as_m, const char *b, int64_t bs_n, int64_t M,   \
                                   int64_t N, int64_t K) {                                 \
        for (int64_t n = 0; n < N; n++) {                                                  \
            const T *w = (const T *)(b + n * bs_n);                                        \
            int64_t m = 0;                                                                 \
            for (; m + 4 <= M; m += 4) {                                                   \
                const T *x0 = (const T *)(a + m * as_m), *x1 = (const T *)(a + (m + 1) * as_m); \
                const T *x2 = (const T *)(a + (m + 2) * as_m), *x3 = (const T *)(a + (m + 3) * as_m); \
                T s0[TJ_DLANES], s1[TJ_DLANES], s2[TJ_DLANES], s3[TJ_DLANES];              \
                for (int l = 0; l < TJ_DLANES; l++) s0[l] = s1[l] = s2[l] = s3[l] = 0;     \
                int64_t k = 0;                                                             \
                for (; k + TJ_DLANES <= K; k += TJ_DLANES)                                 \
                    TJ_SIMD for (int l = 0; l < TJ_DLANES; l++) {              \
                        T wk = w[k + l];                                                   \
                        s0[l] = TJ_FMA(T, x0[k + l], wk, s0[l]);                           \
                        s1[l] = TJ_FMA(T, x1[k + l], wk, s1[l]);                           \
                        s2[l] = TJ_FMA(T, x2[k + l], wk, s2[l]);                           \
                        s3[l] = TJ_FMA(T, x3[k + l], wk, s3[l]);                           \
                    }                                                                      \
                TJ_DOT_FOLD(s0) TJ_DOT_FOLD(s1) TJ_DOT_FOLD(s2) TJ_DOT_FOLD(s3)            \
                for (; k < K; k++) {                                                       \
                    T wk = w[k];                                                           \
                    s0[0] = TJ_FMA(T, x0[k], wk, s0[0]);                                   \
                    s1[0] = TJ_FMA(T, x1[k], wk, s1[0]);                                   \
                    s2[0] = TJ_FMA(T, x2[k], wk, s2[0]);                                   \
                    s3[0] = TJ_FMA(T, x3[k], wk, s3[0]);                                   \
                }                                                                          \
                *(T *)(o + m * os_m + n * os_n) = s0[0];                                   \
                *(T *)(o + (m + 1) * os_m + n * os_n) = s1[0];                             \
                *(T *)(o + (m + 2) * os_m + n * os_n) = s2[0];                             \
                *(T *)(o + (m + 3) * os_m + n * os_n) = s3[0];                             \
            }                                                                              \
            for (; m < M; m++)                                                             \
                *(T *)(o + m * os_m + n * os_n) = dot_##s((const T *)(a + m * as_m), w, K); \
        }                                                                                  \
    }                                                                                      \
    TJ_CLONES static void matvec_##s(char *o, int64_t os_m, const char *a, int64_t as_m,     \
                                     const char *b, int64_t bs_k, int64_t M, int64_t K) {   \
        T stack[4096], *x = stack;                                                         \
        if (K > 4096 && !(x = malloc((size_t)K * sizeof(T)))) x = NULL;                    \
        for (int64_t k = 0; x && k < K; k++) x[k] = *(const T *)(b + k * bs_k);            \
        for (int64_t m = 0; m < M; m++) {                                                  \
            const T *row = (const T *)(a + m * as_m);                                      \
            T acc = 0;                                                                     \
            if (x) {                                                                       \
                acc = dot_##s(row, x, K);                                                  \
            } else {                                                                       \
                for (int64_t k = 0; k < K; k++)                                            \
                    acc = TJ_FMA(T, row[k], *(const T *)(b + k * bs_k), acc);              \
            }                                                                              \
            *(T *)(o + m * os_m) = acc;                                                    \
        }                                                                                  \
        if (x != stack) free(x);                                                           \
    }                                                                                      \
    /* without memory for packing: the plain triple loop */                                \
    static void naive_##s(char *o, int64_t os_m, int64_t os_n, const char *a, int64_t as_m,  \
                          int64_t as_k, const char *b, int64_t bs_k, int64_t bs_n,         \
                          int64_t M, int64_t N, int64_t K) {                               \
        for (int64_t m = 0; m < M; m++)                                                    \
            for (int64_t j = 0; j < N; j++) {                                              \
                T acc = 0;                                                                 \
                for (int64_t k = 0; k < K; k++)                                            \
                    acc = TJ_FMA(T, *(const T *)(a + m * as_m + k * as_k),                 \
                                 *(const T *)(b + k * bs_k + j * bs_n), acc);              \
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
                    acc[0][j] = TJ_FMA(T, a0, bv, acc[0][j]);                              \
                    acc[1][j] = TJ_FMA(T, a1, bv, acc[1][j]);                              \
                    acc[2][j] = TJ_FMA(T, a2, bv, acc[2][j]);                              \
                    acc[3][j] = TJ_FMA(T, a3, bv, acc[3][j]);                              \
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
        int ta, tb, tc;                                                                    \
        int64_t lda, ldb, ldc;                                                             \
        if ((!blas_is_mkl || M * N * K < tj_blas_min) && M >= TJ_DOT_MIN && M <= TJ_DOT_MAX && N > 1 && \
            as_k == (int64_t)sizeof(T) &&                                                  \
            bs_k == (int64_t)sizeof(T)) {                                                  \
            dots_##s(o, os_m, os_n, a, as_m, b, bs_n, M, N, K);                            \
            return;                                                                        \
        }                                                                                  \
        if ((M == 1) != (N == 1) && K >= TJ_DLANES && as_k == (int64_t)sizeof(T) &&         \
            bs_k == (int64_t)sizeof(T)) {                                                  \
            /* a matrix-vector product along K (x @ W.T at batch 1, W x): dot products, */ \
            /* four rows of the matrix against the vector at a time (MKL's gemv in this */ \
            /* layout measured ~4x slower: one horizontal sum per row) */                  \
            if (M == 1) dots_##s(o, os_n, os_m, b, bs_n, a, as_m, N, 1, K);                \
            else dots_##s(o, os_m, os_n, a, as_m, b, bs_n, M, 1, K);                       \
            return;                                                                        \
        }                                                                                  \
        if (BLAS && M * N * K >= tj_blas_min && M > 1 && N > 1 &&                          \
            blas_layout(as_m, as_k, M, K, sizeof(T), &ta, &lda) &&                         \
            blas_layout(bs_k, bs_n, K, N, sizeof(T), &tb, &ldb) &&                         \
            blas_layout(os_m, os_n, M, N, sizeof(T), &tc, &ldc)) {                         \
            if (tc != 111) {   /* out stored transposed: out^T = b^T a^T, N x M */        \
                const char *t = a; a = b; b = t;                                           \
                int64_t m = M, l = lda; M = N; N = m; lda = ldb; ldb = l;                  \
                int f = ta; ta = 223 - tb; tb = 223 - f;                                   \
            }                                                                              \
            T bt[TJ_PACK_MAX];                                                             \
            if (!blas_is_mkl && ta == 111 && tb == 112 && N >= 16 && K * N <= TJ_PACK_MAX) { \
                /* a small b stored transposed: packed, b's "nt" kernels measured      */ \
                /* 13-50% slower than "nn" at these sizes (OpenBLAS, float32)          */ \
                for (int64_t k = 0; k < K; k++)                                            \
                    for (int64_t j = 0; j < N; j++) bt[k * N + j] = ((const T *)b)[j * ldb + k]; \
                b = (const char *)bt, tb = 111, ldb = N;                                   \
            }                                                                              \
            BLAS(101 /* CblasRowMajor */, ta, tb, M, N, K, 1, a, lda, b, ldb, 0, o, ldc);  \
            return;                                                                        \
        }                                                                                  \
        if (GEMV && M * N * K >= tj_blas_min && M * N * K >= TJ_GEMV_MIN && K > 1 &&      \
            (N == 1) != (M == 1)) {                                                        \
            /* matrix-vector (a gradient's transposed products among them): BLAS gemv */   \
            int64_t sz = (int64_t)sizeof(T);                                               \
            int64_t ix = N == 1 ? blas_inc(bs_k, sz) : blas_inc(as_k, sz);                 \
            int64_t iy = N == 1 ? blas_inc(os_m, sz) : blas_inc(os_n, sz);                 \
            int tm, ok = ix && iy && (N == 1 ? blas_layout(as_m, as_k, M, K, sz, &tm, &lda) \
                                             : blas_layout(bs_k, bs_n, K, N, sz, &tm, &lda)); \
            /* y starts at 0 (beta = 0 may scale stale NaNs in the scratch block) */       \
            for (int64_t i = 0; ok && i < (N == 1 ? M : N); i++) *(T *)(o + i * iy * sz) = 0; \
            if (ok && N == 1) { /* y = A x, A is M x K (or its transpose K x M stored) */   \
                if (tm == 111) GEMV(101, 111, M, K, 1, a, lda, b, ix, 0, o, iy);           \
                else GEMV(101, 112, K, M, 1, a, lda, b, ix, 0, o, iy);                     \
                return;                                                                    \
            }                                                                              \
            if (ok) { /* y = B^T a, B is K x N (or its transpose N x K stored) */          \
                if (tm == 111) GEMV(101, 112, K, N, 1, b, lda, a, ix, 0, o, iy);           \
                else GEMV(101, 111, N, K, 1, b, lda, a, ix, 0, o, iy);                     \
                return;                                                                    \
            }                                                                              \
        }                                                                                  \
        if (N == 1 && as_k == (int64_t)sizeof(T)) { /* matrix-vector: row dot products */   \
            matvec_##s(o, os_m, a, as_m, b, bs_k, M, K);                                   \
            return;                                                                        \
        }                                                                                  \
        T stack[4096], *pack = stack;                                                      \
        int64_t cap = (int64_t)(sizeof stack / sizeof stack[0]);                           \
        for (int64_t n0 = 0; n0 < N; n0 += TJ_NB) {                                        \
            int64_t n = N - n0 < TJ_NB ? N - n0 : TJ_NB;                                   \
            if (K * n > cap) {                                                             \
                if (pack != stack) free(pack);                                             \
                pack = malloc((size_t)(K * n) * sizeof(T));                                \
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
        if (pack != stack) free(pack);                                                     \
    }

TJ_GEMM(float, f32, blas_sgemm, blas_sgemv)
TJ_GEMM(double, f64, blas_dgemm, blas_dgemv)

#ifndef TJ_STANDALONE   /* (an export links the primitives by name) */
const tj_symbol tj_gemm_symbols[] = {
    {"tj_gemm_f32", (void *)tj_gemm_f32},
    {"tj_gemm_f64", (void *)tj_gemm_f64},
    {"tj_gemm_s8s32", (void *)tj_gemm_s8s32},   /* csrc/emit/qgemm.c */
    {"tj_gemm_s8s64", (void *)tj_gemm_s8s64},
    {NULL, NULL},
};
#endif
