"""BERHENTI, MULAI and the operator's opt-out list: the round trip a citizen and an operator make."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sms_gateway.cli import main
from sms_gateway.parsing import parse
from tests.agencies.test_notifications import sent_to, text_in
from tests.agencies.test_openapi import check


def test_berhenti_is_confirmed_with_how_to_resume_and_mulai_resumes(client, work, fake_twilio, api_as, seed) -> None:
    number = seed("KEMENHUB", reporter="+6281234567890")
    api = api_as("KEMENHUB")
    text_in(client, work, "BERHENTI")
    assert "kirim MULAI ke 1708" in sent_to(fake_twilio)[-1]
    assert api.post(f"/api/v1/reports/{number}/status", {"status": "didisposisikan"}).json["sms_skipped"] \
        == "opted_out"
    text_in(client, work, "mulai")
    assert sent_to(fake_twilio)[-1].startswith("Anda akan menerima lagi SMS pemberitahuan")
    r = api.post(f"/api/v1/reports/{number}/status", {"status": "ditindaklanjuti"})
    assert r.json["sms_skipped"] is None and r.json["sms"] is not None
    work()
    assert [b for b in sent_to(fake_twilio) if number in b] == [r.json["sms"]["text"]]


def test_resume_words_begin_reports_too(settings) -> None:
    from sms_gateway.registry import registry_for

    registry = registry_for(settings)
    assert [parse(t, registry).command for t in ("START", "Daftar", "MULAI LAGI")] == ["start"] * 3
    assert parse("mulai besok jalan ditutup", registry).command is None
    assert parse("daftar bansos tidak keluar", registry).command is None


def test_an_operator_lists_and_lifts_opt_outs_by_cli(client, work, settings) -> None:
    text_in(client, work, "STOP", sender="081299990001")
    runner = CliRunner()
    listed = runner.invoke(main, ["optout", "list", "--json"])
    assert [row["number"] for row in json.loads(listed.output)] == ["+6281299990001"]
    assert " WIB" in runner.invoke(main, ["optout", "list", "--number", "081299990001"]).output
    removed = runner.invoke(main, ["optout", "remove", "0812-9999-0001"])
    assert removed.exit_code == 0 and "+6281299990001: notifications resume" in removed.output
    assert runner.invoke(main, ["optout", "list"]).output.strip() == "no opt-outs"
    again = runner.invoke(main, ["optout", "remove", "081299990001"])
    assert again.exit_code == 1 and "has not opted out" in again.output


def test_the_central_admin_lists_and_lifts_opt_outs_by_api(client, work, api_as) -> None:
    text_in(client, work, "BERHENTI", sender="081299990002")
    admin = api_as(admin=True)
    listed = admin.get("/api/v1/optouts")
    check(listed.json, "OptOutList")
    assert [row["number"] for row in listed.json["optouts"]] == ["+6281299990002"]
    assert admin.get("/api/v1/optouts?number=081299990009").json == {"optouts": []}
    assert api_as("KEMENHUB").get("/api/v1/optouts").status_code == 403
    assert api_as("KEMENHUB").delete("/api/v1/optouts/+6281299990002").status_code == 403
    removed = admin.delete("/api/v1/optouts/081299990002")
    assert removed.status_code == 200 and removed.json == {"removed": "+6281299990002"}
    gone = admin.delete("/api/v1/optouts/081299990002")
    assert gone.status_code == 404
    check(gone.json, "Error")
    assert admin.get("/api/v1/optouts").json == {"optouts": []}


def test_help_examples_are_valid_tracking_numbers_that_are_never_issued(client, work, prefixes_file) -> None:
    from sms_gateway import tracking
    from sms_gateway.registry import RegistryError, parse_registry
    from tests.test_flow import text_sms

    usage = text_sms(client, work, "CEK")
    assert f"CEK {tracking.EXAMPLE}" in usage and tracking.is_valid(tracking.EXAMPLE)
    assert "tidak ditemukan" in text_sms(client, work, f"CEK {tracking.EXAMPLE}")
    broken = prefixes_file.read_text().replace(f"CEK {tracking.EXAMPLE}", "CEK 12345678")
    try:
        parse_registry(prefixes_file, broken)
    except RegistryError as exc:
        [problem] = [p.render() for p in exc.problems]
        assert "reply status_usage: example number 12345678 is not a valid tracking number" in problem
    else:
        raise AssertionError("an invalid example number passed the check")
