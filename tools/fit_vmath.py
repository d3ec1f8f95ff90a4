"""Fits the polynomial coefficients of csrc/emit/vmath.h (near-minimax: Chebyshev
interpolation in mpmath at 60 digits, coefficients then rounded to double).
Prints each fit's maximum relative error on a dense grid, with the coefficients
rounded as vmath.h uses them. Usage: python tools/fit_vmath.py"""
import mpmath as mp

mp.mp.dps = 120


def fit(name, f, a, b, deg, f32=False):
    coeffs, _ = mp.chebyfit(f, [a, b], deg + 1, error=True)   # highest degree first
    c = [float(x) for x in coeffs]
    if f32:
        import numpy as np
        c = [float(np.float32(x)) for x in c]
    worst = mp.mpf(0)
    for i in range(2000):
        t = a + (b - a) * (mp.mpf(i) + mp.mpf('0.37')) / 2000
        p = mp.mpf(0)
        for x in c:
            p = p * t + mp.mpf(x)
        ref = f(t)
        worst = max(worst, abs((p - ref) / ref))
    print(f"/* {name}: degree {deg} on [{float(a):.6g}, {float(b):.6g}], max rel err {float(worst):.3g} */")
    print("    " + ", ".join(repr(x) for x in reversed(c)))   # lowest degree first


def q_expm1(r):   # expm1(r) = r + r^2/2 + r^3 q(r)
    if abs(r) < mp.mpf(10) ** -20:
        return mp.mpf(1) / 6 + r / 24
    return (mp.expm1(r) - r - r * r / 2) / r ** 3


def lg(z):        # log((1+s)/(1-s)) = 2s + s z lg(z), z = s^2
    s = mp.sqrt(z)
    return (mp.log((1 + s) / (1 - s)) - 2 * s) / (s * z)


def sin_s(z):     # sin(r) = r + r z S(z)
    r = mp.sqrt(z)
    return (mp.sin(r) - r) / (r * z)


def cos_c(z):     # cos(r) = 1 - z/2 + z^2 C(z)
    r = mp.sqrt(z)
    return (mp.cos(r) - 1 + z / 2) / (z * z)


def erf_p(z):     # erf(x) = x P(x^2)
    x = mp.sqrt(z)
    return mp.erf(x) / x


if __name__ == "__main__":
    R = mp.mpf("0.3466") + mp.mpf("0.01")
    S = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)           # |s| for m in [sqrt(1/2), sqrt(2))
    P4 = (mp.pi / 4 + mp.mpf("0.01")) ** 2
    for deg in (9, 10):
        fit("expm1 q, f64", q_expm1, -R, R, deg)
    for deg in (4, 5):
        fit("expm1 q, f32-in-double", q_expm1, -R, R, deg)
    for deg in (6, 7):
        fit("log lg, f64", lg, mp.mpf(1e-30), S * S * mp.mpf("1.001"), deg)
    for deg in (2, 3):
        fit("log lg, f32-in-double", lg, mp.mpf(1e-30), S * S * mp.mpf("1.001"), deg)
    for deg in (5, 6):
        fit("sin S, f64", sin_s, mp.mpf(1e-30), P4, deg)
        fit("cos C, f64", cos_c, mp.mpf(1e-30), P4, deg)
    for deg in (3, 4):
        fit("sin S, f32-in-double", sin_s, mp.mpf(1e-30), P4, deg)
        fit("cos C, f32-in-double", cos_c, mp.mpf(1e-30), P4, deg)


def lg_tail(z):   # lg(z) = 2/3 + z h(z), for pow's double-double log
    return (lg(z) - mp.mpf(2) / 3) / z


if __name__ == "__main__":
    for deg in (5, 6):
        fit("log tail h, pow", lg_tail, mp.mpf(1e-30), S * S * mp.mpf("1.001"), deg)


def erfc_q(u):    # erfc(x) = exp(-x^2) Q(1/x)
    x = 1 / u
    return mp.erfc(x) * mp.exp(x * x)


if __name__ == "__main__":
    fit("erf P(x^2) = erf(x)/x, f64", erf_p, mp.mpf(1e-40), mp.mpf("2.25"), 14)
    c = (mp.mpf(1) / 6 + mp.mpf(1) / mp.mpf("1.5")) / 2
    print("/* center", float(c), "*/")
    fit("erfc Q(c + w), w = 1/x - c, f64", lambda w: erfc_q(c + w), mp.mpf(1) / 6 - c, mp.mpf(1) / mp.mpf("1.5") - c, 18)
    fit("erf P(x^2) = erf(x)/x, f32-in-double", erf_p, mp.mpf(1e-40), mp.mpf(4), 10)
    c = (mp.mpf(1) / 6 + mp.mpf(1) / 2) / 2
    print("/* center", float(c), "*/")
    fit("erfc Q(c + w), f32-in-double", lambda w: erfc_q(c + w), mp.mpf(1) / 6 - c, mp.mpf(1) / 2 - c, 6)


def log1p_l(f):   # log1p(f) = f - f^2/2 + f^3 L(f)
    if abs(f) < mp.mpf(10) ** -30:
        return mp.mpf(1) / 3 - f / 4
    return (mp.log1p(f) - f + f * f / 2) / f ** 3


def tanh_p(z):    # tanh(x) = x + x z P(z), z = x^2
    x = mp.sqrt(z)
    return (mp.tanh(x) - x) / (x * z)


if __name__ == "__main__":
    for deg in (3, 4):
        fit("expm1 q, float32", q_expm1, -R, R, deg, f32=True)
    for deg in (7, 8):
        fit("log1p L, float32", log1p_l, -(1 - 1 / mp.sqrt(2)) - mp.mpf("0.001"), mp.sqrt(2) - 1 + mp.mpf("0.001"), deg, f32=True)
    for deg in (4, 5):
        fit("tanh P, float32", tanh_p, mp.mpf(1e-30), mp.mpf("0.5625") ** 2, deg, f32=True)
    for deg in (5, 6):
        fit("expm1 q on |r| < ln2 (truncating reduction), float32", q_expm1, -mp.log(2) - mp.mpf("0.001"), mp.log(2) + mp.mpf("0.001"), deg, f32=True)
    fit("expm1 q, f64 (exp)", q_expm1, -R, R, 8)
    P4f = (mp.pi / 4 + mp.mpf("0.005")) ** 2
    for deg in (3, 4):
        fit("sin S, float32", sin_s, mp.mpf(1e-30), P4f, deg, f32=True)
        fit("cos C, float32", cos_c, mp.mpf(1e-30), P4f, deg, f32=True)
    for deg in (5, 6, 7):
        fit("erf P(x^2), float32 on |x| < 1", erf_p, mp.mpf(1e-40), mp.mpf(1), deg, f32=True)
    c = (mp.mpf(1) / 4 + 1) / 2
    print("/* center", float(c), "*/")
    for deg in (8, 9, 10):
        fit("erfc Q(c + w), float32 on 1 <= x <= 4", lambda w: erfc_q(c + w), mp.mpf(1) / 4 - c, 1 - c, deg, f32=True)
    import numpy as np
    c0 = 2 / mp.sqrt(mp.pi)
    hi = np.float32(float(c0))
    print("/* 2/sqrt(pi) =", float(hi), "+", float(c0 - mp.mpf(float(hi))), "*/")

    def erf_p1(z):   # erf(x) = x (2/sqrt(pi) + z P1(z))
        x = mp.sqrt(z)
        return (mp.erf(x) / x - c0) / z
    for deg in (4, 5):
        fit("erf P1, float32 on |x| < 1", erf_p1, mp.mpf(1e-40), mp.mpf(1), deg, f32=True)
