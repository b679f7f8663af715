"""Power switches for modems: a hung modem is power-cycled, not just reopened.

Three ways, chosen per line in the config: a GPIO pin on the modem's power key (or
reset line) through gpiozero, a USB reset of the modem's device node (the kernel
re-enumerates it, as unplugging would), or the virtual twin's switch for emulated
modems, reached over its socket.
"""
import fcntl
import json
import os
import socket
import time

from .errors import FirmwareError

USBDEVFS_RESET = 0x5514  # _IO('U', 20) from linux/usbdevice_fs.h


class PowerError(FirmwareError, OSError):
    """A power switch could not be worked."""


class GpioPowerKey:
    """Pulses a GPIO pin wired to the modem's PWRKEY or RESET line.

    With a ``reset_pin`` as well, a cycle pulses RESET instead: a hung modem's firmware may
    ignore its power key (which only toggles power, so it could also leave the modem off),
    while RESET restarts it whatever state it is in. ``pulse_key`` still works the key, for
    a modem that is off.
    """

    def __init__(self, pin, *, active_high=True, pulse_seconds=1.5, pin_factory=None,
                 reset_pin=None, reset_seconds=0.5):
        from gpiozero import DigitalOutputDevice

        self.pin = pin
        self.reset_pin = reset_pin
        self.pulse_seconds = pulse_seconds
        self.reset_seconds = reset_seconds
        self._device = DigitalOutputDevice(pin, active_high=active_high, initial_value=False,
                                           pin_factory=pin_factory)
        self._reset = None
        if reset_pin is not None:
            try:
                self._reset = DigitalOutputDevice(reset_pin, active_high=active_high, initial_value=False,
                                                  pin_factory=pin_factory)
            except Exception:
                self._device.close()  # both pins or neither: never leave one reserved
                raise

    def cycle(self):
        """Restart the modem: pulse RESET when it is wired, else hold the power key."""
        if self._reset is not None:
            self._pulse(self._reset, self.reset_seconds)
        else:
            self.pulse_key()

    def pulse_key(self):
        """Hold the power key for the pulse time, then let go."""
        self._pulse(self._device, self.pulse_seconds)

    @staticmethod
    def _pulse(device, seconds):
        device.on()
        try:
            time.sleep(seconds)
        finally:
            device.off()  # a key left pressed would switch the modem off again

    def close(self):
        """Release the pins; safe to call twice."""
        self._device.close()
        if self._reset is not None:
            self._reset.close()


class UsbReset:
    """Resets the modem's USB device node (/dev/bus/usb/BBB/DDD)."""

    def __init__(self, device):
        self.device = device

    def cycle(self):
        """Ask the kernel to reset the device."""
        try:
            fd = os.open(self.device, os.O_WRONLY)
        except OSError as err:
            raise PowerError(f"cannot open {self.device} for a USB reset: {err}") from err
        try:
            fcntl.ioctl(fd, USBDEVFS_RESET, 0)
        except OSError as err:
            raise PowerError(f"USB reset of {self.device} failed: {err}") from err
        finally:
            os.close(fd)

    def close(self):
        """Nothing to release."""


class VirtualPowerSwitch:
    """The virtual twin's power switch for an emulated modem, reached over its socket."""

    def __init__(self, socket_path, line, imei=None):
        self.socket_path = socket_path
        self.line = line
        self.imei = imei

    def cycle(self):
        """Ask the twin to power-cycle the line's modem (found by IMEI when there is one)."""
        request = json.dumps({"cmd": "power_cycle", "line": self.line, "imei": self.imei}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(self.socket_path)
                sock.sendall(request)
                reply = json.loads(sock.makefile("rb").readline() or b"{}")
        except (OSError, ValueError) as err:
            raise PowerError(f"the virtual power switch does not answer: {err}") from err
        if not reply.get("ok"):
            raise PowerError(f"the virtual power switch refused: {reply.get('error')}")

    def close(self):
        """Nothing to release."""
