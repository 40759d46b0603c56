"""The board, its drill-down, an intervensi and its banner, and the roster in a real browser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sms_gateway.db import session_factory
from sms_gateway.models import Escalation, ReadinessAlert, Report, utcnow
from sms_gateway.registry import registry_for
from sms_gateway.workspace import accounts
from tests.workspace.browser import Page, check_page, screenshot_dir
from tests.workspace.conftest import PASSWORD

pytestmark = pytest.mark.slow

CENTRAL = "lapor.test"
BEKASI = "pemkotbekasi.lapor.test"
KEMENHUB = "kemenhub.lapor.test"


def coordinator(settings, email: str, code: str, name: str) -> None:  # type: ignore[no-untyped-def]
    with session_factory(settings.DATABASE_URL)() as session:
        user = accounts.create_user(session, registry_for(settings), email=email, name=name, role="coordinator",
                                    agency=code, created_by="test")
        accounts.set_password(session, user, PASSWORD, PASSWORD)
        session.commit()


def test_coordinator_drills_down_intervenes_and_the_agency_answers_the_banner(
        page: Page, seed, people, settings, work) -> None:
    late = seed("DISHUBBEKASI", special=True, received=utcnow() - timedelta(days=12),
                text="angkot ngetem sembarangan di depan stasiun Bekasi")
    seed("KEMENHUB", special=True, received=utcnow() - timedelta(days=12))
    coordinator(settings, "pantau@kemendagri.go.id", "KEMENDAGRI", "Bu Sari")
    people("admin@bekasi.go.id", agency="PEMKOTBEKASI", role="admin", name="Pak Admin")

    page.login(CENTRAL, "pantau@kemendagri.go.id", PASSWORD)
    page.open(CENTRAL, "/board")
    rows = [r.text for r in page.all("table.board tbody th")]
    # What KEMENDAGRI watches (PEMKOTBEKASI and its units), nothing else.
    assert "PEMKOTBEKASI" in rows and "DISHUBBEKASI" in rows and all(r.endswith("BEKASI") for r in rows)
    page.follow("table.board tbody th a[href='/board/DISHUBBEKASI']")
    assert late in page.text()
    page.follow(f"a[href='/reports/{late}']")
    assert "Jawab pelapor" not in page.text()  # a coordinator reads, it does not work the report
    page.fill("#intervensi-reason", "Sudah 8 hari kerja terlambat, mohon hari ini ditindaklanjuti.")
    page.submit("#coordination form button")
    assert "Intervensi kepada DISHUBBEKASI dicatat" in page.text()
    assert "belum dijawab" in page.text()
    work()

    page.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    page.login(BEKASI, "admin@bekasi.go.id", PASSWORD)
    banner = page.find(".coordination-banners .banner")
    assert "Bu Sari (KEMENDAGRI)" in banner.text and "mohon hari ini" in banner.text
    page.fill(".coordination-banners textarea", "Petugas Dishub sudah di lokasi.")
    page.submit(".coordination-banners button[type=submit]")
    assert not page.all(".coordination-banners")
    page.open(BEKASI, f"/reports/{late}")
    assert "Petugas Dishub sudah di lokasi." in page.find("#coordination").text


def test_board_pages_fit_a_phone_pass_axe_and_are_photographed(page: Page, seed, people, settings, db_url,
                                                                tmp_path, fake_twilio) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("layout does not depend on the database: checked once, on SQLite")
    folder = screenshot_dir(tmp_path)
    problems: list[str] = []
    now = utcnow()
    spread = {"KEMENHUB": (14, 5), "KEMENKES": (9, 2), "PLN": (6, 0), "KAI": (3, 1), "DISHUBBEKASI": (5, 3),
              "POLRI": (11, 4)}
    for code, (total, overdue) in spread.items():
        for i in range(total):
            late = i < overdue
            number = seed(code, special=i % 3 == 0, received=now - timedelta(days=9 + i if late else i % 2),
                          text=f"laporan warga nomor {i} tentang layanan {code.lower()} yang belum ditangani")
            if not late and i % 2:
                seed.update(number, disposed_at=now - timedelta(hours=3 + i), status="didisposisikan")
    seed(None, text="lampu jalan mati di Jl. Merdeka")
    with session_factory(settings.DATABASE_URL)() as session:
        for report in session.scalars(select(Report).where(Report.agency.in_(["KEMENHUB", "POLRI"]))).all()[:4]:
            session.add(Escalation(report_id=report.id, agency=report.agency, deadline="disposition", level=1,
                                   due=report.disposition_due, created_at=now))
        session.add(ReadinessAlert(key="shot", condition="at_risk", agency="KEMENKES",
                                   detail={"count": 2, "example": "", "by": now.date().isoformat()}, created_at=now))
        session.commit()
    people("pusat@lapor.go.id", name="Admin Pusat")
    people("ani@kemenhub.go.id", agency="KEMENHUB", role="admin", name="Ani Kemenhub")

    page.login(CENTRAL, "pusat@lapor.go.id", PASSWORD)
    page.open(CENTRAL, "/board?days=30")
    assert "KEMENHUB" in page.text() and "PUSAT" in page.text()
    check_page(page, "board", folder, problems)
    page.open(CENTRAL, "/board/KEMENHUB")
    page.fill("#teguran-reason", "Lima laporan lewat tenggat minggu ini; mohon penjelasan tertulis.")
    page.submit("#teguran button")
    check_page(page, "board-agency", folder, problems)

    page.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    page.login(KEMENHUB, "ani@kemenhub.go.id", PASSWORD)
    assert "Teguran" in page.find(".coordination-banners").text
    page.open(KEMENHUB, "/admin/roster")
    people_on_duty = (("Budi Santoso", "0812 3456 7890", "12345"), ("Citra Lestari", "+62 813 1111 2222", "67"))
    for name, number, days in people_on_duty:
        page.fill("#roster-name", name)
        page.fill("#roster-number", number)
        for day in days:
            page.find(f"input[name=weekday][value='{day}']").click()
        page.submit("form[action='/admin/roster'] button[type=submit]")
    page.fill("#roster-name", "Tanpa Nomor")
    page.fill("#roster-number", "12")
    page.find("input[name=weekday][value='1']").click()
    page.submit("form[action='/admin/roster'] button[type=submit]")
    assert "12 bukan nomor telepon" in page.text()
    page.open(KEMENHUB, "/admin/roster")
    assert "+6281234567890" in page.text() and "+6281311112222" in page.text()
    check_page(page, "roster", folder, problems)
    assert not problems, "\n".join(problems)

