"""System: backup and restore, disk and retention, logs, engine health, version."""
import os
import tempfile

from flask import (Blueprint, Response, current_app, flash, redirect, render_template, request, session,
                   stream_with_context, url_for)
from flask_babel import gettext as _

from appliance import backup, recordings
from appliance.config import ConfigStore
from appliance.errors import ApplianceError, EngineUnavailable

from . import load_secret_key
from .auth import role_required
from .configedit import EngineDown, audit, audit_log, load_config
from .db import get_engine

bp = Blueprint("system", __name__, url_prefix="/system")

# Only these files are ever shown: a name from the request never becomes a path.
LOG_FILES = ("engine.log", "web.log", "twin.log")
LOG_LINES = 60
LOG_TAIL_BYTES = 64 * 1024
AUDIT_ENTRIES = 100
RESTORE_TIMEOUT = 60.0  # the engine speaks missing prompts and restarts lines on a new configuration


@bp.route("/")
@role_required("admin")
def index():
    """Version, engine health, disk and retention, backup and restore, logs, audit log."""
    return _page({})


@bp.route("/backup", methods=("POST",))
@role_required("admin")
def download_backup():
    """The box as a .tar.gz, streamed as it is written (recordings only if asked for)."""
    data_dir = current_app.config["DATA_DIR"]
    with_recordings = request.form.get("recordings") == "1"
    box_name = _settings(data_dir).get("box_name", "")
    audit("system.backup", {"recordings": with_recordings})
    chunks = backup.stream_backup(data_dir, include_recordings=with_recordings, box_name=box_name)
    response = Response(stream_with_context(chunks), mimetype="application/gzip")
    response.headers["Content-Disposition"] = f'attachment; filename="{backup.backup_name(box_name)}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/restore", methods=("POST",))
@role_required("admin")
def restore():
    """Check an uploaded backup, then put it in place; a bad archive changes nothing."""
    upload = request.files.get("archive")
    if upload is None or not upload.filename:
        return _page({"archive": _("Choose a backup file (.tar.gz) to restore.")}), 400
    data_dir = current_app.config["DATA_DIR"]
    backup.remove_stale_staging(data_dir)
    # The upload goes to the data directory's disk, not /tmp (a RAM disk on many boxes).
    fd, archive = tempfile.mkstemp(prefix=backup.STAGING_PREFIX, suffix=".tar.gz", dir=data_dir)
    os.close(fd)
    try:
        upload.save(archive)
        engine_running = _engine_running()
        summary = backup.restore(data_dir, archive, _config_applier(data_dir, engine_running),
                                 journal_in_use=engine_running)
    except backup.RestoreError as err:
        return _page({"archive": str(err)}), 400
    except OSError as err:  # e.g. the disk filled up while the upload was saved
        return _page({"archive": _("The backup could not be restored: %(error)s", error=str(err))}), 500
    finally:
        try:
            os.unlink(archive)
        except FileNotFoundError:
            pass
    audit("system.restore", {"file": upload.filename, "backup": summary["manifest"], "folders": summary["folders"],
                             "journal": summary["journal"], "engine_running": engine_running})
    if summary["journal"] == "restored":
        return _new_accounts(_("The backup was restored. Its accounts are in force now: log in with one of them."))
    flash(_("The configuration and files were restored and the engine reloaded them. The restored journal "
            "(calls, accounts) waits beside the live one: restart the engine to bring it in."))
    return redirect(url_for("system.index"))


@bp.route("/restore/apply", methods=("POST",))
@role_required("admin")
def apply_journal():
    """Bring in a restored journal now: only while the engine is stopped."""
    data_dir = current_app.config["DATA_DIR"]
    if _engine_running():
        return _page({"pending": _("The engine is running: it must be stopped (or restarted) to bring in "
                                   "the restored journal.")}), 409
    try:
        applied = backup.apply_pending_journal(data_dir)
    except backup.RestoreError as err:
        return _page({"pending": str(err)}), 400
    if not applied:
        return redirect(url_for("system.index"))
    audit("system.restore_journal", {})
    return _new_accounts(_("The restored journal is in force: log in with an account from the backup."))


@bp.route("/restore/discard", methods=("POST",))
@role_required("admin")
def discard_journal():
    """Forget a restored journal that is waiting to be brought in."""
    if backup.discard_pending_journal(current_app.config["DATA_DIR"]):
        audit("system.restore_discarded", {})
        flash(_("The waiting restored journal was discarded; the live journal stays."))
    return redirect(url_for("system.index"))


# --- what the page shows -------------------------------------------------------------------


def engine_health():
    """The engine's status, or {"error": ...} while it does not answer."""
    try:
        return get_engine().request("status")
    except ApplianceError as err:
        return {"error": _("The engine does not answer: %(error)s", error=str(err))}


def disk_and_retention(data_dir, settings):
    """Recordings on disk, free space and the retention rules in force."""
    found = recordings.usage(data_dir)
    found["retention_days"] = settings.get("retention_days")
    found["min_free_mb"] = settings.get("min_free_mb")
    return found


def log_tails(data_dir, lines=LOG_LINES):
    """[(name, last lines)] of the box's log files that exist."""
    tails = []
    for name in LOG_FILES:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            tails.append((name, _tail(path, lines)))
    return tails


def _tail(path, lines):
    """The last ``lines`` lines of a file, reading only its end (logs grow large)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        data = handle.read()
    text = data.decode("utf-8", errors="replace").splitlines()
    if size > LOG_TAIL_BYTES:
        text = text[1:]  # the first line read is probably cut
    return text[-lines:]


def _settings(data_dir):
    """The settings section in force: from the engine, else read from config.json (read only)."""
    try:
        return load_config()["config"]["settings"]
    except EngineDown:
        pass
    try:
        return ConfigStore(data_dir).read()["settings"]
    except Exception:  # a page about a broken box must still open
        return {}


def _page(errors):
    data_dir = current_app.config["DATA_DIR"]
    settings = _settings(data_dir)
    return render_template("system.html", version=backup.app_version(), status=engine_health(),
                           disk=disk_and_retention(data_dir, settings), settings=settings,
                           logs=log_tails(data_dir), audit=audit_log(AUDIT_ENTRIES),
                           pending=backup.pending_journal(data_dir), errors=errors)


# --- restoring ------------------------------------------------------------------------------


def _engine_running():
    """True if the engine answers: then it owns the configuration and the journal."""
    try:
        get_engine().request("ping")
        return True
    except EngineUnavailable:
        return False
    except ApplianceError:
        return True  # it answered, if only to refuse


def _config_applier(data_dir, engine_running):
    """How a restored configuration is put in force: through the engine, or written while it is stopped."""
    def through_engine(document):
        try:
            answer = get_engine(timeout=RESTORE_TIMEOUT).request("config_put", document=document)
        except ApplianceError as err:
            raise backup.RestoreError(_("The engine did not take the restored configuration: %(error)s",
                                        error=str(err))) from err
        if not answer.get("saved"):
            raise backup.RestoreError(_("The engine refused the restored configuration: %(field)s: %(message)s",
                                        field=answer.get("field"), message=answer.get("message")))

    def written(document):
        # The engine is the configuration's one writer; while it is stopped nobody else writes.
        try:
            ConfigStore(data_dir).save(document)
        except (ApplianceError, OSError) as err:
            raise backup.RestoreError(_("The restored configuration could not be written: %(error)s",
                                        error=str(err))) from err

    return through_engine if engine_running else written


def _new_accounts(message):
    """After a journal restore the accounts (and their ids) are the backup's: every session ends."""
    data_dir = current_app.config["DATA_DIR"]
    try:
        os.unlink(os.path.join(data_dir, "web-secret.key"))
    except FileNotFoundError:
        pass
    # A new signing key: cookies naming a user id of the old journal no longer open a session.
    current_app.secret_key = load_secret_key(data_dir)
    session.clear()
    flash(message)
    return redirect(url_for("auth.login"))
