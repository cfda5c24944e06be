"""Word error rate of the ASR stage on synthetic speech, per condition.

    .venv/bin/python benchmarks/asr_wer.py [--clips 3] [--seconds 20]

Clips are spoken from known text by espeak-ng with several voices (en-us, en-gb,
en+f3) and speeds (120, 150, 190 words a minute), and en-us at 150 with white noise
mixed in by sox at 20, 10 and 5 dB SNR. Each is transcribed by `pipelines.asr` with
the WHISPER_* settings; WER = word edits / reference words after normalisation
(lower case, no punctuation, number words for digits), pooled over the clips of a
condition. The flags column counts clips the stage would send to review.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.speech import add_noise, description, espeak, require_tools  # noqa: E402
from pipelines import text_checks  # noqa: E402

VOICES = ("en-us", "en-gb", "en+f3")
SPEEDS = (120, 150, 190)
SNRS = (20, 10, 5)
# Digits the ASR writes are compared as the words espeak-ng was given.
DIGIT_WORDS = {str(value): word for word, value in text_checks.UNITS.items()}


def normalise(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return [DIGIT_WORDS.get(w, w) for w in words]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance over words (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def conditions() -> list[tuple[str, str, int, float | None]]:
    rows: list[tuple[str, str, int, float | None]] = [
        (f"{voice} {speed} wpm", voice, speed, None) for voice in VOICES for speed in SPEEDS
    ]
    rows += [(f"en-us 150 wpm, noise {snr} dB SNR", "en-us", 150, snr) for snr in SNRS]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=3, help="clips per condition")
    parser.add_argument("--seconds", type=float, default=20, help="length of each clip")
    args = parser.parse_args()
    require_tools()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator_app.settings.local")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings

    from annotator_app.captions.pipeline import transcriber_from_settings

    transcriber = transcriber_from_settings()
    work = Path(tempfile.mkdtemp(prefix="pixmo-asr-wer-"))
    print(f"model {settings.WHISPER_MODEL} ({settings.WHISPER_COMPUTE_TYPE}), "
          f"{args.clips} clips of about {args.seconds:.0f} s per condition")  # fmt: skip
    print(f"{'condition':34} {'WER':>6} {'words':>6} {'flagged':>7}")
    total_edits = total_words = 0
    try:
        for label, voice, speed, snr in conditions():
            edits = words = flagged = 0
            for i in range(args.clips):
                text = description(args.seconds, seed=1000 + i, wpm=int(speed * 1.2))
                path = espeak(work / f"{voice}-{speed}-{i}.wav", text, voice=voice, wpm=speed)
                if snr is not None:
                    path = add_noise(path, work / f"noisy-{snr}-{i}.wav", snr_db=snr, seed=i)
                result = transcriber.transcribe(path)
                ref = normalise(text)
                edits += edit_distance(ref, normalise(result.text))
                words += len(ref)
                flagged += result.flagged
            total_edits += edits
            total_words += words
            print(f"{label:34} {edits / words:6.1%} {words:6d} {flagged:7d}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'all conditions':34} {total_edits / total_words:6.1%} {total_words:6d}")


if __name__ == "__main__":
    main()
