"""IVR flows and the sections they lean on: a broken configuration is refused naming the exact field."""
import pytest

from appliance.config import demo_config, validate, warnings
from appliance.errors import ConfigError

NODES = "flows[0].nodes"


# --- building broken documents ----------------------------------------------------------


def broken(*changes):
    """The demo configuration with ``changes`` applied, in order."""
    document = demo_config()
    for change in changes:
        change(document)
    return document


def set_node(node_id, **fields):
    """Merge ``fields`` into a node of the main flow (the node is created if it is new)."""
    return lambda d: d["flows"][0]["nodes"].setdefault(node_id, {}).update(fields)


def add_node(node_id, node):
    """Add (or replace) a whole node of the main flow."""
    return lambda d: d["flows"][0]["nodes"].__setitem__(node_id, node)


def set_option(node_id, key, target):
    """Add or change one option of a menu or language node of the main flow, keeping the others."""
    return lambda d: d["flows"][0]["nodes"][node_id]["options"].__setitem__(key, target)


def drop(node_id, *fields):
    """Remove fields from a node of the main flow."""
    def change(d):
        for field in fields:
            d["flows"][0]["nodes"][node_id].pop(field)
    return change


def set_section(name, value):
    return lambda d: d.__setitem__(name, value)


def refused(document):
    """The ConfigError ``validate`` raises for ``document``."""
    with pytest.raises(ConfigError) as caught:
        validate(document)
    return caught.value


def assert_clear(error, field, words):
    """The error names ``field`` exactly, and its message is non-empty text containing ``words``."""
    assert error.field == field, f"field {error.field!r}, message {error.message!r}"
    assert error.message and error.message.strip()
    assert str(error) == f"{field}: {error.message}"
    for word in words:
        assert word.lower() in error.message.lower(), f"{word!r} not in {error.message!r}"


def case(name, changes, field, *words, marks=()):
    changes = changes if isinstance(changes, tuple) else (changes,)
    return pytest.param(changes, field, words, id=name, marks=marks)


# --- the demo is the baseline -----------------------------------------------------------


def test_demo_flow_validates_with_no_warnings():
    config = validate(demo_config())
    assert [flow["id"] for flow in config["flows"]] == ["main"]
    assert warnings(config) == []


# --- targets, prompts, queues, conditions, languages that do not exist --------------------


@pytest.mark.parametrize("changes, field, words", [
    case("menu-option-target", set_option("menu", "2", "nowhere"),
         f"{NODES}.menu.options.2", "no node", "'nowhere'"),
    case("menu-default-target", set_node("menu", default="nowhere"), f"{NODES}.menu.default", "'nowhere'"),
    case("play-next-target", set_node("welcome", next="nowhere"), f"{NODES}.welcome.next", "'nowhere'"),
    case("time-open-target", set_node("hours", open="nowhere"), f"{NODES}.hours.open", "'nowhere'"),
    case("time-closed-target", set_node("hours", closed="nowhere"), f"{NODES}.hours.closed", "'nowhere'"),
    case("queue-overflow-target", set_node("bachelor", overflow="nowhere"), f"{NODES}.bachelor.overflow",
         "'nowhere'"),
    case("language-next-target", set_node("language", next="nowhere"), f"{NODES}.language.next", "'nowhere'"),
    case("sms-next-target", set_node("dates", next="nowhere"), f"{NODES}.dates.next", "'nowhere'"),
    case("voicemail-next-target", set_node("voicemail", next="nowhere"), f"{NODES}.voicemail.next", "'nowhere'"),
    case("callback-next-target", set_node("closed", next="nowhere"), f"{NODES}.closed.next", "'nowhere'"),
    case("collect-next-target",
         add_node("ask", {"type": "collect", "field": "application_number", "next": "nowhere"}),
         f"{NODES}.ask.next", "'nowhere'"),
    case("collect-timeout-next-target",
         add_node("ask", {"type": "collect", "field": "application_number", "next": "menu",
                          "timeout_next": "nowhere"}),
         f"{NODES}.ask.timeout_next", "'nowhere'"),
    case("forward-next-target", add_node("out", {"type": "forward", "number": "+359888123456", "next": "nowhere"}),
         f"{NODES}.out.next", "'nowhere'"),
    case("start-node", lambda d: d["flows"][0].update(start="nowhere"), "flows[0].start", "'nowhere'"),
    case("play-prompt", set_node("welcome", prompt="nope"), f"{NODES}.welcome.prompt", "no prompt", "'nope'"),
    case("menu-prompt", set_node("menu", prompt="nope"), f"{NODES}.menu.prompt", "'nope'"),
    case("menu-invalid-prompt", set_node("menu", invalid_prompt="nope"), f"{NODES}.menu.invalid_prompt", "'nope'"),
    case("sms-prompt", set_node("dates", prompt="nope"), f"{NODES}.dates.prompt", "'nope'"),
    case("hangup-prompt", set_node("bye", prompt="nope"), f"{NODES}.bye.prompt", "'nope'"),
    case("queue", set_node("bachelor", queue="phd"), f"{NODES}.bachelor.queue", "no queue", "'phd'"),
    case("time-condition", set_node("hours", condition="weekends"), f"{NODES}.hours.condition",
         "no time condition", "'weekends'"),
    case("language-de", set_option("language", "2", "de"), f"{NODES}.language.options.2",
         "no language", "'de'"),
    case("language-name-not-code", set_node("language", options={"1": "English"}), f"{NODES}.language.options.1",
         "'English'"),
])
def test_reference_to_something_that_does_not_exist(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


@pytest.mark.parametrize("changes", [
    pytest.param((set_node("welcome", prompt="goodbye"),), id="system-prompt"),
    pytest.param((set_option("language", "3", "uk"), set_option("language", "4", "ru"),), id="four-languages"),
    pytest.param((set_node("menu", options={"1": "bachelor", "*": "welcome", "#": "bye", "0": "menu"}),),
                 id="keys-star-hash-zero"),
])
def test_valid_references_are_accepted(changes):
    validate(broken(*changes))


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, field, words", [
    case("menu-two-digits", set_option("menu", "12", "master"), f"{NODES}.menu.options.12",
         "one key"),
    case("menu-letter", set_option("menu", "x", "bachelor"), f"{NODES}.menu.options.x", "one key"),
    case("language-two-digits", set_option("language", "12", "en"), f"{NODES}.language.options.12",
         "one key"),
    case("language-letter", set_option("language", "x", "en"), f"{NODES}.language.options.x", "one key"),
    case("menu-no-options", set_node("menu", options={}), f"{NODES}.menu.options", "keys"),
    case("menu-options-a-list", set_node("menu", options=["bachelor"]), f"{NODES}.menu.options", "keys"),
])
def test_bad_keys(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


# --- loops that need no caller input ---------------------------------------------------------


@pytest.mark.parametrize("changes, cycle", [
    pytest.param((set_node("welcome", next="welcome"),), {"welcome"}, id="play-to-itself"),
    pytest.param((add_node("a", {"type": "play", "prompt": "greeting", "next": "b"}),
                  add_node("b", {"type": "play", "prompt": "greeting", "next": "a"})), {"a", "b"}, id="play-play"),
    pytest.param((add_node("again", {"type": "play", "prompt": "closed", "next": "check"}),
                  add_node("check", {"type": "time", "condition": "office", "open": "again", "closed": "bye"})),
                 {"again", "check"}, id="play-time-play"),
    pytest.param((set_node("menu", default="menu"),), {"menu"}, id="menu-default-to-itself"),
    pytest.param((set_node("menu", default="welcome"),), {"menu", "welcome"}, id="menu-default-via-play"),
    pytest.param((set_node("voicemail", next="bachelor"),), {"bachelor", "voicemail"}, id="queue-overflow-cycle"),
    pytest.param((add_node("ask", {"type": "collect", "field": "application_number", "next": "menu",
                                   "timeout_next": "ask"}),), {"ask"}, id="collect-timeout-to-itself"),
])
def test_loop_without_caller_input_is_refused(changes, cycle):
    error = refused(broken(*changes))
    assert error.field in {f"{NODES}.{node}" for node in cycle}
    assert "loop without caller input" in error.message
    for node in cycle:
        assert node in error.message


@pytest.mark.parametrize("changes", [
    pytest.param((add_node("info", {"type": "play", "prompt": "greeting", "next": "menu"}),
                  set_option("menu", "5", "info")), id="menu-option-play-menu"),
    pytest.param((set_option("menu", "0", "menu"),), id="menu-option-to-itself"),
    pytest.param((add_node("ask", {"type": "collect", "field": "application_number", "next": "again"}),
                  add_node("again", {"type": "play", "prompt": "greeting", "next": "ask"}),
                  set_option("menu", "7", "ask")), id="collect-next-play-collect"),
    pytest.param((drop("menu", "default"),), id="menu-without-default"),
    pytest.param((drop("bachelor", "overflow"),), id="queue-without-overflow"),
])
def test_caller_input_breaks_a_cycle(changes):
    config = validate(broken(*changes))
    assert warnings(config) == []


# --- missing fields, unknown types and fields, ranges -----------------------------------------


@pytest.mark.parametrize("changes, field, words", [
    case("play-next", drop("welcome", "next"), f"{NODES}.welcome.next", "required"),
    case("play-prompt", drop("welcome", "prompt"), f"{NODES}.welcome.prompt", "required"),
    case("time-open", drop("hours", "open"), f"{NODES}.hours.open", "required"),
    case("time-closed", drop("hours", "closed"), f"{NODES}.hours.closed", "required"),
    case("time-condition", drop("hours", "condition"), f"{NODES}.hours.condition", "required"),
    case("queue-queue", drop("bachelor", "queue"), f"{NODES}.bachelor.queue", "required"),
    case("language-next", drop("language", "next"), f"{NODES}.language.next", "required"),
    case("language-options", drop("language", "options"), f"{NODES}.language.options", "keys"),
    case("menu-options", drop("menu", "options"), f"{NODES}.menu.options", "keys"),
    case("sms-next", drop("dates", "next"), f"{NODES}.dates.next", "required"),
    case("sms-text", drop("dates", "text"), f"{NODES}.dates.text", "required"),
    case("sms-blank-text", set_node("dates", text="   "), f"{NODES}.dates.text", "required"),
    case("collect-field", add_node("ask", {"type": "collect", "next": "menu"}), f"{NODES}.ask.field", "required"),
    case("collect-next", add_node("ask", {"type": "collect", "field": "application_number"}),
         f"{NODES}.ask.next", "required"),
    case("forward-number", add_node("out", {"type": "forward"}), f"{NODES}.out.number", "phone number"),
    case("node-type", add_node("odd", {"prompt": "greeting"}), f"{NODES}.odd.type", "must be one of", "play"),
    case("flow-start", lambda d: d["flows"][0].pop("start"), "flows[0].start", "required"),
    case("flow-nodes", lambda d: d["flows"][0].pop("nodes"), "flows[0].nodes", "at least one node"),
    case("flow-empty-nodes", lambda d: d["flows"][0].update(nodes={}), "flows[0].nodes", "at least one node"),
    case("flow-id", lambda d: d["flows"][0].pop("id"), "flows[0].id", "required"),
])
def test_missing_required_field(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


@pytest.mark.parametrize("changes, field, words", [
    case("unknown-type", set_node("welcome", type="dial"), f"{NODES}.welcome.type", "must be one of", "hangup"),
    case("unknown-node-field", set_node("welcome", colour="blue"), f"{NODES}.welcome.colour", "unknown field"),
    case("field-of-another-type", set_node("welcome", options={"1": "menu"}), f"{NODES}.welcome.options",
         "unknown field"),
    case("hangup-with-next", set_node("bye", next="menu"), f"{NODES}.bye.next", "unknown field"),
    case("unknown-flow-field", lambda d: d["flows"][0].update(owner="me"), "flows[0].owner", "unknown field"),
    case("node-not-an-object", add_node("odd", "play"), f"{NODES}.odd", "object"),
    case("flow-not-an-object", lambda d: d["flows"].append("main"), "flows[1]", "object"),
    case("duplicate-flow-id", lambda d: d["flows"].append(dict(d["flows"][0])), "flows[1].id", "duplicate",
         "'main'"),
    case("collect-min-over-max",
         add_node("ask", {"type": "collect", "field": "application_number", "min": 8, "max": 6, "next": "menu"}),
         f"{NODES}.ask.min", "max"),
    case("collect-min-over-default-max",
         add_node("ask", {"type": "collect", "field": "application_number", "min": 20, "next": "menu"}),
         f"{NODES}.ask.min", "max"),
    case("collect-max-zero",
         add_node("ask", {"type": "collect", "field": "application_number", "max": 0, "next": "menu"}),
         f"{NODES}.ask.max", "1 to 32"),
    case("collect-field-with-space",
         add_node("ask", {"type": "collect", "field": "application number", "next": "menu"}),
         f"{NODES}.ask.field", "application_number"),
    case("collect-terminator",
         add_node("ask", {"type": "collect", "field": "application_number", "terminator": "x", "next": "menu"}),
         f"{NODES}.ask.terminator", "#"),
    case("menu-timeout-zero", set_node("menu", timeout=0), f"{NODES}.menu.timeout", "1 to 120"),
    case("menu-timeout-text", set_node("menu", timeout="5"), f"{NODES}.menu.timeout", "whole number"),
    case("menu-retries-ten", set_node("menu", retries=10), f"{NODES}.menu.retries", "0 to 9"),
    case("voicemail-too-short", set_node("voicemail", max_seconds=1), f"{NODES}.voicemail.max_seconds", "5 to 600"),
    case("forward-words", add_node("out", {"type": "forward", "number": "call me"}), f"{NODES}.out.number",
         "+359888123456"),
    case("forward-too-short", add_node("out", {"type": "forward", "number": "12"}), f"{NODES}.out.number",
         "phone number"),
    case("forward-timeout", add_node("out", {"type": "forward", "number": "+359888123456", "timeout": 0}),
         f"{NODES}.out.timeout", "1 to 120"),
    case("sms-text-not-text", set_node("dates", text=42), f"{NODES}.dates.text", "required"),
])
def test_bad_node(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


@pytest.mark.parametrize("changes, field, words", [
    case("prompt-a-list", set_node("welcome", prompt=["greeting"]), f"{NODES}.welcome.prompt"),
    case("next-a-list", set_node("welcome", next=["menu"]), f"{NODES}.welcome.next"),
    case("type-a-list", set_node("welcome", type=["play"]), f"{NODES}.welcome.type"),
    case("queue-an-object", set_node("bachelor", queue={"id": "bachelor"}), f"{NODES}.bachelor.queue"),
    case("language-a-list", set_option("language", "1", ["en"]), f"{NODES}.language.options.1"),
])
def test_value_of_the_wrong_type_is_a_config_error(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


# --- unreachable nodes: warned, not refused --------------------------------------------------


def test_unreachable_nodes_are_warned_about_but_accepted():
    document = broken(add_node("draft", {"type": "play", "prompt": "greeting", "next": "draft_end"}),
                      add_node("draft_end", {"type": "hangup"}))
    found = warnings(validate(document))
    assert len(found) == 2
    assert all("flow main" in text and "'hours'" in text and "cannot be reached" in text for text in found)
    assert any("'draft'" in text for text in found) and any("'draft_end'" in text for text in found)


def test_a_node_cut_off_by_an_edit_is_warned_about():
    document = broken(set_node("menu", options={"1": "bachelor", "2": "master", "3": "dormitories", "4": "dates"}))
    found = warnings(validate(document))
    assert found == ["flow main: node 'language' cannot be reached from 'hours'"]


# --- lines and campaigns that refer to flows ---------------------------------------------------

SUMMER = {"id": "summer", "name": "Admissions 2026", "start": "2026-07-01", "end": "2026-08-15",
          "lines": ["gsm1"], "flow": "main"}


def campaign(**fields):
    return set_section("campaigns", [dict(SUMMER, **fields)])


@pytest.mark.parametrize("changes, field, words", [
    case("line-flow", lambda d: d["lines"][1].update(flow="nope"), "lines[1].flow", "no flow", "'nope'"),
    case("campaign-flow", campaign(flow="nope"), "campaigns[0].flow", "no flow", "'nope'"),
    case("campaign-line", campaign(lines=["gsm1", "gsm9"]), "campaigns[0].lines[1]", "no line", "'gsm9'"),
    case("campaign-line-not-an-id", campaign(lines=["GSM 1"]), "campaigns[0].lines[0]", "line id"),
])
def test_flow_referred_to_must_exist(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


def test_a_campaign_may_switch_lines_to_another_flow():
    def second_flow(d):
        summer = dict(d["flows"][0], id="summer_flow", name="Summer")
        d["flows"].append(summer)
    config = validate(broken(second_flow, campaign(flow="summer_flow", lines=["gsm1", "gsm2"])))
    assert config["campaigns"][0]["flow"] == "summer_flow"
    assert warnings(config) == []


# --- queues --------------------------------------------------------------------------------------


def queue(**fields):
    return lambda d: d["queues"][0].update(fields)


@pytest.mark.parametrize("changes, field, words", [
    case("group-nobody-is-in", queue(groups=["admissions", "night_shift"]), "queues[0].groups[1]",
         "no operator", "'night_shift'"),
    case("no-groups", queue(groups=[]), "queues[0].groups", "at least one"),
    case("groups-a-text", queue(groups="admissions"), "queues[0].groups", "at least one"),
    case("strategy", queue(strategy="least_recent"), "queues[0].strategy", "must be one of", "round_robin"),
    case("callback-key-55", queue(callback_key="55"), "queues[0].callback_key", "one key"),
    case("callback-key-letter", queue(callback_key="a"), "queues[0].callback_key", "one key"),
    case("callback-key-number", queue(callback_key=5), "queues[0].callback_key", "one key"),
    case("ring-timeout", queue(ring_timeout=2), "queues[0].ring_timeout", "5 to 120"),
    case("max-wait", queue(max_wait=5), "queues[0].max_wait", "10 to 3600"),
    case("moh-prompt", queue(moh="jazz"), "queues[0].moh", "no prompt", "'jazz'"),
    case("unknown-field", queue(priority=1), "queues[0].priority", "unknown field"),
    case("duplicate-id", lambda d: d["queues"][1].update(id="bachelor"), "queues[1].id", "duplicate"),
    case("operator-left-the-group", lambda d: d["operators"][0].update(groups=["dorms"]), "queues[0].groups[0]",
         "'admissions'"),
])
def test_queue_validation(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


@pytest.mark.parametrize("fields", [
    pytest.param({"callback_key": ""}, id="no-callback-key"),
    pytest.param({"callback_key": "#"}, id="callback-key-hash"),
    pytest.param({"strategy": "fewest_calls", "moh": "greeting"}, id="strategy-and-moh"),
])
def test_valid_queue_is_accepted(fields):
    assert validate(broken(queue(**fields)))["queues"][0].items() >= fields.items()


# --- operators -----------------------------------------------------------------------------------


def operator(**fields):
    return lambda d: d["operators"][0].update(fields)


@pytest.mark.parametrize("changes, field, words", [
    case("groups-a-text", operator(groups="admissions"), "operators[0].groups", "must be a list"),
    case("groups-numbers", operator(groups=[1, 2]), "operators[0].groups", "must be a list"),
    case("groups-not-ids", operator(groups=["Admissions Office"]), "operators[0].groups", "group names"),
    case("wrap-up-too-long", operator(wrap_up_seconds=601), "operators[0].wrap_up_seconds", "0 to 600"),
    case("wrap-up-negative", operator(wrap_up_seconds=-1), "operators[0].wrap_up_seconds", "0 to 600"),
    case("wrap-up-text", operator(wrap_up_seconds="5"), "operators[0].wrap_up_seconds", "whole number"),
    case("wrap-up-bool", operator(wrap_up_seconds=True), "operators[0].wrap_up_seconds", "whole number"),
    case("wrap-up-fraction", operator(wrap_up_seconds=2.5), "operators[0].wrap_up_seconds", "whole number"),
    case("number", operator(number="call me"), "operators[0].number", "phone number"),
    case("enabled-text", operator(enabled="yes"), "operators[0].enabled", "true or false"),
    case("shift-a-text", operator(shift="always"), "operators[0].shift", "object"),
    case("shift-backwards", operator(shift={"weekly": {"mon": [["17:00", "09:00"]]}}),
         "operators[0].shift.weekly.mon[0]", "end after it starts"),
    case("unknown-field", operator(email="op@example.com"), "operators[0].email", "unknown field"),
    case("duplicate-id", lambda d: d["operators"].append(dict(d["operators"][0], number="+359888000001")),
         "operators[1].id", "duplicate"),
])
def test_operator_validation(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


@pytest.mark.parametrize("wrap_up", [0, 600], ids=["wrap-up-0", "wrap-up-600"])
def test_wrap_up_bounds_are_accepted(wrap_up):
    assert validate(broken(operator(wrap_up_seconds=wrap_up)))["operators"][0]["wrap_up_seconds"] == wrap_up


# --- blacklist -----------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, field, words", [
    case("letters", set_section("blacklist", [{"number": "spammer"}]), "blacklist[0].number", "prefix ending in *"),
    case("two-stars", set_section("blacklist", [{"number": "+7900**"}]), "blacklist[0].number", "prefix"),
    case("star-inside", set_section("blacklist", [{"number": "+79*00"}]), "blacklist[0].number", "prefix"),
    case("star-alone", set_section("blacklist", [{"number": "*"}]), "blacklist[0].number", "prefix"),
    case("too-short", set_section("blacklist", [{"number": "12"}]), "blacklist[0].number", "number"),
    case("missing-number", set_section("blacklist", [{"note": "spam"}]), "blacklist[0].number", "number"),
    case("second-entry", set_section("blacklist", [{"number": "+7900*"}, {"number": "+7 900"}]),
         "blacklist[1].number", "number"),
    case("bare-text", set_section("blacklist", ["+359888123456"]), "blacklist[0]", "object"),
    case("unknown-field", set_section("blacklist", [{"number": "+7900*", "reason": "spam"}]),
         "blacklist[0].reason", "unknown field"),
    case("not-a-list", set_section("blacklist", {"number": "+7900*"}), "blacklist", "list"),
])
def test_blacklist_validation(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


def test_valid_blacklist_is_accepted():
    entries = [{"number": "+7900*", "note": "robocalls"}, {"number": "0888123456"}, {"number": "359888123456"}]
    assert validate(broken(set_section("blacklist", entries)))["blacklist"] == entries


# --- notifications -------------------------------------------------------------------------------

HOOK = "https://crm.example.com/hotline"


def notifications(**fields):
    return set_section("notifications", fields)


@pytest.mark.parametrize("changes, field, words", [
    case("webhook-without-secret", notifications(webhooks=[HOOK]), "notifications.webhook_secret", "required"),
    case("webhook-empty-secret", notifications(webhooks=[HOOK], webhook_secret=""), "notifications.webhook_secret",
         "required"),
    case("webhook-ftp", notifications(webhooks=["ftp://crm.example.com/x"], webhook_secret="s3cret"),
         "notifications.webhooks[0]", "http://"),
    case("webhook-no-scheme", notifications(webhooks=[HOOK, "crm.example.com/x"], webhook_secret="s3cret"),
         "notifications.webhooks[1]", "URL"),
    case("webhook-space", notifications(webhooks=["https://crm example.com/x"], webhook_secret="s3cret"),
         "notifications.webhooks[0]", "URL"),
    case("email-no-at", notifications(email_to=["admissions"]), "notifications.email_to[0]", "e-mail"),
    case("email-two-ats", notifications(email_to=["head@uni.bg", "a@b@c"]), "notifications.email_to[1]", "e-mail"),
    case("email-space", notifications(email_to=["head of@uni.bg"]), "notifications.email_to[0]", "e-mail"),
    case("unknown-event", notifications(events=["call.missed", "call.dropped"]), "notifications.events[1]",
         "must be one of", "call.missed"),
    case("unknown-key", notifications(slack="#hotline"), "notifications.slack", "unknown field"),
    case("smtp-without-host", notifications(email={"from": "box@uni.bg"}), "notifications.email.host", "required"),
    case("smtp-port", notifications(email={"host": "smtp.uni.bg", "from": "box@uni.bg", "port": 0}),
         "notifications.email.port", "1 to 65535"),
    case("sms-to-bad-number", notifications(sms_to=["call me"]), "notifications.sms_to[0]", "phone number"),
    case("secret-not-text", notifications(webhooks=[HOOK], webhook_secret=12345), "notifications.webhook_secret",
         "text"),
    case("events-a-text", notifications(events="call.missed"), "notifications.events", "list"),
    case("email-to-a-text", notifications(email_to="head@uni.bg"), "notifications.email_to", "list"),
])
def test_notification_validation(changes, field, words):
    assert_clear(refused(broken(*changes)), field, words)


def test_valid_notifications_are_accepted_with_defaults():
    config = validate(broken(notifications(webhooks=[HOOK], webhook_secret="s3cret", email_to=["head@uni.bg"],
                                           sms_to=["+359888123456"], events=["call.missed", "callback.done"],
                                           email={"host": "smtp.uni.bg", "from": "box@uni.bg"})))
    assert config["notifications"]["email"]["port"] == 25
    assert validate(broken(notifications()))["notifications"]["events"] == ["call.missed", "voicemail"]
