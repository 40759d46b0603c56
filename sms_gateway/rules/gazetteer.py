"""Gazetteers: the places of a city, so a local complaint reaches that city's unit.

A city agency names its gazetteer in ``prefixes.yaml``::

    PEMKOTBEKASI:
      gazetteer: bekasi              # shipped: sms_gateway/data/gazetteer/bekasi.yaml
    PEMKOTDEPOK:
      gazetteer: gazetteer/depok.yaml  # an admin's own file, relative to prefixes.yaml

A rule of that agency or of one of its units written with ``local: true``
counts only when the text names a place of the city. The file's shape is
described at the top of the shipped ``bekasi.yaml``; it is checked like
``prefixes.yaml``, every problem as ``file:line: problem``, and a broken
gazetteer refuses the whole registry edit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..yamlfile import LineDict, LineList, YamlProblem, load, unknown_keys

GAZETTEER_KEYS = {"city", "elsewhere", "kecamatan", "places", "ambiguous"}
SHIPPED_SUFFIX = ".yaml"


@dataclass(frozen=True)
class Place:
    """A name of the city, one of its kecamatan or kelurahan, or a road or landmark."""

    name: str
    kind: str  # city, kecamatan, kelurahan, place, elsewhere
    line: int
    kecamatan: str | None = None  # the kecamatan of a kelurahan
    ambiguous: bool = False

    def describe(self) -> str:
        """``Jatiasih (kelurahan, Kec. Jatiasih)``: how the evidence names it."""
        where = f", Kec. {self.kecamatan}" if self.kecamatan and self.kind == "kelurahan" else ""
        return f"{self.name} ({self.kind}{where})"


@dataclass
class Gazetteer:
    """The places of one city, read from one file."""

    agency: str  # the city agency that names the file
    path: str
    digest: str  # of the file's text: part of the registry version
    places: list[Place] = field(default_factory=list)
    shipped: bool = False  # inside the package (changes only with the gateway)


def is_shipped(spec: str) -> bool:
    """A bare name (``bekasi``) names a shipped gazetteer; a path names an admin's file."""
    return "/" not in spec and not spec.endswith(SHIPPED_SUFFIX)


def resolve(spec: str, prefixes_path: str) -> tuple[str, str | None]:
    """(path to show, text) of a gazetteer named in ``prefixes.yaml``; text None if unreadable.

    A bare name (``bekasi``) is a shipped gazetteer; anything with a ``/`` or
    ending in ``.yaml`` is a file relative to ``prefixes.yaml``.
    """
    if is_shipped(spec):
        ref = resources.files("sms_gateway.data").joinpath("gazetteer").joinpath(spec + SHIPPED_SUFFIX)
        shown = f"sms_gateway/data/gazetteer/{spec}{SHIPPED_SUFFIX}"
        try:
            return shown, ref.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return shown, None
    path = Path(spec)
    if not path.is_absolute():
        path = Path(prefixes_path).parent / path
    try:
        return str(path), path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return str(path), None


def load_gazetteer(agency: str, spec: str, prefixes_path: str) -> tuple[Gazetteer | None, list[YamlProblem]]:
    """Read and check the gazetteer ``spec`` of ``agency``; return it and every problem found."""
    path, text = resolve(spec, prefixes_path)
    if text is None:
        return None, [YamlProblem(path, None, f"cannot read the gazetteer of {agency}")]
    try:
        data = load(path, text)
    except YamlProblem as exc:
        return None, [exc]
    problems: list[YamlProblem] = []

    def add(line: int | None, problem: str) -> None:
        problems.append(YamlProblem(path, line, problem))

    if not isinstance(data, LineDict):
        add(1, "a gazetteer is a mapping: city:, kecamatan:, places:, elsewhere:, ambiguous:")
        return None, problems
    for line, problem in unknown_keys(data, GAZETTEER_KEYS):
        add(line, problem)

    def names(node: Any, line: int, what: str) -> list[tuple[str, int]]:
        if node is None:
            return []
        if not isinstance(node, list):
            add(line, f"{what} must be a list of names")
            return []
        out = []
        for i, item in enumerate(node):
            item_line = node.line_of(i) if isinstance(node, LineList) else line
            if isinstance(item, bool) or not isinstance(item, str | int) or not str(item).strip():
                add(item_line, f"{what}: {item!r} is not a name")
                continue
            if not any(ch.isalpha() for ch in str(item)):
                add(item_line, f"{what}: {item!r} has no letters and could never be told from a number")
                continue
            out.append((" ".join(str(item).split()), item_line))
        return out

    places: list[Place] = []
    seen: dict[str, int] = {}

    def keep(place: Place) -> None:
        key = place.name.casefold()
        if key in seen:
            add(place.line, f"{place.name!r} is listed twice (first on line {seen[key]})")
            return
        seen[key] = place.line
        places.append(place)

    city = names(data.get("city"), data.line_of("city"), "city")
    if not city:
        add(data.line_of("city"), "city: give the names of the city itself (e.g. [Bekasi, Kota Bekasi])")
    for name, line in city:
        keep(Place(name, "city", line))
    kecamatan = data.get("kecamatan")
    if kecamatan is not None and not isinstance(kecamatan, LineDict):
        add(data.line_of("kecamatan"), "kecamatan: must map each kecamatan to the list of its kelurahan")
    elif isinstance(kecamatan, LineDict):
        for kec, kelurahan in kecamatan.items():
            kec_name = " ".join(kec.split())
            keep(Place(kec_name, "kecamatan", kecamatan.line_of(kec)))
            for name, line in names(kelurahan, kecamatan.line_of(kec), f"kecamatan {kec_name}"):
                if name.casefold() == kec_name.casefold():
                    places.append(Place(name, "kelurahan", line, kec_name))  # Jatiasih in Kec. Jatiasih
                    continue
                keep(Place(name, "kelurahan", line, kec_name))
    for name, line in names(data.get("places"), data.line_of("places"), "places"):
        keep(Place(name, "place", line))
    for name, line in names(data.get("elsewhere"), data.line_of("elsewhere"), "elsewhere"):
        keep(Place(name, "elsewhere", line))
    if len(places) == len(city):
        add(data.line or 1, "the gazetteer names no kecamatan, kelurahan or place of the city")

    ambiguous = {}
    for name, line in names(data.get("ambiguous"), data.line_of("ambiguous"), "ambiguous"):
        ambiguous[name.casefold()] = line
    for key, line in ambiguous.items():
        if not any(p.name.casefold() == key and p.kind in ("kecamatan", "kelurahan", "place") for p in places):
            add(line, f"ambiguous: {key!r} is not a kecamatan, kelurahan or place of this gazetteer")
    places = [Place(p.name, p.kind, p.line, p.kecamatan, p.name.casefold() in ambiguous) for p in places]
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Gazetteer(agency, path, digest, places, is_shipped(spec)), problems
