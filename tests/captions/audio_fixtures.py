"""Real speech for the capture tests: espeak-ng speaks, PyAV encodes Opus in WebM."""

from __future__ import annotations

import io
import shutil
import struct
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


def wav_declaring_rate(seconds: float, *, declared_rate: int, real_rate: int = 16_000) -> bytes:
    """`seconds` of speech sampled at `real_rate`, in a WAV whose header says `declared_rate`.

    The attack: at 1333 Hz declared, 16 kHz speech plays (and measures) 12 times longer.
    """
    speech = np.resize(_speech_samples()[:: RATE // real_rate], int(seconds * real_rate))
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, declared_rate, declared_rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webm_with_stretched_timestamps(seconds: float, *, factor: int) -> bytes:
    """`seconds` of Opus speech whose packet timestamps claim `factor` times as long."""
    out = io.BytesIO()
    with av.open(io.BytesIO(speech_webm(seconds)), format="matroska") as src:
        audio = src.streams.audio[0]
        with av.open(out, "w", format="webm") as dst:
            stream = dst.add_stream_from_template(audio)
            for packet in src.demux(audio):
                if packet.size == 0:
                    continue
                packet.pts, packet.dts = packet.pts * factor, packet.dts * factor
                packet.stream = stream
                dst.mux(packet)
    return out.getvalue()


def wav_samples(wav: Path) -> np.ndarray:
    """A WAV file's audio as mono float32 samples at 48 kHz (what the browser encodes)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    with av.open(str(wav)) as src:
        parts = [f.to_ndarray()[0] for fr in src.decode(audio=0) for f in resampler.resample(fr)]
    return np.concatenate(parts).astype(np.float32)


def webm_by_second(samples: np.ndarray) -> tuple[bytes, list[int]]:
    """48 kHz samples as Opus in WebM with 1 s clusters, as MediaRecorder writes with a
    1 s timeslice, and the file's byte length after each second (the encoder's last
    packets come after the last of those lengths)."""
    out = io.BytesIO()
    lengths = []
    with av.open(out, "w", format="webm", options={"cluster_time_limit": "1000"}) as dst:
        stream = dst.add_stream("libopus", rate=RATE, layout="mono")
        stream.bit_rate = 32_000
        for start in range(0, len(samples), RATE):
            frame = av.AudioFrame.from_ndarray(
                samples[np.newaxis, start : start + RATE], format="flt", layout="mono"
            )
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                dst.mux(packet)
            lengths.append(out.tell())
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue(), lengths
