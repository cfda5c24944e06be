"""Incremental speech-to-text of a recording that is still growing (P12 live guidance).

The capture page sends its MediaRecorder chunks as they come; the bytes so far are one
WebM (or Ogg) file whose end may be cut mid-packet. `live_step` turns them into text a
little at a time:

- Only new audio is decoded: packets before `committed_until` (minus a short pre-roll
  the Opus decoder needs) are demuxed but never decoded, and Whisper sees only the audio
  after that point, at most `max_window` seconds of it per step.
- Silero VAD (bundled with faster-whisper) finds the pauses; speech before the last
  pause that ends at least `settle` seconds before the end of the audio is *committed*
  (never decoded again), the rest is *tentative* text, decoded again at a later step
  when more audio has arrived.
- Whisper is given only the audio it must read plus a few seconds of silence, not a
  30 s window (`_transcribe`), so a run costs what its audio costs.
- The last words of the committed text are the prompt, so a sentence cut at a commit
  point keeps its context.

Greedy decoding (beam 1) and no word timestamps: the text is guidance while speaking;
the stored transcript comes from the full-file ASR after submit. No Django here.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, fields
from itertools import pairwise
from typing import Any, Protocol

import av
import numpy as np

from pipelines.audio import CONTAINERS, sniff_container

RATE = 16_000
# Opus needs some audio before the first sample it must get right.
PREROLL_SECONDS = 0.2
# Shorter than this is not worth a Whisper run.
MIN_NEW_SECONDS = 0.5
PROMPT_CHARS = 200
# A segment this likely to be silence, and decoded with this little confidence, is dropped.
NO_SPEECH_LIMIT = 0.6
# Speech is committed in pieces at least this long (Whisper guesses on short ones).
MIN_COMMIT_SECONDS = 3.0
# A silence this long (seconds) is a pause the text may be cut at.
MIN_PAUSE = 0.25
LOGPROB_LIMIT = -1.0
# Silence after the window's audio (see `_transcribe`): at least PAD_SECONDS, and up to
# MIN_INPUT_SECONDS in all (Whisper drops or invents words on shorter input);
# Whisper's mel frames are 10 ms.
PAD_SECONDS = 3.0
MIN_INPUT_SECONDS = 10.0
HOP = 160
MAX_FRAMES = 3000
# Bound on the decoded length: speech runs 2-4 tokens a second; more is a loop.
MAX_TOKENS_PER_SECOND = 8


class LiveAudioError(ValueError):
    """The bytes so far are not audio this stage can decode."""


class SpeechModel(Protocol):
    """The parts of faster_whisper.WhisperModel used here (its CTranslate2 model too)."""

    model: Any
    hf_tokenizer: Any
    feature_extractor: Any
    max_length: int

    def get_prompt(
        self, tokenizer: Any, previous_tokens: list[int], **options: Any
    ) -> list[int]: ...


@dataclass
class LiveText:
    """The live transcript of one take, kept between steps (JSON-ready via to_dict)."""

    committed: str = ""
    committed_until: float = 0.0  # seconds of audio the committed text covers
    tentative: str = ""
    heard_until: float = 0.0  # end of the audio seen by the last step
    tail_until: float = 0.0  # end of the audio the tentative text was decoded from
    shown_until: float = 0.0  # the text covers the audio up to here (heard_until at most)
    steps: int = 0
    decoded_seconds: float = 0.0  # audio seconds given to Whisper, over all steps

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.committed, self.tentative) if part)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LiveText:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


def load_model(model: str, *, device: str, compute_type: str, cpu_threads: int) -> SpeechModel:
    from faster_whisper import WhisperModel

    return WhisperModel(model, device=device, compute_type=compute_type, cpu_threads=cpu_threads)


def decode_from(data: bytes, start_seconds: float) -> tuple[np.ndarray, float]:
    """16 kHz mono samples of the audio from `start_seconds` on, and where they end.

    Packets wholly before the start (less the pre-roll) are skipped undecoded. A cut or
    broken packet at the end stops decoding there: the file is still being written.
    """
    container = sniff_container(data)
    if container is None:
        raise LiveAudioError("the live audio does not start like WebM, Ogg, MP4, WAV or MP3")
    demuxer = CONTAINERS[container][0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    parts: list[np.ndarray] = []
    first_time: float | None = None
    skip_before = start_seconds - PREROLL_SECONDS
    try:
        with av.open(io.BytesIO(data), mode="r", format=demuxer) as source:
            if not source.streams.audio:
                raise LiveAudioError("the live audio holds no audio stream")
            stream = source.streams.audio[0]
            for packet in source.demux(stream):
                if packet.pts is not None and packet.time_base is not None:
                    packet_end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    if packet_end < skip_before:
                        continue
                for frame in packet.decode():
                    if first_time is None:
                        first_time = float(frame.time) if frame.time is not None else 0.0
                    parts.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
    except (av.error.InvalidDataError, av.error.EOFError, EOFError):
        pass  # the growing file ends mid-packet: decode what came before
    except av.error.FFmpegError as exc:
        if not parts:
            raise LiveAudioError(f"the live audio could not be decoded: {exc}") from None
    if not parts or first_time is None:
        return np.zeros(0, dtype=np.float32), max(start_seconds, 0.0)
    samples = np.concatenate(parts).astype(np.float32)
    drop = max(0, round((start_seconds - first_time) * RATE))
    end = first_time + len(samples) / RATE
    return samples[drop:], end


def _prompt(committed: str) -> str | None:
    if not committed:
        return None
    tail = committed[-PROMPT_CHARS:]
    return tail[tail.find(" ") + 1 :] if len(committed) > PROMPT_CHARS else tail


def _transcribe(model: SpeechModel, audio: np.ndarray, prompt: str | None) -> str:
    """Greedy text of `audio` (speech already cut by `_speech`), `prompt` as context.

    faster-whisper's `transcribe` pads every window to Whisper's 30 s; CTranslate2's
    encoder also takes shorter input, so Whisper sees the window plus some silence
    (PAD_SECONDS, MIN_INPUT_SECONDS) instead: the encoder's cost follows the audio's
    length, and the silence lets the decoder end the last word. benchmarks/live_quality.py
    compares the two on held-out speech.
    """
    from ctranslate2 import StorageView
    from faster_whisper.tokenizer import Tokenizer

    whisper = model.model
    tokenizer = Tokenizer(
        model.hf_tokenizer, whisper.is_multilingual, task="transcribe", language="en"
    )
    pad = max(PAD_SECONDS, MIN_INPUT_SECONDS - len(audio) / RATE)
    padded = np.concatenate([audio, np.zeros(int(pad * RATE), dtype=np.float32)])
    frames = min(len(padded) // HOP, MAX_FRAMES)
    features = model.feature_extractor(padded)[:, :frames]
    encoded = whisper.encode(StorageView.from_array(np.ascontiguousarray(features[None])))
    context = tokenizer.encode(" " + prompt) if prompt else []
    tokens = model.get_prompt(tokenizer, context, without_timestamps=True)
    most = int(MAX_TOKENS_PER_SECOND * len(audio) / RATE) + 8
    result = whisper.generate(
        encoded,
        [tokens],
        beam_size=1,
        max_length=min(len(tokens) + most, model.max_length),
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=tokenizer.non_speech_tokens,
    )[0]
    ids = result.sequences_ids[0]
    avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)
    if result.no_speech_prob > NO_SPEECH_LIMIT and avg_logprob < LOGPROB_LIMIT:
        return ""  # most likely silence or noise, decoded with little confidence
    return str(tokenizer.decode(ids)).strip()


def _speech(window: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of speech in `window` by Silero VAD (bundled with faster-whisper)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=int(MIN_PAUSE * 1000), speech_pad_ms=100)
    return [(c["start"] / RATE, c["end"] / RATE) for c in get_speech_timestamps(window, options)]


def _cut_point(
    speech: list[tuple[float, float]], window_seconds: float, *, settle: float, close_all: bool
) -> float:
    """Where the window's audio can be closed for good: inside the last pause that ends
    before the settle line, so no word is cut. The whole window when `close_all`, or when
    it holds no speech (less the settle time: a word may be starting)."""
    if close_all:
        return window_seconds
    line = window_seconds - settle
    if not speech:
        return max(line, 0.0)
    cut = 0.0
    for (_, end), (next_start, _) in pairwise(speech):
        middle = (end + next_start) / 2
        if middle <= line:
            cut = middle
    last_end = speech[-1][1]
    if last_end + MIN_PAUSE <= line:
        cut = last_end + MIN_PAUSE / 2
    return cut


def live_step(
    model: SpeechModel,
    data: bytes,
    state: LiveText,
    *,
    settle: float = 1.0,
    max_window: float = 20.0,
    min_tail_step: float = 2.0,
    final: bool = False,
) -> LiveText:
    """Transcribe the audio after `state.committed_until`; return the new state.

    The new audio is split by voice activity at the last pause before the settle line:
    speech before it is transcribed once and committed, speech after it is transcribed
    as tentative text (again at a later step, once `min_tail_step` seconds more have
    come, or at once after a commit). Two Whisper runs per step at most, each over its
    own audio only. `final`: the recording has stopped, so everything is committed.
    """
    samples, end = decode_from(data, state.committed_until)
    new_seconds = len(samples) / RATE
    result = LiveText(**state.to_dict())
    result.heard_until = max(state.heard_until, end)
    nothing_new = end <= state.heard_until + 0.01
    if (nothing_new or new_seconds < MIN_NEW_SECONDS) and not (final and new_seconds > 0):
        return result
    window = samples[: int(max_window * RATE)]
    window_seconds = len(window) / RATE
    more_waiting = new_seconds > window_seconds
    speech = _speech(window)
    cut = _cut_point(speech, window_seconds, settle=settle, close_all=final)
    if more_waiting and cut < MIN_COMMIT_SECONDS:
        cut = window_seconds  # a window without a pause: close it rather than grow
    elif cut < MIN_COMMIT_SECONDS and not final and speech:
        cut = 0.0  # too short to be transcribed well on its own: wait for more
    closed_speech = [s for s in speech if s[0] < cut]
    open_speech = [s for s in speech if s[1] > cut]
    result.committed_until = state.committed_until + cut
    window_end = state.committed_until + window_seconds
    if closed_speech:
        text = _transcribe(model, window[: int(cut * RATE)], _prompt(state.committed))
        result.steps += 1
        result.decoded_seconds += cut
        result.committed = " ".join(p for p in (state.committed, text) if p)
        result.tentative = ""
        result.shown_until = result.committed_until
    tail = window[int(cut * RATE) :]
    if not open_speech or len(tail) / RATE < MIN_NEW_SECONDS:
        result.tentative = ""
        if not open_speech:  # the rest is silence: the text is up to date
            result.shown_until = window_end
    elif final or closed_speech or end - state.tail_until >= min_tail_step:
        # The open tail, with the committed text as context (after a commit, at once:
        # the old tentative text overlaps what was just committed).
        result.tentative = _transcribe(model, tail, _prompt(result.committed))
        result.tail_until = window_end
        result.shown_until = window_end
        result.steps += 1
        result.decoded_seconds += len(tail) / RATE
    return result
