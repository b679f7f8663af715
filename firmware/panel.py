"""The front panel through gpiozero: a status LED, one LED per line, a button, a buzzer.

The panel knows LEDs and a button, not calls: the engine's side (``appliance/
appliance_services.py``) tells it what to show and what a press means. Every pin is a
BCM number; ``DEFAULT_PIN_MAP`` is the map drawn in ``hardware/pins.md`` and
``hardware/wiring.svg``. A box without a panel simply has none: nothing here is opened
unless the configuration's ``panel`` section is enabled.

What the LEDs say:

- status: slow blink while starting, steady when ready, fast blink on a fault;
- a line: off while down, steady when idle, slow blink while ringing, fast blink in a call.

The button: a short press is handed to ``on_short_press`` (the engine toggles the closed
switch and the panel confirms with a blink and a beep pattern); held for
``hold_seconds`` it is handed to ``on_long_press`` (the admin reset) instead.
"""
import logging
import queue
import threading

log = logging.getLogger(__name__)

# The default pin map (BCM numbers), as in hardware/pins.md. Header pins 29-40 carry the
# panel on one ribbon; 11-22 the modems' keys; I2C (2, 3), UART (14, 15) and SPI stay free
# for a UPS HAT and a GSM HAT.
DEFAULT_PIN_MAP = {
    "status_led": 5,
    "line_leds": [12, 13, 16, 26],
    "button": 21,
    "buzzer": 20,
    "modem_power_keys": [17, 27, 22, 23],
    "modem_resets": [24, 25, 6, 19],
}
HOLD_SECONDS = 10.0
# (on, off) seconds of each blinking pattern; None is steady on, () is off.
STATUS_PATTERNS = {"starting": (0.5, 0.5), "ready": None, "fault": (0.1, 0.1)}
LINE_PATTERNS = {"down": (), "idle": None, "ringing": (0.5, 0.5), "in_call": (0.1, 0.1)}
# What a short press confirms: blinks of the status LED and beeps, one for open, two for closed.
CONFIRM_BLINKS = {False: 1, True: 3}
CONFIRM_BEEPS = {False: 1, True: 2}
RESET_BLINKS, RESET_BEEPS = 6, 3  # the admin reset is done: the web page is back at first-run setup
FAULT_BEEPS = 3


class Panel:
    """The LEDs, button and buzzer of the front panel."""

    def __init__(self, status_led, line_leds=(), button=None, buzzer=None, *, on_short_press=None,
                 on_long_press=None, hold_seconds=HOLD_SECONDS, pin_factory=None):
        from gpiozero import LED, Button, Buzzer

        self._devices = []
        self._lock = threading.RLock()
        self._jobs = queue.Queue()
        self._stop = threading.Event()
        self._closed = False
        self._held = False
        self._confirming = False
        self.on_short_press = on_short_press or (lambda: None)
        self.on_long_press = on_long_press or (lambda: None)
        self.patterns = {"status": None}
        try:
            self.status_led = self._open(LED, status_led, pin_factory=pin_factory)
            self.line_leds = [self._open(LED, pin, pin_factory=pin_factory) for pin in line_leds]
            self.buzzer = self._open(Buzzer, buzzer, pin_factory=pin_factory) if buzzer is not None else None
            self.button = None
            if button is not None:
                # Pressed closes the pin to ground; the Pi's own pull-up holds it high otherwise.
                self.button = self._open(Button, button, pull_up=True, hold_time=hold_seconds,
                                         pin_factory=pin_factory)
                self.button.when_pressed = self._pressed
                self.button.when_held = self._long_press
                self.button.when_released = self._released
        except Exception:
            self._close_devices()  # a pin that failed must not leave the others reserved
            raise
        for index in range(len(self.line_leds)):
            self.patterns[index] = None
        self._worker = threading.Thread(target=self._work, name="panel", daemon=True)
        self._worker.start()
        self.set_status("starting")

    # --- what the LEDs show -----------------------------------------------------------

    def set_status(self, status):
        """Show the box's status: starting, ready or fault."""
        with self._lock:
            if self._closed or self.patterns["status"] == status:
                return
            became_fault = status == "fault" and self.patterns["status"] != "fault"
            self.patterns["status"] = status
            if not self._confirming:
                _show(self.status_led, STATUS_PATTERNS[status])
        if became_fault:
            self.alarm()

    def set_line(self, index, state):
        """Show line ``index``'s state: down, idle, ringing or in_call (lines past the LEDs are ignored)."""
        with self._lock:
            if self._closed or index >= len(self.line_leds) or self.patterns[index] == state:
                return
            self.patterns[index] = state
            _show(self.line_leds[index], LINE_PATTERNS[state])

    def confirm(self, closed):
        """Confirm a toggle of the closed switch: three blinks and two beeps for closed, one of each for open."""
        self.signal(CONFIRM_BLINKS[closed], CONFIRM_BEEPS[closed])

    def acknowledge_reset(self):
        """Say the admin reset is done: six blinks and three beeps."""
        self.signal(RESET_BLINKS, RESET_BEEPS)

    def signal(self, blinks, beeps):
        """Blink the status LED ``blinks`` times (and beep ``beeps`` times), then show the status again."""
        self._jobs.put((self._signal, blinks, beeps))

    def alarm(self):
        """Beep for a fault (when there is a buzzer)."""
        if self.buzzer is not None:
            self._jobs.put((self._beep, FAULT_BEEPS))

    def close(self):
        """Turn everything off and release the pins; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._jobs.put(None)
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=5)
        self._close_devices()

    # --- the button -------------------------------------------------------------------

    def _pressed(self):
        self._held = False

    def _long_press(self):
        self._held = True
        log.warning("panel: button held for %.0f s", self.button.hold_time)
        self._jobs.put((self.on_long_press,))

    def _released(self):
        if self._held:
            self._held = False
            return  # the end of a long press is not also a short one
        self._jobs.put((self.on_short_press,))

    # --- the worker: callbacks and patterns that take time, off gpiozero's threads -----

    def _work(self):
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None:
                return
            function, *args = job
            try:
                function(*args)
            except Exception:  # a failing callback must not end the panel
                log.exception("panel: %s failed", getattr(function, "__name__", function))

    def _signal(self, blinks, beeps):
        with self._lock:
            if self._closed:
                return
            self._confirming = True
            self.status_led.off()
        try:
            if self.buzzer is not None and beeps:
                self.buzzer.beep(0.1, 0.1, n=beeps, background=True)
            self.status_led.blink(0.15, 0.15, n=blinks, background=False)
            self._stop.wait(0.3)  # a pause, so the confirmation does not run into the status
        finally:
            with self._lock:
                self._confirming = False
                if not self._closed:
                    _show(self.status_led, STATUS_PATTERNS[self.patterns["status"]])

    def _beep(self, count):
        if not self._closed:
            self.buzzer.beep(0.2, 0.2, n=count, background=False)

    def _open(self, kind, pin, **options):
        device = kind(pin, **options)
        self._devices.append(device)
        return device

    def _close_devices(self):
        for device in reversed(self._devices):
            try:
                device.close()
            except Exception:  # closing the rest matters more than one pin's complaint
                log.exception("panel: closing %r failed", device)
        self._devices.clear()


def _show(led, pattern):
    """Put an LED into a pattern: () off, None steady, (on, off) blinking."""
    if pattern == ():
        led.off()
    elif pattern is None:
        led.on()
    else:
        led.blink(*pattern)
