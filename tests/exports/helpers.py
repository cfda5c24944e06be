"""Builders of exportable data: cap summaries with recordings, points labels, real images."""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from annotator_app.accounts.models import Role, User
from annotator_app.captions.models import (
    CleanedCaption,
    ImageSummary,
    Recording,
    RecordingStatus,
    SummaryStatus,
    Transcript,
)
from annotator_app.catalog.models import Image
from annotator_app.points.models import LabelAnnotation, PointsAnnotation
from annotator_app.work.models import Assignment, AssignmentStatus, Campaign, WorkItem


def stored_image(
    colour: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (64, 48)
) -> Image:
    """A real PNG in default storage and its catalogue row."""
    buffer = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buffer, "PNG")
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    existing = Image.objects.filter(sha256=digest).first()
    if existing is not None:
        return existing
    key = f"images/{digest[:2]}/{digest[2:4]}/{digest}.png"
    default_storage.save(key, ContentFile(data))
    return Image.objects.create(
        sha256=digest,
        width=size[0],
        height=size[1],
        format="png",
        mime="image/png",
        size_bytes=len(data),
        storage_key=key,
    )


def annotator() -> User:
    return User.objects.create_user(
        username=f"ann-{uuid.uuid4().hex[:8]}", password="pw-ann-123", role=Role.ANNOTATOR
    )


def campaign(kind: str, name: str | None = None, **fields: Any) -> Campaign:
    return Campaign.objects.create(
        name=name or f"{kind}-{uuid.uuid4().hex[:8]}", kind=kind, min_seconds=1, **fields
    )


def _item(camp: Campaign, image: Image) -> WorkItem:
    camp.images.add(image)
    return WorkItem.objects.get_or_create(campaign=camp, image=image, defaults={"open_slots": 0})[0]


def cap_image(
    camp: Campaign,
    image: Image,
    transcripts: list[str],
    caption: str,
    status: str = AssignmentStatus.ACCEPTED,
) -> ImageSummary:
    """Recordings (one per transcript) of `image`, their texts, and its done summary."""
    item = _item(camp, image)
    captions = []
    for text in transcripts:
        who = annotator()
        assignment = Assignment.objects.create(
            item=item, annotator=who, status=status, active_seconds=70
        )
        recording = Recording.objects.create(
            assignment=assignment,
            annotator=who,
            campaign=camp,
            image=image,
            storage_key=f"audio/{uuid.uuid4().hex}.webm",
            mime_type="audio/webm",
            size_bytes=1000,
            sha256=hashlib.sha256(text.encode()).hexdigest(),
            duration_seconds=65.0,
            idempotency_key=uuid.uuid4().hex,
            status=RecordingStatus.DONE,
        )
        transcript = Transcript.objects.create(recording=recording, text=text, model_name="tiny.en")
        captions.append(
            CleanedCaption.objects.create(
                transcript=transcript,
                rule_text=text,
                text=text.replace("um ", ""),
                prompt_version="v1",
                model_name="rules",
            )
        )
    summary, _ = ImageSummary.objects.update_or_create(
        campaign=camp,
        image=image,
        defaults={"status": SummaryStatus.DONE, "text": caption, "model_name": "rules"},
    )
    summary.sources.set(captions)
    return summary


def points_image(
    camp: Campaign,
    image: Image,
    labels: list[tuple[str, list[tuple[float, float]]]],
    status: str = AssignmentStatus.ACCEPTED,
    method: str = "pointing",
) -> PointsAnnotation:
    """One annotator's accepted labels for `image` (points in percent)."""
    item = _item(camp, image)
    who = annotator()
    assignment = Assignment.objects.create(item=item, annotator=who, status=status)
    annotation = PointsAnnotation.objects.create(
        assignment=assignment,
        annotator=who,
        campaign=camp,
        item=item,
        image=image,
        idempotency_key=uuid.uuid4().hex,
    )
    for position, (name, points) in enumerate(labels):
        LabelAnnotation.objects.create(
            annotation=annotation,
            position=position,
            label=name,
            label_key=name.casefold(),
            collection_method=method,
            points=[{"x": x, "y": y} for x, y in points],
            count=len(points),
            seconds=2.5,
        )
    return annotation


def ama_session(
    camp: Campaign,
    image: Image,
    question: str,
    answers: list[tuple[str, str, str]],
    status: str = AssignmentStatus.ACCEPTED,
) -> Any:
    """An accepted AMA session: `answers` are (answer, verdict, feedback) per round."""
    from django.utils import timezone

    from annotator_app.ama.models import AmaRound, AmaSession, SessionStatus

    item = _item(camp, image)
    who = annotator()
    assignment = Assignment.objects.create(item=item, annotator=who, status=status)
    session = AmaSession.objects.create(
        assignment=assignment,
        annotator=who,
        campaign=camp,
        image=image,
        status=SessionStatus.ACCEPTED,
        accepted_at=timezone.now(),
    )
    for index, (answer, verdict, feedback) in enumerate(answers, start=1):
        AmaRound.objects.create(
            session=session,
            index=index,
            question=question,
            status="done",
            caption="a caption",
            caption_source="human",
            ocr_text="STOP",
            model_name="SmolLM2",
            prompt_version="ama-v1",
            answer=answer,
            verdict=verdict,
            feedback=feedback,
        )
    return session


def capqa_pair(
    camp: Campaign, image: Image, question: str, answer: str, multi: bool = False
) -> Any:
    from annotator_app.ama.models import CapQAPair

    return CapQAPair.objects.create(
        campaign=camp,
        image=image,
        source_caption_id=1,
        question=question,
        question_key=question.lower(),
        answer=answer,
        multi_turn=multi,
        prompt_version="capqa-v1",
        model_name="SmolLM2",
    )
