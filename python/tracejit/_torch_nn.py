"""torch.nn's layers as compositions of the NumPy vocabulary (see _torch_ops.py for the
rules every implementation here follows): convolution as an im2col gather of strided
slices and one contraction (the contraction issue makes contractions fast), pooling as
reductions over the same windows, recurrent layers unrolled over the sequence at trace
time (torch's modules call the functional entry points torch.lstm, torch.gru,
torch.rnn_tanh, ... and their cells), normalization and attention.

A pooled maximum selects the first maximal element of each window (np.argmax then a
gather), as torch's max_pool does, so its gradient goes to that element only (a max
reduction's would be split between ties)."""
import numpy as np

from . import _C
from ._torch_ops import (_NP_DTYPE, _NP_RESHAPE, _NP_SHAPE, _add, _matmul, _mul, _no_out,
                         _np_dtype)


def _shape(x):
    return tuple(_NP_SHAPE.__get__(x))


def _tuple(v, n, what):
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return tuple(int(v[0]) for _ in range(n))
        if len(v) != n:
            raise ValueError(f"{what} must be an int or a {n}-tuple, got {v!r}")
        return tuple(int(a) for a in v)
    return (int(v),) * n


def _fresh(y):
    """y as a new array, not a view (eager's layers return new tensors: an in-place
    activation after them, nn.ReLU(inplace=True), writes nothing anyone else sees)."""
    return y.astype(_NP_DTYPE.__get__(y))


def _refuse(what):
    _C._trace_error(f"{what} is not supported by tracejit yet")


# ---- windows: the strided slices a convolution or a pool reads -------------------------

def _pad(x, nd, pads, value=0.0):
    """x padded on its last nd dims by pads[d] = (before, after)."""
    if not any(a or b for a, b in pads):
        return x
    widths = [(0, 0)] * (x.ndim - nd) + list(pads)
    if value == 0.0:
        return np.pad(x, widths)
    return np.pad(x, widths, constant_values=value)


def _out_len(n, k, s, d, ceil=False):
    span = d * (k - 1) + 1
    if ceil:
        out = -(-(n - span) // s) + 1
        if (out - 1) * s >= n:       # torch: the last window must start inside the input
            out -= 1
        return out
    return (n - span) // s + 1


def _windows(x, nd, kernel, stride, dilation, outs):
    """The kernel's windows of x's last nd dims: an array of shape x.shape[:-nd] +
    (prod(kernel),) + outs, the kernel's positions in row-major order."""
    lead = x.ndim - nd
    parts = []
    for pos in np.ndindex(*kernel):
        idx = [slice(None)] * lead
        for d in range(nd):
            start = pos[d] * dilation[d]
            idx.append(slice(start, start + stride[d] * (outs[d] - 1) + 1, stride[d]))
        parts.append(x[tuple(idx)])
    return np.stack(parts, axis=lead)


def _batched(x, nd, what):
    """(x with a batch dim, whether one was added): torch's layers take unbatched input."""
    if x.ndim == nd + 1:
        return np.expand_dims(x, 0), True
    if x.ndim != nd + 2:
        raise RuntimeError(f"{what}: expected {nd + 1}D (unbatched) or {nd + 2}D (batched) "
                           f"input, but got input of size: {list(_shape(x))}")
    return x, False


# ---- convolution ----------------------------------------------------------------------

def _conv(nd, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    what = f"conv{nd}d"
    x, unbatched = _batched(x, nd, what)
    wshape = _shape(weight)
    n, c = _shape(x)[:2]
    o, cg = wshape[:2]
    kernel = wshape[2:]
    stride, dilation = _tuple(stride, nd, "stride"), _tuple(dilation, nd, "dilation")
    if c != cg * groups:
        raise RuntimeError(f"{what}: expected input with {cg * groups} channels "
                           f"(weight {list(wshape)}, groups={groups}), got {c}")
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            total = [dilation[d] * (kernel[d] - 1) for d in range(nd)]
            pads = [(t // 2, t - t // 2) for t in total]   # torch: the odd one on the right
        else:
            raise ValueError(f"Invalid padding string {padding!r}")
    else:
        pads = [(p, p) for p in _tuple(padding, nd, "padding")]
    x = _pad(x, nd, pads)
    spatial = _shape(x)[2:]
    outs = tuple(_out_len(spatial[d], kernel[d], stride[d], dilation[d]) for d in range(nd))
    if any(v <= 0 for v in outs):
        raise RuntimeError(f"{what}: the kernel {list(kernel)} is larger than the (padded) "
                           f"input {list(spatial)}")
    cols = _windows(x, nd, kernel, stride, dilation, outs)   # (n, c, K, *outs)
    k = int(np.prod(kernel))
    length = int(np.prod(outs))
    # (n, groups, cg * K, L) and (groups, o/g, cg * K): one batched contraction
    cols = _NP_RESHAPE(cols, (n, groups, cg * k, length))
    w = _NP_RESHAPE(weight, (groups, o // groups, cg * k))
    y = _matmul(w, cols)                                      # (n, groups, o/g, L)
    y = _NP_RESHAPE(y, (n, o) + outs)
    if bias is not None:
        y = _add(y, _NP_RESHAPE(bias, (o,) + (1,) * nd))
    return _fresh(np.squeeze(y, axis=0) if unbatched else y)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(nd, x, weight, bias, stride, padding, output_padding, groups, dilation):
    """The transpose of a convolution: the input interleaved with stride - 1 zeros, padded
    by dilation * (kernel - 1) - padding (output_padding more after), convolved with the
    kernel flipped and its channel dims swapped within each group."""
    x, unbatched = _batched(x, nd, f"conv_transpose{nd}d")
    wshape = _shape(weight)
    cin, cog = wshape[:2]
    kernel = wshape[2:]
    stride, dilation = _tuple(stride, nd, "stride"), _tuple(dilation, nd, "dilation")
    padding, output_padding = _tuple(padding, nd, "padding"), _tuple(output_padding, nd,
                                                                      "output_padding")
    lead = x.ndim - nd
    for d in range(nd):
        s = stride[d]
        if s > 1:
            axis = lead + d
            shape = _shape(x)
            y = np.expand_dims(x, axis + 1)
            widths = [(0, 0)] * y.ndim
            widths[axis + 1] = (0, s - 1)
            y = _NP_RESHAPE(np.pad(y, widths), shape[:axis] + (shape[axis] * s,) + shape[axis + 1:])
            x = y[(slice(None),) * axis + (slice(0, (shape[axis] - 1) * s + 1),)]
    pads, crops = [], []
    for d in range(nd):
        before = dilation[d] * (kernel[d] - 1) - padding[d]
        after = before + output_padding[d]
        pads.append((max(before, 0), max(after, 0)))
        crops.append((max(-before, 0), max(-after, 0)))
    x = _pad(x, nd, pads)
    if any(a or b for a, b in crops):
        idx = (slice(None),) * lead + tuple(slice(a, _shape(x)[lead + d] - b)
                                            for d, (a, b) in enumerate(crops))
        x = x[idx]
    w = _NP_RESHAPE(weight, (groups, cin // groups, cog) + tuple(kernel))
    w = _NP_RESHAPE(np.swapaxes(w, 1, 2), (groups * cog, cin // groups) + tuple(kernel))
    w = np.flip(w, tuple(range(2, 2 + nd)))
    y = _conv(nd, x, w, bias, 1, 0, dilation, groups)
    return _fresh(np.squeeze(y, axis=0) if unbatched else y)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# ---- im2col and col2im: F.unfold, F.fold (nn.Unfold, nn.Fold) ---------------------------

def _fold_geometry(kernel_size, dilation, padding, stride):
    return (_tuple(kernel_size, 2, "kernel_size"), _tuple(dilation, 2, "dilation"),
            _tuple(padding, 2, "padding"), _tuple(stride, 2, "stride"))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """F.unfold: the windows of a (N, C, H, W) or (C, H, W) input as (N, C * kh * kw, L),
    the same gather a convolution reads."""
    x, unbatched = _batched(input, 2, "unfold")
    kernel, dilation, padding, stride = _fold_geometry(kernel_size, dilation, padding, stride)
    x = _pad(x, 2, [(p, p) for p in padding])
    spatial = _shape(x)[2:]
    outs = tuple(_out_len(spatial[d], kernel[d], stride[d], dilation[d]) for d in range(2))
    if any(v <= 0 for v in outs):
        raise RuntimeError(f"unfold: the kernel {list(kernel)} is larger than the (padded) "
                           f"input {list(spatial)}")
    n, c = _shape(x)[:2]
    cols = _windows(x, 2, kernel, stride, dilation, outs)
    y = _NP_RESHAPE(cols, (n, c * int(np.prod(kernel)), int(np.prod(outs))))
    return _fresh(np.squeeze(y, axis=0) if unbatched else y)


def _spread(v, axis, step, start, size):
    """v's elements along `axis` placed at start, start + step, ... of a zero line of
    length `size` (the strided slice's adjoint)."""
    shape = _shape(v)
    if step > 1:
        y = np.expand_dims(v, axis + 1)
        widths = [(0, 0)] * y.ndim
        widths[axis + 1] = (0, step - 1)
        y = _NP_RESHAPE(np.pad(y, widths), shape[:axis] + (shape[axis] * step,) + shape[axis + 1:])
        v = y[(slice(None),) * axis + (slice(0, (shape[axis] - 1) * step + 1),)]
    widths = [(0, 0)] * v.ndim
    widths[axis] = (start, size - start - _shape(v)[axis])
    return np.pad(v, widths)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """F.fold: col2im, each window's values summed into the (padded) output where
    unfold read them."""
    x, unbatched = _batched(input, 1, "fold")
    kernel, dilation, padding, stride = _fold_geometry(kernel_size, dilation, padding, stride)
    size = _tuple(output_size, 2, "output_size")
    padded = tuple(size[d] + 2 * padding[d] for d in range(2))
    outs = tuple(_out_len(padded[d], kernel[d], stride[d], dilation[d]) for d in range(2))
    n, ck, length = _shape(x)
    k = int(np.prod(kernel))
    if ck % k or length != int(np.prod(outs)):
        raise RuntimeError(f"fold: expected input of size (N, C * {k}, {int(np.prod(outs))}) "
                           f"for output_size {list(size)} and kernel {list(kernel)}, but got "
                           f"{list(_shape(input))}")
    blocks = _NP_RESHAPE(x, (n, ck // k, k) + outs)
    y = None
    for i, pos in enumerate(np.ndindex(*kernel)):
        part = blocks[:, :, i]
        for d in range(2):
            part = _spread(part, 2 + d, stride[d], pos[d] * dilation[d], padded[d])
        y = part if y is None else y + part
    y = y[:, :, padding[0]:padding[0] + size[0], padding[1]:padding[1] + size[1]]
    return _fresh(np.squeeze(y, axis=0) if unbatched else y)


def tensor_unfold(x, dimension, size, step):
    """Tensor.unfold: the windows of `size` elements every `step` along `dimension`, as
    a new last dim: a view of x in eager, so a strided view here (writes through it
    reach x, and x's reach it: csrc/trace/views_strided.c)."""
    nd = x.ndim
    d = dimension % max(nd, 1)
    n = _shape(x)[d] if nd else 1
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    m = (n - size) // step + 1
    if not nd:
        return _NP_RESHAPE(x, (1,))
    shape = list(_shape(x))
    shape[d] = m
    unit = [[int(e == k) for e in range(nd)] for k in range(nd)]
    coefs = unit[:d] + [[step if e == d else 0 for e in range(nd)]] + unit[d + 1:] + [unit[d]]
    return _C._strided_view(x, tuple(shape) + (size,), coefs, [0] * nd, False)


# ---- pooling --------------------------------------------------------------------------

def _pool_geometry(nd, x, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = _tuple(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else _tuple(stride, nd, "stride")
    padding = _tuple(padding, nd, "padding")
    dilation = _tuple(dilation, nd, "dilation")
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise RuntimeError("pad should be at most half of effective kernel size")
    spatial = _shape(x)[-nd:]
    outs = tuple(_out_len(spatial[d] + 2 * padding[d], kernel[d], stride[d], dilation[d],
                          ceil_mode) for d in range(nd))
    # ceil_mode: the last window may run past the padded input; pad it to hold it
    extra = [max(0, (outs[d] - 1) * stride[d] + dilation[d] * (kernel[d] - 1) + 1
                 - spatial[d] - 2 * padding[d]) for d in range(nd)]
    pads = [(padding[d], padding[d] + extra[d]) for d in range(nd)]
    return kernel, stride, dilation, outs, pads


def _max_pool(nd, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
              return_indices=False):
    if return_indices:
        _refuse(f"max_pool{nd}d(return_indices=True)")
    x, unbatched = _batched(x, nd, f"max_pool{nd}d")
    kernel, stride, dilation, outs, pads = _pool_geometry(nd, x, kernel_size, stride,
                                                           padding, dilation, ceil_mode)
    x = _pad(x, nd, pads, -np.inf)
    win = _windows(x, nd, kernel, stride, dilation, outs)     # (n, c, K, *outs)
    first = np.expand_dims(np.argmax(win, axis=2), 2)         # torch's: the first maximum
    y = np.squeeze(np.take_along_axis(win, first, axis=2), axis=2)
    return _fresh(np.squeeze(y, axis=0) if unbatched else y)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(nd, x, kernel_size, stride=None, padding=0, ceil_mode=False,
              count_include_pad=True, divisor_override=None):
    x, unbatched = _batched(x, nd, f"avg_pool{nd}d")
    kernel, stride, dilation, outs, pads = _pool_geometry(nd, x, kernel_size, stride,
                                                           padding, 1, ceil_mode)
    total = np.sum(_windows(_pad(x, nd, pads), nd, kernel, stride, dilation, outs), axis=2)
    if divisor_override is not None:
        y = total / float(divisor_override)
    elif not any(b != pads[d][0] for d, (a, b) in enumerate(pads)) and (
            count_include_pad or not any(a for a, _ in pads)):
        y = total / float(np.prod(kernel))
    else:   # windows clipped by ceil_mode (or padding not counted): their own counts
        spatial = _shape(x)[-nd:]
        ones = np.ones(spatial, dtype=_NP_DTYPE.__get__(x))
        inner = [(p if count_include_pad else 0, p if count_include_pad else 0)
                 for p, _ in pads]
        ones = np.pad(ones, inner, constant_values=1.0)
        outer = [(a - i[0], b - i[1]) for (a, b), i in zip(pads, inner)]
        ones = np.pad(ones, outer)
        counts = np.sum(_windows(ones, nd, kernel, stride, dilation, outs), axis=0)
        y = total / counts.astype(_NP_DTYPE.__get__(x))
    return _fresh(np.squeeze(y, axis=0) if unbatched else y)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _adaptive_avg(nd, x, output_size):
    x, unbatched = _batched(x, nd, f"adaptive_avg_pool{nd}d")
    spatial = _shape(x)[-nd:]
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * nd
    size = tuple(spatial[d] if s is None else int(s) for d, s in enumerate(size))
    y = x
    for d in range(nd):      # one dim at a time: each output cell averages its range
        axis = y.ndim - nd + d
        n, m = spatial[d], size[d]
        if n % m == 0:
            shape = _shape(y)
            y = np.mean(_NP_RESHAPE(y, shape[:axis] + (m, n // m) + shape[axis + 1:]),
                        axis=axis + 1)
            continue
        parts = []
        for i in range(m):
            lo, hi = (i * n) // m, -(-((i + 1) * n) // m)
            idx = (slice(None),) * axis + (slice(lo, hi),)
            parts.append(np.mean(y[idx], axis=axis, keepdims=True))
        y = np.concatenate(parts, axis=axis)
    return _fresh(np.squeeze(y, axis=0) if unbatched else y)


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg(1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive_avg(2, input, output_size)


FUNCS = {
    "conv1d": conv1d, "conv2d": conv2d, "conv3d": conv3d, "conv_transpose1d": conv_transpose1d,
    "conv_transpose2d": conv_transpose2d, "max_pool1d": max_pool1d,
    "max_pool2d": max_pool2d, "avg_pool1d": avg_pool1d, "avg_pool2d": avg_pool2d,
    "adaptive_avg_pool1d": adaptive_avg_pool1d, "adaptive_avg_pool2d": adaptive_avg_pool2d,
}


def pixel_shuffle(input, upscale_factor):
    r = int(upscale_factor)
    s = _shape(input)
    c = s[-3] // (r * r)
    y = _NP_RESHAPE(input, s[:-3] + (c, r, r) + s[-2:])
    lead = len(s) - 3
    y = np.transpose(y, tuple(range(lead)) + tuple(lead + d for d in (0, 3, 1, 4, 2)))
    return _fresh(_NP_RESHAPE(y, s[:-3] + (c, s[-2] * r, s[-1] * r)))


def pixel_unshuffle(input, downscale_factor):
    r = int(downscale_factor)
    s = _shape(input)
    h, w = s[-2] // r, s[-1] // r
    y = _NP_RESHAPE(input, s[:-2] + (h, r, w, r))
    lead = len(s) - 3
    y = np.transpose(y, tuple(range(lead)) + tuple(lead + d for d in (0, 2, 4, 1, 3)))
    return _fresh(_NP_RESHAPE(y, s[:-3] + (s[-3] * r * r, h, w)))


# ---- the rest seen in real models -----------------------------------------------------

def _band(x, diagonal, lower):
    s = _shape(x)
    if len(s) < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least 2 "
                           "dimensions")
    i = np.arange(s[-2])[:, None]
    j = np.arange(s[-1])[None, :]
    keep = (j - i <= diagonal) if lower else (j - i >= diagonal)
    return np.where(keep, x, np.zeros((), dtype=_NP_DTYPE.__get__(x)))


def tril(input, diagonal=0, out=None):
    _no_out(out, "tril")
    return _band(input, int(diagonal), True)


def triu(input, diagonal=0, out=None):
    _no_out(out, "triu")
    return _band(input, int(diagonal), False)


def _scaled_sum(input, product, beta, alpha):
    p = product if alpha == 1 else _mul(product, alpha)
    if beta == 0:   # torch: input is ignored (its NaNs too), its gradient zeros (not None)
        ignored = np.zeros(tuple(_NP_SHAPE.__get__(input)), dtype=np.bool_)
        return _add(np.where(ignored, input, np.zeros((), dtype=_NP_DTYPE.__get__(p))), p)
    return _add(input if beta == 1 else _mul(input, beta), p)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    _no_out(out, "baddbmm")
    return _scaled_sum(input, _matmul(batch1, batch2), beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    _no_out(out, "addbmm")
    return _scaled_sum(input, np.sum(_matmul(batch1, batch2), axis=0), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1, out=None):
    _no_out(out, "addmv")
    return _scaled_sum(input, _matmul(mat, vec), beta, alpha)


def addr(input, vec1, vec2, *, beta=1, alpha=1, out=None):
    _no_out(out, "addr")
    return _scaled_sum(input, np.outer(vec1, vec2), beta, alpha)


def _new_shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _new_dtype(x, dtype):
    return _np_dtype(dtype) if dtype is not None else _NP_DTYPE.__get__(x)


def _new(fill):
    def f(x, *size, dtype=None, device=None, requires_grad=False, layout=None,
          pin_memory=False):
        return np.full_like(x, fill, dtype=_new_dtype(x, dtype), shape=_new_shape(size))
    return f


def new_full(x, size, fill_value, *, dtype=None, device=None, requires_grad=False,
             layout=None, pin_memory=False):
    return np.full_like(x, fill_value, dtype=_new_dtype(x, dtype), shape=_new_shape((size,)))


def new_tensor(x, data, *, dtype=None, device=None, requires_grad=False, layout=None,
               pin_memory=False):
    """Tensor.new_tensor(data): a copy of data in x's dtype (or dtype=); of a traced
    value, a detached copy (eager detaches a tensor given as data, with a warning)."""
    dt = _new_dtype(x, dtype)
    if isinstance(data, _C.Tracer):
        return data.detach().astype(dt)
    arr = np.asarray(data, dtype=dt)
    return np.full_like(x, 0, dtype=dt, shape=arr.shape) + arr


FUNCS.update({
    "is_floating_point": lambda x: _NP_DTYPE.__get__(x).kind == "f",
    "is_complex": lambda x: False, "pixel_shuffle": pixel_shuffle, "pixel_unshuffle": pixel_unshuffle, "tril": tril,
    "triu": triu, "baddbmm": baddbmm, "addbmm": addbmm, "addmv": addmv, "addr": addr,
})
# Tensor methods only
METHODS = {"new_zeros": _new(0), "new_ones": _new(1), "new_full": new_full, "new_tensor": new_tensor,
           "unfold": tensor_unfold}     # Tensor.unfold, not F.unfold


# ---- normalization ------------------------------------------------------------------

def _channel(v, ndim):
    """A per-channel vector shaped to broadcast against (N, C, ...)."""
    return _NP_RESHAPE(v, (-1,) + (1,) * (ndim - 2))


def _affine(y, weight, bias, ndim):
    if weight is not None:
        y = _mul(y, _channel(weight, ndim))
    if bias is not None:
        y = _add(y, _channel(bias, ndim))
    return y


def _standardize(x, axes, eps):
    mu = np.mean(x, axis=axes, keepdims=True)
    d = x - mu
    return d / np.sqrt(np.mean(d * d, axis=axes, keepdims=True) + eps)


def _update_stats(running, new, momentum, what):
    """running = (1 - momentum) * running + momentum * new, in place (the caller's
    buffer: written back at every call, csrc/trace/write.c), as torch's kernel."""
    if running is not None:
        _C._assign(running, _add(_mul(running, 1 - momentum), _mul(new, momentum)),
                   f"batch_norm's update of {what}")


def _stats(x, axes, eps):
    """(x standardized over axes, the mean, the biased variance, the count per mean)."""
    mu = np.mean(x, axis=axes, keepdims=True)
    d = x - mu
    var = np.mean(d * d, axis=axes, keepdims=True)
    s = _shape(x)
    n = int(np.prod([s[a] for a in axes]))
    return d / np.sqrt(var + eps), mu, var, n


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """In training mode the running statistics, when given, are updated in place as
    torch's kernel does: the batch mean, and the unbiased batch variance; `momentum` may
    be traced (nn.BatchNorm's cumulative average: 1 / num_batches_tracked)."""
    nd = input.ndim
    if training:
        y, mu, var, n = _stats(input, (0,) + tuple(range(2, nd)), eps)
        if running_mean is not None or running_var is not None:
            c = (_shape(input)[1],)
            _update_stats(running_mean, _NP_RESHAPE(mu, c), momentum, "running_mean")
            _update_stats(running_var, _NP_RESHAPE(var, c) * (n / max(n - 1, 1)), momentum,
                          "running_var")
    else:
        y = (input - _channel(running_mean, nd)) / np.sqrt(_channel(running_var, nd) + eps)
    return _affine(y, weight, bias, nd)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """With running statistics (track_running_stats=True) in training, each is updated
    with the mean over the batch of the per-instance statistics, as torch's
    instance_norm (a batch_norm over (1, N*C, ...)) does."""
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    y, mu, var, n = _stats(input, tuple(range(2, input.ndim)), eps)
    if running_mean is not None or running_var is not None:
        nc = _shape(input)[:2]
        _update_stats(running_mean, np.mean(_NP_RESHAPE(mu, nc), axis=0), momentum,
                      "running_mean")
        _update_stats(running_var, np.mean(_NP_RESHAPE(var, nc), axis=0) * (n / max(n - 1, 1)),
                      momentum, "running_var")
    return _affine(y, weight, bias, input.ndim)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    s = _shape(input)
    g = _NP_RESHAPE(input, (s[0], num_groups, -1))
    y = _NP_RESHAPE(_standardize(g, (2,), eps), s)
    return _fresh(_affine(y, weight, bias, len(s)))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    n = len(tuple(normalized_shape)) if isinstance(normalized_shape, (tuple, list)) else 1
    axes = tuple(range(input.ndim - n, input.ndim))
    if eps is None:
        eps = float(np.finfo(_NP_DTYPE.__get__(input)).eps)
    y = input / np.sqrt(np.mean(input * input, axis=axes, keepdims=True) + eps)
    return y if weight is None else _mul(y, weight)


FUNCS.update({"batch_norm": batch_norm, "instance_norm": instance_norm,
              "group_norm": group_norm, "rms_norm": rms_norm})


def pad(input, pad, mode="constant", value=None):
    """F.pad: (left, right) pairs from the last dim backwards; a negative width crops."""
    if mode != "constant":
        _C._trace_error(f"torch.nn.functional.pad(mode={mode!r}) is not supported by "
                         "tracejit yet (only mode='constant')")
    pairs = [(int(pad[2 * k]), int(pad[2 * k + 1])) for k in range(len(pad) // 2)]
    nd = input.ndim
    widths = [(0, 0)] * nd
    crop = [slice(None)] * nd
    for k, (a, b) in enumerate(pairs):
        d = nd - 1 - k
        widths[d] = (max(a, 0), max(b, 0))
        n = _shape(input)[d] + max(a, 0) + max(b, 0)
        crop[d] = slice(max(-a, 0), n - max(-b, 0))
    v = 0.0 if value is None else value
    y = np.pad(input, widths, constant_values=v) if v != 0.0 else np.pad(input, widths)
    return _fresh(y[tuple(crop)])


def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal as a strided view (one dim stepping both dims), a view as in eager."""
    nd = input.ndim
    d1, d2 = dim1 % nd, dim2 % nd
    if d1 == d2:
        raise RuntimeError("diagonal dimensions cannot be identical")
    return _diagonal_view(input, offset, d1, d2, False)


def _diagonal_view(x, offset, d1, d2, readonly):
    """x's diagonal over dims d1, d2 (normalized, distinct) as the last dim of a view."""
    s, nd = _shape(x), len(_shape(x))
    n, m = s[d1], s[d2]
    length = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    rest = [e for e in range(nd) if e not in (d1, d2)]
    coefs = [[int(e == r) for e in range(nd)] for r in rest]
    coefs.append([int(e in (d1, d2)) for e in range(nd)])
    offs = [0] * nd
    if length:
        offs[d1], offs[d2] = max(0, -offset), max(0, offset)
    return _C._strided_view(x, tuple(s[r] for r in rest) + (length,), coefs, offs, readonly)


FUNCS.update({"pad": pad, "diagonal": diagonal, "unfold": unfold, "fold": fold})


# ---- resampling ---------------------------------------------------------------------

def _out_sizes(spatial, size, scale_factor):
    nd = len(spatial)
    if size is not None:
        sizes = _tuple(size, nd, "size")
        return sizes, [None] * nd
    scales = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else \
        [scale_factor] * nd
    return tuple(int(np.floor(n * float(s))) for n, s in zip(spatial, scales)), \
        [float(s) for s in scales]


def _nearest_index(n_in, n_out, scale):
    """ATen's nearest_idx: the source of each output element."""
    if n_out == n_in:
        return np.arange(n_out)
    if n_out == 2 * n_in:
        return np.arange(n_out) >> 1
    s = np.float32(1.0 / scale if scale is not None else n_in / n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * s).astype(np.int64)
    return np.minimum(src, n_in - 1)


def _linear_weights(n_in, n_out, scale, align_corners, dtype):
    """ATen's area_pixel_compute_source_index, linear: (i0, i1, l0, l1) per output."""
    acc = np.float64 if dtype == np.float64 else np.float32
    dst = np.arange(n_out, dtype=acc)
    if align_corners:
        s = acc((n_in - 1) / (n_out - 1)) if n_out > 1 else acc(0)
        src = dst * s
    else:
        s = acc(1.0 / scale if scale is not None else n_in / n_out)
        src = np.maximum(s * (dst + acc(0.5)) - acc(0.5), acc(0))
    i0 = src.astype(np.int64)
    i1 = i0 + (i0 < n_in - 1)
    l1 = (src - i0).astype(dtype)
    return i0, i1, (acc(1) - l1).astype(dtype), l1


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    nd = input.ndim - 2
    linear_mode = {1: "linear", 2: "bilinear"}.get(nd)
    if antialias or mode not in ("nearest", linear_mode):
        _C._trace_error(f"torch.nn.functional.interpolate(mode={mode!r}"
                         f"{', antialias=True' if antialias else ''}) on {nd + 2}-d input is "
                         "not supported by tracejit yet (nearest, linear, bilinear)")
    spatial = _shape(input)[2:]
    outs, scales = _out_sizes(spatial, size, scale_factor)
    if recompute_scale_factor:
        scales = [None] * nd
    dt = _NP_DTYPE.__get__(input)
    y = input
    for d in range(nd):
        axis = 2 + d
        if mode == "nearest":
            y = np.take(y, _nearest_index(spatial[d], outs[d], scales[d]), axis=axis)
            continue
        i0, i1, l0, l1 = _linear_weights(spatial[d], outs[d], scales[d], bool(align_corners), dt)
        shape = (-1,) + (1,) * (nd - 1 - d)
        y = _add(_mul(np.take(y, i0, axis=axis), l0.reshape(shape)),
                 _mul(np.take(y, i1, axis=axis), l1.reshape(shape)))
    return _fresh(y)


FUNCS["interpolate"] = interpolate
