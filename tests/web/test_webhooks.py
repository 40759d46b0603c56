"""The providers' webhooks pass over the workspace's sessions, sign-in, CSRF and limits; the workspace keeps them."""

from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface

from sms_gateway.web import webhooks
from tests.channels.test_twilio import post_signed, sms_params


def test_a_webhook_opens_no_session_a_page_does(client, monkeypatch) -> None:
    opened: list[str] = []
    original = SecureCookieSessionInterface.open_session

    def spy(self, app, request):  # type: ignore[no-untyped-def]
        opened.append(request.path)
        return original(self, app, request)

    monkeypatch.setattr(SecureCookieSessionInterface, "open_session", spy)
    client.set_cookie("lapor_session", "not-a-valid-session")
    response = post_signed(client, sms_params())
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert opened == []
    client.get("/login")
    assert opened == ["/login"]


def test_only_the_workspace_extensions_hooks_pass_over_the_webhooks(app) -> None:
    wrapped = [hook for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
               for hook in hooks.get(None, []) if hasattr(hook, "__wrapped__")]
    modules = {getattr(getattr(h.__wrapped__, "func", h.__wrapped__), "__module__", "").split(".")[0] for h in wrapped}
    assert modules == {"flask_login", "flask_limiter", "flask_wtf"}
    assert isinstance(app.session_interface, webhooks.SessionInterface)
    assert webhooks.is_webhook("/sms/twilio") and webhooks.is_webhook("/sms/kannel/dlr")
    assert not webhooks.is_webhook("/login") and not webhooks.is_webhook("/api/v1/reports")
