"""Accounts on the page: first-run setup, login, logout, and the guard on every route."""
import functools
import threading
import time

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from appliance import accounts

from .db import get_db

bp = Blueprint("auth", __name__)

# Endpoints a visitor may reach without logging in; everything else needs a session.
PUBLIC_ENDPOINTS = {"auth.setup", "auth.login", "static"}
# app.extensions key: {path prefix: guard} for parts of the site that authenticate otherwise (the API's tokens).
PATH_GUARDS = "hotline_path_guards"


def init_app(app):
    """Set up the failed-login limiter and the ``user`` every template sees."""
    app.extensions["login_limiter"] = LoginLimiter(app.config["LOGIN_ATTEMPTS"], app.config["LOGIN_WINDOW_SECONDS"])
    app.context_processor(lambda: {"user": g.get("user")})


def guard_paths(app, prefix, guard):
    """Let ``guard`` decide every request under ``prefix`` instead of the session guard (it may call that)."""
    app.extensions.setdefault(PATH_GUARDS, {})[prefix] = guard


@bp.before_app_request
def load_logged_in_user():
    """Before every request: the user of the session, or setup, login or 401 for a visitor."""
    for prefix, guard in current_app.extensions.get(PATH_GUARDS, {}).items():
        if request.path == prefix or request.path.startswith(prefix + "/"):
            return guard()
    return session_guard()


def session_guard():
    """``g.user`` from the session; a redirect to setup or login (401 under /api/) when there is none."""
    g.user = None
    user_id = session.get("user_id")
    if user_id is not None:
        g.user = accounts.get_user(get_db(), user_id)
        # The account is gone, or a restored journal gave its id to someone else.
        if g.user is None or g.user["username"] != session.get("username"):
            g.user = None
            session.clear()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not accounts.count_users(get_db()):
        return redirect(url_for("auth.setup"))
    if g.user is None:
        if request.path.startswith("/api/"):
            abort(401)
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
    return None


def role_required(*roles):
    """Let only users with one of ``roles`` through; others get 403."""
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.user is None or g.user["role"] not in roles:
                abort(403)
            return view(*args, **kwargs)
        return wrapped
    return decorator


@bp.route("/setup", methods=("GET", "POST"))
def setup():
    """First run: create the admin account (there is no default password)."""
    if accounts.count_users(get_db()):
        return redirect(url_for("auth.login"))
    errors = {}
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            errors["confirm"] = _("The two passwords differ.")
        else:
            try:
                user_id = accounts.create_first_admin(get_db(), username, password)
            except accounts.AccountError as err:
                errors[err.field] = str(err)
            else:
                _log_in(user_id)
                flash(_("The admin account is ready."))
                return redirect(url_for("onboarding.index"))  # the guided setup comes next
    return render_template("setup.html", errors=errors), 400 if errors else 200


@bp.route("/login", methods=("GET", "POST"))
def login():
    """Log in with a user name and password; repeated failures are slowed down."""
    if not accounts.count_users(get_db()):
        return redirect(url_for("auth.setup"))
    error = None
    if request.method == "POST":
        username = request.form.get("username", "")
        limiter = current_app.extensions["login_limiter"]
        key = (request.remote_addr, username.strip().lower())
        if limiter.blocked(key):
            return render_template("login.html", error="Too many failed attempts: wait a few minutes."), 429
        user = accounts.authenticate(get_db(), username, request.form.get("password", ""))
        if user is None:
            limiter.failed(key)
            error = "Wrong user name or password."
        else:
            limiter.clear(key)
            _log_in(user["id"])
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), 401 if error else 200


@bp.route("/logout", methods=("POST",))
def logout():
    """End the session."""
    session.clear()
    return redirect(url_for("auth.login"))


def _log_in(user_id):
    session.clear()
    session.permanent = True
    session["user_id"] = user_id
    session["username"] = accounts.get_user(get_db(), user_id)["username"]


def _safe_next(target):
    """Only local paths: a login link must not send anyone to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.index")


class LoginLimiter:
    """Counts failed logins per (address, user name) in a sliding window."""

    def __init__(self, attempts, window):
        self.attempts = attempts
        self.window = window
        self._failures = {}
        self._lock = threading.Lock()

    def blocked(self, key):
        """True while ``key`` has used up its attempts."""
        with self._lock:
            return len(self._recent(key)) >= self.attempts

    def failed(self, key):
        """Count one failure."""
        with self._lock:
            self._failures[key] = self._recent(key) + [time.monotonic()]

    def clear(self, key):
        """Forget failures after a good login."""
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key):
        cutoff = time.monotonic() - self.window
        return [t for t in self._failures.get(key, []) if t > cutoff]
