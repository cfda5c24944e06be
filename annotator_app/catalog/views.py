"""Media serving: a permission check, then the file with a fixed content type.

Filesystem storage: the file is streamed from here. Remote storage (S3): a 302 to a
short-lived signed URL that also pins the content type S3 answers with.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.views.decorators.http import require_safe

from annotator_app.catalog.media_access import MediaGrant, media_grant
from annotator_app.catalog.ranges import (
    RangeNotSatisfiable,
    not_satisfiable,
    partial_response,
    requested_range,
)
from annotator_app.catalog.selectors import image_get, image_media_grant
from annotator_app.catalog.services import image_thumbnail_ensure
from pipelines.images import ImageRejected

# Types a browser renders passively; anything else goes out as an opaque download type.
_PASSIVE_TYPES = ("image/", "audio/", "video/")
MEDIA_CSP = "default-src 'none'; sandbox"


def _safe_type(content_type: str) -> str:
    lowered = content_type.lower()
    if lowered.startswith(_PASSIVE_TYPES) and "svg" not in lowered and "xml" not in lowered:
        return content_type
    return "application/octet-stream"


def _harden(response: HttpResponse | StreamingHttpResponse) -> None:
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = MEDIA_CSP
    response["Cache-Control"] = "private, max-age=300"


def _signed_redirect(key: str, grant: MediaGrant, content_type: str) -> HttpResponse:
    url = default_storage.url(  # type: ignore[call-arg]
        key,
        parameters={
            "ResponseContentType": content_type,
            "ResponseContentDisposition": f'inline; filename="{grant.filename}"',
        },
        expire=settings.AWS_QUERYSTRING_EXPIRE,
    )
    response = HttpResponseRedirect(url)
    _harden(response)
    # The signed URL expires soon: never let a cache hand it out later.
    response["Cache-Control"] = "private, no-store"
    return response


@require_safe
def media_serve(request: HttpRequest, key: str) -> HttpResponse | StreamingHttpResponse:
    """Serve one stored file to a logged-in user whose access the key's checker grants."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    grant = media_grant(user=request.user, key=key)
    content_type = _safe_type(grant.content_type)
    try:
        default_storage.path(key)
    except NotImplementedError:
        return _signed_redirect(key, grant, content_type)
    try:
        handle = default_storage.open(key, "rb")
    except FileNotFoundError:
        raise Http404("no such file") from None
    response = _ranged(request, handle, content_type)
    if response is None:
        response = FileResponse(handle, content_type=content_type, filename=grant.filename)
    response["Accept-Ranges"] = "bytes"
    # FileResponse picks "attachment" only when asked; say inline explicitly.
    response["Content-Disposition"] = f'inline; filename="{grant.filename}"'
    _harden(response)
    return response


def _ranged(
    request: HttpRequest, handle: Any, content_type: str
) -> HttpResponse | StreamingHttpResponse | None:
    """A 206 (or 416) answer to a single-range request; None to send the whole file."""
    if "If-Range" in request.headers:
        return None  # no validators to compare: the whole file is always right
    size = handle.size
    try:
        wanted = requested_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        handle.close()
        return not_satisfiable(size)
    if wanted is None:
        return None
    return partial_response(handle, wanted[0], wanted[1], size, content_type)


@require_safe
def image_thumbnail(request: HttpRequest, image_id: int) -> HttpResponse | StreamingHttpResponse:
    """A small JPEG of a catalogued image, made on first view, served like any media."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    image = image_get(image_id=image_id)
    if image is None or image_media_grant(request.user, image.storage_key) is None:
        raise Http404("no such file")
    try:
        key = image_thumbnail_ensure(image=image)
    except (FileNotFoundError, ImageRejected):
        raise Http404("no such file") from None
    return media_serve(request, key)
