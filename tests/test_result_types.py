"""A compiled function returns what NumPy returns, down to the type: a NumPy scalar
(np.float64, np.int64, np.bool) where eager NumPy gives one, a 0-d array where eager
gives a 0-d array. NumPy's rule: ufuncs, operators and reductions give scalars for 0-d
results, and so do integer indexing, np.take and the vector products (dot, matmul,
inner, vdot, einsum); views, np.where, np.full, np.pad, np.roll, tensordot and a 0-d
array written in place are arrays; transpose, squeeze and astype keep what they got.
Each case is compared with the type() of NumPy's eager result, on the trace and on the
replay. torch keeps its 0-d tensors (tests/test_torch.py)."""
import numpy as np
import pytest

import tracejit
from conftest import assert_matches_numpy

V = np.linspace(0.1, 1.0, 5)
M = np.arange(6.0).reshape(2, 3)
Z = np.array(0.5)          # a 0-d array argument
ZI = np.array(3)
B = np.array(True)


def _in_place(b, z):
    w = np.where(b, z, 1.0)   # a fresh 0-d array: `+=` writes into it, it stays one
    w += 1.0
    return w


def _scalar_in_place(v):
    s = np.sum(v)             # a NumPy scalar: `+=` rebinds it
    s += 1.0
    return s


CASES = {
    # reductions
    "np.sum(v)": (lambda v: np.sum(v), V),
    "v.sum()": (lambda v: v.sum(), V),
    "np.sum(m)": (lambda m: np.sum(m), M),
    "np.sum(m, axis=(0, 1))": (lambda m: np.sum(m, axis=(0, 1)), M),
    "np.sum(v, axis=0)": (lambda v: np.sum(v, axis=0), V),
    "np.sum(v, keepdims=True)": (lambda v: np.sum(v, keepdims=True), V),
    "np.mean(m, keepdims=True)": (lambda m: np.mean(m, axis=(0, 1), keepdims=True), M),
    "np.sum(z, keepdims=True)": (lambda z: np.sum(z, keepdims=True), Z),
    "np.sum(z)": (lambda z: np.sum(z), Z),
    "np.sum(v, dtype=float32)": (lambda v: np.sum(v, dtype=np.float32), V),
    "np.mean(v)": (lambda v: np.mean(v), V),
    "np.var(v)": (lambda v: np.var(v), V),
    "v.std()": (lambda v: v.std(), V),
    "np.max(v)": (lambda v: np.max(v), V),
    "np.prod(v)": (lambda v: np.prod(v), V),
    "np.argmax(v)": (lambda v: np.argmax(v), V),
    "v.argmin()": (lambda v: v.argmin(), V),
    "np.any(v > 0.5)": (lambda v: np.any(v > 0.5), V),
    "np.add.reduce(v)": (lambda v: np.add.reduce(v), V),
    "np.linalg.norm(v)": (lambda v: np.linalg.norm(v), V),
    "np.sum(vi)": (lambda v: np.sum(v), np.arange(5)),
    # indexing
    "m[0, 0]": (lambda m: m[0, 0], M),
    "m[0][1]": (lambda m: m[0][1], M),
    "v[-1]": (lambda v: v[-1], V),
    "v[..., 0]": (lambda v: v[..., 0], V),
    "z[()]": (lambda z: z[()], Z),
    "z[...]": (lambda z: z[...], Z),
    "np.take(v, 0)": (lambda v: np.take(v, 0), V),
    "np.cumsum(v)[-1]": (lambda v: np.cumsum(v)[-1], V),
    # arithmetic and ufuncs on 0-d arrays
    "z": (lambda z: z, Z),
    "z + 1": (lambda z: z + 1, Z),
    "z * z": (lambda z: z * z, Z),
    "-z": (lambda z: -z, Z),
    "abs(z)": (lambda z: abs(z), Z),
    "z > 0": (lambda z: z > 0, Z),
    "np.exp(z)": (lambda z: np.exp(z), Z),
    "np.maximum(z, 0)": (lambda z: np.maximum(z, 0), Z),
    "np.clip(z, 0, 1)": (lambda z: np.clip(z, 0, 1), Z),
    "np.isnan(z)": (lambda z: np.isnan(z), Z),
    "np.nan_to_num(z)": (lambda z: np.nan_to_num(z), Z),
    "zi // 2": (lambda z: z // 2, ZI),
    "zi + 1.5": (lambda z: z + 1.5, ZI),
    "~b": (lambda b: ~b, B),
    "np.sqrt(np.sum(v))": (lambda v: np.sqrt(np.sum(v)), V),
    # products
    "v @ v": (lambda v: v @ v, V),
    "np.matmul(v, v)": (lambda v: np.matmul(v, v), V),
    "np.dot(v, v)": (lambda v: np.dot(v, v), V),
    "v.dot(v)": (lambda v: v.dot(v), V),
    "np.vdot(v, v)": (lambda v: np.vdot(v, v), V),
    "np.inner(v, v)": (lambda v: np.inner(v, v), V),
    "np.einsum('i,i->', v, v)": (lambda v: np.einsum("i,i->", v, v), V),
    "np.einsum('ij->', m)": (lambda m: np.einsum("ij->", m), M),
    "np.tensordot(v, v, 1)": (lambda v: np.tensordot(v, v, 1), V),
    "(v @ v).T": (lambda v: (v @ v).T, V),
    # functions that make arrays
    "np.where(b, z, 1.0)": (lambda z: np.where(B, z, 1.0), Z),
    "np.zeros_like(z)": (lambda z: np.zeros_like(z), Z),
    "np.full_like(z, 2)": (lambda z: np.full_like(z, 2), Z),
    "np.broadcast_to(z, ())": (lambda z: np.broadcast_to(z, ()), Z),
    "np.pad(z, 1)": (lambda z: np.pad(z, 1), Z),
    "np.pad(m[0, 0], 2)": (lambda m: np.pad(m[0, 0], 2), M),
    "np.roll(v[0], 1)": (lambda v: np.roll(v[0], 1), V),
    "np.flip(z)": (lambda z: np.flip(z), Z),
    "v[:1].reshape(())": (lambda v: v[:1].reshape(()), V),
    "np.squeeze(v[:1])": (lambda v: np.squeeze(v[:1]), V),
    "np.sum(v)[...]": (lambda v: np.sum(v)[...], V),
    # transpose, squeeze, astype: a scalar stays one, an array stays one
    "np.sum(v).T": (lambda v: np.sum(v).T, V),
    "np.transpose(np.sum(v))": (lambda v: np.transpose(np.sum(v)), V),
    "np.squeeze(np.sum(v))": (lambda v: np.squeeze(np.sum(v)), V),
    "np.sum(v).reshape(())": (lambda v: np.sum(v).reshape(()), V),
    "np.sum(v).astype(float32)": (lambda v: np.sum(v).astype(np.float32), V),
    "np.astype(v[0], float32)": (lambda v: np.astype(v[0], np.float32), V),
    "z.T": (lambda z: z.T, Z),
    "np.squeeze(z)": (lambda z: np.squeeze(z), Z),
    "z.astype(float32)": (lambda z: z.astype(np.float32), Z),
    "z.astype(float64)": (lambda z: z.astype(np.float64), Z),
    "np.where(b, z, 1.0).T": (lambda z: np.where(B, z, 1.0).T, Z),
    "np.sum(v)[...].T": (lambda v: np.sum(v)[...].T, V),
    # in place
    "w = np.where(...); w += 1": (lambda z: _in_place(B, z), Z),
    "s = np.sum(v); s += 1": (_scalar_in_place, V),
    # structures
    "(v.sum(), v * 2, v.max())": (lambda v: (v.sum(), v * 2, v.max()), V),
    "{'s': v.sum(), 'a': v}": (lambda v: {"s": v.sum(), "a": v}, V),
    "[m[0, 0], m[1]]": (lambda m: [m[0, 0], m[1]], M),
}


def _types(x):
    if isinstance(x, (tuple, list)):
        return type(x), [_types(v) for v in x]
    if isinstance(x, dict):
        return {k: _types(v) for k, v in x.items()}
    return type(x)


def _leaves(x):
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    if isinstance(x, dict):
        return [leaf for v in x.values() for leaf in _leaves(v)]
    return [x]


@pytest.mark.parametrize("name", list(CASES))
def test_result_type_is_numpys(name):
    fn, arg = CASES[name]
    expected = fn(arg.copy())
    f = tracejit.compile(fn)
    for _ in range(2):          # the trace's result, then the replay's
        got = f(arg)
        assert _types(got) == _types(expected), (got, expected)
        for g, e in zip(_leaves(got), _leaves(expected)):
            assert_matches_numpy(g, e, exact=False, inputs=[arg])


def test_a_0d_argument_written_in_place_is_the_callers_array():
    """A 0-d argument is an array: `+=` writes the caller's array and returns it."""
    def f(z):
        z += 1.0
        return z

    z = np.array(0.5)
    r = tracejit.compile(f)(z)
    assert r is z and z == 1.5


@pytest.mark.parametrize("arg", [3.0, np.array(3.0), np.float64(3.0)], ids=type)
def test_a_gradient_has_its_arguments_shape_and_the_value_numpys_type(arg):
    """The value is what the function returns (np.sum: a NumPy scalar); a 0-d
    argument's gradient is a 0-d array, as jax's, whatever made it."""
    vg = tracejit.value_and_grad(lambda x: np.sum(x * x))
    g = tracejit.grad(lambda x, y: x * y, argnums=(0, 1))
    for _ in range(2):
        value, grad = vg(arg)
        assert type(value) is np.float64 and value == 9.0
        assert type(grad) is np.ndarray and grad.shape == () and grad == 6.0
        gx, gy = g(arg, 2.0)
        assert type(gx) is type(gy) is np.ndarray and (gx, gy) == (2.0, 3.0)


PY_CASES = {
    "s": lambda s, v: s,
    "s * 2": lambda s, v: s * 2,
    "-s": lambda s, v: -s,
    "s ** 2": lambda s, v: s ** 2,
    "s / 2": lambda s, v: s / 2,
    "s // 2": lambda s, v: s // 2,
    "s + 1 - 2 * s": lambda s, v: s + 1 - 2 * s,
    "np.exp(s)": lambda s, v: np.exp(s),                 # a NumPy function: np.float64
    "s + np.float64(1)": lambda s, v: s + np.float64(1),
    "s * v[0]": lambda s, v: s * v[0],
    "abs(s) + v.sum()": lambda s, v: abs(s) + v.sum(),
    "np.sum(v) * s": lambda s, v: np.sum(v) * s,
    "np.pad(s, 1)": lambda s, v: np.pad(s, 1),          # arrays of a scalar argument
    "np.transpose(s)": lambda s, v: np.transpose(s),    # np.float64 keeps, float: array
    "np.squeeze(s * 2)": lambda s, v: np.squeeze(s * 2),
    "np.where(v[0] > 0, s, s)": lambda s, v: np.where(v[0] > 0, s, s),
}


@pytest.mark.parametrize("arg", [1.5, 3, np.float64(1.5), np.int32(2)], ids=repr)
@pytest.mark.parametrize("name", list(PY_CASES))
def test_python_numbers_stay_python_numbers(name, arg):
    """A Python int or float argument is a Python number in eager, and so is what
    Python's own operators make of such numbers; NumPy scalars and NumPy functions
    make NumPy scalars (and NumPy's array functions arrays)."""
    fn = PY_CASES[name]
    v = np.linspace(0.5, 1.0, 3)
    expected = fn(arg, v)
    f = tracejit.compile(lambda s, v: (fn(s, v), v))
    for _ in range(2):
        got = f(arg, v)[0]
        assert type(got) is type(expected) and got == expected, (got, expected)
