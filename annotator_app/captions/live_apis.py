"""Live guidance API (P12): the capture page posts new audio, the answer is the live view.

Transport: plain requests. The page must send its audio anyway, about once a second, so
each answer carries the newest text and coverage, and a GET after the recording stops
fetches the last steps. See README "Live guidance" for why not SSE or websockets.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator_app.captions.live import live_append, live_get


class LiveChunkSerializer(serializers.Serializer):
    take = serializers.CharField(max_length=64)
    offset = serializers.IntegerField(min_value=0)
    received_ms = serializers.IntegerField(min_value=0, max_value=24 * 3600 * 1000)
    final = serializers.BooleanField(required=False, default=False)
    # Empty is allowed for the last post of a take (final, nothing new).
    audio = serializers.FileField(allow_empty_file=True, use_url=False)


LIVE_VIEW = inline_serializer(
    name="CaptionsLiveView",
    fields={
        "take": serializers.CharField(),
        "text": serializers.CharField(),
        "committed": serializers.CharField(),
        "tentative": serializers.CharField(),
        "coverage": serializers.JSONField(),
        "received_seconds": serializers.FloatField(),
        "heard_seconds": serializers.FloatField(),
        "shown_seconds": serializers.FloatField(),
        "lag_seconds": serializers.FloatField(),
        "paused": serializers.BooleanField(),
        "paused_reason": serializers.CharField(),
        "steps": serializers.IntegerField(),
    },
)


class LiveApi(APIView):
    """POST: one chunk of the take being recorded. GET ?take=: the take's live view."""

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": LiveChunkSerializer}, responses=LIVE_VIEW)
    def post(self, request: Request, assignment_id: int) -> Response:
        form = LiveChunkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = form.validated_data
        view = live_append(
            user=request.user,
            assignment_id=assignment_id,
            take=data["take"],
            offset=data["offset"],
            data=data["audio"].read(),
            received_ms=data["received_ms"],
            final=data["final"],
        )
        return Response(view)

    @extend_schema(parameters=[OpenApiParameter("take", str, required=True)], responses=LIVE_VIEW)
    def get(self, request: Request, assignment_id: int) -> Response:
        view = live_get(
            user=request.user,
            assignment_id=assignment_id,
            take=request.query_params.get("take", ""),
        )
        return Response(view)
