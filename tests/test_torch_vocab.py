"""The torch vocabulary of Pyro-style models and small networks, against torch eager in
float32 and float64, over several shapes and layouts; and the log densities of
Normal, Bernoulli (logits), Gamma, Beta, Poisson and Categorical written with it,
against torch.distributions. Skipped without torch."""
import math

import pytest

import tracejit

torch = pytest.importorskip("torch")
F = torch.nn.functional
D = torch.distributions

DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == torch.float32 else dict(rtol=1e-11, atol=1e-11)


def layouts(shape, dtype, seed, low=-3.0, high=3.0):
    """The same values C-contiguous, transposed and strided."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(shape, generator=g, dtype=torch.float64) * (high - low) + low
    base = base.to(dtype)
    out = [("c", base)]
    if len(shape) >= 2:
        out.append(("t", base.t().contiguous().t()))
    big = torch.zeros(tuple(s * 2 for s in shape), dtype=dtype)
    sl = tuple(slice(None, None, 2) for _ in shape)
    big[sl] = base
    out.append(("strided", big[sl]))
    return out


def check(fn, *args, dtype=torch.float32, **kw):
    r = tracejit.compile(fn)(*args)
    e = fn(*args)
    if isinstance(e, torch.Tensor):
        e = (e,)
        r = (r,)
    for a, b in zip(r, e):
        assert type(a) is torch.Tensor
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, **(kw or tol(dtype)), equal_nan=True)


UNARY = {
    "sigmoid": torch.sigmoid, "F.sigmoid": F.sigmoid, "softplus": F.softplus,
    "softplus_beta": lambda x: F.softplus(x, beta=2.0, threshold=5.0),
    "logsigmoid": F.logsigmoid, "relu": F.relu, "torch.relu": torch.relu,
    "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu,
    "elu": F.elu, "leaky_relu": lambda x: F.leaky_relu(x, 0.2), "tanh": torch.tanh,
    "softmax": lambda x: F.softmax(x, dim=-1), "softmax0": lambda x: F.softmax(x, dim=0),
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "logsumexp": lambda x: torch.logsumexp(x, dim=-1),
    "logsumexp_keep": lambda x: torch.logsumexp(x, dim=0, keepdim=True),
    "erf": torch.erf, "erfc": torch.erfc, "special.erf": torch.special.erf,
    "lgamma": lambda x: torch.lgamma(x), "digamma": lambda x: torch.digamma(x),
    "lgamma_pos": lambda x: torch.lgamma(x.abs() + 0.01),
    "digamma_pos": lambda x: torch.digamma(x.abs() + 0.01),
    "clamp": lambda x: torch.clamp(x, -1.0, 0.5), "clamp_min": lambda x: x.clamp(min=0.1),
    "where": lambda x: torch.where(x > 0, x, x * 0.1),
    "exp_log1p": lambda x: x.exp().log1p(), "methods": lambda x: x.abs().sqrt().neg().square(),
    "sum_dim": lambda x: x.sum(dim=-1, keepdim=True), "mean": lambda x: x.mean(0),
    "var_std": lambda x: x.var(0) + x.std(dim=-1, keepdim=True).sum(),
    "var_unbiased": lambda x: torch.var(x, 0, unbiased=False),
    "max_dim": lambda x: x.max(dim=-1).values + x.min(0)[0].sum(),
    "argmax": lambda x: x.argmax(dim=-1), "amax": lambda x: torch.amax(x, dim=(0, 1)),
    "mish_selu_softsign": lambda x: F.mish(x) + F.selu(x) + F.softsign(x),
    "hardtanh_relu6": lambda x: F.hardtanh(x) + F.relu6(x * 3),
    "xlogy": lambda x: torch.special.xlogy(x.abs(), x.abs() + 1),
    "rsqrt_recip": lambda x: torch.rsqrt(x.abs() + 1) + torch.reciprocal(x.abs() + 1),
    "layer_norm": lambda x: F.layer_norm(x, x.shape[-1:]),
    "normalize": lambda x: F.normalize(x, dim=-1),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(7, 5), (3, 130)])
def test_unary_vocabulary(name, dtype, shape):
    fn = UNARY[name]
    for seed, (layout, x) in enumerate(layouts(shape, dtype, hash(name) % 1000)):
        check(fn, x, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_functions_accuracy(dtype):
    x = torch.linspace(-30, 30, 2001, dtype=dtype)
    check(lambda x: torch.erf(x) + torch.erfc(x) * 2, x, dtype=dtype)
    pos = torch.cat([torch.linspace(1e-4, 1, 500, dtype=dtype), torch.linspace(1, 200, 500, dtype=dtype)])
    check(torch.lgamma, pos, dtype=dtype)
    check(torch.digamma, pos, dtype=dtype)
    # negative non-integers, poles and special values
    neg = torch.tensor([-0.5, -1.5, -2.25, -7.75, -100.1, -1.0, -2.0, 0.0, -0.0, float("inf"),
                        float("-inf"), float("nan")], dtype=dtype)
    check(torch.lgamma, neg, dtype=dtype)
    check(torch.digamma, neg, dtype=dtype, rtol=1e-4 if dtype == torch.float32 else 1e-9, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_erf_ops_on_ints_follow_torch(dtype):
    i = torch.arange(-3, 4)
    check(lambda i: torch.erf(i) + torch.lgamma(i.abs() + 1), i)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_and_products(dtype):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(32, 16, generator=g, dtype=dtype)
    w = torch.randn(8, 16, generator=g, dtype=dtype)
    b = torch.randn(8, generator=g, dtype=dtype)
    A = torch.randn(4, 5, 6, generator=g, dtype=dtype)
    B = torch.randn(4, 6, 3, generator=g, dtype=dtype)
    check(lambda x, w, b: F.linear(x, w, b), x, w, b, dtype=dtype)
    check(lambda x, w: F.linear(x, w), x, w, dtype=dtype)
    check(lambda x, w: torch.matmul(x, w.t()) + torch.mm(x, w.T) + x @ w.mT, x, w, dtype=dtype)
    check(lambda A, B: torch.bmm(A, B) + torch.einsum("bij,bjk->bik", A, B), A, B, dtype=dtype)
    check(lambda x, w: torch.einsum("ij,kj->ik", x, w), x, w, dtype=dtype)
    check(lambda x, b: torch.mv(x[:8, :8], b) + torch.dot(b, b), x, b, dtype=dtype)
    check(lambda x, w, b: torch.addmm(b, x, w.t(), beta=0.5, alpha=2.0), x, w, b, dtype=dtype)
    check(lambda x: torch.outer(x[0], x[1]), x, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_assembly_and_movement(dtype):
    g = torch.Generator().manual_seed(8)
    x = torch.randn(3, 4, generator=g, dtype=dtype)
    y = torch.randn(3, 4, generator=g, dtype=dtype)
    check(lambda x, y: torch.cat([x, y], dim=1) * 2, x, y, dtype=dtype)
    check(lambda x, y: torch.cat((x, y)) + 1, x, y, dtype=dtype)
    check(lambda x, y: torch.stack([x, y], dim=-1) + 0, x, y, dtype=dtype)
    check(lambda x: x.view(4, 3) + x.reshape(-1, 3) + x.view(-1).view(4, 3), x, dtype=dtype)
    check(lambda x: x.permute(1, 0).unsqueeze(0).expand(2, -1, -1) * 1, x, dtype=dtype)
    check(lambda x: x.unsqueeze(-1).squeeze(-1).squeeze(0) + x.transpose(0, 1).t(), x, dtype=dtype)
    check(lambda x: x.flip(0).contiguous() + x.flip(dims=(0, 1)), x, dtype=dtype)
    check(lambda x: x.flatten() * 1, x, dtype=dtype)
    check(lambda x: torch.flatten(x.unsqueeze(0), 1) * 1, x, dtype=dtype)
    check(lambda x: x.narrow(1, 1, 2) + x.select(0, 1)[1:3], x, dtype=dtype)
    check(lambda x: torch.chunk(x, 2, dim=1)[1] + torch.split(x, [1, 3], dim=1)[1][:, :2], x, dtype=dtype)
    check(lambda x: torch.roll(x, 1, 0) + x.movedim(0, 1).t(), x, dtype=dtype)
    check(lambda x: x.float().double().to(dtype) + x.to(torch.float64).to(dtype), x, dtype=dtype)
    check(lambda x: (x > 0).long() + (x > 0).int().sum() + x.long(), x, dtype=dtype)
    check(lambda x: x.clone() + x.detach() + x.cumsum(1) + torch.cumprod(x, dim=0), x, dtype=dtype)
    check(lambda x: x.masked_fill(x > 0, 0.5), x, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses(dtype, reduction):
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(16, 5, generator=g, dtype=dtype)
    target = (torch.rand(16, 5, generator=g) > 0.5).to(dtype)
    pw = torch.rand(5, generator=g, dtype=dtype) + 0.5
    w = torch.rand(5, generator=g, dtype=dtype) + 0.5
    cls = torch.randint(0, 5, (16,), generator=g)
    cls_ign = cls.clone()
    cls_ign[::4] = -100
    probs = torch.softmax(torch.randn(16, 5, generator=g, dtype=dtype), -1)
    r = dict(reduction=reduction)
    check(lambda a, t: F.binary_cross_entropy_with_logits(a, t, **r), logits, target, dtype=dtype)
    check(lambda a, t, p: F.binary_cross_entropy_with_logits(a, t, pos_weight=p, weight=p, **r),
          logits, target, pw, dtype=dtype)
    check(lambda a, t: F.binary_cross_entropy(torch.sigmoid(a), t, **r), logits, target, dtype=dtype)
    check(lambda a, t: F.mse_loss(a, t, **r), logits, target, dtype=dtype)
    check(lambda a, t: F.l1_loss(a, t, **r), logits, target, dtype=dtype)
    check(lambda a, c: F.cross_entropy(a, c, **r), logits, cls, dtype=dtype)
    check(lambda a, c, w: F.cross_entropy(a, c, weight=w, **r), logits, cls, w, dtype=dtype)
    check(lambda a, c: F.cross_entropy(a, c, **r), logits, cls_ign, dtype=dtype)
    check(lambda a, p: F.cross_entropy(a, p, **r), logits, probs, dtype=dtype)
    check(lambda a, c: F.nll_loss(F.log_softmax(a, 1), c, **r), logits, cls, dtype=dtype)
    check(lambda a, c: F.cross_entropy(a[0], c[0], **r), logits, cls, dtype=dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_label_smoothing(reduction):
    x = torch.randn(4, 3, dtype=torch.float64)
    c = torch.tensor([0, 1, -100, 0])
    w = torch.rand(3, dtype=torch.float64) + 0.5
    p = torch.softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    for kw in ({}, {"weight": w}):
        fn = lambda x: F.cross_entropy(x, c, label_smoothing=0.1, reduction=reduction, **kw)
        check(fn, x, dtype=torch.float64)
    check(lambda x: F.cross_entropy(x, p, label_smoothing=0.2, reduction=reduction), x,
          dtype=torch.float64)


# ---- log densities written with the vocabulary, against torch.distributions -------------

LOG2PI = math.log(2 * math.pi)


def normal_lp(x, loc, scale):
    return -((x - loc) ** 2) / (2 * scale ** 2) - torch.log(scale) - 0.5 * LOG2PI


def bernoulli_logits_lp(x, logits):
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def gamma_lp(x, conc, rate):
    return torch.xlogy(conc, rate) + torch.xlogy(conc - 1, x) - rate * x - torch.lgamma(conc)


def beta_lp(x, a, b):
    return ((a - 1) * torch.log(x) + (b - 1) * torch.log1p(-x)
            - (torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)))


def poisson_lp(k, rate):
    return torch.xlogy(k, rate) - rate - torch.lgamma(k + 1)


def categorical_lp(k, logits):
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    return torch.gather(logp, -1, k.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 10, 1000])
def test_log_densities_match_torch_distributions(dtype, n):
    g = torch.Generator().manual_seed(n)

    def u(lo, hi, *shape):
        return (torch.rand(*(shape or (n,)), generator=g, dtype=torch.float64) * (hi - lo) + lo).to(dtype)

    x, loc, scale = u(-3, 3), u(-1, 1), u(0.3, 2)
    p, a, b = u(0.01, 0.99), u(0.2, 4), u(0.2, 4)
    logits, bx = u(-4, 4), (u(0, 1) > 0.5).to(dtype)
    k = torch.poisson(torch.full((n,), 3.0, dtype=torch.float64), generator=g).to(dtype)
    cl, ck = u(-2, 2, n, 6), torch.randint(0, 6, (n,), generator=g)
    cases = [
        (normal_lp, (x, loc, scale), D.Normal(loc, scale).log_prob(x)),
        (bernoulli_logits_lp, (bx, logits), D.Bernoulli(logits=logits).log_prob(bx)),
        (gamma_lp, (p * 5, a, b), D.Gamma(a, b).log_prob(p * 5)),
        (beta_lp, (p, a, b), D.Beta(a, b).log_prob(p)),
        (poisson_lp, (k, scale), D.Poisson(scale).log_prob(k)),
        (categorical_lp, (ck, cl), D.Categorical(logits=cl).log_prob(ck)),
    ]
    for fn, args, ref in cases:
        r = tracejit.compile(fn)(*args)
        assert r.dtype == ref.dtype and r.shape == ref.shape, fn.__name__
        torch.testing.assert_close(r, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bayesian_model_log_joint(dtype):
    """A small Bayesian logistic regression: Normal prior + Bernoulli likelihood, summed."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(100, 5, generator=g, dtype=dtype)
    y = (torch.rand(100, generator=g) > 0.5).to(dtype)
    w = torch.randn(5, generator=g, dtype=dtype)
    b = torch.randn((), generator=g, dtype=dtype)

    def log_joint(w, b):
        prior = normal_lp(w, 0.0, torch.ones_like(w)).sum() + normal_lp(b, 0.0, torch.ones_like(b))
        return prior + bernoulli_logits_lp(y, X @ w + b).sum()

    ref = (D.Normal(0.0, 1.0).log_prob(w).sum() + D.Normal(0.0, 1.0).log_prob(b)
           + D.Bernoulli(logits=X @ w + b).log_prob(y).sum())
    r = tracejit.compile(log_joint)(w, b)
    assert r.dtype == ref.dtype
    torch.testing.assert_close(r, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_reciprocal_of_integers_is_torch_float(dtype):
    # torch.reciprocal promotes integers and bools to the default float dtype (NumPy's
    # reciprocal keeps integers: 1 // x); found by the CUDA tests comparing with torch
    torch = pytest.importorskip("torch")
    x = torch.tensor([[2, -3, 1], [4, 1, 0]]).to(getattr(torch, dtype))
    for fn in (torch.reciprocal, lambda x: x.reciprocal()):
        got = tracejit.compile(fn)(x)
        want = fn(x)
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want)


def test_attributes_set_on_traced_tensors_are_kept_while_tracing():
    """A torch trace's tracer takes attributes torch.Tensor does not have, as a tensor
    does (Pyro marks values: _pyro_dims, unconstrained); torch's own names, which would
    change the tensor in eager, are refused; a NumPy trace's tracer takes none, as an
    ndarray."""
    import numpy as np

    def mark(x):
        y = x * 2
        y._pyro_dims = "ab"
        return y * len(y._pyro_dims) + (getattr(x, "_pyro_dims", None) is None)

    x = torch.arange(3.0)
    torch.testing.assert_close(tracejit.compile(mark)(x), mark(x))

    def data(x):
        y = x * 2
        y.data = x
        return y

    with pytest.raises(tracejit.TraceError, match=r"setting torch\.Tensor\.data of a traced "
                                                   r"value is not supported(.|\n)*y\.data = x"):
        tracejit.compile(data)(x)

    def numpy_mark(a):
        a.note = 1
        return a

    with pytest.raises(AttributeError, match="ndarray' object has no attribute 'note'"):
        numpy_mark(np.ones(2))
    with pytest.raises(AttributeError, match=r"'ndarray' object \(traced by tracejit\) has no "
                                             r"attribute 'note' to set"):
        tracejit.compile(numpy_mark)(np.ones(2))


# ---- a traced Python int as a size ---------------------------------------------------

_SIZED = {
    "zeros": lambda x, n: torch.zeros(n, 2) + x.sum(),
    "ones": lambda x, n: torch.ones(n, 3, dtype=torch.float64) * x.sum(),
    "empty": lambda x, n: torch.empty(n, 2).fill_(1.0) + x.sum(),
    "rand": lambda x, n: torch.rand(n, 2).shape[0] + x.sum(),
    "randn": lambda x, n: torch.randn(n, 2, 1).shape[0] * x,
    "repeat": lambda x, n: x.repeat(n, 1),
    "repeat_tuple": lambda x, n: x.repeat((1, n, 2)),
}


@pytest.mark.parametrize("name", sorted(_SIZED))
def test_a_traced_int_as_the_first_of_several_sizes(name):
    """torch.zeros(n, 2) of a Python int argument n: torch's argument parser refuses a
    non-int first vararg before any hook sees it, so the factories are swapped while a
    trace runs (_torch_swaps._sized); each read of n is a guard: another n retraces."""
    fn = _SIZED[name]
    f = tracejit.compile(fn)
    x = torch.arange(6.0).reshape(2, 3)
    for n in (2, 2, 3):
        got, want = f(x, n), fn(x, n)
        assert torch.equal(torch.as_tensor(got), torch.as_tensor(want)), (n, got, want)
    assert f.cache_info().misses == 2 and f.cache_info().hits == 1
    assert torch.zeros(2, 2).shape == (2, 2)   # the swap ended with the trace
    assert torch.zeros.__module__ is None or "tracejit" not in torch.zeros.__module__


def test_repeat_refuses_fewer_sizes_than_dims_as_torch():
    x = torch.ones(2, 3)
    with pytest.raises(RuntimeError, match="can not be smaller than number of dimensions"):
        x.repeat(2)
    with pytest.raises(RuntimeError, match="can not be smaller than number of dimensions"):
        tracejit.compile(lambda x: x.repeat(2))(x)


@pytest.mark.parametrize("name", ["scatter", "scatter_add", "index_add", "index_fill",
                                  "index_put"])
def test_out_of_place_indexed_writes_leave_their_input(name):
    """x.scatter_add(...) and friends: a new tensor with the in-place form's contents, x
    unchanged (tests/torch_samples.py has their forward and gradient samples)."""
    i2 = torch.tensor([[0, 2], [1, 1]])
    i1 = torch.tensor([2, 0, 2])
    fns = {"scatter": lambda x, s: x.scatter(1, i2, s[:, :2]),
           "scatter_add": lambda x, s: torch.scatter_add(x, 1, i2, s[:, :2]),
           "index_add": lambda x, s: x.index_add(1, i1, s),
           "index_fill": lambda x, s: x.index_fill(1, i1, -2.0),
           "index_put": lambda x, s: x.index_put((torch.tensor([1, 1]),), s, accumulate=True)}
    fn = fns[name]

    def both(x, s):
        return fn(x, s), x * 1
    x, s = torch.arange(6.0).reshape(2, 3), torch.full((2, 3), 10.0)
    got, want = tracejit.compile(both)(x, s), both(x, s)
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    assert torch.equal(x, torch.arange(6.0).reshape(2, 3))
