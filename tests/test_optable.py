"""The op table's columns (csrc/ir/ops.h) as the code reads them: torch's names of the
elementwise ops (Python's vocabulary is built from them), the reductions' fold column,
and the EFFECT flag in the emitters' loop-invariant hoisting (no op has it yet:
_C._test_mark_effect lends it)."""
import re

import numpy as np
import pytest

import tracejit
from tracejit import _C, _torch, _torch_ops

TABLE = _C._op_table()
EW = [e for e in TABLE if e[4] == "ew"]


def test_op_table_matches_the_public_one():
    public = {(d["name"], d["numpy"], d["arity"]) for d in tracejit.op_table()}
    assert public == {(e[0], e[1], e[3]) for e in EW if e[1]}
    assert [e[0] for e in TABLE][:4] == ["INPUT", "SCALAR", "CAPTURE", "CONST"]
    assert {e[4] for e in TABLE} == {"leaf", "ew", "view", "cast", "red", "cat", "gath", "scan"}


def test_index_flag_marks_argmax_argmin_only():
    assert sorted(e[0] for e in TABLE if "index" in e[5]) == ["RARGMAX", "RARGMIN"]
    assert not [e[0] for e in TABLE if "effect" in e[5]]   # no op has an effect yet


def test_draw_flag_marks_the_random_draws_only():
    """The ops the tier fills a Philox block at a time: each has a key and a counter."""
    draws = [e for e in TABLE if "draw" in e[5]]
    assert sorted(e[0] for e in draws) == ["RNORM32", "RNORM64", "RUNIF32", "RUNIF64"]
    assert all(e[3] == 2 and e[4] == "ew" for e in draws)


def test_torch_names_reach_their_op():
    """Each torch name of an op is a FUNCS entry (a method unless torch.special's only)
    and, traced, computes that op."""
    torch = pytest.importorskip("torch")
    x = torch.linspace(0.1, 0.9, 6, dtype=torch.float64).reshape(2, 3)
    ints = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    bools = ints > 2
    for name, numpy, names, arity, kind, flags in EW:
        for t in names:
            special = t.startswith("special.")
            t = t.removeprefix("special.")
            assert t in _torch_ops.FUNCS, t
            assert (t in _torch.ATTRS) == (not special), t
            if not special:
                assert hasattr(torch.Tensor, t), t
                if t not in _torch._NO_INPLACE:
                    assert hasattr(torch.Tensor, t + "_") and t + "_" in _torch.ATTRS, t
                else:
                    assert not hasattr(torch.Tensor, t + "_"), t
            fn = getattr(torch.special if special else torch, t)
            if name == "WHERE":
                args = (bools, x, x + 1)
            elif name in ("INVERT", "BAND", "BOR", "BXOR"):
                args = (ints,) * arity
            else:
                args = (x,) * arity
            log = tracejit.compile(lambda *a: fn(*a))._explain_passes(*args)
            traced = str(log).split("-- fold")[0]
            assert re.search(rf"= {name} ", traced), (t, traced)


def test_fold_column_is_the_ufunc_reduction():
    """sum, prod, max, min reduce with the ufunc of their combiner: what the tier's fold
    and the runtime's chunked reductions compute."""
    comb = {"RSUM": np.add, "RPROD": np.multiply, "RMAX": np.maximum, "RMIN": np.minimum}
    x = np.random.default_rng(0).standard_normal((4, 5))
    for op, ufunc in comb.items():
        np_name = next(e[1] for e in TABLE if e[0] == op)
        f = tracejit.compile(lambda a, g=getattr(np, np_name): g(a, axis=0))
        np.testing.assert_allclose(f(x), ufunc.reduce(x, axis=0), rtol=1e-14)


def _loop_position(src, call):
    """Whether `call` first appears inside a loop of src (after its first `for (`)."""
    return src.index(call) > src.index("for (")


def test_effect_is_not_hoisted_out_of_the_loop():
    """A loop-invariant value (s + 1.5, with s a 0-d input) is computed once before the
    loop; an op with an effect is computed in it, by TinyCC's and the tier's code."""
    def fn(x, s):
        return x * (s + 1.5)
    x, s = np.linspace(0, 1, 3000), np.array(2.0)
    where = {}
    for mark in (None, "ADD"):
        _C._test_mark_effect(mark)
        try:
            f = tracejit.compile(fn)
            src = f.explain(x, s)
            np.testing.assert_array_equal(f(x, s), fn(x, s))
        finally:
            _C._test_mark_effect(None)
        tcc, tier = src.source, src.tier_source
        where[mark] = (_loop_position(tcc, "tj_p_ADD_f64("), _loop_position(tier, "tj_e_ADD_f64("))
    assert where == {None: (False, False), "ADD": (True, True)}


def _method_cases():
    return [(e[0], t, e[3]) for e in EW for t in e[2] if not t.startswith("special.")]


@pytest.mark.parametrize("op,name,arity", _method_cases(), ids=lambda v: str(v))
def test_methods_match_torch(op, name, arity):
    """Every Tensor method the table names, and its in-place form, computes torch's
    value when traced (x.asinh(), y.less_(z), ...)."""
    torch = pytest.importorskip("torch")
    ints = op in ("INVERT", "BAND", "BOR", "BXOR")
    if ints:
        x = torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4)
        y = torch.arange(5, 17, dtype=torch.int64).reshape(3, 4)
    else:
        x = torch.linspace(0.05, 2.5, 12, dtype=torch.float64).reshape(3, 4)
        y = torch.linspace(1.5, 0.25, 12, dtype=torch.float64).reshape(3, 4)
    args = (x > 1, y) if op == "WHERE" else (y,) * (arity - 1)

    def method(x, *a):
        return getattr(x, name)(*a)

    def inplace(x, *a):
        z = x * 1
        getattr(z, name + "_")(*a)
        return z

    def keyword(x, cond, other):   # Tensor.where(condition, other=...)
        return x.where(cond, other=other)

    fns = [method] + ([inplace] if name not in _torch._NO_INPLACE else [])
    fns += [keyword] if op == "WHERE" else []
    for fn in fns:
        want, got = fn(x, *args), tracejit.compile(fn)(x, *args)
        assert got.dtype == want.dtype and got.shape == want.shape, fn.__name__
        torch.testing.assert_close(got, want, equal_nan=True, rtol=1e-12, atol=1e-12)
