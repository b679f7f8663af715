"""Quectel EC25 / EC20 / EG25-G LTE modules, the modems asterisk-chan-quectel drives.

Follows the Quectel EC2x AT Commands Manual (AT+QINDCFG="ccinfo" call reports,
AT+QTONEDET DTMF detection reported as ASCII codes, AT+QPCMV voice over the USB
serial port) and chan_quectel, which answers with AT+QPCMV=0;+QPCMV=1,0;A.
"""
import logging

from .errors import ATCommandError
from .gsm import GsmLine

# +QIND: "ccinfo" <state> follows +CLCC's <stat>; -1 is "released" (chan_quectel).
CCINFO_ACTIVE, CCINFO_ALERTING = 0, 3
DSCI_INCOMING = 4
log = logging.getLogger(__name__)


class QuectelLine(GsmLine):
    """A voice line on a Quectel EC25: ccinfo call reports, +QTONEDET, PCM on a serial port."""

    family = "ec25"
    models = ("EC25", "EC20", "EG25", "EC21")
    usb_ids = ((0x2C7C, 0x0125), (0x2C7C, 0x0121))
    audio_interface = 1  # the NMEA port, once AT+QGPSCFG="outport","none" frees it
    init_commands = ("AT+CLIP=1", "AT+QTONEDET=1", "AT+CEREG=2", "AT+CTZU=1")
    # Each may be missing on some firmware; the call reports come from whichever works.
    # GPS output off the ports we use (MODEMS.md: NMEA on the voice/AT port clashes),
    # "ccinfo" call reports (EC2x manual), ^DSCI call reports (older firmware: chan_quectel's
    # at_response_dsci).
    optional_commands = ('AT+QGPSCFG="outport","none"', 'AT+QINDCFG="ccinfo",1,0', "AT^DSCI=1")
    pcm_mode = None  # AT+QPCMV?'s <mode>: 0 USB serial, 2 USB audio class (UAC)
    gain_commands = ("AT+QMIC={},{}", "AT+CLVL={}", (0, 65535), (0, 5))

    def set_gain(self, microphone, speaker):
        """Set uplink (microphone) gain and speaker volume, each 0-100 %."""
        from .gsm import _scale

        mic = _scale(microphone, (0, 65535))
        self.command(f"AT+QMIC={mic},{mic}")
        self.command(f"AT+CLVL={_scale(speaker, (0, 5))}")

    def _initialise(self, pin):
        super()._initialise(pin)
        for command in self.optional_commands:
            try:
                self.command(command)
            except ATCommandError as err:
                log.info("%s: %s not supported here: %s", self.name, command, err.result)
        self._read_pcm_mode()

    def _read_pcm_mode(self):
        """A modem left in USB audio class mode (AT+QPCMV=1,2) has no PCM on the serial port
        until ``AT+QPCMV=1,0``, which every answer and dial sends (chan_quectel does the same)."""
        try:
            fields = self.command("AT+QPCMV?", prefix="+QPCMV:")
        except ATCommandError:
            return
        values = fields[0].split(":", 1)[1].split(",") if fields else []
        self.pcm_mode = int(values[1]) if len(values) > 1 and values[1].strip().isdigit() else None
        if self.pcm_mode == 2:
            log.info("%s: voice was on USB audio class (AT+QPCMV=1,2); calls use the serial PCM port", self.name)

    def iccid(self):
        """The SIM card's ICCID (AT+QCCID on Quectel)."""
        line = next(iter(self.command("AT+QCCID", prefix="+QCCID:")), "")
        return line.split(":", 1)[-1].strip()

    def enable_volte(self):
        """Turn IMS (VoLTE) on (AT+QCFG="ims",1; the operator's MBN profile must allow it)."""
        self.command('AT+QCFG="ims",1')

    def _answer_command(self):
        return "AT+QPCMV=0;+QPCMV=1,0;A"

    def _after_dial(self):
        self.command("AT+QPCMV=1,0")

    def _family_urc(self, line):
        if line.startswith("+QTONEDET:"):
            code = line.split(":", 1)[1].strip()
            if code.isdigit():
                self._emit("dtmf", digit=chr(int(code)))
            return True
        if line.startswith('+QIND: "ccinfo"'):
            self._ccinfo(line)
            return True
        if line.startswith("^DSCI:"):
            self._dsci(line)
            return True
        return line.startswith("+QIND:")

    def _ccinfo(self, line):
        """+QIND: "ccinfo",<idx>,<dir>,<state>,<mode>,<mpty>,"<number>",<type>."""
        fields = line.split(",")
        state = int(fields[3]) if len(fields) > 3 and fields[3].strip().lstrip("-").isdigit() else None
        if state == CCINFO_ACTIVE:
            self._connected()
        elif state == CCINFO_ALERTING:
            self._alerting()
        # CCINFO_RELEASED is left to the NO CARRIER / BUSY that follows: it says why.

    def _dsci(self, line):
        """``^DSCI: <idx>,<dir>,<stat>,<type>,<number>,<type of number>`` (number unquoted:
        ``^DSCI: 2,1,4,0,+48XXXXXXXXX,145``, MODEMS.md); <stat> as +CLCC's."""
        fields = [field.strip().strip('"') for field in line.split(":", 1)[1].split(",")]
        state = int(fields[2]) if len(fields) > 2 and fields[2].lstrip("-").isdigit() else None
        if state == CCINFO_ACTIVE:
            self._connected()
        elif state == CCINFO_ALERTING:
            self._alerting()
        elif state == DSCI_INCOMING and len(fields) > 4:
            self._caller_id(fields[4])
