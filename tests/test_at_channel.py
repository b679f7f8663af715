"""The AT channel against an emulated SIM7600 on a real pty."""
import queue

import pytest

from firmware.at import ATChannel
from firmware.errors import ATCommandError, ATTimeout, FirmwareError, PortClosed


@pytest.fixture
def channel(sim7600):
    urcs = queue.Queue()
    at = ATChannel(sim7600.at.path, urcs.put, name="test")
    at.urcs = urcs
    yield at
    at.close()


def test_echo_is_skipped_until_ate0_takes_effect(channel, sim7600):
    assert sim7600.echo
    assert channel.command("AT") == []
    assert channel.command("ATE0") == []
    assert not sim7600.echo
    assert channel.command("AT+CGMM") == ["SIMCOM_SIM7600E-H"]


def test_urc_in_the_middle_of_a_response_goes_to_the_handler(channel, sim7600):
    sim7600.inject_mid_response("+RXDTMF: 5")
    assert channel.command("AT+CSQ", prefix="+CSQ:") == ["+CSQ: 20,99"]
    assert channel.urcs.get(timeout=2) == "+RXDTMF: 5"


def test_claimed_prefix_is_a_response_not_a_urc(channel, sim7600):
    assert channel.command("AT+CPIN?", prefix="+CPIN:") == ["+CPIN: READY"]
    assert channel.urcs.empty()


def test_cme_error_is_named(channel):
    with pytest.raises(ATCommandError) as caught:
        channel.command("AT+CPCMREG=1")  # no call is active
    assert caught.value.code == 3
    assert isinstance(caught.value, FirmwareError) and isinstance(caught.value, RuntimeError)


def test_plain_error(channel):
    with pytest.raises(ATCommandError, match="AT\\+BOGUS"):
        channel.command("AT+BOGUS")


def test_hung_modem_times_out_with_a_typed_error(channel, sim7600):
    sim7600.hung = True
    with pytest.raises(ATTimeout) as caught:
        channel.command("AT", timeout=0.3)
    assert isinstance(caught.value, TimeoutError)
    sim7600.hung = False
    assert channel.command("AT") == []  # the channel is not one answer late afterwards


def test_garbage_and_split_lines(channel, sim7600):
    sim7600.at.write(b"\r\n\x01\x02\xff\x00junk\r\n")
    sim7600.at.write(b"\r\n+RXD")
    sim7600.at.write(b"TMF: 7\r\n")
    assert channel.urcs.get(timeout=2) == "+RXDTMF: 7"
    assert channel.command("AT") == []


def test_close_is_safe_twice_and_commands_then_fail(channel):
    channel.close()
    channel.close()
    with pytest.raises(PortClosed):
        channel.command("AT")


def test_missing_port_is_a_clear_error(tmp_path):
    with pytest.raises(PortClosed, match="cannot open"):
        ATChannel(str(tmp_path / "ttyUSB9"), print)


def test_cme_and_cms_errors_are_named():
    from firmware.errors import ATCommandError

    busy = ATCommandError("AT+CPIN?", "+CME ERROR: 14")
    assert busy.meaning == "SIM busy" and busy.retryable and "(SIM busy)" in str(busy)
    index = ATCommandError("AT+CMGR=9", "+CMS ERROR: 321")
    assert (index.kind, index.code, index.meaning, index.retryable) == ("CMS", 321, "invalid memory index", False)
    plain = ATCommandError("AT+X", "ERROR")
    assert plain.code is None and plain.meaning is None and str(plain) == "'AT+X' failed: ERROR"
