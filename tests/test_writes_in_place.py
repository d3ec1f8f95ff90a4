"""Writes as in-place updates (issue 16, "a write becomes an in-place update of the buffer
when the old value is dead"): a box write `out[i] = v` is the concatenation of out's
slices around v; where the array before the write is read by nothing else, that
concatenation takes its buffer and only v is written (fuse.c's in_place_concats), so a
loop of n row writes runs O(n) work in O(n) groups. Every case is compared with eager
NumPy bit for bit, on the first call and on a replay with other data; the schedule's
work is read off the pass log (`_explain_passes`)."""
import re

import numpy as np
import pytest

import tracejit


def _schedule(f, *args):
    """(number of groups, total elements the groups loop over) of f's plan for args."""
    text = str(f._explain_passes(*args))
    n = int(re.search(r"-- fuse: (\d+) groups", text).group(1))
    sizes = [np.prod([int(d) for d in m.group(1).split(",") if d.strip()] or [1])
             for m in re.finditer(r"  group \d+: loop \[([^\]]*)\]", text)]
    assert len(sizes) == n
    return n, int(sum(sizes))


def _check(fn, *args_list):
    f = tracejit.compile(fn)
    for args in args_list:
        want = fn(*[a.copy() for a in args])
        got = f(*[a.copy() for a in args])
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(g, w)
    return f


def _rows(n, width, dtype):
    def fill(x):
        out = np.zeros((n, width), dtype)
        for i in range(n):
            out[i] = x[i] * 2 + 1
        return out
    return fill


@pytest.mark.parametrize("n", [3, 40, 300])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_row_writes_update_one_buffer_in_linear_work(n, dtype):
    rng = np.random.default_rng(n)
    xs = [(rng.standard_normal((n, 8)) * 10).astype(dtype) for _ in range(2)]
    f = _check(_rows(n, 8, dtype), (xs[0],), (xs[1],))
    groups, work = _schedule(f, xs[0])
    assert groups <= n + 2                    # one a row: its value into its place
    assert work <= 3 * n * 8 + n * 8          # the first write copies zeros' other rows once


@pytest.mark.parametrize("n", [4, 60])
def test_column_writes_update_in_place_and_box_writes_stay_eagers(n):
    def cols(x):
        out = np.ones((6, n))
        for j in range(n):
            out[:, j] = x[:, j] - j
        return out

    # a box over two dims is a concatenation inside another along another axis: its
    # other elements are still copied at each write (not yet in place), results eager's
    def boxes(x):
        out = np.ones((6, n))
        for j in range(n):
            out[:, j] = x[:, j] - j
        for j in range(0, n - 1, 2):
            out[1:4, j:j + 2] = x[1:4, j:j + 2] * 0.5
        return out
    x = np.arange(6.0 * n).reshape(6, n)
    f = _check(cols, (x,), (-x,))
    groups, work = _schedule(f, x)
    assert groups <= 2 * n + 2 and work <= 4 * 6 * n   # a column: (6,) viewed as (6, 1)
    _check(boxes, (x,), (-x,))


def test_reads_of_earlier_rows_and_of_the_old_array_stay_eagers():
    # each row reads the row before: the array before a write is read by the value
    def recur(x):
        out = np.zeros((30, 5))
        out[0] = x[0]
        for i in range(1, 30):
            out[i] = out[i - 1] * 0.5 + x[i]
        return out

    # the array before the writes is returned too (a copy of it, as eager)
    def snapshot(x):
        out = x * 1.0
        before = out.copy()
        for i in range(0, 10, 3):
            out[i] = -x[i]
        mid = out.copy()
        out[1] = 7.0
        return before, mid, out

    # one write's value reads the whole array before it
    def cumulative(x):
        out = x.copy()
        for i in range(1, 10):
            out[i] = out.sum(axis=0) + out[i]
        return out

    rng = np.random.default_rng(3)
    for fn, shape in ((recur, (30, 5)), (snapshot, (10, 4)), (cumulative, (10, 3))):
        _check(fn, (rng.standard_normal(shape),), (rng.standard_normal(shape),))


def test_row_writes_into_an_argument_and_a_strided_view_reach_the_caller():
    def into(out, x):
        for i in range(out.shape[0]):
            out[i] = x[i] + i
        return out.sum()

    x = np.arange(24.0).reshape(8, 3)
    f = tracejit.compile(into)
    for out_e, out_m in ((np.zeros((8, 3)), np.zeros((8, 3))),
                         (np.zeros((3, 8)).T, np.zeros((3, 8)).T),
                         (np.zeros((16, 3))[::-2], np.zeros((16, 3))[::-2])):
        assert f(out_m, x) == into(out_e, x)
        np.testing.assert_array_equal(out_m, out_e)


def test_a_branch_on_written_rows_keeps_its_guard():
    def fill(x):
        out = np.zeros((12, 2))
        for i in range(12):
            out[i] = x[i]
            if out[:i + 1].sum() > 0:
                out[i] += 1.0
        return out
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 2))
    _check(fill, (x,), (x + 0.25,), (-x,), (x,))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_unit_dims_in_front_of_an_elementwise_value_compute_it_in_place(dtype):
    """simplify: a view that only puts size-1 dims in front of an elementwise value is
    that value's op at the view's shape (broadcasting), so the value is not stored
    first; other reshapes, offsets and casts keep their views. Values as eager's."""
    def fn(x, y):
        e = x * 3 + 1
        c = (x > 2).astype(dtype)
        return (e.reshape(1, 1, -1) + y, e[None] * c[None, None, :], e.reshape(2, -1),
                e[None, 1:], np.sqrt(np.abs(e))[np.newaxis])
    x = np.arange(12).astype(dtype) - 4
    y = np.ones((3, 1, 12), dtype)
    f = _check(fn, (x, y), (x[::-1].copy(), y * 2))
    text = str(f._explain_passes(x, y))
    simplified = text[text.index("-- simplify"):text.index("-- cse")]
    assert re.search(r"%\d+ = MUL \S+\(1, 1, 12\)", simplified) or \
        re.search(r"%\d+ = ADD \S+\(1, 1, 12\)", simplified)
