"""Functions whose eager result is a view (or a read-only view) are views in a trace too
(csrc/trace/views_strided.c): torch's Tensor.unfold and diagonal are strided views
writes go through, both ways; NumPy's np.diagonal, np.diag of a 2-d array,
np.broadcast_to and sliding_window_view are read-only views (NumPy's ValueError on a
write, the base's later writes seen through them); an identity view (`b[:]`) is a view
of its own. Each case is compared with eager over several calls with other values,
results and arguments bit for bit."""
import numpy as np
import pytest

import tracejit
from tracejit import TraceError

swv = np.lib.stride_tricks.sliding_window_view


def _as_np(v):
    return v.numpy() if hasattr(v, "numpy") else np.asarray(v)


def like_eager(fn, make, calls=3):
    f = tracejit.compile(fn)
    for k in range(calls):
        mine, theirs = make(k), make(k)
        got, want = f(*mine), fn(*theirs)
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        assert len(got) == len(want)
        for g, w in zip((*got, *mine), (*want, *theirs)):
            g, w = _as_np(g), _as_np(w)
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(g, w)


def grid(shape, dtype=np.float64, layout="C"):
    def make(k):
        a = (np.arange(np.prod(shape)).reshape(shape) * (k + 1) - 3 * k).astype(dtype)
        if layout == "F":
            a = np.asfortranarray(a)
        elif layout == "strided":
            a = np.repeat(a, 2, axis=-1)[..., ::2]
        return [a]
    return make


def both_raise(fn, a, exc, match):
    with pytest.raises(exc, match=match):
        fn(a.copy())
    with pytest.raises(exc, match=match):
        tracejit.compile(fn)(a.copy())


# ---- NumPy: read-only views ------------------------------------------------------------

def _diag_write(a):
    np.diagonal(a * 1)[0] = 5


def _diag_iadd(a):
    d = (a * 1).diagonal(1)
    d += 1


def _diag_view_of_view(a):
    d = np.diagonal(a * 1)
    d[1:][::-1][0] = 3


def _diag_out(a):
    d = np.diagonal(a * 1)
    np.add(d, 1, out=d)


def _diag_copyto(a):
    np.copyto(np.diag(a * 1), 0.0)


def _diag_fill(a):
    np.diagonal(a * 1, 0, 1, 0).fill(2)


def _bcast_same_shape(a):
    v = np.broadcast_to(a * 1, a.shape)
    v[...] = 0


def _bcast_view(a):
    np.broadcast_to(a * 1, (2,) + a.shape)[0, 0] = 1


def _windows_write(a):
    swv(a * 1, 2, axis=0)[0, 0, 0] = 1


def _windows_iadd(a):
    w = swv(a * 1, (2, 2))
    w *= 2


@pytest.mark.parametrize("fn,exc,match", [
    (_diag_write, ValueError, "assignment destination is read-only"),
    (_diag_iadd, ValueError, "output array is read-only"),
    (_diag_view_of_view, ValueError, "assignment destination is read-only"),
    (_diag_out, ValueError, "output array is read-only"),
    (_diag_copyto, ValueError, "assignment destination is read-only"),
    (_diag_fill, ValueError, "assignment destination is read-only"),
    (_bcast_same_shape, ValueError, "assignment destination is read-only"),
    (_bcast_view, ValueError, "assignment destination is read-only"),
    (_windows_write, ValueError, "assignment destination is read-only"),
    (_windows_iadd, ValueError, "output array is read-only"),
])
def test_numpy_read_only_views_refuse_writes_as_numpy(fn, exc, match):
    both_raise(fn, np.arange(12.).reshape(3, 4), exc, match)


def test_a_reshape_of_a_read_only_view_is_refused_by_name():
    def fn(a):
        d = np.diagonal(a * 1).reshape(1, -1)   # NumPy: a read-only view
        d[0, 0] = 1

    with pytest.raises(ValueError, match="read-only"):
        fn(np.ones((3, 3)))
    with pytest.raises(TraceError, match=r"reshape of a read-only view.*\n.*_view_faithful"):
        tracejit.compile(fn)(np.ones((3, 3)))


def _diag_sees_base(a):
    b = a * 1
    d = b.diagonal(1)
    e = np.diagonal(b, -1)[::-1]
    b[1:, 1:] *= 2
    b[0] = -1
    return d * 1, e + 0, d[1:] + 0, np.trace(b)


def _diag_of_argument(a):
    d = np.diag(a)
    a[1, 1] = -9
    a[:, 0] += 1
    return d + 0


def _diag_copy_writable(a):
    d = np.diagonal(a * 1).copy()
    d[0] = 5
    e = np.diagonal(a).astype(np.float32)
    e += 1
    return d, e


def _diag_3d(a):
    b = a * 1
    d = np.diagonal(b, 1, 2, 0)
    b[:, 1] = 0
    return d + 0, np.diagonal(a, -1, 0, 1) * 2


def _bcast_sees_base(a):
    b = a * 1
    v = np.broadcast_to(b, b.shape)
    w = np.broadcast_to(b[0], (2,) + b.shape[1:])
    b[0] = 7
    return v + 0, w + 0, v[...] + 1


def _windows_sees_base(a):
    b = a * 1
    w = swv(b, 2, axis=-1)
    b[1, 2] = -1
    return w + 0, w.sum(-1)


def _windows_writeable(a):
    b = a * 1
    w = swv(b, 2, axis=1, writeable=True)
    w[0, 1, 1] = 100          # b[0, 2]
    b[2, 0] = -1
    return b, w + 0


def _windows_nd(a):
    return swv(a, (2, 3)).sum(axis=(-1, -2)), swv(a, 3, axis=(0,)).max(-1)


@pytest.mark.parametrize("fn", [_diag_sees_base, _diag_of_argument, _diag_copy_writable,
                                _bcast_sees_base, _windows_sees_base, _windows_writeable,
                                _windows_nd])
@pytest.mark.parametrize("dtype", [np.float64, np.int32])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_numpy_views_see_their_base(fn, dtype, layout):
    like_eager(fn, grid((4, 5), dtype, layout))


def test_numpy_diagonal_of_3d_arrays():
    like_eager(_diag_3d, grid((3, 4, 5)))
    like_eager(_diag_3d, grid((3, 4, 5), np.float32, "F"))


def test_numpy_view_errors_are_numpys():
    a = np.ones((3, 4))
    both_raise(lambda a: swv(a, 5, axis=0), a, ValueError, "window shape cannot be larger")
    both_raise(lambda a: swv(a, (2, 2, 2)), a, ValueError, "must provide window_shape for all")
    both_raise(lambda a: swv(a, 2, axis=2), a, np.exceptions.AxisError, "out of bounds")
    both_raise(lambda a: np.diagonal(a, 0, 1, -1), a, ValueError, "cannot be the same")


def _identity_views(a):
    b = a * 1
    v = b[:]
    v += 1
    w = b[...]
    w[0] = -4
    s = np.squeeze(b)
    b *= 2
    return b, v + 0, w + 0, s + 0


def test_identity_views_are_views():
    like_eager(_identity_views, grid((3, 4)))
    like_eager(_identity_views, grid((3, 4), np.int64, "F"))


# ---- torch: writable views -------------------------------------------------------------

torch = pytest.importorskip("torch")


def tgrid(shape, dtype=None, layout="C"):
    def make(k):
        t = torch.arange(int(np.prod(shape))).reshape(shape) * (k + 1) - 2 * k
        t = t.to(dtype or torch.float32)
        if layout == "T":
            t = t.mT.contiguous().mT
        elif layout == "strided":
            t = torch.repeat_interleave(t, 2, dim=-1)[..., ::2]
        return [t]
    return make


def _unfold_write(x):
    b = x * 1
    u = b.unfold(1, 2, 2)
    u[0, 0, 0] = -1
    u[:, 1].mul_(3)
    return b, u + 0


def _unfold_sees_base(x):
    b = x * 1
    u = b.unfold(0, 2, 1)          # overlapping windows: read only
    b[1] = 100
    return u * 1, u.sum(-1)


def _unfold_of_transpose(x):
    b = x * 1
    u = b.mT.unfold(0, 2, 2)
    u.neg_()
    return b, u + 0


def _unfold_into_argument(x):
    u = x.unfold(-1, 2, 2)
    u[..., 0] = 7
    return u.sum()


def _unfold_last_dim_3(x):
    b = x.clone()
    u = b.unfold(-1, 3, 3)
    u.zero_()
    return b


def _diagonal_write(x):
    b = x * 1
    d = torch.diagonal(b)
    d[1] = 5
    e = b.diagonal(1)
    e.add_(1)
    return b, d + 0, e + 0


def _diagonal_sees_base(x):
    b = x * 1
    d = b.diagonal(-1)
    b[2:] = 0
    return d + 0


def _diagonal_into_argument(x):
    x.diagonal().zero_()
    return x + 1


def _diagonal_of_diagonal(x):
    b = x * 1
    d = b.diagonal(0, 1, 2).diagonal()
    d += 5
    return b, d + 0


def _expand_as_itself(x):
    b = x * 1
    v = b.expand_as(b)
    v.add_(1)
    return b


@pytest.mark.parametrize("fn,shape", [
    (_unfold_write, (3, 6)), (_unfold_sees_base, (5, 2)), (_unfold_of_transpose, (3, 4)),
    (_unfold_into_argument, (3, 6)), (_unfold_last_dim_3, (2, 2, 7)), (_diagonal_write, (4, 4)),
    (_diagonal_sees_base, (4, 5)), (_diagonal_into_argument, (4, 4)),
    (_diagonal_of_diagonal, (3, 3, 3)), (_expand_as_itself, (3, 4))])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
@pytest.mark.parametrize("layout", ["C", "T", "strided"])
def test_torch_views_are_views(fn, shape, dtype, layout):
    like_eager(fn, tgrid(shape, getattr(torch, dtype), layout))


def test_a_write_through_overlapping_windows_is_refused():
    def fn(x):
        b = x * 1
        b.unfold(0, 3, 1).add_(1)   # eager: each element added as often as it is read
        return b

    with pytest.raises(TraceError, match=r"torch.Tensor.add_\(\) writes through a view that "
                       r"reads its base's elements"):
        tracejit.compile(fn)(torch.ones(6))


@pytest.mark.parametrize("fn,shape", [
    (lambda x: (x.unfold(1, 3, 1) * torch.arange(3.)).sum(-1) ** 2, (4, 7)),
    (lambda x: x.unfold(0, 2, 2) ** 2, (5, 3)),
    (lambda x: x.unfold(1, 4, 2).sin(), (2, 9, 3)),
    (lambda x: x.mT.unfold(0, 2, 1).cos(), (3, 5)),
    (lambda x: x[:, 1:].unfold(1, 2, 1).unfold(0, 2, 1) * 3, (3, 6)),
    (lambda x: torch.diagonal(x, -1, 0, 2) ** 2, (4, 3, 5)),
    (lambda x: x.mT.diagonal(1) * 2, (3, 4)),
    (_diagonal_write, (3, 3)),
    (_unfold_write, (2, 4)),
])
def test_gradients_through_strided_views(fn, shape):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    y = x.detach().clone().requires_grad_(True)
    out, ref = tracejit.compile(fn)(x), fn(y)
    out = out if isinstance(out, tuple) else (out,)
    ref = ref if isinstance(ref, tuple) else (ref,)
    sum(o.sum() for o in out).backward()
    sum(r.sum() for r in ref).backward()
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r)
    torch.testing.assert_close(x.grad, y.grad)


def test_tracejit_grad_through_numpy_windows():
    def f(a):
        return (swv(a, 3) ** 2).sum() + (np.diagonal(a.reshape(3, 3)) * 2).sum()

    a = np.linspace(-1, 1, 9)
    g = tracejit.grad(f)(a)
    eps, want = 1e-6, np.zeros(9)
    for i in range(9):
        d = np.zeros(9)
        d[i] = eps
        want[i] = (f(a + d) - f(a - d)) / (2 * eps)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8)
