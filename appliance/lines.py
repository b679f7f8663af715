"""Line runners: each line's driver is owned by one thread that opens, polls and commands it.

A modem that is missing or stops answering leaves its line ``down`` and is reopened with
a growing back-off; after ``REOPENS_BEFORE_POWER_CYCLE`` failed reopens its power switch
(a GPIO power key, a USB reset, or the virtual twin's switch) is worked. The other lines
carry on. Commands for the modem (answer, hang up, dial) are queued to that thread, so
the engine never waits on a serial port. A SIP line's driver is opened the same way; its
calls are legs named by channel, and without pjsua2 the line stays ``disabled`` and says why.
"""
import glob
import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from firmware import sip
from firmware.detect import audio_port_beside, find_modem, open_line
from firmware.errors import FirmwareError, LineStateError
from firmware.gsm import LineEvent
from firmware.power import GpioPowerKey, UsbReset, VirtualPowerSwitch

log = logging.getLogger(__name__)

RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
REOPENS_BEFORE_POWER_CYCLE = 2
BOOT_SECONDS = 5.0
TWIN_SOCKET = "twin.sock"
_REOPEN = object()
SCAN_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Reset:
    """A request, queued by a driver event, to restart the modem (why: ``reason``)."""

    reason: str


def resolve_port(port, data_dir):
    """A pyserial URL or device path; relative paths are taken inside the data directory."""
    if "://" in port or os.path.isabs(port):
        return port
    return os.path.join(data_dir, port)


def power_switch(line_config, data_dir):
    """The power switch the config gives a line, or None."""
    power = line_config.get("power")
    if not power:
        return None
    if power["kind"] == "gpio":
        return GpioPowerKey(power["pin"], reset_pin=power.get("reset_pin"), active_high=power.get("active_high", True),
                            pulse_seconds=power.get("pulse_seconds", 1.5))
    if power["kind"] == "usb":
        return UsbReset(power["device"])
    # The twin knows its modems by the line they are meant for, or by IMEI for a line
    # bound by IMEI (which may sit on any of them).
    return VirtualPowerSwitch(os.path.join(data_dir, TWIN_SOCKET), line_config["id"], imei=line_config.get("imei"))


def parse_balance(text):
    """The first amount in a balance reply ("Баланс: 12.50 лв." -> 12.5), or None."""
    match = re.search(r"-?\d+(?:[.,]\d+)?", text or "")
    return float(match.group().replace(",", ".")) if match else None


class LineRunner:
    """Owns one line's driver on a thread of its own."""

    def __init__(self, line_config, data_dir, on_event, on_state, poll_seconds=30.0, port_patterns=()):
        self.config = line_config
        self.id = line_config["id"]
        self._data_dir = data_dir
        self._on_event = on_event
        self._on_state = on_state
        self._poll_seconds = poll_seconds
        self._boot_seconds = BOOT_SECONDS
        self._port_patterns = tuple(port_patterns)
        self._power = power_switch(line_config, data_dir)
        self._commands = queue.Queue()
        self._stop = threading.Event()
        self.driver = None
        self._failed_opens = 0
        self._disabled = None  # why the line cannot work on this box at all (no SIP stack)
        self._balance_checked = float("-inf")
        self._thread = threading.Thread(target=self._run, name=f"line-{self.id}", daemon=True)

    def start(self):
        """Start opening and serving the line."""
        self._thread.start()

    def submit(self, name, action, channel=None):
        """Run ``action(driver)`` on the line's thread; failures come back as ``command_failed``."""
        self._commands.put((name, action, channel))

    def call(self, name, action, timeout=60.0):
        """Run ``action(driver)`` on the line's thread and wait for its result (control threads only)."""
        if self.driver is None:
            raise LineStateError(f"line {self.id} is down")
        future = Future()

        def run(driver):
            try:
                future.set_result(action(driver))
            except Exception as err:  # handed to the waiting control thread; the line thread goes on
                future.set_exception(err)

        self._commands.put((name, run, None))
        return future.result(timeout=timeout)

    def stop(self):
        """Close the driver and stop the thread; safe to call twice."""
        self._stop.set()
        self._commands.put(None)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._close_driver()
        if self._power is not None:
            self._power.close()
            self._power = None

    def _run(self):
        while not self._stop.is_set():
            if self.driver is not None:
                self._serve_one()
            elif self._disabled is not None:
                self._stop.wait()  # nothing to retry until the software is installed and the box restarted
            elif not self._open():
                self._recover()

    def _ports(self):
        """(AT port, audio port, family): as configured, or found by the modem's IMEI/ICCID."""
        if "port" in self.config:
            audio = self.config.get("audio_port")  # a voice modem carries its audio on its one port
            return (resolve_port(self.config["port"], self._data_dir),
                    resolve_port(audio, self._data_dir) if audio else None, self.config["driver"])
        with SCAN_LOCK:  # lines scanning at once would take each other's ports for a moment
            found = find_modem(self._candidates(), imei=self.config.get("imei"), iccid=self.config.get("iccid"))
        if found is None:
            wanted = f"IMEI {self.config['imei']}" if "imei" in self.config else f"ICCID {self.config['iccid']}"
            raise FirmwareError(f"no modem with {wanted} on {', '.join(self._port_patterns)}")
        port, identity = found
        family = self.config["driver"] if self.config["driver"] != "auto" else identity["family"]
        audio = self.config.get("audio_port")
        audio = resolve_port(audio, self._data_dir) if audio else audio_port_beside(port, family)
        log.info("line %s: found its modem (%s) on %s", self.id, identity["imei"], port)
        return port, audio, family

    def _candidates(self):
        seen, ports = set(), []
        for pattern in self._port_patterns:
            for port in sorted(glob.glob(resolve_port(pattern, self._data_dir))):
                real = os.path.realpath(port)
                if real not in seen:
                    seen.add(real)
                    ports.append(port)
        return ports

    def _open_driver(self):
        if self.config["driver"] == "sip":
            return sip.SipLine(self.config, self._driver_event, name=self.id)
        port, audio, family = self._ports()
        return open_line(port, self._driver_event, family=family, audio_port=audio, name=self.id,
                         pin=self.config.get("pin"), sms_mode=self.config.get("sms_mode", "pdu"),
                         rings=self.config.get("rings", 2))

    def _open(self):
        try:
            self.driver = self._open_driver()
            self._apply_gain()
            info = self.driver.info()
            info["volte"] = self._apply_volte()
        except sip.SipUnavailable as err:
            self._disabled = str(err)
            self._on_state(self.id, {"state": "disabled", "error": f"SIP disabled: {err}", "sms": False})
            return False
        except FirmwareError as err:
            self._close_driver()
            self._on_state(self.id, {"state": "down", "error": str(err)})
            return False
        log.info("line %s up: %s", self.id, info)
        self._failed_opens = 0
        self._on_state(self.id, {"state": "up", "error": None, "inband_dtmf": self.driver.inband_dtmf,
                                 "software_gain": self.driver.software_gain,
                                 "sms": getattr(self.driver, "sms", self.driver.family != "sip"), **info})
        return True

    def _recover(self):
        """Wait before the next open; work the power switch when reopening is not enough."""
        if self._disabled is not None:
            return
        self._failed_opens += 1
        if self._power is not None and self._failed_opens % (REOPENS_BEFORE_POWER_CYCLE + 1) == 0:
            try:
                self._power.cycle()
            except FirmwareError as err:
                log.error("line %s: power cycle failed: %s", self.id, err)
            else:
                log.warning("line %s: modem power-cycled", self.id)
                self._on_event(self.id, LineEvent("power_cycled", {"attempt": self._failed_opens}))
                self._stop.wait(self._boot_seconds)
                return
        delay = RETRY_SECONDS[min(self._failed_opens - 1, len(RETRY_SECONDS) - 1)]
        self._stop.wait(delay)

    def _apply_volte(self):
        """Turn IMS/VoLTE on where the config asks and the family's driver knows how."""
        if not self.config.get("volte"):
            return "off"
        if not hasattr(self.driver, "enable_volte"):
            log.warning("line %s: VoLTE asked for, but the %s driver cannot set it", self.id, self.driver.family)
            return "not supported by this modem's driver"
        self.driver.enable_volte()
        return "on"

    def _apply_gain(self):
        if "microphone_gain" not in self.config and "speaker_gain" not in self.config:
            return
        if self.driver.software_gain:
            return  # the engine applies it to the audio
        self.driver.set_gain(self.config.get("microphone_gain", 50), self.config.get("speaker_gain", 50))

    def _serve_one(self):
        try:
            item = self._commands.get(timeout=self._poll_seconds)
        except queue.Empty:
            return self._poll()
        if item is None:
            return None
        if item is _REOPEN:
            return self._lost("the modem's port closed")
        if isinstance(item, _Reset):
            return self._reset_modem(item.reason)
        name, action, channel = item
        try:
            action(self.driver)
        except Exception as err:  # a bug in one command must not end the line's thread
            if not isinstance(err, FirmwareError):
                log.exception("line %s: %s failed", self.id, name)
            log.warning("line %s: %s failed: %s", self.id, name, err)
            data = {"command": name, "error": str(err)}
            self._on_event(self.id, LineEvent("command_failed", data if channel is None else
                                              dict(data, channel=channel)))
        return None

    def _poll(self):
        try:
            state = self.driver.info()
            if self._balance_due():
                state.update(self.check_balance(self.driver))
            self._on_state(self.id, state)
        except FirmwareError as err:
            self._lost(f"the modem stopped answering: {err}")

    def check_balance(self, driver):
        """Ask the network for the SIM's balance by USSD; return the line-state fields."""
        self._balance_checked = time.monotonic()
        text = driver.ussd(self.config.get("balance_ussd", "*100#"))
        return {"balance_text": text, "balance": parse_balance(text), "balance_checked": time.time()}

    def _balance_due(self):
        hours = self.config.get("balance_check_hours", 0)
        return hours > 0 and time.monotonic() - self._balance_checked >= hours * 3600

    def _lost(self, reason):
        log.warning("line %s down: %s", self.id, reason)
        self._close_driver()
        self._on_state(self.id, {"state": "down", "error": reason})
        self._on_event(self.id, LineEvent("down", {"reason": reason}))

    def _reset_modem(self, reason):
        """Restart a modem whose audio died (SIM7600 PCM fault): the call ends, the line
        comes back after boot, the reset is journaled as a power cycle; other lines go on."""
        if self.driver is None or not hasattr(self.driver, "reset"):
            log.warning("line %s: %s, and its modem cannot be reset from here", self.id, reason)
            return
        log.warning("line %s: %s; resetting the modem", self.id, reason)
        self.driver.reset()
        self._close_driver()
        self._on_state(self.id, {"state": "down", "error": f"modem reset: {reason}"})
        self._on_event(self.id, LineEvent("power_cycled", {"attempt": 0}))
        self._stop.wait(self._boot_seconds)

    def _driver_event(self, event):
        if event.kind == "down":
            self._commands.put(_REOPEN)
            return
        if event.kind == "audio_dead":
            self._commands.put(_Reset(event.data.get("reason", "no call audio")))
        self._on_event(self.id, event)

    def _close_driver(self):
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.close()
