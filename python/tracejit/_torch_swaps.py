"""torch.nn's private helpers swapped while a torch trace runs (_torch.call_traced, which
restores them after): helpers that ask isinstance(x, torch.Tensor) of what a traced
argument reaches, and nn.BatchNorm's forward with a cumulative average; the swaps of
torch.distributions and Pyro are _torch_dists.swaps, called from here."""
import sys

from . import _torch_dists
from ._C import Tracer


def _torch():
    return sys.modules["torch"]


def swap_helpers():
    """torch's private helpers that ask isinstance(x, torch.Tensor) of what a traced
    argument reaches (nn.MultiheadAttention's masks: F._none_or_dtype; torch.distributions'
    checks, _torch_dists.swaps), and nn.BatchNorm's forward, swapped for versions that
    also take a tracer while the trace runs. [(owner, name, original)]."""
    F = _torch().nn.functional
    orig = getattr(F, "_none_or_dtype", None)
    if orig is None or getattr(orig, "_tracejit", False):
        return []
    done = _torch_dists.swaps()     # torch.distributions' type checks

    def none_or_dtype(input):
        return input.dtype if isinstance(input, Tracer) else orig(input)
    none_or_dtype._tracejit = True
    F._none_or_dtype = none_or_dtype
    swapped = done + [(F, "_none_or_dtype", orig)]
    torch = _torch()
    for name in _VARARG_SIZES:   # torch.zeros(n, 2) of a traced int n
        f = getattr(torch, name, None)
        if f is not None:
            swapped.append((torch, name, f))
            setattr(torch, name, _sized(f))
    bn = _torch().nn.modules.batchnorm._BatchNorm
    if "forward" in vars(bn):
        swapped.append((bn, "forward", vars(bn)["forward"]))
        bn.forward = _batch_norm_forward(vars(bn)["forward"], F)
    return swapped


# torch's factories whose size may come as varargs: torch's argument parser takes
# torch.zeros(n) of a traced int n to the trace's mode, but refuses torch.zeros(n, 2)
# ("takes 1 positional argument but 2 were given") before any hook sees it
_VARARG_SIZES = ("zeros", "ones", "empty", "rand", "randn")


def _sized(orig):
    """torch.<factory> while a trace runs: traced ints among its positional sizes read as
    the ints they are for this call (guards of the trace, _torch._sizes)."""
    from ._torch import _sizes

    def factory(*size, **kwargs):
        if any(isinstance(s, Tracer) for s in size):
            size = _sizes(size)
        return orig(*size, **kwargs)
    factory.__name__, factory.__qualname__, factory.__doc__ = \
        orig.__name__, getattr(orig, "__qualname__", orig.__name__), orig.__doc__
    return factory


def _batch_norm_forward(orig, F):
    """nn.BatchNorm's forward with momentum=None (a cumulative average) in training:
    torch's own reads its factor as 1.0 / float(num_batches_tracked), a constant once
    traced; here the factor is traced from the buffer, so every call computes its own."""
    def forward(self, input):
        if not (self.momentum is None and self.training and self.track_running_stats and
                self.num_batches_tracked is not None and isinstance(input, Tracer)):
            return orig(self, input)
        self._check_input_dim(input)
        self.num_batches_tracked.add_(1)
        factor = 1.0 / self.num_batches_tracked
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight,
                            self.bias, True, factor, self.eps)
    return forward
