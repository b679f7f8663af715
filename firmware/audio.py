"""Modem audio ports: 8 kHz 16-bit mono PCM carried over a serial interface.

The SIM7600 puts call audio on a USB serial interface once ``AT+CPCMREG=1`` is given;
Huawei dongles and Quectel modems do the same on their voice ports. A reader thread
cuts the stream into 20 ms frames and keeps the newest few, so a late engine tick
drops old audio instead of building up delay; a writer thread sends queued frames, so
a modem that stops reading never stalls the media clock.
"""
import logging
import threading

import serial

from .errors import PortClosed
from .frames import FRAME_BYTES, FramedAudio

log = logging.getLogger(__name__)


class SerialAudioPort(FramedAudio):
    """Reads and writes 320-byte PCM frames on a serial port given as a pyserial URL."""

    def __init__(self, url, *, name=None):
        super().__init__()
        self.name = name or url
        try:
            self._serial = serial.serial_for_url(url, baudrate=921600, timeout=0.05, write_timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as err:
            raise PortClosed(f"cannot open audio port {url}: {err}") from err
        self._stop = threading.Event()
        self._lost = None
        self._threads = [threading.Thread(target=self._read_loop, name=f"pcm-in-{self.name}", daemon=True),
                         threading.Thread(target=self._write_loop, name=f"pcm-out-{self.name}", daemon=True)]
        for thread in self._threads:
            thread.start()

    def close(self):
        """Stop the reader and close the port; safe to call twice."""
        self._stop.set()
        self._outgoing.close()  # wakes the writer thread
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
                self._incoming.put(pending[:FRAME_BYTES])
                pending = pending[FRAME_BYTES:]

    def _write_loop(self):
        while not self._stop.is_set():
            frame = self._outgoing.take(0.5)
            if frame is None or self._stop.is_set():
                continue
            try:
                self._serial.write(frame)
            except serial.SerialTimeoutException:
                self.unsent_writes += 1  # the modem is not reading: drop, keep the clock free
            except (serial.SerialException, OSError, TypeError) as err:
                self._port_lost(err)
                return

    def _check_writable(self):
        if self._lost is not None:
            raise PortClosed(f"{self.name}: audio write failed: {self._lost}")

    def _port_lost(self, err):
        if not self._stop.is_set():
            log.warning("%s: audio port lost: %s", self.name, err)
            self._lost = err
