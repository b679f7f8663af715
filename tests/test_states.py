"""Unit tests of the typed call, leg, ring-attempt and operator states (no lines, no engine)."""
import pytest

from appliance.calls import CallSession, GreetingHandler
from appliance.handlers import CallHandler
from appliance.loop import Timer
from appliance.operators import OFFLINE, ON_CALL, PAUSED, READY, RINGING, WRAP_UP, Operator, OperatorState
from appliance.queues import CallbackDial, ForwardLeg, OutgoingLeg, RingAttempt
from appliance.states import ATTEMPT_MOVES, AttemptState, CallState, LegState


@pytest.mark.parametrize("state, detail, text", [
    (CallState.RINGING, None, "ringing"),
    (CallState.DIALLING, None, "dialling"),
    (CallState.PLAYING, "greeting", "playing greeting"),
    (CallState.PLAYING, "announcement", "playing announcement"),
    (CallState.LISTENING, None, "listening"),
    (CallState.ASKING_TO_ACCEPT, None, "asking to accept"),
    (CallState.IN_FLOW, "menu menu", "menu menu"),
    (CallState.TALKING, None, "talking"),
    (CallState.LEAVING_MESSAGE, None, "leaving a message"),
])
def test_step_text_of_each_state(state, detail, text):
    assert state.text(detail) == text


def test_before_answer_and_up():
    assert CallState.RINGING.before_answer and CallState.DIALLING.before_answer
    assert not CallState.RINGING.up and not CallState.ENDED.up and not CallState.ENDED.before_answer
    assert all(s.up for s in CallState if s not in (CallState.RINGING, CallState.DIALLING, CallState.ENDED))


def test_attempt_moves():
    assert AttemptState.DIALLING.can_move(AttemptState.ASKING)
    assert AttemptState.DIALLING.can_move(AttemptState.ACCEPTED)  # a phone that needs no confirmation
    assert AttemptState.ASKING.can_move(AttemptState.ACCEPTED)
    assert AttemptState.ACCEPTED.can_move(AttemptState.FINISHED)
    assert not AttemptState.ASKING.can_move(AttemptState.DIALLING)
    assert not AttemptState.DIALLING.can_move(AttemptState.FINISHED)
    for final in (AttemptState.FINISHED, AttemptState.MISSED, AttemptState.CANCELLED):
        assert final.over and not ATTEMPT_MOVES[final]
    assert set(ATTEMPT_MOVES) == set(AttemptState)


def test_attempt_flags():
    assert [s for s in AttemptState if s.undecided] == [AttemptState.DIALLING, AttemptState.ASKING]
    assert [s for s in AttemptState if s.accepted] == [AttemptState.ACCEPTED, AttemptState.FINISHED]
    assert not any(s.undecided and s.over for s in AttemptState)


def test_leg_after_end():
    assert LegState.CONNECTED.after_end() is LegState.ENDED
    assert LegState.DIALLING.after_end() is LegState.NOT_REACHED


def test_operator_states_are_the_published_strings():
    assert [READY, PAUSED, RINGING, ON_CALL, WRAP_UP, OFFLINE] == [
        "ready", "paused", "ringing", "on call", "wrap-up", "offline"]
    assert f"{ON_CALL}" == "on call" and isinstance(READY, OperatorState)
    operator = Operator({"id": "ana", "name": "Ana", "number": "+359888000001", "groups": ["g"]})
    snap = operator.snapshot(0.0, "UTC")
    assert snap["state"] == "ready" and type(snap["state"]) is str


def test_handlers_subclass_call_handler():
    for cls in (RingAttempt, CallbackDial, ForwardLeg, OutgoingLeg, GreetingHandler):
        assert issubclass(cls, CallHandler)


# --- a session on a fake context -------------------------------------------------------

class FakeJournal:
    def __init__(self):
        self.events = []

    def start_call(self, *args, **kwargs):
        return 7

    def add_event(self, call_id, kind, **detail):
        self.events.append(kind)

    def __getattr__(self, name):  # answer_call, end_call, add_digit, set_call: nothing to keep
        return lambda *args, **kwargs: None


class FakeCtx:
    def __init__(self):
        self.config = {"settings": {"language": "en", "recording": "off", "max_call_seconds": 600}}
        self.journal = FakeJournal()
        self.published = []
        self.timers = []
        self.commands = []
        self.forgotten = []

    def is_sip(self, line_id):
        return False

    def claim_line(self, line_id, session):
        pass

    def publish(self, event):
        self.published.append(event)

    def later(self, seconds, action, *args):
        self.timers.append(Timer(seconds, action, args))
        return self.timers[-1]

    def line_command(self, line_id, name, action, channel=None):
        self.commands.append(name)

    def greeting_for(self, line_id):
        return "greeting"

    def forget_call(self, session):
        self.forgotten.append(session)


class Recording(CallHandler):
    def __init__(self):
        self.heard = []

    def on_connected(self):
        self.heard.append("connected")

    def on_dtmf(self, digit):
        self.heard.append(digit)

    def on_ended(self):
        self.heard.append("ended")


def session_on(ctx, **kwargs):
    session = CallSession(ctx, "gsm1", **kwargs)
    session._start_media = lambda: None
    return session


def test_a_session_without_handler_plays_the_greeting():
    ctx = FakeCtx()
    session = session_on(ctx, caller="+359888000001")
    assert isinstance(session.handler, GreetingHandler)
    played = []
    session.play_prompt = played.append
    session.connected()
    assert played == ["greeting"] and session.state is CallState.ANSWERED
    assert session.step == "ringing"  # the step shown stays until something plays


def test_handler_hears_events_and_a_second_connect_is_ignored():
    ctx = FakeCtx()
    handler = Recording()
    session = session_on(ctx, callee="+359888000002", direction="out", handler=handler)
    assert session.state is CallState.DIALLING and session.step == "dialling"
    session.connected()
    session.connected()
    session.dtmf("5")
    session.ended_on_line("remote")
    session.dtmf("6")
    assert handler.heard == ["connected", "5", "ended"]
    assert session.ended and ctx.forgotten == [session]


def test_an_ended_call_cancels_its_time_limits():
    ctx = FakeCtx()
    session = session_on(ctx, caller="+359888000001", handler=Recording())
    session.answer()
    session.connected()
    assert len(ctx.timers) == 2 and not any(timer.cancelled for timer in ctx.timers)
    session.ended_on_line("remote")
    assert all(timer.cancelled and timer.action is None for timer in ctx.timers)


def test_ended_stays_ended_and_keeps_the_last_step():
    ctx = FakeCtx()
    session = session_on(ctx, caller="+359888000001", handler=Recording())
    session.connected()
    session.step = "menu menu"
    assert session.state is CallState.IN_FLOW and session.step == "menu menu"
    session.ended_on_line("remote")
    assert session.state is CallState.ENDED and session.step == "menu menu"
    assert ctx.published[-1]["call"]["step"] == "menu menu"
    session.set_state(CallState.PLAYING, "bye")
    assert session.ended and session.step == "playing bye"


def test_a_late_alerting_does_not_unanswer_a_call():
    ctx = FakeCtx()
    session = session_on(ctx, callee="+359888000002", direction="out", handler=Recording())
    session.alerting()
    assert session.state is CallState.RINGING and session.step == "ringing"
    session.connected()
    session.alerting()
    assert session.state is CallState.ANSWERED and session.step == "ringing"


# --- a ring attempt on a fake manager --------------------------------------------------

class FakeManager:
    def __init__(self):
        self.ctx = FakeCtx()
        self.ctx.operators = type("Board", (), {"released": lambda board, op, talked: None})()
        self.calls = []

    def accepted(self, attempt):
        self.calls.append(("accepted", attempt))

    def attempt_over(self, attempt, outcome):
        self.calls.append(("over", outcome))

    def leg_ended(self, attempt):
        self.calls.append(("leg_ended", attempt))


class FakeOperator:
    def __init__(self, confirm=True):
        self.id = "ana"
        self.config = {"number": "+359888000001", "confirm": confirm}


def attempt_for(confirm=True):
    manager = FakeManager()
    entry = type("Entry", (), {"session": None, "task": {"call_id": 3}, "queue": {"id": "q", "ring_timeout": 20}})()
    attempt = RingAttempt(manager, entry, FakeOperator(confirm), "gsm1")
    attempt.session._start_media = lambda: None
    attempt.session.play_prompt = lambda prompt: None
    return manager, attempt


def test_attempt_asks_then_a_key_accepts():
    manager, attempt = attempt_for()
    attempt.session.connected()
    assert attempt.state is AttemptState.ASKING and attempt.session.state is CallState.ASKING_TO_ACCEPT
    assert attempt.session.step == "asking to accept"
    attempt.session.media = type("Media", (), {"stop_prompt": lambda media: None})()
    attempt.on_dtmf("1")
    assert attempt.state is AttemptState.ACCEPTED and attempt.accepted and not attempt.over
    attempt.session.media = None
    attempt.session.ended_on_line("remote")
    assert attempt.state is AttemptState.FINISHED and manager.calls[-1][0] == "leg_ended"


def test_attempt_hung_up_while_asking_is_refused():
    manager, attempt = attempt_for()
    attempt.session.connected()
    attempt.session.ended_on_line("remote")
    assert attempt.state is AttemptState.MISSED and manager.calls == [("over", "refused")]


def test_a_cancelled_attempt_that_connects_takes_nobody():
    manager, attempt = attempt_for(confirm=False)
    attempt.cancel("another operator accepted")
    attempt.session.connected()
    assert attempt.state is AttemptState.CANCELLED and manager.calls == []


def test_ring_timeout_only_while_dialling():
    manager, attempt = attempt_for(confirm=False)
    attempt._ring_timeout()
    assert attempt.state is AttemptState.MISSED and manager.calls == [("over", "no answer")]
    assert "hangup" in manager.ctx.commands
