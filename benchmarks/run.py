"""Runs every tracejit benchmark module and prints its tables (markdown, to stdout).

    PYTHONPATH=python python benchmarks/run.py
        [--quick]            fewer repetitions and smaller sizes (smoke test)
        [--json PATH]        raw numbers of every module, as {module: result}
        [--cases LIST]       e.g. tiny,chain12/1M,softmax (passed to each module; a
                             module none of whose cases match is skipped)
        [--peers LIST]       e.g. numpy,tracejit,numexpr

Peers (numexpr, jax, torch) are optional and skipped when not installed. The exit
status is 1 when any peer, tracejit included, computed a wrong result or failed.
Modules: bench_elementwise, bench_numpy, bench_grad, bench_train (see their docstrings for what is measured
and how). bench_matmul, the sweep that chose tracejit's BLAS threshold, is not run
here; run it alone (python benchmarks/bench_matmul.py).
"""
from __future__ import annotations

import importlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as H  # noqa: E402

MODULES = ["bench_elementwise", "bench_numpy", "bench_grad", "bench_train"]


def main(argv=None) -> int:
    opts = H.common_parser(__doc__.splitlines()[0]).parse_args(argv)
    opts.skip_unmatched = True           # --cases may name cases of some modules only
    results, status = {}, 0
    for i, name in enumerate(MODULES):
        if i:
            print()
        mod = importlib.import_module(name)
        result = mod.run(opts)
        results[name.removeprefix("bench_")] = result
        if result.get("failures"):
            status = 1
    if opts.cases and not any(r.get("records") for r in results.values()):
        raise SystemExit(f"--cases {opts.cases!r} matches no case of any module")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
