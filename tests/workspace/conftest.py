"""Workspace fixtures: people with passwords, a signed-in test client, seeded reports.

The browser suite (test_browser.py) adds a live server and Chromium on top.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sms_gateway.db import session_factory
from sms_gateway.registry import registry_for
from sms_gateway.workspace import accounts
from tests.agencies.conftest import WEBHOOK_SECRET, Seeder, api_as, receiver, token_for  # noqa: F401 - shared fixtures
from tests.workspace.browser import chromium, live, page  # noqa: F401 - the browser suite's fixtures

PASSWORD = "kata-sandi-uji-123"
SUFFIX = "lapor.test"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The gateway environment plus webhook secret, an empty holiday override and a secret key."""
    override = tmp_path / "holidays_override.yaml"
    override.write_text("add: []\nremove: []\n")
    return {**env, "AGENCY_WEBHOOK_SECRET": WEBHOOK_SECRET, "HOLIDAYS_OVERRIDE_FILE": str(override),
            "SECRET_KEY": "test-secret-key-" + "x" * 32}


@pytest.fixture
def seed(settings: Any) -> Seeder:
    return Seeder(settings)


class People:
    """Creates accounts with a password already set (as if the link had been used)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def __call__(self, email: str, *, agency: str | None = None, role: str = "staff", name: str = "",
                 password: str = PASSWORD) -> int:
        registry = registry_for(self.settings)
        with session_factory(self.settings.DATABASE_URL)() as session:
            user = accounts.create_user(session, registry, email=email, name=name or email.split("@")[0].title(),
                                        role="central" if agency is None else role, agency=agency,
                                        created_by="test")
            accounts.set_password(session, user, password, password)
            session.commit()
            return user.id


@pytest.fixture
def people(settings: Any) -> People:
    return People(settings)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Workspace:
    """The Flask test client on one host, signing in and posting forms with their CSRF token."""

    def __init__(self, app: Any, host: str = "localhost") -> None:
        self.client = app.test_client()
        self.host = host
        self.token = ""

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, base_url=f"http://{self.host}", **kwargs)
        if "csrf_token" in response.get_data(as_text=True):
            self.token = csrf_of(response.get_data(as_text=True))
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any) -> Any:
        if csrf and not self.token:
            self.get("/login")
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.token)
        return self.client.post(path, data=form, base_url=f"http://{self.host}", **kwargs)

    def login(self, email: str, password: str = PASSWORD) -> Any:
        self.get("/login")
        response = self.post("/login", {"email": email, "password": password})
        if response.status_code == 302:
            self.get("/")  # the token changes with the new session
        return response


@pytest.fixture
def workspace(app: Any):  # type: ignore[no-untyped-def]
    """``workspace(host="kemenhub.lapor.test")``: a fresh test client on that host."""
    return lambda host="localhost": Workspace(app, host)


@pytest.fixture
def central(people: Any, workspace: Any) -> Any:
    """A central admin (``pusat@lapor.go.id``), signed in on the workspace."""
    people("pusat@lapor.go.id", name="Admin Pusat")
    ws = workspace()
    assert ws.login("pusat@lapor.go.id").status_code == 302
    return ws
