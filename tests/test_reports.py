"""Reports: traffic figures checked by hand, DST days in Europe/Sofia, Erlang C, the page, CSV, roles."""
import csv
import datetime
import io
import math
import os
from html.parser import HTMLParser

import pytest

from appliance import accounts, reports
from appliance.config import demo_config
from appliance.journal import Journal
from web_ui import configedit

SOFIA = "Europe/Sofia"
JULY_1, JULY_2 = datetime.date(2026, 7, 1), datetime.date(2026, 7, 2)  # a Wednesday and a Thursday
LEVELS = {"bachelor": 20, "master": 45, "dormitories": 20}

# Caller rows of the admissions line over two summer days (Sofia is UTC+3 in July):
# (number, UTC start, outcome, line, queue, operator, wait s, talk s).
CALLS = (
    (1, "2026-07-01T06:05:00.000+00:00", "answered", "gsm1", "bachelor", "op1", 10, 300),  # 09:05; leg talk 120
    (2, "2026-07-01T06:10:00.000+00:00", "answered", "gsm1", "bachelor", "op2", 25, 200),  # 09:10, over 20 s
    (3, "2026-07-01T06:40:00.000+00:00", "abandoned", "gsm1", "bachelor", None, 40, None),  # 09:40
    (4, "2026-07-01T06:50:00.000+00:00", "abandoned", "gsm1", "bachelor", None, 3, None),  # 09:50, short
    (5, "2026-07-01T07:15:00.000+00:00", "answered", "gsm1", "master", "op1", 30, 60),  # 10:15, within 45 s
    (6, "2026-07-01T07:20:00.000+00:00", "voicemail", "gsm1", "master", None, 180, 200),  # 10:20, overflow
    (7, "2026-07-01T07:30:00.000+00:00", "ivr", "gsm1", None, None, None, 40),  # 10:30
    (8, "2026-07-01T07:45:00.000+00:00", "blocked", "gsm1", None, None, None, None),  # 10:45
    (9, "2026-07-01T08:00:00.000+00:00", "missed", "gsm2", None, None, None, None),  # 11:00
    (10, "2026-07-01T08:10:00.000+00:00", "call-back", "gsm1", "dormitories", None, 50, 70),  # 11:10
    (11, "2026-07-02T06:20:00.000+00:00", "answered", "gsm1", "bachelor", "op2", 5, 90),  # 09:20
    (12, "2026-07-02T06:30:00.000+00:00", "abandoned", "gsm2", "master", None, 60, None),  # 09:30
    (13, "2026-07-02T07:05:00.000+00:00", "forwarded", "gsm1", None, None, None, 30),  # 10:05
)
# Operator legs the box placed: (parent call, operator, outcome, talk s).
LEGS = ((1, "op2", "no answer", None), (1, "op1", "answered", 120), (3, "op3", "refused", 4),
        (3, "op1", "cancelled", None))


def open_journal(data_dir):
    """The journal of a box whose data directory is ``data_dir``."""
    return Journal.open(os.path.join(str(data_dir), "journal.sqlite3"))


def insert_call(conn, started_at, outcome, line="gsm1", queue=None, operator=None, wait=None, talk=None,
                role="caller", direction="in", parent_id=None, call_id=None):
    """One journal row written directly, as the engine would have left it."""
    cursor = conn.execute(
        "INSERT INTO calls (id, line_id, direction, caller, started_at, ended_at, outcome, ended_by, talk_seconds,"
        " queue, operator, wait_seconds, role, parent_id) VALUES (?, ?, ?, '+359888123456', ?, ?, ?, 'caller', ?,"
        " ?, ?, ?, ?, ?)",
        (call_id, line, direction, started_at, started_at, outcome, talk, queue, operator, wait, role, parent_id))
    return cursor.lastrowid


def fill_admissions(conn):
    """The two days above, plus rows every report must ignore."""
    starts = {}
    for number, started_at, outcome, line, queue, operator, wait, talk in CALLS:
        insert_call(conn, started_at, outcome, line, queue, operator, wait, talk, call_id=number)
        starts[number] = started_at
    for parent, operator, outcome, talk in LEGS:
        insert_call(conn, starts[parent], outcome, "gsm2", None, operator, None, talk, role="operator",
                    direction="out", parent_id=parent)
    # not callers: a test call, a call-back dialled out; and callers outside the two days
    insert_call(conn, "2026-07-01T07:00:00.000+00:00", "answered", role="test")
    insert_call(conn, "2026-07-01T12:00:00.000+00:00", "answered", role="callback", direction="out")
    insert_call(conn, "2026-06-30T20:59:59.999+00:00", "answered", queue="bachelor", operator="op1", wait=1, talk=9)
    insert_call(conn, "2026-07-02T21:00:00.000+00:00", "abandoned", queue="bachelor", wait=99)


@pytest.fixture
def journal(tmp_path):
    book = open_journal(tmp_path)
    fill_admissions(book.conn)
    yield book
    book.close()


def traffic(journal, group_by, start=JULY_1, end=JULY_2, **kwargs):
    """The two days' traffic report with the queues' own service-level thresholds."""
    kwargs.setdefault("service_level", LEVELS)
    return reports.traffic(journal.conn, start, end, SOFIA, group_by, **kwargs)


def by_label(report):
    return {row["label"]: row for row in report["rows"]}


def check(row, **expected):
    """Compare the figures named in ``expected``; floats approximately."""
    for key, value in expected.items():
        assert row[key] == (pytest.approx(value) if isinstance(value, float) else value), key


# --- traffic figures -----------------------------------------------------------------------------

def test_totals_follow_the_documented_formulas(journal):
    total = traffic(journal, "hour")["total"]
    check(total, offered=12, answered=4, abandoned=2, short_abandoned=1, voicemail=1, callback=1, ivr=1, missed=1,
          other=1, blocked=1, answered_within=3)
    # SL = answered within T / (answered + abandoned long) = (#1 10 s, #5 30 s <= 45 s, #11 5 s) / (4 + 2)
    check(total, service_level=3 / 6, abandon_rate=2 / 11, asa=(10 + 25 + 30 + 5) / 4)
    # AHT takes the operator leg's talk (120 s) over the caller row's (300 s, menus and queue included)
    check(total, aht=(120 + 200 + 60 + 90) / 4, max_wait=180.0)


def test_per_hour_of_day_in_local_time(journal):
    report = traffic(journal, "hour")
    assert [row["label"] for row in report["rows"]] == ["09:00", "10:00", "11:00"]
    rows = by_label(report)
    check(rows["09:00"], offered=6, answered=3, abandoned=2, short_abandoned=1, answered_within=2,
          service_level=2 / 5, asa=40 / 3, aht=410 / 3, max_wait=60.0)
    check(rows["10:00"], offered=4, answered=1, voicemail=1, ivr=1, other=1, blocked=1, service_level=1.0,
          asa=30.0, aht=60.0, max_wait=180.0)
    check(rows["11:00"], offered=2, missed=1, callback=1, service_level=None, asa=None, aht=None, max_wait=50.0)


def test_per_half_hour(journal):
    report = traffic(journal, "half_hour")
    assert [(row["label"], row["offered"]) for row in report["rows"]] == [
        ("09:00", 3), ("09:30", 3), ("10:00", 3), ("10:30", 1), ("11:00", 2)]
    check(by_label(report)["09:30"], abandoned=2, short_abandoned=1, service_level=0.0)


def test_per_day(journal):
    rows = by_label(traffic(journal, "day"))
    assert list(rows) == ["2026-07-01", "2026-07-02"]
    check(rows["2026-07-01"], offered=9, answered=3, abandoned=1, short_abandoned=1, blocked=1, service_level=2 / 4,
          asa=65 / 3, aht=380 / 3, max_wait=180.0)
    check(rows["2026-07-02"], offered=3, answered=1, abandoned=1, other=1, service_level=0.5, asa=5.0, aht=90.0)


def test_days_without_calls_are_shown_empty(journal):
    rows = traffic(journal, "day", start=datetime.date(2026, 6, 29), end=datetime.date(2026, 7, 3))["rows"]
    assert [(row["label"], row["offered"]) for row in rows] == [
        ("2026-06-29", 0), ("2026-06-30", 1), ("2026-07-01", 9), ("2026-07-02", 3), ("2026-07-03", 1)]
    assert rows[0]["service_level"] is None and rows[0]["asa"] is None


def test_per_queue_uses_each_queues_threshold(journal):
    report = traffic(journal, "queue")
    assert [row["key"] for row in report["rows"]] == ["bachelor", "dormitories", "master", ""]
    rows = {row["key"]: row for row in report["rows"]}
    check(rows["bachelor"], offered=5, answered=3, abandoned=1, short_abandoned=1, service_level=2 / 4,
          asa=40 / 3, aht=410 / 3, max_wait=40.0)
    check(rows["master"], offered=3, answered=1, abandoned=1, voicemail=1, service_level=1 / 2, max_wait=180.0)
    check(rows["dormitories"], offered=1, callback=1, service_level=None)
    check(rows[""], offered=3, ivr=1, missed=1, other=1, blocked=1)
    # with one threshold for all, master's 30 s answer misses 20 s
    same = {row["key"]: row for row in traffic(journal, "queue", service_level=20)["rows"]}
    check(same["master"], answered_within=0, service_level=0.0)
    check(traffic(journal, "queue", service_level=None)["total"], answered_within=2, service_level=2 / 6)


def test_per_operator_with_the_rings_they_did_not_take(journal):
    report = traffic(journal, "operator")
    assert [row["key"] for row in report["rows"]] == ["op1", "op2", "op3", ""]
    rows = {row["key"]: row for row in report["rows"]}
    check(rows["op1"], offered=2, answered=2, service_level=1.0, asa=20.0, aht=90.0, rung=2, not_taken=0)
    check(rows["op2"], offered=2, answered=2, service_level=0.5, asa=15.0, aht=145.0, rung=1, not_taken=1)
    check(rows["op3"], offered=0, answered=0, rung=1, not_taken=1, service_level=None)
    check(rows[""], offered=8, answered=0, abandoned=2, service_level=0.0)
    check(report["total"], rung=4, not_taken=2)


def test_per_line_and_per_weekday_hour(journal):
    lines = {row["key"]: row for row in traffic(journal, "line")["rows"]}
    check(lines["gsm1"], offered=10, answered=4, blocked=1)
    check(lines["gsm2"], offered=2, missed=1, abandoned=1)
    rows = traffic(journal, "weekday_hour")["rows"]
    assert [(row["key"], row["label"], row["offered"]) for row in rows] == [
        ((2, 9), "Wed 09:00", 4), ((2, 10), "Wed 10:00", 3), ((2, 11), "Wed 11:00", 2),
        ((3, 9), "Thu 09:00", 2), ((3, 10), "Thu 10:00", 1)]


def test_short_abandon_threshold_moves_calls_between_columns(journal):
    none_short = traffic(journal, "hour", short_abandon_seconds=0)["total"]
    check(none_short, abandoned=3, short_abandoned=0, service_level=3 / 7, abandon_rate=3 / 12)
    longer = traffic(journal, "hour", short_abandon_seconds=45)["total"]  # 40 s and 3 s are now short
    check(longer, abandoned=1, short_abandoned=2, offered=12, service_level=3 / 5, abandon_rate=1 / 10)


def test_heat_map_counts_offered_calls_by_weekday_and_hour(journal):
    grid = reports.heat_map(journal.conn, JULY_1, JULY_2, SOFIA)
    assert len(grid) == 7 and all(len(row) == 24 for row in grid)
    assert (grid[2][9], grid[2][10], grid[2][11], grid[3][9], grid[3][10]) == (4, 3, 2, 2, 1)
    assert sum(map(sum, grid)) == 12  # the blocked caller is not offered


def test_an_empty_range_and_a_bad_grouping(journal):
    report = traffic(journal, "hour", start=datetime.date(2025, 1, 1), end=datetime.date(2025, 1, 1))
    assert report["rows"] == []
    check(report["total"], offered=0, service_level=None, abandon_rate=None, asa=None, aht=None, max_wait=None)
    with pytest.raises(ValueError):
        traffic(journal, "minute")


# --- daylight saving time in Europe/Sofia ---------------------------------------------------------

def test_day_bounds_are_local_midnights_even_on_dst_days():
    spring = reports.utc_bounds(datetime.date(2026, 3, 29), datetime.date(2026, 3, 29), SOFIA)
    assert [moment.isoformat() for moment in spring] == ["2026-03-28T22:00:00+00:00", "2026-03-29T21:00:00+00:00"]
    assert spring[1] - spring[0] == datetime.timedelta(hours=23)
    autumn = reports.utc_bounds(datetime.date(2026, 10, 25), datetime.date(2026, 10, 25), SOFIA)
    assert autumn[1] - autumn[0] == datetime.timedelta(hours=25)


def test_spring_forward_day(tmp_path):
    book = open_journal(tmp_path)
    for started_at in ("2026-03-28T21:59:59.999+00:00",  # 23:59:59 on the 28th (UTC+2)
                       "2026-03-28T22:00:00.000+00:00",  # 00:00 on the 29th
                       "2026-03-29T00:30:00.000+00:00",  # 02:30, still UTC+2
                       "2026-03-29T01:30:00.000+00:00",  # 04:30 UTC+3: 03:xx never happened
                       "2026-03-29T10:00:00Z",  # another ISO style: 13:00
                       "2026-03-29T20:59:59.999+00:00",  # 23:59:59 on the 29th (UTC+3)
                       "2026-03-29T21:00:00.000+00:00"):  # 00:00 on the 30th
        insert_call(book.conn, started_at, "ivr")
    day = datetime.date(2026, 3, 29)
    rows = reports.traffic(book.conn, day, day, SOFIA, "hour")["rows"]
    offered = {row["key"]: row["offered"] for row in rows}
    assert [row["key"] for row in rows] == list(range(24))
    assert (offered[0], offered[2], offered[3], offered[4], offered[13], offered[23]) == (1, 1, 0, 1, 1, 1)
    assert sum(offered.values()) == 5
    days = reports.traffic(book.conn, day - datetime.timedelta(days=1), day + datetime.timedelta(days=1), SOFIA,
                           "day")["rows"]
    assert [(row["label"], row["offered"]) for row in days] == [
        ("2026-03-28", 1), ("2026-03-29", 5), ("2026-03-30", 1)]
    grid = reports.heat_map(book.conn, day, day, SOFIA)
    assert grid[6][2] == 1 and grid[6][3] == 0 and grid[6][4] == 1  # the 29th is a Sunday
    book.close()


def test_fall_back_day_puts_both_three_oclocks_in_one_hour(tmp_path):
    book = open_journal(tmp_path)
    for started_at in ("2026-10-24T21:00:00.000+00:00",  # 00:00 on the 25th (UTC+3)
                       "2026-10-25T00:30:00.000+00:00",  # 03:30 UTC+3
                       "2026-10-25T01:30:00.000+00:00",  # 03:30 again, UTC+2
                       "2026-10-25T21:59:59.000+00:00",  # 23:59:59 on the 25th (UTC+2)
                       "2026-10-25T22:00:00.000+00:00"):  # 00:00 on the 26th
        insert_call(book.conn, started_at, "answered", queue="bachelor", wait=4, talk=60)
    day = datetime.date(2026, 10, 25)
    offered = {row["key"]: row["offered"] for row in reports.traffic(book.conn, day, day, SOFIA, "hour")["rows"]}
    assert (offered[0], offered[3], offered[23], sum(offered.values())) == (1, 2, 1, 4)
    plan = reports.staffing(book.conn, day, day, SOFIA)
    assert plan["days"] == 1 and [(row["hour"], row["calls"]) for row in plan["rows"]] == [(0, 1), (3, 2), (23, 1)]
    book.close()


# --- Erlang C ----------------------------------------------------------------------------------

def test_erlang_c_classic_values():
    assert reports.erlang_c(2, 3) == pytest.approx(4 / 9)
    assert reports.erlang_b(2, 3) == pytest.approx(4 / 19)
    assert reports.erlang_b(5, 10) == pytest.approx(0.018385, abs=1e-6)


@pytest.mark.parametrize("agents, waiting, level, asa", [
    (11, 0.6821, 0.3896, 122.8),
    (12, 0.4494, 0.6402, 40.4),
    (13, 0.2853, 0.7956, 17.1),
    (14, 0.1741, 0.8884, 7.8),
])
def test_erlang_c_textbook_table_for_10_erlangs_aht_180_target_20(agents, waiting, level, asa):
    # 200 calls an hour of 180 s: the standard worked example of Erlang C
    assert reports.offered_traffic(200, 180) == pytest.approx(10.0)
    assert reports.erlang_c(10, agents) == pytest.approx(waiting, abs=1e-4)
    assert reports.service_level(10, agents, 20, 180) == pytest.approx(level, abs=1e-4)
    assert reports.average_speed_of_answer(10, agents, 180) == pytest.approx(asa, abs=0.05)


def test_erlang_c_edges():
    assert reports.erlang_c(10, 10) == 1.0 and reports.erlang_c(10, 3) == 1.0  # the queue never empties
    assert reports.erlang_c(0, 3) == 0.0
    assert reports.service_level(10, 9, 20, 180) == 0.0 and reports.average_speed_of_answer(10, 9, 180) == math.inf
    big = reports.erlang_c(500, 520)  # factorials of 520 would overflow a float; the recurrence does not
    assert 0 < big < 1 and math.isfinite(big)


def test_agents_needed_meets_the_target_with_the_fewest_operators():
    assert reports.agents_needed(200, 180, 20, 0.8) == 14
    assert reports.agents_needed(200, 180, 20, 0.9) == 15
    assert reports.agents_needed(0, 180, 20, 0.8) == 0
    assert reports.agents_needed(200, 180, 20, 0.8, max_occupancy=0.6) == 17  # 10 / 17 <= 0.6 < 10 / 16
    assert reports.agents_needed(10000, 180, 20, 0.8, max_occupancy=None) == 510
    assert reports.agents_needed(10000, 180, 20, 0.8) == 589  # 500 erlangs at 85 % occupancy
    with pytest.raises(ValueError):
        reports.agents_needed(200, 180, 20, 1.0)


def test_agents_needed_is_monotonic():
    for aht in (60, 180, 420):
        for target in (10, 20, 60):
            previous = 0
            for calls in range(0, 400, 7):
                needed = reports.agents_needed(calls, aht, target, 0.8)
                assert needed >= previous  # more calls never need fewer operators
                previous = needed
                if needed:
                    traffic = reports.offered_traffic(calls, aht)
                    assert reports.service_level(traffic, needed, target, aht) >= 0.8
                    assert traffic / needed <= 0.85 + 1e-9
                    fewer_fail = (reports.service_level(traffic, needed - 1, target, aht) < 0.8
                                  or traffic / (needed - 1) > 0.85 if needed > 1 else True)
                    assert fewer_fail  # and one operator fewer would not do
    for calls in (30, 120, 300):
        levels = [reports.agents_needed(calls, 180, 20, level) for level in (0.5, 0.7, 0.8, 0.9, 0.95)]
        assert levels == sorted(levels)  # a higher target never needs fewer
        targets = [reports.agents_needed(calls, 180, seconds, 0.8) for seconds in (5, 10, 20, 60, 120)]
        assert targets == sorted(targets, reverse=True)  # a longer allowed wait never needs more
        times = [reports.agents_needed(calls, aht, 20, 0.8) for aht in (30, 90, 180, 300)]
        assert times == sorted(times)
    for agents in range(11, 30):  # each operator more answers more callers in time
        assert reports.service_level(10, agents + 1, 20, 180) > reports.service_level(10, agents, 20, 180)


def test_calculator_lists_the_figures_around_the_answer():
    calc = reports.calculator(200, 180, 20, 0.8)
    assert calc["agents"] == 14 and [row["agents"] for row in calc["rows"]] == [12, 13, 14, 15, 16]
    assert calc["result"]["service_level"] == pytest.approx(0.8884, abs=1e-4)
    assert calc["result"]["occupancy"] == pytest.approx(10 / 14)
    assert reports.calculator(0, 180, 20, 0.8)["rows"] == []


def test_staffing_from_measured_traffic(tmp_path):
    """Two days with 200 queued calls of 180 s between 10:00 and 11:00: the textbook 10 erlangs."""
    book = open_journal(tmp_path)
    for day in (1, 2):
        for i in range(200):
            started = datetime.datetime(2026, 7, day, 7, 0, tzinfo=datetime.timezone.utc) + datetime.timedelta(
                seconds=18 * i)  # 10:00-10:59:42 in Sofia
            insert_call(book.conn, started.isoformat(timespec="milliseconds"), "answered", queue="bachelor",
                        operator="op1", wait=5, talk=180)
    insert_call(book.conn, "2026-07-01T12:00:00.000+00:00", "abandoned", queue="bachelor", wait=2)  # short: not demand
    insert_call(book.conn, "2026-07-01T12:10:00.000+00:00", "ivr")  # no queue: not demand
    insert_call(book.conn, "2026-07-01T13:00:00.000+00:00", "abandoned", queue="master", wait=30)  # 16:00, no AHT
    plan = reports.staffing(book.conn, JULY_1, datetime.date(2026, 7, 3), SOFIA, target_seconds=20, target_level=0.8)
    assert plan["days"] == 2  # the 3rd had no calls: it does not dilute the average
    rows = {row["hour"]: row for row in plan["rows"]}
    assert list(rows) == [10, 16]
    check(rows[10], calls=400, calls_per_hour=200.0, aht=180.0, traffic=10.0, agents=14, aht_measured=True)
    assert rows[10]["service_level"] == pytest.approx(0.8884, abs=1e-4)
    check(rows[16], calls=1, calls_per_hour=0.5, aht=180.0, agents=1, aht_measured=False)
    assert plan["peak_agents"] == 14
    assert reports.staffing(book.conn, JULY_1, JULY_2, SOFIA, target_level=0.9)["peak_agents"] == 15
    book.close()


def test_staffing_over_the_admissions_days(journal):
    plan = reports.staffing(journal.conn, JULY_1, JULY_2, SOFIA)
    rows = {row["hour"]: row for row in plan["rows"]}
    # hour 9: #1 #2 #3 #11 #12 asked for an operator (#4 was a short abandon), over 2 days
    check(rows[9], calls=5, calls_per_hour=2.5, aht=410 / 3, agents=1)
    check(rows[10], calls=2, calls_per_hour=1.0, aht=60.0)
    check(rows[11], calls=1, calls_per_hour=0.5, aht=117.5, aht_measured=False)


# --- CSV -------------------------------------------------------------------------------------------

def test_traffic_csv_text(journal):
    text = reports.traffic_csv(traffic(journal, "queue"))
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][:4] == ["Group", "Offered", "Answered", "Abandoned"]
    header = lines[0]
    bachelor = dict(zip(header, lines[1]))
    assert (bachelor["Group"], bachelor["Offered"], bachelor["Service level %"], bachelor["ASA s"],
            bachelor["AHT s"]) == ("bachelor", "5", "50.0", "13.3", "136.7")
    dormitories = dict(zip(header, lines[2]))
    assert dormitories["Service level %"] == "" and dormitories["Call-back"] == "1"
    total = dict(zip(header, lines[-1]))
    assert (total["Group"], total["Offered"], total["Abandon rate %"], total["Max wait s"]) == ("Total", "12", "18.2",
                                                                                                "180.0")
    assert text.endswith("\r\n")


def test_heat_map_and_staffing_csv(journal):
    heat = list(csv.reader(io.StringIO(reports.heat_map_csv(reports.heat_map(journal.conn, JULY_1, JULY_2, SOFIA)))))
    assert heat[0][0] == "Weekday" and heat[0][1:] == [f"{hour:02d}" for hour in range(24)]
    assert heat[3][0] == "Wed" and heat[3][10] == "4" and heat[4][11] == "1"
    staffing = list(csv.reader(io.StringIO(reports.staffing_csv(reports.staffing(journal.conn, JULY_1, JULY_2,
                                                                                   SOFIA)))))
    assert staffing[0][:6] == ["Hour", "Calls", "Calls per hour", "AHT s", "Erlangs", "Operators"]
    assert staffing[1][:3] == ["09:00", "5", "2.50"] and staffing[1][5] == "1"


# --- the page ----------------------------------------------------------------------------------------

class Tables(HTMLParser):
    """Collects the text of every table cell, by table id, row by row."""

    def __init__(self):
        super().__init__()
        self.tables, self._table, self._row, self._cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(html):
    parser = Tables()
    parser.feed(html)
    return parser.tables


def rows_by_first_cell(table):
    return {row[0]: row for row in table[1:]}


@pytest.fixture
def page_journal(app):
    book = open_journal(app.config["DATA_DIR"])
    fill_admissions(book.conn)
    yield book
    book.close()


def test_page_shows_the_figures_chart_and_heat_map(admin_client, page_journal):
    response = admin_client.get("/reports/?start=2026-07-01&end=2026-07-02&group_by=queue")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    found = tables(html)
    header = found["traffic"][0]
    assert header[:4] == ["Queue", "Offered", "Answered", "Abandoned"]
    rows = rows_by_first_cell(found["traffic"])
    sl, asa = header.index("Service level"), header.index("ASA")
    # the engine is down: the demo configuration's queues, named, all at the default 20 s
    assert rows["Bachelor programmes"][1:4] == ["5", "3", "1"]
    assert rows["Bachelor programmes"][sl] == "50.0 %" and rows["Bachelor programmes"][asa] == "13.3 s"
    assert rows["Master's programmes"][sl] == "0.0 %"
    assert rows["(no queue)"][1] == "3"
    assert rows["Total"][1] == "12" and rows["Total"][sl] == "33.3 %"
    assert '<svg id="traffic-chart"' in html and html.count('class="seg-answered"') == 2  # bachelor, master
    assert "Bachelor programmes: Answered 3" in html
    assert html.count('class="sl-dot"') == 2  # dormitories and (no queue) have no service level
    assert 'class="sl-line"' not in html  # queues are not a sequence: dots only
    assert '<svg id="heat-map"' in html and html.count("data-count=") == 7 * 24
    assert html.count('data-count="4"') == 1 and html.count('data-count="0"') == 7 * 24 - 5
    assert "Europe/Sofia" in html
    staffing = rows_by_first_cell(found["staffing"])
    assert staffing["09:00"][1] == "2.5" and staffing["09:00"][4] == "1"


def test_page_with_the_running_engines_configuration(admin_client, page_journal, monkeypatch):
    document = demo_config()
    document["settings"]["timezone"] = "UTC"
    document["queues"][1]["service_level_seconds"] = 45  # master
    monkeypatch.setattr(configedit, "load_config", lambda: {"config": document, "warnings": [], "problem": None})
    html = admin_client.get("/reports/?start=2026-07-01&end=2026-07-02&group_by=hour").get_data(as_text=True)
    rows = rows_by_first_cell(tables(html)["traffic"])
    # UTC days now: 2 July 21:00 UTC (00:00 on the 3rd in Sofia) is inside, and hours are UTC hours
    assert [rows[hour][1] for hour in ("06:00", "07:00", "08:00", "09:00", "21:00")] == ["6", "4", "2", "0", "1"]
    sl = tables(html)["traffic"][0].index("Service level")
    assert rows["Total"][1] == "13" and rows["Total"][sl] == "42.9 %"  # 3 of 7: master's 30 s is within its 45 s
    assert "engine-note" not in html


def test_every_grouping_renders(admin_client, page_journal):
    for group_by in reports.GROUP_BYS:
        response = admin_client.get(f"/reports/?start=2026-07-01&end=2026-07-02&group_by={group_by}")
        assert response.status_code == 200, group_by
    html = admin_client.get("/reports/?start=2026-07-01&end=2026-07-02&group_by=day").get_data(as_text=True)
    assert html.count('class="sl-line"') == 1 and ">01.07</text>" in html
    html = admin_client.get("/reports/?start=2026-07-01&end=2026-07-02&group_by=weekday_hour").get_data(as_text=True)
    assert "Wed 09:00" in html
    operators = rows_by_first_cell(tables(admin_client.get(
        "/reports/?start=2026-07-01&end=2026-07-02&group_by=operator").get_data(as_text=True))["traffic"])
    assert operators["Demo operator"][1:3] == ["2", "2"] and "op3" in operators


def test_chart_geometry_stacks_to_offered_and_breaks_the_line_at_gaps(app):
    from web_ui.reports import bar_chart
    def row(hour, offered, answered, abandoned, level):
        return {"key": hour, "label": f"{hour:02d}:00", "offered": offered, "answered": answered,
                "abandoned": abandoned, "service_level": level}
    rows = [row(9, 10, 6, 2, 0.5), row(10, 4, 4, 0, 1.0), row(11, 1, 0, 0, None), row(12, 5, 2, 1, 0.25),
            row(13, 3, 3, 0, 1.0)]
    with app.test_request_context():
        chart = bar_chart(rows, lambda r: r["label"])
    assert chart["ticks"][-1]["value"] == 10  # the axis ends on a round number at or over the peak
    first = chart["bars"][0]
    assert [(seg["kind"], seg["value"]) for seg in first["segments"]] == [("answered", 6), ("abandoned", 2),
                                                                             ("other", 2)]
    assert sum(seg["h"] for seg in first["segments"]) == pytest.approx(chart["bottom"] - chart["top"], abs=0.2)
    assert first["segments"][0]["y"] + first["segments"][0]["h"] == pytest.approx(chart["bottom"], abs=0.1)
    assert len(chart["points"]) == 4 and len(chart["sl_lines"]) == 2  # 09-10 and 12-13, nothing through 11


def test_presets_defaults_and_bad_input(admin_client, page_journal):
    today = datetime.datetime.now(reports.zone(SOFIA)).date()
    html = admin_client.get("/reports/").get_data(as_text=True)
    assert f'name="start" value="{today.isoformat()}"' in html and f'name="end" value="{today.isoformat()}"' in html
    html = admin_client.get("/reports/?preset=yesterday").get_data(as_text=True)
    yesterday = (today - datetime.timedelta(days=1)).isoformat()
    assert f'name="start" value="{yesterday}"' in html and f'name="end" value="{yesterday}"' in html
    html = admin_client.get("/reports/?preset=season").get_data(as_text=True)
    assert f'name="start" value="{(today - datetime.timedelta(days=59)).isoformat()}"' in html
    html = admin_client.get("/reports/?preset=7d").get_data(as_text=True)
    assert f'name="start" value="{(today - datetime.timedelta(days=6)).isoformat()}"' in html
    response = admin_client.get("/reports/?start=yesterday&end=<script>&group_by=nonsense&short=x")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Dates must look like" in html and 'value="<script>"' not in html
    html = admin_client.get("/reports/?start=2026-07-02&end=2026-07-01").get_data(as_text=True)
    assert "were swapped" in html and rows_by_first_cell(tables(html)["traffic"])["Total"][1] == "12"


def test_free_calculator_on_the_page(admin_client):
    html = admin_client.get("/reports/?calc_calls=200&calc_aht=180&calc_target=20&calc_level=80").get_data(
        as_text=True)
    assert "14 operator(s) for 10.00 erlangs" in html and "88.8 %" in html
    calc = rows_by_first_cell(tables(html)["calc-table"])
    assert list(calc) == ["12", "13", "14", "15", "16"] and calc["13"][2] == "79.6 %"
    html = admin_client.get("/reports/?calc_calls=0").get_data(as_text=True)
    assert "no operator needed" in html


def test_csv_export(admin_client, page_journal):
    insert_call(page_journal.conn, "2026-07-02T08:00:00.000+00:00", "missed", line="лінія")
    response = admin_client.get("/reports/export.csv?start=2026-07-01&end=2026-07-02&group_by=line")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="hotline-traffic-2026-07-01_2026-07-02-line.csv"')
    assert response.data.startswith(b"\xef\xbb\xbf")  # the BOM makes Excel read UTF-8
    lines = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert lines[0][:2] == ["Group", "Offered"]
    groups = {line[0]: line for line in lines[1:]}
    assert groups["Demo SIM 1"][1] == "10" and groups["лінія"][1] == "1" and groups["Total"][1] == "13"
    heat = admin_client.get("/reports/export.csv?kind=heat_map&start=2026-07-01&end=2026-07-02")
    assert 'filename="hotline-heat-map-2026-07-01_2026-07-02.csv"' in heat.headers["Content-Disposition"]
    assert heat.data.decode("utf-8-sig").splitlines()[3].startswith("Wed,")
    staffing = admin_client.get("/reports/export.csv?kind=staffing&start=2026-07-01&end=2026-07-02")
    assert staffing.data.decode("utf-8-sig").splitlines()[1].startswith("09:00,5,2.50")


def login_as(app, client, username, role):
    """Create an account with ``role`` and log the client in with it."""
    with app.app_context():
        from web_ui.db import get_db
        accounts.create_user(get_db(), username, f"{username} password 123", role)
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": f"{username} password 123"})
    assert response.status_code == 302


def test_operators_get_403_supervisors_get_the_reports(admin_client, app):
    login_as(app, admin_client, "olga", "operator")
    for path in ("/reports/", "/reports/export.csv", "/reports/export.csv?kind=staffing"):
        assert admin_client.get(path).status_code == 403
    assert 'href="/reports/"' not in admin_client.get("/").get_data(as_text=True)
    login_as(app, admin_client, "sveta", "supervisor")
    assert admin_client.get("/reports/").status_code == 200
    assert admin_client.get("/reports/export.csv").status_code == 200
    assert 'href="/reports/"' in admin_client.get("/").get_data(as_text=True)


def test_reports_need_a_login(admin_client):
    admin_client.post("/logout")
    for path in ("/reports/", "/reports/export.csv"):
        response = admin_client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
