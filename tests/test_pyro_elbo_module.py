"""Pyro's ELBO as a torch Module (`Trace_ELBO()(model, guide)`, pyro/examples/svi_torch.py)
compiled with plain tracejit.compile and trained with a torch optimizer, as a user
would: the loss Pyro returns adds up `torch_item` values of draws that are fresh at
every call (`loss + (surrogate - torch_item(surrogate))`), which tracejit keeps in the
graph as Python numbers (_torch_dists._torch_item). Skipped without pyro-ppl."""
import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")
import pyro.distributions as dist  # noqa: E402
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO  # noqa: E402
from pyro.infer.autoguide import AutoNormal  # noqa: E402
from pyro.nn import PyroModule  # noqa: E402

import tracejit  # noqa: E402
from tracejit import _C  # noqa: E402


@pytest.fixture(autouse=True)
def local_params():
    old = pyro.settings.get("module_local_params")
    pyro.settings.set(module_local_params=True)
    pyro.clear_param_store()
    yield
    pyro.settings.set(module_local_params=old)
    pyro.clear_param_store()


class Regression(PyroModule):
    """pyro/examples/svi_torch.py's model: latent coefficient, bias and scale."""

    def __init__(self, size):
        super().__init__()
        self.size = size
        self.register_buffer("zero", torch.tensor(0.0))

    def forward(self, covariates, data=None):
        coeff = pyro.sample("coeff", dist.Normal(self.zero, 1))
        bias = pyro.sample("bias", dist.Normal(self.zero, 1))
        scale = pyro.sample("scale", dist.LogNormal(self.zero, 1))
        with pyro.plate("data", self.size, len(covariates)):
            loc = bias + coeff * covariates
            return pyro.sample("obs", dist.Normal(loc, scale), obs=data)


class Observed(PyroModule):
    """Every site observed: the loss is deterministic (-log p(data)), so compiled and
    eager must agree value for value."""

    def __init__(self):
        super().__init__()
        self.loc = torch.nn.Parameter(torch.tensor(0.3))
        self.raw = torch.nn.Parameter(torch.tensor(-0.2))

    def forward(self, x, y=None):
        with pyro.plate("d", len(x)):
            return pyro.sample("obs", dist.Normal(self.loc + x, self.raw.exp()), obs=y)


def empty_guide(x, y=None):
    pass


@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceMeanField_ELBO])
def test_deterministic_loss_and_gradient_match_eager(elbo):
    model = Observed()
    loss_fn = elbo()(model, empty_guide)
    compiled = tracejit.compile(loss_fn)
    g = torch.Generator().manual_seed(0)
    for n in (50, 50, 50, 20):          # second and later calls with other data, a new shape
        x, y = torch.randn(n, generator=g), torch.randn(n, generator=g)
        want, got = loss_fn(x, y), compiled(x, y)
        assert got.dtype == want.dtype == torch.float32 and got.shape == want.shape == ()
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
        gw = torch.autograd.grad(want, [model.loc, model.raw])
        gg = torch.autograd.grad(got, [model.loc, model.raw])
        for a, b in zip(gg, gw):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _train(compiled, steps=300, size=400, seed=1):
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        covariates = torch.randn(size)
        data = 0.5 + 2.0 * covariates + 0.3 * torch.randn(size)
    model = Regression(size)
    loss_fn = Trace_ELBO()(model, AutoNormal(model))
    loss_fn(covariates[:100], data[:100])            # initializes the guide's parameters
    opt = torch.optim.Adam(loss_fn.parameters(), lr=0.03)
    f = tracejit.compile(loss_fn) if compiled else loss_fn
    losses = []
    for step in range(steps):
        i = (step % 4) * 100
        opt.zero_grad()
        loss = f(covariates[i:i + 100], data[i:i + 100])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return loss_fn, losses


def test_svi_with_a_torch_optimizer_fits_as_eager_does():
    """pyro/examples/svi_torch.py's loop: draws differ from eager's (tracejit's own
    generator), so the fit is compared, not the steps: both find the data's
    coefficients, and every compiled call draws afresh."""
    eager, _ = _train(False)
    fit, losses = _train(True)
    assert len(set(losses[-50:])) == 50              # fresh draws at every call
    for mod in (eager, fit):
        locs = mod.guide.locs
        assert abs(locs.coeff.item() - 2.0) < 0.1
        assert abs(locs.bias.item() - 0.5) < 0.1
        assert abs(locs.scale.exp().item() - 0.3) < 0.1
    assert abs(sum(losses[-50:]) / 50 - sum(_train(False)[1][-50:]) / 50) < 25


def test_the_loss_value_is_the_reported_elbo_of_its_own_draws():
    """`loss + (surrogate - torch_item(surrogate))`: the value is the ELBO estimate of the
    call's draws (the same number Pyro's float loss would be), its gradient the
    surrogate's; two calls on the same data give different values."""
    size = 100
    model = Regression(size)
    loss_fn = Trace_ELBO()(model, AutoNormal(model))
    x, y = torch.randn(size), torch.randn(size)
    loss_fn(x, y)
    f = tracejit.compile(loss_fn)
    a, b = f(x, y), f(x, y)
    assert a.dtype == torch.float32 and a.requires_grad
    assert a.item() != b.item()
    grads = torch.autograd.grad(a, list(loss_fn.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


def test_torch_item_is_a_python_number_inside_the_trace():
    import pyro.infer.util as util
    seen = []

    @tracejit.compile
    def f(x):
        v = util.torch_item(x.sum())
        seen.append(type(v).__name__)
        return x * v + util.torch_item(x[0] * 2), v

    x = torch.arange(3.0)
    r, v = f(x)
    torch.testing.assert_close(r, x * 3.0 + 0.0)
    assert type(v) is float and v == 3.0 and r.dtype == torch.float32
    x2 = torch.tensor([1.0, 2.0, 4.0])
    r, v = f(x2)                                      # no retrace: not a constant
    torch.testing.assert_close(r, x2 * 7.0 + 2.0)
    assert v == 7.0 and seen == ["Tracer"]
    assert util.torch_item(2.5) == 2.5                 # outside a trace: Pyro's own


def test_torch_item_of_several_elements_raises_as_eager():
    import pyro.infer.util as util
    with pytest.raises(RuntimeError) as eager:
        util.torch_item(torch.ones(2))
    with pytest.raises(Exception) as traced:
        tracejit.compile(lambda x: x + util.torch_item(x))(torch.ones(2))
    assert "element" in str(eager.value) and "element" in str(traced.value)


def test_python_number_takes_only_a_0d_float64_or_int64_tracer():
    @tracejit.compile
    def f(x):
        return _C._python_number(x)
    with pytest.raises(TypeError, match="0-d float64 or int64"):
        f(torch.ones(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="0-d float64 or int64"):
        f(torch.tensor(1.0))


class _Coder(torch.nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1 = torch.nn.Linear(n_in, 8)
        self.fc2 = torch.nn.Linear(8, n_out)

    def forward(self, x):
        return self.fc2(torch.nn.functional.softplus(self.fc1(x)))


class _DeltaVAE(torch.nn.Module):
    """pyro/examples/vae/vae.py's structure (pyro.module of an encoder and a decoder in
    guide and model), with a Delta posterior so that a step is deterministic."""

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = _Coder(12, 2), _Coder(2, 12)

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(1))
            loc = torch.sigmoid(self.decoder(z))
            pyro.sample("obs", dist.Bernoulli(loc, validate_args=False).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("latent", dist.Delta(self.encoder(x)).to_event(1))


def test_pyro_module_in_guide_and_model_steps_as_eager():
    """pyro.module compares the param store's tensor with the module's own through
    Tensor._cdata: a parameter read as a traced input reports its tensor's."""
    import tracejit.pyro as tjp
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(32, 12, generator=g) > 0.5).float()
    runs = []
    for elbo in (Trace_ELBO(), tjp.Trace_ELBO()):
        pyro.settings.set(module_local_params=False)
        pyro.clear_param_store()
        torch.manual_seed(0)
        vae = _DeltaVAE()
        svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 0.01}), loss=elbo)
        losses = [svi.step(data[i % 4 * 8:(i % 4 + 1) * 8]) for i in range(12)]
        runs.append((losses, [p.detach().clone() for p in vae.parameters()]))
    (le, pe), (lc, pc) = runs
    assert lc == pytest.approx(le, rel=1e-5)
    for a, b in zip(pc, pe):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_cdata_of_a_tracer():
    w = torch.nn.Parameter(torch.ones(3))
    seen = {}

    @tracejit.compile
    def f(x):
        y = x * 2
        seen["distinct"] = y._cdata != w._cdata and y._cdata != x._cdata
        seen["stable"] = y._cdata == y._cdata
        return y

    f(torch.ones(3))
    assert seen == {"distinct": True, "stable": True}
