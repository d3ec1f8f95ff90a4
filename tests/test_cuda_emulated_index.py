"""The CUDA backend's gathers, argmax/argmin and scans, run without a GPU
(tests/cuda_emu.py: the generated CUDA C++ compiled by the system's C++ compiler, each
block's threads as fibers). Checked against NumPy (and torch eager where torch spells
it): integer-array indexing, take, take_along_axis, torch's index_select, gather and
embedding, with negative indices and an index out of bounds (NumPy's IndexError, from
the program's error record); argmax/argmin over one chunk and several (the partials'
second pass), ties and NaNs to the first index; cumsum/cumprod along every axis, short
rows (one thread, in order: bitwise NumPy's) and long ones (chunks, their prefixes in
order). Determinism: every result is bitwise the same whatever the grid (a GPU with
fewer blocks than the work runs the grid-stride loops longer)."""
import os

import numpy as np
import pytest

import cuda_emu

if not cuda_emu.compiler():
    pytest.skip("no C++ compiler (g++, or $CXX)", allow_module_level=True)
if os.environ.get("TRACEJIT_SANITIZED"):
    pytest.skip("fibers (makecontext) under ASan: run by the plain suite", allow_module_level=True)


def example(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0 if np.dtype(dtype).kind == "u" else -5, 6, shape).astype(dtype)
    return (rng.random(shape) * 4 - 2).astype(dtype)


def close(got, want, exact=False):
    want = np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype,
                                                                got.shape, want.shape)
    if exact or want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-5 if want.dtype == np.float32 else 1e-12,
                                   atol=1e-5 if want.dtype == np.float32 else 1e-12)


def check(fn, *args, exact=False):
    got, want = cuda_emu.run(fn, *args), fn(*args)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        close(g, w, exact)
    return got


def same_on_any_grid(fn, *args):
    """The results' bits do not depend on how many blocks a launch gets."""
    a, b = cuda_emu.run(fn, *args, max_grid=1), cuda_emu.run(fn, *args, max_grid=7)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()


# ---- gathers --------------------------------------------------------------------------

GATHERS = {
    "rows": (lambda a, i: a[i] * 2, (9, 7), (6,)),
    "columns": (lambda a, i: a[:, i] + 1, (9, 7), (4, 3)),
    "middle": (lambda a, i: a[1:, i, ::2], (5, 7, 6), (3,)),
    "take_axis1": (lambda a, i: np.take(a, i, axis=1), (9, 7), (2, 5)),
    "take_flat": (lambda a, i: np.take(a, i), (9, 7), (11,)),
    "take_along_axis": (lambda a, i: np.take_along_axis(a, i, axis=1), (9, 7), (9, 3)),
    "in_a_reduction": (lambda a, i: (a[i] * 3).sum(axis=0), (9, 7), (20,)),
    "index_computed": (lambda a, i: a[(i * 2) % 9 - 9], (9, 7), (5,)),
    "transposed_data": (lambda a, i: a.T[i], (9, 7), (5,)),
    "twice": (lambda a, i: a[i] + a[:, i[:3]].sum(axis=1)[i], (9, 9), (9,)),
}


@pytest.mark.parametrize("name", sorted(GATHERS))
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_gathers_match_numpy(name, dtype):
    fn, shape, ishape = GATHERS[name]
    if dtype == "bool" and name in ("columns", "in_a_reduction", "twice"):
        pytest.skip("arithmetic on bool")
    a = example(dtype, shape)
    rng = np.random.default_rng(1)
    n = a.size if name == "take_flat" else shape[1] if name in ("columns", "take_axis1",
                                                                  "take_along_axis") else shape[0]
    if name == "middle":
        n = shape[1]
    if name == "transposed_data":
        n = shape[1]
    i = rng.integers(-n, n, ishape)   # negative indices count from the end
    check(fn, a, i, exact=name not in ("in_a_reduction", "twice"))


def test_gather_indices_of_other_integer_dtypes():
    a = example("float32", (9, 7))
    for dt in ("int8", "int32", "uint8", "uint16"):
        i = np.array([0, 3, 8, 1], dt)
        check(lambda a, i: a[i], a, i, exact=True)


@pytest.mark.parametrize("index, message", [
    ([0, 9], "index 9 is out of bounds for axis 0 with size 9"),
    ([-10, 1], "index -10 is out of bounds for axis 0 with size 9"),
])
def test_gather_out_of_bounds_is_numpys_index_error(index, message):
    a = example("float32", (9, 7))
    with pytest.raises(IndexError, match=message):
        a[np.array(index)]   # NumPy's own words
    with pytest.raises(IndexError, match=message):
        cuda_emu.run(lambda a, i: a[i] * 2, a, np.array(index))


def test_gather_out_of_bounds_along_axis_1():
    a = example("float32", (3, 5))
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 1 with size 5"):
        cuda_emu.run(lambda a, i: np.take(a, i, axis=1), a, np.array([1, 5]))
    # the record is zeroed per call: the next call with good indices is fine
    check(lambda a, i: np.take(a, i, axis=1), a, np.array([1, 4]), exact=True)


def test_gathers_are_deterministic():
    same_on_any_grid(lambda a, i: (a[i] * 2, a[i].sum(axis=0)), example("float32", (300, 40)),
                     np.random.default_rng(0).integers(-300, 300, 5000))


def test_torch_gathers_match_torch_eager():
    torch = pytest.importorskip("torch")
    w = torch.from_numpy(example("float32", (10, 6)))
    idx = torch.tensor([[3, 1, -1], [9, 0, 2]])
    cases = [
        (lambda w, i: torch.nn.functional.embedding(i, w) * 2, (w, idx.abs())),
        (lambda w, i: torch.index_select(w, 1, i), (w, torch.tensor([5, 0, 2, 2]))),
        (lambda w, i: torch.gather(w, 1, i), (w, torch.randint(0, 6, (10, 4),
                                                                 generator=torch.manual_seed(0)))),
        (lambda w, i: w[i] + 1, (w, idx)),
    ]
    for fn, args in cases:
        got = cuda_emu.run(fn, *args)
        want = fn(*args)
        np.testing.assert_array_equal(got[0], want.numpy())


# ---- argmax / argmin ------------------------------------------------------------------

SHAPES = [(5,), (9, 7), (2, 9000), (9000, 2), (4, 5, 6), (70000,)]


@pytest.mark.parametrize("dtype, shape",
                         [(d, s) for d in ("float32", "int32") for s in SHAPES]
                         + [(d, s) for d in ("float64", "int8", "uint8", "bool", "int64")
                            for s in SHAPES[1:3]], ids=str)
def test_argmax_argmin_match_numpy(dtype, shape):
    a = example(dtype, shape)   # few distinct values: many ties, the first must win

    def f(a):
        outs = []
        for r in (np.argmax, np.argmin):
            outs += [r(a), r(a, axis=0), r(a, axis=-1, keepdims=True)]
        return tuple(outs)
    check(f, a, exact=True)


@pytest.mark.parametrize("shape", [(3, 50), (3, 20000)], ids=str)
def test_argmax_nan_is_the_first_nan(shape):
    a = example("float32", shape)
    a[0, 7] = a[0, 40] = np.nan           # two NaNs in row 0: the first
    a[2, -1] = np.nan                     # the last element
    a[1, :] = -np.inf                     # all the lowest value: index 0
    a[1, 30] = np.nan if shape[1] > 10000 else -np.inf
    for fn in (lambda a: (a.argmax(axis=1), a.argmin(axis=1), a.argmax(), a.argmin()),
               lambda a: (a.T.argmax(axis=0), a.T.argmin(axis=0))):
        check(fn, a, exact=True)


def test_argmax_deterministic_and_fused():
    a = example("float64", (3, 30000))
    fn = lambda a: (np.argmax(np.sin(a) * 2 - a, axis=1), np.argmin(a.T.ravel()))
    check(fn, a, exact=True)
    same_on_any_grid(fn, a)


def test_torch_argmax_matches_torch_eager():
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(example("int32", (7, 300)))
    fn = lambda t: (t.argmax(dim=1), torch.argmin(t, dim=0, keepdim=True), t.float().argmax())
    for g, w in zip(cuda_emu.run(fn, t), fn(t)):
        np.testing.assert_array_equal(g, w.numpy())


# ---- scans ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [((11,), 0), ((9, 7), 0), ((9, 7), 1), ((4, 5, 6), 1),
                                         ((3, 1000), 1), ((1000, 3), 0), ((5000,), 0),
                                         ((2, 300, 3), 1)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8"])
def test_cumsum_cumprod_match_numpy(shape, axis, dtype):
    a = example(dtype, shape)
    if dtype.startswith("float"):
        a = (a / 8 + 1).astype(dtype)   # products stay finite
    # up to 256 a row, one thread in order: NumPy's bits; longer rows within rounding
    exact = shape[axis] <= 256 or dtype[0] in "iu"
    check(lambda a: (np.cumsum(a, axis=axis), np.cumprod(a, axis=axis)), a, exact=exact)


def test_scans_with_fused_operands_and_other_outputs():
    a = example("float32", (6, 700))
    check(lambda a: (np.cumsum(a * 2 + 1, axis=1), a * 2 + 1, np.cumsum(a.T, axis=1)), a)
    check(lambda a: np.cumsum(a > 0, axis=0), a, exact=True)       # bool -> int64
    check(lambda a: np.cumsum(a.astype(np.int8), axis=1), a, exact=True)
    check(lambda a: np.cumsum(a, axis=1) * 2 - np.cumprod(a[:, :4], axis=1).sum(), a)


def test_scans_are_deterministic():
    a = example("float32", (3, 5000))
    same_on_any_grid(lambda a: (np.cumsum(a, axis=1), np.cumsum(a[:, :200], axis=1)), a)


def test_torch_scans_match_torch_eager():
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(example("float64", (7, 40)) / 8 + 1)
    fn = lambda t: (torch.cumsum(t, 1), torch.cumprod(t, dim=0), t.cumsum(0) * 2)
    for g, w in zip(cuda_emu.run(fn, t), fn(t)):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-13)


# ---- autodiff: the gradient graph is an ordinary CUDA program --------------------------

def test_value_and_grad_programs_match_the_cpu():
    import tracejit
    rng = np.random.default_rng(0)
    X, w = rng.standard_normal((300, 20)), rng.standard_normal(20) * 0.1
    y = (rng.random(300) < 0.5).astype(np.float64)

    def loss(w, X, y):
        z = X @ w
        return np.mean(np.logaddexp(0, z) - y * z)
    vg = tracejit.value_and_grad(loss)
    got = cuda_emu.run(lambda w, X, y: vg(w, X, y), w, X, y)
    want = vg(w, X, y)
    for g, v in zip(got, want):
        np.testing.assert_allclose(g, v, rtol=1e-13, atol=1e-15)


def test_torch_grad_through_gathers_scans_and_argmax_matches_eager():
    torch = pytest.importorskip("torch")
    import tracejit
    g = torch.Generator().manual_seed(1)
    W = torch.randn(50, 8, generator=g, dtype=torch.float64)
    i = torch.randint(0, 50, (30,), generator=g)

    def f(W, i):
        e = W[i]
        c = torch.cumsum(torch.tanh(e), 1)
        return (c * e.argmax(1).to(c.dtype)[:, None]).sum() + torch.logsumexp(e, 1).sum()
    gf = tracejit.grad(f)
    (got,) = cuda_emu.run(lambda W, i: gf(W, i), W, i)
    Wl = W.clone().requires_grad_(True)
    f(Wl, i).backward()
    np.testing.assert_allclose(got, Wl.grad.numpy(), rtol=1e-12, atol=1e-13)


# ---- matrix products: the tiled kernel (the fallback while cuBLAS is not wired) --------

MATMULS = {
    "square": (lambda a, b: a @ b, [(40, 70), (70, 33)]),
    "transposed": (lambda a, b: a.T @ b.T, [(70, 40), (33, 70)]),
    "batched": (lambda a, b: a @ b, [(3, 20, 17), (3, 17, 18)]),
    "broadcast_batch": (lambda a, b: a @ b, [(2, 1, 20, 17), (4, 17, 18)]),
    "k_not_a_tile_multiple": (lambda a, b: np.tanh(a @ b / 8) @ b.T, [(33, 21), (21, 47)]),
    "strided": (lambda a, b: a[::2, 1:] @ b[:, ::3], [(64, 41), (40, 96)]),
}


@pytest.mark.parametrize("name", sorted(MATMULS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiled_matmul_matches_numpy(name, dtype):
    import tracejit
    fn, shapes = MATMULS[name]
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(dtype) for s in shapes]
    assert "as_[ty][tx]" in tracejit.compile(fn)._cuda_source(*args)["source"]
    got = check(fn, *args)
    same_on_any_grid(fn, *args)
    assert got[0].dtype == dtype


# ---- user code: small NumPy programs built of these pieces -------------------------

def _kmeans_step(X, C):
    d2 = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    labels = np.argmin(d2, axis=1)
    onehot = (labels[:, None] == np.arange(C.shape[0])).astype(X.dtype)
    return labels, (onehot.T @ X) / np.maximum(onehot.sum(0), 1)[:, None]


def _bag_of_embeddings(E, tok, W, b, y):
    logits = E[tok].mean(axis=1) @ W + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), np.argmax(logits, 1), (np.argmax(logits, 1) == y).mean()


def _wealth(r):
    w = np.cumprod(1 + r, axis=0)
    return w, w[-1] / w[0]


def _cumtrapz(y, dx):
    return np.concatenate([np.zeros(1), np.cumsum((y[1:] + y[:-1]) / 2 * dx)])


def _viterbi_step(scores, trans, emit):
    s = scores[:, None] + trans
    return s.max(axis=0) + emit, s.argmax(axis=0)


def test_user_programs_match_numpy():
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    check(_kmeans_step, rng.standard_normal((500, 3)), rng.standard_normal((4, 3)))
    check(_bag_of_embeddings, f32(100, 16), rng.integers(0, 100, (32, 7)), f32(16, 20),
          np.zeros(20, np.float32), rng.integers(0, 20, 32))
    check(_wealth, rng.standard_normal((300, 5)) * 0.01)
    check(_cumtrapz, np.sin(np.linspace(0, 3, 1000)), 0.003)
    check(_viterbi_step, rng.standard_normal(40), rng.standard_normal((40, 40)),
          rng.standard_normal(40), exact=True)


def test_edge_cases_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 7))
    check(lambda a, i: a[i] * 1, a, np.array(3), exact=True)                 # a 0-d index
    check(lambda a, i: a[i] * 1, a, np.zeros(0, np.int64), exact=True)       # no index
    check(lambda a, i: a[:, i] * 1, np.zeros((0, 7)), np.array([1, 2]), exact=True)
    check(lambda a: (np.cumsum(a, axis=1), np.cumsum(a, axis=0), np.argmax(a, axis=1)),
          np.zeros((0, 7)), exact=True)                                       # zero-size
    check(lambda a: np.cumsum(a), a, exact=True)                              # flattened
    check(lambda a: np.argmax(a, axis=1), rng.standard_normal((3, 4000, 5)), exact=True)
    check(lambda a, i: np.cumsum(a[i], axis=0), a, rng.integers(0, 9, 400))  # gather, then scan
    check(lambda a: np.cumsum(a, axis=0, dtype=np.uint8),                    # wraps as NumPy's
          rng.integers(0, 255, (600,)).astype(np.uint8), exact=True)
    check(lambda a: np.argmin(a, axis=0), np.zeros((9000, 2), np.int32), exact=True)   # all ties
