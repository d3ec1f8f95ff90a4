"""tracejit.pyro.SVI: pyro.infer.SVI whose step, given a tracejit.pyro ELBO and
pyro.optim.Adam, is one compiled call: guide, model, the surrogate loss's gradient
(the ELBO's compiled loss, traced inline) and torch.optim.Adam's update of every
parameter the step reaches, written into the parameters and into the Adam objects'
own state tensors (exp_avg, exp_avg_sq, step) in place.

The update is torch's single-tensor Adam, operation for operation: step += 1, the bias
corrections in float64 from the step count (torch reads it with .item() and computes in
Python floats), exp_avg.lerp_(grad, 1 - beta1), exp_avg_sq.mul_(beta2).addcmul_(grad,
grad, value=1 - beta2), param.addcdiv_(exp_avg, exp_avg_sq.sqrt() / sqrt(bc2) + eps,
value=-lr / bc1), the Python numbers rounded to the parameter's dtype where torch's
kernels round them. The optimizer objects are Pyro's (PyroOptim.optim_objs, created as
PyroOptim.__call__ creates them), and a parameter's state is registered in its
torch.optim.Adam once a step updated it, so optim.get_state(), a learning-rate change
(the hyperparameters are part of the key) and a later pyro.infer.SVI step all see what
eager's would. What differs: the parameters' .grad stays None (the gradient never
leaves the compiled step; eager leaves zeros after SVI's zero_grads).

Any other case runs pyro.infer.SVI's own step (the ELBO's compiled loss_and_grads,
then Pyro's optimizer): another optimizer or loss, gradient clipping, weight decay,
amsgrad, maximize, capturable/differentiable/fused Adam, tensor hyperparameters,
optimizer hooks, handlers around the step.
"""
import torch
import torch.optim.optimizer as _optimizer

import pyro
import pyro.infer
import pyro.poutine as poutine

from . import _C
from . import pyro as _tjp
from ._keyed import Keyed


_Hyper = Keyed     # (_keyed.py)


def _adam(p, g, step_t, m, v, lr, beta1, beta2, eps):
    """torch.optim.Adam's single-tensor update of p by g, on traced values (writes)."""
    step_t.copy_(step_t + 1)
    step = step_t.to(torch.float64)
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    step_size = lr / bc1
    bc2_sqrt = bc2 ** 0.5
    w = 1 - beta1
    if abs(w) < 0.5:                     # torch's lerp kernel, by its weight
        m.copy_(m + w * (g - m))
    else:
        m.copy_(g - (g - m) * (1 - w))
    v.copy_(v * beta2 + (1 - beta2) * g * g)
    denom = v.sqrt() / bc2_sqrt.to(p.dtype) + eps
    p.copy_(p + (-step_size).to(p.dtype) * m / denom)


def _step_fn(elbo_fn):
    def svi_step(params, states, model, guide, args, kwargs, static, hyper):
        (_, (loss, used)), grads = elbo_fn(params, model, guide, args, kwargs,
                                           _tjp._Static(static))
        updated = []
        for name, g in grads.items():
            if g is not None:
                _adam(params[name], g, *states[name], *dict(hyper.value)[name])
                updated.append(name)
        return loss, used, tuple(updated)
    return _C.CompiledFunction(svi_step, (), ())


_SIG = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "capturable",
        "differentiable", "fused", "decoupled_weight_decay")
_hyper_of = {}      # a param group's _SIG values -> (lr, beta1, beta2, eps), or None


def _hyper(sig):
    """(lr, beta1, beta2, eps) of a param group whose update is plain Adam (floats; no
    weight decay, amsgrad, maximize, capturable, differentiable, fused), else None."""
    lr, betas, eps, *flags = sig
    if any(flags) or type(betas) is not tuple or len(betas) != 2 or \
            not all(type(x) is float for x in (lr, eps) + betas):
        return None
    return (lr,) + betas + (eps,)


def _adam_of(optim, name, p):
    """(torch.optim.Adam of p, its (lr, beta1, beta2, eps)) as Pyro's optimizer would
    use it, creating it as PyroOptim.__call__ does; None where the compiled update is
    not torch's (module docstring)."""
    opt = optim.optim_objs.get(p)
    if opt is None:
        opt = optim.optim_objs[p] = optim._get_optim(p)
        optim.grad_clip[p] = optim._get_grad_clip(p)
        state = optim._state_waiting_to_be_consumed.pop(name, None)
        if state is not None:
            pyro.optim.optim._load_state_dict(opt, state)
    if type(opt) is not torch.optim.Adam or optim.grad_clip.get(p) is not None or \
            opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks or \
            len(opt.param_groups) != 1:
        return None
    sig = tuple(map(opt.param_groups[0].get, _SIG))
    try:
        hyper = _hyper_of[sig]
    except KeyError:
        hyper = _hyper_of[sig] = _hyper(sig)
    except TypeError:                     # an unhashable value (a tensor lr): not plain
        return None
    return None if hyper is None else (opt, hyper)


def _state(opt, p, pending, name, checked):
    """(step, exp_avg, exp_avg_sq) of p: its Adam's, or new ones as torch makes them
    (registered once a step updates p); None for a state torch's update would not read
    as these three (another layout or dtype)."""
    st = opt.state.get(p)
    if st:
        step, m, v = st.get("step"), st.get("exp_avg"), st.get("exp_avg_sq")
        seen = checked.get(name)     # (p, step, m, v) checked last (identities)
        if seen is not None and seen[0] is p and seen[1] is step and seen[2] is m and \
                seen[3] is v:
            return step, m, v
        if (isinstance(step, torch.Tensor) and step.ndim == 0 and step.dtype == torch.float32
                and isinstance(m, torch.Tensor) and isinstance(v, torch.Tensor) and
                m.dtype == p.dtype and v.dtype == p.dtype and m.shape == p.shape and
                v.shape == p.shape):
            checked[name] = (p, step, m, v)
            return step, m, v
        return None
    state = pending.get(name)
    if state is None:
        state = pending[name] = (torch.tensor(0.0, dtype=torch.float32),
                                 torch.zeros_like(p, memory_format=torch.preserve_format),
                                 torch.zeros_like(p, memory_format=torch.preserve_format))
    return state


class SVI(pyro.infer.SVI):
    """pyro.infer.SVI whose step is one compiled call with a tracejit.pyro ELBO and
    pyro.optim.Adam (module docstring); Pyro's own step otherwise."""

    def step(self, *args, **kwargs):
        elbo = getattr(self.loss_and_grads, "__self__", None)
        optim = self.optim
        if not (isinstance(elbo, _tjp._CompiledELBO) and _tjp._plain_stack() and
                isinstance(optim, pyro.optim.PyroOptim) and
                optim.pt_optim_constructor is torch.optim.Adam and
                not _optimizer._global_optimizer_pre_hooks and
                not _optimizer._global_optimizer_post_hooks):
            return super().step(*args, **kwargs)
        pending = self.__dict__.setdefault("_tracejit_pending", {})
        checked = self.__dict__.setdefault("_tracejit_checked", {})
        plan, updated = {}, []

        def run(elbo_fn, params, model, guide, args, kwargs, static):
            fn = self.__dict__.get("_tracejit_step")
            if fn is None or fn[0] is not elbo_fn:
                fn = self._tracejit_step = (elbo_fn, _step_fn(elbo_fn))
            states, hyper = {}, {}
            for name, p in params.items():
                adam = _adam_of(optim, name, p)
                state = adam and _state(adam[0], p, pending, name, checked)
                if state is None:
                    raise _Fallback
                plan[name] = adam[0]
                states[name], hyper[name] = state, adam[1]
            loss, used, done = fn[1](params, states, model, guide, args, kwargs, static,
                                     _Hyper(tuple(sorted(hyper.items()))))
            updated.extend(done)
            return loss, used

        try:
            loss, used, _, params = elbo._tracejit_call(self.model, self.guide, args, kwargs,
                                                        run)
        except _Fallback:
            return super().step(*args, **kwargs)
        for name in updated:
            state = pending.pop(name, None)
            if state is not None:       # torch registers a state at its first update
                plan[name].state[params[name]] = {"step": state[0], "exp_avg": state[1],
                                                  "exp_avg_sq": state[2]}
        if poutine.runtime._PYRO_STACK:
            for name in used:
                pyro.param(name)        # an outer parameter capture records the sites
        return float(loss)


class _Fallback(Exception):
    """The step is not one the compiled update reproduces: Pyro's own step."""
