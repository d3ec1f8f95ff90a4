"""torch.distributions (and Pyro's distributions, built on it) on traced values.

Two helpers of torch.distributions ask `isinstance(v, torch.Tensor)` of what a traced
argument reaches, which a Tracer is not (it cannot pretend to be: torch's C argument
parser trusts that check and reads a tensor's memory). While a torch trace runs they
are swapped (_torch.call_traced) for versions that take a Tracer as a tensor and hand
anything else to torch's own code:
  * Distribution._validate_sample (log_prob, cdf, icdf with validation on, torch's
    default): torch refuses a non-tensor value; here the shape checks are torch's and
    the support check becomes a check of the plan (_C._check), made at every call, so a
    value outside the support raises ValueError at the user's line as eager does;
  * broadcast_all (every constructor): the Python numbers among the parameters become
    tensors of the first tensor's dtype; torch's version would take the default dtype
    for a traced first tensor (Normal(loc64, 0.1) would compute with float32's 0.1).
  * constraints.positive_definite.check (MultivariateNormal(covariance_matrix=...)):
    torch branches on the symmetry check's values; here one select of the same result.
  * Pyro's warn_if_nan and warn_if_inf (Trace.log_prob_sum and the ELBOs with
    validation on, Pyro's default): a warning on traced values becomes a check of the
    plan that warns (UserWarning, as Pyro) at each call whose values trip it. The hook
    Pyro puts on a gradient is not placed (a tracer has none).
Pyro's own code asks `isinstance(v, torch.Tensor)` and `torch.is_tensor(v)` in dozens of
places (scales and masks, ScoreParts, PyroSample priors, TraceMeanField_ELBO's KL sum)
and takes another branch for a non-tensor (a Python number), which would be silently
wrong for a traced value. While the trace runs, torch.is_tensor answers True for a
Tracer, and every imported `pyro.*` module gets a module-level `isinstance` (found
before the builtin) that answers True for a Tracer asked against torch.Tensor. Only
Python code sees either: torch's C argument parser, which reads a tensor's memory, still
sees a Tracer as what it is (so the Tracer is no tensor subclass, and torch.Tensor's
metaclass is left alone), and the Tracer's own methods serve what Pyro then calls.
broadcast_all and the warnings are imported by name into each module that uses them
(torch.distributions' and Pyro's); each module holding the original gets the swap.
"""
import builtins
import sys
import warnings

from . import _C
from ._C import Tracer


def _torch():
    return sys.modules["torch"]


def _validate_sample(orig):
    def validate_sample(self, value):
        if not isinstance(value, Tracer):
            return orig(self, value)
        # torch's Distribution._validate_sample past its isinstance test
        size, event = value.size(), self._event_shape
        if size[len(size) - len(event):] != event:
            raise ValueError(f"The right-most size of value must match event_shape: {size} vs "
                             f"{event}.")
        expected = self._batch_shape + event
        for i, j in zip(reversed(size), reversed(expected)):
            if i != 1 and j != 1 and i != j:
                raise ValueError("Value is not broadcastable with batch_shape+event_shape: "
                                 f"{size} vs {expected}.")
        try:
            support = self.support
        except NotImplementedError:
            warnings.warn(f"{self.__class__} does not define `support` to enable sample "
                          "validation. Please initialize the distribution with "
                          "`validate_args=False` to turn off validation.", stacklevel=2)
            return
        if support is None:
            raise AssertionError("support is unexpectedly None")
        _C._check(support.check(value),
                  f"the value argument (Tensor of shape {tuple(size)}) within the support "
                  f"({support!r}) of the distribution {type(self).__name__} (torch.distributions' "
                  "sample validation)")
    validate_sample._tracejit = True
    return validate_sample


def _broadcast_all(orig):
    def broadcast_all(*values):
        torch = _torch()
        first = next((v for v in values if isinstance(v, (Tracer, torch.Tensor))), None)
        if isinstance(first, Tracer):
            number = (bool, int, float)
            values = tuple(torch.tensor(v, dtype=first.dtype) if type(v) in number else v
                           for v in values)
        return orig(*values)
    broadcast_all._tracejit = True
    return broadcast_all


def _positive_definite_check(orig):
    def check(self, value):
        if not isinstance(value, Tracer):
            return orig(self, value)
        # torch: `if not sym.all(): return sym`, else cholesky's info == 0; as one select
        sym = sys.modules["torch.distributions.constraints"]._Symmetric.check(self, value)
        return _torch().where(sym.all(), _torch().linalg.cholesky_ex(value).info.eq(0), sym)
    check._tracejit = True
    return check


def _warn_if_nan(orig):
    def warn_if_nan(value, msg="", *, filename=None, lineno=None):
        if not isinstance(value, Tracer):
            return orig(value, msg, filename=filename, lineno=lineno)
        _C._check(~_torch().isnan(value).any(),
                  "Encountered NaN{}".format(": " + msg if msg else "."), UserWarning)
        return value
    warn_if_nan._tracejit = True
    return warn_if_nan


def _torch_item(orig):
    """Pyro's torch_item (x.item() for reporting a loss as a float): of a traced value,
    the value itself, detached, computing as a Python number does (weak: float32
    tensors stay float32 beside it, a result that is one comes back as a float). Eager's
    float cannot be replayed when the value depends on fresh draws; this can, and the
    numbers are the same: the item is the value in double, and Pyro only adds it up
    (`loss + (surrogate - torch_item(surrogate))`)."""
    def torch_item(x):
        if not isinstance(x, Tracer) or x.numel() != 1 or x.dtype == _torch().bool:
            return orig(x)
        v = x.detach().reshape(())
        return _C._python_number(v.double() if v.is_floating_point() else v.long())
    torch_item._tracejit = True
    return torch_item


def _warn_if_inf(orig):
    def warn_if_inf(value, msg="", allow_posinf=False, allow_neginf=False, *, filename=None,
                    lineno=None):
        if not isinstance(value, Tracer):
            return orig(value, msg, allow_posinf, allow_neginf, filename=filename,
                        lineno=lineno)
        tail = ": " + msg if msg else "."
        if not allow_posinf:
            _C._check(~(value == float("inf")).any(), "Encountered +inf" + tail, UserWarning)
        if not allow_neginf:
            _C._check(~(value == float("-inf")).any(), "Encountered -inf" + tail, UserWarning)
        return value
    warn_if_inf._tracejit = True
    return warn_if_inf


ABSENT = object()     # a swap that added a name: restored by deleting it


def _is_tensor(orig):
    def is_tensor(obj):
        return (type(obj) is Tracer and not _C._is_python_number(obj)) or orig(obj)
    is_tensor._tracejit = True
    return is_tensor


def _tensor_class(cls):
    tensor = _torch().Tensor
    return cls is tensor or (type(cls) is tuple and any(c is tensor for c in cls))


def _isinstance(obj, cls, _builtin=builtins.isinstance):
    """isinstance for Pyro's modules while a trace runs (module docstring)."""
    if type(obj) is Tracer and _tensor_class(cls):
        return not _C._is_python_number(obj)   # a traced Python number is no tensor
    return _builtin(obj, cls)


def _pyro_type_checks():
    """torch.is_tensor and Pyro's modules' isinstance, taking a Tracer as a tensor."""
    torch = _torch()
    done = [(torch, "is_tensor", torch.is_tensor)]
    torch.is_tensor = _is_tensor(torch.is_tensor)
    for module in _modules()[1]:
        names = module.__dict__
        if "isinstance" not in names:
            names["isinstance"] = _isinstance
            done.append((module, "isinstance", ABSENT))
    return done


_scanned = [None, (), ()]   # sys.modules' size, its modules with a __dict__, Pyro's


def _modules():
    """(every imported module with a dict, Pyro's), scanned again only when sys.modules
    changed size (a trace starts often; the scan of thousands of modules cost ~10 ms)."""
    if _scanned[0] != len(sys.modules):
        every, mine = [], []
        for name, module in list(sys.modules.items()):
            if isinstance(getattr(module, "__dict__", None), dict):
                every.append(module)
                if name == "pyro" or name.startswith("pyro."):
                    mine.append(module)
        _scanned[:] = [len(sys.modules), tuple(every), tuple(mine)]
    return _scanned[1], _scanned[2]


def _gamma_rsample(orig):
    """Gamma.rsample (and Chi2's) while a trace runs: torch's clamps the sample in place
    through a detach (`value.detach().clamp_(min=tiny)`: new values, the gradient of the
    graph before the write); a traced write through a detach rebinds the value to the
    write's own, detached, result. So the clamp is added as a detached difference: the
    same values (exact: it is 0 where value >= tiny, and tiny - value between
    subnormals), and the gradient of _standard_gamma / rate, as eager's."""
    def rsample(self, sample_shape=()):
        torch = _torch()
        shape = self._extended_shape(torch.Size(sample_shape))
        value = torch._standard_gamma(self.concentration.expand(shape)) / self.rate.expand(shape)
        tiny = torch.finfo(value.dtype).tiny
        return value + (value.clamp(min=tiny) - value).detach()
    rsample._tracejit = True
    return rsample


def swaps():
    """Install the swaps; [(owner, name, original)] to restore when the trace ends."""
    utils = sys.modules.get("torch.distributions.utils")
    dist = sys.modules.get("torch.distributions.distribution")
    if utils is None or dist is None or getattr(utils.broadcast_all, "_tracejit", False):
        return []                    # not imported, or a trace inside a trace
    done = _pyro_type_checks()
    constraints = sys.modules["torch.distributions.constraints"]
    orig = constraints._PositiveDefinite.check
    constraints._PositiveDefinite.check = _positive_definite_check(orig)
    done.append((constraints._PositiveDefinite, "check", orig))
    orig = dist.Distribution._validate_sample
    dist.Distribution._validate_sample = _validate_sample(orig)
    done.append((dist.Distribution, "_validate_sample", orig))
    gamma = sys.modules.get("torch.distributions.gamma")
    if gamma is not None:
        orig = gamma.Gamma.rsample
        gamma.Gamma.rsample = _gamma_rsample(orig)
        done.append((gamma.Gamma, "rsample", orig))
    # functions imported by name into the modules that use them: {name: (original, swap)}
    by_name = {"broadcast_all": (utils.broadcast_all, _broadcast_all(utils.broadcast_all))}
    pyro_util = sys.modules.get("pyro.util")
    for name, make in (("warn_if_nan", _warn_if_nan), ("warn_if_inf", _warn_if_inf)):
        orig = getattr(pyro_util, name, None)
        if orig is not None:
            by_name[name] = (orig, make(orig))
    pyro_infer_util = sys.modules.get("pyro.infer.util")
    if getattr(pyro_infer_util, "torch_item", None) is not None:
        orig = pyro_infer_util.torch_item
        by_name["torch_item"] = (orig, _torch_item(orig))
    for module, name in _holders(by_name):
        orig, swap = by_name[name]
        if module.__dict__.get(name) is orig:
            module.__dict__[name] = swap
            done.append((module, name, orig))
    return done


_held = [None, None, ()]    # sys.modules' size, the names, [(module, name)] holding them


def _holders(by_name):
    """The (module, name) pairs whose module holds by_name's original function under
    that name, found again only when sys.modules changed size."""
    every, _ = _modules()
    key = tuple((name, id(orig)) for name, (orig, _) in by_name.items())
    if _held[0] != len(sys.modules) or _held[1] != key:
        _held[:] = [len(sys.modules), key,
                    tuple((m, name) for m in every for name, (orig, _) in by_name.items()
                          if m.__dict__.get(name) is orig)]
    return _held[2]
