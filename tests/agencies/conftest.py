"""Helpers for the agency tests: seeded reports, tokens, an authenticated API client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sms_gateway import deadlines, reports
from sms_gateway.agencies import tokens
from sms_gateway.db import session_factory
from sms_gateway.models import OutboundMessage, Report, utcnow
from tests.support import HttpRecorder

WEBHOOK_SECRET = "test-master-webhook-secret"


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The gateway environment plus a webhook master secret and an empty holiday override file."""
    override = tmp_path / "holidays_override.yaml"
    override.write_text("add: []\nremove: []\n")
    return {**env, "AGENCY_WEBHOOK_SECRET": WEBHOOK_SECRET, "HOLIDAYS_OVERRIDE_FILE": str(override)}


class Seeder:
    """Creates reports the way the inbound job does (``reports.create_report``)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def __call__(self, agency: str | None = "KEMENHUB", *, reporter: str = "+6281234567890",
                 channel: str = "twilio", special: bool = False, confidential: bool = False,
                 anonymous: bool = False, received: datetime | None = None, kind: str = "aduan",
                 text: str = "bus masih angkut pemudik di terminal", category: str | None = None,
                 status: str | None = None) -> str:
        received = received or utcnow()
        disposition, followup = deadlines.due_dates(received, special)
        with session_factory(self.settings.DATABASE_URL)() as session:
            report = reports.create_report(
                session, inbound_id=None, channel=channel, reporter=reporter, text=text, kind=kind, agency=agency,
                confidential=confidential, anonymous=anonymous, category=category, special=special,
                disposition_due=disposition, followup_due=followup, received_at=received)
            if status:
                report.status = status
            session.commit()
            return report.tracking_number

    def report(self, number: str) -> Report:
        with session_factory(self.settings.DATABASE_URL)() as session:
            report = session.scalar(select(Report).where(Report.tracking_number == number))
            assert report is not None
            report.events  # noqa: B018 - load the history before the session closes
            return report

    def outbound(self, **where: Any) -> list[OutboundMessage]:
        with session_factory(self.settings.DATABASE_URL)() as session:
            query = select(OutboundMessage).order_by(OutboundMessage.id)
            for key, value in where.items():
                query = query.where(getattr(OutboundMessage, key) == value)
            return list(session.scalars(query))

    def update(self, number: str, **values: Any) -> None:
        with session_factory(self.settings.DATABASE_URL)() as session:
            report = session.scalar(select(Report).where(Report.tracking_number == number))
            assert report is not None
            for key, value in values.items():
                setattr(report, key, value)
            session.commit()


@pytest.fixture
def seed(settings: Any) -> Seeder:
    return Seeder(settings)


class Api:
    """The Flask test client with a bearer token."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.post(path, json=json, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.client.delete(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)


@pytest.fixture
def token_for(settings: Any):  # type: ignore[no-untyped-def]
    """``token_for("KEMENHUB")`` or ``token_for(admin=True)``: a fresh API token."""

    def make(code: str | None = None, *, admin: bool = False) -> str:
        with session_factory(settings.DATABASE_URL)() as session:
            _row, secret = tokens.create(session, agency=code, admin=admin)
            session.commit()
        return secret

    return make


@pytest.fixture
def api_as(client: Any, token_for: Any):  # type: ignore[no-untyped-def]
    """``api_as("KEMENHUB")`` / ``api_as(admin=True)``: an API client holding a new token."""

    def make(code: str | None = None, *, admin: bool = False) -> Api:
        return Api(client, token_for(code, admin=admin))

    return make


@pytest.fixture
def receiver() -> Iterator[HttpRecorder]:
    """A local webhook receiver answering 200 unless a test scripts otherwise."""
    script: list[int] = []
    recorder = HttpRecorder(responder=lambda _req: ((script.pop(0) if script else 200), {"ok": True}))
    recorder.script = script  # type: ignore[attr-defined]
    recorder.start()
    yield recorder
    recorder.stop()


def _add_keys(prefixes_file: Path, section: str, code: str, keys: dict[str, str]) -> None:
    text = prefixes_file.read_text()
    start = text.index(f"\n{section}:\n")
    marker = f"\n  {code}:\n"
    at = text.index(marker, start) + len(marker)
    lines = "".join(f"    {k}: \"{v}\"\n" for k, v in keys.items())
    prefixes_file.write_text(text[:at] + lines + text[at:])


def add_to_agency(prefixes_file: Path, code: str, **keys: str) -> None:
    """Add keys (admin_number, webhook_url) to an agency's entry in the test prefixes.yaml."""
    _add_keys(prefixes_file, "agencies", code, keys)


def add_to_coordinator(prefixes_file: Path, code: str, **keys: str) -> None:
    """Add keys (admin_number, webhook_url) to a coordinator's entry in the test prefixes.yaml."""
    _add_keys(prefixes_file, "coordinators", code, keys)
