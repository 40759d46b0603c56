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

Once the rules are read, their words (and the gazetteers' place names) become
the vocabulary of a ``Speller``: a typed word that is no word we know is
corrected to a vocabulary word when exactly one is that close — letters
doubled (``puskesmass``), vowels left out (``sklh``, ``lstrk``), one letter
wrong, missing, extra or swapped in a word of six letters or more (``faksin``,
``termnal``), digits typed for letters (``l1str1k``, ``s3kolah``). Words of the
dictionary are never corrected (``bekas`` stays, it is not ``bekasi``), and
short words are never guessed at.

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
_ALNUM = re.compile(r"[^\W_]+")
_INNER_DIGITS = re.compile(r"[^\W\d_]\d+[^\W\d_]")  # l1str1k, s3kolah: digits inside letters
_DIGIT = re.compile(r"\d")
_DIGIT_LETTERS = (str.maketrans("013456789", "oieasgtbg"), str.maketrans("1", "l"))
_VOWELS = frozenset("aeiou")
MAX_SQUEEZED_RUNS = 4  # 2**4 candidate spellings at most per word
SPELL_MIN = 4  # typed words shorter than this are never corrected
SPELL_TARGET_MIN = 5  # nor corrected into a word shorter than this
SPELL_EDIT_MIN = 6  # one edit (not only doubled letters or dropped vowels) from this length on
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
    return _split_folded(fold(text))


def _split_folded(text: str) -> list[str]:
    if "2" in text:
        text = _REDUPLICATION.sub(r"\1 \1", text)
    return _WORDS.findall(text)


def _skeleton(word: str) -> str:
    return "".join(ch for ch in word if ch not in _VOWELS)


def _is_vowel_drop(typed: str, word: str) -> bool:
    """``typed`` is ``word`` with some vowels left out (``sklh`` for ``sekolah``)."""
    if len(typed) >= len(word):
        return False
    j = 0
    for ch in word:
        if j < len(typed) and typed[j] == ch:
            j += 1
        elif ch not in _VOWELS:
            return False
    return j == len(typed)


class Speller:
    """Corrects a typed word to the one vocabulary word it is a small slip away from."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        from ..parsing import within_one_edit  # the prefix parser's test of "one typo away"

        self._within_one_edit = within_one_edit
        self.words = frozenset(w for w in vocabulary if w.isalpha() and len(w) >= SPELL_TARGET_MIN)
        near: dict[str, set[str]] = {}
        skeletons: dict[str, set[str]] = {}
        for word in self.words:
            skeletons.setdefault(_skeleton(word), set()).add(word)
            if len(word) >= SPELL_EDIT_MIN - 1:
                for key in {word} | {word[:i] + word[i + 1:] for i in range(len(word))}:
                    near.setdefault(key, set()).add(word)
        self._near = near
        self._skeletons = skeletons

    def correct(self, word: str) -> str | None:
        """The vocabulary word ``word`` was meant to be, if exactly one is that close."""
        if len(word) < SPELL_MIN or word in self.words or not word.isalpha():
            return None
        single = _DOUBLES.sub(r"\1", word)
        if single != word and single in self.words:
            return single
        skeleton = _skeleton(word)
        if len(skeleton) >= 3:
            dropped = {w for w in self._skeletons.get(skeleton, ()) if _is_vowel_drop(word, w)}
            if len(dropped) == 1:
                return dropped.pop()
            if dropped:
                return None  # sklh: sekolah or sekalah? not ours to guess
        if len(word) >= SPELL_EDIT_MIN:
            candidates: set[str] = set()
            for key in {word} | {word[:i] + word[i + 1:] for i in range(len(word))}:
                candidates |= self._near.get(key, set())
            close = {w for w in candidates if self._within_one_edit(word, w)}
            if len(close) == 1:
                return close.pop()
        return None


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
        self.vocabulary: frozenset[str] = frozenset()
        self.speller: Speller | None = None
        self.corrected: dict[str, str] = {}  # typed word -> the word it was read as
        self._real: dict[str, bool] = {}

    def set_vocabulary(self, vocabulary: Iterable[str]) -> None:
        """Words the rules know (keywords, places): typed words close to one are corrected to it."""
        self.vocabulary = frozenset(vocabulary)
        self.speller = Speller(self.vocabulary)
        self._cache.clear()
        self._real.clear()
        self.corrected.clear()

    def is_real(self, word: str) -> bool:
        """True for a word of the language: the dictionary, a known inflection, slang, the rules' words."""
        real = self._real.get(word)
        if real is None:
            real = not word.isdigit() and self._known(word)
            if len(self._real) >= TOKEN_CACHE_SIZE:
                self._real.clear()
            self._real[word] = real
        return real

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
        return word in self.slang or word in self.vocabulary or is_root_word(word) or stem(word) != word

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
        if self.speller is not None and plain not in self.slang and not self._known(plain):
            fixed = self.speller.correct(plain)
            if fixed is not None:
                self.corrected[word] = plain = fixed
        expanded = self.slang.get(plain, (plain,))
        result = (expanded, tuple(stem(w) for w in expanded))
        if len(self._cache) >= TOKEN_CACHE_SIZE:
            self._cache.clear()  # a flood of random words must not grow memory without bound
            self.corrected.clear()
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

    def analyse(self, text: str, corrections: list[tuple[str, str]] | None = None
                ) -> tuple[list[str], list[str]]:
        """(words, stems) of ``text`` in one go; typed words read as others go to ``corrections``."""
        folded = fold(text)
        if self.speller is not None and _DIGIT.search(folded) and _INNER_DIGITS.search(folded):
            folded = _ALNUM.sub(lambda m: self._unleet(m.group(), corrections), folded)
        words: list[str] = []
        stems: list[str] = []
        for word in _split_folded(folded):
            w, s = self._analysed(word)
            words.extend(w)
            stems.extend(s)
            if corrections is not None and word in self.corrected:
                corrections.append((word, self.corrected[word]))
        return words, stems

    def _unleet(self, token: str, corrections: list[tuple[str, str]] | None) -> str:
        """``l1str1k`` → ``listrik`` when the letters make a word we know; else the token as typed."""
        if not _INNER_DIGITS.search(token):
            return token
        for table in _DIGIT_LETTERS:
            letters = token.translate(table)
            if letters.isalpha() and (self._known(letters) or (self.speller and self.speller.correct(letters))):
                if corrections is not None:
                    corrections.append((token, letters))
                return letters
        return token


def phrase_key(stems: Iterable[str]) -> str:
    """The automaton's form of a phrase: stems between single spaces, padded so words match whole."""
    return " " + " ".join(stems) + " "


def exact_key(words: Iterable[str]) -> str:
    """The automaton's form of an exact phrase (``=dirumahkan``): words as typed, marked with ``=``.

    Stems never contain ``=``, so exact keys only match the marked copy of the text.
    """
    return " " + " ".join("=" + w for w in words) + " "
