"""The admin imports images from the browser in Chromium: files and URLs, a Celery job,
a progress bar that moves, a reason per rejected item, thumbnails in the list."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.captions.pipeline_helpers import worker
from tests.catalog.conftest import HTML_PAGE, ScriptedServer, animation, make_image
from tests.e2e.conftest import log_in
from tests.e2e.test_login_pages import _open_page, _violations

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def image_server(settings) -> Iterator[ScriptedServer]:  # type: ignore[no-untyped-def]
    server = ScriptedServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    settings.FETCH_ALLOWED_ADDRESSES = [f"127.0.0.1:{server.port}"]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "media"
    root.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": "/media/"},
        },
    }
    return root


def _held(server: ScriptedServer, path: str, body: bytes, gate: threading.Event) -> str:
    """A URL that answers only once the test opens `gate`: the job waits there."""

    def route(h: BaseHTTPRequestHandler) -> None:
        gate.wait(timeout=15)
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    server.routes[path] = route
    return server.url(path)


def _bar(page: Any) -> tuple[int, int]:
    return page.evaluate(
        "() => { const b = document.querySelector('[data-import-bar]'); return [b.value, b.max]; }"
    )


def test_browser_import_shows_progress_and_reasons(
    browser, live_server, cast, image_server: ScriptedServer, media: Path
) -> None:  # type: ignore[no-untyped-def]
    from annotator_app.catalog.models import Image, ImportJob

    gate = threading.Event()
    fast = image_server.serve_bytes("/fast.jpg", make_image("JPEG", size=(300, 200), seed=61))
    slow = _held(image_server, "/slow.png", make_image("PNG", size=(200, 300), seed=62), gate)
    files = [
        {"name": "street.webp", "mimeType": "image/webp", "buffer": make_image("WEBP", seed=63)},
        {"name": "notes.png", "mimeType": "image/png", "buffer": HTML_PAGE},
        {"name": "flicker.gif", "mimeType": "image/gif", "buffer": animation("GIF", frames=120)},
    ]
    context, page, problems = _open_page(browser)
    try:
        with worker("default"):
            log_in(page, live_server.url, "boss", "pw-boss-123")
            page.goto(f"{live_server.url}/admin/catalog/image/")
            page.get_by_role("link", name="Import images").click()
            page.get_by_label("Image files").set_input_files(files)
            page.get_by_label("URLs").fill(f"{fast}\n{slow}\n")
            page.get_by_role("button", name="Start import").click()
            job = ImportJob.objects.get()
            page.wait_for_url(f"{live_server.url}/admin/catalog/image/import/{job.pk}/")
            # The worker imported the first URL and now waits on the second: the bar,
            # polled by the page's script, stands at 1 of 5.
            page.wait_for_function(
                "() => document.querySelector('[data-import-bar]').value === 1"
                " && document.querySelector('[data-import-bar]').max === 5",
                timeout=60_000,
            )
            assert page.locator("[data-import-status]").inner_text() == "Running"
            assert page.locator("[data-import-outcomes] tr").count() == 1
            gate.set()
            page.wait_for_selector("[data-import-finished=true]", timeout=60_000)
        assert page.locator("[data-import-status]").inner_text() == "Done"
        assert _bar(page) == [5, 5]
        assert page.locator("[data-import-counts]").inner_text() == (
            "imported 3, duplicate 0, rejected 2"
        )
        rows = [r.inner_text() for r in page.locator("[data-import-outcomes] tr").all()]
        assert len(rows) == 5
        assert "upload:notes.png" in rows[3] and "HTML" in rows[3]
        assert "upload:flicker.gif" in rows[4] and "more than 100 frames" in rows[4]
        assert Image.objects.count() == 3
        # The list shows each image as a thumbnail, loaded through the media view.
        page.goto(f"{live_server.url}/admin/catalog/image/")
        thumbs = page.locator("img.admin-thumbnail")
        assert thumbs.count() == 3
        page.wait_for_function(
            "() => [...document.querySelectorAll('img.admin-thumbnail')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        # A phone-sized window: the table scrolls inside its box, the page does not.
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert _violations(page) == [] and problems == [], (_violations(page), problems)
    finally:
        gate.set()
        context.close()
