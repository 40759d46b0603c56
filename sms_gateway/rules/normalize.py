"""Indonesian SMS text as the rules see it: a list of word stems.

Citizens type ``Tlg, jln di dpn SDN 3 udh rusaaak bgt!!`` and the rules are
written as ``jalan rusak``. Every text (messages and rule keywords alike) goes
through the same steps, so whatever an admin writes matches what citizens type:

1. Unicode NFKC (full-width letters, ligatures), case folding, accents dropped;
2. words are runs of letters or of digits (``350rb`` is ``350 rb``,
   ``covid-19`` is ``covid 19``); everything else separates words;
3. ``anak2`` (SMS reduplication) is ``anak anak``;
4. letters repeated for emphasis are squeezed (``rusaaak`` → ``rusak``,
   ``maaaaf`` → ``maaf``: the form found in the dictionaries wins); a doubled
   letter is undone only when that turns an unknown word into a known one
   (``pagii`` → ``pagi``, but ``maaf`` stays);
5. slang and abbreviations are expanded (``jln`` → ``jalan``; the shipped
   ``data/slang.tsv`` plus the admins' ``slang:`` in prefixes.yaml);
6. each word is reduced to its root with Sastrawi (``penyekatan`` → ``sekat``).

A keyword written ``=dirumahkan`` skips step 6: it matches that form only (its
root, ``rumah``, would also match every house).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from importlib import resources

from .stemming import is_root_word, stem

_WORDS = re.compile(r"[^\W\d_]+|\d+")
_REDUPLICATION = re.compile(r"\b([^\W\d_]{2,})2\b")
_REPEATS = re.compile(r"([^\W\d_])\1{2,}")
_DOUBLES = re.compile(r"([^\W\d_])\1")
MAX_SQUEEZED_RUNS = 4  # 2**4 candidate spellings at most per word
TOKEN_CACHE_SIZE = 100_000

SLANG_FILE = "slang.tsv"


def fold(text: str) -> str:
    """NFKC, case folding and accents dropped: the form every comparison uses."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))
    return text


def split_words(text: str) -> list[str]:
    """Folded words of ``text`` with SMS reduplication written out (steps 1 to 3)."""
    text = fold(text)
    if "2" in text:
        text = _REDUPLICATION.sub(r"\1 \1", text)
    return _WORDS.findall(text)


def read_slang_tsv(text: str, source: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Entries of a slang TSV and its problems as (line, problem)."""
    entries: dict[str, str] = {}
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            problems.append((number, "expected: slang form, a tab, its expansion"))
            continue
        form, expansion = parts[0].strip(), parts[1].strip()
        words = split_words(form)
        if len(words) != 1:
            problems.append((number, f"{form!r} must be one word of letters or digits"))
            continue
        if words[0] in entries:
            problems.append((number, f"{form!r} is listed twice in {source}"))
            continue
        entries[words[0]] = expansion
    return entries, problems


def shipped_slang() -> dict[str, str]:
    """The slang dictionary shipped with the gateway (``sms_gateway/data/slang.tsv``)."""
    text = resources.files("sms_gateway.data").joinpath(SLANG_FILE).read_text(encoding="utf-8")
    entries, problems = read_slang_tsv(text, SLANG_FILE)
    if problems:
        line, problem = problems[0]
        raise ValueError(f"{SLANG_FILE}:{line}: {problem}")
    return entries


class Normalizer:
    """Turns texts into stems with one slang dictionary; caches the work per word."""

    def __init__(self, slang: Mapping[str, str]) -> None:
        self.slang: dict[str, tuple[str, ...]] = {}
        for form, expansion in slang.items():
            self.slang[form] = tuple(split_words(expansion))
        self._cache: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def _squeeze(self, word: str) -> str:
        """``rusaaak`` → ``rusak``, ``maaaaf`` → ``maaf``: prefer a spelling we know."""
        runs = list(_REPEATS.finditer(word))[:MAX_SQUEEZED_RUNS]
        candidates = []
        for lengths in itertools.product((1, 2), repeat=len(runs)):
            out, pos = [], 0
            for run, n in zip(runs, lengths, strict=True):
                out.append(word[pos:run.start()])
                out.append(run.group(1) * n)
                pos = run.end()
            out.append(_REPEATS.sub(r"\1", word[pos:]))
            candidates.append("".join(out))
        for candidate in candidates:
            if self._known(candidate):
                return candidate
        return candidates[0]

    def _known(self, word: str) -> bool:
        return word in self.slang or is_root_word(word) or stem(word) != word

    def _plain(self, word: str) -> str:
        """The word with emphasis repeats undone (step 4)."""
        if _REPEATS.search(word):
            return self._squeeze(word)
        if len(word) > 3 and _DOUBLES.search(word) and not self._known(word):
            single = _DOUBLES.sub(r"\1", word)
            if self._known(single):
                return single
        return word

    def _analysed(self, word: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(words after steps 4-5, their stems) for one typed word, cached."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        plain = self._plain(word)
        expanded = self.slang.get(plain, (plain,))
        result = (expanded, tuple(stem(w) for w in expanded))
        if len(self._cache) >= TOKEN_CACHE_SIZE:
            self._cache.clear()  # a flood of random words must not grow memory without bound
        self._cache[word] = result
        return result

    def stems(self, text: str) -> list[str]:
        """The stems of ``text``, in order."""
        out: list[str] = []
        for word in split_words(text):
            out.extend(self._analysed(word)[1])
        return out

    def words(self, text: str) -> list[str]:
        """Words of ``text`` after squeezing and slang, before stemming."""
        out: list[str] = []
        for word in split_words(text):
            out.extend(self._analysed(word)[0])
        return out

    def analyse(self, text: str) -> tuple[list[str], list[str]]:
        """(words, stems) of ``text`` in one go."""
        words: list[str] = []
        stems: list[str] = []
        for word in split_words(text):
            w, s = self._analysed(word)
            words.extend(w)
            stems.extend(s)
        return words, stems


def phrase_key(stems: Iterable[str]) -> str:
    """The automaton's form of a phrase: stems between single spaces, padded so words match whole."""
    return " " + " ".join(stems) + " "


def exact_key(words: Iterable[str]) -> str:
    """The automaton's form of an exact phrase (``=dirumahkan``): words as typed, marked with ``=``.

    Stems never contain ``=``, so exact keys only match the marked copy of the text.
    """
    return " " + " ".join("=" + w for w in words) + " "
