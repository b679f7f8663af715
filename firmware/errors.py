"""Exceptions of the hardware layer: one root, leaves that also inherit a builtin."""


class FirmwareError(Exception):
    """Root of every error raised by the firmware layer."""


class ATTimeout(FirmwareError, TimeoutError):
    """A modem did not finish answering a command in time."""


# 3GPP TS 27.007 9.2 (+CME ERROR) and TS 27.005 3.2.5 (+CMS ERROR), plus the
# vendor codes seen in the wild (../shared/MODEMS.md).
CME_ERRORS = {
    0: "phone failure", 3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
    11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy", 15: "SIM wrong",
    16: "incorrect password", 20: "memory full", 21: "invalid index", 22: "not found",
    30: "no network service", 31: "network timeout", 32: "network not allowed, emergency calls only",
    100: "unknown error", 515: "please wait, the modem is still starting",
}
CMS_ERRORS = {
    300: "ME failure", 302: "operation not allowed", 303: "operation not supported",
    304: "invalid PDU mode parameter", 305: "invalid text mode parameter", 310: "SIM not inserted",
    311: "SIM PIN required", 313: "SIM failure", 314: "SIM busy", 316: "SIM PUK required",
    320: "memory failure", 321: "invalid memory index", 322: "memory full", 330: "SMSC address unknown",
    331: "no network service", 332: "network timeout", 500: "unknown error",
}
RETRYABLE = {("CME", 14), ("CME", 515), ("CMS", 314)}


class ATCommandError(FirmwareError, RuntimeError):
    """A modem answered a command with ERROR, +CME ERROR or +CMS ERROR; ``meaning`` names it."""

    def __init__(self, command, result):
        self.command = command
        self.result = result
        self.code = _error_code(result)
        self.kind = "CMS" if result.startswith("+CMS") else "CME" if result.startswith("+CME") else None
        table = CMS_ERRORS if self.kind == "CMS" else CME_ERRORS if self.kind == "CME" else {}
        self.meaning = table.get(self.code)
        super().__init__(f"{command!r} failed: {result}" + (f" ({self.meaning})" if self.meaning else ""))

    @property
    def retryable(self):
        """True for errors that go away by themselves (SIM busy, modem still starting)."""
        return (self.kind, self.code) in RETRYABLE


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
