"""The engine: owns the lines and the calls; one loop thread makes every decision.

Line threads, the media clock and control requests hand work to the loop with
``post``; the loop never waits on a modem or on the web UI. The engine only wires its
collaborators together and runs their life cycle: the ``Loop`` (loop.py), the
``CallContext`` that call handling sees (context.py), the ``LineBoard`` and the
``LineEvents`` (linestate.py, events.py), the ``Notifier`` (notifications.py), the
``Housekeeping`` tick (housekeeping.py), the ``Configurator`` (configurator.py) and the
control API's table of commands (control_handlers.py).
"""
import logging
import os
import time

from firmware import sip

from . import journal as journal_module
from . import backup, control_handlers
from .appliance_services import ApplianceServices  # watchdog, health, clock, front panel (appliance issue)
from .config import ConfigStore
from .configurator import Configurator
from .context import CallContext
from .control import EventHub, JsonLineServer
from .events import LineEvents
from .housekeeping import Housekeeping
from .lines import LineRunner
from .linestate import LineBoard
from .loop import REQUEST_TIMEOUT, Loop
from .media import MediaClock
from .notifications import Notifier
from .paths import ENGINE_SOCKET
from .prompts import PhraseCache, languages_in_use, position_text
from .queues import QueueManager

log = logging.getLogger(__name__)

SOCKET_NAME = ENGINE_SOCKET


class Engine:
    """The call engine of one box, working in ``data_dir``."""

    def __init__(self, data_dir, clock=time.monotonic, runner_factory=LineRunner):
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.store = ConfigStore(self.data_dir)
        self.loop = Loop(clock)
        self.clock = MediaClock()
        self.hub = EventHub()
        self.ctx = ctx = CallContext(self.data_dir, self.loop, self.hub, self.clock)
        ctx.board = self.board = LineBoard(ctx, runner_factory)
        ctx.notifier = self.notifier = Notifier(ctx, self.board.send_sms_now)
        ctx.housekeeping = self.housekeeping = Housekeeping(ctx, self._in_loop)
        ctx.queues = QueueManager(ctx)
        self.events = LineEvents(ctx)
        self.configurator = Configurator(ctx, self.store, self._in_loop, self._start_lines)
        self._server = None
        self.started_at = time.time()

    # --- life cycle -------------------------------------------------------------

    def start(self):
        """Load the configuration, prepare prompts, open the journal, lines and socket."""
        self.configurator.load()
        backup.apply_pending_journal(self.data_dir)  # a journal restored while the engine ran
        self.ctx.journal = journal_module.Journal.open(os.path.join(self.data_dir, journal_module.JOURNAL_FILE))
        interrupted = self.journal.close_unfinished("the engine stopped during the call")
        if interrupted:
            log.warning("closed %d call(s) left open by the previous run", len(interrupted))
        last_call_id = self.journal.last_call_id()  # later calls are this run's: their .part is live
        self.ctx.phrases = PhraseCache(self.data_dir)
        self.notifier.start()
        self.clock.start()
        self._start_lines(self.config["lines"])
        self.housekeeping.start()
        self.housekeeping.salvage_later(last_call_id, interrupted)
        self._prepare_announcements()
        self._server = JsonLineServer(os.path.join(self.data_dir, SOCKET_NAME), self.handle_request, self.hub)
        self._server.start()
        self.ctx.appliance = ApplianceServices(self)  # says READY=1 to systemd and starts the watchdog
        log.info("engine ready in %s", self.data_dir)

    def run(self):
        """Run the loop until ``stop()``."""
        self.loop.run()

    def stop(self):
        """Hang up, close lines, socket, clock and journal; safe to call twice."""
        if self.loop.stopped:
            return
        self.loop.stop()
        if self.appliance is not None:
            self.appliance.close()
        if self._server is not None:
            self._server.close()
        self.board.stop()
        for session in list(self.board.calls.values()):
            session.ended_on_line("shutdown", outcome="interrupted")
        self.clock.stop()
        if self.phrases is not None:
            self.phrases.close()
        self.notifier.close()
        self.housekeeping.shutdown()
        if self.journal is not None:
            self.journal.close()

    def _start_lines(self, lines):
        self.board.start_lines(lines, self.events.handle)

    def _prepare_announcements(self):
        """Speak the first queue positions ahead of need, so the first announcement is not skipped."""
        keys = {q.get("callback_key") for q in self.config["queues"]}
        for language in languages_in_use(self.config):
            for position in range(1, 6):
                for key in keys:
                    self.phrases.prepare(language, position_text(language, position, None, key))

    # --- what the stores, the appliance services and the tests read -----------------

    @property
    def config(self):
        """The configuration in force."""
        return self.ctx.config

    @property
    def journal(self):
        """The journal (None before ``start``)."""
        return self.ctx.journal

    @property
    def phrases(self):
        """The cache of spoken phrases (None before ``start``)."""
        return self.ctx.phrases

    @property
    def appliance(self):
        """The appliance services (watchdog, health, clock, panel) once started."""
        return self.ctx.appliance

    @property
    def operators(self):
        """The operators' board."""
        return self.ctx.operators

    @property
    def queues(self):
        """The queue manager."""
        return self.ctx.queues

    @property
    def lines(self):
        """Line id -> the line's state dict."""
        return self.board.lines

    @property
    def _runners(self):
        return self.board.runners  # the appliance services read the runners' threads

    @property
    def dispatcher(self):
        """The notification outbox's dispatcher (None before ``start``)."""
        return self.notifier.dispatcher

    @property
    def timezone(self):
        """The box's time zone name."""
        return self.ctx.timezone

    # --- services (for the appliance services) --------------------------------------------

    def post(self, action, *args):
        """Run ``action(*args)`` on the loop thread (callable from any thread)."""
        self.loop.post(action, *args)

    def later(self, seconds, action, *args):
        """Run ``action(*args)`` on the loop thread after ``seconds`` (loop thread only)."""
        return self.loop.later(seconds, action, *args)

    def publish(self, event):
        """Send an event to every subscriber of the control API."""
        self.ctx.publish(event)

    def line_command(self, line_id, name, action, channel=None):
        """Queue ``action(leg)`` on the line's own thread."""
        self.board.line_command(line_id, name, action, channel=channel)

    def notify(self, event, data):
        """Queue notifications of ``event``: SMS and e-mail to those on duty, webhooks."""
        self.notifier.notify(event, data)

    def clock_trusted(self):
        """Whether the system clock may be believed."""
        return self.ctx.clock_trusted()

    # --- control API ------------------------------------------------------------

    def handle_request(self, request):
        """Answer a control request (called on a control thread; decisions go to the loop)."""
        return control_handlers.handle(self, request)

    def in_loop(self, function, *args, timeout=REQUEST_TIMEOUT):
        """Run ``function(*args)`` on the loop and wait for its result (from another thread)."""
        return self.loop.call(function, *args, timeout=timeout)

    _in_loop = in_loop  # the name the tests and older callers use

    def status(self):
        """The box's live state: lines, calls, media clock, configuration problems."""
        return {
            "box": self.config["settings"]["box_name"],
            "uptime_seconds": round(time.time() - self.started_at),
            "lines": self.board.status(),
            "calls": [session.snapshot() for session in self.board.calls.values()],
            "queue": self.queues.waiting(),
            "operators": self.operators.snapshot(self.timezone),
            "media": self.clock.stats(),
            "outbox_pending": self.notifier.pending_count(),
            "sip": {"available": sip.AVAILABLE, "reason": sip.UNAVAILABLE_REASON},
            "config_problem": self.store.problem,
            "config_warnings": self.configurator.warnings(),
            "health": self.appliance.snapshot() if self.appliance is not None else None,
        }

    def reload(self):
        """Re-read config.json; restart only the lines whose settings changed."""
        return self.configurator.reload()

    def put_config(self, document=None, section=None, value=None):
        """Validate and apply a whole configuration, or one section of the one in force."""
        return self.configurator.put_config(document=document, section=section, value=value)

    def config_document(self):
        """The configuration in force, its warnings and why config.json is not it (if so)."""
        return self.configurator.config_document()
