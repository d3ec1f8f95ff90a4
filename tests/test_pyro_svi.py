"""tracejit.pyro's ELBOs in Pyro's SVI against Pyro's own, on tutorial models
(tests/pyro_models.py): a deterministic guide (AutoDelta) gives eager's losses and
parameters step for step; a random one the same expected loss and gradient and the
same posterior; every step draws afresh. Skipped without pyro-ppl."""
import math

import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")
import pyro.distributions as dist  # noqa: E402
from pyro.infer import SVI  # noqa: E402
from pyro.infer.autoguide import (AutoDelta, AutoDiagonalNormal,  # noqa: E402
                                  AutoMultivariateNormal, AutoNormal, init_to_feasible)

import tracejit  # noqa: E402
import tracejit.pyro as tjp  # noqa: E402
from pyro_models import cases  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _run(elbo, model, args, steps, optim=None, guide_cls=AutoDelta, seed=0):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = guide_cls(model, init_loc_fn=init_to_feasible)
    svi = SVI(model, guide, optim or pyro.optim.Adam({"lr": 0.05}), elbo)
    losses = [svi.step(*args) for _ in range(steps)]
    params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    return losses, params, guide


@pytest.mark.parametrize("name", ["logistic", "linear", "schools_centered",
                                  "schools_noncentered", "baseball", "bnn"])
@pytest.mark.parametrize("elbos", [(tjp.Trace_ELBO, pyro.infer.Trace_ELBO),
                                   (tjp.TraceMeanField_ELBO, pyro.infer.TraceMeanField_ELBO)],
                         ids=["Trace_ELBO", "TraceMeanField_ELBO"])
def test_a_deterministic_guide_takes_eagers_steps(name, elbos):
    """AutoDelta (MAP): no draws, so each step's loss and the parameters after 12 steps
    of Adam are Pyro eager's, to float32 rounding."""
    model, args = cases()[name]
    mine, eager = elbos
    l1, p1, _ = _run(eager(), model, args, 12)
    l2, p2, _ = _run(mine(), model, args, 12)
    assert p1.keys() == p2.keys()
    for a, b in zip(l1, l2):
        assert b == pytest.approx(a, rel=2e-5, abs=1e-4)
    for k in p1:
        torch.testing.assert_close(p2[k], p1[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("optim", [lambda: pyro.optim.SGD({"lr": 0.001}),
                                   lambda: pyro.optim.ClippedAdam({"lr": 0.05, "clip_norm": 1.0}),
                                   lambda: pyro.optim.RMSprop({"lr": 0.01})],
                         ids=["SGD", "ClippedAdam", "RMSprop"])
def test_pyros_optimizers_receive_eagers_gradients(optim):
    model, args = cases()["schools_centered"]
    l1, p1, _ = _run(pyro.infer.Trace_ELBO(), model, args, 8, optim())
    l2, p2, _ = _run(tjp.Trace_ELBO(), model, args, 8, optim())
    assert l2 == pytest.approx(l1, rel=2e-5, abs=1e-4)
    for k in p1:
        torch.testing.assert_close(p2[k], p1[k], rtol=1e-4, atol=1e-5)


def _moments(elbo, model, guide, args, n):
    """Mean and standard error of the loss and of each parameter's gradient over n
    calls of loss_and_grads at the same parameters."""
    store = pyro.get_param_store()
    rows = []
    for _ in range(n):
        for p in store._params.values():
            p.grad = None
        loss = elbo.loss_and_grads(model, guide, *args)
        rows.append(torch.cat([torch.tensor([loss])] + [
            (store._params[k].grad if store._params[k].grad is not None
             else torch.zeros_like(store._params[k])).reshape(-1) for k in sorted(store._params)]))
    x = torch.stack(rows).double()
    return x.mean(0), x.std(0) / math.sqrt(n)


@pytest.mark.parametrize("name,guide_cls", [("schools_noncentered", AutoNormal),
                                            ("baseball", AutoDiagonalNormal),
                                            ("logistic", AutoMultivariateNormal),
                                            ("bnn", AutoNormal), ("linear", AutoNormal)])
def test_the_expected_loss_and_gradient_are_pyros(name, guide_cls):
    """A reparameterized guide: loss and gradient are random; their means over 400
    calls agree with eager's within 5 standard errors, component by component (the
    draws are tracejit's Philox, not torch's stream, so equal only in distribution)."""
    model, args = cases()[name]
    pyro.set_rng_seed(0)
    guide = guide_cls(model)
    guide(*args)
    for p in pyro.get_param_store()._params.values():     # away from the initial point
        p.data.add_(0.1 * torch.randn_like(p))
    m1, s1 = _moments(pyro.infer.Trace_ELBO(), model, guide, args, 400)
    m2, s2 = _moments(tjp.Trace_ELBO(), model, guide, args, 400)
    z = (m1 - m2).abs() / (s1 ** 2 + s2 ** 2 + 1e-12).sqrt()
    assert z.max() < 5, (z, m1, m2)
    assert ((s2 > 0) == (s1 > 0)).all() and s2[0] > 0   # every step drew afresh


def test_svi_converges_to_the_exact_posterior_of_a_conjugate_model():
    """Linear regression with a known noise scale and a Normal prior: the posterior is
    Normal with known mean and covariance. Each autoguide trained with tracejit's ELBO
    finds its mean (the full-rank guide its covariance too)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    y = x @ torch.tensor([1.5, -0.5]) + 0.5 * torch.randn(40, generator=g)

    def model(x, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(x @ w, 0.5), obs=y)

    cov = torch.linalg.inv(x.T @ x / 0.25 + torch.eye(2))
    mean = cov @ x.T @ y / 0.25
    for guide_cls in (AutoNormal, AutoDiagonalNormal, AutoMultivariateNormal, AutoDelta):
        pyro.clear_param_store()
        pyro.set_rng_seed(1)
        guide = guide_cls(model)
        svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.998}),
                  tjp.Trace_ELBO())
        medians = []
        for i in range(1500):
            svi.step(x, y)
            if i >= 1000:
                medians.append(guide.median()["w"])
        torch.testing.assert_close(torch.stack(medians).mean(0), mean, atol=0.02, rtol=0,
                                   msg=guide_cls.__name__)
        if guide_cls is AutoMultivariateNormal:
            torch.testing.assert_close(guide.get_posterior().covariance_matrix, cov,
                                       atol=0.003, rtol=0.3)


@pytest.mark.parametrize("name", ["schools_centered", "schools_noncentered", "baseball",
                                  "logistic"])
def test_svi_with_autonormal_finds_eagers_posterior(name):
    """AutoNormal trained by each ELBO (Adam, 1000 steps): the average ELBO of the last
    300 steps, and the guide's medians of the global latents averaged over them, agree."""
    model, args = cases(width=8)[name]
    out = []
    for elbo in (pyro.infer.Trace_ELBO(), tjp.Trace_ELBO()):
        pyro.clear_param_store()
        pyro.set_rng_seed(2)
        guide = AutoNormal(model)
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.02}), elbo)
        losses, medians = [], []
        for i in range(1000):
            losses.append(svi.step(*args))
            if i >= 700:
                medians.append({k: v.detach().clone() for k, v in guide.median(*args).items()})
        out.append((sum(losses[700:]) / 300,
                    {k: torch.stack([m[k] for m in medians]).mean(0) for k in medians[0]}))
    (l1, m1), (l2, m2) = out
    assert l2 == pytest.approx(l1, rel=0.03, abs=1.0)
    for k in m1:
        if m1[k].numel() <= 2:      # the global latents
            torch.testing.assert_close(m2[k], m1[k], atol=0.15 * (1 + m1[k].abs().max()),
                                       rtol=0.1)


def test_each_step_draws_afresh_and_seeding_reproduces_a_run():
    model, args = cases()["schools_noncentered"]
    guide = AutoNormal(model)
    elbo = tjp.Trace_ELBO()
    losses = [elbo.loss_and_grads(model, guide, *args) for _ in range(4)]
    assert len(set(losses)) == 4
    pyro.set_rng_seed(7)
    a = [elbo.loss_and_grads(model, guide, *args) for _ in range(3)]
    pyro.set_rng_seed(7)
    assert [elbo.loss_and_grads(model, guide, *args) for _ in range(3)] == a
    assert elbo._tracejit.fn.cache_info().misses == 1
