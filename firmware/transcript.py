"""Modem transcripts: record every byte of a real session, and serve it again on a pty.

A field bug becomes a test: the technician runs ``hotline modem record PORT --out FILE``,
which puts a pass-through pseudo-terminal between the driver and the real port (the idea of
pyserial's ``spy://``, but written to a file that can be replayed) and logs both directions
with timestamps, masking phone numbers, IMEIs and ICCIDs. ``hotline modem replay FILE``
serves the file on a pty: each command the driver sends is answered with the recorded reply
and the unsolicited lines come at their recorded places, so the real driver meets the real
modem's bytes again. The format is in docs/field-bugs.md.

One line per segment: ``<seconds> <direction> <JSON string>``, ``>`` what the host wrote,
``<`` what the modem sent; bytes are Latin-1 in the string. ``#`` lines are comments.
"""
import datetime
import json
import logging
import os
import re
import select
import threading
import time
import tty

import serial

from .errors import FirmwareError, PortClosed

log = logging.getLogger(__name__)

FORMAT = "hotline modem transcript v1"
TO_MODEM, FROM_MODEM = ">", "<"
MASKS = ("numbers", "imei", "iccid", "imsi")
DEFAULT_MASKS = ("numbers", "imei", "iccid")
MAX_GAP = 5.0  # seconds: a replay never waits longer than this between two lines
LOOKAHEAD = 20  # recorded commands a replay may skip to find the one the driver sent


class TranscriptError(FirmwareError, ValueError):
    """A transcript file that cannot be read; the message names the line."""


# --- masking ------------------------------------------------------------------------------

# Each pattern keeps what helps a diagnosis and masks what names a person or a device.
# IMEI: the TAC (8 digits, it names the model) is kept, on the lines that carry one only,
# so a hex PDU that happens to hold 15 digits is never touched.
_IMEI = re.compile(r'(?m)^((?:IMEI: ?|\+CGSN: ?"?|\+GSN: ?)?\d{8})(\d{7})(?="?\r|"?$)')
_ICCID = re.compile(r'(?m)^((?:[+^]\w*CCID: ?"?)?89\d{4})(\d{11,14}F?)(?="?\r|"?$)')  # issuer kept
# Phone numbers: international ones anywhere (+CLIP, ^DSCI unquoted, MISSED_CALL), national
# ones in quotes or dialled; the country code (or first two digits) is kept.
_NUMBER = re.compile(r'(\+\d{3}|(?<=")\d{2}|(?<=ATD)\d{2})(\d{4,13})(?=[",;\r\n\s]|$)', re.IGNORECASE)
_IMSI_REPLY = re.compile(r"(?m)^(\d{5})(\d{10})(?=\r|$)")  # AT+CIMI's answer: MCC+MNC kept


class Masker:
    """Replaces private numbers in modem text; the same number always gets the same mask."""

    def __init__(self, kinds=DEFAULT_MASKS):
        unknown = set(kinds) - set(MASKS)
        if unknown:
            raise ValueError(f"unknown mask {', '.join(sorted(unknown))}; known: {', '.join(MASKS)}")
        self.kinds = tuple(kind for kind in MASKS if kind in kinds)
        self._numbers = {}

    def mask(self, text):
        """``text`` with the chosen kinds of numbers masked."""
        if "iccid" in self.kinds:
            text = _ICCID.sub(lambda m: m.group(1) + "0" * len(m.group(2)), text)
        if "imsi" in self.kinds:
            text = _IMSI_REPLY.sub(lambda m: m.group(1) + "0" * 10, text)
        if "imei" in self.kinds:
            text = _IMEI.sub(lambda m: m.group(1) + "0" * 7, text)
        if "numbers" in self.kinds:
            text = _NUMBER.sub(self._number, text)
        return text

    def _number(self, match):
        prefix, rest = match.group(1), match.group(2)
        if match.group(0) not in self._numbers:
            serial_number = str(len(self._numbers) + 1)
            self._numbers[match.group(0)] = prefix + serial_number.rjust(len(rest), "0")
        return self._numbers[match.group(0)]


# --- the file -------------------------------------------------------------------------------


class TranscriptWriter:
    """Writes segments as they come; a segment ends at a line end, so masks see whole lines."""

    def __init__(self, path, *, masks=DEFAULT_MASKS, port="", note=""):
        self._file = open(path, "w", encoding="utf-8")
        self._masker = Masker(masks)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._partial = {TO_MODEM: (None, b""), FROM_MODEM: (None, b"")}
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        header = [FORMAT, f"port: {port}", f"recorded: {stamp}", f"masked: {', '.join(self._masker.kinds) or 'nothing'}"]
        self._file.write("".join(f"# {line}\n" for line in header + ([note] if note else [])))

    def add(self, direction, data):
        """Log ``data`` seen going ``direction`` (TO_MODEM or FROM_MODEM)."""
        with self._lock:
            started, pending = self._partial[direction]
            started = time.monotonic() if started is None else started
            pending += data
            while True:
                cut = _segment_end(pending, direction)
                if cut < 0:
                    break
                self._write(started, direction, pending[:cut])
                pending, started = pending[cut:], time.monotonic()
            self._partial[direction] = (started if pending else None, pending)

    def comment(self, text):
        """Add a ``# text`` line (``key: value`` lines are read back by ``header``)."""
        with self._lock:
            self._file.write(f"# {text}\n")
            self._file.flush()

    def mask(self, text):
        """``text`` masked as the file's lines are (the same number gets the same mask)."""
        with self._lock:
            return self._masker.mask(text)

    def close(self):
        """Write what is left and close the file."""
        with self._lock:
            for direction, (started, pending) in self._partial.items():
                if pending:
                    self._write(started, direction, pending)
            self._file.close()

    def _write(self, started, direction, data):
        text = self._masker.mask(data.decode("latin-1"))
        self._file.write(f"{started - self._started:.3f} {direction} {json.dumps(text)}\n")
        self._file.flush()


def _segment_end(data, direction):
    """Where the first segment of ``data`` ends (after a line end, a payload's Ctrl-Z or ESC,
    or the SMS prompt ``> ``), or -1 while it is unfinished."""
    if direction == TO_MODEM:
        ends = [end for end in (data.find(b"\r"), data.find(b"\x1a"), data.find(b"\x1b")) if end >= 0]
        return min(ends) + 1 if ends else -1
    # A modem line is kept whole with the CRLF before it ("\r\nOK\r\n"), echo included.
    start = len(data) - len(data.lstrip(b"\r\n"))
    newline = data.find(b"\n", start)
    if newline >= 0:
        return newline + 1
    return len(data) if data.endswith(b"> ") else -1


def header(path):
    """The ``# key: value`` comments of a transcript file, as a dict."""
    found = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("# ") and ": " in line:
                key, value = line[2:].rstrip("\n").split(": ", 1)
                found[key.strip()] = value
    return found


def read(path):
    """The segments of a transcript file: a list of (seconds, direction, bytes)."""
    segments = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                stamp, direction, text = line.rstrip("\n").split(" ", 2)
                segments.append((float(stamp), direction, json.loads(text).encode("latin-1")))
            except (ValueError, UnicodeEncodeError) as err:
                raise TranscriptError(f"{path}:{number}: not a transcript line: {err}") from err
            if direction not in (TO_MODEM, FROM_MODEM):
                raise TranscriptError(f"{path}:{number}: direction must be > or <, not {direction!r}")
    return segments


# --- recording: a pass-through pty --------------------------------------------------------


def _open_pty():
    """A raw pty pair: (master fd, slave fd, slave path)."""
    master, slave = os.openpty()
    tty.setraw(slave)  # raw before the driver opens it: nothing echoed or translated
    return master, slave, os.ttyname(slave)


class Tap:
    """A pty whose bytes go to and from ``port`` (a pyserial URL), each logged to ``writer``."""

    def __init__(self, port, writer, baudrate=115200):
        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as err:
            raise PortClosed(f"cannot open {port}: {err}") from err
        self._writer = writer
        self._master, self._slave, self.path = _open_pty()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=loop, name=f"tap-{loop.__name__}", daemon=True)
                         for loop in (self._to_modem, self._from_modem)]
        for thread in self._threads:
            thread.start()

    def _to_modem(self):
        while not self._stop.is_set():
            if not select.select([self._master], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(self._master, 4096)
                # Logged before the modem has it, so its answer can never come first in the file.
                self._writer.add(TO_MODEM, data)
                self._serial.write(data)
            except (OSError, serial.SerialException) as err:
                log.warning("tap: host side lost: %s", err)
                return

    def _from_modem(self):
        while not self._stop.is_set():
            try:
                data = self._serial.read(self._serial.in_waiting or 1)
            except (OSError, serial.SerialException, TypeError) as err:
                if not self._stop.is_set():
                    log.warning("tap: modem side lost: %s", err)
                return
            if data:
                self._writer.add(FROM_MODEM, data)
                os.write(self._master, data)

    def close(self):
        """Stop passing bytes and close both sides; the writer is the caller's to close."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._serial.close()
        os.close(self._master)
        os.close(self._slave)


# --- replaying ------------------------------------------------------------------------------


def exchanges(segments):
    """The recording as (command, [(delay after it, reply bytes)...]); the first command is None
    (what the modem said before anyone spoke: boot lines)."""
    result = [(None, 0.0, [])]
    for stamp, direction, data in segments:
        if direction == TO_MODEM:
            result.append((data, stamp, []))
        else:
            result[-1][2].append((stamp - result[-1][1], data))
    return [(command, replies) for command, _, replies in result]


def _same_command(sent, recorded):
    """Whether the driver sent what was recorded; masked numbers and SMS payloads (their
    references change every time) are compared loosely."""
    if recorded.endswith(b"\x1a") and sent.endswith(b"\x1a"):
        return True

    def normal(data):
        return re.sub(r"\d{6,}", "#", data.decode("latin-1").strip().upper())

    return normal(sent) == normal(recorded)


class Replayer:
    """Serves a transcript on a pty: the recorded reply to each command the driver sends."""

    def __init__(self, path, *, speed=1.0, max_gap=MAX_GAP):
        self._script = exchanges(read(path))
        self.speed, self.max_gap = max(speed, 0.01), max_gap
        self.unmatched = []  # commands the recording had no answer for (answered ERROR)
        self.skipped = []  # recorded commands the driver never sent
        self._next = 1
        self._pending = []  # (due, bytes) still to send
        self._master, self._slave, self.path = _open_pty()
        self._stop = threading.Event()
        self._queue_replies(self._script[0][1])
        self._thread = threading.Thread(target=self._serve, name="replay", daemon=True)
        self._thread.start()

    @property
    def finished(self):
        """True once every recorded command was answered and every reply sent."""
        return self._next >= len(self._script) and not self._pending

    def close(self):
        """Stop serving and close the pty."""
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._master)
        os.close(self._slave)

    def _serve(self):
        received = b""
        while not self._stop.is_set():
            wait = min([max(0.0, due - time.monotonic()) for due, _ in self._pending[:1]] + [0.1])
            if select.select([self._master], [], [], wait)[0]:
                try:
                    received += os.read(self._master, 4096)
                except OSError:
                    return
                received = self._take(received)
            self._send_due(time.monotonic())

    def _take(self, received):
        """Answer every complete command (or payload) in ``received``; return the rest."""
        while True:
            cut = _segment_end(received, TO_MODEM)
            if cut < 0:
                return received
            unit, received = received[:cut], received[cut:]
            self._send_due(float("inf"))  # what was recorded before this command goes first
            self._answer(unit)

    def _answer(self, unit):
        if not unit.strip(b"\r\n"):
            return
        window = self._script[self._next:self._next + LOOKAHEAD]
        found = next((i for i, (command, _) in enumerate(window) if _same_command(unit, command)), None)
        if found is None:
            log.warning("replay: %r is not in the recording here; answered ERROR", unit)
            self.unmatched.append(unit)
            self._pending.append((time.monotonic(), b"\r\nERROR\r\n"))
            return
        self.skipped += [command for command, _ in window[:found]]
        self._queue_replies(window[found][1])
        self._next += found + 1

    def _queue_replies(self, replies):
        now = time.monotonic()
        for delay, data in replies:
            self._pending.append((now + min(self.max_gap, delay / self.speed), data))

    def _send_due(self, now):
        while self._pending and self._pending[0][0] <= now:
            _, data = self._pending.pop(0)
            try:
                os.write(self._master, data)
            except OSError:
                return
