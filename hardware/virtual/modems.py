"""Emulated GSM modems on pseudo-terminals: one base, one class per family dialect.

Each emulator has an AT port and an audio port (two ptys) and sits on the virtual
network under its SIM's number. The base class speaks what 3GPP TS 27.007 / 27.005 make
common (identity, +CSQ, +CREG, +COPS, +CPIN with a PIN, +CLCC, ATA/ATD/+CHUP, +VTS,
SMS in PDU mode with the ``> `` prompt, +CUSD, +CCLK, call waiting with +CCWA / +CHLD)
and the misbehaviour the box must survive: echo until ATE0, a URC in the middle of a
response, slow answers, a hang that only a power cycle ends. The family classes say how
their firmware reports calls, DTMF and boot, following the sources named in their
docstrings and ../shared/MODEMS.md.

Call waiting (3GPP TS 27.007 7.12): a GSM line carries one call. With AT+CCWA=1 a second
caller who arrives while the modem is in a call waits: the modem prints +CCWA (again
every RING_INTERVAL while it waits), the caller hears ringing. If the first call ends
first, the waiting one rings like any incoming call; if the waiting caller gives up
first, the family says so or says nothing. Without AT+CCWA=1 the second caller hears
busy. A power cycle forgets the setting.
"""
import collections
import datetime
import logging
import re
import threading
import time

from firmware import pdu

from firmware.frames import FRAME_BYTES, FRAME_SECONDS, SILENCE

from .network import NetworkError, NumberBusy, Party
from .pty import PtyPort

log = logging.getLogger(__name__)

RING_INTERVAL = 3.0
RING_TICK = 0.1  # how often the ring loop looks whether a repeat is due
SIM_PIN_REQUIRED = "+CME ERROR: 11"


class ModemParty(Party):
    """The modem's side of a virtual call; its audio clock pushes audio."""

    clocked = True

    def __init__(self, modem):
        self.modem = modem
        self.downlink = collections.deque(maxlen=10)

    def on_answered(self, call):
        self.modem._far_answered(call)

    def on_ended(self, call, by):
        self.modem._far_ended(call, by)

    def on_dtmf(self, call, digit):
        self.modem._far_dtmf(digit)

    def hear(self, frame):
        self.downlink.append(frame)


class _ModemError(Exception):
    """An AT command's error result."""


class EmulatedModem:
    """A GSM modem on two ptys, attached to a virtual network under ``number``."""

    family = "generic"
    manufacturer = "GENERIC"
    model = "GENERIC"
    revision = "1.0"
    boot_urcs = ("RDY", "+CPIN: READY")

    def __init__(self, network, number, *, imei="861234567890123", iccid="8935901990012345678",
                 operator="VIRTUAL GSM", rssi=20, pin=None, balance="Balance: 12.50 BGN"):
        self.network = network
        self.number = number
        self.imei, self.iccid, self.operator, self.rssi = imei, iccid, operator, rssi
        self.pin = pin
        self.balance = balance
        self.at = PtyPort()
        self.audio = PtyPort()
        self.commands_seen = []
        self.sent_sms = []  # (number, text) the box sent through this modem
        self.settings = {}  # gains and other values the box set
        self.delay = 0.0  # seconds before each answer: a slow modem
        self.ring_interval = RING_INTERVAL  # seconds between repeated RING / +CCWA
        # How lines are framed: "crlf" (<CR><LF>text<CR><LF>), "crcrlf" (text ends <CR><CR><LF>,
        # SIM7600 +CRING/+RXDTMF in ModemManager's simtech fixtures) or "bare" (no leading
        # CRLF, as chan_dongle's at_read.c meets on Huawei dongles).
        self.framing = "crlf"
        self.glue_next_error = False  # the next ERROR has no line end: "ERROR+CNUM:" (chan_dongle)
        self.noise = False  # unprompted network URCs, unasked and inside answers
        self.noise_interval = 1.0
        self._noise_index = 0
        self._noise_due = 0.0
        self._ring_due = 0.0
        self._mid_response_urcs = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._reset()
        self._threads = [threading.Thread(target=loop, name=f"emu-{loop.__name__}-{number}", daemon=True)
                         for loop in (self._at_loop, self._audio_loop, self._ring_loop)]
        network.attach(number, self)
        for thread in self._threads:
            thread.start()

    # --- what tests and the twin do to the modem ----------------------------------

    def hang(self):
        """Stop answering anything until power-cycled (the firmware bug of every family)."""
        self.hung = True

    def power_cycle(self):
        """Cut power and boot again: calls drop, settings reset, boot URCs arrive."""
        with self._lock:
            call, side, waiting = self._call, self._side, self._waiting
            self._waiting = None
            self._reset()
        if call is not None:
            call.hangup(side)
        if waiting is not None:
            waiting.hangup("b")
        for urc in self.boot_urcs:
            self._urc(urc)

    def reenumerate(self):
        """The USB device drops off and comes back under new tty names (a re-enumeration):
        the old ports close under the driver, the modem keeps its IMEI, its calls drop."""
        old_at, old_audio = self.at, self.audio
        with self._lock:
            self.at, self.audio = PtyPort(), PtyPort()
        self.power_cycle()
        old_at.close()
        old_audio.close()
        return self.at.path

    def noise_urcs(self):
        """Network reports this family sends on its own (``noise``): signal, mode, registration."""
        return ["+CREG: 1", "+CGREG: 1"]

    def inject_mid_response(self, urc):
        """Make the next command's answer carry ``urc`` between its lines and its OK."""
        self._mid_response_urcs.append(urc)

    def incoming(self, call):
        """A call from the network rings this modem (or waits); False when the modem is busy."""
        with self._lock:
            if self.hung:
                return False
            if self._call is not None:
                return self._accept_waiting(call)
            self._party = ModemParty(self)
            call.attach(self._party)
            self._call, self._side, self._call_state = call, "b", "ringing"
            self._call_index = 1
            self._ring_again_later()
        self._send_all(self.incoming_urcs(call.caller))
        return True

    def _accept_waiting(self, call):
        """Take ``call`` as a waiting call if call waiting is on and none waits yet (lock held)."""
        if not (self._ccwa_urc and self._ccwa_service) or self._waiting is not None \
                or self._call_state not in ("active", "dialing", "alerting"):
            return False
        call.attach(ModemParty(self))
        self._waiting = call
        self._ring_again_later()
        self._send_all(self.waiting_urcs(call.caller, first=True))
        return True

    @property
    def waiting_call(self):
        """The call waiting behind the current one, or None."""
        return self._waiting

    def receive_sms(self, sender, text):
        """The network delivers an SMS: store each part on the SIM and announce it."""
        for hex_pdu in pdu.encode_deliver(sender, text, reference=len(self._inbox) % 256):
            with self._lock:
                self._next_index += 1
                self._inbox[self._next_index] = hex_pdu
                index = self._next_index
            self._urc(f'+CMTI: "SM",{index}')

    def close(self):
        """Stop the emulator and close its ports; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        call, waiting = self._call, self._waiting
        if call is not None:
            call.hangup(self._side)
        if waiting is not None:
            waiting.hangup("b")
        self.network.detach(self.number)
        for thread in self._threads:
            thread.join(timeout=2)
        self.at.close()
        self.audio.close()

    # --- the family's dialect (overridden) -------------------------------------------

    def incoming_urcs(self, caller):
        """What the modem prints when a call rings (and again every few seconds)."""
        return ["RING", f'+CLIP: "{caller}",{_ton(caller)},"",0,"",0']

    def connected_urcs(self):
        """What it prints when a call becomes active."""
        return [self._clcc_line(0)] if self._clcc_reports else []

    def alerting_urcs(self):
        """What it prints when the far end of an outgoing call starts ringing."""
        return [self._clcc_line(3)] if self._clcc_reports else []

    def ended_urcs(self, state, cause):
        """What it prints when the far end ends a call (``cause``: remote, busy, no answer...)."""
        lines = [self._clcc_line(6)] if self._clcc_reports and state != "idle" else []
        return lines + [{"busy": "BUSY", "no answer": "NO ANSWER"}.get(cause, "NO CARRIER")]

    def dtmf_urcs(self, digit):
        """What it prints when the far end presses a key ([] when it cannot tell)."""
        return []

    def waiting_urcs(self, caller, first):
        """What it prints for a waiting call (``first``: it just arrived) while +CCWA is on.

        3GPP TS 27.007 7.12: ``+CCWA: <number>,<type>,<class>[,<alpha>][,<CLI validity>]``;
        with AT+CLCC=1 the new call is also pushed once as +CLCC stat 5 (waiting).
        """
        pushed = [self._clcc_line(5, self._waiting, 2)] if first and self._clcc_reports else []
        return pushed + [f'+CCWA: "{caller}",{_cli_type(caller)},1']

    def waiting_ended_urcs(self, call, cause):
        """What it prints when the waiting caller gives up: a +CLCC push if asked for, else nothing."""
        return [self._clcc_line(6, call, 2)] if self._clcc_reports else []

    def family_command(self, upper, body):
        """Answer a command only this family knows: (info lines, final) or None."""
        return None

    def audio_enabled(self):
        """Whether call audio flows on the audio port now."""
        return self._audio_on

    # --- the network side -----------------------------------------------------------

    def _far_answered(self, call):
        with self._lock:
            if call is not self._call or self._call_state not in ("dialing", "alerting"):
                return
            self._start_active()

    def _far_ended(self, call, by):
        with self._lock:
            if call is self._waiting and by == "a":
                self._waiting = None
                lines = self.waiting_ended_urcs(call, call.end_cause or "remote")
            elif call is not self._call or by == self._side:
                return
            else:
                # Said before the call is forgotten: the lines name its number and duration.
                lines = self.ended_urcs(self._call_state, call.end_cause or "remote")
                self._clear_call()
        self._send_all(lines)
        self._ring_for_waiting()

    def _ring_for_waiting(self):
        """The current call is over: a waiting call now rings like any incoming call."""
        call = self._promote_waiting()
        if call is not None:
            self._send_all(self.incoming_urcs(call.caller))

    def _promote_waiting(self):
        """Make the waiting call the current, ringing one; return it, or None."""
        with self._lock:
            call = self._waiting
            if call is None or self._call is not None or call.state != "ringing":
                return None
            self._waiting = None
            self._party = call.parties["b"]
            self._call, self._side, self._call_state = call, "b", "ringing"
            self._call_index = 2  # a call keeps its index (+CLCC <id1>) when the other ends
            self._ring_again_later()
        return call

    def _far_dtmf(self, digit):
        self._send_all(self.dtmf_urcs(digit))

    # --- the AT port ------------------------------------------------------------------

    def _at_loop(self):
        buffer = b""
        while not self._stop.is_set():
            data = self.at.read(0.1)
            if not data or self.hung:
                continue
            if self.echo and not self._payload_for:
                self.at.write(data)
            buffer = self._take(buffer + data)

    def _take(self, buffer):
        """Handle every complete command (or SMS payload) in ``buffer``; return the rest."""
        while True:
            if self._payload_for is not None:
                if b"\x1a" not in buffer and b"\x1b" not in buffer:
                    return buffer
                cut = min(i for i in (buffer.find(b"\x1a"), buffer.find(b"\x1b")) if i >= 0)
                payload, end, buffer = buffer[:cut], buffer[cut:cut + 1], buffer[cut + 1:]
                self._finish_payload(payload.decode("latin-1").strip(), end == b"\x1a")
                continue
            if b"\r" not in buffer:
                return buffer
            line, buffer = buffer.split(b"\r", 1)
            line = line.strip(b"\n").decode("latin-1").strip()
            if line:
                self._answer(line)

    def _answer(self, line):
        self.commands_seen.append(line)
        if self.delay:
            time.sleep(self.delay)
        if not line.upper().startswith("AT"):
            return self._send_line("ERROR")
        info, final = [], "OK"
        for body in _split_commands(line[2:]):
            try:
                lines, final = self._execute(body)
            except _ModemError as err:
                lines, final = [], str(err)
            info += lines
            if final != "OK":
                break
        if final is None:
            return None  # waiting for an SMS payload after the "> " prompt
        for text in info[:1] + self._mid_response_urcs + self._next_noise() + info[1:]:
            self._send_line(text)
        self._mid_response_urcs.clear()
        if final == "ERROR" and self.glue_next_error:
            self.glue_next_error = False
            return self.at.write(b"\r\nERROR")  # the next line follows without a line end
        return self._send_line(final)

    def _next_noise(self):
        """One network URC for this answer when ``noise`` is on (python-gsmmodem #40: ^RSSI
        inside +CMGR; chan_dongle #143: ^RSSI inside +CSQ)."""
        if not self.noise:
            return []
        urcs = self.noise_urcs()
        self._noise_index += 1
        return [urcs[self._noise_index % len(urcs)]]

    def _execute(self, body):
        upper = body.upper()
        if self._pin_locked and not upper.startswith(("+CPIN", "E", "I", "+CGMM", "+CGSN", "+CGMI", "+CMEE")) \
                and upper != "":
            raise _ModemError(SIM_PIN_REQUIRED)
        special = self.family_command(upper, body)
        if special is not None:
            return special
        for pattern, handler in self._commands():
            match = re.fullmatch(pattern, upper)
            if match:
                return handler(body, *match.groups())
        return [], "ERROR"

    def _commands(self):
        return (
            (r"", lambda body: ([], "OK")),
            (r"E([01])", self._echo),
            (r"Z|&F|\+CMEE=\d|\+CLIP=\d|\+CVHU=\d|\+CRC=\d|\+CREG=\d|\+CEREG=\d|\+CTZU=\d|\+CLTS=\d"
             r"|\+CNMI=[\d,]+|\+CPMS=.*|\+CSMP=[\d,]+", lambda body: ([], "OK")),
            (r'\+CSCS="(GSM|IRA|UCS2)"', self._cscs),
            (r"\+CLCC=([01])", self._clcc_mode),
            (r"\+CCWA=\?", lambda body: (["+CCWA: (0,1)"], "OK")),
            (r"\+CCWA\?", lambda body: ([f"+CCWA: {int(self._ccwa_urc)}"], "OK")),
            (r"\+CCWA=([01])?(?:,([012]))?(?:,(\d+))?", self._ccwa),
            (r"\+CHLD=([01])", self._chld),
            (r"I", lambda body: (self._ati(), "OK")),
            (r"\+CGMI", lambda body: ([self.manufacturer], "OK")),
            (r"\+CGMM", lambda body: ([self.model], "OK")),
            (r"\+CGMR", lambda body: ([f"+CGMR: {self.revision}"], "OK")),
            (r"\+CGSN", lambda body: ([self.imei], "OK")),
            (r"\+CCID", lambda body: ([f"+CCID: {self.iccid}"], "OK")),
            (r"\+CSQ", lambda body: ([f"+CSQ: {self.rssi},99"], "OK")),
            (r"\+CREG\?", lambda body: (["+CREG: 0,1"], "OK")),
            (r"\+COPS\?", lambda body: ([f'+COPS: 0,0,"{self.operator}",{self._act}'], "OK")),
            (r"\+CPIN\?", lambda body: ([f"+CPIN: {'SIM PIN' if self._pin_locked else 'READY'}"], "OK")),
            (r'\+CPIN="?(\d+)"?', self._cpin),
            (r"\+CCLK\?", lambda body: ([self._cclk()], "OK")),
            (r"\+CLCC", lambda body: (self._clcc_list(), "OK")),
            (r"A", lambda body: self._ata()),
            (r"\+CHUP|H0?", lambda body: self._chup()),
            (r"D(.*)", lambda body, rest: self._atd(body[1:])),
            (r'\+VTS="?(.)"?', self._vts),
            (r"\+CMGF=([01])", self._cmgf),
            (r"\+CMGS=(\d+)", self._cmgs),
            (r'\+CMGS="([^"]*)"', self._cmgs_text),
            (r"\+CMGR=(\d+)", self._cmgr),
            (r"\+CMGD=(\d+)(,\d)?", self._cmgd),
            (r'\+CUSD=1,"?([^",]*)"?(,\d+)?', self._cusd),
        )

    # --- common commands -------------------------------------------------------------

    def _echo(self, body, flag):
        self.echo = flag == "1"
        return [], "OK"

    def _clcc_mode(self, body, flag):
        self._clcc_reports = flag == "1"
        return [], "OK"

    def _ccwa(self, body, presentation, mode, _class):
        """AT+CCWA=<n>[,<mode>[,<class>]]: <n> shows +CCWA, <mode> 0/1 sets the service, 2 asks."""
        if presentation is not None:
            self._ccwa_urc = presentation == "1"
        if mode in ("0", "1"):
            self._ccwa_service = mode == "1"
        if mode == "2":
            return [f"+CCWA: {int(self._ccwa_service)},1"], "OK"
        return [], "OK"

    def _chld(self, body, action):
        """AT+CHLD=0 turns the waiting caller away (busy); AT+CHLD=1 ends the call and takes the waiting one."""
        with self._lock:
            waiting = self._waiting
            if waiting is None:
                raise _ModemError("+CME ERROR: 3")  # operation not allowed
            if action == "0":
                self._waiting = None
        if action == "0":
            waiting.hangup("b", cause="busy")
            return [], "OK"
        lines = self._end_current()
        if self._promote_waiting() is None or self._ata()[1] != "OK":
            raise _ModemError("+CME ERROR: 3")  # the waiting caller gave up meanwhile
        return lines, "OK"

    def _ati(self):
        return [f"Manufacturer: {self.manufacturer}", f"Model: {self.model}",
                f"Revision: {self.revision}", f"IMEI: {self.imei}", "+GCAP: +CGSM"]

    def _cpin(self, body, pin):
        if not self._pin_locked:
            raise _ModemError("+CME ERROR: 3")
        if pin != self.pin:
            raise _ModemError("+CME ERROR: 16")  # incorrect password
        self._pin_locked = False
        threading.Timer(0.05, self._urc, args=("+CPIN: READY",)).start()
        return [], "OK"

    def _cclk(self):
        now = datetime.datetime.now().astimezone()
        quarters = int(now.utcoffset().total_seconds() // 900)
        return f'+CCLK: "{now:%y/%m/%d,%H:%M:%S}{quarters:+03d}"'

    def _clcc_list(self):
        lines = []
        if self._call is not None:
            stat = {"active": 0, "dialing": 2, "alerting": 3, "ringing": 4}[self._call_state]
            lines.append(self._clcc_line(stat))
        if self._waiting is not None:
            lines.append(self._clcc_line(5, self._waiting, 2))
        return lines

    def _clcc_line(self, stat, call=None, index=None):
        """A +CLCC line for the current call, or for ``call`` (a waiting, incoming one) at ``index``."""
        if call is None:
            call, side, index = self._call, self._side, self._call_index
        else:
            side = "b"
        number = "" if call is None else (call.caller if side == "b" else call.callee)
        direction = 1 if side == "b" else 0
        return f'+CLCC: {index},{direction},{stat},0,0,"{number}",{_ton(number)}'

    def _ata(self):
        with self._lock:
            if self._call_state != "ringing":
                return [], "NO CARRIER"
            call = self._call
        if not call.answer():
            return [], "NO CARRIER"
        with self._lock:
            self._start_active()
        return [], "OK"

    def _chup(self):
        lines = self._end_current()
        if self._waiting is not None:
            # After this command's OK, the waiting call rings as a new one.
            threading.Timer(0.1, self._ring_for_waiting).start()
        return lines, "OK"

    def _end_current(self):
        """Hang up the current call; return the lines printed for it before OK."""
        with self._lock:
            call, side = self._call, self._side
            lines = self.local_end_lines(self._call_state)
            self._clear_call()
        if call is not None:
            call.hangup(side)
        return lines

    def local_end_lines(self, state):
        """Lines printed before OK when the box hangs up (SIM7600: VOICE CALL: END)."""
        return []

    def _atd(self, rest):
        number = rest.rstrip(";").strip()
        with self._lock:
            if self._call is not None:
                return [], "ERROR"
            self._party = ModemParty(self)
            self._call_state = "dialing"
            self._call_index = 1
        try:
            call = self.network.dial(self.number, number, self._party)
        except NetworkError as err:
            cause = "busy" if isinstance(err, NumberBusy) else "unreachable"
            with self._lock:
                self._clear_call()
            threading.Timer(0.2, self._send_all, args=(self.ended_urcs("dialing", cause),)).start()
            return [], "OK"
        with self._lock:
            self._call, self._side = call, "a"
        threading.Timer(0.1, self._alerting, args=(call,)).start()
        return [], "OK"

    def _alerting(self, call):
        with self._lock:
            if call is not self._call or self._call_state != "dialing":
                return
            self._call_state = "alerting"
            if call.state == "active":
                return self._start_active()
        self._send_all(self.alerting_urcs())
        if call.state == "ended":
            self._far_ended(call, "b")
        return None

    def _vts(self, body, digit):
        if self._call_state != "active":
            raise _ModemError("+CME ERROR: 3")
        self._call.dtmf(self._side, digit)
        return [], "OK"

    def _cmgf(self, body, mode):
        self._text_mode = mode == "1"
        return [], "OK"

    def _cscs(self, body, charset):
        self._charset = charset
        return [], "OK"

    def _cmgs(self, body, length):
        if self._text_mode:
            raise _ModemError("+CMS ERROR: 304")  # a PDU length in text mode
        self._payload_for = int(length)
        self.at.write(b"\r\n> ")
        return [], None

    def _cmgs_text(self, body, address):
        if not self._text_mode:
            raise _ModemError("+CMS ERROR: 304")
        self._payload_for = address
        self.at.write(b"\r\n> ")
        return [], None

    def _text_in(self, text):
        """Text as the box typed it in the current character set (TS 27.007 +CSCS)."""
        return pdu.ucs2_hex_decode(text) if self._charset == "UCS2" else text

    def _text_out(self, text):
        return pdu.ucs2_hex_encode(text) if self._charset == "UCS2" else text

    def _finish_payload(self, payload, send):
        target, self._payload_for = self._payload_for, None
        if not send:
            return self._send_line("OK")
        try:
            if isinstance(target, str):
                number, text, concat = self._text_in(target), self._text_in(payload), None
            else:
                number, text, concat = pdu.decode_submit(payload)
        except pdu.PduError as err:
            log.warning("emulator: bad SMS: %s", err)
            return self._send_line("+CMS ERROR: 304")
        self._outgoing_parts.append((number, text, concat))
        self._deliver_complete_sms()
        self._message_reference = (self._message_reference + 1) % 256
        self._send_line(f"+CMGS: {self._message_reference}")
        return self._send_line("OK")

    def _deliver_complete_sms(self):
        number, _, concat = self._outgoing_parts[-1]
        if concat is not None and len([p for p in self._outgoing_parts if p[2] and p[2][0] == concat[0]]) < concat[1]:
            return
        parts = [p for p in self._outgoing_parts if p[0] == number and (concat is None or (p[2] and p[2][0] == concat[0]))]
        parts.sort(key=lambda part: part[2][2] if part[2] else 0)
        text = "".join(part[1] for part in parts)
        self._outgoing_parts = [p for p in self._outgoing_parts if p not in parts]
        self.sent_sms.append((number, text))
        self.network.send_sms(self.number, number, text)

    def _cmgr(self, body, index):
        hex_pdu = self._inbox.get(int(index))
        if hex_pdu is None:
            raise _ModemError("+CMS ERROR: 321")  # invalid memory index
        if not self._text_mode:
            return [f"+CMGR: 1,,{len(hex_pdu) // 2 - 1 - int(hex_pdu[:2], 16)}", hex_pdu], "OK"
        message = pdu.decode_deliver(hex_pdu)
        stamp = message["timestamp"]
        zone = int(stamp.utcoffset().total_seconds() // 900)
        header = (f'+CMGR: "REC UNREAD","{self._text_out(message["sender"])}",,'
                  f'"{stamp:%y/%m/%d,%H:%M:%S}{zone:+03d}"')
        return [header, self._text_out(message["text"])], "OK"

    def _cmgd(self, body, index, _flag):
        self._inbox.pop(int(index), None)
        return [], "OK"

    def _cusd(self, body, code, _dcs):
        request = self.decode_ussd_request(code)
        reply = self.balance if request in ("*100#", "*101#", "*102#", "#100#") else None
        if reply is None:
            threading.Timer(0.1, self._urc, args=("+CUSD: 4",)).start()
        else:
            threading.Timer(0.2, self._urc, args=(self.ussd_reply_line(reply),)).start()
        return [], "OK"

    def decode_ussd_request(self, code):
        """The USSD code the box asked for (Huawei sends it GSM7-packed)."""
        return code

    def ussd_reply_line(self, text):
        """How the network's USSD answer is printed: UCS2 hex with DCS 72."""
        return f'+CUSD: 0,"{pdu.ucs2_hex_encode(text)}",72'

    # --- state ------------------------------------------------------------------------

    def _reset(self):
        self.echo = True
        self.hung = False
        self._pin_locked = self.pin is not None
        self._clcc_reports = False
        self._audio_on = False
        self._payload_for = None
        self._text_mode = False
        self._charset = "GSM"
        self._outgoing_parts = []
        self._inbox = {}
        self._next_index = 0
        self._message_reference = 0
        self._act = 7
        self._ccwa_urc = False  # AT+CCWA <n>: +CCWA shown
        self._ccwa_service = True  # AT+CCWA <mode>: the network's call waiting service
        self._waiting = None
        self._clear_call()

    def _start_active(self):
        self._call_state = "active"
        self._answered_at = time.monotonic()
        self._send_all(self.connected_urcs())

    def _clear_call(self):
        self._call, self._side, self._party = None, None, None
        self._call_index = 1
        self._call_state = "idle"
        self._audio_on = False
        self._answered_at = None

    def _talk_seconds(self):
        return int(time.monotonic() - self._answered_at) if self._answered_at else 0

    def _duration(self):
        seconds = self._talk_seconds()
        return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"

    def _ring_loop(self):
        while not self._stop.wait(RING_TICK):
            # Sent under the lock: a caller who hangs up meanwhile is reported after
            # this RING, never before it (a RING after NO CARRIER would be a new call).
            with self._lock:
                if time.monotonic() < self._ring_due:
                    continue
                self._ring_due = time.monotonic() + self.ring_interval
                if self._call is not None and self._call_state == "ringing":
                    self._send_all(self.incoming_urcs(self._call.caller))
                if self._waiting is not None:
                    self._send_all(self.waiting_urcs(self._waiting.caller, first=False))
            self._noise_tick()

    def _noise_tick(self):
        """Now and then an unprompted network report, as real modems send them."""
        if self.noise and time.monotonic() >= self._noise_due:
            self._noise_due = time.monotonic() + self.noise_interval
            self._urc(self._next_noise()[0])

    def _ring_again_later(self):
        """A call just started ringing or waiting: its next RING / +CCWA is one interval away."""
        self._ring_due = time.monotonic() + self.ring_interval

    def _urc(self, text):
        if not self.hung:
            self._send_line(text)

    def _send_all(self, lines):
        for line in lines:
            self._urc(line)

    def _send_line(self, text):
        framed = {"crcrlf": f"\r\n{text}\r\r\n", "bare": f"{text}\r\n"}.get(self.framing, f"\r\n{text}\r\n")
        self.at.write(framed.encode("latin-1"))

    # --- the audio port ---------------------------------------------------------------

    def _audio_loop(self):
        received = b""
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += FRAME_SECONDS
            while time.monotonic() < deadline:
                received += self.audio.read(max(0.0, deadline - time.monotonic()))
            if time.monotonic() - deadline > 0.2:
                deadline = time.monotonic()  # we were stalled: do not burst to catch up
            received = self._audio_tick(received)

    def _audio_tick(self, received):
        """Move one frame each way; return what is left of the box's bytes."""
        with self._lock:
            call, side, party = self._call, self._side, self._party
            flowing = self._call_state == "active" and self.audio_enabled() and not self.hung
        if not (flowing and call is not None and call.state == "active"):
            return b""
        uplink = SILENCE
        if len(received) >= FRAME_BYTES:
            uplink, received = received[:FRAME_BYTES], received[FRAME_BYTES:]
        reply = call.exchange(side, uplink)
        if reply is not None:
            party.downlink.append(reply)
        self.audio.write(self._downlink_frame(party))
        backlog = len(received) // FRAME_BYTES - 5
        return received[backlog * FRAME_BYTES:] if backlog > 0 else received

    def _downlink_frame(self, party):
        return party.downlink.popleft() if party.downlink else SILENCE


def _split_commands(body):
    """Split the part after AT into V.250 commands: ``+QPCMV=0;+QPCMV=1,0;A``."""
    commands, current, quoted = [], "", False
    for index, char in enumerate(body):
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted and not current.upper().startswith("D"):
            commands.append(current)
            current = ""
            continue
        current += char
    if current or not commands:
        commands.append(current)
    return commands


def _ton(number):
    """Type of number: 145 international, 129 national or unknown."""
    return 145 if number.startswith("+") else 129


def _cli_type(number):
    """Type of number for caller ID: 128 when withheld (python-gsmmodem #24)."""
    return _ton(number) if number else 128
