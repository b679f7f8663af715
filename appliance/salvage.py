"""Recordings and voicemail messages cut by a crash: found and repaired when the engine starts.

The recorder (appliance.media.Recorder) streams a call into ``call-<id>.wav.part`` and a
message into ``message-<id>.wav.part``; it writes the RIFF header with a length of 0
first and fixes it only when the recording is finished. An engine that is killed
or loses power mid-call leaves such a ``.part``: its audio is all there, its header says
it holds none. ``repair`` gives it the header its size implies, drops a half-written last
sample and gives it its final name, so it plays and is compressed like any other.
"""
import dataclasses
import logging
import os
import re
import struct

from .errors import RecordingError
from .files import fsync_directory, remove_quietly
from .recordings import PART_SUFFIX, RECORDINGS

log = logging.getLogger(__name__)

VOICEMAIL = "voicemail"
KINDS = {"call": "recording", "message": "voicemail"}  # file name prefix: what the file is
_NAME = re.compile(r"^(call|message)-([1-9][0-9]*)\.wav(\.part)?$")
_RIFF_HEADER = struct.Struct("<4sI4s")
_CHUNK_HEADER = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")  # format, channels, rate, bytes per second, block align, bits


@dataclasses.dataclass(frozen=True)
class CutFile:
    """A recording or message file of a call the previous run did not finish."""

    path: str
    kind: str  # "recording" or "voicemail"
    call_id: int

    @property
    def is_part(self):
        """True while the file still has the recorder's temporary name (and header)."""
        return self.path.endswith(PART_SUFFIX)


def find_cut(data_dir, last_call_id, interrupted):
    """The files to salvage: every ``.part`` up to ``last_call_id``, and finished WAVs of ``interrupted`` calls.

    A ``.part`` of a later call belongs to a call of this run, still being recorded. A
    finished WAV of an interrupted call was renamed by the recorder just before the crash,
    so the journal may not name it yet.
    """
    found = []
    for root in (os.path.join(data_dir, RECORDINGS), os.path.join(data_dir, VOICEMAIL)):
        for folder, _subdirs, names in os.walk(root):
            found += [cut for cut in map(_cut_file, [os.path.join(folder, name) for name in names])
                      if cut and _wanted(cut, last_call_id, interrupted)]
    return sorted(found, key=lambda cut: (cut.call_id, cut.path))


def repair(part_path):
    """Give a ``.part`` the WAV header its length implies and its final name; return (path, seconds).

    A file that holds no audio at all (killed before the first frame) is removed and
    (None, 0.0) returned. A file that is not a WAV raises RecordingError and is left as it is.
    """
    try:
        data_bytes, block_align, rate = _fix_header(part_path)
    except _TooShort:
        data_bytes = 0
    if data_bytes == 0:
        log.info("removing %s: cut before its first frame", part_path)
        remove_quietly(part_path)
        return None, 0.0
    final = part_path[:-len(PART_SUFFIX)]
    os.replace(part_path, final)
    fsync_directory(os.path.dirname(final))
    return final, data_bytes / block_align / rate


def _fix_header(path):
    # Sizes from the file's length; a torn last sample frame is cut off, so every channel
    # keeps its place.
    with open(path, "r+b") as handle:
        data_offset, block_align, rate = _layout(handle, path)
        size = os.fstat(handle.fileno()).st_size
        data_bytes = (size - data_offset) // block_align * block_align
        handle.truncate(data_offset + data_bytes)
        handle.seek(4)
        handle.write(struct.pack("<I", data_offset - 8 + data_bytes))
        handle.seek(data_offset - 4)
        handle.write(struct.pack("<I", data_bytes))
        handle.flush()
        os.fsync(handle.fileno())
    return data_bytes, block_align, rate


def wav_seconds(path):
    """The length of a finished WAV, from its header."""
    with open(path, "rb") as handle:
        data_offset, block_align, rate = _layout(handle, path)
        handle.seek(data_offset - 4)
        (data_bytes,) = struct.unpack("<I", handle.read(4))
    return data_bytes / block_align / rate


def _cut_file(path):
    match = _NAME.match(os.path.basename(path))
    if match is None or os.path.islink(path) or not os.path.isfile(path):
        return None
    return CutFile(path, KINDS[match.group(1)], int(match.group(2)))


def _wanted(cut, last_call_id, interrupted):
    return cut.call_id <= last_call_id if cut.is_part else cut.call_id in interrupted


def _layout(handle, path):
    """(offset of the audio, bytes per sample frame, sample rate) of a WAV being read at its start."""
    riff, _size, wave_id = _unpack(_RIFF_HEADER, handle, path)
    if riff != b"RIFF" or wave_id != b"WAVE":
        raise RecordingError(f"{path} is not a WAV file (no RIFF/WAVE header)")
    fmt = None
    while True:
        chunk_id, chunk_size = _unpack(_CHUNK_HEADER, handle, path)
        if chunk_id == b"data":
            if fmt is None:
                raise RecordingError(f"{path}: the audio comes before its format (no fmt chunk)")
            return handle.tell(), fmt[4], fmt[2]
        if chunk_id == b"fmt ":
            fmt = _unpack(_FMT, handle, path)
            if fmt[0] != 1 or fmt[4] == 0 or fmt[2] == 0:
                raise RecordingError(f"{path}: not 16-bit PCM as the recorder writes (format {fmt[0]})")
            handle.seek(chunk_size - _FMT.size + (chunk_size & 1), os.SEEK_CUR)
        else:
            handle.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)


def _unpack(layout, handle, path):
    raw = handle.read(layout.size)
    if len(raw) < layout.size:
        raise _TooShort(f"{path} ends inside its WAV header")
    return layout.unpack(raw)


class _TooShort(RecordingError):
    """The file ends before its header does: the recorder was killed before the first frame."""

