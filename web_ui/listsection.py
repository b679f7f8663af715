"""One set of create, edit and delete views for a list section of the configuration.

Operators, queues, time conditions and campaigns are each a list of items with an id; their
pages add an item, change one and remove one in the same way: load the configuration in
force, change the list, send it to the engine, and on refusal show the form again with the
message at its input. A page module describes its section with a ``ListSection`` (how an
item becomes a form and back, its pages and texts) and registers the views on its blueprint.
"""
import re

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _

from .auth import role_required
from .configedit import load_config, save_section
from .forms import FieldMap, find_index, new_id


class ListSection:
    """The create/edit/delete views of one list section; page modules give the parts that differ.

    ``convert`` is (blank form for a new item, item -> form, (form, old, fields) -> item);
    ``pages`` is (index page(errors, status), form page(config, form, item id, errors, status));
    ``texts`` maps "missing", "deleted" (given the id) and "saved" (given the item) to the flashed text.
    """

    def __init__(self, section, convert, pages, texts, *, fallback_id, simple=(), action=None):
        self.section, self.fallback_id, self.simple = section, fallback_id, tuple(simple)
        self.blank, self.to_form, self.from_form = convert
        self.index_page, self.form_page = pages
        self.texts = texts
        self.action = action or section
        self.explain_refusal = False  # True: a refusal elsewhere in the configuration names the item needing this one
        self.after_save = None  # called with the engine's answer once saved (to flash its warnings)
        self.index_endpoint = None

    def register(self, bp, id_arg, prefix="", names=("new", "edit", "delete"), roles=("admin",)):
        """Add the three views to ``bp``: <prefix>/new, <prefix>/<id>/edit, <prefix>/<id>/delete."""
        self.index_endpoint = f"{bp.name}.index"
        guard = role_required(*roles)
        views = (self.create, self.edit, self.delete)
        rules = (f"{prefix}/new", f"{prefix}/<{id_arg}>/edit", f"{prefix}/<{id_arg}>/delete")
        methods = (("GET", "POST"), ("GET", "POST"), ("POST",))
        for name, rule, view, allowed in zip(names, rules, views, methods):
            bp.add_url_rule(rule, name, guard(_by_position(view)), methods=allowed)

    def create(self):
        """Add an item: its blank form, or the typed one sent to the engine."""
        config = load_config()["config"]
        if request.method == "GET":
            return self.form_page(config, self.blank(), None, {})
        return self.save(config, None)

    def edit(self, item_id):
        """Change an item: its form, or the typed one sent to the engine."""
        config = load_config()["config"]
        i = find_index(config[self.section], item_id)
        if i is None:
            return self.index_page({"form": self.texts["missing"](item_id)}, 404)
        if request.method == "GET":
            return self.form_page(config, self.to_form(config[self.section][i]), item_id, {})
        return self.save(config, i)

    def delete(self, item_id):
        """Remove an item through the engine; the index page with its refusal if refused."""
        config = load_config()["config"]
        items = config[self.section]
        i = find_index(items, item_id)
        if i is None:
            return self.index_page({"form": self.texts["missing"](item_id)}, 404)
        del items[i]
        answer = save_section(self.section, items, f"{self.action}.delete")
        if not answer["saved"]:
            return self.index_page({"form": refusal_text(answer, config)}, 400)
        flash(self.texts["deleted"](item_id))
        return redirect(url_for(self.index_endpoint))

    def save(self, config, index):
        """Send the typed item to the engine; on refusal show the form again with the message."""
        items = config[self.section]
        old = items[index] if index is not None else None
        fields = FieldMap(self.section, simple=self.simple)
        item = self.from_form(request.form, old, fields)
        if old is None:
            item["id"] = item["id"] or new_id(item.get("name"), {other["id"] for other in items}, self.fallback_id)
            items.append(item)
            index = len(items) - 1
        else:
            items[index] = item
        fields.prefix = f"{self.section}[{index}]"
        answer = save_section(self.section, items, f"{self.action}.{'add' if old is None else 'edit'}")
        if not answer["saved"]:
            errors = fields.errors(answer)
            if self.explain_refusal and "form" in errors:
                errors = {"form": refusal_text(answer, config)}
            return self.form_page(config, request.form, old and old["id"], errors, 400)
        if self.after_save is not None:
            self.after_save(answer)
        flash(self.texts["saved"](item))
        return redirect(url_for(self.index_endpoint))


def _by_position(view):
    """``view`` taking the item id by position, whatever the rule's argument is called."""
    def routed(**kwargs):
        return view(*kwargs.values())
    routed.__name__, routed.__doc__ = view.__name__, view.__doc__
    return routed


def refusal_text(answer, config):
    """The engine's refusal, naming the item that still needs what was changed (a queue, a menu)."""
    return _("The engine refused the change: %(field)s: %(message)s", field=describe_field(answer.get("field"), config),
             message=answer.get("message"))


def describe_field(field, config):
    """A refused field said with its item's name: queues[0].groups[0] -> queues “Bachelor”: groups[0]."""
    match = re.match(r"^(\w+)\[(\d+)\]\.?(.*)$", field or "")
    if not match or match.group(1) not in config or int(match.group(2)) >= len(config[match.group(1)]):
        return field
    entry = config[match.group(1)][int(match.group(2))]
    name = f"{match.group(1)} “{entry.get('name') or entry.get('id')}”"
    return f"{name}, {match.group(3)}" if match.group(3) else name
