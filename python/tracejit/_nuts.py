"""HMC and NUTS transitions over one flat vector of unconstrained values, written with
torch's vocabulary and tracejit's compiled loops, to be traced inside one compiled
function per transition (_pyro_mcmc.py): the trajectory never returns to Python.

`potential(z)` maps the flat vector to a scalar; its gradient is tracejit's reverse mode
traced inside the loop's body (_value_and_grad). The mass matrix is the inverse
(`inv_mass`: a vector for a diagonal one, else a matrix) and a square root of the mass
matrix (`mass_sqrt`, r = mass_sqrt @ N(0, I), as Pyro's BlockMassMatrix.scale).

NUTS is the iterative, multinomial variant (Betancourt 2017; NumPyro's iterative tree
building), flattened into one `tracejit.while_loop` whose step is one leapfrog step:
the carry holds the tree built so far (its two ends, proposal, log weight, momentum
sum) and the subtree being added to one end (its far end, proposal, log weight,
momentum sum, leaf count); a subtree's own U-turns are checked at each odd leaf against
the checkpoints (momenta and momentum sums kept at even leaves, indexed by the leaf
number's bits), all checkpoints at once with a mask instead of an inner loop. When a
subtree is complete it joins the tree by a biased transition (its proposal taken with
probability min(1, w_sub / w_tree), never from a turning or diverging subtree), and the
tree is checked for a U-turn; the loop stops at a U-turn, a divergence (energy error
over `max_delta`) or `max_depth` doublings. Uniform draws are fresh at every step of a
compiled loop (csrc/loops.c mixes the step into the key), so each step draws the
direction (used when a subtree starts), the within-subtree and the doubling coin. The
same loop makes several transitions in a row (`n_trans`, a traced input: one during
warmup, more after it): when a tree is done its proposal goes to its row and the carry
is reset to a fresh tree from it (a momentum drawn at every step, used at the reset).
"""
import threading

import numpy as np
import torch

from . import _C, _grad
from ._control import while_loop


def _value_and_grad(potential, z):
    """(potential(z), its gradient), traced where the caller traces (a loop's body)."""
    src = _C._ad_source(z, z, True)
    pe = potential(src)
    g = _grad.vjp_trace(pe, np.ones_like(pe), [src])[0]
    return pe, (torch.zeros_like(z) if g is None else g)


class _Retry(Exception):
    """The body made more checks than the carry has room for."""


_CHECK_ROOM = 32     # checks a trajectory's carry has room for (a PyroModule's priors:
                     # one or two per sample site)


def _while_checked(cond_fun, body_fun, init, room=_CHECK_ROOM):
    """while_loop(cond_fun, body_fun, init), where the checks the traced code makes in the
    body (_C._check: torch.distributions' validation of a distribution built with
    validate_args, Pyro's warn_if_nan) are carried out of the loop, each the AND over the
    steps of its value, and checked after it (a compiled loop's body cannot raise): the
    error eager raises at the step where it fails is raised for the transition, and
    nothing of it is returned. The carry has room for `room` checks (the unused ones
    stay True), so the body is traced once; a body making more is traced again with
    room for them."""
    for _ in range(2):
        specs = []

        def body(c, room=room, specs=specs):
            val, oks = c
            found, prev, me = [], _C._check, threading.get_ident()

            def record(x, what, error=ValueError):
                if threading.get_ident() != me:
                    return prev(x, what, error)
                found.append(((x if isinstance(x, _C.Tracer) else torch.tensor(bool(x))).all(),
                              what, error))
            _C._check = record
            try:
                new = body_fun(val)
            finally:
                _C._check = prev
            if len(found) > room:
                raise _Retry(len(found))
            specs[:] = [(what, error) for _, what, error in found]
            vals = [oks[0]] + [x for x, _, _ in found] + [oks[0]] * (room - len(found))
            return new, oks & torch.stack(vals)

        try:
            out, oks = while_loop(lambda c: cond_fun(c[0]), body,
                                  (init, torch.ones(room + 1, dtype=torch.bool)))
        except _Retry as e:
            room = e.args[0]
            continue
        for k, (what, error) in enumerate(specs):
            _C._check(oks[k + 1], f"{what} (at a step of the compiled trajectory)", error)
        return out
    raise _Retry("the body's checks changed when it was traced again")


def _vel(inv_mass, r):
    """The velocity M^-1 r (the kinetic energy's gradient); r may be rows of momenta."""
    if inv_mass.ndim == 1:
        return r * inv_mass
    return r @ inv_mass          # M^-1 is symmetric


def _momentum(z, mass_sqrt):
    eps = torch.randn(z.shape, dtype=z.dtype)
    return mass_sqrt * eps if mass_sqrt.ndim == 1 else mass_sqrt @ eps


def _leapfrog(potential, inv_mass, z, r, g, h):
    r = r - 0.5 * h * g
    z = z + h * _vel(inv_mass, r)
    pe, g = _value_and_grad(potential, z)
    return z, r - 0.5 * h * g, pe, g


def _delta(pe, r, inv_mass, energy0):
    """energy(pe, r) - energy0, NaN read as +inf (a diverging step), as Pyro and NumPyro."""
    d = pe + 0.5 * (r * _vel(inv_mass, r)).sum() - energy0
    return torch.where(torch.isnan(d), torch.full_like(d, float("inf")), d)


def _turning(inv_mass, r_left, r_right, r_sum):
    """The generalized U-turn criterion (Betancourt 2013, A.4.2), over rows if r_left and
    r_sum are matrices (the checkpoints)."""
    rho = r_sum - 0.5 * (r_left + r_right)
    return ((_vel(inv_mass, r_left) * rho).sum(-1) <= 0) | \
        ((_vel(inv_mass, r_right) * rho).sum(-1) <= 0)


def _ckpt_range(leaf, nbits):
    """(idx_min, idx_max) of the checkpoints leaf `leaf` of a subtree is checked against:
    idx_max the number of ones of leaf >> 1, idx_min idx_max + 1 - the number of trailing
    ones of leaf (NumPyro's _leaf_idx_to_ckpt_idxs, without a loop)."""
    bits = [torch.div(leaf, 2 ** k, rounding_mode="floor") % 2 for k in range(nbits)]
    idx_max = sum(bits[1:])
    run, trailing = 1, 0
    for b in bits:
        run = run * b
        trailing = trailing + run
    return idx_max - trailing + 1, idx_max


# The loop's carry, packed into four arrays (a carry is a copy and an array per leaf at
# every call of the compiled loop: few leaves keep that overhead small).
_ROWS = ("zl", "rl", "gl", "zr", "rr", "gr", "pz", "pg", "sz", "sr", "sg", "spz", "spg",
         "rsum", "srsum")
_FLOATS = ("ppe", "w", "sppe", "sw", "acc_sum", "e0")
_INTS = ("n", "size", "depth", "steps", "t")
_BOOLS = ("right", "div", "moved", "done")


def _pack(s):
    rows = torch.cat([torch.stack([s[n] for n in _ROWS]), s["rck"], s["rsck"]])
    return (rows, torch.stack([s[n] for n in _FLOATS]), torch.stack([s[n] for n in _INTS]),
            torch.stack([s[n] for n in _BOOLS]))


def _unpack(c, K):
    rows, floats, ints, bools = c
    s = {n: rows[k] for k, n in enumerate(_ROWS)}
    m = len(_ROWS)
    s["rck"], s["rsck"] = rows[m:m + K], rows[m + K:m + 2 * K]
    for names, vals in ((_FLOATS, floats), (_INTS, ints), (_BOOLS, bools)):
        s.update((n, vals[k]) for k, n in enumerate(names))
    return s


def nuts(potential, z, pe, g, inv_mass, mass_sqrt, step_size, n_trans, max_depth, max_delta,
         rows):
    """`n_trans` (a traced int64, at most `rows`) NUTS transitions in a row from (z, pe =
    potential(z), g its gradient), in one loop: when a transition's tree is done, its
    proposal is written to its row and the next one starts from it with a fresh
    momentum. Returns (Z: rows x z's proposals, stats: rows x (pe, mean acceptance
    probability over the trajectory, leapfrog steps, diverging, whether a doubling moved
    the proposal), the last proposal's gradient); rows from n_trans on are zeros."""
    K = max(int(max_depth), 1)
    false = torch.isnan(step_size) & torch.isinf(step_size)      # traced False
    zero = torch.zeros((), dtype=torch.int64)
    ks = torch.arange(K)
    row_ids = torch.arange(rows)

    def fresh(z, pe, g, t):
        r = _momentum(z, mass_sqrt)
        return dict(zl=z, rl=r, gl=g, zr=z, rr=r, gr=g,            # the tree's ends
                    pz=z, ppe=pe, pg=g, w=torch.zeros_like(pe), rsum=r,   # its proposal
                    sz=z, sr=r, sg=g, spz=z, sppe=pe, spg=g,           # the subtree's far end
                    sw=torch.zeros_like(pe), srsum=r, n=zero, size=zero + 1, right=false,
                    rck=torch.zeros((K,) + tuple(z.shape), dtype=z.dtype),
                    rsck=torch.zeros((K,) + tuple(z.shape), dtype=z.dtype),
                    depth=zero, acc_sum=torch.zeros_like(pe), steps=zero,
                    div=false, moved=false, done=false, t=t,
                    e0=pe + 0.5 * (r * _vel(inv_mass, r)).sum())
    st = fresh(z, pe, g, zero)

    def step(s):
        u = torch.rand(3, dtype=z.dtype)
        new = s["n"] == 0
        right = torch.where(new, u[0] < 0.5, s["right"])
        z0 = torch.where(new, torch.where(right, s["zr"], s["zl"]), s["sz"])
        r0 = torch.where(new, torch.where(right, s["rr"], s["rl"]), s["sr"])
        g0 = torch.where(new, torch.where(right, s["gr"], s["gl"]), s["sg"])
        h = torch.where(right, step_size, -step_size)
        z1, r1, pe1, g1 = _leapfrog(potential, inv_mass, z0, r0, g0, h)
        delta = _delta(pe1, r1, inv_mass, s["e0"])
        w_leaf = -delta
        div_leaf = delta > max_delta
        # the leaf joins the subtree: multinomial sampling of the subtree's proposal
        sw = torch.where(new, w_leaf, torch.logaddexp(s["sw"], w_leaf))
        take = new | (u[1] < torch.exp(w_leaf - sw))
        spz = torch.where(take, z1, s["spz"])
        sppe = torch.where(take, pe1, s["sppe"])
        spg = torch.where(take, g1, s["spg"])
        srsum = torch.where(new, r1, s["srsum"] + r1)
        # the subtree's U-turns: checkpoints written at even leaves, checked at odd ones
        leaf = s["n"]
        even = leaf % 2 == 0
        lo, hi = _ckpt_range(leaf, K)
        put = (even & (ks == hi)).unsqueeze(-1)
        rck = torch.where(put, r1.unsqueeze(0), s["rck"])
        rsck = torch.where(put, srsum.unsqueeze(0), s["rsck"])
        turn_k = _turning(inv_mass, rck, r1.unsqueeze(0), srsum.unsqueeze(0) - rsck + rck)
        s_turn = ~even & (turn_k & (ks >= lo) & (ks <= hi)).any()
        n1 = leaf + 1
        sub_done = (n1 == s["size"]) | s_turn | div_leaf
        # a complete subtree joins the tree (biased transition), which is checked
        p = torch.where(s_turn | div_leaf, torch.zeros_like(sw),
                        torch.clamp(torch.exp(sw - s["w"]), max=1.0))
        move = sub_done & (u[2] < p)
        at_r, at_l = sub_done & right, sub_done & ~right
        zr, rr, gr = (torch.where(at_r, a, b) for a, b in ((z1, s["zr"]), (r1, s["rr"]),
                                                            (g1, s["gr"])))
        zl, rl, gl = (torch.where(at_l, a, b) for a, b in ((z1, s["zl"]), (r1, s["rl"]),
                                                            (g1, s["gl"])))
        rsum = torch.where(sub_done, s["rsum"] + srsum, s["rsum"])
        depth = s["depth"] + sub_done.to(torch.int64)
        done = sub_done & (s_turn | div_leaf | _turning(inv_mass, rl, rr, rsum) |
                           (depth >= K))
        return dict(zl=zl, rl=rl, gl=gl, zr=zr, rr=rr, gr=gr,
                    pz=torch.where(move, spz, s["pz"]),
                    ppe=torch.where(move, sppe, s["ppe"]),
                    pg=torch.where(move, spg, s["pg"]),
                    w=torch.where(sub_done, torch.logaddexp(s["w"], sw), s["w"]), rsum=rsum,
                    sz=z1, sr=r1, sg=g1, spz=spz, sppe=sppe, spg=spg, sw=sw, srsum=srsum,
                    n=torch.where(sub_done, zero, n1),
                    size=torch.where(sub_done, s["size"] * 2, s["size"]), right=right,
                    rck=rck, rsck=rsck, depth=depth,
                    acc_sum=s["acc_sum"] + torch.clamp(torch.exp(-delta), max=1.0),
                    steps=s["steps"] + 1, div=s["div"] | div_leaf,
                    moved=s["moved"] | move, done=done, t=s["t"], e0=s["e0"])

    def body(c):
        state, zs, stats = c
        s = step(_unpack(state, K))
        done = s["done"]
        steps = s["steps"].to(z.dtype)
        stat = torch.stack([s["ppe"], s["acc_sum"] / steps, steps, s["div"].to(z.dtype),
                            s["moved"].to(z.dtype)])
        here = ((row_ids == s["t"]) & done).unsqueeze(-1)
        zs = torch.where(here, s["pz"].unsqueeze(0), zs)
        stats = torch.where(here, stat.unsqueeze(0), stats)
        nxt = fresh(s["pz"], s["ppe"], s["pg"], s["t"] + 1)    # the next transition
        state = tuple(torch.where(done, a, b) for a, b in zip(_pack(nxt), _pack(s)))
        return state, zs, stats

    init = (_pack(st), torch.zeros((rows,) + tuple(z.shape), dtype=z.dtype),
            torch.zeros((rows, 5), dtype=z.dtype))
    state, zs, stats = _while_checked(lambda c: c[0][2][_INTS.index("t")] < n_trans, body,
                                      init)
    return zs, stats, _unpack(state, K)["pg"]


def hmc(potential, z, pe, g, inv_mass, mass_sqrt, step_size, num_steps, max_delta):
    """One HMC transition: `num_steps` (a traced int64) leapfrog steps and a Metropolis
    correction. Returns (z, pe, g, acceptance probability, steps, diverging, accepted)."""
    r = _momentum(z, mass_sqrt)
    energy0 = pe + 0.5 * (r * _vel(inv_mass, r)).sum()

    def step(c):
        z1, r1, pe1, g1 = _leapfrog(potential, inv_mass, c[0], c[1], c[3], step_size)
        return z1, r1, pe1, g1, c[4] + 1

    z1, r1, pe1, g1, _ = _while_checked(lambda c: c[4] < num_steps, step,
                                    (z, r, pe, g, torch.zeros_like(num_steps)))
    delta = _delta(pe1, r1, inv_mass, energy0)
    accept_prob = torch.clamp(torch.exp(-delta), max=1.0)
    accepted = torch.rand((), dtype=z.dtype) < accept_prob
    return (torch.where(accepted, z1, z), torch.where(accepted, pe1, pe),
            torch.where(accepted, g1, g), accept_prob, num_steps, delta > max_delta, accepted)
