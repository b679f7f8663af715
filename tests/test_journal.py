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
