"""Holiday calendars (mlcore/calendars.py): China's statutory days off and the working weekends
that pay for them, from the holidays library; the shopping festivals; ``ref.calendar``."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from mlcore.calendars import FIRST_YEAR, KINDS, CalendarError, calendar_rows, refresh


@pytest.fixture(scope="module")
def china_2019() -> dict[dt.date, set[tuple[str, str]]]:
    """{day: {(kind, name)}} of China's 2019 calendar."""
    days: dict[dt.date, set[tuple[str, str]]] = {}
    for country, day, kind, name in calendar_rows("CN", [2019]):
        assert country == "CN"
        days.setdefault(day, set()).add((kind, name))
    return days


def _kinds(days, day: dt.date) -> set[str]:
    return {kind for kind, _ in days.get(day, ())}


def test_national_day_week_is_off_with_its_substituted_days(china_2019):
    week = [dt.date(2019, 10, d) for d in range(1, 8)]
    for day in week:
        # every day of the week is off: a statutory or substituted day off, or its weekend
        assert "holiday" in _kinds(china_2019, day) or day.weekday() >= 5, day
    for day in (dt.date(2019, 10, 1), dt.date(2019, 10, 2), dt.date(2019, 10, 3)):
        assert ("holiday", "National Day") in china_2019[day]
    # Friday the 4th and Monday the 7th are the days off paid for by two working weekend days
    assert ("holiday", "Day off (substituted from 09/29/2019)") in china_2019[dt.date(2019, 10, 4)]
    assert ("holiday", "Day off (substituted from 10/12/2019)") in china_2019[dt.date(2019, 10, 7)]


def test_the_weekend_days_worked_for_the_bridge_are_workday_shifts(china_2019):
    for day in (dt.date(2019, 9, 29), dt.date(2019, 10, 12)):  # a Sunday and a Saturday
        assert day.weekday() >= 5
        assert _kinds(china_2019, day) == {"workday_shift"}
        (_, name), *_ = china_2019[day]
        assert f"substituted from {day:%m/%d/%Y}" in name  # names the day off it pays for


def test_shopping_festivals_and_ordinary_days(china_2019):
    assert china_2019[dt.date(2019, 11, 11)] == {("festival", "Double 11")}
    assert ("festival", "618 shopping festival") in china_2019[dt.date(2019, 6, 18)]
    assert ("festival", "Double 12") in china_2019[dt.date(2019, 12, 12)]
    # an ordinary Tuesday and an ordinary Saturday have no row
    for day in (dt.date(2019, 10, 15), dt.date(2019, 10, 19)):
        assert day not in china_2019


def test_every_row_has_a_known_kind_and_a_name(china_2019):
    rows = [(day, kind, name) for day, found in china_2019.items() for kind, name in found]
    assert {kind for _, kind, _ in rows} == set(KINDS)
    assert all(day.year == 2019 and name for day, _, name in rows)


def test_refresh_writes_ref_calendar_and_replaces_it():
    con = duckdb.connect()
    n = refresh(con, ["CN"], 2020)
    columns = [
        (name, type_, nullable)
        for name, type_, nullable, *_ in con.execute("describe ref.calendar").fetchall()
    ]
    assert columns == [
        ("country", "VARCHAR", "NO"),
        ("day", "DATE", "NO"),
        ("kind", "VARCHAR", "NO"),
        ("name", "VARCHAR", "YES"),
    ]
    rows, first, last, years, countries, kinds = con.execute(
        "select count(*), min(day), max(day), count(distinct year(day)), list(distinct country), "
        "list(distinct kind order by kind) from ref.calendar"
    ).fetchone()
    assert rows == n > 0
    assert (first.year, last.year, years) == (FIRST_YEAR, 2020, 2020 - FIRST_YEAR + 1)
    assert countries == ["CN"]
    assert set(kinds) <= set(KINDS)
    assert con.execute(
        "select count(*) from ref.calendar where day = '2019-10-12' and kind = 'workday_shift'"
    ).fetchone() == (1,)

    # re-running replaces (a country named twice counts once): the same rows, not twice
    assert refresh(con, ["CN", "CN"], 2020) == n
    assert con.execute("select count(*) from ref.calendar").fetchone() == (n,)
    duplicates = con.execute(
        "select count(*) from (select country, day, kind, name from ref.calendar "
        "group by all having count(*) > 1)"
    ).fetchone()
    assert duplicates == (0,)


@pytest.mark.parametrize("country", ["XX", "'; drop table ref.calendar; --"])
def test_an_unknown_country_is_refused_and_changes_nothing(country):
    with pytest.raises(CalendarError, match="has no calendar for"):
        calendar_rows(country, [2019])
    con = duckdb.connect()
    n = refresh(con, ["CN"], 2019)
    with pytest.raises(CalendarError):
        refresh(con, ["CN", country], 2020)
    assert con.execute("select count(*), max(year(day)) from ref.calendar").fetchone() == (n, 2019)
