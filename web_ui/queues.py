"""Queues: groups, strategy, timeouts, announcements, music on hold, call-back key."""
from flask import Blueprint, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from appliance.config import STRATEGIES

from .auth import role_required
from .configedit import load_config
from .forms import put, whole
from .listsection import ListSection
from .operators import known_groups

bp = Blueprint("queues", __name__, url_prefix="/queues")

STRATEGY_HELP = {
    "ring_all": _l("Ring all: every ready operator rings at once; the first to accept gets the caller."),
    "round_robin": _l("Round robin: one at a time, starting after whoever was rung last."),
    "longest_idle": _l("Longest idle: the operator who has waited longest since their last call."),
    "fewest_calls": _l("Fewest calls: the operator who has taken the fewest calls so far."),
    "random": _l("Random: a ready operator picked at random."),
    "fixed_order": _l("Fixed order: always in the order the operators are listed."),
}
# (field, label, help, engine default, lowest, highest): the engine's limits, repeated for the browser.
NUMBERS = (
    ("ring_timeout", _l("Ring an operator for, seconds"), _l("5 to 120"), 20, 5, 120),
    ("max_wait", _l("Longest wait in the queue, seconds"),
     _l("10 to 3600; then the menu’s overflow step runs"), 300, 10, 3600),
    ("max_length", _l("Most callers waiting"), _l("1 to 500; more get the overflow step"),
     20, 1, 500),
    ("announce_every", _l("Announce position and wait every, seconds"),
     _l("0 for never, up to 600"), 30, 0, 600),
    ("service_level_seconds", _l("Service level target, seconds"),
     _l("answered within this counts as on time in reports"), 20, 1, 600),
    ("retry_pause", _l("Pause between ringing rounds, seconds"), _l("0 to 60"), 2, 0, 60),
)
TEXT_FIELDS = ("id", "name", "groups", "strategy", "moh", "callback_key", "accept_prompt")
CALLBACK_KEYS = tuple("0123456789*#")


@bp.route("/")
@role_required("admin")
def index():
    """Every queue with its groups and strategy."""
    return _index_page()


def _index_page(errors=None, status=200):
    """The queues page, with ``errors`` shown above the list."""
    config = load_config()["config"]
    return render_template("queues.html", queues=config["queues"], strategy_help=STRATEGY_HELP,
                           errors=errors or {}), status


def queue_form(queue):
    """The form showing ``queue``."""
    pairs = [(key, queue.get(key) or "") for key in ("id", "name", "strategy", "moh", "callback_key", "accept_prompt")]
    pairs += [("groups", group) for group in queue.get("groups", [])]
    pairs += [(field, str(queue.get(field, default))) for field, _label, _help, default, _low, _high in NUMBERS]
    return MultiDict(pairs)


def queue_value(form, old, fields):
    """The queue typed in ``form``, keeping what the page does not show from ``old``."""
    queue = dict(old or {})
    queue["id"] = (old or {}).get("id") or form.get("id", "").strip()
    put(queue, "name", form.get("name", "").strip())
    queue["groups"] = form.getlist("groups")
    for i, group in enumerate(queue["groups"]):
        fields.add(f"groups[{i}]", "groups", group)
    queue["strategy"] = form.get("strategy", "")
    for field, *_rest in NUMBERS:
        put(queue, field, whole(form.get(field)))
    for key in ("moh", "accept_prompt"):
        put(queue, key, form.get(key, "").strip())
    queue["callback_key"] = form.get("callback_key", "").strip()
    return queue


def _form_page(config, form, queue_id, errors, status=200):
    """The add/edit form of one queue."""
    prompts = sorted({prompt["id"] for prompt in config["prompts"]})
    return render_template("queues_form.html", form=form, queue_id=queue_id, errors=errors,
                           groups=known_groups(config), strategies=STRATEGIES, strategy_help=STRATEGY_HELP,
                           numbers=NUMBERS, prompts=prompts, callback_keys=CALLBACK_KEYS), status


def _blank():
    """A new queue's form: the engine's defaults, ringing everyone."""
    defaults = [(field, str(default)) for field, _label, _help, default, _low, _high in NUMBERS]
    return MultiDict(defaults + [("strategy", "ring_all"), ("callback_key", "")])


VIEWS = ListSection("queues", (_blank, queue_form, queue_value), (_index_page, _form_page),
                    {"saved": lambda queue: _("Queue %(name)s saved.", name=queue.get("name") or queue["id"]),
                     "deleted": lambda item_id: _("Queue %(id)s deleted.", id=item_id),
                     "missing": lambda item_id: _("There is no queue %(id)s.", id=item_id)},
                    fallback_id="queue", simple=TEXT_FIELDS + tuple(field for field, *_rest in NUMBERS))
VIEWS.register(bp, "queue_id")
