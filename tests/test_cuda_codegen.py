"""The CUDA generator without a GPU: every elementwise op of the table (each dtype it
is defined on), every reduction and a few whole programs are emitted as CUDA C++
(CompiledFunction._cuda_source traces with CPU arrays: the trace needs shapes and
dtypes only) and compiled by NVRTC to a cubin for sm_80 and sm_90; any NVRTC error or
warning fails. Skips without NVRTC (pip install nvidia-cuda-nvrtc-cu12)."""
import numpy as np
import pytest

import tracejit
from tracejit import _C

try:
    NVRTC = _C._nvrtc_version()
except RuntimeError as e:   # no NVRTC on this machine
    pytest.skip(f"NVRTC is not installed: {e}", allow_module_level=True)

ARCHS = [80, 90]
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64"]
OPS = [op for op in tracejit.op_table() if op["numpy"]]


def compile_all(prog):
    """NVRTC compiles prog's source for every arch with an empty log."""
    for cc in ARCHS:
        image, log, is_ptx = _C._nvrtc_compile(prog["source"], cc)
        assert not is_ptx and len(image) > 0
        assert log.strip() == "", f"sm_{cc}: NVRTC said:\n{log}\n{prog['source']}"


def example(dtype, shape=(33, 7)):
    rng = np.random.default_rng(0)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return (rng.random(shape) * 3 + 1).astype(dtype)


def ops_program(dtype):
    """One program applying every op defined on dtype: one output each."""
    ops = [op for op in OPS if dtype in op["dtypes"]]

    def f(a, b, c):
        outs = []
        for op in ops:
            fn = getattr(np, op["numpy"])
            outs.append(fn(c, a, b) if op["arity"] == 3 else fn(a, b) if op["arity"] == 2 else fn(a))
        return tuple(outs)
    return ops, f


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_elementwise_op_compiles(dtype):
    ops, f = ops_program(dtype)
    assert ops
    prog = tracejit.compile(f)._cuda_source(example(dtype), example(dtype)[::-1].copy(),
                                            example("bool"))
    names = prog["source"]
    for op in ops:   # each op's element helper is called (or folded into a cast)
        assert f"tj_e_{op['name']}_" in names or op["name"] in ("COPY", "POS"), op["name"]
    compile_all(prog)


@pytest.mark.parametrize("name", ["erf", "erfc", "lgamma", "digamma"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_special_ops_compile(name, dtype):
    torch = pytest.importorskip("torch")
    fn = getattr(torch, name)
    prog = tracejit.compile(lambda x: fn(x) + 1)._cuda_source(
        torch.from_numpy(example(dtype)))
    assert f"tj_e_{name.upper()}_" in prog["source"]
    compile_all(prog)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_draws_compile(dtype):
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    f = tracejit.compile(lambda x: x + torch.rand(x.shape, dtype=tdt) * torch.randn(x.shape, dtype=tdt))
    prog = f._cuda_source(torch.from_numpy(example(dtype)))
    assert prog["by_value"], "the random key is passed by value"
    compile_all(prog)


REDUCTIONS = ["sum", "prod", "max", "min"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (33, 7), (3, 40000), (20000, 2), (4, 5, 6)])
def test_reductions_compile(dtype, shape):
    def f(a):
        outs = []
        for r in REDUCTIONS:
            fn = getattr(np, r)
            outs += [fn(a), fn(a, axis=0), fn(a, axis=-1, keepdims=True)]
        return tuple(outs)
    prog = tracejit.compile(f)._cuda_source(example(dtype, shape))
    assert any(k[0].endswith("_fin") for k in prog["kernels"]) == (np.prod(shape) > 8192)
    compile_all(prog)


def test_large_reduction_has_fixed_partials():
    """A reduction over more than one chunk: block partials in the workspace, folded in
    order by a second kernel (no atomics)."""
    prog = tracejit.compile(lambda a: a.sum())._cuda_source(np.ones(1 << 20, np.float32))
    assert [k[0] for k in prog["kernels"]] == ["tj_g0", "tj_g0_fin"]
    assert prog["work_bytes"] >= 8 * prog["kernels"][0][1]
    assert "atomic" not in prog["source"]
    compile_all(prog)


PROGRAMS = {
    "softmax": (lambda x: np.exp(x - x.max(axis=-1, keepdims=True))
                / np.exp(x - x.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True),
                [example("float32", (8, 100))]),
    "logistic_loss": (lambda X, w, y: np.mean(np.logaddexp(0, -y * (X * w).sum(axis=1))),
                      [example("float64", (50, 4)), example("float64", (4,)), example("float64", (50,))]),
    "broadcast_where": (lambda a, b: np.where(a > 2, a * b[:, None], -a),
                        [example("float32", (6, 9)), example("float32", (6,))]),
    "slices_and_views": (lambda a: a[1:, ::2].T * 2 + a[:-1, 1::2].T,
                         [example("float64", (9, 12))]),
    "scalar_args": (lambda a, s, k: a * s + k, [example("float32", (10,)), 2.5, 3]),
    "casts": (lambda a, i: (a.astype(np.int32) + i).astype(np.float64) / 3,
              [example("float32", (10,)), example("int64", (10,))]),
    "chain12": (lambda x: ((((((x * 2 + 1) * 0.5 - 0.25) * 3 + 2) / 7 - 1) * 1.5 + 0.5) * 2 - 3),
                [example("float32", (1000,))]),
    "matmul": (lambda a, b: np.tanh(a @ b + 1) @ b.T, [example("float32", (32, 64)), example("float32", (64, 64))]),
    "zero_size": (lambda a: (a + 1, a.sum()), [np.ones((0, 3), np.float32)]),
    "concatenate": (lambda a, b: np.concatenate([a * 2, b + 1]), [example("float32", (3, 4)), example("float32", (2, 4))]),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_programs_compile(name):
    fn, args = PROGRAMS[name]
    prog = tracejit.compile(fn)._cuda_source(*args)
    compile_all(prog)


def test_scalar_arguments_by_value():
    prog = tracejit.compile(lambda a, s: a * s)._cuda_source(np.ones(3, np.float32), 2.0)
    assert prog["by_value"] == [1]
    assert "*(const double *)&A.P[1]" in prog["source"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (33, 7), (3, 40000), (4, 5, 6)], ids=str)
def test_argmax_argmin_compile(dtype, shape):
    def f(a):
        return tuple(r(a, **kw) for r in (np.argmax, np.argmin)
                     for kw in ({}, {"axis": 0}, {"axis": -1, "keepdims": True}))
    prog = tracejit.compile(f)._cuda_source(example(dtype, shape))
    assert "long long &ai" in prog["source"] and "atomic" not in prog["source"]
    compile_all(prog)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scans_compile(dtype):
    """Short rows (one thread each, in order) and long ones (one block each: chunks)."""
    def f(a, b):
        return (np.cumsum(a, axis=0), np.cumprod(a, axis=1), np.cumsum(b, axis=1),
                np.cumprod(b * 2, axis=1))
    prog = tracejit.compile(f)._cuda_source(example(dtype), example(dtype, (3, 1000)))
    assert "part_" in prog["source"] and "atomic" not in prog["source"]
    compile_all(prog)


@pytest.mark.parametrize("dtype", ["bool", "int8", "int64", "float32", "float64"])
def test_gathers_compile(dtype):
    idx = np.array([[0, -1], [3, 2]])

    def f(a, i):
        return a[i], np.take(a, i[0], axis=1), np.take_along_axis(a, i[:1] % 7, axis=1), a[:, i[1]] == a[0, 0]
    prog = tracejit.compile(f)._cuda_source(example(dtype), idx)
    assert prog["err_off"] == 0 and "tj_gather_fail" in prog["source"]
    compile_all(prog)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiled_matmul_compiles(dtype):
    prog = tracejit.compile(lambda a, b, c: (a @ b, np.tanh(c @ b[0]), a[0] @ b[0][:, :1]))._cuda_source(
        example(dtype, (3, 40, 70)), example(dtype, (3, 70, 33)), example(dtype, (17, 70)))
    assert prog["source"].count("as_[ty][tx] =") == 2   # the matrix-vector product: a sum
    compile_all(prog)


def test_programs_without_gathers_have_no_error_record():
    assert tracejit.compile(lambda a: a.sum())._cuda_source(example("float32"))["err_off"] == -1


def test_nvrtc_errors_are_compile_errors_with_the_source():
    with pytest.raises(tracejit.CompileError, match="NVRTC failed") as e:
        _C._nvrtc_compile("extern \"C\" __global__ void k() { undefined_thing(); }", 90)
    assert "1 | extern" in e.value.source


def test_newer_gpu_than_nvrtc_gets_ptx():
    src = tracejit.compile(lambda a: a + 1)._cuda_source(np.ones(3, np.float32))["source"]
    image, log, is_ptx = _C._nvrtc_compile(src, 990)
    assert is_ptx and image.startswith(b"//") and b".entry tj_g0" in image


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rejection_samplers_and_the_gamma_gradient_compile(dtype):
    """Gamma (its gradient too), Poisson and binomial: the samplers' loops, Philox
    sub-streams and tables compile as CUDA C++ (prims_random.h, prims_special.h)."""
    torch = pytest.importorskip("torch")

    def f(a):
        x = torch._standard_gamma(a)
        return (x + torch.poisson(a) + torch.binomial(a.floor(), a / 5) +
                _C._ew("GAMMAGRAD", a, x))
    prog = tracejit.compile(f)._cuda_source(torch.from_numpy(example(dtype)))
    for name in ("RGAMMA", "RPOIS", "RBINOM", "GAMMAGRAD"):
        assert f"tj_e_{name}_" in prog["source"], name
    compile_all(prog)
