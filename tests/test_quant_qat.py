"""Quantization-aware training (issue 23): torch.fake_quantize_per_tensor_affine and
fake_quantize_per_channel_affine compiled, forward bit for bit and backward (the
straight-through estimator with torch's clamp mask) against eager torch, over dtypes,
layouts, special values, later calls, a compiled QAT training step; torch.round."""
import pytest

torch = pytest.importorskip("torch")

import tracejit  # noqa: E402

SPECIAL = [0.05, 0.15, 0.25, 0.35, -0.05, -0.15, 13.0, -13.0, float("inf"), float("-inf"),
           float("nan"), 12.74, 12.76, -12.84, -12.86, 1e30, -1e30, 0.0, -0.0, 1e-8]


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(torch.nan_to_num(a, nan=7.5), torch.nan_to_num(b, nan=7.5)), (a, b)
    assert torch.equal(torch.isnan(a), torch.isnan(b))


def _forward_backward(f, *args):
    """(result, gradients of the float tensors requiring grad) for a random cotangent."""
    out = f(*args)
    ct = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    return out.detach(), torch.autograd.grad(out, leaves, ct)


def _check(f, *args):
    want, gw = _forward_backward(f, *args)
    got, gg = _forward_backward(tracejit.compile(f), *args)
    _same(got, want)
    for a, b in zip(gg, gw):
        _same(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("qrange,zp", [((-128, 127), 0), ((0, 255), 128), ((-8, 7), 3)])
def test_per_tensor_special_values(dtype, qrange, zp):
    x = torch.tensor(SPECIAL, dtype=dtype, requires_grad=True)
    _check(lambda x: torch.fake_quantize_per_tensor_affine(x, 0.1, zp, *qrange), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_per_channel_special_values(dtype):
    x = torch.tensor(SPECIAL * 3, dtype=dtype).reshape(3, -1).T.contiguous().requires_grad_()
    sc = torch.tensor([0.1, 0.05, 0.3])
    zp = torch.tensor([0, -3, 5], dtype=torch.int32)
    _check(lambda x: torch.fake_quantize_per_channel_affine(x, sc, zp, 1, -20, 20), x)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("layout", ["c", "t"])
def test_per_channel_axes_layouts(axis, layout):
    g = torch.Generator().manual_seed(axis + 7)
    x = torch.randn(4, 5, 6, generator=g, dtype=torch.float64) * 3
    if layout == "t":
        x = x.transpose(0, 2).contiguous().transpose(0, 2)
    x.requires_grad_()
    n = x.shape[axis]
    sc = torch.rand(n, generator=g) * 0.3 + 0.02
    zp = torch.randint(-4, 5, (n,), generator=g, dtype=torch.int32)
    _check(lambda x: torch.fake_quantize_per_channel_affine(x, sc, zp, axis, -16, 15), x)


def test_tensor_scale_and_zero_point_and_second_call():
    f = tracejit.compile(lambda x, s, z: torch.fake_quantize_per_tensor_affine(x, s, z, 0, 15))
    g = torch.Generator().manual_seed(0)
    for k in range(3):   # other values each call (the scale an argument: no retrace)
        x = (torch.randn(6, 7, generator=g) * 2).requires_grad_()
        s = torch.tensor(0.05 + 0.1 * k)
        z = torch.tensor(k + 2, dtype=torch.int32)
        want, gw = _forward_backward(
            lambda x: torch.fake_quantize_per_tensor_affine(x, s, z, 0, 15), x)
        got, gg = _forward_backward(lambda x: f(x, s, z), x)
        _same(got, want)
        _same(gg[0], gw[0])

    with pytest.raises(RuntimeError, match="`axis` must be between 0"):
        tracejit.compile(lambda x: torch.fake_quantize_per_channel_affine(
            x, torch.ones(3), torch.zeros(3, dtype=torch.int32), -1, 0, 9))(torch.ones(2, 3))


def test_round_half_even_and_decimals():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.675, -0.3, 1e20,
                      float("inf"), float("nan")], dtype=torch.float64, requires_grad=True)
    _check(lambda x: torch.round(x), x)
    _check(lambda x: torch.round(x, decimals=2), x)
    _check(lambda x: torch.round(x * 1000, decimals=-2), x)
    i = torch.tensor([3, -4])
    assert torch.equal(tracejit.compile(lambda i: torch.round(i))(i), i)


def test_qat_training_step_matches_eager():
    """A small QAT model (weights fake-quantized per output channel, activations per
    tensor), its loss and every parameter's gradient compiled, against eager."""
    torch.manual_seed(0)

    class QATNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 4)

        @staticmethod
        def wq(w):
            s = (w.detach().abs().amax(1) / 127).clamp_min(1e-8)
            return torch.fake_quantize_per_channel_affine(
                w, s, torch.zeros(w.shape[0], dtype=torch.int32), 0, -127, 127)

        def forward(self, x):
            x = torch.fake_quantize_per_tensor_affine(x, 0.05, 0, -128, 127)
            h = torch.relu(torch.nn.functional.linear(x, self.wq(self.fc1.weight), self.fc1.bias))
            h = torch.fake_quantize_per_tensor_affine(h, 0.02, 0, 0, 255)
            return torch.nn.functional.linear(h, self.wq(self.fc2.weight), self.fc2.bias)

    net = QATNet()
    cnet = tracejit.compile(net)
    loss = lambda x, y: torch.nn.functional.cross_entropy(net(x), y)  # noqa: E731
    closs = lambda x, y: torch.nn.functional.cross_entropy(cnet(x), y)  # noqa: E731
    for step in range(3):
        x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
        net.zero_grad()
        want = loss(x, y)
        want.backward()
        gw = [p.grad.clone() for p in net.parameters()]
        net.zero_grad()
        got = closs(x, y)
        got.backward()
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        for a, b in zip([p.grad for p in net.parameters()], gw):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            for p, g in zip(net.parameters(), gw):
                p -= 0.1 * g


def test_errors_as_eager():
    x = torch.randn(3)
    f = tracejit.compile(lambda x: torch.fake_quantize_per_tensor_affine(x, 0.1, 0, 5, 1))
    with pytest.raises(RuntimeError, match=r"quant_min` should be less than or\s+equal"):
        f(x)
    with pytest.raises(RuntimeError, match=r"quant_min` should be less than or\s+equal"):
        torch.fake_quantize_per_tensor_affine(x, 0.1, 0, 5, 1)
    g = tracejit.compile(lambda i: torch.fake_quantize_per_tensor_affine(i, 0.1, 0, 0, 5))
    with pytest.raises(RuntimeError, match="floating point input, got int64"):
        g(torch.arange(3))
    h = tracejit.compile(lambda x: torch.round(x, decimals=1, out=x))
    mine, eager = x.clone() * 3.3, x.clone() * 3.3      # out= writes into x, as eager does
    h(mine)
    torch.round(eager, decimals=1, out=eager)
    torch.testing.assert_close(mine, eager, rtol=0, atol=0)
