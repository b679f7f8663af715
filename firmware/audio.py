"""Modem audio ports: 8 kHz 16-bit mono PCM carried over a serial interface.

The SIM7600 puts call audio on a USB serial interface once ``AT+CPCMREG=1`` is given;
Huawei dongles and Quectel modems do the same on their voice ports. A reader thread
cuts the stream into 20 ms frames and keeps the newest few, so a late engine tick
drops old audio instead of building up delay; a writer thread sends queued frames, so
a modem that stops reading never stalls the media clock.
"""
import collections
import logging
import threading

import serial

from .errors import PortClosed

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES * 2
MAX_BUFFERED_FRAMES = 10  # 200 ms: more than that is delay, not jitter


class SerialAudioPort:
    """Reads and writes 320-byte PCM frames on a serial port given as a pyserial URL."""

    def __init__(self, url, *, name=None):
        self.name = name or url
        try:
            self._serial = serial.serial_for_url(url, baudrate=921600, timeout=0.05, write_timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as err:
            raise PortClosed(f"cannot open audio port {url}: {err}") from err
        self._frames = collections.deque(maxlen=MAX_BUFFERED_FRAMES)
        self._outgoing = collections.deque(maxlen=MAX_BUFFERED_FRAMES)
        self._outgoing_ready = threading.Condition()
        self._stop = threading.Event()
        self._lost = None
        self.dropped_writes = 0
        self._threads = [threading.Thread(target=self._read_loop, name=f"pcm-in-{self.name}", daemon=True),
                         threading.Thread(target=self._write_loop, name=f"pcm-out-{self.name}", daemon=True)]
        for thread in self._threads:
            thread.start()

    def read_frame(self):
        """Return the oldest buffered frame, or None when none has arrived."""
        try:
            return self._frames.popleft()
        except IndexError:
            return None

    def write_frame(self, frame):
        """Queue one frame for the far end; never blocks (a stuck port drops old frames)."""
        if self._lost is not None:
            raise PortClosed(f"{self.name}: audio write failed: {self._lost}")
        with self._outgoing_ready:
            if len(self._outgoing) == MAX_BUFFERED_FRAMES:
                self.dropped_writes += 1
            self._outgoing.append(frame)
            self._outgoing_ready.notify()

    def flush(self):
        """Forget audio received before now (called when a call starts)."""
        self._frames.clear()

    def close(self):
        """Stop the reader and close the port; safe to call twice."""
        self._stop.set()
        with self._outgoing_ready:
            self._outgoing_ready.notify()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        try:
            self._serial.close()
        except (serial.SerialException, OSError):
            pass

    def _read_loop(self):
        pending = b""
        while not self._stop.is_set():
            try:
                pending += self._serial.read(FRAME_BYTES - len(pending) % FRAME_BYTES)
            except (serial.SerialException, OSError, TypeError) as err:
                self._port_lost(err)
                return
            while len(pending) >= FRAME_BYTES:
                self._frames.append(pending[:FRAME_BYTES])
                pending = pending[FRAME_BYTES:]

    def _write_loop(self):
        while not self._stop.is_set():
            with self._outgoing_ready:
                while not self._outgoing and not self._stop.is_set():
                    self._outgoing_ready.wait(0.5)
                if self._stop.is_set():
                    return
                frame = self._outgoing.popleft()
            try:
                self._serial.write(frame)
            except serial.SerialTimeoutException:
                self.dropped_writes += 1  # the modem is not reading: drop, keep the clock free
            except (serial.SerialException, OSError, TypeError) as err:
                self._port_lost(err)
                return

    def _port_lost(self, err):
        if not self._stop.is_set():
            log.warning("%s: audio port lost: %s", self.name, err)
            self._lost = err
