"""How the CUDA backend hands a matrix product to cuBLAS (csrc/backend/cublas.c), without
a GPU: `_C._cublas_map` turns a product's element strides into cuBLAS's column-major
operands (ops, sizes, leading dims, or C' = B'A' for a row-major C); a column-major GEMM
computed here with exactly cuBLAS's indexing from those parameters, on the operands'
own memory, must give A @ B. Layouts that do not map (a broadcast row, overlapping
columns) return None: the program's tiled kernel runs them (tests/test_cuda_emulated_index.py).
Loading is a clear fallback: `_C._cublas()` names the library or says why not."""
import itertools

import os

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from tracejit import _C


def layout(rows, cols, kind, rng):
    """A (rows, cols) float64 matrix in a flat buffer: its view and element strides."""
    pad = 3
    if kind == "row":        # C order, padded rows
        s = (cols + pad, 1)
    elif kind == "col":      # Fortran order, padded columns
        s = (1, rows + pad)
    elif kind == "row_tight":
        s = (cols, 1)
    else:                    # "col_tight"
        s = (1, rows)
    size = (rows - 1) * s[0] + (cols - 1) * s[1] + 1 if rows and cols else 1
    buf = np.zeros(size + 8)
    view = as_strided(buf, (rows, cols), (s[0] * 8, s[1] * 8))
    view[...] = rng.standard_normal((rows, cols))
    return buf, view, s


def colmajor_gemm(ta, tb, m, n, k, X, ldx, Y, ldy, C, ldc):
    """C = op(X) op(Y), with cuBLAS's indexing of its column-major operands."""
    i, p, j = np.arange(m)[:, None], np.arange(k)[None, :], np.arange(n)[None, :]
    opx = X[p + i * ldx] if ta else X[i + p * ldx]                      # (m, k)
    pk = np.arange(k)[:, None]
    opy = Y[j + pk * ldy] if tb else Y[pk + j * ldy]                    # (k, n)
    out = opx @ opy
    for jj in range(n):
        C[np.arange(m) + jj * ldc] = out[:, jj]


KINDS = ["row", "col", "row_tight", "col_tight"]


@pytest.mark.parametrize("M, N, K", [(5, 7, 3), (1, 6, 4), (6, 1, 4), (5, 7, 1), (1, 1, 9),
                                     (16, 16, 16)])
def test_every_layout_maps_to_a_correct_column_major_gemm(M, N, K):
    rng = np.random.default_rng(0)
    for ka, kb, kc in itertools.product(KINDS, KINDS, KINDS):
        abuf, A, (am, ak) = layout(M, K, ka, rng)
        bbuf, B, (bk, bn) = layout(K, N, kb, rng)
        cbuf, C, (cm, cn) = layout(M, N, kc, rng)
        cbuf[:] = np.nan
        g = _C._cublas_map(M, N, K, am, ak, bk, bn, cm, cn)
        assert g is not None, (ka, kb, kc)
        ta, tb, m, n, k, lda, ldb, ldc, swap = g
        assert lda >= (k if ta else m) and ldb >= (n if tb else k) and ldc >= m   # cuBLAS's rules
        X, Y = (bbuf, abuf) if swap else (abuf, bbuf)
        colmajor_gemm(ta, tb, m, n, k, X, lda, Y, ldb, cbuf, ldc)
        np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-12, err_msg=str((ka, kb, kc, g)))


@pytest.mark.parametrize("strides", [
    (0, 1, 5, 1, 5, 1),     # A broadcast along its rows
    (3, 3, 5, 1, 5, 1),     # A's rows and columns overlap unevenly
    (2, 4, 5, 1, 5, 1),     # A strided both ways
    (4, 1, 5, 1, 0, 1),     # C's rows written over each other
    (4, 1, 5, 1, 2, 1),     # C's rows overlapping (ldc < n)
    (4, 1, -5, 1, 5, 1),    # a negative stride
])
def test_layouts_cublas_cannot_take_are_left_to_the_kernel(strides):
    am, ak, bk, bn, cm, cn = strides
    assert _C._cublas_map(4, 5, 4, am, ak, bk, bn, cm, cn) is None


def test_empty_or_huge_products_are_left_to_the_kernel():
    assert _C._cublas_map(0, 5, 4, 4, 1, 5, 1, 5, 1) is None
    assert _C._cublas_map(4, 5, 1 << 31, 1 << 31, 1, 5, 1, 5, 1) is None


def test_loading_says_which_library_or_why_not():
    path, why = _C._cublas()
    assert (path is None) != (why is None)
    if path is None:
        assert "cuBLAS" in why or "TRACEJIT_CUBLAS" in why
    else:
        assert "cublas" in path


def test_programs_describe_their_products_for_cublas():
    import tracejit
    a, b = np.ones((3, 40, 70), np.float32), np.ones((3, 70, 33), np.float32)
    prog = tracejit.compile(lambda a, b: (a @ b, a[0] @ b[0], a[0].T @ a[1]))._cuda_source(a, b)
    assert prog["source"].count("as_[ty][tx] =") == 3   # the tiled kernel: the fallback


# ---- the runtime's hand-over, on the emulator: what cuBLAS would compute from the
# pointers, strides and leading dims the runtime passes it (csrc/backend/cublas.c's
# resolve) is NumPy's product

import cuda_emu  # noqa: E402

PRODUCTS = {
    "square": (lambda a, b: a @ b, [(40, 70), (70, 33)]),
    "transposed": (lambda a, b: a.T @ b.T, [(70, 40), (33, 70)]),
    "batched": (lambda a, b: a @ b, [(3, 20, 17), (3, 17, 18)]),
    "broadcast_weight": (lambda a, b: a @ b, [(3, 20, 17), (17, 18)]),
    "chained": (lambda a, b: np.tanh(a @ b / 8) @ b.T, [(33, 21), (21, 47)]),
    "sliced": (lambda a, b: a[2:, 1:] @ b[1:, 3:], [(40, 41), (41, 96)]),
    "linear_layer": (lambda x, w: np.maximum(x @ w.T + 1, 0), [(32, 64), (48, 64)]),
}


@pytest.mark.skipif(not cuda_emu.compiler(), reason="no C++ compiler")
@pytest.mark.skipif(bool(os.environ.get("TRACEJIT_SANITIZED")),
                    reason="fibers (makecontext) under ASan: run by the plain suite")
@pytest.mark.parametrize("name", sorted(PRODUCTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_products_handed_to_cublas_match_numpy(name, dtype):
    import tracejit
    fn, shapes = PRODUCTS[name]
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(dtype) for s in shapes]
    prog = tracejit.compile(fn)._cuda_source(*args)
    assert any(k[3] >= 0 for k in prog["kernels"]), "a product is described for cuBLAS"
    before = cuda_emu.CUBLAS_CALLS[0]
    got = cuda_emu.run(fn, *args, cublas=True)
    assert cuda_emu.CUBLAS_CALLS[0] > before, "cuBLAS's form was taken"
    want = fn(*args)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)
