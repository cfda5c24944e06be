"""Real speech for the capture tests: espeak-ng speaks, PyAV encodes Opus in WebM."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import pytest

SPEECH = (
    "A red bicycle leans against a brick wall. Two people walk past a bakery "
    "with a green sign that says fresh bread."
)
RATE = 48_000


def espeak_wav(path: Path, text: str = SPEECH) -> Path:
    """Write `text` spoken by espeak-ng to `path` (a WAV file)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: install Debian's 'espeak-ng' package (make test does)")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return path


@lru_cache(maxsize=1)
def _speech_samples() -> np.ndarray:
    """The test speech as mono float32 samples at 48 kHz."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = espeak_wav(Path(tmp) / "speech.wav")
        with av.open(str(wav)) as src:
            for frame in src.decode(audio=0):
                parts.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
    parts.extend(f.to_ndarray()[0] for f in resampler.resample(None))
    return np.concatenate(parts).astype(np.float32)


@lru_cache(maxsize=16)
def speech_webm(seconds: float, *, container: str = "webm") -> bytes:
    """`seconds` of looped test speech, encoded as Opus (WebM by default, or Ogg)."""
    speech = _speech_samples()
    total = int(seconds * RATE)
    samples = np.resize(speech, total)  # repeats the speech until `total` samples
    out = io.BytesIO()
    with av.open(out, "w", format=container) as dst:
        stream = dst.add_stream("libopus", rate=RATE, layout="mono")
        stream.bit_rate = 32_000
        for start in range(0, total, 960 * 50):
            block = samples[start : start + 960 * 50]
            frame = av.AudioFrame.from_ndarray(block[np.newaxis, :], format="flt", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()
