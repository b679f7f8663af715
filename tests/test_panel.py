"""The front panel with gpiozero's MockFactory: LEDs, the button, the buzzer, the modems' power keys.

First the panel alone (patterns on the pins), then a real engine in this process with a
virtual world of emulated modems: the LEDs follow calls, the button's short press closes
the hot-line, its long press returns the web page to first-run setup, and a hung modem's
power key is pulsed on its own pin.
"""
import os
import re
import threading
import time

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from appliance import accounts
from appliance import journal as journal_module
from appliance.config import ConfigStore
from appliance.engine import Engine
from firmware.panel import DEFAULT_PIN_MAP, Panel
from hardware.virtual.world import VirtualWorld

from .conftest import greeting_config, wait_for

STATUS, LINE1, LINE2, BUTTON, BUZZER = 5, 12, 13, 21, 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def mock_factory():
    """Every gpiozero device made meanwhile gets mock pins (as gpiozero's own tests do it)."""
    saved = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = saved


@pytest.fixture
def panel(mock_factory):
    pressed = {"short": threading.Event(), "long": threading.Event()}
    device = Panel(STATUS, [LINE1, LINE2], BUTTON, BUZZER, hold_seconds=0.3,
                   on_short_press=pressed["short"].set, on_long_press=pressed["long"].set)
    device.pressed = pressed
    yield device
    device.close()


def changes(pin, seconds):
    """The pin's state changes during the next ``seconds``: [(seconds since the previous change, state)]."""
    pin.clear_states()
    time.sleep(seconds)
    return [(round(state.timestamp, 2), state.state) for state in pin.states[1:]]


def beeps(pin):
    return sum(1 for state in pin.states[1:] if state.state)


def test_line_leds_follow_line_states(panel, mock_factory):
    led = mock_factory.pin(LINE1)
    panel.set_line(0, "down")
    assert led.state is False
    panel.set_line(0, "idle")
    assert led.state is True and changes(led, 0.3) == []  # steady
    panel.set_line(0, "ringing")
    slow = changes(led, 1.3)
    assert len(slow) >= 2 and all(0.35 <= seconds <= 0.7 for seconds, _ in slow[1:])
    panel.set_line(0, "in_call")
    fast = changes(led, 0.7)
    assert len(fast) >= 4 and all(seconds <= 0.2 for seconds, _ in fast[1:])
    panel.set_line(0, "down")
    assert led.state is False and changes(led, 0.3) == []
    assert mock_factory.pin(LINE2).state is False  # the other line's LED is untouched
    panel.set_line(7, "idle")  # a line beyond the LEDs is simply not shown
    assert panel.patterns[0] == "down" and panel.patterns[1] is None


def test_status_led_and_buzzer(panel, mock_factory):
    led, buzzer = mock_factory.pin(STATUS), mock_factory.pin(BUZZER)
    assert panel.patterns["status"] == "starting" and len(changes(led, 1.2)) >= 2  # slow blink
    panel.set_status("ready")
    assert led.state is True and changes(led, 0.3) == []
    buzzer.clear_states()
    panel.set_status("fault")
    assert len(changes(led, 0.6)) >= 4  # fast blink
    wait_for(lambda: beeps(buzzer) == 3, timeout=3)  # a fault beeps three times, once
    panel.set_status("fault")
    time.sleep(1.5)
    assert beeps(buzzer) == 3


def test_short_press_is_handed_on_and_confirmed(panel, mock_factory):
    button, led, buzzer = mock_factory.pin(BUTTON), mock_factory.pin(STATUS), mock_factory.pin(BUZZER)
    panel.set_status("ready")
    button.drive_low()
    time.sleep(0.05)
    button.drive_high()
    assert panel.pressed["short"].wait(2) and not panel.pressed["long"].is_set()
    led.clear_states()
    buzzer.clear_states()
    panel.confirm(closed=True)
    wait_for(lambda: sum(1 for s in led.states[1:] if s.state) >= 4)  # three blinks, then steady again
    time.sleep(0.5)
    assert led.state is True and beeps(buzzer) == 2
    led.clear_states()
    buzzer.clear_states()
    panel.confirm(closed=False)
    time.sleep(1.0)
    assert sum(1 for s in led.states[1:] if s.state) == 2 and beeps(buzzer) == 1  # one blink, one beep


def test_long_press_is_not_also_a_short_press(panel, mock_factory):
    button = mock_factory.pin(BUTTON)
    button.drive_low()
    assert panel.pressed["long"].wait(2)
    button.drive_high()
    time.sleep(0.3)
    assert not panel.pressed["short"].is_set()


def test_close_releases_every_pin_and_is_safe_twice(mock_factory):
    first = Panel(STATUS, [LINE1], BUTTON, None)
    first.close()
    first.close()
    second = Panel(STATUS, [LINE1], BUTTON, None)  # the pins are free again
    second.close()


def test_a_busy_pin_leaves_no_pin_reserved(mock_factory):
    from gpiozero import LED

    holder = LED(BUTTON)
    with pytest.raises(Exception):
        Panel(STATUS, [LINE1], BUTTON, None)
    holder.close()
    Panel(STATUS, [LINE1], BUTTON, None).close()  # STATUS and LINE1 were released


def test_power_key_with_a_reset_pin_pulses_reset_to_restart(mock_factory):
    from firmware.power import GpioPowerKey

    key, reset = mock_factory.pin(17), mock_factory.pin(24)
    switch = GpioPowerKey(17, reset_pin=24, pulse_seconds=0.2, reset_seconds=0.1)
    key.clear_states()
    reset.clear_states()
    switch.cycle()  # a hung modem: RESET restarts it whatever state it is in
    assert [s.state for s in reset.states[1:]] == [True, False] and key.states[1:] == []
    assert 0.08 <= reset.states[2].timestamp <= 0.3
    switch.pulse_key()  # a modem that is off: the power key
    assert [s.state for s in key.states[1:]] == [True, False] and 0.18 <= key.states[2].timestamp <= 0.4
    switch.close()
    switch.close()
    from gpiozero import LED

    holder = LED(24)
    with pytest.raises(Exception):
        GpioPowerKey(17, reset_pin=24)
    holder.close()
    GpioPowerKey(17).close()  # the key pin was released when the reset pin was busy


def test_default_pin_map_matches_hardware_docs():
    text = open(os.path.join(ROOT, "hardware", "pins.md"), encoding="utf-8").read()
    documented = {}
    for role, pin in re.findall(r"^\| `(\w+)(?:\[\d\])?` \| GPIO ?(\d+) \|", text, re.M):
        documented.setdefault(role, []).append(int(pin))
    for role, pins in DEFAULT_PIN_MAP.items():
        assert documented.get(role) == (pins if isinstance(pins, list) else [pins]), role
    svg = open(os.path.join(ROOT, "hardware", "wiring.svg"), encoding="utf-8").read()
    for pins in DEFAULT_PIN_MAP.values():
        for pin in pins if isinstance(pins, list) else [pins]:
            assert f"GPIO{pin}" in svg


# --- the panel on a running engine -------------------------------------------------------


class RunningBox:
    """The engine in this process (so its GPIO is mock pins) with the virtual world beside it."""

    def __init__(self, data_dir):
        self.data_dir = str(data_dir)
        config = greeting_config()
        config["settings"]["modem_poll_seconds"] = 1
        config["lines"][0]["power"] = {"kind": "gpio", "pin": 17, "pulse_seconds": 0.3}
        config["lines"][1]["power"] = {"kind": "gpio", "pin": 27, "pulse_seconds": 0.3}
        config["panel"] = {"enabled": True, "hold_seconds": 2, "closed_switch": "office"}
        ConfigStore(self.data_dir).save(config)
        self.world = VirtualWorld(config["virtual"], self.data_dir)
        self.engine = Engine(self.data_dir)
        self.engine.start()
        self.loop = threading.Thread(target=self.engine.run, name="engine-loop")
        self.loop.start()

    def line(self, line_id):
        return self.engine.lines.get(line_id, {})

    def close(self):
        self.engine.stop()
        self.loop.join(timeout=10)
        self.world.close()


@pytest.fixture(scope="module")
def module_factory():
    saved = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = saved


@pytest.fixture(scope="module")
def box(tmp_path_factory, module_factory):
    running = RunningBox(tmp_path_factory.mktemp("panel-box"))
    try:
        wait_for(lambda: running.line("gsm1").get("state") == "up" and running.line("gsm2").get("state") == "up",
                 timeout=30)
        yield running
    finally:
        running.close()


def test_status_led_says_ready_and_line_leds_follow_a_call(box, module_factory):
    panel = box.engine.appliance.panel
    wait_for(lambda: panel.patterns["status"] == "ready", timeout=15)
    assert module_factory.pin(STATUS).state is True
    assert panel.patterns[0] == panel.patterns[1] == "idle"
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if not seen or seen[-1] != panel.patterns[0]:
                seen.append(panel.patterns[0])
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        led = module_factory.pin(LINE1)
        result = {}
        caller = threading.Thread(target=lambda: result.update(box.world.place_call("gsm1", "+359888123456", hold=2)))
        caller.start()
        wait_for(lambda: panel.patterns[0] == "in_call")
        assert len(changes(led, 0.6)) >= 4  # a fast blink while the call lasts
        caller.join(timeout=20)
        wait_for(lambda: panel.patterns[0] == "idle")
    finally:
        stop.set()
        watcher.join()
    assert result["answered"]
    assert seen == ["idle", "ringing", "in_call", "idle"]
    assert panel.patterns[1] == "idle"  # the other line stayed idle
    assert box.engine.status()["health"]["panel"]["lines"] == {"gsm1": "idle", "gsm2": "idle", "sip1": "idle"}


def test_short_press_toggles_the_closed_switch(box, module_factory):
    button = module_factory.pin(BUTTON)
    events = box.engine.hub.subscribe()
    try:
        for expected in (True, False):
            button.drive_low()
            time.sleep(0.05)
            button.drive_high()
            wait_for(lambda: box.engine.config["time_conditions"][0].get("closed") is expected)
            saved = ConfigStore(box.data_dir).read()["time_conditions"][0]
            assert saved["id"] == "office" and saved["closed"] is expected  # written to config.json
            event = _next_event(events, "panel.closed_switch")
            assert event["closed"] is expected and event["condition"] == "office"
    finally:
        box.engine.hub.unsubscribe(events)
    conn = journal_module.connect(os.path.join(box.data_dir, journal_module.JOURNAL_FILE))
    try:
        actions = [row[0] for row in conn.execute("SELECT action FROM audit WHERE username = 'front panel'")]
    finally:
        conn.close()
    assert actions.count("panel.closed_switch") == 2


def test_long_press_resets_the_admin_to_first_run_setup(box, module_factory):
    conn = journal_module.connect(os.path.join(box.data_dir, journal_module.JOURNAL_FILE))
    try:
        accounts.create_first_admin(conn, "admin", "correct horse battery")
        accounts.create_user(conn, "ops", "another long password", "operator")
        key_path = os.path.join(box.data_dir, "web-secret.key")
        with open(key_path, "wb") as handle:
            handle.write(b"k" * 32)
        closed_before = box.engine.config["time_conditions"][0].get("closed")
        button = module_factory.pin(BUTTON)
        button.drive_low()
        time.sleep(2.5)  # held past hold_seconds
        button.drive_high()
        wait_for(lambda: accounts.count_users(conn) == 0, timeout=5)
        # The web page's guard sends everyone to /setup while there is no account.
        assert open(key_path, "rb").read() != b"k" * 32  # old session cookies are void
        assert os.stat(key_path).st_mode & 0o777 == 0o600
        time.sleep(0.5)
        assert box.engine.config["time_conditions"][0].get("closed") == closed_before  # not a short press too
        accounts.create_first_admin(conn, "newadmin", "a brand new password")  # first-run setup works again
    finally:
        conn.close()


def test_hung_modem_power_key_is_pulsed_on_its_own_pin(box, module_factory):
    key1, key2 = module_factory.pin(17), module_factory.pin(27)
    assert key1.state is False and key2.state is False
    key1.clear_states()
    key2.clear_states()
    wired = threading.Event()

    def power_key_wiring():
        # The modem's PWRKEY is wired to GPIO17: a pulse there power-cycles the emulated modem.
        pressed = False
        while not wired.is_set():
            if key1.state and not pressed:
                pressed = True
            elif pressed and not key1.state:
                box.world.power_cycle("gsm1")
                return
            time.sleep(0.01)

    wiring = threading.Thread(target=power_key_wiring)
    wiring.start()
    try:
        box.world.hang("gsm1")
        wait_for(lambda: box.line("gsm1").get("state") == "down", timeout=20)
        assert box.engine.appliance.panel.patterns[0] == "down"
        wait_for(lambda: box.line("gsm1").get("state") == "up", timeout=60)
    finally:
        wired.set()
        wiring.join()
    pulses = [state for state in key1.states[1:]]
    assert [state.state for state in pulses][:2] == [True, False]
    assert 0.25 <= pulses[1].timestamp <= 0.6  # held for pulse_seconds (0.3 s)
    assert key2.states[1:] == []  # gsm2's key was never touched
    kinds = [event["kind"] for event in box.engine.journal.line_events("gsm1")]
    assert "power_cycled" in kinds
    wait_for(lambda: box.engine.appliance.panel.patterns[0] == "idle")


def _next_event(subscriber, kind, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = subscriber.get(timeout=max(0.01, deadline - time.monotonic()))
        if event.get("type") == kind:
            return event
    pytest.fail(f"no {kind} event")


def test_a_panel_without_gpio_leaves_the_box_running(tmp_path, monkeypatch):
    """Configured, but no GPIO here (not a Pi): the engine runs as without a panel and says why."""
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "lgpio")  # not installed on a PC: every pin fails
    saved, Device.pin_factory = Device.pin_factory, None
    config = greeting_config()
    config["panel"] = {"enabled": True}
    ConfigStore(str(tmp_path)).save(config)
    world = VirtualWorld(config["virtual"], str(tmp_path))
    engine = Engine(str(tmp_path))
    try:
        engine.start()
        loop = threading.Thread(target=engine.run)
        loop.start()
        try:
            wait_for(lambda: all(engine.lines.get(i, {}).get("state") == "up" for i in ("gsm1", "gsm2")), timeout=30)
            health = wait_for(lambda: engine._in_loop(engine.status)["health"]
                              if any(p["id"] == "panel.unavailable"
                                     for p in engine._in_loop(engine.status)["health"]["problems"]) else None,
                              timeout=15)
            assert health["panel"] is None and health["status"] == "ready"  # a warning, not a fault
        finally:
            engine.stop()
            loop.join(timeout=10)
    finally:
        world.close()
        Device.pin_factory = saved
