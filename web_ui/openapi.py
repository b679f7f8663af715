"""The REST API's contract: its limits, patterns and enums, and the OpenAPI 3.0 document built from them.

web_ui/api.py checks requests with the same constants this module describes, so the
document and the server cannot drift apart on a limit or a pattern.
"""
from pydantic import TypeAdapter

from appliance import contacts, reports, validation
from appliance.accounts import ROLES
from appliance.config import LIST_SECTIONS, SINGLE_SECTIONS
from appliance.flows import Flow
from appliance.models import SECTION_MODELS

API_VERSION = "1.0.0"
PREFIX = "/api/v1"

NUMBER_PATTERN = validation.NUMBER_PATTERN.pattern
ID_PATTERN = validation.ID_PATTERN.pattern  # line, operator and queue ids
DIGITS_PATTERN = r"^[0-9*#]{0,32}$"
# A tag as stored: no commas (the pages edit tags as a comma-separated list), trimmed.
TAG_PATTERN = r"^[^,]*\S[^,]*$"
# Years 1970-2999: a Pi without a clock starts in 1970, and days near year 1 or 9999 overflow date arithmetic.
DATE_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"
MAX_ID = 2 ** 63 - 1  # SQLite's INTEGER; a larger id cannot exist
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_OFFSET = 10 ** 9
MAX_BODY_BYTES = 1024 * 1024  # a whole flow or prompt list fits many times over
MAX_SMS_TEXT = 1000
MAX_HOLD_SECONDS = 120
DEFAULT_HOLD_SECONDS = 5.0
DEFAULT_TEST_CALLER = "+359700000999"
MAX_REPORT_DAYS = 400  # the reports page's limit: more than a year of rows is slow on a Pi

# Sections the API reads and writes: everything but "virtual" (the test twin's wiring, not the box's).
CONFIG_SECTIONS = tuple(name for name in SINGLE_SECTIONS + LIST_SECTIONS if name != "virtual")
OUTCOMES = ("answered", "missed", "busy", "no answer", "failed", "interrupted", "ivr", "closed", "abandoned",
            "call-back", "voicemail", "refused", "cancelled", "forwarded", "not accepted", "not reached", "blocked")
CALL_ROLE_FILTERS = contacts.CALL_ROLES + ("all",)
OPERATOR_STATES = ("ready", "paused", "ringing", "on call", "wrap-up", "offline")
SETTABLE_STATES = ("ready", "paused")
CALLBACK_STATUSES = ("open", "done", "failed", "cancelled", "all")
TEST_CALL_KINDS = ("inbound", "outbound")
GROUP_BYS = reports.GROUP_BYS


# --- small schema helpers ------------------------------------------------------------


def _ref(name):
    """A reference to a named schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _string(max_length=None, min_length=None, pattern=None, enum=None, nullable=False, fmt=None, description=None):
    """A string schema with the constraints given."""
    schema = {"type": "string"}
    for key, value in (("maxLength", max_length), ("minLength", min_length), ("pattern", pattern),
                       ("enum", list(enum) if enum else None), ("format", fmt), ("description", description)):
        if value is not None:
            schema[key] = value
    if nullable:
        schema["nullable"] = True
    return schema


def _integer(minimum=None, maximum=None, nullable=False, description=None):
    """An integer schema."""
    schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if nullable:
        schema["nullable"] = True
    if description:
        schema["description"] = description
    return schema


def _number(nullable=False, minimum=None, maximum=None):
    """A number schema."""
    schema = {"type": "number"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if nullable:
        schema["nullable"] = True
    return schema


def _object(properties, required=(), additional=False, description=None):
    """An object schema, closed unless ``additional``."""
    schema = {"type": "object", "properties": properties, "additionalProperties": additional}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def _array(items, max_items=None):
    """An array schema."""
    schema = {"type": "array", "items": items}
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


def _free_object(description=None):
    """An object schema with any properties."""
    schema = {"type": "object", "additionalProperties": True}
    if description:
        schema["description"] = description
    return schema


# --- parameters ----------------------------------------------------------------------


def _path(name, schema, description, example):
    """A required path parameter with an example the fuzzer and readers start from."""
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description,
            "example": example}


def _query(name, schema, description):
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


CALL_ID = _path("call_id", _integer(1, MAX_ID), "The call's id in the journal.", 1)
NUMBER = _path("number", _string(pattern=NUMBER_PATTERN), "A phone number: an optional + and 3-15 digits.",
               "+359888123456")
OPERATOR_ID = _path("operator_id", _string(pattern=ID_PATTERN), "The operator's id in the configuration.", "op1")
LINE_ID = _path("line_id", _string(pattern=ID_PATTERN), "The line's id in the configuration.", "gsm1")
SECTION = _path("section", _string(enum=CONFIG_SECTIONS), "A configuration section.", "settings")
LIMIT = _query("limit", _integer(1, MAX_LIMIT), f"How many items at most (default {DEFAULT_LIMIT}).")
OFFSET = _query("offset", _integer(0, MAX_OFFSET), "How many matching items to skip (default 0).")
DATE_FROM = _query("from", _string(pattern=DATE_PATTERN, fmt="date"), "First day (YYYY-MM-DD), inclusive.")
DATE_TO = _query("to", _string(pattern=DATE_PATTERN, fmt="date"), "Last day (YYYY-MM-DD), inclusive.")

CALL_FILTERS = [
    _query("from", _string(pattern=DATE_PATTERN, fmt="date"), "Calls started on or after this UTC day."),
    _query("to", _string(pattern=DATE_PATTERN, fmt="date"), "Calls started on or before this UTC day."),
    _query("number", _string(pattern=NUMBER_PATTERN), "Caller or callee contains these digits."),
    _query("line", _string(pattern=ID_PATTERN), "The line's id."),
    _query("queue", _string(pattern=ID_PATTERN), "The queue's id."),
    _query("operator", _string(pattern=ID_PATTERN), "The id of the operator who answered."),
    _query("outcome", _string(enum=OUTCOMES), "How the call ended."),
    _query("category", _string(max_length=contacts.MAX_CATEGORY, min_length=1), "The call's category."),
    _query("tag", _string(max_length=contacts.MAX_TAG, pattern=TAG_PATTERN), "A tag the call carries."),
    _query("role", _string(enum=CALL_ROLE_FILTERS),
           "Which legs: people who rang the line (caller, the default), operator legs, call-backs, forwards, "
           "test calls, or all."),
    LIMIT, OFFSET,
]


# --- components ----------------------------------------------------------------------


def _schemas():
    """The named schemas of the document."""
    return {**_call_schemas(), **_contact_schemas(), **_box_schemas(), **_action_schemas(), **_report_schemas(),
            **_config_schemas()}


NULLABLE_TEXT = _string(nullable=True)


def _call_schemas():
    """Calls, their timeline, notes, tags and category."""
    call_properties = {
        "id": _integer(1), "line_id": _string(), "direction": _string(enum=("in", "out")),
        "role": _string(enum=contacts.CALL_ROLES), "caller": _string(), "callee": _string(),
        "started_at": _string(fmt="date-time"), "answered_at": _string(fmt="date-time", nullable=True),
        "ended_at": _string(fmt="date-time", nullable=True),
        "outcome": _string(nullable=True, description="One of " + ", ".join(OUTCOMES) + ", or null while in progress."),
        "ended_by": NULLABLE_TEXT, "talk_seconds": _number(nullable=True), "wait_seconds": _number(nullable=True),
        "digits": _string(), "flow": NULLABLE_TEXT, "campaign": NULLABLE_TEXT, "language": NULLABLE_TEXT,
        "queue": NULLABLE_TEXT, "operator": NULLABLE_TEXT, "category": NULLABLE_TEXT,
        "parent_id": _integer(nullable=True), "collected": _free_object("Digits collected by the IVR, by field."),
        "has_recording": {"type": "boolean"},
        "recording_url": _string(nullable=True, description="Where to fetch the recording, or null."),
        "tags": _array(_string()), "note_count": _integer(0),
    }
    call_required = ("id", "line_id", "direction", "role", "caller", "callee", "started_at", "outcome",
                     "has_recording", "recording_url", "tags")
    return {
        "Error": _object({"error": _string()}, required=("error",), additional=True),
        "BadParameter": _object({"error": _string(), "parameter": _string()}, required=("error", "parameter")),
        "Refused": _object({"error": _string(), "field": _string(), "message": _string()},
                           required=("error", "field", "message")),
        "Call": _object(call_properties, required=call_required),
        "Event": _object({"at": _string(fmt="date-time"), "kind": _string()}, required=("at", "kind"),
                         additional=True),
        "Note": _object({"id": _integer(1), "call_id": _integer(1), "author": _string(), "at": _string(fmt="date-time"),
                         "text": _string()}, required=("id", "call_id", "author", "at", "text")),
        # Not allOf with Call: Call forbids other properties, which would refuse these three.
        "CallDetail": _object(dict(call_properties, events=_array(_ref("Event")), notes=_array(_ref("Note")),
                                   legs=_array(_ref("Call"))), required=call_required + ("events", "notes", "legs")),
        "CallList": _object({"calls": _array(_ref("Call")), "total": _integer(0), "limit": _integer(1),
                             "offset": _integer(0)}, required=("calls", "total", "limit", "offset")),
        "NoteInput": _object({"text": _string(min_length=1, max_length=contacts.MAX_NOTE)}, required=("text",)),
        "TagsInput": _object({"tags": _array(_string(min_length=1, max_length=contacts.MAX_TAG, pattern=TAG_PATTERN),
                                             contacts.MAX_TAGS)}, required=("tags",)),
        "Tags": _object({"call_id": _integer(1), "tags": _array(_string())}, required=("call_id", "tags")),
        "CategoryInput": _object({"category": _string(max_length=contacts.MAX_CATEGORY, nullable=True)},
                                 required=("category",)),
        "Category": _object({"call_id": _integer(1), "category": NULLABLE_TEXT}, required=("call_id", "category")),
        "Hangup": _object({"call": _integer(1)}, required=("call",), additional=True),
    }


def _contact_schemas():
    """Caller cards and call-back tasks."""
    contact_calls = "Calls from the number, newest first (an operator sees only the calls they answered)."
    return {
        "Contact": _object({
            "number": _string(), "name": _string(), "status": _string(), "notes": _string(),
            "tags": _array(_string()), "updated_at": _string(fmt="date-time", nullable=True),
            "calls": _array(_ref("Call"), 50), "reminders": _array(_free_object()),
            "callbacks": _array(_ref("Callback")),
        }, required=("number", "name", "status", "notes", "tags", "updated_at", "calls", "reminders", "callbacks"),
            description="A caller card. " + contact_calls),
        "ContactInput": _object({
            "name": _string(max_length=contacts.MAX_NAME), "status": _string(max_length=contacts.MAX_STATUS),
            "notes": _string(max_length=contacts.MAX_CARD_NOTES),
            "tags": _array(_string(min_length=1, max_length=contacts.MAX_TAG, pattern=TAG_PATTERN), contacts.MAX_TAGS),
        }, description="Fields left out keep their stored value."),
        "Callback": _object({
            "id": _integer(1), "number": _string(), "line_id": _string(), "queue": _string(),
            "call_id": _integer(nullable=True), "reason": _string(), "created_at": _string(fmt="date-time"),
            "status": _string(enum=CALLBACK_STATUSES[:-1]), "attempts": _integer(0),
            "next_attempt_at": _string(nullable=True), "closed_at": _string(nullable=True),
            "closed_reason": NULLABLE_TEXT, "last_call_id": _integer(nullable=True),
        }, required=("id", "number", "status", "attempts", "created_at")),
        "CallbackList": _object({"callbacks": _array(_ref("Callback")), "total": _integer(0)},
                                required=("callbacks", "total")),
    }


def _box_schemas():
    """Operators, the box's live state, who is asking, the configuration as read and written."""
    return {
        "Operator": _object({
            "id": _string(), "name": _string(), "number": _string(), "groups": _array(_string()),
            "state": _string(enum=OPERATOR_STATES), "calls_taken": _integer(0),
        }, required=("id", "state"), additional=True),
        "OperatorList": _object({"operators": _array(_ref("Operator"))}, required=("operators",)),
        "OperatorStateInput": _object({"state": _string(enum=SETTABLE_STATES)}, required=("state",)),
        "Status": _free_object("The engine's live state: box, uptime_seconds, lines, calls, queue, operators, "
                               "media, outbox_pending, config_problem, config_warnings."),
        "Me": _object({"username": _string(), "role": _string(enum=ROLES), "operator_id": NULLABLE_TEXT,
                       "auth": _string(enum=("session", "token"))}, required=("username", "role", "auth")),
        "ConfigSection": _object({
            "section": _string(enum=CONFIG_SECTIONS),
            "value": {"description": "An object for settings and notifications, a list of objects otherwise. "
                                     "Secrets (SMTP password, webhook secret, SIM PIN) read \"(set)\"."},
            "warnings": _array(_string()), "problem": NULLABLE_TEXT,
        }, required=("section", "value")),
        "ConfigInput": _object({"value": {
            "description": "The whole section as the configuration holds it (its schema: ConfigSection_ and the "
                           "section's name); a secret sent as \"(set)\" keeps its stored value.",
            "anyOf": [_ref(section_schema_name(section)) for section in CONFIG_SECTIONS]}}, required=("value",)),
        "ConfigSaved": _object({"saved": {"type": "boolean"}, "section": _string(), "warnings": _array(_string())},
                               required=("saved", "section")),
    }


def _action_schemas():
    """Test calls and SMS sent through a line, the line's own state."""
    return {
        "TestCallInput": _object({
            "kind": _string(enum=TEST_CALL_KINDS,
                            description="inbound: a virtual caller rings the line (demo and test boxes); "
                                        "outbound: the line dials `to`."),
            "line": _string(pattern=ID_PATTERN),
            "from": _string(pattern=NUMBER_PATTERN, description="inbound: the caller's number."),
            "to": _string(pattern=NUMBER_PATTERN, description="outbound: the number to dial (required)."),
            "digits": _string(pattern=DIGITS_PATTERN, description="inbound: keys the caller presses."),
            "hold": dict(_number(minimum=1, maximum=MAX_HOLD_SECONDS), description="Seconds on the line."),
        }, required=("kind", "line")),
        "TestCall": _object({
            "kind": _string(enum=TEST_CALL_KINDS), "line": _string(), "call": _integer(1, nullable=True),
            "from": _string(), "to": _string(), "digits": _string(), "hold": _number(),
        }, required=("kind", "line", "call")),
        "SmsInput": _object({"to": _string(pattern=NUMBER_PATTERN),
                             "text": _string(min_length=1, max_length=MAX_SMS_TEXT)}, required=("to", "text")),
        "SmsSent": _object({"line": _string(), "to": _string(), "parts": _integer(0)}, required=("parts",)),
        "Line": _free_object("The line's state, its recent events and SMS."),
        "Balance": _free_object("The line's state after asking the network for the SIM balance."),
    }


def _report_schemas():
    """Traffic, heat map and staffing reports."""
    return {
        "Traffic": _object({
            "group_by": _string(enum=GROUP_BYS), "start": _string(fmt="date"), "end": _string(fmt="date"),
            "short_abandon_seconds": _number(), "rows": _array(_free_object()), "total": _free_object(),
            "timezone": _string(),
        }, required=("group_by", "start", "end", "rows", "total")),
        "HeatMap": _object({"start": _string(fmt="date"), "end": _string(fmt="date"), "timezone": _string(),
                            "grid": _array(_array(_integer(0)))}, required=("grid",)),
        "Staffing": _free_object("Operators to plan per local hour of day (Erlang C on the measured traffic)."),
    }


# --- the configuration's sections, from their models -------------------------------------

CONFIG_REF = "#/components/schemas/Config{model}"
# Branches a union keeps only to name the fault of a value the box does not know (a power
# switch or node of an unknown kind); they describe nothing a client may send.
REFUSING_MODELS = ("UnknownPower", "UnknownNode")
# Sections still checked by hand (appliance/schedule.py), described in words.
HAND_CHECKED = {"time_conditions": "A time condition: id, name, timezone, weekly, holidays, exceptions, closed, "
                                   "open; checked by appliance/schedule.py.",
                "campaigns": "A campaign: id, name, start, end (YYYY-MM-DD), lines, flow, enabled."}


def section_schema_name(section):
    """The component name of a configuration section's schema."""
    return f"ConfigSection_{section}"


def _config_schemas():
    """The configuration sections' schemas, generated from their models (appliance/models.py, flows.py)."""
    models = dict(SECTION_MODELS, flows=Flow)
    schemas = {}
    for section in CONFIG_SECTIONS:
        if section in HAND_CHECKED:
            schema = _free_object(HAND_CHECKED[section])
        else:
            schema = TypeAdapter(models[section]).json_schema(ref_template=CONFIG_REF)
            schemas.update({f"Config{name}": _openapi_30(part) for name, part in schema.pop("$defs", {}).items()
                            if name not in REFUSING_MODELS})
            schema = _openapi_30(schema)
        schemas[section_schema_name(section)] = schema if section in SINGLE_SECTIONS else _array(schema)
    return schemas


def _openapi_30(schema):
    """A pydantic (JSON Schema 2020-12) schema as OpenAPI 3.0 takes it.

    const becomes a one-value enum, a null default a nullable field, and a union anyOf: a SIP
    line's driver is also in the modem lines' list, and the box tells them apart by it.
    """
    if isinstance(schema, list):
        return [_openapi_30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "default" and value is None:
            out["nullable"] = True
        elif key == "oneOf":
            out["anyOf"] = [_openapi_30(item) for item in value
                            if not any(item.get("$ref", "").endswith(name) for name in REFUSING_MODELS)]
        else:
            out[key] = _openapi_30(value)
    return out


def _error_response(description, schema="Error"):
    """A JSON error response."""
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


ERROR_RESPONSES = {
    "400": _error_response("Bad input; `parameter` names what is wrong.", "BadParameter"),
    "401": _error_response("No session and no valid bearer token."),
    "403": _error_response("The role may not do this (or, for operators, it is not their own)."),
    "404": _error_response("No such thing."),
    "409": _error_response("The engine refused: the call is not in progress, the line is busy ..."),
    "413": _error_response(f"The body is larger than {MAX_BODY_BYTES} bytes."),
    "422": _error_response("A value was refused; `field` names it and `message` says why.", "Refused"),
    "503": _error_response("The engine (or the virtual twin) does not answer."),
}


def _ok(description, schema, status="200", media="application/json"):
    """A success response."""
    return {status: {"description": description, "content": {media: {"schema": _ref(schema)}}}}


def _operation(summary, roles, responses, errors, parameters=(), body=None, description=None, public=False):
    """One operation: its roles in the description, its success and error responses."""
    text = f"Roles: {', '.join(roles)}." if roles else "No authentication needed."
    if description:
        text = f"{description}\n\n{text}"
    operation = {"summary": summary, "description": text, "responses": dict(responses)}
    if parameters:
        operation["parameters"] = list(parameters)
    if body:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": _ref(body)}}}
    codes = ("400",) + tuple(errors) if body else tuple(errors)
    if not public:
        codes = ("401", "403") + codes
    if body:
        codes += ("413",)
    for code in sorted(set(codes)):
        operation["responses"][code] = {"$ref": f"#/components/responses/E{code}"}
    if public:
        operation["security"] = []
    return operation


ALL = ROLES
STAFF = ("admin", "supervisor")
ADMIN = ("admin",)


def _paths():
    """Every endpoint of the API."""
    return {**_call_paths(), **_people_paths(), **_box_paths(), **_report_paths()}


def _call_paths():
    """The document itself, who is asking, the live state, and the call journal."""
    call = (CALL_ID,)
    return {
        "/openapi.json": {"get": _operation(
            "This document", (), {"200": {"description": "The OpenAPI document.",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}},
            (), public=True)},
        "/me": {"get": _operation("Who is asking", ALL, _ok("The authenticated identity.", "Me"), ())},
        "/status": {"get": _operation("The box's live state", ALL, _ok("Lines, calls, queue, operators.", "Status"),
                                      ("503",))},
        "/calls": {"get": _operation(
            "Search the call journal", ALL, _ok("Matching calls, newest first.", "CallList"), ("400",),
            CALL_FILTERS, description="An operator sees only the calls they answered (an `operator` filter "
                                      "naming someone else is 403).")},
        "/calls/{call_id}": {"get": _operation("One call with its timeline, notes, tags and legs", ALL,
                                               _ok("The call.", "CallDetail"), ("404",), call)},
        "/calls/{call_id}/recording": {"get": _operation(
            "The call's recording", ALL,
            {"200": {"description": "The audio file (WAV, Ogg/Opus, FLAC or MP3).",
                     "content": {mime: {"schema": {"type": "string", "format": "binary"}}
                                 for mime in ("audio/wav", "audio/ogg", "audio/flac", "audio/mpeg")}}},
            ("404",), call)},
        "/calls/{call_id}/notes": {"post": _operation("Add a note to a call", ALL, _ok("The note.", "Note", "201"),
                                                      ("404", "422"), call, "NoteInput")},
        "/calls/{call_id}/tags": {"put": _operation("Replace a call's tags", ALL, _ok("The tags as stored.", "Tags"),
                                                    ("404", "422"), call, "TagsInput")},
        "/calls/{call_id}/category": {"put": _operation("Set or clear a call's category", ALL,
                                                        _ok("The category as stored.", "Category"),
                                                        ("404", "422"), call, "CategoryInput")},
        "/calls/{call_id}/hangup": {"post": _operation("Hang up a call in progress", STAFF,
                                                       _ok("The engine is hanging up.", "Hangup", "202"),
                                                       ("404", "409", "503"), call)},
    }


def _people_paths():
    """Caller cards, call-back tasks and operators."""
    return {
        "/contacts/{number}": {
            "get": _operation("A caller card", ALL, _ok("The card (empty fields when there is none yet).", "Contact"),
                              ("400",), (NUMBER,)),
            "put": _operation("Create or change a caller card", ALL, _ok("The card as stored.", "Contact"),
                              ("422",), (NUMBER,), "ContactInput"),
        },
        "/callbacks": {"get": _operation(
            "Call-back tasks", STAFF, _ok("Tasks, oldest first.", "CallbackList"), ("400",),
            (_query("status", _string(enum=CALLBACK_STATUSES), "Which tasks (default open)."), LIMIT, OFFSET))},
        "/operators": {"get": _operation("Operators and their live state", ALL,
                                         _ok("Operators (an operator sees only themselves).", "OperatorList"),
                                         ("503",))},
        "/operators/{operator_id}/state": {"put": _operation(
            "Pause an operator or make them ready", ALL, _ok("The operator's state now.", "Operator"),
            ("404", "503"), (OPERATOR_ID,), "OperatorStateInput",
            description="An operator may change only their own state.")},
    }


def _box_paths():
    """The configuration, test calls and the lines."""
    return {
        "/config/{section}": {
            "get": _operation("One configuration section", ADMIN, _ok("The section in force.", "ConfigSection"),
                              ("404", "503"), (SECTION,)),
            "put": _operation("Replace one configuration section", ADMIN, _ok("Validated, saved, applied.",
                                                                                "ConfigSaved"),
                              ("404", "422", "503"), (SECTION,), "ConfigInput",
                              description="The engine validates the whole configuration with the new section; "
                                          "a refused value changes nothing and comes back as 422."),
        },
        "/test-calls": {"post": _operation(
            "Place a test call", STAFF, _ok("The call is being placed.", "TestCall", "202"),
            ("404", "409", "503"), (), "TestCallInput",
            description="inbound rings a virtual line through the virtual twin (demo and test boxes); "
                        "`call` is the journal id once the engine saw the ring, else null. outbound dials out.")},
        "/lines/{line_id}": {"get": _operation("A line's state, events and SMS", STAFF, _ok("The line.", "Line"),
                                               ("404", "503"), (LINE_ID,))},
        "/lines/{line_id}/sms": {"post": _operation("Send an SMS through a line", ADMIN,
                                                    _ok("Sent.", "SmsSent", "201"), ("404", "409", "503"),
                                                    (LINE_ID,), "SmsInput")},
        "/lines/{line_id}/balance": {"post": _operation("Ask the network for the SIM balance now", STAFF,
                                                        _ok("The line's state with its balance.", "Balance"),
                                                        ("404", "409", "503"), (LINE_ID,))},
    }


def _report_paths():
    """Traffic, heat map and staffing reports."""
    return {
        "/reports/traffic": {"get": _operation(
            "Traffic figures per group", STAFF, _ok("Offered, answered, abandoned, service level ...", "Traffic"),
            ("400",), (DATE_FROM, DATE_TO, _query("group_by", _string(enum=GROUP_BYS), "Grouping (default hour).")),
            description="Days are the box's local days (settings.timezone); default: today.")},
        "/reports/heat-map": {"get": _operation(
            "Offered calls per weekday and hour", STAFF, _ok("A 7 x 24 grid, Monday first.", "HeatMap"), ("400",),
            (DATE_FROM, DATE_TO))},
        "/reports/staffing": {"get": _operation(
            "Operators needed per hour (Erlang C)", STAFF, _ok("The plan.", "Staffing"), ("400",),
            (DATE_FROM, DATE_TO,
             _query("target_seconds", _integer(1, 600), "Answer within this many seconds (default 20)."),
             _query("target_level", _number(minimum=0.5, maximum=0.99), "Share answered in time (default 0.8).")))},
    }


def document():
    """The OpenAPI 3.0 document of the API."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Hot-line appliance API",
            "version": API_VERSION,
            "description": (
                "JSON in and out. Authenticate with `Authorization: Bearer <token>` (an API token made by an admin; "
                "its role decides what it may do, and it needs no CSRF token) or with the web UI's session cookie "
                "(then state-changing requests need the page's CSRF token in `X-CSRFToken`). Errors are always "
                "`{\"error\": ...}`. Endpoints that ask the engine answer 503 while it is not running. Calls are "
                "filtered by UTC days; reports use the box's local days."),
        },
        "servers": [{"url": PREFIX}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": {f"E{code}": response for code, response in ERROR_RESPONSES.items()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token."},
                "session": {"type": "apiKey", "in": "cookie", "name": "hotline_session",
                            "description": "The web UI's login session (state changes also need X-CSRFToken)."},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
