"""Large differential-fuzz batches: runs tests/test_property.py's random-program
property in parallel worker processes, each with its own Hypothesis seed
(TRACEJIT_FUZZ_SEED) and TRACEJIT_FUZZ_EXAMPLES examples per chunk.

    PYTHONPATH=python python tools/fuzz.py --examples 20000 [--jobs 8] [--chunk 1000]

Prints the examples run (Hypothesis' count of valid examples, failing ones
included) and the falsifying example (a standalone reproducer) of each failing
chunk; exits 1 when any chunk failed.
"""
import argparse
import os
import re
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def chunk(seed, n):
    env = dict(os.environ, TRACEJIT_FUZZ_SEED=str(seed), TRACEJIT_FUZZ_EXAMPLES=str(n))
    env.pop("CI", None)
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_property.py", "-k", "random_programs",
                        "--hypothesis-show-statistics"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    out = p.stdout + p.stderr
    gen = out.split("during generate phase")[1:2]
    m = re.search(r"(\d+) passing examples, (\d+) failing examples", gen[0]) if gen else None
    ran = int(m.group(1)) + int(m.group(2)) if m else 0
    repro = re.findall(r"# reproducer\n(.*?)# (?:differs from NumPy|must raise)", out, re.S)
    errors = re.findall(r"^(?:E|\s+\|)\s+(\w+Error: .*)$", out, re.M)
    return seed, p.returncode, ran, repro, errors[:3], out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=20000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--first-seed", type=int, default=1000)
    a = ap.parse_args()
    n_chunks = max(1, a.examples // a.chunk)
    t0 = time.time()
    total, failed = 0, []
    with ThreadPoolExecutor(a.jobs) as pool:
        for seed, rc, ran, repro, errors, out in pool.map(
                lambda s: chunk(s, a.chunk), range(a.first_seed, a.first_seed + n_chunks)):
            total += ran
            if rc != 0:
                failed.append(seed)
                print(f"--- seed {seed}: FAILED after {ran} examples: {errors}")
                for r in repro[-1:]:
                    print(textwrap.dedent(re.sub(r"^(E|\s+\|)", "", r, flags=re.M)))
                if not repro:
                    print(out[-4000:])
            sys.stdout.flush()
    print(f"fuzz: {total} examples in {n_chunks} chunks ({a.jobs} jobs, "
          f"{time.time() - t0:.0f} s); failing chunks: {len(failed)} {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
