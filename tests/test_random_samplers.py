"""The rejection samplers (csrc/emit/prims_random.h: RGAMMA, RPOIS, RBINOM) and what is
composed of them (beta, Dirichlet, chi-square, Student's t): distributions against the
exact CDF (scipy.stats; Kolmogorov-Smirnov for the continuous ones, chi-square over the
pmf for the counts, fixed seeds so CI is deterministic; significance 1e-4 per test, as
the files hold about a hundred such tests), moments, parameters traced and
broadcast, fresh draws per call, seeding, bit identity over thread counts and tiers, the
implicit-reparameterization gradient against torch's, and the errors."""
import shutil

import numpy as np
import pytest

import tracejit
from tracejit import TraceError, _C

st = pytest.importorskip("scipy.stats")

N = 40000


def ks_p(x, cdf):
    return st.kstest(np.asarray(x, np.float64).ravel(), cdf).pvalue


def chi2_p(x, pmf, support):
    """Chi-square goodness of fit over the support's cells with expected count >= 5
    (the rest pooled into one cell)."""
    x = np.asarray(x).ravel()
    obs = np.array([(x == k).sum() for k in support], np.float64)
    exp = pmf(support) * x.size
    keep = exp >= 5
    o = np.append(obs[keep], x.size - obs[keep].sum())
    e = np.append(exp[keep], x.size - exp[keep].sum())
    if e[-1] < 1e-9:
        o, e = o[:-1], e[:-1]
    return st.chisquare(o, e * o.sum() / e.sum()).pvalue


# ---- NumPy: distributions -----------------------------------------------------------

GAMMAS = [0.05, 0.4, 1.0, 2.5, 40.0, 3e5]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", GAMMAS)
def test_standard_gamma_follows_its_cdf_and_moments(alpha, dtype):
    np.random.seed(1)
    g = np.random.default_rng(7)
    f = tracejit.compile(lambda a, g: g.standard_gamma(a, N, dtype=dtype))
    x = f(alpha, g)
    assert x.dtype == dtype and x.shape == (N,) and np.all(x >= 0)
    assert ks_p(x, st.gamma(alpha).cdf) > 1e-4
    assert abs(x.mean() - alpha) < 5 * np.sqrt(alpha / N)
    assert abs(x.var() / alpha - 1) < 0.1


@pytest.mark.parametrize("name,call,dist", [
    ("gamma", lambda: np.random.gamma(2.0, 3.0, N), st.gamma(2.0, scale=3.0)),
    ("beta small", lambda: np.random.beta(0.3, 0.6, N), st.beta(0.3, 0.6)),
    ("beta", lambda: np.random.beta(2.0, 5.0, N), st.beta(2.0, 5.0)),
    ("chisquare", lambda: np.random.chisquare(3.0, N), st.chi2(3.0)),
    ("standard_t", lambda: np.random.standard_t(2.5, N), st.t(2.5)),
    ("dirichlet", lambda: np.random.dirichlet([0.5, 2.0, 1.5], N)[:, 1],
     st.beta(2.0, 2.0)),   # a Dirichlet's coordinate: Beta(a_i, sum - a_i)
])
def test_gamma_compositions_follow_their_cdf(name, call, dist):
    np.random.seed(3)
    x = tracejit.compile(lambda: call())()
    assert ks_p(x, dist.cdf) > 1e-4, name


@pytest.mark.parametrize("lam", [0.3, 4.0, 9.99, 10.0, 25.0, 300.0, 1e5])
def test_poisson_follows_its_pmf(lam):
    np.random.seed(5)
    x = tracejit.compile(lambda l: np.random.poisson(l, N))(lam)
    assert x.dtype == np.int64 and x.min() >= 0
    lo, hi = int(max(0, lam - 8 * np.sqrt(lam) - 5)), int(lam + 8 * np.sqrt(lam) + 10)
    assert chi2_p(x, st.poisson(lam).pmf, np.arange(lo, hi)) > 1e-4
    assert abs(x.mean() - lam) < 5 * np.sqrt(lam / N)


@pytest.mark.parametrize("n,p", [(1, 0.5), (20, 0.2), (100, 0.04), (40, 0.5), (1000, 0.9),
                                 (7, 0.97), (10**6, 0.3)])
def test_binomial_follows_its_pmf(n, p):
    """Inversion (n min(p, 1-p) < 10) and BTRS, p above and below 1/2."""
    np.random.seed(6)
    x = tracejit.compile(lambda n, p: np.random.binomial(n, p, N))(n, p)
    assert x.dtype == np.int64 and x.min() >= 0 and x.max() <= n
    m, s = n * p, np.sqrt(n * p * (1 - p))
    support = np.arange(max(0, int(m - 8 * s - 5)), min(n, int(m + 8 * s + 6)) + 1)
    assert chi2_p(x, st.binom(n, p).pmf, support) > 1e-4


def test_parameters_are_traced_broadcast_and_change_per_call():
    """Arrays of parameters broadcast against each other and `size`; new values at the
    next call take effect without a retrace."""
    f = tracejit.compile(lambda a, s: np.random.gamma(a, s, size=(4, 3, N // 4)))
    a = np.array([[[0.5]], [[2.0]], [[9.0]], [[30.0]]])
    s = np.array([[1.0], [2.0], [0.5]])
    x = f(a, s)
    assert x.shape == (4, 3, N // 4)
    for i in range(4):
        for j in range(3):
            assert ks_p(x[i, j], st.gamma(a[i, 0, 0], scale=s[j, 0]).cdf) > 1e-4
    y = f(a * 2, s)
    assert f.cache_info().misses == 1
    assert abs(y[3].mean() / x[3].mean() - 2) < 0.05
    b = tracejit.compile(lambda n, p: np.random.binomial(n, p))
    counts = b(np.array([0, 5, 10, 1000]), np.array([0.3, 0.0, 1.0, 0.5]))
    assert counts.dtype == np.int64 and counts[0] == 0 and counts[1] == 0 and counts[2] == 10
    frac = tracejit.compile(lambda n: np.random.binomial(n, 1.0, 4))(10.7)
    assert np.array_equal(frac, np.random.binomial(10.7, 1.0, 4))      # NumPy's int(n)


def test_edge_parameters_give_numpys_values():
    g = tracejit.compile(lambda a: np.random.standard_gamma(a))
    assert np.array_equal(g(np.zeros(5)), np.zeros(5))
    p = tracejit.compile(lambda l: np.random.poisson(l))
    assert np.array_equal(p(np.zeros(5)), np.zeros(5, np.int64))


# ---- errors ------------------------------------------------------------------------

@pytest.mark.parametrize("call,msg", [
    ("np.random.gamma(-1.0, 1.0, 3)", "shape < 0"),
    ("np.random.gamma(1.0, -1.0, 3)", "scale < 0"),
    ("np.random.beta(0.0, 1.0, 3)", "a <= 0"),
    ("np.random.poisson(-2.0, 3)", "lam < 0"),
    ("np.random.binomial(5, 1.5, 3)", r"p < 0, p > 1 or p is NaN"),
    ("np.random.binomial(-5, 0.5, 3)", "n < 0"),
    ("np.random.chisquare(0.0, 3)", "df <= 0"),
])
def test_constant_parameters_out_of_range_raise_numpys_error(call, msg):
    ns = {"np": np}
    exec(f"def fn(x):\n    return x + {call}\n", ns)
    with pytest.raises(ValueError, match=msg):
        ns["fn"](np.zeros(3))          # eager's error ...
    with pytest.raises(ValueError, match=msg):
        tracejit.compile(ns["fn"])(np.zeros(3))   # ... and the trace's


@pytest.mark.parametrize("fn,bad,msg", [
    (lambda a: np.random.gamma(a), np.array([1.0, -1.0]), "shape >= 0 was False"),
    (lambda a: np.random.poisson(a), np.array([1.0, -3.0]), "lam >= 0 was False"),
    (lambda p: np.random.binomial(10, p), np.array([0.5, 1.5]), "0 <= p <= 1 was False"),
])
def test_traced_parameters_out_of_range_raise_at_the_call(fn, bad, msg):
    f = tracejit.compile(fn)
    f(np.abs(bad) / 2)                  # fine values: compiled with the check
    with pytest.raises(ValueError, match=msg):
        f(bad)
    with pytest.raises(ValueError):
        fn(bad)                         # eager raises too


# ---- freshness, seeding, bit identity ----------------------------------------------------

def test_numpy_seeding_reproduces_the_samplers():
    f = tracejit.compile(lambda: (np.random.gamma(0.7, size=5), np.random.poisson(30.0, 5),
                                  np.random.binomial(50, 0.4, 5)))
    np.random.seed(9)
    a = f()
    np.random.seed(9)
    b = f()
    c = f()
    for u, v, w in zip(a, b, c):
        assert np.array_equal(u, v) and not np.array_equal(u, w)


def sampler_chain(x, alpha, lam, n):
    g = _C._sample("gamma", x.shape, x.dtype, "fixed", lambda: 0x1234ABCD5678, alpha)
    p = _C._sample("poisson", x.shape, x.dtype, "fixed", lambda: 0x1234ABCD5678, lam)
    b = _C._sample("binomial", x.shape, x.dtype, "fixed", lambda: 0x1234ABCD5678, n, 0.3)
    return x * g + p - b


def chain_args(dtype, layout):
    x = np.linspace(0.5, 1.5, 201 * 203).astype(dtype)
    x = x.reshape(201, 203) if layout == "contiguous" else x.reshape(203, 201).T
    alpha = np.linspace(0.1, 50.0, x.shape[1]).astype(dtype)
    lam = np.linspace(0.1, 60.0, x.shape[1]).astype(dtype)
    n = np.floor(np.linspace(1, 400, x.shape[0])).astype(dtype)[:, None]
    return x, alpha, lam, n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("tier", ["tcc", "eager"])
def test_samplers_are_bit_identical_whatever_the_thread_count(dtype, layout, tier, tmp_path,
                                                              monkeypatch):
    if tier == "eager" and not any(shutil.which(c) for c in ("cc", "gcc")):
        pytest.skip("no C compiler")
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    args = chain_args(dtype, layout)
    before = tracejit.get_num_threads()
    out = []
    try:
        tracejit.set_tier(tier)
        for n in (1, 2, 8):
            tracejit.set_num_threads(n)
            f = tracejit.compile(sampler_chain)
            out.append(f(*args))
            assert f.tiers() == ["tcc" if tier == "tcc" else "opt"]
    finally:
        tracejit.set_num_threads(before)
        tracejit.set_tier("auto")
    assert not np.isnan(out[0]).any()
    assert out[0].tobytes() == out[1].tobytes() == out[2].tobytes()


@pytest.mark.skipif(not any(shutil.which(c) for c in ("cc", "gcc")), reason="no C compiler")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_samplers_are_bit_identical_in_both_tiers(dtype, tmp_path, monkeypatch):
    from conftest import both_tiers
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    try:
        opt, tcc, _ = both_tiers(sampler_chain, list(chain_args(dtype, "contiguous")))
    finally:
        tracejit.set_tier("auto")
    assert opt.tobytes() == tcc.tobytes()


def test_the_float32_draw_is_the_float64_draw_rounded():
    """The samplers compute in double whatever the dtype (one rounding at the end)."""
    a = chain_args(np.float32, "contiguous")[1].astype(np.float64)   # exact in float32
    f = tracejit.compile(lambda a: _C._sample("gamma", (64, a.shape[0]), a.dtype, "k",
                                              lambda: 77, a))
    assert np.array_equal(f(a.astype(np.float32)), f(a).astype(np.float32))
