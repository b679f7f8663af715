"""Prompts: upload with conversion, text-to-speech, playback in the browser.

Every prompt lives as ``prompts/<language>/<id>.wav`` in the data directory. A text
prompt is only a configuration entry: the engine speaks it with espeak-ng when the entry
is saved. An upload is converted here first, into a temp file beside the prompts, and
moved into place only once it converted; the configuration entry is saved after, and a
refused save puts the old file back, so a failed upload changes nothing.
"""
import os
import re
import secrets

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, session,
                   url_for)
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from appliance import accounts
from appliance.config import ID_PATTERN, LANGUAGES
from appliance.errors import PromptError
from appliance.prompts import SYSTEM_PROMPTS, convert, prompt_path

from .auth import role_required
from .configedit import EngineDown, load_config, save_section
from .db import get_db
from .flows import describe_field

bp = Blueprint("prompts", __name__, url_prefix="/prompts")

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a few minutes of compressed audio is far less
FORM_OVERHEAD_BYTES = 64 * 1024  # the other fields and the multipart framing around the file
MAX_TEXT = 2000
LANGUAGE_NAMES = {"en": "English", "bg": "Български", "uk": "Українська", "ru": "Русский"}
UPLOAD_FORMATS = "audio/*,.wav,.mp3,.ogg,.oga,.opus,.m4a,.aac,.flac,.amr,.wma"


@bp.url_value_preprocessor
def _limit_upload_size(endpoint, _values):
    """Cap the upload's body before anything reads it.

    URL value preprocessors run before every before_request hook, including the CSRF
    check that parses the form, so the limit holds before a byte of an oversize file is
    spooled to disk.
    """
    if endpoint == "prompts.upload":
        request.max_content_length = current_app.config.get("PROMPT_UPLOAD_MAX_BYTES", MAX_UPLOAD_BYTES) \
            + FORM_OVERHEAD_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error):
    """An oversize upload: the page again, with the limit named, and nothing changed."""
    # The limit can strike in the CSRF hook, before the login guard has run: only an admin
    # is shown the prompts page; anyone else gets the bare 413.
    user_id = session.get("user_id")
    user = accounts.get_user(get_db(), user_id) if user_id is not None else None
    if user is None or user["role"] != "admin":
        return error
    try:
        return _index_page({"file": _too_large_message()}, {}, "upload"), 413
    except EngineDown as err:  # error handlers do not pass their own errors to other handlers
        return _engine_down(err)


@bp.errorhandler(EngineDown)
def _engine_down(err):
    """Without the engine there is no configuration to show or change: say so."""
    return render_template("prompts.html", groups=[], errors={}, form={}, active=None,
                           languages=LANGUAGES, language_names=LANGUAGE_NAMES, accept=UPLOAD_FORMATS,
                           prompt_ids=[], max_mb=_max_mb(), engine_error=str(err)), 503


# --- pages ----------------------------------------------------------------------------


@bp.route("/")
@role_required("admin")
def index():
    """Prompts grouped by id, a player for each language variant, and the forms to add one."""
    return _index_page({}, {}, None)


@bp.route("/<language>/<prompt_id>/edit")
@role_required("admin")
def edit(language, prompt_id):
    """One prompt variant: its player, its text to change, a recording to replace it, delete."""
    if language not in LANGUAGES or not ID_PATTERN.fullmatch(prompt_id):
        abort(404)
    config = load_config()["config"]
    prompt = _find(config, prompt_id, language)
    if prompt is None:
        abort(404)
    form = {"id": prompt_id, "language": language, "text": prompt.get("text", "")}
    return _edit_page(config, prompt, {}, form, None)


@bp.route("/speak", methods=("POST",))
@role_required("admin")
def speak():
    """Add or change a text prompt; the engine speaks it with espeak-ng as it saves it."""
    form = {"id": request.form.get("id", "").strip(), "language": request.form.get("language", ""),
            "text": request.form.get("text", "").strip()}
    errors = _id_language_errors(form)
    if not form["text"] or len(form["text"]) > MAX_TEXT:
        errors["text"] = _("Type what the prompt says (up to %(n)d characters).", n=MAX_TEXT)
    if errors:
        return _form_page(errors, form, "speak"), 400
    config = load_config()["config"]
    entry = {"id": form["id"], "language": form["language"], "text": form["text"]}
    answer = save_section("prompts", _replaced(config["prompts"], entry), "prompts.speak")
    if not answer["saved"]:
        return _form_page(_refusal_errors(answer, config, "text"), form, "speak"), 400
    flash(_("Prompt %(id)s (%(language)s) saved and spoken.", id=form["id"], language=form["language"]))
    return redirect(url_for("prompts.index") + f"#prompt-{form['id']}")


@bp.route("/upload", methods=("POST",))
@role_required("admin")
def upload():
    """Upload a recording in any format ffmpeg reads; it becomes an 8 kHz mono WAV."""
    form = {"id": request.form.get("id", "").strip(), "language": request.form.get("language", "")}
    errors = _id_language_errors(form)
    audio = request.files.get("file")
    if audio is None or not audio.filename:
        errors["file"] = _("Choose an audio file (wav, mp3, ogg, m4a…).")
    if errors:
        return _form_page(errors, form, "upload"), 400
    config = load_config()["config"]
    errors = install_upload(audio, form["id"], form["language"], config)
    if errors:
        status = 413 if errors.pop("too_large", False) else 400
        return _form_page(errors, form, "upload"), status
    flash(_("Recording %(name)s is now prompt %(id)s (%(language)s).", name=clean_file_name(audio.filename),
            id=form["id"], language=form["language"]))
    return redirect(url_for("prompts.index") + f"#prompt-{form['id']}")


@bp.route("/<language>/<prompt_id>/delete", methods=("POST",))
@role_required("admin")
def delete(language, prompt_id):
    """Delete one language variant; the engine refuses while a flow or setting needs the prompt."""
    if language not in LANGUAGES or not ID_PATTERN.fullmatch(prompt_id):
        abort(404)
    config = load_config()["config"]
    prompt = _find(config, prompt_id, language)
    if prompt is None:
        abort(404)
    remaining = [p for p in config["prompts"] if (p["id"], p["language"]) != (prompt_id, language)]
    answer = save_section("prompts", remaining, "prompts.delete")
    if not answer["saved"]:
        message = _("Still needed — %(where)s: %(message)s", where=describe_field(answer["field"], config),
                    message=answer["message"])
        form = {"id": prompt_id, "language": language, "text": prompt.get("text", "")}
        return _edit_page(config, prompt, {"delete": message}, form, None), 400
    _remove_files(prompt_id, language)
    flash(_("Prompt %(id)s (%(language)s) deleted.", id=prompt_id, language=language))
    return redirect(url_for("prompts.index"))


@bp.route("/<language>/<path:file_name>")
@role_required("admin", "supervisor")
def audio(language, file_name):
    """A prompt's WAV, found only from a valid language and id, and only inside the prompts folder."""
    path = audio_file(current_app.config["DATA_DIR"], language, file_name)
    if path is None:
        abort(404)
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=0)


# --- files ----------------------------------------------------------------------------


def audio_file(data_dir, language, file_name):
    """The path of ``<language>/<id>.wav`` if it names an existing prompt file; else None."""
    if language not in LANGUAGES or not file_name.endswith(".wav"):
        return None
    prompt_id = file_name[:-len(".wav")]
    if not ID_PATTERN.fullmatch(prompt_id):
        return None
    root = os.path.realpath(os.path.join(data_dir, "prompts"))
    path = os.path.realpath(prompt_path(data_dir, language, prompt_id))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        return None  # a symlink pointing out of the folder is refused too
    return path


def install_upload(audio, prompt_id, language, config):
    """Convert ``audio`` into the prompt's WAV and save its entry; {} on success, else errors by field."""
    data_dir = current_app.config["DATA_DIR"]
    folder = os.path.join(data_dir, "prompts")
    os.makedirs(os.path.join(folder, language), exist_ok=True)
    token = secrets.token_hex(8)
    raw = os.path.join(folder, f".upload-{token}-source{_suffix(audio.filename)}")
    converted = os.path.join(folder, f".upload-{token}.wav")
    try:
        if _save_limited(audio, raw) is None:
            return {"file": _too_large_message(), "too_large": True}
        try:
            convert(raw, converted)
        except PromptError as err:
            return {"file": _("This file is not audio that the box can read (%(error)s).", error=err)}
        return _swap_in(converted, prompt_id, language, audio.filename, config)
    finally:
        for leftover in (raw, converted, converted + ".tmp"):
            if os.path.exists(leftover):
                os.remove(leftover)


def _swap_in(converted, prompt_id, language, file_name, config):
    """Move the converted WAV into place and save the entry; put the old WAV back if refused."""
    final = prompt_path(current_app.config["DATA_DIR"], language, prompt_id)
    backup = f"{final}.{secrets.token_hex(4)}.bak"
    had_old = os.path.exists(final)
    if had_old:
        os.link(final, backup)  # a hard link: the old audio stays playable until the rename below
    os.replace(converted, final)
    entry = {"id": prompt_id, "language": language, "source": "upload", "file_name": clean_file_name(file_name)}
    try:
        answer = save_section("prompts", _replaced(config["prompts"], entry), "prompts.upload")
    except EngineDown:
        _restore(final, backup, had_old)
        raise
    if not answer["saved"]:
        _restore(final, backup, had_old)
        return _refusal_errors(answer, config, "file")
    if had_old:
        os.remove(backup)
    spoken = final[:-len(".wav")] + ".txt"
    if os.path.exists(spoken):
        # The text a spoken prompt was made from: gone, so that going back to the same text speaks it again.
        os.remove(spoken)
    return {}


def _restore(final, backup, had_old):
    """Undo a swap: the old WAV back, or no WAV at all if there was none."""
    if had_old:
        os.replace(backup, final)
    elif os.path.exists(final):
        os.remove(final)


def _save_limited(audio, dest):
    """Write the upload to ``dest``; its size, or None (and nothing kept) when over the limit."""
    limit = current_app.config.get("PROMPT_UPLOAD_MAX_BYTES", MAX_UPLOAD_BYTES)
    size = 0
    with open(dest, "wb") as handle:
        for chunk in iter(lambda: audio.stream.read(64 * 1024), b""):
            size += len(chunk)
            if size > limit:
                return None
            handle.write(chunk)
    return size


def _remove_files(prompt_id, language):
    """Drop a deleted prompt's WAV and text; the engine's own prompts are re-made by it, so they stay."""
    if prompt_id in SYSTEM_PROMPTS:
        return
    wav = prompt_path(current_app.config["DATA_DIR"], language, prompt_id)
    for path in (wav, wav[:-len(".wav")] + ".txt"):
        if os.path.exists(path):
            os.remove(path)


def clean_file_name(name):
    """The uploaded file's own name, for people to read: no folders, no control characters, not too long."""
    name = re.split(r"[\\/]", name or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    name = re.sub(r"\s+", " ", name)[:120]
    return name or "upload"


def _suffix(name):
    """The upload's extension, kept so that ffmpeg can guess a format it cannot probe."""
    suffix = os.path.splitext(name or "")[1].lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""


def _too_large_message():
    limit = current_app.config.get("PROMPT_UPLOAD_MAX_BYTES", MAX_UPLOAD_BYTES)
    return _("The file is larger than %(mb)s MB: shorten it or save it in a compressed format such as mp3.",
             mb=f"{limit / 1024 / 1024:g}")


# --- config ---------------------------------------------------------------------------


def _find(config, prompt_id, language):
    return next((p for p in config["prompts"] if (p["id"], p["language"]) == (prompt_id, language)), None)


def _replaced(prompts, entry):
    """The prompts list with ``entry`` in place of the variant it replaces (or added at the end)."""
    key = (entry["id"], entry["language"])
    result = [entry if (p["id"], p["language"]) == key else p for p in prompts]
    return result if any((p["id"], p["language"]) == key for p in prompts) else result + [entry]


def _id_language_errors(form):
    errors = {}
    if not ID_PATTERN.fullmatch(form["id"]):
        errors["id"] = _("Use lower-case letters, digits, - or _, starting with a letter (such as menu_main).")
    if form["language"] not in LANGUAGES:
        errors["language"] = _("Choose one of the languages.")
    return errors


def _refusal_errors(answer, config, fallback):
    """The engine's refusal at the form field it names (id, language, text), else at ``fallback``."""
    match = re.fullmatch(r"prompts\[\d+\]\.(id|language|text)", answer["field"])
    if match:
        return {match.group(1): answer["message"]}
    if answer["field"] == "prompts":  # espeak-ng or conversion failed
        return {fallback: answer["message"]}
    return {fallback: f"{describe_field(answer['field'], config)}: {answer['message']}"}


def usage(config):
    """Where each prompt id is used: {id: ["menu main, node menu", "settings: greeting", …]}."""
    used = {}
    for flow in config["flows"]:
        for node_id, node in flow["nodes"].items():
            for key in ("prompt", "invalid_prompt"):
                if node.get(key):
                    used.setdefault(node[key], []).append(_("menu %(flow)s, node %(node)s", flow=flow["id"],
                                                            node=node_id))
    if config["settings"].get("greeting"):
        used.setdefault(config["settings"]["greeting"], []).append(_("the box's greeting"))
    for line in config["lines"]:
        if line.get("greeting"):
            used.setdefault(line["greeting"], []).append(_("line %(id)s greeting", id=line["id"]))
    for queue in config["queues"]:
        for key in ("moh", "accept_prompt"):
            if queue.get(key):
                used.setdefault(queue[key], []).append(_("queue %(id)s", id=queue["id"]))
    return used


def prompt_groups(config, data_dir):
    """Configured prompts grouped by id, then the engine's built-in ones: a variant per language."""
    groups = {}
    for prompt in config["prompts"]:
        groups.setdefault(prompt["id"], {})[prompt["language"]] = dict(prompt)
    used = usage(config)
    rows = [_group(prompt_id, variants, used.get(prompt_id, []), data_dir, False)
            for prompt_id, variants in sorted(groups.items())]
    for prompt_id, texts in SYSTEM_PROMPTS.items():
        if prompt_id not in groups:
            variants = {lang: {"id": prompt_id, "language": lang, "text": text, "source": "built-in"}
                        for lang, text in texts.items()}
            rows.append(_group(prompt_id, variants, used.get(prompt_id, []), data_dir, True))
    return rows


def _group(prompt_id, variants, used_by, data_dir, built_in):
    """One row of the page; each variant knows whether its WAV exists (and its age, to refresh players)."""
    for variant in variants.values():
        path = audio_file(data_dir, variant["language"], f"{prompt_id}.wav")
        variant["version"] = int(os.path.getmtime(path)) if path else None
    return {"id": prompt_id, "variants": variants, "used_by": used_by, "built_in": built_in}


# --- rendering --------------------------------------------------------------------------


def _index_page(errors, form, active):
    """The list and the two forms; ``active`` names the form ``errors`` and ``form`` belong to."""
    config = load_config()["config"]
    groups = prompt_groups(config, current_app.config["DATA_DIR"])
    return render_template("prompts.html", groups=groups, errors=errors, form=form, active=active,
                           languages=LANGUAGES, language_names=LANGUAGE_NAMES, accept=UPLOAD_FORMATS,
                           prompt_ids=sorted({g["id"] for g in groups}), max_mb=_max_mb(),
                           engine_error=None)


def _form_page(errors, form, active):
    """A refused form shown again: on the variant's own page when it exists, else on the list."""
    config = load_config()["config"]
    prompt = _find(config, form.get("id", ""), form.get("language", ""))
    if prompt is None:
        return _index_page(errors, form, active)
    return _edit_page(config, prompt, errors, form, active)


def _edit_page(config, prompt, errors, form, active):
    data_dir = current_app.config["DATA_DIR"]
    path = audio_file(data_dir, prompt["language"], f"{prompt['id']}.wav")
    return render_template("prompts_edit.html", prompt=prompt, version=int(os.path.getmtime(path)) if path else None,
                           used_by=usage(config).get(prompt["id"], []), errors=errors, form=form, active=active,
                           languages=LANGUAGES, language_names=LANGUAGE_NAMES, accept=UPLOAD_FORMATS,
                           max_mb=_max_mb(), prompt_ids=[])


def _max_mb():
    return f"{current_app.config.get('PROMPT_UPLOAD_MAX_BYTES', MAX_UPLOAD_BYTES) / 1024 / 1024:g}"
