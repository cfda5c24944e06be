"""Synthetic spoken image descriptions for the ASR benchmarks (espeak-ng, sox).

Texts are built from a fixed pool of PixMo-style sentences with a seeded generator, so
every run speaks the same words; `espeak()` writes a WAV, `add_noise()` mixes white
noise at a signal-to-noise ratio with sox.
"""

from __future__ import annotations

import math
import random
import shutil
import subprocess
from pathlib import Path

SENTENCES = [
    "In the middle of the picture a brown dog sleeps on a green carpet.",
    "Behind the dog there is a wooden table with four chairs around it.",
    "On the table stand two white cups, a glass bottle and a bowl of oranges.",
    "The wall at the back is painted light blue and holds a round clock.",
    "To the right a tall window shows trees and a cloudy grey sky.",
    "A red bicycle leans against the window frame next to a small plant.",
    "Near the bottom left corner a pair of black shoes lies on the floor.",
    "A framed poster above the table shows a lighthouse by the sea.",
    "The street sign on the corner says main street in white letters.",
    "Three children in yellow jackets wait at the bus stop.",
    "A man with a grey beard reads a newspaper on a green bench.",
    "The shop window displays five cakes on silver plates.",
    "Far in the background a mountain rises above the houses.",
    "The chart has six blue bars and the tallest one is on the right.",
    "Two cats sit on the roof of a small red car.",
    "A woman holds an umbrella with white dots while it rains.",
]
# espeak-ng speaks about this many words a minute at its default speed.
DEFAULT_WPM = 150


def require_tools() -> None:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: install the Debian package (make test does)")


def description(seconds: float, *, seed: int, wpm: int = DEFAULT_WPM) -> str:
    """A description that takes about `seconds` to speak at `wpm` words a minute."""
    rng = random.Random(seed)
    words_needed = math.ceil(seconds * wpm / 60)
    parts: list[str] = []
    while sum(len(p.split()) for p in parts) < words_needed:
        parts.append(rng.choice(SENTENCES))
    return " ".join(parts)


def espeak(path: Path, text: str, *, voice: str = "en-us", wpm: int = DEFAULT_WPM) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), text], check=True)
    return path


def duration(path: Path) -> float:
    out = subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True)
    return float(out.stdout)


def add_noise(clean: Path, out: Path, *, snr_db: float, seed: int = 0) -> Path:
    """Mix white noise into `clean` so that speech power / noise power = snr_db."""
    stats = subprocess.run(
        ["sox", str(clean), "-n", "stat"], check=True, capture_output=True, text=True
    ).stderr
    rms = next(
        float(line.split(":")[1]) for line in stats.splitlines() if "RMS     amplitude" in line
    )
    # Uniform white noise from sox's synth at amplitude a has an RMS of about a / sqrt(3).
    amplitude = min(1.0, rms / (10 ** (snr_db / 20)) * math.sqrt(3))
    noise = out.with_suffix(".noise.wav")
    rate = subprocess.run(
        ["soxi", "-r", str(clean)], check=True, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run(
        ["sox", "-R", "-n", "-r", rate, "-c", "1", str(noise), "synth", str(duration(clean)),
         "whitenoise", "vol", f"{amplitude:.6f}"],
        check=True,
    )  # fmt: skip
    subprocess.run(["sox", "-m", str(clean), str(noise), str(out)], check=True)
    noise.unlink()
    return out
