"""GSM voice lines: caller ID, answer, hang up, dial out, DTMF and the PCM audio path.

This first driver speaks the SIMCom SIM7600 dialect (``VOICE CALL: BEGIN/END``,
``+RXDTMF``, PCM on a USB serial port after ``AT+CPCMREG=1``). It reports what happens
on the line as ``LineEvent`` objects through one callback and never blocks the caller
of that callback on the modem.
"""
import logging
import threading
import time
from dataclasses import dataclass, field

from .at import ATChannel
from .audio import SerialAudioPort
from .errors import FirmwareError, LineStateError

log = logging.getLogger(__name__)

IDLE, RINGING, DIALING, ACTIVE = "idle", "ringing", "dialing", "active"
LEFTOVER_CALL_STATES = {0, 1, 2, 3}  # +CLCC stat: active, held, dialling, alerting
REGISTRATION = {0: "not registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"}


@dataclass(frozen=True)
class LineEvent:
    """Something that happened on a line: incoming, connected, dtmf, ended, missed, down."""

    kind: str
    data: dict = field(default_factory=dict)


class Sim7600Line:
    """A voice line on a SIMCom SIM7600 modem, its AT port and its PCM audio port."""

    model_family = "sim7600"
    init_commands = ("ATE0", "AT+CMEE=1", "AT+CLIP=1", "AT+CVHU=0", "AT+CLCC=0", "AT+DDET=1")

    def __init__(self, port, audio_port, on_event, *, name="gsm"):
        self.name = name
        self._on_event = on_event
        self._state = IDLE
        self._state_lock = threading.Lock()
        self._caller_seen = False
        self._connected_at = None
        self._hung_up_locally = False
        self.audio = None
        self._channel = ATChannel(port, self._handle_urc, on_closed=self._handle_closed, name=name)
        try:
            self._initialise()
            self.audio = SerialAudioPort(audio_port, name=f"{name}-pcm")
        except FirmwareError:
            self._channel.close()
            raise

    @property
    def state(self):
        """The call state of the line: idle, ringing, dialing or active."""
        return self._state

    def info(self):
        """Read model, IMEI, signal, registration and operator from the modem."""
        command = self._channel.command
        rssi = _csq_rssi(command("AT+CSQ", prefix="+CSQ:"))
        return {
            "model": _first(command("AT+CGMM")),
            "imei": _first(command("AT+CGSN")),
            "signal_dbm": None if rssi is None else -113 + 2 * rssi,
            "signal_bars": _bars(rssi),
            "registration": _creg(command("AT+CREG?", prefix="+CREG:")),
            "operator": _cops(command("AT+COPS?", prefix="+COPS:")),
        }

    def answer(self):
        """Pick up the ringing call."""
        if self._state != RINGING:
            raise LineStateError(f"{self.name}: no call is ringing")
        self._channel.command("ATA", timeout=10)

    def hangup(self):
        """End the call in progress (or refuse the ringing one)."""
        if self._state == IDLE:
            return
        self._hung_up_locally = True
        self._channel.command("AT+CHUP", timeout=10)
        self._end_call("local")

    def dial(self, number):
        """Place a voice call to ``number``; progress arrives as events."""
        if self._state != IDLE:
            raise LineStateError(f"{self.name}: line is busy")
        self._set_state(DIALING)
        self._hung_up_locally = False
        try:
            self._channel.command(f"ATD{number};", timeout=10)
        except FirmwareError:
            self._set_state(IDLE)
            raise

    def send_dtmf(self, digits):
        """Send DTMF digits to the far end of the active call."""
        for digit in digits:
            self._channel.command(f"AT+VTS={digit}")

    def close(self):
        """Close the audio port and the AT port; safe to call twice."""
        if self.audio is not None:
            self.audio.close()
        self._channel.close()

    def _initialise(self):
        self._channel.command("AT", timeout=2)
        for command in self.init_commands:
            self._channel.command(command)
        if any(_clcc_stat(line) in LEFTOVER_CALL_STATES
               for line in self._channel.command("AT+CLCC", prefix="+CLCC:")):
            # A call from before we opened the port (the engine restarted mid-call):
            # nobody is handling it, so free the line. A ringing call is left to ring.
            log.warning("%s: hanging up a call left over from before the line was opened", self.name)
            self._channel.command("AT+CHUP", timeout=10)

    def _handle_urc(self, line):
        if line == "RING" or line.startswith("+CRING:"):
            self._ring()
        elif line.startswith("+CLIP:"):
            self._caller_id(_clip_number(line))
        elif line == "VOICE CALL: BEGIN":
            self._connected()
        elif line.startswith("VOICE CALL: END") or line.startswith(("NO CARRIER", "BUSY", "NO ANSWER")):
            self._end_call("local" if self._hung_up_locally else _end_cause(line))
        elif line.startswith("MISSED_CALL:"):
            self._missed()
        elif line.startswith("+RXDTMF:"):
            self._emit("dtmf", digit=line.split(":", 1)[1].strip()[:1])
        else:
            log.debug("%s: ignored URC %r", self.name, line)

    def _ring(self):
        if self._state == IDLE:
            self._set_state(RINGING)
            self._caller_seen = False
            self._hung_up_locally = False
        elif self._state == RINGING and not self._caller_seen:
            self._caller_id("")  # a second RING without +CLIP: caller ID is not coming

    def _caller_id(self, number):
        if self._state == IDLE:
            self._ring()
        if self._state == RINGING and not self._caller_seen:
            self._caller_seen = True
            self._emit("incoming", number=number)

    def _connected(self):
        if self._state not in (RINGING, DIALING):
            return
        self._set_state(ACTIVE)
        self._connected_at = time.monotonic()
        self.audio.flush()
        try:
            self._channel.command("AT+CPCMREG=1")
        except FirmwareError as err:
            log.warning("%s: PCM audio did not open: %s", self.name, err)
        self._emit("connected")

    def _missed(self):
        if self._state == RINGING:
            self._set_state(IDLE)
            self._emit("missed")

    def _end_call(self, cause):
        with self._state_lock:
            previous, self._state = self._state, IDLE
        if previous == IDLE:
            return
        if previous == ACTIVE:
            self._close_pcm()
        seconds = time.monotonic() - self._connected_at if previous == ACTIVE else 0.0
        self._emit("ended" if previous != RINGING else "missed", cause=cause, seconds=round(seconds, 2))

    def _close_pcm(self):
        try:
            self._channel.command("AT+CPCMREG=0")
        except FirmwareError as err:
            log.warning("%s: PCM audio did not close: %s", self.name, err)

    def _handle_closed(self):
        self._emit("down", reason="port closed")

    def _set_state(self, state):
        with self._state_lock:
            self._state = state

    def _emit(self, kind, **data):
        self._on_event(LineEvent(kind, data))


def _first(lines):
    return lines[0] if lines else ""


def _fields(lines, prefix):
    for line in lines:
        if line.startswith(prefix):
            return [part.strip().strip('"') for part in line[len(prefix):].split(",")]
    return []


def _csq_rssi(lines):
    fields = _fields(lines, "+CSQ:")
    rssi = int(fields[0]) if fields and fields[0].isdigit() else 99
    return None if rssi == 99 else rssi


def _bars(rssi):
    """Signal bars 0-5 from a +CSQ rssi (0-31), as phones draw them."""
    if rssi is None:
        return 0
    return min(5, (rssi + 2) // 6)


def _creg(lines):
    fields = _fields(lines, "+CREG:")
    stat = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 4
    return REGISTRATION.get(stat, "unknown")


def _cops(lines):
    fields = _fields(lines, "+COPS:")
    return fields[2] if len(fields) > 2 else ""


def _clip_number(line):
    """The number of a ``+CLIP: "+359...",145,...`` line; empty when withheld."""
    fields = line.split(":", 1)[1].split(",")
    return fields[0].strip().strip('"') if fields else ""


def _clcc_stat(line):
    """The <stat> field of a +CLCC line, or None."""
    fields = line.split(":", 1)[-1].split(",")
    return int(fields[2]) if len(fields) > 2 and fields[2].strip().isdigit() else None


def _end_cause(line):
    if line.startswith("BUSY"):
        return "busy"
    if line.startswith("NO ANSWER"):
        return "no answer"
    return "remote"
