"""Season reports over a million journal rows: the roll-up against reading every caller row.

A journal of 1,000,000 rows (460,000 offered calls over a 90-day season and their operator
legs) is written into a temporary file; then the roll-up is built once from the calls, and
each report over the whole season is taken from the roll-up and, once, by reading every
caller row (the exact path, the reference the tests compare the roll-up with). Also: one
call changing (a dirty quarter recomputed before the next report) and the dashboard's
figures for today.

    python bench/bench_reports.py [--rows N]
"""
import argparse
import datetime
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance import reports, rollup  # noqa: E402
from appliance.journal import Journal  # noqa: E402

TZ = "Europe/Sofia"
SEASON_START = datetime.date(2026, 6, 15)
DAYS = 90
LEVELS = {"bachelor": 20, "master": 45, "dormitories": 20}
GOAL_MS = 200
TODAY_GOAL_MS = 20


def fill(conn, rows, seed=7):
    """``rows`` journal rows: caller rows and about 1.17 operator legs each, inside the season."""
    rng = random.Random(seed)
    callers = int(rows / 2.17)
    start = datetime.datetime.combine(SEASON_START, datetime.time(6), datetime.timezone.utc)
    conn.execute("PRAGMA synchronous=OFF")  # bulk load of a test journal only
    conn.execute("BEGIN")
    written = 0
    for number in range(callers):
        at = start + datetime.timedelta(days=number * DAYS // callers, seconds=rng.randrange(12 * 3600))
        outcome = rng.choices(("answered", "abandoned", "voicemail", "ivr", "call-back", "missed", "blocked"),
                              (60, 14, 6, 12, 4, 3, 1))[0]
        queue = rng.choice((None, "bachelor", "master", "dormitories"))
        operator = f"op{rng.randrange(12)}" if outcome == "answered" else None
        wait = rng.expovariate(1 / 30) if queue else None
        stamp = at.isoformat(timespec="milliseconds")
        cursor = conn.execute(
            "INSERT INTO calls (line_id, direction, started_at, outcome, talk_seconds, queue, operator, wait_seconds,"
            " role) VALUES (?, 'in', ?, ?, ?, ?, ?, ?, 'caller')",
            (f"gsm{rng.randrange(4)}", stamp, outcome, rng.uniform(20, 400), queue, operator, wait))
        written += 1
        for _ in range(1 if rng.random() < 0.83 else 2):
            conn.execute("INSERT INTO calls (line_id, direction, started_at, outcome, talk_seconds, operator, role,"
                         " parent_id) VALUES ('gsm9', 'out', ?, ?, ?, ?, 'operator', ?)",
                         (stamp, outcome if outcome == "answered" else "no answer", rng.uniform(20, 300),
                          operator or f"op{rng.randrange(12)}", cursor.lastrowid))
            written += 1
    conn.execute("COMMIT")
    conn.execute("PRAGMA synchronous=FULL")
    return written, callers


def timed(function, repeat=3):
    """(best wall time in ms, result) of ``repeat`` runs."""
    best, result = None, None
    for _ in range(repeat):
        began = time.perf_counter()
        result = function()
        elapsed = (time.perf_counter() - began) * 1000
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="journal rows to write (default 1,000,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        book = Journal.open(os.path.join(folder, "journal.sqlite3"))
        conn = book.conn
        began = time.perf_counter()
        rows, callers = fill(conn, args.rows)
        print(f"journal: {rows:,} rows ({callers:,} caller rows over {DAYS} days) written in "
              f"{time.perf_counter() - began:.1f} s")
        conn.execute("DELETE FROM report_dirty")  # the bulk load marked them: build the roll-up the way an upgrade does
        rollup.invalidate(conn)
        build_ms, _ = timed(lambda: rollup.refresh(conn, LEVELS), repeat=1)
        slots, times, days = (conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                              for table in ("report_slots", "report_times", "report_days"))
        print(f"roll-up built from the calls in {build_ms / 1000:.1f} s: {slots:,} quarter rows by line, queue and "
              f"operator; reports read {times:,} by time and {days:,} by day and id")
        first, last = SEASON_START, SEASON_START + datetime.timedelta(days=DAYS - 1)
        runs = {f"traffic by {group_by}": (lambda exact, g=group_by: reports.traffic(
                    conn, first, last, TZ, g, 5, LEVELS, exact=exact)) for group_by in ("day", "hour", "operator")}
        runs["heat map"] = lambda exact: reports.heat_map(conn, first, last, TZ, exact=exact)
        runs["staffing"] = lambda exact: reports.staffing(conn, first, last, TZ, exact=exact)
        worst = 0.0
        for name, run in runs.items():
            fast_ms, fast = timed(lambda: run(False))
            slow_ms, slow = timed(lambda: run(True), repeat=1)
            worst = max(worst, fast_ms)
            print(f"{name:>20}: roll-up {fast_ms:7.1f} ms   every row {slow_ms:7.0f} ms   "
                  f"ratio {slow_ms / fast_ms:6.1f}x   same offered: {_offered(fast) == _offered(slow)}")
        conn.execute("UPDATE calls SET outcome = 'answered' WHERE id = (SELECT MAX(id) FROM calls WHERE role = 'caller')")
        dirty_ms, _ = timed(lambda: reports.traffic(conn, first, last, TZ, "day", 5, LEVELS), repeat=1)
        print(f"after one call changed (one quarter recomputed first): {dirty_ms:.1f} ms")
        print(f"worst report over {rows:,} rows: {worst:.1f} ms (goal <= {GOAL_MS} ms: "
              f"{'met' if worst <= GOAL_MS else 'NOT met'})")
        busy_day = datetime.datetime.combine(last, datetime.time(17), datetime.timezone.utc)  # the season's last day
        today_ms, today = timed(lambda: reports.today_figures(conn, reports.zone(TZ), LEVELS, now=busy_day))
        print(f"dashboard's figures for a day of {today['offered_today']:,} callers: {today_ms:.1f} ms "
              f"(goal <= {TODAY_GOAL_MS} ms: {'met' if today_ms <= TODAY_GOAL_MS else 'NOT met'})")
        book.close()


def _offered(report):
    if isinstance(report, list):
        return sum(map(sum, report))
    return report.get("total", {}).get("offered", report.get("days"))


if __name__ == "__main__":
    main()
