"""Reading an SMS the way a citizen types it: ``<AGENCY> <KEYWORD> <text>`` or a command.

Tolerates any case, a leading ``#``, separators (space, newline, ``. , : ; # - /``)
or none at all (``KEMENHUBADUAN``), two-word aliases (``BPJS KES``), and one
small typo in a long enough prefix (``KEMNEHUB``, ``KEMENHUP``), or vowels left
out the way SMS writers abbreviate (``kmnhub``). Short codes such as PLN or KAI
are never guessed at: one typo away from them are ordinary words.

Nothing here loses text: an unknown first word is not a prefix, and the whole
message stays the report's text for the central queue. A first word (or two)
that is not registered but stands where a prefix stands, before a report
keyword (``DISHUB ADUAN …``, ``PEMKAB BEKASI ASPIRASI …``), is read as an
unknown code: the kind the citizen wrote is kept, the rules route the text,
and the reply names the code.

A tracking number is found inside a sentence too (``status laporan 2700 5518
gmn?``), written with spaces, dots or dashes inside, when its check digit is
right and the text asks about a report (or is the number alone): that is
``CEK``. After ``CEK``/``STATUS`` the number may be written the same ways.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field, fields
from typing import Any

from . import tracking as tracking_numbers
from .registry import Registry, compact

# Separators between prefix, keyword and text.
_TOKEN = re.compile(r"[^\s.,:;#\-/]+")
_SEPARATORS = " \t\r\n.,:;#-/"
_TRACKING = re.compile(r"(?<!\d)\d{5,12}(?!\d)")
_VOWELS = frozenset("AEIOU")
# 8 digits, single spaces, dots or dashes allowed between them: 2700 5518, 27.005.518, 2700-5518.
_GROUPED_TRACKING = re.compile(r"(?<![\d.,\-])[1-9](?:[ .\-]?\d){7}(?![\d]|[.,\-]\d| \d)")
_MONEY_BEFORE = re.compile(r"(?:rp|idr)\.?\s*$", re.IGNORECASE)
_MONEY_AFTER = re.compile(r"^\s*(?:rb|ribu|jt|juta|rupiah|perak|k)\b", re.IGNORECASE)
# Words that, beside a valid tracking number, ask about a report (folded, as typed).
STATUS_CUES = frozenset({"cek", "cekin", "dicek", "status", "laporan", "lapor", "lap", "nomor", "no", "nmr", "nomer",
                         "perkembangan", "kelanjutan", "tindak", "lanjut", "ditindaklanjuti", "progres", "progress",
                         "diproses", "proses", "sampai", "sampe", "mana", "tiket", "pengaduan", "aduan"})
STATUS_MAX_WORDS = 15  # longer texts with a number in them are reports that mention one
UNKNOWN_CODE_WORDS = 2  # DISHUB ADUAN, PEMKAB BEKASI ADUAN
UNKNOWN_CODE_MAX_LEN = 15
FUZZY_MIN_LEN = 6  # names (and typed words) shorter than this are never guessed
KEYWORD_FUZZY_MIN_LEN = 5  # ADUN -> ADUAN; only looked for right after a prefix
SHORT_COMMAND_WORDS = 4  # "BANTUAN" + at most this many words is a command
RESUME_MAX_WORDS = 1  # MULAI/START/DAFTAR resume alone or with one word ("MULAI LAGI"): they begin reports too


@dataclass
class ParsedSMS:
    """How a text was read."""

    kind: str  # aduan, aspirasi, info, status, help, stop, start
    agency: str | None = None  # agency code from the prefix; None: central queue / not decided
    command: str | None = None  # status, help, stop, start, reply
    tracking: str | None = None  # number given to CEK/STATUS or BALAS
    body: str = ""  # the report text, prefix and keyword removed
    prefix: str | None = None  # the prefix as typed
    prefix_match: str = "none"  # exact, glued, typo, abbreviation, generic, unknown, none
    matched_alias: str | None = None  # the registered name the prefix matched
    keyword: str | None = None  # the keyword as typed
    keyword_match: str | None = None  # exact, typo
    confidential: bool = False
    anonymous: bool = False
    flags: list[str] = field(default_factory=list)

    @property
    def is_report(self) -> bool:
        """True when the text becomes a report (not a command or a help request)."""
        return self.command is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``sms-gateway parse --json``)."""
        # Every field is a str, bool, None or a list of str: a shallow copy is
        # the same as asdict's deep one, at a tenth of its cost per message.
        view = {f.name: getattr(self, f.name) for f in fields(self)}
        view["flags"] = list(self.flags)
        return view


def normalize_text(text: str) -> str:
    """NFKC (full-width letters, ligatures) and trimmed; case and content kept."""
    return unicodedata.normalize("NFKC", text or "").strip()


def original_body(raw_text: str, body: str) -> str:
    """The part of ``raw_text`` that ``body`` (the end of the parser's NFKC text) was read from.

    Parsing matches on NFKC, but a report keeps what the citizen typed: ``No. 1½``
    must not reach an agency as ``No. 11⁄2``. The text is cut into runs that NFKC
    treats independently (a character with its combining marks, Hangul jamo that
    compose) and each run is normalised on its own, to know where every NFKC
    character came from; should that ever differ from NFKC of the whole text, the
    NFKC body is kept.
    """
    if not body:
        return body
    if raw_text.isascii():  # NFKC changes no ASCII character: every run is one character
        end = len(raw_text.rstrip())
        begin = end - len(body)
        return raw_text[begin:end] if begin >= 0 and raw_text[begin:end] == body else body
    return _original_by_runs(raw_text, body)


def _original_by_runs(raw_text: str, body: str) -> str:
    """``original_body`` for any text: NFKC run by run."""
    nfkc = functools.partial(unicodedata.normalize, "NFKC")
    pieces: list[str] = []
    starts: list[int] = []  # for each NFKC character, where its run starts in raw_text
    ends: list[int] = []  # … and where that run ends
    run = 0
    for i in range(1, len(raw_text) + 1):
        if i == len(raw_text) or (unicodedata.combining(raw_text[i]) == 0
                                  and nfkc(raw_text[run:i + 1]) == nfkc(raw_text[run:i]) + nfkc(raw_text[i])):
            piece = nfkc(raw_text[run:i])
            pieces.append(piece)
            starts.extend([run] * len(piece))
            ends.extend([i] * len(piece))
            run = i
    full = "".join(pieces)
    end = len(full.rstrip())
    begin = end - len(body)
    if (full != unicodedata.normalize("NFKC", raw_text) or begin < 0 or full[begin:end] != body
            or (begin > 0 and starts[begin - 1] == starts[begin])):  # the body starts inside one run
        return body
    return raw_text[starts[begin]:ends[end - 1]]


def within_one_edit(a: str, b: str) -> bool:
    """Damerau (optimal string alignment) distance of ``a`` and ``b`` is at most 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if la > lb:
        a, b = b, a
    # b is one longer: deleting one character of b must give a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


def is_vowel_drop(typed: str, name: str) -> bool:
    """``typed`` is ``name`` with some vowels left out (``KMNHUB`` for ``KEMENHUB``)."""
    if len(typed) >= len(name):
        return False
    j = 0
    for ch in name:
        if j < len(typed) and typed[j] == ch:
            j += 1
        elif ch not in _VOWELS:
            return False
    return j == len(typed)


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int

    @property
    def word(self) -> str:
        return compact(self.text)


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _skeleton(word: str) -> str:
    return "".join(ch for ch in word if ch not in _VOWELS)


@dataclass(frozen=True)
class _PrefixIndex:
    """Lookups built once per registry version, so a message costs a few dict
    probes instead of a comparison with every registered name."""

    # name or one of its single-letter deletions -> names (symmetric-delete
    # index: two words within one edit share an entry)
    near: dict[str, frozenset[str]]
    skeletons: dict[str, frozenset[str]]  # consonants of a name -> names
    glue_lengths: tuple[int, ...]  # lengths of names and generic prefixes, longest first
    # The long-token guard: the longest word that can be one edit from a name.
    # A longer word is never looked up: its deletions cost its length squared, so
    # one unbroken 64 KB "word" would cost seconds of worker time.
    longest_fuzzy: int


_INDEXES: dict[str, _PrefixIndex] = {}


def _index(registry: Registry) -> _PrefixIndex:
    index = _INDEXES.get(registry.version)
    if index is None:
        near: dict[str, set[str]] = {}
        skeletons: dict[str, set[str]] = {}
        for name in registry.names:
            if len(name) < FUZZY_MIN_LEN:
                continue
            for key in {name} | _deletions(name):
                near.setdefault(key, set()).add(name)
            skeletons.setdefault(_skeleton(name), set()).add(name)
        lengths = sorted({len(n) for n in registry.names.keys() | registry.generic}, reverse=True)
        index = _PrefixIndex({k: frozenset(v) for k, v in near.items()},
                             {k: frozenset(v) for k, v in skeletons.items()}, tuple(lengths),
                             max((len(name) for name in near), default=0) + 1)
        if len(_INDEXES) > 8:
            _INDEXES.clear()
        _INDEXES[registry.version] = index
    return index


def _fuzzy_agency(word: str, registry: Registry) -> tuple[str, str, str] | None:
    """(code, registered name, how) when exactly one agency is one small typo away."""
    if len(word) < FUZZY_MIN_LEN or word in registry.keywords or word in registry.commands:
        return None
    index = _index(registry)
    if len(word) > index.longest_fuzzy:
        return None
    candidates: set[str] = set()
    for key in {word} | _deletions(word):
        candidates |= index.near.get(key, frozenset())
    hits: dict[str, tuple[str, str]] = {}
    for name in sorted(candidates):
        if within_one_edit(word, name):
            hits.setdefault(registry.names[name], (name, "typo"))
    if len(word) >= FUZZY_MIN_LEN - 1:
        for name in sorted(index.skeletons.get(_skeleton(word), frozenset())):
            if is_vowel_drop(word, name):
                hits.setdefault(registry.names[name], (name, "abbreviation"))
    if len(hits) != 1:
        return None
    code, (name, how) = next(iter(hits.items()))
    return code, name, how


def _keyword(word: str, registry: Registry) -> tuple[str, str] | None:
    """(kind, how) when ``word`` is a report keyword, exactly or with one typo."""
    kind = registry.keywords.get(word)
    if kind:
        return kind, "exact"
    if len(word) < KEYWORD_FUZZY_MIN_LEN - 1:
        return None
    kinds = {k for kw, k in registry.keywords.items()
             if len(kw) >= KEYWORD_FUZZY_MIN_LEN and within_one_edit(word, kw)}
    if len(kinds) == 1:
        return kinds.pop(), "typo"
    return None


def _flags(tokens: list[_Token], registry: Registry) -> list[str]:
    found = []
    for tok in tokens:
        flag = registry.flags.get(tok.word)
        if flag and flag not in found:
            found.append(flag)
    return found


def _rest(text: str, tokens: list[_Token], consumed: int) -> str:
    """Text after the first ``consumed`` tokens, separators stripped, original case kept."""
    if consumed == 0:
        return text.strip()
    if consumed >= len(tokens):
        return ""
    return text[tokens[consumed - 1].end:].lstrip(_SEPARATORS).strip()


def parse(raw_text: str, registry: Registry) -> ParsedSMS:
    """Read one SMS text against the registry."""
    text = normalize_text(raw_text)
    tokens = [_Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    words = [t.word for t in tokens]
    # A message of nothing but punctuation ("?", "...") asks for help.
    if not any(words):
        return ParsedSMS(kind="help", command="help")

    command = _command(text, tokens, words, registry) or _status_in_sentence(text, tokens)
    if command is not None:
        return command

    flags = _flags(tokens, registry)
    parsed = _prefix(text, tokens, words, registry)
    parsed.flags = flags
    parsed.confidential = "confidential" in flags
    parsed.anonymous = "anonymous" in flags
    return parsed


def _command(text: str, tokens: list[_Token], words: list[str],
             registry: Registry) -> ParsedSMS | None:
    first = words[0] or tokens[0].text.strip()
    if tokens[0].text.startswith("?"):
        first = "?"
    cmd = registry.commands.get(first)
    if cmd is None:
        return None
    rest_words = [w for w in words[1:] if w]
    if cmd == "status":
        number = find_tracking(text, tokens[0].end)
        if number:
            return ParsedSMS(kind="status", command="status", tracking=number)
        if len(rest_words) <= SHORT_COMMAND_WORDS or first not in registry.short_only:
            return ParsedSMS(kind="status", command="status")
        return None  # "status tanah warga di …": a report that starts with an ordinary word
    if cmd == "reply" and len(tokens) > 1 and tokens[1].text.isdigit():
        # BALAS <nomor> <tanggapan>: the reporter answers a follow-up (sms_gateway/agencies/citizen.py).
        return ParsedSMS(kind="reply", command="reply", tracking=tokens[1].text, body=_rest(text, tokens, 2))
    if cmd == "start" and len(rest_words) > RESUME_MAX_WORDS:
        return None  # "mulai besok jalan ditutup", "daftar bansos …": reports, not a resume
    if first in registry.short_only and len(rest_words) > SHORT_COMMAND_WORDS:
        return None  # "bantuan sosial belum cair …" is a report, not a request for help
    return ParsedSMS(kind=cmd, command=cmd)


def find_tracking(text: str, start: int = 0) -> str | None:
    """The tracking number after ``start``: 8 digits, maybe grouped (2700 5518), else any 5-12 digits."""
    grouped = _GROUPED_TRACKING.search(text, start)
    if grouped:
        return re.sub(r"\D", "", grouped.group())
    match = _TRACKING.search(text, start)
    return match.group() if match else None


def _status_in_sentence(text: str, tokens: list[_Token]) -> ParsedSMS | None:
    """``status laporan 2700 5518 gmn?``: a valid tracking number and words that ask about it."""
    for match in _GROUPED_TRACKING.finditer(text):
        number = re.sub(r"\D", "", match.group())
        if not tracking_numbers.is_valid(number):
            continue
        if _MONEY_BEFORE.search(text[:match.start()]) or _MONEY_AFTER.match(text[match.end():]):
            continue  # Rp 12.500.000, 27.005.518 rupiah
        rest = (text[:match.start()] + " " + text[match.end():]).lower()
        others = re.findall(r"[^\W\d_]+", rest)
        if len(others) > STATUS_MAX_WORDS:
            return None
        if not others or STATUS_CUES & set(others):
            return ParsedSMS(kind="status", command="status", tracking=number)
    return None


def _unknown_code(text: str, tokens: list[_Token], words: list[str], registry: Registry) -> ParsedSMS | None:
    """``DISHUB ADUAN …``: one or two code-like words where the prefix stands, then a keyword."""
    for size in range(1, UNKNOWN_CODE_WORDS + 1):
        if len(tokens) <= size:
            return None
        kw = registry.keywords.get(words[size])
        if kw is None:
            continue
        code_tokens = tokens[:size]
        if not all(_code_like(t, registry) for t in code_tokens):
            return None
        code = " ".join(t.text.lstrip("#").upper() for t in code_tokens)
        return ParsedSMS(kind=kw, prefix=code, prefix_match="unknown", keyword=tokens[size].text,
                         keyword_match="exact", body=text)
    return None


def _code_like(token: _Token, registry: Registry) -> bool:
    """A word that may be an agency code: letters (and digits), not a word the registry uses otherwise."""
    word = token.word
    if not (2 <= len(word) <= UNKNOWN_CODE_MAX_LEN) or not any(ch.isalpha() for ch in word):
        return False
    if word in registry.keywords or word in registry.commands or word in registry.flags:
        return False
    typed = token.text.lstrip("#")
    # Written in capitals it is a code whatever it means (IMIGRASI ADUAN); in lower case only if
    # it is no word of the language ("mau aduan", "saya aduan" are not codes).
    return typed.isupper() or not _is_dictionary_word(word.lower())


def _is_dictionary_word(word: str) -> bool:
    from .rules.stemming import is_root_word, stem

    return is_root_word(word) or stem(word) != word


def _prefix(text: str, tokens: list[_Token], words: list[str], registry: Registry) -> ParsedSMS:
    """Agency prefix and keyword, if any, and the report text after them."""
    match = _match_agency(tokens, words, registry)
    if match is None:
        return _unknown_code(text, tokens, words, registry) or ParsedSMS(kind="aduan", body=text)
    code, consumed, how, name, glued_kind = match
    prefix = text[tokens[0].start:tokens[consumed - 1].end]
    parsed = ParsedSMS(kind="aduan", agency=code, prefix=prefix, prefix_match=how, matched_alias=name)
    if glued_kind:
        parsed.kind, parsed.keyword, parsed.keyword_match = glued_kind
    elif consumed < len(tokens):
        kw = _keyword(words[consumed], registry)
        if kw:
            parsed.kind, parsed.keyword_match = kw
            parsed.keyword = tokens[consumed].text
            consumed += 1
    parsed.body = _rest(text, tokens, consumed)
    if not parsed.body:
        # "KEMENHUB" alone: the citizen needs the format for that agency.
        return ParsedSMS(kind="help", command="help", agency=code, prefix=prefix,
                         prefix_match=how, matched_alias=name)
    return parsed


_Match = tuple[str | None, int, str, str, tuple[str, str, str] | None]


def _match_agency(tokens: list[_Token], words: list[str], registry: Registry) -> _Match | None:
    """(agency code or None for generic, tokens consumed, how, name, glued keyword)."""
    first = words[0]
    candidates: list[tuple[str, int]] = []
    if len(words) > 1:
        candidates.append((first + words[1], 2))  # two-word aliases: "BPJS KES"
    candidates.append((first, 1))

    for word, consumed in candidates:
        if word in registry.generic:
            return None, consumed, "generic", word, None
        code = registry.names.get(word)
        if code:
            return code, consumed, "exact", word, None

    # Prefix and keyword written as one word: KEMENHUBADUAN, BPJSKESINFO.
    for length in _index(registry).glue_lengths:
        name = first[:length]
        if len(first) > length and (name in registry.names or name in registry.generic):
            kw = _keyword(first[length:], registry)
            if kw:
                code = registry.names.get(name)
                return code, 1, "glued" if code else "generic", name, (kw[0], first[len(name):], kw[1])

    for word, consumed in candidates:
        fuzzy = _fuzzy_agency(word, registry)
        if fuzzy:
            code, name, how = fuzzy
            return code, consumed, how, name, None
    return None
