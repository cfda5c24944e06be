"""Importing images: folders, URLs, URL lists, dedupe, refusals that write nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotator_app.catalog.models import Image
from annotator_app.catalog.services import ImportStatus, image_import_bytes, images_import
from tests.catalog.conftest import (
    HTML_PAGE,
    SVG_WITH_SCRIPT,
    ScriptedServer,
    animation,
    make_image,
    png_bomb,
    stored_files,
)

pytestmark = pytest.mark.django_db


def test_import_bytes_stores_content_addressed_and_dedupes(media_root: Path, cast) -> None:  # type: ignore[no-untyped-def]
    data = make_image("JPEG")
    first = image_import_bytes(
        data=data, source_url="a.jpg", topics=["Clocks"], created_by=cast.admin
    )
    assert first.status == ImportStatus.IMPORTED and first.image is not None
    sha = first.image.sha256
    assert first.image.storage_key == f"images/{sha[:2]}/{sha[2:4]}/{sha}.jpg"
    assert (media_root / first.image.storage_key).read_bytes() == data
    assert (first.image.mime, first.image.size_bytes) == ("image/jpeg", len(data))
    assert first.image.created_by == cast.admin
    again = image_import_bytes(data=data, source_url="copy.jpg", topics=["charts"])
    assert again.status == ImportStatus.DUPLICATE and again.image == first.image
    assert sorted(t.slug for t in first.image.topics.all()) == ["charts", "clocks"]
    assert Image.objects.count() == 1 and len(stored_files(media_root)) == 1


def _make_folder(root: Path) -> Path:
    folder = root / "incoming"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "a.png").write_bytes(make_image("PNG", seed=1))
    (folder / "sub" / "b.jpg").write_bytes(make_image("JPEG", seed=2))
    (folder / "sub" / "deeper" / "c.webp").write_bytes(make_image("WEBP", seed=3))
    (folder / "sub" / "d.gif").write_bytes(make_image("GIF", seed=4))
    # Same bytes under another name: a duplicate by hash.
    (folder / "sub" / "a-copy.bin").write_bytes(make_image("PNG", seed=1))
    (folder / "notes.png").write_bytes(b"this is text, whatever the name says")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return folder


def test_import_from_folder_recursive(media_root: Path, tmp_path: Path) -> None:
    summary = images_import(sources=[str(_make_folder(tmp_path))], topics=["street"])
    assert summary.counts == {"imported": 4, "duplicate": 1, "rejected": 1}
    assert summary.rejected[0].source.endswith("notes.png")
    assert "not a supported image" in summary.rejected[0].reason
    assert sorted(Image.objects.values_list("format", flat=True)) == ["gif", "jpeg", "png", "webp"]
    assert len(stored_files(media_root)) == 4
    assert Image.objects.filter(topics__slug="street").count() == 4
    again = images_import(sources=[str(tmp_path / "incoming")])
    assert again.counts == {"imported": 0, "duplicate": 5, "rejected": 1}


def test_import_from_urls_and_url_list(
    media_root: Path, tmp_path: Path, allow_server: ScriptedServer
) -> None:
    png, jpeg = make_image("PNG", seed=5), make_image("JPEG", seed=6)
    url_png = allow_server.serve_bytes("/img/one.png", png)
    url_jpeg = allow_server.serve_bytes("/img/two", jpeg, content_type="application/octet-stream")
    url_html = allow_server.serve_bytes("/img/fake.png", HTML_PAGE, content_type="image/png")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# demo images\n\n{url_png}\n  {url_jpeg}  \n{url_html}\n# end\n")
    summary = images_import(sources=[str(listing), url_png])
    assert summary.counts == {"imported": 2, "duplicate": 1, "rejected": 1}
    assert summary.rejected[0].source == url_html and "HTML" in summary.rejected[0].reason
    stored = Image.objects.get(format="jpeg")
    assert stored.source_url == url_jpeg and stored.mime == "image/jpeg"
    assert len(stored_files(media_root)) == 2


def _assert_rejected_and_nothing_written(summary, media_root: Path, reason_part: str) -> None:  # type: ignore[no-untyped-def]
    assert summary.counts["imported"] == 0 and summary.counts["duplicate"] == 0
    assert summary.rejected, "expected a rejection"
    assert all(o.reason for o in summary.rejected)
    assert any(reason_part in o.reason for o in summary.rejected), summary.rejected
    assert Image.objects.count() == 0
    assert stored_files(media_root) == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"plain text, not an image", "not a supported image"),
        (make_image("JPEG")[:300], "truncated"),
        (make_image("PNG")[:-12], "truncated"),
        (png_bomb(), "decompression bomb"),
        (SVG_WITH_SCRIPT, "SVG"),
        (HTML_PAGE, "HTML"),
        (b"", "empty file"),
    ],
    ids=["text", "truncated-jpeg", "truncated-png", "bomb", "svg", "html", "empty"],
)
def test_bad_files_are_rejected_and_nothing_written(
    media_root: Path, tmp_path: Path, data: bytes, reason: str
) -> None:
    bad = tmp_path / "upload.png"
    bad.write_bytes(data)
    summary = images_import(sources=[str(bad)])
    _assert_rejected_and_nothing_written(summary, media_root, reason)
    outcome = image_import_bytes(data=data, source_url="direct")
    assert outcome.status == ImportStatus.REJECTED and reason in outcome.reason
    assert Image.objects.count() == 0 and stored_files(media_root) == []


def test_a_5000_frame_gif_is_rejected_and_nothing_written(media_root: Path, tmp_path: Path) -> None:
    # The attack that got through: a small GIF holding 5000 frames.
    bomb = tmp_path / "many-frames.gif"
    bomb.write_bytes(animation("GIF", frames=5000))
    summary = images_import(sources=[str(bomb)])
    _assert_rejected_and_nothing_written(summary, media_root, "more than 100 frames")


def test_an_animation_decoding_to_too_many_pixels_is_rejected_and_nothing_written(
    media_root: Path, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    # 30 frames of 1000x1000: each frame passes the per-image limit, all of them do not.
    settings.IMAGE_MAX_TOTAL_PIXELS = 20_000_000
    bomb = tmp_path / "big-frames.gif"
    bomb.write_bytes(animation("GIF", frames=30, size=(1000, 1000)))
    summary = images_import(sources=[str(bomb)])
    _assert_rejected_and_nothing_written(summary, media_root, "over 20000000 pixels")


def test_oversize_file_is_rejected(media_root: Path, tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.IMAGE_MAX_BYTES = 1000
    big = tmp_path / "big.png"
    big.write_bytes(make_image("PNG", size=(400, 400)))
    _assert_rejected_and_nothing_written(
        images_import(sources=[str(big)]), media_root, "file too large"
    )


@pytest.mark.parametrize(
    ("make_url", "reason"),
    [
        (lambda s: "ftp://example.com/a.png", "scheme ftp://"),
        (lambda s: "file:///etc/passwd", "scheme file://"),
        (lambda s: s.url("/a.png"), "loopback"),
        (lambda s: f"http://localhost:{s.port}/a.png", "loopback"),
        (lambda s: f"http://[::1]:{s.port}/a.png", "loopback"),
        (lambda s: f"http://[::ffff:127.0.0.1]:{s.port}/a.png", "loopback"),
        (lambda s: "http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ],
    ids=["ftp", "file", "127.0.0.1", "localhost", "ipv6-loopback", "ipv4-mapped", "metadata"],
)
def test_refused_urls_with_guard_as_shipped(
    media_root: Path,
    http_server: ScriptedServer,
    make_url,
    reason: str,  # type: ignore[no-untyped-def]
) -> None:
    http_server.serve_bytes("/a.png", make_image("PNG"))
    summary = images_import(sources=[make_url(http_server)])
    _assert_rejected_and_nothing_written(summary, media_root, reason)
    assert summary.nothing_read and http_server.seen_hosts == []


def test_redirects_out_of_the_allowed_server_are_refused(
    media_root: Path, allow_server: ScriptedServer
) -> None:
    allow_server.serve_bytes("/a.png", make_image("PNG"))
    other = allow_server.redirect("/to-other", "http://127.0.0.1:9/a.png")
    meta = allow_server.redirect("/to-meta", "http://169.254.169.254/latest/meta-data/")
    summary = images_import(sources=[other, meta])
    _assert_rejected_and_nothing_written(summary, media_root, "loopback address 127.0.0.1")
    assert "cloud metadata" in summary.rejected[1].reason


def test_streams_over_the_limit_and_slow_servers_are_refused(
    media_root: Path,
    allow_server: ScriptedServer,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.IMAGE_MAX_BYTES = 200_000
    settings.FETCH_TIMEOUT_SECONDS = 1
    endless = allow_server.stream_endless("/endless")
    slow = allow_server.stall("/slow", seconds=3)
    summary = images_import(sources=[endless, slow])
    _assert_rejected_and_nothing_written(summary, media_root, "response too large")
    assert "timed out" in summary.rejected[1].reason


def test_file_is_removed_when_the_row_cannot_be_created(
    media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_create(**kwargs: object) -> Image:
        raise RuntimeError("database went away")

    monkeypatch.setattr(Image.objects, "create", broken_create)
    with pytest.raises(RuntimeError):
        image_import_bytes(data=make_image("PNG"), source_url="x")
    assert stored_files(media_root) == []


def test_orphan_file_from_a_crash_is_reused_not_duplicated(media_root: Path) -> None:
    data = make_image("PNG", seed=9)
    first = image_import_bytes(data=data)
    assert first.image is not None
    key = first.image.storage_key
    Image.objects.all().delete()  # the row is gone, the file stays: as after a crash
    second = image_import_bytes(data=data)
    assert second.status == ImportStatus.IMPORTED and second.image is not None
    assert second.image.storage_key == key and stored_files(media_root) == [key]


def test_command_prints_summary_and_rejections(media_root: Path, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    folder = _make_folder(tmp_path)
    call_command(
        "import_images",
        str(folder),
        "--topic",
        "street",
        "--campaign",
        "c1",
        stdout=out,
        stderr=err,
    )
    text = out.getvalue()
    assert "imported: 4  duplicate: 1  rejected: 1" in text
    assert "notes.png: not a supported image" in text
    assert "campaigns are not available yet" in err.getvalue()


def test_command_fails_only_when_nothing_could_be_read(media_root: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError, match="nothing could be read"):
        call_command("import_images", str(tmp_path / "missing"), "ftp://x/a.png", stdout=out)
    assert "no such file or folder" in out.getvalue() and "scheme ftp://" in out.getvalue()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    call_command("import_images", str(bad), stdout=io.StringIO())  # read, rejected: exit 0
