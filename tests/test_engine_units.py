"""The call handling driven in milliseconds: the real engine wiring, loop, context, journal
and demo configuration, on a fake clock, with the media clock ticked by hand.

Only the modem lines' threads are stood in for (``LineStandIn``): it records what the
engine asks of a line and lets the test say what the line reports, as a LineRunner
would; opening a virtual modem costs seconds, and this file is about the decisions.
"""
import os
import wave

import pytest

from appliance.config import demo_config, validate
from appliance.engine import Engine
from appliance.errors import ControlError
from appliance.journal import JOURNAL_FILE, Journal
from appliance.loop import FakeClock
from appliance.prompts import PhraseCache, beep_path, music_path, prompt_path, system_prompts
from firmware.frames import FRAME_SECONDS, SAMPLE_RATE
from firmware.gsm import LineEvent

CALLER = "+359888111222"


class StandInPort:
    """A line's audio port: nothing arrives, what is sent is counted."""

    def __init__(self):
        self.frames_out = 0

    def read_frame(self):
        """No frame from the far end yet."""
        return None

    def write_frame(self, frame):
        """Count a frame sent to the far end."""
        self.frames_out += 1


class StandInDriver:
    """What the engine's line commands call: each is written down."""

    def __init__(self, runner):
        self.runner = runner
        self.audio = StandInPort()

    def answer(self):
        """Pick up."""
        self.runner.done.append("answer")

    def dial(self, number):
        """Place a call."""
        self.runner.done.append(f"dial {number}")

    def hangup(self):
        """Hang up."""
        self.runner.done.append("hangup")

    def send_sms(self, number, text):
        """Send a text (on the outbox's own thread: kept apart from the call commands)."""
        self.runner.texts.append((number, text))
        return [1]

    def leg(self, channel):
        """A SIP call's leg: the same stand-in."""
        return self


class LineStandIn:
    """Stands in for a LineRunner: up at once, records commands, reports what the test says."""

    def __init__(self, line, data_dir, on_event, on_state, poll_seconds=30.0, port_patterns=()):
        self.id = line["id"]
        self._on_event, self._on_state = on_event, on_state
        self.driver = StandInDriver(self)
        self.done = []
        self.texts = []

    def start(self):
        """The line comes up."""
        self._on_state(self.id, {"state": "up", "error": None})

    def stop(self):
        """Nothing to stop."""

    def submit(self, name, action, channel=None):
        """Run a command at once, as the line's thread would run it soon."""
        action(self.driver)

    def call(self, name, action, timeout=60.0):
        """Run a command and return its result."""
        return action(self.driver)

    def report(self, kind, **data):
        """The line reports an event (posted to the loop, as a LineRunner does)."""
        self._on_event(self.id, LineEvent(kind, data))


def _write_wav(path, seconds):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(b"\0\0" * int(SAMPLE_RATE * seconds))


def _write_prompts(data_dir, config, seconds=0.1):
    """Every prompt as a short silence, so a prompt ends after a few media ticks."""
    for prompt in config["prompts"] + system_prompts(config):
        _write_wav(prompt_path(data_dir, prompt["language"], prompt["id"]), seconds)
    _write_wav(music_path(data_dir), seconds)
    _write_wav(beep_path(data_dir), seconds)


class Box:
    """An engine wired as ``start`` wires it, minus socket, appliance services and threads."""

    def __init__(self, data_dir, config):
        self.clock = FakeClock()
        self.engine = Engine(data_dir, clock=self.clock, runner_factory=LineStandIn)
        ctx = self.ctx = self.engine.ctx
        ctx.config = validate(config)
        ctx.operators.update(ctx.config["operators"])
        _write_prompts(data_dir, ctx.config)
        ctx.journal = Journal.open(os.path.join(data_dir, JOURNAL_FILE))
        ctx.phrases = PhraseCache(data_dir)
        self.engine.notifier.start()
        self.engine.board.start_lines(ctx.config["lines"], self.engine.events.handle)
        self.run()

    @property
    def journal(self):
        """The box's journal."""
        return self.ctx.journal

    def line(self, line_id):
        """The stand-in of a line's runner."""
        return self.engine.board.runners[line_id]

    def report(self, line_id, kind, **data):
        """A line reports an event; the loop handles it."""
        self.line(line_id).report(kind, **data)
        self.run()

    def run(self):
        """Run what is posted and due now."""
        self.engine.loop.run_pending()

    def pass_time(self, seconds):
        """Let ``seconds`` go by, frame by frame: media ticks, due timers, posted work."""
        for _ in range(round(seconds / FRAME_SECONDS)):
            self.clock.advance(FRAME_SECONDS)
            self.engine.clock.tick()
            self.run()

    def events(self, call_id):
        """The kinds of a call's timeline events."""
        return [event["kind"] for event in self.journal.get_call(call_id)["events"]]

    def call_on(self, line_id):
        """The call in progress on a line."""
        return self.engine.board.sessions_on(line_id)[0]

    def close(self):
        """Stop the engine as ``hotline engine`` does."""
        self.engine.stop()


def _config(**settings):
    config = demo_config()
    config["settings"].update({"recording": "off", **settings})
    return config


def _two_operators(strategy):
    config = _config()
    config["lines"].append(dict(config["lines"][1], id="gsm3", name="Demo SIM 3", port="dev/gsm3-at",
                                audio_port="dev/gsm3-audio"))
    config["operators"].append({"id": "op2", "name": "Second operator", "number": "+359700000200",
                                "groups": ["admissions"]})
    for queue in config["queues"]:
        queue["strategy"] = strategy
    return config


@pytest.fixture
def make_box(tmp_path):
    boxes = []

    def make(config=None):
        box = Box(str(tmp_path / f"box{len(boxes)}"), config or _config())
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.close()


@pytest.fixture
def box(make_box):
    return make_box()


def _caller_in_menu(box, line_id="gsm1", number=CALLER):
    box.report(line_id, "incoming", number=number)
    box.report(line_id, "connected")
    box.pass_time(0.2)  # the greeting ends, the menu starts
    return box.call_on(line_id)


# --- call sessions --------------------------------------------------------------------------


def test_an_incoming_call_is_answered_journaled_and_shown_on_its_line(box):
    box.report("gsm1", "incoming", number=CALLER)
    session = box.call_on("gsm1")
    assert box.line("gsm1").done == ["answer"]
    assert box.engine.lines["gsm1"]["activity"] == "ringing"
    box.report("gsm1", "connected")
    assert box.engine.lines["gsm1"]["activity"] == "in call"
    assert box.events(session.id)[:3] == ["ring", "answered", "ivr"]


def test_a_call_that_never_connects_gives_up_after_the_answer_timeout(box):
    box.report("gsm1", "incoming", number=CALLER)
    session = box.call_on("gsm1")
    box.pass_time(14.9)
    assert not session.ended
    box.pass_time(0.2)
    call = box.journal.get_call(session.id)
    assert call["outcome"] == "failed" and "answer_failed" in box.events(session.id)
    assert box.line("gsm1").done == ["answer", "hangup"] and box.engine.lines["gsm1"]["activity"] == "idle"


@pytest.mark.parametrize("with_flow", [True, False])
def test_a_caller_who_hangs_up_while_ringing_is_missed_and_gets_a_call_back_and_an_sms(make_box, with_flow):
    config = _config()
    if not with_flow:
        del config["lines"][0]["flow"]
    box = make_box(config)  # with a flow or not: the flow had not begun
    box.report("gsm1", "incoming", number=CALLER)
    session = box.call_on("gsm1")
    box.report("gsm1", "ended", cause="remote")
    assert box.journal.get_call(session.id)["outcome"] == "missed"
    assert [task["number"] for task in box.journal.open_callbacks()] == [CALLER]
    outbox = box.engine.dispatcher.outbox.recent(10)
    assert [(item["channel"], item["target"], item["event"]) for item in outbox] == [
        ("sms", CALLER, "call.missed.sms")]


def test_a_call_goes_out_on_the_line_idle_longest(make_box):
    """Not the first free line: the one whose call just ended may already ring with the next caller."""
    box = make_box(_two_operators("ring_all"))
    board, number = box.engine.board, "+359888000777"
    assert board.free_line(number) == "gsm1"  # none used yet: the first in the list
    for line_id in ("gsm1", "gsm3"):
        box.report(line_id, "incoming", number=CALLER)
        box.report(line_id, "ended", cause="remote")
    assert board.free_line(number) == "gsm2"  # never used
    box.report("gsm2", "incoming", number=CALLER)
    assert board.free_line(number) == "gsm1"  # idle since before gsm3's call
    box.report("gsm2", "ended", cause="remote")
    assert board.free_line(number) == "gsm1"


def test_a_blacklisted_caller_is_refused_without_an_answer(make_box):
    config = _config()
    config["blacklist"] = [{"number": "+359888*"}]
    box = make_box(config)
    box.report("gsm1", "incoming", number=CALLER)
    assert box.line("gsm1").done == ["hangup"]
    session_id = box.journal.recent_calls(1)[0]["id"]
    assert "rejected" in box.events(session_id)


def test_a_second_caller_on_a_busy_modem_is_a_missed_call_waiting_once(box):
    _caller_in_menu(box)
    box.report("gsm1", "waiting", number="+359888333444")
    box.report("gsm1", "waiting", number="+359888333444")  # +CCWA repeats while it rings
    waiting = [call for call in box.journal.recent_calls(5) if call["caller"] == "+359888333444"]
    assert len(waiting) == 1 and waiting[0]["outcome"] == "missed"


def test_a_modem_whose_audio_died_is_journaled_on_the_call_and_the_line(box):
    session = _caller_in_menu(box)
    box.report("gsm1", "audio_dead", reason="no audio frames 2 s after the call connected")
    assert "audio_dead" in box.events(session.id)
    assert [event["kind"] for event in box.journal.line_events("gsm1")][:1] == ["modem_reset"]


def test_the_call_is_cut_at_the_maximum_length(make_box):
    box = make_box(_config(max_call_seconds=30))
    session = _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="4")  # the dates by SMS, then back to the menu: keeps the call busy
    box.pass_time(30)
    assert box.line("gsm1").done[-1] == "hangup"
    assert {"reason": "maximum call length reached"}.items() <= [
        event for event in box.journal.get_call(session.id)["events"] if event["kind"] == "hangup"][0].items()


# --- the IVR interpreter -------------------------------------------------------------------


def test_the_flow_plays_the_greeting_then_the_menu(box):
    session = _caller_in_menu(box)
    prompts = [event["prompt"] for event in box.journal.get_call(session.id)["events"] if event["kind"] == "prompt"]
    assert prompts == ["greeting", "menu_main"]
    assert session.step == "playing menu_main"
    box.pass_time(0.2)
    assert session.step == "listening"


def test_a_silent_caller_hears_the_menu_again_then_goes_to_the_default(box):
    session = _caller_in_menu(box)
    box.pass_time(3 * 5.3)  # three timeouts of 5 s, each followed by the menu again
    kinds = box.events(session.id)
    assert kinds.count("menu_timeout") == 3
    assert box.journal.get_call(session.id)["queue"] == "bachelor"


def test_an_invalid_key_is_said_invalid_and_the_menu_asked_again(box):
    session = _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="7")
    box.pass_time(0.3)
    events = box.journal.get_call(session.id)["events"]
    assert "menu_invalid" in [e["kind"] for e in events]
    assert [e["prompt"] for e in events if e["kind"] == "prompt"][-2:] == ["invalid", "menu_main"]


def test_the_dates_by_sms_go_through_the_outbox_to_the_caller(box):
    session = _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="4")
    assert "sms_queued" in box.events(session.id)
    assert [(item["target"], item["event"]) for item in box.engine.dispatcher.outbox.recent(5)] == [
        (CALLER, "ivr.sms")]


def test_the_language_menu_changes_the_call_language(box):
    session = _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="9")
    box.pass_time(0.2)
    box.report("gsm1", "dtmf", digit="2")
    box.pass_time(0.2)
    assert session.language == "bg" and box.journal.get_call(session.id)["language"] == "bg"


def test_outside_the_hours_the_caller_is_told_and_gets_a_call_back(make_box):
    config = _config()
    config["time_conditions"][0]["closed"] = True  # the manual closed switch
    box = make_box(config)
    box.report("gsm1", "incoming", number=CALLER)
    box.report("gsm1", "connected")
    box.pass_time(1.5)  # "closed", then goodbye and a pause
    assert box.line("gsm1").done == ["answer", "hangup"]
    box.report("gsm1", "ended", cause="local")
    session_id = box.journal.recent_calls(1)[0]["id"]
    assert box.journal.get_call(session_id)["outcome"] == "call-back"
    assert [task["reason"] for task in box.journal.open_callbacks()] == ["closed"]


# --- queues and their strategies ------------------------------------------------------------


def test_an_operator_who_presses_1_is_bridged_with_the_caller(box):
    caller = _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="1")
    assert box.line("gsm2").done == ["dial +359700000100"]
    operator = box.call_on("gsm2")
    box.report("gsm2", "connected")
    box.pass_time(0.2)
    assert operator.step.startswith("playing accept") or operator.step == "listening"
    box.report("gsm2", "dtmf", digit="1")
    assert caller.peer is operator and caller.outcome == "answered"
    assert "operator_answered" in box.events(caller.id)
    box.report("gsm1", "ended", cause="remote")
    assert box.line("gsm2").done[-1] == "hangup"  # the caller left: the operator's leg is hung up
    box.report("gsm2", "ended", cause="local")
    assert box.journal.get_call(caller.id)["operator"] == "op1"
    assert box.engine.lines["gsm2"]["activity"] == "idle"


def test_an_operator_who_does_not_press_1_is_not_given_the_caller(box):
    caller = _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="1")
    box.report("gsm2", "connected")
    box.pass_time(12.5)  # the accept window
    assert box.line("gsm2").done[-1] == "hangup"
    box.report("gsm2", "ended", cause="local")
    missed = [e for e in box.journal.get_call(caller.id)["events"] if e["kind"] == "operator_missed"]
    assert missed[0]["outcome"] == "not accepted" and caller.peer is None


def test_ring_all_rings_every_ready_operator_at_once(make_box):
    box = make_box(_two_operators("ring_all"))
    _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="1")
    dialled = sorted(box.line("gsm2").done + box.line("gsm3").done)
    assert dialled == ["dial +359700000100", "dial +359700000200"]


def test_round_robin_rings_one_operator_then_the_next_on_no_answer(make_box):
    box = make_box(_two_operators("round_robin"))
    caller = _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="1")
    assert box.line("gsm2").done == ["dial +359700000100"] and box.line("gsm3").done == []
    box.pass_time(20.1)  # the ring timeout
    assert box.line("gsm2").done[-1] == "hangup"
    box.report("gsm2", "ended", cause="no answer")
    box.pass_time(0.3)
    assert box.line("gsm3").done == ["dial +359700000200"]  # the line idle longest, not gsm2 again
    rung = [e["operator"] for e in box.journal.get_call(caller.id)["events"] if e["kind"] == "operator_rung"]
    assert rung == ["op1", "op2"]


def test_a_waiting_caller_who_presses_the_call_back_key_leaves_a_task_in_their_place(box):
    box.ctx.operators.set_paused("op1", True)  # nobody to take them: they wait
    caller = _caller_in_menu(box)
    box.report("gsm1", "dtmf", digit="1")
    box.report("gsm1", "dtmf", digit="5")
    kinds = box.events(caller.id)
    assert "queue_leave" in kinds
    assert [task["number"] for task in box.journal.open_callbacks()] == [CALLER]


# --- the control API's table -------------------------------------------------------------------


def test_control_commands_come_from_the_table_and_an_unknown_one_is_refused(box):
    assert box.engine.handle_request({"cmd": "ping"}) == "pong"
    with pytest.raises(ControlError, match="unknown command 'nope'"):
        box.engine.handle_request({"cmd": "nope"})
    with pytest.raises(ControlError, match="no line 'gsm9'"):
        box.engine.handle_request({"cmd": "sms", "line": "gsm9", "to": CALLER, "text": "hi"})
    with pytest.raises(ControlError, match="section must be one of"):
        box.engine.handle_request({"cmd": "config_put", "section": "nope"})
