"""SMS length: GSM-7 septets with the extension table, UCS-2 code units, and splitting."""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 default alphabet (basic table) and the characters of the extension
# table, which cost an escape septet plus their own.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class Length:
    """How an SMS text is encoded and how many parts it takes."""

    encoding: str  # "gsm7" or "ucs2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text)


def _char_units(c: str, gsm: bool) -> int:
    if gsm:
        return 2 if c in GSM7_EXTENDED else 1
    return 2 if ord(c) > 0xFFFF else 1  # astral characters are surrogate pairs


def measure(text: str) -> Length:
    """Encoding, length in units and number of segments of ``text``."""
    gsm = is_gsm7(text)
    units = sum(_char_units(c, gsm) for c in text)
    single, part = (GSM7_SINGLE, GSM7_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    if units == 0:
        segments = 1
    elif units <= single:
        segments = 1
    else:
        segments = -(-units // part)
    return Length("gsm7" if gsm else "ucs2", units, segments)


def split(text: str) -> list[str]:
    """Split into the parts a concatenated SMS would carry, never cutting an
    escape pair or a surrogate pair across parts (that is why we split by
    characters, counting their cost, rather than by units)."""
    length = measure(text)
    if length.segments <= 1:
        return [text]
    gsm = length.encoding == "gsm7"
    limit = GSM7_PART if gsm else UCS2_PART
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for c in text:
        cost = _char_units(c, gsm)
        if used + cost > limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(c)
        used += cost
    if current:
        parts.append("".join(current))
    return parts


def fit_one_segment(text: str, suffix: str = "") -> str:
    """Shorten ``text`` so that ``text + suffix`` fits one segment (ellipsis as '...')."""
    if measure(text + suffix).segments == 1:
        return text + suffix
    gsm = is_gsm7(text + suffix)
    limit = GSM7_SINGLE if gsm else UCS2_SINGLE
    budget = limit - sum(_char_units(c, gsm) for c in suffix + "...")
    out: list[str] = []
    used = 0
    for c in text:
        cost = _char_units(c, gsm)
        if used + cost > budget:
            break
        out.append(c)
        used += cost
    return "".join(out).rstrip() + "..." + suffix
