"""The dashboard and the wallboard: lines, calls, queue and operators, live by server-sent events.

The page never polls in the normal case: ``/events`` relays the engine's event stream
(server-sent events) and the page re-fetches ``/api/status`` when something happened.
Each open stream holds one web server thread, so their number is capped; a page that
is refused a stream falls back to polling.
"""
import datetime
import json
import socket
import threading
import time
import zoneinfo

from flask import (Blueprint, Response, abort, current_app, flash, g, jsonify, redirect, render_template, request,
                   url_for)
from flask_babel import get_locale
from flask_babel import gettext as _

from appliance import reports
from appliance.control import KEEPALIVE_SECONDS
from appliance.errors import ApplianceError, ControlError, EngineUnavailable
from appliance.journal import now as journal_now

from .auth import role_required
from .configedit import audit
from .db import ENGINE, get_db, get_engine

bp = Blueprint("dashboard", __name__)

SUPERVISORS = ("admin", "supervisor")
ALL_ROLES = ("admin", "supervisor", "operator")
OPERATOR_STATES = ("ready", "paused")

# Stream settings; the app's config may override them (tests use short ones).
STREAM_DEFAULTS = {
    "EVENTS_KEEPALIVE_SECONDS": 5.0,  # a comment this often: a gone client shows up as a failed write
    "EVENTS_MAX_STREAMS": 24,  # `hotline web` serves with 32 threads; leave the rest for pages
    "EVENTS_LIFETIME_SECONDS": 900.0,  # then the browser reconnects: a forgotten tab cannot hold a thread forever
    "EVENTS_BACKOFF_SECONDS": (1.0, 2.0, 4.0, 8.0, 15.0),
}
RETRY_MILLISECONDS = 3000  # how soon the browser reconnects after a stream ends
SETTINGS_CACHE_SECONDS = 60.0


# --- helpers the live pages' templates share ------------------------------------------------


@bp.app_template_filter("live_duration")
def live_duration(seconds):
    """Seconds as the pages show a duration: 42 s, 3:05, 1:02:07."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def state_names():
    """The engine's line activities and operator states, translated."""
    return {
        "starting": _("starting"), "up": _("up"), "down": _("down"), "idle": _("idle"), "ringing": _("ringing"),
        "dialling": _("dialling"), "in call": _("in call"), "ready": _("ready"), "paused": _("paused"),
        "on call": _("on call"), "wrap-up": _("wrap-up"), "offline": _("offline"), "disabled": _("disabled"),
    }


@bp.app_template_global("live_state")
def live_state(state):
    """One state, translated when it is a known one."""
    return state_names().get(state, state)


@bp.app_template_global("live_strings")
def live_strings():
    """The words the live pages' scripts show, translated (handed over in a data attribute)."""
    return {
        "states": state_names(),
        "noLines": _("No lines."), "noCalls": _("No calls in progress."), "nobodyWaiting": _("Nobody is waiting."),
        "noOperators": _("No operators."), "noReminders": _("No reminders are due."), "withheld": _("withheld"),
        "callback": _("call-back"), "hangUp": _("Hang up"), "ready": _("Ready"), "pause": _("Pause"),
        "confirmHangUp": _("Hang up call %(call)s?", call="{call}"),
        "live": _("live"), "reconnecting": _("reconnecting…"), "polling": _("refreshing every few seconds"),
        "engineDown": _("The engine does not answer; retrying."), "channelsInUse": _("channels in use"),
        "webDown": _("The web UI does not answer:"),
    }


# --- the engine's state ---------------------------------------------------------------


def engine_status():
    """The engine's live state, or an ``error`` saying why it is not available."""
    try:
        return get_engine().request("status")
    except ApplianceError as err:
        return {"error": _("The engine does not answer: %(error)s", error=str(err)),
                "lines": [], "calls": [], "queue": [], "operators": []}


def due_reminders():
    """Reminders that are due now, or None when the caller cards (appliance.contacts) are not installed."""
    try:
        from appliance.contacts import due_reminders as find_due
    except ImportError:
        return None
    return [dict(row) for row in find_due(get_db(), journal_now())]


def live_status():
    """The engine's state plus the due reminders, as the dashboard shows them."""
    status = engine_status()
    reminders = due_reminders()
    if reminders is not None:
        status["reminders"] = reminders
    return status


@bp.route("/")
@role_required(*ALL_ROLES)
def index():
    """Lines, calls, queue, operators and due reminders now; the page keeps itself current."""
    return render_template("dashboard.html", status=live_status())


@bp.route("/api/status")
@role_required(*ALL_ROLES)
def api_status():
    """The same state as JSON, for the page's refresh."""
    return jsonify(live_status())


# --- commands: pause/ready, hang up ------------------------------------------------------


def wants_json():
    """True for the page's fetch() calls, which ask for JSON; a plain form post gets a redirect."""
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def command_reply(ok, message, status=200, back=None, **data):
    """Answer a command as JSON (fetch) or with a flash message and a redirect to ``back`` (form)."""
    if wants_json():
        return jsonify(ok=ok, message=message, **data), status
    flash(message)
    return redirect(back or _back_to())


def _back_to():
    """Where a form post returns to: the page it came from, if it is ours, else the dashboard."""
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.index")


def may_set_operator(operator_id):
    """Supervisors set anyone's state; an operator only their own."""
    role = g.user["role"]
    return role in SUPERVISORS or (role == "operator" and g.user["operator_id"] == operator_id)


def set_operator_state(operator_id, state):
    """Ask the engine to pause or ready an operator; audit it; return (ok, message, http status, snapshot)."""
    try:
        snapshot = get_engine().request("operator", operator=operator_id, state=state)
    except ControlError as err:
        return False, str(err), 404, None
    except ApplianceError as err:
        return False, _("The engine does not answer: %(error)s", error=str(err)), 503, None
    audit("operator.state", {"operator": operator_id, "state": state})
    message = _("%(name)s is ready.", name=snapshot["name"]) if state == "ready" else \
        _("%(name)s is paused.", name=snapshot["name"])
    return True, message, 200, snapshot


@bp.route("/dashboard/operators/<operator_id>/state", methods=("POST",))
@role_required(*ALL_ROLES)
def operator_state(operator_id):
    """Pause an operator or make them ready again."""
    if not may_set_operator(operator_id):
        abort(403)
    state = request.form.get("state", "")
    if state not in OPERATOR_STATES:
        return command_reply(False, _("The state must be ready or paused."), 400)
    ok, message, status, snapshot = set_operator_state(operator_id, state)
    return command_reply(ok, message, status, operator=snapshot)


@bp.route("/dashboard/calls/<int:call_id>/hangup", methods=("POST",))
@role_required(*SUPERVISORS)
def hangup(call_id):
    """End a call in progress."""
    try:
        get_engine().request("hangup", call=call_id)
    except ControlError as err:
        return command_reply(False, str(err), 409)
    except ApplianceError as err:
        return command_reply(False, _("The engine does not answer: %(error)s", error=str(err)), 503)
    audit("call.hangup", {"call": call_id})
    return command_reply(True, _("Call %(call)s is being hung up.", call=call_id), call=call_id)


# --- the event stream ------------------------------------------------------------------


def stream_setting(name):
    """A stream setting from the app's config, else its default."""
    return current_app.config.get(name, STREAM_DEFAULTS[name])


def stream_slots():
    """The semaphore that caps open streams in this process."""
    with _SLOTS_LOCK:
        slots = current_app.extensions.get("event_stream_slots")
        if slots is None:
            slots = current_app.extensions["event_stream_slots"] = threading.BoundedSemaphore(
                int(stream_setting("EVENTS_MAX_STREAMS")))
        return slots


_SLOTS_LOCK = threading.Lock()


@bp.route("/events")
@role_required(*ALL_ROLES)
def events():
    """The engine's events as server-sent events, for as long as the page stays open."""
    slots = stream_slots()
    if not slots.acquire(blocking=False):
        # The page polls instead; a 503 stops EventSource from retrying at once.
        return Response("too many open event streams\n", status=503, mimetype="text/plain",
                        headers={"Retry-After": "30"})
    body = relay(current_app.extensions[ENGINE].path, tick=float(stream_setting("EVENTS_KEEPALIVE_SECONDS")),
                 lifetime=float(stream_setting("EVENTS_LIFETIME_SECONDS")),
                 backoff=tuple(stream_setting("EVENTS_BACKOFF_SECONDS")))
    response = Response(body, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(slots.release)  # the server closes the response when the client goes
    return response


def sse(event):
    """One server-sent event carrying ``event`` as JSON."""
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


def relay(path, tick, lifetime, backoff):
    """The text of the event stream: engine events, keepalive comments, engine.down and retries."""
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    deadline = time.monotonic() + lifetime
    failures = 0
    while time.monotonic() < deadline:
        reason = "the event stream ended"
        stream = engine_events(path, tick)
        try:
            for event in stream:
                if event is None:
                    yield ": keepalive\n\n"
                else:
                    failures = 0
                    yield sse(event)
                if time.monotonic() >= deadline:
                    return
        except EngineUnavailable as err:
            reason = str(err)
        finally:
            stream.close()  # also when the client went: the engine drops its subscriber
        wait = backoff[min(failures, len(backoff) - 1)]
        failures += 1
        yield sse({"type": "engine.down", "error": reason, "retry_seconds": wait})
        yield from pause(wait, tick)


def pause(seconds, tick):
    """Wait ``seconds``, with a keepalive comment every ``tick`` so that a gone client is noticed."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        time.sleep(min(left, tick))
        yield ": waiting for the engine\n\n"


def engine_events(path, tick):
    """The engine's events as dicts, and None after each ``tick`` seconds of quiet; raises EngineUnavailable.

    ControlClient.subscribe() blocks until a real event and hides the engine's keepalives,
    so a stream to a browser that has gone would never notice; this reader wakes every tick.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(tick)
        sock.connect(path)
        sock.sendall(b'{"cmd": "subscribe"}\n')
        yield from _event_lines(sock, tick)
    except EngineUnavailable:
        raise
    except (OSError, ValueError) as err:  # ValueError: a line that is not JSON
        raise EngineUnavailable(f"no event stream from {path}: {err}") from err
    finally:
        sock.close()


def _event_lines(sock, tick):
    """Split what the socket sends into events; the engine's keepalives and silences become None."""
    buffer = b""
    quiet = 0.0
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            quiet += tick
            if quiet > 2 * KEEPALIVE_SECONDS:
                raise EngineUnavailable("the engine stopped sending keepalives") from None
            yield None
            continue
        if not chunk:
            raise EngineUnavailable("the engine closed the event stream")
        quiet = 0.0
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                yield _event(json.loads(line))


def _event(message):
    """An event as the page gets it: the subscription's reply becomes ``subscribed``, keepalives None."""
    if message.get("result") == "subscribed":
        return {"type": "subscribed"}
    if message.get("type") == "keepalive":
        return None
    return message


# --- the wallboard -----------------------------------------------------------------------


@bp.route("/wallboard")
@role_required(*SUPERVISORS)
def wallboard():
    """Big numbers for a screen on the wall: waiting, longest wait, today's calls, operators."""
    return render_template("wallboard.html", board=wallboard_figures(), lang=str(get_locale() or "en"))


@bp.route("/api/wallboard")
@role_required(*SUPERVISORS)
def api_wallboard():
    """The wallboard's figures as JSON."""
    return jsonify(wallboard_figures())


def wallboard_figures():
    """Waiting callers, the longest wait, today's offered/answered/abandoned, operators ready and on call."""
    status = engine_status()
    callers = [entry for entry in status.get("queue", []) if entry.get("kind") == "caller"]
    states = [operator["state"] for operator in status.get("operators", [])]
    figures = {
        "error": status.get("error"),
        "box": status.get("box", ""),
        "waiting": len(callers),
        "longest_wait_seconds": max((entry["waited_seconds"] for entry in callers), default=0),
        "operators_ready": states.count("ready"),
        "operators_on_call": states.count("on call") + states.count("ringing"),
        "operators_paused": states.count("paused"),
        "calls_now": len([call for call in status.get("calls", []) if call.get("role") == "caller"]),
    }
    figures.update(today_figures(*box_settings()))
    return figures


def today_figures(tz, service_levels):
    """Callers since local midnight: offered, answered by an operator, abandoned, service level."""
    return reports.today_figures(get_db(), tz, service_levels)


def box_settings():
    """(time zone, {queue id: service level seconds}) of the box, cached a minute; the host's zone if unknown."""
    cache = current_app.extensions.setdefault("box_settings_cache", {})
    if cache.get("until", 0) > time.monotonic():
        return cache["value"]
    try:
        config = get_engine().request("config")["config"]
        value = (zoneinfo.ZoneInfo(config["settings"]["timezone"]),
                 {queue["id"]: queue.get("service_level_seconds", reports.DEFAULT_SERVICE_LEVEL_SECONDS)
                  for queue in config.get("queues", [])})
    except (ApplianceError, KeyError, zoneinfo.ZoneInfoNotFoundError):
        return datetime.datetime.now().astimezone().tzinfo, {}  # not cached: try again next time
    cache.update(value=value, until=time.monotonic() + SETTINGS_CACHE_SECONDS)
    return value
