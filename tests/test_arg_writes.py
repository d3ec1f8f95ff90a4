"""Writes into the caller's arrays (issue 16, items 2 and 3): a compiled function that
writes into an argument, a tensor it reads from outside (a closure's, a global's, a
module's buffer) or a tensor torch made while tracing does what eager does, at every
call, into that call's arrays: differential tests against eager NumPy and torch, over
layouts and second calls, and the refusals' and errors' messages."""
import copy

import numpy as np
import pytest

import tracejit
from tracejit import TraceError

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def _layouts(rng, shape):
    """The same values as a C array, a transposed view, a strided view, a view with
    negative strides and a view of a larger base: (name, make(values) -> array)."""
    def transposed(v):
        return np.ascontiguousarray(v.T).T

    def strided(v):
        big = np.zeros((shape[0] * 2,) + shape[1:])
        big[::2] = v
        return big[::2]

    def negative(v):
        return np.ascontiguousarray(v[::-1])[::-1]

    def of_base(v):
        big = np.full((shape[0] + 2,) + shape[1:], -7.0)
        big[1:-1] = v
        return big[1:-1]
    return [("C", np.array), ("transposed", transposed), ("strided", strided),
            ("negative", negative), ("base", of_base)]


WRITES = {
    "iadd": lambda a, b: a.__iadd__(b * 2),
    "slice": lambda a, b: a.__setitem__((slice(1, None),), b[:-1]),
    "mask": lambda a, b: a.__setitem__(a > 0.5, 0.0),
    "item": lambda a, b: a.__setitem__((0, 1), 9.0),
    "index": lambda a, b: a.__setitem__(np.array([2, 0]), b[:2]),
    "out": lambda a, b: np.multiply(a, b, out=a),
    "copyto": lambda a, b: np.copyto(a, b + 1),
    "twice": lambda a, b: (a.__imul__(3.0), a.__setitem__((slice(None), 0), -1.0)),
}


@pytest.mark.parametrize("form", sorted(WRITES))
@pytest.mark.parametrize("layout", ["C", "transposed", "strided", "negative", "base"])
def test_a_numpy_argument_written_is_the_callers_array(form, layout, rng):
    def fn(a, b):
        WRITES[form](a, b)
        return a.sum() + 0.0

    f = tracejit.compile(fn)
    make = dict(_layouts(rng, (4, 3)))[layout]
    for _ in range(3):           # each call writes into that call's array
        v, b = rng.uniform(size=(4, 3)), rng.uniform(size=(4, 3))
        ours, want = make(v), v.copy()
        base = ours.base.copy() if ours.base is not None else None
        got, expect = f(ours, b), fn(want, b)
        np.testing.assert_allclose(got, expect, rtol=1e-13)
        np.testing.assert_array_equal(ours, want)
        if base is not None and layout == "base":      # the rest of the base untouched
            np.testing.assert_array_equal(ours.base[0], base[0])
            np.testing.assert_array_equal(ours.base[-1], base[-1])


def test_a_written_argument_returned_is_the_argument_itself(rng):
    def fn(a, b):
        a += b
        return a, a * 2, b

    f = tracejit.compile(fn)
    for _ in range(2):
        a, b = rng.uniform(size=3), rng.uniform(size=3)
        a0 = a.copy()
        r = f(a, b)
        assert r[0] is a                     # as eager's `return a`
        np.testing.assert_array_equal(a, a0 + b)
        np.testing.assert_array_equal(r[1], (a0 + b) * 2)
        assert r[2] is not b                 # unwritten: a new array, as before


def test_a_write_then_a_read_of_the_argument_sees_the_write(rng):
    def fn(a):
        s0 = a.sum()
        a[0] = 100.0
        s1 = a.sum()
        a *= 2
        return s0, s1, a[0] * 1
    f = tracejit.compile(fn)
    a = rng.uniform(size=4)
    want = fn(a.copy())
    got = f(a)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)
    assert a[0] == 200.0


def test_writing_a_read_only_array_raises_as_numpy_at_every_call():
    def fn(a, b):
        b += 1.0
        a += 1.0
        return a

    f = tracejit.compile(fn)
    a, b = np.zeros(3), np.zeros(3)
    a.flags.writeable = False
    with pytest.raises(ValueError, match=r"read-only"):
        fn(a, b.copy())
    with pytest.raises(ValueError, match=r"assignment destination is read-only"):
        f(a, b)
    np.testing.assert_array_equal(b, 0.0)        # nothing written when a write fails
    f(np.zeros(3), b)
    np.testing.assert_array_equal(b, 1.0)
    with pytest.raises(ValueError, match=r"assignment destination is read-only"):
        f(a, b)                                  # a replay: the same error
    np.testing.assert_array_equal(b, 1.0)


def test_arguments_sharing_memory_with_a_written_one_are_refused_at_every_call():
    def fn(a, b):
        a += 1.0
        return a + b

    f = tracejit.compile(fn)
    x = np.zeros(4)
    with pytest.raises(TraceError, match=r"writes into an array whose memory another array it "
                       r"reads shares \(the same array passed twice, overlapping views"):
        f(x, x)
    np.testing.assert_array_equal(x, 0.0)
    np.testing.assert_array_equal(f(x, np.ones(4)), 2.0)     # compiled for separate arrays
    base = np.zeros(8)
    with pytest.raises(TraceError, match=r"share"):
        f(base[:4], base[2:6])                   # overlapping views: a replay refuses too
    np.testing.assert_array_equal(base, 0.0)
    np.testing.assert_array_equal(f(base[:4], base[4:]), 1.0)   # disjoint views: eager's
    np.testing.assert_array_equal(base, [1, 1, 1, 1, 0, 0, 0, 0])


def test_a_write_through_a_view_of_an_argument_reaches_the_caller():
    def fn(a):
        v = a[1:]
        v += 1.0
        return a

    def older_view(a):
        v = a[:2]
        a += 1.0                                 # eager's v sees it
        return v

    for g in (fn, older_view):
        f = tracejit.compile(g)
        for k in range(3):
            a1, a2 = np.arange(3.0) + k, np.arange(3.0) + k
            np.testing.assert_array_equal(f(a1), g(a2))
            np.testing.assert_array_equal(a1, a2)


def _zero(a, b):
    a[...] = 0
    return a.sum() + 0.0


def _reverse(a, b):
    a[:] = a[::-1]                                # reads what it overwrites: NumPy's copy
    return a * 1


def _copy_then_bump(a, b):
    a[...] = b                                    # a's contents are b's before b changes
    b += 1
    return a + b


def _swap(a, b):
    t = a.copy()
    a[...] = b
    b[...] = t
    return a - b


@pytest.mark.parametrize("fn", [_zero, _reverse, _copy_then_bump, _swap],
                         ids=lambda f: f.__name__)
def test_writes_whose_values_are_arguments_or_constants(fn, rng):
    f = tracejit.compile(fn)
    for _ in range(2):
        a, b = rng.uniform(size=5), rng.uniform(size=5)
        ea, eb = a.copy(), b.copy()
        np.testing.assert_array_equal(f(a, b), fn(ea, eb))
        np.testing.assert_array_equal(a, ea)
        np.testing.assert_array_equal(b, eb)


def test_augmented_item_assignment_into_an_argument(rng):
    def fn(a, i):
        a[1:3] += 5.0
        a[:, 0] *= a[:, 1]
        return a.sum()

    f = tracejit.compile(fn)
    for _ in range(2):
        a = rng.uniform(size=(4, 3))
        want = a.copy()
        np.testing.assert_allclose(f(a, 0), fn(want, 0))
        np.testing.assert_array_equal(a, want)


def test_factories_then_writes(rng):
    def loop(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = x[i] * i
        z = np.zeros_like(x)
        z[1:] = out[:-1]
        return out, z

    f = tracejit.compile(loop)
    for _ in range(2):
        x = rng.uniform(size=(5, 2))
        for g, w in zip(f(x), loop(x)):
            np.testing.assert_array_equal(g, w)

    def torch_loop(x):
        out = torch.zeros(3, 2)                  # made while tracing: the trace's own
        for i in range(3):
            out[i] = x[i] * 2
        out.add_(1.0)
        return out

    f = tracejit.compile(torch_loop)
    for _ in range(3):                           # never accumulates across calls
        x = torch.randn(3, 2)
        torch.testing.assert_close(f(x), torch_loop(x))


# ---- torch ----------------------------------------------------------------------

def test_a_torch_argument_written_is_the_callers_tensor():
    def fn(x, y):
        x.add_(y)
        x[0] = -1.0
        x.relu_()
        F.relu(y, inplace=True)
        return x

    f = tracejit.compile(fn)
    for _ in range(2):
        x, y = torch.randn(4, 3), torch.randn(4, 3)
        xt = torch.randn(3, 4).t()               # a transposed argument
        xt.copy_(x)
        xe, ye = x.clone(), y.clone()
        versions = xt._version, y._version
        r = f(xt, y)
        assert r is xt
        fn(xe, ye)
        torch.testing.assert_close(xt, xe)
        torch.testing.assert_close(y, ye)
        assert xt._version > versions[0] and y._version > versions[1]


def test_the_version_counter_catches_a_saved_tensor_written_by_a_compiled_call():
    def bump(a):
        a += 1
        return a

    f = tracejit.compile(bump)
    w, y = torch.ones(3, requires_grad=True), torch.arange(3.0)
    loss = (w * y).sum()                          # autograd saved y
    f(y)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation"):
        loss.backward()


def test_a_leaf_that_requires_grad_written_in_place_raises_torchs_error():
    def fn(w, x):
        w.add_(1.0)
        return (w * x).sum()

    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"a leaf Variable that requires grad is being used "
                       r"in an in-place operation"):
        fn(w, torch.ones(3))
    with pytest.raises(RuntimeError, match=r"a leaf Variable that requires grad is being used "
                       r"in an in-place operation"):
        tracejit.compile(fn)(w, torch.ones(3))
    assert torch.equal(w.detach(), torch.ones(3))
    with torch.no_grad():                         # allowed there, as in eager
        tracejit.compile(fn)(w, torch.ones(3))
    assert torch.equal(w.detach(), torch.full((3,), 2.0))


def test_a_non_leaf_that_requires_grad_written_through_the_autograd_route_is_refused():
    def fn(h, x):
        h.mul_(2.0)
        return (h * x).sum()

    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"writes in place into a tensor that requires grad"):
        tracejit.compile(fn)(w * 1.0, torch.ones(3))


def test_writes_under_the_autograd_route_keep_gradients():
    def fn(w, buf):
        buf.mul_(2.0)
        buf += w.detach()
        return (w * buf).sum()

    f = tracejit.compile(fn)
    for _ in range(2):
        w, b = torch.randn(3, requires_grad=True), torch.randn(3)
        we, be = w.detach().clone().requires_grad_(), b.clone()
        loss, want = f(w, b), fn(we, be)
        loss.backward()
        want.backward()
        torch.testing.assert_close(loss, want)
        torch.testing.assert_close(w.grad, we.grad)
        torch.testing.assert_close(b, be)


def test_captured_tensors_written_reach_their_owner():
    buf = torch.zeros(3)

    class Holder:
        pass
    h = Holder()
    h.count = torch.zeros((), dtype=torch.int64)

    def fn(x):
        global_like = buf
        global_like += x                         # a closure's tensor
        h.count.add_(1)                          # a tensor read through an attribute
        return x * h.count

    f = tracejit.compile(fn)
    for k in range(1, 4):
        torch.testing.assert_close(f(torch.ones(3)), torch.full((3,), float(k)))
    torch.testing.assert_close(buf, torch.full((3,), 3.0))
    assert int(h.count) == 3

    h.flat = torch.zeros(4)

    def through_attribute_view(x):                # torch made the view; the memory is h's
        v = h.flat.view(2, 2)
        v.add_(x)
        return x * 1

    g = tracejit.compile(through_attribute_view)
    for _ in range(2):
        g(torch.ones(2, 2))
    torch.testing.assert_close(h.flat, torch.full((4,), 2.0))

    def through_view(x):                         # the write reaches buf
        buf[:2].add_(x[:2])
        return x

    c = tracejit.compile(through_view)
    for _ in range(2):
        c(torch.ones(3))
    torch.testing.assert_close(buf, torch.tensor([5.0, 5.0, 3.0]))


def test_writes_into_numpy_captures_reach_them():
    g = np.zeros(3)

    def fn(x):
        g[...] = x
        return x

    f = tracejit.compile(fn)
    for k in range(3):
        f(np.full(3, float(k)))
        np.testing.assert_array_equal(g, np.full(3, float(k)))


# ---- batch and instance norm in training -------------------------------------------

@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (8, 3)), (nn.BatchNorm1d, (4, 3, 6)),
                                       (nn.BatchNorm2d, (4, 3, 5, 5)),
                                       (nn.BatchNorm3d, (2, 3, 3, 4, 2))])
def test_batch_norm_training_updates_running_stats_as_eager(cls, shape, momentum):
    torch.manual_seed(0)
    m = cls(3, momentum=momentum)
    e = copy.deepcopy(m)
    f = tracejit.compile(m)
    with torch.no_grad():
        for _ in range(4):
            x = torch.randn(*shape) * 3 + 1
            torch.testing.assert_close(f(x), e(x))
    torch.testing.assert_close(m.running_mean, e.running_mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(m.running_var, e.running_var, rtol=1e-6, atol=1e-7)
    assert int(m.num_batches_tracked) == int(e.num_batches_tracked) == 4
    m.eval()
    e.eval()
    with torch.no_grad():
        torch.testing.assert_close(f(x), e(x))


def test_instance_norm_with_running_stats_as_eager():
    torch.manual_seed(0)
    m = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    e = copy.deepcopy(m)
    f = tracejit.compile(m)
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(4, 3, 5, 5)
            torch.testing.assert_close(f(x), e(x))
    torch.testing.assert_close(m.running_mean, e.running_mean)
    torch.testing.assert_close(m.running_var, e.running_var)


def test_batch_norm_training_with_gradients_updates_once_per_call():
    """Through the autograd route (parameters requiring grad): the forward writes the
    running statistics; the pullback, which recomputes it, writes nothing."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(inplace=True),
                        nn.Linear(8, 2))
    ref = copy.deepcopy(net)
    f = tracejit.compile(net)
    for _ in range(3):
        x = torch.randn(16, 4)
        y, ye = f(x), ref(x)
        (y ** 2).sum().backward()
        (ye ** 2).sum().backward()
        torch.testing.assert_close(y, ye)
    for p, q in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)
    for b, c in zip(net.buffers(), ref.buffers()):
        torch.testing.assert_close(b, c)

    class Loss(nn.Module):                        # a scalar output: the fused route
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return (self.net(x) ** 2).mean()
    g = tracejit.compile(Loss(net))
    for _ in range(2):
        x = torch.randn(16, 4)
        g(x).backward()
        (ref(x) ** 2).mean().backward()
    for b, c in zip(net.buffers(), ref.buffers()):
        torch.testing.assert_close(b, c)
