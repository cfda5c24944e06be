"""The admin page "Export" in Chromium: start a points export, watch it finish through a
real Celery worker, download its manifest; an annotator is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import log_in
from tests.e2e.test_login_pages import _open_page, _violations

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_admin_starts_an_export_and_sees_it_finished(
    browser, live_server, cast, settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from annotator_app.exports.models import Export
    from tests.captions.pipeline_helpers import worker
    from tests.exports import helpers
    from tests.work.conftest import make_images

    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.EXPORT_IMAGE_BASE_URL = "https://images.example.org/"
    camp = helpers.campaign("points", name="e2e points")
    image = make_images(1, "e2e-export")[0]
    helpers.points_image(camp, image, [("<b>dog</b>", [(50.0, 50.0)]), ("cat", [])])

    context, page, problems = _open_page(browser)
    try:
        with worker(queues="default"):
            log_in(page, live_server.url, "boss", "pw-boss-123")
            page.get_by_role("link", name="Export datasets").click()
            page.wait_for_url(f"{live_server.url}/exports/")
            page.get_by_label("Dataset").select_option("points")
            page.get_by_label("Campaign").select_option(label="e2e points (points)")
            page.get_by_role("button", name="Start export").click()
            assert page.get_by_role("status").filter(has_text="started").is_visible()
            # The page polls the API and reloads when the job is done (liveness bound only).
            manifest_link = page.get_by_role("link", name="manifest.json")
            manifest_link.wait_for(timeout=120_000)
        export = Export.objects.get()
        assert page.get_by_role("cell", name="Done").is_visible()
        assert page.get_by_text(str(export.pk), exact=True).is_visible()
        response = page.request.get(live_server.url + (manifest_link.get_attribute("href") or ""))
        assert response.ok
        manifest = json.loads(response.body())
        assert manifest["dataset"] == "pixmo-points" and manifest["rows"] == 2
        assert _violations(page) == [] and problems == [], (_violations(page), problems)
    finally:
        context.close()

    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "owner", "pw-owner-123")
        assert page.get_by_role("link", name="Export datasets").count() == 0
        refused = page.goto(f"{live_server.url}/exports/")
        assert refused is not None and refused.status == 403
        download = page.request.get(
            f"{live_server.url}/api/v1/exports/{export.pk}/files/manifest.json"
        )
        assert download.status == 403
    finally:
        context.close()
