"""One pass over a message finds every keyword of every rule (Aho-Corasick).

Phrases and texts are sequences of stems joined by single spaces and padded
with a space at each end, so a pattern matches whole words only: `` sekat ``
is found in `` pos sekat kedungwaringin `` but not in `` sekatan ``. The cost
of a search depends on the length of the text and the number of matches, not
on the number of rules.
"""

from __future__ import annotations

from collections.abc import Iterable

import ahocorasick


class Matcher:
    """An Aho-Corasick automaton over phrase keys, built once."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        for key in keys:
            self._automaton.add_word(key, key)
        self.size = len(self._automaton)
        if self.size:
            self._automaton.make_automaton()

    def find(self, padded_text: str) -> list[str]:
        """Keys found in ``padded_text``, each once, in the order they first end in the text."""
        if not self.size:
            return []
        return list(dict.fromkeys(key for _end, key in self._automaton.iter(padded_text)))
