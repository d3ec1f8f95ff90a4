"""Assembly against NumPy: np.concatenate (any axis, None), np.stack, np.hstack,
np.vstack, np.roll, np.pad (constant); parts that are arguments, views, computed
expressions, reductions and products; mixed dtypes; nested assemblies; results consumed
by elementwise ops and reductions or returned directly; the errors NumPy raises."""
import numpy as np
import pytest

import tracejit
from conftest import LAYOUTS, arg_in_layout, check_compiled, check_raises_like_numpy, DTYPES, FLOAT_DTYPES, assert_matches_numpy, make_input



arg = arg_in_layout
check = check_compiled
check_raises = check_raises_like_numpy


# -------------------------------------------------------------------- concatenate
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis,shapes", [
    (0, [(2, 3), (4, 3)]), (1, [(2, 3), (2, 5)]), (-1, [(2, 3), (2, 1), (2, 4)]),
    (None, [(2, 3), (5,), (1, 1, 2)]), (0, [(3,), (4,), (1,), (2,)]), (-2, [(2, 3, 4), (2, 1, 4)]),
    (1, [(2, 0), (2, 3)]), (0, [(0, 3), (0, 3)]), (2, [(2, 1, 1), (2, 1, 3)]),
    (0, [(5, 2)]), (None, [(0,), (2, 2)]), (None, [()]), (None, [(), (3,)]),
])
def test_concatenate_arguments(axis, shapes, dtype, rng):
    parts = [make_input(rng, s, dtype) for s in shapes]
    n = len(parts)
    check(lambda *p: np.concatenate(p[:n], axis=axis), *parts)
    check(lambda *p: np.concatenate(list(p), axis), *parts)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_concatenate_views_and_computed(axis, layout, rng):
    x = arg(rng, (4, 6), "float64", layout)
    y = arg(rng, (4, 6), "float64", layout)
    check(lambda x, y: np.concatenate([x, y, x], axis=axis), x, y)
    check(lambda x, y: np.concatenate([x[::-1], y.T.T, x[:, ::-1] * 2.0], axis=axis), x, y)
    check(lambda x, y: np.concatenate([np.exp(x * 0.1), y - x, np.maximum(x, y)], axis=axis), x, y,
          exact=False)
    check(lambda x, y: np.concatenate([x[1:3], y[:2] + 1.0], axis=axis), x, y)
    check(lambda x, y: np.concatenate([x.sum(axis=0, keepdims=True), y[:1]], axis=0)
          if axis is not None else np.concatenate([x.sum(axis=1), y[0]], axis=None), x, y,
          exact=False)


def test_concatenate_parts_of_other_shapes(rng):
    x = make_input(rng, (3, 1), "float64")
    y = make_input(rng, (1, 5), "float64")
    # a part computed by broadcasting, a matmul, a reduction, a broadcast view
    check(lambda x, y: np.concatenate([x + y, x @ y, np.broadcast_to(y, (2, 5))]), x, y)
    check(lambda x, y: np.concatenate([(x * y).max(axis=0, keepdims=True), y], axis=0), x, y)
    check(lambda x, y: np.concatenate([x, x * y, np.zeros((3, 2))], axis=1), x, y)


@pytest.mark.parametrize("dtypes", [("int32", "float32"), ("bool", "int32"), ("int32", "int64"),
                                    ("float32", "float64"), ("bool", "float64", "int64"),
                                    ("int64", "float32"), ("bool", "bool")])
def test_concatenate_mixed_dtypes(dtypes, rng):
    parts = [make_input(rng, (2, 3), d) for d in dtypes]
    n = len(parts)
    f = check(lambda *p: np.concatenate(p[:n]), *parts)
    assert f(*parts).dtype == np.result_type(*parts)
    check(lambda *p: np.stack(p[:n], axis=1), *parts)
    check(lambda *p: np.concatenate([q * 2 for q in p[:n]], axis=None), *parts)


@pytest.mark.parametrize("fn", [
    lambda a, b: np.concatenate([a, b], dtype=np.float32),
    lambda a, b: np.concatenate([a, b], axis=None, dtype=np.float64),
    lambda a, b: np.concatenate([b, b], dtype=np.int32, casting="unsafe"),
    lambda a, b: np.stack([a, a], dtype=np.float64),
    lambda a, b: np.hstack([a, a], dtype=np.float32),
    lambda a, b: np.vstack([a, b], dtype=np.int64, casting="unsafe"),
])
def test_dtype_keyword_is_honoured_or_a_trace_error(fn, rng):
    """dtype=/casting= change the result: NumPy's result or a TraceError, never a
    result in another dtype."""
    a = make_input(rng, (3, 4), "int32")
    b = make_input(rng, (3, 4), "float64")
    try:
        tracejit.compile(fn)(a, b)
    except tracejit.TraceError:
        return
    check(fn, a, b)


def test_concatenations_consumed(rng):
    x = make_input(rng, (5, 4), "float64")
    y = make_input(rng, (3, 4), "float64")
    check(lambda x, y: np.concatenate([x, y]).sum(axis=0), x, y, exact=False)
    check(lambda x, y: np.concatenate([x, y]).max(), x, y)
    check(lambda x, y: np.concatenate([x, -y], axis=0).argmin(axis=0), x, y)
    check(lambda x, y: np.tanh(np.concatenate([x, y]) * 2.0) + 1.0, x, y, exact=False)
    check(lambda x, y: np.concatenate([x, y])[::-2, 1:], x, y)
    check(lambda x, y: np.concatenate([x, y]).T @ np.ones(8), x, y, exact=False)
    check(lambda x, y: np.concatenate([x.T, y.T], axis=1).reshape(-1)[::3], x, y)
    check(lambda x, y: np.mean(np.stack([x[:3], y]), axis=0), x, y, exact=False)
    check(lambda x, y: np.where(np.concatenate([x, y]) > 0, np.concatenate([y, x]), 0.0), x, y)


def test_nested_assemblies(rng):
    a = make_input(rng, (3, 4), "float64")
    b = make_input(rng, (3, 4), "float32")
    c = make_input(rng, (3, 4), "int32")
    check(lambda a, b, c: np.concatenate([np.concatenate([a, b], axis=0),
                                          np.concatenate([c, a], axis=0)], axis=1), a, b, c)
    check(lambda a, b, c: np.concatenate([np.concatenate([c, c]), b]), a, b, c)  # int32 inside f32
    check(lambda a, b, c: np.stack([np.concatenate([a, b]), np.concatenate([c, c])], axis=-1),
          a, b, c)
    check(lambda a, b, c: np.pad(np.concatenate([a, b], axis=1), 1), a, b, c)
    check(lambda a, b, c: np.roll(np.concatenate([a, c]), 2, axis=0), a, b, c)
    def reused(a, b, c):
        y = np.concatenate([a, a + 1.0])
        z = np.concatenate([y, b], axis=0)
        return z, y.sum(axis=1), y, np.concatenate([y, y], axis=1)
    check(reused, a, b, c, exact=False)
    def part_used_elsewhere(a, b, c):
        p = a * 3.0
        return np.concatenate([p, p, b]), p, np.stack([p, -p], axis=1), p.sum()
    check(part_used_elsewhere, a, b, c, exact=False)
    def views_of_result(a, b, c):
        y = np.concatenate([a, b])
        return y, y[::2], y.T, y[1]
    check(views_of_result, a, b, c)


def test_assembly_large(rng):
    """Several 512-element blocks per part; regions not contiguous in the output."""
    x = make_input(rng, (700, 3), "float32")
    y = make_input(rng, (700, 5), "float32")
    check(lambda x, y: np.concatenate([x, y * 2.0, x], axis=1), x, y)
    check(lambda x, y: np.concatenate([x.T, y.T]).T + 1.0, x, y)
    check(lambda x, y: np.stack([x[:, 0], y[:, 1], x[:, 2]], axis=1), x, y)
    check(lambda x, y: np.roll(y, 1234), x, y)
    check(lambda x, y: np.pad(x, ((5, 7), (0, 3)), constant_values=-1.5), x, y)


# ---------------------------------------------------------- stack, hstack, vstack
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_stack(axis, dtype, rng):
    x = make_input(rng, (3, 4), dtype)
    y = make_input(rng, (3, 4), dtype)
    check(lambda x, y: np.stack([x, y], axis=axis), x, y)
    check(lambda x, y: np.stack((x, y[::-1], x & y if x.dtype.kind != "f" else x * y), axis), x, y)


def test_stack_edge_shapes(rng):
    for shape in [(), (0,), (1,), (2, 0), (1, 1)]:
        x = make_input(rng, shape, "int64")
        y = make_input(rng, shape, "int64")
        check(lambda x, y: np.stack([x, y]), x, y)
        check(lambda x, y: np.stack([x, y, x], axis=-1), x, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [[(3,), (4,)], [(2, 3), (2, 1)], [(3,), (0,), (2,)],
                                    [(2, 3, 1), (2, 2, 1)], [(5,)]], ids=repr)
def test_hstack(shapes, dtype, rng):
    parts = [make_input(rng, s, dtype) for s in shapes]
    n = len(parts)
    check(lambda *p: np.hstack(p[:n]), *parts)
    check(lambda *p: np.hstack([q[::-1] for q in p[:n]]), *parts)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [[(3,), (3,)], [(2, 3), (1, 3)], [(3,), (2, 3)],
                                    [(2, 3, 1), (1, 3, 1)], [(0, 2), (2,)], [(4,)]], ids=repr)
def test_vstack(shapes, dtype, rng):
    parts = [make_input(rng, s, dtype) for s in shapes]
    n = len(parts)
    check(lambda *p: np.vstack(p[:n]), *parts)
    check(lambda *p: np.vstack(list(p[:n])).T, *parts)


@pytest.mark.parametrize("fn", [lambda x, y: np.hstack([x[0, 0], y[1, 1]]),
                                lambda x, y: np.vstack([x[0, 0], y[1, 1]]),
                                lambda x, y: np.hstack([x[0, 0], y[0]]),
                                lambda x, y: np.vstack([x[0, :1], y[0, 0]])])
def test_hstack_vstack_of_zero_d_parts(fn, rng):
    """hstack/vstack lift 0-d parts with atleast_1d/atleast_2d."""
    x = make_input(rng, (2, 3), "float64")
    y = make_input(rng, (2, 3), "float64")
    check(fn, x, y)


# --------------------------------------------------------------------------- roll
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", [0, 1, 2, -1, -3, 5, 6, 13, -13, 120, -121])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_roll(axis, shift, dtype, rng):
    x = make_input(rng, (4, 6), dtype)
    check(lambda x: np.roll(x, shift, axis=axis), x)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_roll_views_computed_and_edges(layout, rng):
    x = arg(rng, (5, 3), "float64", layout)
    check(lambda x: np.roll(x, 2, 0) - x, x)
    check(lambda x: np.roll(x * 2.0 + 1.0, -1, axis=1), x)
    check(lambda x: np.roll(x.T, 4), x)
    check(lambda x: np.roll(x, shift=np.int64(7), axis=-2).sum(axis=0), x, exact=False)
    check(lambda x: np.roll(x[:0], 3, axis=0), x)
    check(lambda x: np.roll(x[:, :0], 3), x)
    check(lambda x: np.roll(x[0, 0], 1), x)
    check(lambda x: np.roll(x[0], 1) + np.roll(x[0], -1) - 2 * x[0], x)   # stencil


@pytest.mark.parametrize("fn", [lambda x: np.roll(x, (1, 2), axis=(0, 1)),
                                lambda x: np.roll(x, (1,)), lambda x: np.roll(x, 1, axis=(0,)),
                                lambda x: np.roll(x, (2, -1), axis=(1, 1))])
def test_roll_several_shifts_correct_or_trace_error(fn, rng):
    x = make_input(rng, (3, 4), "float64")
    try:
        tracejit.compile(fn)(x)
    except tracejit.TraceError:
        return
    check(fn, x)


# ---------------------------------------------------------------------------- pad
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [0, 1, 3, (1, 2), ((1, 2), (0, 3)), ((0, 0), (2, 0)), [[2], [1]],
                                   ((2,),), np.array([[1, 0], [2, 1]])], ids=repr)
def test_pad_constant(width, dtype, rng):
    x = make_input(rng, (3, 4), dtype)
    check(lambda x: np.pad(x, width), x)
    check(lambda x: np.pad(x, width, mode="constant", constant_values=1), x)
    check(lambda x: np.pad(x, width, "constant"), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0, 1, -1, 7, 2.7, -0.5, np.float32(3.5), np.int64(-9), True])
def test_pad_constant_values_cast_to_array_dtype(value, dtype, rng):
    x = make_input(rng, (2, 3), dtype)
    check(lambda x: np.pad(x, 1, constant_values=value), x)


def test_pad_views_computed_and_edges(rng):
    x = make_input(rng, (4, 5), "float64")
    check(lambda x: np.pad(x.T[::-1], ((1, 0), (2, 2)), constant_values=-2.0), x)
    check(lambda x: np.pad(np.sin(x), 2) * 3.0, x, exact=False)
    check(lambda x: np.pad(x, 1).sum(axis=1), x, exact=False)
    check(lambda x: np.pad(x[0], (3, 1), constant_values=np.nan), x)
    check(lambda x: np.pad(x[0, 0], 2), x)                # 0-d: unchanged
    check(lambda x: np.pad(x[:0], 1), x)
    check(lambda x: np.pad(x[None], ((0, 0), (1, 1), (0, 2))), x)
    check(lambda x: np.pad(x, 1)[1:-1, 1:-1] - x, x)


def test_pad_with_a_non_finite_value_on_integers_raises():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    with pytest.raises((OverflowError, ValueError)):
        np.pad(x, 1, constant_values=np.inf)
    with pytest.raises((OverflowError, ValueError, tracejit.TraceError)):
        tracejit.compile(lambda x: np.pad(x, 1, constant_values=np.inf))(x)


# ------------------------------------------------------- results returned directly
@pytest.mark.parametrize("fn", [
    lambda x: np.concatenate([x]), lambda x: np.concatenate([x], axis=None), lambda x: np.stack([x]),
    lambda x: np.hstack([x]), lambda x: np.vstack([x]), lambda x: np.roll(x, 0),
    lambda x: np.roll(x, 6, axis=1), lambda x: np.pad(x, 0), lambda x: np.pad(x, ((0, 0), (0, 0))),
    lambda x: np.concatenate([x, x[:0]]),
])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_trivial_assemblies_return_fresh_arrays(fn, layout, rng):
    check(fn, arg(rng, (3, 6), "int32", layout))


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize("fn,match", [
    (lambda x, y: np.concatenate([x, y], axis=1),
     "all the input array dimensions except for the concatenation axis must match exactly"),
    (lambda x, y: np.concatenate([x, y.T]),
     "all the input array dimensions except for the concatenation axis must match exactly"),
    (lambda x, y: np.hstack([x, y]),
     "all the input array dimensions except for the concatenation axis must match exactly"),
    (lambda x, y: np.vstack([x.T, y]),
     "all the input array dimensions except for the concatenation axis must match exactly"),
    (lambda x, y: np.concatenate([]), "need at least one array to concatenate"),
    (lambda x, y: np.stack([]), "need at least one array to stack"),
    (lambda x, y: np.concatenate([x, y], axis=2), None),
    (lambda x, y: np.concatenate([x, y], axis=-3), None),
    (lambda x, y: np.stack([x, x], axis=3), None),
    (lambda x, y: np.stack([x, x], axis=-4), None),
    (lambda x, y: np.roll(x, 1, axis=2), None),
    (lambda x, y: np.pad(x, -1), "index can't contain negative values"),
    (lambda x, y: np.pad(x, ((1, 2), (3, 4), (5, 6))), None),
    (lambda x, y: np.concatenate([x[0, 0], y[0, 0]]), "zero-dimensional arrays cannot be concatenated"),
    (lambda x, y: np.stack([x, y]), "all input arrays must have the same shape"),
    (lambda x, y: np.concatenate([x, y[0]]), "all the input arrays must have same number of dimensions"),
])
def test_assembly_errors(fn, match, rng):
    x = make_input(rng, (2, 3), "float64")
    y = make_input(rng, (4, 5), "float64")
    check_raises(fn, x, y, match=match)


def test_concatenate_of_a_generator_is_a_type_error(rng):
    x = make_input(rng, (2, 3), "float64")
    fn = lambda x: np.concatenate(q for q in (x, x))       # noqa: E731
    with pytest.raises(TypeError):
        fn(x)
    with pytest.raises((TypeError, tracejit.TraceError)):
        tracejit.compile(fn)(x)


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap", "symmetric", "linear_ramp", "maximum"])
def test_pad_other_modes_are_trace_errors(mode, rng):
    x = make_input(rng, (3, 4), "float64")
    np.pad(x, 1, mode=mode)   # NumPy can
    with pytest.raises(tracejit.TraceError) as ei:
        tracejit.compile(lambda x: np.pad(x, 1, mode=mode))(x)
    assert mode in str(ei.value)


@pytest.mark.parametrize("fn", [lambda x: np.pad(x, 1, constant_values=(1, 2)),
                                lambda x: np.pad(x, 1, constant_values=((1, 2), (3, 4)))])
def test_pad_per_axis_values_correct_or_trace_error(fn, rng):
    x = make_input(rng, (3, 4), "int64")
    try:
        tracejit.compile(fn)(x)
    except tracejit.TraceError:
        return
    check(fn, x)
