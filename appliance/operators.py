"""Operators: who is ready, paused, ringing, on a call or in wrap-up, and in which order to ring them.

The board is owned by the engine's loop thread. An operator outside their shift is
``offline``; a paused one is skipped until they send READY (from the web page or by SMS
from their own phone). After a call they stay in ``wrap-up`` for their wrap-up time.
"""
import datetime
import enum
import random
import time

from . import schedule


class OperatorState(enum.StrEnum):
    """An operator's state; the value is the text the dashboard, the events and the SMS show."""

    READY = "ready"
    PAUSED = "paused"
    RINGING = "ringing"
    ON_CALL = "on call"
    WRAP_UP = "wrap-up"
    OFFLINE = "offline"


READY, PAUSED, RINGING = OperatorState.READY, OperatorState.PAUSED, OperatorState.RINGING
ON_CALL, WRAP_UP, OFFLINE = OperatorState.ON_CALL, OperatorState.WRAP_UP, OperatorState.OFFLINE
SMS_COMMANDS = {"PAUSE": PAUSED, "READY": READY, "STATUS": None}


class Operator:
    """One operator's live state."""

    def __init__(self, config):
        self.config = config
        self.id = config["id"]
        self.paused = False
        self.busy = None  # RINGING or ON_CALL while a leg is theirs
        self.wrap_up_until = 0.0
        self.last_call_ended = 0.0
        self.calls_taken = 0

    def state(self, now, default_tz):
        """ready, paused, ringing, on call, wrap-up or offline, at monotonic time ``now``."""
        if self.busy:
            return self.busy
        if not self.config.get("enabled", True) or not self._on_shift(default_tz):
            return OFFLINE
        if self.paused:
            return PAUSED
        return WRAP_UP if now < self.wrap_up_until else READY

    def _on_shift(self, default_tz):
        shift = self.config.get("shift")
        return shift is None or schedule.is_open(shift, datetime.datetime.now(datetime.timezone.utc), default_tz)

    def snapshot(self, now, default_tz):
        """The operator as the dashboard shows them."""
        return {"id": self.id, "name": self.config["name"], "number": self.config["number"],
                "groups": self.config["groups"], "state": self.state(now, default_tz).value,
                "calls_taken": self.calls_taken}


class OperatorBoard:
    """Every operator's state, and the order a queue's strategy rings them in."""

    def __init__(self, configs, rng=None):
        self.operators = {}
        self._memory = {}  # queue id -> id of the operator its round robin rang last
        self._rng = rng or random.Random()
        self.update(configs)

    def update(self, configs):
        """Take a new operator list; live states of operators who stay are kept."""
        old = self.operators
        self.operators = {c["id"]: old[c["id"]] if c["id"] in old else Operator(c) for c in configs}
        for config in configs:
            self.operators[config["id"]].config = config

    def by_number(self, number):
        """The operator whose phone number is ``number``, or None (only that phone is obeyed)."""
        return next((op for op in self.operators.values() if _same_number(op.config["number"], number)), None)

    def candidates(self, groups, default_tz, exclude=()):
        """Ready operators in any of ``groups``, in configuration order."""
        now = time.monotonic()
        return [op for op in self.operators.values()
                if op.id not in exclude and set(op.config["groups"]) & set(groups)
                and op.state(now, default_tz) == READY]

    def order(self, queue_id, strategy, candidates):
        """``candidates`` in the order ``strategy`` rings them (every one for ring_all)."""
        return ORDERS[strategy](self, queue_id, list(candidates))

    def remember(self, queue_id, operator_id):
        """Round robin's memory: the operator this queue rang last."""
        self._memory[queue_id] = operator_id

    def staffed(self, groups, default_tz):
        """How many operators of ``groups`` are working now (not offline, not paused)."""
        now = time.monotonic()
        return sum(1 for op in self.operators.values() if set(op.config["groups"]) & set(groups)
                   and op.state(now, default_tz) not in (OFFLINE, PAUSED))

    def snapshot(self, default_tz):
        """Every operator as the dashboard shows them."""
        now = time.monotonic()
        return [op.snapshot(now, default_tz) for op in self.operators.values()]

    def ringing(self, operator_id):
        """An operator's phone is ringing for a caller."""
        self.operators[operator_id].busy = RINGING

    def released(self, operator_id, talked):
        """A leg to the operator ended; after a real conversation, wrap-up time starts."""
        operator = self.operators.get(operator_id)
        if operator is None:
            return
        operator.busy = None
        if talked:
            operator.calls_taken += 1
            operator.last_call_ended = time.monotonic()
            operator.wrap_up_until = operator.last_call_ended + operator.config.get("wrap_up_seconds", 0)

    def connected(self, operator_id):
        """The operator accepted a caller."""
        self.operators[operator_id].busy = ON_CALL

    def set_paused(self, operator_id, paused):
        """Pause or resume an operator."""
        self.operators[operator_id].paused = paused

    def next_wrap_up_end(self):
        """Seconds until the next operator leaves wrap-up, or None."""
        now = time.monotonic()
        ends = [op.wrap_up_until - now for op in self.operators.values() if op.wrap_up_until > now]
        return min(ends) if ends else None


def _ring_all(board, queue_id, candidates):
    return candidates


def _fixed_order(board, queue_id, candidates):
    return candidates


def _round_robin(board, queue_id, candidates):
    """Start after the operator rung last time, wrapping around."""
    ids = [op.id for op in board.operators.values()]
    last = board._memory.get(queue_id)
    start = ids.index(last) + 1 if last in ids else 0
    rank = {op_id: (i - start) % len(ids) for i, op_id in enumerate(ids)}
    return sorted(candidates, key=lambda op: rank[op.id])


def _longest_idle(board, queue_id, candidates):
    return sorted(candidates, key=lambda op: op.last_call_ended)


def _fewest_calls(board, queue_id, candidates):
    return sorted(candidates, key=lambda op: op.calls_taken)


def _random(board, queue_id, candidates):
    board._rng.shuffle(candidates)
    return candidates


ORDERS = {"ring_all": _ring_all, "fixed_order": _fixed_order, "round_robin": _round_robin,
          "longest_idle": _longest_idle, "fewest_calls": _fewest_calls, "random": _random}


def parse_sms_command(text):
    """PAUSE, READY or STATUS from an operator's SMS (any case, Cyrillic look-alikes too), or None."""
    word = (text or "").strip().split()[0].upper() if (text or "").strip() else ""
    word = word.translate(str.maketrans("РАЕУЅТОСНВМКХ", "PAEYSTOCHBMKX"))  # Cyrillic letters typed for Latin
    aliases = {"P": "PAUSE", "PAUZA": "PAUSE", "R": "READY", "GO": "READY", "S": "STATUS", "?": "STATUS"}
    word = aliases.get(word, word)
    return word if word in SMS_COMMANDS else None


def _same_number(a, b):
    """Compare numbers by their last 9 digits: +359888123456 and 0888123456 are one phone."""
    digits_a, digits_b = "".join(filter(str.isdigit, a or "")), "".join(filter(str.isdigit, b or ""))
    return bool(digits_a) and digits_a[-9:] == digits_b[-9:]
