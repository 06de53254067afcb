"""Holiday calendars for the SQL: ``ref.calendar``, one row per country and special day.

Traffic, sales and viewing follow the calendar: days off, the working weekends that pay for
them, shopping festivals. The statutory calendar comes from the maintained ``holidays``
library (python-holidays: each country's days off, updated as governments announce them),
never from a list typed here. What no government declares, the commercial festivals, is
listed in :data:`SHOPPING_FESTIVALS`.

A pipeline declares the countries it needs (``Pipeline.calendars``); the features step writes
``ref.calendar`` for them before the pipeline's SQL runs, which joins it on ``day``:

| column | meaning |
|---|---|
| country | ISO code (``CN``) |
| day | the date |
| kind | ``holiday`` (a statutory day off, substituted days off included), ``workday_shift`` (a weekend day made a working day to pay for a bridge: China's 调休), or ``festival`` (a shopping festival) |
| name | the holiday's or festival's English name |

A day may hold several rows (a festival on a holiday). China's working weekends are not a
category of the library; each substituted day off names the weekend day it was "substituted
from", which is read from its name (English names, so the text is stable).
"""  # noqa: E501 - the table reads better unwrapped

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import duckdb

# Shopping festivals per country: (month, day, name). China's three platform festivals: 618
# (JD's anniversary sale), Double 11 (Singles' Day, the year's largest) and Double 12.
SHOPPING_FESTIVALS: dict[str, tuple[tuple[int, int, str], ...]] = {
    "CN": ((6, 18, "618 shopping festival"), (11, 11, "Double 11"), (12, 12, "Double 12")),
}
KINDS = ("holiday", "workday_shift", "festival")
FIRST_YEAR = 2000  # the calendar covers FIRST_YEAR .. the run's year + 1

_SUBSTITUTED = re.compile(r"substituted from (\d{2})/(\d{2})/(\d{4})")


class CalendarError(ValueError):
    """A calendar the holidays library does not know."""


def calendar_rows(country: str, years: Iterable[int]) -> list[tuple[str, dt.date, str, str]]:
    """(country, day, kind, name) for every special day of ``country`` in ``years``, sorted."""
    import holidays

    years = list(years)
    try:
        days = holidays.country_holidays(country, years=years, language="en_US")
    except NotImplementedError as exc:
        raise CalendarError(f"the holidays library has no calendar for {country!r}") from exc
    rows = set()
    for day, names in days.items():
        for name in names.split("; "):
            rows.add((country, day, "holiday", name))
            shifted = _SUBSTITUTED.search(name)
            if shifted:
                month, mday, year = (int(g) for g in shifted.groups())
                rows.add((country, dt.date(year, month, mday), "workday_shift", name))
    for year in years:
        for month, mday, name in SHOPPING_FESTIVALS.get(country, ()):
            rows.add((country, dt.date(year, month, mday), "festival", name))
    return sorted(rows)


def refresh(con: duckdb.DuckDBPyConnection, countries: Iterable[str], last_year: int) -> int:
    """Replace ``ref.calendar`` with the calendars of ``countries`` from FIRST_YEAR through
    ``last_year``; returns its rows."""
    years = range(FIRST_YEAR, last_year + 1)
    rows = [row for country in sorted(set(countries)) for row in calendar_rows(country, years)]
    con.execute("create schema if not exists ref")
    con.execute(
        "create or replace table ref.calendar "
        "(country varchar not null, day date not null, kind varchar not null, name varchar)"
    )
    if rows:
        con.executemany("insert into ref.calendar values (?, ?, ?, ?)", rows)
    return len(rows)
