"""Pseudo-terminals for emulated devices: the emulator holds the master side."""
import os
import select
import threading
import tty


class PtyPort:
    """A pty pair; a driver opens ``path`` with pyserial exactly like /dev/ttyUSB0."""

    def __init__(self):
        self.master, self._slave = os.openpty()
        # Raw before anyone opens it, so nothing is echoed or translated in between;
        # keeping the slave open means a driver's close never gives the master EIO.
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self._write_lock = threading.Lock()
        self._closed = False

    def read(self, timeout):
        """Bytes the driver wrote, waiting up to ``timeout`` s; b"" if none."""
        if self._closed:
            return b""
        try:
            if not select.select([self.master], [], [], timeout)[0]:
                return b""
            return os.read(self.master, 4096)
        except (BlockingIOError, OSError, ValueError):
            return b""

    def write(self, data):
        """Send ``data`` to the driver; return False if the pty buffer is full."""
        with self._write_lock:
            if self._closed:
                return False
            try:
                os.write(self.master, data)
                return True
            except (BlockingIOError, OSError):
                return False

    def write_all(self, data, timeout=2.0):
        """Send all of ``data``, waiting for the driver to drain the buffer if needed."""
        view = memoryview(data)
        with self._write_lock:
            while view and not self._closed:
                try:
                    view = view[os.write(self.master, view):]
                except BlockingIOError:
                    if not select.select([], [self.master], [], timeout)[1]:
                        return False
                except OSError:
                    return False
        return not view

    def close(self):
        """Close both sides; safe to call twice."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            os.close(self.master)
            os.close(self._slave)
