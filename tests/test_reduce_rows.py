"""Reductions over rows shorter than a block (csrc/emit/emit_c.c's reduction_rows):
their elementwise part runs in 2-D blocks of rows, the reduction still takes the rows
one at a time in order. Sums over the rows are compared bit for bit with a sequential
float64 accumulation (the accumulator tracejit uses), everything else with NumPy."""
import numpy as np
import pytest

import tracejit

from conftest import arg_in_layout, assert_matches_numpy, make_input


def sequential_colsum(v):
    """Row after row into a float64 accumulator, cast back: tracejit's order."""
    acc = np.zeros(v.shape[1:], np.float64)
    for row in v:
        acc += row
    return acc.astype(v.dtype)


SHAPES = [(1, 10), (2, 3), (7, 10), (51, 10), (52, 10), (128, 10), (128, 64), (1000, 3),
          (33, 255), (9, 256), (5, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["c", "T", "strided", "neg"])
def test_column_sums_of_an_elementwise_chain_are_sequential(shape, dtype, layout, rng):
    x = arg_in_layout(rng, shape, dtype, layout)
    b = make_input(rng, shape[1:], dtype)
    f = tracejit.compile(lambda x, b: np.sum(x * (1 - x * x) + b, axis=0))
    with np.errstate(all="ignore"):
        v = x * (1 - x * x) + b
    for _ in range(2):
        assert_matches_numpy(f(x, b), sequential_colsum(v), exact=True, inputs=[x, b])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", ["max", "min"])
def test_column_max_min_of_a_broadcast_sum(shape, op, rng):
    x = make_input(rng, shape, "float32")
    b = make_input(rng, shape[1:], "float32")
    fn = getattr(np, op)
    f = tracejit.compile(lambda x, b: fn(x + b, axis=0))
    assert_matches_numpy(f(x, b), fn(x + b, axis=0), exact=True)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_sums_with_an_elementwise_output_beside(shape, dtype, rng):
    x = make_input(rng, shape, dtype)
    b = make_input(rng, shape[1:], dtype)
    f = tracejit.compile(lambda x, b: (np.tanh(x + b), np.sum((x + b) * x, axis=1)))
    t, s = f(x, b)
    assert_matches_numpy(t, np.tanh(x + b), exact=False)
    assert_matches_numpy(s, np.sum((x + b) * x, axis=1), exact=False)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_loss_over_rows_with_a_broadcast_bias(shape, dtype, rng):
    o, y = make_input(rng, shape, dtype), make_input(rng, shape, dtype)
    b = make_input(rng, shape[1:], dtype)
    f = tracejit.compile(lambda o, b, y: np.mean((o + b - y) ** 2))
    assert_matches_numpy(f(o, b, y), np.mean((o + b - y) ** 2), exact=False,
                         rtol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("axis", [0, 1, 2, (0, 1), (1, 2), (0, 2)])
def test_three_dims(axis, rng):
    x = make_input(rng, (4, 7, 10), "float64")
    b = make_input(rng, (7, 10), "float64")
    f = tracejit.compile(lambda x, b: np.sum(np.exp(x) * b, axis=axis))
    assert_matches_numpy(f(x, b), np.sum(np.exp(x) * b, axis=axis), exact=False)
    g = tracejit.compile(lambda x: np.prod(1.0 + 0.01 * x, axis=axis))
    assert_matches_numpy(g(x), np.prod(1.0 + 0.01 * x, axis=axis), exact=False)


@pytest.fixture
def threads():
    before = tracejit.get_num_threads()
    yield
    tracejit.set_num_threads(before)


@pytest.mark.parametrize("axis", [0, 1, None])
def test_the_same_bits_whatever_the_thread_count(axis, rng, threads):
    x = make_input(rng, (40_000, 10), "float32")
    b = make_input(rng, (10,), "float32")
    results = []
    for n in (1, 2, 3):
        tracejit.set_num_threads(n)
        f = tracejit.compile(lambda x, b: np.sum(x * b + x, axis=axis))
        results.append(f(x, b))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    want = np.sum((x * b + x).astype(np.float64), axis=axis)   # (in parts: not sequential)
    np.testing.assert_allclose(results[0], want, rtol=1e-5)


def test_short_rows_are_reduced_in_blocks_of_rows(rng):
    x = make_input(rng, (128, 10), "float32")
    f = tracejit.compile(lambda x: np.sum(x * x, axis=0))
    f(x)
    assert "rr < rows" in f.last_source           # the row loop inside a 2-D block
    g = tracejit.compile(lambda x: np.sum(x * x, axis=0))
    g(make_input(rng, (128, 300), "float32"))      # rows longer than half a block
    assert "rr < rows" not in g.last_source
