"""Messages the code translates at run time from a variable, e.g. ``{{ _(label) }}``.

pybabel cannot see those, so they are listed here for extraction (web_ui/babel.cfg covers
``**.py``). This module is never imported. Keep it in step with:

- the menu labels and groups in web_ui/__init__.py (NAV, NAV_GROUPS), shown by base.html as ``_(label)``;
- the roles in appliance/accounts.py (ROLES), shown as ``_(user.role)`` and ``_(role)``;
- the login errors of web_ui/auth.py, shown by login.html as ``_(error)``.
"""


def N_(message):
    """Mark ``message`` for extraction only."""
    return message


NAV_LABELS = (
    N_("Dashboard"), N_("My calls"), N_("Journal"), N_("Callers"), N_("Reports"), N_("Test call"),
    N_("Lines"), N_("Operators"), N_("Queues"), N_("Menus"), N_("Prompts"), N_("Hours"),
    N_("Settings"), N_("Users"), N_("System"),
)

NAV_GROUPS = (N_("Calls"), N_("Setup"), N_("System"))

ROLES = (N_("admin"), N_("supervisor"), N_("operator"))

LOGIN_ERRORS = (N_("Too many failed attempts: wait a few minutes."), N_("Wrong user name or password."))
