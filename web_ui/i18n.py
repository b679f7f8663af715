"""The UI in English, Bulgarian, Ukrainian and Russian: gettext catalogues through Flask-Babel.

The language is the logged-in user's choice (stored with their account), else what the
browser asks for. Catalogues live in web_ui/translations/<lang>/LC_MESSAGES/messages.po;
their compiled .mo files are made from the .po files when the app starts if missing or
older, so a checkout needs no separate build step.
"""
import glob
import os

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import g, request
from flask_babel import Babel

LANGUAGES = {"en": "English", "bg": "Български", "uk": "Українська", "ru": "Русский"}
TRANSLATIONS = os.path.join(os.path.dirname(__file__), "translations")


def init_app(app):
    """Compile the catalogues if needed and install Babel with the user's language."""
    compile_catalogues()
    Babel(app, locale_selector=select_language)
    app.context_processor(lambda: {"languages": LANGUAGES})


def select_language():
    """The user's language, else the browser's best match, else English."""
    user = g.get("user")
    if user is not None and user["language"] in LANGUAGES:
        return user["language"]
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def compile_catalogues():
    """Write messages.mo next to each messages.po that is newer (or has none)."""
    for po_path in glob.glob(os.path.join(TRANSLATIONS, "*", "LC_MESSAGES", "messages.po")):
        mo_path = po_path[:-3] + ".mo"
        if os.path.exists(mo_path) and os.path.getmtime(mo_path) >= os.path.getmtime(po_path):
            continue
        with open(po_path, "rb") as handle:
            catalogue = read_po(handle)
        temp = f"{mo_path}.{os.getpid()}.tmp"
        with open(temp, "wb") as handle:
            write_mo(handle, catalogue)
        os.replace(temp, mo_path)
