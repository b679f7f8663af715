"""Starting points for a new box: a whole hot-line as ordinary configuration, merged into the one in force.

The onboarding page offers these; applying one adds (or replaces, by id) prompts spoken by
espeak-ng, a time condition, queues and a flow, puts the box's operators into the
template's groups and points the lines at the flow. Nothing is hidden: the result is
changed later on the ordinary pages. ``sections`` gives the sections in the order the
web UI sends them, each step only referring to what an earlier one added, so that the
engine accepts every step on its own.
"""
import copy

# Open round the clock until the opening-hours step (or the hours page) narrows it, so that
# a test call right after applying a template reaches an operator whatever the time.
ALWAYS = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _prompts(prompt_id, texts):
    return [{"id": prompt_id, "language": language, "text": text} for language, text in texts.items()]


ADMISSIONS = {
    "flow": "admissions",
    "hours": "admissions_hours",
    "groups": ["admissions"],
    "prompts": (
        _prompts("adm_greeting", {
            "en": "Welcome to the university admissions hot-line. This call is recorded.",
            "bg": "Добре дошли на горещата линия за прием в университета. Този разговор се записва.",
            "uk": "Вітаємо на гарячій лінії приймальної комісії університету. Ця розмова записується.",
            "ru": "Добро пожаловать на горячую линию приёмной комиссии университета. Этот разговор записывается."})
        + _prompts("adm_menu", {
            "en": "For bachelor programmes, press 1. For master's programmes, press 2. For dormitories, press 3. "
                  "While you wait, press 5 and we will call you back.",
            "bg": "За бакалавърски програми натиснете 1. За магистърски програми натиснете 2. "
                  "За общежития натиснете 3. Докато чакате, натиснете 5 и ние ще ви се обадим.",
            "uk": "Бакалаврські програми — натисніть 1. Магістерські програми — натисніть 2. "
                  "Гуртожитки — натисніть 3. Під час очікування натисніть 5, і ми вам передзвонимо.",
            "ru": "Программы бакалавриата — нажмите 1. Программы магистратуры — нажмите 2. "
                  "Общежития — нажмите 3. Во время ожидания нажмите 5, и мы вам перезвоним."})
        + _prompts("adm_closed", {
            "en": "The admissions hot-line is closed now. We will call you back during opening hours.",
            "bg": "Горещата линия за прием е затворена. Ще ви се обадим в работно време.",
            "uk": "Гаряча лінія приймальної комісії зараз не працює. Ми передзвонимо вам у робочий час.",
            "ru": "Горячая линия приёмной комиссии сейчас закрыта. Мы перезвоним вам в рабочее время."})
    ),
    "time_conditions": [{"id": "admissions_hours", "name": "Admissions hours", "weekly": ALWAYS}],
    "queues": [
        {"id": queue_id, "name": name, "groups": ["admissions"], "strategy": strategy, "ring_timeout": 20,
         "max_wait": 180, "announce_every": 30, "callback_key": "5"}
        for queue_id, name, strategy in (("bachelor", "Bachelor programmes", "round_robin"),
                                         ("master", "Master's programmes", "round_robin"),
                                         ("dormitories", "Dormitories", "ring_all"))
    ],
    "flows": [
        {"id": "admissions", "name": "Admissions hot-line", "start": "hours", "nodes": {
            "hours": {"type": "time", "condition": "admissions_hours", "open": "welcome", "closed": "closed"},
            "welcome": {"type": "play", "prompt": "adm_greeting", "next": "menu"},
            "menu": {"type": "menu", "prompt": "adm_menu", "timeout": 5, "retries": 2, "default": "bachelor",
                     "options": {"1": "bachelor", "2": "master", "3": "dormitories"}},
            "bachelor": {"type": "queue", "queue": "bachelor", "overflow": "voicemail"},
            "master": {"type": "queue", "queue": "master", "overflow": "voicemail"},
            "dormitories": {"type": "queue", "queue": "dormitories", "overflow": "voicemail"},
            "voicemail": {"type": "voicemail", "max_seconds": 60, "next": "bye"},
            "closed": {"type": "callback", "prompt": "adm_closed", "next": "bye"},
            "bye": {"type": "hangup", "prompt": "goodbye"},
        }},
    ],
    "settings": {"missed_sms": "We missed your call to the admissions hot-line and will call you back. "
                               "Пропуснахме обаждането ви и ще ви се обадим."},
    "notify_missed": False,
}

BUSINESS = {
    "flow": "business",
    "hours": "business_hours",
    "groups": ["duty"],
    "prompts": (
        _prompts("biz_greeting", {
            "en": "Hello, thank you for calling. This call is recorded. Please hold, we are putting you through.",
            "bg": "Здравейте, благодарим ви за обаждането. Разговорът се записва. Моля, изчакайте, свързваме ви.",
            "uk": "Доброго дня, дякуємо за дзвінок. Розмова записується. Зачекайте, будь ласка, ми вас з'єднуємо.",
            "ru": "Здравствуйте, спасибо за звонок. Разговор записывается. Пожалуйста, подождите, мы вас соединяем."})
        + _prompts("biz_closed", {
            "en": "We are closed now. Please leave a message after the tone and we will call you back.",
            "bg": "В момента не работим. Моля, оставете съобщение след сигнала и ще ви се обадим.",
            "uk": "Зараз ми не працюємо. Залиште, будь ласка, повідомлення після сигналу, і ми вам передзвонимо.",
            "ru": "Сейчас мы не работаем. Пожалуйста, оставьте сообщение после сигнала, и мы вам перезвоним."})
    ),
    "time_conditions": [{"id": "business_hours", "name": "Business hours", "weekly": ALWAYS}],
    "queues": [
        {"id": "duty", "name": "Whoever is on duty", "groups": ["duty"], "strategy": "ring_all",
         "ring_timeout": 25, "max_wait": 120, "announce_every": 0},
    ],
    "flows": [
        {"id": "business", "name": "Small-business line", "start": "hours", "nodes": {
            "hours": {"type": "time", "condition": "business_hours", "open": "welcome", "closed": "closed"},
            "welcome": {"type": "play", "prompt": "biz_greeting", "next": "duty"},
            "duty": {"type": "queue", "queue": "duty", "overflow": "voicemail"},
            "closed": {"type": "play", "prompt": "biz_closed", "next": "voicemail"},
            "voicemail": {"type": "voicemail", "max_seconds": 90, "next": "bye"},
            "bye": {"type": "hangup", "prompt": "goodbye"},
        }},
    ],
    "settings": {"missed_sms": "Sorry we missed your call. We will call you back soon. "
                               "Съжаляваме, че пропуснахме обаждането ви. Ще ви се обадим скоро."},
    # Missed calls are texted to the operators' mobiles (notifications.sms_to).
    "notify_missed": True,
}

TEMPLATES = {"admissions": ADMISSIONS, "business": BUSINESS}
# Shown, but not offered until the feature exists: the box as a GSM gateway for a PBX (issue 13).
UNAVAILABLE = ("gateway",)
# The order the sections go to the engine: each refers only to what an earlier one added.
ORDER = ("prompts", "time_conditions", "operators", "queues", "flows", "lines", "settings", "notifications")


class TemplateError(ValueError):
    """A template that cannot be applied to this configuration (no such template, no operator)."""


def sections(config, name, first_operator=None):
    """[(section, value)] that turn ``config`` into the template ``name``'s hot-line, in the order to send them.

    ``first_operator`` ({"name", "number"}) is added when the box has no operator yet: the
    template's queues need someone in their groups.
    """
    if name not in TEMPLATES:
        raise TemplateError(f"no template {name!r}")
    template = copy.deepcopy(TEMPLATES[name])
    merged = {
        "prompts": _merge(config["prompts"], template["prompts"], key=lambda p: (p["id"], p["language"])),
        "time_conditions": _merge(config["time_conditions"], template["time_conditions"]),
        "operators": _operators(config["operators"], template["groups"], first_operator),
        "queues": _merge(config["queues"], template["queues"]),
        "flows": _merge(config["flows"], template["flows"]),
        "lines": [_with_flow(line, template["flow"]) for line in config["lines"]],
        "settings": dict(config["settings"], **template["settings"]),
        "notifications": _notifications(config["notifications"], template, _mobiles(config["operators"],
                                                                                    first_operator)),
    }
    return [(section, merged[section]) for section in ORDER if merged[section] != config.get(section)]


def apply(config, name, first_operator=None):
    """``config`` with the template applied (what the engine holds after every section is sent)."""
    document = copy.deepcopy(config)
    document.update(sections(config, name, first_operator))
    return document


def _merge(items, added, key=lambda item: item["id"]):
    """``items`` with ``added`` in place of those with the same key, the others appended."""
    by_key = {key(item): item for item in added}
    merged = [by_key.pop(key(item), item) for item in items]
    return merged + [item for item in added if key(item) in by_key]


def _operators(operators, groups, first_operator):
    """Every operator joins the template's groups; the first operator is made if there is none."""
    if not operators:
        if not first_operator:
            raise TemplateError("add an operator first: the template's queues need someone to ring")
        return [{"id": "op1", "name": first_operator["name"], "number": first_operator["number"],
                 "groups": list(groups)}]
    joined = []
    for operator in operators:
        own = operator.get("groups", [])
        joined.append(dict(operator, groups=own + [group for group in groups if group not in own]))
    return joined


def _with_flow(line, flow_id):
    """The line taking its calls into ``flow_id`` (a line that only dials out is left alone)."""
    if line.get("inbound", True) is False:
        return line
    return dict(line, flow=flow_id)


def _mobiles(operators, first_operator):
    """The operators' mobile numbers (not SIP phones): where missed calls are texted."""
    people = list(operators) or ([first_operator] if first_operator else [])
    return [person["number"] for person in people if not person["number"].startswith("sip:")]


def _notifications(notifications, template, mobiles):
    """Missed calls texted to the operators' mobiles, for a template that wants it and a box that texts nobody yet."""
    if not template["notify_missed"]:
        return notifications
    result = copy.deepcopy(notifications)
    if not result.get("sms_to"):
        result["sms_to"] = mobiles[:3]
    events = result.setdefault("events", ["call.missed", "voicemail"])
    if "call.missed" not in events:
        events.append("call.missed")
    return result
