"""The rules page: the registry with lines, coba teks, backtests as RQ jobs, applying with RULES_EDITABLE."""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from sms_gateway import queue as q
from sms_gateway.config import Settings, set_settings
from sms_gateway.db import session_factory
from sms_gateway.models import RuleBacktest, RuleChange
from sms_gateway.registry import forget_registries, registry_for
from tests.rules.test_backtest import proposed_text, store

CENTRAL = "pusat@lapor.go.id"


def run_worker(settings: Settings) -> None:
    queue = q.get_queue(settings, q.DEFAULT)
    SimpleWorker([queue], connection=q.get_redis(settings)).work(burst=True, with_scheduler=False)


def start(ws: Any, text: str, days: int = 30) -> Any:
    return ws.post("/rules/backtests", {"rules_text": text, "days": str(days)})


def test_the_page_shows_every_agency_with_aliases_rules_and_lines(central: Any, settings: Settings) -> None:
    page = central.get("/rules")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    lines = Path(settings.PREFIXES_FILE).read_text(encoding="utf-8").splitlines()
    kemenhub = next(i for i, line in enumerate(lines, 1) if line.startswith("  KEMENHUB:"))
    ojol = next(i for i, line in enumerate(lines, 1) if "damri, ojol" in line)
    rule = max(i for i in range(1, ojol + 1) if lines[i - 1].strip().startswith("- name:"))
    assert f"prefixes.yaml:{kemenhub}" in html and f"prefixes.yaml:{rule}" in html
    assert ">DEPHUB<" in html and ">ojol<" in html
    for code in registry_for(settings).agencies:
        assert f'id="ag-{code}"' in html

    found = central.get("/rules?q=ojol", headers={"HX-Request": "true", "HX-Target": "registry"})
    fragment = found.get_data(as_text=True)
    assert fragment.startswith('<div id="registry">') and 'id="ag-KEMENHUB"' in fragment
    assert 'id="ag-PLN"' not in fragment and '<span class="kw hit">ojol</span>' in fragment


def test_coba_teks_shows_the_decision_with_its_evidence(central: Any) -> None:
    out = central.post("/rules/try", {"text": "listrik padam sejak pagi"}, headers={"HX-Request": "true"})
    html = out.get_data(as_text=True)
    assert out.status_code == 200 and html.startswith('<div id="try-result"')
    assert "PT PLN (Persero) (PLN)" in html and "<mark>listrik</mark>" in html and "+3" in html
    assert re.search(r"prefixes\.yaml:\d+", html)

    typo = central.post("/rules/try", {"text": "jalan rusak parah di jatiasih"}, headers={"HX-Request": "true"})
    assert "DBMSDABEKASI" in typo.get_data(as_text=True)
    central_queue = central.post("/rules/try", {"text": "kucing tetangga berisik tiap malam"},
                                 headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Antrean pusat" in central_queue and "no rule matched" in central_queue
    command = central.post("/rules/try", {"text": "CEK 12345671"}, headers={"HX-Request": "true"})
    assert "Perintah STATUS" in command.get_data(as_text=True)
    whole = central.post("/rules/try", {"text": "listrik padam"})  # without htmx: the whole page
    assert "<h1>Aturan routing</h1>" in whole.get_data(as_text=True)


def test_a_backtest_runs_as_a_job_and_its_result_stays_viewable(central: Any, settings: Settings,
                                                                  redis_conn: Any) -> None:
    store(settings, now=datetime.now(UTC))
    base = Path(settings.PREFIXES_FILE).read_text(encoding="utf-8")
    response = start(central, proposed_text(base))
    assert response.status_code == 302
    url = response.headers["Location"]
    backtest_id = int(url.rsplit("/", 1)[1])
    waiting = central.get(url).get_data(as_text=True)
    assert "Menunggu pekerja" in waiting and 'hx-trigger="every 1s"' in waiting
    from rq.job import Job

    assert Job.fetch(f"backtest-{backtest_id}", connection=q.get_redis(settings)).timeout == 3 * 3600

    run_worker(settings)
    status = central.get(f"/rules/backtests/{backtest_id}/status", headers={"HX-Request": "true"})
    assert status.headers.get("HX-Refresh") == "true"
    html = central.get(url).get_data(as_text=True)
    assert "every 1s" not in html
    assert re.search(r'class="t-moved"><strong>3</strong>', html)
    assert re.search(r'class="t-unrouted"><strong>2</strong>', html)
    assert re.search(r'class="t-routed"><strong>1</strong>', html)
    assert "2/3 = 66.7%" in html and "1/3 = 33.3%" in html
    assert "+      - name: backtest sampah" in html  # the diff
    example = re.search(r'href="(/rules/backtests/\d+/texts/\d+)">sampah numpuk', html)
    assert example
    both = central.get(example.group(1)).get_data(as_text=True)
    assert "PEMKOTBEKASI" in both and "PT PLN (Persero) (PLN)" in both

    with session_factory(settings.DATABASE_URL)() as session:
        row = session.get(RuleBacktest, backtest_id)
        assert row is not None and row.state == "done" and row.done == row.total == 11
        assert row.actor == CENTRAL and row.params["days"] == 30
        first = row.result
    # Idempotent: the same job again changes nothing.
    from sms_gateway import jobs

    set_settings(settings)
    assert jobs.run_backtest(backtest_id) == "already done"
    with session_factory(settings.DATABASE_URL)() as session:
        again = session.get(RuleBacktest, backtest_id)
        assert again is not None and again.result == first and again.state == "done"


def test_a_broken_file_is_refused_with_its_line(central: Any, settings: Settings) -> None:
    base = Path(settings.PREFIXES_FILE).read_text(encoding="utf-8")
    broken = proposed_text(base).replace("        weight: 9\n", "        weight: sembilan\n")
    line = broken.splitlines().index("        weight: sembilan") + 1
    response = start(central, broken)
    assert response.status_code == 422
    assert f"prefixes.yaml:{line}: " in response.get_data(as_text=True)
    uploaded = central.post("/rules/backtests", {"rules_file": (io.BytesIO(broken.encode()), "edited.yaml"),
                                                 "days": "30"}, content_type="multipart/form-data")
    assert uploaded.status_code == 422 and f"prefixes.yaml:{line}: " in uploaded.get_data(as_text=True)
    with session_factory(settings.DATABASE_URL)() as session:
        assert session.scalar(select(RuleBacktest)) is None


def _done_backtest(central: Any, settings: Settings) -> str:
    base = Path(settings.PREFIXES_FILE).read_text(encoding="utf-8")
    url = start(central, proposed_text(base)).headers["Location"]
    run_worker(settings)
    return str(url)


def test_without_rules_editable_writes_are_refused_and_the_diff_shown(central: Any, settings: Settings,
                                                                      redis_conn: Any) -> None:
    before = Path(settings.PREFIXES_FILE).read_text(encoding="utf-8")
    url = _done_backtest(central, settings)
    html = central.get(url).get_data(as_text=True)
    assert "RULES_EDITABLE" in html and "Terapkan ke prefixes.yaml" not in html and "@@" in html
    assert central.post(f"{url}/apply").status_code == 403
    assert Path(settings.PREFIXES_FILE).read_text(encoding="utf-8") == before


@pytest.fixture
def editable(env: dict[str, str]) -> dict[str, str]:
    env["RULES_EDITABLE"] = "1"
    return env


def test_with_rules_editable_the_file_is_written_with_a_backup_and_a_log(
        editable: dict[str, str], central: Any, settings: Settings, redis_conn: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    path = Path(settings.PREFIXES_FILE)
    before = path.read_text(encoding="utf-8")
    url = _done_backtest(central, settings)
    assert "Terapkan ke prefixes.yaml" in central.get(url).get_data(as_text=True)
    assert central.post(f"{url}/apply", csrf=False).status_code == 400  # CSRF
    assert path.read_text(encoding="utf-8") == before
    with caplog.at_level(logging.WARNING, logger="sms_gateway.rules.backtest"):
        response = central.post(f"{url}/apply")
    assert response.status_code == 302
    assert path.read_text(encoding="utf-8") == proposed_text(before)
    backups = list(path.parent.glob("prefixes.yaml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == before
    assert "by Admin Pusat <pusat@lapor.go.id>" in caplog.text
    with session_factory(settings.DATABASE_URL)() as session:
        change = session.scalar(select(RuleChange))
        assert change is not None and change.actor == CENTRAL and change.previous_text == before
    forget_registries()
    assert any(r.name == "backtest sampah" for r in __import__("sms_gateway.rules", fromlist=["engine_for"])
               .engine_for(registry_for(settings)).ruleset.rules)
    # The file changed since: applying the same backtest again is refused, nothing written.
    again = central.post(f"{url}/apply")
    assert again.status_code == 409 and "sudah berubah" in again.get_data(as_text=True)
    assert len(list(path.parent.glob("prefixes.yaml.*.bak"))) == 1


def test_only_central_admins_see_the_rules(people: Any, workspace: Any, central: Any, settings: Settings,
                                           redis_conn: Any) -> None:
    base = Path(settings.PREFIXES_FILE).read_text(encoding="utf-8")
    url = start(central, base).headers["Location"]
    for email, code, role in (("staff@dephub.go.id", "KEMENHUB", "staff"), ("admin@dephub.go.id", "KEMENHUB", "admin"),
                              ("pantau@kemendagri.go.id", "KEMENDAGRI", "coordinator")):
        people(email, agency=code, role=role)
        ws = workspace()
        assert ws.login(email).status_code == 302
        assert "/rules" not in ws.get("/").get_data(as_text=True)
        for path in ("/rules", url, f"{url}/status"):
            assert ws.get(path).status_code == 404
        assert ws.post("/rules/try", {"text": "listrik padam"}).status_code == 404
        assert ws.post("/rules/backtests", {"rules_text": base, "days": "30"}).status_code == 404
        assert ws.post(f"{url}/apply").status_code == 404
    anonymous = workspace()
    assert anonymous.get("/rules").status_code == 302


def test_a_lost_job_can_be_queued_again_and_forms_need_their_csrf_token(central: Any, settings: Settings,
                                                                       redis_conn: Any) -> None:
    store(settings, now=datetime.now(UTC))
    base = Path(settings.PREFIXES_FILE).read_text(encoding="utf-8")
    assert central.post("/rules/backtests", {"rules_text": base, "days": "30"}, csrf=False).status_code == 400
    assert central.post("/rules/try", {"text": "listrik padam"}, csrf=False).status_code == 400
    url = start(central, proposed_text(base)).headers["Location"]
    redis_conn.flushdb()  # the job is lost
    run_worker(settings)
    assert "Jalankan lagi" in central.get(url).get_data(as_text=True)
    assert central.post(f"{url}/run").status_code == 302
    run_worker(settings)
    html = central.get(url).get_data(as_text=True)
    assert re.search(r'class="t-moved"><strong>3</strong>', html) and "Jalankan lagi" not in html
    assert central.post(f"{url}/run").status_code == 302  # finished: nothing queued again
    assert q.get_queue(settings, q.DEFAULT).count == 0


def test_a_file_that_cannot_be_written_is_said_not_crashed(editable: dict[str, str], central: Any, settings: Settings,
                                                           redis_conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sms_gateway.rules import backtest

    url = _done_backtest(central, settings)

    def read_only(*_args: Any) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(backtest, "_write", read_only)
    response = central.post(f"{url}/apply")
    assert response.status_code == 409 and "Read-only file system" in response.get_data(as_text=True)
    with session_factory(settings.DATABASE_URL)() as session:
        assert session.scalar(select(RuleChange)) is None
