"""Users and API tokens: accounts, roles, languages; and /account, where anyone changes their own."""
from flask import Blueprint, abort, flash, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance import accounts

from .auth import role_required
from .configedit import EngineDown, audit, load_config
from .db import get_db

bp = Blueprint("users", __name__)

ANYONE = ("admin", "supervisor", "operator")


# --- the admin's page -------------------------------------------------------------------


@bp.route("/users/")
@role_required("admin")
def index():
    """Every account and API token, with the forms to add them."""
    return _index_page()


@bp.route("/users/create", methods=("POST",))
@role_required("admin")
def create():
    """Add an account."""
    form = request.form
    operators = operator_choices()
    errors = _password_errors(form)
    errors.update(_operator_errors(form.get("operator_id", ""), operators))
    if not errors:
        try:
            accounts.create_user(get_db(), form.get("username", ""), form.get("password", ""), form.get("role", ""),
                                 form.get("language", "en"), form.get("operator_id"))
        except accounts.AccountError as err:
            errors[err.field] = str(err)
    if errors:
        return _index_page(errors=errors, operators=operators), 400
    username = form["username"].strip()
    audit("users.create", {"username": username, "role": form["role"], "language": form.get("language", "en"),
                           "operator_id": form.get("operator_id") or None})
    flash(_("The user %(name)s was created.", name=username))
    return redirect(url_for("users.index"))


@bp.route("/users/<int:user_id>", methods=("GET", "POST"))
@role_required("admin")
def edit(user_id):
    """Change an account's role, UI language and linked operator."""
    account = _account_or_404(user_id)
    operators = operator_choices()
    errors = {}
    if request.method == "POST":
        form = request.form
        role = form.get("role", "")
        errors.update(_operator_errors(form.get("operator_id", ""), operators))
        if user_id == g.user["id"] and role != "admin":
            errors["role"] = _("You cannot take away your own admin role: ask another admin.")
        if not errors:
            try:
                accounts.update_user(get_db(), user_id, role, form.get("language", ""), form.get("operator_id"))
            except accounts.AccountError as err:
                errors[err.field] = str(err)
        if not errors:
            audit("users.update", {"username": account["username"], "role": role, "language": form["language"],
                                   "operator_id": form.get("operator_id") or None})
            flash(_("The user %(name)s was saved.", name=account["username"]))
            return redirect(url_for("users.index"))
    return _edit_page(account, errors, operators)


@bp.route("/users/<int:user_id>/password", methods=("POST",))
@role_required("admin")
def reset_password(user_id):
    """Give an account a new password (an admin resetting someone else's needs no old one)."""
    account = _account_or_404(user_id)
    if user_id == g.user["id"]:
        return redirect(url_for("users.account"))  # one's own goes through /account, old password and all
    errors = _password_errors(request.form)
    if not errors:
        try:
            accounts.set_password(get_db(), user_id, request.form["password"], actor=g.user)
        except accounts.AccountError as err:
            errors[err.field] = str(err)
    if errors:
        return _edit_page(account, errors, operator_choices())
    audit("users.password_reset", {"username": account["username"]})
    flash(_("The password of %(name)s was reset.", name=account["username"]))
    return redirect(url_for("users.index"))


@bp.route("/users/<int:user_id>/delete", methods=("POST",))
@role_required("admin")
def delete(user_id):
    """Delete an account: never the last admin, never one's own."""
    account = _account_or_404(user_id)
    try:
        accounts.delete_user(get_db(), user_id, actor_id=g.user["id"])
    except accounts.AccountError as err:
        return _edit_page(account, {"delete": str(err)}, operator_choices())
    audit("users.delete", {"username": account["username"], "role": account["role"]})
    flash(_("The user %(name)s was deleted.", name=account["username"]))
    return redirect(url_for("users.index"))


@bp.route("/users/tokens", methods=("POST",))
@role_required("admin")
def create_token():
    """Make an API token and show it this once (it is stored only as a hash)."""
    name, role = request.form.get("name", ""), request.form.get("role", "")
    try:
        token = accounts.create_token(get_db(), name, role, g.user["username"])
    except accounts.AccountError as err:
        return _index_page(errors={f"token_{err.field}": str(err)}), 400
    audit("tokens.create", {"name": name.strip(), "role": role})
    response = make_response(_index_page(new_token={"name": name.strip(), "role": role, "token": token}))
    response.headers["Cache-Control"] = "no-store"  # the token must not linger in a cache
    return response


@bp.route("/users/tokens/<int:token_id>/revoke", methods=("POST",))
@role_required("admin")
def revoke_token(token_id):
    """Revoke an API token for good."""
    token = next((t for t in accounts.list_tokens(get_db()) if t["id"] == token_id), None)
    if token is None:
        abort(404)
    if accounts.revoke_token(get_db(), token_id):
        audit("tokens.revoke", {"name": token["name"], "id": token_id})
        flash(_("The token %(name)s was revoked.", name=token["name"]))
    return redirect(url_for("users.index"))


# --- one's own account --------------------------------------------------------------------


@bp.route("/account")
@role_required(*ANYONE)
def account():
    """The logged-in user's own password and UI language."""
    return _account_page({})


@bp.route("/account/password", methods=("POST",))
@role_required(*ANYONE)
def account_password():
    """Change one's own password: the current one is needed."""
    errors = _password_errors(request.form)
    if not errors:
        try:
            accounts.set_password(get_db(), g.user["id"], request.form["password"],
                                  old_password=request.form.get("old_password", ""), actor=g.user)
        except accounts.AccountError as err:
            errors[err.field] = str(err)
    if errors:
        return _account_page(errors), 400
    audit("account.password", {"username": g.user["username"]})
    flash(_("Your password was changed."))
    return redirect(url_for("users.account"))


@bp.route("/account/language", methods=("POST",))
@role_required(*ANYONE)
def account_language():
    """Choose the language of one's own pages."""
    language = request.form.get("language", "")
    try:
        accounts.set_language(get_db(), g.user["id"], language)
    except accounts.AccountError as err:
        return _account_page({err.field: str(err)}), 400
    audit("account.language", {"username": g.user["username"], "language": language})
    return redirect(url_for("users.account"))


# --- helpers ---------------------------------------------------------------------------


def operator_choices():
    """[(id, name)] of the configuration's operators, or None while the engine does not answer."""
    try:
        operators = load_config()["config"].get("operators", [])
    except EngineDown:
        return None
    return [(operator["id"], operator.get("name") or operator["id"]) for operator in operators]


def _operator_errors(operator_id, operators):
    """An operator link must name a configured operator (when the configuration can be read)."""
    operator_id = (operator_id or "").strip()
    if operator_id and operators is not None and operator_id not in {op_id for op_id, _name in operators}:
        return {"operator_id": _("There is no operator %(id)s in the configuration.", id=operator_id)}
    return {}


def _password_errors(form):
    if form.get("password", "") != form.get("confirm", ""):
        return {"confirm": _("The two passwords differ.")}
    return {}


def _account_or_404(user_id):
    found = accounts.get_user(get_db(), user_id)
    if found is None:
        abort(404)
    return found


def _index_page(errors=None, operators=False, new_token=None):
    if operators is False:
        operators = operator_choices()
    conn = get_db()
    return render_template("users.html", users=accounts.list_users(conn), tokens=accounts.list_tokens(conn),
                           roles=accounts.ROLES, operators=operators, errors=errors or {}, new_token=new_token,
                           admins=accounts.count_admins(conn))


def _edit_page(account, errors, operators):
    last_admin = account["role"] == "admin" and accounts.count_admins(get_db()) <= 1
    page = render_template("users_edit.html", account=account, roles=accounts.ROLES, operators=operators,
                           errors=errors, last_admin=last_admin)
    return page, 400 if errors else 200


def _account_page(errors):
    return render_template("users_account.html", errors=errors)
