"""The layering of DESIGN.md, read off the #include lines: the IR (csrc/ir/), the
passes (csrc/fuse/) and the code generators (csrc/emit/) are plain C, with no Python
and no tracer header, directly or through the headers they include. Needs no build."""
import os
import re

import pytest

CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
FORBIDDEN = ("Python.h", "structmember.h", "frameobject.h", "numpy/", "tracejit.h", "trace/")
# the emitters' two Python-facing files: the libtcc backend (it raises CompileError;
# the backend seam of issue 14 takes it out) and the vmath test hook (_C._vmath)
EMIT_PYTHON_SIDE = {"tcc.c", "vmath_eval.c"}


def includes(path):
    with open(path) as f:
        return INCLUDE.findall(f.read())


def closure(path):
    """Every header path reaches, following the project's own headers."""
    seen, todo, out = set(), [path], []
    while todo:
        p = todo.pop()
        for inc in includes(p):
            out.append(inc)
            for base in (os.path.dirname(p), CSRC):
                cand = os.path.normpath(os.path.join(base, inc))
                if os.path.isfile(cand) and cand not in seen:
                    seen.add(cand)
                    todo.append(cand)
                    break
    return out


def files(folder, skip=()):
    d = os.path.join(CSRC, folder)
    return sorted(os.path.join(d, n) for n in os.listdir(d)
                  if n.endswith((".c", ".h")) and n not in skip)


LAYERS = {"ir": files("ir"), "fuse": files("fuse"),
          "emit": files("emit", skip=EMIT_PYTHON_SIDE)}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_plain_c_layers_include_no_python_and_no_tracer(layer):
    assert len(LAYERS[layer]) >= 3, f"csrc/{layer}/ moved? DESIGN.md names it"
    bad = {os.path.relpath(p, CSRC): [i for i in closure(p) if i.startswith(FORBIDDEN) or
                                      os.path.basename(i) in ("Python.h", "tracejit.h")]
           for p in LAYERS[layer]}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"csrc/{layer}/ must stay plain C (DESIGN.md, the layers): {bad}"


def test_the_rule_sees_a_violation(tmp_path):
    """The checker itself: a header that includes Python through another is caught."""
    (tmp_path / "a.h").write_text('#include "b.h"\n')
    (tmp_path / "b.h").write_text("#include <Python.h>\n")
    (tmp_path / "x.c").write_text('#include "a.h"\n')
    assert "Python.h" in closure(str(tmp_path / "x.c"))
