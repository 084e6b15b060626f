"""Ranking windows and their periods (UTC boundaries; weeks start on Monday).

A period is named by a short key that is part of its Redis keys: `a` (all
time), `d20261129`, `w2026-48` (ISO week), `m202611`. Everything here is pure
and works on milliseconds since the epoch; the clock is injected by callers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

DAY_MS = 86_400_000
ALL_TIME_KEY = "a"


class Window(enum.IntEnum):
    """Same numbers as leaderboard.v1.Window."""

    ALL_TIME = 1
    DAILY = 2
    WEEKLY = 3
    MONTHLY = 4


WINDOW_NAMES = {Window.DAILY: "daily", Window.WEEKLY: "weekly", Window.MONTHLY: "monthly"}
WINDOWS_BY_NAME = {name: window for window, name in WINDOW_NAMES.items()}


@dataclass(frozen=True, slots=True)
class Period:
    window: Window
    key: str
    start_ms: int  # inclusive; 0 for all-time
    end_ms: int | None  # exclusive; None for all-time


ALL_TIME = Period(Window.ALL_TIME, ALL_TIME_KEY, 0, None)


def _ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1000


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _start(window: Window, day: date) -> date:
    if window is Window.DAILY:
        return day
    if window is Window.WEEKLY:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _shift(window: Window, start: date, periods: int) -> date:
    if window is Window.DAILY:
        return start + timedelta(days=periods)
    if window is Window.WEEKLY:
        return start + timedelta(weeks=periods)
    return _add_months(start, periods)


def _key(window: Window, start: date) -> str:
    if window is Window.DAILY:
        return f"d{start:%Y%m%d}"
    if window is Window.WEEKLY:
        year, week, _ = start.isocalendar()
        return f"w{year}-{week:02d}"
    return f"m{start:%Y%m}"


@lru_cache(maxsize=4096)
def _period_of_day(window: Window, day_index: int) -> Period:
    start = _start(window, date(1970, 1, 1) + timedelta(days=day_index))
    return Period(window, _key(window, start), _ms(start), _ms(_shift(window, start, 1)))


def period_of(window: Window, t_ms: int) -> Period:
    """The period of `window` that contains the instant `t_ms`."""
    if window is Window.ALL_TIME:
        return ALL_TIME
    return _period_of_day(window, t_ms // DAY_MS)


@lru_cache(maxsize=4096)
def _expiry(window: Window, start_ms: int, retention: int) -> int:
    start = (datetime.fromtimestamp(start_ms / 1000, UTC)).date()
    return _ms(_shift(window, start, retention + 1))


def expires_at_ms(period: Period, retention: int) -> int | None:
    """When a period stops being readable: the end of the `retention`-th period after it
    (so the current period plus `retention` past ones are readable). None: never."""
    if period.window is Window.ALL_TIME:
        return None
    return _expiry(period.window, period.start_ms, retention)
