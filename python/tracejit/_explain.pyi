"""Type stub of tracejit._explain: what `f.explain(*args)` returns."""
from typing import Any

class Explanation:
    passes: dict[str, str]
    unchanged: tuple[str, ...]
    groups: str | None
    memplan: str | None
    times: str | None
    guards: str | None
    source: str | None
    tier_source: str | None
    text: str
    def __init__(self, log: list[str] | None, source: str | None = None,
                 tier_source: str | None = None) -> None: ...
    def __contains__(self, s: str) -> bool: ...
    # IPython's pretty printer (p: IPython.lib.pretty.RepresentationPrinter)
    def _repr_pretty_(self, p: Any, cycle: bool) -> None: ...
    def _repr_html_(self) -> str: ...
