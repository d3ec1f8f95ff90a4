"""Samples (tests/torch_samples.py's table) for torch.nn's layers: convolution, pooling,
recurrence, attention, normalization, and the tensor helpers real models use."""
import torch
import torch.nn.functional as F

from torch_samples import B, I, K, R, Sample as S

_VF = torch._VF


def _lstm(bidirectional, layers, batch_first, bias=True):
    def f(x, h, c, *w):
        return _VF.lstm(x, (h, c), list(w), bias, layers, 0.0, False, bidirectional,
                        batch_first)
    return f


def _net(name, bidirectional, layers, batch_first, bias=True):
    fn = getattr(_VF, name)

    def f(x, h, *w):
        return fn(x, h, list(w), bias, layers, 0.0, False, bidirectional, batch_first)
    return f


def _weights(layers, dirs, gates, hidden, inp, bias=True):
    out = []
    for layer in range(layers):
        width = inp if layer == 0 else hidden * dirs
        for _ in range(dirs):
            out += [R(gates * hidden, width, lo=-0.5, hi=0.5), R(gates * hidden, hidden, lo=-0.5, hi=0.5)]
            if bias:
                out += [R(gates * hidden, lo=-0.5, hi=0.5), R(gates * hidden, lo=-0.5, hi=0.5)]
    return out


def _conv_samples():
    x = R(2, 4, 5, 6)
    return [
        S("conv2d", F.conv2d, x, R(3, 4, 3, 2), R(3)),
        S("conv2d", lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
          x, R(3, 4, 2, 2), label="stride padding dilation"),
        S("conv2d", lambda x, w: F.conv2d(x, w, padding="same", dilation=2), x, R(3, 4, 2, 3),
          label="same"),
        S("conv2d", lambda x, w, b: F.conv2d(x, w, b, groups=2, padding="valid"), x,
          R(4, 2, 3, 3), R(4), label="groups"),
        S("conv2d", lambda x, w: F.conv2d(x, w, padding=1), R(4, 5, 5), R(2, 4, 3, 3),
          label="unbatched"),
        S("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), R(2, 3, 9),
          R(4, 3, 3), R(4)),
        S("conv1d", lambda x, w: F.conv1d(x, w, padding="same", groups=3), R(3, 7),
          R(6, 1, 3), label="same groups unbatched"),
        S("conv3d", lambda x, w: F.conv3d(x, w, padding=1, stride=2), R(1, 2, 4, 3, 4),
          R(2, 2, 2, 2, 2)),
        S("conv_transpose2d", F.conv_transpose2d, x, R(4, 3, 3, 2), R(3)),
        S("conv_transpose2d", lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1,
                                                           output_padding=1), x,
          R(4, 3, 3, 3), label="stride output_padding"),
        S("conv_transpose2d", lambda x, w: F.conv_transpose2d(x, w, stride=(2, 1), padding=(2, 0),
                                                           groups=2, dilation=2), x,
          R(4, 3, 3, 2), label="groups dilation"),
        S("conv_transpose1d", lambda x, w: F.conv_transpose1d(x, w, stride=3, padding=1),
          R(2, 4, 5), R(4, 2, 4)),
        S("max_pool2d", lambda x: F.max_pool2d(x, 2), x),
        S("max_pool2d", lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), x,
          label="padding ceil"),
        S("max_pool2d", lambda x: F.max_pool2d(F.relu(x.floor()), 2, stride=1), x,
          label="ties", gradcheck="the floor makes the finite differences step over ties"),
        S("max_pool1d", lambda x: F.max_pool1d(x, 3, stride=2, dilation=2), R(2, 3, 11)),
        S("avg_pool2d", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), x),
        S("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), x,
          label="pad not counted"),
        S("avg_pool2d", lambda x: F.avg_pool2d(x, 2, ceil_mode=True), R(1, 2, 5, 5), label="ceil"),
        S("avg_pool2d", lambda x: F.avg_pool2d(x, 2, divisor_override=3), x, label="divisor"),
        S("avg_pool1d", lambda x: F.avg_pool1d(x, 2), R(2, 3, 7)),
        S("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (3, 4)), x),
        S("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, 1), x, label="global"),
        S("adaptive_avg_pool1d", lambda x: F.adaptive_avg_pool1d(x, 4), R(2, 3, 7)),
        S("interpolate", lambda x: F.interpolate(x, scale_factor=2), x),
        S("interpolate", lambda x: F.interpolate(x, size=(7, 4)), x, label="size"),
        S("interpolate", lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear"), x,
          label="bilinear"),
        S("interpolate", lambda x: F.interpolate(x, size=(3, 8), mode="bilinear",
                                                 align_corners=True), x, label="align_corners"),
        S("interpolate", lambda x: F.interpolate(x, scale_factor=3, mode="linear"), R(2, 3, 5),
          label="linear"),
        S("pixel_shuffle", lambda x: F.pixel_shuffle(x, 2), R(2, 8, 2, 3)),
        S("pixel_unshuffle", lambda x: F.pixel_unshuffle(x, 2), R(2, 2, 4, 6)),
    ]


def _rnn_samples():
    x = R(4, 3, 5, lo=-1.0, hi=1.0)
    h1, c1 = R(1, 3, 6, lo=-0.5, hi=0.5), R(1, 3, 6, lo=-0.5, hi=0.5)
    h4 = R(4, 4, 6, lo=-0.5, hi=0.5)
    return [
        S("lstm", _lstm(False, 1, False), x, h1, c1, *_weights(1, 1, 4, 6, 5)),
        S("lstm", _lstm(True, 2, True), x, h4, R(4, 4, 6, lo=-0.5, hi=0.5),
          *_weights(2, 2, 4, 6, 5), label="2 layers bidirectional batch_first"),
        S("gru", _net("gru", False, 2, False), x, R(2, 3, 6), *_weights(2, 1, 3, 6, 5)),
        S("gru", _net("gru", True, 1, False, bias=False), x, R(2, 3, 6),
          *_weights(1, 2, 3, 6, 5, bias=False), label="bidirectional no bias"),
        S("rnn_tanh", _net("rnn_tanh", False, 1, True), x, R(1, 4, 6), *_weights(1, 1, 1, 6, 5)),
        S("rnn_relu", _net("rnn_relu", True, 1, False), x, R(2, 3, 6), *_weights(1, 2, 1, 6, 5)),
        S("lstm_cell", lambda x, h, c, *w: _VF.lstm_cell(x, (h, c), *w), R(3, 5), R(3, 6),
          R(3, 6), *_weights(1, 1, 4, 6, 5)),
        S("gru_cell", lambda x, h, *w: _VF.gru_cell(x, h, *w), R(3, 5), R(3, 6),
          *_weights(1, 1, 3, 6, 5)),
        S("rnn_tanh_cell", lambda x, h, a, b: _VF.rnn_tanh_cell(x, h, a, b), R(3, 5), R(3, 6),
          *_weights(1, 1, 1, 6, 5, bias=False)),
        S("rnn_relu_cell", lambda x, h, *w: _VF.rnn_relu_cell(x, h, *w), R(3, 5), R(3, 6),
          *_weights(1, 1, 1, 6, 5)),
    ]


def _mha(need_weights, masks=False):
    def f(q, k, v, w_in, b_in, w_out, b_out, *m):
        kpm, am = m if masks else (None, None)
        return F.multi_head_attention_forward(q, k, v, 8, 2, w_in, b_in, None, None, False,
                                              0.0, w_out, b_out, training=False,
                                              key_padding_mask=kpm, need_weights=need_weights,
                                              attn_mask=am)
    return f


def _attention_samples():
    q, k, v = R(2, 2, 3, 4), R(2, 2, 5, 4), R(2, 2, 5, 4)
    mha = (R(3, 2, 8), R(5, 2, 8), R(5, 2, 8), R(24, 8, lo=-0.5, hi=0.5), R(24),
           R(8, 8, lo=-0.5, hi=0.5), R(8))
    kpm = I([[False, False, True, False, True], [False] * 5])     # (bool tensors)
    am = I([[False, True, False, False, False], [False, False, True, True, False],
            [True, False, False, False, False]])
    return [
        S("scaled_dot_product_attention", F.scaled_dot_product_attention, q, k, v),
        S("scaled_dot_product_attention",
          lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3),
          R(2, 3, 4), R(2, 3, 4), R(2, 3, 4), label="causal scale"),
        S("scaled_dot_product_attention",
          lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), q, k, v,
          B(3, 5), label="bool mask", gradcheck="a fully masked row is NaN in eager too"),
        S("scaled_dot_product_attention",
          lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), q, k, v,
          R(3, 5), label="float mask"),
        S("multi_head_attention_forward", _mha(True), *mha),
        S("multi_head_attention_forward", lambda *a: _mha(False)(*a)[0], *mha,
          label="no weights"),     # (gradcheck takes no None among the outputs)
        S("multi_head_attention_forward", _mha(True, masks=True), *mha,
          kpm, am, label="masks"),
    ]


def _tensor_samples():
    x = R(3, 4)
    return [
        S("tril", torch.tril, x), S("tril", lambda x: x.tril(-1), R(2, 3, 4), label="batched"),
        S("triu", lambda x: torch.triu(x, 1), x),
        S("baddbmm", lambda a, b, c: torch.baddbmm(a, b, c, beta=0.5, alpha=2.0), R(2, 3, 2),
          R(2, 3, 4), R(2, 4, 2)),
        S("baddbmm", lambda a, b, c: a.baddbmm(b, c, beta=0), R(2, 3, 2), R(2, 3, 4),
          R(2, 4, 2), label="beta 0"),
        S("addbmm", torch.addbmm, R(3, 2), R(2, 3, 4), R(2, 4, 2)),
        S("addmv", lambda a, m, v: torch.addmv(a, m, v, alpha=3), R(3), x, R(4)),
        S("addr", torch.addr, x, R(3), R(4)),
        S("pad", lambda x: F.pad(x, (1, 2)), x),
        S("pad", lambda x: F.pad(x, (1, -2, 0, 3), value=1.5), R(2, 3, 4), label="crop value"),
        S("diagonal", torch.diagonal, x),
        S("diagonal", lambda x: x.diagonal(-1, 0, 2), R(3, 2, 4), label="offset dims"),
        S("diagonal", lambda x: x.diagonal(2), x, label="above"),
        S("new_zeros", lambda x: x + x.new_zeros(3, 4), x),
        S("unfold", lambda x: F.unfold(x, 2), R(2, 3, 4, 5)),
        S("unfold", lambda x: torch.nn.Unfold((2, 3), dilation=(1, 2), padding=1, stride=(2, 1))(x),
          R(3, 5, 6, layout="t"), label="geometry unbatched"),
        S("unfold", lambda x: x.unfold(1, 2, 1), R(3, 4), label="Tensor.unfold"),
        S("unfold", lambda x: x.unfold(-1, 3, 2).sum(-1), R(2, 3, 7), label="Tensor.unfold step"),
        S("fold", lambda x: F.fold(x, (4, 5), 2), R(2, 12, 12)),
        S("fold", lambda x: torch.nn.Fold((5, 4), (2, 3), dilation=(2, 1), padding=1,
                                          stride=(1, 2))(x), R(6, 10), label="geometry unbatched"),
        S("new_ones", lambda x: x.new_ones((2, 3, 4), dtype=torch.float64) * x, x),
        S("new_full", lambda x: x.new_full((3, 1), 2.5) * x, x),
        S("new_tensor", lambda x: x.new_tensor([[1.0, -2.0, 0.5, 3.0]]) * x, x),
        S("new_tensor", lambda x: x.new_tensor([1, 2, 3], dtype=torch.int64) + x.sum(), x,
          label="dtype"),
        S("is_nested", lambda x: x * (not x.is_nested and not x.is_sparse and not x.is_quantized
                                      and not x.is_meta and not x.is_mkldnn
                                      and not x.is_complex()), x),
    ]


def _norm_samples():
    x = R(4, 6, 3, 2)
    return [
        S("batch_norm", lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b, eps=1e-3), x,
          K(6), K(6, lo=0.5, hi=2.0), R(6), R(6), label="eval"),
        S("batch_norm", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x,
          R(6), R(6), label="batch statistics"),
        S("batch_norm", lambda x: F.batch_norm(x, None, None, training=True), R(5, 3),
          label="1d"),
        S("instance_norm", lambda x, w, b: F.instance_norm(x, weight=w, bias=b), x, R(6), R(6)),
        S("instance_norm", lambda x, m, v: F.instance_norm(x, m, v, use_input_stats=False), x,
          K(6), K(6, lo=0.5, hi=2.0), label="running stats"),
        S("group_norm", lambda x, w, b: F.group_norm(x, 3, w, b), x, R(6), R(6)),
        S("group_norm", lambda x: F.group_norm(x, 2, eps=1e-3), R(2, 4, 5), label="no affine"),
        S("rms_norm", lambda x, w: F.rms_norm(x, (2,), w), x, R(2)),
        S("rms_norm", lambda x: F.rms_norm(x, [3, 2], eps=1e-3), x, label="2d"),
    ]


SAMPLES = (_conv_samples() + _rnn_samples() + _attention_samples() + _tensor_samples() +
           _norm_samples())
NOT_SAMPLED = {n: "read by the is_nested sample"
               for n in ("is_sparse", "is_quantized", "is_meta", "is_mkldnn", "is_complex",
                         "is_xpu", "is_mps")}
