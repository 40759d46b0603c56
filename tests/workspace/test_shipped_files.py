"""What the workspace ships besides code: the English catalogue (complete, compiled) and the vendored htmx."""

from __future__ import annotations

from io import BytesIO

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from sms_gateway.config import PROJECT_ROOT

WS = PROJECT_ROOT / "sms_gateway" / "workspace"
PO = WS / "translations" / "en" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}


def _extracted() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(WS), method_map, keywords=KEYWORDS):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_message_has_an_english_translation() -> None:
    with PO.open("rb") as f:
        catalog = read_po(f)
    translated = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog
                  if m.id and all(m.string if isinstance(m.string, tuple) else (m.string,))}
    missing = sorted(_extracted() - translated)
    assert not missing, f"untranslated (run `make translations`, then translate): {missing}"


def test_the_compiled_catalogue_is_up_to_date() -> None:
    with PO.open("rb") as f:
        catalog = read_po(f)
    fresh = BytesIO()
    write_mo(fresh, catalog)
    fresh.seek(0)
    with MO.open("rb") as f:
        shipped = read_mo(f)
    expected = read_mo(fresh)
    def pairs(catalog):  # type: ignore[no-untyped-def]
        return sorted((repr(m.id), repr(m.string)) for m in catalog if m.id)

    assert pairs(shipped) == pairs(expected), \
        "messages.mo is stale: run `make translations`"


def test_the_vendored_htmx_is_as_the_registry_shipped_it() -> None:
    """htmx changes only with `make htmx`; the workspace's own behaviour lives in workspace.js."""
    import hashlib
    import json

    folder = WS / "static" / "htmx"
    sums = dict(reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {p.name for p in folder.iterdir()} - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    version = json.loads((folder / "package.json").read_text())["version"]
    assert f"HTMX ?= {version}" in (PROJECT_ROOT / "Makefile").read_text()
    assert f"htmx {version}" in (PROJECT_ROOT / "README.md").read_text()
