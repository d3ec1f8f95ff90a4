"""Never silently wrong: what a trace cannot replay faithfully (a random draw, a write
that other arrays would see) is refused with a TraceError naming the operation and the
user's line; what it can (a fresh value updated in place) gives eager's results on
every call. See python/tracejit/_effects.py and csrc/trace/tracer.c (writes)."""
import inspect
import random
import re
import sys

import numpy as np
import pytest

import tracejit
from tracejit import TraceError

from conftest import assert_matches_numpy

HERE = re.escape(__file__)


def line_of(fn, text):
    """The source line of fn holding `text`: what a refusal must point at."""
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return start + i
    raise AssertionError(f"{text!r} not in {fn.__name__}")


def like_eager(fn, make, calls=3):
    """fn compiled gives eager's results, and leaves its arguments as eager does, bit
    for bit over several calls with different values (make(k): the arguments)."""
    f = tracejit.compile(fn)
    for k in range(calls):
        mine, theirs = make(k), make(k)
        got, want = f(*mine), fn(*theirs)
        for g, w in zip((got, *mine), (want, *theirs)):
            g = g.numpy() if hasattr(g, "numpy") else np.asarray(g)
            w = w.numpy() if hasattr(w, "numpy") else np.asarray(w)
            np.testing.assert_array_equal(g, w)


def refused(fn, args, what, at):
    """fn compiled refuses on its first call, naming `what` and pointing at the line of
    fn holding `at`."""
    with pytest.raises(TraceError) as e:
        tracejit.compile(fn)(*args)
    msg = str(e.value)
    assert re.search(what, msg), msg
    where = fn.__code__.co_filename
    if at is not None:
        assert f"{where}:{line_of(fn, at)}," in msg, msg
    else:       # the net: it names the function and where it is defined
        assert f"{fn.__name__} ({where}:{fn.__code__.co_firstlineno})" in msg, msg
    return msg


# ---- random numbers ------------------------------------------------------------

NP_RANDOM = sorted(n for n in np.random.__all__
                   if not isinstance(getattr(np.random, n), type) and n != "default_rng")
# drawn in the graph (tests/test_random.py checks each is fresh at every call)
NP_DRAWN = {"random", "random_sample", "sample", "ranf", "rand", "randn", "standard_normal",
            "normal", "uniform", "randint", "exponential", "standard_exponential",
            "lognormal", "laplace", "gumbel", "logistic", "standard_cauchy", "choice",
            "gamma", "standard_gamma", "beta", "dirichlet", "chisquare", "standard_t",
            "poisson", "binomial"}


def test_the_drawn_numpy_functions_are_the_tested_ones():
    from tracejit import _draws
    assert {n for n in NP_RANDOM if _draws.numpy_global(n, check=True)} == NP_DRAWN


@pytest.mark.parametrize("name", sorted(set(NP_RANDOM) - NP_DRAWN))
def test_every_other_numpy_random_function_is_refused(name):
    """Every public function of numpy.random that is not drawn in the graph (a new one
    too: the list is numpy's own)."""
    def fn(x):
        getattr(np.random, name)()
        return x + 1.0

    refused(fn, [np.ones(3)], rf"numpy\.random\.{name}\(\) draws random numbers", "getattr")


@pytest.mark.parametrize("name", sorted(n for n in random.__all__
                                        if not isinstance(getattr(random, n), type)))
def test_every_python_random_function_is_refused(name):
    def fn(x):
        getattr(random, name)()
        return x + 1.0

    refused(fn, [np.ones(3)], rf"random\.{name}\(\) draws random numbers", "getattr")


def test_a_numpy_draw_is_refused_at_its_line():
    def fn(x):
        y = x * 2.0
        return y + np.random.zipf(2.0, size=x.shape)

    msg = refused(fn, [np.ones(3)], r"numpy\.random\.zipf\(\) draws random numbers.*the same "
                  r"numbers", "np.random.zipf")
    assert "return y + np.random.zipf(2.0, size=x.shape)" in msg


def test_unseeded_generators_made_inside_are_refused_seeded_ones_are_faithful():
    from numpy.random import default_rng      # however it was imported

    def fresh(x):
        return x + default_rng().standard_normal(3)

    refused(fresh, [np.ones(3)], r"a new unseeded random generator \(fresh entropy\)",
            "default_rng()")

    def seeded(x):      # the same numbers at every eager call: a constant is faithful
        return x + np.random.default_rng(7).standard_normal(3)

    f = tracejit.compile(seeded)
    for v in (np.ones(3), np.zeros(3)):
        assert_matches_numpy(f(v), seeded(v))


def test_generators_the_function_reaches_are_watched():
    """A numpy function bound before tracing, a method of a generator that is not a
    NumPy Generator or RandomState, or a generator reached another way (inside a
    container), has no entry point to intercept: the generator's state, compared after
    the trace, refuses it (NumPy generators the function is given or reads from a
    closure, a global or an attribute draw in the graph: tests/test_random.py)."""
    rngs = [np.random.default_rng(0)]

    def in_a_list(x):
        return x + rngs[0].normal(size=3)

    refused(in_a_list, [np.ones(3)], r"changed the state of a variable of its closure|"
            r"global 'rngs'", None)

    from numpy.random import standard_normal

    def prebound(x):
        return x + standard_normal(3)

    refused(prebound, [np.ones(3)], r"changed the state of numpy.random's global generator",
            None)

    state = random.Random(1)

    def py_instance(x):
        return x + state.random()

    refused(py_instance, [np.ones(3)], r"closure \(Random\)", None)

    class Holder:
        def __init__(self):
            self.rs = [np.random.RandomState(0)]

        def __call__(self, x):
            return x + self.rs[0].rand(3)

    with pytest.raises(TraceError, match=r"changed the state of numpy.random's global|"
                       r"RandomState"):
        tracejit.compile(Holder().__call__)(np.ones(3))

    def in_an_argument_list(x, gs):
        return x + gs[0].normal(size=3)

    refused(in_an_argument_list, [np.ones(3), [np.random.default_rng(1)]],
            r"changed the state of an argument \(Generator\)", None)


def test_other_threads_keep_their_random_functions():
    """The wrappers refuse on the tracing thread only."""
    import threading
    drawn, go, done = [], threading.Event(), threading.Event()

    def worker():
        go.wait()
        drawn.append(np.random.uniform())    # while the main thread traces
        done.set()

    th = threading.Thread(target=worker)
    th.start()

    def fn(x):
        go.set()
        done.wait(5)
        return x + 1.0

    # the worker's draw moved the global state: the net refuses rather than guess
    with pytest.raises(TraceError, match="numpy.random's global generator"):
        tracejit.compile(fn)(np.ones(3))
    th.join()
    assert len(drawn) == 1 and 0.0 <= drawn[0] < 1.0
    assert np.random.normal == np.random.mtrand._rand.normal     # restored


def test_a_refusal_caught_by_the_users_code_still_refuses_the_trace():
    """A broad `except` around a refused draw would otherwise compile its fallback."""
    def fn(x):
        try:
            noise = np.random.zipf(2.0, size=3)
        except Exception:            # a user's broad except
            noise = np.zeros(3)
        return x + noise

    with pytest.raises(TraceError, match=r"numpy\.random\.zipf\(\) draws random numbers(.|\n)*"
                       r"caught this TraceError and went on"):
        tracejit.compile(fn)(np.ones(3))

    def conversion(x):
        try:
            scale = np.asarray(x)[0]
        except Exception:
            scale = 1.0
        return x * scale

    with pytest.raises(TraceError, match=r"conversion to a concrete array(.|\n)*caught this"):
        tracejit.compile(conversion)(np.full(3, 2.0))


def test_a_conversion_error_caught_by_the_users_code_is_guarded():
    """int() of NaN raises in eager too; the trace assumes the same failure (an exact
    guard), so another call's finite value takes the other path."""
    def fn(x):
        try:
            n = int(x[0])
        except ValueError:
            n = -1
        return x * n

    f = tracejit.compile(fn)
    for v in (np.nan, 2.5, np.nan, 2.75, 3.5):
        x = np.full(3, v)
        np.testing.assert_array_equal(f(x), fn(x))
    assert f.cache_info().variants == 3   # NaN, int 2, int 3


# ---- writes --------------------------------------------------------------------

def test_a_write_through_a_view_is_eagers():
    def fn(b):
        c = b * 1.0
        v = c[1:3]
        v += 100.0
        return c

    like_eager(fn, lambda k: [np.arange(5.0) + k])

    def parent(b):
        c = b * 1.0
        v = c[1:3]
        c += 1.0
        return v

    like_eager(parent, lambda k: [np.arange(5.0) + k])


def test_writes_into_numpy_captures_reach_them_at_every_call():
    g = np.zeros(5)

    def into_closure(x):
        g[...] = x * 2
        return x + g.sum()

    f = tracejit.compile(into_closure)
    for k in range(3):
        x = np.arange(5.0) + k
        np.testing.assert_array_equal(f(x), x + 2 * x.sum())
        np.testing.assert_array_equal(g, 2 * x)


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/=", "//=", "%=", "**=", "&=", "|=", "^=",
                                "<<=", ">>=", "@="])
def test_every_in_place_operator_on_an_argument_writes_the_callers_array(op, rng):
    ns = {}
    ints = op in ("&=", "|=", "^=", "<<=", ">>=")
    rhs = "np.eye(3, dtype=a.dtype) * 2" if op == "@=" else "(w % 3)" if ints else "(w + 0.5)"
    exec(f"def fn(a, w):\n    a {op} {rhs}\n    return a\n", {"np": np}, ns)
    f = tracejit.compile(ns["fn"])
    for _ in range(2):          # a second call with other arrays
        if ints:
            a, w = rng.integers(0, 50, (3, 3)), rng.integers(0, 50, (3, 3))
        else:
            a, w = rng.uniform(0.5, 2, (3, 3)), rng.uniform(0.5, 2, (3, 3))
        want = ns["fn"](a.copy(), w)
        got = f(a, w)
        assert got is a                       # eager returns the argument itself
        np.testing.assert_allclose(a, want, rtol=1e-14)


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/=", "//=", "%=", "**=", "&=", "|=", "^=",
                                "<<=", ">>=", "@="])
def test_every_in_place_operator_on_a_fresh_array_is_eagers(op, rng):
    ns = {}
    ints = op in ("&=", "|=", "^=", "<<=", ">>=")
    rhs = "w" if op == "@=" else ("(w % 3)" if ints else "(w + 0.5)")
    exec(f"def fn(a, w):\n    y = a * 2\n    alias = y\n    y {op} {rhs}\n"
         f"    return y, alias, a\n", {"np": np}, ns)
    fn = ns["fn"]
    f = tracejit.compile(fn)
    for _ in range(2):          # a second call with other values
        if ints:
            a, w = rng.integers(0, 50, (3, 3)), rng.integers(0, 50, (3, 3))
        else:
            a, w = rng.uniform(0.5, 2, (3, 3)), rng.uniform(0.5, 2, (3, 3))
        for got, want in zip(f(a, w), fn(a.copy(), w.copy())):
            np.testing.assert_allclose(got, want, rtol=1e-14)   # pow: libm's, not NumPy's


def test_in_place_keeps_numpys_shape_and_casting_rules():
    def grow(x):
        y = x * 2.0
        y += np.ones((2, 5))
        return y

    with pytest.raises(ValueError, match=r"`\+=`: non-broadcastable output operand with shape "
                       r"\(5,\) doesn't match the broadcast shape \(2, 5\)"):
        tracejit.compile(grow)(np.arange(5.0))

    def to_int(x):
        y = (x * 2).astype(np.int64)
        y += 1.5
        return y

    with pytest.raises(TypeError, match=r"Cannot cast ufunc output from dtype\('float64'\) to "
                       r"dtype\('int64'\) with casting rule 'same_kind'"):
        tracejit.compile(to_int)(np.arange(5.0))

    def down(x, z):
        y = x.astype(np.float32)
        y += z              # float64 computed, cast back to float32 as NumPy does
        y += 1              # broadcasting a scalar keeps the shape
        return y

    x, z = np.arange(5.0), np.linspace(0, 1, 5)
    got = tracejit.compile(down)(x, z)
    assert got.dtype == np.float32
    assert_matches_numpy(got, down(x, z))


def test_item_assignment_on_a_fresh_tracer_is_eagers_and_deletion_is_refused():
    """(every assignment form: tests/test_writes.py)"""
    def setitem(b):
        c = b * 1.0
        c[0] = 1.0
        return c

    assert_matches_numpy(tracejit.compile(setitem)(np.arange(5.0)), setitem(np.arange(5.0)))

    def delitem(b):
        del b[0]
        return b

    refused(delitem, [np.arange(5.0)], r"deletion \(`del x\[\.\.\.\]`\)", "del b[0]")


def test_an_in_place_operator_into_a_numpy_array_names_the_write():
    def fn(x):
        result = np.eye(1, 5, dtype=bool)[0]      # not a traced factory: NumPy's array
        pos = 1
        result[pos] &= (x[1] > 0)
        return result

    refused(fn, [np.arange(5.0)], r"an assignment into an array .* with a traced value cannot "
            r"be traced", "result[pos] &=")

    def made(x):                  # into an array np.ones (or np.array) made: traced
        result = np.ones(5, bool)
        result[1] &= (x[1] > 0)
        listed = np.array([True] * 5)
        listed[2] &= (x[2] > 0)
        return result, listed

    f = tracejit.compile(made)
    for x in (np.arange(5.0), -np.arange(5.0)):
        for got, want in zip(f(x), made(x)):
            assert_matches_numpy(got, want)


# ---- attributes and conversions --------------------------------------------------

def test_unknown_attributes_are_attribute_errors_with_the_line():
    def fn(x):
        return x.summ()

    with pytest.raises(AttributeError, match=r"'ndarray' object \(traced by tracejit\) has no "
                       r"attribute 'summ'") as e:
        tracejit.compile(fn)(np.ones(3))
    assert f"{__file__}:{line_of(fn, 'x.summ')}" in str(e.value)
    assert e.value.name == "summ"

    def probes(x):
        has = hasattr(x, "summ")
        default = getattr(x, "foo", None)
        return x + (1.0 if not has and default is None else 0.0)

    assert_matches_numpy(tracejit.compile(probes)(np.ones(3)), np.full(3, 2.0))
    # an attribute arrays have and tracejit lacks stays a TraceError
    with pytest.raises(TraceError, match=r"ndarray\.partition is not supported by tracejit yet"):
        tracejit.compile(lambda x: x.partition(1))(np.ones(3))


def test_a_list_where_an_array_is_expected_says_so():
    def fn(x):
        return np.exp(x)

    refused(fn, [[1.0, 2.0]], r"a list argument of a compiled function is traced as a list of "
            r"scalars: pass an array", "np.exp")
    # lists stay pytrees: Python's own list operations are eager's
    f = tracejit.compile(lambda xs: xs * 2)
    assert len(f([1.0, 2.0])) == 4


# ---- torch ---------------------------------------------------------------------

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_torch_in_place_methods_on_fresh_tensors_are_eagers():
    def fn(x, w):
        y = x * 2
        alias = y
        y.add_(w).mul_(0.5).clamp_(min=0.2)
        z = torch.relu(x - 1)
        F.relu(z - 0.5, inplace=True)      # a fresh temporary: eager drops it too
        F.leaky_relu(z, 0.1, True)
        h = x + 0
        h.copy_(w)
        g = x * 1
        g.fill_(3.0)
        g.sub_(h)
        k = x * 1
        k.zero_()
        return alias, z, h, g, k

    f = tracejit.compile(fn)
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        x, w = torch.randn(6, generator=gen), torch.randn(6, generator=gen)
        for got, want in zip(f(x, w), fn(x.clone(), w.clone())):
            torch.testing.assert_close(got, want)


def test_torch_writes_that_other_tensors_see_are_eagers():
    def through_detach(x):
        y = x * 2
        d = y.detach()
        d += 1
        return y

    like_eager(through_detach, lambda k: [torch.ones(3) + k])

    def relu_arg(x):                    # an argument's own write: the caller's tensor
        return F.relu(x, inplace=True)

    x = torch.tensor([-1.0, 2.0])
    assert tracejit.compile(relu_arg)(x) is x and x.tolist() == [0.0, 2.0]

    buf = torch.zeros(3)

    def through_view_of_capture(x):
        buf[:2].add_(x[:2])
        return x

    f = tracejit.compile(through_view_of_capture)
    f(torch.ones(3))
    f(torch.ones(3))
    assert buf.tolist() == [2.0, 2.0, 0.0]


def test_every_torch_random_entry_point_is_in_the_tables():
    """Every torch function or method that takes a generator= (torch's own signatures
    say so), and every dropout, is known by name (drawn in the graph or refused,
    _torch_random.py): a new one cannot slip through."""
    from tracejit import _torch
    spaces = [torch, torch.Tensor, torch.nn.functional, torch.special]
    found = set()
    for space in spaces:
        for name in dir(space):
            obj = getattr(space, name, None)
            doc = getattr(obj, "__doc__", None)
            doc = doc if isinstance(doc, str) else ""
            head = "\n\n".join(doc.split("\n\n")[:2])      # the signature(s)
            if callable(obj) and not name.startswith("_") and (
                    "generator=" in head or "dropout" in name or name.startswith("rand")):
                found.add(name)
    assert {"randn", "rand", "randint", "normal", "bernoulli", "multinomial", "dropout",
            "normal_", "uniform_"} <= found
    found.discard("thread_safe_generator")     # a decorator about generators, no draw
    missing = {n for n in found if n not in _torch._RANDOM and n not in _torch._RANDOM_IF_TRAINING}
    assert not missing, f"random entry points tracejit does not refuse: {sorted(missing)}"


def test_rrelu_refuses_in_training_and_is_eagers_in_eval():
    """RReLU's training-mode slopes have no counter-based sampler yet (the other random
    layers draw in the graph: tests/test_random_torch.py)."""
    layer = torch.nn.RReLU()
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(TraceError, match=r"rrelu\(\) in training mode draws"):
        tracejit.compile(layer)(x)
    layer.eval()
    torch.testing.assert_close(tracejit.compile(layer)(x), layer(x))


def test_relu_inplace_modules_are_eagers():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(inplace=True),
                              torch.nn.Linear(8, 3), torch.nn.Hardtanh(inplace=True))
    f = tracejit.compile(net)
    with torch.no_grad():
        for _ in range(2):
            x = torch.randn(5, 4)
            torch.testing.assert_close(f(x), net(x))


# ---- what tracing reads from outside ------------------------------------------------

COUNTER = np.zeros(1)


def test_a_write_into_a_global_array_happens_at_every_call():
    def fn(x):
        COUNTER[0] += 1          # eager counts every call: so does the replay
        return x * COUNTER[0]

    f = tracejit.compile(fn)
    for k in range(1, 4):
        assert_matches_numpy(f(np.ones(3)), np.full(3, float(k)))
        assert COUNTER[0] == k and COUNTER.flags.writeable
    assert f.cache_info().misses == 1
    COUNTER[0] = 5.0

    def reads(x):                # reading one is faithful, and sees later updates
        return x * COUNTER

    f = tracejit.compile(reads)
    assert_matches_numpy(f(np.ones(3)), np.full(3, 5.0))
    COUNTER[0] = 6.0
    assert_matches_numpy(f(np.ones(3)), np.full(3, 6.0))
    COUNTER[0] = 0.0


def test_writes_into_closure_and_attribute_arrays_happen_at_every_call():
    hist = np.zeros(4)

    def fn(x):
        hist[1:3] += x[:2]
        return x + 1.0

    f = tracejit.compile(fn)
    for k in range(1, 4):
        assert_matches_numpy(f(np.ones(3) * k), np.ones(3) * k + 1)
    np.testing.assert_array_equal(hist, [0, 6, 6, 0])
    assert hist.flags.writeable

    class Model:
        def __init__(self):
            self.calls = np.zeros(1)

        def step(self, x):
            self.calls += 1
            return x * self.calls

    m = Model()
    g = tracejit.compile(m.step)
    for k in range(1, 4):
        assert_matches_numpy(g(np.ones(3)), np.full(3, float(k)))
    assert m.calls[0] == 3 and m.calls.flags.writeable


def test_rebinding_an_outside_array_is_refused():
    def fn(x):
        global COUNTER
        COUNTER = COUNTER + 1    # a new array each eager call: would happen once
        return x

    with pytest.raises(TraceError, match=r"the traced function rebinds the global 'COUNTER', "
                       r"an array it reads from outside, to a new value"):
        tracejit.compile(fn)(np.ones(3))
    assert COUNTER[0] == 0


def test_python_values_read_as_constants_are_guarded():
    """A global, closure or attribute number is a constant of the trace: the plan keeps
    a guard on it, and a changed one retraces (an equal one does not)."""
    ns = {"np": np, "SCALE": 2.0, "MODE": "double"}
    exec("def fn(x):\n    y = x * SCALE\n    return y * 2 if MODE == 'double' else y\n", ns)
    f = tracejit.compile(ns["fn"])
    x = np.ones(3)
    assert_matches_numpy(f(x), np.full(3, 4.0))
    ns["SCALE"] = 3.0
    assert_matches_numpy(f(x), np.full(3, 6.0))
    assert f.cache_info().last_retrace == "the global 'SCALE' changed (2.0 -> 3.0)"
    ns["MODE"] = "single"                 # a branch taken on a global string
    assert_matches_numpy(f(x), np.full(3, 3.0))
    ns["SCALE"] = float("3.0")            # another object, equal: no retrace
    misses = f.cache_info().misses
    assert_matches_numpy(f(x), np.full(3, 3.0))
    assert f.cache_info().misses == misses
    del ns["SCALE"]
    with pytest.raises(NameError):
        f(x)

    def make(k):
        def g(x):
            return x * k
        return g

    h = make(2)
    cf = tracejit.compile(h)
    assert_matches_numpy(cf(x), np.full(3, 2.0))
    h.__closure__[0].cell_contents = 5
    assert_matches_numpy(cf(x), np.full(3, 5.0))


def test_a_key_keeps_its_variants_when_a_guard_fails():
    """A global going back to an earlier value finds that value's plan again: the cache
    keeps a key's variants, each with its guards."""
    ns = {"np": np, "MODE": 1.0}
    exec("def fn(x):\n    return x * MODE\n", ns)
    f = tracejit.compile(ns["fn"])
    x = np.ones(3)
    for mode in (1.0, 2.0, 1.0, 2.0, 1.0):
        ns["MODE"] = mode
        assert_matches_numpy(f(x), np.full(3, mode))
    info = f.cache_info()
    assert (info.misses, info.variants, info.hits) == (2, 2, 3)


def test_attributes_read_as_constants_are_guarded():
    class Model:
        def __init__(self):
            self.w = np.ones(3)
            self.scale = 2.0

        def f(self, x):
            return x * self.w * self.scale

    m = Model()
    f = tracejit.compile(m.f)
    x = np.ones(3)
    assert_matches_numpy(f(x), np.full(3, 2.0))
    m.w = np.full(3, 5.0)          # rebound: read again
    assert_matches_numpy(f(x), np.full(3, 10.0))
    m.w[:] = 7.0                   # updated in place: read at every call
    assert_matches_numpy(f(x), np.full(3, 14.0))
    m.scale = 1.0
    assert_matches_numpy(f(x), np.full(3, 7.0))


def test_an_ndarray_subclass_read_from_outside_is_refused():
    """np.matrix's `*` is a matrix product: computing it as ndarray's would differ."""
    class Named(np.ndarray):
        pass

    m = np.arange(4.0).reshape(2, 2).view(Named)

    def fn(a):
        return a * m

    refused(fn, [np.ones((2, 2))], r"an array of the ndarray subclass .*Named.* plain "
            r"ndarray semantics", "a * m")


def test_zero_dim_values_follow_numpys_scalar_or_view_rule():
    def scalar(x):
        acc = x[0]          # a NumPy scalar: `+=` rebinds acc only
        acc += x[1]
        return acc, x * 1.0

    f = tracejit.compile(scalar)
    x = np.arange(3.0)
    for got, want in zip(f(x), scalar(x.copy())):
        assert_matches_numpy(got, want)

    def view(x):
        y = x * 1.0
        v = y[..., 0]       # a 0-d view: `+=` writes into y in eager
        v += 1.0
        return y

    like_eager(view, lambda k: [np.arange(3.0) + k])


def test_a_modules_plain_attributes_are_guarded():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)
            self.scale = 2.0
            self.mask = torch.ones(3)        # a plain tensor attribute, not a buffer

        def forward(self, x):
            return self.lin(x) * self.scale * self.mask

    net = Net()
    f = tracejit.compile(net)
    x = torch.randn(4, 3)
    with torch.no_grad():
        torch.testing.assert_close(f(x), net(x))
        net.scale = 3.0
        torch.testing.assert_close(f(x), net(x))
        net.mask = torch.tensor([1.0, 0.0, 1.0])
        torch.testing.assert_close(f(x), net(x))
        assert "mask" in f.cache_info().last_retrace


def test_attributes_of_a_static_argument_are_guarded():
    """An object argument that is no array or number is static (keyed by identity or
    equality): what the trace read from its attributes, an array or a number, is
    guarded, so rebinding one retraces and mutating an array in place is seen."""
    from dataclasses import dataclass

    @dataclass(eq=False)
    class Params:
        w: np.ndarray
        s: float = 1.0

    def fn(x, p):
        return x * p.w + p.s

    f = tracejit.compile(fn)
    p, x = Params(np.ones(3)), np.arange(3.0)
    assert_matches_numpy(f(x, p), fn(x, p))
    p.w, p.s = np.full(3, 5.0), 2.0                 # rebound: a guard fails, retrace
    assert_matches_numpy(f(x, p), fn(x, p))
    p.w[:] = 7.0                                    # in place: read at every call
    assert_matches_numpy(f(x, p), fn(x, p))
    assert f.cache_info().misses == 2

    def write(x, p):
        p.w[0] += 1.0           # eager writes at every call: so does the replay
        return x * p.w

    w = tracejit.compile(write)
    for k in range(1, 3):
        assert_matches_numpy(w(x, p), x * np.array([7.0 + k, 7, 7]))
    assert p.w[0] == 9.0


def test_private_attributes_of_a_bound_object_are_guarded():
    class Scaler:
        def __init__(self):
            self._s, self.t = 1.0, 1.0

        def __call__(self, x):
            return x * self._s + self.t

    m = Scaler()
    f = tracejit.compile(m.__call__)
    x = np.ones(2)
    assert_matches_numpy(f(x), m(x))
    m._s = 5.0
    assert_matches_numpy(f(x), m(x))
