"""The ``hotline`` command: run the engine, the web UI, the virtual twin; ask the box."""
import argparse
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from .config import ConfigStore
from .control import ControlClient, JsonLineServer
from .errors import ApplianceError, ControlError
from .paths import ENGINE_SOCKET as SOCKET_NAME
from .paths import TWIN_SOCKET, default_data_dir

log = logging.getLogger("hotline")

# Each open live page (dashboard, wallboard, an operator's phone) holds a thread for its
# event stream; web_ui.dashboard allows 24 of them, leaving the rest for pages.
WEB_THREADS = 32
SWITCH_INTERVAL = 0.0005  # seconds a thread may keep the GIL from a waiting one (see cmd_engine)
EMULATOR_MODELS = ("sim800", "sim7600", "e1550", "ec25", "voicemodem")


def main(argv=None):
    """Entry point of the ``hotline`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s {args.command}: %(levelname)s %(name)s: %(message)s")
    args.data = os.path.abspath(args.data)
    try:
        return args.handler(args) or 0
    except ApplianceError as err:
        print(f"hotline {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser():
    """The ``hotline`` command line: one sub-command a process or question."""
    parser = argparse.ArgumentParser(prog="hotline", description="The hot-line appliance.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, handler, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--data", default=default_data_dir(), metavar="DIR",
                       help="data directory (default: %(default)s)")
        p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
        p.set_defaults(handler=handler)
        return p

    _add_process_commands(command)
    _add_call_commands(command)
    _add_modem_commands(command)
    calls = command("calls", cmd_calls, "list the newest calls in the journal")
    calls.add_argument("--last", type=int, default=10, metavar="N", help="how many (default: %(default)s)")
    calls.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _add_process_commands(command):
    """engine, web, run, twin, status: the box's processes and their state."""
    command("engine", cmd_engine, "run the call engine (owns lines and calls)")
    web = command("web", cmd_web, "serve the web UI")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    web.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    run = command("run", cmd_run, "start the virtual twin (if configured), the engine and the web UI")
    run.add_argument("--host", default="127.0.0.1", help="web UI address (default: %(default)s)")
    run.add_argument("--port", type=int, default=8080, help="web UI port (default: %(default)s)")
    command("twin", cmd_twin, "run the virtual modems and phones of the configuration's 'virtual' section")
    status = command("status", cmd_status, "print the box's live state as JSON")
    status.add_argument("--json", action="store_true", help="(the output is always JSON)")


def _add_call_commands(command):
    """call, loadtest, originate: test calls into and out of the running box."""
    call = command("call", cmd_call, "ring a virtual line of the running box as a caller would")
    call.add_argument("--line", required=True, help="line id, e.g. gsm1")
    call.add_argument("--from", dest="caller", required=True, metavar="NUMBER", help="the caller's number")
    call.add_argument("--digits", default="", help="DTMF keys to press once answered")
    call.add_argument("--inband", action="store_true",
                      help="send the keys as tones in the audio instead of as network DTMF")
    call.add_argument("--audio", metavar="FILE", help="a WAV file the caller speaks once answered")
    call.add_argument("--hold", type=float, default=3.0, metavar="SECONDS",
                      help="seconds to stay on the line after dialling (default: %(default)s)")
    call.add_argument("--json", action="store_true", help="print the result as JSON")
    load = command("loadtest", cmd_loadtest,
                   "place many virtual calls at once and check the journal accounts for every one")
    load.add_argument("--calls", type=int, required=True, metavar="N", help="how many calls to place")
    load.add_argument("--concurrency", type=int, default=1, metavar="C",
                      help="at most this many at once (default: %(default)s)")
    load.add_argument("--line", action="append", dest="lines", metavar="ID",
                      help="a line to call (repeatable; default: every virtual modem)")
    load.add_argument("--digits", default="", help="DTMF keys each caller presses once answered")
    load.add_argument("--hold", type=float, default=3.0, metavar="SECONDS",
                      help="seconds each caller stays once answered (default: %(default)s)")
    load.add_argument("--json", action="store_true", help="print the summary as JSON")
    originate = command("originate", cmd_originate, "place a test call out of a line of the running box")
    originate.add_argument("--line", required=True, help="line id, e.g. gsm1")
    originate.add_argument("--to", required=True, metavar="NUMBER", help="the number to call")
    originate.add_argument("--hold", type=float, default=5.0, metavar="SECONDS",
                           help="seconds to stay on once answered (default: %(default)s)")
    originate.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_modem_commands(command):
    """modem probe, emulate: a modem on its own, without the engine."""
    modem = command("modem", cmd_modem, "work with a modem directly (the engine must not be using it)")
    modem_sub = modem.add_subparsers(dest="modem_command", required=True, metavar="ACTION")
    probe = modem_sub.add_parser("probe", help="identify the modem on a port",
                                 description="Identify the modem on PORT: model, firmware, IMEI, SIM, network.")
    probe.add_argument("port", metavar="PORT", help="device or pyserial URL, e.g. /dev/ttyUSB2 or spy:///dev/ttyUSB2")
    probe.add_argument("--json", action="store_true", help="print JSON")
    _add_transcript_commands(modem_sub)
    emulate = command("emulate", cmd_emulate, "run an emulated modem on pseudo-terminals until stopped")
    emulate.add_argument("model", choices=sorted(EMULATOR_MODELS), metavar="MODEL",
                         help="one of: %(choices)s")
    emulate.add_argument("--number", default="+359700000009", help="its SIM's number (default: %(default)s)")
    emulate.add_argument("--pin", help="make its SIM ask for this PIN")
    emulate.add_argument("--json", action="store_true", help="print the ports as JSON")


def _add_transcript_commands(modem_sub):
    """modem record, modem replay: a field bug on file, and the file served again (docs/field-bugs.md)."""
    from firmware.transcript import DEFAULT_MASKS, MASKS

    record = modem_sub.add_parser(
        "record", help="log every byte of a session with the modem on PORT",
        description="Put a pseudo-terminal in front of PORT and log every byte both ways, with "
                    "timestamps. Point the driver (or any AT tool) at the printed pty. Phone numbers, "
                    "IMEI and ICCID are masked unless told otherwise.")
    record.add_argument("port", metavar="PORT", help="device or pyserial URL, e.g. /dev/ttyUSB2")
    record.add_argument("--out", required=True, metavar="FILE", help="the transcript to write")
    record.add_argument("--mask", action="append", choices=MASKS, default=[], help="mask this kind too")
    record.add_argument("--no-mask", action="append", choices=MASKS, default=[], dest="no_mask",
                        help=f"keep this kind (masked by default: {', '.join(DEFAULT_MASKS)})")
    record.add_argument("--note", default="", help="a comment for the file's header (what went wrong)")
    record.add_argument("--probe", action="store_true", help="record one probe of the modem and stop")
    record.add_argument("--json", action="store_true", help="print the pty (or the probe) as JSON")
    replay = modem_sub.add_parser(
        "replay", help="serve a recorded session on a pseudo-terminal",
        description="Serve FILE on a pty: each command is answered with its recorded reply, "
                    "unsolicited lines come at their recorded places.")
    replay.add_argument("file", metavar="FILE", help="a transcript written by 'hotline modem record'")
    replay.add_argument("--speed", type=float, default=1.0, help="time factor (2: twice as fast)")
    replay.add_argument("--probe", action="store_true", help="probe the replayed modem and stop")
    replay.add_argument("--json", action="store_true", help="print the pty (or the probe) as JSON")


def _wait_for_signal():
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_engine(args):
    """hotline engine"""
    from .engine import Engine  # here, not at the top: it loads every line driver, pjsua2 too
    from .priority import raise_priority

    raise_priority()  # first: every thread of the engine inherits it
    # The media clock takes the GIL back many times a tick (each port's lock) while 2-3
    # threads a line move audio; each wait lasts up to the switch interval (5 ms by
    # default), and on a busy box a tick's waits add up past a frame.
    sys.setswitchinterval(SWITCH_INTERVAL)
    engine = Engine(args.data)
    stop = _wait_for_signal()
    engine.start()
    # What start made (configuration, prompts, drivers, pjsua2) lives as long as the engine:
    # kept out of the collector's full passes, which would hold the GIL from the media clock.
    gc.freeze()
    loop = threading.Thread(target=engine.run, name="engine-loop")
    loop.start()
    stop.wait()
    engine.stop()
    loop.join(timeout=5)


def web_app(args):
    """The web application ``hotline web`` serves, for the data directory of ``args``."""
    from web_ui import create_app

    return create_app({"DATA_DIR": args.data})


def cmd_web(args):
    """hotline web"""
    import waitress

    from .priority import WEB_NICE, lower_priority

    lower_priority(WEB_NICE)  # first: the server's threads inherit it
    app = web_app(args)
    log.info("web UI on http://%s:%d/", args.host, args.port)
    waitress.serve(app, host=args.host, port=args.port, threads=WEB_THREADS, ident="hotline")


def cmd_twin(args):
    """hotline twin"""
    from hardware.virtual.world import TwinError, VirtualWorld

    config = ConfigStore(args.data).read()
    world = VirtualWorld(config["virtual"], args.data)

    def handle(request):
        try:
            if request["cmd"] == "status":
                return world.describe()
            if request["cmd"] == "call":
                return world.place_call(request["line"], request["from"], request.get("digits", ""),
                                        float(request.get("hold", 3.0)), tone=request.get("tone"),
                                        audio=request.get("audio"), inband=bool(request.get("inband", False)))
            if request["cmd"] == "power_cycle":
                return world.power_cycle(request["line"], request.get("imei"))
            if request["cmd"] == "hang":
                return world.hang(request["line"])
            if request["cmd"] == "sms":
                return world.send_sms(request["from"], request["line"], request["text"])
            if request["cmd"] == "sms_log":
                return world.sms_log(request.get("to"))
        except (TwinError, KeyError, ValueError) as err:
            raise ControlError(str(err)) from err
        raise ControlError(f"unknown command {request['cmd']!r}")

    server = JsonLineServer(os.path.join(args.data, TWIN_SOCKET), handle)
    stop = _wait_for_signal()
    server.start()
    log.info("virtual twin ready: %s", json.dumps(world.describe()))
    stop.wait()
    server.close()
    world.close()


def cmd_run(args):
    """hotline run"""
    os.makedirs(args.data, exist_ok=True)
    base = [sys.executable, "-m", "appliance.cli"]
    data = ["--data", args.data]
    config = ConfigStore(args.data).read()
    plan = {}
    if config["virtual"]["modems"] or config["virtual"]["phones"]:
        plan["twin"] = base + ["twin"] + data
    plan["engine"] = base + ["engine"] + data
    plan["web"] = base + ["web", "--host", args.host, "--port", str(args.port)] + data
    stop = _wait_for_signal()
    children = {name: subprocess.Popen(argv) for name, argv in plan.items()}
    print(f"hotline: the box is starting; open http://{args.host}:{args.port}/", flush=True)
    supervisor = _Supervisor(plan, children)
    while not stop.wait(0.5) and supervisor.keep_alive():
        pass
    supervisor.stop_all()
    return 0 if stop.is_set() else 1


class _Supervisor:
    """Restarts a process of the box that exits, as systemd's Restart=always does."""

    MAX_RESTARTS = 5
    WINDOW_SECONDS = 60.0

    def __init__(self, plan, children):
        self.plan = plan
        self.children = children
        self.restarts = []

    def keep_alive(self):
        """Restart dead children; False once they die too often to go on."""
        for name, child in self.children.items():
            if child.poll() is None:
                continue
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < self.WINDOW_SECONDS] + [now]
            if len(self.restarts) > self.MAX_RESTARTS:
                log.error("%s keeps exiting (last code %s); stopping the box", name, child.returncode)
                return False
            log.warning("%s exited with %s; restarting it", name, child.returncode)
            self.children[name] = subprocess.Popen(self.plan[name])
        return True

    def stop_all(self):
        """Terminate every child, the web UI first, and wait for them."""
        for child in reversed(list(self.children.values())):
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def cmd_modem(args):
    """hotline modem probe"""
    from firmware.detect import probe
    from firmware.errors import FirmwareError

    if args.modem_command in ("record", "replay"):
        return cmd_modem_record(args) if args.modem_command == "record" else cmd_modem_replay(args)
    try:
        found = probe(args.port)
    except FirmwareError as err:
        raise ControlError(f"no modem answers on {args.port}: {err}") from err
    return _print_probe(found, args)


def _print_probe(found, args):
    """Print a probe's result, as JSON or one field a line; 0 if the modem was known."""
    if args.json:
        print(json.dumps(found, indent=2))
        return 0 if found["family"] else 1
    for key, value in found.items():
        if isinstance(value, list):  # a voice modem's sample formats
            value = ", ".join(value)
        print(f"{key:>13}: {value if value not in (None, '') else '-'}")
    return 0 if found["family"] else 1


def cmd_modem_record(args):
    """hotline modem record"""
    from firmware.errors import FirmwareError
    from firmware.transcript import DEFAULT_MASKS, Tap, TranscriptWriter

    masks = (set(DEFAULT_MASKS) | set(args.mask)) - set(args.no_mask)
    writer = TranscriptWriter(args.out, masks=masks, port=args.port, note=args.note)
    try:
        tap = Tap(args.port, writer)
    except FirmwareError as err:
        writer.close()
        raise ControlError(str(err)) from err
    try:
        return _serve_pty(tap.path, args, f"recording {args.port} to {args.out}")
    finally:
        tap.close()
        writer.close()


def cmd_modem_replay(args):
    """hotline modem replay"""
    from firmware.transcript import Replayer, TranscriptError

    try:
        replayer = Replayer(args.file, speed=args.speed)
    except (OSError, TranscriptError) as err:
        raise ControlError(f"cannot replay {args.file}: {err}") from err
    try:
        return _serve_pty(replayer.path, args, f"replaying {args.file}")
    finally:
        replayer.close()
        if replayer.unmatched:
            print(f"commands not in the recording: {len(replayer.unmatched)}", file=sys.stderr)


def _serve_pty(path, args, doing):
    """Probe through ``path`` once (``--probe``), or print it and wait for Ctrl-C."""
    from firmware.detect import probe
    from firmware.errors import FirmwareError

    if args.probe:
        try:
            found = probe(path)
        except FirmwareError as err:
            raise ControlError(f"no modem answers through {path}: {err}") from err
        return _print_probe(found, args)
    stop = _wait_for_signal()
    if args.json:
        print(json.dumps({"pty": path}), flush=True)
    else:
        print(f"{doing}; point the driver at {path}   (Ctrl-C stops)", flush=True)
    stop.wait()
    return 0


def cmd_emulate(args):
    """hotline emulate"""
    from hardware.virtual.families import ALL_EMULATORS
    from hardware.virtual.network import VirtualNetwork

    modem = ALL_EMULATORS[args.model](VirtualNetwork(), args.number, pin=args.pin)
    audio = modem.audio.path if modem.audio is not None else None  # a voice modem has one port
    ports = {"model": args.model, "number": args.number, "at_port": modem.at.path, "audio_port": audio}
    stop = _wait_for_signal()
    if args.json:
        print(json.dumps(ports), flush=True)
    else:
        where = f"audio port {audio}" if audio else "audio on the same port (V.253 voice mode)"
        print(f"emulated {modem.model}: AT port {modem.at.path}, {where}; "
              f"try: hotline modem probe {modem.at.path}   (Ctrl-C stops)", flush=True)
    stop.wait()
    modem.close()


def cmd_status(args):
    """hotline status"""
    print(json.dumps(_engine(args).request("status"), indent=2, ensure_ascii=False))


def cmd_calls(args):
    """hotline calls"""
    calls = _engine(args).request("calls", last=args.last)
    if args.json:
        print(json.dumps(calls, indent=2, ensure_ascii=False))
        return
    for call in calls:
        print(f"{call['id']:>6}  {call['started_at'][:19]}  {call['line_id']:<8} {call['caller'] or '(withheld)':<16}"
              f" {call['outcome'] or 'in progress':<12} {call['talk_seconds'] or 0:>6.1f} s"
              f"  {call['recording'] or ''}")


def cmd_call(args):
    """hotline call"""
    options = {"inband": args.inband}
    if args.audio:
        if not os.path.isfile(args.audio):
            raise ControlError(f"no audio file {args.audio}")
        options["audio"] = os.path.abspath(args.audio)  # the twin runs in a directory of its own
    engine = _engine(args)
    engine.request("ping")
    watcher = _CallWatcher(engine, args.line, args.caller)
    twin = ControlClient(os.path.join(args.data, TWIN_SOCKET), timeout=args.hold + 30)
    try:
        placed = twin.request("call", line=args.line, hold=args.hold, digits=args.digits,
                              **options, **{"from": args.caller})
    except ApplianceError as err:
        raise ControlError(f"the virtual twin cannot place the call ({err}); "
                           "hotline call rings virtual lines of a box started with 'hotline run'") from err
    ended = watcher.wait(timeout=15)
    result = {"call_id": ended.get("call", {}).get("id"), "outcome": ended.get("outcome"),
              "ended_by": ended.get("ended_by"), "talk_seconds": ended.get("talk_seconds"),
              "recording": ended.get("recording"), "answered": placed["answered"],
              "heard_seconds": placed["heard_seconds"], "digits": placed["digits"],
              "audio_seconds": placed.get("audio_seconds", 0.0), "inband": placed.get("inband", False)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"call {result['call_id']}: {result['outcome']}, ended by {result['ended_by']}, "
              f"talk {result['talk_seconds']} s, the caller heard {result['heard_seconds']} s of audio")
    return 0 if result["call_id"] is not None else 1


def cmd_loadtest(args):
    """hotline loadtest"""
    from . import loadtest

    summary = loadtest.run(args.data, calls=args.calls, concurrency=args.concurrency, lines=args.lines,
                           digits=args.digits, hold=args.hold)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(loadtest.report(summary))
    return 1 if summary["unaccounted"] else 0


def cmd_originate(args):
    """hotline originate"""
    engine = _engine(args)
    watcher = _CallWatcher(engine, args.line, caller="", direction="out")
    call_id = engine.request("originate", line=args.line, to=args.to, hold=args.hold)["call"]
    ended = watcher.wait(timeout=args.hold + 90)
    result = {"call_id": call_id, "outcome": ended.get("outcome"), "ended_by": ended.get("ended_by"),
              "talk_seconds": ended.get("talk_seconds"), "recording": ended.get("recording")}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"call {call_id} to {args.to}: {result['outcome']}, ended by {result['ended_by']}")
    return 0 if result["outcome"] else 1


class _CallWatcher:
    """Follows the engine's event stream for the call a virtual caller is placing."""

    def __init__(self, engine, line, caller, direction="in"):
        self._events = engine.subscribe()
        next(self._events)  # subscribed: nothing can be missed from here on
        self._line, self._caller, self._direction = line, caller, direction
        self._ended = {}
        self._done = threading.Event()
        threading.Thread(target=self._follow, daemon=True).start()

    def wait(self, timeout):
        """The engine's call.ended event, or {} if it did not come in time."""
        self._done.wait(timeout)
        return self._ended

    def _follow(self):
        call_id = None
        for event in self._events:
            call = event.get("call") or {}
            # An inbound call is known by its caller: the twin's name for a modem need not be
            # the box's line id (a line bound by IMEI takes whichever modem has its IMEI).
            if event["type"] == "call.started" and call.get("direction") == self._direction and (
                    call.get("caller") == self._caller if self._direction == "in" else call.get("line") == self._line):
                call_id = call["id"]
            elif event["type"] == "call.ended" and call.get("id") == call_id:
                self._ended = event
                self._done.set()
                return


def _engine(args):
    return ControlClient(os.path.join(args.data, SOCKET_NAME))


if __name__ == "__main__":
    sys.exit(main())
