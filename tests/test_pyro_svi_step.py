"""tracejit.pyro.SVI: guide, model, gradient and Adam's update as one compiled call,
against pyro.infer.SVI with Pyro's optimizer (the same losses and parameters for a
deterministic guide, the optimizer's state where Pyro keeps it), and Pyro's own step
wherever the compiled update would not be torch's. Skipped without pyro-ppl."""
import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")
import pyro.distributions as dist  # noqa: E402
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_feasible  # noqa: E402

import tracejit.pyro as tjp  # noqa: E402
from pyro_models import cases  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _train(svi_cls, model, args, steps, optim, elbo=None):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = AutoDelta(model, init_loc_fn=init_to_feasible)
    svi = svi_cls(model, guide, optim, elbo or tjp.Trace_ELBO())
    losses = [svi.step(*args) for _ in range(steps)]
    params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    svi.state = svi.optim.get_state()    # by parameter name: while the store holds them
    return svi, losses, params


@pytest.mark.parametrize("name", ["logistic", "linear", "schools_noncentered", "baseball",
                                  "bnn"])
def test_compiled_steps_are_pyros_steps(name):
    """AutoDelta and Adam: each step's loss, the parameters after 25 steps and Adam's
    state (step count, moments) are pyro.infer.SVI's with Pyro's optimizer, to float32
    rounding (the update is torch's operation for operation)."""
    model, args = cases()[name]
    optim = {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6}
    s1, l1, p1 = _train(pyro.infer.SVI, model, args, 25, pyro.optim.Adam(optim))
    s2, l2, p2 = _train(tjp.SVI, model, args, 25, pyro.optim.Adam(optim))
    assert s2._tracejit_step[1].cache_info().hits == 24           # the compiled path ran
    for a, b in zip(l1, l2):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-4)
    for k in p1:
        torch.testing.assert_close(p2[k], p1[k], rtol=1e-4, atol=1e-5)
    st1, st2 = s1.state, s2.state
    assert st1.keys() == st2.keys()
    for k in st1:
        for a, b in zip(st1[k]["state"].values(), st2[k]["state"].values()):
            for key in ("step", "exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in pyro.get_param_store()._params.values())


def test_a_learning_rate_change_and_eager_steps_in_between_continue_the_same_run():
    """The hyperparameters are part of the key (a new lr retraces), and the state lives
    in Pyro's optimizer: steps of pyro.infer.SVI in between continue from it."""
    model, args = cases()["logistic"]
    runs = []
    for cls in (pyro.infer.SVI, tjp.SVI):
        svi, _, _ = _train(cls, model, args, 5, pyro.optim.Adam({"lr": 0.05}))
        for opt in svi.optim.optim_objs.values():
            opt.param_groups[0]["lr"] = 0.01
        losses = [svi.step(*args) for _ in range(5)]
        eager = pyro.infer.SVI(svi.model, svi.guide, svi.optim, pyro.infer.Trace_ELBO())
        losses += [eager.step(*args) for _ in range(3)] + [svi.step(*args) for _ in range(3)]
        runs.append((losses, {k: v.detach().clone() for k, v in pyro.get_param_store().items()}))
    (l1, p1), (l2, p2) = runs
    assert l2 == pytest.approx(l1, rel=1e-5, abs=1e-4)
    for k in p1:
        torch.testing.assert_close(p2[k], p1[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("optim", [
    lambda: pyro.optim.Adam({"lr": 0.05, "weight_decay": 0.1}),
    lambda: pyro.optim.Adam({"lr": 0.05, "amsgrad": True}),
    lambda: pyro.optim.Adam({"lr": 0.05}, {"clip_norm": 0.5}),
    lambda: pyro.optim.ClippedAdam({"lr": 0.05}),
    lambda: pyro.optim.SGD({"lr": 0.001, "momentum": 0.9}),
], ids=["weight_decay", "amsgrad", "clip_norm", "ClippedAdam", "SGD"])
def test_other_optimizers_take_pyros_step(optim):
    model, args = cases()["schools_noncentered"]
    _, l1, p1 = _train(pyro.infer.SVI, model, args, 6, optim())
    svi, l2, p2 = _train(tjp.SVI, model, args, 6, optim())
    assert "_tracejit_step" not in svi.__dict__ or \
        svi._tracejit_step[1].cache_info().hits == 0
    assert l2 == pytest.approx(l1, rel=1e-5, abs=1e-4)
    for k in p1:
        torch.testing.assert_close(p2[k], p1[k], rtol=1e-4, atol=1e-5)


def test_an_eager_loss_takes_pyros_step():
    model, args = cases()["linear"]
    _, l1, p1 = _train(pyro.infer.SVI, model, args, 4, pyro.optim.Adam({"lr": 0.05}),
                       pyro.infer.Trace_ELBO())
    _, l2, p2 = _train(tjp.SVI, model, args, 4, pyro.optim.Adam({"lr": 0.05}),
                       pyro.infer.Trace_ELBO())
    assert l2 == l1
    for k in p1:
        torch.testing.assert_close(p2[k], p1[k], rtol=0, atol=0)


def test_a_random_guide_trains_to_the_exact_posterior():
    """AutoNormal on a conjugate Normal model: fresh draws at every compiled step, the
    guide's mean and scale converge to the exact posterior's."""
    y = torch.tensor([0.3, 1.1, 2.0, 0.7, 1.4])

    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
        with pyro.plate("d", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    post_var = 1 / (1 / 4 + 5)
    post_mean = post_var * float(y.sum())
    pyro.set_rng_seed(0)
    guide = AutoNormal(model)
    svi = tjp.SVI(model, guide, pyro.optim.Adam({"lr": 0.02}), tjp.Trace_ELBO())
    locs, scales = [], []
    for i in range(3000):
        svi.step(y)
        if i >= 2000:
            locs.append(pyro.param("AutoNormal.locs.mu").item())
            scales.append(pyro.param("AutoNormal.scales.mu").item())
    assert sum(locs) / len(locs) == pytest.approx(post_mean, abs=0.03)
    assert sum(scales) / len(scales) == pytest.approx(post_var ** 0.5, abs=0.03)
    assert svi._tracejit_step[1].cache_info().misses == 1
