"""Submitting points: stored once and exactly, refused with a reason, never half-written."""

from __future__ import annotations

import json
import uuid

import pytest

from annotator_app.points.models import LabelAnnotation, PointsAnnotation
from annotator_app.work.models import AssignmentStatus
from tests.points.helpers import API, PROMPTS, answers, label, lease, points_campaign, submit

pytestmark = pytest.mark.django_db


def _nothing_stored(assignment) -> None:  # type: ignore[no-untyped-def]
    assert PointsAnnotation.objects.count() == 0 and LabelAnnotation.objects.count() == 0
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.LEASED


def test_points_are_stored_in_percent_and_submit_the_assignment(cast, api_as) -> None:
    points_campaign()
    assignment = lease(cast.owner)
    labels = answers(red_square=[(12.5, 20.25), (80.0, 75.5)], blue_circle=[(50.0, 50.0)])
    response = submit(api_as(cast.owner), assignment.pk, labels)
    assert response.status_code == 201, response.content
    body = response.json()
    stored = PointsAnnotation.objects.get()
    assert body["id"] == stored.pk and body["status"] == "submitted"
    rows = list(stored.labels.order_by("position"))
    assert [r.label for r in rows] == PROMPTS
    assert rows[0].points == [{"x": 12.5, "y": 20.25}, {"x": 80.0, "y": 75.5}]
    assert [r.count for r in rows] == [2, 1, 0]
    assert {r.collection_method for r in rows} == {"counting"} and rows[0].seconds == 3.0
    # Molmo's text comes from pipelines/molmo_text.py.
    texts = [lab["molmo_text"] for lab in body["labels"]]
    assert texts[0] == (
        'Counting the <points x1="12.5" y1="20.2" x2="80.0" y2="75.5" alt="red square">'
        "red square</points> shows a total of 2."
    )
    assert texts[2] == "There are none." and body["labels"][2]["not_present"] is True
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED and assignment.active_seconds == 30


def test_pointing_campaigns_take_the_annotators_own_labels(cast, api_as) -> None:
    points_campaign(collection_method="pointing")
    assignment = lease(cast.owner)
    labels = [label("  the  word STOP ", (30.0, 40.0)), label("unicorn")]
    response = submit(api_as(cast.owner), assignment.pk, labels)
    assert response.status_code == 201, response.content
    rows = list(LabelAnnotation.objects.order_by("position"))
    assert [(r.label, r.count, r.collection_method) for r in rows] == [
        ("the word STOP", 1, "pointing"),
        ("unicorn", 0, "pointing"),
    ]
    assert response.json()["labels"][0]["molmo_text"] == (
        '<point x="30.0" y="40.0" alt="the word STOP">the word STOP</point>'
    )


def test_a_retry_with_the_same_key_creates_nothing_new(cast, api_as) -> None:
    points_campaign()
    assignment = lease(cast.owner)
    client = api_as(cast.owner)
    key = str(uuid.uuid4())
    first = submit(client, assignment.pk, answers(giraffe=[(1.0, 2.0)]), key)
    again = submit(client, assignment.pk, answers(giraffe=[(9.0, 9.0)]), key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and PointsAnnotation.objects.count() == 1
    assert LabelAnnotation.objects.get(label="giraffe").points == [{"x": 1.0, "y": 2.0}]
    second = lease(cast.owner)
    reused = submit(client, second.pk, answers(), key)
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["detail"]
    late = submit(client, assignment.pk, answers())
    assert late.status_code == 409 and "submitted" in late.json()["detail"]


def _point(x: object, y: object = 50.0) -> dict[str, object]:
    return {"label": "red square", "points": [{"x": x, "y": y}], "not_present": False}


@pytest.mark.parametrize(
    ("first_label", "words"),
    [
        (_point(150), "labels[0].points[0].x: must be between 0 and 100"),
        (_point(-0.1), "labels[0].points[0].x: must be between 0 and 100"),
        (_point(50, 100.5), "labels[0].points[0].y: must be between 0 and 100"),
        (_point("NaN"), "labels[0].points[0].x: must be a number"),
        (_point(True), "labels[0].points[0].x: must be a number"),
        (_point(None), "labels[0].points[0].x: must be a number"),
        (
            {"label": "red square", "points": [{"x": 1, "y": 1}] * 10_000, "not_present": False},
            "labels[0].points: at most 200 points per label, got 10000",
        ),
        ({"label": "", "points": [], "not_present": True}, "labels[0].label: must not be empty"),
        ({"label": "   ", "points": [], "not_present": True}, "labels[0].label: must not be empty"),
        (
            {"label": "x" * 10_000, "points": [], "not_present": True},
            "labels[0].label: at most 200 characters, got 10000",
        ),
        ({"label": "a\x00b", "points": [], "not_present": True}, "control characters"),
        ({"label": "red square", "points": []}, "has no points; point at every instance"),
        (
            {"label": "red square", "points": [{"x": 1, "y": 1}], "not_present": True},
            "marked not present but has 1 points",
        ),
        ({"label": "red square", "points": "everywhere"}, "labels[0].points: must be a list"),
        ("red square", "labels[0]: must be an object"),
    ],
)
def test_bad_labels_are_refused_naming_the_problem_and_store_nothing(
    cast, api_as, first_label, words
) -> None:
    points_campaign()
    assignment = lease(cast.owner)
    labels = [first_label, *answers()[1:]]
    response = submit(api_as(cast.owner), assignment.pk, labels)
    assert response.status_code == 400, response.content
    assert words in response.json()["detail"], response.json()
    _nothing_stored(assignment)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_the_json_are_refused(cast, api_as, constant) -> None:
    points_campaign()
    assignment = lease(cast.owner)
    labels = json.dumps(answers(red_square=[(1.0, 2.0)]))
    labels = labels.replace('"x": 1.0', f'"x": {constant}')
    body = f'{{"assignment": {assignment.pk}, "labels": {labels}}}'
    response = api_as(cast.owner).generic(
        "POST",
        f"{API}/annotations/",
        body,
        content_type="application/json",
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 400, response.content
    detail = str(response.json())
    assert "labels[0].points[0].x: must be a finite number" in detail or "JSON" in detail
    _nothing_stored(assignment)


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ([], "give at least one label"),
        (answers()[:2], "missing 'giraffe'"),
        ([*answers(), {"label": "zebra", "points": [], "not_present": True}], "not one of"),
        ([*answers(), {"label": "Red  Square", "points": [], "not_present": True}], "given twice"),
    ],
)
def test_counting_submissions_answer_exactly_the_campaigns_labels(cast, api_as, labels, words):
    points_campaign()
    assignment = lease(cast.owner)
    response = submit(api_as(cast.owner), assignment.pk, labels)
    assert response.status_code == 400 and words in response.json()["detail"], response.json()
    _nothing_stored(assignment)


def test_limits_come_from_the_settings(cast, api_as, settings) -> None:
    settings.POINTS_MAX_PER_LABEL = 2
    settings.POINTS_MAX_LABELS = 2
    points_campaign(collection_method="pointing")
    assignment = lease(cast.owner)
    client = api_as(cast.owner)
    three = [label("dots", (1, 1), (2, 2), (3, 3))]
    assert "at most 2 points per label" in submit(client, assignment.pk, three).json()["detail"]
    many = [label("a"), label("b"), label("c")]
    assert "at most 2 labels per image" in submit(client, assignment.pk, many).json()["detail"]
    settings.POINTS_MAX_REQUEST_BYTES = 2048
    big = submit(client, assignment.pk, [label("x" * 150, (1, 1))] * 20)
    assert big.status_code == 413 and "at most 2048" in big.json()["detail"]
    _nothing_stored(assignment)


def test_a_missing_key_or_a_form_post_is_refused(cast, api_as) -> None:
    points_campaign()
    assignment = lease(cast.owner)
    client = api_as(cast.owner)
    body = {"assignment": assignment.pk, "labels": answers()}
    no_key = client.post(f"{API}/annotations/", body, format="json")
    assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json()["detail"]
    form = client.post(f"{API}/annotations/", {"assignment": assignment.pk}, format="multipart")
    assert form.status_code == 415
    _nothing_stored(assignment)


def test_a_cap_assignment_takes_no_points(cast, api_as) -> None:
    from tests.work.conftest import make_campaign

    make_campaign(1, "capx", kind="cap")
    from annotator_app.work.services import assignment_next

    cap = assignment_next(user=cast.owner, kind="cap")
    response = submit(api_as(cast.owner), cap.pk, answers())
    assert response.status_code == 400 and "takes no points" in response.json()["detail"]
