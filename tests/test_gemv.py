"""Matrix-vector products large enough for BLAS gemv (csrc/emit/gemm.c), in every
layout of the matrix and the vector, both A @ x and z @ A, against NumPy."""
import numpy as np
import pytest

import tracejit
from conftest import LAYOUTS, arg_in_layout


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("a_layout", LAYOUTS)
@pytest.mark.parametrize("v_layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(300, 20), (7, 130)], ids=str)
def test_matrix_vector_in_every_layout(dtype, a_layout, v_layout, shape, rng):
    m, k = shape
    A = arg_in_layout(rng, (m, k), dtype, a_layout)
    x = arg_in_layout(rng, (k,), dtype, v_layout)
    z = arg_in_layout(rng, (m,), dtype, v_layout)
    # float32 sums round: tolerance relative to the sum of magnitudes
    scale = float((np.abs(A).astype(np.float64) @ np.abs(x)).max() +
                  (np.abs(z).astype(np.float64) @ np.abs(A)).max())
    tol = dict(rtol=0, atol=(1e-5 if dtype == "float32" else 1e-13) * scale)
    got = tracejit.compile(lambda A, x: A @ x)(A, x)
    np.testing.assert_allclose(got, A @ x, **tol)
    got = tracejit.compile(lambda z, A: z @ A)(z, A)
    np.testing.assert_allclose(got, z @ A, **tol)
    # a strided output: the product written into every other element
    got = tracejit.compile(lambda A, x: np.stack([A @ x, A @ x * 2], axis=1))(A, x)
    np.testing.assert_allclose(got, np.stack([A @ x, A @ x * 2], axis=1), **tol)



@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [16, 64, 100])
def test_batch1_linear_dot_products(dtype, k, rng):
    """x @ W.T at batch 1 and W @ x, both operands running along K (nn.Linear's layout):
    dot products in gemm.c's fixed order, never BLAS (the same bits with BLAS on or
    off, as an export computes them), within rounding of float64's product."""
    W = rng.standard_normal((200, k)).astype(dtype)
    x = rng.standard_normal((1, k)).astype(dtype)
    v = rng.standard_normal(k).astype(dtype)
    ref = x.astype(np.float64) @ W.T.astype(np.float64)
    tol = 1e-5 if dtype == "float32" else 1e-13
    f, g = tracejit.compile(lambda x, W: x @ W.T), tracejit.compile(lambda W, v: W @ v)
    got, got_v = f(x, W), g(W, v)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())
    np.testing.assert_allclose(got_v, W.astype(np.float64) @ v, rtol=tol,
                               atol=tol * np.abs(ref).max())
    prev = tracejit._C._blas_min(1 << 62)
    try:
        off, off_v = tracejit.compile(lambda x, W: x @ W.T)(x, W), tracejit.compile(lambda W, v: W @ v)(W, v)
    finally:
        tracejit._C._blas_min(prev)
    assert np.array_equal(got, off) and np.array_equal(got_v, off_v)
