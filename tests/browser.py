"""Chromium for the browser tests, and the watch every page they open is under.

Every page opened through ``Watched`` has its console errors, uncaught exceptions and
failed requests collected; ``chromium()`` fails the test at the end of its block on any
the test did not declare with ``expect_error``. A pattern the browser cannot compile, a
missing icon or a script error then fails a test instead of going unseen.
"""
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
