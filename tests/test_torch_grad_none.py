"""Through torch.autograd, a compiled function gives a parameter the gradient eager torch
gives it: None where the output does not depend on it along a path autograd follows
(unused, used only through .detach(), through a comparison or an integer cast), a
tensor (zeros included) where it does (w * 0, floor). A zero gradient in None's place
is silently wrong: Adam with weight decay then moves the parameter, and `p.grad is None`
checks break. Every test runs the same torch-vocabulary code eagerly and compiled."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import tracejit  # noqa: E402
from tracejit import _torch_autograd  # noqa: E402

F64 = torch.float64


def leaves(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g, dtype=F64).requires_grad_() for _ in range(n)]


def twins(ts):
    return [t.detach().clone().requires_grad_() for t in ts]


def assert_same_grads(got, want):
    """got and want: sequences of tensors whose .grad must agree, None included."""
    for k, (a, b) in enumerate(zip(got, want)):
        assert (a.grad is None) == (b.grad is None), \
            f"leaf {k}: grad {'None' if a.grad is None else 'a tensor'}, eager " \
            f"{'None' if b.grad is None else 'a tensor'}"
        if b.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


# how the loss uses w2 (w1 is always used): eager torch's gradient of w2 is None for
# the first ones, a tensor (of zeros) for the last ones
USES = {
    "unused": lambda w2: 0.0,
    "detach": lambda w2: (w2.detach() * 2.0).sum(),
    "compared": lambda w2: (w2 > 0).to(F64).sum(),
    "integer cast": lambda w2: (w2 * 10).long().sum().to(F64),
    "zeros_like": lambda w2: torch.zeros_like(w2).sum(),
    "shape only": lambda w2: float(w2.shape[0]),
    "times zero": lambda w2: (w2 * 0.0).sum(),
    "floor": lambda w2: torch.floor(w2).sum(),
    "detach and used": lambda w2: (w2.detach() * w2).sum(),
}
NONE_USES = ("unused", "detach", "compared", "integer cast", "zeros_like", "shape only")


def loss_with(use):
    def loss(w1, w2, x):
        return torch.tanh(x @ w1).sum() + USES[use](w2)
    return loss


COMPILERS = {
    "compile": tracejit.compile,                    # csrc/ad/torch_route.c's fast call
    "function": _torch_autograd.function,           # Adapter.call in Python
}


@pytest.mark.parametrize("how", sorted(COMPILERS))
@pytest.mark.parametrize("use", list(USES))
def test_scalar_loss_gradient_none_exactly_where_eager(use, how):
    f = loss_with(use)
    cf = COMPILERS[how](f)
    x = torch.randn(5, 4, dtype=F64)
    w, v = leaves()[:2], twins(leaves()[:2])
    f(*v, x).backward()
    assert (v[1].grad is None) == (use in NONE_USES)   # what eager says, as this test assumes
    for _ in range(3):   # the first call traces, the next ones replay
        for t in w:
            t.grad = None
        loss = cf(*w, x)
        torch.testing.assert_close(loss, f(*v, x).detach(), rtol=1e-12, atol=1e-12)
        loss.backward()
        assert_same_grads(w, v)


@pytest.mark.parametrize("use", ["unused", "detach", "times zero"])
def test_scaled_cotangent_and_second_backward(use):
    """A cotangent other than 1 and a second backward (retain_graph) take
    _fused_backward's route (Python), the gradients computed again the second time."""
    f = loss_with(use)
    cf = tracejit.compile(f)
    x = torch.randn(5, 4, dtype=F64)
    w, v = leaves(1)[:2], twins(leaves(1)[:2])
    for fn, ts in ((cf, w), (f, v)):
        loss = 3.0 * fn(*ts, x)
        loss.backward(retain_graph=True)
        loss.backward()
    assert_same_grads(w, v)


def test_autograd_grad_allow_unused():
    f = loss_with("unused")
    cf = tracejit.compile(f)
    x = torch.randn(5, 4, dtype=F64)
    w1, w2 = leaves(2)[:2]
    g1, g2 = torch.autograd.grad(cf(w1, w2, x), [w1, w2], allow_unused=True)
    e1, e2 = torch.autograd.grad(f(w1, w2, x), [w1, w2], allow_unused=True)
    assert g2 is None and e2 is None
    torch.testing.assert_close(g1, e1, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="not have been used in the graph") as eager:
        torch.autograd.grad(f(w1, w2, x), [w1, w2])
    with pytest.raises(RuntimeError) as got:
        torch.autograd.grad(cf(w1, w2, x), [w1, w2])
    assert str(got.value) == str(eager.value)
    assert w1.grad is None and w2.grad is None   # autograd.grad leaves .grad alone


def test_loss_of_no_parameter_does_not_require_grad():
    """As eager: the loss requires no grad, and its backward() raises."""
    def f(w, x):
        return (x * 2.0).sum()
    w, x = leaves(3)[0], torch.randn(4, 3, dtype=F64)
    for fn in (tracejit.compile(f), _torch_autograd.function(f)):
        for _ in range(2):
            loss = fn(w, x)
            assert not loss.requires_grad
            with pytest.raises(RuntimeError, match="does not require grad"):
                loss.backward()
    assert w.grad is None


def test_non_scalar_outputs_backward_with_gradient():
    """The pullback route: a leaf gets None when no output that backward reaches depends
    on it, although another output of the same call does; an output that depends on no
    leaf does not require grad."""
    def f(a, b, c, x):
        return torch.exp(a) * x, b * 3.0 + a.sum(), c.detach() + x, (b > 0).sum()
    cf = tracejit.compile(f)
    x = torch.randn(4, 3, dtype=F64)
    for picks in ((0,), (1,), (0, 1), (0, 1, 2), (2,)):
        for _ in range(2):   # traced, then replayed
            w, v = leaves(4), twins(leaves(4))
            got, want = cf(*w, x), f(*v, x)
            assert [o.requires_grad for o in got] == [o.requires_grad for o in want]
            for o, e in zip(got, want):
                torch.testing.assert_close(o.detach(), e.detach(), rtol=1e-12, atol=1e-12)
            outs = [(got[k], want[k], torch.randn(4, 3, dtype=F64)) for k in picks
                    if want[k].requires_grad]
            if not outs:
                continue
            torch.autograd.backward([o for o, _, _ in outs], [c for _, _, c in outs])
            torch.autograd.backward([e for _, e, _ in outs], [c for _, _, c in outs])
            assert_same_grads(w, v)


class Net(torch.nn.Module):
    """fc is used; spare is never called; scale is read only through .detach()."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3, dtype=F64)
        self.spare = torch.nn.Linear(4, 3, dtype=F64)
        self.scale = torch.nn.Parameter(torch.full((3,), 1.5, dtype=F64))

    def forward(self, x):
        return (torch.tanh(self.fc(x)) * self.scale.detach()).pow(2).mean()


def test_module_unused_parameters_get_none():
    torch.manual_seed(0)
    net = Net()
    ref = copy.deepcopy(net)
    cm = tracejit.compile(net)
    x = torch.randn(6, 4, dtype=F64)
    for _ in range(3):
        net.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
        cm(x).backward()
        ref(x).backward()
        assert_same_grads(list(net.parameters()), list(ref.parameters()))
    assert net.spare.weight.grad is None and net.scale.grad is None


def test_module_adam_weight_decay_matches_eager():
    """A zero gradient in None's place would move spare and scale: Adam applies weight
    decay to every parameter that has a gradient."""
    torch.manual_seed(1)
    net = Net()
    ref = copy.deepcopy(net)
    cm = tracejit.compile(net)
    x = torch.randn(6, 4, dtype=F64)
    opt = torch.optim.Adam(net.parameters(), lr=0.05, weight_decay=0.1)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=0.05, weight_decay=0.1)
    for _ in range(5):
        for o, loss in ((opt, lambda: cm(x)), (opt_ref, lambda: ref(x))):
            o.zero_grad()
            loss().backward()
            o.step()
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12, msg=name)
    assert torch.equal(net.scale, torch.full((3,), 1.5, dtype=F64))   # never stepped


def test_function_adam_weight_decay_matches_eager():
    """The same through a compiled function's C route (csrc/ad/torch_route.c), the
    parameters in a dict: w2 unused, w3 read only through .detach()."""
    def loss(p, x):
        return (torch.tanh(x @ p["w1"]) * p["w3"].detach().sum()).pow(2).mean()
    x = torch.randn(5, 4, dtype=F64)
    p = dict(zip(("w1", "w2", "w3"), leaves(5)))
    q = {k: v.detach().clone().requires_grad_() for k, v in p.items()}
    cf = tracejit.compile(loss)
    opt = torch.optim.Adam(p.values(), lr=0.05, weight_decay=0.1)
    opt_ref = torch.optim.Adam(q.values(), lr=0.05, weight_decay=0.1)
    for _ in range(5):
        for o, step in ((opt, lambda: cf(p, x)), (opt_ref, lambda: loss(q, x))):
            o.zero_grad()
            step().backward()
            o.step()
    for k in p:
        torch.testing.assert_close(p[k], q[k], rtol=1e-12, atol=1e-12, msg=k)
    assert torch.equal(p["w2"], leaves(5)[1]) and p["w2"].grad is None


def test_tracejit_grad_keeps_zeros_for_unused():
    """tracejit.grad follows jax: an argument the result does not depend on gets zeros
    (only the torch route gives None); detach stops the gradient there too."""
    g = tracejit.grad(lambda a, b: np.sum(a * a), argnums=(0, 1))
    ga, gb = g(np.ones(3), np.ones(2))
    np.testing.assert_array_equal(ga, 2 * np.ones(3))
    np.testing.assert_array_equal(gb, np.zeros(2))
    gt = tracejit.grad(lambda a: (a.detach() * a).sum())
    t = torch.tensor([1.0, 2.0], dtype=F64)
    torch.testing.assert_close(torch.as_tensor(gt(t)), t)   # d/da of c * a, c = a
