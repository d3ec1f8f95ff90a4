"""The per-call route of tracejit._torch_autograd (csrc/ad/torch_route.c): the scan that
keys the compiled variants by the call's pattern, the fused node's forward, and the
backward's handling of the cotangent (1, scaled, retained, accumulated)."""
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import tracejit  # noqa: E402
from tracejit import _C, _torch_autograd  # noqa: E402


def loss(p, X, y):
    h = np.tanh(X @ p["W1"] + p["b1"])
    return np.mean((h @ p["W2"] + p["b2"] - y) ** 2)


def torch_loss(p, X, y):
    h = torch.tanh(X @ p["W1"] + p["b1"])
    return torch.mean((h @ p["W2"] + p["b2"] - y) ** 2)


def params(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = {"W1": (5, 7), "b1": (7,), "W2": (7, 3), "b2": (3,)}
    return {k: (0.5 * torch.randn(*s, generator=g, dtype=dtype)).requires_grad_()
            for k, s in shapes.items()}


def data(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(11, 5, generator=g, dtype=dtype),
            torch.randn(11, 3, generator=g, dtype=dtype))


def eager_grads(p, X, y, scale=1.0):
    q = {k: v.detach().clone().requires_grad_() for k, v in p.items()}
    (scale * torch_loss(q, X, y)).backward()
    return {k: v.grad for k, v in q.items()}


def close(a, b, dtype=torch.float64):
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("how", ["mul", "gradient", "neg", "zero"])
def test_a_cotangent_other_than_one_scales_the_gradients(dtype, how):
    f = tracejit.compile(loss)
    p = params(dtype)
    X, y = data(dtype)
    scale = {"mul": 2.5, "gradient": 0.25, "neg": -1.0, "zero": 0.0}[how]
    value = f(p, X, y)
    if how == "gradient":
        value.backward(torch.tensor(scale, dtype=dtype))
    else:
        (value * scale).backward()
    want = eager_grads(p, X, y, scale)
    for k in p:
        close(p[k].grad, want[k], dtype)


def test_unit_cotangent_of_another_dtype_and_shape_one():
    f = tracejit.compile(lambda w: np.sum(w ** 3))
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    f(w).to(torch.float32).backward()                 # a float32 cotangent of 1
    close(w.grad, 3 * w.detach() ** 2)
    w.grad = None
    f(w).reshape(1, 1).backward(torch.full((1, 1), 3.0))   # reshaped: scaled by 3
    close(w.grad, 9 * w.detach() ** 2)


def test_grad_accumulates_into_an_existing_grad_and_over_summed_losses():
    f = tracejit.compile(loss)
    g = tracejit.compile(lambda p, X: np.sum(p["W1"] ** 2) + np.sum(X) * 0.0)
    p = params()
    X, y = data()
    for v in p.values():
        v.grad = torch.ones_like(v)
    f(p, X, y).backward()                             # onto the existing .grad
    want = eager_grads(p, X, y)
    for k in p:
        close(p[k].grad, want[k] + 1.0)
        p[k].grad = None
    (f(p, X, y) + 3.0 * f(p, X, y) + g(p, X)).backward()   # two nodes of f, one of g
    for k in p:
        extra = 2 * p[k].detach() if k == "W1" else 0.0
        close(p[k].grad, 4.0 * want[k] + extra)


def test_retain_graph_second_backward_recomputes_and_scales():
    f = tracejit.compile(loss)
    p = params()
    X, y = data()
    value = f(p, X, y)
    value.backward(retain_graph=True)
    value.backward(torch.tensor(3.0, dtype=torch.float64))   # gradients handed over: again
    want = eager_grads(p, X, y)
    for k in p:
        close(p[k].grad, 4.0 * want[k])
    for v in p.values():
        v.grad = None
    v2 = f(p, X, y)     # nothing saved that a backward frees: a second one (without
    v2.backward()       # retain_graph) recomputes the gradients, as the first did
    v2.backward()
    for k in p:
        close(p[k].grad, 2.0 * want[k])


def test_gradients_are_fresh_tensors_per_call():
    f = tracejit.compile(loss)
    p = params()
    X, y = data()
    f(p, X, y).backward()
    first = {k: v.grad for k, v in p.items()}
    for v in p.values():
        v.grad = None
    f(p, X, y).backward()
    for k, v in p.items():
        assert v.grad is not first[k] and v.grad.data_ptr() != first[k].data_ptr()
        close(v.grad, first[k])


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_no_grad_and_inference_mode_take_the_plain_replay(mode):
    f = tracejit.compile(loss)
    p = params()
    X, y = data()
    with getattr(torch, mode)():
        v = f(p, X, y)
    assert not v.requires_grad and v.grad_fn is None
    close(v, torch_loss({k: t.detach() for k, t in p.items()}, X, y))
    assert all(t.grad is None for t in p.values())


def test_the_pattern_keys_the_variants():
    """Leaf order, which leaves require grad, dict key order, containers and kwargs:
    each pattern gets its own variant, and the gradients land on the right tensors."""
    f = tracejit.compile(lambda d, t, *, k: np.sum(d["a"] * 2.0 + d["b"] ** 2) * t[0] + k[1])
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.0, -1.0], dtype=torch.float64, requires_grad=True)
    t0 = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    k = (0.0, torch.tensor(5.0, dtype=torch.float64))
    cases = [({"a": a, "b": b}, [t0]), ({"b": b, "a": a}, [t0]),        # key order
             ({"a": a, "b": b.detach()}, (t0,)),                         # b now a constant
             ({"b": b, "a": a}, [t0.detach()])]                          # t0 a constant
    for d, t in cases:
        for v in (a, b, t0):
            v.grad = None
        f(d, t, k=k).backward()
        tv = t[0].detach().item()
        close(a.grad, torch.full((2,), 2.0 * tv, dtype=torch.float64))
        if d["b"].requires_grad:
            close(b.grad, 2 * b.detach() * tv)
        else:
            assert b.grad is None
        if t[0].requires_grad:
            close(t0.grad, torch.sum(a.detach() * 2.0 + b.detach() ** 2))
        else:
            assert t0.grad is None


def test_ordered_dict_leaves_follow_its_order():
    f = _torch_autograd.function(lambda d: np.sum(d["x"]) * 3.0 + np.sum(d["y"]))
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    y = torch.ones(3, dtype=torch.float64, requires_grad=True)
    d = OrderedDict([("x", x), ("y", y)])
    d.move_to_end("x")                    # iteration order y, x (not insertion order)
    f(d).backward()
    close(x.grad, torch.full((2,), 3.0, dtype=torch.float64))
    close(y.grad, torch.ones(3, dtype=torch.float64))


def test_a_static_argument_that_is_not_hashable():
    f = _torch_autograd.function(lambda x, mode: np.sum(x) * len(mode), static_argnames=("mode",))
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    f(x, mode=(1, 2)).backward()
    close(x.grad, torch.full((2,), 2.0, dtype=torch.float64))
    with pytest.raises(TypeError, match="tracejit autograd: a static argument is not hashable"):
        f(x, mode=[1, 2])


def test_tensors_off_the_cpu_are_refused_on_the_compile_route():
    a = torch.empty(3, device="meta", requires_grad=True)
    f = tracejit.compile(lambda a, b: np.sum(a * b))
    b = torch.ones(3, requires_grad=True)
    with pytest.raises(TypeError, match="tracejit autograd: tensors must be on the CPU or a CUDA GPU, got meta"):
        _torch_autograd.call(f, (b, a), {})


def test_ag_scan_sorts_the_leaves_and_keys_the_pattern():
    a = torch.ones(2, requires_grad=True)
    c = torch.ones(2)
    i = torch.tensor([1, 2])
    h = torch.ones(2, dtype=torch.float16).requires_grad_()   # not float32/64: a constant
    entries = {}
    args = ({"p": a, "q": [c, 2.0]}, i, (h,))
    entry, key, diff, other = _C._ag_scan(entries, args, {"s": a}, _torch_autograd._STATIC)
    assert entry is None and diff == [a, a]
    assert len(other) == 4 and other[0] is c and other[1] == 2.0 and other[2] is i
    assert other[3] is h
    entries[key] = "E"
    assert _C._ag_scan(entries, args, {"s": a}, _torch_autograd._STATIC)[0] == "E"
    for changed in [({"q": [c, 2.0], "p": a}, i, (h,)),     # dict key order
                    ({"p": c, "q": [c, 2.0]}, i, (h,)),     # a leaf without grad
                    ({"p": a, "q": (c, 2.0)}, i, (h,)),     # list -> tuple
                    ({"p": a, "q": [c, 2.0, 1]}, i, (h,))]:  # one more leaf
        assert _C._ag_scan(entries, changed, {"s": a}, _torch_autograd._STATIC)[0] is None
    assert _C._ag_scan(entries, args, {}, _torch_autograd._STATIC)[0] is None   # no kwargs
    st = _torch_autograd._STATIC
    k1 = _C._ag_scan(entries, (a, st(3)), {}, st)[1]
    assert k1 == _C._ag_scan(entries, (a, st(3)), {}, st)[1]
    assert k1 != _C._ag_scan(entries, (a, st(4)), {}, st)[1]
    with pytest.raises(TypeError, match=r"_ag_scan\(entries, args, kwargs, static_type\)"):
        _C._ag_scan(entries, [a], {}, st)


def test_ag_layout_places_the_leaves_as_ag_scan_sorts_them():
    """The entry of a new pattern takes its positions from the same walk as the
    per-call scan: leaves numbered in _C.tree_flatten's order, kwargs after args."""
    a = torch.ones(2, requires_grad=True)
    c = torch.ones(2)
    st = _torch_autograd._STATIC
    args = ({"p": a, "q": [c, 2.0]}, st(7), (a,))
    diff_pos, other_pos, statics = _C._ag_layout(args, {"s": c}, st)
    assert (diff_pos, other_pos, statics) == ([0, 4], [1, 2, 5], [(3, 7)])
    _, _, diff, other = _C._ag_scan({}, args, {"s": c}, st)
    leaves = _C.tree_leaves((args, {"s": c}))
    assert [leaves[k] for k in diff_pos] == diff
    assert [leaves[k] for k in other_pos] == other
    assert _C._ag_layout(args, {}, st) == ([0, 4], [1, 2], [(3, 7)])
    with pytest.raises(TypeError, match="tensors must be on the CPU"):
        _C._ag_layout((torch.ones(2, device="meta", requires_grad=True),), {}, st)
    with pytest.raises(TypeError, match=r"_ag_layout\(args, kwargs, static_type\)"):
        _C._ag_layout([a], {}, st)


def test_ag_unit_reads_a_one_element_tensor():
    for t, want in [(torch.tensor(1.0), True), (torch.tensor(1.0, dtype=torch.float64), True),
                    (torch.ones(1, 1), True), (torch.tensor(2.0), False),
                    (torch.tensor(-1.0), False), (torch.ones(2), False),
                    (torch.tensor(1), False), (torch.tensor(True), False),
                    (torch.tensor([1.0, 1.0])[1:], True),
                    (1.0, False), (np.float64(1.0), False), (None, False)]:
        assert _C._ag_unit(t) is want, t


def test_ag_forward_checks_its_job():
    with pytest.raises(TypeError, match=r"_ag_forward\(ctx, \(entry, diff, other\), \*diff\)"):
        _C._ag_forward(object(), (1, 2))


def test_c_route_hands_over_to_python_when_an_output_stops_being_scalar():
    # csrc/ad/torch_route.c's tj_ag_fast_call runs the common case; the first
    # NotScalarError marks the entry mixed and Adapter.call takes the other route
    f = tracejit.compile(lambda x: (x * x).sum() if x.ndim == 1 else x * x)
    ad = None
    for shape in [(3,), (2, 3), (4,), (2, 3)]:
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        x2 = x.detach().clone().requires_grad_()
        out = f(x)
        ref = (x2 * x2).sum() if x2.ndim == 1 else x2 * x2
        torch.testing.assert_close(out, ref)
        out.sum().backward()
        ref.sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
        ad = f.__dict__["_tj_autograd"]
        assert ad.fast is not None
    assert any(e.mixed for e in ad.entries.values())


def test_c_route_runs_a_failing_function_once():
    calls = []

    def f(x):
        calls.append(x.shape)
        if x.shape[0] == 5:
            raise ValueError("five is right out")
        return (x * 2).sum()
    cf = tracejit.compile(f)
    cf(torch.ones(3, requires_grad=True)).backward()
    n, entries = len(calls), dict(cf.__dict__["_tj_autograd"].entries)
    with pytest.raises(ValueError, match="five is right out"):
        cf(torch.ones(5, requires_grad=True))
    assert len(calls) - n == 1   # traced once: the C route's error is not retried
    assert cf.__dict__["_tj_autograd"].entries == entries   # (the entry the C route took)


def test_c_route_not_taken_with_statics_or_a_module():
    g = tracejit.compile(lambda x, k: (x * k).sum(), static_argnames=("k",))
    x = torch.ones(3, requires_grad=True)
    g(x, k=3).backward()
    assert g.__dict__["_tj_autograd"].fast is None
    torch.testing.assert_close(x.grad, torch.full((3,), 3.0))
