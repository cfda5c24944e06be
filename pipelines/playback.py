"""A seekable copy of a browser recording, for players (Django-free).

Chrome's MediaRecorder writes WebM as a live stream: no Duration in the header and no
Cues (the seek index), so an <audio> element shows 0:00 (or Infinity) and cannot seek.
Remuxing once on the server fixes that without re-encoding: the packets are copied into
a new WebM written to a seekable buffer, where the muxer goes back to fill in Duration
and append Cues. Copying packets is cheap (milliseconds for a minute of Opus); the
original upload is kept untouched, the copy is stored beside it.
"""

from __future__ import annotations

import io

import av

# Containers whose browser recordings lack a duration and a seek index.
REMUXED_CONTAINERS = {"webm", "matroska"}


class PlaybackError(ValueError):
    """The recording could not be remuxed; it still plays, only without seeking."""


def needs_seekable_copy(container: str) -> bool:
    return container in REMUXED_CONTAINERS


def seekable_webm(data: bytes) -> bytes:
    """The same audio packets in a WebM with Duration and Cues; PlaybackError on failure."""
    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(data), mode="r", format="matroska") as src:
            if not src.streams.audio:
                raise PlaybackError("the file holds no audio stream")
            audio = src.streams.audio[0]
            with av.open(out, mode="w", format="webm") as dst:
                stream = dst.add_stream_from_template(audio)
                for packet in src.demux(audio):
                    if packet.dts is None or packet.size == 0:
                        continue  # the demuxer's end-of-stream marker
                    packet.stream = stream
                    dst.mux(packet)
    except (av.error.FFmpegError, ValueError) as exc:
        if isinstance(exc, PlaybackError):
            raise
        raise PlaybackError(f"remuxing failed ({exc.__class__.__name__}: {exc})") from None
    return out.getvalue()
