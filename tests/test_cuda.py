"""The CUDA backend on a GPU (skipped without one, or without NVRTC): the driver loads
through dlopen; compiled functions replay on torch CUDA tensors (results on the device,
work on torch's current stream) and agree with torch CUDA eager; the generated kernels
alone (tests/cuda_harness.py fills the parameter block as the runtime does) agree for
every elementwise op of the table and every reduction; argmax/argmin, scans and
gathers replay as torch eager computes them (an index out of bounds: IndexError);
reductions, argmax and scans are deterministic;
a busy stream orders correctly; failures are clear errors."""
import numpy as np
import pytest

import tracejit
from tracejit import _C

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
try:
    _C._nvrtc_version()
except RuntimeError as e:
    pytest.skip(f"NVRTC is not installed: {e}", allow_module_level=True)

from cuda_harness import run  # noqa: E402

DEV = torch.device("cuda", 0)
OPS = [op for op in tracejit.op_table() if op["numpy"]]
TORCH_NAME = {e[1]: e[2][0] for e in _C._op_table() if e[1] and e[2]}
TOL = {"float32": dict(rtol=2e-6, atol=1e-6), "float64": dict(rtol=1e-13, atol=1e-14)}


def example(dtype, shape=(37, 11), seed=0, low=0.1, high=0.9):
    g = torch.Generator().manual_seed(seed)
    if dtype == "bool":
        return (torch.rand(shape, generator=g) < 0.5).to(DEV)
    if dtype in ("int32", "int64"):
        return torch.randint(-20, 20, shape, generator=g).to(getattr(torch, dtype)).to(DEV)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * (high - low) + low
    return x.to(getattr(torch, dtype)).to(DEV)


def close(got, want, dtype):
    assert got.dtype == want.dtype and got.shape == want.shape
    if dtype in TOL and got.dtype.is_floating_point:
        torch.testing.assert_close(got, want, equal_nan=True, **TOL[dtype])
    else:
        assert torch.equal(got, want)


def test_device_is_found():
    name, major, minor, sms = _C._cuda_device(0)
    assert (major, minor) == torch.cuda.get_device_capability(0)
    assert sms == torch.cuda.get_device_properties(0).multi_processor_count
    assert name == torch.cuda.get_device_name(0)
    with pytest.raises(RuntimeError, match="CUDA device 63"):
        _C._cuda_device(63)


@pytest.mark.parametrize("op", [o for o in OPS if o["numpy"] in TORCH_NAME], ids=lambda o: o["name"])
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "float32", "float64"])
def test_elementwise_op_matches_torch(op, dtype):
    if dtype not in op["dtypes"]:
        pytest.skip(f"{op['name']} is not defined on {dtype}")
    fn = getattr(torch, TORCH_NAME[op["numpy"]])
    a, b = example(dtype, seed=1), example(dtype, seed=2)
    if dtype in ("int32", "int64"):   # no division by zero (CUDA's is undefined, NumPy's 0)
        b = torch.where(b == 0, torch.ones_like(b), b)
        if op["name"] in ("LSHIFT", "RSHIFT", "POW"):
            b = b.abs() % 8
    if op["arity"] == 3:
        args = (example("bool", seed=3), a, b)
    else:
        args = (a, b)[:op["arity"]]
    try:
        want = fn(*args)
    except NotImplementedError as e:   # torch CUDA lacks the kernel ("floor_cuda" on Bool)
        pytest.skip(f"torch CUDA eager: {e}")
    (got,) = run(lambda *xs: fn(*xs), *args)
    close(got, want, dtype)


@pytest.mark.parametrize("name", ["erf", "erfc", "lgamma", "digamma"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_ops_match_torch(name, dtype):
    fn = getattr(torch, name)
    x = example(dtype, low=-3, high=3)
    (got,) = run(lambda a: fn(a), x)
    torch.testing.assert_close(got, fn(x), rtol=1e-5 if dtype == "float32" else 1e-12,
                               atol=2e-5 if dtype == "float32" else 1e-12, equal_nan=True)


SHAPES = [(5,), (37, 11), (3, 40000), (20000, 3), (4, 5, 6), (1 << 20,)]


@pytest.mark.parametrize("red", ["sum", "prod", "amax", "amin"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_reductions_match_torch(red, dtype, shape):
    low, high = (0.99, 1.01) if red == "prod" else (-1, 1)
    x = example(dtype, shape, low=low, high=high)
    fn = getattr(torch, red)
    got = run(lambda a: (fn(a, dim=0), fn(a, dim=-1, keepdim=True)) if red in ("amax", "amin")
              else (fn(a), fn(a, dim=0), fn(a, dim=-1, keepdim=True)), x)
    want = ((fn(x, dim=0), fn(x, dim=-1, keepdim=True)) if red in ("amax", "amin")
            else (fn(x), fn(x, dim=0), fn(x, dim=-1, keepdim=True)))
    for g, w in zip(got, want):
        if dtype == "float32":   # torch accumulates in float32, tracejit in float64
            torch.testing.assert_close(g, w, rtol=1e-3 if red == "prod" else 1e-4, atol=1e-3)
        elif dtype == "float64":   # another summation order: within rounding
            torch.testing.assert_close(g, w, rtol=1e-11, atol=1e-10)
        else:
            assert torch.equal(g, w)


def test_max_propagates_nan():
    x = example("float32", (3, 50000), low=-1, high=1)
    x[1, 12345] = float("nan")
    (got,) = run(lambda a: torch.amax(a, dim=-1), x)
    assert torch.isnan(got[1]) and not torch.isnan(got[0]) and not torch.isnan(got[2])


def test_reductions_are_deterministic():
    x = example("float32", (1 << 22,), low=-1, high=1)
    first = run(lambda a: (a.sum(), (a * a).sum()), x)
    for _ in range(5):
        again = run(lambda a: (a.sum(), (a * a).sum()), x)
        assert all(torch.equal(f, g) for f, g in zip(first, again))


def test_busy_stream_orders_correctly():
    """Work queued before ours on the same stream finishes first: the kernels read what
    it wrote, with no synchronization of ours."""
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        x = torch.zeros(1 << 24, device=DEV)
        for _ in range(20):   # a long queue of prior work on s
            x.add_(1)
        (got,) = run(lambda a: a * 2 + 1, x, stream=s)
    torch.cuda.synchronize()
    assert torch.all(got == 41)


def test_scalar_arguments_and_broadcasting():
    a = example("float32", (6, 9))
    b = example("float32", (6, 1))
    (got,) = run(lambda x, y, s, k: torch.where(x > 0.5, x * s + k, y - x), a, b, 2.5, 3)
    close(got, torch.where(a > 0.5, a * 2.5 + 3, b - a), "float32")


def test_matrix_product_as_sums():
    a, w = example("float32", (32, 64)), example("float32", (64, 8))
    (got,) = run(lambda x, y: torch.tanh(x @ y + 1), a, w)
    torch.testing.assert_close(got, torch.tanh(a @ w + 1), rtol=1e-4, atol=1e-5)


def test_twelve_op_chain():
    x = example("float32", (1 << 20,))
    chain = lambda a: ((((((a * 2 + 1) * 0.5 - 0.25) * 3 + 2) / 7 - 1) * 1.5 + 0.5) * 2 - 3)
    (got,) = run(chain, x)
    close(got, chain(x), "float32")


def test_launch_errors_are_clear():
    with pytest.raises(RuntimeError, match="cuModuleLoadData"):
        _C._cuda_run(0, b"not a cubin", [("k", 1, 32)], b"\0" * 8, 0)
    src = tracejit.compile(lambda a: a + 1)._cuda_source(np.ones(3, np.float32))["source"]
    major, minor = torch.cuda.get_device_capability(0)
    image = _C._nvrtc_compile(src, major * 10 + minor)[0]
    with pytest.raises(RuntimeError, match="cuModuleGetFunction"):
        _C._cuda_run(0, image, [("no_such_kernel", 1, 32)], b"\0" * 8, 0)


def test_bench_cuda_quick_run():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "python"))
    r = subprocess.run([sys.executable, "benchmarks/bench_cuda.py", "--quick"], cwd=root,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "copy floor" in r.stdout and "12-op chain, 16M" in r.stdout, \
        r.stdout + r.stderr


# ---- the whole path: tracejit.compile(fn)(cuda tensors) ---------------------------


def test_replay_on_the_device():
    chain = lambda a: ((((((a * 2 + 1) * 0.5 - 0.25) * 3 + 2) / 7 - 1) * 1.5 + 0.5) * 2 - 3)
    f = tracejit.compile(chain)
    for n in (16, 1000, 1 << 20):
        x = example("float32", (n,))
        got = f(x)
        assert got.device == x.device and got.dtype == torch.float32
        close(got, chain(x), "float32")
        close(f(x), chain(x), "float32")   # the cache hit
    info = f.cache_info()
    assert info.hits >= 3 and info.misses == 3


PROGRAMS = {
    "softmax": (lambda x: torch.softmax(x, dim=-1), lambda: (example("float32", (8, 100)),)),
    "layer": (lambda x, w, b: torch.tanh(x @ w + b).sum(dim=0),
              lambda: (example("float32", (32, 64)), example("float32", (64, 8)),
                       example("float32", (8,)))),
    "where": (lambda x, b: torch.where(x > 0.5, x * 2, x.exp()) + b.sum(),
              lambda: (example("float64", (6, 9)), example("float64", (9,)))),
    "reductions": (lambda x: (x.sum(), x.amax(dim=0), x.prod(dim=1, keepdim=True), x.mean()),
                   lambda: (example("float64", (40, 30)),)),
    "scalars": (lambda x, s, k: x * s + k, lambda: (example("float32", (10,)), 2.5, 3)),
    "slices": (lambda x: x[1:, ::2].T * 2 + x[:-1, 1::2].T, lambda: (example("float64", (9, 12)),)),
    "twice": (lambda x: (x + 1, x + 1), lambda: (example("float32", (5,)),)),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_programs_match_eager(name):
    fn, make = PROGRAMS[name]
    args = make()
    f = tracejit.compile(fn)
    for _ in range(2):   # the compile, then the cache hit
        got, want = f(*args), fn(*args)
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            assert g.device == w.device and g.dtype == w.dtype
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    if name == "twice":   # distinct results stay distinct tensors
        assert got[0].data_ptr() != got[1].data_ptr()


def test_random_numbers_are_the_cpus():
    """A draw is Philox of (the call's key, the element's counter): the same key gives
    the same numbers on the GPU as on the CPU."""
    f = tracejit.compile(lambda x: x + torch.rand(x.shape, dtype=x.dtype))
    x = torch.zeros(1000, dtype=torch.float64)
    torch.manual_seed(7)
    cpu = f(x)
    torch.manual_seed(7)
    gpu = f(x.to(DEV))
    assert torch.equal(gpu.cpu(), cpu)


def test_device_is_part_of_the_key():
    f = tracejit.compile(lambda x: x * 3)
    x = torch.arange(5.0)
    assert torch.equal(f(x), x * 3)
    g = f(x.to(DEV))
    assert g.device == DEV and torch.equal(g.cpu(), x * 3)
    assert f.cache_info().misses == 2


def test_mixing_devices_is_refused():
    f = tracejit.compile(lambda x, y: x + y)
    with pytest.raises(tracejit.TraceError, match="more than one device: cuda:0, and a torch "
                                                  "argument on cpu"):
        f(torch.ones(3, device=DEV), torch.ones(3))
    with pytest.raises(tracejit.TraceError, match="more than one device"):
        f(torch.ones(3, device=DEV), np.ones(3, np.float32))


W_CAPTURED = None


def test_captured_cuda_tensor_is_read_at_every_call():
    global W_CAPTURED
    W_CAPTURED = torch.ones(4, device=DEV)
    f = tracejit.compile(lambda x: x * W_CAPTURED)
    x = torch.arange(4.0, device=DEV)
    assert torch.equal(f(x), x)
    W_CAPTURED = torch.full((4,), 2.0, device=DEV)
    assert torch.equal(f(x), 2 * x)
    W_CAPTURED = torch.ones(4)   # moved to the CPU: the plan is stale, the retrace refuses
    with pytest.raises(tracejit.TraceError, match="more than one device"):
        f(x)


def test_replay_on_a_busy_stream():
    f = tracejit.compile(lambda a: a * 2 + 1)
    f(torch.zeros(4, device=DEV))   # compiled before the stream is busy
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        x = torch.zeros(1 << 24, device=DEV)
        for _ in range(20):
            x.add_(1)
        got = f(x)   # queued behind the adds on s, read after them
        ok = torch.all(got == 41)
    torch.cuda.synchronize()
    assert ok.item()


def test_replay_reductions_are_deterministic():
    f = tracejit.compile(lambda a: ((a * a).sum(), a.sum(dim=0)))
    x = example("float32", (1 << 12, 1 << 10), low=-1, high=1)
    first = f(x)
    for _ in range(5):
        assert all(torch.equal(a, b) for a, b in zip(first, f(x)))


def replays_like_eager(fn, *args, exact=True):
    """fn compiled on CUDA tensors, twice (the second call a replay), against eager."""
    f = tracejit.compile(fn)
    want = fn(*args)
    want = want if isinstance(want, tuple) else (want,)
    for _ in range(2):
        got = f(*args)
        got = got if isinstance(got, tuple) else (got,)
        for g, w in zip(got, want):
            assert g.device == w.device and g.dtype == w.dtype and g.shape == w.shape
            if exact or not w.dtype.is_floating_point:
                assert torch.equal(g, w), (g, w)
            else:
                torch.testing.assert_close(g, w, rtol=2e-5, atol=1e-5)
    return f


@pytest.mark.parametrize("shape", [(37, 11), (3, 20000), (20000, 3), (70000,)], ids=str)
@pytest.mark.parametrize("dtype", ["int32", "float32", "float64", "bool"])
def test_argmax_argmin_match_torch(shape, dtype):
    x = example(dtype, shape) if dtype != "int32" else example(dtype, shape) % 4   # ties
    fn = lambda a: (a.argmax(), a.argmin(), a.argmax(dim=0), a.argmin(dim=-1, keepdim=True))
    if dtype == "bool":   # torch has no argmax of bool: as int8, the first True
        fn = lambda a: (a.to(torch.int8).argmax(), a.to(torch.int8).argmin(dim=0))
    replays_like_eager(fn, x)


def test_argmax_nan_is_the_first():
    x = example("float32", (4, 30000))
    x[0, 9] = x[0, 20000] = float("nan")
    x[3, :] = float("-inf")
    replays_like_eager(lambda a: (a.argmax(dim=1), a.argmin(dim=1)), x)


@pytest.mark.parametrize("shape, dim", [((37, 11), 0), ((37, 11), 1), ((3, 5000), 1),
                                        ((5000, 3), 0)], ids=str)
@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
def test_scans_match_torch(shape, dim, dtype):
    x = example(dtype, shape, low=0.99, high=1.01)
    replays_like_eager(lambda a: (torch.cumsum(a * 2, dim), torch.cumprod(a, dim)), x,
                       exact=not dtype.startswith("float"))


def test_scans_and_argmax_are_deterministic():
    f = tracejit.compile(lambda a: (a.cumsum(1), a.argmax(1), a.cumsum(0)))
    x = example("float32", (64, 1 << 15), low=-1, high=1)
    first = f(x)
    for _ in range(5):
        assert all(torch.equal(a, b) for a, b in zip(first, f(x)))


def test_gathers_match_torch():
    w = example("float32", (1000, 64))
    i = torch.randint(-1000, 1000, (32, 8), generator=torch.Generator().manual_seed(0)).to(DEV)
    replays_like_eager(lambda w, i: w[i] * 2, w, i)
    replays_like_eager(lambda w, i: torch.nn.functional.embedding(i.abs(), w).sum(1), w, i,
                       exact=False)
    replays_like_eager(lambda w, i: torch.index_select(w, 1, i[0] % 64), w, i)
    replays_like_eager(lambda w, i: torch.gather(w, 1, i.abs()[:, :4] % 64), w[:32], i)


def test_gather_out_of_bounds_is_an_index_error_and_the_next_call_works():
    w = example("float32", (10, 4))
    f = tracejit.compile(lambda w, i: w[i] + 1)
    good = torch.tensor([0, -1, 9], device=DEV)
    assert torch.equal(f(w, good), w[good] + 1)
    with pytest.raises(IndexError, match="index 10 is out of bounds for axis 0 with size 10"):
        f(w, torch.tensor([0, 10, 3], device=DEV))
    assert torch.equal(f(w, good), w[good] + 1)


def test_what_the_replay_reads_on_the_host_is_refused_on_cuda():
    """A value Python reads while tracing, a check and a write into an argument are read
    by the replay in host memory: refused on the GPU, each naming what it is."""
    x = torch.ones(3, device=DEV)
    with pytest.raises(tracejit.TraceError, match="reads the value of a traced array.*GPU"):
        tracejit.compile(lambda a: a * 2 if a.sum() > 0 else a)(x)
    with pytest.raises(tracejit.TraceError, match="GPU"):
        tracejit.compile(lambda a: a[: int(a.sum())])(x)

    def write(a):
        a.add_(1)
        return a * 2
    with pytest.raises(tracejit.TraceError, match="writes into an argument.*GPU"):
        tracejit.compile(write)(x)
    assert torch.equal(x.cpu(), torch.ones(3))   # not written


def test_disk_cache_in_a_new_process(tmp_path):
    """The second process loads the first one's image: no NVRTC compile."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import torch, tracejit\nfrom tracejit import _C\n"
            "f = tracejit.compile(lambda x: x * 2 + 1)\n"
            "y = f(torch.ones(4, device='cuda'))\n"
            "print(_C._backend_compiles(), float(y.sum()))\n")
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.path.join(root, "python"))
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300) for _ in range(2)]
    assert [r.stdout.split() for r in runs] == [["1", "12.0"], ["0", "12.0"]], \
        [r.stdout + r.stderr for r in runs]
    assert any(p.name.startswith("tj-cuda-") for p in tmp_path.iterdir())


def test_trace_sees_its_device():
    """x.device and x.is_cuda inside a trace are the arguments' device; moving to another
    device inside a trace is refused; NumPy-made constants (arange, tril's mask) are
    copied to the device."""
    seen = []

    def f(x):
        seen.append((x.device, x.is_cuda))
        return torch.tril(x) * torch.arange(x.shape[1], device=x.device) + x.to(x.device)
    x = example("float32", (5, 6))
    got = tracejit.compile(f)(x)
    assert seen[-1] == (DEV, True)
    torch.testing.assert_close(got, torch.tril(x) * torch.arange(6, device=DEV) + x)
    with pytest.raises(tracejit.TraceError, match="does not move arrays between devices"):
        tracejit.compile(lambda a: a.to("cpu") * 2)(x)


CAPTURED_NP = np.arange(4, dtype=np.float32)


def test_captured_numpy_array_is_read_at_every_call():
    """A NumPy array the trace reads: its device copy follows in-place changes."""
    f = tracejit.compile(lambda x: x * CAPTURED_NP)
    x = torch.ones(4, device=DEV)
    assert torch.equal(f(x).cpu(), torch.arange(4.0))
    CAPTURED_NP[:] = 7   # changed in place: the device copy follows
    assert torch.equal(f(x).cpu(), torch.full((4,), 7.0))


# ---- autodiff on CUDA tensors: the gradient graph is an ordinary CUDA plan --------------

def _logistic(w, X, y):
    z = X @ w
    return (torch.nn.functional.softplus(z) - y * z).mean()


def _eager_grads(fn, *args):
    leaves = [a.detach().clone().requires_grad_(True) for a in args]
    out = fn(*leaves)
    out.backward()
    return out.detach(), [l.grad for l in leaves]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_value_and_grad_on_cuda_matches_torch_autograd(dtype):
    g = torch.Generator().manual_seed(0)
    dt = getattr(torch, dtype)
    w = (torch.randn(20, generator=g, dtype=dt) * 0.1).to(DEV)
    X = torch.randn(1000, 20, generator=g, dtype=dt).to(DEV)
    y = (torch.rand(1000, generator=g) < 0.5).to(dt).to(DEV)
    vg = tracejit.value_and_grad(_logistic)
    want_v, (want_g, _, _) = _eager_grads(_logistic, w, X, y)
    tol = TOL[dtype] if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    for _ in range(2):   # the trace, then a replay
        v, gw = vg(w, X, y)
        assert v.device == DEV and gw.device == DEV and gw.dtype == dt
        torch.testing.assert_close(v, want_v, **tol)
        torch.testing.assert_close(gw, want_g, **tol)
    # the same numbers as the CPU's plan for the same inputs (within rounding of the
    # reductions' order)
    v_cpu, g_cpu = vg(w.cpu(), X.cpu(), y.cpu())
    torch.testing.assert_close(gw.cpu(), g_cpu, **tol)


def test_grad_through_gathers_scans_and_argmax_on_cuda():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(50, 8, generator=g, dtype=torch.float64).to(DEV)
    i = torch.randint(0, 50, (30,), generator=g).to(DEV)

    def f(W, i):
        e = W[i]                                   # a gather: its gradient scatters
        c = torch.cumsum(torch.tanh(e), 1)         # a scan: its gradient is one reversed
        k = e.argmax(1)                            # no gradient, but in the graph
        return (c * k.to(c.dtype)[:, None]).sum() + torch.logsumexp(e, 1).sum()
    Wl = W.detach().clone().requires_grad_(True)
    f(Wl, i).backward()
    for _ in range(2):
        got = tracejit.grad(f)(W, i)
        assert got.device == DEV
        torch.testing.assert_close(got, Wl.grad, **TOL["float64"])


def test_torch_autograd_route_on_cuda_matches_eager():
    """loss.backward() through a compiled function of CUDA tensors that require grad."""
    g = torch.Generator().manual_seed(2)
    lin = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 8)).double().to(DEV)
    ref = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 8)).double().to(DEV)
    ref.load_state_dict(lin.state_dict())
    x = torch.randn(32, 64, generator=g, dtype=torch.float64).to(DEV)
    t = torch.randint(0, 8, (32,), generator=g).to(DEV)
    f = tracejit.compile(lin)   # its parameters take part in torch.autograd
    for step in range(3):   # the trace, then replays; gradients accumulate as in eager
        loss = torch.nn.functional.cross_entropy(f(x), t)
        loss.backward()
        want = torch.nn.functional.cross_entropy(ref(x), t)
        want.backward()
        torch.testing.assert_close(loss, want, **TOL["float64"])
        for p, q in zip(lin.parameters(), ref.parameters()):
            assert p.grad.device == DEV
            torch.testing.assert_close(p.grad, q.grad, **TOL["float64"])


def test_torch_autograd_route_with_a_cotangent_and_two_outputs_on_cuda():
    a = torch.rand(5, 7, dtype=torch.float64, device=DEV, requires_grad=True)
    b = torch.rand(5, 7, dtype=torch.float64, device=DEV, requires_grad=True)
    fn = lambda a, b: (torch.sin(a) * b, (a * b).sum(1))
    u, v = tracejit.compile(fn)(a, b)
    ct = torch.rand(5, 7, dtype=torch.float64, device=DEV)
    ga, gb = torch.autograd.grad((u * ct).sum() + v.sum() * 3, (a, b))
    a2, b2 = a.detach().requires_grad_(), b.detach().requires_grad_()
    u2, v2 = fn(a2, b2)
    wa, wb = torch.autograd.grad((u2 * ct).sum() + v2.sum() * 3, (a2, b2))
    torch.testing.assert_close(ga, wa, **TOL["float64"])
    torch.testing.assert_close(gb, wb, **TOL["float64"])


# ---- matrix products: cuBLAS when it loads, the tiled kernel otherwise -----------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_products_match_torch_through_cublas_or_the_kernel(dtype):
    g = torch.Generator().manual_seed(3)
    dt = getattr(torch, dtype)
    a = torch.randn(3, 64, 96, generator=g, dtype=dt).to(DEV)
    b = torch.randn(96, 80, generator=g, dtype=dt).to(DEV)
    fn = lambda a, b: (a @ b, torch.tanh(a[0] @ b) @ b.T, a[1].T @ a[2])
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else TOL["float64"]
    assert not torch.backends.cuda.matmul.allow_tf32   # eager in full float32, as ours
    f = tracejit.compile(fn)
    for _ in range(2):
        for x, y in zip(f(a, b), fn(a, b)):
            torch.testing.assert_close(x, y, **tol)


def test_products_without_cublas_run_the_tiled_kernel(tmp_path):
    """TRACEJIT_CUBLAS=0: cuBLAS is not opened, the program's kernel gives the product."""
    import subprocess
    import sys
    code = ("import torch, tracejit\nfrom tracejit import _C\n"
            "assert _C._cublas() == (None, 'TRACEJIT_CUBLAS=0')\n"
            "a = torch.randn(50, 70, dtype=torch.float64, device='cuda')\n"
            "b = torch.randn(70, 40, dtype=torch.float64, device='cuda')\n"
            "torch.testing.assert_close(tracejit.compile(lambda a, b: a @ b)(a, b), a @ b)\n")
    env = dict(__import__("os").environ, TRACEJIT_CUBLAS="0")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
