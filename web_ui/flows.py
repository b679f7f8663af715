"""Menus: the IVR editor, a readable tree that edits a flow without JSON.

A flow is shown as a tree from its start node; every change (a node, the start, the
name, a new or deleted flow) is sent to the engine as the whole ``flows`` section, and
a refusal comes back naming the field, which the page shows next to that input.
"""
import copy
import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from appliance.config import ID_PATTERN, LANGUAGES
from appliance.flows import DIGITS, NODE_FIELDS, NODE_TYPES, REQUIRED_FIELDS, targets
from appliance.prompts import SYSTEM_PROMPTS

from .auth import role_required
from .configedit import EngineDown, load_config, save_section

bp = Blueprint("flows", __name__, url_prefix="/flows")

TYPE_LABELS = {
    "play": _l("Play a prompt"), "menu": _l("Menu (press a key)"), "collect": _l("Collect digits"),
    "language": _l("Choose a language"), "time": _l("Open hours"), "queue": _l("Queue for operators"),
    "voicemail": _l("Voicemail"), "callback": _l("Call-back request"), "forward": _l("Forward to a number"),
    "sms": _l("Send an SMS"), "hangup": _l("Hang up"),
}

# Every field a node form may show, in the order it shows them.
FIELD_ORDER = ("label", "prompt", "options", "field", "min", "max", "terminator", "text", "number", "condition",
               "queue", "timeout", "retries", "invalid_prompt", "max_seconds",
               "open", "closed", "next", "default", "timeout_next", "overflow")
FIELD_LABELS = {
    "label": _l("Note"), "prompt": _l("Prompt"), "options": _l("Keys"), "field": _l("Save the digits as"),
    "min": _l("Fewest digits"), "max": _l("Most digits"), "terminator": _l("Key that ends the input"),
    "text": _l("SMS text"), "number": _l("Phone number"), "condition": _l("Hours"), "queue": _l("Queue"),
    "timeout": _l("Seconds to wait"), "retries": _l("Repeats before giving up"),
    "invalid_prompt": _l("Prompt for a wrong key"), "max_seconds": _l("Longest message (seconds)"),
    "open": _l("When open, go to"), "closed": _l("When closed, go to"), "next": _l("Then go to"),
    "default": _l("After the repeats, go to"), "timeout_next": _l("Without digits, go to"),
    "overflow": _l("If nobody answers, go to"),
}
TARGET_FIELDS = ("open", "closed", "next", "default", "timeout_next", "overflow")
PROMPT_FIELDS = ("prompt", "invalid_prompt")
INTEGER_FIELDS = ("min", "max", "timeout", "retries", "max_seconds")
TERMINATORS = (("#", "#"), ("*", "*"), ("none", _l("none: wait for the time-out")))
BLANK_OPTION_ROWS = 3  # empty key rows on a form, so keys can be added without JavaScript
LANGUAGE_NAMES = {"en": "English", "bg": "Български", "uk": "Українська", "ru": "Русский"}


# --- pages ----------------------------------------------------------------------------


@bp.route("/")
@role_required("admin")
def index():
    """Every flow, the lines that use it, and a form to create one."""
    return _index_page(load_config()["config"], {}, {})


@bp.route("/", methods=("POST",))
@role_required("admin")
def create():
    """A new flow: its id, name, and a first node that hangs up, ready to be edited."""
    form = {"id": request.form.get("id", "").strip(), "name": request.form.get("name", "").strip()}
    config = load_config()["config"]
    errors = {}
    if not ID_PATTERN.fullmatch(form["id"]):
        errors["id"] = _("Use lower-case letters, digits, - or _, starting with a letter.")
    elif any(flow["id"] == form["id"] for flow in config["flows"]):
        errors["id"] = _("There is a menu %(id)s already.", id=form["id"])
    if errors:
        return _index_page(config, errors, form), 400
    flow = {"id": form["id"], "name": form["name"] or form["id"], "start": "start",
            "nodes": {"start": {"type": "hangup", "prompt": "goodbye"}}}
    answer = save_section("flows", config["flows"] + [flow], "flows.create")
    if not answer["saved"]:
        return _index_page(config, {"id": _refusal(answer, config)}, form), 400
    flash(_("Menu %(id)s created: edit its first node.", id=flow["id"]))
    return redirect(url_for("flows.edit", flow_id=flow["id"]))


@bp.route("/<flow_id>")
@role_required("admin")
def edit(flow_id):
    """The flow as a tree from its start node, with the unreachable nodes listed apart."""
    loaded = load_config()
    _, flow = _find_flow(loaded["config"], flow_id)
    return _editor_page(loaded, flow, {}, {})


@bp.route("/<flow_id>/settings", methods=("POST",))
@role_required("admin")
def settings(flow_id):
    """Rename the flow (its name, or its id while no line uses it) and choose its start node."""
    loaded = load_config()
    config = loaded["config"]
    index_, flow = _find_flow(config, flow_id)
    form = {key: request.form.get(key, "").strip() for key in ("id", "name", "start")}
    errors = _rename_errors(config, flow_id, form["id"])
    if errors:
        return _editor_page(loaded, flow, errors, form), 400
    changed = dict(flow, id=form["id"], name=form["name"] or form["id"], start=form["start"])
    result = _save_flow(config, index_, changed, "flows.settings")
    if result is not True:
        return _editor_page(loaded, flow, _flow_errors(result, changed), form), 400
    flash(_("Menu %(id)s saved.", id=changed["id"]))
    return redirect(url_for("flows.edit", flow_id=changed["id"]))


@bp.route("/<flow_id>/delete", methods=("POST",))
@role_required("admin")
def delete(flow_id):
    """Delete a flow; the engine refuses while a line or campaign uses it."""
    loaded = load_config()
    config = loaded["config"]
    index_, flow = _find_flow(config, flow_id)
    remaining = config["flows"][:index_] + config["flows"][index_ + 1:]
    answer = save_section("flows", remaining, "flows.delete")
    if not answer["saved"]:
        return _editor_page(loaded, flow, {"delete": _refusal(answer, config)}, {}), 400
    flash(_("Menu %(id)s deleted.", id=flow_id))
    return redirect(url_for("flows.index"))


@bp.route("/<flow_id>/nodes/new")
@role_required("admin")
def new_node(flow_id):
    """The form for a node that does not exist yet (its type and id come from the editor)."""
    loaded = load_config()
    config = loaded["config"]
    _, flow = _find_flow(config, flow_id)
    kind = request.args.get("type", "play")
    node_id = request.args.get("node_id", "").strip()
    errors = _new_node_errors(flow, node_id, kind)
    if errors:
        return _editor_page(loaded, flow, errors, {"node_id": node_id, "type": kind}), 400
    return _node_page(config, flow, node_id, kind, _form_values({"type": kind}), {}, new=True)


@bp.route("/<flow_id>/nodes", methods=("POST",))
@role_required("admin")
def add_node(flow_id):
    """Create a node from its form."""
    return _save_node_form(flow_id, request.form.get("node_id", "").strip(), new=True)


@bp.route("/<flow_id>/nodes/<node_id>")
@role_required("admin")
def node(flow_id, node_id):
    """A node's form; ``?type=`` shows the form for another type, keeping the shared fields."""
    loaded = load_config()
    config = loaded["config"]
    _, flow = _find_flow(config, flow_id)
    if node_id not in flow["nodes"]:
        abort(404)
    current = flow["nodes"][node_id]
    kind = request.args.get("type", current["type"])
    if kind not in NODE_TYPES:
        abort(404)
    return _node_page(config, flow, node_id, kind, _form_values(dict(current, type=kind)), {})


@bp.route("/<flow_id>/nodes/<node_id>", methods=("POST",))
@role_required("admin")
def save_node(flow_id, node_id):
    """Save a node's form."""
    return _save_node_form(flow_id, node_id, new=False)


@bp.route("/<flow_id>/nodes/<node_id>/delete", methods=("POST",))
@role_required("admin")
def delete_node(flow_id, node_id):
    """Delete a node; refused (with the node that still leads to it named) while anything points to it."""
    loaded = load_config()
    config = loaded["config"]
    index_, flow = _find_flow(config, flow_id)
    if node_id not in flow["nodes"]:
        abort(404)
    changed = copy.deepcopy(flow)
    del changed["nodes"][node_id]
    if not changed["nodes"]:
        return _editor_page(loaded, flow, {"node-" + node_id: _("A menu needs at least one node.")}, {}), 400
    result = _save_flow(config, index_, changed, "flows.delete_node")
    if result is not True:
        return _editor_page(loaded, flow, _flow_errors(result, changed), {}), 400
    flash(_("Node %(id)s deleted.", id=node_id))
    return redirect(url_for("flows.edit", flow_id=flow_id))


# --- saving -------------------------------------------------------------------------------


def _save_node_form(flow_id, node_id, new):
    """Build the node from the posted form, save the flow, or show the form again with the refusal."""
    loaded = load_config()
    config = loaded["config"]
    index_, flow = _find_flow(config, flow_id)
    kind = request.form.get("type", "")
    if kind not in NODE_TYPES or (not new and node_id not in flow["nodes"]):
        abort(404)
    values = _posted_values(kind)
    errors = _new_node_errors(flow, node_id, kind) if new else {}
    built, row_errors = _node_from_values(kind, values)
    errors.update(row_errors)
    if errors:
        return _node_page(config, flow, node_id, kind, values, errors, new=new, status=400)
    changed = copy.deepcopy(flow)
    changed["nodes"][node_id] = built
    result = _save_flow(config, index_, changed, "flows.node")
    if result is not True:
        errors = _node_errors(result, changed, node_id)
        return _node_page(config, flow, node_id, kind, values, errors, new=new, status=400)
    flash(_("Node %(id)s saved.", id=node_id))
    return redirect(url_for("flows.edit", flow_id=flow_id) + f"#node-{node_id}")


def _save_flow(config, index_, flow, action):
    """Send the flows section with ``flow`` at ``index_``; True, or (index, answer) when refused."""
    flows = copy.deepcopy(config["flows"])
    flows[index_] = flow
    answer = save_section("flows", flows, action)
    return True if answer["saved"] else (index_, answer)


def _node_from_values(kind, values):
    """The node a form describes, and errors found before asking the engine (duplicate keys)."""
    built, errors = {"type": kind}, {}
    for field in fields_of(kind):
        if field == "options":
            built["options"], option_errors = _options_from_rows(values["rows"])
            errors.update(option_errors)
            continue
        raw = values.get(field, "")
        value = raw if field == "text" else raw.strip()
        if field == "terminator":
            # "#" is the engine's default: not written, so an unchanged node stays unchanged.
            if value not in ("", "#"):
                built[field] = "" if value == "none" else value
        elif value and field in INTEGER_FIELDS:
            # Not a number: sent as typed so that the engine's own message names the range.
            built[field] = int(value) if re.fullmatch(r"-?\d{1,6}", value) else value
        elif value.strip():
            built[field] = value
    return built, errors


def _options_from_rows(rows):
    """Key rows as {key: choice}; a row with only one of the two, or a key twice, is an error."""
    options, errors = {}, {}
    for key, choice in rows:
        key, choice = key.strip(), choice.strip()
        if not key and not choice:
            continue
        if key in options:
            errors[f"options.{key}"] = _("Key %(key)s is used twice.", key=key)
        elif not choice:
            errors[f"options.{key}"] = _("Choose where key %(key)s leads.", key=key)
        options[key] = choice
    return options, errors


def _new_node_errors(flow, node_id, kind):
    """Why a new node cannot be made with this id and type, keyed by field."""
    if kind not in NODE_TYPES:
        return {"type": _("Choose a node type.")}
    if not ID_PATTERN.fullmatch(node_id):
        return {"node_id": _("Use lower-case letters, digits, - or _, starting with a letter.")}
    if node_id in flow["nodes"]:
        return {"node_id": _("There is a node %(id)s already.", id=node_id)}
    return {}


def _rename_errors(config, old_id, new_id):
    """A flow id must be well formed, unique, and may change only while nothing refers to it."""
    if not ID_PATTERN.fullmatch(new_id):
        return {"id": _("Use lower-case letters, digits, - or _, starting with a letter.")}
    if new_id == old_id:
        return {}
    if any(flow["id"] == new_id for flow in config["flows"]):
        return {"id": _("There is a menu %(id)s already.", id=new_id)}
    users = [line["id"] for line in config["lines"] if line.get("flow") == old_id]
    users += [campaign["id"] for campaign in config.get("campaigns", []) if campaign.get("flow") == old_id]
    if users:
        return {"id": _("%(users)s use this menu: choose another one for them before changing its id.",
                        users=", ".join(users))}
    return {}


# --- mapping a refusal back to the form --------------------------------------------------


def split_flow_field(field, index_, flow):
    """("node", node_id, rest) or ("flow", None, rest) for a field of flow ``index_``; None if elsewhere."""
    prefix = f"flows[{index_}]"
    if field == prefix:
        return ("flow", None, "")
    if not field.startswith(prefix + "."):
        return None
    rest = field[len(prefix) + 1:]
    if not rest.startswith("nodes."):
        return ("flow", None, rest)
    path = rest[len("nodes."):]
    # Node ids are matched whole, longest first, so an id holding a dot is not cut in two.
    for node_id in sorted(flow["nodes"], key=len, reverse=True):
        if path == node_id or path.startswith(node_id + "."):
            return ("node", node_id, path[len(node_id) + 1:])
    return ("flow", None, rest)


def _node_errors(result, flow, node_id):
    """Errors for the node form: the field of this node, else a message above the form."""
    index_, answer = result
    where = split_flow_field(answer["field"], index_, flow)
    if where and where[0] == "node" and where[1] == node_id:
        return {where[2] or "node": answer["message"]}
    if where and where[0] == "node" and answer["message"].startswith("loop"):
        field = _loop_field(flow, node_id, answer["message"])
        if field:
            return {field: answer["message"]}
    return {"node": _describe(answer["field"], answer["message"], flow, index_)}


def _loop_field(flow, node_id, message):
    """The field of ``node_id`` that closes the loop the engine found (its message lists the cycle)."""
    cycle = [part.strip() for part in message.split(":", 1)[-1].split("→")]
    for here, there in zip(cycle, cycle[1:]):
        if here == node_id:
            silent = NODE_TYPES[flow["nodes"][node_id]["type"]][0]
            return next((field for field in silent if flow["nodes"][node_id].get(field) == there), None)
    return None


def _flow_errors(result, flow):
    """Errors for the editor page: at a node of the tree, at a flow setting, or above it all."""
    index_, answer = result
    where = split_flow_field(answer["field"], index_, flow)
    if where and where[0] == "node":
        return {"node-" + where[1]: _describe(answer["field"], answer["message"], flow, index_)}
    if where and where[2] in ("id", "name", "start"):
        return {where[2]: answer["message"]}
    return {"flow": _describe(answer["field"], answer["message"], flow, index_)}


def _describe(field, message, flow, index_):
    """A refusal in words: "node menu, key 7: no node 'x' in this flow"."""
    where = split_flow_field(field, index_, flow)
    if where is None:
        return f"{describe_field(field)}: {message}"
    kind, node_id, rest = where
    parts = [_("node %(id)s", id=node_id)] if kind == "node" else []
    if rest.startswith("options."):
        parts.append(_("key %(key)s", key=rest[len("options."):]))
    elif rest:
        parts.append(str(FIELD_LABELS.get(rest, rest)).lower())
    return f"{', '.join(parts)}: {message}" if parts else message


def describe_field(field, config=None):
    """A configuration path in words: "lines[0].flow" → "line gsm1, flow" (ids looked up when known)."""
    match = re.match(r"^([a-z_]+)\[(\d+)\]\.?(.*)$", field)
    if not match:
        return field.replace(".", ", ")
    section, position, rest = match.group(1), int(match.group(2)), match.group(3)
    name = section[:-1].replace("_", " ")
    items = (config or {}).get(section) or []
    item_id = items[position].get("id", position) if position < len(items) else position
    rest = re.sub(r"nodes\.([^.]+)", r"node \1", rest)
    rest = re.sub(r"options\.(.)$", r"key \1", rest)
    return f"{name} {item_id}" + (f", {rest.replace('.', ', ')}" if rest else "")


def _refusal(answer, config):
    """An engine refusal as one line of text."""
    return f"{describe_field(answer['field'], config)}: {answer['message']}"


# --- the tree -----------------------------------------------------------------------------


def flow_tree(flow, config):
    """(tree from the start node, trees of the nodes the start never reaches)."""
    shown = set()
    root = _subtree(flow, flow["start"], config, shown)
    orphans = [_subtree(flow, node_id, config, shown) for node_id in flow["nodes"]
               if node_id not in _reachable(flow)]
    return root, [orphan for orphan in orphans if orphan]


def _subtree(flow, node_id, config, shown):
    """A node with its branches; a node met again is a reference to where it is shown."""
    if node_id in shown:
        return None
    shown.add(node_id)
    node = flow["nodes"][node_id]
    branches = []
    for field, target, _needs_input in _ordered_targets(node):
        child = _subtree(flow, target, config, shown) if target in flow["nodes"] else None
        branches.append({"label": branch_label(node, field), "target": target, "child": child,
                         "field": field})
    return {"id": node_id, "node": node, "type_label": TYPE_LABELS.get(node["type"], node["type"]),
            "details": node_details(node, config), "branches": branches}


def _ordered_targets(node):
    """A node's targets as a caller meets them: the keys first (in keypad order), then the fall-backs."""
    def order(item):
        field, _target, needs_input = item
        key = field[len("options."):] if field.startswith("options.") else ""
        return (not needs_input, DIGITS.find(key) if key else 0)
    return sorted(targets(node), key=order)


def _reachable(flow):
    seen, stack = set(), [flow["start"]]
    while stack:
        node_id = stack.pop()
        if node_id in seen or node_id not in flow["nodes"]:
            continue
        seen.add(node_id)
        stack += [target for _field, target, _needs in targets(flow["nodes"][node_id])]
    return seen


def branch_label(node, field):
    """What takes the caller along a branch: "1", "timeout", "open"…"""
    if field.startswith("options."):
        return field[len("options."):]
    labels = {"default": _("no valid key"), "timeout_next": _("timeout"), "open": _("open"),
              "closed": _("closed"), "overflow": _("nobody answers")}
    if field == "next":
        return _("digits entered") if node["type"] == "collect" else _("then")
    return labels.get(field, field)


def node_details(node, config):
    """Short facts about a node for the tree: its prompt, queue, hours, number, text."""
    details = []
    if node.get("prompt"):
        details.append(_("says %(prompt)s", prompt=node["prompt"]) + _prompt_excerpt(config, node["prompt"]))
    if node["type"] == "queue":
        details.append(_("queue %(name)s", name=_name_of(config, "queues", node.get("queue"))))
    if node["type"] == "time":
        details.append(_("hours %(name)s", name=_name_of(config, "time_conditions", node.get("condition"))))
    if node["type"] == "forward":
        details.append(node.get("number", ""))
    if node["type"] == "sms":
        details.append(_("texts “%(text)s”", text=_excerpt(node.get("text", ""))))
    if node["type"] == "collect":
        details.append(_("keeps the digits as %(field)s", field=node.get("field", "")))
    if node["type"] == "language":
        details.append(", ".join(f"{key} → {LANGUAGE_NAMES.get(language, language)}"
                                 for key, language in sorted(node.get("options", {}).items())))
    return details


def _prompt_excerpt(config, prompt_id):
    """The prompt's text in the box's language (or any), cut short, for a reader of the tree."""
    variants = [p for p in config["prompts"] if p["id"] == prompt_id]
    language = config["settings"].get("language", "en")
    variants.sort(key=lambda p: p["language"] != language)
    if variants and variants[0].get("text"):
        return f" (“{_excerpt(variants[0]['text'])}”)"
    if variants:
        return f" ({variants[0].get('file_name') or _('recording')})"
    return f" ({_('built in')})" if prompt_id in SYSTEM_PROMPTS else ""


def _excerpt(text, length=70):
    return text if len(text) <= length else text[:length - 1].rstrip() + "…"


def _name_of(config, section, item_id):
    item = next((item for item in config.get(section, []) if item["id"] == item_id), None)
    return f"{item.get('name') or item_id} ({item_id})" if item else str(item_id)


# --- forms ---------------------------------------------------------------------------------


def fields_of(kind):
    """The fields a node of ``kind`` has, in form order."""
    silent, after_input = NODE_TYPES[kind]
    known = set(("label",) + NODE_FIELDS[kind] + silent + after_input)
    return [field for field in FIELD_ORDER if field in known]


def required_fields(kind):
    """Fields the engine refuses to do without for ``kind``."""
    return set(REQUIRED_FIELDS[kind])  # read off the node's model (appliance/flows.py)


def _form_values(node):
    """A node as the strings its form shows, with its key rows plus blank ones."""
    values = {field: "" if node.get(field) is None else str(node[field]) for field in FIELD_ORDER
              if field != "options"}
    if node.get("terminator") == "":
        values["terminator"] = "none"
    rows = sorted((node.get("options") or {}).items(), key=lambda row: (DIGITS.find(row[0]), row[0]))
    values["rows"] = rows + [("", "")] * BLANK_OPTION_ROWS
    return values


def _posted_values(kind):
    """The posted form as strings, kept as typed so that a refused form shows them again."""
    values = {field: request.form.get(field, "") for field in fields_of(kind) if field != "options"}
    rows = list(zip(request.form.getlist("option_key"), request.form.getlist("option_target")))
    filled = [row for row in rows if row[0].strip() or row[1].strip()]
    values["rows"] = filled + [("", "")] * BLANK_OPTION_ROWS
    return values


def _choices(config, flow):
    """What the selects of a node form offer."""
    prompts = sorted({p["id"] for p in config["prompts"]} | set(SYSTEM_PROMPTS))
    return {"prompts": prompts, "nodes": sorted(flow["nodes"]),
            "queues": [(q["id"], q.get("name") or q["id"]) for q in config["queues"]],
            "conditions": [(c["id"], c.get("name") or c["id"]) for c in config["time_conditions"]],
            "languages": [(code, LANGUAGE_NAMES.get(code, code)) for code in LANGUAGES],
            "keys": list(DIGITS), "terminators": TERMINATORS}


# --- rendering -------------------------------------------------------------------------------


@bp.errorhandler(EngineDown)
def _engine_down(err):
    """Without the engine there is no configuration to show or change: say so."""
    return render_template("flows.html", flows=[], engine_error=str(err), errors={}, form={}), 503


def _find_flow(config, flow_id):
    """(index, flow) of ``flow_id``; 404 when there is none."""
    for position, flow in enumerate(config["flows"]):
        if flow["id"] == flow_id:
            return position, flow
    abort(404)


def _index_page(config, errors, form):
    listed = [{"flow": flow, "lines": [line["id"] for line in config["lines"] if line.get("flow") == flow["id"]]}
              for flow in config["flows"]]
    return render_template("flows.html", flows=listed, engine_error=None, errors=errors, form=form)


def _editor_page(loaded, flow, errors, form):
    """The editor of ``flow`` as the engine has it, with ``errors`` at their places."""
    config = loaded["config"]
    root, orphans = flow_tree(flow, config)
    warnings = [text for text in loaded.get("warnings", []) if text.startswith(f"flow {flow['id']}:")]
    lines = [line["id"] for line in config["lines"] if line.get("flow") == flow["id"]]
    return render_template("flows_edit.html", flow=flow, root=root, orphans=orphans, warnings=warnings,
                           lines=lines, errors=errors, form=form, type_labels=TYPE_LABELS)


def _node_page(config, flow, node_id, kind, values, errors, new=False, status=200):
    """A node's form with ``values`` and ``errors``."""
    page = render_template("flows_node.html", flow=flow, node_id=node_id, kind=kind, new=new, values=values,
                           errors=errors, fields=fields_of(kind), required=required_fields(kind),
                           labels=FIELD_LABELS, type_labels=TYPE_LABELS, choices=_choices(config, flow),
                           target_fields=TARGET_FIELDS, prompt_fields=PROMPT_FIELDS,
                           integer_fields=INTEGER_FIELDS)
    return page, status
