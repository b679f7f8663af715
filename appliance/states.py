"""The states a call leg, an outgoing leg and a ring attempt go through, as enums.

Decisions read these; the text the dashboard shows (a call's ``step``: "playing greeting",
"talking", "menu menu") is made from the state and its detail by ``CallState.text``, so
what is published stays exactly as it was when the step was a free-text string.
"""
import enum


class CallState(enum.Enum):
    """What a call leg is doing, as ``CallSession.state`` holds it."""

    RINGING = "ringing"  # an incoming call not yet up, or the far end of ours alerting
    DIALLING = "dialling"
    ANSWERED = "answered"  # up, before the handler did anything: the step shown stays as it was
    PLAYING = "playing {detail}"
    LISTENING = "listening"
    ASKING_TO_ACCEPT = "asking to accept"
    IN_FLOW = "{detail}"  # at an IVR node: "<node type> <node id>"
    TALKING = "talking"
    LEAVING_MESSAGE = "leaving a message"
    ENDED = "ended"  # the last step shown stays on display once a call ended

    def text(self, detail=None):
        """The step text the dashboard and the ``call.step`` events show for this state."""
        return self.value.format(detail=detail) if "{detail}" in self.value else self.value

    @property
    def before_answer(self):
        """Whether the call has not been answered (or picked up) yet."""
        return self in (CallState.RINGING, CallState.DIALLING)

    @property
    def up(self):
        """Whether the call is answered and not over."""
        return not self.before_answer and self is not CallState.ENDED


class LegState(enum.Enum):
    """An outgoing leg that joins a caller (a call-back to them, a forward): dialled, then up or not."""

    DIALLING = "dialling"
    CONNECTED = "connected"
    NOT_REACHED = "not reached"  # busy, no answer, refused, failed: it never connected
    ENDED = "ended"  # it connected, and it is over now

    def after_end(self):
        """The state once the leg's call ended: ENDED after a conversation, else NOT_REACHED."""
        return LegState.ENDED if self is LegState.CONNECTED else LegState.NOT_REACHED


class AttemptState(enum.Enum):
    """One operator rung for one caller: from dialling to accepted, missed or cancelled."""

    DIALLING = "dialling"
    ASKING = "asking to accept"  # the operator picked up and hears "press 1 to accept"
    ACCEPTED = "accepted"
    FINISHED = "finished"  # the accepted operator's leg is over
    MISSED = "missed"  # no answer, a refusal, no key in time, or hung up before accepting
    CANCELLED = "cancelled"  # another operator took the caller, or the caller left

    @property
    def undecided(self):
        """Whether the operator has neither taken the caller nor been let go."""
        return self in (AttemptState.DIALLING, AttemptState.ASKING)

    @property
    def accepted(self):
        """Whether the operator took the caller (the conversation may be over since)."""
        return self in (AttemptState.ACCEPTED, AttemptState.FINISHED)

    @property
    def over(self):
        """Whether the attempt is done with: nothing more comes of it."""
        return self in (AttemptState.FINISHED, AttemptState.MISSED, AttemptState.CANCELLED)

    def can_move(self, new):
        """Whether an attempt in this state may go to ``new``."""
        return new in ATTEMPT_MOVES[self]


ATTEMPT_MOVES = {
    AttemptState.DIALLING: {AttemptState.ASKING, AttemptState.ACCEPTED, AttemptState.MISSED,
                            AttemptState.CANCELLED},
    AttemptState.ASKING: {AttemptState.ACCEPTED, AttemptState.MISSED, AttemptState.CANCELLED},
    AttemptState.ACCEPTED: {AttemptState.FINISHED, AttemptState.CANCELLED},
    AttemptState.FINISHED: set(),
    AttemptState.MISSED: set(),
    AttemptState.CANCELLED: set(),
}
