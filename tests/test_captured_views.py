"""Arrays read from outside that are views of each other (issue 16: "a write to a view is
seen through every other view of the same base"): a captured array that is exactly a
basic view of another captured array of its dtype stands in as that one's tracer
indexed by the view's key (_effects._views_within), so a write through either is seen
through the other as in eager; the identity of both is guarded, so rebinding either
retraces. Arrays whose memory overlaps otherwise stay refused at every call, naming why;
arrays that interleave without a common element (a structured array's fields) are
written as eager."""
import numpy as np
import pytest

import tracejit
from tracejit import TraceError

SRC = '''
def step(x):
    global U, u
    u += 3 * U[:{m}, :{k}] * x
    U[0] = U[0] - u.sum()
    return U.sum() + u[0, 0]
'''


def _module(key, shape=(6, 5), dtype=np.float64, order="C"):
    ns = {"np": np}
    U = np.asarray(np.arange(np.prod(shape)).reshape(shape) % 7, dtype=dtype, order=order)
    ns["U"] = U
    ns["u"] = U[key]
    m, k = ns["u"].shape
    exec(compile(SRC.format(m=m, k=k), "<user code>", "exec"), ns)
    return ns


KEYS = [(slice(1, -1), slice(1, -1)), (slice(None, None, 2), slice(1, None, 2)),
        (slice(None, None, -1), slice(None)), (slice(4, 0, -2), slice(None, None, -1)),
        (slice(2, 3), slice(0, 5))]


@pytest.mark.parametrize("key", KEYS, ids=str)
@pytest.mark.parametrize("dtype,order", [(np.float64, "C"), (np.float32, "F"),
                                         (np.int64, "C")])
def test_a_global_view_of_a_global_is_written_through_as_eager(key, dtype, order):
    eager, mine = _module(key, dtype=dtype, order=order), _module(key, dtype=dtype, order=order)
    f = tracejit.compile(mine["step"])
    x = np.asarray(2, dtype)
    for call in range(3):
        want, got = eager["step"](x), f(x)
        np.testing.assert_array_equal(got, want, err_msg=f"call {call}")
        np.testing.assert_array_equal(mine["U"], eager["U"], err_msg=f"call {call}")
        np.testing.assert_array_equal(mine["u"], eager["u"], err_msg=f"call {call}")
        assert np.shares_memory(mine["u"], mine["U"])


def test_rebinding_either_global_between_calls_retraces_as_eager():
    key = (slice(1, -1), slice(1, -1))
    eager, mine = _module(key), _module(key)
    f = tracejit.compile(mine["step"])
    x = np.float64(1.5)
    f(x), eager["step"](x)
    # u rebound to a copy: no longer a view of U; writes through u leave U alone
    for ns in (eager, mine):
        ns["u"] = ns["u"].copy()
    np.testing.assert_array_equal(f(x), eager["step"](x))
    np.testing.assert_array_equal(mine["U"], eager["U"])
    np.testing.assert_array_equal(mine["u"], eager["u"])
    # u a view of U again, at another place
    for ns in (eager, mine):
        ns["u"] = ns["U"][2:, :3]
    np.testing.assert_array_equal(f(x), eager["step"](x))
    np.testing.assert_array_equal(mine["U"], eager["U"])
    # U rebound to a new array and u to its interior
    for ns in (eager, mine):
        ns["U"] = ns["U"] * 2.0
        ns["u"] = ns["U"][1:-1, 1:-1]
    for call in range(2):
        np.testing.assert_array_equal(f(x), eager["step"](x))
        np.testing.assert_array_equal(mine["U"], eager["U"])
        np.testing.assert_array_equal(mine["u"], eager["u"])


def test_a_closure_view_of_a_closure_array_is_written_through_as_eager():
    def make():
        grid = np.linspace(0.0, 1.0, 30).reshape(5, 6)
        inner = grid[1:4, 2:5]

        def relax():
            inner[...] = 0.25 * (grid[0:3, 2:5] + grid[2:5, 2:5] + grid[1:4, 1:4] + grid[1:4, 3:6])
            return grid.mean()
        return relax, grid

    (eager, ge), (relax, gm) = make(), make()
    f = tracejit.compile(relax)
    for call in range(4):
        np.testing.assert_array_equal(f(), eager())
        np.testing.assert_array_equal(gm, ge)


def test_a_write_through_the_base_is_seen_through_the_view_in_the_same_call():
    key = (slice(1, 4), slice(0, 3))
    ns = _module(key)
    src = '''
def g():
    global U, u
    U[2, :] = -1.0
    r = u * 1.0
    u[...] = 7.0
    return r, U[1:4, 0:3].copy()
'''
    exec(src, ns)
    eager_ns = _module(key)
    exec(src, eager_ns)
    f = tracejit.compile(ns["g"])
    for call in range(2):
        for a, b in zip(f(), eager_ns["g"]()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ns["U"], eager_ns["U"])


def test_globals_overlapping_otherwise_are_refused_at_every_call_by_name():
    ns = {"np": np}
    exec('''
U = np.arange(12.0).reshape(3, 4)
flat = U.reshape(-1)[2:8]          # a view of U, not a basic index of it

def h():
    flat[...] = 1.0
    return U.sum()
''', ns)
    before = ns["U"].copy()
    f = tracejit.compile(ns["h"])
    for call in range(2):
        with pytest.raises(TraceError, match="writes into an array whose memory another array "
                                             "it reads shares"):
            f()
        np.testing.assert_array_equal(ns["U"], before)     # nothing written


def test_arguments_interleaved_without_a_common_element_are_written_as_eager():
    def fn(a, b):
        a += b
        b *= 2.0
        return a - b

    def fields():
        Z = np.zeros((4, 5), [("U", np.double), ("V", np.double)])
        Z["U"] = np.arange(20.0).reshape(4, 5)
        Z["V"] = 1.5
        return Z

    Ze, Zm = fields(), fields()
    f = tracejit.compile(fn)
    for call in range(3):
        np.testing.assert_array_equal(f(Zm["U"], Zm["V"]), fn(Ze["U"], Ze["V"]))
        np.testing.assert_array_equal(Zm, Ze)
    x = np.zeros(4)
    with pytest.raises(TraceError, match="memory another array it reads shares"):
        f(x, x[::-1])                              # a common element: still refused


def test_a_read_only_view_of_a_writeable_global_is_written_as_eager_raises():
    ns = {"np": np}
    exec('''
U = np.zeros((4, 4))
u = U[1:3, 1:3]
u.flags.writeable = False

def k():
    u[...] = 1.0
    return U.sum()
''', ns)
    with pytest.raises(ValueError, match="read-only"):
        ns["k"]()
    with pytest.raises(ValueError, match="read-only"):
        tracejit.compile(ns["k"])()
    np.testing.assert_array_equal(ns["U"], 0.0)
