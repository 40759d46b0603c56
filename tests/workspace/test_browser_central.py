"""The central pages in a real browser: the disposition desk by keyboard and on a phone, the operations page."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from sms_gateway import queue
from sms_gateway.agencies import lifecycle
from sms_gateway.agencies.scope import Principal
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, WebhookDelivery, utcnow
from sms_gateway.registry import registry_for
from sms_gateway.reports import find_by_tracking
from sms_gateway.sender import HEARTBEAT_PREFIX
from sms_gateway.workspace import accounts
from tests.workspace.browser import Page, check_page, screenshot_dir
from tests.workspace.conftest import PASSWORD
from tests.workspace.test_browser import CENTRAL
from tests.workspace.test_desk import TIE

pytestmark = pytest.mark.slow

BEKASI_TIE = {"decided_by": "central", "unknown_code": "KEMENHBU", "rules": {
    "agency": None, "unit": None, "score": 1, "reason": "best score 1 (PEMKOTBEKASI) is below min_score 2",
    "scores": {"PEMKOTBEKASI": 1}, "matched": [
        {"keyword": "lampu jalan", "for": "DISPERKIMTANBEKASI", "rule": "lampu", "weight": 1, "line": 640}],
    "vetoed": [], "needs_context": [], "places": ["Harapan Indah (kelurahan) -> PEMKOTBEKASI"]}}


def _desk(seed) -> list[str]:  # type: ignore[no-untyped-def]
    texts = [("angkot ngetem di terminal Bekasi, bikin macet tiap sore", TIE),
             ("lampu jalan mati di Harapan Indah sudah seminggu", BEKASI_TIE),
             ("tolong dibantu pak, jalan rusak parah depan sekolah", None)]
    numbers = []
    for text, evidence in texts:
        number = seed(None, text=text)
        if evidence:
            seed.update(number, evidence=evidence)
        numbers.append(number)
    return numbers


def test_the_desk_by_keyboard_dispose_and_undo(page: Page, seed, people) -> None:
    numbers = _desk(seed)
    people("pusat@lapor.go.id", name="Admin Pusat")
    page.login(CENTRAL, "pusat@lapor.go.id", PASSWORD)
    page.open(CENTRAL, "/desk")
    rows = [a.text for a in page.all("article.desk-row a.open")]
    assert sorted(rows) == sorted(numbers)
    assert page.find("article.desk-row.current a.open").text == rows[0]
    keys = ActionChains(page.driver)
    keys.send_keys("j").perform()
    assert page.find("article.desk-row.current a.open").text == rows[1]
    keys.send_keys("k").send_keys("j").perform()
    second = page.find("article.desk-row.current")
    target = second.find_element("css selector", 'button.guess[data-key="1"]')
    agency = target.find_element("xpath", "..").find_element("css selector", "input[name=to]").get_attribute("value")
    _press(page, "1")
    assert rows[1] not in [a.text for a in page.all("article.desk-row a.open")]
    assert f"{rows[1]} didisposisikan ke {agency}" in page.find("#undo-form").text
    assert seed.report(rows[1]).agency == agency
    _press(page, "u")
    assert "tidak ada pemberitahuan yang terkirim" in page.text()
    assert seed.report(rows[1]).agency is None
    assert rows[1] in [a.text for a in page.all("article.desk-row a.open")]
    assert not page.all("#undo-form")


def test_the_desk_works_by_buttons_on_a_phone(page: Page, seed, people) -> None:
    numbers = _desk(seed)
    people("pusat@lapor.go.id", name="Admin Pusat")
    page.login(CENTRAL, "pusat@lapor.go.id", PASSWORD)
    page.phone(True)
    try:
        page.open(CENTRAL, "/desk")
        assert page.overflow() == 0
        page.select(f"#to-{numbers[2]}", "KEMENHUB")
        page.submit(f"article.desk-row:has(a#t-{numbers[2]}) .picker button")
        assert seed.report(numbers[2]).agency == "KEMENHUB"
        page.submit("#undo-form button")
        assert seed.report(numbers[2]).agency is None
    finally:
        page.phone(False)


def test_the_operations_page_refreshes_and_retries(page: Page, seed, settings) -> None:
    failed = _operations_state(settings)
    with session_factory(settings.DATABASE_URL)() as session:
        user = accounts.create_user(session, registry_for(settings), email="ops@lapor.go.id", name="Operator",
                                    role="operator", agency=None, created_by="test")
        accounts.set_password(session, user, PASSWORD, PASSWORD)
        session.commit()
    page.login(CENTRAL, "ops@lapor.go.id", PASSWORD)
    assert page.driver.current_url.endswith("/ops")  # an operator lands on its page
    assert page.find("#surge-hour").text == "3"
    # htmx swaps in fresh figures (every 10 s; triggered here) under the Content-Security-Policy.
    with session_factory(settings.DATABASE_URL)() as session:
        session.add(InboundMessage(channel="twilio", external_id="SMnew", sender="+6281200000099", text="x",
                                   received_at=utcnow(), state="processed", processed_at=utcnow()))
        session.commit()
    page.driver.execute_script(
        "htmx.ajax('GET', '/ops', {target: '#ops', swap: 'outerHTML', headers: {'HX-Request': 'true'}})")
    page.wait_until(lambda: page.find("#surge-hour").text == "4")
    assert page.all("#ops[hx-trigger='every 10s']")
    page.submit(f"#sms-{failed} button")
    assert f"SMS #{failed} diantrekan ulang." in page.text()
    with session_factory(settings.DATABASE_URL)() as session:
        assert session.scalar(select(OutboundMessage.state).where(OutboundMessage.id == failed)) == "queued"


def test_desk_and_operations_fit_a_phone_pass_axe_and_are_photographed(page: Page, seed, people, settings,
                                                                       db_url, tmp_path) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("layout does not depend on the database: checked once, on SQLite")
    folder = screenshot_dir(tmp_path)
    problems: list[str] = []
    numbers = _desk(seed)
    returned = seed("KEMENHUB", text="pungli di jembatan timbang, bukan terminal")
    people("pusat@lapor.go.id", name="Admin Pusat")
    with session_factory(settings.DATABASE_URL)() as session:  # KEMENHUB gives one back (bukan wewenang)
        report = find_by_tracking(session, returned)
        assert report is not None
        lifecycle.return_to_central(session, settings, registry_for(settings),
                                    Principal(token_id=0, admin=False, code="KEMENHUB", person="staf@dephub.go.id"),
                                    report, reason="wewenang Dinas Perhubungan Kota Bekasi")
        session.commit()
    _operations_state(settings)
    page.login(CENTRAL, "pusat@lapor.go.id", PASSWORD)
    page.open(CENTRAL, "/desk")
    page.submit(f"article.desk-row:has(a#t-{numbers[0]}) button.guess")  # the undo bar is in the picture
    check_page(page, "desk", folder, problems)
    page.open(CENTRAL, "/ops")
    check_page(page, "ops", folder, problems)
    assert not problems, "\n".join(problems)


def _press(page: Page, key: str) -> None:
    """Press a key that submits a form, and wait for the next page."""
    mark = "k" + key
    page.driver.execute_script("document.documentElement.dataset.left = arguments[0]", mark)
    ActionChains(page.driver).send_keys(key).perform()
    WebDriverWait(page.driver, 10).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && document.documentElement.dataset.left !== arguments[0]", mark))


def _operations_state(settings) -> int:  # type: ignore[no-untyped-def]
    """Some traffic, sends, a failed SMS and a failed webhook; the failed SMS's id."""
    from datetime import timedelta

    now = utcnow()
    with session_factory(settings.DATABASE_URL)() as session:
        for i, minutes in enumerate((1, 12, 40)):
            session.add(InboundMessage(channel="twilio", external_id=f"SMops{i}", sender=f"+62812000001{i}",
                                       text="KEMENHUB ADUAN bus", received_at=now - timedelta(minutes=minutes),
                                       state="processed", processed_at=now - timedelta(minutes=minutes)))
        for i in range(5):
            session.add(OutboundMessage(idempotency_key=f"ops-ok{i}", channel="twilio", recipient="+6281200000001",
                                        text="terima kasih", purpose="ack", state="delivered", segments=1))
        failed = OutboundMessage(idempotency_key="ops-bad", channel="twilio", recipient="+6281234567890",
                                 text="Laporan Anda didisposisikan", purpose="notify", state="failed", segments=1,
                                 error="Twilio 21612: the 'To' number is not reachable", error_code="21612",
                                 attempts=3)
        session.add_all([failed, WebhookDelivery(
            idempotency_key="ops-hook", recipient="KEMENHUB", recipient_kind="agency", event="report.created",
            payload={}, state="failed", attempts=8, response_status=503, error="HTTP 503 Service Unavailable")])
        session.commit()
    queue.get_redis(settings).set(HEARTBEAT_PREFIX + "gateway-1:4242", "twilio,kannel", ex=60)  # a live sender
    return failed.id
