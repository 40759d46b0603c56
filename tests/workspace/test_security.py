"""Security the issue asks to prove: scoping (404), hosts, CSRF, revoked sessions, rate limit, escaping."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from sms_gateway.config import Settings, set_settings
from sms_gateway.db import session_factory
from sms_gateway.models import AppendOnlyError, Report, ReportEvent, User
from sms_gateway.registry import registry_for
from sms_gateway.workspace import accounts, hosts
from sms_gateway.workspace.access import ScopeError, Viewer, report_scope, scoped_sessions, set_scope
from tests.workspace.conftest import PASSWORD, SUFFIX, Workspace


@pytest.fixture
def hosted(settings: Settings, env: dict[str, str]) -> Any:
    """The app with one host per agency under lapor.test."""
    from sms_gateway.web import create_app

    app = create_app(Settings({**env, "WORKSPACE_HOST_SUFFIX": SUFFIX, "PUBLIC_BASE_URL": "https://lapor.test"}))
    app.testing = True
    yield app
    set_settings(None)


def test_an_agency_gets_404_for_another_agencys_report(settings, seed, people, workspace) -> None:
    mine = seed("KEMENHUB")
    theirs = seed("KEMENKES", text="antrean vaksin panjang")
    people("a@kemenhub.go.id", agency="KEMENHUB")
    ws = workspace()
    ws.login("a@kemenhub.go.id")
    assert ws.get(f"/reports/{mine}").status_code == 200
    response = ws.get(f"/reports/{theirs}")
    assert response.status_code == 404
    assert "Halaman tidak ditemukan" in response.get_data(as_text=True)
    # Not in the inbox, not in a search, not in the export either.
    assert theirs not in ws.get("/?q=vaksin").get_data(as_text=True)
    assert theirs not in ws.get("/export.csv").get_data(as_text=True)
    # Nor through an action: the report is looked up in the same scope.
    assert ws.post(f"/reports/{theirs}/note", {"text": "x"}).status_code == 404
    with session_factory(settings.DATABASE_URL)() as session:
        assert session.scalar(select(Report).where(Report.tracking_number == theirs)).status == "diterima"


def test_a_unit_sees_its_own_reports_and_its_parent_all_of_its_units(seed, people, workspace) -> None:
    unit = seed("DISHUBBEKASI")
    sibling = seed("DINKESBEKASI")
    parent = seed("PEMKOTBEKASI")
    people("u@dishub.bekasi.go.id", agency="DISHUBBEKASI")
    people("p@bekasi.go.id", agency="PEMKOTBEKASI")
    ws = workspace()
    ws.login("u@dishub.bekasi.go.id")
    page = ws.get("/").get_data(as_text=True)
    assert unit in page and sibling not in page and parent not in page
    ws2 = workspace()
    ws2.login("p@bekasi.go.id")
    page = ws2.get("/").get_data(as_text=True)
    assert unit in page and sibling in page and parent in page


def test_a_workspace_query_without_a_scope_fails_instead_of_showing_everything(settings, seed) -> None:
    seed("KEMENHUB")
    with scoped_sessions(settings.DATABASE_URL)() as session, pytest.raises(ScopeError):
        session.scalars(select(Report)).all()
    viewer = Viewer(user_id=1, email="x@y.id", name="", role="coordinator", agency="OMBUDSMAN")
    with scoped_sessions(settings.DATABASE_URL)() as session:
        set_scope(session, report_scope(registry_for(settings), viewer))  # a role this code does not know
        assert session.scalars(select(Report)).all() == []


def test_history_is_append_only(settings, seed) -> None:
    seed("KEMENHUB")
    with session_factory(settings.DATABASE_URL)() as session:
        event = session.scalars(select(ReportEvent)).first()
        event.note = "rewritten"
        with pytest.raises(AppendOnlyError):
            session.flush()
        session.rollback()
        with pytest.raises(AppendOnlyError):
            session.delete(session.scalars(select(ReportEvent)).first())
            session.flush()


def test_a_form_without_its_csrf_token_is_refused(seed, people, workspace) -> None:
    number = seed("KEMENHUB")
    people("a@kemenhub.go.id", agency="KEMENHUB")
    ws = workspace()
    ws.login("a@kemenhub.go.id")
    response = ws.post(f"/reports/{number}/note", {"text": "tanpa token"}, csrf=False)
    assert response.status_code == 400
    assert "Formulir kedaluwarsa" in response.get_data(as_text=True)
    # An htmx request carries the token as a header; without it, refused too; with it, accepted.
    refused = ws.client.post(f"/reports/{number}/note", data={"text": "x"}, headers={"HX-Request": "true"})
    assert refused.status_code == 400
    ok = ws.client.post(f"/reports/{number}/note", data={"text": "dengan header"},
                        headers={"HX-Request": "true", "X-CSRFToken": ws.token})
    assert ok.status_code == 302
    assert ws.post("/logout", csrf=False).status_code == 400  # even signing out needs the token


def test_a_disabled_user_is_out_at_once_and_so_is_every_other_session_after_a_password_change(
        settings, seed, people, workspace) -> None:
    seed("KEMENHUB")
    people("a@kemenhub.go.id", agency="KEMENHUB")
    first, second = workspace(), workspace()
    first.login("a@kemenhub.go.id")
    second.login("a@kemenhub.go.id")
    assert first.get("/").status_code == 200
    # A password change in the first browser ends the second's session; the first stays in.
    response = first.post("/account", {"current": PASSWORD, "password": "baru-sekali-12345",
                                       "confirm": "baru-sekali-12345"})
    assert response.status_code == 302
    assert first.get("/").status_code == 200
    assert second.get("/").status_code == 302
    # Disabling the account ends the first one's too, on its next request.
    with session_factory(settings.DATABASE_URL)() as session:
        accounts.disable(session, accounts.find(session, "a@kemenhub.go.id"))
        session.commit()
    response = first.get("/")
    assert response.status_code == 302 and "/login" in response.location
    assert first.login("a@kemenhub.go.id", "baru-sekali-12345").status_code == 401


def test_logout_revokes_the_session_server_side(people, workspace) -> None:
    people("a@kemenhub.go.id", agency="KEMENHUB")
    ws = workspace()
    ws.login("a@kemenhub.go.id")
    cookie = ws.client.get_cookie("lapor_session")
    assert ws.post("/logout").status_code == 302
    # The old cookie, replayed, no longer opens anything.
    replay = workspace()
    replay.client.set_cookie("lapor_session", cookie.value)
    assert replay.get("/").status_code == 302


def test_the_eleventh_wrong_password_in_a_minute_is_refused(people, workspace) -> None:
    people("a@kemenhub.go.id", agency="KEMENHUB")
    ws = workspace()
    for _ in range(10):
        assert ws.login("a@kemenhub.go.id", "salah-salah-salah").status_code == 401
    response = ws.login("a@kemenhub.go.id", PASSWORD)  # even the right one, for now
    assert response.status_code == 429
    assert "Terlalu banyak percobaan" in response.get_data(as_text=True)
    # Another account from another address is not affected.
    people("b@kemenhub.go.id", agency="KEMENHUB")
    other = workspace()
    other.client.environ_base["REMOTE_ADDR"] = "127.0.0.2"
    assert other.login("b@kemenhub.go.id").status_code == 302


def test_sms_text_is_shown_as_text(seed, people, workspace) -> None:
    number = seed("KEMENHUB", text='<script>alert("x")</script><img src=x onerror=alert(1)>')
    people("a@kemenhub.go.id", agency="KEMENHUB")
    ws = workspace()
    ws.login("a@kemenhub.go.id")
    for page in (ws.get("/"), ws.get(f"/reports/{number}")):
        html = page.get_data(as_text=True)
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]


# --------------------------------------------------------------------------- hosts

def test_host_resolution(settings) -> None:
    registry = registry_for(settings)
    assert hosts.resolve(registry, None, "anything:8000") == hosts.Realm(hosts.ANY)
    assert hosts.resolve(registry, SUFFIX, "lapor.test") == hosts.Realm(hosts.CENTRAL)
    assert hosts.resolve(registry, SUFFIX, "KemenHub.Lapor.Test:5000") == hosts.Realm("KEMENHUB")
    assert hosts.resolve(registry, SUFFIX, "dephub.lapor.test:5000") == \
        hosts.Realm("KEMENHUB", redirect="kemenhub.lapor.test:5000")
    assert hosts.resolve(registry, SUFFIX, "kemenpan-rb.lapor.test") == \
        hosts.Realm("KEMENPANRB", redirect="kemenpanrb.lapor.test")
    assert hosts.resolve(registry, SUFFIX, "dishubbekasi.lapor.test") == \
        hosts.Realm("PEMKOTBEKASI", redirect="pemkotbekasi.lapor.test")
    assert hosts.resolve(registry, SUFFIX, "nosuch.lapor.test") is None
    assert hosts.resolve(registry, SUFFIX, "a.kemenhub.lapor.test") is None
    assert hosts.resolve(registry, SUFFIX, "gateway.example.id") is None


def test_each_agency_signs_in_on_its_own_host_only(hosted, seed, people) -> None:
    seed("KEMENHUB")
    people("a@kemenhub.go.id", agency="KEMENHUB")
    people("boss@lapor.go.id")
    people("u@dishub.bekasi.go.id", agency="DISHUBBEKASI")
    kemenkes = Workspace(hosted, "kemenkes.lapor.test")
    assert kemenkes.login("a@kemenhub.go.id").status_code == 401  # not another agency's host
    central = Workspace(hosted, SUFFIX)
    assert central.login("a@kemenhub.go.id").status_code == 401  # nor the central admins'
    assert central.login("boss@lapor.go.id").status_code == 302
    kemenhub = Workspace(hosted, "kemenhub.lapor.test")
    assert kemenhub.login("boss@lapor.go.id").status_code == 401  # the central admin signs in centrally
    response = kemenhub.login("a@kemenhub.go.id")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "lapor_session=" in cookie and "Domain" not in cookie and "HttpOnly" in cookie  # host-only
    # A unit's staff sign in on the parent's host.
    assert Workspace(hosted, "pemkotbekasi.lapor.test").login("u@dishub.bekasi.go.id").status_code == 302
    unit_host = Workspace(hosted, "dishubbekasi.lapor.test").get("/login?x=1")
    # https: the public scheme (PUBLIC_BASE_URL), whatever the proxy speaks to the gateway
    assert unit_host.status_code == 308 and unit_host.location == "https://pemkotbekasi.lapor.test/login?x=1"


def test_an_unknown_subdomain_gets_a_404_page_not_a_login(hosted) -> None:
    response = Workspace(hosted, "nosuch.lapor.test").get("/login")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "Halaman tidak ditemukan" in html and 'name="password"' not in html
    # The API and the webhooks are not workspace pages: still JSON.
    assert Workspace(hosted, "nosuch.lapor.test").get("/api/v1/nosuch").is_json


def test_the_set_password_link_is_one_time_and_on_the_agencys_host(hosted, settings) -> None:
    from click.testing import CliRunner

    from sms_gateway.cli import main

    result = CliRunner().invoke(main, ["user", "create", "Kepala@Kemenhub.go.id", "--agency", "kemenhub",
                                       "--role", "admin", "--name", "Kepala Biro"])
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[-1]
    assert link.startswith("https://kemenhub.lapor.test/password/")
    path = link.removeprefix("https://kemenhub.lapor.test")
    ws = Workspace(hosted, "kemenhub.lapor.test")
    ws.client.allow_subdomain_redirects = True
    assert "kepala@kemenhub.go.id" in ws.get(path).get_data(as_text=True)
    short = ws.post(path, {"password": "pendek", "confirm": "pendek"})
    assert short.status_code == 422 and "minimal 10 karakter" in short.get_data(as_text=True)
    assert ws.post(path, {"password": PASSWORD, "confirm": PASSWORD}).status_code == 302
    assert ws.get(path).status_code == 404  # used
    assert ws.login("kepala@kemenhub.go.id").status_code == 302
    assert ws.get("/").status_code == 200
    listing = CliRunner().invoke(main, ["user", "list"])
    assert "kepala@kemenhub.go.id" in listing.output and "active" in listing.output
    disabled = CliRunner().invoke(main, ["user", "disable", "kepala@kemenhub.go.id"])
    assert disabled.exit_code == 0 and "sessions ended" in disabled.output
    assert ws.get("/").status_code == 302
    with session_factory(settings.DATABASE_URL)() as session:
        user = session.scalar(select(User).where(User.email == "kepala@kemenhub.go.id"))
        assert user.password_hash.startswith("$argon2id$")
        assert user.name == "Kepala Biro" and user.role == "admin"


def test_a_nul_in_a_form_or_the_query_is_a_400_page_not_a_server_error(seed, people, workspace) -> None:
    number = seed("KEMENHUB")
    people("a@kemenhub.go.id", agency="KEMENHUB")
    ws = workspace()
    ws.login("a@kemenhub.go.id")
    for response in (ws.get("/?q=bus%00"), ws.get("/export.csv?category=%00"),
                     ws.post(f"/reports/{number}/note", {"text": "catatan\x00"}),
                     ws.post(f"/reports/{number}/answer", {"text": "\x00", "mode": "split", "key": "n"})):
        assert response.status_code == 400
        assert "Periksa isian Anda" in response.get_data(as_text=True)
    assert ws.get("/?q=bus%01").status_code == 200  # other control characters are only text
