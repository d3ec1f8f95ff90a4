"""The typed public API (python/tracejit/__init__.pyi, _C.pyi), as a user's
`mypy --strict` sees it: `@tracejit.compile` keeps the decorated function's parameters
and return type, in both decorator forms; grad / value_and_grad / vjp keep f's
parameters; a wrong call is reported at its line. And mypy's stubtest holds the stubs
to the runtime, so they cannot drift from __all__ or from the C module's signatures.

mypy is a test-only dependency: the module skips without it. It checks the tracejit
this process imported (a source checkout on PYTHONPATH, or the installed package).
"""
import os
import re
import runpy
import shutil
import site
import subprocess
import sys
import textwrap

import pytest

mypy_api = pytest.importorskip("mypy.api")

import tracejit  # noqa: E402

# The package's parent directory: where mypy must find tracejit/__init__.pyi.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(tracejit.__file__)))
PKG = os.path.dirname(os.path.abspath(tracejit.__file__))

# `# R: pattern` after a reveal_type: the whole revealed type, `*` matching anything
# (numpy's types come spelled out, numpy.ndarray[tuple[Any, ...], numpy.dtype[...]],
# in a form that changes with numpy's stubs).
GOOD = '''\
"""A user's typed module."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np
import numpy.typing as npt

import tracejit

Arr = npt.NDArray[np.float64]


@tracejit.compile
def scale(x: Arr, n: int) -> Arr:
    return x * n


@tracejit.compile(static_argnames=("n",))
def power(x: Arr, n: int) -> Arr:
    return x ** n


def loss(w: Arr, x: Arr) -> np.float64:
    return np.sum(w * x)


def loss_aux(w: Arr) -> tuple[np.float64, str]:
    return np.sum(w * w), "aux"


class Net:
    """An nn.Module's shape, as compile recognizes one (no torch: it is slow to check)."""
    training: bool = True

    def modules(self) -> Iterator[Net]:
        yield self


def double(x: Arr) -> Arr:
    return x * 2.0


class Model:
    @tracejit.compile
    def step(self, x: Arr) -> Arr:
        return x + 1.0


w = np.ones(3)
y: Arr = scale(w, 2)
z: Arr = power(w, n=3)
kept: tracejit.CompiledFunction[[Arr, int], Arr] = scale
info: tracejit.CacheInfo = scale.cache_info()
hits: int = info.hits
explained: tracejit.Explanation = scale.explain(w, 2)
text: str = str(explained)
unchanged: tuple[str, ...] = explained.unchanged
html: str = explained._repr_html_()
source: str | None = scale.last_source
tiers: list[str] = scale.tiers()
scale.cache_clear()
stepped: Arr = Model().step(w)
value, g = tracejit.value_and_grad(loss)(w, w)
out, pullback = tracejit.vjp(double, w)
threads: int = tracejit.get_num_threads()
if TYPE_CHECKING:
    reveal_type(scale)  # R: *CompiledFunction[[x: numpy.ndarray[*], n: int], numpy.ndarray[*]]
    reveal_type(power)  # R: *CompiledFunction[[x: numpy.ndarray[*], n: int], numpy.ndarray[*]]
    reveal_type(scale(w, 2))  # R: numpy.ndarray[*float64*]
    reveal_type(Model().step)  # R: def (x: numpy.ndarray[*]) -> numpy.ndarray[*]
    reveal_type(tracejit.compile(Net()))  # R: tracejit.CompiledModule[good.Net]
    reveal_type(tracejit.compile(static_argnames="n")(Net()))  # R: *CompiledModule[good.Net]
    reveal_type(tracejit.grad(loss))  # R: *CompiledFunction[[w: *, x: *], Any]
    reveal_type(tracejit.grad(loss_aux, has_aux=True))  # R: *[[w: *], tuple[Any, str]]
    reveal_type(value)  # R: numpy.float64
    reveal_type(pullback)  # R: def (Any) -> tuple[Any, ...]
    reveal_type(info.compile_time)  # R: float
'''

# `# E: code pattern`: mypy must report that error code on this line, with a message
# containing the pattern (`*` matching anything), and nothing else in the file.
BAD = '''\
"""Wrong calls mypy must reject."""
import numpy as np
import numpy.typing as npt

import tracejit

Arr = npt.NDArray[np.float64]


@tracejit.compile
def scale(x: Arr, n: int) -> Arr:
    return x * n


@tracejit.compile(static_argnames="n")
def power(x: Arr, n: int) -> Arr:
    return x ** n


def loss(w: Arr, x: Arr) -> np.float64:
    return np.sum(w * x)


w = np.ones(3)
scale(w, "2")  # E: arg-type Argument 2 to "__call__" * "str"; expected "int"
power(w, n=2.5)  # E: arg-type Argument "n" * "float"; expected "int"
scale(w)  # E: call-arg Missing positional argument "n"
s: str = scale(w, 2)  # E: assignment Incompatible types in assignment * variable has type "str"
scale.explain(w, 2, 3)  # E: call-arg Too many arguments
tracejit.grad(loss)(w)  # E: call-arg Missing positional argument "x"
scale.cache_info()._asdict()  # E: attr-defined "CacheInfo" has no attribute "_asdict"
tracejit.set_tier("fast")  # E: arg-type expected "Literal['auto', 'eager', 'tcc']"
'''


def _site_dirs():
    dirs = list(site.getsitepackages()) + [site.getusersitepackages()]
    try:   # mypy's own notion of site-packages (venvs), where it refuses a MYPYPATH
        from mypy import pyinfo
        dirs += pyinfo.getsitepackages()
    except Exception:
        pass
    return {os.path.realpath(d) for d in dirs}


def _mypypath(monkeypatch):
    """Installed into site-packages, mypy finds the package itself (PEP 561: py.typed)
    and refuses it on MYPYPATH; from a source checkout (PYTHONPATH, which mypy ignores)
    it must be told, and MYPYPATH outranks any other installed copy."""
    if os.path.realpath(ROOT) in _site_dirs():
        monkeypatch.delenv("MYPYPATH", raising=False)
    else:
        monkeypatch.setenv("MYPYPATH", ROOT)


def _markers(src, tag):
    """{line number: text after `# tag: `} for the lines carrying the marker."""
    out = {}
    for i, line in enumerate(src.splitlines(), 1):
        m = re.search(rf"  # {tag}: (.*)$", line)
        if m:
            out[i] = m.group(1)
    return out


def _pattern(text):
    """A marker's pattern as a regex: literal text, `*` matching anything."""
    return ".*".join(map(re.escape, text.split("*")))


def _diagnostics(report, name):
    """(line, severity, message, code) of each of mypy's lines about file `name`."""
    pat = re.compile(rf"^(?:.*[/\\])?{re.escape(name)}:(\d+): (error|note): (.*?)"
                     r"(?:  \[([a-z-]+)\])?$")
    return [(int(m.group(1)), m.group(2), m.group(3), m.group(4))
            for m in map(pat.match, report.splitlines()) if m]


def test_mypy_strict_keeps_signatures(tmp_path, monkeypatch):
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    _mypypath(monkeypatch)
    config = tmp_path / "mypy.ini"   # nobody's mypy config but ours
    config.write_text("[mypy]\n")
    # one run for both files: the numpy stubs are the slow part, read once
    stdout, stderr, status = mypy_api.run([
        "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "mc"),
        "--config-file", str(config), "--no-color-output", "--no-pretty",
        "--show-error-codes", "--hide-error-context",
        str(tmp_path / "good.py"), str(tmp_path / "bad.py")])
    report = f"{stdout}\n{stderr}"
    assert status == 1, report      # 1: type errors found (2 would be a crash or bad usage)
    assert "untyped" not in report, report
    assert not [d for d in _diagnostics(report, "__init__.pyi") + _diagnostics(report, "_C.pyi")
                ], report           # the stubs themselves are --strict clean

    good = _diagnostics(report, "good.py")
    assert [d for d in good if d[1] == "error"] == [], report
    revealed = {line: msg for line, sev, msg, _ in good if sev == "note"
                and msg.startswith("Revealed type is")}
    for line, pattern in _markers(GOOD, "R").items():
        assert line in revealed, f"no reveal_type note on good.py:{line}\n{report}"
        got = re.fullmatch(r'Revealed type is "(.*)"', revealed[line]).group(1)
        got = got.replace("builtins.", "")   # older mypy (1.15, 1.11) spells builtins out
        assert re.fullmatch(_pattern(pattern), got), f"good.py:{line}: {got!r} !~ {pattern!r}"

    bad = [d for d in _diagnostics(report, "bad.py") if d[1] == "error"]
    expected = _markers(BAD, "E")
    assert sorted({line for line, *_ in bad}) == sorted(expected), report
    for line, spec in expected.items():
        code, pattern = spec.split(" ", 1)
        assert any(l == line and c == code and re.search(_pattern(pattern), msg)
                   for l, _, msg, c in bad), f"bad.py:{line}: no [{code}] {pattern!r}\n{report}"


def test_typed_example_runs(tmp_path):
    """What the typed example claims holds at runtime too (reveal_type is only under
    TYPE_CHECKING): both decorator forms, a compiled method, value_and_grad, vjp."""
    path = tmp_path / "good_runtime.py"
    path.write_text(GOOD)
    ns = runpy.run_path(str(path))
    assert ns["y"].tolist() == [2.0, 2.0, 2.0] and ns["z"].tolist() == [1.0, 1.0, 1.0]
    assert ns["stepped"].tolist() == [2.0, 2.0, 2.0] and float(ns["value"]) == 3.0
    assert isinstance(ns["info"], tracejit.CacheInfo) and isinstance(ns["text"], str)
    assert "-- traced" in ns["text"] and ns["html"].startswith("<div")
    assert ns["pullback"](ns["out"])[0].tolist() == [4.0, 4.0, 4.0]


# stubtest's findings the stubs mean: CompiledModule reaches these through __getattr__
# (the stub names them, so a typo is still an error); Tracer stands in for NumPy's
# whole array API with one __getattr__; the stubs' Generic supplies __class_getitem__
# (test_display.py checks the runtime's). (Older stubtest names Tracer by its runtime
# module, tracejit.) tracejit.pyro, Pyro's ELBOs compiled, needs pyro-ppl and has no stubs
# (its classes are Pyro's, typed as Pyro types them).
ALLOW = r"""
tracejit\.CompiledModule\.(cache_clear|cache_info|tiers)
tracejit\.(_C\.)?Tracer(\..*)?
tracejit\.CompiledModule\.__class_getitem__
tracejit\._C\.CompiledFunction\.__class_getitem__
tracejit\.pyro(\..*)?
"""


def test_stubs_match_runtime(tmp_path):
    """mypy.stubtest imports tracejit and compares every stubbed name, signature and
    __all__ with the stubs. The stubs are copied alone, so that mypy does not also
    analyze the package's untyped .py modules (a build error would stop stubtest)."""
    stubs = tmp_path / "stubs" / "tracejit"
    stubs.mkdir(parents=True)
    for name in os.listdir(PKG):
        if name.endswith(".pyi"):
            shutil.copyfile(os.path.join(PKG, name), stubs / name)
    (tmp_path / "allow.txt").write_text(textwrap.dedent(ALLOW))
    config = tmp_path / "mypy.ini"   # nobody's mypy config but ours
    config.write_text("[mypy]\n")
    env = dict(os.environ, MYPYPATH=str(tmp_path / "stubs"),
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in os.environ.get(
                   "PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "tracejit", "--allowlist",
         str(tmp_path / "allow.txt"), "--ignore-unused-allowlist", "--concise",
         "--mypy-config-file", str(config)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
