/* Counter-based random numbers: each value is a pure function of (key, counter), so a
 * fused loop computes element i from i alone, in any order, on any thread, in either
 * tier, with the same bits. The generator is Philox4x32-10 (Salmon, Moraes, Dror,
 * Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11; it passes TestU01's
 * BigCrush), checked against Random123's known-answer vectors (tests/test_random.py).
 *
 * The op table's random ops (RUNIF32, RUNIF64, RNORM32, RNORM64) take two int64
 * operands: the call's key (drawn from the framework's generator at every call) and the
 * element's counter c (its index plus the draw's offset, a multiple of 4:
 * csrc/trace/random.c). Every word of a Philox block is used:
 *   float32: block c >> 2 (counter words (c >> 2, 0)), 4 values per block. A uniform
 *            is word c & 3's high 24 bits times 2^-24; a normal is Box-Muller of the
 *            word pair (c >> 1) & 1 (u1 = 1 - uniform of its first word, u2 of its
 *            second), r cos(2 pi u2) for even c, r sin for odd c;
 *   float64: block c >> 1 of a second stream (counter words (c >> 1, 1)), 2 values per
 *            block. A uniform is 53 bits of word pair c & 1; a normal is Box-Muller of
 *            the two 53-bit uniforms of the block, cos for even c, sin for odd.
 * Draws start on multiples of 4, so no two elements share a word (a normal's pair
 * belongs to its two elements, both in one draw).
 *
 * The element functions (tj_runif_f32, ...) are the definition; the fill functions
 * (tj_fill_runif_f32, ...: n values at consecutive counters) compute the same bits a
 * block at a time, in a loop gcc vectorizes: TinyCC's primitives and the optimizing
 * tier's tiles of draws call them (csrc/emit/prims.c, emit_fused.c). log and sin/cos
 * come from vmath.h, never libm, so both tiers compute the same bits. */
#ifndef TJ_PRIMS_RANDOM_H
#define TJ_PRIMS_RANDOM_H
#include <stdint.h>

typedef struct { uint32_t v[4]; } tj_philox_block;

TJ_VMI tj_philox_block tj_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2,
                                               uint32_t c3, uint32_t k0, uint32_t k1) {
#ifdef __CUDACC_RTC__   /* (NVRTC knows no GCC pragma) */
#pragma unroll
#else
#pragma GCC unroll 10   /* a loop left in the body keeps the callers' loops scalar */
#endif
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    tj_philox_block b = {{c0, c1, c2, c3}};
    return b;
}

/* Block `blk` of stream `s` (0: float32, 1: float64): counter words (blk low, blk
 * high, s, 0), key words (key low, key high). */
TJ_VMI tj_philox_block tj_philox_at(int64_t key, uint64_t blk, uint32_t s) {
    uint64_t k = (uint64_t)key;
    return tj_philox4x32_10((uint32_t)blk, (uint32_t)(blk >> 32), s, 0, (uint32_t)k,
                            (uint32_t)(k >> 32));
}

/* [0, 1): 24 (53) random bits times 2^-24 (2^-53); every value exact in its type (the
 * bits fit a signed integer, whose conversion vectorizes) */
TJ_VMI float tj_u01_f32(uint32_t w) { return (float)(int32_t)(w >> 8) * 0x1p-24f; }
TJ_VMI double tj_u01_f64(uint32_t hi, uint32_t lo) {
    return (double)(int64_t)((((uint64_t)hi << 32) | lo) >> 11) * 0x1p-53;
}

/* Box-Muller's radius and angle: u1 in (0, 1] keeps log finite; the largest |value| is
 * sqrt(-2 log 2^-24) = 5.77 in float32, 8.57 in float64. The angle's sin and cos share
 * one reduction (vmath.h's core; the same bits as tj_sinf/tj_cosf's). */
TJ_VMI void tj__bm_f32(uint32_t a, uint32_t b, float *even, float *odd) {
    float r = sqrtf(-2.0f * tj_logf(1.0f - tj_u01_f32(a)));
    float t = 6.28318530717958647692f * tj_u01_f32(b), sn, cs;
    uint32_t q = tj__trig_core_f(t, &sn, &cs);
    *even = r * tj__trig_pick_f(t, sn, cs, q + 1);
    *odd = r * tj__trig_pick_f(t, sn, cs, q);
}
TJ_VMI void tj__bm_f64(tj_philox_block w, double *even, double *odd) {
    double r = sqrt(-2.0 * tj_log(1.0 - tj_u01_f64(w.v[0], w.v[1])));
    double t = 6.28318530717958647692 * tj_u01_f64(w.v[2], w.v[3]), sn, cs;
    uint64_t q = tj__trig_core_d(t, &sn, &cs);
    *even = r * tj__trig_pick_d(t, sn, cs, q + 1);
    *odd = r * tj__trig_pick_d(t, sn, cs, q);
}

/* ---- one element: the definition ---- */

/* words are picked by selects, not an index, so loops of these vectorize */
TJ_VMI float tj_runif_f32(int64_t key, int64_t ctr) {
    tj_philox_block b = tj_philox_at(key, (uint64_t)ctr >> 2, 0);
    uint32_t lo = ctr & 1 ? b.v[1] : b.v[0], hi = ctr & 1 ? b.v[3] : b.v[2];
    return tj_u01_f32(ctr & 2 ? hi : lo);
}
TJ_VMI double tj_runif_f64(int64_t key, int64_t ctr) {
    tj_philox_block b = tj_philox_at(key, (uint64_t)ctr >> 1, 1);
    return ctr & 1 ? tj_u01_f64(b.v[2], b.v[3]) : tj_u01_f64(b.v[0], b.v[1]);
}
TJ_VMI float tj_rnorm_f32(int64_t key, int64_t ctr) {
    tj_philox_block b = tj_philox_at(key, (uint64_t)ctr >> 2, 0);
    float even, odd;
    tj__bm_f32(ctr & 2 ? b.v[2] : b.v[0], ctr & 2 ? b.v[3] : b.v[1], &even, &odd);
    return ctr & 1 ? odd : even;
}
TJ_VMI double tj_rnorm_f64(int64_t key, int64_t ctr) {
    double even, odd;
    tj__bm_f64(tj_philox_at(key, (uint64_t)ctr >> 1, 1), &even, &odd);
    return ctr & 1 ? odd : even;
}

/* ---- n values at counters c, c + 1, ...: whole blocks between element-wise ends ---- */

/* (C++ for NVRTC and the CUDA emulator, which compile this header too: no `restrict`) */
#ifdef __cplusplus
#define TJ_RESTRICT __restrict__
#else
#define TJ_RESTRICT restrict
#endif
#define TJ_FILL(NAME, T, LOG2, ELEM, BODY)                                             \
    TJ_VMI void NAME(T *TJ_RESTRICT o, int64_t key, int64_t c, int64_t n) {    \
        const int64_t per = 1 << LOG2;                                                 \
        int64_t i = 0;                                                                 \
        for (; i < n && ((c + i) & (per - 1)); i++) o[i] = ELEM(key, c + i);           \
        const int64_t nb = (n - i) >> LOG2;                                            \
        const uint64_t b0 = (uint64_t)(c + i) >> LOG2;                                 \
        T *TJ_RESTRICT ob = o + i;                                                     \
        for (int64_t j = 0; j < nb; j++) {                                             \
            BODY                                                                       \
        }                                                                              \
        for (i += nb << LOG2; i < n; i++) o[i] = ELEM(key, c + i);                     \
    }

TJ_FILL(tj_fill_runif_f32, float, 2, tj_runif_f32,
        tj_philox_block w = tj_philox_at(key, b0 + (uint64_t)j, 0);
        for (int k = 0; k < 4; k++) ob[4 * j + k] = tj_u01_f32(w.v[k]);)
TJ_FILL(tj_fill_runif_f64, double, 1, tj_runif_f64,
        tj_philox_block w = tj_philox_at(key, b0 + (uint64_t)j, 1);
        ob[2 * j] = tj_u01_f64(w.v[0], w.v[1]);
        ob[2 * j + 1] = tj_u01_f64(w.v[2], w.v[3]);)
TJ_FILL(tj_fill_rnorm_f32, float, 2, tj_rnorm_f32,
        tj_philox_block w = tj_philox_at(key, b0 + (uint64_t)j, 0);
        tj__bm_f32(w.v[0], w.v[1], &ob[4 * j], &ob[4 * j + 1]);
        tj__bm_f32(w.v[2], w.v[3], &ob[4 * j + 2], &ob[4 * j + 3]);)
TJ_FILL(tj_fill_rnorm_f64, double, 1, tj_rnorm_f64,
        tj__bm_f64(tj_philox_at(key, b0 + (uint64_t)j, 1), &ob[2 * j], &ob[2 * j + 1]);)

/* by the op table's names (ops.h: the DRAW ops), for the emitters */
#define tj_fill_RUNIF32 tj_fill_runif_f32
#define tj_fill_RUNIF64 tj_fill_runif_f64
#define tj_fill_RNORM32 tj_fill_rnorm_f32
#define tj_fill_RNORM64 tj_fill_rnorm_f64


/* ---- rejection samplers: gamma, Poisson, binomial ----
 * Ops RGAMMA (alpha, seed), RPOIS (rate, seed), RBINOM (count, prob, seed): the
 * parameters in the loop dtype (float32 or float64; computed in double, rounded once),
 * the seed int64. The seed is the call's key XOR the element's counter times an odd
 * constant (csrc/trace/random.c), so within a call no two elements share one. Each
 * element runs its own sub-stream: Philox4x32-10 keyed by the seed, counter words
 * (j, role, 2, 0) -- word 2 is 2, so no sub-stream block is a block of the plain
 * draws' streams (0 and 1) under any key. Attempt j reads block j of its roles, so a
 * value is a pure function of (seed, parameters): the same bits in any loop order,
 * thread count, tier or device.
 *
 * Every sampler makes a bounded number of attempts; if all are rejected the element is
 * NaN (a visible failure, never a biased value). The bounds make that astronomically
 * rare: gamma (Marsaglia-Tsang, acceptance >= 0.95 per attempt) 32 attempts, P <
 * 0.049^32 < 1e-41; Poisson (Hoermann's PTRS for rate >= 10, acceptance >= 0.8) and
 * binomial (Hoermann's BTRS for n min(p, 1-p) >= 10, acceptance >= 0.75) 64 attempts,
 * P < 0.25^64 < 1e-38; inversion (Poisson rate < 10: one uniform; binomial n q < 10:
 * at most 256 geometric steps, P(X >= 255 | mean < 10) < 1e-200). */
#define TJ_GAMMA_TRIES 32
#define TJ_PTRS_TRIES 64
#define TJ_BINV_STEPS 256

TJ_VMI tj_philox_block tj__sub(int64_t seed, uint32_t j, uint32_t role) {
    uint64_t k = (uint64_t)seed;
    return tj_philox4x32_10(j, role, 2, 0, (uint32_t)k, (uint32_t)(k >> 32));
}
/* (0, 1): 53 bits plus a half, so log is finite and never 0 */
TJ_VMI double tj__u_open(uint32_t hi, uint32_t lo) {
    return ((double)(int64_t)((((uint64_t)hi << 32) | lo) >> 11) + 0.5) * 0x1p-53;
}

/* Marsaglia and Tsang (2000): d = a - 1/3, c = 1/sqrt(9d), x normal, v = (1 + cx)^3,
 * accept d v when log u < x^2/2 + d - d v + d log v (the squeeze u < 1 - 0.0331 x^4
 * first). alpha < 1: a = alpha + 1 and the result times u^(1/alpha) (u from role 1).
 * Attempt j reads block j of role 0: x is Box-Muller's cosine of the 53-bit uniform
 * of words 0-1 and the 32-bit angle of word 2, u the 32-bit uniform of word 3. */
TJ_VMI double tj_rgamma(double alpha, int64_t seed) {
    if (!(alpha > 0)) return alpha == 0 ? 0.0 : NAN;   /* negative or NaN: NaN */
    if (alpha == INFINITY) return INFINITY;
    double a = alpha < 1 ? alpha + 1 : alpha, d = a - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (uint32_t j = 0; j < TJ_GAMMA_TRIES; j++) {
        tj_philox_block w = tj__sub(seed, j, 0);
        double r = sqrt(-2.0 * tj_log(tj__u_open(w.v[0], w.v[1])));
        double t = 6.28318530717958647692 * ((double)w.v[2] * 0x1p-32), sn, cs;
        uint64_t q = tj__trig_core_d(t, &sn, &cs);
        double x = r * tj__trig_pick_d(t, sn, cs, q + 1);
        double v = 1 + c * x;
        if (v <= 0) continue;
        double u = ((double)w.v[3] + 0.5) * 0x1p-32, v3 = v * v * v, x2 = x * x;
        if (u < 1 - 0.0331 * (x2 * x2) || tj_log(u) < 0.5 * x2 + d * (1 - v3 + tj_log(v3))) {
            double g = d * v3;
            if (alpha < 1) {
                tj_philox_block b = tj__sub(seed, 0, 1);
                g *= tj_exp(tj_log(tj__u_open(b.v[0], b.v[1])) / alpha);
            }
            return g;
        }
    }
    return NAN;
}

/* log(k!) - ((k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2): exact below 10, else the
 * Stirling series in n = k + 1 to n^-9 (error < 1e-14) */
TJ_VMI double tj__stirling_tail(double k) {
    if (k <= 9) {
        static const double tail[10] = {
            0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
            0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
            0.00925546218271273, 0.00833056343336287};
        return tail[(int)k];
    }
    double n = k + 1, z = 1 / (n * n);
    return (1.0 / 12 - z * (1.0 / 360 - z * (1.0 / 1260 - z * (1.0 / 1680 - z / 1188)))) / n;
}
TJ_VMI double tj__lfact(double k) {
    return (k + 0.5) * tj_log(k + 1) - (k + 1) + 0.91893853320467274178 + tj__stirling_tail(k);
}

/* Poisson: inversion of one uniform below rate 10 (the pmf summed until it passes u or
 * stops changing the sum), Hoermann's PTRS (1993) above, as NumPy's random_poisson_ptrs */
TJ_VMI double tj_rpois(double lam, int64_t seed) {
    if (!(lam >= 0) || lam == INFINITY) return NAN;
    if (lam == 0) return 0;
    if (lam < 10) {
        tj_philox_block w = tj__sub(seed, 0, 0);
        double u = tj_u01_f64(w.v[0], w.v[1]), p = tj_exp(-lam), f = p, k = 0;
        while (u >= f) {
            k += 1;
            p *= lam / k;
            if (f + p == f) break;
            f += p;
        }
        return k;
    }
    double slam = sqrt(lam), loglam = tj_log(lam), b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b, invalpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2), lia = tj_log(invalpha);
    for (uint32_t j = 0; j < TJ_PTRS_TRIES; j++) {
        tj_philox_block w = tj__sub(seed, j, 0);
        double U = tj_u01_f64(w.v[0], w.v[1]) - 0.5, V = tj__u_open(w.v[2], w.v[3]);
        double us = 0.5 - fabs(U);
        double k = floor((2 * a / us + b) * U + lam + 0.43);
        if (us >= 0.07 && V <= vr) return k;
        if (k < 0 || (us < 0.013 && V > us)) continue;
        if (tj_log(V) + lia - tj_log(a / (us * us) + b) <= -lam + k * loglam - tj__lfact(k))
            return k;
    }
    return NAN;
}

/* Binomial as torch's sample_binomial: q = min(p, 1 - p); n q < 10 by inversion
 * (geometric gaps, log u / log(1 - q) rounded up, counted until they pass n), else
 * Hoermann's BTRS (1993); p > 1/2 as n minus the draw for 1 - p */
TJ_VMI double tj__binv(double n, double q, int64_t seed) {
    double lq = tj_log1p(-q), s = 0, x = 0;
    for (uint32_t i = 0; i < TJ_BINV_STEPS; i++) {
        tj_philox_block w = tj__sub(seed, i >> 1, 0);
        double u = i & 1 ? tj__u_open(w.v[2], w.v[3]) : tj__u_open(w.v[0], w.v[1]);
        s += ceil(tj_log(u) / lq);
        if (s > n) return x;
        x += 1;
    }
    return NAN;
}
TJ_VMI double tj__btrs(double n, double p, int64_t seed) {
    double sd = sqrt(n * p * (1 - p)), b = 1.15 + 2.53 * sd, a = -0.0873 + 0.0248 * b + 0.01 * p;
    double c = n * p + 0.5, vr = 0.92 - 4.2 / b, r = p / (1 - p);
    double alpha = (2.83 + 5.1 / b) * sd, m = floor((n + 1) * p);
    double hm = (m + 0.5) * tj_log((m + 1) / (r * (n - m + 1))) + tj__stirling_tail(m) +
                tj__stirling_tail(n - m);
    for (uint32_t j = 0; j < TJ_PTRS_TRIES; j++) {
        tj_philox_block w = tj__sub(seed, j, 0);
        double U = tj_u01_f64(w.v[0], w.v[1]) - 0.5, V = tj__u_open(w.v[2], w.v[3]);
        double us = 0.5 - fabs(U), k = floor((2 * a / us + b) * U + c);
        if (k < 0 || k > n) continue;
        if (us >= 0.07 && V <= vr) return k;
        double lv = tj_log(V * alpha / (a / (us * us) + b));
        double ub = hm + (n + 1) * tj_log((n - m + 1) / (n - k + 1)) +
                    (k + 0.5) * tj_log(r * (n - k + 1) / (k + 1)) - tj__stirling_tail(k) -
                    tj__stirling_tail(n - k);
        if (lv <= ub) return k;
    }
    return NAN;
}
TJ_VMI double tj_rbinom(double n, double p, int64_t seed) {
    if (!(n >= 0) || !(p >= 0 && p <= 1) || n == INFINITY) return NAN;
    if (n == 0 || p == 0) return 0;
    if (p == 1) return n;
    double q = p > 0.5 ? 1 - p : p;
    double x = n * q < 10 ? tj__binv(n, q, seed) : tj__btrs(n, q, seed);
    return p > 0.5 ? n - x : x;
}

#endif
