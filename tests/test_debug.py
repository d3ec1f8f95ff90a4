"""TRACEJIT_DEBUG's levels, read from a fresh interpreter's stderr: 0 quiet; 1 a line
per cache miss (with its retrace reason) and per compile (with its time), hits not
printed; 2 also the graph after each pass and the generated C; 3 also the lowered
schedule, the optimizing tier's C and its compile failures."""
import os
import re
import subprocess
import sys

import pytest

# Three calls: a compile, a hit, a retrace for another shape.
PROGRAM = """
import numpy as np, tracejit
f = tracejit.compile(lambda x: np.tanh(x * 2.0 + 1.0))
f(np.ones(8)); f(np.ones(8)); f(np.ones(5))
print(f.tiers()[0])
"""


def run(level, **env):
    """stdout and stderr of PROGRAM run with TRACEJIT_DEBUG=level (None: unset)."""
    e = {k: v for k, v in os.environ.items() if k != "TRACEJIT_DEBUG"}
    if level is not None:
        e["TRACEJIT_DEBUG"] = level
    e.update(env)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=e, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), out.stderr


@pytest.mark.parametrize("level", [None, "", "0"])
def test_quiet_unless_set(level):
    assert run(level)[1] == ""


def test_level_1_prints_compiles_and_retraces_only():
    lines = run("1")[1].splitlines()
    assert len(lines) == 4, lines      # the hit prints nothing
    assert re.fullmatch(r"\[tracejit\] cache miss 1 of <function <lambda> at 0x\w+>: the "
                        r"first call with these argument types", lines[0])
    assert re.fullmatch(r"\[tracejit\] cache miss 2 of <function <lambda> at 0x\w+>: "
                        r"arg 0: shape \(8,\) -> \(5,\)", lines[2])
    for line in lines[1], lines[3]:
        assert re.fullmatch(r"\[tracejit\] compiled <function <lambda> at 0x\w+> in \d+ us "
                            r"\(trace \d+ us, passes\+emit \d+ us, libtcc \d+ us\)", line)


def test_level_2_adds_passes_and_generated_c():
    err = run("2", TRACEJIT_TIER="eager", TRACEJIT_CC="/nonexistent/cc")[1]
    assert len(re.findall(r"^\[tracejit\] compiled .* in \d+ us", err, re.M)) == 2
    assert len(re.findall(r"^\[tracejit\] cache miss", err, re.M)) == 2
    for part in ("-- traced", "-- fold", "-- simplify", "-- cse", "-- dce", "-- fuse",
                 "-- memplan", "-- generated C", "tj_groups"):
        assert err.count(part) == 2, part
    # as explain() shows it: a pass that changed nothing is one line (fold, here)
    assert len(re.findall(r"^-- fold \(\d+ nodes\): unchanged$", err, re.M)) == 2, err
    assert "optimizing tier" not in err


def test_level_3_adds_the_tiers_c_and_its_compile_failures(tmp_path):
    cc = tmp_path / "failing-cc"
    cc.write_text("#!/bin/sh\necho 'failing-cc: error: no kernels today' >&2\nexit 1\n")
    cc.chmod(0o755)
    env = dict(TRACEJIT_TIER="eager", TRACEJIT_CC=str(cc),
               TRACEJIT_CACHE_DIR=str(tmp_path / "cache"))
    tiers, err = run("3", **env)
    assert tiers == "tcc"              # the failure leaves the kernels on TinyCC
    assert err.count("-- the optimizing tier's C\n/* tracejit optimizing tier */") == 2
    failures = re.findall(r"^\[tracejit\] optimizing tier: (.*) failed \(status \d+\); the "
                          r"kernel stays on TinyCC\nfailing-cc: error: no kernels today$",
                          err, re.M)
    assert failures == [str(cc)] * 2, err
    # level 2 says nothing of the tier, and the compiler's messages are dropped
    tiers, err = run("2", **env)
    assert tiers == "tcc" and "optimizing tier" not in err and "failing-cc" not in err


SCHEDULE = """
import numpy as np, tracejit
f = tracejit.compile(lambda x, y: np.tanh(x * (y * 2.0)))
f(np.ones(8), np.float64(3.0))
h = tracejit.compile(lambda x, b: (x + b).sum(axis=0))
h(np.ones((100, 10)), np.ones(10))
"""


def test_level_3_adds_the_lowered_schedule():
    """Each compile's schedule: the loop nest after collapsing, blocks, units and their
    split, a chunked reduction, the tier's strategy, each leaf's access (map, steps,
    uniform) and the values hoisted out of the loop."""
    e = {k: v for k, v in os.environ.items() if k != "TRACEJIT_DEBUG"}
    e["TRACEJIT_DEBUG"] = "3"
    err = subprocess.run([sys.executable, "-c", SCHEDULE], env=e, capture_output=True,
                         text=True, check=True).stderr
    blocks = re.findall(r"^-- schedule: .*\n(?:  .*\n)*", err, re.M)
    assert len(blocks) == 2, err
    assert blocks[0] == (
        "-- schedule: 1 groups\n"
        "  group 0: loop [8], blocks of 8, 1 units of 512, parallel, tier: fused\n"
        "    leaf 0: %0 slot 0 map[0] step[1]\n"
        "    leaf 1: %1 slot 1 map[-1] step[0] uniform\n"
        "    leaf 2: %2 slot 2 map[-1] step[0] uniform\n"
        "    out 0: %5 slot 3 map[0]\n"
        "    hoisted: %3\n"), blocks[0]
    assert blocks[1] == (
        "-- schedule: 1 groups\n"
        "  group 0: loop [100, 10], blocks of 510 (rows), 2 units of 51, chunked reduction, "
        "tier: fused, columns, vertical\n"
        "    leaf 0: %0 slot 0 map[0 1] step[1 1]\n"
        "    leaf 1: %1 slot 1 map[-1 0] step[0 1]\n"
        "    out 0: %3 slot 3 map[-1 0]\n"), blocks[1]
    assert "-- schedule" not in run("2")[1]
