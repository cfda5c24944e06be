"""Helpers of the AMA tests: a campaign over real stored images, leases, cap captions."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

API = "/api/v1/ama"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def sign_png(lines: list[str], *, size: tuple[int, int] = (640, 240)) -> bytes:
    """A shop sign: dark text on a light board (what OCR must read)."""
    image = Image.new("RGB", size, (245, 240, 225))
    pen = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 36)
    for n, line in enumerate(lines):
        pen.text((24, 24 + n * 64), line, fill=(15, 15, 15), font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def store_image(data: bytes) -> Any:
    from annotator_app.catalog.services import image_import_bytes

    outcome = image_import_bytes(
        data=data, source_url=f"https://example.org/{uuid.uuid4().hex}.png"
    )
    assert outcome.image is not None, outcome
    return outcome.image


def ama_campaign(images: list[Any], **fields: Any) -> Any:
    from annotator_app.work.services import campaign_create

    return campaign_create(name=f"ama-{uuid.uuid4().hex[:8]}", kind="ama", images=images, **fields)


def open_session(user: Any, campaign: Any = None) -> Any:
    """Lease an AMA item for `user` and open its session, as the page does."""
    from annotator_app.ama.services import session_for_assignment
    from annotator_app.work.services import assignment_next

    assignment = assignment_next(user=user, kind="ama", campaign=campaign)
    assert assignment is not None, "the test campaign has no item left for this user"
    return session_for_assignment(assignment=assignment)


def accepted_cap_caption(image: Any, text: str, campaign: Any = None) -> Any:
    """A PixMo-Cap caption of `image` whose assignment a reviewer accepted (rows only)."""
    from annotator_app.accounts.models import Role, User
    from annotator_app.captions.models import CleanedCaption, Recording, RecordingStatus, Transcript
    from annotator_app.work.models import Assignment, AssignmentStatus, Campaign, WorkItem

    if campaign is None:
        campaign = Campaign.objects.create(
            name=f"cap-{uuid.uuid4().hex[:8]}", kind="cap", min_seconds=1
        )
    item = WorkItem.objects.create(campaign=campaign, image=image, open_slots=0)
    speaker = User.objects.create_user(
        username=f"spk-{uuid.uuid4().hex[:8]}", password="pw-spk-123", role=Role.ANNOTATOR
    )
    assignment = Assignment.objects.create(
        item=item, annotator=speaker, status=AssignmentStatus.ACCEPTED
    )
    recording = Recording.objects.create(
        assignment=assignment, annotator=speaker, campaign=campaign, image=image,
        storage_key=f"recordings/test/{uuid.uuid4().hex}.webm", mime_type="audio/webm",
        size_bytes=10, sha256=uuid.uuid4().hex, duration_seconds=61.0,
        idempotency_key=uuid.uuid4().hex, status=RecordingStatus.DONE,
    )  # fmt: skip
    transcript = Transcript.objects.create(recording=recording, text=text, model_name="tiny.en")
    return CleanedCaption.objects.create(
        transcript=transcript,
        rule_text=text,
        text=text,
        prompt_version="clean-v2",
        model_name="rules",
    )
