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
)


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
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def schema_version(conn):
    """The schema version the database is at."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


class Journal:
    """Calls and their timelines; each method is one committed transaction."""

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

    def start_call(self, line_id, direction, caller="", callee=""):
        """Record a new call and its first event; return its id."""
        at = now()
        with self._transaction():
            cursor = self.conn.execute(
                "INSERT INTO calls (line_id, direction, caller, callee, started_at) VALUES (?, ?, ?, ?, ?)",
                (line_id, direction, caller, callee, at))
            call_id = cursor.lastrowid
            self._event(call_id, "ring" if direction == "in" else "dial", {"caller": caller, "callee": callee}, at)
        return call_id

    def add_event(self, call_id, kind, **detail):
        """Append an event to a call's timeline."""
        with self._transaction():
            self._event(call_id, kind, detail, now())

    def answer_call(self, call_id):
        """Mark the call answered now."""
        at = now()
        with self._transaction():
            self.conn.execute("UPDATE calls SET answered_at = ? WHERE id = ?", (at, call_id))
            self._event(call_id, "answered", {}, at)

    def add_digit(self, call_id, digit):
        """Record a DTMF key the caller pressed."""
        at = now()
        with self._transaction():
            self.conn.execute("UPDATE calls SET digits = digits || ? WHERE id = ?", (digit, call_id))
            self._event(call_id, "dtmf", {"digit": digit}, at)

    def end_call(self, call_id, outcome, ended_by, talk_seconds=None, recording=None):
        """Close the call with its outcome, who ended it and its recording."""
        at = now()
        detail = {"outcome": outcome, "by": ended_by}
        with self._transaction():
            self.conn.execute(
                "UPDATE calls SET ended_at = ?, outcome = ?, ended_by = ?, talk_seconds = ?, recording = ?"
                " WHERE id = ?", (at, outcome, ended_by, talk_seconds, recording, call_id))
            if recording:
                self._event(call_id, "recording", {"file": recording}, at)
            self._event(call_id, "ended", detail, at)

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

    def close_unfinished(self, reason):
        """End calls that a previous run left open (it died mid-call); return how many."""
        at = now()
        with self._transaction():
            open_ids = [row[0] for row in self.conn.execute("SELECT id FROM calls WHERE ended_at IS NULL")]
            for call_id in open_ids:
                self.conn.execute("UPDATE calls SET ended_at = ?, outcome = 'interrupted', ended_by = 'box'"
                                  " WHERE id = ?", (at, call_id))
                self._event(call_id, "ended", {"outcome": "interrupted", "by": "box", "reason": reason}, at)
        return len(open_ids)

    def _event(self, call_id, kind, detail, at):
        self.conn.execute("INSERT INTO call_events (call_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                          (call_id, at, kind, json.dumps(detail, ensure_ascii=False)))

    def _transaction(self):
        return Transaction(self.conn)


class Transaction:
    """``with Transaction(conn):`` BEGIN IMMEDIATE ... COMMIT, rolled back on error."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False
