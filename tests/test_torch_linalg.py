"""torch's linear algebra of small matrices (_torch_linalg.py) beyond the OpInfo table
(tests/torch_samples_linalg.py): what eager refuses at run time is checked at every
call, second derivatives, the size limit, and several calls with other values."""
import pytest

torch = pytest.importorskip("torch")
import tracejit  # noqa: E402

F64 = torch.float64


def _spd(n, seed, batch=()):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch + (n, n), generator=g, dtype=F64)
    return a @ a.mT + n * torch.eye(n, dtype=F64)


def test_cholesky_of_a_matrix_that_is_not_positive_definite_raises_at_that_call():
    f = tracejit.compile(lambda a: torch.linalg.cholesky(a))
    torch.testing.assert_close(f(_spd(3, 0)), torch.linalg.cholesky(_spd(3, 0)))
    bad = _spd(3, 1) - 100 * torch.eye(3, dtype=F64)
    with pytest.raises(torch.linalg.LinAlgError):
        torch.linalg.cholesky(bad)
    with pytest.raises(torch.linalg.LinAlgError, match=r"torch\.linalg\.cholesky's input "
                       r"positive-definite was False(.|\n)*test_torch_linalg\.py:\d+"):
        f(bad)
    torch.testing.assert_close(f(_spd(3, 2)), torch.linalg.cholesky(_spd(3, 2)))


@pytest.mark.parametrize("call", ["torch.linalg.solve(a, b)", "torch.linalg.inv(a)"])
def test_a_singular_matrix_raises_where_eager_raises(call):
    ns = {"torch": torch}
    exec(f"def fn(a, b):\n    return {call}\n", ns)
    f = tracejit.compile(ns["fn"])
    b = torch.randn(3, 2, dtype=F64)
    a = torch.randn(3, 3, dtype=F64)
    torch.testing.assert_close(f(a, b), ns["fn"](a, b))
    singular = torch.tensor([[1.0, 2, 3], [2, 4, 6], [0, 1, 1]], dtype=F64)
    with pytest.raises(torch.linalg.LinAlgError):
        ns["fn"](singular, b)
    with pytest.raises(torch.linalg.LinAlgError, match="input invertible"):
        f(singular, b)


def test_slogdet_of_a_singular_matrix_is_eagers():
    singular = torch.tensor([[1.0, 0, 3], [2, 0, 6], [0, 0, 1]], dtype=F64)
    got = tracejit.compile(torch.linalg.slogdet)(singular)
    want = torch.linalg.slogdet(singular)
    assert got.sign == want.sign == 0 and got.logabsdet == want.logabsdet == -float("inf")
    assert tracejit.compile(torch.logdet)(-torch.eye(3, dtype=F64)).isnan()
    assert tracejit.compile(torch.det)(singular) == 0


def test_many_calls_with_other_values_match_eager():
    def fn(a, b):
        L = torch.linalg.cholesky(a)
        x = torch.cholesky_solve(b, L)
        return x, torch.logdet(a), torch.linalg.solve_triangular(L, b, upper=False)

    f = tracejit.compile(fn)
    for seed in range(5):
        a, b = _spd(4, seed, (2,)), torch.randn(2, 4, 3, dtype=F64)
        for x, y in zip(f(a, b), fn(a, b)):
            torch.testing.assert_close(x, y)
    assert f.cache_info().misses == 1


@pytest.mark.parametrize("name", ["cholesky", "cholesky_solve", "slogdet", "solve_triangular"])
def test_second_derivatives_match_eager(name):
    fns = {
        "cholesky": lambda a: torch.linalg.cholesky(a @ a.mT + 3 * torch.eye(3, dtype=F64)),
        # a triangular L: torch's second derivative for a full one differentiates its own
        # first-derivative formula, not its forward (_torch_linalg.cholesky_solve)
        "cholesky_solve": lambda a: torch.cholesky_solve(a[:, :2],
                                                         a.tril() + 3 * torch.eye(3, dtype=F64)),
        "slogdet": lambda a: torch.linalg.slogdet(a + 3 * torch.eye(3, dtype=F64)).logabsdet,
        "solve_triangular": lambda a: torch.linalg.solve_triangular(
            a + 3 * torch.eye(3, dtype=F64), a, upper=True),
    }
    fn = fns[name]
    loss = lambda a: (fn(a) ** 2).sum()          # noqa: E731
    a = torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    v = torch.randn(3, 3, dtype=F64)

    def hvp(a):                                  # d/da <grad loss(a), v>
        return (tracejit.grad(loss)(a) * v).sum()
    got = tracejit.grad(tracejit.compile(hvp))(a)
    aa = a.clone().requires_grad_()
    g, = torch.autograd.grad(loss(aa), aa, create_graph=True)
    want, = torch.autograd.grad((g * v).sum(), aa)
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-8)


def test_a_matrix_beyond_the_unrolling_limit_is_refused_naming_it():
    f = tracejit.compile(lambda a: torch.linalg.cholesky(a))
    with pytest.raises(tracejit.TraceError, match=r"linalg\.cholesky of 65x65 matrices: tracejit "
                       r"unrolls its factorization over n at trace time, up to n = 64"):
        f(_spd(65, 0))


def test_shape_and_dtype_errors_are_eagers_kind():
    with pytest.raises(RuntimeError, match="square"):
        tracejit.compile(torch.linalg.cholesky)(torch.ones(2, 3))
    with pytest.raises(RuntimeError, match="Incompatible shapes"):
        tracejit.compile(lambda a, b: torch.linalg.solve_triangular(a, b, upper=False))(
            torch.eye(3), torch.ones(4, 2))
    with pytest.raises(RuntimeError, match="same dtype"):
        tracejit.compile(lambda a, b: torch.linalg.solve_triangular(a, b, upper=False))(
            torch.eye(3), torch.ones(3, 2, dtype=F64))


def test_a_nan_in_the_triangle_eager_ignores_stays_ignored():
    a, b = _spd(3, 0), torch.randn(3, 2, dtype=F64)
    a_bad = a.clone()
    a_bad[0, 2] = float("nan")                  # above the diagonal: LAPACK reads below
    torch.testing.assert_close(tracejit.compile(torch.linalg.cholesky)(a_bad),
                               torch.linalg.cholesky(a_bad))
    L = torch.linalg.cholesky(a)
    L[0, 1] = float("inf")
    f = tracejit.compile(lambda b, L: torch.cholesky_solve(b, L))
    torch.testing.assert_close(f(b, L), torch.cholesky_solve(b, L))
    t = tracejit.compile(lambda L, b: torch.linalg.solve_triangular(L, b, upper=False))
    torch.testing.assert_close(t(L, b), torch.linalg.solve_triangular(L, b, upper=False))
