"""The backtest of an edited prefixes.yaml: a fixture of stored texts with a known diff.

The proposed file adds three rules to the shipped one:
- PLN gets ``sampah`` at weight 9: "sampah numpuk di jatiasih" moves PEMKOTBEKASI -> PLN;
- KEMENHUB loses ``ojol``: "ojol mangkal sembarangan" becomes unrouted;
- KAI gets ``kucing``: "kucing tetangga berisik tiap malam" goes from the central queue to KAI.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sms_gateway.cli import main
from sms_gateway.config import Settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, LabelledExample, Report
from sms_gateway.registry import Registry, forget_registries, parse_registry
from sms_gateway.rules.backtest import Window, run
from sms_gateway.rules.examples import labelled

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
ADDED_RULES = {
    "  PLN:\n    name: PT PLN (Persero)\n    rules:\n":
        "      - name: backtest sampah\n        weight: 9\n        keywords: [sampah]\n",
    "  KAI:\n    name: PT Kereta Api Indonesia (Persero)\n    aliases: [PTKAI]\n    rules:\n":
        "      - name: backtest kucing\n        weight: 3\n        keywords: [kucing]\n",
}
DROPPED = ("damri, ojol, taksi online", "damri, taksi online")
# text, copies in the window, with a report
STORED = [
    ("sampah numpuk di jatiasih", 3, True),
    ("ojol mangkal sembarangan", 2, True),
    ("kucing tetangga berisik tiap malam", 1, True),
    ("listrik padam sejak pagi", 4, True),
    ("CEK 12345671", 1, False),
]
OLD_TEXT = "sampah menumpuk di jalan"  # received before the window


def proposed_text(base: str) -> str:
    for anchor, rule in ADDED_RULES.items():
        assert anchor in base
        base = base.replace(anchor, anchor + rule)
    assert base.count(DROPPED[0]) == 1
    return base.replace(*DROPPED)


@pytest.fixture
def proposed(prefixes_file: Path, tmp_path: Path) -> Path:
    path = tmp_path / "proposed.yaml"
    path.write_text(proposed_text(prefixes_file.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def store(settings: Settings, now: datetime = NOW) -> None:
    """The fixture's stored texts, their reports, and three labelled examples."""
    with session_factory(settings.DATABASE_URL)() as session:
        n = 0
        reports: dict[str, Report] = {}
        for text, copies, with_report in [*STORED, (OLD_TEXT, 1, True)]:
            for _ in range(copies):
                n += 1
                at = now - (timedelta(days=40) if text == OLD_TEXT else timedelta(hours=n))
                msg = InboundMessage(channel="twilio", external_id=f"SM{n}", sender="+6281234567890",
                                     text=text, received_at=at, state="processed")
                session.add(msg)
                session.flush()
                if with_report:
                    report = Report(tracking_number=f"9{n:07d}", inbound_id=msg.id, channel="twilio", agency=None,
                                    kind="aduan", text=text, reporter=msg.sender, created_at=at)
                    session.add(report)
                    session.flush()
                    reports.setdefault(text, report)
        for text, agency in (("sampah numpuk di jatiasih", "DLHBEKASI"), ("ojol mangkal sembarangan", "KEMENHUB"),
                             ("kucing tetangga berisik tiap malam", "KAI")):
            session.add(LabelledExample(report_id=reports[text].id, text=text, agency=agency, previous_agency=None,
                                        source="disposition", actor="pusat@lapor.go.id", created_at=now))
        session.commit()


def backtest(settings: Settings, registry: Registry, proposed: Path) -> dict:
    with session_factory(settings.DATABASE_URL)() as session:
        return run(session, registry, parse_registry(proposed), Window(NOW - timedelta(days=30), NOW),
                   examples=labelled(session))


@pytest.fixture
def current(settings: Settings) -> Registry:
    return parse_registry(settings.PREFIXES_FILE)


def test_the_backtest_counts_every_move_and_scores_both_registries(settings: Settings, current: Registry,
                                                                    proposed: Path) -> None:
    store(settings)
    seen: list[tuple[int, int]] = []
    with session_factory(settings.DATABASE_URL)() as session:
        result = run(session, current, parse_registry(proposed), Window(NOW - timedelta(days=30), NOW),
                     examples=labelled(session), progress=lambda done, total: seen.append((done, total)))
    assert result["texts"] == 11 and result["distinct"] == 5  # the text older than the window is left out
    assert seen[0] == (0, 11) and seen[-1] == (11, 11)
    moves = {(m["from"], m["to"]): (m["count"], m["type"]) for m in result["moves"]}
    assert moves == {("PEMKOTBEKASI", "PLN"): (3, "moved"), ("KEMENHUB", "central"): (2, "unrouted"),
                     ("central", "KAI"): (1, "routed")}
    assert result["totals"] == {"moved": 3, "unrouted": 2, "routed": 1, "report": 0, "no_report": 0}
    assert result["changed"] == 6
    moved = next(m for m in result["moves"] if m["to"] == "PLN")
    assert [e["text"] for e in moved["examples"]] == ["sampah numpuk di jatiasih"] * 3
    assert all(e["tracking"] for e in moved["examples"])  # each example opens its report
    labelled_acc = result["accuracy"]["labelled"]
    assert (labelled_acc["before"]["right"], labelled_acc["before"]["total"]) == (2, 3)
    assert (labelled_acc["after"]["right"], labelled_acc["after"]["total"]) == (1, 3)
    assert [f["text"] for f in labelled_acc["fixed"]] == ["kucing tetangga berisik tiap malam"]
    assert sorted(b["text"] for b in labelled_acc["broken"]) == ["ojol mangkal sembarangan",
                                                                  "sampah numpuk di jatiasih"]
    shipped = result["accuracy"]["shipped"]
    assert shipped["before"]["total"] == shipped["after"]["total"] > 400


def test_the_same_file_changes_nothing(settings: Settings, current: Registry) -> None:
    store(settings)
    result = backtest(settings, current, Path(settings.PREFIXES_FILE))
    assert result["texts"] == 11 and result["changed"] == 0 and result["moves"] == []
    acc = result["accuracy"]["labelled"]
    assert acc["before"] == acc["after"] and acc["fixed"] == acc["broken"] == []


def test_the_cli_prints_the_moves_and_the_accuracy(settings: Settings, proposed: Path) -> None:
    store(settings, now=datetime.now(UTC))
    forget_registries()
    out = CliRunner().invoke(main, ["rules", "backtest", str(proposed), "--days", "30"])
    assert out.exit_code == 0, out.output
    assert "6 would go elsewhere: 3 to another agency, 2 unrouted (central queue), 1 routed" in out.output
    assert "PEMKOTBEKASI             PLN                           3  moved" in out.output
    assert "accuracy on labelled examples (re-routed by people): 2/3 = 66.7% before, 1/3 = 33.3% after " \
           "(1 fixed, 2 broken)" in out.output

    as_json = CliRunner().invoke(main, ["rules", "backtest", str(proposed), "--json"])
    assert as_json.exit_code == 0
    doc = json.loads(as_json.output)
    assert doc["totals"]["unrouted"] == 2 and doc["texts"] == 11
    assert doc["accuracy"]["labelled"]["after"]["right"] == 1

    longer = CliRunner().invoke(main, ["rules", "backtest", str(proposed), "--days", "60", "--json"])
    assert json.loads(longer.output)["texts"] == 12  # the window is the last N days: now with the old text


def test_a_broken_file_exits_2_with_file_line_and_problem(settings: Settings, proposed: Path) -> None:
    lines = proposed.read_text(encoding="utf-8").splitlines()
    where = next(i for i, line in enumerate(lines) if "name: backtest sampah" in line)
    lines[where + 1] = "        weight: banyak"
    proposed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = CliRunner().invoke(main, ["rules", "backtest", str(proposed)])
    assert out.exit_code == 2
    assert f"{proposed}:{where + 2}:" in out.output and "weight" in out.output


def test_the_backtest_decides_as_the_pipeline_does(current: Registry) -> None:
    """``decide(explain=False)`` (the backtest's) routes every shipped text exactly as the pipeline's decide."""
    from sms_gateway.decision import decide
    from sms_gateway.parsing import parse
    from sms_gateway.rules.backtest import outcome
    from sms_gateway.rules.evaluation import RECEIVED_AT, SHIPPED_SETS, shipped_cases

    for text in [c.text for name in SHIPPED_SETS for c in shipped_cases(name)]:
        parsed = parse(text, current)
        quick = outcome(text, current)
        if parsed.command:
            assert not quick.report
            continue
        full = decide(parsed, current, RECEIVED_AT)
        unit = full.evidence["rules"]["unit"] if full.evidence["decided_by"] == "rules" else None
        assert quick == (full.kind != "unknown", full.agency, unit, full.kind, full.category, full.special), text
