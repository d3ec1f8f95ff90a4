"""torch's recurrent layers, unrolled over the sequence at trace time (see _torch_nn.py):
nn.RNN, nn.LSTM and nn.GRU call torch.rnn_tanh / rnn_relu / lstm / gru (torch._VF)
with their flat weight list, and their cells torch.*_cell. Each layer's input
projection is one contraction over the whole sequence; the recurrence is one small
contraction per step. Dropout between layers in training draws in the graph
(_torch_random), as eager draws it."""
import numpy as np

from . import _C, _torch_random
from ._torch_ops import _NP_DTYPE, _NP_SHAPE, _add, linear, sigmoid


def _tanh_cell(x_proj, h, w_hh, b_hh):
    return np.tanh(_add(x_proj, linear(h, w_hh, b_hh)))


def _relu_cell(x_proj, h, w_hh, b_hh):
    return np.maximum(_add(x_proj, linear(h, w_hh, b_hh)), 0)


def _lstm_cell(x_proj, state, w_hh, b_hh):
    h, c = state
    gates = _add(x_proj, linear(h, w_hh, b_hh))
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def _gru_cell(x_proj, h, w_hh, b_hh):
    hp = linear(h, w_hh, b_hh)
    xr, xz, xn = np.split(x_proj, 3, axis=-1)
    hr, hz, hn = np.split(hp, 3, axis=-1)
    r = sigmoid(xr + hr)
    z = sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1.0 - z) * n + z * h


_CELLS = {"rnn_tanh": _tanh_cell, "rnn_relu": _relu_cell, "lstm": _lstm_cell, "gru": _gru_cell}


def _run(kind, x, state, w_ih, w_hh, b_ih, b_hh, reverse):
    """One layer, one direction: x (T, B, F) -> outputs (T, B, H), final state."""
    cell = _CELLS[kind]
    steps = _NP_SHAPE.__get__(x)[0]
    proj = linear(x, w_ih, b_ih)                 # the input projection: one contraction
    outs = [None] * steps
    for k in range(steps):
        t = steps - 1 - k if reverse else k
        state = cell(proj[t], state, w_hh, b_hh)
        outs[t] = state[0] if kind == "lstm" else state
    return np.stack(outs, axis=0), state


def _network(kind, input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
             batch_first):
    dirs = 2 if bidirectional else 1
    per = 4 if has_biases else 2
    params = list(params)
    if len(params) != num_layers * dirs * per:
        _C._trace_error(f"torch.{kind}: {len(params)} weights for {num_layers} layer(s) "
                         f"(proj_size is not supported by tracejit yet)")
    x = np.swapaxes(input, 0, 1) if batch_first else input
    if kind == "lstm":
        h0, c0 = hx
    else:
        h0, c0 = hx, None
    finals_h, finals_c = [], []
    for layer in range(num_layers):
        if layer and dropout and train:
            x = _torch_random._dropout(x, float(dropout), tuple(_NP_SHAPE.__get__(x)), {})
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            w = params[k * per:(k + 1) * per]
            w_ih, w_hh = w[0], w[1]
            b_ih, b_hh = (w[2], w[3]) if has_biases else (None, None)
            state = (h0[k], c0[k]) if kind == "lstm" else h0[k]
            out, state = _run(kind, x, state, w_ih, w_hh, b_ih, b_hh, reverse=d == 1)
            outs.append(out)
            if kind == "lstm":
                finals_h.append(state[0])
                finals_c.append(state[1])
            else:
                finals_h.append(state)
        x = outs[0] if dirs == 1 else np.concatenate(outs, axis=-1)
    out = np.swapaxes(x, 0, 1) if batch_first else x
    out = out.astype(_NP_DTYPE.__get__(out))      # a new tensor, as eager's (not a view)
    h = np.stack(finals_h, axis=0)
    if kind == "lstm":
        return out, h, np.stack(finals_c, axis=0)
    return out, h


def _network_fn(kind):
    def f(input, hx, *rest):
        if not isinstance(rest[0], (list, tuple)):    # the PackedSequence form
            _C._trace_error(f"torch.{kind} on a PackedSequence is not supported by tracejit "
                             "yet: pass padded tensors")
        return _network(kind, input, hx, *rest)
    f.__name__ = kind
    return f


def _cell_fn(kind):
    def f(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
        proj = linear(input, w_ih, b_ih)
        if kind == "lstm":
            return _lstm_cell(proj, tuple(hx), w_hh, b_hh)
        return _CELLS[kind](proj, hx, w_hh, b_hh)
    f.__name__ = kind + "_cell"
    return f


FUNCS = {**{k: _network_fn(k) for k in _CELLS}, **{k + "_cell": _cell_fn(k) for k in _CELLS}}
