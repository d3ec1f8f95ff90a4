"""A value guard comparing a float64 against a Python number (csrc/guards.c
compare_f64, the passing guard's fast path) for every comparison, the constant on
either side, float32 and int64 values (the general path), NaN and equality at the
constant: each call takes eager's branch, a failed guard retraces or switches variant."""
import operator

import numpy as np
import pytest

import tracejit as tj

OPS = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.__name__)
@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_branch_on_a_comparison_matches_eager(op, left, dtype):
    def f(x):
        s = x.sum()
        if (op(2, s) if left else op(s, 2)):
            return x * 2
        return x - 1
    cf = tj.compile(f)
    values = [2, 1, 3, 2, -5, 2, 7]
    if dtype != np.int64:
        values += [np.nan, 2, np.inf, -np.inf, 2.0000001]
    for v in values:
        x = np.array([v, 0], dtype=dtype)
        np.testing.assert_array_equal(cf(x), f(x))
    assert 1 <= cf.cache_info().variants <= 2
