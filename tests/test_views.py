"""Views against NumPy: basic indexing (ints, slices, None, Ellipsis, tuples), .T,
transpose, swapaxes, moveaxis, expand_dims, squeeze, broadcast_to, flip/fliplr/flipud,
reshape, ravel/flatten, split/array_split; of arguments in every layout and of computed
values; composed; inside elementwise chains and reductions; returned directly (fresh
arrays); replayed with other strides; and the errors NumPy raises."""
import numpy as np
import pytest

import tracejit
from conftest import LAYOUTS, arg_in_layout, check_compiled, check_raises_like_numpy, DTYPES, FLOAT_DTYPES, assert_matches_numpy, make_input

AxisError = np.exceptions.AxisError


arg = arg_in_layout
check = check_compiled
check_raises = check_raises_like_numpy


def check_or_trace_error(fn, *args, needle=None):
    """NumPy's result, or a tracejit.TraceError (mentioning `needle`) -- never a
    wrong result and never another exception."""
    try:
        tracejit.compile(fn)(*args)
    except tracejit.TraceError as exc:
        assert needle is None or needle in str(exc), str(exc)
        return
    check(fn, *args)


# ------------------------------------------------------------------ basic indexing
INDICES_3D = [
    0, -1, 3, -4, (1, 2), (-1, -2, -3), (0, 0, 0),
    slice(None), slice(1, 3), slice(None, None, 2), slice(None, None, -1), slice(3, 0, -1),
    slice(-2, None), slice(10, 20), slice(-100, 100), slice(2, 2), slice(None, None, -3),
    slice(5, -10, -2), slice(3, 1), slice(None, None, 7), slice(-1, -5, -2),
    None, Ellipsis, (), (Ellipsis, 0), (0, Ellipsis), (None, 1, Ellipsis, None),
    (slice(None), None, 2), (Ellipsis, slice(None, None, -1)), (1, slice(None), -1),
    (None, None), (Ellipsis,), (Ellipsis, None), (slice(1, None, 2), slice(None, None, -2), 3),
    (-1, slice(4, 0, -2), slice(1, 5, 3)), (slice(None), Ellipsis, slice(0, 0)),
    (Ellipsis, 2, None, slice(None)), (None, slice(None), None, 0, None),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index", INDICES_3D, ids=repr)
def test_basic_indexing_argument(index, layout, rng):
    x = arg(rng, (4, 5, 6), "float64", layout)
    check(lambda x: x[index], x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", [0, -1, (slice(None, None, -1), 1), (Ellipsis, None, 2),
                                   (1, -2), slice(1, None, 2)], ids=repr)
def test_basic_indexing_all_dtypes(index, dtype, rng):
    x = make_input(rng, (3, 4), dtype)
    check(lambda x: x[index], x)


@pytest.mark.parametrize("index", [slice(None), 0, -1, slice(None, None, -1), None, Ellipsis,
                                   (slice(1, 1), None)], ids=repr)
@pytest.mark.parametrize("shape", [(0,), (1,), (1, 1), (0, 3), (3, 0), (1, 0, 2)])
def test_indexing_edge_shapes(shape, index, rng):
    x = make_input(rng, shape, "float32")
    with np.errstate(all="ignore"):
        try:
            x[index]
        except IndexError:
            check_raises(lambda x: x[index], x)
            return
    check(lambda x: x[index], x)


@pytest.mark.parametrize("index", [True, False, (Ellipsis, True), (0, False), (None, True, 1),
                                   np.True_, (slice(None), np.False_)], ids=repr)
def test_scalar_boolean_index_adds_an_axis(index, rng):
    """NumPy treats a scalar boolean index as a new axis of length 1 (True) or 0
    (False), never as the integer 1 or 0.  A TraceError is acceptable too."""
    check_or_trace_error(lambda x: x[index], make_input(rng, (3, 4), "float64"))


def test_indexing_zero_d(rng):
    x = make_input(rng, (), "float64")
    for index in [(), Ellipsis, None, (Ellipsis, None, None)]:
        check(lambda x: x[index], x)


@pytest.mark.parametrize("index", INDICES_3D[:20], ids=repr)
def test_indexing_computed_value(index, rng):
    x = make_input(rng, (4, 5, 6), "float32")
    y = make_input(rng, (5, 6), "float32")
    check(lambda x, y: (x * 2.0 + y)[index], x, y)
    check(lambda x, y: np.exp((x - y)[index]) * 3.0, x, y, exact=False)


def test_index_then_elementwise_chain(rng):
    x = make_input(rng, (9, 7), "float64")
    check(lambda x: x[1:] - x[:-1], x)                       # diff along axis 0
    check(lambda x: x[:, ::2] * x[:, ::-2], x)
    check(lambda x: x[::2, 1][:4] + x[1::2, 2], x)
    check(lambda x: np.where(x[:, 1:] > x[:, :-1], x[:, 1:], -x[:, :-1]), x)
    check(lambda x: x[..., None] * x[:, None, :], x)          # (9,7,1)*(9,1,7)
    check(lambda x: np.sin(x[2]) + x[:, 3][:7], x, exact=False)


def test_index_in_reductions(rng):
    x = make_input(rng, (6, 8, 5), "float64")
    check(lambda x: np.sum(x[:, ::-2], axis=1), x, exact=False)
    check(lambda x: np.max(x[1:5, 2:3, ::2]), x)
    check(lambda x: x[..., 0].argmax(axis=-1), x)
    check(lambda x: np.mean(x.T[::-1], axis=(0, 2)) + x[0, :, 0], x, exact=False)
    check(lambda x: (x[:, :4] * x[:, 4:]).sum(axis=1), x, exact=False)


@pytest.mark.parametrize("fn", [
    lambda x: x[...], lambda x: x[:], lambda x: x.T, lambda x: x.reshape(-1),
    lambda x: x[None], lambda x: np.squeeze(x[None]), lambda x: np.broadcast_to(x, (2,) + x.shape),
    lambda x: x.ravel(), lambda x: np.ravel(x), lambda x: x.reshape(x.shape),
    lambda x: np.expand_dims(x, 0), lambda x: x.transpose(), lambda x: np.flip(x)[::-1],
])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_views_returned_directly_are_fresh(fn, layout, rng):
    x = arg(rng, (3, 4), "float64", layout)
    check(fn, x)


def test_several_views_of_one_array_returned(rng):
    x = make_input(rng, (4, 4), "int64")
    f = check(lambda x: (x[0], x[0], x.T, x[:, 0], x), x)
    r = f(x)
    assert r[0] is not r[1]


# --------------------------------------------------------------- axis permutations
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", [
    lambda x: x.T, lambda x: np.transpose(x), lambda x: x.transpose(1, 0, 2),
    lambda x: x.transpose((2, 0, 1)), lambda x: np.transpose(x, (-1, 0, 1)),
    lambda x: np.swapaxes(x, 0, 2), lambda x: x.swapaxes(-1, 0), lambda x: np.swapaxes(x, 1, 1),
    lambda x: np.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, -1, 0),
])
def test_permutations(fn, dtype, rng):
    check(fn, make_input(rng, (2, 3, 4), dtype))


@pytest.mark.parametrize("fn", [lambda x: np.moveaxis(x, [0, 1], [-1, -2]),
                                lambda x: np.moveaxis(x, (2, 0), (0, 1))])
def test_moveaxis_several_axes_correct_or_trace_error(fn, rng):
    """Several source axes: NumPy's result, or a TraceError naming moveaxis."""
    check_or_trace_error(fn, make_input(rng, (2, 3, 4), "float64"), needle="moveaxis")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(0, 3, 2), (1, 1, 4), (3, 0, 1), (2, 1, 5)])
def test_permutations_edge_shapes_and_layouts(shape, layout, rng):
    x = arg(rng, shape, "float32", layout)
    check(lambda x: np.moveaxis(x, 0, 2) * 2.0, x)
    check(lambda x: x.transpose(2, 0, 1) + x.transpose(2, 0, 1)[:, ::-1], x)


# ------------------------------------------------------------- expand/squeeze/bcast
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", [
    lambda x: np.expand_dims(x, 0), lambda x: np.expand_dims(x, -1), lambda x: np.expand_dims(x, 1),
    lambda x: np.expand_dims(x, (0, 2)), lambda x: np.expand_dims(x, (-1, 0)),
    lambda x: np.expand_dims(x, (1, 2, 4)),
    lambda x: np.squeeze(x[:, None]), lambda x: np.squeeze(x[None, :, None], axis=0),
    lambda x: np.squeeze(x[None, :, None], axis=(0, 2)), lambda x: x[None, None].squeeze(-3),
    lambda x: np.broadcast_to(x, (4, 3, 2)), lambda x: np.broadcast_to(x[:, :1], (5, 3, 7)),
    lambda x: np.broadcast_to(x[0, 0], (2, 2)),
])
def test_expand_squeeze_broadcast(fn, dtype, rng):
    check(fn, make_input(rng, (3, 2), dtype))


@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 3, 1), (0, 1), (1, 0)])
def test_squeeze_edge_shapes(shape, rng):
    x = make_input(rng, shape, "float64")
    check(lambda x: np.squeeze(x), x)
    check(lambda x: x.squeeze() + 1.0, x)
    if shape[0] == 1:
        check(lambda x: np.squeeze(x, axis=0), x)
    else:
        check_raises(lambda x: np.squeeze(x, axis=0), x)


def test_broadcast_to_int_shape_and_in_chain(rng):
    x = make_input(rng, (1,), "float64")
    check(lambda x: np.broadcast_to(x, 5), x)
    y = make_input(rng, (4, 1), "float64")
    check(lambda y: np.broadcast_to(y, (2, 4, 3)) * np.arange(3.0), y)
    check(lambda y: np.sum(np.broadcast_to(y, (4, 6)), axis=0), y, exact=False)
    check(lambda y: np.broadcast_to(y + 1.0, (3, 4, 0)), y)


# -------------------------------------------------------------------------- flips
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", [
    lambda x: np.flip(x), lambda x: np.flip(x, None), lambda x: np.flip(x, 0),
    lambda x: np.flip(x, -1), lambda x: np.flip(x, axis=(0, 2)), lambda x: np.flip(x, (1,)),
    lambda x: np.fliplr(x), lambda x: np.flipud(x), lambda x: np.flipud(np.fliplr(x)),
    lambda x: np.flip(x[::-1], 0), lambda x: np.flip(x, ()),
])
def test_flips(fn, dtype, rng):
    check(fn, make_input(rng, (3, 4, 2), dtype))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_flips_layouts_and_computed(layout, rng):
    x = arg(rng, (5, 6), "float64", layout)
    check(lambda x: np.flip(x * 3.0 - 1.0), x)
    check(lambda x: np.fliplr(x) + x, x)
    check(lambda x: np.flipud(x)[1:4:2] - x[1:4:2], x)
    check(lambda x: np.flipud(np.arange(5.0)) + x[:, 0], x)
    v = arg(rng, (7,), "float64", layout)
    check(lambda v: np.flipud(v) * v, v)
    check(lambda v: np.flip(v, 0)[::2], v)


# ------------------------------------------------------------------------ reshape
RESHAPES = [(-1,), (2, 6), (4, -1), (2, 2, 3), (12, 1), (1, 12), (-1, 2, 1, 3), (3, 4), (6, 2)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", RESHAPES, ids=repr)
def test_reshape_argument(shape, layout, rng):
    x = arg(rng, (3, 4), "float64", layout)
    check(lambda x: x.reshape(shape), x)
    check(lambda x: np.reshape(x, shape) * 2.0, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_all_dtypes_varargs_and_kw(dtype, rng):
    x = make_input(rng, (2, 3, 4), dtype)
    check(lambda x: x.reshape(4, 6), x)
    check(lambda x: x.reshape(-1, 3), x)
    check(lambda x: np.reshape(x, shape=(6, 4)), x)
    check(lambda x: x.T.reshape(4, -1), x)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reshape_computed_and_composed(layout, rng):
    x = arg(rng, (4, 6), "float64", layout)
    check(lambda x: (x + 1.0).reshape(8, 3), x)
    check(lambda x: np.tanh(x).T.reshape(-1), x, exact=False)
    check(lambda x: x.T.reshape(3, 8).T, x)                   # view of a view
    check(lambda x: x[1:].reshape(-1), x)                     # reshape after slicing
    check(lambda x: x[:, ::2].reshape(2, 2, 3), x)
    check(lambda x: x[::-1, 1:5].reshape(-1, 8), x)
    check(lambda x: x.reshape(6, 4)[::2], x)                  # slicing after reshape
    check(lambda x: x.reshape(2, 12)[:, ::-5], x)
    check(lambda x: x.reshape(3, 8).T.reshape(-1)[::3], x)
    check(lambda x: x.T[1:].reshape(-1)[::2], x)
    check(lambda x: x.reshape(-1)[::-1].reshape(4, 6) + x, x)
    check(lambda x: x.T.reshape(-1) * np.arange(24.0), x)
    check(lambda x: x[None].reshape(2, 3, 4)[..., 1:3].reshape(2, -1), x)


@pytest.mark.parametrize("src,dst", [((0, 3), (-1,)), ((0, 3), (3, 0)), ((0, 3), (3, -1)),
                                     ((1, 1), ()), ((1,), ()), ((), (1, 1)), ((), (-1,)),
                                     ((1, 0, 2), (0, 5)), ((2, 1), (1, 2))])
def test_reshape_edge_shapes(src, dst, rng):
    x = make_input(rng, src, "float32")
    check(lambda x: x.reshape(dst), x)
    check(lambda x: (x * 2.0).reshape(dst), x)


def test_reshape_of_reduction_and_reduction_of_reshape(rng):
    x = make_input(rng, (4, 6), "float64")
    check(lambda x: x.sum(axis=0).reshape(2, 3) - 1.0, x, exact=False)
    check(lambda x: x.T.reshape(2, 12).sum(axis=1), x, exact=False)
    check(lambda x: x[:, ::-1].reshape(3, 8).max(axis=0), x)


@pytest.mark.parametrize("expr", [
    "x.reshape(-1)[7]", "x.reshape(24)[-1]", "x.ravel()[7]", "x.flatten()[0]", "np.ravel(x)[23]",
    "x.reshape(3, 8)[2, 1]", "x.reshape(3, 8)[2][1]", "x.reshape(2, 2, 6)[1, 0, 4]",
    "x.T.reshape(-1)[7]", "x[1:3].reshape(-1)[4]", "(x + 1.0).reshape(-1)[-1]",
    "x.reshape(-1)[None, 7]", "x.reshape(12, 2)[..., 1][3]", "x.reshape(2, 12)[1, 3:4][0]",
    "x.reshape(-1)[7] + x[0]", "x.reshape(-1)[np.int64(7)] * np.ones(3)",
])
def test_single_element_of_a_reshaped_array(expr, rng):
    """An integer index that leaves one element of a reshaped (merged-dims) array."""
    x = make_input(rng, (4, 6), "float64")
    check(eval("lambda x: " + expr), x)


@pytest.mark.parametrize("expr", [
    "x[1:, 2:].reshape(1)", "x[1:2, 1:2].reshape(-1)", "x[:1, 2:].reshape(-1)",
    "x[:1, ::-3].reshape(-1)", "x[1:, 2:].reshape(1, 1, 1)", "x[:1, ::-3].T.reshape(-1)",
    "x[1:, 2:].reshape(())", "x[1:2, 1:3].reshape(-1)",
])
def test_reshape_of_a_one_element_slice(expr, rng):
    x = make_input(rng, (2, 3), "float64")
    check(eval("lambda x: " + expr), x)


@pytest.mark.parametrize("fn", [lambda x: x.ravel(), lambda x: np.ravel(x), lambda x: x.flatten(),
                                lambda x: x.T.ravel(), lambda x: (x * x).flatten()[::2],
                                lambda x: x[:, 1::2].ravel() + 1, lambda x: np.ravel(x[::-1].T)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_ravel_flatten(fn, dtype, layout, rng):
    check(fn, arg(rng, (3, 5), dtype, layout))


@pytest.mark.parametrize("fn", [
    lambda x: x.ravel("F"), lambda x: x.flatten("F"), lambda x: np.ravel(x, order="F"),
    lambda x: x.T.ravel("K"), lambda x: x.T.ravel("A"), lambda x: x.T.flatten(order="A"),
    lambda x: x.ravel("C"), lambda x: x.flatten(order="C"), lambda x: x[:, ::-1].ravel("K"),
    lambda x: x.reshape(6, 4, order="F"), lambda x: np.reshape(x.T, -1, order="F"),
    lambda x: x.reshape(np.array([6, 4])), lambda x: np.split(x, 2.0),
])
def test_order_and_unusual_arguments_correct_or_trace_error(fn, rng):
    """order= (and other rarely used spellings) must give NumPy's result or a
    TraceError -- never be silently ignored, never another exception."""
    check_or_trace_error(fn, make_input(rng, (4, 6), "float64"))


def test_replay_with_other_strides(rng):
    """A compiled variant traced on one strided layout is replayed on other strided
    layouts of the same shape: every view must read through the new strides."""
    base = make_input(rng, (12, 9), "float64")
    layouts = [np.ascontiguousarray(base[:4, :6])[:, 1:5], base[::-2, :6][:4, 1:5],
               base[1:5, 2:6].T, base[1:9:2, ::2][:, :4], base[:4, :4].copy()]
    fns = [lambda x: x.reshape(-1), lambda x: x.T.reshape(2, -1), lambda x: x[1:, ::-1] * 2.0,
           lambda x: x.ravel()[::3], lambda x: np.flip(x, 1).reshape(2, 8).sum(axis=1),
           lambda x: np.split(x, 2, axis=1)]
    for fn in fns:
        f = tracejit.compile(fn)
        for x in layouts:
            assert x.shape == (4, 4)
            check(fn, x, exact=False, f=f)


# ------------------------------------------------------------------------- split
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", [
    lambda x: np.split(x, 2), lambda x: np.split(x, 3, axis=1), lambda x: np.split(x, 1, axis=-1),
    lambda x: np.split(x, [1, 3]), lambda x: np.split(x, [2], axis=1),
    lambda x: np.split(x, [1, 10], axis=1), lambda x: np.split(x, [3, 1]),
    lambda x: np.split(x, [], axis=0), lambda x: np.split(x, [0, 0, 4], axis=0),
    lambda x: np.array_split(x, 3), lambda x: np.array_split(x, 4, axis=1),
    lambda x: np.array_split(x, 6), lambda x: np.array_split(x, [1, -1], axis=1),
    lambda x: np.split(x, [-2], axis=1),
])
def test_split(fn, dtype, rng):
    check(fn, make_input(rng, (4, 6), dtype))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_split_consumed(layout, rng):
    x = arg(rng, (6, 4), "float64", layout)
    def halves(x):
        a, b = np.split(x, 2)
        return a * b - b
    check(halves, x)
    def thirds(x):
        a, b, c = np.array_split(x * 2.0, 3, axis=1)
        return a.sum(), b.T + 1.0, c
    check(thirds, x, exact=False)
    check(lambda x: np.split(x.T, [1, 2], axis=1)[1].reshape(-1), x)


# ----------------------------------------------------------------- composed views
def test_composed_views(rng):
    x = make_input(rng, (4, 5, 6), "float64")
    check(lambda x: np.moveaxis(x, 0, -1)[1].reshape(-1, 4)[::-1], x)
    check(lambda x: np.expand_dims(x[::-1, 2], 1).squeeze(1).T[1:], x)
    check(lambda x: np.swapaxes(np.flip(x, 1), 0, 2)[::2, None, ..., -1], x)
    check(lambda x: np.broadcast_to(x[:, :1, :1], (4, 5, 6)) + x.T.transpose(2, 1, 0), x)
    check(lambda x: x.reshape(20, 6)[3:17:3].T.ravel(), x)
    check(lambda x: np.sum(x.transpose(2, 0, 1)[::2].reshape(3, -1), axis=1), x, exact=False)
    check(lambda x: np.fliplr(x[0]) * x[1] + np.flipud(x[2])[::-1], x)


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize("fn,match", [
    (lambda x: x[0, 0, 0, 0], "too many indices for array"),
    (lambda x: x[..., 0, 0, 0, 0], "too many indices for array"),
    (lambda x: x[4], None),
    (lambda x: x[-5], None),
    (lambda x: x[:, 5], None),
    (lambda x: x[1, 2, -7], None),
    (lambda x: x[..., ...], "an index can only have a single ellipsis"),
    (lambda x: (x + 1.0)[0, 5], None),                    # of a computed value
    (lambda x: (x * x)[0, 0, 0, 0], "too many indices for array"),
])
def test_index_errors(fn, match, rng):
    check_raises(fn, make_input(rng, (4, 5, 6), "float64"), match=match)


@pytest.mark.parametrize("fn", [
    lambda x: np.swapaxes(x, 0, 3), lambda x: np.swapaxes(x, -4, 0), lambda x: np.moveaxis(x, 5, 0),
    lambda x: np.moveaxis(x, 0, -4), lambda x: np.expand_dims(x, 4), lambda x: np.expand_dims(x, -5),
    lambda x: np.expand_dims(x, (0, 5)), lambda x: np.squeeze(x[None], axis=4),
    lambda x: np.flip(x, 3), lambda x: np.flip(x, (0, -4)), lambda x: np.transpose(x, (0, 1, 3)),
])
def test_axis_errors(fn, rng):
    x = make_input(rng, (2, 3, 4), "float64")
    with pytest.raises(AxisError) as ref:
        fn(x)
    with pytest.raises(AxisError) as ei:
        tracejit.compile(fn)(x)
    # NumPy may prefix the argument's name ("source: axis 5 is out of bounds ...").
    core = str(ref.value).split(": ")[-1]
    assert str(ei.value).endswith(core), str(ei.value)


@pytest.mark.parametrize("fn", [lambda x: np.split(x, 2, axis=3),
                                lambda x: np.array_split(x, 2, axis=-4)])
def test_split_bad_axis_is_an_index_error(fn, rng):
    x = make_input(rng, (2, 3, 4), "float64")
    with pytest.raises(IndexError):
        fn(x)
    with pytest.raises(IndexError):   # AxisError is an IndexError too
        tracejit.compile(fn)(x)


@pytest.mark.parametrize("fn,match", [
    (lambda x: x.reshape(5, 5), "cannot reshape array of size 24 into shape"),
    (lambda x: x.reshape(-1, 5), "cannot reshape array of size 24 into shape"),
    (lambda x: x[1:].reshape(24), "cannot reshape array of size 12 into shape"),
    (lambda x: x.reshape(-1, -1), "can only specify one unknown dimension"),
    (lambda x: np.squeeze(x, axis=1), "cannot select an axis to squeeze out which has size not equal to one"),
    (lambda x: np.transpose(x, (0, 0, 1)), "repeated axis in transpose"),
    (lambda x: np.transpose(x, (0, 1)), "axes don't match array"),
    (lambda x: np.expand_dims(x, (1, 1)), "repeated axis"),
    (lambda x: np.broadcast_to(x, (3, 4)), ""),
    (lambda x: np.broadcast_to(x, (2, 2, 4)), "operands could not be broadcast together"),
    (lambda x: np.split(x, 5), "array split does not result in an equal division"),
    (lambda x: np.fliplr(x[0, 0]), "Input must be >= 2-d."),
    (lambda x: np.flipud(x[0, 0, 0]), "Input must be >= 1-d."),
    (lambda x: np.array_split(x, 0), "number sections must be larger than 0."),
])
def test_value_errors(fn, match, rng):
    check_raises(fn, make_input(rng, (2, 3, 4), "float64"), match=match)


@pytest.mark.parametrize("fn", [lambda x: x[x > 0], lambda x: (x * 2.0)[x > 1.0],
                                lambda x: x[:, x[0] > 0] + 1.0])
def test_boolean_mask_indexing_is_a_trace_error(fn, rng):
    x = make_input(rng, (3, 4), "float64")
    with pytest.raises(tracejit.TraceError) as ei:
        tracejit.compile(fn)(x)
    assert "np.where" in str(ei.value)


@pytest.mark.parametrize("fn", [
    lambda x: x[[0, 2]], lambda x: x[np.array([0, 1])], lambda x: x[:, [1, 0]],
    lambda x: x[np.array([True, False, True])], lambda x: x[[-1, 0, -1], 1:],
    lambda x: x[np.array([[0], [2]]), np.array([1, 3])],
])
def test_constant_advanced_indexing_correct_or_trace_error(fn, rng):
    """Integer-array (and constant boolean-array) indexing: NumPy's result, or a
    tracejit.TraceError -- never another exception."""
    check_or_trace_error(fn, make_input(rng, (3, 4), "float64"))


def test_an_int_beside_an_integer_array_is_an_advanced_index_as_in_numpy():
    """NumPy counts an int as an advanced index when an array index is present: separated
    from the array by a slice, None or ..., the indexed dims come first; torch selects
    with the int first."""
    x = np.arange(24.0).reshape(2, 3, 4)
    for key in [(0, slice(None), [0, 1]), (0, None, [0, -1, -1]), (1, Ellipsis, [0, 2]),
                (slice(None), 0, [0, 1]), ([1, 0], slice(None), 0),
                (0, slice(None), [[0, 1], [1, 2]])]:
        got = tracejit.compile(lambda a: a[key])(x)
        assert got.shape == x[key].shape, key
        np.testing.assert_array_equal(got, x[key])
    torch = pytest.importorskip("torch")
    t = torch.arange(24.0).reshape(2, 3, 4)
    for key in [(0, slice(None), [0, 1]), (0, None, [0, -1, -1]), (1, Ellipsis, [0, 2])]:
        torch.testing.assert_close(tracejit.compile(lambda a: a[key])(t), t[key])
