"""In-band DTMF detection on 20 ms frames, held to ITU-T Q.24's limits (see appliance/dtmf.py).

Every limit is proved with generated tones at random phases and at random offsets within a
frame; talk-off is measured on speech spoken by espeak-ng in the four languages of the box
and on synthesised music.
"""
import math
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from appliance.dtmf import COLUMNS, KEYS as LAYOUT, ROWS, DtmfDetector, dtmf_tone

KEYS = "0123456789*#ABCD"
RATE = 8000
FRAME = 320  # bytes: 20 ms


def frames(pcm, size=FRAME):
    """``pcm`` cut into frames of ``size`` bytes."""
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


def detect(pcm, size=FRAME):
    """The digits a fresh detector reports for ``pcm``."""
    detector = DtmfDetector()
    return [digit for frame in frames(pcm, size) for digit in detector.feed(frame)]


def silence(seconds):
    """Silent PCM."""
    return bytes(int(RATE * seconds) * 2)


def keyed(key, seconds, rng, lead=None, **tone):
    """Silence of a random part of a frame, the key at random phases, then 60 ms of silence."""
    lead = int(rng.integers(0, 160)) if lead is None else lead
    phases = tuple(rng.uniform(0, 2 * math.pi, 2))
    return bytes(2 * lead) + dtmf_tone(key, seconds, phases=phases, **tone) + silence(0.06)


def noisy(pcm, snr_db, rng, reference=None):
    """``pcm`` with white noise ``snr_db`` under the power of ``reference`` (by default ``pcm`` itself)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    power = np.mean(np.frombuffer(reference or pcm, dtype="<i2").astype(float) ** 2)
    noise = rng.normal(0, math.sqrt(power / 10 ** (snr_db / 10)), len(samples))
    return np.clip(np.round(samples + noise), -32768, 32767).astype("<i2").tobytes()


def seeded(*parts):
    """A random generator of its own for each parametrised case."""
    return np.random.default_rng([ord(c) for c in "".join(map(str, parts))])


# Frequencies: Q.24 accepts within 1.5 % and rejects at 3.5 % off nominal.

@pytest.mark.parametrize("deviation", [(0, 0), (0.015, 0.015), (-0.015, -0.015), (0.015, -0.015), (-0.015, 0.015)])
@pytest.mark.parametrize("key", KEYS)
def test_every_key_within_1_5_percent_is_detected(key, deviation):
    rng = seeded(key, deviation)
    assert detect(keyed(key, 0.08, rng, deviation=deviation)) == [key]


@pytest.mark.parametrize("deviation", [(0.035, 0), (-0.035, 0), (0, 0.035), (0, -0.035),
                                       (0.035, 0.035), (-0.035, -0.035)])
@pytest.mark.parametrize("key", KEYS)
def test_a_tone_3_5_percent_off_is_rejected(key, deviation):
    rng = seeded(key, deviation)
    assert detect(keyed(key, 0.1, rng, deviation=deviation)) == []


def tone_frequencies(key):
    """A key's row and column frequencies."""
    row = next(row for row, keys in enumerate(LAYOUT) if key in keys)
    return ROWS[row], COLUMNS[LAYOUT[row].index(key)]


def clear_of_every_key(frequency, group):
    """Whether ``frequency`` is more than 3.5 % away from every frequency of its group."""
    return all(abs(frequency / nominal - 1) > 0.035 for nominal in group)


@pytest.mark.parametrize("key", KEYS)
def test_tones_further_off_are_rejected(key):
    rng = seeded(key)
    row_hz, column_hz = tone_frequencies(key)
    for off in (0.05, -0.05, 0.08, -0.08, 0.12, -0.12):
        # Far enough off, a tone becomes another key's: only those clear of every key must give nothing.
        if clear_of_every_key(row_hz * (1 + off), ROWS):
            assert detect(keyed(key, 0.1, rng, deviation=(off, 0))) == []
        if clear_of_every_key(column_hz * (1 + off), COLUMNS):
            assert detect(keyed(key, 0.1, rng, deviation=(0, off))) == []


# Durations: Q.24 accepts 40 ms and rejects 23 ms or less; a pause of 40 ms separates two
# presses and a break of 10 ms or less does not.

@pytest.mark.parametrize("key", KEYS)
def test_40_ms_is_detected_wherever_it_starts(key):
    rng = seeded(key)
    for _ in range(12):
        assert detect(keyed(key, 0.04, rng)) == [key]


@pytest.mark.parametrize("ms", [10, 20, 23, 25])
@pytest.mark.parametrize("key", KEYS)
def test_a_short_burst_is_rejected_wherever_it_starts(key, ms):
    rng = seeded(key, ms)
    for _ in range(12):
        assert detect(keyed(key, ms / 1000, rng)) == []


@pytest.mark.parametrize("key", KEYS)
def test_a_key_held_500_ms_is_one_press(key):
    assert detect(keyed(key, 0.5, seeded(key))) == [key]


@pytest.mark.parametrize("key", KEYS)
def test_the_same_key_twice_with_a_40_ms_pause(key):
    rng = seeded(key)
    for _ in range(6):
        first, second = dtmf_tone(key, 0.04, phases=tuple(rng.uniform(0, 6, 2))), dtmf_tone(key, 0.04)
        pcm = bytes(2 * int(rng.integers(0, 160))) + first + silence(0.04) + second + silence(0.06)
        assert detect(pcm) == [key, key]


@pytest.mark.parametrize("key", KEYS)
def test_a_10_ms_break_within_a_tone_is_not_a_pause(key):
    rng = seeded(key)
    for _ in range(6):
        pcm = keyed(key, 0.06, rng)[:-len(silence(0.06))] + silence(0.01) + keyed(key, 0.06, rng, lead=0)
        assert detect(pcm) == [key]


def test_a_number_dialled_at_the_fastest_q24_rate():
    number = "0888123456#*ABCD97"
    pcm = b"".join(dtmf_tone(key, 0.04) + silence(0.04) for key in number)
    assert "".join(detect(pcm)) == number


@pytest.mark.parametrize("size", [2, 158, 322, 1000])
def test_frames_of_any_size(size):
    pcm = silence(0.013) + dtmf_tone("1", 0.06) + silence(0.06) + dtmf_tone("9", 0.06) + silence(0.05)
    assert detect(pcm, size) == ["1", "9"]


# Twist (column over row): Q.24 accepts +4 dB (reverse) to -8 dB (normal).

@pytest.mark.parametrize("twist", [4, -8])
@pytest.mark.parametrize("key", KEYS)
def test_twist_within_the_limits_is_detected(key, twist):
    level = -12 - max(twist, 0)  # the louder tone at -12 dBFS
    assert detect(keyed(key, 0.08, seeded(key, twist), level_dbfs=level, twist_db=twist)) == [key]


@pytest.mark.parametrize("twist", [6, -10, 10, -14])
@pytest.mark.parametrize("key", KEYS)
def test_twist_beyond_the_limits_is_rejected(key, twist):
    level = -12 - max(twist, 0)
    assert detect(keyed(key, 0.1, seeded(key, twist), level_dbfs=level, twist_db=twist)) == []


# Levels, per tone.

@pytest.mark.parametrize("level", [-34, -30, -20, -10, -7])
def test_levels_in_the_range_are_detected(level):
    rng = seeded(level)
    assert [digit for key in KEYS for digit in detect(keyed(key, 0.08, rng, level_dbfs=level))] == list(KEYS)


@pytest.mark.parametrize("level", [-45, -55])
def test_levels_well_below_the_floor_are_rejected(level):
    rng = seeded(level)
    assert [digit for key in KEYS for digit in detect(keyed(key, 0.1, rng, level_dbfs=level))] == []


# Noise and things that are not keys.

@pytest.mark.parametrize("key", KEYS)
def test_white_noise_at_15_db_snr(key):
    rng = seeded(key)
    for _ in range(4):
        tone = dtmf_tone(key, 0.06, level_dbfs=-16, phases=tuple(rng.uniform(0, 6, 2)))
        pcm = silence(0.04) + tone + silence(0.06)
        assert detect(noisy(pcm, 15, rng, reference=tone)) == [key]


def test_no_digits_from_silence_noise_a_single_tone_or_a_chord():
    t = np.arange(RATE) / RATE
    single = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
    chord = sum(3000 * np.sin(2 * np.pi * f * t) for f in (440, 554, 659, 880)).astype("<i2").tobytes()
    noise = noisy(silence(1), 0, seeded("noise"), reference=single)
    assert detect(silence(1)) == detect(single) == detect(chord) == detect(noise) == []


def test_three_tones_are_not_a_key():
    t = np.arange(800) / RATE
    three = sum(8000 * np.sin(2 * np.pi * f * t) for f in (697, 770, 1209)).astype("<i2").tobytes()
    assert detect(three) == []


# Talk-off: speech and music must not make digits.

SPEECH = {
    "en": [
        "Good morning, you have reached the admissions office of the university. Our lines are open from nine "
        "in the morning until five in the afternoon, Monday to Friday. If you are calling about bachelor "
        "programmes, please stay on the line. Your call may be recorded for training and quality purposes.",
        "Hello? Yes, I applied last week, my application number is four seven two, nine one eight, zero zero six. "
        "I wanted to ask whether the documents arrived, because the tracking page still says pending, and the "
        "deadline is on the fifteenth of August. Could you check that for me, please?",
        "Well, honestly, I am not sure. My daughter wants to study medicine, but the dormitory situation worries "
        "me a lot. How many rooms are there, and how much does a single room cost per month, including heating, "
        "water and the internet? Oh, and is there a canteen nearby, or do the students cook for themselves?",
        "Thank you so much for your patience. I will transfer you to a colleague who deals with scholarships. "
        "If nobody answers within two minutes, we will call you back tomorrow morning at the number you are "
        "calling from. Have a lovely day, and good luck with the exams!",
    ],
    "bg": [
        "Добър ден, свързахте се с приемната комисия на университета. Работим от девет до пет часа, от понеделник "
        "до петък. Ако се обаждате за бакалавърски програми, моля, останете на линия. Разговорът се записва.",
        "Ало, здравейте! Подадох документи миналата седмица, номерът ми е четири, седем, две, девет, едно, осем. "
        "Искам да попитам дали всичко е пристигнало, защото на сайта още пише, че се обработва, а срокът изтича "
        "на петнадесети август.",
        "Ами, честно казано, не знам. Синът ми иска да учи информатика, но общежитията ме притесняват. Колко "
        "струва една стая на месец, заедно с тока, водата и интернета? И има ли столова наблизо, или студентите "
        "си готвят сами?",
        "Благодаря ви за търпението. Ще ви свържа с колега, който се занимава със стипендиите. Ако никой не "
        "отговори до две минути, ще ви се обадим утре сутрин. Приятен ден и успех на изпитите!",
    ],
    "ru": [
        "Добрый день, вы позвонили в приёмную комиссию университета. Мы работаем с девяти до семнадцати часов, "
        "с понедельника по пятницу. Если вы звоните по поводу бакалавриата, пожалуйста, оставайтесь на линии.",
        "Алло, здравствуйте! Я подала документы на прошлой неделе, мой номер заявления четыреста семьдесят два, "
        "девятьсот восемнадцать. Хотела уточнить, всё ли дошло, потому что на сайте до сих пор написано, что "
        "заявление на рассмотрении, а срок заканчивается пятнадцатого августа.",
        "Ну, если честно, я сомневаюсь. Дочка хочет поступать на медицинский, но меня очень беспокоит общежитие. "
        "Сколько стоит комната в месяц, вместе с отоплением, водой и интернетом? И есть ли рядом столовая?",
        "Спасибо за ваше терпение. Сейчас я переведу вас на коллегу, который занимается стипендиями. Если никто "
        "не ответит в течение двух минут, мы перезвоним вам завтра утром. Всего доброго и удачи на экзаменах!",
    ],
    "uk": [
        "Доброго дня, ви зателефонували до приймальної комісії університету. Ми працюємо з дев'ятої до "
        "сімнадцятої години, з понеділка по п'ятницю. Якщо ви телефонуєте щодо бакалаврату, залишайтеся на лінії.",
        "Алло, добрий день! Я подав документи минулого тижня, номер моєї заяви чотириста сімдесят два, дев'ятсот "
        "вісімнадцять. Хотів перепитати, чи все дійшло, бо на сайті досі написано, що заява на розгляді, а термін "
        "спливає п'ятнадцятого серпня.",
        "Ну, чесно кажучи, я не впевнена. Донька хоче вступати на медичний, але мене дуже турбує гуртожиток. "
        "Скільки коштує кімната на місяць разом з опаленням, водою та інтернетом? І чи є поруч їдальня?",
        "Дякуємо за ваше терпіння. Зараз я переведу вас на колегу, який займається стипендіями. Якщо ніхто не "
        "відповість протягом двох хвилин, ми передзвонимо вам завтра вранці. Гарного дня і успіхів на іспитах!",
    ],
}

SPEECH_VOICES = [("m3", 140, 35), ("f2", 175, 70), ("m7", 160, 50), ("f4", 190, 90)]  # variant, words/min, pitch


def speak(text, voice, speed, pitch, directory):
    """``text`` spoken by espeak-ng as 8 kHz 16-bit mono PCM (ffmpeg resamples it)."""
    wav = os.path.join(directory, f"{voice}-{speed}-{pitch}.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", wav, text], check=True)
    return subprocess.run(["ffmpeg", "-loglevel", "error", "-i", wav, "-ar", str(RATE), "-ac", "1", "-f", "s16le", "-"],
                          check=True, capture_output=True).stdout


def speech_corpus(directory, voices=SPEECH_VOICES):
    """Every language's paragraphs in each voice: a list of (name, PCM)."""
    jobs = [(" ".join(paragraphs), f"{language}+{variant}", speed, pitch)
            for language, paragraphs in SPEECH.items() for variant, speed, pitch in voices]
    with ThreadPoolExecutor(4) as pool:
        spoken = list(pool.map(lambda job: speak(*job, directory), jobs))
    return [(f"{voice} {speed} wpm pitch {pitch}", pcm) for (_, voice, speed, pitch), pcm in zip(jobs, spoken)]


def music(seconds, seed=7):
    """Music-like PCM: chords and melodies of notes rich in harmonics, and sweeps alone or in fifths."""
    rng = np.random.default_rng(seed)
    parts, length = [], 0
    while length < seconds * RATE:
        part = (chord, melody, sweep)[rng.integers(3)](rng)
        parts.append(part)
        length += len(part)
    pcm = np.concatenate(parts)
    return np.round(pcm / np.abs(pcm).max() * 16000).astype("<i2").tobytes()


def note(midi, seconds, rng):
    """A plucked note with six harmonics and, sometimes, vibrato."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.minimum(t / 0.01, 1) * np.exp(-t * rng.uniform(1, 4))
    vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * t) * rng.integers(0, 2)
    phase = 2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * np.cumsum(vibrato) / RATE
    return envelope * sum(np.sin(k * phase) / k for k in range(1, 7))


def chord(rng):
    """Three or four notes struck together."""
    shape = [(0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10), (0, 4, 7, 12), (0, 5, 9)][rng.integers(6)]
    root, seconds = rng.integers(48, 72), rng.uniform(0.3, 0.9)
    return sum(note(root + step, seconds, rng) for step in shape)


def melody(rng):
    """A few notes over a bass an octave down."""
    return np.concatenate([note(m, d, rng) + 0.5 * note(m - 12, d, rng)
                           for m, d in zip(rng.integers(60, 90, 8), rng.uniform(0.1, 0.3, 8))])


def sweep(rng):
    """A linear or logarithmic sweep across the band, alone or with its fifth."""
    seconds = rng.uniform(1, 3)
    t = np.arange(int(seconds * RATE)) / RATE
    low, high = rng.uniform(200, 600), rng.uniform(1500, 3400)
    frequency = low * (high / low) ** (t / seconds) if rng.integers(2) else low + (high - low) * t / seconds
    phase = 2 * np.pi * np.cumsum(frequency) / RATE
    return np.sin(phase) + rng.integers(0, 2) * 0.7 * np.sin(1.5 * phase)


def false_digits(corpus):
    """(name, second, digit) of every digit the detector reports in the corpus."""
    found = []
    for name, pcm in corpus:
        detector = DtmfDetector()
        for index, frame in enumerate(frames(pcm)):
            found += [(name, index * 0.02, digit) for digit in detector.feed(frame)]
    return found


@pytest.fixture(scope="session")
def talk_off_corpus(tmp_path_factory):
    """About 16 minutes of speech in four languages and voices, and 2 minutes of music."""
    corpus = speech_corpus(str(tmp_path_factory.mktemp("talk-off")))
    return corpus + [("music", music(120))]


def test_talk_off_on_speech_and_music(talk_off_corpus):
    minutes = sum(len(pcm) for _, pcm in talk_off_corpus) / (2 * RATE * 60)
    assert minutes > 15
    # Measured: none here, none in the 93 minutes of bench/bench_dtmf.py (the detector this
    # one replaced made 39 here); the bound leaves room for another espeak-ng's voices.
    found = false_digits(talk_off_corpus)
    assert len(found) <= minutes / 15, found
