"""tracejit.pyro.NUTS and HMC inside pyro.infer.MCMC: posterior moments against analytic
posteriors (normal-normal, Bayesian linear regression with known noise, diagonal and
dense mass matrices, float32 and float64), a second run with other data, eight schools
(non-centered) against Pyro's own NUTS, divergences reported, determinism under a seed,
the compiled transition replayed (one trace for every sample), and the refusals."""
import math

import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")

import pyro.distributions as dist  # noqa: E402
from pyro.infer import MCMC  # noqa: E402
from pyro.ops.stats import effective_sample_size  # noqa: E402

import tracejit  # noqa: E402
import tracejit.pyro as tjp  # noqa: E402
from tracejit import _nuts  # noqa: E402

import pyro_models as M  # noqa: E402


def normal_model(y):
    mu = pyro.sample("mu", dist.Normal(1.0, 2.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, 0.7), obs=y)


def normal_posterior(y):
    prec = 1 / 2.0 ** 2 + y.shape[0] / 0.7 ** 2
    mean = (1.0 / 2.0 ** 2 + y.sum() / 0.7 ** 2) / prec
    return mean.reshape(1), torch.tensor([1 / prec])


def blr_model(x, y):
    """Bayesian linear regression with known noise: a Gaussian posterior."""
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1], dtype=x.dtype), 2.0).to_event(1))
    b = pyro.sample("b", dist.Normal(torch.tensor(0.0, dtype=x.dtype), 3.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w + b, 0.5), obs=y)


def blr_posterior(x, y):
    """Mean and variances of (w, b)."""
    X = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1).double()
    prior_prec = torch.diag(torch.tensor([1 / 4.0] * x.shape[1] + [1 / 9.0], dtype=X.dtype))
    cov = torch.linalg.inv(X.T @ X / 0.25 + prior_prec)
    return cov @ X.T @ y.double() / 0.25, torch.diagonal(cov)


def run(kernel, *args, samples=500, warmup=300, seed=0):
    pyro.set_rng_seed(seed)
    mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True)
    mcmc.run(*args)
    return mcmc


def flat_samples(mcmc, names):
    s = mcmc.get_samples()
    return torch.cat([s[n].reshape(s[n].shape[0], -1) for n in names], 1).double()


def check_moments(samples, mean, var, k=5.0):
    """Posterior mean within k Monte-Carlo standard errors (by the chain's effective sample
    size), variance within k standard errors of a variance estimate."""
    n_eff = effective_sample_size(samples.unsqueeze(0)).clamp(min=20)
    m, v = samples.mean(0), samples.var(0)
    se_m = (var / n_eff).sqrt()
    assert ((m - mean).abs() <= k * se_m).all(), (m, mean, se_m, n_eff)
    se_v = var * (2 / n_eff).sqrt()
    assert ((v - var).abs() <= k * se_v).all(), (v, var, se_v, n_eff)


def transition_of(kernel):
    return kernel._tracejit_fn[1]


def sampling_calls(samples):
    """Compiled calls NUTS makes for `samples` after warmup (1, 2, 4, ... transitions a
    call, up to TRANSITIONS_PER_CALL), and the transitions they make."""
    calls = made = 0
    while made < samples:
        made += min(2 ** calls, tjp.NUTS.TRANSITIONS_PER_CALL)
        calls += 1
    return calls, made


# ---- analytic posteriors ---------------------------------------------------------------

def test_nuts_normal_normal_matches_analytic_posterior_and_second_data():
    y = torch.tensor([0.3, 1.9, 1.1, 2.4, 0.8, 1.5])
    kernel = tjp.NUTS(normal_model)
    mcmc = run(kernel, y)
    check_moments(flat_samples(mcmc, ["mu"]), *normal_posterior(y))
    fn = transition_of(kernel)
    # one call per warmup transition, several samples per call after it
    assert fn.cache_info().variants == 1
    assert fn.cache_info().hits + fn.cache_info().misses == 300 + sampling_calls(500)[0]
    # a second run with other data: the posterior moves with it
    y2 = y * 3 - 4.0
    pyro.set_rng_seed(1)
    mcmc.run(y2)
    check_moments(flat_samples(mcmc, ["mu"]), *normal_posterior(y2))
    assert abs(float(mcmc.get_samples()["mu"].mean()) - float(normal_posterior(y2)[0])) < 0.2


@pytest.mark.parametrize("full_mass", [False, True])
def test_nuts_bayesian_linear_regression_matches_analytic_posterior(full_mass):
    x, y = M.regression_data(40, 3, 5)
    mcmc = run(tjp.NUTS(blr_model, full_mass=full_mass), x, y)
    check_moments(flat_samples(mcmc, ["w", "b"]), *blr_posterior(x, y))
    assert mcmc.diagnostics()["divergences"] == {"chain 0": []}


def test_nuts_float64_model():
    x, y = M.regression_data(30, 2, 6)
    x, y = x.double(), y.double()
    kernel = tjp.NUTS(blr_model, target_accept_prob=0.9, max_tree_depth=6)
    mcmc = run(kernel, x, y)
    s = mcmc.get_samples()
    assert s["w"].dtype == torch.float64
    check_moments(flat_samples(mcmc, ["w", "b"]), *blr_posterior(x, y))


def test_hmc_bayesian_linear_regression_matches_analytic_posterior():
    x, y = M.regression_data(40, 2, 7)
    kernel = tjp.HMC(blr_model, trajectory_length=1.5)
    mcmc = run(kernel, x, y, samples=600)
    check_moments(flat_samples(mcmc, ["w", "b"]), *blr_posterior(x, y))
    # num_steps follows the adapted step size: one trace serves every value
    assert transition_of(kernel).cache_info().variants == 1
    assert 0.0 < mcmc.diagnostics()["acceptance rate"]["chain 0"] <= 1.0


def test_nuts_with_potential_fn_and_initial_params():
    mu, sd = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([1.0, 0.3, 2.0])

    def potential(p):
        return 0.5 * (((p["z"] - mu) / sd) ** 2).sum()
    kernel = tjp.NUTS(potential_fn=potential)
    pyro.set_rng_seed(3)
    mcmc = MCMC(kernel, num_samples=600, warmup_steps=300, disable_progbar=True,
                initial_params={"z": torch.zeros(3)})
    mcmc.run()
    check_moments(mcmc.get_samples()["z"].double(), mu.double(), sd.double() ** 2)


def test_samples_after_warmup_come_in_batches_of_transitions():
    """After warmup (nothing adapts) one compiled call makes 1, 2, 4, ... up to
    TRANSITIONS_PER_CALL transitions, handed out one per sample(); those not handed out
    when the run ends stay queued and a new run (setup) drops them. Each sample its own
    transition: distinct values, per-sample diagnostics."""
    y = torch.tensor([0.3, 1.9, 1.1, 2.4, 0.8, 1.5])
    kernel = tjp.NUTS(normal_model)
    mcmc = run(kernel, y, samples=37, warmup=100)
    info = transition_of(kernel).cache_info()
    calls, made = sampling_calls(37)
    assert (calls, made) == (6, 47)     # 1 + 2 + 4 + 8 + 16 + 16
    assert info.hits + info.misses == 100 + calls
    assert len(kernel._tracejit_queue) == made - 37
    mu = mcmc.get_samples()["mu"]
    assert mu.shape == (37,) and len(set(mu.tolist())) > 25
    assert 0.0 < mcmc.diagnostics()["acceptance rate"]["chain 0"] <= 1.0
    kernel.setup(0, y)
    assert kernel._tracejit_queue is None


@pytest.mark.parametrize("parallel", [False, True])
def test_several_chains(parallel, monkeypatch):
    """MCMC(num_chains=2): in sequence, or in parallel processes (Pyro's _MultiSampler,
    forked workers each replaying its own compiled transition; Pyro runs chains in
    parallel only where it counts more CPUs than chains, so the count is set here).
    Each chain samples the analytic posterior, the chains differ, summary's r_hat ~ 1."""
    import contextlib
    import pyro.infer.mcmc.api as api
    monkeypatch.setattr(api.mp, "cpu_count", lambda: 4 if parallel else 1)
    y = torch.tensor([0.3, 1.9, 1.1, 2.4, 0.8, 1.5])
    pyro.set_rng_seed(0)
    with (contextlib.nullcontext() if parallel else
          pytest.warns(UserWarning, match="Chains will be drawn sequentially")):
        mcmc = MCMC(tjp.NUTS(normal_model), num_samples=400, warmup_steps=300,
                    num_chains=2, disable_progbar=True)
    mcmc.run(y)
    assert (type(mcmc.sampler).__name__ == "_MultiSampler") == parallel
    chains = mcmc.get_samples(group_by_chain=True)["mu"]
    assert chains.shape == (2, 400) and not torch.equal(chains[0], chains[1])
    for c in chains:
        check_moments(c.double().unsqueeze(-1), *normal_posterior(y))
    assert abs(float(pyro.ops.stats.split_gelman_rubin(chains)) - 1.0) < 0.05


# ---- against Pyro's own NUTS -----------------------------------------------------------

def test_eight_schools_noncentered_matches_pyros_nuts():
    """Posterior means and sds of mu, log tau and eta against pyro.infer.NUTS (run on the
    same potential compiled, for speed: Pyro's algorithm, Pyro's draws)."""
    from pyro.infer.mcmc.util import initialize_model
    args = (M.SCHOOLS_SIGMA, M.SCHOOLS_Y)
    mcmc = run(tjp.NUTS(M.schools_noncentered), *args, samples=800, warmup=400)
    s = mcmc.get_samples()
    ours = torch.cat([s["mu"][:, None], s["tau"].log()[:, None], s["eta"]], 1).double()
    pyro.set_rng_seed(1)
    init, potential_fn, _, _ = initialize_model(M.schools_noncentered, model_args=args)
    ref = MCMC(pyro.infer.NUTS(potential_fn=tracejit.compile(potential_fn)),
               num_samples=800, warmup_steps=400, disable_progbar=True,
               initial_params=init)
    ref.run()
    r = ref.get_samples()
    theirs = torch.cat([r["mu"][:, None], r["tau"][:, None], r["eta"]], 1).double()
    n1 = effective_sample_size(ours.unsqueeze(0)).clamp(min=20)
    n2 = effective_sample_size(theirs.unsqueeze(0)).clamp(min=20)
    var = 0.5 * (ours.var(0) + theirs.var(0))
    se = (var / n1 + var / n2).sqrt()
    assert ((ours.mean(0) - theirs.mean(0)).abs() <= 5 * se).all(), (ours.mean(0), theirs.mean(0))
    ratio = ours.std(0) / theirs.std(0)
    assert ((ratio > 0.75) & (ratio < 1.33)).all(), ratio
    assert abs(float(s["mu"].mean()) - 4.4) < 1.0      # the known posterior mean of mu


# ---- divergences, determinism, diagnostics ---------------------------------------------

@pytest.mark.parametrize("cls", [tjp.NUTS, tjp.HMC])
def test_divergences_are_reported(cls, capsys):
    """A step size far too large for a narrow posterior: every transition diverges (the
    energy error is huge), the chain stays put, and MCMC reports each divergence."""
    y = torch.full((50,), 3.0)

    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 0.01), obs=y)
    kw = dict(num_steps=3) if cls is tjp.HMC else {}
    mcmc = run(cls(model, step_size=5.0, adapt_step_size=False, **kw), y, samples=30, warmup=5)
    div = mcmc.diagnostics()["divergences"]["chain 0"]
    assert div == list(range(30))
    assert len(set(mcmc.get_samples()["mu"].tolist())) == 1
    mcmc.summary()
    assert "Number of divergences: 30" in capsys.readouterr().out


def test_same_seed_same_chain_other_seed_other_chain():
    y = torch.tensor([0.3, 1.9, 1.1])
    a = run(tjp.NUTS(normal_model), y, samples=50, warmup=20, seed=5).get_samples()["mu"]
    b = run(tjp.NUTS(normal_model), y, samples=50, warmup=20, seed=5).get_samples()["mu"]
    c = run(tjp.NUTS(normal_model), y, samples=50, warmup=20, seed=6).get_samples()["mu"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_summary_and_diagnostics(capsys):
    x, y = M.regression_data(30, 2, 8)
    mcmc = run(tjp.NUTS(M.linear), x, y, samples=200, warmup=200)
    mcmc.summary()
    out = capsys.readouterr().out
    for name in ("w[0]", "w[1]", "b", "sigma", "n_eff", "r_hat"):
        assert name in out
    d = mcmc.diagnostics()
    assert d["divergences"] == {"chain 0": []}
    assert 0.0 < d["acceptance rate"]["chain 0"] <= 1.0
    assert d["sigma"]["r_hat"] < 1.1


# ---- the algorithm's pieces and the refusals -------------------------------------------

def _ckpt_idxs_loop(n):
    """NumPyro's definition: idx_max = ones of n >> 1, idx_min = idx_max + 1 - trailing
    ones of n."""
    idx_max, m = 0, n >> 1
    while m > 0:
        idx_max, m = idx_max + (m & 1), m >> 1
    trailing, m = 0, n
    while m & 1:
        trailing, m = trailing + 1, m >> 1
    return idx_max - trailing + 1, idx_max


def test_checkpoint_indices_match_their_definition():
    leaves = torch.arange(512)
    lo, hi = _nuts._ckpt_range(leaves, 10)
    want = [_ckpt_idxs_loop(n) for n in range(512)]
    assert lo.tolist() == [w[0] for w in want] and hi.tolist() == [w[1] for w in want]


def test_slice_sampling_nuts_is_refused():
    with pytest.raises(ValueError, match="compiles multinomial NUTS only; "
                       "use_multinomial_sampling=False is pyro.infer.NUTS's"):
        tjp.NUTS(normal_model, use_multinomial_sampling=False)


def test_other_mass_matrix_adapter_runs_pyros_sample_with_a_warning():
    from pyro.infer.mcmc.adaptation import ArrowheadMassMatrix
    y = torch.tensor([0.3, 1.9, 1.1])
    kernel = tjp.NUTS(normal_model)
    kernel.mass_matrix_adapter = ArrowheadMassMatrix()
    with pytest.warns(RuntimeWarning, match="the mass matrix adapter ArrowheadMassMatrix "
                      "runs Pyro's own sample"):
        mcmc = run(kernel, y, samples=20, warmup=10)
    assert math.isfinite(float(mcmc.get_samples()["mu"].mean()))


# ---- checks the model makes inside the trajectory ------------------------------------

def test_a_failing_distribution_check_inside_the_trajectory_raises_as_pyros():
    """A distribution built with validate_args=True validates even with Pyro's validation
    off: eager Pyro raises at the leapfrog step that leaves the support; the compiled
    trajectory carries the check out of its loop and raises the same ValueError."""
    def potential(p):
        return -dist.HalfNormal(torch.tensor(1.0), validate_args=True).log_prob(p["z"]).sum()
    for cls in (pyro.infer.NUTS, tjp.NUTS):
        pyro.set_rng_seed(0)
        mcmc = MCMC(cls(potential_fn=potential, step_size=2.0, adapt_step_size=False),
                    num_samples=20, warmup_steps=0, disable_progbar=True,
                    initial_params={"z": torch.tensor([0.3])})
        with pytest.raises(ValueError, match=r"support \(GreaterThanEq\(lower_bound=0.0\)\)"
                           if cls is pyro.infer.NUTS else
                           r"within the support .* \(at a step of the compiled trajectory\)"):
            mcmc.run()


def test_checks_that_hold_inside_the_trajectory_cost_nothing_of_the_posterior():
    """Priors built with validate_args=True (as a PyroModule's PyroSample priors built while
    validation is on): their checks run at every leapfrog step and hold."""
    prior = dist.Normal(torch.tensor(1.0), torch.tensor(2.0), validate_args=True)

    def model(y):
        mu = pyro.sample("mu", prior)
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 0.7, validate_args=True), obs=y)
    y = torch.tensor([0.3, 1.9, 1.1, 2.4, 0.8, 1.5])
    mcmc = run(tjp.NUTS(model), y)
    check_moments(flat_samples(mcmc, ["mu"]), *normal_posterior(y))


@pytest.mark.parametrize("room", [0, 1, 32])
def test_checks_beyond_the_carrys_room_trace_the_body_again(room, monkeypatch):
    """Three checks per step: with room for fewer the body is traced a second time with
    room for them (the checks still raise where eager's do, hold where they hold); with
    room for more, once."""
    from tracejit import _C
    traced = []

    def body(x):
        traced.append(1)
        for bound in (2.0, 3.0, 4.0):
            _C._check(x < bound, f"x below {bound}")
        return x + 1.0

    def run_to(stop):
        return _nuts._while_checked(lambda x: x < stop, body, torch.tensor(0.0), room=room)
    f = tracejit.compile(run_to)
    assert float(f(torch.tensor(1.5))) == 2.0
    assert len(traced) == (2 if room < 3 else 1)
    with pytest.raises(ValueError, match=r"x below 2.0 \(at a step of the compiled trajectory\)"):
        f(torch.tensor(2.5))     # the step from x = 2 fails x < 2 (x < 3 and x < 4 hold)
    assert float(f(torch.tensor(0.5))) == 1.0


def test_pyros_own_potential_calls_are_eager_then_compiled(monkeypatch):
    """Pyro's calls of the potential outside the trajectory (setup,
    find_reasonable_step_size) are Pyro's eager potential for the first EAGER_CALLS,
    then the compiled potential: the same values and gradients either way."""
    from pyro.ops.integrator import potential_grad
    from tracejit._pyro_mcmc import _TieredPotential
    monkeypatch.setattr(_TieredPotential, "EAGER_CALLS", 2)
    x, y = M.regression_data(30, 3, 0)
    kernel = tjp.NUTS(blr_model)
    kernel.setup(0, x, y)
    pot = kernel.potential_fn
    assert isinstance(pot, _TieredPotential) and pot.compiled is not None   # setup's calls
    eager = kernel._tracejit_pyro_potential
    z = {k: v.detach() + 0.1 for k, v in kernel.initial_params.items()}
    for _ in range(3):
        g, pe = potential_grad(pot, z)
        g0, pe0 = potential_grad(eager, z)
        assert torch.allclose(pe, pe0, rtol=1e-5)
        for k in g0:
            assert torch.allclose(g[k], g0[k], rtol=1e-4, atol=1e-5), k
    fresh = _TieredPotential(eager)
    for _ in range(2):
        potential_grad(fresh, z)
    assert fresh.compiled is None and fresh.calls == 2
    potential_grad(fresh, z)
    assert fresh.compiled is not None


@pytest.mark.parametrize("name", ["logistic", "schools_centered", "baseball", "bnn"])
def test_tutorial_models_sample(name):
    """Pyro's tutorial-style models (a PyroModule BNN, Beta/Pareto/Binomial, HalfCauchy)
    run through the compiled NUTS: finite samples of every site, Pyro's summary."""
    model, args = M.cases(n=40, width=5)[name]
    mcmc = run(tjp.NUTS(model), *args, samples=30, warmup=30)
    for site, v in mcmc.get_samples().items():
        assert v.shape[0] == 30 and torch.isfinite(v).all(), site


def test_float32_sites_with_a_float64_likelihood():
    """Sites drawn in float32 (Python-float priors), data in float64: the potential is
    float64; the chain stays in the sites' dtype (Pyro's own promotes z to float64 at
    its first leapfrog step, through its float64 mass matrix)."""
    y = torch.tensor([0.3, 1.9, 1.1, 2.4, 0.8, 1.5], dtype=torch.float64)
    mcmc = run(tjp.NUTS(normal_model), y)
    assert mcmc.get_samples()["mu"].dtype == torch.float32
    check_moments(flat_samples(mcmc, ["mu"]), *normal_posterior(y))


# ---- trajectory lengths ------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 3, 5])
def test_nuts_stops_at_max_tree_depth(depth):
    """A step size so small the trajectory never turns: every transition doubles
    max_tree_depth times, 2**depth - 1 leapfrog steps."""
    y = torch.tensor([0.3, 1.9, 1.1])
    kernel = tjp.NUTS(normal_model, step_size=1e-5, adapt_step_size=False,
                      max_tree_depth=depth)
    run(kernel, y, samples=10, warmup=0)
    assert kernel.num_leapfrog_steps == 10 * (2 ** depth - 1)


def test_nuts_stops_at_the_u_turn():
    """A standard normal with unit mass and step size h: the trajectory is an oscillation
    of period 2 pi / h steps; the U-turn ends the doubling within a period (trees of 2**k
    steps from a random phase: an eighth to one period on average), far below
    max_tree_depth's 1023."""
    def potential(p):
        return 0.5 * (p["z"] ** 2).sum()
    kernel = tjp.NUTS(potential_fn=potential, step_size=0.05, adapt_step_size=False,
                      adapt_mass_matrix=False)
    pyro.set_rng_seed(2)
    MCMC(kernel, num_samples=50, warmup_steps=0, disable_progbar=True,
         initial_params={"z": torch.tensor([0.5])}).run()
    per = kernel.num_leapfrog_steps / 50
    assert 2 * math.pi / 0.05 / 8 <= per <= 2 * math.pi / 0.05, per


def test_hmc_takes_num_steps():
    y = torch.tensor([0.3, 1.9, 1.1])
    kernel = tjp.HMC(normal_model, step_size=0.1, num_steps=7, adapt_step_size=False)
    run(kernel, y, samples=12, warmup=0)
    assert kernel.num_leapfrog_steps == 12 * 7
