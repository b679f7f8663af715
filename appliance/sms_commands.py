"""Operators' commands by SMS: PAUSE, READY and STATUS from the operator's own number."""
import time

from .operators import parse_sms_command


class OperatorSms:
    """Obeys an operator's SMS command and answers with their state and the callers waiting."""

    def __init__(self, ctx):
        self.ctx = ctx

    def handle(self, line_id, sender, text):
        """PAUSE / READY / STATUS by SMS, obeyed only from the operator's own number."""
        command = parse_sms_command(text)
        operator = self.ctx.operators.by_number(sender)
        if command is None or operator is None:
            return
        if command != "STATUS":
            self.ctx.operators.set_paused(operator.id, command == "PAUSE")
        # The operators' board keeps its own times by time.monotonic, not by the loop's clock.
        state = operator.state(time.monotonic(), self.ctx.timezone)
        self.ctx.journal.add_line_event(line_id, "operator_sms", operator=operator.id, command=command, state=state)
        self.ctx.publish({"type": "operator.state", "operator": operator.id, "state": state, "by": "sms"})
        waiting = len(self.ctx.queues.entries)
        self.ctx.notifier.outbox_sms(sender, f"{operator.config['name']}: {state}. Waiting callers: {waiting}.",
                                     "operator.sms", line=line_id)
        self.ctx.queues.dispatch()
