"""What `f.explain(*args)` returns (csrc/function.c builds it from the compile's pass log
and generated sources).

The pass log is the pipeline's (csrc/fuse/pipeline.c): sections opening with a
`-- <name> ...` line. A graph section's header is `-- <pass> (<n> nodes)`; the others
(`-- fuse: ...`, `-- memplan: ...`, `-- times: ...`, `-- guards: ...`) have a colon. Nothing here knows
the pass names, so a new pass shows up without a change here.
"""
import html
import re

_GRAPH = re.compile(r"-- (\w+) \((\d+) nodes\)$")
_HEADER = re.compile(r"-- (\w+)")
# a section longer than this many lines starts collapsed in Jupyter
_OPEN_LINES = 40


def _sections(lines):
    """[(name, header, body lines)] of a pass log, in order."""
    out = []
    for line in lines:
        m = _HEADER.match(line)
        if m:
            out.append((m.group(1), line, []))
        elif out:
            out[-1][2].append(line)
    return out


class Explanation:
    """How tracejit compiles one call: the traced graph, the graph after each pass (a
    pass that changed nothing is one "unchanged" line), the fusion groups and memory
    plan, the compile times, and the generated C (and the optimizing tier's C, where a
    group qualifies for it).

    ``str(e)`` (also ``e.text`` and ``repr(e)``) is the readable text, and ``"MUL" in e``
    searches it; IPython prints the text and Jupyter shows collapsible sections.
    ``e.passes`` maps each graph section (the traced graph first, then one per pass)
    to its full text, ``e.unchanged`` names the passes that changed nothing, and
    ``e.groups``, ``e.memplan``, ``e.times``, ``e.guards`` (what the variant assumes:
    the values Python read while tracing, the constants it read), ``e.source`` and
    ``e.tier_source`` hold the other sections (None where the compile had none)."""

    __slots__ = ("passes", "unchanged", "groups", "memplan", "times", "guards", "source",
                 "tier_source", "text")

    def __init__(self, log, source=None, tier_source=None):
        self.passes, self.unchanged, self.source, self.tier_source = {}, (), source, tier_source
        self.groups = self.memplan = self.times = self.guards = None
        text, unchanged, prev = [], [], None
        for name, header, body in _sections(log or ()):
            full = "\n".join([header] + body)
            if _GRAPH.match(header):
                self.passes[name] = full
                if prev is not None and body == prev:
                    unchanged.append(name)
                    text.append(f"{header}: unchanged")
                else:
                    text.append(full)
                prev = body
                continue
            if name == "fuse":
                self.groups = full
            elif name == "memplan":
                self.memplan = full
            elif name == "times":
                self.times = header[len("-- times: "):]
            elif name == "guards":
                self.guards = full
            text.append(full)
        self.unchanged = tuple(unchanged)
        if source is not None:
            text.append(f"-- generated C\n{source}")
        if tier_source is not None:
            text.append(f"-- optimizing tier C (gcc)\n{tier_source}")
        self.text = "\n".join(text)

    def __str__(self):
        return self.text

    def __repr__(self):
        return self.text

    def __contains__(self, s):
        return s in self.text

    def _repr_pretty_(self, p, cycle):
        p.text(self.text)

    def _repr_html_(self):
        parts = []

        def section(title, body, force_open=None):
            n = body.count("\n") + 1
            is_open = n <= _OPEN_LINES if force_open is None else force_open
            parts.append(f"<details{' open' if is_open else ''}><summary><b>"
                         f"{html.escape(title)}</b> ({n} lines)</summary>"
                         f"<pre>{html.escape(body)}</pre></details>")

        names = list(self.passes)
        if names:
            section(f"graph: {names[0]}", self.passes[names[0]])
        if len(names) > 1:
            body = [f"{self.passes[n].splitlines()[0]}: unchanged" if n in self.unchanged
                    else self.passes[n] for n in names[1:]]
            changed = [n for n in names[1:] if n not in self.unchanged]
            section(f"passes: {', '.join(names[1:])} (changed the graph: "
                    f"{', '.join(changed) or 'none'})", "\n".join(body))
        groups = "\n".join(s for s in (self.groups, self.memplan) if s is not None)
        if groups:
            section("groups and memory plan", groups)
        if self.source is not None:
            section("generated C (TinyCC)", self.source, force_open=False)
        if self.tier_source is not None:
            section("optimizing tier C (gcc)", self.tier_source, force_open=False)
        if self.guards is not None:
            section("guards", self.guards)
        if self.times is not None:
            parts.append(f"<p>times: {html.escape(self.times)}</p>")
        return "<div class=\"tracejit-explain\">" + "\n".join(parts) + "</div>"
