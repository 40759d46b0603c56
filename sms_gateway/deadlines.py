"""Deadlines in Indonesian working days (Asia/Jakarta, public holidays and collective leave).

The ``holidays`` package knows Indonesia's public holidays and, in its
GOVERNMENT category, the collective leave (cuti bersama) civil servants take.
The government changes collective leave by decree during the year, sometimes
weeks before the day; ``HOLIDAYS_OVERRIDE_FILE`` records such changes until the
package catches up (days added, days given back as working days). The file is
re-read when it changes; a broken edit is logged with ``file:line: problem``
and the last good version stays in force.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

from .config import get_settings
from .yamlfile import LineDict, LineList, YamlProblem, load

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Overrides:
    """Decree changes: days off added (date -> name) and holidays given back as working days."""

    added: dict[date, str] = field(default_factory=dict)
    removed: dict[date, str] = field(default_factory=dict)


class OverrideError(ValueError):
    """The override file has problems; ``problems`` lists each as ``YamlProblem``."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


def _as_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def parse_overrides(path: str | Path, text: str | None = None) -> Overrides:
    """Read an override file (``add:``/``remove:`` lists of ``date:`` entries); raise ``OverrideError``."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8") if text is None else text
        data = load(path, text)
    except OSError as exc:
        raise OverrideError([YamlProblem(path, None, f"cannot read: {exc}")]) from None
    except YamlProblem as exc:
        raise OverrideError([exc]) from None
    if data is None:
        return Overrides()
    problems: list[YamlProblem] = []
    if not isinstance(data, LineDict):
        raise OverrideError([YamlProblem(path, 1, "expected a mapping with add: and remove: lists")])
    found: dict[str, dict[date, str]] = {"add": {}, "remove": {}}
    seen: dict[date, int] = {}
    for key in data:
        if key not in found:
            problems.append(YamlProblem(path, data.line_of(key), f"unknown key {key!r} (expected add, remove)"))
    for key, label in (("add", "name"), ("remove", "reason")):
        node = data.get(key)
        if node is None:
            continue
        if not isinstance(node, LineList):
            problems.append(YamlProblem(path, data.line_of(key), f"{key}: must be a list of entries "
                                        f"(- date: YYYY-MM-DD, {label}: ...)"))
            continue
        for i, item in enumerate(node):
            line = node.line_of(i)
            if not isinstance(item, LineDict) or "date" not in item:
                problems.append(YamlProblem(path, line, f"{key}: each entry needs date: YYYY-MM-DD"))
                continue
            for k in item:
                if k not in ("date", label):
                    problems.append(YamlProblem(path, item.line_of(k),
                                                f"{key}: unknown key {k!r} (expected date, {label})"))
            day = _as_date(item["date"])
            if day is None:
                problems.append(YamlProblem(path, item.line_of("date"),
                                            f"{key}: {item['date']!r} is not a date (YYYY-MM-DD)"))
                continue
            if key == "add" and not str(item.get("name") or "").strip():
                problems.append(YamlProblem(path, line, f"add: {day} needs a name (the decree's wording)"))
                continue
            if day in seen:
                problems.append(YamlProblem(path, item.line_of("date"),
                                            f"{day} is listed twice (first on line {seen[day]})"))
                continue
            seen[day] = item.line_of("date")
            found[key][day] = str(item.get(label) or "").strip()
    if problems:
        raise OverrideError(problems)
    return Overrides(added=found["add"], removed=found["remove"])


class _OverrideHolder:
    """The overrides in force; re-reads the file when it changes, keeps the last good version."""

    def __init__(self, check_interval: float = 1.0) -> None:
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._key: tuple[str, float, int] | None = None
        self._value = Overrides()
        self._loaded = False
        self._checked = 0.0

    def get(self, path: str | None) -> Overrides:
        now = time.monotonic()
        if self._loaded and now - self._checked < self.check_interval and self._key and self._key[0] == (path or ""):
            return self._value
        with self._lock:
            self._checked = now
            try:
                st = Path(path).stat() if path else None
            except OSError:
                st = None
            key = (path or "", st.st_mtime if st else 0.0, st.st_size if st else -1)
            if self._loaded and key == self._key:
                return self._value
            if st is None:
                value = Overrides()  # no file: the holidays package alone
            else:
                try:
                    value = parse_overrides(str(path))
                except OverrideError as exc:
                    if not self._loaded or (self._key and self._key[0] != (path or "")):
                        raise
                    log.error("holiday override file has errors; keeping the last good version:\n%s", exc)
                    self._key = key
                    return self._value
            self._key, self._value, self._loaded = key, value, True
            return value


_OVERRIDES = _OverrideHolder()


def overrides() -> Overrides:
    """Decree changes in force (from ``HOLIDAYS_OVERRIDE_FILE``)."""
    return _OVERRIDES.get(get_settings().HOLIDAYS_OVERRIDE_FILE)


def holiday_name(day: date) -> str | None:
    """Why ``day`` is a day off (holiday or collective leave), or None."""
    changes = overrides()
    if day in changes.removed:
        return None
    if day in changes.added:
        return changes.added[day]
    return _holidays(day.year).get(day)


def holidays_in(year: int) -> dict[date, str]:
    """Every day off of ``year`` on weekdays and weekends, overrides applied."""
    changes = overrides()
    days = {d: n for d, n in _holidays(year).items() if d not in changes.removed}
    days.update({d: n for d, n in changes.added.items() if d.year == year})
    return dict(sorted(days.items()))


def is_working_day(day: date) -> bool:
    """Monday to Friday and neither a public holiday nor collective leave."""
    return day.weekday() < 5 and holiday_name(day) is None


def today() -> date:
    """Today's date in Jakarta."""
    return local_date(datetime.now(UTC))


def local_date(moment: datetime) -> date:
    """Calendar date in Jakarta of an aware datetime."""
    return moment.astimezone(JAKARTA).date()


def add_working_days(start: datetime | date, days: int) -> date:
    """The date ``days`` working days after the day of ``start`` (Jakarta time).

    A report received on a Tuesday with 1 working day is due on Wednesday; one
    received on a holiday or a weekend starts counting on the next working day.
    ``start`` may also be a calendar date (a deadline to extend).
    """
    day = local_date(start) if isinstance(start, datetime) else start
    global _MEMO_FOR
    changes = overrides()
    if changes is not _MEMO_FOR:  # a new override file changes every answer
        _MEMO.clear()
        _MEMO_FOR = changes
    due = _MEMO.get((day, days))
    if due is None:
        due = day
        added = 0
        while added < days:
            due += timedelta(days=1)
            if is_working_day(due):
                added += 1
        if len(_MEMO) < 100_000:
            _MEMO[(day, days)] = due
    return due


def working_days_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end`` (0 when ``end`` is not later)."""
    count = 0
    day = start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count


# Every report of a day shares its deadlines: computed once per (day, days).
_MEMO: dict[tuple[date, int], date] = {}
_MEMO_FOR: Overrides | None = None


def due_dates(received_at: datetime, special: bool) -> tuple[date, date]:
    """(disposition due, follow-up due) for a report received at ``received_at``."""
    disposition, followup = SPECIAL if special else ORDINARY
    return add_working_days(received_at, disposition), add_working_days(received_at, followup)
