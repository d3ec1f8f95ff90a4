"""Shared helpers for the tracejit benchmarks: optional peers, timing, checks, tables.

Nothing here is a benchmark by itself; bench_*.py modules use it and
benchmarks/run.py runs them all:

    cd /work/main && PYTHONPATH=python python benchmarks/run.py [--quick] [--json PATH]

Timing method (see `measure`): warm up, estimate one call, then time batches of
`inner` calls with time.perf_counter_ns (inner > 1 only for calls under ~20 µs, so
the timer's own cost stays negligible), repeat until about `target_s` has passed
(at least `min_reps` batches), and report the median per-call time. The garbage
collector is off while timing.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
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
    }
    if mods.get("numexpr") is not None:
        info["threads"]["numexpr"] = mods["numexpr"].nthreads
    if mods.get("torch.compile") is not None:
        info["threads"]["torch"] = mods["torch.compile"].get_num_threads()
    return info


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
    if info["threads"]:
        print("threads: " + ", ".join(f"{n} {t}" for n, t in info["threads"].items())
              + " (library defaults; numpy is single-threaded)")


# ---- functions -------------------------------------------------------------------

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
    """Median per-call time of call() in ns, with the spread and the counts used."""
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
    try:
        for _ in range(reps):
            t0 = time.perf_counter_ns()
            for _ in range(inner):
                call()
            samples.append((time.perf_counter_ns() - t0) / inner)
    finally:
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
    }


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
    return f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


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
