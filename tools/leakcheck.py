"""Leak check of a compile-and-replay loop, run under LeakSanitizer by
tools/sanitize.sh (or by hand: see the README's "Sanitizers and leak checks").

    python tools/leakcheck.py [N]          # the workload: N rounds (default 20)
    python tools/leakcheck.py --report F.. # judge LSan's report files

The workload compiles, replays and drops functions of every kind of plan (fused
elementwise, reductions, GEMM, views and gathers, captured arrays, scratch
buffers, pytrees, static arguments), retraces, evicts variants past the cache's
limit, and raises from tracing, compiling and replaying. At exit LeakSanitizer
lists every heap block nothing points to. CPython does not free everything at
exit (interned strings, static types' caches, ...), so the verdict counts only
leaks allocated with a tracejit frame (`tj_*` functions, csrc/ sources) on the
stack: there must be none. (Checked: with the retrace-reason leak fixed in
function.c put back, it reports "1 allocated by tracejit", from retrace_reason.)
"""
import gc
import re
import sys


def workload(rounds):
    import numpy as np
    import tracejit

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 48))
    w = rng.standard_normal((48, 16))
    idx = np.array([3, 0, 5, 1])
    cap = rng.standard_normal(48)

    def programs():
        yield lambda a: np.tanh(a) * 0.5 + a
        yield lambda a: (a - a.max(axis=1, keepdims=True)).sum(axis=0)
        yield lambda a: np.exp(a - a.max(axis=-1, keepdims=True)).mean()
        yield lambda a: a @ w + 1.0
        yield lambda a: (a.T[::2, 1:] * cap[::2, None]).cumsum(axis=1)
        yield lambda a: {"t": a[idx] + 1, "s": [np.take(a, idx, axis=1), a.shape]}
        yield lambda a: np.concatenate([a, a * 2], axis=0).std(axis=0)

    for r in range(rounds):
        for k, prog in enumerate(programs()):
            f = tracejit.compile(prog)
            for _ in range(5):
                f(x)
            f(x[: 8 + r % 5])             # a retrace per round and a variant
            f(np.asfortranarray(x))       # strided layout
            if k == 0:
                for n in range(70):       # past the 64-variant limit: eviction
                    f(x[:, : n % 40 + 1])
            del f
        g = tracejit.compile(lambda a, s, n: a * s + n, static_argnames=("n",))
        g(x, 2.0, n=r)
        g(x, 3, n=r)
        try:                              # error paths: tracing, argument, index
            tracejit.compile(lambda a: a.nonzero())(x)
        except tracejit.TraceError:
            pass
        try:
            g(x.astype(np.int8), 1.0, n=0)
        except TypeError:
            pass
        try:
            tracejit.compile(lambda a, i: a[i])(x, np.array([99]))
        except IndexError:
            pass

        def boom(a):
            raise KeyError("user")
        try:
            tracejit.compile(boom)(x)
        except KeyError:
            pass
        tracejit.compile(lambda a: a + 1.0).explain(x)
        gc.collect()


def report(paths):
    """0 when no leak was allocated from a tracejit frame; prints the verdict."""
    blocks, ours = 0, []
    for path in paths:
        text = open(path, errors="replace").read()
        for block in re.split(r"\n(?=(?:Direct|Indirect) leak of)", text):
            if not re.match(r"(Direct|Indirect) leak of", block):
                continue
            blocks += 1
            if re.search(r"in tj_\w+|tracejit/_C|csrc/", block):
                ours.append(block.strip())
    for b in ours:
        print(b, "\n", file=sys.stderr)
    print(f"leakcheck: {blocks} leaked blocks reported by LeakSanitizer, "
          f"{len(ours)} allocated by tracejit")
    return 1 if ours else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        sys.exit(report([p for p in sys.argv[2:] if not p.endswith("*")]))
    workload(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
