"""The benchmark suite and the demo keep working (quick mode, tracejit and NumPy only)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*argv):
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_benchmarks_quick_run_checks_results():
    r = _run("benchmarks/run.py", "--quick", "--peers", "numpy,tracejit")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tracejit/numpy" in r.stdout and "chain12" in r.stdout


def test_matmul_sweep_quick_run_checks_results():   # not in run.py's modules
    r = _run("benchmarks/bench_matmul.py", "--quick")
    assert r.returncode == 0 and "Crossover" in r.stdout, r.stdout + r.stderr


def test_demo_runs_and_matches_numpy():
    r = _run("demo.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max |tracejit - numpy|" in r.stdout


def test_math_bench_quick_run_checks_results():   # not in run.py's modules; needs gcc
    r = _run("benchmarks/bench_math.py", "--quick", "--only", "exp,sin,pow")
    assert r.returncode == 0 and "vmath/before" in r.stdout, r.stdout + r.stderr


def test_random_bench_quick_run_checks_results():   # not in run.py's modules; needs torch
    import pytest
    pytest.importorskip("torch")
    r = _run("benchmarks/bench_random.py", "--quick", "--peers", "tracejit,torch,numpy",
             "--threads", "2")
    assert r.returncode == 0 and "randn/16M" in r.stdout and "dropout/16M" in r.stdout, \
        r.stdout + r.stderr


def test_pyro_bench_quick_run_checks_results():   # not in run.py's modules; needs pyro
    import pytest
    pytest.importorskip("torch")
    pytest.importorskip("pyro")
    r = _run("benchmarks/bench_pyro.py", "--quick", "--cases", "schools",
             "--peers", "tracejit.svi,tracejit,pyro")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| schools" in r.stdout and "tracejit.svi/pyro" in r.stdout, r.stdout + r.stderr


def test_loops_bench_quick_run_checks_results():   # not in run.py's modules
    r = _run("benchmarks/bench_loops.py", "--quick", "--peers", "tracejit")
    assert r.returncode == 0 and "scan/unrolled" in r.stdout and "matches eager: True" in r.stdout, \
        r.stdout + r.stderr


def test_dtypes_bench_quick_run_checks_results():   # not in run.py's modules
    r = _run("benchmarks/bench_dtypes.py", "--quick")
    assert r.returncode == 0 and "image/4096x4096" in r.stdout and "u8hist/16M" in r.stdout, \
        r.stdout + r.stderr


def test_pyro_nuts_bench_quick_run_checks_results():   # not in run.py's modules; needs pyro
    import pytest
    pytest.importorskip("torch")
    pytest.importorskip("pyro")
    r = _run("benchmarks/bench_pyro_nuts.py", "--quick", "--cases", "schools",
             "--peers", "tracejit,pyro")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| schools | tracejit" in r.stdout and "per leapfrog step" in r.stdout, \
        r.stdout + r.stderr


def test_quant_bench_quick_run_checks_results():   # not in run.py's modules; needs torch
    import pytest
    pytest.importorskip("torch")
    r = _run("benchmarks/bench_quant.py", "--quick", "--cases", "mlp")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| mlp/16" in r.stdout and "int8/fp32" in r.stdout and "weight memory" in r.stdout, \
        r.stdout + r.stderr
