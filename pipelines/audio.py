"""Check uploaded audio by its content and measure how long it is.

The rules: the magic bytes must name one of the containers browsers record into (WebM/
Matroska, Ogg, MP4, WAV, MP3) and the demuxer is then forced to that one (no probing,
so no playlist demuxer ever follows a URL hidden in the bytes); the file must hold
exactly one kind of stream, audio; every packet is demuxed and a sample of packets (the
first, the last and some in between) must decode. The duration comes from the packet
timestamps, never from a header: Chrome's MediaRecorder writes WebM without one.

Demuxing everything is cheap (about 10 ms for 90 s of Opus); decoding everything is
not (about 140 ms), which is why only a sample is decoded here. The ASR stage decodes
the whole file later and fails the recording if a middle packet is corrupt.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av

# container -> (PyAV demuxer name, MIME type, file extension)
CONTAINERS: dict[str, tuple[str, str, str]] = {
    "webm": ("matroska", "audio/webm", "webm"),
    "matroska": ("matroska", "audio/x-matroska", "mka"),
    "ogg": ("ogg", "audio/ogg", "ogg"),
    "mp4": ("mp4", "audio/mp4", "m4a"),
    "wav": ("wav", "audio/wav", "wav"),
    "mp3": ("mp3", "audio/mpeg", "mp3"),
}

# Packets decoded from each end, and the stride of those decoded in between.
HEAD_PACKETS = 25
TAIL_PACKETS = 25
MIDDLE_STRIDE = 50


class AudioRejected(ValueError):
    """The bytes are not acceptable audio; `reason` says why in words for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    sha256: str
    size_bytes: int
    container: str  # a key of CONTAINERS
    mime_type: str
    extension: str
    codec: str  # e.g. "opus"
    sample_rate: int
    channels: int
    duration_seconds: float


def sniff_container(data: bytes) -> str | None:
    """The accepted container the magic bytes announce, or None."""
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        # The EBML header names its DocType within its first few dozen bytes.
        return "webm" if b"webm" in data[:64] else "matroska"
    if data.startswith(b"OggS"):
        return "ogg"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[4:8] == b"ftyp":
        return "mp4"
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _describe_unknown(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<script" in head:
        return "HTML"
    if head.startswith(b"#extm3u"):
        return "a playlist"
    if head.startswith(b"%pdf"):
        return "a PDF"
    if head.startswith((b"\x89png", b"\xff\xd8\xff", b"gif8")):
        return "an image"
    return "an unknown format"


def _decode_ok(stream: av.audio.stream.AudioStream, packet: av.Packet) -> int:
    """Decode one packet; the number of samples it gave. Raises AudioRejected."""
    try:
        return sum(frame.samples for frame in stream.codec_context.decode(packet))
    except (av.error.FFmpegError, ValueError) as exc:
        raise AudioRejected(f"the audio does not decode ({exc.__class__.__name__})") from None


def inspect_audio(data: bytes, *, max_bytes: int) -> AudioInfo:
    """Check `data` as audio and measure it; AudioRejected says what is wrong."""
    if not data:
        raise AudioRejected("the audio file is empty")
    if len(data) > max_bytes:
        raise AudioRejected(f"the audio file is {len(data)} bytes; the limit is {max_bytes}")
    container = sniff_container(data)
    if container is None:
        raise AudioRejected(
            f"the file is {_describe_unknown(data)}, not audio in a supported container "
            "(WebM, Ogg, MP4, WAV or MP3)"
        )
    demuxer, mime_type, extension = CONTAINERS[container]
    try:
        handle = av.open(io.BytesIO(data), mode="r", format=demuxer)
    except (av.error.FFmpegError, ValueError) as exc:
        raise AudioRejected(
            f"the file looks like {container} but cannot be read ({exc.__class__.__name__})"
        ) from None
    with handle:
        return _measure(handle, data=data, container=container, mime=mime_type, ext=extension)


def _measure(
    handle: av.container.InputContainer, *, data: bytes, container: str, mime: str, ext: str
) -> AudioInfo:
    if handle.streams.video or handle.streams.subtitles:
        raise AudioRejected("the file holds video or subtitles; upload audio only")
    if not handle.streams.audio:
        raise AudioRejected("the file holds no audio stream")
    stream = handle.streams.audio[0]
    rate = stream.codec_context.sample_rate or stream.sample_rate or 0
    time_base = stream.time_base or Fraction(1, rate or 1)
    start: int | None = None
    end = 0  # in time_base units: the largest pts + duration seen
    count = 0
    decoded_samples = 0
    # The last packets, each with its decoded sample count (None: not decoded yet).
    tail: deque[tuple[av.Packet, int | None]] = deque(maxlen=TAIL_PACKETS)
    try:
        for packet in handle.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            start = packet.pts if start is None else min(start, packet.pts)
            end = max(end, packet.pts + (packet.duration or 0))
            samples = None
            if count < HEAD_PACKETS or count % MIDDLE_STRIDE == 0:
                samples = _decode_ok(stream, packet)
                decoded_samples += samples
            tail.append((packet, samples))
            count += 1
    except av.error.FFmpegError as exc:
        raise AudioRejected(f"the audio is corrupt ({exc.__class__.__name__})") from None
    if count == 0 or start is None:
        raise AudioRejected("the file holds no audio data")
    last_samples = 0
    for packet, samples in tail:
        last_samples = _decode_ok(stream, packet) if samples is None else samples
        decoded_samples += last_samples if samples is None else 0
    if decoded_samples == 0:
        raise AudioRejected("the audio decodes to no samples")
    last = tail[-1][0]
    duration = float((end - start) * time_base)
    if not last.duration and rate and last.pts is not None:
        # Matroska blocks carry no duration: the last packet's length comes from decoding.
        duration = float((last.pts - start) * time_base) + last_samples / rate
    return AudioInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        container=container,
        mime_type=mime,
        extension=ext,
        codec=stream.codec_context.name,
        sample_rate=int(rate),
        channels=int(stream.codec_context.channels or 0),
        duration_seconds=round(max(duration, 0.0), 3),
    )
