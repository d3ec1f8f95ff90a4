"""Dynamic INT8 quantization (issue 23): tracejit.quantize_dynamic.

Each nn.Linear of the spec becomes a QuantLinear holding its weight quantized once
(int8, symmetric, one scale per output channel) with the float32 scales and bias. Its
forward is plain torch code, traced with the rest of the model: the activation is
quantized per row (symmetric, 127 levels: scale = max|x| / 127 over the last dim), the
product is a sum of int8 values widened to int32, which lowering recognizes as an int8
GEMM (csrc/fuse/lower.c TJ_CONTRACT_S8, csrc/emit/qgemm.c: VNNI, AVX2 or portable, exact
integer sums), and the dequantization (row scale x channel scale), bias and whatever
elementwise layer follows (ReLU, GELU...) are one fused loop after it. The compiled model
computes what this forward computes eagerly (the integer sums are exact, the float ops
the same ops), not what torch's quantized kernels compute (per-tensor, asymmetric
activations, reduce_range): the two agree within quantization error, which the tests
bound.

A row with NaN or infinity gives NaN (its scale is not finite); an all-zero row gives
the bias. The quantized model has no backward (rounding to int8): a call that needs
one raises TraceError, as does a spec or dtype other than {nn.Linear} and qint8."""
import copy

from . import _C, CompiledModule, TraceError

_QMAX = 127


def _torch():
    import torch
    return torch


def _quantize_weight(w):
    """int8 weight, per-output-channel float32 scale (w ~= q * scale[:, None])."""
    torch = _torch()
    w = w.detach().to(torch.float32)
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax == 0, torch.ones_like(amax), amax / _QMAX)
    q = torch.clamp(torch.round(w / scale[:, None]), -_QMAX, _QMAX).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def quantize_rows(x):
    """x (..., K) float32 -> (int8 values, float32 scale (..., 1)): symmetric per row,
    round half up (floor(v + 0.5)); a non-finite row's values are 0 and its scale NaN
    or infinity, so its products are not finite."""
    torch = _torch()
    amax = x.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(amax == 0, torch.ones_like(amax), amax / _QMAX)   # NaN stays NaN
    v = torch.floor(x * (1.0 / scale) + 0.5)
    v = torch.where(v == v, v, torch.zeros_like(v))   # NaN (0 * inf, inf / inf) -> 0
    return torch.clamp(v, -_QMAX, _QMAX).to(torch.int8), scale


def int8_matmul_t(xq, wq):
    """xq (..., K) int8 times wq (N, K) int8 transposed: int64 (..., N), exact. Traced,
    the pattern lowering turns into the int8 GEMM (a sum of int8 products widened to
    int32); eagerly (the module called outside a trace, or a compiled call's eager
    fallback) the same integers from a float64 product (exact: |sum| <= 2^14 K < 2^53),
    not the (..., N, K) int32 array the pattern spells."""
    torch = _torch()
    if isinstance(xq, _C.Tracer):
        return (xq.unsqueeze(-2).to(torch.int32) * wq.to(torch.int32)).sum(-1)
    return torch.matmul(xq.to(torch.float64), wq.to(torch.float64).T).to(torch.int64)


def _make_quant_linear():
    torch = _torch()

    class QuantLinear(torch.nn.Module):
        """nn.Linear with an int8 weight (per output channel) and per-row int8 activations."""

        def __init__(self, linear):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            q, s = _quantize_weight(linear.weight)
            self.register_buffer("weight_int8", q)
            self.register_buffer("weight_scale", s)
            b = linear.bias
            self.register_buffer("bias", None if b is None
                                 else b.detach().to(torch.float32).clone())

        def forward(self, x):
            if x.dtype != torch.float32:
                _C._trace_error(f"tracejit.quantize_dynamic's Linear takes float32 input, "
                                f"not {x.dtype}")
            xq, xs = quantize_rows(x)
            y = int8_matmul_t(xq, self.weight_int8).to(torch.float32) * (xs * self.weight_scale)
            return y if self.bias is None else y + self.bias

        def extra_repr(self):
            return (f"in_features={self.in_features}, out_features={self.out_features}, "
                    f"dtype=torch.qint8, bias={self.bias is not None}")

    return QuantLinear


_QuantLinear = None


def _quant_linear_type():
    global _QuantLinear
    if _QuantLinear is None:
        _QuantLinear = _make_quant_linear()
    return _QuantLinear


class QuantizedModule(CompiledModule):
    """tracejit.quantize_dynamic's result: a CompiledModule of the model with its Linear
    layers replaced by QuantLinear (`.module`). It has no backward."""

    def __call__(self, *args, **kwargs):
        torch = _torch()
        if torch.is_grad_enabled():
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, torch.Tensor) and a.requires_grad:
                    raise TraceError("a tracejit.quantize_dynamic model has no backward (its "
                                     "activations are rounded to int8): call it under "
                                     "torch.no_grad() or with inputs that do not require grad")
        return self._cf(self.module.training, *args, **kwargs)

    def weight_bytes(self):
        """Bytes of the model's parameters and buffers (the int8 weights, their scales,
        biases and whatever layers stayed float)."""
        seen, total = set(), 0
        for t in list(self.module.parameters()) + list(self.module.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
        return total


def _check_spec(qconfig_spec, dtype):
    torch = _torch()
    if dtype != torch.qint8:
        raise TraceError(f"tracejit.quantize_dynamic(dtype={dtype}) is not supported: only "
                         f"torch.qint8 (int8 weights and activations)")
    if qconfig_spec is None:
        return {torch.nn.Linear}
    if isinstance(qconfig_spec, dict):
        raise TraceError("tracejit.quantize_dynamic with a dict qconfig_spec is not supported: "
                         "pass a set of module types ({torch.nn.Linear})")
    spec = set(qconfig_spec)
    for t in spec:
        if t is not torch.nn.Linear:
            name = getattr(t, "__name__", repr(t))
            raise TraceError(f"tracejit.quantize_dynamic of {name} is not supported: only "
                             f"torch.nn.Linear is quantized")
    return spec


def _swap(module, spec, qlin):
    for name, child in module.named_children():
        if type(child) in spec:
            setattr(module, name, qlin(child))
        else:
            _swap(child, spec, qlin)


def quantize_dynamic(model, qconfig_spec=None, dtype=None, inplace=False, **limits):
    """torch.ao.quantization.quantize_dynamic's signature: the model's nn.Linear layers
    (exactly that type, as torch matches) with int8 weights and per-row int8 activations,
    compiled (a QuantizedModule). Refuses (TraceError) other module types in the spec and
    dtypes other than torch.qint8."""
    torch = _torch()
    spec = _check_spec(qconfig_spec, torch.qint8 if dtype is None else dtype)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"tracejit.quantize_dynamic expects a torch.nn.Module, got "
                        f"{type(model).__name__}")
    m = model if inplace else copy.deepcopy(model)
    qlin = _quant_linear_type()
    if type(m) in spec:
        m = qlin(m)
    else:
        _swap(m, spec, qlin)
    return QuantizedModule(m, **limits)
