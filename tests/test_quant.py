"""Dynamic INT8 quantization (issue 23): the int8 GEMM (csrc/emit/qgemm.c) on every
instruction set this CPU has against exact integer products, and
tracejit.quantize_dynamic against the float64 model (a stated bound per layer), torch's
own quantize_dynamic, its eager forward, later calls, and its refusals."""
import numpy as np
import pytest

import tracejit
from tracejit import _C

ISA = ["portable", "AVX2", "AVX-VNNI", "AVX-512 VNNI"]


def _levels():
    """Every int8 GEMM level this CPU runs (0 .. its own)."""
    prev = _C._qgemm_isa(3)[1]
    top = _C._qgemm_isa(3)[0]
    _C._qgemm_isa(prev)
    return list(range(top + 1))


@pytest.fixture
def isa_cap():
    prev = _C._qgemm_isa(-1)[1]
    yield lambda cap: _C._qgemm_isa(cap)[0]
    _C._qgemm_isa(prev)


def _int8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)   # -128 included


def _np_product(a, w):
    return (a[..., :, None, :].astype(np.int32) * w.astype(np.int32)).sum(-1)


SHAPES = [(1, 1, 1), (1, 7, 5), (3, 4, 63), (4, 4, 64), (5, 9, 65), (16, 64, 130),
          (17, 33, 200), (2, 130, 1000), (128, 12, 257)]


@pytest.mark.parametrize("M,N,K", SHAPES)
def test_int8_gemm_every_isa_exact_and_bitwise_equal(M, N, K, isa_cap):
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    a, w = _int8(rng, (M, K)), _int8(rng, (N, K))
    f = tracejit.compile(lambda x, y: _np_product(x, y))
    want = a.astype(np.int64) @ w.astype(np.int64).T
    outs = {}
    for level in _levels():
        assert isa_cap(level) == level
        got = f(a, w)
        assert got.dtype == np.int64 and got.shape == (M, N)
        np.testing.assert_array_equal(got, want, err_msg=ISA[level])
        outs[level] = got
    for level, got in outs.items():
        assert got.tobytes() == outs[0].tobytes(), ISA[level]
    if K >= 16 and N > 1:   # (a 1x1 product is a plain loop)
        assert "tj_gemm_s8s" in str(f.explain(a, w))


def test_int8_gemm_extremes_every_isa(isa_cap):
    """-128 * -128 everywhere (vpmaddubsw would saturate; 16-bit widening does not), and
    the shift trick's wrap-around: sums near the int32 limit."""
    K = 4096
    a = np.full((5, K), -128, np.int8)
    w = np.full((6, K), -128, np.int8)
    w[1] = 127
    w[2, ::2] = 127
    f = tracejit.compile(lambda x, y: _np_product(x, y))
    want = a.astype(np.int64) @ w.astype(np.int64).T
    for level in _levels():
        isa_cap(level)
        np.testing.assert_array_equal(f(a, w), want, err_msg=ISA[level])


def test_int8_gemm_int16_products_int32_sum_and_strided(isa_cap):
    """Other spellings of the pattern: int16 products summed to int32 (NumPy's dtype=), and
    a weight stored (K, N) (not along K: the portable loop), a batch dim over the product."""
    rng = np.random.default_rng(1)
    a, w, wt = _int8(rng, (6, 70)), _int8(rng, (9, 70)), _int8(rng, (70, 9))
    f = tracejit.compile(lambda x, y: (x[:, None, :].astype(np.int32) * y.astype(np.int32))
                         .sum(-1, dtype=np.int32))
    f16 = tracejit.compile(lambda x, y: (x[:, None, :].astype(np.int16) * y.astype(np.int16))
                           .sum(-1))
    g = tracejit.compile(lambda x, y: (x[:, None, :].astype(np.int32) * y.T.astype(np.int32))
                         .sum(-1))
    ab = _int8(rng, (3, 6, 70))
    h = tracejit.compile(lambda x, y: _np_product(x, y))
    for level in _levels():
        isa_cap(level)
        got = f(a, w)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, a.astype(np.int32) @ w.astype(np.int32).T)
        np.testing.assert_array_equal(f16(a, w), a.astype(np.int64) @ w.astype(np.int64).T)
        np.testing.assert_array_equal(g(a, wt), a.astype(np.int64) @ wt.astype(np.int64))
        np.testing.assert_array_equal(h(ab, w), ab.astype(np.int64) @ w.astype(np.int64).T)
    for fn, x, y in ((f, a, w), (f16, a, w), (h, ab, w)):
        assert "tj_gemm_s8s" in str(fn.explain(x, y))


def test_int8_gemm_second_call_other_values_and_sizes():
    rng = np.random.default_rng(2)
    f = tracejit.compile(lambda x, y: _np_product(x, y))
    for M, N, K in [(4, 8, 100), (4, 8, 100), (7, 8, 100), (4, 3, 31)]:
        a, w = _int8(rng, (M, K)), _int8(rng, (N, K))
        np.testing.assert_array_equal(f(a, w), a.astype(np.int64) @ w.astype(np.int64).T)


def test_isa_hook_reports_and_caps():
    level, prev = _C._qgemm_isa(0)
    assert level == 0
    assert _C._qgemm_isa(prev)[0] >= 0
    assert _C._qgemm_isa(-1)[1] == prev


# ---- tracejit.quantize_dynamic ---------------------------------------------------------

torch = pytest.importorskip("torch")
nn = torch.nn


def _mlp(d_in=64, h=96, d_out=10, bias=True):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d_in, h, bias=bias), nn.ReLU(), nn.Linear(h, h), nn.GELU(),
                         nn.Linear(h, d_out, bias=bias)).eval()


def _quantize(m):
    return tracejit.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)


def _bound(x, q):
    """The stated bound of one quantized Linear against float64, per output element:
    |x.w - xq.wq| <= s_w[n]/2 * sum|x| + s_x[m]/2 * sum|wq_n * s_w[n]| (each factor off by
    at most half its step), plus float32 rounding of the dequantization (1e-5 relative)."""
    x = x.double()
    sx = (x.abs().amax(-1, keepdim=True) / 127)
    w = q.weight_int8.double() * q.weight_scale.double()[:, None]
    return (0.5 * q.weight_scale.double() * x.abs().sum(-1, keepdim=True)
            + 0.5 * sx * w.abs().sum(-1)) * (1 + 1e-5) + 1e-6


def test_each_layer_within_stated_bound_of_float64():
    torch.manual_seed(1)
    lin = nn.Linear(200, 70)
    q = _quantize(lin)
    for x in (torch.randn(16, 200), torch.randn(3, 5, 200) * 10, torch.rand(1, 200)):
        with torch.no_grad():
            got = q(x).double()
            ref = x.double() @ lin.weight.double().T + lin.bias.double()
        err = (got - ref).abs()
        assert (err <= _bound(x, q.module)).all(), float((err - _bound(x, q.module)).max())
        assert err.max() > 0   # (it is quantized)


def test_layers_of_a_model_within_bounds_and_eager_exact():
    m = _mlp()
    q = _quantize(m)
    assert [type(c).__name__ for c in q.module] == ["QuantLinear", "ReLU", "QuantLinear",
                                                     "GELU", "QuantLinear"]
    x = torch.randn(16, 64)
    with torch.no_grad():
        h = x
        for qc, c in zip(q.module, m):   # each layer on the quantized model's own input
            if isinstance(c, nn.Linear):
                ref = h.double() @ c.weight.double().T + c.bias.double()
                err = (qc(h).double() - ref).abs()
                assert (err <= _bound(h, qc)).all()
            h = qc(h)
        torch.testing.assert_close(q(x), q.module(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 16, 33])
def test_against_torch_quantize_dynamic_and_fp32(batch):
    import warnings
    m = _mlp(128, 256, 32)
    q = _quantize(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
    x = torch.randn(batch, 128)
    with torch.no_grad():
        want, got, theirs = m(x), q(x), tq(x)
    scale = want.abs().mean()
    ours, torchs = (got - want).abs().mean() / scale, (theirs - want).abs().mean() / scale
    # per-channel weights and per-row 8-bit activations: on average no worse than torch's
    # per-tensor, reduce_range kernels, and both within a few percent of FP32
    assert ours <= torchs * 1.1 + 1e-3, (ours, torchs)
    assert ours < 0.02 and torchs < 0.05
    assert (got - theirs).abs().max() / want.abs().max() < 0.08


def test_second_call_other_values_and_shapes_match_eager():
    q = _quantize(_mlp())
    with torch.no_grad():
        for shape in [(8, 64), (8, 64), (2, 64), (4, 3, 64), (1, 64)]:
            x = torch.randn(*shape) * float(np.random.default_rng(len(shape)).uniform(0.1, 10))
            got = q(x)
            assert got.shape == (*shape[:-1], 10)
            torch.testing.assert_close(got, q.module(x), rtol=1e-6, atol=1e-6)


def test_no_bias_nested_and_float_layers_kept():
    torch.manual_seed(3)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(32)
            self.block = nn.Sequential(nn.Linear(32, 48, bias=False), nn.Tanh())
            self.head = nn.Linear(48, 5)

        def forward(self, x):
            return self.head(self.block(self.norm(x))).softmax(-1)

    net = Net().eval()
    q = _quantize(net)
    assert type(q.module.norm) is nn.LayerNorm and q.module.block[0].bias is None
    x = torch.randn(7, 32)
    with torch.no_grad():
        torch.testing.assert_close(q(x), q.module(x), rtol=1e-6, atol=1e-6)
        assert (q(x) - net(x)).abs().max() < 0.02
    assert type(net.block[0]) is nn.Linear   # the original model is left as it was


def test_zero_and_nonfinite_rows():
    lin = nn.Linear(16, 4)
    q = _quantize(lin)
    x = torch.randn(4, 16)
    x[1] = 0
    x[2, 3] = float("nan")
    x[3, 0] = float("inf")
    with torch.no_grad():
        got = q(x)
        torch.testing.assert_close(got[1], lin.bias.detach())
        assert torch.isnan(got[2]).all() and torch.isnan(got[3]).all()
        assert torch.isfinite(got[0]).all()
        torch.testing.assert_close(got, q.module(x), rtol=1e-6, atol=1e-6, equal_nan=True)


def test_weight_memory_ratio():
    m = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024))
    q = _quantize(m)
    fp = sum(p.numel() * p.element_size() for p in m.parameters())
    assert q.weight_bytes() / fp <= 0.27
    assert q.module[0].weight_int8.dtype == torch.int8


def test_quantized_layer_runs_the_int8_gemm():
    q = _quantize(_mlp())
    x = torch.randn(16, 64)
    with torch.no_grad():
        text = str(q.explain(x))
    assert text.count("tj_gemm_s8s64(po") == 3


@pytest.mark.parametrize("spec,what", [({nn.LSTM}, "LSTM"), ({nn.Linear, nn.Conv2d}, "Conv2d"),
                                       ({nn.Linear: None}, "dict")])
def test_refuses_other_module_types_by_name(spec, what):
    with pytest.raises(tracejit.TraceError, match=what):
        tracejit.quantize_dynamic(_mlp(), spec, dtype=torch.qint8)


@pytest.mark.parametrize("dtype", ["float16", "quint8", "qint32"])
def test_refuses_other_dtypes_by_name(dtype):
    with pytest.raises(tracejit.TraceError, match=f"dtype=torch.{dtype}"):
        tracejit.quantize_dynamic(_mlp(), {nn.Linear}, dtype=getattr(torch, dtype))


def test_refuses_float64_input_at_the_line():
    q = _quantize(nn.Linear(8, 3))
    with pytest.raises(tracejit.TraceError, match="float32 input, not torch.float64") as e:
        with torch.no_grad():
            q(torch.randn(2, 8, dtype=torch.float64))
    assert "_quant.py" in str(e.value)


def test_refuses_backward():
    q = _quantize(nn.Linear(8, 3))
    x = torch.randn(2, 8, requires_grad=True)
    with pytest.raises(tracejit.TraceError, match="no backward"):
        q(x)
    with torch.no_grad():
        assert q(x).shape == (2, 3)


def test_refuses_non_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        tracejit.quantize_dynamic(lambda x: x, {nn.Linear})


def test_eager_int8_product_is_exact_and_the_traced_one():
    """QuantLinear run eagerly (or a compiled call's eager fallback) computes the same
    integers as the traced pattern, through a float64 product (no (M, N, K) array)."""
    from tracejit._quant import int8_matmul_t
    g = torch.Generator().manual_seed(4)
    a = torch.randint(-128, 128, (2, 9, 4096), generator=g, dtype=torch.int8)
    w = torch.randint(-128, 128, (11, 4096), generator=g, dtype=torch.int8)
    a[0, 0], w[0] = -128, -128
    want = a.long() @ w.long().T
    assert torch.equal(int8_matmul_t(a, w), want)
    assert torch.equal(tracejit.compile(int8_matmul_t)(a, w), want)
