"""Shared fixtures: emulated modems on real ptys, a running box, the web app and clients."""
import json
import os
import subprocess
import sys
import time

import pytest

from appliance.control import ControlClient
from appliance.errors import ApplianceError
from hardware.virtual.network import VirtualNetwork
from hardware.virtual.sim7600 import Sim7600Emulator
from web_ui import create_app

MODEM_NUMBER = "+359700000001"
PHONE_NUMBER = "+359700000100"


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


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Poll ``predicate`` until it returns something true; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


class Box:
    """A box started as separate processes (`hotline twin` and `hotline engine`)."""

    def __init__(self, data_dir):
        self.data_dir = str(data_dir)
        self.processes = []
        self.engine = ControlClient(os.path.join(self.data_dir, "engine.sock"))

    def start(self, *commands):
        for command in commands:
            log = open(os.path.join(self.data_dir, f"{command}.log"), "ab")
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "appliance.cli", command, "--data", self.data_dir],
                stdout=log, stderr=subprocess.STDOUT))
        wait_for(self.lines_up, timeout=30)

    def lines_up(self):
        try:
            status = self.engine.request("status")
        except ApplianceError:
            return False
        return all(line.get("state") == "up" for line in status["lines"]) and status["lines"]

    def hotline(self, *args, timeout=60):
        """Run the `hotline` command against this box; return the completed process."""
        return subprocess.run([sys.executable, "-m", "appliance.cli", *args, "--data", self.data_dir],
                              capture_output=True, text=True, timeout=timeout)

    def hotline_json(self, *args, timeout=60):
        done = self.hotline(*args, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """The demo box running: virtual twin and engine as their own processes."""
    running = Box(tmp_path_factory.mktemp("box"))
    running.start("twin", "engine")
    yield running
    running.stop()


@pytest.fixture
def app(tmp_path):
    """The web app on an empty data directory (no engine running)."""
    return create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def client(app):
    """A browser-like test client of the web app."""
    return app.test_client()


ADMIN = ("admin", "correct horse battery")


@pytest.fixture
def admin_client(client):
    """A client that went through first-run setup and is logged in as admin."""
    username, password = ADMIN
    response = client.post("/setup", data={"username": username, "password": password, "confirm": password})
    assert response.status_code == 302
    return client
