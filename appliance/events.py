"""What the lines report, turned into calls: ``LineEvents`` handles each ``LineEvent`` on the loop.

An event of kind ``k`` goes to the method ``_on_k`` with the event's data as keywords;
a kind without a method is logged and dropped.
"""
import logging

from .calls import CallSession
from .ivr import FlowRun
from .screening import Screening, sip_caller
from .sms_commands import OperatorSms

log = logging.getLogger(__name__)

WAITING_REPEAT_SECONDS = 60.0  # +CCWA repeats while the second caller rings; one entry per caller


class LineEvents:
    """Opens, connects and ends calls as the lines report them; journals what lines say."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.board = ctx.board
        self.screening = Screening(ctx, self.board.line_config)
        self.sms = OperatorSms(ctx)
        self._waiting_seen = {}
        self._caller_ids = {}  # line id -> caller ID an analog line reported before its call began

    def handle(self, line_id, event):
        """Hand ``event`` from ``line_id`` to its handler (loop thread)."""
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is None:
            log.debug("line %s: unhandled event %s", line_id, event)
            return
        handler(line_id, **event.data)

    # --- calls coming in --------------------------------------------------------------

    def _on_incoming(self, line_id, number, channel=None, name=None, uri=None):
        if self.board.session(line_id, channel) is not None:
            return
        if len(self.board.sessions_on(line_id)) >= self.board.line_channels(line_id):
            if channel is not None:  # the SIP line let it ring, but the engine has no room left
                self.ctx.line_command(line_id, "hangup", lambda leg: leg.hangup(), channel=channel)
                self._on_waiting(line_id, number, uri)
            return
        session = CallSession(self.ctx, line_id, caller=sip_caller(number, uri), channel=channel)
        self._journal_caller(session, line_id, name, uri)
        refused = self.screening.refusal(line_id, number)
        if refused:
            session.reject(refused, "blocked")
            return
        flow, campaign = self.screening.flow_for(line_id)
        if flow is not None:
            session.handler = FlowRun(self.ctx, session, flow, campaign)
        session.answer()
        self.ctx.notify("call.started", {"number": number, "call": session.id, "line": line_id})

    def _journal_caller(self, session, line_id, name, uri):
        if uri:
            self.ctx.journal.add_event(session.id, "sip_from", uri=uri, name=name or "")
        if line_id in self._caller_ids:
            self.ctx.journal.add_event(session.id, "caller_id", **self._caller_ids.pop(line_id))

    def _on_waiting(self, line_id, number, uri=None):
        """A caller while the line has no room (+CCWA; 486 on SIP): journal them as missed, call back."""
        number = sip_caller(number, uri)
        now = self.ctx.now()
        if now - self._waiting_seen.get((line_id, number), float("-inf")) < WAITING_REPEAT_SECONDS:
            return
        self._waiting_seen[(line_id, number)] = now
        journal = self.ctx.journal
        call_id = journal.start_call(line_id, "in", caller=number)
        journal.add_event(call_id, "call_waiting", reason="the line was busy with another call")
        journal.end_call(call_id, "missed", "box")
        self.ctx.publish({"type": "call.waiting", "line": line_id, "caller": number, "call": call_id})
        self.ctx.missed_caller(MissedCall(call_id, line_id, number), "all lines busy")

    def _on_caller_id(self, line_id, **details):
        """Caller ID as an analog line reports it between rings (number, name, reason, date)."""
        session = self.board.session(line_id)
        if session is not None:
            self.ctx.journal.add_event(session.id, "caller_id", **details)
        else:
            self._caller_ids[line_id] = details  # it comes between the rings, before the call is ours

    # --- calls in progress ------------------------------------------------------------

    def _on_alerting(self, line_id, channel=None):
        session = self.board.session(line_id, channel)
        if session is not None:
            session.alerting()

    def _on_connected(self, line_id, channel=None):
        session = self.board.session(line_id, channel)
        if session is not None:
            session.connected()
            self.board.set_line(line_id, {})

    def _on_dtmf(self, line_id, digit, channel=None, method=None):
        session = self.board.session(line_id, channel)
        if session is not None:
            session.dtmf(digit)

    def _on_ended(self, line_id, cause, seconds=0.0, channel=None, code=None, reason=None):
        session = self.board.session(line_id, channel)
        if session is None:
            return
        if code is not None and code >= 300:  # a SIP leg refused: the status says why (486 Busy Here...)
            self.ctx.journal.add_event(session.id, "sip_status", code=code, reason=reason or "")
            if code >= 400 and code != 487 and session.direction == "out":  # 487: we cancelled it
                self._provider_refused(line_id, session, code, reason)
        session.ended_on_line(cause)

    def _provider_refused(self, line_id, session, code, reason):
        """A SIP provider or peer refused a call (486, 503...): the line says so and the journal keeps it."""
        text = f"{code} {reason or ''}".strip()
        self.ctx.journal.add_line_event(line_id, "call_refused", call=session.id, code=code, reason=reason or "")
        self.board.set_line(line_id, {"last_refusal": text})

    def _on_missed(self, line_id, cause="remote", seconds=0.0, channel=None):
        self._on_ended(line_id, cause, channel=channel)

    def _on_command_failed(self, line_id, command, error, channel=None):
        session = self.board.session(line_id, channel)
        if session is not None:
            self.ctx.journal.add_event(session.id, "command_failed", command=command, error=error)
            if command in ("answer", "dial"):
                session.ended_on_line(f"{command} failed", outcome="failed")

    def _on_hangup_detected(self, line_id, reason):
        """An analog line inferred the far end hung up (busy tone, silence...): the timeline says why."""
        session = self.board.session(line_id)
        if session is not None:
            self.ctx.journal.add_event(session.id, "hangup_detected", reason=reason)

    # --- the line itself --------------------------------------------------------------

    def _on_registration(self, line_id, state, code=None, reason=None):
        """A SIP line's registration changed: refused puts the line down with the provider's answer."""
        if state == "registered":
            self.board.line_state(line_id, {"state": "up", "error": None, "registration": "registered"})
            return
        text = f"{state}: {code} {reason or ''}".strip()
        if self.board.lines.get(line_id, {}).get("registration") != text:  # each retry says it again: once
            self.ctx.journal.add_line_event(line_id, f"registration_{state}", code=code, reason=reason or "")
        self.board.line_state(line_id, {"state": "down", "error": f"registration {text}", "registration": text})

    def _on_down(self, line_id, reason):
        for session in self.board.sessions_on(line_id):
            session.ended_on_line("line down", outcome="failed")

    def _on_power_cycled(self, line_id, attempt):
        self.ctx.journal.add_line_event(line_id, "power_cycled", attempt=attempt)
        self.ctx.publish({"type": "line.power_cycled", "line": line_id})

    def _on_audio_dead(self, line_id, reason):
        """A modem's audio port gave nothing after answering (the SIM7600 PCM fault): the runner resets it."""
        session = self.board.session(line_id)
        if session is not None:
            self.ctx.journal.add_event(session.id, "audio_dead", reason=reason)
        self.ctx.journal.add_line_event(line_id, "modem_reset", reason=reason)
        self.ctx.publish({"type": "line.modem_reset", "line": line_id, "reason": reason})

    def _on_sms(self, line_id, sender, text, sent_at=None):
        self.ctx.journal.add_sms(line_id, "in", sender, text, "received")
        self.ctx.publish({"type": "sms.received", "line": line_id, "from": sender, "text": text})
        if self.ctx.config["settings"]["operator_sms_commands"]:
            self.sms.handle(line_id, sender, text)


class MissedCall:
    """What ``missed_caller`` needs of a caller the box never answered (call waiting)."""

    def __init__(self, call_id, line_id, caller):
        self.id, self.line_id, self.caller = call_id, line_id, caller
