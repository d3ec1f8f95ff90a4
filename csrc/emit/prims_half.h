/* prims_half.h: float16 (IEEE binary16) and bfloat16, the storage-only dtypes, to and
 * from float32 (and float64 to float16, one rounding as NumPy's cast). Rounding is to
 * nearest even; float16 keeps subnormals, overflows to inf at 65520, and a NaN keeps
 * its payload's top bits (NumPy's npy_floatbits_to_halfbits); bfloat16 is the top half
 * of a float32, rounded, a NaN becoming 0x7fc0 (c10's round_to_nearest_even). The
 * values are held in uint16_t: only casts, loads and stores touch them (arithmetic is
 * float32's, csrc/trace/dispatch.c). Branch-free: gcc vectorizes the conversions with
 * 32-bit integer lanes (gcc 12 vectorizes no _Float16 conversion without AVX512-FP16). */
#ifndef TJ_PRIMS_HALF_H
#define TJ_PRIMS_HALF_H
typedef union { float f; uint32_t u; } tj_fbits;
typedef union { double d; uint64_t u; } tj_dbits;

static inline float tj_h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    tj_fbits sub;
    sub.f = (float)m * 5.9604644775390625e-8f;   /* m * 2^-24, exact */
    uint32_t normal = ((e + 112) << 23) | (m << 13), inf = 0x7f800000u | (m << 13);
    tj_fbits r;
    r.u = sign | (e == 0 ? sub.u : e == 0x1f ? inf : normal);
    return r.f;
}

/* every case computed, then selected: gcc vectorizes it */
static inline uint16_t tj_f2h(float f) {
    tj_fbits x;
    x.f = f;
    uint32_t sign = (x.u >> 16) & 0x8000, ax = x.u & 0x7fffffffu;
    uint32_t m = (ax >> 13) & 0x3ff, nan = 0x7c00 | m | (m == 0);   /* NaN: its payload */
    tj_fbits a;
    a.u = ax;
    a.f += 0.5f;   /* below 2^-14, a subnormal: the add rounds at 2^-24 */
    uint32_t sub = a.u - 0x3f000000u;
    uint32_t normal = (ax + 0xc8000fffu + ((ax >> 13) & 1)) >> 13;   /* rebias, round to even */
    uint32_t r = ax > 0x7f800000u ? nan : ax >= 0x477ff000u ? 0x7c00 /* >= 65520: inf */
               : ax < 0x38800000u ? sub : normal;
    return (uint16_t)(sign | r);
}

static inline uint16_t tj_d2h(double d) {
    tj_dbits x;
    x.d = d;
    uint32_t sign = (uint32_t)(x.u >> 48) & 0x8000;
    uint64_t ax = x.u & 0x7fffffffffffffffull;
    if (ax > 0x7ff0000000000000ull) {   /* NaN */
        uint32_t m = (uint32_t)(ax >> 42) & 0x3ff;
        return (uint16_t)(sign | 0x7c00 | (m ? m : 1));
    }
    if (ax >= 0x40effe0000000000ull) return (uint16_t)(sign | 0x7c00);   /* >= 65520 */
    if (ax < 0x3f10000000000000ull) {   /* below 2^-14: round |d| * 2^24 to an integer */
        tj_dbits a;
        a.u = ax;
        volatile double t = a.d * 16777216.0 + 4503599627370496.0;
        return (uint16_t)(sign | (uint32_t)(t - 4503599627370496.0));
    }
    ax += 0xc100000000000000ull + 0x1ffffffffffull + ((ax >> 42) & 1);
    return (uint16_t)(sign | (uint32_t)(ax >> 42));
}

static inline float tj_bf2f(uint16_t h) {
    tj_fbits r;
    r.u = (uint32_t)h << 16;
    return r.f;
}

static inline uint16_t tj_f2bf(float f) {
    tj_fbits x;
    x.f = f;
    if ((x.u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    return (uint16_t)((x.u + 0x7fffu + ((x.u >> 16) & 1)) >> 16);
}
#endif
