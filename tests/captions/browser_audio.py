"""Audio as Chrome's MediaRecorder sends it, for the playback tests and benchmark."""

from __future__ import annotations

import io

import av

from tests.captions.audio_fixtures import speech_webm


def chrome_like_webm(seconds: float) -> bytes:
    """Opus speech in WebM written as a live stream, as Chrome's MediaRecorder writes it:
    no Duration in the header and no Cues."""
    out = io.BytesIO()
    with (
        av.open(io.BytesIO(speech_webm(seconds)), format="matroska") as src,
        av.open(out, "w", format="webm", options={"live": "1"}) as dst,
    ):
        stream = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return out.getvalue()
