"""SIMCom families: the SIM800 (2G, audio on a USB sound card) and the SIM7600 (LTE).

SIM800: SIM800 Series AT Command Manual V1.09 (AT+DDET 2.2.x, +DTMF: <key>,<duration>,
AT+CLCC=1 pushing +CLCC on every change, AT+CMIC / AT+CLVL); call audio is analog, so
the line's audio port is the USB sound card wired to it.
SIM7600: SIM7500_SIM7600 Series AT Command Manual V1.08+ (VOICE CALL: BEGIN / END,
+RXDTMF, AT+CPCMREG for PCM on the USB serial interface 4, AT+CMICGAIN/AT+COUTGAIN).
"""
from .gsm import GsmLine


class Sim800Line(GsmLine):
    """A voice line on a SIMCom SIM800/SIM900: +DTMF reports, audio on a sound card."""

    family = "sim800"
    models = ("SIM800", "SIM900", "SIM868")
    usb_ids = ((0x1A86, 0x7523), (0x10C4, 0xEA60), (0x0403, 0x6001))  # its USB-serial adapters
    init_commands = ("AT+CLIP=1", "AT+CVHU=0", "AT+CLCC=1", "AT+DDET=1,100,1,1", "AT+CLTS=1")
    gain_commands = ("AT+CMIC=0,{}", "AT+CLVL={}", (0, 15), (0, 100))

    def _after_answer(self):
        self._connected()  # the SIM800 has no "call begins" report: ATA's OK is it

    def _family_urc(self, line):
        if line.startswith("+DTMF:"):
            self._emit("dtmf", digit=line.split(":", 1)[1].strip()[:1])
            return True
        if line.startswith(("*PSUTTZ:", "*PSNWID:", "DST:")):
            return True  # network time reports; the clock is read with AT+CCLK?
        return False


class Sim7600Line(GsmLine):
    """A voice line on a SIMCom SIM7600: VOICE CALL reports, +RXDTMF, PCM on a serial port."""

    family = "sim7600"
    models = ("SIM7600", "SIM7500", "SIM7100")
    usb_ids = ((0x1E0E, 0x9001), (0x1E0E, 0x9011))
    audio_interface = 4  # "the fifth ttyUSB" (MODEMS.md)
    init_commands = ("AT+CLIP=1", "AT+CVHU=0", "AT+CLCC=1", "AT+DDET=1", "AT+CTZU=1")
    gain_commands = ("AT+CMICGAIN={}", "AT+COUTGAIN={}", (0, 8), (0, 8))

    def iccid(self):
        """The SIM card's ICCID (AT+CICCID on this family)."""
        line = next(iter(self.command("AT+CICCID", prefix="+ICCID:")), "")
        return line.split(":", 1)[-1].strip()

    def _audio_on(self):
        self.command("AT+CPCMREG=1")

    def _audio_off(self):
        self.command("AT+CPCMREG=0")

    def _family_urc(self, line):
        if line == "VOICE CALL: BEGIN":
            self._connected()
        elif line.startswith("VOICE CALL: END"):
            self._end_call(self._cause("remote"))
        elif line.startswith("MISSED_CALL:"):
            self._missed()
        elif line.startswith("+RXDTMF:"):
            self._emit("dtmf", digit=line.split(":", 1)[1].strip()[:1])
        else:
            return False
        return True
