"""Indonesian stemming (Sastrawi's algorithm), cached per word.

``pemudik``, ``mudiknya`` and ``pemudiknya`` all become ``mudik``; ``penyekatan``
and ``disekat`` become ``sekat``. Sastrawi strips affixes only while the
result stays in its dictionary of root words, so unknown words (place names,
abbreviations such as ``bpjs``) come back unchanged.

Sastrawi costs tens of microseconds per new word; citizens use a few thousand
distinct words, so a per-process cache makes stemming almost free.
"""

from __future__ import annotations

from functools import lru_cache

from Sastrawi.Dictionary.ArrayDictionary import ArrayDictionary
from Sastrawi.Stemmer.Stemmer import Stemmer
from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

CACHE_SIZE = 200_000  # distinct words; a few MB at most


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer:
    words = [w for w in StemmerFactory().get_words() if w]
    return Stemmer(ArrayDictionary(words))


@lru_cache(maxsize=CACHE_SIZE)
def stem(word: str) -> str:
    """Root of one lower-case word; digits and very short words are returned as they are."""
    if len(word) <= 3 or not word.isalpha():
        return word
    return str(_stemmer().stem_word(word)) or word


@lru_cache(maxsize=CACHE_SIZE)
def is_root_word(word: str) -> bool:
    """True when ``word`` is in Sastrawi's dictionary of Indonesian root words."""
    return bool(_stemmer().get_dictionary().contains(word))
