"""Pyro's ELBOs, compiled: drop-in losses for ``pyro.infer.SVI`` (Trace_ELBO,
TraceMeanField_ELBO, TraceEnum_ELBO), and SVI, whose step also compiles Adam's update;
MCMC kernels NUTS and HMC for ``pyro.infer.MCMC`` whose transitions run compiled
(_pyro_mcmc.py).

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), loss=tracejit.pyro.Trace_ELBO())

Each loss is Pyro's own class (a subclass: its particle loss, its plates, its
validation), whose ``loss_and_grads`` runs guide and model as one compiled function of
the param store's unconstrained parameters: the surrogate loss and its gradient come
from tracejit's autodiff (value_and_grad), every draw of the guide is a fresh Philox
draw at each call, and the gradients are accumulated into the parameters' ``.grad`` as
Pyro's ``backward()`` would, for SVI to hand to Pyro's optimizer.

How the parameters get in: the compiled function takes ``{name: unconstrained tensor}``
and a messenger (_ParamInputs) answers every ``pyro.param`` site of guide and model with
``transform_to(constraint)(traced unconstrained value)``, as the param store does. The
first call (and a call whose trace meets a parameter the dict lacks) finds the
parameters by running guide and model once eagerly, which also initializes them; the
dict's names are part of the cache key, and the names a trace reached are a static
result, so Pyro's SVI steps exactly those. What the model's structure depends on is the
trace's guards: argument shapes and Python values in the key, a branch on data a guard
of the plan (a new variant or a retrace), never a stale trace.

Inside the trace, torch_item (Pyro's ``x.item()``, which the ELBOs use to report the loss
as a float) is the value itself, detached and in float64 (Python's float, which Pyro
sums the items in); ``.item()`` of a value that depends on a draw could not be replayed.
"""
import contextlib
import sys
import warnings
import weakref

import torch

import pyro
import pyro.infer
import pyro.poutine as poutine
from pyro.poutine.messenger import Messenger
from torch.distributions import transform_to

from . import _grad, _torch
from ._C import TraceError, Tracer
from ._keyed import Keyed

_torch.skip_dirs(pyro)     # a TraceError names the user's line, not Pyro's

__all__ = ["Trace_ELBO", "TraceMeanField_ELBO", "TraceEnum_ELBO", "SVI", "NUTS", "HMC"]


class _NewParam(Exception):
    """A pyro.param site the compiled function has no input for (found while tracing)."""


class _ParamInputs(Messenger):
    """Answers pyro.param sites with the traced unconstrained inputs, constrained as
    ParamStoreDict.__getitem__ does; records the names reached, in order."""

    def __init__(self, params, used):
        super().__init__()
        self.params, self.used = params, used

    def _pyro_param(self, msg):
        name = msg["name"]
        if name not in self.params:
            raise _NewParam(name)
        constraint = pyro.get_param_store()._constraints[name]
        value = transform_to(constraint)(self.params[name])
        value.unconstrained = weakref.ref(self.params[name])   # as the param store's
        msg["value"] = value
        msg["done"] = True
        if name not in self.used:
            self.used.append(name)


def _item(orig):
    def torch_item(x):
        if isinstance(x, Tracer):    # Python's float: float64, and no gradient
            return x.detach().to(torch.float64)
        return orig(x)
    return torch_item


@contextlib.contextmanager
def _items_detached(cls):
    """torch_item, as the ELBO class's modules imported it, takes a traced value."""
    swapped = []
    for klass in cls.__mro__:
        names = getattr(sys.modules.get(klass.__module__), "__dict__", {})
        orig = names.get("torch_item")
        if orig is not None and not getattr(orig, "_tracejit", False):
            swap = names["torch_item"] = _item(orig)
            swap._tracejit = True
            swapped.append((names, orig))
    try:
        yield
    finally:
        for names, orig in swapped:
            names["torch_item"] = orig


_Static = Keyed     # (_keyed.py)


class _Compiled:
    """The compiled loss of one ELBO and the parameter names it takes per (model, guide)."""

    def __init__(self, elbo):
        self.names = {}      # (model, guide) -> tuple of parameter names
        self.fn = _grad._make(self._surrogate(elbo), 0, True, True, (), none_unused=True)

    @staticmethod
    def _surrogate(elbo):
        cls = type(elbo)

        def surrogate(params, model, guide, args, kwargs, static):
            used = []
            store = pyro.get_param_store()._params
            for name, value in params.items():
                if name in store:           # the tensor a module holds is this input
                    _torch.stand_in(store[name], value)
            with poutine.block(), _ParamInputs(params, used), _items_detached(cls):
                loss, surrogate = elbo._tracejit_particles(model, guide, args, kwargs)
            # the indices a subsampling plate marked a parameter with (eager marks the
            # parameter itself: subsample-aware optimizers such as DCTAdam read them)
            marks = {n: dict(v._pyro_subsample) for n, v in params.items()
                     if isinstance(getattr(v, "_pyro_subsample", None), dict)}
            return surrogate, (loss, (tuple(used), marks))

        surrogate.__name__ = surrogate.__qualname__ = f"{cls.__name__}.loss_and_grads"
        return surrogate


def _discover(elbo, model, guide, args, kwargs):
    """The parameters guide and model reach, found (and initialized) by running them
    once eagerly, as Pyro's first step would."""
    with torch.no_grad():
        with poutine.block():
            with poutine.trace(param_only=True) as capture:
                guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
                poutine.replay(model, trace=guide_trace)(*args, **kwargs)
        if elbo.vectorize_particles and elbo.max_plate_nesting == float("inf"):
            elbo._guess_max_plate_nesting(model, guide, args, kwargs)
    return tuple(capture.trace.nodes)


_where = [0, ()]     # pyro.settings' registry size, and its (owner, attribute) per setting


def _settings():
    """The values of pyro.settings (validation flags, module-local params, jitter):
    global state Pyro's code reads, part of the compiled loss's key."""
    registry = pyro.settings._REGISTRY
    if _where[0] != len(registry):
        where = []
        for alias in sorted(registry):
            module, deepname, _ = registry[alias]
            owner = sys.modules.get(module) or __import__(module, fromlist=["_"])
            names = deepname.split(".")
            for name in names[:-1]:
                owner = getattr(owner, name)
            where.append((owner, names[-1]))
        _where[:] = [len(registry), tuple(where)]
    return tuple(getattr(owner, name) for owner, name in _where[1])


def _plain_stack():
    """Whether the handlers around this call are only parameter captures (SVI.step's),
    which the loss reproduces with pyro.param statements; any other (poutine.scale,
    condition, a plate around svi.step) changes what guide and model compute."""
    return all(isinstance(m, poutine.trace_messenger.TraceMessenger) and m.param_only
               for m in poutine.runtime._PYRO_STACK)


def _mark(reached, params):
    """The names a step reached; the subsample marks it made, put on the parameters
    themselves as Pyro's plate does (param._pyro_subsample[dim] = indices)."""
    names, marks = reached
    for name, sub in marks.items():
        params[name].__dict__.setdefault("_pyro_subsample", {}).update(sub)
    return names


class _CompiledELBO:
    """loss_and_grads through one compiled function (mixed into Pyro's ELBO classes)."""

    def _tracejit_particles(self, model, guide, args, kwargs):
        """(loss, surrogate loss) averaged over the particles, as loss_and_grads does."""
        loss = surrogate = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            lp, sp = self._differentiable_loss_particle(model_trace, guide_trace)
            loss = loss + lp / self.num_particles
            surrogate = surrogate + sp / self.num_particles
        pyro.util.warn_if_nan(loss, "loss")
        return loss, surrogate

    def _tracejit_config(self):
        """The ELBO's own attributes (num_particles, max_plate_nesting, ...), which Pyro's
        code reads while tracing: part of the key (a change retraces)."""
        out = []
        for k, v in vars(self).items():
            if not k.startswith("_tracejit"):
                try:
                    hash(v)
                except TypeError:
                    v = repr(v)
                out.append((k, v))
        return tuple(out)

    def _tracejit_call(self, model, guide, args, kwargs, step):
        """Runs the compiled loss (step None) or the compiled SVI step built by `step`
        (_pyro_svi) over the parameters guide and model reach, found eagerly first
        and again when a trace meets one it was not given. Returns
        (loss, names reached, gradients or None, {name: unconstrained tensor})."""
        compiled = self.__dict__.get("_tracejit")
        if compiled is None:
            compiled = self._tracejit = _Compiled(self)
        store = pyro.get_param_store()
        names = compiled.names.get((model, guide))
        for attempt in range(2):
            if names is None or any(n not in store._params for n in names):
                names = compiled.names[(model, guide)] = _discover(self, model, guide, args,
                                                                   kwargs)
            params = {n: store._params[n] for n in names}
            constraints = tuple(store._constraints[n] for n in names)
            try:
                with torch.no_grad():
                    static = (_settings(), constraints, self._tracejit_config())
                    if step is None:
                        (_, (loss, reached)), grads = compiled.fn(params, model, guide, args,
                                                                  kwargs, _Static(static))
                        return loss, _mark(reached, params), grads, params
                    loss, reached = step(compiled.fn, params, model, guide, args, kwargs,
                                         static)
                    return loss, _mark(reached, params), None, params
            except _NewParam as e:     # a site the dict lacks: find them again
                if attempt:
                    raise TraceError(f"pyro.param({e.args[0]!r}) is reached when guide and "
                                     "model are traced, but not when they run eagerly: the "
                                     "parameters a step reaches depend on its draws") from None
                names = None

    def loss_and_grads(self, model, guide, *args, **kwargs):
        """Pyro's loss_and_grads: returns the loss (a float) and accumulates the
        surrogate loss's gradient into the reached parameters' .grad."""
        if not _plain_stack():
            if not self.__dict__.get("_tracejit_warned"):
                self._tracejit_warned = True
                names = ", ".join(type(m).__name__ for m in poutine.runtime._PYRO_STACK)
                warnings.warn(f"tracejit.pyro.{type(self).__name__}: a loss computed inside "
                              f"Pyro handlers ({names}) runs eagerly (Pyro's own "
                              "loss_and_grads)", RuntimeWarning, stacklevel=2)
            return super().loss_and_grads(model, guide, *args, **kwargs)
        loss, used, grads, params = self._tracejit_call(model, guide, args, kwargs, None)
        for name in used:
            pyro.param(name)            # the site SVI's param capture records
            g, p = grads[name], params[name]
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
        return float(loss)


class Trace_ELBO(_CompiledELBO, pyro.infer.Trace_ELBO):
    """pyro.infer.Trace_ELBO whose loss_and_grads is compiled (module docstring)."""


class TraceMeanField_ELBO(_CompiledELBO, pyro.infer.TraceMeanField_ELBO):
    """pyro.infer.TraceMeanField_ELBO whose loss_and_grads is compiled."""


class TraceEnum_ELBO(_CompiledELBO, pyro.infer.TraceEnum_ELBO):
    """pyro.infer.TraceEnum_ELBO whose loss_and_grads is compiled: the enumerated sites'
    sums (Pyro's dice ELBO and its contractions) inside the trace."""

    def _tracejit_particles(self, model, guide, args, kwargs):
        from pyro.distributions.util import is_identically_zero
        from pyro.infer.traceenum_elbo import _compute_dice_elbo
        loss = surrogate = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            elbo_particle = _compute_dice_elbo(model_trace, guide_trace)
            if is_identically_zero(elbo_particle):
                continue
            # Pyro's: elbo += elbo_particle.item() / n; backward of -elbo_particle / n
            loss = loss - elbo_particle.detach().to(torch.float64) / self.num_particles
            surrogate = surrogate - elbo_particle / self.num_particles
        pyro.util.warn_if_nan(loss, "loss")
        return loss, surrogate


from ._pyro_svi import SVI  # noqa: E402  (uses the classes above)
from ._pyro_mcmc import HMC, NUTS  # noqa: E402
