"""Time conditions and campaigns: wall-clock hours across DST, holidays, switches, seasons."""
import copy
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from appliance.errors import ConfigError
from appliance.schedule import (WEEKDAYS, active_campaign, campaign_overlaps, hours_on, is_open,
                                next_change, next_open, validate_campaign, validate_time_condition)

BOX_TZ = "Europe/Sofia"
SOFIA = ZoneInfo(BOX_TZ)
UTC = dt.timezone.utc
WHERE = "time_conditions[0]"

OFFICE = {
    "id": "office",
    "weekly": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-24", "2026-12-25", {"from": "2026-12-31", "to": "2027-01-02"}],
    "exceptions": [{"date": "2026-12-27", "hours": [["10:00", "14:00"]]}],
}


def office(**changes):
    """The office condition, validated, with top-level fields replaced."""
    return validate_time_condition(dict(copy.deepcopy(OFFICE), **changes), WHERE)


def sofia(*args, fold=0):
    return dt.datetime(*args, tzinfo=SOFIA, fold=fold)


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


def same_instant(first, second):
    # Two datetimes sharing a ZoneInfo compare by wall time, ignoring fold: compare in UTC.
    return first.astimezone(UTC) == second.astimezone(UTC)


# --- weekly hours, holidays, exceptions, switches ----------------------------------


@pytest.mark.parametrize("when, expected", [
    (sofia(2026, 6, 1, 8, 59, 59), False),   # Monday, just before opening
    (sofia(2026, 6, 1, 9, 0), True),
    (sofia(2026, 6, 1, 16, 59, 59), True),
    (sofia(2026, 6, 1, 17, 0), False),       # the end is not included
    (sofia(2026, 6, 5, 12, 0), True),        # Friday
    (sofia(2026, 6, 6, 12, 0), False),       # Saturday: a missing day is closed
    (sofia(2026, 6, 7, 12, 0), False),       # Sunday
])
def test_weekly_hours(when, expected):
    assert is_open(office(), when, BOX_TZ) is expected


def test_an_interval_may_end_at_midnight():
    late = office(weekly={"sat": [["20:00", "24:00"]]})
    assert is_open(late, sofia(2026, 6, 6, 23, 59, 59), BOX_TZ)
    assert not is_open(late, sofia(2026, 6, 7, 0, 0), BOX_TZ)


def test_several_intervals_a_day():
    split = office(weekly={"mon": [["14:00", "18:00"], ["09:00", "12:00"]]})
    assert [is_open(split, sofia(2026, 6, 1, hour), BOX_TZ) for hour in (9, 12, 13, 14, 18)] == \
        [True, False, False, True, False]


@pytest.mark.parametrize("when, expected", [
    (sofia(2026, 12, 23, 10, 0), True),    # Wednesday before Christmas
    (sofia(2026, 12, 24, 10, 0), False),   # a single holiday
    (sofia(2026, 12, 25, 10, 0), False),
    (sofia(2026, 12, 30, 10, 0), True),
    (sofia(2026, 12, 31, 10, 0), False),   # first day of a range
    (sofia(2027, 1, 1, 10, 0), False),     # inside the range, across the new year
    (sofia(2027, 1, 4, 10, 0), True),      # Monday after the range
])
def test_holidays_and_ranges(when, expected):
    assert is_open(office(), when, BOX_TZ) is expected


def test_exception_replaces_the_weekly_hours():
    condition = office()
    assert is_open(condition, sofia(2026, 12, 27, 11, 0), BOX_TZ)       # a Sunday, opened specially
    assert not is_open(condition, sofia(2026, 12, 27, 9, 30), BOX_TZ)
    assert not is_open(condition, sofia(2026, 12, 27, 14, 0), BOX_TZ)


def test_exception_beats_a_holiday():
    condition = office(exceptions=[{"date": "2026-12-24", "hours": [["10:00", "12:00"]]}])
    assert is_open(condition, sofia(2026, 12, 24, 11, 0), BOX_TZ)
    assert not is_open(condition, sofia(2026, 12, 24, 13, 0), BOX_TZ)
    assert hours_on(condition, dt.date(2026, 12, 24)) == [(600, 720)]


def test_exception_with_no_hours_closes_a_working_day():
    condition = office(exceptions=[{"date": "2026-06-03", "hours": []}])
    assert not is_open(condition, sofia(2026, 6, 3, 12, 0), BOX_TZ)
    assert is_open(condition, sofia(2026, 6, 4, 12, 0), BOX_TZ)


def test_manual_closed_switch():
    condition = office(closed=True)
    assert not is_open(condition, sofia(2026, 6, 1, 12, 0), BOX_TZ)
    assert next_open(condition, sofia(2026, 6, 1, 12, 0), BOX_TZ) is None


def test_manual_open_switch():
    condition = office(open=True)
    sunday_night = sofia(2026, 6, 7, 3, 0)
    assert is_open(condition, sunday_night, BOX_TZ)
    assert next_open(condition, sunday_night, BOX_TZ) is sunday_night
    assert next_change(condition, sunday_night, BOX_TZ) is None


def test_closed_wins_over_open():
    assert not is_open(office(open=True, closed=True), sofia(2026, 6, 1, 12, 0), BOX_TZ)


# --- next_open and next_change -------------------------------------------------------


def test_next_open_is_now_when_open():
    now = sofia(2026, 6, 2, 10, 15)
    assert next_open(office(), now, BOX_TZ) is now


def test_next_open_over_a_weekend():
    found = next_open(office(), sofia(2026, 6, 5, 17, 0), BOX_TZ)
    assert same_instant(found, sofia(2026, 6, 8, 9, 0))
    assert found.tzinfo is SOFIA  # returned in the zone it was asked in


def test_next_open_over_holidays():
    condition = office(exceptions=[])
    assert same_instant(next_open(condition, sofia(2026, 12, 23, 17, 30), BOX_TZ), sofia(2026, 12, 28, 9, 0))
    assert same_instant(next_open(condition, sofia(2026, 12, 30, 17, 0), BOX_TZ), sofia(2027, 1, 4, 9, 0))


def test_next_open_finds_a_special_day():
    found = next_open(office(), sofia(2026, 12, 23, 17, 30), BOX_TZ)
    assert same_instant(found, sofia(2026, 12, 27, 10, 0))


def test_next_open_gives_up_beyond_the_horizon():
    never = office(weekly={}, exceptions=[])
    assert next_open(never, sofia(2026, 6, 1, 12, 0), BOX_TZ) is None
    special = office(weekly={})  # only the special Sunday in December is open
    assert same_instant(next_open(special, sofia(2026, 6, 1, 12, 0), BOX_TZ), sofia(2026, 12, 27, 10, 0))
    assert next_open(office(), sofia(2026, 6, 5, 17, 0), BOX_TZ, horizon_days=1) is None


def test_next_change_walks_opening_and_closing():
    changes, when = [], sofia(2026, 6, 5, 12, 0)
    for _ in range(3):
        when = next_change(office(), when, BOX_TZ)
        changes.append(when)
    assert [c.astimezone(SOFIA).replace(tzinfo=None) for c in changes] == [
        dt.datetime(2026, 6, 5, 17, 0), dt.datetime(2026, 6, 8, 9, 0), dt.datetime(2026, 6, 8, 17, 0)]


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError):
        is_open(office(), dt.datetime(2026, 6, 1, 12, 0), BOX_TZ)


# --- daylight saving time in Europe/Sofia ---------------------------------------------

SPRING = dt.date(2026, 3, 29)   # 03:00 EET -> 04:00 EEST, at 01:00 UTC
AUTUMN = dt.date(2026, 10, 25)  # 04:00 EEST -> 03:00 EET, at 01:00 UTC


@pytest.mark.parametrize("monday", [dt.date(2026, 3, 30), dt.date(2026, 10, 26)])
def test_open_at_nine_local_on_the_monday_after_a_change(monday):
    nine = dt.datetime.combine(monday, dt.time(9, 0), tzinfo=SOFIA)
    assert is_open(office(), nine, BOX_TZ)
    assert not is_open(office(), nine - dt.timedelta(seconds=1), BOX_TZ)
    friday = nine - dt.timedelta(days=3) + dt.timedelta(hours=8)  # Friday 17:00, before the change
    assert same_instant(next_open(office(), friday, BOX_TZ), nine)


@pytest.mark.parametrize("day, nine_utc", [(SPRING, utc(2026, 3, 29, 6, 0)), (AUTUMN, utc(2026, 10, 25, 7, 0))])
def test_nine_to_five_is_eight_hours_on_the_day_of_a_change(day, nine_utc):
    sunday = office(weekly={"sun": [["09:00", "17:00"]]})
    opens = next_open(sunday, dt.datetime.combine(day, dt.time(0, 0), tzinfo=SOFIA), BOX_TZ)
    closes = next_change(sunday, opens, BOX_TZ)
    assert same_instant(opens, nine_utc)
    assert closes.astimezone(UTC) - opens.astimezone(UTC) == dt.timedelta(hours=8)


def test_a_wall_time_in_the_skipped_hour_does_not_crash():
    night = office(weekly={"sun": [["04:00", "05:00"]]})
    skipped = sofia(2026, 3, 29, 3, 30)  # never shown by a clock in Sofia
    # Python reads it with the old offset, i.e. the instant 01:30 UTC, which is 04:30 EEST.
    assert is_open(night, skipped, BOX_TZ) is is_open(night, skipped.astimezone(UTC), BOX_TZ) is True
    assert next_open(night, skipped, BOX_TZ) is skipped


def test_hours_inside_the_skipped_hour_never_open_that_day():
    skipped = office(weekly={"sun": [["03:00", "04:00"]]})
    for minute in range(0, 180, 5):  # 00:00-03:00 UTC covers the whole night
        assert not is_open(skipped, utc(2026, 3, 29, 0, 0) + dt.timedelta(minutes=minute), BOX_TZ)
    found = next_open(skipped, sofia(2026, 3, 29, 0, 0), BOX_TZ)
    assert same_instant(found, sofia(2026, 4, 5, 3, 0))


def test_hours_starting_in_the_skipped_hour_open_when_the_clocks_jump():
    early = office(weekly={"sun": [["03:30", "05:00"]]})
    found = next_open(early, sofia(2026, 3, 29, 2, 0), BOX_TZ)
    assert same_instant(found, utc(2026, 3, 29, 1, 0))  # the jump to 04:00 EEST
    assert found.astimezone(SOFIA).hour == 4


@pytest.mark.parametrize("instant, expected", [
    (utc(2026, 10, 25, 0, 30), True),    # 03:30 EEST, first time round
    (utc(2026, 10, 25, 0, 50), False),   # 03:50 EEST
    (utc(2026, 10, 25, 1, 30), True),    # 03:30 EET, second time round
    (utc(2026, 10, 25, 1, 50), False),   # 03:50 EET
])
def test_both_instants_of_the_repeated_hour_are_judged_by_wall_clock(instant, expected):
    repeated = office(weekly={"sun": [["03:00", "03:45"]]})
    assert is_open(repeated, instant, BOX_TZ) is expected
    local = instant.astimezone(SOFIA)
    assert is_open(repeated, local, BOX_TZ) is expected  # the same, given with its fold


def test_fold_in_a_given_wall_time_is_honoured():
    repeated = office(weekly={"sun": [["03:00", "03:45"]]})
    first, second = sofia(2026, 10, 25, 3, 50, fold=0), sofia(2026, 10, 25, 3, 50, fold=1)
    assert same_instant(next_open(repeated, first, BOX_TZ), sofia(2026, 10, 25, 3, 0, fold=1))
    assert same_instant(next_open(repeated, second, BOX_TZ), sofia(2026, 11, 1, 3, 0))


def test_changes_through_the_repeated_hour():
    night = office(weekly={"sun": [["00:00", "03:30"]]})
    when, changes = utc(2026, 10, 25, 0, 10), []   # 03:10 EEST, open
    for _ in range(3):
        when = next_change(night, when, BOX_TZ)
        changes.append(when.astimezone(UTC))
    # closes at 03:30 EEST, the clock falls back to 03:00 and it opens again, closes at 03:30 EET
    assert changes == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30)]


# --- time zones -----------------------------------------------------------------------


@pytest.mark.parametrize("instant, expected", [
    (utc(2026, 6, 1, 13, 0), True),      # 09:00 EDT
    (utc(2026, 6, 1, 12, 59), False),
    (utc(2026, 6, 1, 21, 0), False),     # 17:00 EDT
    (utc(2026, 1, 5, 14, 0), True),      # 09:00 EST in winter
    (utc(2026, 1, 5, 13, 30), False),
])
def test_a_condition_in_another_zone_against_utc(instant, expected):
    new_york = office(timezone="America/New_York")
    assert is_open(new_york, instant, BOX_TZ) is expected


def test_next_open_in_another_zone_comes_back_in_the_callers_zone():
    new_york = office(timezone="America/New_York")
    found = next_open(new_york, utc(2026, 6, 6, 12, 0), BOX_TZ)
    assert found == utc(2026, 6, 8, 13, 0) and found.tzinfo is UTC


def test_the_box_zone_is_the_default():
    instant = utc(2026, 6, 1, 7, 0)  # 10:00 in Sofia, 16:00 in Tokyo, 03:00 in New York
    assert is_open(office(), instant, BOX_TZ)
    assert is_open(office(), instant, ZoneInfo("Asia/Tokyo"))
    assert not is_open(office(), instant, "America/New_York")


# --- validation of time conditions ----------------------------------------------------


def test_validation_normalises_a_copy():
    raw = {"id": "office", "weekly": {"mon": [["14:00", "18:00"], ["9:00", "12:00"]]},
           "holidays": ["2026-12-24", {"from": "2026-12-31", "to": "2027-01-02"}]}
    before = copy.deepcopy(raw)
    checked = validate_time_condition(raw, WHERE)
    assert raw == before
    assert checked == {
        "id": "office",
        "weekly": {"mon": [["09:00", "12:00"], ["14:00", "18:00"]], **{day: [] for day in WEEKDAYS[1:]}},
        "holidays": ["2026-12-24", {"from": "2026-12-31", "to": "2027-01-02"}],
        "exceptions": [], "closed": False, "open": False}


def test_validation_keeps_a_zone_and_a_name():
    checked = validate_time_condition({"id": "kyiv", "name": "Kyiv office", "timezone": "Europe/Kyiv"}, WHERE)
    assert checked["timezone"] == "Europe/Kyiv" and checked["name"] == "Kyiv office"


def broken(**changes):
    condition = copy.deepcopy(OFFICE)
    condition["weekly"]["mon"] = [["09:00", "12:00"], ["13:00", "17:00"]]
    condition.update(changes)
    return condition


@pytest.mark.parametrize("condition, field", [
    (broken(weekly={"mon": [["09:00", "12:00"], ["25:00", "26:00"]]}), f"{WHERE}.weekly.mon[1][0]"),
    (broken(weekly={"mon": [["09:00", "17:60"]]}), f"{WHERE}.weekly.mon[0][1]"),
    (broken(weekly={"mon": [["09:00", "12:00"], ["17:00", "13:00"]]}), f"{WHERE}.weekly.mon[1]"),
    (broken(weekly={"tue": [["09:00", "09:00"]]}), f"{WHERE}.weekly.tue[0]"),
    (broken(weekly={"wed": [["24:00", "24:00"]]}), f"{WHERE}.weekly.wed[0][0]"),
    (broken(weekly={"thu": [["09:00"]]}), f"{WHERE}.weekly.thu[0]"),
    (broken(weekly={"fri": [[900, 1700]]}), f"{WHERE}.weekly.fri[0][0]"),
    (broken(weekly={"sat": "09:00-17:00"}), f"{WHERE}.weekly.sat"),
    (broken(weekly={"monday": [["09:00", "17:00"]]}), f"{WHERE}.weekly.monday"),
    (broken(weekly=[["09:00", "17:00"]]), f"{WHERE}.weekly"),
    (broken(holidays=["2026-02-30"]), f"{WHERE}.holidays[0]"),
    (broken(holidays=["2026-12-24", "24.12.2026"]), f"{WHERE}.holidays[1]"),
    (broken(holidays=[20261224]), f"{WHERE}.holidays[0]"),
    (broken(holidays=[{"from": "2027-01-02", "to": "2026-12-31"}]), f"{WHERE}.holidays[0].to"),
    (broken(holidays=[{"to": "2026-12-31"}]), f"{WHERE}.holidays[0].from"),
    (broken(holidays=[{"from": "2026-12-31", "until": "2027-01-02"}]), f"{WHERE}.holidays[0].until"),
    (broken(holidays="2026-12-24"), f"{WHERE}.holidays"),
    (broken(exceptions=[{"date": "2026-13-01", "hours": []}]), f"{WHERE}.exceptions[0].date"),
    (broken(exceptions=[{"date": "2026-12-27", "hours": [["14:00", "10:00"]]}]),
     f"{WHERE}.exceptions[0].hours[0]"),
    (broken(exceptions=[{"date": "2026-12-27"}]), f"{WHERE}.exceptions[0].hours"),
    (broken(exceptions=[{"date": "2026-12-27", "hours": []}, {"date": "2026-12-27", "hours": []}]),
     f"{WHERE}.exceptions[1].date"),
    (broken(exceptions=[{"date": "2026-12-27", "hours": [], "note": "x"}]), f"{WHERE}.exceptions[0].note"),
    (broken(exceptions=["2026-12-27"]), f"{WHERE}.exceptions[0]"),
    (broken(timezone="Mars/Olympus"), f"{WHERE}.timezone"),
    (broken(timezone=3), f"{WHERE}.timezone"),
    (broken(colour="blue"), f"{WHERE}.colour"),
    (broken(closed="yes"), f"{WHERE}.closed"),
    (broken(open=1), f"{WHERE}.open"),
    (broken(id="Office hours"), f"{WHERE}.id"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_time_condition_validation_names_the_field(condition, field):
    with pytest.raises(ConfigError) as caught:
        validate_time_condition(condition, WHERE)
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ":")


def test_a_non_object_is_refused():
    with pytest.raises(ConfigError) as caught:
        validate_time_condition(["09:00", "17:00"], "operators[2].shift")
    assert caught.value.field == "operators[2].shift"


# --- campaigns ------------------------------------------------------------------------

ADMISSIONS = {"id": "admissions2026", "name": "Admissions 2026", "start": "2026-07-01", "end": "2026-08-15",
              "lines": ["gsm1"], "flow": "admissions", "enabled": True}


def campaign(**changes):
    return validate_campaign(dict(ADMISSIONS, **changes), "campaigns[0]")


def test_campaign_validation_fills_defaults():
    checked = validate_campaign({"id": "summer", "start": "2026-07-01", "end": "2026-07-01"}, "campaigns[0]")
    assert checked == {"id": "summer", "start": "2026-07-01", "end": "2026-07-01", "lines": [], "enabled": True}
    assert campaign() == ADMISSIONS


@pytest.mark.parametrize("changes, field", [
    ({"start": "2026-07-32"}, "campaigns[0].start"),
    ({"start": None}, "campaigns[0].start"),
    ({"end": "15/08/2026"}, "campaigns[0].end"),
    ({"end": "2026-06-30"}, "campaigns[0].end"),
    ({"lines": "gsm1"}, "campaigns[0].lines"),
    ({"lines": ["gsm1", "GSM 2"]}, "campaigns[0].lines[1]"),
    ({"flow": ""}, "campaigns[0].flow"),
    ({"enabled": "yes"}, "campaigns[0].enabled"),
    ({"id": "2026"}, "campaigns[0].id"),
    ({"queues": ["admissions"]}, "campaigns[0].queues"),
])
def test_campaign_validation_names_the_field(changes, field):
    with pytest.raises(ConfigError) as caught:
        validate_campaign(dict(ADMISSIONS, **changes), "campaigns[0]")
    assert caught.value.field == field


@pytest.mark.parametrize("when, expected", [
    (sofia(2026, 6, 30, 23, 59), None),                # the day before
    (sofia(2026, 7, 1, 0, 0), "admissions2026"),       # first day, first minute
    (utc(2026, 6, 30, 21, 30), "admissions2026"),      # already 1 July in the box's zone
    (sofia(2026, 8, 15, 23, 59, 59), "admissions2026"),  # last day, inclusive
    (sofia(2026, 8, 16, 0, 0), None),                  # the day after: back to normal
])
def test_campaign_first_and_last_day(when, expected):
    found = active_campaign([campaign()], "gsm1", when, BOX_TZ)
    assert (found and found["id"]) == expected


def test_campaign_applies_only_to_its_lines():
    when = sofia(2026, 7, 15, 10, 0)
    assert active_campaign([campaign()], "gsm2", when, BOX_TZ) is None
    assert active_campaign([campaign(lines=[])], "gsm2", when, BOX_TZ)["id"] == "admissions2026"


def test_disabled_campaign_is_ignored():
    assert active_campaign([campaign(enabled=False)], "gsm1", sofia(2026, 7, 15, 10, 0), BOX_TZ) is None


def test_the_campaign_that_started_latest_wins():
    season = campaign()
    open_day = campaign(id="open-day", start="2026-07-20", end="2026-07-20", flow="open_day")
    whole_summer = campaign(id="summer", start="2026-06-01", end="2026-09-30", lines=[])
    campaigns = [open_day, season, whole_summer]
    pick = lambda when: active_campaign(campaigns, "gsm1", when, BOX_TZ)["id"]  # noqa: E731
    assert pick(sofia(2026, 6, 15, 10, 0)) == "summer"
    assert pick(sofia(2026, 7, 19, 10, 0)) == "admissions2026"
    assert pick(sofia(2026, 7, 20, 10, 0)) == "open-day"
    assert pick(sofia(2026, 8, 20, 10, 0)) == "summer"


def test_on_the_same_start_the_shorter_campaign_wins():
    week = campaign(id="first-week", end="2026-07-07")
    assert active_campaign([campaign(), week], "gsm1", sofia(2026, 7, 3, 10, 0), BOX_TZ)["id"] == "first-week"


def test_overlapping_campaigns_are_reported():
    late = campaign(id="late", start="2026-08-01", end="2026-08-31")
    warnings = campaign_overlaps([campaign(), late])
    assert len(warnings) == 1
    assert "'admissions2026'" in warnings[0] and "'late'" in warnings[0]
    assert "2026-08-01 to 2026-08-15" in warnings[0] and "gsm1" in warnings[0]
    assert "'late' is in force" in warnings[0]


@pytest.mark.parametrize("other, overlapping", [
    ({"start": "2026-08-16", "end": "2026-08-31"}, False),   # starts the day after: no overlap
    ({"start": "2026-08-15", "end": "2026-08-31"}, True),    # shares the last day
    ({"lines": ["gsm2"]}, False),                           # another line
    ({"lines": ["gsm2", "gsm1"]}, True),
    ({"lines": []}, True),                                  # all lines include gsm1
    ({"enabled": False}, False),
])
def test_overlap_needs_shared_days_and_lines(other, overlapping):
    assert bool(campaign_overlaps([campaign(), campaign(id="other", **other)])) is overlapping


def test_overlap_on_all_lines_says_so():
    warnings = campaign_overlaps([campaign(lines=[]), campaign(id="other", lines=[])])
    assert "all lines" in warnings[0]


# --- property: next_open is open and nothing earlier is --------------------------------

minutes = st.integers(min_value=0, max_value=24 * 60)
intervals = st.lists(st.tuples(minutes, minutes).filter(lambda pair: pair[0] < pair[1]), max_size=2)
weeks = st.fixed_dictionaries({day: intervals for day in WEEKDAYS})
# Instants near both DST changes as well as in ordinary weeks.
starts = st.sampled_from([utc(2026, 3, 27), utc(2026, 10, 23), utc(2026, 6, 5), utc(2026, 12, 22)])


def hhmm(value):
    return "24:00" if value == 24 * 60 else f"{value // 60:02d}:{value % 60:02d}"


@settings(max_examples=100, deadline=None)
@given(week=weeks, start=starts, offset=st.integers(min_value=0, max_value=4 * 24 * 60))
def test_next_open_is_the_first_open_minute(week, start, offset):
    weekly = {day: [[hhmm(a), hhmm(b)] for a, b in pairs] for day, pairs in week.items()}
    condition = office(weekly=weekly)
    when = start + dt.timedelta(minutes=offset)
    found = next_open(condition, when, BOX_TZ, horizon_days=10)
    if found is None:
        assert not any(week.values())
        return
    assert is_open(condition, found, BOX_TZ)
    minute = when
    while minute < found:
        assert not is_open(condition, minute, BOX_TZ), minute
        minute += dt.timedelta(minutes=1)
