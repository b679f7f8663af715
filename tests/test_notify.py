"""Notifications: the outbox, real SMTP and HTTP peers on loopback, retries, restarts."""
import base64
import datetime
import email
import email.policy
import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import textwrap
import threading
import wave

import pytest

from appliance import journal, notify
from appliance.errors import ApplianceError, ConfigError, NotifyError
from appliance.notify import (Dispatcher, EmailSender, Outbox, SmsSender, WebhookSender, render,
                              verify_signature)

from .conftest import free_port, wait_for

SECRET = "s3cret-ключ"
T0 = datetime.datetime(2024, 7, 15, 9, 0, tzinfo=datetime.timezone.utc)


# --- peers ------------------------------------------------------------------------

class SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough ESMTP (with AUTH PLAIN) for smtplib to deliver a message."""

    def reply(self, *lines):
        for index, line in enumerate(lines):
            separator = " " if index == len(lines) - 1 else "-"
            self.wfile.write(f"{line[:3]}{separator}{line[4:]}\r\n".encode())

    def handle(self):
        self.reply("220 test ESMTP")
        sender, recipients = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = command[:4].upper()
            if verb == "EHLO":
                self.reply("250 localhost", "250 AUTH PLAIN", "250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 localhost")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(command.split()[2]).decode().split("\0")
                self.server.logins.append((user, password))
                self.reply("235 ok" if password == self.server.password else "535 no")
            elif verb == "MAIL":
                sender, recipients = command[10:], []
                self.reply("250 ok")
            elif verb == "RCPT":
                recipients.append(command[8:])
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                data = []
                for raw in iter(self.rfile.readline, b""):
                    if raw == b".\r\n":
                        break
                    data.append(raw[1:] if raw.startswith(b"..") else raw)
                self.server.messages.append((sender, recipients, b"".join(data)))
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 ok")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 what")


def serve_smtp(password):
    """Start a tiny SMTP server on loopback; ``.messages`` holds (from, to, bytes). Stop with stop_smtp."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SmtpHandler)
    server.daemon_threads = True
    server.messages, server.logins, server.password = [], [], password
    server.thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    server.thread.start()
    return server


def stop_smtp(server):
    """Stop a server made by serve_smtp."""
    server.shutdown()
    server.server_close()
    server.thread.join()


@pytest.fixture
def smtp_server():
    """A tiny SMTP server on loopback that wants the password hunter2."""
    server = serve_smtp("hunter2")
    yield server
    stop_smtp(server)


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        server.requests.append({"path": self.path, "headers": self.headers, "body": body})
        status = server.statuses.pop(0) if server.statuses else 200
        if server.hold:
            server.release.wait(30)
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.server.requests.append({"path": self.path, "headers": self.headers, "body": b""})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Receiver:
    """A webhook receiver on loopback answering with the scripted ``statuses``, then 200."""

    def __init__(self, port=0, statuses=(), hold=False):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), ReceiverHandler)
        self.server.daemon_threads = True
        self.server.requests, self.server.statuses = [], list(statuses)
        self.server.hold, self.server.release = hold, threading.Event()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def requests(self):
        return self.server.requests

    def close(self):
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def receivers():
    """Make receivers with ``receivers(...)``; all are closed after the test."""
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


class Clock:
    """A clock the test moves by hand, so back-off takes no real time."""

    def __init__(self, start=T0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def db_path(tmp_path):
    """Where the journal of this test lives."""
    return str(tmp_path / journal.JOURNAL_FILE)


@pytest.fixture
def outbox(db_path):
    """An outbox on its own connection (a reader beside any dispatcher)."""
    box = Outbox.open(db_path)
    yield box
    box.close()


def at(seconds):
    """T0 plus ``seconds``."""
    return T0 + datetime.timedelta(seconds=seconds)


def make_wav(path, seconds=0.2):
    """Write a short telephony WAV; return its bytes."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(b"\x01\x00" * int(8000 * seconds))
    return path.read_bytes()


# --- outbox -----------------------------------------------------------------------

def test_enqueue_is_committed_and_due_at_once(db_path, outbox):
    item_id = outbox.enqueue("sms", "+359888123456", "call.missed", {"number": "+359888000111"}, now=T0)
    other = Outbox.open(db_path)  # another connection sees it: it was committed
    try:
        item = other.get(item_id)
    finally:
        other.close()
    assert item["status"] == "pending" and item["attempts"] == 0
    assert item["payload"] == {"number": "+359888000111"}
    assert [row["id"] for row in outbox.due(T0)] == [item_id]
    assert outbox.due(at(-1)) == []
    assert outbox.pending_count() == 1
    assert outbox.recent(5)[0]["id"] == item_id


def test_enqueue_refuses_bad_input(outbox):
    with pytest.raises(ConfigError):
        outbox.enqueue("pigeon", "x", "call.missed", {})
    with pytest.raises(ConfigError):
        outbox.enqueue("sms", "  ", "call.missed", {})
    with pytest.raises(ConfigError):
        outbox.enqueue("sms", "+359888123456", "call.missed", {"when": object()})
    assert outbox.pending_count() == 0


def test_backoff_grows_and_ends_failed(outbox):
    failures = []

    def broken_modem(line, number, text):
        failures.append(number)
        raise TimeoutError("modem does not answer")

    item_id = outbox.enqueue("sms", "+359888123456", "call.missed", {}, now=T0)
    dispatcher = Dispatcher(outbox, {"sms": SmsSender(broken_modem)})
    now, gaps = T0, []
    for _ in range(notify.MAX_ATTEMPTS):
        assert dispatcher.run_once(now) == 1
        item = outbox.get(item_id)
        next_at = datetime.datetime.fromisoformat(item["next_attempt_at"])
        gaps.append((next_at - now).total_seconds())
        now = next_at
    item = outbox.get(item_id)
    assert item["status"] == "failed"
    assert item["attempts"] == notify.MAX_ATTEMPTS == len(failures)
    assert "modem does not answer" in item["last_error"]
    assert gaps[:6] == [10, 30, 120, 600, 1800, 3600]
    assert gaps == sorted(gaps)
    assert dispatcher.run_once(at(10 ** 7)) == 0  # failed for good: not tried again
    assert outbox.retry_now(item_id, now=now)  # ... unless someone asks
    assert outbox.get(item_id)["status"] == "pending"
    dispatcher.close()
    dispatcher.close()


def test_sms_retried_after_the_line_fails(outbox):
    sent, calls = [], []

    def send_sms(line, number, text):
        calls.append(number)
        if len(calls) == 1:
            raise OSError("line gsm1 is down")
        sent.append((line, number, text))

    sender = SmsSender(send_sms, language="bg")
    item_id = outbox.enqueue("sms", "+359888123456", "call.missed", {"number": "+359700000999", "at": T0.isoformat()},
                             now=T0)
    with Dispatcher(outbox, {"sms": sender}) as dispatcher:
        dispatcher.run_once(T0)
        item = outbox.get(item_id)
        assert (item["status"], item["attempts"]) == ("pending", 1)
        assert "line gsm1 is down" in item["last_error"]
        assert dispatcher.run_once(at(9)) == 0  # back-off: not yet
        assert dispatcher.run_once(at(10)) == 1
    item = outbox.get(item_id)
    assert (item["status"], item["attempts"]) == ("sent", 2)
    [(line, number, text)] = sent
    assert (line, number) == (None, "+359888123456")
    assert "Пропуснато обаждане" in text and "+359700000999" in text


def test_sms_sender_wraps_errors():
    def refuse(line, number, text):
        raise ValueError("bad number")

    with pytest.raises(NotifyError) as caught:
        SmsSender(refuse).send({"id": 1, "target": "123", "event": "voicemail", "payload": {"sms_line": "gsm2"}})
    assert isinstance(caught.value.__cause__, ValueError)
    assert isinstance(caught.value, ApplianceError)


# --- e-mail -----------------------------------------------------------------------

def email_settings(server, **extra):
    """SMTP settings pointing at the test server."""
    return {"host": "127.0.0.1", "port": server.server_address[1], "starttls": False,
            "from": "Гореща линия <box@example.org>", **extra}


def parse(raw):
    """A received message as an EmailMessage."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_cyrillic_email_with_voicemail_attached(smtp_server, outbox, tmp_path):
    wav = make_wav(tmp_path / "vm-17.wav")
    sender = EmailSender(email_settings(smtp_server, username="box", password="hunter2"))
    item_id = outbox.enqueue("email", "дежурен <duty@example.org>", "voicemail",
                             {"number": "+359888123456", "seconds": 12.4, "language": "bg",
                              "attachment": str(tmp_path / "vm-17.wav"), "at": T0.isoformat()}, now=T0)
    with Dispatcher(outbox, {"email": sender}) as dispatcher:
        assert dispatcher.run_once(T0) == 1
    assert outbox.get(item_id)["status"] == "sent"
    assert smtp_server.logins == [("box", "hunter2")]
    [(mail_from, recipients, raw)] = smtp_server.messages
    assert "box@example.org" in mail_from and "duty@example.org" in recipients[0]
    message = parse(raw)
    assert message["Subject"] == "Гласово съобщение от +359888123456"
    assert message["X-Hotline-Delivery"] == str(item_id)
    body = message.get_body(("plain",)).get_content()
    assert "Ново гласово съобщение от +359888123456" in body and "12 сек" in body
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_filename() == "vm-17.wav"
    assert attachment.get_payload(decode=True) == wav


def test_ogg_attachment_type_and_missing_file_noted(smtp_server, tmp_path):
    (tmp_path / "vm.ogg").write_bytes(b"OggS" + bytes(100))
    sender = EmailSender(email_settings(smtp_server), base_dir=str(tmp_path))
    sender.send({"id": 7, "target": "duty@example.org", "event": "voicemail",
                 "payload": {"number": "+359888123456", "attachment": "vm.ogg"}})
    sender.send({"id": 8, "target": "duty@example.org", "event": "voicemail",
                 "payload": {"number": "+359888123456", "attachment": "gone.wav"}})
    with_file, without = (parse(raw) for _, _, raw in smtp_server.messages)
    [ogg] = list(with_file.iter_attachments())
    assert ogg.get_content_type() == "audio/ogg" and ogg.get_filename() == "vm.ogg"
    assert list(without.iter_attachments()) == []
    assert "gone.wav is no longer on the box" in without.get_body(("plain",)).get_content()


def test_email_failures_are_notify_errors(smtp_server):
    wrong_password = EmailSender(email_settings(smtp_server, username="box", password="wrong"))
    item = {"id": 1, "target": "duty@example.org", "event": "call.missed", "payload": {}}
    with pytest.raises(NotifyError):
        wrong_password.send(item)
    nobody_listens = EmailSender({"host": "127.0.0.1", "port": free_port(), "from": "box@example.org"},
                                 timeout=2)
    with pytest.raises(NotifyError) as caught:
        nobody_listens.send(item)
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(NotifyError):  # a header injection attempt is refused, not sent
        EmailSender(email_settings(smtp_server)).send({**item, "target": "a@example.org\r\nBcc: x@example.org"})
    with pytest.raises(ConfigError):
        EmailSender({"host": "127.0.0.1"})


# --- webhook ----------------------------------------------------------------------

def test_signed_webhook_verified_by_receiver(receivers, outbox):
    receiver = receivers()
    payload = {"number": "+380441234567", "note": "Передзвоніть, будь ласка"}
    item_id = outbox.enqueue("webhook", receiver.url, "call.missed", payload, now=T0)
    with Dispatcher(outbox, {"webhook": WebhookSender(SECRET)}) as dispatcher:
        dispatcher.run_once(T0)
    assert outbox.get(item_id)["status"] == "sent"
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert verify_signature(SECRET, body, headers["X-Hotline-Signature"])
    assert not verify_signature("another secret", body, headers["X-Hotline-Signature"])
    assert not verify_signature(SECRET, body + b" ", headers["X-Hotline-Signature"])
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(SECRET, body, "sha256=ЖЖЖ")
    assert headers["X-Hotline-Event"] == "call.missed"
    assert headers["X-Hotline-Delivery"] == str(item_id)
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {**payload, "event": "call.missed", "id": item_id}


def test_webhook_500_twice_then_delivered_on_third_attempt(receivers, db_path, outbox):
    receiver = receivers(statuses=[500, 500])
    clock = Clock()
    dispatcher = Dispatcher(db_path, {"webhook": WebhookSender(SECRET)}, wake_every=0.05, clock=clock).start()
    try:
        item_id = dispatcher.notify("webhook", receiver.url, "call.answered", {"number": "+359888123456"})
        wait_for(lambda: outbox.get(item_id)["attempts"] == 1)
        item = outbox.get(item_id)
        assert item["status"] == "pending" and "500" in item["last_error"]
        assert datetime.datetime.fromisoformat(item["next_attempt_at"]) == at(10)
        clock.advance(10)
        dispatcher.wake()
        wait_for(lambda: outbox.get(item_id)["attempts"] == 2)
        assert datetime.datetime.fromisoformat(outbox.get(item_id)["next_attempt_at"]) == at(40)
        clock.advance(30)
        dispatcher.wake()
        wait_for(lambda: outbox.get(item_id)["status"] == "sent")
    finally:
        dispatcher.close()
        dispatcher.close()
    item = outbox.get(item_id)
    assert item["attempts"] == 3 and item["sent_at"] == at(40).isoformat(timespec="milliseconds")
    assert len(receiver.requests) == 3
    assert {request["headers"]["X-Hotline-Delivery"] for request in receiver.requests} == {str(item_id)}
    assert all(verify_signature(SECRET, r["body"], r["headers"]["X-Hotline-Signature"]) for r in receiver.requests)


def test_webhook_timeout_redirect_and_scheme_fail(receivers):
    item = {"id": 3, "event": "call.started", "payload": {}}
    slow = receivers(hold=True)
    with pytest.raises(NotifyError):
        WebhookSender(SECRET, timeout=0.3).send({**item, "target": slow.url})
    moved = receivers(statuses=[302])
    with pytest.raises(NotifyError, match="302"):
        WebhookSender(SECRET).send({**item, "target": moved.url})
    assert [r["path"] for r in moved.requests] == ["/hook"]  # the redirect was not followed
    with pytest.raises(NotifyError, match="not an http"):
        WebhookSender(SECRET).send({**item, "target": "file:///etc/passwd"})
    with pytest.raises(ConfigError):
        WebhookSender("")


# --- surviving restarts -----------------------------------------------------------

def test_outbox_survives_a_restart_while_the_target_is_down(receivers, db_path, outbox):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    never_dispatched = outbox.enqueue("webhook", url, "callback.done", {"number": "+359888000222"}, now=T0)
    clock = Clock()
    first = Dispatcher(db_path, {"webhook": WebhookSender(SECRET, timeout=2)}, wake_every=0.05, clock=clock).start()
    tried = first.notify("webhook", url, "call.missed", {"number": "+359888000111"})
    wait_for(lambda: all(outbox.get(i)["attempts"] == 1 for i in (never_dispatched, tried)))
    first.close()
    first.close()
    assert outbox.pending_count() == 2

    receiver = receivers(port=port)  # the receiver comes back; so does the box
    clock.advance(10)
    with Dispatcher(db_path, {"webhook": WebhookSender(SECRET)}, wake_every=0.05, clock=clock).start():
        wait_for(lambda: outbox.pending_count() == 0)
    assert {outbox.get(i)["status"] for i in (never_dispatched, tried)} == {"sent"}
    assert sorted(r["headers"]["X-Hotline-Delivery"] for r in receiver.requests) == \
        sorted([str(never_dispatched), str(tried)])


def test_crash_mid_send_sends_again_on_next_start(receivers, db_path, outbox):
    receiver = receivers(hold=True)  # takes the request and never answers
    item_id = outbox.enqueue("webhook", receiver.url, "voicemail", {"number": "+359888123456"})
    script = textwrap.dedent(f"""
        import time
        from appliance.notify import Dispatcher, WebhookSender
        Dispatcher({db_path!r}, {{"webhook": WebhookSender({SECRET!r}, timeout=60)}}, wake_every=0.05).start()
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        wait_for(lambda: receiver.requests, timeout=20)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    item = outbox.get(item_id)
    assert (item["status"], item["attempts"]) == ("pending", 0)  # nothing marked before the send ended

    receiver.server.hold = False
    receiver.server.release.set()
    with Dispatcher(db_path, {"webhook": WebhookSender(SECRET)}, wake_every=0.05).start():
        wait_for(lambda: outbox.get(item_id)["status"] == "sent")
    deliveries = [r["headers"]["X-Hotline-Delivery"] for r in receiver.requests]
    assert deliveries == [str(item_id), str(item_id)]  # at least once; the id lets the receiver dedupe


def test_sender_bug_costs_an_attempt_not_the_thread(db_path, outbox):
    class Broken:
        def send(self, item):
            raise KeyError("oops")

    item_id = outbox.enqueue("sms", "+359888123456", "call.missed", {})
    orphan = outbox.enqueue("email", "duty@example.org", "call.missed", {})
    with Dispatcher(db_path, {"sms": Broken()}, wake_every=0.05).start() as dispatcher:
        wait_for(lambda: outbox.get(orphan)["attempts"] == 1 and outbox.get(item_id)["attempts"] == 1)
        assert dispatcher._thread.is_alive()
    assert "KeyError" in outbox.get(item_id)["last_error"]
    assert "no sender for channel email" in outbox.get(orphan)["last_error"]
    assert not dispatcher._thread.is_alive()


def test_dispatcher_refuses_unknown_channels(db_path):
    with pytest.raises(ConfigError):
        Dispatcher(db_path, {"fax": object()})


# --- texts ------------------------------------------------------------------------

@pytest.mark.parametrize("language", ["en", "bg", "uk", "ru"])
@pytest.mark.parametrize("event", ["call.missed", "voicemail", "callback.done", "call.answered", "call.started"])
def test_render_every_event(event, language):
    text = render(event, {"number": "+359888123456", "seconds": 9, "at": T0.isoformat(), "line": "gsm1"}, language)
    assert "+359888123456" in text["subject"] and "+359888123456" in text["body"]
    assert "gsm1" in text["body"]
    assert "\n" not in text["subject"] and len(text["body"]) < 160


def test_render_fallbacks():
    assert render("call.missed", {}, "xx")["subject"] == "Missed call from an unknown number"
    other = render("sms.received", {"from": "+359888123456", "hotline": "Admissions"})
    assert other["subject"] == "[Admissions] Hotline: sms.received"
    assert "+359888123456" in other["body"]
    answered = render("call.answered", {"number": "1", "operator": "Ivan", "wait_seconds": 14.6})
    assert "Operator: Ivan." in answered["body"] and "Waited: 15 s." in answered["body"]
