"""Recordings: compression through real ffmpeg, retention on a simulated small disk, safe paths."""
import datetime
import os
import resource
import wave

import numpy as np
import pytest
from pydub import AudioSegment

from appliance import recordings
from appliance.errors import RecordingError
from appliance.journal import Journal

RATE = 8000
LEFT_HZ = 500  # the caller's side
RIGHT_HZ = 1300  # the operator's side
SEPARATION_DB = 10  # how much louder a tone must be on its own side than on the other
NOW = datetime.datetime(2024, 8, 15, 12, 0, tzinfo=datetime.timezone.utc)
DAY = 86400


def tone(hz, seconds, level=0.3):
    """A sine tone as 16-bit samples at 8 kHz."""
    t = np.arange(int(RATE * seconds)) / RATE
    return (level * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")


def write_wav(path, *channels):
    """Write 16-bit 8 kHz channels (one array each) as a WAV; return the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    samples = np.column_stack(channels).ravel()
    with wave.open(path, "wb") as wav:
        wav.setnchannels(len(channels))
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def level_at(samples, hz, rate):
    """The spectrum's magnitude at ``hz`` (peak of the nearby bins)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    index = int(round(hz * len(samples) / rate))
    return spectrum[index - 3:index + 4].max()


def db(a, b):
    return 20 * np.log10(max(a, 1e-9) / max(b, 1e-9))


@pytest.fixture
def stereo_wav(tmp_path):
    """Ten seconds of a call: one tone on the caller's side, another on the operator's."""
    path = tmp_path / "recordings" / "2024" / "08" / "15" / "call-1.wav"
    return write_wav(str(path), tone(LEFT_HZ, 10), tone(RIGHT_HZ, 10))


# --- compression -------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_compress_keeps_length_and_sides_apart(stereo_wav, fmt, capsys):
    wav_size = os.path.getsize(stereo_wav)
    out = recordings.compress(stereo_wav, fmt)
    assert out == stereo_wav[:-4] + "." + recordings.FORMATS[fmt].ext
    assert not os.path.exists(stereo_wav)
    assert not [name for name in os.listdir(os.path.dirname(out)) if name != os.path.basename(out)]
    decoded = AudioSegment.from_file(out)
    assert abs(len(decoded) - 10_000) <= 100
    assert decoded.channels == 2
    left, right = (np.array(side.get_array_of_samples(), dtype=float) for side in decoded.split_to_mono())
    rate = decoded.frame_rate
    assert db(level_at(left, LEFT_HZ, rate), level_at(right, LEFT_HZ, rate)) > SEPARATION_DB
    assert db(level_at(right, RIGHT_HZ, rate), level_at(left, RIGHT_HZ, rate)) > SEPARATION_DB
    with capsys.disabled():
        print(f"\n{fmt}: 10 s stereo WAV {wav_size} B -> {os.path.getsize(out)} B,"
              f" ratio {wav_size / os.path.getsize(out):.1f}x")


def test_compress_keeps_mono_mono(tmp_path):
    wav = write_wav(str(tmp_path / "call-2.wav"), tone(LEFT_HZ, 3))
    decoded = AudioSegment.from_file(recordings.compress(wav, "ogg"))
    assert decoded.channels == 1
    assert abs(len(decoded) - 3000) <= 100


def test_compress_to_wav_changes_nothing(stereo_wav):
    before = open(stereo_wav, "rb").read()
    assert recordings.compress(stereo_wav, "wav") == stereo_wav
    assert open(stereo_wav, "rb").read() == before


def test_compressed_file_is_as_readable_as_the_wav(stereo_wav):
    os.chmod(stereo_wav, 0o640)
    assert os.stat(recordings.compress(stereo_wav, "ogg")).st_mode & 0o777 == 0o640


def test_unknown_format_is_refused(stereo_wav):
    with pytest.raises(ValueError):
        recordings.compress(stereo_wav, "aac")
    assert os.path.exists(stereo_wav)


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_corrupt_wav_is_left_in_place(tmp_path, fmt):
    wav = tmp_path / "call-3.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(2000))
    with pytest.raises(RecordingError, match="call-3.wav"):
        recordings.compress(str(wav), fmt)
    assert os.listdir(tmp_path) == ["call-3.wav"]


def test_ffmpeg_refusing_the_audio_leaves_the_wav(tmp_path):
    # A header Python's wave module reads but ffmpeg refuses (sample rate 0), so the failure
    # comes from ffmpeg itself and its own message is passed on.
    wav = write_wav(str(tmp_path / "call-4.wav"), tone(LEFT_HZ, 1))
    data = bytearray(open(wav, "rb").read())
    data[24:28] = (0).to_bytes(4, "little")
    open(wav, "wb").write(bytes(data))
    with pytest.raises(RecordingError, match="call-4.wav.*ffmpeg"):
        recordings.compress(wav, "ogg")
    assert open(wav, "rb").read() == bytes(data)
    assert os.listdir(tmp_path) == ["call-4.wav"]


def test_full_disk_during_encoding_leaves_the_wav(stereo_wav):
    # A file-size limit makes the kernel refuse ffmpeg's writes past 4 KiB, as a full disk
    # would; ffmpeg inherits it, this process writes nothing while it is set.
    before = open(stereo_wav, "rb").read()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(RecordingError, match="call-1.wav"):
            recordings.compress(stereo_wav, "flac")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert open(stereo_wav, "rb").read() == before
    assert os.listdir(os.path.dirname(stereo_wav)) == ["call-1.wav"]


def test_missing_wav_raises_recording_error(tmp_path):
    with pytest.raises(RecordingError, match="call-9.wav"):
        recordings.compress(str(tmp_path / "call-9.wav"), "ogg")


# --- retention ---------------------------------------------------------------------

def put(data_dir, days_ago, name, size=1000, now=NOW):
    """A recording ``days_ago`` days before ``now`` in its day folder; return its relative path."""
    when = now - datetime.timedelta(days=days_ago)
    relative = os.path.join("recordings", when.strftime("%Y/%m/%d"), name)
    path = os.path.join(data_dir, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"\0" * size)
    os.utime(path, (when.timestamp(), when.timestamp()))
    return relative


class SmallDisk:
    """disk_usage for a disk of ``capacity`` bytes holding exactly what is under the data dir."""

    def __init__(self, data_dir, capacity):
        self.data_dir = data_dir
        self.capacity = capacity
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        used = sum(os.lstat(os.path.join(folder, name)).st_size
                   for folder, _dirs, names in os.walk(self.data_dir) for name in names)
        return type("Usage", (), {"total": self.capacity, "used": used, "free": self.capacity - used})()


def exists(data_dir, relative):
    return os.path.exists(os.path.join(data_dir, relative))


def test_retention_by_age_keeps_pinned_and_newer(tmp_path):
    data = str(tmp_path)
    old_pinned = put(data, 40, "call-1.wav")
    old = put(data, 40, "call-2.ogg")
    older_folder_alone = put(data, 35, "call-3.mp3")
    recent = put(data, 10, "call-4.ogg")
    today = put(data, 0, "call-5.wav")
    deleted = recordings.enforce_retention(data, max_age_days=30, pinned={old_pinned}, now=NOW)
    assert sorted(deleted) == sorted([old, older_folder_alone])
    assert all(exists(data, path) for path in (old_pinned, recent, today))
    assert not os.path.exists(os.path.dirname(os.path.join(data, older_folder_alone)))
    assert not os.path.exists(os.path.join(data, "recordings", "2024", "07", "11"))
    assert os.path.isdir(os.path.dirname(os.path.join(data, old_pinned)))


def test_age_boundary_is_whole_days(tmp_path):
    data = str(tmp_path)
    kept = put(data, 30, "call-1.ogg")
    gone = put(data, 31, "call-2.ogg")
    assert recordings.enforce_retention(data, max_age_days=30, now=NOW) == [gone]
    assert exists(data, kept)


def test_pinning_the_wav_protects_its_compressed_copy(tmp_path):
    data = str(tmp_path)
    compressed = put(data, 100, "call-7.ogg")
    pinned_as_journal_has_it = compressed[:-4] + ".wav"
    assert recordings.enforce_retention(data, max_age_days=1, pinned={pinned_as_journal_has_it}, now=NOW) == []
    assert exists(data, compressed)


def test_files_outside_day_folders_age_by_mtime(tmp_path):
    data = str(tmp_path)
    old = os.path.join("recordings", "imported", "old.wav")
    new = os.path.join("recordings", "imported", "new.wav")
    for relative, days in ((old, 60), (new, 2)):
        path = os.path.join(data, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
        stamp = (NOW - datetime.timedelta(days=days)).timestamp()
        os.utime(path, (stamp, stamp))
    assert recordings.enforce_retention(data, max_age_days=30, now=NOW) == [old]
    assert exists(data, new)


def test_free_disk_floor_deletes_oldest_first_until_enough_is_free(tmp_path):
    data = str(tmp_path)
    mb = recordings.MB
    pinned = put(data, 9, "call-1.wav", mb)  # the oldest, but a caller card holds it
    first = put(data, 8, "call-2.ogg", mb)
    second = put(data, 7, "call-3.ogg", mb)
    third = put(data, 6, "call-4.ogg", mb)
    newest = put(data, 1, "call-5.ogg", mb)
    disk = SmallDisk(data, capacity=7 * mb)  # 5 MB used, 2 MB free
    deleted = recordings.enforce_retention(data, min_free_mb=4, pinned=[pinned], now=NOW, disk_usage=disk)
    assert deleted == [first, second]
    assert disk(data).free >= 4 * mb
    assert all(exists(data, path) for path in (pinned, third, newest))


def test_free_disk_floor_within_a_day_goes_by_time(tmp_path):
    data = str(tmp_path)
    morning = put(data, 3, "call-20.ogg", recordings.MB)
    evening = put(data, 3, "call-10.ogg", recordings.MB)  # lower id, but written later
    os.utime(os.path.join(data, morning), (NOW.timestamp() - 3 * DAY - 3600,) * 2)
    disk = SmallDisk(data, capacity=3 * recordings.MB)
    assert recordings.enforce_retention(data, min_free_mb=2, now=NOW, disk_usage=disk) == [morning]
    assert exists(data, evening)


def test_enough_free_disk_deletes_nothing(tmp_path):
    data = str(tmp_path)
    put(data, 300, "call-1.ogg")
    disk = SmallDisk(data, capacity=100 * recordings.MB)
    assert recordings.enforce_retention(data, min_free_mb=10, now=NOW, disk_usage=disk) == []


def test_call_in_progress_is_left_alone(tmp_path):
    data = str(tmp_path)
    part = put(data, 50, "call-8.wav.part", recordings.MB)
    finished = put(data, 50, "call-7.wav", recordings.MB)
    disk = SmallDisk(data, capacity=2 * recordings.MB)  # nothing free: delete all it may
    deleted = recordings.enforce_retention(data, max_age_days=1, min_free_mb=10, now=NOW, disk_usage=disk)
    assert deleted == [finished]
    assert exists(data, part)


def test_stale_compress_temp_is_swept_but_a_fresh_one_is_not(tmp_path):
    data = str(tmp_path)
    stale = put(data, 2, ".call-1.ogg.abc123.tmp")
    fresh = os.path.join(os.path.dirname(stale), ".call-2.ogg.def456.tmp")
    open(os.path.join(data, fresh), "wb").close()
    assert recordings.enforce_retention(data, now=NOW.timestamp() + 60) == [stale]
    assert exists(data, fresh)


def test_symlinks_never_lead_retention_out_of_recordings(tmp_path):
    data = str(tmp_path / "data")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    precious = outside / "call-1.wav"
    precious.write_bytes(b"\0" * 1000)
    os.utime(precious, (0, 0))
    day = os.path.join(data, "recordings", "2020", "01")
    os.makedirs(day)
    os.symlink(outside, os.path.join(day, "01"))  # a whole day folder pointing out
    os.symlink(precious, os.path.join(day, "call-2.wav"))  # a single file pointing out
    own = put(data, 400, "call-3.wav")
    disk = SmallDisk(data, capacity=1)  # never enough: everything deletable goes
    deleted = recordings.enforce_retention(data, max_age_days=1, min_free_mb=1, now=NOW, disk_usage=disk)
    assert deleted == [own]
    assert precious.read_bytes() == b"\0" * 1000
    assert os.path.islink(os.path.join(day, "01")) and os.path.islink(os.path.join(day, "call-2.wav"))


def test_no_recordings_folder_yet(tmp_path):
    assert recordings.enforce_retention(str(tmp_path), max_age_days=1, min_free_mb=1) == []
    assert recordings.usage(str(tmp_path / "not-made-yet"))["files"] == 0


def test_pinned_set_comes_from_the_journal(tmp_path):
    journal = Journal.open(str(tmp_path / "journal.db"))
    try:
        journal.conn.execute("INSERT INTO pinned_recordings (recording, number, pinned_at)"
                             " VALUES ('recordings/2024/07/01/call-5.wav', '+359888', '2024-07-01')")
        assert recordings.load_pinned(journal.conn) == {"recordings/2024/07/01/call-5.wav"}
    finally:
        journal.close()


# --- safe paths and usage ----------------------------------------------------------

def test_recording_path_resolves_a_journal_path(tmp_path):
    data = str(tmp_path)
    relative = put(data, 1, "call-1.ogg")
    assert recordings.recording_path(data, relative) == os.path.realpath(os.path.join(data, relative))


@pytest.mark.parametrize("relative", [
    "../x",
    "/etc/passwd",
    "recordings/../../x",
    "recordings/../journal.db",
    "recordings",
    "",
    "recordings/2024/link-out/passwd",
])
def test_recording_path_refuses_escapes(tmp_path, relative):
    os.makedirs(tmp_path / "recordings" / "2024")
    os.symlink("/etc", tmp_path / "recordings" / "2024" / "link-out")
    with pytest.raises(RecordingError):
        recordings.recording_path(str(tmp_path), relative)


def test_locate_finds_the_compressed_form_of_a_journal_path(tmp_path):
    data = str(tmp_path)
    compressed = put(data, 1, "call-1.ogg")
    found = recordings.locate(data, compressed[:-4] + ".wav")
    assert found == os.path.realpath(os.path.join(data, compressed))
    assert recordings.mime_type(found) == "audio/ogg"
    assert recordings.locate(data, "recordings/2024/01/01/call-404.wav") is None


def test_usage_counts_finished_recordings(tmp_path):
    data = str(tmp_path)
    put(data, 20, "call-1.ogg", 300)
    put(data, 5, "call-2.wav", 700)
    put(data, 0, "call-3.wav.part", 5000)  # not finished: not counted
    disk = SmallDisk(data, capacity=10_000)
    assert recordings.usage(data, disk_usage=disk) == {
        "files": 2, "bytes": 1000, "oldest": (NOW - datetime.timedelta(days=20)).date().isoformat(),
        "free_bytes": 10_000 - 6000, "by_format": {"ogg": 1, "wav": 1},
    }


def test_recordings_folder_may_itself_be_a_symlink(tmp_path):
    # A technician may point recordings/ at a USB disk; that link is the root, not an escape.
    data = str(tmp_path / "data")
    disk = tmp_path / "usb"
    disk.mkdir()
    os.makedirs(data)
    os.symlink(disk, os.path.join(data, "recordings"))
    old = put(data, 90, "call-1.ogg")
    assert recordings.enforce_retention(data, max_age_days=30, now=NOW) == [old]
    assert os.listdir(disk) == []  # emptied day, month and year folders went too
    assert recordings.recording_path(data, "recordings/x.ogg") == str(disk / "x.ogg")
