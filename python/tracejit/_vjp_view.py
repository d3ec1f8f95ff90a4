"""The derivative of a VIEW node: the transpose of an element selection.

A VIEW reads its operand through index arithmetic (csrc/trace/views.c): per output dim
the operand dim read (`perm`: -1 a new or broadcast dim, -2 the operand read flat), a
step, and start offsets. Its transpose places each cotangent element back where it was
read and sums where one element was read many times (broadcast dims):

  * broadcast dims are summed (size-1 new dims squeezed);
  * a view whose output dims read distinct operand dims (slices, transposes, integer
    indices, flips) becomes a transpose, negative steps flips, steps > 1 interleaved
    zeros and offsets padding, all per dim: no copies;
  * otherwise (reshapes, views of reshapes, strided views: diagonal, unfold) the operand
    is treated as its row-major flat array: a plain reshape is reshaped back; a strided
    flat read is rebuilt from the innermost dim outwards by padding and merging dims; a
    dim whose reads overlap the block inside it (unfold's windows) is split into the
    residues r apart, whose reads do not, and their transposes summed.
"""
import numpy as np

from ._rules import np_size   # (_rules imports this module once np_size is defined)


def view_rule(g, y, xs, node):
    x = xs[0]
    _, _, _, _, flat, perm, vstep, voff = node
    perm, vstep = list(perm), list(vstep)
    # sum broadcast dims, squeeze new size-1 dims
    summed = tuple(d for d, p in enumerate(perm) if p == -1 and g.shape[d] != 1)
    if summed:
        g = np.sum(g, axis=summed, keepdims=True)
    gone = tuple(d for d, p in enumerate(perm) if p == -1)
    if gone:
        g = np.squeeze(g, axis=gone)
        vstep = [s for s, p in zip(vstep, perm) if p != -1]
        perm = [p for p in perm if p != -1]
    if not flat and len(set(perm)) == len(perm):
        return (_per_dim(g, x, perm, vstep, list(voff)),)
    if flat:
        off = voff[0]
    else:   # an operand dim read by several output dims: go through the flat array
        rstride = _row_major(x.shape)
        off = sum(o * r for o, r in zip(voff, rstride))
        vstep = [s * rstride[p] for s, p in zip(vstep, perm)]
    return (_flat(g, x, vstep, off),)


def _row_major(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return strides[::-1]


def _per_dim(g, x, perm, vstep, start):
    """perm: the distinct operand dim each dim of g reads."""
    lens = {p: g.shape[d] for d, p in enumerate(perm)}
    steps = {p: vstep[d] for d, p in enumerate(perm)}
    flips = tuple(d for d, p in enumerate(perm) if vstep[d] < 0 and g.shape[d] > 1)
    if flips:
        g = np.flip(g, flips)
        for d in flips:
            p = perm[d]
            start[p] += (lens[p] - 1) * steps[p]
            steps[p] = -steps[p]
    order = sorted(range(len(perm)), key=lambda d: perm[d])
    if order != list(range(len(perm))):
        g = np.transpose(g, order)
    dropped = tuple(e for e in range(x.ndim) if e not in lens)
    if dropped:
        g = np.expand_dims(g, dropped)
    pads, any_pad = [], False
    for e in range(x.ndim):
        n = lens.get(e, 1)
        s = steps.get(e, 1) if n > 1 else 1
        if s > 1:   # interleave s - 1 zeros after each element along dim e
            g = np.expand_dims(g, e + 1)
            widths = [(0, 0)] * g.ndim
            widths[e + 1] = (0, s - 1)
            g = np.pad(g, widths)
            g = g.reshape(g.shape[:e] + (n * s,) + g.shape[e + 2:])
            span = (n - 1) * s + 1
            g = g[(slice(None),) * e + (slice(0, span),)]
        else:
            span = n
        before, after = start[e], x.shape[e] - start[e] - span
        pads.append((before, after))
        any_pad |= before != 0 or after != 0
    if any_pad:
        g = np.pad(g, pads)
    return g


def _flat(g, x, vstep, off):
    """Each element i of g sits at row-major position off + sum(i_d * vstep[d]) of x."""
    total = np_size(x)
    if off == 0 and np_size(g) == total and list(vstep) == _row_major(g.shape):
        return g.reshape(x.shape)
    zero = tuple(d for d in range(g.ndim) if vstep[d] == 0 and g.shape[d] != 1)
    if zero:   # a dim reading one element: its cotangents summed
        g = np.sum(g, axis=zero, keepdims=True)
    keep = [d for d in range(g.ndim) if g.shape[d] != 1]
    g = g.reshape(tuple(g.shape[d] for d in keep))
    steps = [vstep[d] for d in keep]
    flips = tuple(k for k, s in enumerate(steps) if s < 0)
    if flips:
        g = np.flip(g, flips)
        for k in flips:
            off += (g.shape[k] - 1) * steps[k]
            steps[k] = -steps[k]
    order = sorted(range(len(steps)), key=lambda k: -steps[k])
    if order != list(range(len(steps))):
        g = np.transpose(g, order)
    steps = [steps[k] for k in order]
    inner = 1
    for j in range(len(steps) - 1, -1, -1):
        if steps[j] < inner:   # dim j's blocks overlap (Tensor.unfold's windows): every
            return _overlapping(g, x, steps, off, j, inner)   # r-th block apart, summed
        inner = (g.shape[j] - 1) * steps[j] + inner
    g = np.expand_dims(g, -1)   # innermost block: one element
    inner = 1
    for j in range(len(steps) - 1, -1, -1):
        s, n = steps[j], g.shape[j]
        if s > inner:
            widths = [(0, 0)] * g.ndim
            widths[-1] = (0, s - inner)
            g = np.pad(g, widths)
        g = g.reshape(g.shape[:j] + (n * s,))
        inner = (n - 1) * s + inner
        if g.shape[-1] != inner:
            g = g[..., :inner]
    g = np.pad(g, [(off, total - off - inner)])
    return g.reshape(x.shape)


def _overlapping(g, x, steps, off, j, inner):
    """The transpose of a flat read whose dim j steps less than the block inside it
    spans: the elements of dim j taken r apart read disjoint blocks, so the sum over the
    r residues of their non-overlapping transposes (r the overlap factor)."""
    s = steps[j]
    r = -(-inner // s)
    total = None
    for q in range(min(r, g.shape[j])):
        part = g[(slice(None),) * j + (slice(q, None, r),)]
        sub = list(steps)
        sub[j] = s * r
        t = _flat(part, x, sub, off + q * s)
        total = t if total is None else total + t
    return total
