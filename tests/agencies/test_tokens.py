"""API tokens: shown once, stored hashed, checked on every call, revocable."""

from __future__ import annotations

import hashlib

from click.testing import CliRunner
from sqlalchemy import select, text

from sms_gateway.cli import main
from sms_gateway.db import session_factory
from sms_gateway.models import ApiToken


def create(*args: str) -> tuple[str, str]:
    result = CliRunner().invoke(main, ["agency", "token", "create", *args])
    assert result.exit_code == 0, result.output
    return result.output, result.output.strip().splitlines()[-1]


def test_cli_token_is_the_last_line_and_only_its_hash_is_stored(settings, client) -> None:
    output, token = create("kemenhub", "--label", "helpdesk Kemenhub")
    assert token.startswith("lpr_") and len(token) == 47
    assert "shown only now" in output
    with session_factory(settings.DATABASE_URL)() as s:
        row = s.scalars(select(ApiToken)).one()
        assert (row.agency, row.admin, row.label) == ("KEMENHUB", False, "helpdesk Kemenhub")
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.hint == token[:12]
        dump = " ".join(str(v) for v in s.execute(text("SELECT * FROM api_tokens")).one())
    assert token not in dump
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json["agency"] == "KEMENHUB" and "DISHUBBEKASI" not in r.json["units"]


def test_admin_token(settings, client) -> None:
    _, token = create("--admin")
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.json["admin"] is True and r.json["agency"] is None


def test_create_refuses_unknown_codes_and_ambiguous_requests(settings) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["agency", "token", "create", "NOWHERE"])
    assert bad.exit_code == 1 and "NOWHERE is neither an agency nor a coordinator" in bad.output
    assert runner.invoke(main, ["agency", "token", "create"]).exit_code == 2
    assert runner.invoke(main, ["agency", "token", "create", "POLRI", "--admin"]).exit_code == 2
    ok = runner.invoke(main, ["agency", "token", "create", "KEMENBUMN"])  # a coordinator
    assert ok.exit_code == 0


def test_missing_wrong_and_unknown_credentials(client) -> None:
    r = client.get("/api/v1/reports")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json == {"error": "missing credentials: send Authorization: Bearer <token>", "status": 401}
    assert client.get("/api/v1/reports", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    r = client.get("/api/v1/reports", headers={"Authorization": "Bearer lpr_" + "x" * 43})
    assert r.status_code == 403 and r.json["error"] == "invalid or revoked token"
    assert client.get("/api/v1/reports", headers={"Authorization": "Bearer nonsense"}).status_code == 403
    assert client.get("/api/v1/openapi.json").status_code == 200  # the document needs no token


def test_revoked_tokens_stop_working_at_once(settings, client) -> None:
    _, token = create("POLRI")
    _, other = create("POLRI")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/reports", headers=headers).status_code == 200
    listed = CliRunner().invoke(main, ["agency", "token", "list"])
    assert token[:12] in listed.output and token not in listed.output and "POLRI" in listed.output
    result = CliRunner().invoke(main, ["agency", "token", "revoke", token[:12]])  # by its hint
    with session_factory(settings.DATABASE_URL)() as s:
        token_id = s.scalar(select(ApiToken.id).where(ApiToken.token_hash == hashlib.sha256(token.encode())
                                                      .hexdigest()))
    assert result.exit_code == 0 and result.output == f"token #{token_id} revoked\n"
    again = CliRunner().invoke(main, ["agency", "token", "revoke", f"#{token_id}"])
    assert again.exit_code == 0 and "was already revoked" in again.output
    r = client.get("/api/v1/reports", headers=headers)
    assert r.status_code == 403 and r.json["error"] == "invalid or revoked token"
    assert client.get("/api/v1/reports", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    assert "REVOKED" not in CliRunner().invoke(main, ["agency", "token", "list"]).output
    assert "REVOKED" in CliRunner().invoke(main, ["agency", "token", "list", "--all"]).output
    again = CliRunner().invoke(main, ["agency", "token", "revoke", other])  # by the token itself
    assert again.exit_code == 0 and "revoked" in again.output
    assert CliRunner().invoke(main, ["agency", "token", "revoke", "99999"]).exit_code == 1


def test_a_token_of_an_agency_removed_from_the_registry_is_refused(client, prefixes_file, token_for) -> None:
    token = token_for("KEMENAG")
    text_ = prefixes_file.read_text()
    start = text_.index("\n  KEMENAG:\n", text_.index("\nagencies:\n"))
    end = text_.index("\n  KEMNAKER:\n", start)
    prefixes_file.write_text(text_[:start] + text_[end:])
    r = client.get("/api/v1/reports", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and "KEMENAG is no longer in the registry" in r.json["error"]


def test_last_use_is_recorded(settings, client) -> None:
    _, token = create("POLRI")
    client.get("/api/v1/reports", headers={"Authorization": f"Bearer {token}"})
    with session_factory(settings.DATABASE_URL)() as s:
        assert s.scalars(select(ApiToken.last_used_at)).one() is not None


def test_the_history_names_the_tokens_holder_and_label(settings, client, seed) -> None:
    _, token = create("kemenhub", "--label", "helpdesk Budi")
    number = seed("KEMENHUB")
    r = client.post(f"/api/v1/reports/{number}/status", json={"status": "diverifikasi"},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json["event"]["actor"] == "agency:KEMENHUB (helpdesk Budi)"
