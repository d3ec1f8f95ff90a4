"""tracejit.pyro.NUTS and HMC: Pyro's kernels (subclasses, for pyro.infer.MCMC) whose
transition runs as one compiled call.

    mcmc = MCMC(tracejit.pyro.NUTS(model), num_samples=1000, warmup_steps=1000)

Pyro's own machinery is kept where it is not per leapfrog step: initialize_model (the
potential of the unconstrained sites, init_strategy, transforms), the WarmupAdapter
(dual-averaging step size, windowed diagonal or dense mass matrix, find_reasonable_step_size),
MCMC's bookkeeping and diagnostics. What changes is `sample`: the momentum draw, every
leapfrog step with the potential's gradient (tracejit's reverse mode, no
torch.autograd.grad), NUTS's tree building with its U-turn criterion and multinomial
sampling, divergence detection and HMC's Metropolis correction are one compiled
function of the flat unconstrained vector (_nuts.py), traced once per kernel and
replayed at every transition (NUTS after warmup, where nothing adapts: up to 16
transitions per call, handed out one per sample()). Its draws come from torch's default generator
(torch.manual_seed / pyro.set_rng_seed reproduce a run), not in the order Pyro's own
kernel draws, so chains agree with Pyro's in distribution, not draw for draw.

The compiled transition runs with Pyro's validation off (as Pyro's own kernel does
during warmup): a non-finite potential is a diverging step (reported in
diagnostics()['divergences']) instead of Pyro's ValueError after warmup. The
potential Pyro's own code calls outside the trajectory (setup, find_reasonable_step_size)
is Pyro's eager potential for its first calls, then the same potential compiled
(tracejit.compile; its gradient through torch's autograd route): _TieredPotential. A
mass-matrix adapter other than Pyro's BlockMassMatrix (ArrowheadMassMatrix) runs
Pyro's own sample (a warning).
"""
import warnings

import torch

import pyro
import pyro.infer.mcmc as pmcmc
from pyro.infer.mcmc.adaptation import BlockMassMatrix
from pyro.ops.integrator import potential_grad

from . import _C, _nuts, _torch

__all__ = ["NUTS", "HMC"]


class _Layout:
    """The flat vector's order: the mass matrix's blocks in the adapter's order, each
    block's sites in its order (as BlockMassMatrix.scale concatenates them)."""

    def __init__(self, blocks, prototype):
        self.names = [n for block in blocks for n in block]
        self.shapes = [tuple(prototype[n].shape) for n in self.names]
        self.sizes = [prototype[n].numel() for n in self.names]

    def flat(self, d):
        return torch.cat([d[n].detach().reshape(-1) for n in self.names])

    def unflat(self, v):
        out, pos = {}, 0
        for n, shape, k in zip(self.names, self.shapes, self.sizes):
            out[n] = v[pos:pos + k].reshape(shape)
            pos += k
        return out


def _mass(adapter):
    """(M^-1, M^1/2) of the whole flat vector: vectors if every block is diagonal, else
    block-diagonal matrices (a diagonal block on its diagonal)."""
    inv = list(adapter._inverse_mass_matrix.values())
    sq = [adapter._mass_matrix_sqrt[k] for k in adapter._inverse_mass_matrix]
    if all(v.dim() == 1 for v in inv):
        return torch.cat(inv), torch.cat(sq)
    def full(v):
        return torch.diag(v) if v.dim() == 1 else v
    return (torch.block_diag(*[full(v) for v in inv]),
            torch.block_diag(*[full(v) for v in sq]))


class _TieredPotential:
    """The potential Pyro's own code calls outside the trajectory (the first state's
    gradient, find_reasonable_step_size at setup and at each adaptation window's end:
    ~40 calls in a run of 1000 + 1000 of eight schools, 6-20 before the first sample).
    Its first `EAGER_CALLS` calls are Pyro's eager potential (~1-2 ms each with
    torch.autograd.grad on these models, about what tracing and compiling it once
    costs per 20-30 calls); later ones its compiled form (tracejit.compile, the
    gradient through torch's autograd route). A short run, the first call of a kernel
    among them, traces the potential once (inside the transition) instead of twice."""

    EAGER_CALLS = 32

    def __init__(self, fn):
        self.fn, self.calls, self.compiled = fn, 0, None

    def __call__(self, params):
        if self.compiled is None:
            self.calls += 1
            if self.calls <= self.EAGER_CALLS:
                return self.fn(params)
            self.compiled = _C.CompiledFunction(self.fn, (), ())
        return self.compiled(params)


def _packed(out):
    """(z, g, stats) of an HMC transition's (z, pe, g, accept probability, steps,
    diverging, moved): the scalars one vector in z's dtype (a leapfrog count up to 2^24
    exact in float32), read by one tolist() (each result of a compiled call is a tensor
    made for it, each conversion to Python another call), as _nuts.nuts's rows."""
    z, pe, g = out[:3]
    return z, g, torch.stack([pe.to(z.dtype)] + [v.to(z.dtype) for v in out[3:]])


class _CompiledKernel:
    """sample() through one compiled transition (mixed into Pyro's HMC and NUTS); NUTS
    after warmup makes several transitions per compiled call, 1, 2, 4, ... up to
    TRANSITIONS_PER_CALL (a short run makes few it does not hand out), and hands them
    out one per sample() (the compiled call's and the kernel's own Python paid once for
    them; a state set from outside, as a new run's, drops those not handed out)."""

    TRANSITIONS_PER_CALL = 16

    _tracejit_kind = None

    def _tracejit_init(self):
        self._tracejit_fn = self._tracejit_mass = None
        self.num_leapfrog_steps = 0     # over every transition since construction
        if self.potential_fn is not None:      # given by the user (no model)
            self._tracejit_compile_potential()

    def _initialize_model_properties(self, model_args, model_kwargs):
        self._jit_compile = False     # the transition is compiled here instead
        super()._initialize_model_properties(model_args, model_kwargs)
        self._tracejit_compile_potential()

    def _tracejit_compile_potential(self):
        """Pyro's potential kept for the compiled transition; for Pyro's own calls (setup,
        find_reasonable_step_size) a _TieredPotential of it."""
        self._tracejit_pyro_potential = self.potential_fn
        self.potential_fn = _TieredPotential(self.potential_fn)

    def setup(self, warmup_steps, *args, **kwargs):
        self._tracejit_fn = self._tracejit_mass = self._tracejit_last = None
        self._tracejit_queue, self._tracejit_batch = None, 1
        super().setup(warmup_steps, *args, **kwargs)

    def _tracejit_transition(self):
        """The compiled transition for the current layout, or None (Pyro's own sample)."""
        adapter = self.mass_matrix_adapter
        if type(adapter) is not BlockMassMatrix:
            if not getattr(self, "_tracejit_warned", False):
                self._tracejit_warned = True
                warnings.warn(f"tracejit.pyro.{type(self).__name__}: the mass matrix adapter "
                              f"{type(adapter).__name__} runs Pyro's own sample()",
                              RuntimeWarning, stacklevel=3)
            return None
        if self._tracejit_fn is None:
            layout = _Layout(list(adapter._inverse_mass_matrix), self.initial_params)
            pyro_potential = self._tracejit_pyro_potential

            def potential(zf):     # (in z's dtype: a float64 likelihood of float32 sites)
                return pyro_potential(layout.unflat(zf)).to(zf.dtype)
            self._tracejit_fn = (layout, self._tracejit_build(potential))
        return self._tracejit_fn

    def _tracejit_mass_now(self, dtype):
        """(M^-1, M^1/2) in the sites' dtype (Pyro makes them in the potential's), made
        again when the adapter sets another mass matrix."""
        adapter = self.mass_matrix_adapter
        current = tuple(adapter._inverse_mass_matrix.values())
        cached = self._tracejit_mass
        if cached is None or len(cached[0]) != len(current) or \
                any(a is not b for a, b in zip(cached[0], current)):
            cached = self._tracejit_mass = (current, tuple(m.to(dtype) for m in _mass(adapter)))
        return cached[1]

    def _tracejit_scalar(self, name, value, dtype):
        """A 0-d tensor of value, made again only when the value changes."""
        cached = self.__dict__.get(name)
        if cached is None or cached[0] != value or cached[1].dtype != dtype:
            cached = (value, torch.tensor(value, dtype=dtype))
            setattr(self, name, cached)
        return cached[1]

    def sample(self, params):
        z, pe, z_grads = self._fetch_from_cache()
        last = self.__dict__.get("_tracejit_last")
        if z is None:
            z = params
            z_grads, pe = potential_grad(self.potential_fn, z)
            self._cache(z, pe, z_grads)
        elif len(z) == 0:
            return super().sample(params)
        plan = self._tracejit_transition()
        if plan is None:
            return super().sample(params)
        layout, fn = plan
        queue = self.__dict__.get("_tracejit_queue")
        if queue and last is not None and last[0] is z:     # a transition already made
            zf, row, pe, gf = queue.pop()
        else:
            if last is not None and last[0] is z:     # this kernel's own last state, flat
                zf, gf, pe = last[1:]
            else:
                if z_grads is None:
                    z_grads, pe = potential_grad(self.potential_fn, z)
                zf, gf = layout.flat(z), layout.flat(z_grads)
                pe = pe.detach().to(zf.dtype)
            inv, sq = self._tracejit_mass_now(zf.dtype)
            # warmup: one transition per call (the adapter steps between); sampling
            # (nothing adapts): a batch of them, handed out one per call
            n = 1
            if self._t >= self._warmup_steps and self._tracejit_kind == "nuts":
                n = self.__dict__.get("_tracejit_batch", 1)     # 1, 2, 4, ... rows: a
                self._tracejit_batch = min(2 * n, self._tracejit_rows)   # short run's few
            args = (zf, pe, gf, inv, sq,
                    self._tracejit_scalar("_tracejit_ss", self.step_size, zf.dtype),
                    self._tracejit_scalar("_tracejit_n", n, torch.int64))
            if self._tracejit_kind == "hmc":
                args += (self._tracejit_scalar("_tracejit_ns", self.num_steps, torch.int64),)
            zs, stats, g_last = fn(*args)
            rows = stats.tolist()
            queue = self._tracejit_queue = [
                (zs[k], rows[k], stats[k, 0], g_last if k == n - 1 else None)
                for k in reversed(range(n))]
            zf, row, pe, gf = queue.pop()
        _, accept_prob, steps, diverging, moved = row
        self.num_leapfrog_steps += int(steps)
        z = layout.unflat(zf)
        self._cache(z, pe, None)       # the gradient stays flat (_tracejit_last)
        self._tracejit_last = (z, zf, gf, pe)
        if diverging and self._t >= self._warmup_steps:
            self._divergences.append(self._t - self._warmup_steps)
        self._t += 1
        if self._t > self._warmup_steps:
            n = self._t - self._warmup_steps
            if moved:
                self._accept_cnt += 1
        else:
            n = self._t
            self._adapter.step(self._t, z, torch.tensor(accept_prob),   # (.item()s it)
                               layout.unflat(gf))
        self._mean_accept_prob += (accept_prob - self._mean_accept_prob) / n
        return z.copy()


class NUTS(_CompiledKernel, pmcmc.NUTS):
    """pyro.infer.NUTS (multinomial sampling) whose whole trajectory is one compiled call
    per sample (module docstring). Pyro's arguments; `use_multinomial_sampling=False`
    (slice sampling) is not compiled: a ValueError."""

    _tracejit_kind = "nuts"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tracejit_init()
        if not self.use_multinomial_sampling:
            raise ValueError("tracejit.pyro.NUTS compiles multinomial NUTS only; "
                             "use_multinomial_sampling=False is pyro.infer.NUTS's")

    def _tracejit_build(self, potential):
        max_depth, max_delta = self._max_tree_depth, float(self._max_sliced_energy)
        rows = self._tracejit_rows = max(int(self.TRANSITIONS_PER_CALL), 1)

        def nuts_transition(z, pe, g, inv_mass, mass_sqrt, step_size, n):
            with pyro.validation_enabled(False):
                return _nuts.nuts(potential, z, pe, g, inv_mass, mass_sqrt, step_size, n,
                                  max_depth, max_delta, rows)
        return _C.CompiledFunction(nuts_transition, (), ())


class HMC(_CompiledKernel, pmcmc.HMC):
    """pyro.infer.HMC whose leapfrog trajectory and Metropolis correction are one
    compiled call per sample (module docstring); num_steps follows the adapted step
    size (trajectory_length / step_size) as Pyro's, an input of the compiled call."""

    _tracejit_kind = "hmc"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tracejit_init()

    def _tracejit_build(self, potential):
        max_delta = float(self._max_sliced_energy)

        def hmc_transition(z, pe, g, inv_mass, mass_sqrt, step_size, n, num_steps):
            with pyro.validation_enabled(False):      # (n: always 1)
                z, g, stats = _packed(_nuts.hmc(potential, z, pe, g, inv_mass, mass_sqrt,
                                                step_size, num_steps, max_delta))
            return z.unsqueeze(0), stats.unsqueeze(0), g
        return _C.CompiledFunction(hmc_transition, (), ())


_torch.skip_dirs(pmcmc)
