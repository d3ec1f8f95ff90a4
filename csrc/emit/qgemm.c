/* The integer GEMM contraction groups of int8 operands call (lower.c's contraction
 * with contract == TJ_CONTRACT_S8: a sum of products of int8 values widened to int16
 * or int32): out[m, n] = sum_k a[m, k] * b[k, n], a and b int8 at arbitrary byte
 * strides (0 where broadcast), out int32 or int64. Integer sums are exact, so every
 * path gives the same bits: AVX-512 VNNI (vpdpbusd on 64 bytes), AVX-VNNI (the same on
 * 32), AVX2 (16-bit widening, vpmaddwd: exact for every int8, -128 included, which
 * vpmaddubsw's saturation is not), or the portable loop; chosen once at run time from
 * the CPU (tj_qgemm_level), capped by _C._qgemm_isa (the tests compare the paths).
 * The SIMD paths take operands that both run along K with a unit step (nn.Linear's
 * x @ w.T) and K <= TJ_Q_KMAX; anything else is the portable loop (int64 sums).
 * VNNI multiplies u8 by s8: a is shifted by 128 (a + 128 in [0, 255], packed once per
 * call) and 128 * colsum(b) subtracted after; int32 arithmetic wraps, so the result is
 * exact whenever the true sum fits int32, which K <= TJ_Q_KMAX guarantees.
 * Shipped with exported programs (-DTJ_STANDALONE; TinyCC and clang build the portable
 * loop only). */
#ifdef TJ_STANDALONE
#include "tjrt.h"
#else
#include "emit/emit.h"
#endif
#include <stdlib.h>
#include <string.h>

#pragma GCC optimize("O3")

#define TJ_Q_KMAX 131071   /* 128 * 128 * K < 2^31: every int32 sum of int8 products fits */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__TINYC__) && \
    !defined(__SANITIZE_ADDRESS__)
#define TJ_Q_X86 1
#include <immintrin.h>
#endif

/* 0 portable, 1 AVX2, 2 AVX-VNNI, 3 AVX-512 VNNI */
static int q_cpu = -1, q_cap = 3;

static int cpu_level(void) {
#ifdef TJ_Q_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512f"))
        return 3;
    if (__builtin_cpu_supports("avxvnni") && __builtin_cpu_supports("avx2")) return 2;
    if (__builtin_cpu_supports("avx2")) return 1;
#endif
    return 0;
}

int tj_qgemm_level(void) {
    if (q_cpu < 0) q_cpu = cpu_level();
    return q_cpu < q_cap ? q_cpu : q_cap;
}

int tj_qgemm_cap(int cap) {
    int prev = q_cap;
    q_cap = cap < 0 ? 0 : cap > 3 ? 3 : cap;
    return prev;
}

static void put_out(char *o, int64_t off, int64_t v, int wide) {
    if (wide) *(int64_t *)(o + off) = v;
    else *(int32_t *)(o + off) = (int32_t)v;
}

static void portable(char *o, int64_t os_m, int64_t os_n, const char *a, int64_t as_m,
                     int64_t as_k, const char *b, int64_t bs_k, int64_t bs_n, int64_t M,
                     int64_t N, int64_t K, int wide) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            int64_t acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (int64_t)*(const int8_t *)(a + m * as_m + k * as_k) *
                       *(const int8_t *)(b + k * bs_k + n * bs_n);
            put_out(o, m * os_m + n * os_n, acc, wide);
        }
}

#ifdef TJ_Q_X86
/* AVX2: 16 bytes of each operand widened to int16, vpmaddwd into 8 int32 lanes. */
__attribute__((target("avx2"))) static int32_t dot_avx2(const int8_t *x, const int8_t *y,
                                                         int64_t K) {
    __m256i acc = _mm256_setzero_si256();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256i xa = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + k)));
        __m256i ya = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(y + k)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xa, ya));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    int32_t r = _mm_cvtsi128_si32(s);
    for (; k < K; k++) r += (int32_t)x[k] * y[k];
    return r;
}

/* four rows of a against one column of b, 16 bytes of K at a time */
__attribute__((target("avx2"))) static void rows4_avx2(const int8_t *const *x,
                                                        const int8_t *y, int64_t K,
                                                        int32_t *r) {
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256i ya = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(y + k)));
        for (int i = 0; i < 4; i++) {
            __m256i xa = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x[i] + k)));
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(xa, ya));
        }
    }
    for (int i = 0; i < 4; i++) {
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[i]),
                                  _mm256_extracti128_si256(acc[i], 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        r[i] = _mm_cvtsi128_si32(s);
        for (int64_t j = k; j < K; j++) r[i] += (int32_t)x[i][j] * y[j];
    }
}

static void gemm_avx2(char *o, int64_t os_m, int64_t os_n, const char *a, int64_t as_m,
                      const char *b, int64_t bs_n, int64_t M, int64_t N, int64_t K, int wide) {
    for (int64_t n = 0; n < N; n++) {
        const int8_t *y = (const int8_t *)(b + n * bs_n);
        int64_t m = 0;
        for (; m + 4 <= M; m += 4) {
            const int8_t *x[4];
            int32_t r[4];
            for (int i = 0; i < 4; i++) x[i] = (const int8_t *)(a + (m + i) * as_m);
            rows4_avx2(x, y, K, r);
            for (int i = 0; i < 4; i++) put_out(o, (m + i) * os_m + n * os_n, r[i], wide);
        }
        for (; m < M; m++)
            put_out(o, m * os_m + n * os_n, dot_avx2((const int8_t *)(a + m * as_m), y, K), wide);
    }
}

/* VNNI, both widths: a packed shifted (au: rows of KP bytes, KP a whole number of
 * vectors, padded with 128 where b's tail loads read 0); per block of 4 columns of b
 * their sums (ones . b, read into L1 for the tiles that follow), then 4x4 (or 1x4)
 * tiles of dot products in named accumulators (an array of them was spilled to the
 * stack by gcc 12), 128 * colsum(b) subtracted. LOADU loads a whole vector, LOADT(p, n)
 * n < W bytes and zeros. */
#define TJ_Q_ROW(c0, c1, c2, c3, DP, av) \
    c0 = DP(c0, av, b0); c1 = DP(c1, av, b1); c2 = DP(c2, av, b2); c3 = DP(c3, av, b3);
#define TJ_Q_LOADB(LD, ...) \
    b0 = LD(y0 + k, ##__VA_ARGS__); b1 = LD(y1 + k, ##__VA_ARGS__); \
    b2 = LD(y2 + k, ##__VA_ARGS__); b3 = LD(y3 + k, ##__VA_ARGS__);
#define TJ_Q_FIX(v, c) ((int32_t)((uint32_t)HSUM(v) - 128u * (uint32_t)(c)))

#define TJ_QGEMM_VNNI(S, TGT, VEC, W, ZERO, LOADU, LOADT, DP, HSUM, ONES)                    \
    __attribute__((target(TGT))) static void colsum_##S(const char *b, int64_t bs_n, int C, \
                                                        int64_t K, int32_t *cs) {           \
        VEC one = ONES;                                                                      \
        for (int j = 0; j < C; j++) {                                                        \
            const int8_t *y = (const int8_t *)(b + j * bs_n);                                \
            VEC acc = ZERO;                                                                  \
            int64_t k = 0;                                                                   \
            for (; k + W <= K; k += W) acc = DP(acc, one, LOADU(y + k));                     \
            if (k < K) acc = DP(acc, one, LOADT(y + k, K - k));                              \
            cs[j] = HSUM(acc);                                                               \
        }                                                                                    \
    }                                                                                        \
    /* out rows m0..m0+R (R 4 or 1) x the 4 columns of b at b */                             \
    __attribute__((target(TGT))) static void tile_##S(                                       \
        char *o, int64_t os_m, int64_t os_n, const uint8_t *au, int64_t KP, int R,           \
        const char *b, int64_t bs_n, int64_t K, const int32_t *cs, int wide) {               \
        const int8_t *y0 = (const int8_t *)b, *y1 = (const int8_t *)(b + bs_n);             \
        const int8_t *y2 = (const int8_t *)(b + 2 * bs_n), *y3 = (const int8_t *)(b + 3 * bs_n); \
        VEC b0, b1, b2, b3;                                                                  \
        int64_t k = 0;                                                                       \
        if (R == 4) {                                                                        \
            const uint8_t *x0 = au, *x1 = au + KP, *x2 = au + 2 * KP, *x3 = au + 3 * KP;     \
            VEC c00 = ZERO, c01 = ZERO, c02 = ZERO, c03 = ZERO, c10 = ZERO, c11 = ZERO;      \
            VEC c12 = ZERO, c13 = ZERO, c20 = ZERO, c21 = ZERO, c22 = ZERO, c23 = ZERO;      \
            VEC c30 = ZERO, c31 = ZERO, c32 = ZERO, c33 = ZERO;                              \
            for (; k < KP; k += W) {                                                         \
                if (k + W <= K) { TJ_Q_LOADB(LOADU) } else { TJ_Q_LOADB(LOADT, K - k) }      \
                VEC a0 = LOADU(x0 + k), a1 = LOADU(x1 + k);                                  \
                TJ_Q_ROW(c00, c01, c02, c03, DP, a0)                                         \
                TJ_Q_ROW(c10, c11, c12, c13, DP, a1)                                         \
                VEC a2 = LOADU(x2 + k), a3 = LOADU(x3 + k);                                  \
                TJ_Q_ROW(c20, c21, c22, c23, DP, a2)                                         \
                TJ_Q_ROW(c30, c31, c32, c33, DP, a3)                                         \
            }                                                                                \
            VEC cc[16] = {c00, c01, c02, c03, c10, c11, c12, c13,                            \
                          c20, c21, c22, c23, c30, c31, c32, c33};                           \
            for (int i = 0; i < 4; i++)                                                      \
                for (int j = 0; j < 4; j++)                                                  \
                    put_out(o, i * os_m + j * os_n, TJ_Q_FIX(cc[4 * i + j], cs[j]), wide);   \
        } else {                                                                             \
            VEC c0 = ZERO, c1 = ZERO, c2 = ZERO, c3 = ZERO;                                  \
            for (; k < KP; k += W) {                                                         \
                if (k + W <= K) { TJ_Q_LOADB(LOADU) } else { TJ_Q_LOADB(LOADT, K - k) }      \
                VEC a0 = LOADU(au + k);                                                      \
                TJ_Q_ROW(c0, c1, c2, c3, DP, a0)                                             \
            }                                                                                \
            put_out(o, 0, TJ_Q_FIX(c0, cs[0]), wide);                                        \
            put_out(o, os_n, TJ_Q_FIX(c1, cs[1]), wide);                                     \
            put_out(o, 2 * os_n, TJ_Q_FIX(c2, cs[2]), wide);                                 \
            put_out(o, 3 * os_n, TJ_Q_FIX(c3, cs[3]), wide);                                 \
        }                                                                                    \
    }                                                                                        \
    /* one column of b against every row */                                                  \
    __attribute__((target(TGT))) static void col_##S(                                        \
        char *o, int64_t os_m, const uint8_t *au, int64_t KP, int64_t M, const int8_t *y,    \
        int64_t K, int32_t cs, int wide) {                                                   \
        for (int64_t m = 0; m < M; m++) {                                                    \
            VEC c = ZERO;                                                                    \
            for (int64_t k = 0; k < KP; k += W)                                              \
                c = DP(c, LOADU(au + m * KP + k), k + W <= K ? LOADU(y + k) : LOADT(y + k, K - k)); \
            put_out(o, m * os_m, TJ_Q_FIX(c, cs), wide);                                     \
        }                                                                                    \
    }                                                                                        \
    __attribute__((target(TGT))) static void gemm_##S(                                       \
        char *o, int64_t os_m, int64_t os_n, const uint8_t *au, int64_t KP, const char *b,   \
        int64_t bs_n, int64_t M, int64_t N, int64_t K, int wide) {                           \
        int32_t cs[4];                                                                       \
        int64_t n = 0;                                                                       \
        for (; n + 4 <= N; n += 4) {                                                         \
            const char *bn = b + n * bs_n;                                                   \
            colsum_##S(bn, bs_n, 4, K, cs);                                                  \
            int64_t m = 0;                                                                   \
            for (; m + 4 <= M; m += 4)                                                       \
                tile_##S(o + m * os_m + n * os_n, os_m, os_n, au + m * KP, KP, 4, bn, bs_n,  \
                         K, cs, wide);                                                       \
            for (; m < M; m++)                                                               \
                tile_##S(o + m * os_m + n * os_n, os_m, os_n, au + m * KP, KP, 1, bn, bs_n,  \
                         K, cs, wide);                                                       \
        }                                                                                    \
        for (; n < N; n++) {                                                                 \
            colsum_##S(b + n * bs_n, bs_n, 1, K, cs);                                        \
            col_##S(o + n * os_n, os_m, au, KP, M, (const int8_t *)(b + n * bs_n), K, cs[0], \
                    wide);                                                                   \
        }                                                                                    \
    }

#define TGT512 "avx512f,avx512bw,avx512vnni"
#define L512U(p) _mm512_loadu_si512((const void *)(p))
#define L512T(p, n) _mm512_maskz_loadu_epi8((__mmask64)(~0ULL >> (64 - (n))), (p))
#define DP512(c, x, y) _mm512_dpbusd_epi32(c, x, y)
#define HSUM _mm512_reduce_add_epi32
TJ_QGEMM_VNNI(v512, TGT512, __m512i, 64, _mm512_setzero_si512(), L512U, L512T, DP512,
              _mm512_reduce_add_epi32, _mm512_set1_epi8(1))
#undef HSUM

#define TGT256 "avx2,avxvnni"
__attribute__((target("avx2"))) static inline int32_t hsum256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
/* n < 32 bytes of b and zeros (AVX2 has no byte mask) */
__attribute__((target("avx2"))) static inline __m256i load256_tail(const int8_t *p, int64_t n) {
    int8_t t[32] = {0};
    memcpy(t, p, (size_t)n);
    return _mm256_loadu_si256((const __m256i *)t);
}
#define L256U(p) _mm256_loadu_si256((const __m256i *)(p))
#define DP256(c, x, y) _mm256_dpbusd_avx_epi32(c, x, y)
#define HSUM hsum256
TJ_QGEMM_VNNI(v256, TGT256, __m256i, 32, _mm256_setzero_si256(), L256U, load256_tail, DP256,
              hsum256, _mm256_set1_epi8(1))
#undef HSUM
#endif   /* TJ_Q_X86 */

static void gemm_s8(void *o_, int64_t os_m, int64_t os_n, const void *a_, int64_t as_m,
                    int64_t as_k, const void *b_, int64_t bs_k, int64_t bs_n, int64_t M,
                    int64_t N, int64_t K, int wide) {
    char *o = o_;
    const char *a = a_, *b = b_;
    int level = tj_qgemm_level();
    if (level == 0 || as_k != 1 || bs_k != 1 || K > TJ_Q_KMAX || K == 0) {
        portable(o, os_m, os_n, a, as_m, as_k, b, bs_k, bs_n, M, N, K, wide);
        return;
    }
#ifdef TJ_Q_X86
    if (level == 1) {
        gemm_avx2(o, os_m, os_n, a, as_m, b, bs_n, M, N, K, wide);
        return;
    }
    int64_t W = level == 3 ? 64 : 32, KP = (K + W - 1) / W * W;
    uint8_t *au = malloc((size_t)(M * KP));
    if (!au) {
        portable(o, os_m, os_n, a, as_m, as_k, b, bs_k, bs_n, M, N, K, wide);
        return;
    }
    for (int64_t m = 0; m < M; m++) {
        const uint8_t *x = (const uint8_t *)(a + m * as_m);
        uint8_t *d = au + m * KP;
        for (int64_t k = 0; k < K; k++) d[k] = (uint8_t)(x[k] ^ 0x80u);   /* a + 128 */
        memset(d + K, 0x80, (size_t)(KP - K));
    }
    if (level == 3) gemm_v512(o, os_m, os_n, au, KP, b, bs_n, M, N, K, wide);
    else gemm_v256(o, os_m, os_n, au, KP, b, bs_n, M, N, K, wide);
    free(au);
#endif
}

void tj_gemm_s8s32(void *o, int64_t os_m, int64_t os_n, const void *a, int64_t as_m,
                   int64_t as_k, const void *b, int64_t bs_k, int64_t bs_n, int64_t M,
                   int64_t N, int64_t K) {
    gemm_s8(o, os_m, os_n, a, as_m, as_k, b, bs_k, bs_n, M, N, K, 0);
}

void tj_gemm_s8s64(void *o, int64_t os_m, int64_t os_n, const void *a, int64_t as_m,
                   int64_t as_k, const void *b, int64_t bs_k, int64_t bs_n, int64_t M,
                   int64_t N, int64_t K) {
    gemm_s8(o, os_m, os_n, a, as_m, as_k, b, bs_k, bs_n, M, N, K, 1);
}
