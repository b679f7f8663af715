"""The AT command channel: one command in flight, unsolicited results told apart.

A reader thread splits the byte stream into lines. While a command is pending, a line
is part of its answer unless it looks like an unsolicited result code (URC) that the
command did not ask for; URCs go to an event queue that a second thread hands to the
driver, so a URC handler may itself send commands. Ports are pyserial URLs, so
``spy:///dev/ttyUSB2`` logs the wire for field debugging.
"""
import logging
import queue
import re
import threading
from dataclasses import dataclass, field

import serial

from .errors import ATCommandError, ATTimeout, PortClosed

log = logging.getLogger(__name__)

FINAL_OK = ("OK",)
FINAL_ERROR = ("ERROR", "+CME ERROR", "+CMS ERROR", "COMMAND NOT SUPPORT")
# Call-progress words are the final result of ATA/ATD, and unsolicited otherwise.
CALL_RESULTS = ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")

# Prefixes of every URC the supported modem families send (see shared MODEMS.md).
URC_PREFIXES = (
    "RING", "+CRING:", "+CLIP:", "VOICE CALL:", "MISSED_CALL:", "+CLCC:", "+RXDTMF:",
    "+DTMF:", "+QTONEDET:", "^DDTMF:", "NO CARRIER", "BUSY", "NO ANSWER", "RDY",
    "+CPIN:", "SMS DONE", "PB DONE", "+CMTI:", "+CUSD:", "+CREG:", "+CEREG:", "+CGREG:",
    "^RSSI:", "^HCSQ:", "^MODE:", "^BOOT:", "^SRVST:", "^ORIG:", "^CONF:", "^CONN:",
    "^CEND:", "+QIND:", "+CFUN:", "+QUSIM:", "*PSUTTZ:", "*PSNWID:", "+CTZV:", "+CTZE:",
    "+CPSI:", "^DSCI:",
)
MAX_LINE = 4096
NMEA = re.compile(r"\$G[PLNABQ][A-Z]{3},")
GLUED_FINAL = re.compile(r"(OK|ERROR)(?=[+^][A-Z])")


@dataclass
class _Pending:
    """The command in flight and the lines of its answer so far."""

    command: str
    prefix: str | None
    lines: list = field(default_factory=list)
    result: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    prompt: threading.Event | None = None  # set when the modem asks for the payload ("> ")
    ok: tuple = FINAL_OK  # the final results that mean success (a voice modem adds CONNECT, VCON)

    def expects_call_result(self):
        """Whether NO CARRIER/BUSY/... ends this command rather than arriving as a URC."""
        head = self.command.upper()
        return head.startswith("ATD") or head == "ATA"


class ATChannel:
    """A serial AT port: send a command, get its answer lines; URCs go to a handler."""

    def __init__(self, url, on_urc, *, on_closed=None, baudrate=115200, name=None, byte_filter=None,
                 ok_results=FINAL_OK, urc_prefixes=URC_PREFIXES, write_timeout=None):
        self.name = name or url
        self._on_urc = on_urc
        self._on_closed = on_closed
        # A voice modem streams audio on this same port: its filter takes every byte read
        # first and gives back only the text meant for the line splitter.
        self._filter = byte_filter
        self._ok = tuple(ok_results)
        self._urc_prefixes = tuple(urc_prefixes)
        self._serial = _open(url, baudrate, write_timeout)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending = None
        self._stop = threading.Event()
        self._urcs = queue.Queue()
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name=f"at-read-{self.name}", daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name=f"at-urc-{self.name}", daemon=True)
        self._reader.start()
        self._dispatcher.start()

    @property
    def closed(self):
        """True once the port is closed or lost."""
        return self._closed

    def command(self, command, *, timeout=5.0, prefix=None, payload=None, terminator="\r"):
        """Send ``command`` and return its information lines; raise on error or timeout.

        ``prefix`` (``"+CSQ:"``) claims lines that would otherwise pass for URCs. With
        ``payload`` (an SMS PDU), wait for the ``> `` prompt, send it and end it with Ctrl-Z.
        ``terminator=""`` sends a shielded code (``<DLE>^``) that ends a voice stream and
        waits for its final result like any command.
        """
        with self._lock:
            if self._closed:
                raise PortClosed(f"{self.name} is closed")
            pending = _Pending(command, prefix, prompt=threading.Event() if payload is not None else None,
                               ok=self._ok)
            self._pending = pending
            try:
                self._write(command + terminator)
                if payload is not None:
                    self._send_payload(pending, payload, timeout)
                if not pending.done.wait(timeout):
                    raise ATTimeout(f"{self.name}: no answer to {command!r} within {timeout:g} s")
            finally:
                self._pending = None
        return _outcome(pending, self.name)

    def _send_payload(self, pending, payload, timeout):
        if not pending.prompt.wait(timeout) or pending.done.is_set():
            if not pending.done.is_set():
                self._write("\x1b")  # ESC: leave the prompt so the modem is not stuck in it
                raise ATTimeout(f"{self.name}: no '>' prompt after {pending.command!r}")
            return
        self._write(payload + "\x1a")

    def write_bytes(self, data):
        """Write raw bytes outside any command (voice audio, a dial abort); False if the port
        would not take them in time (the caller drops them rather than stall)."""
        if self._closed:
            raise PortClosed(f"{self.name} is closed")
        try:
            with self._write_lock:
                self._serial.write(data)
        except serial.SerialTimeoutException:
            return False
        except (serial.SerialException, OSError, TypeError) as err:
            self._mark_closed()
            raise PortClosed(f"{self.name}: write failed: {err}") from err
        return True

    def post(self, item):
        """Queue ``item`` for the URC handler's thread, in order with the URCs (a stream filter's events)."""
        if not self._closed:
            self._urcs.put(item)

    def close(self):
        """Stop the threads and close the port; safe to call twice."""
        self._stop.set()
        if self._closed and not self._reader.is_alive():
            return
        self._mark_closed()
        for thread in (self._reader, self._dispatcher):
            if thread is not threading.current_thread():
                thread.join(timeout=2)

    def _write(self, text):
        try:
            with self._write_lock:
                self._serial.write(text.encode("ascii"))
        except (serial.SerialException, OSError) as err:
            self._mark_closed()
            raise PortClosed(f"{self.name}: write failed: {err}") from err

    def _read_loop(self):
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = self._serial.read(self._serial.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError) as err:
                if not self._stop.is_set():
                    log.warning("%s: port lost: %s", self.name, err)
                break
            if self._filter is not None:
                chunk = self._filter(chunk)
            buffer = self._split_lines(buffer + chunk)
            buffer = self._check_prompt(buffer)
        self._mark_closed()

    def _check_prompt(self, buffer):
        """The payload prompt ``> `` comes without a line end: spot it in the rest."""
        pending = self._pending
        if pending is not None and pending.prompt is not None and buffer.strip() == b">":
            pending.prompt.set()
            return b""
        return buffer

    def _split_lines(self, buffer):
        """Hand every complete line in ``buffer`` on; return the unfinished rest."""
        while True:
            cut = min((i for i in (buffer.find(b"\r"), buffer.find(b"\n")) if i >= 0), default=-1)
            if cut < 0:
                break
            raw, buffer = buffer[:cut], buffer[cut + 1:]
            if raw:
                self._handle_raw(raw)
        if len(buffer) > MAX_LINE:
            log.warning("%s: dropped %d bytes without a line end", self.name, len(buffer))
            return b""
        return buffer

    def _handle_raw(self, raw):
        text = raw.decode("latin-1").strip()
        if not text:
            return
        if not text.isprintable():
            log.warning("%s: skipped malformed line %r", self.name, raw)
            return
        if NMEA.match(text):
            # GPS output left on the AT port (Quectel AT+QGPSCFG="outport"): not modem talk.
            log.debug("%s: skipped an NMEA sentence %r", self.name, text)
            return
        glued = GLUED_FINAL.match(text)
        if glued:
            # A result with no line end before the next line (Huawei "ERROR+CNUM:", which
            # chan_dongle's at_read.c splits the same way): two lines.
            self._handle_line(glued.group(1))
            text = text[glued.end():]
        self._handle_line(text)

    def _handle_line(self, line):
        pending = self._pending
        if pending is None or pending.done.is_set():
            self._urcs.put(line)
        elif line == pending.command:
            pass  # echo of our own command (echo is on until ATE0 takes effect)
        elif _is_final(line, pending):
            pending.result = line
            pending.done.set()
        elif _is_urc(line, pending, self._urc_prefixes):
            self._urcs.put(line)
        else:
            pending.lines.append(line)

    def _dispatch_loop(self):
        while True:
            line = self._urcs.get()
            if line is None:
                return
            try:
                self._on_urc(line)
            except Exception:  # a handler bug must not kill the port
                log.exception("%s: URC handler failed on %r", self.name, line)

    def _mark_closed(self):
        if self._closed:
            return
        self._closed = True
        pending = self._pending
        if pending is not None:
            pending.result = None
            pending.done.set()
        try:
            self._serial.close()
        except (serial.SerialException, OSError):
            pass
        self._urcs.put(None)
        if self._on_closed and not self._stop.is_set():
            self._on_closed()


def _open(url, baudrate, write_timeout=None):
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=0.1, exclusive=True, write_timeout=write_timeout)
    except (serial.SerialException, OSError, ValueError) as err:
        raise PortClosed(f"cannot open {url}: {err}") from err


def _is_final(line, pending):
    if line in pending.ok or line.startswith(FINAL_ERROR):
        return True
    return pending.expects_call_result() and line.startswith(CALL_RESULTS)


def _is_urc(line, pending, prefixes=URC_PREFIXES):
    if pending.prefix and line.startswith(pending.prefix):
        return False
    return line.startswith(prefixes)


def _outcome(pending, name):
    if pending.result is None:
        raise PortClosed(f"{name}: port closed during {pending.command!r}")
    if pending.result in pending.ok:
        return pending.lines
    raise ATCommandError(pending.command, pending.result)
