"""Rougier's vectorized boids (From Python to NumPy, code/boid_numpy.py, Flock.run as
the book writes it: np.subtract.outer, np.dstack, ufuncs with out= and where=, a tuple
added in place) compiled with tracejit.compile and compared with eager; and the NumPy
vocabulary it needed, against NumPy."""
import numpy as np
import pytest

import tracejit


class Flock:
    def __init__(self, count=60, width=640, height=360, seed=0):
        rs = np.random.RandomState(seed)
        self.width, self.height = width, height
        self.min_velocity, self.max_velocity, self.max_acceleration = 0.5, 2.0, 0.03
        self.velocity = np.zeros((count, 2), dtype=np.float32)
        self.position = np.zeros((count, 2), dtype=np.float32)
        angle = rs.uniform(0, 2 * np.pi, count)
        self.velocity[:, 0], self.velocity[:, 1] = np.cos(angle), np.sin(angle)
        angle = rs.uniform(0, 2 * np.pi, count)
        radius = min(width, height) / 2 * rs.uniform(0, 1, count)
        self.position[:, 0] = width / 2 + np.cos(angle) * radius
        self.position[:, 1] = height / 2 + np.sin(angle) * radius

    def run(self):
        position, velocity = self.position, self.velocity
        min_velocity, max_velocity = self.min_velocity, self.max_velocity
        max_acceleration = self.max_acceleration
        n = len(position)
        dx = np.subtract.outer(position[:, 0], position[:, 0])
        dy = np.subtract.outer(position[:, 1], position[:, 1])
        distance = np.hypot(dx, dy)
        mask_0 = (distance > 0)
        mask_1 = (distance < 25)
        mask_2 = (distance < 50)
        mask_1 *= mask_0
        mask_2 *= mask_0
        mask_3 = mask_2
        mask_1_count = np.maximum(mask_1.sum(axis=1), 1)
        mask_2_count = np.maximum(mask_2.sum(axis=1), 1)
        mask_3_count = mask_2_count
        mask, count = mask_1, mask_1_count
        target = np.dstack((dx, dy))
        target = np.divide(target, distance.reshape(n, n, 1)**2, out=target,
                           where=distance.reshape(n, n, 1) != 0)
        steer = (target*mask.reshape(n, n, 1)).sum(axis=1)/count.reshape(n, 1)
        norm = np.sqrt((steer*steer).sum(axis=1)).reshape(n, 1)
        steer = max_velocity*np.divide(steer, norm, out=steer, where=norm != 0)
        steer -= velocity
        norm = np.sqrt((steer*steer).sum(axis=1)).reshape(n, 1)
        steer = np.multiply(steer, max_acceleration/norm, out=steer,
                            where=norm > max_acceleration)
        separation = steer
        mask, count = mask_2, mask_2_count
        target = np.dot(mask, velocity)/count.reshape(n, 1)
        norm = np.sqrt((target*target).sum(axis=1)).reshape(n, 1)
        target = max_velocity * np.divide(target, norm, out=target, where=norm != 0)
        steer = target - velocity
        norm = np.sqrt((steer*steer).sum(axis=1)).reshape(n, 1)
        steer = np.multiply(steer, max_acceleration/norm, out=steer,
                            where=norm > max_acceleration)
        alignment = steer
        mask, count = mask_3, mask_3_count
        target = np.dot(mask, position)/count.reshape(n, 1)
        desired = target - position
        norm = np.sqrt((desired*desired).sum(axis=1)).reshape(n, 1)
        desired *= max_velocity / norm
        steer = desired - velocity
        norm = np.sqrt((steer*steer).sum(axis=1)).reshape(n, 1)
        steer = np.multiply(steer, max_acceleration/norm, out=steer,
                            where=norm > max_acceleration)
        cohesion = steer
        acceleration = 1.5 * separation + alignment + cohesion
        velocity += acceleration
        norm = np.sqrt((velocity*velocity).sum(axis=1)).reshape(n, 1)
        velocity = np.multiply(velocity, max_velocity/norm, out=velocity,
                               where=norm > max_velocity)
        velocity = np.multiply(velocity, min_velocity/norm, out=velocity,
                               where=norm < min_velocity)
        position += velocity
        position += (self.width, self.height)
        position %= (self.width, self.height)


def test_boids_step_as_eager():
    eager, mine = Flock(), Flock()
    run = tracejit.compile(Flock.run)
    for step in range(15):
        eager.run()
        run(mine)
        # float32 positions of a few hundred: fused arithmetic rounds a few ulps apart
        np.testing.assert_allclose(mine.position, eager.position, rtol=0, atol=1e-3)
        np.testing.assert_allclose(mine.velocity, eager.velocity, rtol=0, atol=1e-5)
    assert mine.position.dtype == np.float32


@pytest.mark.parametrize("ufunc", [np.subtract, np.multiply, np.hypot, np.greater, np.maximum])
@pytest.mark.parametrize("shapes", [((4,), (3,)), ((2, 3), (5,)), ((), (4,)), ((3,), ())])
def test_ufunc_outer(ufunc, shapes):
    rs = np.random.RandomState(0)
    a, b = np.asarray(rs.randn(*shapes[0])), np.asarray(rs.randn(*shapes[1]), np.float32)
    f = tracejit.compile(lambda a, b: ufunc.outer(a, b))
    for k in range(2):
        want, got = ufunc.outer(a + k, b), f(a + k, b)
        assert got.dtype == want.dtype and got.shape == want.shape
        # hypot: tracejit's own, within an ulp of libm's
        np.testing.assert_allclose(got, want, rtol=4e-16 if ufunc is np.hypot else 0)


@pytest.mark.parametrize("ufunc", [np.add, np.multiply])
@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.int64])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_ufunc_accumulate(ufunc, dtype, axis):
    x = (np.arange(12).reshape(3, 4) % 5 + 1).astype(dtype)
    f = tracejit.compile(lambda x: ufunc.accumulate(x, axis=axis))
    want, got = ufunc.accumulate(x, axis=axis), f(x)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    g = tracejit.compile(lambda x: ufunc.accumulate(x, axis=axis, dtype=np.float64))
    np.testing.assert_array_equal(g(x), ufunc.accumulate(x, axis=axis, dtype=np.float64))


def test_ufunc_accumulate_refusals_name_it():
    with pytest.raises(tracejit.TraceError, match="numpy.maximum.accumulate is supported"):
        tracejit.compile(lambda x: np.maximum.accumulate(x))(np.ones(3))
    with pytest.raises(tracejit.TraceError, match="numpy.add.accumulate is supported"):
        tracejit.compile(lambda x: np.add.accumulate(x))(np.ones(3, bool))


@pytest.mark.parametrize("shapes", [[(3,), (3,)], [(2, 3), (2, 3), (2, 3)], [(2, 3, 2), (2, 3, 1)],
                                    [(), ()]])
def test_dstack(shapes):
    parts = [np.random.RandomState(i).randn(*s) for i, s in enumerate(shapes)]
    f = tracejit.compile(lambda *p: np.dstack(p))
    np.testing.assert_array_equal(f(*parts), np.dstack(parts))


@pytest.mark.parametrize("shapes", [[(3,), (3,)], [(3,), (3, 2)], [(4, 2), (4, 1), (4,)]])
def test_column_stack(shapes):
    parts = [np.random.RandomState(i).randn(*s) for i, s in enumerate(shapes)]
    f = tracejit.compile(lambda *p: np.column_stack(p))
    np.testing.assert_array_equal(f(*parts), np.column_stack(parts))


def test_ufunc_where_with_out_keeps_outs_elements():
    def f(a, b, out):
        r = np.divide(a, b, out=out, where=b != 0)
        return r, out
    a, b = np.arange(6.0), np.array([1.0, 0, 2, 0, 4, 5])
    o1, o2 = np.full(6, -1.0), np.full(6, -1.0)
    want = f(a, b, o1)[0].copy()
    got = tracejit.compile(f)(a, b, o2)[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(o2, o1)
    with pytest.raises(tracejit.TraceError, match="where=.*without out=.*uninitialized"):
        tracejit.compile(lambda a, b: np.divide(a, b, where=b != 0))(a, b)


def test_a_tuple_or_list_operand_is_an_array_to_numpy_operators():
    def f(p):
        p = p + [1.0, 2.0]
        p += (3, 4)
        p %= (5, 7)
        return p
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(tracejit.compile(f)(x), f(x))


def test_a_list_operand_stays_a_type_error_for_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError):
        tracejit.compile(lambda t: t + [1.0, 2.0])(torch.ones(2))
