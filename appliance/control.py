"""The control API: JSON lines over a Unix socket in the data directory.

A client sends one request line ``{"cmd": ..., ...}`` and reads one reply line, except
for ``subscribe``, which turns the connection into a stream of event lines. Each
subscriber has a bounded queue: a client that does not keep up is cut off, so the
engine never waits on the web UI.
"""
import contextlib
import json
import logging
import os
import queue
import socket
import socketserver
import threading

from .errors import ControlError, EngineUnavailable

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 1000
KEEPALIVE_SECONDS = 15


class EventHub:
    """Fans events out to subscribers without ever blocking the publisher."""

    def __init__(self):
        self._subscribers = set()
        self._lock = threading.Lock()

    def subscribe(self):
        """A new queue that receives every event from now on."""
        subscriber = queue.Queue(SUBSCRIBER_QUEUE)
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber):
        """Stop delivering to ``subscriber``."""
        with self._lock:
            self._subscribers.discard(subscriber)

    def publish(self, event):
        """Hand ``event`` to every subscriber; drop those whose queue is full."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber.put_nowait(event)
            except queue.Full:
                log.warning("dropping a subscriber that stopped reading events")
                self.unsubscribe(subscriber)
                with contextlib.suppress(queue.Full):
                    subscriber.get_nowait()
                    subscriber.put_nowait(None)  # tells its reader it was cut off


class _Server(socketserver.ThreadingUnixStreamServer):
    # A load test or a page full of widgets opens many connections at once; the default
    # backlog of 5 makes the sixth connect fail with EAGAIN on a Unix socket.
    request_queue_size = 128


class JsonLineServer:
    """Serves ``handler(request) -> reply`` and ``subscribe`` on a Unix socket."""

    def __init__(self, path, handler, hub=None):
        self.path = path
        self._handler = handler
        self._hub = hub
        if os.path.exists(path):
            os.unlink(path)  # a stale socket from a previous run
        server = self

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self):
                server._serve(self.rfile, self.wfile)

        self._server = _Server(path, _Handler)
        self._server.daemon_threads = True
        os.chmod(path, 0o660)
        self._inode = os.stat(path).st_ino
        self._thread = threading.Thread(target=self._server.serve_forever, name="control", daemon=True)

    def start(self):
        """Start serving in the background."""
        self._thread.start()

    def close(self):
        """Stop serving and remove the socket; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == self._inode:  # not a newer server's socket
                os.unlink(self.path)

    def _serve(self, rfile, wfile):
        line = rfile.readline()
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ValueError("a request is an object with a string 'cmd'")
        except ValueError as err:
            return _send(wfile, {"ok": False, "error": f"bad request: {err}"})
        if request["cmd"] == "subscribe" and self._hub is not None:
            return self._stream(wfile)
        try:
            reply = {"ok": True, "result": self._handler(request)}
        except ControlError as err:
            reply = {"ok": False, "error": str(err)}
        except Exception as err:  # the reply names the failure; the server keeps going
            log.exception("control request %r failed", request.get("cmd"))
            reply = {"ok": False, "error": f"internal error: {err}"}
        _send(wfile, reply)

    def _stream(self, wfile):
        subscriber = self._hub.subscribe()
        try:
            _send(wfile, {"ok": True, "result": "subscribed"})
            while True:
                try:
                    event = subscriber.get(timeout=KEEPALIVE_SECONDS)
                except queue.Empty:
                    event = {"type": "keepalive"}
                if event is None:
                    return
                _send(wfile, event)
        except OSError:
            return
        finally:
            self._hub.unsubscribe(subscriber)


def _send(wfile, message):
    wfile.write(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
    wfile.flush()


class ControlClient:
    """Talks to a JsonLineServer: ``request()`` for commands, ``subscribe()`` for events."""

    def __init__(self, path, timeout=5.0):
        self.path = path
        self.timeout = timeout

    def request(self, cmd, timeout=None, **args):
        """Send one command and return its result; raise ControlError if it was refused."""
        with self._connect(timeout) as sock, sock.makefile("rwb") as stream:
            _send(stream, {"cmd": cmd, **args})
            reply = _receive(stream, self.path)
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "request refused"))
        return reply.get("result")

    def subscribe(self):
        """Yield events as they happen, until the connection ends."""
        sock = self._connect(KEEPALIVE_SECONDS * 2)
        with sock, sock.makefile("rwb") as stream:
            _send(stream, {"cmd": "subscribe"})
            _receive(stream, self.path)
            yield {"type": "subscribed"}
            for line in stream:
                event = json.loads(line)
                if event.get("type") != "keepalive":
                    yield event

    def _connect(self, timeout):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            sock.connect(self.path)
        except OSError as err:
            sock.close()
            raise EngineUnavailable(f"nothing answers on {self.path}: {err}") from err
        return sock


def _receive(stream, path):
    try:
        line = stream.readline()
    except OSError as err:
        raise EngineUnavailable(f"{path}: {err}") from err
    if not line:
        raise EngineUnavailable(f"{path} closed the connection")
    return json.loads(line)
