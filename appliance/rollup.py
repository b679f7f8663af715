"""The reports' roll-up: caller rows and operator legs summed per UTC quarter hour, in SQLite.

A season's journal holds a million rows; reading them into Python for every report takes
seconds. The roll-up (tables ``report_slots`` and ``report_legs``, see journal.py) keeps
the sums a report needs per quarter hour, line, queue, operator and column. Split that
finely a quarter holds about one call a row, so two thinner tables are derived from it as
its quarters are recomputed: ``report_times`` (per quarter and column, for reports by time)
and ``report_days`` (per UTC day and one line, queue or operator, for reports by id). Every
zone's UTC offset is a whole number of quarter hours today, so local days, hours and half
hours are unions of quarters.

It is never stale: triggers on ``calls`` mark the quarter of every changed row (and of
its parent caller) in ``report_dirty`` in the engine's own transaction, and ``refresh``
recomputes the dirty quarters from the calls before a report reads. Two figures depend on
a threshold: abandoned waits are kept to the second (so any short-abandon limit up to
600 s is exact), and "answered within T" is computed with the queues' targets stored in
``report_meta``; other targets rebuild the roll-up, in small transactions so the engine
never waits long for the journal.
"""
import datetime
import json

from appliance.journal import Transaction as _write  # BEGIN IMMEDIATE: the engine waits at most one chunk

SLOT_SECONDS = 900
MAX_SHORT_SECONDS = 600  # abandoned waits are kept to the second up to here (the report page's bound)
DEFAULT_TARGET = 20
REFRESH_SLOTS = 400  # quarters recomputed per transaction (about four days)
MARK_IDS = 50000  # call ids scanned per transaction while everything is marked for a rebuild

_SLOT = "CAST(strftime('%s', c.started_at) AS INTEGER) / 900"
_KIND = ("CASE c.outcome WHEN 'answered' THEN 'answered' WHEN 'abandoned' THEN 'abandoned'"
         " WHEN 'voicemail' THEN 'voicemail' WHEN 'call-back' THEN 'callback' WHEN 'ivr' THEN 'ivr'"
         " WHEN 'missed' THEN 'missed' WHEN 'blocked' THEN 'blocked' ELSE 'other' END")
# Abandoned: the wait's whole seconds (-1 below zero, 600 from 600 s on or unknown); -2 otherwise.
_ABANDON_WAIT = ("CASE WHEN c.outcome <> 'abandoned' THEN -2 WHEN c.wait_seconds IS NULL THEN 600"
                 " ELSE MIN(600, MAX(-1, CAST(c.wait_seconds AS INTEGER)"
                 " - (c.wait_seconds < CAST(c.wait_seconds AS INTEGER)))) END")
_WITHIN = ("CASE WHEN c.outcome = 'answered' AND COALESCE(c.wait_seconds, 0) <= COALESCE("
           "(SELECT t.value FROM json_each(:queues) t WHERE t.key = COALESCE(c.queue, '')), :default)"
           " THEN 1 ELSE 0 END")
# The handle time of an answered call: its operator leg's talk (the caller's own counts the menus).
_HANDLE = ("CASE WHEN c.outcome = 'answered' THEN COALESCE((SELECT o.talk_seconds FROM calls o"
           " WHERE o.parent_id = c.id AND o.role = 'operator' AND o.outcome = 'answered'"
           " ORDER BY o.id DESC LIMIT 1), c.talk_seconds) END")

SLOTS_SQL = f"""
    INSERT INTO report_slots
    SELECT slot, line, queue, operator, kind, abandon_wait, COUNT(*), SUM(within), TOTAL(wait),
           MAX(raw_wait), TOTAL(handle), COUNT(handle)
      FROM (SELECT {_SLOT} AS slot, COALESCE(c.line_id, '') AS line, COALESCE(c.queue, '') AS queue,
                   COALESCE(c.operator, '') AS operator, {_KIND} AS kind, {_ABANDON_WAIT} AS abandon_wait,
                   {_WITHIN} AS within, COALESCE(c.wait_seconds, 0) AS wait, c.wait_seconds AS raw_wait,
                   {_HANDLE} AS handle
              FROM calls c
             WHERE c.role = 'caller' AND c.direction = 'in' AND c.started_at >= :low AND c.started_at < :high
               AND {_SLOT} BETWEEN :first AND :last
               AND {_SLOT} IN (SELECT slot FROM report_dirty WHERE slot BETWEEN :first AND :last))
     GROUP BY 1, 2, 3, 4, 5, 6
"""
LEGS_SQL = f"""
    INSERT INTO report_legs
    SELECT slot, operator, COUNT(*), SUM(not_taken)
      FROM (SELECT {_SLOT} AS slot, c.operator AS operator,
                   COALESCE(c.outcome IN ('no answer', 'refused', 'not accepted', 'busy'), 0) AS not_taken
              FROM calls c
             WHERE c.role = 'operator' AND c.operator IS NOT NULL
               AND c.started_at >= :low AND c.started_at < :high
               AND {_SLOT} BETWEEN :first AND :last
               AND {_SLOT} IN (SELECT slot FROM report_dirty WHERE slot BETWEEN :first AND :last))
     GROUP BY 1, 2
"""


_SUMS = "SUM(calls), SUM(within), TOTAL(wait_sum), MAX(wait_max), TOTAL(handle_sum), SUM(handles)"
DIMS = ("line", "queue", "operator")
DAY_SLOTS = 86400 // SLOT_SECONDS
TIMES_SQL = f"""
    INSERT INTO report_times
    SELECT slot, kind, queue <> '', {_SUMS} FROM report_slots
     WHERE slot BETWEEN :first AND :last
       AND slot IN (SELECT slot FROM report_dirty WHERE slot BETWEEN :first AND :last)
     GROUP BY 1, 2, 3
"""
DAYS_SQL = " UNION ALL ".join(
    f"SELECT '{dim}', slot / {DAY_SLOTS}, {dim}, kind, {_SUMS} FROM report_slots"
    f" WHERE slot >= :day_first * {DAY_SLOTS} AND slot < (:day_last + 1) * {DAY_SLOTS}"
    f" AND slot / {DAY_SLOTS} IN (SELECT value FROM json_each(:days)) GROUP BY 2, 3, 4" for dim in DIMS)


def targets_of(service_level=None):
    """The service-level targets as stored: {"default": T, "queues": {queue: T}} (see reports.target_seconds_for)."""
    if isinstance(service_level, dict):
        return {"default": DEFAULT_TARGET, "queues": {queue: t for queue, t in service_level.items() if t}}
    return {"default": service_level or DEFAULT_TARGET, "queues": {}}


def refresh(conn, service_level=None, keep_targets=False):
    """Bring the roll-up up to date with the calls (and with these targets, unless ``keep_targets``)."""
    stored = _meta(conn, "targets")
    wanted = stored if keep_targets and stored else json.dumps(targets_of(service_level), sort_keys=True)
    if stored != wanted:
        _start_rebuild(conn, wanted)
    while _mark_some(conn):
        pass
    while _recompute_some(conn):
        pass


def invalidate(conn):
    """Forget the roll-up's state: the next report rebuilds it from the calls (after a restore)."""
    with _write(conn):
        conn.execute("DELETE FROM report_meta")


def _start_rebuild(conn, targets):
    """Store the new targets and mark every quarter the roll-up holds; the calls' are marked in chunks."""
    with _write(conn):
        conn.execute("INSERT OR IGNORE INTO report_dirty SELECT slot FROM report_slots"
                     " UNION SELECT slot FROM report_legs UNION SELECT slot FROM report_times")
        conn.execute("DELETE FROM report_days")  # every day with a call is recomputed with its quarters
        top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()[0]
        _set_meta(conn, targets=targets, marked="0", mark_until=str(top))


def _mark_some(conn, ids=MARK_IDS):
    """Mark the quarters of the next ``ids`` calls dirty; False once all are marked."""
    with _write(conn):
        marked, until = int(_meta(conn, "marked") or 0), int(_meta(conn, "mark_until") or 0)
        if marked >= until:
            return False
        last = min(until, marked + ids)
        conn.execute(f"INSERT OR IGNORE INTO report_dirty SELECT DISTINCT {_SLOT} FROM calls c"
                     f" WHERE c.id > ? AND c.id <= ? AND {_SLOT} IS NOT NULL", (marked, last))
        _set_meta(conn, marked=str(last))
    return True


def _recompute_some(conn):
    """Recompute the oldest dirty quarters from the calls; False when none was dirty."""
    with _write(conn):
        slots = [row[0] for row in conn.execute("SELECT slot FROM report_dirty ORDER BY slot LIMIT ?",
                                                 (REFRESH_SLOTS,))]
        if not slots:
            return False
        targets = json.loads(_meta(conn, "targets") or json.dumps(targets_of()))
        first, last = slots[0], slots[-1]
        for table in ("report_slots", "report_legs", "report_times"):
            conn.execute(f"DELETE FROM {table} WHERE slot BETWEEN ? AND ?"
                         " AND slot IN (SELECT slot FROM report_dirty WHERE slot BETWEEN ? AND ?)",
                         (first, last, first, last))
        params = {"first": first, "last": last, **_text_bounds(first, last),
                  "queues": json.dumps(targets["queues"]), "default": targets["default"]}
        conn.execute(SLOTS_SQL, params)
        conn.execute(LEGS_SQL, params)
        conn.execute(TIMES_SQL, params)
        _recompute_days(conn, sorted({slot // DAY_SLOTS for slot in slots}))
        conn.execute("DELETE FROM report_dirty WHERE slot BETWEEN ? AND ?", (first, last))
    return True


def _recompute_days(conn, days):
    """Sum the days' quarters (just recomputed) into report_days, by line, by queue and by operator."""
    params = {"days": json.dumps(days), "day_first": days[0], "day_last": days[-1]}
    conn.execute("DELETE FROM report_days WHERE day IN (SELECT value FROM json_each(:days))", params)
    conn.execute(f"INSERT INTO report_days {DAYS_SQL}", params)


def _text_bounds(first, last):
    """The started_at bounds of quarters ``first``..``last`` for the index (see padded_bounds)."""
    low, high = (datetime.datetime.fromtimestamp(slot * SLOT_SECONDS, datetime.timezone.utc)
                 for slot in (first, last + 1))
    return dict(zip(("low", "high"), padded_bounds(low, high)))


def padded_bounds(start_utc, end_utc):
    """started_at bounds a day wider: a timestamp in another ISO style still falls inside, then is filtered exactly."""
    day = datetime.timedelta(days=1)
    return tuple(moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")
                 for moment in (start_utc - day, end_utc + day))


def _meta(conn, key):
    row = conn.execute("SELECT value FROM report_meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _set_meta(conn, **values):
    conn.executemany("INSERT OR REPLACE INTO report_meta (key, value) VALUES (?, ?)", values.items())

