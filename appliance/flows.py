"""IVR flows: a graph of nodes per line, checked before the box accepts it.

A flow is ``{"id", "name", "start", "nodes": {node_id: node}}``. Each node has a
``type`` and the targets it may go to next. The checks: every target, prompt, queue,
time condition and language exists; no loop can spin without the caller pressing a
key (a play → time → play cycle would hold a line forever); nodes the start cannot
reach are reported as warnings, since a technician often drafts a branch before
linking it.
"""
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Discriminator, Tag, TypeAdapter, WithJsonSchema

from .errors import ConfigError
from .validation import (NUMBER_PATTERN, SIP_URI_PATTERN, Identifier, OptionalText, Section, checked, dump,
                         field_type, one_of, refuse, whole)

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

# A prompt, queue, condition or node named by its id: checked against the others by hand
# (one node cannot know them), so any single value gets through the model.
Ref = Annotated[Any, WithJsonSchema({"type": "string"})]
Timeout = whole(1, 120)


KeyMap = field_type(lambda v: isinstance(v, dict) and bool(v), 'must map keys to choices, such as {"1": ...}',
                    {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}})


# The node fields checked by a rule of their own, each with its refusal message.
FieldName = field_type(lambda v: isinstance(v, str) and v.isidentifier(),
                       "required: a name such as application_number", {"type": "string"})
Terminator = one_of(("#", "*", ""))
ForwardTarget = field_type(lambda v: isinstance(v, str) and bool(NUMBER_PATTERN.match(v) or SIP_URI_PATTERN.match(v)),
                           "must be a phone number such as +359888123456 or a SIP URI", {"type": "string"})
SmsText = field_type(lambda v: isinstance(v, str) and bool(v.strip()), "required: the message the caller receives",
                     {"type": "string", "minLength": 1})
StartNode = field_type(lambda v: isinstance(v, str) and bool(v), "required: the id of the first node",
                       {"type": "string"})


class Node(Section):
    """What every node has: its type and an optional label for the editor."""

    label: OptionalText = None


class PlayNode(Node):
    """Play a prompt, then go on."""

    type: Literal["play"]
    prompt: Ref
    next: Ref


class MenuNode(Node):
    """Ask for a key; repeat on a wrong key or silence, then take the default."""

    type: Literal["menu"]
    prompt: Ref = None
    invalid_prompt: Ref = None
    timeout: Timeout = 5
    retries: whole(0, 9) = 2
    options: KeyMap
    default: Ref = None


class CollectNode(Node):
    """Collect digits (an application number) into a field of the call."""

    type: Literal["collect"]
    prompt: Ref = None
    timeout: Timeout = 8
    min: whole(0, 32) = 1
    max: whole(1, 32) = 16
    field: FieldName
    terminator: Terminator = "#"
    next: Ref
    timeout_next: Ref = None


class LanguageNode(Node):
    """Let the caller choose the language of the prompts that follow."""

    type: Literal["language"]
    prompt: Ref = None
    timeout: Timeout = 5
    options: KeyMap
    next: Ref


class TimeNode(Node):
    """Branch on a time condition: open or closed."""

    type: Literal["time"]
    condition: Ref
    open: Ref
    closed: Ref


class QueueNode(Node):
    """Wait in a queue for an operator; overflow when nobody answers."""

    type: Literal["queue"]
    queue: Ref
    overflow: Ref = None


class VoicemailNode(Node):
    """Record a message after the beep."""

    type: Literal["voicemail"]
    prompt: Ref = None
    max_seconds: whole(5, 600) = 60
    next: Ref = None


class CallbackNode(Node):
    """Promise a call back: the caller joins the call-back list."""

    type: Literal["callback"]
    prompt: Ref = None
    next: Ref = None


class ForwardNode(Node):
    """Forward the call to a number or a SIP URI."""

    type: Literal["forward"]
    timeout: Timeout = 30
    number: ForwardTarget
    next: Ref = None


class SmsNode(Node):
    """Text the caller a message (the admission dates), then go on."""

    type: Literal["sms"]
    text: SmsText
    prompt: Ref = None
    next: Ref


class HangupNode(Node):
    """Say goodbye (a prompt, if any) and hang up."""

    type: Literal["hangup"]
    prompt: Ref = None


class UnknownNode(Section):
    """A node of a type the box does not know: refused at its type."""

    model_config = Section.model_config | {"extra": "allow"}
    type: one_of(tuple(NODE_TYPES))


NODE_MODELS = {"play": PlayNode, "menu": MenuNode, "collect": CollectNode, "language": LanguageNode,
               "time": TimeNode, "queue": QueueNode, "voicemail": VoicemailNode, "callback": CallbackNode,
               "forward": ForwardNode, "sms": SmsNode, "hangup": HangupNode}


def _node_type(value):
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"~{kind}" if kind in NODE_MODELS else "~unknown"


AnyNode = Annotated[Union[tuple(Annotated[model, Tag(f"~{kind}")] for kind, model in NODE_MODELS.items())
                          + (Annotated[UnknownNode, Tag("~unknown")],)], Discriminator(_node_type)]
NODE = TypeAdapter(AnyNode)


def _own_fields(model):
    return tuple(name for name in model.model_fields if name not in Node.model_fields and name != "type")


def _targets_of(kind):
    return NODE_TYPES[kind][0] + NODE_TYPES[kind][1]


# Fields each type knows beyond its targets, and what a node of each type cannot do without
# (the editor marks those required): both read off the models.
NODE_FIELDS = {kind: tuple(f for f in _own_fields(model) if f not in _targets_of(kind))
               for kind, model in NODE_MODELS.items()}
REQUIRED_FIELDS = {kind: tuple(f for f in _own_fields(model) if model.model_fields[f].is_required())
                   for kind, model in NODE_MODELS.items()}


def _some_nodes(value):
    if not isinstance(value, dict) or not value:
        raise refuse("must be an object with at least one node")
    return value


def typed_nodes(flow):
    """A valid flow's nodes as typed models, defaults filled in (what the IVR interpreter reads)."""
    return {node_id: NODE.validate_python(node) for node_id, node in flow["nodes"].items()}


class Flow(Section):
    """A graph of nodes a call walks from ``start``."""

    id: Identifier
    name: OptionalText = None
    start: StartNode
    nodes: Annotated[dict[str, AnyNode], BeforeValidator(_some_nodes)]


def validate_flow(flow, where, refs):
    """Check one flow; ``refs`` holds the known ids: prompts, queues, conditions, languages."""
    if not isinstance(flow, dict):
        raise ConfigError(where, "must be an object")
    for node_id, node in (flow.get("nodes") or {}).items() if isinstance(flow.get("nodes"), dict) else ():
        _single_values(node, f"{where}.nodes.{node_id}")
    flow = dump(checked(Flow, flow, where))
    nodes = flow["nodes"]
    if flow["start"] not in nodes:
        raise ConfigError(f"{where}.start", f"no node {flow['start']!r} in this flow")
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


def _single_values(node, where):
    """Only a node's key map may be a list or an object (checked before its model: Ref takes any value)."""
    for key, value in node.items() if isinstance(node, dict) else ():
        if key != "options" and isinstance(value, (list, dict)):
            raise ConfigError(f"{where}.{key}", "must be a single value, not a list or object")


def _node(node, where, nodes, refs):
    """A node its model passed, checked against the other nodes and sections."""
    for key in REQUIRED_FIELDS[node["type"]]:
        if not node[key]:  # "" or 0 names nothing (null and a missing field the model refused)
            raise ConfigError(f"{where}.{key}", "required")
    _references(node, where, refs)
    for field, target, _ in targets(node):
        if not isinstance(target, str) or target not in nodes:
            raise ConfigError(f"{where}.{field}", f"no node {target!r} in this flow")


def _references(node, where, refs):
    """The prompts, queue, time condition, keys and languages a node names must exist."""
    for key in ("prompt", "invalid_prompt"):
        if key in node and node[key] not in refs["prompts"]:  # null too: leave the field out for none
            raise ConfigError(f"{where}.{key}", f"no prompt {node[key]!r}")
    kind = node["type"]
    if kind == "queue" and node["queue"] not in refs["queues"]:
        raise ConfigError(f"{where}.queue", f"no queue {node['queue']!r}")
    if kind == "time" and node["condition"] not in refs["conditions"]:
        raise ConfigError(f"{where}.condition", f"no time condition {node['condition']!r}")
    if kind in ("menu", "language"):
        _keys(node["options"], f"{where}.options")
    if kind == "language":
        for key, language in node["options"].items():
            if language not in refs["languages"]:
                raise ConfigError(f"{where}.options.{key}", f"no language {language!r}")
    if kind == "collect" and node["min"] > node["max"]:
        raise ConfigError(f"{where}.min", "must not be more than max")


def _keys(options, where):
    if not isinstance(options, dict) or not options:
        raise ConfigError(where, "must map keys to choices, such as {\"1\": ...}")
    for key, value in options.items():
        if len(key) != 1 or key not in DIGITS:
            raise ConfigError(f"{where}.{key}", "must be one key: 0-9, * or #")
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}", "must be the id of a node (or a language code)")


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
