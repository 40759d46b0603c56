"""The rules page in a real browser: coba teks live, search, a backtest from paste to result, axe, screenshots."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sms_gateway.db import session_factory
from sms_gateway.models import RuleBacktest
from tests.rules.test_backtest import proposed_text, store
from tests.workspace.browser import Page, check_page, screenshot_dir
from tests.workspace.conftest import PASSWORD
from tests.workspace.test_rules_page import run_worker

pytestmark = pytest.mark.slow

CENTRAL = "lapor.test"




def _wait_text(page: Page, css: str, text: str, timeout: float = 10) -> None:
    page.wait_until(lambda: text in page.find(css).text, timeout)


def test_coba_teks_search_and_a_backtest_from_paste_to_result(page: Page, people, settings, db_url, tmp_path,
                                                              redis_conn) -> None:
    folder = screenshot_dir(tmp_path) if db_url.startswith("sqlite") else tmp_path
    problems: list[str] = []
    store(settings, now=datetime.now(UTC))
    people("pusat@lapor.go.id", name="Admin Pusat")
    page.login(CENTRAL, "pusat@lapor.go.id", PASSWORD)
    page.follow('nav.menu a[href="/rules"]')
    assert "Aturan routing" in page.text()

    # Coba teks: the decision appears as one types, with the words that decided it.
    page.find("#try-text").send_keys("listrik padam sejak pagi")
    _wait_text(page, "#try-result", "PT PLN (Persero) (PLN)")
    assert "listrik" in page.find("#try-result mark").text
    page.fill("#try-text", "KEMENHUB ADUAN bus ngetem")
    _wait_text(page, "#try-result", "prefiks")

    # Search narrows the registry in place.
    page.find("#rules-q").send_keys("ojol")
    page.wait_until(lambda: not page.all("#ag-PLN"))
    assert page.all("#ag-KEMENHUB") and "ojol" in page.find("#registry .kw.hit").text

    def try_text() -> None:
        page.find("#try-text").send_keys("jalan rusak parah di jatiasih dekat sekolah")
        _wait_text(page, "#try-result", "DBMSDABEKASI")

    check_page(page, "rules", folder, problems, try_text)

    # A backtest: paste the edited file, run it, watch the progress, read the result.
    base = Path(settings.PREFIXES_FILE).read_text(encoding="utf-8")
    page.driver.execute_script("document.getElementById('rules-text').value = arguments[0]", proposed_text(base))
    page.fill("#days", "30")
    page.submit("#backtest form button[type=submit]")
    assert "Menunggu pekerja" in page.text()
    backtest_id = int(page.driver.current_url.rstrip("/").rsplit("/", 1)[1])
    with session_factory(settings.DATABASE_URL)() as session:  # a job halfway through, as the page polls
        row = session.get(RuleBacktest, backtest_id)
        assert row is not None
        row.state, row.done, row.total = "running", 5, 11
        session.commit()
    _wait_text(page, "#backtest-status", "5 dari 11")
    assert page.find("#backtest-status progress").get_attribute("value") == "5"
    with session_factory(settings.DATABASE_URL)() as session:
        row = session.get(RuleBacktest, backtest_id)
        assert row is not None
        row.state = "queued"
        session.commit()
    run_worker(settings)
    _wait_text(page, "main", "Ringkasan")  # the page reloads itself when the job is done
    assert page.find(".t-moved strong").text == "3" and page.find(".t-unrouted strong").text == "2"
    assert "2/3 = 66.7%" in page.text() and "1/3 = 33.3%" in page.text()
    page.find("tr.move-moved summary").click()
    check_page(page, "backtest", folder, problems)
    page.find("tr.move-moved summary").click()
    page.follow("tr.move-moved ul.examples a")
    assert "Satu SMS, dua berkas aturan" in page.text() and "PT PLN (Persero) (PLN)" in page.text()
    for violation in page.axe_violations():
        problems.append(f"example: {violation['impact']} {violation['id']}")
    assert problems == []
