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

from .files import write_atomically
from .errors import PromptError
from .priority import lower_priority

log = logging.getLogger(__name__)

ESPEAK_VOICES = {"en": "en", "bg": "bg", "uk": "uk", "ru": "ru"}
TARGET_DBFS = -18.0  # speech level; peaks are kept below PEAK_CEILING_DBFS
PEAK_CEILING_DBFS = -1.0
TRIM_BELOW_PEAK_DB = 40.0  # quieter than this under the peak counts as silence at the ends


def prompt_path(data_dir, language, prompt_id):
    """Where a prompt's WAV lives in the data directory."""
    return os.path.join(data_dir, "prompts", language, f"{prompt_id}.wav")


# Prompts the engine itself needs; a configured prompt of the same id replaces them.
SYSTEM_PROMPTS = {
    "accept": {"en": "Hot-line call. Press 1 to accept.",
               "bg": "Обаждане от горещата линия. Натиснете 1, за да го приемете.",
               "uk": "Дзвінок гарячої лінії. Натисніть 1, щоб прийняти.",
               "ru": "Звонок горячей линии. Нажмите 1, чтобы принять."},
    "invalid": {"en": "Sorry, that is not a valid choice.", "bg": "Съжаляваме, този избор е невалиден.",
                "uk": "Вибачте, такого вибору немає.", "ru": "Извините, такого выбора нет."},
    "callback_confirm": {"en": "We will call you back as soon as we can. Goodbye.",
                         "bg": "Ще ви се обадим възможно най-скоро. Довиждане.",
                         "uk": "Ми передзвонимо вам якнайшвидше. До побачення.",
                         "ru": "Мы перезвоним вам как можно скорее. До свидания."},
    "voicemail": {"en": "Please leave a message after the tone, and press the hash key when you are done.",
                  "bg": "Моля, оставете съобщение след сигнала и натиснете диез, когато приключите.",
                  "uk": "Будь ласка, залиште повідомлення після сигналу і натисніть решітку.",
                  "ru": "Пожалуйста, оставьте сообщение после сигнала и нажмите решётку."},
    "goodbye": {"en": "Thank you for calling. Goodbye.", "bg": "Благодарим ви за обаждането. Довиждане.",
                "uk": "Дякуємо за дзвінок. До побачення.", "ru": "Спасибо за звонок. До свидания."},
}


def ensure_prompts(config, data_dir):
    """Speak every text prompt whose WAV is missing or out of date; return those made."""
    made = []
    for prompt in config["prompts"] + system_prompts(config):
        if prompt.get("source") == "upload":
            continue  # converted from the upload once; nothing to speak
        path = prompt_path(data_dir, prompt["language"], prompt["id"])
        if _spoken_text(path) != prompt["text"]:
            speak(prompt["text"], prompt["language"], path)
            made.append(path)
    ensure_music(data_dir)
    ensure_beep(data_dir)
    return made


def system_prompts(config):
    """The engine's own prompts, in every language the configuration uses, unless configured."""
    configured = {(p["id"], p["language"]) for p in config["prompts"]}
    return [{"id": prompt_id, "language": language, "text": texts[language]}
            for prompt_id, texts in SYSTEM_PROMPTS.items() for language in languages_in_use(config)
            if (prompt_id, language) not in configured]


def languages_in_use(config):
    """The box's language, every prompt's, and every language a flow lets callers choose."""
    used = {config["settings"]["language"]} | {p["language"] for p in config["prompts"]}
    for flow in config.get("flows", []):
        for node in flow["nodes"].values():
            if node["type"] == "language":
                used |= set(node["options"].values())
    return sorted(used)


def beep_path(data_dir):
    """The tone before a voicemail message."""
    return os.path.join(data_dir, "prompts", "music", "beep.wav")


def ensure_beep(data_dir):
    """A 400 ms 1 kHz tone, made once."""
    path = beep_path(data_dir)
    if not os.path.exists(path):
        import wave

        import numpy as np

        t = np.arange(3200) / 8000
        pcm = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with wave.open(path + ".tmp", "wb") as wav:
            wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(8000)
            wav.writeframes(pcm.tobytes())
        os.replace(path + ".tmp", path)
    return path


def speak(text, language, dest):
    """Speak ``text`` with espeak-ng in ``language`` into ``dest`` as a telephony WAV."""
    if _from_speech_cache(text, language, dest):
        return
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
    _to_speech_cache(text, language, dest)
    write_atomically(dest[:-4] + ".txt", text)
    log.info("spoke prompt %s", dest)


def _speech_cache_file(text, language):
    """Where HOTLINE_SPEECH_CACHE keeps speech by its text (tests start many fresh boxes)."""
    import hashlib

    cache = os.environ.get("HOTLINE_SPEECH_CACHE")
    if not cache:
        return None
    digest = hashlib.sha1(f"{language}\n{text}".encode()).hexdigest()
    return os.path.join(cache, f"{digest}.wav")


def _from_speech_cache(text, language, dest):
    import shutil

    cached = _speech_cache_file(text, language)
    if not cached or not os.path.exists(cached):
        return False
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(cached, dest + ".tmp")
    os.replace(dest + ".tmp", dest)
    write_atomically(dest[:-4] + ".txt", text)
    return True


def _to_speech_cache(text, language, dest):
    import shutil

    cached = _speech_cache_file(text, language)
    if cached:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        shutil.copyfile(dest, f"{cached}.{os.getpid()}.tmp")
        os.replace(f"{cached}.{os.getpid()}.tmp", cached)


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


# --- prompt lookup, music on hold, spoken announcements ---------------------------------


def resolve_prompt(config, prompt_id, language):
    """The prompt ``prompt_id`` in ``language``, else in the box's language, else any; or None."""
    variants = [p for p in config["prompts"] + system_prompts(config) if p["id"] == prompt_id]
    for wanted in (language, config["settings"]["language"]):
        for prompt in variants:
            if prompt["language"] == wanted:
                return prompt
    return variants[0] if variants else None


def music_path(data_dir):
    """The box's own music on hold (generated on first start, free to use)."""
    return os.path.join(data_dir, "prompts", "music", "default.wav")


def ensure_music(data_dir):
    """Compose the default music on hold if it is not there: a slow, soft arpeggio."""
    path = music_path(data_dir)
    if os.path.exists(path):
        return path
    import numpy as np

    rate, note_seconds = 8000, 0.45
    t = np.arange(int(rate * note_seconds)) / rate
    envelope = np.minimum(1.0, t / 0.03) * np.exp(-3.0 * t)
    chords = ((261.6, 329.6, 392.0, 523.3), (220.0, 261.6, 329.6, 440.0),
              (174.6, 220.0, 261.6, 349.2), (196.0, 246.9, 293.7, 392.0))
    notes = [np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t) for chord in chords for f in chord]
    pcm = np.concatenate([n * envelope for n in notes]) * 5000
    os.makedirs(os.path.dirname(path), exist_ok=True)
    import wave

    with wave.open(path + ".tmp", "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(rate)
        wav.writeframes(pcm.astype("<i2").tobytes())
    os.replace(path + ".tmp", path)
    return path


POSITION_TEXTS = {
    "en": ("You are number {position} in the queue.", " The expected wait is about {minutes} minutes.",
           " To be called back instead, press {key}."),
    "bg": ("Вие сте номер {position} на опашката.", " Очакваното време за изчакване е около {minutes} минути.",
           " За да ви се обадим обратно, натиснете {key}."),
    "uk": ("Ви номер {position} у черзі.", " Очікуваний час очікування близько {minutes} хвилин.",
           " Щоб вам передзвонили, натисніть {key}."),
    "ru": ("Вы номер {position} в очереди.", " Ожидаемое время ожидания около {minutes} минут.",
           " Чтобы вам перезвонили, нажмите {key}."),
}


def position_text(language, position, seconds, callback_key):
    """What a waiting caller is told: place, expected wait (when known), the call-back key."""
    position_line, wait_line, key_line = POSITION_TEXTS.get(language, POSITION_TEXTS["en"])
    text = position_line.format(position=position)
    if seconds is not None:
        text += wait_line.format(minutes=max(1, round(seconds / 60)))
    if callback_key:
        text += key_line.format(key=callback_key)
    return text


class PhraseCache:
    """Announcements spoken by espeak-ng on a worker thread, kept as files by their text.

    ``get`` never blocks the engine: a phrase not spoken yet is queued and None returned,
    so the caller hears it at the next announcement instead of the engine stalling.
    """

    def __init__(self, data_dir):
        import queue
        import threading

        self._dir = os.path.join(data_dir, "prompts", "phrases")
        self._queue = queue.Queue()
        self._pending = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="phrases", daemon=True)
        self._thread.start()

    def path(self, language, text):
        """Where the phrase's WAV lives."""
        import hashlib

        digest = hashlib.sha1(f"{language}\n{text}".encode()).hexdigest()[:16]
        return os.path.join(self._dir, language, f"{digest}.wav")

    def get(self, language, text):
        """The phrase's WAV path if it is ready; otherwise queue it and return None."""
        path = self.path(language, text)
        if os.path.exists(path):
            return path
        if path not in self._pending:
            self._pending.add(path)
            self._queue.put((language, text, path))
        return None

    def prepare(self, language, text):
        """Queue a phrase ahead of need."""
        self.get(language, text)

    def close(self):
        """Stop the worker; safe to call twice."""
        self._stop.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self):
        lower_priority()  # espeak-ng inherits it: a phrase may come later, a frame may not
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            language, text, path = item
            try:
                speak(text, language, path)
            except PromptError as err:
                log.error("cannot speak announcement: %s", err)
            finally:
                self._pending.discard(path)
