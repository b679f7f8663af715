"""What a call's handling may use of the engine: the narrow ``CallContext``.

``CallSession``, ``FlowRun``, the ``QueueManager`` and its ring attempts, call-backs and
forwards get this object instead of the engine. It holds the stores in force (the
configuration, the journal, the phrase cache; the engine replaces them on start and
reload) and passes everything else on to the collaborator that owns it: the loop, the
line board, the notifier, the operators' board, the queues.
"""
from . import journal as journal_module
from .operators import OperatorBoard
from .queues import ForwardLeg


class CallContext:
    """The loop, the stores in force and the services a call leg, an IVR or a queue needs."""

    def __init__(self, data_dir, loop, hub, media_clock):
        self.data_dir = data_dir
        self.loop = loop
        self.clock = media_clock  # the 20 ms media clock that call media attach to
        self._hub = hub
        self.config = None  # the configuration in force (replaced, never edited, on reload)
        self.journal = None
        self.phrases = None
        self.appliance = None  # ApplianceServices once the engine serves
        self.operators = OperatorBoard([])
        self.board = None  # LineBoard
        self.notifier = None
        self.housekeeping = None
        self.queues = None

    # --- the loop ---------------------------------------------------------------------

    def post(self, action, *args):
        """Run ``action(*args)`` on the loop thread (callable from any thread)."""
        self.loop.post(action, *args)

    def later(self, seconds, action, *args):
        """Run ``action(*args)`` on the loop thread after ``seconds`` (loop thread only)."""
        return self.loop.later(seconds, action, *args)

    def now(self):
        """The loop's monotonic time in seconds."""
        return self.loop.clock()

    def publish(self, event):
        """Send an event to every subscriber of the control API."""
        self._hub.publish({"at": journal_module.now(), **event})

    # --- lines ------------------------------------------------------------------------

    @property
    def lines(self):
        """Line id -> the line's state dict (as the dashboard shows it)."""
        return self.board.lines

    def line_command(self, line_id, name, action, channel=None):
        """Queue ``action(leg)`` on the line's own thread."""
        self.board.line_command(line_id, name, action, channel=channel)

    def line_audio(self, line_id, channel=None):
        """The audio port of a line's call."""
        return self.board.line_audio(line_id, channel)

    def is_sip(self, line_id):
        """Whether ``line_id`` is a SIP line."""
        return self.board.is_sip(line_id)

    def software_gains(self, line_id):
        """(incoming, outgoing) gain factors of a line."""
        return self.board.software_gains(line_id)

    def greeting_for(self, line_id):
        """The greeting prompt id of calls on ``line_id``."""
        return self.board.greeting_for(line_id)

    def claim_line(self, line_id, session):
        """A new call leg takes a channel of ``line_id``."""
        self.board.claim_line(line_id, session)

    def free_line(self, target=None):
        """A line that could place a call to ``target`` now, or None."""
        return self.board.free_line(target)

    def free_line_count(self):
        """How many calls could be placed now, over every line."""
        return self.board.free_line_count()

    def forget_call(self, session):
        """A session is over; the line is free for the next call."""
        self.board.release(session)
        if session.role == "caller" and session.outcome == "missed" and session.caller:
            self.missed_caller(session, "hung up while ringing")
        if session.recording:
            self.housekeeping.compress_later(session.id, session.recording)
        self.later(0.1, self.queues.dispatch)

    def forward(self, session, number, timeout, on_failed):
        """Forward a caller to ``number`` over a free line, bridged and recorded through the box."""
        line_id = self.free_line(number)
        if line_id is None:
            self.journal.add_event(session.id, "forward_failed", reason="no free line")
            on_failed()
            return
        ForwardLeg(self, session, number, line_id, timeout, on_failed)

    # --- time -------------------------------------------------------------------------

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

    # --- notifications ----------------------------------------------------------------

    def notify(self, event, data):
        """Queue notifications of ``event`` (SMS, e-mail, webhooks)."""
        self.notifier.notify(event, data)

    def missed_caller(self, session, reason):
        """One missed-call entry per caller: a call-back task, an SMS to them, a notification."""
        self.notifier.missed_caller(session, reason)

    def voicemail_left(self, session, path, seconds):
        """A caller left a message: journal it and send it to whoever is on duty."""
        self.notifier.voicemail_left(session, path, seconds)

    def send_info_sms(self, session, text):
        """An IVR node sends the caller information by SMS."""
        self.notifier.send_info_sms(session, text)
