"""SIMCom families: the SIM800 (2G, audio on a USB sound card) and the SIM7600 (LTE).

SIM800: SIM800 Series AT Command Manual V1.09 (AT+DDET 2.2.x, +DTMF: <key>,<duration>,
AT+CLCC=1 pushing +CLCC on every change, AT+CMIC / AT+CLVL); call audio is analog, so
the line's audio port is the USB sound card wired to it.
SIM7600: SIM7500_SIM7600 Series AT Command Manual V1.08+ (VOICE CALL: BEGIN / END,
+RXDTMF, AT+CPCMREG for PCM on the USB serial interface 4, AT+CMICGAIN/AT+COUTGAIN).
"""
import logging
import threading

from .audio import SerialAudioPort
from .errors import ATCommandError, FirmwareError
from .frames import FrameBuffer, FramedAudio
from .gsm import ACTIVE, GsmLine

log = logging.getLogger(__name__)
PCM_CHECK_SECONDS = 2.0


class Sim800Line(GsmLine):
    """A voice line on a SIMCom SIM800/SIM900: +DTMF reports, audio on a sound card."""

    family = "sim800"
    models = ("SIM800", "SIM900", "SIM868")
    usb_ids = ((0x1A86, 0x7523), (0x10C4, 0xEA60), (0x0403, 0x6001))  # its USB-serial adapters
    # AT+CSCS="GSM": a SIM800 left in "HEX" by another program answers USSD with an empty
    # text (TinyGSM #192); text-mode SMS set UCS2 afterwards, which USSD survives.
    init_commands = ("AT+CLIP=1", "AT+CVHU=0", "AT+CLCC=1", "AT+DDET=1,100,1,1", "AT+CLTS=1", 'AT+CSCS="GSM"')
    gain_commands = ("AT+CMIC=0,{}", "AT+CLVL={}", (0, 15), (0, 100))

    def _after_answer(self):
        self._connected()  # the SIM800 has no "call begins" report: ATA's OK is it

    def _family_urc(self, line):
        if line.startswith("+DTMF:"):
            self._emit("dtmf", digit=line.split(":", 1)[1].strip()[:1])
            return True
        if line.startswith(("*PSUTTZ:", "*PSNWID:", "DST:", "+CTZV:")):
            return True  # network time reports (AT+CLTS=1, AT+CTZR=1); the clock is read with AT+CCLK?
        return False


class Sim7600Line(GsmLine):
    """A voice line on a SIMCom SIM7600: VOICE CALL reports, +RXDTMF, PCM on a serial port."""

    family = "sim7600"
    models = ("SIM7600", "SIM7500", "SIM7100")
    usb_ids = ((0x1E0E, 0x9001), (0x1E0E, 0x9011))
    audio_interface = 4  # "the fifth ttyUSB" (MODEMS.md)
    init_commands = ("AT+CLIP=1", "AT+CVHU=0", "AT+CLCC=1", "AT+DDET=1", "AT+CTZU=1")
    gain_commands = ("AT+CMICGAIN={}", "AT+COUTGAIN={}", (0, 8), (0, 8))
    pcm_check_seconds = PCM_CHECK_SECONDS

    def iccid(self):
        """The SIM card's ICCID (AT+CICCID on this family)."""
        line = next(iter(self.command("AT+CICCID", prefix="+ICCID:")), "")
        return line.split(":", 1)[-1].strip()

    def _open_audio(self, audio_port):
        return WatchedAudioPort(audio_port, name=f"{self.name}-audio") if audio_port else None

    def _audio_on(self):
        """PCM on; if no frame comes within PCM_CHECK_SECONDS the port has half-died."""
        try:
            self.command("AT+CPCMREG=1")
        except ATCommandError as err:
            self._emit("audio_dead", reason=f"AT+CPCMREG=1 failed: {err.result}")
            return
        if self.audio is not None:
            self._pcm_watch = threading.Timer(self.pcm_check_seconds, self._check_pcm, args=(self.audio.frames_received,))
            self._pcm_watch.daemon = True
            self._pcm_watch.start()

    def _check_pcm(self, frames_before):
        # MODEMS.md, SIM7600: after a call the audio port can stop carrying PCM until
        # AT+CRESET; the call looks connected but nobody hears anything.
        if self.state == ACTIVE and self.audio is not None and self.audio.frames_received == frames_before:
            self._emit("audio_dead", reason=f"no audio frames {self.pcm_check_seconds:g} s after the call connected")

    def _audio_off(self):
        if getattr(self, "_pcm_watch", None) is not None:
            self._pcm_watch.cancel()
        self.command("AT+CPCMREG=0")

    def reset(self):
        """Restart the module with AT+CRESET (the cure for its dead PCM port); the call in progress ends."""
        self._end_call("modem reset")
        try:
            self.command("AT+CRESET", timeout=5)
        except FirmwareError as err:
            log.warning("%s: AT+CRESET: %s", self.name, err)  # it may reboot before its OK

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


class _CountingBuffer(FrameBuffer):
    """A frame buffer that counts every frame put in, read or not."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received = 0

    def put(self, frame):
        """Add ``frame`` and count it."""
        self.received += 1
        super().put(frame)


class _Counted(FramedAudio):
    """Puts a counting buffer under the serial port's reader before its thread starts."""

    def __init__(self):
        super().__init__()
        self._incoming = _CountingBuffer()


class WatchedAudioPort(SerialAudioPort, _Counted):
    """The SIM7600's PCM port, with a count of frames received so a dead port shows."""

    @property
    def frames_received(self):
        """How many 20 ms frames the modem has sent since the port opened."""
        return self._incoming.received
