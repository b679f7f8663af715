"""The reports' roll-up gives the very figures of the straightforward computation over every row.

Random journals (hypothesis) around a DST change in Sofia and one in Kathmandu's +05:45
zone: every grouping, short-abandon limit, heat map and staffing plan computed from the
roll-up equals the one computed from every caller row; it stays equal after calls change,
after the queues' targets change and after the roll-up is invalidated (a restore).
"""
import datetime
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import reports, rollup
from appliance.journal import Journal

OUTCOMES = ("answered", "answered", "answered", "abandoned", "abandoned", "voicemail", "call-back", "ivr", "missed", "blocked", "forwarded", None)
LEG_OUTCOMES = ("answered", "answered", "no answer", "refused", "busy", "cancelled", None)
QUEUES = (None, "bachelor", "master", "night-shift")
OPERATORS = (None, "op1", "op2", "op3")
LEVELS = {"bachelor": 20, "master": 45, "night-shift": 0}
# (zone, first local day, days): Sofia leaves summer time on 2026-10-25; Nepal is UTC+05:45.
# Reports by id read whole UTC days and the quarters around them; a single local day holds no
# whole UTC day, so it is read quarter by quarter.
RANGES = (("Europe/Sofia", datetime.date(2026, 10, 24), 3), ("Asia/Kathmandu", datetime.date(2026, 7, 1), 2),
          ("Europe/Sofia", datetime.date(2026, 10, 25), 1))
EPOCH = datetime.datetime(2026, 10, 23, 12, tzinfo=datetime.timezone.utc)

waits = st.one_of(st.none(), st.floats(0, 700, allow_nan=False), st.sampled_from([0.0, 4.999, 5.0, 20.0, 45.0]))
legs = st.lists(st.tuples(st.sampled_from(OPERATORS[1:]), st.sampled_from(LEG_OUTCOMES),
                          st.one_of(st.none(), st.floats(0, 900, allow_nan=False))), max_size=3)
calls = st.lists(st.fixed_dictionaries({
    "minutes": st.integers(0, 4 * 24 * 60), "outcome": st.sampled_from(OUTCOMES),
    "line": st.sampled_from(("gsm1", "gsm2")), "queue": st.sampled_from(QUEUES),
    "operator": st.sampled_from(OPERATORS), "wait": waits,
    "talk": st.one_of(st.none(), st.floats(0, 900, allow_nan=False)),
    "role": st.sampled_from(("caller", "caller", "caller", "test", "callback")), "legs": legs,
}), max_size=60)


def insert(conn, call, epoch):
    """One caller row and its operator legs, written as the engine leaves them."""
    started = (epoch + datetime.timedelta(minutes=call["minutes"], milliseconds=call["minutes"] % 997)).isoformat(
        timespec="milliseconds")
    direction = "in" if call["role"] == "caller" else "out"
    cursor = conn.execute(
        "INSERT INTO calls (line_id, direction, started_at, outcome, talk_seconds, queue, operator, wait_seconds,"
        " role) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (call["line"], direction, started, call["outcome"], call["talk"], call["queue"], call["operator"],
         call["wait"], call["role"]))
    for number, (operator, outcome, talk) in enumerate(call["legs"]):
        # the box rings operators once the caller is queued: often in a later quarter hour
        rung = (epoch + datetime.timedelta(minutes=call["minutes"] + 14 * number + 1)).isoformat(
            timespec="milliseconds")
        conn.execute("INSERT INTO calls (line_id, direction, started_at, outcome, talk_seconds, operator, role,"
                     " parent_id) VALUES ('gsm2', 'out', ?, ?, ?, ?, 'operator', ?)",
                     (rung, outcome, talk, operator, cursor.lastrowid))
    return cursor.lastrowid


def same(fast, slow):
    """Equal, floats to rounding (SQL sums in another order)."""
    if isinstance(fast, dict):
        assert fast.keys() == slow.keys()
        for key in fast:
            same(fast[key], slow[key])
    elif isinstance(fast, list):
        assert len(fast) == len(slow)
        for one, other in zip(fast, slow):
            same(one, other)
    elif isinstance(fast, float) or isinstance(slow, float):
        assert fast == pytest.approx(slow, rel=1e-9, abs=1e-9)
    else:
        assert fast == slow


def check_every_report(conn, tz, first, days, service_level=LEVELS):
    last = first + datetime.timedelta(days=days - 1)
    for short in (0, 5, 17, 600):
        for group_by in reports.GROUP_BYS:
            fast = reports.traffic(conn, first, last, tz, group_by, short, service_level)
            same(fast, reports.traffic(conn, first, last, tz, group_by, short, service_level, exact=True))
        same(reports.staffing(conn, first, last, tz, short_abandon_seconds=short),
             reports.staffing(conn, first, last, tz, short_abandon_seconds=short, exact=True))
    same(reports.heat_map(conn, first, last, tz), reports.heat_map(conn, first, last, tz, exact=True))
    assert not conn.execute("SELECT COUNT(*) FROM report_dirty").fetchone()[0]


@pytest.fixture
def book(tmp_path):
    journal = Journal.open(os.path.join(tmp_path, "journal.sqlite3"))
    yield journal
    journal.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journal_calls=calls, changes=st.lists(st.tuples(st.integers(0, 59), st.sampled_from(OUTCOMES), waits),
                                             max_size=8))
def test_the_roll_up_equals_the_straightforward_computation(book, journal_calls, changes):
    conn = book.conn
    conn.execute("DELETE FROM calls")
    rollup.invalidate(conn)
    for tz, first, days in RANGES:
        epoch = datetime.datetime.combine(first, datetime.time(), datetime.timezone.utc) - datetime.timedelta(hours=12)
        ids = [insert(conn, call, epoch) for call in journal_calls]
        check_every_report(conn, tz, first, days)
        for index, outcome, wait in changes:  # calls end, waits are written: the dirty quarters follow
            if ids:
                conn.execute("UPDATE calls SET outcome = ?, wait_seconds = ? WHERE id = ?",
                             (outcome, wait, ids[index % len(ids)]))
                # an operator leg ends later: its caller's handle time changes in another quarter
                conn.execute("UPDATE calls SET outcome = 'answered', talk_seconds = ? WHERE id = (SELECT MAX(id)"
                             " FROM calls WHERE parent_id = ?)", (wait, ids[index % len(ids)]))
        check_every_report(conn, tz, first, days)
        check_every_report(conn, tz, first, days, service_level=30)  # other targets: rebuilt, still equal


def test_quarter_offsets_find_the_dst_change_and_refuse_odd_bounds():
    sofia = reports.zone("Europe/Sofia")
    start, end = reports.utc_bounds(datetime.date(2026, 10, 24), datetime.date(2026, 10, 26), sofia)
    offsets = reports._quarter_offsets(start, end, sofia)
    change = datetime.datetime(2026, 10, 25, 1, tzinfo=datetime.timezone.utc)  # 04:00 summer time, 03:00 winter
    assert offsets == [(int(start.timestamp()) // 900, 3 * 3600), (int(change.timestamp()) // 900, 2 * 3600)]
    assert reports._quarter_offsets(start + datetime.timedelta(minutes=7), end, sofia) is None


def test_a_range_off_the_quarter_hours_or_an_odd_limit_reads_every_row(book):
    insert(book.conn, {"minutes": 10, "outcome": "abandoned", "line": "gsm1", "queue": "bachelor",
                       "operator": None, "wait": 3.5, "talk": None, "role": "caller", "legs": []}, EPOCH)
    start = EPOCH + datetime.timedelta(minutes=7)
    assert isinstance(reports.window(book.conn, start, start + datetime.timedelta(hours=1), "UTC"), reports._Rows)
    day = EPOCH.date()
    assert isinstance(reports.window(book.conn, day, day, "UTC", short_abandon_seconds=2.5), reports._Rows)
    assert isinstance(reports.window(book.conn, day, day, "UTC"), reports._Rolled)
    figures = reports.traffic(book.conn, start, start + datetime.timedelta(hours=1), "UTC", "hour", 4)["total"]
    assert (figures["offered"], figures["short_abandoned"]) == (1, 1)


def test_a_rebuild_works_in_small_transactions_and_resumes(book):
    conn = book.conn
    for minute in range(0, 3000, 7):
        insert(conn, {"minutes": minute, "outcome": "answered", "line": "gsm1", "queue": "bachelor",
                      "operator": "op1", "wait": minute % 40, "talk": 60.0, "role": "caller", "legs": []}, EPOCH)
    conn.execute("DELETE FROM report_dirty")
    rollup.invalidate(conn)
    rollup._start_rebuild(conn, '{"default": 20, "queues": {}}')
    assert rollup._mark_some(conn, ids=100)  # one small chunk marked, then the process "dies"
    assert conn.execute("SELECT value FROM report_meta WHERE key = 'marked'").fetchone()[0] == "100"
    day = EPOCH.date()
    end = day + datetime.timedelta(days=2)
    same(reports.traffic(conn, day, end, "UTC", "day", service_level=20),
         reports.traffic(conn, day, end, "UTC", "day", service_level=20, exact=True))
    assert reports.traffic(conn, day, end, "UTC", "day", service_level=20)["total"]["answered"] == 429


def test_the_handle_time_is_the_newest_answered_legs_talk_in_both(book):
    """A caller taken by a second operator after the first dropped: the second leg's talk is the handle time."""
    insert(book.conn, {"minutes": 10, "outcome": "answered", "line": "gsm1", "queue": "bachelor", "operator": "op2",
                       "wait": 3.0, "talk": 500.0, "role": "caller",
                       "legs": [("op1", "answered", 10.0), ("op2", "answered", 100.0), ("op3", "no answer", None)]},
               EPOCH)
    day = EPOCH.date()
    for exact in (False, True):
        report = reports.traffic(book.conn, day, day, "UTC", "operator", service_level={}, exact=exact)
        assert report["total"]["aht"] == 100.0
        assert {row["key"]: row["rung"] for row in report["rows"]} == {"op1": 1, "op2": 1, "op3": 1}
