"""Chromium for the browser tests, and the watch every page they open is under.

Every page opened through ``Watched`` has its console errors, uncaught exceptions and
failed requests collected; ``chromium()`` fails the test at the end of its block on any
the test did not declare with ``expect_error``. A pattern the browser cannot compile, a
missing icon or a script error then fails a test instead of going unseen.

Also here: axe-core run on a page (from node_modules, which `make test` installs) and the
measures of a page on a phone (sideways scrolling, touch targets), for tests/test_a11y.py.
"""
import os
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
# Chromium as root in a closed network: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class BrowserProblems:
    """Console errors, uncaught exceptions and failed requests of the pages watched, to be none at the end."""

    def __init__(self, page=None):
        self.found = []
        self.expected = []  # paths whose error status the test itself provokes (a refused form)
        if page is not None:
            self.watch(page)

    def watch(self, page):
        """Collect ``page``'s problems from now on; returns the page."""
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        return page

    def expect_error(self, path):
        """The next error status from ``path`` is the test's own doing."""
        self.expected.append(path)

    def _console(self, message):
        if message.type != "error":
            return
        where = message.location.get("url") or ""
        if "Failed to load resource" in message.text and any(where.endswith(path) for path in self.expected):
            self.expected = [path for path in self.expected if not where.endswith(path)]
            return
        self.found.append(f"console: {message.text} at {where}")

    def _failed(self, request):
        # Leaving a page while it loads aborts what is still in flight (its live event stream, a
        # stylesheet): the browser's doing, not a defect. A resource the box fails to serve is an
        # error status, which Chromium reports on the console, and a refused connection fails otherwise.
        if request.failure == "net::ERR_ABORTED":
            return
        self.found.append(f"request failed: {request.method} {request.url} {request.failure}")


class Watched:
    """A Playwright browser whose every new page is watched by one ``BrowserProblems``."""

    def __init__(self, browser):
        self.browser = browser
        self.problems = BrowserProblems()

    def new_page(self, **options):
        """A new page (in its own context, as Browser.new_page), watched."""
        return self.problems.watch(self.browser.new_page(**options))

    def new_context_page(self, **options):
        """A new page in a new context with ``options`` (a phone's viewport), watched."""
        return self.problems.watch(self.browser.new_context(**options).new_page())

    def expect_error(self, path):
        """The next error status from ``path`` is the test's own doing."""
        self.problems.expect_error(path)


@contextmanager
def chromium():
    """Headless Chromium, watched; on leaving the block, any problem a page met fails the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        watched = Watched(browser)
        try:
            yield watched
        finally:
            browser.close()
        assert watched.problems.found == [], "the browser met problems:\n" + "\n".join(watched.problems.found)


# --- axe-core, from node_modules -----------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AXE = os.path.join(ROOT, "node_modules", "axe-core", "axe.min.js")
SERIOUS = ("serious", "critical")


def axe_violations(page):
    """axe-core's violations on ``page`` as it is now: [{"id", "impact", "help", "targets"}]."""
    # `make test` installs node_modules: a missing axe is a broken set-up, not a reason to skip.
    assert os.path.exists(AXE), f"{AXE} is missing: run `make node-packages` (npm ci) first"
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=AXE)  # the file's text, inlined: nothing is fetched from anywhere
    results = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": item["id"], "impact": item["impact"], "help": item["help"],
             "targets": [" ".join(map(str, node["target"])) for node in item["nodes"]]} for item in results]


# --- a phone's viewport ----------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}
TOUCH_TARGET = 44  # px: the height a thumb hits without a second try (WCAG 2.5.5)

# What stops a page being used on a phone: wider than the screen, or controls too small to hit.
# A link inside a sentence (beside words of its own parent) is exempt, as in WCAG's inline
# exception, and so is a control hidden from view; a checkbox counts by the label that carries it.
# When the page scrolls sideways, the first few boxes that stick out, or whose text spills out, are named.
_LAYOUT_SCRIPT = r"""(minimum) => {
  const root = document.documentElement;
  const small = [];
  const visible = (el) => { const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== 'hidden'; };
  const inSentence = (el) => el.tagName === 'A' && Array.from(el.parentElement.childNodes).some(
      (node) => node.nodeType === Node.TEXT_NODE && /[^\s·|,()]/.test(node.textContent));
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (el.name ? '[name=' + el.name + ']' : '') + ' "' + (el.textContent || el.value || '').trim().slice(0, 30) + '"';
  for (const el of document.querySelectorAll(
      'header a, header button, main a, main button, main input, main select, main textarea, main summary')) {
    if (el.type === 'hidden' || !visible(el) || inSentence(el)) continue;
    const target = (el.type === 'checkbox' || el.type === 'radio') ? (el.closest('label') || el) : el;
    const height = target.getBoundingClientRect().height;
    if (height < minimum - 0.5) small.push(name(el) + ' ' + Math.round(height) + ' px');
  }
  const wide = [];
  if (root.scrollWidth > root.clientWidth) {
    for (const el of document.querySelectorAll('body *')) {
      if (!visible(el) || el.closest('thead')) continue;
      const right = Math.round(el.getBoundingClientRect().right);
      const spills = el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible';
      if (right > root.clientWidth) wide.push(name(el) + ' to ' + right + ' px');
      else if (spills && el.clientWidth > 0) wide.push(name(el) + ' spills ' + (el.scrollWidth - el.clientWidth) + ' px');
      if (wide.length >= 5) break;
    }
  }
  return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, small: small, wide: wide};
}"""


def phone_layout_problems(page):
    """What on ``page`` does not fit a phone: horizontal scrolling, touch targets under 44 px."""
    measured = page.evaluate(_LAYOUT_SCRIPT, TOUCH_TARGET)
    problems = [f"small touch target: {item}" for item in measured["small"]]
    if measured["scrollWidth"] > measured["clientWidth"]:
        problems.append(f"scrolls sideways: {measured['scrollWidth']} px in {measured['clientWidth']} px; "
                        + "; ".join(measured["wide"]))
    return problems
