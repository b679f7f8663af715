"""The engine's periodic work: the one-second tick, due call-backs, recordings after the call.

The tick runs on the loop; compression and retention run on one worker thread, so that
ffmpeg or a full disk never delays a call.
"""
import datetime
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from . import journal as journal_module
from . import recordings, salvage, schedule
from .priority import lower_priority
from .errors import RecordingError

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
CALLBACK_SCAN_SECONDS = 10.0
RETENTION_SECONDS = 3600.0
CUT_REASON = "the call was cut by a restart of the engine; its file was repaired on start"


class Housekeeping:
    """The tick (appliance services, queue dispatch, call-backs, retention) and after-call work."""

    def __init__(self, ctx, call_in_loop):
        self.ctx = ctx
        self._call_in_loop = call_in_loop  # run a function on the loop and wait (from the worker)
        self._workers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="after-call", initializer=lower_priority)
        self._last_callback_scan = 0.0
        self._last_retention = float("-inf")

    def start(self):
        """Start ticking once a second."""
        self.ctx.later(TICK_SECONDS, self.tick)

    def _submit(self, work, *args):
        # A future keeps its exception to itself; after-call work nobody waits for must say it failed.
        def logged():
            try:
                work(*args)
            except Exception:
                log.exception("after-call work %s failed", work.__name__)
        self._workers.submit(logged)

    def shutdown(self):
        """Finish the after-call work in hand and stop the worker thread."""
        self._workers.shutdown(wait=True)

    def tick(self):
        """Once a second on the loop: appliance services, queue dispatch, the slower scans."""
        self.ctx.later(TICK_SECONDS, self.tick)
        self.ctx.appliance.tick()  # watchdog liveness, health, clock, panel: never raises
        self.ctx.queues.dispatch()
        now = self.ctx.now()
        if now - self._last_callback_scan >= CALLBACK_SCAN_SECONDS:
            self._last_callback_scan = now
            self.queue_due_callbacks()
        if now - self._last_retention >= RETENTION_SECONDS:
            self._last_retention = now
            self._submit(self.retention)

    def queue_due_callbacks(self):
        """Open call-back tasks that are due go into their queue, inside call-back hours."""
        ctx = self.ctx
        if not ctx.clock_trusted():
            return  # no call-backs by a clock that may say 1970: they could go out at night
        now = datetime.datetime.now(datetime.timezone.utc)
        hours = ctx.config["settings"].get("callback_hours")
        if hours and not schedule.is_open(ctx.time_condition(hours), now, ctx.timezone):
            return
        queues = {q["id"]: q for q in ctx.config["queues"]}
        if not queues:
            return
        for task in ctx.journal.open_callbacks():
            if task["next_attempt_at"] and task["next_attempt_at"] > journal_module.now():
                continue
            ctx.queues.add_task(task, task["queue"] if task["queue"] in queues else next(iter(queues)))

    def compress_later(self, call_id, recording):
        """Compress a call's recording on the worker thread."""
        self._submit(self.compress, call_id, recording)

    def compress(self, call_id, recording):
        """After the call: store the recording compressed (on the worker thread)."""
        data_dir = self.ctx.data_dir
        fmt = self.ctx.config["settings"]["recording_format"]
        try:
            path = recordings.compress(os.path.join(data_dir, recording), fmt)
        except RecordingError as err:
            log.error("call %s: recording kept as WAV: %s", call_id, err)
            return
        self.ctx.post(self._compressed, call_id, os.path.relpath(path, data_dir))

    def _compressed(self, call_id, relative):
        self.ctx.journal.set_call(call_id, recording=relative)

    def salvage_later(self, last_call_id, interrupted):
        """Repair and attach the files of calls the previous run left unfinished (on the worker thread)."""
        self._submit(self.salvage, last_call_id, frozenset(interrupted))

    def salvage(self, last_call_id, interrupted):
        """Give every recording and message a crash cut off a valid header; attach each on the loop."""
        data_dir = self.ctx.data_dir
        for cut in salvage.find_cut(data_dir, last_call_id, interrupted):
            try:
                path, seconds = salvage.repair(cut.path) if cut.is_part else (cut.path, salvage.wav_seconds(cut.path))
            except (RecordingError, OSError) as err:
                log.error("call %s: cannot salvage %s: %s", cut.call_id, cut.path, err)
                continue
            if path is not None:
                self.ctx.post(self._attach_salvaged, cut, os.path.relpath(path, data_dir), seconds)

    def _attach_salvaged(self, cut, relative, seconds):
        journal = self.ctx.journal
        if not journal.salvage_recording(cut.call_id, cut.kind, relative, seconds, CUT_REASON):
            log.warning("call %s: %s kept, but not attached (no such call, or it has one)", cut.call_id, relative)
            return
        log.warning("call %s: salvaged %s (%.1f s) cut by a restart", cut.call_id, relative, seconds)
        if cut.kind == "recording":
            self.compress_later(cut.call_id, relative)
            return
        self.ctx.notify("voicemail", {"number": journal.get_call(cut.call_id)["caller"], "call": cut.call_id,
                                      "seconds": round(seconds, 2), "recording": relative,
                                      "attachment": os.path.join(self.ctx.data_dir, relative)})

    def retention(self):
        """Delete old recordings, or the oldest when the disk is short (on the worker thread)."""
        settings = self.ctx.config["settings"]
        pinned = self._call_in_loop(self.ctx.journal.pinned_recordings)
        deleted = recordings.enforce_retention(self.ctx.data_dir, max_age_days=settings["retention_days"] or None,
                                               min_free_mb=settings["min_free_mb"] or None, pinned=pinned)
        if deleted:
            log.warning("retention deleted %d recording(s)", len(deleted))
            self.ctx.post(self.ctx.journal.recordings_deleted, deleted)
