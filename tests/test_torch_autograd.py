"""tracejit._torch_autograd: compiled functions taking part in torch.autograd (CPU)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from tracejit import _torch_autograd  # noqa: E402


def mlp_loss(p, X, y):
    h = np.tanh(X @ p["W1"] + p["b1"])
    o = h @ p["W2"] + p["b2"]
    return np.mean((o - y) ** 2)


def torch_mlp_loss(p, X, y):
    h = torch.tanh(X @ p["W1"] + p["b1"])
    return torch.mean((h @ p["W2"] + p["b2"] - y) ** 2)


def params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = {"W1": (5, 7), "b1": (7,), "W2": (7, 3), "b2": (3,)}
    return {k: (0.5 * torch.randn(*s, generator=g, dtype=dtype)).requires_grad_()
            for k, s in shapes.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_backward_gives_torchs_gradients(dtype):
    p, q = params(dtype), params(dtype)
    X = torch.randn(11, 5, dtype=dtype)
    y = torch.randn(11, 3, dtype=dtype)
    f = _torch_autograd.function(mlp_loss)
    loss = f(p, X, y)
    assert isinstance(loss, torch.Tensor) and loss.dtype == dtype and loss.requires_grad
    loss.backward()
    ref = torch_mlp_loss(q, X, y)
    ref.backward()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert abs(loss.item() - ref.item()) <= tol * abs(ref.item())
    for k in p:
        torch.testing.assert_close(p[k].grad, q[k].grad, rtol=tol, atol=tol)


def test_training_with_torch_optim_matches_eager():
    p, q = params(torch.float64), params(torch.float64)
    X, y = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    f = _torch_autograd.function(mlp_loss)
    opt_p = torch.optim.SGD(list(p.values()), lr=0.1, momentum=0.9)
    opt_q = torch.optim.SGD(list(q.values()), lr=0.1, momentum=0.9)
    for _ in range(5):
        for opt, loss in ((opt_p, lambda: f(p, X, y)), (opt_q, lambda: torch_mlp_loss(q, X, y))):
            opt.zero_grad()
            loss().backward()
            opt.step()
    for k in p:
        torch.testing.assert_close(p[k], q[k], rtol=1e-11, atol=1e-12)


def test_scaled_cotangent_and_accumulation():
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    f = _torch_autograd.function(lambda w: np.sum(np.exp(w)))
    (3.0 * f(w)).backward()
    f(w).backward()                      # accumulates into .grad, as torch does
    torch.testing.assert_close(w.grad, 4.0 * torch.exp(w.detach()))


def test_scalar_for_one_signature_vector_for_another():
    f = _torch_autograd.function(lambda a: np.sum(a * a, axis=0))
    a1 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    f(a1).backward()                                     # a scalar: the fused path
    torch.testing.assert_close(a1.grad, 2 * a1.detach())
    a2 = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    out = f(a2)                                          # a vector: forward, then pullback
    assert out.shape == (2,)
    out.backward(torch.tensor([1.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(a2.grad, 2 * a2.detach() * torch.tensor([1.0, 3.0],
                                                                      dtype=torch.float64))
    a1.grad = None
    f(a1).backward()                                     # still right after the switch
    torch.testing.assert_close(a1.grad, 2 * a1.detach())


def test_retain_graph_backward_twice():
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    loss = _torch_autograd.function(lambda w: np.sum(w ** 3))(w)
    loss.backward(retain_graph=True)
    loss.backward()
    torch.testing.assert_close(w.grad, 6.0 * w.detach() ** 2)


def test_gradcheck_scalar_and_vector_outputs():
    a = torch.randn(4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    vec = _torch_autograd.function(lambda a, b: (np.sin(a) * b, np.sum(a * a)))
    assert torch.autograd.gradcheck(vec, (a, b))
    scal = _torch_autograd.function(lambda a, b: np.sum(np.tanh(a) * b ** 2))
    assert torch.autograd.gradcheck(scal, (a, b))


def test_inputs_without_grad_are_constants_and_int_tensors_pass_through():
    a = torch.randn(3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(3, dtype=torch.float64)             # no grad: a constant of the call
    k = torch.tensor([2, 0, 1])                          # an integer tensor (indices)
    f = _torch_autograd.function(lambda a, c, k: np.sum(a[k] * c))
    f(a, c, k).backward()
    want = torch.zeros(3, dtype=torch.float64)
    want[k] += c
    torch.testing.assert_close(a.grad, want)
    assert c.grad is None
    out = f(a.detach(), c, k)                            # nothing requires grad
    assert isinstance(out, torch.Tensor) and not out.requires_grad


def test_tensors_off_the_cpu_are_refused():
    a = torch.empty(3, device="meta", requires_grad=True)
    f = _torch_autograd.function(lambda a: np.sum(a))
    with pytest.raises(TypeError, match="tracejit autograd: tensors must be on the CPU or a CUDA GPU, got meta"):
        f(a)


def test_double_backward_is_refused():
    a = torch.randn(3, dtype=torch.float64, requires_grad=True)
    f = _torch_autograd.function(lambda a: np.sum(a ** 3))
    (g,) = torch.autograd.grad(f(a), (a,))
    torch.testing.assert_close(g, 3 * a.detach() ** 2)
    with pytest.raises(RuntimeError, match="the backward of a compiled function is not "
                                           "differentiable"):
        torch.autograd.grad(f(a), (a,), create_graph=True)


def test_importing_tracejit_does_not_import_torch():
    from conftest import run_python
    rc, parsed, out, err = run_python("import sys, json, tracejit, tracejit._torch_autograd; "
                                      "print(json.dumps('torch' in sys.modules))")
    assert rc == 0 and parsed is False, out + err


# ---- through tracejit.compile: the replay path routes requires-grad calls here ----

import tracejit  # noqa: E402
from torch import nn  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compile_backward_fills_grad_like_eager(dtype):
    p, q = params(dtype), params(dtype)
    X, y = torch.randn(11, 5, dtype=dtype), torch.randn(11, 3, dtype=dtype)
    f = tracejit.compile(mlp_loss)
    loss = f(p, X, y)
    assert loss.requires_grad and loss.grad_fn is not None and loss.dtype == dtype
    loss.backward()
    torch_mlp_loss(q, X, y).backward()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for k in p:
        torch.testing.assert_close(p[k].grad, q[k].grad, rtol=tol, atol=tol)
    assert X.grad is None and y.grad is None


def test_compile_several_and_non_scalar_outputs():
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    f = tracejit.compile(lambda a, b: {"u": np.sin(a) * b, "s": np.sum(a * a, axis=1)})
    out = f(a, b)
    assert set(out) == {"u", "s"} and out["u"].shape == (3, 4) and out["s"].shape == (3,)
    ga, gb = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    (out["u"] * ga).sum().backward(retain_graph=True)
    out["s"].backward(gb)
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    ((torch.sin(a2) * b2) * ga).sum().backward()
    (a2 * a2).sum(1).backward(gb)
    torch.testing.assert_close(a.grad, a2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b.grad, b2.grad, rtol=1e-12, atol=1e-12)


def test_compile_gradcheck_float64():
    a = torch.randn(5, dtype=torch.float64, requires_grad=True)
    W = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    vec = tracejit.compile(lambda a, W: (np.exp(a) @ W, np.tanh(W) * 2.0))
    assert torch.autograd.gradcheck(vec, (a, W))
    scal = tracejit.compile(lambda a, W: np.sum(np.log1p(np.exp(a @ W))))
    assert torch.autograd.gradcheck(scal, (a, W))


def test_compile_integer_and_constant_inputs_untouched():
    a = torch.randn(3, dtype=torch.float64, requires_grad=True)
    k = torch.tensor([2, 0, 1, 2])
    c = torch.randn(4, dtype=torch.float64)
    f = tracejit.compile(lambda a, k, c, s: np.sum(a[k] * c) * s)
    f(a, k, c, 3.0).backward()
    want = torch.zeros(3, dtype=torch.float64)
    want.index_add_(0, k, 3.0 * c)
    torch.testing.assert_close(a.grad, want)
    assert c.grad is None and k.grad is None and k.dtype == torch.int64


def test_compile_no_grad_mode_is_the_plain_replay():
    f = tracejit.compile(lambda x, w: np.tanh(x * w))
    x, w = torch.randn(6), torch.randn(6, requires_grad=True)
    with torch.no_grad():
        r1 = f(x, w)
        r2 = f(x, w)
    assert not r1.requires_grad and r1.grad_fn is None
    info = f.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    torch.testing.assert_close(r2, torch.tanh(x * w.detach()))
    r3 = f(x, w.detach())             # nothing requires grad: the plain replay, no retrace
    assert not r3.requires_grad and f.cache_info().hits == 2
    assert f(x, w).requires_grad      # grad mode on: autograd
    assert f.cache_info().misses == 1   # (the autograd route keeps its own variants)


def test_compile_static_argnames_key_the_autograd_variants():
    @tracejit.compile(static_argnames="axis")
    def f(x, axis):
        return np.sum(np.sum(x * x, axis=axis) ** 2)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    for axis in (0, 1, 0):
        x.grad = None
        f(x, axis=axis).backward()
        x2 = x.detach().clone().requires_grad_()
        ((x2 * x2).sum(axis) ** 2).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad, rtol=1e-12, atol=1e-12)


def test_compile_optim_loop_converges():
    torch.manual_seed(0)
    X = torch.randn(64, 3, dtype=torch.float64)
    w_true = torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64)
    y = X @ w_true + 0.3
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    loss_fn = tracejit.compile(lambda w, b, X, y: np.mean((X @ w + b - y) ** 2))
    opt = torch.optim.Adam([w, b], lr=0.1)
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn(w, b, X, y)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 1e-6 * first
    torch.testing.assert_close(w.detach(), w_true, rtol=1e-3, atol=1e-3)
    assert abs(b.item() - 0.3) < 1e-3


def test_compile_create_graph_is_refused_clearly():
    f = tracejit.compile(lambda a: np.sum(a ** 3))
    a = torch.randn(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="the backward of a compiled function is not "
                                           "differentiable \\(create_graph=True\\)"):
        torch.autograd.grad(f(a), (a,), create_graph=True)
    # (a CUDA tensor is refused by csrc/dlpack.c's device check before grad is looked at;
    # a meta tensor cannot even be viewed: torch's DLPack refuses it)


def test_compile_captured_tensor_requiring_grad_is_refused_clearly():
    w = torch.randn(3, requires_grad=True)
    f = tracejit.compile(lambda x: x * w)
    with pytest.raises(tracejit.TraceError, match="reads a torch tensor .* that requires grad "
                                                  "while grad mode is on: only arguments") as e:
        f(torch.ones(3))
    assert isinstance(e.value, TypeError)
    x = torch.ones(3, requires_grad=True)   # an argument requires grad: still refused,
    with pytest.raises(tracejit.TraceError, match="reads a torch tensor .* that requires grad"):
        f(x)                                # (it would get no gradient)
    w.requires_grad_(False)
    f(x).sum().backward()                   # traced and cached by the autograd route
    torch.testing.assert_close(x.grad, w)
    w.requires_grad_(True)
    with pytest.raises(TypeError, match="the torch tensor .* the compiled function reads "
                                        "requires grad while grad mode is on"):
        f(x)                                # the replay's check (grad mode is off in there)
    with torch.no_grad():
        torch.testing.assert_close(f(x), w.detach())


def _net(dtype=torch.float64):
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_module_parameters_receive_grad(dtype):
    m, ref = _net(dtype), _net(dtype)
    cm = tracejit.compile(m)
    x = torch.randn(5, 4, dtype=dtype)
    out = cm(x)
    assert out.requires_grad
    g = torch.randn(5, 2, dtype=dtype)
    out.backward(g)
    ref(x).backward(g)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=tol, atol=tol, msg=name)
    with torch.no_grad():          # then inference: the plain replay, no grad
        r = cm(x)
    assert not r.requires_grad
    torch.testing.assert_close(r, ref(x).detach(), rtol=tol, atol=tol)


def test_compiled_module_input_grad_frozen_params_and_eval():
    m, ref = _net(), _net()
    m[0].weight.requires_grad_(False)
    ref[0].weight.requires_grad_(False)
    cm = tracejit.compile(m)
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    cm(x).sum().backward()
    ref(x2).sum().backward()
    assert m[0].weight.grad is None
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m[0].bias.grad, ref[0].bias.grad, rtol=1e-12, atol=1e-12)
    m.eval()
    ref.eval()
    torch.testing.assert_close(cm(x), ref(x2), rtol=1e-12, atol=1e-12)


def test_compiled_module_gradcheck_and_training_loop_matches_eager():
    m, ref = _net(), _net()
    cm = tracejit.compile(m)
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cm, (x,))
    X, y = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 2, dtype=torch.float64)
    opts = [torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9) for net in (m, ref)]
    losses = []
    for _ in range(30):
        for net, opt in zip((cm, ref), opts):
            opt.zero_grad()
            loss = ((net(X) - y) ** 2).mean()
            loss.backward()
            opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    for p, q in zip(m.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-10)


def test_compile_integer_and_bool_outputs_are_not_differentiable():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    g = tracejit.compile(lambda x: (x * 2.0, np.argmax(x), x > 0))
    a, i, m = g(x)
    assert a.requires_grad and not i.requires_grad and not m.requires_grad
    assert i.item() == int(torch.argmax(x)) and m.dtype == torch.bool
    a.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((5,), 2.0, dtype=torch.float64))


def test_tracejit_grad_under_torch_autograd_gives_second_derivatives():
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    h = tracejit.grad(lambda x: np.sum(np.sin(x) * x))
    gx = h(x)                                   # d/dx, itself differentiable by torch
    torch.testing.assert_close(gx.detach(), torch.sin(x.detach()) + x.detach() * torch.cos(x.detach()))
    gx.sum().backward()
    xd = x.detach()
    torch.testing.assert_close(x.grad, 2 * torch.cos(xd) - xd * torch.sin(xd), rtol=1e-12, atol=1e-12)


def test_compiled_module_with_buffers_and_layernorm_under_autograd():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.norm = nn.Linear(6, 6), nn.LayerNorm(6)
            self.register_buffer("scale", torch.full((6,), 0.5))

        def forward(self, x):
            return self.norm(self.lin(x)) * self.scale

    torch.manual_seed(0)
    m, ref = Net().double(), Net().double()
    ref.load_state_dict(m.state_dict())
    cm = tracejit.compile(m)
    x = torch.randn(4, 6, dtype=torch.float64)

    def check():
        m.zero_grad()
        ref.zero_grad()
        cm(x).pow(2).sum().backward()
        ref(x).pow(2).sum().backward()
        for (name, p), q in zip(m.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12, msg=name)

    check()
    for net in (m, ref):
        net.scale.fill_(2.0)              # a buffer changed in place
    check()
    for net in (m, ref):                  # a buffer replaced by another tensor
        net.scale = torch.full((6,), 3.0, dtype=torch.float64)
    check()


def test_parameters_read_inside_no_grad_of_a_function_called_with_grad_on():
    """`with torch.no_grad(): return m(x)` inside the compiled function: the parameters
    are captured under no_grad, the plan built with grad mode on. Refused by name (was an
    InternalError); the same function called under no_grad runs, as eager."""
    m = torch.nn.Linear(3, 2)

    def f(x):
        with torch.no_grad():
            return m(x)
    g = tracejit.compile(f)
    x = torch.randn(4, 3)
    with pytest.raises(tracejit.TraceError, match="inside torch.no_grad.*called with grad "
                                                  "mode on"):
        g(x)
    with torch.no_grad():
        torch.testing.assert_close(g(x), f(x))
        torch.testing.assert_close(g(x + 1), f(x + 1))
