"""complex64 and complex128 (issue 22, item 1) on NumPy arrays: a complex value of a
trace is a pair of real tracers (python/tracejit/_complex.py). Differential tests
against eager NumPy over shapes, layouts, both complex dtypes, both compiler tiers,
mixed real/complex promotion, NumPy's special values (inf and nan in either part),
second calls with other values; and every refusal's message."""
import warnings

import numpy as np
import pytest

import tracejit

CDTYPES = [np.complex64, np.complex128]
RTOL = {np.complex64: 2e-5, np.complex128: 1e-13}
SHAPES = [(), (7,), (3, 4), (2, 3, 5)]


def crandn(rng, shape, dt, scale=1.0):
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return np.asarray(z * scale).astype(dt)


def assert_close(r, e, rtol, scale=None):
    """Same type, dtype and shape; values to rtol of the magnitude (or of `scale`), nan
    and inf where eager has them (in each part)."""
    assert type(r) is type(e), (type(r), type(e))
    if isinstance(e, (tuple, list)):
        assert len(r) == len(e)
        for a, b in zip(r, e):
            assert_close(a, b, rtol)
        return
    r, e = np.asarray(r), np.asarray(e)
    assert r.dtype == e.dtype and r.shape == e.shape, (r.dtype, e.dtype, r.shape, e.shape)
    if e.dtype.kind == "b":
        np.testing.assert_array_equal(r, e)
        return
    mag = np.abs(e).astype(np.float64) if scale is None else scale
    for part in (np.real, np.imag) if e.dtype.kind == "c" else (lambda v: v,):
        a, b = part(r).astype(np.float64), part(e).astype(np.float64)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        inf = np.isinf(b) | np.isinf(a)
        np.testing.assert_array_equal(a[inf], b[inf])
        fin = ~inf & ~np.isnan(b)
        # (a scale that overflows bounds nothing; eager's magnitude inf bounds exactly)
        tol = rtol * np.where(np.isfinite(mag), mag, 0 if scale is None else np.inf)[fin]
        tol = tol + 1e-30
        assert (np.abs(a[fin] - b[fin]) <= tol).all(), (a[fin], b[fin])


def both(fn, *args):
    """fn compiled under TinyCC and under the optimizing tier; each result, and the
    eager one (warnings of eager's untaken branches silenced)."""
    out = []
    for tier in ("tcc", "eager"):
        tracejit.set_tier(tier)
        try:
            cf = tracejit.compile(fn)
            out.append(cf(*args))
        finally:
            tracejit.set_tier("eager")
    with np.errstate(all="ignore"):
        e = fn(*args)
    return out, e


UNARY = ["exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "absolute",
         "reciprocal", "square", "negative", "positive", "conjugate", "isnan", "isinf",
         "isfinite"]


@pytest.fixture
def tcc_only():
    """TinyCC only: no background compile of the optimizing tier per test."""
    tracejit.set_tier("tcc")
    yield
    tracejit.set_tier("eager")


@pytest.mark.parametrize("dt", CDTYPES)
@pytest.mark.parametrize("name", UNARY)
def test_unary_shapes(name, dt, tcc_only):
    rng = np.random.default_rng(1)
    f = getattr(np, name)
    cf = tracejit.compile(lambda z: f(z))
    for shape in SHAPES:
        z = crandn(rng, shape, dt, 2.0)
        assert_close(cf(z), f(z), RTOL[dt])


@pytest.mark.parametrize("dt", CDTYPES)
def test_unary_both_tiers(dt):
    """Every unary function in one trace, compiled by each tier."""
    rng = np.random.default_rng(1)
    fs = [getattr(np, name) for name in UNARY]
    rs, e = both(lambda z: tuple(f(z) for f in fs), crandn(rng, (3, 4), dt, 2.0))
    for r in rs:
        assert_close(r, e, RTOL[dt])


@pytest.mark.parametrize("dt", CDTYPES)
def test_layouts_and_second_call(dt):
    rng = np.random.default_rng(2)
    big = crandn(rng, (6, 8), dt)
    f = tracejit.compile(lambda z, w: np.exp(z) * w - z / w + np.sqrt(z) * np.conj(w))
    for z, w in [(big.T, big[::-1].T), (big[::2, 1::3], big[1::2, ::3]),
                 (big[:, 2], big[:, 5])]:
        for k in range(2):      # a second call with other values replays
            z2, w2 = z * (k + 1), w + k
            with np.errstate(all="ignore"):
                e = np.exp(z2) * w2 - z2 / w2 + np.sqrt(z2) * np.conj(w2)
            assert_close(f(z2, w2), e, RTOL[dt] * 10)
    assert f.__dict__["_tj_complex"].cache_info().hits >= 3


# the special values of each part (C99 Annex G as glibc computes them, which NumPy
# calls), subnormal, huge and overflowing magnitudes among them
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -3.0, np.inf, -np.inf, np.nan, 1e-310, 800.0,
           -800.0, 1e308]
GRID = np.array([complex(a, b) for a in SPECIAL for b in SPECIAL])


def grid(dt):
    with np.errstate(over="ignore"):   # (1e308 is inf in complex64)
        return GRID.astype(dt)


@pytest.mark.parametrize("dt", CDTYPES)
@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh",
                                  "tanh", "absolute", "reciprocal", "square", "conjugate"])
def test_special_values_unary(name, dt):
    f = getattr(np, name)
    g = grid(dt)
    with np.errstate(all="ignore"):
        e = f(g)
    assert_close(tracejit.compile(lambda z: f(z))(g), e, RTOL[dt])


@pytest.mark.parametrize("dt", CDTYPES)
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "equal",
                                  "not_equal", "less", "greater_equal", "maximum"])
def test_special_values_binary(name, dt):
    f = getattr(np, name)
    g = grid(dt)
    a, b = np.repeat(g, g.size), np.tile(g, g.size)
    with np.errstate(all="ignore"):
        e = f(a, b)
        # a product's rounding is relative to its operands' magnitudes (NumPy's FMA
        # loop rounds once where the formula rounds twice)
        scale = np.abs(a).astype(np.float64) * np.abs(b) if name == "multiply" else None
    assert_close(tracejit.compile(lambda a, b: f(a, b))(a, b), e, RTOL[dt], scale)


@pytest.mark.parametrize("dt", CDTYPES)
@pytest.mark.parametrize("p", [0, 1, 2, 3, 5, -2, -7, 1.5, 0.3 + 0.7j, 99, -0.5])
def test_power(p, dt):
    g = grid(dt)
    with np.errstate(all="ignore"):
        e = np.power(g, p)
    assert_close(tracejit.compile(lambda z: np.power(z, p))(g), e, RTOL[dt] * 100)
    rng = np.random.default_rng(3)
    z = crandn(rng, (4, 5), dt)
    with np.errstate(all="ignore"):
        e = z ** p
    assert_close(tracejit.compile(lambda z: z ** p)(z), e, RTOL[dt] * 100)


def test_power_traced_exponent_refused():
    z = np.array([1 + 1j, 2j])
    with pytest.raises(tracejit.TraceError, match="numpy.power of complex values with a "
                       "traced exponent"):
        tracejit.compile(lambda z, w: z ** w)(z, z)


@pytest.mark.parametrize("case", [
    (lambda x, y: x + y, np.complex64, np.float64, np.complex128),
    (lambda x, y: x * y, np.complex64, np.float32, np.complex64),
    (lambda x, y: x - y, np.complex64, np.int32, np.complex128),
    (lambda x, y: x / y, np.complex128, np.uint8, np.complex128),
    (lambda x, y: y / x, np.complex64, np.int8, np.complex64),
])
def test_mixed_promotion(case):
    fn, cdt, rdt, want = case
    rng = np.random.default_rng(4)
    z = crandn(rng, (5,), cdt)
    x = (rng.standard_normal(5) * 3 + 5).astype(rdt)
    r = tracejit.compile(fn)(z, x)
    with np.errstate(all="ignore"):
        e = fn(z, x)
    assert e.dtype == want
    assert_close(r, e, RTOL[np.complex64])


@pytest.mark.parametrize("fn", [
    lambda x: x * 1j,                          # a real array meets a weak Python complex
    lambda x: np.exp(1j * x) + 2,
    lambda x: x.astype(np.complex64) * 2.5,
    lambda x: np.complex128(1 + 2j) * x.astype(np.complex64),   # a strong NumPy scalar
    lambda x: x + np.complex64(2j),
])
@pytest.mark.parametrize("rdt", [np.float32, np.float64, np.int64])
def test_real_arguments_complex_results(fn, rdt):
    x = np.arange(6).astype(rdt)
    assert_close(tracejit.compile(fn)(x), fn(x), 1e-6)


@pytest.mark.parametrize("dt", CDTYPES)
def test_reductions(dt):
    rng = np.random.default_rng(5)
    z = crandn(rng, (3, 4, 5), dt)
    fns = [lambda z: z.sum(), lambda z: np.sum(z, axis=1), lambda z: z.sum(axis=(0, 2),
           keepdims=True), lambda z: np.mean(z), lambda z: z.mean(axis=-1),
           lambda z: np.prod(z, axis=0), lambda z: np.prod(z[0]), lambda z: z.prod(axis=2,
           keepdims=True), lambda z: np.cumsum(z, axis=1), lambda z: np.add.reduce(z, axis=0)]
    for fn in fns:
        r = tracejit.compile(fn)(z)
        assert_close(r, fn(z), RTOL[dt] * 100)


def test_prod_limit_refused():
    z = np.ones(300, complex)
    with pytest.raises(tracejit.TraceError, match="numpy.prod of complex values over 300 "
                       "elements"):
        tracejit.compile(lambda z: np.prod(z))(z)


@pytest.mark.parametrize("dt", CDTYPES)
def test_contractions(dt):
    rng = np.random.default_rng(6)
    a, b = crandn(rng, (4, 5), dt), crandn(rng, (5, 3), dt)
    v, w = crandn(rng, (5,), dt), crandn(rng, (5,), dt)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    cases = [(lambda a, b: a @ b, a, b), (lambda a, b: np.matmul(a, b), a, b),
             (lambda a, b: np.dot(a, b), a, b), (lambda v, w: np.vdot(v, w), v, w),
             (lambda v, w: np.vdot(v, w), a, a), (lambda v, w: np.inner(v, w), v, w),
             (lambda v, w: np.outer(v, w), v, w),
             (lambda a, b: np.einsum("ij,jk->ik", a, b), a, b),
             (lambda a, b: np.einsum("ij->j", a), a, b), (lambda a, x: a @ x, a, x)]
    for fn, p, q in cases:
        assert_close(tracejit.compile(fn)(p, q), fn(p, q), RTOL[dt] * 100)


def test_comparisons_and_predicates():
    z = np.array([1 + 2j, 1 + 3j, 2 - 1j, complex(np.nan, 1), 0j, 3 + 0j])
    w = np.array([1 + 2j, 1 + 2j, 1 + 9j, 1j, -0.0 + 0j, 3 + 1e-300j])
    for fn in [lambda a, b: a == b, lambda a, b: a != b, lambda a, b: a < b,
               lambda a, b: a <= b, lambda a, b: a > b, lambda a, b: np.greater_equal(a, b),
               lambda a, b: np.maximum(a, b), lambda a, b: np.minimum(a, b),
               lambda a, b: (np.iscomplex(a), np.isreal(b), np.iscomplexobj(a)),
               lambda a, b: a == 1 + 2j]:
        with np.errstate(all="ignore"):
            e = fn(z, w)
        assert_close(tracejit.compile(fn)(z, w), e, 1e-15)


@pytest.mark.parametrize("dt", CDTYPES)
def test_parts_angle_casts(dt):
    rng = np.random.default_rng(7)
    z = crandn(rng, (3, 4), dt)
    for fn in [lambda z: (z.real, z.imag, np.real(z), np.imag(z)),
               lambda z: (np.angle(z), np.angle(z, deg=True), abs(z), z.conj(), z.T),
               lambda z: z.astype(np.complex128 if dt == np.complex64 else np.complex64),
               lambda z: z.astype(bool), lambda z: np.where(z.real > 0, z, -1j),
               lambda z: np.concatenate([z, z.real]), lambda z: z[1:, ::2].reshape(-1),
               lambda z: np.stack([z, z * 1j], axis=1), lambda z: z[0, 1]]:
        assert_close(tracejit.compile(fn)(z), fn(z), RTOL[dt])


def test_complex_to_real_warns_at_every_call():
    z = np.array([1 + 2j, 3 - 1j])
    f = tracejit.compile(lambda z: z.astype(np.float64) + 1)
    for k in range(3):
        with pytest.warns(np.exceptions.ComplexWarning, match="Casting complex values to real "
                          "discards the imaginary part"):
            r = f(z * (k + 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_array_equal(r, (z * (k + 1)).astype(np.float64) + 1)


def test_scalar_results():
    z = np.array([1 + 2j, 3 - 1j], np.complex64)
    for fn in [lambda z: z[0], lambda z: z.sum(), lambda z: np.vdot(z, z), lambda z: z.mean(),
               lambda z: np.exp(z[1]), lambda z: z.sum(keepdims=True).reshape(()),
               lambda z: complex(z[0] * 2)]:
        r, e = tracejit.compile(fn)(z), fn(z)
        assert type(r) is type(e), (type(r), type(e))
        assert_close(r, e, 1e-6)
    f = tracejit.compile(lambda a, z: a * z)        # a NumPy complex scalar argument
    assert_close(f(np.complex64(1 + 1j), z), np.complex64(1 + 1j) * z, 1e-6)
    assert_close(f(np.complex128(2j), z), np.complex128(2j) * z, 1e-6)


def test_branch_on_complex_value_is_guarded():
    f = tracejit.compile(lambda z: z * 2 if z[0] == 1 + 2j else z - 1)
    z = np.array([1 + 2j, 3j])
    assert_close(f(z), z * 2, 0)
    assert_close(f(z + 1), z, 0)
    assert_close(f(z), z * 2, 0)


def test_writes_into_local_complex_arrays():
    def fn(x):
        z = x * (1 + 1j)
        z[1] = 7 - 7j
        z *= 2
        z[2:] += 1j
        return z

    x = np.arange(5.0)
    assert_close(tracejit.compile(fn)(x), fn(x), 0)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_writes_into_a_complex_argument_reach_it_as_eager(dtype):
    """Its real and imaginary parts are read in place: two arrays whose memory
    interleaves with no element in common, each written back."""
    def fn(z):
        z[0] = 5
        z[1:] *= 1j
        return z.sum()

    f = tracejit.compile(fn)
    a = np.array([1 + 2j, 3j, 2 - 1j], dtype)
    b = a.copy()
    for call in range(3):
        assert_close(f(b), fn(a), 0)
        np.testing.assert_array_equal(b, a)


def test_write_into_a_complex_argument_passed_twice_refused():
    def fn(z, w):
        z[0] = 5
        return w.sum()

    z = np.array([1 + 2j, 3j])
    with pytest.raises(tracejit.TraceError, match="writes into a complex argument whose "
                       "elements another argument shares"):
        tracejit.compile(fn)(z, z)
    np.testing.assert_array_equal(z, [1 + 2j, 3j])


def test_inplace_complex_into_real_raises_as_numpy():
    def fn(x):
        x *= 1j
        return x

    with pytest.raises(TypeError, match="Cannot cast ufunc 'multiply' output from "
                       r"dtype\('complex128'\) to dtype\('float64'\)"):
        tracejit.compile(fn)(np.ones(3))


@pytest.mark.parametrize("fn,msg", [
    (lambda z: np.arcsin(z), "numpy.arcsin of complex values is not supported"),
    (lambda z: float(z[0]), "float\\(\\) of a complex value is not supported"),
    (lambda z: np.real_if_close(z), "numpy.real_if_close of complex values"),
    (lambda z: z // 2, "floor division of complex values"),
    (lambda z: np.sort(z), "numpy.sort of complex values is not supported"),
    (lambda z: np.exp(z, out=z), "out=/where="),
])
def test_refusals_name_the_operation(fn, msg):
    with pytest.raises(tracejit.TraceError, match=msg):
        tracejit.compile(fn)(np.array([1 + 2j, 3j]))


def test_captured_complex_array_read_at_every_call():
    Z = np.array([1 + 2j, 3 - 1j])
    f = tracejit.compile(lambda x: x * Z)
    x = np.array([1.0, 2.0])
    assert_close(f(x), x * Z, 0)
    Z[0] = 100
    assert_close(f(x), x * Z, 0)


def test_export_refuses_complex():
    with pytest.raises(TypeError, match="arrays of dtype complex128 are not supported"):
        tracejit.export(lambda z: z * 2, np.ones(3, complex), path="unused")


def test_grad_through_complex_intermediates():
    """Real-valued functions of real inputs through complex values: the real chain rule
    (jax's convention); checked against central differences (and jax when installed)."""
    def fn(x):
        z = np.exp(1j * x) * (x + 2j)
        w = z * z.conj() + np.sqrt(z) / (1.5 - x * 1j)
        return np.abs(w).sum() + np.angle(z).sum() + (z ** 3).real.sum()

    x = np.array([0.3, -1.1, 0.7, 2.0])
    g = tracejit.grad(fn)(x)
    h = 1e-6
    fd = np.array([(fn(x + h * np.eye(4)[i]) - fn(x - h * np.eye(4)[i])) / (2 * h)
                   for i in range(4)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    # jax in a subprocess: imported here it would make every later os.fork() of the
    # suite warn (JAX is multithreaded) and set jax_enable_x64 for the process
    import importlib.util
    import json
    import subprocess
    import sys
    if importlib.util.find_spec("jax") is None:
        return
    code = """if True:
        import json, sys
        import jax, jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        def jfn(x):
            z = jnp.exp(1j * x) * (x + 2j)
            w = z * z.conj() + jnp.sqrt(z) / (1.5 - x * 1j)
            return jnp.abs(w).sum() + jnp.angle(z).sum() + (z ** 3).real.sum()
        x = jnp.array(json.loads(sys.argv[1]))
        print(json.dumps([float(v) for v in jax.grad(jfn)(x)]))
    """
    r = subprocess.run([sys.executable, "-c", code, json.dumps(x.tolist())],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_allclose(g, json.loads(r.stdout.strip().splitlines()[-1]), rtol=1e-10)


def test_grad_with_respect_to_complex_refused():
    with pytest.raises(TypeError, match="differentiated arguments must be arrays or floats"):
        tracejit.grad(lambda z: np.abs(z).sum())(np.array([1 + 1j]))


def test_torch_complex_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="complex64"):
        tracejit.compile(lambda t: t * 2)(torch.ones(3, dtype=torch.complex64))
    with pytest.raises(tracejit.TraceError, match="complex values in torch code are not "
                       "supported"):
        tracejit.compile(lambda t: t * 1j)(torch.ones(3))


def test_python_complex_argument_is_static():
    f = tracejit.compile(lambda a, b: a + b)
    x = np.arange(3.0)
    assert_close(f(1 + 2j, x), (1 + 2j) + x, 0)
    assert_close(f(3j, x), 3j + x, 0)
    assert_close(f(x, np.complex64(2j)), x + np.complex64(2j), 0)


def test_clongdouble_refused_by_name():
    with pytest.raises(TypeError, match="complex256"):
        tracejit.compile(lambda a: a * 2)(np.ones(2, np.clongdouble))
    with pytest.raises(tracejit.TraceError, match="complex256 values are not supported"):
        tracejit.compile(lambda a: a * np.clongdouble(1j))(np.ones(2))
