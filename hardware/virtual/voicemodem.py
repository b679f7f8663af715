"""An emulated V.253 voice modem on one pseudo-terminal, on an analog line of the virtual network.

It speaks what ITU-T V.253 and the chipset manuals give and what vgetty's logs and code
show real modems do (../../docs/analog.md names each source):

- voice mode with ``AT+FCLASS=8``; ``AT+FCLASS=?`` lists 8; ``AT+VSM=?`` prints the
  profile's real list (a Conexant CX93001 as NCID printed it, or the USRobotics 56K
  command reference's, which has 16-bit linear);
- ``RING`` every ``ring_interval`` seconds, and with ``AT+VCID=1`` caller ID between the
  first and second ring (``DATE = 0117`` with spaces on the Conexant, ``DATE=0117``
  without on the USRobotics; ``NMBR = P`` private, ``NMBR = O`` unavailable), written in
  pieces so the block arrives split across reads; ``ATZ`` forgets ``+VCID``;
- ``AT+VLS=1`` off hook (answers), ``AT+VLS=0`` / ``ATH`` on hook; ``AT+VTR`` (full
  duplex, left with ``<DLE>^``), ``AT+VRX`` (left with ``<DLE>!``) and ``AT+VTX`` (left
  with ``<DLE><ETX>``) answer ``CONNECT`` and stream samples in the selected format at
  the real byte rate (8000 bytes/s for 8-bit, 16000 for 16-bit), DLE doubled both ways;
- events as ``<DLE><code>``: DTMF the far end presses (bracketed ``/`` ... ``~`` if asked),
  busy tone after the far end hangs up (or reorder, loop-current loss, dial tone, or
  nothing but silence, by ``hangup_signal``), dial tone on a line off hook with no call,
  ``s`` / ``q`` after ``+VSD`` silence;
- ``ATDT`` dials the virtual network: ``RINGING``, then ``VCON`` once the far end answered
  and ``+VRA`` tenths of a second passed, or ``BUSY`` / ``NO ANSWER`` / ``NO CARRIER`` /
  ``NO DIALTONE`` (a line with no dial tone); any byte aborts the dial.
"""
import heapq
import itertools
import logging
import re
import threading
import time
import warnings

from firmware.frames import FRAME_SAMPLES, FRAME_SECONDS, SILENCE, frame_deadlines

from .modems import ModemParty, _split_commands
from .network import NetworkError, NumberBusy
from .phones import frame_level
from .pty import PtyPort

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # an independent G.711 to check the driver's own against (audioop-lts on 3.13)

log = logging.getLogger(__name__)

DLE, ETX, CAN = 0x10, 0x03, 0x18

# Sample formats as the modems list them. Conexant: NCID's log of a CX93001 ("Modem
# Voice Sampling Methods"); USRobotics: the 56K command reference's +VSM=? example.
CONEXANT_FORMATS = (
    (0, "SIGNED PCM", 8, "signed8"), (1, "UNSIGNED PCM", 8, "unsigned8"), (129, "IMA ADPCM", 4, None),
    (130, "UNSIGNED PCM", 8, "unsigned8"), (131, "Mu-Law", 8, "ulaw"), (132, "A-Law", 8, "alaw"),
    (133, "14 bit PCM", 14, None),
)
USR_FORMATS = (
    (1, "UNSIGNED PCM", 8, "unsigned8"), (128, "8-BIT LINEAR", 8, "unsigned8"), (129, "ADPCM", 4, None),
    (130, "UNSIGNED PCM", 8, "unsigned8"), (131, "ULAW", 8, "ulaw"), (132, "ALAW", 8, "alaw"),
    (133, "LINEAR", 16, "linear16"),
)

PROFILES = {
    "cx93010": {
        "manufacturer": "CONEXANT", "ati": "56000", "ati3": "CX93001-EIS_V0.2002-V92", "revision": "V0.2002",
        "classes": "0,1,1.0,8", "formats": CONEXANT_FORMATS, "rates": "8000", "cid_spaces": True,
        "duplex": True, "loop_events": True, "duplex_ends": "^", "agc_only": True,
    },
    "usr5637": {
        "manufacturer": "U.S. Robotics", "ati": "5601", "ati3": "U.S. Robotics 56K FAX USB V1.2.23",
        "revision": "V1.2.23", "classes": "0,1,1.0,8", "formats": USR_FORMATS, "rates": "(7200,8000)",
        "cid_spaces": False, "duplex": True, "loop_events": False, "duplex_ends": "^\x03", "agc_only": False,
    },
}
HANGUP_SIGNALS = {"busy": "b", "reorder": "K", "dialtone": "d", "loop": "l", "silence": None}


class _LineParty(ModemParty):
    """The voice modem's side of a virtual call: as a GSM modem's, but its key detector wants the call."""

    def on_dtmf(self, call, digit):
        self.modem._far_dtmf(call, digit)


class EmulatedVoiceModem:
    """A V.253 voice modem on one pty, attached to the virtual network under ``number``."""

    family = "voicemodem"

    def __init__(self, network, number, *, profile="cx93010", imei=None, pin=None, ring_interval=5.0,
                 cid_delay=1.5, duplex=None, dtmf_shielding=False, hangup_signal="busy", busy_interval=4.0,
                 dial_tone=True, caller_id_service=True, stubborn_abort=False, names=None, ringback="text"):
        self.network = network
        self.number = number
        self.profile_name = profile
        self.profile = dict(PROFILES[profile])
        if duplex is not None:
            self.profile["duplex"] = duplex
        self.model = self.profile["ati3"]
        self.imei = imei  # an analog modem has none; the twin looks modems up by it
        self.at = PtyPort()
        self.audio = None  # one port: the audio goes over the AT port
        self.ring_interval = ring_interval  # Bulgaria and most of Europe: 1 s ring, 4 s pause
        self.cid_delay = cid_delay  # caller ID comes in the pause after the first ring
        self.dtmf_shielding = dtmf_shielding
        self.hangup_signal = hangup_signal
        self.busy_interval = busy_interval  # ZyXEL: busy is reported again every 4 s
        self.dial_tone = dial_tone
        self.caller_id_service = caller_id_service
        self.stubborn_abort = stubborn_abort  # Zoom/Conexant: the first end-of-stream code is ignored
        self.names = dict(names or {})  # caller names the network sends with caller ID
        self.ringback = ringback  # a dial's ringing: the RINGING result ("text") or <DLE>r ("event")
        self.unavailable = set()  # callers whose number the network cannot give ("NMBR = O")
        self.commands_seen = []
        self.events_sent = []  # every <DLE> code sent to the box, in order
        self.rings_sent = 0
        self.answered_after_rings = None
        self.hook_history = []  # ("off"/"on", monotonic time)
        self.hung = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._timers = []
        self._sequence = itertools.count()
        self._reset()
        network.attach(number, self)
        self._threads = [threading.Thread(target=self._at_loop, name=f"voice-emu-at-{number}", daemon=True),
                         threading.Thread(target=self._line_loop, name=f"voice-emu-line-{number}", daemon=True)]
        for thread in self._threads:
            thread.start()

    # --- what tests and the twin do ------------------------------------------------------

    @property
    def off_hook(self):
        """True while the modem holds the line."""
        return self.hook == "off"

    def hang(self):
        """Stop answering anything until power-cycled."""
        self.hung = True

    def power_cycle(self):
        """Cut power: the call drops, settings reset."""
        with self._lock:
            call, side = self._call, self._side
            self._reset()
        if call is not None:
            call.hangup(side)

    def line_signal(self, code):
        """Something on the line the modem reports as ``<DLE><code>``: "c" a fax calling, "e" a data modem..."""
        with self._lock:
            self._queue_event(code)

    def inject(self, data):
        """Write raw bytes to the box as if the modem sent them (a malformed DLE sequence)."""
        self.at.write(data)

    def incoming(self, call):
        """A call rings this line; False (busy) when the line is in use or the modem hung."""
        with self._lock:
            if self.hung or self._call is not None or self.hook == "off":
                return False
            self._party = _LineParty(self)
            call.attach(self._party)
            self._call, self._side, self._call_state = call, "b", "ringing"
            self.rings_sent = 0
            self.answered_after_rings = None
            self._next_ring = time.monotonic()
        return True

    def close(self):
        """Stop the emulator and close its port; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        call = self._call
        if call is not None:
            call.hangup(self._side)
        self.network.detach(self.number)
        for thread in self._threads:
            thread.join(timeout=2)
        self.at.close()

    # --- state -----------------------------------------------------------------------------

    def _reset(self):
        self.echo = True
        self.fclass = "0"
        self.vcid = 0
        self.vsm = (1, 8000)  # the Conexant manual's +VSM? default: 1,8000,0,0
        self.vsd = (128, 0)
        self.vra = 50  # tenths of a second after ringback before the far end counts as answered
        self.hook = "on"
        self.stream = None
        self.settings = {}
        self._call, self._side, self._party, self._call_state = None, None, None, "idle"
        self._dialing = False
        self._events = bytearray()
        self._uplink = bytearray()
        self._dte_dle = False
        self._aborts_ignored = 0
        self._next_ring = None
        self._next_signal = None
        self._signal = None
        self._starting = None
        self._silence = {"frames": 0, "voice": False, "reported": False}
        self._timers = []

    def _format(self):
        code = self.vsm[0]
        entry = next((f for f in self.profile["formats"] if f[0] == code), None)
        return (entry[3] if entry else None) or "unsigned8"

    # --- the port --------------------------------------------------------------------------

    def _at_loop(self):
        buffer = b""
        while not self._stop.is_set():
            data = self.at.read(0.05)
            if not data or self.hung:
                continue
            with self._lock:
                if self._dialing:
                    self._abort_dial()
                    continue
                if self.stream is not None:
                    data = self._stream_in(data)
                    if not data:
                        continue
                if self.echo:
                    self.at.write(data)
            buffer = self._take(buffer + data)

    def _take(self, buffer):
        while b"\r" in buffer:
            line, buffer = buffer.split(b"\r", 1)
            line = line.strip(b"\n").decode("latin-1").strip()
            if line:
                self._answer(line)
        return buffer[-256:]

    def _answer(self, line):
        with self._lock:
            self.commands_seen.append(line)
            if not line.upper().startswith("AT"):
                return  # V.250: nothing happens until "AT" (the box's stale abort codes land here)
            info, final = [], "OK"
            for body in _split_commands(line[2:]):
                lines, final = self._execute(body.strip())
                info += lines
                if final != "OK":
                    break
            if final is None:
                return  # a dial: its result comes later
            if final == "CONNECT":  # audio begins right after CONNECT (the clock waits for the lock)
                self.stream = self._starting
                self._silence = {"frames": 0, "voice": False, "reported": False}
            for text in info:
                self._send_line(text)
            self._send_line(final)

    def _execute(self, body):
        upper = body.upper()
        for pattern, handler in self._commands():
            match = re.fullmatch(pattern, upper)
            if match:
                return handler(body, *match.groups())
        return [], "ERROR"

    def _commands(self):
        voice = self._voice
        return (
            (r"", lambda body: ([], "OK")),
            (r"Z|&F", self._atz),
            (r"E([01])", self._echo),
            (r"V1|Q0|X\d|M\d|L\d|S\d+=\d+|&[CDK]\d", lambda body, *_: ([], "OK")),
            (r"I0?", lambda body: ([self.profile["ati"]], "OK")),
            (r"I3", lambda body: ([self.profile["ati3"]], "OK")),
            (r"\+GMI", lambda body: ([self.profile["manufacturer"]], "OK")),
            (r"\+GMM", lambda body: ([self.profile["ati3"]], "OK")),
            (r"\+GMR", lambda body: ([self.profile["revision"]], "OK")),
            (r"\+FCLASS=\?", lambda body: ([self.profile["classes"]], "OK")),
            (r"\+FCLASS\?", lambda body: ([self.fclass], "OK")),
            (r"\+FCLASS=(0|1|1\.0|2|8)", self._fclass),
            (r"\+VCID=\?", voice(lambda body: (["(0-2)"], "OK"))),
            (r"\+VCID\?", voice(lambda body: ([str(self.vcid)], "OK"))),
            (r"\+VCID=([0-2])", voice(self._vcid)),
            (r"\+VSM=\?", voice(lambda body: (self._vsm_list(), "OK"))),
            (r"\+VSM\?", voice(lambda body: ([f"{self.vsm[0]},{self.vsm[1]},0,0"], "OK"))),
            (r"\+VSM=(\d+)(?:,(\d+))?(?:,\d+)*", voice(self._vsm)),
            (r"\+VLS=\?", voice(lambda body: (["0,1"], "OK"))),
            (r"\+VLS\?", voice(lambda body: (["1" if self.off_hook else "0"], "OK"))),
            (r"\+VLS=([01])", voice(self._vls)),
            (r"\+VSD=(\d+),(\d+)", voice(self._vsd)),
            (r"\+VGR=(\d+)", voice(self._vgr)),
            (r"\+VRA=(\d+)", voice(self._vra)),
            (r"\+V(?:IT|GT|RN|NH|TD|IP|DR)(?:=[\d,]*)?|\+IFC=[\d,]+", voice(self._store)),
            (r"\+VTS=(.+)", voice(self._vts)),
            (r"\+VTR", voice(lambda body: self._connect("duplex"))),
            (r"\+VRX", voice(lambda body: self._connect("receive"))),
            (r"\+VTX", voice(lambda body: self._connect("transmit"))),
            (r"A", voice(lambda body: self._vls(body, "1"))),
            (r"H0?", lambda body: self._vls(body, "0")),
            (r"D[TP]?(.+)", voice(self._atd)),
        )

    def _voice(self, handler):
        """V.253 commands answer ERROR outside voice mode (USRobotics reference: "if not in Voice Mode")."""
        def run(body, *groups):
            return handler(body, *groups) if self.fclass == "8" else ([], "ERROR")
        return run

    def _atz(self, body):
        call, side = self._call, self._side
        self._reset()
        if call is not None:
            call.hangup(side)
        return [], "OK"

    def _echo(self, body, flag):
        self.echo = flag == "1"
        return [], "OK"

    def _fclass(self, body, value):
        self.fclass = "8" if value == "8" else value
        return [], "OK"

    def _vcid(self, body, value):
        self.vcid = int(value)
        return [], "OK"

    def _vsm_list(self):
        rates = self.profile["rates"]
        tail = "(0),(0)" if rates.startswith("(") else "0,0"
        return [f'{code},"{name}",{bits},0,{rates},{tail}' for code, name, bits, _ in self.profile["formats"]]

    def _vsm(self, body, code, rate):
        if int(code) not in [f[0] for f in self.profile["formats"]] or (rate and int(rate) not in (7200, 8000)):
            return [], "ERROR"
        self.vsm = (int(code), int(rate or 8000))
        return [], "OK"

    def _vsd(self, body, sds, sdi):
        self.vsd = (int(sds), int(sdi))
        return [], "OK"

    def _vgr(self, body, value):
        if self.profile["agc_only"] and value != "0":
            return [], "ERROR"  # the Conexant takes only automatic gain (its manual, via a modem project's notes)
        self.settings["VGR"] = value
        return [], "OK"

    def _vra(self, body, value):
        self.vra = int(value)
        return [], "OK"

    def _store(self, body, *_):
        name, _, value = body.upper().partition("=")
        self.settings[name.lstrip("+")] = value
        return [], "OK"

    def _vls(self, body, value):
        if value == "0":
            self._on_hook()
            return [], "OK"
        self.hook = "off"
        self.hook_history.append(("off", time.monotonic()))
        if self._call_state == "ringing":
            self.answered_after_rings = self.rings_sent
            if self._call.answer():
                self._call_state = "active"
            else:
                self._drop_call()
        return [], "OK"

    def _on_hook(self):
        call, side = self._call, self._side
        if self.hook == "off":
            self.hook_history.append(("on", time.monotonic()))
        self.hook = "on"
        self._drop_call()
        if call is not None and call.state != "ended":
            call.hangup(side)

    def _drop_call(self):
        self._call, self._side, self._party, self._call_state = None, None, None, "idle"
        self._next_signal = None

    def _connect(self, kind):
        if not self.off_hook or (kind == "duplex" and not self.profile["duplex"]):
            return [], "ERROR"
        self._starting = kind
        self._uplink.clear()
        self._dte_dle = False
        return [], "CONNECT"

    def _vts(self, body, digits):
        if self._call_state != "active":
            return [], "ERROR"
        for digit in re.findall(r"[0-9*#A-D]", digits.split("[")[0] if "[" in digits else digits):
            self._call.dtmf(self._side, digit)
        return [], "OK"

    # --- dialling ---------------------------------------------------------------------------

    def _atd(self, body, number):
        number = number.strip().rstrip(";")
        self.hook = "off"
        self.hook_history.append(("off", time.monotonic()))
        if not self.dial_tone:
            self._later(0.3, self._dial_result, "NO DIALTONE")
            self._dialing = True
            return [], None
        party = _LineParty(self)
        try:
            call = self.network.dial(self.number, number, party)
        except NumberBusy:
            self._later(0.3, self._dial_result, "BUSY")
            self._dialing = True
            return [], None
        except NetworkError:
            self._later(0.3, self._dial_result, "NO CARRIER")
            self._dialing = True
            return [], None
        self._call, self._side, self._party, self._call_state = call, "a", party, "dialing"
        self._dialing = True
        self._later(0.2, self._ringing, call)
        return [], None

    def _ringing(self, call):
        if call is self._call and self._call_state == "dialing" and call.state == "ringing":
            if self.ringback == "event":
                self._queue_event("r")  # V.253 event 18, ringing tone
            else:
                self._send_line("RINGING")

    def _dial_result(self, result):
        """The dial's final result; on anything but VCON the modem is back on hook."""
        if not self._dialing:
            return
        self._dialing = False
        if result != "VCON":
            call = self._call
            self.hook = "on"
            self.hook_history.append(("on", time.monotonic()))
            self._drop_call()
            if call is not None and call.state != "ended":
                call.hangup("a")
        self._send_line(result)

    def _abort_dial(self):
        """V.250 6.3.1: a character from the DTE while dialling aborts it."""
        self._dial_result("NO CARRIER")

    def _far_answered(self, call):
        with self._lock:
            if call is self._call and self._call_state == "dialing":
                self._later(self.vra / 10, self._answered, call)

    def _answered(self, call):
        if call is self._call and self._call_state == "dialing" and call.state == "active":
            self._call_state = "active"
            self._dial_result("VCON")

    # --- the network side -----------------------------------------------------------------

    def _far_ended(self, call, by):
        with self._lock:
            if call is not self._call or by == self._side:
                return
            if self._dialing:
                cause = call.end_cause or "remote"
                self._dial_result({"busy": "BUSY", "no answer": "NO ANSWER"}.get(cause, "NO CARRIER"))
            elif self._call_state == "ringing":
                self._drop_call()  # the caller gave up: the rings just stop
            else:
                # An analog line says nothing: the exchange gives busy tone (or reorder, a loop
                # current break, dial tone, or only silence) and the modem reports what it hears.
                self._call_state = "gone"
                signal = HANGUP_SIGNALS[self.hangup_signal]
                if signal == "l" and not self.profile["loop_events"]:
                    signal = "b"  # the USRobotics does not report loop current (a modem project's notes)
                self._signal = signal
                self._next_signal = time.monotonic() + (0.2 if signal == "l" else 0.5) if signal else None

    def _far_dtmf(self, call, digit):
        with self._lock:
            if call is not self._call:
                return
            if self.off_hook and self._call_state in ("dialing", "active"):
                self._queue_dtmf(digit)  # the modem hears the tone even before it says VCON

    def _queue_dtmf(self, digit):
        codes = "/" + digit + "~" if self.dtmf_shielding else digit
        for code in codes:
            self._queue_event(code)

    def _queue_event(self, code):
        self._events += b"\x10" + code.encode("latin-1")
        self.events_sent.append(code)

    # --- the box's bytes while a stream is open ----------------------------------------------

    def _stream_in(self, data):
        """Take the box's audio and shielded codes; return text that follows the stream's end."""
        view = bytes(data)
        while view:
            if self._dte_dle:
                self._dte_dle = False
                code, view = view[0], view[1:]
                if self._ends_stream(code):
                    return view
                if code == DLE and self.stream != "receive":
                    self._uplink.append(DLE)
                elif code == CAN:
                    self._uplink.clear()
                continue
            cut = view.find(b"\x10")
            chunk = view if cut < 0 else view[:cut]
            if self.stream != "receive":
                self._uplink += chunk  # in receive state the box sends only shielded codes
            if cut < 0:
                break
            self._dte_dle = True
            view = view[cut + 1:]
        return b""

    def _ends_stream(self, code):
        char = chr(code)
        ends = {"duplex": self.profile["duplex_ends"], "receive": "!", "transmit": "\x03"}[self.stream]
        if char not in ends:
            return False
        if self.stubborn_abort and self._aborts_ignored == 0:
            self._aborts_ignored += 1
            return False
        self._aborts_ignored = 0
        kind, self.stream = self.stream, None
        self._uplink.clear()
        self.at.write((b"" if kind == "transmit" else b"\x10\x03") + b"\r\nOK\r\n")
        return True

    # --- the 20 ms line clock --------------------------------------------------------------

    def _line_loop(self):
        for _ in frame_deadlines(self._stop, resync_after=0.2):
            try:
                self._tick()
            except Exception:  # the emulator's clock must keep running
                log.exception("voice modem emulator %s: tick failed", self.number)

    def _tick(self):
        now = time.monotonic()
        with self._lock:
            if self.hung:
                return
            self._run_timers(now)
            self._ring_tick(now)
            self._signal_tick(now)
            payload = self._audio_tick()
            if self._events:
                payload += bytes(self._events)
                self._events.clear()
            if payload:
                self.at.write(payload)

    def _ring_tick(self, now):
        if self._call_state != "ringing" or self._next_ring is None or now < self._next_ring:
            return
        self._next_ring = now + self.ring_interval
        self.rings_sent += 1
        self._send_line("RING")
        if self.rings_sent == 1 and self.vcid and self.caller_id_service:
            self._later(self.cid_delay, self._caller_id, self._call)

    def _caller_id(self, call):
        """The caller ID block between the first and second ring, in two writes split mid-line."""
        if call is not self._call or self._call_state != "ringing":
            return
        stamp = time.localtime()
        number = call.caller
        shown = "O" if number in self.unavailable else (number or "P")
        fields = [("DATE", time.strftime("%m%d", stamp)), ("TIME", time.strftime("%H%M", stamp)), ("NMBR", shown)]
        if number and number in self.names:
            fields.append(("NAME", self.names[number]))
        equals = " = " if self.profile["cid_spaces"] else "="
        text = "".join(f"\r\n{tag}{equals}{value}\r\n" for tag, value in fields).encode("latin-1")
        half = len(text) // 2
        self.at.write(text[:half])
        self._later(0.05, self.at.write, text[half:])

    def _signal_tick(self, now):
        """Off hook with nobody there: report what the exchange plays on the line."""
        if not self.off_hook or self._dialing:
            return
        if self._call is None and self._next_signal is None and self.dial_tone:
            self._signal, self._next_signal = "d", now + 0.5  # off hook and no call: dial tone
        if self._next_signal is None or now < self._next_signal or self._signal is None:
            return
        self._queue_event(self._signal)
        if self._signal == "l":
            self._signal = "b"  # after the loop break, the exchange's busy tone
        self._next_signal = now + self.busy_interval

    def _audio_tick(self):
        """Move one frame each way while a call is up; return the bytes for the box."""
        call, stream = self._call, self.stream
        if stream is None:
            return b""
        kind = self._format()
        width = 2 if kind == "linear16" else 1
        uplink = SILENCE
        if stream != "receive" and len(self._uplink) >= FRAME_SAMPLES * width:
            uplink = self._decode(kind, bytes(self._uplink[:FRAME_SAMPLES * width]))
            del self._uplink[:FRAME_SAMPLES * width]
            backlog = len(self._uplink) - 10 * FRAME_SAMPLES * width
            if backlog > 0:
                del self._uplink[:backlog]  # more than 200 ms queued: the box is ahead of the line
        downlink = SILENCE
        if call is not None and self._call_state == "active" and call.state == "active":
            reply = call.exchange(self._side, uplink)
            if reply is not None:
                self._party.downlink.append(reply)
            if self._party.downlink:
                downlink = self._party.downlink.popleft()
        if stream == "transmit":
            return b""
        self._detect_silence(downlink)
        return self._encode(kind, downlink).replace(b"\x10", b"\x10\x10")

    def _detect_silence(self, frame):
        """+VSD <sdi> tenths of silence: 's' if no voice came first, else 'q' (V.253 7.7)."""
        sdi = self.vsd[1]
        state = self._silence
        if frame_level(frame) > 300:
            state.update(frames=0, voice=True, reported=False)
            return
        state["frames"] += 1
        if sdi and not state["reported"] and state["frames"] * FRAME_SECONDS * 10 >= sdi:
            state["reported"] = True
            self._queue_event("q" if state["voice"] else "s")

    @staticmethod
    def _encode(kind, pcm):
        if kind == "linear16":
            return pcm
        if kind == "ulaw":
            return audioop.lin2ulaw(pcm, 2)
        if kind == "alaw":
            return audioop.lin2alaw(pcm, 2)
        signed = audioop.lin2lin(pcm, 2, 1)
        return audioop.bias(signed, 1, 128) if kind == "unsigned8" else signed

    @staticmethod
    def _decode(kind, data):
        if kind == "linear16":
            return data
        if kind == "ulaw":
            return audioop.ulaw2lin(data, 2)
        if kind == "alaw":
            return audioop.alaw2lin(data, 2)
        signed = audioop.bias(data, 1, -128) if kind == "unsigned8" else data
        return audioop.lin2lin(signed, 1, 2)

    # --- small helpers ----------------------------------------------------------------------

    def _later(self, delay, action, *args):
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._sequence), action, args))

    def _run_timers(self, now):
        while self._timers and self._timers[0][0] <= now:
            _, _, action, args = heapq.heappop(self._timers)
            action(*args)

    def _send_line(self, text):
        self.at.write(f"\r\n{text}\r\n".encode("latin-1"))
