"""torch tensors in and out (DLPack, zero-copy), the cache key, torch's promotion rules,
errors, other DLPack producers and compile(nn.Module). The vocabulary is in
test_torch_vocab.py. Skipped without torch."""
import json
import re

import numpy as np
import pytest

import tracejit
from conftest import run_python

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

DTYPES = [torch.float32, torch.float64]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_import_does_not_import_torch():
    code = ("import sys, json, tracejit, numpy as np\n"
            "f = tracejit.compile(lambda x: x * 2.0)\n"
            "f(np.ones(3))\n"
            "print(json.dumps('torch' in sys.modules))")
    rc, out, _, err = run_python(code)
    assert rc == 0, err
    assert out is False


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_are_torch_tensors_of_right_dtype_shape(dtype):
    x = torch.randn(3, 4, dtype=dtype, generator=_gen(0))
    y = torch.randn(4, dtype=dtype, generator=_gen(1))
    f = tracejit.compile(lambda x, y: (x * y + 1.0, (x - y).sum(1)))
    a, b = f(x, y)
    for r, e in zip((a, b), (x * y + 1.0, (x - y).sum(1))):
        assert type(r) is torch.Tensor and r.dtype == e.dtype and r.shape == e.shape
        assert r.device.type == "cpu" and not r.requires_grad
        torch.testing.assert_close(r, e)


def test_inputs_read_in_place_never_copied():
    """The compiled code reads the tensor's memory: a write through another view of
    the same storage between calls is seen, and inputs are never written."""
    x = torch.arange(6.0).reshape(2, 3)
    f = tracejit.compile(lambda x: x * 10.0)
    torch.testing.assert_close(f(x), x * 10.0)
    view = x.view(-1)
    view[4] = 100.0               # same storage, not the same Python object
    assert f(x)[1, 1].item() == 1000.0
    assert x[1, 1].item() == 100.0
    assert f.cache_info().hits == 1


@pytest.mark.parametrize("make", [
    lambda: torch.randn(5, 6, generator=_gen(2)).t(),                    # transposed
    lambda: torch.randn(5, 12, generator=_gen(3))[:, ::3],               # strided
    lambda: torch.randn(4, 6, generator=_gen(4))[1:3, 2:],               # storage offset
    lambda: torch.randn(1, 6, generator=_gen(5)).expand(4, 6),           # stride 0
    lambda: torch.randn(6, generator=_gen(6)).flip(0).reshape(2, 3),     # flip (copy)
])
def test_any_layout_read_in_place(make):
    x = make()
    f = tracejit.compile(lambda x: torch.exp(x) * 2.0 + x)
    r = f(x)
    torch.testing.assert_close(r, torch.exp(x) * 2.0 + x)
    assert r.is_contiguous()


def test_results_own_their_memory():
    x = torch.randn(8)
    f = tracejit.compile(lambda x: (x + 1.0, x + 1.0, x))
    a, b, c = f(x)
    assert a.data_ptr() != b.data_ptr()           # one traced value twice: two tensors
    assert c.data_ptr() != x.data_ptr()           # an input returned: a copy
    c[0] = 42.0
    assert x[0].item() != 42.0
    r1, r2 = f(x)[0], f(x)[0]
    assert r1.data_ptr() != r2.data_ptr()


def test_cache_key_distinguishes_torch_from_numpy():
    f = tracejit.compile(lambda x: x + 1.0)
    x = torch.ones(3)
    assert type(f(x)) is torch.Tensor
    assert type(f(x.numpy())) is np.ndarray
    assert type(f(x)) is torch.Tensor
    info = f.cache_info()
    assert info.misses == 2 and info.hits == 1
    f(torch.ones(4))
    assert f.last_retrace == "arg 0: shape (3,) -> (4,)"
    f(torch.ones(4, 3).t())
    assert f.last_retrace == "arg 0: shape (4,) -> (3, 4)"
    f(torch.ones(3, 4, dtype=torch.float64))
    assert f.last_retrace == "arg 0: dtype torch.float32 -> torch.float64"


def test_results_follow_first_array_argument():
    f = tracejit.compile(lambda x, y: x + y)
    xt, yn = torch.ones(3), np.ones(3, np.float32)
    assert type(f(xt, yn)) is torch.Tensor
    assert type(f(yn, xt)) is np.ndarray


@pytest.mark.parametrize("fn, args", [
    (lambda x, y: x / y, (torch.arange(1, 7), torch.arange(2, 8))),          # int / int -> float32
    (lambda x: x * 1.5, (torch.arange(6),)),                                  # int * float -> float32
    (lambda x: torch.exp(x), (torch.arange(6, dtype=torch.int32),)),          # int exp -> float32
    (lambda x, y: x + y, (torch.ones(3, dtype=torch.float32), torch.tensor(2.0, dtype=torch.float64))),
    (lambda x, y: x + y, (torch.ones(3, dtype=torch.int32), torch.tensor(2, dtype=torch.int64))),
    (lambda x, y: x * y, (torch.ones(3, dtype=torch.int64), torch.tensor(2.5, dtype=torch.float64))),
    (lambda x, y: x + y, (torch.ones(3, dtype=torch.bool), torch.tensor(3))),
    (lambda x: x.sum(), (torch.ones(3, dtype=torch.bool),)),
    (lambda x: torch.where(x > 2, x, 0.5), (torch.arange(6),)),
    (lambda x: x.float() / 3 + x, (torch.arange(6, dtype=torch.int32),)),
    (lambda x: x // 2 + x % 3, (torch.arange(-4, 4),)),
])
def test_torch_promotion(fn, args):
    """torch's rules, which differ from NumPy 2's: int / int and int * float give the
    default float dtype (float32); a 0-d tensor does not promote a dimensioned one
    within a category."""
    expected = fn(*args)
    r = tracejit.compile(fn)(*args)
    assert r.dtype == expected.dtype
    torch.testing.assert_close(r, expected)


def test_default_dtype_is_followed_and_checked_at_every_call():
    old = torch.get_default_dtype()
    f = tracejit.compile(lambda x: x / 2)
    g = tracejit.compile(lambda x: x / 2.0)       # float32 input: no default dtype used
    x = torch.arange(4)
    torch.set_default_dtype(torch.float64)
    try:
        assert f(x).dtype == torch.float64
        assert g(x.float()).dtype == torch.float32
    finally:
        torch.set_default_dtype(old)
    assert f(x).dtype == torch.float32
    assert f.last_retrace == "torch default dtype float64 -> float32"
    assert g(x.float()).dtype == torch.float32
    assert g.cache_info().misses == 1


def test_requires_grad_input_takes_part_in_autograd():
    # (tests/test_torch_autograd.py tests the autograd route itself)
    f = tracejit.compile(lambda x: x * 2.0)
    x = torch.randn(3, requires_grad=True)
    y = f(x)
    assert y.requires_grad and y.grad_fn is not None
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 2.0))
    with pytest.raises(TypeError, match=r"arg 0: this torch tensor requires grad while grad mode "
                                        r"is on: only arguments of a compiled function"):
        f.explain(x)
    with torch.no_grad():
        torch.testing.assert_close(f(x), x.detach() * 2.0)
    torch.testing.assert_close(f(x.detach()), x.detach() * 2.0)


def test_requires_grad_capture_is_refused_clearly():
    w = torch.randn(3, requires_grad=True)
    f = tracejit.compile(lambda x: x * w)
    with pytest.raises(tracejit.TraceError, match="reads a torch tensor .* that requires grad"):
        f(torch.ones(3))
    with torch.no_grad():
        torch.testing.assert_close(f(torch.ones(3)), w.detach())
        w.requires_grad_(False)
    w.requires_grad_(True)
    with pytest.raises(TypeError, match="the torch tensor 'w' the compiled function reads "
                                        "requires grad while grad mode is on: only arguments"):
        f(torch.ones(3))


def test_unsupported_dtype_and_device_are_refused():
    f = tracejit.compile(lambda x: x * 2)
    for dt in (torch.float16, torch.bfloat16, torch.uint16, torch.float8_e4m3fn, torch.complex64):
        with pytest.raises(TypeError, match=rf"arg 0: this torch tensor has dtype {dt}, which "
                                            r"tracejit does not support yet \(supported: "):
            f(torch.ones(3, dtype=dt))
    with pytest.raises(TypeError, match=r"arg 0\[1\]: this torch tensor has dtype torch.bfloat16"):
        tracejit.compile(lambda xs: xs[0] * 2)((torch.ones(3), torch.ones(3, dtype=torch.bfloat16)))
    if torch.cuda.is_available():   # the CUDA backend (tests/test_cuda.py)
        assert torch.equal(f(torch.ones(3, device="cuda")), torch.full((3,), 2.0, device="cuda"))


def test_meta_and_sparse_tensors_are_refused_by_name():
    """torch's own C++ error (with its stack) stays inside: the refusal names the device
    or the layout."""
    f = tracejit.compile(lambda x: x * 2)
    with pytest.raises(TypeError, match=r"^arg 0: this torch tensor is on device 'meta', which "
                                        r"has no data tracejit can read"):
        f(torch.ones(3, device="meta"))
    with pytest.raises(TypeError, match=r"^arg 0: this torch tensor has layout torch.sparse_coo; "
                                        r"tracejit reads dense \(torch.strided\) tensors only: "
                                        r"pass x.to_dense\(\)$"):
        f(torch.eye(3).to_sparse())
    with pytest.warns(UserWarning, match="Sparse CSR"):   # torch's, at construction
        csr = torch.eye(3).to_sparse_csr()
    with pytest.raises(TypeError, match=r"has layout torch.sparse_csr"):
        f(csr)


def test_closure_tensor_read_at_call_time():
    w = torch.ones(3)
    f = tracejit.compile(lambda x: x * w)
    torch.testing.assert_close(f(torch.full((3,), 2.0)), torch.full((3,), 2.0))
    w.mul_(5.0)
    torch.testing.assert_close(f(torch.full((3,), 2.0)), torch.full((3,), 10.0))
    assert f.cache_info().hits == 1


def test_global_tensor_rebound_retraces():
    g = {"torch": torch}
    exec("W = torch.ones(3)\ndef fn(x):\n    return x + W\n", g)
    f = tracejit.compile(g["fn"])
    torch.testing.assert_close(f(torch.zeros(3)), torch.ones(3))
    g["W"] = torch.full((3,), 4.0)
    torch.testing.assert_close(f(torch.zeros(3)), torch.full((3,), 4.0))
    g["W"] = torch.ones(2, 3)
    torch.testing.assert_close(f(torch.zeros(3)), torch.ones(2, 3))
    assert f.last_retrace == "global 'W': float32(3,) -> float32(2, 3)"


def test_real_tensor_on_either_side_of_operators():
    t = torch.arange(1.0, 5.0)

    def fn(x):
        return (t + x, x + t, t - x, x - t, t * x, t / x, x / t, t ** x.abs(), t @ x, x @ t,
                t > x, t == x, t[x.long().clamp(0, 3)])

    x = torch.tensor([0.5, 1.0, 2.0, 3.0])
    for r, e in zip(tracejit.compile(fn)(x), fn(x)):
        assert r.dtype == e.dtype
        torch.testing.assert_close(r, e)


def test_factories_are_captured_as_constants():
    def fn(x):
        return (x + torch.zeros(3) + torch.ones(3) * torch.full((3,), 2.0)
                + torch.arange(3) + torch.tensor([1.0, 2.0, 3.0]) + torch.eye(3)[0]
                + torch.linspace(0, 1, 3) + torch.empty(3).zero_())

    x = torch.randn(3)
    f = tracejit.compile(fn)
    torch.testing.assert_close(f(x), fn(x))
    torch.testing.assert_close(f(x), fn(x))
    assert f.cache_info().hits == 1


def test_like_factories_of_traced_values():
    def fn(x):
        return (torch.zeros_like(x), torch.ones_like(x, dtype=torch.int32), torch.full_like(x, 7.0),
                torch.empty_like(x).shape)

    x = torch.randn(2, 3, dtype=torch.float64)
    r, e = tracejit.compile(fn)(x), fn(x)
    for a, b in zip(r[:3], e[:3]):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)
    assert r[3] == e[3]


def test_tensor_attributes_while_tracing():
    seen = {}

    def fn(x):
        seen.update(shape=x.shape, size=x.size(), size1=x.size(1), dim=x.dim(), numel=x.numel(),
                    dtype=x.dtype, ndim=x.ndim, device=x.device, is_fp=x.is_floating_point(),
                    T=x.T.shape, requires_grad=x.requires_grad)
        return x * 1.0

    x = torch.randn(2, 3)
    tracejit.compile(fn)(x)
    assert seen == dict(shape=x.shape, size=x.size(), size1=3, dim=2, numel=6, dtype=torch.float32,
                        ndim=2, device=torch.device("cpu"), is_fp=True, T=torch.Size([3, 2]),
                        requires_grad=False)
    assert type(seen["shape"]) is torch.Size


def test_unsupported_torch_function_names_it():
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(tracejit.TraceError,
                       match=r"torch\.nn\.functional\.grid_sample is not supported by tracejit "
                             r"yet\n  at .*test_torch\.py:\d+, in <lambda>"):
        tracejit.compile(lambda x: F.grid_sample(x, x[..., :2]))(x)
    with pytest.raises(tracejit.TraceError, match=r"torch\.fft\.fft is not supported"):
        tracejit.compile(lambda x: torch.fft.fft(x))(x)
    with pytest.raises(tracejit.TraceError, match=r"torch\.Tensor\.stft is not supported by "
                                                  r"tracejit yet"):
        tracejit.compile(lambda x: x.stft(4))(x)
    with pytest.raises(tracejit.TraceError, match=r"torch\.Tensor\.backward\(\) is not supported"):
        tracejit.compile(lambda x: x.backward())(x)


def test_data_dependent_is_refused_dropout_draws():
    x = torch.randn(4)
    with pytest.raises(tracejit.TraceError, match=r"torch\.where\(cond\) with one argument"):
        tracejit.compile(lambda x: torch.where(x > 0))(x)
    drop = tracejit.compile(lambda x: F.dropout(x, 0.5))
    x8 = torch.ones(64)
    assert not torch.equal(drop(x8), drop(x8))     # fresh masks (tests/test_random_torch.py)
    torch.testing.assert_close(tracejit.compile(lambda x: F.dropout(x, 0.5, training=False))(x), x)
    branch = tracejit.compile(lambda x: x if x.sum() > 0 else -x)   # a guard, both ways
    for v in (x, -x.abs(), x.abs()):
        torch.testing.assert_close(branch(v), v if v.sum() > 0 else -v)
    # out= writes its tensor (tests/test_train_step.py: test_out_writes)
    y, y2 = x.clone(), x.clone()
    assert tracejit.compile(lambda x: torch.add(x, 1, out=x))(y) is y
    torch.testing.assert_close(y, torch.add(y2, 1, out=y2))


def test_torch_op_on_unsupported_dtype_raises():
    with pytest.raises(tracejit.TraceError, match=r"torch\.subtract is not supported on bool"):
        tracejit.compile(lambda x: x - x)(torch.ones(3, dtype=torch.bool))


def test_mixed_numpy_and_torch_inputs():
    f = tracejit.compile(lambda x, y: x * y)
    r = f(torch.ones(3), np.full(3, 2.0, np.float32))
    torch.testing.assert_close(r, torch.full((3,), 2.0))


def test_numpy_dlpack_producer_other_than_ndarray():
    class Producer:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    a = np.arange(6.0).reshape(2, 3)
    f = tracejit.compile(lambda x: x * 2.0)
    r = f(Producer(a))
    np.testing.assert_allclose(np.asarray(r), a * 2.0)


def test_dlpack_producer_numpy_cannot_read_is_refused_clearly():
    class OnDevice:
        def __dlpack__(self, **kw):
            raise BufferError("the data is on a GPU")

        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(TypeError, match=r"arg 0: this OnDevice array cannot be read on the CPU "
                                        r"\(numpy\.from_dlpack: "):
        tracejit.compile(lambda x: x * 2.0)(OnDevice())


def test_jax_arrays_in_and_out():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3)
    f = tracejit.compile(lambda x: x * 2.0 + 1.0)
    r = f(x)
    assert type(r) is type(x)
    np.testing.assert_allclose(np.asarray(r), np.asarray(x) * 2.0 + 1.0)
    assert type(f(np.asarray(x))) is np.ndarray


# ---- compile(nn.Module) ------------------------------------------------------------------

def _mlp(dtype):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8), nn.Tanh(),
                         nn.Linear(8, 3)).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_module_forward_matches_eager(dtype):
    m = _mlp(dtype)
    cm = tracejit.compile(m)
    x = torch.randn(32, 16, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(cm(x), m(x))
        torch.testing.assert_close(cm(x), m(x))
    assert cm.cache_info().hits == 1


def test_module_parameters_read_at_call_time():
    m = _mlp(torch.float32)
    cm = tracejit.compile(m)
    x = torch.randn(4, 16)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    with torch.no_grad():
        before = cm(x)
    m(x).pow(2).sum().backward()
    opt.step()                                   # in-place parameter update
    with torch.no_grad():
        torch.testing.assert_close(cm(x), m(x))
        assert not torch.allclose(cm(x), before)
        m[0].weight = nn.Parameter(torch.randn(32, 16))   # a new Parameter object
        torch.testing.assert_close(cm(x), m(x))
    assert cm.cache_info().misses == 1
    with torch.no_grad():
        m[0].weight = nn.Parameter(torch.randn(16, 32).t())   # a new layout: retrace
        torch.testing.assert_close(cm(x), m(x))
    assert "module parameter or buffer 'weight': float32(32, 16) -> float32(32, 16) strided" \
        in cm.last_retrace


def test_module_parameters_requiring_grad_take_part_in_autograd():
    # (tests/test_torch_autograd.py tests the module route further)
    m = _mlp(torch.float32)
    cm = tracejit.compile(m)
    x = torch.randn(2, 16)
    out = cm(x)
    assert out.requires_grad
    torch.testing.assert_close(out, m(x).detach())


def test_module_with_buffers_and_layernorm():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 6)
            self.norm = nn.LayerNorm(6)
            self.register_buffer("shift", torch.linspace(-1, 1, 6))

        def forward(self, x):
            return F.gelu(self.norm(self.lin(x))) + self.shift

    m = Net().eval()
    cm = tracejit.compile(m)
    x = torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(cm(x), m(x))
        m.shift.add_(1.0)
        torch.testing.assert_close(cm(x), m(x))


def test_module_dropout_eval_and_train():
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    x = torch.randn(2, 4)
    with torch.no_grad():
        f = tracejit.compile(m)
        assert not torch.equal(f(x), f(x))      # training: a fresh mask at every call
        m.eval()
        torch.testing.assert_close(tracejit.compile(m)(x), m(x))


def test_alloc_modes_agree():
    f = tracejit.compile(lambda x: x * 2.0)
    x = torch.randn(5)
    old = tracejit._C._torch_alloc(0)
    try:
        for mode in (0, 1, 2, 3):
            tracejit._C._torch_alloc(mode)
            r = f(x)
            assert type(r) is torch.Tensor and r.dtype == torch.float32
            torch.testing.assert_close(r, x * 2.0)
        with pytest.raises(ValueError, match="mode 0, 1, 2 or 3"):
            tracejit._C._torch_alloc(7)
    finally:
        tracejit._C._torch_alloc(old)


def test_results_survive_their_inputs_and_gc():
    import gc
    f = tracejit.compile(lambda x: x.exp())
    outs = [f(torch.full((100,), float(i))) for i in range(50)]
    gc.collect()
    for i, r in enumerate(outs):
        torch.testing.assert_close(r, torch.full((100,), float(i)).exp())
    assert json.dumps(outs[0].tolist()[:1])


@pytest.mark.parametrize("n", [0, 1, 7, 48, 49, 16368, 16369, 40000])
def test_recycled_result_memory_never_aliases_a_live_result(n):
    # results up to 64 KiB reuse the blocks of dead ones (csrc/dlpack.c): sizes around
    # the class edges (the 256-byte header included), live results stay distinct
    f = tracejit.compile(lambda x: x * 2.0 + 1.0)
    live, ptrs = [], set()
    for i in range(12):
        x = torch.full((n,), float(i))
        r = f(x)
        if n:
            assert r.data_ptr() % 64 == 0 and r.data_ptr() not in ptrs
            ptrs.add(r.data_ptr())
        live.append((i, r))
        if i % 3 == 2:   # some die, their blocks go back
            gone = live.pop(0)[1]
            ptrs.discard(gone.data_ptr())
            del gone
    for i, r in live:
        assert r.shape == (n,)
        torch.testing.assert_close(r, torch.full((n,), 2.0 * i + 1.0))


def test_recycled_result_memory_released_on_other_threads():
    # torch may free a result on any thread, without the GIL: the cache is lock-free
    import threading
    f = tracejit.compile(lambda x: x + 1.0)
    x = torch.arange(300, dtype=torch.float32)
    want = x + 1.0
    errors = []

    def churn(batch):
        try:
            for r in batch:
                torch.testing.assert_close(r, want)
            batch.clear()   # the last references: freed on this thread
        except Exception as e:   # reported below
            errors.append(e)
    for _ in range(20):
        batches = [[f(x) for _ in range(50)] for _ in range(4)]
        threads = [threading.Thread(target=churn, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        mine = [f(x) for _ in range(50)]
        for t in threads:
            t.join()
        for r in mine:
            torch.testing.assert_close(r, want)
    assert not errors


def test_bench_torch_quick_run_checks_results():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "benchmarks/bench_torch.py", "--quick", "--peers",
                        "eager,tracejit", "--cases", "tiny,mlp,logjoint"],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tracejit/eager" in r.stdout and "logjoint" in r.stdout and "FAILED" not in r.stdout


def test_ops_on_tensors_read_at_call_time_are_traced_not_snapshots():
    """W.t() of a global (or of a module's parameter) is part of the trace: rebinding W,
    or replacing the parameter, is seen; factories and what is computed from them only
    are constants."""
    g = {"torch": torch}
    exec("W = torch.randn(3, 4)\n"
         "def fn(x):\n"
         "    return (x @ W.t() + W.sum(0)[:3] + torch.ones(3) * 2 + W.double().float()[0, :3]\n"
         "            + x @ W.T + W.mT[0])\n",
         g)
    f = tracejit.compile(g["fn"])
    x = torch.randn(2, 4)
    torch.testing.assert_close(f(x), g["fn"](x))
    g["W"] = torch.randn(3, 4)
    torch.testing.assert_close(f(x), g["fn"](x))
    assert f.cache_info().misses == 1

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return x @ self.w.t()

    m = M()
    cm = tracejit.compile(m)
    with torch.no_grad():
        torch.testing.assert_close(cm(x), m(x))
        m.w = nn.Parameter(torch.randn(4, 4))
        torch.testing.assert_close(cm(x), m(x))
    assert cm.cache_info().misses == 1


def test_module_train_eval_switch_is_part_of_the_key():
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    cm = tracejit.compile(static_argnames=())(m)
    x = torch.randn(2, 4)
    with torch.no_grad():
        m.eval()
        torch.testing.assert_close(cm(x), m(x))
        m.train()
        assert not torch.equal(cm(x), cm(x))        # a fresh dropout mask per call
        m.eval()
        torch.testing.assert_close(cm(x), m(x))
        assert "-- generated C" in cm.explain(x)
    assert cm.cache_info().hits == 2
    assert re.fullmatch(r"<tracejit.CompiledModule of Sequential: 2 variants \((.*)\), "
                        r"2 hits, 2 misses>", repr(cm)), repr(cm)


def test_named_tuple_of_traced_values_comes_back_as_tuple():
    x = torch.randn(3, 4)
    values, indices = tracejit.compile(lambda x: torch.max(x, dim=1))(x)
    e = torch.max(x, dim=1)
    torch.testing.assert_close(values, e.values)
    torch.testing.assert_close(indices, e.indices)


def test_broadcast_tensors():
    """torch.distributions' constructors (and so Pyro's) broadcast their parameters."""
    def fn(a, b, c):
        x, y, z = torch.broadcast_tensors(a, b, c)
        return x + 2 * y - z, y.shape

    f = tracejit.compile(fn)
    for shapes in [((3, 1), (1, 4), ()), ((2, 3, 4), (4,), (3, 1))]:
        args = [torch.randn(s) for s in shapes]
        got, want = f(*args), fn(*args)
        torch.testing.assert_close(got[0], want[0])
        assert tuple(got[1]) == tuple(want[1])


def test_a_torch_distributions_log_prob_is_eagers_and_rsample_draws():
    dist = pytest.importorskip("torch.distributions")
    was = dist.Distribution._validate_args
    dist.Distribution.set_default_validate_args(False)   # its checks branch on values
    try:
        def log_prob(loc, scale, x):
            return dist.Normal(loc, scale).log_prob(x).sum()

        f = tracejit.compile(log_prob)
        loc, scale = torch.zeros(3), torch.ones(3)
        for _ in range(2):
            x = torch.randn(3)
            torch.testing.assert_close(f(loc, scale, x), log_prob(loc, scale, x))
        rsample = tracejit.compile(lambda m, s: dist.Normal(m, s).rsample())
        assert not torch.equal(rsample(loc, scale), rsample(loc, scale))
    finally:
        dist.Distribution.set_default_validate_args(was)
