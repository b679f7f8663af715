"""Quectel EC25 / EC20 / EG25-G LTE modules, the modems asterisk-chan-quectel drives.

Follows the Quectel EC2x AT Commands Manual (AT+QINDCFG="ccinfo" call reports,
AT+QTONEDET DTMF detection reported as ASCII codes, AT+QPCMV voice over the USB
serial port) and chan_quectel, which answers with AT+QPCMV=0;+QPCMV=1,0;A.
"""
from .gsm import GsmLine

# +QIND: "ccinfo" <state> follows +CLCC's <stat>; -1 is "released" (chan_quectel).
CCINFO_ACTIVE, CCINFO_ALERTING = 0, 3


class QuectelLine(GsmLine):
    """A voice line on a Quectel EC25: ccinfo call reports, +QTONEDET, PCM on a serial port."""

    family = "ec25"
    models = ("EC25", "EC20", "EG25", "EC21")
    usb_ids = ((0x2C7C, 0x0125), (0x2C7C, 0x0121))
    audio_interface = 1  # the NMEA port, once AT+QGPSCFG="outport","none" frees it
    init_commands = ("AT+CLIP=1", 'AT+QINDCFG="ccinfo",1,0', "AT+QTONEDET=1", "AT+CEREG=2",
                     "AT+CTZU=1")
    gain_commands = ("AT+QMIC={},{}", "AT+CLVL={}", (0, 65535), (0, 5))

    def set_gain(self, microphone, speaker):
        """Set uplink (microphone) gain and speaker volume, each 0-100 %."""
        from .gsm import _scale

        mic = _scale(microphone, (0, 65535))
        self.command(f"AT+QMIC={mic},{mic}")
        self.command(f"AT+CLVL={_scale(speaker, (0, 5))}")

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
