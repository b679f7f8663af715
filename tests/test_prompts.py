"""Prompts: spoken by espeak-ng, converted by pydub and ffmpeg to the engine's format."""
import subprocess
import wave

import pytest

from appliance.errors import PromptError
from pydub import AudioSegment

from appliance.config import demo_config
from appliance.prompts import SYSTEM_PROMPTS, PEAK_CEILING_DBFS, TARGET_DBFS, convert, ensure_prompts, prompt_path, speak


def wav_format(path):
    with wave.open(str(path)) as wav:
        return wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes() / wav.getframerate()


@pytest.mark.parametrize("language, text", [
    ("en", "Press one for bachelor programmes."),
    ("bg", "Натиснете едно за бакалавърски програми."),
    ("uk", "Натисніть один для бакалаврських програм."),
    ("ru", "Нажмите один для программ бакалавриата."),
])
def test_speak_in_the_four_languages(tmp_path, language, text):
    dest = tmp_path / f"{language}.wav"
    speak(text, language, str(dest))
    rate, channels, width, seconds = wav_format(dest)
    assert (rate, channels, width) == (8000, 1, 2)
    assert 1.0 < seconds < 6.0


def test_ensure_prompts_speaks_once_and_again_when_the_text_changes(tmp_path):
    config = demo_config()
    made = ensure_prompts(config, str(tmp_path))
    # Every configured prompt, and the engine's own prompts in both languages the demo uses.
    expected = {(p["language"], p["id"]) for p in config["prompts"]}
    expected |= {(language, prompt_id) for prompt_id in SYSTEM_PROMPTS for language in ("en", "bg")}
    assert sorted(made) == sorted(prompt_path(str(tmp_path), *key) for key in expected)
    assert ensure_prompts(config, str(tmp_path)) == []
    config["prompts"][0]["text"] = "Hello."
    assert len(ensure_prompts(config, str(tmp_path))) == 1


def test_convert_an_mp3_to_8k_mono_levelled(tmp_path):
    source = tmp_path / "music.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    "-ac", "2", "-ar", "44100", "-af", "volume=0.05", str(source)], check=True)
    dest = tmp_path / "out.wav"
    convert(str(source), str(dest))
    rate, channels, width, seconds = wav_format(dest)
    assert (rate, channels, width) == (8000, 1, 2) and 1.8 < seconds < 2.2
    levelled = AudioSegment.from_wav(str(dest))
    assert abs(levelled.dBFS - TARGET_DBFS) < 1.0  # brought up from about -47 dBFS
    assert levelled.max_dBFS <= PEAK_CEILING_DBFS + 0.1


def test_a_file_that_is_not_audio_is_refused_and_changes_nothing(tmp_path):
    source = tmp_path / "notes.mp3"
    source.write_text("this is not audio")
    dest = tmp_path / "out.wav"
    dest.write_bytes(b"old")
    with pytest.raises(PromptError, match="notes.mp3"):
        convert(str(source), str(dest))
    assert dest.read_bytes() == b"old"
