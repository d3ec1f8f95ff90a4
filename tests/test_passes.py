"""Golden tests of the optimization pipeline, one pass at a time.

Each case is a small traced function; ``f._explain_passes(*args)`` returns the pass log
(explain's, with no backend: nothing is emitted or compiled), with a ``-- <pass> ...``
section per pass (csrc/fuse/pipeline.c), every graph in full (explain()'s text says
"unchanged" for a pass that changed nothing). For a case of pass P the golden file
tests/golden/P/<case>.txt holds the section before P and P's own section.
``TRACEJIT_REGEN_GOLDEN=1 python -m pytest tests/test_passes.py`` rewrites the files;
review the diff. Besides the text, each case states what must (``has``) or must not
(``lacks``) appear in P's section, so a regenerated file cannot silently drop a rule.

Graphs whose operands are all constants do not come out of ordinary NumPy code (NumPy
computes those eagerly), so the fold cases build them with ``cop``: the tracer's own
``__array_ufunc__`` called on constants, the path a ufunc on constants takes once a
NumPy function returns constant tracers.
"""
import contextlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

import tracejit
from conftest import run_python
from tracejit import _C

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("TRACEJIT_REGEN_GOLDEN") == "1"
PASSES = ("traced", "fold", "simplify", "cse", "dce", "fuse", "memplan")


def cop(like, ufunc, *args):
    """ufunc(*args) as a node of like's trace (eagerly: NumPy's value)."""
    if isinstance(like, tracejit.Tracer):
        return like.__array_ufunc__(ufunc, "__call__", *args)
    return ufunc(*args)


def cfn(like, func, *args):
    """A NumPy function on constants, as a node of like's trace."""
    if isinstance(like, tracejit.Tracer):
        return like.__array_function__(func, (), args, {})
    return func(*args)


def sections(explained):
    """{pass name: its section's text} of an explain(): each graph in full (also where the
    pass changed nothing), then the fusion groups and the memory plan."""
    assert isinstance(explained, tracejit.Explanation), type(explained)
    return {**explained.passes, "fuse": explained.groups, "memplan": explained.memplan}


f32, f64, i32, i64 = np.float32, np.float64, np.int32, np.int64
X32 = np.linspace(-1, 1, 6, dtype=f32).reshape(2, 3)
Y32 = np.linspace(1, 2, 6, dtype=f32).reshape(2, 3)
X64 = X32.astype(f64)
I32 = np.arange(6, dtype=i32).reshape(2, 3)
I32B = np.arange(6, 12, dtype=i32).reshape(2, 3)
I64 = np.arange(6, dtype=i64).reshape(2, 3)
B = np.array([[True, False, True], [False, True, False]])

# name -> (function, args, has, lacks): has/lacks are regexes over the pass's section
CASES = {"fold": {}, "simplify": {}, "cse": {}, "dce": {}, "fuse": {}, "memplan": {}}
# name -> the op (its NAME in the op table) the case traces and passes with the EFFECT
# flag: no op has it yet, so _C._test_mark_effect lends it for the case
EFFECT = {}


def case(pass_name, args, has=(), lacks=(), effect=None):
    def deco(fn):
        CASES[pass_name][fn.__name__] = (fn, args, has, lacks)
        if effect:
            EFFECT[fn.__name__] = effect
        return fn
    return deco


@contextlib.contextmanager
def marked(op):
    """op counts as having an effect (not a pure function of its operands) inside."""
    _C._test_mark_effect(op)
    try:
        yield
    finally:
        _C._test_mark_effect(None)


# ---- fold ------------------------------------------------------------------------
@case("fold", (X32,), has=[r"CONST float32\(\) = 0.30000001192092896"],
      lacks=[r"= ADD float32\(\) "])
def fold_float32_rounds_in_float(x):
    return x + cop(x, np.add, f32(0.1), f32(0.2))


@case("fold", (X64,), has=[r"CONST int64\(\) = 20\b"], lacks=[r"ADD int64", r"MUL int64"])
def fold_chain(x):
    s = cop(x, np.add, i64(2), i64(3))
    return x * cop(x, np.multiply, s, i64(4))


@case("fold", (I32,), has=[r"CONST int32\(\) = -2147483648"], lacks=[r"ADD int32\(\)"])
def fold_int32_wraps(x):
    return x + cop(x, np.add, i32(2**31 - 1), i32(1))


@case("fold", (I64,), has=[r"= -4\b", r"CONST int64\(\) = 1\b", r"= 81\b"],
      lacks=[r"FLOORDIV int64\(\)", r"MOD int64\(\)", r"POW int64\(\)"])
def fold_int_floor_divide_remainder_power(x):
    a = cop(x, np.floor_divide, i64(-7), i64(2))
    b = cop(x, np.remainder, i64(-7), i64(2))
    c = cop(x, np.power, i64(3), i64(4))
    return x * a + b - c


@case("fold", (X64,), has=[r"CONST float64\(\) = 0\b", r"CONST float64\(\) = -inf",
                           r"CONST float64\(\) = -0\b"])
def fold_float_remainder_floor_divide_signs(x):
    a = cop(x, np.remainder, f64(-0.0), f64(3.0))     # +0.0: the divisor's sign
    b = cop(x, np.floor_divide, f64(1.0), f64(-0.0))  # -inf
    c = cop(x, np.floor_divide, f64(-0.5), f64(2.0))  # -1 ... and -0.0 below
    d = cop(x, np.floor_divide, f64(-0.0), f64(2.0))
    return x + a + b + c + d


@case("fold", (X64,), has=[r"CONST float64\(\) = nan", r"CONST float64\(\) = -0\b"],
      lacks=[r"= MAX ", r"= MIN "])
def fold_maximum_nan_minimum_zero(x):
    a = cop(x, np.maximum, f64(np.nan), f64(1.0))
    b = cop(x, np.minimum, f64(0.0), f64(-0.0))    # equal: NumPy returns the second
    return x + a + b


@case("fold", (X64,), has=[r"CONST float32\(\) = 0.10000000149011612", r"CONST float64\(\) = 2\b",
                           r"CONST bool\(\) = 0\b"], lacks=[r"= CAST \w+\(\)", r"= WHERE \w+\(\)"])
def fold_cast_where_compare(x):
    a = cfn(x, np.astype, f64(0.1), f32)
    c = cop(x, np.less, f64(1.0), f64(np.nan))
    b = cfn(x, np.where, cop(x, np.logical_not, c), f64(2.0), f64(3.0))
    return np.where(c, x, x * a + b)


@case("fold", (X64,), has=[r"EXP float64\(\)", r"POW float64\(\)", r"ADD float64\(2, 3\)"])
def fold_not_libm_not_arrays(x):
    # exp/pow of constants stay (libm's last place varies); x + 1 has an array operand
    return x + 1 + cop(x, np.exp, f64(1.0)) + cop(x, np.power, f64(2.0), f64(0.5))


@case("fold", (X64,), has=[r"ADD float64\(\) %\d+ %\d+  -> out 1"])
def fold_not_outputs(x):
    return x + 1, cop(x, np.add, f64(1.0), f64(2.0))


# ---- simplify ----------------------------------------------------------------------
@case("simplify", (X32, Y32), has=[r"MUL float32\(2, 3\) %0 %1"])
def simp_add_neg_zero(x, y):
    return (x + (-0.0)) * y + ((-0.0) + x) * y


@case("simplify", (X32, Y32), has=[r"ADD float32\(2, 3\) %0 %\d+\n.*MUL float32\(2, 3\) %\d+ %1"])
def simp_add_pos_zero_kept(x, y):
    return (x + 0.0) * y      # -0.0 + 0.0 is +0.0: not x


@case("simplify", (X32, Y32), has=[r"ADD float32\(2, 3\) %0 %\d+\n.*MUL float32\(2, 3\) %\d+ %1"])
def simp_add_int_zero_to_float_kept(x, y):
    return (x + 0) * y        # the weak 0 becomes float32 +0.0


@case("simplify", (I32, I32B), has=[r"MUL int32\(2, 3\) %0 %1", r"MUL int32\(2, 3\) %1 %0"])
def simp_add_sub_int_zero(x, y):
    return (x + 0) * y + y * (0 + x) + (x - 0) * y


@case("simplify", (X64, X64), has=[r"MUL float64\(2, 3\) %0 %1"])
def simp_sub_pos_zero(x, y):
    return (x - 0.0) * y


@case("simplify", (X64, X64), has=[r"SUB float64\(2, 3\) %0 %\d+\n.*MUL float64\(2, 3\) %\d+ %1"])
def simp_sub_neg_zero_kept(x, y):
    return (x - (-0.0)) * y


@case("simplify", (X32, I64, B), has=[r"ADD float32\(2, 3\) %0 %0", r"ADD int64\(2, 3\) %1 %1",
                                     r"AND bool\(2, 3\) %2 %2"])
def simp_mul_one(x, i, b):
    return x * 1 + 1.0 * x, i * 1 + i * 1, np.logical_and(b * True, b)


@case("simplify", (X64, X64), has=[r"MUL float64\(2, 3\) %0 %\d+\n.*MUL float64\(2, 3\) %\d+ %1"])
def simp_mul_minus_one_kept(x, y):
    return (x * -1.0) * y     # -x flips a NaN's sign bit, x * -1.0 does not


@case("simplify", (X64, X32), has=[r"CONST float64\(\) = 0.25\n.*MUL float64\(2, 3\) %0",
                                   r"CONST float64\(\) weak = 2\n.*MUL float64\(2, 3\) %0",
                                   r"CONST float64\(\) weak = -0.125\n.*MUL float64\(2, 3\) %0",
                                   r"CONST float32\(\) = 1.7014118346046923e\+38\n.*MUL float32"],
      lacks=[r"\bDIV\b.*  -> out"])
def simp_div_power_of_two(x, y):
    return x / 4, x / 0.5, x / -8.0, y / np.float32(2.0**-127), x / 1.0 + x


@case("simplify", (X64,), has=[r"DIV float64\(2, 3\) %0 %\d+  -> out 0",
                               r"DIV float64\(2, 3\) %0 %\d+  -> out 1",
                               r"DIV float64\(2, 3\) %0 %\d+  -> out 2"])
def simp_div_kept(x):
    # 1/3 is inexact; 1/2^-1074 overflows; 1/inf is 0 but x/inf is not x*0 (inf/inf)
    return x / 3.0, x / 5e-324, x / np.inf


@case("simplify", (X64, I32), has=[r"SQUARE float64\(2, 3\) %0  -> out 0",
                                   r"SQUARE int32\(2, 3\) %1  -> out 1"], lacks=[r"POW"])
def simp_pow_two(x, i):
    return x ** 2.0, np.power(i, 2)


@case("simplify", (X64, I64), has=[r"MUL float64\(2, 3\) %0 %0", r"MUL int64\(2, 3\) %1 %1"])
def simp_pow_one(x, i):
    return (x ** 1.0) * x, np.power(i, 1) * i


@case("simplify", (X64,), has=[r"POW float64\(2, 3\) %0 %\d+  -> out 0",
                               r"POW float64\(2, 3\) %0 %\d+  -> out 1"])
def simp_pow_kept(x):
    return np.power(x, 0.5), x ** 3.0   # np.power, not **: ndarray's ** 0.5 is np.sqrt


@case("simplify", (X64, I32, B), has=[r"MUL float64\(2, 3\) %0 %0", r"MUL int32\(2, 3\) %1 %1",
                                     r"AND bool\(2, 3\) %2 %2"])
def simp_involutions(x, i, b):
    return (-(-x)) * (+x), (~~i) * (-(-i)), np.logical_and(np.logical_not(np.logical_not(b)), b)


@case("simplify", (X64,), has=[r"NOT bool\(2, 3\) %\d+\n.*NOT bool\(2, 3\) %\d+  -> out 0"])
def simp_not_not_of_float_kept(x):
    return np.logical_not(np.logical_not(x))   # bool, not x


@case("simplify", (X32, B, I32, X32),
      has=[r"MUL float32\(2, 3\) %0 %3", r"CAST float64\(2, 3\) %1\n",
           r"CAST float32\(2, 3\) %2\n"])
def simp_cast_cast(x, b, i, y):
    return (x.astype(f64).astype(f32) * y,
            b.astype(i32).astype(f64) + 1,
            i.astype(i64).astype(f32) + 1)


@case("simplify", (X64, I64, I32),
      has=[r"CAST float32\(2, 3\) %0\n.*CAST float64\(2, 3\) %\d+  -> out 0",
           r"CAST float64\(2, 3\) %1\n.*CAST int64\(2, 3\) %\d+  -> out 1",
           r"CAST float32\(2, 3\) %2\n.*CAST float64\(2, 3\) %\d+  -> out 2"])
def simp_cast_cast_lossy_kept(x, i, j):
    return x.astype(f32).astype(f64), i.astype(f64).astype(i64), j.astype(f32).astype(f64)


@case("simplify", (X64, X64), has=[r"MUL float64\(2, 3\) %0 %1  -> out 0",
                                   r"ADD float64\(2, 3\) %0 %1  -> out 1"])
def simp_copy_removed(x, y):
    return (x * y).astype(f64), x.astype(f64) + y


@case("simplify", (X64, X64), has=[r"COPY float64\(2, 3\) %\d+  -> out 1",
                                   r"COPY float64\(2, 3\) %0  -> out 2"])
def simp_copy_kept_fresh(x, y):
    z = x * y
    return z, z.astype(f64), x.astype(f64)   # distinct arrays; x's copy is no view of x


@case("simplify", (X64,), has=[r"NEG float64\(2, 3\) %\d+  -> out 0",
                               r"MUL float64\(2, 3\) %0 %\d+  -> out 1"])
def simp_output_not_redirected_to_input(x):
    return -(-x), x * 1                   # both would be x itself: outputs stay fresh


# ---- cse / dce ---------------------------------------------------------------------
@case("cse", (X64, X64),
      has=[r"MUL float64\(2, 3\) %0 %1\n(?:.*\n)*.*ADD float64\(2, 3\) (%\d+) \1"])
def cse_commutative(x, y):
    return x * y + y * x


@case("cse", (X64, X64), has=[r"SUB float64\(2, 3\) %0 %1", r"SUB float64\(2, 3\) %1 %0"])
def cse_not_commutative(x, y):
    return (x - y) * (y - x)


@case("cse", (X64, X64),
      has=[r"ADD float64\(2, 3\) %0 (%\d+)\n(?:.*\n)*.*ADD float64\(2, 3\) %1 \1\n"])
def cse_duplicate_constants(x, y):
    return (x + 1.5) * (y + 1.5)


@case("cse", (X64,),
      has=[r"VIEW float64\(3, 2\) %0 perm 1 0\n(?:.*\n)*.*ADD float64\(3, 2\) (%\d+) \1"])
def cse_views(x):
    return x.T + np.transpose(x)


@case("dce", (X64, X64), lacks=[r"EXP", r"SIN"])
def dce_unused(x, y):
    np.exp(x)
    z = np.sin(y) * 0
    del z
    return x + y


# ---- an op with an effect (EFFECT flag): never folded, rewritten or merged ----------
@case("fold", (X64,), effect="ADD", has=[r"ADD int64\(\) %1 %2"],
      lacks=[r"CONST int64\(\) = 5\b"])
def fold_effect_kept(x):
    return x * cop(x, np.add, i64(2), i64(3))


@case("simplify", (X64, X64), effect="ADD", has=[r"MUL float64\(2, 3\) %3 %1"],
      lacks=[r"MUL float64\(2, 3\) %0 %1"])
def simp_effect_kept(x, y):
    return (x + (-0.0)) * y


@case("simplify", (I32, I32), effect="INVERT", has=[r"ADD int32\(2, 3\) %3 %1"],
      lacks=[r"ADD int32\(2, 3\) %0 %1"])
def simp_through_effect_kept(x, y):
    return ~~x + y   # ~~x -> x would drop the inner INVERT


@case("cse", (X64, X64), effect="ADD", has=[r"MUL float64\(2, 3\) %2 %3"],
      lacks=[r"MUL float64\(2, 3\) %2 %2"])
def cse_effect_kept(x, y):
    return (x + y) * (x + y)


# ---- fuse / memplan ----------------------------------------------------------------
@case("fuse", (X64, X64), has=[r"fuse: 1 groups, 0 scratch"])
def fuse_elementwise_chain(x, y):
    return np.sqrt(x * x + y * y) - 1, x * y


@case("fuse", (X64,), has=[r"fuse: 2 groups", r"fuse: 2 groups, 2 scratch slots"])
def fuse_reduction_consumer(x):
    return x - x.sum(axis=1, keepdims=True)


@case("fuse", (X64,), has=[r"fuse: 2 groups, 1 scratch slots"])
def fuse_view_of_computed(x):
    return (x * 2).T + 1


TABLE = np.linspace(0, 1, 20).reshape(5, 4)
IDX = np.array([[0, 3], [4, 1], [2, 2]])


@case("fuse", (TABLE, IDX), has=[r"group 0: loop \[3, 2, 4\], 1 nodes, 2 leaves",
                                 r"fuse: 5 groups"])
def fuse_shared_gather_stored_once(t, i):
    # a gathered value with several users is stored once, not regathered by each
    e = t[i]
    return e - e.mean(axis=-1, keepdims=True), e.sum()


@case("fuse", (X64, X64, X64, X64), has=[r"fuse: 4 groups, 3 scratch",
                                         r"group 0: loop \[6\], 3 nodes, 4 leaves"])
def fuse_long_shared_sum_stored_once(a, b, c, d):
    # read by 3 users, its 4 reads would be repeated by 2 of them: stored once
    s = a + b + c + d
    return s.sum(), s.max(), s * 2


@case("fuse", (X64, X64), has=[r"fuse: 2 groups, 1 scratch", r"group 1: loop \[6\], 2 nodes"],
      lacks=[r"1 nodes"])
def fuse_short_shared_sum_recomputed(a, b):
    # 2 users of a + b: one write and a read more than its 2 reads again: recomputed
    s = a + b
    return s.sum(), s * 2


# A value two groups read is recomputed in each (x * 2 below: in the reduction's loop
# and in the output's) ...
@case("fuse", (X64,), has=[r"fuse: 2 groups, 2 scratch slots",
                           r"group 0: loop \[2, 3\], 2 nodes, 2 leaves, outs %3->slot 3",
                           r"group 1: loop \[2, 3\], 2 nodes, 3 leaves, outs %4->slot 5"])
def fuse_shared_value_recomputed(x):
    t = x * 2
    return t.sum(axis=1, keepdims=True) + t


# ... but a node that must run once (the EFFECT column) is computed in one group and
# stored: its group comes first, and the reduction and the output read it (1 node each)
@case("fuse", (X64,), effect="MUL",
      has=[r"fuse: 3 groups, 3 scratch slots", r"group 0: loop \[6\], 1 nodes, 2 leaves, outs %2->slot 3",
           r"group 1: loop \[2, 3\], 1 nodes, 1 leaves, outs %3->slot 4",
           r"group 2: loop \[2, 3\], 1 nodes, 2 leaves, outs %4->slot 6"])
def fuse_effect_stored_once(x):
    t = x * 2
    return t.sum(axis=1, keepdims=True) + t


# ... also when it is an output: computed into the output array, which the reduction reads
@case("fuse", (X64,), effect="MUL",
      has=[r"fuse: 2 groups, 1 scratch slots", r"group 0: loop \[6\], 1 nodes, 2 leaves, outs %2->slot 4",
           r"group 1: loop \[2, 3\], 1 nodes, 1 leaves, outs %3->slot 5"])
def fuse_effect_output_stored_once(x):
    t = x * 2
    return t, t.sum(axis=0)


@case("memplan", (np.ones((16, 8)),), has=[r"peak 2048 bytes \(unshared 4096\)"])
def memplan_transpose_chain(x):
    y = (x * 2).T
    y = (y + 1).T
    y = (y * 3).T
    y = (y - 1).T
    return y + 0.5


@case("memplan", (np.ones((5, 8)),), has=[r"peak \d+ bytes"])
def memplan_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# cases whose values involve libm (exp, sin, pow: NumPy's SIMD versions may differ in
# the last place) or a summation order (NumPy sums pairwise)
INEXACT = {"fold_not_libm_not_arrays", "simp_pow_kept", "dce_unused", "fuse_reduction_consumer",
           "memplan_softmax"}


def _ids():
    return [(p, n) for p in CASES for n in CASES[p]]


@pytest.mark.parametrize("pass_name,name", _ids(), ids=[f"{p}-{n}" for p, n in _ids()])
def test_golden(pass_name, name):
    fn, args, has, lacks = CASES[pass_name][name]
    f = tracejit.compile(fn)
    with marked(EFFECT.get(name)):
        secs = sections(f._explain_passes(*args))
    assert list(secs) == list(PASSES), list(secs)
    before = PASSES[PASSES.index(pass_name) - 1]
    text = f"# {pass_name}: {name}\n{secs[before]}\n{secs[pass_name]}\n"
    for pat in has:
        assert re.search(pat, secs[pass_name]), f"{pat!r} not in\n{secs[pass_name]}"
    for pat in lacks:
        assert not re.search(pat, secs[pass_name]), f"{pat!r} in\n{secs[pass_name]}"
    path = GOLDEN / pass_name / f"{name}.txt"
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing: run with TRACEJIT_REGEN_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs (regenerate and review the diff)"


def test_golden_files_have_cases():
    """No stale golden file outlives its case."""
    for path in GOLDEN.glob("*/*.txt"):
        assert path.stem in CASES.get(path.parent.name, {}), f"stale golden file {path}"


@pytest.mark.parametrize("pass_name,name", _ids(), ids=[f"{p}-{n}" for p, n in _ids()])
def test_case_matches_numpy(pass_name, name):
    """Every golden case also computes what NumPy computes, bit for bit."""
    fn, args, _, _ = CASES[pass_name][name]
    with np.errstate(all="ignore"), marked(EFFECT.get(name)):
        expected = fn(*args)
        got = tracejit.compile(fn)(*args)
    if not isinstance(expected, tuple):
        expected, got = (expected,), (got,)
    for e, g in zip(expected, got):
        e = np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape
        if name in INEXACT:
            np.testing.assert_allclose(g, e, rtol=1e-12)
        else:
            assert_bitwise(g, e)


def assert_bitwise(got, expected):
    """Equal values, NaN where NumPy has NaN, and the same sign everywhere else."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if got.dtype.kind != "f":
        np.testing.assert_array_equal(got, expected)
        return
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan], expected[~nan])
    assert np.array_equal(np.signbit(got[~nan]), np.signbit(expected[~nan])), (got, expected)


# ---- memplan invariants ------------------------------------------------------------
def memplan_slots(log):
    sec = sections(log)["memplan"]
    head = re.match(r"-- memplan: (\d+) scratch slots, peak (\d+) bytes \(unshared (\d+)\)", sec)
    slots = [tuple(map(int, m)) for m in
             re.findall(r"slot (\d+): (\d+) bytes at (\d+), groups (\d+)\.\.(\d+)", sec)]
    return int(head.group(2)), int(head.group(3)), slots


def _chain(x):
    for k in range(6):
        x = (x * (k + 2)).T
    return x - 1


def _softmax2(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    s = e / e.sum(axis=1, keepdims=True)
    return s - s.mean(axis=0), x.var(axis=0)


@pytest.mark.parametrize("fn,shape", [(_chain, (32, 16)), (_softmax2, (7, 9)),
                                      (memplan_transpose_chain, (4, 8))])
def test_memplan_no_live_overlap(fn, shape):
    """Slots alive in a common group never share bytes; all fit in the peak."""
    x = np.random.default_rng(1).standard_normal(shape)
    f = tracejit.compile(fn)
    peak, unshared, slots = memplan_slots(f._explain_passes(x))
    assert slots and peak <= unshared
    for s, size, off, first, last in slots:
        assert off % 64 == 0 and off + size <= peak
        for s2, size2, off2, first2, last2 in slots:
            if s2 != s and not (last < first2 or last2 < first) and size and size2:
                assert off + size <= off2 or off2 + size2 <= off, (s, s2)
    out, ref = f(x), fn(x)
    if not isinstance(out, tuple):
        out, ref = (out,), (ref,)
    for g, e in zip(out, ref):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_memplan_chain_reuses_scratch():
    x = np.ones((32, 16))
    f = tracejit.compile(_chain)
    peak, unshared, slots = memplan_slots(f._explain_passes(x))
    assert len(slots) == 6 and peak < unshared and peak == 2 * 32 * 16 * 8
    np.testing.assert_array_equal(f(x), _chain(x))
    for _ in range(3):   # the shared block is per call
        np.testing.assert_array_equal(f(x + 1), _chain(x + 1))


# ---- no backend --------------------------------------------------------------------
def test_passes_run_without_a_backend():
    """_explain_passes traces and runs the passes only: no backend compiles; its pass
    sections are explain's."""
    f = tracejit.compile(fuse_elementwise_chain)
    before = _C._backend_compiles()
    log = f._explain_passes(X64, X64)
    assert _C._backend_compiles() == before
    assert list(sections(log)) == list(PASSES) and "generated C" not in log
    full = f.explain(X64, X64)
    assert _C._backend_compiles() > before   # the counter sees explain's compile
    assert sections(full) == sections(log)


def test_passes_only_raises_the_trace_error():
    def bad(x):
        return x + np.ones(4)
    with pytest.raises(ValueError, match=r"could not be broadcast together with shapes \(2, 3\) \(4,\)"):
        tracejit.compile(bad)._explain_passes(X64)


def test_mark_effect_names_an_op():
    with pytest.raises(ValueError, match="no op named 'NOPE'"):
        _C._test_mark_effect("NOPE")


def _shared_effect_cases():
    """(function, nodes the groups compute without the effect, with it)."""
    def through_a_pure_node(x):        # u is recomputed, the effect under it is not
        u = x * 2 + 1
        return u.sum(axis=1), u - 3

    def output_and_reduction(x):       # stored into the output, read by two reductions
        t = x * 2
        return t, t.sum(axis=0), t.max()

    def view_and_broadcast(x):         # read through a view: stored either way
        t = x * 2
        return t.T + t.mean(), (t + 1)[:, ::-1]

    def reduction_consumer(x):
        t = x * 2
        return t.sum(axis=1, keepdims=True) + t
    return [(through_a_pure_node, 6, 5), (output_and_reduction, 5, 3),
            (view_and_broadcast, 6, 6), (reduction_consumer, 4, 3)]


def _computed(fn, x):
    return sum(int(m) for m in re.findall(r"(\d+) nodes", tracejit.compile(fn)._explain_passes(x).groups))


@pytest.mark.parametrize("fn,plain,once", _shared_effect_cases(), ids=lambda v: getattr(v, "__name__", ""))
def test_a_node_that_must_run_once_is_computed_in_one_group(fn, plain, once):
    """With MUL marked as an effect the groups stop recomputing it (they compute fewer
    nodes in all), and the results stay eager's, on every call."""
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    assert _computed(fn, x) == plain
    with marked("MUL"):
        assert _computed(fn, x) == once
        f = tracejit.compile(fn)
        got = [f(x), f(x)]
    want = fn(x)
    for r in got:
        for a, b in zip(r if isinstance(r, tuple) else (r,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_a_long_python_loop_fuses_into_bounded_groups():
    # 2500 steps of `x = np.tanh(x) * 0.5 + i` traced step by step: one fused group
    # held a block buffer per node and constant on the kernel's stack, which overflowed
    # it (a segfault); fusion now stores a value whose group would exceed 256 nodes
    code = ("import json, numpy as np, tracejit\n"
            "def f(x):\n"
            "    for i in range(2500):\n"
            "        x = np.tanh(x) * 0.5 + i\n"
            "    return x\n"
            "x = np.linspace(-1.0, 1.0, 3)\n"
            "print(json.dumps([tracejit.compile(f)(x).tolist(), f(x).tolist()]))\n")
    rc, out, stdout, stderr = run_python(code, timeout=300)
    assert rc == 0 and out is not None, stdout + stderr
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)
