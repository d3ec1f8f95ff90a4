"""What a user sees at a prompt or in a notebook: f.explain(...) (an Explanation: text,
IPython's pretty printer, Jupyter's HTML), repr(f), repr(f.cache_info()), the generic
aliases annotations write at run time, and the progress a long compile reports on
stderr (TRACEJIT_PROGRESS)."""
import functools
import re
import types

import numpy as np
import pytest

import tracejit


def _chain(x):
    return np.sum(x * 2 + 1)    # weak int constants, cast to float64: dce drops them


# ---------------------------------------------------------------- explain
def test_explain_is_text_that_names_unchanged_passes_once():
    e = tracejit.compile(_chain).explain(np.ones(3))
    assert isinstance(e, tracejit.Explanation)
    assert str(e) == e.text == repr(e) and f"{e}" == e.text
    assert "RSUM" in e and "no such op" not in e
    # fold, simplify and cse change nothing here; dce drops the weak int constants
    assert e.unchanged == ("fold", "simplify", "cse")
    for name in e.unchanged:
        assert re.search(rf"^-- {name} \(9 nodes\): unchanged$", e.text, re.M), e.text
        assert e.passes[name].splitlines()[1:] == e.passes["traced"].splitlines()[1:]
    assert e.text.count("= INPUT float64(3,) slot 0") == 2      # traced and dce only
    assert list(e.passes) == ["traced", "fold", "simplify", "cse", "dce"]
    assert e.passes["dce"].startswith("-- dce (7 nodes)\n") and e.passes["dce"] in e
    assert e.groups.startswith("-- fuse: 1 groups") and e.groups in e
    assert e.memplan.startswith("-- memplan: ") and e.memplan in e
    assert re.fullmatch(r"trace \d+ us, passes\+emit \d+ us, libtcc \d+ us", e.times)
    assert f"\n-- times: {e.times}\n-- generated C\n{e.source}" in e and "tj_groups" in e.source


def test_explain_shows_the_tiers_source_where_it_applies(monkeypatch):
    tracejit.set_tier("eager")
    try:
        e = tracejit.compile(lambda x: x * 2.0 + 1.0).explain(np.ones(64))
    finally:
        tracejit.set_tier("auto")
    assert e.tier_source is not None and "tracejit optimizing tier" in e.tier_source
    assert e.text.endswith(f"-- optimizing tier C (gcc)\n{e.tier_source}")
    tracejit.set_tier("tcc")
    try:
        assert tracejit.compile(lambda x: x * 2.0 + 1.0).explain(np.ones(64)).tier_source is None
    finally:
        tracejit.set_tier("auto")


def test_explain_shows_each_pass_that_changed_the_graph_in_full():
    def f(x):
        y = x * 1.0 + 0.0         # simplify: x * 1.0 -> x (+ 0.0 is kept: -0.0 + 0.0)
        return (y + y) * (y + y)  # cse merges the two sums, dce drops the rest
    e = tracejit.compile(f).explain(np.ones(3))
    assert e.unchanged == ("fold",)
    assert e.text.count("unchanged") == 1 and "-- fold (8 nodes): unchanged\n" in e
    for name in "simplify", "cse", "dce":
        assert f"{e.passes[name]}\n" in e, name


class _Printer:
    """IPython's RepresentationPrinter, as far as _repr_pretty_ uses it."""
    def __init__(self):
        self.out = []

    def text(self, s):
        self.out.append(s)


def test_explain_pretty_prints_its_text():
    e = tracejit.compile(_chain).explain(np.ones(3))
    p = _Printer()
    e._repr_pretty_(p, False)
    assert p.out == [e.text]


def test_explain_in_ipython_is_the_text_not_an_escaped_string():
    pretty = pytest.importorskip("IPython.lib.pretty")
    e = tracejit.compile(_chain).explain(np.ones(3))
    assert pretty.pretty(e) == e.text and "\\n" not in pretty.pretty(e)


def test_explain_html_has_collapsible_escaped_sections():
    tracejit.set_tier("eager")
    try:
        e = tracejit.compile(_chain).explain(np.ones(3))
    finally:
        tracejit.set_tier("auto")
    page = e._repr_html_()
    assert page.startswith('<div class="tracejit-explain">') and page.endswith("</div>")
    details = re.findall(r"<details( open)?><summary><b>([^<]*)</b> \((\d+) lines\)</summary>"
                         r"<pre>(.*?)</pre></details>", page, re.S)
    titles = [t for _, t, _, _ in details]
    assert titles == ["graph: traced", "passes: fold, simplify, cse, dce (changed the graph: "
                      "dce)", "groups and memory plan", "generated C (TinyCC)",
                      "optimizing tier C (gcc)"], titles
    opened = {t: bool(o) for o, t, _, _ in details}
    # short sections open, the sources (long) collapsed
    assert opened["graph: traced"] and opened["groups and memory plan"]
    assert not opened["generated C (TinyCC)"] and not opened["optimizing tier C (gcc)"]
    bodies = {t: b for _, t, _, b in details}
    assert "-&gt; out 0" in bodies["graph: traced"] and "-> out" not in page
    assert "-- fold (9 nodes): unchanged" in bodies[titles[1]]
    assert "&lt;" in bodies["generated C (TinyCC)"]          # `j < 3LL`, escaped
    for title, body in bodies.items():
        assert "<" not in body and ">" not in body, title
    assert re.search(r"<p>times: trace \d+ us, ", page)


def test_explain_html_collapses_a_long_graph():
    def long(x):
        for _ in range(60):
            x = np.tanh(x)
        return x
    page = tracejit.compile(long).explain(np.ones(3))._repr_html_()
    assert re.search(r"<details><summary><b>graph: traced</b> \(62 lines\)", page), page[:300]


def test_explain_of_a_module_is_an_explanation():
    torch = pytest.importorskip("torch")
    cm = tracejit.compile(torch.nn.Linear(3, 2))
    with torch.no_grad():
        e = cm.explain(torch.ones(4, 3))
    assert isinstance(e, tracejit.Explanation) and "-- generated C" in e


# ---------------------------------------------------------------- reprs
def test_compiled_function_repr_counts_variants_tiers_hits_and_misses():
    tracejit.set_tier("tcc")
    try:
        f = tracejit.compile(_chain)
        assert repr(f) == "<tracejit.CompiledFunction _chain: 0 variants, 0 hits, 0 misses>"
        f(np.ones(3))
        assert repr(f) == ("<tracejit.CompiledFunction _chain: 1 variant (1 tcc), 0 hits, "
                           "1 miss>")
        f(np.ones(3)), f(np.ones(4))
        assert repr(f) == ("<tracejit.CompiledFunction _chain: 2 variants (2 tcc), 1 hit, "
                           "2 misses>")
    finally:
        tracejit.set_tier("auto")
    tracejit.set_tier("eager")
    try:
        f(np.ones(5))
        assert f.tiers() == ["opt", "tcc", "tcc"]
        assert re.fullmatch(r"<tracejit.CompiledFunction _chain: 3 variants \(1 opt, 2 tcc\), "
                            r"1 hit, 3 misses>", repr(f)), repr(f)
    finally:
        tracejit.set_tier("auto")


def test_compiled_function_repr_names_the_qualified_name():
    class Model:
        @tracejit.compile
        def step(self, x):
            return x + 1.0

    assert repr(Model.step).startswith(
        "<tracejit.CompiledFunction test_compiled_function_repr_names_the_qualified_name."
        "<locals>.Model.step: 0 variants")
    part = functools.partial(np.add, 1.0)       # no __qualname__: its repr
    assert repr(tracejit.compile(part)).startswith(
        f"<tracejit.CompiledFunction {part!r}: 0 variants")


def test_repr_of_grad_names_what_it_computes():
    def loss(w):
        return np.sum(w * w)

    where = "test_repr_of_grad_names_what_it_computes.<locals>."
    for make, name in ((tracejit.grad, "grad(loss)"), (tracejit.value_and_grad,
                                                         "value_and_grad(loss)"),
                       (tracejit.compile, "loss")):
        assert repr(make(loss)).startswith(f"<tracejit.CompiledFunction {where}{name}: 0 "), \
            repr(make(loss))
    # built directly, without compile()'s attributes: the wrapped function's name
    assert repr(tracejit.CompiledFunction(loss)).startswith(
        f"<tracejit.CompiledFunction {where}loss: 0 variants")


def test_cache_info_repr_is_short():
    f = tracejit.compile(_chain)
    f(np.ones(3)), f(np.ones(3)), f(np.ones(4))
    info = f.cache_info()
    assert re.fullmatch(r"tracejit\.CacheInfo\(hits=1, misses=2, variants=2, "
                        r"compile_time=[0-9.e-]{1,10}, last_retrace='arg 0: shape "
                        r"\(3,\) -> \(4,\)'\)", repr(info)), repr(info)
    assert f"compile_time={info.compile_time:.4g}," in repr(info)


# ---------------------------------------------------------------- generic aliases
def test_annotations_subscript_the_types_at_run_time():
    alias = tracejit.CompiledFunction[[np.ndarray, int], np.ndarray]
    assert isinstance(alias, types.GenericAlias)
    assert alias.__origin__ is tracejit.CompiledFunction
    assert alias.__args__ == ([np.ndarray, int], np.ndarray)
    assert tracejit.CompiledModule[int].__origin__ is tracejit.CompiledModule
    # a module without `from __future__ import annotations` evaluates them at def time
    ns = {}
    exec("import numpy as np, tracejit\n"
         "def apply(f: tracejit.CompiledFunction[[np.ndarray], np.ndarray],\n"
         "          x: np.ndarray) -> np.ndarray:\n"
         "    return f(x)\n"
         "scaled: tracejit.CompiledFunction[[np.ndarray], np.ndarray] = "
         "tracejit.compile(lambda x: x * 2.0)\n", ns)
    assert ns["apply"](ns["scaled"], np.ones(2)).tolist() == [2.0, 2.0]
    assert ns["apply"].__annotations__["f"] == tracejit.CompiledFunction[[np.ndarray],
                                                                         np.ndarray]


# ---------------------------------------------------------------- progress
def _unrolled(x):
    for _ in range(2100):       # 2 nodes a step: past 4096 nodes while tracing
        x = x * 1.0001 + 0.5
    return x


def test_a_long_compile_reports_its_progress(monkeypatch, capsys):
    monkeypatch.delenv("TRACEJIT_DEBUG", raising=False)
    monkeypatch.setenv("TRACEJIT_PROGRESS", "0")     # every compile is "long"
    f = tracejit.compile(_unrolled)
    x = np.ones(4)
    np.testing.assert_allclose(f(x), _unrolled(x), rtol=1e-12)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err                        # not a line per op
    assert re.fullmatch(r"\[tracejit\] compiling _unrolled for \d+\.\d s so far: tracing "
                        r"\(4096 ops\)", err[0]), err[0]
    assert re.fullmatch(r"\[tracejit\] compiled _unrolled in \d+\.\d\d s \(trace \d+\.\d\d s, "
                        r"passes\+emit \d+\.\d\d s, libtcc \d+\.\d\d s\)", err[1]), err[1]
    f(x)                                             # a hit compiles nothing
    assert capsys.readouterr().err == ""
    g = tracejit.compile(_chain)                     # short: noted between phases
    g(x)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and re.fullmatch(r"\[tracejit\] compiling _chain for \d+\.\d s so "
                                          r"far: optimizing \(\d+ ops\)", err[0]), err


@pytest.mark.parametrize("value", [None, "", "inf", "soon", "-1"])
def test_progress_is_quiet_below_its_threshold(value, monkeypatch, capsys):
    """Unset, empty or unreadable: the default, 0.5 s, which a small compile stays under;
    inf: never."""
    monkeypatch.delenv("TRACEJIT_DEBUG", raising=False)
    if value is None:
        monkeypatch.delenv("TRACEJIT_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("TRACEJIT_PROGRESS", value)
    tracejit.compile(_chain)(np.ones(3))
    assert capsys.readouterr().err == ""


def test_progress_with_debug_prints_one_closing_line(monkeypatch, capsys):
    monkeypatch.setenv("TRACEJIT_DEBUG", "1")
    monkeypatch.setenv("TRACEJIT_PROGRESS", "0")
    tracejit.compile(_chain)(np.ones(3))
    err = capsys.readouterr().err
    assert len(re.findall(r"^\[tracejit\] compiling _chain for ", err, re.M)) == 1, err
    assert len(re.findall(r"^\[tracejit\] compiled ", err, re.M)) == 1, err   # debug's
    assert re.search(r"^\[tracejit\] compiled <function _chain at 0x\w+> in \d+ us", err, re.M)
