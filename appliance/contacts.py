"""Caller cards and the journal's annotations: search, notes, tags, categories, reminders, pins.

Plain functions over a journal connection (no Flask), so the web UI, the REST API and the
dashboard share one implementation. Every write is one ``Transaction``; every query is
parameterised: filter values never become SQL text.
"""
import datetime
import json

from .config import NUMBER_PATTERN
from .errors import ApplianceError
from .journal import Journal, Transaction
from .journal import now as journal_now

MAX_NOTE = 2000
MAX_TAG = 32
MAX_TAGS = 20
MAX_CATEGORY = 60
MAX_NAME = 100
MAX_STATUS = 40
MAX_CARD_NOTES = 4000
MAX_REMINDER = 500
# Statuses a card suggests; any short text is accepted (every hot-line has its own words).
SUGGESTED_STATUSES = ("new", "in progress", "waiting", "resolved", "vip")
CALL_ROLES = ("caller", "operator", "callback", "forward", "test")
# The filters search_calls understands, in the order a form shows them.
FILTERS = ("date_from", "date_to", "number", "line", "queue", "operator", "outcome", "category", "tag", "role")


class ContactError(ApplianceError, ValueError):
    """A note, tag, card or reminder was refused; ``field`` names the offending form field."""

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


# --- numbers --------------------------------------------------------------------


def valid_number(number):
    """True for a phone number the box stores: an optional + and 3-15 digits."""
    return isinstance(number, str) and NUMBER_PATTERN.fullmatch(number) is not None


def _check_number(number):
    if not valid_number(number):
        raise ContactError("number", "A number is an optional + and 3 to 15 digits.")


# --- searching the journal ------------------------------------------------------


def parse_date(text, field):
    """A YYYY-MM-DD filter value as a date, None when empty; ContactError names ``field`` otherwise."""
    if not text:
        return None
    try:
        day = datetime.date.fromisoformat(text.strip())
    except (ValueError, AttributeError) as err:
        raise ContactError(field, "Enter a date as YYYY-MM-DD.") from err
    if not 1970 <= day.year <= 2999:  # the day after 9999-12-31 does not exist
        raise ContactError(field, "Enter a date between 1970 and 2999.")
    return day


def _like(text):
    """A LIKE pattern matching ``text`` anywhere, with its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _call_filters(date_from=None, date_to=None, number=None, line=None, queue=None, operator=None, outcome=None,
                  category=None, tag=None, role="caller"):
    """The WHERE clause and its parameters for the journal filters (empty values filter nothing)."""
    clauses, params = [], []
    start, end = parse_date(date_from, "date_from"), parse_date(date_to, "date_to")
    if start and end and end < start:
        raise ContactError("date_to", "The end date is before the start date.")
    # started_at is an ISO-8601 UTC string, so dates compare as text; the end day is inclusive.
    if start:
        clauses.append("calls.started_at >= ?")
        params.append(start.isoformat())
    if end:
        clauses.append("calls.started_at < ?")
        params.append((end + datetime.timedelta(days=1)).isoformat())
    if number:
        digits = "".join(ch for ch in number if ch not in " -()/.")
        clauses.append("(calls.caller LIKE ? ESCAPE '\\' OR calls.callee LIKE ? ESCAPE '\\')")
        params += [_like(digits), _like(digits)]
    for column, value in (("line_id", line), ("queue", queue), ("operator", operator), ("outcome", outcome),
                          ("category", category), ("role", role)):
        if value:
            clauses.append(f"calls.{column} = ?")  # column names come from this tuple, never from input
            params.append(value)
    if tag:
        clauses.append("EXISTS (SELECT 1 FROM call_tags WHERE call_tags.call_id = calls.id AND call_tags.tag = ?)")
        params.append(normalise_tag(tag))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


_CALL_COLUMNS = ("calls.*, (SELECT group_concat(tag, ', ') FROM (SELECT tag FROM call_tags"
                 " WHERE call_tags.call_id = calls.id ORDER BY tag)) AS tag_list,"
                 " (SELECT COUNT(*) FROM call_notes WHERE call_notes.call_id = calls.id) AS note_count")


def search_calls(conn, date_from=None, date_to=None, number=None, line=None, queue=None, operator=None,
                 outcome=None, category=None, tag=None, role="caller", limit=50, offset=0):
    """Calls matching every given filter, newest first, with ``tag_list`` and ``note_count``."""
    where, params = _call_filters(date_from, date_to, number, line, queue, operator, outcome, category, tag, role)
    rows = conn.execute(f"SELECT {_CALL_COLUMNS} FROM calls{where} ORDER BY calls.id DESC LIMIT ? OFFSET ?",
                        (*params, int(limit), int(offset)))
    return [dict(row) for row in rows]


def count_calls(conn, date_from=None, date_to=None, number=None, line=None, queue=None, operator=None,
                outcome=None, category=None, tag=None, role="caller"):
    """How many calls match the filters (for paging)."""
    where, params = _call_filters(date_from, date_to, number, line, queue, operator, outcome, category, tag, role)
    return conn.execute(f"SELECT COUNT(*) FROM calls{where}", params).fetchone()[0]


def filter_choices(conn):
    """Values seen in the journal, offered as suggestions by the filter form."""
    def distinct(column):
        # column names are literals of this function, never input
        return [row[0] for row in conn.execute(
            f"SELECT DISTINCT {column} FROM calls WHERE {column} IS NOT NULL AND {column} != '' ORDER BY 1")]
    return {"line": distinct("line_id"), "queue": distinct("queue"), "operator": distinct("operator"),
            "outcome": distinct("outcome"), "category": distinct("category"),
            "tag": [row[0] for row in conn.execute("SELECT DISTINCT tag FROM call_tags ORDER BY 1")]}


def call_legs(conn, call_id):
    """The calls the box placed for ``call_id`` (operator legs, forwards), oldest first."""
    return [dict(row) for row in conn.execute("SELECT * FROM calls WHERE parent_id = ? ORDER BY id", (call_id,))]


def call_operator(conn, call_id):
    """The operator id of a call, or None; what decides whether an operator may open it."""
    row = conn.execute("SELECT operator FROM calls WHERE id = ?", (call_id,)).fetchone()
    return row["operator"] if row else None


def _require_call(conn, call_id):
    if conn.execute("SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone() is None:
        raise ContactError("call", f"There is no call {call_id}.")


# --- notes, tags, category ------------------------------------------------------


def add_note(conn, call_id, author, text):
    """Attach a note by ``author`` to a call; return its id."""
    text = (text or "").strip()
    if not text or len(text) > MAX_NOTE:
        raise ContactError("note", f"Write a note of 1 to {MAX_NOTE} characters.")
    with Transaction(conn):
        _require_call(conn, call_id)
        return conn.execute("INSERT INTO call_notes (call_id, author, at, text) VALUES (?, ?, ?, ?)",
                            (call_id, author, journal_now(), text)).lastrowid


def notes(conn, call_id):
    """A call's notes, oldest first."""
    return [dict(row) for row in conn.execute(
        "SELECT id, call_id, author, at, text FROM call_notes WHERE call_id = ? ORDER BY at, id", (call_id,))]


def normalise_tag(tag):
    """One tag as stored: trimmed, single spaces, lower case (so "VIP" and "vip" are one tag)."""
    return " ".join(str(tag).split()).lower()


def parse_tags(text):
    """A comma-separated form field as a list of tags."""
    return [part for part in (text or "").split(",") if part.strip()]


def clean_tags(tags):
    """Normalised, de-duplicated, sorted tags; ContactError if one is too long or there are too many."""
    cleaned = sorted({normalise_tag(tag) for tag in tags} - {""})
    if any(len(tag) > MAX_TAG for tag in cleaned):
        raise ContactError("tags", f"A tag has at most {MAX_TAG} characters.")
    if len(cleaned) > MAX_TAGS:
        raise ContactError("tags", f"At most {MAX_TAGS} tags.")
    return cleaned


def set_tags(conn, call_id, new_tags):
    """Replace a call's tags; return them as stored."""
    cleaned = clean_tags(new_tags)
    with Transaction(conn):
        _require_call(conn, call_id)
        conn.execute("DELETE FROM call_tags WHERE call_id = ?", (call_id,))
        conn.executemany("INSERT INTO call_tags (call_id, tag) VALUES (?, ?)", [(call_id, tag) for tag in cleaned])
    return cleaned


def tags(conn, call_id):
    """A call's tags, sorted."""
    return [row[0] for row in conn.execute("SELECT tag FROM call_tags WHERE call_id = ? ORDER BY tag", (call_id,))]


def set_category(conn, call_id, category):
    """Set (or with an empty value, clear) a call's category; return it as stored."""
    category = " ".join((category or "").split()) or None
    if category and len(category) > MAX_CATEGORY:
        raise ContactError("category", f"A category has at most {MAX_CATEGORY} characters.")
    with Transaction(conn):
        _require_call(conn, call_id)
        conn.execute("UPDATE calls SET category = ? WHERE id = ?", (category, call_id))
    return category


# --- caller cards ---------------------------------------------------------------


def get_contact(conn, number):
    """The card of ``number``: name, status, notes, tags (empty values when there is none yet)."""
    row = conn.execute("SELECT * FROM contacts WHERE number = ?", (number,)).fetchone()
    if row is None:
        return {"number": number, "name": "", "status": "", "notes": "", "tags": [], "updated_at": None}
    return dict(row, tags=json.loads(row["tags"]))


def save_contact(conn, number, name="", status="", notes_text="", card_tags=()):
    """Create or replace the card of ``number``; return it as stored."""
    _check_number(number)
    name, status = " ".join((name or "").split()), " ".join((status or "").split())
    notes_text = (notes_text or "").strip()
    if len(name) > MAX_NAME:
        raise ContactError("name", f"A name has at most {MAX_NAME} characters.")
    if len(status) > MAX_STATUS:
        raise ContactError("status", f"A status has at most {MAX_STATUS} characters.")
    if len(notes_text) > MAX_CARD_NOTES:
        raise ContactError("notes", f"Notes have at most {MAX_CARD_NOTES} characters.")
    cleaned = clean_tags(card_tags)
    with Transaction(conn):
        conn.execute(
            "INSERT INTO contacts (number, name, status, notes, tags, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (number) DO UPDATE SET name = excluded.name, status = excluded.status,"
            " notes = excluded.notes, tags = excluded.tags, updated_at = excluded.updated_at",
            (number, name, status, notes_text, json.dumps(cleaned, ensure_ascii=False), journal_now()))
    return get_contact(conn, number)


def calls_of(conn, number, limit=500):
    """Every call from ``number``, newest first, each with its ``notes`` and ``tags``."""
    rows = [dict(row) for row in conn.execute(
        "SELECT * FROM calls WHERE caller = ? AND role = 'caller' ORDER BY id DESC LIMIT ?", (number, int(limit)))]
    for call in rows:
        call["notes"] = notes(conn, call["id"])
        call["tags"] = tags(conn, call["id"])
        call["pinned"] = bool(call["recording"]) and is_pinned(conn, call["recording"])
    return rows


def _fold(text):
    """Case-folded text for searching: SQLite's own LIKE folds ASCII only, not Cyrillic names."""
    return text.casefold() if isinstance(text, str) else text


def find_contacts(conn, query="", limit=50):
    """Numbers that called or have a card, matching ``query`` in number or name, latest caller first."""
    conn.create_function("hl_fold", 1, _fold, deterministic=True)
    query = (query or "").strip()
    digits = "".join(ch for ch in query if ch not in " -()/.")
    rows = conn.execute(
        "WITH callers AS (SELECT caller AS number, COUNT(*) AS calls, MAX(started_at) AS last_call,"
        "  MAX(id) AS last_id FROM calls"
        "  WHERE role = 'caller' AND caller != '' GROUP BY caller),"
        " numbers AS (SELECT number FROM callers UNION SELECT number FROM contacts)"
        " SELECT numbers.number, COALESCE(contacts.name, '') AS name, COALESCE(contacts.status, '') AS status,"
        "  COALESCE(callers.calls, 0) AS calls, callers.last_call"
        " FROM numbers LEFT JOIN contacts ON contacts.number = numbers.number"
        "  LEFT JOIN callers ON callers.number = numbers.number"
        " WHERE ? = '' OR numbers.number LIKE ? ESCAPE '\\' OR instr(hl_fold(contacts.name), ?) > 0"
        " ORDER BY callers.last_id IS NULL, callers.last_id DESC, numbers.number LIMIT ?",
        (query, _like(digits or query), _fold(query), int(limit)))
    return [dict(row) for row in rows]


def recent_callers(conn, limit=50):
    """The numbers that called most recently, with their name and number of calls."""
    return find_contacts(conn, "", limit)


# --- reminders and call-back tasks ----------------------------------------------


def to_utc_text(when):
    """An aware datetime or ISO string as the journal's UTC text; a naive value is taken as UTC."""
    if isinstance(when, str):
        try:
            when = datetime.datetime.fromisoformat(when.strip())
        except ValueError as err:
            raise ContactError("due_at", "Enter a date and a time.") from err
    if not isinstance(when, datetime.datetime):
        raise ContactError("due_at", "Enter a date and a time.")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    # The same shape as journal.now(), so due times and "now" compare correctly as text.
    return when.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")


def add_reminder(conn, number, due_at, text, author):
    """Remind whoever looks at the dashboard to deal with ``number`` at ``due_at``; return the id."""
    _check_number(number)
    due = to_utc_text(due_at)
    text = (text or "").strip()
    if not text or len(text) > MAX_REMINDER:
        raise ContactError("text", f"Write a reminder of 1 to {MAX_REMINDER} characters.")
    with Transaction(conn):
        return conn.execute(
            "INSERT INTO reminders (number, due_at, text, author, created_at) VALUES (?, ?, ?, ?, ?)",
            (number, due, text, author, journal_now())).lastrowid


def reminder(conn, reminder_id):
    """One reminder, or None."""
    row = conn.execute("SELECT * FROM reminders WHERE id = ?", (reminder_id,)).fetchone()
    return dict(row) if row else None


def reminders_of(conn, number):
    """A number's reminders: open ones first by due time, then done ones, newest first."""
    return [dict(row) for row in conn.execute(
        "SELECT * FROM reminders WHERE number = ? ORDER BY done_at IS NOT NULL, "
        " CASE WHEN done_at IS NULL THEN due_at END, done_at DESC, id", (number,))]


def due_reminders(conn, now=None, limit=100):
    """Open reminders due at ``now`` (default: the current time) or earlier, most overdue first, with the name.

    Each is a dict: id, number, name, due_at, text, author, created_at (times as UTC ISO text).
    """
    cutoff = to_utc_text(now) if now is not None else journal_now()
    rows = conn.execute(
        "SELECT reminders.id, reminders.number, COALESCE(contacts.name, '') AS name, reminders.due_at,"
        " reminders.text, reminders.author, reminders.created_at FROM reminders"
        " LEFT JOIN contacts ON contacts.number = reminders.number"
        " WHERE reminders.done_at IS NULL AND reminders.due_at <= ? ORDER BY reminders.due_at, reminders.id LIMIT ?",
        (cutoff, int(limit)))
    return [dict(row) for row in rows]


def mark_done(conn, reminder_id):
    """Mark a reminder done; return False if it does not exist or was done already."""
    with Transaction(conn):
        return conn.execute("UPDATE reminders SET done_at = ? WHERE id = ? AND done_at IS NULL",
                            (journal_now(), reminder_id)).rowcount == 1


def reminder_to_callback(conn, reminder_id):
    """Turn a reminder into a call-back task for its number; return (callback id, created) or None.

    Journal.open_callback keeps one open task per number: a number that has one already gets
    that one linked. It commits on its own, so linking is a second transaction; repeating the
    call after a crash in between finds the same open task and links it, so nothing is lost.
    """
    item = reminder(conn, reminder_id)
    if item is None:
        return None
    # A reminder for later becomes a task for then; an overdue one is due at once.
    due_at = max(item["due_at"], journal_now())
    callback_id, created = Journal(conn).open_callback(item["number"], "reminder", due_at=due_at)
    with Transaction(conn):
        conn.execute("UPDATE reminders SET callback_id = ?, done_at = COALESCE(done_at, ?) WHERE id = ?",
                     (callback_id, journal_now(), reminder_id))
    return callback_id, created


def callbacks_of(conn, number, include_closed=False):
    """Call-back tasks of a number (open only unless told), newest first."""
    status = "" if include_closed else " AND status = 'open'"
    return [dict(row) for row in conn.execute(
        f"SELECT * FROM callbacks WHERE number = ?{status} ORDER BY id DESC", (number,))]


# --- pinned recordings ----------------------------------------------------------


def pin_recording(conn, recording, number=""):
    """Keep a recording whatever retention says; return True if it was not pinned before."""
    if not recording:
        raise ContactError("recording", "The call has no recording.")
    with Transaction(conn):
        return conn.execute(
            "INSERT INTO pinned_recordings (recording, number, pinned_at) VALUES (?, ?, ?)"
            " ON CONFLICT (recording) DO NOTHING", (recording, number or "", journal_now())).rowcount == 1


def unpin_recording(conn, recording):
    """Let retention delete a recording again; return True if it was pinned."""
    with Transaction(conn):
        return conn.execute("DELETE FROM pinned_recordings WHERE recording = ?", (recording,)).rowcount == 1


def is_pinned(conn, recording):
    """True if retention must keep ``recording``."""
    return conn.execute("SELECT 1 FROM pinned_recordings WHERE recording = ?", (recording,)).fetchone() is not None
