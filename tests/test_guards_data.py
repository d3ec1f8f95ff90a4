"""Data-dependent control flow through guards (issue 19): a value Python needs while
tracing (a truth value, int(), float(), an index or size, .item(), .tolist()) is the
call's own, and the plan guards it; iteration over a traced array; the variant limit
(max_variants, on_guard_limit); retrace reasons; and random programs with branches on
data, never different from eager."""
import inspect
import os
import re
import warnings

import numpy as np
import pytest

import tracejit
from conftest import run_python

THIS_FILE = os.path.basename(__file__)


def _line_of(fn, text):
    """The line number in this file of the first line of fn containing text."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


# ---- the value is the call's own; each variant answers only for its values -------

def _branchy(x):
    if x.sum() > 0:
        return x * 2.0
    return x - 1.0


def test_a_branch_on_data_follows_the_call():
    f = tracejit.compile(_branchy)
    a = np.arange(4.0)
    for v in (a, -a, a, -a, a + 1, -a - 1):
        np.testing.assert_array_equal(f(v), _branchy(v))
    info = f.cache_info()
    assert info.variants == 2 and info.misses == 2 and info.hits == 4
    assert [len(g) for g in info.guards] == [1, 1]
    assert {g[0].rsplit(" is ", 1)[1] for g in info.guards} == {"True", "False"}


def test_a_failed_guard_returns_nothing_of_its_variant():
    """The variant traced with in-range indices gathers out of range for the other call:
    its guard fails first, so neither its results nor its kernel's IndexError escape."""
    def fn(y, idx):
        if idx.max() < 4:
            return y[idx]
        return y[:2] * 0.0

    f = tracejit.compile(fn)
    y = np.arange(4.0)
    ok, far = np.array([0, 3]), np.array([0, 9])
    np.testing.assert_array_equal(f(y, ok), fn(y, ok))
    np.testing.assert_array_equal(f(y, far), fn(y, far))
    np.testing.assert_array_equal(f(y, ok), fn(y, ok))
    assert f.cache_info().variants == 2


@pytest.mark.parametrize("conv", ["int", "float", "item", "tolist", "index", "bool"])
def test_conversions_give_what_eager_gives(conv):
    fns = {
        "int": lambda x: x * int(x[0] * 3.0),
        "float": lambda x: x + float(x.max()),
        "item": lambda x: x[1].item() + x,
        "tolist": lambda x: x * len([v for v in x[:2].tolist() if v > 0]),
        "index": lambda x: x[: (x[0] > 0).astype(np.int64) + 1].sum() + x,
        "bool": lambda x: x + bool(x[0] < x[1]),
    }
    fn = fns[conv]
    f = tracejit.compile(fn)
    rng = np.random.default_rng(1)
    for _ in range(6):
        x = rng.integers(-3, 4, size=4).astype(np.float64)
        np.testing.assert_array_equal(f(x), fn(x))


def test_comparisons_of_one_value_with_constants_are_guarded_each():
    """`s > 0` and `s > 5` guard the same value s against two constants (a comparison
    guard per constant, none merged with another), in each dtype."""
    def fn(x, n):
        s = x.sum()
        r = x * 0
        if s > 0:
            r = r + 1
        if s > 5:
            r = r + 10
        if 2 >= n:
            r = r + 100
        if s == 3:
            r = r + 1000
        return r

    for dtype in ("float64", "float32", "int64", "int32"):
        f = tracejit.compile(fn)
        for v, n in ((1, 0), (9, 0), (-1, 3), (3, 5), (9, 1), (1, 0), (2, 2), (-4, 7)):
            x = np.full(1, v, dtype=dtype)
            np.testing.assert_array_equal(f(x, n), fn(x, n))
        assert f.cache_info().hits >= 1


def test_int_of_a_float_guards_the_int_not_the_float():
    f = tracejit.compile(lambda x: x * int(x.sum()))
    for v in (2.1, 2.2, 2.9, -0.5, 0.5):
        x = np.full(1, v)
        np.testing.assert_array_equal(f(x), x * int(x.sum()))
    assert f.cache_info().variants == 2       # 2 (three times), then 0 (twice)


def test_float_guard_is_exact_and_nan_is_nan():
    f = tracejit.compile(lambda x: x * 0.0 + float(x[0]))
    for v in (1.0, np.nextafter(1.0, 2.0), np.nan, np.nan, -0.0, 0.0):
        out = f(np.full(2, v))
        np.testing.assert_array_equal(out, np.full(2, v))
        assert np.signbit(out[0]) == np.signbit(v)
    assert f.cache_info().variants == 5       # -0.0 and 0.0 differ in their bits


def test_builtin_max_and_min_on_traced_values():
    def fn(x):
        return x / max(1.0, x.max()) + min(x.min(), 0.0)

    f = tracejit.compile(fn)
    for v in (np.array([0.5, 0.25]), np.array([4.0, -2.0]), np.array([0.5, 0.25])):
        np.testing.assert_array_equal(f(v), fn(v))


def test_a_while_loop_on_data_unrolls_per_variant():
    def halve(x):
        while np.abs(x).max() > 1.0:
            x = x / 2.0
        return x

    f = tracejit.compile(halve)
    for v in (np.array([3.0, 1.0]), np.array([0.5]), np.array([3.0, 1.0]), np.array([9.0, 0.0])):
        np.testing.assert_array_equal(f(v), halve(v))


def _newton_sqrt(x):
    y, err = x, 1.0
    while err > 1e-6:
        y2 = 0.5 * (y + x / y)
        err = np.abs(y2 - y).max()
        y = y2
    return y


def test_an_iterative_solver_guards_its_branches_not_its_values():
    """`while err > tol:` guards err's comparison at each unrolled step: inputs that take
    as many steps share a variant; past max_variants, eager answers with a warning."""
    f = tracejit.compile(_newton_sqrt, max_variants=3)
    x = np.linspace(1.0, 4.0, 8)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for scale in (1.0, 1.01, 1.02, 1.0, 1e3, 1e6, 1e9, 1e12, 1.0):
            np.testing.assert_array_equal(f(x * scale), _newton_sqrt(x * scale))
    info = f.cache_info()
    assert info.hits >= 3 and info.variants == 3 and info.eager_calls >= 1
    assert len([m for m in w if "max_variants=3" in str(m.message)]) == 1


def test_compiled_inside_a_trace_reads_the_outer_calls_values():
    inner = tracejit.compile(lambda x: x + 1.0 if x.sum() > 0 else x - 1.0)
    outer = tracejit.compile(lambda x: inner(x * 2.0) * 3.0)
    for v in (np.ones(3), -np.ones(3), np.ones(3)):
        np.testing.assert_array_equal(outer(v), ((v * 2) + 1 if v.sum() > 0 else v * 2 - 1) * 3)


def test_grad_through_a_branch():
    def loss(w):
        if w.sum() > 0:
            return (w * w).sum()
        return (3.0 * w).sum()

    g = tracejit.grad(loss)
    for w in (np.ones(3), -np.ones(3), np.full(3, 2.0)):
        np.testing.assert_allclose(g(w), 2 * w if w.sum() > 0 else np.full(3, 3.0))


# ---- Python numbers used as sizes: guarded, no static_argnames --------------------

def test_python_int_used_as_a_size_is_specialized_by_a_guard():
    def fn(x, n):
        acc = np.zeros(n)
        for i in range(n):
            acc = acc + x[i]
        return acc + x[:n] + x.reshape(n, -1).sum(axis=1)

    f = tracejit.compile(fn)
    x = np.arange(12.0)
    for n in (2, 3, 2, 4, 6, 3):
        np.testing.assert_array_equal(f(x, n), fn(x, n))
    info = f.cache_info()
    assert info.variants == 4 and info.hits == 2
    assert re.search(r"its use as an integer .* 3 when traced, 6 now|6 when traced", info.last_retrace) \
        or "when traced" in info.last_retrace


def test_python_number_used_in_arithmetic_stays_a_runtime_input():
    f = tracejit.compile(lambda x, n, s: x * n + s)
    x = np.arange(3.0)
    for n, s in ((2, 0.5), (3, 1.5), (7, -2.0)):
        np.testing.assert_array_equal(f(x, n, s), x * n + s)
    assert f.cache_info().variants == 1 and not f.cache_info().guards[0]


def test_python_float_argument_in_a_branch():
    f = tracejit.compile(lambda x, t: x * 2.0 if t > 0.5 else x)
    x = np.arange(3.0)
    for t in (0.9, 0.1, 0.7, 0.2):
        np.testing.assert_array_equal(f(x, t), x * 2.0 if t > 0.5 else x)
    assert f.cache_info().variants == 2


def test_huge_python_int_guard_compares_exactly():
    f = tracejit.compile(lambda x, n: x + (int(n) % 7))
    x = np.zeros(2)
    for n in (2**70, 2**70 + 1, 2**70):
        np.testing.assert_array_equal(f(x, n), x + (n % 7))
    assert f.cache_info().variants == 2


# ---- iteration -------------------------------------------------------------------

def test_iteration_and_unpacking_numpy():
    def fn(x):
        a, b = x[:2]
        total = np.zeros(x.shape[1])
        for row in x:
            total = total + row
        firsts = [r[0] for r in x]
        return a - b, total, sum(firsts), list(x[0])

    f = tracejit.compile(fn)
    x = np.arange(12.0).reshape(3, 4)
    for got, want in zip(f(x), fn(x)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    (guards,) = f.cache_info().guards       # iteration needs no value
    assert not [g for g in guards if " at " in g], guards


def test_iteration_errors_are_eagers():
    with pytest.raises(TypeError, match="iteration over a 0-d array"):
        tracejit.compile(lambda x: list(x))(np.float64(1.0) * np.ones(()))
    with pytest.raises(ValueError, match="too many values to unpack"):
        tracejit.compile(lambda x: [a for a, b in [x]])(np.ones(3))


def test_iteration_breaking_early_traces_only_what_it_read():
    def first_positive(x):
        for v in x:
            if v > 0:
                return v * 1.0
        return x[0] * 0.0

    f = tracejit.compile(first_positive)
    for v in (np.array([-1.0, 2.0, 3.0]), np.array([1.0, -2.0, 3.0]), np.array([-1.0, 2.0, 5.0])):
        assert f(v) == first_positive(v)


# ---- torch -----------------------------------------------------------------------

def test_torch_branches_conversions_iteration():
    torch = pytest.importorskip("torch")

    def fn(x, n):
        y = x * 2 if x.sum() > 0 else x - 1
        a, b = x[:2]
        rows = [r.sum() for r in x.reshape(n, -1)]
        return (y + float(a) + b.item() + max(1.0, rows[0]) + torch.zeros(n).sum() +
                int(x[0] * 10) + len(x.tolist()))

    f = tracejit.compile(fn)
    x = torch.arange(6.0)
    for v, n in ((x, 2), (-x, 3), (x, 2), (x + 0.5, 2), (-x, 3)):
        torch.testing.assert_close(f(v, n), fn(v, n), rtol=0, atol=0)
    assert f.cache_info().hits == 2
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        tracejit.compile(lambda x: list(x.sum()))(x)
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        tracejit.compile(lambda x: x if x else -x)(x)


def test_a_failed_guard_comes_before_the_variants_checks():
    """A variant's check (torch._is_all_true: ValueError when False) ran on values its
    guard rejects: the guard decides first, so the call goes to the other variant."""
    torch = pytest.importorskip("torch")

    def fn(x):
        if x.sum() > 0:
            if not torch._is_all_true(x > 0):
                raise ValueError("a negative value")
            return x.log()
        return x * 2

    f = tracejit.compile(fn)
    pos, neg = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, -3.0])
    for v in (pos, neg, pos, neg):
        torch.testing.assert_close(f(v), fn(v), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"torch\._is_all_true"):
        f(torch.tensor([5.0, -1.0]))   # the first variant's guard holds: its check fails
    assert f.cache_info().variants == 2


def test_compiled_module_takes_the_limit():
    torch = pytest.importorskip("torch")

    class Gate(torch.nn.Module):
        def forward(self, x):
            return x[: int(x[0])] * 2

    m = tracejit.compile(Gate(), max_variants=1, on_guard_limit="error")
    torch.testing.assert_close(m(torch.tensor([2.0, 5.0, 7.0])), torch.tensor([4.0, 10.0]))
    with pytest.raises(tracejit.TraceError, match="max_variants=1"):
        m(torch.tensor([1.0, 5.0, 7.0]))


# ---- the variant limit -------------------------------------------------------------

def _sized(x, n):
    return x[:n].sum() + np.zeros(n).sum()


def test_past_max_variants_runs_eagerly_with_one_warning():
    f = tracejit.compile(_sized, max_variants=3)
    x = np.arange(10.0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        outs = [f(x, n) for n in (1, 2, 3, 4, 5, 1, 6)]
    assert outs == [_sized(x, n) for n in (1, 2, 3, 4, 5, 1, 6)]
    msgs = [str(m.message) for m in w if issubclass(m.category, RuntimeWarning)]
    assert len(msgs) == 1, msgs
    line = _line_of(_sized, "x[:n]")
    assert "max_variants=3" in msgs[0] and f"{THIS_FILE}:{line}" in msgs[0], msgs[0]
    info = f.cache_info()
    assert info.variants == 3 and info.eager_calls == 3 and info.hits == 1


def test_past_max_variants_raises_when_asked():
    f = tracejit.compile(_sized, max_variants=2, on_guard_limit="error")
    x = np.arange(10.0)
    assert f(x, 1) == _sized(x, 1) and f(x, 2) == _sized(x, 2)
    with pytest.raises(tracejit.TraceError) as e:
        f(x, 3)
    msg = str(e.value)
    assert "max_variants=2" in msg and "on_guard_limit='error'" in msg, msg
    assert f"{THIS_FILE}:{_line_of(_sized, 'x[:n]')}" in msg and "2 when traced, 3 now" in msg
    assert f(x, 1) == _sized(x, 1)          # the variants still serve their values


def test_the_limit_counts_per_key():
    f = tracejit.compile(_sized, max_variants=2, on_guard_limit="error")
    for shape in (5, 6, 7):                  # a new key each: no limit
        x = np.arange(float(shape))
        assert f(x, 1) == _sized(x, 1) and f(x, 2) == _sized(x, 2)
    assert f.cache_info().variants == 6


@pytest.mark.parametrize("kw, match", [
    ({"max_variants": 0}, "max_variants must be an int of at least 1, got 0"),
    ({"max_variants": 2.5}, "max_variants must be an int of at least 1, got 2.5"),
    ({"on_guard_limit": "retrace"}, "on_guard_limit must be 'eager' or 'error', got 'retrace'"),
])
def test_limit_options_are_checked(kw, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        tracejit.compile(_sized, **kw)
    with pytest.raises(ValueError, match="max_variants must be at least 1"):
        tracejit.CompiledFunction(_sized, (), (), 0)


# ---- what is shown: reasons, cache_info, explain, TRACEJIT_DEBUG -----------------------

def test_retrace_reason_names_the_guard_and_the_line():
    f = tracejit.compile(_branchy)
    f(np.ones(2))
    f(-np.ones(2))
    line = _line_of(_branchy, "if x.sum() > 0")
    assert f.cache_info().last_retrace == (
        f"the truth value (an `if`, `while`, `and`/`or`, bool()) at {__file__}:{line} "
        f"(`if x.sum() > 0:`): True when traced, False now")


def test_explain_shows_the_guards():
    e = tracejit.compile(_sized).explain(np.arange(4.0), 3)
    text = str(e)
    # the size's guard alone: np.zeros(n) is the trace's own filled array (no capture
    # of NumPy's array to guard), its sum a constant
    assert e.guards.startswith("-- guards: 1\n") and e.guards in text
    assert "captured array" not in e.guards
    assert tracejit.compile(lambda x: x + 1.0).explain(np.ones(2)).guards is None
    assert re.search(r"its use as an integer \(an index, a size, range\(\)\) at .*"
                     + THIS_FILE + r":\d+ \(`return x\[:n\]\.sum\(\) \+ np\.zeros\(n\)\.sum\(\)`\) is 3",
                     text), text


def test_debug_prints_the_retrace_reason():
    code = ("import numpy as np, tracejit\n"
            "f = tracejit.compile(lambda x: x + 1 if x.sum() > 0 else x)\n"
            "f(np.ones(2)); f(-np.ones(2))\n")
    out = run_python(code, env_extra={"TRACEJIT_DEBUG": "1"})[3]
    assert re.search(r"cache miss 2 of .*: the truth value .* at <string>:2.*True when traced, "
                     r"False now", out), out


# ---- random programs with branches on data, against eager ------------------------------

_STATEMENTS = [
    "if (y > {c}).sum() > {k}:\n        y = y + {a}\n    else:\n        y = y * {b}",
    "if y.max() > {c}:\n        y = y - {a}",
    "if y[{i}] > {c} and y.min() < {k}:\n        y = y * {b}",
    "y = y + int(y.sum()) % 5",
    "y = y - float(y.max())",
    "y = y * max(1.0, y.min())",
    "y = y + y[{i}].item()",
    "while y.sum() > {w}:\n        y = y - 3.0",
    "m = int(abs(y[{i}])) % 3 + 1\n    y = CAT([y[:m] * 2.0, y[m:]])",
    "for v in y[:3]:\n        if v > {c}:\n            y = y + 1.0",
    "if n > {k}:\n        y = y + n",
    "y = y + ZEROS(n).sum() + y[:n % 4 + 1].sum()",
]


def _program(rng, lib):
    body = []
    for _ in range(rng.integers(2, 6)):
        s = _STATEMENTS[rng.integers(len(_STATEMENTS))]
        body.append("    " + s.format(c=int(rng.integers(-3, 4)), k=int(rng.integers(0, 4)),
                                       a=int(rng.integers(1, 4)), b=int(rng.integers(-2, 3)),
                                       i=int(rng.integers(0, 6)), w=int(rng.integers(5, 15))))
        body.append("    y = y.clip(-50.0, 50.0)")
    cat, zeros = ("np.concatenate", "np.zeros") if lib == "numpy" else ("torch.cat", "torch.zeros")
    src = "def prog(y, n):\n" + "\n".join(body) + "\n    return y\n"
    return src.replace("CAT", cat).replace("ZEROS", zeros)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("seed", range(12))
def test_random_programs_with_branches_match_eager(lib, seed):
    """Integer-valued data: eager's and the kernel's sums agree exactly, so any
    difference is a wrong branch."""
    if lib == "torch":
        torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    src = _program(rng, lib)
    ns = {"np": np, "torch": torch if lib == "torch" else None}
    exec(compile(src, f"<prog {seed}>", "exec"), ns)
    prog = ns["prog"]
    f = tracejit.compile(prog, max_variants=64)
    for k in range(20):   # then values from a small set: variants serve other calls
        y = rng.integers(-5, 6, size=6) if k < 8 else rng.integers(-1, 2, size=6)
        y = y.astype(np.float64)
        n = int(rng.integers(0, 6 if k < 8 else 2))
        if lib == "torch":
            y = torch.from_numpy(y)
        got, want = f(y, n), prog(y, n)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=src)
    assert f.cache_info().eager_calls == 0


def test_random_programs_past_the_limit_stay_eager_correct():
    rng = np.random.default_rng(99)
    for seed in range(4):
        src = _program(np.random.default_rng(100 + seed), "numpy")
        ns = {"np": np}
        exec(compile(src, f"<prog {seed}>", "exec"), ns)
        f = tracejit.compile(ns["prog"], max_variants=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for _ in range(8):
                y = rng.integers(-5, 6, size=6).astype(np.float64)
                n = int(rng.integers(0, 6))
                np.testing.assert_array_equal(f(y, n), ns["prog"](y, n), err_msg=src)
        assert f.cache_info().variants <= 2


def test_a_branch_and_a_write_into_the_argument():
    # outputs: the result, the written argument's new contents, then the guard's value;
    # a variant whose guard fails writes nothing, the one that holds writes once
    def f(a, b):
        if b.sum() > 0:
            a += b
        else:
            a -= 2 * b
        return a * 3, b.max()

    def run(fn, a, b):
        a = a.copy()
        r = fn(a, b)
        return a, r

    g = tracejit.compile(f)
    rng = np.random.default_rng(5)
    for i in range(6):
        a = rng.standard_normal(7)
        b = rng.standard_normal(7) + (1.5 if i % 2 else -1.5)
        want_a, (want_r, want_m) = run(f, a, b)
        got_a, (got_r, got_m) = run(g, a, b)
        np.testing.assert_array_equal(got_a, want_a)
        np.testing.assert_array_equal(got_r, want_r)
        assert got_m == want_m
    assert g.cache_info().variants == 2
