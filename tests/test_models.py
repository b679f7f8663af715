"""The configuration's typed models: the box's own words for every fault, defaults in one place.

The models (appliance/models.py, the IVR nodes in appliance/flows.py) are checked through
``config.validate``, as the engine and the web pages use them, and through what they feed:
the IVR interpreter's typed nodes and the API description's schemas.
"""
import pytest

from appliance import flows, models
from appliance.config import demo_config, validate
from appliance.errors import ConfigError
from web_ui.openapi import document


def refused(change):
    """The ConfigError the demo configuration gets once ``change`` has altered it."""
    config = demo_config()
    change(config)
    with pytest.raises(ConfigError) as caught:
        validate(config)
    return caught.value.field, caught.value.message


def line(config, line_id):
    """The line ``line_id`` of ``config``."""
    return next(item for item in config["lines"] if item["id"] == line_id)


def first_sip_line(config):
    """The demo's SIP line."""
    return next(item for item in config["lines"] if item["driver"] == "sip")


@pytest.mark.parametrize("change, field, message", [
    # Left out or null, a typed field says what it wants; plain text just says "required".
    (lambda c: c["settings"].pop("language"), "settings.language", "must be one of en, bg, uk, ru"),
    (lambda c: c["settings"].update(language=None), "settings.language", "must be one of en, bg, uk, ru"),
    (lambda c: c["settings"].pop("box_name"), "settings.box_name", "required"),
    (lambda c: c["queues"][0].update(ring_timeout=None), "queues[0].ring_timeout",
     "must be a whole number from 5 to 120"),
    (lambda c: c["queues"][0].pop("groups"), "queues[0].groups", "must list at least one operator group"),
    (lambda c: c["operators"][0].pop("id"), "operators[0].id",
     "required: lower-case letters, digits, - or _, starting with a letter"),
    (lambda c: c["settings"].update(timezone="Mars/Olympus"), "settings.timezone", "unknown time zone 'Mars/Olympus'"),
    (lambda c: c["settings"].update(colour="red"), "settings.colour", "unknown field"),
    (lambda c: c["virtual"].update(modems={}), "virtual.modems", "must be a list"),
])
def test_a_fault_is_named_by_its_field_in_the_box_s_words(change, field, message):
    assert refused(change) == (field, message)


@pytest.mark.parametrize("change, field, message", [
    # The unions' tags (which branch pydantic tried) never show in the path users see.
    (lambda c: line(c, "gsm1").update(power={"kind": "gpio", "pin": 99}), "lines[0].power.pin",
     "must be a whole number from 0 to 27"),
    (lambda c: line(c, "gsm1").update(power={"kind": "solar"}), "lines[0].power.kind",
     "must be one of gpio, usb, virtual"),
    (lambda c: line(c, "gsm1").update(power={"kind": "usb", "device": "/tmp/x"}), "lines[0].power.device",
     "must be a USB device node such as /dev/hotline/sim7600-1.2-usb or /dev/bus/usb/001/004"),
    (lambda c: first_sip_line(c).update(sip_port=70000), None, "must be a whole number from 0 to 65535"),
    (lambda c: first_sip_line(c).update(codecs=[]), None, "must be a list of PCMA, PCMU, G722, opus"),
    (lambda c: c["flows"][0]["nodes"]["menu"].update(timeout=0), "flows[0].nodes.menu.timeout",
     "must be a whole number from 1 to 120"),
    (lambda c: c["flows"][0]["nodes"]["menu"].update(type="dance"), "flows[0].nodes.menu.type",
     "must be one of " + ", ".join(flows.NODE_TYPES)),
    (lambda c: c["flows"][0]["nodes"]["menu"].update(colour="red"), "flows[0].nodes.menu.colour", "unknown field"),
])
def test_a_fault_inside_a_union_is_named_without_the_union_s_tag(change, field, message):
    got_field, got_message = refused(change)
    assert "~" not in got_field and got_message == message
    if field is not None:
        assert got_field == field


def test_null_and_unhashable_references_are_refused_not_crashed_on():
    assert refused(lambda c: c["queues"][0].update(groups=[["bachelor"]])) == (
        "queues[0].groups[0]", "no operator is in group ['bachelor']")
    field, message = refused(lambda c: c["virtual"]["modems"][0].update(line=None))
    assert (field, message) == ("virtual.modems[0].line", "required")


def test_defaults_are_filled_from_the_models_and_optional_fields_stay_out():
    config = demo_config()
    node = config["flows"][0]["nodes"]["menu"]
    node.pop("timeout", None)
    node.pop("retries", None)
    config["queues"][0].pop("strategy", None)
    checked = validate(config)
    menu = checked["flows"][0]["nodes"]["menu"]
    assert menu["timeout"] == flows.MenuNode.model_fields["timeout"].default == 5
    assert menu["retries"] == flows.MenuNode.model_fields["retries"].default == 2
    assert "invalid_prompt" not in menu  # optional and not given: not written as null
    queue = checked["queues"][0]
    assert queue["strategy"] == models.Queue.model_fields["strategy"].default
    gsm = line(checked, "gsm1")
    assert "pin" not in gsm and gsm["inbound"] is True


def test_a_nullable_field_takes_null_for_none_and_its_default_when_left_out():
    config = demo_config()
    config["panel"] = {"buzzer": None}
    panel = validate(config)["panel"]
    assert panel["buzzer"] is None and panel["button"] == models.Panel.model_fields["button"].default
    assert refused(lambda c: c.update(panel={"status_led": None})) == (
        "panel.status_led", "must be a whole number from 0 to 27")


def test_the_ivr_reads_typed_nodes_with_the_models_defaults():
    flow = {"id": "f", "start": "ask", "nodes": {
        "ask": {"type": "menu", "options": {"1": "bye"}}, "bye": {"type": "hangup"},
        "number": {"type": "collect", "field": "application", "next": "bye"}}}
    nodes = flows.typed_nodes(flow)
    assert isinstance(nodes["ask"], flows.MenuNode) and nodes["ask"].timeout == 5 and nodes["ask"].retries == 2
    assert (nodes["number"].min, nodes["number"].max, nodes["number"].terminator, nodes["number"].timeout) == (
        1, 16, "#", 8)
    assert nodes["bye"].prompt is None


def test_the_node_editor_s_fields_are_read_off_the_models():
    assert flows.NODE_FIELDS["menu"] == ("prompt", "invalid_prompt", "timeout", "retries")
    assert set(flows.REQUIRED_FIELDS["time"]) == {"condition", "open", "closed"}
    assert flows.REQUIRED_FIELDS["hangup"] == ()


def test_the_api_description_of_the_configuration_comes_from_the_models():
    schemas = document()["components"]["schemas"]
    queue = schemas["ConfigSection_queues"]["items"]
    ring = queue["properties"]["ring_timeout"]
    assert (ring["minimum"], ring["maximum"], ring["default"]) == (5, 120, 20)
    assert set(queue["required"]) == {"id", "groups"} and queue["additionalProperties"] is False
    lines = schemas["ConfigSection_lines"]["items"]["anyOf"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in lines} == {"ConfigSipLine", "ConfigModemLine"}
    assert schemas["ConfigGpioPower"]["properties"]["kind"]["enum"] == ["gpio"]
    assert "ConfigUnknownPower" not in schemas  # the refusing branch describes nothing a client may send
    assert schemas["ConfigSmtp"]["properties"]["from"]["minLength"] == 1
    nodes = schemas["ConfigSection_flows"]["items"]["properties"]["nodes"]["additionalProperties"]["anyOf"]
    assert len(nodes) == len(flows.NODE_TYPES)


def test_every_schema_reference_in_the_api_description_resolves():
    doc = document()
    schemas = doc["components"]["schemas"]

    def refs(value):
        if isinstance(value, dict):
            if "$ref" in value:
                yield value["$ref"]
            for item in value.values():
                yield from refs(item)
        elif isinstance(value, list):
            for item in value:
                yield from refs(item)

    for ref in refs(doc):
        kind, name = ref.split("/")[-2:]
        assert name in doc["components"][kind], ref
    assert not any("const" in str(key) for key in _keys(schemas))  # OpenAPI 3.0 has no const


def _keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)
