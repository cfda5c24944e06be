"""The AMA loop and CapQA with the real models: the model service (a trained debug Molmo
checkpoint behind `python -m model_service.serve`) as the captioner, and the real local
LLM writing CapQA pairs. The weak CPU model's wording is not asserted, only properties
every acceptable outcome has."""

from __future__ import annotations

import pytest

from annotator_app.ama import answering
from annotator_app.ama.capqa import capqa_caption_process, capqa_run_start
from annotator_app.ama.models import AmaRound, CapQAPair, CapQARun
from pipelines import capqa as capqa_stage
from pipelines.ama import SOURCE_MODEL
from tests.ama.helpers import API, accepted_cap_caption, ama_campaign, open_session, store_image
from tests.llm_fixtures import reply
from tests.molmo_fixtures import draw_example, png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

CAPTIONS = [
    "A red bicycle leans against a brick wall. Three yellow flowers grow in a blue pot on "
    "the left. Above the door a wooden sign says open.",
    "Two children play with a brown dog on green grass in a park. A white fence runs "
    "behind them and tall trees stand in the background.",
]


def test_the_model_service_captions_the_image_for_the_answer(
    cast, api_as, molmo_server, fake_llm, fake_llm_settings, settings
) -> None:
    settings.MODEL_SERVICE_URL = molmo_server.url  # includes /v1, like OPENAI_BASE_URL
    settings.MODEL_SERVICE_MODEL = ""  # found through GET /v1/models
    settings.MODEL_SERVICE_TOKEN = ""
    campaign = ama_campaign([store_image(png_bytes(draw_example("square")))])
    session = open_session(cast.owner, campaign)
    fake_llm.push(reply("The shape is a white square."))
    response = api_as(cast.owner).post(
        f"{API}/sessions/{session.pk}/ask/", {"question": "What shape is shown?"}, format="json"
    )
    assert response.status_code == 201
    current = AmaRound.objects.get(session=session)
    assert answering.round_answer(current.pk) == "done"
    current.refresh_from_db()
    # The debug checkpoint was trained until it says exactly this for this image.
    assert (current.caption_source, current.caption) == (SOURCE_MODEL, "A white square on red.")
    assert current.caption_model == "molmo-debug" and current.caption_ms > 0
    assert "A white square on red." in fake_llm.requests[-1]["messages"][-1]["content"]


def test_capqa_with_the_real_llm_stores_only_valid_unique_pairs(llm_settings, settings) -> None:
    settings.LLM_TIMEOUT_SECONDS = 900
    settings.CAPQA_MULTI_TURN_SHARE = 0.0
    campaign = None
    for n, text in enumerate(CAPTIONS):
        image = store_image(png_bytes(draw_example("square" if n == 0 else "disc")))
        caption = accepted_cap_caption(image, text, campaign=campaign)
        campaign = caption.transcript.recording.campaign
    run, ids = capqa_run_start(campaign=campaign, enqueue=False)
    for caption_id in ids:
        capqa_caption_process(run_id=run.pk, caption_id=caption_id)
    run = CapQARun.objects.get(pk=run.pk)
    stored = list(CapQAPair.objects.filter(run=run).select_related("image"))
    assert (run.processed, run.total, run.failed) == (2, 2, 0)
    assert run.pairs_kept == len(stored)
    assert run.pairs_rejected == sum(run.rejections.values())
    assert run.pairs_kept + run.pairs_rejected > 0, "the model wrote nothing at all"
    captions = {c.transcript.recording.image_id: c.text for c in _captions(ids)}
    keys = set()
    for pair in stored:
        assert capqa_stage.check_pair(pair.question, pair.answer, captions[pair.image_id]) is None
        assert (pair.image_id, pair.question_key) not in keys
        keys.add((pair.image_id, pair.question_key))
        assert pair.model_name and pair.topic and pair.style


def _captions(ids: list[int]):  # type: ignore[no-untyped-def]
    from annotator_app.captions.models import CleanedCaption

    return CleanedCaption.objects.filter(pk__in=ids).select_related("transcript__recording")
