"""An agency renamed or removed in prefixes.yaml while reports still hold its code."""

from __future__ import annotations

import logging

from click.testing import CliRunner

from sms_gateway.cli import main
from sms_gateway.registry import forget_registries, registry_for


def rename_kemenhub(prefixes_file) -> None:
    text = prefixes_file.read_text()
    prefixes_file.write_text(text.replace("\n  KEMENHUB:\n", "\n  KEMENHUBRI:\n", 1))


def test_check_reload_and_move(settings, env, seed, prefixes_file, caplog) -> None:
    open_one, _closed = seed("KEMENHUB"), seed("KEMENHUB", status="selesai")
    registry_for(settings)
    rename_kemenhub(prefixes_file)
    runner = CliRunner()
    checked = runner.invoke(main, ["prefixes", "check", str(prefixes_file)], env={"DATABASE_URL": env["DATABASE_URL"]})
    assert checked.exit_code == 0, checked.output
    assert checked.stderr.strip() == (
        "warning: 1 open report(s) are routed to KEMENHUB, which prefixes.yaml no longer has: move them with "
        "`sms-gateway reports move KEMENHUB NEWCODE` (or register KEMENHUB again)")

    forget_registries()  # the running process notices the edit at its next read
    with caplog.at_level(logging.WARNING):
        registry_for(settings)
    assert any("routed to KEMENHUB, which prefixes.yaml no longer has" in r.getMessage() for r in caplog.records)

    refused = runner.invoke(main, ["reports", "move", "KEMENHUB", "NOSUCH"])
    assert refused.exit_code == 1 and "NOSUCH is not an agency" in refused.output
    moved = runner.invoke(main, ["reports", "move", "kemenhub", "KEMENHUBRI"])
    assert moved.exit_code == 0 and "2 report(s) moved from KEMENHUB to KEMENHUBRI" in moved.output
    report = seed.report(open_one)
    assert report.agency == "KEMENHUBRI"
    assert (report.events[-1].action, report.events[-1].note) == ("agency_renamed", "KEMENHUB → KEMENHUBRI")
    again = runner.invoke(main, ["prefixes", "check", str(prefixes_file)], env={"DATABASE_URL": env["DATABASE_URL"]})
    assert again.exit_code == 0 and again.stderr == ""
