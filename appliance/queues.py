"""Queues: callers waiting for operators, operators rung by strategy, confirm-to-accept, bridging.

Everything here runs on the engine's loop thread. A caller (or a call-back task, which
keeps the turn of the caller it stands for) waits in a queue; ``dispatch`` rings ready
operators over free outbound lines in the order the queue's strategy gives. An operator
who picks up hears "press 1 to accept" first, so a mobile's voicemail never takes the
call; only then are the two bridged (a SIP desk phone, whose operator is marked
``confirm: false``, takes the caller as it answers). No answer, a refusal or silence
moves on to the next operator.
"""
import datetime
import logging
import math
import time

from .calls import CallSession
from .handlers import CallHandler
from .media import RINGBACK, Tone
from .states import AttemptState, CallState, LegState

log = logging.getLogger(__name__)

ACCEPT_KEY = "1"
ACCEPT_SECONDS = 12.0  # how long an operator has to press 1 once they picked up
ACCEPT_PROMPT_REPEATS = 3


def expected_wait(position, history, staffed):
    """Seconds a caller at ``position`` should expect, from the queue's recent (wait, talk) history.

    Each staffed operator clears one caller per average handle time, so the caller at
    position p waits about ceil(p / staffed) handle times. None without history or staff.
    """
    talks = [talk for _, talk in history if talk]
    if not talks or staffed <= 0:
        return None
    return math.ceil(position / staffed) * (sum(talks) / len(talks))


class QueueEntry:
    """A caller on hold in a queue, or a call-back task holding a caller's turn."""

    def __init__(self, queue, session=None, task=None, joined=None, on_leave=None):
        self.queue = queue
        self.session = session
        self.task = task
        self.joined = joined if joined is not None else time.monotonic()
        self.on_leave = on_leave
        self.tried = set()
        self.attempts = []
        self.done = False
        self.round_over_at = None

    @property
    def number(self):
        """The caller's number."""
        return self.session.caller if self.session is not None else self.task["number"]

    def waited(self):
        """Seconds since the caller joined."""
        return time.monotonic() - self.joined


class RingAttempt(CallHandler):
    """One operator's phone rung for one queue entry: dial, confirm, hand over."""

    def __init__(self, manager, entry, operator, line_id):
        self.manager = manager
        self.ctx = ctx = manager.ctx
        self.entry = entry
        self.operator = operator
        self.state = AttemptState.DIALLING
        self.prompts_played = 0
        self.bridged_with = None  # the caller's leg once the two are joined
        parent = entry.session.id if entry.session is not None else entry.task.get("call_id")
        self.session = CallSession(ctx, line_id, callee=operator.config["number"], direction="out",
                                   role="operator", parent_id=parent, handler=self)
        ctx.journal.set_call(self.session.id, operator=operator.id, queue=entry.queue["id"])
        self.session.dial(None)
        ctx.later(entry.queue["ring_timeout"], self._ring_timeout)

    @property
    def accepted(self):
        """Whether the operator took the caller."""
        return self.state.accepted

    @property
    def over(self):
        """Whether nothing more comes of this attempt."""
        return self.state.over

    def _move(self, state):
        if not self.state.can_move(state):
            log.warning("ring attempt for %s: %s -> %s refused", self.operator.id, self.state.name, state.name)
            return False
        self.state = state
        return True

    def on_connected(self):
        """The operator picked up: ask them to accept (a phone that needs no confirmation takes the caller)."""
        if self.state is not AttemptState.DIALLING:
            return  # cancelled while the phone was being picked up: its hang-up is on its way
        if not self.operator.config.get("confirm", True):
            self._move(AttemptState.ACCEPTED)
            self.manager.accepted(self)
            return
        self._move(AttemptState.ASKING)
        self.session.set_state(CallState.ASKING_TO_ACCEPT)
        self._ask()
        self.ctx.later(ACCEPT_SECONDS, self._accept_timeout)

    def _ask(self):
        self.prompts_played += 1
        self.session.play_prompt(self.entry.queue.get("accept_prompt") or "accept")

    def on_prompt_done(self):
        """Repeat the question a few times while waiting for the key."""
        if self.state.undecided and self.prompts_played < ACCEPT_PROMPT_REPEATS:
            self._ask()

    def on_dtmf(self, digit):
        """1 accepts; any other key refuses."""
        if not self.state.undecided:
            return
        if digit == ACCEPT_KEY:
            self._move(AttemptState.ACCEPTED)
            self.session.media.stop_prompt()
            self.manager.accepted(self)
        else:
            self._give_up("refused")

    def on_ended(self):
        """The operator's leg ended (they hung up, were busy, did not answer...)."""
        if self.state is AttemptState.ACCEPTED:
            self._move(AttemptState.FINISHED)
            self.manager.leg_ended(self)
        elif self.state.undecided:
            if self.state is AttemptState.ASKING:
                self.session.outcome = "refused"  # picked up, then hung up without pressing 1
            self._move(AttemptState.MISSED)
            self.manager.attempt_over(self, self.session.outcome or "not reached")

    def cancel(self, reason):
        """Stop ringing (another operator took the caller, or the caller left)."""
        if not self.over:
            self._move(AttemptState.CANCELLED)
            self.session.outcome = "cancelled"
            self.session.hang_up(reason)
            self.ctx.operators.released(self.operator.id, talked=False)

    def _ring_timeout(self):
        if self.state is AttemptState.DIALLING:
            self._give_up("no answer")

    def _accept_timeout(self):
        if self.state.undecided:
            self._give_up("not accepted")

    def _give_up(self, outcome):
        self.session.outcome = outcome
        self._move(AttemptState.MISSED)
        self.session.hang_up(outcome)
        self.manager.attempt_over(self, outcome)


class OutgoingLeg(CallHandler):
    """A leg the box dials to join a caller; ``state`` (a ``LegState``) says whether it was reached."""

    state = LegState.DIALLING

    def on_connected(self):
        """The far end picked up."""
        self.state = LegState.CONNECTED
        self.connected()

    def on_ended(self):
        """The leg's call is over: after a conversation, or without reaching anyone."""
        self.state = self.state.after_end()
        self.finished()

    def connected(self):
        """What the leg does once it is up."""

    def finished(self):
        """What the leg does once it is over (``state`` says whether it was reached)."""

    def _timeout(self):
        if self.state is LegState.DIALLING:
            self.timed_out()

    def timed_out(self):
        """Nobody picked up in time: hang up."""
        self.session.hang_up("no answer")


class CallbackDial(OutgoingLeg):
    """The second half of a call-back: the operator accepted, now the box dials the caller."""

    def __init__(self, manager, entry, attempt, line_id):
        self.manager = manager
        self.ctx = ctx = manager.ctx
        self.entry = entry
        self.attempt = attempt
        self.session = CallSession(ctx, line_id, callee=entry.task["number"], direction="out",
                                   role="callback", parent_id=attempt.session.id, handler=self)
        ctx.journal.set_call(self.session.id, queue=entry.queue["id"], operator=attempt.operator.id)
        self.session.dial(None)
        ctx.later(entry.queue["ring_timeout"] + 10, self._timeout)

    def connected(self):
        """The caller picked up: join them to the waiting operator."""
        if self.attempt.session.ended:
            self.session.hang_up("the operator left")
            return
        self.manager.join_call(self.session, self.attempt, self.entry)

    def finished(self):
        """The caller's leg ended: a conversation, or an attempt that did not reach them."""
        self.manager.callback_leg_ended(self)


class ForwardLeg(OutgoingLeg):
    """A caller forwarded to a number: dialled over a free line, bridged when it answers."""

    def __init__(self, ctx, caller_session, number, line_id, timeout, on_failed):
        self.ctx = ctx
        self.caller_session = caller_session
        self.on_failed = on_failed
        self.session = CallSession(ctx, line_id, callee=number, direction="out", role="forward",
                                   parent_id=caller_session.id, handler=self)
        ctx.journal.add_event(caller_session.id, "forward", number=number, line=line_id)
        caller_session.media.hold = Tone(**RINGBACK)  # the caller hears the number ring
        self.session.dial(None)
        ctx.later(timeout, self._timeout)

    def connected(self):
        """The number answered: join the caller."""
        if self.caller_session.ended:
            self.session.hang_up("the caller hung up")
            return
        self.caller_session.outcome = "forwarded"
        self.caller_session.bridge_with(self.session)

    def finished(self):
        """Not reached: back to the flow; after a conversation the caller's leg ends too."""
        if self.state is LegState.NOT_REACHED and not self.caller_session.ended:
            self.caller_session.media.hold = None
            self.ctx.journal.add_event(self.caller_session.id, "forward_failed",
                                          reason=self.session.outcome or "not answered")
            self.on_failed()

    def timed_out(self):
        """Nobody answered in time: the forward failed."""
        self.session.outcome = "no answer"
        self.session.hang_up("no answer")


class QueueManager:
    """Every queue's waiting callers and the operators being rung for them."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.entries = []
        self.tasks_in_progress = set()  # call-back tasks whose operator leg is up

    # --- callers joining and leaving -------------------------------------------------

    def join(self, session, queue_id, on_leave):
        """Put a caller in a queue; ``on_leave(reason)`` runs when they leave unanswered."""
        queue = self._queue(queue_id)
        if sum(1 for e in self.entries if e.queue["id"] == queue_id) >= queue["max_length"]:
            on_leave("full")
            return None
        entry = QueueEntry(queue, session=session, on_leave=on_leave)
        self.entries.append(entry)
        self.ctx.journal.set_call(session.id, queue=queue_id)
        self.ctx.journal.add_event(session.id, "queue_join", queue=queue_id, position=self.position(entry))
        session.hold_music(queue.get("moh"))
        self.ctx.later(queue["max_wait"], self._max_wait, entry)
        if queue["announce_every"]:
            self.ctx.later(min(5.0, queue["announce_every"]), self._announce, entry)
        self.dispatch()
        return entry

    def add_task(self, task, queue_id, joined=None):
        """Queue a call-back task; it keeps ``joined`` (the caller's turn) when given."""
        if task["id"] in self.tasks_in_progress or any(
                e.task is not None and e.task["id"] == task["id"] for e in self.entries):
            return None
        entry = QueueEntry(self._queue(queue_id), task=task, joined=joined)
        self.entries.append(entry)
        self.dispatch()
        return entry

    def caller_key(self, entry, digit):
        """A caller pressed a key while waiting: the queue's call-back key leaves for a call-back."""
        key = entry.queue.get("callback_key")
        if key and digit == key and not entry.done:
            self._leave(entry, "callback")

    def caller_left(self, entry):
        """The caller hung up while waiting."""
        if not entry.done:
            self._leave(entry, "abandoned")

    def position(self, entry):
        """1 for the first in its queue."""
        ahead = [e for e in self.entries if e.queue["id"] == entry.queue["id"] and e.joined < entry.joined]
        return len(ahead) + 1

    def waiting(self):
        """The queue as the dashboard shows it."""
        return [{"queue": e.queue["id"], "number": e.number, "position": self.position(e),
                 "waited_seconds": round(e.waited(), 1), "kind": "caller" if e.session else "call-back",
                 "ringing": [a.operator.id for a in e.attempts if not a.over]}
                for e in sorted(self.entries, key=lambda e: e.joined)]

    # --- ringing operators -------------------------------------------------------

    def dispatch(self):
        """Ring ready operators for waiting callers, oldest caller first."""
        for entry in sorted(self.entries, key=lambda e: e.joined):
            if not entry.done and not any(not a.over for a in entry.attempts):
                self._ring_for(entry)

    def _ring_for(self, entry):
        queue = entry.queue
        board = self.ctx.operators
        tz = self.ctx.timezone
        candidates = board.candidates(queue["groups"], tz, exclude=entry.tried)
        if not candidates:
            self._new_round_later(entry)
            return
        for operator in board.order(queue["id"], queue["strategy"], candidates):
            if not self._lines_for(entry):
                return  # no line to reach an operator: the caller keeps waiting
            line_id = self.ctx.free_line(operator.config["number"])
            if line_id is None:
                continue  # no free line reaches this operator (a SIP phone needs a SIP line): try the next
            board.remember(queue["id"], operator.id)
            board.ringing(operator.id)
            entry.tried.add(operator.id)
            entry.attempts.append(RingAttempt(self, entry, operator, line_id))
            self.ctx.journal.add_event(self._call_id(entry), "operator_rung", operator=operator.id, line=line_id)
            if queue["strategy"] != "ring_all":
                return

    def _lines_for(self, entry):
        """A call-back needs two free lines (operator, then one that reaches the caller); a waiting caller one."""
        if entry.task is None:
            return self.ctx.free_line_count() >= 1
        return self.ctx.free_line_count() >= 2 and self.ctx.free_line(entry.number) is not None

    def _new_round_later(self, entry):
        """Everyone was tried: after the queue's pause, start again from the top."""
        if entry.tried and entry.round_over_at is None:
            entry.round_over_at = time.monotonic()
            self.ctx.later(entry.queue["retry_pause"], self._new_round, entry)

    def _new_round(self, entry):
        entry.tried.clear()
        entry.round_over_at = None
        self.dispatch()

    def attempt_over(self, attempt, outcome):
        """An operator did not take the caller: note it and try the next one."""
        self.ctx.operators.released(attempt.operator.id, talked=False)
        if attempt.session.answered is None or outcome in ("refused", "not accepted"):
            call_id = self._call_id(attempt.entry)
            if call_id is not None:
                self.ctx.journal.add_event(call_id, "operator_missed", operator=attempt.operator.id,
                                              outcome=outcome)
        self.ctx.later(0.2, self.dispatch)

    def accepted(self, attempt):
        """An operator pressed 1: hand them the caller, stop ringing the others."""
        entry = attempt.entry
        for other in entry.attempts:
            if other is not attempt:
                other.cancel("another operator accepted")
        gone = entry.done or (entry.session is not None and entry.session.ended)
        if gone:
            attempt.session.hang_up("the caller hung up")
            return
        entry.done = True
        self.entries.remove(entry)
        self.ctx.operators.connected(attempt.operator.id)
        if entry.session is not None:
            self.join_call(entry.session, attempt, entry)
        else:
            self.tasks_in_progress.add(entry.task["id"])
            attempt.session.hold_music(entry.queue.get("moh"))
            self._dial_back(entry, attempt)

    def _dial_back(self, entry, attempt):
        line_id = self.ctx.free_line(entry.number)
        if line_id is None:
            attempt.session.hang_up("no free line for the call-back")
            self.tasks_in_progress.discard(entry.task["id"])
            self._callback_failed(entry, None)
            return
        CallbackDial(self, entry, attempt, line_id)

    def join_call(self, session, attempt, entry):
        """Bridge a caller (or a called-back caller) and the operator who accepted."""
        wait = round(entry.waited(), 2)
        journal = self.ctx.journal
        journal.set_call(session.id, operator=attempt.operator.id, queue=entry.queue["id"], wait_seconds=wait)
        journal.add_event(session.id, "operator_answered", operator=attempt.operator.id, wait_seconds=wait)
        session.bridge_with(attempt.session)
        session.outcome = "answered"
        attempt.session.outcome = "answered"
        attempt.bridged_with = session
        closed = journal.close_callback(entry.number, "reached" if entry.task else "called again and answered",
                                        call_id=session.id)
        if closed is not None:
            self.ctx.notify("callback.done", {"number": entry.number, "task": closed, "call": session.id})
        self.ctx.publish({"type": "queue.answered", "queue": entry.queue["id"], "call": session.id,
                             "operator": attempt.operator.id, "wait_seconds": wait})
        self.ctx.notify("call.answered", {"number": entry.number, "call": session.id, "queue": entry.queue["id"],
                                             "operator": attempt.operator.id, "wait_seconds": wait})

    def leg_ended(self, attempt):
        """The operator's side of a conversation ended: wrap-up starts, the caller is hung up."""
        peer = attempt.bridged_with
        talked = attempt.session.answered is not None and peer is not None
        self.ctx.operators.released(attempt.operator.id, talked=talked)
        if peer is not None and not peer.ended:
            peer.hang_up("the operator hung up")
        self.ctx.later(0.2, self.dispatch)

    def callback_leg_ended(self, dial):
        """The called-back caller's leg ended: done if they talked, else another attempt later."""
        self.tasks_in_progress.discard(dial.entry.task["id"])
        if dial.state is LegState.NOT_REACHED:
            if not dial.attempt.session.ended:
                dial.attempt.session.hang_up("the caller did not answer")
            self._callback_failed(dial.entry, dial.session.id)
        elif not dial.attempt.session.ended:
            dial.attempt.session.hang_up("the caller hung up")

    def _callback_failed(self, entry, call_id):
        settings = self.ctx.config["settings"]
        task = self.ctx.journal.callback(entry.task["id"])
        give_up = task["attempts"] + 1 >= settings["callback_retries"]
        retry_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            minutes=settings["callback_retry_minutes"])
        self.ctx.journal.callback_attempt(task["id"], call_id, retry_at.isoformat(timespec="milliseconds"),
                                             give_up)

    # --- waiting: announcements, limits ----------------------------------------------

    def _announce(self, entry):
        if entry.done or entry.session is None or entry.session.ended:
            return
        position = self.position(entry)
        history = self.ctx.journal.recent_waits(entry.queue["id"])
        staffed = self.ctx.operators.staffed(entry.queue["groups"], self.ctx.timezone)
        seconds = expected_wait(position, history, staffed)
        entry.session.announce_position(position, seconds, entry.queue.get("callback_key"))
        self.ctx.later(entry.queue["announce_every"], self._announce, entry)

    def _max_wait(self, entry):
        if not entry.done:
            self._leave(entry, "overflow")

    def _leave(self, entry, reason):
        entry.done = True
        if entry in self.entries:
            self.entries.remove(entry)
        for attempt in entry.attempts:
            attempt.cancel(f"the caller left the queue ({reason})")
        if entry.session is not None:
            call_id = entry.session.id
            self.ctx.journal.set_call(call_id, wait_seconds=round(entry.waited(), 2))
            self.ctx.journal.add_event(call_id, "queue_leave", queue=entry.queue["id"], reason=reason)
        if reason == "callback":
            self._keep_turn(entry)
        if entry.on_leave is not None:
            entry.on_leave(reason)

    def _keep_turn(self, entry):
        """The caller chose a call-back: the task takes their place in the queue."""
        session = entry.session
        task_id, _ = self.ctx.journal.open_callback(session.caller, "requested", line_id=session.line_id,
                                                       queue=entry.queue["id"], call_id=session.id)
        self.add_task(self.ctx.journal.callback(task_id), entry.queue["id"], joined=entry.joined)

    def _queue(self, queue_id):
        return next(q for q in self.ctx.config["queues"] if q["id"] == queue_id)

    @staticmethod
    def _call_id(entry):
        return entry.session.id if entry.session is not None else entry.task.get("call_id")
