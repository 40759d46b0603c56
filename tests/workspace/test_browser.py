"""The workspace in a real browser (Chromium through Selenium), on SQLite and PostgreSQL.

One browser serves the whole session; each test gets the app on a free port
with one host per agency under lapor.test. What a person does is what the
test does: type, click, read the page.
"""

from __future__ import annotations

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from sms_gateway import gsm
from sms_gateway.db import session_factory
from sms_gateway.models import Report, WebhookDelivery
from tests.workspace.browser import Page, check_page, screenshot_dir
from tests.workspace.conftest import PASSWORD

pytestmark = pytest.mark.slow

KEMENHUB = "kemenhub.lapor.test"
KEMENKES = "kemenkes.lapor.test"
BEKASI = "pemkotbekasi.lapor.test"
CENTRAL = "lapor.test"


def test_two_agencies_on_two_hosts_never_see_each_others_reports(page: Page, seed, people) -> None:
    hub = seed("KEMENHUB", text="bus AKAP ngetem di bahu jalan tol")
    kes = seed("KEMENKES", text="antrean vaksin di puskesmas mengular")
    people("ani@kemenhub.go.id", agency="KEMENHUB")
    people("kiki@kemenkes.go.id", agency="KEMENKES")
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    assert hub in page.text() and kes not in page.text()
    page.open(KEMENHUB, f"/reports/{kes}")
    assert "Halaman tidak ditemukan" in page.text() and "antrean vaksin" not in page.text()
    page.open(KEMENKES, "/")  # the other host has its own cookie: nobody is signed in there
    assert page.driver.current_url.startswith(f"http://{KEMENKES}:") and "/login" in page.driver.current_url
    page.login(KEMENKES, "ani@kemenhub.go.id", PASSWORD)
    assert "E-mail atau kata sandi salah." in page.text()
    page.login(KEMENKES, "kiki@kemenkes.go.id", PASSWORD)
    assert kes in page.text() and hub not in page.text()
    page.open(KEMENKES, f"/reports/{hub}")
    assert "Halaman tidak ditemukan" in page.text()
    page.driver.get_log("browser")
    page.open("nosuch.lapor.test", "/login")
    assert "Halaman tidak ditemukan" in page.text() and not page.all("#password")
    # The 404 page is itself complete: its script and stylesheet load on the unknown host too.
    assert [e["message"] for e in page.driver.get_log("browser") if "/assets/" in e["message"]] == []


def test_login_inbox_open_dispose_to_a_unit_and_the_units_user_sees_it(page: Page, seed, people, settings) -> None:
    number = seed("PEMKOTBEKASI", text="lampu PJU mati di jalan Ahmad Yani")
    people("pak.kadis@bekasi.go.id", agency="PEMKOTBEKASI", role="admin")
    people("dishub@bekasi.go.id", agency="DISHUBBEKASI")
    page.login(BEKASI, "pak.kadis@bekasi.go.id", PASSWORD)
    page.follow(f'a.open[href="/reports/{number}"]')
    page.select("#dispose-to", "DISHUBBEKASI")
    page.fill("#dispose-note", "mohon dicek tim PJU")
    page.submit("#dispose button[type=submit]")
    assert "Laporan didisposisikan ke DISHUBBEKASI." in page.text()
    page.submit("header form button")  # sign out
    # The unit's staff sign in on the parent's host (the unit's own label redirects there).
    page.open("dishubbekasi.lapor.test", "/login")
    assert page.driver.current_url.startswith(f"http://{BEKASI}:")
    page.login(BEKASI, "dishub@bekasi.go.id", PASSWORD)
    assert number in page.text()
    page.follow(f'a.open[href="/reports/{number}"]')
    assert "mohon dicek tim PJU" in page.text() and "Pak.Kadis" in page.text()


def test_answer_status_change_and_failed_send_reach_the_fake_twilio(page: Page, seed, people, fake_twilio,
                                                                   work) -> None:
    number = seed("KEMENHUB", text="sopir bus ugal-ugalan")
    people("ani@kemenhub.go.id", agency="KEMENHUB", name="Ani Kemenhub")
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    page.open(KEMENHUB, f"/reports/{number}")
    page.submit("#status form button")  # Verifikasi
    page.select("#status-new", "ditindaklanjuti")
    page.fill("#status-note", "sopir sudah dipanggil")
    page.submit("#status form.stack button")
    work()
    assert len(fake_twilio.messages) == 1 and number in fake_twilio.messages[0].form["Body"]
    # The answer, with the live counter, through the normal worker path.
    page.fill("#answer-text", "Sopir sudah ditegur dan diberi sanksi oleh operator bus.")
    counter = page.find("#counter")
    assert "GSM-7" in counter.text and counter.get_attribute("data-segments") == "1"
    page.submit("#answer-form button[type=submit]")
    assert "Jawaban diantrekan untuk dikirim." in page.text()
    work()
    assert "Sopir sudah ditegur" in fake_twilio.messages[1].form["Body"]
    assert fake_twilio.messages[1].form["To"] == "+6281234567890"
    page.driver.refresh()
    assert "terkirim ke operator" in page.text() and "Ani Kemenhub" in page.text()
    # A send the provider refuses stays visible with its reason and is retried from the page.
    fake_twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    page.fill("#answer-text", "Mohon konfirmasi apakah masih terjadi 🙏")
    assert page.find("#counter").get_attribute("data-encoding") == "ucs2"
    page.submit("#answer-form button[type=submit]")
    work()
    page.driver.refresh()
    failed = page.find("li.sms.problem")
    assert "gagal" in failed.text and "unsubscribed recipient" in failed.text
    page.submit("li.sms.problem form button")
    assert "SMS diantrekan ulang." in page.text()
    work()
    assert len(fake_twilio.messages) == 4 and "🙏" in fake_twilio.messages[3].form["Body"]
    page.driver.refresh()
    assert not page.all("li.sms.problem")


def test_bulk_action_with_a_clear_count(page: Page, seed, people, settings) -> None:
    first, second = seed("KEMENHUB", text="satu"), seed("KEMENHUB", text="dua")
    closed = seed("KEMENHUB", text="tiga", status="diarsipkan")
    people("ani@kemenhub.go.id", agency="KEMENHUB")
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    page.open(KEMENHUB, "/?queue=new")
    for number in (first, second):
        page.find(f"#pick-{number}").click()
    assert page.find("#selected-count").text == "(2)"
    page.select("#bulk-status", "diverifikasi")
    page.submit("#bulk-form fieldset button")
    assert "2 dari 2 laporan diubah." in page.text()
    page.open(KEMENHUB, "/?queue=done")
    page.find(f"#pick-{closed}").click()
    page.select("#bulk-status", "diverifikasi")
    page.submit("#bulk-form fieldset button")
    assert "0 dari 1 laporan diubah." in page.text()
    assert f"{closed} tidak diubah: Laporan berstatus diarsipkan tidak bisa menjadi diverifikasi." in page.text()
    with session_factory(settings.DATABASE_URL)() as session:
        statuses = {r.tracking_number: r.status for r in session.scalars(select(Report))}
    assert statuses == {first: "diverifikasi", second: "diverifikasi", closed: "diarsipkan"}


def test_csv_export_contents_and_keys(page: Page, seed, people) -> None:
    numbers = [seed("KEMENHUB", text=f"keluhan terminal {i}") for i in range(3)]
    seed("KEMENKES", text="bukan untuk kemenhub")
    people("ani@kemenhub.go.id", agency="KEMENHUB")
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    page.fill("#search", "terminal 1")
    page.submit(".searchbar button")
    href = page.find("a[download]").get_attribute("href")
    assert "q=terminal+1" in href
    body = page.driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => r.text()).then(done);", href)
    lines = body.lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("tracking_number,created_at,status")
    assert len(lines) == 2 and lines[1].startswith(numbers[1]) and "keluhan terminal 1" in lines[1]
    # Keys: / focuses the search, j/k move, Enter opens.
    page.open(KEMENHUB, "/")
    keys = ActionChains(page.driver)
    keys.send_keys("/").perform()
    assert page.driver.switch_to.active_element.get_attribute("id") == "search"
    page.driver.execute_script("document.activeElement.blur()")
    links = [a.text for a in page.all("tr.report-row a.open")]
    keys.send_keys("j").perform()
    assert page.find("tr.report-row.current a.open").text == links[0]
    keys.send_keys("j").send_keys("j").perform()
    assert page.find("tr.report-row.current a.open").text == links[2]
    keys.send_keys("k").perform()
    assert page.driver.switch_to.active_element.text == links[1]
    keys.send_keys(Keys.ENTER).perform()
    page.wait_for("#h-thread")
    assert page.driver.current_url.endswith(f"/reports/{links[1]}")


def test_more_rows_come_by_htmx_under_the_content_security_policy(page: Page, seed, people) -> None:
    for i in range(55):
        seed("KEMENHUB", text=f"keluhan {i}")
    people("ani@kemenhub.go.id", agency="KEMENHUB")
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    assert len(page.all("tr.report-row")) == 50
    page.driver.get_log("browser")  # drained: only what follows counts (the log is the whole session's)
    page.driver.execute_script("window.samePage = true")
    page.find("#more-row a").click()
    WebDriverWait(page.driver, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.report-row")) == 55)
    assert page.driver.execute_script("return window.samePage") is True  # swapped in, not a new page
    assert not page.all("#more-row")
    errors = [e for e in page.driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []  # no script refused by the CSP, no failed request


def test_csrf_refusal_rate_limit_and_xss_in_the_browser(page: Page, seed, people) -> None:
    number = seed("KEMENHUB", text='<script>alert("xss")</script><img src=x onerror="alert(2)"> tolong')
    people("ani@kemenhub.go.id", agency="KEMENHUB")
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    page.open(KEMENHUB, f"/reports/{number}")
    assert '<script>alert("xss")</script>' in page.find("#h-text + .sms-text").text
    with pytest.raises(NoAlertPresentException):
        page.driver.switch_to.alert.text  # noqa: B018 - nothing ran
    # A form whose token was removed is refused with a page that says why.
    page.driver.execute_script("document.querySelector('#note input[name=csrf_token]').remove()")
    page.fill("#note-text", "tanpa token")
    page.submit("#note form button")
    assert "Formulir kedaluwarsa" in page.text()
    page.open(KEMENHUB, f"/reports/{number}")
    assert "tanpa token" not in page.text()
    # Ten wrong passwords, then even the right one waits.
    page.submit("header form button")
    for _ in range(10):
        page.login(KEMENHUB, "ani@kemenhub.go.id", "salah-salah-salah")
        assert "E-mail atau kata sandi salah." in page.text()
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    assert "Terlalu banyak percobaan" in page.text()


def test_the_js_counter_agrees_with_gsm_py(page: Page, people) -> None:
    people("ani@kemenhub.go.id", agency="KEMENHUB")
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    samples = ["", "a", "x" * 160, "x" * 161, "x" * 306, "x" * 307, "[]{}^~|\\€" * 20, "€" * 80, "€" * 81,
               "é" * 160, "ç" * 70, "Ç" * 160, "ü" * 200, "“kutip”" * 10, "a" * 69 + "😀", "😀" * 35,
               "😀" * 36, "Bus ke terminal Pulogadung\nbaris baru\r\nlagi", "\f" * 10, "tab\tdi sini",
               "Ω" * 161, "ß" * 153 + "x", "ŀ" * 67 + "x" * 3]
    basic = "".join(sorted(gsm.GSM7_BASIC))
    extended = "".join(sorted(gsm.GSM7_EXTENDED))
    measured = page.driver.execute_script(
        "const b = new Set(Array.from(arguments[1])), e = new Set(Array.from(arguments[2]));"
        "return arguments[0].map(t => window.workspaceSms.measure(t, b, e));", samples, basic, extended)
    for text, js in zip(samples, measured, strict=True):
        py = gsm.measure(text)
        assert (js["encoding"], js["units"], js["segments"]) == (py.encoding, py.units, py.segments), text
    # And the text it measures is the one the server sends (whitespace squeezed like str.split()).
    raw = "  dua\u2003spasi\u00a0dan\x1cpemisah\n\n baris "
    assert page.driver.execute_script("return window.workspaceSms.normalize(arguments[0])", raw) == \
        " ".join(raw.split())


# --------------------------------------------------------------------------- every page: phone, axe, screenshots



def test_pages_fit_a_phone_pass_axe_and_are_photographed(page: Page, seed, people, settings, db_url, tmp_path,
                                                          fake_twilio, work) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("layout does not depend on the database: checked once, on SQLite")
    folder = screenshot_dir(tmp_path)
    problems: list[str] = []
    people("ani@kemenhub.go.id", agency="KEMENHUB", role="admin", name="Ani Kemenhub")
    people("staf@kemenhub.go.id", agency="KEMENHUB", name="Bayu Staf")
    texts = ["KEMENHUB ADUAN bus AKAP masih angkut pemudik di terminal Pulogebang padahal ada larangan mudik",
             "travel gelap di rest area KM 57 tol Jakarta-Cikampek, penumpang berdesakan tanpa masker",
             "kapal penyeberangan Merak-Bakauheni antre 6 jam, tidak ada petugas yang mengatur",
             "<script>alert('xss')</script> sopir truk ODOL minta uang di jembatan timbang"]
    numbers = [seed("KEMENHUB", text=t, special=i == 0, category="LARANGAN MUDIK ASN" if i == 0 else None)
               for i, t in enumerate(texts)]
    seed("KEMENHUB", text="calo tiket bus di terminal Kampung Rambutan", confidential=True)
    page.open(KEMENHUB, "/login")
    check_page(page, "login", folder, problems)
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    check_page(page, "inbox", folder, problems)
    page.open(KEMENHUB, "/admin/answers")
    page.fill("form[action='/admin/answers'] input[name=title]", "Sedang ditangani")
    page.fill("form[action='/admin/answers'] textarea[name=text]",
              "Laporan Anda sedang kami tangani bersama dinas terkait. Terima kasih.")
    page.submit("form[action='/admin/answers'] button")
    check_page(page, "admin-answers", folder, problems)
    page.open(KEMENHUB, f"/reports/{numbers[0]}")
    page.submit("#status form button")  # Verifikasi
    page.fill("#answer-text", "Terima kasih, petugas kami sudah menuju terminal Pulogebang.")
    page.submit("#answer-form button[type=submit]")
    work()
    page.fill("#note-text", "Koordinasi dengan BPTJ, cek CCTV terminal.")
    page.submit("#note form button")
    check_page(page, "report", folder, problems)
    page.open(KEMENHUB, "/admin/staff")
    check_page(page, "admin-staff", folder, problems)
    with session_factory(settings.DATABASE_URL)() as session:  # a delivery log to look at
        report_id = session.scalar(select(Report.id).where(Report.tracking_number == numbers[1]))
        session.add_all([
            WebhookDelivery(idempotency_key="shot-1", recipient="KEMENHUB", event="report.created",
                            report_id=report_id, payload={}, url="https://helpdesk.dephub.go.id/lapor",
                            state="delivered", attempts=1, response_status=200),
            WebhookDelivery(idempotency_key="shot-2", recipient="KEMENHUB", event="report.disposed",
                            report_id=report_id, payload={}, url="https://helpdesk.dephub.go.id/lapor",
                            state="failed", attempts=8, response_status=503, error="HTTP 503 Service Unavailable")])
        session.commit()
    page.open(KEMENHUB, "/admin/webhook")
    check_page(page, "admin-webhook", folder, problems)
    page.open(KEMENHUB, "/account")
    check_page(page, "account", folder, problems)
    page.open(KEMENHUB, "/reports/12345678")
    check_page(page, "not-found", folder, problems)
    assert not problems, "\n".join(problems)
