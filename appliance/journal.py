"""The call journal: SQLite in WAL mode, versioned migrations, durable commits.

``synchronous=FULL`` makes every commit reach the disk before it returns, so a power
cut loses nothing that was committed; WAL lets the web UI read while the engine writes.
"""
import datetime
import json
import sqlite3

JOURNAL_FILE = "journal.sqlite3"

# Each migration takes the schema from version i to i+1; never edit one that shipped.
MIGRATIONS = (
    """
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        line_id TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        caller TEXT NOT NULL DEFAULT '',
        callee TEXT NOT NULL DEFAULT '',
        started_at TEXT NOT NULL,
        answered_at TEXT,
        ended_at TEXT,
        outcome TEXT,
        ended_by TEXT,
        talk_seconds REAL,
        digits TEXT NOT NULL DEFAULT '',
        recording TEXT
    );
    CREATE INDEX calls_started ON calls (started_at);
    CREATE INDEX calls_caller ON calls (caller);
    CREATE TABLE call_events (
        id INTEGER PRIMARY KEY,
        call_id INTEGER NOT NULL REFERENCES calls (id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX call_events_call ON call_events (call_id);
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'operator')),
        created_at TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE line_events (
        id INTEGER PRIMARY KEY,
        line_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX line_events_line ON line_events (line_id, at);
    CREATE TABLE sms (
        id INTEGER PRIMARY KEY,
        line_id TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        peer TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL
    );
    CREATE INDEX sms_peer ON sms (peer, at);
    """,
    """
    ALTER TABLE calls ADD COLUMN flow TEXT;
    ALTER TABLE calls ADD COLUMN campaign TEXT;
    ALTER TABLE calls ADD COLUMN language TEXT;
    ALTER TABLE calls ADD COLUMN queue TEXT;
    ALTER TABLE calls ADD COLUMN operator TEXT;
    ALTER TABLE calls ADD COLUMN wait_seconds REAL;
    ALTER TABLE calls ADD COLUMN collected TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE calls ADD COLUMN role TEXT NOT NULL DEFAULT 'caller';
    ALTER TABLE calls ADD COLUMN parent_id INTEGER;
    CREATE INDEX calls_parent ON calls (parent_id);
    CREATE TABLE callbacks (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL,
        line_id TEXT NOT NULL DEFAULT '',
        queue TEXT NOT NULL DEFAULT '',
        call_id INTEGER,
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'failed', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        closed_at TEXT,
        closed_reason TEXT,
        last_call_id INTEGER
    );
    CREATE UNIQUE INDEX callbacks_one_open ON callbacks (number) WHERE status = 'open';
    CREATE TABLE voicemail (
        id INTEGER PRIMARY KEY,
        call_id INTEGER NOT NULL REFERENCES calls (id),
        number TEXT NOT NULL,
        recording TEXT NOT NULL,
        seconds REAL NOT NULL,
        created_at TEXT NOT NULL,
        heard INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL CHECK (channel IN ('sms', 'email', 'webhook')),
        target TEXT NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        sent_at TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    CREATE TABLE pinned_recordings (
        recording TEXT PRIMARY KEY,
        number TEXT NOT NULL DEFAULT '',
        pinned_at TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE calls ADD COLUMN category TEXT;
    ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
    ALTER TABLE users ADD COLUMN operator_id TEXT;
    CREATE TABLE call_notes (
        id INTEGER PRIMARY KEY,
        call_id INTEGER NOT NULL REFERENCES calls (id),
        author TEXT NOT NULL,
        at TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX call_notes_call ON call_notes (call_id);
    CREATE TABLE call_tags (
        call_id INTEGER NOT NULL REFERENCES calls (id),
        tag TEXT NOT NULL,
        PRIMARY KEY (call_id, tag)
    );
    CREATE TABLE contacts (
        number TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        updated_at TEXT NOT NULL
    );
    CREATE TABLE reminders (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL,
        due_at TEXT NOT NULL,
        text TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at TEXT NOT NULL,
        done_at TEXT,
        callback_id INTEGER
    );
    CREATE INDEX reminders_due ON reminders (done_at, due_at);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        username TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'operator')),
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
    );
    """,
    # The reports' roll-up (appliance/reports.py): caller rows and operator legs summed per
    # UTC quarter hour (every time zone's midnight falls on one). Triggers mark the quarter
    # of every changed call dirty in the same transaction; a report recomputes dirty
    # quarters from the calls before it reads, so the roll-up is never stale.
    """
    CREATE TABLE report_slots (
        slot INTEGER NOT NULL,
        line TEXT NOT NULL,
        queue TEXT NOT NULL,
        operator TEXT NOT NULL,
        kind TEXT NOT NULL,
        abandon_wait INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        within INTEGER NOT NULL,
        wait_sum REAL NOT NULL,
        wait_max REAL,
        handle_sum REAL NOT NULL,
        handles INTEGER NOT NULL,
        PRIMARY KEY (slot, line, queue, operator, kind, abandon_wait)
    ) WITHOUT ROWID;
    CREATE TABLE report_legs (
        slot INTEGER NOT NULL,
        operator TEXT NOT NULL,
        rung INTEGER NOT NULL,
        not_taken INTEGER NOT NULL,
        PRIMARY KEY (slot, operator)
    ) WITHOUT ROWID;
    CREATE TABLE report_dirty (slot INTEGER PRIMARY KEY);
    CREATE TABLE report_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TRIGGER report_call_added AFTER INSERT ON calls BEGIN
        INSERT OR IGNORE INTO report_dirty (slot)
            SELECT CAST(strftime('%s', started_at) AS INTEGER) / 900 FROM calls
             WHERE id IN (NEW.id, NEW.parent_id) AND strftime('%s', started_at) IS NOT NULL;
    END;
    CREATE TRIGGER report_call_changed AFTER UPDATE OF line_id, direction, started_at, outcome, talk_seconds,
            queue, operator, wait_seconds, role, parent_id ON calls BEGIN
        INSERT OR IGNORE INTO report_dirty (slot)
            SELECT CAST(strftime('%s', started_at) AS INTEGER) / 900 FROM calls
             WHERE id IN (NEW.id, NEW.parent_id, OLD.parent_id) AND strftime('%s', started_at) IS NOT NULL;
        INSERT OR IGNORE INTO report_dirty (slot)
            SELECT CAST(strftime('%s', OLD.started_at) AS INTEGER) / 900 WHERE strftime('%s', OLD.started_at) IS NOT NULL;
    END;
    CREATE TRIGGER report_call_removed AFTER DELETE ON calls BEGIN
        INSERT OR IGNORE INTO report_dirty (slot)
            SELECT CAST(strftime('%s', started_at) AS INTEGER) / 900 FROM calls
             WHERE id = OLD.parent_id AND strftime('%s', started_at) IS NOT NULL;
        INSERT OR IGNORE INTO report_dirty (slot)
            SELECT CAST(strftime('%s', OLD.started_at) AS INTEGER) / 900 WHERE strftime('%s', OLD.started_at) IS NOT NULL;
    END;
    """,
    # 6: thinner roll-ups read by the reports, derived from report_slots (whose quarters
    # split by line x queue x operator hold about one call a row): per quarter without the
    # line, queue and operator for the reports by time; per UTC day and one of line, queue or
    # operator for those by id. Abandoned waits to the second are read through a partial
    # index. The next report rebuilds the roll-up into them.
    """
    CREATE TABLE report_times (
        slot INTEGER NOT NULL,
        kind TEXT NOT NULL,
        queued INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        within INTEGER NOT NULL,
        wait_sum REAL NOT NULL,
        wait_max REAL,
        handle_sum REAL NOT NULL,
        handles INTEGER NOT NULL,
        PRIMARY KEY (slot, kind, queued)
    ) WITHOUT ROWID;
    CREATE TABLE report_days (
        dim TEXT NOT NULL,
        day INTEGER NOT NULL,
        value TEXT NOT NULL,
        kind TEXT NOT NULL,
        calls INTEGER NOT NULL,
        within INTEGER NOT NULL,
        wait_sum REAL NOT NULL,
        wait_max REAL,
        handle_sum REAL NOT NULL,
        handles INTEGER NOT NULL,
        PRIMARY KEY (dim, day, value, kind)
    ) WITHOUT ROWID;
    CREATE INDEX report_slots_abandons ON report_slots (abandon_wait, slot, line, queue, operator, calls)
        WHERE kind = 'abandoned';
    DELETE FROM report_meta;
    """,
)


CACHE_KIB = 512  # SQLite's page cache per connection


def now():
    """The current time as an ISO-8601 UTC string with milliseconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def connect(path):
    """Open the journal at ``path``, migrating it to the current schema."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    # SQLite's default 2 MB page cache fills with the journal as it grows (about 1 KB a call)
    # and is never given back; the kernel caches the file anyway, so a small one costs little.
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    migrate(conn)
    return conn


def migrate(conn):
    """Apply every migration the database has not seen yet, each in one transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                conn.execute("ROLLBACK")  # the other process got here first
                continue
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def statements(script):
    """The SQL statements of a migration script; a trigger's body keeps its inner semicolons."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


def schema_version(conn):
    """The schema version the database is at."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


class Journal:
    """Calls and their timelines; each method is one committed transaction.

    A call costs two fsyncs: its start and its final record are durable commits; what
    happens in between (answer, timeline, keys, queue and operator, the operator legs the
    box placed for it, the compressed recording's name) is committed without one and
    reaches the disk with the final record. A power cut mid-call keeps the call (closed as
    interrupted on start) and may lose what was written since it began; a killed engine
    loses nothing.
    """

    def __init__(self, conn):
        self.conn = conn

    @classmethod
    def open(cls, path):
        """Open (and migrate) the journal at ``path``."""
        return cls(connect(path))

    def close(self):
        """Close the database; safe to call twice."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def start_call(self, line_id, direction, caller="", callee="", role="caller", parent_id=None):
        """Record a new call and its first event; return its id.

        ``role`` says what the call is for: a caller ringing in, an operator leg the box
        placed for a caller (``parent_id``), a call-back, or a test call.
        """
        at = now()
        with self._transaction(durable=parent_id is None):  # a leg is carried to disk by its caller's end
            cursor = self.conn.execute(
                "INSERT INTO calls (line_id, direction, caller, callee, started_at, role, parent_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (line_id, direction, caller, callee, at, role, parent_id))
            call_id = cursor.lastrowid
            self._event(call_id, "ring" if direction == "in" else "dial", {"caller": caller, "callee": callee}, at)
        return call_id

    def add_event(self, call_id, kind, **detail):
        """Append an event to a call's timeline."""
        with self._transaction(durable=False):
            self._event(call_id, kind, detail, now())

    def answer_call(self, call_id):
        """Mark the call answered now."""
        at = now()
        with self._transaction(durable=False):
            self.conn.execute("UPDATE calls SET answered_at = ? WHERE id = ?", (at, call_id))
            self._event(call_id, "answered", {}, at)

    def add_digit(self, call_id, digit):
        """Record a DTMF key the caller pressed."""
        at = now()
        with self._transaction(durable=False):
            self.conn.execute("UPDATE calls SET digits = digits || ? WHERE id = ?", (digit, call_id))
            self._event(call_id, "dtmf", {"digit": digit}, at)

    def end_call(self, call_id, outcome, ended_by, talk_seconds=None, recording=None):
        """Close the call with its outcome, who ended it and its recording."""
        at = now()
        detail = {"outcome": outcome, "by": ended_by}
        with self._transaction(durable=self._last_word(call_id)):
            self.conn.execute(
                "UPDATE calls SET ended_at = ?, outcome = ?, ended_by = ?, talk_seconds = ?, recording = ?"
                " WHERE id = ?", (at, outcome, ended_by, talk_seconds, recording, call_id))
            if recording:
                self._event(call_id, "recording", {"file": recording}, at)
            self._event(call_id, "ended", detail, at)

    def _last_word(self, call_id):
        """Whether closing this call must be durable at once: a leg ends without an fsync
        while its caller is still on, whose own end will carry it to disk."""
        row = self.conn.execute("SELECT c.parent_id IS NULL OR p.ended_at IS NOT NULL OR p.id IS NULL FROM calls c"
                                " LEFT JOIN calls p ON p.id = c.parent_id WHERE c.id = ?", (call_id,)).fetchone()
        return row is None or bool(row[0])

    def get_call(self, call_id):
        """One call as a dict with its ``events``, or None."""
        row = self.conn.execute("SELECT * FROM calls WHERE id = ?", (call_id,)).fetchone()
        if row is None:
            return None
        call = dict(row)
        call["events"] = [
            {"at": event["at"], "kind": event["kind"], **json.loads(event["detail"])}
            for event in self.conn.execute(
                "SELECT at, kind, detail FROM call_events WHERE call_id = ? ORDER BY id", (call_id,))
        ]
        return call

    def recent_calls(self, limit=50):
        """The newest calls first, without their events."""
        rows = self.conn.execute("SELECT * FROM calls ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]

    def add_line_event(self, line_id, kind, **detail):
        """Record something that happened to a line itself: down, up, power_cycled."""
        with self._transaction():
            self.conn.execute("INSERT INTO line_events (line_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                              (line_id, now(), kind, json.dumps(detail, ensure_ascii=False)))

    def line_events(self, line_id=None, limit=100):
        """The newest line events first, of one line or all."""
        query = "SELECT * FROM line_events" + (" WHERE line_id = ?" if line_id else "") + " ORDER BY id DESC LIMIT ?"
        rows = self.conn.execute(query, ((line_id,) if line_id else ()) + (limit,))
        return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]

    def add_sms(self, line_id, direction, peer, text, status):
        """Record an SMS received or sent (``status``: received, sent, failed: ...)."""
        with self._transaction():
            return self.conn.execute(
                "INSERT INTO sms (line_id, direction, peer, text, at, status) VALUES (?, ?, ?, ?, ?, ?)",
                (line_id, direction, peer, text, now(), status)).lastrowid

    def recent_sms(self, line_id=None, limit=50):
        """The newest SMS first, of one line or all."""
        query = "SELECT * FROM sms" + (" WHERE line_id = ?" if line_id else "") + " ORDER BY id DESC LIMIT ?"
        return [dict(row) for row in self.conn.execute(query, ((line_id,) if line_id else ()) + (limit,))]

    CALL_FIELDS = ("flow", "campaign", "language", "queue", "operator", "wait_seconds", "role", "parent_id",
                   "recording")

    def set_call(self, call_id, **fields):
        """Set columns of a call (flow, campaign, language, queue, operator, wait_seconds, role, parent_id)."""
        unknown = set(fields) - set(self.CALL_FIELDS)
        if unknown:
            raise ValueError(f"not call fields: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._transaction(durable=False):
            self.conn.execute(f"UPDATE calls SET {assignments} WHERE id = ?", (*fields.values(), call_id))

    def set_collected(self, call_id, field, value):
        """Store digits the caller entered for ``field`` (an application number) on the call."""
        with self._transaction(durable=False):
            row = self.conn.execute("SELECT collected FROM calls WHERE id = ?", (call_id,)).fetchone()
            collected = dict(json.loads(row["collected"]), **{field: value})
            self.conn.execute("UPDATE calls SET collected = ? WHERE id = ?",
                              (json.dumps(collected, ensure_ascii=False), call_id))
            self._event(call_id, "collected", {"field": field, "value": value}, now())

    def calls_by_caller(self, number, limit=50):
        """Earlier calls from one number, newest first (the caller's card)."""
        rows = self.conn.execute("SELECT * FROM calls WHERE caller = ? AND role = 'caller' ORDER BY id DESC LIMIT ?",
                                 (number, limit))
        return [dict(row) for row in rows]

    def recent_waits(self, queue, limit=20):
        """(wait, talk) seconds of the queue's latest answered callers, newest first."""
        rows = self.conn.execute(
            "SELECT wait_seconds, talk_seconds FROM calls WHERE queue = ? AND role = 'caller' AND operator IS NOT NULL"
            " AND talk_seconds IS NOT NULL ORDER BY id DESC LIMIT ?", (queue, limit))
        return [(row[0] or 0.0, row[1] or 0.0) for row in rows]

    # --- call-back tasks: one open task per number --------------------------------

    def open_callback(self, number, reason, line_id="", queue="", call_id=None, due_at=None):
        """Open a call-back task for ``number``, or return the one already open; return (id, created)."""
        at = now()
        with self._transaction():
            row = self.conn.execute("SELECT id FROM callbacks WHERE number = ? AND status = 'open'",
                                    (number,)).fetchone()
            if row is not None:
                return row["id"], False
            cursor = self.conn.execute(
                "INSERT INTO callbacks (number, line_id, queue, call_id, reason, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (number, line_id, queue, call_id, reason, at, due_at or at))
            return cursor.lastrowid, True

    def open_callbacks(self):
        """Open call-back tasks, oldest first."""
        return [dict(row) for row in self.conn.execute(
            "SELECT * FROM callbacks WHERE status = 'open' ORDER BY created_at, id")]

    def callback(self, task_id):
        """One call-back task, or None."""
        row = self.conn.execute("SELECT * FROM callbacks WHERE id = ?", (task_id,)).fetchone()
        return dict(row) if row else None

    def callback_attempt(self, task_id, call_id, next_attempt_at, give_up):
        """Count an attempt that did not reach the caller; fail the task when ``give_up``."""
        with self._transaction():
            self.conn.execute(
                "UPDATE callbacks SET attempts = attempts + 1, last_call_id = ?, next_attempt_at = ?,"
                " status = CASE WHEN ? THEN 'failed' ELSE status END,"
                " closed_at = CASE WHEN ? THEN ? ELSE closed_at END,"
                " closed_reason = CASE WHEN ? THEN 'not reached' ELSE closed_reason END WHERE id = ?",
                (call_id, next_attempt_at, give_up, give_up, now(), give_up, task_id))

    def close_callback(self, number, reason, call_id=None):
        """Close the open task of ``number`` (reached, called again, cancelled); return its id or None."""
        with self._transaction():
            row = self.conn.execute("SELECT id FROM callbacks WHERE number = ? AND status = 'open'",
                                    (number,)).fetchone()
            if row is None:
                return None
            status = "cancelled" if reason == "cancelled" else "done"
            self.conn.execute("UPDATE callbacks SET status = ?, closed_at = ?, closed_reason = ?,"
                              " last_call_id = COALESCE(?, last_call_id) WHERE id = ?",
                              (status, now(), reason, call_id, row["id"]))
            return row["id"]

    def add_voicemail(self, call_id, number, recording, seconds):
        """Record a voicemail message left on ``call_id``; return its id."""
        with self._transaction():
            self._event(call_id, "voicemail", {"file": recording, "seconds": seconds}, now())
            return self.conn.execute(
                "INSERT INTO voicemail (call_id, number, recording, seconds, created_at) VALUES (?, ?, ?, ?, ?)",
                (call_id, number, recording, seconds, now())).lastrowid

    def voicemails(self, limit=50):
        """The newest voicemail messages first."""
        return [dict(row) for row in self.conn.execute("SELECT * FROM voicemail ORDER BY id DESC LIMIT ?", (limit,))]

    def recordings_deleted(self, paths):
        """Retention removed these recordings: the calls keep their row, without the file."""
        with self._transaction():
            for path in paths:
                for row in self.conn.execute("SELECT id FROM calls WHERE recording = ?", (path,)).fetchall():
                    self.conn.execute("UPDATE calls SET recording = NULL WHERE id = ?", (row[0],))
                    self._event(row[0], "recording_deleted", {"file": path, "by": "retention"}, now())

    def pinned_recordings(self):
        """Recordings a caller card pins: retention never deletes them."""
        return {row[0] for row in self.conn.execute("SELECT recording FROM pinned_recordings")}

    def close_unfinished(self, reason):
        """End calls that a previous run left open (it died mid-call); return their ids."""
        at = now()
        with self._transaction():
            open_ids = [row[0] for row in self.conn.execute("SELECT id FROM calls WHERE ended_at IS NULL")]
            for call_id in open_ids:
                self.conn.execute("UPDATE calls SET ended_at = ?, outcome = 'interrupted', ended_by = 'box'"
                                  " WHERE id = ?", (at, call_id))
                self._event(call_id, "ended", {"outcome": "interrupted", "by": "box", "reason": reason}, at)
        return open_ids

    def last_call_id(self):
        """The highest call id so far (0 for an empty journal)."""
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()[0]

    def salvage_recording(self, call_id, kind, relative, seconds, reason):
        """Attach a file a crash cut off to its call (``kind`` recording or voicemail); False if already attached.

        The call's timeline says what happened; a recording becomes the call's recording,
        a voicemail message joins the voicemail list. Nothing is attached to a call that
        the journal does not have (a journal restored from an older backup).
        """
        with self._transaction():
            call = self.conn.execute("SELECT recording, caller FROM calls WHERE id = ?", (call_id,)).fetchone()
            if call is None or self._attached(call, kind, relative):
                return False
            at = now()
            if kind == "recording":
                self.conn.execute("UPDATE calls SET recording = ? WHERE id = ?", (relative, call_id))
            else:
                self.conn.execute("INSERT INTO voicemail (call_id, number, recording, seconds, created_at)"
                                  " VALUES (?, ?, ?, ?, ?)", (call_id, call["caller"], relative, seconds, at))
            self._event(call_id, "recording_salvaged",
                        {"what": kind, "file": relative, "seconds": round(seconds, 2), "reason": reason}, at)
        return True

    def _attached(self, call, kind, relative):
        if kind == "recording":
            return bool(call["recording"])
        return self.conn.execute("SELECT 1 FROM voicemail WHERE recording = ?", (relative,)).fetchone() is not None

    def _event(self, call_id, kind, detail, at):
        self.conn.execute("INSERT INTO call_events (call_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                          (call_id, at, kind, json.dumps(detail, ensure_ascii=False)))

    def _transaction(self, durable=True):
        return Transaction(self.conn, durable)


class Transaction:
    """``with Transaction(conn):`` BEGIN IMMEDIATE ... COMMIT, rolled back on error.

    A ``durable`` commit (the default) is on disk when it returns: synchronous=FULL makes
    SQLite fsync the WAL. ``durable=False`` commits without the fsync (synchronous=NORMAL);
    in WAL mode such a commit is still atomic and survives a crash of the process, and a
    power cut can only take it back together with every later one, up to the next durable
    commit or checkpoint, whose fsync carries it to disk too.
    """

    def __init__(self, conn, durable=True):
        self.conn, self.durable = conn, durable

    def __enter__(self):
        if not self.durable:
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        try:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            if not self.durable:
                self.conn.execute("PRAGMA synchronous=FULL")
        return False
