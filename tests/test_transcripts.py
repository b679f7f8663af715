"""Recorded modem sessions (tests/transcripts/) replayed through the real drivers, and the
``hotline modem record`` / ``replay`` commands on an emulated modem (docs/field-bugs.md)."""
import glob
import json
import os
import subprocess
import sys

import pytest

from firmware.detect import FAMILIES
from firmware.transcript import Masker, Replayer, header, read

from .conftest import MODEM_NUMBER
from .test_gsm_families import Events

CALLER = "+359888123456"
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transcripts")
TRANSCRIPTS = sorted(glob.glob(os.path.join(HERE, "*.txt")))
FULL_SESSION = ["info", "ussd *100#", "incoming", "hangup"]
INFO_FACTS = ("family", "model", "imei", "iccid", "signal_dbm", "registration", "operator", "voice")
__all__ = ["CALLER", "FULL_SESSION", "MODEM_NUMBER", "Events", "run_session"]


def run_session(line, steps, events, ring=None):
    """Do ``steps`` on an open line ("info", "ussd CODE", "incoming", "hangup"); return the facts seen."""
    facts = {}
    for step in steps:
        if step == "info":
            facts.update({key: value for key, value in line.info().items() if key in INFO_FACTS})
        elif step.startswith("ussd "):
            facts["ussd"] = line.ussd(step.split(" ", 1)[1], timeout=10)
        elif step == "incoming":
            if ring is not None:
                ring()
            facts["caller"] = events.next("incoming", timeout=10).data["number"]
        elif step == "hangup":
            line.hangup()
        else:
            raise ValueError(f"unknown session step {step!r}")
    return facts


def test_the_folder_holds_each_family_and_the_public_sources():
    names = {os.path.basename(path) for path in TRANSCRIPTS}
    assert {"sim800.txt", "sim7600-crcrlf.txt", "e1550-urcs-inside-answers.txt", "ec25.txt",
            "quectel-m35-ussd-gammu358.txt"} <= names
    for path in TRANSCRIPTS:
        assert header(path).get("source"), f"{path} names no source"


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[os.path.basename(p) for p in TRANSCRIPTS])
def test_each_transcript_through_the_real_driver(path):
    about = header(path)
    replayer = Replayer(path, speed=4.0)
    events = Events()
    line = FAMILIES[about["family"]](replayer.path, events, name="replay")
    try:
        facts = run_session(line, about["session"].split(", "), events)
    finally:
        line.close()
        replayer.close()
    assert facts == json.loads(about["expect"])
    assert replayer.unmatched == []


def test_the_m35_transcript_gives_the_text_not_the_hex():
    about = header(os.path.join(HERE, "quectel-m35-ussd-gammu358.txt"))
    assert json.loads(about["expect"])["ussd"].startswith("Havi keret: 0Ft. Feltöltött egyenleg: 7777Ft")


def test_masks_keep_what_diagnoses_and_hide_who():
    masker = Masker()
    assert masker.mask("861234567890123\r\n") == "861234560000000\r\n"
    assert masker.mask("+QCCID: 89359019900123456789\r\n") == "+QCCID: 89359000000000000000\r\n"
    first = masker.mask('+CLIP: "+359888123456",145,"",0,"",0\r\n')
    assert first == '+CLIP: "+359000000001",145,"",0,"",0\r\n'
    assert masker.mask("^DSCI: 1,1,4,0,+359888123456,145\r\n") == "^DSCI: 1,1,4,0,+359000000001,145\r\n"
    assert masker.mask("+CSQ: 20,99\r\n^BOOT:12345678,0,0,0,72\r\n") == "+CSQ: 20,99\r\n^BOOT:12345678,0,0,0,72\r\n"
    assert Masker(["iccid"]).mask("861234567890123\r\n") == "861234567890123\r\n"


def _hotline(*args):
    done = subprocess.run([sys.executable, "-m", "appliance.cli", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("family", ["sim7600", "e1550"])
def test_record_then_replay_from_the_command_line(network, tmp_path, family):
    from hardware.virtual.families import EMULATORS

    modem = EMULATORS[family](network, MODEM_NUMBER)
    modem.noise = True
    out = tmp_path / "field.txt"
    try:
        recorded = json.loads(_hotline("modem", "record", modem.at.path, "--out", str(out), "--probe", "--json",
                                       "--note", "a test").stdout)
    finally:
        modem.close()
    assert recorded["imei"] == modem.imei
    text = out.read_text()
    assert modem.imei not in text and modem.iccid not in text and "# a test" in text
    assert any(direction == ">" and data == b"AT+CGSN\r" for _, direction, data in read(out))
    replayed = json.loads(_hotline("modem", "replay", str(out), "--probe", "--json", "--speed", "5").stdout)
    assert replayed["imei"] == modem.imei[:8] + "0000000"
    assert {key: replayed[key] for key in ("family", "model", "operator", "signal_dbm", "registration")} == \
        {key: recorded[key] for key in ("family", "model", "operator", "signal_dbm", "registration")}


def test_record_can_keep_the_imei(network, tmp_path):
    from hardware.virtual.families import Sim800Emulator

    modem = Sim800Emulator(network, MODEM_NUMBER)
    out = tmp_path / "kept.txt"
    try:
        _hotline("modem", "record", modem.at.path, "--out", str(out), "--probe", "--json", "--no-mask", "imei")
    finally:
        modem.close()
    assert modem.imei in out.read_text() and "masked: numbers, iccid" in out.read_text()
