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
    prefixes_file.write_text(text.replace(old, "        keywords: [sunda kelapa, rob, kapal, penyeberangan, pelabuhan,"))
    time.sleep(1.1)  # the registry is re-checked at most once a second

    text_sms(client, work, message)
    latest = reports(settings)[-1]
    assert (latest.agency, latest.evidence["decided_by"]) == ("KEMENHUB", "rules")
    assert {m["keyword"] for m in latest.evidence["rules"]["matched"]} == {"sunda kelapa", "rob"}
    assert latest.evidence["registry_version"] != reports(settings)[0].evidence["registry_version"]
