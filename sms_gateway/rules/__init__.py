"""The rules engine: keyword rules in prefixes.yaml route reports and mark categories.

- ``normalize``: Indonesian SMS text as stems (NFKC, case, slang, repeated letters).
- ``stemming``: Sastrawi, cached per word.
- ``schema``: the rules sections of prefixes.yaml, read and checked with line numbers.
- ``gazetteer``: the places of a city (``local: true`` rules count only where one is named).
- ``matcher``: one Aho-Corasick pass finds every keyword.
- ``engine``: scores, vetoes, ties, categories, kinds; ``engine_for(registry)`` per version.
- ``evaluation``: accuracy on labelled texts; ``examples``: the texts people re-routed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..yamlfile import YamlProblem
from .engine import Engine, Match, Verdict, engine_for

__all__ = ["Engine", "Match", "Verdict", "check_rules", "engine_for"]


def check_rules(path: str, data: Mapping[str, Any], parents: Mapping[str, str | None],
                gazetteers: Mapping[str, Any] | None = None) -> list[YamlProblem]:
    """Problems in the rules sections of a registry file (settings.rules, slang, kinds, categories, rules)."""
    from .schema import load_ruleset

    return load_ruleset(path, data, parents, gazetteers)[1]
