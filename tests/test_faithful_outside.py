"""Never silently wrong: values a function reads from outside without tracing them
(NumPy code on an outside array alone, attributes of outside objects) are guarded, so
a change between calls retraces instead of replaying the old constant."""
import numpy as np
import pytest

import tracejit


# ---- arrays read from outside by NumPy code alone --------------------------------------
_G = np.ones(3)
_H = {"w": np.ones(3)}
_L = [np.ones(2)]


class _Holder:
    def __init__(self):
        self.table = np.ones(3)

    def __call__(self, x):
        return x * self.table.max()


def test_numpy_code_on_an_outside_array_is_not_frozen():
    # G.sum() on an array the function reads from outside: the array stands in as a
    # traced value while tracing (_effects._stand_in), so the sum is computed at every
    # call (it returned the old sum before), and an update in place needs no retrace
    global _G
    f = tracejit.compile(lambda x: x + _G.sum())
    x = np.zeros(2)
    np.testing.assert_array_equal(f(x), x + 3)
    _G[:] = 5
    np.testing.assert_array_equal(f(x), x + 15)
    assert f.cache_info().misses == 1
    _G = np.full(3, 2.0)                       # rebound: the identity guard
    np.testing.assert_array_equal(f(x), x + 6)
    h = tracejit.compile(lambda x: x + _H["w"].sum() + _L[0].max())
    np.testing.assert_array_equal(h(x), x + 4)
    _H["w"][:] = 2
    np.testing.assert_array_equal(h(x), x + 7)
    _H["w"] = np.full(3, 3.0)
    _L[0] = np.full(2, 5.0)
    np.testing.assert_array_equal(h(x), x + 14)
    m = _Holder()
    g = tracejit.compile(m.__call__)
    np.testing.assert_array_equal(g(np.ones(2)), [1, 1])
    m.table[1] = 4
    np.testing.assert_array_equal(g(np.ones(2)), [4, 4])


def test_an_outside_array_read_as_a_leaf_keeps_its_plan():
    # one a traced value meets is read at every call: updated between calls (weights
    # an optimizer changes), it needs no retrace
    w = np.ones(3)
    g = tracejit.compile(lambda x: x * w)
    for i in range(4):
        np.testing.assert_array_equal(g(np.ones(3)), np.full(3, 1.0 + i))
        w += 1
    assert g.cache_info().misses == 1 and g.cache_info().hits == 3


class _Config:
    def __init__(self):
        self.scale, self.table = 2.0, np.ones(3)


_CFG = _Config()


def test_attributes_of_an_outside_object_are_guarded():
    # h.k and h.buf of an object held in a closure or a global were read as constants
    # (a rebound attribute kept the old value); they are guarded as a bound object's are
    h = _Config()
    f = tracejit.compile(lambda x: x * h.scale + h.table)
    x = np.ones(3)
    np.testing.assert_array_equal(f(x), x * 2 + 1)
    h.scale, h.table = 5.0, np.full(3, 3.0)
    np.testing.assert_array_equal(f(x), x * 5 + 3)
    assert "the attribute 'table' of the closure variable 'h' changed" in f.cache_info().last_retrace \
        or "the attribute 'scale' of the closure variable 'h' changed" in f.cache_info().last_retrace
    g = tracejit.compile(lambda x: x * _CFG.scale + _CFG.table.sum())
    np.testing.assert_array_equal(g(x), x * 2 + 3)
    _CFG.table[:] = 2
    np.testing.assert_array_equal(g(x), x * 2 + 6)
    _CFG.scale = 1.0
    np.testing.assert_array_equal(g(x), x + 6)


def test_a_regularized_loss_over_weights_updated_in_place():
    # the NumPy training loop of a tutorial: the loss reads the global weights both
    # with the data (a leaf) and alone (the penalty); gradient steps update them in place
    global _W
    _W = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    x, y = np.arange(8.0).reshape(2, 4) / 8, np.ones((2, 3))

    def loss(x, y, lam=0.1):
        return ((x @ _W - y) ** 2).mean() + lam * (_W ** 2).sum() + np.abs(_W).max()

    f = tracejit.compile(loss)
    for _ in range(4):
        np.testing.assert_allclose(f(x, y), loss(x, y), rtol=1e-12)
        _W -= 0.1 * np.sign(_W)
    assert f.cache_info().misses == 1


def test_arrays_in_an_outside_list_or_dict_and_nested_attributes_are_traced():
    params = [np.ones(3), np.zeros(3)]
    table = {"w": np.full(3, 2.0)}

    class Box:
        pass

    h = Box()
    h.cfg = Box()
    h.cfg.scale, h.cfg.w = 2.0, np.ones(3)

    def fn(x):
        return (x * params[0] + params[1] + params[0].sum() + table["w"].max()
                + h.cfg.scale * h.cfg.w.sum())

    f = tracejit.compile(fn)
    x = np.arange(3.0)
    for k in range(3):
        np.testing.assert_array_equal(f(x), fn(x))
        params[0] += 1
        table["w"][1] = 5 + k
        h.cfg.w[0] = k
    assert f.cache_info().misses == 1
    h.cfg.scale = 3.0                      # two levels down: guarded, retraces
    np.testing.assert_array_equal(f(x), fn(x))
    assert "the attribute 'scale' of the attribute 'cfg' of the closure variable 'h' " \
           "changed (2.0 -> 3.0)" == f.cache_info().last_retrace


def test_code_that_needs_a_real_array_from_outside_is_traced_again_without():
    # T.tobytes() needs NumPy's array: the trace with T standing in as a tracer fails,
    # the second one reads T as NumPy's, its contents guarded (an update retraces)
    T = np.linspace(0.0, 1.0, 4)

    def fn(x):
        return x + len(T.tobytes()) + T.sum()

    f = tracejit.compile(fn)
    x = np.ones(4)
    np.testing.assert_array_equal(f(x), fn(x))
    T[0] = 10.0
    np.testing.assert_array_equal(f(x), fn(x))
    assert "the contents of the closure variable 'T' changed" in f.cache_info().last_retrace


def test_isinstance_of_a_traced_array_is_eagers():
    # a traced argument or array from outside is an ndarray to isinstance in a NumPy
    # trace (type() stays Tracer): code branching on it takes eager's branch
    T = np.linspace(0.0, 1.0, 5)

    def fn(x):
        a = x + T if isinstance(T, np.ndarray) else x - T
        return a * 2 if isinstance(x, np.ndarray) and isinstance(a, np.ndarray) else a

    np.testing.assert_array_equal(tracejit.compile(fn)(np.ones(5)), fn(np.ones(5)))


# ---- a torch tensor read at call time, its value read into Python ------------------------
@pytest.mark.parametrize("read", ["item", "float", "bool", "int", "tolist"])
def test_torch_outside_tensor_value_read_is_traced(read):
    """A closure's tensor written by the function (a counter, an optimizer's state) and
    then read by .item() / float() / bool() / int() / tolist(): its value at each call,
    guarded (was the value it held while tracing, frozen into the plan)."""
    torch = pytest.importorskip("torch")
    reads = {"item": lambda t: t.item(), "float": float, "bool": lambda t: bool(t > 3),
             "int": lambda t: int(t), "tolist": lambda t: t.tolist()}[read]

    def make():
        state = torch.tensor(1.0)

        def fn(x):
            state.add_(1)
            v = reads(state)
            return x * 2 if v is True or (v is not False and v > 3) else x + float(v)
        return fn, state
    (fn, s), (eager, s2) = make(), make()
    f = tracejit.compile(fn)
    x = torch.ones(3)
    for _ in range(5):
        torch.testing.assert_close(f(x), eager(x), rtol=0, atol=0)
        assert torch.equal(s, s2)
