"""torch's rejection-sampled draws inside compiled functions: torch._standard_gamma,
_sample_dirichlet, poisson, binomial and the distributions built on them (Gamma, Chi2,
Beta, Dirichlet, StudentT, Poisson, Binomial): their CDFs (scipy.stats, fixed seeds,
significance 1e-4 per test),
fresh draws per call, seeding and generator=, and the gradients: Gamma's implicit
reparameterization against torch._standard_gamma_grad, unbiased gradients through Beta
and Dirichlet, zero for Poisson and binomial counts, as torch."""
import numpy as np
import pytest

import tracejit
from tracejit import TraceError, _C

torch = pytest.importorskip("torch")
st = pytest.importorskip("scipy.stats")
D = torch.distributions

N = 40000


def ks_p(x, cdf):
    return st.kstest(np.asarray(x.detach(), np.float64).ravel(), cdf).pvalue


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,make,dist", [
    ("Gamma", lambda t: D.Gamma(t(0.6), t(2.0)), st.gamma(0.6, scale=0.5)),
    ("Gamma large", lambda t: D.Gamma(t(50.0), t(0.5)), st.gamma(50.0, scale=2.0)),
    ("Chi2", lambda t: D.Chi2(t(4.0)), st.chi2(4.0)),
    ("Beta", lambda t: D.Beta(t(0.5), t(3.0)), st.beta(0.5, 3.0)),
    ("StudentT", lambda t: D.StudentT(t(3.0), t(1.0), t(2.0)), st.t(3.0, 1.0, 2.0)),
    ("Dirichlet", lambda t: D.Dirichlet(torch.tensor([1.0, 2.5, 0.5], dtype=t(0).dtype)),
     st.beta(2.5, 1.5)),
])
def test_distributions_rsample_follows_their_cdf(name, make, dist, dtype):
    torch.manual_seed(0)

    def t(v):
        return torch.tensor(v, dtype=dtype)

    def f(k):   # (a tensor argument: a torch trace)
        x = make(t).rsample((N,))
        return x[:, 1] if x.ndim == 2 else x
    cf = tracejit.compile(f)
    x, y = cf(torch.zeros(1)), cf(torch.zeros(1))
    assert x.dtype == dtype and x.shape == (N,)
    assert not torch.equal(x, y)
    assert ks_p(x, dist.cdf) > 1e-4, name


@pytest.mark.parametrize("name,call", [
    ("_standard_gamma", lambda a, p: torch._standard_gamma(a)),
    ("_sample_dirichlet", lambda a, p: torch._sample_dirichlet(a)),
    ("poisson", lambda a, p: torch.poisson(a * 10)),
    ("binomial", lambda a, p: torch.binomial(a.floor() * 20, p)),
    ("Gamma.sample", lambda a, p: D.Gamma(a, 2.0).sample()),
    ("Poisson.sample", lambda a, p: D.Poisson(a).sample((3,))),
    ("Binomial.sample", lambda a, p: D.Binomial(50, probs=p).sample()),
    ("Beta.sample", lambda a, p: D.Beta(a, a + 1).sample()),
    ("StudentT.rsample", lambda a, p: D.StudentT(a).rsample()),
    ("Chi2.rsample", lambda a, p: D.Chi2(a).rsample()),
    ("Dirichlet.sample", lambda a, p: D.Dirichlet(a).sample()),
])
def test_every_torch_entry_point_draws_fresh_numbers_with_eagers_dtype_and_shape(name, call):
    a = torch.linspace(0.5, 4.0, 16, dtype=torch.float64)
    p = torch.linspace(0.05, 0.95, 16, dtype=torch.float64)
    f = tracejit.compile(call)
    r1, r2 = f(a, p), f(a, p)
    assert not torch.equal(r1, r2), name
    e = call(a, p)
    assert r1.dtype == e.dtype and r1.shape == e.shape, name


def test_torch_poisson_and_binomial_follow_their_pmf():
    torch.manual_seed(1)
    rate = torch.full((N,), 12.5)
    x = tracejit.compile(torch.poisson)(rate).numpy()
    k = np.arange(0, 40)
    obs = np.array([(x == i).sum() for i in k])
    exp = st.poisson(12.5).pmf(k) * N
    keep = exp > 5
    assert st.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue > 1e-3
    b = tracejit.compile(torch.binomial)(torch.full((N,), 30.0), torch.full((N,), 0.7)).numpy()
    k = np.arange(0, 31)
    obs = np.array([(b == i).sum() for i in k])
    exp = st.binom(30, 0.7).pmf(k) * N
    keep = exp > 5
    assert st.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue > 1e-3


def test_seeding_and_generators_reproduce_the_draws():
    f = tracejit.compile(lambda a: (torch._standard_gamma(a), torch.poisson(a)))
    a = torch.full((6,), 3.0)
    torch.manual_seed(5)
    x1 = f(a)
    torch.manual_seed(5)
    x2 = f(a)
    assert all(torch.equal(u, v) for u, v in zip(x1, x2))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    h = tracejit.compile(lambda a, g: torch.binomial(a, a / 10, generator=g))
    assert torch.equal(h(a, g1), h(a, g2))
    assert not torch.equal(h(a, g1), h(a, g1))


# ---- gradients ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gamma_rsample_gradient_is_torchs_implicit_reparameterization(dtype):
    """d/dconcentration of each sample x: torch._standard_gamma_grad(alpha, x * rate) /
    rate, in every branch of it (series for x < 0.8, the rational function, Rice's
    expansion for alpha > 8); d/drate: -x / rate."""
    torch.manual_seed(2)
    a = torch.tensor([0.05, 0.3, 1.0, 2.5, 7.9, 12.0, 300.0], dtype=dtype, requires_grad=True)
    b = torch.tensor([1.5, 0.5, 2.0, 1.0, 3.0, 0.7, 1.0], dtype=dtype, requires_grad=True)
    cf = tracejit.compile(lambda a, b: D.Gamma(a, b).rsample((3000,)))
    x = cf(a, b)
    w = torch.randn(x.shape, dtype=dtype)
    (x * w).sum().backward()
    xs = (x * b).detach()
    want_a = (torch._standard_gamma_grad(a.detach().expand_as(xs), xs) / b.detach() * w).sum(0)
    want_b = (-x.detach() / b.detach() * w).sum(0)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a.grad, want_a, **tol)
    torch.testing.assert_close(b.grad, want_b, **tol)


def test_the_gamma_gradient_op_is_torchs_function():
    alpha = torch.tensor([0.2, 0.2, 1.0, 3.0, 3.0, 6.0, 9.0, 9.0, 9.0, 40.0], dtype=torch.float64)
    x = torch.tensor([0.1, 1.5, 0.5, 0.9, 7.0, 2.0, 8.5, 3.0, 20.0, 41.0], dtype=torch.float64)
    got = tracejit.compile(lambda a, x: _C._ew("GAMMAGRAD", a, x))(alpha, x)
    torch.testing.assert_close(got, torch._standard_gamma_grad(alpha, x), rtol=1e-12, atol=0)


@pytest.mark.parametrize("make,mean", [
    (lambda a: D.Beta(a[0], a[1]).rsample((20000,)).mean(),
     lambda a: a[0] / (a[0] + a[1])),
    (lambda a: D.Dirichlet(a).rsample((20000,))[:, 0].mean(),
     lambda a: a[0] / a.sum()),
    (lambda a: D.Gamma(a[0], a[1]).rsample((20000,)).mean(),
     lambda a: a[0] / a[1]),
])
def test_reparameterized_gradients_are_unbiased(make, mean):
    """The pathwise gradient of a Monte Carlo mean estimates the gradient of the mean:
    d E[x] / d params (Beta and Dirichlet through normalized gammas)."""
    torch.manual_seed(4)
    a = torch.tensor([1.5, 2.5], dtype=torch.float64, requires_grad=True)
    cf = tracejit.compile(make)
    gs = []
    for _ in range(5):
        (g,) = torch.autograd.grad(cf(a), a)
        gs.append(g)
    got = torch.stack(gs).mean(0)
    (want,) = torch.autograd.grad(mean(a), a)
    torch.testing.assert_close(got, want, rtol=0.03, atol=0.003)


def test_student_t_rsample_has_gradients_in_every_parameter():
    df = torch.tensor(4.0, requires_grad=True)
    loc = torch.tensor(1.0, requires_grad=True)
    scale = torch.tensor(2.0, requires_grad=True)
    cf = tracejit.compile(lambda d, l, s: D.StudentT(d, l, s).rsample((500,)).pow(2).mean())
    g = torch.autograd.grad(cf(df, loc, scale), (df, loc, scale))
    assert all(torch.isfinite(v) and v != 0 for v in g)


def test_poisson_and_binomial_counts_have_zero_gradient_as_torchs():
    rate = torch.full((5,), 7.0, requires_grad=True)
    f = tracejit.compile(lambda r: (torch.poisson(r) * r).sum())
    (g,) = torch.autograd.grad(f(rate), rate)
    (ge,) = torch.autograd.grad((torch.poisson(rate) * rate).sum(), rate)
    # d/dr (poisson(r) * r) = poisson(r): the count itself, nothing through it
    assert torch.equal(g, g.round()) and torch.equal(ge, ge.round())


def test_a_second_derivative_through_a_gamma_sample_is_refused():
    a = torch.tensor([2.0], dtype=torch.float64)

    def f(a):
        return tracejit.grad(lambda a: torch._standard_gamma(a).sum())(a).sum()
    with pytest.raises(TraceError, match=r"second derivative through a Gamma sample"):
        tracejit.compile(tracejit.grad(f))(a)


def test_integer_parameters_are_refused_as_torch_refuses_them():
    with pytest.raises(RuntimeError):
        torch._standard_gamma(torch.ones(3, dtype=torch.int64))
    f = tracejit.compile(lambda a: torch._standard_gamma(a))
    with pytest.raises(TraceError, match=r"like a tensor of dtype int64 is not defined"):
        f(torch.ones(3, dtype=torch.int64))
