"""pipelines.audio: real Opus audio is measured; everything else is refused with a reason."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from pipelines.audio import AudioRejected, inspect_audio, sniff_container
from tests.captions.audio_fixtures import espeak_wav, speech_webm

LIMIT = 10_000_000


def test_webm_opus_is_measured_from_its_packets() -> None:
    data = speech_webm(5)
    info = inspect_audio(data, max_bytes=LIMIT)
    assert (info.container, info.mime_type, info.extension, info.codec) == (
        "webm",
        "audio/webm",
        "webm",
        "opus",
    )
    assert info.duration_seconds == pytest.approx(5.0, abs=0.05)
    assert info.size_bytes == len(data) and len(info.sha256) == 64


def test_ogg_and_wav_are_accepted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert inspect_audio(speech_webm(3, container="ogg"), max_bytes=LIMIT).duration_seconds == (
        pytest.approx(3.0, abs=0.05)
    )
    wav = espeak_wav(tmp_path / "s.wav", "hello there").read_bytes()
    info = inspect_audio(wav, max_bytes=LIMIT)
    assert info.container == "wav" and 0.3 < info.duration_seconds < 3


def test_webm_without_a_duration_header_is_measured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Like Chrome's MediaRecorder output: a live (unseekable) WebM has no Duration element.
    out = io.BytesIO()
    samples = np.zeros((1, 48_000 * 4), dtype=np.float32)
    with av.open(out, "w", format="webm", options={"live": "1"}) as dst:
        stream = dst.add_stream("libopus", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = 48_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            dst.mux(packet)
    with av.open(io.BytesIO(out.getvalue())) as probe:
        assert probe.duration is None
    assert inspect_audio(out.getvalue(), max_bytes=LIMIT).duration_seconds == pytest.approx(
        4.0, abs=0.05
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"just some text, not audio at all", "not audio"),
        (b"<!doctype html><script>alert(1)</script>", "HTML"),
        (b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1/x.ts\n", "playlist"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "an image"),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 400, "cannot be read"),
        (b"OggS" + b"\x00" * 200, "cannot be read"),
    ],
)
def test_non_audio_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(AudioRejected) as caught:
        inspect_audio(data, max_bytes=LIMIT)
    assert reason in caught.value.reason


def test_size_limit_is_checked_before_decoding() -> None:
    data = speech_webm(2)
    with pytest.raises(AudioRejected, match="limit is 1000"):
        inspect_audio(data, max_bytes=1000)


def test_garbage_after_the_header_never_passes_as_the_full_recording() -> None:
    data = bytearray(speech_webm(3))
    rng = np.random.default_rng(0)
    for offset in (100, 300, 600):
        broken = bytearray(data)
        broken[offset:] = rng.integers(0, 256, len(data) - offset, dtype=np.uint8).tobytes()
        try:
            info = inspect_audio(bytes(broken), max_bytes=LIMIT)
        except AudioRejected as exc:
            assert exc.reason
        else:
            # The demuxer stops at the garbage: what it measured is the intact part only.
            assert info.duration_seconds < 1.0


def test_sniffing_names_the_containers() -> None:
    assert sniff_container(b"RIFF\0\0\0\0WAVEfmt ") == "wav"
    assert sniff_container(b"\0\0\0\x20ftypM4A ") == "mp4"
    assert sniff_container(b"ID3\x04") == "mp3"
    assert sniff_container(b"hello") is None
