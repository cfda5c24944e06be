"""The AMA page in real Chromium, a real Celery worker on the `ama` queue, real OCR and
the real local LLM: ask, reject with feedback, get a revised answer, accept; the stored
rounds are complete. Then an LLM outage (the failure-injecting fake): the message, the
question kept, Retry. No page may break the CSP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from annotator_app.ama.models import AmaRound, AmaSession
from tests.ama.helpers import ama_campaign, sign_png, store_image
from tests.captions.pipeline_helpers import worker
from tests.e2e.conftest import assert_clean, log_in, watched_page
from tests.llm_fixtures import fail, reply

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ANSWER_TIMEOUT_MS = 900_000  # the local CPU model on a busy 2-core machine


@pytest.fixture
def open_page(browser: Any, live_server: Any) -> Iterator[Callable[..., tuple[Any, list[str]]]]:
    contexts: list[Any] = []

    def open_(username: str, password: str, path: str = "/ama/") -> tuple[Any, list[str]]:
        context = browser.new_context()
        contexts.append(context)
        page, problems = watched_page(context)
        log_in(page, live_server.url, username, password)
        page.goto(f"{live_server.url}{path}")
        return page, problems

    yield open_
    for context in contexts:
        context.close()


def test_ask_reject_revise_accept_with_the_real_llm(cast, open_page, llm_settings) -> None:
    # A loaded 2-core machine makes the CPU model slow: no timeout may cut it short here.
    llm_settings.LLM_TIMEOUT_SECONDS = 900
    llm_settings.LLM_MAX_RETRIES = 0
    ama_campaign([store_image(sign_png(["OPEN 9 TO 5", "NO DOGS"]))], reviewers=[cast.reviewer])
    page, problems = open_page("owner", "pw-owner-123")
    question = page.get_by_role("textbox", name="Question")
    question.fill("When is the shop open?")
    page.reload()  # typed, not yet sent: kept in the browser
    question = page.get_by_role("textbox", name="Question")
    assert question.input_value() == "When is the shop open?"

    with worker(queues="ama"):
        page.get_by_role("button", name="Ask").click()
        page.locator("[data-progress]").wait_for(state="visible")
        assert "Making the answer" in page.locator("[data-progress-text]").inner_text()
        page.get_by_role("button", name="Accept").wait_for(
            state="visible", timeout=ANSWER_TIMEOUT_MS
        )
        first_answer = page.locator("[data-answer]").inner_text()
        assert first_answer.strip()
        evidence = page.locator(".evidence")
        assert "no caption available" in evidence.inner_text()
        ocr_shown = "".join(page.locator("[data-ocr]").inner_text().upper().split())
        assert "OPEN9TO5" in ocr_shown and "NODOGS" in ocr_shown

        # Reject needs feedback: without it the page says so and sends nothing.
        page.get_by_role("button", name="Reject").click()
        assert "Feedback" in page.get_by_role("alert").first.inner_text()
        assert AmaRound.objects.count() == 1
        page.get_by_role("textbox", name="Feedback").fill("Give the opening hours from the sign.")
        page.get_by_role("button", name="Reject").click()
        page.get_by_role("heading", name="Answer (revision 1)").wait_for(timeout=ANSWER_TIMEOUT_MS)
        history = page.locator("[data-history]").inner_text()
        assert "Give the opening hours from the sign." in history
        page.get_by_role("button", name="Accept").click()
        page.locator("[data-status]").get_by_text("Answer accepted after 2 rounds").wait_for()

    session = AmaSession.objects.get()
    assert session.status == "accepted" and session.assignment.status == "submitted"
    first, second = AmaRound.objects.filter(session=session).order_by("index")
    assert first.answer.strip() == first_answer.strip()
    assert (first.verdict, first.feedback) == ("rejected", "Give the opening hours from the sign.")
    assert (second.verdict, second.feedback) == ("accepted", "")
    for stored in (first, second):
        assert stored.question == "When is the shop open?" and stored.status == "done"
        assert stored.answer.strip() and stored.model_name and stored.prompt_version == "ama-v1"
        assert stored.caption_source == "none" and "NODOGS" in "".join(
            stored.ocr_text.upper().split()
        )
        assert stored.answered_at and stored.decided_at and stored.completion_tokens > 0
    assert_clean(page, problems)


def test_an_llm_outage_shows_a_message_keeps_the_question_and_retry_works(
    cast, open_page, fake_llm, fake_llm_settings
) -> None:
    ama_campaign([store_image(sign_png(["OPEN"]))])
    page, problems = open_page("owner", "pw-owner-123")
    fake_llm.push(fail(500), fail(500))
    with worker(queues="ama"):
        page.get_by_role("textbox", name="Question").fill("What does the sign say?")
        page.get_by_role("button", name="Ask").click()
        retry = page.get_by_role("button", name="Retry")
        retry.wait_for(timeout=120_000)
        assert "language model is not answering" in page.locator("[data-failure-text]").inner_text()
        page.reload()  # the failure and the question survive a reload
        # The page fills them in from the API after loading: wait for it, not for load.
        expect(page.locator("[data-question-shown]")).to_contain_text(
            "What does the sign say?", timeout=30_000
        )
        fake_llm.push(reply("It says open."))
        page.get_by_role("button", name="Retry").click()
        page.locator("[data-answer]").get_by_text("It says open.").wait_for(timeout=120_000)
    assert AmaRound.objects.get().status == "done"
    assert_clean(page, problems)
