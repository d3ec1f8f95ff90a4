/* Elementary functions written to vectorize: exp, expm1, log, log1p, tanh, sigmoid,
 * softplus, erf, sin, cos and pow for float and double, as static inline scalar code
 * with no branches (special cases are selects), so gcc vectorizes the loops that
 * call them (csrc/emit/prims.c; any C compiled by gcc can include this header: it
 * needs only <math.h> and <stdint.h>, and libm only for sin/cos fixups). Compile the
 * callers with -O3 -fno-math-errno -fno-trapping-math -fno-thread-jumps
 * -ffp-contract=off (prims.c: #pragma GCC optimize("O3", "no-trapping-math",
 * "no-thread-jumps") before the #include; gcc 13's jump threading otherwise turns the
 * selects back into branches), so the inline
 * functions share the callers' options), for a target with FMA (prims.c's clones are
 * x86-64-v4 and x86-64-v3): with trapping math gcc keeps a branch around a division,
 * and without FMA fma() is a library call; either way the loop stays scalar.
 *
 * Accuracy (tests/test_accuracy.py measures it against correctly rounded results):
 * float32 within 2 ulp, float64 within 4 ulp; NaN propagates, infinities, signed
 * zeros, subnormal inputs and results and the overflow thresholds follow C99/NumPy.
 * Techniques: Cody-Waite argument reduction with FMA, 2^k built from integer bit
 * operations (the 1.5*2^52 shifter: no float<->int64 conversion, which AVX-512F lacks),
 * polynomials fitted by tools/fit_vmath.py. float exp, expm1, log, log1p, tanh,
 * sigmoid, erf, sin and cos run in float (16 lanes per AVX-512 vector); float softplus
 * and pow evaluate in double with shorter polynomials (their error is then the final
 * rounding plus ~1e-9). Measured maxima: tests/test_accuracy.py (-s prints them).
 * The functions need only libm's fma/rint/copysign (inlined by gcc on x86-64-v3 and
 * later; TinyCC parses the header but would need those symbols registered).
 *
 * sin and cos reduce |x| < TJ_TRIG_LIMIT (2^30; float: TJ_TRIG_LIMITF, 2^15)
 * branch-free; beyond it the element functions return NaN and a loop must call
 * tj_trig_fixup{,f} after the vector pass, which recomputes those few lanes with
 * libm's scalar sin/cos (exact Payne-Hanek reduction). */
#ifndef TJ_VMATH_H
#define TJ_VMATH_H
#include <math.h>
#include <stdint.h>

/* always inline: the callers are target_clones loops, where gcc's size limits would
 * otherwise leave a scalar call in the loop */
#define TJ_VMI static inline __attribute__((always_inline))

typedef union { double f; uint64_t u; } tj__d64;
typedef union { float f; uint32_t u; } tj__f32;
TJ_VMI uint64_t tj__bits(double x) { tj__d64 v; v.f = x; return v.u; }
TJ_VMI double tj__dbl(uint64_t u) { tj__d64 v; v.u = u; return v.f; }
TJ_VMI uint32_t tj__bitsf(float x) { tj__f32 v; v.f = x; return v.u; }
TJ_VMI float tj__flt(uint32_t u) { tj__f32 v; v.u = u; return v.f; }

#define TJ__SHIFT 0x1.8p52                 /* x + SHIFT leaves round(x) in the low bits */
#define TJ__INVLN2 0x1.71547652b82fep0
#define TJ__LN2 0x1.62e42fefa39efp-1       /* ln 2 = LN2 + LN2LO */
#define TJ__LN2LO 0x1.abc9e3b39803fp-56
#define TJ__LN2HI 0x1.62e42fefa3000p-1     /* 41 bits: e * LN2HI is exact for |e| < 2^12 */
#define TJ__LN2HILO 0x1.3de6af278ece6p-42
#define TJ__INF ((double)INFINITY)

/* ---- exp family (double) ---- */

/* expm1(r) for |r| <= 0.357: r + r^2/2 + r^3 q(r), q of degree 9 (rel. err 1.3e-16 on q) */
TJ_VMI double tj__expm1_r(double r) {
    double q = 2.091325492438524e-09;
    q = fma(q, r, 2.5103211783154584e-08);
    q = fma(q, r, 2.755727860227737e-07);
    q = fma(q, r, 2.7557262344368647e-06);
    q = fma(q, r, 2.4801587320038146e-05);
    q = fma(q, r, 0.00019841269867105666);
    q = fma(q, r, 0.0013888888888885956);
    q = fma(q, r, 0.008333333333329227);
    q = fma(q, r, 0.041666666666666664);
    q = fma(q, r, 0.16666666666666669);
    return fma(r * r, fma(r, q, 0.5), r);
}

/* the same to ~1e-9 (enough for float results): q of degree 4 */
TJ_VMI double tj__expm1_r32(double r) {
    double q = 0.00019885124103558748;
    q = fma(q, r, 0.0013928367868113448);
    q = fma(q, r, 0.00833331938764435);
    q = fma(q, r, 0.04166654111515417);
    q = fma(q, r, 0.16666666666666666);
    return fma(r * r, fma(r, q, 0.5), r);
}

/* x = k ln2 + r; returns r, and in *kb the bits whose low 32 hold k (|x| < 2^40) */
TJ_VMI double tj__reduce_ln2(double x, uint64_t *kb) {
    double kd = fma(x, TJ__INVLN2, TJ__SHIFT);
    *kb = tj__bits(kd);
    kd -= TJ__SHIFT;
    double r = fma(-kd, TJ__LN2, x);   /* exact: x - k*LN2 is a small multiple of ulp(LN2) */
    return fma(-kd, TJ__LN2LO, r);
}

/* 2^k for -1022 <= k <= 1023 */
TJ_VMI double tj__pow2i(int32_t k) { return tj__dbl((uint64_t)(int64_t)(k + 1023) << 52); }

/* e^r for |r| <= 0.357: 1 + r + r^2/2 + r^3 q8(r), q8 of degree 8 (rel. err 4.9e-15 on
 * q8, 2e-17 on e^r) */
TJ_VMI double tj__exp_r(double r) {
    double q = 2.5098097961677615e-08;
    q = fma(q, r, 2.7617114029945883e-07);
    q = fma(q, r, 2.7557275349957455e-06);
    q = fma(q, r, 2.480153025486968e-05);
    q = fma(q, r, 0.0001984126985676946);
    q = fma(q, r, 0.0013888888909042475);
    q = fma(q, r, 0.008333333333331855);
    q = fma(q, r, 0.041666666666647444);
    q = fma(q, r, 0.16666666666666666);
    return 1.0 + fma(r * r, fma(r, q, 0.5), r);
}

/* x clamped to 709.9 above; below -746 the result is 0, selected: computing it would
 * round through subnormals, which x86 takes a microcode assist of ~100 cycles for, per
 * element (a causal softmax's exp(-inf - max) over half its elements spent 8 ns an
 * element). NaN passes. */
TJ_VMI double tj_exp(double x) {
    int zero = x < -746.0;
    double xc = x > 709.9 ? 709.9 : zero ? 0.0 : x;
    uint64_t kb;
    double r = tj__reduce_ln2(xc, &kb);
    int32_t k = (int32_t)(uint32_t)kb, k1 = k >> 1, k2 = k - k1;
    double y = tj__exp_r(r) * tj__pow2i(k1) * tj__pow2i(k2);   /* one rounding into subnormals */
    return x > 0x1.62e42fefa39efp+9 ? TJ__INF : zero ? 0.0 : y;
}

/* x clamped to [-40, 709.9] (NaN passes): below -38 the result rounds to -1 by itself */
TJ_VMI double tj_expm1(double x) {
    double xc = x > 709.9 ? 709.9 : x < -40.0 ? -40.0 : x;
    uint64_t kb;
    double r = tj__reduce_ln2(xc, &kb);
    double p = tj__expm1_r(r);
    int32_t k = (int32_t)(uint32_t)kb;
    double s = tj__pow2i(k > 56 ? 56 : k);
    double small = fma(s, p, s - 1.0);                            /* 2^k p + (2^k - 1) */
    double big = (1.0 + p) * tj__pow2i(k - 1) * 2.0;              /* k > 56: -1 is lost */
    double y = k > 56 ? big : small;
    y = x > 0x1.62e42fefa39efp+9 ? TJ__INF : y;
    return x == 0 ? x : y;               /* the sign of zero */
}

/* ---- log family (double) ---- */

/* log(m) for m in [sqrt(1/2), sqrt(2)) as f - (hfsq - (s (hfsq + R) + lo)), with
 * s = f / (2 + f), f = m - 1, R = z lg(z), z = s^2, lg of degree 6 */
TJ_VMI double tj__log_fs(double f, double s, double e, double lo) {
    double z = s * s;
    double g = 0.14617807153417325;
    g = fma(g, z, 0.15331611722055008);
    g = fma(g, z, 0.1818289243253687);
    g = fma(g, z, 0.22222211089379496);
    g = fma(g, z, 0.28571428626253836);
    g = fma(g, z, 0.3999999999989889);
    g = fma(g, z, 0.666666666666667);
    double hfsq = 0.5 * f * f;
    return fma(e, TJ__LN2HI, f - (hfsq - fma(s, fma(z, g, hfsq), fma(e, TJ__LN2HILO, lo))));
}

TJ_VMI double tj__log_m(double f, double e, double lo) {
    return tj__log_fs(f, f / (2.0 + f), e, lo);
}

/* x = 2^e m, m in [sqrt(1/2), sqrt(2)), for positive finite x (subnormals scaled) */
TJ_VMI double tj__split(double x, double *e) {
    double tiny = x < 0x1p-1022 ? 1.0 : 0.0;
    uint64_t ix = tj__bits(x * (tiny ? 0x1p54 : 1.0));
    uint64_t t = ix - 0x3fe6a09e667f3bcdULL;               /* bits of sqrt(1/2) */
    uint64_t eb = (t + (0x400ULL << 52)) >> 52;             /* e + 1024 */
    *e = tj__dbl(0x4330000000000000ULL | eb) - (0x1p52 + 1024.0) - 54.0 * tiny;
    return tj__dbl(ix - (t & 0xfff0000000000000ULL));
}

TJ_VMI double tj_log(double x) {
    double e, m = tj__split(x, &e);
    double y = tj__log_m(m - 1.0, e, 0.0);
    y = x == 0 ? -TJ__INF : y;
    y = x < 0 ? (double)NAN : y;
    y = x == TJ__INF ? x : y;
    return x != x ? x : y;
}

/* u = 1 + x = 2^e m rounded, c = x - (u - 1) exactly; log1p x = log u + c / u with
 * 1/u = 2^-e (1 - s)/(1 + s) ~ 2^-e (1 - 2s + 2s^2) (|c/u| < 2^-53: no division) */
TJ_VMI double tj_log1p(double x) {
    double u = 1.0 + x, c = x - (u - 1.0);
    double e, m = tj__split(u, &e);
    double f = m - 1.0, s = f / (2.0 + f);
    double ec = e > 1000.0 ? 1000.0 : e;                 /* c = 0 there */
    double inv2e = tj__dbl((0x3ffULL - tj__bits(ec + TJ__SHIFT)) << 52);
    double y = tj__log_fs(f, s, e, c * inv2e * fma(2.0 * s, s - 1.0, 1.0));
    y = x == -1.0 ? -TJ__INF : y;
    y = x < -1.0 ? (double)NAN : y;
    y = x == TJ__INF ? x : y;
    y = x == 0 ? x : y;
    return x != x ? x : y;
}

/* ---- built on them (double) ---- */

TJ_VMI double tj_tanh(double x) {
    double a = fabs(x);
    double u = tj_expm1(2.0 * (a > 20.0 ? 20.0 : a));
    double t = a > 19.5 ? 1.0 : u / (u + 2.0);    /* tanh|x| = u/(u+2), u = e^{2|x|} - 1 */
    return x != x ? x : copysign(t, x);
}

TJ_VMI double tj_sigmoid(double x) {
    double e = tj_exp(-fabs(x));
    return (x >= 0 ? 1.0 : e) / (1.0 + e);
}

TJ_VMI double tj_softplus(double x) {
    return (x > 0 ? x : 0.0) + tj_log1p(tj_exp(-fabs(x)));
}

/* ---- float versions evaluated in double (softplus; pow below) ---- */

TJ_VMI float tj_expf(float x);

/* e^x for |x| < 1000 to ~1e-9, in double (no subnormal double results needed) */
TJ_VMI double tj__exp_d32(double x) {
    uint64_t kb;
    double r = tj__reduce_ln2(x, &kb);
    return (1.0 + tj__expm1_r32(r)) * tj__pow2i((int32_t)(uint32_t)kb);
}

/* log of positive finite double x, to ~1e-9, lg of degree 2 */
TJ_VMI double tj__log_d32(double x) {
    double e, m = tj__split(x, &e);
    double f = m - 1.0, s = f / (2.0 + f), z = s * s;
    double g = fma(fma(0.29580985929974424, z, 0.39988757716604845), z, 0.6666668509542907);
    double hfsq = 0.5 * f * f;
    return fma(e, TJ__LN2, f - (hfsq - s * fma(z, g, hfsq)));
}

TJ_VMI float tj_softplusf(float x) {
    double a = fabs((double)x);
    double e = tj__exp_d32(-(a > 200.0 ? 200.0 : a));
    double u = 1.0 + e, c = e - (u - 1.0);
    float y = (float)((x > 0 ? (double)x : 0.0) + (tj__log_d32(u) + c));
    return x != x ? x : y;
}


/* ---- float natively (16 lanes per AVX-512 vector) ---- */

/* expm1(r) for |r| <= ln2 in float: r + r^2 (1/2 + r q(r)), q of degree 5 */
TJ_VMI float tj__expm1_rf(float r) {
    float q = 2.500158007023856e-05f;
    q = fmaf(q, r, 0.0002004142734222114f);
    q = fmaf(q, r, 0.0013888527173548937f);
    q = fmaf(q, r, 0.00833297148346901f);
    q = fmaf(q, r, 0.0416666679084301f);
    q = fmaf(q, r, 0.1666666716337204f);
    return fmaf(r * r, fmaf(r, q, 0.5f), r);
}

/* x = k ln2 + r with k = trunc(x / ln2), so |r| < ln2 and r = x exactly for
 * |x| < ln2 (no cancellation in expm1 near 0); |x| < 2^22 */
TJ_VMI float tj__reduce_ln2f(float x, int32_t *k) {
    float kf = truncf(x * 1.44269504088896341f);
    *k = (int32_t)kf;
    float r = fmaf(kf, -0.693145751953125f, x);      /* 16-bit ln2 head: k * head exact */
    return fmaf(kf, -1.428606765330187045e-06f, r);
}

/* the same with k = round(x / ln2), |r| <= ln2/2 */
TJ_VMI float tj__reduce_ln2f_near(float x, int32_t *k) {
    float kf = rintf(x * 1.44269504088896341f);
    *k = (int32_t)kf;
    float r = fmaf(kf, -0.693145751953125f, x);
    return fmaf(kf, -1.428606765330187045e-06f, r);
}

TJ_VMI float tj__pow2f(int32_t k) { return tj__flt((uint32_t)(k + 127) << 23); }   /* |k| <= 126 */

/* x clamped to [-18, 88.8] */
TJ_VMI float tj_expm1f(float x) {
    float xc = x > 88.8f ? 88.8f : x < -18.f ? -18.f : x;
    int32_t k;
    float r = tj__reduce_ln2f(xc, &k), p = tj__expm1_rf(r);
    int32_t kc = k > 127 ? 127 : k;                     /* k = 128: 2^127 (1 + p) 2 */
    float s = tj__pow2f(kc);
    float y = fmaf(s, p, s - 1.0f);                      /* 2^k p + (2^k - 1) */
    y = k > 127 ? y * 2.0f : y;
    y = x > 88.72283935546875f ? (float)INFINITY : y;
    return x == 0 ? x : y;               /* NaN passes; below -17.4, -1 by itself */
}

/* log(1 + f) - f for f in [sqrt(1/2) - 1, sqrt(2) - 1]: -f^2/2 + f^3 L(f), L of degree 8 */
TJ_VMI float tj__log1p_tail(float f) {
    float L = 0.0698070228099823f;
    L = fmaf(L, f, -0.11494546383619308f);
    L = fmaf(L, f, 0.11689071357250214f);
    L = fmaf(L, f, -0.12424037605524063f);
    L = fmaf(L, f, 0.14248551428318024f);
    L = fmaf(L, f, -0.1666785031557083f);
    L = fmaf(L, f, 0.20000730454921722f);
    L = fmaf(L, f, -0.2499999701976776f);
    L = fmaf(L, f, 0.3333333134651184f);
    return fmaf(f * f * f, L, -0.5f * f * f);
}

/* x = 2^e m, m in [sqrt(1/2), sqrt(2)), for positive finite x (subnormals scaled) */
TJ_VMI float tj__splitf(float x, float *e) {
    float tiny = x < 0x1p-126f ? 23.0f : 0.0f;
    uint32_t ix = tj__bitsf(x * (x < 0x1p-126f ? 0x1p23f : 1.0f));
    uint32_t t = ix - 0x3f3504f3u;                       /* bits of sqrt(1/2) */
    *e = (float)((int32_t)t >> 23) - tiny;
    return tj__flt(ix - (t & 0xff800000u));
}

/* e ln2 + f + tail, ln2 = 0.693359375 - 2.12194440e-4 (e * head exact) */
TJ_VMI float tj__log_assemble(float e, float f, float tail) {
    return fmaf(e, 0.693359375f, f + fmaf(e, -2.12194440e-4f, tail));
}

TJ_VMI float tj_logf(float x) {
    float e, m = tj__splitf(x, &e), f = m - 1.0f;
    float y = tj__log_assemble(e, f, tj__log1p_tail(f));
    y = x == 0 ? -(float)INFINITY : y;
    y = x < 0 ? (float)NAN : y;
    y = x == (float)INFINITY ? x : y;
    return x != x ? x : y;
}

/* log1p: u = 1 + x = 2^e m; where e = 0, f = x exactly; elsewhere f = m - 1 and the
 * rounding of u is put back as c / u, c = x - (u - 1) */
TJ_VMI float tj_log1pf(float x) {
    float u = 1.0f + x, e, m = tj__splitf(u, &e);
    float c = (x - (u - 1.0f)) / u;
    float f = e == 0 ? x : m - 1.0f;
    c = e == 0 ? 0.0f : c;
    float y = tj__log_assemble(e, f, tj__log1p_tail(f) + c);
    y = x == -1.0f ? -(float)INFINITY : y;
    y = x < -1.0f ? (float)NAN : y;
    y = x == (float)INFINITY ? x : y;
    y = x == 0 ? x : y;
    return x != x ? x : y;
}

/* tanh(a) for 0 <= a < 0.5625: a + a^3 P(a^2), P of degree 4 */
TJ_VMI float tj__tanh_smallf(float a) {
    float z = a * a;
    float P = -0.0065255723893642426f;
    P = fmaf(P, z, 0.021263353526592255f);
    P = fmaf(P, z, -0.053901754319667816f);
    P = fmaf(P, z, 0.13333073258399963f);
    P = fmaf(P, z, -0.3333333134651184f);
    return fmaf(a * z, P, a);
}

/* |x| < 0.5625: the odd polynomial; else 1 - 2 / (e^{2|x|} + 1) with e^{2|x|} + 1 =
 * 2^k p + (2^k + 1) rounded once */
TJ_VMI float tj_tanhf(float x) {
    float a = fabsf(x);
    int32_t k;
    float r = tj__reduce_ln2f(2.0f * (a > 9.5f ? 9.5f : a), &k), p = tj__expm1_rf(r);
    float s = tj__pow2f(k);
    float big = 1.0f - 2.0f / fmaf(s, p, s + 1.0f);
    float y = copysignf(a < 0.5625f ? tj__tanh_smallf(a) : big, x);
    return x != x ? x : y;
}

/* e^{|x|} = 2^k (1 + p); sigmoid(-|x|) = 2^-k / (1 + p + 2^-k), the denominator's
 * rounding error (Fast2Sum) folded back into the quotient, scaled by 2^-k in two steps
 * so subnormal results round once; sigmoid(|x|) = 1 - sigmoid(-|x|) */
TJ_VMI float tj_sigmoidf(float x) {
    float a = fabsf(x);
    int32_t k;
    float r = tj__reduce_ln2f_near(a > 104.f ? 104.f : a, &k), p = tj__expm1_rf(r);
    int32_t k1 = k >> 1, k2 = k - k1;
    float i1 = tj__pow2f(-k1), i2 = tj__pow2f(-k2);
    float v = p + i1 * i2, den = 1.0f + v, err = v - (den - 1.0f);   /* den + err = 1 + v */
    float q = 1.0f / den;
    q = fmaf(-err * q, q, q);                                         /* 1 / (den + err) */
    float neg = q * i1 * i2;
    float y = x < 0 ? neg : 1.0f - neg;
    return x != x ? x : y;
}

/* float32 exp natively (16 lanes per AVX-512 vector): x = k ln2 + r, |r| <= ln2/2
 * (two-part ln2), e^r by a degree-7 polynomial with FMA (within 1 ulp), 2^k applied in
 * two steps so subnormal results round once. x is clamped to 89 first (the overflow
 * select gives inf); below -104 the result is 0, selected; NaN passes. */
TJ_VMI float tj_expf(float x) {
    int zero = x < -104.f;   /* 0, selected: no subnormal arithmetic (see tj_exp) */
    float xc = x > 89.f ? 89.f : zero ? 0.f : x;
    float kf = rintf(xc * 1.44269504088896341f);
    float r = fmaf(kf, -0.693145751953125f, xc);
    r = fmaf(kf, -1.428606765330187045e-06f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    float y = fmaf(p, r * r, r) + 1.0f;
    int32_t k = (int32_t)kf, k1 = k >> 1, k2 = k - k1;
    y = y * tj__pow2f(k1) * tj__pow2f(k2);
    return x > 88.72283935546875f ? (float)INFINITY : zero ? 0.f : y;
}

/* ---- sin, cos ---- */

#define TJ_TRIG_LIMIT 0x1p30
#define TJ__2OPI 0x1.45f306dc9c883p-1
#define TJ__PIO2A 0x1.921fb54442d18p+0     /* pi/2 = A + B + C (161 bits) */
#define TJ__PIO2B 0x1.1a62633145c07p-54
#define TJ__PIO2C -0x1.f1976b7ed8fbcp-110

/* x = k pi/2 + r, |r| <= pi/4 (+2^-20); returns r and the quadrant bits in *q. For
 * |x| < 2^30: x - k A is exact (a small multiple of ulp(A)) and each FMA rounds once. */
TJ_VMI double tj__reduce_pio2(double x, uint64_t *q) {
    double kd = fma(x, TJ__2OPI, TJ__SHIFT);
    *q = tj__bits(kd);
    kd -= TJ__SHIFT;
    double r = fma(-kd, TJ__PIO2A, x);
    r = fma(-kd, TJ__PIO2B, r);
    return fma(-kd, TJ__PIO2C, r);
}

/* sin r and cos r of the reduced argument (*sn, *cs), the quadrant bits returned */
TJ_VMI uint64_t tj__trig_core_d(double x, double *sn_, double *cs_) {
    uint64_t q;
    double r = tj__reduce_pio2(x, &q), z = r * r;
    double S = 1.5914533820346306e-10;
    S = fma(S, z, -2.5051081300319015e-08);
    S = fma(S, z, 2.755731585691312e-06);
    S = fma(S, z, -0.00019841269836278898);
    S = fma(S, z, 0.008333333333330627);
    S = fma(S, z, -0.16666666666666663);
    double sn = fma(r * z, S, r);
    double C = -1.1380383100821594e-11;
    C = fma(C, z, 2.0876114647930045e-09);
    C = fma(C, z, -2.7557317118060557e-07);
    C = fma(C, z, 2.4801587298465612e-05);
    C = fma(C, z, -0.0013888888888887196);
    C = fma(C, z, 0.041666666666666664);
    double hz = 0.5 * z, w = 1.0 - hz;
    *cs_ = w + (((1.0 - w) - hz) + z * z * C);
    *sn_ = sn;
    return q;
}

/* quadrant q: sin(x) = (sin r, cos r, -sin r, -cos r)[q & 3]; cos uses q + 1 */
TJ_VMI double tj__trig_pick_d(double x, double sn, double cs, uint64_t q) {
    double y = (q & 1) ? cs : sn;
    y = tj__dbl(tj__bits(y) ^ ((q & 2) << 62));
    return fabs(x) < TJ_TRIG_LIMIT ? y : (double)NAN;   /* nan, inf; huge: fixup */
}

TJ_VMI double tj__trig_d(double x, int cosine) {
    double sn, cs;
    uint64_t q = tj__trig_core_d(x, &sn, &cs);
    return tj__trig_pick_d(x, sn, cs, q + (uint64_t)cosine);
}

/* float natively: x = k pi/2 + r with pi/2 in three floats (A exact in x - k A for
 * |k| < 2^15), S and C of degree 3; |x| >= TJ_TRIG_LIMITF: NaN here, fixup pass */
#define TJ_TRIG_LIMITF 0x1p15f
TJ_VMI uint32_t tj__trig_core_f(float x, float *sn_, float *cs_) {
    float kf = rintf(x * 0.636619772367581343f);
    uint32_t q = (uint32_t)(int32_t)kf;
    float r = fmaf(kf, -1.57079637050628662109375f, x);
    r = fmaf(kf, 4.37113900018624283e-08f, r);
    r = fmaf(kf, 1.71512451e-15f, r);
    float z = r * r;
    float S = fmaf(fmaf(fmaf(2.7246021545579424e-06f, z, -0.00019840056484099478f), z,
                        0.008333331905305386f), z, -0.1666666716337204f);
    float C = fmaf(fmaf(fmaf(-2.729769903453416e-07f, z, 2.480057446518913e-05f), z,
                        -0.00138888880610466f), z, 0.0416666679084301f);
    *sn_ = fmaf(r * z, S, r);
    *cs_ = fmaf(z * z, C, fmaf(-0.5f, z, 1.0f));
    return q;
}

TJ_VMI float tj__trig_pick_f(float x, float sn, float cs, uint32_t q) {
    float y = (q & 1) ? cs : sn;
    y = tj__flt(tj__bitsf(y) ^ ((q & 2) << 30));
    return fabsf(x) < TJ_TRIG_LIMITF ? y : (float)NAN;
}

TJ_VMI float tj__trig_f(float x, int cosine) {
    float sn, cs;
    uint32_t q = tj__trig_core_f(x, &sn, &cs);
    return tj__trig_pick_f(x, sn, cs, q + (uint32_t)cosine);
}

TJ_VMI double tj_sin(double x) { return x == 0 ? x : tj__trig_d(x, 0); }
TJ_VMI double tj_cos(double x) { return tj__trig_d(x, 1); }
TJ_VMI float tj_sinf(float x) { return x == 0 ? x : tj__trig_f(x, 0); }
TJ_VMI float tj_cosf(float x) { return tj__trig_f(x, 1); }

/* After a vector pass of tj_sin/tj_cos (kind 1/2) over a[0..n) into o: lanes with
 * 2^30 <= |x| < inf are recomputed by libm (exact reduction). The check vectorizes. */
TJ_VMI void tj_trig_fixup(double *o, const void *a_, int64_t n, int kind) {
    const double *a = (const double *)a_;
    int any = 0;
    for (int64_t i = 0; i < n; i++) any |= (fabs(a[i]) >= TJ_TRIG_LIMIT) & (fabs(a[i]) < TJ__INF);
    if (!any) return;
    for (int64_t i = 0; i < n; i++)
        if (fabs(a[i]) >= TJ_TRIG_LIMIT && fabs(a[i]) < TJ__INF) o[i] = kind == 1 ? sin(a[i]) : cos(a[i]);
}

TJ_VMI void tj_trig_fixupf(float *o, const void *a_, int64_t n, int kind) {
    const float *a = (const float *)a_;
    int any = 0;
    for (int64_t i = 0; i < n; i++)
        any |= (fabsf(a[i]) >= TJ_TRIG_LIMITF) & (fabsf(a[i]) < (float)INFINITY);
    if (!any) return;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(a[i]) >= TJ_TRIG_LIMITF && fabsf(a[i]) < (float)INFINITY)
            o[i] = kind == 1 ? sinf(a[i]) : cosf(a[i]);
}

/* The fixup per element, for the optimizing tier's fused loops (emit_fused.c): whether
 * x is an argument the vector reduction leaves to libm, and the value with libm's there
 * (v: the vector function's). */
TJ_VMI int tj_trig_huge(double x) { return (fabs(x) >= TJ_TRIG_LIMIT) & (fabs(x) < TJ__INF); }
TJ_VMI int tj_trig_hugef(float x) {
    return (fabsf(x) >= TJ_TRIG_LIMITF) & (fabsf(x) < (float)INFINITY);
}
/* the same test on the bits, one unsigned comparison (a loop noting it per element
 * vectorizes; gcc 12 vectorizes no loop mixing the float tests' masks with its selects) */
TJ_VMI long long tj_trig_huge_bits(double x) {
    const uint64_t lo = 0x41d0000000000000ull, inf = 0x7ff0000000000000ull;   /* 2^30 */
    return (long long)(((tj__bits(x) & 0x7fffffffffffffffull) - lo) < inf - lo);
}
TJ_VMI long long tj_trig_huge_bitsf(float x) {
    const uint32_t lo = 0x47000000u, inf = 0x7f800000u;   /* 2^15 */
    return (long long)(((tj__bitsf(x) & 0x7fffffffu) - lo) < inf - lo);
}
TJ_VMI double tj_trig_exact(double x, double v, int kind) {
    return tj_trig_huge(x) ? (kind == 1 ? sin(x) : cos(x)) : v;
}
TJ_VMI float tj_trig_exactf(float x, float v, int kind) {
    return tj_trig_hugef(x) ? (kind == 1 ? sinf(x) : cosf(x)) : v;
}

/* ---- pow ---- */

/* C99 Annex F / NumPy: pow(x, +-0) = 1 and pow(1, y) = 1 even for NaN; pow(-1, +-inf)
 * = 1; x < 0 finite with y finite non-integer: NaN; otherwise |x|^y with the sign of x
 * when y is an odd integer (|y| >= 2^53 and infinities are even; zeros and infinities
 * of x follow from log|x| = -inf, +inf). Selects on doubles only, so it vectorizes. */
TJ_VMI double tj__pow_fix(double x, double y, double mag) {
    double h = 0.5 * y, neg = copysign(mag, x);           /* -0 counts as negative */
    double r = rint(h) != h ? neg : mag;                 /* y odd or not an integer */
    r = rint(y) != y ? mag : r;                          /* ... but not an integer */
    double bad = fabs(y) < TJ__INF ? (double)NAN : r;    /* x < 0 finite, y not integer */
    bad = x > -TJ__INF ? bad : r;
    bad = x < 0 ? bad : r;
    r = rint(y) != y ? bad : r;
    double one = fabs(y) == TJ__INF ? 1.0 : r;           /* pow(-1, +-inf) */
    r = x == -1.0 ? one : r;
    r = x == 1.0 ? 1.0 : r;
    return y == 0 ? 1.0 : r;
}

/* e^(t + tl), |tl| <= 2^-40 |t|; +-inf and NaN as exp */
TJ_VMI double tj__exp_dd(double t, double tl) {
    double tc = t > 1100.0 ? 1100.0 : t < -1100.0 ? -1100.0 : t;
    uint64_t kb;
    double r = tj__reduce_ln2(tc, &kb) + tl;
    int32_t k = (int32_t)(uint32_t)kb, k1 = k >> 1, k2 = k - k1;
    double y = (1.0 + tj__expm1_r(r)) * tj__pow2i(k1) * tj__pow2i(k2);
    y = t > 1000.0 ? TJ__INF : y;
    y = t < -1000.0 ? 0.0 : y;
    return t != t ? t : y;
}

/* log|x| as hi + lo with relative error ~2^-66: m = 1 + f, s = f / (2 + f) in
 * double-double, log m = 2s + (2/3) s^3 (double-double) + s^5 P(s^2) */
TJ_VMI double tj__log_dd(double ax, double *lo) {
    double e, m = tj__split(ax, &e);
    double f = m - 1.0, t = 2.0 + f, tl = f - (t - 2.0);
    double inv = 1.0 / t, s = f * inv;
    double sl = (fma(-s, t, f) - s * tl) * inv;                     /* s + sl = f/(2+f) */
    double z = s * s, zl = fma(s, s, -z) + 2.0 * s * sl;             /* z + zl = (s+sl)^2 */
    double c = z * s, cl = fma(z, s, -c) + (zl * s + z * sl);        /* c + cl = (s+sl)^3 */
    double a = c * 0x1.5555555555555p-1;                             /* (2/3) c, 2/3 = A + 2^-54/3 */
    double al = fma(c, 0x1.5555555555555p-1, -a) + (cl * 0x1.5555555555555p-1 + c * 0x1.5555555555555p-55);
    /* tail s^5 h(z): lg(z) = 2/3 + z h(z), h of degree 6 (rel. err 7.5e-16) */
    double g = 0.1291471218393509;
    g = fma(g, z, 0.13285868837545742);
    g = fma(g, z, 0.15385577463308145);
    g = fma(g, z, 0.18181808210921882);
    g = fma(g, z, 0.22222222271326808);
    g = fma(g, z, 0.2857142857133801);
    g = fma(g, z, 0.4000000000000003);
    double tail = c * z * g;
    double two_s = 2.0 * s;
    double h = two_s + a, hl = (two_s - h) + a;                      /* Fast2Sum: |2s| >= |a| */
    hl += 2.0 * sl + al + tail;
    /* + e ln2: e LN2HI exact */
    double eh = e * TJ__LN2HI;
    double u = eh + h, ul = (fabs(eh) >= fabs(h) ? (eh - u) + h : (h - u) + eh);
    ul += hl + e * TJ__LN2HILO;
    double hi = u + ul;
    *lo = ul - (hi - u);
    return hi;
}

TJ_VMI double tj_pow(double x, double y) {
    double ax = fabs(x), ll;
    double l = tj__log_dd(ax, &ll);
    l = ax == 0 ? -TJ__INF : l;
    l = ax == TJ__INF ? TJ__INF : l;
    l = ax != ax ? ax : l;
    ll = ax == 0 ? 0.0 : ll;
    ll = ax == TJ__INF ? 0.0 : ll;
    double t = y * l, tl = fma(y, l, -t) + y * ll;
    tl = fabs(t) < TJ__INF ? tl : 0.0;
    return tj__pow_fix(x, y, tj__exp_dd(t, tl));
}

TJ_VMI float tj__pow_fixf(float x, float y, float mag) {    /* tj__pow_fix in float */
    float h = 0.5f * y, neg = copysignf(mag, x);
    float r = rintf(h) != h ? neg : mag;
    r = rintf(y) != y ? mag : r;
    float bad = fabsf(y) < (float)INFINITY ? (float)NAN : r;
    bad = x > -(float)INFINITY ? bad : r;
    bad = x < 0 ? bad : r;
    r = rintf(y) != y ? bad : r;
    float one = fabsf(y) == (float)INFINITY ? 1.0f : r;
    r = x == -1.0f ? one : r;
    r = x == 1.0f ? 1.0f : r;
    return y == 0 ? 1.0f : r;
}

/* |x|^y = e^{y log|x|} in double: log with lg of degree 3 (relative error ~2e-11, so
 * |y log x| < 104 is off by < 3e-9), e^t to ~1e-9; then the special cases in float */
TJ_VMI float tj_powf(float x, float y) {
    double ax = fabs((double)x), yd = y, e;
    double m = tj__split(ax, &e);
    double f = m - 1.0, s = f / (2.0 + f), z = s * s;
    double g = fma(fma(fma(0.23331614471843498, z, 0.28550778633191964), z, 0.4000012221181065),
                   z, 0.6666666655404201);
    double hfsq = 0.5 * f * f;
    double l = fma(e, TJ__LN2, f - (hfsq - s * fma(z, g, hfsq)));
    l = ax == 0 ? -TJ__INF : l;
    l = ax == TJ__INF ? TJ__INF : l;
    l = ax != ax ? ax : l;
    double t = yd * l;
    double tc = t > 200.0 ? 200.0 : t < -200.0 ? -200.0 : t;
    double mag = tj__exp_d32(tc);
    mag = t != t ? t : mag;
    return tj__pow_fixf(x, y, (float)mag);
}

/* ---- erf ---- */

/* |x| < 1.5: x P(x^2), P of degree 14; 1.5 <= |x| < 6: 1 - e^{-x^2} Q(1/x), Q of
 * degree 18 in 1/x - 5/12 (erfc's relative error ~1e-15 there costs < 0.1 ulp of erf,
 * and x^2 rounded shifts e^{-x^2} by < 36 ulp of erfc < 2^-54 of 1); beyond, +-1 */
TJ_VMI double tj_erf(double x) {
    double a = fabs(x), z = x * x;
    double P = 1.5889546007818838e-13;
    P = fma(P, z, -4.9101179846805086e-12);
    P = fma(P, z, 8.685870114391334e-11);
    P = fma(P, z, -1.2083048517022723e-09);
    P = fma(P, z, 1.4765666857055745e-08);
    P = fma(P, z, -1.6359841594724727e-07);
    P = fma(P, z, 1.6461484722454145e-06);
    P = fma(P, z, -1.4925602741550847e-05);
    P = fma(P, z, 0.00012055330429899759);
    P = fma(P, z, -0.0008548326929470691);
    P = fma(P, z, 0.005223977623179348);
    P = fma(P, z, -0.02686617064480267);
    P = fma(P, z, 0.11283791670952624);
    P = fma(P, z, -0.37612638903183676);
    P = fma(P, z, 1.1283791670955126);
    double small = x * P;
    double ac = a < 1.5 ? 1.5 : a > 6.0 ? 6.0 : a;
    double w = 1.0 / ac - 0.4166666666666667;
    double Q = -1.7939040764510437;
    Q = fma(Q, w, 1.7678912400326583);
    Q = fma(Q, w, -0.569179012025021);
    Q = fma(Q, w, -0.1801204322696194);
    Q = fma(Q, w, 0.4485967489229487);
    Q = fma(Q, w, -0.44105904302993076);
    Q = fma(Q, w, 0.26954128224244395);
    Q = fma(Q, w, -0.05548122412134891);
    Q = fma(Q, w, -0.10470342372244792);
    Q = fma(Q, w, 0.16699789534132575);
    Q = fma(Q, w, -0.13497967795854504);
    Q = fma(Q, w, 0.04410748607799415);
    Q = fma(Q, w, 0.056285311277434316);
    Q = fma(Q, w, -0.11861005462444482);
    Q = fma(Q, w, 0.107629023848565);
    Q = fma(Q, w, -0.005491348994080119);
    Q = fma(Q, w, -0.18799628662601858);
    Q = fma(Q, w, 0.4584109899902556);
    Q = fma(Q, w, 0.21849873453703333);
    double big = 1.0 - tj_exp(-ac * ac) * Q;
    big = a >= 6.0 ? 1.0 : big;
    double y = a < 1.5 ? small : copysign(big, x);
    return x != x ? x : y;
}

/* float natively: |x| < 1: x (2/sqrt(pi) + x^2 P(x^2)), P of degree 5, 2/sqrt(pi) in
 * two floats; 1 <= |x| < 4: 1 - e^{-x^2} Q(1/x),
 * Q of degree 10 in 1/x - 5/8 (x^2's rounding moves erfc by < 1e-6 of itself, a few
 * 1e-14 of erf); beyond, 1 - erfc(4) rounds to 1 */
TJ_VMI float tj_erff(float x) {
    float a = fabsf(x), z = x * x;
    float P = 8.3797553088516e-05f;                 /* erf(x) = x (2/sqrt(pi) + z P(z)) */
    P = fmaf(P, z, -0.0008161986479535699f);
    P = fmaf(P, z, 0.0052045788615942f);
    P = fmaf(P, z, -0.026861699298024178f);
    P = fmaf(P, z, 0.1128375381231308f);
    P = fmaf(P, z, -0.37612637877464294f);
    float small = fmaf(a, 1.128379225730896f, a * fmaf(z, P, -5.863538342219759e-08f));
    float ac = a < 1.f ? 1.f : a > 4.f ? 4.f : a;
    float w = 1.0f / ac - 0.625f;
    float Q = -0.03289220854640007f;
    Q = fmaf(Q, w, 0.02603401429951191f);
    Q = fmaf(Q, w, 0.004455900751054287f);
    Q = fmaf(Q, w, -0.026927344501018524f);
    Q = fmaf(Q, w, 0.043242406100034714f);
    Q = fmaf(Q, w, -0.046942297369241714f);
    Q = fmaf(Q, w, 0.02332945354282856f);
    Q = fmaf(Q, w, 0.04376691207289696f);
    Q = fmaf(Q, w, -0.1723947525024414f);
    Q = fmaf(Q, w, 0.3822837769985199f);
    Q = fmaf(Q, w, 0.3059529960155487f);
    float big = 1.0f - tj_expf(-ac * ac) * Q;
    float y = copysignf(a < 1.f ? small : big, x);
    return x != x ? x : y;
}

#endif
