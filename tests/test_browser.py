"""The web UI in a real browser: Chromium driven by Playwright against `hotline web`."""
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from .conftest import ADMIN


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
    # A fresh box goes on to the guided setup; the dashboard is one click away.
    expect(page).to_have_url(web_url + "/onboarding/")
    page.goto(web_url + "/")
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


def test_a_newcomer_sets_up_operators_a_menu_a_test_call_and_reads_the_report(browser, box, web_url):
    """The issue's story, in the browser alone: two operators, a two-option menu, a test call,
    its recording heard, the day's report read."""
    page = browser.new_page()
    log_in(page, web_url)

    # Two operators: Maria's mobile is the demo network's operator phone; Ivan's is not reachable.
    for name, number in (("Maria", "+359700000100"), ("Ivan", "+359700000177")):
        page.goto(web_url + "/operators/new")
        page.fill("input[name=name]", name)
        page.fill("input[name=number]", number)
        page.fill("input[name=new_groups]", "support")
        page.click("#operator-form button[type=submit]")
        expect(page.locator("body")).to_contain_text(name)
    page.goto(web_url + "/queues/new")
    page.fill("input[name=id]", "support")
    page.fill("input[name=name]", "Support")
    page.check("input[name=groups][value=support]")
    page.click("#queue-form button[type=submit]")
    expect(page.locator("body")).to_contain_text("Support")

    # A two-option menu: 1 puts the caller through to Support, 2 says goodbye.
    page.goto(web_url + "/flows/")
    page.fill("form.panel input[name=id]", "twokeys")
    page.fill("form.panel input[name=name]", "Two keys")
    page.locator("form.panel button[type=submit]").click()
    add_node(page, "queue", "support_queue", lambda: page.select_option("select[name=queue]", "support"))

    def menu_fields():
        page.select_option("select[name=prompt]", "greeting")
        page.locator("input[name=option_key]").nth(0).fill("1")
        page.locator("select[name=option_target]").nth(0).select_option("support_queue")
        page.locator("input[name=option_key]").nth(1).fill("2")
        page.locator("select[name=option_target]").nth(1).select_option("start")

    add_node(page, "menu", "choice", menu_fields)
    page.select_option("#flow-settings select[name=start]", "choice")
    page.locator("#flow-settings button[type=submit]").click()
    expect(page.locator("body")).to_contain_text("support_queue")

    # The line runs the new menu.
    page.goto(web_url + "/lines/gsm1/edit")
    page.select_option("#line-form select[name=flow]", "twokeys")
    page.locator("#line-form button[type=submit]").click()
    expect(page.locator("body")).not_to_contain_text("error")

    # A test call from the panel: press 1, wait for Maria, talk; watch it live.
    page.goto(web_url + "/testcall")
    page.select_option("#ring-form select[name=line]", "gsm1")
    page.fill("#ring-form input[name=from]", "+359888555444")
    page.fill("#ring-form input[name=digits]", "1")
    page.fill("#ring-form input[name=hold]", "16")
    page.locator("#ring-form button[type=submit]").click()
    expect(page.locator("#watch")).to_contain_text("support", timeout=20_000)
    expect(page.locator("#watch")).to_contain_text("operator answered", timeout=40_000)
    expect(page.locator("#watch-outcome")).to_contain_text("Outcome: answered", timeout=40_000)

    # The journal has it, put through to Maria, with a recording the browser can play.
    page.click("#journal-link")
    expect(page.locator("body")).to_contain_text("+359888555444")
    expect(page.locator("body")).to_contain_text("maria")
    page.wait_for_function("document.getElementById('recording') && document.getElementById('recording').readyState >= 1",
                           timeout=30_000)
    assert page.evaluate("document.getElementById('recording').duration") > 5
    page.fill("textarea[name=note]", "Asked about the bachelor programme; call back with the dates.")
    page.click("text=Add the note")
    expect(page.locator("#notes")).to_contain_text("call back with the dates")

    # The day's report counts it as offered and answered.
    page.goto(web_url + "/reports/?group_by=queue")
    support_row = page.locator("table tr", has_text="Support").first
    expect(support_row).to_be_visible()
    cells = support_row.locator("td").all_inner_texts()
    assert "1" in cells
    page.close()


def log_in(page, web_url):
    """Log in as the admin made by the first test (or make it, on a fresh box)."""
    page.goto(web_url + "/login")
    if page.url.endswith("/setup"):
        page.fill("input[name=confirm]", ADMIN[1])
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(web_url) + "/(onboarding/)?$"))


def add_node(page, kind, node_id, fill):
    """Add a node to the flow open in ``page`` through the editor's forms."""
    flow_url = page.url
    page.select_option("select[name=type]", kind)
    page.fill("input[name=node_id]", node_id)
    page.click("text=Next: its settings")
    fill()
    page.locator("#node-form button[type=submit]").click()
    page.goto(flow_url)
    expect(page.locator("body")).to_contain_text(node_id)
