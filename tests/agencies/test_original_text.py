"""What the citizen typed is what agencies read: the stored report text is byte-exact.

Parsing matches on NFKC (full-width letters, ligatures); the report keeps ``½``,
``…`` and ``ﬁ`` as sent, through the API, Open311 and the reporter's BALAS.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from sms_gateway.models import InboundMessage, Report
from sms_gateway.parsing import _original_by_runs, original_body, parse
from tests.channels.test_twilio import only
from tests.test_flow import text_sms

TYPED = "bus di Jl. Merdeka No. 1½ … masih angkut pemudik, kaﬁlah ＢＥＳＡＲ"


@pytest.mark.parametrize("prefix", ["KEMENHUB ADUAN ", "ｋｅｍｅｎｈｕｂ：ａｄｕａｎ  "])
def test_the_report_text_is_stored_exactly_as_typed(client, settings, work, prefix: str) -> None:
    text_sms(client, work, f"{prefix}{TYPED}  ")
    report = only(settings, Report)
    assert report.agency == "KEMENHUB" and report.kind == "aduan"  # matched on NFKC as before
    assert report.text.encode() == TYPED.encode()
    assert only(settings, InboundMessage).text == f"{prefix}{TYPED}  "


def test_agencies_and_open311_read_it_as_typed(client, settings, work, api_as) -> None:
    text_sms(client, work, f"KEMENHUB ADUAN {TYPED}")
    number = only(settings, Report).tracking_number
    assert api_as("KEMENHUB").get(f"/api/v1/reports/{number}").json["text"] == TYPED
    assert client.get(f"/open311/v2/requests/{number}.json").json[0]["description"] == TYPED


def test_the_mapping_back_keeps_matching_on_nfkc(settings) -> None:
    from sms_gateway.registry import registry_for

    registry = registry_for(settings)
    for raw in ("PLN ADUAN Café e\u0301 mati", "LAPOR ﬁ ½", "  ½ lampu mati  ", "KEMENHUB ADUAN 한국어 가"):
        parsed = parse(raw, registry)
        exact = original_body(raw, parsed.body)
        assert parse(exact, registry).body == parsed.body or parsed.agency is not None
        assert exact in raw


@settings_(max_examples=300, deadline=None)
@given(raw=st.text(alphabet=st.characters(max_codepoint=127), max_size=60), cut=st.integers(0, 60))
def test_the_ascii_shortcut_reads_as_the_general_way(raw: str, cut: int) -> None:
    # Most SMS are ASCII and skip the run-by-run NFKC mapping; it must give the same answer.
    for body in (raw.strip()[cut:], raw[cut:], raw.rstrip()[cut:] + "x"):
        if body:  # an empty body is answered before either way is taken
            assert original_body(raw, body) == _original_by_runs(raw, body)
