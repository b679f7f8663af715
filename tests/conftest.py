"""Shared fixtures: emulated modems on real ptys, a running box, the web app and clients."""
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from appliance.config import ConfigStore, demo_config
from appliance.control import ControlClient
from appliance.errors import ApplianceError
from hardware.virtual.network import VirtualNetwork
from hardware.virtual.families import Sim7600Emulator
from web_ui import create_app

from .browser import chromium
from .sip_peers import wait_until

MODEM_NUMBER = "+359700000001"
PHONE_NUMBER = "+359700000100"


@pytest.fixture(scope="session", autouse=True)
def speech_cache(tmp_path_factory):
    """Speech made once per run: every box started by a test reuses it (espeak-ng is slow)."""
    os.environ["HOTLINE_SPEECH_CACHE"] = str(tmp_path_factory.mktemp("speech"))
    # A box started by a test must never think systemd runs it: it would set this machine's clock.
    os.environ.pop("INVOCATION_ID", None)
    yield


@pytest.fixture
def network():
    """An empty virtual phone network."""
    return VirtualNetwork()


@pytest.fixture
def sim7600(network):
    """An emulated SIM7600 on two ptys, attached to the network."""
    modem = Sim7600Emulator(network, MODEM_NUMBER)
    yield modem
    modem.close()


@pytest.fixture
def browser():
    """Chromium for one test (tests/browser.py): a console error or failed request it did not expect fails it."""
    with chromium() as watched:
        yield watched


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Poll ``predicate`` until it returns something true; fail the test on timeout."""
    value = wait_until(predicate, timeout, interval)
    if not value:
        pytest.fail(f"condition not met within {timeout} s")
    return value


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Box:
    """A box started as separate processes (`hotline twin` and `hotline engine`)."""

    def __init__(self, data_dir):
        self.data_dir = str(data_dir)
        self.processes = {}
        self.engine = ControlClient(os.path.join(self.data_dir, "engine.sock"))

    def configure(self, document):
        """Write ``document`` as the box's configuration before it starts."""
        ConfigStore(self.data_dir).save(document)

    def start(self, *commands):
        """Start the named `hotline` commands and wait until every line is up."""
        for command in commands:
            log = open(os.path.join(self.data_dir, f"{command}.log"), "ab")
            self.processes[command] = subprocess.Popen(
                [sys.executable, "-m", "appliance.cli", command, "--data", self.data_dir],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
        try:
            wait_for(self.lines_up, timeout=30)
        except BaseException:
            self.stop()  # a box that did not come up leaves no processes behind
            raise

    def start_web(self):
        """Start `hotline web` on a free port; return its base URL once it answers."""
        port = free_port()
        log = open(os.path.join(self.data_dir, "web.log"), "ab")
        self.processes["web"] = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "web", "--port", str(port), "--data", self.data_dir],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(port), timeout=30)
        return url

    def status(self):
        """The engine's status, or None while it does not answer."""
        try:
            return self.engine.request("status")
        except ApplianceError:
            return None

    def lines_up(self):
        """Every line up (a SIP line on a box without pjsua2 is "disabled" and says why: that is final)."""
        status = self.status()
        return bool(status and status["lines"]) and all(line["state"] in ("up", "disabled")
                                                        for line in status["lines"])

    def kill(self, command, sig=signal.SIGTERM):
        """Stop one process of the box (SIGKILL for a crash)."""
        process = self.processes.pop(command)
        process.send_signal(sig)
        process.wait(timeout=10)

    def hotline(self, *args, timeout=60):
        """Run the `hotline` command against this box; return the completed process."""
        return subprocess.run([sys.executable, "-m", "appliance.cli", *args, "--data", self.data_dir],
                              capture_output=True, text=True, timeout=timeout)

    def hotline_json(self, *args, timeout=60):
        """Run the `hotline` command and parse its JSON output."""
        done = self.hotline(*args, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def stop(self):
        """Stop every process of the box."""
        for process in reversed(list(self.processes.values())):
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


def greeting_config():
    """The demo box without its IVR: lines answer, play the greeting and record, mono WAV."""
    document = demo_config()
    for line in document["lines"]:
        line.pop("flow")
    document["settings"].update(recording="mono", recording_format="wav")
    return document


@pytest.fixture(scope="module")
def greeting_box(tmp_path_factory):
    """A box whose lines only greet and record (the walking skeleton's call path)."""
    running = Box(tmp_path_factory.mktemp("box"))
    running.configure(greeting_config())
    running.start("twin", "engine")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """The demo box running: virtual twin and engine as their own processes."""
    running = Box(tmp_path_factory.mktemp("box"))
    running.start("twin", "engine")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def engine(box):
    """The demo box's engine control API, patient enough for a configuration save that speaks."""
    return ControlClient(os.path.join(box.data_dir, "engine.sock"), timeout=60)


def in_force(engine, section):
    """A section of the configuration the engine runs now."""
    return engine.request("config")["config"][section]


def restore_sections(engine, document, sections):
    """Put ``sections`` of the running configuration back to ``document``'s, where a test changed them."""
    for section in sections:
        if in_force(engine, section) != document[section]:
            assert engine.request("config_put", section=section, value=document[section])["saved"]


@pytest.fixture
def app(tmp_path):
    """The web app on an empty data directory (no engine running)."""
    return create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def client(app):
    """A browser-like test client of the web app."""
    return app.test_client()


ADMIN = ("admin", "correct horse battery")


def app_with_first_admin(data_dir):
    """The web app on ``data_dir`` (CSRF off) and the answer to making ADMIN on its first-run page."""
    app = create_app({"DATA_DIR": data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})
    username, password = ADMIN
    response = app.test_client().post("/setup", data={"username": username, "password": password,
                                                      "confirm": password})
    return app, response


@pytest.fixture
def admin_client(client):
    """A client that went through first-run setup and is logged in as admin."""
    username, password = ADMIN
    response = client.post("/setup", data={"username": username, "password": password, "confirm": password})
    assert response.status_code == 302
    return client
