"""The web UI in Bulgarian, Ukrainian and Russian: complete catalogues, and the right language per user.

Catalogues: web_ui/translations/<lang>/LC_MESSAGES/messages.po (see web_ui/i18n.py). After adding
or changing a message in the code or a template, refresh and translate them:

    .venv/bin/pybabel extract -F web_ui/babel.cfg -k _l -k lazy_gettext -o web_ui/translations/messages.pot web_ui
    .venv/bin/pybabel update --no-fuzzy-matching -i web_ui/translations/messages.pot -d web_ui/translations
"""
import io
import os
import re
from collections import Counter

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from appliance import accounts
from web_ui import NAV

WEB_UI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web_ui")
TRANSLATIONS = os.path.join(WEB_UI, "translations")
LANGUAGES = ("bg", "uk", "ru")
PLURALS = {"bg": 2, "uk": 3, "ru": 3}
PASSWORD = "correct horse battery"

# %s, %(name)s, %(n)d, %% and {name}: what must survive translation unchanged.
PLACEHOLDER = re.compile(r"%(?:\([A-Za-z_]\w*\))?[-#0 +]*\d*(?:\.\d+)?[sdifr%]|\{[A-Za-z_]?\w*\}")

# The menu of a supervisor and the logout button, as each language shows them.
MENU = {
    "en": ["Dashboard", "Journal", "Reports", "Operators", "Log out"],
    "bg": ["Табло", "Дневник", "Отчети", "Оператори", "Изход"],
    "uk": ["Панель", "Журнал", "Звіти", "Оператори", "Вийти"],
    "ru": ["Панель", "Журнал", "Отчёты", "Операторы", "Выйти"],
}


def catalogue(language):
    with open(os.path.join(TRANSLATIONS, language, "LC_MESSAGES", "messages.po"), "rb") as handle:
        return read_po(handle, locale=language)


def messages(language):
    return [message for message in catalogue(language) if message.id]


def texts(message_id):
    """The singular and plural msgid (or msgstr forms) as a tuple."""
    return message_id if isinstance(message_id, (tuple, list)) else (message_id,)


def extracted_ids():
    """Every msgid the code and templates use now, extracted as the brief's pybabel command does."""
    with open(os.path.join(WEB_UI, "babel.cfg")) as handle:
        method_map, options_map = parse_mapping_cfg(handle, "babel.cfg")
    keywords = dict(DEFAULT_KEYWORDS, _l=None, lazy_gettext=None)
    return {texts(message)[0] for _file, _line, message, _comments, _context
            in extract_from_dir(WEB_UI, method_map, options_map, keywords=keywords)}


# --- the catalogues -----------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_compiles_without_errors(language):
    found = catalogue(language)
    problems = [(message.id, errors) for message, errors in found.check()]
    assert problems == []
    buffer = io.BytesIO()
    write_mo(buffer, found)
    assert buffer.getvalue()
    assert found.num_plurals == PLURALS[language]
    assert f"nplurals={PLURALS[language]};" in found.plural_forms


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_has_no_untranslated_or_fuzzy_message(language):
    found = catalogue(language)
    assert not found.fuzzy, "the header is marked fuzzy"
    untranslated = [message.id for message in messages(language) if not all(texts(message.string))]
    fuzzy = [message.id for message in messages(language) if message.fuzzy]
    assert untranslated == [] and fuzzy == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_translation_keeps_the_placeholders_of_its_msgid(language):
    broken = []
    for message in messages(language):
        ids = texts(message.id)
        for index, string in enumerate(texts(message.string)):
            expected = Counter(PLACEHOLDER.findall(ids[min(index, len(ids) - 1)]))
            if Counter(PLACEHOLDER.findall(string)) != expected:
                broken.append((message.id, string))
    assert broken == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_covers_every_message_in_the_code(language):
    """Nothing the pages show stays English: every extracted msgid is in the catalogue."""
    missing = extracted_ids() - {message.id if isinstance(message.id, str) else message.id[0]
                                 for message in messages(language)}
    assert sorted(missing) == [], "run pybabel extract + update and translate the new messages"


def test_runtime_translated_words_are_in_the_catalogues():
    """Menu labels and roles are translated from variables (``_(label)``), so extraction cannot see them."""
    words = {label for _endpoint, label, _roles in NAV} | set(accounts.ROLES)
    for language in LANGUAGES:
        ids = {message.id for message in messages(language)}
        assert words - ids == set(), language


# --- the pages ------------------------------------------------------------------------------


def nav_and_logout(page):
    """The header's menu and logout button, where the language shows."""
    header = re.search(r"<header>.*?</header>", page, re.S)
    assert header, page[:500]
    return header.group(0)


def make_user(app, username, role, language):
    with app.app_context():
        from web_ui.db import get_db
        accounts.create_user(get_db(), username, PASSWORD, role, language=language)


def log_in(client, username, **headers):
    response = client.post("/login", data={"username": username, "password": PASSWORD}, headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_user_sees_the_dashboard_menu_in_their_language(admin_client, app, language):
    make_user(app, f"sup-{language}", "supervisor", language)
    admin_client.post("/logout")
    # The account's language wins over what the browser asks for.
    log_in(admin_client, f"sup-{language}")
    response = admin_client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert response.status_code == 200
    header = nav_and_logout(response.get_data(as_text=True))
    for word in MENU[language]:
        assert f">{word}<" in header, (language, word)
    for word in MENU["en"]:
        assert f">{word}<" not in header, (language, word)


def test_an_english_user_sees_the_english_menu(admin_client):
    header = nav_and_logout(admin_client.get("/", headers={"Accept-Language": "ru"}).get_data(as_text=True))
    for word in MENU["en"]:
        assert f">{word}<" in header


@pytest.mark.parametrize("accept", ["uk", "uk-UA,uk;q=0.9,ru;q=0.8,en-US;q=0.7"])
def test_a_visitor_sees_the_login_page_in_the_browser_language(admin_client, accept):
    admin_client.post("/logout")
    page = admin_client.get("/login", headers={"Accept-Language": accept}).get_data(as_text=True)
    assert "<h1>Увійти</h1>" in page
    assert "Пароль" in page and "Гаряча лінія" in page
    assert "Log in" not in page and "Password" not in page
    wrong = admin_client.post("/login", data={"username": "admin", "password": "wrong"},
                              headers={"Accept-Language": accept})
    assert wrong.status_code == 401
    assert "Неправильне ім" in wrong.get_data(as_text=True)


def test_a_visitor_without_a_known_language_gets_english(admin_client):
    admin_client.post("/logout")
    page = admin_client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9"}).get_data(as_text=True)
    assert "<h1>Log in</h1>" in page


def test_first_run_setup_follows_the_browser_language(client):
    page = client.get("/setup", headers={"Accept-Language": "bg-BG,bg;q=0.9"}).get_data(as_text=True)
    assert "Настройка на устройството" in page and "парола по подразбиране няма" in page


def test_switching_the_language_on_the_account_page_changes_the_pages(admin_client):
    page = admin_client.get("/account").get_data(as_text=True)
    assert "<h1>My account</h1>" in page
    response = admin_client.post("/account/language", data={"language": "ru"})
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    page = admin_client.get("/account").get_data(as_text=True)
    assert "<h1>Моя учётная запись</h1>" in page
    assert '<option value="ru" selected>' in page
    assert ">Выйти<" in nav_and_logout(admin_client.get("/").get_data(as_text=True))
    response = admin_client.post("/account/language", data={"language": "bg"})
    assert "<h1>Моят акаунт</h1>" in admin_client.get("/account").get_data(as_text=True)
    admin_client.post("/account/language", data={"language": "en"})
    assert "<h1>My account</h1>" in admin_client.get("/account").get_data(as_text=True)


def test_an_unknown_language_is_refused_and_nothing_changes(admin_client):
    response = admin_client.post("/account/language", data={"language": "xx"})
    assert response.status_code == 400
    assert 'id="language-error"' in response.get_data(as_text=True)
    assert "<h1>My account</h1>" in admin_client.get("/account").get_data(as_text=True)


def test_the_language_survives_a_new_login(admin_client, app):
    make_user(app, "operator-bg", "operator", "en")
    admin_client.post("/logout")
    log_in(admin_client, "operator-bg")
    admin_client.post("/account/language", data={"language": "bg"})
    admin_client.post("/logout")
    log_in(admin_client, "operator-bg", **{"Accept-Language": "en"})
    assert "<h1>Моят акаунт</h1>" in admin_client.get("/account").get_data(as_text=True)
