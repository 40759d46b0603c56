"""The Kannel channel end to end against a real Kannel: bearerbox, smsbox and the fake SMS centre.

A subscriber's SMS goes fakesmsc → bearerbox → smsbox → get-url → the gateway
(a real HTTP server in this process) → the database; the worker (run here,
between polls) creates the report and sends the reply through smsbox's
sendsms → bearerbox → fakesmsc, whose delivery reports come back to
/sms/kannel/dlr.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from sms_gateway.channels.base import OutgoingSMS, SendError
from sms_gateway.channels.kannel import KannelChannel, build
from sms_gateway.config import PROJECT_ROOT, Settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, Report
from sms_gateway.outbox import dispatch, queue_reply
from tests.channels.kannel.harness import FakeSMS, FakeSMSC, KannelStack, kannel_missing, ucs2_arg, wait_until

pytestmark = pytest.mark.slow

SUBSCRIBER = "081234567890"
SUBSCRIBER_E164 = "+6281234567890"
UNICODE_REPORT = "KEMENHUB ADUAN jalan “rusak” parah 😡 di km 5 — tolong"


def _require_kannel() -> None:
    reason = kannel_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Kannel tests: {reason}")
        pytest.skip(reason)


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> KannelStack:
    """A Kannel configured for this test, not started yet.

    Indirect parameter: ``{"text_escape": "%a", "mo_recode": True}`` for the
    template, or ``{"example": True}`` for deploy/kannel/kannel.conf.example.
    """
    _require_kannel()
    options = dict(getattr(request, "param", {}))
    example = options.pop("example", False)
    stack = KannelStack(tmp_path / "kannel", **options)
    if example:
        stack.use_example(PROJECT_ROOT / "deploy" / "kannel" / "kannel.conf.example")
    return stack


@pytest.fixture
def env(env: dict[str, str], stack: KannelStack) -> dict[str, str]:
    """The suite's environment pointed at this Kannel (callbacks to the local gateway)."""
    return {
        **env,
        "PUBLIC_BASE_URL": stack.gateway_url,
        "KANNEL_SENDSMS_URL": stack.sendsms_url,
        "KANNEL_USERNAME": stack.username,
        "KANNEL_PASSWORD": stack.password,
        "KANNEL_INBOUND_TOKEN": stack.token,
    }


@pytest.fixture
def fakesmsc(app, stack: KannelStack) -> Iterator[FakeSMSC]:  # type: ignore[no-untyped-def]
    """Gateway served over HTTP, Kannel started, and a fakesmsc driver; all stopped afterwards."""
    server = make_server("127.0.0.1", stack.gateway_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake = FakeSMSC(stack)
    try:
        stack.start()
        yield fake
    finally:
        fake.stop()
        stack.stop()
        server.shutdown()
        thread.join(5)


def _rows(settings: Settings, model, *where):  # type: ignore[no-untyped-def]
    with session_factory(settings.DATABASE_URL)() as session:
        return list(session.scalars(select(model).where(*where).order_by(model.id)))


def _reply_to(fake: FakeSMSC, number: str, containing: str) -> FakeSMS | None:
    return next((m for m in fake.received() if m.receiver == number and containing in m.text), None)


def _diagnostics(fake: FakeSMSC, stack: KannelStack) -> str:
    return f"fakesmsc:\n{fake.output()}\nsmsbox log (tail):\n{stack.log('smsbox')[-4000:]}"


def test_report_ack_status_and_delivery_report(fakesmsc: FakeSMSC, stack: KannelStack,
                                               settings: Settings, work) -> None:  # type: ignore[no-untyped-def]
    fakesmsc.inject(f"{SUBSCRIBER} 1708 text KEMENHUB ADUAN bus masih angkut pemudik di tol cipali")

    reports = wait_until(lambda: _rows(settings, Report), 20, tick=work)
    assert reports, f"no report created\n{_diagnostics(fakesmsc, stack)}"
    report = reports[0]
    assert (report.agency, report.channel, report.reporter) == ("KEMENHUB", "kannel", SUBSCRIBER_E164)
    inbound = _rows(settings, InboundMessage)[0]
    assert inbound.recipient == "1708"
    assert inbound.external_id == inbound.meta["kannel_id"]  # Kannel's %I: the dedupe key
    assert inbound.meta["smsc"] == "FAKE"
    assert inbound.provider_time is not None

    ack = wait_until(lambda: _reply_to(fakesmsc, SUBSCRIBER_E164, report.tracking_number), 20, tick=work)
    assert ack, f"no ack with {report.tracking_number}\n{_diagnostics(fakesmsc, stack)}"
    assert ack.sender == settings.SHORT_CODE
    assert ack.kind == "text"

    # fakesmsc's SMS centre reports 8 (accepted) then 1 (delivered) to our dlr-url.
    def delivered() -> OutboundMessage | None:
        rows = _rows(settings, OutboundMessage, OutboundMessage.inbound_id == inbound.id)
        return rows[0] if rows and rows[0].state == "delivered" else None

    outbound = wait_until(delivered, 20)
    assert outbound, f"ack never marked delivered\n{_diagnostics(fakesmsc, stack)}"
    assert outbound.channel == "kannel"
    # smsbox fetches the two dlr-urls concurrently: 8 may land after 1, and
    # must change nothing, not even the provider's words (outbox.apply_delivery_reports).
    assert outbound.provider_status == "1 delivered"
    assert outbound.delivered_at is not None

    fakesmsc.inject(f"{SUBSCRIBER} 1708 text CEK {report.tracking_number}")
    status = wait_until(lambda: [m for m in fakesmsc.received()
                                 if m.receiver == SUBSCRIBER_E164 and m is not ack
                                 and report.tracking_number in m.text and m.text != ack.text], 20, tick=work)
    assert status, f"no status reply\n{_diagnostics(fakesmsc, stack)}"
    assert "status" in status[0].text.lower()
    assert len(_rows(settings, Report)) == 1  # a status request creates no report


@pytest.mark.parametrize("stack", [{"text_escape": "%b", "mo_recode": False},
                                   {"text_escape": "%b", "mo_recode": True},
                                   {"text_escape": "%a", "mo_recode": True}],
                         ids=["bytes", "bytes-mo-recode", "words-mo-recode"], indirect=True)
def test_ucs2_report_arrives_intact(fakesmsc: FakeSMSC, stack: KannelStack,
                                    settings: Settings, work) -> None:  # type: ignore[no-untyped-def]
    fakesmsc.inject(f"{SUBSCRIBER} 1708 ucs2 {ucs2_arg(UNICODE_REPORT)}")

    reports = wait_until(lambda: _rows(settings, Report), 20, tick=work)
    assert reports, f"no report created\n{_diagnostics(fakesmsc, stack)}"
    inbound = _rows(settings, InboundMessage)[0]
    assert inbound.text == UNICODE_REPORT
    assert "decode_errors" not in inbound.meta
    # Without mo-recode the bytes arrive as UTF-16BE (coding 2); with it, as UTF-8.
    assert inbound.meta["coding"] == ("0" if stack.mo_recode else "2")
    assert reports[0].agency == "KEMENHUB"
    assert "“rusak” parah 😡" in reports[0].text
    ack = wait_until(lambda: _reply_to(fakesmsc, SUBSCRIBER_E164, reports[0].tracking_number), 20, tick=work)
    assert ack, f"no ack\n{_diagnostics(fakesmsc, stack)}"


def test_unicode_reply_goes_out_as_ucs2(fakesmsc: FakeSMSC, stack: KannelStack,
                                        settings: Settings, work) -> None:  # type: ignore[no-untyped-def]
    text = "Laporan “LPR-1” sudah diteruskan 👍 ke Dinas PU"
    with session_factory(settings.DATABASE_URL)() as session:
        row = queue_reply(session, key="notify:test", channel="kannel", recipient=SUBSCRIBER_E164,
                          text=text, purpose="notify")
        session.commit()
        outbound_id = row.id
        dispatch(settings, [row])
    fakesmsc.inject(f"{SUBSCRIBER} 1708 text halo")  # connects a client to receive the reply

    got = wait_until(lambda: _reply_to(fakesmsc, SUBSCRIBER_E164, "sudah diteruskan"), 20, tick=work)
    assert got, _diagnostics(fakesmsc, stack)
    assert got.kind == "ucs-2"
    assert got.text == text

    def state() -> str:
        return _rows(settings, OutboundMessage, OutboundMessage.id == outbound_id)[0].state

    assert wait_until(lambda: state() == "delivered", 20), state()


def test_sendsms_errors_from_real_smsbox(fakesmsc: FakeSMSC, stack: KannelStack, settings: Settings,
                                        env: dict[str, str]) -> None:
    sms = OutgoingSMS(outbound_id=1, recipient=SUBSCRIBER_E164, text="tes")
    channel = build(settings)
    assert isinstance(channel, KannelChannel)
    channel.send(sms)  # accepted ("0: Accepted for delivery" or "3: Queued ...")

    bad = build(Settings(env, KANNEL_PASSWORD="wrong"))
    with pytest.raises(SendError) as exc:
        bad.send(sms)
    assert (exc.value.retryable, exc.value.code) == (False, "http-403")
    assert "wrong" not in exc.value.reason

    stack.stop()  # smsbox gone: connection refused is worth a retry
    with pytest.raises(SendError) as exc:
        channel.send(sms)
    assert (exc.value.retryable, exc.value.code) == (True, "network")
    assert stack.password not in exc.value.reason



@pytest.mark.parametrize("stack", [{"example": True}], ids=["example"], indirect=True)
def test_shipped_example_config_serves_the_gateway(fakesmsc: FakeSMSC, stack: KannelStack,
                                                   settings: Settings, work) -> None:  # type: ignore[no-untyped-def]
    """deploy/kannel/kannel.conf.example as shipped (fake SMS centre instead of SMPP): SMS in, ack out, DLR back."""
    report_text = "KEMENHUB ADUAN kernet bilang “tarif lebaran” 😤\nbus PO X di terminal Y"
    fakesmsc.inject(f"{SUBSCRIBER} 1708 ucs2 {ucs2_arg(report_text)}")

    reports = wait_until(lambda: _rows(settings, Report), 20, tick=work)
    assert reports, f"no report created\n{_diagnostics(fakesmsc, stack)}"
    inbound = _rows(settings, InboundMessage)[0]
    assert inbound.text == report_text  # mo-recode + %b: UTF-8, line break kept
    assert inbound.meta["smsc"] == "TSEL"
    ack = wait_until(lambda: _reply_to(fakesmsc, SUBSCRIBER_E164, reports[0].tracking_number), 20, tick=work)
    assert ack, f"no ack\n{_diagnostics(fakesmsc, stack)}"

    def delivered() -> bool:
        acks = _rows(settings, OutboundMessage, OutboundMessage.inbound_id == inbound.id)
        return [r.state for r in acks] == ["delivered"]

    assert wait_until(delivered, 20), _diagnostics(fakesmsc, stack)
