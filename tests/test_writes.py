"""Writes into traced arrays (csrc/trace/write.c): `x[key] = v` on a fresh traced value
or a local copy, differentially against eager NumPy and torch over keys, value shapes,
dtypes and layouts, on the first call and on a replay with other values; and the
writes that stay refused, by their messages."""
import re

import numpy as np
import pytest

import tracejit
from tracejit import TraceError

from conftest import DTYPES, LAYOUTS, arg_in_layout

# keys over a (4, 5) array: basic, integer-array, boolean and mixed
KEYS = ["0", "-1", "1:3", "::2", "::-1", "-2::-2", "3:0:-2", "...", "None", "()", "True",
        "False", "(slice(None), 0)", "(..., 1)", "(1, None, slice(0, 5, 3))", "(2, -1)",
        "(slice(1, -1), slice(1, -1))", "(slice(None, None, -2), slice(4, 0, -3))",
        "[0, 2]", "[3, 0, 3, 3]", "[-1]", "([0, 1], [2, 3])", "(slice(None), [4, 0, 4])",
        "(np.array([[0], [2]]), np.array([1, 3]))", "np.array([True, False, True, False])",
        "(slice(None), np.array([True, False, True, False, True]))", "2:2", "[]"]


def make(key, copy="a.copy()"):
    ns = {"np": np}
    exec(f"def f(a, v):\n    b = {copy}\n    b[{key}] = v\n    return b\n", ns)
    return ns["f"]


def value_shapes(a, key):
    region = np.shape(eval(f"a[{key}]", {"np": np, "a": a}))
    return sorted({(), region, region[-1:], (1,) + region})


def outcome(fn, *args):
    try:
        return fn(*[x.copy() if isinstance(x, np.ndarray) else x for x in args])
    except Exception as e:       # noqa: BLE001 - the eager outcome, compared by type
        return e


def check(fn, make_args, rng):
    """fn compiled gives eager's result (or eager's exception type) on two calls with
    other values, and leaves its arguments untouched."""
    f = tracejit.compile(fn)
    for _ in range(2):
        args = make_args(rng)
        saved = [x.copy() for x in args]
        want = outcome(fn, *args)
        if isinstance(want, Exception):
            with pytest.raises(type(want)):
                f(*args)
            return
        got = f(*args)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        for x, s in zip(args, saved):
            np.testing.assert_array_equal(x, s)


@pytest.mark.parametrize("key", KEYS)
def test_assignment_is_numpys_for_every_key_and_value_shape(key, rng):
    a0 = np.zeros((4, 5))
    for vshape in value_shapes(a0, key):
        check(make(key), lambda r: (r.uniform(-5, 5, (4, 5)), r.uniform(-5, 5, vshape)), rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("vdtype", DTYPES)
def test_assignment_casts_as_numpys_setitem(dtype, vdtype, rng):
    """setitem casts unsafely (float into int truncates, anything into bool tests != 0)."""
    def args(r):
        return (r.uniform(-5, 5, (4, 5)).astype(dtype), r.uniform(-5, 5, (5,)).astype(vdtype))
    check(make("1:3"), args, rng)
    check(make("::-2"), args, rng)
    check(make("[3, 1]"), args, rng)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("key", ["1:-1", "(slice(None, None, -1), 2)", "[2, 0]",
                                 "(slice(1, None, 2), [1, 1, 3])"])
def test_assignment_reads_arguments_in_any_layout(layout, key, rng):
    def args(r):
        return arg_in_layout(r, (4, 5), "float64", layout), arg_in_layout(r, (5,), "float64", layout)
    check(make(key), args, rng)
    check(make(key, copy="a * 2"), args, rng)


def test_overlapping_source_and_destination_read_the_old_value(rng):
    def fn(a):
        b = a.copy()
        b[1:] = b[:-1]
        c = a * 1
        c[::-1] = c
        d = a + 0
        d[[0, 1, 2]] = d[[2, 0, 1]]
        e = a.copy()
        e[e > 0] = -e[::-1][:1]
        return b, c, d, e

    f = tracejit.compile(fn)
    for _ in range(2):
        a = rng.uniform(-1, 1, (6,))
        for got, want in zip(f(a), fn(a.copy())):
            np.testing.assert_array_equal(got, want)


def test_successive_writes_and_in_place_operators_compose(rng):
    def fn(a, w):
        out = np.zeros_like(a)
        out[1:-1, 1:-1] = (a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:]) * 0.25
        out[0] = w
        out[:, -1] += 1.0           # c[k] op= v: the view's new value, stored into out
        out *= 2
        out[out > 1] = 1
        return out

    check(fn, lambda r: (r.uniform(0, 1, (6, 7)), r.uniform(0, 1, (7,))), rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_traced_mask_with_a_broadcast_value(dtype, rng):
    def fn(a, v):
        b = a * 1
        b[a > 0] = v[0]
        c = a * 1
        c[a[:, 0] > 0] = v          # a mask over the leading dim: whole rows
        d = a * 1
        d[d < 0] = 0
        e = a * 1
        e[a > 0] = v[:1]            # one value broadcast to every True element
        return np.stack([b, c, d, e])

    def args(r):
        return r.uniform(-5, 5, (4, 5)).astype(dtype), r.uniform(-5, 5, (5,)).astype(dtype)
    f = tracejit.compile(fn)
    for _ in range(2):
        a, v = args(rng)
        np.testing.assert_array_equal(f(a, v), fn(a.copy(), v))


def test_traced_mask_with_one_value_per_true_element(rng):
    def fn(a, v, w):
        b = a * 1
        b[a > 0] = v                # one value per True element, in C order
        c = a * 1
        c[a[:, 0] > 0] = w          # one row per True row
        return b, c

    f = tracejit.compile(fn)
    for _ in range(3):              # the same shapes: the first call traces, the rest replay
        a = rng.uniform(-1, 1, (5, 3))
        rows = rng.permutation(5)[:3]
        a[:, 0] = -1
        a[rows, 0] = 1                                   # 3 True rows
        rest = -rng.uniform(0.1, 1, 10)
        rest[rng.permutation(10)[:4]] *= -1              # 4 more True elements
        a[:, 1:] = rest.reshape(5, 2)
        v = rng.uniform(-1, 1, (7,))
        w = rng.uniform(-1, 1, (3, 3))
        for got, want in zip(f(a, v, w), fn(a.copy(), v, w)):
            np.testing.assert_array_equal(got, want)


def test_a_mask_count_other_than_the_values_raises_numpys_error():
    def fn(a, v):
        b = a * 1
        b[a > 0] = v
        return b

    f = tracejit.compile(fn)
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(f(np.array([1.0, -1, 2, 3]), v), fn(np.array([1.0, -1, 2, 3]), v))
    for a in (np.array([1.0, 1, 1, 1]), np.array([1.0, -1, -1, 2])):
        with pytest.raises(ValueError) as eager:
            fn(a, v)
        with pytest.raises(ValueError) as ours:
            f(a, v)
        assert str(ours.value) == str(eager.value)


def test_assignment_errors_are_numpys():
    for key, value in [("5", 1.0), ("[0, 9]", 1.0), ("(0, 0, 0)", 1.0), ("1:3", np.ones(3)),
                       ("[0, 1]", np.ones(3)), ("np.array([True, False])", 1.0)]:
        fn = make(key)
        with pytest.raises(Exception) as eager:
            fn(np.zeros((4, 5)), value)
        with pytest.raises(type(eager.value)) as ours:
            tracejit.compile(fn)(np.zeros((4, 5)), value)
        if type(eager.value) is IndexError:
            assert str(ours.value).split("\n")[0] == str(eager.value)
        else:
            assert "could not broadcast" in str(ours.value), str(ours.value)


def test_a_view_of_a_value_nothing_else_holds_takes_writes():
    def fn(a):
        v = (a * 2)[1:]             # the temporary is gone: only v sees its memory
        v[0] = 5.0
        v += 1
        t = (a * 3).T
        t[0] = -1.0
        return v, t

    f = tracejit.compile(fn)
    a = np.arange(6.0).reshape(2, 3)
    for got, want in zip(f(a), fn(a)):
        np.testing.assert_array_equal(got, want)


def test_writes_other_arrays_see_are_eagers():
    """A write through a view, or into a base whose views are held, is seen by every
    array sharing the memory, as in eager (tests/test_view_writes.py has the rest)."""
    def base_held(a):
        b = a * 2
        v = b[1:]
        v[0] = 5.0
        return b

    def sibling_held(a):
        b = (a * 2).reshape(3, 1)
        v, w = b[1:], b[:2]
        v[0] = 5.0
        return w

    def views_taken(a):
        b = a * 2
        v = b.T
        b[0] = 5.0
        return v

    def named_value(a):
        b = a * 2
        w = b[:-1]                  # eager's w sees the write: it is a view of b
        b[1:] = w
        return w

    def into_argument_view(a):
        v = a[1:]
        v[0] = 1.0
        return v

    for fn, shape in [(base_held, (3,)), (sibling_held, (3,)), (views_taken, (2, 3)),
                      (named_value, (3,)), (into_argument_view, (3,))]:
        f = tracejit.compile(fn)
        for k in range(3):
            a = np.arange(float(np.prod(shape))).reshape(shape) + k
            a1, a2 = a.copy(), a.copy()
            np.testing.assert_array_equal(f(a1), fn(a2))
            np.testing.assert_array_equal(a1, a2)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_a_traced_integer_index_is_numpys(dtype, rng):
    def fn(a, i, v):
        b = a * 1
        b[i] = v                    # one row per index; repeats: the last wins
        c = a * 1
        c[i] = 0
        c[i[:1]] += 5
        d = a[:, 0] * 1
        d[i.reshape(2, 2)] = v[:, 0].reshape(2, 2)
        return b, c, d

    f = tracejit.compile(fn)
    for _ in range(3):
        a, v = rng.uniform(size=(5, 3)), rng.uniform(size=(4, 3))
        i = rng.integers(-5, 5, (4,)).astype(dtype)
        for got, want in zip(f(a, i, v), fn(a.copy(), i, v)):
            np.testing.assert_array_equal(got, want)
    for bad in ([0, 5, 1, 1], [-6, 0, 0, 0]):
        with pytest.raises(IndexError) as eager:
            fn(a.copy(), np.array(bad, dtype), v)
        with pytest.raises(IndexError) as ours:
            f(a, np.array(bad, dtype), v)
        assert str(ours.value) == str(eager.value)


def test_traced_indices_beyond_the_unrolled_forms_are_refused():
    def many(a, i):
        b = a * 1
        b[i] = 0.0
        return b

    with pytest.raises(TraceError, match=r"an assignment \(`x\[\.\.\.\] = value`\) at a traced "
                       r"integer index of 65 positions: tracejit unrolls it into one select per "
                       r"position and supports at most 64"):
        tracejit.compile(many)(np.ones(3), np.zeros(65, np.int64))

    def two(a, i):
        b = a * 1
        b[i, i] = 0.0
        return b

    with pytest.raises(TraceError, match=r"at a traced index other than one integer array or "
                       r"boolean mask is not supported"):
        tracejit.compile(two)(np.ones((3, 3)), np.array([0, 1]))


def test_an_augmented_operator_on_a_view_without_a_store_is_eagers():
    def fn(a):
        b = a * 2
        views = [b[0]]              # eager's += writes into b through the view
        views[0] += 1
        return b

    f = tracejit.compile(fn)
    for k in range(3):
        a = np.arange(4.0).reshape(2, 2) + k
        np.testing.assert_array_equal(f(a), fn(a))


def test_item_assignment_into_a_numpy_scalar_is_numpys_type_error():
    def fn(a):
        s = np.sum(a)
        s[()] = 1.0
        return s

    with pytest.raises(TypeError, match=r"'numpy.float64' object does not support item "
                       r"assignment"):
        tracejit.compile(fn)(np.ones(3))


# ---- torch ---------------------------------------------------------------------

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("key", ["0", "1:3", "::2", "(slice(None), 0)", "(..., -1)", "None",
                                 "[0, 2]", "(slice(None), [2, 0])", "[3, 1, 3]"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.int32,
                                   torch.bool])
def test_torch_assignment_is_torchs(key, dtype):
    ns = {"torch": torch}
    exec(f"def f(x, v):\n    y = x.clone()\n    y[{key}] = v\n    return y\n", ns)
    fn = ns["f"]
    f = tracejit.compile(fn)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        x = (torch.randn(4, 3, generator=gen) * 4).to(dtype)
        region = eval(f"x[{key}]", {"x": x}).shape
        for v in (torch.randn(region, generator=gen) * 4, torch.tensor(2.5), 7):
            try:
                want = fn(x.clone(), v)
            except RuntimeError as e:       # index_put_ wants the dtypes to match
                with pytest.raises(RuntimeError, match=re.escape(str(e))):
                    f(x, v)
                continue
            torch.testing.assert_close(f(x, v), want)


def test_torch_masked_assignment_and_in_place_methods():
    def fn(x, v):
        y = x * 2
        y[y < 0] = 0.0
        z = x.clone()
        z[x > 0] = v[0]
        w = torch.zeros_like(x)
        w[1:, ::2] = x[:-1, ::2]
        return y, z, w

    f = tracejit.compile(fn)
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        x, v = torch.randn(4, 5, generator=gen), torch.randn(5, generator=gen)
        for got, want in zip(f(x, v), fn(x.clone(), v)):
            torch.testing.assert_close(got, want)


def test_torch_write_into_a_view_of_a_held_tensor_is_torchs():
    def fn(x):
        y = x * 2
        y[0][1] = 5.0               # y[0] is a view of y: y sees the write
        return y

    f = tracejit.compile(fn)
    for k in range(3):
        x = torch.arange(4.0).reshape(2, 2) + k
        torch.testing.assert_close(f(x), fn(x), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_torch_indexed_in_place_methods_are_torchs(dtype):
    def fn(x, lab, idx, src, mask):
        oh = x[:, :1] * 0 + torch.zeros(4, 5, dtype=x.dtype)     # fresh, traced
        oh.scatter_(1, lab.unsqueeze(1), 1)
        s = oh * 0
        s.scatter_add_(1, torch.stack([lab, lab.flip(0)], 1), x[:, :2])
        y = x.clone()
        y.index_add_(0, idx, src)
        y.index_add_(1, torch.tensor([2, 0]), x[:, :2], alpha=2)
        z = x * 1
        z.index_put_((idx,), src, accumulate=True)
        w = x * 1
        w.index_put_((torch.tensor([1, 0]),), src[0])
        w.index_put_((mask,), src[1][0])
        q = x * 1
        q.index_fill_(1, torch.tensor([0, 2]), -1)
        m = x * 1
        m.masked_fill_(mask.unsqueeze(1), 7)
        return oh, s, y, z, w, q, m

    f = tracejit.compile(fn)
    gen = torch.Generator().manual_seed(2)
    for _ in range(2):
        x = (torch.randn(4, 3, generator=gen) * 4).to(dtype)
        lab = torch.randint(0, 5, (4,), generator=gen)
        idx = torch.randint(0, 4, (3,), generator=gen)          # repeats add up
        src = (torch.randn(3, 3, generator=gen) * 4).to(dtype)
        mask = torch.rand(4, generator=gen) > 0.5
        for got, want in zip(f(x, lab, idx, src, mask), fn(x.clone(), lab, idx, src, mask)):
            torch.testing.assert_close(got, want)


def test_torch_scatter_out_of_range_and_unsupported_forms():
    def fn(x, lab):
        y = x * 1
        y.scatter_(1, lab.unsqueeze(1), 1.0)
        return y

    f = tracejit.compile(fn)
    x = torch.zeros(3, 4)
    torch.testing.assert_close(f(x, torch.tensor([0, 3, 1])), fn(x, torch.tensor([0, 3, 1])))
    for bad in ([0, 4, 1], [0, -1, 1]):
        with pytest.raises(RuntimeError):
            fn(x, torch.tensor(bad))
        with pytest.raises(IndexError, match=r"out of bounds for axis 0 with size 4"):
            f(x, torch.tensor(bad))

    def narrow_index(x, lab):
        y = x * 1
        y.scatter_(1, lab[:2].unsqueeze(1), 1.0)      # torch allows a smaller index
        return y

    with pytest.raises(TraceError, match=r"scatter_\(\) with an index of shape \[2, 1\] into a "
                       r"tensor of shape \[3, 4\]: tracejit supports an index whose dims other "
                       r"than 1 equal the tensor's"):
        tracejit.compile(narrow_index)(x, torch.tensor([0, 3, 1]))

    def wide(x, lab):
        y = torch.zeros(3, 100) + x[:, :1]
        y.scatter_(1, lab.unsqueeze(0).expand(3, 65).contiguous(), 1.0)
        return y

    with pytest.raises(TraceError, match=r"scatter_\(\) with 65 indices along dim 1: tracejit "
                       r"unrolls a scatter into one select per index and supports at most 64"):
        tracejit.compile(wide)(x, torch.arange(65))

    def into_factory(x, lab):
        oh = torch.zeros(3, 4)                 # made while tracing: the trace's own
        oh.scatter_(1, lab.unsqueeze(1), 1.0)
        return oh

    f = tracejit.compile(into_factory)
    for lab in ([0, 3, 1], [2, 2, 0]):         # a second call starts from zeros again
        torch.testing.assert_close(f(x, torch.tensor(lab)), into_factory(x, torch.tensor(lab)))


# ---- out=, copyto, putmask, place, fill (NumPy) ------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_out_copyto_putmask_place_fill_are_numpys(dtype, rng):
    def fn(a, b, m):
        c = a * 1
        np.add(a, b, out=c)
        d = np.zeros_like(a)
        r = np.maximum(a[0], b, out=d)      # broadcast to out's shape; returns out
        e = a.copy()
        np.copyto(e, b, where=m)
        g = a.copy()
        np.putmask(g, m, b[:3])             # values cycle over the flat positions
        h = a.copy()
        np.place(h, m, b[:3])               # ... over the True elements
        k = a.copy()
        k.fill(1)
        s = a * 1
        np.subtract(s, b, out=s)            # out is an input: the old value is read
        return c, d, r, e, g, h, k, s

    f = tracejit.compile(fn)
    for _ in range(2):
        a = rng.uniform(-5, 5, (3, 4)).astype(dtype)
        b = rng.uniform(-5, 5, (4,)).astype(dtype)
        m = rng.uniform(size=(3, 4)) > 0.5
        with np.errstate(all="ignore"):
            want = outcome(fn, a, b, m)
        if isinstance(want, Exception):     # bool has no subtract: NumPy's TypeError
            with pytest.raises(type(want)):
                f(a, b, m)
            return
        for got, w in zip(f(a, b, m), want):
            assert got.dtype == w.dtype
            np.testing.assert_array_equal(got, w)


def test_out_and_copyto_keep_numpys_casting_rules():
    def to_int(a):
        c = a.astype(np.int64)
        np.multiply(a, 1.5, out=c)
        return c

    with pytest.raises(TypeError, match=r"Cannot cast ufunc output from dtype\('float64'\) to "
                       r"dtype\('int64'\) with casting rule 'same_kind'"):
        tracejit.compile(to_int)(np.ones(3))

    def copy_int(a):
        c = a.astype(np.int64)
        np.copyto(c, a * 1.5)
        return c

    with pytest.raises(TypeError, match=r"Cannot cast array data from dtype\('float64'\) to "
                       r"dtype\('int64'\) according to the rule 'same_kind'"):
        tracejit.compile(copy_int)(np.ones(3))

    def unsafe(a):
        c = a.astype(np.int64)
        np.copyto(c, a * 1.5, casting="unsafe")
        return c

    a = np.array([1.0, 2.0, -3.0])
    np.testing.assert_array_equal(tracejit.compile(unsafe)(a), unsafe(a))


def test_writes_into_untraced_arrays_are_refused():
    def out_numpy(a):
        out = np.eye(1, 3)[0]               # a NumPy array: not traced
        np.add(a, 1, out=out)
        return out

    with pytest.raises(TraceError, match=r"numpy\.add\(\.\.\., out=\.\.\.\) is not supported by "
                       r"tracejit where out is not a traced array"):
        tracejit.compile(out_numpy)(np.ones(3))

    for name, call in [("copyto", "np.copyto(z, a)"), ("putmask", "np.putmask(z, a > 0, a)"),
                       ("place", "np.place(z, a > 0, a)")]:
        ns = {"np": np}
        exec(f"def fn(a):\n    z = np.eye(1, 3)[0]\n    {call}\n    return z\n", ns)
        with pytest.raises(TraceError, match=rf"numpy\.{name} writes into an existing array, "
                           r"which a traced function can do only where that array is traced"):
            tracejit.compile(ns["fn"])(np.ones(3))
        exec(f"def made(a):\n    z = np.zeros(3)\n    {call}\n    return z\n", ns)
        f = tracejit.compile(ns["made"])          # np.zeros's array is traced: written
        for a in (np.ones(3), np.array([-1.0, 2.0, 0.0])):
            np.testing.assert_array_equal(f(a), ns["made"](a))

    def into_argument(a):                      # the caller's array: written, as eager
        np.copyto(a, 1.0)
        return a

    a = np.zeros(3)
    assert tracejit.compile(into_argument)(a) is a
    np.testing.assert_array_equal(a, 1.0)


def test_a_broadcast_view_is_read_only_as_in_eager():
    def numpy_fn(a):
        b = np.broadcast_to(a * 2, (3, 4))
        b[0] = 1.0
        return b

    with pytest.raises(ValueError, match=r"an assignment \(`x\[\.\.\.\] = value`\): assignment "
                       r"destination is read-only"):
        tracejit.compile(numpy_fn)(np.ones(4))

    def torch_fn(x):
        y = (x * 2).expand(3, 4)
        y += 1
        return y

    with pytest.raises(RuntimeError, match=r"the in-place operator `\+=`: unsupported operation: "
                       r"more than one element of the written-to tensor refers to a single "
                       r"memory location"):
        tracejit.compile(torch_fn)(torch.ones(4))


def test_a_python_int_out_of_the_targets_range_is_numpys_overflow_error():
    def fn(a):
        b = a.astype(np.int32)
        b[0] = 2 ** 40
        return b

    with pytest.raises(OverflowError, match=r"Python integer 1099511627776 out of bounds for "
                       r"int32"):
        tracejit.compile(fn)(np.ones(4))


def test_astype_without_a_copy_is_the_same_array_as_in_eager():
    def fn(a):
        x = a * 1
        y = x.astype(np.float64, copy=False)        # x itself: a write is seen by both
        y[0] = 5.0
        z = np.astype(x, np.float64, copy=False)
        z[1] = 6.0
        w = x.astype(np.float32, copy=False)        # a conversion: a new array
        w[2] = 7.0
        return x, w

    a = np.arange(4.0)
    for got, want in zip(tracejit.compile(fn)(a), fn(a)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


# ---- random write programs -----------------------------------------------------------

def _random_key(r, shape, masks=True):
    """A random key over `shape`: ints, slices with steps (negative too), ..., None,
    an integer list, a constant boolean array (reading one, x[mask], is not traced)."""
    items = []
    for n in shape:
        k = r.integers(0, 5)
        if k == 0:
            items.append(str(int(r.integers(-n, n))))
        elif k == 1:
            lo, hi, st = int(r.integers(-n, n)), int(r.integers(-n, n + 1)), int(r.choice([1, 2, -1, -2]))
            items.append(f"slice({lo}, {hi}, {st})")
        elif k == 2 and "[" not in "".join(items):
            items.append(str([int(i) for i in r.integers(-n, n, r.integers(1, 4))]))
        else:
            items.append("slice(None)")
    if r.integers(0, 4) == 0:
        items.insert(int(r.integers(0, len(items) + 1)), "None")
    if masks and r.integers(0, 4) == 0:
        return f"np.array({(r.uniform(size=shape) > 0.5).tolist()})"
    return "(" + ", ".join(items) + ",)"


def _random_program(r):
    lines, shape = [], (int(r.integers(1, 5)), int(r.integers(1, 5)))
    for _ in range(int(r.integers(2, 6))):
        k = r.integers(0, 5)
        if k == 0:
            lines.append(f"b[{_random_key(r, shape)}] = v[0, 0] * {int(r.integers(1, 4))}")
        elif k == 1:
            lines.append(f"b[b > {r.uniform(-1, 1):.2f}] = v[0, 1]")
        elif k == 2:
            lines.append(f"b[{_random_key(r, shape, masks=False)}] += 1.5")
        elif k == 3:
            lines.append("b[1:] = b[:-1] * 2")
        else:
            lines.append(f"c = b * 1\n    c[{_random_key(r, shape)}] = b.sum()\n    b = c + b")
    body = "\n    ".join(lines)
    return shape, f"def fn(a, v):\n    b = a.copy()\n    {body}\n    return b\n"


@pytest.mark.parametrize("case", range(60))
def test_random_write_programs_are_numpys(case):
    r = np.random.default_rng(case)
    shape, src = _random_program(r)
    ns = {"np": np}
    exec(src, ns)
    fn = ns["fn"]
    f = tracejit.compile(fn)
    for _ in range(2):
        a, v = r.uniform(-1, 1, shape), r.uniform(-1, 1, (4, 4))
        want = outcome(fn, a, v)
        if isinstance(want, Exception):
            with pytest.raises(type(want)):
                f(a, v)
            return
        np.testing.assert_allclose(f(a, v), want, rtol=1e-12, err_msg=src)


def test_torch_assignment_with_an_int_beside_an_index_tensor_is_refused():
    def fn(x):
        y = x * 1
        y[0, :, [0, 1]] = 5.0       # torch's region is (3, 2), NumPy's (2, 3)
        return y

    with pytest.raises(TraceError, match=r"with both an int and an index tensor in one "
                       r"subscript is not supported by tracejit yet"):
        tracejit.compile(fn)(torch.ones(2, 3, 4))


def test_a_temporary_view_of_the_whole_target_is_read_before_the_write():
    def fn(a):
        b = a * 2
        b[...] = b[...][::-1]       # b[...]: b's memory, dropped after the store
        b[:] = b[:] + 1
        return b

    a = np.arange(5.0)
    np.testing.assert_array_equal(tracejit.compile(fn)(a), fn(a))


@pytest.mark.parametrize("key", [(slice(1, -1), slice(1, -1)), (0,), (slice(None), -1),
                                 (Ellipsis, slice(2, 4)), (1, slice(0, 3)),
                                 (None, slice(1, 3), 2), (slice(0, 5), slice(0, 6))])
def test_a_box_assignment_is_parts_around_the_value(key):
    # ints, unit-step slices, ..., None: a box of x in C order; the result is x's
    # slices concatenated around the value (no index map, no gather), eager's values
    def fn(x, y):
        z = x * 2.0
        z[key] = y[key] + 1.0
        return z

    f = tracejit.compile(fn)
    rng = np.random.default_rng(3)
    for _ in range(2):
        x, y = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
        np.testing.assert_array_equal(f(x, y), fn(x, y))
    text = str(f.explain(x, y))
    assert "GATHER" not in text[text.index("-- fuse"):], text


def test_a_strided_or_boolean_region_keeps_the_index_map():
    def fn(x):
        z = x + 0.0
        z[::2, 1::3] = -1.0
        z[np.array([[True, False, True]] * 2 + [[False] * 3])] = 7.0
        return z

    x = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(tracejit.compile(fn)(x), fn(x))
