/* Counter-based random numbers: each value is a pure function of (key, counter), so a
 * fused loop computes element i from i alone, in any order, on any thread, in either
 * tier, with the same bits. The generator is Philox4x32-10 (Salmon, Moraes, Dror,
 * Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11; it passes TestU01's
 * BigCrush), checked against Random123's known-answer vectors (tests/test_random.py).
 *
 * The op table's random ops (RUNIF32, RUNIF64, RNORM32, RNORM64) take two int64
 * operands: the call's key (drawn from the framework's generator at every call) and the
 * element's counter (its index plus the draw's offset, csrc/trace/random.c). One Philox
 * block (128 bits) per element: a float32 uniform uses 24 bits, a float64 one 53, a
 * normal two uniforms of its type through Box-Muller's cosine branch.
 * log and cos come from vmath.h, so both tiers compute the same bits. */
#ifndef TJ_PRIMS_RANDOM_H
#define TJ_PRIMS_RANDOM_H
#include <stdint.h>

typedef struct { uint32_t v[4]; } tj_philox_block;

static inline tj_philox_block tj_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2,
                                               uint32_t c3, uint32_t k0, uint32_t k1) {
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

/* Philox's output is the block after round 10; the counter's words are
 * (ctr low, ctr high, 0, 0) and the key's (key low, key high). */
static inline tj_philox_block tj_philox_at(int64_t key, int64_t ctr) {
    uint64_t k = (uint64_t)key, c = (uint64_t)ctr;
    return tj_philox4x32_10((uint32_t)c, (uint32_t)(c >> 32), 0, 0, (uint32_t)k,
                            (uint32_t)(k >> 32));
}

/* [0, 1): 24 (53) random bits times 2^-24 (2^-53); every value exact in its type */
static inline float tj_u01_f32(uint32_t w) { return (float)(w >> 8) * 0x1p-24f; }
static inline double tj_u01_f64(uint32_t hi, uint32_t lo) {
    return (double)((((uint64_t)hi << 32) | lo) >> 11) * 0x1p-53;
}

static inline float tj_runif_f32(int64_t key, int64_t ctr) {
    return tj_u01_f32(tj_philox_at(key, ctr).v[0]);
}
static inline double tj_runif_f64(int64_t key, int64_t ctr) {
    tj_philox_block b = tj_philox_at(key, ctr);
    return tj_u01_f64(b.v[0], b.v[1]);
}

/* Box-Muller, r cos(theta): u1 in (0, 1] (1 - [0, 1)) keeps log finite; the largest
 * |value| is sqrt(-2 log 2^-24) = 5.77 in float32, 8.57 in float64. */
static inline float tj_rnorm_f32(int64_t key, int64_t ctr) {
    tj_philox_block b = tj_philox_at(key, ctr);
    float u1 = 1.0f - tj_u01_f32(b.v[0]), u2 = tj_u01_f32(b.v[1]);
    return sqrtf(-2.0f * tj_logf(u1)) * tj_cosf(6.28318530717958647692f * u2);
}
static inline double tj_rnorm_f64(int64_t key, int64_t ctr) {
    tj_philox_block b = tj_philox_at(key, ctr);
    double u1 = 1.0 - tj_u01_f64(b.v[0], b.v[1]), u2 = tj_u01_f64(b.v[2], b.v[3]);
    return sqrt(-2.0 * tj_log(u1)) * tj_cos(6.28318530717958647692 * u2);
}

#endif
