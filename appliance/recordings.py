"""Call recordings on disk: compression, retention by age and free disk, safe lookup, usage.

The engine's recorder writes ``recordings/YYYY/MM/DD/call-<id>.wav`` (8 kHz, 16-bit, mono
or stereo with the caller left and the operator right) through a ``.part`` file. The
journal stores that path relative to the data directory; every relative path in this
module is relative to the data directory too (``recordings/...``), so journal values,
pinned values and the paths returned here compare directly.

Compressing swaps the extension (``call-7.wav`` becomes ``call-7.ogg``), so a pinned path
or a journal path is matched by its name without the extension: pinning the WAV also
protects its compressed copy, and ``locate`` finds whichever form exists now.
"""
import dataclasses
import datetime
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
import wave

from pydub.utils import get_encoder_name

from .files import fsync_directory, remove_quietly
from .errors import RecordingError

log = logging.getLogger(__name__)

RECORDINGS = "recordings"
PART_SUFFIX = ".part"  # a call still being recorded (appliance.media.Recorder)
TEMP_SUFFIX = ".tmp"  # compress() output not yet renamed
STALE_TEMP_SECONDS = 3600  # a compress() temp this old was left by a crash or power loss
FFMPEG_TIMEOUT = 600  # seconds; a two-hour stereo call encodes in well under a minute on a Pi
MB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Format:
    """How one storage format is encoded by ffmpeg and served to a browser."""

    ext: str
    mime: str
    muxer: str = ""
    codec: tuple = ()
    bitrates: tuple = ()  # (mono, stereo) for lossy codecs; empty means no bitrate option

    def ffmpeg_args(self, channels):
        """The ffmpeg output options for a recording with ``channels`` channels."""
        args = list(self.codec)
        if self.bitrates:
            args += ["-b:a", self.bitrates[min(channels, 2) - 1]]
        return args + ["-f", self.muxer]


FORMATS = {
    # Untouched: what the recorder wrote.
    "wav": Format("wav", "audio/wav"),
    # Lossless, for boxes that must keep the exact signal: only 1.4-1.7x smaller on a real
    # line, whose hiss in the pauses does not compress.
    "flac": Format("flac", "audio/flac", "flac", ("-c:a", "flac", "-compression_level", "8")),
    # Opus in Ogg, VoIP mode (tuned for speech). 8 kHz input is narrowband, where 16 kbit/s is
    # already transparent for a phone line; stereo needs 24: below that libopus folds the two
    # sides towards mono, which would lose who said what.
    "ogg": Format("ogg", "audio/ogg", "ogg",
                  ("-c:a", "libopus", "-application", "voip"), ("16k", "24k")),
    # MP3 for players that lack Opus (older Safari, car radios): 8 kHz MPEG-2.5 at a low rate.
    "mp3": Format("mp3", "audio/mpeg", "mp3", ("-c:a", "libmp3lame"), ("16k", "24k")),
}
EXTENSIONS = tuple("." + spec.ext for spec in FORMATS.values())


def compress(wav_path, fmt):
    """Convert a finished WAV to ``fmt`` beside it and remove the WAV; return the new path."""
    spec = _format(fmt)
    if spec.ext == "wav":
        return wav_path
    channels = _wav_channels(wav_path)
    dest = os.path.splitext(wav_path)[0] + "." + spec.ext
    _write_durably(wav_path, dest, spec.ffmpeg_args(channels))
    # Only now is the compressed copy durable under its final name, so the WAV may go.
    try:
        os.remove(wav_path)
    except OSError as err:
        # The conversion itself succeeded; retention will sweep the leftover WAV in time.
        log.warning("compressed %s but could not remove it: %s", wav_path, err)
    log.info("compressed %s to %s", wav_path, spec.ext)
    return dest


def enforce_retention(data_dir, max_age_days=None, min_free_mb=None, pinned=frozenset(),
                      now=None, disk_usage=shutil.disk_usage):
    """Delete recordings past ``max_age_days``, then oldest first below ``min_free_mb``; return them."""
    root = _root(data_dir)
    if not os.path.isdir(root):
        return []
    today = _utc_date(now)
    keep = {_stem(path) for path in pinned}
    candidates = [rec for rec in _scan(data_dir, root) if _stem(rec.relative) not in keep]
    deleted = _remove_stale_temps(data_dir, root, _timestamp(now))
    if max_age_days is not None:
        cutoff = today - datetime.timedelta(days=max_age_days)
        deleted += _delete_all(data_dir, [rec for rec in candidates if rec.day < cutoff])
        candidates = [rec for rec in candidates if rec.day >= cutoff]
    if min_free_mb is not None:
        deleted += _delete_until_free(data_dir, candidates, min_free_mb * MB, disk_usage)
    _remove_empty_folders(root, [os.path.join(data_dir, path) for path in deleted], today)
    return deleted


def recording_path(data_dir, relative):
    """The absolute path of ``relative`` (``recordings/...``); refuses anything outside recordings."""
    if not relative or "\0" in relative or os.path.isabs(relative):
        raise RecordingError(f"not a recording path: {relative!r}")
    root = os.path.realpath(_root(data_dir))
    # realpath resolves "..", and symlinks at every level, so what is checked is where the
    # file really is, not what its name claims.
    resolved = os.path.realpath(os.path.join(data_dir, relative))
    if not resolved.startswith(root + os.sep):
        raise RecordingError(f"not a recording path: {relative!r}")
    return resolved


def locate(data_dir, relative):
    """The absolute path of the recording a journal path names, in whatever format it is now, or None."""
    base = os.path.splitext(recording_path(data_dir, relative))[0]
    for ext in (os.path.splitext(relative)[1],) + EXTENSIONS:
        if ext and os.path.isfile(base + ext):
            return base + ext
    return None


def mime_type(path):
    """The MIME type a recording file is served with."""
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    spec = next((spec for spec in FORMATS.values() if spec.ext == ext), None)
    return spec.mime if spec else "application/octet-stream"


def load_pinned(conn):
    """The recordings caller cards pin, from the journal's ``pinned_recordings`` table."""
    return frozenset(row[0] for row in conn.execute("SELECT recording FROM pinned_recordings"))


def usage(data_dir, disk_usage=shutil.disk_usage):
    """Counts for the system page: files, bytes, oldest day (ISO date or None), free bytes."""
    root = _root(data_dir)
    found = _scan(data_dir, root) if os.path.isdir(root) else []
    by_format = {}
    for rec in found:
        by_format[rec.ext] = by_format.get(rec.ext, 0) + 1
    oldest = min((rec.day for rec in found), default=None)
    return {
        "files": len(found),
        "bytes": sum(rec.size for rec in found),
        "oldest": oldest.isoformat() if oldest else None,
        "free_bytes": disk_usage(_existing_parent(data_dir)).free,
        "by_format": by_format,
    }


def _existing_parent(path):
    # A box before its first call may have no data directory yet; its disk still has a size.
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


# --- compression helpers ---------------------------------------------------------------

def _format(fmt):
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown recording format {fmt!r}; choose from {', '.join(FORMATS)}") from None


def _wav_channels(path):
    # Reading the header first gives a clear error for a broken file and picks the bitrate.
    try:
        with wave.open(path, "rb") as wav:
            return wav.getnchannels()
    except (wave.Error, EOFError) as err:
        raise RecordingError(f"cannot compress {path}: not a readable WAV ({err})") from err
    except OSError as err:
        raise RecordingError(f"cannot compress {path}: {err.strerror or err}") from err


def _write_durably(source, dest, output_args):
    # Encode to a temp name, fsync, rename: a crash or a full disk never leaves a half file
    # under the final name, and the temp is removed on any failure.
    temp = None
    try:
        temp = _temp_beside(dest)
        _encode(source, temp, output_args)
        _copy_mode(source, temp)
        _fsync_file(temp)
        os.replace(temp, dest)
        temp = None
        fsync_directory(os.path.dirname(dest))
    except OSError as err:
        if isinstance(err, RecordingError):
            raise
        raise RecordingError(f"cannot compress {source}: {err.strerror or err}") from err
    finally:
        if temp is not None:
            remove_quietly(temp)


def _temp_beside(dest):
    # Same folder, so the final rename is atomic; a dot name, so nothing lists it as a recording.
    handle, temp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".",
                                    suffix=TEMP_SUFFIX, dir=os.path.dirname(dest) or ".")
    os.close(handle)
    return temp


def _encode(source, dest, output_args):
    # ffmpeg straight from file to file streams the audio; pydub's export would hold the whole
    # call in memory and copy it twice, which an hour-long stereo call on a Pi does not need.
    command = [get_encoder_name(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-i", source, "-map_metadata", "-1", *output_args, dest]
    try:
        result = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT)
    except FileNotFoundError as err:
        raise RecordingError(f"cannot compress {source}: ffmpeg is not installed") from err
    except subprocess.TimeoutExpired as err:
        raise RecordingError(f"cannot compress {source}: ffmpeg took over {FFMPEG_TIMEOUT} s") from err
    if result.returncode != 0 or os.path.getsize(dest) == 0:
        raise RecordingError(f"cannot compress {source}: {_ffmpeg_reason(result)}")


def _ffmpeg_reason(result):
    message = result.stderr.decode(errors="replace").strip().splitlines()
    if message:
        return "ffmpeg: " + message[-1]
    if result.returncode < 0:
        return f"ffmpeg killed by signal {-result.returncode}"
    return f"ffmpeg exited with {result.returncode} and wrote nothing"


def _copy_mode(source, dest):
    # mkstemp makes 0600 files; the compressed copy should be as readable as the WAV was.
    os.chmod(dest, stat.S_IMODE(os.stat(source).st_mode))


def _fsync_file(path):
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())




# --- retention helpers -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Recording:
    relative: str
    day: datetime.date
    mtime: float
    size: int

    @property
    def ext(self):
        return os.path.splitext(self.relative)[1].lstrip(".")


def _root(data_dir):
    return os.path.join(data_dir, RECORDINGS)


def _scan(data_dir, root):
    # os.walk does not descend into symlinked folders; symlinked files are skipped below, so
    # nothing outside recordings/ is ever listed, let alone deleted.
    found = []
    for folder, _subdirs, names in os.walk(root):
        for name in names:
            if name.startswith(".") or not name.endswith(EXTENSIONS):
                continue
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue  # removed since the folder was listed
            if stat.S_ISREG(info.st_mode):
                relative = os.path.relpath(path, data_dir)
                found.append(_Recording(relative, _day_of(relative, info.st_mtime), info.st_mtime, info.st_size))
    # Oldest first: the call's day from its folder, then the time the file was last written.
    found.sort(key=lambda rec: (rec.day, rec.mtime, rec.relative))
    return found


def _day_of(relative, mtime):
    # The folder names the day the call was recorded (UTC); mtime changes on compression, so it
    # is only the fallback for files that sit outside a YYYY/MM/DD folder.
    parts = relative.split(os.sep)
    if len(parts) == 5:
        try:
            return datetime.date(int(parts[1]), int(parts[2]), int(parts[3]))
        except ValueError:
            pass
    return datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).date()


def _stem(relative):
    return os.path.splitext(os.path.normpath(relative))[0]


def _utc_date(now):
    return datetime.datetime.fromtimestamp(_timestamp(now), datetime.timezone.utc).date()


def _timestamp(now):
    if now is None:
        return time.time()
    if isinstance(now, datetime.datetime):
        return now.timestamp()
    return float(now)


def _remove_stale_temps(data_dir, root, now):
    stale = []
    for folder, _subdirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if name.startswith(".") and name.endswith(TEMP_SUFFIX) and _older_regular_file(path, now):
                stale.append(os.path.relpath(path, data_dir))
    return _delete_all(data_dir, stale)


def _older_regular_file(path, now):
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_TEMP_SECONDS


def _delete_until_free(data_dir, candidates, min_free, disk_usage):
    deleted = []
    for rec in candidates:
        if disk_usage(data_dir).free >= min_free:
            break
        deleted += _delete_all(data_dir, [rec])
    return deleted


def _delete_all(data_dir, items):
    deleted = []
    for item in items:
        relative = getattr(item, "relative", item)
        if _delete(data_dir, relative):
            deleted.append(relative)
    return deleted


def _delete(data_dir, relative):
    path = os.path.join(data_dir, relative)
    try:
        # Checked again right before removing: a folder swapped for a symlink after the scan
        # must not lead the delete out of recordings/ (recording_path raises if it would).
        recording_path(data_dir, relative)
        if os.path.islink(path):
            return False
        os.remove(path)
    except FileNotFoundError:
        return False  # already gone (another sweep, or the web UI deleted it)
    except (RecordingError, OSError) as err:
        log.warning("retention could not delete %s: %s", relative, err)
        return False
    log.info("retention deleted %s", relative)
    return True


def _remove_empty_folders(root, paths, today):
    # Today's folder stays even when emptied: the recorder may be about to write into it.
    keep = os.path.join(root, today.strftime("%Y"), today.strftime("%m"), today.strftime("%d"))
    for folder in sorted({os.path.dirname(path) for path in paths}, reverse=True):
        while folder != root and folder.startswith(root + os.sep) and folder != keep:
            try:
                os.rmdir(folder)  # fails, as it should, on a folder that still holds anything
            except OSError:
                break
            folder = os.path.dirname(folder)
