"""The journal: migrations, a call's timeline, and no committed call lost to SIGKILL."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

from appliance import journal
from appliance.journal import Journal


def test_migrates_an_empty_database_to_the_current_version(tmp_path):
    conn = journal.connect(str(tmp_path / "j.sqlite3"))
    assert journal.schema_version(conn) == len(journal.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    journal.migrate(conn)  # a second run is a no-op
    assert journal.schema_version(conn) == len(journal.MIGRATIONS)


def test_a_call_with_its_timeline(tmp_path):
    book = Journal.open(str(tmp_path / "j.sqlite3"))
    call_id = book.start_call("gsm1", "in", caller="+359888123456")
    book.answer_call(call_id)
    book.add_event(call_id, "prompt", prompt="greeting")
    book.add_digit(call_id, "1")
    book.add_digit(call_id, "2")
    book.end_call(call_id, "answered", "caller", talk_seconds=3.2, recording="recordings/x.wav")
    call = book.get_call(call_id)
    assert call["digits"] == "12" and call["outcome"] == "answered" and call["ended_by"] == "caller"
    assert [event["kind"] for event in call["events"]] == [
        "ring", "answered", "prompt", "dtmf", "dtmf", "recording", "ended"]
    assert book.recent_calls(1)[0]["id"] == call_id
    book.close()
    book.close()


def test_unfinished_calls_are_closed_as_interrupted(tmp_path):
    book = Journal.open(str(tmp_path / "j.sqlite3"))
    call_id = book.start_call("gsm1", "in", caller="+359888123456")
    assert book.close_unfinished("engine restarted") == [call_id]
    assert book.get_call(call_id)["outcome"] == "interrupted"


WRITER = textwrap.dedent("""
    import sys
    from appliance.journal import Journal
    book = Journal.open(sys.argv[1])
    n = 0
    while True:
        call_id = book.start_call("gsm1", "in", caller=f"+3598880{n:05d}")
        book.answer_call(call_id)
        book.add_event(call_id, "prompt", prompt="greeting")
        book.end_call(call_id, "answered", "caller", talk_seconds=1.0)
        print(call_id, flush=True)  # only after the commit returned
        n += 1
""")


def test_sigkill_in_the_middle_of_writes_loses_no_committed_call(tmp_path):
    path = str(tmp_path / "j.sqlite3")
    journal.connect(path).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
    committed = []
    for line in writer.stdout:
        committed.append(int(line))
        if len(committed) == 60:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    committed += [int(line) for line in writer.stdout.read().split()]

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = {row[0] for row in conn.execute("SELECT id FROM calls WHERE outcome = 'answered'")}
    assert set(committed) <= done
    for call_id in committed:
        kinds = [row[0] for row in conn.execute("SELECT kind FROM call_events WHERE call_id = ?", (call_id,))]
        assert kinds == ["ring", "answered", "prompt", "ended"]


def _synchronous_of_each_commit(conn, action):
    """The synchronous setting each COMMIT that ``action`` makes runs under (traced by SQLite itself)."""
    seen, setting = [], ["FULL"]

    def trace(statement):
        if statement.startswith("PRAGMA synchronous="):
            setting[0] = statement.split("=", 1)[1]
        elif statement == "COMMIT":
            seen.append(setting[0])

    conn.set_trace_callback(trace)
    try:
        action()
    finally:
        conn.set_trace_callback(None)
    return seen


def test_a_call_costs_two_durable_commits_and_its_leg_rides_on_them(tmp_path):
    book = Journal.open(str(tmp_path / "journal.sqlite3"))
    try:
        commits = lambda action: _synchronous_of_each_commit(book.conn, action)  # noqa: E731
        ids = {}
        assert commits(lambda: ids.update(caller=book.start_call("gsm1", "in", caller="+359888000001"))) == ["FULL"]
        assert commits(lambda: book.answer_call(ids["caller"])) == ["NORMAL"]
        assert commits(lambda: book.add_event(ids["caller"], "prompt", prompt="welcome")) == ["NORMAL"]
        assert commits(lambda: book.set_call(ids["caller"], queue="bachelor")) == ["NORMAL"]
        assert commits(lambda: ids.update(leg=book.start_call("gsm2", "out", role="operator",
                                                             parent_id=ids["caller"]))) == ["NORMAL"]
        # the operator hangs up first: the caller's own end will carry the leg's to disk
        assert commits(lambda: book.end_call(ids["leg"], "answered", "callee", talk_seconds=30)) == ["NORMAL"]
        assert commits(lambda: book.end_call(ids["caller"], "answered", "caller", talk_seconds=60)) == ["FULL"]
        # a leg that outlives its caller has nobody to carry it: its end is durable itself
        second = book.start_call("gsm1", "in", caller="+359888000002")
        leg = book.start_call("gsm2", "out", role="operator", parent_id=second)
        book.end_call(second, "answered", "caller")
        assert commits(lambda: book.end_call(leg, "answered", "box")) == ["FULL"]
        assert book.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again after each
    finally:
        book.close()
