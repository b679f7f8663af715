"""Huawei E1550 / E173 / E1752 voice dongles, the modems asterisk-chan-dongle drives.

Follows chan_dongle's at_command.c / at_response.c and its BUGS notes: voice goes to
the serial voice port after AT^DDSETEX=2 (sent after ATA and after ATD), call progress
comes as ^ORIG / ^CONF / ^CONN / ^CEND (no space after the colon), AT+CHLD before ^CONF
kills the device (so we never send it), SMS only in PDU mode. There is no DTMF report
on most firmware: the engine detects keys in the caller's audio (``inband_dtmf``);
firmware that has ^DDTMF reports them after AT^DDTMFCFG=0,1.
"""
import logging

from .errors import ATCommandError
from .gsm import END_CAUSES, VOICE_LOCKED, VOICE_OK, GsmLine

log = logging.getLogger(__name__)


class HuaweiLine(GsmLine):
    """A voice line on a Huawei 3G dongle with its serial voice port."""

    family = "e1550"
    models = ("E1550", "E173", "E1752", "E155X", "E171", "E180")
    usb_ids = ((0x12D1, 0x1001), (0x12D1, 0x1003), (0x12D1, 0x140C), (0x12D1, 0x1436))
    audio_interface = 1  # chan_dongle: audio=/dev/ttyUSB1 beside data=/dev/ttyUSB2
    init_commands = ("AT+CLIP=1", "AT+CREG=2")
    hangup_command = "AT+CHUP"
    # No documented gain commands: chan_dongle applies rxgain/txgain to the audio in
    # software, and so does the engine for this family (``software_gain``).
    gain_commands = None
    software_gain = True
    ussd_packed = True
    text_mode_sms = False  # chan_dongle BUGS: long UCS2 text-mode SMS hang or reboot the dongle
    _call_index = None  # the ^ORIG / ^CONN index of the call in progress

    def _initialise(self, pin):
        super()._initialise(pin)
        self.voice = self._voice_support()
        if self.voice != VOICE_OK:
            log.warning("%s: voice is %s on this dongle; it can send SMS but not carry calls",
                        self.name, self.voice)
        try:
            self.command("AT^DDTMFCFG=0,1")
            self.inband_dtmf = False
        except ATCommandError:
            self.inband_dtmf = True  # no ^DDTMF on this firmware: listen in-band

    def _voice_support(self):
        """``^CVOICE:0,...`` means voice works; ``^CVOICE:1`` or ERROR means firmware without it."""
        try:
            lines = self.command("AT^CVOICE?", prefix="^CVOICE:")
        except ATCommandError:
            return VOICE_LOCKED  # chan_dongle at_response_error, CMD_AT_CVOICE: "Dongle has NO voice support"
        return voice_state(lines)

    def iccid(self):
        """The SIM card's ICCID (AT^ICCID on Huawei)."""
        line = next(iter(self.command("AT^ICCID?", prefix="^ICCID:")), "")
        return line.split(":", 1)[-1].strip()

    def _after_answer(self):
        self.command("AT^DDSETEX=2")

    def _after_dial(self):
        try:
            self.command("AT^DDSETEX=2")
        except ATCommandError as err:
            # The call may already have failed (^CEND on its way): that report ends it.
            log.info("%s: voice port not switched after dialling: %s", self.name, err)

    def _ussd_command(self, code):
        from .pdu import encode_ussd_request

        return f'AT+CUSD=1,"{encode_ussd_request(code, packed=True)}",15'

    def _family_urc(self, line):
        head = line.split(":", 1)[0]
        handler = {"^CONN": self._connected_report, "^CEND": self._cend, "^CONF": self._conf,
                   "^ORIG": self._orig, "^DDTMF": self._ddtmf, "^RSSI": _ignore, "^HCSQ": _ignore,
                   "^MODE": _ignore, "^BOOT": _ignore, "^SRVST": _ignore, "^CSNR": _ignore}.get(head)
        if handler is None:
            return False
        handler(line)
        return True

    def _connected_report(self, line):
        self._call_index = _index(line)
        self._connected()

    def _orig(self, line):
        self._call_index = _index(line)

    def _conf(self, line):
        self._alerting()

    def _cend(self, line):
        """^CEND:<idx>,<duration>,<end status>,<cc cause>."""
        fields = line.split(":", 1)[1].split(",")
        if self._call_index is not None and _index(line) not in (None, self._call_index):
            # A waiting call (+CCWA) that gave up ends with its own index (chan_dongle
            # at_response_cend): the call in progress goes on.
            return
        self._call_index = None
        cause = int(fields[3]) if len(fields) > 3 and fields[3].strip().isdigit() else 16
        self._end_call(self._cause(END_CAUSES.get(cause, "remote")))

    def _ddtmf(self, line):
        self._emit("dtmf", digit=line.split(":", 1)[1].strip()[:1])


def voice_state(lines):
    """"ok" or "locked by firmware" from AT^CVOICE?'s lines (chan_dongle at_response_cvoice:
    ``^CVOICE:<enabled>,<rate>,<bits>,<period>``, voice when <enabled> is 0)."""
    for line in lines:
        if line.startswith("^CVOICE:"):
            head = line.split(":", 1)[1].split(",")[0].strip()
            return VOICE_OK if head == "0" else VOICE_LOCKED
    return VOICE_LOCKED


def _index(line):
    """The call index of a ^ORIG / ^CONN / ^CEND report, or None."""
    field = line.split(":", 1)[1].split(",")[0].strip()
    return int(field) if field.isdigit() else None


def _ignore(line):
    """A report that carries nothing the line needs (signal is polled instead)."""
