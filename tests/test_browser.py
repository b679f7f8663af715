"""The web UI in a real browser: Chromium driven by Playwright against `hotline web`."""
import subprocess
import sys

import pytest
from playwright.sync_api import expect, sync_playwright

from .conftest import ADMIN

CHROMIUM = "/usr/bin/chromium"
# Chromium as root in a closed network: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def web_url(box):
    return box.start_web()


def test_setup_dashboard_live_call_and_journal_playback(browser, box, web_url):
    page = browser.new_page()
    page.goto(web_url + "/")
    expect(page).to_have_url(web_url + "/setup")
    username, password = ADMIN
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.fill("input[name=confirm]", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(web_url + "/")
    expect(page.locator('#lines tr[data-line="gsm1"]')).to_contain_text("idle")

    caller = subprocess.Popen([sys.executable, "-m", "appliance.cli", "call", "--line", "gsm1", "--from",
                               "+359888777666", "--hold", "4", "--data", box.data_dir], stdout=subprocess.PIPE)
    # The page refreshes itself: the call shows up without a reload.
    expect(page.locator("#calls tbody")).to_contain_text("+359888777666", timeout=10_000)
    expect(page.locator('#lines tr[data-line="gsm1"]')).to_contain_text("in call")
    caller.communicate(timeout=30)
    expect(page.locator("#calls tbody")).to_contain_text("No calls in progress", timeout=10_000)

    page.click("text=Journal")
    page.click("#journal tbody tr:first-child td:first-child a")
    expect(page.locator("h1")).to_contain_text("Call")
    page.wait_for_function("document.getElementById('recording').readyState >= 1")
    assert page.evaluate("document.getElementById('recording').duration") > 3.5
    page.close()
