"""Programs of Rougier's "From Python to NumPy" (code/game_of_life_numpy.py,
code/gray_scott.py), as the book writes them, compiled with tracejit.compile and
compared with eager step by step: the game of life updates its global arrays in place
(`Z[...] = 0`, a masked write into a view, `M *= 0.995`); Gray-Scott updates the
interiors of U and V through views, also where the book captures U and its interior
view u as two globals sharing memory (u is traced as a view of U's captured leaf)."""
import numpy as np
import pytest

import tracejit

GAME_OF_LIFE = '''
def update(*args):
    global Z, M

    N = (Z[0:-2, 0:-2] + Z[0:-2, 1:-1] + Z[0:-2, 2:] +
         Z[1:-1, 0:-2]                 + Z[1:-1, 2:] +
         Z[2:  , 0:-2] + Z[2:  , 1:-1] + Z[2:  , 2:])
    birth = (N == 3) & (Z[1:-1, 1:-1] == 0)
    survive = ((N == 2) | (N == 3)) & (Z[1:-1, 1:-1] == 1)
    Z[...] = 0
    Z[1:-1, 1:-1][birth | survive] = 1

    M[M>0.25] = 0.25
    M *= 0.995
    M[Z==1] = 1
'''

GRAY_SCOTT_GLOBALS = '''
import numpy as np
n = 24
Du, Dv, F, k = 0.16, 0.08, 0.035, 0.065
Z = np.zeros((n+2, n+2), [('U', np.double), ('V', np.double)])
U, V = Z['U'], Z['V']
u, v = U[1:-1, 1:-1], V[1:-1, 1:-1]
u[...] = 1.0

def update(frame):
    global U, V, u, v, im
    for i in range(10):
        Lu = (                  U[0:-2, 1:-1] +
              U[1:-1, 0:-2] - 4*U[1:-1, 1:-1] + U[1:-1, 2:] +
                                U[2:  , 1:-1])
        Lv = (                  V[0:-2, 1:-1] +
              V[1:-1, 0:-2] - 4*V[1:-1, 1:-1] + V[1:-1, 2:] +
                                V[2:  , 1:-1])
        uvv = u*v*v
        u += (Du*Lu - uvv + F*(1-u))
        v += (Dv*Lv + uvv - (F+k)*v)
'''


def _module(src, **env):
    ns = dict(env)
    exec(compile(src, "<the book's code>", "exec"), ns)
    return ns


@pytest.mark.parametrize("shape,dtype", [((30, 40), np.int64), ((17, 9), np.int32)])
def test_game_of_life_updates_its_globals_as_eager(shape, dtype):
    Z0 = np.random.RandomState(1).randint(0, 2, shape).astype(dtype)
    eager = _module(GAME_OF_LIFE, Z=Z0.copy(), M=np.zeros(shape))
    mine = _module(GAME_OF_LIFE, Z=Z0.copy(), M=np.zeros(shape))
    update = tracejit.compile(mine["update"])
    for step in range(25):
        eager["update"]()
        update()
        np.testing.assert_array_equal(mine["Z"], eager["Z"], err_msg=f"step {step}")
        np.testing.assert_array_equal(mine["M"], eager["M"], err_msg=f"step {step}")
    assert mine["Z"].dtype == dtype


def _gray_scott(U, V, Du=0.16, Dv=0.08, F=0.035, k=0.065):
    """The book's update with U and V as arguments and u, v taken inside."""
    u, v = U[1:-1, 1:-1], V[1:-1, 1:-1]
    for i in range(10):
        Lu = (U[0:-2, 1:-1] + U[1:-1, 0:-2] - 4*U[1:-1, 1:-1] + U[1:-1, 2:] + U[2:, 1:-1])
        Lv = (V[0:-2, 1:-1] + V[1:-1, 0:-2] - 4*V[1:-1, 1:-1] + V[1:-1, 2:] + V[2:, 1:-1])
        uvv = u*v*v
        u += (Du*Lu - uvv + F*(1-u))
        v += (Dv*Lv + uvv - (F+k)*v)


@pytest.mark.parametrize("n", [16, 33])
def test_gray_scott_through_interior_views_as_eager(n):
    rs = np.random.RandomState(n)
    U, V = np.zeros((n + 2, n + 2)), np.zeros((n + 2, n + 2))
    U[1:-1, 1:-1] = 1 + 0.05 * rs.uniform(-1, 1, (n, n))
    V[n // 2 - 4:n // 2 + 4, n // 2 - 4:n // 2 + 4] = 0.25
    mine = U.copy(), V.copy()
    update = tracejit.compile(_gray_scott)
    for frame in range(6):
        _gray_scott(U, V)
        update(*mine)
        np.testing.assert_array_equal(mine[0], U)
        np.testing.assert_array_equal(mine[1], V)
    update(*mine, F=0.04)                 # another constant: a new variant, not a stale one
    _gray_scott(U, V, F=0.04)
    np.testing.assert_array_equal(mine[1], V)


@pytest.mark.parametrize("n", [24, 9])
def test_gray_scott_with_globals_that_share_memory_as_eager(n):
    """The book's globals as it writes them: U and V fields of one structured array
    (interleaved, no element in common), u and v their interiors: u stands in as a view
    of U's captured leaf, so writes through u are seen through U as in eager."""
    eager = _module(GRAY_SCOTT_GLOBALS.replace("n = 24", f"n = {n}"))
    mine = _module(GRAY_SCOTT_GLOBALS.replace("n = 24", f"n = {n}"))
    for ns in (eager, mine):
        ns["V"][n // 2 - 3:n // 2 + 3, n // 2 - 3:n // 2 + 3] = 0.25
        ns["u"] += 0.05 * np.random.RandomState(n).uniform(-1, 1, (n, n))
    update = tracejit.compile(mine["update"])
    for frame in range(5):
        eager["update"](frame)
        update(frame)
        np.testing.assert_array_equal(mine["Z"], eager["Z"], err_msg=f"frame {frame}")
    assert not np.array_equal(mine["Z"]["V"], np.zeros_like(mine["Z"]["V"]))
    assert np.shares_memory(mine["u"], mine["U"])   # still the caller's views
