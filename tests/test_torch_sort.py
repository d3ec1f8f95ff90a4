"""Sorting (_torch_sort.py) beyond the OpInfo table: NaN ordered as torch orders it,
ties in a stable order (eager's with stable=True; with stable=False torch leaves the
order of equal elements unspecified: the values are eager's, the indices a valid
permutation), errors, several calls with other values."""
import pytest

torch = pytest.importorskip("torch")
import tracejit  # noqa: E402

TIES = torch.tensor([[3.0, 1, 2, 1, 3, float("nan"), 2, float("nan")],
                     [1, 1, 1, 0, 0, 2, 2, -1]])


@pytest.mark.parametrize("descending", [False, True])
def test_nan_and_ties_sort_as_eagers_stable_sort(descending):
    f = lambda x: torch.sort(x, descending=descending, stable=True)   # noqa: E731
    got, want = tracejit.compile(f)(TIES), f(TIES)
    torch.testing.assert_close(got.values, want.values, equal_nan=True)
    assert torch.equal(got.indices, want.indices)


@pytest.mark.parametrize("call", ["torch.sort(x)", "torch.topk(x, 3)",
                                  "torch.topk(x, 3, largest=False)", "torch.kthvalue(x, 4)",
                                  "torch.sort(x, dim=0, descending=True)"])
def test_unstable_orders_give_eagers_values_and_a_valid_permutation(call):
    ns = {"torch": torch}
    exec(f"def fn(x):\n    return {call}\n", ns)
    got, want = tracejit.compile(ns["fn"])(TIES), ns["fn"](TIES)
    torch.testing.assert_close(got[0], want[0], equal_nan=True)
    dim = 0 if "dim=0" in call else -1
    idx = got[1] if got[1].ndim == TIES.ndim else got[1].unsqueeze(dim)
    torch.testing.assert_close(torch.take_along_dim(TIES, idx, dim).squeeze(dim) if
                               got[1].ndim < TIES.ndim else torch.take_along_dim(TIES, idx, dim),
                               got[0], equal_nan=True)


def test_sort_over_calls_and_its_gradient_goes_where_the_values_came_from():
    f = lambda x: (torch.sort(x, dim=1).values * torch.arange(5.0, dtype=x.dtype)).sum()  # noqa
    g = tracejit.grad(tracejit.compile(f))
    for seed in range(3):
        x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        xx = x.clone().requires_grad_()
        want, = torch.autograd.grad(f(xx), xx)
        torch.testing.assert_close(g(x), want)


def test_integer_and_zero_dim_sorts():
    x = torch.tensor([[5, 2, 9], [1, 1, 0]])
    f = lambda x: torch.sort(x, stable=True)      # noqa: E731
    got, want = tracejit.compile(f)(x), f(x)
    assert torch.equal(got.values, want.values) and torch.equal(got.indices, want.indices)
    s = torch.tensor(3.0)
    got, want = tracejit.compile(torch.sort)(s), torch.sort(s)
    assert got.values.shape == want.values.shape == () and got.indices == want.indices == 0


def test_errors():
    with pytest.raises(RuntimeError, match="out of range"):
        tracejit.compile(lambda x: torch.topk(x, 5))(torch.randn(4))
    with pytest.raises(RuntimeError, match="out of range"):
        tracejit.compile(lambda x: torch.kthvalue(x, 0))(torch.randn(4))
    with pytest.raises(tracejit.TraceError, match=r"torch\.sort along a dim of 5000 elements: "
                       r"tracejit sorts by comparing every pair, up to 4096"):
        tracejit.compile(torch.sort)(torch.randn(5000))


def test_a_real_tensors_methods_keep_their_meaning_with_traced_arguments():
    """W.where(c, y) is torch.where(c, W, y); W.unfold is Tensor.unfold, not F.unfold."""
    W = torch.randn(3, 4)
    f = tracejit.compile(lambda c, y: (W.where(c, y), W.unfold(1, 2, 1) * y[0, 0]))
    c, y = torch.rand(3, 4) > 0.5, torch.randn(3, 4)
    for a, b in zip(f(c, y), (W.where(c, y), W.unfold(1, 2, 1) * y[0, 0])):
        torch.testing.assert_close(a, b)
