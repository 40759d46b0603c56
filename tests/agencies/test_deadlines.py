"""Working-day deadlines: weekends, Idul Fitri 2021, collective leave, and the decree override file."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from sms_gateway import deadlines
from sms_gateway.cli import main
from sms_gateway.config import Settings, set_settings

WIB = ZoneInfo("Asia/Jakarta")


@pytest.fixture
def override(tmp_path: Path) -> Iterator[Path]:
    """An override file of our own, installed as HOLIDAYS_OVERRIDE_FILE (empty to start with)."""
    path = tmp_path / "override.yaml"
    path.write_text("add: []\nremove: []\n")
    set_settings(Settings({"HOLIDAYS_OVERRIDE_FILE": str(path)}))
    deadlines._OVERRIDES.check_interval = 0  # see edits at once
    yield path
    deadlines._OVERRIDES.check_interval = 1.0
    set_settings(None)


def write(path: Path, text: str) -> None:
    """Rewrite the file so that its mtime or size changes even within the same second."""
    path.write_text(text)
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=WIB)  # type: ignore[misc]


@pytest.mark.usefixtures("override")
class TestArithmetic:
    def test_special_report_on_tuesday_before_idul_fitri_2021_is_due_monday(self) -> None:
        # Wed 12 May collective leave, Thu 13 Ascension + Idul Fitri, Fri 14 Idul Fitri, then the weekend.
        assert deadlines.due_dates(at(2021, 5, 11, 10), special=True) == (date(2021, 5, 17), date(2021, 5, 18))

    def test_ordinary_report_on_the_same_tuesday(self) -> None:
        assert deadlines.due_dates(at(2021, 5, 11, 10), special=False) == (date(2021, 5, 19), date(2021, 5, 21))

    def test_idul_fitri_2021_days_off(self) -> None:
        assert [deadlines.is_working_day(date(2021, 5, d)) for d in range(10, 19)] == [
            True, True, False, False, False, False, False, True, True]
        assert "Joint" in (deadlines.holiday_name(date(2021, 5, 12)) or "")  # cuti bersama, GOVERNMENT category

    def test_collective_leave_around_idul_fitri_2025(self) -> None:
        # Fri 28 Mar Nyepi leave, 31 Mar-1 Apr Idul Fitri, 2-4 and 7 Apr collective leave.
        assert deadlines.due_dates(at(2025, 3, 27, 9), special=True) == (date(2025, 4, 8), date(2025, 4, 9))

    def test_weekends_are_skipped(self) -> None:
        assert deadlines.add_working_days(at(2021, 6, 4, 16), 1) == date(2021, 6, 7)  # Fri -> Mon
        assert deadlines.add_working_days(at(2021, 6, 4, 16), 5) == date(2021, 6, 11)
        assert deadlines.add_working_days(at(2021, 6, 2, 9), 3) == date(2021, 6, 7)  # Wed -> Mon (Tue 1 Jun holiday)

    def test_a_report_received_on_a_weekend_starts_counting_on_monday(self) -> None:
        assert deadlines.add_working_days(at(2021, 6, 5, 11), 1) == date(2021, 6, 7)  # Sat -> Mon
        assert deadlines.add_working_days(at(2021, 6, 6, 23), 2) == date(2021, 6, 8)  # Sun -> Tue

    def test_the_day_is_the_day_in_jakarta_not_in_utc(self) -> None:
        # 17:30 UTC on Monday 10 May is 00:30 on Tuesday 11 May in Jakarta.
        received = datetime(2021, 5, 10, 17, 30, tzinfo=ZoneInfo("UTC"))
        assert deadlines.local_date(received) == date(2021, 5, 11)
        assert deadlines.due_dates(received, special=True)[0] == date(2021, 5, 17)

    def test_a_deadline_date_can_be_extended(self) -> None:
        assert deadlines.add_working_days(date(2021, 5, 11), 1) == date(2021, 5, 17)


class TestOverrideFile:
    def test_a_day_added_by_decree_is_a_day_off(self, override: Path) -> None:
        assert deadlines.due_dates(at(2021, 6, 7, 9), special=True)[0] == date(2021, 6, 8)
        write(override, "add:\n  - date: 2021-06-08\n    name: Cuti bersama (SKB contoh)\n")
        assert not deadlines.is_working_day(date(2021, 6, 8))
        assert deadlines.holiday_name(date(2021, 6, 8)) == "Cuti bersama (SKB contoh)"
        assert deadlines.due_dates(at(2021, 6, 7, 9), special=True)[0] == date(2021, 6, 9)
        assert date(2021, 6, 8) in deadlines.holidays_in(2021)

    def test_collective_leave_given_back_is_a_working_day(self, override: Path) -> None:
        write(override, "remove:\n  - date: 2021-05-12\n    reason: cuti bersama dibatalkan\n")
        assert deadlines.is_working_day(date(2021, 5, 12))
        assert deadlines.due_dates(at(2021, 5, 11, 10), special=True)[0] == date(2021, 5, 12)
        assert date(2021, 5, 12) not in deadlines.holidays_in(2021)

    def test_a_broken_edit_keeps_the_last_good_version_and_says_where(
            self, override: Path, caplog: pytest.LogCaptureFixture) -> None:
        write(override, "add:\n  - date: 2021-06-08\n    name: Cuti bersama\n")
        assert not deadlines.is_working_day(date(2021, 6, 8))
        write(override, "add:\n  - date: 2021-06-08\n    name: Cuti bersama\n  - date: 2021-13-01\n    name: x\n")
        with caplog.at_level(logging.ERROR):
            assert not deadlines.is_working_day(date(2021, 6, 8))
        assert f"{override}:4: '2021-13-01' is not a valid date" in caplog.text

    @pytest.mark.parametrize(("text", "line", "problem"), [
        ("add:\n  - date: 2021-06-08\n", 2, "add: 2021-06-08 needs a name"),
        ("add:\n  - day: 2021-06-08\n", 2, "each entry needs date"),
        ("remove:\n  - date: 2021-05-12\n  - date: 2021-05-12\n", 3, "2021-05-12 is listed twice (first on line 2)"),
        ("add:\n  - date: 2021-05-12\n    name: x\nremove:\n  - date: 2021-05-12\n", 5, "listed twice"),
        ("holidays: []\n", 1, "unknown key 'holidays'"),
        ("add: 2021-05-12\n", 1, "add: must be a list"),
        ("remove:\n  - date: 2021-05-12\n    nama: x\n", 3, "unknown key 'nama'"),
        ("add: [\n", None, ""),
    ])
    def test_problems_name_file_and_line(self, tmp_path: Path, text: str, line: int | None, problem: str) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(deadlines.OverrideError) as info:
            deadlines.parse_overrides(path)
        rendered = info.value.problems[0].render()
        assert rendered.startswith(f"{path}:{line}:" if line else f"{path}:")
        assert problem in rendered

    def test_a_missing_file_means_no_changes(self, tmp_path: Path) -> None:
        set_settings(Settings({"HOLIDAYS_OVERRIDE_FILE": str(tmp_path / "none.yaml")}))
        try:
            assert not deadlines.is_working_day(date(2021, 5, 12))
        finally:
            set_settings(None)

    def test_cli_check_and_holidays(self, override: Path, tmp_path: Path) -> None:
        runner = CliRunner()
        write(override, "add:\n  - date: 2021-06-08\n    name: Cuti bersama contoh\n")
        ok = runner.invoke(main, ["deadlines", "check"])
        assert ok.exit_code == 0 and "1 day(s) added" in ok.output
        listed = runner.invoke(main, ["deadlines", "holidays", "2021"])
        assert "2021-05-12 Wed" in listed.output and "2021-06-08 Tue Cuti bersama contoh" in listed.output
        due = runner.invoke(main, ["deadlines", "due", "2021-05-11", "--special"])
        assert "disposition 2021-05-17 Mon" in due.output
        bad = tmp_path / "bad.yaml"
        bad.write_text("add:\n  - date: nope\n    name: x\n")
        result = runner.invoke(main, ["deadlines", "check", str(bad)])
        assert result.exit_code == 1 and f"{bad}:2: add: 'nope' is not a date" in result.output

    def test_the_shipped_override_file_is_valid(self) -> None:
        from sms_gateway.config import PROJECT_ROOT

        deadlines.parse_overrides(PROJECT_ROOT / "holidays_override.yaml")
