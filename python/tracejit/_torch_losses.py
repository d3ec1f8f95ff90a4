"""torch's loss functions (torch.nn.functional), written with the NumPy vocabulary as
_torch_ops.py's implementations are (see there). Reductions follow torch's: "mean",
"sum", "none", and the legacy size_average/reduce flags."""
import numpy as np

from . import _C
from ._C import Tracer
from ._torch_ops import _NP_DTYPE, _NP_SHAPE, _is_float, log_softmax, xlogy


def _reduce(loss, reduction, name):
    if reduction == "mean":
        return np.mean(loss)
    if reduction == "sum":
        return np.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _legacy(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    softplus_neg = np.maximum(-input, 0.0) + np.log1p(np.exp(-np.abs(input)))   # log(1+e^-x)
    if pos_weight is not None:
        log_weight = (pos_weight - 1.0) * target + 1.0
        loss = (1.0 - target) * input + log_weight * softplus_neg
    else:
        loss = (1.0 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, _legacy(size_average, reduce, reduction), "bce_with_logits")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    loss = -(target * np.maximum(np.log(input), -100.0) +
             (1.0 - target) * np.maximum(np.log(1.0 - input), -100.0))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, _legacy(size_average, reduce, reduction), "binary_cross_entropy")


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    d = input - target
    loss = d * d if weight is None else weight * d * d
    return _reduce(loss, _legacy(size_average, reduce, reduction), "mse_loss")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    loss = np.abs(input - target)
    return _reduce(loss if weight is None else weight * loss,
                   _legacy(size_average, reduce, reduction), "l1_loss")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    reduction = _legacy(size_average, reduce, reduction)
    if _is_float(target):
        _C._trace_error("torch.nn.functional.nll_loss expects class indices (an integer "
                         "target)")
    ignored = target == ignore_index
    safe = np.where(ignored, 0, target)
    picked = -np.squeeze(np.take_along_axis(input, np.expand_dims(safe, 1), axis=1), axis=1)
    w = np.where(ignored, 0.0, 1.0) if weight is None else np.where(ignored, 0.0, np.take(weight, safe))
    w = w.astype(_NP_DTYPE.__get__(input)) if isinstance(w, Tracer) else w
    loss = picked * w
    if reduction == "mean":
        return np.sum(loss) / np.sum(w)
    return _reduce(loss, reduction, "nll_loss")


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    class_dim = 1 if input.ndim > 1 else 0
    logp = log_softmax(input, class_dim)
    n_classes = _NP_SHAPE.__get__(input)[class_dim]
    if label_smoothing and not _is_float(target):
        return _smoothed(input, logp, target, weight, ignore_index,
                         _legacy(size_average, reduce, reduction), float(label_smoothing),
                         class_dim, n_classes)
    if _is_float(target):               # class probabilities
        if label_smoothing:
            target = target * (1.0 - label_smoothing) + label_smoothing / n_classes
        reduction = _legacy(size_average, reduce, reduction)
        w = 1.0 if weight is None else weight.reshape((-1,) + (1,) * (input.ndim - 2))
        loss = -np.sum(logp * target * w, axis=class_dim)
        if reduction == "mean":
            return np.sum(loss) / int(np.prod(_NP_SHAPE.__get__(loss), dtype=np.int64))
        return _reduce(loss, reduction, "cross_entropy")
    if input.ndim == 1:
        logp, target = np.expand_dims(logp, 0), np.expand_dims(target, 0)
        r = nll_loss(logp, target, weight, size_average, ignore_index, reduce, reduction)
        return r if reduction != "none" else np.squeeze(r, axis=0)
    return nll_loss(logp, target, weight, size_average, ignore_index, reduce, reduction)


def _smoothed(input, logp, target, weight, ignore_index, reduction, eps, class_dim, n_classes):
    """ATen's cross_entropy_loss_label_smoothing: (1 - eps) * nll + eps / C * the loss
    against the uniform distribution (weighted, ignored targets zero)."""
    if input.ndim == 1:
        return _smoothed(np.expand_dims(input, 0), np.expand_dims(logp, 0),
                         np.expand_dims(target, 0), weight, ignore_index,
                         reduction, eps, 1, n_classes)[0 if reduction == "none" else ()]
    nll = nll_loss(logp, target, weight, None, ignore_index, None, reduction)
    ignored = target == ignore_index
    w = 1.0 if weight is None else weight.reshape((-1,) + (1,) * (input.ndim - 2))
    smooth = np.where(ignored, 0.0, -np.sum(logp * w, axis=class_dim))
    if reduction == "mean":
        if weight is None:
            total = np.sum(~ignored).astype(_NP_DTYPE.__get__(logp))
        else:
            total = np.sum(np.where(ignored, 0.0, np.take(weight, np.where(ignored, 0, target))))
        smooth = np.sum(smooth) / total
    elif reduction == "sum":
        smooth = np.sum(smooth)
    return (1.0 - eps) * nll + smooth * (eps / n_classes)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    d = np.abs(input - target)
    loss = d if beta == 0 else np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, _legacy(size_average, reduce, reduction), "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    d = np.abs(input - target)
    loss = np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return _reduce(loss if weight is None else weight * loss, reduction, "huber_loss")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    if log_target:
        loss = np.exp(target) * (target - input)
    else:
        loss = xlogy(target, target) - target * input       # as ATen writes it
    reduction = _legacy(size_average, reduce, reduction)
    if reduction == "batchmean":
        return np.sum(loss) / _NP_SHAPE.__get__(input)[0] if input.ndim else np.sum(loss)
    return _reduce(loss, reduction, "kl_div")


FUNCS = {
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "binary_cross_entropy": binary_cross_entropy, "mse_loss": mse_loss, "l1_loss": l1_loss,
    "nll_loss": nll_loss, "cross_entropy": cross_entropy, "smooth_l1_loss": smooth_l1_loss,
    "huber_loss": huber_loss, "kl_div": kl_div,
}
