"""GSM voice lines: what every modem family shares, and the hooks where they differ.

A line owns an AT channel and (for most families) an audio port. It reports what
happens as ``LineEvent`` objects through one callback: incoming, alerting, connected,
dtmf, ended, missed, sms, down. Family classes (simcom.py, huawei.py, quectel.py) give
their init sequence, their URCs and their audio path.
"""
import datetime
import logging
import threading
import time
from dataclasses import dataclass, field

from . import pdu
from .at import ATChannel
from .audio import SerialAudioPort
from .errors import ATCommandError, ATTimeout, FirmwareError, LineStateError, SimError

log = logging.getLogger(__name__)

IDLE, RINGING, DIALING, ALERTING, ACTIVE = "idle", "ringing", "dialing", "alerting", "active"
REGISTRATION = {0: "not registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"}
LEFTOVER_CALL_STATES = {0, 1, 2, 3}  # +CLCC stat: active, held, dialling, alerting
CALL_END_WORDS = {"NO CARRIER": "remote", "BUSY": "busy", "NO ANSWER": "no answer", "NO DIALTONE": "no dial tone"}
# 3GPP TS 24.008 10.5.4.11 cause values that mean something to a caller.
SMS_RETRY_CODES = {350}
SMS_ATTEMPTS = 3
SMS_RETRY_SECONDS = 1.0
VOICE_OK, VOICE_LOCKED = "ok", "locked by firmware"
END_CAUSES = {1: "unassigned number", 16: "remote", 17: "busy", 18: "no answer", 19: "no answer",
              21: "rejected", 31: "remote", 34: "congestion"}


@dataclass(frozen=True)
class LineEvent:
    """Something that happened on a line: incoming, connected, dtmf, ended, missed, sms, down..."""

    kind: str
    data: dict = field(default_factory=dict)


class GsmLine:
    """A voice line on an AT-command GSM modem; subclasses speak each family's dialect."""

    family = "generic"
    models = ()  # substrings of AT+CGMM / ATI that name this family
    usb_ids = ()  # (vendor, product) pairs
    audio_interface = None  # the USB interface number of the voice port, if it is a tty
    init_commands = ()
    hangup_command = "AT+CHUP"
    inband_dtmf = False  # True when the modem cannot report DTMF and the engine must listen
    gain_commands = None  # (mic template, speaker template, mic range, speaker range)
    software_gain = False  # True when levels must be applied to the audio by the engine
    ussd_packed = False  # replies in the TE character set; Huawei sends GSM7-packed hex
    text_mode_sms = True  # Huawei: long UCS2 text-mode SMS hang the dongle (chan_dongle BUGS)
    voice = VOICE_OK  # "locked by firmware" when the modem cannot carry calls (Huawei ^CVOICE)

    def __init__(self, port, on_event, *, audio_port=None, name="gsm", pin=None, sms_mode="pdu"):
        self.name = name
        # Text mode only where the family handles it; long messages always go as PDUs,
        # since only PDUs carry the header that joins the parts again.
        self.sms_mode = sms_mode if self.text_mode_sms else "pdu"
        self._on_event = on_event
        self._state = IDLE
        self._state_lock = threading.Lock()
        self._caller_seen = False
        self._connected_at = None
        self._hung_up_locally = False
        self._ussd_reply = None
        self._ussd_done = threading.Event()
        self._sms_parts = pdu.Reassembler()
        self.audio = None
        self.channel = ATChannel(port, self._handle_urc, on_closed=self._handle_closed, name=name)
        try:
            self._initialise(pin)
            self.audio = self._open_audio(audio_port)
        except FirmwareError:
            self.channel.close()
            raise

    @property
    def state(self):
        """The call state: idle, ringing, dialing, alerting or active."""
        return self._state

    # --- identity and network ---------------------------------------------------

    def info(self):
        """Model, revision, IMEI, ICCID, signal, registration and operator, read now."""
        rssi = _csq_rssi(self.command("AT+CSQ", prefix="+CSQ:"))
        return {
            "family": self.family,
            "model": _first(self.command("AT+CGMM")),
            "revision": _strip_prefix(_first(self.command("AT+CGMR")), "+CGMR:"),
            "imei": _first(self.command("AT+CGSN")),
            "iccid": self.iccid(),
            "signal_dbm": None if rssi is None else -113 + 2 * rssi,
            "signal_bars": _bars(rssi),
            "registration": _creg(self.command("AT+CREG?", prefix="+CREG:")),
            "operator": _cops(self.command("AT+COPS?", prefix="+COPS:")),
            "voice": self.voice,
        }

    def iccid(self):
        """The SIM card's ICCID."""
        return _strip_prefix(_first(self.command("AT+CCID", prefix="+CCID:")), "+CCID:")

    def network_time(self):
        """The modem's clock (set from the network by NITZ) as an aware datetime, or None."""
        return _cclk(self.command("AT+CCLK?", prefix="+CCLK:"))

    def set_gain(self, microphone, speaker):
        """Set microphone and speaker levels, each 0-100 % of the family's range."""
        if self.gain_commands is None:
            raise LineStateError(f"{self.name}: {self.family} has no gain commands")
        mic_template, speaker_template, mic_range, speaker_range = self.gain_commands
        self.command(mic_template.format(_scale(microphone, mic_range)))
        self.command(speaker_template.format(_scale(speaker, speaker_range)))

    def command(self, command, **options):
        """Send one AT command on this line's channel and return its lines."""
        return self.channel.command(command, **options)

    # --- calls ------------------------------------------------------------------

    def answer(self):
        """Pick up the ringing call."""
        if self._state != RINGING:
            raise LineStateError(f"{self.name}: no call is ringing")
        self._check_voice()
        self.command(self._answer_command(), timeout=10)
        self._after_answer()

    def hangup(self):
        """End the call in progress (or refuse the ringing one)."""
        if self._state == IDLE:
            return
        self._hung_up_locally = True
        self.command(self.hangup_command, timeout=10)
        self._end_call("local")

    def dial(self, number):
        """Place a voice call to ``number``; progress arrives as events."""
        if self._state != IDLE:
            raise LineStateError(f"{self.name}: line is busy")
        self._check_voice()
        self._set_state(DIALING)
        self._hung_up_locally = False
        try:
            self.command(f"ATD{number};", timeout=10)
        except FirmwareError:
            self._set_state(IDLE)
            raise
        self._after_dial()

    def _check_voice(self):
        if self.voice != VOICE_OK:
            raise LineStateError(f"{self.name}: this modem cannot carry calls: voice {self.voice}")

    def send_dtmf(self, digits):
        """Send DTMF digits to the far end of the active call."""
        if self._state != ACTIVE:
            raise LineStateError(f"{self.name}: no active call")
        for digit in digits:
            self.command(f"AT+VTS={digit}")

    # --- SMS and USSD -------------------------------------------------------------

    def send_sms(self, number, text):
        """Send an SMS (several parts if long; UCS2 for Cyrillic); return the message references."""
        parts = pdu.encode_submit(number, text, reference=_next_reference())
        if self.sms_mode == "text" and len(parts) == 1:
            return [self._send_sms_text(number, text)]
        self.command("AT+CMGF=0")
        references = [self._send_pdu(hex_pdu, length) for hex_pdu, length in parts]
        self._restore_sms_mode()
        return references

    def _send_pdu(self, hex_pdu, length):
        """One PDU through AT+CMGS; a transient ``+CMS ERROR: 350`` is tried again."""
        attempt = 1
        while True:
            try:
                lines = self.command(f"AT+CMGS={length}", payload=hex_pdu, timeout=60, prefix="+CMGS:")
                return int(_fields(lines, "+CMGS:")[0])
            except ATCommandError as err:
                # Quectel EC25s answer +CMS ERROR: 350 now and then (MODEMS.md) and the same
                # PDU goes through a moment later; any other error is the caller's to handle.
                if err.kind != "CMS" or err.code not in SMS_RETRY_CODES or attempt >= SMS_ATTEMPTS:
                    raise
                log.info("%s: %s; sending the SMS again", self.name, err.result)
            attempt += 1
            time.sleep(SMS_RETRY_SECONDS)

    def _send_sms_text(self, number, text):
        """One message in text mode: GSM 7-bit as is, anything else as UCS2 hex (TS 27.005 3.5.1)."""
        ucs2 = pdu.gsm7_encode(text) is None
        self.command("AT+CMGF=1")
        self.command(f"AT+CSMP=17,167,0,{8 if ucs2 else 0}")
        address = pdu.ucs2_hex_encode(number) if self._text_charset == "UCS2" else number
        body = pdu.ucs2_hex_encode(text) if ucs2 or self._text_charset == "UCS2" else text
        if ucs2 and self._text_charset != "UCS2":
            self.command('AT+CSCS="UCS2"')
            self._text_charset = "UCS2"
            address = pdu.ucs2_hex_encode(number)
        lines = self.command(f'AT+CMGS="{address}"', payload=body, timeout=60, prefix="+CMGS:")
        return int(_fields(lines, "+CMGS:")[0])

    def _restore_sms_mode(self):
        if self.sms_mode == "text":
            self.command("AT+CMGF=1")

    def ussd(self, code, timeout=30.0):
        """Send a USSD code (``*100#``) and return the network's reply text."""
        self._ussd_done.clear()
        self._ussd_reply = None
        self.command(self._ussd_command(code), timeout=10)
        if not self._ussd_done.wait(timeout):
            raise ATTimeout(f"{self.name}: no USSD reply to {code} within {timeout:g} s")
        status, text = self._ussd_reply
        if status == 4:
            raise ATCommandError(f"USSD {code}", "+CUSD: 4 (operation not supported)")
        return text

    # --- life cycle ---------------------------------------------------------------

    def close(self):
        """Close the audio port and the AT port; safe to call twice."""
        if self.audio is not None:
            self.audio.close()
        self.channel.close()

    # --- hooks for families -------------------------------------------------------

    def _answer_command(self):
        return "ATA"

    def _after_answer(self):
        """Called once ATA returned OK (SIM800 is connected from then on)."""

    def _after_dial(self):
        """Called once ATD returned OK."""

    def _audio_on(self):
        """Switch the modem's voice to the audio port (a call just connected)."""

    def _audio_off(self):
        """Switch the audio port off (the call ended)."""

    def _open_audio(self, audio_port):
        return SerialAudioPort(audio_port, name=f"{self.name}-audio") if audio_port else None

    def _ussd_command(self, code):
        return f'AT+CUSD=1,"{code}",15'

    def _family_urc(self, line):
        """Handle a URC only this family sends; return True if it was one."""
        return False

    # --- set-up -------------------------------------------------------------------

    def _initialise(self, pin):
        self.command("AT", timeout=2)
        self.command("ATE0")
        self.command("AT+CMEE=1")
        self._unlock_sim(pin)
        for command in self.init_commands:
            self.command(command)
        self._text_charset = None
        if self.sms_mode == "text":
            self.command("AT+CMGF=1")
            self.command('AT+CSCS="UCS2"')  # so Cyrillic reads back as it was sent
            self._text_charset = "UCS2"
        else:
            self.command("AT+CMGF=0")
        self.command("AT+CNMI=2,1,0,0,0")
        self._enable_call_waiting()
        self._clear_leftover_call()

    def _enable_call_waiting(self):
        """Show a second caller as +CCWA rather than let them hear busy and vanish."""
        try:
            self.command("AT+CCWA=1,1", timeout=10)
        except ATCommandError as err:
            log.info("%s: no call waiting on this SIM or network (%s)", self.name, err.result)

    def _unlock_sim(self, pin):
        state = _strip_prefix(_first(self.command("AT+CPIN?", prefix="+CPIN:")), "+CPIN:")
        if state == "READY":
            return
        if state != "SIM PIN":
            raise SimError(f"{self.name}: SIM is {state or 'not answering'}; it needs a technician")
        if not pin:
            raise SimError(f"{self.name}: the SIM asks for a PIN and none is configured")
        try:
            self.command(f'AT+CPIN="{pin}"', timeout=10)
        except ATCommandError as err:
            raise SimError(f"{self.name}: the SIM refused the configured PIN ({err.result})") from err
        self._wait_sim_ready()

    def _wait_sim_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if "READY" in _first(self.command("AT+CPIN?", prefix="+CPIN:")):
                    return
            except ATCommandError:
                pass  # +CME ERROR: 14, SIM busy: the SIM is still starting
            time.sleep(0.2)
        raise SimError(f"{self.name}: the SIM did not become ready after the PIN")

    def _clear_leftover_call(self):
        if any(_clcc_stat(line) in LEFTOVER_CALL_STATES
               for line in self.command("AT+CLCC", prefix="+CLCC:")):
            # A call from before we opened the port (the engine restarted mid-call):
            # nobody is handling it, so free the line. A ringing call is left to ring.
            log.warning("%s: hanging up a call left over from before the line was opened", self.name)
            self.command(self.hangup_command, timeout=10)

    # --- unsolicited results --------------------------------------------------------

    def _handle_urc(self, line):
        if self._family_urc(line):
            return
        if line == "RING" or line.startswith("+CRING:"):
            self._ring()
        elif line.startswith("+CLIP:"):
            self._caller_id(_clip_number(line))
        elif line.startswith("+CLCC:"):
            self._clcc(line)
        elif line.split(":")[0] in CALL_END_WORDS:
            self._end_call(self._cause(CALL_END_WORDS[line.split(":")[0]]))
        elif line.startswith("+CCWA:"):
            # A second caller while this line is in a call (3GPP TS 27.007 7.12): the modem
            # repeats it like RING; the engine keeps one entry per caller.
            self._emit("waiting", number=_clip_number(line))
        elif line.startswith("+CMTI:"):
            self._read_stored_sms(int(line.rsplit(",", 1)[1]))
        elif line.startswith("+CUSD:"):
            self._ussd_arrived(line)
        else:
            log.debug("%s: ignored URC %r", self.name, line)

    def _clcc(self, line):
        """+CLCC pushed on state changes (AT+CLCC=1): alerting, active.

        The "released" report (stat 6) is left to the NO CARRIER / BUSY / NO ANSWER that
        follows it, because only that word says why the call ended.
        """
        stat = _clcc_stat(line)
        if stat == 3:
            self._alerting()
        elif stat == 0:
            self._connected()

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

    def _alerting(self):
        if self._state == DIALING:
            self._set_state(ALERTING)
            self._emit("alerting")

    def _connected(self):
        with self._state_lock:
            if self._state not in (RINGING, DIALING, ALERTING):
                return
            self._state = ACTIVE
        self._connected_at = time.monotonic()
        if self.audio is not None:
            self.audio.flush()
        try:
            self._audio_on()
        except FirmwareError as err:
            log.warning("%s: the audio path did not open: %s", self.name, err)
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
            try:
                self._audio_off()
            except FirmwareError as err:
                log.warning("%s: the audio path did not close: %s", self.name, err)
        seconds = time.monotonic() - self._connected_at if previous == ACTIVE else 0.0
        self._emit("ended" if previous != RINGING else "missed", cause=cause, seconds=round(seconds, 2))

    def _cause(self, cause):
        return "local" if self._hung_up_locally else cause

    def _read_stored_sms(self, index):
        try:
            lines = self.command(f"AT+CMGR={index}", prefix="+CMGR:", timeout=10)
            self.command(f"AT+CMGD={index}")
        except FirmwareError as err:
            log.warning("%s: cannot read SMS %d: %s", self.name, index, err)
            return
        if self.sms_mode == "text":
            self._text_sms_arrived(lines)
        else:
            self._sms_arrived(lines[-1] if lines else "")

    def _text_sms_arrived(self, lines):
        """``+CMGR: "REC UNREAD","<sender>",,"<time>"`` then the text, both UCS2 hex here."""
        fields = _fields(lines, "+CMGR:")
        if len(fields) < 2 or len(lines) < 2:
            log.warning("%s: skipped a text-mode SMS without header or body: %r", self.name, lines)
            return
        try:
            sender, text = pdu.ucs2_hex_decode(fields[1]), pdu.ucs2_hex_decode("".join(lines[1:]))
        except pdu.PduError as err:
            log.warning("%s: skipped a text-mode SMS that is not UCS2: %s", self.name, err)
            return
        self._emit("sms", sender=sender, text=text, sent_at=None)

    def _sms_arrived(self, hex_pdu):
        try:
            message = pdu.decode_deliver(hex_pdu)
        except pdu.PduError as err:
            log.warning("%s: skipped an SMS that does not decode: %s", self.name, err)
            return
        text = self._sms_parts.add(message)
        if text is not None:
            self._emit("sms", sender=message["sender"], text=text,
                       sent_at=message["timestamp"].isoformat() if message.get("timestamp") else None)

    def _ussd_arrived(self, line):
        fields = _split_fields(line.split(":", 1)[1])
        status = int(fields[0]) if fields and fields[0].isdigit() else 2
        payload = fields[1] if len(fields) > 1 else ""
        dcs = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 15
        self._ussd_reply = (status, pdu.decode_ussd(payload, dcs, packed=self.ussd_packed))
        self._ussd_done.set()

    def _handle_closed(self):
        self._emit("down", reason="port closed")

    def _set_state(self, state):
        with self._state_lock:
            self._state = state

    def _emit(self, kind, **data):
        self._on_event(LineEvent(kind, data))


# --- parsing helpers (shared by the families) ----------------------------------------

_references = iter(range(1, 1 << 30))


def _next_reference():
    """A concatenated-SMS reference that changes from message to message."""
    return next(_references) % 256


def _first(lines):
    return lines[0] if lines else ""


def _strip_prefix(text, prefix):
    return text[len(prefix):].strip() if text.startswith(prefix) else text.strip()


def _split_fields(text):
    """Comma-separated fields with quotes removed; commas inside quotes are kept."""
    fields, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append(current.strip())
            current = ""
        else:
            current += char
    fields.append(current.strip())
    return fields


def _fields(lines, prefix):
    for line in lines:
        if line.startswith(prefix):
            return _split_fields(line[len(prefix):])
    return []


def _csq_rssi(lines):
    fields = _fields(lines, "+CSQ:")
    rssi = int(fields[0]) if fields and fields[0].isdigit() else 99
    return None if rssi == 99 else rssi


def _bars(rssi):
    """Signal bars 0-5 from a +CSQ rssi (0-31), as phones draw them."""
    return 0 if rssi is None else min(5, (rssi + 2) // 6)


def _creg(lines):
    """Registration from AT+CREG?'s ``+CREG: <n>,<stat>[,<lac>,<ci>]``.

    An unsolicited ``+CREG: <stat>,<lac>,<ci>`` can arrive inside the answer (Huawei
    ``+CREG: 2,1,4CA,81DE445`` pushes, MODEMS.md): its second field is a cell code, not a
    one-digit state, so it is passed over.
    """
    for line in lines:
        fields = _split_fields(line[len("+CREG:"):]) if line.startswith("+CREG:") else []
        if len(fields) > 1 and len(fields[1]) == 1 and fields[1].isdigit():
            return REGISTRATION.get(int(fields[1]), "unknown")
    return REGISTRATION[4]


def _cops(lines):
    fields = _fields(lines, "+COPS:")
    return fields[2] if len(fields) > 2 else ""


def _clip_number(line):
    """The number of a ``+CLIP: "+359...",145,...`` line; empty when withheld."""
    fields = _split_fields(line.split(":", 1)[1])
    return fields[0] if fields else ""


def _clcc_stat(line):
    """The <stat> field of a +CLCC line, or None."""
    fields = _split_fields(line.split(":", 1)[-1])
    return int(fields[2]) if len(fields) > 2 and fields[2].lstrip("-").isdigit() else None


def _cclk(lines):
    """``+CCLK: "24/06/08,05:15:27+08"`` (time zone in quarter hours) as a datetime."""
    text = ",".join(_fields(lines, "+CCLK:")[:2])  # one quoted field, or two if unquoted
    try:
        stamp = datetime.datetime.strptime(text[:17], "%y/%m/%d,%H:%M:%S")
        quarters = int(text[17:])
    except ValueError:
        return None
    if stamp.year < 2020:
        return None  # the modem has not heard the network's time yet
    return stamp.replace(tzinfo=datetime.timezone(datetime.timedelta(minutes=15 * quarters)))


def _scale(percent, value_range):
    low, high = value_range
    percent = max(0, min(100, int(percent)))
    return low + round((high - low) * percent / 100)
