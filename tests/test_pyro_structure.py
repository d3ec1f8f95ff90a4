"""tracejit.pyro's ELBOs when the model's structure changes (a new trace, never a stale
one), with subsampling plates and vectorized particles, with Pyro's settings and
handlers, and the errors for what cannot be compiled (naming the operation and the
user's line). Skipped without pyro-ppl."""
import warnings

import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")
import pyro.distributions as dist  # noqa: E402
from pyro import poutine  # noqa: E402
from pyro.infer import SVI  # noqa: E402
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_feasible  # noqa: E402

import tracejit  # noqa: E402
import tracejit.pyro as tjp  # noqa: E402
from pyro_models import cases  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_store():
    pyro.clear_param_store()
    was = pyro.poutine.util.is_validation_enabled()
    yield
    pyro.enable_validation(was)
    pyro.clear_param_store()


def _both(model, guide, args, kwargs=None, **elbo_kwargs):
    """(eager loss, tracejit loss) and their gradients at the param store's values."""
    kwargs = kwargs or {}
    out = []
    for elbo in (pyro.infer.Trace_ELBO(**elbo_kwargs), tjp.Trace_ELBO(**elbo_kwargs)):
        for p in pyro.get_param_store()._params.values():
            p.grad = None
        loss = elbo.loss_and_grads(model, guide, *args, **kwargs)
        out.append((loss, {k: None if p.grad is None else p.grad.clone()
                           for k, p in pyro.get_param_store()._params.items()}))
    return out


def _same(a, b):
    (l1, g1), (l2, g2) = a, b
    assert l2 == pytest.approx(l1, rel=1e-5, abs=1e-4)
    assert g1.keys() == g2.keys()
    for k in g1:
        assert (g1[k] is None) == (g2[k] is None), k
        if g1[k] is not None:
            torch.testing.assert_close(g2[k], g1[k], rtol=1e-4, atol=1e-5)


USE_OFFSET = [False]


def flagged(x, y):
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1]), 1.0).to_event(1))
    mean = x @ w
    if USE_OFFSET[0]:                   # Python state the structure depends on
        mean = mean + pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(mean, 1.0), obs=y)


def test_a_structure_change_retraces_and_adds_its_parameters():
    """A global flag adds a latent site (and its guide parameter): the next step
    retraces with the new parameter as an input; switching back uses the first plan,
    and steps that no longer reach a parameter leave it alone, as eager does."""
    x, y = torch.randn(20, 3), torch.randn(20)
    guide = AutoDelta(flagged, init_loc_fn=init_to_feasible)
    elbo = tjp.Trace_ELBO()
    USE_OFFSET[0] = False
    try:
        _same(*_both(flagged, guide, (x, y)))
        assert elbo.loss_and_grads(flagged, guide, x, y) is not None
        USE_OFFSET[0] = True
        guide = AutoDelta(flagged, init_loc_fn=init_to_feasible)   # a guide for the new model
        pyro.clear_param_store()
        _same(*_both(flagged, guide, (x, y)))
        before = elbo._tracejit.fn.cache_info().misses
        elbo.loss_and_grads(flagged, guide, x, y)
        assert elbo._tracejit.fn.cache_info().misses == before + 1
        assert "AutoDelta.b" in elbo._tracejit.names[(flagged, guide)]
        USE_OFFSET[0] = False              # b unreached: no gradient for it, as eager
        with warnings.catch_warnings():    # Pyro's: b is in the guide, not the model
            warnings.simplefilter("ignore", UserWarning)
            _same(*_both(flagged, guide, (x, y)))
    finally:
        USE_OFFSET[0] = False


EXTRA = [False]


def test_a_parameter_first_reached_by_a_later_step_is_found_and_becomes_an_input():
    """The guide reaches a new pyro.param once a flag is set: the trace meets a
    parameter its inputs lack, guide and model run eagerly once to create it, and the
    step retraces with it as an input (its gradient is eager's)."""
    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 3.0))
        with pyro.plate("d", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    def guide(y):
        loc = pyro.param("loc", torch.tensor(0.5))
        if EXTRA[0]:
            loc = loc + pyro.param("shift", torch.tensor(0.25))
        pyro.sample("mu", dist.Delta(loc))

    y = torch.tensor([1.0, 2.0, 0.5])
    elbo = tjp.Trace_ELBO()
    try:
        elbo.loss_and_grads(model, guide, y)
        assert elbo._tracejit.names[(model, guide)] == ("loc",)
        EXTRA[0] = True
        for p in pyro.get_param_store()._params.values():
            p.grad = None
        mine = elbo.loss_and_grads(model, guide, y)     # creates shift, as eager would
        assert elbo._tracejit.names[(model, guide)] == ("loc", "shift")
        info = elbo._tracejit.fn.cache_info()    # EXTRA's guard, then the new input
        assert info.misses == 3 and "'shift'" in info.last_retrace
        store = pyro.get_param_store()._params
        grads = {k: p.grad.clone() for k, p in store.items()}
        for p in store.values():
            p.grad = None
        assert pyro.infer.Trace_ELBO().loss_and_grads(model, guide, y) == pytest.approx(mine)
        for k, p in store.items():
            torch.testing.assert_close(grads[k], p.grad)
    finally:
        EXTRA[0] = False


NOISE = {"scale": 1.0}


def _noise():                       # a helper the model calls: its reads are reached too
    return NOISE["scale"]


def test_python_state_the_model_reads_is_guarded():
    """The model reads a global dict through a helper and a closure's attribute: each
    change retraces (the reason names it) and the loss is eager's, never a stale one."""
    class Cfg:
        shift = 0.0
    cfg = Cfg()

    def model(x, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1]), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(x @ w + cfg.shift, _noise()), obs=y)

    x, y = torch.randn(20, 3), torch.randn(20)
    guide = AutoDelta(model, init_loc_fn=init_to_feasible)
    elbo = tjp.Trace_ELBO()
    try:
        for scale, shift, why in ((1.0, 0.0, None), (2.0, 0.0, "NOISE"), (2.0, 0.5, "shift"),
                                  (1.0, 0.0, None)):     # back to the first variant
            NOISE["scale"], cfg.shift = scale, shift
            _same(*_both(model, guide, (x, y)))
            mine = elbo.loss_and_grads(model, guide, x, y)
            assert mine == pytest.approx(pyro.infer.Trace_ELBO().loss_and_grads(
                model, guide, x, y), rel=1e-5)
            if why:
                assert why in elbo._tracejit.fn.cache_info().last_retrace
        assert elbo._tracejit.fn.cache_info().misses == 3
    finally:
        NOISE["scale"] = 1.0


def test_new_data_shapes_particles_and_settings_each_get_their_own_trace():
    model, args = cases()["logistic"]
    guide = AutoDelta(model, init_loc_fn=init_to_feasible)
    elbo = tjp.Trace_ELBO()
    elbo.loss_and_grads(model, guide, *args)
    info = elbo._tracejit.fn.cache_info
    assert info().misses == 1
    x, y = args
    _same(*_both(model, guide, (x[:7], y[:7])))           # a new shape: a new variant
    elbo.loss_and_grads(model, guide, x[:7], y[:7])
    assert info().misses == 2
    elbo.num_particles = 3                                 # read while tracing: guarded
    elbo.loss_and_grads(model, guide, *args)
    assert info().misses == 3
    _same(*_both(model, guide, args, num_particles=3))
    pyro.enable_validation(not pyro.poutine.util.is_validation_enabled())
    elbo.loss_and_grads(model, guide, *args)
    assert info().misses == 4 and "static value" in info().last_retrace


def test_turning_validation_on_checks_what_eager_checks():
    """Pyro's validation read while tracing is part of the key: turned on after a trace
    made without it, a value outside the support raises as eagerly."""
    def model(y):
        p = pyro.sample("p", dist.Beta(2.0, 2.0))
        with pyro.plate("d", y.shape[0]):
            pyro.sample("y", dist.Bernoulli(p), obs=y)

    y = torch.tensor([0.0, 1.0, 0.5])
    guide = AutoDelta(model)
    elbo = tjp.Trace_ELBO()
    pyro.enable_validation(False)
    assert elbo.loss_and_grads(model, guide, y) == pytest.approx(
        pyro.infer.Trace_ELBO().loss_and_grads(model, guide, y), rel=1e-5)
    pyro.enable_validation(True)
    with pytest.raises(ValueError, match="support"):
        pyro.infer.Trace_ELBO().loss_and_grads(model, guide, y)
    with pytest.raises(ValueError, match=r"support \(Boolean\(\)\) of the distribution Bernoulli"):
        elbo.loss_and_grads(model, guide, y)


def test_subsampling_plates_draw_fresh_indices_and_scale_as_eager():
    """pyro.plate(..., subsample_size=) draws its indices inside the trace (randperm):
    the loss of a deterministic guide then varies call to call, its mean is eager's
    (the full data's likelihood, scaled), and SVI finds the full-data MAP."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 2, generator=g)
    y = x @ torch.tensor([1.0, -1.0]) + 0.1 * torch.randn(60, generator=g)

    def model(x, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(2), 10.0).to_event(1))
        with pyro.plate("data", x.shape[0], subsample_size=15) as i:
            pyro.sample("y", dist.Normal(x[i] @ w, 0.1), obs=y[i])

    guide = AutoDelta(model, init_loc_fn=init_to_feasible)
    elbo = tjp.Trace_ELBO()
    mine = torch.tensor([elbo.loss_and_grads(model, guide, x, y) for _ in range(300)])
    eager = torch.tensor([pyro.infer.Trace_ELBO().loss_and_grads(model, guide, x, y)
                          for _ in range(300)])
    assert len(set(mine.tolist())) > 250
    se = (mine.var() / 300 + eager.var() / 300).sqrt()
    assert (mine.mean() - eager.mean()).abs() < 5 * se
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.995}), elbo)
    for _ in range(800):
        svi.step(x, y)
    full = torch.linalg.solve(x.T @ x + 0.01 * torch.eye(2) / 100, x.T @ y)
    torch.testing.assert_close(guide.median()["w"], full, atol=0.03, rtol=0)


def test_vectorized_particles_are_eagers():
    """num_particles with vectorize_particles=True: one trace over a particle plate."""
    model, args = cases()["schools_noncentered"]
    guide = AutoDelta(model, init_loc_fn=init_to_feasible)
    _same(*_both(model, guide, args, num_particles=4, vectorize_particles=True,
                 max_plate_nesting=1))


def test_handlers_around_the_loss_run_eagerly_with_a_warning():
    """poutine.scale around svi.step scales eager's loss; the compiled loss, which runs
    guide and model under its own handlers, hands such a call to Pyro's own."""
    model, args = cases()["schools_noncentered"]
    guide = AutoDelta(model, init_loc_fn=init_to_feasible)
    elbo = tjp.Trace_ELBO()
    plain = elbo.loss_and_grads(model, guide, *args)
    with poutine.scale(scale=2.0):
        with pytest.warns(RuntimeWarning, match=r"inside Pyro handlers \(ScaleMessenger\)"):
            scaled = elbo.loss_and_grads(model, guide, *args)
        with poutine.scale(scale=1.0):
            with warnings.catch_warnings():
                warnings.simplefilter("error")     # once per ELBO
                elbo.loss_and_grads(model, guide, *args)
    assert scaled == pytest.approx(2 * plain, rel=1e-5)


def test_a_branch_on_a_draw_is_refused_at_the_users_line():
    def model():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        loc = pyro.param("loc", torch.tensor(0.0))
        z = pyro.sample("z", dist.Normal(loc, 1.0))
        if z > 0:                                  # the line named
            pyro.factor("f", z)

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), tjp.Trace_ELBO())
    with pytest.raises(tracejit.TraceError,
                       match=r"random draws cannot steer Python(.|\n)*"
                             r"test_pyro_structure.py:\d+, in guide\n *if z > 0:"):
        svi.step()


def test_a_draw_tracejit_cannot_make_is_refused_naming_it_and_the_users_line():
    """A guide drawing what tracejit has no sampler for (rrelu's noise in training) is
    refused with the operation and the guide's line, not a line inside Pyro."""
    def model():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        a = pyro.param("a", torch.tensor(2.0), constraint=dist.constraints.positive)
        pyro.sample("z", dist.Normal(torch.rrelu(a, training=True), a))

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), tjp.Trace_ELBO())
    with pytest.raises(tracejit.TraceError,
                       match=r"torch\.rrelu\(\) in training mode draws(.|\n)*"
                             r"test_pyro_structure.py:\d+, in guide\n *pyro.sample\(\"z\", "
                             r"dist.Normal\(torch.rrelu"):
        svi.step()


def test_a_gamma_guide_compiles_and_learns_its_posterior():
    """A Gamma guide (rsample through torch._standard_gamma and its implicit
    reparameterization gradient): the conjugate Gamma-Poisson posterior, Gamma(2 +
    sum(x), 1 + n), reached by compiled SVI."""
    data = torch.tensor([3.0, 5.0, 4.0, 6.0, 2.0, 4.0, 5.0, 3.0])

    def model(x):
        rate = pyro.sample("rate", dist.Gamma(2.0, 1.0))
        with pyro.plate("n", len(x)):
            pyro.sample("x", dist.Poisson(rate), obs=x)

    def guide(x):
        a = pyro.param("a", torch.tensor(5.0), constraint=dist.constraints.positive)
        b = pyro.param("b", torch.tensor(2.0), constraint=dist.constraints.positive)
        pyro.sample("rate", dist.Gamma(a, b))

    pyro.set_rng_seed(0)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), tjp.Trace_ELBO(num_particles=8,
                                                                          vectorize_particles=True))
    means = []
    for i in range(2000):
        svi.step(data)
        if i >= 1000:
            means.append(pyro.param("a").item() / pyro.param("b").item())
    # SVI's noise at this step size: eager Pyro's mean wanders a few percent too
    assert sum(means) / len(means) == pytest.approx((2 + data.sum().item()) / (1 + len(data)),
                                                    rel=0.07)
    assert pyro.param("a").item() == pytest.approx(2 + data.sum().item(), rel=0.35)


def test_a_score_function_guide_learns_a_discrete_posterior():
    """A Bernoulli guide (not reparameterizable): Trace_ELBO's score-function term,
    computed in the trace, drives its probability to the exact posterior's."""
    def model():
        z = pyro.sample("z", dist.Bernoulli(0.4))
        pyro.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(0.8))

    def guide():
        p = pyro.param("p", torch.tensor(0.3), constraint=dist.constraints.unit_interval)
        pyro.sample("z", dist.Bernoulli(p))

    like = torch.distributions.Normal(torch.tensor([0.0, 2.0]), 1.0).log_prob(
        torch.tensor(0.8)).exp() * torch.tensor([0.6, 0.4])
    exact = float(like[1] / like.sum())
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.02, "lrd": 0.999}),
              tjp.Trace_ELBO(num_particles=4))
    ps = []
    for i in range(1500):
        svi.step()
        if i >= 1000:
            ps.append(pyro.param("p").item())
    assert sum(ps) / len(ps) == pytest.approx(exact, abs=0.05)


def test_pyro_param_statements_in_model_and_guide_are_inputs():
    """Plain pyro.param (with constraints) in both model and guide, and a PyroModule's
    nn.Parameter: each is an input of the trace, so an optimizer step (or an assignment)
    is seen at the next call without a retrace."""
    def model(y):
        s = pyro.param("s", torch.tensor(1.0), constraint=dist.constraints.positive)
        mu = pyro.sample("mu", dist.Normal(0.0, 3.0))
        with pyro.plate("d", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, s), obs=y)

    def guide(y):
        loc = pyro.param("loc", torch.tensor(0.0))
        scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
        pyro.sample("mu", dist.Delta(loc))
        return scale

    y = torch.tensor([1.0, 2.0, 0.5])
    elbo = tjp.Trace_ELBO()
    guide(y)
    for v in (0.0, 1.5, -2.0):
        pyro.get_param_store()._params["loc"].data.fill_(v)
        _same(*_both(model, guide, (y,)))
        elbo.loss_and_grads(model, guide, y)
    assert elbo._tracejit.fn.cache_info().misses == 1


def test_trace_enum_elbo_sums_out_a_mixtures_assignments_as_eager():
    """TraceEnum_ELBO on a Gaussian mixture whose assignments are enumerated in parallel:
    Pyro's dice ELBO (its packed tensors, logsumexp contractions) in the trace; with a
    MAP guide the losses and parameters of 10 SVI steps are eager's."""
    from pyro.infer import config_enumerate
    data = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0])

    @config_enumerate
    def model(data):
        weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(2)))
        scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
        with pyro.plate("components", 2):
            locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(data)):
            assignment = pyro.sample("assignment", dist.Categorical(weights))
            pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)

    runs = []
    for svi_cls, elbo in ((SVI, pyro.infer.TraceEnum_ELBO(max_plate_nesting=1)),
                          (SVI, tjp.TraceEnum_ELBO(max_plate_nesting=1)),
                          (tjp.SVI, tjp.TraceEnum_ELBO(max_plate_nesting=1))):
        pyro.clear_param_store()
        guide = AutoDelta(poutine.block(model, expose=["weights", "locs", "scale"]),
                          init_loc_fn=lambda site: {"weights": torch.tensor([0.4, 0.6]),
                                                    "scale": torch.tensor(2.0),
                                                    "locs": torch.tensor([1.0, 9.0])}[
                                                        site["name"]])
        svi = svi_cls(model, guide, pyro.optim.Adam({"lr": 0.1}), elbo)
        losses = [svi.step(data) for _ in range(10)]
        runs.append((losses, {k: v.detach().clone()
                              for k, v in pyro.get_param_store().items()}))
    assert svi._tracejit_step[1].cache_info().hits == 9       # tracejit.pyro.SVI's own
    (l1, p1) = runs[0]
    for l2, p2 in runs[1:]:
        assert l2 == pytest.approx(l1, rel=1e-5, abs=1e-4)
        for k in p1:
            torch.testing.assert_close(p2[k], p1[k], rtol=1e-4, atol=1e-5)


def test_local_latents_in_a_subsampled_plate_with_autonormal():
    """AutoNormal's local parameters inside a subsampled plate: Pyro subsamples them
    (param.unconstrained(), marks on the values, all traced); the expected loss is
    eager's and the global latent's posterior is found."""
    g = torch.Generator().manual_seed(0)
    x = 3.0 + torch.randn(40, generator=g)

    def model(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
        with pyro.plate("data", x.shape[0], subsample_size=10) as i:
            z = pyro.sample("z", dist.Normal(mu, 1.0))
            pyro.sample("x", dist.Normal(z, 0.5), obs=x[i])

    pyro.set_rng_seed(0)
    guide = AutoNormal(model)
    elbo = tjp.Trace_ELBO()
    mine = torch.tensor([elbo.loss_and_grads(model, guide, x) for _ in range(300)])
    eager = torch.tensor([pyro.infer.Trace_ELBO().loss_and_grads(model, guide, x)
                          for _ in range(300)])
    se = (mine.var() / 300 + eager.var() / 300).sqrt()
    assert (mine.mean() - eager.mean()).abs() < 5 * se
    # the plate marks the local parameters with its indices, as eagerly (DCTAdam reads
    # them): the same dims, 10 distinct indices of this step
    store = pyro.get_param_store()._params
    eager_marks = {k: dict(p._pyro_subsample) for k, p in store.items()
                   if hasattr(p, "_pyro_subsample")}
    for p in store.values():
        p.__dict__.pop("_pyro_subsample", None)
    elbo.loss_and_grads(model, guide, x)
    marks = {k: dict(p._pyro_subsample) for k, p in store.items()
             if hasattr(p, "_pyro_subsample")}
    assert marks.keys() == eager_marks.keys() and marks
    for k in marks:
        assert marks[k].keys() == eager_marks[k].keys()
        for i in marks[k].values():
            assert i.dtype == torch.int64 and i.shape == (10,) and len(set(i.tolist())) == 10
            assert 0 <= i.min() and i.max() < 40
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.998}), elbo)
    for _ in range(1500):
        svi.step(x)
    # mu's posterior: x_i ~ N(mu, 1 + 0.25) marginally, prior N(0, 25)
    post_mean = float(x.sum() / 1.25) / (40 / 1.25 + 1 / 25)
    assert guide.median(x)["mu"].item() == pytest.approx(post_mean, abs=0.15)
