"""Backup and restore of a box: one .tar.gz with the configuration, the journal and the files.

An archive holds ``config.json`` (and the last good copy), a consistent snapshot of
``journal.sqlite3`` taken with SQLite's backup API (a file copy of a live WAL database can
be torn), ``prompts/``, ``voicemail/``, optionally ``recordings/``, and ``manifest.json``
naming the box, the schema version and every file with its SHA-256. The manifest is the
last member, so an archive is written in one streaming pass with no temporary copy of the
recordings.

A restore checks everything before it replaces anything: the archive is staged and
verified in a folder inside the data directory (same file system, so the swap is a set of
renames). A bad archive is refused with a message and leaves the box as it was.

The journal cannot be swapped under a running engine: it holds the database open and
keeps call ids in memory. With the engine stopped the restored journal is copied into the
live one at once, through SQLite's backup API, which is safe while the web UI has it
open. With the engine running it is written next to the live one as
``journal.sqlite3.restore``; ``apply_pending_journal()`` brings it in when the engine
starts next, or from the System page once the engine is stopped.
"""
import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import queue
import re
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import threading
import zlib

from . import journal as journal_module
from .config import CONFIG_FILE, LAST_GOOD_FILE, ConfigStore
from .files import fsync_directory, remove_quietly
from .errors import ApplianceError
from .paths import CHECKOUT

log = logging.getLogger(__name__)

FORMAT = "hotline-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
JOURNAL = journal_module.JOURNAL_FILE
PENDING_JOURNAL = JOURNAL + ".restore"
PREVIOUS_JOURNAL = JOURNAL + ".before-restore"
FILES = (CONFIG_FILE, LAST_GOOD_FILE, JOURNAL)
FOLDERS = ("prompts", "voicemail", "recordings")
STAGING_PREFIX = ".restore-"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
FREE_MARGIN_BYTES = 64 * 1024 * 1024  # left free after a restore: calls keep recording
CHUNK = 64 * 1024


class RestoreError(ApplianceError, ValueError):
    """An archive was refused (nothing was changed) or could not be applied."""


class BackupError(ApplianceError, RuntimeError):
    """A backup could not be written to the end."""


# --- version --------------------------------------------------------------------------


def app_version():
    """The installed package's version, else the one in setup.py of a checkout, else 'unknown'."""
    try:
        return importlib.metadata.version("hotline")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with open(os.path.join(CHECKOUT, "setup.py"), encoding="utf-8") as handle:
            found = re.search(r"""version\s*=\s*["']([^"']+)["']""", handle.read())
    except OSError:
        found = None
    return found.group(1) if found else "unknown"


# --- backup ---------------------------------------------------------------------------


def backup_name(box_name, when=None):
    """A download name such as hotline-backup-admissions-20260701-0930.tar.gz."""
    when = when or datetime.datetime.now()
    slug = re.sub(r"[^a-z0-9]+", "-", (box_name or "").lower()).strip("-")[:40] or "box"
    return f"hotline-backup-{slug}-{when:%Y%m%d-%H%M%S}.tar.gz"


def snapshot_journal(data_dir, dest):
    """Copy the live journal into ``dest`` through SQLite's backup API; return its schema version."""
    source = sqlite3.connect(os.path.join(data_dir, JOURNAL), timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
        # A rollback-journal file is self-contained: no -wal beside it to lose in the archive.
        target.execute("PRAGMA journal_mode=DELETE")
        return target.execute("PRAGMA user_version").fetchone()[0]
    finally:
        target.close()
        source.close()


def write_backup(data_dir, fileobj, include_recordings=False, box_name=None):
    """Write a backup of ``data_dir`` as tar.gz to ``fileobj`` (streamed); return the manifest."""
    fd, snapshot = tempfile.mkstemp(prefix=".backup-", suffix=".sqlite3", dir=data_dir)
    os.close(fd)
    try:
        schema = snapshot_journal(data_dir, snapshot)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": app_version(),
                    "created_at": journal_module.now(), "box_name": box_name or _box_name(data_dir),
                    "schema_version": schema, "includes_recordings": bool(include_recordings), "files": []}
        with tarfile.open(fileobj=fileobj, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
            for name in (CONFIG_FILE, LAST_GOOD_FILE):
                path = os.path.join(data_dir, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    _add_file(tar, path, name, manifest)
            _add_file(tar, snapshot, JOURNAL, manifest)
            for folder in FOLDERS:
                if folder != "recordings" or include_recordings:
                    _add_folder(tar, data_dir, folder, manifest)
            body = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
            tar.addfile(_member_info(MANIFEST, len(body)), _BytesReader(body))
        return manifest
    finally:
        remove_quietly(snapshot)


def stream_backup(data_dir, include_recordings=False, box_name=None):
    """Yield the backup archive in chunks as it is written (for a download of any size)."""
    chunks = queue.Queue(maxsize=16)  # bounded: a slow download slows the writer, not memory
    cancelled = threading.Event()
    writer = _QueueWriter(chunks, cancelled)

    def produce():
        try:
            write_backup(data_dir, writer, include_recordings, box_name)
            writer.flush()
            writer.put(None)
        except _Cancelled:
            pass
        except Exception as err:  # the download ends short, so the archive fails to open
            log.exception("backup of %s failed", data_dir)
            try:
                writer.put(err)
            except _Cancelled:
                pass

    thread = threading.Thread(target=produce, name="backup", daemon=True)
    thread.start()
    try:
        while True:
            chunk = chunks.get()
            if chunk is None:
                return
            if isinstance(chunk, BaseException):
                raise BackupError(f"the backup failed: {chunk}") from chunk
            yield chunk
    finally:
        cancelled.set()  # the client went away: stop the writer
        thread.join(timeout=30)


def _box_name(data_dir):
    try:
        return ConfigStore(data_dir).read()["settings"].get("box_name", "")
    except Exception:  # a broken configuration must not stop a backup that might rescue the box
        return ""


def _add_file(tar, path, arcname, manifest):
    """Add one regular file, hashing it as it goes into the archive."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())  # the size of what is open, even if the name is replaced
        reader = _HashingReader(handle)
        tar.addfile(_member_info(arcname, info.st_size, info.st_mtime), reader)
    manifest["files"].append({"path": arcname, "size": info.st_size, "sha256": reader.hexdigest()})


def _add_folder(tar, data_dir, folder, manifest):
    """Add a folder's regular files; links and temp files are left out."""
    root = os.path.join(data_dir, folder)
    if not os.path.isdir(root) or os.path.islink(root):
        return
    tar.addfile(_member_info(folder, 0, kind=tarfile.DIRTYPE))
    for current, subdirs, names in os.walk(root):
        subdirs.sort()
        if not _add_files(tar, data_dir, current, sorted(names), manifest):
            # A file went while the folder was read: a recording compressed meanwhile (its
            # WAV replaced by the compressed file) or one retention deleted. One more look
            # takes what replaced it.
            _add_files(tar, data_dir, current, sorted(set(os.listdir(current)) - set(names)), manifest)


def _add_files(tar, data_dir, folder, names, manifest):
    """Add the regular files ``names`` of ``folder``; False when one of them had gone."""
    complete = True
    for name in names:
        path = os.path.join(folder, name)
        try:
            if name.startswith(".") or name.endswith(".tmp") or not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            _add_file(tar, path, os.path.relpath(path, data_dir).replace(os.sep, "/"), manifest)
        except FileNotFoundError:
            complete = False
    return complete


def _member_info(name, size, mtime=None, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.size = size if kind == tarfile.REGTYPE else 0
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o640
    info.mtime = int(mtime if mtime is not None else datetime.datetime.now().timestamp())
    return info


class _HashingReader:
    """A file wrapper that hashes what tarfile reads through it."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        """Read and hash."""
        data = self.handle.read(size)
        self.digest.update(data)
        return data

    def hexdigest(self):
        """The SHA-256 of everything read."""
        return self.digest.hexdigest()


class _BytesReader:
    """Bytes as a readable file (tarfile.addfile reads in chunks)."""

    def __init__(self, data):
        self.data = data
        self.offset = 0

    def read(self, size=-1):
        """The next ``size`` bytes."""
        size = len(self.data) - self.offset if size is None or size < 0 else size
        chunk = self.data[self.offset:self.offset + size]
        self.offset += len(chunk)
        return chunk


class _Cancelled(Exception):
    """The download was abandoned."""


class _QueueWriter:
    """A write-only file that hands chunks to a bounded queue."""

    def __init__(self, chunks, cancelled):
        self.chunks = chunks
        self.cancelled = cancelled
        self.buffer = bytearray()

    def write(self, data):
        """Buffer ``data``; pass on full chunks."""
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self):
        """Pass on what is buffered."""
        if self.buffer:
            self.put(bytes(self.buffer))
            self.buffer.clear()

    def put(self, item):
        """Queue ``item``, giving up once the reader has gone."""
        while True:
            if self.cancelled.is_set():
                raise _Cancelled()
            try:
                self.chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


# --- checking an archive --------------------------------------------------------------


class Staged:
    """A verified archive unpacked in a staging folder: what a restore would bring in."""

    def __init__(self, root, manifest, config):
        self.root = root
        self.manifest = manifest
        self.config = config

    def path(self, name):
        """Where ``name`` (a file or folder of the archive) was unpacked."""
        return os.path.join(self.root, name)

    def has(self, name):
        """True if the archive brought ``name``."""
        return os.path.lexists(self.path(name))


def check_archive(archive_path, dest, live_dir=None):
    """Unpack and verify the archive into the (new or empty) folder ``dest``; return Staged or raise RestoreError.

    Refused: anything but a gzip'd tar; a member that is not a plain file or folder, has
    an absolute path or '..', or lies outside the box's known files; a manifest that is
    missing, from another format, or whose list or hashes do not match the files; a
    config.json that does not validate; a journal that is not a sound SQLite database,
    is from a newer schema, or has no admin account (the box would fall open to setup).
    """
    os.makedirs(dest, exist_ok=True)
    with open(archive_path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            raise RestoreError("This is not a backup of this box: the file is not a .tar.gz archive.")
    try:
        with tarfile.open(archive_path, mode="r:gz") as tar:
            members = tar.getmembers()
            _check_members(members)
            _check_space(members, live_dir or dest)
            manifest = _read_manifest(tar)
            files = [m for m in members if m.isfile() and m.name != MANIFEST]
            tar.extractall(dest, members=[m for m in members if m.name != MANIFEST], filter="data")
    except (tarfile.TarError, EOFError, OSError, UnicodeError, ValueError, zlib.error) as err:
        if isinstance(err, RestoreError):
            raise
        raise RestoreError(f"The archive cannot be read: {err}") from err
    _check_hashes(manifest, files, dest)
    config = _check_config(dest)
    _check_journal(os.path.join(dest, JOURNAL), live_dir)
    return Staged(dest, manifest, config)


def _check_members(members):
    """Every member is a plain file or folder with a safe relative name the box knows."""
    seen = set()
    for member in members:
        name = member.name
        if not (member.isfile() or member.isdir()):
            raise RestoreError(f"The archive is refused: {name!r} is a link or a device, not a plain file.")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name or "\0" in name:
            raise RestoreError(f"The archive is refused: {name!r} has an absolute path.")
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise RestoreError(f"The archive is refused: {name!r} points outside the box's folder.")
        single = FILES + (MANIFEST,)
        known = (member.isfile() and len(parts) == 1 and parts[0] in single) or parts[0] in FOLDERS
        if not known or (member.isfile() and len(parts) == 1 and parts[0] in FOLDERS):
            raise RestoreError(f"The archive is refused: {name!r} is not a file of this box.")
        if name in seen:
            raise RestoreError(f"The archive is refused: {name!r} appears twice.")
        seen.add(name)


def _check_space(members, where):
    """Refuse an archive that would not fit beside what the box keeps (or is a gzip bomb)."""
    needed = sum(member.size for member in members if member.isfile())
    free = shutil.disk_usage(where).free
    if needed + FREE_MARGIN_BYTES > free:
        raise RestoreError(f"The archive needs {needed // 2**20} MB unpacked; the disk has {free // 2**20} MB free.")


def _read_manifest(tar):
    try:
        member = tar.getmember(MANIFEST)
    except KeyError:
        raise RestoreError("This is not a backup of this box: it has no manifest.json.") from None
    if member.size > MAX_MANIFEST_BYTES:
        raise RestoreError("The archive is refused: its manifest is too large.")
    try:
        manifest = json.loads(tar.extractfile(member).read().decode("utf-8"))
    except (ValueError, UnicodeError) as err:
        raise RestoreError(f"The archive's manifest.json is not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RestoreError("This is not a backup of this box: the manifest names another format.")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise RestoreError("The backup was made by a newer version of the box: update this box first.")
    if not isinstance(manifest.get("files"), list):
        raise RestoreError("The archive's manifest has no list of files.")
    return manifest


def _check_hashes(manifest, files, dest):
    """The manifest lists exactly the archive's files, each with the SHA-256 it has."""
    listed = {}
    for entry in manifest["files"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise RestoreError("The archive's manifest lists a file without a path.")
        listed[entry["path"]] = entry.get("sha256")
    present = {member.name for member in files}
    if set(listed) != present:
        odd = sorted(set(listed) ^ present)[:3]
        raise RestoreError(f"The archive does not match its manifest (e.g. {', '.join(odd)}).")
    for name, expected in listed.items():
        if _sha256(os.path.join(dest, name)) != expected:
            raise RestoreError(f"The archive is damaged: {name} does not match its checksum in the manifest.")
    if JOURNAL not in listed or CONFIG_FILE not in listed:
        raise RestoreError("The archive is incomplete: it needs both config.json and journal.sqlite3.")


def _check_config(dest):
    """The archived config.json itself must validate (its last good copy does not stand in)."""
    store = ConfigStore(dest)
    try:
        document = store.read()
    except Exception as err:  # a shape even ConfigStore did not foresee
        raise RestoreError(f"The archive's config.json is refused: {err}") from err
    if store.problem:
        raise RestoreError(f"The archive's configuration is refused: {store.problem}")
    return document


def _check_journal(path, live_dir):
    """A sound SQLite database, not from a newer schema, with at least one admin."""
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise RestoreError("The archive's journal.sqlite3 is not a SQLite database.")
    ours = len(journal_module.MIGRATIONS)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > ours:
                raise RestoreError(f"The archive's journal is from a newer version of the box "
                                   f"(schema {version}, this box has {ours}): update this box first.")
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise RestoreError(f"The archive's journal is damaged: {verdict}")
            admins = conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise RestoreError(f"The archive's journal cannot be read: {err}") from err
    if not admins:
        raise RestoreError("The archive's journal has no admin account: restoring it would open the box to setup.")
    live = os.path.join(live_dir, JOURNAL) if live_dir else None
    if live and os.path.exists(live) and page_size != _page_size(live):
        # The backup API cannot copy into a WAL database of another page size.
        raise RestoreError(f"The archive's journal uses {page_size}-byte pages; this box's journal does not.")


def _page_size(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


# --- restoring ------------------------------------------------------------------------


def restore(data_dir, archive_path, apply_config, journal_in_use=True):
    """Restore a backup into ``data_dir``; return a summary dict or raise RestoreError.

    ``apply_config(document)`` makes the configuration the one in force (through the
    engine when it runs) and raises RestoreError if that is refused; the folders swapped
    in before it are then swapped back. With ``journal_in_use`` the journal is left as
    journal.sqlite3.restore for the next engine start; otherwise it is applied now.
    """
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=data_dir)
    try:
        unpacked = os.path.join(staging, "files")
        staged = check_archive(archive_path, unpacked, live_dir=data_dir)
        swapped = _swap_folders(data_dir, staged, os.path.join(staging, "previous"))
        try:
            apply_config(staged.config)
        except BaseException:
            _unswap_folders(data_dir, swapped, os.path.join(staging, "previous"))
            raise
        summary = {"manifest": {k: v for k, v in staged.manifest.items() if k != "files"},
                   "files": len(staged.manifest["files"]), "folders": swapped, "journal": "pending"}
        _mark_stale_outbox(staged.path(JOURNAL))
        os.replace(staged.path(JOURNAL), os.path.join(data_dir, PENDING_JOURNAL))
        fsync_directory(data_dir)
        if not journal_in_use:
            apply_pending_journal(data_dir)
            summary["journal"] = "restored"
        return summary
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pending_journal(data_dir):
    """Facts about a restored journal waiting for the engine to stop, or None."""
    path = os.path.join(data_dir, PENDING_JOURNAL)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    since = datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc)
    return {"path": path, "bytes": info.st_size, "since": since.isoformat(timespec="seconds")}


def discard_pending_journal(data_dir):
    """Forget a restored journal that was not applied; True if there was one."""
    try:
        os.unlink(os.path.join(data_dir, PENDING_JOURNAL))
        return True
    except FileNotFoundError:
        return False


def apply_pending_journal(data_dir):
    """Bring in journal.sqlite3.restore, if any, keeping the replaced journal aside; True if applied.

    Call it while the engine is stopped (the engine's start is the natural place). The
    copy goes through SQLite's backup API in one transaction, so a web process that has
    the journal open sees the old or the new database, never a mix, and a power cut
    leaves one or the other.
    """
    pending = os.path.join(data_dir, PENDING_JOURNAL)
    if not os.path.exists(pending):
        return False
    live_path = os.path.join(data_dir, JOURNAL)
    had_journal = os.path.exists(live_path)
    source = journal_module.connect(pending)  # brings an older schema up to ours
    live = journal_module.connect(live_path)
    try:
        if had_journal:
            _keep_previous(live, os.path.join(data_dir, PREVIOUS_JOURNAL))
        source.backup(live)
    except sqlite3.Error as err:
        raise RestoreError(f"The restored journal could not be applied: {err}") from err
    finally:
        live.close()
        source.close()
    for suffix in ("", "-wal", "-shm"):
        remove_quietly(pending + suffix)
    log.info("restored journal applied in %s", data_dir)
    return True


def _keep_previous(live, path):
    """A copy of the journal being replaced, in case the restore was a mistake."""
    temp = path + ".tmp"
    remove_quietly(temp)
    target = sqlite3.connect(temp)
    try:
        live.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
    os.replace(temp, path)


def _mark_stale_outbox(path):
    """Notifications still pending in a backup are old news: never send them days later; reports are rebuilt."""
    conn = sqlite3.connect(path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").fetchone():
            conn.execute("UPDATE outbox SET status = 'failed', last_error = 'not sent: restored from a backup'"
                         " WHERE status = 'pending'")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'report_meta'").fetchone():
            conn.execute("DELETE FROM report_meta")  # the reports' roll-up is rebuilt from the restored calls
        conn.commit()
    finally:
        conn.close()


def _swap_folders(data_dir, staged, previous):
    """Rename the archive's folders into place, the replaced ones into ``previous``; return their names."""
    os.makedirs(previous, exist_ok=True)
    swapped = []
    try:
        for folder in FOLDERS:
            if not staged.has(folder):
                continue  # e.g. a backup without recordings keeps the box's recordings
            live = os.path.join(data_dir, folder)
            if os.path.lexists(live):
                os.replace(live, os.path.join(previous, folder))
            os.replace(staged.path(folder), live)
            swapped.append(folder)
    except OSError as err:
        _unswap_folders(data_dir, swapped, previous)
        raise RestoreError(f"The files could not be put in place: {err}") from err
    fsync_directory(data_dir)
    return swapped


def _unswap_folders(data_dir, swapped, previous):
    """Put back the folders ``_swap_folders`` replaced."""
    for folder in reversed(swapped):
        live = os.path.join(data_dir, folder)
        shutil.rmtree(live, ignore_errors=True)
        if os.path.lexists(os.path.join(previous, folder)):
            os.replace(os.path.join(previous, folder), live)
    fsync_directory(data_dir)


def remove_stale_staging(data_dir):
    """Delete staging folders a restore left behind when its process died."""
    for name in os.listdir(data_dir):
        if name.startswith(STAGING_PREFIX) and os.path.isdir(os.path.join(data_dir, name)):
            shutil.rmtree(os.path.join(data_dir, name), ignore_errors=True)


