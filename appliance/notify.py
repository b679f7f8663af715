"""Notifications (SMS, e-mail, signed webhook) through a persistent outbox.

Every notification is first committed to the ``outbox`` table of the journal, then a
``Dispatcher`` thread sends what is due and marks each item only after its send returned
or failed. A crash mid-send therefore sends the item again on the next start: delivery is
at-least-once, and the outbox id travels with every message so a receiver can deduplicate.
Failed attempts are retried with exponential back-off until ``MAX_ATTEMPTS``.

The dispatcher should get the journal's *path* and so its own connection: SQLite in WAL
mode lets the engine enqueue on its connection while the dispatcher sends on another.
"""
import datetime
import email.utils
import hashlib
import hmac
import http.client
import json
import logging
import mimetypes
import os
import smtplib
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

from . import journal
from .errors import ConfigError, NotifyError

log = logging.getLogger(__name__)

CHANNELS = ("sms", "email", "webhook")
MAX_ATTEMPTS = 12
# Seconds to wait after the n-th failed attempt; the last step repeats until MAX_ATTEMPTS.
BACKOFF_SECONDS = (10, 30, 120, 600, 1800, 3600)
ERROR_CHARS = 500  # last_error is for people reading the outbox, not a log
SMTP_TIMEOUT = 15.0
WEBHOOK_TIMEOUT = 5.0
MAX_ATTACHMENT_BYTES = 15 * 1024 * 1024  # most mail servers refuse more than 20-25 MB encoded
SIGNATURE_HEADER = "X-Hotline-Signature"
AUDIO_TYPES = {".wav": "audio/wav", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
               ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".flac": "audio/flac"}


# --- time -------------------------------------------------------------------------

def _utc(value=None):
    """``value`` (None for now, a datetime or an ISO-8601 string) as an aware UTC datetime."""
    if value is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)  # naive times in this box are UTC
    return value.astimezone(datetime.timezone.utc)


def _iso(value=None):
    """The ISO-8601 UTC string ``journal.now()`` would make, so stored times compare as text."""
    return _utc(value).isoformat(timespec="milliseconds")


def backoff(attempts):
    """Seconds to wait before the next try after ``attempts`` failed attempts."""
    return BACKOFF_SECONDS[min(max(attempts, 1), len(BACKOFF_SECONDS)) - 1]


# --- the outbox -------------------------------------------------------------------

class Outbox:
    """The ``outbox`` table: enqueue, find what is due, mark sent or retry later."""

    def __init__(self, conn):
        self.conn = conn
        # One connection cannot run two transactions at once; threads sharing it take turns.
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path):
        """An outbox on its own connection to the journal at ``path``."""
        return cls(journal.connect(path))

    def close(self):
        """Close the connection; safe to call twice (only for an outbox made by ``open``)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def enqueue(self, channel, target, event, payload=None, now=None):
        """Store a notification, due at once; return its id once it is committed."""
        if channel not in CHANNELS:
            raise ConfigError("channel", f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
        if not target or not str(target).strip():
            raise ConfigError("target", "a notification needs a target")
        try:
            payload_text = json.dumps(payload or {}, ensure_ascii=False)
        except (TypeError, ValueError) as err:
            raise ConfigError("payload", f"must be JSON: {err}") from err
        at = _iso(now)
        with self._lock, journal.Transaction(self.conn):
            return self.conn.execute(
                "INSERT INTO outbox (channel, target, event, payload, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (channel, str(target).strip(), event, payload_text, at, at)).lastrowid

    def due(self, now=None, limit=20):
        """Pending items whose time has come, oldest due first."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, id LIMIT ?", (_iso(now), limit)).fetchall()
        return [_item(row) for row in rows]

    def mark_sent(self, item_id, now=None):
        """Record a successful attempt; return False if the item was not pending."""
        with self._lock, journal.Transaction(self.conn):
            cursor = self.conn.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?"
                " WHERE id = ? AND status = 'pending'", (_iso(now), item_id))
        return cursor.rowcount == 1

    def mark_retry(self, item_id, error, now=None):
        """Record a failed attempt and schedule the next; return the new status (or None)."""
        at = _utc(now)
        with self._lock, journal.Transaction(self.conn):
            row = self.conn.execute("SELECT attempts FROM outbox WHERE id = ? AND status = 'pending'",
                                    (item_id,)).fetchone()
            if row is None:
                return None
            attempts = row["attempts"] + 1
            status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
            next_at = at + datetime.timedelta(seconds=backoff(attempts))
            self.conn.execute(
                "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                (status, attempts, _iso(next_at), str(error)[:ERROR_CHARS], item_id))
        return status

    def retry_now(self, item_id, now=None):
        """Make a pending or failed item due at once (the web UI's "send again")."""
        with self._lock, journal.Transaction(self.conn):
            cursor = self.conn.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE id = ? AND status != 'sent'",
                (_iso(now), item_id))
        return cursor.rowcount == 1

    def get(self, item_id):
        """One item as a dict (payload decoded), or None."""
        with self._lock:
            row = self.conn.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else _item(row)

    def pending_count(self):
        """How many items still wait to be sent."""
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]

    def recent(self, limit=50):
        """The newest items first, whatever their status."""
        with self._lock:
            rows = self.conn.execute("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_item(row) for row in rows]


def _item(row):
    item = dict(row)
    item["payload"] = json.loads(item["payload"])
    return item


# --- texts ------------------------------------------------------------------------

TEXTS = {
    "en": {
        "call.missed": ("Missed call from {number}", "Missed call from {number} at {time}."),
        "voicemail": ("Voicemail from {number}", "New voicemail from {number} at {time}, {seconds} s."),
        "callback.done": ("Called back {number}", "Call back to {number} done at {time}."),
        "call.answered": ("Call from {number} answered", "Call from {number} answered at {time}."),
        "call.started": ("Incoming call from {number}", "Incoming call from {number} at {time}."),
        "other": ("Hotline: {event}", "{event}: {number} at {time}."),
        "unknown": "an unknown number",
        "labels": {"line": "Line", "queue": "Queue", "operator": "Operator", "wait_seconds": "Waited"},
        "seconds": "{} s",
        "time": "%Y-%m-%d %H:%M",
        "no_attachment": "The recording {name} is no longer on the box, so it is not attached.",
        "too_big": "The recording {name} is too large to attach; it is on the box.",
    },
    "bg": {
        "call.missed": ("Пропуснато обаждане от {number}", "Пропуснато обаждане от {number} в {time}."),
        "voicemail": ("Гласово съобщение от {number}", "Ново гласово съобщение от {number} в {time}, {seconds} сек."),
        "callback.done": ("Обратно обаждане до {number}", "Обратното обаждане до {number} е направено в {time}."),
        "call.answered": ("Прието обаждане от {number}", "Обаждането от {number} е прието в {time}."),
        "call.started": ("Входящо обаждане от {number}", "Входящо обаждане от {number} в {time}."),
        "other": ("Гореща линия: {event}", "{event}: {number} в {time}."),
        "unknown": "скрит номер",
        "labels": {"line": "Линия", "queue": "Опашка", "operator": "Оператор", "wait_seconds": "Чакане"},
        "seconds": "{} сек",
        "time": "%d.%m.%Y %H:%M",
        "no_attachment": "Записът {name} вече не е на устройството и не е приложен.",
        "too_big": "Записът {name} е твърде голям за прикачване; той е на устройството.",
    },
    "uk": {
        "call.missed": ("Пропущений дзвінок від {number}", "Пропущений дзвінок від {number} о {time}."),
        "voicemail": ("Голосове повідомлення від {number}", "Нове голосове повідомлення від {number} о {time}, {seconds} с."),
        "callback.done": ("Зворотний дзвінок на {number}", "Зворотний дзвінок на {number} виконано о {time}."),
        "call.answered": ("Дзвінок від {number} прийнято", "Дзвінок від {number} прийнято о {time}."),
        "call.started": ("Вхідний дзвінок від {number}", "Вхідний дзвінок від {number} о {time}."),
        "other": ("Гаряча лінія: {event}", "{event}: {number} о {time}."),
        "unknown": "прихований номер",
        "labels": {"line": "Лінія", "queue": "Черга", "operator": "Оператор", "wait_seconds": "Очікування"},
        "seconds": "{} с",
        "time": "%d.%m.%Y %H:%M",
        "no_attachment": "Запису {name} вже немає на пристрої, тому його не додано.",
        "too_big": "Запис {name} завеликий для вкладення; він є на пристрої.",
    },
    "ru": {
        "call.missed": ("Пропущенный звонок от {number}", "Пропущенный звонок от {number} в {time}."),
        "voicemail": ("Голосовое сообщение от {number}", "Новое голосовое сообщение от {number} в {time}, {seconds} с."),
        "callback.done": ("Обратный звонок на {number}", "Обратный звонок на {number} выполнен в {time}."),
        "call.answered": ("Звонок от {number} принят", "Звонок от {number} принят в {time}."),
        "call.started": ("Входящий звонок от {number}", "Входящий звонок от {number} в {time}."),
        "other": ("Горячая линия: {event}", "{event}: {number} в {time}."),
        "unknown": "скрытый номер",
        "labels": {"line": "Линия", "queue": "Очередь", "operator": "Оператор", "wait_seconds": "Ожидание"},
        "seconds": "{} с",
        "time": "%d.%m.%Y %H:%M",
        "no_attachment": "Записи {name} уже нет на устройстве, поэтому она не приложена.",
        "too_big": "Запись {name} слишком велика для вложения; она есть на устройстве.",
    },
}


def render(event, data, language="en"):
    """A short readable ``{"subject", "body"}`` for an event, good for SMS and e-mail alike."""
    texts = TEXTS.get(language) or TEXTS["en"]
    subject, body = texts.get(event) or texts["other"]
    fields = {
        "event": event,
        "number": data.get("number") or data.get("caller") or data.get("from") or texts["unknown"],
        "time": _local_time(data.get("at"), texts["time"]),
        "seconds": _whole(data.get("seconds")),
    }
    extras = []
    for key, label in texts["labels"].items():
        value = data.get(key)
        if value not in (None, ""):
            shown = texts["seconds"].format(_whole(value)) if key == "wait_seconds" else value
            extras.append(f"{label}: {shown}.")
    prefix = f"[{data['hotline']}] " if data.get("hotline") else ""
    return {"subject": prefix + subject.format(**fields),
            "body": " ".join([body.format(**fields)] + extras)}


def _local_time(value, pattern):
    """An ISO time shown in the box's own time zone, as the people on duty read clocks."""
    try:
        return _utc(value).astimezone().strftime(pattern)
    except (TypeError, ValueError):
        return str(value)


def _whole(value):
    try:
        return str(round(float(value)))
    except (TypeError, ValueError):
        return "?"


# --- senders ----------------------------------------------------------------------

class SmsSender:
    """Sends through the engine's ``send_sms(line_or_None, number, text)``."""

    def __init__(self, send_sms, line=None, language="en"):
        self._send_sms = send_sms
        self.line = line
        self.language = language

    def text(self, item):
        """The SMS text: the payload's own ``text`` or the rendered body."""
        payload = item["payload"]
        return payload.get("text") or render(item["event"], payload, payload.get("language", self.language))["body"]

    def send(self, item):
        """Send one outbox item as an SMS; raise NotifyError if the line refused it."""
        # ``sms_line``, not ``line``: a call event's ``line`` is where the call came in.
        line = item["payload"].get("sms_line", self.line)
        try:
            self._send_sms(line, item["target"], self.text(item))
        except NotifyError:
            raise
        except Exception as err:  # the engine's callable may fail in any way a modem can
            raise NotifyError(f"SMS to {item['target']} failed: {err or type(err).__name__}") from err


class EmailSender:
    """Sends over SMTP; settings: host, port, username, password, starttls, ssl, from."""

    def __init__(self, settings, base_dir=None, timeout=SMTP_TIMEOUT):
        for key in ("host", "from"):
            if not settings.get(key):
                raise ConfigError(f"email.{key}", "is required")
        self.settings = dict(settings)
        self.base_dir = base_dir  # relative attachment paths (recordings) are under the data dir
        self.timeout = timeout

    def build(self, item):
        """The EmailMessage for an outbox item, with its attachment if it still exists."""
        payload = item["payload"]
        language = payload.get("language", self.settings.get("language", "en"))
        text = render(item["event"], payload, language)
        texts = TEXTS.get(language) or TEXTS["en"]
        body = payload.get("body") or text["body"]
        attachment, note = self._attachment(payload.get("attachment"), texts)
        if note:
            body += "\n\n" + note
        message = EmailMessage()
        try:
            message["Subject"] = " ".join(str(payload.get("subject") or text["subject"]).split())
            message["From"] = self.settings["from"]
            message["To"] = item["target"]
            message["Date"] = email.utils.formatdate(localtime=True)
            domain = email.utils.parseaddr(self.settings["from"])[1].rpartition("@")[2] or "hotline.local"
            message["Message-ID"] = email.utils.make_msgid("hotline", domain=domain)  # no slow getfqdn()
            message["X-Hotline-Event"] = item["event"]
            message["X-Hotline-Delivery"] = str(item["id"])
        except ValueError as err:  # a line break in a header: refuse rather than inject
            raise NotifyError(f"cannot build the e-mail to {item['target']!r}: {err}") from err
        # base64 keeps Cyrillic intact through servers without 8BITMIME.
        message.set_content(body + "\n", charset="utf-8", cte="base64")
        if attachment is not None:
            data, name = attachment
            maintype, subtype = _mime_type(name).split("/")
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        return message

    def send(self, item):
        """Send one outbox item as an e-mail; raise NotifyError if the server refused it."""
        message = self.build(item)
        settings = self.settings
        use_ssl = bool(settings.get("ssl"))
        port = int(settings.get("port") or (465 if use_ssl else 587 if settings.get("starttls") else 25))
        try:
            if use_ssl:
                smtp = smtplib.SMTP_SSL(settings["host"], port, timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(settings["host"], port, timeout=self.timeout)
            with smtp:
                if settings.get("starttls") and not use_ssl:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.get("username"):
                    smtp.login(settings["username"], settings.get("password") or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as err:
            raise NotifyError(f"e-mail to {item['target']} failed: {err}") from err
        except UnicodeError as err:  # smtplib sends AUTH credentials as ASCII only
            raise NotifyError(f"e-mail to {item['target']} failed: non-ASCII SMTP credentials ({err})") from err

    def _attachment(self, path, texts):
        """((bytes, file name), None) or (None, a note for the body saying why not)."""
        if not path:
            return None, None
        if self.base_dir and not os.path.isabs(path):
            path = os.path.join(self.base_dir, path)
        name = os.path.basename(path)
        try:
            if os.path.getsize(path) > MAX_ATTACHMENT_BYTES:
                return None, texts["too_big"].format(name=name)
            with open(path, "rb") as handle:
                return (handle.read(), name), None
        except OSError:
            log.warning("attachment %s is missing; sending without it", path)
            return None, texts["no_attachment"].format(name=name)


def _mime_type(name):
    """The MIME type of a file by its extension; audio types spelt as mail readers expect."""
    extension = os.path.splitext(name)[1].lower()
    return AUDIO_TYPES.get(extension) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def sign(secret, body):
    """The ``X-Hotline-Signature`` value for ``body``: ``sha256=<hex HMAC>``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret, body, header):
    """True if ``header`` is the valid signature of the exact ``body`` bytes."""
    if not header or not isinstance(header, str):
        return False
    expected = sign(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8"))


def webhook_body(item):
    """The exact JSON bytes posted for an outbox item: its payload plus event and id."""
    document = {**item["payload"], "event": item["event"], "id": item["id"]}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: urllib would turn the POST into a GET and call it delivered."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookSender:
    """POSTs signed JSON to the item's URL; a non-2xx answer or a timeout is a failure."""

    def __init__(self, secret, timeout=WEBHOOK_TIMEOUT):
        if not secret:
            raise ConfigError("webhook.secret", "a webhook needs a secret to sign with")
        self._secret = secret
        self.timeout = timeout
        # No proxies from the environment: receivers are reached directly from the box.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)

    def send(self, item):
        """Post one outbox item; raise NotifyError unless the receiver answered 2xx."""
        url = item["target"]
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise NotifyError(f"webhook target {url!r} is not an http(s) URL")
        body = webhook_body(item)
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "hotline-appliance",
            SIGNATURE_HEADER: sign(self._secret, body),
            "X-Hotline-Event": item["event"],
            "X-Hotline-Delivery": str(item["id"]),
        })
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                response.read(65536)  # let the receiver finish its answer; we keep none of it
        except urllib.error.HTTPError as err:
            err.close()
            raise NotifyError(f"webhook {url} answered {err.code} {err.reason}") from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", None) or err
            raise NotifyError(f"webhook {url} failed: {reason}") from err
        if not 200 <= status < 300:
            raise NotifyError(f"webhook {url} answered {status}")


# --- the dispatcher ---------------------------------------------------------------

class Dispatcher:
    """A thread that sends due outbox items and marks each sent or to be retried."""

    def __init__(self, outbox, senders, wake_every=1.0, clock=None, batch=20):
        self._own_outbox = isinstance(outbox, (str, os.PathLike))
        if self._own_outbox:
            outbox = Outbox.open(outbox)
        elif not isinstance(outbox, Outbox):
            outbox = Outbox(outbox)  # a connection
        self.outbox = outbox
        unknown = set(senders) - set(CHANNELS)
        if unknown:
            raise ConfigError("senders", f"unknown channel(s): {', '.join(sorted(unknown))}")
        self.senders = dict(senders)
        self.wake_every = wake_every
        self.batch = batch
        self._clock = clock or journal.now  # injectable so tests need not sleep through back-off
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def start(self):
        """Start sending in the background; return self."""
        self._thread.start()
        return self

    def wake(self):
        """Look at the outbox now rather than at the next ``wake_every``."""
        self._wake.set()

    def notify(self, channel, target, event, payload=None):
        """Enqueue a notification and wake the thread; return its outbox id."""
        item_id = self.outbox.enqueue(channel, target, event, payload, now=self._clock())
        self.wake()
        return item_id

    def run_once(self, now=None):
        """Send every item due at ``now`` (default: the clock); return how many were tried."""
        tried = 0
        for item in self.outbox.due(now if now is not None else self._clock(), self.batch):
            if self._stop.is_set():
                break  # what is left stays pending for the next start
            self._deliver(item, now)
            tried += 1
        return tried

    def stop(self):
        """Stop the thread after the send in progress; safe to call twice."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=SMTP_TIMEOUT + 5)

    def close(self):
        """Stop and close the outbox connection if this dispatcher opened it; safe twice."""
        self.stop()
        if not self._closed:
            self._closed = True
            if self._own_outbox:
                self.outbox.close()

    def _run(self):
        while not self._stop.is_set():
            self._wake.clear()  # before looking, so a wake() during the batch is not lost
            try:
                tried = self.run_once()
            except Exception:  # a locked or broken database must not end notifications for good
                log.exception("notification dispatch failed")
                tried = 0
            if tried < self.batch:
                self._wake.wait(self.wake_every)

    def _deliver(self, item, now=None):
        """Send one item, then (and only then) record the outcome."""
        sender = self.senders.get(item["channel"])
        error = None
        if sender is None:
            error = f"no sender for channel {item['channel']}"
        else:
            try:
                sender.send(item)
            except NotifyError as err:
                error = str(err)
            except Exception as err:  # a sender's bug costs an attempt, not the thread
                log.exception("sender for %s crashed", item["channel"])
                error = f"{type(err).__name__}: {err}"
        at = now if now is not None else self._clock()
        if error is None:
            self.outbox.mark_sent(item["id"], now=at)
            log.info("notification %d (%s %s) sent to %s", item["id"], item["channel"], item["event"],
                     item["target"])
            return
        status = self.outbox.mark_retry(item["id"], error, now=at)
        if status == "failed":
            log.error("notification %d to %s failed for good: %s", item["id"], item["target"], error)
        else:
            log.warning("notification %d to %s failed, will retry: %s", item["id"], item["target"], error)
