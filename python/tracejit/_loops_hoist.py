"""A compiled loop's backward: outer values' cotangents as one contraction after the loop.

The reverse loop (_loops.backward) sums, over the steps, the cotangent of each outer
value its body reads (a weight W). For `W @ h` that cotangent is an outer product
g_t h_t^T: summed in the carry, it costs the step a product and an add of W's size.
Where a step's cotangent is a sum of terms

    view(a_t' * c_t')      a_t' = view(a_t), c_t' = view(c_t)

(views that only transpose, broadcast, add or drop size-1 dims: what matmul's and
broadcasting's derivatives make) and a_t, c_t are smaller than the term, the loop
stacks a_t and c_t as ys instead, and after the loop each term is one sum over the
steps of the stacked product (lowered to one GEMM: G^T H); what is not such a term
stays in the carry. The split is decided while the body is traced (split), so the
body is traced again with the carry it implies (Retrace).
"""
import numpy as np

from . import _C, _grad
from ._rules import np_dtype, np_size
from ._C import Tracer


ENABLED = True   # False: every outer value's cotangent summed in the carry, every
                 # operand's computed, the step's outputs recomputed for the rules, as
                 # before (benchmarks/bench_loops.py's baseline)


class Retrace(Exception):
    """The body's cotangents split otherwise than the carry it was traced with assumed."""


def _view(t):
    """For a VIEW Tracer that only transposes its operand, broadcasts, adds or drops
    size-1 dims: (operand, perm) with perm[d] the operand dim of t's dim d (-1: a new
    or broadcast dim); else None."""
    n = _C._ad_node(t)
    if n[1] != "VIEW" or n[4] or len(n[2]) != 1:
        return None
    src = n[2][0][1]
    perm, vstep, voff = list(n[5]), n[6], n[7]
    read = [p for p in perm if p != -1]
    if (len(perm) != t.ndim or len(set(read)) != len(read) or any(voff) or
            any(p != -1 and (s != 1 or t.shape[d] != src.shape[p])
                for d, (p, s) in enumerate(zip(perm, vstep))) or
            any(src.shape[d] != 1 for d in range(src.ndim) if d not in read) or
            any(p == -1 and s != 0 and t.shape[d] != 1
                for d, (p, s) in enumerate(zip(perm, vstep)))):
        return None
    return src, perm


def apply_view(b, perm, shape, batch):
    """The view `perm` (see _view) of b's trailing dims, b's `batch` leading dims kept:
    shape (b.shape[:batch] + shape)."""
    lead = tuple(b.shape[:batch])
    read = [p for p in perm if p != -1]
    keep = sorted(read)
    b = b.reshape(lead + tuple(b.shape[batch + d] for d in keep))
    rank = {p: k for k, p in enumerate(keep)}
    b = np.transpose(b, list(range(batch)) + [batch + rank[p] for p in read])
    for d, p in enumerate(perm):
        if p == -1:
            b = np.expand_dims(b, batch + d)
    return np.broadcast_to(b, lead + tuple(shape))


def _factor(x):
    """x as view(operand): (operand, perm); the identity where x is no such view."""
    v = _view(x)
    return v if v is not None else (x, list(range(x.ndim)))


STACK_LIMIT = 1 << 28   # bytes the stacked factors of one loop may take (beyond: carried)


def _terms(c, shape, out, budget):
    """Splits cotangent c (of `shape`) into hoistable terms, appended to `out` as
    (outer perm or None, product shape, (a, perm_a), (c, perm_c)); returns the rest
    (a Tracer) or None when all of c was split. budget[0]: the elements per step the
    stacked factors may still take."""
    if not isinstance(c, Tracer) or tuple(c.shape) != shape:
        return c
    n = _C._ad_node(c)
    if n[1] == "ADD" and all(isinstance(t, Tracer) and tuple(t.shape) == shape for _, t in n[2]):
        ra = _terms(n[2][0][1], shape, out, budget)
        rb = _terms(n[2][1][1], shape, out, budget)
        return ra if rb is None else rb if ra is None else ra + rb
    outer, m = None, c
    v = _view(c)
    if v is not None and _C._ad_node(v[0])[1] == "MUL":
        outer, m = v[1], v[0]
    if _C._ad_node(m)[1] != "MUL" or np_dtype(m) != np_dtype(c):
        return c
    (_, p), (_, q) = _C._ad_node(m)[2]
    fa, fc = _factor(p), _factor(q)
    size = np_size(fa[0]) + np_size(fc[0])
    if size >= np_size(m) or size > budget[0]:
        return c
    budget[0] -= size
    out.append((outer, tuple(m.shape), fa, fc))
    return None


def split(cts, shapes, n):
    """Per outer value's cotangent (None: none) in a loop of n steps: (plan, rest,
    stacked): plan[k] the structure of its hoisted terms (list of (outer perm, product
    shape, perm_a, perm_c)) and whether a rest stays in the carry; rest the carried
    parts; stacked the values the loop stacks (a, c per term), STACK_LIMIT bytes at
    most over the steps (8 a value)."""
    plan, rest, stacked = [], [], []
    budget = [STACK_LIMIT // (8 * max(n, 1))]
    for c, shape in zip(cts, shapes):
        terms = []
        r = c if not ENABLED else _terms(c, shape, terms, budget) if c is not None else None
        plan.append(([(o, s, fa[1], fc[1]) for o, s, fa, fc in terms], r is not None))
        if r is not None:
            rest.append(r)
        for _, _, fa, fc in terms:
            stacked += [fa[0], fc[0]]
    return plan, rest, stacked


def contract(plan_k, stacked, shape):
    """The sum over the steps of an outer value's hoisted terms, from the stacked a, c
    (two per term, each with the steps as leading dim)."""
    total = None
    for (outer, mshape, pa, pc), a, c in zip(plan_k, stacked[::2], stacked[1::2]):
        s = _grad._sum_product(_grad.Product(apply_view(a, pa, mshape, 1),
                                             apply_view(c, pc, mshape, 1)), mshape)
        if outer is not None:
            s = apply_view(s, outer, shape, 0)
        total = s if total is None else total + s
    return total
