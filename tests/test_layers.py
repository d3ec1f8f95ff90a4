"""The layering of DESIGN.md, read off the source text: the IR (csrc/ir/), the passes
(csrc/fuse/) and the code generators (csrc/emit/) are plain C, with no Python and no
tracer header, directly or through the headers they include; the runtime
(csrc/runtime.c, csrc/guards.c) names no compiler: no backend header, no call of
TinyCC's (tj_tcc_*) or the optimizing tier's (tj_tier_*) functions. Needs no build."""
import os
import re

import pytest

CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
FORBIDDEN = ("Python.h", "structmember.h", "frameobject.h", "numpy/", "tracejit.h", "trace/")
# the emitters' one Python-facing file: the vmath test hook (_C._vmath)
EMIT_PYTHON_SIDE = {"vmath_eval.c"}
# the runtime holds kernels (tj_kernel) and calls csrc/backend/kernel.c through
# tracejit.h; the compilers' own functions and header are the backends' business
RUNTIME = ("runtime.c", "guards.c")
COMPILER_CALL = re.compile(r"\btj_(?:tcc|tier)_\w*\s*\(")
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


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


def compiler_names(path):
    """The backend headers path reaches and the compiler functions it calls."""
    with open(path) as f:
        code = COMMENT.sub(" ", f.read())
    headers = [i for i in closure(path) if i.startswith("backend/") or "/backend/" in i]
    return headers + COMPILER_CALL.findall(code)


@pytest.mark.parametrize("name", RUNTIME)
def test_runtime_names_no_compiler(name):
    path = os.path.join(CSRC, name)
    assert os.path.isfile(path), f"csrc/{name} moved? DESIGN.md names it"
    bad = compiler_names(path)
    assert not bad, (f"csrc/{name} must name no compiler (DESIGN.md, the layers): it holds "
                     f"kernels and calls tj_kernel_free / tj_upgrade_* instead: {bad}")


def test_the_compiler_rule_sees_a_violation(tmp_path):
    """The checker itself: a backend header through another, and a call (not a comment)."""
    (tmp_path / "r.c").write_text('#include "x.h"\n/* tj_tier_poll(j) is only named */\n'
                                  "void f(void *m) { tj_tcc_free (m); }\n")
    (tmp_path / "x.h").write_text('#include "backend/backend.h"\n')
    assert compiler_names(str(tmp_path / "r.c")) == ["backend/backend.h", "tj_tcc_free ("]


# ---- module state: through the module, never a global (DESIGN.md, "Module state") ----

# a file-scope pointer to the state, or a function of no arguments handing it out
STATE_GLOBAL = re.compile(r"^(?:static\s+|extern\s+)?(?:_Thread_local\s+)?tj_state\s*\*\s*\w+"
                          r"\s*(?:=[^;]*)?;|\btj_state\s*\*\s*\w+\s*\(\s*void\s*\)", re.M)
# a Python object in a file-scope variable (it belongs in tj_state, where traverse sees it)
PY_STATIC = re.compile(r"^(?:static\s+)?(?:_Thread_local\s+)?(?:const\s+)?"
                       r"(?:PyObject|PyTypeObject)\s*\*\s*\w+\s*(?:\[[^\]]*\])?\s*(?:=[^;]*)?;", re.M)


def state_globals(path):
    with open(path) as f:
        code = COMMENT.sub(" ", f.read())
    return STATE_GLOBAL.findall(code) + PY_STATIC.findall(code)


def all_sources():
    return sorted(os.path.join(d, n) for d, _, ns in os.walk(CSRC) for n in ns
                  if n.endswith((".c", ".h")))


def test_no_global_state_and_no_python_object_in_a_file_static():
    bad = {os.path.relpath(p, CSRC): state_globals(p) for p in all_sources()}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, ("the module state is reached through the module, a heap type or an "
                     "object that carries it, and Python objects live in tj_state "
                     f"(DESIGN.md, module state): {bad}")


def test_the_state_rule_sees_a_violation(tmp_path):
    """The checker itself: a static pointer, an accessor, a cached object; not locals."""
    (tmp_path / "s.c").write_text(
        "static tj_state *g_state;\ntj_state *tj_get_state(void) { return g_state; }\n"
        "static PyObject *cached = NULL;\nstatic PyTypeObject *types[4];\n"
        "/* static tj_state *in_a_comment; */\n"
        "int f(PyObject *m) {\n    tj_state *st = tj_state_of(m);\n"
        "    static PyObject *local_ok_by_this_rule;\n    return 0;\n}\n")
    assert state_globals(str(tmp_path / "s.c")) == [
        "static tj_state *g_state;", "tj_state *tj_get_state(void)",
        "static PyObject *cached = NULL;", "static PyTypeObject *types[4];"]


def test_the_driver_chooses_backends_by_device_in_one_table():
    """Backends are chosen per device in one table of csrc/compile.c (tj_backends_for):
    the CPU's row names its first kernel's step (TinyCC, in cpu_first) and the tier as
    its upgrade; a CUDA backend is a row there, not a branch of the driver, which reaches
    backends only through the row it looked up."""
    with open(os.path.join(CSRC, "compile.c")) as f:
        code = COMMENT.sub(" ", f.read())
    assert re.search(r"static const tj_backend_row backends\[\] = \{\s*"
                     r"\{TJ_DEVICE_CPU, \"TinyCC\", cpu_first, &tj_backend_tier, "
                     r"tj_emit_fused\},", code)
    for name in ("tj_backend_tcc", "tj_backend_tier"):
        assert len(re.findall(rf"\b{name}\b", code)) == 1, name
    driver = code[code.index("tj_plan *tj_compile_plan("):]
    assert "tj_backends_for(device)" in driver
    assert not re.search(r"\btj_backend_(?!row\b)\w+", driver), "a backend named in the driver"
    assert not re.search(r"\btj_(?:tcc|tier)_\w+\s*\(", code), "the driver asks its row, not a compiler"
