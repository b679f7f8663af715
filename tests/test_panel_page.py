"""The front panel's pins on the Settings page, through the real engine."""
import pytest

from web_ui import create_app

from .conftest import ADMIN


@pytest.fixture(scope="module")
def web(box):
    app = create_app({"DATA_DIR": box.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    client.post("/setup", data={"username": ADMIN[0], "password": ADMIN[1], "confirm": ADMIN[1]})
    return client


def test_the_panel_is_saved_and_shown(web, box):
    form = {"enabled": "on", "status_led": "5", "line_leds": "12, 13", "button": "6", "buzzer": "",
            "closed_switch": "office", "hold_seconds": "10"}
    response = web.post("/settings/panel", data=form)
    assert response.status_code == 302
    panel = box.engine.request("config")["config"]["panel"]
    assert (panel["enabled"], panel["status_led"], panel["line_leds"], panel["button"], panel["buzzer"],
            panel["closed_switch"]) == (True, 5, [12, 13], 6, None, "office")
    page = web.get("/settings/").get_data(as_text=True)
    assert 'value="12, 13"' in page and 'id="panel-enabled" checked' in page


@pytest.mark.parametrize("change, field", [({"line_leds": "12, 99"}, "panel-line_leds"),
                                           ({"button": "5"}, "panel-form"),
                                           ({"status_led": "x"}, "panel-status_led")])
def test_a_refused_panel_names_the_field_and_changes_nothing(web, box, change, field):
    before = box.engine.request("config")["config"]["panel"]
    form = {"enabled": "on", "status_led": "5", "line_leds": "12", "button": "6", "hold_seconds": "10", **change}
    response = web.post("/settings/panel", data=form)
    assert response.status_code == 400 and f'id="{field}-error"' in response.get_data(as_text=True)
    assert box.engine.request("config")["config"]["panel"] == before
