"""ASR stage: faster-whisper speech to text, with hallucination checks. No Django here.

`Transcriber` loads the model once; `transcribe(path)` returns an `AsrResult` holding the
text, the segments with timestamps and scores, the word timestamps, and the reasons the
output looks empty or hallucinated (`flags`). Flagged output goes to a person, not to
the LLM cleaner.

Decoding options follow PixMo's use (long spoken descriptions): voice-activity filtering
drops silence, where Whisper invents text; `condition_on_previous_text=False` stops one
bad segment from seeding a repetition loop in the next.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

# Phrases Whisper is known to produce on silence, music or noise (it learnt them from
# subtitle credits). A transcript made only of these, or holding the credit-like ones,
# is flagged.
SILENCE_PHRASES = frozenset(
    {
        "you",
        "thank you",
        "thanks",
        "bye",
        "okay",
        "music",
        "applause",
        "silence",
        "blank audio",
        "thank you for watching",
        "thanks for watching",
    }
)
CREDIT_PHRASES = (
    "thanks for watching",
    "thank you for watching",
    "please subscribe",
    "like and subscribe",
    "subtitles by",
    "amara.org",
)

COMPRESSION_RATIO_LIMIT = 2.4
NO_SPEECH_LIMIT = 0.6
# A word said this many times in a row, or an n-gram (2..6 words) repeated back to back
# this many times, is a decoding loop rather than speech.
WORD_RUN_LIMIT = 5
NGRAM_RUN_LIMIT = 4
# A 3-gram that occurs this often and covers this share of all words is a loop too,
# even when something else sits between the repeats.
TRIGRAM_COUNT_LIMIT = 4
TRIGRAM_SHARE_LIMIT = 0.3


@dataclass(frozen=True)
class AsrSegment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass(frozen=True)
class AsrWord:
    start: float
    end: float
    word: str
    probability: float


@dataclass
class AsrResult:
    text: str
    language: str
    duration: float
    segments: list[AsrSegment]
    words: list[AsrWord]
    model_name: str
    settings: dict[str, Any]
    flags: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


class Transcriber:
    """A loaded faster-whisper model and the decoding options used with it.

    `model` is a model directory (CTranslate2 format) or a faster-whisper model name.
    With `batch_size > 1` decoding goes through `BatchedInferencePipeline`, which runs
    the VAD chunks of one file as a batch (faster on GPU; see the README for CPU).
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        compute_type: str | None = None,
        batch_size: int = 1,
        language: str = "en",
        beam_size: int = 5,
        cpu_threads: int = 0,
    ) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = model
        self.device = device
        self.compute_type = compute_type or ("float16" if device == "cuda" else "int8")
        self.batch_size = batch_size
        self.language = language
        self.beam_size = beam_size
        self._model = WhisperModel(
            model, device=device, compute_type=self.compute_type, cpu_threads=cpu_threads
        )
        self._batched = BatchedInferencePipeline(self._model) if batch_size > 1 else None

    @property
    def settings(self) -> dict[str, Any]:
        """The options that shape the output, stored beside every transcript."""
        return {
            "model": self.model_name,
            "device": self.device,
            "compute_type": self.compute_type,
            "batch_size": self.batch_size,
            "language": self.language,
            "beam_size": self.beam_size,
            "vad_filter": True,
            "condition_on_previous_text": False,
            "word_timestamps": True,
        }

    def transcribe(self, audio: str | Path) -> AsrResult:
        """Transcribe one audio file (any format PyAV decodes: WAV, WebM/Opus, ...)."""
        options: dict[str, Any] = {
            "language": self.language,
            "beam_size": self.beam_size,
            "vad_filter": True,
            "condition_on_previous_text": False,
            "word_timestamps": True,
        }
        if self._batched is not None:
            raw_segments, info = self._batched.transcribe(
                str(audio), batch_size=self.batch_size, without_timestamps=True, **options
            )
        else:
            raw_segments, info = self._model.transcribe(str(audio), **options)
        segments: list[AsrSegment] = []
        words: list[AsrWord] = []
        for seg in raw_segments:  # a generator: decoding happens here
            segments.append(
                AsrSegment(
                    start=round(float(seg.start), 3),
                    end=round(float(seg.end), 3),
                    text=seg.text.strip(),
                    avg_logprob=float(seg.avg_logprob),
                    no_speech_prob=float(seg.no_speech_prob),
                    compression_ratio=float(seg.compression_ratio),
                )
            )
            for w in seg.words or []:
                words.append(
                    AsrWord(
                        start=round(float(w.start), 3),
                        end=round(float(w.end), 3),
                        word=w.word.strip(),
                        probability=float(w.probability),
                    )
                )
        text = " ".join(s.text for s in segments if s.text).strip()
        return AsrResult(
            text=text,
            language=info.language or self.language,
            duration=float(info.duration),
            segments=segments,
            words=words,
            model_name=self.model_name,
            settings=self.settings,
            flags=hallucination_flags(text, segments),
        )


def uncertain_words(words: list[dict[str, Any]], *, below: float) -> list[dict[str, Any]]:
    """The stored words (start, end, word, probability) the ASR gave less than `below`:
    a reviewer should listen to these ("candle" heard for "kettle")."""
    return [w for w in words if float(w.get("probability", 1.0)) < below and w.get("word")]


_WORD = re.compile(r"[a-z0-9']+")


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation (brackets such as "[Music]" vanish too)."""
    return _WORD.findall(text.lower())


def hallucination_flags(text: str, segments: list[AsrSegment]) -> list[str]:
    """Reasons this output looks empty or hallucinated; empty when it looks like speech."""
    words = normalise_words(text)
    if not words:
        return ["empty: no words recognised"]
    flags: list[str] = []
    joined = " ".join(words)
    if _only_silence_phrases(joined):
        flags.append(f"silence phrase: the whole transcript is {text.strip()!r}")
    else:
        lowered = text.lower()
        credits = [p for p in CREDIT_PHRASES if p in lowered]
        if credits:
            flags.append(f"silence phrase: contains {credits[0]!r}")
    loop = repeated_ngram(words)
    if loop:
        flags.append(f"repeated n-gram: {loop}")
    worst = max((s.compression_ratio for s in segments), default=0.0)
    if worst > COMPRESSION_RATIO_LIMIT:
        flags.append(f"compression ratio {worst:.2f} above {COMPRESSION_RATIO_LIMIT}")
    if segments and all(s.no_speech_prob >= NO_SPEECH_LIMIT for s in segments):
        flags.append(f"no speech: every segment has no_speech_prob >= {NO_SPEECH_LIMIT}")
    return flags


def _only_silence_phrases(joined: str) -> bool:
    """True when the words are one or more known silence phrases and nothing else."""
    rest = joined
    # Longest phrases first, so "thank you for watching" is not eaten as "thank you".
    for phrase in sorted(SILENCE_PHRASES, key=len, reverse=True):
        rest = re.sub(rf"\b{re.escape(phrase)}\b", " ", rest)
    return not rest.strip()


def repeated_ngram(words: list[str]) -> str:
    """Describe a decoding loop in `words`, or return "" when there is none."""
    run = 1
    for prev, cur in pairwise(words):
        run = run + 1 if cur == prev else 1
        if run >= WORD_RUN_LIMIT:
            return f"{cur!r} said {run} times in a row"
    for n in range(2, 7):
        for start in range(len(words) - n * NGRAM_RUN_LIMIT + 1):
            gram = words[start : start + n]
            if all(
                words[start + k * n : start + (k + 1) * n] == gram for k in range(NGRAM_RUN_LIMIT)
            ):
                return f"{' '.join(gram)!r} repeated {NGRAM_RUN_LIMIT} times back to back"
    trigrams = Counter(tuple(words[i : i + 3]) for i in range(len(words) - 2))
    if trigrams:
        top, count = trigrams.most_common(1)[0]
        if count >= TRIGRAM_COUNT_LIMIT and count * 3 >= TRIGRAM_SHARE_LIMIT * len(words):
            return f"{' '.join(top)!r} occurs {count} times in {len(words)} words"
    return ""
