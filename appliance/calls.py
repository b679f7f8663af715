"""A call's life in the engine: ring, answer, greeting, recording, hang-up, journal.

Every method runs on the engine's loop thread; the media clock and the line threads
reach a session only through ``engine.post``.
"""
import logging
import os
import time

from .dtmf import DtmfDetector
from .media import CallMedia, Player, Recorder
from .prompts import prompt_path

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_SECONDS = 15


# How an outgoing call that never connected ended, as the journal says it.
UNCONNECTED_OUTCOMES = {"busy": "busy", "no answer": "no answer", "rejected": "busy"}


class CallSession:
    """One call on one line: inbound (``caller`` rings us) or outbound (we dial ``callee``)."""

    def __init__(self, engine, line_id, caller="", callee="", direction="in"):
        self.engine = engine
        self.line_id = line_id
        self.caller = caller
        self.callee = callee
        self.direction = direction
        self.step = "ringing" if direction == "in" else "dialling"
        self.started = time.monotonic()
        self.answered = None
        self.media = None
        self.ended = False
        self.hold_seconds = None
        self.id = engine.journal.start_call(line_id, direction, caller=caller, callee=callee)
        self._publish("call.started")

    def dial(self, hold_seconds):
        """Place the outbound call; once connected, play the greeting and hang up after ``hold_seconds``."""
        self.hold_seconds = hold_seconds
        callee = self.callee
        self.engine.line_command(self.line_id, "dial", lambda driver: driver.dial(callee))

    def alerting(self):
        """The far end of our outbound call is ringing."""
        if not self.ended:
            self.step = "ringing"
            self.engine.journal.add_event(self.id, "alerting")
            self._publish("call.step")

    def answer(self):
        """Ask the line to pick up; give up if it has not connected in time."""
        self.engine.line_command(self.line_id, "answer", lambda driver: driver.answer())
        self.engine.later(ANSWER_TIMEOUT_SECONDS, self._answer_overdue)

    def connected(self):
        """The call is up: start recording and play the greeting."""
        if self.ended or self.answered is not None:
            return
        self.answered = time.monotonic()
        self.engine.journal.answer_call(self.id)
        port = self.engine.line_audio(self.line_id)
        recorder = Recorder(os.path.join(self.engine.data_dir, self._recording_name()))
        line = self.engine.lines.get(self.line_id, {})
        self.media = CallMedia(port, recorder, self._prompt_finished, self._media_failed,
                               dtmf_detector=DtmfDetector() if line.get("inband_dtmf") else None,
                               on_dtmf=lambda digit: self.engine.post(self.dtmf, digit),
                               gains=self.engine.software_gains(self.line_id))
        self.play(self.engine.greeting_for(self.line_id))
        self.engine.clock.attach(self.media)
        self.engine.later(self.engine.config["settings"]["max_call_seconds"], self._too_long)
        if self.hold_seconds is not None:
            self.engine.later(self.hold_seconds, self._hold_over)
        self._publish("call.answered")

    def play(self, prompt):
        """Play a prompt (a config prompt dict) to the caller."""
        path = prompt_path(self.engine.data_dir, prompt["language"], prompt["id"])
        try:
            self.media.play(Player(path))
        except (OSError, ValueError) as err:
            log.error("call %s: cannot play %s: %s", self.id, path, err)
            self.engine.journal.add_event(self.id, "prompt_missing", prompt=prompt["id"], error=str(err))
            return
        self.step = f"playing {prompt['id']}"
        self.engine.journal.add_event(self.id, "prompt", prompt=prompt["id"], language=prompt["language"])
        self._publish("call.step")

    def dtmf(self, digit):
        """The caller pressed a key."""
        if not self.ended:
            self.engine.journal.add_digit(self.id, digit)
            self._publish("call.dtmf", digit=digit)

    def ended_on_line(self, cause, outcome=None):
        """The line reports the call over; ``cause`` is remote, local, or a failure."""
        if self.ended:
            return
        self.ended = True
        recording = self._stop_media()
        ended_by = ("caller" if self.direction == "in" else "callee") if cause == "remote" else "box"
        outcome = outcome or self._outcome(cause)
        talk = round(time.monotonic() - self.answered, 2) if self.answered is not None else None
        self.engine.journal.end_call(self.id, outcome, ended_by, talk_seconds=talk, recording=recording)
        self._publish("call.ended", outcome=outcome, ended_by=ended_by, talk_seconds=talk, recording=recording)
        self.engine.forget_call(self)

    def _outcome(self, cause):
        if self.answered is not None:
            return "answered"
        if self.direction == "in":
            return "missed"
        return UNCONNECTED_OUTCOMES.get(cause, "failed")

    def _hold_over(self):
        if not self.ended:
            self.hang_up("test call over")

    def hang_up(self, reason):
        """The box ends the call."""
        if self.ended:
            return
        self.engine.journal.add_event(self.id, "hangup", reason=reason)
        self.engine.line_command(self.line_id, "hangup", lambda driver: driver.hangup())

    def snapshot(self):
        """The call as the dashboard shows it."""
        now = time.monotonic()
        return {
            "id": self.id, "line": self.line_id, "direction": self.direction, "caller": self.caller,
            "callee": self.callee, "step": self.step,
            "seconds": round(now - self.started, 1),
            "talk_seconds": round(now - self.answered, 1) if self.answered is not None else None,
        }

    def _prompt_finished(self, player):
        self.engine.post(self._prompt_done, os.path.basename(player.path))

    def _prompt_done(self, name):
        if self.ended:
            return
        self.step = "listening"
        self.engine.journal.add_event(self.id, "prompt_end", prompt=name[:-4])
        self._publish("call.step")

    def _media_failed(self, error):
        self.engine.post(self._media_lost, error)

    def _media_lost(self, error):
        self.engine.journal.add_event(self.id, "audio_lost", error=error)
        self.hang_up("audio path lost")

    def _answer_overdue(self):
        if not self.ended and self.answered is None:
            self.engine.journal.add_event(self.id, "answer_failed", reason="no connection after answering")
            self.hang_up("answer timed out")
            self.ended_on_line("answer failed", outcome="failed")

    def _too_long(self):
        if not self.ended and self.answered is not None:
            self.hang_up("maximum call length reached")

    def _stop_media(self):
        if self.media is None:
            return None
        self.engine.clock.detach(self.media)
        path = self.media.recorder.finish()
        return os.path.relpath(path, self.engine.data_dir)

    def _recording_name(self):
        day = time.strftime("%Y/%m/%d", time.gmtime())
        return os.path.join("recordings", day, f"call-{self.id}.wav")

    def _publish(self, kind, **extra):
        self.engine.publish({"type": kind, "call": self.snapshot(), **extra})
