"""Real SIP peers for the tests and benchmarks: sipp (scenarios) and baresip (a softphone).

Also the audio tools to check what they heard: G.711 codecs, pcap files of RTP for
sipp's ``play_pcap_audio``, an RTP listener, and tone detection. Nothing here fakes a
peer: every call goes over real UDP sockets to a real SIP stack.

    tone_pcap(path, 440, 2.0)                        # RTP (PCMA) of a 440 Hz tone
    with Sipp.uac("127.0.0.1:5070", tone=440, digits="123") as caller, caller.listener() as heard:
        ...                                          # heard.pcm(): what the box sent the caller
    with Sipp.uas("uas_busy.xml") as operator: line.leg("out-1").dial(operator.uri())
    with Baresip(tone=700) as phone: line.leg("out-2").dial(phone.uri)

sipp's play_pcap_audio and the sniffing RtpListener need CAP_NET_RAW (root in CI).
"""
import atexit
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import wave

import numpy

SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp")
SIPP_PCAPS = "/usr/share/sip-tester"
BARESIP_MODULES = "/usr/lib/baresip/modules"
RATE = 8000
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
EVENT_NAMES = "0123456789*#ABCD"


def free_udp_port():
    """A UDP port on loopback that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_media_port():
    """A free UDP port whose neighbour two up is free too (sipp binds both: audio, video)."""
    for _ in range(50):
        port = free_udp_port()
        with contextlib.ExitStack() as held:
            try:
                for candidate in (port, port + 2):
                    sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of UDP ports for sipp's media")


_SCRATCH = []
_RUNNING = []  # peers started, stopped at exit if a test forgot to


def _scratch_directory(prefix):
    """A temporary directory removed when the interpreter exits (after the test read its logs)."""
    path = tempfile.mkdtemp(prefix=prefix)
    _SCRATCH.append(path)
    return path


@atexit.register
def _clean_up():
    for peer in _RUNNING:
        peer.stop()
    for path in _SCRATCH:
        shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate, timeout=5.0, interval=0.02):
    """Poll ``predicate`` until it returns something true; return it (or None on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


# --- audio ------------------------------------------------------------------------------

def sine(frequency, seconds, amplitude=0.5, rate=RATE):
    """16-bit mono PCM of a sine tone."""
    t = numpy.arange(int(seconds * rate)) / rate
    return (numpy.sin(2 * numpy.pi * frequency * t) * amplitude * 32767).astype("<i2").tobytes()


def _alaw_encode(samples):
    # ITU-T G.711 A-law, segment by segment, on int16 samples.
    pcm = samples.astype(numpy.int32) >> 3
    sign = numpy.where(pcm >= 0, 0xD5, 0x55)
    magnitude = numpy.minimum(numpy.where(pcm >= 0, pcm, -pcm - 1), 0xFFF)
    segment = numpy.searchsorted(numpy.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), magnitude)
    mantissa = numpy.where(segment < 2, magnitude >> 1, magnitude >> segment) & 0x0F
    return ((segment << 4 | mantissa) ^ sign).astype(numpy.uint8)


def _ulaw_encode(samples):
    # ITU-T G.711 mu-law on 14-bit magnitudes with a bias of 33 (as Sun's g711.c).
    pcm = samples.astype(numpy.int32) >> 2
    mask = numpy.where(pcm < 0, 0x7F, 0xFF)
    magnitude = numpy.minimum(numpy.abs(pcm), 8159) + 0x21
    segment = numpy.searchsorted(numpy.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), magnitude)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = numpy.where(segment >= 8, 0x7F, (numpy.minimum(segment, 7) << 4) | mantissa)
    return (code ^ mask).astype(numpy.uint8)


def _alaw_decode_table():
    codes = numpy.arange(256) ^ 0x55
    segment, mantissa = (codes & 0x70) >> 4, codes & 0x0F
    shifted = ((mantissa << 4) + 0x108) << numpy.maximum(segment - 1, 0)
    magnitude = numpy.where(segment == 0, (mantissa << 4) + 8, shifted)
    return numpy.where(codes & 0x80, magnitude, -magnitude).astype(numpy.int16)


def _ulaw_decode_table():
    codes = ~numpy.arange(256) & 0xFF
    segment, mantissa = (codes & 0x70) >> 4, codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << segment) - 0x84
    return numpy.where(codes & 0x80, -magnitude, magnitude).astype(numpy.int16)


DECODE = {"PCMA": _alaw_decode_table(), "PCMU": _ulaw_decode_table()}


def g711_encode(pcm, payload="PCMA"):
    """16-bit PCM to A-law (PCMA) or mu-law (PCMU) bytes."""
    samples = numpy.frombuffer(pcm, dtype="<i2")
    return (_alaw_encode if payload == "PCMA" else _ulaw_encode)(samples).tobytes()


def g711_decode(data, payload="PCMA"):
    """A-law or mu-law bytes to 16-bit PCM."""
    return DECODE[payload][numpy.frombuffer(data, dtype=numpy.uint8)].astype("<i2").tobytes()


def tone_level(pcm, frequency, rate=RATE):
    """How much of the signal's power is at ``frequency`` (Goertzel): 0.0 to about 1.0."""
    samples = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.float64)
    if len(samples) == 0 or not samples.any():
        return 0.0
    t = numpy.arange(len(samples)) / rate
    component = numpy.dot(samples, numpy.exp(-2j * numpy.pi * frequency * t))
    return float(2 * abs(component) ** 2 / len(samples) / numpy.dot(samples, samples))


def tone_blocks(pcm, frequency, block_seconds=0.2, rate=RATE):
    """``tone_level`` of each ``block_seconds`` block: a tone whose phase jumps (a jitter
    buffer re-syncing, a starved softphone dropping samples) still reads near 1.0 per block,
    while one Goertzel over seconds of it adds the pieces out of phase and reads far lower."""
    size = int(rate * block_seconds) * 2
    return [round(tone_level(pcm[at:at + size], frequency, rate), 2) for at in range(0, len(pcm) - size + 1, size)]


def heard_tone(pcm, frequency, block_seconds=0.2, rate=RATE):
    """The median block ``tone_level``: how much of the time ``frequency`` is what is heard."""
    blocks = tone_blocks(pcm, frequency, block_seconds, rate)
    return float(numpy.median(blocks)) if blocks else 0.0


def dominant_frequency(pcm, rate=RATE):
    """The frequency (Hz) with the most power in 16-bit mono PCM; 0.0 for silence."""
    samples = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.float64)
    if len(samples) < 2 or not samples.any():
        return 0.0
    spectrum = numpy.abs(numpy.fft.rfft(samples * numpy.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(numpy.argmax(spectrum) * rate / len(samples))


def rms(pcm):
    """Root mean square level of 16-bit PCM (0 for silence, about 11600 for a half-scale sine)."""
    samples = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.float64)
    return float(numpy.sqrt(numpy.mean(samples ** 2))) if len(samples) else 0.0


def read_wav(path):
    """16-bit mono PCM at 8 kHz from a WAV file (mixed down and resampled when needed)."""
    with wave.open(path, "rb") as wav:
        channels, rate, width = wav.getnchannels(), wav.getframerate(), wav.getsampwidth()
        data = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples, expected 16")
    samples = numpy.frombuffer(data, dtype="<i2").reshape(-1, channels).mean(axis=1)
    if rate != RATE:
        positions = numpy.arange(0, len(samples), rate / RATE)
        samples = numpy.interp(positions, numpy.arange(len(samples)), samples)
    return samples.astype("<i2").tobytes()


# --- RTP in pcap files, for sipp's play_pcap_audio ------------------------------------------

def _checksum(header):
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def _ip_udp(payload, source, destination):
    """An IPv4/UDP packet; sipp rewrites addresses and ports when it plays it."""
    udp = struct.pack("!HHHH", source[1], destination[1], 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         socket.inet_aton(source[0]), socket.inet_aton(destination[0]))
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + udp


def write_pcap(path, packets):
    """Write (time in seconds, RTP bytes) pairs as an Ethernet pcap sipp can play."""
    source, destination = ("10.0.0.1", 10000), ("10.0.0.2", 20000)
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for when, rtp in packets:
            frame = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
            frame += _ip_udp(rtp, source, destination)
            seconds = 1_000_000_000 + when
            out.write(struct.pack("<IIII", int(seconds), int(round(seconds % 1 * 1e6)) % 1_000_000,
                                  len(frame), len(frame)))
            out.write(frame)


def rtp_packet(payload_type, sequence, timestamp, ssrc, payload, marker=False):
    """One RTP packet (RFC 3550 header, no CSRC)."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, sequence & 0xFFFF,
                       timestamp & 0xFFFFFFFF, ssrc) + payload


def rtp_stream(pcm, payload="PCMA", digits="", ssrc=0x1234ABCD, gap=0.3, event_payload_type=101):
    """(time, RTP) pairs: ``pcm`` in 20 ms packets, then RFC 2833 events for ``digits``.

    One SSRC and running sequence numbers and timestamps throughout, as a phone sends
    them (the dtmf_2833_N.pcap files shipped with sipp each restart at the same
    sequence number, so a receiver drops every digit after the first).
    """
    encoded = g711_encode(pcm, payload)
    packets, sequence, timestamp, when = [], 1000, 0, 0.0
    for offset in range(0, len(encoded) - 159, 160):
        packets.append((when, rtp_packet(PAYLOAD_TYPES[payload], sequence, timestamp, ssrc,
                                         encoded[offset:offset + 160], marker=offset == 0)))
        sequence, timestamp, when = sequence + 1, timestamp + 160, when + 0.02
    for digit in digits:
        events, sequence = _dtmf_event(EVENT_NAMES.index(digit.upper()), sequence, timestamp, ssrc,
                                       event_payload_type)
        packets.extend((when + delay, rtp) for delay, rtp in events)
        when += 0.2 + gap
        timestamp += int((0.2 + gap) * RATE)
    return packets


def _dtmf_event(event, sequence, timestamp, ssrc, payload_type):
    """RFC 2833 packets of one 160 ms key press: updates every 20 ms, the end sent three times."""
    packets = []
    for step in range(1, 9):
        end = step == 8
        body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, step * 160)
        for repeat in range(3 if end else 1):
            packets.append((step * 0.02 + repeat * 0.001,
                            rtp_packet(payload_type, sequence, timestamp, ssrc, body, marker=step == 1)))
            sequence += 1
    return packets, sequence


def tone_pcap(path, frequency, seconds, payload="PCMA", digits=""):
    """Write a pcap of RTP carrying a sine tone (then RFC 2833 ``digits``) for play_pcap_audio."""
    write_pcap(path, rtp_stream(sine(frequency, seconds), payload, digits))
    return path


# --- receiving RTP ----------------------------------------------------------------------

class RtpListener:
    """Keeps the RTP sent to a UDP port: audio decoded to PCM, RFC 2833 key presses.

    By default it binds the port itself. With ``sniff=True`` the port belongs to someone
    else (sipp's media port) and a raw socket reads a copy of what arrives there: a
    symmetric-RTP endpoint such as pjsua sends its audio to wherever the far end's audio
    comes from, so the port that hears the box must be the one sipp plays from. Sniffing
    needs CAP_NET_RAW, as sipp's play_pcap_audio does.
    """

    def __init__(self, port=0, host="127.0.0.1", *, sniff=False):
        self.host = host
        self.sniff = sniff
        if sniff:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
            self.port = port
        else:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.bind((host, port))
            self.port = self._socket.getsockname()[1]
        self._socket.settimeout(0.1)
        self.packets = 0
        self.sources = set()
        self.payload_types = set()
        self._audio = []
        self._events = []  # (event timestamp, digit), one per key press
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name=f"rtp-{self.port}", daemon=True)
        self._thread.start()

    def pcm(self):
        """Everything received so far as 16-bit 8 kHz PCM."""
        return b"".join(self._audio)

    def digits(self):
        """The RFC 2833 digits received so far, in order."""
        return "".join(digit for _, digit in self._events)

    def close(self):
        """Stop receiving; safe to call twice."""
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _receive(self):
        while not self._stop.is_set():
            try:
                data, source = self._socket.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if self.sniff:
                data, source = self._unwrap(data)
            if data is not None and len(data) >= 12:
                self._packet(data, source)

    def _unwrap(self, packet):
        """The UDP payload of a raw IPv4 packet sent to our host and port, else (None, None)."""
        header = (packet[0] & 0x0F) * 4
        source_port, destination_port, length = struct.unpack("!HHH", packet[header:header + 6])
        if destination_port != self.port or socket.inet_ntoa(packet[16:20]) != self.host:
            return None, None
        return packet[header + 8:header + length], (socket.inet_ntoa(packet[12:16]), source_port)

    def _packet(self, data, source):
        self.packets += 1
        self.sources.add(source)
        payload_type = data[1] & 0x7F
        self.payload_types.add(payload_type)
        header = 12 + 4 * (data[0] & 0x0F)
        body = data[header:]
        codec = {0: "PCMU", 8: "PCMA"}.get(payload_type)
        if codec:
            self._audio.append(g711_decode(body, codec))
        elif len(body) == 4 and body[0] < len(EVENT_NAMES):
            timestamp = struct.unpack("!I", data[4:8])[0]
            if not self._events or self._events[-1][0] != timestamp:
                self._events.append((timestamp, EVENT_NAMES[body[0]]))


# --- sipp -------------------------------------------------------------------------------

class _PeerProcess:
    """What sipp and baresip share: a scratch directory, its files, ``with`` and clean-up."""

    directory = None

    def cleanup(self):
        """Stop the peer and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()  # its logs (and what it heard) stay readable until the interpreter exits

    def _path(self, name):
        return os.path.join(self.directory, name)

    def _read(self, name):
        try:
            with open(self._path(name), errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""


class Sipp(_PeerProcess):
    """One sipp process running a scenario from tests/sipp; never outlives its ``with`` block.

    Scenarios are templates: ``@NAME@`` is replaced by ``values["NAME"]`` before sipp
    reads the file, so a test can give the RTP port, the pcap to play, the digits.
    """

    def __init__(self, scenario, *, remote=None, port=None, calls=1, timeout=30, values=None,
                 media_port=None, extra=()):
        self.scenario = scenario
        self.remote = remote
        self.port = port or free_udp_port()
        self.media_port = media_port or _free_media_port()
        self.control_port = free_udp_port()  # sipp's own remote control, 8888 by default
        self.calls = calls
        self.timeout = timeout
        self.values = dict(values or {})
        self.extra = list(extra)
        self.directory = _scratch_directory("sipp-")
        self.process = None
        self.returncode = None

    @classmethod
    def uac(cls, remote, *, rtp_port=None, tone=None, tone_seconds=1.0, digits="", dtmf="stream", silence=0.0,
            caller="+359888123456", caller_name="Test Caller", answer_pause_ms=200, hold_ms=500, end="bye",
            expect=None, **options):
        """A caller: INVITE ``remote`` (its SDP gives sipp's media port, or ``rtp_port``); after
        200 OK play a tone (``tone`` Hz for ``tone_seconds``), then RFC 2833 ``digits``, pause
        ``hold_ms``, and BYE (``end="bye"``) or wait for the box's BYE (``end="wait"``).
        ``silence`` seconds of silence come first (to let a prompt play before the keys).

        ``dtmf="stream"`` sends the digits in the tone's own RTP stream; ``dtmf="sipp"``
        plays sipp's dtmf_2833_N.pcap files, which all carry the same RTP timestamp: a
        receiver rightly takes a repeated digit ("11") for one key press; ``dtmf="info"``
        sends each as a SIP INFO (application/dtmf-relay). Give ``rtp_port`` only when sipp
        plays nothing: a symmetric-RTP peer (pjsua) sends to where the audio comes from.
        With ``expect=486`` (or 403...) the caller expects that refusal instead (uac_refused.xml).
        """
        self = cls("uac_refused.xml" if expect else "uac_ivr.xml", remote=remote, **options)
        self.values["CODE"] = expect
        answer_pause = f'<pause milliseconds="{answer_pause_ms}"/>' if end == "bye" else ""
        self.values.update({"CALLER": caller, "CALLER_NAME": caller_name, "RTP_PORT": rtp_port or "[media_port]",
                            "ANSWER_PAUSE": answer_pause, "HOLD_MS": max(hold_ms, 1), "END": _ENDINGS[end]})
        self._media(tone, tone_seconds, digits, dtmf, silence)
        return self

    @classmethod
    def uas(cls, scenario="uas_answer.xml", *, rtp_port=None, tone=None, tone_seconds=1.0, digits="",
            silence=0.0, ring_ms=100, hold_ms=30000, end="wait", code=None, event_pt=120, **options):
        """A called party: answer (uas_answer.xml; 180 for ``ring_ms`` then 200 OK with SDP
        pointing at sipp's media port, play ``silence`` seconds, ``tone`` and RFC 2833
        ``digits`` ("1" to accept a call), then wait for BYE, or send one after ``hold_ms``
        with ``end="bye"``), refuse (uas_busy.xml: 486, uas_503.xml: 503), or act as a
        registrar (uas_register.xml: ``code`` 200/403; uas_register_401.xml). Key presses go
        with payload type ``event_pt``: the one the caller offered (pjsua: 120)."""
        self = cls(scenario, **options)
        status = {200: "200 OK", 403: "403 Forbidden", 404: "404 Not Found", 503: "503 Service Unavailable"}
        self.values.update({"RTP_PORT": rtp_port or "[media_port]", "RING_MS": max(ring_ms, 1),
                            "EVENT_PT": event_pt, "HOLD_MS": max(hold_ms, 1), "END": _ENDINGS["uas_" + end],
                            "STATUS": status.get(code or 200, f"{code} Refused")})
        self._media(tone, tone_seconds, digits, "stream", silence, event_pt)
        return self

    def _media(self, tone, tone_seconds, digits, dtmf, silence, event_pt=101):
        """Fill @PLAY@ and @PLAY_MS@: one pcap of silence, tone and digits, or sipp's digit pcaps."""
        actions, play_ms = [], 0
        stream_digits = digits if dtmf == "stream" else ""
        seconds = silence + (tone_seconds if tone else 0.04)
        if tone or stream_digits or silence:
            pcap = os.path.join(self.directory, "media.pcap")
            pcm = bytes(2 * int(silence * RATE)) + sine(tone or 0, seconds - silence)
            write_pcap(pcap, rtp_stream(pcm, "PCMA", stream_digits, event_payload_type=event_pt))
            actions.append(_play_action(pcap))
            play_ms = int(1000 * (seconds + 0.5 * len(stream_digits)))
        if dtmf in ("sipp", "info"):
            pause = f'<pause milliseconds="{int(1000 * seconds)}"/>'
            presses = [_play_action(_sipp_dtmf_pcap(d)) if dtmf == "sipp" else _info_dtmf(d, 10 + n)
                       for n, d in enumerate(digits)]
            actions = actions[:1] + [pause] + [press + '<pause milliseconds="400"/>' for press in presses]
            play_ms = 100
        self.values.update({"PLAY": "\n  ".join(actions), "PLAY_MS": play_ms + 100})

    def listener(self):
        """An RtpListener on sipp's media port: what the box sends to this sipp."""
        return RtpListener(self.media_port, sniff=True)

    def uri(self, user="operator"):
        """The SIP URI that reaches this sipp (as a UAS)."""
        return f"sip:{user}@127.0.0.1:{self.port}"

    def start(self):
        """Start sipp in the background on this scenario (stopped at exit at the latest)."""
        command = ["sipp", "-sf", self._render(), "-i", "127.0.0.1", "-p", str(self.port),
                   "-mi", "127.0.0.1", "-mp", str(self.media_port), "-m", str(self.calls),
                   "-timeout", f"{self.timeout}s", "-timeout_error", "-nostdin", "-nr",
                   "-trace_err", "-error_file", self._path("errors.log"),
                   "-trace_msg", "-message_file", self._path("messages.log"),
                   "-trace_stat", "-stf", self._path("stats.csv"), "-fd", "1", "-cp", str(self.control_port)]
        command += self.extra + ([self.remote] if self.remote else [])
        with open(self._path("stderr.log"), "wb") as stderr:  # the child keeps its own descriptor
            self.process = subprocess.Popen(command, cwd=self.directory, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        _RUNNING.append(self)
        if not self.remote:
            _wait_for_udp_bound(self.port, self.process)
        return self

    def wait(self, timeout=None):
        """Wait for sipp to finish its calls; return its exit code (0: every call succeeded)."""
        try:
            self.returncode = self.process.wait(timeout=timeout or self.timeout + 5)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.returncode

    def stop(self):
        """Stop sipp now (SIGTERM, then SIGKILL); safe to call twice."""
        if self.process is not None:
            self.returncode = _terminate(self.process)

    def stats(self):
        """sipp's last statistics line as a dict ("SuccessfulCall(C)", "FailedCall(C)", ...)."""
        try:
            with open(self._path("stats.csv"), newline="") as stats:
                rows = list(csv.reader(stats, delimiter=";"))
        except FileNotFoundError:
            return {}
        return dict(zip(rows[0], rows[-1])) if len(rows) > 1 else {}

    def errors(self):
        """sipp's error log (unexpected messages, timeouts)."""
        return self._read("errors.log") + self._read("stderr.log")

    def messages(self):
        """Every SIP message sipp sent and received."""
        return self._read("messages.log")


    def _render(self):
        with open(os.path.join(SCENARIOS, self.scenario)) as template:
            text = template.read()
        for _ in range(2):  # a value may hold another's @NAME@ (the endings hold @HOLD_MS@)
            for name, value in self.values.items():
                text = text.replace(f"@{name}@", str(value))
        path = self._path(self.scenario)
        with open(path, "w") as out:
            out.write(text)
        return path


def _play_action(pcap):
    return f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'


def _info_dtmf(digit, cseq):
    """A SIP INFO carrying one key press (application/dtmf-relay), and its 200 OK."""
    return f"""<send retrans="500">
    <![CDATA[
      INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>"""


def _sipp_dtmf_pcap(digit):
    name = {"*": "star", "#": "pound"}.get(digit, digit)
    return os.path.join(SIPP_PCAPS, f"dtmf_2833_{name}.pcap")


_ENDINGS = {
    "bye": """<pause milliseconds="@PLAY_MS@"/>
  <pause milliseconds="@HOLD_MS@"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 99 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>""",
    "wait": """<recv request="BYE" timeout="30000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>""",
}
_ENDINGS["uas_wait"] = _ENDINGS["wait"]
_ENDINGS["uas_bye"] = """<pause milliseconds="@PLAY_MS@"/>
  <pause milliseconds="@HOLD_MS@"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$callee];tag=[pid]SIPpTag01[call_number]
      To: [$caller]
      [last_Call-ID:]
      CSeq: 100 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>"""


def _terminate(process):
    """Stop a peer and everything it started (SIGTERM, then SIGKILL); return its exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=3)
    return process.returncode


def _wait_for_udp_bound(port, process, timeout=5.0):
    """Wait until a process has bound ``port`` (so a call to it is not lost)."""
    def bound():
        if process.poll() is not None:
            return True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return True
        return False
    wait_until(bound, timeout)


# --- baresip ----------------------------------------------------------------------------

class Baresip(_PeerProcess):
    """baresip 1.0.0 as an operator's softphone: auto-answers, sends a sine tone, keeps what it hears.

    Headless: the sine comes from ``ausine`` (48 kHz stereo, resampled by baresip), the
    player is an ``aubridge`` device nobody listens to, and the ``sndfile`` filter dumps
    the decoded received audio to a WAV file. Commands go to ``ctrl_tcp`` (JSON in
    netstrings: dial, hangup) and key presses to the ``cons`` console (DTMF in a call).
    """

    def __init__(self, *, tone=700, user="operator", port=None, answer="auto"):
        self.tone = tone
        self.user = user
        self.port = port or free_udp_port()
        self.control_port = _free_tcp_port()
        self.console_port = _free_tcp_port()
        self.answer = answer
        self.directory = _scratch_directory("baresip-")
        self.uri = f"sip:{user}@127.0.0.1:{self.port}"
        self.process = None
        self._control = None
        self._buffer = b""
        self._events = []
        self._lock = threading.Lock()
        self._reader = None

    def start(self):
        """Write the config, start baresip and connect to its control port."""
        self._write_config()
        with open(self._path("stdout.log"), "wb") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(["baresip", "-f", self.directory], cwd=self.directory,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        _RUNNING.append(self)
        self._control = _connect(self.control_port, self.process)
        self._reader = threading.Thread(target=self._read_events, name="baresip-events", daemon=True)
        self._reader.start()
        return self

    def command(self, command, params=""):
        """Send a long command (``dial``, ``hangup``, ``listcalls``...) through ctrl_tcp."""
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._control.sendall(b"%d:%s," % (len(body), body))

    def dial(self, uri):
        """Call ``uri``."""
        self.command("dial", uri)

    def hangup(self):
        """Hang up the current call."""
        self.command("hangup")

    def send_dtmf(self, digits, gap=0.25):
        """Press keys in the current call; baresip sends them as RFC 2833 events."""
        with socket.create_connection(("127.0.0.1", self.console_port), timeout=2) as console:
            for digit in digits:
                console.sendall(digit.encode())
                time.sleep(gap)

    def events(self, kind=None):
        """ctrl_tcp events so far (dicts with "type", e.g. CALL_ESTABLISHED, CALL_CLOSED)."""
        with self._lock:
            return [e for e in self._events if kind is None or e.get("type") == kind]

    def wait_event(self, kind, timeout=5.0):
        """The first event of ``kind``, waiting for it; None on timeout."""
        return wait_until(lambda: (self.events(kind) or [None])[0], timeout)

    def received_pcm(self):
        """What baresip heard (decoded, 8 kHz mono), from the sndfile dump of the last call."""
        dumps = sorted((name for name in os.listdir(self.directory) if name.endswith("-dec.wav")),
                       key=lambda name: os.path.getmtime(self._path(name)))
        return read_wav(self._path(dumps[-1])) if dumps else b""

    def log(self):
        """baresip's console output."""
        with open(self._path("stdout.log"), errors="replace") as out:
            return out.read()

    def stop(self):
        """Quit baresip (SIGTERM, then SIGKILL); safe to call twice."""
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.close()
            self._control = None
        if self.process is not None:
            _terminate(self.process)


    def _write_config(self):
        config = {
            "module_path": BARESIP_MODULES,
            "sip_listen": f"127.0.0.1:{self.port}",
            "sip_trans_def": "udp",
            "audio_source": f"ausine,{self.tone}",
            "audio_player": "aubridge,nowhere",  # a device no source reads: a null player
            "ausrc_srate": "48000", "ausrc_channels": "2",  # all ausine can make
            "auplay_srate": "8000", "auplay_channels": "1",
            "audio_alert": "aubridge,nowhere",
            "snd_path": self.directory,
            "ctrl_tcp_listen": f"127.0.0.1:{self.control_port}",
            "cons_listen": f"127.0.0.1:{self.console_port}",
            "rtp_ports": "20000-60000",
        }
        modules = ["g711.so", "g722.so", "account.so", "ausine.so", "aubridge.so", "sndfile.so", "menu.so",
                   "cons.so", "ctrl_tcp.so"]
        lines = [f"{key} {value}" for key, value in config.items()] + [f"module {m}" for m in modules]
        with open(self._path("config"), "w") as out:
            out.write("\n".join(lines) + "\n")
        with open(self._path("accounts"), "w") as out:
            out.write(f"<sip:{self.user}@127.0.0.1:{self.port}>;regint=0;answermode={self.answer}\n")
        with open(self._path("contacts"), "w") as out:
            out.write("")

    def _read_events(self):
        while True:
            try:
                data = self._control.recv(4096) if self._control else b""
            except OSError:
                return
            if not data:
                return
            self._buffer += data
            self._parse_netstrings()

    def _parse_netstrings(self):
        while b":" in self._buffer:
            length, _, rest = self._buffer.partition(b":")
            if not length.isdigit() or len(rest) < int(length) + 1:
                return
            body, self._buffer = rest[:int(length)], rest[int(length) + 1:]
            with contextlib.suppress(ValueError), self._lock:
                self._events.append(json.loads(body))


def _free_tcp_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _connect(port, process, timeout=5.0):
    """A TCP connection to a port the process is about to open."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=2)
            connection.settimeout(None)  # the event reader blocks until baresip says something
            return connection
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} (exit code {process.poll()})") from None
            time.sleep(0.05)
