"""Backup and restore of a data directory: round trips, and archives refused with nothing changed."""
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import threading

import pytest

from appliance import accounts, backup
from appliance.config import ConfigStore, demo_config
from appliance.journal import MIGRATIONS, Journal, connect

PROMPT = os.path.join("prompts", "en", "greeting.wav")
RECORDING = os.path.join("recordings", "2026", "07", "01", "call-1.wav")
VOICEMAIL = os.path.join("voicemail", "2026", "07", "message-1.wav")


def write(data_dir, relative, data):
    """Write ``data`` to ``relative`` in ``data_dir``, making folders."""
    path = os.path.join(data_dir, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def make_box(data_dir, box_name, caller, admin="admin"):
    """A data directory with a configuration, a journal with rows, a prompt, a recording, a voicemail."""
    os.makedirs(data_dir, exist_ok=True)
    document = demo_config()
    document["settings"]["box_name"] = box_name
    ConfigStore(data_dir).save(document)
    book = Journal(connect(os.path.join(data_dir, "journal.sqlite3")))
    accounts.create_user(book.conn, admin, "admin password 1", "admin")
    accounts.create_user(book.conn, f"{admin}-olga", "operator password", "operator", language="bg",
                         operator_id="op1")
    call_id = book.start_call("gsm1", "in", caller=caller)
    book.answer_call(call_id)
    book.end_call(call_id, "answered", "caller", talk_seconds=3.0, recording=RECORDING)
    book.close()
    write(data_dir, PROMPT, b"RIFF" + box_name.encode() * 50)
    write(data_dir, RECORDING, b"RIFF" + caller.encode() * 50)
    write(data_dir, VOICEMAIL, b"RIFF voicemail " + caller.encode())
    return data_dir


def tree(data_dir):
    """Every file under ``data_dir`` with its bytes (the journal checkpointed first)."""
    found = {}
    for folder, _dirs, names in os.walk(data_dir):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, data_dir)] = handle.read()
    return found


def rows(data_dir, sql):
    """Rows of a query on a data directory's journal."""
    conn = connect(os.path.join(data_dir, "journal.sqlite3"))
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


def make_backup(data_dir, path, include_recordings=False):
    """Write a backup of ``data_dir`` to ``path``; return its manifest."""
    with open(path, "wb") as handle:
        return backup.write_backup(data_dir, handle, include_recordings=include_recordings)


def save_config(data_dir):
    """An apply_config for a box whose engine is stopped: write the file."""
    return lambda document: ConfigStore(data_dir).save(document)


@pytest.fixture
def source(tmp_path):
    return make_box(str(tmp_path / "source"), "Admissions", "+359888111111")


@pytest.fixture
def target(tmp_path):
    return make_box(str(tmp_path / "target"), "Other box", "+359888222222", admin="root")


@pytest.fixture
def archive(source, tmp_path):
    path = str(tmp_path / "backup.tar.gz")
    make_backup(source, path)
    return path


def test_the_manifest_names_the_box_and_hashes_every_file(source, archive):
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        for entry in manifest["files"]:
            data = tar.extractfile(entry["path"]).read()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    assert manifest["format"] == "hotline-backup" and manifest["box_name"] == "Admissions"
    assert manifest["schema_version"] == len(MIGRATIONS) and manifest["version"] == backup.app_version()
    listed = {entry["path"] for entry in manifest["files"]}
    assert {"config.json", "config.last-good.json", "journal.sqlite3", PROMPT, VOICEMAIL} <= listed
    assert RECORDING not in listed and not any(name.startswith("recordings") for name in names)
    assert names[-1] == "manifest.json"
    assert not [name for name in os.listdir(source) if name.startswith(".backup-")]  # the snapshot is gone


def test_the_journal_snapshot_has_what_is_still_in_the_wal(source, tmp_path):
    live = connect(os.path.join(source, "journal.sqlite3"))  # kept open: the WAL is not checkpointed
    book = Journal(live)
    call_id = book.start_call("gsm2", "in", caller="+359888333333")
    assert os.path.getsize(os.path.join(source, "journal.sqlite3-wal")) > 0
    snapshot = str(tmp_path / "snap.sqlite3")
    assert backup.snapshot_journal(source, snapshot) == len(MIGRATIONS)
    conn = sqlite3.connect(snapshot)
    assert conn.execute("SELECT caller FROM calls WHERE id = ?", (call_id,)).fetchone() == ("+359888333333",)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()
    live.close()


@pytest.mark.parametrize("include_recordings", [False, True])
def test_round_trip_into_another_box(source, target, tmp_path, include_recordings):
    path = str(tmp_path / "backup.tar.gz")
    make_backup(source, path, include_recordings=include_recordings)
    summary = backup.restore(target, path, save_config(target), journal_in_use=False)
    assert summary["journal"] == "restored" and summary["manifest"]["box_name"] == "Admissions"
    assert ConfigStore(target).read() == ConfigStore(source).read()
    for sql in ("SELECT * FROM calls", "SELECT id, username, password_hash, role, language, operator_id FROM users"):
        assert rows(target, sql) == rows(source, sql)
    restored, original = tree(target), tree(source)
    assert restored[PROMPT] == original[PROMPT] and restored[VOICEMAIL] == original[VOICEMAIL]
    if include_recordings:
        assert restored[RECORDING] == original[RECORDING]
    else:  # a backup without recordings leaves the box's own
        assert restored[RECORDING] == b"RIFF" + b"+359888222222" * 50
    assert "journal.sqlite3.before-restore" in restored  # the replaced journal is kept aside
    assert not [name for name in os.listdir(target) if name.startswith(backup.STAGING_PREFIX)]
    assert accounts.authenticate(connect(os.path.join(target, "journal.sqlite3")), "admin", "admin password 1")


def test_with_the_engine_running_the_journal_waits_beside_the_live_one(source, target, archive):
    live_calls = rows(target, "SELECT * FROM calls")
    summary = backup.restore(target, archive, save_config(target), journal_in_use=True)
    assert summary["journal"] == "pending"
    assert rows(target, "SELECT * FROM calls") == live_calls
    assert backup.pending_journal(target)["bytes"] > 0
    assert ConfigStore(target).read()["settings"]["box_name"] == "Admissions"  # the rest is in force
    assert backup.apply_pending_journal(target) is True
    assert rows(target, "SELECT * FROM calls") == rows(source, "SELECT * FROM calls")
    assert backup.pending_journal(target) is None and backup.apply_pending_journal(target) is False


def test_pending_notifications_of_a_backup_are_never_sent(source, target, tmp_path):
    conn = connect(os.path.join(source, "journal.sqlite3"))
    conn.execute("INSERT INTO outbox (channel, target, event, created_at, next_attempt_at)"
                 " VALUES ('sms', '+359888111111', 'call.missed', '2026-07-01', '2026-07-01')")
    conn.close()
    path = str(tmp_path / "b.tar.gz")
    make_backup(source, path)
    backup.restore(target, path, save_config(target), journal_in_use=False)
    assert rows(target, "SELECT status FROM outbox") == [("failed",)]


def test_a_pending_journal_can_be_discarded(target, archive):
    backup.restore(target, archive, save_config(target), journal_in_use=True)
    assert backup.discard_pending_journal(target) is True
    assert backup.pending_journal(target) is None and backup.discard_pending_journal(target) is False


def test_the_streamed_backup_is_the_same_archive_format(source, tmp_path):
    path = str(tmp_path / "streamed.tar.gz")
    with open(path, "wb") as handle:
        for chunk in backup.stream_backup(source, include_recordings=True):
            handle.write(chunk)
    staged = backup.check_archive(path, str(tmp_path / "check"))
    assert staged.manifest["includes_recordings"] and staged.has("recordings")


def test_recordings_compressed_while_the_backup_runs_are_in_it_as_one_or_the_other(source, tmp_path):
    """The after-call worker writes call-N.ogg, then removes call-N.wav, while a backup reads the folder."""
    day = os.path.join(source, "recordings", "2026", "12", "08")
    calls = range(1, 401)
    for n in calls:
        write(source, os.path.join(day, f"call-{n}.wav"), b"RIFF" + bytes(2000))
    stop = threading.Event()

    def compress():
        for n in calls:
            if stop.is_set():
                return
            write(source, os.path.join(day, f"call-{n}.ogg"), b"OggS" + bytes(200))
            os.remove(os.path.join(day, f"call-{n}.wav"))

    worker = threading.Thread(target=compress)
    worker.start()
    try:
        manifest = make_backup(source, str(tmp_path / "during.tar.gz"), include_recordings=True)
    finally:
        stop.set()
        worker.join()
    names = {entry["path"].rsplit("/", 1)[-1] for entry in manifest["files"]}
    assert all({f"call-{n}.wav", f"call-{n}.ogg"} & names for n in calls)


def test_an_abandoned_download_leaves_no_snapshot(source):
    chunks = backup.stream_backup(source, include_recordings=True)
    next(chunks)
    chunks.close()
    assert not [name for name in os.listdir(source) if name.startswith(".backup-")]


def test_a_refused_configuration_puts_the_folders_back(source, target, archive):
    before = tree(target)

    def refuse(_document):
        raise backup.RestoreError("The engine refused the restored configuration: settings: no")

    with pytest.raises(backup.RestoreError, match="refused"):
        backup.restore(target, archive, refuse, journal_in_use=True)
    assert tree(target) == before


# --- refused archives --------------------------------------------------------------------


def unpacked(archive_path):
    """The good archive's files: {name: bytes}."""
    with tarfile.open(archive_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile() and m.name != "manifest.json"}


def pack(path, files, extra=(), manifest=None, rehash=True):
    """Write a tar.gz of ``files`` plus ``extra`` (TarInfo, bytes) members and a manifest."""
    if manifest is None:
        manifest = {"format": "hotline-backup", "format_version": 1, "version": "0.1.0", "created_at": "now",
                    "box_name": "x", "schema_version": len(MIGRATIONS),
                    "files": [{"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                              for name, data in files.items()] if rehash else []}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return path


def member(name, kind=tarfile.REGTYPE, data=b"evil", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


def journal_bytes(tmp_path, prepare):
    """A journal file made by ``prepare(conn)``."""
    path = str(tmp_path / "made.sqlite3")
    conn = sqlite3.connect(path)
    prepare(conn)
    conn.commit()
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    with open(path, "rb") as handle:
        return handle.read()


def newer_schema(conn):
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, role TEXT)")
    conn.execute("INSERT INTO users (role) VALUES ('admin')")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")


def no_admin(conn):
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, role TEXT)")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")


def bad_archive(case, good, path, tmp_path):
    """Build the refused archive of ``case`` from the good archive's files."""
    files = unpacked(good)
    if case == "not a tarball":
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 this is a zip, or anything else")
        return path
    if case == "gzip of something else":
        import gzip
        with gzip.open(path, "wb") as handle:
            handle.write(b"not a tar at all" * 100)
        return path
    if case == "truncated":
        with open(good, "rb") as handle:
            data = handle.read()
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
        return path
    if case == "path traversal":
        return pack(path, files, extra=[member("../evil")])
    if case == "traversal inside a folder":
        return pack(path, files, extra=[member("prompts/../../evil")])
    if case == "absolute path":
        return pack(path, files, extra=[member("/tmp/evil")])
    if case == "symlink member":
        return pack(path, files, extra=[member("prompts/en/link.wav", tarfile.SYMTYPE, linkname="/etc/passwd")])
    if case == "hard link member":
        return pack(path, files, extra=[member("prompts/en/hard.wav", tarfile.LNKTYPE, linkname="config.json")])
    if case == "device member":
        return pack(path, files, extra=[member("prompts/en/dev", tarfile.CHRTYPE)])
    if case == "unknown file":
        return pack(path, dict(files, **{"web-secret.key": b"0" * 32}))
    if case == "no manifest":
        with tarfile.open(path, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path
    if case == "another format":
        return pack(path, files, manifest={"format": "something-else", "format_version": 1, "files": []})
    if case == "manifest hash mismatch":
        tampered = dict(files, **{PROMPT: b"RIFF tampered"})
        manifest = {"format": "hotline-backup", "format_version": 1,
                    "files": [{"path": n, "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()]}
        return pack(path, tampered, manifest=manifest)
    if case == "file missing from the manifest":
        manifest = {"format": "hotline-backup", "format_version": 1,
                    "files": [{"path": n, "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()
                              if n != PROMPT]}
        return pack(path, files, manifest=manifest)
    if case == "invalid config.json":
        document = json.loads(files["config.json"])
        document["settings"]["1"]["timezone"] = "Mars/Olympus"
        return pack(path, dict(files, **{"config.json": json.dumps(document).encode()}))
    if case == "config.json not JSON":
        return pack(path, dict(files, **{"config.json": b"{not json"}))
    if case == "journal from a newer schema":
        return pack(path, dict(files, **{"journal.sqlite3": journal_bytes(tmp_path, newer_schema)}))
    if case == "journal not SQLite":
        return pack(path, dict(files, **{"journal.sqlite3": b"SQLite? no, just text" * 10}))
    if case == "journal without an admin":
        return pack(path, dict(files, **{"journal.sqlite3": journal_bytes(tmp_path, no_admin)}))
    if case == "no journal":
        return pack(path, {n: d for n, d in files.items() if n != "journal.sqlite3"})
    raise AssertionError(case)


REFUSALS = {
    "not a tarball": "not a .tar.gz",
    "gzip of something else": "cannot be read",
    "truncated": "cannot be read",
    "path traversal": "outside",
    "traversal inside a folder": "outside",
    "absolute path": "absolute",
    "symlink member": "link",
    "hard link member": "link",
    "device member": "device",
    "unknown file": "not a file of this box",
    "no manifest": "no manifest",
    "another format": "another format",
    "manifest hash mismatch": "checksum",
    "file missing from the manifest": "does not match its manifest",
    "invalid config.json": "timezone",
    "config.json not JSON": "configuration is refused",
    "journal from a newer schema": "newer version",
    "journal not SQLite": "not a SQLite database",
    "journal without an admin": "no admin",
    "no journal": "incomplete",
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_archive_is_refused_and_nothing_changes(case, archive, target, tmp_path):
    path = bad_archive(case, archive, str(tmp_path / "bad.tar.gz"), tmp_path)
    before = tree(target)
    applied = []
    with pytest.raises(backup.RestoreError, match=REFUSALS[case]):
        backup.restore(target, path, applied.append, journal_in_use=False)
    assert applied == []
    after = tree(target)
    assert after.keys() == before.keys()
    assert after == before  # byte for byte
    assert not os.path.exists(str(tmp_path / "evil")) and not os.path.exists("/tmp/evil")


def test_the_good_archive_passes_the_same_checks(archive, tmp_path):
    path = pack(str(tmp_path / "repacked.tar.gz"), unpacked(archive))
    staged = backup.check_archive(path, str(tmp_path / "staged"))
    assert staged.config["settings"]["box_name"] == "Admissions"


def test_a_journal_from_an_older_schema_is_brought_up_to_date(source, target, tmp_path):
    files = unpacked(make_archive_path(source, tmp_path))

    def old_schema(conn):
        for statement in filter(str.strip, MIGRATIONS[0].split(";")):
            conn.execute(statement)
        conn.execute("INSERT INTO users (username, password_hash, role, created_at)"
                     " VALUES ('old', 'x', 'admin', 'then')")
        conn.execute("PRAGMA user_version = 1")

    path = pack(str(tmp_path / "old.tar.gz"), dict(files, **{"journal.sqlite3": journal_bytes(tmp_path, old_schema)}))
    backup.restore(target, path, save_config(target), journal_in_use=False)
    assert rows(target, "SELECT username, language FROM users") == [("old", "en")]
    assert rows(target, "PRAGMA user_version") == [(len(MIGRATIONS),)]


def make_archive_path(data_dir, tmp_path):
    path = str(tmp_path / "fresh.tar.gz")
    make_backup(data_dir, path)
    return path


def test_backup_names_are_safe_file_names():
    assert backup.backup_name("Приём / Admissions 2026!").startswith("hotline-backup-admissions-2026-")
    assert backup.backup_name("").startswith("hotline-backup-box-")
