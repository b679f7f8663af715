"""Exceptions of the hardware layer: one root, leaves that also inherit a builtin."""


class FirmwareError(Exception):
    """Root of every error raised by the firmware layer."""


class ATTimeout(FirmwareError, TimeoutError):
    """A modem did not finish answering a command in time."""


class ATCommandError(FirmwareError, RuntimeError):
    """A modem answered a command with ERROR, +CME ERROR or +CMS ERROR."""

    def __init__(self, command, result):
        self.command = command
        self.result = result
        self.code = _error_code(result)
        super().__init__(f"{command!r} failed: {result}")


class PortClosed(FirmwareError, ConnectionError):
    """The serial port went away (modem unplugged, pty closed) or was closed by us."""


class LineStateError(FirmwareError, RuntimeError):
    """An operation was asked of a line in a state that cannot do it."""


def _error_code(result):
    """Return the numeric code of a ``+CME ERROR: n`` result, or None."""
    _, sep, tail = result.partition(":")
    tail = tail.strip()
    return int(tail) if sep and tail.isdigit() else None


class SimError(FirmwareError, PermissionError):
    """The SIM is locked (PIN needed or refused), missing or blocked."""
