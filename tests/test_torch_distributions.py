"""torch.distributions with validation on (torch's default): log_prob, entropy and
rsample of the distributions Pyro models use, their biject_to transforms and
log_abs_det_jacobian, against eager torch over several calls with other values,
forward and backward (tracejit.grad and the torch.autograd route); a validation
check on traced values is made at every call (_torch_dists.py)."""
import math

import pytest

torch = pytest.importorskip("torch")
import tracejit  # noqa: E402

D = torch.distributions
C = D.constraints


def _pos(g, shape, dtype):
    return torch.rand(shape, generator=g, dtype=dtype) + 0.5


def _real(g, shape, dtype):
    return torch.randn(shape, generator=g, dtype=dtype)


def _unit(g, shape, dtype):
    return torch.rand(shape, generator=g, dtype=dtype) * 0.8 + 0.1


def _simplex(g, shape, dtype):
    return torch.softmax(torch.randn(shape, generator=g, dtype=dtype), -1)


def _tril(g, shape, dtype):
    a = torch.randn(shape + shape[-1:], generator=g, dtype=dtype) * 0.3
    return a.tril(-1) + torch.diag_embed(torch.rand(shape, generator=g, dtype=dtype) + 0.5)


def _spd(g, shape, dtype):
    a = torch.randn(shape + shape[-1:], generator=g, dtype=dtype)
    return a @ a.mT + shape[-1] * torch.eye(shape[-1], dtype=dtype)


def _corr(g, dtype):
    a = _spd(g, (3, 4), dtype)
    d = a.diagonal(dim1=-2, dim2=-1).rsqrt()
    return a * d[..., :, None] * d[..., None, :]


def _bits(g, shape, dtype):
    return (torch.rand(shape, generator=g) > 0.5).to(dtype)


def _counts(g, shape, dtype):
    return torch.randint(0, 5, shape, generator=g).to(dtype)


def _index(g, shape, dtype):
    return torch.randint(0, 4, shape[:-1], generator=g)


S = (3, 4)
# name: (constructor of the parameters, [(parameter maker, shape)], value maker, value shape)
CASES = {
    "Normal": (D.Normal, [(_real, S), (_pos, S)], _real, S),
    "LogNormal": (D.LogNormal, [(_real, S), (_pos, S)], _pos, S),
    "HalfNormal": (D.HalfNormal, [(_pos, S)], _pos, S),
    "HalfCauchy": (D.HalfCauchy, [(_pos, S)], _pos, S),
    "Cauchy": (D.Cauchy, [(_real, S), (_pos, S)], _real, S),
    "StudentT": (D.StudentT, [(_pos, S), (_real, S), (_pos, S)], _real, S),
    "Laplace": (D.Laplace, [(_real, S), (_pos, S)], _real, S),
    "Gamma": (D.Gamma, [(_pos, S), (_pos, S)], _pos, S),
    "Beta": (D.Beta, [(_pos, S), (_pos, S)], _unit, S),
    "Exponential": (D.Exponential, [(_pos, S)], _pos, S),
    "Uniform": (lambda lo, w: D.Uniform(lo - 3, lo + w + 3), [(_real, S), (_pos, S)], _real, S),
    "Bernoulli-logits": (lambda l: D.Bernoulli(logits=l), [(_real, S)], _bits, S),
    "Bernoulli-probs": (lambda p: D.Bernoulli(probs=p), [(_unit, S)], _bits, S),
    "Binomial": (lambda p: D.Binomial(6, probs=p), [(_unit, S)], _counts, S),
    "Poisson": (D.Poisson, [(_pos, S)], _counts, S),
    "Categorical-logits": (lambda l: D.Categorical(logits=l), [(_real, S)], _index, S),
    "Categorical-probs": (lambda p: D.Categorical(probs=p), [(_simplex, S)], _index, S),
    "Dirichlet": (D.Dirichlet, [(_pos, S)], _simplex, S),
    "MultivariateNormal": (lambda m, L: D.MultivariateNormal(m, scale_tril=L),
                           [(_real, S), (_tril, S)], _real, S),
    "MultivariateNormal-cov": (lambda m, c: D.MultivariateNormal(m, covariance_matrix=c),
                               [(_real, S), (_spd, S)], _real, S),
    "LKJCholesky": (lambda c: D.LKJCholesky(4, c), [(_pos, S[:1])],
                    lambda g, shape, dt: torch.linalg.cholesky(_corr(g, dt)), S),
    "Independent": (lambda m, s: D.Independent(D.Normal(m, s), 1), [(_real, S), (_pos, S)],
                    _real, S),
    "TransformedDistribution": (
        lambda m, s: D.TransformedDistribution(
            D.Normal(m, s), [D.transforms.ExpTransform(), D.transforms.AffineTransform(1.0, 2.0)]),
        [(_real, S), (_pos, S)], lambda g, shape, dt: _pos(g, shape, dt) + 1.0, S),
}
# entropy: where torch defines it (Binomial's enumerates a support sized by its traced
# total_count: refused, int() of a traced value)
NO_ENTROPY = {"StudentT", "Poisson", "TransformedDistribution", "Cauchy", "Binomial",
              "LKJCholesky"}


def _args(case, dtype, seed):
    make, params, value, vshape = CASES[case]
    g = torch.Generator().manual_seed(seed)
    return [m(g, s, dtype) for m, s in params] + [value(g, vshape, dtype)]


def _log_prob(case):
    make = CASES[case][0]
    return lambda *a: make(*a[:-1]).log_prob(a[-1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_log_prob_and_entropy_match_eager_over_calls(case, dtype):
    f = _log_prob(case)
    cf = tracejit.compile(f)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
    for seed in range(3):
        args = _args(case, dtype, seed)
        torch.testing.assert_close(cf(*args), f(*args), **tol)
    assert cf.cache_info().misses == 1
    if case not in NO_ENTROPY:
        make = CASES[case][0]
        ent = lambda *a: make(*a[:-1]).entropy()    # noqa: E731
        ce = tracejit.compile(ent)
        for seed in range(2):
            args = _args(case, dtype, seed)
            torch.testing.assert_close(ce(*args), ent(*args), **tol)


def _differentiable(args):
    return [k for k, a in enumerate(args) if a.is_floating_point()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_log_prob_gradients_match_eager(case):
    """Through tracejit.grad and through torch.autograd (tensors that require grad)."""
    f = _log_prob(case)
    loss = lambda *a: f(*a).sum()                       # noqa: E731
    for seed in range(2):
        args = _args(case, torch.float64, seed)
        diff = _differentiable(args)
        leaves = [a.clone().requires_grad_() if k in diff else a for k, a in enumerate(args)]
        want = torch.autograd.grad(loss(*leaves), [leaves[k] for k in diff], allow_unused=True)
        want = [torch.zeros_like(args[k]) if w is None else w for k, w in zip(diff, want)]
        got = tracejit.grad(tracejit.compile(loss), argnums=tuple(diff))(*args)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
        leaves2 = [a.clone().requires_grad_() if k in diff else a for k, a in enumerate(args)]
        routed = torch.autograd.grad(tracejit.compile(loss)(*leaves2), [leaves2[k] for k in diff],
                                     allow_unused=True)
        for a, b in zip(routed, want):
            torch.testing.assert_close(torch.zeros_like(b) if a is None else a, b,
                                       rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("case", ["Normal", "LogNormal", "MultivariateNormal", "Exponential",
                                  "Laplace", "Uniform", "Cauchy", "HalfNormal",
                                  # rejection samplers (tests/test_random_samplers_torch.py)
                                  "Gamma", "Beta", "Dirichlet", "StudentT"])
def test_rsample_draws_fresh_values_of_eagers_shape(case):
    make = CASES[case][0]
    f = tracejit.compile(lambda *a: make(*a).rsample((2,)))
    args = _args(case, torch.float64, 0)[:-1]
    a, b = f(*args), f(*args)
    assert a.shape == make(*args).rsample((2,)).shape
    assert torch.isfinite(a).all() and not torch.equal(a, b)


def test_a_value_outside_the_support_raises_at_the_call_where_eager_raises():
    """Sample validation on traced values is a check of the plan, made at every call:
    a later call with a negative value for a Gamma raises ValueError (eager does), at
    the user's line; valid calls still run."""
    f = tracejit.compile(lambda a, b, x: D.Gamma(a, b).log_prob(x))
    a, b = torch.ones(3), torch.ones(3)
    f(a, b, torch.ones(3))
    bad = torch.tensor([1.0, -1.0, 2.0])
    with pytest.raises(ValueError):
        D.Gamma(a, b).log_prob(bad)
    with pytest.raises(ValueError, match=r"the value argument \(Tensor of shape \(3,\)\) within "
                       r"the support \(GreaterThanEq\(lower_bound=0\.0\)\) of the distribution "
                       r"Gamma(.|\n)*test_torch_distributions\.py:\d+"):
        f(a, b, bad)
    torch.testing.assert_close(f(a, b, torch.full((3,), 2.0)),
                               D.Gamma(a, b).log_prob(torch.full((3,), 2.0)))


def test_an_invalid_parameter_raises_at_every_call():
    f = tracejit.compile(lambda m, L, x: D.MultivariateNormal(m, scale_tril=L).log_prob(x))
    m, x = torch.zeros(2), torch.zeros(2)
    L = torch.eye(2)
    f(m, L, x)
    with pytest.raises(ValueError):
        D.MultivariateNormal(m, scale_tril=-L)
    with pytest.raises(ValueError, match="was False for this call's values"):
        f(m, -L, x)


def test_a_covariance_that_is_not_positive_definite_raises_at_that_call():
    """positive_definite.check branches on its symmetry check in torch; traced it is one
    select with the same result, checked at every call."""
    f = tracejit.compile(lambda m, c, x: D.MultivariateNormal(m, covariance_matrix=c).log_prob(x))
    m, x = torch.zeros(2), torch.zeros(2)
    f(m, torch.eye(2), x)
    for bad in (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), torch.tensor([[1.0, 0.5], [0.0, 1.0]])):
        with pytest.raises(ValueError):
            D.MultivariateNormal(m, covariance_matrix=bad)
        with pytest.raises(ValueError, match="was False for this call's values"):
            f(m, bad, x)
    c = torch.tensor([[2.0, 0.3], [0.3, 1.0]])
    torch.testing.assert_close(f(m, c, x), D.MultivariateNormal(m, c).log_prob(x))


@pytest.mark.parametrize("make", [lambda m: D.Normal(m, 1.0),
                                  lambda m: D.MultivariateNormal(m, torch.eye(3))])
def test_a_shape_mismatch_is_eagers_error_at_trace_time(make):
    fn = lambda m, x: make(m).log_prob(x)      # noqa: E731
    args = torch.zeros(3), torch.zeros(4)
    with pytest.raises(ValueError) as want:
        fn(*args)
    with pytest.raises(ValueError) as got:
        tracejit.compile(fn)(*args)
    assert str(got.value) == str(want.value)


def test_a_python_number_parameter_takes_the_traced_tensors_dtype():
    """broadcast_all turns a number into a tensor of the first tensor's dtype: a float64
    loc with a scale of 0.1 computes with float64's 0.1, as eager does."""
    fn = lambda m, x: D.Normal(m, 0.1).log_prob(x)      # noqa: E731
    m, x = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    got = tracejit.compile(fn)(m, x)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, fn(m, x), rtol=1e-14, atol=1e-14)


def test_validation_swaps_are_undone_after_the_trace():
    before = (D.Distribution._validate_sample, D.utils.broadcast_all, D.normal.broadcast_all)
    tracejit.compile(lambda m, x: D.Normal(m, 1.0).log_prob(x))(torch.zeros(2), torch.zeros(2))
    assert (D.Distribution._validate_sample, D.utils.broadcast_all,
            D.normal.broadcast_all) == before


BIJECT = {
    "positive": (C.positive, (3, 4)),
    "greater_than": (C.greater_than(1.5), (3, 4)),
    "interval": (C.interval(-1.0, 2.0), (3, 4)),
    "unit_interval": (C.unit_interval, (3, 4)),
    "simplex": (C.simplex, (3, 4)),
    # transforms torch's biject_to does not register (Pyro's does)
    "softplus": (D.transforms.SoftplusTransform(), (3, 4)),
    "lower_cholesky": (D.transforms.LowerCholeskyTransform(), (2, 3, 3)),
    "corr_cholesky": (C.corr_cholesky, (2, 3)),
    "tanh": (D.transforms.TanhTransform(), (3, 4)),
    "compose": (D.transforms.ComposeTransform([D.transforms.AffineTransform(0.5, 2.0),
                                               D.transforms.SigmoidTransform(),
                                               D.transforms.PowerTransform(2.0)]), (3, 4)),
    "stick_breaking": (D.transforms.StickBreakingTransform(), (2, 4)),
}


@pytest.mark.parametrize("name", sorted(BIJECT))
def test_biject_to_transforms_and_their_jacobians_match_eager(name):
    constraint, shape = BIJECT[name]
    t = constraint if isinstance(constraint, D.transforms.Transform) else D.biject_to(constraint)

    def fn(u):
        y = t(u)
        if name == "lower_cholesky":       # torch defines no log_abs_det_jacobian for it
            return y, t.inv(y).sum(-1)
        return y, t.log_abs_det_jacobian(u, y), t.inv(y)

    cf = tracejit.compile(fn)
    for seed in range(3):
        u = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        for a, b in zip(cf(u), fn(u)):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
        loss = lambda u: fn(u)[0].sum() + fn(u)[1].sum()      # noqa: E731
        uu = u.clone().requires_grad_()
        want, = torch.autograd.grad(loss(uu), uu)
        torch.testing.assert_close(tracejit.grad(tracejit.compile(loss))(u), want,
                                   rtol=1e-8, atol=1e-8)


def test_a_log_density_of_several_distributions_and_its_gradient():
    """A Pyro-style log joint: parameters in their unconstrained space, moved to their
    support by biject_to, scored by several distributions."""
    def log_joint(mu, log_sigma, raw_w, y):
        sigma = D.biject_to(C.positive)(log_sigma)
        w = D.biject_to(C.simplex)(raw_w)
        lp = D.Normal(0.0, 10.0).log_prob(mu).sum() + D.HalfCauchy(torch.ones_like(sigma)).log_prob(sigma).sum()
        lp = lp + D.Dirichlet(torch.ones_like(w)).log_prob(w)
        lp = lp + D.biject_to(C.positive).log_abs_det_jacobian(log_sigma, sigma).sum()
        comp = D.Normal(mu, sigma).log_prob(y.unsqueeze(-1)) + torch.log(w)
        return lp + torch.logsumexp(comp, -1).sum()

    vg = tracejit.value_and_grad(tracejit.compile(log_joint), argnums=(0, 1, 2))
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        args = [torch.randn(3, generator=g, dtype=torch.float64) for _ in range(2)]
        args += [torch.randn(2, generator=g, dtype=torch.float64),
                 torch.randn(20, generator=g, dtype=torch.float64) * 3]
        leaves = [a.clone().requires_grad_() for a in args[:3]]
        want = log_joint(*leaves, args[3])
        wgrad = torch.autograd.grad(want, leaves)
        value, grads = vg(*args)
        torch.testing.assert_close(value, want.detach(), rtol=1e-10, atol=1e-10)
        for a, b in zip(grads, wgrad):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert not math.isnan(float(value))


def test_real_tensors_in_a_traced_values_index():
    """torch.distributions indexes traced values with masks it builds (tril masks): a
    tensor made in the trace is a constant key (a boolean one as its positions); one
    the function reads at call time is read at every call (a mask whose count could
    change is refused, as any traced mask)."""
    f = tracejit.compile(lambda x: x[..., torch.arange(4) % 2 == 0] * 2)
    x = torch.randn(3, 4)
    torch.testing.assert_close(f(x), x[..., torch.arange(4) % 2 == 0] * 2)
    idx = torch.tensor([2, 0])
    g = tracejit.compile(lambda x: x[:, idx])
    torch.testing.assert_close(g(x), x[:, idx])
    idx[0] = 3                                   # read at call time, as eager reads it
    torch.testing.assert_close(g(x), x[:, idx])
    mask = torch.tensor([True, False, True, True])
    with pytest.raises(tracejit.TraceError, match="boolean-mask indexing"):
        tracejit.compile(lambda x: x[:, mask])(x)


def test_a_two_dim_constant_mask_after_an_ellipsis():
    """tril_matrix_to_vec's mat[..., tril_mask] (CorrCholeskyTransform, LKJCholesky):
    the masked dims flattened together and gathered with one integer array."""
    from torch.distributions.utils import tril_matrix_to_vec, vec_to_tril_matrix
    fn = lambda m: tril_matrix_to_vec(m, diag=-1) * 2 + vec_to_tril_matrix(m[..., 0, :3]).sum()  # noqa
    m = torch.randn(2, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(tracejit.compile(fn)(m), fn(m))
    mm = m.clone().requires_grad_()
    want, = torch.autograd.grad(fn(mm).sum(), mm)
    torch.testing.assert_close(tracejit.grad(tracejit.compile(lambda m: fn(m).sum()))(m), want)
    with pytest.raises(IndexError):
        fn(torch.randn(2, 3, 4))
    with pytest.raises(IndexError, match="does not match"):
        tracejit.compile(lambda m: m[..., torch.ones(3, 3, dtype=torch.bool)])(torch.randn(3, 4))
