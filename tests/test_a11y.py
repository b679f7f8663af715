"""Every page in every role, in Chromium: axe-core finds nothing serious at desktop width or on a
phone, and each page fits the phone.

The pages are found as a user finds them, by following the links from the dashboard, one
address per view; the few only a form leads to are added by hand. The pages the guide
(docs/user-guide.md) shows are photographed on the way, so its screenshots stay true.
"""
import os
import tempfile
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import expect
from werkzeug.exceptions import HTTPException

from appliance import accounts
from appliance.journal import JOURNAL_FILE, connect
from web_ui import create_app

from .browser import PHONE, ROOT, SERIOUS, axe_violations, chromium, phone_layout_problems
from .conftest import ADMIN, Box

PASSWORD = "a long enough password"
USERS = {"admin": ADMIN, "supervisor": ("super", PASSWORD), "operator": ("olga", PASSWORD)}
# Views that are no page of their own: data, streams, downloads, and pieces a page loads into itself.
NOT_PAGES = {"static", "dashboard.events", "dashboard.api_status", "dashboard.api_wallboard", "journal.export_csv",
             "journal.recording", "reports.export", "prompts.audio", "me.panel", "me.note_form"}
# Pages only a form leads to (a GET form, or a step of the guide).
BY_FORM = {"admin": ["/flows/main/nodes/new?type=menu&node_id=extra", "/onboarding/basics", "/onboarding/lines",
                     "/onboarding/template", "/onboarding/people", "/onboarding/test"]}
SCREENSHOTS = os.path.join(ROOT, "docs", "img")
# The pages docs/user-guide.md shows: (role, view, file); the operator's on a phone.
DESKTOP_SHOTS = {("admin", "dashboard.index"): "dashboard.png", ("admin", "journal.index"): "journal.png",
                 ("admin", "flows.edit"): "flows-editor.png", ("admin", "onboarding.index"): "onboarding.png"}
PHONE_SHOTS = {("operator", "me.index"): "operator-phone.png"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo box on a fresh data directory with its web UI; a call in the journal; no accounts yet."""
    box = Box(tmp_path_factory.mktemp("a11y"))
    box.start("twin", "engine")
    try:
        url = box.start_web()
        call = box.hotline("call", "--line", "gsm1", "--from", "+359888777666", "--hold", "2")
        assert call.returncode == 0, call.stderr
        yield box, url
    finally:
        box.stop()


@pytest.fixture(scope="module")
def accounts_made(site):
    """The first admin made in the browser (its first-run page checked on the way), then the other roles."""
    box, url = site
    with chromium() as browser:
        page = browser.new_page()
        for path in ("/setup", "/login"):
            page.goto(url + path)
            assert_no_serious_violations(page, path)
        page.goto(url + "/setup")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.fill("input[name=confirm]", ADMIN[1])
        page.click("button[type=submit]")
        expect(page).to_have_url(url + "/onboarding/")
    conn = connect(os.path.join(box.data_dir, JOURNAL_FILE))
    try:
        accounts.create_user(conn, *USERS["supervisor"], "supervisor")
        accounts.create_user(conn, *USERS["operator"], "operator", operator_id="op1")
    finally:
        conn.close()
    return url


@pytest.fixture(scope="module")
def views():
    """Flask's map of the web UI's addresses, to name the view an address shows."""
    with tempfile.TemporaryDirectory() as data_dir:
        return create_app({"DATA_DIR": data_dir, "TESTING": True}).url_map.bind("localhost")


@pytest.mark.parametrize("role", sorted(USERS))
def test_axe_finds_no_serious_or_critical_violation_on_any_page(role, accounts_made, views, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    for view, path in crawl(page, accounts_made, role, views):
        assert_no_serious_violations(page, f"{role} {path}")
        if (role, view) in DESKTOP_SHOTS:
            screenshot(page, DESKTOP_SHOTS[role, view])


@pytest.mark.parametrize("role", sorted(USERS))
def test_every_page_fits_a_phone_without_sideways_scrolling_with_44px_targets_and_no_serious_violation(
        role, accounts_made, views, browser):
    """At 390x844 the tables turn into cards and the menu folds: axe looks again at what the phone shows."""
    page = browser.new_context_page(viewport=PHONE, is_mobile=True, has_touch=True)
    problems = {}
    for view, path in crawl(page, accounts_made, role, views):
        found = phone_layout_problems(page) + serious_violations(page)
        if found:
            problems[path] = found
        if (role, view) in PHONE_SHOTS:
            screenshot(page, PHONE_SHOTS[role, view])
    assert problems == {}, "\n".join(f"{role} {path}: {item}" for path, items in problems.items() for item in items)


def test_the_operators_page_and_the_dashboard_collapse_their_tables_into_cards_on_a_phone(accounts_made, browser):
    page = browser.new_context_page(viewport=PHONE, is_mobile=True, has_touch=True)
    log_in(page, accounts_made, "operator")
    cards = 0
    for path in ("/", "/me"):
        page.goto(accounts_made + path)
        tables = page.locator("main table")
        cards += tables.count()
        for index in range(tables.count()):
            # A card: its header row takes no room (screen readers still read it), each cell names its column.
            table = tables.nth(index)
            if table.locator("thead").count():
                assert table.locator("thead").evaluate("head => head.getBoundingClientRect().height") <= 1
            cell = table.locator("tbody td[data-label]:not(:empty)").first  # an empty cell is not shown at all
            if cell.count():
                label = cell.evaluate("td => getComputedStyle(td, '::before').content")
                assert cell.get_attribute("data-label") in label
    assert cards > 0


# --- helpers -----------------------------------------------------------------------------------


def serious_violations(page):
    """axe's serious and critical violations on ``page``, each in its words and where."""
    return [f"{item['impact']} {item['id']}: {item['help']} at {', '.join(item['targets'][:3])}"
            for item in axe_violations(page) if item["impact"] in SERIOUS]


def assert_no_serious_violations(page, where):
    """Fail with axe's words on any serious or critical violation on ``page``."""
    serious = serious_violations(page)
    assert serious == [], f"{where}: " + "\n".join(serious)


def log_in(page, url, role):
    """Log ``page`` in as the test's user of ``role``."""
    username, password = USERS[role]
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url


def crawl(page, url, role, views):
    """Log in as ``role`` and open every page its links (and BY_FORM) reach, one address per view;
    yields (view, path) with ``page`` showing it."""
    log_in(page, url, role)
    queue, seen = ["/", *BY_FORM.get(role, [])], set()
    while queue:
        path = queue.pop(0)
        view = view_of(views, path)
        if view is None or view in seen:
            continue
        seen.add(view)
        response = page.goto(url + path)
        assert response.ok, f"{role} {path}: {response.status}"
        yield view, path
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
            target = urlsplit(urljoin(url + path, href))
            if target.netloc == urlsplit(url).netloc:
                queue.append(target.path + (f"?{target.query}" if target.query else ""))
    assert "dashboard.index" in seen and len(seen) > (10 if role == "admin" else 2), seen


def view_of(views, path):
    """The view ``path`` shows, or None for an address that is not a page of its own."""
    try:
        view, _ = views.match(urlsplit(path).path, method="GET")
    except HTTPException:  # not found, a redirect, a method the page does not take: nothing to check
        return None
    return None if view in NOT_PAGES or view.startswith("api.") else view


def screenshot(page, name):
    """The page as the user guide shows it (a live page once its event stream is up)."""
    if page.locator("#live-state").count():
        expect(page.locator("#live-state")).to_have_text("live", timeout=10_000)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=True, animations="disabled")


def test_an_empty_dashboard_says_what_to_do_next(admin_client):
    """No engine, so nothing to list: each empty table leads the admin to the page that fills it."""
    page = admin_client.get("/").get_data(as_text=True)
    for link in ('<a href="/lines/new">Add a line</a>', '<a href="/operators/new">Add the first operator</a>',
                 '<a href="/testcall">Make a test call</a>'):
        assert link in page


def test_the_user_guide_shows_every_screenshot_the_tests_take():
    with open(os.path.join(ROOT, "docs", "user-guide.md"), encoding="utf-8") as handle:
        guide = handle.read()
    for name in [*DESKTOP_SHOTS.values(), *PHONE_SHOTS.values()]:
        assert f"(img/{name})" in guide, name
