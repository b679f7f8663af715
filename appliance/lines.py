"""Line runners: each line's driver is owned by one thread that opens, polls and commands it.

A modem that is missing or stops answering leaves its line ``down`` and is reopened with
a growing back-off, while the other lines carry on. Commands for the modem (answer, hang
up, dial) are queued to that thread, so the engine never waits on a serial port.
"""
import logging
import os
import queue
import threading

from firmware.errors import FirmwareError
from firmware.gsm import LineEvent, Sim7600Line

log = logging.getLogger(__name__)

DRIVERS = {"sim7600": Sim7600Line}
POLL_SECONDS = 30.0
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
_REOPEN = object()


def resolve_port(port, data_dir):
    """A pyserial URL or device path; relative paths are taken inside the data directory."""
    if "://" in port or os.path.isabs(port):
        return port
    return os.path.join(data_dir, port)


class LineRunner:
    """Owns one line's driver on a thread of its own."""

    def __init__(self, line_config, data_dir, on_event, on_state):
        self.config = line_config
        self.id = line_config["id"]
        self._data_dir = data_dir
        self._on_event = on_event
        self._on_state = on_state
        self._commands = queue.Queue()
        self._stop = threading.Event()
        self.driver = None
        self._thread = threading.Thread(target=self._run, name=f"line-{self.id}", daemon=True)

    def start(self):
        """Start opening and serving the line."""
        self._thread.start()

    def submit(self, name, action):
        """Run ``action(driver)`` on the line's thread; failures come back as ``command_failed``."""
        self._commands.put((name, action))

    def stop(self):
        """Close the driver and stop the thread; safe to call twice."""
        self._stop.set()
        self._commands.put(None)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._close_driver()

    def _run(self):
        attempt = 0
        while not self._stop.is_set():
            if self.driver is None:
                if self._open():
                    attempt = 0
                else:
                    self._stop.wait(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                    attempt += 1
                continue
            self._serve_one()

    def _open(self):
        driver_class = DRIVERS[self.config["driver"]]
        port = resolve_port(self.config["port"], self._data_dir)
        audio = resolve_port(self.config["audio_port"], self._data_dir)
        try:
            self.driver = driver_class(port, audio, self._driver_event, name=self.id)
            info = self.driver.info()
        except FirmwareError as err:
            self._close_driver()
            self._on_state(self.id, {"state": "down", "error": str(err)})
            return False
        log.info("line %s up: %s", self.id, info)
        self._on_state(self.id, {"state": "up", "error": None, **info})
        return True

    def _serve_one(self):
        try:
            item = self._commands.get(timeout=POLL_SECONDS)
        except queue.Empty:
            return self._poll()
        if item is None:
            return None
        if item is _REOPEN:
            return self._lost("the modem's port closed")
        name, action = item
        try:
            action(self.driver)
        except FirmwareError as err:
            log.warning("line %s: %s failed: %s", self.id, name, err)
            self._on_event(self.id, LineEvent("command_failed", {"command": name, "error": str(err)}))
        return None

    def _poll(self):
        try:
            self._on_state(self.id, self.driver.info())
        except FirmwareError as err:
            self._lost(f"the modem stopped answering: {err}")

    def _lost(self, reason):
        log.warning("line %s down: %s", self.id, reason)
        self._close_driver()
        self._on_state(self.id, {"state": "down", "error": reason})
        self._on_event(self.id, LineEvent("down", {"reason": reason}))

    def _driver_event(self, event):
        if event.kind == "down":
            self._commands.put(_REOPEN)
            return
        self._on_event(self.id, event)

    def _close_driver(self):
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.close()
