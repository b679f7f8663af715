"""Settings: the box, calls and recording, call-backs, notifications, blacklist.

Secrets (the SMTP password, the webhook secret) are never sent back to the browser: the
page says whether one is set, an empty input keeps it, a tick box clears it.
"""
import zoneinfo

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from appliance.config import NOTIFY_EVENTS
from appliance.errors import ApplianceError

from .auth import role_required
from .configedit import SAVE_TIMEOUT, EngineDown, audit, load_config, save_section
from .db import get_engine
from .forms import FieldMap, put, split_items, whole
from .i18n import LANGUAGES

bp = Blueprint("settings", __name__, url_prefix="/settings")

SETTINGS_TEXT = ("box_name", "language", "timezone", "anonymous", "recording", "recording_format", "missed_sms",
                 "callback_hours")
SETTINGS_NUMBERS = ("max_call_seconds", "retention_days", "min_free_mb", "callback_retries", "callback_retry_minutes")
RECORDING = {"stereo": _l("Stereo: caller left, operator right"),
             "mono": _l("Mono: both voices mixed"), "off": _l("Off: nothing is recorded")}
RECORDING_FORMATS = {"ogg": _l("OGG Vorbis (small)"), "mp3": _l("MP3 (small, plays everywhere)"),
                     "flac": _l("FLAC (lossless)"), "wav": _l("WAV (large)")}
ANONYMOUS = {"allow": _l("Answer callers who hide their number"),
             "block": _l("Refuse callers who hide their number")}
EVENTS = {"call.started": _l("A call starts"), "call.answered": _l("An operator answers"),
          "call.missed": _l("A call is missed"), "voicemail": _l("A voicemail is left"),
          "callback.done": _l("A call-back is done")}
NOTIFY_SIMPLE = ("sms_to", "email_to", "webhooks", "events", "webhook_secret")
SMTP_PATHS = {"email": "smtp_host", "email.host": "smtp_host", "email.port": "smtp_port",
              "email.from": "smtp_from", "email.username": "smtp_username", "email.password": "smtp_password",
              "email.starttls": "smtp_starttls"}
SECRET_KEYS = ("password", "webhook_secret")


@bp.route("/")
@role_required("admin")
def index():
    """The settings page: box, calls, call-backs, notifications, blacklist."""
    return _page(load_config()["config"])


def _page(config, forms=None, errors=None, status=200):
    """Render every form of the page; ``forms`` holds what the user typed into the one that failed."""
    forms = dict(forms or {})
    forms.setdefault("settings", settings_form(config["settings"]))
    forms.setdefault("notifications", notifications_form(config["notifications"]))
    forms.setdefault("blacklist", MultiDict())
    forms.setdefault("panel", panel_form(config.get("panel") or {}))
    smtp = config["notifications"].get("email") or {}
    return render_template(
        "settings.html", forms=forms, errors=errors or {}, blacklist=config["blacklist"],
        conditions=config["time_conditions"], languages=LANGUAGES, timezones=sorted(zoneinfo.available_timezones()),
        recording=RECORDING, recording_formats=RECORDING_FORMATS, anonymous=ANONYMOUS, events=EVENTS,
        password_set=bool(smtp.get("password")),
        secret_set=bool(config["notifications"].get("webhook_secret"))), status


# --- the box, calls, recording and call-backs -------------------------------------------


def settings_form(settings):
    """The form showing the settings section."""
    pairs = [(key, settings.get(key) or "") for key in SETTINGS_TEXT]
    pairs += [(key, str(settings[key])) for key in SETTINGS_NUMBERS if key in settings]
    if settings.get("operator_sms_commands", True):
        pairs.append(("operator_sms_commands", "on"))
    return MultiDict(pairs)


def settings_value(form, old):
    """The settings typed in ``form``; what the page does not show (ports, greeting) is kept."""
    settings = dict(old)
    for key in SETTINGS_TEXT:
        put(settings, key, form.get(key, "").strip())
    for key in SETTINGS_NUMBERS:
        put(settings, key, whole(form.get(key)))
    settings["operator_sms_commands"] = "operator_sms_commands" in form
    return settings


@bp.route("/box", methods=("POST",))
@role_required("admin")
def save_settings():
    """Save the box, call, recording and call-back settings."""
    config = load_config()["config"]
    value = settings_value(request.form, config["settings"])
    answer = save_section("settings", value, "settings.box")
    if not answer["saved"]:
        fields = FieldMap("settings", simple=SETTINGS_TEXT + SETTINGS_NUMBERS + ("operator_sms_commands",))
        errors = fields.errors(answer)
        return _page(config, {"settings": request.form}, errors, 400)
    flash(_("Settings saved."))
    return redirect(url_for("settings.index"))


# --- notifications -------------------------------------------------------------------


def notifications_form(notifications):
    """The form showing the notifications section, without its secrets."""
    pairs = [(key, "\n".join(notifications.get(key, []))) for key in ("sms_to", "email_to", "webhooks")]
    pairs += [("events", event) for event in notifications.get("events", [])]
    smtp = notifications.get("email") or {}
    pairs += [(f"smtp_{key}", str(smtp.get(key) or "")) for key in ("host", "port", "username", "from")]
    if smtp.get("starttls"):
        pairs.append(("smtp_starttls", "on"))
    return MultiDict(pairs)


def notifications_value(form, old, fields):
    """The notifications typed in ``form``; an empty secret input keeps the secret already set."""
    value = {key: old[key] for key in old if key not in ("sms_to", "email_to", "webhooks", "events", "email")}
    for key in ("sms_to", "email_to", "webhooks"):
        value[key] = split_items(form.get(key, "")) if key != "webhooks" else form.get(key, "").split()
        for i, item in enumerate(value[key]):
            fields.add(f"{key}[{i}]", key, item)
    value["events"] = [event for event in NOTIFY_EVENTS if event in form.getlist("events")]
    value["events"] += [event for event in form.getlist("events") if event not in NOTIFY_EVENTS]
    email = _smtp_value(form, old.get("email") or {})
    put(value, "email", email)
    put(value, "webhook_secret", _secret(form, "webhook_secret", old.get("webhook_secret")))
    return value


def _smtp_value(form, old):
    """The SMTP server typed in ``form``, or None when no host is given (no e-mail then)."""
    host = form.get("smtp_host", "").strip()
    if not host:
        return None
    smtp = {"host": host}
    put(smtp, "port", whole(form.get("smtp_port")))
    for key in ("username", "from"):
        put(smtp, key, form.get(f"smtp_{key}", "").strip())
    put(smtp, "password", _secret(form, "smtp_password", old.get("password")))
    smtp["starttls"] = "smtp_starttls" in form
    return smtp


def _secret(form, key, old):
    """A newly typed secret, else none if "clear" is ticked, else the one already set."""
    typed = form.get(key, "")
    if typed.strip():
        return typed.strip()
    if form.get(f"{key}_clear"):
        return None
    return old


def redacted(value):
    """A copy of a notifications section fit for the audit log: secrets replaced by "(set)"."""
    safe = dict(value)
    if safe.get("webhook_secret"):
        safe["webhook_secret"] = "(set)"
    if safe.get("email", {}).get("password"):
        safe["email"] = dict(safe["email"], password="(set)")
    return safe


def save_notifications(value):
    """Like configedit.save_section, but the audit entry never holds the SMTP password or webhook secret."""
    try:
        answer = get_engine(timeout=SAVE_TIMEOUT).request("config_put", section="notifications", value=value)
    except ApplianceError as err:
        raise EngineDown(_("The engine does not answer: %(error)s", error=err)) from err
    if answer.get("saved"):
        audit("settings.notifications", {"section": "notifications", "value": redacted(value)})
    return answer


@bp.route("/notifications", methods=("POST",))
@role_required("admin")
def save_notification_settings():
    """Save who is told about missed calls and voicemail, and how."""
    config = load_config()["config"]
    fields = FieldMap("notifications", simple=NOTIFY_SIMPLE)
    for path, key in SMTP_PATHS.items():
        fields.add(path, key)
    answer = save_notifications(notifications_value(request.form, config["notifications"], fields))
    if not answer["saved"]:
        return _page(config, {"notifications": request.form}, fields.errors(answer), 400)
    flash(_("Notification settings saved."))
    return redirect(url_for("settings.index"))


# --- blacklist -------------------------------------------------------------------------


@bp.route("/blacklist", methods=("POST",))
@role_required("admin")
def add_blacklisted():
    """Add a number or a prefix (ending in *) to the blacklist."""
    config = load_config()["config"]
    blacklist = config["blacklist"]
    number = request.form.get("number", "").strip().replace(" ", "")
    if any(entry["number"] == number for entry in blacklist):
        return _page(config, {"blacklist": request.form},
                     {"blacklist-number": _("%(number)s is on the blacklist already.", number=number)}, 400)
    entry = {"number": number}
    put(entry, "note", request.form.get("note", "").strip())
    answer = save_section("blacklist", blacklist + [entry], "blacklist.add")
    if not answer["saved"]:
        fields = FieldMap(f"blacklist[{len(blacklist)}]")
        fields.add("number", "blacklist-number")
        fields.add("note", "blacklist-note")
        return _page(config, {"blacklist": request.form}, fields.errors(answer), 400)
    flash(_("%(number)s is blacklisted.", number=number))
    return redirect(url_for("settings.index") + "#blacklist")


@bp.route("/blacklist/delete", methods=("POST",))
@role_required("admin")
def remove_blacklisted():
    """Take a number or prefix off the blacklist."""
    config = load_config()["config"]
    number = request.form.get("number", "")
    kept = [entry for entry in config["blacklist"] if entry["number"] != number]
    if len(kept) == len(config["blacklist"]):
        return _page(config, errors={"blacklist-form": _("%(number)s is not on the blacklist.", number=number)},
                     status=404)
    answer = save_section("blacklist", kept, "blacklist.remove")
    if not answer["saved"]:
        return _page(config, errors={"blacklist-form": answer.get("message")}, status=400)
    flash(_("%(number)s is off the blacklist.", number=number))
    return redirect(url_for("settings.index") + "#blacklist")


# --- the front panel -------------------------------------------------------------------

PANEL_PINS = ("status_led", "button", "buzzer", "hold_seconds")


def panel_form(panel):
    """The form showing the panel section."""
    pairs = [(key, "" if panel.get(key) is None else str(panel[key])) for key in PANEL_PINS]
    pairs.append(("line_leds", ", ".join(str(pin) for pin in panel.get("line_leds", []))))
    pairs.append(("closed_switch", panel.get("closed_switch") or ""))
    if panel.get("enabled"):
        pairs.append(("enabled", "on"))
    return MultiDict(pairs)


def panel_value(form, old):
    """The panel typed in ``form``: numbers as numbers, anything else as typed for the engine to name."""
    panel = dict(old, enabled="enabled" in form)
    for key in PANEL_PINS:
        text = form.get(key, "").strip()
        panel[key] = None if not text and key in ("button", "buzzer") else whole(text) if text else old.get(key)
    pins = [item.strip() for item in form.get("line_leds", "").split(",") if item.strip()]
    panel["line_leds"] = [whole(pin) for pin in pins]
    put(panel, "closed_switch", form.get("closed_switch", "").strip())
    return {key: value for key, value in panel.items() if value is not None or key in ("button", "buzzer")}


@bp.route("/panel", methods=("POST",))
@role_required("admin")
def save_panel():
    """Save the front panel's pins."""
    config = load_config()["config"]
    answer = save_section("panel", panel_value(request.form, config.get("panel") or {}), "settings.panel")
    if not answer["saved"]:
        fields = FieldMap("panel", simple=())
        for key in PANEL_PINS + ("line_leds", "closed_switch", "enabled"):
            fields.add(key, f"panel-{key}")
        errors = fields.errors(answer)
        errors = {("panel-form" if key == "form" else key): message for key, message in errors.items()}
        return _page(config, {"panel": request.form}, errors, 400)
    flash(_("Front panel saved."))
    return redirect(url_for("settings.index") + "#panel")
