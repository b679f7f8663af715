"""Analog phone lines through an ITU-T V.253 voice modem (Conexant CX93010 class, USRobotics 5637).

The modem has one serial port. In command state it speaks AT like any modem; once
``AT+VTR`` (or ``AT+VRX`` / ``AT+VTX``) answers ``CONNECT`` the same port carries audio
both ways, with every 0x10 byte doubled and events shielded as ``<DLE><code>``
(V.253 clause 7, events, and 8.3). ``DleStream`` sits in front of the AT channel's line splitter: it takes
the events (DTMF, busy, dial tone, silence, ringback...) out of whatever the modem sends,
hands received audio to ``VoiceAudio`` and passes only text on.

The line counts rings, reads caller ID between the first and second ring (+VCID),
picks the best sample format the modem lists (+VSM=?), answers by going off hook
(+VLS=1) and streaming full duplex where the modem has +VTR, else switching between
receive and transmit as the engine has something to say. An analog line has no clean
"caller hung up" report, so the line also ends a call on busy / reorder / dial tone,
loop-current loss, a long silence, and a maximum length, and goes back on hook itself.
docs/analog.md names the V.253 clauses and the public logs each behaviour follows.
"""
import logging
import re
import threading
import time
from dataclasses import dataclass

import numpy as np

from .at import FINAL_OK, URC_PREFIXES, ATChannel
from .errors import ATCommandError, ATTimeout, FirmwareError, LineStateError, PortClosed
from .frames import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, FramedAudio
from .gsm import ACTIVE, ALERTING, DIALING, IDLE, RINGING, LineEvent

log = logging.getLogger(__name__)

DLE, ETX, SUB, CR, LF = 0x10, 0x03, 0x1A, 0x0D, 0x0A

# Final results of a voice modem's commands: CONNECT starts a stream (V.253 10.1.3-10.1.6),
# VCON ends a voice dial that was answered (mgetty's IS_101_dial accepts VCON or OK).
VOICE_OK = FINAL_OK + ("VCON", "CONNECT")
CALLER_ID_TAGS = ("DATE", "TIME", "NMBR", "NAME", "MESG", "DDN_NMBR")
VOICE_URCS = URC_PREFIXES + CALLER_ID_TAGS

# <DLE> codes a DCE sends to the DTE: V.253 clause 7, the USRobotics 56K command reference
# (Table 6-2), Conexant's and ZyXEL's voice tables, and mgetty's IS_101_handle_dle.
EVENTS = {
    "R": "ring", "r": "ringback", "b": "busy", "K": "reorder", "d": "dialtone", "i": "dialtone",
    "l": "loop", "L": "polarity", "J": "sit", "s": "silence", "q": "quiet", "c": "fax calling",
    "m": "fax calling", "e": "data calling", "f": "data answer", "a": "answer tone", "h": "handset on hook",
    "H": "handset off hook", "p": "extension on hook", "P": "extension off hook", "o": "overrun",
    "u": "underrun", "t": "tdd", "T": "timing mark", "v": "voice", "V": "voice", "w": "call waiting",
    "$": "bong", "Y": "lost data", "E": "invalid format", "/": "dtmf start", "~": "dtmf end",
}
DTMF_DIGITS = "0123456789*#ABCD"
# Events that mean the far end has gone on a line without a clean hang-up signal.
HANGUP_EVENTS = {"busy": "busy tone", "reorder": "reorder tone", "dialtone": "dial tone",
                 "loop": "loop current lost", "sit": "special information tone"}
# A fax machine or a data modem on the line: no person will speak, so the box ends the call.
MACHINE_EVENTS = {"fax calling": "a fax machine is calling", "data calling": "a data modem is calling"}

# Shielded codes the DTE sends to end each stream: <DLE>^ ends duplex (Conexant and
# USRobotics +VTR texts), <DLE>! aborts a receive, <DLE><ETX> ends a transmit (IS-101).
STREAM_COMMANDS = {"duplex": "AT+VTR", "receive": "AT+VRX", "transmit": "AT+VTX"}
STREAM_ENDS = {"duplex": "\x10^", "receive": "\x10!", "transmit": "\x10\x03"}

SILENCE_LEVEL = 200  # peak of a 16-bit frame below which it counts as silence (about -44 dBFS)
TALK_LEVEL = 300  # half duplex: an outgoing frame louder than this needs the transmit state
TALK_HOLD_SECONDS = 0.6  # half duplex: quiet this long and the line listens again
MODEM_SILENCE_MAX = 25.5  # +VSD <sdi> counts tenths of a second up to 255 (V.253 10.2.7)


# --- sample formats (V.253 10.2.8 +VSM) -------------------------------------------------

@dataclass(frozen=True)
class VoiceFormat:
    """One compression method a modem lists in ``AT+VSM=?``."""

    code: int
    name: str
    bits: int
    rates: tuple
    kind: str | None  # linear16, ulaw, alaw, unsigned8, signed8; None when we cannot use it

    @property
    def sample_bytes(self):
        """Bytes per sample on the wire."""
        return 2 if self.kind == "linear16" else 1

    @property
    def byte_rate(self):
        """Bytes per second at 8 kHz: 16000 for 16-bit, 8000 for the 8-bit formats."""
        return SAMPLE_RATE * self.sample_bytes

    def describe(self):
        """``131 Mu-Law (8-bit)`` for logs and the probe."""
        return f"{self.code} {self.name} ({self.bits}-bit)"


PREFERENCE = ("linear16", "ulaw", "alaw", "unsigned8", "signed8")
_VSM_LINE = re.compile(r'^(?:\+VSM:\s*)?(\d+)\s*,\s*"([^"]*)"\s*,\s*(\d+)\s*,\s*\d+\s*,\s*(\([^)]*\)|[\d\-]+)')


def parse_formats(lines):
    """The formats of an ``AT+VSM=?`` answer (``131,"Mu-Law",8,0,8000,0,0`` or with ranges)."""
    formats = []
    for line in lines:
        match = _VSM_LINE.match(line.strip())
        if not match:
            continue
        code, name, bits, rates = int(match[1]), match[2].strip(), int(match[3]), _rates(match[4])
        formats.append(VoiceFormat(code, name, bits, rates, _kind(name, bits)))
    return formats


def choose_format(formats):
    """The best usable 8 kHz format: 16-bit linear, then mu-law, A-law, 8-bit linear; or None."""
    usable = [f for f in formats if f.kind and SAMPLE_RATE in f.rates]
    if not usable:
        return None
    return min(usable, key=lambda f: (PREFERENCE.index(f.kind), f.code))


def _rates(text):
    rates = []
    for part in text.strip("()").split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit() and high.isdigit():
            rates += [SAMPLE_RATE] if int(low) <= SAMPLE_RATE <= int(high) else []
        elif low.isdigit():
            rates.append(int(low))
    return tuple(rates)


def _kind(name, bits):
    """What a method's name and bits mean; names differ by vendor (NCID's and USRobotics' lists)."""
    plain = re.sub(r"[^A-Z0-9]", "", name.upper())
    if bits == 8 and ("ULAW" in plain or "G711U" in plain):
        return "ulaw"
    if bits == 8 and ("ALAW" in plain or "G711A" in plain):
        return "alaw"
    if bits == 16 and ("LINEAR" in plain or "PCM" in plain):
        return "linear16"
    if bits == 8 and (plain.startswith("UNSIGNEDPCM") or "LINEAR" in plain):
        return "unsigned8"  # "8-BIT LINEAR" is offset binary on the USRobotics (pstnxsip's notes)
    if bits == 8 and plain.startswith("SIGNEDPCM"):
        return "signed8"
    return None  # ADPCM, CELP, Conexant's "14 bit PCM": not worth the risk


# --- G.711 and linear conversions (numpy lookup tables, built once) ----------------------

def _ulaw_decode_table():
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype("<i2")


def _alaw_decode_table():
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a & 0x70) >> 4
    magnitude = ((a & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(a & 0x80, magnitude, -magnitude).astype("<i2")


def _ulaw_encode_table():
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(pcm < 0, -pcm, pcm), 8159) + (0x84 >> 2)
    segment = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), magnitude)
    value = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    return (np.where(segment >= 8, 0x7F, value) ^ mask).astype(np.uint8)


def _alaw_encode_table():
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    segment = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), magnitude)
    shift = np.where(segment < 2, 1, segment)
    value = (segment << 4) | ((magnitude >> shift) & 0x0F)
    return (np.where(segment >= 8, 0x7F, value) ^ mask).astype(np.uint8)


ULAW_DECODE, ALAW_DECODE = _ulaw_decode_table(), _alaw_decode_table()
ULAW_ENCODE, ALAW_ENCODE = _ulaw_encode_table(), _alaw_encode_table()


def decode(kind, data):
    """Samples of ``kind`` (bytes, whole samples) as 16-bit little-endian PCM."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if kind == "linear16":
        return bytes(data)
    if kind == "ulaw":
        return ULAW_DECODE[raw].tobytes()
    if kind == "alaw":
        return ALAW_DECODE[raw].tobytes()
    if kind == "unsigned8":
        return ((raw.astype(np.int16) - 128) << 8).astype("<i2").tobytes()
    return (raw.view(np.int8).astype(np.int16) << 8).astype("<i2").tobytes()


def encode(kind, pcm):
    """16-bit little-endian PCM as samples of ``kind``."""
    if kind == "linear16":
        return bytes(pcm)
    samples = np.frombuffer(pcm, dtype="<i2")
    if kind == "ulaw":
        return ULAW_ENCODE[samples.astype(np.int32) + 32768].tobytes()
    if kind == "alaw":
        return ALAW_ENCODE[samples.astype(np.int32) + 32768].tobytes()
    high = (samples >> 8).astype(np.int16)
    return ((high + 128) if kind == "unsigned8" else (high & 0xFF)).astype(np.uint8).tobytes()


def shield(data):
    """Double every DLE in outgoing audio (V.253 8.3: <DLE><DLE> is one 0x10 in the data)."""
    return data.replace(b"\x10", b"\x10\x10")


def peak(frame):
    """Peak absolute sample of a 16-bit frame (0 for None)."""
    if not frame:
        return 0
    return int(np.abs(np.frombuffer(frame, dtype="<i2").astype(np.int32)).max())


# --- the byte stream from the modem -------------------------------------------------------

@dataclass(frozen=True)
class DleEvent:
    """A shielded event from the modem: ``code`` as sent, ``name`` from EVENTS."""

    code: str
    name: str
    text: str = ""  # a complex report's body, or for "end" whether the DTE asked for it
    requested: bool = False


class DleStream:
    """Splits a voice modem's byte stream into text lines, DLE events and received audio.

    Fed by the AT channel's reader thread with every chunk read; returns the bytes the
    line splitter should see. In receive mode (after CONNECT to +VRX / +VTR) everything is
    audio or shielded codes until ``<DLE><ETX>``; in command mode (and while transmitting,
    when the modem sends only events) text passes through and events are taken out.
    """

    COMMAND, RECEIVE = "command", "receive"

    def __init__(self, on_event, on_audio):
        self._on_event = on_event
        self._on_audio = on_audio
        self.mode = self.COMMAND
        self.ending = False  # set by the driver once it has asked the modem to end the stream
        self.malformed = 0
        self._armed = False
        self._line = bytearray()
        self._dle = False
        self._eat_lf = False
        self._complex = None
        self._in_dtmf = False
        self._dtmf_seen = False
        self._pcm = bytearray()

    def arm(self):
        """The next CONNECT starts a receive stream (the driver sent +VRX or +VTR)."""
        self._armed = True
        self._line.clear()

    def disarm(self):
        """CONNECT came, or the command failed: stop watching for it."""
        self._armed = False

    def force_command(self):
        """The modem never said the stream was over: read text again from now on."""
        self.mode = self.COMMAND
        self._dle = False

    def feed(self, data):
        """Take one chunk from the port; return the text in it for the line splitter."""
        out = bytearray()
        view = bytes(data)
        try:
            while view:
                if self._complex is not None:
                    view = self._complex_report(view)
                elif self.mode == self.RECEIVE:
                    view = self._receive(view)
                else:
                    view = self._command(view, out)
        except Exception:  # a parser bug must not kill the port's reader thread
            log.exception("voice stream: could not parse %r", data[:64])
        finally:
            if self._pcm:
                pcm, self._pcm = bytes(self._pcm), bytearray()
                self._on_audio(pcm)
        return bytes(out)

    def _receive(self, view):
        if self._eat_lf:
            self._eat_lf = False
            if view[:1] == b"\n":
                view = view[1:]
        if self._dle:
            self._dle = False
            return self._shielded(view[0], view[1:], None) if view else view
        cut = view.find(b"\x10")
        if cut < 0:
            self._pcm += view
            return b""
        self._pcm += view[:cut]
        if cut + 1 == len(view):
            self._dle = True
            return b""
        return self._shielded(view[cut + 1], view[cut + 2:], None)

    def _command(self, view, out):
        if self._dle:
            self._dle = False
            return self._shielded(view[0], view[1:], out)
        cut = view.find(b"\x10")
        text = view if cut < 0 else view[:cut]
        rest = self._text(text, out)
        if self.mode == self.RECEIVE:
            return rest + (view[cut:] if cut >= 0 else b"")
        if cut < 0:
            return b""
        if cut + 1 == len(view):
            self._dle = True
            return b""
        return self._shielded(view[cut + 1], view[cut + 2:], out)

    def _text(self, text, out):
        """Pass text on; when armed, spot the CONNECT line after which audio begins."""
        if not self._armed:
            out += text
            return b""
        for index, byte in enumerate(text):
            out.append(byte)
            if byte not in (CR, LF):
                self._line.append(byte)
                continue
            line, self._line = bytes(self._line).strip(), bytearray()
            if line == b"CONNECT":
                self._armed = False
                self.mode = self.RECEIVE
                rest = text[index + 1:]
                if byte == CR:
                    if rest[:1] == b"\n":
                        out.append(LF)
                        rest = rest[1:]
                    elif not rest:
                        self._eat_lf = True  # the LF of CR LF may come in the next chunk
                return rest
        return b""

    def _shielded(self, code, rest, out):
        """Handle ``<DLE><code>``; ``out`` is None in receive mode. Return what follows."""
        if code == DLE:
            if out is None:
                self._pcm.append(DLE)
            return rest
        if code == SUB:
            if out is None:
                self._pcm += b"\x10\x10"  # V.253 <DLE><SUB>: two DLEs in the data
            return rest
        if code == ETX:
            if self.mode == self.RECEIVE:
                self.mode = self.COMMAND
                requested, self.ending = self.ending, False
                self._on_event(DleEvent("\x03", "end", requested=requested))
            return rest
        if code == ord("X"):
            self._complex = bytearray()  # <DLE>X ... <DLE>. a complex event report
            return rest
        char = chr(code)
        if char in DTMF_DIGITS:
            self._dtmf(char)
        elif char == "/":
            self._in_dtmf, self._dtmf_seen = True, False
        elif char == "~":
            self._in_dtmf = False
        elif char in EVENTS:
            self._on_event(DleEvent(char, EVENTS[char]))
        else:
            self.malformed += 1
            log.warning("voice stream: skipped unknown shielded code <DLE> 0x%02x", code)
        return rest

    def _dtmf(self, digit):
        """A key: once per tone, also when the modem brackets it with <DLE>/ ... <DLE>~ (V.253 7.5)."""
        if self._in_dtmf and self._dtmf_seen:
            return
        self._dtmf_seen = self._in_dtmf
        self._on_event(DleEvent(digit, "dtmf"))

    def _complex_report(self, view):
        end = view.find(b"\x10.")
        if end < 0:
            self._complex += view
            if len(self._complex) > 512:
                self.malformed += 1
                log.warning("voice stream: dropped an unterminated <DLE>X report")
                self._complex = None
            return b""
        body = (bytes(self._complex) + view[:end]).decode("latin-1")
        self._complex = None
        self._on_event(DleEvent("X", "report", text=body))
        return view[end + 2:]


# --- the audio the engine sees --------------------------------------------------------------

class VoiceAudio(FramedAudio):
    """20 ms frames of 8 kHz 16-bit PCM both ways, converted from and to the modem's format.

    The reader thread feeds received samples in; the engine reads and writes frames
    (``read_frame`` / ``write_frame``) like any modem audio port, never blocking; the
    line's pump thread takes the frames to send.
    """

    def __init__(self, name):
        super().__init__()
        self.name = name
        self.format = None
        self.silent_frames = 0  # consecutive received frames below SILENCE_LEVEL
        self._raw = bytearray()
        self._pcm = bytearray()
        self._closed = False

    def flush(self):
        """Forget audio both ways (a stream starts)."""
        super().flush()
        self._raw.clear()
        self._pcm.clear()
        self.silent_frames = 0
        self._outgoing.clear()

    def realign(self):
        """A new stream starts on a sample boundary: drop a half sample or frame left from the last."""
        self._raw.clear()
        self._pcm.clear()

    def close(self):
        """Wake the pump and refuse further frames; safe to call twice."""
        self._closed = True
        self._outgoing.close()

    @property
    def silent_seconds(self):
        """How long what the line receives has been silence."""
        return self.silent_frames * FRAME_SAMPLES / SAMPLE_RATE

    def take_outgoing(self, timeout):
        """The next frame to send, waiting up to ``timeout`` s; None if there is none."""
        return self._outgoing.take(timeout)

    def _check_writable(self):
        if self._closed:
            raise PortClosed(f"{self.name}: the line is closed")

    def feed(self, data):
        """Received samples in the modem's format (the reader thread's call)."""
        fmt = self.format
        if fmt is None:
            return
        self._raw += data
        whole = len(self._raw) - len(self._raw) % fmt.sample_bytes
        if not whole:
            return
        self._pcm += decode(fmt.kind, bytes(self._raw[:whole]))
        del self._raw[:whole]
        while len(self._pcm) >= FRAME_BYTES:
            frame = bytes(self._pcm[:FRAME_BYTES])
            del self._pcm[:FRAME_BYTES]
            self.silent_frames = self.silent_frames + 1 if peak(frame) < SILENCE_LEVEL else 0
            self._incoming.put(frame)


# --- the line ---------------------------------------------------------------------------------

class VoiceModemLine:
    """An analog line on a V.253 voice modem; reports LineEvents like the GSM lines."""

    family = "voicemodem"
    # ATI / ATI3 texts (CX93001-EIS_V0.2002-V92 on the Zoom 3095) and the USB ids lsusb names.
    models = ("CX930", "CONEXANT", "U.S. ROBOTICS", "USROBOTICS")
    usb_ids = ((0x0572, 0x1329), (0x0BAF, 0x0303))
    audio_interface = None
    inband_dtmf = False  # the modem reports keys as <DLE> digits
    software_gain = False  # +VGT / +VGR set the levels
    sms = False  # an analog line cannot send SMS or USSD

    def __init__(self, port, on_event, *, name="analog", rings=2, silence_seconds=60.0, max_call_seconds=3600.0,
                 ring_gap_seconds=8.0, dial_seconds=60.0, audio_port=None, pin=None, sms_mode=None):
        self.name = name
        self.rings = max(1, int(rings))
        self.silence_seconds = float(silence_seconds)
        self.max_call_seconds = float(max_call_seconds)
        self.ring_gap_seconds = float(ring_gap_seconds)
        self.dial_seconds = float(dial_seconds)
        self._on_event = on_event
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._state = IDLE
        self._stream = None  # duplex, receive, transmit, or None (command state)
        self._duplex = None  # None until a call shows whether +VTR works
        self._last_loud = 0.0
        self._connected_at = None
        self._closed = False
        self._reset_ringing()
        self._dial_outcome = None
        self._held_keys = []
        self._identity = {}
        self._modem_silence = False
        self.channel = None
        self.audio = VoiceAudio(f"{name}-audio")
        self.parser = DleStream(self._post, self.audio.feed)
        self.channel = ATChannel(port, self._handle_urc, on_closed=self._handle_closed, name=name,
                                 byte_filter=self.parser.feed, ok_results=VOICE_OK, urc_prefixes=VOICE_URCS,
                                 write_timeout=1.0)
        try:
            self._identity = self._initialise()
            self.parser.malformed = 0  # the echo of the abort codes sent before "AT" is not the modem's fault
        except FirmwareError:
            self.channel.close()
            raise
        self._threads = [threading.Thread(target=self._pump_loop, name=f"voice-pump-{name}", daemon=True),
                         threading.Thread(target=self._watch_loop, name=f"voice-watch-{name}", daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def state(self):
        """The call state: idle, ringing, dialing, alerting or active."""
        return self._state

    @property
    def format(self):
        """The sample format in use (a VoiceFormat)."""
        return self.audio.format

    @property
    def duplex(self):
        """True once +VTR worked, False if the modem refused it, None before the first call."""
        return self._duplex

    # --- set-up (vgetty's V253modem_init, MODEMS.md) ------------------------------------------

    def _initialise(self):
        self._first_answer()
        self.command("ATZ", timeout=5)
        self.command("ATE0")
        self.command("AT+FCLASS=8")  # voice mode: V.253 is "class 8"
        identity = {"model": self._optional("ATI3") or self._optional("ATI"),
                    "manufacturer": self._optional("AT+GMI"), "revision": self._optional("AT+GMR")}
        try:
            # Caller ID after every reset: some modems forget it after ATZ (home-assistant/core #57765).
            self.command("AT+VCID=1")
            identity["caller_id"] = True
        except ATCommandError:
            log.warning("%s: the modem has no caller ID (+VCID)", self.name)
            identity["caller_id"] = False
        formats = parse_formats(self.command("AT+VSM=?", timeout=5))
        chosen = choose_format(formats)
        if chosen is None:
            raise FirmwareError(f"{self.name}: no 8 kHz format this box can use among "
                                f"{', '.join(f.describe() for f in formats) or 'none listed'}")
        self._select_format(chosen)
        self.audio.format = chosen
        self.command("AT+VLS=0")  # on hook: nothing left off hook by a crash
        modem_silence = 0 < self.silence_seconds <= MODEM_SILENCE_MAX
        self._modem_silence = modem_silence
        # +VRA / +VRN (when a dialled call counts as answered) stay as the modem has them for
        # its country: shorter than the ringback's pause would end a dial before the answer.
        for optional in (f"AT+VSD=128,{round(self.silence_seconds * 10) if modem_silence else 0}", "AT+VIT=0"):
            self._optional(optional)
        identity.update(formats=[f.describe() for f in formats], format=chosen.describe())
        log.info("%s: voice modem %s, %s at %d bytes/s", self.name, identity["model"], chosen.describe(),
                 chosen.byte_rate)
        return identity

    def _first_answer(self):
        """"AT" until it answers; a box that died mid-call may have left the modem streaming,
        so end any stream between tries (noise to a modem in command state, which waits for AT)."""
        for attempt in range(3):
            try:
                self.command("AT", timeout=1.5)
                return
            except ATTimeout:
                if attempt == 2:
                    raise
                self.channel.write_bytes(b"\x10^\x10!\x10\x03" * (attempt + 1) + b"\r")
                time.sleep(0.2)

    def _select_format(self, chosen):
        try:
            self.command(f"AT+VSM={chosen.code},{SAMPLE_RATE}")
        except ATCommandError:
            self.command(f"AT+VSM={chosen.code}")  # some chipsets take one argument only

    def _optional(self, command):
        """Send a command the modem may not know; its first line, or "" on ERROR."""
        try:
            lines = self.command(command)
        except ATCommandError as err:
            log.info("%s: %s not supported (%s)", self.name, command, err.result)
            return ""
        return lines[0].strip() if lines else ""

    # --- identity -------------------------------------------------------------------------------

    def info(self):
        """Model, format and line state; asks the modem "AT" when no call is up (a liveness poll)."""
        with self._lock:
            if self._state in (IDLE, RINGING) and self._stream is None:
                self.command("AT", timeout=2)
            calling = self._state
        return {
            "family": self.family, "model": self._identity["model"], "manufacturer": self._identity["manufacturer"],
            "revision": self._identity["revision"], "imei": "", "iccid": "", "signal_dbm": None,
            "signal_bars": None, "registration": None, "operator": "",
            "caller_id": self._identity["caller_id"], "format": self._identity["format"],
            "formats": self._identity["formats"], "duplex": self._duplex, "call_state": calling, "sms": False,
            "rings": self.rings,
        }

    def iccid(self):
        """An analog line has no SIM."""
        return ""

    def network_time(self):
        """An analog line does not tell the time."""
        return None

    def set_gain(self, microphone, speaker):
        """Transmit (+VGT) and receive (+VGR) gain, 0-100 % of 0-255 (128 nominal; V.253 10.2.1-2)."""
        with self._lock:
            if self._state != IDLE:
                raise LineStateError(f"{self.name}: gains are set between calls")
            for command, percent in (("AT+VGT", microphone), ("AT+VGR", speaker)):
                value = round(255 * max(0, min(100, int(percent))) / 100)
                try:
                    self.command(f"{command}={value}")
                except ATCommandError as err:  # Conexant takes only +VGR=0 (automatic gain)
                    log.warning("%s: %s=%d refused (%s)", self.name, command, value, err.result)

    def send_sms(self, number, text):
        """An analog line cannot send SMS."""
        raise LineStateError(f"{self.name}: an analog line cannot send SMS")

    def ussd(self, code, timeout=30.0):
        """An analog line has no USSD."""
        raise LineStateError(f"{self.name}: an analog line has no USSD")

    def command(self, command, **options):
        """Send one AT command and return its lines."""
        return self.channel.command(command, **options)

    # --- calls ------------------------------------------------------------------------------------

    def answer(self):
        """Go off hook and start the call's audio stream."""
        with self._lock:
            if self._state != RINGING:
                raise LineStateError(f"{self.name}: no call is ringing")
            try:
                self.command("AT+VLS=1", timeout=10)  # off hook, to the line (V.253 10.2.4)
                self._go_active()
            except FirmwareError:
                self._on_hook()
                self._end_call("failed")
                raise

    def hangup(self):
        """End the call in progress (or refuse the ringing one) and go back on hook."""
        with self._lock:
            state = self._state
            if state == IDLE:
                return
            if state in (DIALING, ALERTING):
                self._dial_outcome = "local"
                self._abort_dial()
            elif state == RINGING:
                self._refuse()
            self._on_hook()
            self._end_call("local")

    def dial(self, number):
        """Dial ``number`` (ATDT); progress and the answer arrive as events."""
        with self._lock:
            if self._state != IDLE:
                raise LineStateError(f"{self.name}: line is busy")
            self._state = DIALING
            self._dial_outcome = None
            self._held_keys = []
        threading.Thread(target=self._dial, args=(number,), name=f"voice-dial-{self.name}", daemon=True).start()

    def send_dtmf(self, digits):
        """Send keys to the far end (+VTS, V.253 10.1.5) between two stretches of the stream."""
        with self._lock:
            if self._state != ACTIVE:
                raise LineStateError(f"{self.name}: no active call")
            kind = self._stream
            self._stop_stream()
            try:
                self.command("AT+VTS=" + ",".join(digits), timeout=5 + len(digits))
            finally:
                self._start_stream(kind or ("duplex" if self._duplex else "receive"))

    def close(self):
        """Go on hook if a call is up, stop the threads and close the port; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.audio.close()
        if self._lock.acquire(timeout=3):
            try:
                if self._state != IDLE and not self.channel.closed:
                    self._on_hook()
                    self._state = IDLE
            finally:
                self._lock.release()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        self.channel.close()

    # --- inside a call -----------------------------------------------------------------------

    def _go_active(self):
        """Off hook: open the stream, then tell the engine the call is up (lock held)."""
        self.audio.flush()
        self._start_call_stream()
        self._state = ACTIVE
        self._connected_at = time.monotonic()
        self._emit("connected")
        held, self._held_keys = self._held_keys, []
        for digit in held:  # the operator pressed 1 before the modem said the call was answered
            self._emit("dtmf", digit=digit)

    def _start_call_stream(self):
        if self._duplex is not False:
            try:
                self._start_stream("duplex")
                self._duplex = True
                return
            except ATCommandError as err:
                # Do not ask AT+VTR=?: a CX93001 answers ERROR to the test form of every
                # action command; only +VTR itself tells.
                log.info("%s: no full duplex (+VTR: %s); switching receive and transmit", self.name, err.result)
                self._duplex = False
        self._start_stream("receive")

    def _start_stream(self, kind):
        """AT+VTR / +VRX / +VTX and CONNECT: from here the port carries audio (lock held)."""
        self.audio.realign()
        if kind != "transmit":
            self.parser.arm()
        try:
            self.command(STREAM_COMMANDS[kind], timeout=5)
        finally:
            self.parser.disarm()
        self._stream = kind
        self._last_loud = time.monotonic()

    def _stop_stream(self):
        """Send the code that ends the stream and wait for the modem's OK (lock held)."""
        kind, self._stream = self._stream, None
        if kind is None or self.channel.closed:
            return
        code = STREAM_ENDS[kind]
        self.parser.ending = kind != "transmit"
        for _ in range(2):
            try:
                self.command(code, terminator="", timeout=0.6)
                return
            except ATTimeout:
                # Zoom/Conexant needed the abort repeated before it took (MODEMS.md).
                log.info("%s: the modem ignored the end of the %s stream; repeating it", self.name, kind)
            except ATCommandError:
                return
        self.parser.ending = False
        self.parser.force_command()
        log.warning("%s: the modem never ended its %s stream", self.name, kind)

    def _on_hook(self):
        """End any stream and hang up (+VLS=0, ATH if that fails) (lock held)."""
        try:
            self._stop_stream()
            self.command("AT+VLS=0", timeout=3)
        except FirmwareError as err:
            log.warning("%s: +VLS=0 failed (%s); trying ATH", self.name, err)
            try:
                self.command("ATH", timeout=3)
            except FirmwareError as again:
                log.error("%s: cannot put the line on hook: %s", self.name, again)

    def _refuse(self):
        """An analog call cannot be rejected: pick it up and put it down (lock held)."""
        try:
            self.command("AT+VLS=1", timeout=10)
        except FirmwareError as err:
            log.warning("%s: could not pick up to refuse the call: %s", self.name, err)

    def _end_call(self, cause):
        """Back to idle; tell the engine how the call ended (lock held)."""
        previous, self._state = self._state, IDLE
        self._reset_ringing()
        if previous == IDLE:
            return
        seconds = time.monotonic() - self._connected_at if previous == ACTIVE and self._connected_at else 0.0
        self._connected_at = None
        self._emit("ended" if previous != RINGING else "missed", cause=cause, seconds=round(seconds, 2))

    def _far_end_gone(self, reason, cause="remote"):
        """A hang-up sign on a line that has no clean one: go on hook, end the call."""
        with self._lock:
            if self._state != ACTIVE:
                return
            log.info("%s: the far end is gone (%s); going on hook", self.name, reason)
            self._emit("hangup_detected", reason=reason)
            self._on_hook()
            self._end_call(cause)

    # --- dialling (V.253 9.1.1, ATD in voice mode; VCON or OK once answered, as vgetty reads it) --

    def _dial(self, number):
        outcome = None
        try:
            self.command(f"ATDT{number}", timeout=self.dial_seconds)
        except ATCommandError as err:
            outcome = {"BUSY": "busy", "NO ANSWER": "no answer", "NO DIALTONE": "no dial tone",
                       "NO DIAL TONE": "no dial tone"}.get(err.result, "failed")
        except FirmwareError as err:
            log.warning("%s: dialling %s failed: %s", self.name, number, err)
            outcome = "failed"
        with self._lock:
            if self._state not in (DIALING, ALERTING) or self._dial_outcome == "local":
                return  # hung up meanwhile
            outcome = self._dial_outcome or outcome
            if outcome is None:
                try:
                    self._go_active()
                    return
                except FirmwareError as err:
                    log.warning("%s: the call was answered but its stream did not start: %s", self.name, err)
                    outcome = "failed"
            self._on_hook()
            self._end_call(outcome)

    def _abort_dial(self):
        """Any character aborts a dial in progress (V.250 6.3.1); its result then ends _dial."""
        try:
            self.channel.write_bytes(b"\r")
        except PortClosed:
            pass

    def _alerting(self):
        with self._lock:
            if self._state == DIALING:
                self._state = ALERTING
                self._emit("alerting")

    # --- ringing and caller ID (+VCID; the "DATE = ..." tags of the Rockwell/Conexant manuals) -----

    def _reset_ringing(self):
        self._ring_count = 0
        self._last_ring = 0.0
        self._announced = False
        self._cid = {}
        self._cid_at = 0.0

    def _ring(self):
        with self._lock:
            now = time.monotonic()
            if self._state == IDLE:
                cid, cid_at = self._cid, self._cid_at
                self._reset_ringing()
                if now - cid_at < self.ring_gap_seconds:
                    self._cid, self._cid_at = cid, cid_at  # caller ID sent before the first ring (ETSI)
                self._state = RINGING
            elif self._state != RINGING or now - self._last_ring < 0.3:
                return  # a call is up, or the DLE R of a RING already counted
            self._ring_count += 1
            self._last_ring = now
            self._maybe_announce()

    def _caller_id_line(self, line):
        tag, _, value = line.partition("=")
        with self._lock:
            if self._state not in (IDLE, RINGING):
                return
            self._cid[tag.strip().upper()] = value.strip()
            self._cid_at = time.monotonic()
            self._maybe_announce()

    def _cid_complete(self):
        if "NAME" in self._cid:
            return True
        return "NMBR" in self._cid and time.monotonic() - self._cid_at >= 0.3

    def _maybe_announce(self):
        """Tell the engine once the ring count is reached and caller ID is in (or cannot come)."""
        if self._announced or self._state != RINGING or self._ring_count < self.rings:
            return
        if not (self._cid_complete() or self._ring_count >= 2 or not self._identity.get("caller_id", True)):
            return
        self._announced = True
        number, name, reason = caller_id(self._cid)
        self._emit("caller_id", number=number, name=name, reason=reason, date=self._cid.get("DATE", ""),
                   time=self._cid.get("TIME", ""), rings=self._ring_count)
        self._emit("incoming", number=number)

    # --- threads ------------------------------------------------------------------------------

    def _watch_loop(self):
        """Ring timeouts, caller ID that stopped coming, silence and the maximum length."""
        while not self._stop.wait(0.1):
            try:
                self._watch()
            except FirmwareError as err:
                log.warning("%s: %s", self.name, err)

    def _watch(self):
        now = time.monotonic()
        with self._lock:
            state = self._state
            if state == RINGING:
                self._maybe_announce()
                if now - self._last_ring > self.ring_gap_seconds:
                    self._caller_gave_up()
                return
            receiving = self._stream in ("duplex", "receive")
            connected = self._connected_at
        if state != ACTIVE or connected is None:
            return
        if now - connected >= self.max_call_seconds:
            self._far_end_gone("maximum call length", cause="local")
        elif receiving and self.silence_seconds > 0 and self.audio.silent_seconds >= self.silence_seconds:
            self._far_end_gone(f"silence for {self.audio.silent_seconds:g} s")

    def _caller_gave_up(self):
        """The rings stopped before the call was answered (lock held): never lose the caller."""
        log.info("%s: the caller stopped ringing after %d ring(s)", self.name, self._ring_count)
        if not self._announced:
            self._announced = True
            self._emit("incoming", number=caller_id(self._cid)[0])
        self._end_call("remote")

    def _pump_loop(self):
        """Send the engine's frames to the modem; on a half-duplex modem, switch direction."""
        while not self._stop.is_set():
            frame = self.audio.take_outgoing(0.1)
            try:
                with self._lock:
                    if self._stream is None or self._state != ACTIVE:
                        continue
                    if self._duplex:
                        self._send(frame)
                    else:
                        self._half_duplex(frame)
            except FirmwareError as err:
                log.warning("%s: audio out: %s", self.name, err)

    def _send(self, frame):
        if frame is not None and not self.channel.write_bytes(shield(encode(self.audio.format.kind, frame))):
            self.audio.unsent_writes += 1

    def _half_duplex(self, frame):
        """Transmit while the engine has something to say, listen otherwise (lock held)."""
        now = time.monotonic()
        loud = peak(frame) > TALK_LEVEL
        if loud:
            self._last_loud = now
        if self._stream == "receive" and loud:
            self._stop_stream()
            self._start_stream("transmit")
        if self._stream == "transmit":
            self._send(frame)
            if now - self._last_loud > TALK_HOLD_SECONDS:
                self._stop_stream()
                self._start_stream("receive")
                self.audio.silent_frames = 0

    # --- what the modem says -------------------------------------------------------------------

    def _post(self, event):
        channel = self.channel
        if channel is not None:
            channel.post(event)

    def _handle_urc(self, item):
        if isinstance(item, DleEvent):
            self._dle_event(item)
        elif item == "RING":
            self._ring()
        elif item.startswith(CALLER_ID_TAGS):
            self._caller_id_line(item)
        elif item == "RINGING":
            self._alerting()
        else:
            log.debug("%s: ignored %r", self.name, item)

    def _dle_event(self, event):
        name = event.name
        if name == "dtmf":
            self._key(event.code)
        elif name == "ring":
            self._ring()
        elif name == "ringback":
            self._alerting()
        elif name in HANGUP_EVENTS:
            self._hangup_sign(HANGUP_EVENTS[name], name)
        elif name in MACHINE_EVENTS:
            self._far_end_gone(MACHINE_EVENTS[name], cause="local")
        elif name in ("silence", "quiet") and self._modem_silence:
            self._far_end_gone(f"silence reported by the modem (<DLE>{event.code})")
        elif name == "end" and not event.requested:
            self._stream_ended_by_modem()
        elif name == "report":
            log.info("%s: modem report %r", self.name, event.text)
        else:
            log.debug("%s: event %s", self.name, name)

    def _key(self, digit):
        """A key from the far end; one pressed before a dialled call is up waits for "connected"."""
        with self._lock:
            if self._state == ACTIVE:
                self._emit("dtmf", digit=digit)
            elif self._state in (DIALING, ALERTING):
                self._held_keys.append(digit)

    def _hangup_sign(self, reason, name):
        with self._lock:
            if self._state in (DIALING, ALERTING):
                # Call progress from the events: busy or no dial tone while dialling.
                self._dial_outcome = {"busy": "busy", "reorder": "busy", "dialtone": "no dial tone"}.get(name, "failed")
                self._abort_dial()
                return
        self._far_end_gone(reason)

    def _stream_ended_by_modem(self):
        """The modem left the stream on its own (its inactivity timer): start it again, once."""
        with self._lock:
            if self._state != ACTIVE or self._stream not in ("duplex", "receive"):
                return
            kind, self._stream = self._stream, None
            log.warning("%s: the modem ended the %s stream; starting it again", self.name, kind)
            try:
                self._start_stream(kind)
                return
            except FirmwareError as err:
                log.warning("%s: could not restart the stream: %s", self.name, err)
        self._far_end_gone("the audio stream ended")

    def _handle_closed(self):
        self._emit("down", reason="port closed")

    def _emit(self, kind, **data):
        self._on_event(LineEvent(kind, data))


def caller_id(fields):
    """(number, name, reason) from caller ID tags; "P" is private, "O" unavailable (Rockwell)."""
    number, name = fields.get("NMBR", "").replace(" ", ""), fields.get("NAME", "")
    reason = {"P": "private", "O": "unavailable"}.get(number, "" if number else "not sent")
    if reason:
        number = ""
    if name in ("P", "O"):
        name = ""
    return number, name, reason
