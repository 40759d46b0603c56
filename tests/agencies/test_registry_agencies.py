"""prefixes.yaml: coordinators, agency contacts and the new reply texts are checked with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sms_gateway.config import PROJECT_ROOT
from sms_gateway.registry import parse_registry
from tests.test_registry import SHIPPED, line_of
from tests.test_registry import problems_of as problems


def test_the_shipped_coordinators() -> None:
    registry = parse_registry(PROJECT_ROOT / "prefixes.yaml")
    assert registry.coordinators["KEMENDAGRI"].watches == ("PEMKOTBEKASI",)
    assert registry.coordinators["OMBUDSMAN"].name == "Ombudsman Republik Indonesia"  # from the agency
    assert registry.coordinators["KEMENBUMN"].watches == ("PLN", "KAI", "JASAMARGA")


@pytest.mark.parametrize(("old", "new", "anchor", "problem"), [
    ("    watches: [PEMKOTBEKASI]\n", "    watches: [PEMKOTBEKASI, BEKASII]\n", "watches: [PEMKOTBEKASI, BEKASII]",
     "coordinator KEMENDAGRI: watches 'BEKASII', which is not a registered agency"),
    ("    watches: [PLN, KAI, JASAMARGA]\n", "    watches: []\n", "watches: []",
     "coordinator KEMENBUMN: watches: must list agency codes"),
    ("  KEMENBUMN:\n    name: Kementerian Badan Usaha Milik Negara\n", "  KEMENBUMN:\n",
     "  KEMENBUMN:\n", "coordinator KEMENBUMN: name is required"),
    ("  OMBUDSMAN:\n    watches: [\"*\"]\n", "  OMBUDSMAN:\n    watches: [\"*\"]\n    phone: x\n", "    phone: x",
     "coordinator OMBUDSMAN: unknown key 'phone'"),
    ("  OMBUDSMAN:\n    watches: [\"*\"]\n", "  OMBUDSMAN:\n    watches: [\"*\"]\n    admin_number: \"0812\"\n",
     "admin_number: \"0812\"", "coordinator OMBUDSMAN: admin_number '0812' is not a phone number"),
    ("  OMBUDSMAN:\n    watches: [\"*\"]\n", "  OMBUDSMAN:\n    watches: [\"*\"]\n    webhook_url: ftp://x\n",
     "webhook_url: ftp://x", "coordinator OMBUDSMAN: webhook_url 'ftp://x' is not an http(s) URL"),
    ("  PLN:\n    name: PT PLN (Persero)\n", "  PLN:\n    name: PT PLN (Persero)\n    webhook_url: pln.co.id/hook\n",
     "webhook_url: pln.co.id/hook", "agency PLN: webhook_url 'pln.co.id/hook' is not an http(s) URL"),
])
def test_problems_name_the_line(tmp_path: Path, old: str, new: str, anchor: str, problem: str) -> None:
    assert SHIPPED.count(old) == 1, old
    text = SHIPPED.replace(old, new)
    found = problems(tmp_path, text)
    expected = f"{tmp_path}/prefixes.yaml:{line_of(text, anchor)}: {problem}"
    assert any(f.startswith(expected) for f in found), found


def test_contacts_are_read(tmp_path: Path) -> None:
    text = SHIPPED.replace("  PLN:\n    name: PT PLN (Persero)\n",
                           "  PLN:\n    name: PT PLN (Persero)\n    admin_number: \"0811-1000-123\"\n"
                           "    webhook_url: https://pln.example.id/lapor\n")
    path = tmp_path / "prefixes.yaml"
    path.write_text(text)
    registry = parse_registry(path)
    extra = registry.agencies["PLN"].extra
    assert (extra["admin_number"], extra["webhook_url"]) == ("0811-1000-123", "https://pln.example.id/lapor")


def test_a_notification_text_must_fit_one_sms(tmp_path: Path) -> None:
    old = "  notify_done: >-\n"
    text = SHIPPED.replace(old, old + "    " + "Terima kasih banyak. " * 7 + "\n")
    found = problems(tmp_path, text)
    assert any(f.startswith(f"{tmp_path}/prefixes.yaml:{line_of(text, old.strip())}: reply notify_done:")
               and "over one SMS" in f for f in found), found


def test_every_new_reply_is_required(tmp_path: Path) -> None:
    start = SHIPPED.index("  reply_closed: >-\n")
    end = SHIPPED.index("\n\n", start)
    found = problems(tmp_path, SHIPPED[:start] + SHIPPED[end + 2:])
    assert any("replies: reply_closed is required" in f for f in found)
