"""pipelines.audio: real Opus audio is measured; everything else is refused with a reason."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from pipelines.audio import AudioRejected, inspect_audio, opus_packet_samples, sniff_container
from tests.captions.audio_fixtures import (
    espeak_wav,
    speech_webm,
    wav_declaring_rate,
    webm_with_stretched_timestamps,
)

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


@pytest.mark.parametrize("declared", [1333, 4000, 200_000])
def test_implausible_sample_rates_are_refused(declared: int) -> None:
    # The attack that got through: 5 s of 16 kHz speech declared at 1333 Hz read as 60 s.
    data = wav_declaring_rate(5, declared_rate=declared)
    with av.open(io.BytesIO(data)) as probe:
        assert probe.streams.audio[0].sample_rate == declared
    with pytest.raises(AudioRejected) as caught:
        inspect_audio(data, max_bytes=LIMIT)
    assert f"sample rate of {declared} Hz" in caught.value.reason
    assert "8000 to 96000 Hz" in caught.value.reason


def test_a_plausible_rate_in_the_same_wav_is_measured_by_its_samples() -> None:
    info = inspect_audio(wav_declaring_rate(5, declared_rate=16_000), max_bytes=LIMIT)
    assert (info.sample_rate, info.duration_seconds) == (16_000, pytest.approx(5.0, abs=0.01))


def test_stretched_timestamps_do_not_lengthen_the_duration() -> None:
    data = webm_with_stretched_timestamps(2, factor=6)
    with av.open(io.BytesIO(data), format="matroska") as probe:
        stream = probe.streams.audio[0]
        last = max(p.pts for p in probe.demux(stream) if p.pts is not None)
        assert float(last * stream.time_base) > 10  # what timestamps alone would say
    info = inspect_audio(data, max_bytes=LIMIT)
    assert info.duration_seconds == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(
    ("packet", "samples"),
    [
        (bytes([0b11111_0_00]), 960),  # CELT 20 ms, one frame
        (bytes([0b00011_0_01]), 2 * 2880),  # SILK 60 ms, two frames
        (bytes([0b10000_0_11, 5]), 5 * 120),  # CELT 2.5 ms, code 3 with five frames
    ],
)
def test_opus_packets_are_counted_from_their_toc_byte(packet: bytes, samples: int) -> None:
    assert opus_packet_samples(packet) == samples


def test_malformed_opus_packets_are_refused() -> None:
    for packet in (b"", bytes([0b00011_0_11]), bytes([0b00011_0_11, 3])):
        with pytest.raises(AudioRejected):
            opus_packet_samples(packet)
