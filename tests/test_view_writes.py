"""Writes through views (csrc/trace/write_views.c): a write into a view is seen through
every other view of the same base, taken before or after it, and by the base itself,
exactly as in eager; for arguments and captures, by the caller. Each case is compared
with eager bit for bit over several calls with different values."""
import numpy as np
import pytest

import tracejit
from tracejit import TraceError


def like_eager(fn, make, calls=3):
    f = tracejit.compile(fn)
    for k in range(calls):
        mine, theirs = make(k), make(k)
        got, want = f(*mine), fn(*theirs)
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip((*got, *mine), (*want, *theirs)):
            g = g.numpy() if hasattr(g, "numpy") else np.asarray(g)
            w = w.numpy() if hasattr(w, "numpy") else np.asarray(w)
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)


def grid(shape, dtype=float):
    return lambda k: [(np.arange(np.prod(shape)).reshape(shape) * (k + 1) - 3 * k).astype(dtype)]


def _slice(a):
    b = a * 1
    v = b[1:3, ::2]
    v[0] = -1
    return b, v


def _transpose(a):
    b = a * 1
    t = b.T
    t[0] = 9
    return b, t + 0


def _reshape(a):
    b = a * 1
    r = b.reshape(3, 4)
    r[:, 1] = -5
    return b


def _negative_steps(a):
    b = a * 1
    v = b[::-1, ::-2]
    v[1] = 100
    return b, v


def _view_before_and_after(a):
    b = a * 1
    before = b[:, 1]
    w = b[1:]
    w[:, 1:3] = 0
    after = b[2]
    return before, after, b


def _view_of_view(a):
    b = a * 1
    v = b[1:][:, ::-1][::2]
    v[...] = 4
    return b


def _masked_into_view(a):
    b = a * 1
    v = b[1:, :3]
    v[v > 5] = -2
    return b


def _indexed_into_view(a):
    b = a * 1
    v = b[:, 1:]
    v[[2, 0]] = 8
    v[np.array([1])] += 1
    return b


def _in_place_ops(a):
    b = a * 1
    b[1:] += 1
    v = b[::2]
    v *= 2
    return b, v


def _write_base_views_see(a):
    b = a * 1
    v = b[:, 2]
    t = b.T
    b[1] = 0
    b += 1
    return v, t + 0


def _stencil(N):
    inner = N[1:-1, 1:-1]
    inner += 1
    return N.sum()


def _row(a):
    row = a[0]
    row[:] = 5
    return a


def _zeros_inside(a):
    z = np.zeros((4, 5))
    z[1:3, 1:4] = a[:2, :3]
    v = z[:, ::-1]
    v[0] = a[3, 0]
    return z


@pytest.mark.parametrize("fn,make", [
    (_slice, grid((4, 3))), (_transpose, grid((3, 4))), (_reshape, grid((12,))),
    (_negative_steps, grid((4, 5))), (_view_before_and_after, grid((4, 4))),
    (_view_of_view, grid((5, 4))), (_masked_into_view, grid((4, 4))),
    (_indexed_into_view, grid((3, 4))), (_in_place_ops, grid((5, 3))),
    (_write_base_views_see, grid((3, 4))), (_stencil, grid((5, 6))), (_row, grid((3, 4))),
    (_zeros_inside, grid((4, 4))), (_in_place_ops, grid((5, 3), np.int64)),
])
def test_numpy_writes_through_views_are_eagers(fn, make):
    like_eager(fn, make)


def test_a_write_through_a_view_of_an_argument_reaches_the_caller():
    f = tracejit.compile(_row)
    a = np.arange(12.0).reshape(3, 4)
    assert f(a) is a
    np.testing.assert_array_equal(a[0], 5)
    np.testing.assert_array_equal(a[1:], np.arange(4.0, 12.0).reshape(2, 4))


def test_a_write_through_a_view_of_a_capture_reaches_it():
    g = np.zeros(6)

    def fn(x):
        v = g[::2]
        v += x
        return g * 1

    f = tracejit.compile(fn)
    for k in range(1, 4):
        np.testing.assert_array_equal(f(np.ones(3)), [k, 0, k, 0, k, 0])
    np.testing.assert_array_equal(g, [3, 0, 3, 0, 3, 0])


def life(Z):
    N = (Z[0:-2, 0:-2] + Z[0:-2, 1:-1] + Z[0:-2, 2:] + Z[1:-1, 0:-2] + Z[1:-1, 2:] +
         Z[2:, 0:-2] + Z[2:, 1:-1] + Z[2:, 2:])
    birth = (N == 3) & (Z[1:-1, 1:-1] == 0)
    survive = ((N == 2) | (N == 3)) & (Z[1:-1, 1:-1] == 1)
    Z[...] = 0
    Z[1:-1, 1:-1][birth | survive] = 1
    return Z


def test_rougiers_game_of_life_is_eagers_over_several_steps():
    f = tracejit.compile(life)
    Z = np.random.default_rng(3).integers(0, 2, (16, 16))
    Ze = Z.copy()
    for _ in range(8):
        assert f(Z) is Z
        life(Ze)
        np.testing.assert_array_equal(Z, Ze)


def test_numpys_flatten_and_tile_are_copies():
    def fn(a):
        b = a * 1
        f = b.flatten()
        f[0] = -1
        t = np.tile(b, 1)
        t[0, 0] = -2
        r = b.ravel()               # a view: b sees it
        r[1] = -3
        p = np.pad(b, 0)            # a new array, nothing padded
        p[0, 1] = -4
        return b, f, t, p

    like_eager(fn, grid((2, 3)))


def test_numpys_einsum_and_diff_views_are_views():
    def fn(a):
        b = a * 1
        e = np.einsum("ij->ji", b)  # NumPy's einsum hands out a view here
        e[0] = -1
        d = np.diff(b, n=0)         # b itself
        d[1, 1] = -2
        return b

    like_eager(fn, grid((2, 3)))


def test_gradients_through_a_write_through_a_view():
    def fn(a):
        b = a * 1
        v = b[1:, ::-1]
        v *= a[:2, :]
        return (b * b).sum()

    a = np.arange(6.0).reshape(3, 2) + 1
    want = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        d = np.zeros_like(a)
        d[i] = 1e-6
        want[i] = (fn(a + d) - fn(a - d)) / 2e-6
    np.testing.assert_allclose(tracejit.grad(fn)(a), want, rtol=1e-6)


def test_a_write_into_a_broadcast_view_stays_refused():
    def fn(a):
        v = np.broadcast_to(a * 1, (2, 3))
        v[0, 0] = 1.0
        return v

    with pytest.raises(ValueError, match=r"assignment destination is read-only"):
        tracejit.compile(fn)(np.ones(3))
    with pytest.raises(ValueError, match=r"assignment destination is read-only"):
        fn(np.ones(3))


@pytest.mark.parametrize("reshape", [lambda b: b[1].reshape(3, 2),
                                     lambda b: b[:, ::2].reshape(12),
                                     lambda b: b.T.reshape(-1)])
def test_a_write_into_a_reshape_of_a_strided_view_of_a_held_array_is_refused(reshape):
    # NumPy views or copies by the strides; tracejit copies: refused where it matters
    def fn(a):
        b = a * 1
        w = reshape(b)
        w[0] = -9.0
        return b, w

    with pytest.raises(TraceError, match=r"an assignment \(`x\[\.\.\.\] = value`\) writes "
                       r"into a traced array.*a reshape of a strided view"):
        tracejit.compile(fn)(np.arange(24.0).reshape(4, 6))

    def alone(a):                   # nothing else sees it: the write is eager's
        w = reshape(a * 1)
        w[0] = -9.0
        return w

    like_eager(alone, grid((4, 6)))


def _identity_views(a):
    b = a * 1
    v = b[:]                        # the whole of b: a view of its own
    v += 1.0
    w = b[...]
    w[0] = -4
    s = np.squeeze(b)               # no size-1 dim: the whole of b again
    b *= 2
    return b, v + 0, w + 0, s + 0, np.transpose(np.transpose(b)) is b


def test_identity_views_share_their_base():
    like_eager(_identity_views, grid((3, 4)))


# ---- torch ---------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def tgrid(shape):
    return lambda k: [torch.arange(float(np.prod(shape))).reshape(shape) * (k + 1) - 3 * k]


def _t_views(x):
    y = x * 2
    row = y[1]
    t = y.t()
    row.add_(1)
    t[0].mul_(3)
    y.view(-1)[::5].zero_()
    return y, row + 0, t + 0


def _t_masked(x):
    y = x.clone()
    v = y[:, 1:]
    v.masked_fill_(v > 4, -1.0)
    v[:, 0] = 7
    return y


def _t_argument_view(x):
    x[1:].mul_(2)
    x.t()[0] += 1
    return x


def _t_detach(x):
    y = x * 2
    d = y.detach()
    d[0] += 1
    return y


@pytest.mark.parametrize("fn", [_t_views, _t_masked, _t_argument_view, _t_detach])
def test_torch_writes_through_views_are_eagers(fn):
    like_eager(fn, tgrid((3, 3)))


def test_torch_relu_inplace_on_a_view():
    def fn(x):
        y = x * 1
        torch.nn.functional.relu(y[:, :2], inplace=True)
        return y

    like_eager(fn, lambda k: [torch.linspace(-3, 3, 12).reshape(3, 4) * (k + 1)])


def test_torch_autograd_through_a_write_through_a_view():
    def fn(x):
        y = x * 2
        y[1:].mul_(x[:2])
        y.t()[0] += 1
        return (y * y).sum()

    f = tracejit.compile(fn)
    for k in range(2):
        x1 = (torch.arange(9.0).reshape(3, 3) - k).requires_grad_()
        x2 = x1.detach().clone().requires_grad_()
        got, want = f(x1), fn(x2)
        got.backward()
        want.backward()
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(x1.grad, x2.grad)


def _t_copies_and_views(x):
    y = x * 2
    y.flip(0).mul_(0)               # torch's flip copies
    y.t().contiguous().add_(1)      # a copy: not row-major
    y[1:].contiguous().add_(100)    # y[1:] itself: row-major
    y[:, 1:].contiguous().sub_(5)   # a copy
    return y


def test_torch_flip_and_contiguous_copy_as_torch_does():
    like_eager(_t_copies_and_views, tgrid((3, 4)))
