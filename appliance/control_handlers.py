"""The control API's commands: a table from each ``cmd`` to the function that answers it.

Each handler gets the engine and the request and runs on a control thread: what decides
or reads call state is handed to the loop with ``engine.in_loop``; SMS, USSD and balance
wait on the line's own thread instead.
"""
import time

from firmware.errors import FirmwareError

from . import discovery
from .calls import CallSession
from .configurator import CONFIG_SECTIONS
from .errors import ControlError


def handle(engine, request):
    """Answer one control request by its ``cmd``; ControlError for a command nobody knows."""
    cmd = request["cmd"]
    handler = HANDLERS.get(cmd)
    if handler is None:
        raise ControlError(f"unknown command {cmd!r}")
    return handler(engine, request)


def _ping(engine, request):
    return "pong"


def _calls(engine, request):
    return engine.in_loop(engine.journal.recent_calls, int(request.get("last", 20)))


def _call(engine, request):
    return engine.in_loop(engine.journal.get_call, int(request["id"]))


def _status(engine, request):
    return engine.in_loop(engine.status)


def _hangup(engine, request):
    return engine.in_loop(_hang_up, engine, int(request["call"]))


def _hang_up(engine, call_id):
    for session in engine.board.calls.values():
        if session.id == call_id:
            session.hang_up("hung up from the control API")
            return {"call": call_id}
    raise ControlError(f"call {call_id} is not in progress")


def _reload(engine, request):
    return engine.in_loop(engine.reload)


def _originate(engine, request):
    return engine.in_loop(_place_test_call, engine, str(request["line"]), str(request["to"]),
                          float(request.get("hold", 5.0)))


def _place_test_call(engine, line_id, number, hold_seconds):
    """A test call out of ``line_id`` to ``number``: greeting, recording, journal."""
    board = engine.board
    if line_id not in board.runners:
        raise ControlError(f"no line {line_id!r}")
    if not board.free_channels(board.line_config(line_id)):
        raise ControlError(f"line {line_id} is not free ({board.lines.get(line_id, {}).get('activity')})")
    session = CallSession(engine.ctx, line_id, callee=number, direction="out")
    session.dial(hold_seconds)
    return {"call": session.id}


def _line(engine, request):
    return engine.in_loop(_line_details, engine, str(request["line"]))


def _line_details(engine, line_id):
    if line_id not in engine.board.runners:
        raise ControlError(f"no line {line_id!r}")
    journal = engine.journal
    return {"line": dict(engine.board.lines.get(line_id, {})), "events": journal.line_events(line_id, 20),
            "sms": journal.recent_sms(line_id, 20)}


def _operator(engine, request):
    return engine.in_loop(_set_operator, engine.ctx, str(request["operator"]), str(request["state"]))


def _set_operator(ctx, operator_id, state):
    if operator_id not in ctx.operators.operators:
        raise ControlError(f"no operator {operator_id!r}")
    if state not in ("ready", "paused"):
        raise ControlError("state must be ready or paused")
    ctx.operators.set_paused(operator_id, state == "paused")
    ctx.publish({"type": "operator.state", "operator": operator_id, "state": state, "by": "control"})
    ctx.queues.dispatch()
    # The operators' board keeps its own times by time.monotonic, not by the loop's clock.
    return ctx.operators.operators[operator_id].snapshot(time.monotonic(), ctx.timezone)


def _callbacks(engine, request):
    return engine.in_loop(engine.journal.open_callbacks)


def _config(engine, request):
    return engine.in_loop(engine.configurator.config_document)


def _config_put(engine, request):
    if "document" in request:
        return engine.put_config(document=request["document"])
    if request.get("section") not in CONFIG_SECTIONS:
        raise ControlError(f"section must be one of {', '.join(CONFIG_SECTIONS)}")
    return engine.put_config(section=request["section"], value=request.get("value"))


def _sms(engine, request):
    """Send an SMS on the line's thread; the journal has it once the modem took it."""
    runner = engine.board.runner(request.get("line"))
    to, text = str(request["to"]), str(request["text"])
    references = _on_line(runner, "sms", lambda driver: driver.send_sms(to, text))
    engine.post(engine.journal.add_sms, runner.id, "out", to, text, "sent")
    return {"parts": len(references)}


def _ussd(engine, request):
    runner = engine.board.runner(request.get("line"))
    code = str(request["code"])
    return {"reply": _on_line(runner, "ussd", lambda driver: driver.ussd(code))}


def _balance(engine, request):
    runner = engine.board.runner(request.get("line"))
    state = _on_line(runner, "balance", runner.check_balance)
    engine.post(engine.board.line_state, runner.id, state)
    return state


def _on_line(runner, name, action):
    """Run ``action(driver)`` on the line's thread and wait; a line's failure is a ControlError."""
    try:
        return runner.call(name, action)
    except (FirmwareError, TimeoutError, ValueError) as err:
        raise ControlError(f"line {runner.id}: {err}") from err


HANDLERS = {
    "ping": _ping, "calls": _calls, "call": _call, "status": _status, "hangup": _hangup,
    "reload": _reload, "sms": _sms, "ussd": _ussd, "balance": _balance, "originate": _originate,
    "line": _line, "operator": _operator, "callbacks": _callbacks, "config": _config,
    "config_put": _config_put, "modems": discovery.handle,
}
