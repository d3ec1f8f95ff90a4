"""torch.nn.functional's activations, softmax, dropout, normalization and embedding on
tracers, with the NumPy-vocabulary operations the C tracer implements (the rest of the
torch vocabulary: _torch_ops.py, whose FUNCS table names these too)."""
import numpy as np

from . import _C
from ._C import TraceError
from ._torch_ops import _NP_SHAPE, _ew, _np_dtype, _torch, mean, norm, sigmoid, where

def softplus(x, beta=1.0, threshold=20.0):
    bx = x * beta if beta != 1 else x
    sp = np.log1p(np.exp(bx))
    return np.where(bx > threshold, x, sp / beta if beta != 1 else sp)


def logsigmoid(x):
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def leaky_relu(x, negative_slope=0.01, inplace=False):
    return np.where(x > 0, x, x * negative_slope)


def elu(x, alpha=1.0, inplace=False):
    return np.where(x > 0, x, alpha * np.expm1(x))


def selu(x, inplace=False):
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return scale * np.where(x > 0, x, alpha * np.expm1(x))


def gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1.0 + _ew("ERF", x * 0.7071067811865476))


def silu(x, inplace=False):
    return x * sigmoid(x)


def mish(x, inplace=False):
    return x * np.tanh(softplus(x))


def hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
    return np.minimum(np.maximum(x, min_val), max_val)


def relu6(x, inplace=False):
    return hardtanh(x, 0.0, 6.0)


def softsign(x):
    return x / (1.0 + np.abs(x))


def _softmax_dim(x, dim):
    if dim is None:
        raise TraceError("softmax without dim= is deprecated in torch and not supported by "
                         "tracejit; pass dim")
    return dim


def softmax(x, dim=None, _stacklevel=3, dtype=None):
    dim = _softmax_dim(x, dim)
    if dtype is not None:
        x = x.astype(_np_dtype(dtype))
    e = np.exp(x - np.max(x, axis=dim, keepdims=True))
    return e / np.sum(e, axis=dim, keepdims=True)


def log_softmax(x, dim=None, _stacklevel=3, dtype=None):
    dim = _softmax_dim(x, dim)
    if dtype is not None:
        x = x.astype(_np_dtype(dtype))
    s = x - np.max(x, axis=dim, keepdims=True)
    return s - np.log(np.sum(np.exp(s), axis=dim, keepdims=True))


def _is_all_true(x):
    """torch._is_all_true(valid) on traced values (torch.distributions' argument and
    sample validation: `if not _is_all_true(valid): raise ValueError`): the trace takes
    the branch eager takes on valid input and checks the assumption at every call; a
    call whose values fail it raises ValueError at the user's line (_C._check)."""
    _C._check(x, "torch._is_all_true(...) (a torch.distributions validity check)")
    return _torch().tensor(True)


# In evaluation only: _torch.random_call drew training mode's masks (_torch_random.py)
def dropout(x, p=0.5, training=True, inplace=False):
    return x


def alpha_dropout(x, p=0.5, training=False, inplace=False):
    return x


def rrelu(x, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    return leaky_relu(x, (lower + upper) / 2)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(tuple(normalized_shape)), x.ndim))
    mu = np.mean(x, axis=axes, keepdims=True)
    d = x - mu
    v = np.mean(d * d, axis=axes, keepdims=True)
    y = d / np.sqrt(v + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def normalize(x, p=2.0, dim=1, eps=1e-12, out=None):
    return x / np.maximum(norm(x, p, dim, keepdim=True), eps)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    if max_norm is not None:
        raise TraceError("torch.nn.functional.embedding(max_norm=...) renormalizes the weight "
                         "in place, which tracejit does not support")
    if scale_grad_by_freq or sparse:
        raise TraceError("torch.nn.functional.embedding(scale_grad_by_freq=True or sparse=True) "
                         "is not supported by tracejit yet (its gradient is not the dense one)")
    rows = np.take(weight, input, axis=0)
    if padding_idx is None:
        return rows
    n = _NP_SHAPE.__get__(weight)[0]
    pad = padding_idx if padding_idx >= 0 else padding_idx + n
    # the padding row gets no gradient, as in eager: its lookups read a detached copy
    at_pad = np.expand_dims(input == pad, -1)
    return np.where(at_pad, _C._ad_detach(rows), rows)


def one_hot(tensor, num_classes=-1):
    if num_classes < 0:
        raise TraceError("torch.nn.functional.one_hot needs num_classes while tracing (the "
                         "default depends on the data)")
    return (np.expand_dims(tensor, -1) == np.arange(num_classes)).astype(np.int64)
