"""fuse.c's join_groups (adjacent elementwise groups of one loop shape computed in one
loop), the optimizing tier's fused sin and cos (emit_fused.c put_trig_loops: huge
arguments recomputed with libm's values), and simplify's constant-bool rules. Results
against eager NumPy and TinyCC's blocks; the schedule's groups counted."""
import re
import shutil

import numpy as np
import pytest

import tracejit

from conftest import both_tiers

HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang"))


@pytest.fixture
def tier(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path / "cache"))
    yield
    tracejit.set_tier("auto")


def _groups(text):
    return re.findall(r"^  group \d+: loop \[[^\]]*\], (\d+) nodes, \d+ leaves, outs(.*)$",
                      text, re.M)


def _huge(dtype, n=1000):
    """Values with huge arguments (left to libm by the vector reduction) in some chunks
    of 256 and not others, infinities, NaN and signed zeros among ordinary ones."""
    x = np.linspace(-7.0, 7.0, n).astype(dtype)
    big = [1e20, -3e9, 2.0 ** 40, -1e300, 2.0 ** 30, 1e10] if dtype == np.float64 else \
        [1e20, -3e9, 2.0 ** 15, -40000.0, 1e30, 65536.0]
    for k, v in zip((3, 300, 301, 700, 701, 999), big):
        x[k] = v
    x[500], x[501], x[502], x[503] = np.inf, -np.inf, np.nan, -0.0
    return x


def _trig_chain(x, y):
    s, c = np.sin(x * 1.0), np.cos(x)
    return s * y + c, np.where(c > 0, s, y)


@pytest.mark.skipif(not HAVE_CC, reason="no system C compiler")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_tier_fuses_sin_cos_bit_for_bit_with_tcc_and_huge_arguments(dtype, layout, tier):
    x = _huge(dtype, 2000 if layout == "strided" else 1000)
    y = np.linspace(1, 2, x.size).astype(dtype)
    if layout == "strided":
        x, y = x[::2], y[::2]
    r2, r1, f2 = both_tiers(_trig_chain, (x, y))
    assert "tj_trig_huge_bits" in f2.explain(x, y)   # the fused loop notes huge arguments
    with np.errstate(invalid="ignore"):
        want = _trig_chain(x, y)
    for a, b, w in zip(r1, r2, want):
        np.testing.assert_array_equal(b, a)   # NaN where NaN, bit for bit otherwise
        np.testing.assert_allclose(b, w, rtol=4e-7 if dtype == np.float32 else 1e-15,
                                   atol=1e-6 if dtype == np.float32 else 1e-15)
    # the second call with other values: no huge argument at all, then all huge
    for x2 in (np.linspace(-1, 1, x.size).astype(dtype), np.full(x.size, 1e9, dtype)):
        with np.errstate(invalid="ignore"):
            want = _trig_chain(x2, y)
        for a, w in zip(f2(x2, y), want):
            np.testing.assert_allclose(a, w, rtol=4e-6 if dtype == np.float32 else 1e-14,
                                       atol=1e-6 if dtype == np.float32 else 1e-14)


def test_adjacent_elementwise_groups_join_one_loop(rng):
    """Two values each stored for the other output (shared costly terms) and the outputs:
    one loop computes them all, reading each operand once; eager's results."""
    def fn(a, b):
        e = np.exp(a) * b
        t = np.tanh(e + a)
        return e * t + b, e - t * a, t * t
    a, b = rng.standard_normal(4096), rng.standard_normal(4096)
    f = tracejit.compile(fn)
    for _ in range(2):
        for got, want in zip(f(a, b), fn(a, b)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        a, b = b * 0.5, a + 1.0
    groups = _groups(str(f._explain_passes(a, b)))
    assert len(groups) == 1 and groups[0][1].count("->slot") == 3, groups


def test_join_keeps_a_group_reading_a_view_apart(rng):
    def fn(a):
        c = np.exp(a) + a
        return c[::-1] * 2.0 + np.sin(c)
    a = rng.standard_normal(300)
    f = tracejit.compile(fn)
    np.testing.assert_allclose(f(a), fn(a), rtol=1e-13)
    assert len(_groups(str(f._explain_passes(a)))) == 2


def test_join_stops_at_the_loop_size_limit(rng):
    """A chain too long for one loop (more than 256 nodes and leaves) is split, and
    still eager's."""
    def fn(a, b):
        x, y = a, b
        for i in range(90):
            x, y = x * 0.5 + y, y - x * 0.25
        return x, y
    a, b = rng.standard_normal(64), rng.standard_normal(64)
    f = tracejit.compile(fn)
    for got, want in zip(f(a, b), fn(a, b)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    for nodes, _ in _groups(str(f._explain_passes(a, b))):
        assert int(nodes) <= 256


def test_simplify_folds_constant_bool_operands(rng):
    def fn(x, y):
        m = x > 0
        k = (m & np.True_) | np.False_          # -> m
        z = (m & np.False_) | (y > 5)           # -> y > 5
        return np.where(k, x, y), np.where(z, x, -y), np.where(m | np.True_, x, y)
    x, y = rng.standard_normal(50), rng.standard_normal(50) * 4
    f = tracejit.compile(fn)
    for _ in range(2):
        for got, want in zip(f(x, y), fn(x, y)):
            np.testing.assert_array_equal(got, want)
        x, y = y, x
    text = str(f._explain_passes(x, y))
    after = text[text.index("-- simplify"):text.index("-- cse")]
    dce = text[text.index("-- dce"):text.index("-- fuse")]
    assert "BAND" in text[:text.index("-- simplify")]
    assert "BAND" not in dce and "BOR" not in dce, after


@pytest.mark.parametrize("dt", [np.complex64, np.complex128])
def test_complex_chain_is_one_loop_and_numpys(dt, rng):
    """exp(1j * phase) * amp + z * conj(z): the real and imaginary parts in one loop
    (and the two copies into the interleaved result)."""
    rdt = np.float32 if dt == np.complex64 else np.float64

    def chain(phase, amp, z):
        return np.exp(1j * phase) * amp + z * z.conj()
    n = 700
    phase = rng.uniform(-3, 3, n).astype(rdt)
    amp = rng.uniform(0, 2, n).astype(rdt)
    z = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
    phase[5], phase[6], amp[7] = np.inf, 1e12, np.nan
    f = tracejit.compile(chain)
    with np.errstate(invalid="ignore"):
        got, want = f(phase, amp, z), chain(phase, amp, z)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=2e-6 if dt == np.complex64 else 1e-14,
                               atol=1e-6 if dt == np.complex64 else 1e-14)
    inner = f.__dict__["_tj_complex"]
    from tracejit._complex import _CPair
    groups = _groups(str(inner._explain_passes(phase, amp, _CPair(z.real, z.imag, False))))
    assert len(groups) == 3 and groups[0][1].count("->slot") == 2, groups


def test_a_value_stored_for_a_view_and_returned_stays_in_two_groups():
    """b is stored for the transposing view t (a scratch slot) and returned (its output
    array): the group storing it and the output's group write one node to two slots, so
    they are not joined (a joined loop wrote only one of them: t read stale scratch)."""
    def fn(a):
        b = a * 1
        t = b.T
        t[0] = 9
        return b, t + 0
    f = tracejit.compile(fn)
    for k in range(2):
        a = np.arange(12.0).reshape(3, 4) * (k + 1) - 3 * k
        for got, want in zip(f(a), fn(a.copy())):
            np.testing.assert_array_equal(got, want)
