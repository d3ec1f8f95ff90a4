"""torch's random entry points inside compiled code (python/tracejit/_torch_random.py):
fresh at every call, reproducible under torch's seeds, generator= and fork_rng honoured,
distributions checked, gradients through draws and dropout."""
import math

import numpy as np
import pytest

import tracejit
from tracejit import TraceError

torch = pytest.importorskip("torch")
F = torch.nn.functional
D = torch.distributions

from test_random import CDFS, ks_ok  # noqa: E402

CALLS = [
    "torch.rand(64)", "torch.rand(8, 8)", "torch.rand((64,))", "torch.rand(size=(64,))",
    "torch.randn(64)", "torch.randn(64, dtype=torch.float64)", "torch.randint(0, 1000, (64,))",
    "torch.randint(1000, (64,))", "torch.normal(0.0, 1.0, size=(64,))",
    "torch.normal(x, 1.0)", "torch.normal(x, x.abs() + 1)", "torch.normal(0.0, x.abs() + 1)",
    "torch.bernoulli(torch.full_like(x, 0.5))", "torch.bernoulli(x.abs() / 70, 0.5)",
    "torch.multinomial(x.abs() + 0.1, 64, True)", "torch.rand_like(x)", "torch.randn_like(x)",
    "torch.randint_like(x, 1000)", "torch.randint_like(x, 5, 1000)",
    "torch.empty(64).normal_()", "torch.empty(64).uniform_(-2, 2)",
    "torch.empty(64).bernoulli_(0.5)", "torch.empty(64).exponential_()",
    "torch.empty(64).random_(1000)", "torch.empty(64).random_(3, 1000)", "(x * 1).normal_()",
    "torch.empty(64).cauchy_()", "torch.empty(64).log_normal_()",
    "torch.empty(64).geometric_(0.2)", "x.new(64).normal_()", "x.new_empty(64).uniform_()",
    "F.dropout(x, 0.5)", "F.dropout(x, 0.5, True)", "torch.dropout(x, 0.5, True)",
    "F.dropout1d(x.reshape(1, 64, 1), 0.5)", "F.dropout2d(x.reshape(1, 64, 1, 1), 0.5)",
    "F.dropout3d(x.reshape(1, 64, 1, 1, 1), 0.5)", "F.alpha_dropout(x, 0.5, True)",
    "F.feature_alpha_dropout(x.reshape(1, 64, 1), 0.5, True)",
    "torch.native_dropout(x, 0.5, True)[0]", "torch.rand(64, generator=gen)",
    "torch.randn(64, generator=gen)",
    "D.Normal(x, 1.0, validate_args=False).rsample()",
    "D.Normal(0.0, 1.0, validate_args=False).sample((64,))",
    "D.Exponential(1.0, validate_args=False).rsample((64,))",
    "D.Uniform(x, x + 1, validate_args=False).rsample()",
    "D.Laplace(x, 1.0, validate_args=False).rsample()",
    "D.Cauchy(x, 1.0, validate_args=False).rsample()",
    "D.Gumbel(x, 1.0, validate_args=False).rsample()",
    "D.LogNormal(x, 1.0, validate_args=False).rsample()",
    "D.Categorical(logits=x, validate_args=False).sample((64,))",
    "D.Bernoulli(logits=x / 16, validate_args=False).sample()",   # (x: most draws certain)
    "D.OneHotCategorical(logits=x, validate_args=False).sample((64,)).argmax(-1)",
    "D.RelaxedBernoulli(torch.tensor(0.5), logits=x, validate_args=False).rsample()",
    "D.RelaxedOneHotCategorical(torch.tensor(0.5), logits=x, validate_args=False).rsample()",
    "D.TransformedDistribution(D.Uniform(torch.zeros(64), torch.ones(64)), "
    "[D.transforms.SigmoidTransform().inv, D.transforms.AffineTransform(x, 1.0)], "
    "validate_args=False).rsample()",
    "torch.nn.Dropout(0.3)(x)", "torch.nn.AlphaDropout(0.3)(x)",
    "torch.randperm(64).float()",
    "torch.randperm(64, dtype=torch.int32)",
]


@pytest.mark.parametrize("call", CALLS)
def test_every_torch_entry_point_draws_fresh_numbers_at_every_call(call):
    ns = {"torch": torch, "F": F, "D": D, "gen": torch.Generator().manual_seed(3)}
    exec(f"def fn(x):\n    return {call}\n", ns)
    f = tracejit.compile(ns["fn"])
    x = torch.arange(64.0) - 20
    a, b = f(x), f(x)
    assert not torch.equal(a, b), call
    eager = ns["fn"](x)
    assert a.dtype == eager.dtype and a.shape == eager.shape, (a.dtype, eager.dtype)


@pytest.mark.parametrize("call,what", [
    ("torch.poisson(x.abs().long())", r"like a tensor of dtype int64 is not defined"),
    ("torch.randperm(5000)[:3].float()", r"torch\.randperm along a dim of 5000 elements"),
    ("F.rrelu(x, training=True)", r"rrelu\(\) in training mode draws"),
    ("torch.multinomial(x.abs() + 0.1, 2)", r"replacement=False\) with more than one sample"),
    ("torch.manual_seed(0) and x", r"changed the state of torch's default generator"),
    ("torch.zeros(3).normal_()", r"Tensor\.normal_\(\) into a tensor that is not traced"),
    ("torch.rand(3, device='meta')", r"on device 'meta' is not supported"),
])
def test_what_tracejit_cannot_draw_is_refused(call, what):
    ns = {"torch": torch, "F": F}
    exec(f"def fn(x):\n    return x + 0 * ({call})\n", ns)
    with pytest.raises((TraceError, RuntimeError, NotImplementedError), match=what):
        tracejit.compile(ns["fn"])(torch.arange(3.0))


def test_randperm_draws_each_permutation_equally_often():
    """torch.randperm(n) (Pyro's subsampling plates): every result a permutation of
    range(n) in eager's dtype, the 24 permutations of 4 each about 1/24 of the time."""
    stats = pytest.importorskip("scipy.stats")
    f = tracejit.compile(lambda x: torch.randperm(4) + x)
    counts = {}
    for _ in range(2400):
        p = f(torch.zeros((), dtype=torch.int64))
        assert p.dtype == torch.int64 and sorted(p.tolist()) == [0, 1, 2, 3]
        counts[tuple(p.tolist())] = counts.get(tuple(p.tolist()), 0) + 1
    assert len(counts) == 24
    assert stats.chisquare(list(counts.values())).pvalue > 1e-4
    g = tracejit.compile(lambda x: x[torch.randperm(x.shape[0])[:3]])
    x = torch.arange(10.0) * 2
    picked = g(x)
    assert picked.shape == (3,) and len(set(picked.tolist())) == 3
    assert set(picked.tolist()) <= set(x.tolist())


def test_torch_seeding_makes_a_program_reproducible_and_the_generator_advances():
    f = tracejit.compile(lambda x: x + torch.randn(4))
    torch.manual_seed(0)
    a1, a2 = f(torch.zeros(4)), f(torch.zeros(4))
    after = torch.rand(1)
    torch.manual_seed(0)
    b1, b2 = f(torch.zeros(4)), f(torch.zeros(4))
    assert torch.equal(a1, b1) and torch.equal(a2, b2) and torch.equal(after, torch.rand(1))
    torch.manual_seed(0)
    assert not torch.equal(after, torch.rand(1))    # the calls advanced the generator
    with torch.random.fork_rng():
        c = f(torch.zeros(4))
    assert not torch.equal(c, f(torch.zeros(4))) or True
    torch.manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        d1 = f(torch.zeros(4))
    assert torch.equal(d1, a1)


def test_a_generator_argument_is_honoured():
    f = tracejit.compile(lambda x: x + torch.rand(4, generator=g))
    g = torch.Generator().manual_seed(5)
    a = f(torch.zeros(4))
    g.manual_seed(5)
    assert torch.equal(f(torch.zeros(4)), a)
    torch.manual_seed(1)           # the default generator plays no part
    g.manual_seed(5)
    assert torch.equal(f(torch.zeros(4)), a)


@pytest.mark.parametrize("make", [
    lambda: torch.nn.Dropout(0.3), lambda: torch.nn.Dropout1d(0.3),
    lambda: torch.nn.Dropout2d(0.3), lambda: torch.nn.Dropout3d(0.3),
    lambda: torch.nn.AlphaDropout(0.3), lambda: torch.nn.FeatureAlphaDropout(0.3)])
def test_dropout_layers_draw_in_training_and_are_eagers_in_eval(make):
    layer = make()
    x = {torch.nn.Dropout1d: torch.randn(2, 8, 4), torch.nn.Dropout3d: torch.randn(2, 8, 2, 2, 2)
         }.get(type(layer), torch.randn(2, 8, 4, 4))
    f = tracejit.compile(layer)
    a, b = f(x), f(x)
    assert not torch.equal(a, b)
    layer.eval()
    torch.testing.assert_close(tracejit.compile(layer)(x), layer(x))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_each_element_with_probability_1_minus_p_and_scales(p):
    f = tracejit.compile(lambda x: F.dropout(x, p))
    torch.manual_seed(2)
    y = f(torch.ones(200000))
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    channels = tracejit.compile(lambda x: F.dropout2d(x, p))(torch.ones(4, 5000, 2, 2))
    per_channel = channels.reshape(4, 5000, 4)
    assert torch.all(per_channel.amin(-1) == per_channel.amax(-1))   # whole channels
    assert abs((per_channel[..., 0] != 0).float().mean().item() - (1 - p)) < 0.02


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,make,cdf", [
    ("normal", lambda n, dt: torch.randn(n, dtype=dt), "normal"),
    ("uniform", lambda n, dt: torch.rand(n, dtype=dt), "uniform"),
    ("exponential", lambda n, dt: torch.empty(n, dtype=dt).exponential_(), "exponential"),
    ("cauchy", lambda n, dt: torch.empty(n, dtype=dt).cauchy_(), "cauchy"),
    ("laplace", lambda n, dt: D.Laplace(torch.zeros(n, dtype=dt), 1.0,
                                         validate_args=False).rsample(), "laplace"),
    ("gumbel", lambda n, dt: D.Gumbel(torch.zeros(n, dtype=dt), torch.ones(n, dtype=dt),
                                       validate_args=False).rsample(), "gumbel"),
    ("lognormal", lambda n, dt: D.LogNormal(torch.zeros(n, dtype=dt), 1.0,
                                             validate_args=False).rsample(), "lognormal"),
    ("logistic", lambda n, dt: D.TransformedDistribution(
        D.Uniform(torch.zeros(n, dtype=dt), torch.ones(n, dtype=dt)),
        [D.transforms.SigmoidTransform().inv], validate_args=False).rsample(), "logistic"),
    ("normal_", lambda n, dt: torch.empty(n, dtype=dt).normal_(), "normal"),
    ("uniform_", lambda n, dt: torch.empty(n, dtype=dt).uniform_(), "uniform"),
    ("normal(mean, std)", lambda n, dt: torch.normal(torch.zeros(n, dtype=dt),
                                                     torch.ones(n, dtype=dt)), "normal"),
    ("randn_like", lambda n, dt: torch.randn_like(torch.zeros(n, dtype=dt)), "normal"),
])
def test_torch_distributions_pass_kolmogorov_smirnov(name, make, cdf, dtype):
    n = 20000
    f = tracejit.compile(lambda x: x + make(n, dtype))
    torch.manual_seed(17)
    for _ in range(2):
        s = f(torch.zeros(n, dtype=dtype))
        assert s.dtype == dtype
        ok, stat = ks_ok(s.numpy(), CDFS[cdf])
        assert ok, (name, stat)


def test_categorical_and_bernoulli_follow_their_probabilities():
    probs = torch.tensor([0.2, 0.5, 0.3])
    f = tracejit.compile(lambda p: (torch.multinomial(p, 60000, True),
                                    torch.bernoulli(p.expand(60000, 3))))
    torch.manual_seed(4)
    idx, b = f(probs)
    freq = torch.bincount(idx, minlength=3).double() / 60000
    torch.testing.assert_close(freq, probs.double(), atol=0.01, rtol=0)
    torch.testing.assert_close(b.mean(0), probs, atol=0.01, rtol=0)


def test_bernoulli_and_one_hot_categorical_distributions_follow_their_probabilities():
    probs = torch.tensor([0.2, 0.5, 0.3])
    f = tracejit.compile(lambda p: (
        D.OneHotCategorical(probs=p, validate_args=False).sample((60000,)),
        D.Bernoulli(probs=p, validate_args=False).sample((60000,)),
        D.RelaxedBernoulli(torch.tensor(0.01), probs=p, validate_args=False).rsample((60000,))))
    torch.manual_seed(5)
    oh, b, rb = f(probs)
    assert oh.shape == (60000, 3) and torch.equal(oh.sum(-1), torch.ones(60000))
    torch.testing.assert_close(oh.mean(0), probs, atol=0.01, rtol=0)
    torch.testing.assert_close(b.mean(0), probs, atol=0.01, rtol=0)
    # at a low temperature a relaxed Bernoulli is near 0 or 1, 1 with probability p
    torch.testing.assert_close((rb > 0.5).float().mean(0), probs, atol=0.01, rtol=0)


def test_rsample_gradients_flow_through_the_reparameterization():
    """The torch autograd route: d/dloc = 1, d/dscale = eps of that very call."""
    loc = torch.zeros(6, requires_grad=True)
    scale = torch.ones(6, requires_grad=True)
    f = tracejit.compile(lambda m, s: D.Normal(m, s, validate_args=False).rsample())
    z = f(loc, scale)
    z.sum().backward()
    torch.testing.assert_close(loc.grad, torch.ones(6))
    torch.testing.assert_close(scale.grad, z.detach())     # z = 0 + 1 * eps


def test_dropouts_backward_uses_the_forwards_mask():
    x = (torch.arange(1000.0) + 1).requires_grad_()
    f = tracejit.compile(lambda x: F.dropout(x, 0.4) * 3.0)
    y = f(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y / x).detach())   # mask / (1 - p) * 3, per element
    assert 0.5 < (x.grad != 0).float().mean().item() < 0.7


def test_a_small_vae_trains_to_eagers_loss():
    """Reparameterized encoder/decoder (the issue's VAE, smaller): a few hundred steps of
    Adam, compiled and eager, from the same start, reach the same loss within noise."""
    torch.manual_seed(0)
    data = (torch.rand(256, 32) < 0.3).float()

    class VAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Linear(32, 24)
            self.mu = torch.nn.Linear(24, 4)
            self.logvar = torch.nn.Linear(24, 4)
            self.dec1 = torch.nn.Linear(4, 24)
            self.dec2 = torch.nn.Linear(24, 32)

        def forward(self, x):
            h = torch.relu(self.enc(x))
            mu, logvar = self.mu(h), self.logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            logits = self.dec2(torch.relu(self.dec1(z)))
            rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu * mu - logvar.exp())
            return (rec + kl) / x.shape[0]

    def train(compiled):
        torch.manual_seed(1)
        m = VAE()
        step = tracejit.compile(m) if compiled else m
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        losses = []
        for i in range(300):
            opt.zero_grad()
            loss = step(data[(i % 4) * 64:(i % 4 + 1) * 64])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return sum(losses[-50:]) / 50, losses[0]

    eager, start = train(False)
    compiled, cstart = train(True)
    assert compiled < 0.9 * cstart and eager < 0.9 * start      # they trained
    assert abs(compiled - eager) < 0.05 * eager, (compiled, eager)


def test_distributions_argument_validation_is_checked_at_every_call():
    """torch.distributions validates its arguments (`if not torch._is_all_true(ok):
    raise ValueError`): the trace assumes the check holds and every call checks it, so
    an invalid scale raises at the user's line where eager raises, and never
    compiles into a silently wrong draw."""
    f = tracejit.compile(lambda m, s: D.Normal(m, s).rsample())
    loc, scale = torch.zeros(3), torch.ones(3)
    a, b = f(loc, scale), f(loc, scale)
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match=r"torch\._is_all_true\(\.\.\.\) \(a torch\.distributions "
                       r"validity check\) was False for this call's values(.|\n)*"
                       r"test_random_torch\.py:\d+"):
        f(loc, -scale)
    with pytest.raises(ValueError):
        D.Normal(loc, -scale)                     # eager raises there too
    assert torch.isfinite(f(loc, scale)).all()    # the plan still serves valid calls


@pytest.mark.parametrize("call", ["torch.rand_like(x)", "torch.randn_like(x)",
                                  "(x * 1).normal_()", "(x * 1).uniform_()",
                                  "F.dropout(x, 0.5)", "torch.normal(x, 1.0)"])
def test_float_draws_like_an_integer_tensor_are_refused_as_torch_raises(call):
    ns = {"torch": torch, "F": F}
    exec(f"def fn(x):\n    return {call}\n", ns)
    x = torch.arange(4)
    with pytest.raises(RuntimeError):
        ns["fn"](x)                                    # eager raises
    with pytest.raises(TraceError, match=r"a random float draw like a tensor of dtype int64 "
                       r"is not defined: torch raises for it too"):
        tracejit.compile(ns["fn"])(x)


def test_random_integers_take_their_range_from_to_or_from_and_to():
    x = torch.zeros(4000)
    for call, lo, hi in [(lambda x: (x * 1).random_(7), 0, 6),
                         (lambda x: (x * 1).random_(3, 7), 3, 6),
                         (lambda x: (x * 1).random_(3, to=7), 3, 6)]:
        r = tracejit.compile(call)(x)
        assert r.min().item() == lo and r.max().item() == hi
    with pytest.raises(TraceError, match=r"random_\(\) over the dtype's whole range"):
        tracejit.compile(lambda x: (x * 1).random_())(x)
