"""The prompts page against a running demo box: text-to-speech, uploads, playback, deleting."""
import io
import os
import re
import subprocess
import wave

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from appliance import accounts
from appliance.config import demo_config, validate
from web_ui import create_app
from web_ui.prompts import MAX_UPLOAD_BYTES

from .conftest import ADMIN

DEMO_PROMPTS = validate(demo_config())["prompts"]
PASSWORD = "a long enough password"


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(box):
    """The web app on the running demo box, with an admin, a supervisor and an operator."""
    application = create_app({"DATA_DIR": box.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})
    with application.app_context():
        from web_ui.db import get_db

        accounts.create_user(get_db(), *ADMIN, "admin")
        accounts.create_user(get_db(), "sofia", PASSWORD, "supervisor")
        accounts.create_user(get_db(), "olga", PASSWORD, "operator")
    return application


@pytest.fixture(scope="module")
def clients(app):
    """A logged-in browser per role."""
    logged_in = {}
    for role, (username, password) in {"admin": ADMIN, "supervisor": ("sofia", PASSWORD),
                                       "operator": ("olga", PASSWORD)}.items():
        logged_in[role] = app.test_client()
        assert logged_in[role].post("/login", data={"username": username, "password": password}).status_code == 302
    return logged_in


@pytest.fixture(scope="module")
def web(clients):
    """A browser logged in as the admin."""
    return clients["admin"]



@pytest.fixture(autouse=True)
def demo_prompts_again(engine):
    """Every test leaves the demo's prompts as they were."""
    yield
    if engine.request("config")["config"]["prompts"] != DEMO_PROMPTS:
        assert engine.request("config_put", section="prompts", value=DEMO_PROMPTS)["saved"]


def prompts_in_force(engine):
    return engine.request("config")["config"]["prompts"]


def prompt_files(box):
    """Every file under prompts/ with its size and modification time: what "nothing changed" compares."""
    found = {}
    for folder, _dirs, files in os.walk(os.path.join(box.data_dir, "prompts")):
        for name in files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, box.data_dir)] = (os.path.getsize(path), os.path.getmtime(path))
    return found


def wav_format(path):
    """(rate, channels, sample width, seconds) of a WAV file."""
    with wave.open(path) as wav:
        return wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes() / wav.getframerate()


def made_with_ffmpeg(tmp_path, name, *args):
    """A real audio file made by ffmpeg: a 440 Hz tone, stereo 44.1 kHz."""
    path = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    "-ac", "2", "-ar", "44100", *args, str(path)], check=True, timeout=60)
    return path


def upload(web, prompt_id, language, content, file_name):
    """Post the upload form as a browser does (multipart)."""
    return web.post("/prompts/upload", data={"id": prompt_id, "language": language,
                                             "file": (io.BytesIO(content), file_name)},
                    content_type="multipart/form-data")


def error_text(page, field):
    """The text of the error shown next to ``field`` (id="<field>-error"), or None."""
    match = re.search(rf'id="{re.escape(field)}-error">([^<]*)<', page)
    return match and match.group(1)


# --- the list and playback ---------------------------------------------------------------------


def test_the_page_groups_prompts_by_id_with_a_player_per_language(web):
    page = web.get("/prompts/").get_data(as_text=True)
    row = page[page.index('data-prompt="greeting"'):]
    row = row[:row.index("</tr>")]
    assert 'src="/prompts/en/greeting.wav?v=' in row and 'src="/prompts/bg/greeting.wav?v=' in row
    assert "/prompts/uk/greeting.wav" not in row and "menu main, node welcome" in row
    assert 'data-prompt="goodbye"' in page  # the engine's own prompts, which a configured one replaces
    assert 'href="/prompts/"' in web.get("/").get_data(as_text=True)


@pytest.mark.parametrize("role", ["admin", "supervisor"])
def test_a_prompt_plays_as_wav(clients, box, role):
    response = clients[role].get("/prompts/en/greeting.wav")
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    with open(os.path.join(box.data_dir, "prompts", "en", "greeting.wav"), "rb") as handle:
        assert response.data == handle.read()


@pytest.mark.parametrize("path", [
    "/prompts/en/../config.json", "/prompts/en/..%2fconfig.json", "/prompts/en/%2e%2e/%2e%2e/web-secret.key",
    "/prompts/en/../../web-secret.key.wav", "/prompts/xx/greeting.wav", "/prompts/../prompts/en/greeting.wav",
    "/prompts/en/greeting.txt", "/prompts/en/Greeting.wav", "/prompts/en/greeting%0a.wav",
    "/prompts/en/nothing.wav", "/prompts/music/default.wav", "/prompts/en/sub/greeting.wav",
])
def test_the_player_serves_nothing_but_prompts(web, path):
    assert web.get(path).status_code == 404


def test_a_link_out_of_the_prompts_folder_is_not_followed(web, box):
    link = os.path.join(box.data_dir, "prompts", "en", "sneaky.wav")
    os.symlink(os.path.join(box.data_dir, "web-secret.key"), link)
    try:
        assert web.get("/prompts/en/sneaky.wav").status_code == 404
    finally:
        os.remove(link)


# --- text-to-speech ---------------------------------------------------------------------------


def test_a_typed_prompt_is_spoken_into_a_telephone_wav(web, box, engine):
    text = "Вітаємо на гарячій лінії вступної кампанії."
    response = web.post("/prompts/speak", data={"id": "welcome_ua", "language": "uk", "text": text})
    assert response.status_code == 302
    path = os.path.join(box.data_dir, "prompts", "uk", "welcome_ua.wav")
    rate, channels, width, seconds = wav_format(path)
    assert (rate, channels, width) == (8000, 1, 2) and seconds > 1.0
    assert {"id": "welcome_ua", "language": "uk", "text": text, "source": "text"} in prompts_in_force(engine)
    page = web.get("/prompts/").get_data(as_text=True)
    assert 'src="/prompts/uk/welcome_ua.wav?v=' in page

    edit = web.get("/prompts/uk/welcome_ua/edit").get_data(as_text=True)
    assert text in edit and 'id="prompt-audio"' in edit


@pytest.mark.parametrize("form, field", [
    ({"id": "Bad Id", "language": "en", "text": "Hello"}, "id"),
    ({"id": "hello", "language": "de", "text": "Hallo"}, "language"),
    ({"id": "hello", "language": "en", "text": "  "}, "text"),
])
def test_a_typed_prompt_names_its_bad_field(web, engine, form, field):
    response = web.post("/prompts/speak", data=form)
    assert response.status_code == 400 and error_text(response.get_data(as_text=True), field)
    assert prompts_in_force(engine) == DEMO_PROMPTS


# --- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, args", [
    ("Тема на опашката.mp3", ()), ("hold theme.ogg", ("-c:a", "libvorbis")), ("memo.m4a", ())])
def test_an_upload_is_converted_to_8_khz_mono_in_place(web, box, engine, tmp_path, name, args):
    source = made_with_ffmpeg(tmp_path, name, *args)
    response = upload(web, "hold_theme", "bg", source.read_bytes(), name)
    assert response.status_code == 302, error_text(response.get_data(as_text=True), "file")
    rate, channels, width, seconds = wav_format(os.path.join(box.data_dir, "prompts", "bg", "hold_theme.wav"))
    assert (rate, channels, width) == (8000, 1, 2) and 1.8 < seconds < 2.2
    assert {"id": "hold_theme", "language": "bg", "source": "upload", "file_name": name} in prompts_in_force(engine)
    leftovers = [path for path in prompt_files(box) if ".upload-" in path or path.endswith((".tmp", ".bak"))]
    assert leftovers == []


def test_an_upload_replaces_a_spoken_prompt_and_speaking_it_again_restores_it(web, box, engine, tmp_path):
    path = os.path.join(box.data_dir, "prompts", "bg", "sms_sent.wav")
    with open(path, "rb") as handle:
        spoken = handle.read()
    source = made_with_ffmpeg(tmp_path, "sms.mp3")
    assert upload(web, "sms_sent", "bg", source.read_bytes(), "../../Ана/sms.mp3").status_code == 302
    entry = next(p for p in prompts_in_force(engine) if (p["id"], p["language"]) == ("sms_sent", "bg"))
    assert entry == {"id": "sms_sent", "language": "bg", "source": "upload", "file_name": "sms.mp3"}
    with open(path, "rb") as handle:
        assert handle.read() != spoken
    assert not os.path.exists(path[:-4] + ".txt")

    text = next(p["text"] for p in DEMO_PROMPTS if (p["id"], p["language"]) == ("sms_sent", "bg"))
    assert web.post("/prompts/speak", data={"id": "sms_sent", "language": "bg", "text": text}).status_code == 302
    with open(path, "rb") as handle:
        assert handle.read() == spoken
    assert prompts_in_force(engine) == DEMO_PROMPTS


@pytest.mark.parametrize("content, name", [(b"Dear admissions office,\nthis is not a recording.\n", "letter.mp3"),
                                           (b"", "empty.wav"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "broken.wav")])
def test_a_file_that_is_not_audio_is_refused_and_nothing_changes(web, box, engine, content, name):
    before = prompt_files(box)
    response = upload(web, "greeting", "en", content, name)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert error_text(page, "file").startswith("This file is not audio that the box can read")
    assert prompts_in_force(engine) == DEMO_PROMPTS and prompt_files(box) == before


@pytest.mark.parametrize("size", [MAX_UPLOAD_BYTES + 1, MAX_UPLOAD_BYTES + 2**20])
def test_an_oversize_upload_is_refused_and_nothing_changes(web, box, engine, size):
    """Just over the limit (caught while saving) and well over it (caught before the body is read)."""
    before = prompt_files(box)
    response = upload(web, "greeting", "en", b"\0" * size, "long.wav")
    assert response.status_code == 413
    assert error_text(response.get_data(as_text=True), "file").startswith("The file is larger than 20 MB")
    assert prompts_in_force(engine) == DEMO_PROMPTS and prompt_files(box) == before


def csrf_browser(box, username=None, password=PASSWORD):
    """A browser on the app with CSRF on, as it runs on the box; logged in as ``username`` if given."""
    browser = create_app({"DATA_DIR": box.data_dir, "TESTING": True}).test_client()
    if username:
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").get_data(as_text=True)).group(1)
        browser.post("/login", data={"username": username, "password": password, "csrf_token": token})
    return browser


def oversize_upload(browser, token):
    """Post a file well over the limit; return the response and how much of the body the server read."""
    boundary, body = encode_multipart({"csrf_token": token, "id": "greeting", "language": "en",
                                       "file": FileStorage(io.BytesIO(b"\0" * (MAX_UPLOAD_BYTES + 2**20)),
                                                           "long.wav")})
    stream = io.BytesIO(body)
    response = browser.post("/prompts/upload", input_stream=stream, content_length=len(body),
                            content_type=f"multipart/form-data; boundary={boundary}")
    return response, stream.tell()


def test_an_oversize_upload_is_refused_before_the_csrf_check_reads_a_byte_of_it(app, box, engine):
    """With CSRF on, the CSRF hook parses the form before the view: the limit must hold before it."""
    browser = csrf_browser(box, *ADMIN)
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/prompts/").get_data(as_text=True)).group(1)
    response, read = oversize_upload(browser, token)
    assert response.status_code == 413 and read == 0
    assert error_text(response.get_data(as_text=True), "file").startswith("The file is larger than 20 MB")
    assert prompts_in_force(engine) == DEMO_PROMPTS


@pytest.mark.parametrize("who", ["olga", None])
def test_an_oversize_upload_by_anyone_but_an_admin_shows_them_nothing(app, box, who):
    """The limit strikes before the login guard runs, so its page must check who is asking."""
    browser = csrf_browser(box, who)
    response, _read = oversize_upload(browser, "no token")
    assert response.status_code == 413 and b"greeting" not in response.data and b"<audio" not in response.data


def test_an_upload_without_a_file_names_the_field(web, engine):
    response = web.post("/prompts/upload", data={"id": "hello", "language": "en"},
                        content_type="multipart/form-data")
    assert response.status_code == 400 and error_text(response.get_data(as_text=True), "file")
    assert prompts_in_force(engine) == DEMO_PROMPTS


# --- deleting ----------------------------------------------------------------------------------


def test_a_prompt_a_flow_needs_cannot_be_deleted(web, box, engine):
    before = prompt_files(box)
    response = web.post("/prompts/en/choose_language/delete")
    assert response.status_code == 400
    message = error_text(response.get_data(as_text=True), "delete")
    assert message == "Still needed — flow main, node language, prompt: no prompt &#39;choose_language&#39;"
    assert prompts_in_force(engine) == DEMO_PROMPTS and prompt_files(box) == before


def test_a_prompt_variant_is_deleted_with_its_file(web, box, engine):
    assert web.post("/prompts/speak", data={"id": "spare", "language": "ru", "text": "Запасная."}).status_code == 302
    path = os.path.join(box.data_dir, "prompts", "ru", "spare.wav")
    assert os.path.exists(path)
    assert web.post("/prompts/ru/spare/delete").status_code == 302
    assert not os.path.exists(path) and not os.path.exists(path[:-4] + ".txt")
    assert prompts_in_force(engine) == DEMO_PROMPTS
    assert web.post("/prompts/ru/spare/delete").status_code == 404


# --- who may -------------------------------------------------------------------------------------


ADMIN_ROUTES = [("get", "/prompts/"), ("get", "/prompts/en/greeting/edit"), ("post", "/prompts/speak"),
                ("post", "/prompts/upload"), ("post", "/prompts/en/greeting/delete")]


@pytest.mark.parametrize("method, path", ADMIN_ROUTES + [("get", "/prompts/en/greeting.wav")])
def test_operators_may_not(clients, engine, method, path):
    assert getattr(clients["operator"], method)(path).status_code == 403
    assert prompts_in_force(engine) == DEMO_PROMPTS


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
def test_supervisors_may_listen_but_not_change(clients, method, path):
    assert getattr(clients["supervisor"], method)(path).status_code == 403


@pytest.mark.parametrize("method, path", ADMIN_ROUTES + [("get", "/prompts/en/greeting.wav")])
def test_visitors_are_sent_to_log_in(app, method, path):
    response = getattr(app.test_client(), method)(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
