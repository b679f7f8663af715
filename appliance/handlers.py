"""The base of whatever drives a call: the IVR, a ring attempt, a call-back, a forward.

A ``CallSession`` tells its handler what happened on the line; a handler overrides the
events it cares about (as pyserial's ``Protocol`` does) and inherits a no-op for the rest.
"""


class CallHandler:
    """No-op reactions to a call's events; subclasses override what they need."""

    def on_connected(self):
        """The call is answered (incoming) or the far end picked up (outgoing)."""

    def on_dtmf(self, digit):
        """The far end pressed ``digit``."""

    def on_prompt_done(self):
        """The prompt the session was playing has ended."""

    def on_ended(self):
        """The call is over, whoever ended it."""

    def voicemail_done(self):
        """The message being recorded is complete (the caller hung up or the time ran out)."""
