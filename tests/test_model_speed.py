"""Model-sized work's mechanisms (issue 18) against eager NumPy / torch: a product whose
operand is broadcast along a batch dim (a convolution's weight against each image's
im2col columns) runs as GEMM calls, not a fused loop; scratch larger than a plan keeps
between calls comes from recycled blocks, and calls that overlap get blocks of their
own."""
import threading

import numpy as np
import pytest

import tracejit
from test_contract import arg, check


def gemm_calls(f, *args):
    src = f.explain(*args).source
    return src.count("tj_gemm_f32(po") + src.count("tj_gemm_f64(po")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["c", "T", "strided", "neg"])
def test_weight_broadcast_along_batch_is_gemm_calls(layout, dtype):
    # w (O, K) against cols (N, K, L): out[n, o, l] = sum_k w[o, k] * cols[n, k, l];
    # N and L both vary in cols only and cannot merge (K lies between them): L is the
    # GEMM's columns, N a loop of GEMM calls with w's batch stride 0
    rng = np.random.default_rng(5)
    w = arg(rng, (6, 27), dtype, layout)
    cols = arg(rng, (4, 27, 30), dtype, layout)
    f = check(lambda w, cols: w @ cols, w, cols, k=27)
    g = check(lambda w, cols: (w[None, :, None, :] * cols.transpose(0, 2, 1)[:, None]).sum(-1),
              w, cols, k=27)
    if layout == "c":
        assert gemm_calls(f, w, cols) == 1 and gemm_calls(g, w, cols) == 1
        assert "6LL, 30LL, 27LL" in g.explain(w, cols).source


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_several_row_dims_of_one_operand(dtype):
    # rows vary along two dims of a that do not merge (a strided view): the inner one
    # is M, the outer a batch dim where b is broadcast
    rng = np.random.default_rng(9)
    fn = lambda a, b: (a[:, :, None, :] * b.T[None, None]).sum(-1)
    a = arg(rng, (5, 16, 32), dtype, "strided")
    b = arg(rng, (32, 12), dtype)
    f = check(fn, a, b, k=32)
    assert gemm_calls(f, a, b) == 1
    # and a second call with other values and other strides agrees
    a2 = arg(rng, (5, 16, 32), dtype, "T")
    np.testing.assert_allclose(f(a2, b), np.einsum("ijk,kl->ijl", a2, b),
                               rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)
    # each call under 4096 multiply-adds (7 x 11 x 16): the fused loop, agreeing too
    a, b = arg(rng, (5, 7, 16), dtype, "strided"), arg(rng, (16, 11), dtype)
    assert gemm_calls(check(fn, a, b, k=16), a, b) == 0


def _big_scratch(x):
    # intermediates of 8 MB each, alive together: scratch above the 16 MB a plan keeps
    a = x * 2.0
    b = np.exp(x)
    c = a @ b.T
    return c.sum() + (a * b).sum(axis=0)


def test_large_scratch_recycled_and_correct():
    rng = np.random.default_rng(1)
    f = tracejit.compile(_big_scratch)
    for _ in range(3):   # recycled blocks hold the last call's values: overwritten
        x = rng.standard_normal((1024, 2048))
        np.testing.assert_allclose(f(x), _big_scratch(x), rtol=1e-9)
    plan = f.explain(x)
    assert "-- memplan" in str(plan)


def test_large_scratch_calls_from_threads_get_their_own_blocks():
    rng = np.random.default_rng(2)
    f = tracejit.compile(_big_scratch)
    xs = [rng.standard_normal((1024, 2048)) for _ in range(4)]
    want = [_big_scratch(x) for x in xs]
    f(xs[0])
    got, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(3):
                got[i] = f(xs[i])
        except Exception as e:   # pragma: no cover (reported below)
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9)


def _mnist_net(torch):
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):   # pytorch/examples' mnist/main.py
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
            self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv2(F.relu(self.conv1(x))))
            x = torch.flatten(F.max_pool2d(x, 2), 1)
            return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)
    return Net


@pytest.mark.parametrize("batch", [1, 3, 16])
def test_mnist_convnet_convolutions_are_gemm_calls(batch):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = _mnist_net(torch)().eval()
    f = tracejit.compile(m)
    for seed in (1, 2):   # trace, then replay with other values
        x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            torch.testing.assert_close(f(x), m(x), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        src = f.explain(x).source
    # conv1, conv2 (a loop of per-image GEMMs where batch > 1), fc1, fc2
    assert src.count("tj_gemm_f32(po") == 4


def _reshaped_products(a, b):
    y = a @ b                           # (N, O, L): a matrix product's own result
    z = y.reshape(y.shape[0], -1)       # read through a flat view, no copy in between
    t = y.reshape(y.shape[0], 4, -1).sum(-1)
    y[0] = y[0] * 2.0                   # a later write to y: z (a view) sees it
    return z * 1.0, t, y.sum()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reshaped_product_is_read_in_place_and_agrees(dtype):
    rng = np.random.default_rng(4)
    a = arg(rng, (6, 12), dtype)
    b = arg(rng, (3, 12, 8), dtype)
    f = tracejit.compile(_reshaped_products)
    for _ in range(2):   # trace, then replay with other values
        a, b = arg(rng, (6, 12), dtype), arg(rng, (3, 12, 8), dtype)
        want = _reshaped_products(a.copy(), b.copy())
        got = f(a, b)
        tol = 1e-5 if dtype == "float32" else 1e-12
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def test_reshaped_product_has_no_copy():
    rng = np.random.default_rng(6)
    a, b = arg(rng, (6, 12)), arg(rng, (3, 12, 8))
    fn = lambda a, b: (a @ b).reshape(3, -1) + 1.0
    f = check(fn, a, b, k=12)
    text = str(f.explain(a, b))
    after = text.split("-- dce")[1].split("-- fuse")[0]
    assert "RSUM" in after and "COPY" not in after
