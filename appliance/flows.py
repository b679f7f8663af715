"""IVR flows: a graph of nodes per line, checked before the box accepts it.

A flow is ``{"id", "name", "start", "nodes": {node_id: node}}``. Each node has a
``type`` and the targets it may go to next. The checks: every target, prompt, queue,
time condition and language exists; no loop can spin without the caller pressing a
key (a play → time → play cycle would hold a line forever); nodes the start cannot
reach are reported as warnings, since a technician often drafts a branch before
linking it.
"""
from .errors import ConfigError

DIGITS = "0123456789*#"

# type -> (fields that name another node reached without caller input,
#          fields that name a node reached only after the caller pressed keys)
NODE_TYPES = {
    "play": (("next",), ()),
    "menu": (("default",), ("options",)),
    "collect": (("timeout_next",), ("next",)),
    "language": (("next",), ()),
    "time": (("open", "closed"), ()),
    "queue": (("overflow",), ()),
    "voicemail": (("next",), ()),
    "callback": (("next",), ()),
    "forward": (("next",), ()),
    "sms": (("next",), ()),
    "hangup": ((), ()),
}

# Fields every type knows beyond its targets, with a check of each.
NODE_FIELDS = {
    "play": ("prompt",),
    "menu": ("prompt", "timeout", "retries", "invalid_prompt"),
    "collect": ("prompt", "field", "min", "max", "terminator", "timeout"),
    "language": ("prompt", "options", "timeout"),
    "time": ("condition",),
    "queue": ("queue",),
    "voicemail": ("prompt", "max_seconds"),
    "callback": ("prompt",),
    "forward": ("number", "timeout"),
    "sms": ("text", "prompt"),
    "hangup": ("prompt",),
}


# What a node of each type cannot do without.
REQUIRED_FIELDS = {"play": ("prompt",), "time": ("condition",), "queue": ("queue",)}


def validate_flow(flow, where, refs):
    """Check one flow; ``refs`` holds the known ids: prompts, queues, conditions, languages."""
    from .config import _identifier, _no_unknown, _text

    if not isinstance(flow, dict):
        raise ConfigError(where, "must be an object")
    _no_unknown(flow, where, ("id", "name", "start", "nodes"))
    _identifier(flow, where)
    _text(flow, where, "name")
    nodes = flow.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        raise ConfigError(f"{where}.nodes", "must be an object with at least one node")
    if not isinstance(flow.get("start"), str) or not flow["start"]:
        raise ConfigError(f"{where}.start", "required: the id of the first node")
    if flow.get("start") not in nodes:
        raise ConfigError(f"{where}.start", f"no node {flow.get('start')!r} in this flow")
    for node_id, node in nodes.items():
        _node(node, f"{where}.nodes.{node_id}", nodes, refs)
    _no_silent_loop(flow, where)
    return flow


def flow_warnings(flow):
    """Human-readable warnings for a valid flow: nodes the start never reaches."""
    reached = _reachable(flow)
    return [f"flow {flow['id']}: node {node_id!r} cannot be reached from {flow['start']!r}"
            for node_id in flow["nodes"] if node_id not in reached]


def targets(node):
    """Every node id a node may lead to, as (field, target, needs_input)."""
    silent, after_input = NODE_TYPES[node["type"]]
    found = [(field, node[field], False) for field in silent if node.get(field)]
    for field in after_input:
        value = node.get(field)
        if isinstance(value, dict):
            found += [(f"{field}.{key}", target, True) for key, target in value.items()]
        elif value:
            found.append((field, value, True))
    return found


def _node(node, where, nodes, refs):
    from .config import _no_unknown

    if not isinstance(node, dict):
        raise ConfigError(where, "must be an object")
    for key, value in node.items():
        if key != "options" and isinstance(value, (list, dict)):
            raise ConfigError(f"{where}.{key}", "must be a single value, not a list or object")
    kind = node.get("type")
    if kind not in NODE_TYPES:
        raise ConfigError(f"{where}.type", f"must be one of {', '.join(NODE_TYPES)}")
    silent, after_input = NODE_TYPES[kind]
    _no_unknown(node, where, ("type", "label") + silent + after_input + NODE_FIELDS[kind])
    _check_fields(node, where, refs)
    for field, target, _ in targets(node):
        if target not in nodes:
            raise ConfigError(f"{where}.{field}", f"no node {target!r} in this flow")
    _required_targets(node, where)


def _check_fields(node, where, refs):
    for key in REQUIRED_FIELDS.get(node["type"], ()):
        if node.get(key) in (None, ""):
            raise ConfigError(f"{where}.{key}", "required")
    for key in ("prompt", "invalid_prompt"):
        if key in node and node[key] not in refs["prompts"]:
            raise ConfigError(f"{where}.{key}", f"no prompt {node[key]!r}")
    if node["type"] == "queue" and node.get("queue") not in refs["queues"]:
        raise ConfigError(f"{where}.queue", f"no queue {node.get('queue')!r}")
    if node["type"] == "time" and node.get("condition") not in refs["conditions"]:
        raise ConfigError(f"{where}.condition", f"no time condition {node.get('condition')!r}")
    for key, low, high in (("timeout", 1, 120), ("retries", 0, 9), ("min", 0, 32), ("max", 1, 32),
                           ("max_seconds", 5, 600)):
        value = node.get(key)
        if key in node and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise ConfigError(f"{where}.{key}", f"must be a whole number from {low} to {high}")
    _check_kind(node, where, refs)


def _check_kind(node, where, refs):
    kind = node["type"]
    if kind == "menu":
        _keys(node.get("options"), f"{where}.options")
    if kind == "language":
        _keys(node.get("options"), f"{where}.options")
        for key, language in node["options"].items():
            if language not in refs["languages"]:
                raise ConfigError(f"{where}.options.{key}", f"no language {language!r}")
    if kind == "collect":
        if not isinstance(node.get("field"), str) or not node["field"].isidentifier():
            raise ConfigError(f"{where}.field", "required: a name such as application_number")
        if node.get("min", 1) > node.get("max", 16):
            raise ConfigError(f"{where}.min", "must not be more than max")
        if node.get("terminator", "#") not in ("#", "*", ""):
            raise ConfigError(f"{where}.terminator", "must be #, * or empty")
    if kind == "forward" and not _is_number(node.get("number")):
        raise ConfigError(f"{where}.number", "must be a phone number such as +359888123456 or a SIP URI")
    if kind == "sms" and not (isinstance(node.get("text"), str) and node["text"].strip()):
        raise ConfigError(f"{where}.text", "required: the message the caller receives")


def _required_targets(node, where):
    required = {"play": "next", "collect": "next", "language": "next", "time": "open", "sms": "next"}
    field = required.get(node["type"])
    if field and not node.get(field):
        raise ConfigError(f"{where}.{field}", "required")
    if node["type"] == "time" and not node.get("closed"):
        raise ConfigError(f"{where}.closed", "required")


def _keys(options, where):
    if not isinstance(options, dict) or not options:
        raise ConfigError(where, "must map keys to choices, such as {\"1\": ...}")
    for key, value in options.items():
        if len(key) != 1 or key not in DIGITS:
            raise ConfigError(f"{where}.{key}", "must be one key: 0-9, * or #")
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}", "must be the id of a node (or a language code)")


def _is_number(value):
    from .config import NUMBER_PATTERN, SIP_URI_PATTERN

    return isinstance(value, str) and bool(NUMBER_PATTERN.match(value) or SIP_URI_PATTERN.match(value))


def _reachable(flow):
    seen, stack = set(), [flow["start"]]
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        stack += [target for _, target, _ in targets(flow["nodes"][node_id])]
    return seen


def _no_silent_loop(flow, where):
    """Refuse a cycle of edges that need no key press: it would spin for ever."""
    nodes = flow["nodes"]
    edges = {node_id: [t for _, t, needs_input in targets(node) if not needs_input and t in nodes]
             for node_id, node in nodes.items()}
    state = {}
    for node_id in nodes:
        cycle = _cycle_from(node_id, edges, state, [])
        if cycle:
            path = " → ".join(cycle)
            raise ConfigError(f"{where}.nodes.{cycle[0]}", f"loop without caller input: {path}")


def _cycle_from(node_id, edges, state, path):
    """Depth-first search; returns the nodes of a cycle found, or None."""
    if state.get(node_id) == "done":
        return None
    if state.get(node_id) == "open":
        return path[path.index(node_id):] + [node_id]
    state[node_id] = "open"
    for target in edges[node_id]:
        cycle = _cycle_from(target, edges, state, path + [node_id])
        if cycle:
            return cycle
    state[node_id] = "done"
    return None
