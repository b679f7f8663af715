"""The REST API under /api/v1 with token authentication and its OpenAPI description.

JSON in and out, for everything the pages do; the contract (limits, patterns, enums) and
the OpenAPI document live in web_ui/openapi.py.

Authentication. A request under /api/v1 that carries ``Authorization: Bearer <token>`` is
decided by that token alone (``accounts.token_user``; the token's role applies, and a
session cookie sent alongside is ignored). Without the header the web UI's session decides,
exactly as for pages. auth's one ``before_app_request`` guard hands every request under
/api/v1 to ``_api_guard`` (registered with ``auth.guard_paths``), which decides requests
with a token itself and the others with auth's session guard (401 without a session).

CSRF. CSRFProtect's automatic check cannot tell a token from a cookie, so the blueprint is
exempt from it and ``_api_guard`` calls ``csrf.protect()`` itself for session requests
(a browser attaches the cookie on its own, so those need the page's X-CSRFToken). A bearer
token is never attached by a browser, so another site cannot forge a request with it.

Errors are always JSON ``{"error": ...}`` under /api/: ``ApiError`` from the views, and app
error handlers (JSON under /api/, Flask's own pages elsewhere) for what fails before routing
or in the guard: 401, 404 of unknown paths, 405, 413, a CSRF refusal.
"""
import datetime
import json
import logging
import math
import os
import re
import socket
import threading
import time

from flask import Blueprint, current_app, g, jsonify, request, send_file
from flask_wtf.csrf import CSRFError

from appliance import accounts, contacts, recordings, reports
from appliance.paths import TWIN_SOCKET
from appliance.config import ConfigStore, demo_config
from appliance.control import ControlClient
from appliance.errors import ApplianceError, ControlError, RecordingError
from appliance.journal import Journal

from . import auth, configedit, csrf
from . import openapi as contract
from .auth import role_required
from .db import get_db, get_engine

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix=contract.PREFIX)
csrf.exempt(bp)  # session requests are checked in _api_guard; token requests need no CSRF token

ALL, STAFF, ADMIN = contract.ALL, contract.STAFF, contract.ADMIN
ERROR_CODES = (400, 401, 403, 404, 405, 413, 422, 500)
ENGINE_TIMEOUT = 5.0
SMS_TIMEOUT = 120.0  # a multipart Cyrillic SMS over a slow modem
BALANCE_TIMEOUT = 60.0  # USSD answers take their time
TWIN_TIMEOUT = 2.0
RING_WAIT_SECONDS = 5.0  # how long POST /test-calls waits to learn the journal id of the call it rang
NUMBER = re.compile(contract.NUMBER_PATTERN)
IDENTIFIER = re.compile(contract.ID_PATTERN)
DIGITS = re.compile(contract.DIGITS_PATTERN)
DATE = re.compile(contract.DATE_PATTERN)
DATE_HINT = "must be a date as YYYY-MM-DD, years 1970 to 2999"
# Fields appliance.contacts names, as this API calls them.
API_FIELDS = {"date_from": "from", "date_to": "to", "note": "text"}
REDACTED = "(set)"  # what configedit.redact shows instead of a secret
CALL_FIELDS = ("id", "line_id", "direction", "role", "caller", "callee", "started_at", "answered_at", "ended_at",
               "outcome", "ended_by", "talk_seconds", "wait_seconds", "digits", "flow", "campaign", "language",
               "queue", "operator", "category", "parent_id")
ERROR_MESSAGES = {401: "log in, or send Authorization: Bearer <token>", 403: "your role may not do this",
                  404: "not found", 413: f"the body is larger than {contract.MAX_BODY_BYTES} bytes",
                  500: "internal error"}


class ApiError(Exception):
    """An answer other than success: its HTTP status, message and extra JSON fields."""

    def __init__(self, status, error, **extra):
        super().__init__(error)
        self.status = status
        self.error = error
        self.extra = extra  # may hold its own "message" (422), so the text is not called that


def _bad(parameter, message):
    """400 naming the parameter that is wrong."""
    return ApiError(400, f"{parameter}: {message}", parameter=parameter)


def _refused(err):
    """422 for a value appliance.contacts refused, with the field as this API names it."""
    field = API_FIELDS.get(err.field, err.field)
    return ApiError(422, f"{field}: {err.message}", field=field, message=err.message)


def _json_error(status, error, **extra):
    """The JSON error response every failure under /api/ gets."""
    response = jsonify({"error": error, **extra})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="hotline"'
    return response


@bp.errorhandler(ApiError)
def _api_error(err):
    """An ApiError as its JSON answer."""
    return _json_error(err.status, err.error, **err.extra)


@bp.after_request
def _no_store(response):
    """API answers are live data: no cache keeps them."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# --- installation: the guard and the error pages ---------------------------------------------


@bp.record_once
def _install(state):
    """Decide requests under the prefix with the token check; answer errors under /api/ in JSON."""
    app = state.app
    if "auth" not in app.blueprints:
        # Fail at start-up, not by letting every API request through or locking every one out.
        raise RuntimeError("web_ui.api builds on auth's guard: register the auth blueprint before it")
    auth.guard_paths(app, contract.PREFIX, _api_guard)
    for code in ERROR_CODES:
        app.register_error_handler(code, _http_error)


def _api_guard():
    """Authenticate an API request by its bearer token, else by its session (plus CSRF)."""
    request.max_content_length = contract.MAX_BODY_BYTES  # werkzeug answers 413 when reading more
    if request.endpoint == "api.openapi_json":
        g.user = None  # the description holds no data: integrators read it before they have a token
        return None
    header = request.headers.get("Authorization")
    if header is not None:
        return _token_login(header)
    refused = auth.session_guard()  # raises 401 for /api/ paths without a session
    if refused is not None or g.get("user") is None:
        return _json_error(401, ERROR_MESSAGES[401])  # e.g. the guard's redirect to first-run setup
    g.auth = "session"
    if current_app.config.get("WTF_CSRF_ENABLED", True) and current_app.config.get("WTF_CSRF_CHECK_DEFAULT", True):
        csrf.protect()  # raises CSRFError (400) for a state-changing request without the page's token
    return None


def _token_login(header):
    """Make the token's identity the request's user, or answer 401."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _json_error(401, "send Authorization: Bearer <token>")
    row = accounts.token_user(get_db(), token.strip())
    if row is None:
        return _json_error(401, "the token is unknown or revoked")
    g.user = _token_account(row)
    g.auth = "token"
    return None


def _token_account(row):
    """A user-like dict for a token: its role, and for operator tokens the operator of the user who made it."""
    operator_id = None
    if row["role"] == "operator":
        # A token has no operator of its own; an operator's token acts for its maker's operator.
        owner = get_db().execute("SELECT operator_id FROM users WHERE username = ?", (row["created_by"],)).fetchone()
        operator_id = owner["operator_id"] if owner else None
    return {"id": None, "username": f"token:{row['name']}", "role": row["role"], "language": "en",
            "operator_id": operator_id, "token_id": row["id"]}


def _http_error(error):
    """An HTTP error under /api/ as JSON; elsewhere Flask's own page for it."""
    if request.path.startswith("/api/"):  # every JSON endpoint, also the pages' own (/api/status)
        return _http_error_json(error)
    return error


def _http_error_json(error):
    """An HTTP error as JSON, keeping its headers (Allow on 405)."""
    code = getattr(error, "code", None) or 500
    extra = {}
    if code == 400:
        extra["parameter"] = "X-CSRFToken" if isinstance(error, CSRFError) else "body"
        message = f"{extra['parameter']}: {error.description}"
    elif code == 405:
        message = f"{request.method} is not allowed here"
    else:
        message = ERROR_MESSAGES.get(code) or getattr(error, "description", None) or "error"
    response = _json_error(code, message, **extra)
    if hasattr(error, "get_headers"):
        for name, value in error.get_headers():
            if name.lower() == "allow":
                response.headers[name] = value
    return response


# --- reading the request -----------------------------------------------------------------------


def _body():
    """The request's JSON object; 400 naming the body otherwise."""
    try:
        # force: any content type; safe because session requests carry a CSRF token and tokens are not cookies
        data = request.get_json(force=True, silent=True)
    except RecursionError:
        data = None
    if not isinstance(data, dict):
        raise _bad("body", "send a JSON object")
    if not _encodable(data):
        raise _bad("body", "text must be valid Unicode (a lone surrogate such as \\ud800 is not)")
    return data


def _encodable(value):
    """True unless a text somewhere in ``value`` holds a lone surrogate, which JSON allows and UTF-8 cannot store."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(key) and _encodable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_encodable(item) for item in value)
    return True


def _body_text(body, name, required=False, default=""):
    """A text field of the body; 400 if it is not text."""
    if name not in body or (body[name] is None and not required):
        if required:
            raise _bad(name, "is required")
        return default
    value = body[name]
    if not isinstance(value, str):
        raise _bad(name, "must be text")
    return value


def _body_match(body, name, pattern, hint, required=False, default=""):
    """A body field that must match ``pattern``."""
    value = _body_text(body, name, required, default)
    if (value and not pattern.fullmatch(value)) or (required and not value):
        raise _bad(name, hint)
    return value


def _body_number(body, name, default, low, high):
    """A number from the body within [low, high]."""
    value = body.get(name, default)
    # compared before any float(): JSON may carry an integer too large for a float
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _bad(name, f"must be a number from {low} to {high}")
    return float(value)


def _arg(name):
    """A query argument, None when missing or empty."""
    value = request.args.get(name)
    return value if value else None


def _int_arg(name, default, low, high):
    """A whole-number query argument within [low, high]."""
    text = _arg(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad(name, f"must be a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise _bad(name, f"must be a whole number from {low} to {high}")
    return value


def _float_arg(name, default, low, high):
    """A number query argument within [low, high]."""
    text = _arg(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise _bad(name, f"must be a number from {low} to {high}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise _bad(name, f"must be a number from {low} to {high}")
    return value


def _match_arg(name, pattern, hint):
    """A query argument that must match ``pattern``."""
    value = _arg(name)
    if value is not None and not pattern.fullmatch(value):
        raise _bad(name, hint)
    return value


def _choice_arg(name, choices, default):
    """A query argument from ``choices``."""
    value = _arg(name) or default
    if value not in choices:
        raise _bad(name, f"must be one of {', '.join(choices)}")
    return value


def _date_arg(name):
    """A YYYY-MM-DD query argument as a date, or None."""
    text = _match_arg(name, DATE, DATE_HINT)
    if text is None:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise _bad(name, DATE_HINT) from None


# --- the engine --------------------------------------------------------------------------------


def _engine(cmd, timeout=ENGINE_TIMEOUT, **args):
    """Ask the engine; 503 when it does not answer, 404 or 409 when it refuses."""
    try:
        return get_engine(timeout).request(cmd, **args)
    except ControlError as err:
        raise _engine_refusal(str(err)) from err
    except (ApplianceError, OSError, ValueError) as err:  # no socket, a timeout, a torn reply
        raise ApiError(503, f"the engine does not answer: {err}") from err


def _engine_refusal(message):
    """The status for the engine's refusal: unknown thing 404, its own failure 503, else 409."""
    if message.startswith("no "):
        return ApiError(404, message)
    if message.startswith("internal error"):
        return ApiError(503, f"the engine failed: {message}")
    return ApiError(409, message)


# --- shaping answers ---------------------------------------------------------------------------


def _user():
    """The request's user: an account, or a token's stand-in."""
    return g.user


def _is_operator():
    """True when the request has the operator role."""
    return g.user["role"] == "operator"


def _own_operator():
    """The operator id the request acts for, or None."""
    return g.user.get("operator_id") or None


def _json_object(text):
    """A JSON column as an object ({} when empty or unreadable)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _call_json(row, tags=None):
    """A journal row as the API shows a call: no file paths, a recording URL instead."""
    call = {key: row.get(key) for key in CALL_FIELDS}
    call["collected"] = _json_object(row.get("collected"))
    call["has_recording"] = bool(row.get("recording"))
    call["recording_url"] = f"{contract.PREFIX}/calls/{row['id']}/recording" if row.get("recording") else None
    if tags is None:
        # search_calls joins tags with ", "; the API refuses commas in tags, so the split is exact
        tags = [tag for tag in (row.get("tag_list") or "").split(", ") if tag]
    call["tags"] = tags
    if "note_count" in row:
        call["note_count"] = row["note_count"]
    return call


def _jsonable(value):
    """Report values as JSON: dates as ISO text, tuples as lists, infinities as null."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _visible_call(call_id):
    """The call with its events; 404 if none, 403 for an operator who did not answer it."""
    record = Journal(get_db()).get_call(call_id) if call_id <= contract.MAX_ID else None
    if record is None:
        raise ApiError(404, f"no call {call_id}")
    if _is_operator():
        own = _own_operator()  # an account linked to no operator owns no calls
        if not own or record["operator"] != own:
            raise ApiError(403, "an operator may open only the calls they answered")
    return record


# --- the description and the identity ----------------------------------------------------------


@bp.route("/openapi.json")
def openapi_json():
    """The OpenAPI description of this API (public: it holds no data)."""
    return jsonify(contract.document())


@bp.route("/me")
@role_required(*ALL)
def me():
    """Who is asking: user name, role, linked operator and how they authenticated."""
    return jsonify(username=_user()["username"], role=_user()["role"], operator_id=_own_operator(), auth=g.auth)


@bp.route("/status")
@role_required(*ALL)
def status():
    """The box's live state from the engine."""
    return jsonify(_engine("status"))


# --- calls -----------------------------------------------------------------------------------


def _call_search():
    """The journal filters of the query string as appliance.contacts.search_calls arguments."""
    role = _choice_arg("role", contract.CALL_ROLE_FILTERS, "caller")
    tag = _arg("tag")
    if tag is not None and (len(tag) > contacts.MAX_TAG or "," in tag):
        raise _bad("tag", f"a tag has at most {contacts.MAX_TAG} characters and no commas")
    category = _arg("category")
    if category is not None and len(category) > contacts.MAX_CATEGORY:
        raise _bad("category", f"a category has at most {contacts.MAX_CATEGORY} characters")
    outcome = _arg("outcome")
    if outcome is not None and outcome not in contract.OUTCOMES:
        raise _bad("outcome", f"must be one of {', '.join(contract.OUTCOMES)}")
    return {
        "date_from": _match_arg("from", DATE, DATE_HINT),
        "date_to": _match_arg("to", DATE, DATE_HINT),
        "number": _match_arg("number", NUMBER, "must be a phone number: an optional + and 3-15 digits"),
        "line": _match_arg("line", IDENTIFIER, "must be a line id"),
        "queue": _match_arg("queue", IDENTIFIER, "must be a queue id"),
        "operator": _match_arg("operator", IDENTIFIER, "must be an operator id"),
        "outcome": outcome, "category": category, "tag": tag,
        "role": None if role == "all" else role,
    }


@bp.route("/calls")
@role_required(*ALL)
def list_calls():
    """Search the journal, newest first; an operator gets only the calls they answered."""
    search = _call_search()
    limit = _int_arg("limit", contract.DEFAULT_LIMIT, 1, contract.MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, contract.MAX_OFFSET)
    if _is_operator():
        own = _own_operator()
        if search["operator"] and search["operator"] != own:
            raise ApiError(403, "an operator sees only the calls they answered")
        if not own:
            return jsonify(calls=[], total=0, limit=limit, offset=offset)
        search["operator"] = own
    conn = get_db()
    try:
        total = contacts.count_calls(conn, **search)
        rows = contacts.search_calls(conn, **search, limit=limit, offset=offset)
    except contacts.ContactError as err:
        field = API_FIELDS.get(err.field, err.field)
        raise _bad(field, err.message) from err
    return jsonify(calls=[_call_json(row) for row in rows], total=total, limit=limit, offset=offset)


@bp.route("/calls/<int:call_id>")
@role_required(*ALL)
def get_call(call_id):
    """One call with its timeline, notes, tags and the legs the box placed for it."""
    record = _visible_call(call_id)
    conn = get_db()
    call = _call_json(record, tags=contacts.tags(conn, call_id))
    call["events"] = record["events"]
    call["notes"] = contacts.notes(conn, call_id)
    call["legs"] = [_call_json(leg, tags=contacts.tags(conn, leg["id"])) for leg in contacts.call_legs(conn, call_id)]
    return jsonify(call)


@bp.route("/calls/<int:call_id>/recording")
@role_required(*ALL)
def call_recording(call_id):
    """The call's recording; the file is found from the journal's path, never from the URL."""
    record = _visible_call(call_id)
    if not record["recording"]:
        raise ApiError(404, f"call {call_id} has no recording")
    try:
        path = recordings.locate(current_app.config["DATA_DIR"], record["recording"])
    except RecordingError:
        path = None  # a journal path outside recordings/ is never served
    if path is None:
        raise ApiError(404, f"the recording of call {call_id} is gone")
    return send_file(path, mimetype=recordings.mime_type(path), conditional=True,
                     download_name=f"call-{call_id}{os.path.splitext(path)[1]}", max_age=0)


@bp.route("/calls/<int:call_id>/notes", methods=("POST",))
@role_required(*ALL)
def add_note(call_id):
    """Add a note to a call."""
    _visible_call(call_id)
    text = _body_text(_body(), "text", required=True)
    conn = get_db()
    try:
        note_id = contacts.add_note(conn, call_id, _user()["username"], text)
    except contacts.ContactError as err:
        raise _refused(err) from err
    configedit.audit("journal.note", {"call_id": call_id, "note_id": note_id, "text": text.strip()})
    note = next(item for item in contacts.notes(conn, call_id) if item["id"] == note_id)
    return jsonify(note), 201


@bp.route("/calls/<int:call_id>/tags", methods=("PUT",))
@role_required(*ALL)
def set_tags(call_id):
    """Replace a call's tags."""
    _visible_call(call_id)
    tags = _tag_list(_body(), "tags", required=True)
    try:
        stored = contacts.set_tags(get_db(), call_id, tags)
    except contacts.ContactError as err:
        raise _refused(err) from err
    configedit.audit("journal.tags", {"call_id": call_id, "tags": stored})
    return jsonify(call_id=call_id, tags=stored)


def _tag_list(body, name, required=False):
    """A list of tags from the body; 400 unless it is a list of texts without commas."""
    if name not in body:
        if required:
            raise _bad(name, "is required")
        return None
    tags = body[name]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise _bad(name, "must be a list of texts")
    if any("," in tag for tag in tags):
        raise _bad(name, "a tag cannot contain a comma")
    return tags


@bp.route("/calls/<int:call_id>/category", methods=("PUT",))
@role_required(*ALL)
def set_category(call_id):
    """Set a call's category, or clear it with null or an empty text."""
    _visible_call(call_id)
    body = _body()
    if "category" not in body:
        raise _bad("category", "is required (null clears it)")
    category = _body_text(body, "category")
    try:
        stored = contacts.set_category(get_db(), call_id, category)
    except contacts.ContactError as err:
        raise _refused(err) from err
    configedit.audit("journal.category", {"call_id": call_id, "category": stored})
    return jsonify(call_id=call_id, category=stored)


@bp.route("/calls/<int:call_id>/hangup", methods=("POST",))
@role_required(*STAFF)
def hangup(call_id):
    """Ask the engine to hang up a call in progress."""
    record = _visible_call(call_id)
    if record["ended_at"]:
        raise ApiError(409, f"call {call_id} is over")
    result = _engine("hangup", call=call_id)
    configedit.audit("call.hangup", {"call": call_id})
    return jsonify(result), 202


# --- caller cards ----------------------------------------------------------------------------


def _number_or_400(number):
    """``number`` if it is a phone number, else 400."""
    # fullmatch: "$" alone would let a number with a trailing newline through
    if not NUMBER.fullmatch(number) or not contacts.valid_number(number):
        raise _bad("number", "must be a phone number: an optional + and 3-15 digits")
    return number


def _contact_json(number):
    """A caller card with its calls (an operator's own only), reminders and call-back tasks."""
    conn = get_db()
    card = contacts.get_contact(conn, number)
    calls = contacts.calls_of(conn, number, limit=50)
    if _is_operator():
        calls = [call for call in calls if _own_operator() and call["operator"] == _own_operator()]
    card["calls"] = [_call_json(call, tags=call["tags"]) for call in calls]
    card["reminders"] = contacts.reminders_of(conn, number)
    card["callbacks"] = contacts.callbacks_of(conn, number, include_closed=True)
    return card


@bp.route("/contacts/<number>")
@role_required(*ALL)
def get_contact(number):
    """A caller card (empty fields when there is none yet)."""
    return jsonify(_contact_json(_number_or_400(number)))


@bp.route("/contacts/<number>", methods=("PUT",))
@role_required(*ALL)
def put_contact(number):
    """Create or change a caller card; fields left out keep their value."""
    _number_or_400(number)
    body = _body()
    stored = contacts.get_contact(get_db(), number)
    fields = {"name": _body_text(body, "name", default=stored["name"]),
              "status": _body_text(body, "status", default=stored["status"]),
              "notes_text": _body_text(body, "notes", default=stored["notes"])}
    tags = _tag_list(body, "tags")
    try:
        card = contacts.save_contact(get_db(), number, card_tags=stored["tags"] if tags is None else tags, **fields)
    except contacts.ContactError as err:
        raise _refused(err) from err
    configedit.audit("contacts.save", {"number": number, "name": card["name"], "status": card["status"],
                                       "tags": card["tags"]})
    return jsonify(_contact_json(number))


# --- call-backs and operators ----------------------------------------------------------------


@bp.route("/callbacks")
@role_required(*STAFF)
def list_callbacks():
    """Call-back tasks, oldest first (open ones unless told)."""
    status_filter = _choice_arg("status", contract.CALLBACK_STATUSES, "open")
    limit = _int_arg("limit", contract.DEFAULT_LIMIT, 1, contract.MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, contract.MAX_OFFSET)
    where, params = ("", ()) if status_filter == "all" else (" WHERE status = ?", (status_filter,))
    conn = get_db()
    total = conn.execute(f"SELECT COUNT(*) FROM callbacks{where}", params).fetchone()[0]
    rows = conn.execute(f"SELECT * FROM callbacks{where} ORDER BY created_at, id LIMIT ? OFFSET ?",
                        (*params, limit, offset))
    return jsonify(callbacks=[dict(row) for row in rows], total=total)


@bp.route("/operators")
@role_required(*ALL)
def list_operators():
    """Operators and their live state; an operator sees only themselves."""
    operators = _engine("status").get("operators", [])
    if _is_operator():
        operators = [item for item in operators if _own_operator() and item.get("id") == _own_operator()]
    return jsonify(operators=operators)


@bp.route("/operators/<operator_id>/state", methods=("PUT",))
@role_required(*ALL)
def set_operator_state(operator_id):
    """Pause an operator or make them ready; an operator only themselves."""
    if not IDENTIFIER.fullmatch(operator_id):
        raise ApiError(404, f"no operator {operator_id!r}")
    if _is_operator() and operator_id != _own_operator():
        raise ApiError(403, "an operator may change only their own state")
    state = _body_text(_body(), "state", required=True)
    if state not in contract.SETTABLE_STATES:
        raise _bad("state", f"must be one of {', '.join(contract.SETTABLE_STATES)}")
    result = _engine("operator", operator=operator_id, state=state)
    configedit.audit("operator.state", {"operator": operator_id, "state": state})
    return jsonify(result)


# --- configuration ---------------------------------------------------------------------------


def _section_or_404(section):
    """``section`` if the API serves it, else 404."""
    if section not in contract.CONFIG_SECTIONS:
        raise ApiError(404, f"no configuration section {section!r}; sections: {', '.join(contract.CONFIG_SECTIONS)}")
    return section


@bp.route("/config/<section>")
@role_required(*ADMIN)
def get_config(section):
    """One section of the configuration in force."""
    _section_or_404(section)
    try:
        answer = configedit.load_config()
    except configedit.EngineDown as err:
        raise ApiError(503, str(err)) from err
    # Secrets (SMTP password, webhook secret, SIM PIN) read back as "(set)": a CRM token must not leak them.
    return jsonify(section=section, value=configedit.redact(answer["config"].get(section)),
                   warnings=answer.get("warnings", []), problem=answer.get("problem"))


@bp.route("/config/<section>", methods=("PUT",))
@role_required(*ADMIN)
def put_config(section):
    """Replace one section; the engine validates the whole configuration and applies it, or refuses (422)."""
    _section_or_404(section)
    body = _body()
    if "value" not in body:
        raise _bad("value", "is required: the whole section")
    try:
        stored = configedit.load_config()["config"].get(section)
        answer = configedit.save_section(section, _keep_secrets(body["value"], stored))
    except configedit.EngineDown as err:
        raise ApiError(503, str(err)) from err
    if not answer.get("saved"):
        field, message = answer.get("field") or section, answer.get("message") or "refused"
        raise ApiError(422, f"{field}: {message}", field=field, message=message)
    return jsonify(saved=True, section=section, warnings=answer.get("warnings", []))


def _keep_secrets(new, old):
    """``new`` with each "(set)" a GET showed for a secret replaced by the secret stored there (a round trip keeps it)."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {key: old[key] if key in configedit.SECRET_KEYS and item == REDACTED and old.get(key)
                else _keep_secrets(item, old.get(key)) for key, item in new.items()}
    if isinstance(new, list) and isinstance(old, list):
        # list items (lines with a SIM PIN) are matched by id, so reordering them keeps each one's secret
        by_id = {item["id"]: item for item in old if isinstance(item, dict) and isinstance(item.get("id"), str)}
        return [_keep_secrets(item, by_id.get(_item_id(item))) for item in new]
    return new


def _item_id(item):
    """The id of a list item as sent, or None (the body is the client's: it may be anything)."""
    key = item.get("id") if isinstance(item, dict) else None
    return key if isinstance(key, str) else None


# --- test calls, lines --------------------------------------------------------------------------


@bp.route("/test-calls", methods=("POST",))
@role_required(*STAFF)
def test_call():
    """Place a test call: a virtual caller rings a line (inbound), or the line dials out (outbound)."""
    body = _body()
    kind = _body_text(body, "kind", required=True)
    if kind not in contract.TEST_CALL_KINDS:
        raise _bad("kind", f"must be one of {', '.join(contract.TEST_CALL_KINDS)}")
    line = _body_match(body, "line", IDENTIFIER, "must be a line id", required=True)
    hold = _body_number(body, "hold", contract.DEFAULT_HOLD_SECONDS, 1, contract.MAX_HOLD_SECONDS)
    if kind == "outbound":
        to = _body_match(body, "to", NUMBER, "must be a phone number to dial", required=True)
        result = _engine("originate", line=line, to=to, hold=hold)
        configedit.audit("testcall.originate", {"line": line, "to": to, "hold": hold, "call": result.get("call")})
        return jsonify(kind=kind, line=line, to=to, hold=hold, call=result.get("call")), 202
    caller = _body_match(body, "from", NUMBER, "must be a phone number", default=contract.DEFAULT_TEST_CALLER)
    caller = caller or contract.DEFAULT_TEST_CALLER
    digits = _body_match(body, "digits", DIGITS, "must be up to 32 keys of 0-9, * and #")
    call_id = _ring_virtual_line(line, caller, digits, hold)
    configedit.audit("testcall.ring", {"line": line, "from": caller, "digits": digits, "hold": hold, "call": call_id})
    return jsonify(kind=kind, line=line, hold=hold, digits=digits, call=call_id, **{"from": caller}), 202


def _ring_virtual_line(line, caller, digits, hold):
    """Have the virtual twin ring ``line`` in the background; return the call's journal id once seen, or None."""
    _engine("ping")
    twin_path = os.path.join(current_app.config["DATA_DIR"], TWIN_SOCKET)
    try:
        modems = ControlClient(twin_path, timeout=TWIN_TIMEOUT).request("status").get("modems", [])
    except (ApplianceError, OSError, ValueError) as err:
        raise ApiError(503, f"the virtual twin does not answer ({err}): inbound test calls need virtual lines") \
            from err
    if line not in {modem.get("line") for modem in modems}:
        raise ApiError(404, f"no virtual modem on line {line!r}")
    try:
        stream = _subscribe(get_engine().path)  # before the call is placed: its start cannot be missed
    except OSError as err:
        raise ApiError(503, f"the engine does not answer: {err}") from err
    with stream:
        threading.Thread(target=_place_virtual_call, args=(twin_path, line, caller, digits, hold), daemon=True,
                         name="api-test-call").start()
        return _wait_for_ring(stream, caller, time.monotonic() + RING_WAIT_SECONDS)


class _EventStream:
    """The engine's event stream on a socket of our own, so a deadline can end the reading."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(ENGINE_TIMEOUT)
        try:
            self.sock.connect(path)
            self.file = self.sock.makefile("rwb")
        except OSError:
            self.sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()
        self.sock.close()
        return False


def _subscribe(path):
    """Subscribe to the engine's events (the control API's "subscribe" request); OSError if it does not answer."""
    stream = _EventStream(path)
    try:
        stream.file.write(json.dumps({"cmd": "subscribe"}).encode() + b"\n")
        stream.file.flush()
        if not json.loads(stream.file.readline() or b"{}").get("ok"):
            raise OSError("the engine refused the subscription")
    except (OSError, ValueError) as err:
        stream.__exit__(None, None, None)
        raise OSError(str(err)) from err
    return stream


def _wait_for_ring(stream, caller, deadline):
    """The journal id of the first inbound call from ``caller`` seen before ``deadline``, else None."""
    while (remaining := deadline - time.monotonic()) > 0:
        stream.sock.settimeout(remaining)
        try:
            line = stream.file.readline()
            event = json.loads(line)
        except (OSError, ValueError):
            return None  # timed out, or the engine went away: the call may still be in the journal later
        if not isinstance(event, dict):
            continue
        call = event.get("call") or {}
        if event.get("type") == "call.started" and call.get("direction") == "in" and call.get("caller") == caller:
            return call.get("id")
    return None


def _place_virtual_call(twin_path, line, caller, digits, hold):
    """The virtual caller's side: ring, press the digits, stay ``hold`` seconds, hang up."""
    try:
        ControlClient(twin_path, timeout=hold + 30).request("call", line=line, hold=hold, digits=digits,
                                                            **{"from": caller})
    except (ApplianceError, OSError, ValueError) as err:
        log.warning("API test call on %s from %s failed: %s", line, caller, err)


def _line_or_404(line_id):
    """``line_id`` if it can be a line id, else 404 (the engine knows which exist)."""
    if not IDENTIFIER.fullmatch(line_id):
        raise ApiError(404, f"no line {line_id!r}")
    return line_id


@bp.route("/lines/<line_id>")
@role_required(*STAFF)
def get_line(line_id):
    """A line's state, its recent events and SMS."""
    return jsonify(_engine("line", line=_line_or_404(line_id)))


@bp.route("/lines/<line_id>/sms", methods=("POST",))
@role_required(*ADMIN)
def send_sms(line_id):
    """Send an SMS through a line (UCS2 for Cyrillic, split into parts as needed)."""
    _line_or_404(line_id)
    body = _body()
    to = _body_match(body, "to", NUMBER, "must be a phone number such as +359888123456", required=True)
    text = _body_text(body, "text", required=True)
    if not text.strip() or len(text) > contract.MAX_SMS_TEXT:
        raise _bad("text", f"must be 1 to {contract.MAX_SMS_TEXT} characters")
    result = _engine("sms", timeout=SMS_TIMEOUT, line=line_id, to=to, text=text)
    configedit.audit("lines.sms", {"line": line_id, "to": to, "parts": result.get("parts")})
    return jsonify(line=line_id, to=to, parts=result.get("parts", 0)), 201


@bp.route("/lines/<line_id>/balance", methods=("POST",))
@role_required(*STAFF)
def check_balance(line_id):
    """Ask the network for the SIM's balance now (USSD)."""
    return jsonify(_engine("balance", timeout=BALANCE_TIMEOUT, line=_line_or_404(line_id)))


# --- reports -----------------------------------------------------------------------------------


def _box_config():
    """The configuration on disk (the engine writes it atomically); the demo's if it cannot be read."""
    try:
        return ConfigStore(current_app.config["DATA_DIR"]).read()
    except (ApplianceError, ValueError, OSError):
        return demo_config()


def _report_range(config):
    """(first day, last day, time zone name) from ``from`` and ``to``: the box's local days, today by default."""
    tz = config["settings"].get("timezone") or "UTC"
    today = datetime.datetime.now(reports.zone(tz)).date()
    end = _date_arg("to") or today
    start = _date_arg("from") or min(end, today)
    if end < start:
        raise _bad("to", "the last day is before the first")
    if (end - start).days >= contract.MAX_REPORT_DAYS:
        raise _bad("from", f"a report covers at most {contract.MAX_REPORT_DAYS} days")
    return start, end, tz


def _service_levels(config):
    """Queue id -> its service-level threshold in seconds."""
    return {queue["id"]: queue.get("service_level_seconds") or reports.DEFAULT_SERVICE_LEVEL_SECONDS
            for queue in config.get("queues", []) if "id" in queue}


@bp.route("/reports/traffic")
@role_required(*STAFF)
def traffic_report():
    """Offered, answered, abandoned, service level, ASA, AHT per group."""
    config = _box_config()
    start, end, tz = _report_range(config)
    group_by = _choice_arg("group_by", contract.GROUP_BYS, "hour")
    report = reports.traffic(get_db(), start, end, tz, group_by, service_level=_service_levels(config))
    return jsonify(_jsonable(dict(report, timezone=tz)))


@bp.route("/reports/heat-map")
@role_required(*STAFF)
def heat_map_report():
    """Offered calls per weekday (Monday first) and local hour."""
    config = _box_config()
    start, end, tz = _report_range(config)
    grid = reports.heat_map(get_db(), start, end, tz)
    return jsonify(start=start.isoformat(), end=end.isoformat(), timezone=tz, grid=grid)


@bp.route("/reports/staffing")
@role_required(*STAFF)
def staffing_report():
    """Operators to plan per local hour, by Erlang C on the measured traffic."""
    config = _box_config()
    start, end, tz = _report_range(config)
    target_seconds = _int_arg("target_seconds", reports.DEFAULT_SERVICE_LEVEL_SECONDS, 1, 600)
    target_level = _float_arg("target_level", 0.8, 0.5, 0.99)
    plan = reports.staffing(get_db(), start, end, tz, target_seconds=target_seconds, target_level=target_level)
    return jsonify(_jsonable(dict(plan, start=start, end=end, timezone=tz)))
