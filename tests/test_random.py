"""Random numbers inside compiled code (python/tracejit/_draws.py, _torch_random.py,
csrc/trace/random.c, csrc/emit/prims_random.h): Philox4x32-10 against Random123's
known answers; the compiled draws as exact functions of (key, counter); fresh numbers at
every call from every entry point; distributions (Kolmogorov-Smirnov against exact
CDFs, at a fixed significance with fixed seeds, so the suite is deterministic);
seeding; bit-identity across threads and tiers; independence of neighbours."""
import math
import shutil

import numpy as np
import pytest

import tracejit
from tracejit import TraceError, _C

# ---- Philox4x32-10, a reference in Python ------------------------------------------

M = 0xFFFFFFFF


def philox(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M, p1 & M, ((p0 >> 32) ^ c3 ^ k1) & M, p0 & M
        k0, k1 = (k0 + 0x9E3779B9) & M, (k1 + 0xBB67AE85) & M
    return c0, c1, c2, c3


# Random123's tests/kat_vectors, the philox4x32 10 lines: counter, key, result
KAT = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
       ((M, M, M, M), (M, M), (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
       ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
        (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]


@pytest.mark.parametrize("ctr,key,out", KAT)
def test_the_reference_philox_gives_random123s_known_answers(ctr, key, out):
    assert philox(ctr, key) == out


KEY = 0x0123456789ABCDEF


def block(i, key=KEY, stream=0):
    return philox((i & M, i >> 32, stream, 0), (key & M, key >> 32))


# The stream (prims_random.h): float32 counter c reads word c & 3 of block c >> 2,
# float64 counter c word pair c & 1 of block c >> 1 of stream 1; a normal is Box-Muller
# of a pair of uniforms, cos for an even counter, sin for an odd one.
def u24(w):
    return (w >> 8) * 2.0 ** -24


def u53(hi, lo):
    return (((hi << 32) | lo) >> 11) * 2.0 ** -53


def ref_uniform32(c, key=KEY):
    return u24(block(c >> 2, key)[c & 3])


def ref_uniform64(c, key=KEY):
    w = block(c >> 1, key, 1)
    return u53(*w[2 * (c & 1):2 * (c & 1) + 2])


def ref_normal32(c, key=KEY):
    w = block(c >> 2, key)
    u1, u2 = 1.0 - u24(w[c & 2]), u24(w[(c & 2) + 1])
    return math.sqrt(-2 * math.log(u1)) * (math.sin if c & 1 else math.cos)(2 * math.pi * u2)


def ref_normal64(c, key=KEY):
    w = block(c >> 1, key, 1)
    u1, u2 = 1.0 - u53(w[0], w[1]), u53(w[2], w[3])
    return math.sqrt(-2 * math.log(u1)) * (math.sin if c & 1 else math.cos)(2 * math.pi * u2)


def fixed(key=KEY):
    """A source whose key is the same at every call (the tests' handle on the counter)."""
    return object(), (lambda: key)


def compiled_draw(kind, shape, dtype, key=KEY):
    src, keyfn = fixed(key)

    @tracejit.compile
    def f(x):
        return x + _C._random(kind, shape, dtype, src, keyfn)
    return f(np.zeros(shape, dtype))


def test_compiled_uniforms_are_the_philox_bits_exactly():
    n = 1000
    u64 = compiled_draw("uniform", (n,), np.float64)
    u32 = compiled_draw("uniform", (n,), np.float32)
    for i in range(n):
        assert u64[i] == ref_uniform64(i)
        assert u32[i] == np.float32(ref_uniform32(i))


def test_the_stream_uses_every_word_of_a_block():
    """Four float32 uniforms per Philox block, two float64 ones: each of its words once."""
    u32 = compiled_draw("uniform", (8,), np.float32)
    w = block(0) + block(1)
    assert u32.tolist() == [np.float32(u24(x)) for x in w]
    u64 = compiled_draw("uniform", (4,), np.float64)
    w = block(0, stream=1) + block(1, stream=1)
    assert u64.tolist() == [u53(w[k], w[k + 1]) for k in range(0, 8, 2)]


def test_compiled_normals_are_box_muller_of_the_philox_bits():
    n = 1000
    z64 = compiled_draw("normal", (n,), np.float64)
    z32 = compiled_draw("normal", (n,), np.float32)
    for i in range(n):
        assert z64[i] == pytest.approx(ref_normal64(i), rel=1e-13, abs=1e-13)
        assert z32[i] == pytest.approx(ref_normal32(i), rel=2e-6, abs=2e-6)


REFS = {("uniform", np.float32): ref_uniform32, ("uniform", np.float64): ref_uniform64,
        ("normal", np.float32): ref_normal32, ("normal", np.float64): ref_normal64}


# Loops whose rows start between Philox blocks (rows of 13 or 3, the argument strided,
# so the loop stays 2-D), whose counters repeat per row (a draw broadcast over rows) or
# are not consecutive (broadcast along the row, a transpose, a stride, a slice: the
# draw stored, then read), and a reduction's loop: (draw shape, strided argument, use);
# the argument is (9, 13).
LAYOUTS = {
    "rows": ((9, 13), True, lambda r, x: x + r),
    "short rows": ((9, 3), True, lambda r, x: x[:, :3] + r),
    "repeated rows": ((1, 13), True, lambda r, x: x + r),
    "along rows": ((9, 1), False, lambda r, x: x + r),
    "transposed": ((13, 9), False, lambda r, x: x + r.T),
    "strided": ((9, 26), False, lambda r, x: x + r[:, ::2]),
    "sliced": ((9, 16), False, lambda r, x: x + r[:, 3:]),
    "reduced": ((9, 13), False, lambda r, x: (r * 2.0).sum(axis=1) + x[:, 0]),
}


def layout_case(kind, dtype, layout):
    """(function, argument, counters of its result, or None for the reduction)."""
    src, keyfn = fixed()
    shape, strided, use = LAYOUTS[layout]
    x = np.zeros((13, 9), dtype).T if strided else np.zeros((9, 13), dtype)
    ctr = np.arange(int(np.prod(shape))).reshape(shape)
    ref_ctr = None if layout == "reduced" else use(ctr, np.zeros(x.shape, np.int64))
    return (lambda x: use(_C._random(kind, shape, dtype, src, keyfn), x)), x, ref_ctr


def reference(kind, dtype, ctr):
    return np.array([REFS[kind, dtype](int(c)) for c in ctr.ravel()], dtype).reshape(ctr.shape)


@pytest.mark.parametrize("kind,dtype", list(REFS))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_element_is_its_counters_value_in_any_loop(kind, dtype, layout):
    """A block at a time or an element at a time, each element gets exactly the value
    of its counter, in TinyCC's kernel and the tier's."""
    fn, x, ctr = layout_case(kind, dtype, layout)
    out = tracejit.compile(fn)(x)
    if ctr is None:   # the reduction: the rows' sums of the reference
        shape = LAYOUTS[layout][0]
        ctr = np.arange(int(np.prod(shape))).reshape(shape)
        ref = (reference(kind, dtype, ctr) * 2.0).sum(axis=1)
    else:
        ref = reference(kind, dtype, ctr)
    if kind == "uniform" and layout != "reduced":
        assert out.tolist() == ref.tolist()
    else:
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


@pytest.mark.skipif(not any(shutil.which(c) for c in ("cc", "gcc")), reason="no C compiler")
@pytest.mark.parametrize("kind,dtype", list(REFS))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_both_tiers_give_each_counter_the_same_bits(kind, dtype, layout, tmp_path, monkeypatch):
    from conftest import both_tiers
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    fn, x, _ = layout_case(kind, dtype, layout)
    try:
        opt, tcc, _ = both_tiers(fn, [x])
    finally:
        tracejit.set_tier("auto")
    if layout == "reduced":
        # the draws are the same bits; their sums are folded in SIMD partial sums whose
        # order is each tier's (reduce_prims.c: horizontal folds reassociate), so the
        # sums agree to rounding (CI's full run once gave 1-2 ulp apart in 3 of 9 rows)
        np.testing.assert_allclose(opt, tcc, rtol=8 * np.finfo(dtype).eps, atol=0)
    else:
        assert opt.tobytes() == tcc.tobytes()


TILES = """
import numpy as np, tracejit, sys
sys.path.insert(0, "tests")
from test_random import layout_case
for layout in ("rows", "repeated rows", "along rows", "reduced"):
    fn, x, _ = layout_case("uniform", np.float32, layout)
    tracejit.compile(fn)(x)
"""


def test_the_tier_fills_tiles_where_counters_are_consecutive():
    """Lowering's decision, per group (TRACEJIT_DEBUG=3's schedules): tiles of draws
    where a row's counters are consecutive (rows starting anywhere; a draw broadcast
    over rows or along them is stored by its own group first), one element at a time
    in a reduction's loop."""
    import os
    import re
    import subprocess
    import sys
    e = dict(os.environ, TRACEJIT_DEBUG="3")
    err = subprocess.run([sys.executable, "-c", TILES], env=e, capture_output=True,
                         text=True, check=True).stderr
    blocks = re.findall(r"^-- schedule: .*\n(?:  .*\n)*", err, re.M)
    tiled = [["draws in tiles" in g for g in re.findall(r"^  group .*", b, re.M)]
             for b in blocks]
    assert tiled == [[True], [True, False], [True, False], [False, False]], blocks


def test_two_draws_of_one_call_take_consecutive_blocks():
    """Each draw starts on a whole block (a multiple of 4 counters): the second draw's
    first counter is 8 after a first of 6 elements."""
    src, keyfn = fixed()

    @tracejit.compile
    def f(x):
        a = _C._random("uniform", (2, 3), np.float64, src, keyfn)
        b = _C._random("uniform", (4,), np.float64, src, keyfn)
        return a + x, b
    a, b = f(np.zeros((2, 3)))
    u = [ref_uniform64(c) for c in range(12)]
    assert a.ravel().tolist() == u[:6] and b.tolist() == u[8:12]


# ---- bit-identity: threads and tiers ------------------------------------------------

def chain(src, keyfn):
    def f(x):
        z = _C._random("normal", x.shape, x.dtype, src, keyfn)
        u = _C._random("uniform", x.shape, x.dtype, src, keyfn)
        return np.where(u > 0.3, x * z + 1.0, 0.0).astype(x.dtype)
    return f


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "rows of 1001"])
@pytest.mark.parametrize("tier", ["tcc", "eager"])
def test_draws_are_bit_identical_whatever_the_thread_count(dtype, layout, tier, tmp_path,
                                                            monkeypatch):
    """1, 2 and 8 threads, in TinyCC's kernel and the tier's ("eager": compiled before
    the first call); rows of 1001 (a strided argument keeps the loop 2-D) start between
    Philox blocks, and threads split the rows."""
    if tier == "eager" and not any(shutil.which(c) for c in ("cc", "gcc")):
        pytest.skip("no C compiler")
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    x = np.linspace(-1, 1, 1001 * 1003).astype(dtype)
    x = x.reshape(1001, 1003) if layout == "contiguous" else x.reshape(1003, 1001).T
    before = tracejit.get_num_threads()
    out = []
    try:
        tracejit.set_tier(tier)
        for n in (1, 2, 8):
            tracejit.set_num_threads(n)
            f = tracejit.compile(chain(*fixed()))
            out.append(f(x))
            assert f.tiers() == ["tcc" if tier == "tcc" else "opt"]
    finally:
        tracejit.set_num_threads(before)
        tracejit.set_tier("auto")
    assert out[0].tobytes() == out[1].tobytes() == out[2].tobytes()


@pytest.mark.skipif(not any(shutil.which(c) for c in ("cc", "gcc")), reason="no C compiler")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_draws_are_bit_identical_in_both_tiers(dtype, tmp_path, monkeypatch):
    from conftest import both_tiers
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    x = np.linspace(-1, 1, 5000).astype(dtype)
    try:
        opt, tcc, _ = both_tiers(chain(*fixed()), [x])
    finally:
        tracejit.set_tier("auto")
    assert opt.tobytes() == tcc.tobytes()


# ---- distributions -------------------------------------------------------------------

def ks_ok(sample, cdf, alpha_crit=1.95):
    """Kolmogorov-Smirnov: sqrt(n) D below 1.95 (p = 0.001 asymptotically)."""
    x = np.sort(np.asarray(sample, np.float64).ravel())
    n = len(x)
    f = cdf(x)
    d = max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))
    return math.sqrt(n) * d < alpha_crit, math.sqrt(n) * d


_erf = np.vectorize(math.erf)


def norm_cdf(x):
    return 0.5 * (1 + _erf(x / math.sqrt(2)))


CDFS = {
    "uniform": lambda x: np.clip(x, 0, 1),
    "normal": norm_cdf,
    "exponential": lambda x: 1 - np.exp(-np.maximum(x, 0)),
    "cauchy": lambda x: 0.5 + np.arctan(x) / math.pi,
    "laplace": lambda x: np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0)), 1 - 0.5 * np.exp(-np.maximum(x, 0))),
    "logistic": lambda x: 1 / (1 + np.exp(-x)),
    "gumbel": lambda x: np.exp(-np.exp(-x)),
    "lognormal": lambda x: norm_cdf(np.log(np.maximum(x, 1e-300))),
}

NP_DRAWS = {
    "uniform": lambda: np.random.uniform(size=N),
    "normal": lambda: np.random.normal(size=N),
    "exponential": lambda: np.random.exponential(size=N),
    "cauchy": lambda: np.random.standard_cauchy(size=N),
    "laplace": lambda: np.random.laplace(size=N),
    "logistic": lambda: np.random.logistic(size=N),
    "gumbel": lambda: np.random.gumbel(size=N),
    "lognormal": lambda: np.random.lognormal(size=N),
}
N = 20000


@pytest.mark.parametrize("name", sorted(NP_DRAWS))
def test_numpy_distributions_pass_kolmogorov_smirnov(name):
    draw = NP_DRAWS[name]
    f = tracejit.compile(lambda x: x + draw())
    np.random.seed(1234)
    for _ in range(3):           # three calls, three fresh samples, each passes
        ok, stat = ks_ok(f(np.zeros(N)), CDFS[name])
        assert ok, (name, stat)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_both_float_dtypes_pass_kolmogorov_smirnov_and_moments(kind, dtype):
    g = np.random.default_rng(99)
    f = tracejit.compile(lambda x, g: x + (g.random(N, dtype=dtype) if kind == "uniform"
                                           else g.standard_normal(N, dtype=dtype)))
    s = f(np.zeros(N, dtype), g)
    assert s.dtype == dtype
    ok, stat = ks_ok(s, CDFS[kind])
    assert ok, stat
    mean, var = (0.5, 1 / 12) if kind == "uniform" else (0.0, 1.0)
    assert abs(s.mean() - mean) < 5 * math.sqrt(var / N)
    assert abs(s.var() - var) < 0.05 * var


def test_integers_and_choice_are_uniform_over_their_range():
    f = tracejit.compile(lambda x: (np.random.randint(3, 10, size=70000),
                                    np.random.choice(5, size=50000)))
    np.random.seed(5)
    a, b = f(np.zeros(1))
    for s, lo, k in ((a, 3, 7), (b, 0, 5)):
        assert s.min() == lo and s.max() == lo + k - 1
        counts = np.bincount(s - lo, minlength=k)
        expected = len(s) / k
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 30, counts          # far above the 0.999 quantile for 6 dof (22.5)


def test_choice_with_probabilities_follows_them():
    p = np.array([0.1, 0.6, 0.3])
    f = tracejit.compile(lambda x: np.random.choice(3, size=60000, p=p) + x)
    np.random.seed(7)
    freq = np.bincount(f(np.zeros(1, np.int64)), minlength=3) / 60000
    np.testing.assert_allclose(freq, p, atol=0.01)


def test_neighbours_and_calls_are_uncorrelated():
    f = tracejit.compile(lambda x: x + np.random.standard_normal(x.shape))
    np.random.seed(3)
    a, b = f(np.zeros(100000)), f(np.zeros(100000))
    lim = 5 / math.sqrt(100000)
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < lim       # neighbouring elements
    assert abs(np.corrcoef(a, b)[0, 1]) < lim                # two calls
    c = f(np.zeros((316, 316)))
    assert abs(np.corrcoef(c[:-1].ravel(), c[1:].ravel())[0, 1]) < lim   # rows


# ---- fresh at every call; seeding ----------------------------------------------------

NP_CALLS = [
    "np.random.random(8)", "np.random.random_sample(8)", "np.random.sample(8)",
    "np.random.ranf(8)", "np.random.rand(8)", "np.random.randn(8)",
    "np.random.standard_normal(8)", "np.random.normal(1.0, 2.0, 8)",
    "np.random.normal(x, 1.0)", "np.random.uniform(-1, 1, 8)", "np.random.randint(0, 1000, 8)",
    "np.random.randint(1000, size=8)", "np.random.exponential(2.0, 8)",
    "np.random.standard_exponential(8)", "np.random.lognormal(0, 1, 8)",
    "np.random.laplace(0, 1, 8)", "np.random.gumbel(0, 1, 8)", "np.random.logistic(0, 1, 8)",
    "np.random.standard_cauchy(8)", "np.random.choice(1000, 8)",
    "np.random.choice(x, 8)", "np.random.choice(1000, 8, p=np.full(1000, 0.001))",
    "g.random(8)", "g.standard_normal(8)", "g.normal(0, 1, 8)", "g.uniform(0, 1, 8)",
    "g.integers(0, 1000, 8)", "g.integers(1000, size=8, endpoint=True)", "g.exponential(1, 8)",
    "g.standard_exponential(8)", "g.choice(1000, 8)", "g.random(8, dtype=np.float32)",
    "rs.rand(8)", "rs.randn(8)", "rs.normal(0, 1, 8)", "rs.randint(0, 1000, 8)",
    "np.random.gamma(2.0, 1.0, 8)", "np.random.standard_gamma(0.5, 8)",
    "np.random.gamma(x + 1.0)", "np.random.beta(0.5, 2.0, 8)",
    "np.random.dirichlet([1.0, 2.0], 4).ravel()", "np.random.chisquare(3.0, 8)",
    "np.random.standard_t(5.0, 8)", "np.random.poisson(20.0, 8)",
    "np.random.poisson(x + 3.0)", "np.random.binomial(100, 0.3, 8)",
    "g.gamma(2.0, size=8)", "g.standard_gamma(3.0, 8, dtype=np.float32)",
    "g.beta(2.0, 3.0, 8)", "g.poisson(7.0, 8)", "g.binomial(50, 0.5, 8)",
    "g.chisquare(2.0, 8)", "g.standard_t(3.0, 8)", "g.dirichlet([0.5, 0.5], 4).ravel()",
    "rs.gamma(2.0, 1.0, 8)", "rs.poisson(30.0, 8)", "rs.binomial(10, 0.5, 8)",
    "rs.beta(1.0, 1.0, 8)",
]


@pytest.mark.parametrize("call", NP_CALLS)
def test_every_numpy_entry_point_draws_fresh_numbers_at_every_call(call):
    ns = {"np": np, "g": np.random.default_rng(1), "rs": np.random.RandomState(2)}
    exec(f"def fn(x, g, rs):\n    return {call}\n", ns)
    f = tracejit.compile(ns["fn"])
    x = np.arange(8.0)
    a, b = f(x, ns["g"], ns["rs"]), f(x, ns["g"], ns["rs"])
    assert a.shape == b.shape == (8,)
    assert not np.array_equal(a, b), call
    eager = ns["fn"](x, ns["g"], ns["rs"])
    assert np.asarray(eager).dtype == a.dtype and np.shape(eager) == a.shape


def test_numpy_seeding_makes_a_program_reproducible_and_the_generator_advances():
    f = tracejit.compile(lambda x: x + np.random.standard_normal(4))
    np.random.seed(11)
    a1, a2 = f(np.zeros(4)), f(np.zeros(4))
    after = np.random.random()
    np.random.seed(11)
    b1, b2 = f(np.zeros(4)), f(np.zeros(4))
    assert np.array_equal(a1, b1) and np.array_equal(a2, b2) and after == np.random.random()
    np.random.seed(11)
    assert after != np.random.random()  # each call drew its key from the generator
    g1, g2 = np.random.default_rng(4), np.random.default_rng(4)
    h = tracejit.compile(lambda x, g: x + g.normal(size=4))
    assert np.array_equal(h(np.zeros(4), g1), h(np.zeros(4), g2))


def test_a_generator_in_a_closure_or_attribute_draws_and_is_guarded():
    rng = np.random.default_rng(0)

    def closure_gen(x):
        return x + rng.normal(size=3)

    f = tracejit.compile(closure_gen)
    assert not np.array_equal(f(np.ones(3)), f(np.ones(3)))
    rng = np.random.default_rng(0)     # a new object: the guard retraces with it
    r1 = f(np.ones(3))
    rng = np.random.default_rng(0)
    assert np.array_equal(f(np.ones(3)), r1)

    class Holder:
        def __init__(self):
            self.rs = np.random.RandomState(0)

        def __call__(self, x):
            return x + self.rs.rand(3)

    h = tracejit.compile(Holder().__call__)
    assert not np.array_equal(h(np.ones(3)), h(np.ones(3)))


@pytest.mark.parametrize("call,what", [
    ("np.random.zipf(2.0, 3)", r"numpy\.random\.zipf\(\) draws"),
    ("np.random.hypergeometric(5, 5, 3, 3)", r"numpy\.random\.hypergeometric\(\) draws"),
    ("np.random.permutation(3)", r"numpy\.random\.permutation\(\) draws"),
    ("g.zipf(2.0, size=3)", r"Generator\.zipf\(\) draws from a distribution tracejit does not"),
    ("g.choice(5, 3, replace=False)", r"replace=False\) draws without replacement"),
    ("g.integers(0, 2**60, 3)", r"more than 2\*\*53"),
])
def test_what_has_no_counter_based_sampler_is_refused(call, what):
    ns = {"np": np}
    exec(f"def fn(x, g):\n    return x + {call}\n", ns)
    with pytest.raises(TraceError, match=what) as e:
        tracejit.compile(ns["fn"])(np.zeros(3), np.random.default_rng(0))
    assert "at <string>:2, in fn" in str(e.value)        # the user's line


def test_draws_take_part_in_gradients():
    """d/dmu and d/dsigma of sum(mu + sigma * eps): the call's eps, seen by both."""
    src, keyfn = fixed()

    def f(mu, sigma):
        eps = _C._random("normal", (5,), np.float64, src, keyfn)
        return np.sum(mu + sigma * eps)
    mu, sigma = np.zeros(5), np.ones(5)
    value, (gmu, gsigma) = tracejit.value_and_grad(f, argnums=(0, 1))(mu, sigma)
    eps = compiled_draw("normal", (5,), np.float64)
    np.testing.assert_array_equal(gmu, np.ones(5))
    np.testing.assert_array_equal(gsigma, eps)
    assert value == pytest.approx(eps.sum())


def test_vjps_pullback_sees_its_forwards_draws():
    def f(x):
        return x * np.random.standard_normal(x.shape)
    x = np.ones(6)
    out, pull = tracejit.vjp(f, x)
    (g,) = pull(np.ones(6))
    np.testing.assert_array_equal(g, out)          # d(x * eps)/dx = eps = out / 1
    out2, pull2 = tracejit.vjp(f, x)
    assert not np.array_equal(out2, out)           # a new forward: new draws
    np.testing.assert_array_equal(pull(np.ones(6))[0], out)   # the first keeps its own
