"""The agency registry: ``prefixes.yaml`` loaded, validated and kept fresh.

Admins edit the file while the gateway runs. ``RegistryHolder`` re-reads it
when it changes; a broken edit is logged with ``file:line: problem`` and the
last good registry stays in force.
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import gsm, tracking
from .yamlfile import LineDict, LineList, YamlProblem, load, unknown_keys

if TYPE_CHECKING:
    from .rules.gazetteer import Gazetteer

log = logging.getLogger(__name__)

KINDS = ("aduan", "aspirasi", "info")
COMMANDS = ("status", "help", "stop", "start", "reply")
FLAGS = ("confidential", "anonymous")

TOP_KEYS = {"keywords", "generic", "commands", "flags", "replies", "agencies",
            "categories", "slang", "settings", "coordinators", "kinds"}
AGENCY_KEYS = {"name", "aliases", "parent", "rules", "admin_number", "webhook_url", "gazetteer"}
# Who watches agencies' deadlines (sms_gateway/agencies/escalation.py).
COORDINATOR_KEYS = {"name", "watches", "admin_number", "webhook_url"}
COORDINATOR_CODE_MAX = 20

# Every reply the gateway sends, with the placeholders it may use. Realistic,
# longest-case values are substituted when checking that a template fits one SMS.
REPLY_PLACEHOLDERS: dict[str, set[str]] = {
    "ack": {"tracking", "agency", "agency_name", "kind", "short_code"},
    "ack_central": {"tracking", "short_code"},
    # A first word that looks like an agency code but is not one (DISHUB ADUAN …): say so.
    "ack_unknown_code": {"code", "tracking", "agency", "agency_name", "kind", "short_code"},
    "ack_unknown_code_central": {"code", "tracking", "short_code"},
    "status": {"tracking", "status", "agency", "date", "short_code"},
    "status_not_found": {"tracking", "short_code"},
    "status_invalid": {"tracking", "short_code"},
    "status_usage": {"short_code"},
    "help": {"short_code"},
    "help_agency": {"agency", "agency_name", "short_code"},
    "unknown": {"short_code"},
    "stop": {"short_code"},  # the confirmation of BERHENTI, saying how to resume
    "start": {"short_code"},  # the confirmation of MULAI
    # To the reporter when an agency acts (sms_gateway/agencies), and answers to BALAS.
    "notify_disposed": {"tracking", "agency", "short_code"},
    "notify_followup": {"tracking", "agency", "date", "days", "short_code"},
    "notify_done": {"tracking", "agency", "short_code"},
    "notify_archived": {"tracking", "agency", "short_code"},
    "notify_closed": {"tracking", "days", "short_code"},
    "answer_header": {"tracking", "agency"},
    "answer_pointer": {"tracking", "short_code"},
    "reply_ok": {"tracking", "agency", "date", "short_code"},
    "reply_usage": {"short_code"},
    "reply_not_reporter": {"tracking", "short_code"},
    "reply_not_yet": {"tracking", "status", "days", "short_code"},
    "reply_closed": {"tracking", "date", "days", "short_code"},
    # To agency and coordinator admin numbers when deadlines are missed.
    "escalation_agency": {"agency", "count", "reprimands", "tracking", "short_code"},
    "escalation_coordinator": {"coordinator", "agency", "count", "reprimands", "short_code"},
}
# Files written before these replies existed still load: ack/ack_central stand in.
OPTIONAL_REPLIES: frozenset[str] = frozenset({"ack_unknown_code", "ack_unknown_code_central"})
UNKNOWN_CODE_MAX = 12  # an unknown code is named in replies up to this many characters
# An 8-digit number in a reply is an example tracking number: it must be valid, or a
# citizen who copies it is told their number is mistyped (tracking.EXAMPLE is reserved).
_EXAMPLE_NUMBER = re.compile(r"(?<!\d)[1-9]\d{7}(?!\d)")

_LONGEST_SAMPLE = {
    "tracking": "99999999",
    "kind": "aspirasi",
    "short_code": "1708",
    "status": "ditindaklanjuti",
    "date": "30-12-2026",
    "days": "10",
    "count": "9999",
    "reprimands": "9999",
    "coordinator": "K" * COORDINATOR_CODE_MAX,
    "code": "K" * UNKNOWN_CODE_MAX,
}

WORD = re.compile(r"^[A-Z0-9]+( [A-Z0-9]+)?$")


@lru_cache(maxsize=65536)
def compact(name: str) -> str:
    """A registered name as the parser compares it: upper case, no spaces."""
    return _NOT_ALNUM.sub("", name.upper())


_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


@dataclass(frozen=True)
class Agency:
    """A registered agency: its code, official name, prefix aliases, parent."""

    code: str
    name: str
    aliases: tuple[str, ...] = ()
    parent: str | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Coordinator:
    """Who watches agencies' deadlines: a ministry, a province, the Ombudsman.

    ``watches`` lists agency codes (each covers its units) or ``*`` for every
    agency and the central queue.
    """

    code: str
    name: str
    watches: tuple[str, ...]
    admin_number: str | None = None  # E.164
    webhook_url: str | None = None
    line: int = 0


@dataclass
class Registry:
    """A validated ``prefixes.yaml``."""

    path: str
    version: str
    agencies: dict[str, Agency]
    names: dict[str, str]  # compact code/alias -> agency code
    keywords: dict[str, str]  # word -> kind
    generic: frozenset[str]
    commands: dict[str, str]  # word -> command
    flags: dict[str, str]  # word -> flag
    short_only: frozenset[str]  # command words that are also ordinary words
    replies: dict[str, str]
    raw: dict[str, Any]
    coordinators: dict[str, Coordinator] = field(default_factory=dict)
    gazetteers: dict[str, Gazetteer] = field(default_factory=dict)  # city agency -> its places
    files: tuple[str, ...] = ()  # other files this version was read from (an admin's gazetteers)

    def render(self, name: str, **values: Any) -> str:
        """Fill reply template ``name``."""
        return self.replies[name].format(**values)

    def agency_label(self, code: str | None) -> str:
        """How an agency is named in replies (its code; the central queue otherwise)."""
        return code or "LAPOR! pusat"


class RegistryError(ValueError):
    """``prefixes.yaml`` has problems; ``problems`` lists each as ``YamlProblem``."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[YamlProblem] = []

    def add(self, line: int | None, problem: str) -> None:
        self.problems.append(YamlProblem(self.path, line, problem))

    def words(self, node: Any, line: int, what: str) -> list[tuple[str, int]]:
        """A list of prefix words as (upper-cased word, line)."""
        if node is None:
            return []
        if not isinstance(node, list):
            self.add(line, f"{what} must be a list of words")
            return []
        out = []
        for i, item in enumerate(node):
            item_line = node.line_of(i) if isinstance(node, LineList) else line
            if not isinstance(item, str | int) or not str(item).strip():
                self.add(item_line, f"{what}: {item!r} is not a word")
                continue
            out.append((str(item).strip().upper(), item_line))
        return out


def parse_registry(path: str | Path, text: str | None = None) -> Registry:
    """Load and validate a registry file; raise ``RegistryError`` listing every problem."""
    path = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError([YamlProblem(path, None, f"cannot read: {exc}")]) from None
    try:
        data = load(path, text)
    except YamlProblem as exc:
        raise RegistryError([exc]) from None
    c = _Checker(path)
    if not isinstance(data, LineDict):
        raise RegistryError([YamlProblem(path, 1, "the file must be a mapping (keywords:, agencies:, replies: …)")])

    for line, problem in unknown_keys(data, TOP_KEYS):
        c.add(line, problem)

    # Every word a citizen may type first, to detect collisions:
    # compact word -> (owner, literal, line).
    taken: dict[str, tuple[str, str, int]] = {}

    def claim(word: str, owner: str, line: int) -> bool:
        key = compact(word) if word != "?" else "?"
        if key in taken and taken[key][0] != owner:
            other, _, other_line = taken[key]
            c.add(line, f"{word!r} of {owner} collides with {other} (line {other_line})")
            return False
        if key in taken:
            # "KEMENPAN RB" beside KEMENPANRB is a harmless spelling variant;
            # the same word written twice is a slip worth pointing out.
            if taken[key][1] == word:
                c.add(line, f"duplicate {word!r} in {owner} (line {taken[key][2]})")
            return False
        taken[key] = (owner, word, line)
        return True

    commands: dict[str, str] = {}
    short_only: set[str] = set()
    node = data.get("commands")
    if not isinstance(node, LineDict):
        c.add(data.line_of("commands"), "commands: must map status/help/stop to lists of words")
    else:
        for cmd, words in node.items():
            if cmd == "short_only":
                continue
            if cmd not in COMMANDS:
                c.add(node.line_of(cmd), f"unknown command {cmd!r} (expected {', '.join(COMMANDS)})")
                continue
            for word, line in c.words(words, node.line_of(cmd), f"commands.{cmd}"):
                if claim(word, f"command {cmd}", line):
                    commands[compact(word) if word != "?" else "?"] = cmd
        for cmd in ("status", "help"):
            if cmd not in node:
                c.add(node.line, f"commands: {cmd} is required")
        for word, line in c.words(node.get("short_only"), node.line_of("short_only"), "commands.short_only"):
            if compact(word) not in commands:
                c.add(line, f"commands.short_only: {word!r} is not a command word")
            else:
                short_only.add(compact(word))

    keywords: dict[str, str] = {}
    node = data.get("keywords")
    if not isinstance(node, LineDict):
        c.add(data.line_of("keywords"), "keywords: must map aduan/aspirasi/info to lists of words")
    else:
        for kind, words in node.items():
            if kind not in KINDS:
                c.add(node.line_of(kind), f"unknown kind {kind!r} (expected {', '.join(KINDS)})")
                continue
            for word, line in c.words(words, node.line_of(kind), f"keywords.{kind}"):
                if claim(word, f"keyword {kind}", line):
                    keywords[compact(word)] = kind

    generic: set[str] = set()
    gnode = data.get("generic")
    for word, line in c.words(gnode, data.line_of("generic"), "generic"):
        if claim(word, "the generic prefix", line):
            generic.add(compact(word))

    flags: dict[str, str] = {}
    node = data.get("flags")
    if node is not None:
        if not isinstance(node, LineDict):
            c.add(data.line_of("flags"), "flags: must map confidential/anonymous to lists of words")
        else:
            for flag, words in node.items():
                if flag not in FLAGS:
                    c.add(node.line_of(flag), f"unknown flag {flag!r} (expected {', '.join(FLAGS)})")
                    continue
                for word, _line in c.words(words, node.line_of(flag), f"flags.{flag}"):
                    flags[compact(word)] = flag

    agencies: dict[str, Agency] = {}
    names: dict[str, str] = {}
    node = data.get("agencies")
    if not isinstance(node, LineDict) or not node:
        c.add(data.line_of("agencies"), "agencies: must map agency codes to their name and aliases")
        node = LineDict()
        node.key_lines = {}
    for code, spec in node.items():
        line = node.line_of(code)
        if not WORD.match(code) or " " in code:
            c.add(line, f"agency code {code!r} must be one word of capital letters and digits")
            continue
        if not isinstance(spec, LineDict):
            c.add(line, f"agency {code}: expected name:, aliases:, parent:")
            continue
        for key_line, problem in unknown_keys(spec, AGENCY_KEYS, f"agency {code}"):
            c.add(key_line, problem)
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            c.add(spec.line_of("name"), f"agency {code}: name is required")
            name = code
        aliases = c.words(spec.get("aliases"), spec.line_of("aliases"), f"agency {code} aliases")
        parent = spec.get("parent")
        if parent is not None and not isinstance(parent, str):
            c.add(spec.line_of("parent"), f"agency {code}: parent must be an agency code")
            parent = None
        # Units reached by disposition only (no prefix of their own) still
        # have a code, which a citizen may type.
        if claim(code, f"agency {code}", line):
            names[compact(code)] = code
        for alias, alias_line in aliases:
            if not WORD.match(alias):
                c.add(alias_line, f"agency {code}: alias {alias!r} must be one or two words of letters and digits")
                continue
            if claim(alias, f"agency {code}", alias_line):
                names[compact(alias)] = code
        extra = {k: v for k, v in spec.items() if k not in {"name", "aliases", "parent"}}
        agencies[code] = Agency(code, name.strip(), tuple(a for a, _ in aliases), parent, line, extra)
    for code, agency in agencies.items():
        if agency.parent and agency.parent not in agencies:
            spec = node.get(code)
            c.add(spec.line_of("parent") if isinstance(spec, LineDict) else agency.line,
                  f"agency {code}: parent {agency.parent!r} is not a registered agency")

    for code in agencies:
        spec = node.get(code)
        if isinstance(spec, LineDict):
            _check_contacts(c, spec, f"agency {code}")
    coordinators = _coordinators(c, data, agencies)

    replies: dict[str, str] = {}
    rnode = data.get("replies")
    if not isinstance(rnode, LineDict):
        c.add(data.line_of("replies"), "replies: must map reply names to texts")
    else:
        for name, template in rnode.items():
            line = rnode.line_of(name)
            if name not in REPLY_PLACEHOLDERS:
                c.add(line, f"unknown reply {name!r} (expected one of {', '.join(sorted(REPLY_PLACEHOLDERS))})")
                continue
            if not isinstance(template, str) or not template.strip():
                c.add(line, f"reply {name}: must be a text")
                continue
            template = " ".join(template.split())  # YAML folding leaves stray spaces
            trouble = _check_template(name, template, agencies)
            if trouble:
                c.add(line, f"reply {name}: {trouble}")
                continue
            replies[name] = template
        for name in REPLY_PLACEHOLDERS:
            if name not in rnode and name not in OPTIONAL_REPLIES:
                c.add(rnode.line, f"replies: {name} is required")

    from .rules.gazetteer import load_gazetteer

    gazetteers: dict[str, Gazetteer] = {}
    files: list[str] = []
    for code in agencies:
        spec = node.get(code)
        if not isinstance(spec, LineDict) or "gazetteer" not in spec:
            continue
        name = spec["gazetteer"]
        if not isinstance(name, str) or not name.strip():
            c.add(spec.line_of("gazetteer"), f"agency {code}: gazetteer must name a shipped gazetteer (bekasi) "
                  "or a file relative to this one (gazetteer/depok.yaml)")
            continue
        gazetteer, problems = load_gazetteer(code, name.strip(), path)
        c.problems.extend(problems)
        if gazetteer is not None:
            gazetteers[code] = gazetteer
            if not gazetteer.shipped:
                files.append(gazetteer.path)

    # Rules are part of the file: a broken rule refuses the whole edit, like a broken prefix.
    from .rules import check_rules

    c.problems.extend(check_rules(path, data, {code: a.parent for code, a in agencies.items()}, gazetteers))
    if c.problems:
        raise RegistryError(c.problems)
    digest = hashlib.sha256(text.encode())
    for gazetteer in gazetteers.values():
        digest.update(gazetteer.digest.encode())
    return Registry(
        path=path,
        version=digest.hexdigest()[:12],
        agencies=agencies,
        names=names,
        keywords=keywords,
        generic=frozenset(generic),
        commands=commands,
        flags=flags,
        short_only=frozenset(short_only),
        replies=replies,
        raw=dict(data),
        coordinators=coordinators,
        gazetteers=gazetteers,
        files=tuple(files),
    )


_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


def _check_contacts(c: _Checker, spec: LineDict, owner: str) -> tuple[str | None, str | None]:
    """Check ``admin_number`` and ``webhook_url`` of an agency or coordinator; return them usable."""
    from .phone import normalize

    number, url = spec.get("admin_number"), spec.get("webhook_url")
    e164: str | None = None
    if number is not None:
        e164 = normalize(str(number)) if isinstance(number, str | int) else ""
        if not e164.startswith("+"):
            c.add(spec.line_of("admin_number"), f"{owner}: admin_number {number!r} is not a phone number "
                  "(write it in quotes, e.g. \"+6281234567890\")")
            e164 = None
    if url is not None and (not isinstance(url, str) or not _URL.match(url)):
        c.add(spec.line_of("webhook_url"), f"{owner}: webhook_url {url!r} is not an http(s) URL")
        url = None
    return e164, url


def _coordinators(c: _Checker, data: LineDict, agencies: dict[str, Agency]) -> dict[str, Coordinator]:
    """The ``coordinators:`` section: code -> who it is, what it watches, how to reach it."""
    node = data.get("coordinators")
    if node is None:
        return {}
    if not isinstance(node, LineDict):
        c.add(data.line_of("coordinators"), "coordinators: must map coordinator codes to name:, watches: …")
        return {}
    found: dict[str, Coordinator] = {}
    for code, spec in node.items():
        line = node.line_of(code)
        if not isinstance(code, str) or not WORD.match(code) or " " in code or len(code) > COORDINATOR_CODE_MAX:
            c.add(line, f"coordinator code {code!r} must be one word of capital letters and digits "
                  f"(at most {COORDINATOR_CODE_MAX})")
            continue
        if not isinstance(spec, LineDict):
            c.add(line, f"coordinator {code}: expected name:, watches:, admin_number:, webhook_url:")
            continue
        for key_line, problem in unknown_keys(spec, COORDINATOR_KEYS, f"coordinator {code}"):
            c.add(key_line, problem)
        name = spec.get("name")
        if name is None and code in agencies:
            name = agencies[code].name
        if not isinstance(name, str) or not name.strip():
            c.add(spec.line_of("name") if "name" in spec else line,
                  f"coordinator {code}: name is required (it is not a registered agency)")
            name = code
        watches = c.words(spec.get("watches"), spec.line_of("watches"), f"coordinator {code} watches")
        if not watches:
            c.add(spec.line_of("watches"), f"coordinator {code}: watches: must list agency codes, or '*' for all")
        for word, word_line in watches:
            if word != "*" and word not in agencies:
                c.add(word_line, f"coordinator {code}: watches {word!r}, which is not a registered agency")
        number, url = _check_contacts(c, spec, f"coordinator {code}")
        found[code] = Coordinator(code, name.strip(), tuple(w for w, _ in watches), number, url, line)
    return found


def _check_template(name: str, template: str, agencies: dict[str, Agency]) -> str | None:
    """Why a template is unusable: unknown placeholder, or over one GSM-7 segment."""
    allowed = REPLY_PLACEHOLDERS[name]
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        return f"cannot be read as a template ({exc})"
    unknown = fields - allowed
    if unknown:
        return (f"unknown placeholder {{{sorted(unknown)[0]}}} "
                f"(allowed: {', '.join('{' + a + '}' for a in sorted(allowed))})")
    for example in _EXAMPLE_NUMBER.findall(template):
        if not tracking.is_valid(example):
            return (f"example number {example} is not a valid tracking number (wrong check digit); "
                    f"use {tracking.EXAMPLE}")
    if not gsm.is_gsm7(template):
        bad = next(ch for ch in template if not gsm.is_gsm7(ch))
        return f"character {bad!r} is not GSM-7: the reply would cost a UCS-2 SMS of 70 characters"
    samples = [{**_LONGEST_SAMPLE, "agency": a.code, "agency_name": a.name} for a in agencies.values()]
    samples = samples or [{**_LONGEST_SAMPLE, "agency": "KEMENHUB", "agency_name": "Kementerian Perhubungan"}]
    for values in samples:
        text = template.format(**values)
        length = gsm.measure(text)
        if length.segments > 1:
            who = f" for agency {values['agency']}" if {"agency", "agency_name"} & fields else ""
            return (f"{length.units} characters{who} with realistic values, over one SMS "
                    f"(160 GSM-7 characters; ^{{}}\\[~]|€ count two)")
    return None


class RegistryHolder:
    """The registry in force; re-reads the file when it changes, keeps the last good one."""

    def __init__(self, path: str | Path, check_interval: float = 1.0) -> None:
        self.path = str(path)
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._registry: Registry | None = None
        self._stamp: tuple[tuple[float, int] | None, ...] | None = None
        self._checked = 0.0
        self.last_error: RegistryError | None = None

    def _file_stamp(self) -> tuple[tuple[float, int] | None, ...]:
        """(mtime, size) of the file and of the other files the registry in force was read from."""
        extra = self._registry.files if self._registry is not None else ()
        out: list[tuple[float, int] | None] = []
        for path in (self.path, *extra):
            try:
                st = Path(path).stat()
            except OSError:
                out.append(None)
                continue
            out.append((st.st_mtime, st.st_size))
        return tuple(out)

    def get(self) -> Registry:
        """The registry in force (loading it the first time, raising if it was never valid)."""
        now = time.monotonic()
        if self._registry is not None and now - self._checked < self.check_interval:
            return self._registry
        with self._lock:
            self._checked = now
            stamp = self._file_stamp()
            if self._registry is not None and stamp == self._stamp:
                return self._registry
            try:
                registry = parse_registry(self.path)
            except RegistryError as exc:
                if self._registry is None:
                    raise
                if self.last_error is None or str(exc) != str(self.last_error):
                    log.error("prefixes file has errors; keeping version %s in force:\n%s",
                              self._registry.version, exc)
                self.last_error = exc
                self._stamp = stamp
                return self._registry
            if self._registry is not None and registry.version != self._registry.version:
                log.info("prefixes file reloaded: version %s -> %s", self._registry.version, registry.version)
            self._registry, self.last_error = registry, None
            self._stamp = self._file_stamp()  # now with the files this version was read from
            return registry


_HOLDERS: dict[str, RegistryHolder] = {}


_CHECKED_VERSIONS: dict[tuple[str, str], str] = {}


def registry_for(settings: Any) -> Registry:
    """The registry in force for this process (``settings.PREFIXES_FILE``, re-read when it changes)."""
    path = str(settings.PREFIXES_FILE)
    holder = _HOLDERS.get(path)
    if holder is None:
        holder = _HOLDERS[path] = RegistryHolder(path)
    registry = holder.get()
    key = (path, str(settings.DATABASE_URL))
    if _CHECKED_VERSIONS.get(key) != registry.version:  # loaded or reloaded: do reports hold dropped codes?
        _CHECKED_VERSIONS[key] = registry.version
        _warn_orphaned_codes(settings, registry)
    return registry


def _warn_orphaned_codes(settings: Any, registry: Registry) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from .agencies import codes
    from .db import session_factory

    try:
        with session_factory(settings.DATABASE_URL)() as session:
            found = codes.orphaned(session, registry)
    except SQLAlchemyError as exc:  # a warning's own check must not stop the job that reloaded
        log.warning("could not check reports for agency codes dropped from %s: %s", registry.path,
                    str(exc).splitlines()[0])
        return
    for line in codes.describe(found):
        log.warning("%s: %s", registry.path, line)


def forget_registries() -> None:
    """Drop the registries held by this process (tests that change the file's path or content)."""
    _HOLDERS.clear()
    _CHECKED_VERSIONS.clear()
