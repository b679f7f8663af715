"""`hotline loadtest` and `hotline call --audio` against a running box (twin + engine)."""
import json
import math
import os
import random
import re
import wave

import numpy as np

from appliance.loadtest import caller_numbers, journaled_calls, max_overlap, summarize

from .conftest import wait_for


def test_caller_numbers_are_distinct_and_share_a_run_prefix():
    numbers = caller_numbers(1500, rng=random.Random(7))
    assert len(set(numbers)) == 1500
    assert all(re.fullmatch(r"\+3598990\d{6}", number) for number in numbers)  # wider past 999
    assert len({number[:10] for number in numbers}) == 1
    assert all(re.fullmatch(r"\+3598990\d{5}", number) for number in caller_numbers(6))


def test_only_finished_calls_of_this_run_count_as_journaled():
    rows = [{"id": 3, "caller": "+359899011001", "ended_at": None, "outcome": None},
            {"id": 2, "caller": "+359899011000", "ended_at": "2026-01-01T10:00:05", "outcome": "answered"},
            {"id": 1, "caller": "+359888123456", "ended_at": "2026-01-01T10:00:01", "outcome": "answered"}]
    found = journaled_calls(rows, ["+359899011000", "+359899011001"])
    assert list(found) == ["+359899011000"]


def test_the_summary_counts_outcomes_and_the_unaccounted():
    results = [{"from": "a", "answered": True}, {"from": "b", "answered": False, "error": "number is busy"},
               {"from": "c", "answered": True}]
    journaled = {"a": {"outcome": "answered", "started_at": "10:00:00", "ended_at": "10:00:05"},
                 "c": {"outcome": "missed", "started_at": "10:00:03", "ended_at": "10:00:04"}}
    summary = summarize(results, journaled, max_concurrent=2)
    assert (summary["placed"], summary["answered"], summary["refused"], summary["journaled"]) == (3, 2, 1, 2)
    assert summary["outcomes"] == {"answered": 1, "missed": 1}
    assert (summary["unaccounted"], summary["unaccounted_callers"]) == (1, ["b"])
    assert (summary["max_concurrent"], summary["max_concurrent_in_journal"]) == (2, 2)


def test_calls_that_touch_do_not_overlap():
    rows = [{"started_at": "1", "ended_at": "2"}, {"started_at": "2", "ended_at": "3"}]
    assert max_overlap(rows) == 1


def test_six_callers_two_at_a_time_are_all_in_the_journal(box):
    summary = box.hotline_json("loadtest", "--calls", "6", "--concurrency", "2", "--hold", "1", "--json",
                               timeout=180)
    assert (summary["placed"], summary["answered"], summary["journaled"]) == (6, 6, 6)
    assert summary["unaccounted"] == 0 and summary["unaccounted_callers"] == []
    # Which outcome depends on the flow the engine runs (answered, ivr, ...): each call has one.
    assert sum(summary["outcomes"].values()) == 6 and "unknown" not in summary["outcomes"]
    assert summary["max_concurrent"] == 2 and summary["lines"] == ["gsm1", "gsm2"]
    # The journal, read on its own, holds six distinct callers of one run, on both lines.
    rows = [row for row in box.engine.request("calls", last=50) if row["caller"].startswith("+3598990")]
    assert len(rows) == 6 and len({row["caller"] for row in rows}) == 6
    assert len({row["caller"][:10] for row in rows}) == 1
    assert sorted(row["line_id"] for row in rows) == ["gsm1"] * 3 + ["gsm2"] * 3
    assert all(row["ended_at"] and row["outcome"] for row in rows)


def test_the_text_summary_on_one_line(box):
    done = box.hotline("loadtest", "--calls", "2", "--line", "gsm2", "--hold", "0.5", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "placed: 2" in done.stdout and "not accounted for: 0" in done.stdout
    assert "lines: gsm2" in done.stdout


def test_an_unknown_line_is_refused_before_any_call(box):
    done = box.hotline("loadtest", "--calls", "1", "--line", "gsm9")
    assert done.returncode == 1
    assert "no virtual modem for line(s) gsm9 (have: gsm1, gsm2)" in done.stderr


def test_nonsense_counts_are_refused(box):
    done = box.hotline("loadtest", "--calls", "0")
    assert done.returncode == 1 and "--calls must be 1 or more" in done.stderr


def write_stereo_tone(path, frequency, seconds, rate=44100):
    """A CD-rate stereo WAV (the twin converts it to 8 kHz mono)."""
    samples = (np.sin(2 * math.pi * frequency * np.arange(int(rate * seconds)) / rate) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.repeat(samples, 2).tobytes())
    return str(path)


def callers_side(box, call_id):
    """The caller's channel of a call's recording (left of a stereo one), as 8 kHz samples."""
    from pydub import AudioSegment

    def decoded():
        recording = box.engine.request("call", id=call_id)["recording"]
        try:  # the engine may be compressing it right now: then ask again
            return AudioSegment.from_file(os.path.join(box.data_dir, recording))
        except FileNotFoundError:
            return None

    sound = wait_for(decoded)
    left = sound.split_to_mono()[0].set_frame_rate(8000)
    return np.frombuffer(left.raw_data, dtype="<i2").astype(float)


def test_a_caller_speaks_a_wav_file_into_the_recording(box, tmp_path):
    path = write_stereo_tone(tmp_path / "voice.wav", 700, 6.0)
    result = box.hotline_json("call", "--line", "gsm1", "--from", "+359888000444", "--audio", path,
                              "--hold", "5", "--json")
    assert result["answered"] and result["audio_seconds"] == 6.0  # 44.1 kHz stereo, converted
    caller = callers_side(box, result["call_id"])
    assert len(caller) > 4 * 8000
    peak_hz = np.argmax(np.abs(np.fft.rfft(caller))) * 8000 / len(caller)
    assert abs(peak_hz - 700) < 10


def test_a_missing_audio_file_is_named(box):
    done = box.hotline("call", "--line", "gsm1", "--from", "+359888000445", "--audio", "nowhere.wav")
    assert done.returncode == 1 and "no audio file nowhere.wav" in done.stderr


def test_keys_in_band_through_the_cli(box):
    """The twin sends the keys as tones: the call goes through; whether the box hears them
    depends on its detector, which the twin's own tests check tone by tone."""
    done = box.hotline("call", "--line", "gsm2", "--from", "+359888000446", "--digits", "5", "--inband",
                       "--hold", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answered"] is True
