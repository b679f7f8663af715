"""Missed callers, voicemail, information by SMS and notifications, through the outbox.

The outbox (``notify.Dispatcher``) sends on its own thread and retries; everything here
only journals and enqueues, on the engine's loop thread.
"""
import os

from . import journal as journal_module
from . import notify
from .config import NUMBER_PATTERN


class Notifier:
    """Queues SMS, e-mail and webhooks for the engine's events; owns the outbox dispatcher."""

    def __init__(self, ctx, send_sms):
        self.ctx = ctx
        self._send_sms = send_sms  # (line id, number, text) on the outbox thread
        self.dispatcher = None

    def start(self):
        """Start the outbox with the senders the notification settings ask for."""
        settings = self.ctx.config["notifications"]
        senders = {"sms": notify.SmsSender(self._send_sms)}
        if "email" in settings:
            senders["email"] = notify.EmailSender(settings["email"], base_dir=self.ctx.data_dir)
        if settings.get("webhook_secret"):
            senders["webhook"] = notify.WebhookSender(settings["webhook_secret"])
        path = os.path.join(self.ctx.data_dir, journal_module.JOURNAL_FILE)
        self.dispatcher = notify.Dispatcher(path, senders).start()

    def close(self):
        """Stop the outbox's thread (what is not sent yet stays in the outbox)."""
        if self.dispatcher is not None:
            self.dispatcher.close()

    def restart(self):
        """New notification settings: a new outbox dispatcher with new senders."""
        self.close()
        self.start()

    def pending_count(self):
        """How many messages wait in the outbox."""
        return self.dispatcher.outbox.pending_count() if self.dispatcher else 0

    def missed_caller(self, session, reason):
        """One missed-call entry per caller: a call-back task, an SMS to them, a notification."""
        number = session.caller
        data = {"number": number, "call": session.id, "line": session.line_id, "reason": reason}
        if number:
            task_id, created = self._callback_task(session, reason)
            data["task"] = task_id
            if not created:
                return  # the caller already has an entry: no second SMS, no second alert
            text = self.ctx.config["settings"].get("missed_sms")
            if text and textable(number):
                self.outbox_sms(number, text, "call.missed.sms", line=session.line_id)
        self.notify("call.missed", data)

    def _callback_task(self, session, reason):
        journal = self.ctx.journal
        queue_id = journal.get_call(session.id).get("queue") or ""
        task_id, created = journal.open_callback(session.caller, reason, line_id=session.line_id,
                                                 queue=queue_id, call_id=session.id)
        journal.add_event(session.id, "callback_task", task=task_id, new=created, reason=reason)
        return task_id, created

    def voicemail_left(self, session, path, seconds):
        """A caller left a message: journal it and send it to whoever is on duty."""
        self.ctx.journal.add_voicemail(session.id, session.caller, path, seconds)
        self.notify("voicemail", {"number": session.caller, "call": session.id, "seconds": seconds,
                                  "attachment": os.path.join(self.ctx.data_dir, path), "recording": path})

    def send_info_sms(self, session, text):
        """An IVR node sends the caller information by SMS (through the outbox: retried, kept)."""
        journal = self.ctx.journal
        if not session.caller:
            journal.add_event(session.id, "sms_skipped", reason="the caller's number is withheld")
            return
        if not textable(session.caller):
            journal.add_event(session.id, "sms_skipped", reason="the caller has no phone number (a SIP address)")
            return
        self.outbox_sms(session.caller, text, "ivr.sms", line=session.line_id)
        journal.add_event(session.id, "sms_queued", to=session.caller)

    def notify(self, event, data):
        """Queue notifications of ``event``: SMS and e-mail to those on duty, webhooks to integrations."""
        settings = self.ctx.config["notifications"]
        payload = dict(data, hotline=self.ctx.config["settings"]["box_name"], at=journal_module.now())
        outbox = self.dispatcher.outbox
        if event in settings["events"]:
            for number in settings["sms_to"]:
                self._enqueue_sms(number, notify.render(event, payload)["body"], event)
            if "email" in settings:
                for address in settings["email_to"]:
                    outbox.enqueue("email", address, event, payload)
        for url in settings["webhooks"]:
            outbox.enqueue("webhook", url, event, payload)
        self.dispatcher.wake()

    def outbox_sms(self, number, text, event, line=None):
        """Queue one SMS to ``number`` (through ``line`` if it can) and wake the outbox."""
        self._enqueue_sms(number, text, event, line)
        self.dispatcher.wake()

    def _enqueue_sms(self, number, text, event, line=None):
        self.dispatcher.outbox.enqueue("sms", number, event, {"text": text, "sms_line": line})


def textable(number):
    """Whether an SMS can go to ``number`` (a phone number, not a SIP address)."""
    return bool(number) and bool(NUMBER_PATTERN.match(number))
