"""Making one AMA answer (the `ama.answer` task's service): evidence, then the LLM.

1. Claim the round by compare-and-set (pending -> running); a redelivered message may
   take over a round whose worker died (running longer than AMA_STUCK_SECONDS).
2. The caption: an earlier round's caption of the same session (the evidence stays the
   same while the annotator revises), else the image's PixMo-Cap summary or accepted
   caption, else the model service's caption when MODEL_SERVICE_URL is set, else none.
   The source is stored with the round and shown on the page.
3. OCR text: cached per image (ImageOcr); read once with pipelines.ocr.
4. The LLM answers from caption + OCR + question (+ earlier answers and feedback).
5. Store the answer (running -> done). Any failure of an outside service marks the round
   failed with a message for the annotator, who keeps the question and presses Retry;
   the LLM client has already retried quickly (LLM_MAX_RETRIES), and a person waits, so
   there are no slow task retries here.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import openai
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotator_app.ama.models import AmaRound, ImageOcr, RoundStatus, Verdict
from annotator_app.ama.selectors import accepted_captions_of
from annotator_app.catalog.models import Image
from annotator_app.training.selectors import active_captioner_checkpoint
from pipelines import ama as ama_stage
from pipelines import ocr as ocr_stage
from pipelines.llm import LLMClient, LLMError, LLMUnavailable

log = logging.getLogger("pixmo.ama")


class RoundFailed(RuntimeError):
    """A failure the annotator is told about (the message is shown on the page)."""


def llm_client() -> LLMClient:
    return LLMClient.from_settings(
        base_url=settings.OPENAI_BASE_URL,
        api_key=settings.OPENAI_API_KEY,
        model=settings.LLM_MODEL,
        timeout=float(settings.LLM_TIMEOUT_SECONDS),
        max_retries=settings.LLM_MAX_RETRIES,
    )


def _model_service_name(base_url: str, api_key: str, timeout: float) -> str:
    """MODEL_SERVICE_MODEL, else the admin's captioner checkpoint (the newest trained one
    unless one was chosen), else the first model the server lists."""
    if settings.MODEL_SERVICE_MODEL:
        return str(settings.MODEL_SERVICE_MODEL)
    checkpoint = active_captioner_checkpoint()
    if checkpoint is not None:
        return checkpoint.name
    try:
        client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=1)
        models = client.models.list().data
    except openai.APIError as exc:
        raise LLMUnavailable(f"{base_url} did not list its models: {exc}") from exc
    if not models:
        raise LLMError(f"{base_url} lists no model")
    return str(models[0].id)


def captioner_client() -> LLMClient | None:
    """The model service's client, or None when MODEL_SERVICE_URL is not set."""
    base_url = settings.MODEL_SERVICE_URL
    if not base_url:
        return None
    key = settings.MODEL_SERVICE_TOKEN or "local"
    timeout = float(settings.MODEL_SERVICE_TIMEOUT_SECONDS)
    name = _model_service_name(base_url, key, timeout)
    return LLMClient.from_settings(
        base_url=base_url, api_key=key, model=name, timeout=timeout, max_retries=1
    )


def _claim(round_id: int) -> bool:
    now = timezone.now()
    claimed = AmaRound.objects.filter(pk=round_id, status=RoundStatus.PENDING).update(
        status=RoundStatus.RUNNING, stage_started_at=now, attempts=F("attempts") + 1
    )
    if claimed:
        return True
    # A redelivered message (its worker died) takes over a long-running round.
    stale = now - timedelta(seconds=settings.AMA_STUCK_SECONDS)
    return bool(
        AmaRound.objects.filter(
            pk=round_id, status=RoundStatus.RUNNING, stage_started_at__lt=stale
        ).update(stage_started_at=now, attempts=F("attempts") + 1)
    )


def _image_bytes(image: Image) -> bytes:
    try:
        with default_storage.open(image.storage_key, "rb") as handle:
            return bytes(handle.read())
    except (OSError, ValueError) as exc:
        raise RoundFailed(f"The image file could not be read ({exc}).") from exc


def image_ocr(image: Image) -> tuple[ImageOcr, int]:
    """The image's cached OCR, read now if missing; and the milliseconds spent reading."""
    found = ImageOcr.objects.filter(image=image).first()
    if found is not None:
        return found, 0
    started = time.perf_counter()
    try:
        result = ocr_stage.read_text(_image_bytes(image), min_score=settings.OCR_MIN_SCORE)
    except ocr_stage.OcrError as exc:
        raise RoundFailed(f"The image's text could not be read: {exc}") from exc
    ms = int((time.perf_counter() - started) * 1000)
    lines = [{"text": ln.text, "score": round(ln.score, 4), "box": ln.box} for ln in result.lines]
    try:
        with transaction.atomic():
            row = ImageOcr.objects.create(
                image=image, text=result.text, lines=lines, engine=result.engine, milliseconds=ms
            )
    except IntegrityError:  # another worker read it first
        row = ImageOcr.objects.get(image=image)
    return row, ms


def _caption(current: AmaRound, image: Image) -> tuple[ama_stage.Evidence, int]:
    """(caption evidence without OCR, milliseconds spent asking the model service)."""
    earlier = (
        AmaRound.objects.filter(session_id=current.session_id, index__lt=current.index)
        .exclude(caption_source="")
        .order_by("-index")
        .first()
    )
    if earlier is not None:
        return ama_stage.Evidence(
            earlier.caption, earlier.caption_source, "", earlier.caption_model
        ), 0
    summary, captions = accepted_captions_of(image=image)
    text, source = ama_stage.pick_human_caption(summary=summary, captions=captions)
    if source != ama_stage.SOURCE_NONE:
        return ama_stage.Evidence(text, source, "", "people (PixMo-Cap)"), 0
    started = time.perf_counter()
    try:
        client = captioner_client()
        if client is None:
            return ama_stage.Evidence("", ama_stage.SOURCE_NONE, ""), 0
        result = ama_stage.model_caption(client, _image_bytes(image), image.mime)
    except LLMUnavailable as exc:
        raise RoundFailed(
            f"The captioning model service is not answering ({exc}). Your question is kept: "
            "press Retry in a moment."
        ) from exc
    except LLMError as exc:
        raise RoundFailed(f"The captioning model service refused the request ({exc}).") from exc
    ms = int((time.perf_counter() - started) * 1000)
    if not result.text.strip():
        return ama_stage.Evidence("", ama_stage.SOURCE_NONE, "", result.model), ms
    return ama_stage.Evidence(result.text.strip(), ama_stage.SOURCE_MODEL, "", result.model), ms


def _history(current: AmaRound) -> list[ama_stage.Revision]:
    earlier = AmaRound.objects.filter(
        session_id=current.session_id, index__lt=current.index, verdict=Verdict.REJECTED
    ).order_by("index")
    return [ama_stage.Revision(r.answer, r.feedback) for r in earlier]


def _fail(round_id: int, message: str) -> None:
    AmaRound.objects.filter(pk=round_id, status=RoundStatus.RUNNING).update(
        status=RoundStatus.FAILED, failure_reason=message[:2000]
    )


def round_answer(round_id: int) -> str:
    """Make the answer of one round; returns what happened ("done", "failed", "skipped")."""
    if not _claim(round_id):
        return "skipped"
    current = AmaRound.objects.select_related("session__image").get(pk=round_id)
    image = current.session.image
    try:
        caption, caption_ms = _caption(current, image)
        ocr, ocr_ms = image_ocr(image)
        evidence = ama_stage.Evidence(
            caption.caption, caption.caption_source, ocr.text, caption.caption_model
        )
        started = time.perf_counter()
        try:
            made = ama_stage.answer(
                llm_client(),
                question=current.question,
                evidence=evidence,
                history=_history(current),
            )
        except LLMUnavailable as exc:
            raise RoundFailed(
                f"The language model is not answering ({exc}). Your question and feedback are "
                "kept: press Retry in a moment."
            ) from exc
        except LLMError as exc:
            raise RoundFailed(f"The language model refused the request ({exc}).") from exc
        except ama_stage.AnswerEmpty as exc:
            raise RoundFailed(f"The language model gave no answer ({exc}). Press Retry.") from exc
        llm_ms = int((time.perf_counter() - started) * 1000)
    except SoftTimeLimitExceeded:
        _fail(round_id, "Making the answer took too long (AMA_TIME_LIMIT). Press Retry.")
        return "failed"
    except RoundFailed as exc:
        log.warning("AMA round %s failed: %s", round_id, exc)
        _fail(round_id, str(exc))
        return "failed"
    AmaRound.objects.filter(pk=round_id, status=RoundStatus.RUNNING).update(
        status=RoundStatus.DONE,
        failure_reason="",
        caption=evidence.caption,
        caption_source=evidence.caption_source,
        caption_model=evidence.caption_model,
        ocr_text=evidence.ocr_text,
        ocr_engine=ocr.engine,
        ocr_instruction_like=ama_stage.instruction_like(evidence.ocr_text),
        prompt_version=made.prompt_version,
        model_name=made.model_name,
        answer=made.text,
        answer_problems=made.problems,
        prompt_tokens=made.prompt_tokens,
        completion_tokens=made.completion_tokens,
        caption_ms=caption_ms,
        ocr_ms=ocr_ms,
        llm_ms=llm_ms,
        answered_at=timezone.now(),
    )
    return "done"


def rounds_sweep() -> dict[str, int]:
    """Re-enqueue rounds whose message was lost; fail those tried AMA_MAX_ATTEMPTS times.

    Pending rounds older than AMA_STUCK_SECONDS and running ones whose worker died are
    sent again (the claim takes a stale running round over).
    """
    from annotator_app.ama.queueing import enqueue_answer

    stale = timezone.now() - timedelta(seconds=settings.AMA_STUCK_SECONDS)
    stuck = AmaRound.objects.filter(
        status__in=(RoundStatus.PENDING, RoundStatus.RUNNING), stage_started_at__lt=stale
    )
    given_up = stuck.filter(attempts__gte=settings.AMA_MAX_ATTEMPTS).update(
        status=RoundStatus.FAILED,
        failure_reason="Making the answer stopped several times (worker lost). Press Retry.",
    )
    resent = 0
    for round_id in stuck.values_list("pk", flat=True)[:500]:
        enqueue_answer(round_id)
        resent += 1
    return {"failed": given_up, "resent": resent}
