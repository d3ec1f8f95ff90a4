/* Element helpers of the special functions torch code uses (erf, erfc, lgamma,
 * digamma), named in the op table's spellings and instantiated into primitives by
 * csrc/emit/prims.c, which includes this file. float32 is computed in double and
 * rounded once, so it is correctly rounded wherever the double result is within
 * half an ulp of float; float64 is glibc's (erf, erfc, lgamma_r: within a few ulp)
 * and, for digamma, the series below (relative error ~1e-15 away from its zeros).
 * Semantics follow torch: lgamma(x) = log|Gamma(x)| (inf at 0 and the negative
 * integers), digamma(+0) = -inf and digamma(-0) = +inf, nan at the negative integers and -inf. */
#ifndef TJ_PRIMS_SPECIAL_H
#define TJ_PRIMS_SPECIAL_H
#include <math.h>

#ifdef __CUDACC_RTC__   /* NVRTC: CUDA's lgamma (no global sign to write) */
static inline double tj_lgamma_d(double x) { return lgamma(x); }
#else
double lgamma_r(double, int *);   /* glibc; reentrant: no write to signgam */

static inline double tj_lgamma_d(double x) {
    int sign;
    return lgamma_r(x, &sign);
}
#endif

/* psi(x): reflection below 0, recurrence up to x >= 6, then the asymptotic series
 * psi(x) = log x - 1/2x - sum B2k / (2k x^2k). */
static inline double tj_digamma_d(double x) {
    static const double pi = 3.14159265358979323846;
    if (x == 0) return signbit(x) ? INFINITY : -INFINITY;   /* torch's signs */
    if (x != x || x == INFINITY) return x;
    if (x == -INFINITY) return NAN;
    double acc = 0;
    if (x < 0) {
        if (x == floor(x)) return NAN;
        /* psi(x) = psi(1 - x) - pi / tan(pi x); tan(pi x) from the fractional part */
        double r = x - floor(x);
        acc = -pi / tan(pi * r);
        x = 1 - x;
    }
    while (x < 6) { acc -= 1 / x; x += 1; }
    double z = 1 / (x * x);
    double s = z * (1.0 / 12 - z * (1.0 / 120 - z * (1.0 / 252 - z * (1.0 / 240 - z * (1.0 / 132
               - z * (691.0 / 32760 - z * (1.0 / 12)))))));
    return acc + log(x) - 0.5 / x - s;
}

#define TJ_SPECIAL_HELPERS(T, s)                                                      \
    static inline T tj_erf_##s(T a) { return (T)erf((double)a); }                     \
    static inline T tj_erfc_##s(T a) { return (T)erfc((double)a); }                   \
    static inline T tj_lgamma_##s(T a) { return (T)tj_lgamma_d((double)a); }          \
    static inline T tj_digamma_##s(T a) { return (T)tj_digamma_d((double)a); }
TJ_SPECIAL_HELPERS(float, f32)
TJ_SPECIAL_HELPERS(double, f64)
#define TJ_SPECIAL(name, x) _Generic((x), float: tj_##name##_f32, default: tj_##name##_f64)(x)

#endif
