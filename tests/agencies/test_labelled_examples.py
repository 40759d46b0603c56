"""Every re-routing by a person is a labelled example; `rules eval` and `rules suggest` learn from them."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select

from sms_gateway.cli import main
from sms_gateway.db import session_factory
from sms_gateway.models import LabelledExample, utcnow
from sms_gateway.registry import registry_for
from sms_gateway.rules.evaluation import evaluate
from sms_gateway.rules.examples import labelled, suggest

EVIDENCE = {"decided_by": "central", "rules": {"agency": None, "unit": None}}


def examples(settings) -> list[LabelledExample]:
    with session_factory(settings.DATABASE_URL)() as session:
        return list(session.scalars(select(LabelledExample).order_by(LabelledExample.id)))


def test_a_disposition_records_the_text_and_the_agency_in_its_transaction(api_as, seed, settings) -> None:
    number = seed(None, text="oknum minta uang damai di razia motor")
    seed.update(number, evidence=EVIDENCE)
    admin = api_as(admin=True)
    r = admin.post(f"/api/v1/reports/{number}/disposition", {"to": "POLRI", "note": "pungli"})
    assert r.status_code == 200, r.json
    [example] = examples(settings)
    assert (example.text, example.agency, example.previous_agency, example.decided_by, example.source,
            example.actor) == ("oknum minta uang damai di razia motor", "POLRI", None, "central", "disposition",
                               "admin")
    assert example.report_id == seed.report(number).id

    # a refused disposition records nothing (same transaction)
    assert admin.post(f"/api/v1/reports/{number}/disposition", {"to": "NOPE"}).status_code == 422
    assert len(examples(settings)) == 1


def test_the_latest_re_routing_is_the_label_and_units_are_labels_too(api_as, seed, settings) -> None:
    number = seed(None, text="sampah numpuk di jatiasih sudah seminggu")
    admin = api_as(admin=True)
    assert admin.post(f"/api/v1/reports/{number}/disposition", {"to": "KEMENKES"}).status_code == 200
    assert admin.post(f"/api/v1/reports/{number}/disposition", {"to": "PEMKOTBEKASI"}).status_code == 200
    city = api_as("PEMKOTBEKASI")
    assert city.post(f"/api/v1/reports/{number}/disposition", {"to": "DLHBEKASI"}).status_code == 200
    rows = examples(settings)
    assert [(e.previous_agency, e.agency, e.actor) for e in rows] == [
        (None, "KEMENKES", "admin"), ("KEMENKES", "PEMKOTBEKASI", "admin"),
        ("PEMKOTBEKASI", "DLHBEKASI", "agency:PEMKOTBEKASI")]
    with session_factory(settings.DATABASE_URL)() as session:
        [label] = labelled(session)
        assert (label.text, label.agency, label.source) == ("sampah numpuk di jatiasih sudah seminggu", "DLHBEKASI",
                                                            f"report {number}")
        assert labelled(session, since=utcnow() + timedelta(minutes=1)) == []
    # the rules route it to the city with DLHBEKASI as the unit: right
    assert evaluate(registry_for(settings), [label]).overall.right == 1


def test_rules_eval_prints_accuracy_on_the_examples_and_the_shipped_cases(api_as, seed, settings) -> None:
    admin = api_as(admin=True)
    for text, agency in [("listrik padam dari pagi", "PLN"),  # the rules agree
                         ("warung kopi buka sampai subuh, berisik", "SATPOLPPBEKASI")]:  # they cannot know
        number = seed(None, text=text)
        assert admin.post(f"/api/v1/reports/{number}/disposition", {"to": agency}).status_code == 200
    runner = CliRunner()
    result = runner.invoke(main, ["rules", "eval"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "re-routed reports (2 labelled by people): 1/2 right = 50.0%" in out
    assert "MISS [disposition] 'warung kopi buka sampai subuh, berisik' (report " in out
    assert "agency NONE (want PEMKOTBEKASI/SATPOLPPBEKASI)" in out
    assert "shipped eval_test.tsv:" in out and "shipped cases.tsv: 150/150 right" in out
    assert "PLN " in out  # per agency

    data = json.loads(runner.invoke(main, ["rules", "eval", "--json", "--no-misses"]).output)
    first = data["sets"][0]
    assert (first["overall"]["total"], first["overall"]["right"]) == (2, 1)
    assert first["by_agency"]["PLN"]["agency_right"] == 1
    later = runner.invoke(main, ["rules", "eval", "--since", (utcnow() + timedelta(days=2)).strftime("%Y-%m-%d")])
    assert "(0 labelled by people): nothing to evaluate yet" in later.output


def test_rules_suggest_proposes_over_represented_stems_and_never_edits_the_file(api_as, seed, settings,
                                                                                prefixes_file) -> None:
    before = prefixes_file.read_text()
    admin = api_as(admin=True)
    texts = ["warung remang remang jual tuak sampai subuh di gang kami",
             "warung tuak bikin mabuk pemuda tiap malam",
             "tuak dijual bebas di warung dekat sekolah",
             "listrik padam dari pagi"]
    for text in texts:
        number = seed(None, text=text)
        to = "PLN" if "listrik" in text else "SATPOLPPBEKASI"
        assert admin.post(f"/api/v1/reports/{number}/disposition", {"to": to}).status_code == 200

    result = CliRunner().invoke(main, ["rules", "suggest", "satpolppbekasi"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("3 texts re-routed to SATPOLPPBEKASI, compared with ")
    rows = {line.split()[0]: line.split()[1:3] for line in lines[2:] if line and not line.startswith(" ")}
    assert rows["tuak"] == ["3", "0"] and rows["warung"][0] == "3"
    assert "keywords: [" in result.output and "tuak" in result.output.split("keywords: [")[1]
    assert prefixes_file.read_text() == before  # an admin reviews; nothing is written

    with session_factory(settings.DATABASE_URL)() as session:
        n_mine, _n_rest, proposals = suggest(registry_for(settings), labelled(session), "SATPOLPPBEKASI")
    assert n_mine == 3 and proposals[0].stem == "tuak" and proposals[0].count == 3
    assert all(p.stem not in {"di", "yang", "dan"} for p in proposals)

    unknown = CliRunner().invoke(main, ["rules", "suggest", "NOPE"])
    assert unknown.exit_code == 2 and "unknown agency 'NOPE'" in unknown.output
