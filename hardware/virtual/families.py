"""The four emulated modem families, each speaking its firmware's dialect.

What each follows is named in its docstring; ../shared/MODEMS.md gathers the sources.
"""
import threading

from firmware import pdu

from .modems import EmulatedModem, _cli_type, _ModemError, _ton
from .phones import dtmf_frames
from .voicemodem import EmulatedVoiceModem

END_CAUSE_CODES = {"remote": 16, "busy": 17, "no answer": 19, "unreachable": 1}


class Sim800Emulator(EmulatedModem):
    """SIMCom SIM800: SIM800 Series AT Command Manual V1.09 (+DTMF after AT+DDET=1,...,
    +CLCC pushes after AT+CLCC=1, AT+CMIC/AT+CLVL) and python-gsmmodem's SIM800 logs
    (RING then +CLIP, NO CARRIER at the end). Audio is analog on the real module; here
    the audio pty stands for the USB sound card wired to it. A waiting call: the manual's
    3.2.6 gives ``+CCWA: <number>,<type>,<class>[,<alpha>]`` (the base class's line)."""

    family = "sim800"
    manufacturer = "SIMCOM_Ltd"
    model = "SIMCOM_SIM800L"
    revision = "Revision:1418B05SIM800L24"
    boot_urcs = ("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready")

    def __init__(self, *args, charset="GSM", **kwargs):
        self.stored_charset = charset  # what another program left in the profile (AT&W)
        super().__init__(*args, **kwargs)

    def _reset(self):
        super()._reset()
        self._dtmf_reports = False
        self._act = 0
        self._charset = self.stored_charset

    def noise_urcs(self):
        # Network time after AT+CLTS=1 (MODEMS.md; SIM800 manual AT+CLTS, AT+CTZR).
        return ['*PSUTTZ: 2023, 6, 8, 5, 15, 27, "+8", 1', "DST: 0", "+CTZV: +8,0", "+CREG: 1"]

    def ussd_reply_line(self, text):
        if self._charset == "HEX":
            return '+CUSD: 0,"",15'  # TinyGSM #192: with AT+CSCS="HEX" the reply came back empty
        return super().ussd_reply_line(text)

    def family_command(self, upper, body):
        if upper == '+CSCS="HEX"':
            self._charset = "HEX"
            return [], "OK"
        if upper.startswith("+DDET="):
            self._dtmf_reports = upper[6:7] == "1"
            return [], "OK"
        if upper.startswith(("+CMIC=", "+CLVL=")):
            self.settings[upper.split("=")[0][1:]] = upper.split("=")[1]
            return [], "OK"
        return None

    def audio_enabled(self):
        return True  # the sound card carries whatever the module's audio lines carry

    def dtmf_urcs(self, digit):
        return [f"+DTMF: {digit},100"] if self._dtmf_reports else []


class Sim7600Emulator(EmulatedModem):
    """SIMCom SIM7600: SIM7500_SIM7600 AT Command Manual (VOICE CALL: BEGIN/END, +RXDTMF,
    AT+CPCMREG, AT+CICCID, AT+CMICGAIN/AT+COUTGAIN), asterisk-chan-quectel's SimCom
    init, and ModemManager's simtech fixtures (MISSED_CALL, VOICE CALL: END: 000352).
    A waiting call: +CCWA as 3GPP TS 27.007 7.12 has it, and +CLCC stat 5 after AT+CLCC=1."""

    family = "sim7600"
    manufacturer = "SIMCOM INCORPORATED"
    model = "SIMCOM_SIM7600E-H"
    revision = "LE20B04SIM7600M22"
    boot_urcs = ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE")

    def __init__(self, *args, pcm_fault=False, **kwargs):
        # MODEMS.md: after a call the PCM port can half-die until AT+CRESET. With
        # ``pcm_fault`` the first call has audio, later ones none (AT+CPCMREG=1 still says OK).
        self.pcm_fault = pcm_fault
        self.resets = 0
        self._calls_with_pcm = 0
        super().__init__(*args, **kwargs)

    def noise_urcs(self):
        return ['+CEREG: 1,"4CA","81DE445",7', "+CREG: 1", "+CPSI: LTE,Online,284-01,0x04CA,8517709,69,EUTRAN-BAND20"]

    def audio_enabled(self):
        return self._audio_on and not (self.pcm_fault and self._calls_with_pcm > 1)

    def family_command(self, upper, body):
        if upper == "+CICCID":
            return [f"+ICCID: {self.iccid}"], "OK"
        if upper == "+CRESET":
            threading.Timer(0.1, self._creset).start()
            return [], "OK"
        if upper.startswith("+CPCMREG="):
            return self._cpcmreg(upper[9:])
        if upper.startswith(("+CMICGAIN=", "+COUTGAIN=", "+DDET=")):
            self.settings[upper.split("=")[0][1:]] = upper.split("=")[1]
            return [], "OK"
        return None

    def _cpcmreg(self, arg):
        if arg == "1":
            if self._call_state != "active":
                raise _ModemError("+CME ERROR: 3")
            if not self._audio_on:
                self._calls_with_pcm += 1
            self._audio_on = True
        elif arg == "0":
            self._audio_on = False
        else:
            raise _ModemError("ERROR")
        return [], "OK"

    def _creset(self):
        """AT+CRESET: the module restarts and its PCM port works again."""
        self.resets += 1
        self._calls_with_pcm = 0
        self.power_cycle()

    def connected_urcs(self):
        return super().connected_urcs() + ["VOICE CALL: BEGIN"]

    def ended_urcs(self, state, cause):
        if state == "ringing":
            return [f"MISSED_CALL: 08:48AM {self._last_caller}"]
        if state == "active":
            return [f"VOICE CALL: END: {self._duration()}", "NO CARRIER"]
        return super().ended_urcs(state, cause)

    def incoming_urcs(self, caller):
        self._last_caller = caller
        return super().incoming_urcs(caller)

    def local_end_lines(self, state):
        return [f"VOICE CALL: END: {self._duration()}"] if state == "active" else []

    def dtmf_urcs(self, digit):
        return [f"+RXDTMF: {digit}"]


class HuaweiEmulator(EmulatedModem):
    """Huawei E1550/E173: asterisk-chan-dongle (at_response.c: +CRING: VOICE, ^ORIG,
    ^CONF, ^CONN, ^CEND with no space after the colon, ^RSSI in the middle of other
    answers; ^DDSETEX=2 for the voice port; ^CVOICE:0,8000,16,20) and its BUGS notes.
    ``ddtmf`` says whether this firmware reports keys (^DDTMF); without it the keys
    reach the box only as tones in the audio, as on most of these dongles. A waiting
    call: +CCWA as 3GPP TS 27.007 7.12 (chan_dongle's at_parse_ccwa reads <class> from
    the third field); when its caller gives up, ^CEND with the waiting call's index
    (chan_dongle's at_response_cend clears its CALL_STATE_WAITING call on it)."""

    family = "e1550"
    manufacturer = "huawei"
    model = "E1550"
    revision = "11.608.12.02.21"
    boot_urcs = ("^BOOT:12345678,0,0,0,72", "^SRVST:2", "^MODE:5,4")

    def __init__(self, *args, ddtmf=False, voice="ok", **kwargs):
        self.ddtmf = ddtmf
        # "ok", "locked" (^CVOICE:1) or "error" (ERROR to AT^CVOICE?): firmware with voice
        # locked, as chan_dongle's at_response_cvoice / at_response_error meet it.
        self.voice = voice
        super().__init__(*args, **kwargs)

    def noise_urcs(self):
        # chan_dongle at_response.c and MODEMS.md: signal, mode, boot and registration pushes.
        return ["^RSSI:15", "^RSSI: 20", '^HCSQ:"WCDMA",30,30,58', "^MODE:5,4", "^BOOT:12345678,0,0,0,72",
                "+CREG: 1,4CA,81DE445", "^SRVST:2"]

    def _reset(self):
        super()._reset()
        self._act = 2
        self._tone_frames = []

    def family_command(self, upper, body):
        if upper == "^CVOICE?":
            if self.voice == "error":
                raise _ModemError("ERROR")
            return [f"^CVOICE:{int(self.voice == 'locked')},8000,16,20"], "OK"
        if upper == "^ICCID?":
            return [f"^ICCID: {self.iccid}"], "OK"
        if upper == "^DDSETEX=2":
            if self.voice != "ok":
                raise _ModemError("ERROR")  # MODEMS.md: with voice locked AT^DDSETEX fails
            if self._call_state != "active" and self._call_state not in ("dialing", "alerting"):
                raise _ModemError("ERROR")
            self._audio_on = True
            return [], "OK"
        if upper == "^DDTMFCFG=0,1":
            return ([], "OK") if self.ddtmf else ([], "COMMAND NOT SUPPORT")
        if upper.startswith("+CMUT=") or upper.startswith("+CLVL="):
            return [], "OK"
        return None

    def audio_enabled(self):
        return self._audio_on

    def incoming_urcs(self, caller):
        return ["+CRING: VOICE", f'+CLIP: "{caller}",{_ton(caller) if caller else 128},,,,0']

    def alerting_urcs(self):
        return ["^ORIG:1,0", "^CONF:1"]

    def connected_urcs(self):
        return [f"^CONN:{self._call_index},0"]

    def ended_urcs(self, state, cause):
        return [f"^CEND:{self._call_index},{self._talk_seconds()},104,{END_CAUSE_CODES.get(cause, 16)}"]

    def waiting_ended_urcs(self, call, cause):
        return super().waiting_ended_urcs(call, cause) + [f"^CEND:2,0,104,{END_CAUSE_CODES.get(cause, 16)}"]

    def local_end_lines(self, state):
        return []

    def dtmf_urcs(self, digit):
        if self.ddtmf:
            return [f"^DDTMF: {digit}"]
        self._tone_frames.extend(dtmf_frames(digit))
        return []

    def _downlink_frame(self, party):
        """Keys pressed by the far end travel as tones, as they do on a real dongle."""
        frame = super()._downlink_frame(party)
        return self._tone_frames.pop(0) if self._tone_frames else frame

    def decode_ussd_request(self, code):
        return pdu.decode_ussd(code, 15)

    def ussd_reply_line(self, text):
        if pdu.gsm7_encode(text) is not None:
            packed = pdu.pack_septets(pdu.gsm7_encode(text)).hex().upper()
            return f'+CUSD: 0,"{packed}",15'
        return f"+CUSD: 0,{pdu.ucs2_hex_encode(text)},72"  # chan_dongle saw it without quotes


class Ec25Emulator(EmulatedModem):
    """Quectel EC25: Quectel EC2x AT Commands Manual (AT+QINDCFG "ccinfo" reports,
    AT+QTONEDET with +QTONEDET: <ASCII code>, AT+QPCMV, AT+QCCID, AT+QCFG="ims") and
    asterisk-chan-quectel (answers with AT+QPCMV=0;+QPCMV=1,0;A). A waiting call: the
    Quectel manuals give ``+CCWA: <number>,<type>,<class>,[<alpha>],<CLI_validity>``
    (WCDMA UGxx AT Commands Manual, AT+CCWA), and "ccinfo" reports it as state 5."""

    family = "ec25"
    manufacturer = "Quectel"
    model = "EC25"
    revision = "EC25EFAR06A06M4G"
    boot_urcs = ("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE")

    def __init__(self, *args, dsci=False, nmea=False, pcm_mode=0, sms_failures=0, **kwargs):
        # Firmware variants and faults, each from MODEMS.md: ``dsci`` reports calls as ^DSCI
        # (chan_quectel at_response_dsci) and has no "ccinfo"; ``nmea`` puts GPS sentences on
        # the AT port until AT+QGPSCFG="outport","none"; ``pcm_mode`` 2 is voice left on USB
        # audio class by AT+QPCMV=1,2 (kept across restarts); ``sms_failures`` answers that
        # many AT+CMGS with +CMS ERROR: 350.
        self.dsci, self.nmea, self.pcm_mode, self.sms_failures = dsci, nmea, pcm_mode, sms_failures
        super().__init__(*args, **kwargs)

    def _reset(self):
        super()._reset()
        self._ccinfo = False
        self._dsci_on = False
        self._tone_detection = False
        self._ims = False
        self.noise = self.nmea

    def noise_urcs(self):
        if self.noise and self.nmea:
            # NMEA 0183 sentences as the EC25's GNSS engine prints them.
            return ["$GPGGA,052727.00,4241.123456,N,02319.654321,E,1,08,0.9,560.2,M,38.0,M,,*6A",
                    "$GPRMC,052727.00,A,4241.123456,N,02319.654321,E,0.0,0.0,080623,,,A*6C",
                    "$GPGSV,3,1,10,01,40,083,41,03,22,309,38,08,51,190,44,10,12,045,33*7B"]
        return ['+CEREG: 1,"4CA","81DE445",7', '+QIND: "csq",20,99', '+QIND: "act","LTE"']

    def _finish_payload(self, payload, send):
        if send and self.sms_failures > 0:
            self.sms_failures -= 1
            self._payload_for = None
            return self._send_line("+CMS ERROR: 350")
        return super()._finish_payload(payload, send)

    def audio_enabled(self):
        return self._audio_on and self.pcm_mode == 0

    def family_command(self, upper, body):
        if upper == "+QCCID":
            return [f"+QCCID: {self.iccid}"], "OK"
        if upper == '+QINDCFG="CCINFO",1,0':
            if self.dsci:
                raise _ModemError("ERROR")
            self._ccinfo = True
            return [], "OK"
        if upper == "^DSCI=1" and self.dsci:
            self._dsci_on = True
            return [], "OK"
        if upper == '+QGPSCFG="OUTPORT","NONE"':
            self.nmea = self.noise = False
            return [], "OK"
        if upper.startswith("+QTONEDET="):
            self._tone_detection = upper.endswith("1")
            return [], "OK"
        if upper.startswith("+QPCMV"):
            return self._qpcmv(upper[6:])
        if upper == '+QCFG="IMS",1':
            self._ims = True
            return [], "OK"
        if upper.startswith(("+QMIC=", "+CLVL=")):
            self.settings[upper.split("=")[0][1:]] = upper.split("=")[1]
            return [], "OK"
        return None

    def _qpcmv(self, arg):
        """AT+QPCMV=<enable>[,<mode>] (mode 0 USB serial, 2 USB audio class) and AT+QPCMV?."""
        if arg == "?":
            return [f"+QPCMV: {int(self._audio_on)},{self.pcm_mode}"], "OK"
        values = arg.lstrip("=").split(",")
        self._audio_on = values[0] == "1"
        if self._audio_on and len(values) > 1:
            self.pcm_mode = int(values[1])
        return [], "OK"

    def _dsci_lines(self, state):
        """``^DSCI: <idx>,<dir>,<stat>,<type>,<number>,<type>`` when ^DSCI reports are on."""
        if not self._dsci_on or self._call is None:
            return []
        number = self._call.caller if self._side == "b" else self._call.callee
        return [f"^DSCI: {self._call_index},{int(self._side == 'b')},{state},0,{number},{_ton(number)}"]

    def _ccinfo_line(self, state, call=None, index=None):
        if call is None:
            call, side, index = self._call, self._side, self._call_index
        else:
            side = "b"  # a waiting call is an incoming one
        number = "" if call is None else (call.caller if side == "b" else call.callee)
        direction = 1 if side == "b" else 0
        return f'+QIND: "ccinfo",{index},{direction},{state},0,0,"{number}",{_ton(number)}'

    def waiting_urcs(self, caller, first):
        pushed = [self._ccinfo_line(5, self._waiting, 2)] if first and self._ccinfo else []
        validity = 0 if caller else 1  # 1: withheld by the caller
        return pushed + [f'+CCWA: "{caller}",{_cli_type(caller)},1,,{validity}']

    def waiting_ended_urcs(self, call, cause):
        return [self._ccinfo_line(-1, call, 2)] if self._ccinfo else []

    def incoming_urcs(self, caller):
        return (([self._ccinfo_line(4)] if self._ccinfo else []) + self._dsci_lines(4)
                + ["RING", f'+CLIP: "{caller}",{_ton(caller)},"",0,"",0'])

    def alerting_urcs(self):
        return ([self._ccinfo_line(3)] if self._ccinfo else []) + self._dsci_lines(3)

    def connected_urcs(self):
        return ([self._ccinfo_line(0)] if self._ccinfo else []) + self._dsci_lines(0)

    def ended_urcs(self, state, cause):
        released = ([self._ccinfo_line(-1)] if self._ccinfo else []) + self._dsci_lines(6)
        return released + [{"busy": "BUSY", "no answer": "NO ANSWER"}.get(cause, "NO CARRIER")]

    def dtmf_urcs(self, digit):
        return [f"+QTONEDET: {ord(digit)}"] if self._tone_detection else []


EMULATORS = {cls.family: cls for cls in (Sim800Emulator, Sim7600Emulator, HuaweiEmulator, Ec25Emulator)}
# Every emulated modem the twin can build, the analog voice modem too. EMULATORS stays the
# GSM families: their shared tests (call waiting, +CCWA) run over each of its entries.
ALL_EMULATORS = {**EMULATORS, EmulatedVoiceModem.family: EmulatedVoiceModem}
