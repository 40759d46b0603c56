"""Through the worker: reports carry the rules' decision, and edited rules apply without a restart."""

from __future__ import annotations

import time
from itertools import count

from sqlalchemy import select

from sms_gateway.db import session_factory
from sms_gateway.models import OutboundMessage, Report
from tests.conftest import PUBLIC_BASE, TWILIO_TOKEN
from tests.support import twilio_signature

_SIDS = count(1)


def text_sms(client, work, body: str, sender: str = "081234567890") -> None:
    params = {"MessageSid": f"SMrules{next(_SIDS):026d}", "From": sender, "To": "1708", "Body": body,
              "AccountSid": "ACtest"}
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + "/sms/twilio", params)
    response = client.post("/sms/twilio", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.data
    work()


def reports(settings) -> list[Report]:
    with session_factory(settings.DATABASE_URL)() as session:
        return list(session.scalars(select(Report).order_by(Report.id)))


def replies(settings) -> list[str]:
    with session_factory(settings.DATABASE_URL)() as session:
        return list(session.scalars(select(OutboundMessage.text).order_by(OutboundMessage.id)))


def test_an_unprefixed_report_is_routed_categorised_and_explained(client, settings, work) -> None:
    text_sms(client, work, "di pos penyekatan kedungwaringin ada oknum minta uang 100rb biar boleh lewat")
    [report] = reports(settings)
    assert (report.agency, report.kind, report.category, report.special) == \
        ("POLRI", "aduan", "LARANGAN MUDIK ASN", True)
    assert report.disposition_due is not None and report.followup_due is not None
    assert (report.followup_due - report.disposition_due).days >= 1
    evidence = report.evidence
    assert evidence["decided_by"] == "rules"
    assert evidence["rules"]["rule"].startswith("POLRI rule ")
    assert {"penyekatan", "oknum", "minta uang"} <= {m["keyword"] for m in evidence["rules"]["matched"]}
    assert "POLRI" in replies(settings)[-1]


def test_a_greeting_gets_asked_for_the_content_and_makes_no_report(client, settings, work) -> None:
    text_sms(client, work, "Selamat pagi pak, sy mau lapor")
    assert reports(settings) == []
    assert "Silakan tulis isi laporan" in replies(settings)[-1]


def test_edited_rules_change_decisions_without_restarting_the_worker(client, settings, work, prefixes_file) -> None:
    message = "genangan rob di sunda kelapa tiap pasang naik"
    text_sms(client, work, message)
    assert [(r.agency, r.evidence["decided_by"]) for r in reports(settings)] == [(None, "central")]

    text = prefixes_file.read_text()
    old = "        keywords: [kapal, penyeberangan, pelabuhan,"
    assert text.count(old) == 1
    new = "        keywords: [sunda kelapa, rob, kapal, penyeberangan, pelabuhan,"
    prefixes_file.write_text(text.replace(old, new))
    time.sleep(1.1)  # the registry is re-checked at most once a second

    # Another citizen: the same text again from the same number would be a repeat of the first report.
    text_sms(client, work, message, sender="081298765432")
    latest = reports(settings)[-1]
    assert (latest.agency, latest.evidence["decided_by"]) == ("KEMENHUB", "rules")
    assert {m["keyword"] for m in latest.evidence["rules"]["matched"]} == {"sunda kelapa", "rob"}
    assert latest.evidence["registry_version"] != reports(settings)[0].evidence["registry_version"]


def test_an_unknown_code_is_named_in_the_reply_and_the_report_keeps_its_kind(client, settings, work) -> None:
    text_sms(client, work, "DISHUB ASPIRASI angkot di stasiun bekasi dikasih ac")
    [report] = reports(settings)
    assert (report.agency, report.kind) == ("PEMKOTBEKASI", "aspirasi")
    assert report.text == "DISHUB ASPIRASI angkot di stasiun bekasi dikasih ac"  # the code stays for the agency
    assert report.evidence["unknown_code"] == "DISHUB"
    assert report.evidence["rules"]["unit"] == "DISHUBBEKASI"
    reply = replies(settings)[-1]
    assert reply.startswith("Kode DISHUB tdk terdaftar; laporan Anda diteruskan ke PEMKOTBEKASI.")
    assert "BANTUAN" in reply and report.tracking_number in reply and "Lain kali" not in reply

    text_sms(client, work, "PUPRKABUPATEN ADUAN jembatan di desa kami putus sejak banjir")
    latest = reports(settings)[-1]
    assert latest.agency is None
    assert replies(settings)[-1].startswith("Kode PUPRKABUPATE tdk terdaftar; laporan Anda diterima LAPOR! pusat")


def test_junk_gets_the_help_text_and_no_report(client, settings, work) -> None:
    for junk in ("test", "asdfghjkl", "123456"):
        text_sms(client, work, junk)
    assert reports(settings) == []
    assert all(r.startswith("Format SMS 1708:") for r in replies(settings))
    text_sms(client, work, "Selamat pagi pak, sy mau lapor")
    assert "Silakan tulis isi laporan" in replies(settings)[-1]


def test_a_tracking_number_asked_about_in_a_sentence_gets_the_status(client, settings, work) -> None:
    text_sms(client, work, "listrik padam dari pagi di kel. margahayu")
    [report] = reports(settings)
    number = report.tracking_number
    text_sms(client, work, f"status laporan {number[:4]} {number[4:]} gmn ya?")
    assert replies(settings)[-1].startswith(f"Laporan {number}: status diterima, instansi PLN")
    assert len(reports(settings)) == 1
