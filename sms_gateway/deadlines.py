"""Deadlines in Indonesian working days (Asia/Jakarta, public holidays and collective leave)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

JAKARTA = ZoneInfo("Asia/Jakarta")

# Working days allowed, (disposition, follow-up): special categories (COVID-19
# impact, the 2021 homecoming ban) are handled faster.
ORDINARY = (3, 5)
SPECIAL = (1, 2)


@lru_cache(maxsize=64)
def _holidays(year: int) -> holidays.HolidayBase:
    # GOVERNMENT adds cuti bersama (collective leave), which civil servants do not work.
    return holidays.country_holidays(
        "ID", years=year, categories=(holidays.PUBLIC, holidays.GOVERNMENT)
    )


def is_working_day(day: date) -> bool:
    """Monday to Friday and neither a public holiday nor collective leave."""
    return day.weekday() < 5 and day not in _holidays(day.year)


def local_date(moment: datetime) -> date:
    """Calendar date in Jakarta of an aware datetime."""
    return moment.astimezone(JAKARTA).date()


def add_working_days(start: datetime, days: int) -> date:
    """The date ``days`` working days after the day of ``start`` (Jakarta time).

    A report received on a Tuesday with 1 working day is due on Wednesday; one
    received on a holiday or a weekend starts counting on the next working day.
    """
    day = local_date(start)
    added = 0
    while added < days:
        day += timedelta(days=1)
        if is_working_day(day):
            added += 1
    return day


def due_dates(received_at: datetime, special: bool) -> tuple[date, date]:
    """(disposition due, follow-up due) for a report received at ``received_at``."""
    disposition, followup = SPECIAL if special else ORDINARY
    return add_working_days(received_at, disposition), add_working_days(received_at, followup)
