"""The systemd watchdog: sd_notify over a real datagram socket, fed only while the engine moves."""
import os
import socket
import threading
import time

import pytest

from appliance.media import MediaClock
from appliance.watchdog import EngineLiveness, Watchdog, notify, watchdog_interval

from .conftest import wait_for


class NotifySocket:
    """What systemd listens on: a Unix datagram socket collecting sd_notify messages."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self):
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue
            except OSError:
                return

    def count(self, text):
        return sum(1 for message in list(self.messages) if text in message.split("\n"))

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    listener = NotifySocket(str(tmp_path / "notify.sock"))
    yield listener
    listener.close()


@pytest.fixture
def media_clock():
    clock = MediaClock()
    clock.start()
    yield clock
    clock.stop()


def test_notify_sends_datagrams_and_is_silent_without_systemd(systemd, monkeypatch):
    assert notify("STATUS=hello", systemd.path)
    wait_for(lambda: "STATUS=hello" in systemd.messages, timeout=2)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False  # a development run: nothing to tell, no error


def test_watchdog_interval_comes_from_systemd_environment():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # meant for another process
    assert watchdog_interval({}) is None


def test_watchdog_is_fed_while_the_media_clock_ticks_and_stops_when_it_stalls(systemd, media_clock):
    liveness = EngineLiveness(media_clock, clock_stall=0.1)
    dog = Watchdog(liveness.problem, interval=0.45, socket_path=systemd.path)
    assert dog.enabled
    dog.ready("ready: 2 lines")
    try:
        wait_for(lambda: systemd.count("READY=1") == 1)
        # Fed every interval/3 while the clock moves (and the loop ticks).
        for _ in range(6):
            liveness.loop_ticked()
            time.sleep(0.1)
        assert systemd.count("WATCHDOG=1") >= 3
        media_clock.stop()  # the media clock stalls

        def loop_ticks_for(seconds):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                liveness.loop_ticked()  # the loop is fine; only the clock stalled
                time.sleep(0.05)

        # Once the watchdog has noticed (and the feeds sent before have arrived), no feed follows.
        wait_for(lambda: loop_ticks_for(0.05) or dog.starving is not None, timeout=3)
        loop_ticks_for(0.2)
        stalled_at = systemd.count("WATCHDOG=1")
        loop_ticks_for(1.5)
        assert systemd.count("WATCHDOG=1") == stalled_at
        assert "media clock stalled" in dog.starving
        assert any(message.startswith("STATUS=unhealthy: the media clock stalled") for message in systemd.messages)
    finally:
        dog.close()
        dog.close()  # safe twice
    wait_for(lambda: systemd.count("STOPPING=1") == 1)  # the datagram reaches the listener thread
    time.sleep(0.2)
    assert systemd.count("STOPPING=1") == 1  # once, though close() ran twice


def test_watchdog_starves_when_the_engine_loop_stops_ticking(systemd, media_clock):
    liveness = EngineLiveness(media_clock, loop_stall=0.4)
    dog = Watchdog(liveness.problem, interval=0.3, socket_path=systemd.path)
    dog.ready()
    try:
        wait_for(lambda: systemd.count("WATCHDOG=1") >= 2)
        wait_for(lambda: dog.starving is not None, timeout=3)  # nobody calls loop_ticked()
        assert "engine loop" in dog.starving
        fed = systemd.count("WATCHDOG=1")
        time.sleep(0.5)
        assert systemd.count("WATCHDOG=1") == fed
        liveness.loop_ticked()  # the loop recovers: feeding resumes
        wait_for(lambda: systemd.count("WATCHDOG=1") > fed, timeout=2)
        assert dog.starving is None
    finally:
        dog.close()


def test_watchdog_starves_when_a_line_thread_dies(systemd, media_clock):
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    threads = [("line gsm1", threading.current_thread())]
    liveness = EngineLiveness(media_clock, threads=lambda: threads)
    dog = Watchdog(liveness.problem, interval=30, socket_path=systemd.path)
    liveness.loop_ticked()
    assert dog.check_once() is None
    threads.append(("line gsm2", dead))
    assert dog.check_once() == "the thread of line gsm2 died"
    wait_for(lambda: any(m.startswith("STATUS=unhealthy") for m in systemd.messages), timeout=2)
    assert systemd.count("WATCHDOG=1") == 1


def test_no_watchdog_thread_outside_systemd(monkeypatch, media_clock):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    dog = Watchdog(EngineLiveness(media_clock).problem)
    dog.ready()
    assert not dog.enabled and dog._thread is None
    dog.close()
