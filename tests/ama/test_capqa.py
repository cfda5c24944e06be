"""generate_capqa over accepted captions: stored pairs, counts and reasons, duplicates."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotator_app.ama.models import CapQAPair, CapQARun
from annotator_app.ama.selectors import capqa_for_export
from tests.ama.helpers import accepted_cap_caption, sign_png, store_image
from tests.llm_fixtures import fail, reply

pytestmark = pytest.mark.django_db

CAPTION = (
    "A red bicycle leans against a brick wall. Three yellow flowers grow in a blue pot on "
    "the left. Above the door a wooden sign says open."
)


def pairs(*qa: tuple[str, str]) -> str:
    return json.dumps({"pairs": [{"question": q, "answer": a} for q, a in qa]})


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command("generate_capqa", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def caption():  # type: ignore[no-untyped-def]
    return accepted_cap_caption(store_image(sign_png(["OPEN"])), CAPTION)


def test_pairs_are_validated_stored_and_counted_with_reasons(
    caption, fake_llm, fake_llm_settings, settings
) -> None:
    settings.CAPQA_MULTI_TURN_SHARE = 0.0
    campaign = caption.transcript.recording.campaign
    fake_llm.push(
        reply(
            pairs(
                ("What colour is the bicycle?", "The bicycle is red."),
                ("What is the brand of the bicycle?", "It is a Peugeot."),
                ("", "Three."),
            )
        )
    )
    output = run_command("--campaign", campaign.name, "--inline")
    assert "pairs kept: 1" in output and "pairs rejected: 2" in output
    assert "unsupported words: 1" in output and "empty question: 1" in output
    (pair,) = CapQAPair.objects.all()
    assert (pair.question, pair.answer, pair.model_name) == (
        "What colour is the bicycle?",
        "The bicycle is red.",
        "fake-llm",
    )
    assert pair.topic and pair.style and pair.prompt_version == "capqa-v2"
    run = CapQARun.objects.get()
    assert (run.total, run.processed, run.pairs_kept, run.pairs_rejected) == (1, 1, 1, 2)
    assert run.finished_at is not None
    (row,) = list(capqa_for_export(campaign=campaign))
    assert (row["image_url"], row["question"], row["answer"]) == (
        caption.transcript.recording.image.source_url,
        "What colour is the bicycle?",
        "The bicycle is red.",
    )

    # A second run: the same question again is a duplicate, a new one is kept.
    fake_llm.push(
        reply(pairs(("what colour is the bicycle", "Red."), ("Where is the pot?", "On the left.")))
    )
    output = run_command("--campaign", str(campaign.pk), "--inline")
    assert "pairs kept: 1" in output and "duplicate: 1" in output
    assert CapQAPair.objects.count() == 2


def test_a_multi_turn_item_is_stored_with_markers(
    caption, fake_llm, fake_llm_settings, settings
) -> None:
    settings.CAPQA_MULTI_TURN_SHARE = 1.0
    fake_llm.push(
        reply(pairs(("What leans on the wall?", "A red bicycle."), ("What colour is it?", "Red.")))
    )
    run_command("--campaign", caption.transcript.recording.campaign.name, "--inline")
    (pair,) = CapQAPair.objects.all()
    assert pair.multi_turn and pair.answer == "Red."
    assert (
        pair.question
        == "[USER] What leans on the wall? [ASSISTANT] A red bicycle. [USER] What colour is it?"
    )


def test_an_llm_outage_counts_the_caption_as_failed(caption, fake_llm, fake_llm_settings) -> None:
    fake_llm.push(fail(500), fail(500))
    output = run_command("--campaign", caption.transcript.recording.campaign.name, "--inline")
    assert "1/1 processed, 1 failed" in output and "pairs kept: 0" in output
    assert not CapQAPair.objects.exists()


def test_only_accepted_captions_of_a_cap_campaign_are_used(
    caption, fake_llm, fake_llm_settings
) -> None:
    from annotator_app.work.models import Assignment

    Assignment.objects.filter(pk=caption.transcript.recording.assignment_id).update(
        status="submitted"
    )
    output = run_command("--campaign", caption.transcript.recording.campaign.name, "--inline")
    assert "0 accepted captions" in output and fake_llm.requests == []
    with pytest.raises(CommandError, match="no campaign"):
        run_command("--campaign", "nope")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_queued_run_goes_through_a_real_worker_on_the_llm_queue(
    fake_llm, fake_llm_settings, settings
) -> None:
    from tests.captions.pipeline_helpers import worker

    settings.CAPQA_MULTI_TURN_SHARE = 0.0
    first = accepted_cap_caption(store_image(sign_png(["ONE"])), CAPTION)
    campaign = first.transcript.recording.campaign
    accepted_cap_caption(store_image(sign_png(["TWO"])), CAPTION, campaign=campaign)
    fake_llm.default = reply(pairs(("What colour is the pot?", "The pot is blue.")))
    with worker(queues="llm"):
        output = run_command("--campaign", campaign.name, "--timeout", "300")
    assert "2/2 processed, 0 failed" in output and "pairs kept: 2" in output
    assert CapQAPair.objects.filter(campaign=campaign).count() == 2  # one per image
