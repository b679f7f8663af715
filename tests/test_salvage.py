"""Recordings cut by a crash: the real recorder's ``.part`` files repaired, found and kept."""
import os
import struct
import subprocess
import wave

import numpy as np
import pytest

from appliance import salvage
from appliance.errors import RecordingError
from appliance.media import FRAME_SAMPLES, Recorder

TONE = (np.sin(np.arange(FRAME_SAMPLES) * 2 * np.pi * 1000 / 8000) * 8000).astype("<i2").tobytes()


def cut_recording(path, frames, stereo=False):
    """What a killed engine leaves: the recorder's frames on disk, the header never fixed."""
    recorder = Recorder(str(path), stereo=stereo)
    for _ in range(frames):
        recorder.write(TONE, TONE)
    recorder.flush()  # what had reached the OS when the process died (a batch in memory is lost)
    return str(path) + salvage.PART_SUFFIX, recorder


def ffprobe_seconds(path):
    done = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                          capture_output=True, text=True, check=True)
    return float(done.stdout)


@pytest.mark.parametrize("stereo", [False, True], ids=["mono", "stereo"])
def test_a_cut_recording_gets_the_header_its_length_implies_and_plays(tmp_path, stereo):
    part, _ = cut_recording(tmp_path / "recordings" / "call-7.wav", 150, stereo)  # 3 s
    with wave.open(part, "rb") as broken:
        assert broken.getnframes() == 0  # the crash leaves the header written at the start
    path, seconds = salvage.repair(part)
    assert path == str(tmp_path / "recordings" / "call-7.wav") and not os.path.exists(part)
    assert seconds == pytest.approx(3.0)
    assert ffprobe_seconds(path) == pytest.approx(3.0, abs=0.01)
    with wave.open(path, "rb") as fixed:
        assert fixed.getnchannels() == (2 if stereo else 1)
        samples = np.frombuffer(fixed.readframes(fixed.getnframes()), dtype="<i2")
    assert len(samples) == 150 * FRAME_SAMPLES * (2 if stereo else 1)
    assert np.abs(samples).max() > 7000


def test_a_torn_last_sample_is_cut_so_the_channels_stay_in_place(tmp_path):
    part, _ = cut_recording(tmp_path / "call-8.wav", 10, stereo=True)
    with open(part, "ab") as handle:
        handle.write(b"\x01\x02\x03")  # three bytes of a four-byte stereo sample frame
    path, seconds = salvage.repair(part)
    assert seconds == pytest.approx(0.2)
    with wave.open(path, "rb") as fixed:
        assert fixed.getnframes() == 10 * FRAME_SAMPLES
        assert os.path.getsize(path) == 44 + 10 * FRAME_SAMPLES * 4


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00"], ids=["empty", "header-cut"])
def test_a_file_cut_before_its_first_frame_is_removed(tmp_path, content):
    part = tmp_path / "call-9.wav.part"
    part.write_bytes(content)
    assert salvage.repair(str(part)) == (None, 0.0)
    assert not part.exists()


def test_a_header_without_audio_is_removed(tmp_path):
    part, _ = cut_recording(tmp_path / "call-10.wav", 0)  # the recorder writes its header at once
    assert os.path.getsize(part) == 44
    assert salvage.repair(part) == (None, 0.0) and not os.path.exists(part)


def test_a_file_that_is_not_a_wav_is_left_as_it_is(tmp_path):
    part = tmp_path / "call-11.wav.part"
    part.write_bytes(b"ID3\x04" + bytes(200))
    with pytest.raises(RecordingError, match="not a WAV"):
        salvage.repair(str(part))
    assert part.read_bytes()[:4] == b"ID3\x04"


def test_other_chunks_before_the_audio_are_skipped(tmp_path):
    audio = TONE * 5
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"LIST" + struct.pack("<I", 5) + b"hello\x00"
    part = tmp_path / "message-3.wav.part"
    part.write_bytes(b"RIFF" + struct.pack("<I", 0) + body + b"data" + struct.pack("<I", 0) + audio)
    path, seconds = salvage.repair(str(part))
    assert seconds == pytest.approx(0.1)
    with wave.open(path, "rb") as fixed:
        assert fixed.readframes(10 ** 6) == audio


def test_find_cut_takes_parts_of_earlier_calls_and_finished_files_of_interrupted_ones(tmp_path):
    day = tmp_path / "recordings" / "2026" / "12" / "07"
    box = tmp_path / "voicemail" / "2026" / "12"
    for folder, name in [(day, "call-3.wav.part"), (day, "call-4.wav"), (day, "call-5.wav"),
                         (day, "call-9.wav.part"), (box, "message-3.wav.part"), (day, "notes.txt"),
                         (day, "call-6.ogg")]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    os.symlink("/etc/passwd", day / "call-2.wav.part")
    found = salvage.find_cut(str(tmp_path), last_call_id=8, interrupted={3, 4})
    assert [(os.path.basename(cut.path), cut.kind, cut.call_id, cut.is_part) for cut in found] == [
        ("call-3.wav.part", "recording", 3, True), ("message-3.wav.part", "voicemail", 3, True),
        ("call-4.wav", "recording", 4, False)]
    assert salvage.find_cut(str(tmp_path / "nothing"), 8, set()) == []
