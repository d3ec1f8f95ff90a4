"""Every torch.optim optimizer's compiled training step (python/tracejit/_train_step.py)
against the same step run eagerly, step after step, on a loss whose gradients both
compute exactly (x * p summed, p * p summed: no rounding in the gradient), so what is
compared is the optimizer's own arithmetic: counters (step, eta, mu, step_size) are
bit-equal; float state and parameters differ only where torch's kernels round
differently (its vectorized lerp_ is a fused multiply-add, tracejit's is not), a few
float32 ulps of each tensor's largest value (the worst measured: 3.2e-7 relative, by
Adadelta's acc_delta and RMSprop's parameters)."""
import pytest

torch = pytest.importorskip("torch")

import tracejit  # noqa: E402
from test_train_step import _step_fn as _model_step  # noqa: E402

optim = torch.optim

OPTS = {
    "asgd": lambda p: optim.ASGD(p, lr=1e-2),
    "asgd_t0": lambda p: optim.ASGD(p, lr=1e-2, t0=2, weight_decay=1e-3),
    "adam": lambda p: optim.Adam(p, lr=1e-2),
    "adamw": lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "amsgrad": lambda p: optim.Adam(p, lr=1e-2, amsgrad=True),
    "sgd_momentum": lambda p: optim.SGD(p, lr=1e-2, momentum=0.9),
    "sgd_nesterov": lambda p: optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True,
                                        weight_decay=1e-3),
    "adamax": lambda p: optim.Adamax(p, lr=1e-2),
    "rmsprop": lambda p: optim.RMSprop(p, lr=1e-2, momentum=0.9),
    "rmsprop_centered": lambda p: optim.RMSprop(p, lr=1e-2, momentum=0.9, centered=True),
    "adagrad": lambda p: optim.Adagrad(p, lr=1e-2),
    "adadelta": lambda p: optim.Adadelta(p, lr=1.0),
    "nadam": lambda p: optim.NAdam(p, lr=1e-2),
    "radam": lambda p: optim.RAdam(p, lr=1e-2),
    "rprop": lambda p: optim.Rprop(p, lr=1e-2),
}
# state entries that are counters or schedules: no tensor arithmetic to round differently
EXACT = {"step", "eta", "mu", "step_size"}
REL = 1e-6      # of each tensor's largest magnitude (measured worst: 3.2e-7)


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, generator=g).requires_grad_(),
            torch.randn(7, generator=g).requires_grad_(),
            torch.randn(4, 2, generator=g).requires_grad_()]


def _step_fn(ps, opt):
    def step(x1, x2):
        opt.zero_grad()
        loss = (ps[0] * x1).sum() + (ps[1] * x2).sum() + (ps[2] * ps[2]).sum()
        loss.backward()
        opt.step()
        return loss
    return step


def _close(a, b, what):
    a, b = a.detach().double(), b.detach().double()
    if what in EXACT:
        assert torch.equal(a, b), (what, a, b)
        return
    scale = b.abs().max().item()
    err = (a - b).abs().max().item()
    assert err <= REL * scale, (what, err, scale)


@pytest.mark.parametrize("name", sorted(OPTS))
def test_optimizer_state_matches_eager_over_steps(name):
    pa, pb = _params(), _params()
    oa, ob = OPTS[name](pa), OPTS[name](pb)
    step, eager = tracejit.compile(_step_fn(pa, oa)), _step_fn(pb, ob)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):   # the first eager (state made), then traced, then replays
        x1, x2 = torch.randn(5, 3, generator=g), torch.randn(7, generator=g)
        got, want = step(x1, x2), eager(x1, x2)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)   # (a sum: cancels)
        for a, b in zip(pa, pb):
            _close(a, b, "param")
            assert torch.equal(a.grad, b.grad) or not torch.equal(a, b)
            sa, sb = oa.state[a], ob.state[b]
            assert sa.keys() == sb.keys()
            for k, v in sb.items():
                if isinstance(v, torch.Tensor):
                    _close(sa[k], v, k)
                else:
                    assert sa[k] == v, k
    info = step._tj_step.core.cache_info()
    # compiled, not run eagerly: ASGD with t0=2 reads mu.item() (its value guarded:
    # mu changes from step 3 on, a trace per value), the others replay one variant
    assert info.hits + info.misses >= 5
    assert info.hits >= (0 if name == "asgd_t0" else 3), info


def test_asgd_eta_first_compiled_call():
    """ASGD's first compiled call (its second step) set eta of every parameter but the
    first from step 0: fusion ran a group before the group computing lr * lambd (a
    group absorbed across guard phases, fuse.c). Exact, with the model's own
    gradients."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    twin = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    twin.load_state_dict(m.state_dict())
    oa, ob = optim.ASGD(m.parameters(), lr=1e-2), optim.ASGD(twin.parameters(), lr=1e-2)
    step, eager = tracejit.compile(_model_step(m, oa)), _model_step(twin, ob)
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        x, y = torch.randn(32, 8, generator=g), torch.randn(32, 1, generator=g)
        step(x, y), eager(x, y)
        for pa, pb in zip(m.parameters(), twin.parameters()):
            for k in ("step", "eta", "mu"):
                assert torch.equal(oa.state[pa][k], ob.state[pb][k]), k
