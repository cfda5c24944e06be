"""Check uploaded audio by its content and measure how long it is.

The rules: the magic bytes must name one of the containers browsers record into (WebM/
Matroska, Ogg, MP4, WAV, MP3) and the demuxer is then forced to that one (no probing,
so no playlist demuxer ever follows a URL hidden in the bytes); the file must hold
exactly one kind of stream, audio, at a sample rate plausible for speech; every packet
is demuxed and a sample of packets (the first, the last and some in between) must
decode.

The duration is the number of samples the audio decodes to, divided by the rate they
decode at: never a header's duration, never packet timestamps (a file can stretch its
timestamps, or declare a tiny sample rate, to make seconds of speech pass as minutes;
Chrome's MediaRecorder writes WebM without a duration anyway). Opus packets say how many
samples they hold in their first bytes (RFC 6716, section 3.1), so they are counted
without decoding them all; other codecs are decoded in full.

Demuxing everything is cheap (about 10 ms for 90 s of Opus); decoding everything is
not (about 140 ms, quiet machine), which is why only a sample of Opus is decoded here.
The ASR stage decodes the whole file later and fails the recording if a middle packet
is corrupt.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from dataclasses import dataclass

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

# Sample rates a speech recording may declare (telephone 8 kHz to studio 96 kHz).
DEFAULT_MIN_SAMPLE_RATE = 8_000
DEFAULT_MAX_SAMPLE_RATE = 96_000
OPUS_RATE = 48_000  # Opus always decodes at 48 kHz, whatever the header says

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


def opus_packet_samples(packet: bytes) -> int:
    """Samples (at 48 kHz) one Opus packet decodes to, from its TOC byte (RFC 6716 3.1)."""
    if not packet:
        raise AudioRejected("the audio holds an empty Opus packet")
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        frame = (480, 960)[config % 2]
    else:  # CELT: 2.5, 5, 10, 20 ms
        frame = (120, 240, 480, 960)[config % 4]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2 or not packet[1] & 0x3F:
            raise AudioRejected("the audio holds a malformed Opus packet")
        frames = packet[1] & 0x3F
    if frames * frame > OPUS_RATE * 120 // 1000:
        raise AudioRejected("the audio holds an Opus packet longer than 120 ms")
    return frames * frame


def _decode_ok(stream: av.audio.stream.AudioStream, packet: av.Packet) -> int:
    """Decode one packet; the number of samples it gave. Raises AudioRejected."""
    try:
        return sum(frame.samples for frame in stream.codec_context.decode(packet))
    except (av.error.FFmpegError, ValueError) as exc:
        raise AudioRejected(f"the audio does not decode ({exc.__class__.__name__})") from None


def inspect_audio(
    data: bytes,
    *,
    max_bytes: int,
    min_sample_rate: int = DEFAULT_MIN_SAMPLE_RATE,
    max_sample_rate: int = DEFAULT_MAX_SAMPLE_RATE,
) -> AudioInfo:
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
        stream = _audio_stream(handle, min_rate=min_sample_rate, max_rate=max_sample_rate)
        samples, rate = _count_samples(handle, stream)
        return AudioInfo(
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            container=container,
            mime_type=mime_type,
            extension=extension,
            codec=stream.codec_context.name,
            sample_rate=rate,
            channels=int(stream.codec_context.channels or 0),
            duration_seconds=round(samples / rate, 3),
        )


def _audio_stream(
    handle: av.container.InputContainer, *, min_rate: int, max_rate: int
) -> av.audio.stream.AudioStream:
    """The one audio stream, if the file holds nothing else and its rate is plausible."""
    if handle.streams.video or handle.streams.subtitles:
        raise AudioRejected("the file holds video or subtitles; upload audio only")
    if not handle.streams.audio:
        raise AudioRejected("the file holds no audio stream")
    stream = handle.streams.audio[0]
    rate = int(stream.codec_context.sample_rate or 0)
    if not min_rate <= rate <= max_rate:
        raise AudioRejected(
            f"the audio declares a sample rate of {rate} Hz; speech is accepted at "
            f"{min_rate} to {max_rate} Hz"
        )
    return stream


def _count_samples(
    handle: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> tuple[int, int]:
    """(samples, rate they decode at) over every packet; a sample of Opus is decoded."""
    opus = stream.codec_context.name == "opus"
    samples = 0
    decoded = 0  # samples produced by the packets actually decoded
    count = 0
    # The last Opus packets not decoded yet: decoded at the end, so the file's end is.
    tail: deque[av.Packet] = deque(maxlen=TAIL_PACKETS)
    try:
        for packet in handle.demux(stream):
            if packet.size == 0:
                continue
            if not opus:
                got = _decode_ok(stream, packet)
                samples, decoded = samples + got, decoded + got
            else:
                samples += opus_packet_samples(bytes(packet))
                if count < HEAD_PACKETS or count % MIDDLE_STRIDE == 0:
                    decoded += _decode_ok(stream, packet)
                else:
                    tail.append(packet)
            count += 1
    except av.error.FFmpegError as exc:
        raise AudioRejected(f"the audio is corrupt ({exc.__class__.__name__})") from None
    if count == 0:
        raise AudioRejected("the file holds no audio data")
    for packet in tail:
        decoded += _decode_ok(stream, packet)
    if decoded == 0 or samples == 0:
        raise AudioRejected("the audio decodes to no samples")
    return samples, OPUS_RATE if opus else int(stream.codec_context.sample_rate)
