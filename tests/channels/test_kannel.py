"""Kannel channel: get-url parsing and decoding, authentication, dedupe, DLR mapping, sendsms answers.

Requests go through the Flask app against the real test database and Redis;
the real Kannel is in test_kannel_integration.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, quote_from_bytes, urlsplit

import pytest
import time_machine
from sqlalchemy import select

from sms_gateway.channels import reply_channel
from sms_gateway.channels.base import NotConfigured, OutgoingSMS, SendError, get_channel
from sms_gateway.channels.kannel import DLR_TYPES, KannelChannel, build, sendsms_outcome
from sms_gateway.config import ConfigError, Settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage
from sms_gateway.outbox import dispatch, queue_reply
from tests.channels.kannel.harness import free_port

TOKEN = "kannel-token-0123456789"
KANNEL_ID = "8a3f0c52-3a61-4f43-9a4e-6f1e6f0d2b11"


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """Kannel's inbound side configured; no sendsms: the operator asks for replies on the console."""
    return {**env, "KANNEL_INBOUND_TOKEN": TOKEN, "CONSOLE_CHANNELS": "kannel"}


def mo_url(text: bytes | str = b"KEMENHUB ADUAN bus masih angkut pemudik", *, token: str | None = TOKEN,
           omit: tuple[str, ...] = (), **fields: str | bytes | None) -> str:
    """A get-url request as smsbox builds it, text as raw bytes percent-encoded."""
    raw = text.encode() if isinstance(text, str) else text
    values: dict[str, str | bytes | None] = {
        "token": token, "id": KANNEL_ID, "from": "081234567890", "to": "1708", "smsc": "TSEL",
        "time": "1795800000", "coding": "0", "charset": "UTF-8", "udh": "", **fields}
    parts = [f"{k}={quote_from_bytes(v if isinstance(v, bytes) else v.encode(), safe='')}"
             for k, v in values.items() if v is not None and k not in omit]
    if "text" not in omit:
        parts.append("text=" + quote_from_bytes(raw, safe=""))
    return "/sms/kannel?" + "&".join(parts)


def inbound_rows(settings: Settings) -> list[InboundMessage]:
    with session_factory(settings.DATABASE_URL)() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def outbound_row(settings: Settings, outbound_id: int) -> OutboundMessage:
    with session_factory(settings.DATABASE_URL)() as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        return row


# --------------------------------------------------------------------------- inbound

def test_sms_is_stored_and_answered_with_an_empty_body(client, settings: Settings) -> None:
    r = client.get(mo_url())
    assert r.status_code == 200
    assert r.data == b""  # smsbox would text any body to the citizen
    [row] = inbound_rows(settings)
    assert (row.channel, row.sender, row.recipient) == ("kannel", "+6281234567890", "1708")
    assert row.text == "KEMENHUB ADUAN bus masih angkut pemudik"
    assert row.external_id == KANNEL_ID
    assert row.provider_time == datetime.fromtimestamp(1795800000, UTC)
    assert row.meta == {"smsc": "TSEL", "coding": "0", "charset": "UTF-8", "kannel_id": KANNEL_ID}
    assert not row.incomplete


UNICODE = "Jalan “rusak” parah 😡 — km 5"

DECODING = [
    # (case, text bytes, coding, charset, expected text)
    ("gsm as utf-8", "café £5 € [x] ~".encode(), "0", "UTF-8", "café £5 € [x] ~"),
    ("ucs2 raw utf-16be", UNICODE.encode("utf-16-be"), "2", "UTF-16BE", UNICODE),
    ("ucs2 raw without charset", UNICODE.encode("utf-16-be"), "2", "", UNICODE),
    ("ucs2 bytes 0x20 0x20", " “a” ”".encode("utf-16-be"), "2", "UTF-16BE", " “a” ”"),
    ("ucs2 after mo-recode", UNICODE.encode(), "0", "UTF-8", UNICODE),
    ("latin-1 charset", "café ñ".encode("latin-1"), "0", "ISO-8859-1", "café ñ"),
    ("old kannel latin-1 no charset", "café ñ".encode("latin-1"), "0", "", "café ñ"),
    ("windows-1252", "“ok” …".encode("cp1252"), "0", "WINDOWS-1252", "“ok” …"),
    ("newlines kept", b"KEMENHUB ADUAN\nbaris dua\r\n  tiga", "0", "UTF-8", "KEMENHUB ADUAN\nbaris dua\r\n  tiga"),
]


@pytest.mark.parametrize(("case", "data", "coding", "charset", "expected"), DECODING,
                         ids=[c[0] for c in DECODING])
def test_text_is_decoded_whatever_the_coding(client, settings: Settings, case: str, data: bytes,
                                             coding: str, charset: str, expected: str) -> None:
    r = client.get(mo_url(data, coding=coding, charset=charset))
    assert r.status_code == 200, r.data
    [row] = inbound_rows(settings)
    assert row.text == expected
    assert "decode_errors" not in row.meta


def test_undecodable_bytes_are_kept_and_flagged(client, settings: Settings) -> None:
    r = client.get(mo_url(b"KEMENHUB ADUAN caf\xe9 rusak", charset="UTF-8"))
    assert r.status_code == 200
    [row] = inbound_rows(settings)
    assert row.text == "KEMENHUB ADUAN caf\ufffd rusak"
    assert row.meta["decode_errors"] is True


def test_empty_sms_is_stored(client, settings: Settings) -> None:
    assert client.get(mo_url(b"")).status_code == 200
    assert [r.text for r in inbound_rows(settings)] == [""]


@pytest.mark.parametrize(("url", "reason"), [
    (mo_url(omit=("from",)), b"missing from"),
    (mo_url(**{"from": ""}), b"missing from"),
    (mo_url(omit=("text",)), b"missing text"),
    (mo_url(charset="KLINGON-8"), b"unknown charset"),
    (mo_url(id="x" * 101), b"id is longer"),
], ids=["no-from", "empty-from", "no-text", "bad-charset", "long-id"])
def test_malformed_request_is_400_with_reason(client, settings: Settings, url: str, reason: bytes) -> None:
    r = client.get(url)
    assert r.status_code == 400
    assert reason in r.data
    assert inbound_rows(settings) == []


def test_unreadable_time_does_not_lose_the_sms(client, settings: Settings) -> None:
    assert client.get(mo_url(time="2026-11-27 10:00:00")).status_code == 200
    [row] = inbound_rows(settings)
    assert row.provider_time is None


def test_lone_part_of_a_concatenated_sms_is_marked_incomplete(client, settings: Settings) -> None:
    udh = bytes.fromhex("050003a70201")  # concatenation, reference 0xa7, part 1 of 2
    assert client.get(mo_url(b"KEMENHUB ADUAN bagian satu", udh=udh)).status_code == 200
    [row] = inbound_rows(settings)
    assert row.incomplete
    assert row.meta["part"] == "1/2"


def test_post_url_body_and_kannel_headers(client, settings: Settings) -> None:
    """smsbox's post-url: text as the body in its charset, sender in X-Kannel-From."""
    r = client.post(f"/sms/kannel?token={TOKEN}&id={KANNEL_ID}", data=UNICODE.encode("utf-16-be"),
                    headers={"Content-Type": 'text/plain; charset="UTF-16BE"', "X-Kannel-From": "+6281234567890",
                             "X-Kannel-To": "1708", "X-Kannel-SMSC": "TSEL", "X-Kannel-Coding": "2"})
    assert r.status_code == 200 and r.data == b""
    [row] = inbound_rows(settings)
    assert (row.sender, row.recipient, row.text) == ("+6281234567890", "1708", UNICODE)
    assert row.meta["coding"] == "2"


# --------------------------------------------------------------------------- authentication

@pytest.mark.parametrize(("url", "reason"), [
    (mo_url(token="wrong-token"), b"invalid token"),
    (mo_url(token=None), b"missing token"),
], ids=["wrong", "missing"])
def test_bad_token_is_403(client, settings: Settings, url: str, reason: bytes) -> None:
    r = client.get(url)
    assert r.status_code == 403
    assert reason in r.data
    assert inbound_rows(settings) == []


def test_no_configured_token_refuses_everything(env: dict[str, str]) -> None:
    from sms_gateway.web import create_app

    app = create_app(Settings({**env, "KANNEL_INBOUND_TOKEN": ""}))
    r = app.test_client().get(mo_url())
    assert r.status_code == 403
    assert b"KANNEL_INBOUND_TOKEN is not set" in r.data


def test_address_outside_the_allow_list_is_403(client, settings: Settings) -> None:
    r = client.get(mo_url(), environ_base={"REMOTE_ADDR": "10.20.30.40"},
                   headers={"X-Forwarded-For": "127.0.0.1"})  # forgeable: not trusted
    assert r.status_code == 403
    assert b"10.20.30.40 is not in KANNEL_ALLOWED_IPS" in r.data
    assert inbound_rows(settings) == []


@pytest.mark.parametrize(("allowed", "address", "status"), [
    ("10.20.0.0/16", "10.20.30.40", 200),
    ("10.20.0.0/16, 192.168.1.7", "192.168.1.7", 200),
    ("10.20.0.0/16", "10.21.0.1", 403),
    ("127.0.0.1,::1", "::ffff:127.0.0.1", 200),  # dual-stack listener
    ("127.0.0.1,::1", "::1", 200),
])
def test_allow_list_accepts_addresses_and_cidrs(env: dict[str, str], allowed: str, address: str,
                                                status: int) -> None:
    from sms_gateway.web import create_app

    app = create_app(Settings({**env, "KANNEL_ALLOWED_IPS": allowed}))
    r = app.test_client().get(mo_url(), environ_base={"REMOTE_ADDR": address})
    assert r.status_code == status


def test_broken_allow_list_stops_the_app_at_start(env: dict[str, str]) -> None:
    from sms_gateway.web import create_app

    with pytest.raises(ConfigError, match=r"KANNEL_ALLOWED_IPS: '10\.0\.0\.300'"):
        create_app(Settings({**env, "KANNEL_ALLOWED_IPS": "127.0.0.1,10.0.0.300"}))


# --------------------------------------------------------------------------- dedupe

def test_redelivery_with_the_same_kannel_id_is_stored_once(client, settings: Settings, work) -> None:
    assert client.get(mo_url()).status_code == 200
    assert client.get(mo_url()).status_code == 200  # Kannel after a crash: same %I
    assert len(inbound_rows(settings)) == 1
    work()
    with session_factory(settings.DATABASE_URL)() as session:
        assert len(session.scalars(select(OutboundMessage)).all()) == 1  # one ack, not two


def test_without_kannel_id_sender_text_and_time_window_dedupe(client, settings: Settings) -> None:
    assert client.get(mo_url(id="", time="1795800000")).status_code == 200
    assert client.get(mo_url(id="", time="1795800000")).status_code == 200  # redelivered
    assert len(inbound_rows(settings)) == 1
    # Same text, another number; and the same number an hour later: new SMS.
    assert client.get(mo_url(id="", time="1795800000", **{"from": "081298765432"})).status_code == 200
    assert client.get(mo_url(id="", time="1795803600")).status_code == 200
    rows = inbound_rows(settings)
    assert len(rows) == 3
    assert all(r.external_id.startswith("sha256:") for r in rows)


def test_without_id_or_time_our_clock_gives_the_window(client, settings: Settings) -> None:
    with time_machine.travel(datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC), tick=False) as clock:
        assert client.get(mo_url(id="", time="")).status_code == 200
        clock.shift(60)
        assert client.get(mo_url(id="", time="")).status_code == 200
        assert len(inbound_rows(settings)) == 1
        clock.shift(settings.KANNEL_DEDUPE_WINDOW)
        assert client.get(mo_url(id="", time="")).status_code == 200
        assert len(inbound_rows(settings)) == 2


# --------------------------------------------------------------------------- delivery reports

def make_outbound(settings: Settings, state: str = "sent") -> int:
    with session_factory(settings.DATABASE_URL)() as session:
        row = queue_reply(session, key=f"test:{state}", channel="kannel", recipient="+6281234567890",
                          text="Laporan diterima", purpose="ack")
        row.state = state
        session.commit()
        return row.id


def dlr(client, outbound_id: int | str, code: int | str, answer: str = "", token: str = TOKEN):  # type: ignore[no-untyped-def]
    return client.get(f"/sms/kannel/dlr?token={token}&id={outbound_id}&status={code}"
                      f"&answer={quote(answer)}&smsc=TSEL&time=1795800000")


DLR_TABLE = [
    # (Kannel DLR type, our state, provider_status)
    (1, "delivered", "1 delivered"),
    (2, "undelivered", "2 undelivered"),
    (4, "sent", "4 queued"),
    (8, "sent", "8 smsc-accepted"),
    (16, "failed", "16 smsc-rejected"),
]


def test_dlr_table_covers_every_kannel_type() -> None:
    assert {code: t.state for code, t in DLR_TYPES.items()} == {c: s for c, s, _ in DLR_TABLE}


@pytest.mark.parametrize(("code", "state", "raw"), DLR_TABLE)
def test_dlr_maps_to_outbound_state(client, settings: Settings, code: int, state: str, raw: str) -> None:
    outbound_id = make_outbound(settings, "sending")
    r = dlr(client, outbound_id, code, answer="NACK/0x0000000b/Invalid Destination" if code in (2, 16) else "ACK/")
    assert r.status_code == 200 and r.data == b""
    row = outbound_row(settings, outbound_id)
    assert (row.state, row.provider_status) == (state, raw)
    if state in ("undelivered", "failed"):
        assert row.error_code == f"dlr-{code}"
        assert "Invalid Destination" in (row.error or "")
    else:
        assert row.error is None
    assert (row.delivered_at is not None) == (state == "delivered")


def test_dlr_never_moves_a_message_backwards(client, settings: Settings) -> None:
    outbound_id = make_outbound(settings)
    assert dlr(client, outbound_id, 1).status_code == 200
    assert dlr(client, outbound_id, 8).status_code == 200  # arrives late
    assert outbound_row(settings, outbound_id).state == "delivered"


def test_unknown_dlr_type_is_ignored(client, settings: Settings) -> None:
    outbound_id = make_outbound(settings)
    assert dlr(client, outbound_id, 3).status_code == 200
    assert outbound_row(settings, outbound_id).state == "sent"


@pytest.mark.parametrize(("outbound_id", "code", "token", "status"), [
    ("", 1, TOKEN, 400),
    ("abc", 1, TOKEN, 400),
    ("1", "%d", TOKEN, 400),  # the escape was not substituted
    ("1", 1, "wrong", 403),
])
def test_bad_dlr_request(client, settings: Settings, outbound_id: str, code: int | str, token: str,
                         status: int) -> None:
    make_outbound(settings)
    assert dlr(client, outbound_id, quote(str(code)), token=token).status_code == status
    assert outbound_row(settings, 1).state == "sent"


# --------------------------------------------------------------------------- sending

@pytest.fixture
def sender_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "KANNEL_SENDSMS_URL": "http://127.0.0.1:13013/cgi-bin/sendsms",
            "KANNEL_USERNAME": "gateway", "KANNEL_PASSWORD": "s3cret", "CONSOLE_CHANNELS": ""}


def test_sendsms_parameters(sender_env: dict[str, str]) -> None:
    channel = build(Settings(sender_env))
    gsm = channel.params(OutgoingSMS(outbound_id=42, recipient="+6281234567890", text="Laporan [1] diterima €"))
    assert gsm["coding"] == "0" and gsm["charset"] == "UTF-8"
    assert (gsm["from"], gsm["to"], gsm["dlr-mask"]) == ("1708", "+6281234567890", "31")
    assert "smsc" not in gsm
    dlr_url = urlsplit(gsm["dlr-url"])
    assert f"{dlr_url.scheme}://{dlr_url.netloc}" == sender_env["PUBLIC_BASE_URL"]
    assert dlr_url.path == "/sms/kannel/dlr"
    query = parse_qs(dlr_url.query)
    assert query["token"] == [TOKEN] and query["id"] == ["42"]
    assert "status=%d" in dlr_url.query and "answer=%A" in dlr_url.query

    pinned = build(Settings({**sender_env, "KANNEL_SMSC": "TSEL-SMPP"}))
    unicode = pinned.params(OutgoingSMS(outbound_id=43, recipient="+6281234567890", text="Terima kasih 🙏"))
    assert unicode["coding"] == "2"
    assert unicode["smsc"] == "TSEL-SMPP"


SENDSMS_ANSWERS = [
    # (HTTP status, body, None when sent, else retryable)
    (202, "0: Accepted for delivery", None),
    (202, "3: Queued for later delivery", None),
    (200, "0: Accepted for delivery\n", None),
    (403, "Authorization failed for sendsms", False),
    (400, "Missing receiver number, rejected", False),
    (403, "Not routable. Do not try again.", False),
    (503, "Temporal failure, try again later.", True),
    (500, "", True),
    (202, "<html>proxy page</html>", False),
]


@pytest.mark.parametrize(("status", "body", "retryable"), SENDSMS_ANSWERS)
def test_sendsms_answers(status: int, body: str, retryable: bool | None) -> None:
    if retryable is None:
        sendsms_outcome(status, body)
        return
    with pytest.raises(SendError) as exc:
        sendsms_outcome(status, body)
    assert exc.value.retryable is retryable
    assert exc.value.code == f"http-{status}"


def test_unreachable_smsbox_is_retryable_and_hides_the_password(sender_env: dict[str, str]) -> None:
    port = free_port()
    channel = build(Settings({**sender_env, "KANNEL_SENDSMS_URL": f"http://127.0.0.1:{port}/cgi-bin/sendsms",
                              "SEND_TIMEOUT": "2"}))
    with pytest.raises(SendError) as exc:
        channel.send(OutgoingSMS(outbound_id=1, recipient="+6281234567890", text="tes"))
    assert exc.value.retryable and exc.value.code == "network"
    assert "s3cret" not in exc.value.reason
    assert f"127.0.0.1:{port}" in exc.value.reason


def test_replies_go_to_the_console_only_when_the_operator_says_so(env: dict[str, str],
                                                                  sender_env: dict[str, str]) -> None:
    with pytest.raises(NotConfigured):
        build(Settings(env))
    assert reply_channel("kannel", Settings(env)) == "console"  # CONSOLE_CHANNELS=kannel
    unconfigured = Settings({**env, "CONSOLE_CHANNELS": ""})
    assert reply_channel("kannel", unconfigured) == "kannel"  # no silent fallback: a send fails visibly
    with pytest.raises(SendError) as exc:
        get_channel("kannel", unconfigured)
    assert not exc.value.retryable and "KANNEL_SENDSMS_URL" in exc.value.reason
    assert reply_channel("kannel", Settings(sender_env)) == "kannel"
    assert isinstance(build(Settings(sender_env)), KannelChannel)


@pytest.mark.parametrize("dlr_timing", ["before-answer", "after-answer"])
def test_delivery_report_racing_the_sendsms_answer_is_kept(env: dict[str, str], redis_conn,  # type: ignore[no-untyped-def]
                                                           dlr_timing: str) -> None:
    """A fast SMSC's DLR reaches us before, or just after, smsbox answers sendsms:
    our "sent" must never overwrite its "delivered"."""
    import threading

    from werkzeug.serving import make_server

    from sms_gateway.config import set_settings
    from sms_gateway.web import create_app
    from tests.conftest import run_jobs

    port = free_port()
    settings = Settings({**env, "KANNEL_SENDSMS_URL": f"http://127.0.0.1:{port}/cgi-bin/sendsms",
                         "KANNEL_USERNAME": "gateway", "KANNEL_PASSWORD": "s3cret"})
    gateway = create_app(settings).test_client()
    dlr_threads: list[threading.Thread] = []
    answers: list[int] = []

    def deliver(path: str) -> None:
        answers.append(gateway.get(path).status_code)

    def smsbox(environ, start_response):  # type: ignore[no-untyped-def]
        dlr_url = urlsplit(parse_qs(environ["QUERY_STRING"])["dlr-url"][0])
        path = f"{dlr_url.path}?" + dlr_url.query.replace("%d", "1").replace("%A", "").replace(
            "%i", "FAKE").replace("%T", "0")
        if dlr_timing == "before-answer":
            deliver(path)
        else:  # as smsbox does: the DLR is fetched by another thread while the answer goes out
            dlr_threads.append(threading.Thread(target=deliver, args=(path,)))
            dlr_threads[-1].start()
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [b"0: Accepted for delivery"]

    server = make_server("127.0.0.1", port, smsbox, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ids = []
    try:
        set_settings(settings)
        with session_factory(settings.DATABASE_URL)() as session:
            for n in range(20):
                row = queue_reply(session, key=f"race-{n}", channel="kannel", recipient="+6281234567890",
                                  text="Laporan diterima", purpose="ack")
                ids.append(row.id)
            session.commit()
            for row_id in ids:
                outbound = session.get(OutboundMessage, row_id)
                assert outbound is not None
                dispatch(settings, [outbound])
        run_jobs(settings)
        for thread in dlr_threads:
            thread.join(10)
    finally:
        server.shutdown()
        set_settings(None)
    assert answers == [200] * 20
    states = [outbound_row(settings, i).state for i in ids]
    assert states == ["delivered"] * 20
