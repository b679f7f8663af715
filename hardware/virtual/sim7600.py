"""An emulated SIMCom SIM7600 on two pseudo-terminals: the AT port and the PCM port.

It answers the way the real module does (SIM7600 AT command manual, and the logs that
../shared/MODEMS.md cites): echo on until ``ATE0``, ``RING`` then ``+CLIP`` repeated
while a call rings, ``VOICE CALL: BEGIN`` / ``VOICE CALL: END: hhmmss`` and
``NO CARRIER``, ``MISSED_CALL:`` for a call that gave up, ``+RXDTMF: d``, and call audio
on the second port (8 kHz 16-bit, 320 bytes per 20 ms) only while ``AT+CPCMREG=1``.
"""
import collections
import logging
import re
import threading
import time

from .network import SILENCE, FRAME_BYTES, NetworkError, NumberBusy, Party
from .pty import PtyPort

log = logging.getLogger(__name__)

RING_INTERVAL = 3.0
TICK = 0.020


class _ModemParty(Party):
    """The modem's side of a virtual call; its PCM clock pushes audio."""

    clocked = True

    def __init__(self, modem):
        self.modem = modem
        self.downlink = collections.deque(maxlen=10)

    def on_answered(self, call):
        self.modem._far_answered(call)

    def on_ended(self, call, by):
        self.modem._far_ended(call, by)

    def on_dtmf(self, call, digit):
        self.modem._urc(f"+RXDTMF: {digit}")

    def hear(self, frame):
        self.downlink.append(frame)


class Sim7600Emulator:
    """A SIM7600 module attached to a virtual network under ``number``."""

    model = "SIMCOM_SIM7600E-H"

    def __init__(self, network, number, *, imei="861234567890123", operator="VIRTUAL GSM", rssi=20):
        self.network = network
        self.number = number
        self.imei = imei
        self.operator = operator
        self.rssi = rssi
        self.at = PtyPort()
        self.pcm = PtyPort()
        self.echo = True
        self.hung = False
        self.commands_seen = []
        self._call = None
        self._side = None
        self._party = None
        self._call_state = "idle"
        self._answered_at = None
        self._pcm_on = False
        self._mid_response_urcs = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._at_loop, name=f"emu-at-{number}", daemon=True),
            threading.Thread(target=self._pcm_loop, name=f"emu-pcm-{number}", daemon=True),
            threading.Thread(target=self._ring_loop, name=f"emu-ring-{number}", daemon=True),
        ]
        network.attach(number, self)
        for thread in self._threads:
            thread.start()

    # --- the network side -------------------------------------------------------

    def incoming(self, call):
        """A call from the network rings this modem; False when the modem is busy."""
        with self._lock:
            if self._call is not None or self.hung:
                return False
            self._party = _ModemParty(self)
            call.attach(self._party)
            self._call, self._side, self._call_state = call, "b", "ringing"
            self._ring_once()
        return True

    def inject_mid_response(self, urc):
        """Make the next command's answer carry ``urc`` between its lines and its OK."""
        self._mid_response_urcs.append(urc)

    def close(self):
        """Stop the emulator and close its ports; safe to call twice."""
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
        self.pcm.close()

    def _far_answered(self, call):
        with self._lock:
            if call is self._call and self._call_state == "dialing":
                self._start_active()

    def _far_ended(self, call, by):
        with self._lock:
            if call is not self._call or by == self._side:
                return
            state = self._call_state
            self._clear_call()
        if state == "ringing":
            self._urc(f"MISSED_CALL: {time.strftime('%I:%M%p')} {call.caller}")
        elif state == "active":
            self._urc(f"VOICE CALL: END: {self._duration()}")
            self._urc("NO CARRIER")
        elif state == "dialing":
            self._urc("NO CARRIER")

    # --- the AT port ------------------------------------------------------------

    def _at_loop(self):
        buffer = b""
        while not self._stop.is_set():
            data = self.at.read(0.1)
            if not data or self.hung:
                continue
            if self.echo:
                self.at.write(data)
            buffer += data
            while b"\r" in buffer:
                line, buffer = buffer.split(b"\r", 1)
                line = line.strip(b"\n").decode("latin-1").strip()
                if line:
                    self._answer(line)

    def _answer(self, line):
        self.commands_seen.append(line)
        upper = line.upper()
        if not upper.startswith("AT"):
            return self._send_final("ERROR")
        body = line[2:]
        try:
            info, final = self._execute(body)
        except _ModemError as err:
            info, final = [], str(err)
        for text in info:
            self._send_line(text)
        while self._mid_response_urcs:
            self._send_line(self._mid_response_urcs.pop(0))
        self._send_final(final)

    def _execute(self, body):
        upper = body.upper()
        if upper == "":
            return [], "OK"
        if upper in ("E0", "E1"):
            self.echo = upper == "E1"
            return [], "OK"
        if upper in ("I", "+CGMM", "+CGMR", "+CGSN", "+CGMI"):
            return self._identity(upper), "OK"
        if upper == "+CSQ":
            return [f"+CSQ: {self.rssi},99"], "OK"
        if upper == "+CREG?":
            return ["+CREG: 0,1"], "OK"
        if upper == "+COPS?":
            return [f'+COPS: 0,0,"{self.operator}",7'], "OK"
        if upper == "+CPIN?":
            return ["+CPIN: READY"], "OK"
        if upper == "+CLCC":
            return self._clcc(), "OK"
        if upper == "A":
            return self._ata()
        if upper in ("+CHUP", "H", "H0"):
            return self._chup()
        if upper.startswith("D"):
            return self._atd(body[1:])
        if upper.startswith("+VTS="):
            return self._vts(body[5:])
        if upper.startswith("+CPCMREG="):
            return self._cpcmreg(upper[9:])
        if re.fullmatch(r"\+(CMEE|CLIP|CVHU|CLCC|DDET|CRC)=[0-9,]+|Z|\+CLTS=[01]", upper):
            return [], "OK"
        return [], "ERROR"

    def _identity(self, upper):
        if upper == "I":
            return ["Manufacturer: SIMCOM INCORPORATED", f"Model: {self.model}",
                    "Revision: LE20B04SIM7600M22", f"IMEI: {self.imei}", "+GCAP: +CGSM"]
        return {"+CGMM": [self.model], "+CGMR": ["+CGMR: LE20B04SIM7600M22"],
                "+CGSN": [self.imei], "+CGMI": ["SIMCOM INCORPORATED"]}[upper]

    def _clcc(self):
        """The current call as +CLCC lists it (3GPP TS 27.007 7.18), if there is one."""
        with self._lock:
            call, state = self._call, self._call_state
            if call is None:
                return []
            direction = 1 if self._side == "b" else 0
            stat = {"active": 0, "dialing": 2, "ringing": 4}[state]
            number = call.caller if direction else call.callee
        return [f'+CLCC: 1,{direction},{stat},0,0,"{number}",145']

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
        with self._lock:
            call, side, state = self._call, self._side, self._call_state
            self._clear_call()
        info = [f"VOICE CALL: END: {self._duration()}"] if state == "active" else []
        if call is not None:
            call.hangup(side)
        return info, "OK"

    def _atd(self, rest):
        number = rest.rstrip(";").strip()
        with self._lock:
            if self._call is not None:
                return [], "ERROR"
            self._party = _ModemParty(self)
            self._call_state = "dialing"
        try:
            call = self.network.dial(self.number, number, self._party)
        except NetworkError as err:
            final = "BUSY" if isinstance(err, NumberBusy) else "NO CARRIER"
            with self._lock:
                self._clear_call()
            threading.Timer(0.2, self._urc, args=(final,)).start()
            return [], "OK"
        with self._lock:
            if self._call_state == "dialing" and self._call is None:
                self._call, self._side = call, "a"
            if call.state == "active" and self._call_state == "dialing":
                self._start_active()
        return [], "OK"

    def _vts(self, digits):
        digit = digits.strip().strip('"')
        if self._call_state != "active" or not digit:
            raise _ModemError("+CME ERROR: 3")
        self._call.dtmf(self._side, digit[0])
        return [], "OK"

    def _cpcmreg(self, arg):
        if arg == "1":
            if self._call_state != "active":
                raise _ModemError("+CME ERROR: 3")
            self._pcm_on = True
        elif arg == "0":
            self._pcm_on = False
        else:
            raise _ModemError("ERROR")
        return [], "OK"

    def _start_active(self):
        self._call_state = "active"
        self._answered_at = time.monotonic()
        self._urc("VOICE CALL: BEGIN")

    def _clear_call(self):
        self._call, self._side, self._party = None, None, None
        self._call_state = "idle"
        self._pcm_on = False

    def _duration(self):
        seconds = int(time.monotonic() - self._answered_at) if self._answered_at else 0
        return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"

    def _ring_once(self):
        self._urc("RING")
        self._urc(f'+CLIP: "{self._call.caller}",145,"",0,"",0')

    def _ring_loop(self):
        while not self._stop.wait(RING_INTERVAL):
            with self._lock:
                if self._call_state == "ringing":
                    self._ring_once()

    def _urc(self, text):
        if not self.hung:
            self.at.write(f"\r\n{text}\r\n".encode("latin-1"))

    def _send_line(self, text):
        self.at.write(f"\r\n{text}\r\n".encode("latin-1"))

    def _send_final(self, text):
        self._send_line(text)

    # --- the PCM port -----------------------------------------------------------

    def _pcm_loop(self):
        received = b""
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += TICK
            received += self.pcm.read(max(0.0, deadline - time.monotonic()))
            while time.monotonic() < deadline:
                received += self.pcm.read(max(0.0, deadline - time.monotonic()))
            if time.monotonic() - deadline > 0.2:
                deadline = time.monotonic()  # we were stalled: do not burst to catch up
            received = self._pcm_tick(received)

    def _pcm_tick(self, received):
        """Move one frame each way; return what is left of the engine's bytes."""
        with self._lock:
            call, side, party, on = self._call, self._side, self._party, self._pcm_on
        if not (on and call is not None and call.state == "active"):
            return b""
        uplink = SILENCE
        if len(received) >= FRAME_BYTES:
            uplink, received = received[:FRAME_BYTES], received[FRAME_BYTES:]
        reply = call.exchange(side, uplink)
        if reply is not None:
            party.downlink.append(reply)
        self.pcm.write(party.downlink.popleft() if party.downlink else SILENCE)
        backlog = len(received) // FRAME_BYTES - 5
        return received[backlog * FRAME_BYTES:] if backlog > 0 else received


class _ModemError(Exception):
    """An AT command's error result."""
