"""torch's fake quantization, for quantization-aware training (issue 23):
torch.fake_quantize_per_tensor_affine and fake_quantize_per_channel_affine, and
torch.round (round half to even, the rounding they use).

Forward, as torch's CPU kernels compute it: q = zero_point + nearbyint(x * inv) in x's
precision, inv = 1.0f / scale rounded to float32; per tensor, q clamped to [quant_min,
quant_max] in float (NaN -> quant_min, +inf -> quant_max) and out = (q - zero_point) *
scale in float32; per channel, q cast to int64 first (NaN, infinities and what int64
cannot hold -> INT64_MIN, so quant_min) and out in x's dtype.
Backward: the straight-through estimator with torch's clamp mask: d out / d x is 1
where quant_min <= q <= quant_max (NaN: 0), else 0; scale and zero_point get no
gradient (torch's non-learnable variants do not differentiate them).
"""
import numpy as np

from . import _C
from ._C import Tracer
from ._torch_ops import _NP_DTYPE, _is_float


def _dtype(x):
    return _NP_DTYPE.__get__(x) if isinstance(x, Tracer) else np.asarray(x).dtype


def _rint(x):
    """Round half to even (nearbyint), exactly: x - floor(x) is exact where x is not
    already an integer; the sign kept (-0.3 -> -0.0), NaN and infinities kept."""
    dt = _dtype(x)
    r = np.floor(x)
    d = x - r
    half = np.asarray(0.5, dt)
    up = (d > half) | ((d == half) & (np.fmod(r, np.asarray(2, dt)) != 0))
    return np.copysign(np.where(up, r + np.asarray(1, dt), r), x)


def _f32(v):
    """A scale or zero point as a float32 value (a number or an array/Tracer)."""
    if isinstance(v, Tracer):
        return _C._ad_detach(v).astype(np.float32)
    return np.asarray(v, dtype=np.float32)


def _fake_quantize(x, scale, zero_point, quant_min, quant_max, fn, per_channel):
    quant_min, quant_max = int(quant_min), int(quant_max)
    if quant_min > quant_max:
        raise RuntimeError("`quant_min` should be less than or equal to `quant_max`.")
    if not _is_float(x):
        raise RuntimeError(f"{fn}: expected a floating point input, got {_dtype(x)}")
    dt = _dtype(x)
    sc = _f32(scale)
    zp = _f32(zero_point).astype(dt)
    if per_channel:   # the scale in x's dtype; 1.0f / scale rounded to float
        sc = sc.astype(dt)
        inv = (np.asarray(1.0, dt) / sc).astype(np.float32).astype(dt)
    else:             # 1.0f / scale in float32
        inv = (np.float32(1.0) / sc).astype(dt)
    q = _rint(_C._ad_detach(x) * inv) + zp
    lo, hi = np.asarray(quant_min, dt), np.asarray(quant_max, dt)
    inside = (q >= lo) & (q <= hi)   # (NaN: outside)
    if per_channel:   # static_cast<int64_t>: NaN and what int64 cannot hold -> INT64_MIN
        big = np.asarray(2.0 ** 63, dt)
        qc = np.where((q >= -big) & (q < big), np.minimum(np.maximum(q, lo), hi), lo)
        out = (qc - zp) * sc
    else:             # clamped in float: NaN -> quant_min, +inf -> quant_max
        qc = np.where(q != q, lo, np.minimum(np.maximum(q, lo), hi))
        out = ((qc - zp).astype(np.float32) * sc).astype(dt)   # an integer times a float
    # out's value; the gradient of x where q was inside the range (straight-through)
    return np.where(inside, out + (x - _C._ad_detach(x)), out)


def fake_quantize_per_tensor_affine(input, scale, zero_point, quant_min, quant_max):
    for name, v in (("scale", scale), ("zero_point", zero_point)):
        if isinstance(v, Tracer) and np.ndim(v) != 0 and np.size(v) != 1:
            raise RuntimeError(f"fake_quantize_per_tensor_affine: {name} must be one element")
    if isinstance(scale, Tracer) and np.ndim(scale):
        scale = scale.reshape(())
    if isinstance(zero_point, Tracer) and np.ndim(zero_point):
        zero_point = zero_point.reshape(())
    return _fake_quantize(input, scale, zero_point, quant_min, quant_max,
                          "fake_quantize_per_tensor_affine", False)


def fake_quantize_per_channel_affine(input, scale, zero_point, axis, quant_min, quant_max):
    nd = np.ndim(input)
    axis = int(axis)
    if not 0 <= axis < nd:   # (torch takes no negative axis)
        raise RuntimeError("`axis` must be between 0 and number of dimensions of input")
    shape = [1] * nd
    shape[axis] = -1
    sc = scale.reshape(shape) if isinstance(scale, Tracer) else np.asarray(scale).reshape(shape)
    zp = (zero_point.reshape(shape) if isinstance(zero_point, Tracer)
          else np.asarray(zero_point).reshape(shape))
    return _fake_quantize(input, sc, zp, quant_min, quant_max,
                          "fake_quantize_per_channel_affine", True)


def round_(input, *, decimals=0, out=None):
    """torch.round: half to even; with decimals, x * 10^d rounded, divided back (d < 0:
    x / 10^-d rounded, multiplied back), as torch computes it; integers unchanged."""
    if out is not None:
        _C._trace_error("torch.round(out=) is not supported by tracejit yet")
    if not isinstance(decimals, int):
        _C._trace_error("torch.round(decimals=) takes a Python int")
    dt = _dtype(input)
    if dt.kind in "biu":
        if decimals:
            _C._trace_error("torch.round of integers with decimals is not supported by "
                            "tracejit yet")
        return input + np.asarray(0, dt)
    if decimals == 0:
        return _rint(input)
    scale = np.asarray(10.0 ** abs(decimals), dt)
    if decimals > 0:
        return _rint(input * scale) / scale
    return _rint(input / scale) * scale


FUNCS = {
    "fake_quantize_per_tensor_affine": fake_quantize_per_tensor_affine,
    "fake_quantize_per_channel_affine": fake_quantize_per_channel_affine,
    "round": round_,
}
