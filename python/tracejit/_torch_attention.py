"""Attention (see _torch_nn.py for the house rules): F.scaled_dot_product_attention and
F.multi_head_attention_forward, written with the vocabulary. nn.MultiheadAttention and
the nn.Transformer layers call the latter once their fast path is declined (they
decline it for an argument with __torch_function__; the tracer's Tensor.is_nested is
False)."""
import math

import numpy as np

from . import _C, _torch_random
from ._torch_ops import _NP_DTYPE, _NP_RESHAPE, _NP_SHAPE, _add, _matmul, _mul, linear, softmax


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    qs, ks = tuple(_NP_SHAPE.__get__(query)), tuple(_NP_SHAPE.__get__(key))
    L, S, E = qs[-2], ks[-2], qs[-1]
    if enable_gqa and len(qs) >= 3 and qs[-3] != ks[-3]:
        rep = qs[-3] // ks[-3]
        key = np.repeat(key, rep, axis=-3)
        value = np.repeat(value, rep, axis=-3)
    s = 1.0 / math.sqrt(E) if scale is None else float(scale)
    scores = _mul(_matmul(query, np.swapaxes(key, -1, -2)), s)
    dt = _NP_DTYPE.__get__(scores)
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not "
                               "be set when is_causal=True")
        keep = np.arange(S)[None, :] <= np.arange(L)[:, None]
        scores = np.where(keep, scores, np.asarray(-np.inf, dtype=dt))
    if attn_mask is not None:
        if _NP_DTYPE.__get__(attn_mask) == np.bool_:     # (lifted: a tracer)
            scores = np.where(attn_mask, scores, np.asarray(-np.inf, dtype=dt))
        else:
            scores = _add(scores, attn_mask)
    weights = softmax(scores, -1)
    if dropout_p:
        weights = _torch_random._dropout(weights, float(dropout_p),
                                         tuple(_NP_SHAPE.__get__(weights)), {})
    return _matmul(weights, value)


def _additive(mask, dtype):
    """A mask as torch's _canonical_mask makes it: bool (True: masked) -> 0 / -inf."""
    if mask is None or _NP_DTYPE.__get__(mask) != np.bool_:
        return mask
    return np.where(mask, np.asarray(-np.inf, dtype=dtype), np.asarray(0.0, dtype=dtype))


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    """torch's multi_head_attention_forward (torch/nn/functional.py), step for step."""
    if bias_k is not None or bias_v is not None or add_zero_attn or static_k is not None \
            or static_v is not None:
        _C._trace_error("nn.MultiheadAttention with add_bias_kv, add_zero_attn or static "
                         "keys is not supported by tracejit yet")
    batched = query.ndim == 3
    if not batched:
        query, key, value = (np.expand_dims(t, 1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = np.expand_dims(key_padding_mask, 0)
    T, B, E = tuple(_NP_SHAPE.__get__(query))
    S = _NP_SHAPE.__get__(key)[0]
    if E != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, "
                             f"but got {E}")
    H = num_heads
    hd = E // H
    dt = _NP_DTYPE.__get__(query)
    key_padding_mask = _additive(key_padding_mask, dt)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                           "Transformer module method `generate_square_subsequent_mask` to "
                           "create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None
    else:
        attn_mask = _additive(attn_mask, dt)
        if key_padding_mask is not None:
            is_causal = False
    if use_separate_proj_weight:
        bq = bk = bv = None
        if in_proj_bias is not None:
            bq, bk, bv = np.split(in_proj_bias, 3)
        ws = (q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        ws = np.split(in_proj_weight, 3)
        bq, bk, bv = np.split(in_proj_bias, 3) if in_proj_bias is not None else (None,) * 3
    q, k, v = (linear(t, w, b) for t, w, b in zip((query, key, value), ws, (bq, bk, bv)))
    if attn_mask is not None and attn_mask.ndim == 2:
        attn_mask = np.expand_dims(attn_mask, 0)
    q = np.swapaxes(_NP_RESHAPE(q, (T, B * H, hd)), 0, 1)
    k = np.swapaxes(_NP_RESHAPE(k, (S, B * H, hd)), 0, 1)
    v = np.swapaxes(_NP_RESHAPE(v, (S, B * H, hd)), 0, 1)
    if key_padding_mask is not None:
        kpm = np.broadcast_to(_NP_RESHAPE(key_padding_mask, (B, 1, 1, S)), (B, H, 1, S))
        kpm = _NP_RESHAPE(kpm, (B * H, 1, S))
        attn_mask = kpm if attn_mask is None else _add(attn_mask, kpm)
    if not training:
        dropout_p = 0.0
    if need_weights:
        scores = _matmul(_mul(q, 1.0 / math.sqrt(hd)), np.swapaxes(k, -1, -2))
        if attn_mask is not None:
            scores = _add(attn_mask, scores)
        w = softmax(scores, -1)
        if dropout_p > 0.0:
            w = _torch_random._dropout(w, float(dropout_p), tuple(_NP_SHAPE.__get__(w)), {})
        out = _NP_RESHAPE(np.swapaxes(_matmul(w, v), 0, 1), (T * B, E))
        out = _NP_RESHAPE(linear(out, out_proj_weight, out_proj_bias), (T, B, E))
        w = _NP_RESHAPE(w, (B, H, T, S))
        if average_attn_weights:
            w = np.mean(w, axis=1)
        if not batched:
            out, w = np.squeeze(out, axis=1), np.squeeze(w, axis=0)
        return _fresh(out), _fresh(w)
    if attn_mask is not None:
        attn_mask = (np.expand_dims(attn_mask, 0) if _NP_SHAPE.__get__(attn_mask)[0] == 1
                     else _NP_RESHAPE(attn_mask, (B, H, -1, S)))
    q, k, v = (_NP_RESHAPE(t, (B, H, -1, hd)) for t in (q, k, v))
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = _NP_RESHAPE(np.transpose(out, (2, 0, 1, 3)), (B * T, E))
    out = _NP_RESHAPE(linear(out, out_proj_weight, out_proj_bias), (T, B, E))
    if not batched:
        out = np.squeeze(out, axis=1)
    return _fresh(out), None


def _fresh(y):
    return y.astype(_NP_DTYPE.__get__(y))      # a new tensor, as eager's (not a view)


FUNCS = {"scaled_dot_product_attention": scaled_dot_product_attention,
         "multi_head_attention_forward": multi_head_attention_forward}
