"""The UI in English, Bulgarian, Ukrainian and Russian: gettext catalogues through Flask-Babel.

The language is the logged-in user's choice (stored with their account), else what the
browser asks for. Catalogues live in web_ui/translations/<lang>/LC_MESSAGES/messages.po;
their compiled .mo files are made from the .po files into the data directory's cache when
the app starts, if missing or older, so neither a checkout nor an install needs a build step.
"""
import glob
import os

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import g, request
from flask_babel import Babel, get_locale

LANGUAGES = {"en": "English", "bg": "Български", "uk": "Українська", "ru": "Русский"}
TRANSLATIONS = os.path.join(os.path.dirname(__file__), "translations")


def init_app(app):
    """Compile the catalogues if needed and install Babel with the user's language.

    The compiled catalogues go to the data directory: the installed package lives in a
    read-only /opt under systemd's ProtectSystem=strict.
    """
    compiled = os.path.join(app.config["DATA_DIR"], "cache", "translations")
    compile_catalogues(compiled)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = compiled
    Babel(app, locale_selector=select_language)
    app.context_processor(lambda: {"languages": LANGUAGES, "current_language": str(get_locale() or "en")})


def select_language():
    """The user's language, else the browser's best match, else English."""
    user = g.get("user")
    if user is not None and user["language"] in LANGUAGES:
        return user["language"]
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def compile_catalogues(target):
    """Write ``target``/<lang>/LC_MESSAGES/messages.mo for each catalogue that is newer (or not compiled)."""
    for po_path in glob.glob(os.path.join(TRANSLATIONS, "*", "LC_MESSAGES", "messages.po")):
        language = os.path.relpath(po_path, TRANSLATIONS).split(os.sep)[0]
        mo_path = os.path.join(target, language, "LC_MESSAGES", "messages.mo")
        if os.path.exists(mo_path) and os.path.getmtime(mo_path) >= os.path.getmtime(po_path):
            continue
        os.makedirs(os.path.dirname(mo_path), exist_ok=True)
        with open(po_path, "rb") as handle:
            catalogue = read_po(handle)
        temp = f"{mo_path}.{os.getpid()}.tmp"
        with open(temp, "wb") as handle:
            write_mo(handle, catalogue)
        os.replace(temp, mo_path)
