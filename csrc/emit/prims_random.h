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

#endif
