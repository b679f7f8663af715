"""Configuration: validation names the field, the last good copy stays in force."""
import json
import os

import pytest

from appliance.config import ConfigStore, demo_config, validate
from appliance.errors import ConfigError


def broken(change):
    document = demo_config()
    change(document)
    return document


@pytest.mark.parametrize("change, field", [
    (lambda d: d["lines"][0].pop("port"), "lines[0].port"),
    (lambda d: d["lines"][1].update(driver="sim9000"), "lines[1].driver"),
    (lambda d: d["lines"][1].update(id="gsm1"), "lines[1].id"),
    (lambda d: d["lines"][0].update(id="GSM 1"), "lines[0].id"),
    (lambda d: d["lines"][0].update(enabled="yes"), "lines[0].enabled"),
    (lambda d: d["lines"][0].update(speed=9600), "lines[0].speed"),
    (lambda d: d["settings"].update(timezone="Mars/Olympus"), "settings.timezone"),
    (lambda d: d["settings"].update(max_call_seconds=5), "settings.max_call_seconds"),
    (lambda d: d["settings"].update(language="de"), "settings.language"),
    (lambda d: d["settings"].update(greeting="nope"), "settings.greeting"),
    (lambda d: d["operators"][0].update(number="call me"), "operators[0].number"),
    (lambda d: d["prompts"][0].update(text=""), "prompts[0].text"),
    (lambda d: d["virtual"]["modems"][0].update(line="gsm9"), "virtual.modems[0].line"),
    (lambda d: d["virtual"]["phones"][0].update(answer_after=-1), "virtual.phones[0].answer_after"),
    (lambda d: d.update(colour="blue"), "colour"),
])
def test_validation_names_the_field(change, field):
    with pytest.raises(ConfigError) as caught:
        validate(broken(change))
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ":")


def test_demo_config_is_valid_and_has_the_demo_lines():
    config = validate(demo_config())
    assert [line["id"] for line in config["lines"]] == ["gsm1", "gsm2", "sip1"]
    assert len(config["operators"]) == 1 and len(config["virtual"]["phones"]) == 1


def test_empty_data_dir_starts_the_demo_and_writes_it(tmp_path):
    store = ConfigStore(tmp_path)
    assert store.load() == validate(demo_config())
    assert (tmp_path / "config.json").exists() and (tmp_path / "config.last-good.json").exists()


def test_read_does_not_write(tmp_path):
    ConfigStore(tmp_path).read()
    assert not os.listdir(tmp_path)


def test_save_round_trips_through_tinydb_atomically(tmp_path):
    store = ConfigStore(tmp_path)
    document = demo_config()
    document["settings"]["box_name"] = "Приёмная комиссия"
    store.save(document)
    assert store.read()["settings"]["box_name"] == "Приёмная комиссия"
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    tables = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert set(tables) >= {"settings", "lines", "operators", "prompts", "virtual"}


def test_refused_save_changes_nothing(tmp_path):
    store = ConfigStore(tmp_path)
    store.save(demo_config())
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(ConfigError, match="lines\\[0\\].audio_port"):
        store.save(broken(lambda d: d["lines"][0].pop("audio_port")))
    assert (tmp_path / "config.json").read_bytes() == before


@pytest.mark.parametrize("damage, message", [
    (lambda path: path.write_text("{ not json"), "not valid JSON"),
    (lambda path: path.write_text(path.read_text().replace('"sim7600"', '"sim9000"', 1)), "driver"),
])
def test_broken_file_is_refused_and_the_last_good_copy_stays_in_force(tmp_path, damage, message):
    store = ConfigStore(tmp_path)
    good = demo_config()
    good["settings"]["box_name"] = "Last good"
    store.save(good)
    damage(tmp_path / "config.json")
    config = store.read()
    assert config["settings"]["box_name"] == "Last good"
    assert message in store.problem and "config.json refused" in store.problem


@pytest.mark.parametrize("change, field", [
    (lambda d: d["lines"][0].update(pin="12"), "lines[0].pin"),
    (lambda d: d["lines"][0].update(microphone_gain=101), "lines[0].microphone_gain"),
    (lambda d: d["lines"][0].update(power={"kind": "gpio", "pin": 99}), "lines[0].power.pin"),
    (lambda d: d["lines"][0].update(power={"kind": "usb", "device": "/etc/passwd"}), "lines[0].power.device"),
    (lambda d: d["lines"][0].update(power={"kind": "relay"}), "lines[0].power.kind"),
    (lambda d: d["lines"][0].update(balance_ussd="100"), "lines[0].balance_ussd"),
    (lambda d: d["lines"][0].update(low_balance="low"), "lines[0].low_balance"),
    (lambda d: d["settings"].update(modem_poll_seconds=0), "settings.modem_poll_seconds"),
    (lambda d: d["virtual"]["modems"][0].update(model="nokia"), "virtual.modems[0].model"),
    (lambda d: d["virtual"]["modems"][0].update(voice="locked"), "virtual.modems[0].voice"),  # a SIM7600
    (lambda d: d["virtual"]["modems"][0].update(model="e1550", voice="mute"), "virtual.modems[0].voice"),
])
def test_line_settings_are_validated(change, field):
    with pytest.raises(ConfigError) as caught:
        validate(broken(change))
    assert caught.value.field == field


def test_every_family_is_a_driver_and_an_emulator():
    for family in ("auto", "sim800", "sim7600", "e1550", "ec25"):
        validate(broken(lambda d: d["lines"][0].update(driver=family)))
    for model in ("sim800", "sim7600", "e1550", "ec25"):
        validate(broken(lambda d: d["virtual"]["modems"][0].update(model=model)))
