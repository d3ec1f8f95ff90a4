/* The op table's selectors for NVRTC (CUDA C++), where C11's _Generic does not exist:
 * the same choices by overloading on the operand's type (float: the f-suffixed
 * function, otherwise the double one; the loop dtypes' helpers). prims.c includes
 * this after its helpers and before instantiating tj_e_<op>_<dtype> when __CUDACC_RTC__
 * is defined; every function is a device function (NVRTC's
 * --device-as-default-execution-space, csrc/backend/cuda_api.c). */
#ifndef TJ_PRIMS_CUDA_H
#define TJ_PRIMS_CUDA_H

#define TJ_CU_FD(pre, fn, f32fn, f64fn)                                              \
    static inline float pre##fn(float x) { return f32fn(x); }                         \
    static inline double pre##fn(double x) { return f64fn(x); }
#define TJ_CU_FD2(pre, fn, f32fn, f64fn)                                             \
    static inline float pre##fn(float x, float y) { return f32fn(x, y); }            \
    static inline double pre##fn(double x, double y) { return f64fn(x, y); }
/* vmath.h's branch-free functions: the CPU tiers' bits */
#define TJ_CU_VM(fn) TJ_CU_FD(tj_cv_, fn, tj_##fn##f, tj_##fn)
TJ_CU_VM(exp) TJ_CU_VM(expm1) TJ_CU_VM(log) TJ_CU_VM(log1p) TJ_CU_VM(sin) TJ_CU_VM(cos)
TJ_CU_VM(tanh) TJ_CU_VM(erf)
TJ_CU_FD2(tj_cv_, pow, tj_powf, tj_pow)
/* the others: CUDA's math library */
#define TJ_CU_M(fn) TJ_CU_FD(tj_cm_, fn, fn##f, fn)
TJ_CU_M(log2) TJ_CU_M(sqrt) TJ_CU_M(tan) TJ_CU_M(atan) TJ_CU_M(asin) TJ_CU_M(acos)
TJ_CU_M(sinh) TJ_CU_M(cosh) TJ_CU_M(asinh) TJ_CU_M(acosh) TJ_CU_M(atanh) TJ_CU_M(exp2)
TJ_CU_M(log10) TJ_CU_M(cbrt)
TJ_CU_FD2(tj_cm_, atan2, atan2f, atan2) TJ_CU_FD2(tj_cm_, hypot, hypotf, hypot)
TJ_CU_FD2(tj_cm_, copysign, copysignf, copysign)
#define TJ_CU_SP(fn) TJ_CU_FD(tj_cs_, fn, tj_##fn##_f32, tj_##fn##_f64)
TJ_CU_SP(erfc) TJ_CU_SP(lgamma) TJ_CU_SP(digamma)
/* the loop dtypes' helpers */
#define TJ_CU_G1(fn)                                                                  \
    static inline auto tj_cg_##fn(bool a) { return tj_##fn##_b(a); }                 \
    static inline auto tj_cg_##fn(int8_t a) { return tj_##fn##_i8(a); }              \
    static inline auto tj_cg_##fn(int16_t a) { return tj_##fn##_i16(a); }            \
    static inline auto tj_cg_##fn(int32_t a) { return tj_##fn##_i32(a); }            \
    static inline auto tj_cg_##fn(uint8_t a) { return tj_##fn##_u8(a); }             \
    static inline auto tj_cg_##fn(uint16_t a) { return tj_##fn##_u16(a); }           \
    static inline auto tj_cg_##fn(uint32_t a) { return tj_##fn##_u32(a); }           \
    static inline auto tj_cg_##fn(uint64_t a) { return tj_##fn##_u64(a); }           \
    static inline auto tj_cg_##fn(int64_t a) { return tj_##fn##_i64(a); }            \
    static inline auto tj_cg_##fn(float a) { return tj_##fn##_f32(a); }              \
    static inline auto tj_cg_##fn(double a) { return tj_##fn##_f64(a); }
#define TJ_CU_G2(fn)                                                                  \
    static inline auto tj_cg_##fn(bool a, bool b) { return tj_##fn##_b(a, b); }      \
    static inline auto tj_cg_##fn(int8_t a, int8_t b) { return tj_##fn##_i8(a, b); } \
    static inline auto tj_cg_##fn(int16_t a, int16_t b) { return tj_##fn##_i16(a, b); } \
    static inline auto tj_cg_##fn(int32_t a, int32_t b) { return tj_##fn##_i32(a, b); } \
    static inline auto tj_cg_##fn(uint8_t a, uint8_t b) { return tj_##fn##_u8(a, b); } \
    static inline auto tj_cg_##fn(uint16_t a, uint16_t b) { return tj_##fn##_u16(a, b); } \
    static inline auto tj_cg_##fn(uint32_t a, uint32_t b) { return tj_##fn##_u32(a, b); } \
    static inline auto tj_cg_##fn(uint64_t a, uint64_t b) { return tj_##fn##_u64(a, b); } \
    static inline auto tj_cg_##fn(int64_t a, int64_t b) { return tj_##fn##_i64(a, b); } \
    static inline auto tj_cg_##fn(float a, float b) { return tj_##fn##_f32(a, b); }  \
    static inline auto tj_cg_##fn(double a, double b) { return tj_##fn##_f64(a, b); }
TJ_CU_G1(abs) TJ_CU_G1(invert) TJ_CU_G1(recip) TJ_CU_G1(sign) TJ_CU_G1(floor) TJ_CU_G1(ceil)
TJ_CU_G1(isnan) TJ_CU_G1(isinf) TJ_CU_G1(isfinite)
TJ_CU_G2(floordiv) TJ_CU_G2(mod) TJ_CU_G2(pow) TJ_CU_G2(maximum) TJ_CU_G2(minimum)
TJ_CU_G2(logaddexp) TJ_CU_G2(fmod) TJ_CU_G2(lshift) TJ_CU_G2(rshift)

#undef TJ_VM
#undef TJ_VM2
#undef TJ_MATH
#undef TJ_MATH2
#undef TJ_GEN
#undef TJ_GEN1
#undef TJ_SPECIAL
#define TJ_VM(fn, x) tj_cv_##fn(x)
#define TJ_VM2(fn, x, y) tj_cv_##fn(x, y)
#define TJ_MATH(fn, x) tj_cm_##fn(x)
#define TJ_MATH2(fn, x, y) tj_cm_##fn(x, y)
#define TJ_GEN(name, x, y) tj_cg_##name(x, y)
#define TJ_GEN1(name, x) tj_cg_##name(x)
#define TJ_SPECIAL(name, x) tj_cs_##name(x)

#endif
