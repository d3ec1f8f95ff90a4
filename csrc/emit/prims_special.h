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

/* d x / d alpha of a standard gamma sample x (implicit reparameterization: -dF/dalpha
 * over the density), as torch's standard_gamma_grad_one computes it (Jankowiak and
 * Obermeyer's approximation, ATen/native/Distributions.h): a series in x below 0.8,
 * Rice's saddle point expansion for alpha > 8, else a bivariate rational function of
 * log(x / alpha) and log(alpha); in double, whatever the dtype. */
static inline double tj_gamma_grad_d(double alpha, double x) {
    if (x < 0.8) {
        double numer = 1, denom = alpha, s1 = numer / denom, s2 = numer / (denom * denom);
        for (int i = 1; i <= 5; ++i) {
            numer *= -x / i;
            denom += 1;
            s1 += numer / denom;
            s2 += numer / (denom * denom);
        }
        double pxa = pow(x, alpha), pdf = pow(x, alpha - 1) * exp(-x), cdf = pxa * s1;
        double cdf_a = (log(x) - tj_digamma_d(alpha)) * cdf - pxa * s2, r = -cdf_a / pdf;
        return r != r ? 0.0 : r;
    }
    if (alpha > 8) {
        if (0.9 * alpha <= x && x <= 1.1 * alpha) {
            double n1 = 1 + 24 * alpha * (1 + 12 * alpha);
            double n2 = 1440 * (alpha * alpha) + 6 * x * (53 - 120 * x) - 65 * x * x / alpha +
                        alpha * (107 + 3600 * x);
            double den = 1244160 * (alpha * alpha) * (alpha * alpha);
            return n1 * n2 / den;
        }
        double den = sqrt(8 * alpha), t2 = den / (alpha - x);
        double t3 = pow(x - alpha - alpha * log(x / alpha), -1.5);
        double t23 = x < alpha ? t2 - t3 : t2 + t3;
        double t1 = log(x / alpha) * t23 - sqrt(2 / alpha) * (alpha + x) / ((alpha - x) * (alpha - x));
        double st = 1 + 1 / (12 * alpha) * (1 + 1 / (24 * alpha));
        return -st * (x * t1) / den;
    }
    double u = log(x / alpha), v = log(alpha), c[8];
    static const double k0[8] = {0.16009398, -0.094634809, 0.025146376, -0.0030648343,
                                 1, 0.32668115, 0.10406089, 0.0014179084};
    static const double k1[8] = {0.53487893, 0.1298071, 0.065735949, -0.0015649758,
                                 0.16639465, 0.020070113, -0.0035938915, -0.00058392623};
    static const double k2[8] = {0.040121004, -0.0065914022, -0.0026286047, -0.0013441777,
                                 0.017050642, -0.0021309326, 0.00085092367, -1.5247877e-07};
    for (int i = 0; i < 8; i++) c[i] = k0[i] + u * (k1[i] + u * k2[i]);
    double p = c[0] + v * (c[1] + v * (c[2] + v * c[3]));
    double q = c[4] + v * (c[5] + v * (c[6] + v * c[7]));
    return exp(p / q);
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
