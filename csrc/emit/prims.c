/* The primitives generated code calls: one contiguous loop per (op, loop dtype),
 * instantiated from the op table's spellings, compiled here by the system compiler
 * with SIMD (gcc vectorizes them; exp, expm1, log, log1p, tanh, sin, cos, power and
 * logaddexp use vmath.h's branch-free functions, the other transcendentals glibc's
 * libmvec vector variants). Contract: out never aliases an operand (restrict); each
 * primitive reads n elements of every operand and writes n elements of out.
 * Semantics match NumPy's loops (floor division, remainder, NaN-propagating
 * maximum, logaddexp, fmod, shifts by counts outside [0, bits)), including integer
 * division by zero giving 0. */
#ifdef TJ_ELEM_ONLY   /* compiled into the optimizing tier's kernels: helpers only */
#include <stdbool.h>
#include <stdint.h>
#include "ops.h"
#define TJ_BLOCK 512
#elif defined(TJ_STANDALONE)   /* an exported program's runtime (python/tracejit/_export.py) */
#include "tjrt.h"
#else
#include "emit/emit.h"
#endif
#include <math.h>

/* with -fno-math-errno (setup.py) libm calls vectorize; no-trapping-math lets gcc
 * if-convert vmath.h's selects, and no-thread-jumps keeps gcc 13's jump threading from
 * turning them back into branches (measured: softplus 7x slower, its loop scalar) */
#ifndef __CUDACC_RTC__   /* NVRTC (the CUDA backend) compiles the element helpers too */
#pragma GCC optimize("O3", "no-trapping-math", "no-thread-jumps")
#pragma GCC diagnostic ignored "-Wint-in-bool-context"  /* bool multiply is logical and */
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
/* x86-64-v4: AVX-512 F/BW/DQ/VL and FMA; v3: AVX2 and FMA (without FMA in the target,
 * vmath.h's fma() calls would stay scalar library calls) */
#define TJ_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TJ_CLONES
#endif

/* glibc's libmvec provides vector variants of these; declaring them lets gcc call
 * them from vectorized loops (the same declarations glibc makes under -ffast-math). */
#if defined(__GLIBC__) && defined(__x86_64__) && !defined(__clang__)
#define TJ_VEC __attribute__((simd("notinbranch")))
TJ_VEC float expf(float);     TJ_VEC double exp(double);
TJ_VEC float expm1f(float);   TJ_VEC double expm1(double);
TJ_VEC float logf(float);     TJ_VEC double log(double);
TJ_VEC float log1pf(float);   TJ_VEC double log1p(double);
TJ_VEC float log2f(float);    TJ_VEC double log2(double);
TJ_VEC float sinf(float);     TJ_VEC double sin(double);
TJ_VEC float cosf(float);     TJ_VEC double cos(double);
TJ_VEC float tanf(float);     TJ_VEC double tan(double);
TJ_VEC float tanhf(float);    TJ_VEC double tanh(double);
TJ_VEC float atanf(float);    TJ_VEC double atan(double);
TJ_VEC float asinf(float);    TJ_VEC double asin(double);
TJ_VEC float acosf(float);    TJ_VEC double acos(double);
TJ_VEC float sinhf(float);    TJ_VEC double sinh(double);
TJ_VEC float coshf(float);    TJ_VEC double cosh(double);
TJ_VEC float asinhf(float);   TJ_VEC double asinh(double);
TJ_VEC float acoshf(float);   TJ_VEC double acosh(double);
TJ_VEC float atanhf(float);   TJ_VEC double atanh(double);
TJ_VEC float exp2f(float);    TJ_VEC double exp2(double);
TJ_VEC float log10f(float);   TJ_VEC double log10(double);
TJ_VEC float cbrtf(float);    TJ_VEC double cbrt(double);
TJ_VEC float powf(float, float); TJ_VEC double pow(double, double);
TJ_VEC float atan2f(float, float); TJ_VEC double atan2(double, double);
TJ_VEC float hypotf(float, float); TJ_VEC double hypot(double, double);
#endif

/* ---- element helpers named in the op table's spellings ---- */

#include "vmath.h"   /* branch-free exp, log, ..., pow (float and double) */
#define TJ_VM(fn, x) _Generic((x), float: tj_##fn##f, default: tj_##fn)(x)
#define TJ_VM2(fn, x, y) _Generic((x), float: tj_##fn##f, default: tj_##fn)(x, y)
/* ops whose kernels finish with a fixup pass (TJ_FIXUP_<NAME>: ~, kind) */
#define TJ_FIXUP_SIN ~, 1
#define TJ_FIXUP_COS ~, 2
#define TJ__SECOND(a, b, ...) b
#define TJ__SECOND_(...) TJ__SECOND(__VA_ARGS__)
#define TJ_FIXKIND(NAME) TJ__SECOND_(TJ_FIXUP_##NAME, 0, ~)
/* ops whose kernels first try a fill of consecutive counters (TJ_FILL_<NAME>: ~, kind;
 * 1 uniform, 2 normal) */
#define TJ_FILL_RUNIF32 ~, 1
#define TJ_FILL_RUNIF64 ~, 1
#define TJ_FILL_RNORM32 ~, 2
#define TJ_FILL_RNORM64 ~, 2
#define TJ_HASFILL(NAME) TJ__SECOND_(TJ_FILL_##NAME, 0, ~)
/* operand layouts other than the arity's (TJ_LAYOUT_<NAME>: ~, layout): the rejection
 * samplers' float parameters then an int64 seed (S2: T, int64; S3: T, T, int64) */
#define TJ_LAYOUT_RGAMMA ~, S2
#define TJ_LAYOUT_RPOIS ~, S2
#define TJ_LAYOUT_RBINOM ~, S3
#define TJ_LAYOUT(NAME, ar) TJ__SECOND_(TJ_LAYOUT_##NAME, ar, ~)
#define TJ_CAT_(a, b) a##b
#define TJ_CAT(a, b) TJ_CAT_(a, b)
static inline void tj_no_fixup(void *o, const void *a, int64_t n, int kind) {}
#define TJ_FIXUP(o, a, n, kind) _Generic((o), float *: tj_trig_fixupf, \
    double *: tj_trig_fixup, default: tj_no_fixup)(o, a, n, kind)
#define TJ_EXP(x) TJ_VM(exp, x)
#define TJ_MATH(fn, x) _Generic((x), float: fn##f, default: fn)(x)
#define TJ_MATH2(fn, x, y) _Generic((x), float: fn##f, default: fn)(x, y)
#define TJ_GENSEL(name, x) _Generic((x), bool: tj_##name##_b, int8_t: tj_##name##_i8,     \
    int16_t: tj_##name##_i16, int32_t: tj_##name##_i32, int64_t: tj_##name##_i64,           \
    uint8_t: tj_##name##_u8, uint16_t: tj_##name##_u16, uint32_t: tj_##name##_u32,          \
    uint64_t: tj_##name##_u64, float: tj_##name##_f32, double: tj_##name##_f64)
#define TJ_GEN(name, x, y) TJ_GENSEL(name, x)(x, y)
#define TJ_GEN1(name, x) TJ_GENSEL(name, x)(x)
#define TJ_ABS(x) TJ_GEN1(abs, x)
#define TJ_INVERT(x) TJ_GEN1(invert, x)
#define TJ_RECIP(x) TJ_GEN1(recip, x)
#define TJ_SIGN(x) TJ_GEN1(sign, x)
#define TJ_ROUND(f, x) TJ_GEN1(f, x)
#include "prims_special.h"   /* TJ_SPECIAL: erf, erfc, lgamma, digamma */
#include "prims_random.h"    /* the random ops: Philox4x32-10 */
#include "prims_half.h"      /* float16, bfloat16 to and from float32 */

/* A float to an integer as NumPy converts it (the casts below say how) */
static inline int32_t tj_f2i32(double x) {
    return x >= -2147483648.0 && x < 2147483648.0 ? (int32_t)x : INT32_MIN;
}
static inline int64_t tj_f2i64(double x) {
    return x >= -9223372036854775808.0 && x < 9223372036854775808.0 ? (int64_t)x : INT64_MIN;
}
static inline bool tj_f2_b(double x) { return x != 0; }
static inline int8_t tj_f2_i8(double x) { return (int8_t)tj_f2i32(x); }
static inline int16_t tj_f2_i16(double x) { return (int16_t)tj_f2i32(x); }
static inline int32_t tj_f2_i32(double x) { return tj_f2i32(x); }
static inline int64_t tj_f2_i64(double x) { return tj_f2i64(x); }
static inline uint8_t tj_f2_u8(double x) { return (uint8_t)tj_f2i32(x); }
static inline uint16_t tj_f2_u16(double x) { return (uint16_t)tj_f2i32(x); }
static inline uint32_t tj_f2_u32(double x) {
    return x >= 2147483648.0 ? (uint32_t)tj_f2i32(x - 2147483648.0) ^ 0x80000000u
                             : (uint32_t)tj_f2i32(x);
}
static inline uint64_t tj_f2_u64(double x) {
    return x >= 9223372036854775808.0
               ? (uint64_t)tj_f2i64(x - 9223372036854775808.0) ^ 0x8000000000000000ull
               : (uint64_t)tj_f2i64(x);
}
static inline float tj_f2_f32(double x) { return (float)x; }
static inline double tj_f2_f64(double x) { return x; }

/* Shifts: NumPy defines counts outside [0, bits) (C does not): left gives 0, right
 * gives the sign (0 or -1). The left shift is done unsigned so it wraps. */
#define TJ_INT_HELPERS(T, s, U)                                                       \
    static inline T tj_floordiv_##s(T a, T b) {                                       \
        if (b == 0) return 0;                                                         \
        if (b == -1) return -a;                                                       \
        T q = a / b;                                                                  \
        if ((a % b != 0) && ((a < 0) != (b < 0))) q--;                                \
        return q;                                                                     \
    }                                                                                 \
    static inline T tj_mod_##s(T a, T b) {                                            \
        if (b == 0 || b == -1) return 0;                                              \
        T r = a % b;                                                                  \
        if (r != 0 && ((r < 0) != (b < 0))) r += b;                                   \
        return r;                                                                     \
    }                                                                                 \
    static inline T tj_pow_##s(T a, T b) {                                            \
        if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;              \
        T r = 1;                                                                      \
        while (b) { if (b & 1) r *= a; a *= a; b >>= 1; }                             \
        return r;                                                                     \
    }                                                                                 \
    static inline T tj_maximum_##s(T a, T b) { return a >= b ? a : b; }               \
    static inline T tj_minimum_##s(T a, T b) { return a <= b ? a : b; }               \
    static inline T tj_abs_##s(T a) { return a < 0 ? -a : a; }                        \
    static inline T tj_invert_##s(T a) { return ~a; }                                 \
    static inline T tj_recip_##s(T a) { return tj_f2_##s(1.0 / (double)a); }         \
    static inline T tj_sign_##s(T a) { return (T)((a > 0) - (a < 0)); }               \
    static inline T tj_floor_##s(T a) { return a; }                                   \
    static inline T tj_ceil_##s(T a) { return a; }                                    \
    static inline T tj_logaddexp_##s(T a, T b) { return a + b; /* unused: FLT */ }  \
    static inline T tj_fmod_##s(T a, T b) { return b == 0 || b == -1 ? 0 : a % b; }   \
    static inline T tj_lshift_##s(T a, T b) {                                         \
        return (U)b < sizeof(T) * 8 ? (T)((U)a << b) : 0;                             \
    }                                                                                 \
    static inline T tj_rshift_##s(T a, T b) {                                         \
        return (U)b < sizeof(T) * 8 ? a >> b : a < 0 ? -1 : 0;                        \
    }                                                                                 \
    static inline bool tj_isnan_##s(T a) { return false; }                            \
    static inline bool tj_isinf_##s(T a) { return false; }                            \
    static inline bool tj_isfinite_##s(T a) { return true; }
TJ_INT_HELPERS(int8_t, i8, uint8_t)
TJ_INT_HELPERS(int16_t, i16, uint16_t)
TJ_INT_HELPERS(int32_t, i32, uint32_t)
TJ_INT_HELPERS(int64_t, i64, uint64_t)

/* Unsigned: NumPy's loops, with no sign to correct (a right shift past the width
 * gives 0); a value of a narrow type is promoted to int by C, and every result is
 * converted back to T, which wraps as NumPy's does. */
#define TJ_UINT_HELPERS(T, s)                                                         \
    static inline T tj_floordiv_##s(T a, T b) { return b == 0 ? 0 : (T)(a / b); }    \
    static inline T tj_mod_##s(T a, T b) { return b == 0 ? 0 : (T)(a % b); }         \
    static inline T tj_pow_##s(T a, T b) {                                            \
        T r = 1;                                                                      \
        while (b) { if (b & 1) r = (T)(r * a); a = (T)(a * a); b >>= 1; }             \
        return r;                                                                     \
    }                                                                                 \
    static inline T tj_maximum_##s(T a, T b) { return a >= b ? a : b; }               \
    static inline T tj_minimum_##s(T a, T b) { return a <= b ? a : b; }               \
    static inline T tj_abs_##s(T a) { return a; }                                     \
    static inline T tj_invert_##s(T a) { return (T)~a; }                              \
    static inline T tj_recip_##s(T a) { return tj_f2_##s(1.0 / (double)a); }         \
    static inline T tj_sign_##s(T a) { return (T)(a > 0); }                           \
    static inline T tj_floor_##s(T a) { return a; }                                   \
    static inline T tj_ceil_##s(T a) { return a; }                                    \
    static inline T tj_logaddexp_##s(T a, T b) { return (T)(a + b); /* unused: FLT */ } \
    static inline T tj_fmod_##s(T a, T b) { return b == 0 ? 0 : (T)(a % b); }        \
    static inline T tj_lshift_##s(T a, T b) {                                         \
        return b < sizeof(T) * 8 ? (T)((uint64_t)a << b) : 0;                         \
    }                                                                                 \
    static inline T tj_rshift_##s(T a, T b) { return b < sizeof(T) * 8 ? (T)(a >> b) : 0; } \
    static inline bool tj_isnan_##s(T a) { return false; }                            \
    static inline bool tj_isinf_##s(T a) { return false; }                            \
    static inline bool tj_isfinite_##s(T a) { return true; }
TJ_UINT_HELPERS(uint8_t, u8)
TJ_UINT_HELPERS(uint16_t, u16)
TJ_UINT_HELPERS(uint32_t, u32)
TJ_UINT_HELPERS(uint64_t, u64)

static inline bool tj_maximum_b(bool a, bool b) { return a || b; }
static inline bool tj_minimum_b(bool a, bool b) { return a && b; }
static inline bool tj_abs_b(bool a) { return a; }
static inline bool tj_invert_b(bool a) { return !a; }
static inline bool tj_floor_b(bool a) { return a; }
static inline bool tj_ceil_b(bool a) { return a; }
static inline bool tj_isnan_b(bool a) { return false; }
static inline bool tj_isinf_b(bool a) { return false; }
static inline bool tj_isfinite_b(bool a) { return true; }
/* not in the masks of these ops; present so _Generic selections type-check */
static inline bool tj_recip_b(bool a) { return a; }
static inline bool tj_sign_b(bool a) { return a; }
static inline bool tj_floordiv_b(bool a, bool b) { return a && b; }
static inline bool tj_mod_b(bool a, bool b) { return a && b; }
static inline bool tj_pow_b(bool a, bool b) { return a || !b; }
static inline bool tj_logaddexp_b(bool a, bool b) { return a || b; }
static inline bool tj_fmod_b(bool a, bool b) { return a && b; }
static inline bool tj_lshift_b(bool a, bool b) { return a; }
static inline bool tj_rshift_b(bool a, bool b) { return a; }

#define TJ_FLOAT_HELPERS(T, s, F)                                                     \
    static inline T tj_mod_##s(T a, T b) {                                            \
        if (!b) return fmod##F(a, b);                                                 \
        T m = fmod##F(a, b);                                                          \
        if (m) { if ((b < 0) != (m < 0)) m += b; }                                    \
        else m = copysign##F((T)0, b);                                                \
        return m;                                                                     \
    }                                                                                 \
    static inline T tj_floordiv_##s(T a, T b) {                                       \
        if (!b) return a / b;                                                         \
        T m = fmod##F(a, b), d = (a - m) / b, fd;                                     \
        if (m && ((b < 0) != (m < 0))) d -= 1;                                        \
        if (d) { fd = floor##F(d); if (d - fd > (T)0.5) fd += 1; }                    \
        else fd = copysign##F((T)0, a / b);                                           \
        return fd;                                                                    \
    }                                                                                 \
    TJ_VMI T tj_pow_##s(T a, T b) { return tj_pow##F(a, b); }                            \
    /* NaN propagates; between equal values (0.0 and -0.0) NumPy returns b */      \
    /* (the NaN test apart: gcc vectorizes this form beside narrow-int conversions) */ \
    static inline T tj_maximum_##s(T a, T b) { T m = a > b ? a : b; return a != a ? a : m; } \
    static inline T tj_minimum_##s(T a, T b) { T m = a < b ? a : b; return a != a ? a : m; } \
    static inline T tj_abs_##s(T a) { return fabs##F(a); }                            \
    static inline T tj_invert_##s(T a) { return a; /* unused: INTB only */ }          \
    static inline T tj_recip_##s(T a) { return (T)1 / a; }                            \
    static inline T tj_sign_##s(T a) {                                                \
        return a > 0 ? (T)1 : a < 0 ? (T)-1 : a == 0 ? (T)0 : a;                      \
    }                                                                                 \
    static inline T tj_floor_##s(T a) { return floor##F(a); }                         \
    static inline T tj_ceil_##s(T a) { return ceil##F(a); }                           \
    /* NumPy's: x == y gives x + ln 2 (so inf, inf stays inf), NaN propagates */    \
    static inline T tj_logaddexp_##s(T x, T y) {                                      \
        T r = (x > y ? x : y) + tj_softplus##F(-fabs##F(x - y));                     \
        return x == y ? x + (T)0.693147180559945309417232121458176568 : r;            \
    }                                                                                 \
    static inline T tj_fmod_##s(T a, T b) { return fmod##F(a, b); }                   \
    static inline bool tj_isnan_##s(T a) { return isnan(a); }                         \
    static inline bool tj_isinf_##s(T a) { return isinf(a); }                         \
    static inline bool tj_isfinite_##s(T a) { return isfinite(a); }                   \
    static inline T tj_lshift_##s(T a, T b) { return a; /* unused: INT only */ }      \
    static inline T tj_rshift_##s(T a, T b) { return a; /* unused: INT only */ }
TJ_FLOAT_HELPERS(float, f32, f)
TJ_FLOAT_HELPERS(double, f64, )

/* ---- instantiation from the op table ---- */
/* TJ_WHEN_<mask>_<class>(x): x when the mask holds the dtype class (ops.h's TJ_DTYPES) */
#define TJ_WHEN_ALL_b(x) x
#define TJ_WHEN_ALL_s(x) x
#define TJ_WHEN_ALL_l(x) x
#define TJ_WHEN_ALL_u(x) x
#define TJ_WHEN_ALL_f(x) x
#define TJ_WHEN_ALL_d(x) x
#define TJ_WHEN_NUM_b(x)
#define TJ_WHEN_NUM_s(x) x
#define TJ_WHEN_NUM_l(x) x
#define TJ_WHEN_NUM_u(x) x
#define TJ_WHEN_NUM_f(x) x
#define TJ_WHEN_NUM_d(x) x
#define TJ_WHEN_INTB_b(x) x
#define TJ_WHEN_INTB_s(x) x
#define TJ_WHEN_INTB_l(x) x
#define TJ_WHEN_INTB_u(x) x
#define TJ_WHEN_INTB_f(x)
#define TJ_WHEN_INTB_d(x)
#define TJ_WHEN_INT_b(x)
#define TJ_WHEN_INT_s(x) x
#define TJ_WHEN_INT_l(x) x
#define TJ_WHEN_INT_u(x) x
#define TJ_WHEN_INT_f(x)
#define TJ_WHEN_INT_d(x)
#define TJ_WHEN_I64_b(x)
#define TJ_WHEN_I64_s(x)
#define TJ_WHEN_I64_l(x) x
#define TJ_WHEN_I64_u(x)
#define TJ_WHEN_I64_f(x)
#define TJ_WHEN_I64_d(x)
#define TJ_WHEN_FLT_b(x)
#define TJ_WHEN_FLT_s(x)
#define TJ_WHEN_FLT_l(x)
#define TJ_WHEN_FLT_u(x)
#define TJ_WHEN_FLT_f(x) x
#define TJ_WHEN_FLT_d(x) x
#define TJ_WHEN_F64_b(x)
#define TJ_WHEN_F64_s(x)
#define TJ_WHEN_F64_l(x)
#define TJ_WHEN_F64_u(x)
#define TJ_WHEN_F64_f(x)
#define TJ_WHEN_F64_d(x) x
/* float16, bfloat16: storage only, in no op's mask (their arithmetic is float32's) */
#define TJ_WHEN_ALL_h(x)
#define TJ_WHEN_ALL_g(x)
#define TJ_WHEN_F64_h(x)
#define TJ_WHEN_F64_g(x)
#define TJ_WHEN_FLT_h(x)
#define TJ_WHEN_FLT_g(x)
#define TJ_WHEN_I64_h(x)
#define TJ_WHEN_I64_g(x)
#define TJ_WHEN_INT_h(x)
#define TJ_WHEN_INT_g(x)
#define TJ_WHEN_INTB_h(x)
#define TJ_WHEN_INTB_g(x)
#define TJ_WHEN_NUM_h(x)
#define TJ_WHEN_NUM_g(x)
/* From ops.h's one table: M(args..., T, suffix, class, NAME) for every dtype
 * (TJ_EACH_DTYPE), M(T, suffix, class) (TJ_FOR_DTYPES), and the table again inside an
 * expansion of it (TJ_EACH_DTYPE2, deferred: the use is wrapped in TJ_EXPAND_, whose
 * rescan expands it outside the first expansion, where the preprocessor allows it). */
#define TJ_EACH_DTYPE(M, ...) TJ_DTYPES(M, __VA_ARGS__)
#define TJ_FOR1_(M, T, s, c, NAME) M(T, s, c)
#define TJ_FOR_DTYPES(M) TJ_DTYPES(TJ_FOR1_, M)
#define TJ_EMPTY_()
#define TJ_DTYPES_AGAIN_() TJ_DTYPES
#define TJ_EACH_DTYPE2(M, ...) TJ_DTYPES_AGAIN_ TJ_EMPTY_() () (M, __VA_ARGS__)
#define TJ_EXPAND_(...) __VA_ARGS__
#define TJ_IFEW_EW(x) x
#define TJ_IFEW_LEAF(x)
#define TJ_IFEW_VIEW(x)
#define TJ_IFEW_CAST(x)
#define TJ_IFEW_RED(x)
#define TJ_IFEW_CAT(x)
#define TJ_IFEW_GATH(x)
#define TJ_IFEW_SCAN(x)
#define TJ_OT_SAME(T) T
#define TJ_OT_BOOL(T) bool
#define TJ_OT_F32(T) float
#define TJ_OT_F64(T) double

#define TJ_OPERANDS_1(T) const T *restrict pa = a_;
#define TJ_OPERANDS_2(T) const T *restrict pa = a_, *restrict pb = b_;
#define TJ_OPERANDS_3(T) const uint8_t *restrict pa = a_; /* bytes: gcc vectorizes no bool load */ \
    const T *restrict pb = b_, *restrict pc = c_;
#define TJ_OPERANDS_S2(T) const T *restrict pa = a_; const int64_t *restrict pb = b_;
#define TJ_OPERANDS_S3(T) const T *restrict pa = a_, *restrict pb = b_; \
    const int64_t *restrict pc = c_;
#define TJ_ELEMS_1 T_ a = pa[i];
#define TJ_ELEMS_2 T_ a = pa[i], b = pb[i];
#define TJ_ELEMS_3 bool a = pa[i] != 0; T_ b = pb[i], c = pc[i];
#define TJ_ELEMS_S2 T_ a = pa[i]; int64_t b = pb[i];
#define TJ_ELEMS_S3 T_ a = pa[i], b = pb[i]; int64_t c = pc[i];

/* ---- dtype conversion: NumPy's casts ----
 * Between integers and to floats, C's conversion (wrapping; bool: nonzero). A float to
 * an integer as NumPy's loops compute it on x86-64 (measured, numpy 2.4): through
 * int32 for the narrower types, int64 for int64, an out-of-range value or NaN giving
 * the least value (then truncated), and the unsigned 32- and 64-bit types through the
 * signed conversion of x - 2^(bits-1) above 2^(bits-1). Spelled out, not left to C
 * (whose conversion is undefined there and differs between SIMD clones). A float
 * beyond uint32's range to uint32 is NumPy's vectorized loop's value: NumPy's scalar
 * loop (a one-element array) gives another (tests/test_dtypes.py). */
/* float32 -> float32 and float64 -> float32 stay one rounding */
#define TJ_CASTBODY_b(T, ts, x) (T)(x)
#define TJ_CASTBODY_s(T, ts, x) (T)(x)
#define TJ_CASTBODY_l(T, ts, x) (T)(x)
#define TJ_CASTBODY_u(T, ts, x) (T)(x)
#define TJ_CASTBODY_f(T, ts, x) tj_f2_##ts((double)(x))
#define TJ_CASTBODY_d(T, ts, x) tj_f2_##ts(x)
/* from float16 or bfloat16: through float32 (exact); to them: tj_f2h, tj_d2h, tj_f2bf
 * (an integer through float32: exact where float16 is finite) */
#define TJ_CASTBODY_h(T, ts, x) tj_cast_f32_##ts(tj_h2f(x))
#define TJ_CASTBODY_g(T, ts, x) tj_cast_f32_##ts(tj_bf2f(x))
#define TJ_TOH_b(x) tj_f2h((float)(x))
#define TJ_TOH_s(x) tj_f2h((float)(x))
#define TJ_TOH_l(x) tj_f2h((float)(x))
#define TJ_TOH_u(x) tj_f2h((float)(x))
#define TJ_TOH_f(x) tj_f2h(x)
#define TJ_TOH_d(x) tj_d2h(x)
#define TJ_TOH_h(x) (x)
#define TJ_TOH_g(x) tj_f2h(tj_bf2f(x))
#define TJ_TOG_b(x) tj_f2bf((float)(x))
#define TJ_TOG_s(x) tj_f2bf((float)(x))
#define TJ_TOG_l(x) tj_f2bf((float)(x))
#define TJ_TOG_u(x) tj_f2bf((float)(x))
#define TJ_TOG_f(x) tj_f2bf(x)
#define TJ_TOG_d(x) tj_f2bf((float)(x))   /* c10's: through float */
#define TJ_TOG_h(x) tj_f2bf(tj_h2f(x))
#define TJ_TOG_g(x) (x)
#define TJ_CASTTO_b(fc, T, ts, x) TJ_CASTBODY_##fc(T, ts, x)
#define TJ_CASTTO_s(fc, T, ts, x) TJ_CASTBODY_##fc(T, ts, x)
#define TJ_CASTTO_l(fc, T, ts, x) TJ_CASTBODY_##fc(T, ts, x)
#define TJ_CASTTO_u(fc, T, ts, x) TJ_CASTBODY_##fc(T, ts, x)
#define TJ_CASTTO_f(fc, T, ts, x) TJ_CASTBODY_##fc(T, ts, x)
#define TJ_CASTTO_d(fc, T, ts, x) TJ_CASTBODY_##fc(T, ts, x)
#define TJ_CASTTO_h(fc, T, ts, x) TJ_TOH_##fc(x)
#define TJ_CASTTO_g(fc, T, ts, x) TJ_TOG_##fc(x)
#define TJ_CASTFN(F, fs, fc, T, ts, tc, ...)                                               \
    static inline T tj_cast_##fs##_##ts(F x) { return TJ_CASTTO_##tc(fc, T, ts, x); }
#define TJ_CASTFNS_FROM(F, fs, fc) TJ_EACH_DTYPE2(TJ_CASTFN, F, fs, fc)
TJ_EXPAND_(TJ_FOR_DTYPES(TJ_CASTFNS_FROM))

#ifdef TJ_ELEM_ONLY
/* One element of each op, for the fused loops of csrc/emit/emit_fused.c and the CUDA
 * kernels of csrc/emit/emit_cuda.c (NVRTC: the selectors as C++ overloads). */
#ifdef __CUDACC_RTC__
#include "prims_cuda.h"
#endif
#define TJ_EARGS_1(T) T a
#define TJ_EARGS_2(T) T a, T b
#define TJ_EARGS_3(T) bool a, T b, T c
/* always inlined (gcc): in a plan of hundreds of groups (an LSTM unrolled over 32 steps)
 * gcc's unit-growth limit left exp and tanh out-of-line calls, the loops scalar
 * (measured: a third of the LSTM's time) */
#if defined(__GNUC__) && !defined(__CUDACC_RTC__)
#define TJ_EINLINE static inline __attribute__((always_inline))
#else
#define TJ_EINLINE static inline
#endif
#define TJ_EARGS_S2(T) T a, int64_t b
#define TJ_EARGS_S3(T) T a, T b, int64_t c
#define TJ_ELEM_FN(NAME, ar, out, SPELL, T, s)                                        \
    TJ_EINLINE TJ_OT_##out(T) tj_e_##NAME##_##s(TJ_CAT(TJ_EARGS_, TJ_LAYOUT(NAME, ar))(T)) { \
        return (TJ_OT_##out(T))(SPELL);                                               \
    }
#define TJ_EINST1(name, ar, out, sp, mask, T, s, c, ...) TJ_WHEN_##mask##_##c(TJ_ELEM_FN(name, ar, out, sp, T, s))
#define TJ_EINST(name, np, tn, ar, kind, mask, out, fl, fo, sp)                        \
    TJ_IFEW_##kind(TJ_EACH_DTYPE(TJ_EINST1, name, ar, out, sp, mask))
TJ_OPS(TJ_EINST)
/* float16, bfloat16: the one op on their bits, a copy */
TJ_ELEM_FN(COPY, 1, SAME, (a), uint16_t, f16)
TJ_ELEM_FN(COPY, 1, SAME, (a), uint16_t, bf16)
#else   /* the primitives */

/* A random op's operands (a block of keys and counters) when the key is one value and
 * the counters consecutive, as a contiguous draw's are: its fill computes whole Philox
 * blocks (prims_random.h), the same bits as the element function's. */
static int tj_draw_run(const void *a_, const void *b_, int64_t n) {
    const int64_t *key = a_, *ctr = b_;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad |= (key[i] ^ key[0]) | (ctr[i] - ctr[0] - i);
    return n > 0 && !bad;
}
#define TJ_FILLCALL(o, a_, b_, n, NAME) _Generic((o), float *: tj_fill_f32, double *: tj_fill_f64, \
    default: tj_no_fill)(o, *(const int64_t *)a_, *(const int64_t *)b_, n, TJ_HASFILL(NAME) == 2)
static inline void tj_no_fill(void *o, int64_t key, int64_t c, int64_t n, int normal) {}
static inline void tj_fill_f32(float *o, int64_t key, int64_t c, int64_t n, int normal) {
    if (normal) tj_fill_rnorm_f32(o, key, c, n);
    else tj_fill_runif_f32(o, key, c, n);
}
static inline void tj_fill_f64(double *o, int64_t key, int64_t c, int64_t n, int normal) {
    if (normal) tj_fill_rnorm_f64(o, key, c, n);
    else tj_fill_runif_f64(o, key, c, n);
}

#define TJ_KERNEL(NAME, ar, out, SPELL, T, s)                                         \
    TJ_CLONES void tj_p_##NAME##_##s(void *restrict o_, const void *restrict a_,      \
                                     const void *restrict b_, const void *restrict c_,\
                                     int64_t n) {                                     \
        typedef T T_;                                                                 \
        TJ_OT_##out(T) *restrict o = o_;                                              \
        if (TJ_HASFILL(NAME) && tj_draw_run(a_, b_, n)) {                             \
            TJ_FILLCALL(o, a_, b_, n, NAME);                                            \
            return;                                                                   \
        }                                                                             \
        TJ_CAT(TJ_OPERANDS_, TJ_LAYOUT(NAME, ar))(T)                                  \
        for (int64_t i = 0; i < n; i++) {                                             \
            TJ_CAT(TJ_ELEMS_, TJ_LAYOUT(NAME, ar))                                    \
            o[i] = (TJ_OT_##out(T))(SPELL);                                           \
        }                                                                             \
        if (TJ_FIXKIND(NAME)) TJ_FIXUP(o, pa, n, TJ_FIXKIND(NAME));                  \
    }

#define TJ_INST1(name, ar, out, sp, mask, T, s, c, ...) TJ_WHEN_##mask##_##c(TJ_KERNEL(name, ar, out, sp, T, s))
#define TJ_INST(name, np, tn, ar, kind, mask, out, fl, fo, sp)                        \
    TJ_IFEW_##kind(TJ_EACH_DTYPE(TJ_INST1, name, ar, out, sp, mask))
TJ_OPS(TJ_INST)
TJ_KERNEL(COPY, 1, SAME, (a), uint16_t, f16)   /* float16, bfloat16: a copy of the bits */
TJ_KERNEL(COPY, 1, SAME, (a), uint16_t, bf16)

/* dtype conversion, through the element helpers above */
#define TJ_CAST(F, fs, fc, T, ts, tc, ...)                                                 \
    TJ_CLONES void tj_p_CAST_##fs##_##ts(void *restrict o_, const void *restrict a_,  \
                                         const void *restrict b_,                     \
                                         const void *restrict c_, int64_t n) {        \
        T *restrict o = o_;                                                           \
        const F *restrict a = a_;                                                     \
        for (int64_t i = 0; i < n; i++) o[i] = tj_cast_##fs##_##ts(a[i]);             \
    }
#define TJ_CASTS_FROM(F, fs, fc) TJ_EACH_DTYPE2(TJ_CAST, F, fs, fc)
TJ_EXPAND_(TJ_FOR_DTYPES(TJ_CASTS_FROM))

/* Power with one exponent for the whole block (the emitter calls these when the
 * exponent is loop-invariant). float32 with a small integer exponent: repeated
 * squaring in double, exact before the final rounding (as accurate as powf, and
 * vectorized); otherwise the pow loop. */
TJ_CLONES void tj_p_POWS_f32(void *restrict o_, const void *restrict a_,
                             const void *restrict b_, const void *restrict c_, int64_t n) {
    float *restrict o = o_;
    const float *restrict a = a_;
    float e = *(const float *)b_;
    if (e == (float)(int)e && e >= -64 && e <= 64) {
        double r[TJ_BLOCK], p[TJ_BLOCK];
        for (int64_t s = 0; s < n; s += TJ_BLOCK) {
            int64_t m = n - s < TJ_BLOCK ? n - s : TJ_BLOCK;
            int k = (int)(e < 0 ? -e : e);
            for (int64_t i = 0; i < m; i++) { r[i] = 1.0; p[i] = a[s + i]; }
            for (; k; k >>= 1) {
                if (k & 1) for (int64_t i = 0; i < m; i++) r[i] *= p[i];
                if (k > 1) for (int64_t i = 0; i < m; i++) p[i] *= p[i];
            }
            if (e < 0) for (int64_t i = 0; i < m; i++) o[s + i] = (float)(1.0 / r[i]);
            else for (int64_t i = 0; i < m; i++) o[s + i] = (float)r[i];
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) o[i] = tj_powf(a[i], e);
}

TJ_CLONES void tj_p_POWS_f64(void *restrict o_, const void *restrict a_,
                             const void *restrict b_, const void *restrict c_, int64_t n) {
    double *restrict o = o_;
    const double *restrict a = a_;
    double e = *(const double *)b_;
    if (e == 2.0) {   /* correctly rounded pow(x, 2) is x*x */
        for (int64_t i = 0; i < n; i++) o[i] = a[i] * a[i];
        return;
    }
    for (int64_t i = 0; i < n; i++) o[i] = tj_pow(a[i], e);
}

/* ndarray.__pow__ with a run-time exponent: NumPy's shortcuts, x ** 0.5 as sqrt
 * (-0.0 -> -0.0, -inf -> nan) and x ** 2 as x * x; otherwise tj_p_POWS. */
#define TJ_POWSF(T, s, SQRT)                                                          \
    TJ_CLONES void tj_p_POWSF_##s(void *restrict o_, const void *restrict a_,         \
                                  const void *restrict b_, const void *restrict c_,   \
                                  int64_t n) {                                        \
        T *restrict o = o_;                                                           \
        const T *restrict a = a_;                                                     \
        T e = *(const T *)b_;                                                         \
        if (e == (T)0.5) { for (int64_t i = 0; i < n; i++) o[i] = SQRT(a[i]); return; } \
        if (e == (T)2) { for (int64_t i = 0; i < n; i++) o[i] = a[i] * a[i]; return; } \
        tj_p_POWS_##s(o_, a_, b_, c_, n);                                             \
    }
TJ_POWSF(float, f32, sqrtf)
TJ_POWSF(double, f64, sqrt)

/* Gathers n elements at a byte stride (0: broadcast one element) into out. */
#define TJ_LOAD(T, s)                                                                 \
    TJ_CLONES void tj_load_##s(void *restrict o_, const char *restrict src,          \
                               int64_t stride, int64_t n) {                           \
        T *restrict o = o_;                                                           \
        if (stride == 0) {                                                            \
            T v = *(const T *)src;                                                    \
            for (int64_t i = 0; i < n; i++) o[i] = v;                                 \
        } else {                                                                      \
            for (int64_t i = 0; i < n; i++) o[i] = *(const T *)(src + i * stride);    \
        }                                                                             \
    }
/* Gathers `rows` rows of `inner` elements (byte strides s_in within a row, s_out
 * between rows; 0 broadcasts) into out, contiguously. */
#define TJ_LOAD2(T, s)                                                                \
    TJ_CLONES void tj_load2_##s(void *restrict o_, const char *restrict src,         \
                                int64_t inner, int64_t s_in, int64_t s_out,           \
                                int64_t rows) {                                       \
        T *restrict o = o_;                                                           \
        for (int64_t r = 0; r < rows; r++) {                                          \
            const char *row = src + r * s_out;                                        \
            if (s_in == (int64_t)sizeof(T))                                           \
                memcpy(o + r * inner, row, (size_t)inner * sizeof(T));                \
            else if (s_in == 0) {   /* a row's one value (a softmax's max): a fill */ \
                const T v = *(const T *)row;                                          \
                for (int64_t i = 0; i < inner; i++) o[r * inner + i] = v;             \
            } else                                                                    \
                for (int64_t i = 0; i < inner; i++)                                   \
                    o[r * inner + i] = *(const T *)(row + i * s_in);                  \
        }                                                                             \
    }
/* Scatters n contiguous elements to a byte stride (the inverse of tj_load). */
#define TJ_STORE(T, s)                                                                \
    TJ_CLONES void tj_store_##s(char *restrict dst, const void *restrict src_,       \
                                int64_t stride, int64_t n) {                          \
        const T *restrict src = src_;                                                 \
        if (stride == (int64_t)sizeof(T)) { memcpy(dst, src, (size_t)n * sizeof(T)); return; } \
        for (int64_t i = 0; i < n; i++) *(T *)(dst + i * stride) = src[i];            \
    }
/* out[i] = base[i * s_inner + idx[i] * s_axis] (byte strides), a negative index
 * counting from the end; an index out of [-len, len) reads nothing, yields 0 and is
 * recorded in err (flag, index, len, axis) for the runtime's IndexError. */
#define TJ_GATHER(T, s)                                                               \
    void tj_gather_##s(void *restrict o_, const char *restrict base, int64_t s_inner, \
                       int64_t s_axis, int64_t len, const int64_t *restrict idx,      \
                       int64_t n, int64_t *err, int64_t axis) {                       \
        T *restrict o = o_;                                                           \
        for (int64_t i = 0; i < n; i++) {                                             \
            int64_t v = idx[i] < 0 ? idx[i] + len : idx[i];                           \
            if (v < 0 || v >= len) {                                                  \
                if (!err[0]) { err[0] = 1; err[1] = idx[i]; err[2] = len; err[3] = axis; } \
                o[i] = 0;                                                             \
                continue;                                                             \
            }                                                                         \
            o[i] = *(const T *)(base + i * s_inner + v * s_axis);                     \
        }                                                                             \
    }
#define TJ_GATHER_EACH(T, s, c) TJ_GATHER(T, s)
TJ_FOR_DTYPES(TJ_GATHER_EACH)

#define TJ_STORE_EACH(T, s, c) TJ_STORE(T, s)
TJ_FOR_DTYPES(TJ_STORE_EACH)

#define TJ_LOAD2_EACH(T, s, c) TJ_LOAD2(T, s)
TJ_FOR_DTYPES(TJ_LOAD2_EACH)

/* A virtual leaf's block (an IOTA's indices): out[k] = (start + k * step) / div, then
 * modulo mod when mod > 0. */
TJ_CLONES void tj_iota_i64(void *restrict o_, int64_t start, int64_t step, int64_t div,
                           int64_t mod, int64_t n) {
    int64_t *restrict o = o_;
    if (div == 1 && mod <= 0)
        for (int64_t k = 0; k < n; k++) o[k] = start + k * step;
    else if (mod <= 0)
        for (int64_t k = 0; k < n; k++) o[k] = (start + k * step) / div;
    else
        for (int64_t k = 0; k < n; k++) o[k] = (start + k * step) / div % mod;
}

#define TJ_LOAD_EACH(T, s, c) TJ_LOAD(T, s)
TJ_FOR_DTYPES(TJ_LOAD_EACH)

#ifndef TJ_STANDALONE   /* (an export links the primitives by name) */
/* ---- the symbol table handed to libtcc ---- */
#define TJ_SYM(NAME, T, s) {"tj_p_" #NAME "_" #s, (void *)tj_p_##NAME##_##s},
#define TJ_SYMS1(name, ar, out, sp, mask, T, s, c, ...) TJ_WHEN_##mask##_##c(TJ_SYM(name, T, s))
#define TJ_SYMS(name, np, tn, ar, kind, mask, out, fl, fo, sp)                        \
    TJ_IFEW_##kind(TJ_EACH_DTYPE(TJ_SYMS1, name, ar, out, sp, mask))
#define TJ_CASTSYM(F, fs, fc, T, ts, tc, ...) {"tj_p_CAST_" #fs "_" #ts, (void *)tj_p_CAST_##fs##_##ts},
#define TJ_CASTSYMS_FROM(F, fs, fc) TJ_EACH_DTYPE2(TJ_CASTSYM, F, fs, fc)
#define TJ_MOVESYMS(T, s, c) {"tj_gather_" #s, (void *)tj_gather_##s},                  \
    {"tj_store_" #s, (void *)tj_store_##s}, {"tj_load2_" #s, (void *)tj_load2_##s},       \
    {"tj_load_" #s, (void *)tj_load_##s},

const tj_symbol tj_prim_symbols[] = {
    TJ_OPS(TJ_SYMS)
    TJ_SYM(COPY, uint16_t, f16) TJ_SYM(COPY, uint16_t, bf16)
    TJ_EXPAND_(TJ_FOR_DTYPES(TJ_CASTSYMS_FROM))
    {"tj_p_POWS_f32", (void *)tj_p_POWS_f32}, {"tj_p_POWS_f64", (void *)tj_p_POWS_f64},
    {"tj_p_POWSF_f32", (void *)tj_p_POWSF_f32}, {"tj_p_POWSF_f64", (void *)tj_p_POWSF_f64},
    TJ_FOR_DTYPES(TJ_MOVESYMS)
    {"tj_iota_i64", (void *)tj_iota_i64},
    {NULL, NULL},
};
const int tj_n_prim_symbols = (int)(sizeof tj_prim_symbols / sizeof tj_prim_symbols[0]) - 1;

/* ---- one element, for constant folding (csrc/fuse/fold.c) ---- */
#define TJ_DTI_b TJ_BOOL
#define TJ_DTI_i8 TJ_I8
#define TJ_DTI_i16 TJ_I16
#define TJ_DTI_i32 TJ_I32
#define TJ_DTI_i64 TJ_I64
#define TJ_DTI_u8 TJ_U8
#define TJ_DTI_u16 TJ_U16
#define TJ_DTI_u32 TJ_U32
#define TJ_DTI_u64 TJ_U64
#define TJ_DTI_f32 TJ_F32
#define TJ_DTI_f64 TJ_F64
#define TJ_DTI_f16 TJ_F16
#define TJ_DTI_bf16 TJ_BF16
#define TJ_PTR(NAME, s) [TJ_OP_##NAME][TJ_DTI_##s] = tj_p_##NAME##_##s,
#define TJ_PTRS1(name, ar, out, sp, mask, T, s, c, ...) TJ_WHEN_##mask##_##c(TJ_PTR(name, s))
#define TJ_PTRS(name, np, tn, ar, kind, mask, out, fl, fo, sp)                        \
    TJ_IFEW_##kind(TJ_EACH_DTYPE(TJ_PTRS1, name, ar, out, sp, mask))
static const tj_prim_fn ew_prims[TJ_NOPS][TJ_NDTYPES] = {TJ_OPS(TJ_PTRS) TJ_PTR(COPY, f16) TJ_PTR(COPY, bf16)};
#define TJ_CASTPTR(F, fs, fc, T, ts, tc, ...) [TJ_DTI_##fs][TJ_DTI_##ts] = tj_p_CAST_##fs##_##ts,
#define TJ_CASTPTRS_FROM(F, fs, fc) TJ_EACH_DTYPE2(TJ_CASTPTR, F, fs, fc)
static const tj_prim_fn cast_prims[TJ_NDTYPES][TJ_NDTYPES] = {TJ_EXPAND_(TJ_FOR_DTYPES(TJ_CASTPTRS_FROM))};

/* An element to and from a tj_scalar (ints, uint64 as its bits, in .i; floats in .f). */
#define TJ_TOB(T, s, c) case TJ_DTI_##s: { T x = TJ_SCAL_GET_##c(v, T); memcpy(buf, &x, sizeof x); break; }
#define TJ_FROMB(T, s, c) case TJ_DTI_##s: { T x; memcpy(&x, buf, sizeof x); TJ_SCAL_SET_##c(v, x); break; }
#define TJ_SCAL_GET_b(v, T) (T)((v).i != 0)
#define TJ_SCAL_GET_s(v, T) (T)(v).i
#define TJ_SCAL_GET_l(v, T) (T)(v).i
#define TJ_SCAL_GET_u(v, T) (T)(v).i
#define TJ_SCAL_GET_f(v, T) (T)(v).f
#define TJ_SCAL_GET_d(v, T) (T)(v).f
#define TJ_SCAL_GET_h(v, T) tj_d2h((v).f)
#define TJ_SCAL_GET_g(v, T) tj_f2bf((float)(v).f)
#define TJ_SCAL_SET_b(v, x) (v).i = (x) != 0
#define TJ_SCAL_SET_s(v, x) (v).i = (int64_t)(x)
#define TJ_SCAL_SET_l(v, x) (v).i = (int64_t)(x)
#define TJ_SCAL_SET_u(v, x) (v).i = (int64_t)(x)
#define TJ_SCAL_SET_f(v, x) (v).f = (double)(x)
#define TJ_SCAL_SET_d(v, x) (v).f = (double)(x)
#define TJ_SCAL_SET_h(v, x) (v).f = (double)tj_h2f(x)
#define TJ_SCAL_SET_g(v, x) (v).f = (double)tj_bf2f(x)
static void to_bytes(unsigned char *buf, int dtype, tj_scalar v) {
    switch (dtype) { TJ_FOR_DTYPES(TJ_TOB) default: break; }
}

static tj_scalar from_bytes(const unsigned char *buf, int dtype) {
    tj_scalar v = {0};
    switch (dtype) { TJ_FOR_DTYPES(TJ_FROMB) default: break; }
    return v;
}

tj_scalar tj_scalar_load(int dtype, const void *p) { return from_bytes(p, dtype); }
void tj_scalar_store(int dtype, void *p, tj_scalar v) { to_bytes(p, dtype, v); }

int tj_eval_scalar(int op, int dtype, int out_dtype, const tj_scalar *in, tj_scalar *out) {
    if (op < 0 || op >= TJ_NOPS || dtype < 0 || dtype >= TJ_NDTYPES || out_dtype < 0 ||
        out_dtype >= TJ_NDTYPES)
        return -1;
    tj_prim_fn fn = op == TJ_OP_CAST ? cast_prims[dtype][out_dtype] : ew_prims[op][dtype];
    if (!fn) return -1;
    if (op != TJ_OP_CAST && out_dtype != (tj_ops[op].out == TJ_O_BOOL ? TJ_BOOL : dtype)) return -1;
    _Alignas(8) unsigned char buf[4][8] = {{0}};
    for (int a = 0; a < tj_ops[op].arity; a++)
        to_bytes(buf[a + 1], op == TJ_OP_WHERE && a == 0 ? TJ_BOOL : dtype, in[a]);
    fn(buf[0], buf[1], buf[2], buf[3], 1);
    *out = from_bytes(buf[0], out_dtype);
    return 0;
}
#endif   /* TJ_STANDALONE */
#endif   /* TJ_ELEM_ONLY */
