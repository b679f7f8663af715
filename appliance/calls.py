"""A call leg's life in the engine: ring or dial, answer, media, prompts, bridge, hang-up, journal.

Every method runs on the engine's loop thread; the media clock and the line threads
reach a session only through ``ctx.post``. What a leg is *for* lives in its
``handler`` (a ``CallHandler``): the IVR for a caller, a ring attempt for an operator's
phone, a call-back. A leg without one plays the line's greeting (a test call, a line
without a flow). Where the leg is lives in ``state`` (a ``CallState``); ``step`` is the
text the dashboard shows for it.
"""
import logging
import os
import time
import weakref

from .dtmf import DtmfDetector
from .handlers import CallHandler
from .health import recording_refusal
from .media import CallMedia, LoopPlayer, Player, Recorder, bridge, unbridge
from .prompts import music_path, prompt_path, resolve_prompt
from .states import CallState

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_SECONDS = 15
RECORDED_ROLES = ("caller", "callback", "test")

# How an outgoing call that never connected ended, as the journal says it.
UNCONNECTED_OUTCOMES = {"busy": "busy", "no answer": "no answer", "rejected": "busy"}


class CallSession:
    """One call leg on one line: inbound (``caller`` rings us) or outbound (we dial ``callee``)."""

    def __init__(self, ctx, line_id, caller="", callee="", direction="in", role=None, parent_id=None,
                 handler=None, channel=None):
        self.ctx = ctx
        self.line_id = line_id
        self.channel = channel  # which of a SIP line's calls this is; None on a modem
        self.caller = caller
        self.callee = callee
        self.direction = direction
        self.role = role or ("caller" if direction == "in" else "test")
        self.handler = handler
        self.language = ctx.config["settings"]["language"]
        self.state = CallState.RINGING if direction == "in" else CallState.DIALLING
        self._step = self.state.text()
        self.started = time.monotonic()
        self.answered = None
        self.media = None
        self.outcome = None
        self.recording = None  # the WAV, relative to the data directory, once the call ended
        self.peer = None  # the leg this one is bridged with
        self.hold_seconds = None
        self._voicemail = None
        self._timers = []  # the leg's own time limits, cancelled when it ends
        self._end = None  # what the journal says of the call's end, once it is written
        self.parent_id = parent_id
        self.id = ctx.journal.start_call(line_id, direction, caller=caller, callee=callee, role=self.role,
                                         parent_id=parent_id)
        if channel is None and ctx.is_sip(line_id):
            self.channel = f"out-{self.id}"  # the engine names the outgoing calls of a SIP line
        ctx.claim_line(line_id, self)
        self._publish("call.started")

    # --- state and handler --------------------------------------------------------------

    @property
    def handler(self):
        """What the leg is for; it hears the call's events (never None)."""
        return self._handler

    @handler.setter
    def handler(self, handler):
        self._handler = handler if handler is not None else GreetingHandler(self)

    @property
    def ended(self):
        """Whether the call is over."""
        return self.state is CallState.ENDED

    @property
    def step(self):
        """The step as the dashboard shows it: "ringing", "playing greeting", "talking", "menu menu"..."""
        return self._step

    @step.setter
    def step(self, text):
        """An IVR node's step ("<type> <node id>") set as text: the leg is in the flow."""
        self.set_state(CallState.IN_FLOW, text)

    def set_state(self, state, detail=None):
        """Show ``state`` (its step text made with ``detail``) and move to it, except that an
        ended call stays ended and an answered one does not go back to ringing (a late report)."""
        self._step = state.text(detail)
        if self.state is not CallState.ENDED and not (state.before_answer and self.answered is not None):
            self.state = state

    # --- placing and taking the call ---------------------------------------------------

    def dial(self, hold_seconds):
        """Place the outbound call; a test call (``hold_seconds``) plays the greeting and hangs up."""
        self.hold_seconds = hold_seconds
        callee = self.callee
        self._command("dial", lambda leg: leg.dial(callee))

    def alerting(self):
        """The far end of our outbound call is ringing."""
        if not self.ended:
            self.set_state(CallState.RINGING)
            self.ctx.journal.add_event(self.id, "alerting")
            self._publish("call.step")

    def answer(self):
        """Ask the line to pick up; give up if it has not connected in time."""
        self._command("answer", lambda leg: leg.answer())
        self._later(ANSWER_TIMEOUT_SECONDS, self._answer_overdue)

    def reject(self, reason, outcome):
        """Refuse a ringing call without answering it (blacklist, no line for it)."""
        self.outcome = outcome
        self.ctx.journal.add_event(self.id, "rejected", reason=reason)
        self._command("hangup", lambda leg: leg.hangup())

    def connected(self):
        """The call is up: start its media, then let the handler (or the test greeting) go on."""
        if not self.state.before_answer:
            return
        self.answered = time.monotonic()
        self.state = CallState.ANSWERED  # the step shown stays until the handler plays, bridges...
        self.ctx.journal.answer_call(self.id)
        self._start_media()
        self._later(self.ctx.config["settings"]["max_call_seconds"], self._too_long)
        self._publish("call.answered")
        self.handler.on_connected()

    def play_greeting(self):
        """Play the line's greeting; a test call hangs up ``hold_seconds`` later."""
        self.play_prompt(self.ctx.greeting_for(self.line_id))
        if self.hold_seconds is not None:
            self._later(self.hold_seconds, self._hold_over)

    def _start_media(self):
        port = self.ctx.line_audio(self.line_id, self.channel)
        line = self.ctx.lines.get(self.line_id, {})
        self.media = CallMedia(port, self._recorder(), self._prompt_finished, self._media_failed,
                               dtmf_detector=DtmfDetector() if line.get("inband_dtmf") else None,
                               on_dtmf=lambda digit: self.ctx.post(self.dtmf, digit),
                               gains=self.ctx.software_gains(self.line_id))
        self.ctx.clock.attach(self.media)

    def _recorder(self):
        mode = self.ctx.config["settings"]["recording"]
        if mode == "off" or self.role not in RECORDED_ROLES:
            return None
        refusal = recording_refusal(self.ctx.data_dir)
        if refusal:  # the journal's disk must not fill up: the call goes on unrecorded, and says so
            self.ctx.journal.add_event(self.id, "recording_refused", reason=refusal)
            return None
        return Recorder(os.path.join(self.ctx.data_dir, self._recording_name()), stereo=mode == "stereo")

    # --- what the caller hears ----------------------------------------------------------

    def play_prompt(self, prompt_id):
        """Play a prompt in the call's language (falling back to the box's, then any)."""
        prompt = resolve_prompt(self.ctx.config, prompt_id, self.language)
        if prompt is None:
            self.ctx.journal.add_event(self.id, "prompt_missing", prompt=prompt_id)
            self._prompt_done(prompt_id)
            return
        self.play_file(prompt_path(self.ctx.data_dir, prompt["language"], prompt["id"]), prompt["id"])

    def play_file(self, path, name):
        """Play a WAV file to the far end; the handler hears ``on_prompt_done`` at its end."""
        try:
            self.media.play(Player(path))
        except (OSError, ValueError) as err:
            log.error("call %s: cannot play %s: %s", self.id, path, err)
            self.ctx.journal.add_event(self.id, "prompt_missing", prompt=name, error=str(err))
            self.ctx.post(self._prompt_done, name)
            return
        self._playing = name
        self.set_state(CallState.PLAYING, name)
        self.ctx.journal.add_event(self.id, "prompt", prompt=name, language=self.language)
        self._publish("call.step")

    def say(self, text):
        """Speak ``text`` (made by espeak-ng off the loop); False when it is not ready yet."""
        path = self.ctx.phrases.get(self.language, text)
        if path is None:
            return False
        self.play_file(path, "announcement")
        return True

    def hold_music(self, prompt_id=None):
        """Music on hold between prompts until a prompt or a bridge takes over."""
        path = (prompt_path(self.ctx.data_dir, *self._prompt_key(prompt_id)) if prompt_id
                else music_path(self.ctx.data_dir))
        try:
            self.media.hold = LoopPlayer(path)
        except (OSError, ValueError) as err:
            log.error("call %s: no music on hold (%s)", self.id, err)

    def _prompt_key(self, prompt_id):
        prompt = resolve_prompt(self.ctx.config, prompt_id, self.language)
        return (prompt["language"], prompt["id"]) if prompt else (self.language, prompt_id)

    def announce_position(self, position, seconds, callback_key):
        """Tell a waiting caller their place, the expected wait and the call-back key."""
        from .prompts import position_text

        self.say(position_text(self.language, position, seconds, callback_key))

    def bridge_with(self, other):
        """Join this leg and ``other``: each hears the other, the recording takes both."""
        self.media.stop_prompt()
        other.media.stop_prompt()
        bridge(self.media, other.media)
        self.peer, other.peer = other, self
        self.set_state(CallState.TALKING)
        other.set_state(CallState.TALKING)
        self.ctx.journal.add_event(self.id, "bridged", call=other.id)
        self.ctx.journal.add_event(other.id, "bridged", call=self.id)
        self._publish("call.step")

    def start_voicemail(self, max_seconds):
        """Record what the caller says into a message of its own, for at most ``max_seconds``."""
        name = os.path.join("voicemail", time.strftime("%Y/%m", time.gmtime()), f"message-{self.id}.wav")
        self._voicemail = Recorder(os.path.join(self.ctx.data_dir, name))
        self.media.taps.append(self._voicemail)
        self.set_state(CallState.LEAVING_MESSAGE)
        self._publish("call.step")
        return name

    def stop_voicemail(self):
        """Finish the message; return (relative path, seconds) or None if there was none."""
        recorder, self._voicemail = self._voicemail, None
        if recorder is None:
            return None
        if self.media is not None and recorder in self.media.taps:
            self.media.taps.remove(recorder)
        path = recorder.finish()
        return os.path.relpath(path, self.ctx.data_dir), round(recorder.seconds, 2)

    # --- what the caller does ---------------------------------------------------------

    def dtmf(self, digit):
        """The far end pressed a key."""
        if self.ended:
            return
        self.ctx.journal.add_digit(self.id, digit)
        self._publish("call.dtmf", digit=digit)
        self.handler.on_dtmf(digit)

    def ended_on_line(self, cause, outcome=None):
        """The line reports the call over; ``cause`` is remote, local, or a failure."""
        if self.ended:
            return
        self.state = CallState.ENDED  # the last step stays on display
        for timer in self._timers:
            timer.cancel()
        self.handler.on_ended()
        recording = self.recording = self._stop_media()
        self._end_peer()
        self._publish("call.ended", **self._record_end(cause, outcome, recording))
        self.ctx.forget_call(self)

    def _end_peer(self):
        peer = self.peer
        if peer is None or peer.ended:
            return
        peer.hang_up("the other side hung up")
        if peer.parent_id == self.id and (peer.media is None or peer.media.recorder is None):
            # The leg's end goes into the journal now, before this call's own: that durable
            # commit then carries both to disk (one fsync, not two); its line confirms later.
            peer._record_end("local")

    def _record_end(self, cause, outcome=None, recording=None):
        """Write the call's end to the journal, once; return what was written."""
        if self._end is None:
            ended_by = ("caller" if self.direction == "in" else "callee") if cause == "remote" else "box"
            self.outcome = outcome or self.outcome or self._outcome(cause)
            talk = round(time.monotonic() - self.answered, 2) if self.answered is not None else None
            self.ctx.journal.end_call(self.id, self.outcome, ended_by, talk_seconds=talk, recording=recording)
            self._end = {"outcome": self.outcome, "ended_by": ended_by, "talk_seconds": talk, "recording": recording}
        return self._end

    def _outcome(self, cause):
        if self.answered is not None:
            return "answered"
        if self.direction == "in":
            return "missed"
        return UNCONNECTED_OUTCOMES.get(cause, "failed")

    def _later(self, seconds, method):
        self._timers.append(self.ctx.later(seconds, _weakly(method)))

    def _hold_over(self):
        if not self.ended:
            self.hang_up("test call over")

    def hang_up(self, reason):
        """The box ends the call."""
        if self.ended:
            return
        self.ctx.journal.add_event(self.id, "hangup", reason=reason)
        self._command("hangup", lambda leg: leg.hangup())

    @property
    def key(self):
        """(line id, channel): how the engine finds this leg from a line's event."""
        return (self.line_id, self.channel)

    def _command(self, name, action):
        self.ctx.line_command(self.line_id, name, action, channel=self.channel)

    def snapshot(self):
        """The call as the dashboard shows it."""
        now = time.monotonic()
        return {
            "id": self.id, "line": self.line_id, "direction": self.direction, "role": self.role,
            "caller": self.caller, "callee": self.callee, "step": self.step, "language": self.language,
            "seconds": round(now - self.started, 1),
            "talk_seconds": round(now - self.answered, 1) if self.answered is not None else None,
        }

    def _prompt_finished(self, player):
        self.ctx.post(self._prompt_done, os.path.basename(player.path)[:-4])

    def _prompt_done(self, name):
        if self.ended:
            return
        self.set_state(CallState.LISTENING)
        self.ctx.journal.add_event(self.id, "prompt_end", prompt=name)
        self._publish("call.step")
        self.handler.on_prompt_done()

    def _media_failed(self, error):
        self.ctx.post(self._media_lost, error)

    def _media_lost(self, error):
        self.ctx.journal.add_event(self.id, "audio_lost", error=error)
        self.hang_up("audio path lost")

    def _answer_overdue(self):
        if self.state.before_answer and self.direction == "in":
            self.ctx.journal.add_event(self.id, "answer_failed", reason="no connection after answering")
            self.hang_up("answer timed out")
            self.ended_on_line("answer failed", outcome="failed")

    def _too_long(self):
        if self.state.up:
            self.hang_up("maximum call length reached")

    def _stop_media(self):
        if self.media is None:
            return None
        self.ctx.clock.detach(self.media)
        unbridge(self.media)
        self.stop_voicemail_if_any()
        if self.media.recorder is None:
            return None
        path = self.media.recorder.finish()
        return os.path.relpath(path, self.ctx.data_dir)

    def stop_voicemail_if_any(self):
        """Finish a message the caller was leaving when the call ended."""
        if self._voicemail is not None:
            self.handler.voicemail_done()

    def _recording_name(self):
        day = time.strftime("%Y/%m/%d", time.gmtime())
        return os.path.join("recordings", day, f"call-{self.id}.wav")

    def _publish(self, kind, **extra):
        self.ctx.publish({"type": kind, "call": self.snapshot(), **extra})


class GreetingHandler(CallHandler):
    """What a leg without a handler does: play the line's greeting once it is up (a test call, no flow)."""

    def __init__(self, session):
        self._session = weakref.ref(session)  # no cycle: a session's timers hold it only weakly

    def on_connected(self):
        """The call is up: the greeting plays."""
        session = self._session()
        if session is not None:
            session.play_greeting()


def _weakly(method):
    """``method``, called only while its call is still in memory: the ten-minute limit of a
    call that ended long ago must not keep it, its media and its buffers alive till then."""
    ref = weakref.WeakMethod(method)

    def fire():
        bound = ref()
        if bound is not None:
            bound()

    return fire
