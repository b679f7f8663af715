"""Voice prompts: text spoken by espeak-ng, audio converted to 8 kHz mono 16-bit WAV.

Every prompt ends up as ``prompts/<language>/<id>.wav`` in the data directory, in the
engine's own format, so playing one costs nothing but reading frames. Text prompts are
spoken again only when their text changes (a ``.txt`` file beside the WAV remembers it).
"""
import logging
import os
import subprocess
import tempfile

from pydub import AudioSegment, silence
from pydub.exceptions import CouldntDecodeError

from .config import write_atomically
from .errors import PromptError

log = logging.getLogger(__name__)

ESPEAK_VOICES = {"en": "en", "bg": "bg", "uk": "uk", "ru": "ru"}
TARGET_DBFS = -18.0  # speech level; peaks are kept below PEAK_CEILING_DBFS
PEAK_CEILING_DBFS = -1.0
TRIM_BELOW_PEAK_DB = 40.0  # quieter than this under the peak counts as silence at the ends


def prompt_path(data_dir, language, prompt_id):
    """Where a prompt's WAV lives in the data directory."""
    return os.path.join(data_dir, "prompts", language, f"{prompt_id}.wav")


def ensure_prompts(config, data_dir):
    """Speak every text prompt whose WAV is missing or out of date; return those made."""
    made = []
    for prompt in config["prompts"]:
        path = prompt_path(data_dir, prompt["language"], prompt["id"])
        if _spoken_text(path) != prompt["text"]:
            speak(prompt["text"], prompt["language"], path)
            made.append(path)
    return made


def speak(text, language, dest):
    """Speak ``text`` with espeak-ng in ``language`` into ``dest`` as a telephony WAV."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "speech.wav")
        command = ["espeak-ng", "-v", ESPEAK_VOICES[language], "-s", "165", "-w", raw, text]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        except FileNotFoundError as err:
            raise PromptError("espeak-ng is not installed (make run installs it)") from err
        except subprocess.CalledProcessError as err:
            raise PromptError(f"espeak-ng failed: {err.stderr.decode(errors='replace').strip()}") from err
        convert(raw, dest)
    write_atomically(dest[:-4] + ".txt", text)
    log.info("spoke prompt %s", dest)


def convert(source, dest):
    """Convert any audio file ffmpeg reads into a trimmed, levelled 8 kHz mono 16-bit WAV."""
    try:
        audio = AudioSegment.from_file(source)
    except (CouldntDecodeError, IndexError, OSError) as err:
        raise PromptError(f"cannot read audio from {os.path.basename(source)}: {err}") from err
    audio = audio.set_channels(1).set_frame_rate(8000).set_sample_width(2)
    if len(audio) == 0 or audio.max_dBFS == float("-inf"):
        raise PromptError(f"{os.path.basename(source)} holds only silence")
    audio = _trim(audio)
    audio = _level(audio)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    temp = dest + ".tmp"
    audio.export(temp, format="wav")
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, dest)


def _trim(audio):
    """Cut leading and trailing silence (relative to the loudest peak), keeping 100 ms."""
    threshold = audio.max_dBFS - TRIM_BELOW_PEAK_DB
    start = silence.detect_leading_silence(audio, silence_threshold=threshold)
    end = silence.detect_leading_silence(audio.reverse(), silence_threshold=threshold)
    return audio[max(0, start - 100):len(audio) - max(0, end - 100)]


def _level(audio):
    """Bring speech to TARGET_DBFS without pushing peaks over the ceiling."""
    gain = min(TARGET_DBFS - audio.dBFS, PEAK_CEILING_DBFS - audio.max_dBFS)
    return audio.apply_gain(gain)


def _spoken_text(wav_path):
    try:
        with open(wav_path[:-4] + ".txt", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    return text if os.path.exists(wav_path) else None
