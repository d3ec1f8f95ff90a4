"""Complex ufuncs and functions over real and imaginary parts (_complex.py's Complex).

Each is NumPy's own algorithm on the parts: division and reciprocal as NumPy's loops
(Smith's method), power as NumPy's nc_pow (integer exponents by repeated products,
else exp(b log a)), exp, log, sqrt, sinh, cosh, tanh (and sin, cos, tan through them)
as glibc's cexp, clog, csqrt, csinh, ccosh, ctanh, which NumPy calls, with their
special values (C99 Annex G) written as selects. Products are NumPy's formula; NumPy's
SIMD loops fuse a multiply-add there, so results agree to rounding, not bits.
"""
import numpy as np

from . import _complex as C

W = np.where


def _un(a, full=False):
    """a's real dtype and parts; a real array's imaginary part the scalar zero unless
    `full` (then an array of zeros: what functions other than the elementwise need)."""
    dt = C._result(a)
    rdt = C._rdt(dt)
    return rdt, C.parts(a, rdt, full)


def _bin(a, b, full=False):
    dt = C._result(a, b)
    rdt = C._rdt(dt)
    return rdt, C.parts(a, rdt, full), C.parts(b, rdt, full)


# ---- arithmetic ----------------------------------------------------------------------

def add(a, b):
    _, (ar, ai), (br, bi) = _bin(a, b)
    return C.make(ar + br, ai + bi)


def subtract(a, b):
    _, (ar, ai), (br, bi) = _bin(a, b)
    return C.make(ar - br, ai - bi)


def _mul(ar, ai, br, bi):
    """NumPy's product. Its SIMD loop computes re = fma(ar, br, -(ai bi)) and
    im = fma(ar, bi, ai br): where the second product overflows and the first's operands
    are finite, that is the second product itself (not inf - inf)."""
    p, q = ai * bi, ai * br
    re = ar * br - p
    im = ar * bi + q
    if any(C._is_tracer(v) for v in (ar, ai, br, bi)):
        fa, fb = np.isfinite(ar) & np.isfinite(ai), np.isfinite(br) & np.isfinite(bi)
        # finite operands whose exact result is finite although a product overflows:
        # the products scaled by 1/4 (fma's single rounding, to a rounding)
        ovf = fa & fb
        re = W(ovf & np.isinf(re), ((ar * 0.25) * br - (ai * 0.25) * bi) * 4, re)
        im = W(ovf & np.isinf(im), ((ar * 0.25) * bi + (ai * 0.25) * br) * 4, im)
        re = W(np.isinf(p) & np.isfinite(ar) & np.isfinite(br), -p, re)
        im = W(np.isinf(q) & np.isfinite(ar) & np.isfinite(bi), q, im)
    return re, im


def _nc_prod(ar, ai, br, bi):
    """NumPy's nc_prod (its power's products): the plain formula."""
    return ar * br - ai * bi, ar * bi + ai * br


def _01(cond, like):
    t = np.asarray(like).dtype.type if not C._is_tracer(like) else like.dtype.type
    return W(cond, t(1), t(0))


def _mul_c99(ar, ai, br, bi):
    """C's complex product (gcc's __muldc3, C99 Annex G): a NaN result of infinite
    operands recovered as an infinity (glibc's cpow multiplies so)."""
    re, im = ar * br - ai * bi, ar * bi + ai * br
    both = np.isnan(re) & np.isnan(im)
    ainf = np.isinf(ar) | np.isinf(ai)
    binf = np.isinf(br) | np.isinf(bi)
    ar2 = W(ainf, np.copysign(_01(np.isinf(ar), ar), ar), ar)
    ai2 = W(ainf, np.copysign(_01(np.isinf(ai), ai), ai), ai)
    br2 = W(ainf & np.isnan(br), np.copysign(0, br), br)
    bi2 = W(ainf & np.isnan(bi), np.copysign(0, bi), bi)
    br3 = W(binf, np.copysign(_01(np.isinf(br), br), br), br2)
    bi3 = W(binf, np.copysign(_01(np.isinf(bi), bi), bi), bi2)
    ar3 = W(binf & np.isnan(ar2), np.copysign(0, ar2), ar2)
    ai3 = W(binf & np.isnan(ai2), np.copysign(0, ai2), ai2)
    partial = (np.isinf(ar * br) | np.isinf(ai * bi) | np.isinf(ar * bi) | np.isinf(ai * br))
    rest = ~ainf & ~binf & partial
    ar3 = W(rest & np.isnan(ar3), np.copysign(0, ar3), ar3)
    ai3 = W(rest & np.isnan(ai3), np.copysign(0, ai3), ai3)
    br3 = W(rest & np.isnan(br3), np.copysign(0, br3), br3)
    bi3 = W(rest & np.isnan(bi3), np.copysign(0, bi3), bi3)
    recalc = both & (ainf | binf | partial)
    re2 = np.inf * (ar3 * br3 - ai3 * bi3)
    im2 = np.inf * (ar3 * bi3 + ai3 * br3)
    return W(recalc, re2, re), W(recalc, im2, im)


def multiply(a, b):
    _, (ar, ai), (br, bi) = _bin(a, b)
    return C.make(*_mul(ar, ai, br, bi))


def _div(ar, ai, br, bi):
    """NumPy's complex division loop (Smith's method; x/0 gives a complex inf or nan)."""
    with np.errstate(all="ignore"):   # (constant operands: the untaken branch warns)
        return _div_parts(ar, ai, br, bi)


def _div_parts(ar, ai, br, bi):
    abr, abi = np.absolute(br), np.absolute(bi)
    first = abr >= abi
    zero = (abr == 0) & (abi == 0)
    rat1 = bi / br
    scl1 = 1.0 / (br + bi * rat1)
    rat2 = br / bi
    scl2 = 1.0 / (bi + br * rat2)
    re = W(first, W(zero, ar / abr, (ar + ai * rat1) * scl1), (ar * rat2 + ai) * scl2)
    im = W(first, W(zero, ai / abr, (ai - ar * rat1) * scl1), (ai * rat2 - ar) * scl2)
    return re, im


def divide(a, b):
    _, (ar, ai), (br, bi) = _bin(a, b)
    return C.make(*_div(ar, ai, br, bi))


def reciprocal(a):
    _, (r, i) = _un(a)
    small = np.absolute(i) <= np.absolute(r)
    q1 = i / r
    d1 = r + i * q1
    q2 = r / i
    d2 = r * q2 + i
    return C.make(W(small, 1.0 / d1, q2 / d2), W(small, -q1 / d1, -1.0 / d2))


def negative(a):
    _, (r, i) = _un(a)
    return C.make(-r, -i)


def positive(a):
    _, (r, i) = _un(a)
    return C.make(+r, +i)


def conjugate(a):
    _, (r, i) = _un(a)
    return C.make(+r, -i)


def square(a):
    _, (r, i) = _un(a)
    return C.make(*_mul(r, i, r, i))


def absolute(a):
    _, (r, i) = _un(a)
    return np.hypot(r, i)


# ---- comparisons: NumPy's lexicographic order (a NaN in either part: False) ---------

def equal(a, b):
    _, (ar, ai), (br, bi) = _bin(a, b)
    return (ar == br) & (ai == bi)


def not_equal(a, b):
    _, (ar, ai), (br, bi) = _bin(a, b)
    return (ar != br) | (ai != bi)


def _lt(ar, ai, br, bi, strict):
    inner = ai < bi if strict else ai <= bi
    return ((ar < br) & ~np.isnan(ai) & ~np.isnan(bi)) | ((ar == br) & inner)


def less(a, b):
    _, (ar, ai), (br, bi) = _bin(a, b)
    return _lt(ar, ai, br, bi, True)


def less_equal(a, b):
    _, (ar, ai), (br, bi) = _bin(a, b)
    return _lt(ar, ai, br, bi, False)


def greater(a, b):
    return less(b, a)


def greater_equal(a, b):
    return less_equal(b, a)


def maximum(a, b, lt=False):
    _, (ar, ai), (br, bi) = _bin(a, b)
    ge = _lt(br, bi, ar, ai, False) if not lt else _lt(ar, ai, br, bi, False)
    keep = ge | np.isnan(ar) | np.isnan(ai)
    return C.make(W(keep, ar, br), W(keep, ai, bi))


def minimum(a, b):
    return maximum(a, b, lt=True)


def isnan(a):
    _, (r, i) = _un(a)
    return np.isnan(r) | np.isnan(i)


def isinf(a):
    _, (r, i) = _un(a)
    return np.isinf(r) | np.isinf(i)


def isfinite(a):
    _, (r, i) = _un(a)
    return np.isfinite(r) & np.isfinite(i)


# ---- exp, log, sqrt (glibc's cexp, clog, csqrt) --------------------------------------

def _tmax(rdt):
    """glibc's t: (max exponent - 1) * ln 2, truncated."""
    return 88.0 if rdt == np.float32 else 709.0


def _exp(x, y, rdt):
    t = _tmax(rdt)
    c, s = np.cos(y), np.sin(y)
    big = x > t
    et = rdt.type(np.exp(rdt.type(t)))
    x1 = W(big, x - t, x)
    c, s = W(big, c * et, c), W(big, s * et, s)
    big2 = x1 > t
    x2 = W(big2, x1 - t, x1)
    c, s = W(big2, c * et, c), W(big2, s * et, s)
    over = x2 > t
    e = W(over, np.finfo(rdt).max, np.exp(W(over, 0, x2)))
    re, im = e * c, e * s
    finite_x = np.isfinite(x)
    bad_y = ~np.isfinite(y)
    # Annex G: exp(x + 0i) = exp(x) + 0i; exp(-inf + i y) for y not finite: +-0;
    # exp(+inf + i y) for y not finite: inf + nan i; exp(nan + i y), y != 0: nan
    im = W(y == 0, y, im)
    re = W(y == 0, W(np.isnan(x), x, np.exp(x)), re)
    neginf = x == -np.inf
    re = W(neginf & bad_y, 0, re)
    im = W(neginf & bad_y, 0, im)
    posinf = x == np.inf
    re = W(posinf & bad_y, np.inf, re)
    im = W(posinf & bad_y, np.nan, im)
    re = W(finite_x & bad_y, np.nan, re)
    return re, im


def exp(a):
    rdt, (x, y) = _un(a)
    return C.make(*_exp(x, y, rdt))


def _log(x, y, rdt):
    ax, ay = np.absolute(x), np.absolute(y)
    hi, lo = np.maximum(ax, ay), np.minimum(ax, ay)
    h = np.hypot(x, y)
    eps = np.finfo(rdt).eps
    # near |z| = 1, log1p of |z|^2 - 1 (glibc's branches, its x2y2m1 without the
    # extra precision)
    d2m1 = (hi - 1) * (hi + 1) + W(lo >= eps, lo * lo, 0)
    near = ((hi == 1) | ((hi > 1) & (hi < 2) & (lo < 1)) |
            ((hi < 1) & (hi >= 0.5) & ((lo < eps / 2) | (hi * hi + lo * lo >= 0.5))))
    re = W(near, np.log1p(W(near, d2m1, 0)) * 0.5, np.log(h))
    re = W(np.isinf(x) | np.isinf(y), np.inf, re)
    return re, np.arctan2(y, x)


def log(a):
    rdt, (x, y) = _un(a)
    return C.make(*_log(x, y, rdt))


def _sqrt(x, y, rdt):
    big = (np.absolute(x) > np.finfo(rdt).max / 4) | (np.absolute(y) > np.finfo(rdt).max / 4)
    xs, ys = W(big, x * 0.25, x), W(big, y * 0.25, y)
    d = np.hypot(xs, ys)
    pos = xs > 0
    r1 = np.sqrt(0.5 * (d + xs))
    s1 = 0.5 * (ys / r1)
    s2 = np.sqrt(0.5 * (d - xs))
    r2 = np.absolute(0.5 * (ys / s2))
    r, s = W(pos, r1, r2), W(pos, s1, s2)
    r, s = W(big, r * 2, r), W(big, s * 2, s)
    # y == 0: sqrt of a real; x == 0: r = s = sqrt(|y| / 2)
    yz = (y == 0) & ~np.isnan(x)
    r = W(yz, W(x < 0, 0, np.sqrt(W(x < 0, 0, x))), r)
    s = W(yz, W(x < 0, np.sqrt(W(x < 0, -x, 0)), 0), s)
    xz = (x == 0) & ~yz
    q = np.sqrt(0.5 * np.absolute(y))
    r, s = W(xz, q, r), W(xz, q, s)
    s = np.copysign(s, y)
    # Annex G: y = +-inf: inf + i y; x = -inf: nan or 0 + i inf; x = +inf: inf + i 0 or nan
    yinf = np.isinf(y)
    xninf = (x == -np.inf) & ~yinf
    xpinf = (x == np.inf) & ~yinf
    r = W(xninf, W(np.isnan(y), rdt.type(np.nan), rdt.type(0)), r)
    s = W(xninf, np.copysign(np.inf, W(np.isnan(y), 1, y)), s)
    r = W(xpinf, np.inf, r)
    s = W(xpinf, W(np.isnan(y), np.nan, np.copysign(0, y)), s)
    r = W(yinf, np.inf, r)
    s = W(yinf, y, s)
    return r, s


def sqrt(a):
    rdt, (x, y) = _un(a)
    return C.make(*_sqrt(x, y, rdt))


# ---- hyperbolic and trigonometric (glibc's csinh, ccosh, ctanh; sin z = -i sinh iz) --

def _sinh_cosh(x, y, rdt, cosh):
    t = _tmax(rdt)
    s, c = np.sin(y), np.cos(y)
    ax = np.absolute(x)
    big = ax > t
    et = rdt.type(np.exp(rdt.type(t)))
    # large |x|: exp(|x|)/2 scaled as glibc does
    xa = W(big, ax - t, ax)
    sb, cb = s * et, c * et
    big2 = big & (xa > t)
    xa2 = W(big2, xa - t, xa)
    sb, cb = W(big2, sb * et, sb), W(big2, cb * et, cb)
    over = big & (xa2 > t)
    ev = W(over, np.finfo(rdt).max, np.exp(W(over, 0, xa2)) * 0.5)
    if cosh:
        re_b, im_b = ev * cb, np.copysign(ev, x) * sb
        re_s, im_s = np.cosh(x) * c, np.sinh(x) * s
    else:
        re_b, im_b = np.copysign(ev, x) * cb, ev * sb
        re_s, im_s = np.sinh(x) * c, np.cosh(x) * s
    re, im = W(big, re_b, re_s), W(big, im_b, im_s)
    finite_x, finite_y = np.isfinite(x), np.isfinite(y)
    # Annex G
    yz = y == 0
    xz = x == 0
    if cosh:
        # cosh(x + 0i) = cosh x + i 0*sign; cosh(0 + i y), y not finite: nan + 0i
        im = W(yz, W(np.isnan(x), y, W(finite_x, x * y, W(xz, y, np.copysign(0, x) * y))), im)
        im = W(yz & np.isinf(x), y * np.copysign(1, x), im)
        re = W(yz, np.cosh(x), re)
        re = W(xz & ~finite_y, np.nan, re)
        im = W(xz & ~finite_y, 0, im)
        inf_x = np.isinf(x)
        re = W(inf_x & ~finite_y, np.inf, re)
        im = W(inf_x & ~finite_y, np.nan, im)
    else:
        re = W(yz, np.sinh(x), re)
        im = W(yz, y, im)
        re = W(xz & ~finite_y, x, re)
        im = W(xz & ~finite_y, np.nan, im)
        inf_x = np.isinf(x)
        re = W(inf_x & ~finite_y, np.inf, re)
        im = W(inf_x & ~finite_y, np.nan, im)
    re = W(finite_x & ~xz & ~finite_y, np.nan, re)
    im = W(finite_x & ~xz & ~finite_y, np.nan, im)
    re = W(np.isnan(x) & ~yz, np.nan, re)
    im = W(np.isnan(x) & ~yz, np.nan, im)
    return re, im


def sinh(a):
    rdt, (x, y) = _un(a)
    return C.make(*_sinh_cosh(x, y, rdt, False))


def cosh(a):
    rdt, (x, y) = _un(a)
    return C.make(*_sinh_cosh(x, y, rdt, True))


def _tanh(x, y, rdt):
    t = rdt.type(44.0 if rdt == np.float32 else 354.0)   # glibc: (max exp - 1) ln 2 / 2
    tiny = np.finfo(rdt).tiny
    eps = np.finfo(rdt).eps
    s, c = np.sin(y), np.cos(y)
    s = W(np.absolute(y) > tiny, s, y)
    c = W(np.absolute(y) > tiny, c, 1)
    ax = np.absolute(x)
    big = ax > t
    e2t = rdt.type(np.exp(rdt.type(2 * t)))
    rest = ax - t
    im_b = 4 * s * c / e2t
    im_b = W(rest > t, im_b / e2t, im_b / np.exp(2 * W(rest > t, 0, rest)))
    re_b = np.copysign(1, x)
    sh = W(ax > tiny, np.sinh(W(big, 0, x)), x)
    ch = W(ax > tiny, np.cosh(W(big, 0, x)), 1)
    den = W(np.absolute(sh) > np.absolute(c) * eps, sh * sh + c * c, c * c)
    re, im = W(big, re_b, sh * ch / den), W(big, im_b, s * c / den)
    # Annex G: tanh(+-inf + i y) = +-1 + i 0 (sign of sin 2y); y not finite: nan
    inf_x = np.isinf(x)
    re = W(inf_x, np.copysign(1, x), re)
    im = W(inf_x, W(np.isfinite(y), np.copysign(0, s * c), 0), im)
    bad = ~inf_x & ~np.isfinite(y)
    re = W(bad, W(x == 0, x, np.nan), re)
    im = W(bad, np.nan, im)
    xn = np.isnan(x)
    re = W(xn, np.nan, re)
    im = W(xn, W(y == 0, y, np.nan), im)
    return re, im


def tanh(a):
    rdt, (x, y) = _un(a)
    return C.make(*_tanh(x, y, rdt))


def _rot(fn, a):  # noqa
    """f(z) = -i g(iz) for g = sinh, tanh; cos z = cosh(iz)."""
    rdt, (x, y) = _un(a)
    r, i = fn(-y, x, rdt)
    return r, i


def sin(a):
    rdt, (x, y) = _un(a)
    r, i = _sinh_cosh(-y, x, rdt, False)
    # glibc's csin: x not finite, y infinite: nan + inf i
    return C.make(i, W(~np.isfinite(x) & np.isinf(y), np.inf, -r))


def cos(a):
    r, i = _rot(lambda x, y, rdt: _sinh_cosh(x, y, rdt, True), a)
    return C.make(r, i)


def tan(a):
    r, i = _rot(_tanh, a)
    return C.make(i, -r)


# ---- power (NumPy's nc_pow) -----------------------------------------------------------

def power(a, b, scalar_op=False):
    if isinstance(b, (C.Complex,)) or C._is_tracer(b) or \
            (isinstance(b, np.ndarray) and b.ndim > 0):
        if C._is_tracer(b) or isinstance(b, C.Complex):
            C._refuse("numpy.power of complex values with a traced exponent is not supported by "
                      "tracejit yet (a constant exponent is)")
    if isinstance(b, np.ndarray):
        b = b[()] if b.ndim == 0 else b
    rdt, (ar, ai), (br, bi) = _bin(a, b)
    if isinstance(br, np.ndarray):
        C._refuse("numpy.power of complex values with an array exponent is not supported by "
                  "tracejit yet (a scalar exponent is)")
    if scalar_op and isinstance(a, C.Complex) and not a.np0 and \
            isinstance(b, (int, float)) and not isinstance(b, bool):
        # ndarray.__pow__'s shortcuts
        if b == 2:
            return square(a)
        if b == 0.5:
            return sqrt(a)
        if b == 1:
            return positive(a)
        if b == -1:
            return reciprocal(a)
    br, bi = float(br), float(bi)
    zero = (ar == 0) & (ai == 0)
    if br == 0 and bi == 0:
        shape = tuple(np.shape(ar))
        return C.make(C._C._full(shape, rdt, 1), C._C._full(shape, rdt, 0))
    if bi == 0 and br == int(br) and -100 < br < 100:
        n = int(br)
        if n == 1:
            re, im = +ar, +ai
        elif n == 2:
            re, im = _nc_prod(ar, ai, ar, ai)
        elif n == 3:
            r2, i2 = _nc_prod(ar, ai, ar, ai)
            re, im = _nc_prod(ar, ai, r2, i2)
        else:
            k, mask = abs(n), 1
            aa = (rdt.type(1), rdt.type(0))
            p = (ar, ai)
            while True:
                if k & mask:
                    aa = _nc_prod(aa[0], aa[1], p[0], p[1])
                mask <<= 1
                if k < mask:
                    break
                p = _nc_prod(p[0], p[1], p[0], p[1])
            re, im = aa
            if n < 0:
                re, im = _div(rdt.type(1), rdt.type(0), re, im)
    else:   # glibc's cpow: cexp(b * clog(a)), C's complex product
        lr, li = _log(ar, ai, rdt)
        re, im = _exp(*_mul_c99(rdt.type(br), rdt.type(bi), lr, li), rdt)
    if br > 0:
        re, im = W(zero, 0, re), W(zero, 0, im)
    else:
        re, im = W(zero, np.nan, re), W(zero, np.nan, im)
    return C.make(re, im)


def power_ufunc(a, b):
    return power(a, b)


# ---- contractions: four real products -------------------------------------------------

def _prod4(f, a, b, conj_a=False):
    _, (ar, ai), (br, bi) = _bin(a, b, True)
    if conj_a:
        return C.make(f(ar, br) + f(ai, bi), f(ar, bi) - f(ai, br))
    return C.make(f(ar, br) - f(ai, bi), f(ar, bi) + f(ai, br))


def matmul(a, b):
    return _prod4(np.matmul, a, b)


def dot(a, b, out=None):
    return _prod4(np.dot, a, b)


def vdot(a, b):
    r = _prod4(lambda x, y: np.dot(x.reshape(-1), y.reshape(-1)), a, b, conj_a=True)
    r.np0 = True
    return r


def inner(a, b):
    return _prod4(np.inner, a, b)


def outer(a, b, out=None):
    return _prod4(np.outer, a, b)


def tensordot(a, b, axes=2):
    return _prod4(lambda x, y: np.tensordot(x, y, axes), a, b)


def einsum(subscripts, *operands, **kwargs):
    if not isinstance(subscripts, str) or len(operands) not in (1, 2) or kwargs:
        C._refuse("numpy.einsum of complex values takes a subscripts string and one or two "
                  "operands in tracejit")
    if len(operands) == 1:
        rdt, (r, i) = _un(operands[0], True)
        return C.make(np.einsum(subscripts, r), np.einsum(subscripts, i))
    return _prod4(lambda x, y: np.einsum(subscripts, x, y), *operands)


# ---- reductions ----------------------------------------------------------------------

def _axes(ndim, axis):
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axis)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    """NumPy's order: a left-to-right product over the reduced elements, unrolled."""
    if out is not None or kw:
        C._refuse("numpy.prod(out=/where=/initial=) of complex values is not supported by "
                  "tracejit yet")
    z = C.astype(a, dtype) if dtype is not None else a
    rdt, (r, i) = _un(z, True)
    axes = _axes(r.ndim, axis)
    keep = [d for d in range(r.ndim) if d not in axes]
    n = int(np.prod([r.shape[d] for d in axes], dtype=np.int64))
    if n > 256:
        C._refuse(f"numpy.prod of complex values over {n} elements (tracejit unrolls a complex "
                  "product, at most 256)")
    perm = keep + list(axes)
    rr = np.transpose(r, perm).reshape(tuple(r.shape[d] for d in keep) + (n,))
    ii = np.transpose(i, perm).reshape(tuple(r.shape[d] for d in keep) + (n,))
    acc = (C._C._full(rr.shape[:-1], rdt, 1), C._C._full(rr.shape[:-1], rdt, 0))
    for k in range(n):
        acc = _mul(acc[0], acc[1], rr[..., k], ii[..., k])
    re, im = acc
    if keepdims:
        shape = tuple(1 if d in axes else r.shape[d] for d in range(r.ndim))
        re, im = re.reshape(shape), im.reshape(shape)
    return C.make(re, im, np0=np.ndim(re) == 0)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    if out is not None or kw:
        C._refuse("numpy.mean(out=/where=) of complex values is not supported by tracejit yet")
    z = C.astype(a, dtype) if dtype is not None else a
    rdt, (r, i) = _un(z, True)
    axes = _axes(r.ndim, axis)
    n = int(np.prod([r.shape[d] for d in axes], dtype=np.int64))
    s = C.make(np.sum(r, axis=axis, keepdims=keepdims), np.sum(i, axis=axis, keepdims=keepdims))
    # NumPy divides the complex sum by the count as a complex division
    re, im = _div(s.re, s.im, rdt.type(n), rdt.type(0))
    return C.make(re, im, np0=np.ndim(re) == 0)


def angle(z, deg=False):
    _, (r, i) = _un(z, True)
    a = np.arctan2(i, r)
    return a * (180 / np.pi) if deg else a


def real(z):
    return z.re if isinstance(z, C.Complex) else np.real(z)


def imag(z):
    return z.im if isinstance(z, C.Complex) else np.imag(z)


def real_if_close(a, tol=100):
    C._refuse("numpy.real_if_close of complex values: its result's dtype depends on the "
              "values, which a trace cannot represent; take .real where you know it is real")


def iscomplexobj(x):
    return True


def isrealobj(x):
    return False


def iscomplex(x):
    _, (r, i) = _un(x, True)
    return i != 0


def isreal(x):
    _, (r, i) = _un(x, True)
    return i == 0


def linalg_norm(x, ord=None, axis=None, keepdims=False):
    if ord is not None:
        C._refuse("numpy.linalg.norm(ord=...) of complex values is not supported by tracejit yet")
    _, (r, i) = _un(x, True)
    return np.sqrt(np.sum(r * r + i * i, axis=axis, keepdims=keepdims))


UFUNCS = {
    "add": add, "subtract": subtract, "multiply": multiply, "divide": divide,
    "true_divide": divide, "reciprocal": reciprocal, "negative": negative,
    "positive": positive, "conjugate": conjugate, "square": square, "absolute": absolute,
    "equal": equal, "not_equal": not_equal, "less": less, "less_equal": less_equal,
    "greater": greater, "greater_equal": greater_equal, "maximum": maximum,
    "minimum": minimum, "isnan": isnan, "isinf": isinf, "isfinite": isfinite, "exp": exp,
    "log": log, "sqrt": sqrt, "sinh": sinh, "cosh": cosh, "tanh": tanh, "sin": sin,
    "cos": cos, "tan": tan, "power": power_ufunc, "matmul": matmul,
}

FUNCS = {
    "dot": dot, "vdot": vdot, "inner": inner, "outer": outer, "tensordot": tensordot,
    "einsum": einsum, "prod": prod, "mean": mean, "angle": angle, "real": real,
    "imag": imag, "real_if_close": real_if_close, "iscomplexobj": iscomplexobj,
    "isrealobj": isrealobj, "iscomplex": iscomplex, "isreal": isreal, "matmul": matmul,
    "norm": linalg_norm,
}
