"""The points page in real Chromium on a generated image with objects at known positions.

Mouse (with zoom, pan, drag and undo), touch at a phone's size, keyboard only, "Not
present", Skip with a reason; then a reviewer sees two annotators' points overlaid, and
an admin edits label prompts as a list. No page may break the CSP.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from annotator_app.points.models import LabelAnnotation, PointsAnnotation
from tests.e2e.conftest import assert_clean, log_in, watched_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WIDTH, HEIGHT = 400, 300
# Centres of the drawn objects, in percent of the image.
RED_SQUARES = [(15.0, 20.0), (50.0, 50.0), (85.0, 80.0)]
BLUE_CIRCLE = (75.0, 25.0)
TOLERANCE = 0.6  # percent: about 2 image pixels
PROMPTS = ["red square", "blue circle", "giraffe"]
# A folder to write screenshots to while developing (unset in the suite).
SCREENSHOTS = os.environ.get("PIXMO_E2E_SCREENSHOTS", "")


def scene_png(seed: int = 0) -> bytes:
    """Three red squares and one blue circle on a grey background, at known places."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (WIDTH, HEIGHT), (200, 200, 190 + seed))
    draw = ImageDraw.Draw(picture)
    for x, y in RED_SQUARES:
        cx, cy = x * WIDTH / 100, y * HEIGHT / 100
        draw.rectangle((cx - 12, cy - 12, cx + 12, cy + 12), fill=(210, 30, 30))
    bx, by = BLUE_CIRCLE[0] * WIDTH / 100, BLUE_CIRCLE[1] * HEIGHT / 100
    draw.ellipse((bx - 14, by - 14, bx + 14, by + 14), fill=(30, 60, 210))
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def campaign(name: str, n_images: int = 1, **fields: Any) -> Any:
    from annotator_app.catalog.services import image_import_bytes
    from annotator_app.work.services import campaign_create

    images = [
        image_import_bytes(data=scene_png(seed), source_url=f"e2e:{name}:{seed}").image
        for seed in range(n_images)
    ]
    fields.setdefault("collection_method", "counting")
    if fields["collection_method"] == "counting":
        fields.setdefault("label_prompts", PROMPTS)
    return campaign_create(name=name, kind="points", images=images, **fields)


@pytest.fixture
def open_page(browser: Any, live_server: Any) -> Iterator[Callable[..., tuple[Any, list[str]]]]:
    """Log in as `username` in a fresh context and open `path`; contexts close at the end."""
    contexts: list[Any] = []

    def open_(username: str, password: str, path: str = "/points/", **options: Any):  # type: ignore[no-untyped-def]
        base = live_server.url
        context = browser.new_context(**options)
        contexts.append(context)
        page, problems = watched_page(context)
        page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
        log_in(page, base, username, password)
        page.goto(f"{base}{path}")
        return page, problems

    yield open_
    for context in contexts:
        context.close()


def _screen(page: Any, point: tuple[float, float]) -> tuple[float, float]:
    """Where an image point (percent) is on the screen now (after any zoom and pan)."""
    box = page.locator("[data-image]").bounding_box()
    return box["x"] + box["width"] * point[0] / 100, box["y"] + box["height"] * point[1] / 100


def _label_rows(page: Any) -> list[str]:
    return [row.inner_text().replace("\n", " ") for row in page.locator(".label-row").all()]


def _stored(name: str) -> LabelAnnotation:
    return LabelAnnotation.objects.get(label=name)


def _near(points: list[dict[str, float]], expected: list[tuple[float, float]]) -> bool:
    found = sorted((p["x"], p["y"]) for p in points)
    return len(found) == len(expected) and all(
        abs(fx - ex) <= TOLERANCE and abs(fy - ey) <= TOLERANCE
        for (fx, fy), (ex, ey) in zip(found, sorted(expected), strict=True)
    )


def _pinch_out(page: Any) -> None:
    """Two fingers on the image moving apart (Chromium's touch input, through CDP)."""
    box = page.locator("[data-viewport]").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, spread: float | None) -> None:
        points = (
            []
            if spread is None
            else [
                {"x": cx - spread, "y": cy, "id": 0},
                {"x": cx + spread, "y": cy, "id": 1},
            ]
        )
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 20)
    for spread in range(30, 130, 10):
        touch("touchMove", spread)
    touch("touchEnd", None)
    cdp.detach()


def _wait_ready(page: Any) -> None:
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-image]');"
        " return i.complete && i.naturalWidth > 0 && i.style.transform !== ''; }"
    )


def test_mouse_zoom_pan_drag_undo_and_not_present(open_page, cast) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    campaign("e2e points mouse")
    page, problems = open_page("owner", "pw-owner-123")
    _wait_ready(page)
    expect(page.get_by_role("textbox", name="Label", exact=True)).to_have_value("red square")
    expect(page.get_by_text("Ctrl").first).to_be_visible()  # the shortcuts are on the page

    # Two squares and one mistake, at the "fit" zoom.
    for point in (RED_SQUARES[0], (40.0, 62.0), RED_SQUARES[1]):
        page.mouse.click(*_screen(page, point))
    expect(page.locator(".label-row.active .label-count")).to_have_text("3 points")

    # Drag the mistaken marker away, then undo: it is back where it was.
    mistake = page.locator(".marker[data-point='1']")
    box = mistake.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(*_screen(page, (60.0, 10.0)), steps=8)
    page.mouse.up()
    moved = page.evaluate("JSON.parse(localStorage.getItem(Object.keys(localStorage)[0])).state")
    assert abs(moved["labels"][0]["points"][1]["x"] - 60.0) < TOLERANCE
    page.get_by_role("button", name="Undo", exact=True).click()
    back = page.evaluate("JSON.parse(localStorage.getItem(Object.keys(localStorage)[0])).state")
    assert abs(back["labels"][0]["points"][1]["x"] - 40.0) < TOLERANCE
    # Select it with a click and remove it.
    page.locator(".marker[data-point='1']").click()
    page.get_by_role("button", name="Remove point").click()
    expect(page.locator(".label-row.active .label-count")).to_have_text("2 points")

    # Zoomed in and panned, a click still lands on the right image point.
    page.get_by_role("button", name="Zoom in").click()
    page.get_by_role("button", name="Zoom in").click()
    viewport = page.locator("[data-viewport]").bounding_box()
    start = (viewport["x"] + 40, viewport["y"] + 40)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] - 300, start[1] - 250, steps=10)
    page.mouse.up()  # a pan, not a point
    expect(page.locator(".label-row.active .label-count")).to_have_text("2 points")
    x, y = _screen(page, RED_SQUARES[2])
    assert viewport["x"] < x < viewport["x"] + viewport["width"]
    assert viewport["y"] < y < viewport["y"] + viewport["height"]
    page.mouse.click(x, y)
    expect(page.locator(".label-row.active .label-count")).to_have_text("3 points")

    # A reload keeps the work made so far (saved in the browser as it is made).
    page.reload()
    _wait_ready(page)
    expect(page.get_by_role("status")).to_contain_text("Restored your unsubmitted work")
    expect(page.locator(".label-row.active .label-count")).to_have_text("3 points")
    expect(page.locator(".marker")).to_have_count(3)

    page.get_by_role("button", name="Next label").click()
    expect(page.get_by_role("textbox", name="Label", exact=True)).to_have_value("blue circle")
    page.mouse.click(*_screen(page, BLUE_CIRCLE))
    page.get_by_role("button", name="Next label").click()
    page.get_by_role("button", name="Not present", exact=True).click()
    assert _label_rows(page)[2].endswith("not present")
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/points-desktop.png")
    page.get_by_role("button", name="Submit points").click()
    expect(page.get_by_role("status")).to_have_text("Points submitted: 3 labels, 4 points.")

    annotation = PointsAnnotation.objects.get()
    assert annotation.annotator == cast.owner and annotation.assignment.status == "submitted"
    assert _near(_stored("red square").points, RED_SQUARES), _stored("red square").points
    assert _near(_stored("blue circle").points, [BLUE_CIRCLE])
    giraffe = _stored("giraffe")
    assert (giraffe.count, giraffe.points, giraffe.collection_method) == (0, [], "counting")
    assert page.evaluate("localStorage.length") == 0  # the draft went once the server had it
    assert_clean(page, problems)


def test_touch_taps_on_a_phone_then_skip_with_a_reason(open_page, cast) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from annotator_app.work.models import Assignment

    campaign("e2e points phone", n_images=2, collection_method="pointing")
    phone = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
    page, problems = open_page("owner", "pw-owner-123", path="/", **phone)
    page.get_by_role("link", name="Point at objects in images").click()  # from the home page
    _wait_ready(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    page.get_by_role("textbox", name="Label", exact=True).fill("red square")
    _pinch_out(page)
    zoom = int(page.locator("[data-zoom-level]").inner_text().split()[0])
    assert zoom >= 200, zoom  # two fingers zoomed in ...
    assert page.locator(".marker").count() == 0  # ... and placed nothing
    page.get_by_role("button", name="Fit image").click()
    page.evaluate(
        "window.__kinds = []; document.querySelector('[data-viewport]')"
        ".addEventListener('pointerdown', (e) => window.__kinds.push(e.pointerType))"
    )
    for point in RED_SQUARES:
        page.touchscreen.tap(*_screen(page, point))
    assert page.evaluate("window.__kinds") == ["touch"] * 3  # Pointer Events from a finger
    expect(page.locator(".label-row.active .label-count")).to_have_text("3 points")
    page.get_by_role("button", name="Next label").click()
    page.get_by_role("textbox", name="Label", exact=True).fill("blue circle")
    page.touchscreen.tap(*_screen(page, BLUE_CIRCLE))
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/points-phone.png", full_page=True)
    page.get_by_role("button", name="Submit points").click()
    expect(page.get_by_role("status")).to_have_text("Points submitted: 2 labels, 4 points.")
    assert _near(_stored("red square").points, RED_SQUARES), _stored("red square").points
    assert _stored("blue circle").collection_method == "pointing"

    page.get_by_role("link", name="Point at the next image").click()
    _wait_ready(page)
    page.get_by_role("button", name="Skip", exact=True).click()
    page.get_by_label("Too many objects to point at").check()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_have_text("Image skipped.")
    skipped = Assignment.objects.get(status="skipped")
    assert skipped.skip_reason == "Too many objects to point at"
    assert_clean(page, problems)


def test_keyboard_only_with_a_label_holding_markup(open_page, cast) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    campaign("e2e points keys", collection_method="pointing")
    page, problems = open_page("owner", "pw-owner-123")
    _wait_ready(page)
    keys = page.keyboard
    # The Label box has the focus; Enter goes on to the image, where the cross starts at
    # the centre (50 %, 50 %) and moves 1 % per arrow, 10 % with Shift.
    keys.type("red square")
    keys.press("Enter")
    for key in ["Shift+ArrowLeft"] * 3 + ["ArrowLeft"] * 5 + ["Shift+ArrowUp"] * 3:
        keys.press(key)
    keys.press("Enter")  # (15, 20)
    for key in ["Shift+ArrowRight"] * 3 + ["ArrowRight"] * 5 + ["Shift+ArrowDown"] * 3:
        keys.press(key)
    keys.press("Space")  # (50, 50)
    keys.press("Enter")  # a third point at the same place, by mistake ...
    keys.press("u")  # ... undone
    expect(page.locator(".label-row.active .label-count")).to_have_text("2 points")

    markup = '<b>bold</b> & <img src=x onerror="alert(1)">'
    keys.press("n")  # next label: the Label box gets the focus
    keys.type(markup)
    keys.press("Enter")
    keys.press("x")  # not present
    rows = _label_rows(page)
    assert rows[1] == f"{markup} not present ×", rows  # × deletes the label
    assert page.locator(".label-list b, .label-list img").count() == 0  # text, not markup

    # Fault injection: the first submit reaches the server, but its answer is lost.
    keys_sent: list[str] = []

    def lose_first_answer(route: Any) -> None:
        keys_sent.append(route.request.headers["idempotency-key"])
        if len(keys_sent) == 1:
            route.fetch()
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/v1/points/annotations/", lose_first_answer)
    keys.press("Control+Enter")
    expect(page.get_by_role("status")).to_have_text("Points submitted: 2 labels, 2 points.")
    assert len(keys_sent) == 2 and keys_sent[0] == keys_sent[1]  # retried under one key
    assert PointsAnnotation.objects.count() == 1  # and stored once
    problems[:] = [p for p in problems if "ERR_CONNECTION_RESET" not in p]

    assert _near(_stored("red square").points, [(15.0, 20.0), (50.0, 50.0)])
    absent = _stored(markup)
    assert (absent.count, absent.collection_method) == (0, "pointing")
    assert_clean(page, problems)


def test_a_reviewer_sees_both_annotators_points_and_picks_one(open_page, cast, api_as) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from tests.points.helpers import answers, lease, submit

    reviewed = campaign("e2e points review", overlap=2)
    for user, squares in ((cast.owner, RED_SQUARES), (cast.other, RED_SQUARES[:2])):
        assignment = lease(user, reviewed)
        assert submit(api_as(user), assignment.pk, answers(red_square=squares)).status_code == 201
    page, problems = open_page("rev", "pw-rev-123", path="/")
    page.get_by_role("link", name="Review points").click()
    page.get_by_role("link", name="e2e points review").click()
    figure = page.get_by_role("img", name="Points for red square")
    expect(figure).to_be_visible()
    assert (
        figure.locator("circle.ann-0").count() == 3 and figure.locator("circle.ann-1").count() == 2
    )
    colours = {
        figure.locator(f"circle.ann-{i}").first.evaluate("c => getComputedStyle(c).fill")
        for i in (0, 1)
    }
    assert len(colours) == 2  # one colour per annotator
    expect(page.get_by_text("shows a total of 3.")).to_be_visible()
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/points-review.png", full_page=True)
    page.get_by_role("button", name="Pick owner").click()
    expect(page.get_by_text("chosen.")).to_be_visible()
    expect(page.get_by_text("Nothing waits for review in this campaign.")).to_be_visible()
    assert PointsAnnotation.objects.get(annotator=cast.other).superseded
    assert_clean(page, problems)


def test_an_admin_edits_label_prompts_as_a_list(open_page, cast) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from annotator_app.work.models import Campaign

    page, problems = open_page("boss", "pw-boss-123", path="/admin/work/campaign/add/")
    page.get_by_label("Name:").fill("Counting cups")
    page.get_by_label("Kind:").select_option("points")
    page.get_by_label("Label prompt 1", exact=True).fill("cup")
    page.get_by_label("Label prompt 2", exact=True).fill("dog")
    page.get_by_role("button", name="Add a prompt").click()
    page.keyboard.type("giraffe")  # the new row has the focus
    page.get_by_role("button", name="Remove label prompt 2").click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("was added successfully")).to_be_visible()
    made = Campaign.objects.get(name="Counting cups")
    assert made.label_prompts == ["cup", "giraffe"] and made.collection_method == "counting"

    page.goto(page.url.split("/admin/")[0] + f"/admin/work/campaign/{made.pk}/change/")
    expect(page.get_by_label("Label prompt 1", exact=True)).to_have_value("cup")
    expect(page.get_by_label("Label prompt 2", exact=True)).to_have_value("giraffe")
    page.get_by_label("Label prompt 1", exact=True).fill("cup")
    page.get_by_label("Label prompt 2", exact=True).fill("Cup ")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("'Cup' is listed twice.")).to_be_visible()
    assert_clean(page, problems)
