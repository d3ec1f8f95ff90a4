"""Tutorial-style Pyro models for tests/test_pyro_svi*.py and benchmarks/bench_pyro.py:
logistic and linear regression, eight schools (centered and non-centered), a
Beta-Binomial baseball model with a plate, a Bayesian neural net (PyroModule), with
their data. Imports pyro: callers skip without it."""
import torch
import torch.nn as nn

import pyro
import pyro.distributions as dist
from pyro.nn import PyroModule, PyroSample


def logistic(x, y=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1]), 1.0).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=x @ w + b), obs=y)


def linear(x, y=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1]), 1.0).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w + b, sigma), obs=y)


def schools_centered(sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", sigma.shape[0]):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def schools_noncentered(sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", sigma.shape[0]):
        eta = pyro.sample("eta", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(mu + tau * eta, sigma), obs=y)


def baseball(at_bats, hits=None):
    """Partial pooling of hit rates (Pyro's baseball example): Beta-Binomial."""
    phi = pyro.sample("phi", dist.Uniform(0.0, 1.0))
    kappa = pyro.sample("kappa", dist.Pareto(1.0, 1.5))
    with pyro.plate("players", at_bats.shape[0]):
        theta = pyro.sample("theta", dist.Beta(phi * kappa, (1 - phi) * kappa))
        pyro.sample("obs", dist.Binomial(at_bats, theta), obs=hits)


class BNN(PyroModule):
    """One hidden tanh layer with Normal priors on every weight (Pyro's tutorial)."""

    def __init__(self, d_in=3, width=50):
        super().__init__()
        self.fc1 = PyroModule[nn.Linear](d_in, width)
        self.fc1.weight = PyroSample(dist.Normal(0.0, 1.0).expand([width, d_in]).to_event(2))
        self.fc1.bias = PyroSample(dist.Normal(0.0, 1.0).expand([width]).to_event(1))
        self.fc2 = PyroModule[nn.Linear](width, 1)
        self.fc2.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, width]).to_event(2))
        self.fc2.bias = PyroSample(dist.Normal(0.0, 1.0).expand([1]).to_event(1))

    def forward(self, x, y=None):
        mu = self.fc2(torch.tanh(self.fc1(x))).squeeze(-1)
        sigma = pyro.sample("sigma", dist.Uniform(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(mu, sigma), obs=y)
        return mu


SCHOOLS_Y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
# Efron and Morris's 18 players: hits in their first 45 at-bats of 1970
BASEBALL_HITS = torch.tensor([18.0, 17, 16, 15, 14, 14, 13, 12, 11, 11, 10, 10, 10, 10, 10, 9,
                              8, 7])
BASEBALL_AT_BATS = torch.full((18,), 45.0)


def regression_data(n, d, seed=0, logistic_y=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.linspace(-2.0, 2.0, d)
    if logistic_y:
        return x, (torch.rand(n, generator=g) < torch.sigmoid(x @ w + 0.3)).float()
    return x, x @ w + 0.3 + 0.5 * torch.randn(n, generator=g)


def cases(n=100, d=3, width=10):
    """{name: (model, args)}: each model with its data."""
    return {
        "logistic": (logistic, regression_data(n, d, 1, logistic_y=True)),
        "linear": (linear, regression_data(n, d, 2)),
        "schools_centered": (schools_centered, (SCHOOLS_SIGMA, SCHOOLS_Y)),
        "schools_noncentered": (schools_noncentered, (SCHOOLS_SIGMA, SCHOOLS_Y)),
        "baseball": (baseball, (BASEBALL_AT_BATS, BASEBALL_HITS)),
        "bnn": (BNN(d, width), regression_data(n, d, 3)),
    }
