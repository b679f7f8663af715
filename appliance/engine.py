"""The engine: owns the lines and the calls; one loop thread makes every decision.

Line threads, the media clock and control requests hand work to the loop with
``post``; the loop never waits on a modem or on the web UI.
"""
import copy
import datetime
import heapq
import itertools
import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from firmware import sip
from firmware.errors import FirmwareError

from . import journal as journal_module
from . import backup, notify, recordings, schedule
from .appliance_services import ApplianceServices  # watchdog, health, clock, front panel (appliance issue)
from .calls import CallSession
from .config import LIST_SECTIONS, NUMBER_PATTERN, SINGLE_SECTIONS, ConfigStore
from .config import validate as validate_config
from .config import warnings as config_warnings
from .control import EventHub, JsonLineServer
from .errors import ApplianceError, ConfigError, ControlError, PromptError, RecordingError
from .ivr import FlowRun
from .lines import LineRunner
from .media import MediaClock, gain_factor
from .operators import OperatorBoard, parse_sms_command
from .paths import ENGINE_SOCKET
from .prompts import PhraseCache, ensure_prompts
from .queues import ForwardLeg, QueueManager

log = logging.getLogger(__name__)

SOCKET_NAME = ENGINE_SOCKET
REQUEST_TIMEOUT = 5.0
TICK_SECONDS = 1.0
CALLBACK_SCAN_SECONDS = 10.0
RETENTION_SECONDS = 3600.0
CONFIG_SECTIONS = SINGLE_SECTIONS + LIST_SECTIONS
WAITING_REPEAT_SECONDS = 60.0  # +CCWA repeats while the second caller rings; one entry per caller


class Engine:
    """The call engine of one box, working in ``data_dir``."""

    def __init__(self, data_dir):
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.store = ConfigStore(self.data_dir)
        self.config = None
        self.journal = None
        self.clock = MediaClock()
        self.hub = EventHub()
        self.lines = {}  # line id -> state dict shown on the dashboard
        self._outages = set()  # lines that went down after having been up
        self._runners = {}
        self._calls = {}  # (line id, channel) -> CallSession; a GSM line has one channel, None
        self._queue = queue.Queue()
        self._timers = []
        self._sequence = itertools.count()
        self._stop = threading.Event()
        self._server = None
        self.started_at = time.time()
        self.operators = OperatorBoard([])
        self.queues = QueueManager(self)
        self.phrases = None
        self.dispatcher = None
        self._workers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="after-call")
        self._waiting_seen = {}
        self._caller_ids = {}  # line id -> caller ID an analog line reported before its call began
        self._last_callback_scan = 0.0
        self._last_retention = float("-inf")
        self._config_lock = threading.Lock()  # one configuration change at a time
        self.appliance = None  # ApplianceServices once started: watchdog, health, clock, front panel

    # --- life cycle -------------------------------------------------------------

    def start(self):
        """Load the configuration, prepare prompts, open the journal, lines and socket."""
        self.config = self.store.load()
        ensure_prompts(self.config, self.data_dir)
        backup.apply_pending_journal(self.data_dir)  # a journal restored while the engine ran
        self.journal = journal_module.Journal.open(os.path.join(self.data_dir, journal_module.JOURNAL_FILE))
        interrupted = self.journal.close_unfinished("the engine stopped during the call")
        if interrupted:
            log.warning("closed %d call(s) left open by the previous run", interrupted)
        self.operators.update(self.config["operators"])
        self.phrases = PhraseCache(self.data_dir)
        self._start_notifications()
        self.clock.start()
        self._start_lines(self.config["lines"])
        self.later(TICK_SECONDS, self._tick)
        self._prepare_announcements()
        self._server = JsonLineServer(os.path.join(self.data_dir, SOCKET_NAME), self.handle_request, self.hub)
        self._server.start()
        self.appliance = ApplianceServices(self)  # says READY=1 to systemd and starts the watchdog
        log.info("engine ready in %s", self.data_dir)

    def run(self):
        """Run the loop until ``stop()``."""
        while not self._stop.is_set():
            try:
                action, args = self._queue.get(timeout=self._until_next_timer())
            except queue.Empty:
                self._fire_timers()
                continue
            self._safely(action, *args)
            self._fire_timers()

    def stop(self):
        """Hang up, close lines, socket, clock and journal; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self.appliance is not None:
            self.appliance.close()
        if self._server is not None:
            self._server.close()
        for runner in self._runners.values():
            runner.stop()
        for session in list(self._calls.values()):
            session.ended_on_line("shutdown", outcome="interrupted")
        self.clock.stop()
        if self.phrases is not None:
            self.phrases.close()
        if self.dispatcher is not None:
            self.dispatcher.close()
        self._workers.shutdown(wait=True)
        if self.journal is not None:
            self.journal.close()

    # --- services for call sessions -------------------------------------------------

    def post(self, action, *args):
        """Run ``action(*args)`` on the loop thread (callable from any thread)."""
        self._queue.put((action, args))

    def later(self, seconds, action, *args):
        """Run ``action(*args)`` on the loop thread after ``seconds`` (loop thread only)."""
        heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._sequence), action, args))

    def publish(self, event):
        """Send an event to every subscriber of the control API."""
        self.hub.publish({"at": journal_module.now(), **event})

    def line_command(self, line_id, name, action, channel=None):
        """Queue ``action(leg)`` on the line's own thread: the driver, or its call ``channel`` (SIP)."""
        runner = self._runners.get(line_id)
        if runner is not None:
            runner.submit(name, action if channel is None else lambda driver: action(driver.leg(channel)),
                          channel=channel)

    def line_audio(self, line_id, channel=None):
        """The audio port of a line that is up (of one of its calls, on a SIP line)."""
        driver = self._runners[line_id].driver
        return (driver if channel is None else driver.leg(channel)).audio

    def line_channels(self, line_id):
        """How many calls ``line_id`` carries at once: a modem one, a SIP line its ``channels``
        (fewer when the SIP stack was built for fewer calls: the line's state says how many)."""
        line = self._line_config(line_id)
        if line.get("driver") != "sip":
            return 1
        state = self.lines.get(line_id, {})
        return min(line.get("channels", 4), state.get("stack_max_calls") or line.get("channels", 4))

    def is_sip(self, line_id):
        """Whether ``line_id`` is a SIP line (its calls are named by channel)."""
        return self._line_config(line_id).get("driver") == "sip"

    def sessions_on(self, line_id):
        """The calls in progress on ``line_id``."""
        return [session for (line, _), session in self._calls.items() if line == line_id]

    def greeting_for(self, line_id):
        """The id of the greeting prompt for calls on ``line_id`` (a line without a flow plays it)."""
        return self._line_config(line_id).get("greeting") or self.config["settings"].get("greeting")

    def software_gains(self, line_id):
        """(incoming, outgoing) factors for a line whose modem cannot set its own levels."""
        if not self.lines.get(line_id, {}).get("software_gain"):
            return (1.0, 1.0)
        line = next(line for line in self.config["lines"] if line["id"] == line_id)
        return (gain_factor(line.get("speaker_gain", 50)), gain_factor(line.get("microphone_gain", 50)))

    def forget_call(self, session):
        """A session is over; the line is free for the next call."""
        if self._calls.get(session.key) is session:
            del self._calls[session.key]
        self._set_line(session.line_id, {})
        if session.role == "caller" and session.outcome == "missed" and session.caller:
            self.missed_caller(session, "hung up while ringing")
        if session.recording:
            self._workers.submit(self._compress, session.id, session.recording)
        self.later(0.1, self.queues.dispatch)

    def claim_line(self, line_id, session):
        """A new call leg takes a channel of ``line_id``."""
        self._calls[session.key] = session
        self._set_line(line_id, {})

    def free_line(self, target=None):
        """A line that is up, may place calls to ``target`` (a number or a SIP URI) and has room; or None."""
        for line in self.config["lines"]:
            if self._free_channels(line) and _reaches(line, target):
                return line["id"]
        return None

    def free_line_count(self):
        """How many calls could be placed now, over every line."""
        return sum(self._free_channels(line) for line in self.config["lines"])

    def _free_channels(self, line):
        if not line.get("outbound", True) or self.lines.get(line["id"], {}).get("state") != "up":
            return 0
        return max(0, self.line_channels(line["id"]) - len(self.sessions_on(line["id"])))

    @property
    def timezone(self):
        """The box's time zone name."""
        return self.config["settings"]["timezone"]

    def clock_trusted(self):
        """Whether the system clock may be believed (synchronised, from NITZ, or past the build date)."""
        return self.appliance is None or self.appliance.clock_trusted()

    def time_condition(self, condition_id):
        """A time condition of the configuration by id."""
        return next(c for c in self.config["time_conditions"] if c["id"] == condition_id)

    # --- missed callers, voicemail, information by SMS, notifications ---------------------

    def missed_caller(self, session, reason):
        """One missed-call entry per caller: a call-back task, an SMS to them, a notification."""
        number = session.caller
        data = {"number": number, "call": session.id, "line": session.line_id, "reason": reason}
        if number:
            queue_id = self.journal.get_call(session.id).get("queue") or ""
            task_id, created = self.journal.open_callback(number, reason, line_id=session.line_id,
                                                          queue=queue_id, call_id=session.id)
            self.journal.add_event(session.id, "callback_task", task=task_id, new=created, reason=reason)
            data["task"] = task_id
            if not created:
                return  # the caller already has an entry: no second SMS, no second alert
            text = self.config["settings"].get("missed_sms")
            if text and _textable(number):
                self._outbox_sms(number, text, "call.missed.sms", line=session.line_id)
        self.notify("call.missed", data)

    def voicemail_left(self, session, path, seconds):
        """A caller left a message: journal it and send it to whoever is on duty."""
        self.journal.add_voicemail(session.id, session.caller, path, seconds)
        self.notify("voicemail", {"number": session.caller, "call": session.id, "seconds": seconds,
                                  "attachment": os.path.join(self.data_dir, path), "recording": path})

    def send_info_sms(self, session, text):
        """An IVR node sends the caller information by SMS (through the outbox: retried, kept)."""
        if not session.caller:
            self.journal.add_event(session.id, "sms_skipped", reason="the caller's number is withheld")
            return
        if not _textable(session.caller):
            self.journal.add_event(session.id, "sms_skipped", reason="the caller has no phone number (a SIP address)")
            return
        self._outbox_sms(session.caller, text, "ivr.sms", line=session.line_id)
        self.journal.add_event(session.id, "sms_queued", to=session.caller)

    def forward(self, session, number, timeout, on_failed):
        """Forward a caller to ``number`` over a free line, bridged and recorded through the box."""
        line_id = self.free_line(number)
        if line_id is None:
            self.journal.add_event(session.id, "forward_failed", reason="no free line")
            on_failed()
            return
        ForwardLeg(self, session, number, line_id, timeout, on_failed)

    def notify(self, event, data):
        """Queue notifications of ``event``: SMS and e-mail to those on duty, webhooks to integrations."""
        settings = self.config["notifications"]
        payload = dict(data, hotline=self.config["settings"]["box_name"], at=journal_module.now())
        if event in settings["events"]:
            for number in settings["sms_to"]:
                self._outbox_sms(number, notify.render(event, payload)["body"], event)
            if "email" in settings:
                for address in settings["email_to"]:
                    self.dispatcher.outbox.enqueue("email", address, event, payload)
        for url in settings["webhooks"]:
            self.dispatcher.outbox.enqueue("webhook", url, event, payload)
        self.dispatcher.wake()

    def _outbox_sms(self, number, text, event, line=None):
        self.dispatcher.outbox.enqueue("sms", number, event, {"text": text, "sms_line": line})
        self.dispatcher.wake()

    def _start_notifications(self):
        settings = self.config["notifications"]
        senders = {"sms": notify.SmsSender(self._send_sms_now)}
        if "email" in settings:
            senders["email"] = notify.EmailSender(settings["email"], base_dir=self.data_dir)
        if settings.get("webhook_secret"):
            senders["webhook"] = notify.WebhookSender(settings["webhook_secret"])
        path = os.path.join(self.data_dir, journal_module.JOURNAL_FILE)
        self.dispatcher = notify.Dispatcher(path, senders).start()

    def _send_sms_now(self, line_id, number, text):
        """Send an SMS through ``line_id`` or any line that is up (called on the outbox thread)."""
        # Lines that cannot text (an analog line) are skipped, or the message would retry for ever.
        can_text = [i for i in self._runners if self.lines.get(i, {}).get("sms", True)]
        candidates = [line_id] if line_id in can_text else []
        candidates += [i for i in can_text if i != line_id and self.lines.get(i, {}).get("state") == "up"]
        if not candidates:
            raise ControlError("no line is up to send an SMS")
        runner = self._runners[candidates[0]]
        runner.call("sms", lambda driver: driver.send_sms(number, text))
        self.post(self.journal.add_sms, runner.id, "out", number, text, "sent")

    def _prepare_announcements(self):
        """Speak the first queue positions ahead of need, so the first announcement is not skipped."""
        from .prompts import languages_in_use, position_text

        keys = {q.get("callback_key") for q in self.config["queues"]}
        for language in languages_in_use(self.config):
            for position in range(1, 6):
                for key in keys:
                    self.phrases.prepare(language, position_text(language, position, None, key))

    # --- periodic work ------------------------------------------------------------------

    def _tick(self):
        self.later(TICK_SECONDS, self._tick)
        self.appliance.tick()  # watchdog liveness, health, clock, panel: never raises
        self.queues.dispatch()
        now = time.monotonic()
        if now - self._last_callback_scan >= CALLBACK_SCAN_SECONDS:
            self._last_callback_scan = now
            self._queue_due_callbacks()
        if now - self._last_retention >= RETENTION_SECONDS:
            self._last_retention = now
            self._workers.submit(self._retention)

    def _queue_due_callbacks(self):
        """Open call-back tasks that are due go into their queue, inside call-back hours."""
        if not self.clock_trusted():
            return  # no call-backs by a clock that may say 1970: they could go out at night
        settings = self.config["settings"]
        now = datetime.datetime.now(datetime.timezone.utc)
        hours = settings.get("callback_hours")
        if hours and not schedule.is_open(self.time_condition(hours), now, self.timezone):
            return
        queues = {q["id"]: q for q in self.config["queues"]}
        if not queues:
            return
        for task in self.journal.open_callbacks():
            if task["next_attempt_at"] and task["next_attempt_at"] > journal_module.now():
                continue
            self.queues.add_task(task, task["queue"] if task["queue"] in queues else next(iter(queues)))

    def _compress(self, call_id, recording):
        """After the call: store the recording compressed (on the worker thread)."""
        fmt = self.config["settings"]["recording_format"]
        try:
            path = recordings.compress(os.path.join(self.data_dir, recording), fmt)
        except RecordingError as err:
            log.error("call %s: recording kept as WAV: %s", call_id, err)
            return
        self.post(self.journal.set_call, call_id, recording=os.path.relpath(path, self.data_dir))

    def _retention(self):
        settings = self.config["settings"]
        pinned = self._in_loop(self.journal.pinned_recordings)
        deleted = recordings.enforce_retention(self.data_dir, max_age_days=settings["retention_days"] or None,
                                               min_free_mb=settings["min_free_mb"] or None, pinned=pinned)
        if deleted:
            log.warning("retention deleted %d recording(s)", len(deleted))
            self.post(self.journal.recordings_deleted, deleted)

    # --- events from lines ------------------------------------------------------

    def _line_event(self, line_id, event):
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is None:
            log.debug("line %s: unhandled event %s", line_id, event)
            return
        handler(line_id, **event.data)

    def _on_incoming(self, line_id, number, channel=None, name=None, uri=None):
        if (line_id, channel) in self._calls:
            return
        if len(self.sessions_on(line_id)) >= self.line_channels(line_id):
            if channel is not None:  # the SIP line let it ring, but the engine has no room left
                self.line_command(line_id, "hangup", lambda leg: leg.hangup(), channel=channel)
                self._on_waiting(line_id, number, uri)
            return
        caller = _sip_caller(number, uri)
        session = CallSession(self, line_id, caller=caller, channel=channel)
        if uri:
            self.journal.add_event(session.id, "sip_from", uri=uri, name=name or "")
        if line_id in self._caller_ids:
            self.journal.add_event(session.id, "caller_id", **self._caller_ids.pop(line_id))
        refused = self._screen(line_id, number)
        if refused:
            session.reject(refused, "blocked")
            return
        flow, campaign = self._flow_for(line_id)
        if flow is not None:
            session.handler = FlowRun(self, session, flow, campaign)
        session.answer()
        self.notify("call.started", {"number": number, "call": session.id, "line": line_id})

    def _screen(self, line_id, number):
        """Why a caller is refused (blacklist, withheld number, a line not for calls in), or None."""
        if not self._line_config(line_id).get("inbound", True):
            return "this line does not take calls"
        if not number and self.config["settings"]["anonymous"] == "block":
            return "the caller's number is withheld"
        for entry in self.config["blacklist"]:
            pattern = entry["number"]
            if number and (number == pattern or pattern.endswith("*") and number.startswith(pattern[:-1])):
                return f"blacklisted ({pattern})"
        return None

    def _flow_for(self, line_id):
        """(flow, campaign id) for a new call on ``line_id``: the campaign's flow while one is on."""
        now = datetime.datetime.now(datetime.timezone.utc)
        campaign = schedule.active_campaign(self.config["campaigns"], line_id, now, self.timezone)
        flow_id = (campaign or {}).get("flow") or self._line_config(line_id).get("flow")
        flow = next((f for f in self.config["flows"] if f["id"] == flow_id), None)
        return flow, (campaign or {}).get("id")

    def _line_config(self, line_id):
        return next((line for line in self.config["lines"] if line["id"] == line_id), {})

    def _on_waiting(self, line_id, number, uri=None):
        """A caller while the line has no room (+CCWA; 486 on SIP): journal them as missed, call back."""
        number = _sip_caller(number, uri)
        now = time.monotonic()
        if now - self._waiting_seen.get((line_id, number), float("-inf")) < WAITING_REPEAT_SECONDS:
            return
        self._waiting_seen[(line_id, number)] = now
        call_id = self.journal.start_call(line_id, "in", caller=number)
        self.journal.add_event(call_id, "call_waiting", reason="the line was busy with another call")
        self.journal.end_call(call_id, "missed", "box")
        self.publish({"type": "call.waiting", "line": line_id, "caller": number, "call": call_id})
        stub = _MissedCall(call_id, line_id, number)
        self.missed_caller(stub, "all lines busy")

    def _on_connected(self, line_id, channel=None):
        session = self._calls.get((line_id, channel))
        if session is not None:
            session.connected()
            self._set_line(line_id, {})

    def _on_dtmf(self, line_id, digit, channel=None, method=None):
        session = self._calls.get((line_id, channel))
        if session is not None:
            session.dtmf(digit)

    def _on_ended(self, line_id, cause, seconds=0.0, channel=None, code=None, reason=None):
        session = self._calls.get((line_id, channel))
        if session is None:
            return
        if code is not None and code >= 300:  # a SIP leg refused: the status says why (486 Busy Here...)
            self.journal.add_event(session.id, "sip_status", code=code, reason=reason or "")
            if code >= 400 and code != 487 and session.direction == "out":  # 487: we cancelled it
                self._provider_refused(line_id, session, code, reason)
        session.ended_on_line(cause)

    def _provider_refused(self, line_id, session, code, reason):
        """A SIP provider or peer refused a call (486, 503...): the line says so and the journal keeps it."""
        text = f"{code} {reason or ''}".strip()
        self.journal.add_line_event(line_id, "call_refused", call=session.id, code=code, reason=reason or "")
        self._set_line(line_id, {"last_refusal": text})

    def _on_missed(self, line_id, cause="remote", seconds=0.0, channel=None):
        self._on_ended(line_id, cause, channel=channel)

    def _on_registration(self, line_id, state, code=None, reason=None):
        """A SIP line's registration changed: refused puts the line down with the provider's answer."""
        if state == "registered":
            self._line_state(line_id, {"state": "up", "error": None, "registration": "registered"})
            return
        text = f"{state}: {code} {reason or ''}".strip()
        if self.lines.get(line_id, {}).get("registration") != text:  # each retry says it again: journal it once
            self.journal.add_line_event(line_id, f"registration_{state}", code=code, reason=reason or "")
        self._line_state(line_id, {"state": "down", "error": f"registration {text}", "registration": text})

    def _on_down(self, line_id, reason):
        for session in self.sessions_on(line_id):
            session.ended_on_line("line down", outcome="failed")

    def _on_command_failed(self, line_id, command, error, channel=None):
        session = self._calls.get((line_id, channel))
        if session is not None:
            self.journal.add_event(session.id, "command_failed", command=command, error=error)
            if command in ("answer", "dial"):
                session.ended_on_line(f"{command} failed", outcome="failed")

    def _on_sms(self, line_id, sender, text, sent_at=None):
        self.journal.add_sms(line_id, "in", sender, text, "received")
        self.publish({"type": "sms.received", "line": line_id, "from": sender, "text": text})
        if self.config["settings"]["operator_sms_commands"]:
            self._operator_command(line_id, sender, text)

    def _operator_command(self, line_id, sender, text):
        """PAUSE / READY / STATUS by SMS, obeyed only from the operator's own number."""
        command = parse_sms_command(text)
        operator = self.operators.by_number(sender)
        if command is None or operator is None:
            return
        if command != "STATUS":
            self.operators.set_paused(operator.id, command == "PAUSE")
        state = operator.state(time.monotonic(), self.timezone)
        self.journal.add_line_event(line_id, "operator_sms", operator=operator.id, command=command, state=state)
        self.publish({"type": "operator.state", "operator": operator.id, "state": state, "by": "sms"})
        waiting = len(self.queues.entries)
        self._outbox_sms(sender, f"{operator.config['name']}: {state}. Waiting callers: {waiting}.",
                         "operator.sms", line=line_id)
        self.queues.dispatch()

    def _on_alerting(self, line_id, channel=None):
        session = self._calls.get((line_id, channel))
        if session is not None:
            session.alerting()

    def _on_caller_id(self, line_id, **details):
        """Caller ID as an analog line reports it between rings (number, name, reason, date)."""
        session = self._calls.get((line_id, None))
        if session is not None:
            self.journal.add_event(session.id, "caller_id", **details)
        else:
            self._caller_ids[line_id] = details  # it comes between the rings, before the call is ours

    def _on_hangup_detected(self, line_id, reason):
        """An analog line inferred the far end hung up (busy tone, silence...): the timeline says why."""
        session = self._calls.get((line_id, None))
        if session is not None:
            self.journal.add_event(session.id, "hangup_detected", reason=reason)

    def _on_power_cycled(self, line_id, attempt):
        self.journal.add_line_event(line_id, "power_cycled", attempt=attempt)
        self.publish({"type": "line.power_cycled", "line": line_id})

    def _line_state(self, line_id, state):
        state = self._registration_outranks(line_id, state)
        before = self.lines.get(line_id, {}).get("state")
        self._set_line(line_id, state)
        after = self.lines[line_id].get("state")
        # An outage and its end are part of the box's record, not just log lines; a line
        # that is still coming up at start (its modem not there yet) is not an outage.
        if before == "up" and after == "down":
            self._outages.add(line_id)
            self.journal.add_line_event(line_id, "down", error=self.lines[line_id].get("error"))
        elif after == "up" and line_id in self._outages:
            self._outages.discard(line_id)
            self.journal.add_line_event(line_id, "up")
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
        line = next((line for line in self.config["lines"] if line["id"] == line_id), {})
        threshold = line.get("low_balance")
        if balance is None or threshold is None or balance >= threshold:
            return
        self.journal.add_line_event(line_id, "low_balance", balance=balance, threshold=threshold)
        self.publish({"type": "line.low_balance", "line": line_id, "balance": balance, "threshold": threshold})

    def _set_line(self, line_id, changes):
        line = self.lines.setdefault(line_id, {"id": line_id})
        line.update(changes)
        sessions = self.sessions_on(line_id)
        if line.get("family") == "sip":
            line["channels_in_use"] = len(sessions)  # the driver's own count is only read at each poll
        line["call"] = sessions[0].id if sessions else None
        line["calls"] = [session.id for session in sessions]
        line["activity"] = _activity(line, sessions)
        self.publish({"type": "line.state", "line": dict(line)})
        if self.appliance is not None:
            self.appliance.line_state(line_id, line)

    # --- control API ------------------------------------------------------------

    def handle_request(self, request):
        """Answer a control request (called on a control thread; decisions go to the loop)."""
        cmd = request["cmd"]
        if cmd == "ping":
            return "pong"
        if cmd == "calls":
            return self._in_loop(self.journal.recent_calls, int(request.get("last", 20)))
        if cmd == "call":
            return self._in_loop(self.journal.get_call, int(request["id"]))
        if cmd == "status":
            return self._in_loop(self.status)
        if cmd == "hangup":
            return self._in_loop(self._hangup_request, int(request["call"]))
        if cmd == "reload":
            return self._in_loop(self.reload)
        if cmd in ("sms", "ussd", "balance"):
            return self._line_request(cmd, request)
        if cmd == "originate":
            return self._in_loop(self._originate, str(request["line"]), str(request["to"]),
                                 float(request.get("hold", 5.0)))
        if cmd == "line":
            return self._in_loop(self._line_details, str(request["line"]))
        if cmd == "operator":
            return self._in_loop(self._operator_request, str(request["operator"]), str(request["state"]))
        if cmd == "callbacks":
            return self._in_loop(self.journal.open_callbacks)
        if cmd == "config":
            return self._in_loop(self.config_document)
        if cmd == "config_put":
            if "document" in request:
                return self.put_config(document=request["document"])
            if request.get("section") not in CONFIG_SECTIONS:
                raise ControlError(f"section must be one of {', '.join(CONFIG_SECTIONS)}")
            return self.put_config(section=request["section"], value=request.get("value"))
        raise ControlError(f"unknown command {cmd!r}")

    def _operator_request(self, operator_id, state):
        if operator_id not in self.operators.operators:
            raise ControlError(f"no operator {operator_id!r}")
        if state not in ("ready", "paused"):
            raise ControlError("state must be ready or paused")
        self.operators.set_paused(operator_id, state == "paused")
        self.publish({"type": "operator.state", "operator": operator_id, "state": state, "by": "control"})
        self.queues.dispatch()
        return self.operators.operators[operator_id].snapshot(time.monotonic(), self.timezone)

    def status(self):
        """The box's live state: lines, calls, media clock, configuration problems."""
        return {
            "box": self.config["settings"]["box_name"],
            "uptime_seconds": round(time.time() - self.started_at),
            "lines": [dict(self.lines.get(line["id"], {"id": line["id"], "state": "starting"}),
                           name=line.get("name", line["id"]), driver=line["driver"])
                      for line in self.config["lines"] if line.get("enabled", True)],
            "calls": [session.snapshot() for session in self._calls.values()],
            "queue": self.queues.waiting(),
            "operators": self.operators.snapshot(self.timezone),
            "media": self.clock.stats(),
            "outbox_pending": self.dispatcher.outbox.pending_count() if self.dispatcher else 0,
            "sip": {"available": sip.AVAILABLE, "reason": sip.UNAVAILABLE_REASON},
            "config_problem": self.store.problem,
            "config_warnings": config_warnings(self.config),
            "health": self.appliance.snapshot() if self.appliance is not None else None,
        }

    def reload(self):
        """Re-read config.json; restart only the lines whose settings changed."""
        new = self.store.load()
        if self.store.problem:
            raise ControlError(self.store.problem)
        ensure_prompts(new, self.data_dir)
        old_lines = {line["id"]: line for line in self.config["lines"]}
        new_lines = {line["id"]: line for line in new["lines"] if line.get("enabled", True)}
        for line_id in old_lines:
            if old_lines[line_id] != new_lines.get(line_id) and not self.sessions_on(line_id):
                runner = self._runners.pop(line_id, None)
                if runner is not None:
                    runner.stop()
                self.lines.pop(line_id, None)
        notifications_changed = new["notifications"] != self.config["notifications"]
        self.config = new
        self.operators.update(new["operators"])
        if notifications_changed:
            self.dispatcher.close()
            self._start_notifications()
        self._start_lines([line for line in new["lines"] if line["id"] not in self._runners])
        return {"lines": sorted(new_lines)}

    def put_config(self, document=None, section=None, value=None):
        """Validate and apply a whole configuration, or one section of the one in force.

        Called on a control thread: prompts are spoken here (slow), the save and reload
        happen on the loop. A refused document changes nothing and comes back with the
        field named.
        """
        with self._config_lock:
            if document is None:
                document = self._in_loop(lambda: copy.deepcopy(self.config))
                document[section] = value
            try:
                document = validate_config(document)
                ensure_prompts(document, self.data_dir)
            except ConfigError as err:
                return {"saved": False, "field": err.field, "message": err.message}
            except PromptError as err:
                return {"saved": False, "field": "prompts", "message": str(err)}
            self._in_loop(self.store.save, document)
            self._in_loop(self.reload, timeout=60)  # lines being restarted are waited for
            return {"saved": True, "warnings": config_warnings(document)}

    def config_document(self):
        """The configuration in force, its warnings and why config.json is not it (if so)."""
        return {"config": copy.deepcopy(self.config), "warnings": config_warnings(self.config),
                "problem": self.store.problem}

    def _line_request(self, cmd, request):
        """SMS, USSD and balance run on the line's thread; this control thread waits for them."""
        runner = self._runners.get(str(request.get("line")))
        if runner is None:
            raise ControlError(f"no line {request.get('line')!r}")
        try:
            if cmd == "sms":
                to, text = str(request["to"]), str(request["text"])
                references = runner.call("sms", lambda driver: driver.send_sms(to, text))
                self.post(self.journal.add_sms, runner.id, "out", to, text, "sent")
                return {"parts": len(references)}
            if cmd == "ussd":
                code = str(request["code"])
                return {"reply": runner.call("ussd", lambda driver: driver.ussd(code))}
            state = runner.call("balance", runner.check_balance)
            self.post(self._line_state, runner.id, state)
            return state
        except (FirmwareError, TimeoutError, ValueError) as err:
            raise ControlError(f"line {runner.id}: {err}") from err

    def _originate(self, line_id, number, hold_seconds):
        """A test call out of ``line_id`` to ``number``: greeting, recording, journal."""
        if line_id not in self._runners:
            raise ControlError(f"no line {line_id!r}")
        if not self._free_channels(self._line_config(line_id)):
            raise ControlError(f"line {line_id} is not free ({self.lines.get(line_id, {}).get('activity')})")
        session = CallSession(self, line_id, callee=number, direction="out")
        session.dial(hold_seconds)
        return {"call": session.id}

    def _line_details(self, line_id):
        if line_id not in self._runners:
            raise ControlError(f"no line {line_id!r}")
        return {"line": dict(self.lines.get(line_id, {})), "events": self.journal.line_events(line_id, 20),
                "sms": self.journal.recent_sms(line_id, 20)}

    def _hangup_request(self, call_id):
        for session in self._calls.values():
            if session.id == call_id:
                session.hang_up("hung up from the control API")
                return {"call": call_id}
        raise ControlError(f"call {call_id} is not in progress")

    def _in_loop(self, function, *args, timeout=REQUEST_TIMEOUT):
        future = Future()

        def run():
            try:
                future.set_result(function(*args))
            except Exception as err:  # handed to the requester, not lost in the loop
                future.set_exception(err)

        self.post(run)
        return future.result(timeout=timeout)

    # --- internals --------------------------------------------------------------

    def _start_lines(self, lines):
        for line in lines:
            if not line.get("enabled", True) or line["id"] in self._runners:
                continue
            self.lines[line["id"]] = {"id": line["id"], "state": "starting", "activity": "starting"}
            runner = LineRunner(line, self.data_dir,
                                on_event=lambda line_id, event: self.post(self._line_event, line_id, event),
                                on_state=lambda line_id, state: self.post(self._line_state, line_id, state),
                                poll_seconds=self.config["settings"]["modem_poll_seconds"],
                                port_patterns=self.config["settings"]["modem_ports"])
            self._runners[line["id"]] = runner
            runner.start()

    def _until_next_timer(self):
        if not self._timers:
            return 0.5
        return min(0.5, max(0.0, self._timers[0][0] - time.monotonic()))

    def _fire_timers(self):
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, action, args = heapq.heappop(self._timers)
            self._safely(action, *args)

    def _safely(self, action, *args):
        try:
            action(*args)
        except ApplianceError as err:
            log.error("%s failed: %s", getattr(action, "__name__", action), err)
        except Exception:  # a bug in one call's handling must not stop the box
            log.exception("engine action %r failed", action)


def _sip_caller(number, uri):
    """Who a caller is: their number, or for a SIP caller without a phone number (a name, a
    PBX extension), their address, by which they are called back and never texted."""
    if not uri or (number and re.fullmatch(r"\+?[0-9]{7,15}", number)):
        return number
    return _plain_uri(uri)


def _textable(number):
    """Whether an SMS can go to ``number`` (a phone number, not a SIP address)."""
    return bool(number) and bool(NUMBER_PATTERN.match(number))


def _plain_uri(uri):
    """``"Alice" <sip:alice@host:5060;transport=udp>`` as sip:alice@host:5060."""
    found = re.search(r"sips?:[^>;\s]+", uri)
    return found.group() if found else uri


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


class _MissedCall:
    """What ``missed_caller`` needs of a caller the box never answered (call waiting)."""

    def __init__(self, call_id, line_id, caller):
        self.id, self.line_id, self.caller = call_id, line_id, caller
