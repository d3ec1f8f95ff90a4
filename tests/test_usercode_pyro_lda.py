"""Pyro's examples/lda.py (amortized LDA: Gamma and Dirichlet guides, an enumerated
Categorical, an MLP guide through pyro.module, `torch.zeros(args.num_words, n)
.scatter_add(...)`), its model and guide as the example writes them, with the script's
argparse `args` passed on as a keyword argument, under tracejit.pyro.TraceEnum_ELBO.
What it needed: argparse.Namespace as a container (csrc/pytree.c), torch.zeros(n, m)
of a traced int (_torch_swaps._sized), Tensor.scatter_add (_torch_writes), and a traced
Python int that Pyro's plate asks `isinstance(size, torch.Tensor)` of answering False
(_torch_dists._isinstance). Draws differ from eager's (another generator), so loss and
gradients are compared as Monte Carlo estimates: mean over seeds, within their standard
errors. Skipped without pyro-ppl."""
import argparse
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")
import pyro.distributions as dist  # noqa: E402
from pyro.infer import TraceEnum_ELBO  # noqa: E402
from torch import nn  # noqa: E402
from torch.distributions import constraints  # noqa: E402

import tracejit.pyro as tjp  # noqa: E402


def model(data=None, args=None, batch_size=None):
    with pyro.plate("topics", args.num_topics):
        topic_weights = pyro.sample("topic_weights", dist.Gamma(1.0 / args.num_topics, 1.0))
        topic_words = pyro.sample("topic_words",
                                  dist.Dirichlet(torch.ones(args.num_words) / args.num_words))
    with pyro.plate("documents", args.num_docs) as ind:
        if data is not None:
            data = data[:, ind]
        doc_topics = pyro.sample("doc_topics", dist.Dirichlet(topic_weights))
        with pyro.plate("words", args.num_words_per_doc):
            word_topics = pyro.sample("word_topics", dist.Categorical(doc_topics),
                                      infer={"enumerate": "parallel"})
            data = pyro.sample("doc_words", dist.Categorical(topic_words[word_topics]),
                               obs=data)
    return topic_weights, topic_words, data


def make_predictor(args):
    sizes = [args.num_words] + [int(s) for s in args.layer_sizes.split("-")] + [args.num_topics]
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layer = nn.Linear(n_in, n_out)
        layer.weight.data.normal_(0, 0.001)
        layer.bias.data.normal_(0, 0.001)
        layers += [layer, nn.Sigmoid()]
    layers.append(nn.Softmax(dim=-1))
    return nn.Sequential(*layers)


def parametrized_guide(predictor, data, args, batch_size=None):
    topic_weights_posterior = pyro.param("topic_weights_posterior",
                                         lambda: torch.ones(args.num_topics),
                                         constraint=constraints.positive)
    topic_words_posterior = pyro.param("topic_words_posterior",
                                       lambda: torch.ones(args.num_topics, args.num_words),
                                       constraint=constraints.greater_than(0.5))
    with pyro.plate("topics", args.num_topics):
        pyro.sample("topic_weights", dist.Gamma(topic_weights_posterior, 1.0))
        pyro.sample("topic_words", dist.Dirichlet(topic_words_posterior))
    pyro.module("predictor", predictor)
    with pyro.plate("documents", args.num_docs, batch_size) as ind:
        data = data[:, ind]
        counts = torch.zeros(args.num_words, ind.size(0)).scatter_add(
            0, data, torch.ones(data.shape))
        doc_topics = predictor(counts.transpose(0, 1))
        pyro.sample("doc_topics", dist.Delta(doc_topics, event_dim=1))


def _estimates(elbo, guide, data, args, n):
    """Loss and gradients of n calls (seeds 100..), their means and standard errors."""
    store = pyro.get_param_store()
    losses, grads = [], []
    for i in range(n):
        pyro.set_rng_seed(100 + i)
        losses.append(elbo.loss_and_grads(model, guide, data, args=args,
                                          batch_size=args.batch_size))
        names = sorted(store._params)
        grads.append(torch.cat([store._params[k].grad.flatten() for k in names]).clone())
        for k in names:
            store._params[k].grad = None
    losses, grads = np.array(losses), torch.stack(grads).double()
    return (losses.mean(), losses.std() / np.sqrt(n), grads.mean(0), grads.std(0) / np.sqrt(n))


def test_lda_example_matches_eager_in_distribution():
    args = argparse.Namespace(num_topics=4, num_words=24, num_docs=40, num_words_per_doc=12,
                              layer_sizes="16", batch_size=8)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    _, _, data = model(args=args)
    predictor = make_predictor(args)
    guide = functools.partial(parametrized_guide, predictor)
    try:
        eager = _estimates(TraceEnum_ELBO(max_plate_nesting=2), guide, data, args, 30)
        elbo = tjp.TraceEnum_ELBO(max_plate_nesting=2)
        compiled = _estimates(elbo, guide, data, args, 30)
    finally:
        pyro.clear_param_store()
    z = (eager[0] - compiled[0]) / np.hypot(eager[1], compiled[1])
    assert abs(z) < 4.5, (eager[:2], compiled[:2])
    zg = (eager[2] - compiled[2]) / torch.sqrt(eager[3] ** 2 + compiled[3] ** 2 + 1e-20)
    assert zg.abs().max() < 5.5, zg.abs().max()
    assert eager[2].shape == compiled[2].shape and (eager[3] > 0).double().mean() > 0.5
    assert elbo._tracejit.fn.cache_info().misses == 1   # one trace for 30 steps
