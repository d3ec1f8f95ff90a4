"""Every torch function, Tensor method and torch.nn.functional entry tracejit implements,
from the sample table of tests/torch_samples.py: the compiled forward against eager torch
in float32 and float64, and torch.autograd.gradcheck (float64) through
tracejit.compile's torch route (the tensors require grad: forward and backward are
compiled). An op without a working backward cannot land: its sample is an explicit
xfail naming the reason, and the coverage test fails for an entry with no sample."""
import pytest

torch = pytest.importorskip("torch")
import tracejit  # noqa: E402
from tracejit import _torch, _torch_ops  # noqa: E402

import torch_samples as ts  # noqa: E402
import torch_samples_linalg  # noqa: E402
import torch_samples_nn  # noqa: E402

SAMPLES = ts.SAMPLES + torch_samples_nn.SAMPLES + torch_samples_linalg.SAMPLES
NOT_SAMPLED = {**ts.NOT_SAMPLED, **torch_samples_nn.NOT_SAMPLED,
               **torch_samples_linalg.NOT_SAMPLED}


def _params(samples, backward=False):
    out = []
    for s in samples:
        marks = ()
        if backward and isinstance(s.grad, ts.XFail):
            marks = pytest.mark.xfail(reason=s.grad.reason, strict=True)
        out.append(pytest.param(s, id=s.id, marks=marks))
    return out


def _leaves(out):
    return [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if o is not None]


def _close(got, want, dtype, tol=None):
    got, want = _leaves(got), _leaves(want)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        if not isinstance(b, torch.Tensor):
            assert a == b
            continue
        assert type(a) is torch.Tensor and a.dtype == b.dtype and a.shape == b.shape
        kw = tol or (dict(rtol=2e-5, atol=2e-5) if dtype == torch.float32
                     else dict(rtol=1e-11, atol=1e-11))
        torch.testing.assert_close(a, b, **kw, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sample", _params(SAMPLES))
def test_forward_matches_eager(sample, dtype):
    args = sample.args(dtype)
    _close(tracejit.compile(sample.fn)(*args), sample.fn(*args), dtype, sample.tol)


@pytest.mark.parametrize("sample", _params(SAMPLES, backward=True))
def test_backward_gradcheck(sample):
    args = sample.args(torch.float64, seed=1, requires_grad=True)
    f = tracejit.compile(sample.fn)
    if sample.grad == ts.NODIFF:        # eager's result does not require grad: nor ours
        got, want = f(*args), sample.fn(*args)
        _close(got, want, torch.float64)
        for a, b in zip(_leaves(got), _leaves(want)):
            assert getattr(a, "requires_grad", False) == getattr(b, "requires_grad", False)
        return
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    assert leaves
    # the gradients eager's backward gives, for a random cotangent of each output
    got, want = _leaves(f(*args)), _leaves(sample.fn(*args))
    _close(got, want, torch.float64)
    g = torch.Generator().manual_seed(2)
    cts = [torch.randn(w.shape, generator=g, dtype=w.dtype) if w.requires_grad else None
           for w in want]
    diff = [(a, b, c) for a, b, c in zip(got, want, cts) if c is not None]
    assert all(a.requires_grad for a, _, _ in diff)
    if sample.eager is not True:
        return _gradcheck(f, args, sample)
    grads = torch.autograd.grad([a for a, _, _ in diff], leaves, [c for _, _, c in diff],
                                allow_unused=True)
    twins = torch.autograd.grad([b for _, b, _ in diff], leaves, [c for _, _, c in diff],
                                allow_unused=True)
    for k, (a, b) in enumerate(zip(grads, twins)):
        assert (a is None) == (b is None), f"argument {k}: None where eager's is not"
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    _gradcheck(f, args, sample)


def _gradcheck(f, args, sample):
    if sample.gradcheck is True:
        assert torch.autograd.gradcheck(f, tuple(args), eps=1e-6, atol=1e-5, rtol=1e-4)
    elif isinstance(sample.gradcheck, dict):
        assert torch.autograd.gradcheck(f, tuple(args), **sample.gradcheck)


def _implemented():
    """The names a user reaches: FUNCS (functions, methods, nn.functional) and the Tensor
    methods of ATTRS, less the in-place ones (the writes issue's) and the random ones
    (tests/test_random_torch.py)."""
    names = set(_torch_ops.FUNCS)
    names |= {n for n in _torch.ATTRS if not n.endswith("_") and n not in _torch._RANDOM}
    return names


def test_every_entry_has_a_sample():
    sampled = {s.op for s in SAMPLES}
    missing = sorted(_implemented() - sampled - set(NOT_SAMPLED))
    assert not missing, f"no sample in tests/torch_samples.py for {missing}"
    stale = sorted((sampled | set(NOT_SAMPLED)) - _implemented())
    assert not stale, f"samples for names tracejit does not implement: {stale}"
