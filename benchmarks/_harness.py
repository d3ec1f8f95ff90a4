"""Shared helpers for the tracejit benchmarks: optional peers, timing, checks, tables.

Nothing here is a benchmark by itself; bench_*.py modules use it and
benchmarks/run.py runs them (all but the bench_matmul.py sweep, which runs alone):

    PYTHONPATH=python python benchmarks/run.py [--quick] [--json PATH]

Timing method (see `measure`): warm up, estimate one call, then time batches of
`inner` calls with time.perf_counter_ns (inner > 1 only for calls under ~20 µs, so
the timer's own cost stays negligible), repeat until about `target_s` has passed
(at least `min_reps` batches), and report the median per-call time, and the process's
minor page faults per call (fresh memory touched: a large array from a fresh mmap costs
one per 4 KiB page). The garbage collector is off while timing. `busy_elsewhere`, in
each module's header, warns when other processes are using the cores.
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import fnmatch
import gc
import glob
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import types

import numpy as np

# Peers are optional. The order here is the order of the table columns.
PEERS = ("numpy", "tracejit", "numexpr", "jax.jit", "torch.compile")


def common_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark module (and run.py) understands."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="few repetitions and small sizes (smoke test, a few seconds per peer)")
    p.add_argument("--json", metavar="PATH", help="also write the raw numbers to PATH")
    p.add_argument("--cases", metavar="LIST",
                   help="comma-separated case names or name/size globs, e.g. tiny,chain12/1M")
    p.add_argument("--peers", metavar="LIST",
                   help="comma-separated subset of: " + ",".join(PEERS))
    return p


def selected_peers(opts) -> list[str]:
    if not opts.peers:
        return list(PEERS)
    chosen = [p.strip() for p in opts.peers.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peer(s) {unknown}; choose from {list(PEERS)}")
    if "numpy" not in chosen:            # numpy is the reference every result is checked against
        chosen.insert(0, "numpy")
    return [p for p in PEERS if p in chosen]


# ---- optional imports ----------------------------------------------------------

def _prepare_environment() -> None:
    """Settings that must be in place before jax/torch are imported."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # A fresh inductor cache per run, so torch.compile's first-call time is a real
    # compile and not a hit in the on-disk cache left by an earlier run.
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        cache = tempfile.mkdtemp(prefix="tj-bench-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        atexit.register(shutil.rmtree, cache, ignore_errors=True)


def numpyro_modules():
    """((numpyro, jax), description) or (None, why not): numpyro imported if importable,
    else from the directory in TRACEJIT_NUMPYRO_PATH (a `pip install --target DIR numpyro
    multipledispatch --no-deps` beside the environment's jax), appended to sys.path."""
    try:
        import numpyro  # noqa: F401
    except ImportError:
        path = os.environ.get("TRACEJIT_NUMPYRO_PATH")
        if not path:
            return None, "numpyro not importable (set TRACEJIT_NUMPYRO_PATH to a pip --target dir)"
        sys.path.append(path)
        try:
            import numpyro  # noqa: F401,F811
        except ImportError as e:
            return None, f"numpyro not importable from {path}: {e}"
    import jax
    import numpyro
    return (numpyro, jax), f"numpyro {numpyro.__version__}, jax {jax.__version__}"


def pyro_setup(title: str, opts, all_peers: tuple, detail: str = ""):
    """The Pyro benchmarks' start (bench_pyro, bench_pyro_nuts): the title; torch,
    tracejit and OpenBLAS at opts.threads threads, XLA's CPU client at one
    (--xla_cpu_multi_thread_eigen=false, unless XLA_FLAGS is set); the peers asked for
    (opts.peers) of all_peers, numpyro dropped where it cannot be imported; the versions
    and the machine's other load printed. Returns (peers, (numpyro, jax) or None), or
    None where pyro or torch is not installed (said so)."""
    print(f"## {title}\n")
    _prepare_environment()
    try:
        import pyro
        import torch
    except ImportError as e:
        print(f"pyro or torch not installed ({e}); skipped")
        return None
    import tracejit
    torch.set_num_threads(opts.threads)
    tracejit.set_num_threads(opts.threads)
    set_openblas_threads(opts.threads)
    peers = [p for p in all_peers if p in (opts.peers or ",".join(all_peers)).split(",")]
    npy, why = None, "not asked for"
    if "numpyro" in peers:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
        npy, why = numpyro_modules()
        if npy is None:
            peers.remove("numpyro")
    print(f"pyro {pyro.__version__}, torch {torch.__version__}, threads {opts.threads}; "
          f"NumPyro: {why}{detail}")
    busy = busy_elsewhere()
    if busy is not None:
        print(f"other load on the machine while idle: {100 * busy:.0f}% of all cores")
    return peers, npy


def import_peer(name: str):
    """Returns (module, None) or (None, reason). Never raises for a missing peer."""
    _prepare_environment()
    try:
        if name == "numpy":
            return np, None
        if name == "tracejit":
            try:
                import tracejit
            except ImportError:
                # Allow running from a checkout without PYTHONPATH=python.
                here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
                sys.path.insert(0, os.path.normpath(here))
                import tracejit
            tracejit.compile  # noqa: B018  (an empty namespace package is not the real thing)
            return tracejit, None
        if name == "numexpr":
            import numexpr
            # numexpr sizes its pool by the machine's cores, not the CPUs this process
            # may use (taskset): oversubscribed it would be slower than it can be
            numexpr.set_num_threads(len(os.sched_getaffinity(0)))
            return numexpr, None
        if name == "jax.jit":
            import jax
            import jax.numpy  # noqa: F401
            return jax, None
        if name == "torch.compile":
            import torch
            return torch, None
    except (ImportError, AttributeError) as e:
        return None, f"not installed ({type(e).__name__}: {e})"
    raise ValueError(name)


def peer_version(name: str, mod) -> str:
    if mod is None:
        return "not installed"
    return str(getattr(mod, "__version__", "?"))


def system_info(mods: dict) -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "versions": {n: peer_version(n, m) for n, m in mods.items()},
        "threads": {},
        "malloc": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
        "busy_elsewhere": busy_elsewhere(),
    }
    if mods.get("numexpr") is not None:
        info["threads"]["numexpr"] = mods["numexpr"].get_num_threads()
    if mods.get("tracejit") is not None and hasattr(mods["tracejit"], "get_num_threads"):
        info["threads"]["tracejit"] = mods["tracejit"].get_num_threads()
    if mods.get("torch.compile") is not None:
        info["threads"]["torch"] = mods["torch.compile"].get_num_threads()
    blas = openblas_threads()
    if blas is not None:
        info["threads"]["numpy's OpenBLAS"] = blas
    return info


def busy_elsewhere(seconds: float = 0.3):
    """Fraction of all cores busy while this process sleeps (from /proc/stat), or None."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]           # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (i1 - i0) / (t1 - t0) if t1 > t0 else None


def openblas_threads():
    """Threads of the OpenBLAS NumPy ships (np.matmul, and tracejit's large products), or None."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            for sym in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads"):
                if hasattr(lib, sym):
                    return int(getattr(lib, sym)())
        except OSError:
            pass
    return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def print_system_info(info: dict) -> None:
    v = info["versions"]
    print(f"python {info['python']} on {info['cpu']} ({info['cpu_count']} cores), {info['platform']}")
    print("versions: " + ", ".join(f"{n} {v[n]}" for n in v))
    if info["busy_elsewhere"] is not None and info["busy_elsewhere"] >= 0.1:
        print(f"WARNING: other processes kept {100 * info['busy_elsewhere']:.0f}% of the "
              f"{info['cpu_count']} cores busy at start: timings (of threaded peers most) are noisy")
    if info["malloc"]:
        print("malloc: " + " ".join(f"{k}={v}" for k, v in info["malloc"].items()))
    if info["threads"]:
        print("threads: " + ", ".join(f"{n} {t}" for n, t in info["threads"].items())
              + " (library defaults; numpy's ufuncs and reductions are single-threaded)")


# ---- functions -------------------------------------------------------------------

def set_openblas_threads(n):
    """NumPy's OpenBLAS (tracejit's products) to n threads, like torch's intra-op pool:
    on a small shared machine a second spinning thread costs milliseconds per call."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        lib = ctypes.CDLL(path)
        for sym in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads"):
            if hasattr(lib, sym):
                getattr(lib, sym)(ctypes.c_int(n))
                return


def rebind(fn, **globals_):
    """A fresh function object with a fresh code object and some globals replaced.

    rebind(f, np=jnp) runs f's exact source against jax.numpy; rebind(f) gives a copy
    that no JIT has seen before (JIT caches key on the function or its code object),
    so each measured first call is a real trace + compile."""
    g = dict(fn.__globals__)
    g.update(globals_)
    f = types.FunctionType(fn.__code__.replace(), g, fn.__name__, fn.__defaults__, fn.__closure__)
    f.__qualname__ = fn.__qualname__
    return f


class Peer:
    """How one peer runs a kernel written as plain NumPy code.

    build: function -> callable (tracejit compiles it as it is; jax.jit and
    torch.compile run the same source with `np` rebound to jax.numpy / torch, or
    `torch_fn` where torch spells something differently); convert: numpy input -> the
    peer's input; finish: wait for the result (jax is asynchronous); to_numpy: the
    result as an ndarray, for the check. numexpr has no generic build (its modules
    subclass this)."""

    def __init__(self, name: str, mod):
        self.name, self.mod = name, mod

    def convert(self, a):
        if self.name == "jax.jit":
            return self.mod.device_put(a)
        if self.name == "torch.compile":
            return self.mod.from_numpy(a)
        return a

    def build(self, fn, torch_fn=None):
        if self.name == "numpy":
            return fn
        if self.name == "tracejit":
            return self.mod.compile(rebind(fn))
        if self.name == "jax.jit":
            return self.mod.jit(rebind(fn, np=self.mod.numpy))
        if self.name == "torch.compile":
            # Static shapes: the fastest steady state, and no dynamic-shape graph from an
            # earlier size of the same source is reused, so each first call compiles.
            return self.mod.compile(rebind(torch_fn or fn, np=self.mod), dynamic=False)
        raise ValueError(f"{self.name} cannot run NumPy source")

    def finish(self, out):
        if self.name == "jax.jit":
            out.block_until_ready()
        return out

    def to_numpy(self, out):
        if self.name == "torch.compile":
            return out.detach().numpy()
        return np.asarray(out)


def start(opts, title: str, applicable=PEERS, peer_class=None):
    """Imports the selected peers and prints the title and the system; returns
    (peers as peer_class (default Peer) objects, skipped, info). Peers outside
    `applicable` are reported and left out."""
    mods, skipped = {}, {}
    for name in selected_peers(opts):
        if name not in applicable:
            skipped[name] = "not applicable to this benchmark"
            continue
        mods[name], why = import_peer(name)
        if why:
            skipped[name] = why
    info = system_info(mods)
    print(f"## {title}\n")
    print_system_info(info)
    for name, why in skipped.items():
        print(f"{name}: {why}; skipped")
    peer_class = peer_class or Peer
    return [peer_class(n, m) for n, m in mods.items() if m is not None], skipped, info


def select_cases(cases: list, opts) -> list:
    """The cases whose name or label matches one of --cases' globs. Standalone, no match
    is an error; under run.py (opts.skip_unmatched) that module is skipped instead."""
    if not opts.cases:
        return cases
    pats = [p.strip() for p in opts.cases.split(",") if p.strip()]
    chosen = [c for c in cases
              if any(fnmatch.fnmatch(c.name, p) or fnmatch.fnmatch(c.label, p) for p in pats)]
    if not chosen and not getattr(opts, "skip_unmatched", False):
        raise SystemExit(f"--cases {opts.cases!r} matches none of the cases "
                         f"({', '.join(c.label for c in cases)})")
    return chosen


# ---- correctness -------------------------------------------------------------------

class WrongResult(AssertionError):
    pass


def check_close(what: str, got, want: np.ndarray, rtol: float, atol: float) -> None:
    """Raises WrongResult unless got matches want in shape, dtype and value."""
    got = np.asarray(got)
    if got.shape != want.shape or got.dtype != want.dtype:
        raise WrongResult(f"{what}: got shape {got.shape} dtype {got.dtype}, "
                          f"expected shape {want.shape} dtype {want.dtype}")
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        i = int(np.nanargmax(diff))
        raise WrongResult(f"{what}: results differ from numpy (rtol={rtol}, atol={atol}): "
                          f"max abs diff {diff.flat[i]:.3g} at index {i} "
                          f"(got {got.flat[i]!r}, numpy {want.flat[i]!r}), "
                          f"{int(np.count_nonzero(~np.isclose(got, want, rtol, atol)))} "
                          f"of {want.size} elements off")


# ---- timing -------------------------------------------------------------------------

def first_call_ns(call) -> tuple[int, object]:
    """Time of one call (the first of a freshly compiled function), and its result.

    A full collection first, so that a collection of the objects other peers left
    behind (torch and jax make many) is not charged to this call."""
    gc.collect()
    t0 = time.perf_counter_ns()
    out = call()
    return time.perf_counter_ns() - t0, out


def measure(call, target_s: float, min_reps: int = 5, max_reps: int = 100_000,
            warmup_s: float = 0.05, batch_ns: int = 20_000) -> dict:
    """Median per-call time of call() in ns, with the spread, the counts used and the
    minor page faults per call (of the whole process, over the timed calls)."""
    # Warm up: at least one call, then until warmup_s has passed.
    t_start = time.perf_counter_ns()
    n_warm = 0
    while True:
        call()
        n_warm += 1
        elapsed = time.perf_counter_ns() - t_start
        if elapsed >= warmup_s * 1e9 or n_warm >= 1000:
            break
    est = max(elapsed / n_warm, 1.0)
    inner = max(1, math.ceil(batch_ns / est))
    reps = int(min(max_reps, max(min_reps, target_s * 1e9 / (est * inner))))
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    faults0 = _minor_faults()
    try:
        for _ in range(reps):
            t0 = time.perf_counter_ns()
            for _ in range(inner):
                call()
            samples.append((time.perf_counter_ns() - t0) / inner)
    finally:
        faults = _minor_faults() - faults0
        if gc_was_enabled:
            gc.enable()
    samples.sort()
    return {
        "median_ns": statistics.median(samples),
        "min_ns": samples[0],
        "p10_ns": samples[len(samples) // 10],
        "p90_ns": samples[(len(samples) * 9) // 10],
        "reps": reps,
        "inner": inner,
        "warmup_calls": n_warm,
        "faults_per_call": faults / (reps * inner),
    }


def interleaved(calls: dict, target_s: float, min_rounds: int = 7, batch_s: float = 2e-5) -> dict:
    """Per-call times of several peers measured in alternating rounds (each round times
    a batch of every peer in turn), so load that comes and goes on a shared machine
    hits them alike. Returns {name: {"median_ns", "min_ns", "rounds"}} and, under
    "ratios", {name: median over rounds of (first peer's time / name's time)}."""
    names = list(calls)
    est = {}
    for n in names:                      # warm up and estimate one call
        t0 = time.perf_counter_ns()
        k = 0
        while k < 3 or time.perf_counter_ns() - t0 < 0.05e9:
            calls[n]()
            k += 1
        est[n] = (time.perf_counter_ns() - t0) / k
    # batches of ~batch_s, as `measure` times them: jax.jit measured ~10x slower per call
    # in 2-20 ms batches of back-to-back calls than in batches of one or two
    batch = {n: max(1, math.ceil(batch_s * 1e9 / est[n])) for n in names}
    rounds = min(100_000, max(min_rounds,
                              int(target_s * 1e9 / sum(est[n] * batch[n] for n in names))))
    samples = {n: [] for n in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for n in names:
                t0 = time.perf_counter_ns()
                for _ in range(batch[n]):
                    calls[n]()
                samples[n].append((time.perf_counter_ns() - t0) / batch[n])
    finally:
        if gc_was_enabled:
            gc.enable()
    first = names[0]
    out = {n: {"median_ns": statistics.median(v), "min_ns": min(v), "rounds": rounds}
           for n, v in samples.items()}
    out["ratios"] = {n: statistics.median(a / b for a, b in zip(samples[first], samples[n]))
                     for n in names[1:]}
    return out


def _minor_faults() -> int:
    """Minor page faults of this process so far (first touches of freshly mapped memory:
    a large array from malloc's mmap costs one per 4 KiB page on every call)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


JIT_PEERS = ("tracejit", "jax.jit", "torch.compile")


def tracejit_compile_ns(f):
    """The trace + compile part of the first call, as tracejit reports it (seconds)."""
    try:
        return f.cache_info().compile_time * 1e9
    except (AttributeError, TypeError):
        return None


def run_peer(peer: Peer, f, xs, ref, what: str, opts, rtol: float, atol: float,
             target_s: float | None = None) -> dict:
    """First call of the fresh callable f (timed, checked), a warm call (checked), then
    the steady-state timing (about target_s, or 1 s; 0.02 s with --quick). Raises
    WrongResult (or whatever f raised) before timing."""
    rec = {}
    args = [peer.convert(a) for a in xs]
    call = lambda: peer.finish(f(*args))  # noqa: E731
    first_ns, out = first_call_ns(call)
    if peer.name in JIT_PEERS:
        rec["first_call_ns"] = first_ns
    if peer.name == "tracejit":
        rec["compile_ns"] = tracejit_compile_ns(f)
    check_close(f"{peer.name} on {what}, first call", peer.to_numpy(out), ref, rtol, atol)
    check_close(f"{peer.name} on {what}, warm call", peer.to_numpy(call()), ref, rtol, atol)
    del out
    if peer.name == "tracejit" and hasattr(f, "tiers"):
        rec["tier"] = settle_tier(f, call)
        check_close(f"{peer.name} on {what}, settled call", peer.to_numpy(call()), ref, rtol,
                    atol)
    target = 0.02 if opts.quick else target_s or 1.0
    min_reps, warm = (3, 0.005) if opts.quick else (5, min(0.1, target / 4))
    rec.update(measure(call, target_s=target, min_reps=min_reps, warmup_s=warm))
    rec["status"] = "ok"
    return rec


def settle_tier(f, call, idle_s: float = 0.3, limit_s: float = 30.0) -> str:
    """Calls f until its optimizing tier has settled: the steady state a loop reaches.
    A kernel that is hot tiers up in the background (its compile, on another core,
    is not timed: it overlaps with these calls); one that is not stays on TinyCC."""
    t0 = time.perf_counter()
    while True:
        call()
        tier = f.tiers()[0]
        waited = time.perf_counter() - t0
        if tier == "opt" or (tier == "tcc" and waited > idle_s) or waited > limit_s:
            return tier


def warm_up(peer: Peer, f, x: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> int:
    """One throwaway compile, so one-time library start-up is not charged to the first case."""
    ns, out = first_call_ns(lambda: peer.finish(f(peer.convert(x))))
    check_close(f"{peer.name} warm-up", peer.to_numpy(out), want, rtol, atol)
    return ns


def failure(peer_name: str, what: str, exc: BaseException, failures: list) -> dict:
    """Call in an `except` block: reports exc loudly, records it, returns the status part."""
    status = "WRONG" if isinstance(exc, WrongResult) else "ERROR"
    msg = (f"WRONG: {exc}" if status == "WRONG"
           else f"ERROR: {peer_name} on {what}: {type(exc).__name__}: {exc}")
    print("!" * 78 + "\n" + msg, file=sys.stderr)
    if status == "ERROR":
        traceback.print_exc(file=sys.stderr)
    print("!" * 78, file=sys.stderr, flush=True)
    failures.append(msg)
    return {"status": status, "error": str(exc)}


# ---- formatting ---------------------------------------------------------------------

def fmt_time(ns) -> str:
    if ns is None:
        return "-"
    if ns < 1e4:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1e7:
        return f"{ns / 1e6:.2f} ms"
    if ns < 1e9:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_ms(ns) -> str:
    if ns is None:
        return "-"
    ms = ns / 1e6
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 1000 else f"{ms:.0f} ms"


def fmt_ratio(r) -> str:
    if r is None:
        return "-"
    return f"{r:.2g}x" if r < 0.001 else f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def torch_start(opts, title: str, all_peers: tuple, all_cases: list, default_threads: int):
    """The opening of a torch benchmark module: its title, the chosen peers and cases,
    every library at --threads (torch's intra-op pool; tracejit's pool, which sets
    NumPy's OpenBLAS too), the machine's other load. (torch, tracejit, peers, cases),
    or None when torch is missing or no case matches (with skip_unmatched, run.py's)."""
    chosen = [s.strip() for s in (opts.peers or ",".join(all_peers)).split(",") if s.strip()]
    peers = [p for p in all_peers if p in chosen]
    print(f"## {title}\n")
    _prepare_environment()
    try:
        import torch
    except ImportError as e:
        print(f"torch not installed ({e}); skipped")
        return None
    import tracejit as tj
    cases = all_cases
    if opts.cases:
        want = opts.cases.split(",")
        cases = [c for c in all_cases if c in want]
        if not cases:
            if getattr(opts, "skip_unmatched", False):
                return None
            raise SystemExit(f"--cases {opts.cases!r} matches none of {all_cases}")
    threads = getattr(opts, "threads", default_threads)
    torch.set_num_threads(threads)
    tj.set_num_threads(threads)   # its pool and NumPy's OpenBLAS
    busy = busy_elsewhere()
    if busy is not None:
        print(f"other load on the machine while idle: {100 * busy:.0f}% of all cores")
    print(f"threads: tracejit {tj.get_num_threads()}, torch {torch.get_num_threads()}, "
          f"OpenBLAS {openblas_threads()}\n")
    return torch, tj, peers, cases


def ratio_row(case: str, peers: list, ok: dict, m: dict, targets: dict) -> list:
    """A table row of `interleaved`'s result `m` for one case: each peer's median time
    and, after tracejit's column, the same-round ratio tracejit/peer with the case's
    target (peer -> at most this ratio) met or not; "-" for a peer that did not run."""
    row = [case]
    for peer in peers:
        t = m.get(peer, {}).get("median_ns")
        cell = fmt_time(t) if peer in ok else "-"
        r = m["ratios"].get(peer)
        if peer != "tracejit" and r is not None and "tracejit" in ok:
            goal = targets.get(peer)
            cell += f" ({fmt_ratio(r)}"
            if goal is not None:
                cell += f", target <= {goal}x {'met' if r <= goal else 'NOT met'}"
            cell += ")"
        row.append(cell)
    return row


def measure_case(case: str, peers: list, ok: dict, records: list, target_s: float,
                 targets: dict, **kw) -> tuple:
    """One case's peers `ok` (peer -> call) timed interleaved (`interleaved`, its keyword
    arguments `kw`), each peer's timing put into its record of this case: the table row
    (`ratio_row`) and the timings."""
    m = interleaved(ok, target_s * len(ok), **kw) if ok else {"ratios": {}}
    for r in records:
        if r["case"] == case:
            r.update(m.get(r["peer"], {}))
    return ratio_row(case, peers, ok, m, targets), m


def print_case_table(peers: list, rows: list, records: list) -> None:
    """ratio_row's rows as a markdown table, then every peer's first call."""
    print(markdown_table(["case"] + [f"{p} (tracejit/{p})" if p != "tracejit" else p
                                     for p in peers], rows, right_from=1))
    print("\nfirst call (trace + compile + run):")
    for r in records:
        print(f"  {r['case']:12s} {r['peer']:14s} {fmt_ms(r['first_ns'])}")


def markdown_table(headers: list[str], rows: list[list[str]], right_from: int = 2) -> str:
    """A padded markdown table; columns from index right_from on are right-aligned."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            c = str(c)
            out.append(c.rjust(widths[i]) if i >= right_from else c.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = ["-" * (w + 1) + ":" if i >= right_from else "-" * (w + 2) for i, w in enumerate(widths)]
    return "\n".join([line(headers), "|" + "|".join(sep) + "|"]
                     + [line(r) for r in rows])


def print_first_call_table(by: dict, labels: list, lead_headers: list, lead, cols: list,
                           warmup_ns: dict) -> None:
    """The first-call latency table of the JIT peers among cols. by: {(label, peer): record};
    lead(label): the leading cells of that label's row."""
    jit_cols = [p for p in JIT_PEERS if p in cols]
    if not jit_cols:
        return
    rows = []
    for label in labels:
        row = list(lead(label))
        for p in jit_cols:
            r = by.get((label, p))
            row.append(fmt_ms(r.get("first_call_ns")) if r and "first_call_ns" in r
                       else (r["status"] if r else "-"))
        if "tracejit" in jit_cols:
            r = by.get((label, "tracejit"))
            row.append(fmt_ms(r.get("compile_ns")) if r else "-")
        rows.append(row)
    print("\n### First-call latency of a freshly compiled function (trace/compile + one run)\n")
    extra = ["tracejit compile only"] if "tracejit" in jit_cols else []
    print(markdown_table(lead_headers + jit_cols + extra, rows, right_from=len(lead_headers)))
    if extra:
        print("\n'tracejit compile only' is cache_info().compile_time: the trace + passes + "
              "libtcc part of tracejit's first call, without running the kernel.")
    if warmup_ns:
        print("\nOne-time start-up, paid by the first compile in a process and excluded above: "
              + ", ".join(f"{p} {fmt_ms(ns)}" for p, ns in warmup_ns.items())
              + (". torch.compile uses a fresh inductor cache directory each run."
                 if "torch.compile" in warmup_ns else "."))


def print_failures(failures: list) -> None:
    if failures:
        print("\n### FAILURES\n")
        for f in failures:
            print(f"- {f}")


def main_with_threads(run, doc: str, name: str, argv=None) -> int:
    """main() of a benchmark module whose peers share --threads (torch intra-op and
    OpenBLAS threads; tracejit's too where the module sets them)."""
    p = common_parser(doc.splitlines()[0])
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads and OpenBLAS threads for every peer (default 1)")
    opts = p.parse_args(argv)
    return finish(run(opts), name, opts.json)


def finish(result: dict, name: str, json_path) -> int:
    """A module's end: its raw numbers to --json as {name: result}, and the exit
    status (1 when any peer computed a wrong result or failed)."""
    import json
    if json_path:
        with open(json_path, "w") as f:
            json.dump({name: result}, f, indent=1)
    return 1 if result["failures"] else 0
