"""The CUDA backend's kernels, run without a GPU: tests/cuda_emu.py compiles the generated
CUDA C++ with the system's C++ compiler, runs each block's threads as fibers that meet at
every __syncthreads, and fills the parameter block as the runtime does. Checks what a
GPU would compute: every elementwise op of the table against tracejit's CPU result (the
same element helpers), reductions (one chunk and several, the second pass) and whole
programs against NumPy. Skips without a C++ compiler, and under tools/sanitize.sh: the
fibers switch stacks with makecontext/swapcontext, which ASan reports it does not
follow (the emulated kernels are not instrumented either; the plain suite runs them)."""
import os

import numpy as np
import pytest

import tracejit

import cuda_emu

if not cuda_emu.compiler():
    pytest.skip("no C++ compiler (g++, or $CXX)", allow_module_level=True)
if os.environ.get("TRACEJIT_SANITIZED"):
    pytest.skip("fibers (makecontext) under ASan: run by the plain suite", allow_module_level=True)

OPS = [op for op in tracejit.op_table() if op["numpy"]]
TOL = {"float32": dict(rtol=2e-6, atol=1e-6), "float64": dict(rtol=1e-13, atol=1e-14)}


def example(dtype, shape=(9, 7), seed=0, low=1.0, high=4.0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0 if np.dtype(dtype).kind == "u" else -20, 20, shape).astype(dtype)
    return (rng.random(shape) * (high - low) + low).astype(dtype)


def check(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype)
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, equal_nan=True, **TOL[str(got.dtype)])
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["bool", "int8", "int32", "int64", "uint8", "uint64", "float32",
                                   "float64"])
def test_every_elementwise_op_as_the_cpu_computes_it(dtype):
    ops = [op for op in OPS if dtype in op["dtypes"]]
    a, b, c = example(dtype, seed=1), example(dtype, seed=2), example("bool", seed=3)
    if np.dtype(dtype).kind in "iu":
        b = np.abs(b) % 8   # shift counts and exponents in range; division by 0 included

    def f(a, b, c):
        return tuple(getattr(np, op["numpy"])(*((c, a, b) if op["arity"] == 3 else (a, b)[:op["arity"]]))
                     for op in ops)
    with np.errstate(all="ignore"):
        want = tracejit.compile(f)(a, b, c)
        got = cuda_emu.run(f, a, b, c)
    for op, g, w in zip(ops, got, want):
        try:
            check(g, np.asarray(w))
        except AssertionError as e:
            raise AssertionError(f"{op['name']} on {dtype}: {e}") from None


# (2, 9000) and (9000, 2): one axis beyond a block's chunk (8192: partials and the second
# pass), the other many short outputs (each a fiber barrier tree: kept small)
SHAPES = [(5,), (9, 7), (2, 9000), (9000, 2), (4, 5, 6), (70000,)]


@pytest.mark.parametrize("dtype, shape",
                         [(d, s) for d in ("int32", "float32") for s in SHAPES]
                         + [(d, s) for d in ("int8", "uint8", "uint64") for s in SHAPES[1:3]]
                         + [(d, s) for d in ("bool", "float64") for s in SHAPES[1:3]], ids=str)
def test_reductions(dtype, shape):
    a = example(dtype, shape, low=-1, high=1)
    if dtype != "bool":
        a = a.astype(dtype)

    def f(a):
        outs = []
        for r in (np.sum, np.max, np.min) + ((np.prod,) if a.size < 100 else ()):
            outs += [r(a), r(a, axis=0), r(a, axis=-1, keepdims=True)]
        return tuple(outs)
    got, want = cuda_emu.run(f, a), f(a)
    for g, w in zip(got, want):
        w = np.asarray(w)
        if w.dtype.kind == "f":   # another summation order: within rounding
            np.testing.assert_allclose(g, w, rtol=1e-5 if w.dtype == np.float32 else 1e-12,
                                       atol=1e-4)
            assert g.dtype == w.dtype
        else:
            check(g, w)


def test_max_propagates_nan():
    a = example("float32", (3, 9000))
    a[1, 8500] = np.nan
    (got,) = cuda_emu.run(lambda a: a.max(axis=1), a)
    assert np.isnan(got[1]) and not np.isnan(got[0]) and not np.isnan(got[2])


PROGRAMS = {
    "softmax": (lambda x: np.exp(x - x.max(axis=-1, keepdims=True))
                / np.exp(x - x.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True),
                [example("float32", (8, 100))]),
    "logistic_loss": (lambda X, w, y: np.mean(np.logaddexp(0, -y * (X * w).sum(axis=1))),
                      [example("float64", (50, 4)), example("float64", (4,)),
                       example("float64", (50,))]),
    "broadcast_where": (lambda a, b: np.where(a > 2, a * b[:, None], -a),
                        [example("float32", (6, 9)), example("float32", (6,))]),
    "slices_and_views": (lambda a: a[1:, ::2].T * 2 + a[:-1, 1::2].T, [example("float64", (9, 12))]),
    "scalar_args": (lambda a, s, k: a * s + k, [example("float32", (10,)), 2.5, 3]),
    "casts": (lambda a, i: (a.astype(np.int32) + i).astype(np.float64) / 3,
              [example("float32", (10,)), example("int64", (10,))]),
    "matmul": (lambda a, b: np.tanh(a @ b / 64 + 1) @ b.T,
               [example("float32", (8, 64)), example("float32", (64, 16))]),
    "concatenate": (lambda a, b: np.concatenate([a * 2, b + 1]),
                    [example("float32", (3, 4)), example("float32", (2, 4))]),
    "zero_size": (lambda a: (a + 1, a.sum(), a.sum(axis=0)), [np.ones((0, 3), np.float32)]),
    "noncontiguous_args": (lambda a, b: a * 2 + b, [example("float32", (7, 9)).T,
                                                    example("float32", (18, 7))[::2]]),
    "iota": (lambda a: a * np.arange(a.shape[0])[:, None] + np.eye(a.shape[0], a.shape[1])
             + np.tril(a), [example("float64", (6, 8))]),
    "mean_var": (lambda a: (a.mean(axis=0), a.var(axis=1)), [example("float64", (30, 20))]),
    # past emit_cuda.c's TJ_CU_UNROLL_MIN: four elements a thread, loads before stores,
    # a total that is no multiple of the tile, two outputs, a transposed and a broadcast
    # leaf
    "unrolled": (lambda a, b: (np.tanh(a * 2 + b.T) - b[:, 0], (a + 1) * (a > 2)),
                 [example("float32", (257, 263)), example("float32", (263, 257))]),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_programs_match_numpy(name):
    fn, args = PROGRAMS[name]
    got, want = cuda_emu.run(fn, *args), fn(*args)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        w = np.asarray(w)
        np.testing.assert_allclose(g, w, rtol=1e-5 if w.dtype == np.float32 else 1e-12, atol=1e-6)
        assert g.dtype == w.dtype and g.shape == w.shape
