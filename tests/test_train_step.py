"""A whole training step compiled as one call (python/tracejit/_train_step.py): forward,
loss.backward(), optimizer.step() and zero_grad() on parameters the step function
reads from its closure, against the same step run eagerly on a twin of the model, step
after step with fresh data: parameters, .grad, optimizer state and BatchNorm's running
statistics."""
import copy
import warnings

import pytest

torch = pytest.importorskip("torch")

import tracejit  # noqa: E402

nn = torch.nn


def _mlp(bn, dropout=0.0, din=8, dh=16, dtype=torch.float32):
    layers = [nn.Linear(din, dh, bias=not bn)]     # a bias before BatchNorm has a zero gradient
    if bn:                                          # (rounding noise Adam would amplify)
        layers.append(nn.BatchNorm1d(dh))
    layers.append(nn.ReLU(inplace=True))
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(dh, dh), nn.Tanh(), nn.Linear(dh, 1)]
    return nn.Sequential(*layers).to(dtype)


OPTS = {
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adam_wd": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "sgd": lambda p: torch.optim.SGD(p, lr=1e-2),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True,
                                              weight_decay=1e-3),
}


def _twins(make_opt, bn=True, dropout=0.0, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    model = _mlp(bn, dropout, dtype=dtype)
    twin = copy.deepcopy(model)
    return (model, make_opt(model.parameters())), (twin, make_opt(twin.parameters()))


def _step_fn(model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step


def _assert_same(a, b, rtol=2e-6, atol=1e-6):
    (ma, oa), (mb, ob) = a, b
    for (name, pa), pb in zip(ma.named_parameters(), mb.parameters()):
        torch.testing.assert_close(pa, pb, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")
        if pb.grad is None:
            assert pa.grad is None, name
        else:
            torch.testing.assert_close(pa.grad, pb.grad, rtol=rtol, atol=atol)
        sa, sb = oa.state.get(pa, {}), ob.state.get(pb, {})
        assert sa.keys() == sb.keys(), name
        for k in sb:
            if isinstance(sb[k], torch.Tensor):
                torch.testing.assert_close(sa[k], sb[k], rtol=rtol, atol=atol)
            else:
                assert sa[k] == sb[k]
    for (name, ba), bb in zip(ma.named_buffers(), mb.buffers()):
        torch.testing.assert_close(ba, bb, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def _data(n, dtype=torch.float32, batch=32):
    g = torch.Generator().manual_seed(123)
    return [(torch.randn(batch, 8, generator=g, dtype=dtype),
             torch.randn(batch, 1, generator=g, dtype=dtype)) for _ in range(n)]


@pytest.mark.parametrize("opt", sorted(OPTS))
@pytest.mark.parametrize("bn", [True, False])
def test_matches_eager_over_steps(opt, bn):
    a, b = _twins(OPTS[opt], bn=bn)
    step = tracejit.compile(_step_fn(*a))
    eager = _step_fn(*b)
    for x, y in _data(25):
        la, lb = step(x, y), eager(x, y)
        torch.testing.assert_close(la.detach(), lb.detach(), rtol=2e-6, atol=1e-6)
        _assert_same(a, b)
    # one compiled step serves every call after the first (which made the optimizer's
    # state eagerly: its trace, abandoned, is the first miss)
    info = step._tj_step.core.cache_info()
    # (or, with no state to make, a first variant for .grad None, a second for tensors)
    assert info.variants <= 2 and info.misses <= 2 and info.hits >= 23


def test_float64():
    a, b = _twins(OPTS["adam"], dtype=torch.float64)
    step, eager = tracejit.compile(_step_fn(*a)), _step_fn(*b)
    for x, y in _data(20, torch.float64):
        step(x, y), eager(x, y)
    _assert_same(a, b, rtol=1e-12, atol=1e-14)


def test_grads_accumulate_without_zero_grad():
    """No zero_grad: .grad accumulates in place, as eager's AccumulateGrad does;
    zero_grad(set_to_none=False) zeroes it in place."""
    a, b = _twins(OPTS["sgd_momentum"], bn=False)

    def make(model, opt):
        def step(x, y, zero):
            if zero:
                opt.zero_grad(set_to_none=False)
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        return step
    step, eager = tracejit.compile(make(*a), static_argnames=("zero",)), make(*b)
    for i, (x, y) in enumerate(_data(12)):
        grads = [p.grad for p in a[0].parameters()]
        step(x, y, i % 3 == 0), eager(x, y, i % 3 == 0)
        _assert_same(a, b)
        if i > 1:     # the same tensors, written in place
            assert all(g is p.grad for g, p in zip(grads, a[0].parameters()))


def test_two_backwards_accumulate():
    a, b = _twins(OPTS["adam"], bn=False)

    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            for part in (slice(0, 16), slice(16, 32)):
                ((model(x[part]) - y[part]) ** 2).mean().backward()
            opt.step()
        return step
    step, eager = tracejit.compile(make(*a)), make(*b)
    for x, y in _data(8):
        step(x, y), eager(x, y)
        _assert_same(a, b)


def test_batchnorm_running_stats_and_eval_switch():
    a, b = _twins(OPTS["adam"])
    step, eager = tracejit.compile(_step_fn(*a)), _step_fn(*b)
    for i, (x, y) in enumerate(_data(12)):
        if i == 6:            # eval mode: running statistics used, not updated
            a[0].eval(), b[0].eval()
        step(x, y), eager(x, y)
        _assert_same(a, b)
    assert int(a[0][1].num_batches_tracked) == 6


def test_dropout_fresh_every_step():
    """Dropout draws a new mask each call (tracejit's streams are not torch's: the
    losses of the same data differ step to step; with dropout off they match eager)."""
    a, b = _twins(OPTS["sgd"], bn=False, dropout=0.5)
    step = tracejit.compile(_step_fn(*a))
    x, y = _data(1)[0]
    losses = [float(step(x, y)) for _ in range(6)]
    assert len(set(losses)) == 6
    a[0].eval(), b[0].eval()
    eager = _step_fn(*b)
    b[0].load_state_dict(a[0].state_dict())
    b[1].load_state_dict(a[1].state_dict())
    for x, y in _data(5):
        step(x, y), eager(x, y)
        _assert_same(a, b)


def test_lr_scheduler_outside_is_seen():
    a, b = _twins(OPTS["adam"])
    sa = torch.optim.lr_scheduler.StepLR(a[1], step_size=4, gamma=0.5)
    sb = torch.optim.lr_scheduler.StepLR(b[1], step_size=4, gamma=0.5)
    step, eager = tracejit.compile(_step_fn(*a)), _step_fn(*b)
    for x, y in _data(14):
        step(x, y), eager(x, y)
        sa.step(), sb.step()
        _assert_same(a, b)
    a[1].param_groups[0]["lr"] = 0.5       # set by hand
    b[1].param_groups[0]["lr"] = 0.5
    for x, y in _data(2):
        step(x, y), eager(x, y)
        _assert_same(a, b)


def test_param_group_added_retraces():
    a, b = _twins(OPTS["sgd_momentum"], bn=False)
    # the last layer starts frozen out of the optimizer, then joins it
    for (m, o) in (a, b):
        o.param_groups.clear()
        o.state.clear()
        o.add_param_group({"params": list(m[:-1].parameters())})
    step, eager = tracejit.compile(_step_fn(*a)), _step_fn(*b)
    data = _data(10)
    for x, y in data[:5]:
        step(x, y), eager(x, y)
        _assert_same(a, b)
    for (m, o) in (a, b):
        o.add_param_group({"params": list(m[-1].parameters()), "lr": 0.05})
    for x, y in data[5:]:
        step(x, y), eager(x, y)
        _assert_same(a, b)


def test_no_grad_and_hooks_run_eagerly():
    a, b = _twins(OPTS["adam"], bn=False)
    step, eager = tracejit.compile(_step_fn(*a)), _step_fn(*b)
    data = _data(6)
    for x, y in data[:3]:
        step(x, y), eager(x, y)
    seen = []
    a[1].register_step_pre_hook(lambda *args: seen.append(1))
    b[1].register_step_pre_hook(lambda *args: None)
    with pytest.warns(RuntimeWarning, match="runs eagerly: an optimizer has hooks"):
        step(*data[3])
    eager(*data[3])
    assert seen == [1]
    _assert_same(a, b)


def test_scheduler_step_inside_refused():
    m, o = _twins(OPTS["adam"], bn=False)[0]
    sched = torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)

    def step(x, y):
        o.zero_grad()
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        o.step()
        sched.step()
        return loss
    c = tracejit.compile(step)
    lr = o.param_groups[0]["lr"]
    for _ in range(2):
        with pytest.raises(tracejit.TraceError, match=r"StepLR.step\(\) inside a compiled "
                                                      r"training step.*call it outside"):
            c(*_data(1)[0])
    # nothing of the refused trace stays
    assert o.param_groups[0]["lr"] == lr and not o.state
    assert all(p.grad is None for p in m.parameters())


def test_reads_params_without_backward_refused():
    m = _mlp(False)

    def f(x):
        return m(x).sum()
    with pytest.raises(tracejit.TraceError, match="reads a torch tensor .* that requires grad "
                                                  "while grad mode is on: only arguments") as e:
        tracejit.compile(f)(torch.randn(4, 8))
    assert "return m(x).sum()" in str(e.value)     # the user's line


def test_backward_outside_a_step_refused():
    def f(x):
        (x * 2).sum().backward()
        return x
    with pytest.raises(tracejit.TraceError, match=r"backward\(\) is not supported by tracejit "
                                                  r"here.*training step"):
        tracejit.compile(f)(torch.randn(3))


def test_second_backward_and_create_graph_refused():
    m, o = _twins(OPTS["sgd"], bn=False)[0]

    def twice(x, y):
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        loss.backward()

    def create(x, y):
        ((m(x) - y) ** 2).mean().backward(create_graph=True)
    x, y = _data(1)[0]
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        tracejit.compile(twice)(x, y)
    with pytest.raises(tracejit.TraceError, match="create_graph=True"):
        tracejit.compile(create)(x, y)


def test_grad_set_to_own_tensor_refused():
    m, o = _twins(OPTS["sgd"], bn=False)[0]

    def f(x, y):
        ((m(x) - y) ** 2).mean().backward()
        for p in m.parameters():
            p.grad = torch.zeros(p.shape)
    x, y = _data(1)[0]
    with pytest.raises(tracejit.TraceError, match="sets a parameter's .grad to a tensor of its "
                                                  "own"):
        tracejit.compile(f)(x, y)
    assert all(p.grad is None for p in m.parameters())


def test_grads_only_step():
    """A step that only computes gradients (the optimizer outside): .grad as eager's."""
    torch.manual_seed(1)
    m = _mlp(True)
    m2 = copy.deepcopy(m)

    def make(model):
        def f(x, y):
            model.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss
        return f
    f, g = tracejit.compile(make(m)), make(m2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x, y in _data(4):
            f(x, y), g(x, y)
            for p, q in zip(m.parameters(), m2.parameters()):
                torch.testing.assert_close(p.grad, q.grad, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["add", "sub"])
def test_alpha_operand_from_outside_read_at_call_time(method):
    """x.add(buf, alpha=a) with buf a closure's tensor reads buf at every call (it was
    converted once, a constant, before the training step needed it)."""
    buf = torch.ones(4)

    def f(x):
        return getattr(x, method)(buf, alpha=0.5)
    c = tracejit.compile(f)
    x = torch.randn(4)
    for v in (1.0, 3.0, -2.0):
        buf.fill_(v)
        torch.testing.assert_close(c(x), getattr(x, method)(buf, alpha=0.5))


def test_out_writes():
    """torch.f(..., out=t) writes t (an argument, a closure's tensor), returns t; casts
    within a kind; refuses another shape (torch would resize t)."""
    buf = torch.zeros(5)

    def f(a, b, o):
        r = torch.maximum(a, b, out=buf)
        torch.add(a, b, alpha=2, out=o)
        return r * 1.0
    c = tracejit.compile(f)
    for _ in range(3):
        a, b = torch.randn(5), torch.randn(5)
        o, o2 = torch.empty(5, dtype=torch.float64), torch.empty(5, dtype=torch.float64)
        got = c(a, b, o)
        torch.testing.assert_close(buf, torch.maximum(a, b))
        torch.testing.assert_close(got, torch.maximum(a, b))
        torch.testing.assert_close(o, torch.add(a, b, alpha=2, out=o2))
    with pytest.raises(tracejit.TraceError, match=r"out=\.\.\.\) into a tensor of another shape"):
        tracejit.compile(lambda a: torch.exp(a, out=buf))(torch.randn(3))
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        tracejit.compile(lambda a: torch.exp(a, out=torch.zeros(3, dtype=torch.int64)))(
            torch.randn(3))


@pytest.mark.parametrize("name", ["adam_amsgrad", "adamax", "rmsprop", "rmsprop_centered", "adagrad",
                                  "adadelta", "nadam", "radam", "rprop"])
def test_more_optimizers_through_their_own_code(name, request):
    """torch.optim's own Python code is what is traced: optimizers beyond Adam and SGD
    compile too and match eager."""
    make = {"adam_amsgrad": lambda p: torch.optim.Adam(p, lr=1e-2, amsgrad=True),
            "adamax": lambda p: torch.optim.Adamax(p, lr=1e-2),
            "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.9),
            "rmsprop_centered": lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.9,
                                                              centered=True),
            "adagrad": lambda p: torch.optim.Adagrad(p, lr=1e-2),
            "adadelta": lambda p: torch.optim.Adadelta(p, lr=1.0),
            "nadam": lambda p: torch.optim.NAdam(p, lr=1e-2),
            "radam": lambda p: torch.optim.RAdam(p, lr=1e-2),
            "rprop": lambda p: torch.optim.Rprop(p, lr=1e-2)}[name]
    a, b = _twins(make, bn=False)
    step, eager = tracejit.compile(_step_fn(*a)), _step_fn(*b)
    # centered RMSprop's variance is a difference (v - avg**2), whose rounding (torch's
    # lerp is a fused multiply-add, ours is not) its momentum buffer amplifies
    # (RMSprop's momentum over 1/sqrt(v) grows the last bit's differences, ~1e-6 a step)
    rtol, atol = {"rmsprop_centered": (1e-3, 1e-4), "rmsprop": (1e-4, 1e-5)}.get(name,
                                                                              (2e-6, 1e-6))
    for x, y in _data(12):
        step(x, y), eager(x, y)
        _assert_same(a, b, rtol=rtol, atol=atol)
    assert step._tj_step.core.cache_info().hits >= 8


def test_plateau_scheduler_inside_refused():
    """ReduceLROnPlateau.step(loss) inside the step (its own step(), which would count
    bad epochs only while traced) is refused as LRScheduler's is."""
    m, o = _twins(OPTS["sgd"], bn=False)[0]
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0)

    def step(x, y):
        o.zero_grad()
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        o.step()
        sched.step(loss)
    with pytest.raises(tracejit.TraceError, match=r"ReduceLROnPlateau.step\(\) inside a "
                                                  r"compiled training step"):
        tracejit.compile(step)(*_data(1)[0])
    sched.step(1.0)         # outside a trace: torch's own
    assert sched.best == 1.0


def test_frozen_and_new_parameters():
    """A parameter frozen (requires_grad_(False)) between calls gets no gradient and no
    update, as in eager; a new tensor given to the optimizer and the step is found."""
    a, b = _twins(OPTS["adam"], bn=False)
    extra = {k: torch.zeros(1, requires_grad=True) for k in "ab"}

    def make(model, opt, k):
        def step(x, y):
            opt.zero_grad()
            out = model(x)
            if len(opt.param_groups) > 1:
                out = out + extra[k]
            loss = ((out - y) ** 2).mean()
            loss.backward()
            opt.step()
        return step
    step, eager = tracejit.compile(make(*a, "a")), make(*b, "b")
    data = _data(12)
    for i, (x, y) in enumerate(data):
        if i == 3:
            a[0][0].weight.requires_grad_(False)
            b[0][0].weight.requires_grad_(False)
        if i == 6:
            a[1].add_param_group({"params": [extra["a"]], "lr": 0.1})
            b[1].add_param_group({"params": [extra["b"]], "lr": 0.1})
        step(x, y), eager(x, y)
        _assert_same(a, b)
        torch.testing.assert_close(extra["a"], extra["b"])
    assert float(extra["a"].detach().abs()) > 0


def test_clip_grad_norm():
    """clip_grad_norm_(foreach=False) in the step matches eager; torch's multi-tensor
    ops (clip's default on the CPU, foreach=True optimizers) are refused by name."""
    a, b = _twins(OPTS["adam"])

    def make(model, opt, foreach):
        def step(x, y):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5, foreach=foreach)
            opt.step()
        return step
    step, eager = tracejit.compile(make(*a, False)), make(*b, False)
    for x, y in _data(10):
        step(x, y), eager(x, y)
        _assert_same(a, b)
    x, y = _data(1)[0]
    with pytest.raises(tracejit.TraceError, match=r"torch._foreach_norm \(a multi-tensor op"):
        tracejit.compile(make(*a, True))(x, y)
    a, b = _twins(lambda p: torch.optim.Adam(p, foreach=True), bn=False)
    step, eager = tracejit.compile(_step_fn(*a)), _step_fn(*b)
    with pytest.warns(RuntimeWarning, match="runs eagerly: .*foreach/fused=True"):
        for x, y in _data(3):
            step(x, y), eager(x, y)
    _assert_same(a, b)


@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd", "sgd_momentum", "sgd_nesterov"])
def test_lr_every_step_is_an_input(opt):
    """A scheduler that changes lr at every step (outside the step) feeds the next call
    its lr as an input: one variant for all steps, each matching eager."""
    a, b = _twins(OPTS[opt])
    sa = torch.optim.lr_scheduler.ExponentialLR(a[1], gamma=0.8)
    sb = torch.optim.lr_scheduler.ExponentialLR(b[1], gamma=0.8)
    step, eager = tracejit.compile(_step_fn(*a)), _step_fn(*b)
    for x, y in _data(15):
        step(x, y), eager(x, y)
        sa.step(), sb.step()
        _assert_same(a, b)
    info = step._tj_step.core.cache_info()
    assert info.variants <= 2 and info.misses <= 2, info


def test_lr_set_inside_refused():
    m, o = _twins(OPTS["sgd"], bn=False)[0]

    def step(x, y):
        o.zero_grad()
        ((m(x) - y) ** 2).mean().backward()
        o.step()
        o.param_groups[0]["lr"] *= 0.5
    with pytest.raises(tracejit.TraceError, match="changes an optimizer's param groups while "
                                                  "traced"):
        tracejit.compile(step)(*_data(1)[0])
    assert o.param_groups[0]["lr"] == 1e-2

