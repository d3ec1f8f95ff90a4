"""Pyro on traced values (issue 24's first steps): a model's log density through
poutine.trace and poutine.condition, with Pyro's validation on (its default) and off,
and its gradient, against Pyro eager over several calls; Pyro's NaN/inf warnings on
traced values warn at every call whose values trip them. Skipped without pyro-ppl."""
import warnings

import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")
import pyro.distributions as dist  # noqa: E402
from pyro import poutine  # noqa: E402

import tracejit  # noqa: E402

F64 = torch.float64


def model(x, y):
    w = pyro.sample("w", dist.Normal(torch.zeros(3, dtype=x.dtype), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfCauchy(torch.ones((), dtype=x.dtype)))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w, sigma), obs=y)


def potential(w, log_sigma, x, y):
    sigma = log_sigma.exp()
    tr = poutine.trace(poutine.condition(model, {"w": w, "sigma": sigma})).get_trace(x, y)
    return -(tr.log_prob_sum() + log_sigma)


@pytest.fixture(params=[True, False], ids=["validation", "no validation"])
def validation(request):
    was = pyro.poutine.util.is_validation_enabled()
    pyro.enable_validation(request.param)
    yield request.param
    pyro.enable_validation(was)


def _data(seed, n=20):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=F64)
    return x, x @ torch.tensor([1.0, -2.0, 0.5], dtype=F64) + 0.3 * torch.randn(n, generator=g,
                                                                                dtype=F64)


def test_a_models_potential_and_its_gradient_match_pyro_eager(validation):
    vg = tracejit.value_and_grad(tracejit.compile(potential), argnums=(0, 1))
    for seed in range(3):
        x, y = _data(seed)
        w = torch.randn(3, dtype=F64, generator=torch.Generator().manual_seed(10 + seed))
        ls = torch.tensor(0.1 * seed, dtype=F64)
        value, grads = vg(w, ls, x, y)
        leaves = w.clone().requires_grad_(), ls.clone().requires_grad_()
        want = potential(*leaves, x, y)
        for a, b in zip(grads, torch.autograd.grad(want, leaves)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(value, want.detach(), rtol=1e-12, atol=1e-10)


def test_log_densities_of_pyro_distributions_and_their_gradients():
    def logp(mu, log_sigma, a, log_b, x, s):
        return (dist.Normal(mu, log_sigma.exp()).log_prob(x).sum() +
                dist.Gamma(a, log_b.exp()).log_prob(s).sum())

    vg = tracejit.value_and_grad(tracejit.compile(logp), argnums=(0, 1, 2, 3))
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        args = [torch.randn(3, generator=g, dtype=F64), 0.1 * torch.randn(3, generator=g, dtype=F64),
                torch.rand(3, generator=g, dtype=F64) + 1, 0.1 * torch.randn(3, generator=g, dtype=F64),
                torch.randn(10, 3, generator=g, dtype=F64),
                torch.rand(10, 3, generator=g, dtype=F64) + 0.1]
        value, grads = vg(*args)
        leaves = [a.clone().requires_grad_() for a in args[:4]]
        want = logp(*leaves, *args[4:])
        torch.testing.assert_close(value, want.detach(), rtol=1e-12, atol=1e-10)
        for a, b in zip(grads, torch.autograd.grad(want, leaves)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_pyros_nan_warning_on_traced_values_warns_at_each_call_that_trips_it():
    """Trace.log_prob_sum warns (UserWarning) when the log density is NaN, with
    validation on: a check of the plan that warns, not a branch taken once."""
    was = pyro.poutine.util.is_validation_enabled()
    pyro.enable_validation(True)
    try:
        def logp(w, loc):
            tr = poutine.trace(poutine.condition(
                lambda: pyro.sample("w", dist.Normal(loc, 1.0)), {"w": w})).get_trace()
            return tr.log_prob_sum()

        f = tracejit.compile(logp)
        one = torch.tensor(1.0, dtype=F64)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            f(one, one)                                              # no warning
        inf = torch.tensor(float("inf"), dtype=F64)                  # (inf - inf)^2: NaN
        with pytest.warns(UserWarning, match="Encountered NaN: log_prob_sum at site 'w'"):
            assert logp(inf, inf).isnan()                            # eager warns
        for _ in range(2):
            with pytest.warns(UserWarning, match="Encountered NaN: log_prob_sum at site 'w'"):
                assert f(inf, inf).isnan()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            torch.testing.assert_close(f(one, 2 * one), logp(one, 2 * one))
    finally:
        pyro.enable_validation(was)


def test_pyros_own_potential_from_initialize_model_compiles_and_drives_its_nuts():
    """initialize_model's potential_fn (poutine.enum, the transforms to the
    unconstrained space, validation on) compiled: its values and Pyro's potential_grad
    match eager at several points, and Pyro's NUTS given it draws eager's samples for
    the same seed."""
    from pyro.infer import MCMC, NUTS
    from pyro.infer.mcmc.util import initialize_model
    from pyro.ops.integrator import potential_grad

    x, y = _data(0)
    init, potential_fn, _, _ = initialize_model(model, model_args=(x, y))
    compiled = tracejit.compile(potential_fn)
    for i in range(3):
        p = {k: v + 0.1 * i for k, v in init.items()}
        torch.testing.assert_close(compiled(p), potential_fn(p), rtol=1e-12, atol=1e-10)
        g1, v1 = potential_grad(potential_fn, {k: v.clone() for k, v in p.items()})
        g2, v2 = potential_grad(compiled, {k: v.clone() for k, v in p.items()})
        torch.testing.assert_close(v2, v1, rtol=1e-12, atol=1e-10)
        for k in g1:
            torch.testing.assert_close(g2[k], g1[k], rtol=1e-10, atol=1e-10)
    samples = []
    for fn in (potential_fn, compiled):
        pyro.set_rng_seed(0)
        mcmc = MCMC(NUTS(potential_fn=fn), num_samples=15, warmup_steps=15,
                    initial_params=init, disable_progbar=True)
        mcmc.run()
        samples.append(mcmc.get_samples())
    for k in samples[0]:
        torch.testing.assert_close(samples[1][k], samples[0][k], rtol=1e-6, atol=1e-6)
