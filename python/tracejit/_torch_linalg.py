"""torch's dense linear algebra of small matrices (what torch.distributions'
MultivariateNormal and Pyro's Gaussian code use): Cholesky, triangular solves,
cholesky_solve, LU with partial pivoting (slogdet, logdet, det, solve, inverse),
diag and diag_embed.

Each factorization is unrolled over the matrix's n at trace time (n is in the cache
key), one step a few nodes of the tracer's own operations, batched over leading dims;
so the backward is autodiff of the algorithm (the same rules as every op, grad of
grad included) and nothing here is opaque to the passes. The algorithms are LAPACK's
unblocked ones (Cholesky-Crout, forward and back substitution, Doolittle LU with
partial pivoting: the row of the largest |pivot|, first on ties), so the values match
eager's within rounding. Beyond _MAX_N the trace is refused (an opaque library call,
as GEMM's, is the way for large matrices).

Faithfulness:
  * a matrix torch refuses at run time (cholesky of one that is not positive-definite,
    solve and inverse of a singular one) is a check of the plan (_C._check): the call
    with such values raises torch.linalg.LinAlgError at the user's line, as eager does;
  * gradients are eager's: cholesky's is symmetric (torch symmetrizes it), a
    triangular solve's lies in the triangle it reads, cholesky_solve's is torch's
    formula for a full L (its strict upper triangle gets a gradient too). Second
    derivatives are eager's too, except cholesky_solve's for an L whose ignored
    triangle is not zero (torch differentiates its first-derivative formula there,
    whose A^{-1} and X again take L as full: a recursion this does not follow);
  * cholesky_ex reports info as torch does; its L past a failed column is NaN where
    LAPACK leaves partial values (torch documents them as unspecified).
"""
import numpy as np

from . import _C
from ._C import TraceError, Tracer
from ._torch_ops import _NP_DTYPE, _NP_SHAPE, _is_float, _torch

_MAX_N = 64


def _shape(x):
    return tuple(_NP_SHAPE.__get__(x)) if isinstance(x, Tracer) else np.shape(x)


def _square(A, name):
    s = _shape(A)
    if len(s) < 2 or s[-1] != s[-2]:
        raise RuntimeError(f"{name}: A must be batches of square matrices, but they are "
                           f"{s[-2] if len(s) > 1 else s} by {s[-1] if s else s} matrices")
    if not _is_float(A):
        raise RuntimeError(f"{name}: Expected a floating point tensor as input. Got "
                           f"{A.dtype}")
    if s[-1] > _MAX_N:
        raise TraceError(f"{name} of {s[-1]}x{s[-1]} matrices: tracejit unrolls its "
                         f"factorization over n at trace time, up to n = {_MAX_N}")
    return s[-1]


def _detach(x):
    return _C._ad_detach(x)


def _mT(x):
    return np.swapaxes(x, -1, -2)


# ---- Cholesky ------------------------------------------------------------------------

def _chol_columns(A, n):
    """Cholesky-Crout on A's lower triangle: (L, pivots) with pivots[..., j] the value
    whose square root is L's diagonal (> 0 for a positive-definite A)."""
    L, pivots = None, []
    rows = np.arange(n)
    for j in range(n):
        v = A[..., :, j]
        if j:
            v = v - np.matmul(L, L[..., j, :, None])[..., 0]
        d = v[..., j]
        pivots.append(d)
        col = np.where(rows < j, 0.0, v / np.sqrt(d)[..., None])
        L = col[..., None] if L is None else np.concatenate([L, col[..., None]], axis=-1)
    return L, np.stack(pivots, axis=-1)


def _symmetric_grad(A):
    """A's lower triangle mirrored (the values LAPACK reads), whose gradient is the
    symmetrized one torch gives: the values of tril(A) + tril(A, -1)^T, the derivative of
    (A + A^T) / 2 (equal where A is symmetric, so the sum below is exact there)."""
    n = _shape(A)[-1]
    low = np.arange(n)[:, None] >= np.arange(n)[None, :]
    mirrored = np.where(low, A, _mT(A))
    # a NaN or inf in the triangle LAPACK ignores stays ignored
    sym = np.where(np.isfinite(A) & np.isfinite(_mT(A)), (A + _mT(A)) * 0.5, mirrored)
    return sym + _detach(mirrored - sym)


def _cholesky(A, upper, name):
    n = _square(A, name)
    if upper:
        A = _mT(A)
    L, pivots = _chol_columns(_symmetric_grad(A), n)
    return (_mT(L) if upper else L), pivots


def cholesky(A, upper=False, *, out=None):
    if out is not None:
        raise TraceError("torch.linalg.cholesky(..., out=...) is not supported by tracejit")
    L, pivots = _cholesky(A, upper, "linalg.cholesky")
    _C._check(pivots > 0, "torch.linalg.cholesky's input positive-definite",
              _torch().linalg.LinAlgError)
    return L


def cholesky_ex(A, *, upper=False, check_errors=False, out=None):
    L, pivots = _cholesky(A, upper, "linalg.cholesky_ex")
    bad = ~(pivots > 0)
    # info: the order of the first leading minor that is not positive-definite, else 0
    first = np.argmax(bad, axis=-1) + 1
    info = np.where(np.any(bad, axis=-1), first, 0).astype(np.int32)
    if check_errors:
        _C._check(~bad, "torch.linalg.cholesky_ex's input positive-definite (check_errors=True)",
                  _torch().linalg.LinAlgError)
    return _torch().return_types.linalg_cholesky_ex((L, info))


# ---- triangular solves ---------------------------------------------------------------

def _trisolve(A, B, upper, unit):
    """X with A X = B for A (..., n, n) triangular (the triangle `upper` names), B
    (..., n, k): substitution row by row, reading that triangle only."""
    n = _shape(A)[-1]
    X = None
    order = range(n - 1, -1, -1) if upper else range(n)
    for step, i in enumerate(order):
        r = B[..., i:i + 1, :]
        if step:
            a = A[..., i:i + 1, i + 1:] if upper else A[..., i:i + 1, :i]
            r = r - np.matmul(a, X)
        if not unit:
            r = r / A[..., i:i + 1, i:i + 1]
        if X is None:
            X = r
        else:
            X = np.concatenate([r, X] if upper else [X, r], axis=-2)
    return X


def _batch_broadcast(A, B):
    sa, sb = _shape(A), _shape(B)
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    return np.broadcast_to(A, batch + sa[-2:]), np.broadcast_to(B, batch + sb[-2:])


def _check_solve(A, B, name, left=True):
    n = _square(A, name)
    sb = _shape(B)
    if len(sb) < 2 or sb[-2 if left else -1] != n:
        raise RuntimeError(f"{name}: Incompatible shapes of A and B for the equation "
                           f"{'AX = B' if left else 'XA = B'} ({'x'.join(map(str, _shape(A)[-2:]))} "
                           f"and {'x'.join(map(str, sb[-2:]))})")
    if _NP_DTYPE.__get__(A) != _NP_DTYPE.__get__(B):
        raise RuntimeError(f"{name}: Expected A and B to have the same dtype, but found "
                           f"A of type {A.dtype} and B of type {B.dtype} instead")


def solve_triangular(A, B, *, upper, left=True, unitriangular=False, out=None):
    if out is not None:
        raise TraceError("torch.linalg.solve_triangular(..., out=...) is not supported by "
                         "tracejit")
    _check_solve(A, B, "linalg.solve_triangular", left)
    if not left:                       # X A = B  <=>  A^T X^T = B^T
        return _mT(_trisolve(_mT(A), _mT(B), not upper, unitriangular))
    return _trisolve(A, B, upper, unitriangular)


def triangular_solve(b, A, upper=True, transpose=False, unitriangular=False):
    _check_solve(A, b, "triangular_solve")
    if transpose:
        X = _trisolve(_mT(A), b, not upper, unitriangular)
    else:
        X = _trisolve(A, b, upper, unitriangular)
    return _torch().return_types.triangular_solve((X, A.astype(_NP_DTYPE.__get__(A))))


def _cholesky_solve_tri(B, L, upper):
    if upper:                          # A = U^T U
        return _trisolve(L, _trisolve(_mT(L), B, False, False), True, False)
    return _trisolve(_mT(L), _trisolve(L, B, False, False), True, False)


def cholesky_solve(B, L, upper=False, out=None):
    if out is not None:
        raise TraceError("torch.cholesky_solve(..., out=...) is not supported by tracejit")
    _check_solve(L, B, "cholesky_solve")
    X = _cholesky_solve_tri(B, L, upper)
    # torch's derivative takes L as a full matrix in A = L L^T (its strict upper triangle,
    # which the solve never reads, included): dX = -A^{-1} (dL L^T + L dL^T) X. Autodiff of
    # the solves above gives the triangle's part; the rest is a term whose value is zero
    # (D = P - detach(P)) and whose first and second derivatives are the difference: half
    # of it differentiates A^{-1}, half X (in -A^{-1} D X with D = 0 each cross term of
    # the second derivative would otherwise come twice).
    n = _shape(L)[-1]
    keep = (np.arange(n)[:, None] <= np.arange(n)[None, :]) if upper else \
        (np.arange(n)[:, None] >= np.arange(n)[None, :])
    tri = np.where(keep, L, 0.0)
    L = np.where(keep | np.isfinite(L), L, 0.0)    # a NaN the solve ignores stays ignored

    def gram(M):
        P = np.matmul(_mT(M), M) if upper else np.matmul(M, _mT(M))
        return P - _detach(P)
    D = gram(L) - gram(tri)
    return X - 0.5 * (_cholesky_solve_tri(np.matmul(D, _detach(X)), L, upper) +
                      _cholesky_solve_tri(np.matmul(D, X), _detach(L), upper))


# ---- LU with partial pivoting --------------------------------------------------------

def _lu(M, n):
    """Doolittle elimination of the first n columns of M (..., n, m) with partial
    pivoting: (U, pivots, swaps) with U's rows permuted and eliminated (all m columns),
    pivots[..., k] U's diagonal, swaps the parity of the row exchanges (bool)."""
    rows = np.arange(n)[:, None]
    pivots, odd = [], None
    for k in range(n):
        p = np.argmax(np.abs(M[..., k:, k]), axis=-1) + k            # (...)
        pk = p[..., None, None]
        row_p = np.take_along_axis(M, np.broadcast_to(pk, _shape(p) + (1, _shape(M)[-1])),
                                   axis=-2)
        row_k = M[..., k:k + 1, :]
        M = np.where(rows == k, row_p, np.where(rows == pk, row_k, M))
        swapped = p != k
        odd = swapped if odd is None else odd ^ swapped
        piv = M[..., k, k]
        pivots.append(piv)
        if k + 1 < n:
            f = M[..., k + 1:, k:k + 1] / piv[..., None, None]
            below = M[..., k + 1:, :] - f * M[..., k:k + 1, :]
            M = np.concatenate([M[..., :k + 1, :], below], axis=-2)
    return M, np.stack(pivots, axis=-1), odd


def _slogdet(A, name):
    n = _square(A, name)
    _, piv, odd = _lu(A, n)
    singular = np.any(piv == 0, axis=-1)
    # the pivots' signs (derivative zero, but a dependency: eager's sign requires grad)
    sign = np.prod(np.sign(piv), axis=-1)
    sign = np.where(odd, -sign, sign)
    logabs = np.sum(np.log(np.abs(piv)), axis=-1)
    return (np.where(singular, 0.0, sign).astype(_NP_DTYPE.__get__(A)),
            np.where(singular, -np.inf, logabs))


def slogdet(A):
    sign, logabs = _slogdet(A, "slogdet")
    return _torch().return_types.slogdet((sign, logabs))


def linalg_slogdet(A, *, out=None):
    sign, logabs = _slogdet(A, "linalg.slogdet")
    return _torch().return_types.linalg_slogdet((sign, logabs))


def logdet(A):
    sign, logabs = _slogdet(A, "logdet")
    return np.where(sign < 0, np.nan, logabs)


def det(A, *, out=None):
    n = _square(A, "linalg.det")
    _, piv, odd = _lu(A, n)
    d = np.prod(piv, axis=-1)
    d = np.where(odd, -d, d)
    return np.where(np.any(piv == 0, axis=-1), 0.0, d).astype(_NP_DTYPE.__get__(A))


def _lu_solve(A, B, name):
    """X with A X = B (B (..., n, k)): LU of [A | B], then back substitution."""
    n = _shape(A)[-1]
    A, B = _batch_broadcast(A, B)
    M, piv, _ = _lu(np.concatenate([A, B], axis=-1), n)
    _C._check(piv != 0, f"torch.{name}'s input invertible (not singular)",
              _torch().linalg.LinAlgError)
    return _trisolve(M[..., :n], M[..., n:], True, False)


def solve(A, B, *, left=True, out=None):
    if out is not None:
        raise TraceError("torch.linalg.solve(..., out=...) is not supported by tracejit")
    sa, sb = _shape(A), _shape(B)
    vector = len(sb) == 1 or (len(sb) == len(sa) - 1 and sb == sa[:-1])
    if vector:
        B = B[..., None]
    _check_solve(A, B, "linalg.solve", left or vector)
    if not left and not vector:
        return _mT(_lu_solve(_mT(A), _mT(B), "linalg.solve"))
    X = _lu_solve(A, B, "linalg.solve")
    return X[..., 0] if vector else X


def inverse(A, *, out=None):
    if out is not None:
        raise TraceError("torch.linalg.inv(..., out=...) is not supported by tracejit")
    n = _square(A, "linalg.inv")
    eye = np.broadcast_to(np.eye(n, dtype=_NP_DTYPE.__get__(A)), _shape(A))
    return _lu_solve(A, eye, "linalg.inv")


# ---- diagonals -----------------------------------------------------------------------

def diag_embed(x, offset=0, dim1=-2, dim2=-1):
    if (offset, dim1 % (x.ndim + 1), dim2 % (x.ndim + 1)) != (0, x.ndim - 1, x.ndim):
        raise TraceError("torch.diag_embed with offset or dims other than the last two is not "
                         "supported by tracejit yet")
    n = _shape(x)[-1]
    eye = np.eye(n, dtype=bool)
    return np.where(eye, x[..., None], 0.0).astype(_NP_DTYPE.__get__(x))


def diag(x, diagonal=0, out=None):
    if out is not None:
        raise TraceError("torch.diag(..., out=...) is not supported by tracejit")
    if x.ndim == 2:
        from ._torch_nn import diagonal as _diagonal
        return _diagonal(x, diagonal, 0, 1).astype(_NP_DTYPE.__get__(x))
    if x.ndim != 1:
        raise RuntimeError("diag(): Supports 1D or 2D tensors. Got " f"{x.ndim}D")
    if diagonal:
        raise TraceError("torch.diag(vector, diagonal != 0) is not supported by tracejit yet")
    return diag_embed(x)


FUNCS = {
    "cholesky": cholesky, "cholesky_ex": cholesky_ex, "solve_triangular": solve_triangular,
    "triangular_solve": triangular_solve, "cholesky_solve": cholesky_solve,
    "slogdet": slogdet, "linalg_slogdet": linalg_slogdet, "logdet": logdet, "det": det, "solve": solve, "inv": inverse,
    "inverse": inverse, "diag": diag, "diag_embed": diag_embed,
}
# Tensor methods of these names
METHODS = ("cholesky", "cholesky_solve", "triangular_solve", "slogdet", "logdet", "det",
           "inverse", "diag", "diag_embed")
