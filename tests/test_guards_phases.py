"""Value guards compared before the work that depends on them (issue 19, deliverable 2):
fuse cuts a guarded graph into phases (what guard k's value needs, then the rest), the
replay compares each guard once its phase ran and stops the kernel at the first that
fails, so a variant whose guard fails pays only for its guards' work and never runs
what follows (a gather out of range under the other branch, a division, a write).
CompiledFunction._groups_ran: per variant (most recently used first), the groups its
latest replay ran, its groups, and the groups before each value guard's comparison."""
import numpy as np
import pytest

import tracejit


def _gather_if_in_range(x, idx):
    if idx.max() < x.shape[0]:
        return np.exp(x[idx]) * 2.0
    return x[:3] * 0.0


def test_a_failing_guard_stops_before_the_gather_the_other_branch_needs():
    f = tracejit.compile(_gather_if_in_range)
    x = np.linspace(-1.0, 1.0, 50)
    good, bad = np.array([3, 49, 0]), np.array([3, 50, 70])
    for idx in (good, bad, good, bad, bad, good):
        np.testing.assert_allclose(f(x, idx), _gather_if_in_range(x, idx), rtol=1e-14)
    # the last call took `good`: the `bad` variant (the most recent until then, tried
    # first) stopped at its guard, before its rest; `good`'s ran everything
    (ran_good, n_good, ends_good), (ran_bad, n_bad, ends_bad) = f._groups_ran
    assert len(ends_bad) == len(ends_good) == 1
    assert ran_good == n_good and ends_good[0] < n_good
    assert ran_bad == ends_bad[0]
    assert f.cache_info().variants == 2


def _heavy_after_branch(x, w):
    s = x.sum()
    if s > 0:
        return np.tanh(x @ w) / s
    return -x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_the_failing_variant_skips_the_dependent_work(dtype, layout):
    f = tracejit.compile(_heavy_after_branch)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 40)).astype(dtype)
    x = np.abs(rng.standard_normal((40, 40))).astype(dtype)
    if layout == "transposed":
        x = x.T
    for v in (x, -x, x, -x):
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(f(v, w), _heavy_after_branch(v, w), rtol=tol, atol=tol * 1e-2)
    (ran_neg, n_neg, ends_neg), (ran_pos, n_pos, ends_pos) = f._groups_ran
    # the last call (-x) went through the `s > 0` variant first: it ran only the sum
    assert ran_pos == ends_pos[0] < n_pos
    assert ran_neg == n_neg


def _two_guards(x):
    a = x.sum()
    if a > 0:
        b = np.exp(x).max()
        if b > 10.0:
            return x * b
        return x + b
    return -x


def test_each_guard_is_compared_after_its_own_phase():
    f = tracejit.compile(_two_guards)
    big, small, neg = np.array([1.0, 3.0]), np.array([0.5, 1.0]), np.array([-1.0, -2.0])
    for v in (big, small, neg):
        np.testing.assert_allclose(f(v), _two_guards(v), rtol=1e-14)
    assert f.cache_info().variants == 3
    (ran_neg, n_neg, _), (ran_small, _, ends_small), _ = f._groups_ran   # most recent first
    assert ran_neg == n_neg
    assert ran_small == ends_small[0]   # the neg call tried it first: a > 0 failed
    # big: neg's variant fails its first guard, small's passes it and fails the second
    np.testing.assert_allclose(f(big), _two_guards(big), rtol=1e-14)
    (ran_big, n_big, _), (ran_neg, _, ends_neg), (ran_small, n_small, ends_small) = \
        f._groups_ran
    assert ran_big == n_big
    assert ran_neg == ends_neg[0]
    assert ends_small[0] < ends_small[1] < n_small
    assert ran_small == ends_small[1]


def _write_if_positive(x, out):
    if x.sum() > 0:
        out[:] = 1.0 / x
    return x.max()


def test_a_failing_guard_writes_nothing_and_divides_nothing():
    f = tracejit.compile(_write_if_positive)
    x = np.array([1.0, 2.0, 4.0])
    out_c, out_e = np.zeros(3), np.zeros(3)
    for v in (x, -x, np.zeros(3), x * 2, -x):
        with np.errstate(divide="ignore"):
            r_e = _write_if_positive(v, out_e)
        r_c = f(v, out_c)
        assert r_c == r_e
        np.testing.assert_array_equal(out_c, out_e)


def test_a_check_after_a_guard_still_raises_eagers_error():
    torch = pytest.importorskip("torch")

    def g(x):
        if x.sum() > 0:
            d = torch.distributions.Normal(torch.zeros_like(x), x, validate_args=True)
            return d.log_prob(x)
        return x

    f = tracejit.compile(g)
    x = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(f(x), g(x))
    torch.testing.assert_close(f(-x), g(-x))
    bad = torch.tensor([3.0, -0.5])   # positive sum, a negative scale: the check fails
    with pytest.raises(ValueError) as eager:
        g(bad)
    with pytest.raises(ValueError) as compiled:
        f(bad)
    assert type(compiled.value) is type(eager.value)


@pytest.mark.parametrize("seed", range(6))
def test_random_guarded_programs_with_phases_match_eager(seed):
    """Chains of branches on reductions of intermediate values, each branch doing work
    of its own (divisions, gathers by data), over random inputs: every call matches
    eager, whichever variant it reaches and wherever the kernel stopped."""
    rng = np.random.default_rng(seed)
    n_steps = int(rng.integers(2, 5))
    thresholds = rng.standard_normal(n_steps)

    def prog(x, idx):
        y = x
        for k in range(n_steps):
            if (y * y).sum() - y.sum() > thresholds[k]:
                y = np.sin(y)[idx % y.shape[0]] / (1.0 + y.max() ** 2)
            else:
                y = y[::-1] * 0.5 + k
        return y

    f = tracejit.compile(prog, max_variants=64)
    for _ in range(20):
        x = rng.standard_normal(8)
        idx = rng.integers(0, 8, size=8)
        np.testing.assert_allclose(f(x, idx), prog(x, idx), rtol=1e-12, atol=1e-12)
        for ran, n, ends in f._groups_ran:
            assert ran == n or ran in ends
