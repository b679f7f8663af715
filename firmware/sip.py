"""SIP lines through pjsua2: a trunk that registers to a provider, or calls from listed peers.

pjsua2 allows one Endpoint per process and is not safe to call from any thread, so a
module-level ``SipStack`` owns it: one thread ("sip-stack") makes every pjsua2 call,
polls the library with ``libHandleEvents`` and runs jobs that other threads post. A
``SipLine`` is a UDP transport and an account on that stack (the stack is created by the
first line and destroyed with the last); each call on it is a ``SipLeg`` named by its
channel, whose audio joins pjsua2's conference bridge through an ``AudioMediaPort``.
Events reach the engine as ``LineEvent`` objects, always from the sip-stack thread.
"""
import atexit
import collections
import concurrent.futures
import ctypes
import functools
import ipaddress
import itertools
import logging
import queue
import re
import socket
import threading
import time

from .errors import FirmwareError, LineStateError
from .frames import FRAME_BYTES, FRAME_SECONDS, SAMPLE_RATE, SILENCE, FramedAudio
from .gsm import LineEvent

try:
    import pjsua2 as pj
except ImportError:  # a box without pjsua2 runs with SIP disabled and says why
    pj = None

log = logging.getLogger(__name__)

AVAILABLE = pj is not None
UNAVAILABLE_REASON = None if AVAILABLE else (
    "pjsua2 is not installed (pip install pjsua2-python, or systemd/build-pjsua2.sh on a Raspberry Pi)")

JOB_SECONDS = 5.0  # how long a caller waits for the sip-stack thread to run its job
CLOSE_SECONDS = 2.0  # how long close() waits for calls to end before tearing them down
MAX_CALLS = 64  # asked of pjsua for all lines together; it keeps to its build's PJSUA_MAX_CALLS
PORT_REMOVAL_SECONDS = 0.1  # five ticks of the conference bridge's clock
REFUSING_REGISTRARS = (401, 403, 404, 407)
KEPT_LEGS = 64  # ended legs remembered, so a late command on one finds it, not a new leg
DTMF_DIGITS = set("0123456789*#ABCDabcd")
NUMBER = re.compile(r"^\+?[0-9*#]+$")
DEFAULT_CODECS = ("PCMA", "PCMU", "G722", "opus")
PJ_LOG_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING}  # 3 and more: DEBUG


class SipUnavailable(FirmwareError, ImportError):
    """pjsua2 is not installed, so no SIP line can be opened."""


class SipError(FirmwareError, RuntimeError):
    """pjsua2 refused an operation (a bad URI, no free port, the stack not running)."""


class SipTimeout(FirmwareError, TimeoutError):
    """The sip-stack thread did not run a job in time."""


# --- frames between pjsua2 and Python -------------------------------------------------
# A MediaFrame's buffer is a SWIG std::vector<unsigned char>: bytes(vector) walks it one
# element per Python call (about 100 us a frame); reading its begin/end pointers with
# ctypes copies it in about 1.5 us. The layout is checked once at import; a library
# where it does not hold gets the slow, safe conversion.

_VECTOR_POINTERS = ctypes.c_void_p * 3  # begin, end, end of storage (libstdc++ and libc++)


def _fast_read(vector):
    """The bytes of a ByteVector, copied straight from its storage."""
    begin, end, _ = _VECTOR_POINTERS.from_address(int(vector.this))
    return ctypes.string_at(begin, end - begin) if begin else b""


def _fast_write(frame, data):
    """Put ``data`` into a MediaFrame's buffer without building a new vector."""
    vector = frame.buf
    vector.resize(len(data))
    ctypes.memmove(_VECTOR_POINTERS.from_address(int(vector.this))[0], data, len(data))
    frame.size = len(data)


def _slow_read(vector):
    """The bytes of a ByteVector, element by element (any ABI)."""
    return bytes(vector)


def _slow_write(frame, data):
    """Put ``data`` into a MediaFrame's buffer through a new ByteVector (any ABI)."""
    frame.buf = pj.ByteVector(data)
    frame.size = len(data)


def _fast_frames_work():
    """True when the ctypes view of a ByteVector gives exactly what SWIG gives."""
    try:
        pattern = bytes(range(256)) + bytes(range(64))
        frame = pj.MediaFrame()
        frame.buf = pj.ByteVector(pattern)
        written = pj.MediaFrame()
        _fast_write(written, pattern[::-1])
        return _fast_read(frame.buf) == pattern and bytes(written.buf) == pattern[::-1]
    except Exception:  # any surprise in the layout means: use the safe way
        return False


read_frame_bytes, write_frame_bytes = _slow_read, _slow_write
AUDIO_FRAME = pj.PJMEDIA_FRAME_TYPE_AUDIO if AVAILABLE else 1
if AVAILABLE and _fast_frames_work():
    read_frame_bytes, write_frame_bytes = _fast_read, _fast_write


# --- the stack: one Endpoint, one thread ------------------------------------------------

_stack = None
_last_stack = None  # the one shut down last: its thread must be gone before a new Endpoint
_stack_lock = threading.Lock()
_KEPT_PORTS = []  # conference ports that could not be removed safely (see SipStack._remove_ports)
_open_lines = set()  # lines not closed yet, closed at interpreter exit


def _acquire_stack(codecs):
    """The running stack (created now if there is none), with one more user counted."""
    global _stack
    with _stack_lock:
        if _stack is not None and not _stack.alive:
            _stack.close()  # it died: let it finish destroying the library before a new one
            _stack = None
        if _stack is None:
            if _last_stack is not None:
                _last_stack.close()
            _stack = SipStack(codecs)
        elif [name.lower() for name in codecs] != [name.lower() for name in _stack.asked_codecs]:
            log.warning("SIP codec order is one for the process: %s stays, not %s",
                        ", ".join(_stack.asked_codecs), ", ".join(codecs))
        _stack.users += 1
        return _stack


def _release_stack(stack):
    """Count one user less; the last one shuts the stack down."""
    global _stack, _last_stack
    with _stack_lock:
        stack.users -= 1
        if stack.users > 0:
            return
        if _stack is stack:
            _stack = None
        _last_stack = stack
    stack.close()


@atexit.register
def _close_lines_at_exit():
    # pjmedia's clock thread calls into Python: it must be stopped before the interpreter
    # goes away, even when the application forgot to close its lines.
    for line in list(_open_lines):
        line.close()


class SipStack:
    """The process's one pjsua2 Endpoint, created and driven by its own thread."""

    def __init__(self, codecs=DEFAULT_CODECS):
        self.users = 0
        self.alive = False
        self.version = None
        self.asked_codecs = list(codecs)
        self.codecs = []  # codec ids in use, in order of preference
        self.max_calls = None  # calls the library takes at once, all lines together (None: unknown)
        self.missing_codecs = []  # asked for, not in this build
        self.lines = []  # SipLines on this stack (read by the sip-stack thread)
        self.ep = None
        self._jobs = queue.SimpleQueue()
        self._jobs_lock = threading.Lock()
        self._graveyard = []  # pjsua2 objects to delete on the next loop turn
        self._ports = []  # every conference port made: deleted only at shutdown (take_port)
        self._idle_ports = []
        self._stop = threading.Event()
        self._log_writer = None
        self._native = None
        self._ready = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(codecs,), name="sip-stack", daemon=True)
        self._thread.start()
        try:
            self._ready.result(timeout=30)
        except concurrent.futures.TimeoutError:
            raise SipTimeout("the SIP stack did not start within 30 s") from None

    def call(self, job, timeout=JOB_SECONDS):
        """Run ``job()`` on the sip-stack thread and return its result (or raise its error)."""
        if self.on_stack_thread():
            return job()
        future = concurrent.futures.Future()
        with self._jobs_lock:
            if not self.alive:
                raise SipError("the SIP stack is not running")
            self._jobs.put((job, future))
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SipTimeout(f"the SIP stack did not answer within {timeout:g} s") from None

    def on_stack_thread(self):
        """True when called from the sip-stack thread itself."""
        return threading.get_ident() == self._thread.ident

    def post(self, job):
        """Run ``job()`` on the sip-stack thread soon, without waiting for it."""
        with self._jobs_lock:
            if self.alive:
                self._jobs.put((job, None))

    def take_port(self, audio):
        """A conference port for one call's ``audio``: an idle one, or a new one.

        pjsua2 2.15's AudioMediaPort destructor frees memory that the asynchronous
        conference bridge still touches on its next tick (pjproject #4200): deleting a
        port while the library runs crashes the process now and then. So a port is never
        deleted while it runs: it goes back to this pool when its call ends, and at
        shutdown it is taken out of the bridge, given time to go, and only then deleted.
        """
        port = self._idle_ports.pop() if self._idle_ports else self._new_port()
        port.attach(audio)
        return port

    def give_back_port(self, port, call_media):
        """A call ended: part its port from the call's stream and keep it for the next call."""
        port.attach(None)
        if call_media is not None:
            for source, sink in ((port, call_media), (call_media, port)):
                try:
                    source.stopTransmit(sink)
                except Exception:  # the stream went with its call: nothing left to part
                    pass
        self._idle_ports.append(port)

    def _new_port(self):
        port = _FramePort()
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, SAMPLE_RATE, 1, round(FRAME_SECONDS * 1e6), 16)
        port.createPort(f"call-audio-{len(self._ports) + 1}", fmt)
        self._ports.append(port)
        return port

    def _remove_ports(self):
        """Take every port out of the bridge, let its clock finish that, then delete them."""
        remove = getattr(self._native, "pjsua_conf_remove_port", None)
        if remove is None:  # a build that hides pjsua's C API: keep the ports for the process's life
            _KEPT_PORTS.extend(self._ports)
        for port in self._ports:
            port.attach(None)
            if remove is not None:
                remove(port.getPortId())
        if self._ports:
            time.sleep(PORT_REMOVAL_SECONDS)
        self._idle_ports.clear()
        self._ports.clear()  # each destructor now finds its slot empty and frees its pool

    def bury(self, *objects):
        """Delete pjsua2 objects on the next loop turn, on this thread, outside any callback."""
        self._graveyard.extend(o for o in objects if o is not None)

    def flush_graveyard(self):
        """Delete the buried objects now (sip-stack thread, outside callbacks only)."""
        self._graveyard.clear()

    def close(self):
        """Stop the thread, which destroys the library; safe to call twice."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=15)

    # --- the sip-stack thread -----------------------------------------------------------

    def _run(self, codecs):
        try:
            self._start_library(codecs)
        except Exception as err:  # pj.Error and friends: report it to the first line
            self._destroy_library()
            self._ready.set_exception(SipError(f"cannot start the SIP stack: {_text(err)}"))
            return
        self.alive = True
        self._ready.set_result(None)
        try:
            self._loop()
        except Exception as err:  # the library failed under us: every line is down
            log.exception("SIP stack failed")
            self._stack_down(f"the SIP stack failed: {_text(err)}")
        finally:
            with self._jobs_lock:
                self.alive = False
            self._fail_jobs()
            self._destroy_library()

    def _loop(self):
        while not self._stop.is_set():
            self.ep.libHandleEvents(10)
            self._run_jobs()
            self.flush_graveyard()

    def _run_jobs(self):
        while True:
            try:
                job, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            if future is None:
                self._run_posted(job)
            elif future.set_running_or_notify_cancel():
                try:
                    future.set_result(job())
                except BaseException as err:
                    future.set_exception(_firmware_error(err))

    def _run_posted(self, job):
        try:
            job()
        except Exception:
            log.exception("SIP job failed")

    def _fail_jobs(self):
        while True:
            try:
                _job, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            if future is not None and future.set_running_or_notify_cancel():
                future.set_exception(SipError("the SIP stack stopped"))

    def _stack_down(self, reason):
        for line in list(self.lines):
            line._stack_down(reason)

    def _start_library(self, codecs):
        self.ep = _Endpoint(self)
        self.ep.libCreate()
        self.version = self.ep.libVersion().full
        self._log_writer = _LogWriter()
        self.ep.libInit(self._endpoint_config())
        self.ep.audDevManager().setNullDev()  # no sound card: the conference bridge runs on its own clock
        self.ep.libStart()
        self._set_codecs(codecs)
        self._native = _native_library()
        self.max_calls = self._native_count("pjsua_call_get_max_count")

    def calls_in_use(self):
        """Calls the library holds now, all lines together (sip-stack thread; None: unknown)."""
        return self._native_count("pjsua_call_get_count")

    def _native_count(self, function):
        try:
            return int(getattr(self._native, function)())
        except (AttributeError, TypeError, OSError):
            return None

    def _endpoint_config(self):
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0  # this thread polls; no pjsua worker thread
        config.uaConfig.mainThreadOnly = False
        config.uaConfig.maxCalls = MAX_CALLS
        config.uaConfig.userAgent = f"hotline (pjsua2 {self.version})"
        config.logConfig.writer = self._log_writer
        config.logConfig.level = 3
        config.logConfig.consoleLevel = 3  # the writer only gets what passes this level
        config.logConfig.decor = 0  # Python logging adds time and level
        media = config.medConfig
        media.clockRate = media.sndClockRate = SAMPLE_RATE
        media.channelCount = 1
        media.audioFramePtime = media.ptime = 20
        media.noVad = True  # silence suppression would starve the far end's jitter buffer
        media.ecTailLen = 0  # the engine mixes; an echo canceller would only add delay
        return config

    def _set_codecs(self, names):
        infos = self.ep.codecEnum2()
        for info in infos:  # only the configured ones are offered
            self.ep.codecSetPriority(info.codecId, 0)
        available = {info.codecId.split("/")[0].lower(): info.codecId for info in infos}
        for priority, name in zip(itertools.count(254, -1), names):
            codec_id = available.get(name.lower())
            if codec_id is None:
                self.missing_codecs.append(name)
                continue
            self.ep.codecSetPriority(codec_id, priority)
            self.codecs.append(codec_id)

    def _destroy_library(self):
        # Calls, ports and accounts went with their lines; what is left goes in the same order.
        for line in list(self.lines):
            line._teardown()
        self._graveyard.clear()
        self._remove_ports()
        if self.ep is not None:
            try:
                self.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)  # calls already ended: do not wait a second
            except Exception as err:
                log.warning("SIP stack: libDestroy failed: %s", _text(err))
            self.ep = None  # deleted here, on its own thread, so a new Endpoint can be made later

    def line_for_request(self, whole_message):
        """The line a request was sent to: by its Request-URI's port, else its user (or None)."""
        port, user = _request_uri_port(whole_message), _request_uri_user(whole_message)
        return (next((line for line in self.lines if line.port == port), None)
                or next((line for line in self.lines if user and line.config.get("username") == user), None))


def _callback(method):
    """Keep a Python error in a pjsua2 callback from unwinding into the C++ library."""
    @functools.wraps(method)
    def guarded(self, prm):
        try:
            method(self, prm)
        except Exception:
            log.exception("SIP callback %s failed", method.__name__)
    return guarded


if AVAILABLE:
    class _LogWriter(pj.LogWriter):
        """pjsua2's log, into Python logging (its level 3 'info' is our debug)."""

        def write(self, entry):
            try:
                log.log(PJ_LOG_LEVELS.get(entry.level, logging.DEBUG), "pjsua2: %s", entry.msg.rstrip())
            except Exception:  # an error here would unwind into whichever pjsua thread logged
                pass

    class _Endpoint(pj.Endpoint):
        """The Endpoint, picking for each INVITE the account of the line it was sent to."""

        def __init__(self, stack):
            super().__init__()
            self._stack = stack

        @_callback
        def onSelectAccount(self, prm):
            # pjsua matches accounts by the To header, which knows nothing of our ports.
            line = self._stack.line_for_request(prm.rdata.wholeMsg)
            if line is not None and line.account_id is not None:
                prm.accountIndex = line.account_id

        @_callback
        def onRejectedIncomingCall(self, prm):
            if prm.statusCode == 486:  # pjsua's own call limit: the caller is journaled as missed
                line = self._stack.line_for_request(prm.rdata.wholeMsg)
                if line is not None:
                    number, _, uri = _remote_party(prm.remoteInfo)
                    line._emit("waiting", number=number, uri=uri)

    class _Account(pj.Account):
        """A line's account: incoming calls and registration state go to the line."""

        def __init__(self, line):
            super().__init__()
            self._line = line

        @_callback
        def onIncomingCall(self, prm):
            self._line._incoming(self, prm)

        @_callback
        def onRegState(self, prm):
            self._line._registration_changed(prm.code, prm.reason, prm.expiration)

    class _Call(pj.Call):
        """One pjsua2 call; its callbacks go to its leg (or, refused, nowhere)."""

        def __init__(self, account, call_id, leg):
            super().__init__(account, call_id)
            self.leg = leg

        @_callback
        def onCallState(self, prm):
            if self.leg is not None:
                self.leg._state_changed(self)

        @_callback
        def onCallMediaState(self, prm):
            if self.leg is not None:
                self.leg._media_changed(self)

        @_callback
        def onDtmfDigit(self, prm):
            # RFC 2833 digits come on a media thread: hand them to the sip-stack thread,
            # which sends every event of the call, in order.
            if self.leg is not None:
                self.leg._dtmf_received(prm.digit, prm.method)

    class _FramePort(pj.AudioMediaPort):
        """A conference port between a call and its SipAudio; runs on pjmedia's clock thread.

        Ports outlive calls (see SipStack.take_port): ``attach`` points one at the next
        call's buffers, or at none (it then drops what it hears and says silence).
        """

        def __init__(self):
            super().__init__()
            self._received = self._outgoing = None

        def attach(self, audio):
            """Carry ``audio``'s frames from now on (None: carry nothing)."""
            # Two stores: the clock thread may see one new and one old buffer for a frame, which
            # costs at most that frame (a detached port has no call that could hear it).
            self._received, self._outgoing = (audio._incoming, audio._outgoing) if audio else (None, None)

        def onFrameReceived(self, frame):
            try:
                received = self._received
                if frame.type == AUDIO_FRAME and received is not None:
                    received.put(read_frame_bytes(frame.buf))
            except Exception:  # never unwind into pjmedia's clock thread
                log.exception("SIP audio in failed")

        def onFrameRequested(self, frame):
            try:
                outgoing = self._outgoing
                data = outgoing.get() if outgoing is not None else None
                frame.type = AUDIO_FRAME
                if data is None:  # nothing queued, or no call attached
                    data = SILENCE
                write_frame_bytes(frame, data)
            except Exception:
                log.exception("SIP audio out failed")


# --- a call's audio -----------------------------------------------------------------------

class SipAudio(FramedAudio):
    """One call's audio as 320-byte frames: what the far end said, and what it will hear."""

    def __init__(self, name):
        super().__init__()  # the buffers pjmedia's clock thread and the engine's media clock share
        self.name = name
        self.closed = False

    def write_frame(self, frame):
        """Queue one frame for the far end; never blocks (late frames push out old ones)."""
        if self.closed:
            return  # the call ended: its "ended" event is on the way
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"{self.name}: a frame is {FRAME_BYTES} bytes, not {len(frame)}")
        self._outgoing.put(bytes(frame))

    def close(self):
        """Stop taking frames; safe to call twice."""
        self.closed = True
        self._incoming.clear()
        self._outgoing.clear()


# --- a call -------------------------------------------------------------------------------

class SipLeg:
    """One call on a SIP line; its methods run on the sip-stack thread and wait for it."""

    def __init__(self, line, channel, direction):
        self.line = line
        self.channel = channel
        self.direction = direction  # "in" or "out"
        self.state = "idle"  # idle, ringing, dialing, alerting, active, ended
        self.audio = SipAudio(f"{line.name}/{channel}")
        self.number = ""
        self._call = None
        self._port = None
        self._call_media = None
        self._hung_up_locally = False
        self._connected_at = None
        self._digits = collections.deque()  # received, not yet reported

    def answer(self):
        """Send 200 OK to the ringing incoming call."""
        self.line._stack.call(self._answer)

    def hangup(self):
        """End the call: BYE when up, CANCEL when dialling, 603 Decline when ringing."""
        self.line._stack.call(self._hangup)

    def dial(self, target):
        """Call a SIP URI, or a number through the registrar (or the first peer)."""
        try:
            uri = self.line.target_uri(target)
            self.line._stack.call(lambda: self._dial(uri))
        except FirmwareError:
            if self.state == "idle":
                self.state = "ended"  # never dialled: the line may forget it like any ended leg
            raise

    def send_dtmf(self, digits):
        """Send DTMF digits: RFC 2833 events, or SIP INFO when the line's ``dtmf`` is "info"."""
        bad = set(digits) - DTMF_DIGITS
        if bad or not digits:
            raise LineStateError(f"{self.line.name}: not DTMF digits: {digits!r}")
        self.line._stack.call(lambda: self._send_dtmf(digits))

    # --- on the sip-stack thread ------------------------------------------------------------

    def _answer(self):
        if self.state != "ringing":
            raise LineStateError(f"{self.line.name}: no call is ringing on {self.channel}")
        self._call.answer(_op(200))

    def _hangup(self):
        if self._call is None or self.state in ("idle", "ended"):
            return
        self._hung_up_locally = True
        was_connected = self.state == "active"
        self._call.hangup(_op())
        if self.state != "ended":  # a CANCEL waits for its 487: the engine need not
            self._ended(487 if not was_connected and self.direction == "out" else 200,
                        "Request Terminated" if not was_connected else "OK")

    def _dial(self, uri):
        if self.state != "idle":
            raise LineStateError(f"{self.line.name}: {self.channel} has already dialled (a leg is one call)")
        self.line._claim_channel(self)
        self.state = "dialing"
        self._call = _Call(self.line._account, pj.PJSUA_INVALID_ID, self)
        try:
            self._call.makeCall(uri, _call_op())
        except Exception:
            self._ended(0, "not sent", emit=False)
            raise

    def _send_dtmf(self, digits):
        if self.state != "active":
            raise LineStateError(f"{self.line.name}: no active call on {self.channel}")
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if self.line.dtmf == "info" else pj.PJSUA_DTMF_METHOD_RFC2833
        self._call.sendDtmf(prm)

    def _ring(self, call, number):
        """Take an incoming call: 180 Ringing now, 200 OK when the engine answers."""
        self._call = call
        self.number = number
        self.state = "ringing"
        call.answer(_op(180))

    def _state_changed(self, call):
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_EARLY and self.state == "dialing" and info.role == pj.PJSIP_ROLE_UAC:
            self.state = "alerting"
            self.line._emit("alerting", channel=self.channel)
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.state not in ("active", "ended"):
            self.state = "active"
            self._connected_at = time.monotonic()
            self.line._emit("connected", channel=self.channel)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._ended(info.lastStatusCode, info.lastReason)

    def _media_changed(self, call):
        info = call.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self._connect_audio(call.getAudioMedia(index))
                return

    def _connect_audio(self, call_media):
        if self._port is None:
            self._port = self.line._stack.take_port(self.audio)
        # After a re-INVITE pjsua may rebuild the stream in the same conference slot, without
        # its connections: connect again every time (harmless when they are still there).
        call_media.startTransmit(self._port)
        self._port.startTransmit(call_media)
        self.line._stack.bury(self._call_media)
        self._call_media = call_media

    def _dtmf_received(self, digit, method):
        # RFC 2833 digits arrive on a media thread, SIP INFO on ours: either way they are
        # sent from the sip-stack thread, and any still queued go out before "ended".
        self._digits.append((digit, "info" if method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"))
        if self.line._stack.on_stack_thread():
            self._send_digits()
        else:
            self.line._stack.post(self._send_digits)

    def _send_digits(self):
        while True:
            try:
                digit, method = self._digits.popleft()
            except IndexError:
                return
            self.line._emit("dtmf", digit=digit, channel=self.channel, method=method)

    def _ended(self, code, reason, emit=True):
        if self.state == "ended":
            self._release_call()
            return
        connected = self.state == "active"
        self.state = "ended"
        seconds = time.monotonic() - self._connected_at if self._connected_at else 0.0
        cause = end_cause(code, local=self._hung_up_locally, connected=connected, direction=self.direction)
        self.audio.close()
        self.line._release_channel(self)
        if self._call is None or not self._call.isActive():
            self._release_call()
        self._send_digits()
        if emit:
            self.line._emit("ended", cause=cause, channel=self.channel, code=int(code), reason=reason,
                            seconds=round(seconds, 2))

    def _release_call(self):
        """Hand the call and its port to the graveyard (deleted on the next loop turn)."""
        if self._call is not None:
            self._call.leg = None  # no cycle left for the garbage collector to find on another thread
        if self._port is not None:
            self.line._stack.give_back_port(self._port, self._call_media)
        self.line._stack.bury(self._call, self._call_media)
        self._call = self._port = self._call_media = None


# --- a line -------------------------------------------------------------------------------

class SipLine:
    """A SIP trunk (registered to a provider) or a peer line, carrying up to ``channels`` calls."""

    family = "sip"
    inband_dtmf = False
    software_gain = False
    sms = False

    def __init__(self, config, on_event, *, name="sip"):
        if not AVAILABLE:
            raise SipUnavailable(UNAVAILABLE_REASON)
        self.name = name
        self.config = dict(config)
        self.dtmf = config.get("dtmf", "rfc2833")
        self.channels = int(config.get("channels", 4))
        self.registrar = config.get("registrar") or None
        self.address = None
        self.port = None
        self.account_id = None
        self.registration = "registering" if self.registrar else "no registrar (accepts calls from listed peers)"
        self._on_event = on_event
        self._legs = collections.OrderedDict()  # channel -> SipLeg, the ended ones kept a while
        self._active = set()  # legs using a channel
        self._legs_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._refused = []  # calls answered 403/486, kept until they are gone
        self._incoming_numbers = itertools.count(1)
        self._account = None
        self._transport_id = None
        self._closed = False
        self._down = None
        self._peers = _peer_networks(config.get("peers", []), self.registrar)
        self._stack = _acquire_stack(config.get("codecs") or DEFAULT_CODECS)
        try:
            self._stack.call(self._open)
        except FirmwareError:
            self._give_up()
            raise
        _open_lines.add(self)

    def info(self):
        """Family, library, where it listens, registration, codecs and channels, as known now."""
        return {"family": self.family, "model": f"pjsua2 {self._stack.version}", "address": self.address,
                "port": self.port, "transport": "udp", "registration": self.registration,
                "codecs": [_codec_name(c) for c in self._stack.codecs],
                "codecs_unavailable": list(self._stack.missing_codecs),
                "channels": self.channels, "channels_in_use": len(self._active),
                "stack_max_calls": self._stack.max_calls}

    def leg(self, channel):
        """The call on ``channel``: an incoming one, or a new outgoing leg for a new id."""
        with self._legs_lock:
            leg = self._legs.get(channel)
            if leg is None:
                leg = self._legs[channel] = SipLeg(self, channel, "out")
                self._forget_old_legs()
            return leg

    def set_gain(self, microphone, speaker):
        """SIP audio has no hardware levels: the engine applies gain, or nobody does."""
        raise LineStateError(f"{self.name}: a SIP line has no gain controls")

    def send_sms(self, number, text):
        """Not possible on SIP."""
        raise LineStateError(f"{self.name}: a SIP line cannot send SMS/USSD")

    def ussd(self, code, timeout=30.0):
        """Not possible on SIP."""
        raise LineStateError(f"{self.name}: a SIP line cannot send SMS/USSD")

    def target_uri(self, target):
        """A SIP URI for ``target``: a URI as it is, a number at the registrar or the first peer."""
        target = str(target).strip()
        if target.startswith(("sip:", "sips:")):
            return target
        host = _uri_host(self.registrar) if self.registrar else self._first_peer_host()
        if not NUMBER.match(target) or host is None:
            raise LineStateError(f"{self.name}: cannot dial {target!r}: give a SIP URI, or set a "
                                 f"registrar or a peer host to send numbers to")
        return f"sip:{target}@{host}"

    def close(self):
        """Hang up every call, shut the account and the transport; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _open_lines.discard(self)
        try:
            if self._stack.on_stack_thread():  # from an event handler: inside a pjsua2 callback
                self._hangup_all()
                self._stack.post(self._teardown)
            else:
                self._stack.call(self._hangup_all)
                self._idle.wait(CLOSE_SECONDS)  # BYEs answered, CANCELs done
                self._stack.call(self._teardown)
        except FirmwareError as err:
            log.warning("%s: closing: %s", self.name, err)
        _release_stack(self._stack)

    def _give_up(self):
        """Undo a half-done open (a port in use, a bad registrar URI)."""
        try:
            self._stack.call(self._teardown)
        except FirmwareError as err:
            log.warning("%s: cleaning up: %s", self.name, err)
        _release_stack(self._stack)

    # --- on the sip-stack thread ------------------------------------------------------------

    def _open(self):
        transport = pj.TransportConfig()
        transport.port = int(self.config.get("sip_port", 5060))
        bind = self.config.get("bind", "0.0.0.0")
        if bind not in ("0.0.0.0", "::", ""):
            transport.boundAddress = bind
        self._transport_id = self._stack.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.address, self.port = _split_host_port(self._stack.ep.transportGetInfo(self._transport_id).localName)
        self._stack.lines.append(self)
        self._account = _Account(self)
        self._account.create(self._account_config(bind))
        self.account_id = self._account.getId()
        if self._stack.max_calls is not None and self.channels > self._stack.max_calls:
            log.warning("%s: %d channels asked, but this pjsua2 build carries %d calls at once (all SIP "
                        "lines together; PJSUA_MAX_CALLS)", self.name, self.channels, self._stack.max_calls)

    def _account_config(self, bind):
        config = pj.AccountConfig()
        user = self.config.get("username") or self.name
        config.sipConfig.transportId = self._transport_id
        config.mediaConfig.transportConfig.port = int(self.config.get("rtp_port", 4000))
        if bind not in ("0.0.0.0", "::", ""):
            config.mediaConfig.transportConfig.boundAddress = bind
        config.natConfig.udpKaIntervalSec = int(self.config.get("keepalive_seconds", 15))
        if not self.registrar:
            config.idUri = f"sip:{user}@{self.address}:{self.port}"
            return config
        config.idUri = f"sip:{user}@{_uri_host(self.registrar)}"
        config.regConfig.registrarUri = self.registrar
        config.regConfig.timeoutSec = int(self.config.get("reregister_seconds", 300))
        config.regConfig.retryIntervalSec = 60
        config.sipConfig.authCreds.append(pj.AuthCredInfo(
            "digest", self.config.get("auth_realm", "*"), user, 0, self.config.get("password", "")))
        return config

    def _incoming(self, account, prm):
        call = _Call(account, prm.callId, None)
        number, name, uri = _remote_party(call.getInfo().remoteUri)
        host = _split_host_port(prm.rdata.srcAddress)[0]
        if not self._allowed(host):
            log.warning("%s: refused a call from %s (%s): not a listed peer", self.name, host, uri)
            return self._refuse(call, 403)
        if self._closed or self._down:
            return self._refuse(call, 503)
        if len(self._active) >= self.channels:
            self._refuse(call, 486)
            return self._emit("waiting", number=number, uri=uri)
        leg = self._new_incoming_leg()
        call.leg = leg
        self._claim_channel(leg)
        leg._ring(call, number)
        self._emit("incoming", number=number, channel=leg.channel, name=name, uri=uri)

    def _new_incoming_leg(self):
        with self._legs_lock:
            channel = f"in-{next(self._incoming_numbers)}"
            leg = self._legs[channel] = SipLeg(self, channel, "in")
            self._forget_old_legs()
            return leg

    def _refuse(self, call, code):
        call.hangup(_op(code))
        gone = [c for c in self._refused if not c.isActive()]
        self._stack.bury(*gone)
        self._refused = [c for c in self._refused if c not in gone] + [call]

    def _allowed(self, host):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._peers)

    def _claim_channel(self, leg):
        if len(self._active) >= self.channels:
            raise LineStateError(f"{self.name}: all {self.channels} channels are in use")
        in_use, limit = self._stack.calls_in_use(), self._stack.max_calls
        if leg.direction == "out" and limit is not None and in_use is not None and in_use >= limit:
            raise LineStateError(f"{self.name}: the SIP library carries {limit} calls at once, all in use")
        if self._closed or self._down:
            raise LineStateError(f"{self.name}: the line is {'closed' if self._closed else 'down'}")
        self._active.add(leg)
        self._idle.clear()

    def _release_channel(self, leg):
        self._active.discard(leg)
        if not self._active:
            self._idle.set()

    def _registration_changed(self, code, reason, expiration):
        if 200 <= code < 300:
            state = "registered" if expiration > 0 else "unregistered"
            self.registration = state
        else:  # 401/403/404: the provider said no; a timeout or 5xx: it could not say yes
            state = "refused" if code in REFUSING_REGISTRARS else "failed"
            self.registration = f"{state}: {code} {reason}"
        self._emit("registration", state=state, code=int(code), reason=reason)

    def _hangup_all(self):
        for leg in list(self._active):
            try:
                leg._hangup()
            except Exception as err:  # a call that cannot be hung up goes with the library
                log.warning("%s: hanging up %s: %s", self.name, leg.channel, _text(err))

    def _teardown(self):
        """Delete calls, ports, the account and the transport, in that order."""
        with self._legs_lock:
            legs = list(self._legs.values())
        for leg in legs:
            leg._ended(0, "line closed", emit=leg in self._active)
            leg._release_call()
        self._stack.bury(*self._refused)
        self._refused = []
        self._stack.flush_graveyard()  # calls and ports before the account they belong to
        if self._account is not None:
            self._account.shutdown()
            self._account = None
        if self._transport_id is not None:
            self._close_transport()
        if self in self._stack.lines:
            self._stack.lines.remove(self)

    def _close_transport(self):
        try:
            self._stack.ep.transportClose(self._transport_id)
        except Exception as err:
            log.debug("%s: closing the transport: %s", self.name, _text(err))
        self._transport_id = None

    def _stack_down(self, reason):
        self._down = reason
        self._emit("down", reason=reason)

    def _emit(self, kind, **data):
        try:
            self._on_event(LineEvent(kind, data))
        except Exception:  # the engine's trouble must not stop the SIP stack
            log.exception("%s: event handler failed for %s", self.name, kind)

    # --- helpers ------------------------------------------------------------------------------

    def _forget_old_legs(self):
        ended = [channel for channel, leg in self._legs.items() if leg.state == "ended"]
        for channel in ended[:max(0, len(ended) - KEPT_LEGS)]:
            del self._legs[channel]

    def _first_peer_host(self):
        for peer in self.config.get("peers", []):
            if "/" not in peer:
                return peer
        return None


# --- small helpers --------------------------------------------------------------------------

def end_cause(code, *, local, connected, direction):
    """Why a call ended, in the engine's words, from its SIP status and who ended it."""
    if local:
        return "local"
    if connected or direction == "in":
        return "remote"  # a BYE, or the caller gave up while it rang (CANCEL)
    if code in (486, 600):
        return "busy"
    if code == 603:
        return "rejected"
    if code in (408, 480, 487):
        return "no answer"
    return "failed" if code >= 300 or code == 0 else "remote"


def _op(code=0):
    prm = pj.CallOpParam(True)
    prm.statusCode = code
    return prm


def _call_op():
    prm = pj.CallOpParam(True)
    prm.opt.audioCount = 1
    prm.opt.videoCount = 0
    return prm


def _remote_party(remote_uri):
    """(number, display name, URI) from a From/remote URI such as '"Ann" <sip:+359888@host>'."""
    text = remote_uri or ""
    match = re.match(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>', text)
    name, uri = ((match.group(1) or match.group(2) or "").strip(), match.group(3)) if match else ("", text.strip())
    user = re.match(r"^sips?:([^@;>]+)@", uri)
    number = user.group(1) if user else ""
    if number.lower() in ("anonymous", "unknown", "restricted", "private"):
        number = ""
    return number, name, uri


def _split_host_port(address):
    """('127.0.0.1', 5070) from '127.0.0.1:5070' or '[::1]:5070'."""
    match = re.match(r"^\[?([^\]]*?)\]?(?::(\d+))?$", address.strip())
    host, port = match.group(1), match.group(2)
    return host, int(port) if port else None


def _uri_host(uri):
    """'provider.example.com:5080' from 'sip:provider.example.com:5080;transport=udp'."""
    rest = re.sub(r"^sips?:", "", uri).split(";")[0]
    return rest.split("@")[-1]


def _request_uri_port(message):
    """The port of the Request-URI on the first line of a SIP request (5060 when none)."""
    first = message.split("\r\n", 1)[0].split("\n", 1)[0]
    match = re.match(r"^\S+\s+sips?:(?:[^@\s]*@)?(\[[^\]]*\]|[^:;>\s]+)(?::(\d+))?", first)
    if not match:
        return None
    return int(match.group(2)) if match.group(2) else 5060


def _request_uri_user(message):
    """The user part of the Request-URI on the first line of a SIP request, or None."""
    match = re.match(r"^\S+\s+sips?:([^@\s;>]+)@", message)
    return match.group(1) if match else None


def _peer_networks(peers, registrar):
    """The networks allowed to call in: the listed peers and the registrar's host."""
    hosts = list(peers) + ([_uri_host(registrar).split(":")[0]] if registrar else [])
    networks = []
    for host in hosts:
        try:
            networks.append(ipaddress.ip_network(host, strict=False))
        except ValueError:
            networks.extend(_resolve(host))
    return networks


def _resolve(host):
    """The addresses of a host name, as one-address networks (none if it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as err:
        log.warning("SIP peer %s does not resolve: %s", host, err)
        return []
    return [ipaddress.ip_network(info[4][0]) for info in infos]


def _native_library():
    """pjsua's C library inside the pjsua2 extension, for the counts pjsua2 does not wrap."""
    try:
        import pjsua2._pjsua2 as extension
        return ctypes.CDLL(extension.__file__)
    except (ImportError, OSError, AttributeError):
        return None


def _codec_name(codec_id):
    """'PCMA/8000' from pjsua's 'PCMA/8000/1'."""
    return "/".join(codec_id.split("/")[:2])


def _text(err):
    """A pjsua2 error's own words, or the exception's."""
    if pj is not None and isinstance(err, pj.Error):
        return f"{err.title}: {err.reason}" if err.title else err.reason
    return str(err)


def _firmware_error(err):
    """Any error from a job, as a FirmwareError the engine catches at its boundary."""
    if isinstance(err, FirmwareError):
        return err
    return SipError(_text(err))
