"""The lines as the engine sees them: their runners, their dashboard state, the calls on them.

Everything here runs on the engine's loop thread, except ``send_sms_now`` (the outbox
thread) and ``runner`` lookups made by control threads.
"""
import logging
import time

from .errors import ControlError
from .lines import LineRunner
from .media import gain_factor

log = logging.getLogger(__name__)


class LineBoard:
    """Line runners, the state dict of each line, and the calls in progress by (line, channel)."""

    def __init__(self, ctx, runner_factory=LineRunner):
        self.ctx = ctx
        self.lines = {}  # line id -> state dict shown on the dashboard
        self.runners = {}
        self.calls = {}  # (line id, channel) -> CallSession; a GSM line has one channel, None
        self._outages = set()  # lines that went down after having been up
        self._last_used = {}  # line id -> monotonic time its last call leg started or ended
        self._runner_factory = runner_factory

    # --- configuration of a line -----------------------------------------------------

    def line_config(self, line_id):
        """The configuration of ``line_id`` ({} for a line the configuration does not have)."""
        return next((line for line in self.ctx.config["lines"] if line["id"] == line_id), {})

    def is_sip(self, line_id):
        """Whether ``line_id`` is a SIP line (its calls are named by channel)."""
        return self.line_config(line_id).get("driver") == "sip"

    def line_channels(self, line_id):
        """How many calls ``line_id`` carries at once: a modem one, a SIP line its ``channels``
        (fewer when the SIP stack was built for fewer calls: the line's state says how many)."""
        line = self.line_config(line_id)
        if line.get("driver") != "sip":
            return 1
        state = self.lines.get(line_id, {})
        return min(line.get("channels", 4), state.get("stack_max_calls") or line.get("channels", 4))

    def greeting_for(self, line_id):
        """The id of the greeting prompt for calls on ``line_id`` (a line without a flow plays it)."""
        return self.line_config(line_id).get("greeting") or self.ctx.config["settings"].get("greeting")

    def software_gains(self, line_id):
        """(incoming, outgoing) factors for a line whose modem cannot set its own levels."""
        if not self.lines.get(line_id, {}).get("software_gain"):
            return (1.0, 1.0)
        line = next(line for line in self.ctx.config["lines"] if line["id"] == line_id)
        return (gain_factor(line.get("speaker_gain", 50)), gain_factor(line.get("microphone_gain", 50)))

    # --- calls on the lines ---------------------------------------------------------

    def session(self, line_id, channel=None):
        """The call on ``line_id`` (its ``channel`` on a SIP line), or None."""
        return self.calls.get((line_id, channel))

    def sessions_on(self, line_id):
        """The calls in progress on ``line_id``."""
        return [session for (line, _), session in self.calls.items() if line == line_id]

    def claim_line(self, line_id, session):
        """A new call leg takes a channel of ``line_id``."""
        self.calls[session.key] = session
        self._last_used[line_id] = time.monotonic()
        self.set_line(line_id, {})

    def release(self, session):
        """A call leg is over: its channel is free again."""
        if self.calls.get(session.key) is session:
            del self.calls[session.key]
        self._last_used[session.line_id] = time.monotonic()
        self.set_line(session.line_id, {})

    def free_line(self, target=None):
        """The line idle longest that is up, may place calls to ``target`` (a number or SIP URI) and has room.

        Idle longest, not first in the list: a line whose call just ended may be ringing
        with the next caller before the engine hears of it (a dial there fails "busy", and
        picking it again would fail again), and the SIMs' minutes wear evenly. None if none.
        """
        free = [line["id"] for line in self.ctx.config["lines"] if self.free_channels(line) and _reaches(line, target)]
        return min(free, key=lambda line_id: self._last_used.get(line_id, float("-inf")), default=None)

    def free_line_count(self):
        """How many calls could be placed now, over every line."""
        return sum(self.free_channels(line) for line in self.ctx.config["lines"])

    def free_channels(self, line):
        """How many more calls the line ``line`` (its configuration) could place now."""
        if not line.get("outbound", True) or self.lines.get(line["id"], {}).get("state") != "up":
            return 0
        return max(0, self.line_channels(line["id"]) - len(self.sessions_on(line["id"])))

    # --- the lines' threads ----------------------------------------------------------

    def line_command(self, line_id, name, action, channel=None):
        """Queue ``action(leg)`` on the line's own thread: the driver, or its call ``channel`` (SIP)."""
        runner = self.runners.get(line_id)
        if runner is not None:
            runner.submit(name, action if channel is None else lambda driver: action(driver.leg(channel)),
                          channel=channel)

    def line_audio(self, line_id, channel=None):
        """The audio port of a line that is up (of one of its calls, on a SIP line)."""
        driver = self.runners[line_id].driver
        return (driver if channel is None else driver.leg(channel)).audio

    def start_lines(self, lines, on_event):
        """Start a runner for each enabled line of ``lines`` that has none; events go to ``on_event``."""
        settings = self.ctx.config["settings"]
        for line in lines:
            if not line.get("enabled", True) or line["id"] in self.runners:
                continue
            self.lines[line["id"]] = {"id": line["id"], "state": "starting", "activity": "starting"}
            runner = self._runner_factory(
                line, self.ctx.data_dir,
                on_event=lambda line_id, event: self.ctx.post(on_event, line_id, event),
                on_state=lambda line_id, state: self.ctx.post(self.line_state, line_id, state),
                poll_seconds=settings["modem_poll_seconds"], port_patterns=settings["modem_ports"])
            self.runners[line["id"]] = runner
            runner.start()

    def stop_changed(self, old_lines, new_lines):
        """Stop the idle lines whose settings differ in ``new_lines`` (id -> config), to start afresh."""
        for line_id in old_lines:
            if old_lines[line_id] != new_lines.get(line_id) and not self.sessions_on(line_id):
                runner = self.runners.pop(line_id, None)
                if runner is not None:
                    runner.stop()
                self.lines.pop(line_id, None)

    def stop(self):
        """Stop every line's thread."""
        for runner in self.runners.values():
            runner.stop()

    def runner(self, line_id):
        """The runner of ``line_id``; ControlError if there is none."""
        runner = self.runners.get(str(line_id))
        if runner is None:
            raise ControlError(f"no line {line_id!r}")
        return runner

    def send_sms_now(self, line_id, number, text):
        """Send an SMS through ``line_id`` or any line that is up (called on the outbox thread)."""
        # Lines that cannot text (an analog line) are skipped, or the message would retry for ever.
        can_text = [i for i in self.runners if self.lines.get(i, {}).get("sms", True)]
        candidates = [line_id] if line_id in can_text else []
        candidates += [i for i in can_text if i != line_id and self.lines.get(i, {}).get("state") == "up"]
        if not candidates:
            raise ControlError("no line is up to send an SMS")
        runner = self.runners[candidates[0]]
        runner.call("sms", lambda driver: driver.send_sms(number, text))
        self.ctx.post(self.ctx.journal.add_sms, runner.id, "out", number, text, "sent")

    # --- state -----------------------------------------------------------------------

    def line_state(self, line_id, state):
        """A line's runner (or a registration, or a balance check) reports ``state``."""
        state = self._registration_outranks(line_id, state)
        before = self.lines.get(line_id, {}).get("state")
        self.set_line(line_id, state)
        after = self.lines[line_id].get("state")
        # An outage and its end are part of the box's record, not just log lines; a line
        # that is still coming up at start (its modem not there yet) is not an outage.
        if before == "up" and after == "down":
            self._outages.add(line_id)
            self.ctx.journal.add_line_event(line_id, "down", error=self.lines[line_id].get("error"))
        elif after == "up" and line_id in self._outages:
            self._outages.discard(line_id)
            self.ctx.journal.add_line_event(line_id, "up")
        if "balance" in state:
            self._check_low_balance(line_id, state["balance"])

    def _registration_outranks(self, line_id, state):
        """A SIP line's runner says "up" as it opens the line while the provider's answer may
        already be in, or come just after: that answer wins, whichever the loop hears first."""
        registration = str(state.get("registration") or "")
        known = self.lines.get(line_id, {}).get("registration")
        if registration == "registering" and known not in (None, "registering"):
            return {key: value for key, value in state.items() if key not in ("registration", "state", "error")}
        if state.get("state") == "up" and registration.startswith(("refused", "failed")):
            return dict(state, state="down", error=f"registration {registration}")
        return state

    def _check_low_balance(self, line_id, balance):
        threshold = self.line_config(line_id).get("low_balance")
        if balance is None or threshold is None or balance >= threshold:
            return
        self.ctx.journal.add_line_event(line_id, "low_balance", balance=balance, threshold=threshold)
        self.ctx.publish({"type": "line.low_balance", "line": line_id, "balance": balance, "threshold": threshold})

    def set_line(self, line_id, changes):
        """Change a line's state dict, recount its calls and tell the dashboard and the panel."""
        line = self.lines.setdefault(line_id, {"id": line_id})
        line.update(changes)
        sessions = self.sessions_on(line_id)
        if line.get("family") == "sip":
            line["channels_in_use"] = len(sessions)  # the driver's own count is only read at each poll
        line["call"] = sessions[0].id if sessions else None
        line["calls"] = [session.id for session in sessions]
        line["activity"] = _activity(line, sessions)
        self.ctx.publish({"type": "line.state", "line": dict(line)})
        if self.ctx.appliance is not None:
            self.ctx.appliance.line_state(line_id, line)

    def status(self):
        """The enabled lines as the status request shows them."""
        return [dict(self.lines.get(line["id"], {"id": line["id"], "state": "starting"}),
                     name=line.get("name", line["id"]), driver=line["driver"])
                for line in self.ctx.config["lines"] if line.get("enabled", True)]


def _reaches(line, target):
    """Whether ``line`` can place a call to ``target``: SIP URIs need a SIP line, numbers a modem or a
    SIP trunk (a line that registers to a provider; a line that only takes calls from peers dials URIs)."""
    sip = line.get("driver") == "sip"
    if target and str(target).startswith(("sip:", "sips:")):
        return sip
    return not sip or bool(line.get("registrar"))


def _activity(line, sessions):
    """What the dashboard says a line is doing."""
    if line.get("state") != "up":
        return line.get("state", "starting")
    if not sessions:
        return "idle"
    if len(sessions) > 1:
        return f"{len(sessions)} calls"
    session = sessions[0]
    if session.answered is not None:
        return "in call"
    return "ringing" if session.direction == "in" else "dialling"
