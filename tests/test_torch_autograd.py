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
    with pytest.raises(TypeError, match="tracejit autograd: tensors must be on the CPU, got meta"):
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
