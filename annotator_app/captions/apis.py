"""Captions API: upload a spoken description, follow its processing, list one's own."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator_app.captions.selectors import recording_get_visible, recording_list_own
from annotator_app.captions.serializers import RecordingOutputSerializer, RecordingUploadSerializer
from annotator_app.captions.services import recording_submit

# Room for the multipart envelope and the small fields around the audio file.
MULTIPART_OVERHEAD = 64 * 1024


class RecordingTooLargeEarly(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class RecordingListCreateApi(APIView):
    """POST: upload the recording for one's leased assignment. GET: one's recordings."""

    parser_classes = [MultiPartParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Before authentication: the CSRF check reads the form, and so the whole body.
        if request.method == "POST":
            declared = request.META.get("CONTENT_LENGTH") or "0"
            limit = settings.RECORDING_MAX_BYTES
            if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
                raise RecordingTooLargeEarly(
                    f"the upload is {declared} bytes; recordings may be at most {limit} bytes"
                )
        super().initial(request, *args, **kwargs)

    @extend_schema(responses=RecordingOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(recording_list_own(user=request.user), request, self)
        data = RecordingOutputSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        request={"multipart/form-data": RecordingUploadSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                location=OpenApiParameter.HEADER,
                required=True,
                description="Made once per recording (a UUID); a retry sends the same key.",
            )
        ],
        responses={201: RecordingOutputSerializer, 200: RecordingOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        form = RecordingUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        audio = form.validated_data["audio"]
        result = recording_submit(
            user=request.user,
            assignment_id=form.validated_data["assignment"],
            data=audio.read(),
            idempotency_key=request.headers.get("Idempotency-Key", "").strip(),
            active_seconds=form.validated_data.get("active_seconds"),
        )
        data = RecordingOutputSerializer(result.recording, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED if result.created else 200)


class RecordingDetailApi(APIView):
    """One recording's processing status and, once written, its transcript and caption."""

    @extend_schema(responses=RecordingOutputSerializer)
    def get(self, request: Request, recording_id: int) -> Response:
        recording = recording_get_visible(user=request.user, recording_id=recording_id)
        if recording is None:
            raise NotFound("no such recording")
        return Response(RecordingOutputSerializer(recording, context={"request": request}).data)
