"""The IVR interpreter: walks a caller through a flow's nodes.

A ``FlowRun`` belongs to one call and holds its own typed copy of the flow's nodes
(flows.py: defaults filled in by the models), so a flow changed in the configuration
applies to new calls while calls in progress finish on the flow they started with.
It runs on the engine's loop thread; a timer it set is ignored when
the caller has moved on since (each wait has a token).
"""
import datetime
import logging

from . import schedule
from .flows import typed_nodes
from .handlers import CallHandler
from .prompts import beep_path

log = logging.getLogger(__name__)

MAX_STEPS = 200  # a guard beyond validation: no call walks more nodes than this
# After the last prompt, before hanging up, so that its last word reaches the caller: a
# modem's serial audio and the GSM network hold a few hundred ms in flight; a SIP line
# about 60 ms (a frame queued, pjmedia's own frame, the far end's jitter buffer).
GOODBYE_PAUSE = 0.5
SIP_GOODBYE_PAUSE = 0.2


class FlowRun(CallHandler):
    """One caller's way through one flow."""

    def __init__(self, ctx, session, flow, campaign=None):
        self.ctx = ctx
        self.session = session
        self.flow_id, self.start = flow["id"], flow["start"]
        self.nodes = typed_nodes(flow)
        self.campaign = campaign
        self.node_id = None
        self.node = None
        self.steps = 0
        self.buffer = ""  # keys pressed while a prompt played: type-ahead for the next menu
        self.tries = 0
        self.collected = ""
        self.entry = None  # the queue entry while the caller waits
        self._token = 0
        self._waiting_for = None  # what on_prompt_done should do next
        self._voicemail = None

    # --- events from the call ----------------------------------------------------------

    def on_connected(self):
        """The call is answered: start at the flow's first node."""
        self.ctx.journal.set_call(self.session.id, flow=self.flow_id, language=self.session.language,
                                     campaign=self.campaign)
        self.goto(self.start)

    def on_dtmf(self, digit):
        """A key from the caller, for the node in progress."""
        handler = getattr(self, f"_key_{self.node.type}", None) if self.node else None
        if handler is None:
            self.buffer += digit
        else:
            handler(digit)

    def on_prompt_done(self):
        """A prompt ended: do what the node wanted next."""
        action, self._waiting_for = self._waiting_for, None
        if action is not None:
            action()

    def on_ended(self):
        """The caller hung up: leave the queue, keep a message they were leaving."""
        if self.entry is not None:
            self.ctx.queues.caller_left(self.entry)
        if self._voicemail is not None:
            self.voicemail_done()
        if self.session.outcome is None and self.node is not None:
            # Hung up in the menus, before asking for anyone. A caller gone before the flow
            # began (still ringing) keeps no outcome: the session calls that missed.
            self.session.outcome = "ivr"

    # --- walking the graph ------------------------------------------------------------

    def goto(self, node_id):
        """Enter ``node_id`` (None ends the call politely)."""
        if self.session.ended:
            return
        self.steps += 1
        if node_id is None or self.steps > MAX_STEPS:
            self._finish()
            return
        self._token += 1
        self.node_id, self.node = node_id, self.nodes[node_id]
        self.tries = 0
        self.session.step = f"{self.node.type} {node_id}"
        self.ctx.journal.add_event(self.session.id, "ivr", node=node_id, type=self.node.type)
        getattr(self, f"_enter_{self.node.type}")()
        self._type_ahead(node_id)

    def _type_ahead(self, node_id):
        """Keys pressed before this node asked for them (during a prompt) go to it now."""
        handler = getattr(self, f"_key_{self.node.type}", None)
        while handler is not None and self.buffer and self.node_id == node_id and not self.session.ended:
            digit, self.buffer = self.buffer[0], self.buffer[1:]
            handler(digit)

    def _after_prompt(self, prompt_id, action):
        """Play a prompt (if any), then run ``action``."""
        if not prompt_id:
            action()
            return
        self._waiting_for = action
        self.session.play_prompt(prompt_id)

    def _wait(self, seconds, action):
        """Run ``action`` after ``seconds`` unless the caller has moved on."""
        token = self._token

        def fire():
            if token == self._token and not self.session.ended:
                action()

        self.ctx.later(seconds, fire)

    def _goodbye_pause(self):
        return SIP_GOODBYE_PAUSE if self.ctx.is_sip(self.session.line_id) else GOODBYE_PAUSE

    def _finish(self):
        if self.session.outcome is None:
            self.session.outcome = "ivr"
        self.session.hang_up("end of the flow")

    # --- play, hang up -------------------------------------------------------------------

    def _enter_play(self):
        self._after_prompt(self.node.prompt, lambda: self.goto(self.node.next))

    def _enter_hangup(self):
        self._after_prompt(self.node.prompt, lambda: self._wait(self._goodbye_pause(), self._finish))

    # --- menu --------------------------------------------------------------------------------

    def _enter_menu(self):
        self._ask_menu()

    def _ask_menu(self):
        self._token += 1
        self._after_prompt(self.node.prompt, lambda: self._wait(self.node.timeout, self._menu_timeout))

    def _key_menu(self, digit):
        target = self.node.options.get(digit)
        self.session.media.stop_prompt()
        self._waiting_for = None
        if target is not None:
            self.ctx.journal.add_event(self.session.id, "menu_choice", node=self.node_id, key=digit)
            self.goto(target)
            return
        self.ctx.journal.add_event(self.session.id, "menu_invalid", node=self.node_id, key=digit)
        self._retry_menu(self.node.invalid_prompt or "invalid")

    def _menu_timeout(self):
        self.ctx.journal.add_event(self.session.id, "menu_timeout", node=self.node_id)
        self._retry_menu(None)

    def _retry_menu(self, prompt_id):
        self.tries += 1
        if self.tries > self.node.retries:
            self.goto(self.node.default)
            return
        self._token += 1
        self._after_prompt(prompt_id, self._ask_menu)

    # --- collecting digits -----------------------------------------------------------------

    def _enter_collect(self):
        self.collected = ""
        self._after_prompt(self.node.prompt, self._collect_wait)

    def _collect_wait(self):
        self._token += 1
        self._wait(self.node.timeout, self._collect_timeout)

    def _key_collect(self, digit):
        self.session.media.stop_prompt()
        self._waiting_for = None
        if digit == self.node.terminator:
            self._collect_done()
            return
        self.collected += digit
        if len(self.collected) >= self.node.max:
            self._collect_done()
        else:
            self._collect_wait()

    def _collect_timeout(self):
        if self.collected and len(self.collected) >= self.node.min:
            self._collect_done()
        else:
            self.goto(self.node.timeout_next)

    def _collect_done(self):
        if len(self.collected) < self.node.min:
            self.tries += 1
            self.collected = ""
            if self.tries > 2:
                self.goto(self.node.timeout_next)
            else:
                self._after_prompt("invalid", lambda: self._after_prompt(self.node.prompt, self._collect_wait))
            return
        self.ctx.journal.set_collected(self.session.id, self.node.field, self.collected)
        self.goto(self.node.next)

    # --- language ------------------------------------------------------------------------------

    def _enter_language(self):
        self._after_prompt(self.node.prompt,
                           lambda: self._wait(self.node.timeout, lambda: self.goto(self.node.next)))

    def _key_language(self, digit):
        language = self.node.options.get(digit)
        if language is None:
            return
        self.session.media.stop_prompt()
        self._waiting_for = None
        self.session.language = language
        self.ctx.journal.set_call(self.session.id, language=language)
        self.ctx.journal.add_event(self.session.id, "language", language=language)
        self.goto(self.node.next)

    # --- time condition ---------------------------------------------------------------------

    def _enter_time(self):
        condition = self.ctx.time_condition(self.node.condition)
        now = datetime.datetime.now(datetime.timezone.utc)
        trusted = self.ctx.clock_trusted()
        # On a clock not yet set (a Pi without network or NITZ), callers are let in rather than
        # told the line is closed by a date in 1970; the manual closed switch still works.
        is_open = schedule.is_open(condition, now, self.ctx.timezone) if trusted else not condition["closed"]
        self.ctx.journal.add_event(self.session.id, "time_condition", condition=self.node.condition,
                                      open=is_open, clock_trusted=trusted)
        if not is_open:
            self.session.outcome = "closed"
        self.goto(self.node.open if is_open else self.node.closed)

    # --- queue ---------------------------------------------------------------------------------

    def _enter_queue(self):
        self.session.outcome = None
        self.entry = self.ctx.queues.join(self.session, self.node.queue, self._left_queue)

    def _key_queue(self, digit):
        if self.entry is not None:
            self.ctx.queues.caller_key(self.entry, digit)

    def _left_queue(self, reason):
        """The caller left the queue unanswered: overflow, full, or they asked for a call-back."""
        self.entry = None
        if reason == "abandoned":
            self.session.outcome = "abandoned"
            self.ctx.missed_caller(self.session, "abandoned")
            return
        if reason == "callback":
            self.session.outcome = "call-back"
            self.session.media.hold = None
            self._after_prompt("callback_confirm", lambda: self._wait(self._goodbye_pause(), self._finish))
            return
        self.session.media.hold = None
        self.ctx.missed_caller(self.session, reason)  # nobody took them: they get a call back
        if self.node.overflow:
            self.goto(self.node.overflow)
            return
        self.session.outcome = "call-back"
        self._after_prompt("callback_confirm", lambda: self._wait(self._goodbye_pause(), self._finish))

    # --- voicemail -------------------------------------------------------------------------

    def _enter_voicemail(self):
        self._after_prompt(self.node.prompt or "voicemail", self._beep)

    def _beep(self):
        self._waiting_for = self._record_message
        self.session.play_file(beep_path(self.ctx.data_dir), "beep")

    def _record_message(self):
        self._voicemail = self.session.start_voicemail(self.node.max_seconds)
        self._wait(self.node.max_seconds, self._message_over)

    def _key_voicemail(self, digit):
        if digit == "#" and self._voicemail is not None:
            self._message_over()

    def _message_over(self):
        self.voicemail_done()
        self.goto(self.node.next)

    def voicemail_done(self):
        """Keep the message: journal, notification with the recording attached."""
        if self._voicemail is None:
            return
        self._voicemail = None
        finished = self.session.stop_voicemail()
        if finished is None:
            return
        path, seconds = finished
        self.session.outcome = "voicemail"
        self.ctx.voicemail_left(self.session, path, seconds)

    # --- call-back, forward, SMS ---------------------------------------------------------------

    def _enter_callback(self):
        self.ctx.missed_caller(self.session, "closed" if self.session.outcome == "closed" else "requested")
        self.session.outcome = "call-back"
        self._after_prompt(self.node.prompt or "callback_confirm", lambda: self.goto(self.node.next))

    def _enter_forward(self):
        self.ctx.forward(self.session, self.node.number, self.node.timeout,
                         on_failed=lambda: self.goto(self.node.next))

    def _enter_sms(self):
        self.ctx.send_info_sms(self.session, self.node.text)
        self._after_prompt(self.node.prompt, lambda: self.goto(self.node.next))
